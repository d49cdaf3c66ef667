// The waiting room as clinicians manage it (the server's `waiting_room`): a tab beside
// documents, chat and records with a badge counting who waits; each waiting person with name,
// role, how long they have waited, whether a clinician sent them back, and their pre-call check;
// Admit and Decline for each, Admit next, a message to everyone waiting, and Lock/Unlock for
// new arrivals. Sending someone back from the consultation starts at their tile (RoomView) and
// asks for a reason in the same small dialog as Decline.
//
// DOM contract (tests/browser relies on it): the tab `.tab[data-tab="queue-panel"]` with
// `#queue-count`; in #queue-panel, `.queue-item[data-participant-id]` (with `data-sent-back`,
// `.queue-waited`, `.queue-precall[data-connection]` (and `[data-media-path]` once the network
// check over the media path reported, with `[data-down-kbps]` and `[data-down-loss-permille]`
// when it measured the download), buttons `data-action="admit"` and
// `data-action="decline"`), `.queue-admit-next`, `.queue-lock` (aria-pressed), the message form
// `.queue-message-form`; the dialog #reason-dialog.
//
// The panel only shows what the server says: every change comes back as a new `waiting_room`.

import { el, must, roleParam, userText } from "./dom.js";
import { clearText, tr, trAttr } from "./i18n.js";
import { hasDownload, networkFigures } from "./net-check.js";

/** @typedef {import("./protocol.js").QueueInfo} QueueInfo */
/** @typedef {import("./protocol.js").WaiterInfo} WaiterInfo */
/** @typedef {import("./protocol.js").PrecallInfo} PrecallInfo */
/** @typedef {import("./protocol.js").ClientMessage} ClientMessage */

/** How often "waiting for N min" is brought up to date. */
const TICK_MS = 30_000;
/** The server's limit on a message to the waiting room and on a reason. */
export const MAX_WAITING_TEXT_CHARS = 500;

// What the clinicians read. Kept together here so that translations find them.
/** @typedef {import("./i18n.js").MessageKey} MessageKey */
/** @typedef {import("./i18n.js").Params} Params */
/** @typedef {{key: MessageKey, params?: Params}} Message */

/**
 * How long someone has waited, in words.
 * @param {number} s seconds
 * @returns {Message}
 */
function waited(s) {
  const minutes = Math.floor(Math.max(0, s) / 60);
  if (minutes < 1) return { key: "queue.waited_under_minute" };
  if (minutes < 60) return { key: "queue.waited_minutes", params: { m: minutes } };
  return { key: "queue.waited_hours", params: { h: Math.floor(minutes / 60), m: minutes % 60 } };
}

/** What a `not_waiting` answer means after each action. @type {Record<string, MessageKey>} */
const NOT_WAITING = {
  next: "queue.empty",
  decline: "queue.not_waiting.decline",
  send_back: "queue.not_waiting.send_back",
  admit: "error.not_waiting",
};

/**
 * The small modal dialog that asks for an optional reason (join.html's #reason-dialog), for
 * Decline and Send back.
 */
export class ReasonDialog {
  ui = {
    dialog: must("#reason-dialog", HTMLDialogElement),
    form: must("#reason-form", HTMLFormElement),
    title: must("#reason-dialog-title", HTMLElement),
    text: must("#reason-dialog-text", HTMLElement),
    input: must("#reason-input", HTMLInputElement),
    cancel: must("#reason-cancel", HTMLButtonElement),
    ok: must("#reason-ok", HTMLButtonElement),
  };

