//! The audit trail: an append-only, hash-chained log of every security- and care-relevant event
//! (sign-ins, rooms, invites, joins, documents, records, prescriptions, exports).
//!
//! Owns the entry format ([`entry`]), the chain (each entry holds the keyed hash of the one
//! before; [`chain`]), the key it is keyed with ([`key`], a file outside the database), the
//! anchors that pin its head outside the database ([`anchor`]), its verification, and the one
//! task that appends to it ([`writer`]: group commit in chain order). Other modules describe
//! what happened with an [`AuditEvent`] and call [`AuditLog::record`] (wait until it is on the
//! record) or [`AuditLog::record_or_log`] (queue it and go on); a room hands its join, leave
//! and chat rows to the same writer ([`AuditLog::submit`]) so that they never wait on the
//! database in its task. Nothing else writes the `audit_log` table, and nothing ever updates or
//! deletes a row of it.
//!
//! What the key and the anchors protect against, and what they do not, is in
//! docs/ARCHITECTURE.md ("The audit trail").

mod anchor;
mod chain;
mod entry;
mod key;
mod refusals;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use sqlx::Row;
use sqlx::any::AnyRow;

pub use anchor::Anchor;
pub(crate) use anchor::parse as parse_anchors;
pub use chain::{AnchorBreakKind, BreakKind, BrokenAnchor, BrokenLink, Verification};
pub(crate) use chain::{GENESIS, KEYED, Walk, keyed_hash};
pub use entry::{Action, Actor, AuditEntry, AuditEvent, Outcome};
pub use key::{AuditKey, KeyError};
pub use refusals::{PER_WINDOW as REFUSALS_PER_WINDOW, RefusalLimiter};
pub use writer::{Append, Durable, MAX_BATCH, WriterStats, Written};

use crate::domain::ids::InstitutionId;
use crate::storage::{Change, Db, PendingAudit, StorageError};

/// Rows read per query while verifying or exporting: what one of them holds in memory at a
/// time.
const PAGE: i64 = 1000;
/// Verifications under way at once at most (each walks the whole trail, reading the database
/// for as long as it takes); one more is refused with [`AuditError::Busy`]. Exports take a
/// turn among them for each page they read, waiting for one (a slow download holds none).
pub const MAX_FULL_READS: usize = 2;
/// Appends queued for the writer at most; a caller waits while the queue is full.
pub const QUEUE: usize = 1024;
/// Owed entries read per query by [`AuditLog::append_pending`].
const PENDING_PAGE: u32 = 256;

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
    /// [`MAX_FULL_READS`] verifications are under way already.
    #[error("the audit trail is being verified already; try again in a moment")]
    Busy,
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(
        "the audit trail's entry {0} does not verify with this audit key: the trail was keyed \
         with another key (audit.key_file), or the entry was altered; run `huizhen audit verify`"
    )]
    WrongKey(i64),
    #[error(
        "the audit key file {path} is missing, but the audit trail is keyed from entry {seq}: \
         restore the key file (a new key could not verify the trail)"
    )]
    KeyMissing { path: String, seq: i64 },
    #[error("the audit anchor file {path}: {source}")]
    Anchors {
        path: String,
        source: std::io::Error,
    },
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
    key: AuditKey,
    writer: writer::Handle,
    /// Keeps refusals from flooding the trail ([`AuditLog::refused`]).
    refusals: Arc<RefusalLimiter>,
    anchors: Option<Arc<Anchoring>>,
    /// One permit per verification or export under way ([`MAX_FULL_READS`]).
    full_reads: Arc<tokio::sync::Semaphore>,
}

/// The anchor file and the last anchor written to it.
#[derive(Debug)]
struct Anchoring {
    path: PathBuf,
    /// `None` until read from the file; then the last anchor, if any. Also makes anchorings
    /// take turns.
    last: tokio::sync::Mutex<Option<Option<Anchor>>>,
}

/// What [`AuditLog::anchor`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchored {
    /// No anchor file is configured.
    NoAnchorFile,
    /// The head has not moved since the last anchor (or there is no entry yet).
    Unmoved,
    /// A new anchor was appended to the file (and logged).
    Written(Anchor),
    /// Not anchored: since the last anchor the chain was rewritten, cut short or broken at
    /// entry `seq`. Anchoring what is there now would vouch for it; `huizhen audit verify`
    /// says more.
    Refused { seq: i64, reason: String },
}

