//! The one task that appends to the audit trail: group commit in chain order.
//!
//! Callers queue an [`Append`] on a bounded channel (a full queue makes them wait: an entry is
//! never dropped) and either keep a [`Durable`] to learn when it is committed or go on at once
//! (the order is kept either way). The task takes whatever is queued, up to [`MAX_BATCH`],
//! seals the entries on the chain's head in queue order and writes them, with the row changes
//! that ride with them, in one transaction: one commit (one fsync) for the lot, whatever the
//! number of rooms and requests that queued them. In this process only this task appends, which
//! is what the old process-wide mutex ensured, minus the waiting.
//!
//! Other processes sharing a PostgreSQL database append too. Each batch's transaction first
//! takes a transaction-scoped advisory lock (on SQLite, `BEGIN IMMEDIATE` takes the write lock)
//! and reads the head under it, so processes append in turn rather than race: racing on `seq`
//! alone starved the process that read the head last, retry after retry, while another kept
//! appending. `seq` stays the primary key all the same: a batch sealed on a stale head (a
//! process that does not take the lock) fails as a duplicate, and the task reads the head
//! again, seals the batch again and retries. A batch that fails for another reason is written
//! again one append at a time, so one bad row fails only its own append.
//!
//! Acknowledgements go out in queue order after the commit, so an acknowledged append also
//! means that everything queued before it was written (or failed).
//!
//! Entries are sealed with the audit key. A head this key did not seal is not built on (every
//! append of the batch fails with [`AuditError::WrongKey`]): another process with another key,
//! or a forged head. On a head an earlier version sealed without a key, the batch starts with a
//! `chain.keyed` entry naming the key, and everything from it on is keyed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};

use super::{Action, Actor, AuditEntry, AuditError, AuditEvent, AuditKey, COLUMNS, chain};
use crate::domain::clock::now_unix_ms;
use crate::storage::{Change, Db, StorageError};

/// Appends committed in one transaction at most.
pub const MAX_BATCH: usize = 256;
/// Entries per `INSERT` statement (14 parameters each).
const ROWS_PER_INSERT: usize = 64;
/// Columns of an entry.
const COLUMN_COUNT: usize = 14;
/// How often a batch is sealed again when another server process took the same sequence
/// numbers.
const APPEND_ATTEMPTS: usize = 8;
/// The advisory lock every huizhen process takes on PostgreSQL to append (an arbitrary key,
/// the same everywhere: "hzaudit" in ASCII).
const APPEND_LOCK: i64 = 0x0068_7a61_7564_6974;

/// What one append writes: an audit entry, row changes, or both, committed together.
#[derive(Debug, Clone)]
pub struct Append {
    event: Option<AuditEvent>,
    changes: Vec<Change>,
    /// Key the chain if an earlier version began it unkeyed, even with no entry of its own.
    key_chain: bool,
    /// The entry is written only if every change changed a row ([`Append::only_if_changed`]).
    conditional: bool,
}

impl Append {
    /// An audit entry.
    pub fn entry(event: AuditEvent) -> Self {
        Self {
            event: Some(event),
            changes: Vec::new(),
            key_chain: false,
            conditional: false,
        }
    }

    /// Row changes and no audit entry (a chat message, the rows of an ending room).
    pub fn rows(changes: Vec<Change>) -> Self {
        Self {
            event: None,
            changes,
            key_chain: false,
            conditional: false,
        }
    }

    /// Nothing but the `chain.keyed` entry, if the chain's head is not keyed yet.
    pub(super) fn key_chain() -> Self {
        Self {
            event: None,
            changes: Vec::new(),
            key_chain: true,
            conditional: false,
        }
    }

    /// A row change committed in the same transaction as the rest.
    pub fn with(mut self, change: Change) -> Self {
        self.changes.push(change);
        self
    }

    /// Writes the entry only if each change changed a row when it was committed: two requests
    /// deciding the same change at once (a consent given twice at once) both queue it, the
    /// rows' own conditions let only the first take effect, and only that one is on the
    /// record. The other's outcome is `Ok(None)`: nothing changed, nothing written.
    pub fn only_if_changed(mut self) -> Self {
        self.conditional = true;
        self
    }
}

