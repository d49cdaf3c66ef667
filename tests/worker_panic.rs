//! A panic in a media worker's core costs the room it was working for, not the worker: with
//! one worker, two consultations share its thread, its socket and its `Sfu`. A panic injected
//! into one participant's transport (`SfuCommand::InjectFault`, compiled only for tests) must
//! leave the other consultation's media flowing, tell the first one's participants their media
//! was lost (so they join again, as the web client does), and leave the worker taking new
//! peer connections. A panic in the worker's own loop, outside the core, costs every peer
//! connection on that worker but not the worker.

use crate::common;

use std::time::Duration;

use crate::common::TestServer;
use crate::common::peer::{JoinOptions, TestPeer};
use huizhen::domain::ids::ParticipantId;
use huizhen::sfu::{Fault, SfuCommand};

const CONNECT: Duration = Duration::from_secs(20);
const MEDIA: Duration = Duration::from_secs(30);
/// ~1 s of audio (50 packets/s) and of video (15 fps x 2 packets).
const ENOUGH: u64 = 25;

fn options(s: &TestServer, token: String, name: &str, marker: u8) -> JoinOptions {
    JoinOptions {
        ws_url: s.ws_url.clone(),
        token,
        name: name.into(),
        publish_audio: true,
        publish_video: true,
        marker,
        h264: false,
    }
}

async fn connected(p: TestPeer) -> TestPeer {
    p.wait_connected(CONNECT)
        .await
        .unwrap_or_else(|e| panic!("{} connects: {e:#}", p.options().name));
    p.start_media();
    p
}

async fn peer(s: &TestServer, room: &str, role: &str, name: &str, marker: u8) -> TestPeer {
    let token = s.invite(room, role).await;
    let p = TestPeer::join(options(s, token, name, marker))
        .await
        .unwrap_or_else(|e| panic!("{name} joins: {e:#}"));
    connected(p).await
}

/// `rx` gets `ENOUGH` more packets of each of `from`'s kinds than it had.
async fn keeps_receiving(rx: &TestPeer, from: &TestPeer) {
    for kind in ["audio", "video"] {
        let before = rx.received(&from.id(), kind).packets;
        rx.wait_received(&from.id(), kind, before + ENOUGH, MEDIA)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{} stopped receiving {kind} from {}: {e:#}",
                    rx.options().name,
                    from.options().name
                )
            });
    }
}

/// Two consultations of a doctor and a patient each, connected with media flowing: A's doctor
/// and patient, then B's.
async fn two_consultations(s: &TestServer) -> [TestPeer; 4] {
    let room_a = s.create_room("Consultation A").await;
    let room_b = s.create_room("Consultation B").await;
    [
        peer(s, &room_a, "doctor", "Dr. Wang", 0xA1).await,
        peer(s, &room_a, "patient", "Li Hua", 0xA2).await,
        peer(s, &room_b, "doctor", "Dr. Zhao", 0xB1).await,
        peer(s, &room_b, "patient", "Chen Jing", 0xB2).await,
    ]
}

/// The server's metrics exposition, as scraped.
async fn metrics_text(s: &TestServer) -> String {
    reqwest::get(format!(
        "http://{}/metrics",
        s.server().metrics_addr.expect("metrics listener")
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap()
}

/// `p` is told its media was lost, as a fatal error (the room sends it to join again).
async fn told_media_lost(p: &TestPeer) {
    let err = p
        .next_event_where("error", MEDIA, |m| m["code"] == "media_lost")
        .await
        .unwrap_or_else(|e| panic!("{} is told: {e:#}", p.options().name));
    assert_eq!(err["fatal"], true, "{err}");
    assert_eq!(p.wait_closed(MEDIA).await.unwrap(), Some(4005));
}

/// As the web client does on `media_lost`: joins again in its own place, with a fresh peer
/// connection.
async fn rejoin(p: &TestPeer) -> TestPeer {
    let resume = p.resume_token().expect("a resume token");
    let again = TestPeer::join_replacing(p.options().clone(), &resume)
        .await
        .unwrap_or_else(|e| panic!("{} joins again: {e:#}", p.options().name));
    connected(again).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panic_for_one_consultation_leaves_the_other_on_its_worker_flowing() {
    let s = TestServer::start_with(|c| c.media.workers = 1).await;
    panic_contained(&s).await;
    s.stop().await;
}

/// The same on PostgreSQL (the rooms' leaves and joins go through the audit writer).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panic_for_one_consultation_leaves_the_other_on_its_worker_flowing_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| {
        c.media.workers = 1;
        c.storage.database_url = url;
    })
    .await;
    panic_contained(&s).await;
    s.stop().await;
    pg.drop_db().await;
}

