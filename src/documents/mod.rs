//! Documents shared in a consultation: resumable uploads, content checks, the blob store,
//! integrity on every read, and who may see or download what.
//!
//! Owns the life of a document from its first uploaded byte to every later read. An upload is a
//! row in `uploads` plus `<data_dir>/uploads/<id>.part`; each chunk is appended and synced before
//! it is acknowledged, so an acknowledged chunk survives a crash and the client resumes from the
//! last one. When the last byte arrives the whole file is hashed and compared with the SHA-256
//! the client declared, its content decides its kind ([`kind`]), it moves into the blob store
//! ([`blob`]), and only then does the document row appear, in the same transaction that removes
//! the upload. A crash at any point leaves no partial document visible.
//!
//! It does not decide roles (that is [`crate::domain::role::Role`]) and does not tell the room (the
//! HTTP edge does, through [`crate::rooms`]); it never logs names or content.
//!
//! # Quotas
//!
//! Sharing is bounded so that nobody can fill a consultation and lock the others out, and so
//! that the care team can always share (every number is a `documents.*` setting):
//!
//! - **Per person**: at most `max_open_uploads` uploads open at once, `max_documents_per_person`
//!   documents and `max_bytes_per_person` bytes in the room. A person is an invite, as for
//!   resuming: a reload or a second tab is a new participant with the same invite, and keeps
//!   the counts. These hold for every role, clinicians too (a leaked link is bounded).
//! - **Per room**: at most `max_per_room` documents, of which participants who are not
//!   clinicians (patients; observers share nothing) may share `max_per_room_non_clinicians`
//!   together. The rest is kept for doctors and specialists. The reserve is counted per role
//!   class, not per person, because a room can have several patient invites, each with a
//!   quota of its own: only a share counted across all of them guarantees the clinicians'
//!   places. Clinicians keep no reserve from each other: they run the consultation together,
//!   and each is bounded by the per-person limits.
//! - **An upload holds its places from its start**, as a document of its declared size: a
//!   refusal comes before any byte is sent, and finishing an upload never passes a quota (the
//!   place it turns into a document was taken when it started), so uploads finishing together
//!   at the edge of a quota cannot overshoot it. Cancelling, a failed check and expiry give the
//!   places back.
//! - **One atomic step**: the places are counters in the database, taken by conditional
//!   `UPDATE`s in the same transaction that inserts the upload ([`Db::start_upload`]), never a
//!   count read before an insert (20 requests at once would all read the same count). So the
//!   limits hold across requests, tasks and server processes sharing one database.
//!
//! A refusal is [`DocumentError::LimitReached`] with the [`Limit`] it met, whose message names
//! it in words the person can act on.

pub mod annotation;
pub mod blob;
pub mod dicom;
pub mod ecg;
pub mod gate;
pub(crate) mod kind;
pub mod previews;
pub mod render;
#[cfg(test)]
mod robustness;
pub mod viewable;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use blob::{BlobError, BlobStore, DiskBlobStore, Sha256Hex};
pub use kind::KindError;
pub use viewable::Viewable;

use crate::domain::clock::{now_unix, now_unix_ms};

use crate::config::DocumentsConfig;
use crate::domain::document::DocumentKind;
use crate::domain::ids::{AnnotationId, DocumentId, RoomId, UploadId, UserId};
use crate::domain::member::Member;
use crate::domain::role::{Role, Visibility};
use crate::storage::{
    AnnotationRecord, Db, DocumentRecord, QuotaRefusal, StorageError, UploadQuota, UploadRecord,
};

