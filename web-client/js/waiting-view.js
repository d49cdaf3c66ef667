// The waiting screen: what someone who came with an invitation sees until a clinician admits
// them (the server's `waiting`, src/signaling/protocol.rs). Many of them are elderly and on a phone, so it says only a
// few things, in large high-contrast text: which consultation, their place in line, the wait
// when the server can estimate it (counted down here between its messages), the clinic's message, why they wait again when a clinician
// sent them back, and their own camera picture with the result of the pre-call check. One
// button: Leave.
//
// DOM contract (tests/browser relies on it): #waiting-screen, #waiting-position (an aria-live
// region), #waiting-estimate, #waiting-message-text, #waiting-reason, #waiting-leave; the
// network check's #waiting-network (`data-path` connected | failed, `data-quality` (the weaker
// direction's), `data-up-quality` and, when the download was measured, `data-down-quality`, and
// while it runs `data-checking`).
//
// The view only renders what it is told; the app owns the socket and the camera.

import { must, userText } from "./dom.js";
import { clearText, t, tr } from "./i18n.js";
import { downQuality, hasDownload, mediaPathQuality, networkFigures, upQuality } from "./net-check.js";

/** @typedef {import("./protocol.js").WaitingMessage} WaitingMessage */
/** @typedef {import("./protocol.js").PrecallInfo} PrecallInfo */

/** @typedef {import("./i18n.js").MessageKey} MessageKey */
/** @typedef {import("./i18n.js").Params} Params */
/** @typedef {import("./net-check.js").MediaPathResult} MediaPathResult */

/** @type {Record<PrecallInfo["connection"], MessageKey>} */
const ADVICE = {
  good: "waiting.network.advice_good",
  fair: "waiting.network.advice_fair",
  poor: "waiting.network.advice_poor",
  unknown: "waiting.network.advice_fair",
};

/** The advice when the download is the weaker direction. @type {Record<"fair" | "poor", MessageKey>} */
const DOWN_ADVICE = {
  fair: "waiting.network.advice_fair_down",
  poor: "waiting.network.advice_poor_down",
};


/** @type {Record<PrecallInfo["connection"], MessageKey>} */
const CONNECTION = {
  good: "waiting.check.connection_good",
  fair: "waiting.check.connection_fair",
  poor: "waiting.check.connection_poor",
  unknown: "waiting.check.connection_unknown",
};

/**
 * How long a wait is, in words a patient reads at a glance, as a message parameter.
 * @param {number} seconds
 * @returns {import("./i18n.js").Param} e.g. "about 10 minutes"
 */
export function waitParam(seconds) {
  const minutes = Math.max(1, Math.round(seconds / 60));
  if (minutes < 90) return { key: "waiting.about_minutes", params: { n: minutes } };
  return { key: "waiting.about_hours", params: { n: Math.round(minutes / 60) } };
}

/**
 * The connection quality reported in `precall`, from a signaling round trip.
 * @param {number | null} rttMs null: no answer came
 * @returns {PrecallInfo["connection"]}
 */
export function connectionQuality(rttMs) {
  if (rttMs === null) return "poor";
  if (rttMs < 150) return "good";
  if (rttMs < 400) return "fair";
  return "poor";
}

/** How often the estimate is counted down between the server's messages. */
const ESTIMATE_EVERY_MS = 30_000;

export class WaitingView {
  /** @type {HTMLElement} */
  #root;
  ui;
  /** The server's last estimate and when it came (ms since the epoch): counted down from. */
  /** @type {{seconds: number, at: number} | null} */
  #estimate = null;
  /** @type {number | undefined} */
  #estimateTimer;

  /**
   * @param {HTMLElement} root #waiting-screen
   * @param {() => void} onLeave
   */
  constructor(root, onLeave) {
    this.#root = root;
    this.ui = {
      consultation: must("#waiting-consultation", HTMLElement, root),
      title: must("#waiting-title", HTMLElement, root),
      sentBack: must("#waiting-sent-back", HTMLElement, root),
      sentBackText: must("#waiting-sent-back-text", HTMLElement, root),
      reason: must("#waiting-reason", HTMLElement, root),
      position: must("#waiting-position", HTMLElement, root),
      estimate: must("#waiting-estimate", HTMLElement, root),
      slot: must("#waiting-slot", HTMLElement, root),
      message: must("#waiting-message", HTMLElement, root),
      messageText: must("#waiting-message-text", HTMLElement, root),
      reconnecting: must("#waiting-reconnecting", HTMLElement, root),
      preview: must("#waiting-preview", HTMLVideoElement, root),
      checks: must("#waiting-checks", HTMLElement, root),
      network: must("#waiting-network", HTMLElement, root),
      networkFigures: must("#waiting-network .net-figures", HTMLElement, root),
      networkAdvice: must("#waiting-network .net-advice", HTMLElement, root),
      leave: must("#waiting-leave", HTMLButtonElement, root),
    };
    this.ui.leave.addEventListener("click", () => {
      this.ui.leave.disabled = true;
      onLeave();
    });
  }

