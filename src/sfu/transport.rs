//! One participant's peer connection: a str0m [`Rtc`] plus the SFU's bookkeeping around it.
//!
//! The server is always the SDP offerer (see docs/protocol.md), so there is no glare: a
//! transport has at most one offer outstanding and queues further changes until it is answered.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::config::DtlsCert;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt, Rids, Simulcast, SimulcastLayer};
use str0m::rtp::Ssrc;
use str0m::rtp::{Extension, ExtensionMap};
use str0m::{Candidate, IceCreds, Rtc, RtcConfig};

use str0m::bwe::Bitrate;

use super::allocator::{self, Choice, LinkMemory, Probe, Shown};
use super::forwarder::{Forwarder, LAYER_RIDS, Layer, LayerSwitch};
use super::keyframe::VideoCodec;
use super::{ProducerKey, PublishKinds, TrackInfo, TrackSource, TransportOptions};
use crate::domain::ids::{ParticipantId, RoomId};

/// How long ICE may stay disconnected before the transport is declared failed. Generous:
/// rural links drop for seconds at a time and the browser's consent checks bring them back.
pub const ICE_DISCONNECT_GRACE: Duration = Duration::from_secs(15);

/// Where str0m's bandwidth estimate starts on a new link: the lowest layer and audio fit, more
/// is found by probing.
pub const INITIAL_ESTIMATE: Bitrate = Bitrate::kbps(300);

/// How long a new transport may take to connect at all. Past it, the participant's network is
/// almost certainly blocking UDP to the media port; saying so beats a silent, empty room.
pub const ICE_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Life of one forwarded track on this transport (server → participant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerState {
    /// Waiting for the next offer.
    ToOpen,
    /// In the outstanding offer.
    Negotiating(Mid),
    Open(Mid),
    /// Its producer went away; the m-line is to be stopped in the next offer.
    ToStop(Mid),
    NegotiatingStop(Mid),
}

impl ConsumerState {
    pub fn mid(self) -> Option<Mid> {
        match self {
            ConsumerState::ToOpen => None,
            ConsumerState::Negotiating(m)
            | ConsumerState::Open(m)
            | ConsumerState::ToStop(m)
            | ConsumerState::NegotiatingStop(m) => Some(m),
        }
    }
}

#[derive(Debug)]
pub struct Consumer {
    pub source: ProducerKey,
    /// Who publishes the source (named in offers).
    pub publisher: ParticipantId,
    pub kind: MediaKind,
    /// Camera or screen (named in offers, so layouts can tell them apart).
    pub track: TrackSource,
    pub state: ConsumerState,
    pub forwarder: Forwarder,
    /// Some when the source is a simulcast camera: which layer this subscriber is on.
    pub layers: Option<LayerSwitch>,
    /// The highest layer this subscriber may get of a simulcast source (`SfuCommand::SetLayer`;
    /// None: no cap).
    pub cap: Option<Layer>,
    /// What the allocator chose (`allocator.rs`): the layer to forward (the nearest arriving
    /// one, `Layers::pick`; any for a source without layers), or None: paused, nothing of it
    /// is sent (a hidden tile, or a link too weak for even the lowest layer).
    pub target: Option<Layer>,
    /// How the subscriber shows this video (`SfuCommand::VideoSizes`).
    pub shown: Shown,
    /// What the allocator keeps of this video between runs.
    pub memory: allocator::Memory,
    /// What the subscriber was last told of this video (`SfuEvent::VideoQuality`); None: nothing
    /// yet, which means it flows at its best.
    pub told: Option<Choice>,
}

/// An m-line on which this participant publishes their microphone or camera (participant →
/// server).
#[derive(Debug)]
pub struct Incoming {
    pub mid: Mid,
    pub kind: MediaKind,
    /// Offered with simulcast receive layers (`LAYER_RIDS`).
    pub simulcast: bool,
    /// Registered as a producer in the room's router.
    pub live: bool,
    pub state: IncomingState,
}

/// Life of one of the participant's own m-lines. Most are offered with the first offer and
/// live as long as the transport; a role change (an observer let speak, a guest made to only
/// watch) adds them later or stops them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncomingState {
    /// In the outstanding offer.
    Negotiating,
    /// Answered: a producer while the answer says the participant sends on it (`live`).
    Open,
    /// No longer to be published: stopped in the next offer.
    ToStop,
    NegotiatingStop,
}

/// The m-lines on which a participant is to send their microphone and camera (named in every
/// offer while they publish, so that a client told it may speak knows where its tracks go).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishMids {
    pub audio: Option<String>,
    /// The camera's m-line.
    pub video: Option<String>,
    /// The camera's m-line asks for simulcast layers (rids `q`, `h`, `f`, lowest first): the
    /// client sends its camera there in three sizes.
    pub simulcast: bool,
}

