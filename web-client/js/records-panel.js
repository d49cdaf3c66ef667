// Clinical records in the room: doctors and specialists write consultation notes, diagnosis
// reports and prescriptions (issued at once, or saved as drafts); everyone sees the records their
// role may read, with their status, live. An issued record is never edited: a correction is a
// new record that supersedes it. Issuing a diagnosis report or a prescription signs it in the
// clinician's account's name: a modal dialog asks for their password first. Notes are issued
// without one.

import { ApiError } from "./api.js";
import { el, must, roleLabel } from "./dom.js";

/** @typedef {import("./protocol.js").RecordInfo} RecordInfo */
/** @typedef {import("./protocol.js").RecordSignature} RecordSignature */
/** @typedef {import("./room-api.js").RoomApi} RoomApi */

const KIND_LABEL = { note: "Consultation note", diagnosis_report: "Diagnosis report", prescription: "Prescription" };

/** The records that are signed as they are issued, and what the dialog and status then say. */
const SIGNED = {
  diagnosis_report: { title: "Sign and issue the diagnosis report", done: "Diagnosis report signed and issued." },
  prescription: { title: "Sign and issue the prescription", done: "Prescription signed and issued." },
};

/**
 * "Signed by 赵敏 主任医师 · 县人民医院, <time>": who signed, as they stood at signing.
 * @param {RecordSignature} sig
 * @returns {string}
 */
export function signatureText(sig) {
  const who = [sig.title ? `${sig.name} ${sig.title}` : sig.name, sig.institution].filter((part) => part !== "").join(" · ");
  const at = new Date(sig.at_ms).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  return `Signed by ${who}, ${at}`;
}

/**
 * The modal dialog that asks for the clinician's password to sign a record (join.html's
 * #sign-dialog). A wrong password shows the server's answer and lets them try again.
 */
class SignDialog {
  constructor() {
    this.ui = {
      dialog: must("#sign-dialog", HTMLDialogElement),
      form: must("#sign-form", HTMLFormElement),
      title: must("#sign-dialog-title", HTMLElement),
      password: must("#sign-password", HTMLInputElement),
      error: must("#sign-error", HTMLElement),
      cancel: must("#sign-cancel", HTMLButtonElement),
      ok: must("#sign-ok", HTMLButtonElement),
    };
  }

  /** @param {string} text empty hides it */
  showError(text) {
    this.ui.error.textContent = text;
    this.ui.error.hidden = text === "";
    this.ui.password.setAttribute("aria-invalid", text === "" ? "false" : "true");
  }

  /**
   * Asks for the password and issues with it, until the server accepts it, the clinician
   * cancels, or the server refuses for another reason than the password.
   * @param {string} title
   * @param {(password: string) => Promise<RecordInfo>} issue
   * @returns {Promise<RecordInfo | null>} null when cancelled
   */
  run(title, issue) {
    const { dialog, form, password, cancel, ok } = this.ui;
    this.ui.title.textContent = title;
    password.value = "";
    this.showError("");
    dialog.showModal();
    password.focus();
    return new Promise((resolve, reject) => {
      let busy = false;
      let settled = false;
      /** @param {() => void} settle */
      const finish = (settle) => {
        if (settled) return;
        settled = true;
        form.removeEventListener("submit", onSubmit);
        cancel.removeEventListener("click", onCancelClick);
        dialog.removeEventListener("cancel", onEscape);
        dialog.removeEventListener("close", onClose);
        if (dialog.open) dialog.close();
        password.value = "";
        settle();
      };
      /** @param {SubmitEvent} ev */
      const onSubmit = async (ev) => {
        ev.preventDefault();
        if (busy) return;
        if (password.value === "") {
          this.showError("Enter your password.");
          password.focus();
          return;
        }
        busy = true;
        ok.disabled = true;
        cancel.disabled = true;
        try {
          const record = await issue(password.value);
          finish(() => resolve(record));
        } catch (err) {
          if (err instanceof ApiError && (err.code === "wrong_password" || err.code === "too_many_attempts")) {
            // The server's own words (a wrong password, or how long to wait); try again.
            this.showError(err.message);
            password.value = "";
            password.focus();
          } else {
            finish(() => reject(err));
          }
        } finally {
          busy = false;
          ok.disabled = false;
          cancel.disabled = false;
        }
      };
      const onCancelClick = () => finish(() => resolve(null));
      /** @param {Event} ev Escape: cancels, except while the server is answering */
      const onEscape = (ev) => {
        if (busy) ev.preventDefault();
      };
      const onClose = () => finish(() => resolve(null));
      form.addEventListener("submit", onSubmit);
      cancel.addEventListener("click", onCancelClick);
      dialog.addEventListener("cancel", onEscape);
      dialog.addEventListener("close", onClose);
    });
  }
}

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
    /** @type {SignDialog | null} made when first needed (only clinicians sign) */
    this.signDialog = null;
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
    const submit = form.querySelector("button[type=submit]");
    try {
      if (kind === "note") {
        this.upsert(await this.api.createRecord(kind, body, true));
        form.reset();
        this.ui.status.textContent = `${KIND_LABEL[kind]} issued.`;
        return;
      }
      const signed = SIGNED[kind];
      this.signDialog ??= new SignDialog();
      const r = await this.signDialog.run(signed.title, (password) => this.api.createRecord(kind, body, true, { password }));
      if (submit instanceof HTMLElement) submit.focus();
      if (!r) {
        this.ui.status.textContent = "Not issued: signing was cancelled.";
        return;
      }
      this.upsert(r);
      form.reset();
      this.ui.status.textContent = signed.done;
    } catch (e) {
      if (submit instanceof HTMLElement) submit.focus();
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
        if (r.signature) li.append(el("p", { className: "record-signature", text: signatureText(r.signature) }));
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