/// Text and ECG documents are read whole to check them; larger files must be binary kinds.
const MAX_TEXT_BYTES: u64 = 16 * 1024 * 1024;
/// Bytes read to recognise a binary kind.
const SNIFF_BYTES: usize = 4096;
const MAX_NAME_CHARS: usize = 200;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    #[error("your role may not {0}")]
    Forbidden(&'static str),
    #[error("no such document or upload in this consultation")]
    NotFound,
    #[error("the document is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("a chunk may be at most {limit} bytes")]
    ChunkTooLarge { limit: usize },
    #[error("{0}")]
    Invalid(String),
    #[error("limit reached: {0}")]
    LimitReached(Limit),
    /// The chunk does not start where the upload stands; resume from `expected`.
    #[error("the upload stands at byte {expected}; send the chunk that starts there")]
    OffsetMismatch { expected: u64 },
    #[error("another request is writing to this upload")]
    Busy,
    /// Showing the document would take more memory or pixels than the limits allow.
    #[error("{0}")]
    TooLargeToRender(String),
    /// Every render slot stayed taken for the whole wait; try again shortly.
    #[error("the server is busy showing other documents; try again in a moment")]
    RenderBusy,
    #[error("the content's SHA-256 does not match the one declared; the upload was discarded")]
    HashMismatch,
    #[error(transparent)]
    Unsupported(#[from] KindError),
    #[error("the stored document failed its integrity check")]
    Corrupt,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("document storage I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Blob(BlobError),
}

/// A quota that refused an upload, with its configured value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// `documents.max_open_uploads`.
    OpenUploads { max: usize },
    /// `documents.max_documents_per_person`.
    PersonDocuments { max: usize },
    /// `documents.max_bytes_per_person`; `used`: the person's bytes, shared and under way.
    PersonBytes { max: u64, used: u64 },
    /// `documents.max_per_room`.
    RoomDocuments { max: usize },
    /// `documents.max_per_room_non_clinicians`.
    RoomNonClinicians { max: usize },
}

impl Limit {
    /// A stable name for clients and the audit trail (the API error's `limit`).
    pub fn name(self) -> &'static str {
        match self {
            Limit::OpenUploads { .. } => "open_uploads",
            Limit::PersonDocuments { .. } => "documents_per_person",
            Limit::PersonBytes { .. } => "bytes_per_person",
            Limit::RoomDocuments { .. } => "documents_per_room",
            Limit::RoomNonClinicians { .. } => "non_clinician_documents_per_room",
        }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Limit::OpenUploads { max } => write!(
                f,
                "you may have at most {max} uploads under way at once; finish or cancel one first"
            ),
            Limit::PersonDocuments { max } => write!(
                f,
                "you may share at most {max} documents in this consultation (uploads under way \
                 count)"
            ),
            Limit::PersonBytes { max, used } => write!(
                f,
                "you may share at most {} in this consultation and {} are used (uploads under \
                 way count): this document does not fit",
                human_bytes(max),
                human_bytes(used)
            ),
            Limit::RoomDocuments { max } => write!(
                f,
                "this consultation holds at most {max} documents (uploads under way count)"
            ),
            Limit::RoomNonClinicians { max } => write!(
                f,
                "patients may share at most {max} documents in this consultation together \
                 (uploads under way count); the other places are kept for the doctors and \
                 specialists"
            ),
        }
    }
}

/// Bytes as people read them: "900 bytes", "1.5 MiB", "1 GiB".
fn human_bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if n >= size {
            let tenths = (n as u128 * 10 / size as u128) as u64;
            return if tenths.is_multiple_of(10) {
                format!("{} {unit}", tenths / 10)
            } else {
                format!("{}.{} {unit}", tenths / 10, tenths % 10)
            };
        }
    }
    format!("{n} bytes")
}

/// A configured count as the database compares it (a limit past `i64::MAX` is no limit).
fn as_i64<T: TryInto<i64>>(n: T) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