  /**
   * @param {WaitingMessage} msg
   * @param {boolean} [moved] the care team moved the consultation since the last message
   */
  show(msg, moved = false) {
    const { ui } = this;
    if (msg.room.title) userText(ui.consultation, msg.room.title);
    else tr(ui.consultation, "join.room_title");
    tr(ui.title, msg.sent_back ? "waiting.title_sent_back" : "waiting.title");
    ui.sentBack.hidden = !msg.sent_back;
    tr(ui.sentBackText, "waiting.sent_back");
    // The clinician's own words as they wrote them; otherwise why, in the page's language (the
    // server's `sent_back` is English).
    if (msg.clinic_reason) tr(ui.reason, "waiting.reason", { reason: msg.clinic_reason });
    else if (msg.sent_back_why === "awaits_consent") tr(ui.reason, "waiting.reason_awaits_consent");
    else if (msg.sent_back) tr(ui.reason, "waiting.reason_care_team");
    else clearText(ui.reason);
    this.#setText(ui.position, "waiting.position", { n: msg.position, of: msg.of });
    ui.position.dataset.position = String(msg.position);
    ui.position.dataset.of = String(msg.of);
    this.#estimate = msg.estimated_wait_s === null ? null : { seconds: msg.estimated_wait_s, at: Date.now() };
    this.#showEstimate();
    // The server speaks again only when the queue moves; until then the wait counts down here
    // (someone early for their time sees it shrink).
    if (this.#estimateTimer === undefined) this.#estimateTimer = window.setInterval(() => this.#showEstimate(), ESTIMATE_EVERY_MS);
    if (msg.slot_start === null || msg.slot_minutes === null) {
      this.#setText(ui.slot, null);
      delete ui.slot.dataset.slotStart;
    } else {
      // A move says so until the next one; the date too, as it may be another day.
      const wasMoved = moved || (ui.slot.dataset.moved === "true" && ui.slot.dataset.slotStart === String(msg.slot_start));
      const params = { time: { at: msg.slot_start * 1000, style: /** @type {const} */ ("datetime") }, minutes: msg.slot_minutes };
      this.#setText(ui.slot, wasMoved ? "waiting.slot_moved" : "waiting.slot", params);
      ui.slot.dataset.slotStart = String(msg.slot_start);
      ui.slot.dataset.moved = String(wasMoved);
    }
    ui.slot.hidden = msg.slot_start === null;
    // The clinic's own words: shown as written, in whichever language they wrote.
    ui.messageText.setAttribute("data-user-content", "");
    if (ui.messageText.textContent !== (msg.message ?? "")) ui.messageText.textContent = msg.message ?? "";
    ui.message.hidden = !msg.message;
    ui.reconnecting.hidden = true;
    ui.leave.disabled = false;
  }

  /**
   * Shows the camera that will be used once admitted: it stays on while waiting so that
   * admission is instant (and people see they are ready).
   * @param {MediaStream | null} stream
   */
  setPreview(stream) {
    const video = this.ui.preview;
    if (video.srcObject !== stream) video.srcObject = stream;
    video.hidden = !stream || stream.getVideoTracks().length === 0;
    if (stream) video.play().catch(() => undefined);
  }

  /**
   * The pre-call check in words: null while it runs.
   * @param {PrecallInfo | null} result
   * @param {boolean} observer joins without camera and microphone
   */
  setChecks(result, observer) {
    const checks = this.ui.checks;
    if (observer) {
      tr(checks, "waiting.check.observer");
      delete checks.dataset.connection;
      return;
    }
    if (!result) {
      tr(checks, "waiting.check.checking");
      delete checks.dataset.connection;
      return;
    }
    /** @type {MessageKey} */
    const camera = result.camera ? "waiting.check.camera_ok" : result.camera_state === "denied" ? "waiting.check.camera_denied" : "waiting.check.camera_none";
    /** @type {MessageKey} */
    const microphone = result.microphone
      ? "waiting.check.microphone_ok"
      : result.microphone_state === "denied"
        ? "waiting.check.microphone_denied"
        : "waiting.check.microphone_none";
    const params = { camera: { key: camera }, microphone: { key: microphone }, connection: { key: CONNECTION[result.connection] } };
    if (result.speaker === "heard" || result.speaker === "not_heard") {
      /** @type {MessageKey} */
      const speaker = result.speaker === "heard" ? "waiting.check.speaker_heard" : "waiting.check.speaker_not_heard";
      tr(checks, "waiting.check.result_speaker", { ...params, speaker: { key: speaker } });
    } else {
      tr(checks, "waiting.check.result", params);
    }
    checks.dataset.connection = result.connection;
    checks.dataset.camera = result.camera_state ?? String(result.camera);
    checks.dataset.microphone = result.microphone_state ?? String(result.microphone);
  }

  /**
   * The network check over the media path: null while it runs, then what it found; hidden
   * when none ran (the server had no room for one, or the person was let in first).
   * @param {MediaPathResult | null | undefined} result undefined: none ran
   */
  setNetwork(result) {
    const { network, networkFigures: figures, networkAdvice: advice } = this.ui;
    delete network.dataset.checking;
    delete network.dataset.path;
    delete network.dataset.quality;
    delete network.dataset.upQuality;
    delete network.dataset.downQuality;
    if (result === undefined) {
      network.hidden = true;
      return;
    }
    network.hidden = false;
    if (result === null) {
      network.dataset.checking = "";
      clearText(figures);
      tr(advice, "waiting.network.checking");
      return;
    }
    network.dataset.path = result.path;
    if (result.path === "failed") {
      clearText(figures);
      tr(advice, "waiting.network.failed");
      return;
    }
    const quality = mediaPathQuality(result);
    const up = upQuality(result);
    const down = downQuality(result);
    network.dataset.quality = quality;
    network.dataset.upQuality = up;
    if (down) network.dataset.downQuality = down;
    tr(figures, hasDownload(result) ? "waiting.network.figures_both" : "waiting.network.figures", networkFigures({
        rtt: result.rttMs,
        lossPermille: result.lossPermille,
        upKbps: result.upKbps,
        sentKbps: result.sentKbps,
        downKbps: result.downKbps,
        downEstimateKbps: result.downEstimateKbps,
        downLossPermille: result.downLossPermille,
      }));
    // Where only the download holds it back, the advice says what suffers: the picture they
    // receive, not the one they send.
    tr(advice, down && quality !== "good" && down === quality && up !== quality ? DOWN_ADVICE[quality] : ADVICE[quality]);
  }

  /** @param {boolean} on the link dropped and the page is joining the queue again */
  setReconnecting(on) {
    tr(this.ui.reconnecting, "waiting.reconnecting");
    this.ui.reconnecting.hidden = !on;
  }

  /** Moves focus to the heading, so keyboard and screen-reader users land on the news. */
  focus() {
    this.ui.title.focus();
  }

  /** The estimate, less the time since it came; never below "about 1 min". */
  #showEstimate() {
    const { estimate } = this.ui;
    if (this.#estimate === null) this.#setText(estimate, null);
    else {
      const left = this.#estimate.seconds - (Date.now() - this.#estimate.at) / 1000;
      this.#setText(estimate, "waiting.estimate", { wait: waitParam(Math.max(0, left)) });
    }
    estimate.hidden = this.#estimate === null;
  }

  /** Stops showing the camera and counting down (the page leaves the waiting room: admitted, or gone). */
  clear() {
    this.setPreview(null);
    window.clearInterval(this.#estimateTimer);
    this.#estimateTimer = undefined;
  }

  get root() {
    return this.#root;
  }

  /**
   * Sets text only when it changed: aria-live regions announce every change, and the server
   * repeats `waiting` whenever anything in the queue moves.
   * @param {HTMLElement} node
   * @param {MessageKey | null} key null empties it
   * @param {Params} [params]
   */
  #setText(node, key, params) {
    if (key === null) {
      if (node.textContent !== "") clearText(node);
      return;
    }
    const sameKey = node.getAttribute("data-i18n") === key;
    if (!sameKey || node.textContent !== t(key, params)) tr(node, key, params);
  }
}
