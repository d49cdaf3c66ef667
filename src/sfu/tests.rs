//! The media core on a virtual clock: str0m clients (standing in for browsers) and the `Sfu`
//! exchange datagrams through in-memory queues, time advances in 1 ms steps, nothing touches a
//! socket. Deterministic, so it can check exact behaviour: who receives what, keyframe gating,
//! renegotiation when a participant leaves.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid};
use str0m::net::Receive;
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

use super::*;

const SERVER: &str = "127.0.0.1:40000";
/// Every 10th video frame is a keyframe; the rest are delta frames.
const KEYFRAME_EVERY: u64 = 10;

struct Client {
    id: ParticipantId,
    addr: SocketAddr,
    rtc: Rtc,
    marker: u8,
    /// mid → (publisher, kind) from the latest offer.
    tracks: HashMap<Mid, (ParticipantId, MediaKind)>,
    /// The latest offer's track list as sent (with each track's source).
    offered: Vec<TrackInfo>,
    /// Media packets received on each mid.
    per_mid: HashMap<Mid, u64>,
    /// Every mid any offer named.
    mids: Vec<Mid>,
    /// The SDP of the latest offer.
    offer_sdp: String,
    /// The latest offer's m-lines for the client's own microphone and camera.
    publish_mids: PublishMids,
    /// (publisher, kind) → frames received, and whether each began with the publisher's marker.
    received: HashMap<(ParticipantId, MediaKind), Vec<Frame>>,
    keyframe_requests: u32,
    /// The rid each keyframe request named (None: the m-line's only stream).
    keyframe_request_rids: Vec<Option<String>>,
    /// Publishes its camera as three simulcast layers (rids `q`, `h`, `f`), each frame tagged with
    /// `SIMULCAST_TAG | layer` after the marker. Its layers send a keyframe only every
    /// `SIMULCAST_KEYFRAME_EVERY` frames, or on the next frame after a request for that rid.
    simulcast: bool,
    /// Layers owed a keyframe (a request named their rid).
    keyframe_owed: [bool; 3],
    /// A simulcast layer it has stopped sending (as a browser does on a weak uplink).
    stop_layer: Option<usize>,
    /// Set for a client in RTP mode that writes its simulcast layers as raw RTP with VP8
    /// descriptors (str0m's frame-mode packetiser writes no PictureID): each layer's own
    /// (seq, RTP time, PictureID, TL0PICIDX).
    raw: Option<[(u16, u32, u16, u8); 3]>,
    frames_sent: u64,
    connected: bool,
    /// Its datagrams never reach the server (a network that blocks UDP); signaling still works.
    blocked: bool,
    /// Answers it still sends malformed before it answers properly.
    garble_answers: u32,
    /// Answers as if it could not send simulcast: it never sees the offer's rid lines.
    ignore_simulcast: bool,
}

/// A simulcast publisher's frames carry this | layer as their third byte.
const SIMULCAST_TAG: u8 = 0xE0;
/// A simulcast publisher's regular keyframe interval (frames): long, so that a switch is
/// seen to come from the keyframe request for the target layer.
const SIMULCAST_KEYFRAME_EVERY: u64 = 150;

impl Client {
    /// Each simulcast layer's frame, one packet each (sizes differ per layer, as resolutions
    /// do; under the MTU, so a frame is never split).
    fn write_layers(&mut self, now: Instant, mid: Mid, tick: u64) {
        for (l, layer) in Layer::ALL.iter().enumerate() {
            if self.stop_layer == Some(l) {
                continue;
            }
            let key = tick.is_multiple_of(SIMULCAST_KEYFRAME_EVERY) || self.keyframe_owed[l];
            self.keyframe_owed[l] = false;
            let rid = str0m::media::Rid::from(layer.rid());
            let frame = [
                if key { 0x10 } else { 0x11 },
                self.marker,
                SIMULCAST_TAG | l as u8,
            ];
            let filler = std::iter::repeat_n(self.marker, 200 + 300 * l);
            if let Some(raw) = self.raw.as_mut() {
                let (seq, ts, pid, tl0) = &mut raw[l];
                // RFC 7741 descriptor: X and S; I, L and T; a 15-bit PictureID; TL0PICIDX;
                // TID 0. Then the VP8 frame.
                let mut d = vec![0x90, 0xe0, 0x80 | (*pid >> 8) as u8, *pid as u8, *tl0, 0];
                d.extend(frame);
                d.extend(filler);
                let pt = self
                    .rtc
                    .codec_config()
                    .iter()
                    .find(|p| p.spec().codec == str0m::format::Codec::Vp8)
                    .unwrap()
                    .pt();
                let mut api = self.rtc.direct_api();
                let Some(tx) = api.stream_tx_by_mid(mid, Some(rid)) else {
                    continue;
                };
                let write = str0m::rtp::RtpWrite::new(pt, u64::from(*seq).into(), *ts, now, d);
                tx.write_rtp(write.marker(true));
                *seq = seq.wrapping_add(1);
                *ts = ts.wrapping_add(1800);
                *pid = (*pid + 1) & 0x7fff;
                *tl0 = tl0.wrapping_add(1);
                continue;
            }
            let Some(writer) = self.rtc.writer(mid) else {
                return;
            };
            let Some(pt) = writer.payload_params().next().map(|p| p.pt()) else {
                return;
            };
            let mut d = frame.to_vec();
            d.extend(filler);
            // Each layer its own time origin, as each simulcast encoder has.
            let time = MediaTime::new(1_000_000 * l as u64 + tick * 1800, Frequency::NINETY_KHZ);
            writer.rid(rid).write(pt, now, time, d).unwrap();
        }
    }

    /// One audio and one video packet on every m-line it sends.
    fn write_frames(&mut self, now: Instant) {
        let tick = self.frames_sent;
        let sending: Vec<(Mid, MediaKind)> = self
            .mids
            .iter()
            .filter_map(|mid| {
                let m = self.rtc.media(*mid)?;
                m.direction().is_sending().then(|| (*mid, m.kind()))
            })
            .collect();
        for (mid, kind) in sending {
            if kind == MediaKind::Video && self.simulcast {
                self.write_layers(now, mid, tick);
                continue;
            }
            let Some(writer) = self.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = writer.payload_params().next().map(|p| p.pt()) else {
                continue;
            };
            let (data, time) = match kind {
                MediaKind::Audio => (
                    vec![self.marker; 80],
                    MediaTime::new(tick * 960, Frequency::FORTY_EIGHT_KHZ),
                ),
                MediaKind::Video => {
                    // VP8 frame tag: bit 0 clear on keyframes. Then the marker.
                    let tag = if tick.is_multiple_of(KEYFRAME_EVERY) {
                        0x10
                    } else {
                        0x11
                    };
                    let mut d = vec![tag, self.marker];
                    d.extend(std::iter::repeat_n(self.marker, 500));
                    (d, MediaTime::new(tick * 1800, Frequency::NINETY_KHZ))
                }
            };
            writer.write(pt, now, time, data).unwrap();
        }
        self.frames_sent += 1;
    }
}

#[derive(Debug, Clone)]
struct Frame {
    marker: u8,
    keyframe: bool,
    /// The byte after the marker (a simulcast layer's tag).
    tag: u8,
    /// Whether the receiver saw no missing packet before it.
    contiguous: bool,
    /// VP8 PictureID and TL0PICIDX as the receiver extended them, when the frame had them.
    vp8: Option<(u64, u64)>,
    /// The first and last sequence numbers and the RTP time, as the receiver extended them.
    seq: (u64, u64),
    time: u64,
}

struct World {
    now: Instant,
    elapsed_ms: u64,
    sfu: Sfu,
    room: RoomId,
    clients: Vec<Client>,
    to_server: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Drop every n-th RTP datagram from this client to the server (a lossy uplink).
    uplink_loss: Option<(SocketAddr, u64)>,
    /// Events other than offers (which the world answers itself).
    events: Vec<SfuEvent>,
    rtp_seen: u64,
    rtp_dropped: u64,
    /// Connected clients send media (cleared to measure what quiet peer connections cost).
    publishing: bool,
    /// A NAT in front of some clients: their address → the address the server sees (a
    /// path change rebinds it).
    nat: HashMap<SocketAddr, SocketAddr>,
    /// The next client joins in RTP mode (see `join_simulcast_raw`).
    rtp_mode_next: bool,
    /// The next client negotiates redundant audio (RED) and sends it, as Chromium does.
    red_next: bool,
    /// A capped downlink: what the server sends this client passes a token bucket.
    downlink_cap: Option<(SocketAddr, TokenBucket)>,
    /// A lossy downlink without congestion: each datagram the server sends this client is
    /// lost at random, `permille` in a thousand, from a seeded generator (deterministic).
    downlink_loss: Option<RandomLoss>,
    /// Panics the core contained, in order. The world drives the core through
    /// `Sfu::contained` as the worker does; a test that does not expect a panic fails on one.
    contained: Vec<Contained>,
    expect_panics: bool,
}

/// A link's bottleneck, as a token bucket in front of a bounded queue: datagrams leave at
/// `rate` (with a small burst), wait in the queue while there are no tokens (the delay a
/// delay-based estimator sees), and are lost when the queue is full (drop-tail).
struct TokenBucket {
    /// Bytes per second.
    rate: u64,
    tokens: f64,
    burst: f64,
    last: Instant,
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    queue_limit: usize,
    dropped: u64,
}

/// Random loss on one client's downlink: the link has room, packets are lost anyway (radio, a
/// noisy line), which a loss-based estimator must not take for congestion.
struct RandomLoss {
    to: SocketAddr,
    permille: u64,
    /// xorshift64 state: seeded, so a run is the same every time.
    state: u64,
    seen: u64,
    lost: u64,
}

impl RandomLoss {
    fn new(to: SocketAddr, permille: u64, seed: u64) -> Self {
        Self {
            to,
            permille,
            state: seed.max(1),
            seen: 0,
            lost: 0,
        }
    }

    fn loses(&mut self) -> bool {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        self.seen += 1;
        let lost = x % 1000 < self.permille;
        self.lost += u64::from(lost);
        lost
    }
}

impl TokenBucket {
    fn new(bits_per_second: u64, now: Instant) -> Self {
        let rate = bits_per_second / 8;
        Self {
            rate,
            tokens: 1500.0,
            burst: 1500.0,
            last: now,
            queue: VecDeque::new(),
            queued_bytes: 0,
            // About 150 ms of the link: a modest router buffer.
            queue_limit: (rate as usize * 150 / 1000).max(3000),
            dropped: 0,
        }
    }

    fn push(&mut self, d: Vec<u8>) {
        if self.queued_bytes + d.len() > self.queue_limit {
            self.dropped += 1;
            return;
        }
        self.queued_bytes += d.len();
        self.queue.push_back(d);
    }

    /// What may leave by `now`.
    fn release(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate as f64).min(self.burst);
        let mut out = Vec::new();
        while let Some(d) = self.queue.front() {
            if (d.len() as f64) > self.tokens {
                break;
            }
            self.tokens -= d.len() as f64;
            self.queued_bytes -= d.len();
            out.extend(self.queue.pop_front());
        }
        out
    }
}

