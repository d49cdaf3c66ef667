// Consultation requests (referrals) in the clinicians' console: the boxes (my inbox, my
// department's inbox, sent), a form for a new request, and one request's details with its steps
// in a dialog. The rules are the server's (docs/protocol.md, "Referrals"): the dialog offers the
// steps the request's state allows the viewer's side, and a refused step shows the server's
// error by its code. Live notifications (./live-events.js) call `refresh` and `received`.
//
// DOM contract (tests/browser/referral-scenario.mjs relies on it): #referral-tab-{box} tabs
// (`aria-selected`) with a .tab-badge of unseen arrivals; li.referral-item (`data-referral-id`,
// `data-state`, `data-urgency`); #referral-notice (aria-live); #referral-form; the dialog
// #referral-dialog (`data-referral-id`, `data-state`) with #referral-step-error
// (`data-error-code`).

import { ApiError, enterRoom } from "./api.js";
import { el } from "./dom.js";
import { clearText, tr } from "./i18n.js";
import * as rapi from "./referral-api.js";
import { ConsentField, consentSection } from "./referral-consent.js";
import { ACCEPT, attachAll, documentsSection, failedParams, referralErrorKey } from "./referral-documents.js";

/** @typedef {import("./referral-api.js").Referral} Referral */
/** @typedef {import("./referral-api.js").Box} Box */
/** @typedef {import("./referral-api.js").Urgency} Urgency */
/** @typedef {import("./referral-api.js").Slot} Slot */
/** @typedef {import("./referral-api.js").Person} Person */
/** @typedef {import("./api.js").Account} Account */
/** @typedef {import("./i18n.js").MessageKey} MessageKey */
/** @typedef {import("./i18n.js").Param} Param */
/** @typedef {import("./i18n.js").Params} Params */

/** @type {Box[]} */
const BOXES = ["inbox", "department", "outbox"];

/** @type {Record<Box, MessageKey>} */
const BOX_LABEL = {
  inbox: "referral.box.inbox",
  department: "referral.box.department",
  outbox: "referral.box.outbox",
};

/** @type {Record<Box, MessageKey>} */
const BOX_EMPTY = {
  inbox: "referral.empty.inbox",
  department: "referral.empty.department",
  outbox: "referral.empty.outbox",
};

/** @type {Record<Urgency, MessageKey>} */
const URGENCY_LABEL = {
  routine: "referral.urgency.routine",
  urgent: "referral.urgency.urgent",
  emergency: "referral.urgency.emergency",
};

/** @type {Record<Urgency, number>} */
const URGENCY_RANK = { emergency: 0, urgent: 1, routine: 2 };

/** @type {Record<string, MessageKey>} */
const STATE_LABEL = {
  requested: "referral.state.requested",
  accepted: "referral.state.accepted",
  counter_proposed: "referral.state.counter_proposed",
  scheduled: "referral.state.scheduled",
  declined: "referral.state.declined",
  in_consultation: "referral.state.in_consultation",
  report_issued: "referral.state.report_issued",
  closed: "referral.state.closed",
  cancelled: "referral.state.cancelled",
};

/** @type {Record<string, MessageKey>} */
const ACTION_LABEL = {
  create: "referral.action.create",
  accept: "referral.action.accept",
  propose_time: "referral.action.propose_time",
  decline: "referral.action.decline",
  forward: "referral.action.forward",
  start: "referral.action.start",
  issue_report: "referral.action.issue_report",
  close: "referral.action.close",
  cancel: "referral.action.cancel",
};

/** The urgency as the live notice says it ("New consultation request (urgent)"). */
/** @type {Record<Urgency, MessageKey>} */
const URGENCY_NOTICE = {
  routine: "referral.notice_urgency.routine",
  urgent: "referral.notice_urgency.urgent",
  emergency: "referral.notice_urgency.emergency",
};

/**
 * Parts joined with " · ", as one message parameter.
 * @param {Param[]} parts
 * @returns {Param}
 */
function joinParams(parts) {
  /** @type {Param} */
  let all = parts[0] ?? "";
  for (const part of parts.slice(1)) all = { key: "console.joined", params: { a: all, b: part } };
  return all;
}

/**
 * A request's state as a message parameter (an unknown one, from a newer server, as it is).
 * @param {string} state
 * @returns {Param}
 */
function stateParam(state) {
  return Object.hasOwn(STATE_LABEL, state) ? { key: STATE_LABEL[state] } : state;
}

/**
 * A step's name as a message parameter.
 * @param {string} action
 * @returns {Param}
 */
function actionParam(action) {
  return Object.hasOwn(ACTION_LABEL, action) ? { key: ACTION_LABEL[action] } : action;
}

