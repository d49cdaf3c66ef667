// The room view: a tile for yourself and for everyone who publishes sound or picture; a line in
// the audience list for everyone else (observers, the viewers of a training lecture: hundreds
// of empty video tiles would bury the few people who can be seen and heard).
//
// Tile DOM contract (tests/browser relies on it): `.tile[data-participant-id]` holding a
// <video>, a `.badge-muted` element that is `hidden` unless the participant is muted,
// `.tile-local` on your own tile and `.tile-speaking` on whoever speaks now; all inside
// #tiles. The audience: `.audience-item[data-participant-id]` inside #audience, which is
// `hidden` while nobody is in it. For a
// clinician in a consultation with a waiting room, the tiles and audience lines of patients,
// guests and observers carry a `.send-back` button; for a clinician, everyone else's carry a
// `.manage` button that opens the moderation menu (moderation.js).
//
// What we are sent of a remote video (`video_quality`) shows on its tile and on the stage as
// `data-video-quality`: "q", "h" or "f" (the simulcast layer), "hidden" (we show it nowhere),
// "paused" (our connection is too weak for any video: audio goes on), absent until the server
// says anything. While paused, the tile's `.badge-video-paused` says so ("Video paused: weak
// connection"), and so does the tile's accessible name.
//
// A shared screen takes the stage: `#screen-stage` (before #tiles, `hidden` while nobody shares,
// `data-sharer` the sharer's id) holds the screen's <video> (`.screen-video`) for everyone else,
// and for the sharer the `.screen-sharing` state with its `.screen-stop` button instead of their
// own screen (a picture of the screen inside itself helps nobody). Cameras then become a strip
// of thumbnails (app.css, "Screen share stage").
//
// The view only renders what it is told. Who is present comes from signaling events, the
// tracks from the media session; neither is looked up from here.

import { el, roleParam, userText } from "./dom.js";
import { clearText, tr, trAttr } from "./i18n.js";

/** @typedef {import("./protocol.js").Participant} Participant */
/** @typedef {import("./media-session.js").RemoteTracks} RemoteTracks */
/** @typedef {import("./quality.js").Quality} Quality */

/**
 * @typedef {object} AudienceItem
 * @property {HTMLElement} root
 * @property {HTMLElement} name
 * @property {HTMLElement} role
 * @property {HTMLElement} reconnecting
 * @property {HTMLButtonElement} sendBack
 * @property {HTMLButtonElement} manage
 * @property {Participant} participant
 */

/**
 * @typedef {object} ScreenStage
 * @property {HTMLElement} root
 * @property {HTMLVideoElement} video
 * @property {HTMLElement} caption
 * @property {HTMLElement} waiting shown until the screen's picture arrives
 * @property {HTMLElement} sharing your own share's state
 * @property {HTMLButtonElement} stop
 * @property {HTMLElement} paused shown while the screen's video is paused for bandwidth
 */

/**
 * What we are sent of one video: a layer, or none (`layer: null`) with why.
 * @typedef {{layer: "q" | "h" | "f" | null, reason: "bandwidth" | "hidden" | "display"}} VideoQuality
 */

/**
 * @typedef {object} Tile
 * @property {HTMLElement} root
 * @property {HTMLVideoElement} video
 * @property {HTMLElement} placeholder
 * @property {HTMLElement} placeholderText
 * @property {HTMLElement} name
 * @property {HTMLElement} role
 * @property {HTMLElement} muted
 * @property {HTMLElement} reconnecting
 * @property {HTMLElement} videoPaused shown while their video is paused for our bandwidth
 * @property {HTMLButtonElement} sendBack
 * @property {HTMLButtonElement} manage
 * @property {HTMLButtonElement} quality the connection indicator (details on a click)
 * @property {HTMLElement} qualityDetails
 * @property {Participant | null} participant null for your own tile
 * @property {MediaStreamTrack | undefined} audioTrack
 * @property {MediaStreamTrack | undefined} videoTrack
 */