/// Life of the participant's screen share on this transport (participant → server): a
/// receive m-line of its own, added by a renegotiation while the share lasts and stopped after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreenIn {
    Off,
    /// Asked for: the next offer adds its m-line.
    ToOpen,
    /// In the outstanding offer.
    Negotiating(Mid),
    /// Answered; a producer while the participant sends on it.
    Open(Mid),
    /// Ended: the m-line is to be stopped in the next offer.
    ToStop(Mid),
    NegotiatingStop(Mid),
}

#[derive(Debug)]
pub struct OfferOut {
    pub offer_id: u64,
    pub sdp: String,
    pub tracks: Vec<TrackInfo>,
    /// The m-line on which the participant is to send their screen, while they share.
    pub screen_mid: Option<String>,
    pub publish_mids: PublishMids,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnswerError {
    #[error("no offer with that id is outstanding")]
    Stale,
    #[error("the answer could not be applied: {0}")]
    BadSdp(String),
}

/// A participant's SDP answer, parsed where it arrives (the room's task) rather than on the
/// media worker: str0m's SDP parser costs about 2.3 million instructions per answer, and a join
/// has everyone in the room answer a new offer. A malformed one travels as its parse error, so
/// the SFU still spends the offer it answers (see `Transport::apply_answer`).
#[derive(Debug)]
pub struct Answer(Result<SdpAnswer, String>);

impl Answer {
    pub fn parse(sdp: &str) -> Self {
        Self(SdpAnswer::from_sdp_string(sdp).map_err(|e| e.to_string()))
    }
}

/// What an accepted answer changed.
#[derive(Debug, Default)]
pub struct AnswerOutcome {
    /// Incoming m-lines the participant now sends on, and whether each was offered with
    /// simulcast layers.
    pub new_producers: Vec<(Mid, MediaKind, TrackSource, bool)>,
    /// Video consumers that just opened: their producers owe them a keyframe.
    pub opened_video: Vec<ProducerKey>,
    /// The answer completed an ICE restart: the local ufrag it retired (no longer to route).
    pub retired_ufrag: Option<String>,
}

/// An ICE restart the participant asked for (see [`Transport::request_ice_restart`]). The
/// server offers it with fresh local credentials whose ufrag keeps the worker's tag; DTLS,
/// SRTP and every m-line stay as they are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum IceRestart {
    #[default]
    Idle,
    /// Goes into the next offer (the current one, if any, is answered first).
    Queued,
    /// In the outstanding offer, which announced `ours` (str0m's random credentials, the
    /// ufrag tagged). `again`: asked for once more meanwhile, so the next offer restarts again.
    Offered { ours: IceCreds, again: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    /// No answer applied yet: nothing to connect (an observer in an empty room, say).
    Unnegotiated,
    /// Negotiated at `since`, ICE not connected yet.
    New {
        since: Instant,
    },
    Connected,
    Disconnected {
        since: Instant,
    },
    /// An ICE restart's answer was applied at `since`; ICE is checking the new path.
    Restarting {
        since: Instant,
    },
}

pub struct Transport {
    pub id: ParticipantId,
    pub room: RoomId,
    /// Made when there is first something to negotiate (see [`Transport::needs_offer`]): an
    /// observer in a room where nobody publishes yet costs no peer connection. Boxed, so the
    /// transport table stays small whatever str0m's `Rtc` weighs (about 10 KiB inline).
    pub(super) rtc: Option<Box<Rtc>>,
    pub subscribe: bool,
    publish: PublishKinds,
    /// Whether the camera m-line is offered with simulcast receive layers (opt-in per
    /// transport: see `TransportOptions`).
    simulcast: bool,
    /// Whether str0m estimates the bandwidth to this participant (`TransportOptions::bwe`).
    pub bwe: bool,
    /// Whether it receives its own producers back (`TransportOptions::echo`).
    pub echo: bool,
    /// Whether the estimate is told to the network check (`TransportOptions::measure_down`).
    pub measure_down: bool,
    /// The latest estimate (bits per second), while `bwe`.
    pub estimate: u64,
    /// Whether `estimate` is str0m's (else it is still `INITIAL_ESTIMATE`, a guess).
    pub estimated: bool,
    /// When the check was last told the estimate (`measure_down`).
    pub down_told: Option<Instant>,
    /// The check's desired rate was lowered at the last allocation, to be raised at this one
    /// (which asks str0m for a probe), while `measure_down`.
    pub down_dipped: bool,
    /// The share of what was sent to this participant in the last second that its transport
    /// feedback says was lost (str0m's `PeerStats`, about once a second), while `bwe`.
    pub loss: Option<f32>,
    /// What the allocator keeps of this link between runs.
    pub link_memory: LinkMemory,
    /// When the allocator is next to run for this subscriber: every `ALLOCATION_INTERVAL` while
    /// `bwe`, else only when something changed.
    pub allocation_due: Option<Instant>,
    /// What the estimator was last told to aim for.
    pub probe: Option<Probe>,
    pub incoming: Vec<Incoming>,
    /// The participant's screen share (apart from `incoming`: it comes and goes).
    pub screen: ScreenIn,
    pub consumers: Vec<Consumer>,
    pub connectivity: Connectivity,
    /// str0m's next timeout (meaningful once there is an `Rtc`).
    pub next_timeout: Instant,
    /// The deadline this transport is queued at in the SFU's timers (see `sfu::timers`).
    pub scheduled: Option<Instant>,
    /// The peer connection's local ICE ufrag (how a new address is routed to it).
    pub local_ufrag: Option<String>,
    /// Queued in the SFU's dirty list (see `Sfu::mark_dirty`).
    pub dirty: bool,
    pending: Option<(u64, SdpPendingOffer)>,
    next_offer_id: u64,
    /// The media worker's index (first in every local ufrag), set with the peer connection.
    worker: u8,
    restart: IceRestart,
    /// Incoming stream → its m-line and simulcast layer (0 without simulcast).
    ssrc_mid: HashMap<Ssrc, (Mid, Layer)>,
    /// Whose media of which kind this subscriber is not sent (the room decides: a huddle, a
    /// participant muted by the care team). Empty in most rooms, so the hot path pays one
    /// length check.
    pub blocked: Vec<(ParticipantId, MediaKind)>,
    /// Redundant audio as negotiated with this participant: (RED payload type, the Opus payload
    /// type it wraps), None where its answer left RED out (`red.rs`).
    pub red: Option<(Pt, Pt)>,
}

impl Transport {
    /// Whether this subscriber is not to be sent `publisher`'s media of `kind`.
    pub fn blocks(&self, publisher: &ParticipantId, kind: MediaKind) -> bool {
        !self.blocked.is_empty()
            && self
                .blocked
                .iter()
                .any(|(p, k)| p == publisher && *k == kind)
    }