/**
 * @typedef {object} ReferralViewOptions
 * @property {HTMLElement} section the (empty) card the view fills
 * @property {Account} user the signed-in clinician
 * @property {(err: unknown) => MessageKey} explain the catalogue's words for a failure
 * @property {() => void} changed a request's step may have opened or moved a room: reload rooms
 */

/**
 * A time slot as a message parameter: its start in the page's language, and its length.
 * @param {Slot} slot
 * @returns {Param}
 */
function slotParam(slot) {
  return { key: "referral.slot", params: { at: { at: slot.start * 1000 }, minutes: slot.minutes } };
}

/** @param {Person | null | undefined} p */
function personText(p) {
  if (!p) return "";
  return [p.display_name, p.title, p.institution?.name].filter((part) => part).join(" · ");
}

/** @param {Referral} r */
function targetText(r) {
  const dept = r.target.department;
  const where = [dept.institution?.name, dept.name].filter((part) => part).join(" ");
  return r.target.specialist ? `${personText(r.target.specialist)} (${where})` : where;
}

/**
 * Local date and time inputs to Unix seconds (the inputs hold the browser's local time).
 * @param {string} value a datetime-local value, "YYYY-MM-DDTHH:MM"
 * @returns {number | null}
 */
export function localToUnix(value) {
  if (!value) return null;
  const ms = new Date(value).getTime();
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : null;
}

