// The day view of the clinicians' console: the signed-in clinician's scheduled consultations
// (rooms with an agreed time, `slot_start`/`slot_minutes`, on whose care team they are) for a
// chosen day, today by default, in time order, each with "Enter consultation" and, from live
// notifications, how many patients wait in it and since when; who is late in each consultation
// whose time has come and that has not ended (from its attendance: a care-team clinician not
// yet arrived, the patient when none has arrived and none waits); and the drafts left to sign in
// the clinician's live consultations (reports, prescriptions, notes not yet issued). Under a
// consultation where someone waits, who they are (the name they gave, their role) and for how
// long each has waited, from its attendance (the server names them to the care team only).
//
// Who is late and who waits are read again on the view's refresh (its button, a reload of the
// lists, a `drafts_changed`), on a `patient_waiting` for that room, and every minute, so
// lateness and waits grow.
// The department's queue is read with the view and again on each `department_queue_changed`.
//
// DOM contract (tests/browser relies on it): #day-view-date (a date input); #day-view-refresh;
// li.day-item (`data-room-id`) with .day-time (the slot's start and end, local time) and, while
// someone waits, .waiting-count; in a started consultation, ul.day-late (hidden when nobody is
// late, `data-checked` set once attendance was read) with li.late-item per late one:
// `data-user-id` (a clinician) or `data-who="patient"`, and `data-minutes` (how late); in a
// consultation that has not ended, ul.day-waiting (hidden when nobody waits) with
// li.waiting-person per person in queue order: `data-name`, `data-minutes` (how long they have
// waited) and `data-sent-back` when a clinician sent them back; details.day-message (a message to
// those waiting: its textarea, button.day-message-send, and p.day-message-status with
// `data-state` `sent` or `failed`); #day-drafts (hidden when empty) with li.draft-item
// (`data-record-id`).

import * as api from "./api.js";
import { el } from "./dom.js";
import { clearText, tr } from "./i18n.js";

/** @typedef {import("./api.js").Room} Room */
/** @typedef {import("./api.js").Attendance} Attendance */
/** @typedef {import("./i18n.js").MessageKey} MessageKey */

/** A waiting person's role, in words. @type {Record<string, MessageKey>} */
const ROLE_KEYS = {
  patient: "role.patient",
  guest: "role.guest",
  observer: "role.observer",
  doctor: "role.doctor",
  specialist: "role.specialist",
};

/** How often who is late is read again, so that lateness grows while the view is open. */
const LATE_EVERY_MS = 60_000;

/** @param {number} n */
const pad = (n) => String(n).padStart(2, "0");

/** @param {Date} d */
function dateValue(d) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/**
 * Who waits in a room: how many, and since when the longest has (Unix seconds).
 * @typedef {{n: number, since: number | null}} Waiting
 */

/**
 * "n waiting · longest m min" for a room's entry (the rooms list and the day view).
 * @param {Waiting} w
 */
export function waitingBadge(w) {
  const minutes = w.since ? Math.max(0, Math.floor((Date.now() / 1000 - w.since) / 60)) : null;
  return el("span", {
    className: "waiting-count",
    ...(minutes === null ? { i18n: "day.waiting", params: { n: w.n } } : { i18n: "day.waiting_longest", params: { n: w.n, minutes } }),
    attrs: { "data-waiting": String(w.n) },
  });
}

/**
 * Who is late in a started consultation, from its attendance: each care-team clinician who has
 * not arrived, and the patient's side when no patient has arrived and none waits. Someone who
 * has arrived (and left again) is not late: they came.
 * @param {Attendance} a
 * @param {number} now Unix seconds
 * @returns {{who: "clinician" | "patient", id?: string, name?: string, title?: string, minutes: number}[]}
 */
export function lateOnes(a, now) {
  if (a.ended || a.slot_start === null || a.slot_start > now) return [];
  const minutes = Math.floor((now - a.slot_start) / 60);
  /** @type {{who: "clinician" | "patient", id?: string, name?: string, title?: string, minutes: number}[]} */
  const late = a.clinicians
    .filter((c) => c.arrived_at === null)
    .map((c) => ({ who: /** @type {const} */ ("clinician"), id: c.user_id, name: c.display_name, title: c.title, minutes }));
  if (a.patients.arrived_at === null && a.patients.waiting === 0) late.push({ who: "patient", minutes });
  return late;
}

