//! A clinician's signature on a report or a prescription (docs/protocol.md, "Records" and
//! "Signing PINs"): confirming that it is them, with their password or their signing PIN, and
//! setting or erasing that PIN. The PIN's rules are `crate::auth::signing_pin`'s and its
//! counting `Db::begin_pin_attempt`'s; this file checks who asks, throttles and audits.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::account::confirm_password;
use super::api::{ApiJson, Clinician, client_pseudonym};
use super::error::ApiError;
use super::member::RoomMember;
use crate::audit::{Action, AuditEvent, Outcome};
use crate::auth::{AuthError, MAX_PIN_FAILURES, check_new_pin, looks_like_pin};
use crate::domain::clock::now_unix_ms;
use crate::storage::{PinAttempt, Signature, User};

/// How a clinician confirms a signature: the fields `password` and `pin` of a request that
/// issues a record (one of them, or neither for a record that is not signed).
#[derive(Deserialize, Default)]
pub struct Confirmation {
    /// The issuing clinician's password.
    #[serde(default)]
    pub password: Option<String>,
    /// Or their signing PIN, if they set one.
    #[serde(default)]
    pub pin: Option<String>,
}

enum Credential {
    Password(String),
    Pin(String),
}

impl Confirmation {
    fn credential(self) -> Result<Option<Credential>, ApiError> {
        let password = self.password.filter(|p| !p.is_empty());
        let pin = self.pin.filter(|p| !p.is_empty());
        match (password, pin) {
            (Some(_), Some(_)) => Err(ApiError::Invalid(
                "confirm with your password or with your PIN, not both".into(),
            )),
            (Some(p), None) => Ok(Some(Credential::Password(p))),
            (None, Some(p)) => Ok(Some(Credential::Pin(p))),
            (None, None) => Ok(None),
        }
    }
}

fn pin_error(status: StatusCode, code: &'static str, message: String) -> ApiError {
    ApiError::Pin {
        status,
        code,
        message,
        tries_left: None,
    }
}

/// Confirms that the issuing clinician is who their seat says, with their password or PIN,
/// and makes their signature: their account's name, title and institution as they stand now.
/// Nothing to confirm with: no signature (the records module says whether the kind needs
/// one). Wrong passwords count towards the sign-in throttle of the account and the address,
/// like a failed sign-in; wrong PINs towards the PIN's own limit. All refusals audited.
pub async fn sign(
    state: &AppState,
    who: &RoomMember,
    confirmation: Confirmation,
    peer: SocketAddr,
) -> Result<Option<Signature>, ApiError> {
    let Some(credential) = confirmation.credential()? else {
        return Ok(None);
    };
    let Some(account) = &who.member.account else {
        return Err(ApiError::SignatureRequired(
            "reports and prescriptions are signed by a clinician account: sign in and enter the \
             consultation from your console"
                .into(),
        ));
    };
    let user = state
        .db
        .user(account)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    let client = client_pseudonym(state, peer.ip());
    let failed = |reason: &'static str| {
        who.event(Action::SigningFailed)
            .outcome(Outcome::Denied)
            .object("user", &user.id)
            .detail(json!({"reason": reason, "client": client}))
    };
    // Only a doctor's or a specialist's account signs, whatever seat it holds: an
    // administrator seated as the doctor of a room they made, or an account since moved to
    // another role, may not. Refused before anything is tried.
    if !user.role.is_clinician() {
        state
            .audit
            .refused(
                user.id.as_str(),
                "not_a_clinician",
                failed("not_a_clinician"),
            )
            .await;
        return Err(ApiError::Denied(
            "only a doctor's or a specialist's account signs reports and prescriptions".into(),
        ));
    }
    // A PIN that cannot be one (a password typed into the PIN field) spends no try.
    if let Credential::Pin(pin) = &credential
        && !looks_like_pin(pin)
    {
        return Err(pin_error(
            StatusCode::BAD_REQUEST,
            "pin_rule",
            AuthError::PinRule.to_string(),
        ));
    }
    match credential {
        Credential::Password(password) => {
            if !confirm_password(state, &user, password, peer, failed).await? {
                return Err(ApiError::WrongSigningPassword);
            }
        }
        // Not under the sign-in throttle: the PIN has its own, stricter limit, and a clinician
        // who got their PIN wrong five times must still be able to sign with their password.
        Credential::Pin(pin) => {
            let (hash, number) = match state
                .db
                .begin_pin_attempt(&user.id, MAX_PIN_FAILURES)
                .await?
            {
                PinAttempt::Counted { hash, number } => (hash, number),
                PinAttempt::NoPin => {
                    state
                        .audit
                        .refused(user.id.as_str(), "no_pin", failed("no_pin"))
                        .await;
                    return Err(pin_error(
                        StatusCode::CONFLICT,
                        "no_signing_pin",
                        "your account has no signing PIN: sign with your password, or set a \
                         PIN in your console"
                            .into(),
                    ));
                }
                PinAttempt::Exhausted => {
                    state
                        .audit
                        .refused(
                            user.id.as_str(),
                            "pin_tries_exhausted",
                            failed("pin_tries_exhausted"),
                        )
                        .await;
                    return Err(ApiError::TooManyAttempts(1));
                }
            };
            if !state.passwords.verify(pin, hash.clone()).await? {
                let erased = state
                    .db
                    .pin_attempt_failed(&user.id, &hash, number, MAX_PIN_FAILURES)
                    .await?;
                state.audit.record_or_log(failed("wrong_pin")).await;
                if erased {
                    state
                        .audit
                        .record_or_log(
                            who.event(Action::SigningPinCleared)
                                .outcome(Outcome::Denied)
                                .object("user", &user.id)
                                .detail(json!({"reason": "too_many_wrong", "client": client})),
                        )
                        .await;
                    return Err(pin_error(
                        StatusCode::FORBIDDEN,
                        "pin_erased",
                        format!(
                            "the PIN was wrong {MAX_PIN_FAILURES} times: it is erased. Sign with \
                             your password, and set a new PIN in your console if you want one"
                        ),
                    ));
                }
                return Err(ApiError::Pin {
                    status: StatusCode::FORBIDDEN,
                    code: "wrong_pin",
                    message: "the PIN is wrong: the record was not signed".into(),
                    tries_left: Some((MAX_PIN_FAILURES - number).max(0)),
                });
            }
            state.db.pin_attempt_succeeded(&user.id, &hash).await?;
        }
    }
    signature(state, user).await.map(Some)
}

