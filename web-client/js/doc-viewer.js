// The document viewer beside the video: pages (PDF pages rendered by the server, images),
// zoom and pan, text and ECG strips, annotations drawn on the page, and follow mode: the
// presenter's page, zoom, view centre and pointer are sent ~10 times a second at most and
// mirrored by everyone following. All positions are page coordinates (0..1 on each axis), so
// they line up whatever the size of each person's screen.
//
// Where the pages come from is a PageSource: a room's documents (room-api.js's RoomApi), or a
// consultation request's attachments in the console before any room exists
// (referral-api.js's AttachmentSource). Outside a room the viewer is not live: no presenting,
// following or annotations, only pages, zoom, images, text and ECG strips.
//
// State for people and tests: the viewer element carries data-document-id, data-page (the page
// wanted), data-loaded-page (the page whose image is showing), data-zoom, data-following and
// data-annotations (on this page); the pointer carries data-pointer="x,y".

import { el, must, userText } from "./dom.js";
import { errorCodeOf, errorKeyOf } from "./errors.js";
import { clearText, t, tr, trAttr } from "./i18n.js";

/** @typedef {import("./protocol.js").DocumentInfo} DocumentInfo */
/** @typedef {import("./protocol.js").AnnotationInfo} AnnotationInfo */
/** @typedef {import("./protocol.js").Shape} Shape */
/** @typedef {import("./protocol.js").FollowState} FollowState */

/**
 * What the viewer shows: a room's DocumentInfo, or anything else with an id, a name and a kind
 * ("pdf", "png", "jpeg", "dicom", "ecg", "text").
 * @typedef {{id: string, name: string, kind: string}} ViewedDocument
 */

/**
 * Where a document's pages and views come from, by the document's id; every answer is the
 * server's (an audited read), a refusal an ApiError.
 * @typedef {object} PageSource
 * @property {(id: string) => Promise<{pages: number}>} pages how many pages the viewer can show
 * @property {(id: string, suffix?: string) => Promise<string>} blobUrl the bytes ("/content")
 *   or a rendered page ("/pages/2?scale=2") as an object URL, which the caller revokes
 * @property {(id: string) => Promise<string>} text a text document's content
 * @property {(id: string) => Promise<{sample_rate_hz: number, units: string, leads: {name: string, samples: number[]}[]}>} ecg
 * @property {(id: string) => Promise<{fields: Record<string, string>, rows: number, columns: number, image_unavailable: string | null}>} dicom
 * @property {(id: string) => Promise<AnnotationInfo[]>} annotations
 * @property {(doc: ViewedDocument) => Promise<void>} download saves a copy
 */

const SVG = "http://www.w3.org/2000/svg";
const FOLLOW_INTERVAL_MS = 100;
const MIN_ZOOM = 0.5;
const MAX_ZOOM = 8;
const COLORS = { arrow: "#d00000", circle: "#0066cc", freehand: "#008a3e", text: "#a0006e" };

/** @typedef {"pan" | "arrow" | "circle" | "freehand" | "text"} Tool */

/**
 * @typedef {object} ViewerHooks
 * @property {(state: FollowState) => void} sendFollow
 * @property {(documentId: string, page: number, shape: Shape) => void} sendAnnotation
 * @property {(key: import("./i18n.js").MessageKey, params?: import("./i18n.js").Params) => void} notice
 */

export class DocViewer {
  /** @type {ViewedDocument | null} */
  doc = null;
  page = 1;
  pages = 1;
  zoom = 1;
  /** @type {[number, number]} */
  center = [0.5, 0.5];
  /** @type {AnnotationInfo[]} */
  annotations = [];
  presenting = false;
  /** Follow the presenter (on by default for everyone who is not presenting). */
  following = true;
  /** @type {Tool} */
  tool = "pan";
  /** @type {[number, number] | null} */
  pointer = null;
  /** @type {string | null} object URL of the current page image */
  pageUrl = null;
  lastSent = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  sendTimer;
  /** Bumped on every page load, so a slow old load does not replace a newer page. */
  loadGen = 0;
  /** True while a document's page count and annotations load; page changes wait for it. */
  opening = false;
  /** @type {FollowState | null} the presenter's newest position */
  latestFollow = null;

