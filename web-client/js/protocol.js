// Types for signaling protocol version 1 (docs/protocol.md). This module holds no code: the
// typedefs let tsc check every message the client reads or writes against the document, so a
// protocol change shows up as a type error instead of a silent runtime mismatch.

/** The only protocol version this client speaks. */
export const PROTOCOL_VERSION = 1;

/** @typedef {"doctor" | "specialist" | "patient" | "observer" | "guest"} Role */

/**
 * @typedef {object} Participant
 * @property {string} id
 * @property {string} name
 * @property {Role} role
 * @property {{audio: boolean, video: boolean}} publishing
 * @property {boolean} audio_muted
 * @property {boolean} video_off
 * @property {{audio: boolean, video: boolean}} [held] media the care team stopped forwarding
 * @property {"connected" | "reconnecting"} connection
 */

/**
 * @typedef {object} TrackInfo
 * @property {string} mid
 * @property {string} participant_id
 * @property {"audio" | "video"} kind
 * @property {"microphone" | "camera" | "screen"} source a shared screen gets the stage
 */

/**
 * @typedef {object} Limits
 * @property {number} max_message_bytes
 * @property {number} messages_per_second
 * @property {number} max_participants
 */

/**
 * A document shared in the room (complete and hash-checked).
 * @typedef {object} DocumentInfo
 * @property {string} id
 * @property {string} name
 * @property {"pdf" | "png" | "jpeg" | "dicom" | "ecg" | "text"} kind
 * @property {number} size
 * @property {string} sha256
 * @property {"everyone" | "clinicians"} visibility
 * @property {string} shared_by
 * @property {Role} shared_by_role
 * @property {number} created_at_ms
 */

/**
 * @typedef {object} ChatInfo
 * @property {string} id
 * @property {string} participant_id
 * @property {string} name
 * @property {Role} role
 * @property {string} text
 * @property {number} at_ms
 * @property {boolean} huddle written among the clinicians during a huddle (only they get it)
 */

/**
 * Follow mode: the presenter's place in a document, in page coordinates (0..1).
 * @typedef {object} FollowState
 * @property {string | null} document_id
 * @property {number} page
 * @property {number} zoom
 * @property {[number, number]} center
 * @property {[number, number] | null} pointer
 */

/**
 * @typedef {{type: "arrow", from: [number, number], to: [number, number], color?: string} |
 *   {type: "circle", center: [number, number], radius: number, color?: string} |
 *   {type: "freehand", points: [number, number][], color?: string} |
 *   {type: "text", at: [number, number], text: string, color?: string}} Shape
 */

/**
 * @typedef {object} AnnotationInfo
 * @property {string} id
 * @property {string} document_id
 * @property {number} page
 * @property {Shape} shape
 * @property {string} author
 * @property {Role} author_role
 * @property {number} created_at_ms
 */

/**
 * @typedef {object} RecordEventInfo
 * @property {string} from_status
 * @property {string} to_status
 * @property {string} actor
 * @property {string} actor_role
 * @property {string} note
 * @property {number} at_ms
 */

/**
 * Who signed a record as they issued it: their account, and its name, title and institution as
 * they stood at signing.
 * @typedef {object} RecordSignature
 * @property {string} by account id
 * @property {string} name
 * @property {string} title
 * @property {string} institution
 * @property {number} at_ms
 */

/**
 * A clinical record (docs/protocol.md, "Records").
 * @typedef {object} RecordInfo
 * @property {string} id
 * @property {"note" | "diagnosis_report" | "prescription"} kind
 * @property {string | null} supersedes
 * @property {"draft" | "issued" | "reviewed" | "dispensed" | "rejected"} status
 * @property {Record<string, any>} body
 * @property {string} body_sha256
 * @property {string} author
 * @property {string} author_name
 * @property {string} author_role
 * @property {number} created_at_ms
 * @property {string | null} [subject_name] the patient it is about, under the name they last
 *   joined with (null: about no one patient, or made before patients were told apart)
 * @property {RecordSignature | null} signature reports and prescriptions, once issued
 * @property {RecordEventInfo[]} events
 * @property {string | null} superseded_by
 * @property {boolean} [yours] in answers to this participant's own calls only: whether they
 *   wrote it (here, or through the same care-team seat before a reload)
 */

