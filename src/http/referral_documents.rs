//! A consultation request's documents over HTTP (docs/protocol.md, "Referral documents"):
//! attach a file (the body, received whole), attach a document of the patient's earlier
//! consultations, list, read (the bytes, or the viewer's pages, ECG and DICOM header, rendered
//! as a room's documents are), remove. The rules are `crate::referrals::documents`'; this file
//! reads requests, writes the audit trail (every attachment, read and removal, and every
//! refusal that may be misuse) and tells a live room of a document that joined it.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::AppState;
use super::api::{ApiJson, ApiQuery, Clinician};
use super::documents::PageQuery;
use super::error::ApiError;
use crate::audit::{Action, AuditEvent};
use crate::documents::{DocumentError, Documents, Viewable};
use crate::domain::ids::{DocumentId, ReferralDocumentId, ReferralId, RoomId};
use crate::referrals::ReferralServiceError;
use crate::referrals::documents::{Attached, AttachmentError, Attachments};
use crate::storage::{AttachmentSource, PatientDocument, ReferralDocumentRow};
use crate::wire::DocumentView;

pub(super) fn service(state: &AppState) -> Attachments {
    Attachments::new(state.db.clone(), state.documents.clone())
}

fn referral_id(s: &str) -> Result<ReferralId, ApiError> {
    ReferralId::parse(s).ok_or(ApiError::NotFound)
}

fn attachment_id(s: &str) -> Result<ReferralDocumentId, ApiError> {
    ReferralDocumentId::parse(s).ok_or(ApiError::NotFound)
}

/// An attachment as both sides see it.
pub fn attachment_view(a: &ReferralDocumentRow) -> Value {
    let mut v = json!({
        "id": a.id,
        "name": a.name,
        "kind": a.kind,
        "size": a.size,
        "sha256": a.sha256,
        "source": a.source.as_str(),
        "attached_by": a.attached_by,
        "attached_at": a.attached_at,
        "room_document_id": a.room_document,
    });
    if let AttachmentSource::Consultation { room, document } = &a.source {
        v["source_room_id"] = json!(room);
        v["source_document_id"] = json!(document);
    }
    v
}

fn candidate_view(p: &PatientDocument) -> Value {
    json!({
        "room_id": p.document.room_id,
        "room_title": p.room_title,
        "room_created_at": p.room_created_at,
        "document": DocumentView::from(&p.document),
    })
}

/// Records a refusal that may be misuse, then hands it on: a request or a document that is
/// not theirs is an `access.denied` (probing); a step the rules refuse is the attempted
/// action, denied, with the code as its reason. Rate-limited per account and reason.
async fn refuse(
    state: &AppState,
    who: &Clinician,
    attempted: Action,
    id: &ReferralId,
    e: AttachmentError,
) -> ApiError {
    let reason = match &e {
        AttachmentError::Referral(ReferralServiceError::NotVisible) => Some("referral_not_visible"),
        AttachmentError::SourceNotVisible => Some("document_not_visible"),
        AttachmentError::Referral(_) | AttachmentError::Storage(_) => None,
        AttachmentError::NotFound => None,
        AttachmentError::Document(DocumentError::Io(_) | DocumentError::Blob(_)) => None,
        other => Some(match other {
            AttachmentError::Document(d) => match d {
                DocumentError::Unsupported(_) => "unsupported_type",
                DocumentError::TooLarge { .. } => "too_large",
                DocumentError::LimitReached(_) => "limit_reached",
                DocumentError::Corrupt => "integrity_failed",
                _ => "invalid",
            },
            other => other.code(),
        }),
    };
    if let Some(reason) = reason {
        let probing = matches!(
            e,
            AttachmentError::Referral(ReferralServiceError::NotVisible)
                | AttachmentError::SourceNotVisible
        );
        // `refused` marks it denied and adds the reason.
        let event = if probing {
            AuditEvent::new(who.actor(), Action::AccessDenied)
                .object("referral", id)
                .detail(json!({"attempted": attempted.as_str()}))
        } else if matches!(e, AttachmentError::ConsentRequired(_)) {
            AuditEvent::new(who.actor(), attempted)
                .object("referral", id)
                .detail(json!({"purpose": "external_sharing"}))
        } else {
            AuditEvent::new(who.actor(), attempted).object("referral", id)
        };
        state.audit.refused(who.0.id.as_str(), reason, event).await;
    }
    e.into()
}

