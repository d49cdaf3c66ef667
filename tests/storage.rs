//! Storage on both backends with the same code: SQLite (always) and PostgreSQL (when one is
//! reachable at HUIZHEN_TEST_POSTGRES_URL, default postgres://root@127.0.0.1:5432/test; set
//! HUIZHEN_REQUIRE_POSTGRES=1 to make its absence a failure, as scripts/test.sh does when
//! `pg_isready` answers).

use crate::common;

use futures_util::StreamExt;
use huizhen::audit::{Action, Actor, AuditError, AuditEvent, AuditKey, AuditLog};
use huizhen::auth::SigningKey;
use huizhen::domain::clock::now_unix;
use huizhen::domain::document::DocumentKind;
use huizhen::domain::ids::{
    AnnotationId, ChatMessageId, DepartmentId, DocumentId, InstitutionId, InviteId, ParticipantId,
    RoomId, SessionId, UploadId, UserId,
};
use huizhen::domain::role::{AccountRole, Role, Visibility};
use huizhen::sessions::{Issued, Policy, Refusal, SessionError, Sessions};
use huizhen::storage::{
    AnnotationRecord, ChatRecord, Db, DocumentRecord, PersonUsage, QuotaRefusal, RevokeReason,
    RoomStatus, RoomUsage, StorageError, UploadQuota, UploadRecord, User,
};

/// The audit key of every trail these tests write: one database, one key (another process
/// sharing the database holds the same key).
fn audit_key() -> AuditKey {
    AuditKey::from_bytes([42; 32])
}

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
    assert_eq!(
        huizhen::sessions::reset_password(db, &user.id, "new", now_unix())
            .await
            .unwrap(),
        0
    );
    let changed = db.user(&user.id).await.unwrap().unwrap();
    assert_eq!(
        (changed.password_hash.as_str(), changed.password_version),
        ("new", 1)
    );
    assert!(matches!(
        huizhen::sessions::reset_password(db, &UserId::generate(), "x", now_unix()).await,
        Err(StorageError::NotFound)
    ));

    let room = db
        .create_room("ECG review", Some("MRN-7"), &user.id)
        .await
        .unwrap();
    let other = db.create_room("Second", None, &user.id).await.unwrap();
    let listed = db.list_rooms(None, 10).await.unwrap();
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

/// Participants, uploads becoming documents, annotations, chat and the audit chain: the same
/// SQL on both backends.
async fn exercise_consultation_records(db: &Db) {
    let user = db
        .create_user("rec", "Dr. Li", AccountRole::Doctor, "x")
        .await
        .unwrap();
    let room = db.create_room("Records", None, &user.id).await.unwrap();
    let other_room = db.create_room("Other", None, &user.id).await.unwrap();
    let invite = InviteId::generate();
    let p = ParticipantId::generate();
    db.participant_joined(&room.id, &p, &invite, Role::Doctor, "Dr. Li")
        .await
        .unwrap();
    db.participant_left(&p).await.unwrap();
    let people = db.participants_of(&room.id).await.unwrap();
    assert_eq!(people.len(), 1);
    assert!(people[0].left_at.is_some());

    let upload = UploadRecord {
        id: UploadId::generate(),
        room_id: room.id.clone(),
        participant: p.clone(),
        invite: invite.clone(),
        role: Role::Doctor,
        name: "ecg.csv".into(),
        size: 10,
        sha256: "ab".repeat(32),
        visibility: Visibility::Clinicians,
        created_at: now_unix(),
    };
    db.start_upload(&upload, &ROOMY).await.unwrap().unwrap();
    assert_eq!(db.open_uploads_of(&invite).await.unwrap(), 1);
    assert!(
        db.upload(&other_room.id, &upload.id)
            .await
            .unwrap()
            .is_none()
    );
    let doc = DocumentRecord {
        id: DocumentId::generate(),
        room_id: room.id.clone(),
        sha256: upload.sha256.clone(),
        size: 10,
        kind: DocumentKind::Ecg,
        name: upload.name.clone(),
        visibility: Visibility::Clinicians,
        shared_by: p.clone(),
        shared_by_role: Role::Doctor,
        created_at_ms: 1,
    };
    db.complete_upload(&upload.id, &doc).await.unwrap();
    assert!(db.upload(&room.id, &upload.id).await.unwrap().is_none());
    // Completing twice is refused and leaves no second document.
    let twice = DocumentRecord {
        id: DocumentId::generate(),
        ..doc.clone()
    };
    assert!(matches!(
        db.complete_upload(&upload.id, &twice).await,
        Err(StorageError::Conflict)
    ));
    assert_eq!(
        db.documents_in_room(&room.id).await.unwrap(),
        vec![doc.clone()]
    );
    // A document id looked up through another room is not found.
    assert!(
        db.document(&other_room.id, &doc.id)
            .await
            .unwrap()
            .is_none()
    );

    let a = AnnotationRecord {
        id: AnnotationId::generate(),
        document_id: doc.id.clone(),
        page: 1,
        shape: serde_json::json!({"type": "circle", "center": [0.5, 0.5], "radius": 0.1}),
        author: p.clone(),
        author_role: Role::Doctor,
        created_at_ms: 2,
    };
    db.insert_annotation(&room.id, &a).await.unwrap();
    assert_eq!(db.annotations(&doc.id).await.unwrap(), vec![a]);

    for i in 0..3 {
        db.insert_chat(
            &room.id,
            &ChatRecord {
                id: ChatMessageId::generate(),
                participant_id: p.clone(),
                name: "Dr. Li".into(),
                role: Role::Doctor,
                text: format!("message {i}"),
                at_ms: 10 + i,
                huddle: i == 1,
            },
        )
        .await
        .unwrap();
    }
    let recent = db.recent_chat(&room.id, 2).await.unwrap();
    let texts: Vec<&str> = recent.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["message 1", "message 2"]);
    // A huddle's message is kept as one.
    assert_eq!(
        recent.iter().map(|m| m.huddle).collect::<Vec<_>>(),
        [true, false]
    );

    let audit = AuditLog::new(db.clone(), audit_key());
    for _ in 0..3 {
        audit
            .record(
                AuditEvent::new(Actor::User(user.id.clone(), user.role), Action::RoomCreated)
                    .room(&room.id),
            )
            .await
            .unwrap();
    }
    let v = audit.verify().await.unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.entries, 3);
    assert_eq!(
        audit
            .entries(0, 10, Some(room.id.as_str()))
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        audit
            .export_jsonl()
            .await
            .unwrap()
            .split(|b| *b == b'\n')
            .count(),
        4
    );

    // An export streams page by page, past the first page, in order.
    let appends = (0..1200).map(|_| {
        audit.record(
            AuditEvent::new(Actor::User(user.id.clone(), user.role), Action::AuditRead)
                .room(&room.id),
        )
    });
    for r in futures_util::future::join_all(appends).await {
        r.unwrap();
    }
    let mut lines = Vec::new();
    let mut chunks = 0;
    {
        let mut pages = std::pin::pin!(audit.export(None));
        while let Some(page) = pages.next().await {
            chunks += 1;
            for line in page
                .unwrap()
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
            {
                let e: serde_json::Value = serde_json::from_slice(line).unwrap();
                lines.push(e["seq"].as_i64().unwrap());
            }
        }
    }
    assert_eq!(lines.len(), 1203);
    assert!(chunks >= 2, "{chunks} chunks");
    assert!(lines.windows(2).all(|w| w[0] < w[1]));

    // Two verifications at once at most: of three started together, one is refused, unless
    // one of the first two finished within its first poll (every read answered at once, as a
    // busy machine's scheduling can make it) and gave its turn back before the third asked.
    // Exactly two turns is `audit::writer::tests::full_reads_take_one_of_two_turns`.
    let three = futures_util::future::join_all((0..3).map(|_| audit.verify())).await;
    assert!(
        three
            .iter()
            .filter(|v| matches!(v, Err(AuditError::Busy)))
            .count()
            <= 1
    );
    assert!(three.iter().flatten().all(|v| v.ok()));
    // Exports that stall hold no turn: a verification goes on beside three of them, each of
    // which has read a page and is not read further.
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut pages = Box::pin(audit.export(None));
        assert!(pages.next().await.unwrap().is_ok());
        stalled.push(pages);
    }
    assert!(audit.verify().await.unwrap().ok());
    drop(stalled);
}

