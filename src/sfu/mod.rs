//! The SFU media core: sans-IO, built on str0m.
//!
//! [`Sfu`] owns every peer connection of one media worker ([`Transport`]s, one per participant,
//! in a slab named by [`TransportKey`]; their deadlines in a min-heap, `timers`) and the media of
//! each room on it ([`Router`]: who publishes what). It is driven entirely from
//! outside: datagrams and time go in ([`Sfu::handle_receive`], [`Sfu::handle_timeout`]; an
//! ICE-TCP connection's frames, [`Sfu::handle_receive_tcp`]),
//! commands from the rooms go in ([`Sfu::handle_command`]); datagrams to send
//! ([`Sfu::poll_transmit`]) and events for the rooms ([`Sfu::poll_event`]) come out. It never
//! touches tokio, sockets or the clock, so it can be tested on a virtual clock and run on any
//! thread.
//!
//! Vocabulary (as in mediasoup): a *producer* is a track a participant sends to the server, a
//! *consumer* is one participant's copy of someone else's producer. The core forwards RTP as is
//! (RTP mode): no depacketizing, only per-consumer sequence rebasing and keyframe gating, and
//! for a simulcast camera the choice of one layer per consumer and the rewriting a switch
//! between layers needs (`forwarder.rs`).
//! It decides nothing about permissions: rooms say who may publish and subscribe.

mod allocator;
mod containment;
mod dtls;
mod forwarder;
mod keyframe;
mod meter;
mod quality;
// Reached by its fuzz target (`crate::fuzz::red`).
pub(crate) mod red;
mod router;
mod stun;
mod table;
mod timers;
mod transport;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arrayvec::ArrayVec;
use str0m::bwe::{Bitrate, BweKind};
use str0m::config::DtlsCert;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive, TcpType, Transmit};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Vp8Descriptor};
use str0m::{Candidate, Event, IceConnectionState, Input, Output};

use crate::domain::ids::{ParticipantId, RoomId};
#[cfg(any(test, feature = "fault-injection"))]
pub use containment::Fault;
use containment::Scope;
pub use containment::{Contained, Recovery};
pub use dtls::crypto_provider;
// For the fuzz targets (`crate::fuzz`).
pub use allocator::Reason as QualityReason;
use allocator::{ALLOCATION_INTERVAL, Choice, Link, Probe, Shown, Video};
pub use forwarder::Layer;
use forwarder::{LayerPacket, LayerVerdict, Verdict, vp8_pid_is_15_bit};
pub(crate) use keyframe::{VideoCodec, starts_keyframe};
pub use quality::{Buckets, LOSS_BUCKETS, QualityStats, RTT_BUCKETS};
use red::Arrival;
use router::{Layers, Producer, Router};
pub(crate) use stun::local_ufrag;
pub use stun::worker_of_ufrag;
pub use table::TransportKey;
use table::Transports;
use timers::Timers;
pub use transport::{Answer, AnswerError, OfferOut, PublishMids, Transport};
use transport::{
    Connectivity, ConsumerState, ICE_CONNECT_TIMEOUT, ICE_DISCONNECT_GRACE, INITIAL_ESTIMATE,
};

/// The maps looked up per datagram or per packet. What goes into them is our own (room ids,
/// our ufrags) or passed an ICE check (remote addresses), so a stranger cannot fill them with
/// colliding keys: SipHash's flooding resistance buys nothing here, and it cost 1 % of the
/// instructions per forwarded packet.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// An audio packet from a publisher that negotiated RED, as `Sfu::forward` sees it.
#[derive(Debug, Clone, Copy)]
struct RedIn {
    /// Whether this packet is RED (else plain Opus).
    red: bool,
    /// The Opus payload type RED wraps.
    opus_pt: str0m::media::Pt,
    arrival: Arrival,
}

/// Keyframe requests to one producer are sent at most this often, however many subscribers ask.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);

/// The longest mid a client may name: str0m's mids hold 16 bytes.
const MAX_MID_LEN: usize = 16;

/// Due timeouts one poll of a transport serves itself (see `Sfu::poll_one`).
const MAX_INLINE_TIMEOUTS: u32 = 4;

/// How a transport is set up beyond what it publishes and receives. Every field defaults off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransportOptions {
    /// Offer the camera m-line with three simulcast receive layers (rids `q`, `h`, `f`, lowest
    /// first). Opt-in: a client must be ready to send on a simulcast m-line (a browser cannot
    /// put an `addTrack` camera on one), and webrtc-rs answers every offered rid whether it
    /// sends it or not.
    pub simulcast: bool,
    /// Estimate the bandwidth to this participant (str0m's send-side estimator, from their
    /// transport-wide congestion control feedback) and choose the video they are sent from it:
    /// a simulcast layer per video, audio only below the lowest (`allocator.rs`). What rooms
    /// turn on where simulcast is on. Off, the participant gets the best layer their layout
    /// can use, and packets leave as they arrive (the estimator brings a pacer).
    pub bwe: bool,
    /// The transport also receives its own producers back, each on an m-line of its own as
    /// anyone else's would come: what the pre-call network check (`crate::netcheck`) measures
    /// the download with. Never for a participant in a call, who must not be sent their own
    /// media; nothing else changes (the same forwarding, keyframe gating and renegotiation).
    pub echo: bool,
    /// Measure the download for the network check: str0m's estimator on (as with `bwe`, which
    /// this implies), aimed at [`DOWN_CHECK_DESIRED`] whatever this transport is sent, so that
    /// str0m probes the link above what the echo carries, and its estimate told as
    /// [`SfuEvent::DownEstimate`]. Never for a participant in a call: it pads their link for
    /// nothing they receive.
    pub measure_down: bool,
}

/// What the network check's estimator aims for (bits per second): what a call sends one person
/// at most, two cameras on their best simulcast layer (`f`, which the web client caps at
/// 1.5 Mbit/s) and two people's audio (Opus with RED, about 64 kbit/s each), with the margins
/// the allocator wants before it steps a video up: 4.31 Mbit/s. A link found to carry this
/// carries any call of ours. str0m probes toward it only while its estimate is below it, and
/// no probe goes above twice it (str0m's cap), which bounds both what the check can find and
/// what its bursts of padding cost someone on a metered link.
pub const DOWN_CHECK_DESIRED: u64 = allocator::estimate_for(2 * 1_500_000, 2 * 64_000);

/// A check's download estimate is told this often (str0m reports one when it moves by more than
/// 5 %, which can be every few tens of ms while it probes, and none while it holds still).
pub const DOWN_ESTIMATE_INTERVAL: Duration = Duration::from_secs(1);

/// Where a datagram or an ICE-TCP frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// A transport took it.
    Taken,
    /// An ICE check naming a live transport by our ufrag (its live one, or the one its
    /// outstanding ICE-restart offer announced) that it does not accept yet (the peer's
    /// answer, with its new credentials, is still on its way through signaling): dropped;
    /// the peer checks again.
    Early,
    /// It belongs to nobody: the transport is gone, or it is not ICE, DTLS or SRTP for one of
    /// ours.
    Nobody,
}

/// How one subscriber shows one video: `mid` is the subscriber's m-line carrying it, the size
/// is in device pixels (0 × 0: not shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoSize {
    pub mid: String,
    pub width: u32,
    pub height: u32,
}

/// Which kinds of media a participant sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublishKinds {
    pub audio: bool,
    pub video: bool,
}

/// Identifies a producer: the transport it arrives on and its m-line there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerKey {
    pub owner: TransportKey,
    pub mid: Mid,
}

/// What a producer captures: told to subscribers, so a layout can give a screen the stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackSource {
    Microphone,
    Camera,
    /// A shared screen or window (at most one per room: the room decides).
    Screen,
}

/// One server → participant m-line and whose track it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    pub mid: String,
    pub participant: ParticipantId,
    pub kind: MediaKind,
    pub source: TrackSource,
}

