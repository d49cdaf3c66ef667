//! The signaling protocol, version 1: message types and error codes, exactly as
//! docs/protocol.md describes them. Pure data: no I/O.

use serde::{Deserialize, Serialize};

use crate::auth::IceServer;
use crate::domain::consent::ConsentPurpose;
use crate::domain::ids::{DocumentId, ParticipantId, RoomId};
use crate::domain::role::Role;
use crate::rooms;
use crate::wire::{self, AnnotationView, ChatView, ClinicalRecordView, DocumentView};

pub const PROTOCOL_VERSION: u32 = 1;

/// What a participant publishes, as the others see it (`publishing`, `held`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Publish {
    pub audio: bool,
    pub video: bool,
}

/// `publish` in `join`: what the client sends, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub struct JoinPublish {
    pub audio: bool,
    pub video: bool,
    /// The client sends its camera in simulcast layers on the m-line the offers name for it,
    /// and shows `video_quality`; absent: false (one layer, as older clients send).
    #[serde(default)]
    pub simulcast: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Join {
    pub v: u32,
    pub token: String,
    /// The name to be shown; ignored for a care-team seat (the account's name is shown).
    #[serde(default)]
    pub name: String,
    pub publish: JoinPublish,
    #[serde(default)]
    pub replaces: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Resume {
    pub v: u32,
    pub resume_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Answer {
    pub offer_id: u64,
    pub sdp: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct MediaState {
    pub audio_muted: bool,
    pub video_off: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Ping {
    pub id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Chat {
    pub text: String,
}

/// Follow mode: where the presenter is in a document (page, zoom, the page point at the centre
/// of their view) and their pointer, all in page coordinates (0..1). `document_id: null` stops
/// presenting.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Follow {
    pub document_id: Option<DocumentId>,
    #[serde(default = "first_page")]
    pub page: u32,
    #[serde(default = "unit_zoom")]
    pub zoom: f64,
    #[serde(default = "page_centre")]
    pub center: [f64; 2],
    #[serde(default)]
    pub pointer: Option<[f64; 2]>,
}

fn first_page() -> u32 {
    1
}
fn unit_zoom() -> f64 {
    1.0
}
fn page_centre() -> [f64; 2] {
    [0.5, 0.5]
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Annotate {
    pub document_id: DocumentId,
    pub page: i64,
    pub shape: serde_json::Value,
}

/// `admit`: the one named, or (no id) whoever waits longest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Admit {
    #[serde(default)]
    pub participant_id: Option<ParticipantId>,
}

/// `decline` and `send_back`: whom, and what they are told.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Moderate {
    pub participant_id: ParticipantId,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WaitingMessage {
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Lock {
    pub locked: bool,
}

/// `consent`: a patient gives (`true`) or withdraws consent for a purpose, with the version of
/// the words they were shown (optional for older clients: then the server's current words).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Consent {
    pub purpose: ConsentPurpose,
    pub given: bool,
    #[serde(default)]
    pub wording_version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Huddle {
    pub active: bool,
}

/// `hold`: stop (true) or resume (false) forwarding someone's audio and video.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Hold {
    pub participant_id: ParticipantId,
    pub audio: bool,
    pub video: bool,
}

/// `set_role`: the care team changes the role of someone who came with a link (observer ↔
/// guest). Any other role is refused by the room (`Role::may_become`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SetRole {
    pub participant_id: ParticipantId,
    pub role: Role,
}

/// `screen_share`: start (`true`) or stop sharing one's screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ScreenShare {
    pub active: bool,
}

/// A waiting person's pre-call check.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Precall {
    pub camera: bool,
    pub microphone: bool,
    /// good, fair, poor or unknown.
    pub connection: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<u32>,
    /// ok, none or denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera_state: Option<String>,
    /// ok, none or denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub microphone_state: Option<String>,
    /// heard, not_heard or untested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
    /// The network check over the media path: connected or failed (absent: none ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_path: Option<String>,
    /// With `media_path: connected`: the round trip on the media path, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_rtt_ms: Option<u32>,
    /// With `media_path: connected`: packets lost on the way to the server, per thousand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_permille: Option<u32>,
    /// With `media_path: connected`: the upload bandwidth found, in kbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_kbps: Option<u32>,
    /// With `media_path: connected`, from a browser that found no upload bandwidth (Firefox
    /// reports none): the rate the check sent at, in kbit/s (a floor of the upload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_sent_kbps: Option<u32>,
    /// With `media_path: connected`: the rate the check's echo arrived at, in kbit/s (a floor
    /// of the download bandwidth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_kbps: Option<u32>,
    /// With `media_path: connected`: the download bandwidth the server estimated while it
    /// probed the link (`net_check_estimate`), in kbit/s: unlike `down_kbps`, not bounded by
    /// what went up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_estimate_kbps: Option<u32>,
    /// With `media_path: connected`: packets of the echo lost on the way from the server, per
    /// thousand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_loss_permille: Option<u32>,
    /// With `media_path: connected`: the echo's interarrival jitter, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_jitter_ms: Option<u32>,
}

/// The most `net_check_estimate` says, in kbit/s: twice what the check's estimator aims for
/// (`sfu::DOWN_CHECK_DESIRED`), above which str0m never probes.
pub const MAX_DOWN_ESTIMATE_KBPS: u32 = (2 * crate::sfu::DOWN_CHECK_DESIRED / 1000) as u32;

/// Most sizes one `video_sizes` may carry (a client with more videos sends several).
pub const MAX_VIDEO_SIZES: usize = 64;
/// Sizes are clamped to this many device pixels a side (beyond 8K nothing changes).
pub const MAX_VIDEO_SIDE_PX: u32 = 8192;

/// `video_sizes`: how the client shows the videos it receives, on layout changes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VideoSizes {
    pub sizes: Vec<VideoSizeEntry>,
}

/// One video's size in device pixels, named by the m-line that carries it (0 × 0: not shown).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VideoSizeEntry {
    pub mid: String,
    pub width: u32,
    pub height: u32,
}

