//! What a room tells one participant's session, in the room's own terms. The signaling edge
//! turns each [`Notice`] into a protocol message (`signaling::protocol`), so the wire format can
//! change without the room, and a storage column cannot reach the wire unnoticed.

use super::request::{Follow, Precall, Publish};
use crate::auth::IceServer;
use crate::domain::consent::ConsentPurpose;
use crate::domain::ids::{DocumentId, ParticipantId, RoomId};
use crate::domain::role::Role;
use crate::records::RecordView;
use crate::storage::{AnnotationRecord, ChatRecord, DocumentRecord};

/// Whether a participant is reachable, as the others are told: `Reconnecting` while their
/// signaling connection is lost (until resumed) or while their media path restarts ICE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    Connected,
    Reconnecting,
}

/// A participant as the others know them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantInfo {
    pub id: ParticipantId,
    pub name: String,
    pub role: Role,
    pub publishing: Publish,
    pub audio_muted: bool,
    pub video_off: bool,
    /// Media the care team stopped forwarding.
    pub held: Publish,
    pub connection: Connection,
}

/// Signaling limits a client is told when it joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub messages_per_second: u32,
    pub max_participants: usize,
}

/// Everything a participant is given on joining or resuming.
#[derive(Debug, Clone, PartialEq)]
pub struct Welcome {
    pub room: RoomId,
    pub title: String,
    pub you: ParticipantInfo,
    pub participants: Vec<ParticipantInfo>,
    pub resume_token: String,
    pub resume_window_s: u64,
    /// Bearer token for this participant's HTTP calls in this room (documents, records).
    pub access_token: String,
    pub limits: Limits,
    /// Documents shared so far that this participant may see, oldest first.
    pub documents: Vec<DocumentRecord>,
    /// The ids of those their role may see but that are withheld from them now (copies of a
    /// request's attachments without the patient's consent to sharing with their institution):
    /// named nowhere, only counted.
    pub withheld: Vec<DocumentId>,
    /// The latest chat messages, oldest first.
    pub chat: Vec<ChatRecord>,
    /// The presenter's position, when someone presents a document this participant may see.
    pub presenting: Option<Presenting>,
    /// The waiting room, for those who may admit (clinicians); `None` for the others.
    pub queue: Option<Queue>,
    /// The clinicians are conferring: their media does not reach the patient and observers.
    pub huddle: bool,
    /// Who shares their screen, if anyone.
    pub screen_share: Option<ParticipantId>,
    pub consent: ConsentState,
    /// Short-lived TURN credentials, for this participant alone (empty without TURN).
    pub ice_servers: Vec<IceServer>,
}

/// Consent as one participant is told it: what is in force in the consultation (every patient
/// present agreed), and, for a patient, what they agreed to themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentState {
    pub in_force: Vec<ConsentPurpose>,
    /// `Some` for patients: the purposes they are asked about are all of them.
    pub yours: Option<Vec<ConsentPurpose>>,
}

/// What a waiting person is told: where they are in the queue and why they wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub room: RoomId,
    pub title: String,
    /// 1 for the next to be admitted.
    pub position: usize,
    pub of: usize,
    /// From how long the last admissions took apart; `None` until there were some.
    pub estimated_wait_s: Option<u64>,
    /// The clinic's message to everyone waiting.
    pub message: Option<String>,
    /// Why this person waits again, when they were in the room.
    pub sent_back: Option<super::lobby::SentBack>,
    /// The consultation's time (start, Unix seconds; minutes), when it has one: told again
    /// when the care team moves it.
    pub slot: Option<(i64, i64)>,
}

/// The waiting room as clinicians see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub waiting: Vec<WaiterInfo>,
    pub locked: bool,
    pub message: Option<String>,
}

/// One person waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaiterInfo {
    pub id: ParticipantId,
    pub name: String,
    pub role: Role,
    /// Unix seconds.
    pub waiting_since: i64,
    pub sent_back: bool,
    pub precall: Option<Precall>,
}

/// Who presents a document and where they are in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Presenting {
    pub presenter: ParticipantId,
    pub position: Follow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    Audio,
    Video,
}

/// What a track captures: a layout gives a screen the stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackSource {
    Microphone,
    Camera,
    Screen,
}

/// A simulcast layer, lowest first (a video without layers is told as `Full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoLayer {
    Low,
    Medium,
    Full,
}

/// Why a participant gets the video they get of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoQualityReason {
    /// Their connection holds it below what would be useful (none at all: audio only).
    Bandwidth,
    /// They show it nowhere (a 0 × 0 size).
    Hidden,
    /// The best useful at the size they show it: nothing holds it back.
    Display,
}

/// One media line of an offer: whose track it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedTrack {
    pub mid: String,
    pub participant: ParticipantId,
    pub kind: TrackKind,
    pub source: TrackSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    Left,
    Disconnected,
    Replaced,
    MediaFailed,
    /// Removed by the care team: their invitation was revoked.
    Removed,
    /// A clinician sent them back to the waiting room.
    SentBack,
    /// A clinician removed them from the consultation.
    RemovedByCareTeam,
    /// A clinician whose sign-in ended (signed out, ended by an administrator, or a password
    /// change): the seat they took under it ends with it.
    SessionEnded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    EndedByDoctor,
    /// The consultation request it was held for was declined or cancelled.
    CalledOff,
    ServerShutdown,
}

