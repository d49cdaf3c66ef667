// Consultation requests (referrals) and the organisation they are addressed in, over the
// clinician HTTP API (docs/protocol.md, "Referrals" and "Organisation"). Built on ./api.js's
// authenticated call; the rules are the server's, so a refused step comes back as an ApiError
// with its stable code and the server's message.

import { call, downloadFile, fetchWithSession, postFile } from "./api.js";

/** @typedef {import("./api.js").Account} Account */
/** @typedef {import("./doc-viewer.js").PageSource} PageSource */

/**
 * @typedef {object} Institution
 * @property {string} id
 * @property {string} name
 * @property {string} kind
 * @property {{id: string, name: string}[]} departments
 */

/**
 * A clinician as a request shows them.
 * @typedef {object} Person
 * @property {string} id
 * @property {string} [display_name]
 * @property {string} [title]
 * @property {{id: string, name: string}} [institution]
 */

/**
 * @typedef {object} Slot
 * @property {number} start Unix seconds
 * @property {number} minutes
 * @property {number} end Unix seconds
 */

/** @typedef {"routine" | "urgent" | "emergency"} Urgency */
/** @typedef {"requester" | "receiver"} Side */
/**
 * @typedef {"requested" | "accepted" | "counter_proposed" | "scheduled" | "declined" |
 *   "in_consultation" | "report_issued" | "closed" | "cancelled"} ReferralState
 */

/**
 * One step on a request.
 * @typedef {object} ReferralEvent
 * @property {number} version
 * @property {string} action create, accept, propose_time, decline, forward, start, issue_report, close, cancel
 * @property {string | null} from_state
 * @property {string} to_state
 * @property {Person} actor
 * @property {Side} side
 * @property {any} detail slot, reason, a forward's new target `to`
 * @property {number} at Unix seconds
 */

/**
 * A consultation request as the signed-in clinician sees it (`side`: theirs).
 * @typedef {object} Referral
 * @property {string} id
 * @property {Person} requester
 * @property {{id: string, name: string}} requester_institution
 * @property {{department: {id: string, name?: string, institution?: {id: string, name: string}}, specialist: Person | null}} target
 * @property {Person | null} receiver
 * @property {string} patient_ref
 * @property {string} reason
 * @property {string} question
 * @property {Urgency} urgency
 * @property {boolean} urgent
 * @property {ReferralState} state
 * @property {Side | null} state_by who proposed the pending time, or cancelled
 * @property {Slot | null} slot the time proposed or agreed
 * @property {string | null} state_reason
 * @property {boolean} open
 * @property {string | null} room_id
 * @property {Slot | null} room_slot
 * @property {number} version
 * @property {number} created_at
 * @property {number} updated_at
 * @property {Side} side
 * @property {boolean} [covering] listed and shown (receiver side) only because the specialist it names is not taking requests now: forwarding is the one step the viewer may take
 * @property {Slot[]} [proposed_times] with the request's details only
 * @property {ReferralEvent[]} [events] with the request's details only
 * @property {ReferralDocument[]} [documents] with the request's details only
 * @property {number} [documents_withheld] with the details: how many the receiving side may not read without the patient's consent
 * @property {ReferralConsent} [consent] with the request's details only
 */

/**
 * The words a patient agrees to, as the server holds them.
 * @typedef {object} Wording
 * @property {string} version
 * @property {string} zh
 * @property {string} en
 */

/**
 * Where a request stands on the patient's consent to sharing its documents with another
 * institution (docs/protocol.md, "Referral consent").
 * @typedef {object} ReferralConsent
 * @property {"external_sharing"} purpose
 * @property {boolean} required the request goes to another institution
 * @property {boolean} in_force
 * @property {boolean} allowed
 * @property {Wording} current_wording
 * @property {string | null} wording_version
 * @property {number | null} given_at Unix seconds
 * @property {Person | null} attested_by
 * @property {number | null} withdrawn_at Unix seconds
 * @property {Person | null} withdrawn_by
 */

