//! Clinical records over HTTP (docs/protocol.md, "Records"): participants create, edit and issue
//! notes, diagnosis reports and prescriptions in their room; pharmacists work the prescription
//! queue. Every step, and every refusal, is audited; the room is told so everyone allowed sees
//! the change live.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::api::{ApiJson, ApiQuery, Clinician};
use super::error::ApiError;
use super::member::RoomMember;
use super::signing::{Confirmation, sign};
use crate::audit::{Action, AuditEvent, Outcome};
use crate::domain::ids::{ParticipantId, RecordId, RoomId};
use crate::domain::record::{PharmacyAction, RecordKind, RecordStatus};
use crate::notifications::Event;
use crate::records::{
    DEFAULT_QUEUE_PAGE, MAX_QUEUE_PAGE, NewRecord, Pharmacist, QueueCursor, RecordError,
};
use crate::storage::RecordRow;
use crate::wire::{self, ClinicalRecordView, RecordRowView};

fn record_id(s: &str) -> Result<RecordId, ApiError> {
    RecordId::parse(s).ok_or(ApiError::NotFound)
}

fn record_event(e: AuditEvent, r: &RecordRow) -> AuditEvent {
    e.object("record", &r.id)
        .sha256(&r.body_sha256)
        .detail(json!({"kind": r.kind, "status": r.status, "supersedes": r.supersedes}))
}

/// Audits a refusal (a role that may not write this, an issued record someone tried to change,
/// a record id that is not the caller's) and hands the error on. Through the rate-limited
/// refusal log, keyed by `who` (the participant or the account): a loop of guessed record ids
/// is a probe, and must not fill the trail the room's own steps are written to.
async fn refused(state: &AppState, who: &str, event: AuditEvent, e: RecordError) -> ApiError {
    let reason = match &e {
        RecordError::Forbidden(_) => Some("record_forbidden"),
        RecordError::Conflict(_) => Some("record_conflict"),
        RecordError::SignatureRequired(_) => Some("signature_required"),
        RecordError::UnknownPatient => Some("unknown_patient"),
        // A record id that is not the caller's to reach (another room's, another
        // institution's prescription): a guess, or a probe.
        RecordError::NotFound => Some("record_not_found"),
        RecordError::Invalid(_) | RecordError::PatientRequired | RecordError::Storage(_) => None,
    };
    if let Some(reason) = reason {
        let event = event.detail_field("why", e.to_string().into());
        state.audit.refused(who, reason, event).await;
    }
    e.into()
}

/// Tells the consultation's care team that its drafts changed (one written, edited or issued),
/// so that each console's list of what is left to sign follows without a reload.
fn drafts_changed(state: &AppState, room: &RoomId) {
    state.notifications.tell_care_team(
        room,
        Event::DraftsChanged {
            room_id: room.clone(),
        },
    );
}

async fn announce(state: &AppState, id: &RecordId) {
    let view = match state.records.view(id).await {
        Ok(view) => view,
        Err(e) => {
            tracing::warn!(error = %e, "changed record could not be reloaded");
            return;
        }
    };
    match state.records.single_patient(&view.record.room_id).await {
        Ok(single) => state.rooms.record_changed(view, single).await,
        Err(e) => tracing::warn!(error = %e, "changed record could not be reloaded"),
    }
}

#[derive(Deserialize)]
pub struct CreateBody {
    kind: RecordKind,
    body: Value,
    #[serde(default)]
    issue: bool,
    #[serde(default)]
    supersedes: Option<RecordId>,
    /// The issuing clinician's password or PIN: signs the record in their account's name.
    #[serde(flatten)]
    confirmation: Confirmation,
    /// The patient it is about (their participant id), when the consultation saw several.
    #[serde(default)]
    patient: Option<ParticipantId>,
}

/// The entries a change of `who`'s record owes, from the record as the change leaves it: a
/// draft written (`created`: its creation or correction), or issued (and signed, when it was).
fn owed_by(who: &RoomMember, created: Action, r: &RecordRow) -> Vec<String> {
    let mut owed = Vec::new();
    match r.status {
        RecordStatus::Draft => owed.push(record_event(who.event(created), r)),
        _ => {
            owed.push(record_event(who.event(Action::RecordIssued), r));
            owed.extend(signed_event(who.event(Action::RecordSigned), r));
        }
    }
    owed.iter().map(AuditEvent::to_json).collect()
}

