//! One synthetic participant: a WSS signaling client and a str0m peer connection on its own UDP
//! socket, publishing timestamped Opus-sized and VP8-sized RTP and measuring what it receives.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use str0m::change::SdpOffer;
use str0m::config::DtlsCert;
use str0m::format::Codec;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig, RtcError};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::payload::{self, Kind, Stamp};
use crate::stats::PeerStats;

/// The largest RTP payload a video packet gets.
const MAX_VIDEO_PAYLOAD: usize = 1100;
const AUDIO_PAYLOAD: usize = 100;
const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
/// A keyframe at least this often, and whenever the SFU asks.
const KEYFRAME_INTERVAL: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct PeerSpec {
    pub index: u32,
    pub ws_url: String,
    pub token: String,
    pub audio: bool,
    pub video: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct MediaParams {
    pub video_kbps: u32,
    pub fps: u32,
}

/// Counters every peer adds to, for the progress line.
#[derive(Debug, Default)]
pub struct Live {
    pub connected: AtomicU64,
    /// Stamped media packets written by every publisher.
    pub sent: AtomicU64,
    /// Stamped media packets received by every subscriber.
    pub received: AtomicU64,
}

struct Sender {
    mid: Mid,
    pt: Pt,
    kind: Kind,
    seq: u64,
    rtp_time: u32,
}

pub async fn run_peer(
    spec: PeerSpec,
    media: MediaParams,
    epoch: Instant,
    stats: Arc<Mutex<PeerStats>>,
    live: Arc<Live>,
    mut stop: watch::Receiver<bool>,
) {
    if let Err(e) = run(&spec, media, epoch, &stats, &live, &mut stop).await {
        lock(&stats).error = Some(format!("peer {}: {e:#}", spec.index));
    }
}

pub(crate) fn lock(m: &Mutex<PeerStats>) -> std::sync::MutexGuard<'_, PeerStats> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn run(
    spec: &PeerSpec,
    media: MediaParams,
    epoch: Instant,
    stats: &Mutex<PeerStats>,
    live: &Live,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let tls = crate::tls::insecure_client_config()?;
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(15),
        tokio_tungstenite::connect_async_tls_with_config(
            &spec.ws_url,
            Some(ws_config()),
            false,
            Some(Connector::Rustls(tls)),
        ),
    )
    .await
    .context("signaling connect timed out")?
    .context("signaling connect")?;
    let (mut sink, mut stream) = ws.split();
    let join = json!({
        "type": "join", "v": 1, "token": spec.token, "name": format!("load {}", spec.index),
        "publish": {"audio": spec.audio, "video": spec.video},
    });
    sink.send(Message::text(join.to_string())).await?;

    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let local = socket.local_addr()?;
    let mut rtc = new_rtc();
    rtc.add_local_candidate(Candidate::host(local, "udp")?);

    let mut out = Outgoing::new(spec.index, media, epoch);
    let mut rtc_timeout = Instant::now();
    let mut buf = vec![0u8; 2048];
    let mut transmits = Vec::new();

    loop {
        let wake = out.next_due().map_or(rtc_timeout, |t| t.min(rtc_timeout));
        tokio::select! {
            _ = stop.changed() => break,
            msg = stream.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(f))) => bail!("server closed signaling: {f:?}"),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => bail!("signaling: {e}"),
                    None => bail!("signaling ended"),
                };
                let v: Value = serde_json::from_str(text.as_str()).context("server sent bad JSON")?;
                match v["type"].as_str() {
                    Some("joined") => {
                        lock(stats).join_steps.joined.get_or_insert(started.elapsed());
                    }
                    Some("offer") => {
                        let offer = SdpOffer::from_sdp_string(v["sdp"].as_str().unwrap_or_default())
                            .context("bad offer SDP")?;
                        let answer = rtc.sdp_api().accept_offer(offer).context("accepting offer")?;
                        let reply = json!({"type": "answer", "offer_id": v["offer_id"], "sdp": answer.to_sdp_string()});
                        sink.send(Message::text(reply.to_string())).await?;
                        out.update_senders(&mut rtc, v["sdp"].as_str().unwrap_or_default());
                        lock(stats).join_steps.offer.get_or_insert(started.elapsed());
                    }
                    Some("error") if v["fatal"] == true => bail!("server error {}", v["code"]),
                    Some("room_ended") => bail!("room ended"),
                    _ => {}
                }
            }
            r = socket.recv_from(&mut buf) => {
                let (n, from) = r?;
                let mut on_event = |e| on_peer_event(e, &mut out, started, epoch, stats, live);
                rtc_timeout = receive_batch(
                    &mut rtc, &socket, local, &mut buf, (n, from), &mut transmits, &mut on_event,
                )?;
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }

        let now = Instant::now();
        // Time only needs advancing when str0m's timer is due: a received packet's events are
        // drained right after it (a timeout round per packet was most of the generator's str0m
        // cost beyond decryption).
        if rtc_timeout <= now {
            rtc.handle_input(Input::Timeout(now))?;
        }
        let wrote = out.send_due(&mut rtc, now, stats, live);
        let mut on_event = |e| on_peer_event(e, &mut out, started, epoch, stats, live);
        rtc_timeout = drain(&mut rtc, now, wrote, &mut transmits, &mut on_event)?;
        for t in transmits.drain(..) {
            let _ = socket.send_to(&t.contents, t.destination).await;
        }
    }
    let _ = sink.send(Message::text(r#"{"type":"leave"}"#)).await;
    let _ = sink.close().await;
    Ok(())
}

/// Every synthetic participant's WebSocket settings. tungstenite's default read buffer is
/// 128 KiB, and it zeroes that much on every read attempt: the peers' loops poll their
/// signaling socket on every wake-up (every received datagram), so that was 11–17 % of the
/// generator's CPU (perf). Signaling messages are small; 4 KiB is plenty.
pub(crate) fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096)
}