/// A request's attachment became a document of its live room: audited as a share by `who`
/// (the detail's `extra` added to what every share records), and the room told.
pub(super) async fn copy_shared(
    state: &AppState,
    who: &Clinician,
    doc: crate::storage::DocumentRecord,
    referral: &ReferralId,
    extra: Value,
) {
    let mut detail = json!({
        "kind": doc.kind,
        "size": doc.size,
        "visibility": doc.visibility,
        "referral": referral,
    });
    if let (Some(detail), Value::Object(extra)) = (detail.as_object_mut(), extra) {
        detail.extend(extra);
    }
    let event = AuditEvent::new(who.actor(), Action::DocumentShared)
        .room(&doc.room_id)
        .object("document", &doc.id)
        .sha256(&doc.sha256)
        .detail(detail);
    state.audit.record_or_log(event).await;
    state.rooms.request_document_shared(doc).await;
}

/// Audits an attachment (and the room document it became), tells the live room, answers.
async fn attached(
    state: &AppState,
    who: &Clinician,
    a: Attached,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let att = &a.attachment;
    let mut detail = json!({
        "attachment": att.id,
        "source": att.source.as_str(),
        "kind": att.kind,
        "size": att.size,
    });
    if let AttachmentSource::Consultation { room, document } = &att.source {
        detail["source_room"] = json!(room);
        detail["source_document"] = json!(document);
    }
    let mut event = AuditEvent::new(who.actor(), Action::ReferralDocumentAttached)
        .object("referral", &a.referral.id)
        .sha256(&att.sha256)
        .detail(detail);
    if let Some(room) = &a.referral.room_id {
        event = event.room(room);
    }
    state.audit.record_or_log(event).await;
    if let Some(doc) = &a.room_document {
        copy_shared(state, who, doc.clone(), &a.referral.id, json!({})).await;
    }
    tracing::info!(referral = %a.referral.id, attachment = %att.id, kind = att.kind.as_str(), "document attached to a consultation request");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "document": attachment_view(att) })),
    ))
}

/// `GET /api/v1/referrals/{id}/documents`: the request's attachments, for either side.
pub async fn list(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = referral_id(&id)?;
    match service(&state).list(&id, &who.0).await {
        Ok(list) => Ok(Json(
            json!({ "documents": list.iter().map(attachment_view).collect::<Vec<_>>() }),
        )),
        Err(e) => Err(refuse(&state, &who, Action::ReferralDocumentRead, &id, e).await),
    }
}

#[derive(Deserialize)]
pub struct UploadQuery {
    /// Missing: refused by the name rule, with its words.
    #[serde(default)]
    name: String,
}

/// Streams the request body into a private staging file, at most `max` bytes.
async fn stage(state: &AppState, body: Body, max: u64) -> Result<std::path::PathBuf, ApiError> {
    let dir = state.documents.incoming_dir();
    let path = dir.join(format!("{}.part", ReferralDocumentId::generate()));
    let written = async {
        let mut file = tokio::fs::File::create(&path).await?;
        let mut stream = body.into_data_stream();
        let mut total: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(std::io::Error::other)?;
            total += chunk.len() as u64;
            if total > max {
                return Ok(false);
            }
            file.write_all(&chunk).await?;
        }
        file.sync_data().await?;
        Ok::<bool, std::io::Error>(true)
    }
    .await;
    match written {
        Ok(true) => Ok(path),
        Ok(false) => {
            let _ = tokio::fs::remove_file(&path).await;
            Err(DocumentError::TooLarge { limit: max }.into())
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            // A body cut short by the client is not the server's failure.
            Err(ApiError::Invalid(format!(
                "the document could not be received: {e}"
            )))
        }
    }
}

