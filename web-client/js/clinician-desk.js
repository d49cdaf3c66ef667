// What the console adds for doctors and specialists: the consultation requests
// (./referral-view.js), the day view (./day-view.js) and the live notifications that keep both,
// and the rooms list, current (./live-events.js). console.js calls `startDesk` once signed in
// and `stopDesk` at sign-out; everything else lives here.

import { sessionToken } from "./api.js";
import { DayView, waitingBadge } from "./day-view.js";
import { LiveEvents } from "./live-events.js";
import { ReferralView } from "./referral-view.js";

/** @typedef {import("./api.js").Account} Account */

/**
 * @typedef {object} DeskOptions
 * @property {Account} user
 * @property {(err: unknown) => import("./i18n.js").MessageKey} explain the catalogue's words for a failure
 * @property {() => Promise<void> | void} refreshRooms reloads the console's rooms list
 * @property {HTMLElement} referrals the card for the requests
 * @property {HTMLElement} day the card for the day view
 * @property {HTMLElement} rooms the console's rooms list (li.room-card[data-room-id])
 */

/**
 * @type {{live: LiveEvents, referrals: ReferralView, day: DayView, observer: MutationObserver,
 *   waiting: Map<string, import("./day-view.js").Waiting>} | null}
 */
let desk = null;

/** @param {DeskOptions} opts */
export function startDesk(opts) {
  stopDesk();
  /**
   * Who waits in each room: as the lists were loaded, then from each `patient_waiting`.
   * @type {Map<string, import("./day-view.js").Waiting>}
   */
  const waiting = new Map();
  const day = new DayView({
    section: opts.day,
    explain: opts.explain,
    waiting: (id) => waiting.get(id),
    department: opts.user.department?.id ?? null,
    loaded: (rooms) => {
      for (const r of rooms) waiting.set(r.id, { n: r.waiting ?? 0, since: r.waiting_since ?? null });
    },
  });
  const reloadRooms = () => {
    void opts.refreshRooms();
    void day.refresh();
  };
  const referrals = new ReferralView({ section: opts.referrals, user: opts.user, explain: opts.explain, changed: reloadRooms });

  /** Puts the waiting counts on the rooms list's entries (again after each re-render). */
  const markRooms = () => {
    for (const node of opts.rooms.querySelectorAll("li.room-card[data-room-id]")) {
      const li = /** @type {HTMLElement} */ (node);
      const id = li.dataset.roomId ?? "";
      // A freshly rendered entry carries who waited as the list was loaded: taken once.
      if (li.dataset.waiting !== undefined) {
        waiting.set(id, { n: Number(li.dataset.waiting), since: li.dataset.waitingSince ? Number(li.dataset.waitingSince) : null });
        delete li.dataset.waiting;
        delete li.dataset.waitingSince;
      }
      const w = waiting.get(id) ?? { n: 0, since: null };
      const head = li.querySelector(".room-head");
      head?.querySelector(".waiting-count")?.remove();
      if (w.n > 0) head?.append(waitingBadge(w));
    }
  };
  const observer = new MutationObserver(markRooms);
  observer.observe(opts.rooms, { childList: true });

  const live = new LiveEvents({
    token: sessionToken,
    // Whether the stream is open, for those who look (tests/browser waits for it).
    onState: (connected) => {
      opts.referrals.dataset.live = connected ? "connected" : "disconnected";
    },
    onOpen: (reconnected) => {
      // Nothing published while the stream was closed (or before it first opened) comes again:
      // reload what it keeps current.
      void referrals.refresh();
      if (reconnected) reloadRooms();
    },
    onEvent: (event) => {
      switch (event.type) {
        case "referral_received":
          referrals.received(event.referral_id, event.urgency);
          break;
        case "referral_changed":
          referrals.changed(event.referral_id, event.state);
          // A step may have opened, moved or ended a room.
          reloadRooms();
          break;
        case "referral_consent":
          referrals.consentChanged(event.referral_id, event.in_force);
          break;
        case "patient_waiting":
          waiting.set(event.room_id, { n: event.waiting, since: event.waiting_since });
          day.setWaiting(event.room_id, { n: event.waiting, since: event.waiting_since });
          markRooms();
          break;
        case "drafts_changed":
          // A draft was written, edited or issued in one of my care teams: what is left to
          // sign is reloaded (the list is small, and its rules are the server's).
          void day.refresh();
          break;
        case "consultation_rescheduled":
          // One of my consultations moved: its card and my day show the new time.
          reloadRooms();
          void day.refresh();
          break;
        case "department_queue_changed":
          // Someone arrived in or left a consultation asked of my department: its queue again.
          void day.readQueue();
          break;
      }
    },
  });
  desk = { live, referrals, day, observer, waiting };
  void referrals.refresh();
  void day.refresh();
  live.start();
}

/** Sign-out: the stream closes and the views go. */
export function stopDesk() {
  if (!desk) return;
  desk.live.stop();
  desk.observer.disconnect();
  desk.referrals.destroy();
  desk.day.destroy();
  desk = null;
}