/// What rooms ask of the media core.
#[derive(Debug)]
pub enum SfuCommand {
    /// Create the participant's peer connection; an `Offer` event follows.
    AddTransport {
        room: RoomId,
        participant: ParticipantId,
        publish: PublishKinds,
        subscribe: bool,
        options: TransportOptions,
    },
    Answer {
        participant: ParticipantId,
        offer_id: u64,
        answer: Answer,
    },
    /// The highest simulcast layer `subscriber` may get of `publisher`'s camera (None: no
    /// cap); within it, the allocator chooses. A switch happens at the next keyframe of the
    /// new layer (one is asked for); the current layer flows until then. Without simulcast,
    /// nothing changes. For tests and tools.
    SetLayer {
        subscriber: ParticipantId,
        publisher: ParticipantId,
        layer: Option<Layer>,
    },
    /// How `participant` shows the videos it receives (its client tells on layout changes):
    /// each named m-line's size replaces what was known of it; unknown m-lines are ignored.
    /// A video shown at 0 × 0 is not sent at all; a small one gets the lowest layer that fills
    /// it.
    VideoSizes {
        participant: ParticipantId,
        sizes: Vec<VideoSize>,
    },
    RemoveTransport {
        participant: ParticipantId,
    },
    /// `participant` begins sharing their screen: their next offer adds a receive m-line for
    /// it, and once answered every subscriber gets a consumer of it. Ignored while they share.
    StartScreen {
        participant: ParticipantId,
    },
    /// The share ended: its m-line is stopped for the sharer and every subscriber.
    StopScreen {
        participant: ParticipantId,
    },
    /// What `participant` publishes changed (the room changed their role): their next offer
    /// adds receive m-lines for the kinds they now publish, and stops those of the kinds they
    /// no longer do, whose consumers every subscriber loses.
    SetPublish {
        participant: ParticipantId,
        publish: PublishKinds,
    },
    /// Replaces what `participant` is not sent: whose media, of which kind. Takes effect with
    /// the next packet; a video stream that comes back waits for a keyframe (one is asked
    /// for), so the subscriber never decodes from the middle of a picture.
    Block {
        participant: ParticipantId,
        blocked: Vec<(ParticipantId, MediaKind)>,
    },
    /// The participant's path changed or failed: restart ICE. An `Offer` with fresh local ICE
    /// credentials follows (after the outstanding one is answered, if any); once ICE connects
    /// on the new path, `Connected` again. DTLS, SRTP and every track are kept. Ignored for a
    /// participant with no negotiated peer connection.
    RestartIce {
        participant: ParticipantId,
    },
    /// A fault to exercise panic containment (`containment.rs`). Compiled only for tests.
    #[cfg(any(test, feature = "fault-injection"))]
    InjectFault(Fault),
}

/// What the media core tells rooms.
#[derive(Debug)]
pub enum SfuEvent {
    Offer {
        room: RoomId,
        participant: ParticipantId,
        offer: OfferOut,
    },
    AnswerFailed {
        room: RoomId,
        participant: ParticipantId,
        offer_id: u64,
        error: AnswerError,
    },
    /// ICE and DTLS are up: media can flow. Also when ICE is up again after a restart.
    Connected {
        room: RoomId,
        participant: ParticipantId,
    },
    /// The peer connection is gone; the transport has been removed.
    Failed {
        room: RoomId,
        participant: ParticipantId,
        reason: FailReason,
    },
    /// What `participant` is now sent of the video on its m-line `mid`: a layer (a video
    /// without layers counts as [`Layer::FULL`]), or nothing (paused: hidden, or their link is
    /// too weak for even the lowest layer, and they get audio only), and why. Only changes
    /// are told; nothing told means the video flows at its best.
    VideoQuality {
        room: RoomId,
        participant: ParticipantId,
        mid: String,
        layer: Option<Layer>,
        reason: QualityReason,
    },
    /// The bandwidth str0m estimates from `participant`'s transport feedback (bits per second,
    /// at most twice [`DOWN_CHECK_DESIRED`]: no probe goes higher): a transport with
    /// `TransportOptions::measure_down` only, every [`DOWN_ESTIMATE_INTERVAL`] (whether or not it
    /// moved), once str0m has estimated (not its starting guess).
    DownEstimate {
        room: RoomId,
        participant: ParticipantId,
        bps: u64,
    },
}

/// Why a transport failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// ICE never connected (`ICE_CONNECT_TIMEOUT`): UDP is probably blocked.
    NeverConnected,
    /// ICE lost for longer than `ICE_DISCONNECT_GRACE`, or DTLS/SRTP failed.
    Lost,
}

impl SfuEvent {
    pub fn room(&self) -> &RoomId {
        match self {
            SfuEvent::Offer { room, .. }
            | SfuEvent::AnswerFailed { room, .. }
            | SfuEvent::Connected { room, .. }
            | SfuEvent::Failed { room, .. }
            | SfuEvent::VideoQuality { room, .. }
            | SfuEvent::DownEstimate { room, .. } => room,
        }
    }

    pub fn participant(&self) -> &ParticipantId {
        match self {
            SfuEvent::Offer { participant, .. }
            | SfuEvent::AnswerFailed { participant, .. }
            | SfuEvent::Connected { participant, .. }
            | SfuEvent::Failed { participant, .. }
            | SfuEvent::VideoQuality { participant, .. }
            | SfuEvent::DownEstimate { participant, .. } => participant,
        }
    }
}

/// Counters since start (monotonic) and current sizes, for metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct SfuStats {
    pub datagrams_in: u64,
    /// Datagrams no transport accepted (unknown sender, garbage).
    pub datagrams_unrouted: u64,
    pub rtp_in: u64,
    pub rtp_in_bytes: u64,
    pub rtp_out: u64,
    pub rtp_out_bytes: u64,
    /// Per-subscriber drops: video held back until a keyframe.
    pub dropped_keyframe_wait: u64,
    /// Per-subscriber drops: older than the subscriber's stream start.
    pub dropped_stale: u64,
    /// Packets from a stream the SFU cannot place (no m-line, no producer).
    pub dropped_unknown_stream: u64,
    /// Per-subscriber drops: a RED packet that cannot be taken apart for a subscriber without
    /// RED (`red.rs`).
    pub dropped_malformed_red: u64,
    /// Audio packets received as RED (how many microphones send redundancy).
    pub red_in: u64,
    /// Audio packets a publisher's uplink lost, rebuilt from the redundancy (RED) of the next
    /// ones and sent to a subscriber without RED in their place.
    pub red_rebuilt: u64,
    /// Keyframe requests (PLI) sent to publishers, and received from subscribers.
    pub keyframe_requests_sent: u64,
    pub keyframe_requests_received: u64,
    /// Round-trip time and loss from every transport's statistics reports (`quality.rs`).
    pub quality: QualityStats,
    /// Times the allocator changed the layer a subscriber is to get of a video (pausing and
    /// resuming included).
    pub layer_switches: u64,
    /// Video consumers by what the allocator chose for them now: `q`, `h`, `f` (a video
    /// without layers counts as `f`), paused (filled in by `stats()`).
    pub video_layers: [u64; 4],
    /// Current sizes (filled in by `stats()`).
    pub transports: u64,
    pub producers: u64,
    pub consumers: u64,
}

/// Where one media worker's `Sfu` is reached: announced in every offer as host candidates.
#[derive(Debug, Clone, Default)]
pub struct LocalAddrs {
    /// The worker's UDP socket, as announced (IP + port).
    pub udp: Vec<SocketAddr>,
    /// The ICE-TCP listener, as announced: passive TCP host candidates (RFC 6544). Empty: no
    /// ICE-TCP.
    pub tcp: Vec<SocketAddr>,
    /// The worker's index, written into every local ufrag (`stun::worker_credentials`) so that
    /// a TCP connection's first STUN request names the worker it belongs to.
    pub worker: u8,
}