impl From<BlobError> for DocumentError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::Corrupt { .. } | BlobError::Missing => DocumentError::Corrupt,
            other => DocumentError::Blob(other),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct BeginUpload {
    pub name: String,
    pub size: u64,
    pub sha256: String,
    pub visibility: Visibility,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadStatus {
    pub upload_id: UploadId,
    /// Bytes received and synced: the next chunk starts here.
    pub offset: u64,
    pub size: u64,
    pub chunk_max: usize,
}

/// What a chunk did.
#[derive(Debug)]
pub enum ChunkOutcome {
    Partial(UploadStatus),
    Complete(DocumentRecord),
}

/// The document service; cheap to clone.
#[derive(Clone, Debug)]
pub struct Documents {
    db: Db,
    blobs: Arc<dyn BlobStore>,
    staging: PathBuf,
    /// Rendered pages and frames, and what the checks found, by content hash (a cache: safe to
    /// delete; see [`previews`]).
    previews: PathBuf,
    config: Arc<DocumentsConfig>,
    /// Renders running at once, server-wide.
    gate: gate::RenderGate,
    /// Uploads a request is writing to right now (one writer per upload).
    busy: Arc<Mutex<HashSet<UploadId>>>,
    /// Files being received whole (`incoming_dir`), per account: see [`Documents::receive_whole`].
    whole: Arc<Mutex<HashMap<UserId, usize>>>,
}

/// One file being received whole for an account; its place is given back when the request
/// ends, however it ends.
#[derive(Debug)]
pub struct WholeReceipt {
    places: Arc<Mutex<HashMap<UserId, usize>>>,
    account: UserId,
}

impl Drop for WholeReceipt {
    fn drop(&mut self) {
        let mut places = self.places.lock().expect("whole-file places poisoned");
        if let Some(n) = places.get_mut(&self.account) {
            *n -= 1;
            if *n == 0 {
                places.remove(&self.account);
            }
        }
    }
}

/// Releases an upload's writer slot when the request ends, however it ends.
struct BusyGuard {
    set: Arc<Mutex<HashSet<UploadId>>>,
    id: UploadId,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.set.lock().expect("busy set poisoned").remove(&self.id);
    }
}

impl Documents {
    /// Documents under `<data_dir>/documents`, staging under `<data_dir>/uploads`.
    pub fn open(
        db: Db,
        data_dir: &std::path::Path,
        config: DocumentsConfig,
    ) -> Result<Self, DocumentError> {
        let blobs = DiskBlobStore::new(data_dir.join("documents"))?;
        Self::with_store(db, Arc::new(blobs), data_dir.join("uploads"), config)
    }

    pub fn with_store(
        db: Db,
        blobs: Arc<dyn BlobStore>,
        staging: PathBuf,
        config: DocumentsConfig,
    ) -> Result<Self, DocumentError> {
        std::fs::create_dir_all(&staging)?;
        // Files received whole live there for one request; any left belong to a crash.
        let incoming = staging.with_file_name("incoming");
        std::fs::create_dir_all(&incoming)?;
        for entry in std::fs::read_dir(&incoming)?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(Self {
            db,
            blobs,
            previews: staging.with_file_name("previews"),
            staging,
            gate: gate::RenderGate::new(
                config.render_concurrency,
                Duration::from_secs(config.render_wait_s),
            ),
            config: Arc::new(config),
            busy: Arc::default(),
            whole: Arc::default(),
        })
    }

    /// A place for `account` to send one file whole (a consultation request's attachment):
    /// each is written to disk, up to `max_upload_bytes`, before it can be checked, so the
    /// files one account sends at once are bounded like its resumable uploads
    /// (`documents.max_open_uploads`); otherwise a few clients could fill the disk with files
    /// still arriving. Taken and counted under one lock: two requests at once cannot both
    /// take the last place.
    pub fn receive_whole(&self, account: &UserId) -> Result<WholeReceipt, DocumentError> {
        let max = self.config.max_open_uploads;
        let mut places = self.whole.lock().expect("whole-file places poisoned");
        let taken = places.entry(account.clone()).or_insert(0);
        if *taken >= max {
            return Err(DocumentError::LimitReached(Limit::OpenUploads { max }));
        }
        *taken += 1;
        Ok(WholeReceipt {
            places: self.whole.clone(),
            account: account.clone(),
        })
    }

    pub fn config(&self) -> &DocumentsConfig {
        &self.config
    }

    fn part_path(&self, id: &UploadId) -> PathBuf {
        self.staging.join(format!("{id}.part"))
    }

