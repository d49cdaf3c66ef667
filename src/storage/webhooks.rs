//! Outgoing webhooks: each institution's endpoint (URL, secret, enabled), and the outbox of
//! events waiting for it.
//!
//! Queueing ([`enqueue`]) runs inside the caller's transaction, so an event exists exactly
//! when the step it reports was committed: a referral's step, a record's, and a room's end
//! (`Change::apply_all`, in the audit writer's commit or `Db::end_room`'s). For each recipient with an enabled webhook it takes
//! a place in the outbox with one conditional `UPDATE … WHERE pending < max_pending` (no count
//! read first: that would be a race), gives the event the next number of its consultation for
//! that institution, and inserts it. An institution whose outbox is full does not get the event
//! (`dropped` is counted) but its consultation's number still moves on, so the receiver sees a
//! gap in `sequence` and knows to reconcile; the step itself is never refused for a webhook.
//!
//! Delivery reads the head of each consultation's queue (its lowest pending number) and claims
//! it with a conditional `UPDATE` of its next-attempt time: of two workers (or processes) one
//! wins, and a claim lapses by itself if its holder dies.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Db, StorageError};
use crate::domain::ids::{InstitutionId, RoomId, WebhookEventId};
use crate::domain::webhook::{DeliveryState, EventKind, OutboxEvent};

/// An institution's endpoint as stored, its secret apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    pub institution_id: InstitutionId,
    pub url: String,
    pub enabled: bool,
    pub pending: i64,
    pub max_pending: i64,
    pub dropped: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub rotated_at: i64,
}

/// One institution's copy of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: WebhookEventId,
    pub institution_id: InstitutionId,
    pub consultation: String,
    pub seq: i64,
    pub kind: EventKind,
    pub state: DeliveryState,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// The head of a consultation's queue, due, with what it takes to send it.
#[derive(Debug, Clone)]
pub struct DueEvent {
    pub id: WebhookEventId,
    pub institution_id: InstitutionId,
    pub consultation: String,
    pub seq: i64,
    pub kind: EventKind,
    pub body: String,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub url: String,
    pub secret: String,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    Delivered,
    /// Try again at this time (Unix ms).
    Retry {
        at_ms: i64,
    },
    /// Given up.
    Failed,
}

const WEBHOOK_COLUMNS: &str = "institution_id, url, enabled, pending, max_pending, dropped, \
     created_at, updated_at, rotated_at";

fn webhook_from_row(row: &AnyRow) -> Result<WebhookRow, StorageError> {
    let id: String = row.try_get("institution_id")?;
    let enabled: i64 = row.try_get("enabled")?;
    Ok(WebhookRow {
        institution_id: InstitutionId::parse(&id)
            .ok_or(StorageError::Corrupt("webhook institution"))?,
        url: row.try_get("url")?,
        enabled: enabled != 0,
        pending: row.try_get("pending")?,
        max_pending: row.try_get("max_pending")?,
        dropped: row.try_get("dropped")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        rotated_at: row.try_get("rotated_at")?,
    })
}

fn kind_of(row: &AnyRow) -> Result<EventKind, StorageError> {
    let kind: String = row.try_get("kind")?;
    EventKind::parse(&kind).ok_or(StorageError::Corrupt("webhook event kind"))
}

fn event_id(row: &AnyRow) -> Result<WebhookEventId, StorageError> {
    let id: String = row.try_get("id")?;
    WebhookEventId::parse(&id).ok_or(StorageError::Corrupt("webhook event id"))
}

fn institution(row: &AnyRow) -> Result<InstitutionId, StorageError> {
    let id: String = row.try_get("institution_id")?;
    InstitutionId::parse(&id).ok_or(StorageError::Corrupt("webhook event institution"))
}