/// A message from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    Join(Join),
    Resume(Resume),
    Answer(Answer),
    MediaState(MediaState),
    Leave,
    EndRoom,
    Ping(Ping),
    Chat(Chat),
    Follow(Follow),
    Annotate(Annotate),
    Admit(Admit),
    Decline(Moderate),
    SendBack(Moderate),
    WaitingMessage(WaitingMessage),
    Lock(Lock),
    Precall(Precall),
    Huddle(Huddle),
    Hold(Hold),
    Remove(Moderate),
    SetRole(SetRole),
    Consent(Consent),
    ScreenShare(ScreenShare),
    /// The client's media path changed or failed: restart ICE (the server offers).
    IceRestart,
    VideoSizes(VideoSizes),
    /// Someone waiting starts the pre-call network check over the media path (an offer of
    /// its own follows: `net_check_offer`).
    NetCheck,
    /// The answer to `net_check_offer`.
    NetCheckAnswer(Answer),
    /// The client has measured: the check's connection may go.
    NetCheckStop,
}

/// Why a client message could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a JSON object with a string `type`, or a known type whose fields are wrong (the
    /// words say which).
    #[error("{0}")]
    Malformed(String),
    #[error("unknown message type `{0}`")]
    UnknownType(String),
}

/// The longest parser error told back to a client, in characters.
const MAX_ECHOED_CHARS: usize = 200;

/// A parser's error as a client is told it: serde quotes what it could not take (an `id` of
/// 60 kB, say), and the answer must not be as large as the question (a client that sends such
/// pings and reads nothing fills the server's buffers at no cost).
fn echo(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    if text.chars().count() <= MAX_ECHOED_CHARS {
        return text;
    }
    let mut short: String = text.chars().take(MAX_ECHOED_CHARS - 1).collect();
    short.push('…');
    short
}

impl ClientMessage {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            ParseError::Malformed(format!(
                "message is not a JSON object with a string `type`: {}",
                echo(&e)
            ))
        })?;
        let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
            return Err(ParseError::Malformed(
                "message is not a JSON object with a string `type`: missing `type`".into(),
            ));
        };
        // The fields of a known type: the words name the type, not the envelope, which was fine.
        // Read from the borrowed value (`kind` borrows it too): the strings are copied, once.
        fn body<T: serde::de::DeserializeOwned>(
            kind: &str,
            value: &serde_json::Value,
        ) -> Result<T, ParseError> {
            T::deserialize(value).map_err(|e| {
                ParseError::Malformed(format!("bad fields in a `{kind}` message: {}", echo(&e)))
            })
        }
        Ok(match kind {
            "join" => ClientMessage::Join(body(kind, &value)?),
            "resume" => ClientMessage::Resume(body(kind, &value)?),
            "answer" => ClientMessage::Answer(body(kind, &value)?),
            "media_state" => ClientMessage::MediaState(body(kind, &value)?),
            "leave" => ClientMessage::Leave,
            "end_room" => ClientMessage::EndRoom,
            "ping" => ClientMessage::Ping(body(kind, &value)?),
            "chat" => ClientMessage::Chat(body(kind, &value)?),
            "follow" => ClientMessage::Follow(body(kind, &value)?),
            "annotate" => ClientMessage::Annotate(body(kind, &value)?),
            "admit" => ClientMessage::Admit(body(kind, &value)?),
            "decline" => ClientMessage::Decline(body(kind, &value)?),
            "send_back" => ClientMessage::SendBack(body(kind, &value)?),
            "waiting_message" => ClientMessage::WaitingMessage(body(kind, &value)?),
            "lock" => ClientMessage::Lock(body(kind, &value)?),
            "precall" => ClientMessage::Precall(body(kind, &value)?),
            "huddle" => ClientMessage::Huddle(body(kind, &value)?),
            "hold" => ClientMessage::Hold(body(kind, &value)?),
            "remove" => ClientMessage::Remove(body(kind, &value)?),
            "set_role" => ClientMessage::SetRole(body(kind, &value)?),
            "consent" => ClientMessage::Consent(body(kind, &value)?),
            "screen_share" => ClientMessage::ScreenShare(body(kind, &value)?),
            "ice_restart" => ClientMessage::IceRestart,
            "net_check" => ClientMessage::NetCheck,
            "net_check_answer" => ClientMessage::NetCheckAnswer(body(kind, &value)?),
            "net_check_stop" => ClientMessage::NetCheckStop,
            "video_sizes" => {
                let sizes: VideoSizes = body(kind, &value)?;
                if sizes.sizes.len() > MAX_VIDEO_SIZES {
                    return Err(ParseError::Malformed(format!(
                        "bad fields in a `video_sizes` message: at most {MAX_VIDEO_SIZES} sizes per message"
                    )));
                }
                ClientMessage::VideoSizes(sizes)
            }
            other => {
                // Echo at most a short, printable prefix of what the client sent.
                let shown: String = other.chars().filter(|c| !c.is_control()).take(32).collect();
                return Err(ParseError::UnknownType(shown));
            }
        })
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            ClientMessage::Join(_) => "join",
            ClientMessage::Resume(_) => "resume",
            ClientMessage::Answer(_) => "answer",
            ClientMessage::MediaState(_) => "media_state",
            ClientMessage::Leave => "leave",
            ClientMessage::EndRoom => "end_room",
            ClientMessage::Ping(_) => "ping",
            ClientMessage::Chat(_) => "chat",
            ClientMessage::Follow(_) => "follow",
            ClientMessage::Annotate(_) => "annotate",
            ClientMessage::Admit(_) => "admit",
            ClientMessage::Decline(_) => "decline",
            ClientMessage::SendBack(_) => "send_back",
            ClientMessage::WaitingMessage(_) => "waiting_message",
            ClientMessage::Lock(_) => "lock",
            ClientMessage::Precall(_) => "precall",
            ClientMessage::Huddle(_) => "huddle",
            ClientMessage::Hold(_) => "hold",
            ClientMessage::Remove(_) => "remove",
            ClientMessage::SetRole(_) => "set_role",
            ClientMessage::Consent(_) => "consent",
            ClientMessage::ScreenShare(_) => "screen_share",
            ClientMessage::IceRestart => "ice_restart",
            ClientMessage::VideoSizes(_) => "video_sizes",
            ClientMessage::NetCheck => "net_check",
            ClientMessage::NetCheckAnswer(_) => "net_check_answer",
            ClientMessage::NetCheckStop => "net_check_stop",
        }
    }
}

// What a client asks, in the room's terms.

impl From<JoinPublish> for rooms::Publish {
    fn from(p: JoinPublish) -> Self {
        Self {
            audio: p.audio,
            video: p.video,
        }
    }
}

impl From<rooms::Publish> for Publish {
    fn from(p: rooms::Publish) -> Self {
        Self {
            audio: p.audio,
            video: p.video,
        }
    }
}

