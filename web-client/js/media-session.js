// The media session: the one RTCPeerConnection to the server's SFU (docs/protocol.md, "Media").
//
// The server drives negotiation: it sends every offer and this side only answers, so there is
// no glare and no `negotiationneeded` handling. The local microphone and camera are added
// before the first offer is applied, audio first then video, so that the browser pairs their
// transceivers with the server's leading recvonly audio and video m-lines. Every other m-line
// carries somebody else's track; the offer's `tracks` list says whose, by mid, and whether it
// is a camera or a shared screen (`source`).
//
// Every offer names the m-lines for our own microphone and camera (`publish_mids`). At the join
// they are the transceivers made by `attachLocal`; when the care team lets an observer speak,
// they come in a later offer, and the tracks from `setLocal` go on them, sending. When they are
// stopped (made to only watch) the browser stops sending on them.
//
// Simulcast (docs/protocol.md, "Video quality"): we ask for it in the join, and the server's
// offers then name our camera's m-line with `publish_mids.simulcast`, an m-line offered with three
// receive layers (rids q, h, f, lowest first). Neither Chromium nor Firefox puts a camera added
// with `addTrack` on such an m-line (Chromium makes a new transceiver for it whatever waits), so
// with simulcast the camera is not added before the first offer: it goes on the transceiver the
// offer made for that m-line, which both browsers create with one encoding per offered rid,
// and after the answer each encoding gets its size and bitrate (`SIMULCAST_LAYERS`). The same
// by-mid path serves a server that does not offer layers: the transceiver then has one encoding.
//
// Screen sharing: while we share, the server's offers name a recvonly m-line `screen_mid`; the
// screen's track goes on that m-line's transceiver, sending, with a degradation preference that
// keeps resolution (text on an X-ray report must stay legible; a lower frame rate is fine).
//
// This module knows nothing about signaling or the page: it takes offers, returns answers, and
// reports which remote tracks belong to which participant.

import { IceRestarter } from "./ice-restart.js";

/**
 * How long an offer that names our own m-lines waits for the microphone and camera asked for
 * after the care team let us speak (the browser's permission prompt). Past it the answer turns
 * them down, and we stay a guest without media.
 */
const LOCAL_MEDIA_WAIT_MS = 30_000;

/**
 * How the camera is sent in each simulcast layer, by rid: a quarter, half and full size of the
 * capture (720p: 320×180, 640×360, 1280×720), each capped at what that size needs. The server
 * chooses among them with the same nominal sizes and bitrates (docs/SIMULCAST.md, section 7).
 * @type {Readonly<Record<string, {scaleResolutionDownBy: number, maxBitrate: number}>>}
 */