pub struct Sfu {
    candidates: Vec<Candidate>,
    /// The worker's index, first in every local ufrag.
    worker: u8,
    /// The address given to str0m as the destination of TCP frames: the first passive TCP
    /// candidate (str0m answers a check only on a local candidate of the same protocol).
    tcp_local_addr: Option<SocketAddr>,
    /// Demultiplexing of ICE-TCP frames: the remote end of a connection → its transport. Apart
    /// from `by_addr`: a TCP and a UDP peer may have the same address and port.
    by_tcp_addr: FastMap<SocketAddr, TransportKey>,
    /// One DTLS certificate for every transport of this worker (as a mediasoup worker has):
    /// generating a key pair per participant costs CPU at every join and memory for as long
    /// as they stay. Browsers check it by the fingerprint in each offer, not by identity.
    /// `None` if the crypto provider could not make one: then each `Rtc` makes its own.
    dtls_cert: Option<DtlsCert>,
    /// The address given to str0m as the destination of received datagrams: one of the local
    /// candidates (with one socket we cannot tell which local IP a datagram arrived on, and the
    /// kernel picks the source of replies anyway).
    local_addr: SocketAddr,
    transports: Transports,
    routers: FastMap<RoomId, Router>,
    /// Demultiplexing cache: remote address → transport. Misses are routed by the local ICE
    /// ufrag a STUN check names (`by_ufrag`), then confirmed with `Rtc::accepts`.
    by_addr: FastMap<SocketAddr, TransportKey>,
    /// Each peer connection's local ICE ufrag, and an outstanding ICE-restart offer's.
    by_ufrag: FastMap<String, TransportKey>,
    /// Transports with output to poll.
    dirty: Vec<TransportKey>,
    /// When each transport is next due.
    timers: Timers,
    transmits: VecDeque<Transmit>,
    events: VecDeque<SfuEvent>,
    stats: SfuStats,
    /// The latest time given to us, for work deferred to `poll_transmit`.
    now: Instant,
    /// Reused for each poll's events.
    scratch_events: Vec<Event>,
    /// What the work in progress may half write, should it panic (`containment.rs`).
    scope: Scope,
    /// A transport to panic at its next poll ([`Fault::PanicOnPoll`]).
    #[cfg(any(test, feature = "fault-injection"))]
    panic_on_poll: Option<TransportKey>,
    /// The next transport added panics ([`Fault::PanicOnNextAdd`]).
    #[cfg(any(test, feature = "fault-injection"))]
    panic_on_add: bool,
}

impl Sfu {
    /// `announce` are the addresses put in offers as host candidates (IP + the media port).
    /// `now` starts the core's clock; from then on time comes with every input.
    pub fn new(announce: &[SocketAddr], now: Instant) -> Self {
        Self::with_addrs(
            &LocalAddrs {
                udp: announce.to_vec(),
                ..LocalAddrs::default()
            },
            now,
        )
    }

    /// [`Sfu::new`] with passive ICE-TCP candidates and the worker's index.
    pub fn with_addrs(addrs: &LocalAddrs, now: Instant) -> Self {
        let announce = &addrs.udp;
        let mut candidates: Vec<Candidate> = announce
            .iter()
            .filter_map(|a| Candidate::host(*a, "udp").ok())
            .collect();
        // After the UDP ones, and at a lower priority (str0m's type preference for a TCP host
        // candidate is 90 against UDP's 126): a browser that can use UDP does.
        candidates.extend(addrs.tcp.iter().filter_map(|a| {
            Candidate::builder()
                .tcp()
                .host(*a)
                .tcptype(TcpType::Passive)
                .build()
                .ok()
        }));
        let dtls_cert = dtls::crypto_provider().dtls_provider.generate_certificate();
        if dtls_cert.is_none() {
            tracing::warn!("no shared DTLS certificate; every transport will generate its own");
        }
        Self {
            worker: addrs.worker,
            tcp_local_addr: addrs.tcp.first().copied(),
            by_tcp_addr: FastMap::default(),
            dtls_cert,
            local_addr: announce
                .first()
                .copied()
                .unwrap_or(([127, 0, 0, 1], 0).into()),
            candidates,
            transports: Transports::default(),
            routers: FastMap::default(),
            by_addr: FastMap::default(),
            by_ufrag: FastMap::default(),
            dirty: Vec::new(),
            timers: Timers::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: SfuStats::default(),
            now,
            scratch_events: Vec::new(),
            scope: Scope::Clean,
            #[cfg(any(test, feature = "fault-injection"))]
            panic_on_poll: None,
            #[cfg(any(test, feature = "fault-injection"))]
            panic_on_add: false,
        }
    }

    /// An empty core with `old`'s addresses, certificate, counters and clock: what replaces a
    /// core that can no longer be trusted (`containment.rs`).
    fn fresh_like(old: &Sfu) -> Self {
        Self {
            worker: old.worker,
            tcp_local_addr: old.tcp_local_addr,
            by_tcp_addr: FastMap::default(),
            dtls_cert: old.dtls_cert.clone(),
            local_addr: old.local_addr,
            candidates: old.candidates.clone(),
            transports: Transports::default(),
            routers: FastMap::default(),
            by_addr: FastMap::default(),
            by_ufrag: FastMap::default(),
            dirty: Vec::new(),
            timers: Timers::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: old.stats,
            now: old.now,
            scratch_events: Vec::new(),
            scope: Scope::Clean,
            #[cfg(any(test, feature = "fault-injection"))]
            panic_on_poll: None,
            #[cfg(any(test, feature = "fault-injection"))]
            panic_on_add: false,
        }
    }

    pub fn stats(&self) -> SfuStats {
        SfuStats {
            transports: self.transports.len() as u64,
            producers: self
                .routers
                .values()
                .map(|r| r.producers.len() as u64)
                .sum(),
            consumers: self
                .transports
                .iter()
                .map(|(_, t)| t.consumers.len() as u64)
                .sum(),
            video_layers: self.video_layers(),
            ..self.stats
        }
    }

    /// Open video consumers by chosen layer (q, h, f, paused).
    fn video_layers(&self) -> [u64; 4] {
        let mut counts = [0; 4];
        for (_, t) in self.transports.iter() {
            for c in &t.consumers {
                if c.kind != MediaKind::Video || !matches!(c.state, ConsumerState::Open(_)) {
                    continue;
                }
                let slot = match (c.target, c.layers.is_some()) {
                    (None, _) => 3,
                    (Some(l), true) => l.index(),
                    (Some(_), false) => Layer::FULL.index(),
                };
                counts[slot] += 1;
            }
        }
        counts
    }

    pub fn transport_count(&self) -> usize {
        self.transports.len()
    }

    /// True when no transport, room route, address or ufrag is left: what a worker whose
    /// participants have all left must come back to (the fuzz target checks it after each input).
    pub fn holds_nothing(&self) -> bool {
        self.transports.len() == 0
            && self.routers.is_empty()
            && self.by_addr.is_empty()
            && self.by_tcp_addr.is_empty()
            && self.by_ufrag.is_empty()
    }

