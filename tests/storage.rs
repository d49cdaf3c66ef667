//! Storage on both backends with the same code: SQLite (always) and PostgreSQL (when one is
//! reachable at HUIZHEN_TEST_POSTGRES_URL, default postgres://root@127.0.0.1:5432/test; set
//! HUIZHEN_REQUIRE_POSTGRES=1 to make its absence a failure, as scripts/test.sh does when
//! `pg_isready` answers).

use huizhen::auth::{AccountRole, Role, now_unix};
use huizhen::ids::{InviteId, RoomId};
use huizhen::storage::{Db, RoomStatus, StorageError};
use sqlx::Executor;

async fn exercise(db: &Db) {
    let user = db
        .create_user("doc", "Dr. Wang", AccountRole::Doctor, "$argon2id$fake")
        .await
        .unwrap();
    assert!(matches!(
        db.create_user("doc", "Someone else", AccountRole::Admin, "x")
            .await,
        Err(StorageError::Conflict)
    ));
    let found = db.user_by_username("doc").await.unwrap().unwrap();
    assert_eq!(
        (found.id.clone(), found.role),
        (user.id.clone(), AccountRole::Doctor)
    );
    assert!(db.user_by_username("nobody").await.unwrap().is_none());
    db.set_password("doc", "new").await.unwrap();
    assert_eq!(
        db.user(&user.id).await.unwrap().unwrap().password_hash,
        "new"
    );
    assert!(matches!(
        db.set_password("nobody", "x").await,
        Err(StorageError::NotFound)
    ));

    let room = db
        .create_room("ECG review", Some("MRN-7"), &user.id)
        .await
        .unwrap();
    let other = db.create_room("Second", None, &user.id).await.unwrap();
    let listed = db.list_rooms(10).await.unwrap();
    assert_eq!(listed.len(), 2);
    let got = db.room(&room.id).await.unwrap().unwrap();
    assert_eq!(
        (got.title.as_str(), got.patient_ref.as_deref()),
        ("ECG review", Some("MRN-7"))
    );
    assert!(db.room(&RoomId::generate()).await.unwrap().is_none());

    let invite = db
        .create_invite(&room.id, Role::Patient, &user.id, now_unix() + 60)
        .await
        .unwrap();
    assert_eq!(
        db.invite(&invite.id).await.unwrap().unwrap().role,
        Role::Patient
    );
    // Revoking through another room's id is refused and changes nothing.
    assert!(matches!(
        db.revoke_invite(&other.id, &invite.id).await,
        Err(StorageError::NotFound)
    ));
    assert!(
        db.invite(&invite.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    db.revoke_invite(&room.id, &invite.id).await.unwrap();
    assert!(
        db.invite(&invite.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(db.invite(&InviteId::generate()).await.unwrap().is_none());

    db.end_room(&room.id).await.unwrap();
    db.end_room(&room.id).await.unwrap();
    assert_eq!(
        db.room(&room.id).await.unwrap().unwrap().status,
        RoomStatus::Ended
    );
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("sub/dir/h.db").display()
    );
    let db = Db::connect(&url).await.unwrap();
    exercise(&db).await;
    db.close().await;
    // Reopening runs the migrations again without harm and keeps the data.
    let db = Db::connect(&url).await.unwrap();
    assert!(db.user_by_username("doc").await.unwrap().is_some());
}

#[tokio::test]
async fn postgres() {
    let admin_url = std::env::var("HUIZHEN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into());
    let required = std::env::var("HUIZHEN_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    sqlx::any::install_default_drivers();
    let admin = match sqlx::AnyPool::connect(&admin_url).await {
        Ok(p) => p,
        Err(e) if !required => {
            eprintln!(
                "SKIPPED: PostgreSQL not reachable at {admin_url} ({e}); set HUIZHEN_REQUIRE_POSTGRES=1 to fail instead"
            );
            return;
        }
        Err(e) => panic!("PostgreSQL required but not reachable at {admin_url}: {e}"),
    };
    // A database of its own, so runs never see each other's rows.
    let name = format!(
        "huizhen_test_{}",
        RoomId::generate().as_str()[2..].to_ascii_lowercase()
    );
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let url = match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("bad URL {admin_url}"),
    };
    let db = Db::connect(&url).await.unwrap();
    exercise(&db).await;
    db.close().await;
    admin
        .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
}
