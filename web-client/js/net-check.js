// The pre-call network check over the media path (docs/protocol.md, "Network check"): while
// someone waits to be admitted, a peer connection of its own carries their microphone and
// camera to the server for a few seconds (the server forwards it to nobody but back to them),
// and the browser's own WebRTC statistics say what the path gives in both directions. Up: the
// round trip (ICE checks, RTCP), the loss the server reports back (RTCP receiver reports) and
// the upload bandwidth the browser's congestion control found (or, where the browser does not
// report it, what it managed to send). Down: the server's echo of the same media, offered in a
// second offer once the first is answered, read as it arrives (inbound-rtp): its rate (a floor
// of the download: it carries no more than went up), its loss and its jitter; and the server's
// own estimate of the download (`net_check_estimate`), from our transport feedback while it
// probes the link above what the echo carries. The download is said as the larger of the two,
// "at least": the server probes no further than a call needs.
//
// The figures go to the clinicians with the pre-call check (join-app.js) and, in plain words,
// to the person waiting (waiting-view.js). A check the server refuses (too many at once) or
// that is overtaken by the admission gives no figures, and the signaling round trip stands.

/** @typedef {import("./protocol.js").NetCheckOfferMessage} NetCheckOfferMessage */
/** @typedef {import("./protocol.js").PrecallInfo} PrecallInfo */
/** @typedef {import("./i18n.js").Param} Param */
/** @typedef {import("./i18n.js").Params} Params */

/** How long the server has to offer, once asked. */
const OFFER_WAIT_MS = 8000;
/** How long the path has to come up, once answered (ICE over TCP or a relay takes longer). */
const CONNECT_WAIT_MS = 10000;
/** How long the figures are gathered once the path is up: long enough for the browser's
 * bandwidth estimate to ramp up past its start and for a few RTCP reports to arrive. */
export const MEASURE_MS = 6000;
/** Longer, at most, while no report of the server's has arrived yet (it sends one every few
 * seconds: the loss comes only from them) or the echo has not begun (it waits for a second
 * offer and, for video, a keyframe). Within the server's 15 s for a check. */
const REPORT_WAIT_MS = 4000;
const SAMPLE_MS = 1000;
/** The server's estimates kept per check: it sends one a second for at most 15 s. */
const MAX_ESTIMATES = 60;
/** How many of the latest estimates the download is read from, and how many the measurement
 * waits for (within `REPORT_WAIT_MS`): the estimate's climb takes a few seconds. */
const RECENT_ESTIMATES = 3;

/**
 * What the check found.
 * @typedef {object} MediaPathResult
 * @property {"connected" | "failed"} path
 * @property {number} [rttMs]
 * @property {number} [lossPermille]
 * @property {number} [upKbps] the browser's estimate of the upload bandwidth
 * @property {number} [sentKbps] without an estimate (Firefox gives none): what was sent, a
 *   floor only (the camera asks for no more than its picture needs)
 * @property {number} [downKbps] the rate the server's echo arrived at: a floor of the download
 *   (the echo carries no more than was sent up)
 * @property {number} [downEstimateKbps] the server's estimate of the download (from our
 *   transport feedback while it probed; the largest of the last few it told), when it told one
 * @property {number} [downLossPermille] packets of the echo lost on the way down, per thousand
 * @property {number} [downJitterMs] the echo's interarrival jitter
 */

/** @typedef {"good" | "fair" | "poor"} Quality */

/** @type {Quality[]} best first */
const QUALITIES = ["good", "fair", "poor"];

/**
 * The quality words for a media path's figures: the weaker of the two directions (missing
 * figures do not count against it).
 * @param {MediaPathResult} r
 * @returns {Quality}
 */
export function mediaPathQuality(r) {
  if (r.path === "failed") return "poor";
  const up = upQuality(r);
  const down = downQuality(r);
  return down === undefined ? up : QUALITIES[Math.max(QUALITIES.indexOf(up), QUALITIES.indexOf(down))];
}

/**
 * The upload's: round trip, loss to the server, bandwidth found.
 * @param {MediaPathResult} r
 * @returns {Quality}
 */
export function upQuality(r) {
  const rtt = r.rttMs ?? 0;
  const loss = r.lossPermille ?? 0;
  const up = r.upKbps ?? Infinity;
  if (rtt < 150 && loss < 20 && up >= 800) return "good";
  if (rtt < 400 && loss < 80 && up >= 250) return "fair";
  return "poor";
}

