//! The patient's outcome page over HTTP (docs/protocol.md, "The patient's outcome"):
//! `GET /api/v1/outcome` (JSON) and `GET /api/v1/outcome/pdf`, authenticated by the patient's
//! invitation token, the one in their `/join#<token>` link.
//!
//! A link opens it when it is a patient's (never an observer's, never a care-team seat), not
//! revoked, and within `rooms.outcome_days` of the consultation's end: the link's own expiry
//! for joining plays no part, but its signature and kind are checked as for a join
//! (`SigningKey::decode`, then the page's own window, `Claims::within`). Every answer is
//! audited before it is sent (`outcome.viewed`, `outcome.downloaded`), every refusal through
//! the rate-limited `AuditLog::refused` (`access.denied`). Nothing about the patient or the
//! records is written to the log.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::api::client_pseudonym;
use super::error::ApiError;
use super::member::bearer;
use super::summary::attachment;
use crate::audit::{Action, Actor, AuditEvent};
use crate::auth::TokenKind;
use crate::domain::clock::now_unix;
use crate::domain::ids::InviteId;
use crate::domain::record::RecordKind;
use crate::domain::role::Role;
use crate::domain::time_zone::DisplayZone;
use crate::storage::{Invite, RoomRecord};
use crate::summary::outcome::{self, PatientOutcome};
use crate::summary::pdf;
use crate::wire::OutcomeView;

/// Why a link does not open the page: each is its own stable code.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// Malformed, forged, another kind of token, or naming no invitation of its room.
    InvalidToken,
    /// An observer's link or a clinician's care-team seat.
    NotPatient,
    Revoked,
    /// Past `rooms.outcome_days` after the consultation.
    Expired,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::InvalidToken => "outcome_invalid_token",
            Refusal::NotPatient => "outcome_not_patient_link",
            Refusal::Revoked => "outcome_revoked_invite",
            Refusal::Expired => "outcome_expired",
        }
    }

    fn error(self) -> ApiError {
        let (status, code, message) = match self {
            Refusal::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "this link is not valid",
            ),
            Refusal::NotPatient => (
                StatusCode::FORBIDDEN,
                "not_patient_link",
                "only a patient's invitation link opens the outcome of a consultation",
            ),
            Refusal::Revoked => (
                StatusCode::FORBIDDEN,
                "invite_revoked",
                "this invitation link was withdrawn",
            ),
            Refusal::Expired => (
                StatusCode::GONE,
                "outcome_expired",
                "the outcome of this consultation is no longer available through this link",
            ),
        };
        ApiError::Link {
            status,
            code,
            message,
        }
    }
}

/// Puts a refusal on the audit trail (rate-limited per `who`) and hands its error on.
async fn refuse(state: &AppState, who: &str, event: AuditEvent, why: Refusal) -> ApiError {
    let err = why.error();
    let event = event.detail_field("step", "outcome".into());
    state.audit.refused(who, why.reason(), event).await;
    err
}

/// A patient's invitation link that opens the outcome page now.
pub struct PatientLink {
    invite: Invite,
    room: RoomRecord,
    /// Until when it does (Unix seconds).
    until: i64,
}

impl PatientLink {
    fn event(&self, action: Action) -> AuditEvent {
        AuditEvent::new(
            Actor::Invite(self.invite.id.clone(), self.invite.role),
            action,
        )
        .room(&self.room.id)
        .object("room", &self.room.id)
    }
}

impl FromRequestParts<AppState> for PatientLink {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(ApiError::Unauthenticated)?.to_owned();
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| client_pseudonym(state, c.0.ip()))
            .unwrap_or_default();
        let stranger = || {
            AuditEvent::new(Actor::Unknown, Action::AccessDenied)
                .detail(json!({"client": client, "token": "invite"}))
        };
        // Signature and kind; the expiry for joining is not this page's (below).
        let Ok(claims) = state.key.decode(&token, TokenKind::Invite) else {
            return Err(refuse(state, &client, stranger(), Refusal::InvalidToken).await);
        };
        let (Some(room_id), Some(role), Some(invite_id)) = (
            claims.room.clone(),
            claims.role,
            InviteId::parse(&claims.sub),
        ) else {
            return Err(refuse(state, &client, stranger(), Refusal::InvalidToken).await);
        };
        let Some(invite) = state
            .db
            .invite(&invite_id)
            .await?
            .filter(|i| i.room_id == room_id && i.role == role)
        else {
            return Err(refuse(state, &client, stranger(), Refusal::InvalidToken).await);
        };
        let who = invite.id.to_string();
        let event = AuditEvent::new(
            Actor::Invite(invite.id.clone(), invite.role),
            Action::AccessDenied,
        )
        .room(&room_id)
        .object("invite", &invite.id)
        .detail(json!({"client": client, "token": "invite"}));
        // A care-team seat carries an account (and its token a session); an observer's link
        // is not the patient's.
        if invite.account.is_some() || claims.sid.is_some() || invite.role != Role::Patient {
            return Err(refuse(state, &who, event, Refusal::NotPatient).await);
        }
        if invite.revoked_at.is_some() {
            return Err(refuse(state, &who, event, Refusal::Revoked).await);
        }
        let Some(room) = state.db.room(&room_id).await? else {
            return Err(refuse(state, &who, event, Refusal::InvalidToken).await);
        };
        let until = outcome::available_until(
            room.ended_at,
            invite.created_at,
            state.config.rooms.outcome_days,
        );
        if claims.within(until, now_unix()).is_err() {
            return Err(refuse(state, &who, event, Refusal::Expired).await);
        }
        Ok(PatientLink {
            invite,
            room,
            until,
        })
    }
}

/// Assembles the outcome and puts its reading on the record first (a read that cannot be
/// traced is refused).
async fn load(
    state: &AppState,
    link: &PatientLink,
    action: Action,
    format: &str,
) -> Result<PatientOutcome, ApiError> {
    let o = outcome::assemble(
        &state.db,
        &state.records,
        link.room.clone(),
        &link.invite.id,
        link.until,
    )
    .await?;
    state
        .audit
        .record(link.event(action).detail(json!({
            "format": format,
            "reports": o.of_kind(RecordKind::DiagnosisReport).count(),
            "prescriptions": o.of_kind(RecordKind::Prescription).count(),
        })))
        .await?;
    Ok(o)
}

pub async fn get_outcome(
    State(state): State<AppState>,
    link: PatientLink,
) -> Result<Json<OutcomeView>, ApiError> {
    let o = load(&state, &link, Action::OutcomeViewed, "json").await?;
    Ok(Json(OutcomeView::from(&o)))
}

pub async fn outcome_pdf(
    State(state): State<AppState>,
    link: PatientLink,
) -> Result<Response, ApiError> {
    let o = load(&state, &link, Action::OutcomeDownloaded, "pdf").await?;
    let name = format!("outcome-{}.pdf", o.room.id);
    let zone = DisplayZone::configured(&state.config.display.time_zone)
        .unwrap_or_else(|_| DisplayZone::utc());
    // Writing and subsetting the font is CPU work: off the async runtime.
    let bytes = tokio::task::spawn_blocking(move || pdf::render_outcome(&o, &zone))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(attachment(bytes.into_response(), "application/pdf", name))
}
