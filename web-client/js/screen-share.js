// Sharing our screen (docs/protocol.md, "Screen sharing"): the "Share screen" button, the
// browser's screen picker, and the share's life as the server tells it.
//
// The button is there only for roles the server lets share (doctors and specialists) and only
// where the browser can capture a screen (phones cannot: no getDisplayMedia). A click asks the
// browser for a screen or window first (the person may cancel), then the server; the server's
// `screen_share` naming us makes it ours, and its next offer names the m-line the media session
// sends it on. The browser's own "Stop sharing" ends the track, which ends the share here and
// tells the server. The server has the last word: its `screen_share` naming someone else, or
// nobody, stops our capture.

import { el } from "./dom.js";
import { tr } from "./i18n.js";

/** @typedef {import("./protocol.js").Role} Role */
/** @typedef {import("./protocol.js").ClientMessage} ClientMessage */
/** @typedef {import("./media-session.js").MediaSession} MediaSession */

/**
 * @typedef {object} ScreenShareHooks
 * @property {(msg: ClientMessage) => boolean | undefined} send
 * @property {() => MediaSession | null} media the current media session
 * @property {(key: import("./i18n.js").MessageKey) => void} notice
 * @property {() => void} changed the share's state changed (the room view follows it)
 */

/** Roles the server lets share (its permission table, `Role::may_share_screen`). */
const MAY_SHARE = new Set(["doctor", "specialist"]);

/** Whether this browser can capture a screen or window at all. */
export function canCaptureScreen() {
  return typeof navigator.mediaDevices?.getDisplayMedia === "function";
}

export class ScreenShare {
  /** @type {HTMLButtonElement} */
  button;
  /** @type {ScreenShareHooks} */
  #hooks;
  /** The captured screen, from the picker until the share ends. */
  /** @type {MediaStreamTrack | null} */
  #track = null;
  /** Who shares, as the server said last (null: nobody). */
  /** @type {string | null} */
  sharer = null;
  /** Our own participant id in the room. */
  /** @type {string | null} */
  #you = null;

  /**
   * @param {HTMLElement} controls the room's controls bar (the button goes before `before`)
   * @param {HTMLElement} before
   * @param {ScreenShareHooks} hooks
   */
  constructor(controls, before, hooks) {
    this.#hooks = hooks;
    this.button = el("button", { className: "btn control screen-button", i18n: "room.share_screen", attrs: { type: "button", id: "screen-button" } });
    this.button.hidden = true;
    this.button.addEventListener("click", () => void (this.sharing ? this.stop() : this.start()));
    controls.insertBefore(this.button, before);
  }

  /** True while we share (the server agreed). */
  get sharing() {
    return this.sharer !== null && this.sharer === this.#you;
  }

  /**
   * On entering the room (and after a resume or rejoin).
   * @param {string} you our participant id
   * @param {Role} role
   * @param {string | null} sharer who shares now
   */
  enter(you, role, sharer) {
    if (you !== this.#you) this.#release();
    this.#you = you;
    this.button.hidden = !MAY_SHARE.has(role) || !canCaptureScreen();
    this.update(sharer);
  }

  /**
   * The server says who shares now.
   * @param {string | null} sharer
   */
  update(sharer) {
    this.sharer = sharer;
    // Someone else's share, or none: ours is over (if we had one, or were about to).
    if (!this.sharing) this.#release();
    this.#render();
    this.#hooks.changed();
  }

  /** The server refused our request (`forbidden`, `screen_share_busy`, `media_not_ready`). */
  refused() {
    if (!this.sharing) this.#release();
    this.#render();
  }

  async start() {
    if (this.#track) return;
    /** @type {MediaStream} */
    let stream;
    try {
      // Text and fine lines matter more than motion: a modest frame rate leaves the bandwidth
      // to resolution.
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: false });
    } catch (err) {
      // NotAllowedError: the person cancelled the picker, which needs no message.
      if (!(err instanceof DOMException && err.name === "NotAllowedError")) this.#hooks.notice("join.notice.screen_share_failed");
      return;
    }
    const track = stream.getVideoTracks()[0];
    if (!track) return;
    track.contentHint = "detail";
    // The browser's own "Stop sharing" (or the shared window closing).
    track.addEventListener("ended", () => {
      if (this.#track === track) void this.stop();
    });
    this.#track = track;
    await this.#hooks.media()?.setScreenTrack(track);
    if (!this.#hooks.send({ type: "screen_share", active: true })) {
      this.#release();
      this.#hooks.notice("join.notice.screen_share_failed");
    }
    this.#render();
  }

  async stop() {
    const was = this.sharing || this.#track !== null;
    this.#release();
    if (was) this.#hooks.send({ type: "screen_share", active: false });
    this.#render();
  }

  /** Stops the capture and takes it off the peer connection. */
  #release() {
    const track = this.#track;
    if (!track) return;
    this.#track = null;
    track.stop();
    void this.#hooks.media()?.setScreenTrack(null);
  }

  #render() {
    const mine = this.sharing || this.#track !== null;
    tr(this.button, mine ? "room.stop_sharing" : "room.share_screen");
    this.button.setAttribute("aria-pressed", String(mine));
    this.button.classList.toggle("control-active", mine);
    // One share at a time: while someone else shares, there is nothing to ask for.
    this.button.disabled = !mine && this.sharer !== null;
  }
}