/// `$check(&db, &url)` as two tests: on a fresh SQLite file and, where one is reachable, on a
/// fresh PostgreSQL database.
macro_rules! on_both_stores {
    ($sqlite:ident, $postgres:ident, $check:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
            let db = Db::connect(&url).await.unwrap();
            $check(&db, &url).await;
            db.close().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            let Some(pg) = common::PgTestDb::create().await else {
                return;
            };
            let db = Db::connect(&pg.url).await.unwrap();
            $check(&db, &pg.url).await;
            db.close().await;
            pg.drop_db().await;
        }
    };
}

/// Quotas far from anything a test reaches.
const ROOMY: UploadQuota = UploadQuota {
    open_uploads: 100,
    person_documents: 100,
    person_bytes: 1 << 40,
    room_documents: 1000,
    room_non_clinician_documents: 500,
};

fn upload_of(room: &RoomId, invite: &InviteId, role: Role, size: i64) -> UploadRecord {
    UploadRecord {
        id: UploadId::generate(),
        room_id: room.clone(),
        participant: ParticipantId::generate(),
        invite: invite.clone(),
        role,
        name: "lab.pdf".into(),
        size,
        sha256: "cd".repeat(32),
        visibility: Visibility::Everyone,
        created_at: now_unix(),
    }
}

/// Starts `per_invite` uploads for each invite, all at once on separate tasks; the uploads
/// that were accepted and the refusals.
async fn start_all_at_once(
    db: &Db,
    room: &RoomId,
    invites: &[(InviteId, Role)],
    per_invite: usize,
    size: i64,
    quota: UploadQuota,
) -> (Vec<UploadRecord>, Vec<QuotaRefusal>) {
    let mut tasks = tokio::task::JoinSet::new();
    for (invite, role) in invites {
        for _ in 0..per_invite {
            let (db, upload) = (db.clone(), upload_of(room, invite, *role, size));
            tasks.spawn(async move {
                let outcome = db.start_upload(&upload, &quota).await.unwrap();
                outcome.map(|()| upload)
            });
        }
    }
    let (mut taken, mut refused) = (Vec::new(), Vec::new());
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            Ok(upload) => taken.push(upload),
            Err(why) => refused.push(why),
        }
    }
    (taken, refused)
}

/// The quota counters agree with the rows they count.
async fn assert_counters_match_rows(db: &Db, room: &RoomId, invites: &[InviteId]) {
    let mut open = 0;
    for invite in invites {
        let rows = db.open_uploads_of(invite).await.unwrap();
        assert_eq!(db.person_usage(invite).await.unwrap().open_uploads, rows);
        open += rows;
    }
    assert_eq!(
        db.room_usage(room).await.unwrap().documents,
        db.count_documents(room).await.unwrap() + open
    );
}

