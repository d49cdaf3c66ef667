// Client for the clinician HTTP API (docs/protocol.md, "HTTP API"). Holds the session token in
// sessionStorage: it survives a reload of the console but not closing the tab, which suits
// shared clinic workstations. The token is a bearer secret and is never logged. The server ends
// a session that is not renewed within its idle window, and every session after its absolute
// lifetime; `renew` trades the token for a fresh one, `logout` ends the session on the server.

import { saveObjectUrl } from "./dom.js";

const SESSION_KEY = "huizhen.console.session";
const DEADLINE_KEY = "huizhen.console.session-deadline";

/** @typedef {"doctor" | "specialist" | "admin" | "institution_admin" | "pharmacist" | "supervisor" | "network_supervisor"} AccountRole */

/**
 * The short view of an account, as sign-in answers it.
 * @typedef {object} User
 * @property {string} id
 * @property {string} username
 * @property {string} display_name
 * @property {AccountRole} role
 */

/**
 * An account with its place in the network and its profile (`/me`; the directory and the care
 * team show it without `username`).
 * @typedef {object} Account
 * @property {string} id
 * @property {string} [username]
 * @property {string} display_name
 * @property {AccountRole} role
 * @property {string} title
 * @property {string} specialty
 * @property {{id: string, name: string}} institution
 * @property {{id: string, name: string} | null} department
 * @property {boolean} accepts_referrals
 * @property {boolean} [signing_pin] `/me` only: whether the account has a signing PIN
 * @property {boolean} [disabled] disabled by an administrator (administrators' lists)
 */

/**
 * A consultation as the signed-in clinician sees it, with their place in it.
 * @typedef {object} Room
 * @property {string} id
 * @property {string} title
 * @property {string | null} patient_ref
 * @property {number} created_at Unix seconds
 * @property {string} status
 * @property {"doctor" | "specialist" | null} my_role their role on its care team, null when not on it
 * @property {boolean} manages they may issue invite links, manage the care team and end it
 * @property {boolean} waiting_room those with an invitation link wait until a clinician admits them
 * @property {number | null} [slot_start] when it takes place (booked ahead, or a scheduled referral's agreed time), Unix seconds
 * @property {number | null} [slot_minutes] its length
 * @property {number} [waiting] how many wait in its waiting room now
 * @property {number | null} [waiting_since] when the one who has waited longest arrived, Unix seconds
 * @property {boolean} [from_referral] a consultation request opened it: its time moves on the request
 */

/**
 * @typedef {object} CareTeamMember
 * @property {Account} account
 * @property {"doctor" | "specialist"} role
 * @property {number} added_at Unix seconds
 * @property {string} added_by
 */

/**
 * A care-team seat's entry token: used at /join#<token> like an invite token, but the name shown
 * in the room comes from the account.
 * @typedef {object} Entry
 * @property {string} token
 * @property {"doctor" | "specialist"} role
 * @property {number} expires_at Unix seconds
 */

/**
 * @typedef {object} Invite
 * @property {string} invite_id
 * @property {import("./protocol.js").Role} role
 * @property {import("./protocol.js").Role | null} [role_now] the role the care team last gave its holder
 * @property {string | null} [label] who it is for ("guardian", "interpreter")
 * @property {InviteState} [state] absent in the answer to a creation (then `active` or `not_yet`)
 * @property {number} [created_at] Unix seconds
 * @property {number | null} [not_before] Unix seconds; null: from its creation
 * @property {number} expires_at Unix seconds
 * @property {number | null} [max_uses] null: unlimited
 * @property {number} [uses] counted uses
 * @property {InviteUse[]} [used_by] every join it let in, oldest first
 * @property {number | null} [revoked_at] Unix seconds
 * @property {boolean} [has_code]
 * @property {string} [code] the short code: only in the answer that made it, shown once
 * @property {string} [token] only while it can still be used
 * @property {string} [url] likewise
 */

/** @typedef {"active" | "not_yet" | "used_up" | "expired" | "revoked"} InviteState */