  /**
   * @param {HTMLElement} root the #viewer element
   * @param {PageSource} api
   * @param {import("./protocol.js").Role} role
   * @param {ViewerHooks} hooks
   * @param {{live?: boolean}} [opts] live (the default): in a room, with presenting, following
   *   and annotations; otherwise their controls stay hidden and nothing is sent
   */
  constructor(root, api, role, hooks, opts = {}) {
    this.root = root;
    this.api = api;
    this.role = role;
    this.hooks = hooks;
    this.live = opts.live ?? true;
    if (!this.live) this.following = false;
    this.clinician = role === "doctor" || role === "specialist";
    this.ui = {
      title: must(".viewer-title", HTMLElement, root),
      pageLabel: must(".viewer-page", HTMLElement, root),
      prev: must(".viewer-prev", HTMLButtonElement, root),
      next: must(".viewer-next", HTMLButtonElement, root),
      zoomOut: must(".viewer-zoom-out", HTMLButtonElement, root),
      zoomIn: must(".viewer-zoom-in", HTMLButtonElement, root),
      fitWidth: must(".viewer-fit-width", HTMLButtonElement, root),
      fitPage: must(".viewer-fit-page", HTMLButtonElement, root),
      present: must(".viewer-present", HTMLButtonElement, root),
      follow: must(".viewer-follow", HTMLButtonElement, root),
      tools: must(".viewer-tools", HTMLElement, root),
      download: must(".viewer-download", HTMLButtonElement, root),
      close: must(".viewer-close", HTMLButtonElement, root),
      stage: must(".viewer-stage", HTMLElement, root),
      status: must(".viewer-status", HTMLElement, root),
    };
    this.sheet = el("div", { className: "viewer-sheet" });
    this.img = el("img", { className: "viewer-img", attrs: { alt: "" } });
    this.overlay = document.createElementNS(SVG, "svg");
    this.overlay.setAttribute("class", "viewer-overlay");
    this.overlay.setAttribute("viewBox", "0 0 1 1");
    this.overlay.setAttribute("preserveAspectRatio", "none");
    this.pointerDot = el("div", { className: "viewer-pointer", attrs: { "aria-hidden": "true" } });
    this.pointerDot.hidden = true;
    this.text = el("pre", { className: "viewer-text" });
    this.sheet.append(this.img, this.overlay, this.pointerDot);
    this.ui.stage.append(this.sheet, this.text);

    this.ui.present.hidden = !this.clinician || !this.live;
    this.ui.tools.hidden = !this.clinician || !this.live;
    this.ui.download.hidden = role === "observer";
    this.ui.prev.addEventListener("click", () => this.goTo(this.page - 1, true));
    this.ui.next.addEventListener("click", () => this.goTo(this.page + 1, true));
    this.ui.zoomIn.addEventListener("click", () => this.setZoom(this.zoom * 1.25, true));
    this.ui.zoomOut.addEventListener("click", () => this.setZoom(this.zoom / 1.25, true));
    this.ui.fitWidth.addEventListener("click", () => this.fitWidth(true));
    this.ui.fitPage.addEventListener("click", () => this.fitPage(true));
    this.ui.present.addEventListener("click", () => this.setPresenting(!this.presenting));
    this.ui.follow.addEventListener("click", () => {
      this.following = !this.following;
      this.render();
    });
    this.ui.download.addEventListener("click", () => {
      if (this.doc) this.api.download(this.doc).catch((e) => this.hooks.notice("viewer.download_failed", { reason: { key: errorKeyOf(e) } }));
    });
    this.ui.close.addEventListener("click", () => this.close());
    for (const button of this.ui.tools.querySelectorAll("button[data-tool]")) {
      button.addEventListener("click", () => {
        const tool = /** @type {Tool} */ (button.getAttribute("data-tool"));
        this.tool = this.tool === tool ? "pan" : tool;
        this.render();
      });
    }
    this.wireGestures();
    window.addEventListener("resize", () => this.layout());
  }

