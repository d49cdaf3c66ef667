// The institution's look (issue 18): its name and logo in each page's header and its colour as
// the accent, from the server's `[branding]` (the `branding` of `GET /api/v1/display`, which
// every page already asks for its time zone). Without it nothing here touches the page: the
// product's own look stays.
//
// The name is the institution's own words (marked `data-user-content`, with its `lang`), shown
// in the page's language and switched with it. The logo stands beside the name and says
// nothing more, so it is decorative (`alt=""`): a screen reader reads the name once.
//
// The colour: app.css takes its accent tokens (`--primary`, `--primary-text`, `--primary-ink`)
// from custom properties set here on <html> (through the CSSOM, which the pages' CSP allows),
// once `<html data-brand-accent>` is set; the dark scheme's shade is chosen there. The server
// has checked the colour's contrast on both schemes and worked out the shades, so the page
// only uses them.
//
// DOM contract (tests/browser/branding-scenario.mjs relies on it): `.brand-mark` (with
// `.brand-logo` when there is a logo, and `.brand-name`) first in the console's `.brand` and
// in the participant pages' `.lang-bar`; `<html data-brand-accent>` once the colour is set.

import { displaySettings, locale, onLocaleChange } from "./i18n.js";

/**
 * @typedef {object} Accent
 * @property {string} color the accent, `#rrggbb`
 * @property {string} on_color words on it
 * @property {string} ink_light the accent as the colour of words, on the light scheme
 * @property {string} ink_dark the same, on the dark scheme
 */
/**
 * @typedef {object} Branding
 * @property {{"zh-CN": string, en: string} | null} name
 * @property {string | null} logo_url
 * @property {Accent | null} accent
 */

const HEX = /^#[0-9a-f]{6}$/;
/** The one route a logo comes from; anything else in the answer is ignored. */
const LOGO_PREFIX = "/api/v1/display/logo/";

/**
 * Asks the server (once per page, shared with the time zone) and applies what it says.
 * @returns {Promise<void>}
 */
export async function startBranding() {
  const body = await displaySettings();
  if (body && typeof body === "object" && "branding" in body) applyBranding(body.branding);
}

/**
 * Applies a `branding` answer; what is missing or not of the expected shape is left alone.
 * @param {unknown} value
 */
export function applyBranding(value) {
  if (!value || typeof value !== "object") return;
  const b = /** @type {Partial<Branding>} */ (value);
  if (b.accent && isAccent(b.accent)) applyAccent(b.accent);
  const name = b.name;
  if (name && typeof name["zh-CN"] === "string" && typeof name.en === "string" && name["zh-CN"] && name.en) {
    const logo = typeof b.logo_url === "string" && b.logo_url.startsWith(LOGO_PREFIX) ? b.logo_url : null;
    mountName(name, logo);
  }
}

/**
 * @param {object} value
 * @returns {value is Accent}
 */
function isAccent(value) {
  const a = /** @type {Record<string, unknown>} */ (value);
  return ["color", "on_color", "ink_light", "ink_dark"].every((k) => typeof a[k] === "string" && HEX.test(/** @type {string} */ (a[k])));
}

/** @param {Accent} accent */
function applyAccent(accent) {
  const root = document.documentElement;
  root.style.setProperty("--brand-color", accent.color);
  root.style.setProperty("--brand-on-color", accent.on_color);
  root.style.setProperty("--brand-ink-light", accent.ink_light);
  root.style.setProperty("--brand-ink-dark", accent.ink_dark);
  root.dataset.brandAccent = "";
}

/**
 * Puts the name (and the logo) first in the page's header: the console's brand line, or the
 * bar above a participant page's content.
 * @param {{"zh-CN": string, en: string}} name
 * @param {string | null} logoUrl
 */
function mountName(name, logoUrl) {
  const host = document.querySelector(".app-header .brand") ?? document.querySelector("body > .lang-bar");
  if (!host || host.querySelector(".brand-mark")) return;
  const mark = document.createElement("span");
  mark.className = "brand-mark";
  if (logoUrl) {
    const img = document.createElement("img");
    img.className = "brand-logo";
    img.src = logoUrl;
    // The name beside it says what the logo says.
    img.alt = "";
    img.decoding = "async";
    mark.append(img);
  }
  const text = document.createElement("span");
  text.className = "brand-name";
  text.setAttribute("data-user-content", "");
  mark.append(text);
  const show = () => {
    const lang = locale();
    text.lang = lang;
    text.textContent = name[lang];
  };
  show();
  onLocaleChange(show);
  host.prepend(mark);
}
