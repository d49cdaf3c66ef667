//! How pages are shown, for the web client: `GET /api/v1/display`, public (the join, code and
//! outcome pages ask it before anyone signs in), and the institution's logo,
//! `GET /api/v1/display/logo/{version}`.
//!
//! `/display` gives the institution's time zone (`display.time_zone`, else the server's own),
//! which `web-client/js/i18n.js` gives to `Intl.DateTimeFormat` so that every page shows times
//! in it rather than in the browser's; and its branding (`[branding]`: the name in both
//! languages, the logo's URL, the accent colour and the shades worked out for it), which
//! `web-client/js/branding.js` puts into each page's header and colour tokens.
//!
//! The logo is served from memory (read and checked once at start, `config::branding`), as the
//! PNG or JPEG its bytes are, with `nosniff`, a policy that lets it run nothing, and a cache
//! lifetime that depends on its URL: the URL `/display` gives names the logo's version, so it
//! is cached for a year; under another version (a page that learnt an older logo) the current
//! one is served and revalidated every time.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::config::branding::Brand;
use crate::domain::clock::now_unix_ms;
use crate::domain::time_zone::DisplayZone;

/// Where the pages find the logo: the route below, under the version that makes it cacheable.
const LOGO_PATH: &str = "/api/v1/display/logo";

pub async fn display(State(state): State<AppState>) -> Json<Value> {
    let zone = DisplayZone::configured(&state.config.display.time_zone)
        .unwrap_or_else(|_| DisplayZone::utc());
    Json(json!({
        // Empty for a zone without an IANA name (the client then keeps the browser's).
        "time_zone": zone.name().unwrap_or_default(),
        "utc_offset": zone.offset_at(now_unix_ms()),
        "branding": branding(&state.brand),
    }))
}

/// The branding as the pages read it; each part null when not configured (the page then
/// keeps its own).
fn branding(brand: &Brand) -> Value {
    json!({
        "name": brand.name.as_ref().map(|n| json!({"zh-CN": n.zh, "en": n.en})),
        "logo_url": brand.logo.as_ref().map(|l| format!("{LOGO_PATH}/{}", l.version)),
        "accent": brand.accent.as_ref().map(|a| json!({
            "color": a.color.hex(),
            "on_color": a.on_color.hex(),
            "ink_light": a.ink_light.hex(),
            "ink_dark": a.ink_dark.hex(),
        })),
    })
}

/// The logo under `version`, the one a page was given: any version gets the current logo, only
/// the current version is cached for long.
pub async fn logo(
    State(state): State<AppState>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(logo) = state.brand.logo.as_ref() else {
        return Err(ApiError::NotFound);
    };
    let etag = format!("\"{}\"", logo.version);
    let cache = if version == logo.version {
        // This URL names these bytes: a new logo is a new URL.
        "public, max-age=31536000, immutable"
    } else {
        "public, no-cache"
    };
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag
        });
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = logo.bytes.to_vec().into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(logo.kind.content_type()),
        );
        response
    };
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    // An image, never a document: opened on its own it runs nothing and loads nothing, and it
    // is the pages' own (no other site embeds it through a visitor's browser).
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    Ok(response)
}
