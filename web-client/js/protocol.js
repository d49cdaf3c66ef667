// Types for signaling protocol version 1 (docs/protocol.md). This module holds no code: the
// typedefs let tsc check every message the client reads or writes against the document, so a
// protocol change shows up as a type error instead of a silent runtime mismatch.

/** The only protocol version this client speaks. */
export const PROTOCOL_VERSION = 1;

/** @typedef {"doctor" | "specialist" | "patient" | "observer"} Role */

/**
 * @typedef {object} Participant
 * @property {string} id
 * @property {string} name
 * @property {Role} role
 * @property {{audio: boolean, video: boolean}} publishing
 * @property {boolean} audio_muted
 * @property {boolean} video_off
 * @property {"connected" | "reconnecting"} connection
 */

/**
 * @typedef {object} TrackInfo
 * @property {string} mid
 * @property {string} participant_id
 * @property {"audio" | "video"} kind
 */

/**
 * @typedef {object} Limits
 * @property {number} max_message_bytes
 * @property {number} messages_per_second
 * @property {number} max_participants
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
 */

/** @typedef {JoinedBody & {type: "joined"}} JoinedMessage */
/** @typedef {JoinedBody & {type: "resumed"}} ResumedMessage */
/** @typedef {{type: "offer", offer_id: number, sdp: string, tracks: TrackInfo[]}} OfferMessage */
/** @typedef {{type: "participant_joined", participant: Participant}} ParticipantJoinedMessage */
/** @typedef {{type: "participant_updated", participant: Participant}} ParticipantUpdatedMessage */
/**
 * @typedef {{type: "participant_left", participant_id: string,
 *   reason: "left" | "disconnected" | "replaced" | "media_failed"}} ParticipantLeftMessage
 */
/** @typedef {{type: "room_ended", reason: "ended_by_doctor" | "server_shutdown"}} RoomEndedMessage */
/**
 * @typedef {"bad_message" | "unknown_type" | "unsupported_version" | "message_too_large" |
 *   "rate_limited" | "not_joined" | "already_joined" | "invalid_token" | "token_expired" |
 *   "invite_revoked" | "room_not_found" | "room_ended" | "room_full" | "server_full" |
 *   "forbidden" | "invalid_name" | "resume_failed" | "stale_offer" | "bad_sdp" |
 *   "media_unreachable" | "media_lost" | "internal"}
 *   ErrorCode
 */
/** @typedef {{type: "error", code: ErrorCode, message: string, fatal: boolean}} ErrorMessage */
/** @typedef {{type: "pong", id: number}} PongMessage */

/**
 * @typedef {JoinedMessage | ResumedMessage | OfferMessage | ParticipantJoinedMessage |
 *   ParticipantUpdatedMessage | ParticipantLeftMessage | RoomEndedMessage | ErrorMessage |
 *   PongMessage} ServerMessage
 */

/**
 * @typedef {object} JoinMessage
 * @property {"join"} type
 * @property {number} v
 * @property {string} token
 * @property {string} name
 * @property {{audio: boolean, video: boolean}} publish
 * @property {string} [replaces]
 */
/** @typedef {{type: "resume", v: number, resume_token: string}} ResumeMessage */
/** @typedef {{type: "answer", offer_id: number, sdp: string}} AnswerMessage */
/** @typedef {{type: "media_state", audio_muted: boolean, video_off: boolean}} MediaStateMessage */
/** @typedef {{type: "leave"}} LeaveMessage */
/** @typedef {{type: "end_room"}} EndRoomMessage */
/** @typedef {{type: "ping", id: number}} PingMessage */

/**
 * @typedef {JoinMessage | ResumeMessage | AnswerMessage | MediaStateMessage | LeaveMessage |
 *   EndRoomMessage | PingMessage} ClientMessage
 */

/** Server message types this client understands; anything else is ignored (forward compatible). */
const SERVER_TYPES = new Set([
  "joined",
  "resumed",
  "offer",
  "participant_joined",
  "participant_updated",
  "participant_left",
  "room_ended",
  "error",
  "pong",
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
