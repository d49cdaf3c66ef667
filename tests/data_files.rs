//! Files the server keeps are private to its user. Its own test binary: the log-privacy test
//! in tests/privacy.rs must be the first to install the process's log subscriber.

use crate::common;

use crate::common::TestServer;

/// Everything the server keeps under its data directory (database, WAL and shared memory,
/// signing key, stored documents, unfinished uploads, rendered previews) is private to its user;
/// what an earlier run left readable by others is made private at start.
#[cfg(unix)]
#[tokio::test]
async fn data_files_are_readable_by_the_server_user_alone() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stale = data.join("documents").join("left-by-an-old-version");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, b"patient data").unwrap();
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();

    let data_dir = data.clone();
    let s = TestServer::start_with(move |c| c.storage.data_dir = data_dir).await;
    let room = s.create_room("Permissions").await;
    let doctor = s.member(&room, "doctor", "Dr. Wang").await;
    // A document shared whole and its first page rendered, and an upload left unfinished.
    let pdf = common::sample_pdf();
    let (st, shared) = s
        .share(
            &room,
            &doctor.access,
            "report.pdf",
            &pdf,
            "everyone",
            1 << 20,
        )
        .await;
    assert_eq!(st, 201, "{shared}");
    let doc = shared["document"]["id"].as_str().unwrap();
    let page = s
        .raw(
            "GET",
            &format!("/api/v1/rooms/{room}/documents/{doc}/pages/1"),
            &doctor.access,
            None,
        )
        .await;
    assert_eq!(page.status().as_u16(), 200);
    let whole = b"half of a scan".repeat(10);
    let (st, begun) = s
        .begin_upload(&room, &doctor.access, "scan.txt", &whole, "everyone")
        .await;
    assert_eq!(st, 201, "{begun}");
    let upload = begun["upload_id"].as_str().unwrap();
    let resp = s
        .raw(
            "PUT",
            &format!("/api/v1/rooms/{room}/uploads/{upload}?offset=0"),
            &doctor.access,
            Some(whole[..20].to_vec()),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200, "the first chunk is stored");
    // The rest never comes: the upload stays, unfinished, in the data directory.

    let mut exposed = Vec::new();
    let mut seen = 0;
    let mut stack = vec![data.clone()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        seen += 1;
        if meta.permissions().mode() & 0o077 != 0 {
            exposed.push(format!(
                "{} {:o}",
                p.display(),
                meta.permissions().mode() & 0o777
            ));
        }
    }
    assert!(
        seen > 6,
        "the walk saw the database, key, documents and uploads ({seen})"
    );
    assert!(exposed.is_empty(), "readable by others: {exposed:?}");
    drop(doctor);
    s.stop().await;
}
