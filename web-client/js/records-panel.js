// Clinical records in the room: doctors and specialists write consultation notes, diagnosis
// reports and prescriptions, issued at once or saved as drafts (seen by the care team only)
// that their author edits and later signs and issues, from this page or after a reload (the
// server says which records are `yours`); everyone sees the records their role may read, with
// their status, live. An issued record is never edited: a correction is a new record that
// supersedes it. Issuing a diagnosis report or a prescription signs it in the clinician's
// account's name: a modal dialog asks for their password (or their signing PIN) first. Notes
// are issued without one.

import { ApiError, PIN_SHAPE } from "./api.js";
import { el, must, roleParam } from "./dom.js";
import { errorKey, errorKeyOf, showFormError } from "./errors.js";
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

/** Where the room page remembers whether this clinician confirms with their PIN. */
const SIGN_WITH_KEY = "huizhen.sign_with";

/** @returns {boolean} whether the dialog opens on the PIN (the clinician's last choice) */
function prefersPin() {
  try {
    return localStorage.getItem(SIGN_WITH_KEY) === "pin";
  } catch {
    return false;
  }
}

/** @param {boolean} pin */
function rememberPin(pin) {
  try {
    if (pin) localStorage.setItem(SIGN_WITH_KEY, "pin");
    else localStorage.removeItem(SIGN_WITH_KEY);
  } catch {
    // Storage refused (private mode): the choice lasts this dialog.
  }
}

/**
 * The modal dialog that asks the clinician to confirm a signature (join.html's #sign-dialog),
 * with their password or, if they set one in the console, their signing PIN. A wrong one shows
 * the server's answer and lets them try again; a PIN erased after too many wrong ones, or none
 * set, turns the dialog to the password.
 *
 * DOM contract (tests/browser relies on it): #sign-password in #sign-password-field, #sign-pin
 * in #sign-pin-field (one shown at a time), #sign-mode switches, #sign-error (`data-code`: the
 * server's error code, or `empty` / `pin_shape`), #sign-ok, #sign-cancel.
 */
class SignDialog {
  constructor() {
    this.ui = {
      dialog: must("#sign-dialog", HTMLDialogElement),
      form: must("#sign-form", HTMLFormElement),
      title: must("#sign-dialog-title", HTMLElement),
      password: must("#sign-password", HTMLInputElement),
      passwordField: must("#sign-password-field", HTMLElement),
      pin: must("#sign-pin", HTMLInputElement),
      pinField: must("#sign-pin-field", HTMLElement),
      mode: must("#sign-mode", HTMLButtonElement),
      error: must("#sign-error", HTMLElement),
      cancel: must("#sign-cancel", HTMLButtonElement),
      ok: must("#sign-ok", HTMLButtonElement),
    };
    this.withPin = prefersPin();
    this.ui.mode.addEventListener("click", () => {
      this.usePin(!this.withPin);
      this.showError(null);
      this.input().focus();
    });
  }

  /** @returns {HTMLInputElement} the field in use */
  input() {
    return this.withPin ? this.ui.pin : this.ui.password;
  }

  /** @param {boolean} pin */
  usePin(pin) {
    this.withPin = pin;
    rememberPin(pin);
    this.ui.pinField.hidden = !pin;
    this.ui.passwordField.hidden = pin;
    this.ui.password.required = !pin;
    this.ui.pin.required = pin;
    tr(this.ui.mode, pin ? "sign.use_password" : "sign.use_pin");
    this.ui.password.value = "";
    this.ui.pin.value = "";
  }

  /**
   * @param {MessageKey | null} key null hides it
   * @param {string} [code] the server's error code, or the client's check
   * @param {import("./i18n.js").Params} [params]
   */
  showError(key, code = "", params = {}) {
    showFormError(this.ui.error, key, code, params);
    this.input().setAttribute("aria-invalid", key === null ? "false" : "true");
  }

