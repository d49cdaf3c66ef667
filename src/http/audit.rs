//! The audit trail for supervisors and regulators (docs/protocol.md, "Audit"): read-only
//! listing, verification of the hash chain, and a JSON Lines export. An institution's
//! supervisor reads what concerns their institution, the network's supervisor everything.
//! Reading it is itself recorded.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::api::{ApiQuery, Clinician};
use super::error::ApiError;
use crate::audit::{Action, Actor, AuditEvent, Verification};
use crate::domain::ids::{InstitutionId, RoomId};

const MAX_PAGE: i64 = 1000;

async fn supervisor(state: &AppState, c: &Clinician) -> Result<Actor, ApiError> {
    if !c.0.role.may_read_audit() {
        let event = AuditEvent::new(c.actor(), Action::AccessDenied).object("audit", "trail");
        state
            .audit
            .refused(c.0.id.as_str(), "audit_not_supervisor", event)
            .await;
        return Err(ApiError::Forbidden);
    }
    Ok(Actor::User(c.0.id.clone(), c.0.role))
}

/// The part of the trail `c` reads: `None` for all of it.
fn scope(c: &Clinician) -> Option<&InstitutionId> {
    (!c.0.role.reads_whole_audit_trail()).then_some(&c.0.institution_id)
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    after: i64,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    room: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    who: Clinician,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let actor = supervisor(&state, &who).await?;
    let room = match q.room.as_deref() {
        Some(r) => Some(RoomId::parse(r).ok_or(ApiError::NotFound)?),
        None => None,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let mut event = AuditEvent::new(actor, Action::AuditRead)
        .detail(json!({"op": "list", "scope": scope_name(&who)}));
    if let Some(r) = &room {
        event = event.room(r);
    }
    state.audit.record(event).await?;
    let entries = state
        .audit
        .entries_for(
            q.after.max(0),
            limit,
            room.as_ref().map(RoomId::as_str),
            scope(&who),
        )
        .await?;
    let next_after = entries.last().map(|e| e.seq);
    Ok(Json(
        json!({ "entries": entries, "next_after": next_after }),
    ))
}

pub async fn verify(
    State(state): State<AppState>,
    who: Clinician,
) -> Result<Json<Verification>, ApiError> {
    let actor = supervisor(&state, &who).await?;
    let result = state.audit.verify().await?;
    state
        .audit
        .record(AuditEvent::new(actor, Action::AuditRead).detail(json!({
            "op": "verify",
            "ok": result.ok(),
            "entries": result.entries,
        })))
        .await?;
    Ok(Json(result))
}

pub async fn export(State(state): State<AppState>, who: Clinician) -> Result<Response, ApiError> {
    let actor = supervisor(&state, &who).await?;
    let pages = state.audit.export(scope(&who));
    state
        .audit
        .record(
            AuditEvent::new(actor, Action::AuditRead)
                .detail(json!({"op": "export", "scope": scope_name(&who)})),
        )
        .await?;
    // Streamed a page at a time: a failure part-way ends the response without its final
    // chunk, which a client sees as a broken download, not as a short export.
    let body = Body::from_stream(pages.map(|page| page.map_err(std::io::Error::other)));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"huizhen-audit.jsonl\""),
    );
    Ok(response)
}

/// How an audit read is recorded: `network`, or `institution`.
fn scope_name(c: &Clinician) -> &'static str {
    if scope(c).is_some() {
        "institution"
    } else {
        "network"
    }
}
