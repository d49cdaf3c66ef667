//! The Janus target: the same synthetic participants, driven against a Janus VideoRoom over
//! its WebSocket API, for the side-by-side benchmark.
//!
//! Owns the Janus API messages (encoding requests, decoding replies and events), room setup and
//! teardown, and one participant's life in a VideoRoom. The media itself (what is published,
//! how received packets are counted and timed) is [`crate::peer`]'s, so figures for Janus and
//! for huizhen are computed by the same code.
//!
//! A participant here is one WebSocket and one Janus session with two handles: a publisher
//! (`join` as publisher, then `publish` with the str0m peer's offer, sendonly) and, once every
//! publisher it expects in its room has appeared, one multistream subscriber (`join` as
//! subscriber with a `streams` list naming every feed; Janus offers, the str0m peer answers
//! with `start`). So Janus runs two peer connections per publishing participant where huizhen
//! runs one; that is how its VideoRoom is meant to be used. Every participant joins as a
//! publisher, even one that never publishes, because that is how it hears about publishers.
//!
//! Candidates travel in the SDP both ways (`"trickle": false`; Janus half-trickles by default)
//! and both sides are full ICE agents; str0m takes the controlling role on the connection it
//! offers (the publisher's) and the controlled one on Janus's offer.

use std::collections::{BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind};
use str0m::net::Transmit;
use str0m::{Candidate, Event, Input, Rtc};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::peer::{Live, MediaParams, Outgoing, drain, lock, new_rtc, receive_batch, record_rtp};
use crate::stats::PeerStats;

