//! The patient's consent on a consultation request over HTTP (docs/protocol.md, "Referral
//! consent"): the requester attests that the patient agreed to sharing the request's documents
//! with the receiving institution (`POST /referrals/{id}/consent`), or records that they
//! withdrew it (`POST /referrals/{id}/consent/withdraw`); both sides see where it stands in
//! the request's view. The rules are `crate::referrals::consent`'s; this file commits each
//! change with its audit entry (`consent.given` / `consent.withdrawn`, the referral as object,
//! the attesting clinician as actor) before it answers, so what is in force is always on the
//! record, audits every refusal, and tells the consoles of those on the request. A consent
//! attested with a new request is recorded in the transaction that makes the request
//! (`NewRequest::sharing_consent`), its entry queued with the request's own. It also shows the
//! words to a console that is about to send a request (`GET /referrals/consent-wording`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::api::{ApiJson, Clinician};
use super::error::ApiError;
use crate::audit::{Action, Append, AuditEvent};
use crate::domain::clock::now_unix;
use crate::domain::consent::ConsentPurpose;
use crate::domain::ids::ReferralId;
use crate::referrals::ReferralServiceError;
use crate::referrals::consent::{ConsentError, Decided, ReferralConsents, Sharing};
use crate::storage::Change;

fn service(state: &AppState) -> ReferralConsents {
    ReferralConsents::new(state.db.clone())
}

/// `POST /referrals/{id}/consent`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GiveBody {
    purpose: ConsentPurpose,
    /// The version of the words the patient was shown (`current_wording.version` of the
    /// request's `consent`).
    wording_version: String,
}

/// `POST /referrals/{id}/consent/withdraw`'s body; empty: `external_sharing`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WithdrawBody {
    purpose: ConsentPurpose,
}

/// The attestation a new request may carry (`external_sharing_consent` of its body).
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct AttestBody {
    pub wording_version: String,
}

/// Where a request stands on sharing, as both sides see it; `person` names an account.
pub fn consent_view(
    sharing: &Sharing,
    person: impl Fn(&crate::domain::ids::UserId) -> Value,
) -> Value {
    let mut v = json!({
        "purpose": ConsentPurpose::ExternalSharing.as_str(),
        "required": sharing.required,
        "in_force": sharing.in_force(),
        "allowed": sharing.allowed(),
        "current_wording": current_words(),
        "wording_version": null,
        "given_at": null,
        "attested_by": null,
        "withdrawn_at": null,
        "withdrawn_by": null,
    });
    if let Some(c) = &sharing.consent {
        v["wording_version"] = json!(c.wording_version);
        v["given_at"] = json!(c.given_at);
        v["attested_by"] = person(&c.attested_by);
        v["withdrawn_at"] = json!(c.withdrawn_at);
        v["withdrawn_by"] = c.withdrawn_by.as_ref().map(&person).unwrap_or(Value::Null);
    }
    v
}

/// `GET /api/v1/referrals/consent-wording`: the words the console shows the patient before a
/// request to another institution is sent, in both languages, and their version (what
/// `external_sharing_consent.wording_version` must name).
pub async fn wording(_who: Clinician) -> Json<Value> {
    let mut words = current_words();
    words["purpose"] = json!(ConsentPurpose::ExternalSharing.as_str());
    Json(words)
}

/// The current words for sharing a request's documents, in both languages, and their version.
fn current_words() -> Value {
    let w = ConsentPurpose::ExternalSharing.wording();
    json!({"version": w.version, "zh": w.zh, "en": w.en})
}

/// Records a refusal and hands it on: a request that is not theirs is an `access.denied`
/// (it may be probing); any other is the attempted action, denied, with its code as reason.
/// Rate-limited per account and reason.
async fn refuse(
    state: &AppState,
    who: &Clinician,
    attempted: Action,
    id: &ReferralId,
    e: ConsentError,
) -> ApiError {
    match &e {
        ConsentError::Referral(ReferralServiceError::NotVisible) => {
            let event = AuditEvent::new(who.actor(), Action::AccessDenied)
                .object("referral", id)
                .detail(json!({"attempted": attempted.as_str()}));
            state
                .audit
                .refused(who.0.id.as_str(), "referral_not_visible", event)
                .await;
        }
        ConsentError::Referral(ReferralServiceError::NotFound) | ConsentError::Storage(_) => {}
        other => {
            let event = AuditEvent::new(who.actor(), attempted)
                .object("referral", id)
                .detail(
                    json!({"purpose": ConsentPurpose::ExternalSharing.as_str(), "on": "referral"}),
                );
            state
                .audit
                .refused(who.0.id.as_str(), other.code(), event)
                .await;
        }
    }
    e.into()
}

/// The audit entry of a consent `who` attests (`wording_version`: given) or records as
/// withdrawn on `referral`.
fn consent_event(
    who: &Clinician,
    action: Action,
    referral: &crate::storage::ReferralRow,
    purpose: ConsentPurpose,
    wording_version: Option<&str>,
) -> AuditEvent {
    crate::referrals::audit::consent_event(&who.actor(), action, referral, purpose, wording_version)
}

