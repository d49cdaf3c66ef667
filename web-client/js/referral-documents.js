// A consultation request's documents in the clinicians' console (docs/protocol.md, "Referral
// documents"): the list both sides read (view each one in the console's viewer,
// referral-viewer.js, or save it: each an audited read), and for the
// requester while the request is open, attaching files, attaching documents of the patient's
// earlier consultations, and removing one that is not in the consultation's room yet. The
// rules are the server's; a refusal shows the server's error by its code.
//
// DOM contract (tests/browser/workflow-scenario.mjs relies on it): the new-request form's
// #referral-files; in the request's dialog, section#referral-documents with
// li.referral-document (`data-document-id`, `data-source`, `data-in-room`),
// button.attachment-view, button.attachment-save and button.attachment-remove in it; #referral-attach-files;
// button#referral-attach-earlier, then li.attach-candidate (`data-document-id`) with its
// button.candidate-attach.

import { ApiError } from "./api.js";
import { el } from "./dom.js";
import { apiErrorKey } from "./errors.js";
import { tr } from "./i18n.js";
import * as rapi from "./referral-api.js";
import { viewAttachment } from "./referral-viewer.js";

/** @typedef {import("./referral-api.js").Referral} Referral */
/** @typedef {import("./referral-api.js").ReferralDocument} ReferralDocument */
/** @typedef {import("./i18n.js").MessageKey} MessageKey */

/** What a file input offers: the kinds the server takes (it checks the content all the same). */
export const ACCEPT = ".pdf,.png,.jpg,.jpeg,.dcm,.csv,.json,.txt,application/pdf,image/png,image/jpeg,application/dicom";

/** @param {number} n bytes */
function formatSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/**
 * @typedef {object} DocumentsOptions
 * @property {(err: unknown) => void} onError shows a refusal in the dialog
 * @property {(id: string) => Promise<void>} reload shows the request again (after a change)
 */

/**
 * Uploads `files` to request `id` one after the other; the refusals, by file name.
 * @param {string} id
 * @param {Iterable<File>} files
 * @param {(name: string, i: number, n: number) => void} [progress]
 * @returns {Promise<{name: string, err: unknown}[]>}
 */
export async function attachAll(id, files, progress) {
  const list = [...files];
  /** @type {{name: string, err: unknown}[]} */
  const failed = [];
  for (const [i, f] of list.entries()) {
    progress?.(f.name, i + 1, list.length);
    try {
      await rapi.attachFile(id, f);
    } catch (err) {
      failed.push({ name: f.name, err });
    }
  }
  return failed;
}

/**
 * The words for a refusal on a request: a request's `consent_required` is about sharing with
 * another hospital, not a room's observers (the general text); a `limit_reached` says which
 * limit where the catalogue has words for it.
 * @param {string} code
 * @param {string | null} [limit] the `limit` of a `limit_reached`
 * @returns {MessageKey}
 */
export function referralErrorKey(code, limit = null) {
  return code === "consent_required" ? "referral.consent.required_error" : apiErrorKey({ code, limit });
}

/**
 * Which files failed and why, for a notice: the first refusal's words.
 * @param {{name: string, err: unknown}[]} failed
 * @returns {import("./i18n.js").Params}
 */
export function failedParams(failed) {
  const first = failed[0]?.err;
  return {
    names: failed.map((f) => f.name).join(", "),
    reason: { key: first instanceof ApiError ? referralErrorKey(first.code) : "error.unknown" },
  };
}

/**
 * The documents section of one request's dialog.
 * @param {Referral} r
 * @param {DocumentsOptions} opts
 * @returns {HTMLElement}
 */