    pub fn new(
        now: Instant,
        room: RoomId,
        id: ParticipantId,
        publish: PublishKinds,
        subscribe: bool,
    ) -> Self {
        Self {
            id,
            room,
            rtc: None,
            subscribe,
            publish,
            simulcast: false,
            bwe: false,
            echo: false,
            measure_down: false,
            estimate: INITIAL_ESTIMATE.as_u64(),
            estimated: false,
            down_told: None,
            down_dipped: false,
            loss: None,
            link_memory: LinkMemory::default(),
            allocation_due: None,
            probe: None,
            incoming: Vec::new(),
            screen: ScreenIn::Off,
            consumers: Vec::new(),
            connectivity: Connectivity::Unnegotiated,
            next_timeout: now,
            scheduled: None,
            local_ufrag: None,
            dirty: false,
            pending: None,
            next_offer_id: 1,
            worker: 0,
            restart: IceRestart::Idle,
            ssrc_mid: HashMap::new(),
            blocked: Vec::new(),
            red: None,
        }
    }

    /// When the SFU must next call on this transport: str0m's timer or a connectivity deadline
    /// (just past it, so the check that it passed succeeds). None without a peer connection:
    /// nothing can happen to it until something is negotiated.
    pub fn deadline(&self) -> Option<Instant> {
        self.rtc.as_ref()?;
        let connectivity = match self.connectivity {
            Connectivity::New { since } => Some(since + ICE_CONNECT_TIMEOUT),
            Connectivity::Disconnected { since } => Some(since + ICE_DISCONNECT_GRACE),
            Connectivity::Restarting { since } => Some(since + ICE_CONNECT_TIMEOUT),
            Connectivity::Connected | Connectivity::Unnegotiated => None,
        };
        let deadline = match connectivity {
            Some(d) => self.next_timeout.min(d + Duration::from_millis(1)),
            None => self.next_timeout,
        };
        Some(match self.allocation_due {
            Some(at) => deadline.min(at),
            None => deadline,
        })
    }

    /// Sets the options (before the first offer: simulcast applies from the next time the
    /// camera's m-line is added, bandwidth estimation when the peer connection is made).
    pub fn set_options(&mut self, options: TransportOptions) {
        self.simulcast = options.simulcast;
        self.bwe = options.bwe || options.measure_down;
        self.echo = options.echo;
        self.measure_down = options.measure_down;
    }

    /// The allocator is to run for this subscriber at once (something it depends on changed).
    pub fn reallocate(&mut self, now: Instant) {
        self.allocation_due = Some(self.allocation_due.map_or(now, |at| at.min(now)));
    }

    /// The peer connection, once there is one.
    pub fn rtc(&self) -> Option<&Rtc> {
        self.rtc.as_deref()
    }