/**
 * @typedef {object} DayViewOptions
 * @property {HTMLElement} section the (empty) card the view fills
 * @property {(err: unknown) => MessageKey} explain the catalogue's words for a failure
 * @property {(roomId: string) => Waiting | undefined} waiting who waits in a room now
 * @property {(rooms: Room[]) => void} loaded the rooms as the server listed them (with who waits)
 * @property {string | null} department the clinician's department: its queue is shown, with
 *   "Take next patient"
 */

export class DayView {
  /** @param {DayViewOptions} opts */
  constructor(opts) {
    this.opts = opts;
    /** @type {Room[]} */
    this.rooms = [];
    /** Each started consultation's attendance as last read (room id → attendance). */
    /** @type {Map<string, Attendance>} */
    this.attendance = new Map();
    /**
     * A message to those waiting being written, per room: kept across the view's re-renders
     * (a notification re-renders it while the clinician types).
     * @type {Map<string, {open: boolean, text: string}>}
     */
    this.messageDrafts = new Map();
    const titleId = "day-view-title";
    this.date = el("input", { attrs: { id: "day-view-date", type: "date", value: dateValue(new Date()) } });
    const prev = el("button", { className: "btn btn-small", text: "‹", label: "day.previous", attrs: { type: "button" } });
    const next = el("button", { className: "btn btn-small", text: "›", label: "day.next", attrs: { type: "button" } });
    const today = el("button", { className: "btn btn-small", i18n: "day.today", attrs: { type: "button" } });
    const reload = el("button", { className: "btn btn-small", i18n: "day.refresh", attrs: { type: "button", id: "day-view-refresh" } });
    prev.addEventListener("click", () => this.shift(-1));
    next.addEventListener("click", () => this.shift(1));
    today.addEventListener("click", () => {
      this.date.value = dateValue(new Date());
      void this.refresh();
    });
    reload.addEventListener("click", () => void this.refresh());
    // Another day: its consultations are asked for.
    this.date.addEventListener("input", () => void this.refresh());
    this.status = el("p", { className: "hint", attrs: { role: "status" } });
    this.list = el("ol", { className: "day-list", attrs: { "aria-labelledby": titleId } });
    this.draftList = el("ul", { className: "day-list", attrs: { "aria-labelledby": "day-drafts-title" } });
    this.drafts = el(
      "div",
      { attrs: { id: "day-drafts" } },
      el("h3", { i18n: "day.to_sign", attrs: { id: "day-drafts-title" } }),
      this.draftList,
    );
    this.drafts.hidden = true;
    this.queueList = el("ul", { className: "day-list", attrs: { "aria-labelledby": "day-queue-title" } });
    this.queueStatus = el("p", { className: "hint" });
    this.takeNext = el("button", { className: "btn btn-small btn-primary", i18n: "day.queue.take_next", attrs: { type: "button", id: "day-queue-next" } });
    this.queueError = el("p", { className: "form-error", attrs: { role: "alert" } });
    this.queueError.hidden = true;
    this.takeNext.addEventListener("click", () => void this.takeNextPatient());
    this.queue = el(
      "div",
      { attrs: { id: "day-queue" } },
      el("h3", { i18n: "day.queue.title", attrs: { id: "day-queue-title" } }),
      this.queueStatus,
      this.queueList,
      el("div", { className: "actions" }, this.takeNext),
      this.queueError,
    );
    this.queue.hidden = true;
    opts.section.setAttribute("aria-labelledby", titleId);
    opts.section.replaceChildren(
      el("h2", { i18n: "day.title", attrs: { id: titleId } }),
      el(
        "div",
        { className: "day-controls" },
        el("label", { i18n: "day.day", attrs: { for: "day-view-date" } }),
        this.date,
        prev,
        next,
        today,
        reload,
      ),
      this.status,
      this.list,
      this.queue,
      this.drafts,
    );
    opts.section.hidden = false;
    this.timer = window.setInterval(() => {
      void this.readLate();
      void this.readQueue();
    }, LATE_EVERY_MS);
  }

  destroy() {
    window.clearInterval(this.timer);
    this.opts.section.replaceChildren();
    this.opts.section.hidden = true;
  }

  /** @param {number} days */
  shift(days) {
    const d = this.day() ?? new Date();
    d.setDate(d.getDate() + days);
    this.date.value = dateValue(d);
    void this.refresh();
  }