impl From<MediaState> for rooms::MediaState {
    fn from(m: MediaState) -> Self {
        Self {
            audio_muted: m.audio_muted,
            video_off: m.video_off,
        }
    }
}

impl From<Follow> for rooms::Follow {
    fn from(f: Follow) -> Self {
        Self {
            document_id: f.document_id,
            page: f.page,
            zoom: f.zoom,
            center: f.center,
            pointer: f.pointer,
        }
    }
}

impl From<&rooms::Follow> for Follow {
    fn from(f: &rooms::Follow) -> Self {
        Self {
            document_id: f.document_id.clone(),
            page: f.page,
            zoom: f.zoom,
            center: f.center,
            pointer: f.pointer,
        }
    }
}

impl From<VideoSizeEntry> for rooms::VideoSize {
    /// Clamped: a size past any screen's means no more than the largest.
    fn from(s: VideoSizeEntry) -> Self {
        Self {
            mid: s.mid,
            width: s.width.min(MAX_VIDEO_SIDE_PX),
            height: s.height.min(MAX_VIDEO_SIDE_PX),
        }
    }
}

impl From<Annotate> for rooms::Annotate {
    fn from(a: Annotate) -> Self {
        Self {
            document_id: a.document_id,
            page: a.page,
            shape: a.shape,
        }
    }
}

// What the server says. Every type below is the wire's own; `ServerMessage::from_notice` and
// `Welcome::from_room` convert the room's notices, field by field.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    Connected,
    Reconnecting,
}

/// A participant as other clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParticipantView {
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