    /// The participant's transport, if it has one on this worker.
    pub fn transport(&self, participant: &ParticipantId) -> Option<&Transport> {
        self.transports.by_id(participant)
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if !self.dirty.is_empty() {
            self.drive(self.now);
        }
        self.scope = Scope::Clean;
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SfuEvent> {
        if !self.dirty.is_empty() {
            self.drive(self.now);
        }
        self.scope = Scope::Clean;
        self.events.pop_front()
    }

    /// When [`Sfu::handle_timeout`] is next due: a str0m timer, or a connectivity deadline.
    /// None while no transport has a peer connection.
    pub fn next_timeout(&mut self) -> Option<Instant> {
        self.scope = Scope::Worker;
        let mut next = None;
        // Stale entries on top would wake the worker for nothing: drop them first.
        while let Some((at, key)) = self.timers.peek() {
            match self.transports.get(key) {
                Some(t) if t.scheduled == Some(at) => {
                    next = Some(at);
                    break;
                }
                _ => self.timers.pop(),
            }
        }
        self.scope = Scope::Clean;
        next
    }

    pub fn handle_command(&mut self, now: Instant, cmd: SfuCommand) {
        self.now = now;
        // Narrowed to the participant's transport once it is looked up (`key_for`).
        self.scope = Scope::Worker;
        match cmd {
            SfuCommand::AddTransport {
                room,
                participant,
                publish,
                subscribe,
                options,
            } => self.add_transport(now, room, participant, publish, subscribe, options),
            SfuCommand::SetLayer {
                subscriber,
                publisher,
                layer,
            } => self.set_layer(now, &subscriber, &publisher, layer),
            SfuCommand::VideoSizes { participant, sizes } => {
                self.video_sizes(now, &participant, &sizes);
            }
            SfuCommand::Answer {
                participant,
                offer_id,
                answer,
            } => {
                if let Some(key) = self.key_for(&participant) {
                    self.answer(now, key, offer_id, answer);
                }
            }
            SfuCommand::RemoveTransport { participant } => {
                if let Some(key) = self.key_for(&participant) {
                    self.remove_transport(key);
                }
            }
            SfuCommand::StartScreen { participant } => {
                if let Some(key) = self.key_for(&participant)
                    && let Some(t) = self.transports.get_mut(key)
                    && t.start_screen()
                {
                    self.negotiate(key);
                }
            }
            SfuCommand::StopScreen { participant } => {
                if let Some(key) = self.key_for(&participant) {
                    self.stop_screen(key);
                }
            }
            SfuCommand::SetPublish {
                participant,
                publish,
            } => {
                if let Some(key) = self.key_for(&participant) {
                    self.set_publish(key, publish);
                }
            }
            SfuCommand::Block {
                participant,
                blocked,
            } => {
                if let Some(key) = self.key_for(&participant)
                    && let Some(t) = self.transports.get_mut(key)
                {
                    t.blocked = blocked;
                }
            }
            SfuCommand::RestartIce { participant } => self.restart_ice(participant),
            #[cfg(any(test, feature = "fault-injection"))]
            SfuCommand::InjectFault(fault) => self.inject(fault),
        }
        self.drive(now);
        self.scope = Scope::Clean;
    }

    /// The participant's transport, if any, and from now on the scope of the work: a command
    /// naming a participant is work for their transport.
    fn key_for(&mut self, participant: &ParticipantId) -> Option<TransportKey> {
        let key = self.transports.key_of(participant)?;
        self.scope = Scope::Transport(key);
        Some(key)
    }

    fn restart_ice(&mut self, participant: ParticipantId) {
        let Some(key) = self.key_for(&participant) else {
            return;
        };
        let Some(t) = self.transports.get_mut(key) else {
            return;
        };
        if !t.request_ice_restart() {
            tracing::debug!(participant = %participant, "ICE restart asked before any negotiation; ignored");
            return;
        }
        self.negotiate(key);
    }

    /// One datagram from the media socket.
    pub fn handle_receive(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        self.receive(now, Protocol::Udp, source, data);
    }

    /// One RFC 4571 frame from the ICE-TCP connection whose remote end is `source`, and where
    /// it went (see [`Routed`]): a connection whose frame belongs to nobody is to be closed (a
    /// TCP connection carries one peer connection for its whole life); one whose ICE check
    /// came early is kept, for its next check.
    pub fn handle_receive_tcp(&mut self, now: Instant, source: SocketAddr, data: &[u8]) -> Routed {
        self.receive(now, Protocol::Tcp, source, data)
    }

    /// Forgets an ICE-TCP connection that closed: a new one from the same address and port
    /// must be routed by its STUN request again.
    pub fn tcp_closed(&mut self, source: SocketAddr) {
        self.scope = Scope::Worker;
        self.by_tcp_addr.remove(&source);
        self.scope = Scope::Clean;
    }

    fn receive(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        data: &[u8],
    ) -> Routed {
        // Until an owner is found, routing only reads (a stranger's datagram that makes a
        // parser panic costs nothing but itself).
        self.scope = Scope::Clean;
        self.stats.datagrams_in += 1;
        let local = match proto {
            Protocol::Udp => self.local_addr,
            _ => match self.tcp_local_addr {
                Some(a) => a,
                None => {
                    self.stats.datagrams_unrouted += 1;
                    return Routed::Nobody;
                }
            },
        };
        let Ok(receive) = Receive::new(proto, source, local, data) else {
            self.stats.datagrams_unrouted += 1;
            return Routed::Nobody;
        };
        let input = Input::Receive(now, receive);
        let by_addr = match proto {
            Protocol::Udp => &mut self.by_addr,
            _ => &mut self.by_tcp_addr,
        };
        let mut early = false;
        let owner = match by_addr.get(&source) {
            Some(key) => Some(*key),
            // An address not seen yet: a peer's first datagram there is always an ICE check
            // (STUN) naming our ufrag. Anything else from an unknown address belongs to nobody.
            None => {
                let named =
                    stun::local_ufrag(data).and_then(|ufrag| self.by_ufrag.get(ufrag).copied());
                let found = named.filter(|key| {
                    self.transports
                        .get(*key)
                        .and_then(Transport::rtc)
                        .is_some_and(|rtc| rtc.accepts(&input))
                });
                // Our live ufrag, but a check the transport does not accept yet: after an ICE
                // restart the peer's checks go straight to the worker while its answer (with
                // its new credentials) still travels through signaling and the room.
                early = named.is_some() && found.is_none();
                if let Some(key) = found {
                    self.scope = Scope::Transport(key);
                    by_addr.insert(source, key);
                }
                found
            }
        };
        let Some(key) = owner else {
            self.stats.datagrams_unrouted += 1;
            return if early { Routed::Early } else { Routed::Nobody };
        };
        self.scope = Scope::Transport(key);
        let Some(t) = self.transports.get_mut(key) else {
            self.scope = Scope::Clean;
            return Routed::Nobody;
        };
        let Some(rtc) = t.rtc_mut() else {
            self.scope = Scope::Clean;
            return Routed::Nobody;
        };
        if let Err(e) = rtc.handle_input(input) {
            tracing::debug!(participant = %t.id, error = %e, "peer input rejected");
        }
        self.now = now;
        // The source at once (str0m wants its output drained after each input); the
        // subscribers it wrote to wait for `poll_transmit`, so a batch of datagrams costs each
        // subscriber one poll.
        self.poll_one(now, key);
        self.scope = Scope::Clean;
        Routed::Taken
    }

    /// Advances every transport whose deadline has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.scope = Scope::Worker;
        let mut due = Vec::new();
        while let Some((at, key)) = self.timers.pop_due(now) {
            if let Some(t) = self.transports.get_mut(key)
                && t.scheduled == Some(at)
            {
                t.scheduled = None;
                due.push(key);
            }
        }
        for key in due {
            self.scope = Scope::Transport(key);
            let Some(t) = self.transports.get_mut(key) else {
                continue;
            };
            if t.next_timeout <= now
                && let Some(rtc) = t.rtc_mut()
            {
                if let Err(e) = rtc.handle_input(Input::Timeout(now)) {
                    tracing::debug!(participant = %t.id, error = %e, "timeout handling failed");
                }
                Self::mark_dirty(&mut self.dirty, key, t);
            }
            // The allocator runs where the transport is polled.
            if t.allocation_due.is_some_and(|at| at <= now) {
                Self::mark_dirty(&mut self.dirty, key, t);
            }
            let polled = t.dirty;
            let alive = t.rtc().is_none_or(|rtc| rtc.is_alive());
            let reason = match t.connectivity {
                Connectivity::New { since } if now.duration_since(since) > ICE_CONNECT_TIMEOUT => {
                    Some(FailReason::NeverConnected)
                }
                Connectivity::Disconnected { since }
                    if now.duration_since(since) > ICE_DISCONNECT_GRACE =>
                {
                    Some(FailReason::Lost)
                }
                Connectivity::Restarting { since }
                    if now.duration_since(since) > ICE_CONNECT_TIMEOUT =>
                {
                    Some(FailReason::Lost)
                }
                Connectivity::Unnegotiated | Connectivity::New { .. } if !alive => {
                    Some(FailReason::NeverConnected)
                }
                _ if !alive => Some(FailReason::Lost),
                _ => None,
            };
            match reason {
                Some(reason) => self.fail(key, reason),
                // Given the timeout: polled in `drive`, which queues it again.
                None if polled => {}
                // Only a connectivity deadline was checked: queue it again here.
                None => self.reschedule(key),
            }
        }
        self.drive(now);
        self.scope = Scope::Clean;
    }

    fn add_transport(
        &mut self,
        now: Instant,
        room: RoomId,
        participant: ParticipantId,
        publish: PublishKinds,
        subscribe: bool,
        options: TransportOptions,
    ) {
        if self.transports.key_of(&participant).is_some() {
            return;
        }
        self.scope = Scope::Room {
            room: room.clone(),
            participant: participant.clone(),
        };
        #[cfg(any(test, feature = "fault-injection"))]
        if std::mem::take(&mut self.panic_on_add) {
            panic!("injected fault: a panic while adding a transport");
        }
        let mut t = Transport::new(now, room.clone(), participant, publish, subscribe);
        t.set_options(options);
        let router = self.routers.entry(room).or_default();
        if subscribe {
            for p in &router.producers {
                t.add_consumer(
                    p.key,
                    p.publisher.clone(),
                    p.kind,
                    p.source,
                    p.layers.is_some(),
                );
            }
        }
        let key = self.transports.insert(t);
        router.members.push(key);
        if let Some(t) = self.transports.get_mut(key) {
            Self::mark_dirty(&mut self.dirty, key, t);
        }
        self.negotiate(key);
    }

