// The pre-call device check's moving parts, without any page markup: the microphone level (a
// Web Audio AnalyserNode on the microphone's track), the speaker test (a short generated tone,
// nothing fetched), and the camera and microphone chosen (enumerateDevices, remembered in
// localStorage so that the next consultation on this device starts with the same ones).
//
// prejoin.js shows them; join-app.js sends the result with the pre-call check.

/** Where the chosen devices are remembered (device ids only: no names, nothing personal). */
const DEVICES_KEY = "huizhen.devices";
/** The test tone: an A above middle C, soft, long enough to notice and short enough to be polite. */
const TONE_HZ = 660;
const TONE_S = 1.2;
const TONE_GAIN = 0.25;
/** How long the page waits for its audio to start before it says no sound can play. */
const RESUME_WAIT_MS = 2000;
/** How often the level is read (the meter needs no more: it is read by eye). */
const LEVEL_EVERY_MS = 80;

/**
 * @typedef {object} DeviceChoice
 * @property {string} camera a deviceId, or "" for the browser's default
 * @property {string} microphone likewise
 */

/** @returns {DeviceChoice} */
export function loadDeviceChoice() {
  try {
    const v = JSON.parse(localStorage.getItem(DEVICES_KEY) ?? "null");
    if (v && typeof v.camera === "string" && typeof v.microphone === "string" && v.camera.length <= 256 && v.microphone.length <= 256) {
      return { camera: v.camera, microphone: v.microphone };
    }
  } catch {
    // A corrupt entry: the defaults.
  }
  return { camera: "", microphone: "" };
}

/** @param {DeviceChoice} choice */
export function saveDeviceChoice(choice) {
  try {
    localStorage.setItem(DEVICES_KEY, JSON.stringify(choice));
  } catch {
    // Storage full or off: the choice lasts this page only.
  }
}

/**
 * The cameras and microphones the browser lists (their names only once access was granted).
 * @returns {Promise<{cameras: MediaDeviceInfo[], microphones: MediaDeviceInfo[]}>}
 */
export async function listDevices() {
  if (!navigator.mediaDevices?.enumerateDevices) return { cameras: [], microphones: [] };
  const all = await navigator.mediaDevices.enumerateDevices().catch(() => []);
  return {
    cameras: all.filter((d) => d.kind === "videoinput" && d.deviceId !== ""),
    microphones: all.filter((d) => d.kind === "audioinput" && d.deviceId !== ""),
  };
}

/**
 * One AudioContext for the page, created on first use. Browsers start it suspended until the
 * person interacts with the page; it is resumed on their first click or key.
 * @returns {AudioContext | null}
 */
function audioContext() {
  if (audio.context) return audio.context;
  const Ctor = window.AudioContext ?? /** @type {any} */ (window).webkitAudioContext;
  if (!Ctor) return null;
  audio.context = /** @type {AudioContext} */ (new Ctor());
  const wake = () => {
    if (audio.context?.state === "suspended") void audio.context.resume().catch(() => undefined);
  };
  for (const ev of ["pointerdown", "keydown"]) window.addEventListener(ev, wake, { capture: true });
  wake();
  return audio.context;
}
/** @type {{context: AudioContext | null}} */
const audio = { context: null };

/**
 * Reads the loudness of a microphone track, several times a second, as 0..1 (the peak of the
 * waveform over the last read), until stopped.
 */
export class LevelMeter {
  /** @type {MediaStreamAudioSourceNode | null} */
  #source = null;
  /** @type {AnalyserNode | null} */
  #analyser = null;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #timer;

  /**
   * @param {MediaStreamTrack | null} track null stops the meter
   * @param {(level: number) => void} onLevel
   */
  start(track, onLevel) {
    this.stop();
    if (!track) return;
    const ctx = audioContext();
    if (!ctx) return;
    this.#source = ctx.createMediaStreamSource(new MediaStream([track]));
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 4096; // about 85 ms of sound: a short beep between two reads is still seen
    this.#source.connect(analyser);
    this.#analyser = analyser;
    const samples = new Float32Array(analyser.fftSize);
    this.#timer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let peak = 0;
      for (const s of samples) peak = Math.max(peak, Math.abs(s));
      onLevel(Math.min(1, peak));
    }, LEVEL_EVERY_MS);
  }

  stop() {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#source?.disconnect();
    this.#analyser?.disconnect();
    this.#source = null;
    this.#analyser = null;
  }
}

/**
 * Plays the test tone through the speakers (a sine with soft edges, so it does not click).
 * @returns {Promise<boolean>} false when the page cannot play sound at all
 */
export async function playTestTone() {
  const ctx = audioContext();
  if (!ctx) return false;
  if (ctx.state === "suspended") {
    // A context that cannot start (no audio device: Firefox then never settles `resume()`,
    // measured) must not leave the button waiting for ever: the page says no sound can play.
    const waited = new Promise((resolve) => setTimeout(resolve, RESUME_WAIT_MS));
    await Promise.race([ctx.resume().catch(() => undefined), waited]);
  }
  if (ctx.state !== "running") return false;
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  osc.type = "sine";
  osc.frequency.value = TONE_HZ;
  const t0 = ctx.currentTime;
  gain.gain.setValueAtTime(0, t0);
  gain.gain.linearRampToValueAtTime(TONE_GAIN, t0 + 0.05);
  gain.gain.setValueAtTime(TONE_GAIN, t0 + TONE_S - 0.1);
  gain.gain.linearRampToValueAtTime(0, t0 + TONE_S);
  osc.connect(gain).connect(ctx.destination);
  osc.start(t0);
  osc.stop(t0 + TONE_S);
  // `ended` never comes from a context the browser keeps suspended: give up after the tone's time.
  await new Promise((resolve) => {
    osc.onended = resolve;
    setTimeout(resolve, TONE_S * 1000 + 500);
  });
  osc.disconnect();
  gain.disconnect();
  return true;
}
