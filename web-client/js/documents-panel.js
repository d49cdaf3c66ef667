// The room's document list and the upload form: who shared what, for whom ("clinicians only"),
// and a resumable upload with a progress bar. Patients may share with everyone; observers only
// look.

import { el, must, roleParam } from "./dom.js";
import { errorCodeOf, errorKeyOf } from "./errors.js";
import { tr } from "./i18n.js";

/** @typedef {import("./protocol.js").DocumentInfo} DocumentInfo */
/** @typedef {import("./room-api.js").RoomApi} RoomApi */

export class DocumentsPanel {
  /** @type {Map<string, DocumentInfo>} */
  docs = new Map();
  /**
   * Ids of documents withheld from this participant (without the patient's consent to sharing
   * them with their hospital): counted in the list, never named.
   * @type {Set<string>}
   */
  withheld = new Set();

  /**
   * @param {HTMLElement} root the #documents-panel element
   * @param {RoomApi} api
   * @param {import("./protocol.js").Role} role
   * @param {(doc: DocumentInfo) => void} onOpen
   */
  constructor(root, api, role, onOpen) {
    this.api = api;
    this.onOpen = onOpen;
    this.ui = {
      list: must(".doc-list", HTMLElement, root),
      form: must(".upload-form", HTMLFormElement, root),
      file: must(".upload-file", HTMLInputElement, root),
      visibility: must(".upload-visibility", HTMLSelectElement, root),
      progress: must(".upload-progress", HTMLProgressElement, root),
      status: must(".upload-status", HTMLElement, root),
      submit: must(".upload-submit", HTMLButtonElement, root),
    };
    this.role = role;
    const clinician = role === "doctor" || role === "specialist";
    this.ui.form.hidden = role === "observer";
    // Only the care team may share something the patient must not see.
    const only = this.ui.visibility.querySelector('option[value="clinicians"]');
    if (only instanceof HTMLOptionElement) only.disabled = !clinician;
    this.ui.form.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.upload();
    });
  }

  /**
   * @param {DocumentInfo[]} docs
   * @param {string[]} [withheld]
   */
  reset(docs, withheld = []) {
    this.docs = new Map(docs.map((d) => [d.id, d]));
    this.withheld = new Set(withheld);
    this.render();
  }

  /** @param {DocumentInfo} doc shared, or released again */
  add(doc) {
    this.docs.set(doc.id, doc);
    this.withheld.delete(doc.id);
    this.render();
  }

  /**
   * A document is withheld from this participant now: out of the list, counted; whether it
   * was listed.
   * @param {string} id
   */
  withhold(id) {
    const had = this.docs.delete(id);
    this.withheld.add(id);
    this.render();
    return had;
  }

  /** @param {string} id */
  get(id) {
    return this.docs.get(id);
  }

  render() {
    const items = [...this.docs.values()].sort((a, b) => a.created_at_ms - b.created_at_ms);
    this.ui.list.replaceChildren(
      ...items.map((d) => {
        const open = el("button", { className: "doc-open", user: d.name, attrs: { type: "button" } });
        open.addEventListener("click", () => this.onOpen(d));
        const meta = el("span", {
          className: "doc-meta",
          i18n: "documents.meta",
          params: { kind: d.kind.toUpperCase(), size: formatSize(d.size), role: roleParam(d.shared_by_role) },
        });
        const li = el("li", { className: "doc-item", attrs: { "data-document-id": d.id } }, open, meta);
        if (d.visibility === "clinicians") li.append(el("span", { className: "badge badge-private", i18n: "documents.visible.clinicians" }));
        return li;
      }),
    );
    if (this.withheld.size > 0) {
      this.ui.list.append(el("li", { className: "empty doc-withheld", i18n: "documents.withheld", params: { n: this.withheld.size } }));
    } else if (items.length === 0) {
      this.ui.list.append(el("li", { className: "empty", i18n: "documents.empty" }));
    }
  }

  async upload() {
    const file = this.ui.file.files?.[0];
    if (!file) {
      tr(this.ui.status, "documents.choose_file");
      return;
    }
    const visibility = this.ui.visibility.value === "clinicians" ? "clinicians" : "everyone";
    this.ui.submit.disabled = true;
    this.ui.progress.hidden = false;
    this.ui.progress.value = 0;
    tr(this.ui.status, "documents.uploading", { name: file.name });
    delete this.ui.status.dataset.errorCode;
    try {
      const doc = await this.api.upload(file, visibility, (sent, total) => {
        this.ui.progress.value = total ? sent / total : 1;
        tr(this.ui.status, "documents.uploading_percent", { name: file.name, percent: Math.floor((100 * sent) / Math.max(total, 1)) });
      });
      this.add(doc);
      tr(this.ui.status, "documents.shared", { name: doc.name });
      this.ui.form.reset();
    } catch (e) {
      // The server's words: e.g. `consent_required` when the care team includes another
      // hospital's doctors and the patient has not agreed to sharing with them.
      const code = errorCodeOf(e);
      if (code) this.ui.status.dataset.errorCode = code;
      if (code === "consent_required") {
        tr(this.ui.status, this.role === "patient" ? "documents.consent_required_patient" : "documents.consent_required");
      } else tr(this.ui.status, "documents.not_shared", { reason: { key: errorKeyOf(e) } });
    } finally {
      this.ui.submit.disabled = false;
      this.ui.progress.hidden = true;
    }
  }
}

/** @param {number} n */
function formatSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