impl From<&rooms::ParticipantInfo> for ParticipantView {
    fn from(p: &rooms::ParticipantInfo) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            role: p.role,
            publishing: p.publishing.into(),
            audio_muted: p.audio_muted,
            video_off: p.video_off,
            held: p.held.into(),
            connection: match p.connection {
                rooms::Connection::Connected => Connection::Connected,
                rooms::Connection::Reconnecting => Connection::Reconnecting,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomView {
    pub id: RoomId,
    pub title: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub messages_per_second: u32,
    pub max_participants: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Welcome {
    pub v: u32,
    pub room: RoomView,
    pub you: ParticipantView,
    pub participants: Vec<ParticipantView>,
    pub resume_token: String,
    pub resume_window_s: u64,
    /// Bearer token for this participant's HTTP calls in this room (documents, records);
    /// valid while they are in the room.
    pub access_token: String,
    pub limits: Limits,
    /// Documents shared so far that this participant may see, oldest first.
    pub documents: Vec<DocumentView>,
    /// The ids of documents withheld from this participant now (`rooms::Welcome::withheld`).
    pub documents_withheld: Vec<DocumentId>,
    /// The latest chat messages, oldest first.
    pub chat: Vec<ChatView>,
    /// The presenter's current position, when someone presents a document this participant
    /// may see.
    pub follow: Option<FollowView>,
    /// The waiting room, for clinicians (who may admit); absent for the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<QueueView>,
    /// The clinicians are conferring privately.
    pub huddle: bool,
    /// Who shares their screen, if anyone.
    pub screen_share: Option<ParticipantId>,
    pub consent: ConsentView,
    /// TURN relays with this participant's short-lived credentials, shaped as WebRTC's
    /// RTCIceServer; empty when the server has none.
    pub ice_servers: Vec<IceServerView>,
}

/// One RTCIceServer: `urls` sharing a user name and credential (TURN REST scheme).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct IceServerView {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

impl std::fmt::Debug for IceServerView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServerView")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

impl From<&IceServer> for IceServerView {
    fn from(s: &IceServer) -> Self {
        Self {
            urls: s.urls.clone(),
            username: s.username.clone(),
            credential: s.credential.clone(),
        }
    }
}

/// Consent as a participant is told it. `asked` (patients only): each purpose with the words
/// to show and their version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentView {
    pub in_force: Vec<ConsentPurpose>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub yours: Option<Vec<ConsentPurpose>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asked: Option<Vec<ConsentWording>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentWording {
    pub purpose: ConsentPurpose,
    pub version: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
}

impl From<&rooms::ConsentState> for ConsentView {
    fn from(c: &rooms::ConsentState) -> Self {
        Self {
            in_force: c.in_force.clone(),
            yours: c.yours.clone(),
            asked: c.yours.as_ref().map(|_| {
                ConsentPurpose::ALL
                    .into_iter()
                    .map(|purpose| {
                        let w = purpose.wording();
                        ConsentWording {
                            purpose,
                            version: w.version,
                            zh: w.zh,
                            en: w.en,
                        }
                    })
                    .collect()
            }),
        }
    }
}

impl Welcome {
    pub fn from_room(w: &rooms::Welcome) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            room: RoomView {
                id: w.room.clone(),
                title: w.title.clone(),
            },
            you: (&w.you).into(),
            participants: wire::all(&w.participants),
            resume_token: w.resume_token.clone(),
            resume_window_s: w.resume_window_s,
            access_token: w.access_token.clone(),
            limits: Limits {
                max_message_bytes: w.limits.max_message_bytes,
                messages_per_second: w.limits.messages_per_second,
                max_participants: w.limits.max_participants,
            },
            documents: wire::all(&w.documents),
            documents_withheld: w.withheld.clone(),
            chat: wire::all(&w.chat),
            follow: w.presenting.as_ref().map(Into::into),
            waiting_room: w.queue.as_ref().map(Into::into),
            huddle: w.huddle,
            screen_share: w.screen_share.clone(),
            consent: (&w.consent).into(),
            ice_servers: w.ice_servers.iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FollowView {
    pub presenter: ParticipantId,
    #[serde(flatten)]
    pub state: Follow,
}

impl From<&rooms::Presenting> for FollowView {
    fn from(p: &rooms::Presenting) -> Self {
        Self {
            presenter: p.presenter.clone(),
            state: (&p.position).into(),
        }
    }
}

/// The m-lines on which a participant sends their own microphone and camera.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PublishMidsView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video: Option<String>,
    /// The camera's m-line (`video`) asks for simulcast layers.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub simulcast: bool,
}

impl PublishMidsView {
    fn is_empty(&self) -> bool {
        self.audio.is_none() && self.video.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackView {
    pub mid: String,
    pub participant_id: ParticipantId,
    pub kind: &'static str,
    /// `microphone`, `camera` or `screen`.
    pub source: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    Left,
    Disconnected,
    Replaced,
    MediaFailed,
    Removed,
    SentBack,
    RemovedByCareTeam,
    SessionEnded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    EndedByDoctor,
    CalledOff,
    ServerShutdown,
}

/// A message to a client.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    // Boxed: the welcome is by far the largest message.
    Joined(Box<Welcome>),
    Resumed(Box<Welcome>),
    Offer {
        offer_id: u64,
        sdp: String,
        tracks: Vec<TrackView>,
        /// While the recipient shares their screen: the m-line to send it on.
        #[serde(skip_serializing_if = "Option::is_none")]
        screen_mid: Option<String>,
        /// While the recipient publishes: the m-lines to send their microphone and camera on.
        #[serde(skip_serializing_if = "PublishMidsView::is_empty")]
        publish_mids: PublishMidsView,
    },
    ParticipantJoined {
        participant: ParticipantView,
    },
    /// Several arrivals at once: they came faster than the room announced them one by one.
    ParticipantsJoined {
        participants: Vec<ParticipantView>,
    },
    ParticipantUpdated {
        participant: ParticipantView,
    },
    ParticipantLeft {
        participant_id: ParticipantId,
        reason: LeaveReason,
    },
    RoomEnded {
        reason: EndReason,
    },
    Error {
        code: ErrorCode,
        message: String,
        fatal: bool,
        /// With `invite_not_yet`: when the invitation opens (Unix seconds).
        #[serde(skip_serializing_if = "Option::is_none")]
        opens_at: Option<i64>,
        /// With `declined` and `removed`: the clinician's own words, when they gave any.
        #[serde(skip_serializing_if = "Option::is_none")]
        clinic_reason: Option<String>,
    },
    Pong {
        id: u64,
    },
    /// The pre-call network check's own offer (`netcheck`): the client sends its microphone
    /// and camera on `publish_mids` and measures; nothing is ever sent back on it.
    NetCheckOffer {
        offer_id: u64,
        sdp: String,
        publish_mids: PublishMidsView,
        /// TURN relays for this check's connection (empty when the server has none).
        ice_servers: Vec<IceServerView>,
        /// The server ends the check this many seconds after it started.
        seconds: u64,
    },
    /// The check's connection is gone: `done` (the client stopped it), `time`, `admitted` (the
    /// call takes over) or `failed`.
    NetCheckEnded {
        reason: &'static str,
    },
    /// While the check runs: the download bandwidth the server estimates from the client's
    /// transport feedback as it probes the link (`netcheck`), in kbit/s. One a second; no more
    /// than [`MAX_DOWN_ESTIMATE_KBPS`] (the server probes no
    /// higher), so a figure at it means "at least this".
    NetCheckEstimate {
        down_kbps: u32,
    },
    /// A document is complete and may be opened (sent only to those who may see it).
    DocumentShared {
        document: DocumentView,
    },
    /// A document listed before is withheld from the recipient now (see `Notice`).
    DocumentWithheld {
        document_id: DocumentId,
    },
    Chat {
        message: ChatView,
    },
    Follow(Box<FollowView>),
    FollowStopped {
        presenter: ParticipantId,
    },
    AnnotationAdded {
        annotation: AnnotationView,
    },
    /// A clinical record was created, issued, corrected or moved by the pharmacy.
    RecordUpdated {
        record: Box<ClinicalRecordView>,
    },
    /// To someone waiting to be admitted: where they stand.
    Waiting(Box<WaitingView>),
    /// To clinicians: the waiting room as it stands now.
    WaitingRoom(Box<QueueView>),
    /// The clinicians began or ended conferring privately.
    Huddle {
        active: bool,
        by: Option<ParticipantId>,
    },
    /// To one participant: the care team stopped or resumed forwarding their media.
    Held {
        audio: bool,
        video: bool,
        by: ParticipantId,
    },
    /// To one participant: the care team changed their role.
    RoleChanged {
        role: Role,
        by: ParticipantId,
    },
    /// Consent changed: what is in force, and (patients) what they agreed to.
    Consent(ConsentView),
    /// Who shares their screen now (`null`: nobody).
    ScreenShare {
        sharer: Option<ParticipantId>,
    },
    /// To one participant: what they are sent of the video on their m-line `mid` now.
    VideoQuality {
        mid: String,
        /// `null`: no video (audio only).
        layer: Option<VideoLayerView>,
        reason: VideoQualityReasonView,
    },
}

/// A simulcast layer on the wire: quarter, half, full size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum VideoLayerView {
    #[serde(rename = "q")]
    Quarter,
    #[serde(rename = "h")]
    Half,
    #[serde(rename = "f")]
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoQualityReasonView {
    Bandwidth,
    Hidden,
    Display,
}

/// What a waiting person is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaitingView {
    pub room: RoomView,
    pub position: usize,
    pub of: usize,
    pub estimated_wait_s: Option<u64>,
    pub message: Option<String>,
    /// Why they wait again, in English, when they were in the room (the clinician's words,
    /// or the server's own); `sent_back_why` says it as a code, for the client to say in the
    /// person's language, and `clinic_reason` carries the clinician's words alone.
    pub sent_back: Option<String>,
    /// `care_team` (a clinician sent them back) or `awaits_consent` (an observer, until the
    /// patient agrees to observers being present); null when not sent back.
    pub sent_back_why: Option<&'static str>,
    /// What the clinician who sent them back wrote, if anything.
    pub clinic_reason: Option<String>,
    /// The consultation's time (Unix seconds; minutes), null when it has none; sent again
    /// when the care team moves it.
    pub slot_start: Option<i64>,
    pub slot_minutes: Option<i64>,
}

impl From<&rooms::Waiting> for WaitingView {
    fn from(w: &rooms::Waiting) -> Self {
        Self {
            room: RoomView {
                id: w.room.clone(),
                title: w.title.clone(),
            },
            position: w.position,
            of: w.of,
            estimated_wait_s: w.estimated_wait_s,
            message: w.message.clone(),
            sent_back: w.sent_back.as_ref().map(|s| s.text()),
            sent_back_why: w.sent_back.as_ref().map(|s| s.code()),
            clinic_reason: w
                .sent_back
                .as_ref()
                .and_then(|s| s.words())
                .map(str::to_owned),
            slot_start: w.slot.map(|(start, _)| start),
            slot_minutes: w.slot.map(|(_, minutes)| minutes),
        }
    }
}

/// The waiting room as clinicians see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueView {
    pub waiting: Vec<WaiterView>,
    pub locked: bool,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaiterView {
    pub id: ParticipantId,
    pub name: String,
    pub role: Role,
    pub waiting_since: i64,
    pub sent_back: bool,
    pub precall: Option<Precall>,
}

impl From<&rooms::Queue> for QueueView {
    fn from(q: &rooms::Queue) -> Self {
        Self {
            waiting: q
                .waiting
                .iter()
                .map(|w| WaiterView {
                    id: w.id.clone(),
                    name: w.name.clone(),
                    role: w.role,
                    waiting_since: w.waiting_since,
                    sent_back: w.sent_back,
                    precall: w.precall.map(|p| {
                        let figures = p.media.map(rooms::MediaPath::figures).unwrap_or_default();
                        Precall {
                            camera: p.camera,
                            microphone: p.microphone,
                            connection: p.connection.as_str().to_owned(),
                            rtt_ms: p.rtt_ms,
                            camera_state: p.camera_state.map(|d| d.as_str().to_owned()),
                            microphone_state: p.microphone_state.map(|d| d.as_str().to_owned()),
                            speaker: p.speaker.map(|h| h.as_str().to_owned()),
                            media_path: p.media.map(|m| match m {
                                rooms::MediaPath::Connected { .. } => "connected".to_owned(),
                                rooms::MediaPath::Failed => "failed".to_owned(),
                            }),
                            media_rtt_ms: figures.rtt_ms,
                            loss_permille: figures.loss_permille,
                            up_kbps: figures.up_kbps,
                            up_sent_kbps: figures.up_sent_kbps,
                            down_kbps: figures.down_kbps,
                            down_estimate_kbps: figures.down_estimate_kbps,
                            down_loss_permille: figures.down_loss_permille,
                            down_jitter_ms: figures.down_jitter_ms,
                        }
                    }),
                })
                .collect(),
            locked: q.locked,
            message: q.message.clone(),
        }
    }
}

impl ServerMessage {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
            fatal: code.is_fatal(),
            opens_at: None,
            clinic_reason: None,
        }
    }

    /// An error that says when the invitation opens (`invite_not_yet`).
    pub fn opening_at(mut self, at: Option<i64>) -> Self {
        if let ServerMessage::Error { opens_at, .. } = &mut self {
            *opens_at = at;
        }
        self
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server messages serialize")
    }

    /// The room's notice as the client is told it.
    pub fn from_notice(n: &rooms::Notice) -> Self {
        use rooms::Notice as N;
        match n {
            N::Offer {
                offer_id,
                sdp,
                tracks,
                screen_mid,
                publish_mids,
            } => ServerMessage::Offer {
                offer_id: *offer_id,
                sdp: sdp.clone(),
                tracks: tracks
                    .iter()
                    .map(|t| TrackView {
                        mid: t.mid.clone(),
                        participant_id: t.participant.clone(),
                        kind: match t.kind {
                            rooms::TrackKind::Audio => "audio",
                            rooms::TrackKind::Video => "video",
                        },
                        source: match t.source {
                            rooms::TrackSource::Microphone => "microphone",
                            rooms::TrackSource::Camera => "camera",
                            rooms::TrackSource::Screen => "screen",
                        },
                    })
                    .collect(),
                screen_mid: screen_mid.clone(),
                publish_mids: PublishMidsView {
                    audio: publish_mids.audio.clone(),
                    video: publish_mids.video.clone(),
                    simulcast: publish_mids.simulcast,
                },
            },
            N::ParticipantJoined(p) => ServerMessage::ParticipantJoined {
                participant: p.into(),
            },
            N::ParticipantsJoined(ps) => ServerMessage::ParticipantsJoined {
                participants: wire::all(ps),
            },
            N::ParticipantUpdated(p) => ServerMessage::ParticipantUpdated {
                participant: p.into(),
            },
            N::ParticipantLeft {
                participant,
                reason,
            } => ServerMessage::ParticipantLeft {
                participant_id: participant.clone(),
                reason: match reason {
                    rooms::LeaveReason::Left => LeaveReason::Left,
                    rooms::LeaveReason::Disconnected => LeaveReason::Disconnected,
                    rooms::LeaveReason::Replaced => LeaveReason::Replaced,
                    rooms::LeaveReason::MediaFailed => LeaveReason::MediaFailed,
                    rooms::LeaveReason::Removed => LeaveReason::Removed,
                    rooms::LeaveReason::SentBack => LeaveReason::SentBack,
                    rooms::LeaveReason::RemovedByCareTeam => LeaveReason::RemovedByCareTeam,
                    rooms::LeaveReason::SessionEnded => LeaveReason::SessionEnded,
                },
            },
            N::RoomEnded(reason) => ServerMessage::RoomEnded {
                reason: match reason {
                    rooms::EndReason::EndedByDoctor => EndReason::EndedByDoctor,
                    rooms::EndReason::CalledOff => EndReason::CalledOff,
                    rooms::EndReason::ServerShutdown => EndReason::ServerShutdown,
                },
            },
            N::Refused {
                problem,
                message,
                clinic_reason,
            } => {
                let mut error =
                    ServerMessage::error(ErrorCode::of_problem(*problem), message.clone());
                if let ServerMessage::Error {
                    clinic_reason: words,
                    ..
                } = &mut error
                {
                    words.clone_from(clinic_reason);
                }
                error
            }
            N::DocumentShared(d) => ServerMessage::DocumentShared { document: d.into() },
            N::DocumentWithheld(id) => ServerMessage::DocumentWithheld {
                document_id: id.clone(),
            },
            N::Chat(c) => ServerMessage::Chat { message: c.into() },
            N::Presenting(p) => ServerMessage::Follow(Box::new(p.as_ref().into())),
            N::PresentingStopped { presenter } => ServerMessage::FollowStopped {
                presenter: presenter.clone(),
            },
            N::AnnotationAdded(a) => ServerMessage::AnnotationAdded {
                annotation: a.into(),
            },
            N::RecordUpdated(r) => ServerMessage::RecordUpdated {
                record: Box::new(r.as_ref().into()),
            },
            N::Waiting(w) => ServerMessage::Waiting(Box::new(w.as_ref().into())),
            N::Admitted(w) => ServerMessage::Joined(Box::new(Welcome::from_room(w))),
            N::Queue(q) => ServerMessage::WaitingRoom(Box::new(q.as_ref().into())),
            N::Huddle { active, by } => ServerMessage::Huddle {
                active: *active,
                by: by.clone(),
            },
            N::Held { held, by } => ServerMessage::Held {
                audio: held.audio,
                video: held.video,
                by: by.clone(),
            },
            N::RoleChanged { role, by } => ServerMessage::RoleChanged {
                role: *role,
                by: by.clone(),
            },
            N::Consent(c) => ServerMessage::Consent(c.into()),
            N::ScreenShare { sharer } => ServerMessage::ScreenShare {
                sharer: sharer.clone(),
            },
            N::VideoQuality { mid, layer, reason } => ServerMessage::VideoQuality {
                mid: mid.clone(),
                layer: layer.map(|l| match l {
                    rooms::VideoLayer::Low => VideoLayerView::Quarter,
                    rooms::VideoLayer::Medium => VideoLayerView::Half,
                    rooms::VideoLayer::Full => VideoLayerView::Full,
                }),
                reason: match reason {
                    rooms::VideoQualityReason::Bandwidth => VideoQualityReasonView::Bandwidth,
                    rooms::VideoQualityReason::Hidden => VideoQualityReasonView::Hidden,
                    rooms::VideoQualityReason::Display => VideoQualityReasonView::Display,
                },
            },
        }
    }
}

/// Stable error codes (docs/protocol.md, "Errors").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadMessage,
    UnknownType,
    UnsupportedVersion,
    MessageTooLarge,
    RateLimited,
    NotJoined,
    AlreadyJoined,
    InvalidToken,
    TokenExpired,
    InviteRevoked,
    RoomNotFound,
    RoomEnded,
    RoomFull,
    ServerFull,
    Forbidden,
    InvalidName,
    ResumeFailed,
    StaleOffer,
    BadSdp,
    MediaUnreachable,
    MediaLost,
    Internal,
    NotWaiting,
    NotPresent,
    RoomLocked,
    Declined,
    Removed,
    ConsentRequired,
    // Invitations: before their window opens; used as many times as they allow.
    InviteNotYet,
    InviteUsedUp,
    // Screen sharing: one at a time per room; only on a media connection that is up.
    ScreenShareBusy,
    MediaNotReady,
    /// More ICE restarts than the room allows a participant a minute.
    IceRestartLimited,
    /// No pre-call network check now: the server runs as many as it allows, or this
    /// connection has had its share.
    NetCheckLimited,
    /// The sign-in a clinician's care-team seat was taken under ended (signed out, ended by an
    /// administrator, a password change): they are removed from the consultation.
    SessionEnded,
    /// A consent given in words that are no longer the current ones (the server's were
    /// revised since the page showed them): nothing was recorded; read the new words.
    WordingChanged,
}

