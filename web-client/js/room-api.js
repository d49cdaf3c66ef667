// The participant's HTTP calls into their room (docs/protocol.md, "Documents", "Records"),
// authenticated with the access token from `joined`. Uploads are resumable: each chunk is
// acknowledged only once it is on the server's disk, and after a failure the upload continues
// from the offset the server reports, so a weak link costs a retry, never the whole file.

import { ApiError } from "./api.js";
import { saveObjectUrl } from "./dom.js";

/** @typedef {import("./protocol.js").DocumentInfo} DocumentInfo */
/** @typedef {import("./protocol.js").RecordInfo} RecordInfo */
/** @typedef {import("./protocol.js").AnnotationInfo} AnnotationInfo */
/** @typedef {import("./doc-viewer.js").PageSource} PageSource */

/**
 * How a clinician confirms a signature: their password, or their signing PIN.
 * @typedef {{password: string} | {pin: string}} Confirmation
 */

/**
 * The request's fields for a confirmation (none for a record that is not signed).
 * @param {Confirmation | undefined} confirm
 * @returns {{password?: string, pin?: string}}
 */
function confirmation(confirm) {
  if (!confirm) return {};
  return "pin" in confirm ? { pin: confirm.pin } : { password: confirm.password };
}

/** Attempts per chunk before an upload gives up (each waits a little longer). */
const CHUNK_ATTEMPTS = 6;

/** @implements {PageSource} */
export class RoomApi {
  /**
   * @param {string} roomId
   * @param {string} accessToken
   */
  constructor(roomId, accessToken) {
    this.room = roomId;
    this.token = accessToken;
  }

