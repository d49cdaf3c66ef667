//! The room state machine, driven through [`RoomManager`] with real storage and a real (idle)
//! media worker, fake signaling links whose queues the tests read, and a manual clock: the
//! room's deadlines pass when a test advances it, not while the test waits.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::config::MediaConfig;
use crate::domain::role::AccountRole;

struct Fixture {
    _dir: tempfile::TempDir,
    clock: ManualClock,
    rooms: RoomManager,
    metrics: Arc<Metrics>,
    db: Db,
    room: RoomId,
    next_conn: u64,
}

async fn fixture(max_participants: usize, resume_window: Duration) -> Fixture {
    fixture_with(max_participants, resume_window, true).await
}

/// A fixture whose server allows simulcast (`media.simulcast`) or not.
async fn fixture_with(
    max_participants: usize,
    resume_window: Duration,
    simulcast: bool,
) -> Fixture {
    fixture_capped(
        max_participants,
        resume_window,
        simulcast,
        JoinCaps::default(),
    )
    .await
}

/// A fixture whose rooms cap joins at `joins`.
async fn fixture_capped(
    max_participants: usize,
    resume_window: Duration,
    simulcast: bool,
    joins: JoinCaps,
) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("t.db").display()
    ))
    .await
    .unwrap();
    let media = MediaHandle::start(&MediaConfig {
        udp_bind: "127.0.0.1:0".parse().unwrap(),
        announce: vec![],
        workers: 1,
        socket_buffer_bytes: 0,
        ..MediaConfig::default()
    })
    .unwrap();
    let user = db
        .create_user("doc", "D", AccountRole::Doctor, "x")
        .await
        .unwrap();
    let room = db.create_room("T", None, &user.id).await.unwrap().id;
    let metrics = Arc::new(Metrics::default());
    let clock = ManualClock::new();
    let rooms = RoomManager::new(
        db.clone(),
        media,
        SigningKey::random(),
        RoomSettings {
            max_participants,
            max_rooms: 10,
            resume_window,
            idle_stop: Duration::from_secs(30),
            limits: Limits {
                max_message_bytes: 65536,
                messages_per_second: 20,
                max_participants,
            },
            turn: None,
            clock: RoomClock::Manual(clock.clone()),
            simulcast,
            joins,
        },
        metrics.clone(),
        super::RoomServices {
            documents: crate::documents::Documents::open(
                db.clone(),
                dir.path(),
                Default::default(),
            )
            .unwrap(),
            audit: crate::audit::AuditLog::new(db.clone(), crate::audit::AuditKey::random()),
            notifications: crate::notifications::Notifications::start(db.clone()),
            progress: Default::default(),
        },
    );
    Fixture {
        _dir: dir,
        clock,
        rooms,
        metrics,
        db,
        room,
        next_conn: 1,
    }
}

struct Member {
    id: ParticipantId,
    conn: u64,
    rx: mpsc::Receiver<Outbound>,
    welcome: Welcome,
}

impl Fixture {
    async fn join(&mut self, role: Role) -> Result<Member, RoomError> {
        self.join_with_queue(role, SESSION_QUEUE).await
    }

    /// A join whose session queue holds `capacity` messages.
    async fn join_with_queue(&mut self, role: Role, capacity: usize) -> Result<Member, RoomError> {
        self.join_publishing(role, capacity, Publish::default(), false)
            .await
    }

    /// A join that publishes `publish`, its client asking for simulcast or not.
    async fn join_publishing(
        &mut self,
        role: Role,
        capacity: usize,
        publish: Publish,
        simulcast: bool,
    ) -> Result<Member, RoomError> {
        let invite = InviteId::generate();
        self.join_on(role, capacity, publish, simulcast, None, &invite)
            .await
    }

    /// A clinician's care-team seat, taken under the sign-in `session`.
    async fn join_seat(&mut self, role: Role, session: &SessionId) -> Result<Member, RoomError> {
        let seat = Some((Some(UserId::generate()), session.clone()));
        let invite = InviteId::generate();
        self.join_on(
            role,
            SESSION_QUEUE,
            Publish::default(),
            false,
            seat,
            &invite,
        )
        .await
    }

