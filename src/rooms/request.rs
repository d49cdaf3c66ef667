//! What a participant asks of the room, once signaling has parsed it from the wire: what they
//! publish, their mute state, where they are presenting, an annotation, what a clinician does
//! with the waiting room, and a waiting person's pre-call check.

use crate::domain::ids::{DocumentId, ParticipantId};
use crate::domain::role::Role;

/// Longest chat message, in characters.
pub const MAX_CHAT_CHARS: usize = 2000;

/// How a participant shows one video they receive, in device pixels (0 × 0: not shown), named
/// by their m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoSize {
    pub mid: String,
    pub width: u32,
    pub height: u32,
}

/// Which media a participant sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Publish {
    pub audio: bool,
    pub video: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaState {
    pub audio_muted: bool,
    pub video_off: bool,
}

/// Follow mode: where the presenter is in a document (page, zoom, the page point at the centre
/// of their view) and their pointer, all in page coordinates (0..1). No document: they stop
/// presenting.
#[derive(Debug, Clone, PartialEq)]
pub struct Follow {
    pub document_id: Option<DocumentId>,
    pub page: u32,
    pub zoom: f64,
    pub center: [f64; 2],
    pub pointer: Option<[f64; 2]>,
}

impl Follow {
    /// Page 1 to 10000, zoom 0.1 to 20, points on the page.
    pub fn is_valid(&self) -> bool {
        let on_page = |p: &[f64; 2]| p.iter().all(|c| c.is_finite() && (0.0..=1.0).contains(c));
        (1..=10_000).contains(&self.page)
            && self.zoom.is_finite()
            && (0.1..=20.0).contains(&self.zoom)
            && on_page(&self.center)
            && self.pointer.as_ref().is_none_or(on_page)
    }
}

/// A shape to add to a document page (checked by `documents::annotation`).
#[derive(Debug, Clone, PartialEq)]
pub struct Annotate {
    pub document_id: DocumentId,
    pub page: i64,
    pub shape: serde_json::Value,
}

/// Longest message to the waiting room, and reason for declining or sending back, in
/// characters.
pub const MAX_WAITING_TEXT_CHARS: usize = 500;

/// What a clinician does with the waiting room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moderation {
    /// Let someone in: the one named, or whoever waits longest.
    Admit(Option<ParticipantId>),
    /// Turn away someone who waits, with what they are told.
    Decline {
        participant: ParticipantId,
        reason: String,
    },
    /// Send someone in the room back to wait, with what they are told.
    SendBack {
        participant: ParticipantId,
        reason: String,
    },
    /// What everyone waiting is told ("the doctor is running 10 minutes late"); empty clears.
    Message(String),
    /// A locked room lets nobody more in with an invitation (care-team seats still enter).
    Lock(bool),
    /// The clinicians confer privately: their media stops reaching the patient and observers,
    /// who stay connected and are told; `false` returns to the patient.
    Huddle(bool),
    /// Stop (or resume) forwarding someone's audio and video: muted on the server, and told.
    Hold {
        participant: ParticipantId,
        held: Publish,
    },
    /// Take someone who came with a link out of the consultation; their link admits nobody
    /// more while the room is live.
    Remove {
        participant: ParticipantId,
        reason: String,
    },
    /// Change the role of someone who came with a link: an observer let speak (a guest), or a
    /// guest made to only watch (an observer).
    SetRole {
        participant: ParticipantId,
        role: Role,
    },
}

/// How a waiting person's pre-call check went, as their client measured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precall {
    pub camera: bool,
    pub microphone: bool,
    pub connection: ConnectionQuality,
    /// Round trip to the server, as the client measured it (a signaling ping).
    pub rtt_ms: Option<u32>,
    /// Why there is no camera (or that there is one), when the client says; older clients
    /// send only `camera`.
    pub camera_state: Option<DeviceCheck>,
    pub microphone_state: Option<DeviceCheck>,
    /// Whether they heard the test sound.
    pub speaker: Option<SpeakerCheck>,
    /// What the network check over the media path found (`netcheck`), when one ran.
    pub media: Option<MediaPath>,
}

/// The pre-call network check over the media path, as the client's WebRTC statistics saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaPath {
    /// Media reached the server: what the path gave.
    Connected(MediaFigures),
    /// No media path could be set up (UDP and TCP to the server blocked, say): the call's
    /// media would not connect either.
    Failed,
}

impl MediaPath {
    /// What the path gave: none of it when it failed.
    pub fn figures(self) -> MediaFigures {
        match self {
            MediaPath::Connected(figures) => figures,
            MediaPath::Failed => MediaFigures::default(),
        }
    }
}

/// What a connected media path gave, each figure when the browser reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MediaFigures {
    /// Round trip on the media path (ICE checks, RTCP).
    pub rtt_ms: Option<u32>,
    /// Packets lost on the way to the server, per thousand sent (from its reports).
    pub loss_permille: Option<u32>,
    /// The upload bandwidth the browser's congestion control found, kbit/s.
    pub up_kbps: Option<u32>,
    /// Without that (Firefox gives none): the rate the check sent at, kbit/s, a floor of the
    /// upload bandwidth (the camera sends no more than it needs).
    pub up_sent_kbps: Option<u32>,
    /// The rate at which the server's echo of their own media arrived, kbit/s: a floor of
    /// the download bandwidth, since the echo carries no more than was sent up.
    pub down_kbps: Option<u32>,
    /// The download bandwidth the server's estimator found while it probed the link, kbit/s
    /// (bounded by how far it probes, not by what went up).
    pub down_estimate_kbps: Option<u32>,
    /// Packets of the echo lost on the way from the server, per thousand expected.
    pub down_loss_permille: Option<u32>,
    /// How unevenly the echo arrived (RTP interarrival jitter), in ms.
    pub down_jitter_ms: Option<u32>,
}

/// What the pre-call check found of a camera or a microphone: a clinician helps someone whose
/// browser blocked it differently from someone who has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCheck {
    Ok,
    /// None found (or none that works).
    None,
    /// The person or the browser refused access.
    Denied,
}

impl DeviceCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceCheck::Ok => "ok",
            DeviceCheck::None => "none",
            DeviceCheck::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ok" => DeviceCheck::Ok,
            "none" => DeviceCheck::None,
            "denied" => DeviceCheck::Denied,
            _ => return None,
        })
    }
}

/// The speaker test: a short tone, and the person's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeakerCheck {
    Heard,
    NotHeard,
    /// They did not try it.
    Untested,
}

impl SpeakerCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            SpeakerCheck::Heard => "heard",
            SpeakerCheck::NotHeard => "not_heard",
            SpeakerCheck::Untested => "untested",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "heard" => SpeakerCheck::Heard,
            "not_heard" => SpeakerCheck::NotHeard,
            "untested" => SpeakerCheck::Untested,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionQuality {
    Good,
    Fair,
    Poor,
    Unknown,
}

impl ConnectionQuality {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionQuality::Good => "good",
            ConnectionQuality::Fair => "fair",
            ConnectionQuality::Poor => "poor",
            ConnectionQuality::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "good" => ConnectionQuality::Good,
            "fair" => ConnectionQuality::Fair,
            "poor" => ConnectionQuality::Poor,
            "unknown" => ConnectionQuality::Unknown,
            _ => return None,
        })
    }
}