/// The plugin every handle attaches to.
pub const VIDEOROOM: &str = "janus.plugin.videoroom";
/// The WebSocket subprotocol Janus's API answers on.
pub const SUBPROTOCOL: &str = "janus-protocol";
/// Janus ends a session after 60 s without a request; a keep-alive well within that.
const KEEPALIVE: Duration = Duration::from_secs(25);
/// How long a synchronous request may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JanusError {
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("message without a \"janus\" field: {0}")]
    Untyped(String),
    #[error("{kind} without {field}")]
    Missing {
        kind: &'static str,
        field: &'static str,
    },
    #[error("Janus error {code}: {reason}")]
    Janus { code: i64, reason: String },
    #[error("VideoRoom error {code}: {reason}")]
    VideoRoom { code: i64, reason: String },
    #[error("Janus hung up a peer connection: {0}")]
    Hangup(String),
    #[error("WebSocket: {0}")]
    Socket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("the WebSocket closed")]
    Closed,
    #[error("no reply to {0} in time")]
    Timeout(String),
    #[error("WebRTC: {0}")]
    Rtc(#[from] str0m::RtcError),
    #[error("SDP: {0}")]
    Sdp(#[from] str0m::error::SdpError),
    #[error("ICE: {0}")]
    Ice(#[from] str0m::error::IceError),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(String),
}

/// A session description as the Janus API carries it (`jsep`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jsep {
    Offer(String),
    Answer(String),
}

impl Jsep {
    /// Candidates are in the SDP: Janus is told not to wait for trickled ones.
    pub fn to_json(&self) -> Value {
        let (kind, sdp) = match self {
            Jsep::Offer(s) => ("offer", s),
            Jsep::Answer(s) => ("answer", s),
        };
        json!({"type": kind, "sdp": sdp, "trickle": false})
    }

    fn from_json(v: &Value) -> Option<Self> {
        let sdp = v.get("sdp")?.as_str()?.to_owned();
        match v.get("type")?.as_str()? {
            "offer" => Some(Jsep::Offer(sdp)),
            "answer" => Some(Jsep::Answer(sdp)),
            _ => None,
        }
    }
}

/// The requests the generator sends, as Janus API JSON.
pub mod request {
    use serde_json::{Value, json};

    use super::{Jsep, VIDEOROOM};

    pub fn create_session(transaction: &str) -> Value {
        json!({"janus": "create", "transaction": transaction})
    }

    pub fn attach(session: u64, transaction: &str) -> Value {
        json!({"janus": "attach", "session_id": session, "plugin": VIDEOROOM, "transaction": transaction})
    }

    /// A message to the plugin on `handle`, with a session description when there is one.
    pub fn message(
        session: u64,
        handle: u64,
        transaction: &str,
        body: Value,
        jsep: Option<&Jsep>,
    ) -> Value {
        let mut m = json!({
            "janus": "message", "session_id": session, "handle_id": handle,
            "transaction": transaction, "body": body,
        });
        if let Some(j) = jsep {
            m["jsep"] = j.to_json();
        }
        m
    }

    pub fn keepalive(session: u64, transaction: &str) -> Value {
        json!({"janus": "keepalive", "session_id": session, "transaction": transaction})
    }

    pub fn destroy_session(session: u64, transaction: &str) -> Value {
        json!({"janus": "destroy", "session_id": session, "transaction": transaction})
    }

    /// VideoRoom bodies.
    pub fn create_room(room: u64, publishers: usize) -> Value {
        json!({
            "request": "create", "room": room, "permanent": false, "is_private": true,
            "publishers": publishers, "audiocodec": "opus", "videocodec": "vp8",
            // No periodic keyframe requests: keyframes come every 3 s and on PLI, as with
            // huizhen.
            "fir_freq": 0,
        })
    }

    pub fn destroy_room(room: u64) -> Value {
        json!({"request": "destroy", "room": room, "permanent": false})
    }

    pub fn join_publisher(room: u64, display: &str) -> Value {
        json!({"request": "join", "ptype": "publisher", "room": room, "display": display})
    }

    pub fn publish(audio: bool, video: bool) -> Value {
        json!({"request": "publish", "audio": audio, "video": video})
    }

    /// One multistream subscription to every stream of every feed in `feeds`.
    pub fn join_subscriber(room: u64, feeds: impl IntoIterator<Item = u64>) -> Value {
        let streams: Vec<Value> = feeds.into_iter().map(|f| json!({"feed": f})).collect();
        json!({"request": "join", "ptype": "subscriber", "room": room, "streams": streams})
    }

    pub fn start() -> Value {
        json!({"request": "start"})
    }
}

/// A message from Janus, as far as the generator cares.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A synchronous request done: `data.id` for `create` and `attach`, the plugin's answer for
    /// plugin requests such as `create` room.
    Success {
        transaction: String,
        id: Option<u64>,
        plugin: Option<Value>,
    },
    /// An asynchronous request accepted; its outcome comes as an event.
    Ack {
        transaction: String,
    },
    /// A plugin event on handle `sender`; `transaction` when it answers a request.
    Event {
        transaction: Option<String>,
        sender: u64,
        plugin: Value,
        jsep: Option<Jsep>,
    },
    Error {
        transaction: Option<String>,
        code: i64,
        reason: String,
    },
    Hangup {
        sender: u64,
        reason: String,
    },
    /// Anything else (`webrtcup`, `media`, `slowlink`, keep-alive acks, ...).
    Other(String),
}

impl Incoming {
    pub fn decode(text: &str) -> Result<Self, JanusError> {
        let v: Value = serde_json::from_str(text)?;
        let kind = v["janus"]
            .as_str()
            .ok_or_else(|| JanusError::Untyped(text.chars().take(200).collect()))?;
        let transaction = v["transaction"].as_str().map(str::to_owned);
        let need_tx = |kind: &'static str| {
            transaction.clone().ok_or(JanusError::Missing {
                kind,
                field: "transaction",
            })
        };
        Ok(match kind {
            "success" => Incoming::Success {
                transaction: need_tx("success")?,
                id: v["data"]["id"].as_u64(),
                plugin: v.get("plugindata").map(|p| p["data"].clone()),
            },
            "ack" => Incoming::Ack {
                transaction: need_tx("ack")?,
            },
            "event" => Incoming::Event {
                transaction,
                sender: v["sender"].as_u64().ok_or(JanusError::Missing {
                    kind: "event",
                    field: "sender",
                })?,
                plugin: v["plugindata"]["data"].clone(),
                jsep: v.get("jsep").and_then(Jsep::from_json),
            },
            "error" => Incoming::Error {
                transaction,
                code: v["error"]["code"].as_i64().unwrap_or(0),
                reason: v["error"]["reason"].as_str().unwrap_or("").to_owned(),
            },
            "hangup" => Incoming::Hangup {
                sender: v["sender"].as_u64().unwrap_or(0),
                reason: v["reason"].as_str().unwrap_or("").to_owned(),
            },
            other => Incoming::Other(other.to_owned()),
        })
    }
}

