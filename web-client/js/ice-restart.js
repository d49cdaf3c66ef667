// ICE restart (docs/protocol.md, "ICE restart"): when the media path changes or fails (Wi-Fi to
// 4G, a NAT rebinding), ask the server for an ICE restart instead of rejoining. The server is
// ICE-lite and sends every offer, so this side only asks (`ice_restart`); the restart's offer
// and answer go through the usual offer path, and the same peer connection carries on.
//
// Fed the peer connection's `iceConnectionState`: `failed` asks at once, `disconnected` after a
// grace period (the browser's own consent checks often bring a path back by themselves). A
// restart that has not connected after a while is asked again, with backoff, a bounded number
// of times (below the server's limit of 4 a minute); then `onGiveUp` (the caller rejoins with a
// fresh peer connection).

/** How long ICE may stay `disconnected` before a restart is asked for. */
export const DISCONNECT_GRACE_MS = 3000;
/** Restarts asked for in a row before giving up. */
export const MAX_ATTEMPTS = 3;
/** Wait before asking again after the first attempt; doubled after each. */
export const FIRST_RETRY_MS = 5000;

/**
 * @typedef {object} IceRestartHooks
 * @property {() => boolean} request sends `ice_restart`; false if it could not be sent now
 * @property {() => RTCIceConnectionState} state the peer connection's ICE state now
 * @property {(restarting: boolean) => void} onRestarting a restart began, or media flows again
 * @property {() => void} onGiveUp every attempt failed: the caller takes over
 */

export class IceRestarter {
  /** @type {IceRestartHooks} */
  #hooks;
  /** ICE was connected once: before that there is nothing to restart. */
  #everConnected = false;
  #attempts = 0;
  #restarting = false;
  #gaveUp = false;
  /** @type {ReturnType<typeof setTimeout> | null} */
  #timer = null;

  /** @param {IceRestartHooks} hooks */
  constructor(hooks) {
    this.#hooks = hooks;
  }

  /** Whether a failed path is this module's to handle (a restart is possible or under way). */
  get handlesFailure() {
    return this.#everConnected && !this.#gaveUp;
  }

  get restarting() {
    return this.#restarting;
  }

  /** @param {RTCIceConnectionState} state */
  onIceState(state) {
    if (state === "connected" || state === "completed") {
      this.#everConnected = true;
      this.#clearTimer();
      this.#attempts = 0;
      if (this.#restarting) {
        this.#restarting = false;
        this.#hooks.onRestarting(false);
      }
      return;
    }
    if (!this.#everConnected || this.#gaveUp) return;
    if (state === "failed") {
      // A restart already asked for has its own retry timer running.
      if (!this.#restarting) this.#attempt();
    } else if (state === "disconnected" && !this.#restarting && this.#timer === null) {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#attempt();
      }, DISCONNECT_GRACE_MS);
    }
  }

  /**
   * An offer was applied (a restart's, maybe): ICE that is up now, with no event to come
   * (a browser whose old path still worked stays `connected` through the restart), ends it.
   */
  offerApplied() {
    if (!this.#restarting) return;
    const now = this.#hooks.state();
    if (now === "connected" || now === "completed") this.onIceState(now);
  }

  /** The server refused (`ice_restart_limited`): no more asking. */
  refused() {
    this.#giveUp();
  }

  #attempt() {
    // A grace period still running (ICE went from disconnected to failed) ends here.
    this.#clearTimer();
    if (this.#attempts >= MAX_ATTEMPTS) {
      this.#giveUp();
      return;
    }
    const delay = FIRST_RETRY_MS * 2 ** this.#attempts;
    this.#attempts += 1;
    if (!this.#restarting) {
      this.#restarting = true;
      this.#hooks.onRestarting(true);
    }
    this.#hooks.request();
    // Not connected again by then: ask again (or give up after the last attempt). A browser
    // whose old path still worked may never leave `connected` through a restart, and so
    // never say so with an event: its state now is what counts.
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const now = this.#hooks.state();
      if (now === "connected" || now === "completed") this.onIceState(now);
      else this.#attempt();
    }, delay);
  }

  #giveUp() {
    if (this.#gaveUp) return;
    this.#gaveUp = true;
    this.#clearTimer();
    this.#restarting = false;
    this.#hooks.onGiveUp();
  }

  #clearTimer() {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  stop() {
    this.#gaveUp = true;
    this.#clearTimer();
  }
}