/// The outcome of one append: the sealed entry (if it had one) once committed.
pub type Written = Result<Option<AuditEntry>, AuditError>;

/// Resolves when an append is committed (or failed). Polling it by reference is cancel-safe,
/// so a task can keep it in a queue and wait on it in a `select!`.
#[derive(Debug)]
#[must_use = "an append's outcome is only known by awaiting it"]
pub struct Durable(oneshot::Receiver<Written>);

impl Durable {
    /// The outcome, if it is known already.
    pub fn try_take(&mut self) -> Option<Written> {
        match self.0.try_recv() {
            Ok(w) => Some(w),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(AuditError::Closed)),
        }
    }
}

impl Future for Durable {
    type Output = Written;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Written> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(AuditError::Closed)))
    }
}

/// What the writer has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed.
    pub commits: u64,
    /// Appends committed (entries, row changes or both).
    pub appends: u64,
    /// Audit entries committed.
    pub entries: u64,
    /// The most appends one transaction committed.
    pub largest_batch: u64,
    /// Batches sealed again because another process had taken their sequence numbers.
    pub conflicts: u64,
    /// Appends that failed.
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    appends: AtomicU64,
    entries: AtomicU64,
    largest_batch: AtomicU64,
    conflicts: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> WriterStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WriterStats {
            commits: get(&self.commits),
            appends: get(&self.appends),
            entries: get(&self.entries),
            largest_batch: get(&self.largest_batch),
            conflicts: get(&self.conflicts),
            failed: get(&self.failed),
        }
    }
}

pub(super) enum Msg {
    Append(Box<Job>),
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
    /// Write what is queued, refuse what comes after, stop.
    Close,
}

pub(super) struct Job {
    append: Append,
    /// When it happened: the entry's time, whenever it is written.
    at_ms: i64,
    /// `None`: nobody waits (what it records has happened); a failure is logged, and an entry
    /// whose rows cannot be written is written without them rather than lost.
    ack: Option<oneshot::Sender<Written>>,
}

/// The queue into the writer task; cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct Handle {
    tx: mpsc::Sender<Msg>,
    counters: Arc<Counters>,
    task: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Handle {
    /// Starts the writer task (on the current tokio runtime) with a queue of `capacity`,
    /// sealing entries with `key`.
    pub(super) fn start(db: Db, capacity: usize, key: AuditKey) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(run(db, rx, counters.clone(), key));
        Self {
            tx,
            counters,
            task: Arc::new(std::sync::Mutex::new(Some(task))),
        }
    }

    /// Queues an append; waits while the queue is full.
    pub(super) async fn send(
        &self,
        append: Append,
        durable: bool,
    ) -> Result<Option<Durable>, AuditError> {
        let (ack, durable) = if durable {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(Durable(rx)))
        } else {
            (None, None)
        };
        let job = Job {
            append,
            at_ms: now_unix_ms(),
            ack,
        };
        self.tx
            .send(Msg::Append(Box::new(job)))
            .await
            .map_err(|_| AuditError::Closed)?;
        Ok(durable)
    }

    pub(super) async fn flush(&self) -> Result<(), AuditError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Flush(tx))
            .await
            .map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| AuditError::Closed)
    }

    pub(super) async fn close(&self) {
        let _ = self.tx.send(Msg::Close).await;
        // std Mutex: only taken, never held across the await.
        let task = self.task.lock().expect("writer handle poisoned").take();
        if let Some(task) = task
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "audit writer task failed");
        }
    }

    pub(super) fn stats(&self) -> WriterStats {
        self.counters.snapshot()
    }
}