  /** @returns {Date | null} the chosen day's local midnight */
  day() {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(this.date.value);
    return m ? new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : null;
  }

  /** @returns {{from: number, to: number} | null} the chosen day, in Unix seconds */
  window() {
    const day = this.day();
    if (!day) return null;
    const end = new Date(day);
    end.setDate(end.getDate() + 1);
    return { from: day.getTime() / 1000, to: end.getTime() / 1000 };
  }

  async refresh() {
    try {
      // The day's consultations asked for by their time: complete however many others there are.
      const booked = this.window();
      const [rooms, drafts] = await Promise.all([booked ? api.listRooms(booked) : Promise.resolve([]), api.pendingDrafts()]);
      this.rooms = rooms;
      this.opts.loaded(this.rooms);
      this.render();
      this.draftList.replaceChildren(...drafts.map((d) => this.draftItem(d)));
      this.drafts.hidden = drafts.length === 0;
      void this.readQueue();
    } catch (err) {
      tr(this.status, this.opts.explain(err));
    }
  }

  render() {
    const day = this.day();
    if (!day) {
      this.list.replaceChildren();
      tr(this.status, "day.choose_day");
      return;
    }
    const from = day.getTime() / 1000;
    const end = new Date(day);
    end.setDate(end.getDate() + 1);
    const to = end.getTime() / 1000;
    const mine = this.rooms
      .filter((r) => r.my_role && typeof r.slot_start === "number" && r.slot_start >= from && r.slot_start < to)
      .sort((a, b) => (a.slot_start ?? 0) - (b.slot_start ?? 0));
    this.list.replaceChildren(...mine.map((r) => this.item(r)));
    if (mine.length) clearText(this.status);
    else tr(this.status, "day.none");
    // Who is late, read again for what is shown.
    void this.readLate();
  }

  /**
   * The department's queue: its live consultations where someone waits (longest first), and
   * "Take next patient" while anyone does. Hidden for a clinician without a department, or
   * whose department has no live consultation.
   */
  async readQueue() {
    const department = this.opts.department;
    if (!department) return;
    try {
      const rooms = await api.departmentQueue(department);
      const waiting = rooms.filter((r) => r.waiting > 0);
      this.queueList.replaceChildren(
        ...waiting.map((r) => {
          const li = el("li", { className: "queue-item" }, el("span", { user: r.title }), " ", waitingBadge({ n: r.waiting, since: r.waiting_since }));
          li.dataset.roomId = r.room_id;
          return li;
        }),
      );
      if (waiting.length === 0) tr(this.queueStatus, "day.queue.nobody");
      else clearText(this.queueStatus);
      this.takeNext.disabled = waiting.length === 0;
      this.queue.hidden = rooms.length === 0;
    } catch (err) {
      tr(this.queueStatus, this.opts.explain(err));
    }
  }

  /** Takes the patient who has waited longest, and enters their consultation. */
  async takeNextPatient() {
    const department = this.opts.department;
    if (!department) return;
    this.takeNext.disabled = true;
    this.queueError.hidden = true;
    try {
      const entry = await api.takeNextPatient(department);
      location.assign(`/join#${entry.token}`);
    } catch (err) {
      tr(this.queueError, this.opts.explain(err));
      this.queueError.hidden = false;
      void this.readQueue();
    }
  }

  /**
   * Reads the attendance of the listed consultations whose time has come and that have not
   * ended (or only `roomId`'s), and shows who is late in each.
   * @param {string} [roomId]
   */
  async readLate(roomId) {
    const now = Date.now() / 1000;
    // Those whose time has come (who is late), and those where someone waits, early or not
    // (who waits).
    const started = this.rooms.filter(
      (r) =>
        (roomId === undefined || r.id === roomId) &&
        r.status !== "ended" &&
        ((typeof r.slot_start === "number" && r.slot_start <= now) || (this.opts.waiting(r.id)?.n ?? 0) > 0) &&
        this.lateList(r.id),
    );
    await Promise.all(
      started.map(async (r) => {
        try {
          this.attendance.set(r.id, await api.roomAttendance(r.id));
        } catch {
          // Not shown this time (a network blip, a room just ended): the next read tries again.
          return;
        }
        this.showLate(r.id);
      }),
    );
  }