export class RoomView {
  /** @type {HTMLElement} */
  #container;
  /** @type {Map<string, Tile>} */
  #tiles = new Map();
  /** @type {{section: HTMLElement, list: HTMLElement, count: HTMLElement}} */
  #audience;
  /** @type {Map<string, AudienceItem>} */
  #audienceItems = new Map();
  /** @type {() => void} */
  #onAutoplayBlocked;
  /** Set once the browser refused to autoplay sound; new remote videos then start muted too. */
  #soundBlocked = false;
  /** @type {((p: Participant) => void) | null} a clinician's "Send back to the waiting room" */
  #onSendBack = null;
  /** @type {((p: Participant, anchor: HTMLElement) => void) | null} a clinician's "Manage" menu */
  #onManage = null;
  /** @type {(p: Participant) => boolean} whether the menu has anything for them */
  #mayManage = () => false;
  /** @type {ScreenStage} */
  #screen;
  /** Who shares their screen (null: nobody), and whether it is us. */
  /** @type {{id: string, name: string, local: boolean} | null} */
  #sharer = null;
  /** @type {MediaStreamTrack | undefined} the screen's track on the stage */
  #screenTrack = undefined;
  /** @type {() => void} the sharer's "Stop sharing" */
  #onStopSharing = () => undefined;

