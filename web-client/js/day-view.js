// The day view of the clinicians' console: the signed-in clinician's scheduled consultations
// (rooms with an agreed time, `slot_start`/`slot_minutes`, on whose care team they are) for a
// chosen day, today by default, in time order, each with "Enter consultation" and, from live
// notifications, how many patients wait in it and since when; and the drafts left to sign in
// the clinician's live consultations (reports, prescriptions, notes not yet issued).
//
// DOM contract (tests/browser/referral-scenario.mjs relies on it): #day-view-date (a date
// input); li.day-item (`data-room-id`) with .day-time ("HH:MM–HH:MM", local time) and, while
// someone waits, .waiting-count; #day-drafts (hidden when empty) with li.draft-item
// (`data-record-id`).

import * as api from "./api.js";
import { el } from "./dom.js";
import { bi } from "./referral-view.js";

/** @typedef {import("./api.js").Room} Room */

/** @param {number} n */
const pad = (n) => String(n).padStart(2, "0");

/** @param {Date} d */
function dateValue(d) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** @param {number} unix */
function clock(unix) {
  const d = new Date(unix * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
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
  const text =
    minutes === null
      ? bi(`候诊 ${w.n} 人`, `${w.n} waiting`)
      : bi(`候诊 ${w.n} 人 · 最长 ${minutes} 分钟`, `${w.n} waiting · longest ${minutes} min`);
  return el("span", { className: "waiting-count", text, attrs: { "data-waiting": String(w.n) } });
}

/**
 * @typedef {object} DayViewOptions
 * @property {HTMLElement} section the (empty) card the view fills
 * @property {(err: unknown) => string} explain
 * @property {(roomId: string) => Waiting | undefined} waiting who waits in a room now
 * @property {(rooms: Room[]) => void} loaded the rooms as the server listed them (with who waits)
 */

export class DayView {
  /** @param {DayViewOptions} opts */
  constructor(opts) {
    this.opts = opts;
    /** @type {Room[]} */
    this.rooms = [];
    const titleId = "day-view-title";
    this.date = el("input", { attrs: { id: "day-view-date", type: "date", value: dateValue(new Date()) } });
    const prev = el("button", { className: "btn btn-small", text: "‹", attrs: { type: "button", "aria-label": bi("前一天", "Previous day") } });
    const next = el("button", { className: "btn btn-small", text: "›", attrs: { type: "button", "aria-label": bi("后一天", "Next day") } });
    const today = el("button", { className: "btn btn-small", text: bi("今天", "Today"), attrs: { type: "button" } });
    prev.addEventListener("click", () => this.shift(-1));
    next.addEventListener("click", () => this.shift(1));
    today.addEventListener("click", () => {
      this.date.value = dateValue(new Date());
      this.render();
    });
    this.date.addEventListener("input", () => this.render());
    this.status = el("p", { className: "hint", attrs: { role: "status" } });
    this.list = el("ol", { className: "day-list", attrs: { "aria-labelledby": titleId } });
    this.draftList = el("ul", { className: "day-list", attrs: { "aria-labelledby": "day-drafts-title" } });
    this.drafts = el(
      "div",
      { attrs: { id: "day-drafts" } },
      el("h3", { text: bi("待签署", "To sign"), attrs: { id: "day-drafts-title" } }),
      this.draftList,
    );
    this.drafts.hidden = true;
    opts.section.setAttribute("aria-labelledby", titleId);
    opts.section.replaceChildren(
      el("h2", { text: bi("日程", "My day"), attrs: { id: titleId } }),
      el(
        "div",
        { className: "day-controls" },
        el("label", { text: bi("日期", "Day"), attrs: { for: "day-view-date" } }),
        this.date,
        prev,
        next,
        today,
      ),
      this.status,
      this.list,
      this.drafts,
    );
    opts.section.hidden = false;
  }

  destroy() {
    this.opts.section.replaceChildren();
    this.opts.section.hidden = true;
  }

  /** @param {number} days */
  shift(days) {
    const d = this.day() ?? new Date();
    d.setDate(d.getDate() + days);
    this.date.value = dateValue(d);
    this.render();
  }

  /** @returns {Date | null} the chosen day's local midnight */
  day() {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(this.date.value);
    return m ? new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : null;
  }

  async refresh() {
    try {
      const [rooms, drafts] = await Promise.all([api.listRooms(), api.pendingDrafts()]);
      this.rooms = rooms;
      this.opts.loaded(this.rooms);
      this.render();
      this.draftList.replaceChildren(...drafts.map((d) => this.draftItem(d)));
      this.drafts.hidden = drafts.length === 0;
    } catch (err) {
      this.status.textContent = this.opts.explain(err);
    }
  }

  render() {
    const day = this.day();
    if (!day) {
      this.list.replaceChildren();
      this.status.textContent = bi("请选择日期", "Choose a day.");
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
    this.status.textContent = mine.length ? "" : bi("这一天没有预约的会诊", "No scheduled consultations on this day.");
  }

  /**
   * A draft left to sign: what, where, by whom, since when, and the way into its consultation.
   * @param {import("./api.js").PendingDraft} d
   */
  draftItem(d) {
    const kinds = {
      note: bi("会诊记录", "Note"),
      diagnosis_report: bi("诊断报告", "Diagnosis report"),
      prescription: bi("处方", "Prescription"),
    };
    const headingId = `draft-${d.record_id}`;
    const li = el(
      "li",
      { className: "draft-item" },
      el("p", { text: `${kinds[d.kind] ?? d.kind} · ${d.room_title}`, attrs: { id: headingId } }),
      el("p", { className: "hint", text: `${bi("起草人", "Drafted by")} ${d.author_name} · ${clock(Math.floor(d.created_at_ms / 1000))}` }),
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
      text: bi("进入会诊", "Enter consultation"),
      attrs: { type: "button", "aria-describedby": headingId },
    });
    enter.addEventListener("click", async () => {
      enter.disabled = true;
      error.hidden = true;
      try {
        const entry = await api.enterRoom(roomId);
        location.assign(`/join#${entry.token}`);
      } catch (err) {
        error.textContent = this.opts.explain(err);
        error.hidden = error.textContent === "";
        enter.disabled = false;
      }
    });
    return [el("div", { className: "actions" }, enter), error];
  }

  /** @param {Room} room */
  item(room) {
    const start = room.slot_start ?? 0;
    const end = start + (room.slot_minutes ?? 0) * 60;
    const headingId = `day-${room.id}`;
    const head = el(
      "div",
      { className: "room-head" },
      el("span", { className: "day-time", text: `${clock(start)}–${clock(end)}` }),
      el("h3", { text: room.title, attrs: { id: headingId } }),
    );
    const waiting = this.opts.waiting(room.id);
    if (waiting && waiting.n > 0) head.append(waitingBadge(waiting));
    const meta = room.patient_ref ? `${bi("患者编号", "Patient ref.")} ${room.patient_ref}` : "";
    const ended = room.status === "ended";
    if (ended) head.append(el("span", { className: "status status-ended", text: bi("已结束", "ended") }));
    const li = el(
      "li",
      { className: ended ? "day-item room-ended" : "day-item" },
      head,
      ...(meta ? [el("p", { className: "hint", text: meta })] : []),
      ...(ended ? [] : this.enterButton(room.id, headingId)),
    );
    li.dataset.roomId = room.id;
    return li;
  }

  /**
   * A live `patient_waiting`: shows who waits on the room's entry.
   * @param {string} roomId
   * @param {Waiting} w
   */
  setWaiting(roomId, w) {
    const li = this.list.querySelector(`li.day-item[data-room-id="${CSS.escape(roomId)}"]`);
    const head = li?.querySelector(".room-head");
    if (!head) return;
    head.querySelector(".waiting-count")?.remove();
    if (w.n > 0) head.append(waitingBadge(w));
  }
}