impl World {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            now,
            elapsed_ms: 0,
            sfu: Sfu::new(&[SERVER.parse().unwrap()], now),
            room: RoomId::generate(),
            clients: Vec::new(),
            to_server: VecDeque::new(),
            uplink_loss: None,
            events: Vec::new(),
            rtp_seen: 0,
            rtp_dropped: 0,
            publishing: true,
            nat: HashMap::new(),
            rtp_mode_next: false,
            red_next: false,
            downlink_cap: None,
            downlink_loss: None,
            contained: Vec::new(),
            expect_panics: false,
        }
    }

    /// Runs one unit of work on the core as the worker does, keeping what it contained.
    fn work<R>(&mut self, work: impl FnOnce(&mut Sfu) -> R) -> Option<R> {
        match self.sfu.contained(work) {
            Ok(r) => Some(r),
            Err(c) => {
                assert!(self.expect_panics, "the core panicked: {c:?}");
                self.contained.push(c);
                None
            }
        }
    }

    fn join(&mut self, marker: u8) -> ParticipantId {
        self.join_publishing(
            marker,
            PublishKinds {
                audio: true,
                video: true,
            },
        )
    }

    fn join_publishing(&mut self, marker: u8, publish: PublishKinds) -> ParticipantId {
        self.join_with(marker, publish, TransportOptions::default())
    }

    /// A participant publishing audio and a simulcast camera (three layers).
    fn join_simulcast(&mut self, marker: u8) -> ParticipantId {
        let id = self.join_with(
            marker,
            PublishKinds {
                audio: true,
                video: true,
            },
            TransportOptions {
                simulcast: true,
                ..TransportOptions::default()
            },
        );
        self.clients.last_mut().unwrap().simulcast = true;
        id
    }

    /// A participant publishing only a simulcast camera, written as raw RTP (an RTP-mode
    /// client) with VP8 PictureIDs and TL0PICIDXs: each layer starts its seq, time, PictureID
    /// (one near the 15-bit wrap) and TL0PICIDX elsewhere.
    fn join_simulcast_raw(&mut self, marker: u8) -> ParticipantId {
        self.rtp_mode_next = true;
        let id = self.join_with(
            marker,
            PublishKinds {
                audio: false,
                video: true,
            },
            TransportOptions {
                simulcast: true,
                ..TransportOptions::default()
            },
        );
        let c = self.clients.last_mut().unwrap();
        c.simulcast = true;
        c.raw = Some([
            (100, 5_000, 7, 0),
            (30_000, 2_000_000_000, 32_700, 250),
            (65_500, 4_294_000_000, 20_000, 100),
        ]);
        id
    }

    /// A simulcast publisher, then two subscribers whose bandwidth is estimated (each sending
    /// audio only, so that only the publisher's video is allocated).
    fn publisher_and_two_estimated_subscribers(&mut self) -> [ParticipantId; 3] {
        let publisher = self.join_simulcast(0x5C);
        let bwe = TransportOptions {
            bwe: true,
            ..TransportOptions::default()
        };
        let audio_only = PublishKinds {
            audio: true,
            video: false,
        };
        let first = self.join_with(0xA1, audio_only, bwe);
        let second = self.join_with(0xB2, audio_only, bwe);
        [publisher, first, second]
    }

    fn join_with(
        &mut self,
        marker: u8,
        publish: PublishKinds,
        options: TransportOptions,
    ) -> ParticipantId {
        let id = ParticipantId::generate();
        let addr: SocketAddr = format!("127.0.0.{}:5000", self.clients.len() + 2)
            .parse()
            .unwrap();
        let mut rtc = RtcConfig::new()
            .set_rtp_mode(std::mem::take(&mut self.rtp_mode_next))
            .clear_codecs()
            .enable_opus(true, std::mem::take(&mut self.red_next))
            .enable_vp8(true)
            .build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        self.clients.push(Client {
            id: id.clone(),
            addr,
            rtc,
            marker,
            tracks: HashMap::new(),
            offered: Vec::new(),
            per_mid: HashMap::new(),
            mids: Vec::new(),
            offer_sdp: String::new(),
            publish_mids: PublishMids::default(),
            received: HashMap::new(),
            keyframe_requests: 0,
            keyframe_request_rids: Vec::new(),
            simulcast: false,
            keyframe_owed: [false; 3],
            stop_layer: None,
            raw: None,
            frames_sent: 0,
            connected: false,
            blocked: false,
            garble_answers: 0,
            ignore_simulcast: false,
        });
        let (now, room, participant) = (self.now, self.room.clone(), id.clone());
        self.work(|sfu| {
            sfu.handle_command(
                now,
                SfuCommand::AddTransport {
                    room,
                    participant,
                    publish,
                    subscribe: true,
                    options,
                },
            );
        });
        id
    }

    fn set_layer(
        &mut self,
        subscriber: &ParticipantId,
        publisher: &ParticipantId,
        layer: Option<usize>,
    ) {
        self.sfu.handle_command(
            self.now,
            SfuCommand::SetLayer {
                subscriber: subscriber.clone(),
                publisher: publisher.clone(),
                layer: layer.map(|i| Layer::ALL[i]),
            },
        );
    }

    fn leave(&mut self, id: &ParticipantId) {
        self.clients.retain(|c| &c.id != id);
        self.sfu.handle_command(
            self.now,
            SfuCommand::RemoveTransport {
                participant: id.clone(),
            },
        );
    }

    fn client(&self, id: &ParticipantId) -> &Client {
        self.clients.iter().find(|c| &c.id == id).unwrap()
    }

    /// Runs the world for `ms` milliseconds, publishing media from connected clients.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.now += Duration::from_millis(1);
            self.elapsed_ms += 1;
            self.publish();
            self.exchange();
        }
    }

    fn publish(&mut self) {
        let now = self.now;
        // A 20 ms cadence for both kinds keeps the arithmetic simple.
        if !self.publishing || !self.elapsed_ms.is_multiple_of(20) {
            return;
        }
        for c in &mut self.clients {
            if c.connected {
                c.write_frames(now);
            }
        }
    }

    /// Moves every datagram and event until all sides are quiet for this instant.
    fn exchange(&mut self) {
        let server: SocketAddr = SERVER.parse().unwrap();
        for _ in 0..100 {
            let mut moved = false;
            // Clients → server.
            for c in &mut self.clients {
                c.rtc.handle_input(Input::Timeout(self.now)).unwrap();
                loop {
                    match c.rtc.poll_output().unwrap() {
                        Output::Timeout(_) => break,
                        Output::Transmit(t) if !c.blocked => {
                            let seen = self.nat.get(&c.addr).copied().unwrap_or(c.addr);
                            self.to_server.push_back((seen, t.contents.to_vec()))
                        }
                        Output::Transmit(_) => {}
                        Output::Event(e) => on_client_event(c, e),
                    }
                }
            }
            while let Some((from, data)) = self.to_server.pop_front() {
                moved = true;
                if let Some((lossy, every)) = self.uplink_loss
                    && lossy == from
                    && is_rtp(&data)
                {
                    self.rtp_seen += 1;
                    if self.rtp_seen.is_multiple_of(every) {
                        self.rtp_dropped += 1;
                        continue;
                    }
                }
                let now = self.now;
                self.work(|sfu| sfu.handle_receive(now, from, &data));
            }
            let now = self.now;
            self.work(|sfu| sfu.handle_timeout(now));
            // Server → clients (through the capped link where there is one).
            let mut arriving: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
            loop {
                let t = match self.work(Sfu::poll_transmit) {
                    Some(Some(t)) => t,
                    Some(None) => break,
                    None => continue,
                };
                match &mut self.downlink_cap {
                    Some((capped, bucket)) if *capped == t.destination => {
                        bucket.push(t.contents.to_vec());
                    }
                    _ => arriving.push((t.destination, t.contents.to_vec())),
                }
            }
            if let Some((capped, bucket)) = &mut self.downlink_cap {
                arriving.extend(bucket.release(self.now).into_iter().map(|d| (*capped, d)));
            }
            for (destination, contents) in arriving {
                if let Some(loss) = &mut self.downlink_loss
                    && loss.to == destination
                    && loss.loses()
                {
                    continue;
                }
                let nat = &self.nat;
                let seen = |c: &Client| nat.get(&c.addr).copied().unwrap_or(c.addr);
                if let Some(c) = self.clients.iter_mut().find(|c| seen(c) == destination) {
                    let input = Input::Receive(
                        self.now,
                        Receive::new(str0m::net::Protocol::Udp, server, c.addr, &contents).unwrap(),
                    );
                    c.rtc.handle_input(input).unwrap();
                    moved = true;
                }
            }
            loop {
                let ev = match self.work(Sfu::poll_event) {
                    Some(Some(ev)) => ev,
                    Some(None) => break,
                    None => continue,
                };
                let SfuEvent::Offer {
                    participant, offer, ..
                } = ev
                else {
                    self.events.push(ev);
                    continue;
                };
                // Offers to a participant with no client (it vanished) go unanswered.
                if let Some(c) = self.clients.iter_mut().find(|c| c.id == participant) {
                    c.tracks = offer
                        .tracks
                        .iter()
                        .map(|t| (Mid::from(t.mid.as_str()), (t.participant.clone(), t.kind)))
                        .collect();
                    c.offered.clone_from(&offer.tracks);
                    for line in offer.sdp.lines() {
                        if let Some(mid) = line.strip_prefix("a=mid:") {
                            let mid = Mid::from(mid.trim());
                            if !c.mids.contains(&mid) {
                                c.mids.push(mid);
                            }
                        }
                    }
                    c.offer_sdp.clone_from(&offer.sdp);
                    c.publish_mids.clone_from(&offer.publish_mids);
                    // A client that garbles its answers leaves the offer unapplied and sends
                    // nonsense instead, once per garbled answer it has left.
                    let text = if c.garble_answers > 0 {
                        c.garble_answers -= 1;
                        "v=0\r\nthis is not an answer\r\n".to_string()
                    } else {
                        let text = if c.ignore_simulcast {
                            let kept = offer.sdp.split_inclusive('\n').filter(|l| {
                                !l.starts_with("a=simulcast") && !l.starts_with("a=rid")
                            });
                            kept.collect::<String>()
                        } else {
                            offer.sdp.clone()
                        };
                        let sdp = SdpOffer::from_sdp_string(&text).unwrap();
                        let answer = c.rtc.sdp_api().accept_offer(sdp).unwrap();
                        answer.to_sdp_string()
                    };
                    let now = self.now;
                    self.work(|sfu| {
                        sfu.handle_command(
                            now,
                            SfuCommand::Answer {
                                participant,
                                offer_id: offer.offer_id,
                                answer: Answer::parse(&text),
                            },
                        );
                    });
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }
}

/// SRTP media (not RTCP, STUN or DTLS), by RFC 7983 demultiplexing and the RTCP type range.
fn is_rtp(d: &[u8]) -> bool {
    d.len() > 12 && (128..=191).contains(&d[0]) && !(200..=206).contains(&(d[1] & 0x7f | 0x80))
}

fn on_client_event(c: &mut Client, e: Event) {
    match e {
        Event::Connected => c.connected = true,
        Event::KeyframeRequest(req) => {
            c.keyframe_requests += 1;
            let rid = req.rid.map(|r| r.to_string());
            if let Some(l) = rid.as_deref().and_then(Layer::from_rid).map(Layer::index) {
                c.keyframe_owed[l] = true;
            }
            c.keyframe_request_rids.push(rid);
        }
        Event::MediaData(d) => {
            *c.per_mid.entry(d.mid).or_default() += 1;
            let Some((from, kind)) = c.tracks.get(&d.mid).cloned() else {
                panic!("media on an unannounced mid {:?}", d.mid);
            };
            let (marker, keyframe, tag) = match kind {
                MediaKind::Audio => (d.data[0], false, d.data[1]),
                MediaKind::Video => (d.data[1], d.data[0] & 1 == 0, d.data[2]),
            };
            let frame = Frame {
                marker,
                keyframe,
                tag,
                contiguous: d.contiguous,
                vp8: match &d.codec_extra {
                    str0m::format::CodecExtra::Vp8(e) => e.picture_id.zip(e.tl0_picture_id),
                    _ => None,
                },
                seq: (**d.seq_range.start(), **d.seq_range.end()),
                time: d.time.numer(),
            };
            c.received.entry((from, kind)).or_default().push(frame);
        }
        _ => {}
    }
}

fn frames<'a>(
    w: &'a World,
    rx: &ParticipantId,
    from: &ParticipantId,
    kind: MediaKind,
) -> &'a [Frame] {
    w.client(rx)
        .received
        .get(&(from.clone(), kind))
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

#[test]
fn everyone_receives_everyone_else_and_video_starts_on_a_keyframe() {
    let mut w = World::new();
    let ids: Vec<ParticipantId> = [0xA1, 0xB2, 0xC3].into_iter().map(|m| w.join(m)).collect();
    w.run(3000);
    for rx in &ids {
        for from in &ids {
            for kind in [MediaKind::Audio, MediaKind::Video] {
                let got = frames(&w, rx, from, kind);
                if rx == from {
                    assert!(got.is_empty(), "own media must not come back");
                    continue;
                }
                assert!(
                    got.len() > 20,
                    "{kind:?} {rx:?} <- {from:?}: {} frames",
                    got.len()
                );
                let marker = w.client(from).marker;
                assert!(got.iter().all(|f| f.marker == marker), "foreign payload");
                if kind == MediaKind::Video {
                    assert!(got[0].keyframe, "video must start on a keyframe");
                    assert!(got.iter().any(|f| !f.keyframe), "delta frames flow too");
                }
            }
        }
    }
    let stats = w.sfu.stats();
    assert!(
        stats.rtp_out >= stats.rtp_in,
        "3 participants: each packet goes out twice: {stats:?}"
    );
}

#[test]
fn offers_carry_the_header_extensions_in_use_and_not_abs_send_time() {
    let mut w = World::new();
    let ids: Vec<ParticipantId> = [0xA1, 0xB2].into_iter().map(|m| w.join(m)).collect();
    w.run(1000);
    for id in &ids {
        let sdp = &w.client(id).offer_sdp;
        let extmaps: Vec<&str> = sdp.lines().filter(|l| l.starts_with("a=extmap:")).collect();
        for needed in [
            "urn:ietf:params:rtp-hdrext:sdes:mid",
            "transport-wide-cc-extensions-01",
            "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            "urn:3gpp:video-orientation",
        ] {
            assert!(
                extmaps.iter().any(|l| l.contains(needed)),
                "{needed} missing from {extmaps:?}"
            );
        }
        assert!(
            !extmaps.iter().any(|l| l.contains("abs-send-time")),
            "abs-send-time offered: {extmaps:?}"
        );
    }
    // Media still flows both ways without it.
    for (rx, from) in [(&ids[0], &ids[1]), (&ids[1], &ids[0])] {
        assert!(!frames(&w, rx, from, MediaKind::Video).is_empty());
        assert!(!frames(&w, rx, from, MediaKind::Audio).is_empty());
    }
}

#[test]
fn a_malformed_answer_is_refused_and_a_fresh_offer_follows() {
    let mut w = World::new();
    let a = w.join(0xA1);
    // B garbles its first answer (to the offer that sets up its peer connection) and the one
    // after it.
    let b = w.join(0xB2);
    w.clients.last_mut().unwrap().garble_answers = 2;
    w.run(3000);
    let failed = w
        .events
        .iter()
        .filter(|e| {
            matches!(e, SfuEvent::AnswerFailed { participant, error: AnswerError::BadSdp(_), .. }
                if *participant == b)
        })
        .count();
    assert_eq!(
        failed, 2,
        "each malformed answer is refused: {:?}",
        w.events
    );
    // Each refusal spent its offer and a fresh one followed, so B ends up connected and both
    // directions flow.
    assert!(w.client(&b).connected, "B never connected");
    for kind in [MediaKind::Audio, MediaKind::Video] {
        assert!(
            !frames(&w, &a, &b, kind).is_empty(),
            "A gets no {kind:?} from B"
        );
        assert!(
            !frames(&w, &b, &a, kind).is_empty(),
            "B gets no {kind:?} from A"
        );
    }
}

#[test]
fn timers_stay_bounded_and_idle_transports_are_never_due() {
    let mut w = World::new();
    // A hundred observers in rooms where nobody publishes: no peer connection, so never due.
    for _ in 0..100 {
        w.sfu.handle_command(
            w.now,
            SfuCommand::AddTransport {
                room: RoomId::generate(),
                participant: ParticipantId::generate(),
                publish: PublishKinds::default(),
                subscribe: true,
                options: TransportOptions::default(),
            },
        );
    }
    assert!(w.sfu.next_timeout().is_none(), "nothing to wake for");
    for m in [1, 2, 3] {
        w.join(m);
    }
    w.run(5000);
    assert!(w.clients.iter().all(|c| c.connected));
    let next = w.sfu.next_timeout().expect("active transports have timers");
    assert!(
        next > w.now - Duration::from_millis(1),
        "nothing overdue after a turn"
    );
    // Three active transports re-queued thousands of times: stale entries are dropped, not
    // kept (the bound is per transport, with a floor).
    assert!(
        w.sfu.timers.len() <= 103 * 4 + 256,
        "{}",
        w.sfu.timers.len()
    );
}

#[test]
fn datagrams_from_unknown_addresses_reach_no_transport_unless_an_ice_check_names_one() {
    let mut w = World::new();
    for m in [1, 2, 3] {
        w.join(m);
    }
    w.run(1000);
    assert!(w.clients.iter().all(|c| c.connected));
    let stranger: SocketAddr = "127.0.0.99:6000".parse().unwrap();
    let before = w.sfu.stats().datagrams_unrouted;
    // Junk, an RTP-looking header, and a STUN check naming a ufrag nobody has.
    // Binding request, 12 bytes of attributes, magic cookie, transaction id; USERNAME.
    let mut stun = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xA4, 0x42];
    stun.extend_from_slice(&[9; 12]);
    stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x08]);
    stun.extend_from_slice(b"nobody:x");
    for d in [
        &[0xde, 0xad, 0xbe, 0xef][..],
        &[0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 9],
        &stun,
    ] {
        w.sfu.handle_receive(w.now, stranger, d);
    }
    // A participant's own media, sent again from an address the SFU has not seen.
    let (from, rtp) = {
        let c = &mut w.clients[0];
        c.write_frames(w.now);
        c.rtc.handle_input(Input::Timeout(w.now)).unwrap();
        let mut rtp = None;
        while let Ok(out) = c.rtc.poll_output() {
            match out {
                Output::Transmit(t) if is_rtp(&t.contents) => rtp = Some(t.contents.to_vec()),
                Output::Timeout(_) => break,
                _ => {}
            }
        }
        (c.addr, rtp.expect("a media packet"))
    };
    assert_ne!(from, stranger);
    w.sfu.handle_receive(w.now, stranger, &rtp);
    assert_eq!(w.sfu.stats().datagrams_unrouted - before, 4);
    // Nothing was disturbed.
    let rtp_out = w.sfu.stats().rtp_out;
    w.run(500);
    assert!(w.sfu.stats().rtp_out > rtp_out);
}

