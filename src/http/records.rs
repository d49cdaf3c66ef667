//! Clinical records over HTTP (docs/protocol.md, "Records"): participants create, edit and issue
//! notes, diagnosis reports and prescriptions in their room; pharmacists work the prescription
//! queue. Every step, and every refusal, is audited; the room is told so everyone allowed sees
//! the change live.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::api::{ApiJson, Clinician};
use super::error::ApiError;
use super::member::RoomMember;
use crate::audit::{Action, AuditEvent, Outcome};
use crate::domain::ids::RecordId;
use crate::domain::record::{PharmacyAction, RecordKind, RecordStatus};
use crate::records::RecordError;
use crate::storage::RecordRow;
use crate::wire::{self, ClinicalRecordView, RecordRowView};

fn record_id(s: &str) -> Result<RecordId, ApiError> {
    RecordId::parse(s).ok_or(ApiError::NotFound)
}

fn record_event(e: AuditEvent, r: &RecordRow) -> AuditEvent {
    e.object("record", &r.id)
        .sha256(&r.body_sha256)
        .detail(json!({"kind": r.kind, "status": r.status, "supersedes": r.supersedes}))
}

/// Audits a refusal (a role that may not write this, an issued record someone tried to change)
/// and hands the error on.
async fn refused(state: &AppState, event: AuditEvent, e: RecordError) -> ApiError {
    if matches!(e, RecordError::Forbidden(_) | RecordError::Conflict(_)) {
        state
            .audit
            .record_or_log(
                event
                    .outcome(Outcome::Denied)
                    .detail(json!({"reason": e.to_string()})),
            )
            .await;
    }
    e.into()
}

async fn announce(state: &AppState, id: &RecordId) {
    match state.records.view(id).await {
        Ok(view) => state.rooms.record_changed(view).await,
        Err(e) => tracing::warn!(error = %e, "changed record could not be reloaded"),
    }
}

#[derive(Deserialize)]
pub struct CreateBody {
    kind: RecordKind,
    body: Value,
    #[serde(default)]
    issue: bool,
    #[serde(default)]
    supersedes: Option<RecordId>,
}

pub async fn create_record(
    State(state): State<AppState>,
    who: RoomMember,
    ApiJson(b): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<ClinicalRecordView>), ApiError> {
    let action = if b.supersedes.is_some() {
        Action::RecordCorrected
    } else {
        Action::RecordCreated
    };
    let record = match state
        .records
        .create(
            &who.room,
            &who.member,
            b.kind,
            b.body,
            b.issue,
            b.supersedes.clone(),
        )
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let mut event = who.event(action);
            if let Some(old) = &b.supersedes {
                event = event.object("record", old);
            }
            return Err(refused(&state, event, e).await);
        }
    };
    state
        .audit
        .record_or_log(record_event(who.event(action), &record))
        .await;
    if record.status == RecordStatus::Issued {
        state
            .audit
            .record_or_log(record_event(who.event(Action::RecordIssued), &record))
            .await;
    }
    announce(&state, &record.id).await;
    Ok((
        StatusCode::CREATED,
        Json(ClinicalRecordView::from(
            &state.records.view(&record.id).await?,
        )),
    ))
}

pub async fn list_records(
    State(state): State<AppState>,
    who: RoomMember,
) -> Result<Json<Value>, ApiError> {
    let records = state
        .records
        .in_room_for(&who.room, Some(who.member.role))
        .await?;
    Ok(Json(
        json!({ "records": wire::all::<_, ClinicalRecordView>(&records) }),
    ))
}

#[derive(Deserialize)]
pub struct UpdateBody {
    body: Value,
}

pub async fn update_record(
    State(state): State<AppState>,
    who: RoomMember,
    Path((_, rec)): Path<(String, String)>,
    ApiJson(b): ApiJson<UpdateBody>,
) -> Result<Json<ClinicalRecordView>, ApiError> {
    let id = record_id(&rec)?;
    match state
        .records
        .update_draft(&who.room, &who.member, &id, b.body)
        .await
    {
        Ok(r) => {
            state
                .audit
                .record_or_log(record_event(who.event(Action::RecordDraftUpdated), &r))
                .await;
            announce(&state, &id).await;
            Ok(Json(ClinicalRecordView::from(
                &state.records.view(&id).await?,
            )))
        }
        Err(e) => {
            let event = who.event(Action::RecordDraftUpdated).object("record", &id);
            Err(refused(&state, event, e).await)
        }
    }
}