    pub async fn begin(
        &self,
        room: &RoomId,
        who: &Member,
        req: BeginUpload,
    ) -> Result<UploadStatus, DocumentError> {
        if !who.role.may_share(req.visibility) {
            return Err(DocumentError::Forbidden(match req.visibility {
                Visibility::Everyone => "share documents",
                Visibility::Clinicians => "share clinicians-only documents",
            }));
        }
        let name = validate_name(&req.name)?;
        if req.size == 0 {
            return Err(DocumentError::Invalid("the document is empty".into()));
        }
        if req.size > self.config.max_upload_bytes {
            return Err(DocumentError::TooLarge {
                limit: self.config.max_upload_bytes,
            });
        }
        let sha256 = Sha256Hex::parse(&req.sha256.to_ascii_lowercase())
            .ok_or_else(|| DocumentError::Invalid("sha256 must be 64 hexadecimal digits".into()))?;
        let c = &self.config;
        let upload = UploadRecord {
            id: UploadId::generate(),
            room_id: room.clone(),
            participant: who.participant.clone(),
            invite: who.invite.clone(),
            role: who.role,
            name,
            size: req.size as i64,
            sha256: sha256.to_string(),
            visibility: req.visibility,
            created_at: now_unix(),
        };
        let quota = UploadQuota {
            open_uploads: as_i64(c.max_open_uploads),
            person_documents: as_i64(c.max_documents_per_person),
            person_bytes: as_i64(c.max_bytes_per_person),
            room_documents: as_i64(c.max_per_room),
            room_non_clinician_documents: as_i64(c.max_per_room_non_clinicians),
        };
        // Checked and taken in one step: see "Quotas" above.
        if let Err(refusal) = self.db.start_upload(&upload, &quota).await? {
            return Err(DocumentError::LimitReached(match refusal {
                QuotaRefusal::OpenUploads => Limit::OpenUploads {
                    max: c.max_open_uploads,
                },
                QuotaRefusal::PersonDocuments => Limit::PersonDocuments {
                    max: c.max_documents_per_person,
                },
                QuotaRefusal::PersonBytes { used } => Limit::PersonBytes {
                    max: c.max_bytes_per_person,
                    used: used.max(0) as u64,
                },
                QuotaRefusal::RoomDocuments => Limit::RoomDocuments {
                    max: c.max_per_room,
                },
                QuotaRefusal::RoomNonClinicianDocuments => Limit::RoomNonClinicians {
                    max: c.max_per_room_non_clinicians,
                },
            }));
        }
        Ok(self.status_of(&upload, 0))
    }

    fn status_of(&self, u: &UploadRecord, offset: u64) -> UploadStatus {
        UploadStatus {
            upload_id: u.id.clone(),
            offset,
            size: u.size as u64,
            chunk_max: self.config.max_chunk_bytes,
        }
    }

    /// The upload, if it is in `room` and belongs to `who` (the same person: their invite).
    async fn owned_upload(
        &self,
        room: &RoomId,
        who: &Member,
        id: &UploadId,
    ) -> Result<UploadRecord, DocumentError> {
        self.db
            .upload(room, id)
            .await?
            .filter(|u| u.invite == who.invite)
            .ok_or(DocumentError::NotFound)
    }

    pub async fn status(
        &self,
        room: &RoomId,
        who: &Member,
        id: &UploadId,
    ) -> Result<UploadStatus, DocumentError> {
        let upload = self.owned_upload(room, who, id).await?;
        let offset = match tokio::fs::metadata(self.part_path(id)).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        Ok(self.status_of(&upload, offset))
    }

    /// Appends one chunk at `offset` (which must be where the upload stands), syncs it, and
    /// completes the document when it was the last.
    pub async fn put_chunk(
        &self,
        room: &RoomId,
        who: &Member,
        id: &UploadId,
        offset: u64,
        chunk: bytes::Bytes,
    ) -> Result<ChunkOutcome, DocumentError> {
        if chunk.len() > self.config.max_chunk_bytes {
            return Err(DocumentError::ChunkTooLarge {
                limit: self.config.max_chunk_bytes,
            });
        }
        let _guard = {
            let mut busy = self.busy.lock().expect("busy set poisoned");
            if !busy.insert(id.clone()) {
                return Err(DocumentError::Busy);
            }
            BusyGuard {
                set: self.busy.clone(),
                id: id.clone(),
            }
        };
        let upload = self.owned_upload(room, who, id).await?;
        let size = upload.size as u64;
        let path = self.part_path(id);
        let written = tokio::task::spawn_blocking(move || -> Result<u64, DocumentError> {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            let len = file.metadata()?.len();
            if offset != len {
                return Err(DocumentError::OffsetMismatch { expected: len });
            }
            if len + chunk.len() as u64 > size {
                return Err(DocumentError::Invalid(format!(
                    "the chunk goes past the declared size of {size} bytes"
                )));
            }
            file.write_all(&chunk)?;
            // Acknowledged means durable: the client will not send these bytes again.
            file.sync_data()?;
            Ok(len + chunk.len() as u64)
        })
        .await
        .map_err(|e| DocumentError::Io(std::io::Error::other(e)))??;
        if written < size {
            return Ok(ChunkOutcome::Partial(self.status_of(&upload, written)));
        }
        self.complete(upload).await.map(ChunkOutcome::Complete)
    }