/**
 * The download's: the echo's loss and jitter, and the bandwidth where the server estimated it
 * (the echo's rate alone judges nothing: it is what the camera sent up, whatever the link could
 * carry down). Undefined when nothing of the download was measured.
 * @param {MediaPathResult} r
 * @returns {Quality | undefined}
 */
export function downQuality(r) {
  if (r.downLossPermille === undefined && r.downJitterMs === undefined && r.downEstimateKbps === undefined) return undefined;
  const loss = r.downLossPermille ?? 0;
  const jitter = r.downJitterMs ?? 0;
  // The same bounds as the upload's: a remote camera at its middle layer and audio need about
  // 800 kbit/s, its lowest layer and audio about 250.
  const down = r.downEstimateKbps === undefined ? Infinity : downRate(r) ?? Infinity;
  if (loss < 20 && jitter < 30 && down >= 800) return "good";
  if (loss < 80 && jitter < 100 && down >= 250) return "fair";
  return "poor";
}

/**
 * What the download is known to carry at least, kbit/s: the larger of the echo's rate and the
 * server's estimate.
 * @param {{downKbps?: number, downEstimateKbps?: number}} f
 * @returns {number | undefined}
 */
export function downRate(f) {
  if (f.downKbps === undefined) return f.downEstimateKbps;
  if (f.downEstimateKbps === undefined) return f.downKbps;
  return Math.max(f.downKbps, f.downEstimateKbps);
}

/**
 * A bandwidth in words.
 * @param {number} kbps
 * @returns {Param}
 */
function rate(kbps) {
  return kbps >= 1000 ? { key: "units.mbps", params: { n: (kbps / 1000).toFixed(1) } } : { key: "units.kbps", params: { n: kbps } };
}

/**
 * A network check's figures as message parameters; "–" where the browser gave none.
 * @param {{rtt?: number, lossPermille?: number, upKbps?: number, sentKbps?: number, downKbps?: number, downEstimateKbps?: number, downLossPermille?: number, downJitterMs?: number}} f
 * @returns {Params}
 */
export function networkFigures(f) {
  /** @type {Param} */
  let up = "–";
  if (f.upKbps !== undefined) up = rate(f.upKbps);
  else if (f.sentKbps !== undefined) up = { key: "units.at_least", params: { rate: rate(f.sentKbps) } };
  const down = downRate(f);
  return {
    rtt: f.rtt ?? "–",
    loss: permille(f.lossPermille),
    up,
    // Both are floors: the echo carried what went up, not what the link holds, and the
    // server's estimate stops where it stopped probing.
    down: down === undefined ? "–" : { key: "units.at_least", params: { rate: rate(down) } },
    down_loss: permille(f.downLossPermille),
    jitter: f.downJitterMs ?? "–",
  };
}

/**
 * Whether a check's result has the download's figures (an echo arrived, or the server
 * estimated it).
 * @param {{downKbps?: number, downEstimateKbps?: number, downLossPermille?: number}} f
 */
export function hasDownload(f) {
  return f.downKbps !== undefined || f.downEstimateKbps !== undefined || f.downLossPermille !== undefined;
}

/**
 * A share per thousand as a percentage with one decimal.
 * @param {number | undefined} v
 * @returns {Param}
 */
function permille(v) {
  return v === undefined ? "–" : (v / 10).toFixed(1);
}

/**
 * @typedef {object} NetCheckHooks
 * @property {(msg: object) => void} send a signaling message
 */

export class NetCheck {
  #hooks;
  /** @type {((msg: NetCheckOfferMessage | null) => void) | null} settles the wait for an offer */
  #offerWait = null;
  /** @type {RTCPeerConnection | null} */
  #pc = null;
  /** A check was asked for and has not finished here. */
  #running = false;
  /** The check is over (the server ended or refused it, or we stopped it): stop measuring. */
  #ended = false;
  /** The server ended or refused it: nothing to tell it. */
  #serverEnded = false;
  /** Answers to later offers, in order. @type {Promise<void>} */
  #negotiation = Promise.resolve();
  /** The server's estimates of the download for this check, kbit/s, in order (at most one a
   * second; bounded all the same). @type {number[]} */
  #downEstimates = [];

