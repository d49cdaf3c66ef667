// The waiting screen: what someone who came with an invitation sees until a clinician admits
// them (the server's `waiting`, src/signaling/protocol.rs). Many of them are elderly and on a phone, so it says only a
// few things, in large high-contrast text: which consultation, their place in line, the wait
// when the server can estimate it, the clinic's message, why they wait again when a clinician
// sent them back, and their own camera picture with the result of the pre-call check. One
// button: Leave.
//
// DOM contract (tests/browser relies on it): #waiting-screen, #waiting-position (an aria-live
// region), #waiting-estimate, #waiting-message-text, #waiting-reason, #waiting-leave.
//
// The view only renders what it is told; the app owns the socket and the camera.

import { must } from "./dom.js";

/** @typedef {import("./protocol.js").WaitingMessage} WaitingMessage */
/** @typedef {import("./protocol.js").PrecallInfo} PrecallInfo */

// What the waiting person reads. Kept together here so that translations find them.
const TEXT = {
  title: "You are in the waiting room",
  titleSentBack: "The doctor asked you to wait",
  /** @param {number} n @param {number} of */
  position: (n, of) => `You are number ${n} in line (of ${of})`,
  /** @param {string} wait */
  estimate: (wait) => `Estimated wait: ${wait}`,
  sentBack: "You left the consultation for a moment. Please wait: the doctor will let you in again.",
  /** @param {string} reason */
  reason: (reason) => `Reason: ${reason}`,
  reconnecting: "The connection was lost. Joining the waiting room again…",
  checking: "Checking your camera, microphone and connection…",
  observer: "You will watch without camera or microphone.",
  camera: { true: "Camera works", false: "No camera" },
  microphone: { true: "Microphone works", false: "No microphone" },
  connection: {
    good: "Connection good",
    fair: "Connection fair",
    poor: "Connection weak: video may stutter",
    unknown: "Connection not checked",
  },
};

/**
 * How long a wait is, in words a patient reads at a glance.
 * @param {number} seconds
 * @returns {string} e.g. "about 10 minutes"
 */
export function formatWait(seconds) {
  const minutes = Math.max(1, Math.round(seconds / 60));
  if (minutes === 1) return "about 1 minute";
  if (minutes < 90) return `about ${minutes} minutes`;
  const hours = Math.round(minutes / 60);
  return hours === 1 ? "about 1 hour" : `about ${hours} hours`;
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

export class WaitingView {
  /** @type {HTMLElement} */
  #root;
  ui;

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
      message: must("#waiting-message", HTMLElement, root),
      messageText: must("#waiting-message-text", HTMLElement, root),
      reconnecting: must("#waiting-reconnecting", HTMLElement, root),
      preview: must("#waiting-preview", HTMLVideoElement, root),
      checks: must("#waiting-checks", HTMLElement, root),
      leave: must("#waiting-leave", HTMLButtonElement, root),
    };
    this.ui.leave.addEventListener("click", () => {
      this.ui.leave.disabled = true;
      onLeave();
    });
  }

  /** @param {WaitingMessage} msg */
  show(msg) {
    const { ui } = this;
    ui.consultation.textContent = msg.room.title || "Consultation";
    ui.title.textContent = msg.sent_back ? TEXT.titleSentBack : TEXT.title;
    ui.sentBack.hidden = !msg.sent_back;
    ui.sentBackText.textContent = TEXT.sentBack;
    ui.reason.textContent = msg.sent_back ? TEXT.reason(msg.sent_back) : "";
    this.#setText(ui.position, TEXT.position(msg.position, msg.of));
    ui.position.dataset.position = String(msg.position);
    ui.position.dataset.of = String(msg.of);
    const estimate = msg.estimated_wait_s === null ? "" : TEXT.estimate(formatWait(msg.estimated_wait_s));
    this.#setText(ui.estimate, estimate);
    ui.estimate.hidden = estimate === "";
    this.#setText(ui.messageText, msg.message ?? "");
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
      checks.textContent = TEXT.observer;
      delete checks.dataset.connection;
      return;
    }
    if (!result) {
      checks.textContent = TEXT.checking;
      delete checks.dataset.connection;
      return;
    }
    checks.textContent = [
      TEXT.camera[result.camera ? "true" : "false"],
      TEXT.microphone[result.microphone ? "true" : "false"],
      TEXT.connection[result.connection],
    ].join(" · ");
    checks.dataset.connection = result.connection;
  }

  /** @param {boolean} on the link dropped and the page is joining the queue again */
  setReconnecting(on) {
    this.ui.reconnecting.textContent = TEXT.reconnecting;
    this.ui.reconnecting.hidden = !on;
  }

  /** Moves focus to the heading, so keyboard and screen-reader users land on the news. */
  focus() {
    this.ui.title.focus();
  }

  /** Stops showing the camera (the page is leaving the waiting room for good). */
  clear() {
    this.ui.preview.srcObject = null;
  }

  get root() {
    return this.#root;
  }

  /**
   * Sets text only when it changed: aria-live regions announce every change, and the server
   * repeats `waiting` whenever anything in the queue moves.
   * @param {HTMLElement} node
   * @param {string} text
   */
  #setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }
}