impl ErrorCode {
    /// Every code, for metrics and tests.
    pub const ALL: [ErrorCode; 36] = [
        ErrorCode::BadMessage,
        ErrorCode::UnknownType,
        ErrorCode::UnsupportedVersion,
        ErrorCode::MessageTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::NotJoined,
        ErrorCode::AlreadyJoined,
        ErrorCode::InvalidToken,
        ErrorCode::TokenExpired,
        ErrorCode::InviteRevoked,
        ErrorCode::RoomNotFound,
        ErrorCode::RoomEnded,
        ErrorCode::RoomFull,
        ErrorCode::ServerFull,
        ErrorCode::Forbidden,
        ErrorCode::InvalidName,
        ErrorCode::ResumeFailed,
        ErrorCode::StaleOffer,
        ErrorCode::BadSdp,
        ErrorCode::MediaUnreachable,
        ErrorCode::MediaLost,
        ErrorCode::Internal,
        ErrorCode::NotWaiting,
        ErrorCode::NotPresent,
        ErrorCode::RoomLocked,
        ErrorCode::Declined,
        ErrorCode::Removed,
        ErrorCode::ConsentRequired,
        ErrorCode::InviteNotYet,
        ErrorCode::InviteUsedUp,
        ErrorCode::ScreenShareBusy,
        ErrorCode::MediaNotReady,
        ErrorCode::IceRestartLimited,
        ErrorCode::NetCheckLimited,
        ErrorCode::SessionEnded,
        ErrorCode::WordingChanged,
    ];

