//! A signaling session driven over a pair of channels instead of a WebSocket: `run_session`
//! takes any stream and sink of messages, so the protocol can be tested without HTTP, TLS or a
//! socket. The server here only provides the rooms and the database the session talks to.

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::Message;
use common::TestServer;
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
        Poll::Ready(Ok(()))
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
    tokio::spawn(run_session(
        ChannelSocket { incoming, outgoing },
        ctx,
        1_000_000,
        "test-client".into(),
    ));
    Client {
        to_session,
        from_session,
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