/** @typedef {"recording" | "observer_present" | "external_sharing"} ConsentPurpose */

/**
 * The words a patient is asked to agree to for a purpose, and their version.
 * @typedef {object} ConsentWording
 * @property {ConsentPurpose} purpose
 * @property {string} version
 * @property {string} zh
 * @property {string} en
 */

/**
 * Where consent stands: what is in force (every patient present agreed), and for patients what
 * they agreed to (`yours`) and what they are asked (`asked`).
 * @typedef {object} ConsentInfo
 * @property {ConsentPurpose[]} in_force
 * @property {ConsentPurpose[]} [yours] patients only
 * @property {ConsentWording[]} [asked] patients only
 */

/**
 * @typedef {object} JoinedBody
 * @property {number} v
 * @property {{id: string, title: string}} room
 * @property {Participant} you
 * @property {Participant[]} participants
 * @property {string} resume_token
 * @property {number} resume_window_s
 * @property {Limits} limits
 * @property {string} access_token bearer token for this participant's HTTP calls in the room
 * @property {DocumentInfo[]} documents
 * @property {string[]} [documents_withheld] ids of documents withheld from you now (the
 *   patient has not agreed to sharing them with your hospital: a consultation request's
 *   attachments, or what the room's own side shared): counted, never named
 * @property {ChatInfo[]} chat
 * @property {(FollowState & {presenter: string}) | null} follow
 * @property {QueueInfo} [waiting_room] the waiting room, for clinicians (who admit); absent for
 *   the others
 * @property {ConsentInfo} consent
 * @property {string | null} [screen_share] who shares their screen, if anyone
 * @property {boolean} [huddle] whether the clinicians confer privately now
 * @property {IceServerInfo[]} ice_servers TURN relays with this participant's short-lived
 *   credentials (empty without TURN)
 */

/**
 * One RTCIceServer, as the server hands it out.
 * @typedef {object} IceServerInfo
 * @property {string[]} urls
 * @property {string} username
 * @property {string} credential
 */

/**
 * A waiting person's pre-call check: camera and microphone working (and, when not, whether
 * there is none or access was refused), how the connection looked (from a signaling ping's
 * round trip, then from the network check over the media path: `media_path` and its figures),
 * and whether they heard the test sound.
 * @typedef {object} PrecallInfo
 * @property {boolean} camera
 * @property {boolean} microphone
 * @property {"good" | "fair" | "poor" | "unknown"} connection
 * @property {number} [rtt_ms]
 * @property {"ok" | "none" | "denied"} [camera_state]
 * @property {"ok" | "none" | "denied"} [microphone_state]
 * @property {"heard" | "not_heard" | "untested"} [speaker]
 * @property {"connected" | "failed"} [media_path] absent: no network check ran
 * @property {number} [media_rtt_ms] round trip on the media path
 * @property {number} [loss_permille] packets lost on the way to the server, per thousand
 * @property {number} [up_kbps] upload bandwidth found, kbit/s
 * @property {number} [up_sent_kbps] without that (Firefox finds none): the rate the check sent
 *   at, kbit/s (a floor of the upload bandwidth)
 * @property {number} [down_kbps] the rate the server's echo arrived at, kbit/s (a floor of the
 *   download bandwidth)
 * @property {number} [down_estimate_kbps] the download bandwidth the server estimated while it
 *   probed the link, kbit/s (not bounded by what went up)
 * @property {number} [down_loss_permille] packets of the echo lost on the way down, per thousand
 * @property {number} [down_jitter_ms] the echo's interarrival jitter
 */

/**
 * Someone in the waiting room, as clinicians see them.
 * @typedef {object} WaiterInfo
 * @property {string} id
 * @property {string} name
 * @property {Role} role
 * @property {number} waiting_since Unix seconds
 * @property {boolean} sent_back a clinician sent them back from the consultation
 * @property {PrecallInfo | null} precall
 */