    /// See [`SfuCommand::SetLayer`].
    fn set_layer(
        &mut self,
        now: Instant,
        subscriber: &ParticipantId,
        publisher: &ParticipantId,
        layer: Option<Layer>,
    ) {
        let Some(key) = self.key_for(subscriber) else {
            return;
        };
        let Some(t) = self.transports.get_mut(key) else {
            return;
        };
        for c in &mut t.consumers {
            if &c.publisher == publisher && c.layers.is_some() {
                c.cap = layer;
            }
        }
        t.reallocate(now);
        Self::mark_dirty(&mut self.dirty, key, t);
    }

    /// See [`SfuCommand::VideoSizes`].
    fn video_sizes(&mut self, now: Instant, participant: &ParticipantId, sizes: &[VideoSize]) {
        let Some(key) = self.key_for(participant) else {
            return;
        };
        let Some(t) = self.transports.get_mut(key) else {
            return;
        };
        for size in sizes {
            // A longer one is no mid of ours (str0m would cut it to one that might be).
            if size.mid.len() > MAX_MID_LEN {
                continue;
            }
            let mid = Mid::from(size.mid.as_str());
            if let Some(c) = t
                .consumers
                .iter_mut()
                .find(|c| c.kind == MediaKind::Video && c.state.mid() == Some(mid))
            {
                c.shown = Shown::of(size.width, size.height);
            }
        }
        t.reallocate(now);
        Self::mark_dirty(&mut self.dirty, key, t);
    }

    /// Runs the allocator for one subscriber if it is due (`allocator.rs`): each open video
    /// consumer gets a target layer or is paused, the room is told what changed, and str0m's
    /// estimator is told what to probe for.
    fn allocate(&mut self, now: Instant, key: TransportKey) {
        let Some(t) = self.transports.get_mut(key) else {
            return;
        };
        if t.allocation_due.is_none_or(|at| at > now) {
            return;
        }
        t.allocation_due = t.bwe.then(|| now + ALLOCATION_INTERVAL);
        let Some(router) = self.routers.get(&t.room) else {
            return;
        };
        let producer = |source: ProducerKey| router.producers.iter().find(|p| p.key == source);
        let mut audio = 0;
        let mut open = Vec::new();
        let mut videos = Vec::new();
        let mut memory = Vec::new();
        for (i, c) in t.consumers.iter().enumerate() {
            if !matches!(c.state, ConsumerState::Open(_)) || t.blocks(&c.publisher, c.kind) {
                continue;
            }
            let Some(p) = producer(c.source) else {
                continue;
            };
            if c.kind == MediaKind::Audio {
                audio += p.audio_rate(now, t.red.is_some());
                continue;
            }
            let rates = p.layer_rates(now);
            open.push(i);
            videos.push(Video {
                screen: c.track == TrackSource::Screen,
                shown: c.shown,
                layers: rates,
                cap: c.cap,
            });
            memory.push(c.memory);
        }
        let link = Link {
            estimate: t.bwe.then_some(t.estimate),
            audio,
            loss: t.loss,
        };
        let (choices, mut probe) =
            allocator::allocate(now, link, &videos, &mut memory, &mut t.link_memory);
        if t.measure_down {
            // The check's estimator aims at what a call may need, not at what the echo carries
            // (which is only what went up): padding and probes find the rest of the link.
            // And, while the estimate is below that aim, it is lowered for every other run and
            // restored at the next: str0m probes for an allocation only when the desired rate
            // rises (as the allocator's `ASK_AGAIN`, but every second: a check has seconds to
            // find the link, and each such probe may double the estimate; without it a browser
            // check sat at 855 kbit/s for 4 s of its 6 on a free downlink).
            let dip = t.estimate < DOWN_CHECK_DESIRED && !t.down_dipped;
            t.down_dipped = dip;
            probe = probe.map(|p| {
                let aim = p.desired.max(DOWN_CHECK_DESIRED);
                Probe {
                    minimum: p.minimum,
                    desired: if dip {
                        aim.saturating_sub(allocator::ASK_AGAIN_DIP)
                    } else {
                        aim
                    },
                }
            });
            // Every second whether or not it moved: the client weighs what it is told by time.
            let due = t
                .down_told
                .is_none_or(|at| now.saturating_duration_since(at) >= DOWN_ESTIMATE_INTERVAL);
            if t.estimated && due {
                t.down_told = Some(now);
                self.events.push_back(SfuEvent::DownEstimate {
                    room: t.room.clone(),
                    participant: t.id.clone(),
                    bps: t.estimate.min(2 * DOWN_CHECK_DESIRED),
                });
            }
        }
        if t.bwe {
            // What the estimate did and what it bought (SIMULCAST.md §10 reads these): only
            // rates and layers, under the participant id other media logs carry already.
            let ago_ms = |at: Option<Instant>| {
                at.map_or(-1, |at| {
                    i64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(i64::MAX)
                })
            };
            tracing::debug!(
                target: "huizhen::sfu::allocation",
                participant = %t.id,
                estimate_kbps = t.estimate / 1000,
                sent_kbps = t.link_memory.sent / 1000,
                audio_kbps = audio / 1000,
                loss_percent = t.loss.map_or(-1.0, |l| l * 100.0),
                fell_ms = ago_ms(t.link_memory.fell_at),
                lossy_ms = ago_ms(t.link_memory.lossy_at),
                layers = %choices
                    .iter()
                    .map(|c| c.layer.map_or("-", Layer::rid))
                    .collect::<Vec<_>>()
                    .join(","),
                desired_kbps = probe.map_or(0, |p| p.desired / 1000),
                "allocation"
            );
        }
        for ((i, choice), mem) in open.into_iter().zip(choices).zip(memory) {
            let c = &mut t.consumers[i];
            c.memory = mem;
            if c.target != choice.layer {
                self.stats.layer_switches += 1;
                c.target = choice.layer;
            }
            // A video without layers is told as full.
            let told = Choice {
                layer: match c.layers {
                    Some(_) => choice.layer,
                    None => choice.layer.map(|_| Layer::FULL),
                },
                reason: choice.reason,
            };
            let news = match c.told {
                Some(before) => before != told,
                // Nothing told yet means "at its best".
                None => told.reason != QualityReason::Display,
            };
            if news && let ConsumerState::Open(mid) = c.state {
                c.told = Some(told);
                self.events.push_back(SfuEvent::VideoQuality {
                    room: t.room.clone(),
                    participant: t.id.clone(),
                    mid: mid.to_string(),
                    layer: told.layer,
                    reason: told.reason,
                });
            }
        }
        if let Some(probe) = probe
            && t.probe != Some(probe)
            && let Some(rtc) = t.rtc.as_deref_mut()
        {
            t.probe = Some(probe);
            rtc.bwe()
                .set_bitrate(Bitrate::bps(probe.minimum), Bitrate::bps(probe.desired));
        }
    }

