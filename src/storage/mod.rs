//! Durable state: institutions and departments, clinician accounts and their sessions,
//! consultation rooms and their care teams, invites, who took
//! part, shared documents (their rows; the bytes are in `crate::documents`' blob store),
//! annotations, chat and clinical records, institutions' webhooks and their outbox. The audit trail's table is written only by `crate::audit`.
//!
//! One code path for SQLite (the embedded default) and PostgreSQL (`postgres://` URLs) through
//! sqlx's `Any` driver; the SQL is written to run unchanged on both (numbered `$n` parameters,
//! BIGINT times). Live room state (who is connected) is not stored here: it lives in `rooms`.

mod audit_pending;
mod care_team;
mod change;
mod chat;
mod consents;
mod documents;
mod invites;
mod organisation;
mod participants;
pub mod private;
mod records;
// Consultation requests (referrals).
mod referral_consents;
mod referral_documents;
mod referrals;
mod rooms;
mod sessions;
mod signing_pins;
mod users;
// Outgoing webhooks: endpoints and the outbox.
mod webhooks;

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions};

pub use audit_pending::{PendingAfter, PendingAudit, PendingPage};
pub use care_team::CareTeamMember;
pub use change::Change;
pub use chat::ChatRecord;
pub use consents::ConsentRecord;
pub use documents::{
    AnnotationRecord, DocumentRecord, PersonUsage, QuotaRefusal, RoomUsage, UploadQuota,
    UploadRecord,
};
pub use invites::Invite;
// Invitations: windows, uses, short codes.
pub use invites::{InviteUse, NewInvite};
pub use organisation::{
    Department, Institution, MAX_DEPARTMENTS, MAX_DEPARTMENTS_PER_INSTITUTION, MAX_INSTITUTIONS,
    PlaceNames,
};
pub use participants::ParticipantRecord;
pub use records::{PendingDraft, RecordEvent, RecordRow, Signature};
pub use referral_consents::ReferralConsentRecord;
pub use referral_documents::{
    AttachLimits, AttachRefusal, AttachmentSource, DetachRefusal, PatientDocument,
    ReferralDocumentRow,
};
pub use referrals::{
    MAX_OPEN_REFERRALS_PER_REQUESTER, MAX_REFERRALS_PER_REQUESTER_PER_DAY, NewReferralEvent,
    ReferralBox, ReferralEvent, ReferralRow, ReferralStep, RoomStep, SteppedRow,
};
pub use rooms::{Rescheduled, RoomRecord, RoomStatus};
pub use sessions::{RevokeReason, Revoked, SessionRow};
pub use signing_pins::PinAttempt;
pub use users::{AccountChange, AccountQuery, DirectoryQuery, NewAccount, User};
pub use webhooks::{AttemptEnd, DeliveryRow, DueEvent, WebhookRow};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("already exists")]
    Conflict,
    #[error("not found")]
    NotFound,
    /// An account was to be placed in a department that is not (or, removed meanwhile, no
    /// longer) one of its institution's.
    #[error("no such department in this institution")]
    NoSuchDepartment,
    /// A count that a write would take past its cap: `limit` names it, `max` is the cap.
    #[error("at most {max} ({limit})")]
    Limit { limit: &'static str, max: i64 },
    #[error("stored value is corrupt: {0}")]
    Corrupt(&'static str),
    #[error("cannot prepare storage: {0}")]
    Setup(String),
}

/// A handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    postgres: bool,
}

impl Db {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        sqlx::any::install_default_drivers();
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if let Some(dir) = std::path::Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|e| StorageError::Setup(e.to_string()))?;
            }
        }
        // Statement logging would put patient references and names into the logs.
        let options = AnyConnectOptions::from_str(url)?.disable_statement_logging();
        let is_sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            // SQLite serializes writers anyway; a small pool avoids "database is locked".
            .max_connections(if is_sqlite { 4 } else { 16 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if is_sqlite {
                        use sqlx::Executor;
                        conn.execute("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            postgres: !is_sqlite,
        })
    }

    /// SQLite's journal mode for this database (`wal` once connected); for tests and checks.
    pub async fn journal_mode(&self) -> Result<String, StorageError> {
        Ok(sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&self.pool)
            .await?)
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// PostgreSQL rather than SQLite: for the few statements that differ (how a writer takes
    /// its lock).
    pub(crate) fn is_postgres(&self) -> bool {
        self.postgres
    }

    /// A transaction that writes. On SQLite it takes the write lock as it begins (`BEGIN
    /// IMMEDIATE`): a transaction that read first would have to upgrade its lock midway, which
    /// WAL refuses at once ("database is locked") instead of waiting its turn. PostgreSQL locks
    /// the rows as the transaction writes them.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StorageError> {
        Ok(if self.postgres {
            self.pool.begin().await?
        } else {
            self.pool.begin_with("BEGIN IMMEDIATE").await?
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Most ids one `IN (...)` names: far below either database's limit on parameters.
const IDS_PER_QUERY: usize = 500;

/// The rows `select` (a query written here, never a caller's, ending in `WHERE id IN`) finds
/// for `ids`, each id once, a few queries for any number of them (in no particular order).
pub(crate) async fn rows_with_ids<'a>(
    db: &Db,
    select: &str,
    ids: impl Iterator<Item = &'a str>,
) -> Result<Vec<sqlx::any::AnyRow>, StorageError> {
    let mut ids: Vec<&str> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    let mut found = Vec::new();
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let marks: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
        let sql = format!("{select} ({})", marks.join(", "));
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        found.extend(query.fetch_all(db.pool()).await?);
    }
    Ok(found)
}

/// Maps foreign-key violations (a row still referred to, or referring to one that is gone) to
/// [`StorageError::Conflict`].
fn map_foreign_key(e: sqlx::Error) -> StorageError {
    match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StorageError::Conflict,
        _ => StorageError::Database(e),
    }
}

/// Maps unique-constraint violations to [`StorageError::Conflict`].
fn map_unique(e: sqlx::Error) -> StorageError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict,
        _ => StorageError::Database(e),
    }
}
