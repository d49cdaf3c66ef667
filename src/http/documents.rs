//! Documents over HTTP (docs/protocol.md, "Documents"): resumable uploads, listing, viewing,
//! downloading, ECG samples and annotations. Every refusal and every read is audited; a read
//! whose audit entry cannot be written is not served.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::api::{ApiJson, ApiQuery};
use super::error::ApiError;
use super::member::RoomMember;
use crate::audit::{Action, AuditEvent, Outcome};
use crate::documents::{BeginUpload, ChunkOutcome, DocumentError, UploadStatus};
use crate::domain::consent::ConsentPurpose;
use crate::domain::ids::{DocumentId, UploadId};
use crate::storage::DocumentRecord;
use crate::wire::{self, AnnotationView, DocumentView};

fn upload_id(s: &str) -> Result<UploadId, ApiError> {
    UploadId::parse(s).ok_or(ApiError::NotFound)
}

fn document_id(s: &str) -> Result<DocumentId, ApiError> {
    DocumentId::parse(s).ok_or(ApiError::NotFound)
}

/// A stable, short reason for the audit entry of a refused upload.
fn refusal_reason(e: &DocumentError) -> Option<&'static str> {
    Some(match e {
        DocumentError::Forbidden(_) => "forbidden",
        DocumentError::TooLarge { .. } | DocumentError::ChunkTooLarge { .. } => "too_large",
        DocumentError::Invalid(_) => "invalid",
        DocumentError::LimitReached(_) => "limit_reached",
        DocumentError::HashMismatch => "hash_mismatch",
        DocumentError::Unsupported(_) => "unsupported_type",
        _ => return None,
    })
}

/// Records a refused upload, then hands the error on.
async fn refused(
    state: &AppState,
    who: &RoomMember,
    upload: Option<&UploadId>,
    e: DocumentError,
) -> ApiError {
    if let Some(reason) = refusal_reason(&e) {
        let detail = match &e {
            // Which quota, so the trail shows whether someone keeps hitting the same one.
            DocumentError::LimitReached(limit) => {
                json!({ "reason": reason, "limit": limit.name() })
            }
            _ => json!({ "reason": reason }),
        };
        let mut event = who
            .event(Action::DocumentRejected)
            .outcome(Outcome::Denied)
            .detail(detail);
        if let Some(id) = upload {
            event = event.object("upload", id);
        }
        // Rate-limited: a participant cannot flood the trail with bad uploads.
        state
            .audit
            .refused(who.member.participant.as_str(), reason, event)
            .await;
    }
    e.into()
}

pub async fn begin_upload(
    State(state): State<AppState>,
    who: RoomMember,
    ApiJson(body): ApiJson<BeginUpload>,
) -> Result<(StatusCode, Json<UploadStatus>), ApiError> {
    // Documents shared with another institution's clinicians need the patient's consent.
    if state.db.care_team_spans_institutions(&who.room).await?
        && !state
            .db
            .consent_in_force(&who.room, ConsentPurpose::ExternalSharing)
            .await?
    {
        let event = who
            .event(Action::DocumentRejected)
            .outcome(Outcome::Denied)
            .detail(json!({"reason": "consent_required", "purpose": "external_sharing"}));
        state
            .audit
            .refused(who.member.participant.as_str(), "consent_required", event)
            .await;
        return Err(ApiError::ConsentRequired(
            "the care team includes another hospital's doctors: the patient has not agreed to \
             sharing documents with them"
                .into(),
        ));
    }
    match state.documents.begin(&who.room, &who.member, body).await {
        Ok(status) => Ok((StatusCode::CREATED, Json(status))),
        Err(e) => Err(refused(&state, &who, None, e).await),
    }
}

pub async fn upload_status(
    State(state): State<AppState>,
    who: RoomMember,
    Path((_, upload)): Path<(String, String)>,
) -> Result<Json<UploadStatus>, ApiError> {
    let id = upload_id(&upload)?;
    Ok(Json(
        state.documents.status(&who.room, &who.member, &id).await?,
    ))
}

#[derive(Deserialize)]
pub struct ChunkQuery {
    offset: u64,
}