    /// Checks the finished file and turns it into a document. On a bad hash or content the
    /// upload is discarded: nothing partial or unchecked is ever kept.
    async fn complete(&self, upload: UploadRecord) -> Result<DocumentRecord, DocumentError> {
        let path = self.part_path(&upload.id);
        let blobs = self.blobs.clone();
        let declared = Sha256Hex::parse(&upload.sha256).ok_or(StorageError::Corrupt("sha"))?;
        let name = upload.name.clone();
        let size = upload.size as u64;
        let checked =
            tokio::task::spawn_blocking(move || -> Result<DocumentKind, DocumentError> {
                if blob::hash_file(&path)? != declared {
                    return Err(DocumentError::HashMismatch);
                }
                let kind = check_content(&path, &name, size)?;
                blobs.commit(&path, &declared)?;
                Ok(kind)
            })
            .await
            .map_err(|e| DocumentError::Io(std::io::Error::other(e)))?;
        let kind = match checked {
            Ok(kind) => kind,
            Err(e) => {
                self.discard(&upload.id).await;
                return Err(e);
            }
        };
        let document = DocumentRecord {
            id: DocumentId::generate(),
            room_id: upload.room_id.clone(),
            sha256: upload.sha256.clone(),
            size: upload.size,
            kind,
            name: upload.name.clone(),
            visibility: upload.visibility,
            shared_by: upload.participant.clone(),
            shared_by_role: upload.role,
            created_at_ms: now_unix_ms(),
        };
        match self.db.complete_upload(&upload.id, &document).await {
            Ok(()) => Ok(document),
            Err(StorageError::Conflict) => Err(DocumentError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks a complete file received outside a room's uploads (a consultation request's
    /// attachment, staged at `path` by the caller) as an upload is checked, and moves it into
    /// the blob store; answers its hash, size and kind. The file is gone afterwards either way.
    pub async fn ingest(
        &self,
        path: PathBuf,
        name: &str,
    ) -> Result<(Sha256Hex, u64, DocumentKind), DocumentError> {
        let blobs = self.blobs.clone();
        let name = name.to_owned();
        let max = self.config.max_upload_bytes;
        let staged = path.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let size = std::fs::metadata(&staged)?.len();
            if size == 0 {
                return Err(DocumentError::Invalid("the document is empty".into()));
            }
            if size > max {
                return Err(DocumentError::TooLarge { limit: max });
            }
            let sha = blob::hash_file(&staged)?;
            let kind = check_content(&staged, &name, size)?;
            blobs.commit(&staged, &sha)?;
            Ok((sha, size, kind))
        })
        .await
        .map_err(|e| DocumentError::Io(std::io::Error::other(e)))?;
        if checked.is_err() {
            let _ = tokio::fs::remove_file(&path).await;
        }
        checked
    }

    /// A stored blob's file, after checking that it still hashes to `sha` (as every read of
    /// a document does).
    pub async fn open_blob(&self, sha: &str) -> Result<PathBuf, DocumentError> {
        let sha = Sha256Hex::parse(sha).ok_or(StorageError::Corrupt("sha"))?;
        let blobs = self.blobs.clone();
        Ok(
            tokio::task::spawn_blocking(move || blobs.open_verified(&sha))
                .await
                .map_err(|e| DocumentError::Io(std::io::Error::other(e)))??,
        )
    }

    /// Where a request handler stages a file it receives whole (next to the uploads' staging
    /// folder, so that the blob store's rename stays on one file system).
    pub fn incoming_dir(&self) -> PathBuf {
        self.staging.with_file_name("incoming")
    }

    /// Drops an upload and gives its places in the quotas back.
    async fn discard(&self, id: &UploadId) {
        if let Err(e) = self.db.delete_upload(id).await {
            tracing::warn!(upload = %id, error = %e, "could not delete a discarded upload");
        }
        let _ = tokio::fs::remove_file(self.part_path(id)).await;
    }

    pub async fn cancel(
        &self,
        room: &RoomId,
        who: &Member,
        id: &UploadId,
    ) -> Result<(), DocumentError> {
        self.owned_upload(room, who, id).await?;
        self.discard(id).await;
        Ok(())
    }

    /// Drops unfinished uploads older than `upload_expiry_hours` (and every `.part` file no
    /// upload row knows of: left by a crash between the two).
    pub async fn expire_uploads(&self) -> Result<usize, DocumentError> {
        let cutoff = now_unix() - self.config.upload_expiry_hours as i64 * 3600;
        let expired = self.db.uploads_started_before(Some(cutoff)).await?;
        for id in &expired {
            self.discard(id).await;
        }
        let live: HashSet<String> = self
            .db
            .uploads_started_before(None)
            .await?
            .into_iter()
            .map(|id| format!("{id}.part"))
            .collect();
        let mut entries = tokio::fs::read_dir(&self.staging).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !live.contains(&name) {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
        Ok(expired.len())
    }

    /// The documents of `room` that `role` may see, oldest first.
    pub async fn visible(
        &self,
        room: &RoomId,
        role: Role,
    ) -> Result<Vec<DocumentRecord>, DocumentError> {
        Ok(self
            .db
            .documents_in_room(room)
            .await?
            .into_iter()
            .filter(|d| role.may_view(d.visibility))
            .collect())
    }

    /// One document's record, if `role` may see it.
    pub async fn get(
        &self,
        room: &RoomId,
        id: &DocumentId,
        role: Role,
    ) -> Result<DocumentRecord, DocumentError> {
        let doc = self
            .db
            .document(room, id)
            .await?
            .ok_or(DocumentError::NotFound)?;
        if !role.may_view(doc.visibility) {
            return Err(DocumentError::Forbidden("see this document"));
        }
        Ok(doc)
    }

    /// The document's bytes, for viewing or (a separate right) downloading, after checking
    /// that they still hash to the recorded SHA-256.
    pub async fn read(
        &self,
        doc: &DocumentRecord,
        role: Role,
        download: bool,
    ) -> Result<PathBuf, DocumentError> {
        if download && !role.may_download(doc.visibility) {
            return Err(DocumentError::Forbidden("download this document"));
        }
        let sha = Sha256Hex::parse(&doc.sha256).ok_or(StorageError::Corrupt("sha"))?;
        let blobs = self.blobs.clone();
        let path = tokio::task::spawn_blocking(move || blobs.open_verified(&sha))
            .await
            .map_err(|e| DocumentError::Io(std::io::Error::other(e)))??;
        Ok(path)
    }

    fn render_limits(&self) -> render::Limits {
        render::Limits {
            max_pixels: self.config.max_page_pixels,
            max_stream_bytes: self.config.max_inflated_stream_bytes,
            max_page_bytes: self.config.max_inflated_page_bytes,
        }
    }

    /// Runs `work` on the blocking pool once a render permit is free, holding the permit until
    /// the work ends (even if the request is dropped meanwhile). A panic in `work` (a renderer
    /// meeting a file it cannot handle) refuses this document and nothing else.
    async fn gated<T: Send + 'static>(
        &self,
        what: &'static str,
        work: impl FnOnce() -> Result<T, DocumentError> + Send + 'static,
    ) -> Result<T, DocumentError> {
        let permit = self
            .gate
            .enter()
            .await
            .map_err(|gate::Busy| DocumentError::RenderBusy)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|_| DocumentError::Invalid(format!("{what} could not be shown")))?
    }

