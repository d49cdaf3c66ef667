//! Headless WebRTC test participant for huizhen's integration tests.
//!
//! Two layers:
//!
//! * [`SignalingClient`]: a bare WebSocket client for `wss://HOST:PORT/ws` that accepts the
//!   server's self-signed certificate, sends JSON or raw frames, buffers every server message and
//!   records the close code. Use it to test the protocol without WebRTC (bad tokens, malformed
//!   messages, rate limits...).
//! * [`TestPeer`]: a full participant. It joins with a token, answers every `offer` with a
//!   webrtc-rs peer connection (loopback UDP only), publishes synthetic Opus/VP8 RTP carrying a
//!   per-peer marker byte, and counts what it receives from each other participant.
//!
//! Synthetic media format (so receivers can tell which publisher a packet came from):
//!
//! * audio: every 20 ms one packet, 48 kHz clock (timestamp += 960), payload =
//!   `[marker; 4] ++ counter.to_be_bytes() ++ filler` (100 bytes in total).
//! * video (VP8): 15 frames per second, timestamp += 6000, two packets per frame, RTP marker bit
//!   on the second. First packet: VP8 payload descriptor `0x10` (S=1, partition 0), then a
//!   10-byte VP8 *keyframe* header (frame tag with P=0, start code `9d 01 2a`, 320x240), then
//!   `[marker; 4] ++ counter.to_be_bytes()`, then filler. Second packet: descriptor `0x00`, then
//!   `[marker; 4] ++ counter.to_be_bytes()`, then filler. Every frame is a keyframe.
//! * The filler never contains four identical bytes in a row, so the first run of four identical
//!   bytes in a payload is the marker. The marker must not be `0x00`.
//!
//! Nothing here goes to non-loopback addresses: the ICE agent gathers only IPv4 loopback host
//! candidates and mDNS is disabled.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use webrtc::api::APIBuilder;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::policy::bundle_policy::RTCBundlePolicy;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::rtp_transceiver::rtp_receiver::RTCRtpReceiver;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::track::track_local::TrackLocal;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_remote::TrackRemote;

/// Bound on WebSocket connect (TCP + TLS + upgrade).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on writing one WebSocket frame.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on waiting for `joined`/`resumed` (or an error) after `join`/`resume`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on waiting for ICE gathering before sending an answer (the server needs no candidates).
const GATHER_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on waiting for the server to close the socket after `leave`.
const LEAVE_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most server messages kept unconsumed per buffer (oldest dropped beyond that).
const MAX_QUEUED_MESSAGES: usize = 4096;
/// Most server messages kept in the history.
const MAX_HISTORY: usize = 4096;
/// Most offer-handling errors remembered.
const MAX_OFFER_ERRORS: usize = 64;
/// Capacity of the queue between the socket reader and the offer worker.
const OFFER_QUEUE: usize = 64;
/// Capacity of the queue between callers and the socket writer.
const WRITER_QUEUE: usize = 256;
/// Polling period of the `wait_*` helpers that watch counters.
const POLL_PERIOD: Duration = Duration::from_millis(20);