    pub fn is_fatal(self) -> bool {
        !matches!(
            self,
            ErrorCode::BadMessage
                | ErrorCode::UnknownType
                | ErrorCode::AlreadyJoined
                | ErrorCode::Forbidden
                | ErrorCode::StaleOffer
                | ErrorCode::BadSdp
                | ErrorCode::NotWaiting
                | ErrorCode::NotPresent
                | ErrorCode::ConsentRequired
                | ErrorCode::WordingChanged
                | ErrorCode::ScreenShareBusy
                | ErrorCode::MediaNotReady
                | ErrorCode::IceRestartLimited
                | ErrorCode::NetCheckLimited
        )
    }

    /// The WebSocket close code that follows a fatal error.
    pub fn close_code(self) -> u16 {
        match self {
            ErrorCode::MessageTooLarge => 1009,
            ErrorCode::Internal => 1011,
            ErrorCode::RoomEnded => 4000,
            ErrorCode::InvalidToken
            | ErrorCode::TokenExpired
            | ErrorCode::InviteRevoked
            | ErrorCode::InviteNotYet
            | ErrorCode::InviteUsedUp
            | ErrorCode::SessionEnded => 4001,
            ErrorCode::RoomFull | ErrorCode::ServerFull => 4002,
            ErrorCode::ResumeFailed => 4004,
            ErrorCode::RateLimited => 4008,
            ErrorCode::MediaUnreachable | ErrorCode::MediaLost => 4005,
            ErrorCode::RoomNotFound => 4404,
            ErrorCode::Declined => 4006,
            ErrorCode::RoomLocked => 4007,
            ErrorCode::Removed => 4009,
            _ => 1008,
        }
    }

    /// The code a client is given for the room's refusal.
    pub fn of_problem(p: rooms::Problem) -> Self {
        match p {
            rooms::Problem::Forbidden => ErrorCode::Forbidden,
            rooms::Problem::Invalid => ErrorCode::BadMessage,
            rooms::Problem::StaleOffer => ErrorCode::StaleOffer,
            rooms::Problem::BadAnswer => ErrorCode::BadSdp,
            rooms::Problem::MediaUnreachable => ErrorCode::MediaUnreachable,
            rooms::Problem::MediaLost => ErrorCode::MediaLost,
            rooms::Problem::Internal => ErrorCode::Internal,
            rooms::Problem::InviteRevoked => ErrorCode::InviteRevoked,
            rooms::Problem::NotWaiting => ErrorCode::NotWaiting,
            rooms::Problem::NotPresent => ErrorCode::NotPresent,
            rooms::Problem::Declined => ErrorCode::Declined,
            rooms::Problem::Removed => ErrorCode::Removed,
            rooms::Problem::ConsentRequired => ErrorCode::ConsentRequired,
            rooms::Problem::ScreenShareBusy => ErrorCode::ScreenShareBusy,
            rooms::Problem::MediaNotReady => ErrorCode::MediaNotReady,
            rooms::Problem::IceRestartLimited => ErrorCode::IceRestartLimited,
            rooms::Problem::SessionEnded => ErrorCode::SessionEnded,
        }
    }