/**
 * One join an invitation let in.
 * @typedef {object} InviteUse
 * @property {string} participant_id
 * @property {string} name
 * @property {string} role
 * @property {number} at Unix seconds
 * @property {boolean} reload a reload that was not a new use
 */

/** An API call that failed; `code` is the server's stable error code (or a local one). */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the request never got an answer
   * @param {string} code
   * @param {string} message
   * @param {number | null} [triesLeft] `wrong_pin`: the tries left before the signing PIN is erased
   * @param {string | null} [limit] `limit_reached`: which limit was reached (the body's `limit`)
   */
  constructor(status, code, message, triesLeft = null, limit = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.triesLeft = triesLeft;
    this.limit = limit;
  }
}

/**
 * When the current token ends, on this browser's clock (the server answers durations, so a
 * wrong clock does not matter).
 * @typedef {object} SessionDeadline
 * @property {number} issued ms (Date.now()) when the token was received
 * @property {number} expires ms when the token ends unless renewed
 * @property {boolean} last the token ends with the session itself: renewing cannot extend it
 */

/**
 * The answer to sign-in and renewal.
 * @typedef {object} Issued
 * @property {string} token
 * @property {number} expires_in seconds until the token ends unless renewed
 * @property {number} session_expires_in seconds until the session ends whatever happens
 */

/** @returns {string | null} */
export function sessionToken() {
  return sessionStorage.getItem(SESSION_KEY);
}

/** @returns {SessionDeadline | null} */
export function sessionDeadline() {
  try {
    const d = JSON.parse(sessionStorage.getItem(DEADLINE_KEY) ?? "null");
    if (typeof d?.issued === "number" && typeof d?.expires === "number") {
      return { issued: d.issued, expires: d.expires, last: d.last === true };
    }
  } catch {
    // Unreadable: treated as unknown.
  }
  return null;
}

/** @param {Issued} answer */
function keepSession(answer) {
  const now = Date.now();
  /** @type {SessionDeadline} */
  const deadline = {
    issued: now,
    expires: now + answer.expires_in * 1000,
    last: answer.expires_in >= answer.session_expires_in,
  };
  sessionStorage.setItem(SESSION_KEY, answer.token);
  sessionStorage.setItem(DEADLINE_KEY, JSON.stringify(deadline));
}

/** Forgets the session in this tab (the server is told by `logout`). */
export function forgetSession() {
  sessionStorage.removeItem(SESSION_KEY);
  sessionStorage.removeItem(DEADLINE_KEY);
}

/**
 * The renewal in flight, if any: a request answered 401 meanwhile may have crossed it.
 * @type {Promise<void> | null}
 */
let renewing = null;

/**
 * One authenticated API call (other API modules, admin-api.js and referral-api.js, build on it).
 * @param {"GET" | "POST" | "PUT" | "PATCH" | "DELETE"} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<unknown>} the parsed JSON answer, or null for 204
 */
export async function call(method, path, body) {
  const token = sessionToken();
  try {
    return await send(method, path, body, token);
  } catch (err) {
    // A request sent with a token that a renewal replaced meanwhile: once more with the new one.
    if (!(err instanceof ApiError) || err.status !== 401 || !token) throw err;
    if (renewing) await renewing.catch(() => {});
    const current = sessionToken();
    if (!current || current === token) throw err;
    return send(method, path, body, current);
  }
}

/**
 * @param {"GET" | "POST" | "PUT" | "PATCH" | "DELETE"} method
 * @param {string} path
 * @param {unknown} body
 * @param {string | null} token
 * @returns {Promise<unknown>}
 */
async function send(method, path, body, token) {
  /** @type {Record<string, string>} */
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  /** @type {Response} */
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network", "The server could not be reached.");
  }
  if (res.status === 204) return null;
  /** @type {unknown} */
  let json = null;
  try {
    json = await res.json();
  } catch {
    // Not JSON (e.g. a proxy error page): fall through to the status-based error below.
  }
  if (!res.ok) {
    const err = /** @type {{error?: {code?: unknown, message?: unknown, limit?: unknown}} | null} */ (json)?.error;
    throw new ApiError(
      res.status,
      typeof err?.code === "string" ? err.code : `http_${res.status}`,
      typeof err?.message === "string" ? err.message : `Request failed (${res.status}).`,
      null,
      typeof err?.limit === "string" ? err.limit : null,
    );
  }
  return json;
}