/// Synthetic audio payload size in bytes (an Opus frame of a plausible size).
const AUDIO_PAYLOAD_BYTES: usize = 100;
/// Synthetic VP8 packet payload size in bytes.
const VIDEO_PAYLOAD_BYTES: usize = 1000;
/// A VP8 keyframe header: 3-byte frame tag (P=0 keyframe, version 0, show_frame=1), start code,
/// 320x240. Contains no run of four identical bytes.
const VP8_KEYFRAME_HEADER: [u8; 10] = [0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// TLS: accept the server's self-signed certificate (tests only).
// ---------------------------------------------------------------------------------------------

/// Accepts any server certificate but still checks handshake signatures, so TLS itself works.
#[derive(Debug)]
struct AcceptAnyServerCert {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Installs aws-lc-rs as the process-wide rustls provider unless one is installed already.
/// webrtc-rs's DTLS builds a rustls `WebPkiServerVerifier` with the process default provider and
/// panics without one (both `ring` and `aws-lc-rs` are compiled in, so rustls cannot choose).
pub fn ensure_rustls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err only means another thread installed one first: fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

/// A rustls client configuration (explicit aws-lc-rs provider, no process default needed) that
/// accepts any server certificate. Also usable for HTTPS clients in tests.
pub fn insecure_tls_config() -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("rustls: choosing protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert { provider }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

// ---------------------------------------------------------------------------------------------
// Buffer of server messages.
// ---------------------------------------------------------------------------------------------

/// How the current signaling connection ended, if it did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseInfo {
    /// The socket is closed (close frame received, stream ended, error, or closed locally).
    pub closed: bool,
    /// Code of the server's close frame; 1005 for a close frame without a code; `None` when the
    /// connection ended without a close frame.
    pub code: Option<u16>,
    /// Reason text of the close frame.
    pub reason: String,
    /// Transport error that ended the connection, or "closed locally".
    pub error: Option<String>,
}

#[derive(Default)]
struct EventState {
    queue: VecDeque<Value>,
    history: VecDeque<Value>,
    dropped: u64,
    close: CloseInfo,
    /// Which connection `close` describes (a resume starts a new one on the same buffer).
    generation: u64,
}

/// Every server message, in order; consumers take messages out by type.
struct EventBuffer {
    state: Mutex<EventState>,
    version: watch::Sender<u64>,
}

impl EventBuffer {
    fn new() -> Arc<Self> {
        let (version, _) = watch::channel(0u64);
        Arc::new(Self {
            state: Mutex::new(EventState::default()),
            version,
        })
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn push(&self, msg: Value) {
        {
            let mut st = lock(&self.state);
            if st.queue.len() >= MAX_QUEUED_MESSAGES {
                st.queue.pop_front();
                st.dropped += 1;
            }
            if st.history.len() >= MAX_HISTORY {
                st.history.pop_front();
            }
            st.history.push_back(msg.clone());
            st.queue.push_back(msg);
        }
        self.bump();
    }

    /// Records the end of connection `generation` (ignored if a newer connection started); the
    /// first record wins, except that a close code fills in a record that lacked one.
    fn set_closed(
        &self,
        generation: u64,
        code: Option<u16>,
        reason: String,
        error: Option<String>,
    ) {
        {
            let mut st = lock(&self.state);
            if st.generation != generation {
                return;
            }
            if !st.close.closed {
                st.close = CloseInfo {
                    closed: true,
                    code,
                    reason,
                    error,
                };
            } else if st.close.code.is_none() && code.is_some() {
                st.close.code = code;
                st.close.reason = reason;
            }
        }
        self.bump();
    }

    /// A new connection starts: forget the previous connection's close; returns its generation.
    fn begin_connection(&self) -> u64 {
        let generation = {
            let mut st = lock(&self.state);
            st.generation += 1;
            st.close = CloseInfo::default();
            st.generation
        };
        self.bump();
        generation
    }

    fn close_info(&self) -> CloseInfo {
        lock(&self.state).close.clone()
    }

    fn history(&self) -> Vec<Value> {
        lock(&self.state).history.iter().cloned().collect()
    }

    fn pending(&self) -> Vec<Value> {
        lock(&self.state).queue.iter().cloned().collect()
    }

    /// Takes the first queued message matching `pred`, waiting up to `timeout`. Fails at once
    /// when the connection is closed and no queued message matches.
    async fn take<F>(&self, what: &str, timeout: Duration, pred: F) -> Result<Value>
    where
        F: Fn(&Value) -> bool,
    {
        let deadline = Instant::now() + timeout;
        let mut rx = self.version.subscribe();
        loop {
            {
                let mut st = lock(&self.state);
                if let Some(pos) = st.queue.iter().position(&pred)
                    && let Some(msg) = st.queue.remove(pos)
                {
                    return Ok(msg);
                }
                if st.close.closed {
                    bail!(
                        "signaling connection closed (close code {:?}, reason {:?}, error {:?}) \
                         while waiting for {what}; unconsumed messages: {}",
                        st.close.code,
                        st.close.reason,
                        st.close.error,
                        summarize(&st.queue)
                    );
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!("message buffer dropped while waiting for {what}"),
                Err(_) => {
                    let st = lock(&self.state);
                    bail!(
                        "timed out after {timeout:?} waiting for {what}; unconsumed messages: {}",
                        summarize(&st.queue)
                    );
                }
            }
        }
    }

    async fn wait_closed(&self, timeout: Duration) -> Result<CloseInfo> {
        let deadline = Instant::now() + timeout;
        let mut rx = self.version.subscribe();
        loop {
            let info = self.close_info();
            if info.closed {
                return Ok(info);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!("message buffer dropped while waiting for the socket to close"),
                Err(_) => {
                    bail!("timed out after {timeout:?} waiting for the server to close the socket")
                }
            }
        }
    }
}

/// Short description of queued messages for error texts: their types (and error codes).
fn summarize(queue: &VecDeque<Value>) -> String {
    let items: Vec<String> = queue
        .iter()
        .take(20)
        .map(|m| {
            let t = msg_type(m).unwrap_or("?");
            match m.get("code").and_then(Value::as_str) {
                Some(code) => format!("{t}({code})"),
                None => t.to_owned(),
            }
        })
        .collect();
    format!(
        "[{}]{}",
        items.join(", "),
        if queue.len() > 20 { " ..." } else { "" }
    )
}

/// The `type` field of a message.
pub fn msg_type(msg: &Value) -> Option<&str> {
    msg.get("type").and_then(Value::as_str)
}

// ---------------------------------------------------------------------------------------------
// SignalingClient.
// ---------------------------------------------------------------------------------------------

enum WriterCmd {
    Send(Message, oneshot::Sender<Result<()>>),
}

/// A WebSocket connection to the server's `/ws` endpoint, without WebRTC.
///
/// Every server message is buffered; take them with [`next_event`](Self::next_event) (by type) or
/// [`next_message`](Self::next_message) (in order). Text frames that are not JSON are buffered as
/// `{"type":"__invalid_json__","raw":...}`, binary frames as `{"type":"__binary__","len":N}`.
/// Dropping the client drops the TCP connection without a close frame.
pub struct SignalingClient {
    events: Arc<EventBuffer>,
    generation: u64,
    cmd_tx: mpsc::Sender<WriterCmd>,
    reader: AbortHandle,
    writer: AbortHandle,
}

impl SignalingClient {
    /// Connects to `ws_url` (e.g. `wss://127.0.0.1:PORT/ws`), accepting any server certificate.
    pub async fn connect(ws_url: &str) -> Result<Self> {
        Self::connect_inner(ws_url, EventBuffer::new(), None).await
    }

    async fn connect_inner(
        ws_url: &str,
        events: Arc<EventBuffer>,
        offer_tap: Option<mpsc::Sender<Value>>,
    ) -> Result<Self> {
        let generation = events.begin_connection();
        let connected = async {
            let tls = insecure_tls_config()?;
            let (ws, _response) = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio_tungstenite::connect_async_tls_with_config(
                    ws_url,
                    None,
                    true,
                    Some(Connector::Rustls(tls)),
                ),
            )
            .await
            .map_err(|_| anyhow!("timed out connecting to {ws_url}"))?
            .with_context(|| format!("WebSocket connect to {ws_url}"))?;
            anyhow::Ok(ws)
        }
        .await;
        let ws = match connected {
            Ok(ws) => ws,
            Err(e) => {
                events.set_closed(generation, None, String::new(), Some(format!("{e:#}")));
                return Err(e);
            }
        };
        let (mut sink, mut stream) = ws.split();

        let (cmd_tx, mut cmd_rx) = mpsc::channel::<WriterCmd>(WRITER_QUEUE);
        let writer = tokio::spawn(async move {
            while let Some(WriterCmd::Send(msg, ack)) = cmd_rx.recv().await {
                let result = sink.send(msg).await.context("WebSocket send");
                let _ = ack.send(result);
            }
        });

        let ev = Arc::clone(&events);
        let reader = tokio::spawn(async move {
            let mut error = None;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(Message::Text(text)) => {
                        let msg = match serde_json::from_str::<Value>(text.as_str()) {
                            Ok(v) => v,
                            Err(_) => json!({"type": "__invalid_json__", "raw": text.as_str()}),
                        };
                        let is_offer = msg_type(&msg) == Some("offer");
                        ev.push(msg.clone());
                        if is_offer && let Some(tap) = &offer_tap {
                            // Bounded: back-pressure on the socket if offers pile up.
                            let _ = tap.send(msg).await;
                        }
                    }
                    Ok(Message::Binary(data)) => {
                        ev.push(json!({"type": "__binary__", "len": data.len()}));
                    }
                    Ok(Message::Close(frame)) => {
                        let (code, reason) = match frame {
                            Some(f) => (u16::from(f.code), f.reason.as_str().to_owned()),
                            None => (1005, String::new()),
                        };
                        ev.set_closed(generation, Some(code), reason, None);
                    }
                    Ok(_) => {} // ping/pong are answered by tungstenite
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                }
            }
            ev.set_closed(
                generation,
                None,
                String::new(),
                error.or_else(|| Some("stream ended".into())),
            );
        });

        Ok(Self {
            events,
            generation,
            cmd_tx,
            reader: reader.abort_handle(),
            writer: writer.abort_handle(),
        })
    }

    /// Sends one WebSocket message and waits until it is written.
    pub async fn send_message(&self, msg: Message) -> Result<()> {
        let (ack_tx, ack_rx) = oneshot::channel();
        self.cmd_tx
            .send(WriterCmd::Send(msg, ack_tx))
            .await
            .map_err(|_| anyhow!("signaling socket writer has stopped"))?;
        tokio::time::timeout(SEND_TIMEOUT, ack_rx)
            .await
            .map_err(|_| anyhow!("timed out writing to the signaling socket"))?
            .map_err(|_| anyhow!("signaling socket writer has stopped"))?
    }

    /// Sends `text` as one text frame, as is (for malformed-message tests).
    pub async fn send_raw(&self, text: &str) -> Result<()> {
        self.send_message(Message::text(text.to_owned())).await
    }

    /// Sends `msg` serialized as one text frame.
    pub async fn send_json(&self, msg: &Value) -> Result<()> {
        self.send_raw(&msg.to_string()).await
    }

    /// Sends one binary frame (a protocol violation: the server closes with 1003).
    pub async fn send_binary(&self, data: Vec<u8>) -> Result<()> {
        self.send_message(Message::binary(data)).await
    }

    /// Sends a close frame with `code` (client-initiated close handshake).
    pub async fn send_close(&self, code: u16) -> Result<()> {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        };
        self.send_message(Message::Close(Some(frame))).await
    }

    /// Sends `join` with protocol version 1 and waits for `joined`. A server `error` instead is
    /// returned as an `Err` naming its code.
    pub async fn join(&self, token: &str, name: &str, audio: bool, video: bool) -> Result<Value> {
        self.send_json(&join_message(token, name, audio, video, None))
            .await?;
        self.expect_reply("joined").await
    }

    /// Sends `resume` and waits for `resumed` (an `error` becomes an `Err`).
    pub async fn resume(&self, resume_token: &str) -> Result<Value> {
        self.send_json(&json!({"type": "resume", "v": 1, "resume_token": resume_token}))
            .await?;
        self.expect_reply("resumed").await
    }

    async fn expect_reply(&self, want: &str) -> Result<Value> {
        let msg = self.next_event_of(&[want, "error"], JOIN_TIMEOUT).await?;
        if msg_type(&msg) == Some("error") {
            bail!("server answered error instead of {want}: {msg}");
        }
        Ok(msg)
    }

    /// Takes the first buffered (or next arriving) message whose `type` is `type_name`. Other
    /// messages stay buffered. Fails on timeout, or when the socket closed with no such message
    /// buffered.
    pub async fn next_event(&self, type_name: &str, timeout: Duration) -> Result<Value> {
        self.events
            .take(&format!("a {type_name:?} message"), timeout, |m| {
                msg_type(m) == Some(type_name)
            })
            .await
    }

    /// Like [`next_event`](Self::next_event) for any of several types.
    pub async fn next_event_of(&self, types: &[&str], timeout: Duration) -> Result<Value> {
        self.events
            .take(&format!("one of {types:?}"), timeout, |m| {
                msg_type(m).is_some_and(|t| types.contains(&t))
            })
            .await
    }

    /// Takes the next `error` message and checks its `code`; returns the whole message.
    pub async fn expect_error(&self, code: &str, timeout: Duration) -> Result<Value> {
        let msg = self.next_event("error", timeout).await?;
        let got = msg.get("code").and_then(Value::as_str).unwrap_or("");
        if got != code {
            bail!("expected error code {code:?}, got {msg}");
        }
        Ok(msg)
    }

    /// Takes the oldest buffered message of any type.
    pub async fn next_message(&self, timeout: Duration) -> Result<Value> {
        self.events.take("any message", timeout, |_| true).await
    }

    /// Every message received so far (bounded), consumed or not.
    pub fn history(&self) -> Vec<Value> {
        self.events.history()
    }

    /// Messages received and not yet taken.
    pub fn pending(&self) -> Vec<Value> {
        self.events.pending()
    }

    /// The server's close code, once the server has closed the socket.
    pub fn close_code(&self) -> Option<u16> {
        self.events.close_info().code
    }

    /// Whether the socket is closed.
    pub fn is_closed(&self) -> bool {
        self.events.close_info().closed
    }

    /// Full close details.
    pub fn close_info(&self) -> CloseInfo {
        self.events.close_info()
    }

    /// Waits until the socket is closed; returns the server's close code (if it sent one).
    pub async fn wait_closed(&self, timeout: Duration) -> Result<Option<u16>> {
        Ok(self.events.wait_closed(timeout).await?.code)
    }

    /// Drops the TCP connection at once, without `leave` and without a close frame.
    pub fn abort(&self) {
        self.reader.abort();
        self.writer.abort();
        self.events.set_closed(
            self.generation,
            None,
            String::new(),
            Some("closed locally".into()),
        );
    }
}

