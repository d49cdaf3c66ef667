//! The audit trail: an append-only, hash-chained log of every security- and care-relevant event
//! (sign-ins, rooms, invites, joins, documents, records, prescriptions, exports).
//!
//! Owns the entry format ([`entry`]), the chain (each entry holds the hash of the one before;
//! [`chain`]), its verification, and the one task that appends to it ([`writer`]: group commit
//! in chain order). Other modules describe what happened with an [`AuditEvent`] and call
//! [`AuditLog::record`] (wait until it is on the record) or [`AuditLog::record_or_log`] (queue it
//! and go on); a room hands its join, leave and chat rows to the same writer
//! ([`AuditLog::submit`]) so that they never wait on the database in its task. Nothing else writes
//! the `audit_log` table, and nothing ever updates or deletes a row of it.

mod chain;
mod entry;
mod refusals;
mod writer;

use std::sync::Arc;

use sqlx::Row;
use sqlx::any::AnyRow;

pub use chain::{BrokenLink, Verification};
pub use entry::{Action, Actor, AuditEntry, AuditEvent, Outcome};
pub use refusals::{PER_WINDOW as REFUSALS_PER_WINDOW, RefusalLimiter};
pub use writer::{Append, Durable, MAX_BATCH, WriterStats, Written};

use crate::storage::{Db, StorageError};

/// Rows read per query while verifying or exporting.
const PAGE: i64 = 1000;
/// Appends queued for the writer at most; a caller waits while the queue is full.
pub const QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the audit log is busy: {0} concurrent appends collided")]
    Contention(usize),
    #[error("the audit trail could not be written: {0}")]
    Unwritten(String),
    #[error("the audit writer has stopped")]
    Closed,
}

impl From<sqlx::Error> for AuditError {
    fn from(e: sqlx::Error) -> Self {
        AuditError::Storage(StorageError::Database(e))
    }
}

/// Appends to and reads the audit trail; cheap to clone. Appends go through one writer task
/// per `AuditLog::new` (and its clones), which [`AuditLog::close`] stops.
#[derive(Clone, Debug)]
pub struct AuditLog {
    db: Db,
    writer: writer::Handle,
    /// Keeps refusals from flooding the trail ([`AuditLog::refused`]).
    refusals: Arc<RefusalLimiter>,
}

const COLUMNS: &str = "seq, at_ms, actor, actor_role, action, room_id, object_type, object_id, \
                       object_sha256, outcome, detail, prev_hash, hash";

impl AuditLog {
    /// Starts the writer task on the current tokio runtime.
    pub fn new(db: Db) -> Self {
        Self::with_queue(db, QUEUE)
    }

    /// With a writer queue of `capacity` appends (tests use a tiny one).
    pub fn with_queue(db: Db, capacity: usize) -> Self {
        Self {
            writer: writer::Handle::start(db.clone(), capacity),
            db,
            refusals: Arc::default(),
        }
    }

    /// Appends one entry and returns it, sealed into the chain, once it is committed: for what
    /// must be on the record before it happens (a read of a patient's document, a sign-in).
    pub async fn record(&self, event: AuditEvent) -> Result<AuditEntry, AuditError> {
        let entry = self.submit(Append::entry(event)).await?.await?;
        Ok(entry.expect("an append with an event is sealed into an entry"))
    }

    /// Records an event whose failure to record must not undo what already happened (a leave,
    /// a refused upload): queued in order behind everything before it, and not waited for; a
    /// failure is logged by the writer.
    pub async fn record_or_log(&self, event: AuditEvent) {
        self.submit_or_log(Append::entry(event)).await;
    }

    /// Queues an append (waiting only while the queue is full) and returns what resolves when
    /// it is committed, so the caller can go on meanwhile.
    pub async fn submit(&self, append: Append) -> Result<Durable, AuditError> {
        let durable = self.writer.send(append, true).await?;
        Ok(durable.expect("a durable append has a receiver"))
    }

    /// Queues an append that nobody waits for. Its audit entry is written even if its rows
    /// cannot be (what it records has happened); failures are logged.
    pub async fn submit_or_log(&self, append: Append) {
        if let Err(e) = self.writer.send(append, false).await {
            tracing::error!(error = %e, "audit entry could not be written");
        }
    }

    /// Waits until everything queued before is committed (or failed).
    pub async fn flush(&self) -> Result<(), AuditError> {
        self.writer.flush().await
    }

    /// Writes what is queued and stops the writer (server shutdown); appends after it fail
    /// with [`AuditError::Closed`]. Reading still works.
    pub async fn close(&self) {
        self.writer.close().await;
    }

    /// What the writer has committed so far.
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
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