pub async fn issue_record(
    State(state): State<AppState>,
    who: RoomMember,
    Path((_, rec)): Path<(String, String)>,
) -> Result<Json<ClinicalRecordView>, ApiError> {
    let id = record_id(&rec)?;
    match state.records.issue(&who.room, &who.member, &id).await {
        Ok(r) => {
            state
                .audit
                .record_or_log(record_event(who.event(Action::RecordIssued), &r))
                .await;
            announce(&state, &id).await;
            Ok(Json(ClinicalRecordView::from(
                &state.records.view(&id).await?,
            )))
        }
        Err(e) => {
            let event = who.event(Action::RecordIssued).object("record", &id);
            Err(refused(&state, event, e).await)
        }
    }
}

#[derive(Deserialize)]
pub struct QueueQuery {
    #[serde(default)]
    status: Option<String>,
}

pub async fn prescription_queue(
    State(state): State<AppState>,
    who: Clinician,
    Query(q): Query<QueueQuery>,
) -> Result<Json<Value>, ApiError> {
    if !who.0.role.may_review_prescriptions() {
        let event =
            AuditEvent::new(who.actor(), Action::AccessDenied).object("prescriptions", "queue");
        state
            .audit
            .refused(who.0.id.as_str(), "prescriptions_not_pharmacist", event)
            .await;
        return Err(ApiError::Forbidden);
    }
    let status = match q.status.as_deref() {
        None => RecordStatus::Issued,
        Some(s) => RecordStatus::parse(s)
            .ok_or_else(|| ApiError::Invalid("unknown prescription status".into()))?,
    };
    match state.records.queue(status).await {
        Ok(rows) => Ok(Json(
            json!({ "prescriptions": wire::all::<_, RecordRowView>(&rows) }),
        )),
        Err(e @ RecordError::Forbidden(_)) => {
            state
                .audit
                .record_or_log(
                    AuditEvent::new(who.actor(), Action::AccessDenied)
                        .outcome(Outcome::Denied)
                        .detail(json!({"reason": "draft_prescriptions", "status": status})),
                )
                .await;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, Default)]
pub struct PharmacyBody {
    #[serde(default)]
    note: String,
}

pub async fn pharmacy_action(
    State(state): State<AppState>,
    who: Clinician,
    Path((rec, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<ClinicalRecordView>, ApiError> {
    let id = record_id(&rec)?;
    let action = match action.as_str() {
        "review" => PharmacyAction::Review,
        "dispense" => PharmacyAction::Dispense,
        "reject" => PharmacyAction::Reject,
        _ => return Err(ApiError::NotFound),
    };
    // The body is optional: `{"note": "..."}` or nothing.
    let note = if body.is_empty() {
        String::new()
    } else {
        serde_json::from_slice::<PharmacyBody>(&body)
            .map_err(|e| ApiError::Invalid(e.to_string()))?
            .note
    };
    let event = AuditEvent::new(who.actor(), Action::PrescriptionStateChanged);
    let before = state.records.view(&id).await.ok();
    match state
        .records
        .pharmacy(&who.0.id, who.0.role, &id, action, note)
        .await
    {
        Ok(r) => {
            state
                .audit
                .record_or_log(
                    event
                        .room(&r.room_id)
                        .object("record", &r.id)
                        .sha256(&r.body_sha256)
                        .detail(json!({
                            "from": before.map(|b| b.record.status),
                            "to": r.status,
                            "action": action,
                        })),
                )
                .await;
            announce(&state, &id).await;
            Ok(Json(ClinicalRecordView::from(
                &state.records.view(&id).await?,
            )))
        }
        Err(e) => {
            let mut event = event.object("record", &id);
            if let Some(b) = &before {
                event = event.room(&b.record.room_id);
            }
            Err(refused(&state, event, e).await)
        }
    }
}