fn delivery_from_row(row: &AnyRow) -> Result<DeliveryRow, StorageError> {
    let state: String = row.try_get("state")?;
    Ok(DeliveryRow {
        id: event_id(row)?,
        institution_id: institution(row)?,
        consultation: row.try_get("consultation")?,
        seq: row.try_get("seq")?,
        kind: kind_of(row)?,
        state: DeliveryState::parse(&state).ok_or(StorageError::Corrupt("webhook state"))?,
        attempts: row.try_get("attempts")?,
        next_attempt_ms: row.try_get("next_attempt_ms")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

/// Queues `event` for each of its recipients that has an enabled webhook, in the caller's
/// transaction (see the module). Answers the recipients whose outbox was full (the event was
/// not queued for them; the delivery task audits what `dropped` counts).
pub(crate) async fn enqueue(
    conn: &mut AnyConnection,
    event: &OutboxEvent,
    now_ms: i64,
) -> Result<Vec<InstitutionId>, StorageError> {
    let mut full = Vec::new();
    for recipient in event.sorted_recipients() {
        let placed = sqlx::query(
            "UPDATE webhooks SET pending = pending + 1 WHERE institution_id = $1 \
             AND enabled = 1 AND pending < max_pending",
        )
        .bind(recipient.as_str())
        .execute(&mut *conn)
        .await?
        .rows_affected()
            == 1;
        if !placed {
            let overflowed = sqlx::query(
                "UPDATE webhooks SET dropped = dropped + 1 WHERE institution_id = $1 \
                 AND enabled = 1",
            )
            .bind(recipient.as_str())
            .execute(&mut *conn)
            .await?
            .rows_affected()
                == 1;
            if !overflowed {
                // No webhook, or disabled: nothing is owed to this institution.
                continue;
            }
        }
        sqlx::query(
            "INSERT INTO webhook_streams (institution_id, consultation, last_seq) \
             VALUES ($1, $2, 0) ON CONFLICT (institution_id, consultation) DO NOTHING",
        )
        .bind(recipient.as_str())
        .bind(&event.consultation)
        .execute(&mut *conn)
        .await?;
        let seq: i64 = sqlx::query(
            "UPDATE webhook_streams SET last_seq = last_seq + 1 \
             WHERE institution_id = $1 AND consultation = $2 RETURNING last_seq",
        )
        .bind(recipient.as_str())
        .bind(&event.consultation)
        .fetch_one(&mut *conn)
        .await?
        .try_get("last_seq")?;
        if !placed {
            full.push(recipient);
            continue;
        }
        let id = WebhookEventId::generate();
        sqlx::query(
            "INSERT INTO webhook_outbox (id, institution_id, consultation, seq, kind, body, \
             state, attempts, next_attempt_ms, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8)",
        )
        .bind(id.as_str())
        .bind(recipient.as_str())
        .bind(&event.consultation)
        .bind(seq)
        .bind(event.kind.as_str())
        .bind(event.body(&id, &recipient, seq))
        .bind(now_ms)
        .bind(event.at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(full)
}

/// The consultation a room's events belong to and the institutions taking part: the referral
/// that opened it (its requester's institution and the receiving department's), or the room
/// alone (its institution).
pub(crate) async fn consultation_of_room(
    conn: &mut AnyConnection,
    room: &RoomId,
) -> Result<Option<(String, Vec<InstitutionId>)>, StorageError> {
    let row = sqlx::query(
        "SELECT m.institution_id AS room_institution, r.id AS referral_id, \
         r.requester_institution, d.institution_id AS receiver_institution \
         FROM rooms m LEFT JOIN referrals r ON r.room_id = m.id \
         LEFT JOIN departments d ON d.id = r.target_department WHERE m.id = $1",
    )
    .bind(room.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let parse = |s: Option<String>| -> Result<Option<InstitutionId>, StorageError> {
        s.map(|s| InstitutionId::parse(&s).ok_or(StorageError::Corrupt("room institution")))
            .transpose()
    };
    let mut recipients: Vec<InstitutionId> = [
        parse(row.try_get("room_institution")?)?,
        parse(row.try_get("requester_institution")?)?,
        parse(row.try_get("receiver_institution")?)?,
    ]
    .into_iter()
    .flatten()
    .collect();
    recipients.sort();
    recipients.dedup();
    let referral: Option<String> = row.try_get("referral_id")?;
    Ok(Some((
        referral.unwrap_or_else(|| room.as_str().to_owned()),
        recipients,
    )))
}

/// A room's event (`kind`, `data`) queued in the caller's transaction for the institutions
/// taking part in its consultation; the recipients whose outbox was full.
pub(crate) async fn enqueue_for_room(
    conn: &mut AnyConnection,
    room: &RoomId,
    kind: EventKind,
    data: serde_json::Value,
    at: i64,
    now_ms: i64,
) -> Result<Vec<InstitutionId>, StorageError> {
    let Some((consultation, recipients)) = consultation_of_room(conn, room).await? else {
        return Ok(Vec::new());
    };
    let event = OutboxEvent {
        kind,
        consultation,
        recipients,
        data,
        at,
    };
    enqueue(conn, &event, now_ms).await
}

impl Db {
    pub async fn webhook(
        &self,
        institution: &InstitutionId,
    ) -> Result<Option<WebhookRow>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE institution_id = $1"
        ))
        .bind(institution.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(webhook_from_row).transpose()
    }

    /// A new endpoint for `institution`; `Conflict` if it has one.
    pub async fn create_webhook(
        &self,
        institution: &InstitutionId,
        url: &str,
        secret: &str,
        enabled: bool,
        max_pending: i64,
        now: i64,
    ) -> Result<WebhookRow, StorageError> {
        sqlx::query(
            "INSERT INTO webhooks (institution_id, url, secret, enabled, pending, max_pending, \
             dropped, created_at, updated_at, rotated_at) \
             VALUES ($1, $2, $3, $4, 0, $5, 0, $6, $6, $6)",
        )
        .bind(institution.as_str())
        .bind(url)
        .bind(secret)
        .bind(i64::from(enabled))
        .bind(max_pending)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(super::map_unique)?;
        self.webhook(institution)
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// Changes an endpoint's URL and whether it is enabled; `NotFound` if it has none.
    pub async fn update_webhook(
        &self,
        institution: &InstitutionId,
        url: &str,
        enabled: bool,
        now: i64,
    ) -> Result<WebhookRow, StorageError> {
        let done = sqlx::query(
            "UPDATE webhooks SET url = $1, enabled = $2, updated_at = $3 \
             WHERE institution_id = $4",
        )
        .bind(url)
        .bind(i64::from(enabled))
        .bind(now)
        .bind(institution.as_str())
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        self.webhook(institution)
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// A new signing secret: every attempt from now on, of events already queued too, is
    /// signed with it.
    pub async fn rotate_webhook_secret(
        &self,
        institution: &InstitutionId,
        secret: &str,
        now: i64,
    ) -> Result<WebhookRow, StorageError> {
        let done = sqlx::query(
            "UPDATE webhooks SET secret = $1, rotated_at = $2, updated_at = $2 \
             WHERE institution_id = $3",
        )
        .bind(secret)
        .bind(now)
        .bind(institution.as_str())
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        self.webhook(institution)
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// Writes the outbox limit in force to every endpoint (at start).
    pub async fn set_webhook_limits(&self, max_pending: i64) -> Result<(), StorageError> {
        sqlx::query("UPDATE webhooks SET max_pending = $1")
            .bind(max_pending)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Queues a room's event in a transaction of its own; the recipients whose outbox was
    /// full. No step uses it (each queues its events in its own transaction): it is for
    /// tests of the outbox itself.
    pub async fn enqueue_room_event(
        &self,
        room: &RoomId,
        kind: EventKind,
        data: serde_json::Value,
        at: i64,
        now_ms: i64,
    ) -> Result<Vec<InstitutionId>, StorageError> {
        let mut tx = self.begin_write().await?;
        let full = enqueue_for_room(&mut tx, room, kind, data, at, now_ms).await?;
        tx.commit().await?;
        Ok(full)
    }

    /// The heads of consultations' queues that are due at `now_ms`, for enabled endpoints,
    /// the longest waiting first; at most `limit`.
    pub async fn due_webhook_events(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<DueEvent>, StorageError> {
        let rows = sqlx::query(
            "SELECT o.id, o.institution_id, o.consultation, o.seq, o.kind, o.body, o.attempts, \
             o.next_attempt_ms, w.url, w.secret FROM webhook_outbox o \
             JOIN webhooks w ON w.institution_id = o.institution_id \
             WHERE o.state = 'pending' AND w.enabled = 1 AND o.next_attempt_ms <= $1 \
             AND o.seq = (SELECT MIN(p.seq) FROM webhook_outbox p \
                 WHERE p.institution_id = o.institution_id \
                 AND p.consultation = o.consultation AND p.state = 'pending') \
             ORDER BY o.next_attempt_ms, o.created_at LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DueEvent {
                    id: event_id(row)?,
                    institution_id: institution(row)?,
                    consultation: row.try_get("consultation")?,
                    seq: row.try_get("seq")?,
                    kind: kind_of(row)?,
                    body: row.try_get("body")?,
                    attempts: row.try_get("attempts")?,
                    next_attempt_ms: row.try_get("next_attempt_ms")?,
                    url: row.try_get("url")?,
                    secret: row.try_get("secret")?,
                })
            })
            .collect()
    }

    /// Claims an event for one attempt: counts the attempt and moves its next-attempt time to
    /// `lease_until_ms`, if nobody else claimed it since it was read at `seen_next_ms`.
    pub async fn claim_webhook_event(
        &self,
        id: &WebhookEventId,
        seen_next_ms: i64,
        lease_until_ms: i64,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE webhook_outbox SET next_attempt_ms = $1, attempts = attempts + 1 \
             WHERE id = $2 AND state = 'pending' AND next_attempt_ms = $3",
        )
        .bind(lease_until_ms)
        .bind(id.as_str())
        .bind(seen_next_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records how an attempt ended; a delivered or given-up event gives its place in the
    /// outbox back, in the same transaction, once.
    pub async fn finish_webhook_attempt(
        &self,
        id: &WebhookEventId,
        institution: &InstitutionId,
        end: AttemptEnd,
        status: Option<u16>,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin_write().await?;
        let (state, next, finished) = match end {
            AttemptEnd::Delivered => (DeliveryState::Delivered, now_ms, Some(now_ms / 1000)),
            AttemptEnd::Failed => (DeliveryState::Failed, now_ms, Some(now_ms / 1000)),
            AttemptEnd::Retry { at_ms } => (DeliveryState::Pending, at_ms, None),
        };
        let done = sqlx::query(
            "UPDATE webhook_outbox SET state = $1, next_attempt_ms = $2, last_status = $3, \
             last_error = $4, finished_at = $5 WHERE id = $6 AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(next)
        .bind(status.map(i64::from))
        .bind(error)
        .bind(finished)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 && finished.is_some() {
            sqlx::query(
                "UPDATE webhooks SET pending = pending - 1 WHERE institution_id = $1 \
                 AND pending > 0",
            )
            .bind(institution.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Puts `institution`'s failed event `id` back in its outbox for another round of
    /// attempts, now (or once an attempt under way for its consultation has had its time): it
    /// keeps its sequence, so it is the head of its consultation's queue again (later events of
    /// that consultation still pending wait behind it). It takes a
    /// place in the outbox as a new event would ([`StorageError::Limit`] `webhook_outbox` when
    /// full). `Ok(None)` when the institution has no failed event of that id.
    pub async fn retry_webhook_event(
        &self,
        institution: &InstitutionId,
        id: &WebhookEventId,
        now_ms: i64,
    ) -> Result<Option<DeliveryRow>, StorageError> {
        let mut tx = self.begin_write().await?;
        // Not before the consultation's other pending events' next attempt: one of them may be
        // claimed and under way (its lease), and only one event of a consultation is attempted
        // at a time; once that time passes, this one is the lowest and goes first.
        let others: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(o.next_attempt_ms) FROM webhook_outbox o \
             JOIN webhook_outbox f ON f.id = $1 AND o.institution_id = f.institution_id \
             AND o.consultation = f.consultation \
             WHERE o.state = 'pending' AND o.id <> f.id",
        )
        .bind(id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let at = others.map_or(now_ms, |t| t.max(now_ms));
        let reopened = sqlx::query(
            "UPDATE webhook_outbox SET state = 'pending', attempts = 0, next_attempt_ms = $1, \
             finished_at = NULL WHERE id = $2 AND institution_id = $3 AND state = 'failed'",
        )
        .bind(at)
        .bind(id.as_str())
        .bind(institution.as_str())
        .execute(&mut *tx)
        .await?;
        if reopened.rows_affected() != 1 {
            return Ok(None);
        }
        let placed = sqlx::query(
            "UPDATE webhooks SET pending = pending + 1 WHERE institution_id = $1 \
             AND pending < max_pending",
        )
        .bind(institution.as_str())
        .execute(&mut *tx)
        .await?;
        if placed.rows_affected() != 1 {
            let max: i64 =
                sqlx::query_scalar("SELECT max_pending FROM webhooks WHERE institution_id = $1")
                    .bind(institution.as_str())
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StorageError::NotFound)?;
            return Err(StorageError::Limit {
                limit: "webhook_outbox",
                max,
            });
        }
        let row = sqlx::query(
            "SELECT id, institution_id, consultation, seq, kind, state, attempts, \
             next_attempt_ms, last_status, last_error, created_at, finished_at \
             FROM webhook_outbox WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let row = delivery_from_row(&row)?;
        tx.commit().await?;
        Ok(Some(row))
    }

    /// An institution's events, the newest first, optionally in one state; at most `limit`.
    pub async fn webhook_deliveries(
        &self,
        institution: &InstitutionId,
        state: Option<DeliveryState>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT id, institution_id, consultation, seq, kind, state, attempts, \
             next_attempt_ms, last_status, last_error, created_at, finished_at \
             FROM webhook_outbox WHERE institution_id = $1 AND ($2 = '' OR state = $2) \
             ORDER BY created_at DESC, consultation, seq DESC LIMIT $3",
        )
        .bind(institution.as_str())
        .bind(state.map(DeliveryState::as_str).unwrap_or(""))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// Endpoints whose outbox dropped events the audit trail was not yet told of:
    /// (institution, dropped in all, of which already recorded).
    pub async fn unaudited_webhook_drops(
        &self,
    ) -> Result<Vec<(InstitutionId, i64, i64)>, StorageError> {
        let rows = sqlx::query(
            "SELECT institution_id, dropped, dropped_audited FROM webhooks \
             WHERE dropped > dropped_audited",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    institution(r)?,
                    r.try_get("dropped")?,
                    r.try_get("dropped_audited")?,
                ))
            })
            .collect()
    }

    /// Notes that the audit trail was told of `dropped` events of `institution`'s outbox.
    pub async fn mark_webhook_drops_audited(
        &self,
        institution: &InstitutionId,
        dropped: i64,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE webhooks SET dropped_audited = $1 WHERE institution_id = $2 \
             AND dropped_audited < $1",
        )
        .bind(dropped)
        .bind(institution.as_str())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