  /**
   * Asks for the password or the PIN and issues with it, until the server accepts it, the
   * clinician cancels, or the server refuses for another reason.
   * @param {MessageKey} title
   * @param {(confirm: import("./room-api.js").Confirmation) => Promise<RecordInfo>} issue
   * @returns {Promise<RecordInfo | null>} null when cancelled
   */
  run(title, issue) {
    const { dialog, form, cancel, ok, mode } = this.ui;
    tr(this.ui.title, title);
    this.usePin(this.withPin);
    this.showError(null);
    dialog.showModal();
    this.input().focus();
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
        this.ui.password.value = "";
        this.ui.pin.value = "";
        settle();
      };
      /** @param {SubmitEvent} ev */
      const onSubmit = async (ev) => {
        ev.preventDefault();
        if (busy) return;
        const field = this.input();
        const typed = field.value;
        if (typed === "") {
          this.showError(this.withPin ? "sign.enter_pin" : "records.enter_password", "empty");
          field.focus();
          return;
        }
        if (this.withPin && !PIN_SHAPE.test(typed)) {
          this.showError("sign.pin_shape", "pin_shape");
          field.focus();
          return;
        }
        busy = true;
        ok.disabled = true;
        cancel.disabled = true;
        mode.disabled = true;
        try {
          const record = await issue(this.withPin ? { pin: typed } : { password: typed });
          finish(() => resolve(record));
        } catch (err) {
          const code = err instanceof ApiError ? err.code : "";
          if (code === "wrong_password" || code === "too_many_attempts") {
            // A wrong password, or too many tries: said in the page's language; try again.
            this.showError(code === "wrong_password" ? "records.wrong_password" : errorKey(code), code);
          } else if (code === "wrong_pin" && err instanceof ApiError) {
            this.showError("sign.wrong_pin", code, { count: err.triesLeft ?? 0 });
          } else if (code === "pin_erased" || code === "no_signing_pin") {
            // No PIN to sign with any more (or ever): the password it is.
            this.usePin(false);
            this.showError(code === "pin_erased" ? "sign.pin_erased" : "sign.no_pin", code);
          } else {
            finish(() => reject(err));
            return;
          }
          this.input().value = "";
          this.input().focus();
        } finally {
          busy = false;
          ok.disabled = false;
          cancel.disabled = false;
          mode.disabled = false;
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
    /** @type {{id: string, kind: RecordInfo["kind"]} | null} the draft whose text is in its form */
    this.editing = null;
    for (const kind of KINDS) {
      const form = this.formOf(kind);
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        const body = bodyOf(kind, form);
        if (this.editing?.kind === kind) void this.issueEdited(this.editing.id, body, form);
        else void this.create(kind, body, form);
      });
      form.querySelector(".record-draft")?.addEventListener("click", () => {
        if (form.reportValidity()) void this.saveDraft(kind, bodyOf(kind, form), form);
      });
      form.querySelector(".record-stop-editing")?.addEventListener("click", () => this.stopEditing());
    }
  }

  /** @param {RecordInfo["kind"]} kind @returns {HTMLFormElement} */
  formOf(kind) {
    return kind === "diagnosis_report" ? this.ui.report : kind === "prescription" ? this.ui.rx : this.ui.note;
  }

  /**
   * Saves the form's text as a draft: a new one, or the draft being edited.
   * @param {RecordInfo["kind"]} kind
   * @param {Record<string, unknown>} body
   * @param {HTMLFormElement} form
   */
  async saveDraft(kind, body, form) {
    const editing = this.editing?.kind === kind ? this.editing.id : null;
    try {
      const r = editing ? await this.api.updateRecord(editing, body) : await this.api.createRecord(kind, body, false, { patient: this.patientFor() });
      this.upsert(r);
      this.stopEditing();
      form.reset();
      tr(this.ui.status, "records.draft_saved");
    } catch (e) {
      tr(this.ui.status, "records.draft_not_saved", { reason: { key: errorKeyOf(e) } });
    }
  }

  /**
   * Puts one of the clinician's drafts into its form, to change it, then save or issue it.
   * @param {RecordInfo} r
   */
  edit(r) {
    this.stopEditing();
    const form = this.formOf(r.kind);
    fillForm(r, form);
    this.editing = { id: r.id, kind: r.kind };
    const hint = form.querySelector(".record-editing");
    if (hint instanceof HTMLElement) {
      tr(hint, "records.editing", { at: { at: r.created_at_ms, style: "time" } });
      hint.hidden = false;
    }
    const stop = form.querySelector(".record-stop-editing");
    if (stop instanceof HTMLElement) stop.hidden = false;
    const details = form.closest("details");
    if (details) details.open = true;
    const first = form.querySelector("textarea, input");
    if (first instanceof HTMLElement) first.focus();
  }

  /** Leaves the draft being edited as it was saved last; its form is emptied. */
  stopEditing() {
    if (!this.editing) return;
    const form = this.formOf(this.editing.kind);
    this.editing = null;
    form.reset();
    const hint = form.querySelector(".record-editing");
    if (hint instanceof HTMLElement) {
      clearText(hint);
      hint.hidden = true;
    }
    const stop = form.querySelector(".record-stop-editing");
    if (stop instanceof HTMLElement) stop.hidden = true;
  }

  /**
   * Saves the draft being edited with the form's text, then signs and issues it.
   * @param {string} id
   * @param {Record<string, unknown>} body
   * @param {HTMLFormElement} form
   */
  async issueEdited(id, body, form) {
    try {
      this.upsert(await this.api.updateRecord(id, body));
    } catch (e) {
      tr(this.ui.status, "records.not_issued", { reason: { key: errorKeyOf(e) } });
      return;
    }
    const r = this.records.get(id);
    if (r) await this.issueDraft(r, form.querySelector("button[type=submit]"));
  }

  /**
   * Issues one of the clinician's drafts.
   * @param {RecordInfo} r
   * @param {Element | null} focusAfter where the keyboard goes back to after the dialog
   */
  async issueDraft(r, focusAfter) {
    const issued = await this.issueWith(r.kind, (confirm) => this.api.issueRecord(r.id, confirm), focusAfter);
    if (issued && this.editing?.id === r.id) this.stopEditing();
  }

  /**
   * Issues a record, made now or a draft, and says how it went: a note at once; a diagnosis
   * report or a prescription signed, through the signing dialog.
   * @param {RecordInfo["kind"]} kind
   * @param {(confirm?: import("./room-api.js").Confirmation) => Promise<RecordInfo>} issue the
   *   server's call, with the password or PIN when the kind is signed
   * @param {Element | null} focusAfter where the keyboard goes back to after the dialog
   * @returns {Promise<boolean>} whether it was issued
   */
  async issueWith(kind, issue, focusAfter) {
    const back = () => {
      if (focusAfter instanceof HTMLElement && focusAfter.isConnected) focusAfter.focus();
    };
    try {
      if (kind === "note") {
        this.upsert(await issue());
        tr(this.ui.status, "records.note_issued");
        return true;
      }
      const signed = SIGNED[kind];
      this.signDialog ??= new SignDialog();
      const r = await this.signDialog.run(signed.title, (confirm) => issue(confirm));
      back();
      if (!r) {
        tr(this.ui.status, "records.sign_cancelled");
        return false;
      }
      this.upsert(r);
      tr(this.ui.status, signed.done);
      return true;
    } catch (e) {
      back();
      tr(this.ui.status, "records.not_issued", { reason: { key: errorKeyOf(e) } });
      return false;
    }
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
    const patient = kind === "note" ? undefined : this.patientFor();
    const made = (/** @type {import("./room-api.js").Confirmation | undefined} */ confirm) => this.api.createRecord(kind, body, true, { confirm, patient });
    if (await this.issueWith(kind, made, form.querySelector("button[type=submit]"))) form.reset();
  }

  /**
   * A record as the server sent it. A view sent to the whole room does not say whose it is:
   * what this page was told before stays.
   * @param {RecordInfo} r
   */
  upsert(r) {
    const known = this.records.get(r.id);
    this.records.set(r.id, r.yours === undefined && known?.yours !== undefined ? { ...r, yours: known.yours } : r);
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
        if (this.clinician && r.status === "draft" && r.yours) li.append(this.draftActions(r));
        return li;
      }),
    );
    if (items.length === 0) this.ui.list.append(el("li", { className: "empty", i18n: "records.empty" }));
  }

  /**
   * "Edit" and "Sign and issue" for one of the clinician's own drafts.
   * @param {RecordInfo} r
   * @returns {HTMLElement}
   */
  draftActions(r) {
    const edit = el("button", { className: "btn btn-small", i18n: "records.edit_draft", attrs: { type: "button", "data-action": "edit" } });
    const issue = el("button", {
      className: "btn btn-small btn-primary",
      i18n: r.kind === "note" ? "records.issue_note_draft" : "records.issue_draft",
      attrs: { type: "button", "data-action": "issue" },
    });
    edit.addEventListener("click", () => this.edit(r));
    issue.addEventListener("click", () => void this.issueDraft(this.records.get(r.id) ?? r, issue));
    return el("div", { className: "actions record-draft-actions" }, edit, issue);
  }
}