/**
 * A document attached to a request (docs/protocol.md, "Referral documents").
 * @typedef {object} ReferralDocument
 * @property {string} id
 * @property {string} name
 * @property {string} kind pdf, png, jpeg, dicom, ecg, text
 * @property {number} size bytes
 * @property {string} sha256
 * @property {"upload" | "consultation"} source
 * @property {string} attached_by
 * @property {number} attached_at Unix seconds
 * @property {string | null} room_document_id the document it became in the consultation's room
 * @property {string} [source_room_id]
 * @property {string} [source_document_id]
 */

/**
 * A document of the patient's earlier consultations that may be attached.
 * @typedef {object} CandidateDocument
 * @property {string} room_id
 * @property {string} room_title
 * @property {number} room_created_at Unix seconds
 * @property {{id: string, name: string, kind: string, size: number, created_at_ms: number}} document
 */

/** @typedef {"inbox" | "department" | "outbox"} Box */

/**
 * A time for a step: start (Unix seconds) and length.
 * @typedef {{start: number, minutes: number}} Time
 */

/**
 * @typedef {object} NewReferral
 * @property {string} target_department_id
 * @property {string} [target_specialist_id]
 * @property {string} patient_ref
 * @property {string} reason
 * @property {string} question
 * @property {Urgency} urgency
 * @property {Time[]} proposed_times
 * @property {{wording_version: string}} [external_sharing_consent] the requester attests the patient's consent
 */

/** @returns {Promise<Institution[]>} every institution of the network, with its departments */
export async function institutions() {
  return /** @type {{institutions: Institution[]}} */ (await call("GET", "/api/v1/institutions")).institutions;
}

/**
 * The doctors and specialists of a department.
 * @param {string} departmentId
 * @returns {Promise<Account[]>}
 */
export async function departmentClinicians(departmentId) {
  const q = new URLSearchParams({ department: departmentId });
  return /** @type {{clinicians: Account[]}} */ (await call("GET", `/api/v1/directory?${q}`)).clinicians;
}

/**
 * @param {Box} box
 * @returns {Promise<Referral[]>} open first, then emergency, urgent, routine, longest waiting first
 */
export async function referrals(box) {
  return /** @type {{referrals: Referral[]}} */ (await call("GET", `/api/v1/referrals?box=${box}`)).referrals;
}

/**
 * @param {string} id
 * @returns {Promise<Referral>} with `proposed_times` and `events`
 */
export async function referral(id) {
  return /** @type {Referral} */ (await call("GET", `/api/v1/referrals/${encodeURIComponent(id)}`));
}

/**
 * @param {NewReferral} body
 * @returns {Promise<Referral>}
 */
export async function createReferral(body) {
  return /** @type {Referral} */ (await call("POST", "/api/v1/referrals", body));
}

/** @returns {Promise<Wording>} the words to show before a request to another institution */
export async function consentWording() {
  return /** @type {Wording} */ (await call("GET", "/api/v1/referrals/consent-wording"));
}

/**
 * The requester attests that the patient agreed to the words of `version`.
 * @param {string} id
 * @param {string} version
 * @returns {Promise<Referral>} the request, with its details
 */
export async function giveConsent(id, version) {
  const body = { purpose: "external_sharing", wording_version: version };
  return /** @type {Referral} */ (await call("POST", `/api/v1/referrals/${encodeURIComponent(id)}/consent`, body));
}

/**
 * The requester records that the patient withdrew their consent.
 * @param {string} id
 * @returns {Promise<Referral>} the request, with its details
 */
export async function withdrawConsent(id) {
  const body = { purpose: "external_sharing" };
  return /** @type {Referral} */ (await call("POST", `/api/v1/referrals/${encodeURIComponent(id)}/consent/withdraw`, body));
}

/**
 * A step on a request.
 * @param {string} id
 * @param {"accept" | "propose" | "decline" | "forward" | "start" | "close" | "cancel"} action
 * @param {Record<string, unknown>} [body]
 * @returns {Promise<Referral>} the request after the step, with its details
 */