#[test]
fn a_leaver_is_renegotiated_away_and_the_others_keep_flowing() {
    let mut w = World::new();
    let a = w.join(0x11);
    let b = w.join(0x22);
    let c = w.join(0x33);
    w.run(2000);
    let before = frames(&w, &a, &c, MediaKind::Video).len();
    w.leave(&b);
    w.run(2000);
    for rx in [&a, &c] {
        let client = w.client(rx);
        assert!(
            client.tracks.values().all(|(from, _)| from != &b),
            "the leaver's m-lines are gone from the latest offer"
        );
    }
    let from_b = frames(&w, &a, &b, MediaKind::Video).len();
    w.run(500);
    assert_eq!(
        frames(&w, &a, &b, MediaKind::Video).len(),
        from_b,
        "nothing from the leaver"
    );
    assert!(frames(&w, &a, &c, MediaKind::Video).len() > before + 20);
    assert_eq!(w.sfu.transport_count(), 2);
}

#[test]
fn a_blocked_stream_stops_for_one_subscriber_and_comes_back_on_a_keyframe() {
    let mut w = World::new();
    let doctor = w.join(0x61);
    let patient = w.join(0x62);
    let specialist = w.join(0x63);
    w.run(2000);
    // A huddle: the patient is sent nothing of the doctor's; the specialist still is.
    let block = |w: &mut World, blocked: Vec<(ParticipantId, MediaKind)>| {
        let now = w.now;
        w.sfu.handle_command(
            now,
            SfuCommand::Block {
                participant: patient.clone(),
                blocked,
            },
        );
    };
    block(
        &mut w,
        vec![
            (doctor.clone(), MediaKind::Audio),
            (doctor.clone(), MediaKind::Video),
        ],
    );
    w.run(100); // what was in flight
    let counts = |w: &World| {
        [MediaKind::Audio, MediaKind::Video].map(|k| {
            (
                frames(w, &patient, &doctor, k).len(),
                frames(w, &specialist, &doctor, k).len(),
                frames(w, &patient, &specialist, k).len(),
            )
        })
    };
    let before = counts(&w);
    w.run(1500);
    let during = counts(&w);
    for (b, d) in before.iter().zip(&during) {
        assert_eq!(
            b.0, d.0,
            "the patient was sent the doctor's media during the block"
        );
        assert!(d.1 > b.1 + 20, "the specialist still receives the doctor");
        assert!(d.2 > b.2 + 20, "the patient still receives the specialist");
    }
    // Unblocked: audio at once, video from a keyframe.
    block(&mut w, Vec::new());
    w.run(1500);
    let video = frames(&w, &patient, &doctor, MediaKind::Video);
    let resumed = &video[during[1].0..];
    assert!(resumed.len() > 20, "video comes back: {}", resumed.len());
    assert!(resumed[0].keyframe, "and starts on a keyframe");
    assert!(frames(&w, &patient, &doctor, MediaKind::Audio).len() > during[0].0 + 20);
}

#[test]
fn a_late_joiner_waits_for_a_keyframe_and_asks_for_one() {
    let mut w = World::new();
    let a = w.join(0x44);
    w.run(1000);
    let requests_before = w.client(&a).keyframe_requests;
    let late = w.join(0x55);
    w.run(1500);
    let got = frames(&w, &late, &a, MediaKind::Video);
    assert!(!got.is_empty());
    assert!(got[0].keyframe, "first forwarded frame is a keyframe");
    assert!(
        w.client(&a).keyframe_requests > requests_before,
        "the SFU asked the publisher"
    );
}

#[test]
fn uplink_loss_is_repaired_by_nack_and_retransmission() {
    let mut w = World::new();
    let a = w.join(0x66);
    let b = w.join(0x77);
    w.run(1000);
    let addr = w.client(&a).addr;
    let sent_before = w.client(&a).frames_sent;
    let got_before = frames(&w, &b, &a, MediaKind::Video).len() as u64;
    // Lose one in 20 of a's media packets on the way to the server.
    w.uplink_loss = Some((addr, 20));
    w.run(4000);
    w.uplink_loss = None;
    w.run(500);
    assert!(
        w.rtp_dropped > 10,
        "the link really lost packets: {}",
        w.rtp_dropped
    );
    let sent = w.client(&a).frames_sent - sent_before;
    let got = frames(&w, &b, &a, MediaKind::Video).len() as u64 - got_before;
    // Every lost video packet was asked for again and arrived: no frame is missing.
    assert!(got + 2 >= sent, "sent {sent} video frames, {got} arrived");
}

#[test]
fn silent_peers_fail_with_the_reason() {
    let mut w = World::new();
    let a = w.join(0x88);
    let b = w.join(0x99);
    w.run(1000);
    // A participant whose browser answers over signaling but never reaches the media port.
    let ghost = w.join(0x77);
    w.clients
        .iter_mut()
        .find(|c| c.id == ghost)
        .unwrap()
        .blocked = true;
    // An observer alone in a room: nothing to negotiate, so nothing to time out.
    let idle = ParticipantId::generate();
    w.sfu.handle_command(
        w.now,
        SfuCommand::AddTransport {
            room: RoomId::generate(),
            participant: idle,
            publish: PublishKinds::default(),
            subscribe: true,
            options: TransportOptions::default(),
        },
    );
    // b's network goes away without a word.
    w.clients.retain(|c| c.id != b);
    w.run(40_000);
    let failures: Vec<(ParticipantId, FailReason)> = w
        .events
        .iter()
        .filter_map(|ev| match ev {
            SfuEvent::Failed {
                participant,
                reason,
                ..
            } => Some((participant.clone(), *reason)),
            _ => None,
        })
        .collect();
    assert!(
        failures.contains(&(ghost, FailReason::NeverConnected)),
        "{failures:?}"
    );
    assert!(failures.contains(&(b, FailReason::Lost)), "{failures:?}");
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert_eq!(
        w.sfu.transport_count(),
        2,
        "a and the idle observer are left"
    );
    assert!(w.client(&a).connected);
}

#[test]
fn a_forwarded_packet_leaves_in_the_turn_it_arrived() {
    // Latency: a packet must not wait for a timer at the server. Deliver one frame of a's and
    // poll the SFU without ever calling `handle_timeout`.
    let mut w = World::new();
    let a = w.join(0x12);
    w.join(0x34);
    w.join(0x56);
    w.run(1000);
    w.now += Duration::from_millis(1);
    let now = w.now;
    let c = w.clients.iter_mut().find(|c| c.id == a).unwrap();
    let from = c.addr;
    c.write_frames(now);
    c.rtc.handle_input(Input::Timeout(now)).unwrap();
    let mut sent = Vec::new();
    while let Ok(out) = c.rtc.poll_output() {
        match out {
            Output::Transmit(t) if is_rtp(&t.contents) => sent.push(t.contents.to_vec()),
            Output::Timeout(_) => break,
            _ => {}
        }
    }
    assert_eq!(sent.len(), 2, "one audio and one video packet");
    for d in &sent {
        w.sfu.handle_receive(now, from, d);
    }
    let mut forwarded = 0;
    while let Some(t) = w.sfu.poll_transmit() {
        if is_rtp(&t.contents) {
            assert_ne!(t.destination, from, "nothing goes back to the sender");
            forwarded += 1;
        }
    }
    assert_eq!(
        forwarded, 4,
        "both packets to both other participants, at once"
    );
}

#[test]
fn an_observer_has_no_peer_connection_until_there_is_media_to_receive() {
    let mut w = World::new();
    // Joined as an observer (publishes nothing) in a room where nobody publishes yet: nothing to
    // negotiate, so no offer and no `Rtc` (what an idle participant costs the server).
    let observer = ParticipantId::generate();
    w.sfu.handle_command(
        w.now,
        SfuCommand::AddTransport {
            room: w.room.clone(),
            participant: observer.clone(),
            publish: PublishKinds::default(),
            subscribe: true,
            options: TransportOptions::default(),
        },
    );
    w.run(200);
    assert!(w.sfu.transport(&observer).unwrap().rtc().is_none());
    assert!(
        w.sfu
            .next_timeout()
            .is_none_or(|t| t > w.now + Duration::from_secs(60))
    );
    // Someone publishes: the observer now has tracks to receive, so a peer connection and an
    // offer (which nobody answers here: the observer has no client in this world).
    w.join(0x31);
    w.run(500);
    assert!(w.sfu.transport(&observer).unwrap().rtc().is_some());
    assert_eq!(
        w.sfu.stats().consumers,
        2,
        "audio and video for the observer"
    );
}

