// The pre-join screen: camera and microphone preview, display name, Join. A clinician entering
// through their care-team seat types no name: the room shows their account's.
//
// It exists so that people see and hear themselves before anyone else does, and so that a
// blocked camera is found before entering the room rather than inside it. The device check: the
// camera's picture, the microphone's level on a meter, a test sound with "I heard it" / "I did
// not hear it", and the choice of camera and microphone (remembered on this device). What it
// found goes to the clinicians with the pre-call check (join-app.js).
//
// DOM contract (tests/browser relies on it): #mic-level (a <meter>, its `data-level` the last
// level read, 0..1), #camera-select and #microphone-select, #speaker-test, #speaker-heard,
// #speaker-not-heard, #speaker-result[data-speaker].

import { must, userText } from "./dom.js";
import { clearText, tr } from "./i18n.js";
import { LevelMeter, listDevices, loadDeviceChoice, playTestTone, saveDeviceChoice } from "./device-check.js";

/** @typedef {import("./i18n.js").MessageKey} MessageKey */

/** Display names are 1-64 characters after trimming (docs/protocol.md, `join`). */
const MAX_NAME_CHARS = 64;

/**
 * What the pre-call check found of one device: "ok" it works, "none" there is none (or none
 * that works), "denied" the person or the browser refused access, "off" not asked for (an
 * observer).
 * @typedef {"ok" | "none" | "denied" | "off"} DeviceState
 */

/**
 * @typedef {object} Acquired
 * @property {MediaStream | null} stream
 * @property {DeviceState} camera
 * @property {DeviceState} microphone
 */

/** Errors that say the device is not to be had, as opposed to broken for now (in use, failed). */
const DENIED = new Set(["NotAllowedError", "SecurityError"]);
const MISSING = new Set(["NotFoundError", "OverconstrainedError"]);

/**
 * @param {unknown} err
 * @returns {string}
 */
function errName(err) {
  return err instanceof DOMException || err instanceof Error ? err.name : "";
}

/**
 * Acquires the camera and microphone. If one of them is missing or blocked, joins with the
 * other rather than not at all: an audio-only consultation is still a consultation, and someone
 * whose microphone is blocked can still watch and write in the chat. Nothing at all (neither
 * found, or both blocked) joins to receive only. A device that is there but fails (in use by
 * another program, broken) is an error the page shows, since that is fixable in a moment.
 * @param {{audio: boolean, video: boolean}} want
 * @param {{camera?: string, microphone?: string}} [choice] the devices chosen ("" the browser's default)
 * @returns {Promise<Acquired>}
 */
export async function acquireMedia(want, choice = {}) {
  const got = await acquireWith(want, choice);
  // A remembered device that is gone (unplugged, another phone): the browser's default instead.
  if ((choice.camera || choice.microphone) && (got.camera === "none" || got.microphone === "none")) {
    for (const track of got.stream?.getTracks() ?? []) track.stop();
    return acquireWith(want, {});
  }
  return got;
}

/**
 * @param {{audio: boolean, video: boolean}} want
 * @param {{camera?: string, microphone?: string}} choice
 * @returns {Promise<Acquired>}
 */
async function acquireWith(want, choice) {
  const off = { stream: null, camera: /** @type {DeviceState} */ ("off"), microphone: /** @type {DeviceState} */ ("off") };
  if (!want.audio && !want.video) return off;
  /** @type {MediaTrackConstraints} */
  const video = {
    width: { ideal: 1280 },
    height: { ideal: 720 },
    frameRate: { ideal: 24, max: 30 },
    facingMode: "user",
  };
  if (choice.camera) video.deviceId = { exact: choice.camera };
  /** @type {MediaTrackConstraints} */
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  if (choice.microphone) audio.deviceId = { exact: choice.microphone };
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: want.audio ? audio : false,
      video: want.video ? video : false,
    });
    return {
      stream,
      camera: !want.video ? "off" : stream.getVideoTracks().length > 0 ? "ok" : "none",
      microphone: !want.audio ? "off" : stream.getAudioTracks().length > 0 ? "ok" : "none",
    };
  } catch (err) {
    const name = errName(err);
    if (!DENIED.has(name) && !MISSING.has(name)) throw err;
    // One of the two may be missing or blocked: ask for each alone, to know which.
    /**
     * @param {MediaStreamConstraints} only
     * @returns {Promise<{track: MediaStreamTrack | null, state: DeviceState, err: unknown}>}
     */
    const one = async (only) => {
      try {
        const s = await navigator.mediaDevices.getUserMedia(only);
        const track = s.getTracks()[0] ?? null;
        return { track, state: track ? "ok" : "none", err: null };
      } catch (e) {
        const n = errName(e);
        // Refused or absent is an answer; anything else (in use, broken) is an error to show.
        const known = DENIED.has(n) || MISSING.has(n);
        return { track: null, state: DENIED.has(n) ? "denied" : "none", err: known ? null : e };
      }
    };
    const mic = want.audio ? await one({ audio, video: false }) : { track: null, state: /** @type {DeviceState} */ ("off"), err: null };
    const cam = want.video ? await one({ audio: false, video }) : { track: null, state: /** @type {DeviceState} */ ("off"), err: null };
    const tracks = [mic.track, cam.track].filter((t) => t !== null);
    // A device that is there but broken is not silently dropped.
    const broken = mic.err ?? cam.err;
    if (broken) {
      for (const t of tracks) t.stop();
      throw broken;
    }
    return { stream: tracks.length > 0 ? new MediaStream(tracks) : null, camera: cam.state, microphone: mic.state };
  }
}

