//! The request-rate limit on the API's doors for people holding only a link (the invitation
//! check, short-code redemption, the patient's outcome page and its PDF): past
//! `limits.public_requests_per_minute` from one address, a request is refused with 429
//! `too_many_requests` and `Retry-After` before its handler runs, and the refusal is audited
//! (through the audit's own flood limit). The counting is [`crate::auth::RequestRate`]'s.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, OriginalUri, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::api::client_pseudonym;
use super::error::ApiError;
use crate::audit::{Action, Actor, AuditEvent};

pub async fn limit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let Err(limited) = state.public_rate.take(peer.ip(), Instant::now()) else {
        return next.run(request).await;
    };
    let client = client_pseudonym(&state, peer.ip());
    // The path only (the whole one: the nested router sees it without `/api/v1`): these
    // routes carry their links in bodies and headers, never in the URL.
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().path(), |uri| uri.path());
    let event = AuditEvent::new(Actor::Unknown, Action::AccessDenied).detail(json!({
        "attempted": path,
        "client": client,
    }));
    state
        .audit
        .refused(&client, "too_many_requests", event)
        .await;
    tracing::info!("request refused: too many from one address");
    ApiError::TooManyRequests(limited.retry_after.as_secs()).into_response()
}
