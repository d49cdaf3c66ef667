//! Files the server keeps (the database and its WAL and shared-memory files, stored documents,
//! unfinished uploads, rendered previews, keys) are readable by the server's user alone.
//!
//! Two steps, both at start: the process's file-creation mask becomes 077, so everything it or
//! a library (SQLite creates its `-wal` and `-shm` files itself) creates afterwards is 0600 or
//! 0700 whatever the call asked for; and what an earlier version or an operator left readable
//! by others under the data directory is made private again, and reported, so that an
//! installation that was exposed learns of it.

use std::path::{Path, PathBuf};

/// What the start-up check changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tightened {
    /// Files and directories that were readable or writable by group or others.
    pub paths: Vec<PathBuf>,
}

/// Every file and directory created from now on is private to the server's user (Linux;
/// elsewhere the explicit modes of the server's own files and [`tighten`] remain).
pub fn restrict_new_files() {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::stat::{Mode, umask};
        umask(Mode::from_bits_truncate(0o077));
    }
}

/// Makes `dir` and everything under it private (0700 directories, 0600 files), without
/// following symbolic links; returns what had to change. At most `limit` entries are walked,
/// so that a huge document store does not hold up the start (the rest keep their modes and
/// the mask covers everything new).
pub fn tighten(dir: &Path, limit: usize) -> std::io::Result<Tightened> {
    let mut out = Tightened::default();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut stack = vec![dir.to_path_buf()];
        let mut walked = 0usize;
        while let Some(path) = stack.pop() {
            walked += 1;
            if walked > limit {
                break;
            }
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if meta.file_type().is_symlink() {
                continue;
            }
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_dir() {
                for entry in std::fs::read_dir(&path)? {
                    stack.push(entry?.path());
                }
            }
            if mode & 0o077 != 0 {
                let private = if meta.is_dir() { 0o700 } else { 0o600 };
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(private))?;
                out.paths.push(path);
            }
        }
    }
    Ok(out)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn exposed_files_are_made_private_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("documents");
        std::fs::create_dir(&sub).unwrap();
        let file = sub.join("abc");
        std::fs::write(&file, b"x").unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let t = tighten(dir.path(), 1000).unwrap();
        assert_eq!(t.paths.len(), 2, "{t:?}");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&sub), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert!(tighten(dir.path(), 1000).unwrap().paths.is_empty());
    }
}