    /// A join with `invite` (a reload of the same link is one).
    async fn join_on(
        &mut self,
        role: Role,
        capacity: usize,
        publish: Publish,
        simulcast: bool,
        seat: Option<(Option<UserId>, SessionId)>,
        invite: &InviteId,
    ) -> Result<Member, RoomError> {
        let (account, session) = seat.unzip();
        let (tx, rx) = mpsc::channel(capacity);
        let conn = self.next_conn;
        self.next_conn += 1;
        let room = self.rooms.open(&self.room).await?;
        let (reply, done) = oneshot::channel();
        room.send(RoomCommand::Join {
            name: format!("{role:?}"),
            role,
            role_given: false,
            publish,
            simulcast,
            invite: invite.clone(),
            account: account.flatten(),
            institution: None,
            session,
            replaces: None,
            link: SessionLink { conn, tx },
            reply,
        })
        .await?;
        let joined = done.await.unwrap()?;
        Ok(Member {
            id: joined.participant,
            conn,
            rx,
            welcome: admitted(joined.entry),
        })
    }

    async fn send(&self, cmd: RoomCommand) {
        self.rooms.get(&self.room).unwrap().send(cmd).await.unwrap();
    }
}

/// The next message (skipping offers, which the media worker sends on its own schedule).
async fn next(m: &mut Member) -> Outbound {
    loop {
        let out = tokio::time::timeout(Duration::from_secs(10), m.rx.recv())
            .await
            .expect("a message in time")
            .expect("queue open");
        if !matches!(&out, Outbound::Message(m) if matches!(**m, Notice::Offer { .. })) {
            return out;
        }
    }
}

/// The next offer (skipping everything else).
async fn next_offer(m: &mut Member) -> Notice {
    loop {
        let out = tokio::time::timeout(Duration::from_secs(10), m.rx.recv())
            .await
            .expect("an offer in time")
            .expect("queue open");
        if let Some(n @ Notice::Offer { .. }) = message(out) {
            return n;
        }
    }
}

/// The message in `out`, if it is one.
fn message(out: Outbound) -> Option<Notice> {
    match out {
        Outbound::Message(m) => Some(std::sync::Arc::unwrap_or_clone(m)),
        Outbound::Close(_) => None,
    }
}

#[tokio::test]
async fn joins_are_announced_and_capacity_is_enforced() {
    let mut f = fixture(2, Duration::from_secs(30)).await;
    let mut a = f.join(Role::Doctor).await.unwrap();
    assert!(a.welcome.participants.is_empty());
    let b = f.join(Role::Patient).await.unwrap();
    assert_eq!(b.welcome.participants.len(), 1);
    assert_eq!(b.welcome.participants[0].id, a.id);
    match message(next(&mut a).await) {
        Some(Notice::ParticipantJoined(participant)) => {
            assert_eq!(participant.id, b.id)
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        f.join(Role::Specialist).await,
        Err(RoomError::Full(2))
    ));
}

/// Who `m` hears of as arriving until its queue has been quiet for a moment, message by message.
async fn arrivals_heard(m: &mut Member) -> Vec<Vec<ParticipantId>> {
    let mut heard = Vec::new();
    while let Ok(Some(out)) = tokio::time::timeout(Duration::from_millis(300), m.rx.recv()).await {
        match message(out) {
            Some(Notice::ParticipantJoined(participant)) => heard.push(vec![participant.id]),
            Some(Notice::ParticipantsJoined(participants)) => {
                heard.push(participants.into_iter().map(|p| p.id).collect())
            }
            _ => {}
        }
    }
    heard
}