    pub fn rtc_mut(&mut self) -> Option<&mut Rtc> {
        self.rtc.as_deref_mut()
    }

    /// Whether the participant publishes `kind` and has no m-line for it (yet, or any more).
    fn lacks_incoming(&self, kind: MediaKind) -> bool {
        let wanted = match kind {
            MediaKind::Audio => self.publish.audio,
            MediaKind::Video => self.publish.video,
        };
        wanted
            && !self.incoming.iter().any(|i| {
                i.kind == kind
                    && matches!(i.state, IncomingState::Negotiating | IncomingState::Open)
            })
    }

    /// Whether the next negotiation has anything to offer: the participant's own tracks (the
    /// first offer, or a role change), or a consumer to open or stop.
    fn needs_offer(&self) -> bool {
        let own = self.lacks_incoming(MediaKind::Audio)
            || self.lacks_incoming(MediaKind::Video)
            || self
                .incoming
                .iter()
                .any(|i| i.state == IncomingState::ToStop);
        let screen = matches!(self.screen, ScreenIn::ToOpen | ScreenIn::ToStop(_));
        own || screen
            || self.restart == IceRestart::Queued
            || self
                .consumers
                .iter()
                .any(|c| matches!(c.state, ConsumerState::ToOpen | ConsumerState::ToStop(_)))
    }

    /// Makes the peer connection if it is about to be needed; true if it made it now.
    pub fn prepare(
        &mut self,
        now: Instant,
        candidates: &[Candidate],
        dtls_cert: Option<&DtlsCert>,
        worker: u8,
    ) -> bool {
        if self.rtc.is_some() || !self.needs_offer() {
            return false;
        }
        let mut config = RtcConfig::new()
            .set_crypto_provider(super::dtls::crypto_provider())
            .set_local_ice_credentials(super::stun::worker_credentials(worker));
        if let Some(cert) = dtls_cert {
            config = config.set_dtls_cert(cert.clone());
        }
        if self.bwe {
            // It brings str0m's pacer (a leaky bucket at twice the estimate), which holds
            // video to the link's pace and never audio: that is why it is off without
            // simulcast, where it would only delay packets.
            config = config.enable_bwe(Some(INITIAL_ESTIMATE));
        }
        let mut config = config
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_stats_interval(Some(super::quality::STATS_INTERVAL))
            .set_extension_map(extension_map())
            .clear_codecs();
        add_opus(config.codec_config());
        let mut rtc = config.enable_vp8(true).enable_h264(true).build(now);
        for c in candidates {
            rtc.add_local_candidate(c.clone());
        }
        self.local_ufrag = Some(rtc.direct_api().local_ice_credentials().ufrag);
        self.worker = worker;
        self.rtc = Some(Box::new(rtc));
        self.next_timeout = now;
        true
    }

    pub fn add_consumer(
        &mut self,
        source: ProducerKey,
        publisher: ParticipantId,
        kind: MediaKind,
        track: TrackSource,
        simulcast: bool,
    ) {
        if self.consumers.iter().any(|c| c.source == source) {
            return;
        }
        self.consumers.push(Consumer {
            source,
            publisher,
            kind,
            track,
            state: ConsumerState::ToOpen,
            forwarder: Forwarder::new(kind == MediaKind::Video),
            layers: simulcast.then(LayerSwitch::default),
            cap: None,
            target: Some(Layer::FULL),
            shown: Shown::Unknown,
            memory: allocator::Memory::default(),
            told: None,
        });
    }

    /// The producer is gone: stop its m-line at the next negotiation.
    pub fn remove_consumer(&mut self, source: &ProducerKey) {
        self.consumers.retain_mut(|c| {
            if &c.source != source {
                return true;
            }
            match c.state {
                // Never offered: just forget it.
                ConsumerState::ToOpen => false,
                ConsumerState::Open(m) | ConsumerState::Negotiating(m) => {
                    c.state = ConsumerState::ToStop(m);
                    true
                }
                ConsumerState::ToStop(_) | ConsumerState::NegotiatingStop(_) => true,
            }
        });
    }

    /// What the participant publishes changed (a role change): m-lines for what they now
    /// publish come in the next offer, those for what they no longer publish are stopped in it.
    /// Returns the m-lines that were producers, for the router to forget.
    pub fn set_publish(&mut self, publish: PublishKinds) -> Vec<Mid> {
        self.publish = publish;
        let mut gone = Vec::new();
        for inc in &mut self.incoming {
            let wanted = match inc.kind {
                MediaKind::Audio => publish.audio,
                MediaKind::Video => publish.video,
            };
            if wanted {
                continue;
            }
            match inc.state {
                // Offered: stopped once the offer is answered.
                IncomingState::Negotiating => inc.state = IncomingState::ToStop,
                IncomingState::Open => {
                    if inc.live {
                        gone.push(inc.mid);
                        inc.live = false;
                    }
                    inc.state = IncomingState::ToStop;
                }
                IncomingState::ToStop | IncomingState::NegotiatingStop => {}
            }
        }
        gone
    }

