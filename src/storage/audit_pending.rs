//! Audit entries owed by a step already committed (migrations/0021): the audit trail's outbox.
//!
//! A consultation request's step (and its creation), or a clinical record's change, changes
//! rows of its own in one transaction, while the trail is appended by the audit writer in another (`audit/writer.rs`:
//! the chain's order is the writer's alone). Between the two commits a crash, or a failed
//! append, would leave a step of care with no entry on the trail. So the step's transaction
//! also writes the entries it owes here ([`queue`]), as opaque JSON (storage knows nothing of
//! the audit's types); the append that puts one on the chain removes its row in the same
//! transaction (`Change::AuditPendingDone`, with `Append::only_if_changed`, so an entry whose
//! row is gone already is not written twice); and rows left behind are appended later, oldest
//! first ([`Db::pending_audit`], `AuditLog::append_pending`).

use std::sync::atomic::{AtomicI64, Ordering};

use sqlx::{Any, Row, Transaction};

use super::{Db, StorageError};
use crate::domain::clock::now_unix_ms;
use crate::domain::ids::PendingAuditId;

/// One entry owed: its row's id and the event's JSON, and its place in the order they are
/// appended in (`at_ms`, then `ord`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAudit {
    pub id: PendingAuditId,
    pub event: String,
    /// Unix milliseconds of the step that owes it (see [`stamp`]).
    pub at_ms: i64,
    /// Its place among its step's entries.
    pub ord: i64,
}

/// Where [`Db::pending_audit`] goes on from: after this row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAfter {
    at_ms: i64,
    ord: i64,
    id: String,
}

/// The last step's stamp in this process.
static LAST_STAMP: AtomicI64 = AtomicI64::new(0);

/// A step's time in milliseconds, later than every earlier step's in this process: two steps
/// in one millisecond (a record's draft and its issue, one after the other) keep their order
/// when their entries are appended late.
fn stamp() -> i64 {
    let now = now_unix_ms();
    let previous = LAST_STAMP
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    now.max(previous + 1)
}

/// Queues `events` (JSON, in the order they are to be appended) in the caller's transaction.
pub(super) async fn queue(
    tx: &mut Transaction<'static, Any>,
    events: Vec<String>,
) -> Result<Vec<PendingAudit>, StorageError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let at_ms = stamp();
    let mut queued = Vec::with_capacity(events.len());
    for (ord, event) in events.into_iter().enumerate() {
        let id = PendingAuditId::generate();
        let ord = i64::try_from(ord).unwrap_or(i64::MAX);
        sqlx::query("INSERT INTO audit_pending (id, event, at_ms, ord) VALUES ($1, $2, $3, $4)")
            .bind(id.as_str())
            .bind(&event)
            .bind(at_ms)
            .bind(ord)
            .execute(&mut **tx)
            .await?;
        queued.push(PendingAudit {
            id,
            event,
            at_ms,
            ord,
        });
    }
    Ok(queued)
}

impl Db {
    /// Entries owed from steps at or before `before_ms`, oldest first, after `after` when
    /// given: a page of at most `limit` rows. A row whose id is not one this code writes (a
    /// damaged database) is logged and passed over.
    pub async fn pending_audit(
        &self,
        before_ms: i64,
        after: Option<&PendingAfter>,
        limit: u32,
    ) -> Result<PendingPage, StorageError> {
        let rows = match after {
            None => {
                sqlx::query(
                    "SELECT id, event, at_ms, ord FROM audit_pending WHERE at_ms <= $1 \
                     ORDER BY at_ms, ord, id LIMIT $2",
                )
                .bind(before_ms)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
            Some(a) => {
                sqlx::query(
                    "SELECT id, event, at_ms, ord FROM audit_pending WHERE at_ms <= $1 \
                     AND (at_ms > $2 OR (at_ms = $2 AND (ord > $3 OR (ord = $3 AND id > $4)))) \
                     ORDER BY at_ms, ord, id LIMIT $5",
                )
                .bind(before_ms)
                .bind(a.at_ms)
                .bind(a.ord)
                .bind(&a.id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        let mut page = PendingPage {
            owed: Vec::with_capacity(rows.len()),
            next: None,
        };
        for r in &rows {
            let id: String = r.try_get("id")?;
            let (at_ms, ord): (i64, i64) = (r.try_get("at_ms")?, r.try_get("ord")?);
            if rows.len() == limit as usize {
                page.next = Some(PendingAfter {
                    at_ms,
                    ord,
                    id: id.clone(),
                });
            }
            let Some(parsed) = PendingAuditId::parse(&id) else {
                tracing::error!("an owed audit entry's row has a damaged id; left as it is");
                continue;
            };
            page.owed.push(PendingAudit {
                id: parsed,
                event: r.try_get("event")?,
                at_ms,
                ord,
            });
        }
        Ok(page)
    }
}

/// A page of owed entries, and where the next page starts when there may be one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPage {
    pub owed: Vec<PendingAudit>,
    /// After the page's last row, when the page was full.
    pub next: Option<PendingAfter>,
}
