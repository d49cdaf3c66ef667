//! Where complete documents' bytes live: a content-addressed store keyed by SHA-256.
//!
//! [`BlobStore`] is the seam for other back ends (object storage); [`DiskBlobStore`] is the
//! default: `<dir>/<first two hex digits>/<hash>`. A blob is written under a temporary name,
//! synced, then renamed into place and the directory synced, so a crash leaves either the whole
//! blob or none of it. Blobs are never modified; the same content shared twice is stored once.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    #[error("blob store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("no blob with this hash")]
    Missing,
    #[error("blob {expected} is corrupt: its content hashes to {found}")]
    Corrupt { expected: String, found: String },
}

/// A lowercase hex SHA-256, checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sha256Hex(String);

impl Sha256Hex {
    pub fn parse(s: &str) -> Option<Self> {
        let ok = s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| Self(s.to_owned()))
    }

    pub fn of(bytes: &[u8]) -> Self {
        Self(crate::domain::hex::hex(&Sha256::digest(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hashes a file by streaming it.
pub fn hash_file(path: &Path) -> std::io::Result<Sha256Hex> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Sha256Hex(crate::domain::hex::hex(&hasher.finalize())))
}

/// Blocking calls: callers run them on the blocking pool.
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Takes ownership of a complete local file whose hash the caller checked, and stores it
    /// durably under `sha256`. Storing content that is already present is not an error.
    fn commit(&self, staged: &Path, sha256: &Sha256Hex) -> Result<(), BlobError>;

    /// A local path to read the blob from, after checking that its content still hashes to
    /// `sha256` (integrity on every read).
    fn open_verified(&self, sha256: &Sha256Hex) -> Result<PathBuf, BlobError>;
}

#[derive(Debug)]
pub struct DiskBlobStore {
    dir: PathBuf,
}

impl DiskBlobStore {
    pub fn new(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, sha256: &Sha256Hex) -> PathBuf {
        self.dir.join(&sha256.as_str()[..2]).join(sha256.as_str())
    }
}

impl BlobStore for DiskBlobStore {
    fn commit(&self, staged: &Path, sha256: &Sha256Hex) -> Result<(), BlobError> {
        let target = self.path(sha256);
        if target.exists() {
            std::fs::remove_file(staged)?;
            return Ok(());
        }
        let parent = target.parent().expect("blob paths have a parent");
        std::fs::create_dir_all(parent)?;
        File::open(staged)?.sync_all()?;
        // Rename only within one file system; staging shares the data directory.
        match std::fs::rename(staged, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                let tmp = parent.join(format!(".{}.tmp", sha256.as_str()));
                let mut out = File::create(&tmp)?;
                std::io::copy(&mut File::open(staged)?, &mut out)?;
                out.flush()?;
                out.sync_all()?;
                std::fs::rename(&tmp, &target)?;
                std::fs::remove_file(staged)?;
            }
            Err(e) => return Err(e.into()),
        }
        File::open(parent)?.sync_all()?;
        Ok(())
    }

    fn open_verified(&self, sha256: &Sha256Hex) -> Result<PathBuf, BlobError> {
        let path = self.path(sha256);
        let found = match hash_file(&path) {
            Ok(h) => h,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BlobError::Missing),
            Err(e) => return Err(e.into()),
        };
        if &found != sha256 {
            return Err(BlobError::Corrupt {
                expected: sha256.to_string(),
                found: found.to_string(),
            });
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_is_content_addressed_and_reads_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskBlobStore::new(dir.path().join("blobs")).unwrap();
        let staged = dir.path().join("a.part");
        std::fs::write(&staged, b"hello").unwrap();
        let sha = Sha256Hex::of(b"hello");
        store.commit(&staged, &sha).unwrap();
        assert!(!staged.exists());
        let path = store.open_verified(&sha).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        // The same content again: stored once, the staged copy is removed.
        std::fs::write(&staged, b"hello").unwrap();
        store.commit(&staged, &sha).unwrap();
        assert!(!staged.exists());
        // A flipped byte on disk is caught on the next read.
        std::fs::write(&path, b"hellO").unwrap();
        assert!(matches!(
            store.open_verified(&sha),
            Err(BlobError::Corrupt { .. })
        ));
        assert!(matches!(
            store.open_verified(&Sha256Hex::of(b"other")),
            Err(BlobError::Missing)
        ));
        assert!(Sha256Hex::parse("ABC").is_none());
        assert!(Sha256Hex::parse(sha.as_str()).is_some());
    }
}