/** The kinds of record, each with its form. @type {RecordInfo["kind"][]} */
const KINDS = ["diagnosis_report", "prescription", "note"];

/**
 * A form's text as the body of its kind of record.
 * @param {RecordInfo["kind"]} kind
 * @param {HTMLFormElement} form
 * @returns {Record<string, unknown>}
 */
function bodyOf(kind, form) {
  const f = new FormData(form);
  switch (kind) {
    case "diagnosis_report":
      return { findings: str(f, "findings"), impression: str(f, "impression"), recommendation: str(f, "recommendation") };
    case "prescription":
      return {
        items: [{
          medication: str(f, "medication"),
          dose: str(f, "dose"),
          route: str(f, "route"),
          frequency: str(f, "frequency"),
          duration: str(f, "duration"),
        }],
      };
    default:
      return { text: str(f, "text") };
  }
}

/**
 * Puts a draft's text into its form (`bodyOf` in reverse; a prescription's first item, the
 * only one the form holds).
 * @param {RecordInfo} r
 * @param {HTMLFormElement} form
 */
function fillForm(r, form) {
  const b = r.body;
  /** @type {Record<string, unknown>} */
  const fields = r.kind === "prescription" ? (Array.isArray(b.items) && b.items[0] ? b.items[0] : {}) : b;
  for (const [name, value] of Object.entries(fields)) {
    const field = form.elements.namedItem(name);
    if (field instanceof HTMLInputElement || field instanceof HTMLTextAreaElement) field.value = String(value ?? "");
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