/**
 * The waiting room as clinicians see it: who waits, longest first (someone sent back at the
 * front), whether the room is locked to new arrivals, and the message shown to those waiting.
 * @typedef {object} QueueInfo
 * @property {WaiterInfo[]} waiting
 * @property {boolean} locked
 * @property {string | null} message
 */

/** @typedef {JoinedBody & {type: "joined"}} JoinedMessage */
/** @typedef {JoinedBody & {type: "resumed"}} ResumedMessage */
/**
 * @typedef {{type: "offer", offer_id: number, sdp: string, tracks: TrackInfo[], screen_mid?: string,
 *   publish_mids?: {audio?: string, video?: string, simulcast?: boolean}}} OfferMessage
 *   `screen_mid`: while we share our screen, the m-line to send it on; `publish_mids`: while we
 *   publish, the m-lines for our microphone and camera, and whether the camera's asks for
 *   simulcast layers
 */
/** @typedef {{type: "participant_joined", participant: Participant}} ParticipantJoinedMessage */
/** @typedef {{type: "participants_joined", participants: Participant[]}} ParticipantsJoinedMessage */
/** @typedef {{type: "participant_updated", participant: Participant}} ParticipantUpdatedMessage */
/**
 * @typedef {{type: "participant_left", participant_id: string,
 *   reason: "left" | "disconnected" | "replaced" | "media_failed" | "removed" | "sent_back" | "removed_by_care_team" |
 *   "session_ended"}} ParticipantLeftMessage
 */
/** @typedef {{type: "room_ended", reason: "ended_by_doctor" | "called_off" | "server_shutdown"}} RoomEndedMessage */
/**
 * @typedef {"bad_message" | "unknown_type" | "unsupported_version" | "message_too_large" |
 *   "rate_limited" | "not_joined" | "already_joined" | "invalid_token" | "token_expired" |
 *   "invite_revoked" | "room_not_found" | "room_ended" | "room_full" | "server_full" |
 *   "forbidden" | "invalid_name" | "resume_failed" | "stale_offer" | "bad_sdp" |
 *   "media_unreachable" | "media_lost" | "internal" | "not_waiting" | "not_present" | "room_locked" | "declined" |
 *   "consent_required" | "invite_not_yet" | "invite_used_up" | "removed" | "screen_share_busy" |
 *   "media_not_ready" | "ice_restart_limited" | "net_check_limited" | "session_ended" |
 *   "wording_changed"} ErrorCode
 */
/**
 * @typedef {{type: "error", code: ErrorCode, message: string, fatal: boolean, clinic_reason?: string}} ErrorMessage
 *   `clinic_reason`: with `declined` and `removed`, the clinician's own words when they gave any
 */
/** @typedef {{type: "pong", id: number}} PongMessage */
/**
 * The pre-call network check's own offer (someone waiting asked with `net_check`): send the
 * microphone and camera on `publish_mids`, measure, then `net_check_stop`. Nothing comes back
 * on it; the server ends it after `seconds`.
 * @typedef {object} NetCheckOfferMessage
 * @property {"net_check_offer"} type
 * @property {number} offer_id
 * @property {string} sdp
 * @property {{audio?: string, video?: string}} publish_mids
 * @property {IceServerInfo[]} ice_servers
 * @property {number} seconds
 */
/** @typedef {{type: "net_check_ended", reason: "done" | "time" | "admitted" | "failed"}} NetCheckEndedMessage */
/**
 * While a network check runs: the download bandwidth the server estimates from this
 * connection's transport feedback as it probes the link, kbit/s (one a second; capped
 * where the server stops probing, so a figure is "at least").
 * @typedef {{type: "net_check_estimate", down_kbps: number}} NetCheckEstimateMessage
 */
/** @typedef {{type: "document_shared", document: DocumentInfo}} DocumentSharedMessage */
/**
 * A document listed before is withheld from you now (the patient does not agree to sharing
 * it with your hospital: a consultation request's attachment, or the room's own): drop it.
 * @typedef {{type: "document_withheld", document_id: string}} DocumentWithheldMessage
 */