/// The VideoRoom's own error inside plugin data (`error_code`, `error`), if any.
pub fn videoroom_error(plugin: &Value) -> Option<JanusError> {
    let code = plugin.get("error_code")?.as_i64()?;
    Some(JanusError::VideoRoom {
        code,
        reason: plugin["error"].as_str().unwrap_or("").to_owned(),
    })
}

/// Feeds (publisher ids) a VideoRoom `joined` or `event` announces.
pub fn announced_feeds(plugin: &Value) -> Vec<u64> {
    plugin["publishers"]
        .as_array()
        .map(|ps| ps.iter().filter_map(|p| p["id"].as_u64()).collect())
        .unwrap_or_default()
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One WebSocket to Janus: requests out, decoded messages in, with transactions numbered per
/// connection.
struct Conn {
    sink: SplitSink<Ws, Message>,
    stream: SplitStream<Ws>,
    next_tx: u64,
    /// Messages read while waiting for a particular reply, handed out by `next` first.
    held: VecDeque<Incoming>,
}

impl Conn {
    async fn connect(url: &str) -> Result<Self, JanusError> {
        let mut req = url.into_client_request()?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(SUBPROTOCOL),
        );
        let connect = tokio_tungstenite::connect_async_with_config(
            req,
            Some(crate::peer::ws_config()),
            false,
        );
        let (ws, _) = tokio::time::timeout(REPLY_TIMEOUT, connect)
            .await
            .map_err(|_| JanusError::Timeout("the WebSocket connect".into()))??;
        let (sink, stream) = ws.split();
        Ok(Self {
            sink,
            stream,
            next_tx: 0,
            held: VecDeque::new(),
        })
    }

    fn transaction(&mut self, what: &str) -> String {
        self.next_tx += 1;
        format!("{what}-{}", self.next_tx)
    }

    async fn send(&mut self, msg: Value) -> Result<(), JanusError> {
        self.sink.send(Message::text(msg.to_string())).await?;
        Ok(())
    }

    async fn read(&mut self) -> Result<Incoming, JanusError> {
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Text(t))) => return Incoming::decode(t.as_str()),
                Some(Ok(Message::Close(_))) | None => return Err(JanusError::Closed),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// The next message: those held back first.
    async fn next(&mut self) -> Result<Incoming, JanusError> {
        match self.held.pop_front() {
            Some(m) => Ok(m),
            None => self.read().await,
        }
    }

    /// Sends `msg` and waits for what ends its transaction: `success`, or the plugin event
    /// after an `ack`. Other messages are held for `next`.
    async fn call(&mut self, msg: Value) -> Result<Incoming, JanusError> {
        let tx = msg["transaction"].as_str().unwrap_or_default().to_owned();
        self.send(msg).await?;
        let wait = async {
            loop {
                let m = self.read().await?;
                match &m {
                    Incoming::Ack { transaction } if *transaction == tx => {}
                    Incoming::Success { transaction, .. } if *transaction == tx => return Ok(m),
                    Incoming::Event {
                        transaction: Some(t),
                        ..
                    } if *t == tx => return Ok(m),
                    Incoming::Error {
                        transaction: Some(t),
                        code,
                        reason,
                    } if *t == tx => {
                        return Err(JanusError::Janus {
                            code: *code,
                            reason: reason.clone(),
                        });
                    }
                    _ => self.held.push_back(m),
                }
            }
        };
        tokio::time::timeout(REPLY_TIMEOUT, wait)
            .await
            .map_err(|_| JanusError::Timeout(tx.clone()))?
    }

    /// `call` for a request whose answer carries an id (`create`, `attach`).
    async fn call_for_id(&mut self, msg: Value) -> Result<u64, JanusError> {
        match self.call(msg).await? {
            Incoming::Success { id: Some(id), .. } => Ok(id),
            other => Err(JanusError::Protocol(format!(
                "expected an id, got {other:?}"
            ))),
        }
    }

    /// `call` for a VideoRoom request; its plugin data.
    async fn call_plugin(&mut self, msg: Value) -> Result<Value, JanusError> {
        let plugin = match self.call(msg).await? {
            Incoming::Success {
                plugin: Some(p), ..
            }
            | Incoming::Event { plugin: p, .. } => p,
            other => {
                return Err(JanusError::Protocol(format!(
                    "expected plugin data, got {other:?}"
                )));
            }
        };
        match videoroom_error(&plugin) {
            Some(e) => Err(e),
            None => Ok(plugin),
        }
    }

    /// A session with one VideoRoom handle.
    async fn session_with_handle(&mut self) -> Result<(u64, u64), JanusError> {
        let tx = self.transaction("create");
        let session = self.call_for_id(request::create_session(&tx)).await?;
        let tx = self.transaction("attach");
        let handle = self.call_for_id(request::attach(session, &tx)).await?;
        Ok((session, handle))
    }
}

