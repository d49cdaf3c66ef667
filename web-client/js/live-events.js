// Live notifications for the clinicians' console (docs/protocol.md, "Live notifications"):
// GET /api/v1/events, server-sent events read with fetch, because an EventSource cannot send the
// Authorization header. The stream ends when the token it was opened with would expire, at
// server shutdown and on network loss; it is reopened with the console's current token (renewed
// meanwhile by the console's keep-alive), after a pause that grows while attempts fail. Events
// published while it was closed are not replayed, so `onOpen(true)` tells the console to reload
// its lists.

/**
 * @typedef {{type: "referral_received", referral_id: string, urgency: string} |
 *   {type: "referral_changed", referral_id: string, state: string} |
 *   {type: "referral_consent", referral_id: string, in_force: boolean} |
 *   {type: "patient_waiting", room_id: string, waiting: number, waiting_since: number | null} |
 *   {type: "drafts_changed", room_id: string} |
 *   {type: "consultation_rescheduled", room_id: string} |
 *   {type: "department_queue_changed", department_id: string}} LiveEvent
 */

/**
 * @typedef {object} LiveOptions
 * @property {() => string | null} token the console's session token now (null: signed out)
 * @property {(event: LiveEvent) => void} onEvent
 * @property {(reconnected: boolean) => void} [onOpen] the stream is open; `reconnected` after a break
 * @property {(connected: boolean) => void} [onState]
 */

const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 30_000;

export class LiveEvents {
  /** @param {LiveOptions} opts */
  constructor(opts) {
    this.opts = opts;
    /** @type {AbortController | null} */
    this.abort = null;
    /** @type {number | undefined} */
    this.timer = undefined;
    this.running = false;
    this.opened = false;
    this.delay = FIRST_DELAY_MS;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.opened = false;
    this.delay = FIRST_DELAY_MS;
    void this.connect();
  }

  /** Closes the stream and cancels any reconnection (sign-out). */
  stop() {
    this.running = false;
    window.clearTimeout(this.timer);
    this.timer = undefined;
    this.abort?.abort();
    this.abort = null;
    this.opts.onState?.(false);
  }

  /** @param {number} ms */
  retry(ms) {
    if (!this.running) return;
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => void this.connect(), ms);
  }

  /** The pause before the next attempt after a failure; it doubles up to MAX_DELAY_MS. */
  backoff() {
    const ms = this.delay;
    this.delay = Math.min(MAX_DELAY_MS, this.delay * 2);
    // Some spread, so consoles cut off together do not all come back in the same instant.
    return ms + Math.floor(Math.random() * ms * 0.25);
  }

  async connect() {
    this.timer = undefined;
    if (!this.running) return;
    const token = this.opts.token();
    if (!token) {
      // Signed out meanwhile (the console stops us too); look again later.
      this.retry(this.backoff());
      return;
    }
    const abort = new AbortController();
    this.abort = abort;
    /** @type {Response} */
    let res;
    try {
      res = await fetch("/api/v1/events", {
        headers: { Accept: "text/event-stream", Authorization: `Bearer ${token}` },
        cache: "no-store",
        signal: abort.signal,
      });
    } catch {
      if (abort.signal.aborted) return;
      this.opts.onState?.(false);
      this.retry(this.backoff());
      return;
    }
    if (!res.ok || !res.body) {
      void res.body?.cancel().catch(() => undefined);
      this.opts.onState?.(false);
      // 403: not an account that gets notifications; nothing to retry.
      if (res.status === 403) {
        this.running = false;
        return;
      }
      // 401: the token ended. A renewed one is tried at once; otherwise wait (the console signs
      // out by itself when the session is over, and stops us).
      if (res.status === 401 && this.opts.token() !== token) {
        this.retry(0);
        return;
      }
      this.retry(this.backoff());
      return;
    }
    this.delay = FIRST_DELAY_MS;
    this.opts.onState?.(true);
    this.opts.onOpen?.(this.opened);
    this.opened = true;
    try {
      await this.read(res.body, abort.signal);
    } catch {
      // A dropped connection: reopened below.
    }
    if (abort.signal.aborted || !this.running) return;
    this.opts.onState?.(false);
    // The stream ended: normally the token's end; a renewed token is likely there by now.
    this.retry(this.backoff());
  }

  /**
   * Reads the event stream: lines, `data:` fields joined until a blank line ends an event,
   * comments (keep-alives) ignored.
   * @param {ReadableStream<Uint8Array>} body
   * @param {AbortSignal} signal
   */
  async read(body, signal) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    /** @type {string[]} */
    let data = [];
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || signal.aborted) return;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
          const line = buffer.slice(0, end);
          buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
          if (line === "") {
            if (data.length) this.dispatch(data.join("\n"));
            data = [];
          } else if (line.startsWith("data:")) {
            data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
          }
          // Comments (":"), `event:`, `id:` and `retry:` are not used by this stream.
        }
      }
    } finally {
      reader.releaseLock();
    }
  }

  /** @param {string} text */
  dispatch(text) {
    /** @type {unknown} */
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch {
      return;
    }
    if (parsed && typeof parsed === "object" && typeof (/** @type {{type?: unknown}} */ (parsed).type) === "string") {
      this.opts.onEvent(/** @type {LiveEvent} */ (parsed));
    }
  }
}