    /// The stored file with hash `sha256` and kind `kind`, checked against its hash, to be
    /// shown. The caller has decided that the reader may see it.
    pub async fn viewable(
        &self,
        sha256: &str,
        kind: DocumentKind,
    ) -> Result<Viewable, DocumentError> {
        let path = self.open_blob(sha256).await?;
        Ok(Viewable {
            path,
            sha256: sha256.to_owned(),
            kind,
        })
    }

    /// How many pages the viewer can show: a PDF's pages, one for an image.
    pub async fn page_count(&self, doc: &Viewable) -> Result<usize, DocumentError> {
        match doc.kind {
            DocumentKind::Pdf => {
                let (path, sha, cache, limits) = (
                    doc.path().to_owned(),
                    doc.sha256.clone(),
                    self.previews.clone(),
                    self.render_limits(),
                );
                self.gated("the PDF", move || {
                    render::page_count(&path, &sha, &cache, &limits).map_err(from_render)
                })
                .await
            }
            DocumentKind::Png | DocumentKind::Jpeg | DocumentKind::Dicom => Ok(1),
            _ => Err(DocumentError::Invalid(
                "this kind of document has no pages to show".into(),
            )),
        }
    }

    /// One page of a PDF, or a DICOM file's first frame, as a PNG image for the viewer. A page
    /// or frame shown before comes from the cache without waiting for a render permit.
    pub async fn page_png(
        &self,
        doc: &Viewable,
        page: usize,
        scale: f32,
    ) -> Result<Vec<u8>, DocumentError> {
        let path = doc.path().to_owned();
        let (sha, cache) = (doc.sha256.clone(), self.previews.clone());
        match doc.kind {
            DocumentKind::Dicom => {
                if page != 1 {
                    return Err(DocumentError::NotFound);
                }
                let name = format!("{sha}-dicom.png");
                let (c, n) = (cache.clone(), name.clone());
                if let Some(png) = blocking(move || previews::read(&c, &n)).await? {
                    return Ok(png);
                }
                let max_pixels = self.config.max_dicom_pixels;
                self.gated("this image", move || {
                    if let Some(png) = previews::read(&cache, &name) {
                        return Ok(png);
                    }
                    let png = dicom::render_png(&std::fs::read(path)?, max_pixels).map_err(
                        |e| match e {
                            dicom::DicomError::TooLarge(_) => {
                                DocumentError::TooLargeToRender(e.to_string())
                            }
                            _ => DocumentError::Invalid(e.to_string()),
                        },
                    )?;
                    previews::write(&cache, &name, &png)?;
                    Ok(png)
                })
                .await
            }
            DocumentKind::Pdf => {
                let (s, c) = (sha.clone(), cache.clone());
                if let Some(known) =
                    blocking(move || render::cached_page(&s, page, scale, &c)).await?
                {
                    return known.map_err(from_render);
                }
                let limits = self.render_limits();
                self.gated("this page", move || {
                    render::page_png(&path, &sha, page, scale, &cache, &limits).map_err(from_render)
                })
                .await
            }
            _ => Err(DocumentError::Invalid(
                "only PDF and DICOM pages are rendered".into(),
            )),
        }
    }