impl Drop for SignalingClient {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// A protocol-version-1 `join` message.
pub fn join_message(
    token: &str,
    name: &str,
    audio: bool,
    video: bool,
    replaces: Option<&str>,
) -> Value {
    let mut msg = json!({
        "type": "join",
        "v": 1,
        "token": token,
        "name": name,
        "publish": {"audio": audio, "video": video},
    });
    if let (Some(r), Some(obj)) = (replaces, msg.as_object_mut()) {
        obj.insert("replaces".into(), Value::String(r.to_owned()));
    }
    msg
}

// ---------------------------------------------------------------------------------------------
// Statistics.
// ---------------------------------------------------------------------------------------------

/// What this peer received on one (participant, kind) track.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceivedStats {
    /// RTP packets read.
    pub packets: u64,
    /// Payload bytes read.
    pub bytes: u64,
    /// Publisher marker bytes found in payloads (one entry if the SFU routed correctly).
    pub markers_seen: BTreeSet<u8>,
    /// Packets in which no marker was found.
    pub unmarked: u64,
    /// Highest sender counter seen (packets carry a per-publisher, per-kind counter).
    pub max_counter: u32,
    /// The track's media is over: its m-line was stopped/removed in a later offer, or every
    /// reader of it ended (receiver stopped, peer connection closed).
    pub ended: bool,
    /// A later offer stopped the m-line (port 0 or inactive) or dropped it from `tracks`.
    pub mline_stopped: bool,
    /// How many times `on_track` fired for this track.
    pub tracks_started: u32,
    /// Read loops still running for this track (0 once webrtc-rs ended them).
    pub active_readers: u32,
    /// MID of the m-line, once `on_track` fired.
    pub mid: Option<String>,
    /// Negotiated codec, e.g. `audio/opus`, `video/VP8`.
    pub mime_type: Option<String>,
}

impl ReceivedStats {
    /// True when packets arrived and every marked one carried `marker`.
    pub fn only_marker(&self, marker: u8) -> bool {
        self.markers_seen.len() == 1 && self.markers_seen.contains(&marker)
    }
}

/// RTCP received for this peer's own published tracks (feedback from the server).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtcpStats {
    pub audio_packets: u64,
    pub video_packets: u64,
    pub pli: u64,
    pub fir: u64,
    pub nack: u64,
}

/// (participant_id, kind)
type TrackKey = (String, String);

/// One entry of an offer's `tracks` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedTrack {
    pub mid: String,
    pub participant_id: String,
    pub kind: String,
}