#[tokio::test]
async fn arrivals_faster_than_the_room_are_announced_together_and_once() {
    let mut f = fixture(20, Duration::from_secs(30)).await;
    let mut first = f.join(Role::Doctor).await.unwrap();
    // Five joins queued before the room handles any of them (this runtime has one thread and
    // the test does not yield until they are all sent), as when a lecture starts.
    let room = f.rooms.open(&f.room).await.unwrap();
    let mut pending = Vec::new();
    for conn in 100..105 {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let (reply, done) = oneshot::channel();
        room.send(RoomCommand::Join {
            name: format!("viewer {conn}"),
            role: Role::Observer,
            role_given: false,
            publish: Publish::default(),
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
        pending.push((rx, done));
    }
    let mut arrivals = Vec::new();
    for (rx, done) in pending {
        let joined = done.await.unwrap().unwrap();
        arrivals.push(Member {
            id: joined.participant,
            conn: 0,
            rx,
            welcome: admitted(joined.entry),
        });
    }
    let order: Vec<ParticipantId> = arrivals.iter().map(|m| m.id.clone()).collect();

    // The one who was there hears of all five, in order, in fewer messages than five.
    let heard = arrivals_heard(&mut first).await;
    assert_eq!(heard.concat(), order);
    assert!(heard.len() < order.len(), "not batched: {heard:?}");
    // Each arrival saw those before it in its `joined` and hears of those after it, once.
    for (k, m) in arrivals.iter_mut().enumerate() {
        let mut seen: Vec<ParticipantId> = m
            .welcome
            .participants
            .iter()
            .map(|p| p.id.clone())
            .collect();
        assert_eq!(seen[0], first.id);
        seen.remove(0);
        assert_eq!(seen, order[..k]);
        assert_eq!(arrivals_heard(m).await.concat(), order[k + 1..]);
    }
}

#[tokio::test]
async fn only_a_doctor_ends_and_an_ended_room_stays_ended() {
    let mut f = fixture(4, Duration::from_secs(30)).await;
    let mut doctor = f.join(Role::Doctor).await.unwrap();
    let mut patient = f.join(Role::Patient).await.unwrap();

    let (reply, rx) = oneshot::channel();
    f.send(RoomCommand::End {
        by: Some((patient.id.clone(), patient.conn)),
        reason: EndReason::EndedByDoctor,
        reply,
    })
    .await;
    assert!(matches!(rx.await.unwrap(), Err(RoomError::Forbidden)));

    let (reply, rx) = oneshot::channel();
    f.send(RoomCommand::End {
        by: Some((doctor.id.clone(), doctor.conn)),
        reason: EndReason::EndedByDoctor,
        reply,
    })
    .await;
    rx.await.unwrap().unwrap();
    for m in [&mut doctor, &mut patient] {
        loop {
            let out = next(m).await;
            if let Outbound::Close(why) = out {
                assert_eq!(why, Farewell::RoomEnded);
                break;
            }
            if let Some(Notice::RoomEnded(reason)) = message(out) {
                assert_eq!(reason, EndReason::EndedByDoctor)
            }
        }
    }
    assert_eq!(
        f.db.room(&f.room).await.unwrap().unwrap().status,
        crate::storage::RoomStatus::Ended
    );
    // Give the task a moment to stop, then a new join is refused.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(matches!(f.join(Role::Patient).await, Err(RoomError::Ended)));
}

#[tokio::test]
async fn a_dropped_participant_is_reconnecting_then_removed() {
    let mut f = fixture(4, Duration::from_secs(30)).await;
    let mut doctor = f.join(Role::Doctor).await.unwrap();
    let patient = f.join(Role::Patient).await.unwrap();
    let _ = next(&mut doctor).await; // participant_joined

    // A stale connection id changes nothing.
    f.send(RoomCommand::Disconnected {
        participant: patient.id.clone(),
        conn: 999,
    })
    .await;
    f.send(RoomCommand::Disconnected {
        participant: patient.id.clone(),
        conn: patient.conn,
    })
    .await;
    match message(next(&mut doctor).await) {
        Some(Notice::ParticipantUpdated(participant)) => {
            assert_eq!(participant.id, patient.id);
            assert_eq!(participant.connection, Connection::Reconnecting);
        }
        other => panic!("{other:?}"),
    }
    // Within the resume window they stay, shown reconnecting.
    f.clock.advance(Duration::from_secs(29));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(doctor.rx.try_recv().is_err(), "still within the window");
    // Past it, they are gone.
    f.clock.advance(Duration::from_secs(2));
    match message(next(&mut doctor).await) {
        Some(Notice::ParticipantLeft {
            participant: participant_id,
            reason,
        }) => {
            assert_eq!(participant_id, patient.id);
            assert_eq!(reason, LeaveReason::Disconnected);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_empty_room_stops_after_its_idle_time_and_opens_again_on_a_join() {
    let mut f = fixture(4, Duration::from_secs(30)).await;
    let doctor = f.join(Role::Doctor).await.unwrap();
    f.send(RoomCommand::Leave {
        participant: doctor.id.clone(),
        conn: doctor.conn,
    })
    .await;
    // Once the room answers this, it has handled the leave (its queue is in order), so the
    // room has been empty since now on the manual clock.
    assert!(f.rooms.member(&f.room, &doctor.id).await.is_none());
    let live = |f: &Fixture| f.rooms.live_rooms();
    // Empty, but not for long enough: the task stays.
    f.clock.advance(Duration::from_secs(29));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(live(&f), 1);
    f.clock.advance(Duration::from_secs(2));
    let mut stopped = false;
    for _ in 0..200 {
        if live(&f) == 0 {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(stopped, "an idle room's task stops");
    // A join opens it again.
    f.join(Role::Patient).await.unwrap();
    assert_eq!(live(&f), 1);
}

/// A client too slow to take what the room tells it (its queue is full) loses its connection
/// like one that dropped: it is closed, may resume, and the others see it reconnecting, once.
#[tokio::test]
async fn a_client_too_slow_for_its_queue_is_shown_reconnecting() {
    let mut f = fixture(4, Duration::from_secs(30)).await;
    let doctor = f.join(Role::Doctor).await.unwrap();
    let mut slow = f.join_with_queue(Role::Observer, 1).await.unwrap();
    let mut watcher = f.join(Role::Observer).await.unwrap();
    // The slow client's one place holds the watcher's arrival; the doctor's update cannot be
    // queued behind it.
    let mute = |audio_muted| RoomCommand::MediaState {
        participant: doctor.id.clone(),
        conn: doctor.conn,
        state: MediaState {
            audio_muted,
            video_off: false,
        },
    };
    f.send(mute(true)).await;
    let (mut doctor_updates, mut slow_updates) = (0, 0);
    while doctor_updates < 1 || slow_updates < 1 {
        match message(next(&mut watcher).await) {
            Some(Notice::ParticipantUpdated(participant)) if participant.id == slow.id => {
                assert_eq!(participant.connection, Connection::Reconnecting);
                slow_updates += 1;
            }
            Some(Notice::ParticipantUpdated(participant)) => {
                assert_eq!(participant.id, doctor.id);
                doctor_updates += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    // The slow client gets what was queued, then its queue ends: its session closes.
    let mut queued = 0;
    while let Some(out) = tokio::time::timeout(Duration::from_secs(10), slow.rx.recv())
        .await
        .expect("the queue ends in time")
    {
        assert!(matches!(&out, Outbound::Message(_)), "{out:?}");
        queued += 1;
    }
    assert_eq!(queued, 1);
    assert_eq!(f.metrics.slow_clients.load(Ordering::Relaxed), 1);
    // Its session's own report of the drop, arriving after, tells nobody anything twice.
    f.send(RoomCommand::Disconnected {
        participant: slow.id.clone(),
        conn: slow.conn,
    })
    .await;
    f.send(mute(false)).await;
    match message(next(&mut watcher).await) {
        Some(Notice::ParticipantUpdated(participant)) => {
            assert_eq!(participant.id, doctor.id);
            assert!(!participant.audio_muted);
        }
        other => panic!("{other:?}"),
    }
    // And it can come back.
    let resume = ResumeRef {
        participant: slow.id.clone(),
        nonce: 1,
    };
    let (tx, _rx) = mpsc::channel(SESSION_QUEUE);
    let (reply, done) = oneshot::channel();
    f.send(RoomCommand::Resume {
        resume,
        link: SessionLink { conn: 77, tx },
        reply,
    })
    .await;
    done.await.unwrap().unwrap();
    match message(next(&mut watcher).await) {
        Some(Notice::ParticipantUpdated(participant)) => {
            assert_eq!(participant.id, slow.id);
            assert_eq!(participant.connection, Connection::Connected);
        }
        other => panic!("{other:?}"),
    }
}

/// A session that sends `leave` and closes at once: the room may find its queue gone (while
/// telling it of someone else's leave) before the `leave` arrives. It still leaves, at once,
/// and does not linger as reconnecting for the resume window.
#[tokio::test]
async fn a_leave_counts_even_when_its_connection_was_found_gone_first() {
    let mut f = fixture(4, Duration::from_secs(30)).await;
    let mut doctor = f.join(Role::Doctor).await.unwrap();
    let a = f.join(Role::Observer).await.unwrap();
    let b = f.join(Role::Observer).await.unwrap();
    let (b_id, b_conn) = (b.id.clone(), b.conn);
    drop(b); // b's session has closed: its queue is gone
    // a leaves: the room tells b, finds b's queue gone, marks b reconnecting.
    f.send(RoomCommand::Leave {
        participant: a.id.clone(),
        conn: a.conn,
    })
    .await;
    // b's own leave, sent before its session closed, arrives after.
    f.send(RoomCommand::Leave {
        participant: b_id.clone(),
        conn: b_conn,
    })
    .await;
    let mut left = Vec::new();
    while left.len() < 2 {
        match message(next(&mut doctor).await) {
            Some(Notice::ParticipantLeft {
                participant: participant_id,
                reason,
            }) => left.push((participant_id, reason)),
            Some(Notice::ParticipantJoined(_) | Notice::ParticipantsJoined(_)) => {}
            // The room may tell of b's lost connection before b's leave arrives.
            Some(Notice::ParticipantUpdated(participant)) if participant.id == b_id => {
                assert_eq!(participant.connection, Connection::Reconnecting)
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        left,
        vec![(a.id, LeaveReason::Left), (b_id, LeaveReason::Left)]
    );
    // A session that ended is not a client too slow for its queue.
    assert_eq!(f.metrics.slow_clients.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_resume_works_once() {
    let mut f = fixture(4, Duration::from_secs(30)).await;
    let patient = f.join(Role::Patient).await.unwrap();
    let resume = ResumeRef {
        participant: patient.id.clone(),
        nonce: 1,
    };
    for expect_ok in [true, false] {
        let (tx, _rx) = mpsc::channel(SESSION_QUEUE);
        let (reply, done) = oneshot::channel();
        f.send(RoomCommand::Resume {
            resume: resume.clone(),
            link: SessionLink { conn: 77, tx },
            reply,
        })
        .await;
        assert_eq!(done.await.unwrap().is_ok(), expect_ok);
    }
}

/// Holds SQLite's write lock from another connection, as a slow disk or a busy database would
/// hold up every write, until the transaction it returns is rolled back.
async fn hold_the_disk(db: &Db) -> sqlx::Transaction<'static, sqlx::Any> {
    let mut lock = db.pool().begin().await.unwrap();
    sqlx::query("UPDATE rooms SET title = title")
        .execute(&mut *lock)
        .await
        .unwrap();
    lock
}

/// Sends a join and returns what will answer it, without waiting for the answer.
async fn start_join(
    f: &Fixture,
    role: Role,
    conn: u64,
) -> (
    mpsc::Receiver<Outbound>,
    oneshot::Receiver<Result<Joined, RoomError>>,
) {
    let room = f.rooms.open(&f.room).await.unwrap();
    let (tx, rx) = mpsc::channel(SESSION_QUEUE);
    let (reply, done) = oneshot::channel();
    room.send(RoomCommand::Join {
        name: format!("{role:?}"),
        role,
        role_given: false,
        publish: Publish::default(),
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
    (rx, done)
}

#[tokio::test]
async fn a_join_waiting_on_the_disk_does_not_stall_the_room() {
    let mut f = fixture(4, Duration::from_secs(30)).await;
    let mut doctor = f.join(Role::Doctor).await.unwrap();
    let disk = hold_the_disk(&f.db).await;

    let (_patient_rx, mut joined) = start_join(&f, Role::Patient, 50).await;
    f.send(RoomCommand::Chat {
        participant: doctor.id.clone(),
        conn: doctor.conn,
        text: "hello".into(),
    })
    .await;
    // The room answers while both writes wait for the disk.
    let me = tokio::time::timeout(Duration::from_secs(2), f.rooms.member(&f.room, &doctor.id))
        .await
        .expect("the room answers while its writes wait");
    assert_eq!(me.map(|m| m.participant), Some(doctor.id.clone()));
    // Nobody is let in, and nothing said is shown, before it is on the record.
    assert!(joined.try_recv().is_err(), "admitted before recorded");
    assert!(doctor.rx.try_recv().is_err(), "shown before stored");

    disk.rollback().await.unwrap();
    let joined = tokio::time::timeout(Duration::from_secs(10), joined)
        .await
        .expect("admitted once recorded")
        .unwrap()
        .unwrap();
    match message(next(&mut doctor).await) {
        Some(Notice::ParticipantJoined(p)) => assert_eq!(p.id, joined.participant),
        other => panic!("{other:?}"),
    }
    match message(next(&mut doctor).await) {
        Some(Notice::Chat(m)) => assert_eq!(m.text, "hello"),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.db.recent_chat(&f.room, 10).await.unwrap().len(), 1);
    assert_eq!(f.db.participants_of(&f.room).await.unwrap().len(), 2);
}

#[tokio::test]
async fn ending_turns_away_a_join_on_its_way_in_and_records_it_gone() {
    let mut f = fixture(4, Duration::from_secs(30)).await;
    let _doctor = f.join(Role::Doctor).await.unwrap();
    let disk = hold_the_disk(&f.db).await;
    let (_rx, joined) = start_join(&f, Role::Patient, 60).await;
    let (reply, ended) = oneshot::channel();
    f.send(RoomCommand::End {
        by: None,
        reason: EndReason::EndedByDoctor,
        reply,
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    disk.rollback().await.unwrap();

    assert!(matches!(joined.await.unwrap(), Err(RoomError::Ended)));
    ended.await.unwrap().unwrap();
    let people = f.db.participants_of(&f.room).await.unwrap();
    assert_eq!(people.len(), 2);
    assert!(people.iter().all(|p| p.left_at.is_some()), "{people:?}");
    let trail = f
        .rooms
        .audit()
        .entries(0, 100, Some(f.room.as_str()))
        .await
        .unwrap();
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "participant.joined",
            "participant.joined",
            "participant.left"
        ]
    );
    assert_eq!(
        f.db.room(&f.room).await.unwrap().unwrap().status,
        crate::storage::RoomStatus::Ended
    );
}

/// The welcome of a join that went straight in (these rooms have no waiting room).
fn admitted(entry: super::Entry) -> Welcome {
    match entry {
        super::Entry::Admitted(w) => *w,
        super::Entry::Waiting(w) => panic!("waiting at position {}", w.position),
    }
}

/// Whether a participant's first offer asks for their camera in simulcast layers: in its SDP
/// and in `publish_mids`, which must agree.
async fn camera_offered_in_layers(f: &mut Fixture, client_asks: bool) -> bool {
    let publish = Publish {
        audio: true,
        video: true,
    };
    let mut m = f
        .join_publishing(Role::Doctor, SESSION_QUEUE, publish, client_asks)
        .await
        .unwrap();
    let Notice::Offer {
        sdp, publish_mids, ..
    } = next_offer(&mut m).await
    else {
        unreachable!()
    };
    assert!(publish_mids.video.is_some(), "the camera's m-line is named");
    let in_sdp = sdp.contains("a=simulcast:recv q;h;f");
    assert_eq!(in_sdp, publish_mids.simulcast, "{sdp}");
    // Only ever the camera: one m-line at most carries layers.
    assert!(sdp.matches("a=simulcast").count() <= 1);
    in_sdp
}

#[tokio::test]
async fn a_camera_is_received_in_layers_only_where_server_and_client_both_want_it() {
    let mut on = fixture_with(4, Duration::from_secs(30), true).await;
    assert!(camera_offered_in_layers(&mut on, true).await);
    assert!(!camera_offered_in_layers(&mut on, false).await);
    let mut off = fixture_with(4, Duration::from_secs(30), false).await;
    assert!(!camera_offered_in_layers(&mut off, true).await);
}

/// The next huddle notice `m` gets, skipping the rest: (active, by).
async fn next_huddle(m: &mut Member) -> (bool, Option<ParticipantId>) {
    loop {
        if let Some(Notice::Huddle { active, by }) = message(next(m).await) {
            return (active, by);
        }
    }
}

/// The next refusal `m` gets, skipping the rest.
async fn next_refusal(m: &mut Member) -> Problem {
    loop {
        if let Some(Notice::Refused { problem, .. }) = message(next(m).await) {
            return problem;
        }
    }
}

/// The huddle as the room applies the waiting room's state machine, on the virtual clock: a
/// patient may neither start nor end one; any clinician ends the one another started; it
/// outlasts a clinician whose connection dropped for as long as they may resume, and ends,
/// told to the patient by nobody, once no clinician is left.
#[tokio::test]
async fn a_huddle_by_whom_and_until_when() {
    let mut f = fixture(4, Duration::from_secs(30)).await;
    let doctor = f.join(Role::Doctor).await.unwrap();
    let specialist = f.join(Role::Specialist).await.unwrap();
    let mut patient = f.join(Role::Patient).await.unwrap();
    let huddle = |m: &Member, on: bool| RoomCommand::Moderate {
        participant: m.id.clone(),
        conn: m.conn,
        action: Moderation::Huddle(on),
    };

    f.send(huddle(&patient, true)).await;
    assert_eq!(next_refusal(&mut patient).await, Problem::Forbidden);
    f.send(huddle(&doctor, true)).await;
    assert_eq!(
        next_huddle(&mut patient).await,
        (true, Some(doctor.id.clone()))
    );
    f.send(huddle(&patient, false)).await;
    assert_eq!(next_refusal(&mut patient).await, Problem::Forbidden);
    f.send(huddle(&specialist, false)).await;
    assert_eq!(
        next_huddle(&mut patient).await,
        (false, Some(specialist.id.clone()))
    );

    // Again; the specialist leaves and the doctor's connection drops.
    f.send(huddle(&specialist, true)).await;
    assert_eq!(
        next_huddle(&mut patient).await,
        (true, Some(specialist.id.clone()))
    );
    f.send(RoomCommand::Leave {
        participant: specialist.id.clone(),
        conn: specialist.conn,
    })
    .await;
    f.send(RoomCommand::Disconnected {
        participant: doctor.id.clone(),
        conn: doctor.conn,
    })
    .await;
    // The window runs from when the room hears of the drop: wait until the patient is told.
    loop {
        match message(next(&mut patient).await) {
            Some(Notice::ParticipantUpdated(p)) if p.id == doctor.id => {
                assert_eq!(p.connection, Connection::Reconnecting);
                break;
            }
            Some(Notice::Huddle { .. }) => panic!("the huddle ended with a clinician left"),
            _ => {}
        }
    }
    f.clock.advance(Duration::from_secs(29));
    tokio::time::sleep(Duration::from_millis(50)).await;
    while let Ok(out) = patient.rx.try_recv() {
        let notice = message(out);
        assert!(
            !matches!(notice, Some(Notice::Huddle { .. })),
            "the huddle ended while the doctor could resume: {notice:?}"
        );
    }
    // Past the doctor's resume window: nobody of the care team is left.
    f.clock.advance(Duration::from_secs(2));
    assert_eq!(next_huddle(&mut patient).await, (false, None));
}

/// A seat ends with the sign-in it was taken under: told, closed, gone for the others; a seat
/// under another sign-in and a patient stay; telling the room again finds nobody.
#[tokio::test]
async fn a_seat_ends_with_its_sign_in() {
    let mut f = fixture(4, Duration::from_secs(30)).await;
    let ended = SessionId::generate();
    let other = SessionId::generate();
    let mut doctor = f.join_seat(Role::Doctor, &ended).await.unwrap();
    let mut specialist = f.join_seat(Role::Specialist, &other).await.unwrap();
    let mut patient = f.join(Role::Patient).await.unwrap();
    let sessions = std::sync::Arc::new(std::collections::HashSet::from([ended.clone()]));
    f.send(RoomCommand::SessionsEnded {
        sessions: sessions.clone(),
    })
    .await;
    assert_eq!(next_refusal(&mut doctor).await, Problem::SessionEnded);
    loop {
        if let Outbound::Close(farewell) = next(&mut doctor).await {
            assert_eq!(farewell, Farewell::SessionEnded);
            break;
        }
    }
    for m in [&mut specialist, &mut patient] {
        loop {
            if let Some(Notice::ParticipantLeft {
                participant,
                reason,
            }) = message(next(m).await)
            {
                assert_eq!(participant, doctor.id);
                assert_eq!(reason, LeaveReason::SessionEnded);
                break;
            }
        }
    }
    // Again: nobody left to remove, and the room answers as before.
    f.send(RoomCommand::SessionsEnded { sessions }).await;
    let (reply, member) = oneshot::channel();
    f.send(RoomCommand::Authorize {
        participant: specialist.id.clone(),
        reply,
    })
    .await;
    assert!(member.await.unwrap().is_some(), "the other seat stays");
    let (reply, member) = oneshot::channel();
    f.send(RoomCommand::Authorize {
        participant: doctor.id.clone(),
        reply,
    })
    .await;
    assert!(
        member.await.unwrap().is_none(),
        "the ended seat's tokens stop"
    );
}

/// Someone waiting whose session ended without the room hearing of it (its `Disconnected` met
/// a full queue): the room's next tick finds the ended session, and the line no longer holds a
/// ghost.
#[tokio::test]
async fn a_waiting_person_whose_session_ended_unheard_leaves_the_line() {
    let mut f = fixture(4, Duration::from_secs(30)).await;
    sqlx::query("UPDATE rooms SET waiting_room = 1")
        .execute(f.db.pool())
        .await
        .unwrap();
    let mut doctor = f
        .join_seat(Role::Doctor, &SessionId::generate())
        .await
        .unwrap();
    let conn = f.next_conn;
    f.next_conn += 1;
    let (rx, done) = start_join(&f, Role::Patient, conn).await;
    let joined = done.await.unwrap().unwrap();
    assert!(
        matches!(joined.entry, Entry::Waiting(_)),
        "the patient waits"
    );
    let queued = |n: usize| move |out: Outbound| matches!(message(out), Some(Notice::Queue(q)) if q.waiting.len() == n);
    while !queued(1)(next(&mut doctor).await) {}
    // The patient's session ends; nothing tells the room.
    drop(rx);
    f.clock.advance(Duration::from_secs(1));
    while !queued(0)(next(&mut doctor).await) {}
}

/// A patient's join on `invite`.
async fn join_on(f: &mut Fixture, invite: &InviteId) -> Result<Member, RoomError> {
    f.join_on(
        Role::Patient,
        SESSION_QUEUE,
        Publish::default(),
        false,
        None,
        invite,
    )
    .await
}

#[tokio::test]
async fn joins_are_capped_per_invitation_and_per_consultation() {
    let caps = JoinCaps {
        per_invite: 3,
        per_room: 9,
    };
    let mut f = fixture_capped(32, Duration::from_secs(30), false, caps).await;
    let (a, b, c) = (
        InviteId::generate(),
        InviteId::generate(),
        InviteId::generate(),
    );
    let mut kept = Vec::new();
    for _ in 0..3 {
        kept.push(join_on(&mut f, &a).await.unwrap());
    }
    // A reload loop on one link stops at its cap, with what to do.
    match join_on(&mut f, &a).await {
        Err(RoomError::InviteJoinsExhausted(3)) => {}
        other => panic!("{:?}", other.map(|m| m.id)),
    }
    // A clinician's seat (theirs alone: they cannot ask for another) counts only towards the
    // consultation's cap.
    let seat = InviteId::generate();
    let account = Some(UserId::generate());
    for _ in 0..4 {
        let session = SessionId::generate();
        let s = Some((account.clone(), session));
        kept.push(
            f.join_on(
                Role::Doctor,
                SESSION_QUEUE,
                Publish::default(),
                false,
                s,
                &seat,
            )
            .await
            .unwrap(),
        );
    }
    // The others have their places; the consultation as a whole stops at its own.
    for _ in 0..2 {
        kept.push(join_on(&mut f, &b).await.unwrap());
    }
    match join_on(&mut f, &c).await {
        Err(RoomError::RoomJoinsExhausted(9)) => {}
        other => panic!("{:?}", other.map(|m| m.id)),
    }
    // Every join admitted is on the record, and nothing refused is.
    let mut counts = f.db.joins_by_invite(&f.room).await.unwrap();
    counts.sort_by_key(|(_, n)| *n);
    assert_eq!(counts, [(b.clone(), 2), (a.clone(), 3), (seat.clone(), 4)]);
    assert_eq!(f.db.participants_of(&f.room).await.unwrap().len(), 9);
    // The refusals are on the trail.
    let audit = crate::audit::AuditLog::new(f.db.clone(), crate::audit::AuditKey::random());
    let mut refused = 0;
    for _ in 0..50 {
        refused = audit
            .entries(0, 1000, Some(f.room.as_str()))
            .await
            .unwrap()
            .iter()
            .filter(|e| e.action == "access.denied" && e.detail.contains("joins_per"))
            .count();
        if refused == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(refused, 2);
}