/// Not a check: the workload for counting what forwarding costs, instruction by instruction.
/// `N` participants (default 3, `HUIZHEN_PROFILE_PARTICIPANTS`) all publish audio and video for
/// `HUIZHEN_PROFILE_SECONDS` (default 10) of virtual time, beside `HUIZHEN_PROFILE_IDLE` idle
/// participants (default 0); with `HUIZHEN_PROFILE_SILENT=1` nobody sends media after connecting
/// (what connected but quiet peer connections cost); with `HUIZHEN_PROFILE_SIMULCAST=1` each
/// publishes its camera in three simulcast layers with the bandwidth estimator on, as the
/// server sets up a browser where `media.simulcast` is on (each subscriber is sent one layer).
/// Run under callgrind with collection
/// limited to the SFU's entry points (loadtests/README.md, "Instructions per forwarded packet"):
/// repeatable to the instruction, so a change to the media path is judged without the noise of
/// a shared machine.
#[test]
#[ignore = "a profiling workload, run by hand under callgrind"]
fn forwarding_profile_workload() {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let participants = var("HUIZHEN_PROFILE_PARTICIPANTS", 3);
    let seconds = var("HUIZHEN_PROFILE_SECONDS", 10);
    let idle = var("HUIZHEN_PROFILE_IDLE", 0);
    let silent = var("HUIZHEN_PROFILE_SILENT", 0) == 1;
    let simulcast = var("HUIZHEN_PROFILE_SIMULCAST", 0) == 1;
    let mut w = World::new();
    // Idle participants beside the active room: observers in rooms where nobody publishes
    // (signaling sessions with no peer connection), as a busy server has thousands of.
    let mut idle_room = RoomId::generate();
    for i in 0..idle {
        if i % 16 == 0 {
            idle_room = RoomId::generate();
        }
        w.sfu.handle_command(
            w.now,
            SfuCommand::AddTransport {
                room: idle_room.clone(),
                participant: ParticipantId::generate(),
                publish: PublishKinds::default(),
                subscribe: true,
                options: TransportOptions::default(),
            },
        );
    }
    for i in 0..participants {
        if simulcast {
            w.join_with(
                i as u8,
                PublishKinds {
                    audio: true,
                    video: true,
                },
                TransportOptions {
                    simulcast: true,
                    bwe: true,
                    ..TransportOptions::default()
                },
            );
            w.clients.last_mut().unwrap().simulcast = true;
        } else {
            w.join(i as u8);
        }
    }
    w.run(1000);
    assert!(w.clients.iter().all(|c| c.connected));
    w.publishing = !silent;
    let before = w.sfu.stats();
    w.run(seconds * 1000);
    let after = w.sfu.stats();
    println!(
        "forwarding_profile_workload: {participants} participants{} beside {idle} idle, {seconds} s: {} RTP in, {} RTP out",
        if simulcast { " (simulcast)" } else { "" },
        after.rtp_in - before.rtp_in,
        after.rtp_out - before.rtp_out
    );
}

/// Adds a participant publishing audio (and `video`) and receiving, and returns the offer the
/// core makes them.
fn first_offer(sfu: &mut Sfu, now: Instant, video: bool) -> OfferOut {
    sfu.handle_command(
        now,
        SfuCommand::AddTransport {
            room: RoomId::generate(),
            participant: ParticipantId::generate(),
            publish: PublishKinds { audio: true, video },
            subscribe: true,
            options: TransportOptions::default(),
        },
    );
    let Some(SfuEvent::Offer { offer, .. }) = sfu.poll_event() else {
        panic!("an offer");
    };
    offer
}

/// Audio is offered as Opus with in-band FEC and DTX (each receiver's fmtp is what its sender
/// encodes for): a lost packet is rebuilt from the next, and silence costs almost nothing on a
/// weak uplink.
#[test]
fn opus_is_offered_with_in_band_fec_and_dtx() {
    let now = Instant::now();
    let mut sfu = Sfu::new(&[SERVER.parse().unwrap()], now);
    let offer = first_offer(&mut sfu, now, true);
    assert!(
        offer.sdp.contains("a=rtpmap:111 opus/48000/2"),
        "{}",
        offer.sdp
    );
    let fmtp = offer
        .sdp
        .lines()
        .find(|l| l.starts_with("a=fmtp:111 "))
        .unwrap_or_else(|| panic!("no fmtp for Opus: {}", offer.sdp));
    for param in ["useinbandfec=1", "usedtx=1", "minptime=10"] {
        assert!(fmtp.contains(param), "{param} missing: {fmtp}");
    }
}

/// With a TCP address, every offer carries a passive TCP host candidate after the UDP one (at a
/// lower priority), and a ufrag that names the worker; a TCP frame nobody can own is refused,
/// so the I/O layer closes its connection, while an early check for a live transport is told
/// apart, so the I/O layer keeps it.
#[test]
fn offers_passive_tcp_candidates_and_ufrags_naming_the_worker() {
    let now = Instant::now();
    let tcp: SocketAddr = "127.0.0.1:443".parse().unwrap();
    let mut sfu = Sfu::with_addrs(
        &LocalAddrs {
            udp: vec![SERVER.parse().unwrap()],
            tcp: vec![tcp],
            worker: 7,
        },
        now,
    );
    let offer = first_offer(&mut sfu, now, false);
    let candidates: Vec<&str> = offer
        .sdp
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert_eq!(candidates.len(), 2, "{candidates:?}");
    assert!(candidates[0].contains(" udp ") && candidates[0].contains(" 40000 typ host"));
    assert!(
        candidates[1].contains(" tcp ")
            && candidates[1].contains(" 127.0.0.1 443 typ host tcptype passive"),
        "{candidates:?}"
    );
    let priority = |c: &str| c.split(' ').nth(3).unwrap().parse::<u32>().unwrap();
    assert!(
        priority(candidates[0]) > priority(candidates[1]),
        "UDP first"
    );
    let ufrag = offer
        .sdp
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .unwrap();
    assert_eq!(worker_of_ufrag(ufrag), Some(7), "{ufrag}");

    // Not STUN, from a connection nobody owns; and STUN naming no transport.
    let stranger: SocketAddr = "192.0.2.9:50000".parse().unwrap();
    assert_eq!(
        sfu.handle_receive_tcp(now, stranger, &[0x80, 0, 0, 1]),
        Routed::Nobody
    );
    let mut stun = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xA4, 0x42];
    stun.extend_from_slice(&[7; 12]);
    stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x07]);
    stun.extend_from_slice(b"07xx:pp\0");
    assert_eq!(sfu.handle_receive_tcp(now, stranger, &stun), Routed::Nobody);
    // A well-formed check naming the live transport, signed with its password, from a peer
    // whose credentials it does not know (as after an ICE restart whose answer, with the new
    // ones, is still on its way): early, so its connection is kept for the next one.
    answer_first_offer(&mut sfu, now, &offer);
    let pwd = offer
        .sdp
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-pwd:"))
        .unwrap()
        .trim();
    let check = binding_request(&format!("{}:restarted", ufrag.trim()), pwd);
    assert_eq!(sfu.handle_receive_tcp(now, stranger, &check), Routed::Early);
    // A server without ICE-TCP refuses every TCP frame.
    let mut udp_only = Sfu::new(&[SERVER.parse().unwrap()], now);
    assert_eq!(
        udp_only.handle_receive_tcp(now, stranger, &stun),
        Routed::Nobody
    );
}

/// The one transport of `sfu` answers `offer` (its first) from a fresh str0m client: the
/// participant, and the client, for what follows.
fn answer_first_offer(sfu: &mut Sfu, now: Instant, offer: &OfferOut) -> (ParticipantId, Rtc) {
    let participant = sfu
        .transports
        .iter()
        .map(|(_, t)| t.id.clone())
        .next()
        .unwrap();
    let mut client = RtcConfig::new().build(now);
    let answer = client
        .sdp_api()
        .accept_offer(SdpOffer::from_sdp_string(&offer.sdp).unwrap())
        .unwrap();
    sfu.handle_command(
        now,
        SfuCommand::Answer {
            participant: participant.clone(),
            offer_id: offer.offer_id,
            answer: Answer::parse(&answer.to_sdp_string()),
        },
    );
    (participant, client)
}

/// An ICE binding request from the controlling side naming `username`, signed with `pwd`.
fn binding_request(username: &str, pwd: &str) -> Vec<u8> {
    let check = str0m::ice::StunMessage::binding_request(
        username,
        str0m::ice::TransId::new(),
        true,
        7,
        1,
        false,
    );
    let mut buf = vec![0u8; 1500];
    let hmac_sha1 = |key: &[u8], parts: &[&[u8]]| -> [u8; 20] {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(key).unwrap();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    };
    let n = check
        .to_bytes(Some(pwd.as_bytes()), &mut buf, hmac_sha1)
        .unwrap();
    buf.truncate(n);
    buf
}

/// The value of the SDP attribute `a=<name>:`.
fn sdp_attr<'a>(sdp: &'a str, name: &str) -> &'a str {
    let prefix = format!("a={name}:");
    sdp.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {name} in {sdp}"))
        .trim()
}

/// A restart's first check can overtake its answer: the peer checks the restart's new ufrag
/// as soon as it has answered, over a new TCP connection (a phone that moved to a network
/// without UDP), while its answer still travels through signaling and the room. That check
/// is early (its connection is kept), not a stranger's (closed): the ufrag the restart
/// offered routes from the moment it is offered. Once the answer is applied the peer's next
/// check is taken; an answer that fails retires the offered ufrag again.
#[test]
fn a_restarts_check_that_overtakes_its_answer_keeps_its_tcp_connection() {
    let now = Instant::now();
    let mut sfu = Sfu::with_addrs(
        &LocalAddrs {
            udp: vec![SERVER.parse().unwrap()],
            tcp: vec!["127.0.0.1:443".parse().unwrap()],
            worker: 3,
        },
        now,
    );
    let offer = first_offer(&mut sfu, now, false);
    let (participant, mut client) = answer_first_offer(&mut sfu, now, &offer);
    let restart_offer = |sfu: &mut Sfu| {
        sfu.handle_command(
            now,
            SfuCommand::RestartIce {
                participant: participant.clone(),
            },
        );
        loop {
            match sfu.poll_event() {
                Some(SfuEvent::Offer { offer, .. }) => break offer,
                Some(_) => continue,
                None => panic!("the restart is offered"),
            }
        }
    };
    let restart = restart_offer(&mut sfu);
    let ufrag = sdp_attr(&restart.sdp, "ice-ufrag").to_owned();
    let pwd = sdp_attr(&restart.sdp, "ice-pwd").to_owned();
    assert_ne!(ufrag, sdp_attr(&offer.sdp, "ice-ufrag"), "new credentials");
    let answer = client
        .sdp_api()
        .accept_offer(SdpOffer::from_sdp_string(&restart.sdp).unwrap())
        .unwrap()
        .to_sdp_string();
    let username = format!("{ufrag}:{}", sdp_attr(&answer, "ice-ufrag"));
    let moved: SocketAddr = "198.51.100.7:41000".parse().unwrap();
    assert_eq!(
        sfu.handle_receive_tcp(now, moved, &binding_request(&username, &pwd)),
        Routed::Early,
        "a check ahead of its answer keeps its connection"
    );
    sfu.handle_command(
        now,
        SfuCommand::Answer {
            participant: participant.clone(),
            offer_id: restart.offer_id,
            answer: Answer::parse(&answer),
        },
    );
    assert_eq!(
        sfu.handle_receive_tcp(now, moved, &binding_request(&username, &pwd)),
        Routed::Taken,
        "once the answer is applied"
    );

    // A restart whose answer fails: its ufrag routes nothing any more (the next offer
    // restarts with new credentials).
    let failed = restart_offer(&mut sfu);
    let failed_ufrag = sdp_attr(&failed.sdp, "ice-ufrag").to_owned();
    assert!(
        sfu.by_ufrag.contains_key(&failed_ufrag),
        "offered, so routed"
    );
    sfu.handle_command(
        now,
        SfuCommand::Answer {
            participant: participant.clone(),
            offer_id: failed.offer_id,
            answer: Answer::parse("not an answer"),
        },
    );
    assert!(!sfu.by_ufrag.contains_key(&failed_ufrag));
    assert!(
        sfu.by_ufrag.contains_key(&ufrag),
        "the live one still routes"
    );
    // Leaving forgets every ufrag, an offered one too.
    let again = loop {
        match sfu.poll_event() {
            Some(SfuEvent::Offer { offer, .. }) => break offer,
            Some(_) => continue,
            None => panic!("the failed answer's changes are offered again"),
        }
    };
    assert!(sfu.by_ufrag.contains_key(sdp_attr(&again.sdp, "ice-ufrag")));
    sfu.handle_command(now, SfuCommand::RemoveTransport { participant });
    assert!(sfu.by_ufrag.is_empty(), "{:?}", sfu.by_ufrag.keys());
}

/// The mid of `from`'s shared screen in `rx`'s latest offer.
fn screen_mid(w: &World, rx: &ParticipantId, from: &ParticipantId) -> Option<Mid> {
    w.client(rx)
        .offered
        .iter()
        .find(|t| &t.participant == from && t.source == TrackSource::Screen)
        .map(|t| Mid::from(t.mid.as_str()))
}