async fn run(db: Db, mut rx: mpsc::Receiver<Msg>, counters: Arc<Counters>, key: AuditKey) {
    let mut writer = Writer { db, counters, key };
    let mut jobs = Vec::new();
    let mut flushed = Vec::new();
    // `recv` answers `None` once the queue is closed (`Close`, or every handle dropped) and
    // drained: everything queued before is written first.
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Append(job) => jobs.push(*job),
                Msg::Flush(done) => flushed.push(done),
                Msg::Close => rx.close(),
            }
            next = if jobs.len() < MAX_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        writer.commit(std::mem::take(&mut jobs)).await;
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Why a transaction did not commit.
enum Failure {
    /// Another process took a sequence number: seal again on the new head.
    Duplicate,
    /// A statement was refused (a constraint): the other appends of the batch may be fine.
    Statement(AuditError),
    /// The database is unreachable or the connection broke: every append fails alike.
    Database(AuditError),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(_) => Failure::Statement(e.into()),
            e => Failure::Database(e.into()),
        }
    }
}

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Database(e) => e.into(),
            e => Failure::Statement(e.into()),
        }
    }
}

struct Writer {
    db: Db,
    counters: Arc<Counters>,
    key: AuditKey,
}

impl Writer {
    async fn commit(&mut self, mut jobs: Vec<Job>) {
        if jobs.len() <= 1 {
            if let Some(job) = jobs.pop() {
                self.commit_one(job).await;
            }
            return;
        }
        match self.write(&jobs).await {
            Ok(sealed) => {
                self.count_commit(&jobs, &sealed);
                for (job, entry) in jobs.into_iter().zip(sealed.entries) {
                    if let Some(ack) = job.ack {
                        let _ = ack.send(Ok(entry));
                    }
                }
            }
            Err(Failure::Statement(_)) => {
                // Find the append that cannot be written: each alone, in order.
                for job in jobs {
                    self.commit_one(job).await;
                }
            }
            Err(failure) => {
                let error = match failure {
                    Failure::Database(e) => Some(e.to_string()),
                    _ => None,
                };
                for job in jobs {
                    self.fail(job, || match &error {
                        None => AuditError::Contention(APPEND_ATTEMPTS),
                        Some(e) => AuditError::Unwritten(e.clone()),
                    });
                }
            }
        }
    }

    async fn commit_one(&mut self, job: Job) {
        let jobs = [job];
        match self.write(&jobs).await {
            Ok(sealed) => {
                self.count_commit(&jobs, &sealed);
                let [job] = jobs;
                if let Some(ack) = job.ack {
                    let _ = ack.send(Ok(sealed.entries.into_iter().next().flatten()));
                }
            }
            Err(Failure::Statement(e)) => {
                let [mut job] = jobs;
                // An entry that stands only with its rows (`only_if_changed`: a consent given,
                // an owed entry removing its row) is not written without them.
                if job.ack.is_none()
                    && job.append.event.is_some()
                    && !job.append.changes.is_empty()
                    && !job.append.conditional
                {
                    // What it records has happened: the entry goes in even if its rows cannot.
                    tracing::error!(error = %e, "rows not stored; writing their audit entry alone");
                    job.append.changes.clear();
                    Box::pin(self.commit_one(job)).await;
                } else {
                    self.fail(job, || e);
                }
            }
            Err(Failure::Duplicate) => {
                let [job] = jobs;
                self.fail(job, || AuditError::Contention(APPEND_ATTEMPTS));
            }
            Err(Failure::Database(e)) => {
                let [job] = jobs;
                self.fail(job, || e);
            }
        }
    }