/// Creates VideoRoom rooms `(id, publishers)`, from a session of its own.
pub async fn create_rooms(url: &str, rooms: &[(u64, usize)]) -> Result<(), JanusError> {
    let mut conn = Conn::connect(url).await?;
    let (session, handle) = conn.session_with_handle().await?;
    for &(room, publishers) in rooms {
        let tx = conn.transaction("room");
        let body = request::create_room(room, publishers);
        conn.call_plugin(request::message(session, handle, &tx, body, None))
            .await?;
    }
    let tx = conn.transaction("destroy");
    let _ = conn.send(request::destroy_session(session, &tx)).await;
    Ok(())
}

/// Destroys rooms (which hangs up whoever is still in them).
pub async fn destroy_rooms(url: &str, rooms: &[u64]) -> Result<(), JanusError> {
    let mut conn = Conn::connect(url).await?;
    let (session, handle) = conn.session_with_handle().await?;
    for &room in rooms {
        let tx = conn.transaction("room");
        let body = request::destroy_room(room);
        conn.call_plugin(request::message(session, handle, &tx, body, None))
            .await?;
    }
    let tx = conn.transaction("destroy");
    let _ = conn.send(request::destroy_session(session, &tx)).await;
    Ok(())
}

/// One participant in a VideoRoom.
#[derive(Debug, Clone)]
pub struct JanusPeerSpec {
    pub index: u32,
    pub ws_url: String,
    pub room: u64,
    /// The address the peer connections' sockets bind to: one Janus gathers candidates on.
    pub bind: IpAddr,
    pub audio: bool,
    pub video: bool,
    /// Publishers in the room other than this participant: it subscribes once all have
    /// appeared (none: it never subscribes).
    pub expect_feeds: usize,
}

/// One str0m peer connection on its own UDP socket.
struct Pc {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    timeout: Instant,
    connected: bool,
    /// What str0m gave out while datagrams were read, for the next `drive`.
    transmits: Vec<Transmit>,
    events: Vec<Event>,
}

impl Pc {
    async fn new(bind: IpAddr) -> Result<Self, JanusError> {
        let socket = UdpSocket::bind(SocketAddr::new(bind, 0)).await?;
        let local = socket.local_addr()?;
        let mut rtc = new_rtc();
        rtc.add_local_candidate(Candidate::host(local, "udp")?);
        Ok(Self {
            rtc,
            socket,
            local,
            timeout: Instant::now(),
            connected: false,
            transmits: Vec::new(),
            events: Vec::new(),
        })
    }

    /// The datagram that woke this peer connection and whatever else is queued on its socket
    /// (as huizhen's peers read theirs); events wait in `events` for the next `drive`.
    fn receive(&mut self, buf: &mut [u8], len: usize, from: SocketAddr) -> Result<(), JanusError> {
        let events = &mut self.events;
        self.timeout = receive_batch(
            &mut self.rtc,
            &self.socket,
            self.local,
            buf,
            (len, from),
            &mut self.transmits,
            &mut |e| events.push(e),
        )?;
        Ok(())
    }