#[test]
fn a_screen_share_is_renegotiated_in_and_out_and_leaves_nothing_behind() {
    let mut w = World::new();
    let doctor = w.join(0x71);
    let patient = w.join(0x72);
    w.run(1000);
    let share = |w: &mut World, start: bool| {
        let participant = doctor.clone();
        let cmd = if start {
            SfuCommand::StartScreen { participant }
        } else {
            SfuCommand::StopScreen { participant }
        };
        w.sfu.handle_command(w.now, cmd);
    };
    assert_eq!(w.sfu.stats().producers, 4);

    // Sharing: the doctor's transport gets a receive m-line (named in its offer), the patient a
    // third track of the doctor's, marked screen, with media on it; asking twice changes nothing.
    share(&mut w, true);
    share(&mut w, true);
    w.run(1000);
    let doctor_t = w.sfu.transport(&doctor).unwrap();
    assert!(matches!(doctor_t.screen, transport::ScreenIn::Open(_)));
    let mid = screen_mid(&w, &patient, &doctor).expect("the screen is offered to the patient");
    let from_doctor = w
        .client(&patient)
        .offered
        .iter()
        .filter(|t| t.participant == doctor)
        .count();
    assert_eq!(from_doctor, 3);
    assert!(screen_mid(&w, &doctor, &doctor).is_none());
    let stats = w.sfu.stats();
    assert_eq!((stats.producers, stats.consumers), (5, 5));
    let before = w.client(&patient).per_mid.get(&mid).copied().unwrap_or(0);
    w.run(500);
    assert!(w.client(&patient).per_mid.get(&mid).copied().unwrap_or(0) > before + 10);

    // Stopping: the m-lines are stopped on both sides, media stops, the producer and consumer go.
    share(&mut w, false);
    w.run(1000);
    assert!(screen_mid(&w, &patient, &doctor).is_none());
    assert_eq!(
        w.sfu.transport(&doctor).unwrap().screen,
        transport::ScreenIn::Off
    );
    let stats = w.sfu.stats();
    assert_eq!((stats.producers, stats.consumers), (4, 4));
    let stopped = w.client(&patient).per_mid.get(&mid).copied().unwrap_or(0);
    w.run(500);
    assert_eq!(
        w.client(&patient).per_mid.get(&mid).copied().unwrap_or(0),
        stopped
    );
    assert!(frames(&w, &patient, &doctor, MediaKind::Audio).len() > 50);

    // Again, on a new m-line; then the sharer leaves while sharing, and then everyone.
    share(&mut w, true);
    w.run(1000);
    let again = screen_mid(&w, &patient, &doctor).expect("shared again");
    assert_ne!(again, mid);
    w.leave(&doctor);
    w.run(1000);
    assert!(w.client(&patient).offered.is_empty());
    w.leave(&patient);
    w.run(100);
    assert!(w.sfu.holds_nothing());
}
/// A path change: the NAT in front of `a` rebinds (new source address), its old address
/// goes dead, and `a` asks for an ICE restart. The restart's offer keeps the worker's tag in
/// the ufrag and every m-line; once answered, the old ufrag routes nothing, media flows both
/// ways on the new path, and the room is told `Connected` again.
#[test]
fn an_ice_restart_after_a_path_change_keeps_the_tracks_and_retires_the_old_ufrag() {
    let mut w = World::new();
    w.sfu = Sfu::with_addrs(
        &LocalAddrs {
            udp: vec![SERVER.parse().unwrap()],
            tcp: Vec::new(),
            worker: 9,
        },
        w.now,
    );
    let a = w.join(0x71);
    let b = w.join(0x72);
    w.run(2000);
    let connected = |w: &World| {
        w.events
            .iter()
            .filter(|e| matches!(e, SfuEvent::Connected { participant, .. } if participant == &a))
            .count()
    };
    assert_eq!(connected(&w), 1);
    let old_ufrag = w.sfu.transport(&a).unwrap().local_ufrag.clone().unwrap();
    let mids_before = w.client(&a).mids.clone();
    let consumers_before = w.sfu.transport(&a).unwrap().consumers.len();
    assert_eq!(consumers_before, 2, "b's audio and video");

    // Wi-Fi to 4G: a's datagrams now come from elsewhere; its old address is gone.
    let a_addr = w.client(&a).addr;
    w.nat.insert(a_addr, "198.51.100.7:41000".parse().unwrap());
    w.sfu.handle_command(
        w.now,
        SfuCommand::RestartIce {
            participant: a.clone(),
        },
    );
    w.run(3000);

    let t = w.sfu.transport(&a).unwrap();
    let new_ufrag = t.local_ufrag.clone().unwrap();
    assert_ne!(new_ufrag, old_ufrag);
    assert_eq!(worker_of_ufrag(&new_ufrag), Some(9), "{new_ufrag}");
    assert!(!t.ice_restart_pending());
    let offered = w
        .client(&a)
        .offer_sdp
        .lines()
        .filter_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .collect::<Vec<_>>();
    assert!(
        !offered.is_empty() && offered.iter().all(|u| *u == new_ufrag),
        "{offered:?}"
    );
    for line in w.client(&a).offer_sdp.lines() {
        if line.starts_with("a=candidate:") {
            assert!(line.ends_with(&format!("ufrag {new_ufrag}")), "{line}");
        }
    }
    // The same m-lines and consumers: nothing was renegotiated but ICE.
    assert_eq!(w.client(&a).mids, mids_before);
    assert_eq!(t.consumers.len(), consumers_before);
    assert!(
        t.consumers
            .iter()
            .all(|c| matches!(c.state, ConsumerState::Open(_)))
    );
    assert_eq!(t.connectivity, Connectivity::Connected);
    assert_eq!(connected(&w), 2, "connected again after the restart");
    // The old ufrag routes nothing; the new one routes to a; a's old address is forgotten.
    assert!(!w.sfu.by_ufrag.contains_key(&old_ufrag));
    assert!(w.sfu.by_ufrag.contains_key(&new_ufrag));
    assert!(!w.sfu.by_addr.contains_key(&a_addr));
    let unrouted = w.sfu.stats().datagrams_unrouted;
    // A binding request naming the old ufrag, padded as on the wire.
    let username = format!("{old_ufrag}:peer");
    let body = 4 + username.len().next_multiple_of(4);
    let mut stun = vec![0x00, 0x01, 0x00, body as u8, 0x21, 0x12, 0xA4, 0x42];
    stun.extend_from_slice(&[7; 12]);
    stun.extend_from_slice(&[0x00, 0x06, 0x00, username.len() as u8]);
    stun.extend_from_slice(username.as_bytes());
    stun.resize(20 + body, 0);
    assert_eq!(local_ufrag(&stun), Some(old_ufrag.as_str()));
    let stranger: SocketAddr = "203.0.113.5:5000".parse().unwrap();
    w.sfu.handle_receive(w.now, stranger, &stun);
    assert_eq!(w.sfu.stats().datagrams_unrouted, unrouted + 1);

    // Media flows both ways on the new path.
    let (a_from_b, b_from_a) = (
        frames(&w, &a, &b, MediaKind::Video).len(),
        frames(&w, &b, &a, MediaKind::Video).len(),
    );
    let audio = frames(&w, &b, &a, MediaKind::Audio).len();
    w.run(1000);
    assert!(frames(&w, &a, &b, MediaKind::Video).len() > a_from_b + 20);
    assert!(frames(&w, &b, &a, MediaKind::Video).len() > b_from_a + 20);
    assert!(frames(&w, &b, &a, MediaKind::Audio).len() > audio + 20);

    // Another change, another restart: a fresh ufrag again, named throughout the offer.
    w.nat.insert(a_addr, "198.51.100.8:42000".parse().unwrap());
    w.sfu.handle_command(
        w.now,
        SfuCommand::RestartIce {
            participant: a.clone(),
        },
    );
    w.run(3000);
    let third = w.sfu.transport(&a).unwrap().local_ufrag.clone().unwrap();
    assert!(third != new_ufrag && third != old_ufrag);
    assert_eq!(worker_of_ufrag(&third), Some(9), "{third}");
    for line in w.client(&a).offer_sdp.lines() {
        if line.starts_with("a=candidate:") {
            assert!(line.ends_with(&format!("ufrag {third}")), "{line}");
        }
        if let Some(u) = line.strip_prefix("a=ice-ufrag:") {
            assert_eq!(u, third);
        }
    }
    assert_eq!(connected(&w), 3);
    let got = frames(&w, &a, &b, MediaKind::Video).len();
    w.run(1000);
    assert!(frames(&w, &a, &b, MediaKind::Video).len() > got + 20);
    assert_eq!(w.sfu.by_ufrag.len(), 2, "a's newest ufrag and b's");

    w.leave(&a);
    w.leave(&b);
    w.run(10);
    assert!(w.sfu.holds_nothing());
}

/// A restart asked for while an offer is outstanding waits for its answer; one asked for
/// before any negotiation is ignored.
#[test]
fn an_ice_restart_waits_for_the_outstanding_offer_and_needs_a_negotiation() {
    let mut w = World::new();
    let a = w.join(0x81);
    // a's first offer is outstanding (not answered until the world runs).
    assert!(w.sfu.transport(&a).unwrap().offer_outstanding());
    w.sfu.handle_command(
        w.now,
        SfuCommand::RestartIce {
            participant: a.clone(),
        },
    );
    assert!(
        !w.sfu.transport(&a).unwrap().ice_restart_pending(),
        "nothing negotiated yet: nothing to restart"
    );
    w.run(1500);
    let b = w.join(0x82);
    w.run(1);
    // b's arrival made an offer to a; a restart now queues behind it.
    let first = w.sfu.transport(&a).unwrap().local_ufrag.clone();
    w.sfu.handle_command(
        w.now,
        SfuCommand::RestartIce {
            participant: a.clone(),
        },
    );
    assert!(w.sfu.transport(&a).unwrap().ice_restart_pending());
    w.run(3000);
    let t = w.sfu.transport(&a).unwrap();
    assert!(!t.ice_restart_pending());
    assert_ne!(t.local_ufrag, first);
    assert_eq!(t.consumers.len(), 2);
    let got = frames(&w, &a, &b, MediaKind::Video).len();
    w.run(1000);
    assert!(frames(&w, &a, &b, MediaKind::Video).len() > got + 20);
}

/// An observer let speak, then made to only watch, then let speak again (the room's role
/// changes): their own m-lines come and go by renegotiation, named in their offers; the others'
/// consumers of them follow; media flows only while they publish; nothing is left behind.
#[test]
fn a_role_change_adds_and_stops_the_own_m_lines_and_their_consumers() {
    let mut w = World::new();
    let doctor = w.join(0x81);
    let watcher = w.join_publishing(0x82, PublishKinds::default());
    w.run(1000);
    assert_eq!(w.sfu.stats().producers, 2);
    assert!(frames(&w, &doctor, &watcher, MediaKind::Audio).is_empty());
    assert_eq!(w.client(&watcher).publish_mids, PublishMids::default());
    let set = |w: &mut World, on: bool| {
        let cmd = SfuCommand::SetPublish {
            participant: watcher.clone(),
            publish: PublishKinds {
                audio: on,
                video: on,
            },
        };
        w.sfu.handle_command(w.now, cmd);
    };

    // Let speak: two receive m-lines, named in the watcher's offer; the doctor gets their
    // audio and video (video from a keyframe).
    set(&mut w, true);
    w.run(1000);
    let first = w.client(&watcher).publish_mids.clone();
    assert!(first.audio.is_some() && first.video.is_some());
    let stats = w.sfu.stats();
    assert_eq!((stats.producers, stats.consumers), (4, 4));
    let heard = frames(&w, &doctor, &watcher, MediaKind::Audio).len();
    assert!(heard > 20, "{heard} audio frames");
    let seen = frames(&w, &doctor, &watcher, MediaKind::Video);
    assert!(seen.first().is_some_and(|f| f.keyframe && f.marker == 0x82));

    // Made to only watch: both m-lines stopped on their side and the doctor's; nothing more
    // arrives; the doctor's own media still reaches them.
    set(&mut w, false);
    w.run(1000);
    assert_eq!(w.client(&watcher).publish_mids, PublishMids::default());
    assert!(w.sfu.transport(&watcher).unwrap().incoming.is_empty());
    let stats = w.sfu.stats();
    assert_eq!((stats.producers, stats.consumers), (2, 2));
    let stopped = frames(&w, &doctor, &watcher, MediaKind::Audio).len();
    let from_doctor = frames(&w, &watcher, &doctor, MediaKind::Audio).len();
    w.run(500);
    assert_eq!(
        frames(&w, &doctor, &watcher, MediaKind::Audio).len(),
        stopped
    );
    assert!(frames(&w, &watcher, &doctor, MediaKind::Audio).len() > from_doctor + 10);

    // Let speak again: new m-lines (the stopped ones are never reused), media again.
    set(&mut w, true);
    w.run(1000);
    let again = w.client(&watcher).publish_mids.clone();
    assert!(again.audio.is_some() && again.audio != first.audio);
    assert!(frames(&w, &doctor, &watcher, MediaKind::Audio).len() > stopped + 20);

    // Let speak and made to watch in the same instant, before any answer: the m-lines offered
    // are stopped as soon as the offer is answered, and never become producers.
    set(&mut w, false);
    w.run(500);
    set(&mut w, true);
    set(&mut w, false);
    w.run(1000);
    assert!(w.sfu.transport(&watcher).unwrap().incoming.is_empty());
    assert_eq!(w.sfu.stats().producers, 2);

    w.leave(&watcher);
    w.leave(&doctor);
    w.run(100);
    assert!(w.sfu.holds_nothing());
}

