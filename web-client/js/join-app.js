// The participant app behind /join#<invite token>: wires the pre-join screen, the signaling
// link, the media session and the room view together, and owns the page state.
//
// The state is always visible as `document.body.dataset.state`, one of
// prejoin | connecting | waiting | in-room | reconnecting | ended | error, so that people (and
// the browser tests) can tell exactly where things stand.
//
// Waiting: in a consultation with a waiting room, whoever comes with an invitation link is
// answered `waiting` and waits (waiting-view.js) until a clinician admits them; the camera and
// microphone stay on meanwhile so that admission is instant, and the pre-call check (camera,
// microphone, a ping's round trip) goes to the clinicians once per wait. `joined` then arrives
// on the same socket and everything goes on as after any join. A clinician may send them back:
// `waiting` again, with the reason; the server has dropped their media, so the peer connection
// and the room view go, and a fresh peer connection waits for the next admission. Clinicians
// manage the queue in the room's "Waiting room" tab (queue-panel.js).
//
// Consent (consent-panel.js): a patient is asked on entering the room, in a dialog they see
// first (once per room and tab; the "Consent / 知情同意" button opens it again), and everyone
// sees what is in force. Observers come in only with every patient's consent: an observer's
// join refused with `consent_required` shows a screen that says so, with "Try again" (a fresh
// join); once in, an observer whose patient withdraws is sent back to wait, like anyone sent
// back.
//
// Reloading the page rejoins: the invite token and the latest resume token are kept in
// sessionStorage (per tab, gone when the tab closes), and a reload sends `join` with
// `replaces`, which removes our previous self at once instead of leaving a "reconnecting" ghost.
// Someone waiting holds no resume token: a reload (or a dropped socket) joins the queue again.
//
// The token is an invite link's (patients, observers: they type the name shown) or a care-team
// seat's entry token from the console's "Enter consultation" (doctors, specialists: the server
// shows their account's name, title and institution, so no name is asked for or sent).

import { PROTOCOL_VERSION } from "./protocol.js";
import { SignalingClient } from "./signaling.js";
import { MediaSession } from "./media-session.js";
import { VideoSizes } from "./video-sizes.js";
import { RoomView } from "./room-view.js";
import { PreJoin, acquireMedia, deviceStatusKey } from "./prejoin.js";
import { loadDeviceChoice } from "./device-check.js";
import { SelfView } from "./self-view.js";
import { errorKey, errorTitleKey, mediaErrorCode, seatErrorKey } from "./errors.js";
import { must, roleParam, userText } from "./dom.js";
import { startBranding } from "./branding.js";
import { clearText, onLocaleChange, startPage, t, tr, trAttr } from "./i18n.js";
import { RoomApi, checkInvitation } from "./room-api.js";
import { DocViewer } from "./doc-viewer.js";
import { DocumentsPanel } from "./documents-panel.js";
import { ChatPanel } from "./chat-panel.js";
import { RecordsPanel } from "./records-panel.js";
import { WaitingView, connectionQuality } from "./waiting-view.js";
import { QueuePanel, ReasonDialog } from "./queue-panel.js";
import { ConsentPanel } from "./consent-panel.js";
import { ScreenShare } from "./screen-share.js";
import { Moderation } from "./moderation.js";
import { QUALITY_INTERVAL_MS, QualityMeter } from "./quality.js";
import { NetCheck, mediaPathQuality } from "./net-check.js";
import * as consoleApi from "./api.js";

/** @typedef {import("./protocol.js").ServerMessage} ServerMessage */
/** @typedef {import("./protocol.js").Participant} Participant */
/** @typedef {import("./protocol.js").JoinedMessage} JoinedMessage */
/** @typedef {import("./protocol.js").ResumedMessage} ResumedMessage */
/** @typedef {import("./protocol.js").WaitingMessage} WaitingMessage */
/** @typedef {import("./protocol.js").PrecallInfo} PrecallInfo */
/** @typedef {import("./protocol.js").JoinMessage} JoinMessage */
/** @typedef {import("./protocol.js").ErrorCode} ErrorCode */
/** @typedef {import("./errors.js").LocalErrorCode} LocalErrorCode */
/** @typedef {import("./signaling.js").LinkEnd} LinkEnd */
/** @typedef {import("./i18n.js").MessageKey} MessageKey */

/** @typedef {"prejoin" | "connecting" | "waiting" | "in-room" | "reconnecting" | "ended" | "error"} AppState */

/** How often the microphones' levels are read, to show who speaks. */
const SPEAKING_POLL_MS = 300;
/** The level (0 to 1, linear) above which a microphone counts as speech rather than a room. */
const SPEAKING_LEVEL = 0.05;
/** How long the mark stays after they pause. */
const SPEAKING_HOLD_MS = 1200;


const STORE_KEY = "huizhen.join";
/** The room whose consent dialog opened by itself in this tab (it does once per room). */
const CONSENT_SHOWN_KEY = "huizhen.consent.shown";
/** The microphone and camera choice of this tab's consultation, so that a reload keeps it. */
const MEDIA_KEY = "huizhen.join.media";

/**
 * The mute and camera choice saved for `invite` in this tab, if any.
 * @param {string} invite
 * @returns {{mic: boolean, cam: boolean} | null}
 */
function loadMediaChoice(invite) {
  try {
    const v = JSON.parse(sessionStorage.getItem(MEDIA_KEY) ?? "null");
    if (v && v.invite === invite && typeof v.mic === "boolean" && typeof v.cam === "boolean") return { mic: v.mic, cam: v.cam };
  } catch {
    // Corrupt entry: none.
  }
  return null;
}
/** After this many media failures within RECOVERY_WINDOW_MS, stop rejoining and say so. */
const MAX_RECOVERIES = 3;
const RECOVERY_WINDOW_MS = 120_000;
/** After this many dropped waiting-room sockets within RECOVERY_WINDOW_MS, stop and say so. */
const MAX_WAITING_REJOINS = 5;
/** Pings that make the pre-call check's connection figure (their median round trip). */
const PRECALL_PINGS = 3;
/**
 * What `POST /invitations/check` answers for a link that lets nobody in any more, and the page
 * each shows.
 * @type {Record<string, ErrorCode>}
 */
const LINK_REFUSALS = {
  invalid_token: "invalid_token",
  invite_expired: "token_expired",
  invite_revoked: "invite_revoked",
  invite_used_up: "invite_used_up",
  room_ended: "room_ended",
};
/** How often a page waiting for its link to open asks again whether the time was moved. */
const OPENING_RECHECK_MS = 60_000;
const PRECALL_PING_TIMEOUT_MS = 5000;
/** Errors where reloading cannot help: the link itself is the problem. */
const LINK_ERRORS = new Set(["invalid_token", "token_expired", "invite_revoked", "room_not_found", "no_token", "session_ended"]);

/**
 * name is "" for a seat; waiting: in the waiting room (no resume token), so a reload joins the
 * queue again without asking for the name.
 * @typedef {{invite: string, resume: string, name: string, waiting?: boolean}} Stored
 */

/** @returns {Stored | null} */
function loadStored() {
  try {
    const value = JSON.parse(sessionStorage.getItem(STORE_KEY) ?? "null");
    if (value && typeof value.invite === "string" && typeof value.resume === "string" && typeof value.name === "string") {
      return { invite: value.invite, resume: value.resume, name: value.name, waiting: value.waiting === true };
    }
  } catch {
    // Corrupt entry: behave as if there were none.
  }
  return null;
}

/** @param {Stored} value */
function saveStored(value) {
  sessionStorage.setItem(STORE_KEY, JSON.stringify(value));
}

/**
 * Reads the claims of an invite token, as hints only: the role decides whether to ask for
 * camera and microphone before joining (an observer needs neither), and a session id (`sid`)
 * marks a care-team seat, whose name comes from the account. The server verifies the token and
 * has the last word; if the role hint is wrong the join is refused with `forbidden` and retried
 * without media.
 * @param {string} token
 * @returns {{role: string | null, seat: boolean, room: string | null}}
 */