    pub fn as_str(self) -> &'static str {
        // Kept in sync with the serde names by the unit test below.
        match self {
            ErrorCode::BadMessage => "bad_message",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::InviteRevoked => "invite_revoked",
            ErrorCode::RoomNotFound => "room_not_found",
            ErrorCode::RoomEnded => "room_ended",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::ServerFull => "server_full",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::ResumeFailed => "resume_failed",
            ErrorCode::StaleOffer => "stale_offer",
            ErrorCode::BadSdp => "bad_sdp",
            ErrorCode::MediaUnreachable => "media_unreachable",
            ErrorCode::MediaLost => "media_lost",
            ErrorCode::Internal => "internal",
            ErrorCode::NotWaiting => "not_waiting",
            ErrorCode::NotPresent => "not_present",
            ErrorCode::RoomLocked => "room_locked",
            ErrorCode::Declined => "declined",
            ErrorCode::Removed => "removed",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InviteNotYet => "invite_not_yet",
            ErrorCode::InviteUsedUp => "invite_used_up",
            ErrorCode::ScreenShareBusy => "screen_share_busy",
            ErrorCode::MediaNotReady => "media_not_ready",
            ErrorCode::IceRestartLimited => "ice_restart_limited",
            ErrorCode::NetCheckLimited => "net_check_limited",
            ErrorCode::SessionEnded => "session_ended",
            ErrorCode::WordingChanged => "wording_changed",
        }
    }
}