    fn fail(&self, job: Job, error: impl FnOnce() -> AuditError) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        let error = error();
        match job.ack {
            Some(ack) => {
                let _ = ack.send(Err(error));
            }
            None => tracing::error!(error = %error, "audit entry could not be written"),
        }
    }

    fn count_commit(&self, jobs: &[Job], sealed: &Sealed) {
        let c = &self.counters;
        c.commits.fetch_add(1, Ordering::Relaxed);
        c.appends.fetch_add(jobs.len() as u64, Ordering::Relaxed);
        c.entries
            .fetch_add(sealed.all().count() as u64, Ordering::Relaxed);
        c.largest_batch
            .fetch_max(jobs.len() as u64, Ordering::Relaxed);
    }

    /// Seals the batch's entries on the head and commits them with their rows; on a duplicate
    /// sequence number, again on the new head.
    async fn write(&mut self, jobs: &[Job]) -> Result<Sealed, Failure> {
        for _ in 0..APPEND_ATTEMPTS {
            match self.transaction(jobs).await {
                Err(Failure::Duplicate) => {
                    self.counters.conflicts.fetch_add(1, Ordering::Relaxed);
                }
                done => return done,
            }
        }
        Err(Failure::Duplicate)
    }

    async fn transaction(&self, jobs: &[Job]) -> Result<Sealed, Failure> {
        let pool = self.db.pool();
        // The head is read under the lock every appending process takes, so it is the head.
        let mut tx = if self.db.is_postgres() {
            let mut tx = pool.begin().await?;
            // A void function in FROM: the result is an integer every driver reads.
            sqlx::query("SELECT 1 AS locked FROM pg_advisory_xact_lock($1)")
                .bind(APPEND_LOCK)
                .execute(&mut *tx)
                .await?;
            tx
        } else {
            pool.begin_with("BEGIN IMMEDIATE").await?
        };
        let head = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1"
        ))
        .fetch_optional(&mut *tx)
        .await?;
        let head = match head {
            Some(row) => {
                let head = super::from_row(&row).map_err(Failure::Database)?;
                // Sealing on a head this key did not seal would break the chain there: another
                // process holds another key, or the head was forged.
                if head.scheme == chain::KEYED && chain::keyed_hash(&head, &self.key) != head.hash {
                    return Err(Failure::Database(AuditError::WrongKey(head.seq)));
                }
                Head {
                    seq: head.seq,
                    keyed: head.scheme == chain::KEYED,
                    hash: head.hash,
                }
            }
            None => Head {
                seq: 0,
                hash: chain::GENESIS.to_owned(),
                // A new chain is keyed from its first entry.
                keyed: true,
            },
        };
        // A room's end queues its webhook event here too: one commit with the end. The rows
        // go first, so that an entry that records a change only if it took effect is sealed
        // only then.
        let changes: Vec<&Change> = jobs.iter().flat_map(|j| &j.append.changes).collect();
        let mut affected = Change::apply_all(&changes, &mut tx).await?.into_iter();
        let void: Vec<bool> = jobs
            .iter()
            .map(|j| {
                let took = affected
                    .by_ref()
                    .take(j.append.changes.len())
                    .all(|n| n > 0);
                j.append.conditional && !took
            })
            .collect();
        let sealed = seal(jobs, &void, head, &self.key);
        let entries: Vec<&AuditEntry> = sealed.all().collect();
        for chunk in entries.chunks(ROWS_PER_INSERT) {
            let mut sql = format!("INSERT INTO audit_log ({COLUMNS}) VALUES ");
            for i in 0..chunk.len() {
                let n = i * COLUMN_COUNT;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                for k in 1..=COLUMN_COUNT {
                    if k > 1 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("${}", n + k));
                }
                sql.push(')');
            }
            let mut query = sqlx::query(&sql);
            for e in chunk {
                query = query
                    .bind(e.seq)
                    .bind(e.at_ms)
                    .bind(e.actor.as_str())
                    .bind(e.actor_role.as_str())
                    .bind(e.action.as_str())
                    .bind(e.room_id.as_str())
                    .bind(e.object_type.as_str())
                    .bind(e.object_id.as_str())
                    .bind(e.object_sha256.as_str())
                    .bind(e.outcome.as_str())
                    .bind(e.detail.as_str())
                    .bind(e.prev_hash.as_str())
                    .bind(e.hash.as_str())
                    .bind(e.scheme.as_str());
            }
            match query.execute(&mut *tx).await {
                Ok(_) => {}
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    return Err(Failure::Duplicate);
                }
                Err(e) => return Err(e.into()),
            }
        }
        tx.commit().await?;
        Ok(sealed)
    }
}

/// The chain's last entry, as a batch is sealed on it.
struct Head {
    seq: i64,
    hash: String,
    /// Sealed with the key (or no entry yet).
    keyed: bool,
}