export async function referralStep(id, action, body) {
  return /** @type {Referral} */ (await call("POST", `/api/v1/referrals/${encodeURIComponent(id)}/${action}`, body));
}

/**
 * Attaches a file to a request (the requester's, while it is open).
 * @param {string} id
 * @param {File} file
 * @returns {Promise<ReferralDocument>}
 */
export async function attachFile(id, file) {
  const path = `/api/v1/referrals/${encodeURIComponent(id)}/documents?name=${encodeURIComponent(file.name)}`;
  return /** @type {{document: ReferralDocument}} */ (await postFile(path, file)).document;
}

/**
 * Attaches a document of one of the patient's earlier consultations.
 * @param {string} id
 * @param {string} roomId
 * @param {string} documentId
 * @returns {Promise<ReferralDocument>}
 */
export async function attachFromConsultation(id, roomId, documentId) {
  const path = `/api/v1/referrals/${encodeURIComponent(id)}/documents/from-consultation`;
  return /** @type {{document: ReferralDocument}} */ (await call("POST", path, { room_id: roomId, document_id: documentId })).document;
}

/**
 * What the requester may attach from the patient's earlier consultations.
 * @param {string} id
 * @returns {Promise<CandidateDocument[]>}
 */
export async function attachCandidates(id) {
  const path = `/api/v1/referrals/${encodeURIComponent(id)}/documents/candidates`;
  return /** @type {{documents: CandidateDocument[]}} */ (await call("GET", path)).documents;
}

/**
 * Removes an attachment that is not in the consultation's room yet.
 * @param {string} id
 * @param {string} documentId
 */
export async function removeAttachment(id, documentId) {
  await call("DELETE", `/api/v1/referrals/${encodeURIComponent(id)}/documents/${encodeURIComponent(documentId)}`);
}

/**
 * Saves an attachment (an audited read).
 * @param {string} id
 * @param {ReferralDocument} doc
 */
export async function saveAttachment(id, doc) {
  await downloadFile(`/api/v1/referrals/${encodeURIComponent(id)}/documents/${encodeURIComponent(doc.id)}/content?download=1`, doc.name);
}

/**
 * Where the console's viewer (doc-viewer.js) takes a request's attachments from, before any
 * room exists: the request's views of each (pages, page images, ECG, DICOM header) and its
 * bytes, with the signed-in session; each one an audited read on the server. Attachments have
 * no annotations. `referral` is the request whose attachments are shown: set it before opening
 * one.
 * @implements {PageSource}
 */
export class AttachmentSource {
  /** @param {string} referral */
  constructor(referral) {
    this.referral = referral;
  }

  /** @param {string} id @param {string} suffix */
  path(id, suffix) {
    return `/api/v1/referrals/${encodeURIComponent(this.referral)}/documents/${encodeURIComponent(id)}${suffix}`;
  }

  /** @param {string} id @param {string} [suffix] */
  async blobUrl(id, suffix = "/content") {
    const res = await fetchWithSession(this.path(id, suffix));
    return URL.createObjectURL(await res.blob());
  }

  /** @param {string} id */
  async text(id) {
    return (await fetchWithSession(this.path(id, "/content"))).text();
  }

  /** @param {{id: string, name: string}} doc */
  async download(doc) {
    await downloadFile(this.path(doc.id, "/content?download=1"), doc.name);
  }

  /** @param {string} id @returns {Promise<{pages: number}>} */
  async pages(id) {
    return /** @type {{pages: number}} */ (await call("GET", this.path(id, "/pages")));
  }

  /** @param {string} id */
  async ecg(id) {
    return /** @type {{sample_rate_hz: number, units: string, leads: {name: string, samples: number[]}[]}} */ (await call("GET", this.path(id, "/ecg")));
  }

  /** @param {string} id */
  async dicom(id) {
    return /** @type {{fields: Record<string, string>, rows: number, columns: number, image_unavailable: string | null}} */ (await call("GET", this.path(id, "/dicom")));
  }

  /** @returns {Promise<import("./protocol.js").AnnotationInfo[]>} */
  async annotations() {
    return [];
  }
}