/**
 * Signs in and keeps the session token.
 * @param {string} username
 * @param {string} password
 * @returns {Promise<User>}
 */
export async function login(username, password) {
  const answer = /** @type {Issued & {user: User}} */ (
    await call("POST", "/api/v1/auth/login", { username, password })
  );
  keepSession(answer);
  return answer.user;
}

/**
 * Trades the session token for a fresh one (the old one stops working). One at a time: a
 * second call while one is in flight shares it.
 * @returns {Promise<void>}
 */
export function renew() {
  if (!renewing) {
    renewing = (async () => {
      try {
        keepSession(/** @type {Issued} */ (await send("POST", "/api/v1/auth/renew", undefined, sessionToken())));
      } finally {
        renewing = null;
      }
    })();
  }
  return renewing;
}

/**
 * Signs out on the server, then forgets the token whatever the answer (a session the server
 * already ended, or a server out of reach, must not keep the console signed in).
 * @returns {Promise<void>}
 */
export async function logout() {
  // A renewal that finished after this would keep a fresh token: let it land, then end it.
  if (renewing) await renewing.catch(() => {});
  const token = sessionToken();
  try {
    if (token) await send("POST", "/api/v1/auth/logout", undefined, token);
  } catch {
    // Forgotten below all the same.
  } finally {
    forgetSession();
  }
}

/** @returns {Promise<Account>} the signed-in account, with its institution and profile */
export async function me() {
  return /** @type {Account} */ (await call("GET", "/api/v1/me"));
}

/**
 * A doctor or specialist begins or stops taking referrals (the directory shows it).
 * @param {boolean} accepting
 */
export async function setAvailability(accepting) {
  await call("PUT", "/api/v1/me/availability", { accepts_referrals: accepting });
}

/**
 * Changes the signed-in clinician's password. The server checks the current one (under the
 * sign-in throttle) and ends the account's other sessions; this one goes on.
 * @param {string} current
 * @param {string} next
 * @returns {Promise<{sessions_revoked: number}>}
 */
export async function changePassword(current, next) {
  return /** @type {{sessions_revoked: number}} */ (await call("POST", "/api/v1/auth/password", { current_password: current, new_password: next }));
}

/** What can be a signing PIN: 6 to 12 digits (the server's `auth::looks_like_pin`; it also
 * refuses the easy ones when a PIN is set). */
export const PIN_SHAPE = /^[0-9]{6,12}$/;

/**
 * Sets (or replaces) the caller's signing PIN, confirmed with their password (403
 * `wrong_password`; 400 `pin_rule` or `weak_pin` for a PIN the rules refuse).
 * @param {string} password
 * @param {string} pin
 */
export async function setSigningPin(password, pin) {
  await call("PUT", "/api/v1/me/signing-pin", { password, pin });
}

/** Erases the caller's signing PIN: they sign with their password again. */
export async function clearSigningPin() {
  await call("DELETE", "/api/v1/me/signing-pin");
}

/**
 * Searches the directory of doctors and specialists.
 * @param {{name?: string, specialty?: string, accepting?: boolean, institution?: string, department?: string}} query every filter given must match
 * @returns {Promise<Account[]>}
 */
export async function directory(query) {
  const params = new URLSearchParams();
  if (query.name) params.set("name", query.name);
  if (query.specialty) params.set("specialty", query.specialty);
  if (query.accepting) params.set("accepting", "true");
  if (query.institution) params.set("institution", query.institution);
  if (query.department) params.set("department", query.department);
  const q = params.toString();
  return /** @type {{clinicians: Account[]}} */ (await call("GET", `/api/v1/directory${q ? `?${q}` : ""}`)).clinicians;
}

