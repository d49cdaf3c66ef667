//! The audit key: the secret that keys the chain's hashes and the anchors' MACs.
//!
//! It lives in a file of its own (`audit.key_file`, by default `<data_dir>/audit.key`), never in
//! the database, so that write access to the database is not enough to forge an entry. An
//! operator may put it on another volume than the database. Losing it makes the keyed part of
//! the trail unverifiable, so it is synced when created, and a server that finds the trail
//! keyed but its key file gone refuses to make a new one ([`super::AuditLog::open`]).

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("the audit key file {0} does not exist")]
    Missing(String),
    #[error("the audit key file {0} is not 32 bytes in base64url")]
    Malformed(String),
    #[error("the audit key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The audit trail's HMAC key. Never logged (its `Debug` shows only its [`AuditKey::id`]).
#[derive(Clone)]
pub struct AuditKey {
    key: [u8; 32],
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey({})", self.id())
    }
}

impl AuditKey {
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self { key }
    }

    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        Self { key }
    }

    /// Reads the key file; [`KeyError::Missing`] if there is none (nothing is created).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let shown = || path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeyError::Missing(shown()));
            }
            Err(source) => {
                return Err(KeyError::Io {
                    path: shown(),
                    source,
                });
            }
        };
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| KeyError::Malformed(shown()))?;
        let key = bytes.try_into().map_err(|_| KeyError::Malformed(shown()))?;
        Ok(Self { key })
    }

    /// Creates the key file (mode 0600, synced, its directory synced) with a fresh random key.
    /// Fails if the file exists: a key is never overwritten.
    pub fn create(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let key = Self::random();
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io)?;
        file.write_all(B64.encode(key.key).as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(io)?;
        if let Some(dir) = dir {
            sync_dir(dir).map_err(io)?;
        }
        Ok(key)
    }

    /// A short public name for the key (16 hex digits), recorded in the trail where the chain
    /// became keyed, so that an operator can tell which key file a trail needs. It reveals
    /// nothing of the key.
    pub fn id(&self) -> String {
        let mut mac = self.mac();
        mac.update(b"huizhen audit key id v1");
        crate::domain::hex::hex(&mac.finalize().into_bytes()[..8])
    }

    /// A fresh HMAC-SHA256 under this key.
    pub(super) fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length")
    }
}

/// Makes a directory entry just created durable.
pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_private_then_loaded_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/audit.key");
        assert!(matches!(AuditKey::load(&path), Err(KeyError::Missing(_))));
        let key = AuditKey::create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(AuditKey::load(&path).unwrap().key, key.key);
        assert!(AuditKey::create(&path).is_err());
        assert_eq!(AuditKey::load(&path).unwrap().id(), key.id());
        assert_ne!(AuditKey::random().id(), key.id());
        std::fs::write(&path, "short").unwrap();
        assert!(matches!(AuditKey::load(&path), Err(KeyError::Malformed(_))));
        assert!(!format!("{key:?}").contains(&B64.encode(key.key)));
    }
}