  /**
   * @param {HTMLElement} container #tiles
   * @param {{section: HTMLElement, list: HTMLElement, count: HTMLElement}} audience #audience,
   *   its list and the element that shows how many are in it
   * @param {() => void} onAutoplayBlocked called when the browser refuses to play sound until
   *   the user interacts with the page (e.g. after a reload rejoined automatically)
   */
  constructor(container, audience, onAutoplayBlocked) {
    this.#container = container;
    this.#audience = audience;
    this.#onAutoplayBlocked = onAutoplayBlocked;
    this.#screen = this.#createScreenStage();
    container.before(this.#screen.root);
  }

  /** @param {() => void} handler what the sharer's "Stop sharing" on the stage does */
  setStopSharing(handler) {
    this.#onStopSharing = handler;
  }

  /**
   * Puts a screen share on the stage, or takes it off (null).
   * @param {{id: string, name: string, local: boolean} | null} sharer
   */
  setScreenShare(sharer) {
    this.#sharer = sharer;
    const stage = this.#screen;
    stage.root.hidden = sharer === null;
    if (sharer) stage.root.dataset.sharer = sharer.id;
    else delete stage.root.dataset.sharer;
    stage.sharing.hidden = !sharer?.local;
    stage.video.hidden = !sharer || sharer.local;
    stage.caption.hidden = !sharer || sharer.local;
    if (sharer && !sharer.local) {
      tr(stage.caption, "room.screen_of", { name: sharer.name });
      trAttr(stage.root, "aria-label", "room.screen_of", { name: sharer.name });
    } else {
      trAttr(stage.root, "aria-label", "room.screen_label");
    }
    if (!sharer || sharer.local) this.#showScreenTrack(undefined);
  }

  /** @param {MediaStreamTrack | undefined} track */
  #showScreenTrack(track) {
    const stage = this.#screen;
    stage.waiting.hidden = track !== undefined || !this.#sharer || this.#sharer.local;
    if (track === this.#screenTrack) return;
    this.#screenTrack = track;
    stage.video.srcObject = track ? new MediaStream([track]) : null;
    // No sound on a screen share; muted, it may always autoplay.
    if (track) stage.video.play().catch(() => undefined);
  }

  /** @returns {ScreenStage} */
  #createScreenStage() {
    const video = el("video", { className: "screen-video", attrs: { playsinline: "", autoplay: "" } });
    video.playsInline = true;
    video.muted = true;
    const caption = el("p", { className: "screen-caption" });
    const paused = el("p", { className: "badge badge-video-paused", i18n: "room.video_paused" });
    paused.hidden = true;
    const waiting = el("p", { className: "screen-waiting", i18n: "room.screen_waiting" });
    const stop = el("button", { className: "btn btn-danger screen-stop", i18n: "room.stop_sharing", attrs: { type: "button" } });
    stop.addEventListener("click", () => this.#onStopSharing());
    const sharing = el("div", { className: "screen-sharing" }, el("p", { i18n: "room.you_are_sharing" }), stop);
    const root = el("section", { className: "screen-stage", attrs: { id: "screen-stage" } }, video, waiting, paused, sharing, caption);
    root.hidden = true;
    return { root, video, caption, waiting, sharing, stop, paused };
  }

  /**
   * Offers "Send back to the waiting room" on the patients and observers (a clinician's view),
   * or no longer (null).
   * @param {((p: Participant) => void) | null} handler
   */
  setSendBack(handler) {
    this.#onSendBack = handler;
    for (const tile of this.#tiles.values()) this.#renderSendBack(tile.sendBack, tile.participant);
    for (const item of this.#audienceItems.values()) this.#renderSendBack(item.sendBack, item.participant);
  }

  /**
   * Offers the "Manage" menu (a clinician's view) on those it has something for, or no longer
   * (null).
   * @param {((p: Participant, anchor: HTMLElement) => void) | null} handler
   * @param {(p: Participant) => boolean} mayManage
   */
  setManage(handler, mayManage) {
    this.#onManage = handler;
    this.#mayManage = mayManage;
    for (const tile of this.#tiles.values()) this.#renderManage(tile.manage, tile.participant);
    for (const item of this.#audienceItems.values()) this.#renderManage(item.manage, item.participant);
  }

  /**
   * @param {HTMLButtonElement} button
   * @param {Participant | null} p null: your own tile
   */
  #renderManage(button, p) {
    button.hidden = this.#onManage === null || p === null || !this.#mayManage(p);
    if (p) trAttr(button, "aria-label", "moderation.manage_label", { name: p.name });
  }

  /**
   * @param {HTMLButtonElement} button
   * @param {Participant | null} p null: your own tile
   */
  #renderSendBack(button, p) {
    const offered = this.#onSendBack !== null && p !== null && (p.role === "patient" || p.role === "observer" || p.role === "guest");
    button.hidden = !offered;
    if (p) trAttr(button, "aria-label", "room.send_back_label", { name: p.name });
  }

  /**
   * Adds or refreshes a participant's tile, or their line in the audience.
   * @param {Participant} p
   * @param {boolean} isLocal
   */
  upsert(p, isLocal) {
    if (!isLocal && !p.publishing.audio && !p.publishing.video) {
      this.#removeTile(p.id);
      this.#upsertAudience(p);
      return;
    }
    this.#removeAudience(p.id);
    let tile = this.#tiles.get(p.id);
    if (!tile) {
      tile = this.#createTile(p.id, isLocal);
      this.#tiles.set(p.id, tile);
      // Your own tile first, the others in order of arrival.
      if (isLocal) this.#container.prepend(tile.root);
      else this.#container.append(tile.root);
      this.#updateCount();
    }
    tile.participant = isLocal ? null : p;
    this.#renderSendBack(tile.sendBack, tile.participant);
    this.#renderManage(tile.manage, tile.participant);
    if (isLocal) tr(tile.name, "room.you", { name: p.name });
    else userText(tile.name, p.name);
    tr(tile.role, "common.param", { text: roleParam(p.role) });
    tile.muted.hidden = !(p.publishing.audio && p.audio_muted);
    tile.reconnecting.hidden = p.connection !== "reconnecting";
    const cameraShown = p.publishing.video && !p.video_off;
    tile.placeholder.hidden = cameraShown;
    tr(tile.placeholderText, p.publishing.video ? "room.camera_is_off" : "room.no_camera");
    tile.root.classList.toggle("tile-camera-off", !cameraShown);
    this.#renderTileLabel(tile, p, isLocal);
  }

  /**
   * The tile's accessible name: who, and the states its badges show.
   * @param {Tile} tile
   * @param {Participant} p
   * @param {boolean} isLocal
   */
  #renderTileLabel(tile, p, isLocal) {
    const cameraShown = p.publishing.video && !p.video_off;
    trAttr(tile.root, "aria-label", "room.tile_label", {
      name: isLocal ? { key: "room.you", params: { name: p.name } } : p.name,
      role: roleParam(p.role),
      muted: tile.muted.hidden ? "" : { key: "room.state.muted" },
      camera: cameraShown ? "" : { key: "room.state.camera_off" },
      reconnecting: tile.reconnecting.hidden ? "" : { key: "room.state.reconnecting" },
      video: tile.videoPaused.hidden ? "" : { key: "room.state.video_paused" },
    });
  }

  /**
   * What we are sent of `id`'s camera, or of the shared screen (`screen`), now; null: nothing
   * said (or no longer true: the m-line carries something else).
   * @param {string} id
   * @param {"camera" | "screen"} source
   * @param {VideoQuality | null} q
   */
  setVideoQuality(id, source, q) {
    const state = q === null ? null : q.layer ?? (q.reason === "bandwidth" ? "paused" : "hidden");
    if (source === "screen") {
      const stage = this.#screen;
      if (this.#sharer?.id !== id) return;
      setState(stage.root, state);
      stage.paused.hidden = state !== "paused";
      return;
    }
    const tile = this.#tiles.get(id);
    if (!tile || !tile.participant) return;
    setState(tile.root, state);
    const paused = state === "paused";
    if (tile.videoPaused.hidden === !paused) return;
    tile.videoPaused.hidden = !paused;
    tile.root.classList.toggle("tile-video-paused", paused);
    this.#renderTileLabel(tile, tile.participant, false);
  }

  /**
   * The remote videos on the page (the tiles' and the stage's), with the track each shows: for
   * telling the server how big each is shown.
   * @returns {{element: HTMLVideoElement, track: MediaStreamTrack}[]}
   */
  remoteVideos() {
    /** @type {{element: HTMLVideoElement, track: MediaStreamTrack}[]} */
    const shown = [];
    for (const tile of this.#tiles.values()) {
      if (tile.participant && tile.videoTrack) shown.push({ element: tile.video, track: tile.videoTrack });
    }
    if (this.#screenTrack) shown.push({ element: this.#screen.video, track: this.#screenTrack });
    return shown;
  }

  /** @param {string} id */
  remove(id) {
    this.#removeTile(id);
    this.#removeAudience(id);
  }

  /**
   * The connection indicator of `id`'s tile: how their media arrives here, or for your own
   * tile your link to the server; null while nothing is measured.
   * @param {string} id
   * @param {Quality | null} q
   */
  setQuality(id, q) {
    const tile = this.#tiles.get(id);
    if (!tile) return;
    const level = q?.level ?? "unknown";
    tile.quality.dataset.level = level;
    tile.quality.hidden = q === null;
    /** @type {import("./i18n.js").Param} */
    let details = "";
    if (q && q.rttMs !== null) details = { key: "room.quality.details_own", params: { rtt: q.rttMs, kbps: q.kbps ?? 0, loss: q.lossPct ?? 0 } };
    else if (q && q.fps !== null) details = { key: "room.quality.details_video", params: { kbps: q.kbps ?? 0, loss: q.lossPct ?? 0, fps: q.fps } };
    else if (q) details = { key: "room.quality.details_audio", params: { kbps: q.kbps ?? 0, loss: q.lossPct ?? 0 } };
    const levelKey = /** @type {const} */ ({ good: "room.quality.good", fair: "room.quality.fair", poor: "room.quality.poor", unknown: "room.quality.unknown" })[level];
    trAttr(tile.quality, "aria-label", "room.quality.label", { level: { key: levelKey }, details });
    if (q && details) tr(tile.qualityDetails, "room.quality.label", { level: { key: levelKey }, details });
    else clearText(tile.qualityDetails);
  }

  /**
   * Marks who speaks now (null: nobody): their tile gets `.tile-speaking`.
   * @param {string | null} id
   */
  setSpeaking(id) {
    for (const [pid, tile] of this.#tiles) {
      const on = pid === id;
      if (tile.root.classList.contains("tile-speaking") !== on) tile.root.classList.toggle("tile-speaking", on);
    }
  }

  /** @returns {string[]} everyone shown, tiles and audience */
  ids() {
    return [...this.#tiles.keys(), ...this.#audienceItems.keys()];
  }

  /**
   * Shows your own camera on your tile (muted, so you never hear yourself).
   * @param {string} id
   * @param {MediaStream | null} stream
   */
  setLocalStream(id, stream) {
    const tile = this.#tiles.get(id);
    if (!tile || tile.video.srcObject === stream) return;
    if (!stream) {
      // Made to only watch: the camera is gone.
      tile.video.srcObject = null;
      return;
    }
    tile.video.muted = true;
    tile.video.srcObject = stream;
    this.#play(tile.video, true);
  }

  /**
   * Applies the complete remote participant -> tracks mapping.
   * @param {Map<string, RemoteTracks>} media
   * @param {string} localId never touched: your own tile shows the local preview
   */
  setRemoteTracks(media, localId) {
    for (const [id, tile] of this.#tiles) {
      if (id === localId) continue;
      const tracks = media.get(id) ?? {};
      // Only replace the stream when a track actually changed: a new srcObject restarts
      // playback and would make every renegotiation flash every tile.
      if (tracks.audio === tile.audioTrack && tracks.video === tile.videoTrack) continue;
      tile.audioTrack = tracks.audio;
      tile.videoTrack = tracks.video;
      const list = [tracks.audio, tracks.video].filter((t) => t !== undefined);
      tile.video.srcObject = list.length ? new MediaStream(list) : null;
      if (list.length) this.#play(tile.video, false);
    }
    const sharer = this.#sharer;
    if (sharer && !sharer.local) this.#showScreenTrack(media.get(sharer.id)?.screen);
  }

  /** After the user clicked "Turn on sound": unmute every remote video. */
  enableSound() {
    this.#soundBlocked = false;
    for (const tile of this.#tiles.values()) {
      if (tile.root.classList.contains("tile-local")) continue;
      tile.video.muted = false;
      tile.video.play().catch(() => undefined);
    }
  }

  clear() {
    for (const id of this.ids()) this.remove(id);
    this.setScreenShare(null);
  }

  /** @param {string} id */
  #removeTile(id) {
    const tile = this.#tiles.get(id);
    if (!tile) return;
    tile.video.srcObject = null;
    tile.root.remove();
    this.#tiles.delete(id);
    this.#updateCount();
  }

  /** @param {Participant} p */
  #upsertAudience(p) {
    let item = this.#audienceItems.get(p.id);
    if (!item) {
      const name = el("span", { className: "audience-name" });
      const role = el("span", { className: "audience-role" });
      const reconnecting = el("span", { className: "badge badge-reconnecting", i18n: "room.reconnecting" });
      const sendBack = this.#sendBackButton(() => item?.participant);
      const manage = this.#manageButton(() => item?.participant);
      const root = el("li", { className: "audience-item" }, name, role, reconnecting, sendBack, manage);
      root.dataset.participantId = p.id;
      item = { root, name, role, reconnecting, sendBack, manage, participant: p };
      this.#audienceItems.set(p.id, item);
      this.#audience.list.append(root);
      this.#updateAudience();
    }
    item.participant = p;
    this.#renderSendBack(item.sendBack, p);
    this.#renderManage(item.manage, p);
    userText(item.name, p.name);
    tr(item.role, "common.param", { text: roleParam(p.role) });
    item.reconnecting.hidden = p.connection !== "reconnecting";
  }

  /** @param {string} id */
  #removeAudience(id) {
    const item = this.#audienceItems.get(id);
    if (!item) return;
    item.root.remove();
    this.#audienceItems.delete(id);
    this.#updateAudience();
  }

  #updateAudience() {
    const n = this.#audienceItems.size;
    this.#audience.section.hidden = n === 0;
    this.#audience.count.textContent = String(n);
  }

  /**
   * @param {string} id
   * @param {boolean} isLocal
   * @returns {Tile}
   */
  #createTile(id, isLocal) {
    const video = el("video", { attrs: { playsinline: "", autoplay: "" } });
    video.playsInline = true;
    video.muted = isLocal;
    const placeholderText = el("span", { i18n: "room.camera_is_off" });
    const placeholder = el("div", { className: "tile-placeholder" }, placeholderText);
    placeholder.hidden = true;
    const name = el("span", { className: "tile-name" });
    const role = el("span", { className: "tile-role" });
    const muted = el("span", { className: "badge badge-muted", i18n: "room.muted" });
    muted.hidden = true;
    const reconnecting = el("span", { className: "badge badge-reconnecting", i18n: "room.reconnecting" });
    reconnecting.hidden = true;
    const videoPaused = el("span", { className: "badge badge-video-paused", i18n: "room.video_paused" });
    videoPaused.hidden = true;
    // Three bars (coloured by level in app.css); a click shows or hides the figures.
    const quality = el("button", { className: "quality", attrs: { type: "button", "aria-expanded": "false" } }, ...[1, 2, 3].map(() => el("span", { className: "quality-bar", attrs: { "aria-hidden": "true" } })));
    quality.hidden = true;
    const qualityDetails = el("span", { className: "badge quality-details" });
    qualityDetails.hidden = true;
    quality.addEventListener("click", () => {
      qualityDetails.hidden = !qualityDetails.hidden;
      quality.setAttribute("aria-expanded", String(!qualityDetails.hidden));
    });
    const info = el("div", { className: "tile-info" }, name, role, muted, reconnecting, videoPaused, quality, qualityDetails);
    /** @type {Tile} */
    const tile = {
      root: el("article", { className: isLocal ? "tile tile-local" : "tile" }),
      video,
      placeholder,
      placeholderText,
      name,
      role,
      muted,
      reconnecting,
      videoPaused,
      sendBack: this.#sendBackButton(() => tile.participant),
      manage: this.#manageButton(() => tile.participant),
      quality,
      qualityDetails,
      participant: null,
      audioTrack: undefined,
      videoTrack: undefined,
    };
    const actions = el("div", { className: "tile-actions" }, tile.sendBack, tile.manage);
    tile.root.append(video, placeholder, info, actions);
    tile.root.dataset.participantId = id;
    tile.root.setAttribute("role", "listitem");
    return tile;
  }

