// The signaling link: one WebSocket to /ws speaking protocol version 1 (docs/protocol.md).
//
// This module owns the socket's lifecycle and nothing else: it never touches the peer
// connection or the page. Its job is to keep one participant present in the room across
// network hiccups. When the socket drops after a successful join it reports "reconnecting" and
// sends `resume` on fresh sockets with exponential backoff until the server's resume window
// (`resume_window_s`) is spent; the peer connection carries on untouched meanwhile, which is
// why a resume needs no renegotiation. Everything that ends the link for good (a fatal error,
// a refusing close code, leave, giving up) is reported once, through `onEnd`.
//
// Someone who joins a consultation with a waiting room is first answered `waiting`: the socket is
// then open for the few messages a waiting person may send (`precall`, `ping`, `leave`) and kept
// alive with pings, but there is nothing to resume (a waiting person holds no resume token), so
// a drop while waiting ends the link with `dropped_waiting` and the page joins the queue again.
// `joined` arrives on the same socket when a clinician admits them.
//
// Tokens are bearer secrets: nothing here logs messages.

import { PROTOCOL_VERSION, parseServerMessage } from "./protocol.js";

/** @typedef {import("./protocol.js").ServerMessage} ServerMessage */
/** @typedef {import("./protocol.js").ClientMessage} ClientMessage */
/** @typedef {import("./protocol.js").JoinMessage} JoinMessage */
/** @typedef {import("./protocol.js").ResumeMessage} ResumeMessage */
/** @typedef {import("./protocol.js").ErrorCode} ErrorCode */

/**
 * How the link ended.
 * - `left`: after `leave()`.
 * - `fatal`: the server sent a fatal error (the code says which) and closed.
 * - `closed`: the socket closed with a code that forbids resuming, or before any join succeeded.
 * - `gave_up`: the resume window passed without a successful resume.
 * - `dropped_waiting`: the socket dropped while waiting to be admitted (nothing to resume: join
 *   again).
 * `message` of a fatal error is the server's English, for developers; `clinicReason` (with
 * `declined` and `removed`) is what the clinician wrote to the person, when they wrote anything.
 * @typedef {{reason: "left"} | {reason: "fatal", code: ErrorCode, message: string, clinicReason?: string} |
 *   {reason: "closed", closeCode: number, everJoined: boolean} | {reason: "gave_up"} |
 *   {reason: "dropped_waiting"}} LinkEnd
 */

/**
 * @typedef {object} SignalingHooks
 * @property {(msg: ServerMessage) => void} onMessage every server message except `pong`, in order
 * @property {(status: "open" | "reconnecting") => void} onStatus
 * @property {(end: LinkEnd) => void} onEnd called at most once; the client is dead afterwards
 * @property {(resumeToken: string) => void} onResumeToken a fresh resume token to keep for a reload
 */

/**
 * Close codes after which a resume cannot succeed (docs/protocol.md, "WebSocket close codes").
 * Anything else (1001 going away, 1006 abnormal, 1011 internal, ...) is worth a resume.
 */
const FINAL_CLOSE_CODES = new Set([1000, 1003, 1008, 1009, 4000, 4001, 4002, 4003, 4004, 4006, 4007, 4008, 4404]);

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 8000;
/** A ping keeps NAT and proxies from idling the socket out and lets us notice a dead one. */
const PING_EVERY_MS = 10_000;
/** Nothing heard for this long (pings unanswered): the socket is dead even if the OS says not. */
const SILENCE_LIMIT_MS = 25_000;