    /// Sends what str0m has to send, advancing its time first only when its timer is due (or
    /// `force`: media was just written, which leaves after the next timeout); events go to
    /// `on_event`.
    async fn drive(
        &mut self,
        now: Instant,
        force: bool,
        mut on_event: impl FnMut(Event),
    ) -> Result<(), JanusError> {
        let connected = &mut self.connected;
        let mut on_event = |e| match e {
            Event::Connected => *connected = true,
            e => on_event(e),
        };
        for e in self.events.drain(..) {
            on_event(e);
        }
        if force || self.timeout <= now {
            self.rtc.handle_input(Input::Timeout(now))?;
        }
        self.timeout = drain(
            &mut self.rtc,
            now,
            false,
            &mut self.transmits,
            &mut on_event,
        )?;
        for t in self.transmits.drain(..) {
            let _ = self.socket.send_to(&t.contents, t.destination).await;
        }
        Ok(())
    }

    /// `drive` for the publishing connection; true if Janus asked it for a keyframe.
    async fn drive_publisher(&mut self, now: Instant, force: bool) -> Result<bool, JanusError> {
        let mut keyframe = false;
        self.drive(now, force, |e| {
            if let Event::KeyframeRequest(_) = e {
                keyframe = true;
            }
        })
        .await?;
        Ok(keyframe)
    }
}

