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
import * as rapi from "./referral-api.js";

/** @typedef {import("./referral-api.js").Referral} Referral */
/** @typedef {import("./referral-api.js").Box} Box */
/** @typedef {import("./referral-api.js").Urgency} Urgency */
/** @typedef {import("./referral-api.js").Slot} Slot */
/** @typedef {import("./referral-api.js").Person} Person */
/** @typedef {import("./api.js").Account} Account */

/**
 * Both languages, as the console's bilingual strings are written: Chinese first.
 * @param {string} zh
 * @param {string} en
 */
export function bi(zh, en) {
  return `${zh} · ${en}`;
}

/** @type {Box[]} */
const BOXES = ["inbox", "department", "outbox"];

const BOX_LABEL = {
  inbox: bi("我的收件箱", "My inbox"),
  department: bi("科室收件箱", "Department inbox"),
  outbox: bi("已发出", "Sent"),
};

const BOX_EMPTY = {
  inbox: bi("没有给您的会诊申请", "No requests addressed to you."),
  department: bi("科室没有待接的会诊申请", "No requests waiting for your department."),
  outbox: bi("您还没有发出会诊申请", "You have not sent any requests."),
};

/** @type {Record<Urgency, string>} */
const URGENCY_LABEL = {
  routine: bi("常规", "Routine"),
  urgent: bi("紧急", "Urgent"),
  emergency: bi("急诊", "Emergency"),
};

/** @type {Record<Urgency, number>} */
const URGENCY_RANK = { emergency: 0, urgent: 1, routine: 2 };

/** @type {Record<string, string>} */
const STATE_LABEL = {
  requested: bi("待接收", "Requested"),
  accepted: bi("已接收，待定时间", "Accepted, time to agree"),
  counter_proposed: bi("已提议新时间", "New time proposed"),
  scheduled: bi("已预约", "Scheduled"),
  declined: bi("已拒绝", "Declined"),
  in_consultation: bi("会诊中", "In consultation"),
  report_issued: bi("已出报告", "Report issued"),
  closed: bi("已结案", "Closed"),
  cancelled: bi("已撤销", "Cancelled"),
};

/** @type {Record<string, string>} */
const ACTION_LABEL = {
  create: bi("发出申请", "Requested"),
  accept: bi("接收", "Accepted"),
  propose_time: bi("提议时间", "Proposed a time"),
  decline: bi("拒绝", "Declined"),
  forward: bi("转交", "Forwarded"),
  start: bi("开始会诊", "Started"),
  issue_report: bi("出具报告", "Report issued"),
  close: bi("结案", "Closed"),
  cancel: bi("撤销", "Cancelled"),
};

/**
 * What a refused step means, by the server's stable code (docs/protocol.md, "Referrals"); the
 * server's message is for developers. Unknown codes fall back to the console's `explain`.
 * @type {Record<string, string>}
 */
const ERROR_TEXT = {
  invalid_request: bi("请求格式不正确", "The request was not understood."),
  field_empty: bi("请填写所有必填项", "Fill in every required field."),
  field_too_long: bi("内容过长", "A field is too long."),
  hidden_characters: bi("内容含有不允许的隐藏字符", "A field contains hidden or control characters."),
  too_many_slots: bi("最多建议 5 个时间", "Propose at most 5 times."),
  duplicate_slot: bi("建议的时间重复", "The same time is proposed twice."),
  slot_in_past: bi("该时间已过，请选择将来的时间", "That time has passed: choose a time in the future."),
  slot_too_far: bi("时间不能超过一年以后", "That time is more than a year ahead."),
  bad_duration: bi("时长须在 5 到 240 分钟之间", "The length must be 5 to 240 minutes."),
  slot_required: bi("请给出会诊时间", "Give a time for the consultation."),
  slot_mismatch: bi("只能接受对方提议的时间", "Only the time proposed can be accepted."),
  reason_required: bi("请填写原因", "Give a reason."),
  reason_too_long: bi("原因过长（最多 500 字）", "The reason is too long (500 characters at most)."),
  forward_to_same_target: bi("申请已发给此人", "The request is already addressed there."),
  forward_outside_department: bi("只能转给本科室的医生", "Forward only within the department."),
  unknown_department: bi("没有这个科室", "No such department."),
  not_in_department: bi("该医生不属于此科室", "That clinician is not in the department."),
  self_referral: bi("不能向自己发出申请", "You cannot address a request to yourself."),
  forbidden: bi("您的账户不能执行此操作", "Your account may not do this."),
  wrong_side: bi("这一步应由对方执行", "This step is for the other side."),
  not_found: bi("找不到该申请", "The request could not be found."),
  not_now: bi("申请当前的状态不允许这一步", "The request's state does not allow this now."),
  conflict: bi("别人刚刚处理了该申请，已重新载入", "Someone else just took a step on it: reloaded."),
};