/// The layer a frame of a simulcast publisher came from.
fn layer_of(f: &Frame) -> u8 {
    assert_eq!(f.tag & 0xF0, SIMULCAST_TAG, "not a simulcast frame: {f:?}");
    f.tag & 0x0F
}

/// What a decoder needs of a subscriber's one video stream, however often its layer
/// changed: it begins on a keyframe, its sequence numbers run on without a gap, its RTP time
/// strictly increases, and every change of layer happens at a keyframe.
fn assert_decodable(frames: &[Frame], who: &str) {
    assert!(frames[0].keyframe, "{who}: starts on a delta frame");
    for pair in frames.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert_eq!(b.seq.0, a.seq.1 + 1, "{who}: sequence gap {a:?} -> {b:?}");
        assert!(b.time > a.time, "{who}: time went back {a:?} -> {b:?}");
        assert!(b.contiguous, "{who}: the receiver saw a gap before {b:?}");
        if layer_of(a) != layer_of(b) {
            assert!(
                b.keyframe,
                "{who}: layer changed on a delta frame {a:?} -> {b:?}"
            );
        }
    }
}

#[test]
fn only_a_simulcast_transport_offers_receive_layers_and_only_for_its_camera() {
    let mut w = World::new();
    let plain = w.join(0xA1);
    let layered = w.join_simulcast(0x5C);
    w.run(500);
    let simulcast_lines = |id: &ParticipantId| -> Vec<String> {
        w.client(id)
            .offer_sdp
            .lines()
            .filter(|l| l.starts_with("a=simulcast") || l.starts_with("a=rid"))
            .map(str::to_string)
            .collect()
    };
    assert!(
        simulcast_lines(&plain).is_empty(),
        "{:?}",
        simulcast_lines(&plain)
    );
    let lines = simulcast_lines(&layered);
    assert_eq!(
        lines,
        [
            "a=rid:q recv",
            "a=rid:h recv",
            "a=rid:f recv",
            "a=simulcast:recv q;h;f"
        ],
        "one camera m-line with three layers, lowest first"
    );
}

#[test]
fn simulcast_subscribers_get_their_own_layer_and_switch_at_its_keyframe() {
    let mut w = World::new();
    let publisher = w.join_simulcast(0x5C);
    let a = w.join(0xA1);
    let b = w.join(0xB2);
    // Once both get video, B asks for the low layer; A keeps the default (the best arriving).
    w.run(500);
    w.set_layer(&b, &publisher, Some(0));
    w.run(1500);
    let video =
        |w: &World, rx: &ParticipantId| frames(w, rx, &publisher, MediaKind::Video).to_vec();
    let a1 = video(&w, &a);
    let b1 = video(&w, &b);
    assert!(
        a1.len() > 50 && b1.len() > 50,
        "A {} B {} frames",
        a1.len(),
        b1.len()
    );
    // Each may climb through the layers in its first instant as they arrive one after the
    // other, and B was on f until its switch; from then on each gets its layer only.
    let layers = |f: &[Frame]| f.iter().map(layer_of).collect::<Vec<_>>();
    let on_q = b1
        .iter()
        .rposition(|f| layer_of(f) != 0)
        .map_or(0, |i| i + 1);
    assert!(
        b1.len() - on_q > 50,
        "B is not on q for long: {:?}",
        layers(&b1)
    );
    assert!(b1[on_q].keyframe, "B entered q on a delta frame");
    let on_f = a1
        .iter()
        .position(|f| layer_of(f) == 2)
        .expect("A reaches f");
    assert!(
        a1[on_f..].iter().all(|f| layer_of(f) == 2) && on_f < 3,
        "A is not on f: {:?}",
        layers(&a1)
    );
    assert_decodable(&a1, "A");
    assert_decodable(&b1, "B");
    // Audio is one stream whatever the layers.
    assert!(!frames(&w, &a, &publisher, MediaKind::Audio).is_empty());

    // B moves up to h: the publisher is asked for a keyframe on h (not any stream of the
    // m-line), B switches at it, and keeps getting q until then (no freeze).
    let asked_before = w.client(&publisher).keyframe_request_rids.len();
    w.set_layer(&b, &publisher, Some(1));
    w.run(1500);
    let b2 = video(&w, &b);
    let asked: Vec<_> = w.client(&publisher).keyframe_request_rids[asked_before..].to_vec();
    assert!(
        asked.contains(&Some("h".to_string())),
        "no keyframe request on h: {asked:?}"
    );
    assert!(!asked.contains(&None), "a request named no rid: {asked:?}");
    let new = &b2[b1.len()..];
    let switch = new
        .iter()
        .position(|f| layer_of(f) == 1)
        .expect("B switched to h");
    assert!(new[switch].keyframe, "the switch is at h's keyframe");
    assert!(
        switch < 25,
        "the switch waited {switch} frames for a keyframe"
    );
    assert!(
        new[..switch].iter().all(|f| layer_of(f) == 0),
        "q until the switch"
    );
    assert!(new[switch..].iter().all(|f| layer_of(f) == 1), "h after it");
    assert!(new.len() >= 70, "B froze: {} frames in 1.5 s", new.len());
    assert_decodable(&b2, "B");
    // A, on the default layer, saw nothing of it.
    let a2 = video(&w, &a);
    assert!(a2[a1.len()..].iter().all(|f| layer_of(f) == 2), "A left f");
    assert!(
        a2.len() - a1.len() >= 70,
        "A froze: {}",
        a2.len() - a1.len()
    );
    assert_decodable(&a2, "A");

    // And down again, to q.
    w.set_layer(&b, &publisher, Some(0));
    w.run(1000);
    let b3 = video(&w, &b);
    assert_eq!(b3.last().map(layer_of), Some(0), "B back on q");
    assert_decodable(&b3, "B");
}

#[test]
fn a_paused_layer_moves_its_subscribers_to_one_that_arrives() {
    let mut w = World::new();
    let publisher = w.join_simulcast(0x5C);
    let a = w.join(0xA1);
    w.run(1500);
    let before = frames(&w, &a, &publisher, MediaKind::Video).len();
    assert!(before > 30);
    // The publisher stops sending f (as a browser does on a weak uplink): after str0m's
    // pause threshold A is moved to h, at h's keyframe.
    let sfu_before = w.sfu.stats().keyframe_requests_sent;
    w.clients
        .iter_mut()
        .find(|c| c.id == publisher)
        .unwrap()
        .stop_layer = Some(2);
    w.run(3000);
    let got = frames(&w, &a, &publisher, MediaKind::Video).to_vec();
    assert_eq!(got.last().map(layer_of), Some(1), "A is on h");
    assert!(w.sfu.stats().keyframe_requests_sent > sfu_before);
    assert_decodable(&got, "A");
}

#[test]
fn vp8_picture_ids_run_on_across_layer_switches() {
    let mut w = World::new();
    let publisher = w.join_simulcast_raw(0x5C);
    let a = w.join(0xA1);
    let b = w.join(0xB2);
    w.run(600);
    // B goes down to q, up to h (whose PictureID wraps at 2^15 soon after), and back to the
    // best; A stays on the default all along.
    for layer in [Some(0), Some(1), None] {
        w.set_layer(&b, &publisher, layer);
        w.run(1000);
    }
    for (who, rx) in [("A", &a), ("B", &b)] {
        let got = frames(&w, rx, &publisher, MediaKind::Video);
        assert!(got.len() > 100, "{who}: {} frames", got.len());
        assert_decodable(got, who);
        for pair in got.windows(2) {
            let (Some((pid_a, tl0_a)), Some((pid_b, tl0_b))) = (pair[0].vp8, pair[1].vp8) else {
                panic!("{who}: a frame without PictureID: {pair:?}");
            };
            assert_eq!(pid_b, pid_a + 1, "{who}: PictureID jumped {pair:?}");
            assert_eq!(tl0_b, tl0_a + 1, "{who}: TL0PICIDX jumped {pair:?}");
        }
    }
    let b_layers: Vec<u8> = frames(&w, &b, &publisher, MediaKind::Video)
        .iter()
        .map(layer_of)
        .collect();
    for l in [0, 1, 2] {
        assert!(b_layers.contains(&l), "B never got layer {l}: {b_layers:?}");
    }
}

#[test]
fn a_publisher_answering_without_simulcast_is_forwarded_as_one_layer() {
    let mut w = World::new();
    // Offered layers, answered with none (as Firefox does for H.264): it sends one stream
    // without rid, which is layer 0 and the only one to forward.
    let publisher = w.join_with(
        0x5C,
        PublishKinds {
            audio: true,
            video: true,
        },
        TransportOptions {
            simulcast: true,
            ..TransportOptions::default()
        },
    );
    w.clients.last_mut().unwrap().ignore_simulcast = true;
    let a = w.join(0xA1);
    w.run(2000);
    let got = frames(&w, &a, &publisher, MediaKind::Video);
    assert!(got.len() > 50, "{} frames", got.len());
    assert!(got[0].keyframe && got.iter().all(|f| f.marker == 0x5C));
    // A keyframe request for a late subscriber reaches its one stream.
    let before = w.client(&publisher).keyframe_requests;
    let late = w.join(0xB2);
    w.run(1000);
    assert!(frames(&w, &late, &publisher, MediaKind::Video).len() > 20);
    let asked = &w.client(&publisher).keyframe_request_rids;
    assert!(
        w.client(&publisher).keyframe_requests > before,
        "no keyframe asked for"
    );
    assert!(
        asked.iter().all(|r| r.is_none()),
        "asked for a rid: {asked:?}"
    );
}

/// The layer of each video frame, as a string of `q`/`h`/`f` (for messages).
fn layer_trace(frames: &[Frame]) -> String {
    frames
        .iter()
        .map(|f| ["q", "h", "f"][usize::from(layer_of(f))])
        .collect()
}

/// Issue 19's weak link, on the virtual clock: two subscribers estimate their links (str0m's
/// send-side estimator, from the clients' transport-wide feedback) and get a simulcast camera.
/// One's downlink is capped (a token bucket with a queue in the world's exchange): at 300
/// kbit/s it drops to q, at 120 kbit/s it gets audio only and is told so; once the cap lifts
/// it climbs back to f. The other stays on f throughout, never frozen.
#[test]
fn a_throttled_subscriber_drops_to_q_then_audio_only_and_climbs_back() {
    let mut w = World::new();
    let [publisher, weak, strong] = w.publisher_and_two_estimated_subscribers();
    let video =
        |w: &World, rx: &ParticipantId| frames(w, rx, &publisher, MediaKind::Video).to_vec();
    let audio = |w: &World, rx: &ParticipantId| frames(w, rx, &publisher, MediaKind::Audio).len();
    let target = |w: &World, rx: &ParticipantId| {
        let t = w.sfu.transport(rx).unwrap();
        let c = t.consumers.iter().find(|c| c.kind == MediaKind::Video);
        c.and_then(|c| c.target)
    };
    let told = |w: &World, rx: &ParticipantId| -> Vec<(Option<Layer>, QualityReason)> {
        w.events
            .iter()
            .filter_map(|e| match e {
                SfuEvent::VideoQuality {
                    participant,
                    layer,
                    reason,
                    ..
                } if participant == rx => Some((*layer, *reason)),
                _ => None,
            })
            .collect()
    };

    // Both links free: each starts on q and climbs to f (the estimate grows by probing).
    w.run(20_000);
    for rx in [&weak, &strong] {
        let got = video(&w, rx);
        assert_eq!(target(&w, rx), Some(Layer::FULL), "{}", layer_trace(&got));
        assert!(
            layer_trace(&got[got.len() - 50..])
                .bytes()
                .all(|l| l == b'f')
        );
    }
    let strong_on_f = video(&w, &strong).len();

    // 300 kbit/s: room for q and audio, not for h.
    let addr = w.client(&weak).addr;
    let audio_uncapped = audio(&w, &weak);
    w.downlink_cap = Some((addr, TokenBucket::new(300_000, w.now)));
    w.run(15_000);
    // Audio first: the cap falls from what f needs (about five times more) to 300 kbit/s at
    // once, yet no audio is lost while the estimate comes down: str0m's pacer holds the video
    // to the estimate and never the audio (measured: 750 of 750; the bucket dropped 6 datagrams,
    // no audio among them). A few frames may still be in the bottleneck's queue.
    let heard = audio(&w, &weak) - audio_uncapped;
    assert!(
        heard >= 742,
        "audio under the new cap: {heard} of 750 frames"
    );
    let got = video(&w, &weak);
    assert_eq!(target(&w, &weak), Some(Layer::LOW), "{}", layer_trace(&got));
    let tail = layer_trace(&got[got.len() - 250..]);
    assert!(
        tail.bytes().all(|l| l == b'q'),
        "not on q for the last 5 s: {tail}"
    );

    // 120 kbit/s: not even q; audio still fits. Video stops, audio goes on.
    w.downlink_cap = Some((addr, TokenBucket::new(120_000, w.now)));
    w.run(10_000);
    assert_eq!(target(&w, &weak), None);
    let (video_before, audio_before) = (video(&w, &weak).len(), audio(&w, &weak));
    w.run(5_000);
    assert_eq!(
        video(&w, &weak).len(),
        video_before,
        "video during audio only"
    );
    let heard = audio(&w, &weak) - audio_before;
    assert!(heard >= 240, "audio only: {heard} of 250 frames in 5 s");
    let dropped = w.downlink_cap.as_ref().map_or(0, |(_, b)| b.dropped);
    assert!(dropped > 0, "the cap never bit");

    // The cap lifts: video resumes at q and climbs back to f.
    w.downlink_cap = None;
    w.run(40_000);
    let got = video(&w, &weak);
    assert_eq!(
        target(&w, &weak),
        Some(Layer::FULL),
        "{}",
        layer_trace(&got[video_before..])
    );
    // Resumed on a keyframe: the first frame whose RTP time runs on by the pause (late
    // retransmissions of frames sent before it, which the cap held back, may come first).
    let after_pause = got[video_before.saturating_sub(1)..]
        .windows(2)
        .find(|pair| pair[1].time > pair[0].time + 90_000)
        .map(|pair| &pair[1])
        .expect("video came back after the pause");
    assert!(
        after_pause.keyframe,
        "resumed on a delta frame: {after_pause:?}"
    );
    for pair in got.windows(2) {
        if layer_of(&pair[0]) != layer_of(&pair[1]) {
            assert!(pair[1].keyframe, "weak: a switch on a delta frame {pair:?}");
        }
    }
    // The weak subscriber was told each change: down to q, audio only, and back.
    let told_weak = told(&w, &weak);
    let paused = (None, QualityReason::Bandwidth);
    let at = |what| told_weak.iter().position(|t| *t == what);
    let (low, pause, full) = (
        told_weak
            .iter()
            .rposition(|t| *t == (Some(Layer::LOW), QualityReason::Bandwidth)),
        at(paused),
        told_weak
            .iter()
            .rposition(|t| *t == (Some(Layer::FULL), QualityReason::Display)),
    );
    assert!(
        low.is_some() && pause.is_some() && full > pause,
        "told {told_weak:?}"
    );

    // The other subscriber never left f and never froze.
    let got = video(&w, &strong);
    let since = &got[strong_on_f..];
    assert!(
        since.iter().all(|f| layer_of(f) == 2),
        "strong left f: {}",
        layer_trace(since)
    );
    assert!(
        since.len() >= 3500 - 20,
        "strong froze: {} of 3500 frames",
        since.len()
    );
    assert_decodable(&got, "strong");
    assert_eq!(
        told(&w, &strong).last(),
        Some(&(Some(Layer::FULL), QualityReason::Display))
    );
}

