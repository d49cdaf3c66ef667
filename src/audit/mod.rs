//! The audit trail: an append-only, hash-chained log of every security- and care-relevant event
//! (sign-ins, rooms, invites, joins, documents, records, prescriptions, exports).
//!
//! Owns the entry format ([`entry`]), the chain (each entry holds the hash of the one before;
//! [`chain`]) and its verification. Other modules describe what happened with an [`AuditEvent`]
//! and call [`AuditLog::record`]; nothing else writes the `audit_log` table, and nothing ever
//! updates or deletes a row of it.

mod chain;
mod entry;
mod refusals;

use std::sync::Arc;

use sqlx::Row;
use sqlx::any::AnyRow;

pub use chain::{BrokenLink, Verification};
pub use entry::{Action, Actor, AuditEntry, AuditEvent, Outcome};
pub use refusals::{PER_WINDOW as REFUSALS_PER_WINDOW, RefusalLimiter};

use crate::storage::{Db, StorageError};

/// Rows read per query while verifying or exporting.
const PAGE: i64 = 1000;
/// How often an append retries when another server process took the same sequence number.
const APPEND_ATTEMPTS: usize = 8;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the audit log is busy: {0} concurrent appends collided")]
    Contention(usize),
}

impl From<sqlx::Error> for AuditError {
    fn from(e: sqlx::Error) -> Self {
        AuditError::Storage(StorageError::Database(e))
    }
}

/// Appends to and reads the audit trail; cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditLog {
    db: Db,
    /// Serialises this process's appends (the chain has one head); other processes sharing a
    /// PostgreSQL database are kept in line by `seq`'s primary key (see [`AuditLog::record`]).
    append: Arc<tokio::sync::Mutex<()>>,
    /// Keeps refusals from flooding the trail ([`AuditLog::refused`]).
    refusals: Arc<RefusalLimiter>,
}

const COLUMNS: &str = "seq, at_ms, actor, actor_role, action, room_id, object_type, object_id, \
                       object_sha256, outcome, detail, prev_hash, hash";

impl AuditLog {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            append: Arc::default(),
            refusals: Arc::default(),
        }
    }

    /// Appends one entry and returns it, sealed into the chain. The next sequence number and the
    /// previous hash are read and the row inserted under `seq`'s primary key: if another process
    /// appended in between, the insert fails as a duplicate and is retried on the new head.
    pub async fn record(&self, event: AuditEvent) -> Result<AuditEntry, AuditError> {
        let _one_writer = self.append.lock().await;
        for _ in 0..APPEND_ATTEMPTS {
            let head = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(self.db.pool())
                .await?;
            let (seq, prev) = match head {
                Some(row) => (
                    row.try_get::<i64, _>("seq")? + 1,
                    row.try_get::<String, _>("hash")?,
                ),
                None => (1, chain::GENESIS.to_owned()),
            };
            let entry = event.clone().seal(seq, prev);
            let inserted = sqlx::query(&format!(
                "INSERT INTO audit_log ({COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            ))
            .bind(entry.seq)
            .bind(entry.at_ms)
            .bind(&entry.actor)
            .bind(&entry.actor_role)
            .bind(&entry.action)
            .bind(&entry.room_id)
            .bind(&entry.object_type)
            .bind(&entry.object_id)
            .bind(&entry.object_sha256)
            .bind(&entry.outcome)
            .bind(&entry.detail)
            .bind(&entry.prev_hash)
            .bind(&entry.hash)
            .execute(self.db.pool())
            .await;
            match inserted {
                Ok(_) => return Ok(entry),
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AuditError::Contention(APPEND_ATTEMPTS))
    }

    /// Records an event whose failure to record must not undo what already happened (a leave,
    /// a chat message); the failure is logged instead.
    pub async fn record_or_log(&self, event: AuditEvent) {
        if let Err(e) = self.record(event).await {
            tracing::error!(error = %e, "audit entry could not be written");
        }
    }

    /// Entries after `after` (a sequence number), oldest first, at most `limit`; only those of
    /// `room` when given.
    pub async fn entries(
        &self,
        after: i64,
        limit: i64,
        room: Option<&str>,
    ) -> Result<Vec<AuditEntry>, AuditError> {
        let rows = match room {
            Some(room) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 AND room_id = $2 \
                     ORDER BY seq LIMIT $3"
                ))
                .bind(after)
                .bind(room)
                .bind(limit)
                .fetch_all(self.db.pool())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
                ))
                .bind(after)
                .bind(limit)
                .fetch_all(self.db.pool())
                .await?
            }
        };
        rows.iter().map(from_row).collect()
    }

    /// Walks the whole chain from the first entry and reports the first broken link, if any.
    pub async fn verify(&self) -> Result<Verification, AuditError> {
        let mut walk = chain::Walk::default();
        let mut after = 0;
        loop {
            let page = self.entries(after, PAGE, None).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for entry in &page {
                if walk.step(entry).is_err() {
                    return Ok(walk.finish());
                }
            }
        }
        Ok(walk.finish())
    }

    /// Every entry as JSON Lines, oldest first.
    pub async fn export_jsonl(&self) -> Result<Vec<u8>, AuditError> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self.entries(after, PAGE, None).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for entry in &page {
                serde_json::to_writer(&mut out, entry).expect("entries serialize");
                out.push(b'\n');
            }
        }
        Ok(out)
    }
}

fn from_row(row: &AnyRow) -> Result<AuditEntry, AuditError> {
    Ok(AuditEntry {
        seq: row.try_get("seq")?,
        at_ms: row.try_get("at_ms")?,
        actor: row.try_get("actor")?,
        actor_role: row.try_get("actor_role")?,
        action: row.try_get("action")?,
        room_id: row.try_get("room_id")?,
        object_type: row.try_get("object_type")?,
        object_id: row.try_get("object_id")?,
        object_sha256: row.try_get("object_sha256")?,
        outcome: row.try_get("outcome")?,
        detail: row.try_get("detail")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}