/// A batch's entries, sealed.
struct Sealed {
    /// The `chain.keyed` entry that goes first when the head was sealed without the key.
    switch: Option<AuditEntry>,
    /// The entry of each job, in the order of the jobs (`None`: rows only).
    entries: Vec<Option<AuditEntry>>,
}

impl Sealed {
    /// Every entry to insert, in chain order.
    fn all(&self) -> impl Iterator<Item = &AuditEntry> {
        self.switch.iter().chain(self.entries.iter().flatten())
    }
}

/// The batch's entries sealed on `head` with `key`, in order, but those of the `void` jobs
/// (conditional, and a change of theirs changed nothing); on a chain an earlier version began
/// without the key, a `chain.keyed` entry first, naming the key.
fn seal(jobs: &[Job], void: &[bool], head: Head, key: &AuditKey) -> Sealed {
    let Head {
        mut seq,
        hash: mut prev,
        keyed,
    } = head;
    let first = jobs
        .iter()
        .zip(void)
        .find(|(j, void)| (j.append.event.is_some() && !**void) || j.append.key_chain)
        .map(|(j, _)| j);
    let switch = match first {
        Some(job) if !keyed => {
            seq += 1;
            let entry = AuditEvent::new(Actor::System, Action::ChainKeyed)
                .detail(serde_json::json!({ "key_id": key.id(), "scheme": chain::KEYED }))
                .seal(seq, std::mem::take(&mut prev), job.at_ms, key);
            prev = entry.hash.clone();
            Some(entry)
        }
        _ => None,
    };
    let entries = jobs
        .iter()
        .zip(void)
        .map(|(job, void)| {
            if *void {
                return None;
            }
            let event = job.append.event.clone()?;
            seq += 1;
            let entry = event.seal(seq, std::mem::take(&mut prev), job.at_ms, key);
            prev = entry.hash.clone();
            Some(entry)
        })
        .collect();
    Sealed { switch, entries }
}
#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;
    use crate::audit::{Action, Actor, AuditLog};
    use crate::domain::ids::{InviteId, ParticipantId, RoomId};
    use crate::domain::role::Role;

    async fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("a.db").display());
        let db = Db::connect(&url).await.unwrap();
        (dir, db)
    }

    fn event(task: usize, n: usize) -> AuditEvent {
        AuditEvent::new(Actor::System, Action::AuditRead).object("probe", format!("{task}:{n}"))
    }

    /// A database with one room in it (rows may name it).
    async fn db_with_room() -> (tempfile::TempDir, Db, RoomId) {
        let (dir, db) = db().await;
        let user = db
            .create_user("d", "D", crate::domain::role::AccountRole::Doctor, "x")
            .await
            .unwrap();
        let room = db.create_room("R", None, &user.id).await.unwrap().id;
        (dir, db, room)
    }

    async fn count(db: &Db, table: &str) -> i64 {
        sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .fetch_one(db.pool())
            .await
            .unwrap()
            .try_get("n")
            .unwrap()
    }

    #[tokio::test]
    async fn an_acknowledged_append_is_in_the_table() {
        let (_dir, db) = db().await;
        let log = AuditLog::new(db.clone(), AuditKey::random());
        let entry = log.record(event(0, 0)).await.unwrap();
        assert_eq!(entry.seq, 1);
        let mut durable = log.submit(Append::entry(event(0, 1))).await.unwrap();
        let second = (&mut durable).await.unwrap().unwrap();
        assert_eq!(second.seq, 2);
        assert_eq!(second.prev_hash, entry.hash);
        let stored = log.entries(0, 10, None).await.unwrap();
        assert_eq!(stored, vec![entry, second]);
        log.close().await;
    }

    #[tokio::test]
    async fn a_full_queue_makes_callers_wait_and_loses_nothing() {
        let (_dir, db) = db().await;
        let log = AuditLog::with_queue(db.clone(), AuditKey::random(), 1);
        let tasks: Vec<_> = (0..10)
            .map(|t| {
                let log = log.clone();
                tokio::spawn(async move {
                    for n in 0..20 {
                        log.record_or_log(event(t, n)).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        log.flush().await.unwrap();
        assert_eq!(count(&db, "audit_log").await, 200);
        let v = log.verify().await.unwrap();
        assert!(v.ok() && v.entries == 200, "{v:?}");
        // Per caller, in the order it queued them.
        let entries = log.entries(0, 1000, None).await.unwrap();
        for t in 0..10 {
            let mine: Vec<usize> = entries
                .iter()
                .filter_map(|e| e.object_id.strip_prefix(&format!("{t}:")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..20).collect::<Vec<_>>());
        }
        log.close().await;
    }

    #[tokio::test]
    async fn rows_ride_in_the_entrys_transaction_and_a_bad_one_fails_alone() {
        let (_dir, db, room) = db_with_room().await;
        let log = AuditLog::new(db.clone(), AuditKey::random());
        let joined = |room: &RoomId| {
            let id = ParticipantId::generate();
            Append::entry(event(9, 0)).with(Change::participant_joined(
                room,
                &id,
                &InviteId::generate(),
                Role::Patient,
                "P",
            ))
        };
        // Queued before the writer runs (this runtime has one thread), so one batch: a row
        // naming a room that does not exist breaks the foreign key, and only its own append
        // fails, or, when nobody waits for it, loses only its row.
        let good = log.submit(joined(&room)).await.unwrap();
        let bad = log.submit(joined(&RoomId::generate())).await.unwrap();
        log.submit_or_log(joined(&RoomId::generate())).await;
        // One that stands only with its row (`only_if_changed`) is not written alone.
        log.submit_or_log(joined(&RoomId::generate()).only_if_changed())
            .await;
        let after = log.submit(joined(&room)).await.unwrap();
        assert!(good.await.unwrap().is_some());
        assert!(bad.await.is_err());
        assert!(after.await.unwrap().is_some());
        log.flush().await.unwrap();
        assert_eq!(count(&db, "participants").await, 2);
        // The entry nobody waited for is written without its row; the refused one and the
        // conditional one are not.
        assert_eq!(count(&db, "audit_log").await, 3);
        let v = log.verify().await.unwrap();
        assert!(v.ok(), "{v:?}");
        assert_eq!(log.writer_stats().failed, 2);
        log.close().await;
    }

    #[tokio::test]
    async fn a_conditional_entry_is_written_only_if_its_change_took_effect() {
        use crate::domain::consent::ConsentPurpose;
        let (_dir, db, room) = db_with_room().await;
        let log = AuditLog::new(db.clone(), AuditKey::random());
        let (patient, invite) = (ParticipantId::generate(), InviteId::generate());
        log.submit(Append::rows(vec![Change::participant_joined(
            &room,
            &patient,
            &invite,
            Role::Patient,
            "P",
        )]))
        .await
        .unwrap()
        .await
        .unwrap();
        let consent = |given: bool| {
            let action = if given {
                Action::ConsentGiven
            } else {
                Action::ConsentWithdrawn
            };
            Append::entry(AuditEvent::new(Actor::System, action))
                .with(Change::consent(
                    &room,
                    &patient,
                    &invite,
                    ConsentPurpose::ExternalSharing,
                    given,
                ))
                .only_if_changed()
        };
        // Withdrawing what was never given changes nothing: no entry.
        let none = log.submit(consent(false)).await.unwrap();
        assert!(none.await.unwrap().is_none());
        assert_eq!(count(&db, "audit_log").await, 0);
        // Given, then withdrawn twice in one batch (this runtime has one thread): the first
        // withdrawal is on the record, the second, which found nothing in force, is not, and
        // the chain stays whole around the gap.
        let given = log.submit(consent(true)).await.unwrap();
        let first = log.submit(consent(false)).await.unwrap();
        let second = log.submit(consent(false)).await.unwrap();
        let unconditional = log.submit(Append::entry(event(1, 1))).await.unwrap();
        assert!(given.await.unwrap().is_some());
        assert!(first.await.unwrap().is_some());
        assert!(second.await.unwrap().is_none());
        assert!(unconditional.await.unwrap().is_some());
        assert_eq!(count(&db, "audit_log").await, 3);
        let v = log.verify().await.unwrap();
        assert!(v.ok(), "{v:?}");
        log.close().await;
    }

    /// Two verifications or exports read the whole trail at once at most: with both turns
    /// taken, a third is refused at once; a turn given back lets the next one in.
    #[tokio::test]
    async fn full_reads_take_one_of_two_turns() {
        let (_dir, db) = db().await;
        let log = AuditLog::new(db.clone(), AuditKey::random());
        log.record(event(0, 0)).await.unwrap();
        let first = log.full_read().unwrap();
        let _second = log.full_read().unwrap();
        assert!(matches!(log.verify().await, Err(AuditError::Busy)));
        drop(first);
        assert!(log.verify().await.unwrap().ok());
        log.close().await;
    }

    #[tokio::test]
    async fn close_writes_what_is_queued_and_refuses_what_follows() {
        let (_dir, db) = db().await;
        let log = AuditLog::new(db.clone(), AuditKey::random());
        for n in 0..50 {
            log.record_or_log(event(0, n)).await;
        }
        log.close().await;
        assert_eq!(count(&db, "audit_log").await, 50);
        assert!(matches!(
            log.record(event(0, 50)).await,
            Err(AuditError::Closed)
        ));
        assert!(log.verify().await.unwrap().ok());
    }

    #[test]
    fn a_batch_is_sealed_in_order_on_the_head() {
        let key = AuditKey::random();
        let job = |n| Job {
            append: Append::entry(event(0, n)),
            at_ms: 5,
            ack: None,
        };
        let rows = || Job {
            append: Append::rows(vec![]),
            at_ms: 5,
            ack: None,
        };
        let head = |keyed| Head {
            seq: 7,
            hash: "ab".repeat(32),
            keyed,
        };
        let jobs = [job(0), rows(), job(1)];
        let sealed = seal(&jobs, &[false; 3], head(true), &key);
        assert!(sealed.switch.is_none());
        let [Some(a), None, Some(b)] = &sealed.entries[..] else {
            panic!("{:?}", sealed.entries);
        };
        assert_eq!((a.seq, b.seq), (8, 9));
        assert_eq!(a.prev_hash, "ab".repeat(32));
        assert_eq!(b.prev_hash, a.hash);
        assert_eq!(chain::keyed_hash(b, &key), b.hash);
        assert_eq!(b.scheme, chain::KEYED);

        // On a head an earlier version sealed without the key: `chain.keyed` first.
        let sealed = seal(&jobs, &[false; 3], head(false), &key);
        let switch = sealed.switch.as_ref().unwrap();
        assert_eq!((switch.seq, switch.action.as_str()), (8, "chain.keyed"));
        assert_eq!(switch.prev_hash, "ab".repeat(32));
        assert!(switch.detail.contains(&key.id()), "{}", switch.detail);
        let seqs: Vec<i64> = sealed.all().map(|e| e.seq).collect();
        assert_eq!(seqs, [8, 9, 10]);
        assert_eq!(sealed.entries[0].as_ref().unwrap().prev_hash, switch.hash);
        // Rows alone do not key the chain; asking to does.
        assert!(
            seal(&[rows()], &[false], head(false), &key)
                .switch
                .is_none()
        );
        let keying = Job {
            append: Append::key_chain(),
            at_ms: 5,
            ack: None,
        };
        let sealed = seal(&[keying], &[false], head(false), &key);
        assert_eq!(sealed.all().count(), 1);
        assert!(sealed.switch.is_some());
    }

    #[tokio::test]
    async fn a_head_sealed_with_another_key_is_not_built_on() {
        let (_dir, db) = db().await;
        let log = AuditLog::new(db.clone(), AuditKey::random());
        log.record(event(0, 0)).await.unwrap();
        log.close().await;
        let other = AuditLog::new(db.clone(), AuditKey::random());
        assert!(matches!(
            other.record(event(0, 1)).await,
            Err(AuditError::WrongKey(1))
        ));
        other.close().await;
        assert_eq!(count(&db, "audit_log").await, 1);
    }
}