/// Finds the publisher marker: the first run of four identical bytes followed by a 4-byte
/// big-endian counter.
pub fn find_marker(payload: &[u8]) -> Option<(u8, u32)> {
    payload
        .windows(8)
        .find(|w| w[0] == w[1] && w[1] == w[2] && w[2] == w[3])
        .map(|w| (w[0], u32::from_be_bytes([w[4], w[5], w[6], w[7]])))
}

/// Filler bytes with no run of four identical bytes (consecutive bytes always differ).
fn push_filler(buf: &mut Vec<u8>, total_len: usize) {
    let mut i: u8 = 0;
    while buf.len() < total_len {
        buf.push(1 + i % 200);
        i = i.wrapping_add(1);
    }
}

fn push_marker(buf: &mut Vec<u8>, marker: u8, counter: u32) {
    buf.extend_from_slice(&[marker; 4]);
    buf.extend_from_slice(&counter.to_be_bytes());
}

/// Synthetic Opus payload.
pub fn audio_payload(marker: u8, counter: u32) -> Bytes {
    let mut buf = Vec::with_capacity(AUDIO_PAYLOAD_BYTES);
    push_marker(&mut buf, marker, counter);
    push_filler(&mut buf, AUDIO_PAYLOAD_BYTES);
    Bytes::from(buf)
}

/// Synthetic VP8 payload: `first` is the first packet of a (key)frame.
pub fn video_payload(marker: u8, counter: u32, first: bool) -> Bytes {
    let mut buf = Vec::with_capacity(VIDEO_PAYLOAD_BYTES);
    if first {
        buf.push(0x10); // X=0 R=0 N=0 S=1 PID=0
        buf.extend_from_slice(&VP8_KEYFRAME_HEADER);
    } else {
        buf.push(0x00); // continuation packet
    }
    push_marker(&mut buf, marker, counter);
    push_filler(&mut buf, VIDEO_PAYLOAD_BYTES);
    Bytes::from(buf)
}

/// Synthetic H.264 payload: a single NAL unit, an IDR slice (type 5) on the first packet of a
/// frame and a non-IDR slice (type 1) on the other, so every frame starts a keyframe.
pub fn h264_payload(marker: u8, counter: u32, first: bool) -> Bytes {
    let mut buf = Vec::with_capacity(VIDEO_PAYLOAD_BYTES);
    buf.push(if first { 0x65 } else { 0x41 });
    push_marker(&mut buf, marker, counter);
    push_filler(&mut buf, VIDEO_PAYLOAD_BYTES);
    Bytes::from(buf)
}

/// The MIDs of m-lines that an SDP stops (port 0) or makes inactive.
fn stopped_mids(sdp: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut current: Option<(bool, Option<String>)> = None;
    let flush = |cur: &mut Option<(bool, Option<String>)>, out: &mut HashSet<String>| {
        if let Some((true, Some(mid))) = cur.take() {
            out.insert(mid);
        }
    };
    for line in sdp.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("m=") {
            flush(&mut current, &mut out);
            let port = rest.split_whitespace().nth(1).unwrap_or("");
            current = Some((port == "0", None));
        } else if let Some((stopped, mid)) = current.as_mut() {
            if let Some(m) = line.strip_prefix("a=mid:") {
                *mid = Some(m.trim().to_owned());
            } else if line == "a=inactive" {
                *stopped = true;
            }
        }
    }
    flush(&mut current, &mut out);
    out
}