export function documentsSection(r, opts) {
  const docs = r.documents ?? [];
  const mine = r.side === "requester" && r.open;
  const status = el("p", { className: "hint", attrs: { role: "status", "aria-live": "polite" } });
  const list = el("ul", { className: "referral-documents-list" });
  for (const d of docs) list.append(documentItem(r, d, mine, opts));
  // Withheld from the receiving side without the patient's consent (said in the consent part
  // above): not "none attached".
  const withheld = r.documents_withheld ?? 0;
  // Covering for an away specialist: the documents are for whoever takes the request on.
  /** @type {MessageKey} */
  const emptyKey = !withheld ? "referral.docs.none" : r.covering ? "referral.docs.covering" : "referral.docs.withheld";
  if (!docs.length) list.append(el("li", { className: "empty", i18n: emptyKey, params: { n: withheld } }));
  const section = el(
    "section",
    { className: "referral-documents", attrs: { id: "referral-documents", "aria-labelledby": "referral-documents-title" } },
    el("h3", { i18n: "referral.docs.title", attrs: { id: "referral-documents-title" } }),
    list,
    status,
  );
  if (!mine) return section;

  // Attaching files.
  const files = el("input", { attrs: { type: "file", multiple: "", accept: ACCEPT, id: "referral-attach-files" } });
  const attachButton = el("button", { className: "btn btn-small", i18n: "referral.docs.attach", attrs: { type: "button" } });
  attachButton.addEventListener("click", async () => {
    if (!files.files?.length) {
      tr(status, "referral.docs.choose_first");
      files.focus();
      return;
    }
    attachButton.disabled = true;
    const failed = await attachAll(r.id, files.files, (name, i, n) => tr(status, "referral.docs.attaching", { name, i, n }));
    attachButton.disabled = false;
    if (failed.length) {
      opts.onError(failed[0].err);
      tr(status, "referral.docs.some_failed", failedParams(failed));
    } else {
      tr(status, "referral.docs.attached");
    }
    await opts.reload(r.id);
  });
  section.append(
    el(
      "div",
      { className: "field" },
      el("label", { i18n: "referral.docs.attach_label", attrs: { for: files.id } }),
      files,
      el("div", { className: "actions" }, attachButton),
    ),
  );

  // From the patient's earlier consultations.
  const earlier = el("button", { className: "btn btn-small", i18n: "referral.docs.from_earlier", attrs: { type: "button", id: "referral-attach-earlier", "aria-expanded": "false", "aria-controls": "referral-candidates" } });
  const candidates = el("ul", { className: "attach-candidates", attrs: { id: "referral-candidates" } });
  candidates.hidden = true;
  earlier.addEventListener("click", async () => {
    if (!candidates.hidden) {
      candidates.hidden = true;
      earlier.setAttribute("aria-expanded", "false");
      return;
    }
    earlier.disabled = true;
    try {
      const found = await rapi.attachCandidates(r.id);
      candidates.replaceChildren();
      for (const c of found) {
        const take = el("button", { className: "btn btn-small candidate-attach", i18n: "referral.docs.take", params: { name: c.document.name }, attrs: { type: "button" } });
        take.addEventListener("click", async () => {
          take.disabled = true;
          try {
            await rapi.attachFromConsultation(r.id, c.room_id, c.document.id);
            tr(status, "referral.docs.attached");
            await opts.reload(r.id);
          } catch (err) {
            opts.onError(err);
            take.disabled = false;
          }
        });
        candidates.append(
          el(
            "li",
            { className: "attach-candidate", attrs: { "data-document-id": c.document.id } },
            el("span", { className: "doc-name", user: c.document.name }),
            " ",
            el("span", { className: "doc-meta", i18n: "referral.docs.candidate_meta", params: { room: c.room_title, kind: c.document.kind.toUpperCase(), size: formatSize(c.document.size) } }),
            " ",
            take,
          ),
        );
      }
      if (!found.length) candidates.append(el("li", { className: "empty", i18n: "referral.docs.no_earlier" }));
      candidates.hidden = false;
      earlier.setAttribute("aria-expanded", "true");
    } catch (err) {
      opts.onError(err);
    } finally {
      earlier.disabled = false;
    }
  });
  section.append(el("div", { className: "actions" }, earlier), candidates);
  return section;
}

/**
 * @param {Referral} r
 * @param {ReferralDocument} d
 * @param {boolean} mine the requester, while the request is open
 * @param {DocumentsOptions} opts
 */
function documentItem(r, d, mine, opts) {
  const inRoom = d.room_document_id != null;
  const save = el("button", { className: "btn btn-small attachment-save", i18n: "referral.docs.save", params: { name: d.name }, attrs: { type: "button" } });
  save.addEventListener("click", async () => {
    save.disabled = true;
    try {
      await rapi.saveAttachment(r.id, d);
    } catch (err) {
      opts.onError(err);
    } finally {
      save.disabled = false;
    }
  });
  /** @type {MessageKey} */
  const source = d.source === "consultation" ? "referral.docs.source_consultation" : "referral.docs.source_upload";
  const li = el(
    "li",
    { className: "referral-document", attrs: { "data-document-id": d.id, "data-source": d.source, "data-in-room": String(inRoom) } },
    el("span", { className: "doc-name", user: d.name }),
    " ",
    el("span", { className: "doc-meta", i18n: "referral.docs.meta", params: { kind: d.kind.toUpperCase(), size: formatSize(d.size), source: { key: source } } }),
    " ",
  );
  if (inRoom) li.append(el("span", { className: "badge-in-room", i18n: "referral.docs.in_room" }), " ");
  const view = el("button", { className: "btn btn-small attachment-view", i18n: "referral.docs.view", params: { name: d.name }, attrs: { type: "button", "aria-haspopup": "dialog" } });
  view.addEventListener("click", () => void viewAttachment(r.id, d, view));
  li.append(view, " ", save);
  if (mine && !inRoom) {
    const remove = el("button", { className: "btn btn-small btn-danger attachment-remove", i18n: "referral.docs.remove", params: { name: d.name }, attrs: { type: "button" } });
    remove.addEventListener("click", async () => {
      remove.disabled = true;
      try {
        await rapi.removeAttachment(r.id, d.id);
        await opts.reload(r.id);
      } catch (err) {
        opts.onError(err);
        remove.disabled = false;
      }
    });
    li.append(" ", remove);
  }
  return li;
}