    fn answer(&mut self, now: Instant, key: TransportKey, offer_id: u64, answer: Answer) {
        let Some(t) = self.transports.get_mut(key) else {
            return;
        };
        let room = t.room.clone();
        let participant = t.id.clone();
        let echo = t.echo;
        let offered = t.offered_ufrag().map(str::to_owned);
        let applied = t.apply_answer(now, offer_id, answer);
        // A restart whose answer failed is abandoned: its ufrag routes nothing (the next offer
        // restarts with new credentials). One that succeeded is the live ufrag now.
        if let Some(ufrag) = offered
            && !t.ufrags().any(|u| u == ufrag)
        {
            self.by_ufrag.remove(&ufrag);
        }
        let outcome = match applied {
            Ok(o) => {
                tracing::debug!(participant = %participant, offer = offer_id, producers = o.new_producers.len(), "answer applied");
                o
            }
            Err(error) => {
                // Not the error's text: a parse error may quote the SDP.
                tracing::debug!(participant = %participant, offer = offer_id, stale = matches!(error, AnswerError::Stale), "answer not applied");
                self.events.push_back(SfuEvent::AnswerFailed {
                    room,
                    participant,
                    offer_id,
                    error,
                });
                // A failed answer put its changes back: offer them again.
                self.negotiate(key);
                return;
            }
        };
        Self::mark_dirty(&mut self.dirty, key, t);
        if let Some(old) = outcome.retired_ufrag {
            // ICE restarted: the old ufrag routes nothing any more, and every address must
            // pass a check naming the new one (the path changed: the old addresses are stale).
            self.by_ufrag.remove(&old);
            if let Some(new) = &t.local_ufrag {
                self.by_ufrag.insert(new.clone(), key);
            }
            self.by_addr.retain(|_, k| *k != key);
            self.by_tcp_addr.retain(|_, k| *k != key);
        }
        if let Some(router) = self.routers.get_mut(&room) {
            for (mid, kind, source, simulcast) in outcome.new_producers {
                let producer = ProducerKey { owner: key, mid };
                router.producers.push(Producer {
                    key: producer,
                    publisher: participant.clone(),
                    kind,
                    source,
                    last_keyframe_request: Default::default(),
                    layers: simulcast.then(Layers::default),
                    meters: Default::default(),
                    red: Default::default(),
                    primary: Default::default(),
                });
                for member in router.members.iter().filter(|m| **m != key) {
                    if let Some(other) = self.transports.get_mut(*member)
                        && other.subscribe
                    {
                        other.add_consumer(producer, participant.clone(), kind, source, simulcast);
                    }
                }
                if echo && let Some(own) = self.transports.get_mut(key) {
                    own.add_consumer(producer, participant.clone(), kind, source, simulcast);
                }
            }
            let members = router.members.clone();
            for m in members.into_iter().filter(|m| *m != key) {
                self.negotiate(m);
            }
        }
        if !outcome.opened_video.is_empty()
            && let Some(t) = self.transports.get_mut(key)
        {
            // New videos to allocate before their first packet.
            t.reallocate(now);
        }
        for producer in outcome.opened_video {
            self.request_keyframe(now, producer, None);
        }
        // Changes queued while the offer was outstanding.
        self.negotiate(key);
    }

    fn remove_transport(&mut self, key: TransportKey) -> Option<(RoomId, ParticipantId)> {
        let mut t = self.transports.remove(key)?;
        // Out of the table, the key names no room: the room and the participant do.
        self.scope = Scope::Room {
            room: t.room.clone(),
            participant: t.id.clone(),
        };
        if let Some(rtc) = t.rtc_mut() {
            rtc.disconnect();
        }
        self.by_addr.retain(|_, k| *k != key);
        self.by_tcp_addr.retain(|_, k| *k != key);
        for ufrag in t.ufrags() {
            self.by_ufrag.remove(ufrag);
        }
        let room = t.room.clone();
        if let Some(router) = self.routers.get_mut(&room) {
            router.members.retain(|m| *m != key);
            let gone: Vec<ProducerKey> = router
                .producers
                .iter()
                .filter(|p| p.key.owner == key)
                .map(|p| p.key)
                .collect();
            router.producers.retain(|p| p.key.owner != key);
            let members = router.members.clone();
            if members.is_empty() {
                self.routers.remove(&room);
            }
            for m in members {
                if let Some(other) = self.transports.get_mut(m) {
                    for producer in &gone {
                        other.remove_consumer(producer);
                    }
                }
                self.negotiate(m);
            }
        }
        Some((room, t.id))
    }

    /// Ends a screen share: the sharer's m-line and every subscriber's consumer of it are
    /// stopped in their next offers, and the router forgets the producer.
    fn stop_screen(&mut self, key: TransportKey) {
        let Some(t) = self.transports.get_mut(key) else {
            return;
        };
        let gone = t.stop_screen().map(|mid| ProducerKey { owner: key, mid });
        let room = t.room.clone();
        self.negotiate(key);
        self.forget_producers(key, &room, gone.into_iter().collect());
    }

    /// A role change: the participant's own m-lines follow what they now publish, and what
    /// they no longer publish stops reaching the others.
    fn set_publish(&mut self, key: TransportKey, publish: PublishKinds) {
        let Some(t) = self.transports.get_mut(key) else {
            return;
        };
        let gone = t
            .set_publish(publish)
            .into_iter()
            .map(|mid| ProducerKey { owner: key, mid })
            .collect();
        let room = t.room.clone();
        self.negotiate(key);
        self.forget_producers(key, &room, gone);
    }

    /// `owner`'s producers that ended: the router forgets them and every other member's
    /// consumer of them is stopped in its next offer.
    fn forget_producers(&mut self, owner: TransportKey, room: &RoomId, gone: Vec<ProducerKey>) {
        let Some(router) = self.routers.get_mut(room) else {
            return;
        };
        if gone.is_empty() {
            return;
        }
        router.producers.retain(|p| !gone.contains(&p.key));
        let members = router.members.clone();
        let echo = self.transports.get(owner).is_some_and(|t| t.echo);
        // The owner's own copies too, where it receives them (`TransportOptions::echo`).
        for m in members.into_iter().filter(|m| *m != owner || echo) {
            if let Some(other) = self.transports.get_mut(m) {
                for producer in &gone {
                    other.remove_consumer(producer);
                }
            }
            self.negotiate(m);
        }
    }

    fn fail(&mut self, key: TransportKey, reason: FailReason) {
        if let Some((room, participant)) = self.remove_transport(key) {
            self.events.push_back(SfuEvent::Failed {
                room,
                participant,
                reason,
            });
        }
    }

    fn negotiate(&mut self, key: TransportKey) {
        let Some(t) = self.transports.get_mut(key) else {
            return;
        };
        if t.prepare(
            self.now,
            &self.candidates,
            self.dtls_cert.as_ref(),
            self.worker,
        ) {
            if let Some(ufrag) = &t.local_ufrag {
                self.by_ufrag.insert(ufrag.clone(), key);
            }
            Self::mark_dirty(&mut self.dirty, key, t);
        }
        if let Some(offer) = t.negotiate() {
            // A restart's checks may arrive before its answer: they must find their transport
            // (see `Routed::Early`), not be taken for a stranger's.
            if let Some(ufrag) = t.offered_ufrag() {
                self.by_ufrag.insert(ufrag.to_owned(), key);
            }
            tracing::debug!(participant = %t.id, offer = offer.offer_id, tracks = offer.tracks.len(), "offer made");
            self.events.push_back(SfuEvent::Offer {
                room: t.room.clone(),
                participant: t.id.clone(),
                offer,
            });
        }
    }

    /// Asks `producer`'s publisher for a keyframe, on `layer` of a simulcast producer (None:
    /// the best arriving one, what a subscriber without a wish gets). Every path names the
    /// rid: str0m's lookup by mid alone matches any of a simulcast m-line's streams.
    fn request_keyframe(&mut self, now: Instant, producer: ProducerKey, layer: Option<Layer>) {
        let Some(owner) = self.transports.get_mut(producer.owner) else {
            return;
        };
        let Some(router) = self.routers.get_mut(&owner.room) else {
            return;
        };
        let Some(p) = router.producers.iter_mut().find(|p| p.key == producer) else {
            return;
        };
        let (slot, rid) = match &p.layers {
            None => (0, None),
            Some(layers) => {
                let Some(layer) = layer.or_else(|| layers.pick(None)) else {
                    return;
                };
                (layer.index(), Some(layer.rid().into()))
            }
        };
        let Some(last) = p.last_keyframe_request.get_mut(slot) else {
            return;
        };
        if last.is_some_and(|t| now.duration_since(t) < KEYFRAME_REQUEST_INTERVAL) {
            return;
        }
        *last = Some(now);
        let Some(rtc) = owner.rtc_mut() else {
            return;
        };
        if let Some(rx) = rtc
            .direct_api()
            .stream_rx_by_mid(producer.mid, rid)
            .as_mut()
        {
            rx.request_keyframe(KeyframeRequestKind::Pli);
            self.stats.keyframe_requests_sent += 1;
            Self::mark_dirty(&mut self.dirty, producer.owner, owner);
        }
    }

    /// Marks a transport as having output to poll (once, however often it is asked).
    fn mark_dirty(dirty: &mut Vec<TransportKey>, key: TransportKey, t: &mut Transport) {
        if !t.dirty {
            t.dirty = true;
            dirty.push(key);
        }
    }

    /// Queues the transport at its current deadline, unless it is queued there already.
    fn reschedule(&mut self, key: TransportKey) {
        let Some(t) = self.transports.get_mut(key) else {
            return;
        };
        let deadline = t.deadline();
        if t.scheduled == deadline {
            return;
        }
        t.scheduled = deadline;
        if let Some(at) = deadline {
            self.timers.push(at, key);
            if self.timers.needs_rebuild(self.transports.len()) {
                let current = self
                    .transports
                    .iter()
                    .filter_map(|(k, t)| t.scheduled.map(|at| (at, k)));
                self.timers.rebuild(current);
            }
        }
    }

