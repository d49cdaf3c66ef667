//! One synthetic participant: a WSS signaling client and a str0m peer connection on its own UDP
//! socket, publishing timestamped Opus-sized and VP8-sized RTP and measuring what it receives.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::Message;

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

fn lock(m: &Mutex<PeerStats>) -> std::sync::MutexGuard<'_, PeerStats> {
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
            None,
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
    let mut rtc = RtcConfig::new()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);

    let mut senders: Vec<Sender> = Vec::new();
    let mut connected = false;
    let mut force_keyframe = true;
    let mut last_keyframe = Instant::now();
    let mut next_audio = Instant::now();
    let mut next_video = Instant::now();
    let frame_interval = Duration::from_secs(1) / media.fps.max(1);
    let frame_bytes = (media.video_kbps as usize * 1000 / 8) / media.fps.max(1) as usize;
    let mut rtc_timeout = Instant::now();
    let mut buf = vec![0u8; 2048];
    let mut server: Option<SocketAddr> = None;

    loop {
        let mut wake = rtc_timeout;
        if connected {
            for s in &senders {
                wake = wake.min(match s.kind {
                    Kind::Audio => next_audio,
                    Kind::Video => next_video,
                });
            }
        }
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
                    Some("offer") => {
                        let offer = SdpOffer::from_sdp_string(v["sdp"].as_str().unwrap_or_default())
                            .context("bad offer SDP")?;
                        let answer = rtc.sdp_api().accept_offer(offer).context("accepting offer")?;
                        let reply = json!({"type": "answer", "offer_id": v["offer_id"], "sdp": answer.to_sdp_string()});
                        sink.send(Message::text(reply.to_string())).await?;
                        update_senders(&mut rtc, v["sdp"].as_str().unwrap_or_default(), &mut senders);
                    }
                    Some("error") if v["fatal"] == true => bail!("server error {}", v["code"]),
                    Some("room_ended") => bail!("room ended"),
                    _ => {}
                }
            }
            r = socket.recv_from(&mut buf) => {
                let (n, from) = r?;
                server.get_or_insert(from);
                if let Ok(rx) = Receive::new(Protocol::Udp, from, local, &buf[..n]) {
                    let _ = rtc.handle_input(Input::Receive(Instant::now(), rx));
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }

        let now = Instant::now();
        rtc.handle_input(Input::Timeout(now))?;
        if connected {
            let now_ns = epoch.elapsed().as_nanos() as u64;
            for s in &mut senders {
                match s.kind {
                    Kind::Audio if now >= next_audio => {
                        write(
                            &mut rtc,
                            s,
                            spec.index,
                            now,
                            now_ns,
                            None,
                            AUDIO_PAYLOAD,
                            false,
                        );
                        s.rtp_time = s.rtp_time.wrapping_add(960);
                        lock(stats).sent_audio += 1;
                    }
                    Kind::Video if now >= next_video => {
                        let keyframe =
                            force_keyframe || last_keyframe.elapsed() >= KEYFRAME_INTERVAL;
                        if keyframe {
                            force_keyframe = false;
                            last_keyframe = now;
                        }
                        let packets = frame_bytes.div_ceil(MAX_VIDEO_PAYLOAD).max(1);
                        let size = (frame_bytes / packets).max(payload::HEADER_LEN + 2);
                        for i in 0..packets {
                            let prefix = payload::vp8_prefix(i == 0, keyframe);
                            write(
                                &mut rtc,
                                s,
                                spec.index,
                                now,
                                now_ns,
                                Some(prefix),
                                size,
                                i + 1 == packets,
                            );
                        }
                        s.rtp_time = s.rtp_time.wrapping_add(90_000 / media.fps.max(1));
                        lock(stats).sent_video += packets as u64;
                    }
                    _ => {}
                }
            }
            if now >= next_audio {
                next_audio += AUDIO_INTERVAL;
            }
            if now >= next_video {
                next_video += frame_interval;
            }
        }
        loop {
            match rtc.poll_output()? {
                Output::Timeout(t) => {
                    rtc_timeout = t;
                    break;
                }
                Output::Transmit(t) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Output::Event(e) => match e {
                    Event::Connected => {
                        connected = true;
                        next_audio = Instant::now();
                        next_video = Instant::now();
                        lock(stats).connected = true;
                        live.connected.fetch_add(1, Ordering::Relaxed);
                    }
                    Event::KeyframeRequest(_) => force_keyframe = true,
                    Event::RtpPacket(pkt) => {
                        if let Some(stamp) = payload::decode(&pkt.payload) {
                            let mut st = lock(stats);
                            if st.join_time.is_none() {
                                st.join_time = Some(started.elapsed());
                            }
                            st.record(stamp, epoch.elapsed().as_nanos() as u64);
                            live.received.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                },
            }
        }
    }
    let _ = sink.send(Message::text(r#"{"type":"leave"}"#)).await;
    let _ = sink.close().await;
    Ok(())
}

/// After an offer: the m-lines this peer sends on (the server's `recvonly` ones).
fn update_senders(rtc: &mut Rtc, sdp: &str, senders: &mut Vec<Sender>) {
    for line in sdp.lines() {
        let Some(mid) = line.strip_prefix("a=mid:") else {
            continue;
        };
        let mid = Mid::from(mid.trim());
        if senders.iter().any(|s| s.mid == mid) {
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
        senders.push(Sender {
            mid,
            pt,
            kind,
            seq: 1,
            rtp_time: 0,
        });
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
            None,
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
