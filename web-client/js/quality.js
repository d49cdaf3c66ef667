// Connection quality, as this browser measures it (issue 19, "Quality visible"): from the peer
// connection's statistics every few seconds, the media each participant's tile receives here
// (bitrate, packets lost, frames per second) and our own link to the server (round trip, what
// we send, what the server reports lost of it). Each tile gets a small indicator (good, fair,
// poor), with the figures in its accessible name and on demand (a click shows them).
//
// What arrives from someone reflects their uplink and our downlink together; the server is the
// only place that sees each link apart, and exports those figures as Prometheus metrics. The
// thresholds are those of the pre-call check (waiting-view.js) for the round trip, and the
// usual ones for interactive audio and video for loss (under 2 % is not noticed, over 8 %
// freezes pictures and clips speech).

/** @typedef {"good" | "fair" | "poor" | "unknown"} QualityLevel */

/**
 * What one participant's media looks like here, or our own link.
 * @typedef {object} Quality
 * @property {QualityLevel} level
 * @property {number | null} kbps received (or, for our own link, sent) kilobits per second
 * @property {number | null} lossPct packets lost, in per cent, over the last interval
 * @property {number | null} fps video frames per second (null: no video)
 * @property {number | null} rttMs round trip to the server (our own link only)
 */

/** How often the statistics are read. */
export const QUALITY_INTERVAL_MS = 3000;

/**
 * Counters of one inbound or outbound stream at one reading.
 * @typedef {{bytes: number, packets: number, lost: number, frames: number, at: number}} Counters
 */

/**
 * @param {number} lossPct
 * @param {number | null} rttMs
 * @returns {QualityLevel}
 */
export function levelOf(lossPct, rttMs) {
  if (lossPct > 8 || (rttMs !== null && rttMs >= 400)) return "poor";
  if (lossPct > 2 || (rttMs !== null && rttMs >= 150)) return "fair";
  return "good";
}

/**
 * Keeps the previous reading of each stream and turns two readings into rates.
 */
export class QualityMeter {
  /** @type {Map<string, Counters>} stream key -> the previous reading */
  #previous = new Map();

  /**
   * Reads a statistics report.
   * @param {RTCStatsReport} report
   * @param {Map<string, string>} ownerOfMid mid -> participant id (whose track the m-line carries)
   * @returns {{others: Map<string, Quality>, own: Quality}}
   */
  read(report, ownerOfMid) {
    /** @type {Map<string, {bytes: number, packets: number, lost: number, seconds: number, fps: number | null}>} */
    const byOwner = new Map();
    let rttMs = /** @type {number | null} */ (null);
    let sentBits = 0;
    let sentSeconds = 0;
    let remoteLost = 0;
    let remotePackets = 0;
    /** @type {Map<string, Counters>} */
    const seen = new Map();
    report.forEach((/** @type {any} */ s) => {
      if (s.type === "candidate-pair" && s.nominated && typeof s.currentRoundTripTime === "number") {
        rttMs = Math.round(s.currentRoundTripTime * 1000);
      } else if (s.type === "inbound-rtp" && typeof s.mid === "string") {
        const owner = ownerOfMid.get(s.mid);
        if (!owner) return;
        const now = { bytes: s.bytesReceived ?? 0, packets: s.packetsReceived ?? 0, lost: s.packetsLost ?? 0, frames: s.framesDecoded ?? 0, at: s.timestamp };
        const key = `in:${s.id}`;
        seen.set(key, now);
        const before = this.#previous.get(key);
        if (!before || now.at <= before.at) return;
        const seconds = (now.at - before.at) / 1000;
        const entry = byOwner.get(owner) ?? { bytes: 0, packets: 0, lost: 0, seconds, fps: null };
        entry.bytes += Math.max(0, now.bytes - before.bytes);
        entry.packets += Math.max(0, now.packets - before.packets);
        entry.lost += Math.max(0, now.lost - before.lost);
        entry.seconds = Math.max(entry.seconds, seconds);
        if (s.kind === "video") entry.fps = Math.max(0, now.frames - before.frames) / seconds;
        byOwner.set(owner, entry);
      } else if (s.type === "outbound-rtp") {
        const now = { bytes: s.bytesSent ?? 0, packets: s.packetsSent ?? 0, lost: 0, frames: 0, at: s.timestamp };
        const key = `out:${s.id}`;
        seen.set(key, now);
        const before = this.#previous.get(key);
        if (!before || now.at <= before.at) return;
        sentBits += Math.max(0, now.bytes - before.bytes) * 8;
        sentSeconds = Math.max(sentSeconds, (now.at - before.at) / 1000);
      } else if (s.type === "remote-inbound-rtp") {
        // The server's receiver reports on what we send: cumulative lost and a fraction.
        if (typeof s.fractionLost === "number") {
          remoteLost += s.fractionLost * 100;
          remotePackets += 1;
        }
      }
    });
    this.#previous = seen;
    /** @type {Map<string, Quality>} */
    const others = new Map();
    for (const [owner, e] of byOwner) {
      const expected = e.packets + e.lost;
      const lossPct = expected > 0 ? (100 * e.lost) / expected : 0;
      const kbps = e.seconds > 0 ? Math.round((e.bytes * 8) / e.seconds / 1000) : null;
      const fps = e.fps === null ? null : Math.round(e.fps);
      const level = e.packets === 0 && e.lost === 0 ? "unknown" : levelOf(lossPct, null);
      others.set(owner, { level, kbps, lossPct: Math.round(lossPct * 10) / 10, fps, rttMs: null });
    }
    const ownLoss = remotePackets > 0 ? remoteLost / remotePackets : 0;
    const own = {
      level: rttMs === null ? /** @type {QualityLevel} */ ("unknown") : levelOf(ownLoss, rttMs),
      kbps: sentSeconds > 0 ? Math.round(sentBits / sentSeconds / 1000) : null,
      lossPct: Math.round(ownLoss * 10) / 10,
      fps: null,
      rttMs,
    };
    return { others, own };
  }
}
