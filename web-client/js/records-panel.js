// Clinical records in the room: doctors and specialists write consultation notes, diagnosis
// reports and prescriptions (issued at once, or saved as drafts); everyone sees the records their
// role may read, with their status, live. An issued record is never edited: a correction is a
// new record that supersedes it.

import { el, must, roleLabel } from "./dom.js";

/** @typedef {import("./protocol.js").RecordInfo} RecordInfo */
/** @typedef {import("./room-api.js").RoomApi} RoomApi */

const KIND_LABEL = { note: "Consultation note", diagnosis_report: "Diagnosis report", prescription: "Prescription" };

export class RecordsPanel {
  /** @type {Map<string, RecordInfo>} */
  records = new Map();

  /**
   * @param {HTMLElement} root the #records-panel element
   * @param {RoomApi} api
   * @param {import("./protocol.js").Role} role
   */
  constructor(root, api, role) {
    this.api = api;
    this.ui = {
      list: must(".record-list", HTMLElement, root),
      forms: must(".record-forms", HTMLElement, root),
      report: must(".report-form", HTMLFormElement, root),
      rx: must(".rx-form", HTMLFormElement, root),
      note: must(".note-form", HTMLFormElement, root),
      status: must(".record-status", HTMLElement, root),
    };
    this.ui.forms.hidden = !(role === "doctor" || role === "specialist");
    this.ui.report.addEventListener("submit", (e) => {
      e.preventDefault();
      const f = new FormData(this.ui.report);
      void this.create("diagnosis_report", {
        findings: str(f, "findings"),
        impression: str(f, "impression"),
        recommendation: str(f, "recommendation"),
      }, this.ui.report);
    });
    this.ui.rx.addEventListener("submit", (e) => {
      e.preventDefault();
      const f = new FormData(this.ui.rx);
      void this.create("prescription", {
        items: [{
          medication: str(f, "medication"),
          dose: str(f, "dose"),
          route: str(f, "route"),
          frequency: str(f, "frequency"),
          duration: str(f, "duration"),
        }],
      }, this.ui.rx);
    });
    this.ui.note.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.create("note", { text: str(new FormData(this.ui.note), "text") }, this.ui.note);
    });
  }

  async load() {
    try {
      for (const r of await this.api.records()) this.records.set(r.id, r);
      this.render();
    } catch {
      this.ui.status.textContent = "Records could not be loaded.";
    }
  }

  /**
   * @param {RecordInfo["kind"]} kind
   * @param {Record<string, unknown>} body
   * @param {HTMLFormElement} form
   */
  async create(kind, body, form) {
    try {
      const r = await this.api.createRecord(kind, body, true);
      this.upsert(r);
      form.reset();
      this.ui.status.textContent = `${KIND_LABEL[kind]} issued.`;
    } catch (e) {
      this.ui.status.textContent = e instanceof Error ? `Not issued: ${e.message}` : "Not issued.";
    }
  }

  /** @param {RecordInfo} r */
  upsert(r) {
    this.records.set(r.id, r);
    this.render();
  }

  render() {
    const items = [...this.records.values()].sort((a, b) => a.created_at_ms - b.created_at_ms);
    this.ui.list.replaceChildren(
      ...items.map((r) => {
        const li = el(
          "li",
          { className: "record-item", attrs: { "data-record-id": r.id, "data-kind": r.kind, "data-status": r.status } },
          el("strong", { text: KIND_LABEL[r.kind] }),
          el("span", { className: "record-meta", text: ` ${r.author_name} (${roleLabel(r.author_role)}) · ${r.status}${r.superseded_by ? " · corrected" : ""}` }),
          el("p", { className: "record-body", text: recordText(r) }),
        );
        return li;
      }),
    );
    if (items.length === 0) this.ui.list.append(el("li", { className: "empty", text: "No records yet." }));
  }
}

/** @param {FormData} f @param {string} name */
function str(f, name) {
  const v = f.get(name);
  return typeof v === "string" ? v.trim() : "";
}

/**
 * A record's body as readable lines.
 * @param {Pick<RecordInfo, "kind" | "body">} r
 */
export function recordText(r) {
  const b = r.body;
  switch (r.kind) {
    case "note":
      return String(b.text ?? "");
    case "diagnosis_report":
      return `Findings: ${b.findings ?? ""}\nImpression: ${b.impression ?? ""}\nRecommendation: ${b.recommendation ?? ""}`;
    case "prescription":
      return (Array.isArray(b.items) ? b.items : [])
        .map((/** @type {any} */ i) => `${i.medication}: ${i.dose}, ${i.route}, ${i.frequency}, ${i.duration}`)
        .join("\n");
  }
}
