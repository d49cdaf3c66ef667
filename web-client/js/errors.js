// Human text for everything that can stop a participant from being in the room, and for every
// refusal of the HTTP API. Server error codes are stable (docs/protocol.md, docs/openapi.json);
// their `message` texts are English and written for developers, so people only ever see the
// catalogue's `error.<code>` texts (i18n.js), in their language.

import { clearText, hasKey, t, tr } from "./i18n.js";

/** @typedef {import("./i18n.js").MessageKey} MessageKey */

/** @typedef {import("./protocol.js").ErrorCode} ErrorCode */

/**
 * Problems the client finds itself (media devices, network) rather than the server.
 * @typedef {"media_denied" | "media_missing" | "media_busy" | "media_failed" | "no_token" |
 *   "connect_failed" | "reconnect_failed" | "replaced" | "unsupported_browser"} LocalErrorCode
 */

/**
 * The catalogue key of a code's text: `error.<code>`, or the generic one for a code this
 * client does not know (a newer server).
 * @param {string} code a server ErrorCode, an HTTP API error code or a LocalErrorCode
 * @returns {MessageKey}
 */
export function errorKey(code) {
  const key = /** @type {MessageKey} */ (`error.${code}`);
  return hasKey(key) ? key : "error.unknown";
}

/**
 * The catalogue key of an HTTP API refusal: a `limit_reached` says which limit where the
 * catalogue has words for it (`error.limit.<limit>`), anything else as [errorKey].
 * @param {{code: string, limit?: string | null}} err
 * @returns {MessageKey}
 */
export function apiErrorKey(err) {
  const which = /** @type {MessageKey} */ (`error.limit.${err.limit}`);
  if (err.code === "limit_reached" && err.limit && hasKey(which)) return which;
  return errorKey(err.code);
}

/**
 * @param {string} code
 * @returns {MessageKey | null} a heading of its own for the error screen, or null for the usual one
 */
export function errorTitleKey(code) {
  const key = /** @type {MessageKey} */ (`error.title.${code}`);
  return hasKey(key) ? key : null;
}

/**
 * @param {string} code
 * @returns {MessageKey} the text for a clinician who entered through their care-team seat
 */
export function seatErrorKey(code) {
  const key = /** @type {MessageKey} */ (`error.seat.${code}`);
  return hasKey(key) ? key : errorKey(code);
}

/**
 * @param {string} code a server ErrorCode or a LocalErrorCode; unknown codes get a generic text
 * @returns {string} its text in the page's language
 */
export function describeError(code) {
  return t(errorKey(code));
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

/**
 * The stable code of a failure (an ApiError's, from the server or `network`), "" for anything
 * else (a bug, a browser refusal).
 * @param {unknown} err
 * @returns {string}
 */
export function errorCodeOf(err) {
  return err instanceof Error && "code" in err && typeof err.code === "string" ? err.code : "";
}

/**
 * The catalogue key for a failure: its code's text, or the generic one.
 * @param {unknown} err
 * @returns {MessageKey}
 */
export function errorKeyOf(err) {
  const code = errorCodeOf(err);
  return code ? errorKey(code) : "error.unknown";
}

/**
 * Shows a form's error line in the page's language, or hides it (`key` null). Its `data-code`
 * carries the server's error code or the client's own check (what tests read).
 * @param {HTMLElement} line
 * @param {MessageKey | null} key
 * @param {string} [code]
 * @param {import("./i18n.js").Params} [params]
 */
export function showFormError(line, key, code = "", params = {}) {
  if (key) tr(line, key, params);
  else clearText(line);
  line.hidden = key === null;
  if (code) line.dataset.code = code;
  else delete line.dataset.code;
}
