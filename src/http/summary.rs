//! The consultation summary for clinicians after the call (docs/protocol.md, "Summary and
//! export"): as JSON, as a FHIR R4 Bundle and as a PDF. Each read is an audited export.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::api::{Clinician, room_for};
use super::error::ApiError;
use crate::audit::{Action, AuditEvent};
use crate::domain::time_zone::DisplayZone;
use crate::summary::{self, Reader, Summary, SummaryError};
use crate::wire::SummaryView;

impl From<SummaryError> for ApiError {
    fn from(e: SummaryError) -> Self {
        match e {
            SummaryError::NotFound => ApiError::NotFound,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Assembles the summary of a room this clinician may see, after auditing the export (a read
/// that cannot be traced is refused).
async fn load(
    state: &AppState,
    who: &Clinician,
    id: &str,
    format: &str,
) -> Result<Summary, ApiError> {
    let (room, relation) = room_for(state, who, id).await?;
    state
        .audit
        .record(
            AuditEvent::new(who.actor(), Action::Exported)
                .room(&room.id)
                .object("room", &room.id)
                .detail(json!({ "format": format })),
        )
        .await?;
    let reader = Reader {
        care_team: relation.care_team.is_some(),
        // The network's administrator and supervisor oversee every institution: the consent
        // is about sharing with the receiving hospital, not with them.
        outside: !relation.same_institution && !who.0.role.sees_all_rooms(),
    };
    Ok(summary::assemble(&state.db, &state.records, &room.id, reader).await?)
}

pub(super) fn attachment(
    mut response: Response,
    media_type: &'static str,
    filename: String,
) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

pub async fn get_summary(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
) -> Result<Json<SummaryView>, ApiError> {
    Ok(Json(SummaryView::from(
        &load(&state, &who, &id, "json").await?,
    )))
}

pub async fn export_fhir(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = load(&state, &who, &id, "fhir").await?;
    let name = format!("consultation-{}.fhir.json", s.room.id);
    Ok(attachment(
        Json(summary::fhir::bundle(&s)).into_response(),
        "application/fhir+json",
        name,
    ))
}

pub async fn export_pdf(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = load(&state, &who, &id, "pdf").await?;
    let name = format!("consultation-{}.pdf", s.room.id);
    let zone = DisplayZone::configured(&state.config.display.time_zone)
        .unwrap_or_else(|_| DisplayZone::utc());
    // Up to `pdf::MAX_SUMMARY_PAGES` pages and a font to subset: off the async runtime.
    let bytes = tokio::task::spawn_blocking(move || summary::pdf::render(&s, &zone))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(attachment(bytes.into_response(), "application/pdf", name))
}