/**
 * @typedef {object} ReferralViewOptions
 * @property {HTMLElement} section the (empty) card the view fills
 * @property {Account} user the signed-in clinician
 * @property {(err: unknown) => string} explain the console's sentence for a failure
 * @property {() => void} changed a request's step may have opened or moved a room: reload rooms
 */

/** @param {number} unix */
export function dayTime(unix) {
  const d = new Date(unix * 1000);
  const pad = (/** @type {number} */ n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** @param {Slot} slot */
function slotText(slot) {
  return `${dayTime(slot.start)} (${slot.minutes} ${bi("分钟", "min")})`;
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
 * @param {string} label
 * @param {HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement} control
 * @param {string} [hint]
 */
function field(label, control, hint) {
  if (!control.id) control.id = uid("rf");
  /** @type {HTMLElement[]} */
  const parts = [el("label", { text: label, attrs: { for: control.id } }), control];
  if (hint) {
    const hintId = uid("rf-hint");
    control.setAttribute("aria-describedby", hintId);
    parts.push(el("p", { className: "hint", text: hint, attrs: { id: hintId } }));
  }
  return el("div", { className: "field" }, ...parts);
}

/**
 * A time's inputs: local date and time, and length in minutes.
 * @param {string} legend
 * @param {number} [minutes]
 */
function timeInputs(legend, minutes = 30) {
  const start = el("input", { className: "input", attrs: { type: "datetime-local", step: "300" } });
  const length = el("input", { className: "input", attrs: { type: "number", min: "5", max: "240", step: "5", value: String(minutes) } });
  const group = el(
    "fieldset",
    { className: "time-row" },
    el("legend", { text: legend }),
    field(bi("日期和时间", "Date and time"), start),
    field(bi("时长（分钟）", "Length (minutes)"), length),
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
  newButton = el("button", { className: "btn btn-small btn-primary", text: bi("新会诊申请", "New request"), attrs: { type: "button", "aria-expanded": "false", "aria-controls": "referral-form" } });
  reloadButton = el("button", { className: "btn btn-small", text: bi("重新载入", "Reload"), attrs: { type: "button", "aria-label": bi("重新载入会诊申请", "Reload requests") } });
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
  times = [timeInputs(bi("建议时间 1", "Proposed time 1"))];
  formError = el("p", { className: "form-error", attrs: { role: "alert", id: "referral-form-error" } });
  sendButton = el("button", { className: "btn btn-primary", text: bi("发送申请", "Send request"), attrs: { type: "submit" } });
  // The dialog's parts.
  dialogTitle = el("h2", { text: "", attrs: { id: "referral-dialog-title" } });
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

    const tablist = el("div", { className: "tabs referral-tabs", attrs: { role: "tablist", "aria-label": bi("会诊申请", "Requests") } });
    for (const box of BOXES) {
      const badge = el("span", { className: "tab-badge" });
      badge.hidden = true;
      const tab = el(
        "button",
        { className: "tab", attrs: { type: "button", role: "tab", id: `referral-tab-${box}`, "aria-controls": "referral-panel", "aria-selected": String(box === this.box) } },
        el("span", { text: BOX_LABEL[box] }),
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
        el("h2", { text: bi("会诊申请", "Consultation requests"), attrs: { id: titleId } }),
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
        if (!this.list.childElementCount) this.status.textContent = bi("正在载入…", "Loading…");
        try {
          const [inbox, department, outbox] = await Promise.all(BOXES.map((b) => rapi.referrals(b)));
          this.lists = { inbox, department, outbox };
          this.renderList();
        } catch (err) {
          this.status.textContent = this.opts.explain(err);
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
    this.notice.textContent = bi(`收到新的会诊申请（${URGENCY_LABEL[u].split(" · ")[0]}）`, `New consultation request (${URGENCY_LABEL[u].split(" · ")[1].toLowerCase()})`);
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
    const label = STATE_LABEL[state] ?? state;
    this.notice.textContent = bi(`会诊申请状态更新：${label.split(" · ")[0]}`, `Request ${what ? `“${what}” ` : ""}updated: ${label.split(" · ").pop()}`);
    delete this.notice.dataset.urgency;
    void this.refresh();
  }

  renderList() {
    const items = [...this.lists[this.box]];
    // Open ones first, then emergency, urgent, routine (the server's order; kept if it changes).
    items.sort((a, b) => Number(b.open) - Number(a.open) || URGENCY_RANK[a.urgency] - URGENCY_RANK[b.urgency]);
    this.list.replaceChildren(...items.map((r) => this.renderItem(r)));
    this.status.textContent = items.length ? "" : BOX_EMPTY[this.box];
    for (const box of BOXES) {
      const count = this.lists[box].filter((r) => this.unseen.has(r.id)).length;
      const badge = this.badges[box];
      // Read out as part of the tab's name: "My inbox 1 new".
      badge.replaceChildren(...(count ? [String(count), el("span", { className: "visually-hidden", text: ` ${bi("个新申请", "new")}` })] : []));
      badge.hidden = count === 0;
    }
  }

  /** @param {Referral} r */
  renderItem(r) {
    const headingId = uid("referral");
    const first = r.reason.split("\n")[0];
    const who = r.side === "requester" ? bi("发给", "To") + ` ${targetText(r)}` : bi("来自", "From") + ` ${personText(r.requester)}`;
    const meta = [who, `${bi("患者编号", "Patient ref.")} ${r.patient_ref}`];
    if (r.slot) meta.push(`${r.state === "scheduled" || r.room_id ? bi("时间", "Time") : bi("提议时间", "Proposed")} ${slotText(r.slot)}`);
    if (r.state_reason) meta.push(`${bi("原因", "Reason")}: ${r.state_reason}`);
    const open = el("button", { className: "btn btn-small", text: bi("查看", "Open"), attrs: { type: "button", "aria-label": `${bi("查看申请", "Open request")}: ${first}` } });
    open.addEventListener("click", () => void this.openDetail(r.id));
    const head = el(
      "div",
      { className: "room-head" },
      el("h3", { text: first, attrs: { id: headingId } }),
      el("span", { className: `urgency urgency-${r.urgency}`, text: URGENCY_LABEL[r.urgency] }),
      el("span", { className: `status referral-state state-${r.state}`, text: STATE_LABEL[r.state] ?? r.state }),
    );
    if (this.unseen.has(r.id)) head.append(el("span", { className: "badge-new", text: bi("新", "New") }));
    const item = el(
      "li",
      { className: `referral-item${r.urgent ? " referral-urgent" : ""}${r.open ? "" : " referral-done"}`, attrs: { "aria-labelledby": headingId } },
      head,
      el("p", { className: "hint", text: meta.join(" · ") }),
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
      this.urgency.append(el("option", { text: URGENCY_LABEL[u], attrs: { value: u } }));
    }
    const timesBox = el("div", { className: "time-rows" }, this.times[0].group);
    const addTime = el("button", { className: "btn btn-small", text: bi("再加一个时间", "Add another time"), attrs: { type: "button" } });
    addTime.addEventListener("click", () => {
      const n = this.times.length + 1;
      const t = timeInputs(bi(`建议时间 ${n}`, `Proposed time ${n}`));
      this.times.push(t);
      timesBox.append(t.group);
      t.start.focus();
      addTime.hidden = this.times.length >= 5;
    });
    this.formError.hidden = true;
    const cancel = el("button", { className: "btn", text: bi("取消", "Cancel"), attrs: { type: "button" } });
    cancel.addEventListener("click", () => this.toggleForm());
    this.department.addEventListener("change", () => void this.loadSpecialists());
    const form = el(
      "form",
      { className: "form referral-form", attrs: { id: "referral-form", "aria-label": bi("新会诊申请", "New consultation request") } },
      field(bi("科室", "Department"), this.department, bi("网络内各医院的科室", "Departments of every institution in the network.")),
      field(bi("指定专家（可选）", "Specialist (optional)"), this.specialist),
      field(bi("患者编号", "Patient reference"), this.patientRef, bi("病历号等编号，不要填写姓名或身份证号", "A record number: never a name or an identity number.")),
      field(bi("申请原因", "Reason"), this.reason),
      field(bi("会诊问题", "Question"), this.question),
      field(bi("紧急程度", "Urgency"), this.urgency),
      timesBox,
      el("div", { className: "actions" }, addTime),
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
      this.department.append(el("option", { text: bi("请选择科室", "Choose a department"), attrs: { value: "" } }));
      for (const inst of institutions) {
        if (!inst.departments.length) continue;
        const group = el("optgroup", { attrs: { label: inst.name } });
        for (const d of inst.departments) group.append(el("option", { text: `${d.name} · ${inst.name}`, attrs: { value: d.id } }));
        this.department.append(group);
      }
      this.loadSpecialists();
    } catch (err) {
      this.showFormError(err);
    }
  }

  async loadSpecialists() {
    const anyone = el("option", { text: bi("科室任何医生", "Anyone in the department"), attrs: { value: "" } });
    this.specialist.replaceChildren(anyone);
    const id = this.department.value;
    if (!id) return;
    try {
      const people = await rapi.departmentClinicians(id);
      if (this.department.value !== id) return;
      for (const p of people) {
        if (p.id === this.opts.user.id) continue;
        const taking = p.accepts_referrals ? bi("接受会诊", "taking referrals") : bi("暂不接受会诊", "not taking referrals");
        this.specialist.append(el("option", { text: [p.display_name, p.title, p.specialty, taking].filter((x) => x).join(" · "), attrs: { value: p.id } }));
      }
    } catch (err) {
      this.showFormError(err);
    }
  }

  /** @param {unknown} err */
  showFormError(err) {
    const text = this.errorText(err);
    this.formError.textContent = text;
    this.formError.hidden = text === "";
    if (err instanceof ApiError) this.formError.dataset.errorCode = err.code;
  }

  /** @param {unknown} err */
  errorText(err) {
    if (err instanceof ApiError && err.status !== 401 && err.status !== 0 && Object.hasOwn(ERROR_TEXT, err.code)) {
      return `${ERROR_TEXT[err.code]} (${err.code})`;
    }
    return this.opts.explain(err);
  }

  async send() {
    this.formError.hidden = true;
    delete this.formError.dataset.errorCode;
    if (!this.department.value) {
      this.formError.textContent = bi("请选择科室", "Choose a department.");
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
    this.sendButton.disabled = true;
    try {
      const created = await rapi.createReferral(body);
      this.form.reset();
      for (const t of this.times.splice(1)) t.group.remove();
      this.toggleForm();
      this.notice.textContent = bi("会诊申请已发出", "Request sent.");
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
    const back = el("button", { className: "btn", text: bi("返回列表", "Back to the list"), attrs: { type: "button" } });
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
    this.dialogTitle.textContent = bi("会诊申请", "Consultation request");
    this.dialogBody.replaceChildren(el("p", { className: "hint", text: bi("正在载入…", "Loading…") }));
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
    const text = this.errorText(err);
    this.stepError.textContent = text;
    this.stepError.hidden = text === "";
    if (err instanceof ApiError) this.stepError.dataset.errorCode = err.code;
    else delete this.stepError.dataset.errorCode;
  }

  /** @param {Referral} r */
  renderDetail(r) {
    this.shownVersion = r.version;
    this.dialog.dataset.referralId = r.id;
    this.dialog.dataset.state = r.state;
    this.dialogTitle.textContent = `${bi("会诊申请", "Consultation request")}: ${r.reason.split("\n")[0]}`;
    /** @type {[string, string][]} */
    const rows = [
      [bi("状态", "State"), STATE_LABEL[r.state] ?? r.state],
      [bi("紧急程度", "Urgency"), URGENCY_LABEL[r.urgency]],
      [bi("申请人", "From"), personText(r.requester)],
      [bi("发给", "To"), targetText(r)],
      [bi("接收人", "Taken on by"), personText(r.receiver) || "—"],
      [bi("患者编号", "Patient reference"), r.patient_ref],
      [bi("申请原因", "Reason"), r.reason],
      [bi("会诊问题", "Question"), r.question],
    ];
    if (r.slot) {
      const pending = r.state === "counter_proposed" || r.state === "requested";
      rows.push([pending ? bi("提议的时间", "Proposed time") : bi("会诊时间", "Time"), slotText(r.slot)]);
    }
    if (r.state_reason) rows.push([bi("原因", "Reason given"), r.state_reason]);
    const facts = el("dl", { className: "referral-facts" });
    for (const [k, v] of rows) facts.append(el("dt", { text: k }), el("dd", { text: v }));

    const steps = el("ol", { className: "referral-events", attrs: { "aria-label": bi("经过", "History") } });
    for (const e of r.events ?? []) {
      const detail = [];
      if (e.detail?.slot) detail.push(slotText(e.detail.slot));
      if (e.detail?.reason) detail.push(String(e.detail.reason));
      steps.append(
        el(
          "li",
          {},
          el("span", { className: "event-at", text: dayTime(e.at) }),
          " ",
          el("span", { className: "member-name", text: ACTION_LABEL[e.action] ?? e.action }),
          ` ${personText(e.actor)}${detail.length ? ` · ${detail.join(" · ")}` : ""} → ${STATE_LABEL[e.to_state] ?? e.to_state}`,
        ),
      );
    }
    this.dialogBody.replaceChildren(
      facts,
      this.renderSteps(r),
      el("h3", { text: bi("经过", "History") }),
      steps,
    );
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
    const theirProposal = s === "counter_proposed" && r.state_by !== mine && r.slot;

    if (r.room_id && (s === "scheduled" || s === "in_consultation" || s === "report_issued")) {
      const roomId = r.room_id;
      const enter = el("button", { className: "btn btn-primary", text: bi("进入会诊", "Enter consultation"), attrs: { type: "button" } });
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
     * @param {string} label
     * @param {Parameters<typeof rapi.referralStep>[1]} action
     * @param {() => Record<string, unknown> | undefined | null} body null: not sent (invalid)
     * @param {string} [cls]
     */
    const stepButton = (label, action, body, cls = "btn") => {
      const b = el("button", { className: cls, text: label, attrs: { type: "button" } });
      b.addEventListener("click", () => void this.step(r, action, body, b));
      return b;
    };

    // Accepting a time proposed: the requester's proposed times (receiver, not yet scheduled),
    // or the other side's counter-proposal.
    if (receiver && s === "requested") {
      for (const t of r.proposed_times ?? []) {
        buttons.append(stepButton(`${bi("接受此时间", "Accept")} ${slotText(t)}`, "accept", () => ({ start: t.start, minutes: t.minutes }), "btn btn-primary"));
      }
      buttons.append(stepButton(bi("接收，稍后定时间", "Accept, time later"), "accept", () => undefined));
    }
    if (theirProposal && r.slot) {
      buttons.append(stepButton(`${bi("同意提议的时间", "Agree to the proposed time")} ${slotText(r.slot)}`, "accept", () => undefined, "btn btn-primary"));
    }
    if (s === "scheduled") buttons.append(stepButton(bi("开始会诊", "Start the consultation"), "start", () => undefined));
    if (s === "report_issued") buttons.append(stepButton(bi("结案", "Close the request"), "close", () => undefined));
    if (buttons.childElementCount) box.append(buttons);

    // A time of one's own: propose it (or, for the receiver of an accepted request, agree it).
    const canPropose = s === "scheduled" || s === "counter_proposed" || s === "accepted" || (receiver && s === "requested");
    if (canPropose) {
      const t = timeInputs(bi("另一个时间", "Another time"));
      t.group.classList.add("step-time");
      const row = el("div", { className: "actions" });
      const need = () => {
        const v = t.value();
        if (!v) {
          this.stepError.textContent = bi("请填写日期和时间", "Enter a date and time.");
          this.stepError.hidden = false;
          t.start.focus();
        }
        return v;
      };
      row.append(stepButton(bi("提议此时间", "Propose this time"), "propose", need));
      if (receiver && s === "accepted") row.append(stepButton(bi("以此时间接收", "Accept at this time"), "accept", need));
      box.append(t.group, row);
    }

    // Forwarding: to a colleague of the department, or back to the department as a whole.
    if (receiver && s === "requested") {
      const who = el("select");
      who.append(el("option", { text: bi("科室（不指定）", "The department as a whole"), attrs: { value: "" } }));
      void rapi
        .departmentClinicians(r.target.department.id)
        .then((people) => {
          for (const p of people) {
            if (p.id === this.opts.user.id) continue;
            who.append(el("option", { text: [p.display_name, p.title].filter((x) => x).join(" · "), attrs: { value: p.id } }));
          }
        })
        .catch((err) => this.showStepError(err));
      box.append(
        el(
          "details",
          { className: "step-more" },
          el("summary", { text: bi("转交给同事", "Forward to a colleague") }),
          field(bi("转给", "Forward to"), who),
          stepButton(bi("转交", "Forward"), "forward", () => ({ specialist_id: who.value || null })),
        ),
      );
    }

    // Declining (receiver) or cancelling (requester), with a reason.
    const canDecline = receiver && (s === "requested" || s === "accepted" || s === "counter_proposed" || s === "scheduled");
    const canCancel = !receiver && (s === "requested" || s === "accepted" || s === "counter_proposed" || s === "scheduled");
    if (canDecline || canCancel) {
      const reason = el("textarea", { attrs: { maxlength: "500", rows: "2" } });
      const label = canDecline ? bi("拒绝", "Decline") : bi("撤销申请", "Cancel the request");
      box.append(
        el(
          "details",
          { className: "step-more" },
          el("summary", { text: `${label}…` }),
          field(bi("原因（对方可见）", "Reason (the other side sees it)"), reason),
          stepButton(label, canDecline ? "decline" : "cancel", () => ({ reason: reason.value.trim() }), "btn btn-danger"),
        ),
      );
    }
    if (!box.childElementCount) box.append(el("p", { className: "hint", text: r.open ? bi("现在等待对方", "Waiting for the other side.") : bi("申请已结束", "This request is finished.") }));
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
      this.notice.textContent = `${ACTION_LABEL[action === "propose" ? "propose_time" : action] ?? action}: ${STATE_LABEL[after.state] ?? after.state}`;
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