fn parse_offer_tracks(offer: &Value) -> Result<Vec<OfferedTrack>> {
    let Some(tracks) = offer.get("tracks") else {
        return Ok(Vec::new());
    };
    let arr = tracks.as_array().context("offer.tracks is not an array")?;
    arr.iter()
        .map(|t| {
            let field = |name: &str| -> Result<String> {
                t.get(name)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .with_context(|| format!("offer.tracks entry without string {name:?}: {t}"))
            };
            Ok(OfferedTrack {
                mid: field("mid")?,
                participant_id: field("participant_id")?,
                kind: field("kind")?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// TestPeer.
// ---------------------------------------------------------------------------------------------

/// How a [`TestPeer`] joins.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// `wss://127.0.0.1:PORT/ws`
    pub ws_url: String,
    /// Invite token.
    pub token: String,
    /// Display name.
    pub name: String,
    /// `publish.audio` in `join`; also whether an Opus track is added and sent.
    pub publish_audio: bool,
    /// `publish.video` in `join`; also whether a VP8 track is added and sent.
    pub publish_video: bool,
    /// Byte embedded in every published packet (must not be 0x00; give each peer its own).
    pub marker: u8,
    /// Publish H.264 (constrained baseline, packetization-mode 1, as Safari does) instead of VP8.
    pub h264: bool,
}

struct Shared {
    events: Arc<EventBuffer>,
    signaling: Mutex<Option<Arc<SignalingClient>>>,
    /// Every MID ever announced in an offer's `tracks`, to the latest owner.
    mids: Mutex<HashMap<String, TrackKey>>,
    /// Tracks of the latest offer (not stopped).
    active: Mutex<Vec<OfferedTrack>>,
    recv: Mutex<HashMap<TrackKey, ReceivedStats>>,
    /// Reader and RTCP tasks (bounded by the number of tracks).
    tasks: Mutex<Vec<AbortHandle>>,
    answered: watch::Sender<u64>,
    offer_errors: Mutex<Vec<String>>,
    conn_state: watch::Sender<RTCPeerConnectionState>,
    resume_token: Mutex<Option<String>>,
    sent_audio: AtomicU64,
    sent_video: AtomicU64,
    send_errors: AtomicU64,
    rtcp: Mutex<RtcpStats>,
}

impl Shared {
    fn current_signaling(&self) -> Option<Arc<SignalingClient>> {
        lock(&self.signaling).clone()
    }

    fn register_task(&self, handle: AbortHandle) {
        let mut tasks = lock(&self.tasks);
        tasks.retain(|h| !h.is_finished());
        tasks.push(handle);
    }

    fn push_offer_error(&self, err: String) {
        let mut errs = lock(&self.offer_errors);
        if errs.len() >= MAX_OFFER_ERRORS {
            errs.remove(0);
        }
        errs.push(err);
    }

    /// Applies an offer's `tracks` before its SDP is applied, so `on_track` finds the owners.
    fn apply_offer_tracks(&self, tracks: Vec<OfferedTrack>, stopped: &HashSet<String>) {
        let live: Vec<OfferedTrack> = tracks
            .into_iter()
            .filter(|t| !stopped.contains(&t.mid))
            .collect();
        let live_keys: HashSet<TrackKey> = live
            .iter()
            .map(|t| (t.participant_id.clone(), t.kind.clone()))
            .collect();
        {
            let mut mids = lock(&self.mids);
            for t in &live {
                mids.insert(t.mid.clone(), (t.participant_id.clone(), t.kind.clone()));
            }
        }
        let previous = std::mem::replace(&mut *lock(&self.active), live);
        let mut recv = lock(&self.recv);
        for t in previous {
            let key = (t.participant_id, t.kind);
            if !live_keys.contains(&key) {
                let entry = recv.entry(key).or_default();
                entry.mline_stopped = true;
                entry.ended = true;
            }
        }
        for key in live_keys {
            recv.entry(key).or_default();
        }
    }

    fn key_for_mid(&self, mid: Option<&str>, kind: &str) -> TrackKey {
        let found = mid.and_then(|m| lock(&self.mids).get(m).cloned());
        found.unwrap_or_else(|| {
            (
                format!("unknown-mid:{}", mid.unwrap_or("none")),
                kind.to_owned(),
            )
        })
    }

    fn reader_started(&self, key: &TrackKey, mid: Option<String>, mime: String) {
        let mut recv = lock(&self.recv);
        let entry = recv.entry(key.clone()).or_default();
        entry.active_readers += 1;
        entry.tracks_started += 1;
        entry.mid = mid;
        entry.mime_type = Some(mime);
        if !entry.mline_stopped {
            entry.ended = false;
        }
    }

    fn reader_ended(&self, key: &TrackKey) {
        let mut recv = lock(&self.recv);
        let entry = recv.entry(key.clone()).or_default();
        entry.active_readers = entry.active_readers.saturating_sub(1);
        if entry.active_readers == 0 {
            entry.ended = true;
        }
    }

    fn record_packet(&self, key: &TrackKey, payload: &[u8]) {
        let mut recv = lock(&self.recv);
        let stats = recv.entry(key.clone()).or_default();
        stats.packets += 1;
        stats.bytes += payload.len() as u64;
        match find_marker(payload) {
            Some((marker, counter)) => {
                stats.markers_seen.insert(marker);
                stats.max_counter = stats.max_counter.max(counter);
            }
            None => stats.unmarked += 1,
        }
    }

    fn record_rtcp(
        &self,
        video: bool,
        pkts: &[Box<dyn webrtc::rtcp::packet::Packet + Send + Sync>],
    ) {
        let mut st = lock(&self.rtcp);
        for p in pkts {
            if video {
                st.video_packets += 1;
            } else {
                st.audio_packets += 1;
            }
            let any = p.as_any();
            if any.downcast_ref::<PictureLossIndication>().is_some() {
                st.pli += 1;
            } else if any.downcast_ref::<FullIntraRequest>().is_some() {
                st.fir += 1;
            } else if any.downcast_ref::<TransportLayerNack>().is_some() {
                st.nack += 1;
            }
        }
    }
}

/// A headless participant: signaling + one webrtc-rs peer connection (loopback only).
///
/// Offers are answered automatically (in order, one at a time) for as long as the peer lives;
/// every server message is also buffered for [`next_event`](Self::next_event). Dropping the peer
/// drops the socket, stops all its tasks and closes the peer connection.
pub struct TestPeer {
    opts: JoinOptions,
    id: String,
    joined: Value,
    pc: Arc<RTCPeerConnection>,
    shared: Arc<Shared>,
    audio_track: Option<Arc<TrackLocalStaticRTP>>,
    video_track: Option<Arc<TrackLocalStaticRTP>>,
    offer_tx: mpsc::Sender<Value>,
    worker: AbortHandle,
    media_tasks: Mutex<Vec<AbortHandle>>,
}

impl TestPeer {
    /// Creates the peer connection (with its send tracks), connects the WebSocket, sends `join`
    /// and waits for `joined`. The first `offer` is answered in the background; use
    /// [`wait_connected`](Self::wait_connected) next. An `error` reply becomes an `Err`.
    pub async fn join(opts: JoinOptions) -> Result<Self> {
        Self::join_inner(opts, None).await
    }

    /// Like [`join`](Self::join) with `replaces: <resume token of the previous participant>`.
    pub async fn join_replacing(opts: JoinOptions, replaces: &str) -> Result<Self> {
        Self::join_inner(opts, Some(replaces.to_owned())).await
    }

    async fn join_inner(opts: JoinOptions, replaces: Option<String>) -> Result<Self> {
        if opts.marker == 0 {
            bail!("JoinOptions.marker must not be 0x00");
        }
        let pc = build_peer_connection().await?;
        let (answered, _) = watch::channel(0u64);
        let (conn_state, _) = watch::channel(RTCPeerConnectionState::New);
        let shared = Arc::new(Shared {
            events: EventBuffer::new(),
            signaling: Mutex::new(None),
            mids: Mutex::new(HashMap::new()),
            active: Mutex::new(Vec::new()),
            recv: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            answered,
            offer_errors: Mutex::new(Vec::new()),
            conn_state,
            resume_token: Mutex::new(None),
            sent_audio: AtomicU64::new(0),
            sent_video: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            rtcp: Mutex::new(RtcpStats::default()),
        });

        match Self::setup(&pc, &shared, &opts).await {
            Ok((audio_track, video_track)) => {
                let (offer_tx, offer_rx) = mpsc::channel(OFFER_QUEUE);
                let worker =
                    tokio::spawn(offer_worker(Arc::clone(&pc), Arc::clone(&shared), offer_rx))
                        .abort_handle();
                let mut peer = Self {
                    opts,
                    id: String::new(),
                    joined: Value::Null,
                    pc,
                    shared,
                    audio_track,
                    video_track,
                    offer_tx,
                    worker,
                    media_tasks: Mutex::new(Vec::new()),
                };
                // On failure `peer` is dropped, which closes everything.
                let joined = peer.signal_join(replaces).await?;
                peer.id = joined
                    .pointer("/you/id")
                    .and_then(Value::as_str)
                    .context("joined message without you.id")?
                    .to_owned();
                peer.joined = joined;
                Ok(peer)
            }
            Err(e) => {
                let _ = pc.close().await;
                Err(e)
            }
        }
    }

    /// Adds send tracks and installs the peer-connection callbacks.
    async fn setup(
        pc: &Arc<RTCPeerConnection>,
        shared: &Arc<Shared>,
        opts: &JoinOptions,
    ) -> Result<(
        Option<Arc<TrackLocalStaticRTP>>,
        Option<Arc<TrackLocalStaticRTP>>,
    )> {
        let s = Arc::clone(shared);
        pc.on_peer_connection_state_change(Box::new(move |state| {
            s.conn_state.send_replace(state);
            Box::pin(async {})
        }));

        let s = Arc::clone(shared);
        pc.on_track(Box::new(move |track, receiver, transceiver| {
            let shared = Arc::clone(&s);
            Box::pin(async move {
                let mid = transceiver.mid().map(|m| m.to_string());
                let kind = track.kind().to_string();
                let key = shared.key_for_mid(mid.as_deref(), &kind);
                shared.reader_started(&key, mid, track.codec().capability.mime_type.clone());
                let s2 = Arc::clone(&shared);
                let reader = tokio::spawn(read_track(track, key, s2));
                shared.register_task(reader.abort_handle());
                let rtcp = tokio::spawn(drain_receiver_rtcp(receiver));
                shared.register_task(rtcp.abort_handle());
            })
        }));

        let stream_id = format!("huizhen-test-{:02x}", opts.marker);
        let mut audio = None;
        if opts.publish_audio {
            let track = Arc::new(TrackLocalStaticRTP::new(
                RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_OPUS.to_owned(),
                    clock_rate: 48_000,
                    channels: 2,
                    ..Default::default()
                },
                "audio".to_owned(),
                stream_id.clone(),
            ));
            let sender = pc
                .add_track(Arc::clone(&track) as Arc<dyn TrackLocal + Send + Sync>)
                .await
                .context("adding the audio track")?;
            let t = tokio::spawn(drain_sender_rtcp(sender, Arc::clone(shared), false));
            shared.register_task(t.abort_handle());
            audio = Some(track);
        }
        let mut video = None;
        if opts.publish_video {
            let capability = if opts.h264 {
                RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_H264.to_owned(),
                    clock_rate: 90_000,
                    sdp_fmtp_line:
                        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                            .to_owned(),
                    ..Default::default()
                }
            } else {
                RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_VP8.to_owned(),
                    clock_rate: 90_000,
                    ..Default::default()
                }
            };
            let track = Arc::new(TrackLocalStaticRTP::new(
                capability,
                "video".to_owned(),
                stream_id,
            ));
            let sender = pc
                .add_track(Arc::clone(&track) as Arc<dyn TrackLocal + Send + Sync>)
                .await
                .context("adding the video track")?;
            let t = tokio::spawn(drain_sender_rtcp(sender, Arc::clone(shared), true));
            shared.register_task(t.abort_handle());
            video = Some(track);
        }
        Ok((audio, video))
    }

    async fn signal_join(&self, replaces: Option<String>) -> Result<Value> {
        let sig = Arc::new(
            SignalingClient::connect_inner(
                &self.opts.ws_url,
                Arc::clone(&self.shared.events),
                Some(self.offer_tx.clone()),
            )
            .await?,
        );
        *lock(&self.shared.signaling) = Some(Arc::clone(&sig));
        sig.send_json(&join_message(
            &self.opts.token,
            &self.opts.name,
            self.opts.publish_audio,
            self.opts.publish_video,
            replaces.as_deref(),
        ))
        .await
        .context("sending join")?;
        let joined = sig.expect_reply("joined").await?;
        self.store_resume_token(&joined);
        Ok(joined)
    }

    fn store_resume_token(&self, msg: &Value) {
        if let Some(t) = msg.get("resume_token").and_then(Value::as_str) {
            *lock(&self.shared.resume_token) = Some(t.to_owned());
        }
    }

    /// The participant id from `joined` (`you.id`).
    pub fn id(&self) -> String {
        self.id.clone()
    }

    /// The whole `joined` message.
    pub fn joined_message(&self) -> Value {
        self.joined.clone()
    }

    /// The options this peer joined with.
    pub fn options(&self) -> &JoinOptions {
        &self.opts
    }

    /// The latest resume token (from `joined` or `resumed`).
    pub fn resume_token(&self) -> Option<String> {
        lock(&self.shared.resume_token).clone()
    }

    /// The underlying webrtc-rs peer connection.
    pub fn peer_connection(&self) -> &Arc<RTCPeerConnection> {
        &self.pc
    }

    /// Current peer connection state.
    pub fn connection_state(&self) -> RTCPeerConnectionState {
        self.pc.connection_state()
    }

    /// Waits until the peer connection is `Connected` (ICE + DTLS). Fails early on `Failed` or
    /// `Closed`, and with the offer-handling errors if any occurred.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.shared.conn_state.subscribe();
        let result = tokio::time::timeout(timeout, async {
            loop {
                let state = *rx.borrow_and_update();
                match state {
                    RTCPeerConnectionState::Connected => return Ok(()),
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        bail!("peer connection is {state}")
                    }
                    _ => {}
                }
                rx.changed()
                    .await
                    .context("peer connection state channel closed")?;
            }
        })
        .await;
        match result {
            Ok(r) => r.with_context(|| format!("offer errors: {:?}", self.offer_errors())),
            Err(_) => bail!(
                "timed out after {timeout:?} waiting for the peer connection to connect \
                 (state {}, answered offer {}, offer errors {:?})",
                self.pc.connection_state(),
                self.last_answered_offer(),
                self.offer_errors()
            ),
        }
    }

    /// Highest `offer_id` answered so far (0 before the first answer).
    pub fn last_answered_offer(&self) -> u64 {
        *self.shared.answered.borrow()
    }

    /// Waits until an answer for `offer_id` (or a later offer) has been sent.
    pub async fn wait_answered(&self, offer_id: u64, timeout: Duration) -> Result<()> {
        let mut rx = self.shared.answered.subscribe();
        let r = tokio::time::timeout(timeout, async {
            loop {
                if *rx.borrow_and_update() >= offer_id {
                    return Ok(());
                }
                rx.changed().await.context("answer channel closed")?;
            }
        })
        .await;
        match r {
            Ok(r) => r,
            Err(_) => bail!(
                "timed out after {timeout:?} waiting to answer offer {offer_id} (last answered \
                 {}, offer errors {:?})",
                self.last_answered_offer(),
                self.offer_errors()
            ),
        }
    }

    /// Errors met while applying offers (webrtc-rs refusals, missing fields, send failures).
    pub fn offer_errors(&self) -> Vec<String> {
        lock(&self.shared.offer_errors).clone()
    }

    /// The live (not stopped) tracks of the latest applied offer.
    pub fn offered_tracks(&self) -> Vec<OfferedTrack> {
        lock(&self.shared.active).clone()
    }

    /// Starts publishing synthetic RTP on the tracks given in [`JoinOptions`] (idempotent).
    /// Packets written before the connection is up are dropped by webrtc-rs.
    pub fn start_media(&self) {
        let mut tasks = lock(&self.media_tasks);
        if !tasks.is_empty() {
            return;
        }
        let marker = self.opts.marker;
        if let Some(track) = &self.audio_track {
            let t = tokio::spawn(publish_audio(
                Arc::clone(track),
                marker,
                Arc::clone(&self.shared),
            ));
            tasks.push(t.abort_handle());
        }
        if let Some(track) = &self.video_track {
            let t = tokio::spawn(publish_video(
                Arc::clone(track),
                marker,
                self.opts.h264,
                Arc::clone(&self.shared),
            ));
            tasks.push(t.abort_handle());
        }
    }

    /// Stops publishing (the tracks stay negotiated).
    pub fn stop_media(&self) {
        for t in lock(&self.media_tasks).drain(..) {
            t.abort();
        }
    }

    /// RTP packets written to the transport so far for `"audio"` or `"video"`.
    pub fn sent_packets(&self, kind: &str) -> u64 {
        match kind {
            "audio" => self.shared.sent_audio.load(Ordering::Relaxed),
            "video" => self.shared.sent_video.load(Ordering::Relaxed),
            _ => 0,
        }
    }

    /// Failed RTP writes so far.
    pub fn send_errors(&self) -> u64 {
        self.shared.send_errors.load(Ordering::Relaxed)
    }

    /// RTCP feedback received for this peer's published tracks (e.g. PLIs forwarded by the SFU).
    pub fn rtcp_stats(&self) -> RtcpStats {
        lock(&self.shared.rtcp).clone()
    }

    /// What was received from `participant_id`'s `kind` (`"audio"`/`"video"`) track so far
    /// (all zero if nothing yet).
    pub fn received(&self, participant_id: &str, kind: &str) -> ReceivedStats {
        lock(&self.shared.recv)
            .get(&(participant_id.to_owned(), kind.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// Everything received, keyed by (participant_id, kind). Tracks whose MID was not in any
    /// offer's `tracks` appear under participant `unknown-mid:<mid>`.
    pub fn received_all(&self) -> HashMap<(String, String), ReceivedStats> {
        lock(&self.shared.recv)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Waits until at least `min_packets` arrived from `participant_id`'s `kind` track.
    pub async fn wait_received(
        &self,
        participant_id: &str,
        kind: &str,
        min_packets: u64,
        timeout: Duration,
    ) -> Result<ReceivedStats> {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.received(participant_id, kind);
            if stats.packets >= min_packets {
                return Ok(stats);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} ({}): timed out after {timeout:?} waiting for {min_packets} {kind} \
                     packets from {participant_id}; have {stats:?}; connection {}; offered \
                     tracks {:?}; offer errors {:?}",
                    self.opts.name,
                    self.id,
                    self.pc.connection_state(),
                    self.offered_tracks(),
                    self.offer_errors()
                );
            }
            tokio::time::sleep(POLL_PERIOD).await;
        }
    }

    /// Waits until `participant_id`'s `kind` track has ended (see [`ReceivedStats::ended`]).
    pub async fn wait_ended(
        &self,
        participant_id: &str,
        kind: &str,
        timeout: Duration,
    ) -> Result<ReceivedStats> {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.received(participant_id, kind);
            if stats.ended {
                return Ok(stats);
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {participant_id}'s {kind} to end; \
                     have {stats:?}"
                );
            }
            tokio::time::sleep(POLL_PERIOD).await;
        }
    }

    /// Takes the first buffered (or next arriving) server message of type `type_name`
    /// (`"participant_joined"`, `"offer"`, `"error"`...). Offers are answered automatically
    /// whether or not they are taken here. Other messages stay buffered.
    pub async fn next_event(&self, type_name: &str, timeout: Duration) -> Result<Value> {
        self.shared
            .events
            .take(&format!("a {type_name:?} message"), timeout, |m| {
                msg_type(m) == Some(type_name)
            })
            .await
    }

    /// Takes the first message of type `type_name` for which `pred` holds, e.g. a
    /// `participant_left` for one id.
    pub async fn next_event_where<F>(
        &self,
        type_name: &str,
        timeout: Duration,
        pred: F,
    ) -> Result<Value>
    where
        F: Fn(&Value) -> bool,
    {
        self.shared
            .events
            .take(&format!("a matching {type_name:?} message"), timeout, |m| {
                msg_type(m) == Some(type_name) && pred(m)
            })
            .await
    }

    /// Takes the oldest buffered server message of any type.
    pub async fn next_message(&self, timeout: Duration) -> Result<Value> {
        self.shared
            .events
            .take("any message", timeout, |_| true)
            .await
    }

    /// Every server message received so far (bounded), across resumes.
    pub fn history(&self) -> Vec<Value> {
        self.shared.events.history()
    }

    /// Server messages not yet taken.
    pub fn pending(&self) -> Vec<Value> {
        self.shared.events.pending()
    }

    fn signaling(&self) -> Result<Arc<SignalingClient>> {
        self.shared
            .current_signaling()
            .context("this peer has no signaling connection")
    }

    /// Sends `text` as one text frame on the current signaling socket.
    pub async fn send_raw(&self, text: &str) -> Result<()> {
        self.signaling()?.send_raw(text).await
    }

    /// Sends `msg` as JSON on the current signaling socket.
    pub async fn send_json(&self, msg: Value) -> Result<()> {
        self.signaling()?.send_json(&msg).await
    }

    /// Sends `media_state`.
    pub async fn send_media_state(&self, audio_muted: bool, video_off: bool) -> Result<()> {
        self.send_json(json!({
            "type": "media_state",
            "audio_muted": audio_muted,
            "video_off": video_off,
        }))
        .await
    }

    /// Sends `leave`, waits (bounded) for the server to close the socket, then closes the peer
    /// connection and stops publishing. The close code is then in [`close_code`](Self::close_code).
    pub async fn leave(&self) -> Result<()> {
        let sig = self.signaling()?;
        let sent = sig.send_json(&json!({"type": "leave"})).await;
        let closed = match &sent {
            Ok(()) => sig.wait_closed(LEAVE_CLOSE_TIMEOUT).await.map(|_| ()),
            Err(_) => Ok(()),
        };
        self.stop_media();
        let _ = self.pc.close().await;
        sent.context("sending leave")?;
        closed
    }

    /// Drops the signaling socket without `leave` and without a close frame. The peer
    /// connection and the media keep running (the server should mark this participant
    /// `reconnecting`); [`resume`](Self::resume) can take it back.
    pub fn close_abruptly(&self) {
        if let Some(sig) = lock(&self.shared.signaling).take() {
            sig.abort();
        }
    }

    /// Opens a new signaling socket and sends `resume` with the latest resume token; the peer
    /// connection carries on. Returns the `resumed` message (an `error` becomes an `Err`).
    pub async fn resume(&self) -> Result<Value> {
        let token = self.resume_token().context("no resume token")?;
        self.close_abruptly();
        let sig = Arc::new(
            SignalingClient::connect_inner(
                &self.opts.ws_url,
                Arc::clone(&self.shared.events),
                Some(self.offer_tx.clone()),
            )
            .await?,
        );
        *lock(&self.shared.signaling) = Some(Arc::clone(&sig));
        sig.send_json(&json!({"type": "resume", "v": 1, "resume_token": token}))
            .await
            .context("sending resume")?;
        let resumed = sig.expect_reply("resumed").await?;
        self.store_resume_token(&resumed);
        Ok(resumed)
    }

    /// The server's close code on the current signaling socket, once it closed it.
    pub fn close_code(&self) -> Option<u16> {
        self.shared.events.close_info().code
    }

    /// Details of how the current signaling socket ended, if it did.
    pub fn close_info(&self) -> CloseInfo {
        self.shared.events.close_info()
    }

    /// Waits until the server closes the signaling socket; returns its close code.
    pub async fn wait_closed(&self, timeout: Duration) -> Result<Option<u16>> {
        Ok(self.shared.events.wait_closed(timeout).await?.code)
    }

    /// Closes everything now: socket (without `leave`), media, peer connection, tasks.
    pub async fn close(&self) {
        self.close_abruptly();
        self.stop_media();
        self.abort_tasks();
        let _ = self.pc.close().await;
    }

    fn abort_tasks(&self) {
        self.worker.abort();
        for t in lock(&self.shared.tasks).drain(..) {
            t.abort();
        }
    }
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        self.close_abruptly();
        self.stop_media();
        self.abort_tasks();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let pc = Arc::clone(&self.pc);
            handle.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