/**
 * The consultations the clinician sees: open ones first, each part newest first (at most 200);
 * with `booked`, only those booked in `[from, to)` (Unix seconds), in order of time, however
 * many others there are.
 * @param {{from: number, to: number} | null} [booked]
 * @returns {Promise<Room[]>}
 */
export async function listRooms(booked = null) {
  const query = booked ? `?${new URLSearchParams({ booked_from: String(booked.from), booked_to: String(booked.to) })}` : "";
  return /** @type {{rooms: Room[]}} */ (await call("GET", `/api/v1/rooms${query}`)).rooms;
}

/**
 * A draft left to sign in one of the clinician's live consultations.
 * @typedef {object} PendingDraft
 * @property {string} record_id
 * @property {string} room_id
 * @property {string} room_title
 * @property {"note" | "diagnosis_report" | "prescription"} kind
 * @property {string} author_name
 * @property {number} created_at_ms
 */

/** @returns {Promise<PendingDraft[]>} oldest first (doctors and specialists) */
export async function pendingDrafts() {
  return /** @type {{drafts: PendingDraft[]}} */ (await call("GET", "/api/v1/me/drafts")).drafts;
}

/**
 * A care-team clinician's attendance in a consultation.
 * @typedef {object} ClinicianAttendance
 * @property {string} user_id
 * @property {string} display_name
 * @property {string} title
 * @property {{id: string, name: string}} institution
 * @property {string} role
 * @property {number | null} arrived_at Unix seconds of their first entry, null: not yet
 * @property {boolean} present in the room now
 */

/**
 * One person in a consultation's waiting room, as its care team reads them.
 * @typedef {object} WaitingPerson
 * @property {string} name the name they gave at the door
 * @property {string} role
 * @property {number} since Unix seconds
 * @property {boolean} sent_back
 */

/**
 * Who has come to a consultation (`GET /api/v1/rooms/{id}/attendance`): each care-team
 * clinician, and the patient's side. It may trail the room by a moment (the server writes joins
 * in batches).
 * @typedef {object} Attendance
 * @property {string} room_id
 * @property {number | null} slot_start Unix seconds
 * @property {number | null} slot_minutes
 * @property {boolean} ended
 * @property {ClinicianAttendance[]} clinicians
 * @property {{arrived_at: number | null, present: number, waiting: number, waiting_since: number | null}} patients
 *   when the first patient arrived (Unix seconds, null: none yet), how many are in, how many wait
 *   and since when
 * @property {WaitingPerson[]} waiting_people who waits, in queue order (empty unless the reader
 *   is on the care team)
 */

/**
 * @param {string} roomId
 * @returns {Promise<Attendance>}
 */
export async function roomAttendance(roomId) {
  return /** @type {Attendance} */ (await call("GET", `/api/v1/rooms/${encodeURIComponent(roomId)}/attendance`));
}

/**
 * @param {string} title
 * @param {string} [patientRef]
 * @param {boolean} [waitingRoom] those with an invitation link wait until admitted (the
 *   server's default: yes)
 * @param {{start: number, minutes: number}} [slot] when it takes place, when booked ahead
 *   (Unix seconds): 400 `slot_in_past`, `slot_too_far` or `bad_duration` otherwise
 * @returns {Promise<Room>}
 */
export async function createRoom(title, patientRef, waitingRoom = true, slot) {
  /** @type {{title: string, patient_ref?: string, waiting_room: boolean, slot?: {start: number, minutes: number}}} */
  const body = { title, waiting_room: waitingRoom };
  if (patientRef) body.patient_ref = patientRef;
  if (slot) body.slot = slot;
  return /** @type {Room} */ (await call("POST", "/api/v1/rooms", body));
}

/**
 * @param {string} roomId
 * @param {import("./protocol.js").Role} role
 * @param {number} [expiresInMinutes]
 * @returns {Promise<Invite>}
 */
export async function createInvite(roomId, role, expiresInMinutes) {
  /** @type {{role: string, expires_in_minutes?: number}} */
  const body = { role };
  if (expiresInMinutes !== undefined) body.expires_in_minutes = expiresInMinutes;
  return /** @type {Invite} */ (
    await call("POST", `/api/v1/rooms/${encodeURIComponent(roomId)}/invites`, body)
  );
}