  /**
   * @param {() => Participant | null | undefined} who whom the button is for, when clicked
   * @returns {HTMLButtonElement}
   */
  #sendBackButton(who) {
    const button = el("button", { className: "btn btn-small send-back", i18n: "room.send_back", attrs: { type: "button" } });
    button.hidden = true;
    button.addEventListener("click", () => {
      const p = who();
      if (p && this.#onSendBack) this.#onSendBack(p);
    });
    return button;
  }

  /**
   * @param {() => Participant | null | undefined} who whom the menu is for, when clicked
   * @returns {HTMLButtonElement}
   */
  #manageButton(who) {
    const button = el("button", {
      className: "btn btn-small manage",
      i18n: "moderation.manage",
      attrs: { type: "button", "aria-haspopup": "menu", "aria-expanded": "false" },
    });
    button.hidden = true;
    button.addEventListener("click", () => {
      const p = who();
      if (p && this.#onManage) this.#onManage(p, button);
    });
    return button;
  }

  /**
   * @param {HTMLVideoElement} video
   * @param {boolean} isLocal
   */
  #play(video, isLocal) {
    if (!isLocal && this.#soundBlocked) video.muted = true;
    video.play().catch((/** @type {unknown} */ err) => {
      // Autoplay with sound needs a user gesture; after an automatic rejoin there was none.
      // Play muted so the picture still runs, and let the user turn sound on with one tap.
      if (err instanceof DOMException && err.name === "NotAllowedError" && !video.muted) {
        this.#soundBlocked = true;
        video.muted = true;
        video.play().catch(() => undefined);
        this.#onAutoplayBlocked();
      }
      // AbortError: a newer srcObject replaced this one; that one's play() takes over.
    });
  }

  #updateCount() {
    this.#container.dataset.count = String(this.#tiles.size);
  }
}

/**
 * Sets or clears an element's `data-video-quality`.
 * @param {HTMLElement} element
 * @param {string | null} state
 */
function setState(element, state) {
  if (state === null) delete element.dataset.videoQuality;
  else if (element.dataset.videoQuality !== state) element.dataset.videoQuality = state;
}
