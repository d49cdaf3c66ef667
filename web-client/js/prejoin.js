// The pre-join screen: camera and microphone preview, display name, Join. A clinician entering
// through their care-team seat types no name: the room shows their account's.
//
// It exists so that people see and hear themselves before anyone else does, and so that a
// blocked camera is found before entering the room rather than inside it.

import { must } from "./dom.js";
import { clearText, tr } from "./i18n.js";

/** @typedef {import("./i18n.js").MessageKey} MessageKey */

/** Display names are 1-64 characters after trimming (docs/protocol.md, `join`). */
const MAX_NAME_CHARS = 64;

/**
 * Acquires the camera and microphone. If one of them is missing, joins with the other rather
 * than not at all: an audio-only consultation is still a consultation.
 * @param {{audio: boolean, video: boolean}} want
 * @returns {Promise<MediaStream | null>} null when nothing was wanted
 */
export async function acquireMedia(want) {
  if (!want.audio && !want.video) return null;
  /** @type {MediaTrackConstraints} */
  const video = {
    width: { ideal: 1280 },
    height: { ideal: 720 },
    frameRate: { ideal: 24, max: 30 },
    facingMode: "user",
  };
  /** @type {MediaTrackConstraints} */
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: want.audio ? audio : false,
      video: want.video ? video : false,
    });
  } catch (err) {
    const name = err instanceof DOMException ? err.name : "";
    if (!(want.audio && want.video) || (name !== "NotFoundError" && name !== "OverconstrainedError")) {
      throw err;
    }
    // One of the two devices is missing: try each alone.
    for (const only of [{ audio, video: false }, { audio: false, video }]) {
      try {
        return await navigator.mediaDevices.getUserMedia(only);
      } catch {
        // try the next one
      }
    }
    throw err;
  }
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

export class PreJoin {
  /** @type {HTMLFormElement} */
  #form;
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
   */
  constructor(root, onJoin) {
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
}
