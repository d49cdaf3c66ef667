// The patient's consent to sharing a request's documents with another institution, in the
// clinicians' console (docs/protocol.md, "Referral consent"): on the new-request form, the
// server's words (both languages, their version) and the requester's attestation that the
// patient agreed, shown only for a department of another institution; in a request's dialog,
// where the consent stands, with the requester's buttons to record a withdrawal or (again) the
// patient's consent, and for the receiving side how many documents are withheld without it.
// The rules are the server's: what it refuses comes back as an ApiError with its code.
//
// DOM contract (tests/browser/referral-scenario.mjs relies on it): the form's
// fieldset#referral-consent (hidden within one institution) with #referral-consent-agreed; in
// the dialog, section#referral-consent-state (`data-required`, `data-in-force`,
// `data-withheld`), button#referral-consent-withdraw, #referral-consent-again and
// button#referral-consent-give.

import { el } from "./dom.js";
import { tr } from "./i18n.js";
import * as rapi from "./referral-api.js";

/** @typedef {import("./referral-api.js").Referral} Referral */
/** @typedef {import("./referral-api.js").Wording} Wording */

/**
 * The words, as the server gives them (its text in both languages, not the catalogue's).
 * @param {Wording} w
 * @returns {HTMLElement}
 */
function words(w) {
  return el(
    "div",
    { className: "consent-words" },
    el("p", { user: w.zh, attrs: { lang: "zh-CN" } }),
    el("p", { user: w.en, attrs: { lang: "en" } }),
    el("p", { className: "hint", i18n: "referral.consent.version", params: { version: w.version } }),
  );
}

/** @param {string} id */
function agreedBox(id) {
  const box = el("input", { attrs: { type: "checkbox", id } });
  const label = el("label", { className: "consent-agreed" }, box, " ", el("span", { i18n: "referral.consent.agreed" }));
  label.setAttribute("for", id);
  return { box, label };
}

/** The new-request form's part: the words and the attestation. */
export class ConsentField {
  /** @type {Wording | null} */
  wording = null;
  agreed = agreedBox("referral-consent-agreed");
  body = el("div");
  fieldset = el(
    "fieldset",
    { className: "referral-consent", attrs: { id: "referral-consent" } },
    el("legend", { i18n: "referral.consent.legend" }),
    el("p", { className: "hint", i18n: "referral.consent.form_hint" }),
    this.body,
    this.agreed.label,
  );

  constructor() {
    this.fieldset.hidden = true;
  }

  /**
   * Shows the words for a department of another institution, hides them otherwise.
   * @param {boolean} otherInstitution
   */
  async show(otherInstitution) {
    this.fieldset.hidden = !otherInstitution;
    if (!otherInstitution || this.wording) return;
    this.wording = await rapi.consentWording();
    this.body.replaceChildren(words(this.wording));
  }

  /** @returns {{wording_version: string} | undefined} what the request carries */
  attestation() {
    if (this.fieldset.hidden || !this.wording || !this.agreed.box.checked) return undefined;
    return { wording_version: this.wording.version };
  }

  /** Whether documents can go with the request: within one institution, or consent attested. */
  sharing() {
    return this.fieldset.hidden || this.agreed.box.checked;
  }

  reset() {
    this.agreed.box.checked = false;
  }
}

/**
 * @typedef {object} ConsentOptions
 * @property {(err: unknown) => void} onError shows a refusal in the dialog
 * @property {(r: Referral) => void} show shows the request as the server answered it
 */

/**
 * Where a request stands on the patient's consent, in its dialog.
 * @param {Referral} r
 * @param {ConsentOptions} opts
 * @returns {HTMLElement}
 */
export function consentSection(r, opts) {
  const c = r.consent;
  const withheld = r.documents_withheld ?? 0;
  const section = el("section", {
    className: "referral-consent-state",
    attrs: {
      id: "referral-consent-state",
      "aria-labelledby": "referral-consent-title",
      "data-required": String(Boolean(c?.required)),
      "data-in-force": String(Boolean(c?.in_force)),
      "data-withheld": String(withheld),
    },
  });
  section.append(el("h3", { i18n: "referral.consent.title", attrs: { id: "referral-consent-title" } }));
  if (!c || !c.required) {
    section.append(el("p", { className: "hint", i18n: "referral.consent.not_needed" }));
    return section;
  }
  const mine = r.side === "requester";
  if (c.in_force && c.given_at != null) {
    section.append(
      el("p", {
        i18n: mine ? "referral.consent.in_force" : "referral.consent.in_force_receiver",
        params: { version: c.wording_version ?? "", at: { at: c.given_at * 1000 }, who: c.attested_by?.display_name ?? "" },
      }),
    );
  } else if (!mine) {
    section.append(el("p", { className: "consent-withheld", attrs: { role: "status" }, i18n: "referral.consent.withheld", params: { n: withheld } }));
  } else if (c.withdrawn_at != null) {
    section.append(el("p", { i18n: "referral.consent.withdrawn", params: { at: { at: c.withdrawn_at * 1000 } } }));
  } else {
    section.append(el("p", { i18n: "referral.consent.not_given" }));
  }
  if (!mine) return section;

  if (c.in_force) {
    const withdraw = el("button", { className: "btn btn-small btn-danger", i18n: "referral.consent.withdraw", attrs: { type: "button", id: "referral-consent-withdraw" } });
    withdraw.addEventListener("click", async () => {
      withdraw.disabled = true;
      try {
        opts.show(await rapi.withdrawConsent(r.id));
      } catch (err) {
        opts.onError(err);
        withdraw.disabled = false;
      }
    });
    section.append(el("div", { className: "actions" }, withdraw));
    return section;
  }
  // Not in force: the words again, and the attestation.
  const agreed = agreedBox("referral-consent-again");
  const status = el("p", { className: "hint", attrs: { role: "status", "aria-live": "polite" } });
  const give = el("button", { className: "btn btn-small btn-primary", i18n: "referral.consent.give", attrs: { type: "button", id: "referral-consent-give" } });
  give.addEventListener("click", async () => {
    if (!agreed.box.checked) {
      tr(status, "referral.consent.confirm_first");
      agreed.box.focus();
      return;
    }
    give.disabled = true;
    try {
      opts.show(await rapi.giveConsent(r.id, c.current_wording.version));
    } catch (err) {
      opts.onError(err);
      give.disabled = false;
    }
  });
  section.append(words(c.current_wording), agreed.label, status, el("div", { className: "actions" }, give));
  return section;
}