const COLUMNS: &str = "seq, at_ms, actor, actor_role, action, room_id, object_type, object_id, \
                       object_sha256, outcome, detail, prev_hash, hash, scheme";

impl AuditLog {
    /// Starts the writer task on the current tokio runtime; entries are sealed with `key`. No
    /// anchor file: see [`AuditLog::with_anchor_file`].
    pub fn new(db: Db, key: AuditKey) -> Self {
        Self::with_queue(db, key, QUEUE)
    }

    /// With a writer queue of `capacity` appends (tests use a tiny one).
    pub fn with_queue(db: Db, key: AuditKey, capacity: usize) -> Self {
        Self {
            writer: writer::Handle::start(db.clone(), capacity, key.clone()),
            db,
            key,
            refusals: Arc::default(),
            anchors: None,
            full_reads: Arc::new(tokio::sync::Semaphore::new(MAX_FULL_READS)),
        }
    }

    /// Anchors go to (and are verified from) `path`.
    pub fn with_anchor_file(mut self, path: PathBuf) -> Self {
        self.anchors = Some(Arc::new(Anchoring {
            path,
            last: tokio::sync::Mutex::new(None),
        }));
        self
    }

    /// What a server (or a command that appends) starts with: the key from `key_file`, created
    /// there on first use, but never while the trail is keyed already (that key is lost, and a
    /// new one would seal entries nobody could verify with the old); the key checked against
    /// the trail's first keyed entry; anchors in `anchor_file`.
    pub async fn open(db: Db, key_file: &Path, anchor_file: PathBuf) -> Result<Self, AuditError> {
        let first_keyed = first_keyed(&db).await?;
        let key = match AuditKey::load(key_file) {
            Ok(key) => key,
            Err(KeyError::Missing(path)) => match &first_keyed {
                Some(e) => return Err(AuditError::KeyMissing { path, seq: e.seq }),
                None => match AuditKey::create(key_file) {
                    Ok(key) => key,
                    // Another process created it meanwhile.
                    Err(KeyError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        AuditKey::load(key_file)?
                    }
                    Err(e) => return Err(e.into()),
                },
            },
            Err(e) => return Err(e.into()),
        };
        let log = Self::new(db, key).with_anchor_file(anchor_file);
        match first_keyed {
            Some(e) if chain::keyed_hash(&e, &log.key) != e.hash => {
                return Err(AuditError::WrongKey(e.seq));
            }
            Some(_) => {}
            // Keyed now rather than at the next append, so that a trail with a key is keyed:
            // one rewritten to the end without the key cannot pass for one never keyed.
            None => {
                log.submit(Append::key_chain()).await?.await?;
            }
        }
        Ok(log)
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

    /// Appends the entries a committed step owes (`storage::audit_pending`), in their order,
    /// each removing its row in its own append's transaction; queued and not waited for. One
    /// whose row is gone already (appended meanwhile by [`AuditLog::append_pending`]) is not
    /// written again; one that fails stays owed, for the next [`AuditLog::append_pending`].
    pub async fn record_owed(&self, owed: &[PendingAudit]) {
        for pending in owed {
            let Some(event) = AuditEvent::from_json(&pending.event) else {
                tracing::error!(id = %pending.id, "an owed audit entry is not an event");
                continue;
            };
            self.submit_or_log(owed_append(pending, event)).await;
        }
    }

    /// Appends the entries owed by steps committed at or before `before_ms` and left behind
    /// (a crash, or a failed append, between the step's commit and its entries' append), oldest
    /// first, and answers how many were written. Each says it was written late, and when its
    /// step was. Run at startup and by the server's housekeeping.
    pub async fn append_pending(&self, before_ms: i64) -> Result<usize, AuditError> {
        let mut written = 0;
        let mut after = None;
        loop {
            let page = self
                .db
                .pending_audit(before_ms, after.as_ref(), PENDING_PAGE)
                .await?;
            let mut appends = Vec::with_capacity(page.owed.len());
            for pending in &page.owed {
                let Some(event) = AuditEvent::from_json(&pending.event) else {
                    // Written by this code only: a damaged row stays for someone to look at,
                    // and does not hold up the others.
                    tracing::error!(id = %pending.id, "an owed audit entry is not an event");
                    continue;
                };
                let event = event.detail_field(
                    "recorded_late",
                    serde_json::json!({"step_at_ms": pending.at_ms}),
                );
                appends.push(self.submit(owed_append(pending, event)).await?);
            }
            for durable in appends {
                if durable.await?.is_some() {
                    written += 1;
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(written),
            }
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
        self.entries_for(after, limit, room, None).await
    }

    /// Like [`AuditLog::entries`], and with `institution`, only the entries that concern it:
    /// in its consultations, by its accounts (signed in, or in a room through their care-team
    /// seat: what its specialist signed in another institution's consultation), about its
    /// accounts, itself or its departments, or about consultation requests it sent or received
    /// (an institution's supervisor reads these; a request between two institutions is in both
    /// their trails).
    pub async fn entries_for(
        &self,
        after: i64,
        limit: i64,
        room: Option<&str>,
        institution: Option<&InstitutionId>,
    ) -> Result<Vec<AuditEntry>, AuditError> {
        if let Some(institution) = institution {
            let room_clause = if room.is_some() {
                "AND room_id = $4"
            } else {
                ""
            };
            let sql = format!(
                "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 {room_clause} AND ( \
                 room_id IN (SELECT id FROM rooms WHERE institution_id = $3) \
                 OR actor IN (SELECT id FROM users WHERE institution_id = $3) \
                 OR actor IN (SELECT p.id FROM participants p JOIN invites i ON i.id = p.invite_id \
                     JOIN users u ON u.id = i.account_id WHERE u.institution_id = $3) \
                 OR (object_type = 'user' AND object_id IN \
                     (SELECT id FROM users WHERE institution_id = $3)) \
                 OR (object_type = 'institution' AND object_id = $3) \
                 OR (object_type = 'department' AND object_id IN \
                     (SELECT id FROM departments WHERE institution_id = $3)) \
                 OR (object_type = 'referral' AND object_id IN \
                     (SELECT r.id FROM referrals r JOIN departments d ON d.id = r.target_department \
                      WHERE r.requester_institution = $3 OR d.institution_id = $3))) \
                 ORDER BY seq LIMIT $2"
            );
            let mut query = sqlx::query(&sql)
                .bind(after)
                .bind(limit)
                .bind(institution.as_str());
            if let Some(room) = room {
                query = query.bind(room);
            }
            let rows = query.fetch_all(self.db.pool()).await?;
            return rows.iter().map(from_row).collect();
        }
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

    /// Walks the whole chain from the first entry and reports the first broken link, if any,
    /// and compares every anchor of the anchor file with it.
    /// One of [`MAX_FULL_READS`] at a time: [`AuditError::Busy`] when they are taken.
    pub async fn verify(&self) -> Result<Verification, AuditError> {
        let _slot = self.full_read()?;
        let lines = match &self.anchors {
            Some(a) => {
                let (path, key) = (a.path.clone(), self.key.clone());
                blocking(&a.path, move || anchor::read_all(&path, &key)).await?
            }
            None => Vec::new(),
        };
        let mut walk = chain::Walk::new(&self.key, lines);
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

    /// Writes an anchor for the chain's head, if it moved since the last one: after checking
    /// that the entry the last anchor names still has its hash and that every entry since
    /// links and hashes right (the whole chain, the first time), so that an anchor never vouches
    /// for a chain that was rewritten before it. Appended to the anchor file (synced) and
    /// logged at info level (sequence number and hashes only).
    pub async fn anchor(&self) -> Result<Anchored, AuditError> {
        let Some(anchoring) = &self.anchors else {
            return Ok(Anchored::NoAnchorFile);
        };
        let mut last = anchoring.last.lock().await;
        if last.is_none() {
            let (path, key) = (anchoring.path.clone(), self.key.clone());
            *last = Some(blocking(&anchoring.path, move || anchor::read_last(&path, &key)).await?);
        }
        let previous = last.clone().flatten();
        let (mut walk, mut after) = match &previous {
            None => (chain::Walk::new(&self.key, Vec::new()), 0),
            Some(p) => {
                let refused = |reason: &str| Anchored::Refused {
                    seq: p.seq,
                    reason: reason.to_owned(),
                };
                match self.entries(p.seq - 1, 1, None).await?.pop() {
                    Some(e) if e.seq == p.seq && e.hash == p.hash => {
                        (chain::Walk::after(&self.key, &e), p.seq)
                    }
                    Some(e) if e.seq == p.seq => {
                        return Ok(refused("the anchored entry was rewritten"));
                    }
                    _ => return Ok(refused("the anchored entry is gone")),
                }
            }
        };
        let start = after;
        loop {
            let page = self.entries(after, PAGE, None).await?;
            let Some(tail) = page.last() else { break };
            after = tail.seq;
            for entry in &page {
                if walk.step(entry).is_err() {
                    let v = walk.finish();
                    let b = v.first_broken.expect("a step failed");
                    return Ok(Anchored::Refused {
                        seq: b.seq,
                        reason: format!("the chain is broken there ({:?})", b.kind),
                    });
                }
            }
        }
        let v = walk.finish();
        if v.head_seq == start {
            return Ok(Anchored::Unmoved);
        }
        let anchor = Anchor::new(
            &self.key,
            v.head_seq,
            v.head_hash,
            crate::domain::clock::now_unix_ms(),
        );
        let (path, written) = (anchoring.path.clone(), anchor.clone());
        blocking(&anchoring.path, move || anchor::append(&path, &written)).await?;
        tracing::info!(
            seq = anchor.seq,
            hash = %anchor.hash,
            at_ms = anchor.at_ms,
            mac = %anchor.mac,
            "audit trail anchored"
        );
        *last = Some(Some(anchor.clone()));
        Ok(Anchored::Written(anchor))
    }

    /// Every entry as JSON Lines, oldest first.
    pub async fn export_jsonl(&self) -> Result<Vec<u8>, AuditError> {
        let mut out = Vec::new();
        let mut pages = std::pin::pin!(self.export(None));
        while let Some(page) = pages.next().await {
            out.extend_from_slice(&page?);
        }
        Ok(out)
    }

    /// Every entry, or every entry that concerns `institution` (see
    /// [`AuditLog::entries_for`]), as JSON Lines, oldest first, a page of entries per item: read
    /// from the database as the consumer asks for them, so an export holds one page in memory
    /// however long the trail. A partial export keeps each entry's hashes, so the gaps are
    /// visible and the entries it has can be checked against the network's full export.
    /// Each page is read in one of the [`MAX_FULL_READS`] turns, waited for: exports and
    /// verifications together never run more than that many walks of the trail at once, and a
    /// download that stalls holds no turn.
    pub fn export(
        &self,
        institution: Option<&InstitutionId>,
    ) -> impl futures_util::Stream<Item = Result<Vec<u8>, AuditError>> + use<> {
        let log = self.clone();
        let institution = institution.cloned();
        futures_util::stream::try_unfold(0i64, move |after| {
            let (log, institution) = (log.clone(), institution.clone());
            async move {
                let page = {
                    let _turn = log
                        .full_reads
                        .acquire()
                        .await
                        .map_err(|_| AuditError::Closed)?;
                    log.entries_for(after, PAGE, None, institution.as_ref())
                        .await?
                };
                let Some(last) = page.last() else {
                    return Ok(None);
                };
                let next = last.seq;
                let mut out = Vec::new();
                for entry in &page {
                    export_line(&mut out, entry);
                }
                Ok(Some((out, next)))
            }
        })
    }

    fn full_read(&self) -> Result<tokio::sync::OwnedSemaphorePermit, AuditError> {
        self.full_reads
            .clone()
            .try_acquire_owned()
            .map_err(|_| AuditError::Busy)
    }
}

/// The append that puts an owed entry on the chain: written only by the append that removes
/// its row, so once, whichever gets there first.
fn owed_append(pending: &PendingAudit, event: AuditEvent) -> Append {
    Append::entry(event)
        .with(Change::AuditPendingDone {
            id: pending.id.clone(),
        })
        .only_if_changed()
}

/// One entry as a line of the export: JSON, whose string escapes keep any newline in a field
/// (a detail, a name) inside its line.
pub(crate) fn export_line(out: &mut Vec<u8>, entry: &AuditEntry) {
    serde_json::to_writer(&mut *out, entry).expect("entries serialize");
    out.push(b'\n');
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
        scheme: row.try_get("scheme")?,
    })
}

/// The first entry sealed with a key, if any.
async fn first_keyed(db: &Db) -> Result<Option<AuditEntry>, AuditError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM audit_log WHERE scheme = $1 ORDER BY seq LIMIT 1"
    ))
    .bind(chain::KEYED)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// File work on the anchor file, off the runtime's threads (it syncs).
async fn blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, AuditError> {
    let path = path.display().to_string();
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(source)) => Err(AuditError::Anchors { path, source }),
        Err(e) => Err(AuditError::Anchors {
            path,
            source: std::io::Error::other(e.to_string()),
        }),
    }
}