  /**
   * @param {{title: Message, text: MessageKey, ok: MessageKey}} ask
   * @returns {Promise<string | null>} the reason ("" for none), or null when cancelled
   */
  ask(ask) {
    const { dialog, form, input, cancel, ok } = this.ui;
    if (dialog.open) dialog.close();
    tr(this.ui.title, ask.title.key, ask.title.params);
    tr(this.ui.text, ask.text);
    tr(ok, ask.ok);
    input.value = "";
    input.maxLength = MAX_WAITING_TEXT_CHARS;
    return new Promise((resolve) => {
      /** @param {string | null} result */
      const done = (result) => {
        form.removeEventListener("submit", onSubmit);
        cancel.removeEventListener("click", onCancel);
        dialog.removeEventListener("close", onClose);
        if (dialog.open) dialog.close();
        resolve(result);
      };
      /** @param {SubmitEvent} ev */
      const onSubmit = (ev) => {
        ev.preventDefault();
        done(input.value.trim());
      };
      const onCancel = () => done(null);
      // Escape. A close event still on its way from an earlier ask finds the dialog open again.
      const onClose = () => {
        if (!dialog.open) done(null);
      };
      form.addEventListener("submit", onSubmit);
      cancel.addEventListener("click", onCancel);
      dialog.addEventListener("close", onClose);
      dialog.showModal();
      input.focus();
    });
  }
}

/**
 * @typedef {object} QueueHooks
 * @property {(msg: ClientMessage) => void} send
 * @property {(key: MessageKey, params?: Params) => void} notice a short notice in the room
 * @property {ReasonDialog} reasons
 */

/**
 * @typedef {object} QueueItem
 * @property {HTMLLIElement} root
 * @property {HTMLElement} name
 * @property {HTMLElement} role
 * @property {HTMLElement} sentBack
 * @property {HTMLElement} waited
 * @property {HTMLElement} precall
 * @property {HTMLButtonElement} admit
 * @property {HTMLButtonElement} decline
 * @property {WaiterInfo} waiter
 */

export class QueuePanel {
  /** @type {QueueHooks} */
  #hooks;
  /** @type {Map<string, QueueItem>} */
  #items = new Map();
  /** @type {QueueInfo | null} */
  #queue = null;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #ticker;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #statusTimer;
  /** What the latest moderation was, to word a `not_waiting` answer. */
  /** @type {"admit" | "next" | "decline" | "send_back"} */
  #last = "admit";
  ui;

  /**
   * @param {HTMLElement} root #queue-panel
   * @param {HTMLElement} tab its tab
   * @param {QueueHooks} hooks
   */
  constructor(root, tab, hooks) {
    this.#hooks = hooks;
    this.ui = {
      root,
      tab,
      count: must("#queue-count", HTMLElement, tab),
      list: must(".queue-list", HTMLUListElement, root),
      empty: must(".queue-empty", HTMLElement, root),
      admitNext: must(".queue-admit-next", HTMLButtonElement, root),
      lock: must(".queue-lock", HTMLButtonElement, root),
      lockStatus: must(".queue-lock-status", HTMLElement, root),
      messageForm: must(".queue-message-form", HTMLFormElement, root),
      messageInput: must("#queue-message-input", HTMLTextAreaElement, root),
      messageClear: must(".queue-message-clear", HTMLButtonElement, root),
      messageCurrent: must(".queue-message-current", HTMLElement, root),
      status: must(".queue-status", HTMLElement, root),
    };
    this.ui.messageInput.maxLength = MAX_WAITING_TEXT_CHARS;
    this.ui.admitNext.addEventListener("click", () => {
      this.#last = "next";
      hooks.send({ type: "admit" });
    });
    this.ui.lock.addEventListener("click", () => {
      hooks.send({ type: "lock", locked: !(this.#queue?.locked ?? false) });
    });
    this.ui.messageForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const text = this.ui.messageInput.value.trim();
      if (!text) {
        this.ui.messageInput.focus();
        return;
      }
      hooks.send({ type: "waiting_message", text });
      this.ui.messageInput.value = "";
      this.say("queue.message_sent");
    });
    this.ui.messageClear.addEventListener("click", () => {
      hooks.send({ type: "waiting_message", text: "" });
      this.ui.messageInput.value = "";
      this.say("queue.message_cleared");
    });
  }

  /**
   * A short status line at the top of the panel, gone after a while.
   * @param {MessageKey} key
   */
  say(key) {
    tr(this.ui.status, key);
    clearTimeout(this.#statusTimer);
    this.#statusTimer = setTimeout(() => {
      clearText(this.ui.status);
    }, 8000);
  }