    /// The participant is to share their screen: a receive m-line in the next offer. False if
    /// a share is already under way (or still being stopped) on this transport.
    pub fn start_screen(&mut self) -> bool {
        if self.screen != ScreenIn::Off {
            return false;
        }
        self.screen = ScreenIn::ToOpen;
        true
    }

    /// The share ended: its m-line is stopped at the next negotiation. Returns the producer it
    /// was (if the m-line had been answered), for the router to forget.
    pub fn stop_screen(&mut self) -> Option<Mid> {
        match self.screen {
            ScreenIn::Off | ScreenIn::ToStop(_) | ScreenIn::NegotiatingStop(_) => None,
            // Never offered: nothing to stop.
            ScreenIn::ToOpen => {
                self.screen = ScreenIn::Off;
                None
            }
            // Offered: stopped once the offer is answered (a stop for an m-line the answer
            // turned down is a no-op in str0m).
            ScreenIn::Negotiating(m) => {
                self.screen = ScreenIn::ToStop(m);
                None
            }
            ScreenIn::Open(m) => {
                self.screen = ScreenIn::ToStop(m);
                Some(m)
            }
        }
    }

    /// Makes an offer if anything changed and none is outstanding. The first call also carries
    /// the participant's own (receive) m-lines.
    pub fn negotiate(&mut self) -> Option<OfferOut> {
        if self.pending.is_some() {
            return None;
        }
        // A screen m-line whose offer failed never came to be: nothing to stop.
        if let ScreenIn::ToStop(m) = self.screen
            && self.rtc.as_ref().is_some_and(|r| r.media(m).is_none())
        {
            self.screen = ScreenIn::Off;
        }
        // The same for the participant's own m-lines.
        if let Some(rtc) = self.rtc.as_ref() {
            self.incoming
                .retain(|i| i.state != IncomingState::ToStop || rtc.media(i.mid).is_some());
        }
        let lacks = [MediaKind::Audio, MediaKind::Video].map(|k| self.lacks_incoming(k));
        // No peer connection yet means nothing to offer (see `prepare`).
        let mut change = self.rtc.as_mut()?.sdp_api();
        // The participant's own tracks, first in the first offer (docs/protocol.md promises
        // that order), or later when a role change lets them speak. No data channel: an idle
        // SCTP association costs every transport timers and memory; it is to be negotiated
        // when a feature needs it.
        for (lacking, kind) in lacks.into_iter().zip([MediaKind::Audio, MediaKind::Video]) {
            if lacking {
                // Only the camera is ever simulcast: a screen stays one layer (content keeps
                // its resolution).
                let simulcast = self.simulcast && kind == MediaKind::Video;
                let layers = simulcast.then(simulcast_recv);
                let mid = change.add_media(kind, Direction::RecvOnly, None, None, layers);
                self.incoming.push(Incoming {
                    mid,
                    kind,
                    simulcast,
                    live: false,
                    state: IncomingState::Negotiating,
                });
            }
        }
        for inc in &mut self.incoming {
            if inc.state == IncomingState::ToStop {
                change.stop_media(inc.mid);
                inc.state = IncomingState::NegotiatingStop;
            }
        }
        match self.screen {
            ScreenIn::ToOpen => {
                let mid = change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
                self.screen = ScreenIn::Negotiating(mid);
            }
            ScreenIn::ToStop(mid) => {
                change.stop_media(mid);
                self.screen = ScreenIn::NegotiatingStop(mid);
            }
            _ => {}
        }
        for c in &mut self.consumers {
            match c.state {
                ConsumerState::ToOpen => {
                    let stream_id = c.publisher.to_string();
                    let mid =
                        change.add_media(c.kind, Direction::SendOnly, Some(stream_id), None, None);
                    c.state = ConsumerState::Negotiating(mid);
                }
                ConsumerState::ToStop(mid) => {
                    change.stop_media(mid);
                    c.state = ConsumerState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        if self.restart == IceRestart::Queued {
            // str0m makes the restart's credentials itself, at random; the offer announces
            // them with our worker's tag in the ufrag instead, and `apply_answer` gives the
            // ICE agent those once str0m has restarted it.
            let str0m_creds = change.ice_restart(true);
            self.restart = IceRestart::Offered {
                ours: super::stun::tagged(str0m_creds, self.worker),
                again: false,
            };
        }
        if !change.has_changes() {
            // A stop that changed nothing (the m-line was inactive already) is done.
            if let ScreenIn::NegotiatingStop(_) = self.screen {
                self.screen = ScreenIn::Off;
            }
            self.incoming
                .retain(|i| i.state != IncomingState::NegotiatingStop);
            return None;
        }
        let (offer, pending) = change.apply()?;
        let offer_id = self.next_offer_id;
        self.next_offer_id += 1;
        self.pending = Some((offer_id, pending));
        let screen_mid = match self.screen {
            ScreenIn::Negotiating(m) | ScreenIn::Open(m) => Some(m.to_string()),
            _ => None,
        };
        let mut sdp = offer.to_sdp_string();
        // The ufrag the offer is to name: a restart's, else the current one. str0m writes its
        // own (the restart's random one) on the candidates, and on the session for a restart.
        let ufrag = match &self.restart {
            IceRestart::Offered { ours, .. } => Some(ours.ufrag.as_str()),
            _ => self.local_ufrag.as_deref(),
        };
        if let Some(ufrag) = ufrag {
            sdp = with_ufrag(&sdp, ufrag);
        }
        Some(OfferOut {
            offer_id,
            sdp,
            tracks: self.track_infos(),
            screen_mid,
            publish_mids: self.publish_mids(),
        })
    }

    /// Asks for an ICE restart (the participant's path changed or failed): offered at once if
    /// no offer is outstanding, else right after its answer. False, and nothing done, when
    /// there is no negotiated peer connection to restart. Asking again while one is queued
    /// changes nothing; while one is offered, queues another after it.
    pub fn request_ice_restart(&mut self) -> bool {
        if self.rtc.is_none() || self.connectivity == Connectivity::Unnegotiated {
            return false;
        }
        match &mut self.restart {
            IceRestart::Idle => self.restart = IceRestart::Queued,
            IceRestart::Queued => {}
            IceRestart::Offered { again, .. } => *again = true,
        }
        true
    }

    /// Whether an offer waits for its answer.
    pub fn offer_outstanding(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether an ICE restart is queued or offered and not answered yet.
    pub fn ice_restart_pending(&self) -> bool {
        self.restart != IceRestart::Idle
    }

    /// The ufrag an outstanding restart offer announced: the peer's checks name it as soon as
    /// the peer has answered, which may be before its answer reaches us.
    pub fn offered_ufrag(&self) -> Option<&str> {
        match &self.restart {
            IceRestart::Offered { ours, .. } => Some(ours.ufrag.as_str()),
            _ => None,
        }
    }

    /// Every ufrag a peer's check may name to reach this transport: the live one, and an
    /// outstanding restart's.
    pub fn ufrags(&self) -> impl Iterator<Item = &str> {
        self.local_ufrag
            .as_deref()
            .into_iter()
            .chain(self.offered_ufrag())
    }

    /// The participant's own m-lines, offered or answered and not being stopped.
    fn publish_mids(&self) -> PublishMids {
        let mut mids = PublishMids::default();
        for i in &self.incoming {
            if matches!(i.state, IncomingState::Negotiating | IncomingState::Open) {
                let slot = match i.kind {
                    MediaKind::Audio => &mut mids.audio,
                    MediaKind::Video => {
                        mids.simulcast = i.simulcast;
                        &mut mids.video
                    }
                };
                *slot = Some(i.mid.to_string());
            }
        }
        mids
    }

    /// Every m-line on which the server sends, with whose track it carries.
    fn track_infos(&self) -> Vec<TrackInfo> {
        self.consumers
            .iter()
            .filter_map(|c| match c.state {
                ConsumerState::Negotiating(mid) | ConsumerState::Open(mid) => Some(TrackInfo {
                    mid: mid.to_string(),
                    participant: c.publisher.clone(),
                    kind: c.kind,
                    source: c.track,
                }),
                _ => None,
            })
            .collect()
    }

    /// Applies the answer to the outstanding offer `offer_id`. An answer that cannot be applied,
    /// malformed ones included, spends the offer all the same: its changes go back to be
    /// offered again, so the participant gets a fresh offer rather than a peer connection
    /// stuck waiting for an answer that will never come.
    pub fn apply_answer(
        &mut self,
        now: Instant,
        offer_id: u64,
        answer: Answer,
    ) -> Result<AnswerOutcome, AnswerError> {
        match &self.pending {
            Some((id, _)) if *id == offer_id => {}
            _ => return Err(AnswerError::Stale),
        }
        let (_, pending) = self.pending.take().expect("checked above");
        // An offer was made, so the peer connection exists.
        let Some(rtc) = self.rtc.as_mut() else {
            return Err(AnswerError::Stale);
        };
        let accepted = match answer.0 {
            Ok(answer) => rtc
                .sdp_api()
                .accept_answer(pending, answer)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let restart = match std::mem::take(&mut self.restart) {
            IceRestart::Offered { ours, again, .. } => {
                // Asked for again while this one was out: the next offer restarts once more.
                if again || accepted.is_err() {
                    self.restart = IceRestart::Queued;
                }
                Some(ours)
            }
            other => {
                self.restart = other;
                None
            }
        };
        if let Err(e) = accepted {
            // The offer is spent; put its changes back so the next offer carries them again:
            // own m-lines it added never came to be (the next offer adds them afresh), stops
            // are to be offered again.
            self.incoming
                .retain(|i| i.state != IncomingState::Negotiating);
            for i in &mut self.incoming {
                if i.state == IncomingState::NegotiatingStop {
                    i.state = IncomingState::ToStop;
                }
            }
            for c in &mut self.consumers {
                c.state = match c.state {
                    ConsumerState::Negotiating(_) => ConsumerState::ToOpen,
                    ConsumerState::NegotiatingStop(m) => ConsumerState::ToStop(m),
                    s => s,
                };
            }
            self.screen = match self.screen {
                ScreenIn::Negotiating(_) => ScreenIn::ToOpen,
                ScreenIn::NegotiatingStop(m) => ScreenIn::ToStop(m),
                s => s,
            };
            return Err(AnswerError::BadSdp(e));
        }
        if self.connectivity == Connectivity::Unnegotiated {
            self.connectivity = Connectivity::New { since: now };
        }
        // str0m keeps RED on the Opus payload type only where the answer has it too.
        self.red = rtc
            .codec_config()
            .iter()
            .find(|p| p.spec().codec == Codec::Opus)
            .and_then(|p| Some((p.red()?, p.pt())));
        let mut outcome = AnswerOutcome::default();
        if let Some(ours) = restart {
            // str0m restarted its ICE agent with the credentials it made; ours replace them
            // (same password, the ufrag tagged) before any check can arrive for the new path.
            // Its local candidates keep naming its ufrag, which every offer's text corrects.
            rtc.direct_api().set_local_ice_credentials(ours.clone());
            outcome.retired_ufrag = self.local_ufrag.replace(ours.ufrag);
            self.connectivity = Connectivity::Restarting { since: now };
        }
        for c in &mut self.consumers {
            if let ConsumerState::Negotiating(m) = c.state {
                c.state = ConsumerState::Open(m);
                c.forwarder.restart();
                if c.kind == MediaKind::Video {
                    outcome.opened_video.push(c.source);
                }
            }
        }
        self.consumers
            .retain(|c| !matches!(c.state, ConsumerState::NegotiatingStop(_)));
        self.incoming
            .retain(|i| i.state != IncomingState::NegotiatingStop);
        for inc in &mut self.incoming {
            if inc.state == IncomingState::Negotiating {
                inc.state = IncomingState::Open;
            }
            // One stopped while its offer was out is no producer: the next offer stops it.
            if inc.state != IncomingState::Open {
                continue;
            }
            let media = self.rtc.as_ref().and_then(|r| r.media(inc.mid));
            let receiving = media.is_some_and(|m| m.direction().is_receiving());
            // Simulcast only if the answer took up the layers: one that names no rid (Firefox
            // does not simulcast H.264; a client may refuse) sends one stream without rid,
            // forwarded as today.
            let simulcast = inc.simulcast
                && media.is_some_and(|m| matches!(m.rids_rx(), Rids::Specific(r) if !r.is_empty()));
            if receiving && !inc.live {
                inc.live = true;
                let source = match inc.kind {
                    MediaKind::Audio => TrackSource::Microphone,
                    MediaKind::Video => TrackSource::Camera,
                };
                outcome
                    .new_producers
                    .push((inc.mid, inc.kind, source, simulcast));
            }
        }
        match self.screen {
            ScreenIn::Negotiating(m) => {
                self.screen = ScreenIn::Open(m);
                let receiving = self
                    .rtc
                    .as_ref()
                    .and_then(|r| r.media(m))
                    .is_some_and(|m| m.direction().is_receiving());
                // An answer that turned the m-line down (inactive) shares nothing; the room
                // still ends the share by a stop.
                if receiving {
                    outcome
                        .new_producers
                        .push((m, MediaKind::Video, TrackSource::Screen, false));
                }
            }
            ScreenIn::NegotiatingStop(_) => self.screen = ScreenIn::Off,
            _ => {}
        }
        Ok(outcome)
    }

    /// The m-line an incoming RTP stream belongs to, and its simulcast layer (0 for a stream
    /// without rid). By SSRC: senders stop writing the rid extension once the stream is known.
    pub fn source_of(&mut self, ssrc: Ssrc) -> Option<(Mid, Layer)> {
        if let Some(found) = self.ssrc_mid.get(&ssrc) {
            return Some(*found);
        }
        let mut api = self.rtc.as_mut()?.direct_api();
        let rx = api.stream_rx(&ssrc)?;
        let layer = rx
            .rid()
            .and_then(|rid| Layer::from_rid(&rid))
            .unwrap_or(Layer::LOW);
        let found = (rx.mid(), layer);
        self.ssrc_mid.insert(ssrc, found);
        Some(found)
    }

    /// The video codec a payload type stands for here.
    pub fn video_codec(&self, pt: Pt) -> Option<VideoCodec> {
        let params = self.rtc()?.codec_config().iter().find(|p| p.pt() == pt)?;
        match params.spec().codec {
            Codec::Vp8 => Some(VideoCodec::Vp8),
            Codec::H264 => Some(VideoCodec::H264),
            _ => None,
        }
    }

    /// This transport's consumer of `source`, if it has one.
    pub fn consumer_of(&mut self, source: ProducerKey) -> Option<&mut Consumer> {
        self.consumers.iter_mut().find(|c| c.source == source)
    }

    pub fn consumer_by_mid(&self, mid: Mid) -> Option<&Consumer> {
        self.consumers.iter().find(|c| c.state.mid() == Some(mid))
    }
}

/// `sdp` naming `ufrag` wherever an ICE ufrag is written: the `a=ice-ufrag` lines and the
/// `ufrag` of candidates (str0m writes it last on the line).
fn with_ufrag(sdp: &str, ufrag: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let ending = &line[body.len()..];
        if body.starts_with("a=ice-ufrag:") {
            out.push_str("a=ice-ufrag:");
            out.push_str(ufrag);
            out.push_str(ending);
        } else if let Some(at) = body
            .strip_prefix("a=candidate:")
            .and_then(|_| body.rfind(" ufrag "))
            .filter(|at| !body[at + 7..].contains(' '))
        {
            out.push_str(&body[..at + 7]);
            out.push_str(ufrag);
            out.push_str(ending);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// The RTP header extensions offered to every peer: str0m's standard set without
/// abs-send-time. That one only feeds receive-side bandwidth estimation (REMB), which neither
/// the browsers nor we run once transport-cc is negotiated, yet str0m stamps it on every
/// packet it sends (a clock read and a rebase each) and parses it on every packet received.
/// Opus as str0m offers it (payload type 111, 10 ms frames at least, in-band FEC: a lost
/// packet is rebuilt from the next one's redundancy), and DTX: in silence a sender sends a frame
/// every 400 ms instead of 50 a second, so a weak uplink spends its bandwidth on speech. Then
/// RED (RFC 2198, payload type 63 as browsers number it): str0m lists it before Opus, which is
/// what makes Chromium send each frame twice, in its own packet and the next; whoever did not
/// negotiate it is sent plain Opus (`red.rs`). Forwarded as it comes (RTP mode): each receiver
/// decodes what its sender chose.
fn add_opus(codecs: &mut str0m::format::CodecConfig) {
    *codecs = str0m::format::CodecConfig::new_from_payload_params(vec![opus_with_red()]);
}

/// The RED payload type offered with Opus (the number Chromium and Firefox give it).
const RED_PT: u8 = 63;

/// Opus with FEC and DTX, and RED linked to it. str0m 0.25 links RED to a codec only in
/// `enable_opus`, whose Opus has no DTX; its payload parameters are serde types, so the link is
/// set on ours through their serialised form (the field is `red`, checked by a test).
fn opus_with_red() -> str0m::format::PayloadParams {
    let opus = str0m::format::PayloadParams::new(
        Pt::new_with_value(111),
        None,
        str0m::format::CodecSpec {
            codec: Codec::Opus,
            clock_rate: str0m::media::Frequency::FORTY_EIGHT_KHZ,
            channels: Some(2),
            format: str0m::format::FormatParams {
                min_p_time: Some(10),
                use_inband_fec: Some(true),
                use_dtx: Some(true),
                ..Default::default()
            },
        },
    );
    let linked = serde_json::to_value(opus).and_then(|mut v| {
        v["red"] = serde_json::Value::from(RED_PT);
        serde_json::from_value(v)
    });
    // Cannot fail for this pinned str0m (its test below); without RED, Opus still works.
    linked.unwrap_or(opus)
}

fn extension_map() -> ExtensionMap {
    let mut exts = ExtensionMap::empty();
    for (id, ext) in ExtensionMap::standard().iter() {
        if *ext != Extension::AbsoluteSendTime {
            exts.set(id, ext.clone());
        }
    }
    exts
}

/// The receive layers of a simulcast camera m-line: `a=rid:<id> recv` for each of
/// `LAYER_RIDS` and `a=simulcast:recv q;h;f` (RFC 8853), lowest first.
fn simulcast_recv() -> Simulcast {
    let mut s = Simulcast::new();
    for rid in LAYER_RIDS {
        s.add_recv_layer(SimulcastLayer::new(rid));
    }
    s
}
