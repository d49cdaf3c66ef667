// Consent: what the patient agrees to in this consultation, and what everyone sees of it.
//
// A patient is asked, in the server's own words (Chinese first, then English, with the words'
// version), for each purpose: recording, an observer or trainee being present, and sharing their
// documents with another hospital's doctors on the care team. The dialog opens by itself when the
// patient first enters the room (the first thing they see), can be closed, and opens again from
// the "Consent / 知情同意" button. Each purpose has one large checkbox, "I agree / 我同意", which
// shows what the server holds (`yours`) and sends `consent` when changed ("Saving…" until the
// server confirms). Many patients are elderly: large type, strong contrast, one item
// per block.
//
// Everyone sees a short line of what is in force ("Patient agreed: observers present, sharing
// with other hospitals").
//
// DOM contract (tests/browser relies on it): #consent-dialog with one .consent-item per purpose
// (`data-purpose`, `data-given`) holding .consent-zh, .consent-en and a checkbox; #consent-done;
// #consent-button; #consent-status (`data-in-force`, the purposes joined by spaces).

import { el, must } from "./dom.js";
import { clearText, locale, onLocaleChange, tr } from "./i18n.js";

/** @typedef {import("./protocol.js").ConsentPurpose} ConsentPurpose */
/** @typedef {import("./protocol.js").ConsentInfo} ConsentInfo */
/** @typedef {import("./protocol.js").ConsentSendMessage} ConsentSendMessage */

/**
 * What each purpose is called in the status line, in the server's order.
 * @type {Record<ConsentPurpose, import("./i18n.js").MessageKey>}
 */
const LABEL = {
  recording: "consent.purpose.recording",
  observer_present: "consent.purpose.observer_present",
  external_sharing: "consent.purpose.external_sharing",
};

export class ConsentPanel {
  /** @type {ConsentInfo} */
  info = { in_force: [] };
  /** @type {Set<ConsentPurpose>} purposes sent, not yet confirmed by the server */
  pending = new Set();
  /** Whether the person is a patient (they are asked). */
  asked = false;

  /**
   * @param {(msg: ConsentSendMessage) => boolean} send false when it could not go out
   */
  constructor(send) {
    this.send = send;
    this.ui = {
      dialog: must("#consent-dialog", HTMLDialogElement),
      list: must("#consent-list", HTMLElement),
      saving: must("#consent-saving", HTMLElement),
      done: must("#consent-done", HTMLButtonElement),
      button: must("#consent-button", HTMLButtonElement),
      status: must("#consent-status", HTMLElement),
    };
    this.ui.button.addEventListener("click", () => this.open());
    this.ui.done.addEventListener("click", () => this.close());
    // The server's wording is chosen by language: rebuilt in the new one.
    onLocaleChange(() => this.render());
  }

  /**
   * Where consent stands, from `joined`/`resumed` or a `consent` message.
   * @param {ConsentInfo} info
   */
  update(info) {
    // `asked` comes with every message to a patient; keep the last words we were given.
    this.info = { ...info, asked: info.asked ?? this.info.asked };
    this.asked = info.yours !== undefined;
    const yours = new Set(info.yours ?? []);
    for (const purpose of [...this.pending]) {
      // Confirmed (or overtaken by another of the patient's pages): no longer pending.
      const item = this.item(purpose);
      if (!item || yours.has(purpose) === (item.dataset.wanted === "true")) this.pending.delete(purpose);
    }
    this.ui.button.hidden = !this.asked;
    this.render();
  }

  /** The server refused what was asked (`wording_changed`): nothing is pending any more. */
  refused() {
    this.pending.clear();
    this.render();
  }

  /** Opens the dialog (patients only). */
  open() {
    if (!this.asked) return;
    this.render();
    if (!this.ui.dialog.open) this.ui.dialog.showModal();
    // Land on the words, not on a checkbox: reading comes first.
    const title = must("#consent-title", HTMLElement, this.ui.dialog);
    title.tabIndex = -1;
    title.focus();
  }

  close() {
    if (this.ui.dialog.open) this.ui.dialog.close();
  }