/**
 * What the pre-join screen says about the devices, or null when both work (or none is wanted).
 * @param {DeviceState} camera
 * @param {DeviceState} microphone
 * @returns {MessageKey | null}
 */
export function deviceStatusKey(camera, microphone) {
  if (camera === "off" && microphone === "off") return "join.prejoin.observer";
  const hasCam = camera === "ok";
  const hasMic = microphone === "ok";
  if (!hasCam && !hasMic) return "join.prejoin.receive_only";
  if (!hasMic) return microphone === "denied" ? "join.prejoin.microphone_denied" : "join.prejoin.no_microphone";
  if (!hasCam) return camera === "denied" ? "join.prejoin.camera_denied" : "join.prejoin.no_camera";
  return null;
}

/**
 * Trims and checks a display name.
 * @param {string} raw
 * @returns {string | null} the name to send, or null if it is not acceptable
 */
export function cleanName(raw) {
  const name = raw.trim();
  const chars = [...name].length; // code points, not UTF-16 units
  return chars >= 1 && chars <= MAX_NAME_CHARS ? name : null;
}

/** @typedef {"heard" | "not_heard" | "untested"} SpeakerState */

export class PreJoin {
  /** @type {HTMLFormElement} */
  #form;
  #check = {
    meter: new LevelMeter(),
    /** @type {SpeakerState} */
    speaker: /** @type {SpeakerState} */ ("untested"),
  };
  ui;
  /** @type {HTMLInputElement} */
  #nameInput;
  /** @type {HTMLElement[]} the name's label, field and hint */
  #nameField;
  /** @type {HTMLElement} */
  #seatNote;
  /** Entering through a care-team seat: no name is asked for. */
  #seat = false;
  /** @type {HTMLButtonElement} */
  #joinButton;
  /** @type {HTMLVideoElement} */
  #preview;
  /** @type {HTMLElement} */
  #previewStatus;
  /** @type {HTMLElement} */
  #error;

  /**
   * @param {HTMLElement} root the #prejoin section
   * @param {(name: string) => void} onJoin
   * @param {(choice: import("./device-check.js").DeviceChoice) => void} onDevices another camera or
   *   microphone was chosen (already remembered): the app takes them instead
   */
  constructor(root, onJoin, onDevices) {
    this.ui = {
      level: must("#mic-level", HTMLMeterElement, root),
      levelRow: must("#mic-level-row", HTMLElement, root),
      choice: must("#device-choice", HTMLElement, root),
      camera: must("#camera-select", HTMLSelectElement, root),
      cameraRow: must("#camera-select-row", HTMLElement, root),
      microphone: must("#microphone-select", HTMLSelectElement, root),
      microphoneRow: must("#microphone-select-row", HTMLElement, root),
      speakerTest: must("#speaker-test", HTMLButtonElement, root),
      speakerAsk: must("#speaker-ask", HTMLElement, root),
      speakerHeard: must("#speaker-heard", HTMLButtonElement, root),
      speakerNotHeard: must("#speaker-not-heard", HTMLButtonElement, root),
      speakerResult: must("#speaker-result", HTMLElement, root),
    };
    const chosen = () => {
      const choice = { camera: this.ui.camera.value, microphone: this.ui.microphone.value };
      saveDeviceChoice(choice);
      onDevices(choice);
    };
    this.ui.camera.addEventListener("change", chosen);
    this.ui.microphone.addEventListener("change", chosen);
    this.ui.speakerTest.addEventListener("click", () => void this.#testSpeaker());
    this.ui.speakerHeard.addEventListener("click", () => this.#answerSpeaker("heard"));
    this.ui.speakerNotHeard.addEventListener("click", () => this.#answerSpeaker("not_heard"));
    this.#form = must("#prejoin-form", HTMLFormElement, root);
    this.#nameInput = must("#display-name", HTMLInputElement, root);
    this.#nameField = [
      must("#display-name-label", HTMLElement, root),
      this.#nameInput,
      must("#prejoin-hint", HTMLElement, root),
    ];
    this.#seatNote = must("#seat-note", HTMLElement, root);
    this.#joinButton = must("#join-button", HTMLButtonElement, root);
    this.#preview = must("#preview", HTMLVideoElement, root);
    this.#previewStatus = must("#preview-status", HTMLElement, root);
    this.#error = must("#prejoin-error", HTMLElement, root);
    this.#form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (this.#seat) {
        // The server takes the name, title and institution from the account.
        this.showError(null);
        onJoin("");
        return;
      }
      const name = cleanName(this.#nameInput.value);
      if (name === null) {
        this.showError("error.invalid_name");
        this.#nameInput.focus();
        return;
      }
      this.showError(null);
      onJoin(name);
    });
  }

  /** @param {string} name */
  setName(name) {
    this.#nameInput.value = name;
  }

  /**
   * A care-team seat: hides the name field and says where the name shown comes from.
   * @param {boolean} seat
   */
  setSeat(seat) {
    this.#seat = seat;
    for (const node of this.#nameField) node.hidden = seat;
    this.#nameInput.required = !seat;
    this.#seatNote.hidden = !seat;
  }

  focus() {
    if (this.#seat) this.#joinButton.focus();
    else this.#nameInput.focus();
  }

  /** @param {boolean} busy */
  setBusy(busy) {
    this.#joinButton.disabled = busy;
    this.#nameInput.disabled = busy;
  }

  /** @param {MessageKey | null} key null to clear */
  showError(key) {
    if (key) tr(this.#error, key);
    else clearText(this.#error);
    this.#error.hidden = key === null;
    if (!this.#seat) this.#nameInput.setAttribute("aria-invalid", key === null ? "false" : "true");
  }

  /**
   * @param {MediaStream | null} stream
   * @param {MessageKey | null} status text shown under the preview (null hides it)
   */
  showPreview(stream, status) {
    this.#preview.srcObject = stream;
    this.#preview.hidden = !stream || stream.getVideoTracks().length === 0;
    if (stream) this.#preview.play().catch(() => undefined);
    if (status) tr(this.#previewStatus, status);
    else clearText(this.#previewStatus);
    this.#previewStatus.hidden = status === null;
  }
  /**
   * The devices in use: the meter follows the microphone, the lists show what else there is.
   * @param {MediaStream | null} stream
   * @param {boolean} wanted false for an observer (no device check at all)
   */
  async setDevices(stream, wanted) {
    const mic = stream?.getAudioTracks()[0] ?? null;
    this.ui.levelRow.hidden = !mic;
    this.ui.level.value = 0;
    this.ui.level.dataset.level = "0";
    this.#check.meter.start(mic, (level) => {
      // The meter reads by eye; a little boost makes ordinary speech fill most of it.
      this.ui.level.value = Math.min(1, level * 2);
      this.ui.level.dataset.level = level.toFixed(3);
    });
    this.ui.speakerTest.closest(".speaker-check")?.toggleAttribute("hidden", !wanted);
    const { cameras, microphones } = wanted ? await listDevices() : { cameras: [], microphones: [] };
    const cam = stream?.getVideoTracks()[0]?.getSettings().deviceId ?? loadDeviceChoice().camera;
    const micId = mic?.getSettings().deviceId ?? loadDeviceChoice().microphone;
    this.#fill(this.ui.camera, cameras, cam, "join.check.camera_n");
    this.#fill(this.ui.microphone, microphones, micId, "join.check.microphone_n");
    // A list is worth showing only when there is a choice to make.
    this.ui.cameraRow.hidden = cameras.length < 2;
    this.ui.microphoneRow.hidden = microphones.length < 2;
    this.ui.choice.hidden = this.ui.cameraRow.hidden && this.ui.microphoneRow.hidden;
  }

  /** What the person answered to the test sound. */
  get speaker() {
    return this.#check.speaker;
  }

  /** Leaving the pre-join screen: the meter stops (the microphone itself stays on). */
  stopChecks() {
    this.#check.meter.stop();
  }

  /**
   * @param {HTMLSelectElement} select
   * @param {MediaDeviceInfo[]} devices
   * @param {string} current
   * @param {MessageKey} unnamed "Camera {n}" for a device the browser does not name
   */
  #fill(select, devices, current, unnamed) {
    select.replaceChildren(
      ...devices.map((d, i) => {
        const option = document.createElement("option");
        option.value = d.deviceId;
        // The device's own name is the system's words, not ours.
        if (d.label) userText(option, d.label);
        else tr(option, unnamed, { n: i + 1 });
        return option;
      }),
    );
    if (devices.some((d) => d.deviceId === current)) select.value = current;
  }

  async #testSpeaker() {
    const { ui } = this;
    ui.speakerTest.disabled = true;
    tr(ui.speakerResult, "join.check.speaker_playing");
    delete ui.speakerResult.dataset.speaker;
    const played = await playTestTone();
    ui.speakerTest.disabled = false;
    tr(ui.speakerTest, "join.check.speaker_again");
    if (!played) {
      tr(ui.speakerResult, "join.check.speaker_unavailable");
      return;
    }
    clearText(ui.speakerResult);
    ui.speakerAsk.hidden = false;
    ui.speakerHeard.focus();
  }

  /** @param {SpeakerState} answer */
  #answerSpeaker(answer) {
    const { ui } = this;
    this.#check.speaker = answer;
    ui.speakerAsk.hidden = true;
    tr(ui.speakerResult, answer === "heard" ? "join.check.speaker_ok" : "join.check.speaker_problem");
    ui.speakerResult.dataset.speaker = answer;
    ui.speakerTest.focus();
  }
}