    /// A DICOM document's key header fields, for the viewer (read whole, so it takes a render
    /// permit like an image).
    pub async fn dicom_info(&self, doc: &Viewable) -> Result<dicom::DicomInfo, DocumentError> {
        if doc.kind != DocumentKind::Dicom {
            return Err(DocumentError::Invalid("not a DICOM document".into()));
        }
        let path = doc.path().to_owned();
        self.gated("the DICOM header", move || {
            dicom::info(&std::fs::read(path)?).map_err(|e| DocumentError::Invalid(e.to_string()))
        })
        .await
    }

    /// An ECG document's samples, parsed for the viewer (up to 16 MiB of text: it takes a render
    /// permit like an image).
    pub async fn ecg(&self, doc: &Viewable) -> Result<ecg::Ecg, DocumentError> {
        if doc.kind != DocumentKind::Ecg {
            return Err(DocumentError::Invalid("not an ECG document".into()));
        }
        let path = doc.path().to_owned();
        self.gated("the ECG", move || {
            let text = std::fs::read_to_string(path)?;
            ecg::parse(&text).map_err(|_| DocumentError::Corrupt)
        })
        .await
    }

    /// Stores an annotation on a page of a document `who` may see.
    pub async fn annotate(
        &self,
        room: &RoomId,
        who: &Member,
        document: &DocumentId,
        page: i64,
        shape: serde_json::Value,
    ) -> Result<(DocumentRecord, AnnotationRecord), DocumentError> {
        if !who.role.may_annotate() {
            return Err(DocumentError::Forbidden("annotate documents"));
        }
        let doc = self.get(room, document, who.role).await?;
        if !(1..=annotation::MAX_PAGE).contains(&page) {
            return Err(DocumentError::Invalid("page must be 1 to 10000".into()));
        }
        let shape = annotation::parse(shape).map_err(|e| DocumentError::Invalid(e.to_string()))?;
        let record = AnnotationRecord {
            id: AnnotationId::generate(),
            document_id: doc.id.clone(),
            page,
            shape: serde_json::to_value(shape).expect("shapes serialize"),
            author: who.participant.clone(),
            author_role: who.role,
            created_at_ms: now_unix_ms(),
        };
        self.db.insert_annotation(room, &record).await?;
        Ok((doc, record))
    }