  /**
   * Opens a document at page 1 (or `page`).
   * @param {ViewedDocument} doc
   * @param {number} [page]
   */
  async open(doc, page = 1) {
    if (this.doc?.id === doc.id) {
      await this.goTo(page, false);
      return;
    }
    this.doc = doc;
    delete this.root.dataset.loadedPage;
    this.root.hidden = false;
    this.root.dataset.documentId = doc.id;
    userText(this.ui.title, doc.name);
    this.zoom = 1;
    this.center = [0.5, 0.5];
    this.annotations = [];
    this.pages = 1;
    this.page = page;
    this.text.hidden = true;
    this.sheet.hidden = false;
    tr(this.ui.status, "viewer.opening");
    try {
      if (doc.kind === "pdf" || doc.kind === "png" || doc.kind === "jpeg" || doc.kind === "dicom") {
        this.opening = true;
        try {
          this.pages = (await this.api.pages(doc.id)).pages;
          if (this.live) this.annotations = await this.api.annotations(doc.id);
        } finally {
          this.opening = false;
        }
        if (this.doc !== doc) return; // another document was opened meanwhile
        // The page asked for last (a presenter may have moved on while we were loading).
        await this.goTo(this.page, false, true);
        if (doc.kind === "dicom") await this.showDicomHeader(doc);
      } else if (doc.kind === "text") {
        await this.showText(doc);
      } else if (doc.kind === "ecg") {
        await this.showEcg(doc);
      }
    } catch (e) {
      // `consent_required` here is about sharing with another hospital (a consultation
      // request's document after the patient withdrew), not observers (the general text).
      const reason = errorCodeOf(e) === "consent_required" ? "documents.consent_required" : errorKeyOf(e);
      tr(this.ui.status, "viewer.open_failed", { reason: { key: reason } });
    }
    this.render();
    if (this.presenting) this.queueFollow();
  }

  /** The DICOM header fields a reader checks first, under the image. @param {ViewedDocument} doc */
  async showDicomHeader(doc) {
    const info = await this.api.dicom(doc.id);
    const f = info.fields;
    // The file's own words (modality, study, patient), then the window in the page's language.
    const parts = [f.Modality, f.BodyPartExamined, f.StudyDescription, f.StudyDate, f.PatientName, f.PatientID, `${info.columns}×${info.rows}`];
    tr(this.ui.status, "viewer.dicom_header", {
      fields: parts.filter(Boolean).join(" · "),
      window: f.WindowCenter ? { key: "viewer.dicom_window", params: { width: f.WindowWidth ?? "?", center: f.WindowCenter } } : "",
    });
    this.root.dataset.dicomModality = f.Modality ?? "";
  }

  /** @param {ViewedDocument} doc */
  async showText(doc) {
    userText(this.text, await this.api.text(doc.id));
    this.sheet.hidden = true;
    this.text.hidden = false;
    clearText(this.ui.status);
  }