async fn panic_contained(s: &TestServer) {
    let [doctor_a, patient_a, doctor_b, patient_b] = two_consultations(s).await;
    for (rx, from) in [
        (&doctor_a, &patient_a),
        (&patient_a, &doctor_a),
        (&doctor_b, &patient_b),
        (&patient_b, &doctor_b),
    ] {
        rx.assert_receives_from(from, ENOUGH, MEDIA).await;
    }
    let worker = &s.server().media.workers()[0];
    let stats = worker.stats().await.unwrap();
    assert_eq!(stats.sfu.transports, 4, "both rooms on the one worker");
    assert_eq!(stats.panics.total(), 0);

    // Patient A's transport panics at its next datagram or timer.
    let participant = ParticipantId::parse(&patient_a.id()).unwrap();
    worker
        .command(SfuCommand::InjectFault(Fault::PanicOnPoll { participant }))
        .await
        .unwrap();

    // Consultation A's participants are told, and their connections end as after a lost path.
    told_media_lost(&patient_a).await;
    told_media_lost(&doctor_a).await;

    // Consultation B never notices: its media flows on, both ways.
    keeps_receiving(&doctor_b, &patient_b).await;
    keeps_receiving(&patient_b, &doctor_b).await;
    assert_eq!(doctor_b.close_code(), None);
    assert_eq!(patient_b.close_code(), None);

    // The worker counted it: one panic, contained to one room, two participants told.
    let stats = worker.stats().await.expect("the worker is alive");
    assert_eq!(stats.panics.room, 1, "{:?}", stats.panics);
    assert_eq!(stats.panics.worker, 0, "{:?}", stats.panics);
    assert_eq!(stats.panics.participants_failed, 2, "{:?}", stats.panics);
    assert_eq!(stats.sfu.transports, 2, "room B's transports are kept");
    let metrics = metrics_text(s).await;
    assert!(
        metrics.contains("huizhen_media_worker_panics_total{worker=\"0\",recovery=\"room\"} 1"),
        "{metrics}"
    );

    // Consultation A joins again on the same worker, and its media flows again.
    let doctor_a = rejoin(&doctor_a).await;
    let patient_a = rejoin(&patient_a).await;
    doctor_a
        .assert_receives_from(&patient_a, ENOUGH, MEDIA)
        .await;
    patient_a
        .assert_receives_from(&doctor_a, ENOUGH, MEDIA)
        .await;
    keeps_receiving(&doctor_b, &patient_b).await;
    let stats = worker.stats().await.unwrap();
    assert_eq!(stats.sfu.transports, 4);
    assert_eq!(stats.panics.total(), 1);
}

/// A panic in the worker's own loop (outside the core: its outbox, sockets, ICE-TCP table) is
/// fenced too: the core is replaced, every participant on the worker is told their media was
/// lost and joins again, and the same worker (same socket, same command queue) carries their
/// media afterwards. Before the fence the thread ended and every room on it lost media for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panic_in_the_workers_own_loop_costs_its_peer_connections_not_the_worker() {
    let s = TestServer::start_with(|c| c.media.workers = 1).await;
    let [doctor_a, patient_a, doctor_b, patient_b] = two_consultations(&s).await;
    for (rx, from) in [(&doctor_a, &patient_a), (&doctor_b, &patient_b)] {
        rx.assert_receives_from(from, ENOUGH, MEDIA).await;
    }
    let worker = &s.server().media.workers()[0];

    worker.inject_loop_panic().await.unwrap();

    // Nothing on the worker is trusted: all four are told, in both consultations.
    for p in [&doctor_a, &patient_a, &doctor_b, &patient_b] {
        told_media_lost(p).await;
    }
    let stats = worker.stats().await.expect("the worker's thread is alive");
    assert_eq!(stats.panics.worker, 1, "{:?}", stats.panics);
    assert_eq!(stats.panics.participants_failed, 4, "{:?}", stats.panics);
    assert_eq!(stats.sfu.transports, 0);
    let metrics = metrics_text(&s).await;
    assert!(
        metrics.contains("huizhen_media_worker_panics_total{worker=\"0\",recovery=\"worker\"} 1"),
        "{metrics}"
    );

    // They join again, on the same worker, and media flows both ways in both consultations.
    let doctor_a = rejoin(&doctor_a).await;
    let patient_a = rejoin(&patient_a).await;
    let doctor_b = rejoin(&doctor_b).await;
    let patient_b = rejoin(&patient_b).await;
    for (rx, from) in [
        (&doctor_a, &patient_a),
        (&patient_a, &doctor_a),
        (&doctor_b, &patient_b),
        (&patient_b, &doctor_b),
    ] {
        rx.assert_receives_from(from, ENOUGH, MEDIA).await;
    }
    let stats = worker.stats().await.unwrap();
    assert_eq!(stats.sfu.transports, 4);
    assert_eq!(stats.panics.total(), 1);
    s.stop().await;
}