pub async fn put_chunk(
    State(state): State<AppState>,
    who: RoomMember,
    Path((_, upload)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<ChunkQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = upload_id(&upload)?;
    let chunk = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::TooLarge(format!(
                "a chunk may be at most {} bytes",
                state.documents.config().max_chunk_bytes
            ))
        }
        other => ApiError::Invalid(other.body_text()),
    })?;
    match state
        .documents
        .put_chunk(&who.room, &who.member, &id, q.offset, chunk)
        .await
    {
        Ok(ChunkOutcome::Partial(status)) => Ok(Json(status).into_response()),
        Ok(ChunkOutcome::Complete(document)) => {
            let event = who
                .event(Action::DocumentShared)
                .object("document", &document.id)
                .sha256(&document.sha256)
                .detail(json!({
                    "kind": document.kind,
                    "size": document.size,
                    "visibility": document.visibility,
                }));
            state.audit.record_or_log(event).await;
            tracing::info!(room = %who.room, document = %document.id, kind = document.kind.as_str(), "document shared");
            state.rooms.document_shared(document.clone()).await;
            Ok((
                StatusCode::CREATED,
                Json(json!({ "document": DocumentView::from(&document) })),
            )
                .into_response())
        }
        Err(e) => Err(refused(&state, &who, Some(&id), e).await),
    }
}