  /** Draws every lead as a strip on an ECG grid (25 mm/s, 10 mm/mV: 1 s = 5 big squares). */
  /** @param {ViewedDocument} doc */
  async showEcg(doc) {
    const ecg = await this.api.ecg(doc.id);
    const seconds = Math.min(ecg.leads[0].samples.length / ecg.sample_rate_hz, 10);
    const n = Math.round(seconds * ecg.sample_rate_hz);
    const rowH = 3;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "ecg-strip");
    svg.setAttribute("viewBox", `0 0 ${seconds * 5} ${rowH * ecg.leads.length}`);
    svg.setAttribute("role", "img");
    trAttr(svg, "aria-label", "viewer.ecg_label", { leads: ecg.leads.length, seconds: seconds.toFixed(1) });
    ecg.leads.forEach((lead, row) => {
      const base = row * rowH + rowH / 2;
      const pts = [];
      for (let i = 0; i < n; i += 1) {
        const x = (i / ecg.sample_rate_hz) * 5;
        const y = base - (lead.samples[i] ?? 0) * 1; // 1 big square (0.5 mV grid) per mV at this scale
        pts.push(`${x.toFixed(3)},${y.toFixed(3)}`);
      }
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("points", pts.join(" "));
      line.setAttribute("class", "ecg-trace");
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", "0.05");
      label.setAttribute("y", String(row * rowH + 0.4));
      label.setAttribute("class", "ecg-label");
      userText(label, lead.name);
      svg.append(line, label);
    });
    this.sheet.hidden = true;
    this.text.hidden = false;
    this.text.replaceChildren(svg);
    tr(this.ui.status, "viewer.ecg_status", { rate: ecg.sample_rate_hz, units: ecg.units });
  }

  /**
   * @param {number} page
   * @param {boolean} byUser
   * @param {boolean} [force] load the page image even if the page number did not change
   */
  async goTo(page, byUser, force = false) {
    if (!this.doc) return;
    if (this.opening) {
      this.page = page;
      return;
    }
    const target = Math.max(1, Math.min(this.pages, page));
    const changed = force || target !== this.page || !this.pageUrl;
    this.page = target;
    this.render();
    if (byUser) this.queueFollow();
    if (!changed) return;
    const gen = ++this.loadGen;
    const doc = this.doc;
    const rendered = doc.kind === "pdf" || doc.kind === "dicom";
    const url = await this.api.blobUrl(doc.id, rendered ? `/pages/${target}?scale=2` : "/content");
    if (gen !== this.loadGen) {
      URL.revokeObjectURL(url);
      return;
    }
    if (this.pageUrl) URL.revokeObjectURL(this.pageUrl);
    this.pageUrl = url;
    this.img.src = url;
    await this.img.decode().catch(() => undefined);
    if (gen !== this.loadGen) return;
    this.root.dataset.loadedPage = String(target);
    clearText(this.ui.status);
    // A new page opens at its top, its width filling the view at the zoom chosen (a tall page
    // centred would show its middle first). Someone followed moves us where they are next.
    this.center = [0.5, this.topY()];
    this.layout();
    this.render();
    if (this.presenting) this.queueFollow();
  }

  /** The page's height on screen over the stage's, at the current zoom (fit to width at 1). */
  heightRatio() {
    const stage = this.ui.stage.getBoundingClientRect();
    const natW = this.img.naturalWidth || 1;
    const natH = this.img.naturalHeight || 1;
    return stage.height > 0 ? (stage.width * this.zoom * natH) / natW / stage.height : 1;
  }

  /** The view centre's height on the page that shows the page's top (the middle when it fits). */
  topY() {
    const ratio = this.heightRatio();
    return ratio > 1 ? 0.5 / ratio : 0.5;
  }

  /**
   * The page's width fills the view, from its top.
   * @param {boolean} byUser
   */
  fitWidth(byUser) {
    this.zoom = 1;
    this.center = [0.5, this.topY()];
    this.setZoom(1, byUser);
  }

  /**
   * The whole page in view (never larger than its width allows).
   * @param {boolean} byUser
   */
  fitPage(byUser) {
    this.center = [0.5, 0.5];
    this.setZoom(this.pageZoom(), byUser);
  }

  /** The zoom at which the whole page is in view (1 when its width fitted shows it all). */
  pageZoom() {
    const ratio = this.heightRatio() / this.zoom;
    return ratio > 1 ? 1 / ratio : 1;
  }

  /**
   * Moves the view by a fraction of the stage (keys), kept on the page.
   * @param {number} dx
   * @param {number} dy
   */
  pan(dx, dy) {
    const stage = this.ui.stage.getBoundingClientRect();
    const w = stage.width * this.zoom;
    const h = w * ((this.img.naturalHeight || 1) / (this.img.naturalWidth || 1));
    this.center = [clamp01(this.center[0] + (dx * stage.width) / w), clamp01(this.center[1] + (dy * stage.height) / h)];
    this.layout();
    this.render();
    this.queueFollow();
  }

  /**
   * @param {number} zoom
   * @param {boolean} byUser
   */
  setZoom(zoom, byUser) {
    // Never smaller than the whole page needs, even for a very tall page (a long ECG strip).
    this.zoom = Math.max(Math.min(MIN_ZOOM, this.pageZoom()), Math.min(MAX_ZOOM, zoom));
    this.layout();
    this.render();
    if (byUser) this.queueFollow();
  }

  /** @param {boolean} on */
  setPresenting(on) {
    this.presenting = on;
    if (on) {
      this.following = false;
      this.queueFollow();
    } else {
      this.hooks.sendFollow({ document_id: null, page: 1, zoom: 1, center: [0.5, 0.5], pointer: null });
    }
    this.render();
  }

  /**
   * Someone presents: follow them if we follow.
   * @param {FollowState & {presenter: string}} state
   * @param {DocumentInfo | undefined} doc
   * @param {string} presenterName
   */
  async applyFollow(state, doc, presenterName) {
    this.root.dataset.presenter = presenterName;
    if (!this.following || this.presenting || !doc) {
      this.render();
      return;
    }
    this.latestFollow = state;
    if (this.doc?.id !== doc.id) await this.open(doc, state.page);
    else if (state.page !== this.page) await this.goTo(state.page, false);
    // Messages keep arriving while a page loads: apply the newest, not the one we started with.
    const latest = this.latestFollow ?? state;
    this.zoom = latest.zoom;
    this.center = latest.center;
    this.pointer = latest.pointer;
    this.layout();
    this.render();
  }

  /** @param {string} presenter */
  followStopped(presenter) {
    if (this.root.dataset.presenter) delete this.root.dataset.presenter;
    this.pointer = null;
    void presenter;
    this.render();
  }

  /** @param {AnnotationInfo} a */
  addAnnotation(a) {
    if (a.document_id !== this.doc?.id || this.annotations.some((x) => x.id === a.id)) return;
    this.annotations.push(a);
    this.drawAnnotations();
    this.render();
  }

  close() {
    if (this.presenting) this.setPresenting(false);
    this.doc = null;
    this.root.hidden = true;
    delete this.root.dataset.documentId;
    if (this.pageUrl) URL.revokeObjectURL(this.pageUrl);
    this.pageUrl = null;
    this.img.removeAttribute("src");
  }

  /** Sends our view to the followers, at most every FOLLOW_INTERVAL_MS (the last one always goes). */
  queueFollow() {
    if (!this.presenting || !this.doc) return;
    clearTimeout(this.sendTimer);
    const wait = this.lastSent + FOLLOW_INTERVAL_MS - Date.now();
    const send = () => {
      if (!this.presenting || !this.doc) return;
      this.lastSent = Date.now();
      this.hooks.sendFollow({
        document_id: this.doc.id,
        page: this.page,
        zoom: Math.round(this.zoom * 1000) / 1000,
        center: [round(this.center[0]), round(this.center[1])],
        pointer: this.pointer ? [round(this.pointer[0]), round(this.pointer[1])] : null,
      });
    };
    if (wait <= 0) send();
    else this.sendTimer = setTimeout(send, wait);
  }

  /** Positions the page: fit to width at zoom 1, the view centre at the stage centre. */
  layout() {
    const stage = this.ui.stage.getBoundingClientRect();
    const natW = this.img.naturalWidth || 1;
    const natH = this.img.naturalHeight || 1;
    const w = stage.width * this.zoom;
    const h = (w * natH) / natW;
    const left = stage.width / 2 - this.center[0] * w;
    const top = stage.height / 2 - this.center[1] * h;
    this.sheet.style.width = `${w}px`;
    this.sheet.style.height = `${h}px`;
    this.sheet.style.transform = `translate(${left}px, ${top}px)`;
    this.drawAnnotations();
    this.drawPointer();
  }

  render() {
    this.root.dataset.page = String(this.page);
    this.root.dataset.zoom = String(Math.round(this.zoom * 100) / 100);
    this.root.dataset.center = this.center.map((v) => Math.round(v * 1000) / 1000).join(",");
    this.root.dataset.following = String(this.following && !this.presenting);
    this.root.dataset.annotations = String(this.annotations.filter((a) => a.page === this.page).length);
    tr(this.ui.pageLabel, "viewer.page", { page: this.page, pages: this.pages });
    this.ui.prev.disabled = this.page <= 1;
    this.ui.next.disabled = this.page >= this.pages;
    tr(this.ui.present, this.presenting ? "viewer.stop_presenting" : "viewer.present");
    this.ui.present.setAttribute("aria-pressed", String(this.presenting));
    this.ui.follow.hidden = this.presenting || !this.live;
    tr(this.ui.follow, this.following ? "viewer.following" : "viewer.follow");
    this.ui.follow.setAttribute("aria-pressed", String(this.following));
    for (const button of this.ui.tools.querySelectorAll("button[data-tool]")) {
      button.setAttribute("aria-pressed", String(button.getAttribute("data-tool") === this.tool));
    }
    this.ui.stage.dataset.tool = this.tool;
    this.drawPointer();
  }

  drawPointer() {
    const p = this.pointer;
    this.pointerDot.hidden = !p;
    if (p) {
      this.pointerDot.style.left = `${p[0] * 100}%`;
      this.pointerDot.style.top = `${p[1] * 100}%`;
      this.pointerDot.dataset.pointer = `${p[0]},${p[1]}`;
    } else {
      delete this.pointerDot.dataset.pointer;
    }
  }

  drawAnnotations() {
    // Circle radii are fractions of the page width; the overlay stretches x and y separately.
    const aspect = (this.img.naturalWidth || 1) / (this.img.naturalHeight || 1);
    this.overlay.replaceChildren();
    for (const a of this.annotations) {
      if (a.page === this.page) this.overlay.append(shapeNode(a.shape, aspect));
    }
  }

  /** Page coordinates of a pointer event. @param {PointerEvent | MouseEvent} e @returns {[number, number]} */
  pagePoint(e) {
    const r = this.sheet.getBoundingClientRect();
    return [clamp01((e.clientX - r.left) / r.width), clamp01((e.clientY - r.top) / r.height)];
  }

  wireGestures() {
    /** @type {{x: number, y: number, center: [number, number]} | null} */
    let drag = null;
    /** Touches on the stage now, for a two-finger pinch. @type {Map<number, {x: number, y: number}>} */
    const touches = new Map();
    /** @type {{distance: number, zoom: number} | null} */
    let pinch = null;
    const distance = () => {
      const [a, b] = [...touches.values()];
      return a && b ? Math.hypot(a.x - b.x, a.y - b.y) : 0;
    };
    this.ui.stage.addEventListener("keydown", (e) => {
      if (!this.doc || this.sheet.hidden || e.altKey || e.ctrlKey || e.metaKey) return;
      const step = 0.1;
      /** @type {Record<string, () => void>} */
      const keys = {
        ArrowUp: () => this.pan(0, -step),
        ArrowDown: () => this.pan(0, step),
        ArrowLeft: () => this.pan(-step, 0),
        ArrowRight: () => this.pan(step, 0),
        "+": () => this.setZoom(this.zoom * 1.25, true),
        "=": () => this.setZoom(this.zoom * 1.25, true),
        "-": () => this.setZoom(this.zoom / 1.25, true),
        "0": () => this.fitWidth(true),
        PageUp: () => void this.goTo(this.page - 1, true),
        PageDown: () => void this.goTo(this.page + 1, true),
        Home: () => {
          this.center = [this.center[0], this.topY()];
          this.layout();
          this.render();
          this.queueFollow();
        },
      };
      const act = keys[e.key];
      if (!act) return;
      e.preventDefault();
      act();
    });
    /** @type {[number, number][] } */
    let stroke = [];
    /** @type {[number, number] | null} */
    let start = null;
    const stage = this.ui.stage;
    stage.addEventListener("pointerdown", (e) => {
      if (!this.doc || this.sheet.hidden) return;
      if (e.pointerType === "touch") {
        touches.set(e.pointerId, { x: e.clientX, y: e.clientY });
        if (touches.size === 2) {
          // A second finger: pinch to zoom, nothing drawn or dragged.
          pinch = { distance: distance(), zoom: this.zoom };
          drag = null;
          start = null;
          stroke = [];
          return;
        }
      }
      stage.setPointerCapture(e.pointerId);
      if (this.tool === "pan") {
        drag = { x: e.clientX, y: e.clientY, center: [...this.center] };
      } else {
        start = this.pagePoint(e);
        stroke = [start];
      }
    });
    stage.addEventListener("pointermove", (e) => {
      if (!this.doc || this.sheet.hidden) return;
      if (touches.has(e.pointerId)) touches.set(e.pointerId, { x: e.clientX, y: e.clientY });
      if (pinch) {
        const now = distance();
        if (pinch.distance > 0 && now > 0) this.setZoom(pinch.zoom * (now / pinch.distance), true);
        return;
      }
      if (drag) {
        const r = this.sheet.getBoundingClientRect();
        this.center = [
          clamp01(drag.center[0] - (e.clientX - drag.x) / r.width),
          clamp01(drag.center[1] - (e.clientY - drag.y) / r.height),
        ];
        this.layout();
      } else if (start && this.tool === "freehand") {
        stroke.push(this.pagePoint(e));
      }
      if (this.presenting) {
        this.pointer = this.pagePoint(e);
        this.drawPointer();
        this.queueFollow();
      }
    });
    const lift = (/** @type {PointerEvent} */ e) => {
      touches.delete(e.pointerId);
      if (touches.size < 2) pinch = null;
    };
    stage.addEventListener("pointercancel", lift);
    stage.addEventListener("pointerup", (e) => {
      const pinching = pinch !== null;
      lift(e);
      if (pinching) return;
      if (drag) {
        drag = null;
        this.queueFollow();
        return;
      }
      if (!start || !this.doc) return;
      const end = this.pagePoint(e);
      /** @type {Shape | null} */
      let shape = null;
      if (this.tool === "arrow") shape = { type: "arrow", from: start, to: end, color: COLORS.arrow };
      else if (this.tool === "circle") {
        // In page-width units: a vertical drag counts by the page's aspect ratio.
        const aspect = (this.img.naturalWidth || 1) / (this.img.naturalHeight || 1);
        const radius = Math.max(0.01, Math.hypot(end[0] - start[0], (end[1] - start[1]) / aspect));
        shape = { type: "circle", center: start, radius: Math.min(1, radius), color: COLORS.circle };
      } else if (this.tool === "freehand" && stroke.length >= 2) {
        shape = { type: "freehand", points: simplify(stroke), color: COLORS.freehand };
      } else if (this.tool === "text") {
        const text = prompt(t("viewer.annotation_prompt"))?.trim();
        if (text) shape = { type: "text", at: start, text: text.slice(0, 500), color: COLORS.text };
      }
      start = null;
      stroke = [];
      if (shape) this.hooks.sendAnnotation(this.doc.id, this.page, shape);
    });
    stage.addEventListener(
      "wheel",
      (e) => {
        if (!this.doc || this.sheet.hidden || !e.ctrlKey) return;
        e.preventDefault();
        this.setZoom(this.zoom * (e.deltaY < 0 ? 1.1 : 1 / 1.1), true);
      },
      { passive: false },
    );
  }
}

