//! Signing in and out, renewing a session, changing one's password, and an administrator ending
//! another account's sessions (docs/protocol.md, "HTTP API"). The rules are `crate::sessions`'
//! and `crate::auth`'s; this file checks who asks, throttles, and writes the audit trail.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::api::{ApiJson, Clinician, audit_refused, client_pseudonym, user_view};
use super::error::ApiError;
use crate::audit::{Action, Actor, AuditEvent, Outcome};
use crate::auth::check_new_password;
use crate::domain::clock::now_unix;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::text::MAX_USERNAME_CHARS;
use crate::sessions::{Issued, SessionError};
use crate::storage::{StorageError, User};

#[derive(Deserialize)]
pub struct LoginBody {
    username: String,
    password: String,
}

/// What sign-in and renewal answer: the token and the deadlines the client renews by, as Unix
/// times and as seconds from `now` (a browser's clock may be off; a duration is not).
fn issued_json(issued: &Issued, now: i64) -> Value {
    json!({
        "token": issued.token,
        "expires_at": issued.expires_at,
        "expires_in": issued.expires_at - now,
        "session_expires_at": issued.session_expires_at,
        "session_expires_in": issued.session_expires_at - now,
    })
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<Value>, ApiError> {
    let name = body.username.trim();
    let now = std::time::Instant::now();
    let client = client_pseudonym(&state, peer.ip());
    // No account has a longer name: refused before the throttle keeps it (a name of 64 kB,
    // new each time, would otherwise grow the throttle's tables by that much per try).
    if name.chars().count() > MAX_USERNAME_CHARS {
        state
            .audit
            .refused(
                &client,
                "username_too_long",
                AuditEvent::new(Actor::Unknown, Action::SignInFailed)
                    .detail(json!({"client": client})),
            )
            .await;
        return Err(ApiError::InvalidCredentials);
    }
    // Checked and counted in one step: parallel sign-ins cannot all pass before one fails.
    let attempt = match state.login_throttle.begin(name, peer.ip(), now) {
        Ok(attempt) => attempt,
        Err(refused) => {
            tracing::info!(
                scope = refused.scope.as_str(),
                "sign-in refused: too many failures"
            );
            // Rate-limited like every refusal of misuse: a throttled client trying on and on
            // must not flood the trail (nor hold up the writer the rooms share).
            state
                .audit
                .refused(
                    &client,
                    "throttled",
                    AuditEvent::new(Actor::Unknown, Action::SignInFailed).detail(json!({
                        "scope": refused.scope.as_str(),
                        "client": client,
                    })),
                )
                .await;
            return Err(ApiError::TooManyAttempts(
                refused.retry_after.as_secs().max(1),
            ));
        }
    };
    let user = state.db.user_by_username(name).await?;
    // Checked even for unknown users so that timing does not reveal which names exist.
    let password = body.password;
    let ok = match &user {
        Some(u) => {
            state
                .passwords
                .verify(password, u.password_hash.clone())
                .await?
        }
        None => state.passwords.verify_for_nobody(password).await?,
    };
    let actor = match &user {
        Some(u) => Actor::User(u.id.clone(), u.role),
        None => Actor::Unknown,
    };
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!("failed sign-in");
        attempt.failed(now);
        state
            .audit
            .record_or_log(
                AuditEvent::new(actor, Action::SignInFailed)
                    .outcome(Outcome::Denied)
                    .detail(json!({"reason": "invalid_credentials", "client": client})),
            )
            .await;
        return Err(ApiError::InvalidCredentials);
    };
    attempt.succeeded();
    // The password was right (so nothing is revealed to a guesser): an account an
    // administrator disabled is told so, and the refusal is on the record.
    if user.disabled_at.is_some() {
        state
            .audit
            .record_or_log(
                AuditEvent::new(actor, Action::SignInFailed)
                    .outcome(Outcome::Denied)
                    .detail(json!({"reason": "account_disabled", "client": client})),
            )
            .await;
        return Err(ApiError::AccountDisabled);
    }
    // The entry comes first: a sign-in that cannot be recorded does not happen.
    let session = SessionId::generate();
    state
        .audit
        .record(
            AuditEvent::new(actor, Action::SignIn)
                .object("session", &session)
                .detail(json!({"client": client})),
        )
        .await?;
    let opened_at = now_unix();
    let issued = state
        .sessions
        .open(session, &user, client, opened_at)
        .await?;
    tracing::info!(user = %user.id, session = %issued.session, "signed in");
    let mut answer = issued_json(&issued, opened_at);
    answer["user"] = json!(user_view(&user));
    Ok(Json(answer))
}