  /** @param {NetCheckHooks} hooks */
  constructor(hooks) {
    this.#hooks = hooks;
  }

  /** `net_check_offer` arrived: the first sets the check up, a later one (the server's echo of
   * what it receives) is answered on the same connection. @param {NetCheckOfferMessage} msg */
  onOffer(msg) {
    if (this.#offerWait) {
      this.#offerWait(msg);
      return;
    }
    const pc = this.#pc;
    if (!pc || this.#ended) return;
    // One at a time: the server offers again only once the outstanding offer is answered.
    this.#negotiation = this.#negotiation.then(() => this.#answerEcho(pc, msg)).catch(() => {});
  }

  /**
   * Answers an offer that adds the m-lines the echo comes back on: received only, never sent
   * on (the browser's own m-lines keep what the first answer set).
   * @param {RTCPeerConnection} pc
   * @param {NetCheckOfferMessage} msg
   */
  async #answerEcho(pc, msg) {
    if (this.#pc !== pc || this.#ended) return;
    await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (this.#pc !== pc || this.#ended) return;
    this.#hooks.send({ type: "net_check_answer", offer_id: msg.offer_id, sdp: pc.localDescription?.sdp ?? answer.sdp });
  }

  /** `net_check_estimate`: the server's latest estimate of the download, while a check runs.
   * @param {number} kbps */
  onEstimate(kbps) {
    if (!this.#running || this.#ended || !Number.isFinite(kbps) || kbps < 0) return;
    if (this.#downEstimates.length < MAX_ESTIMATES) this.#downEstimates.push(Math.round(kbps));
  }

  /** The server ended the check (`net_check_ended`) or refused it (`net_check_limited`,
   * `not_waiting`). */
  onEnded() {
    this.#ended = true;
    this.#serverEnded = true;
    this.#offerWait?.(null);
  }

  /**
   * Runs one check with the waiting page's camera and microphone.
   * @param {MediaStream | null} local
   * @returns {Promise<MediaPathResult | null>} null: no check ran (refused, or ended first)
   */
  async run(local) {
    if (typeof RTCPeerConnection === "undefined" || this.#running) return null;
    this.#running = true;
    this.#ended = false;
    this.#serverEnded = false;
    this.#negotiation = Promise.resolve();
    this.#downEstimates = [];
    /** @type {Promise<NetCheckOfferMessage | null>} */
    const offered = new Promise((resolve) => {
      const timer = window.setTimeout(() => resolve(null), OFFER_WAIT_MS);
      this.#offerWait = (msg) => {
        clearTimeout(timer);
        resolve(msg);
      };
    });
    this.#hooks.send({ type: "net_check" });
    const offer = await offered;
    this.#offerWait = null;
    if (!offer || this.#ended) {
      this.stop();
      return null;
    }
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require", iceServers: offer.ice_servers ?? [] });
    this.#pc = pc;
    try {
      const connected = waitConnected(pc);
      await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
      const tracks = { audio: local?.getAudioTracks()[0] ?? null, video: local?.getVideoTracks()[0] ?? null };
      for (const t of pc.getTransceivers()) {
        const kind = t.mid === offer.publish_mids?.audio ? "audio" : t.mid === offer.publish_mids?.video ? "video" : null;
        const track = kind ? tracks[kind] : null;
        if (!track) continue;
        t.direction = "sendonly";
        await t.sender.replaceTrack(track);
      }
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      this.#hooks.send({ type: "net_check_answer", offer_id: offer.offer_id, sdp: pc.localDescription?.sdp ?? answer.sdp });
      if (!(await connected)) return this.#ended ? null : { path: "failed" };
      const result = await this.#measure(pc);
      return this.#ended && !result ? null : result;
    } catch {
      return this.#ended ? null : { path: "failed" };
    } finally {
      this.stop();
    }
  }

  /** Ends the check here (the page is leaving the waiting room, or it has measured). */
  stop() {
    if (!this.#running) return;
    this.#running = false;
    this.#ended = true;
    this.#offerWait?.(null);
    this.#pc?.close();
    this.#pc = null;
    // A check asked for and not ended by the server: it may be running there (or its offer on
    // the way), and is let go at once rather than at its deadline.
    if (!this.#serverEnded) this.#hooks.send({ type: "net_check_stop" });
  }

  /**
   * Samples the statistics once a second for `MEASURE_MS` (up to `REPORT_WAIT_MS` longer while
   * no report of the server's has come, none of the echo, or fewer than `RECENT_ESTIMATES` of
   * the server's estimates; less when the server ends the check first) and folds them into
   * figures.
   * @param {RTCPeerConnection} pc
   * @returns {Promise<MediaPathResult>}
   */
  async #measure(pc) {
    /** @type {Sample[]} */
    const samples = [];
    const start = performance.now();
    const reported = () => samples.some((s) => s.packetsLost !== undefined);
    // Two readings with the echo flowing: its rate needs an interval.
    const echoed = () => samples.filter((s) => s.packetsReceived > 0).length >= 2;
    const estimated = () => this.#downEstimates.length >= RECENT_ESTIMATES;
    while (!this.#ended) {
      const elapsed = performance.now() - start;
      if (elapsed >= MEASURE_MS + REPORT_WAIT_MS || (elapsed >= MEASURE_MS && reported() && echoed() && estimated())) break;
      await sleep(SAMPLE_MS);
      if (this.#ended) break;
      samples.push(sample(await pc.getStats(), performance.now()));
    }
    const result = summarise(samples);
    const estimate = downEstimate(this.#downEstimates);
    if (estimate !== undefined) result.downEstimateKbps = estimate;
    return result;
  }
}

/**
 * One reading of the statistics.
 * @typedef {object} Sample
 * @property {number} at ms
 * @property {number | undefined} pairRtt seconds, the selected candidate pair's
 * @property {number | undefined} rtcpRtt seconds, the latest RTCP round trip (any stream)
 * @property {number | undefined} available bits/s, the browser's estimate of the upload
 * @property {number} bytesSent all outgoing RTP streams
 * @property {number} packetsSent all outgoing RTP streams that the server reports on
 * @property {number | undefined} packetsLost as the server's reports count them
 * @property {number} bytesReceived all incoming RTP streams (the echo)
 * @property {number} packetsReceived all incoming RTP streams
 * @property {number} packetsLostDown all incoming RTP streams, as the browser counts them
 * @property {number | undefined} jitter seconds, the most of any incoming stream
 */

/**
 * @param {RTCStatsReport} report
 * @param {number} at
 * @returns {Sample}
 */
function sample(report, at) {
  /** @type {Sample} */
  const s = {
    at,
    pairRtt: undefined,
    rtcpRtt: undefined,
    available: undefined,
    bytesSent: 0,
    packetsSent: 0,
    packetsLost: undefined,
    bytesReceived: 0,
    packetsReceived: 0,
    packetsLostDown: 0,
    jitter: undefined,
  };
  /** @type {Map<string, any>} */
  const byId = new Map();
  report.forEach((/** @type {any} */ stat) => byId.set(stat.id, stat));
  /** @type {any} */
  let pair;
  for (const stat of byId.values()) {
    if (stat.type === "transport" && stat.selectedCandidatePairId) pair = byId.get(stat.selectedCandidatePairId);
  }
  if (!pair) {
    // Firefox names the pair in use by its `selected` flag instead.
    for (const stat of byId.values()) {
      if (stat.type === "candidate-pair" && (stat.selected || (stat.nominated && stat.state === "succeeded"))) pair = stat;
    }
  }
  if (pair) {
    s.pairRtt = positive(pair.currentRoundTripTime);
    s.available = positive(pair.availableOutgoingBitrate);
  }
  /** @type {Map<string, any>} */
  const remote = new Map();
  for (const stat of byId.values()) {
    if (stat.type === "remote-inbound-rtp") {
      remote.set(stat.localId ?? "", stat);
      if (positive(stat.roundTripTime) !== undefined) s.rtcpRtt = stat.roundTripTime;
    }
  }
  for (const stat of byId.values()) {
    if (stat.type !== "outbound-rtp") continue;
    s.bytesSent += stat.bytesSent ?? 0;
    const report = remote.get(stat.id) ?? [...remote.values()].find((r) => r.ssrc === stat.ssrc);
    if (report && typeof report.packetsLost === "number") {
      s.packetsSent += stat.packetsSent ?? 0;
      s.packetsLost = (s.packetsLost ?? 0) + Math.max(0, report.packetsLost);
    }
  }
  for (const stat of byId.values()) {
    if (stat.type !== "inbound-rtp") continue;
    s.bytesReceived += stat.bytesReceived ?? 0;
    s.packetsReceived += stat.packetsReceived ?? 0;
    // Negative when duplicates outnumber the lost.
    s.packetsLostDown += Math.max(0, stat.packetsLost ?? 0);
    if (typeof stat.jitter === "number" && Number.isFinite(stat.jitter) && stat.jitter >= 0) s.jitter = Math.max(s.jitter ?? 0, stat.jitter);
  }
  return s;
}

/**
 * @param {Sample[]} samples
 * @returns {MediaPathResult}
 */
export function summarise(samples) {
  /** @type {MediaPathResult} */
  const result = { path: "connected" };
  const rtts = samples.map((s) => s.pairRtt ?? s.rtcpRtt).filter((v) => v !== undefined);
  if (rtts.length) result.rttMs = Math.round(median(/** @type {number[]} */ (rtts)) * 1000);
  const first = samples[0];
  const last = samples[samples.length - 1];
  // Loss since the check began, from the latest reading that had the server's reports: they
  // come every few seconds, so the first reading often has none yet.
  const reported = [...samples].reverse().find((s) => s.packetsLost !== undefined && s.packetsSent > 0);
  if (reported?.packetsLost !== undefined) {
    const lost = reported.packetsLost;
    result.lossPermille = Math.min(1000, Math.round((lost * 1000) / (reported.packetsSent + lost)));
  }
  // The browser's estimate once it had time to ramp up (the last reading); without one, what
  // was sent over the window: a floor, since the camera asks for no more than it needs, so
  // it is said as such and judges nothing.
  const available = [...samples].reverse().find((s) => s.available !== undefined)?.available;
  if (available !== undefined) result.upKbps = Math.round(available / 1000);
  else if (first && last && last.at > first.at) {
    result.sentKbps = Math.round(((last.bytesSent - first.bytesSent) * 8) / (last.at - first.at));
  }
  // The download, from the echo once it flows (it begins a moment after the path is up).
  const echoed = samples.filter((s) => s.packetsReceived > 0);
  const from = echoed[0];
  const to = echoed[echoed.length - 1];
  if (from && to && to.at > from.at) {
    result.downKbps = Math.round(((to.bytesReceived - from.bytesReceived) * 8) / (to.at - from.at));
  }
  if (to) {
    const lost = to.packetsLostDown;
    result.downLossPermille = Math.min(1000, Math.round((lost * 1000) / (to.packetsReceived + lost)));
    if (to.jitter !== undefined) result.downJitterMs = Math.round(to.jitter * 1000);
  }
  return result;
}

/**
 * The download the server's estimates say, kbit/s: the largest of the last few (one a second).
 * The estimate climbs over the check's seconds as the server's probes succeed (measured in
 * Chromium on a free downlink: 454, 686, 686, 723, 1145, 2609 kbit/s), so the earlier ones say
 * little; and one after the estimator backs off can fall far below the link for a few seconds,
 * which the others around it outweigh.
 * @param {number[]} estimates in the order told
 * @returns {number | undefined}
 */
export function downEstimate(estimates) {
  if (!estimates.length) return undefined;
  return Math.max(...estimates.slice(-RECENT_ESTIMATES));
}

/** @param {unknown} v */
function positive(v) {
  return typeof v === "number" && Number.isFinite(v) && v > 0 ? v : undefined;
}

/** @param {number[]} values */
function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** @param {number} ms */
function sleep(ms) {
  return new Promise((resolve) => window.setTimeout(resolve, ms));
}

/**
 * Resolves true once the connection is up, false if it fails or takes too long.
 * @param {RTCPeerConnection} pc
 * @returns {Promise<boolean>}
 */
function waitConnected(pc) {
  return new Promise((resolve) => {
    const timer = window.setTimeout(() => done(false), CONNECT_WAIT_MS);
    /** @param {boolean} ok */
    const done = (ok) => {
      clearTimeout(timer);
      pc.removeEventListener("connectionstatechange", onChange);
      resolve(ok);
    };
    const onChange = () => {
      if (pc.connectionState === "connected") done(true);
      else if (pc.connectionState === "failed" || pc.connectionState === "closed") done(false);
    };
    pc.addEventListener("connectionstatechange", onChange);
  });
}