  /**
   * @param {string} roomId
   * @returns {HTMLElement | null} the room's list of late ones, if the room is shown
   */
  lateList(roomId) {
    return this.list.querySelector(`li.day-item[data-room-id="${CSS.escape(roomId)}"] ul.day-late`);
  }

  /**
   * Who waits in a consultation, by name, from its attendance as last read.
   * @param {string} roomId
   */
  showWaitingPeople(roomId) {
    const list = this.list.querySelector(`li.day-item[data-room-id="${CSS.escape(roomId)}"] ul.day-waiting`);
    if (!(list instanceof HTMLElement)) return;
    const people = this.attendance.get(roomId)?.waiting_people ?? [];
    const now = Date.now() / 1000;
    list.replaceChildren(
      ...people.map((p) => {
        const minutes = Math.max(0, Math.floor((now - p.since) / 60));
        const role = ROLE_KEYS[p.role];
        const li = el("li", {
          className: "waiting-person",
          i18n: p.sent_back ? "day.waiting_person_sent_back" : "day.waiting_person",
          params: { name: p.name, role: role ? { key: role } : p.role, minutes },
        });
        li.dataset.name = p.name;
        li.dataset.minutes = String(minutes);
        if (p.sent_back) li.dataset.sentBack = "";
        return li;
      }),
    );
    list.hidden = people.length === 0;
  }

  /** @param {string} roomId */
  showLate(roomId) {
    this.showWaitingPeople(roomId);
    const list = this.lateList(roomId);
    const a = this.attendance.get(roomId);
    if (!list || !a) return;
    const late = lateOnes(a, Date.now() / 1000);
    list.replaceChildren(
      ...late.map((l) => {
        const li =
          l.who === "patient"
            ? el("li", { className: "late-item", i18n: l.minutes > 0 ? "late.patient" : "late.patient_now", params: { minutes: l.minutes } })
            : el("li", {
                className: "late-item",
                i18n: l.minutes > 0 ? "late.clinician" : "late.clinician_now",
                params: { name: l.title ? { key: "late.name_title", params: { name: l.name ?? "", title: l.title } } : (l.name ?? ""), minutes: l.minutes },
              });
        if (l.who === "patient") li.dataset.who = "patient";
        else li.dataset.userId = l.id;
        li.dataset.minutes = String(l.minutes);
        return li;
      }),
    );
    list.hidden = late.length === 0;
    list.dataset.checked = "";
  }

  /**
   * A draft left to sign: what, where, by whom, since when, and the way into its consultation.
   * @param {import("./api.js").PendingDraft} d
   */
  draftItem(d) {
    /** @type {Record<string, MessageKey>} */
    const kinds = {
      note: "day.kind.note",
      diagnosis_report: "day.kind.diagnosis_report",
      prescription: "day.kind.prescription",
    };
    const headingId = `draft-${d.record_id}`;
    const kind = kinds[d.kind];
    const li = el(
      "li",
      { className: "draft-item" },
      el("p", { i18n: "day.draft", params: { kind: kind ? { key: kind } : d.kind, title: d.room_title }, attrs: { id: headingId } }),
      el("p", { className: "hint", i18n: "day.drafted_by", params: { name: d.author_name, at: { at: d.created_at_ms, style: "time" } } }),
      ...this.enterButton(d.room_id, headingId),
    );
    li.dataset.recordId = d.record_id;
    return li;
  }

  /**
   * "Enter consultation" (in its actions row) and its error line.
   * @param {string} roomId
   * @param {string} headingId what the button is for
   * @returns {HTMLElement[]}
   */
  enterButton(roomId, headingId) {
    const error = el("p", { className: "form-error", attrs: { role: "alert" } });
    error.hidden = true;
    const enter = el("button", {
      className: "btn btn-small btn-primary",
      i18n: "console.enter",
      attrs: { type: "button", "aria-describedby": headingId },
    });
    enter.addEventListener("click", async () => {
      enter.disabled = true;
      error.hidden = true;
      try {
        const entry = await api.enterRoom(roomId);
        location.assign(`/join#${entry.token}`);
      } catch (err) {
        tr(error, this.opts.explain(err));
        error.hidden = false;
        enter.disabled = false;
      }
    });
    return [el("div", { className: "actions" }, enter), error];
  }