/** @param {number} v */
function clamp01(v) {
  return Math.max(0, Math.min(1, v));
}

/** @param {number} v */
function round(v) {
  return Math.round(v * 10_000) / 10_000;
}

/**
 * Keeps at most 500 points of a stroke (the server takes up to 2000).
 * @param {[number, number][]} pts
 * @returns {[number, number][]}
 */
function simplify(pts) {
  const step = Math.ceil(pts.length / 500);
  return pts.filter((_, i) => i % step === 0 || i === pts.length - 1).map(([x, y]) => [round(x), round(y)]);
}

/**
 * An SVG node for a shape, in the overlay's 0..1 coordinates.
 * @param {Shape} s
 * @param {number} aspect page width / height
 * @returns {SVGElement}
 */
function shapeNode(s, aspect) {
  const color = s.color ?? "#d00000";
  /** @param {string} tag @param {Record<string, string | number>} attrs */
  const node = (tag, attrs) => {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
    n.setAttribute("class", `annotation annotation-${s.type}`);
    return n;
  };
  switch (s.type) {
    case "arrow": {
      const g = node("g", { stroke: color });
      const [x1, y1] = s.from;
      const [x2, y2] = s.to;
      const ang = Math.atan2(y2 - y1, x2 - x1);
      const head = 0.02;
      const line = (/** @type {number} */ ax, /** @type {number} */ ay, /** @type {number} */ bx, /** @type {number} */ by) => {
        const l = document.createElementNS(SVG, "line");
        l.setAttribute("x1", String(ax));
        l.setAttribute("y1", String(ay));
        l.setAttribute("x2", String(bx));
        l.setAttribute("y2", String(by));
        return l;
      };
      g.append(
        line(x1, y1, x2, y2),
        line(x2, y2, x2 - head * Math.cos(ang - 0.5), y2 - head * Math.sin(ang - 0.5)),
        line(x2, y2, x2 - head * Math.cos(ang + 0.5), y2 - head * Math.sin(ang + 0.5)),
      );
      return g;
    }
    case "circle":
      return node("ellipse", { cx: s.center[0], cy: s.center[1], rx: s.radius, ry: s.radius * aspect, stroke: color, fill: "none" });
    case "freehand":
      return node("polyline", { points: s.points.map((p) => p.join(",")).join(" "), stroke: color, fill: "none" });
    case "text": {
      const label = node("text", { x: s.at[0], y: s.at[1], fill: color });
      userText(label, s.text);
      return label;
    }
  }
}