  /** Leaving the room (or sent back to wait): nothing of it stays on screen. */
  reset() {
    this.close();
    this.pending.clear();
    this.info = { in_force: [] };
    this.asked = false;
    this.ui.button.hidden = true;
    clearText(this.ui.saving);
    this.render();
  }

  /**
   * @param {ConsentPurpose} purpose
   * @returns {HTMLElement | null}
   */
  item(purpose) {
    return this.ui.list.querySelector(`.consent-item[data-purpose="${purpose}"]`);
  }

  render() {
    const inForce = this.info.in_force;
    if (inForce.length) {
      // One message per purpose, joined: each is translated with the page.
      /** @type {{key: import("./i18n.js").MessageKey, params?: import("./i18n.js").Params}[]} */
      const list = inForce.map((p, i) => ({
        key: i === 0 ? "common.param" : "consent.list_more",
        params: { text: LABEL[p] ? { key: LABEL[p] } : p },
      }));
      tr(this.ui.status, "consent.in_force", { list: joinParams(list) });
    } else tr(this.ui.status, "consent.none");
    this.ui.status.dataset.inForce = inForce.join(" ");
    const yours = new Set(this.info.yours ?? []);
    const asked = this.info.asked ?? [];
    // Rebuilt only when the words (or the page's language) change, so a checkbox keeps focus
    // across updates. The server's wording of each purpose comes in both languages; the page's
    // is shown.
    const lang = locale();
    const key = `${lang}:${asked.map((a) => `${a.purpose}@${a.version}`).join(",")}`;
    if (this.ui.list.dataset.key !== key) {
      this.ui.list.dataset.key = key;
      this.ui.list.replaceChildren(
        ...asked.map((a) => {
          const textId = `consent-${a.purpose}-text`;
          const box = el("input", { className: "consent-check", attrs: { type: "checkbox", "aria-describedby": textId } });
          box.addEventListener("change", () => this.change(a.purpose, box.checked));
          return el(
            "li",
            { className: "consent-item", attrs: { "data-purpose": a.purpose, "data-version": a.version } },
            el("p", { className: "consent-text", user: lang === "zh-CN" ? a.zh : a.en, attrs: { id: textId, lang } }),
            el("label", { className: "consent-toggle" }, box, el("span", { i18n: "consent.agree" })),
            el("p", { className: "consent-state", attrs: { "aria-live": "polite" } }),
          );
        }),
      );
    }
    for (const a of asked) {
      const item = this.item(a.purpose);
      if (!item) continue;
      const box = must(".consent-check", HTMLInputElement, item);
      const state = must(".consent-state", HTMLElement, item);
      const given = yours.has(a.purpose);
      const pending = this.pending.has(a.purpose);
      item.dataset.given = String(given);
      if (!pending) box.checked = given;
      item.setAttribute("aria-busy", String(pending));
      tr(state, pending ? "consent.saving" : given ? "consent.given" : "consent.not_given");
    }
  }

  /**
   * The patient ticked or unticked a purpose.
   * @param {ConsentPurpose} purpose
   * @param {boolean} given
   */
  change(purpose, given) {
    const item = this.item(purpose);
    if (!item) return;
    // The words' version they were shown: agreeing to other words than the server's current
    // ones is refused (`wording_changed`), not recorded as consent to the new ones.
    const version = (this.info.asked ?? []).find((a) => a.purpose === purpose)?.version;
    if (!this.send({ type: "consent", purpose, given, ...(version ? { wording_version: version } : {}) })) {
      tr(this.ui.saving, "consent.offline");
      this.render();
      return;
    }
    clearText(this.ui.saving);
    item.dataset.wanted = String(given);
    this.pending.add(purpose);
    this.render();
  }
}

/**
 * A list of messages as one parameter: "a, b, c" in the page's language (each after the first
 * is `consent.list_more`, which carries the separator: "、" in Chinese).
 * @param {{key: import("./i18n.js").MessageKey, params?: import("./i18n.js").Params}[]} items
 * @returns {import("./i18n.js").Param}
 */
function joinParams(items) {
  /** @type {import("./i18n.js").Param} */
  let joined = "";
  for (const item of items) joined = { key: "consent.list_join", params: { head: joined, tail: item } };
  return joined;
}