/// Commits what was decided with its audit entry (waiting until both are on the record) and
/// tells the others on the request; nothing when nothing changed.
async fn commit(state: &AppState, who: &Clinician, decided: &Decided) -> Result<(), ApiError> {
    let Some(change) = &decided.change else {
        return Ok(());
    };
    let (action, purpose, version) = match change {
        Change::ReferralConsentGiven {
            purpose,
            wording_version,
            ..
        } => (Action::ConsentGiven, *purpose, Some(*wording_version)),
        Change::ReferralConsentWithdrawn { purpose, .. } => {
            (Action::ConsentWithdrawn, *purpose, None)
        }
        _ => return Err(ApiError::Internal("not a consent change".into())),
    };
    let referral = &decided.referral;
    let event = consent_event(who, action, referral, purpose, version);
    // Two requests that decided the same change at once both queue it; the row is changed
    // once, and only that change is on the record.
    let written = state
        .audit
        .submit(Append::entry(event).with(change.clone()).only_if_changed())
        .await?
        .await?;
    if written.is_none() {
        return Ok(());
    }
    tracing::info!(referral = %referral.id, user = %who.0.id, action = action.as_str(), "consent on a consultation request");
    if let Some(room) = &referral.room_id {
        if action == Action::ConsentGiven {
            copy_kept_out(state, who, referral).await;
        }
        // The room reads again which of its copies the other institution's clinicians see.
        state.rooms.sharing_changed(room).await;
    }
    // The receiving side's consoles say so and reload the request: a withdrawal withholds its
    // documents from their next read on.
    let in_force = action == Action::ConsentGiven;
    super::events::referral_consent(state, referral, &who.0.id, in_force).await;
    Ok(())
}

/// Consent is in force again on a request whose room exists: the attachments kept out of the
/// room while it was not are copied in now, each audited as a share by the attesting clinician
/// and told to the live room. The consent stands if this fails (they stay on the request,
/// which both sides read again).
async fn copy_kept_out(state: &AppState, who: &Clinician, referral: &crate::storage::ReferralRow) {
    let copied = match super::referral_documents::service(state)
        .copy_kept_out(&referral.id)
        .await
    {
        Ok(copied) => copied,
        Err(e) => {
            tracing::error!(referral = %referral.id, error = %e, "attachments kept out of the room could not be copied in");
            return;
        }
    };
    for (attachment, doc) in copied {
        let extra = json!({"attachment": attachment.id, "consent_given_again": true});
        super::referral_documents::copy_shared(state, who, doc, &referral.id, extra).await;
    }
}

/// `POST /api/v1/referrals/{id}/consent`: the requester attests the patient's consent.
pub async fn give(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<GiveBody>,
) -> Result<Json<Value>, ApiError> {
    let id = ReferralId::parse(&id).ok_or(ApiError::NotFound)?;
    let decided = service(&state)
        .give(&id, &who.0, b.purpose, &b.wording_version, now_unix())
        .await;
    answer(&state, &who, Action::ConsentGiven, &id, decided).await
}

/// `POST /api/v1/referrals/{id}/consent/withdraw`: the requester records that the patient
/// withdrew their consent; it takes effect at once.
pub async fn withdraw(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = ReferralId::parse(&id).ok_or(ApiError::NotFound)?;
    // Read by hand, not with `ApiJson`: a withdrawal may come with no body at all (it means
    // the one purpose a request has), with or without a JSON content type.
    let purpose = if bytes.iter().all(u8::is_ascii_whitespace) {
        ConsentPurpose::ExternalSharing
    } else {
        serde_json::from_slice::<WithdrawBody>(&bytes)
            .map_err(|e| ApiError::Invalid(e.to_string()))?
            .purpose
    };
    let decided = service(&state)
        .withdraw(&id, &who.0, purpose, now_unix())
        .await;
    answer(&state, &who, Action::ConsentWithdrawn, &id, decided).await
}

/// What giving or withdrawing (`attempted`) decided, committed and answered with the request
/// as `who` sees it now; a refusal audited and handed on.
async fn answer(
    state: &AppState,
    who: &Clinician,
    attempted: Action,
    id: &ReferralId,
    decided: Result<Decided, ConsentError>,
) -> Result<Json<Value>, ApiError> {
    let decided = match decided {
        Ok(d) => d,
        Err(e) => return Err(refuse(state, who, attempted, id, e).await),
    };
    commit(state, who, &decided).await?;
    super::referrals::view_for(state, who, decided.referral).await
}

/// Checks a new request's attestation before the request is made (so that stale words refuse
/// the whole request, not half of it), refused as an attestation would be; the words' version,
/// which the request is made with (`NewRequest::sharing_consent`).
pub async fn check_attestation(
    state: &AppState,
    who: &Clinician,
    attest: &AttestBody,
) -> Result<&'static str, ApiError> {
    match crate::referrals::consent::current_wording(
        ConsentPurpose::ExternalSharing,
        &attest.wording_version,
    ) {
        Ok(version) => Ok(version),
        Err(e) => {
            let event = AuditEvent::new(who.actor(), Action::ConsentGiven)
                .detail(json!({"purpose": "external_sharing", "on": "referral"}));
            state
                .audit
                .refused(who.0.id.as_str(), e.code(), event)
                .await;
            Err(e.into())
        }
    }
}