/// Random loss without congestion (2 % as on a noisy radio link, and issue 19's 10 %, with
/// room to spare) is not taken for congestion: the subscriber keeps its video the whole time,
/// never paused to audio only, while a subscriber on a clean link is unaffected. The pause
/// needs the estimate to fall below what is sent *and* loss; random loss alone could bring
/// both, which is what this measures. (Measured 2026-12-06: both stay on `f`.)
#[test]
fn random_loss_without_congestion_never_pauses_video() {
    for (permille, seed) in [(20, 0x2026_1206), (100, 0x1919)] {
        random_loss_run(permille, seed);
    }
}

fn random_loss_run(permille: u64, seed: u64) {
    let mut w = World::new();
    let [publisher, lossy, clean] = w.publisher_and_two_estimated_subscribers();
    let addr = w.client(&lossy).addr;
    w.downlink_loss = Some(RandomLoss::new(addr, permille, seed));
    w.run(50_000);

    let loss = w.downlink_loss.as_ref().unwrap();
    let rate = loss.lost as f64 / loss.seen as f64;
    let want = permille as f64 / 1000.0;
    assert!(
        (want * 0.75..want * 1.25).contains(&rate),
        "the link lost {rate:.3}, not about {want}"
    );
    let paused: Vec<&SfuEvent> = w
        .events
        .iter()
        .filter(|e| {
            matches!(e, SfuEvent::VideoQuality { participant, layer: None, .. } if *participant == lossy)
        })
        .collect();
    let got = frames(&w, &lossy, &publisher, MediaKind::Video).to_vec();
    assert!(
        paused.is_empty(),
        "{permille}‰: paused {paused:?}\n{}",
        layer_trace(&got)
    );
    // Video arrived all along (50 frames a second): at least 200 in every 5 s of RTP time
    // (lost packets are repaired by NACK and retransmission).
    let t0 = got.first().expect("video arrived").time;
    let window = 5 * 90_000;
    let in_window = |i: u64| got.iter().filter(|f| (f.time - t0) / window == i).count();
    for i in 1..9 {
        let n = in_window(i);
        assert!(
            n >= 200,
            "{permille}‰: {n} frames in window {i}: {}",
            layer_trace(&got)
        );
    }
    let clean_got = frames(&w, &clean, &publisher, MediaKind::Video).to_vec();
    assert!(
        layer_trace(&clean_got[clean_got.len() - 50..])
            .bytes()
            .all(|l| l == b'f'),
        "the clean subscriber on f: {}",
        layer_trace(&clean_got)
    );
    eprintln!(
        "{permille}‰ random loss: the lossy subscriber's layers, last 3 s: {}",
        layer_trace(&got[got.len() - 150..])
    );
}