/// `POST /api/v1/referrals/{id}/documents?name=…`: attaches the body (the file, whole).
pub async fn upload(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = referral_id(&id)?;
    let svc = service(&state);
    // Refused before a byte is stored when the request is not theirs to add to.
    if let Err(e) = svc.may_attach(&id, &who.0).await {
        return Err(refuse(&state, &who, Action::ReferralDocumentAttached, &id, e).await);
    }
    // Held until the staged file is stored or removed (`attach_upload` does either).
    let _receiving = match state.documents.receive_whole(&who.0.id) {
        Ok(r) => r,
        Err(e) => {
            let e = AttachmentError::Document(e);
            return Err(refuse(&state, &who, Action::ReferralDocumentAttached, &id, e).await);
        }
    };
    let staged = stage(&state, body, state.config.documents.max_upload_bytes).await?;
    match svc.attach_upload(&id, &who.0, staged, &q.name).await {
        Ok(a) => attached(&state, &who, a).await,
        Err(e) => Err(refuse(&state, &who, Action::ReferralDocumentAttached, &id, e).await),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FromConsultationBody {
    room_id: RoomId,
    document_id: DocumentId,
}

/// `POST /api/v1/referrals/{id}/documents/from-consultation`: attaches a document of one of
/// the patient's earlier consultations.
pub async fn from_consultation(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<FromConsultationBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = referral_id(&id)?;
    match service(&state)
        .attach_from_consultation(&id, &who.0, &b.room_id, &b.document_id)
        .await
    {
        Ok(a) => attached(&state, &who, a).await,
        Err(e) => Err(refuse(&state, &who, Action::ReferralDocumentAttached, &id, e).await),
    }
}

/// `GET /api/v1/referrals/{id}/documents/candidates`: what the requester may attach from the
/// patient's earlier consultations.
pub async fn candidates(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = referral_id(&id)?;
    match service(&state).candidates(&id, &who.0).await {
        Ok(list) => Ok(Json(
            json!({ "documents": list.iter().map(candidate_view).collect::<Vec<_>>() }),
        )),
        Err(e) => Err(refuse(&state, &who, Action::ReferralDocumentRead, &id, e).await),
    }
}

#[derive(Deserialize)]
pub struct ContentQuery {
    #[serde(default)]
    download: Option<u8>,
}

/// `GET /api/v1/referrals/{id}/documents/{doc}/content`: the attachment's bytes, checked,
/// for either side; every read is on the record before it is served.
pub async fn content(
    State(state): State<AppState>,
    who: Clinician,
    Path((id, doc)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<ContentQuery>,
) -> Result<Response, ApiError> {
    let id = referral_id(&id)?;
    let doc = attachment_id(&doc)?;
    let (referral, a, path) = match service(&state).open(&id, &doc, &who.0).await {
        Ok(found) => found,
        Err(e) => return Err(refuse(&state, &who, Action::ReferralDocumentRead, &id, e).await),
    };
    let download = q.download.unwrap_or(0) != 0;
    let mut event = AuditEvent::new(who.actor(), Action::ReferralDocumentRead)
        .object("referral", &referral.id)
        .sha256(&a.sha256)
        .detail(json!({"attachment": a.id, "kind": a.kind, "download": download}));
    if let Some(room) = &referral.room_id {
        event = event.room(room);
    }
    // Fail closed: a read that cannot be traced is not served.
    state.audit.record(event).await?;
    super::documents::blob_response(&path, &a.name, a.kind, a.size, &a.sha256, download).await
}

/// What of an attachment the viewer shows, as its read's audit entry names it.
#[derive(Debug, Clone, Copy)]
enum View {
    /// The page count.
    Pages,
    /// One page's image.
    Page(usize),
    /// An ECG's samples.
    Ecg,
    /// A DICOM file's header fields.
    DicomHeader,
}

impl View {
    fn detail(self) -> Value {
        match self {
            View::Pages => json!({"view": "pages"}),
            View::Page(n) => json!({"view": "page", "page": n}),
            View::Ecg => json!({"view": "ecg"}),
            View::DicomHeader => json!({"view": "dicom_header"}),
        }
    }
}

/// Shows an attachment in the viewer: `render` makes what is shown from the checked file,
/// through the room's render gate, limits and cache (`crate::documents`); the read is on the
/// record before it is served (fail closed). Whoever may not read the attachment is refused
/// as for its bytes; a render refusal (a limit, a busy server) shows nothing and is answered
/// as the room's viewer answers it.
async fn shown<T, F, Fut>(
    state: &AppState,
    who: &Clinician,
    (id, doc): (String, String),
    view: View,
    render: F,
) -> Result<T, ApiError>
where
    F: FnOnce(Documents, Viewable) -> Fut,
    Fut: std::future::Future<Output = Result<T, DocumentError>>,
{
    let id = referral_id(&id)?;
    let doc = attachment_id(&doc)?;
    let (referral, a, file) = match service(state).view(&id, &doc, &who.0).await {
        Ok(found) => found,
        Err(e) => return Err(refuse(state, who, Action::ReferralDocumentRead, &id, e).await),
    };
    let out = render(state.documents.clone(), file).await?;
    let mut detail = view.detail();
    detail["attachment"] = json!(a.id);
    detail["kind"] = json!(a.kind);
    let mut event = AuditEvent::new(who.actor(), Action::ReferralDocumentRead)
        .object("referral", &referral.id)
        .sha256(&a.sha256)
        .detail(detail);
    if let Some(room) = &referral.room_id {
        event = event.room(room);
    }
    // Fail closed: a view that cannot be traced is not shown.
    state.audit.record(event).await?;
    Ok(out)
}

/// `GET /api/v1/referrals/{id}/documents/{doc}/pages`: how many pages the viewer can show (a
/// PDF's; one for an image or a DICOM file).
pub async fn pages(
    State(state): State<AppState>,
    who: Clinician,
    Path(ids): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let pages = shown(&state, &who, ids, View::Pages, |d, f| async move {
        d.page_count(&f).await
    })
    .await?;
    Ok(Json(json!({ "pages": pages })))
}

/// `GET /api/v1/referrals/{id}/documents/{doc}/pages/{page}?scale=…`: one page of a PDF (or
/// a DICOM file's first frame) as a PNG image.
pub async fn page(
    State(state): State<AppState>,
    who: Clinician,
    Path((id, doc, page)): Path<(String, String, usize)>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let scale = q.scale.unwrap_or(crate::documents::render::DEFAULT_SCALE);
    let png = shown(
        &state,
        &who,
        (id, doc),
        View::Page(page),
        |d, f| async move { d.page_png(&f, page, scale).await },
    )
    .await?;
    Ok(super::documents::png_response(png))
}

/// `GET /api/v1/referrals/{id}/documents/{doc}/ecg`: an ECG attachment's samples.
pub async fn ecg(
    State(state): State<AppState>,
    who: Clinician,
    Path(ids): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let ecg = shown(&state, &who, ids, View::Ecg, |d, f| async move {
        d.ecg(&f).await
    })
    .await?;
    Ok(Json(ecg).into_response())
}

/// `GET /api/v1/referrals/{id}/documents/{doc}/dicom`: a DICOM attachment's key header fields.
pub async fn dicom(
    State(state): State<AppState>,
    who: Clinician,
    Path(ids): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let info = shown(&state, &who, ids, View::DicomHeader, |d, f| async move {
        d.dicom_info(&f).await
    })
    .await?;
    Ok(Json(info).into_response())
}

/// `DELETE /api/v1/referrals/{id}/documents/{doc}`: removes an attachment that is not in the
/// consultation's room yet.
pub async fn remove(
    State(state): State<AppState>,
    who: Clinician,
    Path((id, doc)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = referral_id(&id)?;
    let doc = attachment_id(&doc)?;
    match service(&state).remove(&id, &doc, &who.0).await {
        Ok((referral, a)) => {
            state
                .audit
                .record_or_log(
                    AuditEvent::new(who.actor(), Action::ReferralDocumentRemoved)
                        .object("referral", &referral.id)
                        .sha256(&a.sha256)
                        .detail(json!({"attachment": a.id, "kind": a.kind})),
                )
                .await;
            Ok(StatusCode::NO_CONTENT)
        }
        Err(e) => Err(refuse(&state, &who, Action::ReferralDocumentRemoved, &id, e).await),
    }
}