  /**
   * "Message those waiting": the clinic's words to everyone in the consultation's waiting
   * room ("the doctor is running 10 minutes late"), sent without entering.
   * @param {string} roomId
   * @returns {HTMLElement}
   */
  messageForm(roomId) {
    const draft = this.messageDrafts.get(roomId) ?? { open: false, text: "" };
    const text = el("textarea", { label: "day.message_label", attrs: { maxlength: "500", rows: "2" } });
    text.value = draft.text;
    text.addEventListener("input", () => this.messageDrafts.set(roomId, { open: true, text: text.value }));
    const status = el("p", { className: "day-message-status", attrs: { role: "status" } });
    const send = el("button", { className: "btn btn-small day-message-send", i18n: "day.message_send", attrs: { type: "button" } });
    send.addEventListener("click", async () => {
      send.disabled = true;
      clearText(status);
      delete status.dataset.state;
      try {
        await api.setWaitingMessage(roomId, text.value.trim());
        tr(status, text.value.trim() ? "day.message_sent" : "day.message_cleared");
        this.messageDrafts.delete(roomId);
        status.dataset.state = "sent";
      } catch (err) {
        // Not live: the department queue's words for nobody waiting do not fit here.
        tr(status, err instanceof api.ApiError && err.code === "nobody_waiting" ? "day.message_nobody" : this.opts.explain(err));
        status.dataset.state = "failed";
      } finally {
        send.disabled = false;
      }
    });
    const details = el(
      "details",
      { className: "day-message" },
      el("summary", { i18n: "day.message_waiting" }),
      text,
      el("div", { className: "actions" }, send),
      status,
    );
    details.open = draft.open;
    details.addEventListener("toggle", () => {
      if (details.open || text.value) this.messageDrafts.set(roomId, { open: details.open, text: text.value });
      else this.messageDrafts.delete(roomId);
    });
    return details;
  }

  /** @param {Room} room */
  item(room) {
    const start = room.slot_start ?? 0;
    const end = start + (room.slot_minutes ?? 0) * 60;
    const headingId = `day-${room.id}`;
    const head = el(
      "div",
      { className: "room-head" },
      el("span", { className: "day-time", i18n: "day.slot", params: { from: { at: start * 1000, style: "time" }, to: { at: end * 1000, style: "time" } } }),
      el("h3", { user: room.title, attrs: { id: headingId } }),
    );
    const waiting = this.opts.waiting(room.id);
    if (waiting && waiting.n > 0) head.append(waitingBadge(waiting));
    const ended = room.status === "ended";
    if (ended) head.append(el("span", { className: "status status-ended", i18n: "console.status.ended" }));
    const late = el("ul", { className: "day-late", label: "day.late", attrs: { role: "list" } });
    late.hidden = true;
    const waitingPeople = el("ul", { className: "day-waiting", label: "day.waiting_people", attrs: { role: "list" } });
    waitingPeople.hidden = true;
    const li = el(
      "li",
      { className: ended ? "day-item room-ended" : "day-item" },
      head,
      ...(room.patient_ref ? [el("p", { className: "hint", i18n: "console.patient_ref_of", params: { ref: room.patient_ref } })] : []),
      ...(ended ? [] : [waitingPeople, late, ...this.enterButton(room.id, headingId), this.messageForm(room.id)]),
    );
    li.dataset.roomId = room.id;
    // Shown at once from the last read, then read again.
    if (!ended) queueMicrotask(() => this.showLate(room.id));
    return li;
  }

  /**
   * A live `patient_waiting`: shows who waits on the room's entry, and reads who is late again
   * (a patient who waits is not late).
   * @param {string} roomId
   * @param {Waiting} w
   */
  setWaiting(roomId, w) {
    const li = this.list.querySelector(`li.day-item[data-room-id="${CSS.escape(roomId)}"]`);
    const head = li?.querySelector(".room-head");
    if (!head) return;
    head.querySelector(".waiting-count")?.remove();
    if (w.n > 0) head.append(waitingBadge(w));
    else {
      // Nobody waits: nobody to name, without asking (the attendance is read again below only
      // for a consultation whose time has come).
      const a = this.attendance.get(roomId);
      if (a) this.attendance.set(roomId, { ...a, waiting_people: [] });
      this.showWaitingPeople(roomId);
    }
    void this.readLate(roomId);
  }
}