/// Close codes that are not tied to an error message.
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const POLICY: u16 = 1008;
    pub const INTERNAL: u16 = 1011;
    pub const ROOM_ENDED: u16 = 4000;
    pub const REPLACED: u16 = 4003;

    /// The close code for the room's reason to close a connection.
    pub fn of_farewell(f: crate::rooms::Farewell) -> u16 {
        use crate::rooms::Farewell;
        match f {
            Farewell::Left => NORMAL,
            Farewell::Replaced => REPLACED,
            Farewell::RoomEnded => ROOM_ENDED,
            Farewell::TooSlow => INTERNAL,
            Farewell::MediaFailed(p) => super::ErrorCode::of_problem(p).close_code(),
            Farewell::InviteRevoked => super::ErrorCode::InviteRevoked.close_code(),
            Farewell::Declined => super::ErrorCode::Declined.close_code(),
            Farewell::Removed => super::ErrorCode::Removed.close_code(),
            Farewell::SessionEnded => super::ErrorCode::SessionEnded.close_code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_client_message() {
        let join = r#"{"type":"join","v":1,"token":"t","name":"Dr. Li","publish":{"audio":true,"video":false}}"#;
        assert!(
            matches!(ClientMessage::parse(join), Ok(ClientMessage::Join(j)) if j.name == "Dr. Li" && j.replaces.is_none() && !j.publish.simulcast)
        );
        let simulcast = r#"{"type":"join","v":1,"token":"t","publish":{"audio":true,"video":true,"simulcast":true}}"#;
        assert!(
            matches!(ClientMessage::parse(simulcast), Ok(ClientMessage::Join(j)) if j.publish.simulcast)
        );
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"resume","v":1,"resume_token":"x"}"#),
            Ok(ClientMessage::Resume(_))
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"answer","offer_id":3,"sdp":"v=0"}"#),
            Ok(ClientMessage::Answer(Answer { offer_id: 3, .. }))
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"media_state","audio_muted":true,"video_off":false}"#),
            Ok(ClientMessage::MediaState(_))
        ));
        assert_eq!(
            ClientMessage::parse(r#"{"type":"leave","extra":1}"#),
            Ok(ClientMessage::Leave)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"end_room"}"#),
            Ok(ClientMessage::EndRoom)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"ping","id":9}"#),
            Ok(ClientMessage::Ping(Ping { id: 9 }))
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"screen_share","active":true}"#),
            Ok(ClientMessage::ScreenShare(ScreenShare { active: true }))
        );
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"screen_share","active":"yes"}"#),
            Err(ParseError::Malformed(_))
        ));
    }

    #[test]
    fn screen_share_messages_serialize_as_documented() {
        let id = ParticipantId::generate();
        let v: serde_json::Value = serde_json::from_str(
            &ServerMessage::ScreenShare {
                sharer: Some(id.clone()),
            }
            .to_json(),
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "screen_share", "sharer": id.as_str()})
        );
        let v: serde_json::Value =
            serde_json::from_str(&ServerMessage::ScreenShare { sharer: None }.to_json()).unwrap();
        assert!(v["sharer"].is_null());
        let offer = ServerMessage::from_notice(&rooms::Notice::Offer {
            offer_id: 2,
            sdp: String::new(),
            tracks: vec![rooms::OfferedTrack {
                mid: "a1".into(),
                participant: id.clone(),
                kind: rooms::TrackKind::Video,
                source: rooms::TrackSource::Screen,
            }],
            screen_mid: None,
            publish_mids: Default::default(),
        });
        let v: serde_json::Value = serde_json::from_str(&offer.to_json()).unwrap();
        assert_eq!(v["tracks"][0]["source"], "screen");
        assert!(
            v.get("screen_mid").is_none(),
            "only while the recipient shares"
        );
        for code in [ErrorCode::ScreenShareBusy, ErrorCode::MediaNotReady] {
            assert!(!code.is_fatal());
        }
    }

    #[test]
    fn video_sizes_are_bounded_and_clamped() {
        let Ok(ClientMessage::VideoSizes(v)) = ClientMessage::parse(
            r#"{"type":"video_sizes","sizes":[{"mid":"a1","width":640,"height":360},{"mid":"b2","width":0,"height":0},{"mid":"c3","width":4000000000,"height":20000}]}"#,
        ) else {
            panic!("video_sizes parses");
        };
        let sizes: Vec<rooms::VideoSize> = v.sizes.into_iter().map(Into::into).collect();
        assert_eq!(
            sizes
                .iter()
                .map(|s| (s.width, s.height))
                .collect::<Vec<_>>(),
            [(640, 360), (0, 0), (8192, 8192)]
        );
        assert_eq!(sizes[0].mid, "a1");
        let entry = r#"{"mid":"a1","width":1,"height":1}"#;
        let many = |n: usize| {
            format!(
                r#"{{"type":"video_sizes","sizes":[{}]}}"#,
                vec![entry; n].join(",")
            )
        };
        assert!(matches!(
            ClientMessage::parse(&many(MAX_VIDEO_SIZES)),
            Ok(ClientMessage::VideoSizes(_))
        ));
        assert!(matches!(
            ClientMessage::parse(&many(MAX_VIDEO_SIZES + 1)),
            Err(ParseError::Malformed(_))
        ));
        for bad in [
            r#"{"type":"video_sizes"}"#,
            r#"{"type":"video_sizes","sizes":[{"mid":"a1","width":-1,"height":2}]}"#,
            r#"{"type":"video_sizes","sizes":[{"mid":7,"width":1,"height":2}]}"#,
            r#"{"type":"video_sizes","sizes":[{"mid":"a1","width":1.5,"height":2}]}"#,
        ] {
            assert!(
                matches!(ClientMessage::parse(bad), Err(ParseError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn video_quality_serializes_as_documented() {
        let m = ServerMessage::from_notice(&rooms::Notice::VideoQuality {
            mid: "a1".into(),
            layer: Some(rooms::VideoLayer::Low),
            reason: rooms::VideoQualityReason::Bandwidth,
        });
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "video_quality", "mid": "a1", "layer": "q", "reason": "bandwidth"})
        );
        let m = ServerMessage::from_notice(&rooms::Notice::VideoQuality {
            mid: "a1".into(),
            layer: None,
            reason: rooms::VideoQualityReason::Hidden,
        });
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert!(v["layer"].is_null(), "audio only is told as null: {v}");
        assert_eq!(v["reason"], "hidden");
    }

    #[test]
    fn malformed_and_unknown_are_told_apart() {
        for bad in [
            "",
            "nul",
            "[]",
            "42",
            r#"{"type":7}"#,
            r#"{"no_type":1}"#,
            r#"{"type":"answer","offer_id":"x","sdp":""}"#,
        ] {
            assert!(
                matches!(ClientMessage::parse(bad), Err(ParseError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(
            ClientMessage::parse(r#"{"type":"subscribe"}"#),
            Err(ParseError::UnknownType("subscribe".into()))
        );
    }

    #[test]
    fn what_a_client_sent_is_not_echoed_at_length() {
        let huge = "x".repeat(60_000);
        for bad in [
            format!(r#"{{"type":"ping","id":{{"a":"{huge}"}}}}"#),
            format!(r#"{{"type":"chat","text":7,"{huge}":1}}"#),
            format!(r#"{{"type":"ping","id":"{huge}"#),
        ] {
            let Err(ParseError::Malformed(told)) = ClientMessage::parse(&bad) else {
                panic!("refused as malformed");
            };
            assert!(told.chars().count() < 300, "{} characters told", told.len());
        }
    }

    #[test]
    fn error_codes_serialize_as_documented() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
        }
        let m = ServerMessage::error(ErrorCode::RoomFull, "full");
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "room_full");
        assert_eq!(v["fatal"], true);
        assert_eq!(ErrorCode::RoomFull.close_code(), 4002);
        assert!(!ErrorCode::StaleOffer.is_fatal());
        assert!(v.get("opens_at").is_none(), "only when it says something");
        let m = ServerMessage::error(ErrorCode::InviteNotYet, "later").opening_at(Some(1800));
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(v["code"], "invite_not_yet");
        assert_eq!(v["opens_at"], 1800);
        assert_eq!(v["fatal"], true);
        assert_eq!(ErrorCode::InviteNotYet.close_code(), 4001);
        assert_eq!(ErrorCode::InviteUsedUp.close_code(), 4001);
    }

    #[test]
    fn welcome_shape() {
        let p = ParticipantView {
            id: ParticipantId::generate(),
            name: "A".into(),
            role: Role::Patient,
            publishing: Publish {
                audio: true,
                video: true,
            },
            audio_muted: false,
            video_off: false,
            held: Publish::default(),
            connection: Connection::Connected,
        };
        let m = ServerMessage::ParticipantJoined {
            participant: p.clone(),
        };
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(v["type"], "participant_joined");
        assert_eq!(v["participant"]["role"], "patient");
        assert_eq!(v["participant"]["connection"], "connected");
        let m = ServerMessage::ParticipantsJoined {
            participants: vec![p.clone(), p],
        };
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(v["type"], "participants_joined");
        assert_eq!(v["participants"][1]["role"], "patient");
    }

    #[test]
    fn a_clinicians_reason_travels_apart_from_the_servers_english() {
        let given = ServerMessage::from_notice(&rooms::Notice::turned_away(
            rooms::Problem::Removed,
            Some("课程到此结束".into()),
            "the care team removed you from the consultation",
        ));
        let v: serde_json::Value = serde_json::from_str(&given.to_json()).unwrap();
        assert_eq!(
            (v["code"].as_str(), v["clinic_reason"].as_str()),
            (Some("removed"), Some("课程到此结束"))
        );
        let none = ServerMessage::from_notice(&rooms::Notice::turned_away(
            rooms::Problem::Declined,
            None,
            "the clinic could not see you in this consultation",
        ));
        let v: serde_json::Value = serde_json::from_str(&none.to_json()).unwrap();
        assert!(
            v.get("clinic_reason").is_none(),
            "no words of the clinician's: none shown"
        );
        assert_eq!(
            v["message"],
            "the clinic could not see you in this consultation"
        );
    }

    /// A refusal's words say what was wrong: the envelope (not JSON, no `type`), or the fields
    /// of a type the server knows, naming it.
    #[test]
    fn a_bad_message_says_whether_the_envelope_or_the_fields_were_wrong() {
        let words = |text: &str| match ClientMessage::parse(text) {
            Err(ParseError::Malformed(w)) => w,
            other => panic!("{text}: {other:?}"),
        };
        assert!(words("[1]").contains("missing `type`"));
        assert!(words("{").starts_with("message is not a JSON object"));
        let w = words(r#"{"type":"admit","participant_id":"x"}"#);
        assert!(w.starts_with("bad fields in a `admit` message"), "{w}");
        assert!(!w.contains("not a JSON object"), "{w}");
    }
}
