// Moderation in the room (docs/protocol.md, "Moderation"): what the care team does to the
// others, and what the person concerned sees.
//
// A doctor or specialist gets a "Huddle" button among the controls (the clinicians confer: the
// patient, observers and guests stop hearing and seeing them, stay connected, and are told),
// and a "Manage" menu on everyone else's tile or audience line: mute or unmute their
// microphone and stop or resume their video on the server (their media stops being forwarded;
// they are told), let an observer speak or make a guest only watch (`set_role`), and remove
// someone who came with a link (with a reason they see). The server decides each request by
// its permission table and tells everyone what happened; this module only asks and shows.
//
// Everyone sees a banner (`#moderation-banner`) while the clinicians huddle and while the care
// team holds their own microphone or camera, and a notice when their role changes.

import { el } from "./dom.js";
import { tr, trAttr } from "./i18n.js";

/** @typedef {import("./protocol.js").ClientMessage} ClientMessage */
/** @typedef {import("./protocol.js").Participant} Participant */
/** @typedef {import("./protocol.js").Role} Role */
/** @typedef {import("./i18n.js").MessageKey} MessageKey */
/** @typedef {import("./i18n.js").Params} Params */
/** @typedef {import("./queue-panel.js").ReasonDialog} ReasonDialog */

/**
 * @typedef {object} ModerationHooks
 * @property {(msg: ClientMessage) => boolean | undefined} send
 * @property {(key: MessageKey, params?: Params) => void} notice
 * @property {ReasonDialog} reasons
 * @property {(id: string) => string} nameOf a participant's display name
 * @property {(role: Role) => void} roleChanged the care team changed our role (media follows)
 */

/** The care team: who moderates (the server's `Role::may_admit`). */
const CARE_TEAM = new Set(["doctor", "specialist"]);

/**
 * One entry of the Manage menu.
 * @typedef {{key: MessageKey, action: string, run: () => void}} MenuItem
 */

export class Moderation {
  /** @type {HTMLButtonElement} */
  huddleButton;
  /** @type {HTMLElement} */
  banner;
  /** @type {ModerationHooks} */
  #hooks;
  /** @type {Participant | null} */
  #you = null;
  #huddle = false;
  #held = { audio: false, video: false };
  /** The open Manage menu and the button that opened it. */
  /** @type {{root: HTMLElement, anchor: HTMLElement} | null} */
  #menu = null;