function tokenHints(token) {
  const none = { role: null, seat: false, room: null };
  const parts = token.split(".");
  if (parts.length !== 3 || parts[0] !== "hz1") return none;
  try {
    const claims = JSON.parse(atob(parts[1].replace(/-/g, "+").replace(/_/g, "/")));
    return {
      role: typeof claims?.role === "string" ? claims.role : null,
      seat: typeof claims?.sid === "string" && claims.sid !== "",
      room: typeof claims?.room === "string" ? claims.room : null,
    };
  } catch {
    return none;
  }
}

function wsUrl() {
  return `${location.protocol === "http:" ? "ws:" : "wss:"}//${location.host}/ws`;
}

class JoinApp {
  /** @type {AppState} */
  state = "connecting";
  token = "";
  name = "";
  /** Entering through a care-team seat (the account's name is shown; none is typed). */
  seat = false;
  /** @type {string | null} the room the token is for (a seat takes fresh entry tokens for it) */
  roomId = null;
  /** A fresh entry token was already tried since the last successful join. */
  seatRetried = false;
  /** Joins without camera and microphone (an observer's invitation). */
  observer = false;
  /** The pre-call check is to be sent at the next `waiting` (a new link, or sent back). */
  precallDue = true;
  /**
   * The consultation's start as the waiting room last told it (null: it has no time;
   * undefined: not told yet), to see when the care team moves it.
   * @type {number | null | undefined}
   */
  waitingSlot = undefined;
  /** @type {number[]} when the waiting room's socket dropped and the page joined again */
  waitingRejoins = [];
  /** The status panel's button goes back to the console instead of reloading. */
  actionToConsole = false;
  /** The status panel's button joins again at once (an observer waiting for consent). */
  actionRejoin = false;
  /** @type {MediaStream | null} */
  local = null;
  publish = { audio: false, video: false };
  /**
   * What the device check found (sent with the pre-call check, and said in the room's banner).
   * @type {{camera: import("./prejoin.js").DeviceState, microphone: import("./prejoin.js").DeviceState}}
   */
  devices = { camera: "off", microphone: "off" };
  micOn = true;
  camOn = true;
  /** @type {Promise<boolean>} resolves once the camera/microphone request has settled */
  mediaReady = Promise.resolve(true);
  /** @type {SignalingClient | null} */
  signaling = null;
  /** The pre-call network check over the media path, while waiting (net-check.js). */
  netCheck = new NetCheck({ send: (msg) => this.signaling?.send(/** @type {any} */ (msg)) });
  /** @type {MediaSession | null} */
  media = null;
  /** @type {Participant | null} */
  you = null;
  /** @type {Map<string, Participant>} */
  others = new Map();
  /**
   * The latest participant -> tracks mapping from the media session. Kept because an offer may
   * name a participant before its `participant_joined` has created the tile.
   * @type {Map<string, import("./media-session.js").RemoteTracks>}
   */
  remoteTracks = new Map();
  /** Tells the server how big we show each received video (one per peer connection). */
  /** @type {VideoSizes | null} */
  videoSizes = null;
  /**
   * What the server last said we are sent of each video (`video_quality`), by m-line, with whose
   * video the m-line carried then (an m-line reused for someone else says nothing of them).
   * @type {Map<string, {participant: string, quality: import("./room-view.js").VideoQuality}>}
   */
  videoQuality = new Map();
  /**
   * Bumped whenever the link is torn down, so that late callbacks from an old socket or peer
   * connection can recognise themselves and do nothing.
   */
  generation = 0;
  /** @type {number[]} */
  recoveries = [];
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  noticeTimer;
  /** @type {ReturnType<typeof setInterval> | undefined} polls who speaks */
  speakerTimer = undefined;
  /**
   * While the link has not opened: when it opens (Unix seconds, as last told) and the timer
   * that reloads the page then.
   * @type {{notBefore: number, reload: ReturnType<typeof setTimeout>} | null}
   */
  opening = null;
  /** @type {{id: string, until: number} | null} who speaks, and until when the mark stays */
  speaker = null;
  /** Reads the current peer connection's statistics for the tiles' quality indicators. */
  /** @type {{meter: QualityMeter, media: MediaSession, timer: ReturnType<typeof setInterval>} | null} */
  quality = null;
  /**
   * Documents, viewer, chat and records: created on entering the room (they need its access
   * token and our role), kept across resumes.
   * @type {{api: RoomApi, docs: DocumentsPanel, viewer: DocViewer, chat: ChatPanel, records: RecordsPanel, room: string, role: string} | null}
   */
  consult = null;

  ui = {
    prejoin: must("#prejoin", HTMLElement),
    waitingScreen: must("#waiting-screen", HTMLElement),
    statusPanel: must("#status-panel", HTMLElement),
    statusSpinner: must("#status-spinner", HTMLElement),
    statusTitle: must("#status-title", HTMLElement),
    statusText: must("#status-text", HTMLElement),
    statusDetail: must("#status-detail", HTMLElement),
    statusAction: must("#status-action", HTMLButtonElement),
    statusOutcome: must("#status-outcome", HTMLAnchorElement),
    announcer: must("#announcer", HTMLElement),
    room: must("#room", HTMLElement),
    roomTitle: must("#room-title", HTMLElement),
    banner: must("#banner", HTMLElement),
    mediaBanner: must("#media-banner", HTMLElement),
    tiles: must("#tiles", HTMLElement),
    audience: must("#audience", HTMLElement),
    audienceList: must("#audience-list", HTMLElement),
    audienceCount: must("#audience-count", HTMLElement),
    notice: must("#notice", HTMLElement),
    soundButton: must("#sound-button", HTMLButtonElement),
    micButton: must("#mic-button", HTMLButtonElement),
    cameraButton: must("#camera-button", HTMLButtonElement),
    leaveButton: must("#leave-button", HTMLButtonElement),
    endButton: must("#end-button", HTMLButtonElement),
    endDialog: must("#end-dialog", HTMLDialogElement),
    viewer: must("#viewer", HTMLElement),
    documentsPanel: must("#documents-panel", HTMLElement),
    chatPanel: must("#chat-panel", HTMLElement),
    recordsPanel: must("#records-panel", HTMLElement),
    queuePanel: must("#queue-panel", HTMLElement),
    queueTab: must('.tab[data-tab="queue-panel"]', HTMLElement),
  };

  view = new RoomView(this.ui.tiles, { section: this.ui.audience, list: this.ui.audienceList, count: this.ui.audienceCount }, () => {
    this.ui.soundButton.hidden = false;
  });

  prejoin = new PreJoin(
    this.ui.prejoin,
    (name) => void this.onJoinClicked(name),
    () => void this.changeDevices(),
  );

  /** Your own picture on a phone: small, movable, hideable. */
  selfView = new SelfView(this.ui.tiles);

  waitingView = new WaitingView(this.ui.waitingScreen, () => void this.leave());

  reasons = new ReasonDialog();

  queue = new QueuePanel(this.ui.queuePanel, this.ui.queueTab, {
    send: (msg) => this.signaling?.send(msg),
    notice: (text) => this.notice(text),
    reasons: this.reasons,
  });

  consent = new ConsentPanel((msg) => this.signaling?.send(msg) ?? false);

  screen = new ScreenShare(must(".controls", HTMLElement, this.ui.room), this.ui.leaveButton, {
    send: (msg) => this.signaling?.send(msg),
    media: () => this.media,
    notice: (key) => this.notice(key),
    changed: () => this.showScreenShare(),
  });

  moderation = new Moderation(must(".controls", HTMLElement, this.ui.room), this.ui.leaveButton, this.ui.banner, {
    send: (msg) => this.signaling?.send(msg),
    notice: (key, params) => this.notice(key, params),
    reasons: this.reasons,
    nameOf: (id) => this.others.get(id)?.name ?? (id === this.you?.id ? this.you.name : ""),
    roleChanged: (role) => void this.onRoleChanged(role),
  });

  /** The consultation's own title, for the page title ("" when it has none yet). */
  roomTitle = "";

