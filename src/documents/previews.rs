//! The render cache: page images and verdicts about a document, in one directory
//! (`<data_dir>/previews`), named by the document's SHA-256, so each is computed once however
//! many people look. A cache: any file may be deleted at any time (delete them all after
//! changing a render limit). Files are written under a temporary name and renamed, so a reader
//! never sees half of one; they are patient data, so only the server's user may read them.

use std::io::Write;
use std::path::Path;

/// The file's bytes, if it is there.
pub fn read(dir: &Path, name: &str) -> Option<Vec<u8>> {
    std::fs::read(dir.join(name)).ok()
}

/// Stores `bytes` as `name`, replacing what was there.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    create_private_dir(dir)?;
    let tmp = dir.join(format!(".{}.tmp", rand::random::<u64>()));
    let written = open_private(&tmp).and_then(|mut f| f.write_all(bytes));
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, dir.join(name))) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // A directory left by an older version may be wider open.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let previews = dir.path().join("previews");
        assert_eq!(read(&previews, "a.png"), None);
        write(&previews, "a.png", b"one").unwrap();
        write(&previews, "a.png", b"two").unwrap();
        assert_eq!(read(&previews, "a.png").as_deref(), Some(&b"two"[..]));
        // Nothing but the file itself is left behind.
        let names: Vec<_> = std::fs::read_dir(&previews)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.png"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&previews), 0o700);
            assert_eq!(mode(&previews.join("a.png")), 0o600);
        }
    }
}