  /**
   * Shows the tab and the queue (a clinician's welcome), or hides them (anyone else's).
   * @param {QueueInfo | undefined} queue
   */
  enter(queue) {
    this.ui.tab.hidden = !queue;
    if (!queue) {
      if (this.ui.tab.getAttribute("aria-selected") === "true") this.ui.root.hidden = true;
      this.stop();
      this.#queue = null;
      return;
    }
    this.update(queue, false);
    if (this.#ticker === undefined) this.#ticker = setInterval(() => this.#tick(), TICK_MS);
  }

  /**
   * The queue as it stands now.
   * @param {QueueInfo} queue
   * @param {boolean} announce say who newly arrived
   */
  update(queue, announce) {
    const before = new Set(this.#items.keys());
    this.#queue = queue;
    const { ui } = this;
    const ids = new Set(queue.waiting.map((w) => w.id));
    for (const [id, item] of this.#items) {
      if (!ids.has(id)) {
        item.root.remove();
        this.#items.delete(id);
      }
    }
    const order = queue.waiting.map((w) => this.#upsert(w));
    // Reorder only when the order changed: moving a node would take the focus off its buttons.
    const current = [...ui.list.children];
    if (order.length !== current.length || order.some((item, i) => item.root !== current[i])) {
      ui.list.append(...order.map((item) => item.root));
    }
    const n = queue.waiting.length;
    ui.count.textContent = String(n);
    ui.count.hidden = n === 0;
    ui.tab.dataset.count = String(n);
    ui.empty.hidden = n > 0;
    ui.admitNext.disabled = n === 0;
    tr(ui.lock, queue.locked ? "queue.unlock" : "queue.lock");
    ui.lock.setAttribute("aria-pressed", String(queue.locked));
    trAttr(ui.lock, "aria-label", queue.locked ? "queue.unlock_label" : "queue.lock_label");
    tr(ui.lockStatus, queue.locked ? "queue.locked" : "queue.unlocked");
    ui.root.dataset.locked = String(queue.locked);
    if (queue.message) tr(ui.messageCurrent, "queue.current_message", { text: queue.message });
    else tr(ui.messageCurrent, "queue.no_message");
    ui.messageClear.disabled = !queue.message;
    if (announce) {
      const arrived = queue.waiting.filter((w) => !before.has(w.id));
      if (arrived.length) this.#hooks.notice("queue.arrived", { names: arrived.map((w) => w.name).join(", ") });
    }
  }

  /**
   * A clinician's admit, decline or send back found nobody to act on (`not_waiting`): says so
   * in the panel, and returns the words for the room's notice.
   * @returns {MessageKey}
   */
  notWaiting() {
    const key = NOT_WAITING[this.#last] ?? "error.not_waiting";
    this.say(key);
    return key;
  }

  /**
   * Asks for a reason and sends a participant in the room back to the waiting room.
   * @param {{id: string, name: string}} who
   */
  async sendBack(who) {
    const reason = await this.#hooks.reasons.ask({
      title: { key: "queue.send_back_title", params: { name: who.name } },
      text: "queue.send_back_text",
      ok: "room.send_back",
    });
    if (reason === null) return;
    this.#last = "send_back";
    this.#hooks.send(reason ? { type: "send_back", participant_id: who.id, reason } : { type: "send_back", participant_id: who.id });
  }

  stop() {
    if (this.#ticker !== undefined) clearInterval(this.#ticker);
    this.#ticker = undefined;
  }

  /**
   * @param {WaiterInfo} w
   * @returns {QueueItem}
   */
  #upsert(w) {
    let item = this.#items.get(w.id);
    if (!item) {
      item = this.#create(w);
      this.#items.set(w.id, item);
    }
    item.waiter = w;
    userText(item.name, w.name);
    tr(item.role, "common.param", { text: roleParam(w.role) });
    item.sentBack.hidden = !w.sent_back;
    item.root.dataset.sentBack = String(w.sent_back);
    trAttr(item.admit, "aria-label", "queue.admit_label", { name: w.name });
    trAttr(item.decline, "aria-label", "queue.decline_label", { name: w.name });
    this.#renderWaited(item);
    this.#renderPrecall(item.precall, w.precall);
    return item;
  }

  /**
   * @param {WaiterInfo} w
   * @returns {QueueItem}
   */
  #create(w) {
    const name = el("strong", { className: "queue-name" });
    const role = el("span", { className: "queue-role" });
    const sentBack = el("span", { className: "badge badge-sent-back", i18n: "queue.sent_back" });
    const waited = el("span", { className: "queue-waited" });
    const precall = el("p", { className: "queue-precall" });
    const admit = el("button", { className: "btn btn-primary btn-small", i18n: "queue.admit", attrs: { type: "button", "data-action": "admit" } });
    const decline = el("button", { className: "btn btn-danger btn-small", i18n: "queue.decline", attrs: { type: "button", "data-action": "decline" } });
    const root = el(
      "li",
      { className: "queue-item" },
      el("div", { className: "queue-who" }, name, role, sentBack),
      waited,
      precall,
      el("div", { className: "actions" }, admit, decline),
    );
    root.dataset.participantId = w.id;
    /** @type {QueueItem} */
    const item = { root, name, role, sentBack, waited, precall, admit, decline, waiter: w };
    admit.addEventListener("click", () => {
      this.#last = "admit";
      this.#hooks.send({ type: "admit", participant_id: item.waiter.id });
    });
    decline.addEventListener("click", async () => {
      const who = item.waiter;
      const reason = await this.#hooks.reasons.ask({
        title: { key: "queue.decline_title", params: { name: who.name } },
        text: "queue.decline_text",
        ok: "queue.decline",
      });
      if (reason === null) return;
      this.#last = "decline";
      this.#hooks.send(reason ? { type: "decline", participant_id: who.id, reason } : { type: "decline", participant_id: who.id });
    });
    return item;
  }

  /** @param {QueueItem} item */
  #renderWaited(item) {
    const { key, params } = waited(Date.now() / 1000 - item.waiter.waiting_since);
    // Only when it changed: the line is read out again by screen readers on every change.
    const shown = `${key} ${JSON.stringify(params ?? {})}`;
    if (item.waited.dataset.shown === shown) return;
    item.waited.dataset.shown = shown;
    tr(item.waited, key, params);
  }

  #tick() {
    for (const item of this.#items.values()) this.#renderWaited(item);
  }

  /**
   * The pre-call check as icons with words: camera, microphone, connection, and the speaker
   * when they tried the test sound.
   * @param {HTMLElement} node
   * @param {PrecallInfo | null} p
   */
  #renderPrecall(node, p) {
    const key = JSON.stringify(p);
    if (node.dataset.key === key) return;
    node.dataset.key = key;
    if (!p) {
      node.replaceChildren(el("span", { className: "precall-none", i18n: "queue.no_precall" }));
      delete node.dataset.connection;
      return;
    }
    node.dataset.connection = p.connection;
    if (p.media_path) node.dataset.mediaPath = p.media_path;
    else delete node.dataset.mediaPath;
    if (p.down_kbps !== undefined) node.dataset.downKbps = String(p.down_kbps);
    else delete node.dataset.downKbps;
    if (p.down_estimate_kbps !== undefined) node.dataset.downEstimateKbps = String(p.down_estimate_kbps);
    else delete node.dataset.downEstimateKbps;
    if (p.down_loss_permille !== undefined) node.dataset.downLossPermille = String(p.down_loss_permille);
    else delete node.dataset.downLossPermille;
    node.dataset.camera = String(p.camera);
    node.dataset.microphone = String(p.microphone);
    const bad = p.connection === "poor";
    node.dataset.speaker = p.speaker ?? "untested";
    const camera = p.camera ? "queue.precall.camera_ok" : p.camera_state === "denied" ? "queue.precall.camera_denied" : "queue.precall.camera_none";
    const microphone = p.microphone
      ? "queue.precall.microphone_ok"
      : p.microphone_state === "denied"
        ? "queue.precall.microphone_denied"
        : "queue.precall.microphone_none";
    node.replaceChildren(
      precallPart("camera", p.camera, { key: camera }),
      precallPart("microphone", p.microphone, { key: microphone }),
      precallPart(`connection-${p.connection}`, !bad && p.connection !== "unknown", connectionWords(p)),
    );
    // The test sound's answer: only when they tried it.
    if (p.speaker === "heard" || p.speaker === "not_heard") {
      const heard = p.speaker === "heard";
      node.append(precallPart("speaker", heard, { key: heard ? "queue.precall.speaker_heard" : "queue.precall.speaker_not_heard" }));
    }
  }
}