let nextId = 0;
/** @param {string} prefix */
function uid(prefix) {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/**
 * A labelled field.
 * @param {MessageKey} label
 * @param {HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement} control
 * @param {MessageKey} [hint]
 */
function field(label, control, hint) {
  if (!control.id) control.id = uid("rf");
  /** @type {HTMLElement[]} */
  const parts = [el("label", { i18n: label, attrs: { for: control.id } }), control];
  if (hint) {
    const hintId = uid("rf-hint");
    control.setAttribute("aria-describedby", hintId);
    parts.push(el("p", { className: "hint", i18n: hint, attrs: { id: hintId } }));
  }
  return el("div", { className: "field" }, ...parts);
}

/**
 * A time's inputs: local date and time, and length in minutes.
 * @param {MessageKey} legend
 * @param {Params} [legendParams]
 * @param {number} [minutes]
 */
function timeInputs(legend, legendParams, minutes = 30) {
  const start = el("input", { className: "input", attrs: { type: "datetime-local", step: "300" } });
  const length = el("input", { className: "input", attrs: { type: "number", min: "5", max: "240", step: "5", value: String(minutes) } });
  const group = el(
    "fieldset",
    { className: "time-row" },
    el("legend", { i18n: legend, params: legendParams }),
    field("referral.date_time", start),
    field("referral.length", length),
  );
  return {
    group,
    start,
    length,
    /** @returns {{start: number, minutes: number} | null} null when no time is given */
    value() {
      const s = localToUnix(start.value);
      if (s === null) return null;
      return { start: s, minutes: Number(length.value) || 30 };
    },
  };
}

export class ReferralView {
  notice = el("p", { className: "referral-notice", attrs: { id: "referral-notice", role: "status", "aria-live": "polite" } });
  newButton = el("button", { className: "btn btn-small btn-primary", i18n: "referral.new", attrs: { type: "button", "aria-expanded": "false", "aria-controls": "referral-form" } });
  reloadButton = el("button", { className: "btn btn-small", i18n: "referral.reload", label: "referral.reload_label", attrs: { type: "button" } });
  /** @type {Record<Box, HTMLButtonElement>} */
  tabs = /** @type {Record<Box, HTMLButtonElement>} */ ({});
  /** @type {Record<Box, HTMLElement>} */
  badges = /** @type {Record<Box, HTMLElement>} */ ({});
  status = el("p", { className: "hint", attrs: { role: "status" } });
  list = el("ul", { className: "referral-list" });
  panel = el("div", { attrs: { id: "referral-panel", role: "tabpanel", "aria-labelledby": "referral-tab-inbox" } }, this.status, this.list);
  // The form's fields.
  department = el("select", { attrs: { required: "" } });
  specialist = el("select");
  patientRef = el("input", { attrs: { type: "text", maxlength: "100", required: "", autocomplete: "off" } });
  reason = el("textarea", { attrs: { maxlength: "500", rows: "2", required: "" } });
  question = el("textarea", { attrs: { maxlength: "2000", rows: "4", required: "" } });
  urgency = el("select");
  times = [timeInputs("referral.proposed_n", { n: 1 })];
  files = el("input", { attrs: { type: "file", multiple: "", accept: ACCEPT, id: "referral-files" } });
  consent = new ConsentField();
  /** Each department's institution, to know when a request leaves the clinician's own. */
  /** @type {Map<string, string>} */
  departmentInstitution = new Map();
  formError = el("p", { className: "form-error", attrs: { role: "alert", id: "referral-form-error" } });
  sendButton = el("button", { className: "btn btn-primary", i18n: "referral.send", attrs: { type: "submit" } });
  // The dialog's parts.
  dialogTitle = el("h2", { attrs: { id: "referral-dialog-title" } });
  dialogBody = el("div", { className: "referral-detail" });
  stepError = el("p", { className: "form-error", attrs: { role: "alert", id: "referral-step-error" } });

  /** @param {ReferralViewOptions} opts */
  constructor(opts) {
    this.opts = opts;
    /** @type {Box} */
    this.box = "inbox";
    /** @type {Record<Box, Referral[]>} */
    this.lists = { inbox: [], department: [], outbox: [] };
    /** Requests that arrived live and are not opened yet. */
    this.unseen = new Set();
    /** @type {string | null} the request shown in the dialog */
    this.openId = null;
    /** @type {number | null} the version of the request the dialog shows */
    this.shownVersion = null;
    this.loading = false;
    this.again = false;
    this.form = this.buildForm();
    this.form.hidden = true;
    this.dialog = this.buildDialog();
    this.build();
  }

  build() {
    const section = this.opts.section;
    const titleId = "referrals-title";
    this.newButton.addEventListener("click", () => this.toggleForm());
    this.reloadButton.addEventListener("click", () => void this.refresh());

    const tablist = el("div", { className: "tabs referral-tabs", label: "referral.tabs", attrs: { role: "tablist" } });
    for (const box of BOXES) {
      const badge = el("span", { className: "tab-badge" });
      badge.hidden = true;
      const tab = el(
        "button",
        { className: "tab", attrs: { type: "button", role: "tab", id: `referral-tab-${box}`, "aria-controls": "referral-panel", "aria-selected": String(box === this.box) } },
        el("span", { i18n: BOX_LABEL[box] }),
        badge,
      );
      tab.addEventListener("click", () => this.select(box));
      tab.addEventListener("keydown", (ev) => {
        const i = BOXES.indexOf(box);
        const next = ev.key === "ArrowRight" ? BOXES[(i + 1) % 3] : ev.key === "ArrowLeft" ? BOXES[(i + 2) % 3] : null;
        if (next) {
          this.select(next);
          this.tabs[next].focus();
        }
      });
      this.tabs[box] = tab;
      this.badges[box] = badge;
      tablist.append(tab);
    }
    section.setAttribute("aria-labelledby", titleId);
    section.replaceChildren(
      el(
        "div",
        { className: "section-head" },
        el("h2", { i18n: "referral.title", attrs: { id: titleId } }),
        el("div", { className: "actions" }, this.newButton, this.reloadButton),
      ),
      this.notice,
      this.form,
      tablist,
      this.panel,
      this.dialog,
    );
    section.hidden = false;
  }

  /** Removes everything (sign-out). */
  destroy() {
    if (this.dialog.open) this.dialog.close();
    this.opts.section.replaceChildren();
    this.opts.section.hidden = true;
  }

  /** @param {Box} box */
  select(box) {
    this.box = box;
    for (const b of BOXES) this.tabs[b].setAttribute("aria-selected", String(b === box));
    this.panel.setAttribute("aria-labelledby", `referral-tab-${box}`);
    this.renderList();
  }

  /** Reloads every box (and the request shown, if any). Calls made meanwhile are joined. */
  async refresh() {
    if (this.loading) {
      this.again = true;
      return;
    }
    this.loading = true;
    try {
      do {
        this.again = false;
        if (!this.list.childElementCount) tr(this.status, "common.loading");
        try {
          const [inbox, department, outbox] = await Promise.all(BOXES.map((b) => rapi.referrals(b)));
          this.lists = { inbox, department, outbox };
          this.renderList();
        } catch (err) {
          tr(this.status, this.opts.explain(err));
        }
        // The request shown is read again when it changed (or left the lists: forwarded, taken
        // on by a colleague), not otherwise, so what is being typed in the dialog stays.
        const shown = this.openId;
        const listed = BOXES.flatMap((b) => this.lists[b]).find((r) => r.id === shown);
        if (shown && this.dialog.open && listed?.version !== this.shownVersion) await this.loadDetail(shown);
      } while (this.again);
    } finally {
      this.loading = false;
    }
  }

  /**
   * A live `referral_received`: a request arrived for this clinician or their department.
   * @param {string} id
   * @param {string} urgency
   */
  received(id, urgency) {
    this.unseen.add(id);
    const u = /** @type {Urgency} */ (Object.hasOwn(URGENCY_LABEL, urgency) ? urgency : "routine");
    tr(this.notice, "referral.received", { urgency: { key: URGENCY_NOTICE[u] } });
    this.notice.dataset.urgency = u;
    void this.refresh();
  }

  /**
   * A live `referral_changed`: a step on a request this clinician is on.
   * @param {string} id
   * @param {string} state
   */
  changed(id, state) {
    const known = BOXES.flatMap((b) => this.lists[b]).find((r) => r.id === id);
    const what = known ? known.reason.split("\n")[0] : "";
    if (what) tr(this.notice, "referral.changed_named", { what, state: stateParam(state) });
    else tr(this.notice, "referral.changed", { state: stateParam(state) });
    delete this.notice.dataset.urgency;
    void this.refresh();
  }

  /**
   * A live `referral_consent`: the requester recorded the patient's consent to sharing the
   * request's documents, or its withdrawal (the request's state is unchanged).
   * @param {string} id
   * @param {boolean} inForce
   */
  consentChanged(id, inForce) {
    const known = BOXES.flatMap((b) => this.lists[b]).find((r) => r.id === id);
    const what = known ? known.reason.split("\n")[0] : "";
    const key = inForce
      ? what ? "referral.consent_given_named" : "referral.consent_given"
      : what ? "referral.consent_withdrawn_named" : "referral.consent_withdrawn";
    tr(this.notice, key, { what });
    delete this.notice.dataset.urgency;
    void this.refresh();
  }

  renderList() {
    const items = [...this.lists[this.box]];
    // Open ones first, then emergency, urgent, routine (the server's order; kept if it changes).
    items.sort((a, b) => Number(b.open) - Number(a.open) || URGENCY_RANK[a.urgency] - URGENCY_RANK[b.urgency]);
    this.list.replaceChildren(...items.map((r) => this.renderItem(r)));
    if (items.length) clearText(this.status);
    else tr(this.status, BOX_EMPTY[this.box]);
    for (const box of BOXES) {
      const count = this.lists[box].filter((r) => this.unseen.has(r.id)).length;
      const badge = this.badges[box];
      // Read out as part of the tab's name: "My inbox 1 new".
      badge.replaceChildren(...(count ? [String(count), " ", el("span", { className: "visually-hidden", i18n: "referral.new_badge" })] : []));
      badge.hidden = count === 0;
    }
  }

  /** @param {Referral} r */
  renderItem(r) {
    const headingId = uid("referral");
    const first = r.reason.split("\n")[0];
    /** @type {Param[]} */
    const meta = [
      r.side === "requester" ? { key: "referral.to", params: { who: targetText(r) } } : { key: "referral.from", params: { who: personText(r.requester) } },
      { key: "console.patient_ref_of", params: { ref: r.patient_ref } },
    ];
    if (r.slot) meta.push({ key: r.state === "scheduled" || r.room_id ? "referral.time_of" : "referral.proposed_of", params: { slot: slotParam(r.slot) } });
    if (r.state_reason) meta.push({ key: "referral.reason_of", params: { reason: r.state_reason } });
    const open = el("button", { className: "btn btn-small", i18n: "referral.open", label: "referral.open_label", labelParams: { what: first }, attrs: { type: "button" } });
    open.addEventListener("click", () => void this.openDetail(r.id));
    const head = el(
      "div",
      { className: "room-head" },
      el("h3", { user: first, attrs: { id: headingId } }),
      el("span", { className: `urgency urgency-${r.urgency}`, i18n: URGENCY_LABEL[r.urgency] }),
      el("span", { className: `status referral-state state-${r.state}`, i18n: "common.param", params: { text: stateParam(r.state) } }),
    );
    if (this.unseen.has(r.id)) head.append(el("span", { className: "badge-new", i18n: "referral.new_mark" }));
    const item = el(
      "li",
      { className: `referral-item${r.urgent ? " referral-urgent" : ""}${r.open ? "" : " referral-done"}`, attrs: { "aria-labelledby": headingId } },
      head,
      el("p", { className: "hint", i18n: "common.param", params: { text: joinParams(meta) } }),
      el("div", { className: "actions" }, open),
    );
    item.dataset.referralId = r.id;
    item.dataset.state = r.state;
    item.dataset.urgency = r.urgency;
    return item;
  }

  // ----- a new request ------------------------------------------------------------------------

  toggleForm() {
    const show = this.form.hidden;
    this.form.hidden = !show;
    this.newButton.setAttribute("aria-expanded", String(show));
    if (show) {
      void this.loadDepartments();
      this.department.focus();
    }
  }

  buildForm() {
    for (const u of /** @type {Urgency[]} */ (["routine", "urgent", "emergency"])) {
      this.urgency.append(el("option", { i18n: URGENCY_LABEL[u], attrs: { value: u } }));
    }
    const timesBox = el("div", { className: "time-rows" }, this.times[0].group);
    const addTime = el("button", { className: "btn btn-small", i18n: "referral.add_time", attrs: { type: "button" } });
    addTime.addEventListener("click", () => {
      const n = this.times.length + 1;
      const t = timeInputs("referral.proposed_n", { n });
      this.times.push(t);
      timesBox.append(t.group);
      t.start.focus();
      addTime.hidden = this.times.length >= 5;
    });
    this.formError.hidden = true;
    const cancel = el("button", { className: "btn", i18n: "common.cancel", attrs: { type: "button" } });
    cancel.addEventListener("click", () => this.toggleForm());
    this.department.addEventListener("change", () => void this.loadSpecialists());
    const form = el(
      "form",
      { className: "form referral-form", label: "referral.form_label", attrs: { id: "referral-form" } },
      field("referral.department", this.department, "referral.department_hint"),
      field("referral.specialist", this.specialist),
      field("console.patient_ref", this.patientRef, "referral.patient_ref_hint"),
      field("referral.reason", this.reason),
      field("referral.question", this.question),
      field("referral.urgency", this.urgency),
      timesBox,
      el("div", { className: "actions" }, addTime),
      field("referral.docs.form_label", this.files, "referral.docs.form_hint"),
      this.consent.fieldset,
      this.formError,
      el("div", { className: "actions" }, this.sendButton, cancel),
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.send();
    });
    return form;
  }

  async loadDepartments() {
    if (this.department.options.length) return;
    try {
      const institutions = await rapi.institutions();
      this.department.append(el("option", { i18n: "referral.choose_department", attrs: { value: "" } }));
      for (const inst of institutions) {
        if (!inst.departments.length) continue;
        const group = el("optgroup", { attrs: { label: inst.name } });
        for (const d of inst.departments) {
          this.departmentInstitution.set(d.id, inst.id);
          group.append(el("option", { user: `${d.name} · ${inst.name}`, attrs: { value: d.id } }));
        }
        this.department.append(group);
      }
      this.loadSpecialists();
    } catch (err) {
      this.showFormError(err);
    }
  }

  async loadSpecialists() {
    const anyone = el("option", { i18n: "referral.anyone", attrs: { value: "" } });
    this.specialist.replaceChildren(anyone);
    const id = this.department.value;
    const institution = this.departmentInstitution.get(id);
    void this.consent.show(Boolean(institution) && institution !== this.opts.user.institution?.id).catch((err) => this.showFormError(err));
    if (!id) return;
    try {
      const people = await rapi.departmentClinicians(id);
      if (this.department.value !== id) return;
      for (const p of people) {
        if (p.id === this.opts.user.id) continue;
        const who = [p.display_name, p.title, p.specialty].filter((x) => x).join(" · ");
        const taking = p.accepts_referrals ? "referral.option_taking" : "referral.option_not_taking";
        this.specialist.append(el("option", { i18n: taking, params: { who }, attrs: { value: p.id } }));
      }
    } catch (err) {
      this.showFormError(err);
    }
  }

  /** @param {unknown} err */
  showFormError(err) {
    this.errorText(this.formError, err);
    this.formError.hidden = false;
    if (err instanceof ApiError) this.formError.dataset.errorCode = err.code;
  }

  /**
   * Puts a refusal's words into `node`: a refusal by the server with its code beside it (what
   * the other side or the help desk can look up), anything else as the console says it.
   * @param {HTMLElement} node
   * @param {unknown} err
   */
  errorText(node, err) {
    if (err instanceof ApiError && err.status !== 401 && err.status !== 0) {
      tr(node, "error.with_code", { text: { key: referralErrorKey(err.code, err.limit) }, code: err.code });
    } else {
      tr(node, this.opts.explain(err));
    }
  }

  async send() {
    this.formError.hidden = true;
    delete this.formError.dataset.errorCode;
    if (!this.department.value) {
      tr(this.formError, "referral.choose_department_first");
      this.formError.hidden = false;
      this.department.focus();
      return;
    }
    /** @type {{start: number, minutes: number}[]} */
    const times = [];
    for (const t of this.times) {
      const v = t.value();
      if (v) times.push(v);
    }
    /** @type {import("./referral-api.js").NewReferral} */
    const body = {
      target_department_id: this.department.value,
      patient_ref: this.patientRef.value.trim(),
      reason: this.reason.value.trim(),
      question: this.question.value.trim(),
      urgency: /** @type {Urgency} */ (this.urgency.value),
      proposed_times: times,
    };
    if (this.specialist.value) body.target_specialist_id = this.specialist.value;
    const attestation = this.consent.attestation();
    if (attestation) body.external_sharing_consent = attestation;
    const chosen = [...(this.files.files ?? [])];
    // Documents for another institution go only with the patient's consent (the server
    // refuses them otherwise): said before anything is sent.
    if (chosen.length && !this.consent.sharing()) {
      tr(this.formError, "referral.consent.needed_for_files");
      this.formError.hidden = false;
      this.consent.agreed.box.focus();
      return;
    }
    this.sendButton.disabled = true;
    try {
      const created = await rapi.createReferral(body);
      // The request is sent; its documents follow, one by one.
      const failed = await attachAll(created.id, chosen, (name, i, n) => tr(this.notice, "referral.docs.attaching", { name, i, n }));
      this.form.reset();
      this.consent.reset();
      for (const t of this.times.splice(1)) t.group.remove();
      this.toggleForm();
      if (failed.length) {
        tr(this.notice, "referral.docs.sent_some_failed", failedParams(failed));
      } else {
        tr(this.notice, chosen.length ? "referral.docs.sent_with" : "referral.sent", { n: chosen.length });
      }
      this.select("outbox");
      this.lists.outbox = [created, ...this.lists.outbox.filter((r) => r.id !== created.id)];
      this.renderList();
      void this.refresh();
    } catch (err) {
      this.showFormError(err);
    } finally {
      this.sendButton.disabled = false;
    }
  }

  // ----- one request --------------------------------------------------------------------------

  buildDialog() {
    this.stepError.hidden = true;
    const back = el("button", { className: "btn", i18n: "referral.back", attrs: { type: "button" } });
    back.addEventListener("click", () => this.dialog.close());
    const dialog = el(
      "dialog",
      { className: "dialog referral-dialog", attrs: { id: "referral-dialog", role: "dialog", "aria-labelledby": "referral-dialog-title", "aria-modal": "true" } },
      this.dialogTitle,
      this.stepError,
      this.dialogBody,
      el("div", { className: "dialog-actions" }, back),
    );
    dialog.addEventListener("close", () => {
      const id = this.openId;
      this.openId = null;
      // Back to the request's row in the list.
      if (id) /** @type {HTMLElement | null} */ (this.list.querySelector(`li[data-referral-id="${CSS.escape(id)}"] button`))?.focus();
    });
    return dialog;
  }

  /** @param {string} id */
  async openDetail(id) {
    this.openId = id;
    this.shownVersion = null;
    this.unseen.delete(id);
    this.renderList();
    this.stepError.hidden = true;
    // Loading: the dialog names no request and no state until this one is shown (the one
    // shown before may have had the same state).
    delete this.dialog.dataset.referralId;
    delete this.dialog.dataset.state;
    tr(this.dialogTitle, "referral.request");
    this.dialogBody.replaceChildren(el("p", { className: "hint", i18n: "common.loading" }));
    if (!this.dialog.open) this.dialog.showModal();
    await this.loadDetail(id);
  }

  /** @param {string} id */
  async loadDetail(id) {
    try {
      const r = await rapi.referral(id);
      if (this.openId === id) this.renderDetail(r);
    } catch (err) {
      this.showStepError(err);
    }
  }

  /** @param {unknown} err */
  showStepError(err) {
    this.errorText(this.stepError, err);
    this.stepError.hidden = false;
    if (err instanceof ApiError) this.stepError.dataset.errorCode = err.code;
    else delete this.stepError.dataset.errorCode;
  }

  /** @param {Referral} r */
  renderDetail(r) {
    this.shownVersion = r.version;
    this.dialog.dataset.referralId = r.id;
    this.dialog.dataset.state = r.state;
    tr(this.dialogTitle, "referral.request_named", { what: r.reason.split("\n")[0] });
    /** @type {[MessageKey, {i18n: MessageKey, params?: Params} | {user: string}][]} */
    const rows = [
      ["referral.fact.state", { i18n: "common.param", params: { text: stateParam(r.state) } }],
      ["referral.urgency", { i18n: URGENCY_LABEL[r.urgency] }],
      ["referral.fact.from", { user: personText(r.requester) }],
      ["referral.fact.to", { user: targetText(r) }],
      ["referral.fact.taken_by", { user: personText(r.receiver) || "—" }],
      ["console.patient_ref", { user: r.patient_ref }],
      ["referral.reason", { user: r.reason }],
      ["referral.question", { user: r.question }],
    ];
    if (r.slot) {
      const pending = r.state === "counter_proposed" || r.state === "requested";
      rows.push([pending ? "referral.fact.proposed_time" : "referral.fact.time", { i18n: "common.param", params: { text: slotParam(r.slot) } }]);
    }
    if (r.state_reason) rows.push(["referral.fact.reason_given", { user: r.state_reason }]);
    const facts = el("dl", { className: "referral-facts" });
    for (const [k, v] of rows) facts.append(el("dt", { i18n: k }), el("dd", v));

    const steps = el("ol", { className: "referral-events", label: "referral.history" });
    for (const e of r.events ?? []) {
      /** @type {Param[]} */
      const detail = [personText(e.actor)];
      if (e.detail?.slot) detail.push(slotParam(e.detail.slot));
      if (e.detail?.reason) detail.push(String(e.detail.reason));
      steps.append(
        el(
          "li",
          {},
          el("span", { className: "event-at", time: e.at * 1000 }),
          " ",
          el("span", { className: "member-name", i18n: "common.param", params: { text: actionParam(e.action) } }),
          " ",
          el("span", { i18n: "referral.event", params: { detail: joinParams(detail), state: stateParam(e.to_state) } }),
        ),
      );
    }
    const documents = documentsSection(r, {
      onError: (err) => this.showStepError(err),
      reload: (id) => this.loadDetail(id),
    });
    const consent = consentSection(r, {
      onError: (err) => this.showStepError(err),
      show: (after) => {
        this.stepError.hidden = true;
        this.renderDetail(after);
      },
    });
    this.dialogBody.replaceChildren(
      facts,
      consent,
      documents,
      this.renderSteps(r),
      el("h3", { i18n: "referral.history" }),
      steps,
    );
  }

  /**
   * Forwarding a request within its department: to a colleague, or to the department as a
   * whole; when `covering` for an away specialist, to oneself too, and open at once.
   * @param {Referral} r
   * @param {boolean} covering
   * @returns {HTMLElement}
   */
  forwardStep(r, covering) {
    const who = el("select");
    who.append(el("option", { i18n: "referral.whole_department", attrs: { value: "" } }));
    const named = r.target.specialist?.id;
    void rapi
      .departmentClinicians(r.target.department.id)
      .then((people) => {
        for (const p of people) {
          if (p.id === named || (p.id === this.opts.user.id && !covering)) continue;
          who.append(el("option", { user: [p.display_name, p.title].filter((x) => x).join(" · "), attrs: { value: p.id } }));
        }
      })
      .catch((err) => this.showStepError(err));
    const send = el("button", { className: covering ? "btn btn-primary" : "btn", i18n: "referral.forward", attrs: { type: "button" } });
    send.addEventListener("click", () => void this.step(r, "forward", () => ({ specialist_id: who.value || null }), send));
    const details = el("details", { className: "step-more" }, el("summary", { i18n: "referral.forward_summary" }), field("referral.forward_to", who), send);
    details.open = covering;
    return details;
  }

  /**
   * The steps the request's state allows the viewer's side (docs/protocol.md, "States and
   * steps"); the server decides all the same.
   * @param {Referral} r
   */
  renderSteps(r) {
    const box = el("div", { className: "referral-steps" });
    const mine = r.side;
    const receiver = mine === "receiver";
    const s = r.state;
    if (r.covering) {
      // Its specialist is away: a colleague of the department passes it on, and that is all.
      box.append(el("p", { className: "hint covering-hint", i18n: "referral.covering", params: { who: personText(r.target.specialist) } }));
      box.append(this.forwardStep(r, true));
      return box;
    }
    const theirProposal = s === "counter_proposed" && r.state_by !== mine && r.slot;

    if (r.room_id && (s === "scheduled" || s === "in_consultation" || s === "report_issued")) {
      const roomId = r.room_id;
      const enter = el("button", { className: "btn btn-primary", i18n: "console.enter", attrs: { type: "button" } });
      enter.addEventListener("click", async () => {
        enter.disabled = true;
        try {
          const entry = await enterRoom(roomId);
          location.assign(`/join#${entry.token}`);
        } catch (err) {
          this.showStepError(err);
          enter.disabled = false;
        }
      });
      box.append(el("div", { className: "actions" }, enter));
    }

    const buttons = el("div", { className: "actions" });
    /**
     * @param {MessageKey} label
     * @param {Params | undefined} params
     * @param {Parameters<typeof rapi.referralStep>[1]} action
     * @param {() => Record<string, unknown> | undefined | null} body null: not sent (invalid)
     * @param {string} [cls]
     */
    const stepButton = (label, params, action, body, cls = "btn") => {
      const b = el("button", { className: cls, i18n: label, params, attrs: { type: "button" } });
      b.addEventListener("click", () => void this.step(r, action, body, b));
      return b;
    };

    // Accepting a time proposed: the requester's proposed times (receiver, not yet scheduled),
    // or the other side's counter-proposal.
    if (receiver && s === "requested") {
      for (const t of r.proposed_times ?? []) {
        buttons.append(stepButton("referral.accept_time", { slot: slotParam(t) }, "accept", () => ({ start: t.start, minutes: t.minutes }), "btn btn-primary"));
      }
      buttons.append(stepButton("referral.accept_later", undefined, "accept", () => undefined));
    }
    if (theirProposal && r.slot) {
      buttons.append(stepButton("referral.agree_time", { slot: slotParam(r.slot) }, "accept", () => undefined, "btn btn-primary"));
    }
    if (s === "scheduled") buttons.append(stepButton("referral.start", undefined, "start", () => undefined));
    if (s === "report_issued") buttons.append(stepButton("referral.close", undefined, "close", () => undefined));
    if (buttons.childElementCount) box.append(buttons);

    // A time of one's own: propose it (or, for the receiver of an accepted request, agree it).
    const canPropose = s === "scheduled" || s === "counter_proposed" || s === "accepted" || (receiver && s === "requested");
    if (canPropose) {
      const t = timeInputs("referral.another_time");
      t.group.classList.add("step-time");
      const row = el("div", { className: "actions" });
      const need = () => {
        const v = t.value();
        if (!v) {
          tr(this.stepError, "referral.enter_time");
          this.stepError.hidden = false;
          t.start.focus();
        }
        return v;
      };
      row.append(stepButton("referral.propose", undefined, "propose", need));
      if (receiver && s === "accepted") row.append(stepButton("referral.accept_at", undefined, "accept", need));
      box.append(t.group, row);
    }

    // Forwarding: to a colleague of the department, or back to the department as a whole.
    if (receiver && s === "requested") box.append(this.forwardStep(r, false));

    // Declining (receiver) or cancelling (requester), with a reason.
    const canDecline = receiver && (s === "requested" || s === "accepted" || s === "counter_proposed" || s === "scheduled");
    const canCancel = !receiver && (s === "requested" || s === "accepted" || s === "counter_proposed" || s === "scheduled");
    if (canDecline || canCancel) {
      const reason = el("textarea", { attrs: { maxlength: "500", rows: "2" } });
      /** @type {MessageKey} */
      const label = canDecline ? "referral.decline" : "referral.cancel";
      box.append(
        el(
          "details",
          { className: "step-more" },
          el("summary", { i18n: "referral.more", params: { what: { key: label } } }),
          field("referral.reason_visible", reason),
          stepButton(label, undefined, canDecline ? "decline" : "cancel", () => ({ reason: reason.value.trim() }), "btn btn-danger"),
        ),
      );
    }
    // A consultation that ended without a report (the patient did not come): either side
    // closes the request, saying why.
    if (s === "in_consultation") {
      const reason = el("textarea", { attrs: { maxlength: "500", rows: "2" } });
      box.append(
        el(
          "details",
          { className: "step-more" },
          el("summary", { i18n: "referral.more", params: { what: { key: "referral.close_without_report" } } }),
          field("referral.reason_visible", reason),
          stepButton("referral.close_without_report", undefined, "close", () => ({ reason: reason.value.trim() }), "btn btn-danger"),
        ),
      );
    }
    if (!box.childElementCount) box.append(el("p", { className: "hint", i18n: r.open ? "referral.waiting_other" : "referral.finished" }));
    return box;
  }

  /**
   * Takes a step and shows the request after it, or the refusal by its code.
   * @param {Referral} r
   * @param {Parameters<typeof rapi.referralStep>[1]} action
   * @param {() => Record<string, unknown> | undefined | null} makeBody
   * @param {HTMLButtonElement} button
   */
  async step(r, action, makeBody, button) {
    this.stepError.hidden = true;
    delete this.stepError.dataset.errorCode;
    const body = makeBody();
    if (body === null) return;
    button.disabled = true;
    try {
      const after = await rapi.referralStep(r.id, action, body);
      if (this.openId === r.id) this.renderDetail(after);
      tr(this.notice, "referral.step_done", { action: actionParam(action === "propose" ? "propose_time" : action), state: stateParam(after.state) });
      this.opts.changed();
      void this.refresh();
      if (action === "forward") this.dialog.close();
    } catch (err) {
      this.showStepError(err);
      button.disabled = false;
      // Someone else's step won: show the request as it is now.
      if (err instanceof ApiError && err.code === "conflict") await this.loadDetail(r.id);
    }
  }
}
