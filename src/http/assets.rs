//! The web client, embedded in the binary at build time so the single run command serves it.

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "web-client/"]
#[exclude = "node_modules/*"]
#[exclude = "*.json"]
struct WebClient;

/// Only pages and modules the browser needs; everything else is 404.
const SERVED_EXTENSIONS: &[&str] = &["html", "js", "css", "svg", "png", "ico", "webmanifest"];

/// `/` is the console, `/join` the participant app, `/code` where a patient types an
/// invitation's short code, `/outcome` the patient's outcome page; other paths map to files.
pub async fn serve(uri: Uri) -> Response {
    let path = match uri.path() {
        "/" => "index.html",
        "/join" => "join.html",
        "/code" => "code.html",
        "/outcome" => "outcome.html",
        p => p.trim_start_matches('/'),
    };
    let allowed = path
        .rsplit_once('.')
        .is_some_and(|(_, ext)| SERVED_EXTENSIONS.contains(&ext))
        && !path
            .split('/')
            .any(|seg| seg.is_empty() || seg == ".." || seg.starts_with('.'));
    let Some(file) = allowed.then(|| WebClient::get(path)).flatten() else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mime = file.metadata.mimetype();
    let mut response = file.data.into_owned().into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if path.ends_with(".html") {
        // Same-origin everything; media from getUserMedia and the server's WebRTC.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; \
                 connect-src 'self' wss:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
            ),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}