/// Datagrams read back-to-back after a wake-up, beyond the one that woke the peer.
const RECV_BATCH: usize = 32;

/// What a huizhen peer does with str0m's events.
fn on_peer_event(
    e: Event,
    out: &mut Outgoing,
    started: Instant,
    epoch: Instant,
    stats: &Mutex<PeerStats>,
    live: &Live,
) {
    match e {
        Event::Connected => {
            out.start(Instant::now());
            let mut st = lock(stats);
            st.connected = true;
            st.join_steps.connected.get_or_insert(started.elapsed());
            drop(st);
            live.connected.fetch_add(1, Ordering::Relaxed);
        }
        Event::KeyframeRequest(_) => out.keyframe_requested(),
        Event::RtpPacket(pkt) => record_rtp(&pkt.payload, started, epoch, stats, live),
        _ => {}
    }
}

/// Polls str0m until it asks for a timeout, which it returns: datagrams to send are collected
/// in `transmits`, events go to `on_event`. str0m wants this after every input (a received
/// packet's event is only held until the next input). `inline_timeout`: media was just
/// written, and it leaves only after a timeout: serve one that is already due now rather than
/// at the next wake-up.
pub(crate) fn drain(
    rtc: &mut Rtc,
    now: Instant,
    mut inline_timeout: bool,
    transmits: &mut Vec<Transmit>,
    on_event: &mut impl FnMut(Event),
) -> Result<Instant, RtcError> {
    loop {
        match rtc.poll_output()? {
            Output::Timeout(t) if t <= now && inline_timeout => {
                inline_timeout = false;
                rtc.handle_input(Input::Timeout(now))?;
            }
            Output::Timeout(t) => return Ok(t),
            Output::Transmit(t) => transmits.push(t),
            Output::Event(e) => on_event(e),
        }
    }
}

/// The datagram that woke a peer (`buf[..first.0]`, from `first.1`) and whatever else is
/// already queued on its socket, each handed to str0m and drained at once (str0m holds a
/// packet's event only until the next input). Returns str0m's next timeout.
pub(crate) fn receive_batch(
    rtc: &mut Rtc,
    socket: &UdpSocket,
    local: SocketAddr,
    buf: &mut [u8],
    first: (usize, SocketAddr),
    transmits: &mut Vec<Transmit>,
    on_event: &mut impl FnMut(Event),
) -> Result<Instant, RtcError> {
    let now = Instant::now();
    let (len, from) = first;
    let mut timeout = receive_one(rtc, now, (&buf[..len], from, local), transmits, on_event)?;
    for _ in 0..RECV_BATCH {
        let Ok((len, from)) = socket.try_recv_from(buf) else {
            break;
        };
        timeout = receive_one(rtc, now, (&buf[..len], from, local), transmits, on_event)?;
    }
    Ok(timeout)
}

/// One datagram (contents, source, our address) into str0m, and its output drained.
fn receive_one(
    rtc: &mut Rtc,
    now: Instant,
    (data, from, local): (&[u8], SocketAddr, SocketAddr),
    transmits: &mut Vec<Transmit>,
    on_event: &mut impl FnMut(Event),
) -> Result<Instant, RtcError> {
    if let Ok(rx) = Receive::new(Protocol::Udp, from, local, data) {
        let _ = rtc.handle_input(Input::Receive(now, rx));
    }
    drain(rtc, now, false, transmits, on_event)
}