/**
 * Every invitation of a room, newest first, with a fresh token for each one still usable.
 * @param {string} roomId
 * @returns {Promise<Invite[]>}
 */
export async function listInvites(roomId) {
  return /** @type {{invites: Invite[]}} */ (await call("GET", `/api/v1/rooms/${encodeURIComponent(roomId)}/invites`)).invites;
}

/**
 * A new short code for an invitation; the old one stops working at once.
 * @param {string} roomId
 * @param {string} inviteId
 * @returns {Promise<string>}
 */
export async function newInviteCode(roomId, inviteId) {
  const path = `/api/v1/rooms/${encodeURIComponent(roomId)}/invites/${encodeURIComponent(inviteId)}/code`;
  return /** @type {{code: string}} */ (await call("POST", path)).code;
}

/**
 * The QR code of an invitation's link, as an object URL for an <img> (the route needs the
 * session, which an <img src> cannot send). The caller revokes it.
 * @param {string} roomId
 * @param {string} inviteId
 * @returns {Promise<string>}
 */
export async function inviteQrUrl(roomId, inviteId) {
  const res = await fetchWithSession(`/api/v1/rooms/${encodeURIComponent(roomId)}/invites/${encodeURIComponent(inviteId)}/qr.svg`);
  return URL.createObjectURL(await res.blob());
}

/**
 * Saves an invitation's printable page (A4, both languages, QR code, and the code when given).
 * It is saved rather than opened: a page opened from this one would inherit the console's
 * Content-Security-Policy, which blocks the printable page's own stylesheet.
 * @param {string} roomId
 * @param {string} inviteId
 * @param {string | undefined} code the code this tab holds
 * @param {string} name the file's name
 */
export async function downloadInvitePrint(roomId, inviteId, code, name) {
  const offset = -new Date().getTimezoneOffset();
  const path = `/api/v1/rooms/${encodeURIComponent(roomId)}/invites/${encodeURIComponent(inviteId)}/print?utc_offset_minutes=${offset}`;
  const res = await fetchWithSession(path, code ? { "X-Invitation-Code": code } : {});
  saveObjectUrl(URL.createObjectURL(await res.blob()), name);
}

/**
 * GET with the session for a file; a refusal becomes an ApiError with the server's code.
 * @param {string} path
 * @param {Record<string, string>} [extra] more headers
 * @returns {Promise<Response>}
 */
export async function fetchWithSession(path, extra = {}) {
  /** @type {Response} */
  let res;
  try {
    res = await fetch(path, { headers: { Authorization: `Bearer ${sessionToken() ?? ""}`, ...extra }, cache: "no-store" });
  } catch {
    throw new ApiError(0, "network", "The server could not be reached.");
  }
  if (res.ok) return res;
  /** @type {any} */
  let body = null;
  try {
    body = await res.json();
  } catch {
    // Not JSON: the status says enough.
  }
  const code = typeof body?.error?.code === "string" ? body.error.code : `http_${res.status}`;
  throw new ApiError(res.status, code, typeof body?.error?.message === "string" ? body.error.message : `Request failed (${res.status}).`);
}

/**
 * POSTs a file, whole, as the request's body with the session (a consultation request's
 * attachment); a refusal becomes an ApiError with the server's code.
 * @param {string} path
 * @param {Blob} file
 * @returns {Promise<unknown>} the parsed JSON answer
 */