/**
 * One item of the pre-call summary: an icon (decorative) and its words.
 * @param {string} icon camera | microphone | speaker | connection-<quality>
 * @param {boolean} ok
 * @param {Message} text
 */
function precallPart(icon, ok, text) {
  const words = el("span", { i18n: text.key, params: text.params });
  return el("span", { className: ok ? "precall-part precall-ok" : "precall-part precall-problem" }, svgIcon(icon), words);
}

/**
 * @param {PrecallInfo} p
 * @returns {Message}
 */
function connectionWords(p) {
  // The network check over the media path, when one ran, says more than a signaling ping.
  if (p.media_path === "failed") return { key: "queue.precall.media_failed" };
  if (p.connection === "unknown") return { key: "queue.precall.connection_unknown" };
  const quality = { key: /** @type {MessageKey} */ (`queue.precall.quality.${p.connection}`) };
  if (p.media_path === "connected") {
    const figures = {
      rtt: p.media_rtt_ms,
      lossPermille: p.loss_permille,
      upKbps: p.up_kbps,
      sentKbps: p.up_sent_kbps,
      downKbps: p.down_kbps,
      downEstimateKbps: p.down_estimate_kbps,
      downLossPermille: p.down_loss_permille,
      downJitterMs: p.down_jitter_ms,
    };
    return {
      // Older clients measured the upload only.
      key: hasDownload(figures) ? "queue.precall.media_path_both" : "queue.precall.media_path",
      params: { quality, ...networkFigures(figures) },
    };
  }
  if (p.rtt_ms === undefined) return { key: "queue.precall.connection", params: { quality } };
  return { key: "queue.precall.connection_rtt", params: { quality, rtt: p.rtt_ms } };
}