/** @typedef {{type: "chat", message: ChatInfo}} ChatMessage */
/** @typedef {FollowState & {type: "follow", presenter: string}} FollowMessage */
/** @typedef {{type: "follow_stopped", presenter: string}} FollowStoppedMessage */
/** @typedef {{type: "annotation_added", annotation: AnnotationInfo}} AnnotationAddedMessage */
/** @typedef {{type: "record_updated", record: RecordInfo}} RecordUpdatedMessage */
/**
 * To someone waiting to be admitted: where they stand. `joined` follows on the same socket once
 * a clinician admits them; until then nothing else of the room reaches them.
 * @typedef {object} WaitingMessage
 * @property {"waiting"} type
 * @property {{id: string, title: string}} room
 * @property {number} position 1 = next
 * @property {number} of how many wait
 * @property {number | null} estimated_wait_s
 * @property {string | null} message the clinic's message to everyone waiting
 * @property {string | null} sent_back why, in English, when they were sent back from the consultation
 * @property {"care_team" | "awaits_consent" | null} [sent_back_why] why, as a code (shown in the page's language)
 * @property {string | null} [clinic_reason] the words of the clinician who sent them back, if any
 * @property {number | null} slot_start the consultation's time (Unix seconds), null when it has
 *   none; sent again when the care team moves it
 * @property {number | null} slot_minutes its length
 */
/** @typedef {QueueInfo & {type: "waiting_room"}} WaitingRoomMessage */
/** @typedef {ConsentInfo & {type: "consent"}} ConsentMessage consent changed */
/** @typedef {{type: "screen_share", sharer: string | null}} ScreenShareMessage who shares a screen now */
/** @typedef {{type: "huddle", active: boolean, by: string | null}} HuddleMessage the clinicians confer privately */
/** @typedef {{type: "held", audio: boolean, video: boolean, by: string}} HeldMessage the care team holds our media */
/** @typedef {{type: "role_changed", role: Role, by: string}} RoleChangedMessage the care team changed our role */
/**
 * What we are sent of one video now: a simulcast layer (`f` also for a video in one layer), or
 * none (`null`: audio only). `reason`: `bandwidth` (our connection holds it there), `hidden` (we
 * show it nowhere), `display` (the best useful at the size we show it).
 * @typedef {{type: "video_quality", mid: string, layer: "q" | "h" | "f" | null, reason: "bandwidth" | "hidden" | "display"}} VideoQualityMessage
 */

/**
 * @typedef {JoinedMessage | ResumedMessage | OfferMessage | ParticipantJoinedMessage |
 *   ParticipantsJoinedMessage | ParticipantUpdatedMessage | ParticipantLeftMessage | RoomEndedMessage | ErrorMessage |
 *   PongMessage | DocumentSharedMessage | DocumentWithheldMessage | ChatMessage | FollowMessage | FollowStoppedMessage |
 *   AnnotationAddedMessage | RecordUpdatedMessage | WaitingMessage | WaitingRoomMessage |
 *   ConsentMessage | ScreenShareMessage | HuddleMessage | HeldMessage | RoleChangedMessage |
 *   VideoQualityMessage | NetCheckOfferMessage | NetCheckEndedMessage | NetCheckEstimateMessage} ServerMessage
 */

/**
 * @typedef {object} JoinMessage
 * @property {"join"} type
 * @property {number} v
 * @property {string} token
 * @property {string} name
 * @property {{audio: boolean, video: boolean, simulcast?: boolean}} publish `simulcast`: we send
 *   our camera in layers and show `video_quality`
 * @property {string} [replaces]
 */
