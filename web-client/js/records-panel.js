// Clinical records in the room: doctors and specialists write consultation notes, diagnosis
// reports and prescriptions, issued at once (the HTTP API also keeps drafts, which this panel
// lists for the care team but does not yet write or sign); everyone sees the records their
// role may read, with their status, live. An issued record is never edited: a correction is a
// new record that supersedes it. Issuing a diagnosis report or a prescription signs it in the
// clinician's account's name: a modal dialog asks for their password first. Notes are issued
// without one.

import { ApiError } from "./api.js";
import { el, must, roleParam } from "./dom.js";
import { errorKey, errorKeyOf } from "./errors.js";
import { clearText, tr } from "./i18n.js";

/** @typedef {import("./i18n.js").MessageKey} MessageKey */
/** @typedef {import("./i18n.js").Param} Param */

/** @typedef {import("./protocol.js").RecordInfo} RecordInfo */
/** @typedef {import("./protocol.js").RecordSignature} RecordSignature */
/** @typedef {import("./room-api.js").RoomApi} RoomApi */

/** @type {Record<RecordInfo["kind"], MessageKey>} */
export const KIND_LABEL = { note: "records.note_title", diagnosis_report: "records.report", prescription: "records.prescription" };

/**
 * The records that are signed as they are issued, and what the dialog and status then say.
 * @type {Record<"diagnosis_report" | "prescription", {title: MessageKey, done: MessageKey}>}
 */
const SIGNED = {
  diagnosis_report: { title: "records.sign_report", done: "records.report_signed" },
  prescription: { title: "records.sign_prescription", done: "records.prescription_signed" },
};

/**
 * "Signed by 赵敏 主任医师 · 县人民医院, <time>": who signed, as they stood at signing.
 * @param {RecordSignature} sig
 * @returns {{key: MessageKey, params: import("./i18n.js").Params}}
 */
export function signatureText(sig) {
  const who = [sig.title ? `${sig.name} ${sig.title}` : sig.name, sig.institution].filter((part) => part !== "").join(" · ");
  return { key: "records.signed_by", params: { who, at: { at: sig.at_ms, style: "datetime" } } };
}

/**
 * A record's status in words.
 * @param {string} status
 * @returns {Param}
 */