/// A str0m peer connection configured as every synthetic peer's is: RTP mode (the generator
/// writes and reads whole RTP payloads), Opus and VP8 only, full ICE (not ice-lite). All of them
/// share one DTLS certificate and one DTLS configuration: making either per peer cost the
/// generator's core about a millisecond per join (a key pair; dimpl's validation of its crypto
/// provider), time taken from sending and timing everyone else's media.
pub(crate) fn new_rtc() -> Rtc {
    static CERT: OnceLock<Option<DtlsCert>> = OnceLock::new();
    let provider = huizhen::sfu::crypto_provider();
    let cert = CERT.get_or_init(|| provider.dtls_provider.generate_certificate());
    let mut config = RtcConfig::new().set_crypto_provider(provider);
    if let Some(cert) = cert {
        config = config.set_dtls_cert(cert.clone());
    }
    config
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .build(Instant::now())
}

/// One received RTP payload: counted and timed if it carries a stamp; the first one ends the
/// join time.
pub(crate) fn record_rtp(
    payload: &[u8],
    started: Instant,
    epoch: Instant,
    stats: &Mutex<PeerStats>,
    live: &Live,
) {
    if let Some(stamp) = payload::decode(payload) {
        let mut st = lock(stats);
        if st.join_time.is_none() {
            st.join_time = Some(started.elapsed());
        }
        st.record(stamp, epoch.elapsed().as_nanos() as u64);
        live.received.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one participant publishes: its audio and video senders and their clocks. Whatever
/// server the generator targets, every publisher goes through this, so the offered load is
/// the same packet for packet.
pub(crate) struct Outgoing {
    publisher: u32,
    epoch: Instant,
    senders: Vec<Sender>,
    /// Sending starts when the peer connection connects.
    started: bool,
    force_keyframe: bool,
    last_keyframe: Instant,
    next_audio: Instant,
    next_video: Instant,
    frame_interval: Duration,
    frame_bytes: usize,
    video_rtp_step: u32,
}

impl Outgoing {
    pub(crate) fn new(publisher: u32, media: MediaParams, epoch: Instant) -> Self {
        let now = Instant::now();
        Self {
            publisher,
            epoch,
            senders: Vec::new(),
            started: false,
            force_keyframe: true,
            last_keyframe: now,
            next_audio: now,
            next_video: now,
            frame_interval: Duration::from_secs(1) / media.fps.max(1),
            frame_bytes: (media.video_kbps as usize * 1000 / 8) / media.fps.max(1) as usize,
            video_rtp_step: 90_000 / media.fps.max(1),
        }
    }

    /// The peer connection is up: send from now on.
    pub(crate) fn start(&mut self, now: Instant) {
        self.started = true;
        self.next_audio = now;
        self.next_video = now;
    }

    pub(crate) fn keyframe_requested(&mut self) {
        self.force_keyframe = true;
    }

    /// When the next packet is due, if sending.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        if !self.started {
            return None;
        }
        self.senders
            .iter()
            .map(|s| match s.kind {
                Kind::Audio => self.next_audio,
                Kind::Video => self.next_video,
            })
            .min()
    }

    /// Writes every packet due at `now`; true if it wrote any.
    pub(crate) fn send_due(
        &mut self,
        rtc: &mut Rtc,
        now: Instant,
        stats: &Mutex<PeerStats>,
        live: &Live,
    ) -> bool {
        if !self.started {
            return false;
        }
        let mut wrote = false;
        let now_ns = self.epoch.elapsed().as_nanos() as u64;
        for i in 0..self.senders.len() {
            match self.senders[i].kind {
                Kind::Audio if now >= self.next_audio => {
                    let s = &mut self.senders[i];
                    write(
                        rtc,
                        s,
                        self.publisher,
                        now,
                        now_ns,
                        None,
                        AUDIO_PAYLOAD,
                        false,
                    );
                    s.rtp_time = s.rtp_time.wrapping_add(960);
                    wrote = true;
                    lock(stats).sent_audio += 1;
                    live.sent.fetch_add(1, Ordering::Relaxed);
                }
                Kind::Video if now >= self.next_video => {
                    let keyframe =
                        self.force_keyframe || self.last_keyframe.elapsed() >= KEYFRAME_INTERVAL;
                    if keyframe {
                        self.force_keyframe = false;
                        self.last_keyframe = now;
                    }
                    let packets = self.frame_bytes.div_ceil(MAX_VIDEO_PAYLOAD).max(1);
                    let size = (self.frame_bytes / packets).max(payload::HEADER_LEN + 2);
                    let s = &mut self.senders[i];
                    for p in 0..packets {
                        let prefix = payload::vp8_prefix(p == 0, keyframe);
                        write(
                            rtc,
                            s,
                            self.publisher,
                            now,
                            now_ns,
                            Some(prefix),
                            size,
                            p + 1 == packets,
                        );
                    }
                    s.rtp_time = s.rtp_time.wrapping_add(self.video_rtp_step);
                    wrote = true;
                    lock(stats).sent_video += packets as u64;
                    live.sent.fetch_add(packets as u64, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        if now >= self.next_audio {
            self.next_audio += AUDIO_INTERVAL;
        }
        if now >= self.next_video {
            self.next_video += self.frame_interval;
        }
        wrote
    }

    /// After a negotiation: the m-lines of `sdp` (either side's) this peer sends on.
    pub(crate) fn update_senders(&mut self, rtc: &mut Rtc, sdp: &str) {
        for line in sdp.lines() {
            let Some(mid) = line.strip_prefix("a=mid:") else {
                continue;
            };
            let mid = Mid::from(mid.trim());
            if self.senders.iter().any(|s| s.mid == mid) {
                continue;
            }
            let Some(m) = rtc.media(mid) else {
                continue;
            };
            if !m.direction().is_sending() {
                continue;
            }
            let (kind, codec) = match m.kind() {
                MediaKind::Audio => (Kind::Audio, Codec::Opus),
                MediaKind::Video => (Kind::Video, Codec::Vp8),
            };
            let remote = m.remote_pts().to_vec();
            let Some(pt) = rtc
                .codec_config()
                .iter()
                .find(|p| p.spec().codec == codec && remote.contains(&p.pt()))
                .map(|p| p.pt())
            else {
                continue;
            };
            self.senders.push(Sender {
                mid,
                pt,
                kind,
                seq: 1,
                rtp_time: 0,
            });
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn write(
    rtc: &mut Rtc,
    s: &mut Sender,
    publisher: u32,
    now: Instant,
    now_ns: u64,
    prefix: Option<[u8; 2]>,
    size: usize,
    marker: bool,
) {
    let stamp = Stamp {
        kind: s.kind,
        publisher,
        seq: s.seq,
        sent_ns: now_ns,
    };
    let data = payload::encode(stamp, prefix, size);
    let mut api = rtc.direct_api();
    if let Some(tx) = api.stream_tx_by_mid(s.mid, None) {
        tx.write_rtp(
            RtpWrite::new(s.pt, s.seq.into(), s.rtp_time, now, data)
                .marker(marker || s.kind == Kind::Audio)
                .nackable(s.kind == Kind::Video),
        );
        s.seq += 1;
    }
}

/// A signaling-only participant: connects, joins, answers nothing, and stays until stopped.
pub async fn run_idle_session(
    spec: PeerSpec,
    stats: Arc<Mutex<PeerStats>>,
    live: Arc<Live>,
    mut stop: watch::Receiver<bool>,
) {
    let result: anyhow::Result<()> = async {
        let started = Instant::now();
        let tls = crate::tls::insecure_client_config()?;
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
            &spec.ws_url,
            Some(ws_config()),
            false,
            Some(Connector::Rustls(tls)),
        )
        .await
        .context("signaling connect")?;
        let (mut sink, mut stream) = ws.split();
        let join = json!({
            "type": "join", "v": 1, "token": spec.token, "name": format!("idle {}", spec.index),
            "publish": {"audio": false, "video": false},
        });
        sink.send(Message::text(join.to_string())).await?;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                msg = stream.next() => match msg {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                        match v["type"].as_str() {
                            Some("joined") => {
                                let mut st = lock(&stats);
                                st.connected = true;
                                st.join_time = Some(started.elapsed());
                                live.connected.fetch_add(1, Ordering::Relaxed);
                            }
                            Some("error") if v["fatal"] == true => bail!("server error {}", v["code"]),
                            _ => {}
                        }
                    }
                    Some(Ok(Message::Close(f))) => bail!("server closed signaling: {f:?}"),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => bail!("signaling: {e}"),
                    None => bail!("signaling ended"),
                },
            }
        }
        let _ = sink.send(Message::text(r#"{"type":"leave"}"#)).await;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        lock(&stats).error = Some(format!("session {}: {e:#}", spec.index));
    }
}