/// The participants told `Failed` so far, by room.
fn failed(w: &World) -> Vec<(RoomId, ParticipantId)> {
    w.events
        .iter()
        .filter_map(|e| match e {
            SfuEvent::Failed {
                room,
                participant,
                reason: FailReason::Lost,
            } => Some((room.clone(), participant.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_panic_while_polling_one_transport_costs_its_room_and_no_other_on_the_worker() {
    let mut w = World::new();
    w.expect_panics = true;
    let a1 = w.join(0x11);
    let a2 = w.join(0x12);
    let room_a = w.room.clone();
    w.room = RoomId::generate();
    let room_b = w.room.clone();
    let b1 = w.join(0x21);
    let b2 = w.join(0x22);
    w.run(2000);
    let b_before = (
        frames(&w, &b1, &b2, MediaKind::Video).len(),
        frames(&w, &b2, &b1, MediaKind::Video).len(),
    );
    assert!(b_before.0 > 20 && b_before.1 > 20, "{b_before:?}");

    // The next datagram or timer of a1's transport panics (as the allocator's underflow did).
    let (now, participant) = (w.now, a1.clone());
    w.work(|sfu| {
        sfu.handle_command(
            now,
            SfuCommand::InjectFault(Fault::PanicOnPoll { participant }),
        );
    });
    w.run(200);
    assert_eq!(
        w.contained,
        vec![Contained {
            recovery: Recovery::Room { failed: 2 }
        }]
    );
    // Both of room A are told (their room sends them to join again); nobody of room B is.
    let mut told = failed(&w);
    told.sort();
    let mut expected = vec![(room_a.clone(), a1.clone()), (room_a.clone(), a2.clone())];
    expected.sort();
    assert_eq!(told, expected);
    assert!(w.sfu.transport(&a1).is_none() && w.sfu.transport(&a2).is_none());
    assert_eq!(w.sfu.transport_count(), 2);
    assert!(w.sfu.transport(&b1).is_some_and(|t| t.room == room_b));
    // Their browsers give up the peer connections (kept in the world, silent, so that the
    // addresses the world hands out stay distinct).
    for c in &mut w.clients {
        if c.id == a1 || c.id == a2 {
            c.blocked = true;
        }
    }

    // Room B's media flows on both ways.
    w.run(2000);
    assert!(frames(&w, &b1, &b2, MediaKind::Video).len() > b_before.0 + 20);
    assert!(frames(&w, &b2, &b1, MediaKind::Video).len() > b_before.1 + 20);

    // Room A joins again on the same core, and its media flows.
    w.room = room_a;
    let a3 = w.join(0x13);
    let a4 = w.join(0x14);
    w.run(2000);
    assert!(frames(&w, &a3, &a4, MediaKind::Video).len() > 20);
    assert!(frames(&w, &a4, &a3, MediaKind::Video).len() > 20);
    assert_eq!(w.contained.len(), 1, "one panic, contained once");

    // Nothing of room A's first transports is left behind.
    for id in [b1, b2, a3, a4] {
        w.leave(&id);
    }
    w.run(100);
    assert!(w.sfu.holds_nothing());
}

#[test]
fn a_panic_no_room_can_be_blamed_for_replaces_the_core_and_every_participant_is_told() {
    let mut w = World::new();
    w.expect_panics = true;
    let a = w.join(0x11);
    w.room = RoomId::generate();
    let b = w.join(0x21);
    let c = w.join(0x22);
    w.run(2000);
    let rtp_in = w.sfu.stats().rtp_in;
    assert!(rtp_in > 0);

    let now = w.now;
    let done = w.sfu.contained(|sfu| {
        sfu.handle_command(now, SfuCommand::InjectFault(Fault::PanicInWorker));
    });
    assert_eq!(
        done,
        Err(Contained {
            recovery: Recovery::Worker { failed: 3 }
        })
    );
    assert!(w.sfu.holds_nothing());
    // The counters go on (they are monotonic for the metrics).
    assert!(w.sfu.stats().rtp_in >= rtp_in);
    for c in &mut w.clients {
        c.blocked = true;
    }
    w.run(10);
    let mut told: Vec<ParticipantId> = failed(&w).into_iter().map(|(_, p)| p).collect();
    told.sort();
    let mut expected = vec![a, b, c];
    expected.sort();
    assert_eq!(told, expected);

    // The fresh core takes new transports on the same addresses.
    let d = w.join(0x31);
    let e = w.join(0x32);
    w.run(2000);
    assert!(frames(&w, &d, &e, MediaKind::Video).len() > 20);
    assert!(frames(&w, &e, &d, MediaKind::Video).len() > 20);
}

#[test]
fn a_panic_while_adding_a_transport_tells_its_participant_though_the_core_never_held_them() {
    let mut w = World::new();
    w.expect_panics = true;
    let a = w.join(0x11);
    let room_a = w.room.clone();
    w.room = RoomId::generate();
    let b = w.join(0x21);
    let c = w.join(0x22);
    w.run(2000);
    let now = w.now;
    w.work(|sfu| sfu.handle_command(now, SfuCommand::InjectFault(Fault::PanicOnNextAdd)));
    w.room = room_a.clone();
    let late = w.join(0x12);
    assert_eq!(
        w.contained,
        vec![Contained {
            recovery: Recovery::Room { failed: 2 }
        }]
    );
    assert!(w.sfu.transport(&late).is_none());
    for c in &mut w.clients {
        if c.id == a || c.id == late {
            c.blocked = true;
        }
    }
    let before = frames(&w, &b, &c, MediaKind::Video).len();
    w.run(1000);
    // The room waiting for the late joiner's offer hears of a failure instead, and so does
    // the one already there; the other room keeps its media.
    let mut told = failed(&w);
    told.sort();
    let mut expected = vec![(room_a.clone(), a), (room_a, late)];
    expected.sort();
    assert_eq!(told, expected);
    assert!(frames(&w, &b, &c, MediaKind::Video).len() > before + 20);
}

/// A participant publishing audio and video whose transport is sent its own media back (the
/// network check's).
fn join_echo(w: &mut World, marker: u8) -> ParticipantId {
    w.join_with(
        marker,
        PublishKinds {
            audio: true,
            video: true,
        },
        TransportOptions {
            echo: true,
            ..TransportOptions::default()
        },
    )
}

#[test]
fn an_echo_transport_receives_its_own_tracks_and_an_ordinary_one_never_does() {
    let mut w = World::new();
    let plain = w.join(0x41);
    let echo = join_echo(&mut w, 0x42);
    w.run(3000);
    for kind in [MediaKind::Audio, MediaKind::Video] {
        let own = frames(&w, &echo, &echo, kind);
        assert!(own.len() > 20, "{kind:?} echoed: {} frames", own.len());
        assert!(own.iter().all(|f| f.marker == 0x42), "its own payload");
        if kind == MediaKind::Video {
            assert!(own[0].keyframe, "the echo starts on a keyframe");
        }
        assert!(
            frames(&w, &plain, &plain, kind).is_empty(),
            "own media must not come back to an ordinary transport"
        );
        // Everything else as before: each receives the other.
        assert!(frames(&w, &plain, &echo, kind).len() > 20);
        assert!(frames(&w, &echo, &plain, kind).len() > 20);
    }
    // The echo came on m-lines of its own, announced as its own tracks.
    let echoed: Vec<&TrackInfo> = w
        .client(&echo)
        .offered
        .iter()
        .filter(|t| t.participant == echo)
        .collect();
    assert_eq!(echoed.len(), 2, "{echoed:?}");
    assert!(
        w.client(&plain)
            .offered
            .iter()
            .all(|t| t.participant != plain)
    );
}

#[test]
fn an_echo_transport_alone_in_its_room_sends_nobody_else_anything() {
    let mut w = World::new();
    let a = w.join(0x51);
    let b = w.join(0x52);
    // The check's room is its own (as `crate::netcheck` makes it).
    let call_room = std::mem::replace(&mut w.room, RoomId::generate());
    let echo = join_echo(&mut w, 0x53);
    w.room = call_room;
    w.run(3000);
    for kind in [MediaKind::Audio, MediaKind::Video] {
        assert!(frames(&w, &echo, &echo, kind).len() > 20, "{kind:?} echoed");
        for rx in [&a, &b] {
            assert!(
                frames(&w, rx, &echo, kind).is_empty(),
                "the check reached a call"
            );
        }
        assert!(frames(&w, &echo, &a, kind).is_empty());
        assert!(frames(&w, &echo, &b, kind).is_empty());
    }
    assert!(w.client(&a).offered.iter().all(|t| t.participant != echo));
    assert_eq!(w.client(&echo).offered.len(), 2, "only its own two tracks");
    // Gone with its transport: nothing of it is left on the worker.
    w.leave(&echo);
    w.run(200);
    assert_eq!(w.sfu.stats().consumers, 4, "the call's own four consumers");
    assert_eq!(w.sfu.stats().producers, 4);
}

#[test]
fn an_echo_transport_that_stops_publishing_a_kind_loses_its_copy_too() {
    let mut w = World::new();
    let echo = join_echo(&mut w, 0x61);
    w.run(1500);
    let stats = w.sfu.stats();
    assert_eq!((stats.producers, stats.consumers), (2, 2));
    w.sfu.handle_command(
        w.now,
        SfuCommand::SetPublish {
            participant: echo.clone(),
            publish: PublishKinds {
                audio: true,
                video: false,
            },
        },
    );
    w.run(1000);
    let stats = w.sfu.stats();
    assert_eq!((stats.producers, stats.consumers), (1, 1), "{stats:?}");
    let video = frames(&w, &echo, &echo, MediaKind::Video).len();
    let audio = frames(&w, &echo, &echo, MediaKind::Audio).len();
    w.run(500);
    assert_eq!(frames(&w, &echo, &echo, MediaKind::Video).len(), video);
    assert!(frames(&w, &echo, &echo, MediaKind::Audio).len() > audio + 10);
    w.leave(&echo);
    w.run(100);
    assert!(w.sfu.holds_nothing());
}

#[test]
fn opus_is_offered_with_fec_dtx_and_red_first() {
    let mut w = World::new();
    w.red_next = true;
    let red = w.join(0x11);
    let plain = w.join(0x22);
    w.run(1000);
    // RED before Opus on every audio m-line (what makes libwebrtc send it), to whoever kept it;
    // once an answer leaves it out, that peer connection's offers have Opus alone.
    let sdp = &w.client(&red).offer_sdp;
    let audio: Vec<&str> = sdp.lines().filter(|l| l.starts_with("m=audio")).collect();
    assert_eq!(audio.len(), 2, "its microphone and the other's: {sdp}");
    assert!(audio.iter().all(|m| m.ends_with(" 63 111")), "{audio:?}");
    let plain_sdp = &w.client(&plain).offer_sdp;
    let plain_audio: Vec<&str> = plain_sdp
        .lines()
        .filter(|l| l.starts_with("m=audio"))
        .collect();
    assert!(
        plain_audio.iter().all(|m| m.ends_with(" 111")),
        "{plain_audio:?}"
    );
    assert!(sdp.contains("a=rtpmap:63 red/48000/2"), "{sdp}");
    assert!(sdp.contains("a=fmtp:63 111/111"), "{sdp}");
    let fmtp = sdp.lines().find(|l| l.starts_with("a=fmtp:111 ")).unwrap();
    for p in ["useinbandfec=1", "usedtx=1", "minptime=10"] {
        assert!(fmtp.contains(p), "{fmtp} lacks {p}");
    }
    let (red_pt, opus_pt) = (
        str0m::media::Pt::new_with_value(63),
        str0m::media::Pt::new_with_value(111),
    );
    assert_eq!(w.sfu.transport(&red).unwrap().red, Some((red_pt, opus_pt)));
    assert_eq!(
        w.sfu.transport(&plain).unwrap().red,
        None,
        "its answer left RED out"
    );
    // Both hear each other.
    assert!(frames(&w, &red, &plain, MediaKind::Audio).len() > 20);
    assert!(frames(&w, &plain, &red, MediaKind::Audio).len() > 20);
}

/// A publisher (with or without RED) whose uplink loses one audio packet in four, heard by a
/// subscriber without RED and one with it: (frames sent, frames each heard, all in order and
/// each the publisher's own), over four seconds of loss.
fn audio_through_lossy_uplink(red_publisher: bool) -> (u64, u64, u64, World) {
    let mut w = World::new();
    let audio = PublishKinds {
        audio: true,
        video: false,
    };
    w.red_next = red_publisher;
    let publisher = w.join_publishing(0x5E, audio);
    let plain = w.join_publishing(0x01, audio);
    w.red_next = true;
    let with_red = w.join_publishing(0x02, audio);
    w.run(1000);
    let sent_before = w.client(&publisher).frames_sent;
    let heard_before = |w: &World, rx| frames(w, rx, &publisher, MediaKind::Audio).len() as u64;
    let (plain_before, red_before) = (heard_before(&w, &plain), heard_before(&w, &with_red));
    w.uplink_loss = Some((w.client(&publisher).addr, 4));
    w.run(4000);
    w.uplink_loss = None;
    w.run(200);
    assert!(
        w.rtp_dropped >= 45,
        "the link lost {} packets",
        w.rtp_dropped
    );
    let sent = w.client(&publisher).frames_sent - sent_before;
    let plain_heard = heard_before(&w, &plain) - plain_before;
    let red_heard = heard_before(&w, &with_red) - red_before;
    for rx in [&plain, &with_red] {
        let got = frames(&w, rx, &publisher, MediaKind::Audio);
        assert!(got.iter().all(|f| f.marker == 0x5E), "foreign audio");
        assert!(
            got.windows(2).all(|p| p[0].seq.1 < p[1].seq.0),
            "audio out of order or twice"
        );
    }
    (sent, plain_heard, red_heard, w)
}

#[test]
fn red_audio_survives_uplink_loss_for_every_subscriber() {
    let (sent, plain, red, w) = audio_through_lossy_uplink(true);
    // Each lost packet came again in the next one: the subscriber with RED rebuilt it itself,
    // the one without was sent it rebuilt by the server, once each.
    assert!(plain + 1 >= sent, "without RED: sent {sent}, heard {plain}");
    assert!(red + 1 >= sent, "with RED: sent {sent}, heard {red}");
    let rebuilt = w.sfu.stats().red_rebuilt;
    assert!(
        rebuilt + 1 >= w.rtp_dropped && rebuilt <= w.rtp_dropped,
        "rebuilt {rebuilt} of {} lost",
        w.rtp_dropped
    );
    assert_eq!(w.sfu.stats().dropped_malformed_red, 0);
    // What the allocator counts the microphone at: whole for the subscriber with RED, its own
    // frames alone (about half) for the one without.
    let publisher = &w.clients[0].id;
    let mic = w
        .sfu
        .routers
        .values()
        .flat_map(|r| &r.producers)
        .find(|p| &p.publisher == publisher && p.kind == MediaKind::Audio)
        .unwrap();
    let (whole, own) = (mic.audio_rate(w.now, true), mic.audio_rate(w.now, false));
    assert!(
        own * 10 > whole * 4 && own * 10 < whole * 6,
        "RED {whole} bit/s, its own frames {own} bit/s"
    );
}

#[test]
fn plain_opus_loses_what_the_uplink_loses() {
    // The same link without RED: a quarter of the audio is gone for both (audio is not
    // retransmitted; Opus FEC can only conceal it in the decoder).
    let (sent, plain, red, w) = audio_through_lossy_uplink(false);
    for heard in [plain, red] {
        assert!(
            heard * 10 <= sent * 8,
            "sent {sent}, heard {heard}: a quarter should be lost"
        );
    }
    assert_eq!(w.sfu.stats().red_rebuilt, 0);
}

/// A participant whose transport is the network check's: its own media back, and the
/// download estimated for the check (`TransportOptions::measure_down`), alone in a room.
fn join_check(w: &mut World, marker: u8) -> ParticipantId {
    let call_room = std::mem::replace(&mut w.room, RoomId::generate());
    let id = w.join_with(
        marker,
        PublishKinds {
            audio: true,
            video: true,
        },
        TransportOptions {
            echo: true,
            measure_down: true,
            ..TransportOptions::default()
        },
    );
    w.room = call_room;
    id
}

/// The download estimates told for `who`, in order (bits per second).
fn down_estimates(w: &World, who: &ParticipantId) -> Vec<u64> {
    w.events
        .iter()
        .filter_map(|e| match e {
            SfuEvent::DownEstimate {
                participant, bps, ..
            } if participant == who => Some(*bps),
            _ => None,
        })
        .collect()
}

/// What `rx` received of its own media in the last `ms` (bits per second, payloads only).
fn echo_rate(w: &World, rx: &ParticipantId, from_frame: [usize; 2], ms: u64) -> u64 {
    let bytes: usize = [MediaKind::Audio, MediaKind::Video]
        .iter()
        .zip(from_frame)
        .map(|(kind, from)| {
            let size = if *kind == MediaKind::Audio { 80 } else { 502 };
            frames(w, rx, rx, *kind).len().saturating_sub(from) * size
        })
        .sum();
    bytes as u64 * 8 * 1000 / ms
}

/// The check's transport finds the download above what its echo carries: str0m probes toward
/// `DOWN_CHECK_DESIRED` with padding on the echo's m-lines (their answer negotiates what it
/// needs: transport-wide sequence numbers and feedback, and RTX for video), and the estimate
/// is told to the check once a second.
#[test]
fn a_check_transport_estimates_the_download_above_what_its_echo_carries() {
    let mut w = World::new();
    let check = join_check(&mut w, 0x71);
    w.run(2000);
    let sdp = &w.client(&check).offer_sdp;
    let video = sdp
        .split("m=")
        .filter(|m| m.starts_with("video") && m.contains("a=sendonly"))
        .collect::<Vec<_>>();
    assert_eq!(video.len(), 1, "the echo's video m-line: {sdp}");
    assert!(
        video[0].contains("rtx/90000"),
        "no RTX to pad with: {}",
        video[0]
    );
    assert!(video[0].contains("transport-wide-cc"), "{}", video[0]);
    let before = [MediaKind::Audio, MediaKind::Video].map(|k| frames(&w, &check, &check, k).len());
    // The 6 s the web client measures for.
    w.run(6000);
    let echoed = echo_rate(&w, &check, before, 6000);
    let told = down_estimates(&w, &check);
    assert!(
        (150_000..400_000).contains(&echoed),
        "the echo ran at {echoed} bit/s"
    );
    // Once a second from the first estimate on (about a second after the echo starts).
    assert!((5..=8).contains(&told.len()), "told {told:?}");
    let last = *told.last().unwrap();
    assert!(
        last >= 4 * echoed && last >= 1_000_000,
        "estimate {last} bit/s with the echo at {echoed}: {told:?}"
    );
    assert!(last <= 2 * DOWN_CHECK_DESIRED, "{told:?}");
    println!("check estimates (bit/s), echo {echoed}: {told:?}");
}

/// On a capped downlink the check's estimate stays near the cap: it says what the link
/// carries, not what was probed.
#[test]
fn a_check_transport_on_a_capped_downlink_estimates_below_the_cap() {
    let mut w = World::new();
    let check = join_check(&mut w, 0x72);
    let addr = w.client(&check).addr;
    w.downlink_cap = Some((addr, TokenBucket::new(1_000_000, w.now)));
    w.run(8000);
    let told = down_estimates(&w, &check);
    println!("capped at 1 Mbit/s: {told:?}");
    assert!(told.len() >= 5, "told {told:?}");
    // What the web client shows: the largest of the last three it was told (an estimate may
    // overshoot a narrow link a little after a probe: measured 687 kbit/s, then 1132 for 7 s).
    let shown = told[told.len() - 3..].iter().max().copied().unwrap_or(0);
    assert!(
        (500_000..=1_250_000).contains(&shown),
        "estimate {shown} bit/s under a 1 Mbit/s cap: {told:?}"
    );
}

/// Only a check's transport is told an estimate or probed toward `DOWN_CHECK_DESIRED`: a call
/// transport with the estimator aims at what its videos need, as before, and an echo without
/// `measure_down` has no estimator at all.
#[test]
fn call_transports_neither_report_a_download_estimate_nor_probe_for_the_check() {
    let mut w = World::new();
    let [_, first, second] = w.publisher_and_two_estimated_subscribers();
    let call_room = std::mem::replace(&mut w.room, RoomId::generate());
    let echo = join_echo(&mut w, 0x73);
    w.room = call_room;
    w.run(8000);
    assert!(
        !w.events
            .iter()
            .any(|e| matches!(e, SfuEvent::DownEstimate { .. })),
        "an estimate told outside a check"
    );
    for rx in [&first, &second] {
        let t = w.sfu.transport(rx).unwrap();
        assert!(t.bwe && !t.measure_down && t.estimated);
        let probe = t.probe.expect("the allocator aims the estimator");
        assert!(
            probe.desired < DOWN_CHECK_DESIRED,
            "a call's desired rate is its videos': {probe:?}"
        );
    }
    let t = w.sfu.transport(&echo).unwrap();
    assert!(!t.bwe && !t.measure_down && t.probe.is_none());
}