  /**
   * @param {HTMLElement} controls the room's controls bar (the Huddle button goes before `before`)
   * @param {HTMLElement} before
   * @param {HTMLElement} bannerAfter the banner goes right after this element
   * @param {ModerationHooks} hooks
   */
  constructor(controls, before, bannerAfter, hooks) {
    this.#hooks = hooks;
    this.huddleButton = el("button", {
      className: "btn control huddle-button",
      i18n: "moderation.huddle_start",
      attrs: { type: "button", id: "huddle-button", "aria-pressed": "false" },
    });
    this.huddleButton.hidden = true;
    this.huddleButton.addEventListener("click", () => this.#hooks.send({ type: "huddle", active: !this.#huddle }));
    controls.insertBefore(this.huddleButton, before);
    this.banner = el("p", { className: "banner moderation-banner", attrs: { id: "moderation-banner", role: "status" } });
    this.banner.hidden = true;
    bannerAfter.after(this.banner);
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape" && this.#menu) this.#closeMenu(true);
    });
    document.addEventListener("pointerdown", (ev) => {
      const menu = this.#menu;
      if (menu && ev.target instanceof Node && !menu.root.contains(ev.target) && !menu.anchor.contains(ev.target)) {
        this.#closeMenu(false);
      }
    });
  }

  /** Whether we moderate (a doctor or specialist in the room). */
  get moderates() {
    return this.#you !== null && CARE_TEAM.has(this.#you.role);
  }

  /**
   * On entering the room (and after a resume or rejoin), and when our own entry changes.
   * @param {Participant} you
   * @param {boolean} huddle whether the clinicians confer now
   */
  enter(you, huddle) {
    this.#you = you;
    this.#huddle = huddle;
    this.#held = { audio: you.held?.audio ?? false, video: you.held?.video ?? false };
    this.huddleButton.hidden = !this.moderates;
    this.#render();
  }

  /** @param {Participant} you our own entry, as the server says it now */
  updateYou(you) {
    if (!this.#you) return;
    this.#you = you;
    this.huddleButton.hidden = !this.moderates;
  }

  /** Left the room (or sent back to wait): nothing of it shows. */
  leave() {
    this.#you = null;
    this.#huddle = false;
    this.#held = { audio: false, video: false };
    this.huddleButton.hidden = true;
    this.#closeMenu(false);
    this.#render();
  }

  /** @param {import("./protocol.js").HuddleMessage} msg */
  onHuddle(msg) {
    if (msg.active === this.#huddle) return;
    this.#huddle = msg.active;
    this.#render();
    const by = msg.by ? this.#hooks.nameOf(msg.by) : "";
    if (this.moderates) this.#hooks.notice(msg.active ? "moderation.notice.huddle_started" : "moderation.notice.huddle_ended", { name: by });
  }

  /** @param {import("./protocol.js").HeldMessage} msg */
  onHeld(msg) {
    const was = this.#held;
    this.#held = { audio: msg.audio, video: msg.video };
    this.#render();
    const name = this.#hooks.nameOf(msg.by);
    if (msg.audio !== was.audio) this.#hooks.notice(msg.audio ? "moderation.notice.mic_held" : "moderation.notice.mic_released", { name });
    else if (msg.video !== was.video) this.#hooks.notice(msg.video ? "moderation.notice.video_held" : "moderation.notice.video_released", { name });
  }

  /** @param {import("./protocol.js").RoleChangedMessage} msg */
  onRoleChanged(msg) {
    const name = this.#hooks.nameOf(msg.by);
    this.#hooks.notice(msg.role === "guest" ? "moderation.notice.now_guest" : "moderation.notice.now_observer", { name });
    this.#hooks.roleChanged(msg.role);
  }

  /**
   * What we may do to `p` (the server has the last word on each).
   * @param {Participant} p
   * @returns {MenuItem[]}
   */
  actions(p) {
    if (!this.moderates || p.id === this.#you?.id) return [];
    /** @type {MenuItem[]} */
    const items = [];
    const held = { audio: p.held?.audio ?? false, video: p.held?.video ?? false };
    const hold = (/** @type {{audio: boolean, video: boolean}} */ h) => () =>
      this.#hooks.send({ type: "hold", participant_id: p.id, audio: h.audio, video: h.video });
    if (p.publishing.audio) {
      items.push(
        held.audio
          ? { key: "moderation.unmute", action: "unmute", run: hold({ ...held, audio: false }) }
          : { key: "moderation.mute", action: "mute", run: hold({ ...held, audio: true }) },
      );
    }
    if (p.publishing.video) {
      items.push(
        held.video
          ? { key: "moderation.video_resume", action: "video_resume", run: hold({ ...held, video: false }) }
          : { key: "moderation.video_stop", action: "video_stop", run: hold({ ...held, video: true }) },
      );
    }
    if (p.role === "observer") {
      items.push({ key: "moderation.make_guest", action: "make_guest", run: () => this.#hooks.send({ type: "set_role", participant_id: p.id, role: "guest" }) });
    } else if (p.role === "guest") {
      items.push({ key: "moderation.make_observer", action: "make_observer", run: () => this.#hooks.send({ type: "set_role", participant_id: p.id, role: "observer" }) });
    }
    // Removing revokes the link they came with: the doctor's alone (the server's
    // `Role::may_remove`), and never a clinician (they leave the care team).
    if (this.#you?.role === "doctor" && !CARE_TEAM.has(p.role)) {
      items.push({ key: "moderation.remove", action: "remove", run: () => void this.#remove(p) });
    }
    return items;
  }

  /**
   * Opens the Manage menu for `p` under `anchor` (the button that was pressed).
   * @param {Participant} p
   * @param {HTMLElement} anchor
   */
  openMenu(p, anchor) {
    const reopen = this.#menu?.anchor === anchor;
    this.#closeMenu(false);
    if (reopen) return;
    const items = this.actions(p);
    if (!items.length) return;
    const root = el("div", { className: "manage-menu", attrs: { role: "menu" } });
    trAttr(root, "aria-label", "moderation.menu_label", { name: p.name });
    for (const item of items) {
      const button = el("button", { className: "manage-item", i18n: item.key, attrs: { type: "button", role: "menuitem" } });
      button.dataset.action = item.action;
      button.addEventListener("click", () => {
        this.#closeMenu(true);
        item.run();
      });
      root.append(button);
    }
    root.addEventListener("keydown", (ev) => {
      if (ev.key !== "ArrowDown" && ev.key !== "ArrowUp") return;
      ev.preventDefault();
      const buttons = [...root.querySelectorAll("button")];
      const at = buttons.indexOf(/** @type {HTMLButtonElement} */ (document.activeElement));
      const next = (at + (ev.key === "ArrowDown" ? 1 : buttons.length - 1)) % buttons.length;
      buttons[next]?.focus();
    });
    document.body.append(root);
    // Under the button, kept inside the window (a tile at the right edge of a phone).
    const box = anchor.getBoundingClientRect();
    const width = root.offsetWidth;
    root.style.left = `${Math.max(8, Math.min(box.left, window.innerWidth - width - 8))}px`;
    root.style.top = `${Math.min(box.bottom + 4, window.innerHeight - root.offsetHeight - 8)}px`;
    anchor.setAttribute("aria-expanded", "true");
    this.#menu = { root, anchor };
    root.querySelector("button")?.focus();
  }

  /** @param {boolean} refocus give the focus back to the button that opened it */
  #closeMenu(refocus) {
    const menu = this.#menu;
    if (!menu) return;
    this.#menu = null;
    menu.root.remove();
    menu.anchor.setAttribute("aria-expanded", "false");
    if (refocus && menu.anchor.isConnected) menu.anchor.focus();
  }

  /** @param {Participant} p */
  async #remove(p) {
    const reason = await this.#hooks.reasons.ask({
      title: { key: "moderation.remove_title", params: { name: p.name } },
      text: "moderation.remove_text",
      ok: "moderation.remove",
    });
    if (reason === null) return;
    this.#hooks.send(reason ? { type: "remove", participant_id: p.id, reason } : { type: "remove", participant_id: p.id });
  }

  #render() {
    const inRoom = this.#you !== null;
    this.huddleButton.setAttribute("aria-pressed", String(this.#huddle));
    tr(this.huddleButton, this.#huddle ? "moderation.huddle_end" : "moderation.huddle_start");
    this.huddleButton.classList.toggle("active", this.#huddle);
    /** @type {MessageKey[]} */
    const lines = [];
    if (inRoom && this.#huddle) lines.push(this.moderates ? "moderation.banner.huddle_clinician" : "moderation.banner.huddle");
    if (inRoom && this.#held.audio && this.#held.video) lines.push("moderation.banner.held_both");
    else if (inRoom && this.#held.audio) lines.push("moderation.banner.held_audio");
    else if (inRoom && this.#held.video) lines.push("moderation.banner.held_video");
    this.banner.hidden = lines.length === 0;
    this.banner.replaceChildren(...lines.map((key) => el("span", { className: "moderation-line", i18n: key })));
    this.banner.dataset.huddle = String(inRoom && this.#huddle);
  }
}
