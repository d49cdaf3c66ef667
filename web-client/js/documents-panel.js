// The room's document list and the upload form: who shared what, for whom ("clinicians only"),
// and a resumable upload with a progress bar. Patients may share with everyone; observers only
// look.

import { el, must, roleLabel } from "./dom.js";

/** @typedef {import("./protocol.js").DocumentInfo} DocumentInfo */
/** @typedef {import("./room-api.js").RoomApi} RoomApi */

export class DocumentsPanel {
  /** @type {Map<string, DocumentInfo>} */
  docs = new Map();

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

  /** @param {DocumentInfo[]} docs */
  reset(docs) {
    this.docs = new Map(docs.map((d) => [d.id, d]));
    this.render();
  }

  /** @param {DocumentInfo} doc */
  add(doc) {
    this.docs.set(doc.id, doc);
    this.render();
  }

  /** @param {string} id */
  get(id) {
    return this.docs.get(id);
  }

  render() {
    const items = [...this.docs.values()].sort((a, b) => a.created_at_ms - b.created_at_ms);
    this.ui.list.replaceChildren(
      ...items.map((d) => {
        const open = el("button", { className: "doc-open", text: d.name, attrs: { type: "button" } });
        open.addEventListener("click", () => this.onOpen(d));
        const meta = el("span", {
          className: "doc-meta",
          text: `${d.kind.toUpperCase()} · ${formatSize(d.size)} · ${roleLabel(d.shared_by_role)}`,
        });
        const li = el("li", { className: "doc-item", attrs: { "data-document-id": d.id } }, open, meta);
        if (d.visibility === "clinicians") li.append(el("span", { className: "badge badge-private", text: "Clinicians only" }));
        return li;
      }),
    );
    if (items.length === 0) this.ui.list.append(el("li", { className: "empty", text: "No documents shared yet." }));
  }

  async upload() {
    const file = this.ui.file.files?.[0];
    if (!file) {
      this.ui.status.textContent = "Choose a file first.";
      return;
    }
    const visibility = this.ui.visibility.value === "clinicians" ? "clinicians" : "everyone";
    this.ui.submit.disabled = true;
    this.ui.progress.hidden = false;
    this.ui.progress.value = 0;
    this.ui.status.textContent = `Uploading ${file.name}…`;
    delete this.ui.status.dataset.errorCode;
    try {
      const doc = await this.api.upload(file, visibility, (sent, total) => {
        this.ui.progress.value = total ? sent / total : 1;
        this.ui.status.textContent = `Uploading ${file.name}: ${Math.floor((100 * sent) / Math.max(total, 1))} %`;
      });
      this.add(doc);
      this.ui.status.textContent = `${doc.name} is shared.`;
      this.ui.form.reset();
    } catch (e) {
      // The server's words: e.g. `consent_required` when the care team includes another
      // hospital's doctors and the patient has not agreed to sharing with them.
      const code = e instanceof Error && "code" in e && typeof e.code === "string" ? e.code : "";
      if (code) this.ui.status.dataset.errorCode = code;
      let text = e instanceof Error ? `Not shared: ${e.message}` : "Not shared.";
      if (code === "consent_required" && this.role === "patient") text += ". You can agree under “Consent / 知情同意”.";
      this.ui.status.textContent = text;
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