/// A webrtc-rs peer connection restricted to IPv4 loopback UDP, default codecs (Opus, VP8,
/// H.264...) and default interceptors (NACK, RTCP reports), max-bundle.
async fn build_peer_connection() -> Result<Arc<RTCPeerConnection>> {
    ensure_rustls_provider();
    let mut media = MediaEngine::default();
    media
        .register_default_codecs()
        .context("registering default codecs")?;
    let registry = register_default_interceptors(Registry::new(), &mut media)
        .context("registering default interceptors")?;

    let mut settings = SettingEngine::default();
    settings.set_include_loopback_candidate(true);
    settings.set_ip_filter(Box::new(|ip: IpAddr| ip.is_loopback()));
    settings.set_network_types(vec![NetworkType::Udp4]);
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);

    let api = APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build();
    let config = RTCConfiguration {
        bundle_policy: RTCBundlePolicy::MaxBundle,
        ..Default::default()
    };
    let pc = api
        .new_peer_connection(config)
        .await
        .context("creating the peer connection")?;
    Ok(Arc::new(pc))
}

/// Answers offers one at a time, in arrival order, for the life of the peer.
async fn offer_worker(
    pc: Arc<RTCPeerConnection>,
    shared: Arc<Shared>,
    mut offers: mpsc::Receiver<Value>,
) {
    while let Some(offer) = offers.recv().await {
        if let Err(e) = handle_offer(&pc, &shared, &offer).await {
            let text = format!("{e:#}");
            eprintln!("[test peer] failed to answer offer: {text}");
            shared.push_offer_error(text);
        }
    }
}