fn signed_event(e: AuditEvent, r: &RecordRow) -> Option<AuditEvent> {
    let sig = r.signature.as_ref()?;
    Some(
        e.object("record", &r.id)
            .sha256(&r.body_sha256)
            .detail(json!({"kind": r.kind, "signed_by": sig.by, "signed_at_ms": sig.at_ms})),
    )
}

pub async fn create_record(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    who: RoomMember,
    ApiJson(b): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<ClinicalRecordView>), ApiError> {
    let action = if b.supersedes.is_some() {
        Action::RecordCorrected
    } else {
        Action::RecordCreated
    };
    let issue = if b.issue {
        Some(sign(&state, &who, b.confirmation, peer).await?)
    } else {
        None
    };
    let owes = |r: &RecordRow| owed_by(&who, action, r);
    let record = match state
        .records
        .create(
            &who.room,
            &who.member,
            NewRecord {
                kind: b.kind,
                body: b.body,
                issue,
                supersedes: b.supersedes.clone(),
                patient: b.patient,
            },
            &owes,
        )
        .await
    {
        Ok(changed) => {
            super::api::abort_point("record_created");
            state.audit.record_owed(&changed.owed).await;
            changed.record
        }
        Err(e) => {
            let mut event = who.event(action);
            if let Some(old) = &b.supersedes {
                event = event.object("record", old);
            }
            return Err(refused(&state, who.member.participant.as_str(), event, e).await);
        }
    };
    if record.status == RecordStatus::Issued {
        // Issuing queued a webhook event: delivered now, not at the next poll.
        state.webhooks.wake();
        super::referrals::after_record_issued(&state, &who.room, &who.member, record.kind).await;
    } else {
        drafts_changed(&state, &who.room);
    }
    announce(&state, &record.id).await;
    Ok((
        StatusCode::CREATED,
        Json(ClinicalRecordView::from(&state.records.view(&record.id).await?).yours(true)),
    ))
}

pub async fn list_records(
    State(state): State<AppState>,
    who: RoomMember,
) -> Result<Json<Value>, ApiError> {
    let records = state
        .records
        .in_room_for(&who.room, Some((who.member.role, &who.member.invite)))
        .await?;
    let mine = state
        .records
        .written_by(&who.room, &who.member, &records)
        .await?;
    let views: Vec<ClinicalRecordView> = records
        .iter()
        .map(|v| ClinicalRecordView::from(v).yours(mine.contains(&v.record.id)))
        .collect();
    Ok(Json(json!({ "records": views })))
}

#[derive(Deserialize)]
pub struct UpdateBody {
    body: Value,
}

pub async fn update_record(
    State(state): State<AppState>,
    who: RoomMember,
    Path((_, rec)): Path<(String, String)>,
    ApiJson(b): ApiJson<UpdateBody>,
) -> Result<Json<ClinicalRecordView>, ApiError> {
    let id = record_id(&rec)?;
    match state
        .records
        .update_draft(&who.room, &who.member, &id, b.body)
        .await
    {
        Ok(r) => {
            state
                .audit
                .record_or_log(record_event(who.event(Action::RecordDraftUpdated), &r))
                .await;
            drafts_changed(&state, &who.room);
            announce(&state, &id).await;
            Ok(Json(
                ClinicalRecordView::from(&state.records.view(&id).await?).yours(true),
            ))
        }
        Err(e) => {
            let event = who.event(Action::RecordDraftUpdated).object("record", &id);
            Err(refused(&state, who.member.participant.as_str(), event, e).await)
        }
    }
}