/// Why the room turned down what a participant asked, or what went wrong with their media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Their role may not do it, or the thing named is not theirs to see.
    Forbidden,
    /// What they sent breaks a rule (a chat too long, a position off the page).
    Invalid,
    /// The answer names an offer that is not outstanding.
    StaleOffer,
    /// The answer could not be applied.
    BadAnswer,
    /// The media connection never came up.
    MediaUnreachable,
    /// The media connection was lost.
    MediaLost,
    /// The server could not do it (storage); trying again may work.
    Internal,
    /// The invitation they came with was revoked: they are out of the consultation.
    InviteRevoked,
    /// The person named is not waiting (admitted by someone else meanwhile, gone, declined).
    NotWaiting,
    /// The person a clinician named (to mute, remove, or give another role) is not in the
    /// consultation: gone meanwhile, or never there.
    NotPresent,
    /// A clinician turned them away from the waiting room.
    Declined,
    /// A clinician removed them from the consultation.
    Removed,
    /// It needs a patient's consent that is not given.
    ConsentRequired,
    /// Someone else shares their screen already (one at a time per room).
    ScreenShareBusy,
    /// Their media connection is not up yet: nothing to share a screen on.
    MediaNotReady,
    /// More ICE restarts than a participant may ask for in a while.
    IceRestartLimited,
    /// The sign-in under which a clinician took their seat ended: they are out.
    SessionEnded,
}

/// A message from the room to one participant.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    Offer {
        offer_id: u64,
        sdp: String,
        tracks: Vec<OfferedTrack>,
        /// The m-line on which they are to send their screen, while they share.
        screen_mid: Option<String>,
        /// The m-lines on which they are to send their microphone and camera.
        publish_mids: crate::sfu::PublishMids,
    },
    ParticipantJoined(ParticipantInfo),
    /// Several arrivals at once: they came faster than the room announced them one by one.
    ParticipantsJoined(Vec<ParticipantInfo>),
    ParticipantUpdated(ParticipantInfo),
    ParticipantLeft {
        participant: ParticipantId,
        reason: LeaveReason,
    },
    RoomEnded(EndReason),
    Refused {
        problem: Problem,
        message: String,
        /// The clinician's own words to the person (why they were declined or removed), when
        /// they gave any: shown as written, where `message` is the server's English.
        clinic_reason: Option<String>,
    },
    /// A document is complete and may be opened (sent only to those who may see it).
    DocumentShared(DocumentRecord),
    /// A document listed before may no longer be read here (a copy of a consultation request's
    /// attachment whose consent to sharing was withdrawn): sent only to those it is withheld
    /// from, who drop it from their list.
    DocumentWithheld(DocumentId),
    Chat(ChatRecord),
    Presenting(Box<Presenting>),
    PresentingStopped {
        presenter: ParticipantId,
    },
    AnnotationAdded(AnnotationRecord),
    /// A clinical record was created, issued, corrected or moved by the pharmacy.
    RecordUpdated(Box<RecordView>),
    /// To a waiting person: where they stand (on arrival, when the queue moves, when the clinic
    /// sends a message, when sent back).
    Waiting(Box<Waiting>),
    /// To a waiting person: they are let in; everything a join gives.
    Admitted(Box<Welcome>),
    /// To clinicians: the waiting room changed.
    Queue(Box<Queue>),
    /// The clinicians began or ended conferring privately (`by`: who).
    Huddle {
        active: bool,
        by: Option<ParticipantId>,
    },
    /// To one participant: the care team stopped (or resumed) forwarding their media.
    Held {
        held: Publish,
        by: ParticipantId,
    },
    /// To one participant: the care team changed their role (let them speak, or made them
    /// only watch).
    RoleChanged {
        role: Role,
        by: ParticipantId,
    },
    /// Consent changed (a patient gave or withdrew it, or a patient came or went).
    Consent(ConsentState),
    /// Who shares their screen now (`None`: nobody).
    ScreenShare {
        sharer: Option<ParticipantId>,
    },
    /// To one participant: what they are now sent of the video on their m-line `mid` (`None`:
    /// nothing, they get its audio only), and why.
    VideoQuality {
        mid: String,
        layer: Option<VideoLayer>,
        reason: VideoQualityReason,
    },
}

impl Notice {
    pub fn refused(problem: Problem, message: impl Into<String>) -> Self {
        Notice::Refused {
            problem,
            message: message.into(),
            clinic_reason: None,
        }
    }

    /// A refusal that carries the clinician's words (a decline's or a removal's reason), or
    /// the server's `fallback` when they gave none.
    pub fn turned_away(problem: Problem, words: Option<String>, fallback: &str) -> Self {
        Notice::Refused {
            problem,
            message: words.clone().unwrap_or_else(|| fallback.to_owned()),
            clinic_reason: words,
        }
    }
}

/// Why the room closes a participant's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Farewell {
    /// They left.
    Left,
    /// A newer connection of theirs took over (a join that replaces, or a resume).
    Replaced,
    /// The consultation ended.
    RoomEnded,
    /// Their connection could not take what it was sent.
    TooSlow,
    /// Their media connection failed.
    MediaFailed(Problem),
    /// The invitation they came with was revoked.
    InviteRevoked,
    /// A clinician turned them away from the waiting room.
    Declined,
    /// A clinician removed them from the consultation.
    Removed,
    /// The sign-in their care-team seat was taken under ended.
    SessionEnded,
}
