//! An institution's webhook over HTTP (docs/protocol.md, "Webhooks (administrators)"): read it, set its URL or
//! turn it on and off, rotate its secret, list its recent deliveries. The network's
//! administrator may for every institution, an institution's administrator for their own
//! (`AccountRole::may_manage_webhook`); anyone else is refused and the refusal recorded, and an
//! institution's administrator asking about another institution is answered as if it had none.
//! Every change is audited with the URL's host only; the secret is in the answer to its
//! creation or rotation and nowhere else.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::api::{ApiJson, ApiQuery, Clinician};
use super::error::ApiError;
use crate::audit::{Action, AuditEvent, Outcome};
use crate::domain::ids::{InstitutionId, WebhookEventId};
use crate::domain::webhook::{DeliveryState, WebhookUrl};
use crate::storage::{DeliveryRow, WebhookRow};
use crate::webhooks::Changed;

/// The institution in the path, if the caller may manage its webhook; the refusal (recorded)
/// otherwise.
async fn allowed(
    state: &AppState,
    who: &Clinician,
    id: &str,
    attempted: &'static str,
) -> Result<InstitutionId, ApiError> {
    let institution = InstitutionId::parse(id).ok_or(ApiError::NotFound)?;
    if who
        .0
        .role
        .may_manage_webhook(institution == who.0.institution_id)
    {
        return Ok(institution);
    }
    let administers_some = who.0.role.may_manage_webhook(true);
    let reason = if administers_some {
        "webhook_not_yours"
    } else {
        "not_an_administrator"
    };
    let event = AuditEvent::new(who.actor(), Action::AccessDenied)
        .object("institution", &institution)
        .outcome(Outcome::Denied)
        .detail(json!({"attempted": attempted}));
    state.audit.refused(who.0.id.as_str(), reason, event).await;
    // Another institution's administrator learns nothing of this one's webhook.
    Err(if administers_some {
        ApiError::NotFound
    } else {
        ApiError::Forbidden
    })
}

fn view(w: &WebhookRow, secret: Option<&str>) -> Value {
    let mut v = json!({
        "institution_id": w.institution_id,
        "url": w.url,
        "enabled": w.enabled,
        "pending": w.pending,
        "max_pending": w.max_pending,
        "dropped": w.dropped,
        "created_at": w.created_at,
        "updated_at": w.updated_at,
        "secret_rotated_at": w.rotated_at,
    });
    if let Some(secret) = secret {
        v["secret"] = json!(secret);
    }
    v
}

fn delivery_view(d: &DeliveryRow) -> Value {
    json!({
        "id": d.id,
        "type": d.kind.as_str(),
        "consultation_id": d.consultation,
        "sequence": d.seq,
        "state": d.state.as_str(),
        "attempts": d.attempts,
        "next_attempt_at_ms": (d.state == DeliveryState::Pending).then_some(d.next_attempt_ms),
        "last_status": d.last_status,
        "last_error": d.last_error,
        "created_at": d.created_at,
        "finished_at": d.finished_at,
    })
}

/// `GET /api/v1/institutions/{id}/webhook`.
pub async fn get(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let institution = allowed(&state, &who, &id, "webhook.read").await?;
    let w = state.webhooks.get(&institution).await?;
    Ok(Json(view(&w, None)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetBody {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
}

async fn audit_change(state: &AppState, who: &Clinician, c: &Changed, rotated: bool) {
    let host = WebhookUrl::from_stored(c.webhook.url.clone()).host();
    let (action, detail) = if rotated {
        (Action::WebhookSecretRotated, json!({"via": "api"}))
    } else {
        (
            Action::WebhookConfigured,
            json!({
                "created": c.created,
                "enabled": c.webhook.enabled,
                "host": host,
                "via": "api",
            }),
        )
    };
    state
        .audit
        .record_or_log(
            AuditEvent::new(who.actor(), action)
                .object("institution", &c.webhook.institution_id)
                .detail(detail),
        )
        .await;
}

/// `PUT /api/v1/institutions/{id}/webhook`: `{"url", "enabled"}`. A new webhook (201) needs its
/// URL and answers its secret, once; a change (200) keeps what is not given and answers no
/// secret.
pub async fn set(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let institution = allowed(&state, &who, &id, "webhook.set").await?;
    let changed = state
        .webhooks
        .set(&institution, body.url.as_deref(), body.enabled)
        .await?;
    audit_change(&state, &who, &changed, false).await;
    let status = if changed.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(view(&changed.webhook, changed.secret.as_deref())),
    ))
}

/// `POST /api/v1/institutions/{id}/webhook/rotate`: a new secret, answered once.
pub async fn rotate(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let institution = allowed(&state, &who, &id, "webhook.rotate").await?;
    let changed = state.webhooks.rotate(&institution).await?;
    audit_change(&state, &who, &changed, true).await;
    Ok(Json(view(&changed.webhook, changed.secret.as_deref())))
}

#[derive(Deserialize)]
pub struct DeliveriesQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

/// `POST /api/v1/institutions/{id}/webhook/deliveries/{event}/retry`: a failed event sent again
/// (audited as `webhook.retried`); the delivery as it stands now.
pub async fn retry(
    State(state): State<AppState>,
    who: Clinician,
    Path((id, event)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let institution = allowed(&state, &who, &id, "webhook.retry").await?;
    let event = WebhookEventId::parse(&event).ok_or(ApiError::NotFound)?;
    let row = state.webhooks.retry(&institution, &event).await?;
    state
        .audit
        .record_or_log(
            AuditEvent::new(who.actor(), Action::WebhookRetried)
                .object("webhook_event", &event)
                .detail(json!({
                    "institution": institution,
                    "consultation": row.consultation,
                    "sequence": row.seq,
                })),
        )
        .await;
    Ok(Json(delivery_view(&row)))
}

/// `GET /api/v1/institutions/{id}/webhook/deliveries?state=pending|delivered|failed&limit=n`:
/// the newest first.
pub async fn deliveries(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> Result<Json<Value>, ApiError> {
    let institution = allowed(&state, &who, &id, "webhook.deliveries").await?;
    let filter = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(DeliveryState::parse(s).ok_or_else(|| {
            ApiError::Invalid("state must be pending, delivered or failed".into())
        })?),
    };
    let rows = state
        .webhooks
        .deliveries(
            &institution,
            filter,
            q.limit.unwrap_or(crate::webhooks::MAX_LISTED),
        )
        .await?;
    Ok(Json(
        json!({"deliveries": rows.iter().map(delivery_view).collect::<Vec<_>>()}),
    ))
}
