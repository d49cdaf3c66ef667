//! Audit entries owed by a step already committed (migrations/0021): the audit trail's outbox.
//!
//! A consultation request's step (and its creation) changes rows of its own in one
//! transaction, while the trail is appended by the audit writer in another (`audit/writer.rs`:
//! the chain's order is the writer's alone). Between the two commits a crash, or a failed
//! append, would leave a step of care with no entry on the trail. So the step's transaction
//! also writes the entries it owes here ([`queue`]), as opaque JSON (storage knows nothing of
//! the audit's types); the append that puts one on the chain removes its row in the same
//! transaction (`Change::AuditPendingDone`, with `Append::only_if_changed`, so an entry whose
//! row is gone already is not written twice); and rows left behind are appended later, oldest
//! first ([`Db::pending_audit`], `AuditLog::append_pending`).

use sqlx::{Any, Row, Transaction};

use super::{Db, StorageError};
use crate::domain::clock::now_unix_ms;
use crate::domain::ids::PendingAuditId;

/// One entry owed: its row's id and the event's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAudit {
    pub id: PendingAuditId,
    pub event: String,
    /// Unix milliseconds of the step that owes it.
    pub at_ms: i64,
}

/// Queues `events` (JSON, in the order they are to be appended) in the caller's transaction.
pub(super) async fn queue(
    tx: &mut Transaction<'static, Any>,
    events: Vec<String>,
) -> Result<Vec<PendingAudit>, StorageError> {
    let at_ms = now_unix_ms();
    let mut queued = Vec::with_capacity(events.len());
    for (ord, event) in events.into_iter().enumerate() {
        let id = PendingAuditId::generate();
        sqlx::query("INSERT INTO audit_pending (id, event, at_ms, ord) VALUES ($1, $2, $3, $4)")
            .bind(id.as_str())
            .bind(&event)
            .bind(at_ms)
            .bind(i64::try_from(ord).unwrap_or(i64::MAX))
            .execute(&mut **tx)
            .await?;
        queued.push(PendingAudit { id, event, at_ms });
    }
    Ok(queued)
}

impl Db {
    /// Entries owed from steps at or before `before_ms`, oldest first, at most `limit`.
    pub async fn pending_audit(
        &self,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<PendingAudit>, StorageError> {
        let rows = sqlx::query(
            "SELECT id, event, at_ms FROM audit_pending WHERE at_ms <= $1 \
             ORDER BY at_ms, ord, id LIMIT $2",
        )
        .bind(before_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                Ok(PendingAudit {
                    id: PendingAuditId::parse(&id)
                        .ok_or(StorageError::Corrupt("pending audit id"))?,
                    event: r.try_get("event")?,
                    at_ms: r.try_get("at_ms")?,
                })
            })
            .collect()
    }
}
