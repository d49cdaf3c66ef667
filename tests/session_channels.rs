//! A signaling session driven over a pair of channels instead of a WebSocket: `run_session`
//! takes any stream and sink of messages, so the protocol can be tested without HTTP, TLS or a
//! socket. The server here only provides the rooms and the database the session talks to.
//! A client that stops reading is one whose socket takes no more writes: here a flag.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::common::TestServer;
use axum::extract::ws::Message;
use futures_util::{Sink, Stream};
use huizhen::auth::SigningKey;
use huizhen::metrics::Metrics;
use huizhen::signaling::{ErrorCounts, SessionSettings, SignalingContext, run_session};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The session's side of the pair: what the "client" sends arrives on `incoming`, what the
/// session sends goes out on `outgoing`.
struct ChannelSocket {
    incoming: mpsc::Receiver<Message>,
    outgoing: mpsc::UnboundedSender<Message>,
    /// Cleared: the client reads nothing more, and every write waits, as on a full socket.
    reading: Arc<AtomicBool>,
}

impl Stream for ChannelSocket {
    type Item = Result<Message, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.incoming.poll_recv(cx).map(|m| m.map(Ok))
    }
}

impl Sink<Message> for ChannelSocket {
    type Error = std::io::Error;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.reading.load(Ordering::Relaxed) {
            Poll::Ready(Ok(()))
        } else {
            // Never woken: nobody will read.
            Poll::Pending
        }
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        self.outgoing
            .send(item)
            .map_err(|_| std::io::Error::other("the test stopped listening"))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

/// The client's side: send JSON, read what comes back.
struct Client {
    to_session: mpsc::Sender<Message>,
    from_session: mpsc::UnboundedReceiver<Message>,
    reading: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    async fn send(&self, v: Value) {
        self.to_session
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    /// The next text message as JSON, or the close code.
    async fn next(&mut self) -> Result<Value, Option<u16>> {
        let msg = tokio::time::timeout(Duration::from_secs(10), self.from_session.recv())
            .await
            .expect("the session answers in time");
        match msg {
            Some(Message::Text(t)) => Ok(serde_json::from_str(&t).unwrap()),
            Some(Message::Close(frame)) => Err(frame.map(|f| f.code)),
            None => Err(None),
            Some(other) => panic!("unexpected {other:?}"),
        }
    }

    async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let m = self.next().await.unwrap_or_else(|c| panic!("closed {c:?}"));
            if m["type"] == kind {
                return m;
            }
        }
    }
}

fn session(s: &TestServer) -> Client {
    session_with(s, Duration::from_secs(20))
}

fn session_with(s: &TestServer, write_timeout: Duration) -> Client {
    let server = s.server();
    let ctx = SignalingContext {
        key: SigningKey::load_or_create(&s.dir.path().join("data/signing.key")).unwrap(),
        db: server.db.clone(),
        rooms: server.rooms.clone(),
        settings: Arc::new(SessionSettings {
            max_message_bytes: 64 * 1024,
            messages_per_second: 20,
            message_burst: 40,
            join_timeout: Duration::from_secs(10),
            write_timeout,
        }),
        metrics: Arc::new(Metrics::default()),
        errors: Arc::new(ErrorCounts::default()),
        net_checks: huizhen::netcheck::NetChecks::new(
            server.media.clone(),
            4,
            Duration::from_secs(15),
            None,
            SigningKey::load_or_create(&s.dir.path().join("data/signing.key")).unwrap(),
        ),
    };
    let (to_session, incoming) = mpsc::channel(16);
    let (outgoing, from_session) = mpsc::unbounded_channel();
    let reading = Arc::new(AtomicBool::new(true));
    let task = tokio::spawn(run_session(
        ChannelSocket {
            incoming,
            outgoing,
            reading: Arc::clone(&reading),
        },
        ctx,
        1_000_000,
        "test-client".into(),
    ));
    Client {
        to_session,
        from_session,
        reading,
        task,
    }
}

#[tokio::test]
async fn a_session_over_channels_joins_answers_and_closes() {
    let s = TestServer::start().await;
    let room = s.create_room("Channels").await;
    let token = s.invite(&room, "observer").await;
    let mut c = session(&s);

    // Before joining: ping is answered, anything else is refused.
    c.send(json!({"type": "ping", "id": 7})).await;
    assert_eq!(c.next_of("pong").await["id"], 7);
    // A join: the welcome arrives over the channel like over a WebSocket.
    c.send(
        json!({"type": "join", "v": 1, "token": token, "name": "Student Zhou",
        "publish": {"audio": false, "video": false}}),
    )
    .await;
    let joined = c.next_of("joined").await;
    assert_eq!(joined["you"]["role"], "observer");
    assert_eq!(joined["room"]["id"], room.as_str());
    // A bad message is answered and the session goes on.
    c.send(json!({"type": "answer", "offer_id": "x"})).await;
    let err = c.next_of("error").await;
    assert_eq!(err["code"], "bad_message");
    // Leaving closes the session with 1000.
    c.send(json!({"type": "leave"})).await;
    loop {
        match c.next().await {
            Ok(_) => continue,
            Err(code) => {
                assert_eq!(code, Some(1000));
                break;
            }
        }
    }
    s.stop().await;
}

/// A participant whose client stops reading (issue 16: a socket nobody reads holds its
/// connection forever): the next write to it waits at most `rooms.write_timeout_s`, then the
/// session ends as if the connection dropped, and the others see them reconnecting.
#[tokio::test]
async fn a_client_that_stops_reading_is_let_go_at_the_write_deadline() {
    let s = TestServer::start().await;
    let room = s.create_room("Stalled").await;
    let mut stuck = session_with(&s, Duration::from_secs(1));
    stuck
        .send(
            json!({"type": "join", "v": 1, "token": s.invite(&room, "observer").await,
            "name": "Student Zhou", "publish": {"audio": false, "video": false}}),
        )
        .await;
    let joined = stuck.next_of("joined").await;
    let stuck_id = joined["you"]["id"].as_str().unwrap().to_owned();
    // From now on it reads nothing; the room has something to tell it (someone arrives).
    stuck.reading.store(false, Ordering::Relaxed);
    let mut other = session(&s);
    other
        .send(
            json!({"type": "join", "v": 1, "token": s.invite(&room, "observer").await,
            "name": "Student Qian", "publish": {"audio": false, "video": false}}),
        )
        .await;
    other.next_of("joined").await;
    // Its session ends: it no longer waits on the write. (Generous: the deadline is 1 s.)
    tokio::time::timeout(Duration::from_secs(30), &mut stuck.task)
        .await
        .expect("the stalled session ended at its write deadline")
        .unwrap();
    // The room heard it go, as a dropped connection (resumable for its window).
    loop {
        let m = other.next_of("participant_updated").await;
        if m["participant"]["id"] == stuck_id.as_str()
            && m["participant"]["connection"] == "reconnecting"
        {
            break;
        }
    }
    s.stop().await;
}