pub async fn cancel_upload(
    State(state): State<AppState>,
    who: RoomMember,
    Path((_, upload)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = upload_id(&upload)?;
    state.documents.cancel(&who.room, &who.member, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_documents(
    State(state): State<AppState>,
    who: RoomMember,
) -> Result<Json<Value>, ApiError> {
    let mut documents = state.documents.visible(&who.room, who.member.role).await?;
    let withheld = withheld_from(&state, &who).await?;
    documents.retain(|d| !withheld.contains(&d.id));
    Ok(Json(
        json!({ "documents": wire::all::<_, DocumentView>(&documents) }),
    ))
}

/// The documents of this room that `who` may not read now: for a clinician of another
/// institution than the room's, those the patient has not agreed to share with them
/// (`Db::withheld_documents`: the request's attachments without the consent on the request,
/// and what the room's own side shared, without a room patient's `external_sharing` consent).
/// Whoever came with a link is no other institution's clinician: their role's rules decide.
/// The room's signaling state follows the same rule (`rooms/room/sharing.rs`).
async fn withheld_from(
    state: &AppState,
    who: &RoomMember,
) -> Result<std::collections::HashSet<DocumentId>, ApiError> {
    let Some(account) = &who.member.account else {
        return Ok(Default::default());
    };
    let withheld = state.db.withheld_documents(&who.room).await?;
    if withheld.is_empty() {
        return Ok(withheld);
    }
    let Some(room) = state.db.room(&who.room).await? else {
        return Ok(withheld);
    };
    let inside = state
        .db
        .user(account)
        .await?
        .is_some_and(|u| u.institution_id == room.institution_id);
    Ok(if inside { Default::default() } else { withheld })
}

/// An audit event about `doc` by this participant: the document and its SHA-256 named.
fn document_event(who: &RoomMember, action: Action, doc: &DocumentRecord) -> AuditEvent {
    who.event(action)
        .object("document", &doc.id)
        .sha256(&doc.sha256)
}

/// The document if the caller may see it; a refusal is audited.
async fn visible_document(
    state: &AppState,
    who: &RoomMember,
    id: &str,
) -> Result<DocumentRecord, ApiError> {
    let id = document_id(id)?;
    match state.documents.get(&who.room, &id, who.member.role).await {
        Ok(doc) if withheld_from(state, who).await?.contains(&doc.id) => {
            let event = who
                .event(Action::DocumentViewed)
                .object("document", &id)
                .outcome(Outcome::Denied)
                .detail(json!({"purpose": "external_sharing", "referral": true}));
            state
                .audit
                .refused(who.member.participant.as_str(), "consent_required", event)
                .await;
            Err(ApiError::ConsentRequired(
                "this document came with a consultation request from another hospital, and the \
                 patient has not agreed (or no longer agrees) to sharing it with your hospital"
                    .into(),
            ))
        }
        Ok(doc) => Ok(doc),
        Err(e @ DocumentError::Forbidden(_)) => {
            let event = who.event(Action::AccessDenied).object("document", &id);
            state
                .audit
                .refused(
                    who.member.participant.as_str(),
                    "document_not_visible",
                    event,
                )
                .await;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// A visible document's checked bytes, for the viewer's renders.
async fn viewable(
    state: &AppState,
    doc: &DocumentRecord,
) -> Result<crate::documents::Viewable, ApiError> {
    Ok(state.documents.viewable(&doc.sha256, doc.kind).await?)
}

pub async fn get_document(
    State(state): State<AppState>,
    who: RoomMember,
    Path((_, doc)): Path<(String, String)>,
) -> Result<Json<DocumentView>, ApiError> {
    Ok(Json(DocumentView::from(
        &visible_document(&state, &who, &doc).await?,
    )))
}

#[derive(Deserialize)]
pub struct ContentQuery {
    #[serde(default)]
    download: Option<u8>,
}

pub async fn document_content(
    State(state): State<AppState>,
    who: RoomMember,
    Path((_, doc)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<ContentQuery>,
) -> Result<Response, ApiError> {
    let download = q.download.unwrap_or(0) != 0;
    let doc = visible_document(&state, &who, &doc).await?;
    let action = if download {
        Action::DocumentDownloaded
    } else {
        Action::DocumentViewed
    };
    let event = document_event(&who, action, &doc);
    let path = match state.documents.read(&doc, who.member.role, download).await {
        Ok(path) => path,
        Err(e) => {
            let outcome = match e {
                DocumentError::Forbidden(_) => Outcome::Denied,
                _ => Outcome::Error,
            };
            state.audit.record_or_log(event.outcome(outcome)).await;
            return Err(e.into());
        }
    };
    // Fail closed: a read that cannot be traced is not served.
    state.audit.record(event).await?;
    blob_response(&path, &doc.name, doc.kind, doc.size, &doc.sha256, download).await
}

/// A stored document's bytes as a response: its type, length, name and hash, inline or as a
/// download; never cached, never run as a page.
pub(super) async fn blob_response(
    path: &std::path::Path,
    name: &str,
    kind: crate::domain::document::DocumentKind,
    size: i64,
    sha256: &str,
    download: bool,
) -> Result<Response, ApiError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let disposition = format!(
        "{}; filename*=UTF-8''{}",
        if download { "attachment" } else { "inline" },
        percent_encode(name)
    );
    let mut response = Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(kind.media_type()),
    );
    headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(u64::try_from(size).unwrap_or(0)),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{sha256}\"")) {
        headers.insert(header::ETAG, v);
    }
    // Patient data: never cached, never run as a page even if it is text that looks like one.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    Ok(response)
}

pub async fn document_ecg(
    State(state): State<AppState>,
    who: RoomMember,
    Path((_, doc)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let doc = visible_document(&state, &who, &doc).await?;
    let ecg = state.documents.ecg(&viewable(&state, &doc).await?).await?;
    state
        .audit
        .record(document_event(&who, Action::DocumentViewed, &doc))
        .await?;
    Ok(Json(ecg).into_response())
}

pub async fn document_dicom(
    State(state): State<AppState>,
    who: RoomMember,
    Path((_, doc)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let doc = visible_document(&state, &who, &doc).await?;
    let info = state
        .documents
        .dicom_info(&viewable(&state, &doc).await?)
        .await?;
    state
        .audit
        .record(
            document_event(&who, Action::DocumentViewed, &doc)
                .detail(json!({ "part": "dicom_header" })),
        )
        .await?;
    Ok(Json(info).into_response())
}

pub async fn document_pages(
    State(state): State<AppState>,
    who: RoomMember,
    Path((_, doc)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let doc = visible_document(&state, &who, &doc).await?;
    let pages = state
        .documents
        .page_count(&viewable(&state, &doc).await?)
        .await?;
    Ok(Json(json!({ "pages": pages })))
}

#[derive(Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    pub(super) scale: Option<f32>,
}

pub async fn document_page(
    State(state): State<AppState>,
    who: RoomMember,
    Path((_, doc, page)): Path<(String, String, usize)>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let doc = visible_document(&state, &who, &doc).await?;
    let png = state
        .documents
        .page_png(
            &viewable(&state, &doc).await?,
            page,
            q.scale.unwrap_or(crate::documents::render::DEFAULT_SCALE),
        )
        .await?;
    // Fail closed, as for the whole document: a page that cannot be traced is not shown.
    state
        .audit
        .record(document_event(&who, Action::DocumentViewed, &doc).detail(json!({ "page": page })))
        .await?;
    Ok(png_response(png))
}

/// A rendered page as a response: a PNG of patient data, never cached.
pub(super) fn png_response(png: Vec<u8>) -> Response {
    let mut response = png.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub async fn document_annotations(
    State(state): State<AppState>,
    who: RoomMember,
    Path((_, doc)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let doc = visible_document(&state, &who, &doc).await?;
    let annotations = state
        .documents
        .annotations(&who.room, &doc.id, who.member.role)
        .await?;
    Ok(Json(
        json!({ "annotations": wire::all::<_, AnnotationView>(&annotations) }),
    ))
}

/// RFC 8187 encoding for `filename*`: everything but unreserved ASCII is %-escaped, so no name
/// can break out of the header.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