/** @typedef {{type: "resume", v: number, resume_token: string}} ResumeMessage */
/** @typedef {{type: "answer", offer_id: number, sdp: string}} AnswerMessage */
/** @typedef {{type: "media_state", audio_muted: boolean, video_off: boolean}} MediaStateMessage */
/** @typedef {{type: "leave"}} LeaveMessage */
/** @typedef {{type: "ice_restart"}} IceRestartMessage the media path changed or failed */
/** @typedef {{type: "net_check"} | {type: "net_check_stop"}} NetCheckMessage the pre-call network check, while waiting */
/** @typedef {{type: "net_check_answer", offer_id: number, sdp: string}} NetCheckAnswerMessage */
/** @typedef {{type: "end_room"}} EndRoomMessage */
/** @typedef {{type: "ping", id: number}} PingMessage */
/** @typedef {{type: "chat", text: string}} ChatSendMessage */
/** @typedef {FollowState & {type: "follow"}} FollowSendMessage */
/** @typedef {{type: "annotate", document_id: string, page: number, shape: Shape}} AnnotateMessage */
/** @typedef {{type: "admit", participant_id?: string}} AdmitMessage no id: whoever is next */
/** @typedef {{type: "decline", participant_id: string, reason?: string}} DeclineMessage */
/** @typedef {{type: "send_back", participant_id: string, reason?: string}} SendBackMessage */
/** @typedef {{type: "waiting_message", text: string}} WaitingTextMessage empty text clears it */
/** @typedef {{type: "lock", locked: boolean}} LockMessage */
/** @typedef {PrecallInfo & {type: "precall"}} PrecallMessage */
/** @typedef {{type: "consent", purpose: ConsentPurpose, given: boolean, wording_version?: string}} ConsentSendMessage a patient's, with the version of the words shown */
/** @typedef {{type: "screen_share", active: boolean}} ScreenShareSendMessage a clinician starts or stops sharing */
/** @typedef {{type: "huddle", active: boolean}} HuddleSendMessage */
/** @typedef {{type: "hold", participant_id: string, audio: boolean, video: boolean}} HoldMessage */
/** @typedef {{type: "remove", participant_id: string, reason?: string}} RemoveMessage */
/** @typedef {{type: "set_role", participant_id: string, role: "observer" | "guest"}} SetRoleMessage */
/**
 * How big we show the videos we receive, in device pixels (0×0: not shown); at most 64 a message.
 * @typedef {{type: "video_sizes", sizes: {mid: string, width: number, height: number}[]}} VideoSizesMessage
 */

/**
 * @typedef {JoinMessage | ResumeMessage | AnswerMessage | MediaStateMessage | LeaveMessage |
 *   EndRoomMessage | PingMessage | ChatSendMessage | FollowSendMessage | AnnotateMessage |
 *   AdmitMessage | DeclineMessage | SendBackMessage | WaitingTextMessage | LockMessage |
 *   PrecallMessage | ConsentSendMessage | ScreenShareSendMessage | IceRestartMessage |
 *   HuddleSendMessage | HoldMessage | RemoveMessage | SetRoleMessage | VideoSizesMessage |
 *   NetCheckMessage | NetCheckAnswerMessage} ClientMessage
 */

/** Server message types this client understands; anything else is ignored (forward compatible). */
const SERVER_TYPES = new Set([
  "joined",
  "resumed",
  "offer",
  "participant_joined",
  "participants_joined",
  "participant_updated",
  "participant_left",
  "room_ended",
  "error",
  "pong",
  "document_shared",
  "document_withheld",
  "chat",
  "follow",
  "follow_stopped",
  "annotation_added",
  "record_updated",
  "waiting",
  "waiting_room",
  "consent",
  "screen_share",
  "huddle",
  "held",
  "role_changed",
  "video_quality",
  "net_check_offer",
  "net_check_ended",
  "net_check_estimate",
]);

/**
 * Parses one text frame. Returns null for anything that is not a known server message, so a
 * newer server that adds message types does not break an older cached client.
 * @param {string} text
 * @returns {ServerMessage | null}
 */
export function parseServerMessage(text) {
  /** @type {unknown} */
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const type = /** @type {{type?: unknown}} */ (value).type;
  if (typeof type !== "string" || !SERVER_TYPES.has(type)) return null;
  return /** @type {ServerMessage} */ (value);
}