export class SignalingClient {
  /** @type {string} */
  #url;
  /** @type {SignalingHooks} */
  #hooks;
  /** @type {WebSocket | null} */
  #ws = null;
  /** True once `joined`/`resumed` arrived on the current socket: only then may we send. */
  #live = false;
  /** True once any join succeeded: from then on a drop is resumable (unless waiting). */
  #everJoined = false;
  /** True while waiting to be admitted (after `waiting`, until `joined`). */
  #waiting = false;
  #resumeToken = "";
  #resumeWindowMs = 30_000;
  /** When the link dropped (ms since epoch), 0 while connected. */
  #droppedAt = 0;
  #attempt = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #retryTimer;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #pingTimer;
  #lastHeard = 0;
  #pingId = 0;
  /** @type {Map<number, () => void>} pongs awaited by `measureRtt`, by ping id */
  #rttProbes = new Map();
  /** @type {import("./protocol.js").ErrorMessage | null} fatal error seen on the current socket */
  #fatal = null;
  #ended = false;
  #leaving = false;
  /**
   * Messages that could not be sent while reconnecting, by type: only the latest of each
   * matters (the newest answer, the current media state), and they are flushed after `resumed`.
   * @type {Map<string, ClientMessage>}
   */
  #pending = new Map();
  #onOnline = () => {
    // The network came back: try now instead of waiting out the backoff.
    if (this.#droppedAt && this.#retryTimer !== undefined && !this.#ws) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
      this.#resume();
    }
  };

  /**
   * @param {string} url the wss:// URL of /ws
   * @param {SignalingHooks} hooks
   */
  constructor(url, hooks) {
    this.#url = url;
    this.#hooks = hooks;
    window.addEventListener("online", this.#onOnline);
  }

  /**
   * Opens the socket and joins.
   * @param {JoinMessage} join
   */
  connect(join) {
    this.#open(join);
  }

  /**
   * Sends a message if the link is up. `answer` and `media_state` are kept while reconnecting
   * and sent after the resume; other messages are dropped then (they make no sense later).
   * @param {ClientMessage} msg
   * @returns {boolean} whether it went out now
   */
  send(msg) {
    if (this.#ended) return false;
    if (this.#ws && this.#live && this.#ws.readyState === WebSocket.OPEN) {
      this.#ws.send(JSON.stringify(msg));
      return true;
    }
    if (msg.type === "answer" || msg.type === "media_state") this.#pending.set(msg.type, msg);
    return false;
  }

  /**
   * Leaves the room: sends `leave` and waits (briefly) for the server's normal close.
   * @returns {Promise<void>}
   */
  leave() {
    return new Promise((resolve) => {
      const ws = this.#ws;
      if (this.#ended || !ws || !this.#live) {
        // Mid-reconnect there is no socket to say goodbye on; the server drops the participant
        // when its resume window runs out.
        this.#end({ reason: "left" });
        resolve();
        return;
      }
      this.#leaving = true;
      ws.send(JSON.stringify({ type: "leave" }));
      // The server answers `leave` by closing with 1000; don't hang if it never does.
      const timer = setTimeout(() => this.#end({ reason: "left" }), 2000);
      ws.addEventListener("close", () => {
        clearTimeout(timer);
        resolve();
      });
      setTimeout(resolve, 2100);
    });
  }

  /**
   * Drops the link without `leave` and without reporting `onEnd`: the caller has already
   * decided what comes next (the room ended, or it rejoins on a new peer connection).
   */
  stop() {
    this.#ended = true;
    this.#teardown();
  }

  /**
   * Measures the round trip of one signaling `ping` on the open socket.
   * @param {number} timeoutMs
   * @returns {Promise<number | null>} milliseconds, or null when no pong came in time (or the
   *   socket is not open)
   */
  measureRtt(timeoutMs) {
    const ws = this.#ws;
    if (this.#ended || !ws || !this.#live || ws.readyState !== WebSocket.OPEN) return Promise.resolve(null);
    this.#pingId += 1;
    const id = this.#pingId;
    return new Promise((resolve) => {
      const started = performance.now();
      const timer = setTimeout(() => {
        this.#rttProbes.delete(id);
        resolve(null);
      }, timeoutMs);
      this.#rttProbes.set(id, () => {
        clearTimeout(timer);
        resolve(Math.round(performance.now() - started));
      });
      ws.send(JSON.stringify({ type: "ping", id }));
    });
  }

  /** @returns {boolean} whether a drop is being recovered from */
  get reconnecting() {
    return this.#droppedAt !== 0;
  }

  /** @param {JoinMessage | ResumeMessage} first */
  #open(first) {
    let ws;
    try {
      ws = new WebSocket(this.#url);
    } catch {
      this.#onClose(null, 1006);
      return;
    }
    this.#ws = ws;
    this.#live = false;
    this.#fatal = null;
    ws.onopen = () => {
      this.#lastHeard = Date.now();
      ws.send(JSON.stringify(first));
    };
    ws.onmessage = (ev) => {
      if (ws !== this.#ws) return;
      // The protocol is text only; a binary frame from the server is ignored, not echoed.
      if (typeof ev.data !== "string") return;
      this.#lastHeard = Date.now();
      const msg = parseServerMessage(ev.data);
      if (msg) this.#onMessage(msg);
    };
    ws.onclose = (ev) => this.#onClose(ws, ev.code);
  }

  /** @param {ServerMessage} msg */
  #onMessage(msg) {
    switch (msg.type) {
      case "pong": {
        const probe = this.#rttProbes.get(msg.id);
        this.#rttProbes.delete(msg.id);
        probe?.();
        return;
      }
      case "waiting":
        // Waiting to be admitted: the socket may carry `precall`, pings and `leave`; nothing
        // kept for the room (an answer, a media state) makes sense any more.
        this.#live = true;
        this.#waiting = true;
        this.#pending.clear();
        this.#startPings();
        this.#hooks.onMessage(msg);
        return;
      case "joined":
      case "resumed":
        this.#live = true;
        this.#waiting = false;
        this.#everJoined = true;
        this.#droppedAt = 0;
        this.#attempt = 0;
        this.#resumeToken = msg.resume_token;
        this.#resumeWindowMs = Math.max(1, msg.resume_window_s) * 1000;
        this.#hooks.onResumeToken(msg.resume_token);
        this.#startPings();
        this.#hooks.onMessage(msg);
        this.#hooks.onStatus("open");
        this.#flushPending();
        return;
      case "error":
        if (msg.fatal) this.#fatal = msg;
        this.#hooks.onMessage(msg);
        return;
      default:
        this.#hooks.onMessage(msg);
    }
  }

  #flushPending() {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const msg of pending) this.send(msg);
  }

  /**
   * @param {WebSocket | null} ws the socket that closed (null: it could not even be created)
   * @param {number} code
   */
  #onClose(ws, code) {
    if (ws && ws !== this.#ws) return; // an old socket we already gave up on
    this.#stopPings();
    this.#ws = null;
    this.#live = false;
    if (this.#ended) return;
    if (this.#leaving) {
      this.#end({ reason: "left" });
      return;
    }
    const fatal = this.#fatal;
    // `internal` is the one fatal error that invites a reconnect (docs/protocol.md).
    if (fatal && !(fatal.code === "internal" && this.#everJoined)) {
      this.#end({ reason: "fatal", code: fatal.code, message: fatal.message, clinicReason: fatal.clinic_reason });
      return;
    }
    if (this.#waiting && !FINAL_CLOSE_CODES.has(code)) {
      // A waiting person holds no resume token (nor does one sent back: theirs died with
      // their place in the room).
      this.#end({ reason: "dropped_waiting" });
      return;
    }
    if (!this.#everJoined || FINAL_CLOSE_CODES.has(code)) {
      this.#end({ reason: "closed", closeCode: code, everJoined: this.#everJoined });
      return;
    }
    if (!this.#droppedAt) {
      this.#droppedAt = Date.now();
      this.#hooks.onStatus("reconnecting");
    }
    this.#scheduleResume();
  }

  #scheduleResume() {
    const deadline = this.#droppedAt + this.#resumeWindowMs;
    const now = Date.now();
    if (now >= deadline) {
      this.#end({ reason: "gave_up" });
      return;
    }
    const backoff = Math.min(BACKOFF_FIRST_MS * 2 ** this.#attempt, BACKOFF_MAX_MS);
    // Jitter spreads out the reconnects of everyone in a room after a shared network blip.
    const delay = Math.min(backoff * (0.75 + Math.random() * 0.5), deadline - now);
    this.#attempt += 1;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#resume();
    }, delay);
  }

  #resume() {
    if (this.#ended) return;
    if (Date.now() >= this.#droppedAt + this.#resumeWindowMs) {
      this.#end({ reason: "gave_up" });
      return;
    }
    this.#open({ type: "resume", v: PROTOCOL_VERSION, resume_token: this.#resumeToken });
  }

  #startPings() {
    this.#stopPings();
    this.#pingTimer = setInterval(() => {
      const ws = this.#ws;
      if (!ws) return;
      if (Date.now() - this.#lastHeard > SILENCE_LIMIT_MS) {
        // A half-open TCP connection can look open for minutes; treat silence as a drop.
        ws.onclose = null;
        ws.onmessage = null;
        ws.close();
        this.#onClose(ws, 1006);
        return;
      }
      if (ws.readyState === WebSocket.OPEN) {
        this.#pingId += 1;
        ws.send(JSON.stringify({ type: "ping", id: this.#pingId }));
      }
    }, PING_EVERY_MS);
  }

  #stopPings() {
    if (this.#pingTimer !== undefined) clearInterval(this.#pingTimer);
    this.#pingTimer = undefined;
  }

  /** @param {LinkEnd} end */
  #end(end) {
    if (this.#ended) return;
    this.#ended = true;
    this.#teardown();
    this.#hooks.onEnd(end);
  }

  #teardown() {
    this.#stopPings();
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    window.removeEventListener("online", this.#onOnline);
    const ws = this.#ws;
    this.#ws = null;
    this.#live = false;
    if (ws) {
      ws.onmessage = null;
      ws.onclose = null;
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000);
    }
  }
}