async fn signature(state: &AppState, user: User) -> Result<Signature, ApiError> {
    let institution = state
        .db
        .institution(&user.institution_id)
        .await?
        .map(|i| i.name)
        .unwrap_or_default();
    Ok(Signature {
        by: user.id,
        name: user.display_name,
        title: user.title,
        institution,
        at_ms: now_unix_ms(),
    })
}

#[derive(Deserialize)]
pub struct SetPinBody {
    password: String,
    pin: String,
}

/// `PUT /me/signing-pin`: a doctor or a specialist sets (or replaces) their signing PIN,
/// confirming with their password under the sign-in throttle: a stolen session token must not
/// become a way to sign.
pub async fn set_signing_pin(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    who: Clinician,
    ApiJson(body): ApiJson<SetPinBody>,
) -> Result<StatusCode, ApiError> {
    let user = &who.0;
    if !user.role.is_clinician() {
        return Err(who
            .refuse(&state, "not_a_clinician", "set_signing_pin")
            .await);
    }
    check_new_pin(&body.pin).map_err(|e| {
        let code = match e {
            AuthError::WeakPin => "weak_pin",
            _ => "pin_rule",
        };
        pin_error(StatusCode::BAD_REQUEST, code, e.to_string())
    })?;
    let client = client_pseudonym(&state, peer.ip());
    let event = |outcome: Outcome, reason: Option<&'static str>| {
        AuditEvent::new(who.actor(), Action::SigningPinSet)
            .outcome(outcome)
            .object("user", &user.id)
            .detail(json!({
                "reason": reason,
                "replaced": user.signing_pin_hash.is_some(),
                "client": client,
            }))
    };
    let refused = |reason| event(Outcome::Denied, Some(reason));
    if !confirm_password(&state, user, body.password, peer, refused).await? {
        return Err(ApiError::WrongPassword);
    }
    let hash = state.passwords.hash(body.pin).await?;
    // Recorded first: a PIN whose setting cannot be traced is not set.
    state.audit.record(event(Outcome::Ok, None)).await?;
    state.db.set_signing_pin(&user.id, Some(&hash)).await?;
    tracing::info!(user = %user.id, "signing PIN set");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /me/signing-pin`: the clinician erases their PIN and signs with their password
/// again. Erasing one that is not there changes nothing and is not an error.
pub async fn clear_signing_pin(
    State(state): State<AppState>,
    who: Clinician,
) -> Result<StatusCode, ApiError> {
    let user = &who.0;
    if user.signing_pin_hash.is_none() {
        return Ok(StatusCode::NO_CONTENT);
    }
    state.db.set_signing_pin(&user.id, None).await?;
    state
        .audit
        .record_or_log(
            AuditEvent::new(who.actor(), Action::SigningPinCleared)
                .object("user", &user.id)
                .detail(json!({"reason": "by_user"})),
        )
        .await;
    tracing::info!(user = %user.id, "signing PIN erased");
    Ok(StatusCode::NO_CONTENT)
}