async fn handle_offer(pc: &RTCPeerConnection, shared: &Shared, offer: &Value) -> Result<()> {
    let offer_id = offer
        .get("offer_id")
        .and_then(Value::as_u64)
        .with_context(|| format!("offer without numeric offer_id: {offer}"))?;
    let sdp = offer
        .get("sdp")
        .and_then(Value::as_str)
        .with_context(|| format!("offer {offer_id} without sdp"))?
        .to_owned();
    let tracks = parse_offer_tracks(offer).with_context(|| format!("offer {offer_id}"))?;
    shared.apply_offer_tracks(tracks, &stopped_mids(&sdp));

    let desc = RTCSessionDescription::offer(sdp)
        .with_context(|| format!("offer {offer_id}: parsing SDP"))?;
    pc.set_remote_description(desc)
        .await
        .with_context(|| format!("offer {offer_id}: set_remote_description"))?;
    let answer = pc
        .create_answer(None)
        .await
        .with_context(|| format!("offer {offer_id}: create_answer"))?;
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(answer)
        .await
        .with_context(|| format!("offer {offer_id}: set_local_description"))?;
    // The server is ICE-lite and needs no candidates; waiting briefly just puts ours in the SDP.
    let _ = tokio::time::timeout(GATHER_TIMEOUT, gathered.recv()).await;
    let local = pc
        .local_description()
        .await
        .with_context(|| format!("offer {offer_id}: no local description"))?;

    let sig = shared
        .current_signaling()
        .with_context(|| format!("offer {offer_id}: no signaling connection to answer on"))?;
    sig.send_json(&json!({"type": "answer", "offer_id": offer_id, "sdp": local.sdp}))
        .await
        .with_context(|| format!("offer {offer_id}: sending answer"))?;
    shared.answered.send_modify(|v| *v = (*v).max(offer_id));
    Ok(())
}