    pub async fn annotations(
        &self,
        room: &RoomId,
        document: &DocumentId,
        role: Role,
    ) -> Result<Vec<AnnotationRecord>, DocumentError> {
        let doc = self.get(room, document, role).await?;
        Ok(self.db.annotations(&doc.id).await?)
    }
}

/// Quick file work (a cache lookup) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DocumentError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DocumentError::Io(std::io::Error::other(e)))
}

fn from_render(e: render::RenderError) -> DocumentError {
    match e {
        render::RenderError::NoSuchPage(_) => DocumentError::NotFound,
        render::RenderError::Io(io) => DocumentError::Io(io),
        render::RenderError::TooLarge(why) => DocumentError::TooLargeToRender(why),
        other => DocumentError::Invalid(other.to_string()),
    }
}

/// A document's name is shown to people and put in a download header, never used as a path:
/// still, names that look like paths or hide characters are refused with a clear error.
/// What a complete file is, by its content (and name for text kinds); text and ECG files are
/// read whole, so they are limited to [`MAX_TEXT_BYTES`].
fn check_content(
    path: &std::path::Path,
    name: &str,
    size: u64,
) -> Result<DocumentKind, DocumentError> {
    if size <= MAX_TEXT_BYTES {
        return Ok(kind::detect(name, &std::fs::read(path)?)?);
    }
    let mut head = vec![0u8; SNIFF_BYTES];
    let n = std::io::Read::read(&mut std::fs::File::open(path)?, &mut head)?;
    match kind::detect(name, &head[..n])? {
        DocumentKind::Text | DocumentKind::Ecg => Err(DocumentError::Invalid(
            "text and ECG documents are limited to 16 MiB".into(),
        )),
        k => Ok(k),
    }
}

pub fn validate_name(name: &str) -> Result<String, DocumentError> {
    let name = name.trim();
    let bad = |why: &str| {
        Err(DocumentError::Invalid(format!(
            "invalid document name: {why}"
        )))
    };
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return bad("1 to 200 characters");
    }
    if name.contains(['/', '\\']) || name == "." || name == ".." || name.starts_with('.') {
        return bad("no folders or hidden names");
    }
    if name.chars().any(crate::domain::text::is_hiding) {
        return bad("no control, direction-changing or invisible characters");
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_say_which_in_words() {
        assert_eq!(human_bytes(900), "900 bytes");
        assert_eq!(human_bytes(1536 << 10), "1.5 MiB");
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        let bytes = Limit::PersonBytes {
            max: 1 << 30,
            used: 1000 << 20,
        };
        assert_eq!(bytes.name(), "bytes_per_person");
        assert!(bytes.to_string().contains("1 GiB"), "{bytes}");
        assert!(bytes.to_string().contains("1000 MiB are used"), "{bytes}");
        let err = DocumentError::LimitReached(Limit::RoomNonClinicians { max: 100 });
        assert!(
            err.to_string().starts_with("limit reached: patients"),
            "{err}"
        );
        assert_eq!(as_i64(usize::MAX), i64::MAX);
        assert_eq!(as_i64(50usize), 50);
    }

    #[test]
    fn names_that_look_like_paths_are_refused() {
        for bad in [
            "../../etc/passwd",
            "..\\boot.ini",
            "/abs.pdf",
            ".hidden",
            "",
            "a\0b.pdf",
            "evil\u{202e}fdp.exe",
            "line\nbreak.txt",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            validate_name("  血常规 2026-11.pdf ").unwrap(),
            "血常规 2026-11.pdf"
        );
    }
}
