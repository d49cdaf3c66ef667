//! How times are shown to people, for the web client: `GET /api/v1/display`, public (the
//! join, code and outcome pages ask it before anyone signs in). The institution's time zone
//! (`display.time_zone`, else the server's own), which `web-client/js/i18n.js` gives to
//! `Intl.DateTimeFormat` so that every page shows times in it rather than in the browser's.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use crate::domain::clock::now_unix_ms;
use crate::domain::time_zone::DisplayZone;

pub async fn display(State(state): State<AppState>) -> Json<Value> {
    let zone = DisplayZone::configured(&state.config.display.time_zone)
        .unwrap_or_else(|_| DisplayZone::utc());
    Json(json!({
        // Empty for a zone without an IANA name (the client then keeps the browser's).
        "time_zone": zone.name().unwrap_or_default(),
        "utc_offset": zone.offset_at(now_unix_ms()),
    }))
}