  constructor() {
    startPage();
    // The institution's name, logo and colour, when the server is configured with them.
    void startBranding();
    onLocaleChange(() => this.setTitle(this.roomTitle));
    this.ui.micButton.addEventListener("click", () => this.toggleMic());
    this.ui.cameraButton.addEventListener("click", () => void this.toggleCamera());
    this.ui.leaveButton.addEventListener("click", () => void this.leave());
    this.ui.endButton.addEventListener("click", () => this.ui.endDialog.showModal());
    this.ui.endDialog.addEventListener("close", () => {
      if (this.ui.endDialog.returnValue === "end") this.signaling?.send({ type: "end_room" });
      this.ui.endDialog.returnValue = "";
    });
    this.view.setStopSharing(() => void this.screen.stop());
    this.ui.soundButton.addEventListener("click", () => {
      this.view.enableSound();
      this.ui.soundButton.hidden = true;
    });
    this.ui.statusAction.addEventListener("click", () => {
      if (this.actionRejoin) {
        this.actionRejoin = false;
        this.connect(undefined);
      } else if (this.actionToConsole) location.assign("/");
      else location.reload();
    });
    for (const tab of document.querySelectorAll(".tab")) {
      tab.addEventListener("click", () => this.selectTab(tab.getAttribute("data-tab") ?? ""));
    }
    // A different invite pasted into the address bar of this tab is a different visit.
    window.addEventListener("hashchange", () => location.reload());
  }

  async start() {
    if (typeof RTCPeerConnection === "undefined" || !navigator.mediaDevices?.getUserMedia) {
      this.fail("unsupported_browser");
      return;
    }
    this.token = location.hash.slice(1).trim();
    if (!this.token) {
      this.fail("no_token");
      return;
    }
    const hints = tokenHints(this.token);
    const wantsMedia = hints.role !== "observer";
    this.observer = !wantsMedia;
    this.seat = hints.seat;
    this.roomId = hints.room;
    this.prejoin.setSeat(this.seat);
    const stored = loadStored();
    if (stored && stored.invite === this.token && (stored.resume || stored.waiting) && (stored.name || this.seat)) {
      // A reload in the middle of a consultation: straight back in, replacing our old self. Or
      // a reload in the waiting room: back in the queue (there is nothing to replace).
      this.name = stored.name;
      this.setState("connecting");
      if (await this.acquire(wantsMedia)) {
        // A reload keeps the microphone and camera as they were (muted stays muted).
        const choice = loadMediaChoice(this.token);
        if (choice) {
          this.micOn = this.publish.audio && choice.mic;
          this.camOn = this.publish.video && choice.cam;
        }
        this.connect(stored.resume || undefined);
      }
      return;
    }
    // A link is checked before anything else, so that an expired, used, revoked or early one
    // gets its own clear page before any camera or microphone prompt.
    if (!this.seat && !(await this.linkUsable())) return;
    if (stored && stored.invite === this.token && !this.seat) this.prejoin.setName(stored.name);
    this.setState("prejoin");
    this.prejoin.focus();
    this.mediaReady = this.acquire(wantsMedia);
  }

  /**
   * Whether the link still lets someone in now; when it does not, its page is showing. A link
   * that opens later says when, and the page opens itself then. If the server cannot be
   * reached, the join will say what is wrong.
   * @returns {Promise<boolean>}
   */
  async linkUsable() {
    try {
      const verdict = await checkInvitation(this.token);
      if (verdict.state !== "not_yet") return true;
      this.teardownAll();
      this.actionToConsole = false;
      this.actionRejoin = false;
      this.ui.statusAction.hidden = true;
      this.showNotYet(verdict, false);
      this.watchOpening();
      return false;
    } catch (err) {
      const code = err instanceof consoleApi.ApiError ? LINK_REFUSALS[err.code] : undefined;
      if (!code) return true;
      this.fail(code);
      if (code === "room_ended") this.offerOutcome();
      return false;
    }
  }

  /**
   * The page of a link that has not opened: when it opens, and a reload then.
   * @param {import("./room-api.js").InvitationCheck} verdict
   * @param {boolean} moved the care team changed the time while the page waited
   */
  showNotYet(verdict, moved) {
    const notBefore = verdict.not_before ?? 0;
    const opens = { at: notBefore * 1000, style: /** @type {const} */ ("datetime") };
    const detail = moved ? "join.not_yet.moved" : "join.not_yet.opens";
    this.showStatus("error", "join.not_yet.title", "join.not_yet.text", { key: detail, params: { time: opens } });
    this.ui.statusPanel.dataset.errorCode = "invite_not_yet";
    this.ui.statusPanel.dataset.opensAt = String(notBefore);
    if (this.opening) clearTimeout(this.opening.reload);
    // Timers are capped at about 24 days; a link that opens later than that is reloaded by hand.
    const wait = Math.min(verdict.opens_in * 1000 + 1000, 2 ** 31 - 1);
    this.opening = { notBefore, reload: window.setTimeout(() => location.reload(), wait) };
  }