/// Signs out: the request's session ends, and with it every token of it and every care-team
/// seat taken under it.
pub async fn logout(State(state): State<AppState>, who: Clinician) -> Result<StatusCode, ApiError> {
    let session = &who.1.id;
    if state.sessions.sign_out(session, now_unix()).await? {
        state.rooms.sessions_ended();
        state
            .audit
            .record_or_log(AuditEvent::new(who.actor(), Action::SignOut).object("session", session))
            .await;
        tracing::info!(user = %who.0.id, session = %session, "signed out");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A fresh token for the request's session; the token presented stops working.
pub async fn renew(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    who: Clinician,
) -> Result<Json<Value>, ApiError> {
    let Clinician(user, session) = &who;
    let now = now_unix();
    match state.sessions.renew(user, session, now).await {
        Ok(issued) => {
            // Unrecorded, the renewal is not handed out: the old token is spent already, so
            // the clinician signs in again (which is refused too while the trail is broken).
            state
                .audit
                .record(
                    AuditEvent::new(who.actor(), Action::SessionRenewed)
                        .object("session", &issued.session)
                        .detail(json!({"expires_at": issued.expires_at})),
                )
                .await?;
            tracing::debug!(user = %user.id, session = %issued.session, "session renewed");
            Ok(Json(issued_json(&issued, now)))
        }
        Err(SessionError::Refused {
            session,
            owner,
            reason,
        }) => {
            let client = Some(client_pseudonym(&state, peer.ip()));
            audit_refused(&state, &session, owner, reason, client).await;
            Err(ApiError::Unauthenticated)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// Checks that `password` is `user`'s, as a signed-in clinician confirms who they are (to
/// change their password, to set a signing PIN, to sign), under the sign-in throttle of the
/// account and the address: a stolen session token must not become a way to guess the
/// password. A throttled check is an error; a wrong password is `false`, counted as a failed
/// sign-in. Both refusals are audited with `failed(reason)`: `throttled` (rate-limited, as at
/// sign-in), `wrong_password` (each counted by the throttle).
pub(super) async fn confirm_password(
    state: &AppState,
    user: &User,
    password: String,
    peer: SocketAddr,
    failed: impl Fn(&'static str) -> AuditEvent,
) -> Result<bool, ApiError> {
    let now = std::time::Instant::now();
    let attempt = match state.login_throttle.begin(&user.username, peer.ip(), now) {
        Ok(attempt) => attempt,
        Err(refused) => {
            // Every further try while throttled is the same refusal: through the rate-limited
            // refusal log, as at sign-in, not an entry each.
            state
                .audit
                .refused(user.id.as_str(), "throttled", failed("throttled"))
                .await;
            return Err(ApiError::TooManyAttempts(
                refused.retry_after.as_secs().max(1),
            ));
        }
    };
    if !state
        .passwords
        .verify(password, user.password_hash.clone())
        .await?
    {
        attempt.failed(now);
        state.audit.record_or_log(failed("wrong_password")).await;
        return Ok(false);
    }
    attempt.succeeded();
    Ok(true)
}

/// Changes the caller's password. The current password is checked under the sign-in throttle
/// (a stolen session token must not become a way to guess it); every other session of the
/// account ends, this one goes on.
pub async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    who: Clinician,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<Json<Value>, ApiError> {
    let Clinician(user, session) = &who;
    check_new_password(&body.new_password).map_err(|e| ApiError::Invalid(e.to_string()))?;
    if body.new_password == body.current_password {
        return Err(ApiError::Invalid(
            "the new password must differ from the current one".into(),
        ));
    }
    let client = client_pseudonym(&state, peer.ip());
    let failed = |reason: &'static str| {
        AuditEvent::new(who.actor(), Action::PasswordChangeFailed)
            .outcome(Outcome::Denied)
            .object("user", &user.id)
            .detail(json!({"reason": reason, "client": client}))
    };
    if !confirm_password(&state, user, body.current_password, peer, failed).await? {
        return Err(ApiError::WrongPassword);
    }
    let new = body.new_password;
    let hash = state.passwords.hash(new).await?;
    let revoked = match state
        .sessions
        .change_password(user, &hash, &session.id, now_unix())
        .await
    {
        Ok(n) => n,
        Err(SessionError::Storage(StorageError::Conflict)) => {
            return Err(ApiError::Conflict(
                "the password was changed meanwhile; sign in again".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if revoked > 0 {
        state.rooms.sessions_ended();
    }
    state
        .audit
        .record_or_log(
            AuditEvent::new(who.actor(), Action::PasswordChanged)
                .object("user", &user.id)
                .detail(json!({
                    "sessions_revoked": revoked,
                    "signing_pin_erased": user.signing_pin_hash.is_some(),
                    "client": client,
                })),
        )
        .await;
    tracing::info!(user = %user.id, sessions_revoked = revoked, "password changed");
    Ok(Json(json!({"sessions_revoked": revoked})))
}

/// The account `id`, if the caller may manage it: an administrator any account, an
/// institution's administrator their own institution's, and only accounts of a role they may
/// give (an institution's administrator may not disable, enable or sign out the supervisor who
/// audits them, nor a network-wide account placed in their institution). To them an account
/// elsewhere is refused like one they may not manage. Refusals go through the rate-limited
/// refusal log with `attempted` (a loop of them is misuse, not a trail to fill).
async fn managed_account(
    state: &AppState,
    who: &Clinician,
    id: &str,
    attempted: &'static str,
) -> Result<User, ApiError> {
    let target = UserId::parse(id);
    let account = match &target {
        Some(t) => state.db.user(t).await?,
        None => None,
    };
    let same = account
        .as_ref()
        .is_some_and(|a| a.institution_id == who.0.institution_id);
    let reason = if !who.0.role.may_manage_accounts(same) {
        Some("not_an_administrator")
    } else if account
        .as_ref()
        .is_some_and(|a| !who.0.role.may_grant(a.role))
    {
        Some("role_not_grantable")
    } else {
        None
    };
    if let Some(reason) = reason {
        let mut event = AuditEvent::new(who.actor(), Action::AccessDenied)
            .detail(json!({"attempted": attempted}));
        if let Some(target) = &target {
            event = event.object("user", target);
        }
        state.audit.refused(who.0.id.as_str(), reason, event).await;
        return Err(ApiError::Forbidden);
    }
    account.ok_or(ApiError::NotFound)
}

/// An administrator ends every session of an account (its own included, if it names itself);
/// an institution's administrator, of its own institution's accounts.
pub async fn revoke_sessions(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let account = managed_account(&state, &who, &id, "sessions.revoke").await?;
    let revoked = state.sessions.revoke_all(&account.id, now_unix()).await?;
    state.rooms.sessions_ended();
    state
        .audit
        .record_or_log(
            AuditEvent::new(who.actor(), Action::SessionsRevoked)
                .object("user", &account.id)
                .detail(json!({"sessions_revoked": revoked, "via": "api"})),
        )
        .await;
    tracing::info!(user = %account.id, by = %who.0.id, sessions_revoked = revoked, "sessions revoked");
    Ok(Json(json!({"sessions_revoked": revoked})))
}

/// `POST /accounts/{id}/disable`: an administrator (or an institution's, of its own accounts)
/// disables an account: it cannot sign in, its sessions and the care-team seats taken under
/// them end at once, it leaves the directory and takes no referrals. Its records stay. An
/// administrator does not disable their own account.
pub async fn disable_account(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let account = managed_account(&state, &who, &id, "account.disable").await?;
    if account.id == who.0.id {
        return Err(ApiError::Invalid(
            "you cannot disable your own account".into(),
        ));
    }
    let now = now_unix();
    state.db.set_disabled(&account.id, Some(now)).await?;
    let revoked = state.sessions.revoke_all(&account.id, now).await?;
    state.rooms.sessions_ended();
    state
        .audit
        .record_or_log(
            AuditEvent::new(who.actor(), Action::AccountDisabled)
                .object("user", &account.id)
                .detail(json!({"sessions_revoked": revoked})),
        )
        .await;
    tracing::info!(user = %account.id, by = %who.0.id, sessions_revoked = revoked, "account disabled");
    Ok(Json(json!({"disabled": true, "sessions_revoked": revoked})))
}

/// `POST /accounts/{id}/enable`: the account signs in again (with the password it had).
pub async fn enable_account(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let account = managed_account(&state, &who, &id, "account.enable").await?;
    state.db.set_disabled(&account.id, None).await?;
    state
        .audit
        .record_or_log(
            AuditEvent::new(who.actor(), Action::AccountEnabled).object("user", &account.id),
        )
        .await;
    tracing::info!(user = %account.id, by = %who.0.id, "account enabled");
    Ok(Json(json!({"disabled": false, "sessions_revoked": 0})))
}