async fn read_track(track: Arc<TrackRemote>, key: TrackKey, shared: Arc<Shared>) {
    while let Ok((pkt, _attrs)) = track.read_rtp().await {
        shared.record_packet(&key, &pkt.payload);
    }
    shared.reader_ended(&key);
}

/// Reads and discards RTCP arriving for a receiver (keeps the interceptors fed).
async fn drain_receiver_rtcp(receiver: Arc<RTCRtpReceiver>) {
    while receiver.read_rtcp().await.is_ok() {}
}

/// Reads RTCP arriving for a sender (lets the NACK responder and reports work) and counts it.
async fn drain_sender_rtcp(sender: Arc<RTCRtpSender>, shared: Arc<Shared>, video: bool) {
    while let Ok((pkts, _attrs)) = sender.read_rtcp().await {
        shared.record_rtcp(video, &pkts);
    }
}

/// A start value that differs between runs (RTP sequence numbers and timestamps).
fn start_value(marker: u8) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ (u32::from(marker) << 24)
}

async fn write_packet(
    track: &TrackLocalStaticRTP,
    pkt: &webrtc::rtp::packet::Packet,
    shared: &Shared,
    video: bool,
) {
    match track.write_rtp(pkt).await {
        Ok(0) => {} // not bound yet (negotiation or connection pending)
        Ok(_) => {
            let counter = if video {
                &shared.sent_video
            } else {
                &shared.sent_audio
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            shared.send_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn publish_audio(track: Arc<TrackLocalStaticRTP>, marker: u8, shared: Arc<Shared>) {
    let start = start_value(marker);
    let mut seq = start as u16;
    let mut timestamp = start.rotate_left(7);
    let mut counter: u32 = 0;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        counter = counter.wrapping_add(1);
        let pkt = webrtc::rtp::packet::Packet {
            header: webrtc::rtp::header::Header {
                version: 2,
                marker: counter == 1,
                sequence_number: seq,
                timestamp,
                ..Default::default()
            },
            payload: audio_payload(marker, counter),
        };
        write_packet(&track, &pkt, &shared, false).await;
        seq = seq.wrapping_add(1);
        timestamp = timestamp.wrapping_add(960);
    }
}

async fn publish_video(
    track: Arc<TrackLocalStaticRTP>,
    marker: u8,
    h264: bool,
    shared: Arc<Shared>,
) {
    let start = start_value(marker).rotate_left(13);
    let mut seq = start as u16;
    let mut timestamp = start.rotate_left(5);
    let mut counter: u32 = 0;
    let mut ticker = tokio::time::interval(Duration::from_micros(66_667));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        for first in [true, false] {
            counter = counter.wrapping_add(1);
            let pkt = webrtc::rtp::packet::Packet {
                header: webrtc::rtp::header::Header {
                    version: 2,
                    marker: !first, // last packet of the frame
                    sequence_number: seq,
                    timestamp,
                    ..Default::default()
                },
                payload: if h264 {
                    h264_payload(marker, counter, first)
                } else {
                    video_payload(marker, counter, first)
                },
            };
            write_packet(&track, &pkt, &shared, true).await;
            seq = seq.wrapping_add(1);
        }
        timestamp = timestamp.wrapping_add(6000);
    }
}