    /// Polls every dirty transport until all are drained; forwarding makes others dirty. A
    /// subscriber written to by many packets of one batch is polled once for all of them.
    fn drive(&mut self, now: Instant) {
        while let Some(key) = self.dirty.pop() {
            self.scope = Scope::Transport(key);
            if let Some(t) = self.transports.get_mut(key) {
                t.dirty = false;
            }
            self.poll_one(now, key);
        }
    }

    /// Drains one transport's output (datagrams to send, events to act on), then queues it at
    /// its next deadline.
    fn poll_one(&mut self, now: Instant, key: TransportKey) {
        #[cfg(any(test, feature = "fault-injection"))]
        if self.panic_on_poll == Some(key) {
            self.panic_on_poll = None;
            panic!("injected fault: a panic while polling a transport");
        }
        let Some(t) = self.transports.get_mut(key) else {
            return;
        };
        let Some(rtc) = t.rtc.as_deref_mut() else {
            return;
        };
        let mut events = std::mem::take(&mut self.scratch_events);
        let mut inline_timeouts = 0;
        loop {
            match rtc.poll_output() {
                // str0m asks for a timeout that is already due when it has work queued: media
                // written to a stream is only sent after the next timeout. Served here, a
                // forwarded packet leaves in the turn it arrived instead of the I/O loop's next
                // turn. Bounded, so that a peer that keeps asking cannot hold the worker.
                Ok(Output::Timeout(at)) if at <= now && inline_timeouts < MAX_INLINE_TIMEOUTS => {
                    inline_timeouts += 1;
                    if let Err(e) = rtc.handle_input(Input::Timeout(now)) {
                        tracing::debug!(participant = %t.id, error = %e, "timeout handling failed");
                    }
                }
                Ok(Output::Timeout(at)) => {
                    t.next_timeout = at;
                    break;
                }
                Ok(Output::Transmit(tx)) => self.transmits.push_back(tx),
                Ok(Output::Event(e)) => events.push(e),
                Err(e) => {
                    tracing::debug!(participant = %t.id, error = %e, "peer connection failed");
                    rtc.disconnect();
                    t.next_timeout = now;
                    break;
                }
            }
        }
        for e in events.drain(..) {
            self.handle_event(now, key, e);
        }
        self.scratch_events = events;
        self.allocate(now, key);
        self.reschedule(key);
    }

    fn handle_event(&mut self, now: Instant, key: TransportKey, event: Event) {
        match event {
            Event::RtpPacket(pkt) => self.forward(now, key, pkt),
            Event::KeyframeRequest(req) => {
                self.stats.keyframe_requests_received += 1;
                // On the layer the subscriber decodes (a simulcast source).
                let source = self
                    .transports
                    .get(key)
                    .and_then(|t| t.consumer_by_mid(req.mid))
                    .map(|c| (c.source, c.layers.as_ref().and_then(|l| l.current())));
                if let Some((source, layer)) = source {
                    self.request_keyframe(now, source, layer);
                }
            }
            Event::Connected => {
                if let Some(t) = self.transports.get_mut(key) {
                    t.connectivity = Connectivity::Connected;
                    self.events.push_back(SfuEvent::Connected {
                        room: t.room.clone(),
                        participant: t.id.clone(),
                    });
                }
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) if self
                .transports
                .get(key)
                .is_some_and(|t| matches!(t.connectivity, Connectivity::Restarting { .. })) =>
            {
                self.ice_restarted(now, key);
            }
            Event::IceConnectionStateChange(state) => {
                if let Some(t) = self.transports.get_mut(key) {
                    let was_lost = matches!(t.connectivity, Connectivity::Disconnected { .. });
                    match state {
                        // Only a connection that was up can be lost; before that the connect
                        // timeout is what counts.
                        IceConnectionState::Disconnected
                            if t.connectivity == Connectivity::Connected =>
                        {
                            t.connectivity = Connectivity::Disconnected { since: now };
                        }
                        IceConnectionState::Connected | IceConnectionState::Completed
                            if was_lost =>
                        {
                            t.connectivity = Connectivity::Connected;
                        }
                        _ => {}
                    }
                }
            }
            Event::StreamPaused(p) => {
                self.layer_paused(now, key, p.mid, p.rid.as_deref(), p.paused);
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                if let Some(t) = self.transports.get_mut(key)
                    && let Some(bps) = estimate.as_valid()
                {
                    // Down at once: the allocator runs before this turn ends.
                    t.estimate = bps.as_u64();
                    // str0m's first report repeats its starting guess, before any feedback.
                    t.estimated |= bps != INITIAL_ESTIMATE;
                    t.reallocate(now);
                }
            }
            // Statistics reports, about once a second per transport (never per packet).
            Event::PeerStats(ref stats) => {
                if let Some(t) = self.transports.get_mut(key) {
                    t.loss = stats.egress_loss_fraction;
                }
                self.stats.quality.observe(&event);
            }
            _ => self.stats.quality.observe(&event),
        }
    }

    /// ICE is up again on the participant's new path: the room is told, and every video it
    /// receives starts again at a keyframe (what was in flight on the old path is lost).
    fn ice_restarted(&mut self, now: Instant, key: TransportKey) {
        let Some(t) = self.transports.get_mut(key) else {
            return;
        };
        t.connectivity = Connectivity::Connected;
        self.events.push_back(SfuEvent::Connected {
            room: t.room.clone(),
            participant: t.id.clone(),
        });
        let video: Vec<(ProducerKey, Option<Layer>)> = t
            .consumers
            .iter()
            .filter(|c| c.kind == MediaKind::Video && matches!(c.state, ConsumerState::Open(_)))
            .map(|c| (c.source, c.layers.as_ref().and_then(|l| l.current())))
            .collect();
        for (source, layer) in video {
            self.request_keyframe(now, source, layer);
        }
    }

    /// str0m saw a layer of a simulcast producer stop (no packet for its pause threshold) or
    /// resume: subscribers on it move to another layer at that layer's next keyframe.
    fn layer_paused(
        &mut self,
        now: Instant,
        key: TransportKey,
        mid: Mid,
        rid: Option<&str>,
        paused: bool,
    ) {
        let Some(rid) = rid else {
            return;
        };
        let Some(layer) = Layer::from_rid(rid) else {
            return;
        };
        let Some(room) = self.transports.get(key).map(|t| t.room.clone()) else {
            return;
        };
        let producer = ProducerKey { owner: key, mid };
        if let Some(layers) = self
            .routers
            .get_mut(&room)
            .and_then(|r| r.producers.iter_mut().find(|p| p.key == producer))
            .and_then(|p| p.layers.as_mut())
        {
            layers.set(layer, !paused);
        }
        self.layers_changed(now, &room);
    }

    /// Some publisher's layers started or stopped arriving: every subscriber in the room is
    /// allocated again (rare: a layer's first packet, a pause).
    fn layers_changed(&mut self, now: Instant, room: &RoomId) {
        let Some(router) = self.routers.get(room) else {
            return;
        };
        for member in &router.members {
            if let Some(t) = self.transports.get_mut(*member) {
                t.reallocate(now);
                Self::mark_dirty(&mut self.dirty, *member, t);
            }
        }
    }