const SVG = "http://www.w3.org/2000/svg";

/**
 * Small line icons, drawn here so that they need no font or file.
 * @param {string} name
 * @returns {SVGSVGElement}
 */
function svgIcon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "18");
  svg.setAttribute("height", "18");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.classList.add("icon");
  /** @param {string} tag @param {Record<string, string>} attrs */
  const add = (tag, attrs) => {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    svg.append(node);
  };
  if (name === "camera") {
    add("rect", { x: "2", y: "6", width: "14", height: "12", rx: "2" });
    add("path", { d: "M16 10l6-3v10l-6-3z" });
  } else if (name === "speaker") {
    add("path", { d: "M3 9h4l5-4v14l-5-4H3z" });
    add("path", { d: "M16 9a4 4 0 0 1 0 6M19 6a8 8 0 0 1 0 12" });
  } else if (name === "microphone") {
    add("rect", { x: "9", y: "2", width: "6", height: "12", rx: "3" });
    add("path", { d: "M5 11a7 7 0 0 0 14 0M12 18v4M8 22h8" });
  } else {
    // Signal bars: as many filled as the connection deserves.
    /** @type {Record<string, number>} */
    const bars = { "connection-good": 3, "connection-fair": 2, "connection-poor": 1 };
    const filled = bars[name] ?? 0;
    [
      ["3", "14", "4", "6"],
      ["10", "9", "4", "11"],
      ["17", "4", "4", "16"],
    ].forEach(([x, y, width, height], i) => {
      add("rect", { x, y, width, height, rx: "1", class: i < filled ? "bar-on" : "bar-off" });
    });
  }
  return svg;
}