export async function postFile(path, file) {
  /** @type {Response} */
  let res;
  try {
    res = await fetch(path, {
      method: "POST",
      headers: { Authorization: `Bearer ${sessionToken() ?? ""}`, Accept: "application/json", "Content-Type": "application/octet-stream" },
      body: file,
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network", "The server could not be reached.");
  }
  /** @type {any} */
  let body = null;
  try {
    body = await res.json();
  } catch {
    // Not JSON: the status says enough.
  }
  if (res.ok) return body;
  const code = typeof body?.error?.code === "string" ? body.error.code : `http_${res.status}`;
  throw new ApiError(res.status, code, typeof body?.error?.message === "string" ? body.error.message : `Request failed (${res.status}).`);
}

/**
 * Enters a consultation as the signed-in account, through its seat on the care team.
 * @param {string} roomId
 * @returns {Promise<Entry>}
 */
export async function enterRoom(roomId) {
  return /** @type {Entry} */ (await call("POST", `/api/v1/rooms/${encodeURIComponent(roomId)}/enter`));
}

/**
 * The clinic's message to everyone waiting in a live consultation (empty clears it), from the
 * console: the care team's, without entering.
 * @param {string} roomId
 * @param {string} text
 */
export async function setWaitingMessage(roomId, text) {
  await call("PUT", `/api/v1/rooms/${encodeURIComponent(roomId)}/waiting-message`, { text });
}

/**
 * A live consultation of a department's queue.
 * @typedef {object} QueueRoom
 * @property {string} room_id
 * @property {string} title
 * @property {number | null} slot_start
 * @property {number | null} slot_minutes
 * @property {number} waiting
 * @property {number | null} waiting_since Unix seconds
 * @property {boolean} on_care_team
 */

/**
 * The live consultations asked of the caller's department, those where someone waits first.
 * @param {string} departmentId
 * @returns {Promise<QueueRoom[]>}
 */
export async function departmentQueue(departmentId) {
  return /** @type {{rooms: QueueRoom[]}} */ (
    await call("GET", `/api/v1/departments/${encodeURIComponent(departmentId)}/queue`)
  ).rooms;
}

/**
 * Admits the patient who has waited longest in the department's consultations (each patient
 * once, however many clinicians ask at the same time): the caller joins that consultation's
 * care team and gets their seat's entry token.
 * @param {string} departmentId
 * @returns {Promise<Entry & {room_id: string}>}
 */
export async function takeNextPatient(departmentId) {
  return /** @type {Entry & {room_id: string}} */ (
    await call("POST", `/api/v1/departments/${encodeURIComponent(departmentId)}/queue/next`)
  );
}

/**
 * @param {string} roomId
 * @returns {Promise<CareTeamMember[]>}
 */
export async function careTeam(roomId) {
  return /** @type {{care_team: CareTeamMember[]}} */ (
    await call("GET", `/api/v1/rooms/${encodeURIComponent(roomId)}/care-team`)
  ).care_team;
}

/**
 * Adds a doctor or specialist to a consultation's care team (in their account's own role).
 * @param {string} roomId
 * @param {string} userId
 */
export async function addToCareTeam(roomId, userId) {
  await call("POST", `/api/v1/rooms/${encodeURIComponent(roomId)}/care-team`, { user_id: userId });
}

/**
 * Takes a clinician off the care team; if they are in the live room, they leave it.
 * @param {string} roomId
 * @param {string} userId
 */
export async function removeFromCareTeam(roomId, userId) {
  await call(
    "DELETE",
    `/api/v1/rooms/${encodeURIComponent(roomId)}/care-team/${encodeURIComponent(userId)}`,
  );
}

/**
 * @param {string} roomId
 * @param {string} inviteId
 */
export async function revokeInvite(roomId, inviteId) {
  await call(
    "DELETE",
    `/api/v1/rooms/${encodeURIComponent(roomId)}/invites/${encodeURIComponent(inviteId)}`,
  );
}

/**
 * Moves a consultation to another time; its patients' links made for the old time move with it.
 * @param {string} roomId
 * @param {{start: number, minutes: number}} slot
 * @returns {Promise<Room>}
 */
export async function rescheduleRoom(roomId, slot) {
  return /** @type {Room} */ (await call("PUT", `/api/v1/rooms/${encodeURIComponent(roomId)}/slot`, slot));
}

/** @param {string} roomId */
export async function endRoom(roomId) {
  await call("POST", `/api/v1/rooms/${encodeURIComponent(roomId)}/end`);
}

/**
 * The participant link for an invite. The server's `url` is preferred (it knows the public
 * URL behind a proxy); the fallback keeps the token in the fragment, never the query.
 * @param {Invite} invite
 * @returns {string}
 */
export function inviteLink(invite) {
  return invite.url || `${location.origin}/join#${invite.token}`;
}

/**
 * A consultation's record after the call (docs/protocol.md, "Summary and export").
 * @param {string} roomId
 * @returns {Promise<any>}
 */
export async function summary(roomId) {
  return call("GET", `/api/v1/rooms/${encodeURIComponent(roomId)}/summary`);
}

/**
 * Downloads the FHIR R4 Bundle or the PDF of a consultation (an audited export).
 * @param {string} roomId
 * @param {"fhir" | "pdf"} format
 */
export async function downloadExport(roomId, format) {
  await downloadFile(
    `/api/v1/rooms/${encodeURIComponent(roomId)}/export/${format}`,
    `consultation-${roomId}.${format === "pdf" ? "pdf" : "fhir.json"}`,
  );
}

/**
 * Fetches an authenticated file and saves it under `name`.
 * @param {string} path
 * @param {string} name
 */
export async function downloadFile(path, name) {
  const res = await fetchWithSession(path);
  saveObjectUrl(URL.createObjectURL(await res.blob()), name);
}

/**
 * How many prescriptions a page of the pharmacist's queue holds: a screenful or two to work
 * through, quick to load on a weak link; "Show more" brings the next.
 */
export const PRESCRIPTIONS_PAGE = 25;

/**
 * One page of the pharmacist's queue for `status`, oldest first: the prescriptions, how many
 * there are in all, and the `next` page's start (null: the last page).
 * @param {"issued" | "reviewed" | "dispensed" | "rejected"} status
 * @param {string | null} [after] the `next` of the page before
 * @returns {Promise<{prescriptions: import("./protocol.js").RecordInfo[], total: number, next: string | null}>}
 */
export async function prescriptions(status, after = null) {
  const query = new URLSearchParams({ status, limit: String(PRESCRIPTIONS_PAGE) });
  if (after) query.set("after", after);
  return /** @type {{prescriptions: import("./protocol.js").RecordInfo[], total: number, next: string | null}} */ (
    await call("GET", `/api/v1/prescriptions?${query}`)
  );
}

/**
 * @param {string} recordId
 * @param {"review" | "dispense" | "reject"} action
 * @param {string} note
 * @returns {Promise<import("./protocol.js").RecordInfo>}
 */
export async function pharmacyAction(recordId, action, note) {
  return /** @type {import("./protocol.js").RecordInfo} */ (
    await call("POST", `/api/v1/prescriptions/${encodeURIComponent(recordId)}/${action}`, { note })
  );
}

/**
 * @typedef {object} AuditEntry
 * @property {number} seq
 * @property {number} at_ms
 * @property {string} actor
 * @property {string} actor_role
 * @property {string} action
 * @property {string} room_id
 * @property {string} object_type
 * @property {string} object_id
 * @property {string} outcome
 */

/**
 * The newest audit entries (supervisors), newest first.
 * @param {number} count
 * @returns {Promise<AuditEntry[]>}
 */
export async function auditEntries(count) {
  // The API pages oldest first from a sequence number: find the head, then read back from it.
  const v = /** @type {{head_seq: number}} */ (await call("GET", "/api/v1/audit/verify"));
  const after = Math.max(0, v.head_seq - count);
  const page = /** @type {{entries: AuditEntry[]}} */ (await call("GET", `/api/v1/audit?after=${after}&limit=${count}`));
  return page.entries.reverse();
}

/**
 * @returns {Promise<{entries: number, head_seq: number, head_hash: string, first_broken: {seq: number, kind: string} | null}>}
 */
export async function auditVerify() {
  return /** @type {any} */ (await call("GET", "/api/v1/audit/verify"));
}

/** Downloads the whole trail as JSON Lines. */
export async function auditExport() {
  await downloadFile("/api/v1/audit/export", "huizhen-audit.jsonl");
}