    /// The hot path: one incoming RTP packet to every consumer of its producer.
    fn forward(&mut self, now: Instant, key: TransportKey, pkt: RtpPacket) {
        self.stats.rtp_in += 1;
        self.stats.rtp_in_bytes += pkt.payload.len() as u64;
        let Some(source) = self.transports.get_mut(key) else {
            return;
        };
        let Some((mid, layer)) = source.source_of(pkt.header.ssrc) else {
            self.stats.dropped_unknown_stream += 1;
            return;
        };
        let producer_key = ProducerKey { owner: key, mid };
        let pt = pkt.header.payload_type;
        let Some(router) = self.routers.get_mut(&source.room) else {
            return;
        };
        let Some(producer) = router.producers.iter_mut().find(|p| p.key == producer_key) else {
            self.stats.dropped_unknown_stream += 1;
            return;
        };
        let is_video = producer.kind == MediaKind::Video;
        // Only video is gated on keyframes, so only video needs its codec looked up.
        let codec = if is_video {
            source.video_codec(pt)
        } else {
            None
        };
        // A simulcast producer's packet is inspected once here for all its subscribers:
        // which layer, whether it starts a keyframe, its VP8 descriptor.
        let mut vp8 = None;
        producer.meters[layer.index()].add(now, pkt.payload.len());
        let mut new_layer = false;
        let layered = producer.layers.as_mut().map(|layers| {
            new_layer = layers.available & layer.bit() == 0;
            layers.set(layer, true);
            if codec == Some(VideoCodec::Vp8) {
                vp8 = Vp8Descriptor::parse(&pkt.payload).ok();
            }
            *layers
        });
        let layered = layered.map(|layers| {
            let packet = LayerPacket {
                layer,
                seq: *pkt.seq_no,
                ts: pkt.header.timestamp,
                at: pkt.timestamp,
                keyframe: codec.is_none_or(|c| starts_keyframe(c, &pkt.payload)),
                vp8: vp8.as_ref(),
                pid_15_bit: vp8_pid_is_15_bit(&pkt.payload),
            };
            (layers, packet)
        });
        // Redundant audio (`red.rs`): what arrived is tracked once per producer, and each RED
        // packet is taken apart once, here: the lost packets it carries are rebuilt once, and
        // its own frame is metered (what a subscriber without RED is sent: about half).
        let red = match source.red {
            Some((red_pt, opus_pt)) if !is_video => Some(RedIn {
                red: pt == red_pt,
                opus_pt,
                arrival: producer.red.arrive(*pkt.seq_no),
            }),
            _ => None,
        };
        self.stats.red_in += u64::from(red.is_some_and(|r| r.red));
        let mut unwrapped = None;
        if let Some(r) = red.filter(|r| r.red) {
            let missing = match r.arrival {
                Arrival::New { missing } => missing,
                Arrival::Seen => 0,
            };
            let u = red::unwrap(
                &pkt.payload,
                *pkt.seq_no,
                pkt.header.timestamp,
                r.opus_pt,
                missing,
            );
            if let Ok(u) = &u {
                producer.primary.add(now, u.primary.len());
                for rebuilt in &u.rebuilt {
                    producer.red.rebuilt(rebuilt.seq);
                }
            }
            unwrapped = Some(u);
        }
        let producer = &*producer;
        let exts = ExtensionValues {
            audio_level: pkt.header.ext_vals.audio_level,
            voice_activity: pkt.header.ext_vals.voice_activity,
            video_orientation: pkt.header.ext_vals.video_orientation,
            ..Default::default()
        };
        // Bit `l`: some subscriber waits for a keyframe of layer `l` (bit 0 without simulcast).
        let mut want_keyframe: u8 = 0;
        let echo = source.echo;
        for member in &router.members {
            if *member == key && !echo {
                continue;
            }
            let Some(t) = self.transports.get_mut(*member) else {
                continue;
            };
            let blocked = t.blocks(&producer.publisher, producer.kind);
            // A RED publisher, a subscriber without RED: it is sent plain Opus (`red.rs`).
            let unwrap_red = red.filter(|_| t.red.is_none());
            let Some(consumer) = t.consumer_of(producer_key) else {
                continue;
            };
            if blocked {
                // Restarts at the next keyframe once unblocked, continuing its numbering.
                consumer.forwarder.restart();
                continue;
            }
            let ConsumerState::Open(out_mid) = consumer.state else {
                continue;
            };
            if is_video && consumer.target.is_none() {
                // Paused by the allocator: as a block, it restarts at a keyframe.
                consumer.forwarder.restart();
                continue;
            }
            let (out_seq, out_ts, patch) = if let (Some((layers, packet)), Some(switch)) =
                (&layered, consumer.layers.as_mut())
            {
                let Some(target) = layers.pick(consumer.target) else {
                    continue;
                };
                match switch.on_packet(&mut consumer.forwarder, target, packet) {
                    LayerVerdict::Forward { seq, ts, vp8 } => (seq, ts, vp8),
                    LayerVerdict::WaitKeyframe(l) => {
                        self.stats.dropped_keyframe_wait += 1;
                        want_keyframe |= l.bit();
                        continue;
                    }
                    LayerVerdict::Drop => {
                        self.stats.dropped_stale += 1;
                        continue;
                    }
                    LayerVerdict::OtherLayer => continue,
                }
            } else if let Some(red) = unwrap_red {
                // Plain Opus only, once each.
                if red.arrival == Arrival::Seen {
                    self.stats.dropped_stale += 1;
                    continue;
                }
                if !red.red {
                    match consumer.forwarder.on_packet(*pkt.seq_no, None, &[]) {
                        Verdict::Forward(seq) => (seq, pkt.header.timestamp, None),
                        _ => {
                            self.stats.dropped_stale += 1;
                            continue;
                        }
                    }
                } else {
                    let Some(Ok(u)) = &unwrapped else {
                        self.stats.dropped_malformed_red += 1;
                        continue;
                    };
                    // The rebuilt ones first (oldest first), then this packet's own frame.
                    let mut out: ArrayVec<_, { red::MAX_DEPTH as usize + 1 }> = ArrayVec::new();
                    for r in &u.rebuilt {
                        if let Verdict::Forward(seq) =
                            consumer.forwarder.on_packet(r.seq, None, &[])
                        {
                            out.push((seq, r.timestamp, r.payload, true));
                        }
                    }
                    match consumer.forwarder.on_packet(*pkt.seq_no, None, &[]) {
                        Verdict::Forward(seq) => {
                            out.push((seq, pkt.header.timestamp, u.primary, false));
                        }
                        _ => self.stats.dropped_stale += 1,
                    }
                    let Some(rtc) = t.rtc_mut() else {
                        continue;
                    };
                    let mut api = rtc.direct_api();
                    let Some(tx) = api.stream_tx_by_mid(out_mid, None) else {
                        continue;
                    };
                    for (seq, ts, payload, rebuilt) in out {
                        // Payload types are the server's, the same on every peer connection.
                        let write = RtpWrite::new(
                            red.opus_pt,
                            seq.into(),
                            ts,
                            pkt.timestamp,
                            payload.to_vec(),
                        )
                        .nackable(false);
                        // RFC 2198: a redundant block carries no marker, nor this packet's level.
                        let write = if rebuilt {
                            self.stats.red_rebuilt += 1;
                            write
                        } else {
                            write.marker(pkt.header.marker).ext_vals(exts.clone())
                        };
                        tx.write_rtp(write);
                        self.stats.rtp_out += 1;
                        self.stats.rtp_out_bytes += payload.len() as u64;
                    }
                    Self::mark_dirty(&mut self.dirty, *member, t);
                    continue;
                }
            } else {
                match consumer
                    .forwarder
                    .on_packet(*pkt.seq_no, codec, &pkt.payload)
                {
                    Verdict::Forward(seq) => (seq, pkt.header.timestamp, None),
                    Verdict::WaitKeyframe => {
                        self.stats.dropped_keyframe_wait += 1;
                        want_keyframe |= Layer::LOW.bit();
                        continue;
                    }
                    Verdict::Drop => {
                        self.stats.dropped_stale += 1;
                        continue;
                    }
                }
            };
            let Some(rtc) = t.rtc_mut() else {
                continue;
            };
            let mut api = rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(out_mid, None) else {
                continue;
            };
            let mut write = RtpWrite::new(
                pt,
                out_seq.into(),
                out_ts,
                pkt.timestamp,
                pkt.payload.clone(),
            )
            .marker(pkt.header.marker)
            .ext_vals(exts.clone())
            .nackable(is_video);
            if let Some(patch) = patch {
                write = write.vp8_patch(patch);
            }
            tx.write_rtp(write);
            self.stats.rtp_out += 1;
            self.stats.rtp_out_bytes += pkt.payload.len() as u64;
            Self::mark_dirty(&mut self.dirty, *member, t);
        }
        if want_keyframe != 0 {
            let simulcast = layered.is_some();
            for l in Layer::ALL {
                if want_keyframe & l.bit() != 0 {
                    self.request_keyframe(now, producer_key, simulcast.then_some(l));
                }
            }
        }
        if new_layer {
            let room = self.transports.get(key).map(|t| t.room.clone());
            if let Some(room) = room {
                self.layers_changed(now, &room);
            }
        }
    }
}