/// Issues a draft; reports and prescriptions take `{"password": ...}` or `{"pin": ...}` and
/// are signed with it.
pub async fn issue_record(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    who: RoomMember,
    Path((_, rec)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<ClinicalRecordView>, ApiError> {
    let id = record_id(&rec)?;
    // No body at all is an issue without a signature (enough for a note).
    let body: Confirmation = if body.iter().all(u8::is_ascii_whitespace) {
        Confirmation::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::Invalid(e.to_string()))?
    };
    let signature = sign(&state, &who, body, peer).await?;
    match state
        .records
        .issue(&who.room, &who.member, &id, signature, &|r: &RecordRow| {
            owed_by(&who, Action::RecordIssued, r)
        })
        .await
    {
        Ok(changed) => {
            state.audit.record_owed(&changed.owed).await;
            let r = changed.record;
            state.webhooks.wake();
            super::referrals::after_record_issued(&state, &who.room, &who.member, r.kind).await;
            drafts_changed(&state, &who.room);
            announce(&state, &id).await;
            Ok(Json(
                ClinicalRecordView::from(&state.records.view(&id).await?).yours(true),
            ))
        }
        Err(e) => {
            let event = who.event(Action::RecordIssued).object("record", &id);
            Err(refused(&state, who.member.participant.as_str(), event, e).await)
        }
    }
}

#[derive(Deserialize)]
pub struct QueueQuery {
    #[serde(default)]
    status: Option<String>,
    /// The `next` of the page before.
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

pub async fn prescription_queue(
    State(state): State<AppState>,
    who: Clinician,
    ApiQuery(q): ApiQuery<QueueQuery>,
) -> Result<Json<Value>, ApiError> {
    if !who.0.role.may_review_prescriptions() {
        let event =
            AuditEvent::new(who.actor(), Action::AccessDenied).object("prescriptions", "queue");
        state
            .audit
            .refused(who.0.id.as_str(), "prescriptions_not_pharmacist", event)
            .await;
        return Err(ApiError::Forbidden);
    }
    let status = match q.status.as_deref() {
        None => RecordStatus::Issued,
        Some(s) => RecordStatus::parse(s)
            .ok_or_else(|| ApiError::Invalid("unknown prescription status".into()))?,
    };
    let after = match q.after.as_deref() {
        None => None,
        Some(c) => Some(
            QueueCursor::parse(c)
                .ok_or_else(|| ApiError::Invalid("`after` is not a page's `next`".into()))?,
        ),
    };
    let limit = q.limit.unwrap_or(DEFAULT_QUEUE_PAGE);
    if !(1..=MAX_QUEUE_PAGE).contains(&limit) {
        return Err(ApiError::Invalid(format!(
            "`limit` is from 1 to {MAX_QUEUE_PAGE}"
        )));
    }
    match state
        .records
        .queue(status, &who.0.institution_id, after.as_ref(), limit)
        .await
    {
        Ok(page) => Ok(Json(json!({
            "prescriptions": wire::all::<_, RecordRowView>(&page.rows),
            "total": page.total,
            "next": page.next.map(|c| c.to_string()),
        }))),
        Err(e @ RecordError::Forbidden(_)) => {
            state
                .audit
                .record_or_log(
                    AuditEvent::new(who.actor(), Action::AccessDenied)
                        .outcome(Outcome::Denied)
                        .detail(json!({"reason": "draft_prescriptions", "status": status})),
                )
                .await;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, Default)]
pub struct PharmacyBody {
    #[serde(default)]
    note: String,
}

pub async fn pharmacy_action(
    State(state): State<AppState>,
    who: Clinician,
    Path((rec, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<ClinicalRecordView>, ApiError> {
    let id = record_id(&rec)?;
    let action = match action.as_str() {
        "review" => PharmacyAction::Review,
        "dispense" => PharmacyAction::Dispense,
        "reject" => PharmacyAction::Reject,
        _ => return Err(ApiError::NotFound),
    };
    // The body is optional: `{"note": "..."}` or nothing.
    let note = if body.is_empty() {
        String::new()
    } else {
        serde_json::from_slice::<PharmacyBody>(&body)
            .map_err(|e| ApiError::Invalid(e.to_string()))?
            .note
    };
    let event = AuditEvent::new(who.actor(), Action::PrescriptionStateChanged);
    let before = state.records.view(&id).await.ok();
    match state
        .records
        .pharmacy(
            &Pharmacist {
                id: &who.0.id,
                role: who.0.role,
                institution: &who.0.institution_id,
            },
            &id,
            action,
            note,
            &|r: &RecordRow| {
                vec![
                    event
                        .clone()
                        .room(&r.room_id)
                        .object("record", &r.id)
                        .sha256(&r.body_sha256)
                        .detail(json!({
                            "from": before.as_ref().map(|b| b.record.status),
                            "to": r.status,
                            "action": action,
                        }))
                        .to_json(),
                ]
            },
        )
        .await
    {
        Ok(changed) => {
            state.audit.record_owed(&changed.owed).await;
            state.webhooks.wake();
            announce(&state, &id).await;
            Ok(Json(ClinicalRecordView::from(
                &state.records.view(&id).await?,
            )))
        }
        Err(e) => {
            let mut event = event.object("record", &id);
            if let Some(b) = &before {
                event = event.room(&b.record.room_id);
            }
            Err(refused(&state, who.0.id.as_str(), event, e).await)
        }
    }
}