  /** @param {string} path */
  url(path) {
    return `/api/v1/rooms/${encodeURIComponent(this.room)}${path}`;
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   * @returns {Promise<any>}
   */
  async json(method, path, body) {
    /** @type {Response} */
    let resp;
    try {
      resp = await fetch(this.url(path), {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, "network", "The server could not be reached.");
    }
    return readAnswer(resp);
  }

  /** @returns {Promise<DocumentInfo[]>} */
  async documents() {
    return (await this.json("GET", "/documents")).documents;
  }

  /**
   * A document's bytes as an object URL (the caller revokes it).
   * @param {string} id
   * @param {string} [suffix] e.g. "/pages/2"
   */
  async blobUrl(id, suffix = "/content") {
    const resp = await fetch(this.url(`/documents/${encodeURIComponent(id)}${suffix}`), {
      headers: { authorization: `Bearer ${this.token}` },
    });
    if (!resp.ok) await readAnswer(resp);
    return URL.createObjectURL(await resp.blob());
  }

  /**
   * A text document's content.
   * @param {string} id
   */
  async text(id) {
    const resp = await fetch(this.url(`/documents/${encodeURIComponent(id)}/content`), {
      headers: { authorization: `Bearer ${this.token}` },
    });
    if (!resp.ok) await readAnswer(resp);
    return resp.text();
  }

  /**
   * Saves a copy (a separate right from viewing; the server refuses it for observers).
   * @param {{id: string, name: string}} doc
   */
  async download(doc) {
    saveObjectUrl(await this.blobUrl(doc.id, "/content?download=1"), doc.name);
  }

  /** @param {string} id @returns {Promise<{pages: number}>} */
  pages(id) {
    return this.json("GET", `/documents/${encodeURIComponent(id)}/pages`);
  }

  /** @param {string} id @returns {Promise<{sample_rate_hz: number, units: string, leads: {name: string, samples: number[]}[]}>} */
  ecg(id) {
    return this.json("GET", `/documents/${encodeURIComponent(id)}/ecg`);
  }

  /**
   * @param {string} id
   * @returns {Promise<{fields: Record<string, string>, rows: number, columns: number, image_unavailable: string | null}>}
   */
  dicom(id) {
    return this.json("GET", `/documents/${encodeURIComponent(id)}/dicom`);
  }

  /** @param {string} id @returns {Promise<AnnotationInfo[]>} */
  async annotations(id) {
    return (await this.json("GET", `/documents/${encodeURIComponent(id)}/annotations`)).annotations;
  }

  /** @returns {Promise<RecordInfo[]>} */
  async records() {
    return (await this.json("GET", "/records")).records;
  }

  /**
   * Creates a record, issued at once or as a draft. Issuing a diagnosis report or a
   * prescription signs it in the clinician's account's name and needs their password or their
   * signing PIN: without either the server answers 403 `signature_required`, with a wrong
   * password 403 `wrong_password`, with a wrong PIN 403 `wrong_pin` (with `triesLeft`) and at
   * the last try 403 `pin_erased`; 409 `no_signing_pin` when none is set; 429
   * `too_many_attempts` after several failures. Notes need none.
   * @param {RecordInfo["kind"]} kind
   * @param {Record<string, unknown>} body
   * @param {boolean} issue
   * @param {{supersedes?: string | null, confirm?: Confirmation, patient?: string}} [opts] `patient`:
   *   the participant id of the patient it is about (409 `patient_required` without one when
   *   several came to the consultation)
   * @returns {Promise<RecordInfo>}
   */
  createRecord(kind, body, issue, opts = {}) {
    return this.json("POST", "/records", {
      kind,
      body,
      issue,
      ...(opts.supersedes ? { supersedes: opts.supersedes } : {}),
      ...confirmation(opts.confirm),
      ...(opts.patient ? { patient: opts.patient } : {}),
    });
  }

  /**
   * Changes the text of one of the caller's drafts (403 `forbidden`: another author's; 409
   * `conflict`: no longer a draft).
   * @param {string} id
   * @param {Record<string, unknown>} body
   * @returns {Promise<RecordInfo>}
   */
  updateRecord(id, body) {
    return this.json("PUT", `/records/${encodeURIComponent(id)}`, { body });
  }

  /**
   * Issues one of the caller's drafts; a diagnosis report or a prescription is signed with
   * the password or the PIN (the same answers as `createRecord`'s).
   * @param {string} id
   * @param {Confirmation} [confirm]
   * @returns {Promise<RecordInfo>}
   */
  issueRecord(id, confirm) {
    return this.json("POST", `/records/${encodeURIComponent(id)}/issue`, confirmation(confirm));
  }

  /**
   * Uploads a file as a shared document, resuming after failures.
   * @param {File} file
   * @param {"everyone" | "clinicians"} visibility
   * @param {(sent: number, total: number) => void} onProgress
   * @returns {Promise<DocumentInfo>}
   */
  async upload(file, visibility, onProgress) {
    const sha256 = await sha256Hex(file);
    let status = await this.json("POST", "/uploads", { name: file.name, size: file.size, sha256, visibility });
    const path = `/uploads/${encodeURIComponent(status.upload_id)}`;
    let offset = 0;
    let failures = 0;
    for (;;) {
      const end = Math.min(offset + status.chunk_max, file.size);
      try {
        const answer = await this.putChunk(path, offset, file.slice(offset, end), (n) => onProgress(offset + n, file.size));
        if (answer.document) return answer.document;
        offset = answer.offset;
        failures = 0;
      } catch (err) {
        // Bad content, a bad hash, a refused role: retrying cannot help.
        if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.code !== "offset_mismatch" && err.code !== "upload_busy") throw err;
        if (++failures >= CHUNK_ATTEMPTS) throw err;
        await new Promise((r) => setTimeout(r, 500 * 2 ** failures));
        // Where does the server stand? Continue from there.
        status = await this.json("GET", path);
        offset = status.offset;
      }
      onProgress(offset, file.size);
    }
  }

  /**
   * One chunk with upload progress (fetch has none for request bodies).
   * @param {string} path
   * @param {number} offset
   * @param {Blob} chunk
   * @param {(sent: number) => void} onSent
   * @returns {Promise<any>}
   */
  putChunk(path, offset, chunk, onSent) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", this.url(`${path}?offset=${offset}`));
      xhr.setRequestHeader("authorization", `Bearer ${this.token}`);
      xhr.upload.onprogress = (e) => onSent(e.loaded);
      xhr.onerror = () => reject(new ApiError(0, "network", "The connection was interrupted."));
      xhr.onload = () => {
        /** @type {any} */
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          body = null;
        }
        if (xhr.status >= 200 && xhr.status < 300) resolve(body);
        else reject(new ApiError(xhr.status, body?.error?.code ?? "http_error", body?.error?.message ?? `HTTP ${xhr.status}`));
      };
      xhr.send(chunk);
    });
  }
}

/**
 * @param {Response} resp
 * @returns {Promise<any>}
 */
async function readAnswer(resp) {
  /** @type {any} */
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  if (!resp.ok) {
    const left = typeof body?.error?.tries_left === "number" ? body.error.tries_left : null;
    throw new ApiError(resp.status, body?.error?.code ?? "http_error", body?.error?.message ?? `HTTP ${resp.status}`, left);
  }
  return body;
}

/**
 * @typedef {object} InvitationCheck
 * @property {"active" | "not_yet"} state
 * @property {string} role
 * @property {boolean} seat
 * @property {number | null} not_before Unix seconds
 * @property {number} expires_at Unix seconds
 * @property {number} opens_in seconds until it opens; 0 when open
 */

/**
 * What the join page asks as soon as it opens, before any device prompt: whether its link still
 * lets someone in, and from when (POST /api/v1/invitations/check; nothing is used up).
 * @param {string} token
 * @returns {Promise<InvitationCheck>}
 */
export async function checkInvitation(token) {
  /** @type {Response} */
  let resp;
  try {
    resp = await fetch("/api/v1/invitations/check", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token }),
    });
  } catch {
    throw new ApiError(0, "network", "The server could not be reached.");
  }
  return readAnswer(resp);
}

/**
 * SHA-256 of a file, hex; the server checks the upload against it.
 * @param {Blob} file
 */
export async function sha256Hex(file) {
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