/// Receives on `pc`'s socket, or never when there is none yet.
async fn recv_on(pc: Option<&Pc>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match pc {
        Some(pc) => pc.socket.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

pub async fn run_peer(
    spec: JanusPeerSpec,
    media: MediaParams,
    epoch: Instant,
    stats: Arc<Mutex<PeerStats>>,
    live: Arc<Live>,
    mut stop: watch::Receiver<bool>,
) {
    if let Err(e) = run(&spec, media, epoch, &stats, &live, &mut stop).await {
        lock(&stats).error = Some(format!("janus peer {}: {e}", spec.index));
    }
}

/// Where the subscriber handle is.
enum Subscription {
    /// Not every expected publisher has appeared yet.
    Waiting,
    /// `attach` sent.
    Attaching,
    /// `join` as subscriber sent, on this handle; Janus's offer comes next.
    Joining(u64),
    /// Answered (`start` sent).
    Started,
}

async fn run(
    spec: &JanusPeerSpec,
    media: MediaParams,
    epoch: Instant,
    stats: &Mutex<PeerStats>,
    live: &Live,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), JanusError> {
    let started = Instant::now();
    let mut conn = Conn::connect(&spec.ws_url).await?;
    let (session, pub_handle) = conn.session_with_handle().await?;
    let tx = conn.transaction("join");
    let body = request::join_publisher(spec.room, &format!("load {}", spec.index));
    let joined = conn
        .call_plugin(request::message(session, pub_handle, &tx, body, None))
        .await?;
    let own_id = joined["id"].as_u64().ok_or(JanusError::Missing {
        kind: "joined",
        field: "id",
    })?;
    let mut feeds: BTreeSet<u64> = announced_feeds(&joined).into_iter().collect();

    // The publishing connection: str0m offers sendonly audio and/or video.
    let publishing = spec.audio || spec.video;
    let mut out = Outgoing::new(spec.index, media, epoch);
    let mut publisher: Option<(Pc, Option<SdpPendingOffer>)> = None;
    if publishing {
        let mut pc = Pc::new(spec.bind).await?;
        let mut change = pc.rtc.sdp_api();
        if spec.audio {
            change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        }
        if spec.video {
            change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        }
        let (offer, pending) = change
            .apply()
            .ok_or_else(|| JanusError::Protocol("nothing to offer".into()))?;
        let tx = conn.transaction("publish");
        let body = request::publish(spec.audio, spec.video);
        let jsep = Jsep::Offer(offer.to_sdp_string());
        conn.send(request::message(
            session,
            pub_handle,
            &tx,
            body,
            Some(&jsep),
        ))
        .await?;
        publisher = Some((pc, Some(pending)));
    }
    let mut subscriber: Option<Pc> = None;
    let mut subscription = Subscription::Waiting;
    let mut counted = false;
    let mut keepalive = tokio::time::interval_at((Instant::now() + KEEPALIVE).into(), KEEPALIVE);
    let mut pub_buf = vec![0u8; 2048];
    let mut sub_buf = vec![0u8; 2048];

    loop {
        // Subscribe once every publisher this participant expects has appeared.
        feeds.remove(&own_id);
        if matches!(subscription, Subscription::Waiting)
            && spec.expect_feeds > 0
            && feeds.len() >= spec.expect_feeds
        {
            let tx = conn.transaction("attach-sub");
            conn.send(request::attach(session, &tx)).await?;
            subscription = Subscription::Attaching;
        }
        let ready = publisher.as_ref().is_none_or(|(pc, _)| pc.connected)
            && (spec.expect_feeds == 0 || subscriber.as_ref().is_some_and(|pc| pc.connected));
        if ready && !counted {
            counted = true;
            lock(stats).connected = true;
            live.connected.fetch_add(1, Ordering::Relaxed);
        }

        let mut wake = Instant::now() + KEEPALIVE;
        if let Some((pc, _)) = &publisher {
            wake = wake.min(pc.timeout);
            if let Some(t) = out.next_due() {
                wake = wake.min(t);
            }
        }
        if let Some(pc) = &subscriber {
            wake = wake.min(pc.timeout);
        }
        tokio::select! {
            _ = stop.changed() => break,
            _ = keepalive.tick() => {
                let tx = conn.transaction("keepalive");
                conn.send(request::keepalive(session, &tx)).await?;
            }
            msg = conn.next() => {
                match msg? {
                    Incoming::Event { sender, plugin, jsep, .. } => {
                        if let Some(e) = videoroom_error(&plugin) {
                            return Err(e);
                        }
                        feeds.extend(announced_feeds(&plugin));
                        if sender == pub_handle
                            && let (Some(Jsep::Answer(sdp)), Some((pc, pending))) = (jsep.as_ref(), publisher.as_mut())
                            && let Some(pending) = pending.take()
                        {
                            let answer = SdpAnswer::from_sdp_string(sdp)?;
                            pc.rtc.sdp_api().accept_answer(pending, answer)?;
                            out.update_senders(&mut pc.rtc, sdp);
                        }
                        if let (Subscription::Joining(h), Some(Jsep::Offer(sdp))) = (&subscription, &jsep)
                            && *h == sender
                        {
                            let handle = *h;
                            let pc = match subscriber.as_mut() {
                                Some(pc) => pc,
                                None => subscriber.insert(Pc::new(spec.bind).await?),
                            };
                            let offer = SdpOffer::from_sdp_string(sdp)?;
                            let answer = pc.rtc.sdp_api().accept_offer(offer)?;
                            let tx = conn.transaction("start");
                            let jsep = Jsep::Answer(answer.to_sdp_string());
                            conn.send(request::message(session, handle, &tx, request::start(), Some(&jsep))).await?;
                            subscription = Subscription::Started;
                        }
                    }
                    Incoming::Success { transaction, id: Some(handle), .. }
                        if transaction.starts_with("attach-sub") =>
                    {
                        let tx = conn.transaction("subscribe");
                        let body = request::join_subscriber(spec.room, feeds.iter().copied());
                        conn.send(request::message(session, handle, &tx, body, None)).await?;
                        subscription = Subscription::Joining(handle);
                    }
                    Incoming::Error { code, reason, .. } => return Err(JanusError::Janus { code, reason }),
                    Incoming::Hangup { reason, .. } => return Err(JanusError::Hangup(reason)),
                    _ => {}
                }
            }
            r = recv_on(publisher.as_ref().map(|(pc, _)| pc), &mut pub_buf) => {
                let (n, from) = r?;
                if let Some((pc, _)) = publisher.as_mut() {
                    pc.receive(&mut pub_buf, n, from)?;
                }
            }
            r = recv_on(subscriber.as_ref(), &mut sub_buf) => {
                let (n, from) = r?;
                if let Some(pc) = subscriber.as_mut() {
                    pc.receive(&mut sub_buf, n, from)?;
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }

        let now = Instant::now();
        if let Some((pc, _)) = publisher.as_mut() {
            let was = pc.connected;
            if pc.drive_publisher(now, false).await? {
                out.keyframe_requested();
            }
            if pc.connected && !was {
                out.start(Instant::now());
            }
            // What send_due wrote goes out now, not at the next wake-up.
            if out.send_due(&mut pc.rtc, now, stats, live) && pc.drive_publisher(now, true).await? {
                out.keyframe_requested();
            }
        }
        if let Some(pc) = subscriber.as_mut() {
            pc.drive(now, false, |e| {
                if let Event::RtpPacket(pkt) = e {
                    record_rtp(&pkt.payload, started, epoch, stats, live);
                }
            })
            .await?;
        }
    }
    let tx = conn.transaction("destroy");
    let _ = conn.send(request::destroy_session(session, &tx)).await;
    let _ = conn.sink.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_session_handle_and_jsep() {
        let offer = Jsep::Offer("v=0\r\n".into());
        let m = request::message(
            11,
            22,
            "publish-3",
            request::publish(true, true),
            Some(&offer),
        );
        assert_eq!(m["janus"], "message");
        assert_eq!(
            (m["session_id"].as_u64(), m["handle_id"].as_u64()),
            (Some(11), Some(22))
        );
        assert_eq!(m["body"]["request"], "publish");
        assert_eq!(m["jsep"]["type"], "offer");
        assert_eq!(m["jsep"]["trickle"], false);
        let sub = request::join_subscriber(5, [7, 9]);
        assert_eq!(sub["ptype"], "subscriber");
        assert_eq!(sub["streams"], json!([{"feed": 7}, {"feed": 9}]));
        assert_eq!(request::attach(1, "a")["plugin"], VIDEOROOM);
        assert!(request::keepalive(1, "k").get("handle_id").is_none());
    }

    #[test]
    fn replies_and_events_decode() {
        let ok = r#"{"janus":"success","transaction":"create-1","data":{"id":42}}"#;
        assert_eq!(
            Incoming::decode(ok).unwrap(),
            Incoming::Success {
                transaction: "create-1".into(),
                id: Some(42),
                plugin: None
            }
        );
        let joined = r#"{"janus":"event","session_id":1,"transaction":"join-3","sender":7,
            "plugindata":{"plugin":"janus.plugin.videoroom","data":{"videoroom":"joined","room":5,
            "id":100,"publishers":[{"id":101,"display":"a"},{"id":102}]}}}"#;
        let Incoming::Event {
            transaction,
            sender,
            plugin,
            jsep,
        } = Incoming::decode(joined).unwrap()
        else {
            panic!("not an event");
        };
        assert_eq!(
            (transaction.as_deref(), sender, jsep),
            (Some("join-3"), 7, None)
        );
        assert_eq!(announced_feeds(&plugin), vec![101, 102]);
        assert!(videoroom_error(&plugin).is_none());
        let offer = r#"{"janus":"event","sender":8,"plugindata":{"data":{"videoroom":"attached"}},
            "jsep":{"type":"offer","sdp":"v=0"}}"#;
        assert!(matches!(
            Incoming::decode(offer).unwrap(),
            Incoming::Event { jsep: Some(Jsep::Offer(s)), transaction: None, .. } if s == "v=0"
        ));
        let refused = json!({"videoroom": "event", "error_code": 426, "error": "No such room"});
        assert!(matches!(
            videoroom_error(&refused),
            Some(JanusError::VideoRoom { code: 426, .. })
        ));
        let err = r#"{"janus":"error","transaction":"x","error":{"code":458,"reason":"No such session"}}"#;
        assert!(matches!(
            Incoming::decode(err).unwrap(),
            Incoming::Error { code: 458, .. }
        ));
        assert!(matches!(
            Incoming::decode(r#"{"janus":"webrtcup","sender":1}"#).unwrap(),
            Incoming::Other(k) if k == "webrtcup"
        ));
        assert!(Incoming::decode(r#"{"nope":1}"#).is_err());
        assert!(Incoming::decode("not json").is_err());
    }
}
