// The console's viewer for a consultation request's attachments: the specialist reads a lab
// PDF, an ECG or an X-ray before accepting the request, as they would in the room. It is the
// room's viewer (doc-viewer.js), not live (no presenting, following or annotations), fed by the
// request's views (referral-api.js's AttachmentSource), in a modal dialog over the request's.
// Escape or Close shuts it, and the focus goes back to the button that opened it.
//
// DOM contract (tests/browser/workflow-scenario.mjs relies on it): dialog#attachment-viewer,
// open while shown, with the viewer's section.viewer inside (its data-document-id,
// data-loaded-page, img.viewer-img, .viewer-next, .viewer-prev, .viewer-close).

import { DocViewer } from "./doc-viewer.js";
import { el } from "./dom.js";
import { errorKeyOf } from "./errors.js";
import { tr } from "./i18n.js";
import { AttachmentSource } from "./referral-api.js";

/** @typedef {import("./referral-api.js").ReferralDocument} ReferralDocument */
/** @typedef {import("./i18n.js").MessageKey} MessageKey */

/** The annotation tools doc-viewer.js expects; never shown here. @type {[string, MessageKey][]} */
const TOOLS = [
  ["arrow", "viewer.tool.arrow"],
  ["circle", "viewer.tool.circle"],
  ["freehand", "viewer.tool.freehand"],
  ["text", "viewer.tool.text"],
];

/**
 * A toolbar button.
 * @param {string} cls
 * @param {{i18n?: MessageKey, label?: MessageKey, text?: string}} what
 * @param {Record<string, string>} [attrs]
 */
function button(cls, what, attrs = {}) {
  return el("button", { className: `btn btn-small ${cls}`, ...what, attrs: { type: "button", ...attrs } });
}

/** The viewer's markup, as join.html has it for the room (the live controls stay hidden). */
function viewerMarkup() {
  const tools = el(
    "span",
    { className: "viewer-tools", label: "viewer.tools", attrs: { role: "group" } },
    ...TOOLS.map(([tool, i18n]) => el("button", { className: "btn btn-small", i18n, attrs: { type: "button", "data-tool": tool, "aria-pressed": "false" } })),
  );
  tools.hidden = true;
  return el(
    "section",
    { className: "viewer", label: "viewer.label" },
    el(
      "div",
      { className: "viewer-bar" },
      el("strong", { className: "viewer-title", attrs: { id: "attachment-viewer-title" } }),
      el("span", { className: "viewer-page", attrs: { "aria-live": "polite" } }),
      button("viewer-prev", { label: "viewer.prev", text: "‹" }),
      button("viewer-next", { label: "viewer.next", text: "›" }),
      button("viewer-zoom-out", { label: "viewer.zoom_out", text: "−" }),
      button("viewer-zoom-in", { label: "viewer.zoom_in", text: "+" }),
      button("viewer-fit-width", { i18n: "viewer.fit_width" }),
      button("viewer-fit-page", { i18n: "viewer.fit_page" }),
      button("viewer-present", {}, { hidden: "" }),
      button("viewer-follow", {}, { hidden: "" }),
      tools,
      button("viewer-download", { i18n: "viewer.download" }),
      button("viewer-close", { i18n: "common.close", label: "viewer.close_label" }),
    ),
    el("p", { className: "viewer-status", attrs: { role: "status" } }),
    el("div", { className: "viewer-stage", label: "viewer.stage_label", attrs: { tabindex: "0", role: "region", "aria-describedby": "attachment-viewer-keys" } }),
    el("p", { className: "hint viewer-keys", i18n: "viewer.keys", attrs: { id: "attachment-viewer-keys" } }),
  );
}

/** The one viewer dialog of the console, made when first needed. */
class AttachmentViewer {
  /** @type {HTMLElement | null} the button that opened it, for the focus to go back to */
  opener = null;
  /** The attachment shown, to find its button again if the request's dialog was redrawn. */
  shownId = "";

  constructor() {
    this.source = new AttachmentSource("");
    const section = viewerMarkup();
    this.dialog = el("dialog", { className: "dialog attachment-viewer", attrs: { id: "attachment-viewer", "aria-labelledby": "attachment-viewer-title" } }, section);
    this.status = /** @type {HTMLElement} */ (section.querySelector(".viewer-status"));
    this.viewer = new DocViewer(
      section,
      this.source,
      "specialist",
      {
        // Not live: nothing is presented or drawn outside a room.
        sendFollow: () => {},
        sendAnnotation: () => {},
        notice: (key, params) => tr(this.status, key, params),
      },
      { live: false },
    );
    // The viewer's Close hides its section; the dialog goes with it.
    section.querySelector(".viewer-close")?.addEventListener("click", () => this.dialog.close());
    this.dialog.addEventListener("close", () => {
      this.viewer.close();
      // The request's dialog may have been drawn again meanwhile (a live change): its new
      // button for the same attachment then takes the focus.
      const again = document.querySelector(`#referral-documents li.referral-document[data-document-id="${CSS.escape(this.shownId)}"] button.attachment-view`);
      const back = this.opener?.isConnected ? this.opener : again;
      if (back instanceof HTMLElement) back.focus();
      this.opener = null;
    });
    document.body.append(this.dialog);
  }

  /**
   * Shows attachment `doc` of request `referral`.
   * @param {string} referral
   * @param {ReferralDocument} doc
   * @param {HTMLElement} opener
   */
  async show(referral, doc, opener) {
    if (this.dialog.open) this.dialog.close();
    this.source.referral = referral;
    this.opener = opener;
    this.shownId = doc.id;
    this.dialog.showModal();
    // The stage has its size once the dialog is shown: the page is laid out in it.
    const stage = /** @type {HTMLElement} */ (this.dialog.querySelector(".viewer-stage"));
    stage.focus();
    try {
      await this.viewer.open(doc);
    } catch (e) {
      tr(this.status, "viewer.open_failed", { reason: { key: errorKeyOf(e) } });
    }
  }
}

/** @type {AttachmentViewer | null} */
let shared = null;

/**
 * Opens attachment `doc` of request `referral` in the console's viewer; the focus goes back to
 * `opener` when it closes.
 * @param {string} referral
 * @param {ReferralDocument} doc
 * @param {HTMLElement} opener
 */
export function viewAttachment(referral, doc, opener) {
  shared ??= new AttachmentViewer();
  return shared.show(referral, doc, opener);
}