  /**
   * The care team may move the consultation while the page waits for it, earlier as well as
   * later: the page asks again every OPENING_RECHECK_MS, and at once when it comes back to the
   * screen or to the network (a phone put away, a train through a tunnel).
   */
  watchOpening() {
    const again = () => void this.recheckOpening();
    window.setInterval(again, OPENING_RECHECK_MS);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") again();
    });
    window.addEventListener("online", again);
  }

  async recheckOpening() {
    /** @type {import("./room-api.js").InvitationCheck} */
    let verdict;
    try {
      verdict = await checkInvitation(this.token);
    } catch (err) {
      // Revoked, ended, used up: the page, loaded again, says which. Anything else (the
      // network, a busy server): keep waiting and ask again later.
      if (err instanceof consoleApi.ApiError && Object.hasOwn(LINK_REFUSALS, err.code)) location.reload();
      return;
    }
    if (verdict.state !== "not_yet") location.reload();
    else if ((verdict.not_before ?? 0) !== this.opening?.notBefore) this.showNotYet(verdict, true);
  }

  /**
   * Gets camera and microphone (or nothing, for an observer) and shows the preview.
   * @param {boolean} wanted
   * @returns {Promise<boolean>} false when it failed and the error state is showing
   */
  async acquire(wanted) {
    try {
      const got = await acquireMedia({ audio: wanted, video: wanted }, loadDeviceChoice());
      this.local = got.stream;
      this.devices = { camera: got.camera, microphone: got.microphone };
    } catch (err) {
      this.fail(mediaErrorCode(err));
      return false;
    }
    this.publish = {
      audio: (this.local?.getAudioTracks().length ?? 0) > 0,
      video: (this.local?.getVideoTracks().length ?? 0) > 0,
    };
    this.micOn = this.publish.audio;
    this.camOn = this.publish.video;
    this.prejoin.showPreview(this.local, deviceStatusKey(this.devices.camera, this.devices.microphone));
    if (this.state === "prejoin") void this.prejoin.setDevices(this.local, wanted);
    return true;
  }

  /**
   * Another camera or microphone chosen on the pre-join screen: the old ones go, the chosen
   * ones come (or, if they fail, whatever acquireMedia falls back to).
   */
  async changeDevices() {
    if (this.state !== "prejoin") return;
    await this.mediaReady;
    for (const track of this.local?.getTracks() ?? []) track.stop();
    this.local = null;
    this.mediaReady = this.acquire(!this.observer);
  }

  /** @param {string} name */
  async onJoinClicked(name) {
    this.name = name;
    this.prejoin.setBusy(true);
    if (!(await this.mediaReady)) return;
    this.prejoin.stopChecks();
    this.connect(undefined);
  }

  /**
   * Opens a new peer connection and signaling link and joins.
   * @param {string | undefined} replaces the resume token of our previous participant, if any
   */
  connect(replaces) {
    this.teardownLink();
    const gen = this.generation;
    // Someone waiting keeps the waiting screen (it says that it is reconnecting).
    if (this.state !== "waiting") {
      this.setState(this.state === "in-room" || this.state === "reconnecting" ? "reconnecting" : "connecting");
    }
    this.precallDue = true;
    this.newMedia();
    this.signaling = new SignalingClient(wsUrl(), {
      onMessage: (msg) => {
        if (gen === this.generation) this.onMessage(msg);
      },
      onStatus: (status) => {
        if (gen === this.generation && status === "reconnecting") this.setState("reconnecting");
      },
      onEnd: (end) => {
        if (gen === this.generation) this.onLinkEnd(end);
      },
      onResumeToken: (resume) => {
        if (gen === this.generation) saveStored({ invite: this.token, resume, name: this.name });
      },
    });
    // Simulcast: our camera in three sizes, on the m-line the offers name (media-session.js), and
    // we show `video_quality`; the server decides whether it takes them (media.simulcast).
    /** @type {JoinMessage} */
    const join = { type: "join", v: PROTOCOL_VERSION, token: this.token, name: this.name, publish: { ...this.publish, simulcast: true } };
    if (replaces) join.replaces = replaces;
    this.signaling.connect(join);
  }

  /**
   * A fresh peer connection for the current link, with our camera and microphone on it (the
   * server drives it: nothing happens until its first offer).
   */
  newMedia() {
    const gen = this.generation;
    const media = new MediaSession({
      onRemoteTracks: (tracks) => {
        if (gen !== this.generation || media !== this.media) return;
        this.remoteTracks = tracks;
        this.applyRemoteTracks();
      },
      onConnectionState: (state) => {
        if (gen === this.generation && media === this.media) this.onPeerState(state);
      },
      requestIceRestart: () => {
        if (gen === this.generation && media === this.media) this.signaling?.send({ type: "ice_restart" });
      },
      onIceRestarting: (on) => {
        if (gen === this.generation && media === this.media && this.state === "in-room") {
          this.showBanner(on ? "join.banner.ice_restarting" : null);
        }
      },
      // Restarting ICE did not bring media back: a fresh peer connection (bounded too).
      onIceRestartGaveUp: () => {
        if (gen === this.generation && media === this.media) this.recoverMedia();
      },
    }, { simulcast: true });
    // A new peer connection is a new set of m-lines: every size is told afresh.
    this.videoSizes?.stop();
    this.videoSizes = new VideoSizes((sizes) => {
      if (gen === this.generation && media === this.media) this.signaling?.send({ type: "video_sizes", sizes });
    });
    this.videoQuality.clear();
    media.attachLocal(this.local);
    // Carry the user's mute/camera choice over to a rejoin.
    media.setMicEnabled(this.micOn);
    if (this.publish.video && !this.camOn) void media.setCameraEnabled(false);
    this.media = media;
  }

  /** @param {ServerMessage} msg */
  onMessage(msg) {
    switch (msg.type) {
      case "joined":
      case "resumed":
        this.enterRoom(msg);
        break;
      case "waiting":
        this.onWaiting(msg);
        break;
      case "waiting_room":
        this.queue.update(msg, true);
        break;
      case "consent":
        this.consent.update(msg);
        break;
      case "screen_share":
        this.screen.update(msg.sharer);
        break;
      case "huddle":
        this.moderation.onHuddle(msg);
        break;
      case "held":
        this.moderation.onHeld(msg);
        break;
      case "role_changed":
        this.moderation.onRoleChanged(msg);
        break;
      case "video_quality": {
        const participant = this.media?.trackOf(msg.mid)?.participant_id;
        if (participant) this.videoQuality.set(msg.mid, { participant, quality: { layer: msg.layer, reason: msg.reason } });
        this.renderVideoQuality();
        break;
      }
      case "offer": {
        const media = this.media;
        const signaling = this.signaling;
        const gen = this.generation;
        if (!media || !signaling) break;
        media
          .handleOffer(msg)
          .then((sdp) => signaling.send({ type: "answer", offer_id: msg.offer_id, sdp }))
          .catch(() => {
            if (gen === this.generation) {
              this.notice("join.notice.media_setup_failed");
            }
          });
        break;
      }
      case "participant_joined":
      case "participant_updated":
        if (msg.type === "participant_joined" && msg.participant.id !== this.you?.id) {
          this.announce("join.announce.joined", { name: msg.participant.name, role: roleParam(msg.participant.role) });
        }
        this.onParticipant(msg.participant);
        this.applyRemoteTracks();
        this.consult?.records.refreshPatients();
        break;
      case "participants_joined":
        // Several arrivals at once (a lecture filling up): one pass over the tracks for all.
        for (const p of msg.participants) this.onParticipant(p);
        this.applyRemoteTracks();
        this.consult?.records.refreshPatients();
        break;
      case "participant_left":
        if (msg.participant_id === this.you?.id) {
          // The server dropped our media (or we were replaced; the close code says so next).
          if (msg.reason === "media_failed") this.recoverMedia();
          break;
        }
        {
          const gone = this.others.get(msg.participant_id);
          if (gone) this.announce("join.announce.left", { name: gone.name });
        }
        this.others.delete(msg.participant_id);
        this.view.remove(msg.participant_id);
        this.consult?.records.refreshPatients();
        break;
      case "room_ended":
        this.finishRoomEnded(msg.reason);
        break;
      case "error":
        if (!msg.fatal) this.onSoftError(msg.code);
        // Fatal errors arrive again through onLinkEnd once the server has closed the socket.
        break;
      case "pong":
        break;
      case "net_check_offer":
        this.netCheck.onOffer(msg);
        break;
      case "net_check_ended":
        this.netCheck.onEnded();
        break;
      case "net_check_estimate":
        this.netCheck.onEstimate(msg.down_kbps);
        break;
      case "document_shared":
        this.consult?.docs.add(msg.document);
        if (msg.document.shared_by !== this.you?.id) this.notice("join.notice.document_shared", { name: msg.document.name });
        break;
      case "document_withheld": {
        // Its name is not repeated: the patient withdrew what it may say about them.
        const c = this.consult;
        if (!c || !c.docs.withhold(msg.document_id)) break;
        if (c.viewer.doc?.id === msg.document_id) c.viewer.close();
        this.notice("join.notice.document_withheld");
        break;
      }
      case "chat":
        this.consult?.chat.add(msg.message);
        break;
      case "follow": {
        const c = this.consult;
        if (!c || msg.presenter === this.you?.id) break;
        const doc = msg.document_id ? c.docs.get(msg.document_id) : undefined;
        void c.viewer.applyFollow(msg, doc, this.others.get(msg.presenter)?.name ?? t("viewer.presenter"));
        break;
      }
      case "follow_stopped":
        this.consult?.viewer.followStopped(msg.presenter);
        break;
      case "annotation_added":
        this.consult?.viewer.addAnnotation(msg.annotation);
        break;
      case "record_updated":
        this.consult?.records.upsert(msg.record);
        break;
    }
  }

  /** @param {string} id */
  selectTab(id) {
    for (const tab of document.querySelectorAll(".tab")) {
      const on = tab.getAttribute("data-tab") === id;
      tab.setAttribute("aria-selected", String(on));
      const panel = document.getElementById(tab.getAttribute("data-tab") ?? "");
      if (panel) panel.hidden = !on;
    }
  }

  /**
   * Sets up (or, after a rejoin, refreshes) documents, viewer, chat and records.
   * @param {JoinedMessage | ResumedMessage} msg
   */
  enterConsultation(msg) {
    const send = (/** @type {import("./protocol.js").ClientMessage} */ m) => this.signaling?.send(m);
    if (!this.consult || this.consult.room !== msg.room.id || this.consult.role !== msg.you.role) {
      const api = new RoomApi(msg.room.id, msg.access_token);
      const viewer = new DocViewer(this.ui.viewer, api, msg.you.role, {
        sendFollow: (state) => send({ type: "follow", ...state }),
        sendAnnotation: (document_id, page, shape) => send({ type: "annotate", document_id, page, shape }),
        notice: (text) => this.notice(text),
      });
      const docs = new DocumentsPanel(this.ui.documentsPanel, api, msg.you.role, (doc) => void viewer.open(doc));
      const chat = new ChatPanel(this.ui.chatPanel, (text) => send({ type: "chat", text }));
      const records = new RecordsPanel(this.ui.recordsPanel, api, msg.you.role, () =>
        [...this.others.values()].filter((p) => p.role === "patient").map((p) => ({ id: p.id, name: p.name })),
      );
      this.consult = { api, docs, viewer, chat, records, room: msg.room.id, role: msg.you.role };
    }
    const c = this.consult;
    c.api.token = msg.access_token;
    c.docs.reset(msg.documents, msg.documents_withheld);
    c.chat.reset(msg.chat);
    void c.records.load();
    c.records.refreshPatients();
    const f = msg.follow;
    if (f && f.presenter !== msg.you.id) {
      const doc = f.document_id ? c.docs.get(f.document_id) : undefined;
      void c.viewer.applyFollow(f, doc, this.others.get(f.presenter)?.name ?? t("viewer.presenter"));
    }
  }

  /**
   * Waiting to be admitted: first told after `join`, then whenever the queue moves, the clinic's
   * message changes, or a clinician sent us back from the consultation.
   * @param {WaitingMessage} msg
   */
  onWaiting(msg) {
    if (this.you) this.backToQueue();
    const slot = msg.slot_start ?? null;
    const moved = this.waitingSlot !== undefined && slot !== this.waitingSlot;
    this.waitingSlot = slot;
    // Moved, they keep their place: the clinic decides what happens next (admits them,
    // writes to the waiting room, or declines with a reason), and they may leave.
    this.waitingView.show(msg, moved);
    this.prejoin.showPreview(null, null);
    this.waitingView.setPreview(this.local);
    // Nothing to resume: a reload joins the queue again, under the same name.
    saveStored({ invite: this.token, resume: "", name: this.name, waiting: true });
    this.setTitle(msg.room.title);
    if (this.state !== "waiting") {
      this.setState("waiting");
      this.waitingView.focus();
    }
    if (this.precallDue) {
      this.precallDue = false;
      void this.sendPrecall();
    }
  }

  /**
   * Sent back to the waiting room: the server has removed our place and our media, so the room
   * view, the peer connection and the clinicians' tools go; the camera stays, and a fresh peer
   * connection waits for the next admission's offer.
   */
  backToQueue() {
    this.view.clear();
    this.view.setSendBack(null);
    this.view.setManage(null, () => false);
    this.moderation.leave();
    this.you = null;
    this.others.clear();
    this.media?.close();
    this.media = null;
    this.remoteTracks = new Map();
    this.newMedia();
    this.consult?.viewer.close();
    this.queue.enter(undefined);
    this.consent.reset();
    if (this.ui.endDialog.open) this.ui.endDialog.close();
    if (this.reasons.ui.dialog.open) this.reasons.ui.dialog.close();
    this.ui.soundButton.hidden = true;
    this.showBanner(null);
    this.precallDue = true;
  }

  /**
   * The pre-call check, sent once per wait: whether camera and microphone deliver (from the
   * preview the page holds) and how the connection looks. First from the median round trip of
   * a few signaling pings (under 150 ms good, under 400 ms fair, else poor), sent at once; then
   * from the network check over the media path (net-check.js: round trip, loss and upload
   * bandwidth, a few seconds), sent again with its figures when it ran.
   */
  async sendPrecall() {
    const signaling = this.signaling;
    if (!signaling) return;
    this.waitingView.setChecks(null, this.observer);
    this.waitingView.setNetwork(undefined);
    /** @type {number[]} */
    const rtts = [];
    let answered = true;
    for (let i = 0; i < PRECALL_PINGS && answered; i += 1) {
      const rtt = await signaling.measureRtt(PRECALL_PING_TIMEOUT_MS);
      if (rtt === null) answered = false;
      else rtts.push(rtt);
    }
    if (signaling !== this.signaling || this.state !== "waiting") return;
    const rtt = answered ? rtts.sort((a, b) => a - b)[Math.floor(rtts.length / 2)] : null;
    const live = (/** @type {MediaStreamTrack[]} */ tracks) => tracks.some((t) => t.readyState === "live");
    /** @type {PrecallInfo} */
    const report = {
      camera: live(this.local?.getVideoTracks() ?? []),
      microphone: live(this.local?.getAudioTracks() ?? []),
      connection: connectionQuality(rtt ?? null),
    };
    if (rtt !== null && rtt !== undefined) report.rtt_ms = rtt;
    // Why a device is missing matters to the clinician: none, or blocked in the browser.
    if (this.devices.camera !== "off") report.camera_state = report.camera ? "ok" : this.devices.camera === "denied" ? "denied" : "none";
    if (this.devices.microphone !== "off") {
      report.microphone_state = report.microphone ? "ok" : this.devices.microphone === "denied" ? "denied" : "none";
    }
    if (!this.observer) report.speaker = this.prejoin.speaker;
    signaling.send({ type: "precall", ...report });
    this.waitingView.setChecks(report, this.observer);
    // An observer sends no media: what the path carries matters less than for the others.
    if (this.observer || !answered) return;
    this.waitingView.setNetwork(null);
    const path = await this.netCheck.run(this.local);
    if (signaling !== this.signaling || this.state !== "waiting") return;
    this.waitingView.setNetwork(path ?? undefined);
    if (!path) return;
    /** @type {PrecallInfo} */
    const measured = { ...report, media_path: path.path, connection: mediaPathQuality(path) };
    if (path.rttMs !== undefined) measured.media_rtt_ms = path.rttMs;
    if (path.lossPermille !== undefined) measured.loss_permille = path.lossPermille;
    if (path.upKbps !== undefined) measured.up_kbps = path.upKbps;
    if (path.sentKbps !== undefined) measured.up_sent_kbps = path.sentKbps;
    if (path.downKbps !== undefined) measured.down_kbps = path.downKbps;
    if (path.downEstimateKbps !== undefined) measured.down_estimate_kbps = path.downEstimateKbps;
    if (path.downLossPermille !== undefined) measured.down_loss_permille = path.downLossPermille;
    if (path.downJitterMs !== undefined) measured.down_jitter_ms = path.downJitterMs;
    signaling.send({ type: "precall", ...measured });
    this.waitingView.setChecks(measured, this.observer);
  }

  /**
   * The waiting room's socket dropped: join the queue again, after a pause that grows, a few
   * times; the waiting screen stays and says so.
   */
  rejoinWaiting() {
    const now = Date.now();
    this.waitingRejoins = this.waitingRejoins.filter((t) => now - t < RECOVERY_WINDOW_MS);
    if (this.waitingRejoins.length >= MAX_WAITING_REJOINS) {
      this.fail("reconnect_failed");
      return;
    }
    const delay = 1000 * 2 ** this.waitingRejoins.length;
    this.waitingRejoins.push(now);
    this.teardownLink();
    this.waitingView.setReconnecting(true);
    const gen = this.generation;
    setTimeout(() => {
      if (gen === this.generation && this.state === "waiting") this.connect(undefined);
    }, delay);
  }

  /** @param {JoinedMessage | ResumedMessage} msg */
  enterRoom(msg) {
    const admitted = this.state === "waiting";
    // The call's own connection takes over from the network check at once.
    this.netCheck.stop();
    this.media?.setIceServers(msg.ice_servers ?? []);
    this.waitingView.clear();
    this.you = msg.you;
    this.seatRetried = false;
    const present = new Set(msg.participants.map((p) => p.id));
    present.add(msg.you.id);
    // After a resume or a rejoin, whoever left meanwhile (and our own old self) goes away.
    for (const id of this.view.ids()) if (!present.has(id)) this.view.remove(id);
    this.others = new Map(msg.participants.map((p) => [p.id, p]));
    if (msg.room.title) userText(this.ui.roomTitle, msg.room.title);
    else tr(this.ui.roomTitle, "join.room_title");
    this.setTitle(msg.room.title);
    this.prejoin.showPreview(null, null);
    this.renderLocal();
    this.view.setLocalStream(msg.you.id, this.local);
    for (const p of msg.participants) this.view.upsert(p, false);
    this.applyRemoteTracks();
    this.ui.endButton.hidden = msg.you.role !== "doctor";
    this.showMediaControls();
    this.enterConsultation(msg);
    // Clinicians manage the waiting room: its tab, and "Send back" on patients and observers.
    this.queue.enter(msg.waiting_room);
    this.view.setSendBack(msg.waiting_room ? (p) => void this.queue.sendBack(p) : null);
    // And the others: muting on the server, roles, removal, huddles.
    this.moderation.enter(msg.you, msg.huddle ?? false);
    this.view.setManage(
      this.moderation.moderates ? (p, anchor) => this.moderation.openMenu(p, anchor) : null,
      (p) => this.moderation.actions(p).length > 0,
    );
    // A reload keeps the role the care team gave us; our devices follow it.
    if (msg.you.role === "guest" && this.observer) void this.onRoleChanged("guest");
    else if (msg.you.role === "observer" && !this.observer) void this.onRoleChanged("observer");
    // The server starts everyone unmuted; tell it if we are not (a rejoin while muted).
    if (msg.type === "joined" && ((this.publish.audio && !this.micOn) || (this.publish.video && !this.camOn))) {
      this.sendMediaState();
    }
    this.setState("in-room");
    this.startQuality();
    this.watchSpeaker();
    if (admitted) {
      this.notice("join.notice.admitted");
      this.ui.roomTitle.tabIndex = -1;
      this.ui.roomTitle.focus();
    }
    this.consent.update(msg.consent ?? { in_force: [] });
    this.screen.enter(msg.you.id, msg.you.role, msg.screen_share ?? null);
    // A patient is asked first thing on entering (once per room in this tab: not again after a
    // reload or a resume; the Consent button is always there).
    if (msg.type === "joined" && this.consent.asked && sessionStorage.getItem(CONSENT_SHOWN_KEY) !== msg.room.id) {
      sessionStorage.setItem(CONSENT_SHOWN_KEY, msg.room.id);
      this.consent.open();
    }
  }

  /**
   * Someone arrived or changed (a participant_joined, participant_updated or one of a
   * participants_joined).
   * @param {Participant} p
   */
  onParticipant(p) {
    if (p.id === this.you?.id) {
      this.you = p;
      this.moderation.updateYou(p);
      this.renderLocal();
    } else {
      this.others.set(p.id, p);
      this.view.upsert(p, false);
    }
  }

  applyRemoteTracks() {
    if (!this.you) return;
    this.view.setRemoteTracks(this.remoteTracks, this.you.id);
    const media = this.media;
    if (media) {
      /** @type {{element: HTMLVideoElement, mid: string}[]} */
      const shown = [];
      for (const { element, track } of this.view.remoteVideos()) {
        const mid = media.midOf(track);
        if (mid !== null) shown.push({ element, mid });
      }
      this.videoSizes?.track(shown);
    }
    this.renderVideoQuality();
  }

  /**
   * Shows on each remote tile (and the stage) what we are sent of its video, as the server last
   * said; an m-line that no longer carries the video it was said of is forgotten.
   */
  renderVideoQuality() {
    const media = this.media;
    /** @type {Map<string, import("./room-view.js").VideoQuality>} */
    const shown = new Map();
    for (const [mid, said] of this.videoQuality) {
      const info = media?.trackOf(mid);
      if (!info || info.kind !== "video" || info.participant_id !== said.participant) {
        this.videoQuality.delete(mid);
        continue;
      }
      shown.set(`${info.source === "screen" ? "screen" : "camera"} ${info.participant_id}`, said.quality);
    }
    for (const id of this.others.keys()) {
      this.view.setVideoQuality(id, "camera", shown.get(`camera ${id}`) ?? null);
      this.view.setVideoQuality(id, "screen", shown.get(`screen ${id}`) ?? null);
    }
  }

  /** A screen share takes the stage for everyone; the sharer sees their own share's state. */
  showScreenShare() {
    const id = this.screen.sharer;
    if (!id) this.view.setScreenShare(null);
    else this.view.setScreenShare({ id, name: this.others.get(id)?.name ?? this.you?.name ?? "", local: id === this.you?.id });
    this.applyRemoteTracks();
  }

  /** Our own tile reflects our local choices at once, without waiting for the server's echo. */
  renderLocal() {
    if (!this.you) return;
    this.view.upsert(
      {
        ...this.you,
        publishing: { ...this.publish },
        audio_muted: !this.micOn,
        video_off: !this.camOn,
        connection: "connected",
      },
      true,
    );
  }

  /** The microphone and camera buttons, for what we send (none for an observer). */
  showMediaControls() {
    this.ui.micButton.hidden = !this.publish.audio;
    this.ui.cameraButton.hidden = !this.publish.video;
    this.showMediaBanner();
    this.renderControls();
  }

  /**
   * The care team changed our role (or a reload found it changed). Let speak (a guest): the
   * microphone and camera are asked for and start muted and off, for us to turn on; the
   * media session sends them on the m-lines the server's next offer adds. Made to only watch
   * (an observer): they stop, and the server stops their m-lines.
   * @param {import("./protocol.js").Role} role
   */
  async onRoleChanged(role) {
    const gen = this.generation;
    if (this.you) {
      this.you = { ...this.you, role };
      this.moderation.updateYou(this.you);
    }
    if (role === "guest") {
      if (!this.observer) return;
      this.observer = false;
      /** @type {(value?: unknown) => void} */
      let settle = () => undefined;
      this.media?.expectLocal(new Promise((resolve) => (settle = resolve)));
      /** @type {MediaStream | null} */
      let stream = null;
      try {
        const got = await acquireMedia({ audio: true, video: true }, loadDeviceChoice());
        stream = got.stream;
        this.devices = { camera: got.camera, microphone: got.microphone };
      } catch {
        this.devices = { camera: "none", microphone: "none" };
        this.notice("moderation.notice.devices_failed");
      }
      if (gen !== this.generation || this.observer) {
        for (const track of stream?.getTracks() ?? []) track.stop();
        settle();
        return;
      }
      // Muted and off until we turn them on.
      for (const track of stream?.getTracks() ?? []) track.enabled = false;
      this.local = stream;
      this.publish = { audio: (stream?.getAudioTracks().length ?? 0) > 0, video: (stream?.getVideoTracks().length ?? 0) > 0 };
      this.micOn = false;
      this.camOn = false;
      await this.media?.setCameraEnabled(false);
      await this.media?.setLocal(stream);
      settle();
    } else {
      if (this.observer) return;
      this.observer = true;
      for (const track of this.local?.getTracks() ?? []) track.stop();
      this.local = null;
      this.publish = { audio: false, video: false };
      this.devices = { camera: "off", microphone: "off" };
      this.micOn = false;
      this.camOn = false;
      await this.media?.setLocal(null);
    }
    if (gen !== this.generation || !this.you) return;
    this.showMediaControls();
    this.renderLocal();
    this.view.setLocalStream(this.you.id, this.local);
    if (!this.observer) this.sendMediaState();
  }

  renderControls() {
    tr(this.ui.micButton, this.micOn ? "room.mute" : "room.unmute");
    trAttr(this.ui.micButton, "aria-label", this.micOn ? "room.mute_label" : "room.unmute_label");
    this.ui.micButton.classList.toggle("control-off", !this.micOn);
    tr(this.ui.cameraButton, this.camOn ? "room.camera_off" : "room.camera_on");
    trAttr(this.ui.cameraButton, "aria-label", this.camOn ? "room.camera_off_label" : "room.camera_on_label");
    this.ui.cameraButton.classList.toggle("control-off", !this.camOn);
  }

  sendMediaState() {
    this.signaling?.send({ type: "media_state", audio_muted: !this.micOn, video_off: !this.camOn });
    sessionStorage.setItem(MEDIA_KEY, JSON.stringify({ invite: this.token, mic: this.micOn, cam: this.camOn }));
  }

  toggleMic() {
    if (!this.publish.audio) return;
    this.micOn = !this.micOn;
    this.media?.setMicEnabled(this.micOn);
    this.renderControls();
    this.renderLocal();
    this.sendMediaState();
  }

  async toggleCamera() {
    if (!this.publish.video) return;
    this.camOn = !this.camOn;
    this.renderControls();
    this.renderLocal();
    try {
      await this.media?.setCameraEnabled(this.camOn);
    } catch {
      this.notice("join.notice.camera_switch_failed");
    }
    this.sendMediaState();
  }

  async leave() {
    const signaling = this.signaling;
    const waiting = this.state === "waiting";
    this.ui.leaveButton.disabled = true;
    // Stop listening to the link first: its onEnd("left") must not race the screen below.
    this.generation += 1;
    if (signaling) await signaling.leave();
    this.finish("ended", waiting ? "join.end.left_waiting" : "join.end.left", "join.end.close_page", "join.end.join_again");
  }

  /** @param {"ended_by_doctor" | "called_off" | "server_shutdown"} reason */
  finishRoomEnded(reason) {
    if (reason === "called_off") {
      // Never held: nothing came of it to show.
      this.finish("ended", "join.end.called_off", "join.end.called_off_detail", null);
      return;
    }
    this.finish(
      "ended",
      "join.end.ended",
      reason === "server_shutdown" ? "join.end.shutdown" : "join.end.thanks",
      null,
    );
    this.offerOutcome();
  }

  /**
   * After the consultation, a patient's link also opens its outcome (report, prescriptions,
   * follow-up, PDF): the ended page leads there. Others' links do not (the server refuses them).
   */
  offerOutcome() {
    if (tokenHints(this.token).role !== "patient") return;
    this.ui.statusOutcome.href = `/outcome#${this.token}`;
    this.ui.statusOutcome.hidden = false;
  }

  /** @param {LinkEnd} end */
  onLinkEnd(end) {
    switch (end.reason) {
      case "left":
        this.finish("ended", "join.end.left", "join.end.close_page", "join.end.join_again");
        return;
      case "gave_up":
        this.fail("reconnect_failed");
        return;
      case "dropped_waiting":
        this.rejoinWaiting();
        return;
      case "fatal":
        if (end.code === "room_ended") this.finishRoomEnded("ended_by_doctor");
        // A seat's entry token lasts minutes: a reload or a rejoin later takes a fresh one.
        else if (end.code === "token_expired" && this.seat && !this.seatRetried) void this.reenterSeat();
        else if (end.code === "invalid_name") this.backToPrejoin(errorKey(end.code));
        // A lost media path is worth one fresh peer connection (bounded by recoverMedia).
        else if (end.code === "media_lost") this.recoverMedia();
        // Turned away from the waiting room: the clinic's reason is the message.
        // Turned away or removed: the clinician's own words, if they gave any (the server's
        // English default is for developers, and the page says it in the reader's language).
        else if (end.code === "declined" || end.code === "removed") this.fail(end.code, end.clinicReason ?? "");
        else this.fail(end.code);
        return;
      case "closed":
        this.onClosed(end.closeCode, end.everJoined);
        return;
    }
  }

  /**
   * The socket closed without a fatal error message first.
   * @param {number} code
   * @param {boolean} everJoined
   */
  onClosed(code, everJoined) {
    /** @type {Record<number, ErrorCode | LocalErrorCode>} */
    const byCode = {
      4001: "invalid_token",
      4002: "room_full",
      4003: "replaced",
      4004: "resume_failed",
      4006: "declined",
      4007: "room_locked",
      4008: "rate_limited",
      4404: "room_not_found",
    };
    if (code === 4000) this.finishRoomEnded("ended_by_doctor");
    // A waiting room's socket that could not even reconnect: try again (bounded).
    else if (this.state === "waiting" && !byCode[code]) this.rejoinWaiting();
    else if (code === 4005) this.recoverMedia();
    else if (byCode[code]) this.fail(byCode[code]);
    else this.fail(everJoined ? "reconnect_failed" : "connect_failed");
  }

  /** @param {ErrorCode} code */
  onSoftError(code) {
    if (code === "net_check_limited" || (code === "not_waiting" && this.state === "waiting")) {
      // No network check now: the signaling round trip stands.
      this.netCheck.onEnded();
      return;
    }
    if (code === "ice_restart_limited") {
      this.media?.iceRestartRefused();
      return;
    }
    if (code === "not_waiting") {
      // A clinician's admit, decline or send back found nobody to act on.
      this.notice(this.queue.notWaiting());
      return;
    }
    if (code === "forbidden" && !this.you && this.state !== "waiting" && (this.publish.audio || this.publish.video)) {
      // Our role may not publish (the token's role hint was missing or wrong): join without media.
      for (const track of this.local?.getTracks() ?? []) track.stop();
      this.local = null;
      this.publish = { audio: false, video: false };
      this.devices = { camera: "off", microphone: "off" };
      this.observer = true;
      this.micOn = false;
      this.camOn = false;
      this.connect(undefined);
      return;
    }
    if (code === "stale_offer") return; // an answer overtaken by a newer offer: harmless
    if (code === "screen_share_busy" || code === "media_not_ready" || code === "forbidden") this.screen.refused();
    if (code === "wording_changed") {
      // Agreed to words the server has since revised: nothing was recorded.
      this.consent.refused();
      this.notice("consent.wording_changed");
      return;
    }
    if (code === "consent_required") {
      // An observer's join in a room whose patient has not agreed: the socket stays open, but
      // there is nothing to do there until they do.
      if (!this.you && this.state !== "waiting") this.consentBlocked();
      // A clinician's admit of an observer.
      else this.notice("join.notice.observer_waits_consent");
      return;
    }
    this.notice(errorKey(code));
  }

  /** @param {RTCPeerConnectionState} state */
  onPeerState(state) {
    if (state === "failed") {
      // A path that worked once is restarted first (ICE restart, no rejoin).
      if (!this.media?.iceRestartHandlesFailure) this.recoverMedia();
    } else if (state === "disconnected") {
      if (this.state === "in-room" && !this.media?.iceRestarting) this.showBanner("join.banner.unstable");
    } else if (state === "connected") {
      if (this.state === "in-room") this.showBanner(null);
    }
  }

  /**
   * The media path is dead (a resume cannot revive a peer connection): rejoin with a fresh
   * one, replacing our old participant. Bounded, so a network that cannot carry media ends in
   * a clear error instead of a loop.
   */
  recoverMedia() {
    const now = Date.now();
    this.recoveries = this.recoveries.filter((t) => now - t < RECOVERY_WINDOW_MS);
    if (this.recoveries.length >= MAX_RECOVERIES) {
      this.fail("reconnect_failed");
      return;
    }
    this.recoveries.push(now);
    const stored = loadStored();
    this.connect(stored && stored.invite === this.token ? stored.resume : undefined);
  }

  /**
   * The seat's entry token expired (a reload, "Join again" or a media recovery long after
   * entering): takes a fresh one with the console's session, which this tab holds when the
   * console opened the room in it, and joins again, replacing our previous self if there was
   * one. Without a session, or if the console's answer is no, the expiry is shown.
   */
  async reenterSeat() {
    this.seatRetried = true;
    const gen = this.generation;
    let fresh = "";
    if (this.roomId && consoleApi.sessionToken()) {
      try {
        fresh = (await consoleApi.enterRoom(this.roomId)).token;
      } catch {
        // Signed out, off the care team, or the room is gone: the expiry is what is shown.
      }
    }
    if (gen !== this.generation) return;
    if (!fresh) {
      this.fail("token_expired");
      return;
    }
    const stored = loadStored();
    const resume = stored && stored.invite === this.token ? stored.resume : "";
    this.token = fresh;
    saveStored({ invite: fresh, resume, name: this.name });
    // The address keeps a working entry for the next reload; replaceState fires no hashchange.
    history.replaceState(null, "", `#${fresh}`);
    this.connect(resume || undefined);
  }

  /**
   * An observer turned away until the patient agrees: says so, with "Try again" (a fresh join,
   * without reloading).
   */
  consentBlocked() {
    this.teardownLink();
    this.actionToConsole = false;
    this.actionRejoin = true;
    this.ui.statusAction.hidden = false;
    tr(this.ui.statusAction, "common.try_again");
    this.showStatus("error", errorTitleKey("consent_required") ?? "join.fail.cannot_join", errorKey("consent_required"));
    this.ui.statusPanel.dataset.errorCode = "consent_required";
  }

  /** @param {MessageKey} error */
  backToPrejoin(error) {
    this.teardownLink();
    this.setState("prejoin");
    this.prejoin.setBusy(false);
    this.prejoin.showPreview(this.local, deviceStatusKey(this.devices.camera, this.devices.microphone));
    void this.prejoin.setDevices(this.local, !this.observer);
    this.prejoin.showError(error);
    this.prejoin.focus();
  }

  /**
   * @param {ErrorCode | LocalErrorCode} code
   * @param {string} [detail] the clinic's own words (a declined person's reason)
   */
  fail(code, detail = "") {
    this.teardownAll();
    this.actionRejoin = false;
    const linkError = LINK_ERRORS.has(code);
    if (this.seat) {
      // A seat's entry token is short-lived and tied to the console's sign-in: a fresh one comes
      // from the console's "Enter consultation".
      this.actionToConsole = linkError;
      this.ui.statusAction.hidden = false;
      tr(this.ui.statusAction, linkError ? "join.fail.to_console" : "common.reload");
      this.showStatus("error", errorTitleKey(code) ?? "join.fail.cannot_enter", seatErrorKey(code));
    } else {
      this.actionToConsole = false;
      // Turned away for good: reloading would only queue them again.
      this.ui.statusAction.hidden = linkError || code === "declined";
      tr(this.ui.statusAction, code === "room_locked" ? "common.try_again" : "common.reload");
      const title = errorTitleKey(code) ?? (linkError ? "join.fail.bad_link" : "join.fail.cannot_join");
      this.showStatus("error", title, errorKey(code), detail ? { key: "join.fail.clinic_message", params: { text: detail } } : null);
    }
    this.ui.statusPanel.dataset.errorCode = code;
  }

  /**
   * @param {"ended"} state
   * @param {MessageKey} title
   * @param {MessageKey} text
   * @param {MessageKey | null} action label of a button that reloads (and so joins again), or none
   */
  finish(state, title, text, action) {
    this.teardownAll();
    this.actionToConsole = false;
    this.actionRejoin = false;
    this.ui.statusAction.hidden = action === null;
    if (action !== null) tr(this.ui.statusAction, action);
    this.showStatus(state, title, text);
  }

  /**
   * @param {"ended" | "error"} state
   * @param {MessageKey} title
   * @param {MessageKey} text
   * @param {{key: MessageKey, params?: import("./i18n.js").Params} | null} [detail] a second paragraph
   */
  showStatus(state, title, text, detail = null) {
    tr(this.ui.statusTitle, title);
    tr(this.ui.statusText, text);
    if (detail) tr(this.ui.statusDetail, detail.key, detail.params);
    else clearText(this.ui.statusDetail);
    this.ui.statusDetail.hidden = detail === null;
    this.setState(state);
    // Move focus to the news so keyboard and screen-reader users land on it.
    this.ui.statusTitle.tabIndex = -1;
    this.ui.statusTitle.focus();
  }

  /**
   * Measures the connection every few seconds while in the room, for the current peer
   * connection (a rejoin's new one starts afresh).
   */
  startQuality() {
    const media = this.media;
    if (!media || this.quality?.media === media) return;
    this.stopQuality();
    const meter = new QualityMeter();
    const timer = setInterval(() => void this.readQuality(), QUALITY_INTERVAL_MS);
    this.quality = { meter, media, timer };
  }

  stopQuality() {
    if (this.quality) clearInterval(this.quality.timer);
    this.quality = null;
    if (this.speakerTimer !== undefined) clearInterval(this.speakerTimer);
    this.speakerTimer = undefined;
    this.speaker = null;
  }

  /**
   * Who speaks: the loudest microphone above a floor, kept a moment after they pause so the
   * mark does not flicker between words.
   */
  watchSpeaker() {
    const media = this.media;
    if (!media || this.speakerTimer !== undefined) return;
    this.speakerTimer = setInterval(() => {
      if (media !== this.media) return;
      const now = Date.now();
      let loudest = null;
      let level = SPEAKING_LEVEL;
      for (const [id, l] of media.audioLevels()) {
        if (l > level && this.others.get(id)?.audio_muted !== true) {
          loudest = id;
          level = l;
        }
      }
      if (loudest) this.speaker = { id: loudest, until: now + SPEAKING_HOLD_MS };
      else if (this.speaker && now > this.speaker.until) this.speaker = null;
      this.view.setSpeaking(this.speaker?.id ?? null);
    }, SPEAKING_POLL_MS);
  }

  async readQuality() {
    const q = this.quality;
    if (!q || q.media !== this.media || !this.you) return;
    let stats = null;
    try {
      stats = await q.media.stats();
    } catch {
      return;
    }
    if (!stats || q !== this.quality || !this.you) return;
    const { others, own } = q.meter.read(stats.report, stats.owners);
    for (const id of this.view.ids()) {
      if (id === this.you.id) this.view.setQuality(id, own);
      else this.view.setQuality(id, others.get(id) ?? null);
    }
  }

  /** Closes signaling and media, keeping the camera and the view for whatever comes next. */
  teardownLink() {
    this.stopQuality();
    this.netCheck.stop();
    this.generation += 1;
    this.signaling?.stop();
    this.media?.close();
    this.videoSizes?.stop();
    this.videoSizes = null;
    this.videoQuality.clear();
    this.signaling = null;
    this.media = null;
    // Tracks of a closed peer connection are dead; the next one reports its own.
    this.remoteTracks = new Map();
  }

  /** Everything off: link, tiles, camera light. */
  teardownAll() {
    this.teardownLink();
    this.view.clear();
    this.view.setSendBack(null);
    this.view.setManage(null, () => false);
    this.moderation.leave();
    this.queue.enter(undefined);
    this.consent.reset();
    this.you = null;
    this.others.clear();
    for (const track of this.local?.getTracks() ?? []) track.stop();
    this.local = null;
    this.prejoin.showPreview(null, null);
    this.waitingView.clear();
    if (this.ui.endDialog.open) this.ui.endDialog.close();
    if (this.reasons.ui.dialog.open) this.reasons.ui.dialog.close();
    // A reload must not try to take over a participant that is gone, nor queue again.
    const stored = loadStored();
    // The name stays, to prefill the pre-join screen of a "Join again".
    if (stored) saveStored({ ...stored, resume: "", waiting: false });
  }

  /** @param {AppState} state */
  setState(state) {
    this.state = state;
    document.body.dataset.state = state;
    const inRoom = state === "in-room" || state === "reconnecting";
    this.ui.prejoin.hidden = state !== "prejoin";
    if (state !== "prejoin") this.prejoin.stopChecks();
    this.ui.waitingScreen.hidden = state !== "waiting";
    this.ui.room.hidden = !inRoom;
    this.ui.statusPanel.hidden = !(state === "connecting" || state === "ended" || state === "error");
    this.ui.statusSpinner.hidden = state !== "connecting";
    if (state === "connecting") {
      tr(this.ui.statusTitle, "join.status.connecting");
      tr(this.ui.statusText, "join.status.joining");
      this.ui.statusDetail.hidden = true;
      this.ui.statusAction.hidden = true;
      delete this.ui.statusPanel.dataset.errorCode;
    }
    if (state === "reconnecting") this.showBanner("join.banner.reconnecting");
    else if (state === "in-room") this.showBanner(null);
  }

  /** @param {MessageKey | null} key null hides the banner */
  showBanner(key) {
    if (key) tr(this.ui.banner, key);
    else clearText(this.ui.banner);
    this.ui.banner.hidden = key === null;
  }

  /**
   * In the room, for as long as it lasts: what the others do not get from us (no picture, no
   * sound, or neither) and what we can still do. An observer, who sends nothing by design, is
   * not told.
   */
  showMediaBanner() {
    /** @type {MessageKey | null} */
    let key = null;
    if (!this.observer) {
      if (!this.publish.audio && !this.publish.video) key = "room.media.receive_only";
      else if (!this.publish.audio) key = this.devices.microphone === "denied" ? "room.media.microphone_denied" : "room.media.no_microphone";
      else if (!this.publish.video) key = this.devices.camera === "denied" ? "room.media.camera_denied" : "room.media.audio_only";
    }
    if (key) tr(this.ui.mediaBanner, key);
    else clearText(this.ui.mediaBanner);
    this.ui.mediaBanner.hidden = key === null;
    if (key) this.ui.mediaBanner.dataset.media = key.slice("room.media.".length);
    else delete this.ui.mediaBanner.dataset.media;
  }

  /**
   * The page's title: the consultation's own (people's words) or the usual one, re-made on a
   * language switch (a `<title>` cannot hold a mark in both cases).
   * @param {string} [roomTitle]
   */
  setTitle(roomTitle) {
    this.roomTitle = roomTitle ?? "";
    document.title = this.roomTitle ? t("join.page_title_named", { title: this.roomTitle }) : t("join.page_title");
  }

  /**
   * @param {MessageKey} key
   * @param {import("./i18n.js").Params} [params]
   */
  announce(key, params) {
    // Read out by screen readers (a polite live region), shown to nobody: arrivals and
    // departures change the tiles, which sighted people see.
    tr(this.ui.announcer, key, params);
  }

  /**
   * @param {MessageKey} key
   * @param {import("./i18n.js").Params} [params]
   */
  notice(key, params) {
    tr(this.ui.notice, key, params);
    this.ui.notice.hidden = false;
    clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => {
      this.ui.notice.hidden = true;
    }, 8000);
  }
}

void new JoinApp().start();