export function recordStatusParam(status) {
  switch (status) {
    case "draft":
      return { key: "records.status.draft" };
    case "issued":
      return { key: "records.status.issued" };
    case "superseded":
      return { key: "records.status.superseded" };
    default:
      return status;
  }
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

  /** @param {MessageKey | null} key null hides it */
  showError(key) {
    if (key) tr(this.ui.error, key);
    else clearText(this.ui.error);
    this.ui.error.hidden = key === null;
    this.ui.password.setAttribute("aria-invalid", key === null ? "false" : "true");
  }

  /**
   * Asks for the password and issues with it, until the server accepts it, the clinician
   * cancels, or the server refuses for another reason than the password.
   * @param {MessageKey} title
   * @param {(password: string) => Promise<RecordInfo>} issue
   * @returns {Promise<RecordInfo | null>} null when cancelled
   */
  run(title, issue) {
    const { dialog, form, password, cancel, ok } = this.ui;
    tr(this.ui.title, title);
    password.value = "";
    this.showError(null);
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
          this.showError("records.enter_password");
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
            // A wrong password, or too many: said in the page's language; try again.
            this.showError(err.code === "wrong_password" ? "records.wrong_password" : errorKey(err.code));
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
   * @param {() => {id: string, name: string}[]} patients the patients in the room now: a report
   *   or a prescription is about one of them (the server asks which when several came)
   */
  constructor(root, api, role, patients) {
    this.api = api;
    this.patients = patients;
    this.ui = {
      list: must(".record-list", HTMLElement, root),
      forms: must(".record-forms", HTMLElement, root),
      report: must(".report-form", HTMLFormElement, root),
      rx: must(".rx-form", HTMLFormElement, root),
      note: must(".note-form", HTMLFormElement, root),
      status: must(".record-status", HTMLElement, root),
      patientRow: must(".record-patient", HTMLElement, root),
      patient: must("#record-patient", HTMLSelectElement, root),
    };
    this.clinician = role === "doctor" || role === "specialist";
    this.ui.forms.hidden = !this.clinician;
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

  /** Offers the choice of patient when more than one is in the room; keeps the one chosen. */
  refreshPatients() {
    const now = this.patients();
    const chosen = this.ui.patient.value;
    this.ui.patient.replaceChildren(...now.map((p) => el("option", { user: p.name, attrs: { value: p.id } })));
    if (now.some((p) => p.id === chosen)) this.ui.patient.value = chosen;
    this.ui.patientRow.hidden = now.length < 2;
  }

  /** The patient a report or a prescription is about: the only one here, or the one chosen. */
  patientFor() {
    const now = this.patients();
    if (now.length === 1) return now[0].id;
    if (now.length > 1 && now.some((p) => p.id === this.ui.patient.value)) return this.ui.patient.value;
    return undefined;
  }

  async load() {
    try {
      for (const r of await this.api.records()) this.records.set(r.id, r);
      this.render();
    } catch {
      tr(this.ui.status, "records.load_failed");
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
        tr(this.ui.status, "records.note_issued");
        return;
      }
      const signed = SIGNED[kind];
      this.signDialog ??= new SignDialog();
      const patient = this.patientFor();
      const r = await this.signDialog.run(signed.title, (password) => this.api.createRecord(kind, body, true, { password, patient }));
      if (submit instanceof HTMLElement) submit.focus();
      if (!r) {
        tr(this.ui.status, "records.sign_cancelled");
        return;
      }
      this.upsert(r);
      form.reset();
      tr(this.ui.status, signed.done);
    } catch (e) {
      if (submit instanceof HTMLElement) submit.focus();
      tr(this.ui.status, "records.not_issued", { reason: { key: errorKeyOf(e) } });
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
          el("strong", { i18n: KIND_LABEL[r.kind] }),
          el("span", {
            className: "record-meta",
            i18n: "records.meta",
            params: {
              name: r.author_name,
              role: roleParam(r.author_role),
              status: recordStatusParam(r.status),
              corrected: r.superseded_by ? { key: "records.corrected" } : "",
            },
          }),
          el("p", { className: "record-body", ...recordText(r) }),
        );
        // Which patient it is about, for the care team (a consultation may see several one
        // after another); a patient reads only their own.
        if (this.clinician && r.subject_name) {
          li.insertBefore(el("p", { className: "record-subject", i18n: "records.about", params: { name: r.subject_name } }), li.lastChild);
        }
        if (r.signature) {
          const sig = signatureText(r.signature);
          li.append(el("p", { className: "record-signature", i18n: sig.key, params: sig.params }));
        }
        return li;
      }),
    );
    if (items.length === 0) this.ui.list.append(el("li", { className: "empty", i18n: "records.empty" }));
  }
}

/** @param {FormData} f @param {string} name */
function str(f, name) {
  const v = f.get(name);
  return typeof v === "string" ? v.trim() : "";
}

/**
 * A record's body as readable lines, as `el` options: the clinicians' own words, under the
 * catalogue's headings for a report.
 * @param {Pick<RecordInfo, "kind" | "body">} r
 * @returns {{i18n: MessageKey, params: import("./i18n.js").Params} | {user: string}}
 */
export function recordText(r) {
  const b = r.body;
  switch (r.kind) {
    case "note":
      return { user: String(b.text ?? "") };
    case "diagnosis_report":
      return {
        i18n: "records.report_body",
        params: { findings: String(b.findings ?? ""), impression: String(b.impression ?? ""), recommendation: String(b.recommendation ?? "") },
      };
    case "prescription":
      return {
        user: (Array.isArray(b.items) ? b.items : [])
          .map((/** @type {any} */ i) => `${i.medication}: ${i.dose}, ${i.route}, ${i.frequency}, ${i.duration}`)
          .join("\n"),
      };
  }
}
