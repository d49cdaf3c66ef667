// Tells the server how big each received video is shown (`video_sizes`, docs/protocol.md,
// "Video quality"), so that a thumbnail is sent the small simulcast layer that fills it and a
// video shown nowhere is not sent at all.
//
// A ResizeObserver watches the <video> elements of the remote tiles and the screen stage; sizes
// are in device pixels (CSS pixels × devicePixelRatio), 0×0 for an element not displayed (a
// hidden stage, a collapsed tile: the observer reports it at zero size). Only sizes that changed
// since they were last told are sent, at most `MAX_PER_SECOND` messages a second (a layout that
// moves while a window is dragged sends its final sizes shortly after), and at most
// `MAX_ENTRIES` entries a message, as the server accepts.
//
// This module knows nothing of tiles or participants: it is given (element, mid) pairs and a
// function that sends a message.

/** Messages a second at most: a layout change is told within half a second. */
const MAX_PER_SECOND = 2;
/** Entries a message at most (more is refused by the server). */
export const MAX_ENTRIES = 64;
/** The largest side the server takes; beyond it, it clamps anyway. */
const MAX_SIDE = 8192;

/** @typedef {{mid: string, width: number, height: number}} VideoSize */
/** @typedef {{element: HTMLVideoElement, mid: string}} ShownVideo */

export class VideoSizes {
  /** @type {(sizes: VideoSize[]) => void} */
  #send;
  /** @type {ResizeObserver | null} null where the browser has none: nothing is told */
  #observer = null;
  /** The elements watched, and the m-line each shows. */
  /** @type {Map<Element, string>} */
  #watched = new Map();
  /** What the server was last told, per m-line ("w×h"). */
  /** @type {Map<string, string>} */
  #told = new Map();
  /** Sizes measured and not told yet, per m-line. */
  /** @type {Map<string, VideoSize>} */
  #pending = new Map();
  #timer = 0;
  #lastSent = -Infinity;
  #stopped = false;

  /** @param {(sizes: VideoSize[]) => void} send sends one `video_sizes` message */
  constructor(send) {
    this.#send = send;
    if (typeof ResizeObserver === "function") {
      this.#observer = new ResizeObserver((entries) => {
        for (const entry of entries) this.#measured(entry);
      });
    }
  }

  /**
   * The remote videos on the page now. An element no longer listed is forgotten; a new one is
   * measured at once (the observer reports its first size).
   * @param {ShownVideo[]} videos
   */
  track(videos) {
    const observer = this.#observer;
    if (!observer || this.#stopped) return;
    const now = new Map(videos.map((v) => [/** @type {Element} */ (v.element), v.mid]));
    for (const [element, mid] of this.#watched) {
      if (now.get(element) === mid) continue;
      observer.unobserve(element);
      this.#watched.delete(element);
    }
    const mids = new Set(now.values());
    // An m-line no longer shown here (its participant left, it was stopped): when it carries a
    // video again it is told afresh.
    for (const mid of [...this.#told.keys()]) if (!mids.has(mid)) this.#told.delete(mid);
    for (const mid of [...this.#pending.keys()]) if (!mids.has(mid)) this.#pending.delete(mid);
    for (const [element, mid] of now) {
      if (this.#watched.has(element)) continue;
      this.#watched.set(element, mid);
      observer.observe(element);
    }
  }

  /** Stops watching; nothing more is sent. */
  stop() {
    this.#stopped = true;
    this.#observer?.disconnect();
    this.#watched.clear();
    clearTimeout(this.#timer);
  }

  /** @param {ResizeObserverEntry} entry */
  #measured(entry) {
    const mid = this.#watched.get(entry.target);
    if (mid === undefined) return;
    const ratio = window.devicePixelRatio || 1;
    // The device-pixel box where the browser gives it (exact), else CSS pixels × the ratio.
    const device = entry.devicePixelContentBoxSize?.[0];
    const width = device ? device.inlineSize : entry.contentRect.width * ratio;
    const height = device ? device.blockSize : entry.contentRect.height * ratio;
    const size = { mid, width: side(width), height: side(height) };
    const key = `${size.width}x${size.height}`;
    if (this.#told.get(mid) === key) {
      this.#pending.delete(mid);
      return;
    }
    this.#pending.set(mid, size);
    this.#schedule();
  }

  #schedule() {
    if (this.#timer || this.#stopped) return;
    const wait = Math.max(0, this.#lastSent + 1000 / MAX_PER_SECOND - performance.now());
    this.#timer = window.setTimeout(() => this.#flush(), wait);
  }

  #flush() {
    this.#timer = 0;
    if (this.#stopped || this.#pending.size === 0) return;
    this.#lastSent = performance.now();
    const sizes = [...this.#pending.values()];
    this.#pending.clear();
    for (let i = 0; i < sizes.length; i += MAX_ENTRIES) this.#send(sizes.slice(i, i + MAX_ENTRIES));
    for (const s of sizes) this.#told.set(s.mid, `${s.width}x${s.height}`);
  }
}

/**
 * A side in whole device pixels, within what the server takes.
 * @param {number} px
 */
function side(px) {
  return Math.min(MAX_SIDE, Math.max(0, Math.round(px)));
}
