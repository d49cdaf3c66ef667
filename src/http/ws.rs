//! The signaling WebSocket endpoint: origin check, connection cap, frame limits, then hands
//! the socket to [`crate::signaling::run_session`].

use std::sync::atomic::Ordering;

use std::net::SocketAddr;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use serde_json::json;

use super::AppState;
use crate::audit::{Action, Actor, AuditEvent};
use crate::signaling::run_session;

/// Initial read buffer per connection; it grows for the rare large message.
const READ_BUFFER: usize = 4096;

pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let client = super::api::client_pseudonym(&state, peer.ip());
    if !origin_allowed(&state, &headers) {
        tracing::info!("signaling refused: origin not allowed");
        // A page on another site trying to use a visitor's browser against this server.
        let event = AuditEvent::new(Actor::Unknown, Action::AccessDenied)
            .detail(json!({"step": "websocket", "client": client}));
        state.audit.refused(&client, "foreign_origin", event).await;
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let Ok(permit) = state.connections.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections").into_response();
    };
    let limit = state.config.limits.max_message_bytes;
    let conn = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let ctx = state.signaling.clone();
    // The session enforces `limit` itself with a typed error; the transport's own cap is
    // higher so that a slightly oversize message gets that error instead of a dropped socket.
    ws.max_message_size(limit.saturating_mul(4))
        .max_frame_size(limit.saturating_mul(4))
        // Signaling messages are small and rare; the WebSocket layer's 128 KiB default buffers
        // would make every idle participant cost more than its peer connection.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            run_session(socket, ctx, conn, client).await;
            drop(permit);
        })
}

/// Browsers always send Origin on WebSockets; it must be this server (as the client reached
/// it, or `public_url`) or a configured origin. Non-browser clients send none and are let
/// through: the check protects browsers from cross-site use of their tokens.
fn origin_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    let cfg = &state.config.server;
    if cfg
        .allowed_origins
        .iter()
        .any(|o| o.trim_end_matches('/') == origin)
    {
        return true;
    }
    if !cfg.public_url.is_empty() && cfg.public_url.trim_end_matches('/') == origin {
        return true;
    }
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|host| origin == format!("https://{host}"))
}