export const SIMULCAST_LAYERS = Object.freeze({
  q: { scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  h: { scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  f: { scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
});

/** @typedef {import("./protocol.js").OfferMessage} OfferMessage */
/** @typedef {import("./protocol.js").TrackInfo} TrackInfo */

/** @typedef {{audio?: MediaStreamTrack, video?: MediaStreamTrack, screen?: MediaStreamTrack}} RemoteTracks */

/**
 * @typedef {object} MediaHooks
 * @property {(media: Map<string, RemoteTracks>) => void} onRemoteTracks the complete current
 *   mapping participant id -> tracks, after every change
 * @property {(state: RTCPeerConnectionState) => void} onConnectionState
 * @property {() => void} [requestIceRestart] sends `ice_restart` (the path changed or failed)
 * @property {(restarting: boolean) => void} [onIceRestarting] an ICE restart began, or media
 *   flows again after one
 * @property {() => void} [onIceRestartGaveUp] ICE restarts did not bring media back
 */

export class MediaSession {
  /** @type {RTCPeerConnection} */
  #pc;
  /** @type {MediaHooks} */
  #hooks;
  /** mid -> whose track, from the latest offer */
  /** @type {Map<string, TrackInfo>} */
  #tracksByMid = new Map();
  /** @type {RTCRtpSender | null} */
  #videoSender = null;
  /** @type {RTCRtpSender | null} */
  #audioSender = null;
  /** Whether the camera is to be sent (off: the sender carries no track). */
  #cameraOn = true;
  /** Settles when the microphone and camera asked for after the join are there (or not). */
  /** @type {Promise<unknown>} */
  #localReady = Promise.resolve();
  /** @type {MediaStreamTrack | null} */
  #micTrack = null;
  /** @type {MediaStreamTrack | null} */
  #cameraTrack = null;
  /** Our shared screen, while we share. */
  /** @type {MediaStreamTrack | null} */
  #screenTrack = null;
  /** @type {RTCRtpSender | null} the sender of the screen's m-line, once an offer named it */
  #screenSender = null;
  /** Offers are applied strictly one after another even if a handler is still awaiting. */
  /** @type {Promise<unknown>} */
  #queue = Promise.resolve();
  #closed = false;
  /** @type {IceRestarter} */
  #iceRestarter;
  /** Whether we asked for simulcast: the camera waits for the m-line an offer names for it. */
  #simulcast;

  /**
   * @param {MediaHooks} hooks
   * @param {{simulcast?: boolean}} [options] `simulcast`: the join asks for it (`publish.simulcast`)
   */
  constructor(hooks, options = {}) {
    this.#hooks = hooks;
    this.#simulcast = options.simulcast === true;
    // max-bundle: the server runs all media over one transport on its single UDP port.
    // No ICE servers yet: the server is ICE-lite with public host candidates, and as the
    // controlling agent we reach it directly; TURN relays, where the server has them, come
    // with `joined` (setIceServers) before the first offer.
    this.#pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require", iceServers: [] });
    this.#pc.ontrack = () => this.#reportRemoteTracks();
    this.#pc.onconnectionstatechange = () => {
      if (!this.#closed) this.#hooks.onConnectionState(this.#pc.connectionState);
    };
    // A changed or failed path is restarted over signaling (docs/protocol.md, "ICE restart").
    this.#iceRestarter = new IceRestarter({
      request: () => {
        if (this.#closed || !this.#hooks.requestIceRestart) return false;
        this.#hooks.requestIceRestart();
        return true;
      },
      state: () => this.#pc.iceConnectionState,
      onRestarting: (on) => {
        if (!this.#closed) this.#hooks.onIceRestarting?.(on);
      },
      onGiveUp: () => {
        if (!this.#closed) this.#hooks.onIceRestartGaveUp?.();
      },
    });
    this.#pc.oniceconnectionstatechange = () => {
      if (!this.#closed) this.#iceRestarter.onIceState(this.#pc.iceConnectionState);
    };
  }

  /**
   * Whether a failed connection is ICE's, and being (or to be) restarted rather than needing a
   * rejoin. Not when ICE is up (DTLS failed, say): a restart would not help.
   */
  get iceRestartHandlesFailure() {
    const ice = this.#pc.iceConnectionState;
    return this.#iceRestarter.handlesFailure && ice !== "connected" && ice !== "completed";
  }

  /** Whether an ICE restart is under way (the path is not back yet). */
  get iceRestarting() {
    return this.#iceRestarter.restarting;
  }

  /** The server refused a restart (`ice_restart_limited`): leave recovery to a rejoin. */
  iceRestartRefused() {
    this.#iceRestarter.refused();
  }

  /**
   * The TURN relays (with this participant's credentials) from `joined` or `resumed`, for a
   * network that lets no UDP through to the server. Before the first offer, so that gathering
   * uses them; later (a resume) they serve an ICE restart.
   * @param {RTCIceServer[]} iceServers
   */
  setIceServers(iceServers) {
    if (this.#closed || !iceServers.length) return;
    try {
      this.#pc.setConfiguration({ ...this.#pc.getConfiguration(), iceServers });
    } catch {
      // A browser that refuses the change keeps the direct path.
    }
  }

  /**
   * Adds the local microphone and camera. Must run before the first offer is applied.
   * @param {MediaStream | null} stream
   */
  attachLocal(stream) {
    if (!stream) return;
    const audio = stream.getAudioTracks()[0];
    const video = stream.getVideoTracks()[0];
    // Order matters: audio first, then video, like the server's recvonly m-lines.
    if (audio) {
      this.#micTrack = audio;
      this.#audioSender = this.#pc.addTrack(audio, stream);
    }
    if (video) {
      this.#cameraTrack = video;
      // With simulcast the camera goes on the m-line the first offer names (see the top).
      if (!this.#simulcast) this.#videoSender = this.#pc.addTrack(video, stream);
    }
  }

  /**
   * The microphone and camera are being asked for (the care team let us speak): offers that
   * name our own m-lines wait for them, a bounded time, so that the answer sends on them.
   * @param {Promise<unknown>} ready settles once `setLocal` has been called
   */
  expectLocal(ready) {
    let timer = 0;
    const bound = new Promise((resolve) => {
      timer = window.setTimeout(resolve, LOCAL_MEDIA_WAIT_MS);
    });
    this.#localReady = Promise.race([ready.catch(() => undefined), bound]).finally(() => clearTimeout(timer));
  }

  /**
   * Our microphone and camera after the join (the care team let us speak), or none (made to
   * only watch): they go on the m-lines the server's offers name for them, now if an offer
   * already did, else when one does.
   * @param {MediaStream | null} stream
   */
  async setLocal(stream) {
    this.#micTrack = stream?.getAudioTracks()[0] ?? null;
    this.#cameraTrack = stream?.getVideoTracks()[0] ?? null;
    if (this.#closed) return;
    await swapTrack(this.#audioSender, this.#micTrack);
    await swapTrack(this.#videoSender, this.#cameraOn ? this.#cameraTrack : null);
  }

  /**
   * Puts our tracks on the m-lines an offer names for them (set to send before the answer is
   * made: a recvonly m-line is answered inactive by a transceiver that only receives).
   * @param {OfferMessage} offer
   * @returns {Promise<RTCRtpTransceiver | undefined>} the camera's transceiver, if the offer names one
   */
  async #attachPublish(offer) {
    const mids = offer.publish_mids ?? {};
    const find = (/** @type {string | undefined} */ mid) =>
      mid === undefined ? undefined : this.#pc.getTransceivers().find((t) => t.mid === mid && t.currentDirection !== "stopped");
    const audio = find(mids.audio);
    const video = find(mids.video);
    // Only where we have something to send: a kind we lack is answered inactive, so nobody is
    // offered a track that never comes.
    for (const [t, track] of /** @type {const} */ ([[audio, this.#micTrack], [video, this.#cameraTrack]])) {
      if (t && track && t.direction !== "sendonly" && t.direction !== "sendrecv") t.direction = "sendonly";
    }
    this.#audioSender = audio?.sender ?? null;
    this.#videoSender = video?.sender ?? null;
    const mic = this.#micTrack;
    const camera = this.#cameraOn ? this.#cameraTrack : null;
    await swapTrack(audio?.sender ?? null, mic);
    await swapTrack(video?.sender ?? null, camera);
    return video;
  }

  /**
   * Applies a server offer and produces the answer SDP.
   * @param {OfferMessage} offer
   * @returns {Promise<string>}
   */
  handleOffer(offer) {
    const run = this.#queue.then(() => this.#applyOffer(offer));
    // A failed offer must not wedge the ones after it.
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** @param {OfferMessage} offer */
  async #applyOffer(offer) {
    if (this.#closed) throw new Error("media session closed");
    // Record the mapping before applying: `track` events fire during setRemoteDescription.
    this.#tracksByMid = new Map(offer.tracks.map((t) => [t.mid, t]));
    await this.#pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
    if (offer.publish_mids) await this.#localReady;
    if (this.#closed) throw new Error("media session closed");
    const camera = await this.#attachPublish(offer);
    const screen = offer.screen_mid ? this.#pc.getTransceivers().find((t) => t.mid === offer.screen_mid) : undefined;
    if (screen) {
      // Sending on it needs saying so before the answer is made: a recvonly m-line is answered
      // inactive by a transceiver that only receives.
      screen.direction = "sendonly";
      this.#screenSender = screen.sender;
      await screen.sender.replaceTrack(this.#screenTrack);
    } else {
      this.#screenSender = null;
    }
    const answer = await this.#pc.createAnswer();
    await this.#pc.setLocalDescription(answer);
    if (screen) await keepResolution(screen.sender);
    if (camera && offer.publish_mids?.simulcast) await setLayers(camera.sender);
    this.#reportRemoteTracks();
    this.#iceRestarter.offerApplied();
    // No trickle: the server is ICE-lite and learns our address from our connectivity checks,
    // so the answer as created is complete.
    return this.#pc.localDescription?.sdp ?? answer.sdp ?? "";
  }

  /**
   * Rebuilds participant -> tracks from the transceivers. Done from scratch each time, so
   * m-lines that the server stopped or reused for someone else can never leave a stale entry.
   */
  #reportRemoteTracks() {
    if (this.#closed) return;
    /** @type {Map<string, RemoteTracks>} */
    const media = new Map();
    for (const transceiver of this.#pc.getTransceivers()) {
      const mid = transceiver.mid;
      if (mid === null || transceiver.currentDirection === "stopped") continue;
      const info = this.#tracksByMid.get(mid);
      if (!info) continue;
      const entry = media.get(info.participant_id) ?? {};
      entry[info.source === "screen" ? "screen" : info.kind] = transceiver.receiver.track;
      media.set(info.participant_id, entry);
    }
    this.#hooks.onRemoteTracks(media);
  }

  /** @param {boolean} on */
  setMicEnabled(on) {
    // A disabled track sends silence; no renegotiation (docs/protocol.md).
    if (this.#micTrack) this.#micTrack.enabled = on;
  }

  /**
   * Camera off detaches the camera from the sender so no frames leave this device at all;
   * camera on attaches it again.
   * @param {boolean} on
   */
  async setCameraEnabled(on) {
    this.#cameraOn = on;
    if (!this.#cameraTrack) return;
    this.#cameraTrack.enabled = on;
    if (this.#videoSender) await this.#videoSender.replaceTrack(on ? this.#cameraTrack : null);
  }

  /**
   * The screen to share (or null: no more). Sent once the server's offer names its m-line; a
   * later call swaps the picture without renegotiating.
   * @param {MediaStreamTrack | null} track
   */
  async setScreenTrack(track) {
    this.#screenTrack = track;
    if (this.#screenSender && !this.#closed) await this.#screenSender.replaceTrack(track);
  }

  /**
   * The m-line a remote track arrives on (null: none of ours, or stopped).
   * @param {MediaStreamTrack} track
   * @returns {string | null}
   */
  midOf(track) {
    const t = this.#pc.getTransceivers().find((x) => x.receiver.track === track && x.currentDirection !== "stopped");
    return t?.mid ?? null;
  }

  /**
   * Whose track an m-line carries, as the latest offer said (undefined: nobody's).
   * @param {string} mid
   * @returns {TrackInfo | undefined}
   */
  trackOf(mid) {
    return this.#tracksByMid.get(mid);
  }

  /**
   * The peer connection's statistics and whose camera or microphone each m-line carries (for
   * the quality indicators; a shared screen is left out). Null once closed.
   * @returns {Promise<{report: RTCStatsReport, owners: Map<string, string>} | null>}
   */
  async stats() {
    if (this.#closed) return null;
    const report = await this.#pc.getStats();
    /** @type {Map<string, string>} */
    const owners = new Map();
    for (const [mid, t] of this.#tracksByMid) if (t.source !== "screen") owners.set(mid, t.participant_id);
    return { report, owners };
  }

  /**
   * How loud each participant's microphone arrives now (0 to 1, from the last packets' audio
   * level header: no decoding, no Web Audio), for showing who speaks.
   * @returns {Map<string, number>}
   */
  audioLevels() {
    /** @type {Map<string, number>} */
    const levels = new Map();
    if (this.#closed) return levels;
    // Browsers have stamped these on the page's clock or on the wall clock: either is recent.
    const now = performance.now();
    const wall = Date.now();
    for (const transceiver of this.#pc.getTransceivers()) {
      const mid = transceiver.mid;
      if (mid === null || transceiver.currentDirection === "stopped") continue;
      const info = this.#tracksByMid.get(mid);
      if (!info || info.kind !== "audio" || info.source === "screen") continue;
      // Only a level heard in the last second counts: a muted microphone sends nothing new.
      const recent = transceiver.receiver
        .getSynchronizationSources()
        .filter((s) => Math.abs(now - s.timestamp) < 1000 || Math.abs(wall - s.timestamp) < 1000);
      const level = Math.max(0, ...recent.map((s) => s.audioLevel ?? 0));
      levels.set(info.participant_id, Math.max(levels.get(info.participant_id) ?? 0, level));
    }
    return levels;
  }

  get hasMic() {
    return this.#micTrack !== null;
  }

  get hasCamera() {
    return this.#cameraTrack !== null;
  }

  /** Closes the peer connection. Local tracks stay with their owner (the preview uses them). */
  close() {
    this.#closed = true;
    this.#iceRestarter.stop();
    this.#pc.ontrack = null;
    this.#pc.onconnectionstatechange = null;
    this.#pc.oniceconnectionstatechange = null;
    this.#pc.close();
  }
}

/**
 * Puts `track` on `sender`, if there is one that still sends: a sender whose m-line the server
 * stopped (made to only watch) refuses any track, and has nothing to carry anyway.
 * @param {RTCRtpSender | null} sender
 * @param {MediaStreamTrack | null} track
 */
async function swapTrack(sender, track) {
  if (!sender || sender.track === track) return;
  try {
    await sender.replaceTrack(track);
  } catch {
    // Stopped.
  }
}

/**
 * Gives each simulcast layer of the camera its size and bitrate (`SIMULCAST_LAYERS`, by rid).
 * The browser made the encodings from the offer's rids; a browser that answered with fewer (or
 * one, without rid) keeps its own choice for those, and the server copes with what arrives. Done
 * after every answer that names the m-line, but set only when something differs.
 * @param {RTCRtpSender} sender
 */
async function setLayers(sender) {
  try {
    const params = sender.getParameters();
    let changed = false;
    for (const encoding of params.encodings ?? []) {
      const layer = encoding.rid === undefined ? undefined : SIMULCAST_LAYERS[encoding.rid];
      if (!layer) continue;
      if (encoding.scaleResolutionDownBy !== layer.scaleResolutionDownBy || encoding.maxBitrate !== layer.maxBitrate) {
        encoding.scaleResolutionDownBy = layer.scaleResolutionDownBy;
        encoding.maxBitrate = layer.maxBitrate;
        changed = true;
      }
    }
    if (changed) await sender.setParameters(params);
  } catch {
    // The browser keeps its own layer sizes: the server chooses from whatever arrives.
  }
}

/**
 * Asks the browser to lower the frame rate rather than the resolution when bandwidth is short:
 * a shared screen is text and fine detail. Best effort: a browser without the setting keeps
 * its own default (the track's `contentHint = "detail"` says much the same).
 * @param {RTCRtpSender} sender
 */
async function keepResolution(sender) {
  try {
    const params = /** @type {RTCRtpSendParameters & {degradationPreference?: string}} */ (sender.getParameters());
    if (params.degradationPreference === "maintain-resolution") return;
    params.degradationPreference = "maintain-resolution";
    await sender.setParameters(params);
  } catch {
    // Not supported here.
  }
}
