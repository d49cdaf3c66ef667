// Human text for everything that can stop a participant from being in the room. Server error
// codes are stable (docs/protocol.md); their `message` texts are not and are written for
// developers, so the participant only ever sees the texts below.

/** @typedef {import("./protocol.js").ErrorCode} ErrorCode */

/**
 * Problems the client finds itself (media devices, network) rather than the server.
 * @typedef {"media_denied" | "media_missing" | "media_busy" | "media_failed" | "no_token" |
 *   "connect_failed" | "reconnect_failed" | "replaced" | "unsupported_browser"} LocalErrorCode
 */

/** @type {Record<ErrorCode | LocalErrorCode, string>} */
const TEXT = {
  invalid_token:
    "This invitation link is not valid. Check that you opened the complete link, or ask the clinic for a new one.",
  token_expired: "This invitation link has expired. Ask the clinic to send you a new one.",
  invite_revoked: "This invitation link has been withdrawn. Ask the clinic for a new one.",
  room_not_found: "This consultation could not be found. The invitation link may be out of date.",
  room_ended: "The consultation has ended.",
  room_full: "The consultation room is full. Ask the clinic for help.",
  server_full: "The consultation service is busy right now. Please try again in a few minutes.",
  invalid_name: "Please enter a display name of 1 to 64 characters.",
  resume_failed: "The connection was lost for too long. Reload the page to join again.",
  unsupported_version: "This page is out of date. Reload it to join.",
  forbidden: "Your role in this consultation does not allow that.",
  rate_limited: "The connection was closed because too many messages were sent. Reload the page to join again.",
  message_too_large: "The connection was closed because of a protocol problem. Reload the page to join again.",
  bad_message: "The connection was closed because of a protocol problem. Reload the page to join again.",
  unknown_type: "The connection was closed because of a protocol problem. Reload the page to join again.",
  not_joined: "The connection was closed because of a protocol problem. Reload the page to join again.",
  already_joined: "This page is already in the consultation.",
  stale_offer: "The media connection fell out of step.",
  bad_sdp: "The media connection could not be set up with this browser.",
  internal: "The consultation server had a problem. Reload the page to try again.",
  not_waiting: "Already admitted by someone else, or no longer waiting.",
  room_locked:
    "The consultation is not letting anyone new in right now. If you have an appointment, please contact the clinic, or try again in a few minutes.",
  declined: "The care team cannot see you in this consultation. Please contact the clinic if you need help.",
  consent_required: "The patient has not yet agreed to observers being present. Try again later.",
  invite_not_yet:
    "This invitation is not open yet. Please come back shortly before your appointment time.",
  invite_used_up: "This invitation has already been used. Ask the clinic for a new one.",
  removed: "The care team has ended your part in this consultation. Please contact the clinic if you need help.",
  media_unreachable:
    "Video and sound could not connect to the consultation server. The network you are on may block it: try another network (for example mobile data), or ask your IT department to allow UDP traffic to the server.",
  media_lost: "The video connection was lost. Reload the page to join again.",
  media_denied:
    "Camera and microphone access was blocked. Allow access for this site in your browser settings, then reload the page.",
  media_missing: "No camera or microphone was found. Connect one and reload the page.",
  media_busy: "Your camera or microphone is in use by another application. Close it and reload the page.",
  media_failed: "Your camera or microphone could not be started. Reload the page to try again.",
  no_token: "This page needs an invitation link. Open the complete link you were sent.",
  connect_failed: "Could not reach the consultation server. Check your internet connection and reload the page.",
  reconnect_failed: "The connection was lost and could not be restored. Reload the page to join again.",
  replaced: "You joined this consultation from another tab or device, so this page was disconnected.",
  unsupported_browser: "This browser cannot make video calls. Please use a current version of Chrome, Edge, Firefox or Safari.",
};

/**
 * For a clinician entering through their care-team seat (from the console) rather than an
 * invitation link: where the text above speaks of the link.
 * @type {Partial<Record<ErrorCode | LocalErrorCode, string>>}
 */
const SEAT_TEXT = {
  invalid_token:
    "This entry is not valid, or your sign-in has ended. Sign in to the console and enter the consultation from there.",
  token_expired: "This entry has expired. Enter the consultation again from the console.",
  invite_revoked: "You are no longer on this consultation's care team.",
  room_not_found: "This consultation could not be found.",
  no_token: "Enter the consultation from the console.",
};

/**
 * Headings for the final screens that are not a fault of the link or the network.
 * @type {Partial<Record<ErrorCode | LocalErrorCode, string>>}
 */
const TITLE = {
  declined: "You were not admitted",
  room_locked: "The consultation is closed to new arrivals",
  consent_required: "Waiting for the patient's consent",
};

/**
 * @param {string} code a server ErrorCode or a LocalErrorCode
 * @returns {string | null} a heading of its own for the error screen, or null for the usual one
 */
export function describeTitle(code) {
  return (Object.hasOwn(TITLE, code) ? TITLE[/** @type {ErrorCode | LocalErrorCode} */ (code)] : undefined) ?? null;
}

/**
 * @param {string} code a server ErrorCode or a LocalErrorCode
 * @returns {string} the text for a clinician who entered through their care-team seat
 */
export function describeSeatError(code) {
  const text = Object.hasOwn(SEAT_TEXT, code) ? SEAT_TEXT[/** @type {ErrorCode | LocalErrorCode} */ (code)] : undefined;
  return text ?? describeError(code);
}

/**
 * @param {string} code a server ErrorCode or a LocalErrorCode; unknown codes get a generic text
 * @returns {string}
 */
export function describeError(code) {
  return Object.hasOwn(TEXT, code)
    ? TEXT[/** @type {ErrorCode | LocalErrorCode} */ (code)]
    : "Something went wrong. Reload the page to try again.";
}

/**
 * Maps a getUserMedia failure to a LocalErrorCode.
 * @param {unknown} err
 * @returns {LocalErrorCode}
 */
export function mediaErrorCode(err) {
  const name = err instanceof DOMException ? err.name : "";
  switch (name) {
    case "NotAllowedError":
    case "SecurityError":
      return "media_denied";
    case "NotFoundError":
    case "OverconstrainedError":
      return "media_missing";
    case "NotReadableError":
    case "AbortError":
      return "media_busy";
    default:
      return "media_failed";
  }
}
