//! The HTTP API's description: docs/openapi.json, a hand-written OpenAPI 3.1 document, served
//! as written. `tests/openapi.rs` checks it against the routes of [`super::router`]
//! (docs/ARCHITECTURE.md, "Libraries, and the hand-written code still waiting for one", says
//! why it is written by hand).

use axum::http::header;
use axum::response::IntoResponse;

/// The document, compiled in.
pub const DOCUMENT: &str = include_str!("../../docs/openapi.json");

/// `GET /api/v1/openapi.json`: no session; `no-store` like the rest of the API, so a client
/// never keeps the description of a server since upgraded.
pub async fn document() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        DOCUMENT,
    )
}