/// The document quotas are taken in one atomic step on both backends: requests racing for the
/// last places get exactly as many as there are, and uploads finished or discarded at once
/// keep the counters equal to the rows.
async fn exercise_upload_quotas(db: &Db, _url: &str) {
    let user = db
        .create_user("quota", "Dr. Sun", AccountRole::Doctor, "x")
        .await
        .unwrap();
    let room = db.create_room("Quotas", None, &user.id).await.unwrap().id;
    let quota = UploadQuota {
        open_uploads: 4,
        person_documents: 10,
        person_bytes: 10_000,
        room_documents: 12,
        room_non_clinician_documents: 6,
    };

    // One person starts 20 uploads at once; 4 may be open.
    let patient = InviteId::generate();
    let (taken, refused) = start_all_at_once(
        db,
        &room,
        &[(patient.clone(), Role::Patient)],
        20,
        100,
        quota,
    )
    .await;
    assert_eq!((taken.len(), refused.len()), (4, 16), "{refused:?}");
    assert!(refused.iter().all(|r| *r == QuotaRefusal::OpenUploads));
    assert_eq!(
        db.person_usage(&patient).await.unwrap(),
        PersonUsage {
            open_uploads: 4,
            documents: 4,
            bytes: 400
        }
    );
    let mut open = taken;

    // Five more patients race for the last 2 of the patients' 6 places.
    let patients: Vec<(InviteId, Role)> = (0..5)
        .map(|_| (InviteId::generate(), Role::Patient))
        .collect();
    let (taken, refused) = start_all_at_once(db, &room, &patients, 2, 100, quota).await;
    assert_eq!((taken.len(), refused.len()), (2, 8), "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|r| *r == QuotaRefusal::RoomNonClinicianDocuments)
    );
    open.extend(taken);

    // The clinicians' 6 places are still theirs: eight doctors race for them.
    let doctors: Vec<(InviteId, Role)> = (0..8)
        .map(|_| (InviteId::generate(), Role::Doctor))
        .collect();
    let (taken, refused) = start_all_at_once(db, &room, &doctors, 2, 100, quota).await;
    assert_eq!((taken.len(), refused.len()), (6, 10), "{refused:?}");
    assert!(refused.iter().all(|r| *r == QuotaRefusal::RoomDocuments));
    open.extend(taken);
    assert_eq!(
        db.room_usage(&room).await.unwrap(),
        RoomUsage {
            documents: 12,
            non_clinician_documents: 6
        }
    );
    let everyone: Vec<InviteId> = std::iter::once(patient.clone())
        .chain(patients.iter().chain(&doctors).map(|(i, _)| i.clone()))
        .collect();
    assert_counters_match_rows(db, &room, &everyone).await;

    // All 12 finish at once and the room holds exactly 12 documents: finishing takes no new
    // place. Half of them are discarded at the same moment as they finish: of the two, one.
    let mut tasks = tokio::task::JoinSet::new();
    for (i, upload) in open.iter().enumerate() {
        let (db, upload) = (db.clone(), upload.clone());
        tasks.spawn(async move {
            let doc = DocumentRecord {
                id: DocumentId::generate(),
                room_id: upload.room_id.clone(),
                sha256: upload.sha256.clone(),
                size: upload.size,
                kind: DocumentKind::Pdf,
                name: upload.name.clone(),
                visibility: upload.visibility,
                shared_by: upload.participant.clone(),
                shared_by_role: upload.role,
                created_at_ms: 1,
            };
            let discard = async {
                if i % 2 == 0 {
                    db.delete_upload(&upload.id).await.unwrap()
                } else {
                    false
                }
            };
            let (completed, discarded) =
                tokio::join!(db.complete_upload(&upload.id, &doc), discard);
            match completed {
                Ok(()) => assert!(!discarded),
                Err(StorageError::Conflict) => assert!(discarded),
                Err(e) => panic!("{e}"),
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let documents = db.count_documents(&room).await.unwrap();
    assert!((6..=12).contains(&documents), "{documents}");
    assert_eq!(db.room_usage(&room).await.unwrap().documents, documents);
    assert_counters_match_rows(db, &room, &everyone).await;
    // Discarded uploads gave their places back, to the roles they were taken from.
    let used = db.room_usage(&room).await.unwrap();
    let (taken, _) = start_all_at_once(db, &room, &doctors, 2, 100, quota).await;
    assert_eq!(taken.len() as i64, quota.room_documents - used.documents);
    assert_eq!(
        db.room_usage(&room).await.unwrap().documents,
        quota.room_documents
    );
    for upload in &taken {
        assert!(db.delete_upload(&upload.id).await.unwrap());
    }
    assert_eq!(db.room_usage(&room).await.unwrap(), used);

    // A person's documents and bytes: finished documents still count, open uploads hold
    // their declared size.
    let room = db.create_room("Bytes", None, &user.id).await.unwrap().id;
    let doctor = InviteId::generate();
    let me = [(doctor.clone(), Role::Doctor)];
    let (taken, refused) = start_all_at_once(db, &room, &me, 3, 4_000, quota).await;
    assert_eq!(
        (taken.len(), refused),
        (2, vec![QuotaRefusal::PersonBytes { used: 8_000 }])
    );
    for upload in &taken {
        assert!(db.delete_upload(&upload.id).await.unwrap());
    }
    assert!(!db.delete_upload(&taken[0].id).await.unwrap(), "twice");
    assert_eq!(
        db.person_usage(&doctor).await.unwrap(),
        PersonUsage::default()
    );
    let few = UploadQuota {
        person_documents: 3,
        ..quota
    };
    for _ in 0..3 {
        let upload = upload_of(&room, &doctor, Role::Doctor, 10);
        db.start_upload(&upload, &few).await.unwrap().unwrap();
        let doc = DocumentRecord {
            id: DocumentId::generate(),
            room_id: room.clone(),
            sha256: upload.sha256.clone(),
            size: 10,
            kind: DocumentKind::Text,
            name: "note.txt".into(),
            visibility: Visibility::Everyone,
            shared_by: upload.participant.clone(),
            shared_by_role: Role::Doctor,
            created_at_ms: 1,
        };
        db.complete_upload(&upload.id, &doc).await.unwrap();
    }
    assert_eq!(
        db.start_upload(&upload_of(&room, &doctor, Role::Doctor, 10), &few)
            .await
            .unwrap(),
        Err(QuotaRefusal::PersonDocuments)
    );
    assert_eq!(
        db.person_usage(&doctor).await.unwrap(),
        PersonUsage {
            open_uploads: 0,
            documents: 3,
            bytes: 30
        }
    );
    assert_counters_match_rows(db, &room, &[doctor]).await;
}

/// Many tasks appending at once keep the chain whole and each task's entries in its order, and
/// the writer commits them in batches; two writers on one database (two server processes)
/// keep it whole too, through the duplicate-`seq` retry.
async fn hammer_the_chain(db: &Db, url: &str) {
    const TASKS: usize = 20;
    const EACH: usize = 50;
    let log = AuditLog::new(db.clone(), audit_key());
    let before = log.verify().await.unwrap().entries;
    let event = |t: usize, n: usize| {
        AuditEvent::new(Actor::System, Action::AuditRead).object("probe", format!("{t}:{n}"))
    };
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut last = 0;
                for n in 0..EACH {
                    let entry = log.record(event(t, n)).await.unwrap();
                    assert!(entry.seq > last, "a task's entries in its order");
                    last = entry.seq;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let v = log.verify().await.unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.entries, before + (TASKS * EACH) as u64);
    let stats = log.writer_stats();
    assert!(
        stats.largest_batch > 1 && stats.entries > stats.commits,
        "appends were committed in batches: {stats:?}"
    );

    let other = AuditLog::new(Db::connect(url).await.unwrap(), audit_key());
    let tasks: Vec<_> = (0..10)
        .map(|t| {
            let log = if t % 2 == 0 {
                log.clone()
            } else {
                other.clone()
            };
            tokio::spawn(async move {
                for n in 0..20 {
                    log.record(event(100 + t, n)).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let v = log.verify().await.unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.entries, before + (TASKS * EACH) as u64 + 200);
    eprintln!(
        "writer: {:?}; the other process: {:?}",
        log.writer_stats(),
        other.writer_stats()
    );
    other.close().await;
    log.close().await;
}

/// The reason `token` is refused at `now`, or `None` if it is honoured.
async fn refusal(sessions: &Sessions, token: &str, now: i64) -> Option<Refusal> {
    match sessions.authenticate(token, now).await {
        Ok(_) => None,
        Err(SessionError::Refused { reason, .. }) => Some(reason),
        Err(e) => panic!("{e}"),
    }
}

async fn open(sessions: &Sessions, user: &User, now: i64) -> Issued {
    sessions
        .open(SessionId::generate(), user, "client".into(), now)
        .await
        .unwrap()
}

/// Sessions on a clock the test moves: idle and absolute expiry, renewal, sign-out, password
/// changes, revocation, and the atomic steps under concurrency.
async fn exercise_sessions(db: &Db) {
    const IDLE: i64 = 1800;
    const LIFE: i64 = 12 * 3600;
    let sessions = Sessions::new(
        db.clone(),
        SigningKey::random(),
        Policy {
            idle_s: IDLE,
            lifetime_s: LIFE,
        },
    );
    let t0 = now_unix();
    let user = db
        .create_user("sessions", "Dr. Zhao", AccountRole::Doctor, "h0")
        .await
        .unwrap();

    // A fresh session: idle deadline in the token, absolute end fixed.
    let first = open(&sessions, &user, t0).await;
    assert_eq!(
        (first.expires_at, first.session_expires_at),
        (t0 + IDLE, t0 + LIFE)
    );
    let ok = sessions.authenticate(&first.token, t0 + 1).await.unwrap();
    assert_eq!((ok.user.id.clone(), ok.session.epoch), (user.id.clone(), 0));
    assert_eq!(
        refusal(&sessions, &first.token, t0 + IDLE).await,
        Some(Refusal::Idle)
    );
    // Not a session token of this server: not even a refusal worth recording.
    let foreign = Sessions::new(db.clone(), SigningKey::random(), sessions.policy());
    assert!(matches!(
        foreign.authenticate(&first.token, t0 + 1).await,
        Err(SessionError::Invalid)
    ));

    // Renewal: a new token, the old one superseded at once, never past the absolute end.
    let a = sessions
        .authenticate(&first.token, t0 + 1000)
        .await
        .unwrap();
    let second = sessions
        .renew(&a.user, &a.session, t0 + 1000)
        .await
        .unwrap();
    assert_eq!(
        (second.expires_at, second.session_expires_at),
        (t0 + 1000 + IDLE, t0 + LIFE)
    );
    assert_eq!(
        refusal(&sessions, &first.token, t0 + 1001).await,
        Some(Refusal::Superseded)
    );
    assert_eq!(refusal(&sessions, &second.token, t0 + 1001).await, None);
    // Renewing the stale row again loses: it is no longer at that epoch.
    assert!(matches!(
        sessions.renew(&a.user, &a.session, t0 + 1002).await,
        Err(SessionError::Refused {
            reason: Refusal::Superseded,
            ..
        })
    ));
    let mut token = second.token.clone();
    let mut at = t0 + 1000;
    let mut last = second.clone();
    while at + 1500 < t0 + LIFE {
        at += 1500;
        let a = sessions.authenticate(&token, at).await.unwrap();
        last = sessions.renew(&a.user, &a.session, at).await.unwrap();
        assert!(last.expires_at <= t0 + LIFE, "renewed past the end");
        assert_eq!(last.session_expires_at, t0 + LIFE);
        token = last.token.clone();
    }
    assert_eq!(
        last.expires_at,
        t0 + LIFE,
        "the last renewal ends with the session"
    );
    assert_eq!(
        refusal(&sessions, &token, t0 + LIFE).await,
        Some(Refusal::Expired)
    );
    let row = db.session(&last.session).await.unwrap().unwrap();
    assert!(
        !db.renew_session(&row.id, row.epoch, t0 + LIFE, t0 + LIFE + IDLE)
            .await
            .unwrap(),
        "an expired session cannot be renewed"
    );
    // (Signed out, so that it is not among the live sessions below, which live at t0.)
    assert!(sessions.sign_out(&last.session, t0 + 2).await.unwrap());

    // Twenty renewals of one token at once: exactly one wins.
    let racing = open(&sessions, &user, t0).await;
    let a = sessions.authenticate(&racing.token, t0 + 10).await.unwrap();
    let results = futures_util::future::join_all(
        (0..20).map(|_| sessions.renew(&a.user, &a.session, t0 + 10)),
    )
    .await;
    let won: Vec<&Issued> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for lost in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(
                lost,
                SessionError::Refused {
                    reason: Refusal::Superseded,
                    ..
                }
            ),
            "{lost}"
        );
    }
    assert_eq!(db.session(&racing.session).await.unwrap().unwrap().epoch, 1);
    assert_eq!(refusal(&sessions, &won[0].token, t0 + 11).await, None);

    // Sign-out ends one session, once.
    let out = open(&sessions, &user, t0).await;
    assert!(sessions.sign_out(&out.session, t0 + 5).await.unwrap());
    assert!(!sessions.sign_out(&out.session, t0 + 6).await.unwrap());
    assert_eq!(
        refusal(&sessions, &out.token, t0 + 7).await,
        Some(Refusal::Revoked(RevokeReason::SignedOut))
    );

    // A password change keeps the session that asked and ends every other live one.
    let user = db.user(&user.id).await.unwrap().unwrap();
    let keep = open(&sessions, &user, t0).await;
    let other = open(&sessions, &user, t0).await;
    let live_before = 3; // the race winner, `keep` and `other`
    let revoked = sessions
        .change_password(&user, "h1", &keep.session, t0 + 20)
        .await
        .unwrap();
    assert_eq!(revoked, live_before - 1);
    assert_eq!(refusal(&sessions, &keep.token, t0 + 21).await, None);
    assert_eq!(
        refusal(&sessions, &other.token, t0 + 21).await,
        Some(Refusal::Revoked(RevokeReason::PasswordChanged))
    );
    // A change checked against the password as it was before loses (one of two wins).
    assert!(matches!(
        sessions
            .change_password(&user, "h2", &keep.session, t0 + 22)
            .await,
        Err(SessionError::Storage(StorageError::Conflict))
    ));
    // A sign-in that checked the old password while it changed does not outlive the change.
    let stale = open(&sessions, &user, t0 + 23).await;
    assert_eq!(
        refusal(&sessions, &stale.token, t0 + 24).await,
        Some(Refusal::PasswordChanged)
    );
    let stale_row = db.session(&stale.session).await.unwrap().unwrap();
    assert!(
        !db.renew_session(&stale_row.id, 0, t0 + 24, t0 + 24 + IDLE)
            .await
            .unwrap(),
        "nor can it be renewed"
    );

    // An administrator ends all of them (the stale one counts: it was not revoked).
    let user = db.user(&user.id).await.unwrap().unwrap();
    let more = open(&sessions, &user, t0 + 30).await;
    assert_eq!(sessions.revoke_all(&user.id, t0 + 31).await.unwrap(), 3);
    for t in [&keep.token, &more.token] {
        assert_eq!(
            refusal(&sessions, t, t0 + 32).await,
            Some(Refusal::Revoked(RevokeReason::Revoked))
        );
    }
    assert_eq!(sessions.revoke_all(&user.id, t0 + 33).await.unwrap(), 0);

    // The command line's reset keeps nothing.
    let user = db.user(&user.id).await.unwrap().unwrap();
    let cli = open(&sessions, &user, t0 + 40).await;
    assert_eq!(
        huizhen::sessions::reset_password(db, &user.id, "h3", t0 + 41)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        refusal(&sessions, &cli.token, t0 + 42).await,
        Some(Refusal::Revoked(RevokeReason::PasswordChanged))
    );

    // A day after their end, sessions are forgotten; their tokens are then unknown.
    let stored = db.sessions_of(&user.id).await.unwrap().len();
    assert!(stored >= 8, "{stored}");
    assert_eq!(
        sessions.purge(t0 + LIFE + 24 * 3600).await.unwrap(),
        0,
        "kept for a day after their end"
    );
    assert!(
        sessions
            .purge(t0 + 41 + LIFE + 24 * 3600 + 1)
            .await
            .unwrap()
            >= stored as u64
    );
    assert!(db.sessions_of(&user.id).await.unwrap().is_empty());
    assert_eq!(
        refusal(&sessions, &cli.token, t0 + 43).await,
        Some(Refusal::Unknown)
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
    exercise_consultation_records(&db).await;
    hammer_the_chain(&db, &url).await;
    exercise_sessions(&db).await;
    db.close().await;
    // Reopening runs the migrations again without harm and keeps the data.
    let db = Db::connect(&url).await.unwrap();
    assert!(db.user_by_username("doc").await.unwrap().is_some());
}

/// A second pool opened on a SQLite file the server is writing to (what a `huizhen user …`
/// command does beside the running server) connects and writes, every time: in WAL mode it
/// waits its turn for the write lock (`busy_timeout`) however busy the server's audit writer
/// is. (The "database is locked" CI once saw from such a command was the test's: it blocked
/// the single thread its in-process server ran on while the command waited for that server.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_writes_beside_a_busy_server_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("h.db").display());
    let server = Db::connect(&url).await.unwrap();
    let mode: String = server.journal_mode().await.unwrap();
    assert_eq!(mode, "wal");
    let user = server
        .create_user("doc", "Dr. Wang", AccountRole::Doctor, "$argon2id$fake")
        .await
        .unwrap();
    let log = AuditLog::new(server.clone(), audit_key());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (log, stop) = (log.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    log.record(
                        AuditEvent::new(Actor::System, Action::AuditRead)
                            .object("probe", format!("{t}:{n}")),
                    )
                    .await
                    .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    for round in 0..30 {
        let command = Db::connect(&url).await.unwrap();
        command
            .set_disabled(&user.id, (round % 2 == 0).then_some(now_unix()))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        command.close().await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut written = 0;
    for w in writers {
        written += w.await.unwrap();
    }
    assert!(written > 0, "the server wrote meanwhile");
    assert!(log.verify().await.unwrap().ok());
    log.close().await;
    server.close().await;
}

#[tokio::test]
async fn postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let db = Db::connect(&pg.url).await.unwrap();
    exercise(&db).await;
    exercise_consultation_records(&db).await;
    hammer_the_chain(&db, &pg.url).await;
    exercise_sessions(&db).await;
    db.close().await;
    pg.drop_db().await;
}

/// Migration 0004 counts what a database's existing uploads and documents use: a server
/// upgraded with data gets the same counters as one that kept them all along.
async fn quota_counters_are_backfilled(url: &str) {
    use sqlx::Executor;
    let db = Db::connect(url).await.unwrap();
    let user = db
        .create_user("old", "Dr. Old", AccountRole::Doctor, "x")
        .await
        .unwrap();
    let room = db.create_room("Before", None, &user.id).await.unwrap().id;
    let mut invites = Vec::new();
    for (role, finished, open) in [(Role::Doctor, 2, 1), (Role::Patient, 1, 1)] {
        let invite = InviteId::generate();
        for i in 0..finished + open {
            let upload = upload_of(&room, &invite, role, 100 + i);
            db.participant_joined(&room, &upload.participant, &invite, role, "someone")
                .await
                .unwrap();
            db.start_upload(&upload, &ROOMY).await.unwrap().unwrap();
            if i < finished {
                let doc = DocumentRecord {
                    id: DocumentId::generate(),
                    room_id: room.clone(),
                    sha256: upload.sha256.clone(),
                    size: upload.size,
                    kind: DocumentKind::Pdf,
                    name: upload.name.clone(),
                    visibility: upload.visibility,
                    shared_by: upload.participant.clone(),
                    shared_by_role: role,
                    created_at_ms: 1,
                };
                db.complete_upload(&upload.id, &doc).await.unwrap();
            }
        }
        invites.push(invite);
    }
    let people = [
        db.person_usage(&invites[0]).await.unwrap(),
        db.person_usage(&invites[1]).await.unwrap(),
    ];
    assert_eq!(
        people[0],
        PersonUsage {
            open_uploads: 1,
            documents: 3,
            bytes: 303
        }
    );
    let rooms = db.room_usage(&room).await.unwrap();
    assert_eq!(
        rooms,
        RoomUsage {
            documents: 5,
            non_clinician_documents: 2
        }
    );
    db.close().await;

    // Back to the schema before 0004, with the rows, and up again.
    let raw = sqlx::AnyPool::connect(url).await.unwrap();
    raw.execute(
        "DROP TABLE document_quota_invites; DROP TABLE document_quota_rooms; \
         DELETE FROM _sqlx_migrations WHERE version = 4;",
    )
    .await
    .unwrap();
    raw.close().await;
    let db = Db::connect(url).await.unwrap();
    assert_eq!(db.person_usage(&invites[0]).await.unwrap(), people[0]);
    assert_eq!(db.person_usage(&invites[1]).await.unwrap(), people[1]);
    assert_eq!(db.room_usage(&room).await.unwrap(), rooms);
    db.close().await;
}

#[tokio::test]
async fn quota_counters_are_backfilled_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("b.db").display());
    quota_counters_are_backfilled(&url).await;
}

#[tokio::test]
async fn quota_counters_are_backfilled_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    quota_counters_are_backfilled(&pg.url).await;
    pg.drop_db().await;
}

on_both_stores!(
    upload_quotas_hold_under_concurrency_on_sqlite,
    upload_quotas_hold_under_concurrency_on_postgres,
    exercise_upload_quotas
);

/// Join latency through the real room task while other tasks hammer the audit trail, on
/// PostgreSQL: a benchmark, not a test (it asserts nothing about time). Run with
///
/// ```sh
/// HUIZHEN_REQUIRE_POSTGRES=1 cargo test --workspace --locked --test integration \
///     join_latency_under_audit_load -- --ignored --nocapture
/// ```
///
/// and read the figures from its output (docs/BENCHMARKS.md, "Persistence off the room's
/// path"). A debug build is enough: what it measures is waiting on the database, not CPU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: prints figures, asserts nothing about time"]
async fn join_latency_under_audit_load() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use huizhen::auth::SigningKey;
    use huizhen::config::MediaConfig;
    use huizhen::documents::Documents;
    use huizhen::media::MediaHandle;
    use huizhen::metrics::Metrics;
    use huizhen::rooms::{
        Limits, Publish, RoomCommand, RoomManager, RoomServices, RoomSettings, SessionLink,
    };

    const ROOMS: usize = 10;
    const JOINS: usize = 300;
    const LOADERS: usize = 8;

    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&pg.url).await.unwrap();
    let user = db
        .create_user("bench", "B", AccountRole::Doctor, "x")
        .await
        .unwrap();
    let mut rooms = Vec::new();
    for i in 0..ROOMS {
        rooms.push(
            db.create_room(&format!("bench {i}"), None, &user.id)
                .await
                .unwrap()
                .id,
        );
    }
    let audit = AuditLog::new(db.clone(), audit_key());
    let media = MediaHandle::start(&MediaConfig {
        udp_bind: "127.0.0.1:0".parse().unwrap(),
        announce: vec![],
        workers: 1,
        socket_buffer_bytes: 0,
        ..MediaConfig::default()
    })
    .unwrap();
    let manager = RoomManager::new(
        db.clone(),
        media,
        SigningKey::random(),
        RoomSettings {
            max_participants: 32,
            max_rooms: ROOMS * 2,
            resume_window: Duration::from_secs(30),
            idle_stop: Duration::from_secs(300),
            limits: Limits {
                max_message_bytes: 65536,
                messages_per_second: 20,
                max_participants: 32,
            },
            turn: None,
            clock: Default::default(),
            simulcast: true,
            joins: Default::default(),
        },
        Arc::new(Metrics::default()),
        RoomServices {
            documents: Documents::open(db.clone(), dir.path(), Default::default()).unwrap(),
            audit: audit.clone(),
            notifications: huizhen::notifications::Notifications::start(db.clone()),
            progress: Default::default(),
        },
    );

    // Each join is followed by a leave, round robin over the rooms, one at a time.
    let run_joins = |label: &'static str| {
        let manager = manager.clone();
        let rooms = rooms.clone();
        async move {
            let mut took = Vec::with_capacity(JOINS);
            for i in 0..JOINS {
                let room = manager.open(&rooms[i % ROOMS]).await.unwrap();
                let (tx, rx) = tokio::sync::mpsc::channel(128);
                let (reply, done) = tokio::sync::oneshot::channel();
                let conn = i as u64 + 1;
                let started = Instant::now();
                room.send(RoomCommand::Join {
                    name: format!("p{i}"),
                    role: Role::Patient,
                    role_given: false,
                    publish: Publish {
                        audio: false,
                        video: false,
                    },
                    simulcast: false,
                    invite: InviteId::generate(),
                    account: None,
                    institution: None,
                    session: None,
                    replaces: None,
                    link: SessionLink { conn, tx },
                    reply,
                })
                .await
                .unwrap();
                let joined = done.await.unwrap().unwrap();
                took.push(started.elapsed());
                room.send(RoomCommand::Leave {
                    participant: joined.participant,
                    conn,
                })
                .await
                .unwrap();
                drop(rx);
            }
            took.sort();
            let ms = |q: f64| took[((took.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
            println!(
                "{label}: {JOINS} joins, p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
                ms(0.5),
                ms(0.95),
                ms(1.0)
            );
        }
    };

    run_joins("idle").await;

    let stop = Arc::new(AtomicBool::new(false));
    let appended = Arc::new(AtomicU64::new(0));
    let mut loaders = Vec::new();
    for _ in 0..LOADERS {
        let (audit, stop, appended, user) =
            (audit.clone(), stop.clone(), appended.clone(), user.clone());
        loaders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                audit
                    .record(AuditEvent::new(
                        Actor::User(user.id.clone(), user.role),
                        Action::AuditRead,
                    ))
                    .await
                    .unwrap();
                appended.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (before, started) = (appended.load(Ordering::Relaxed), Instant::now());
    run_joins("under load").await;
    let rate = (appended.load(Ordering::Relaxed) - before) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.await.unwrap();
    }
    println!("{LOADERS} loaders appended {rate:.0} entries/s meanwhile");
    let w = audit.writer_stats();
    println!(
        "writer: {} appends in {} commits ({:.1} per commit), largest batch {}",
        w.appends,
        w.commits,
        w.appends as f64 / w.commits.max(1) as f64,
        w.largest_batch
    );
    let v = audit.verify().await.unwrap();
    assert!(v.ok(), "{v:?}");
    println!("chain verified: {} entries", v.entries);
    db.close().await;
    pg.drop_db().await;
}

/// A department removed while an account is placed in it: either the account is created and the
/// department stays (the removal is `Conflict`), or the department goes and the account is
/// refused (`NoSuchDepartment`); never an account in a department that no longer exists. Each
/// pair runs at the same time, many times over, and a move into a department (`set_user_place`)
/// is raced the same way.
async fn department_removal_races_account_placement(db: &Db, _url: &str) {
    use huizhen::domain::organisation::InstitutionKind;
    use huizhen::storage::NewAccount;
    let county = db
        .create_institution("County hospital", InstitutionKind::Hospital)
        .await
        .unwrap();
    let mover = db
        .create_user("mover", "Mover", AccountRole::Doctor, "x")
        .await
        .unwrap();
    let (mut kept, mut removed) = (0, 0);
    for round in 0..60 {
        let department = db
            .create_department(&county.id, &format!("Department {round}"))
            .await
            .unwrap();
        let username = format!("clinician{round}");
        let (placed, removal) = tokio::join!(
            async {
                if round % 2 == 0 {
                    db.create_account(&NewAccount {
                        username: &username,
                        display_name: &username,
                        role: AccountRole::Specialist,
                        password_hash: "x",
                        institution: &county.id,
                        department: Some(&department.id),
                        title: "",
                        specialty: "",
                    })
                    .await
                    .map(|_| ())
                } else {
                    db.set_user_place(&mover.id, &county.id, Some(&department.id), "", "")
                        .await
                }
            },
            db.remove_department(&department.id),
        );
        let exists = db.department(&department.id).await.unwrap().is_some();
        match (placed, removal) {
            (Ok(()), Err(StorageError::Conflict)) => {
                assert!(exists, "round {round}: refused removal, department gone");
                kept += 1;
            }
            (Err(StorageError::NoSuchDepartment), Ok(())) => {
                assert!(!exists, "round {round}: removed, department still there");
                removed += 1;
            }
            other => panic!("round {round}: the account and the department disagree: {other:?}"),
        }
        if round % 2 == 1 && exists {
            // Free the department again for the next round's move.
            db.set_user_place(&mover.id, &county.id, None, "", "")
                .await
                .unwrap();
        }
    }
    // Every account that exists is in a department that exists.
    for user in db.list_users().await.unwrap() {
        if let Some(d) = &user.department_id {
            assert!(
                db.department(d).await.unwrap().is_some(),
                "{} is in a removed department",
                user.username
            );
        }
    }
    eprintln!("department races: {kept} placed first, {removed} removed first");
}

on_both_stores!(
    department_removal_races_account_placement_on_sqlite,
    department_removal_races_account_placement_on_postgres,
    department_removal_races_account_placement
);

/// Of 24 requests raced for a cap's last 12 places: 12 made, the rest refused at that cap.
fn twelve_through_then(
    raced: Vec<Result<huizhen::storage::ReferralRow, huizhen::referrals::ReferralServiceError>>,
    cap: &str,
    cap_max: i64,
    what: &str,
) {
    use huizhen::referrals::ReferralServiceError;
    let (ok, refused): (Vec<_>, Vec<_>) = raced.into_iter().partition(|r| r.is_ok());
    assert_eq!(ok.len(), 12, "{what}");
    for r in refused {
        match r {
            Err(ReferralServiceError::Limit { limit, max }) => {
                assert_eq!((limit, max), (cap, cap_max));
            }
            other => panic!("{:?}", other.map(|r| r.id)),
        }
    }
}

/// A doctor of `institution`, `username`.
async fn doctor_of(db: &Db, institution: &InstitutionId, username: &'static str) -> User {
    db.create_account(&huizhen::storage::NewAccount {
        username,
        display_name: username,
        role: AccountRole::Doctor,
        password_hash: "x",
        institution,
        department: None,
        title: "",
        specialty: "",
    })
    .await
    .unwrap()
}

/// A county hospital and its cardiology, and a doctor of the hospital, `username`, to send
/// it consultation requests.
async fn cardiology_and_doctor(
    db: &Db,
    username: &'static str,
) -> (InstitutionId, DepartmentId, User) {
    use huizhen::domain::organisation::InstitutionKind;
    let county = db
        .create_institution("County hospital", InstitutionKind::Hospital)
        .await
        .unwrap();
    let cardiology = db
        .create_department(&county.id, "Cardiology")
        .await
        .unwrap();
    let doctor = doctor_of(db, &county.id, username).await;
    (county.id, cardiology.id, doctor)
}

/// A routine request to `department` about `patient_ref`, sent at `at` for an hour later.
fn routine_request(
    department: &DepartmentId,
    patient_ref: String,
    at: i64,
) -> huizhen::referrals::NewRequest {
    huizhen::referrals::NewRequest {
        department: department.clone(),
        specialist: None,
        patient_ref,
        reason: "Chest pain".into(),
        question: "Angina?".into(),
        urgency: huizhen::domain::referral::Urgency::Routine,
        proposed: vec![huizhen::referrals::Time {
            start: at + 3600,
            minutes: 30,
        }],
        sharing_consent: None,
    }
}

/// A clinician's caps on consultation requests hold under concurrency: requests sent at once
/// near the daily cap take turns, so exactly the cap gets through; and requests older than a
/// day, still open, count against the cap on open requests.
async fn referral_caps(db: &Db, _url: &str) {
    use huizhen::referrals::Referrals;
    use huizhen::storage::{
        MAX_OPEN_REFERRALS_PER_REQUESTER as OPEN, MAX_REFERRALS_PER_REQUESTER_PER_DAY as DAY,
    };
    let (county, cardiology, doctor) = cardiology_and_doctor(db, "busy").await;
    let svc = Referrals::new(db.clone());
    let send = |who: &User, at: i64| {
        let (svc, who) = (svc.clone(), who.clone());
        let new = routine_request(&cardiology, "P-1".into(), at);
        async move {
            let made = svc.create(&who, new, at).await.map(|c| c.row);
            (svc, who, made)
        }
    };
    let request = |at: i64| {
        let sent = send(&doctor, at);
        async move { sent.await.2 }
    };
    let now = now_unix();
    // Sent over the last days, still open: within the daily cap each day.
    let earlier = OPEN - DAY / 2;
    let mut sent = 0;
    while sent < earlier {
        // Oldest first: a day's count looks back from each request, not forward.
        let day = now - 10 * 86_400 + (sent / (DAY - 1)) * 86_400;
        let batch = (earlier - sent).min(DAY - 1).min(50);
        for r in futures_util::future::join_all((0..batch).map(|_| request(day))).await {
            r.unwrap();
        }
        sent += batch;
    }
    // Today: the rest of the open cap, the last dozen places raced by twice as many.
    for _ in 0..(OPEN - earlier - 12) {
        request(now).await.unwrap();
    }
    let raced = futures_util::future::join_all((0..24).map(|_| request(now))).await;
    twelve_through_then(
        raced,
        "open_referrals",
        OPEN,
        "exactly the cap gets through",
    );

    // A colleague sends their day's worth: the last dozen places raced, then no more today.
    let colleague = doctor_of(db, &county, "prolific").await;
    let theirs = |at: i64| {
        let sent = send(&colleague, at);
        async move {
            let (svc, who, made) = sent.await;
            if let Ok(r) = &made {
                // Cancelled at once: closed requests count against the day all the same.
                svc.act(
                    &r.id,
                    &who,
                    huizhen::referrals::Request::Cancel {
                        reason: "Sent by mistake".into(),
                    },
                    at,
                )
                .await
                .unwrap();
            }
            made
        }
    };
    for _ in 0..(DAY - 12) {
        theirs(now).await.unwrap();
    }
    let raced = futures_util::future::join_all((0..24).map(|_| theirs(now))).await;
    twelve_through_then(
        raced,
        "referrals_per_day",
        DAY,
        "exactly the daily cap gets through",
    );
    // A day later they may send again.
    theirs(now + 86_400).await.unwrap();
}

on_both_stores!(
    referral_caps_on_sqlite,
    referral_caps_on_postgres,
    referral_caps
);

/// The organisation's caps hold under concurrency: departments created at once near an
/// institution's cap take turns, so exactly the cap gets through; the network's count of
/// institutions stops at its cap.
async fn organisation_caps(db: &Db, url: &str) {
    use huizhen::domain::organisation::InstitutionKind;
    use huizhen::storage::{MAX_DEPARTMENTS_PER_INSTITUTION as PER, MAX_INSTITUTIONS};
    let county = db
        .create_institution("County hospital", InstitutionKind::Hospital)
        .await
        .unwrap();
    for i in 0..(PER - 10) {
        db.create_department(&county.id, &format!("Department {i}"))
            .await
            .unwrap();
    }
    let raced = futures_util::future::join_all((0..20).map(|i| {
        let (db, county) = (db.clone(), county.id.clone());
        async move { db.create_department(&county, &format!("Late {i}")).await }
    }))
    .await;
    let (ok, refused): (Vec<_>, Vec<_>) = raced.into_iter().partition(|r| r.is_ok());
    assert_eq!(ok.len(), 10, "exactly the cap gets through");
    for r in refused {
        match r {
            Err(StorageError::Limit { limit, max }) => {
                assert_eq!((limit, max), ("departments_per_institution", PER));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        db.list_departments(Some(&county.id)).await.unwrap().len() as i64,
        PER
    );

    // The network filled to one short of its cap, quickly, beside the server's code.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let have = db.list_institutions().await.unwrap().len() as i64;
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO institutions (id, name, kind, created_at) \
         SELECT 'bulk' || CAST(i AS TEXT), 'Clinic ' || CAST(i AS TEXT), 'township_clinic', 0 \
         FROM n",
    )
    .bind(MAX_INSTITUTIONS - 1 - have)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    db.create_institution("The last", InstitutionKind::TownshipClinic)
        .await
        .unwrap();
    match db
        .create_institution("One too many", InstitutionKind::TownshipClinic)
        .await
    {
        Err(StorageError::Limit { limit, max }) => {
            assert_eq!((limit, max), ("institutions", MAX_INSTITUTIONS));
        }
        other => panic!("{other:?}"),
    }
}

on_both_stores!(
    organisation_caps_on_sqlite,
    organisation_caps_on_postgres,
    organisation_caps
);

/// The audit entries a consultation request's step owes are queued in its transaction and
/// reach the trail exactly once: the step's own append and the late one (after a crash, or a
/// failed append) racing each other write one entry between them, and neither writes it again
/// afterwards. Damaged rows are left where they are without holding up the rest, and more
/// than a page of rows left behind are appended in their order.
async fn owed_audit_entries_are_written_once(db: &Db, url: &str) {
    use huizhen::referrals::Referrals;
    let (_, cardiology, doctor) = cardiology_and_doctor(db, "owing").await;
    let svc = Referrals::new(db.clone());
    let audit = AuditLog::new(db.clone(), audit_key());
    let created_entries = || async {
        audit.flush().await.unwrap();
        audit
            .entries(0, 1000, None)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == Action::ReferralCreated.as_str())
            .collect::<Vec<_>>()
    };
    let now = now_unix();
    let mut made = Vec::new();
    for n in 0..5 {
        let new = routine_request(&cardiology, format!("P-{n}"), now);
        made.push(svc.create(&doctor, new, now).await.unwrap());
    }
    // Queued, not on the trail yet.
    assert_eq!(
        db.pending_audit(i64::MAX, None, 100)
            .await
            .unwrap()
            .owed
            .len(),
        5
    );
    assert!(created_entries().await.is_empty());

    // Damaged rows (not written by this code: an event that is not one, an id that is not
    // one) wait beside them, and 300 entries left behind by an earlier run, more than a page.
    sqlx::any::install_default_drivers();
    let raw = sqlx::AnyPool::connect(url).await.unwrap();
    for (id, event) in [("aup_0123456789abcdef", "not an event"), ("damaged", "{}")] {
        sqlx::query("INSERT INTO audit_pending (id, event, at_ms, ord) VALUES ($1, $2, $3, 0)")
            .bind(id)
            .bind(event)
            .bind(0_i64)
            .execute(&raw)
            .await
            .unwrap();
    }
    for n in 0..300_i64 {
        let event = AuditEvent::new(Actor::System, Action::RoomCreated).object("room", n);
        sqlx::query("INSERT INTO audit_pending (id, event, at_ms, ord) VALUES ($1, $2, $3, $4)")
            .bind(huizhen::domain::ids::PendingAuditId::generate().as_str())
            .bind(event.to_json())
            .bind(1 + n / 2)
            .bind(n % 2)
            .execute(&raw)
            .await
            .unwrap();
    }

    // The steps' own appends and a late pass, at once: each entry once.
    let owed: Vec<_> = made.iter().flat_map(|c| c.owed.clone()).collect();
    let (_, late) = tokio::join!(audit.record_owed(&owed), audit.append_pending(i64::MAX));
    let late = late.unwrap();
    let entries = created_entries().await;
    assert_eq!(entries.len(), 5, "{entries:?}");
    let late_ones = entries
        .iter()
        .filter(|e| e.detail.contains("recorded_late"))
        .count();
    assert_eq!(late_ones + 300, late);
    // The earlier run's, each once, late, in the order they were owed.
    let rooms: Vec<String> = audit
        .entries(0, 2000, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == Action::RoomCreated.as_str())
        .inspect(|e| assert!(e.detail.contains("recorded_late"), "{e:?}"))
        .map(|e| e.object_id)
        .collect();
    assert_eq!(rooms, (0..300).map(|n| n.to_string()).collect::<Vec<_>>());
    let mut referrals: Vec<_> = entries.iter().map(|e| e.object_id.clone()).collect();
    referrals.sort();
    let mut expected: Vec<_> = made.iter().map(|c| c.row.id.to_string()).collect();
    expected.sort();
    assert_eq!(referrals, expected);

    // Nothing is written again, however often either runs; the damaged row stays.
    assert_eq!(audit.append_pending(i64::MAX).await.unwrap(), 0);
    audit.record_owed(&owed).await;
    assert_eq!(created_entries().await.len(), 5);
    let left: Vec<i64> = sqlx::query_scalar("SELECT at_ms FROM audit_pending")
        .fetch_all(&raw)
        .await
        .unwrap();
    assert_eq!(left, [0, 0], "the damaged rows stay");
    assert_eq!(
        db.pending_audit(i64::MAX, None, 100)
            .await
            .unwrap()
            .owed
            .len(),
        1
    );
    assert!(audit.verify().await.unwrap().ok());
    raw.close().await;
}

on_both_stores!(
    owed_audit_entries_are_written_once_on_sqlite,
    owed_audit_entries_are_written_once_on_postgres,
    owed_audit_entries_are_written_once
);
