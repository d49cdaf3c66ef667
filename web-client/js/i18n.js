// The client's one message catalogue: every visible string is a key looked up here, in
// Simplified Chinese (zh-CN) or English (en), with the same keys in both (locales/*.js;
// tests/browser/i18n-check.mjs fails on a key missing in either, used but absent, or unused).
//
// The language is the one remembered in localStorage, else the first of the browser's
// languages that we speak (zh* → zh-CN, en* → en), else English. `<html lang>` follows it.
//
// Text put into the page through `tr` / `trAttr` / `trTime` (or `el`'s `i18n` options in
// dom.js, or `data-i18n*` attributes in the HTML) records its key on the element, so
// `setLocale` re-translates the whole page in place, with no reload and no view having to
// re-render. The runtime check in the browser tests relies on the same marks: visible text not
// inside a `data-i18n` element must be inside a `data-user-content` one (names, chat, titles).
//
// Parameters are interpolated as `{name}`; there are no plural forms (Chinese has none, and
// the English texts are written to read well with a number, "Waiting: 3").

import en from "./locales/en.js";
import zhCN from "./locales/zh-CN.js";

/** @typedef {keyof typeof en} MessageKey */
/** @typedef {"zh-CN" | "en"} Locale */
/** @typedef {"date" | "longdate" | "day" | "time" | "datetime" | "full" | "weekday"} TimeStyle */
/**
 * A parameter: plain text or a number, another message (translated with the page), or a time
 * (formatted in the page's language).
 * @typedef {string | number | {key: MessageKey, params?: Params} | {at: string | number | Date, style?: TimeStyle}} Param
 */
/** @typedef {Record<string, Param>} Params */

/** The languages we speak, in the order the switch offers them. */
export const LOCALES = /** @type {const} */ (["zh-CN", "en"]);

/** @type {Record<Locale, Record<MessageKey, string>>} */
const CATALOGUES = { "zh-CN": zhCN, en };

const STORE_KEY = "huizhen.locale";

/** Attributes a key can be given for (`data-i18n-<attr>="key"`). */
const ATTRS = /** @type {const} */ (["aria-label", "title", "placeholder", "alt"]);

/**
 * The language for a list of browser languages (navigator.languages): the first we speak.
 * @param {readonly string[]} preferred
 * @returns {Locale}
 */
export function pickLocale(preferred) {
  for (const tag of preferred) {
    const lower = tag.toLowerCase();
    if (lower.startsWith("zh")) return "zh-CN";
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

/**
 * @param {unknown} value
 * @returns {value is Locale}
 */
function isLocale(value) {
  return typeof value === "string" && /** @type {readonly string[]} */ (LOCALES).includes(value);
}

/** @returns {Locale} */
function initialLocale() {
  try {
    const stored = localStorage.getItem(STORE_KEY);
    if (isLocale(stored)) return stored;
  } catch {
    // Storage refused (private mode, a sandbox): the browser's language decides.
  }
  if (typeof navigator === "undefined") return "en";
  return pickLocale(navigator.languages?.length ? navigator.languages : [navigator.language ?? "en"]);
}

/** @type {Locale} */
let current = initialLocale();
/** @type {Set<(locale: Locale) => void>} */
const listeners = new Set();

/** @returns {Locale} the page's language */
export function locale() {
  return current;
}

/**
 * Switches the language: remembered, `<html lang>` set, every marked text re-translated, then
 * the listeners told (for what marks cannot follow: the document title, canvases).
 * @param {Locale} next
 */
export function setLocale(next) {
  current = next;
  try {
    localStorage.setItem(STORE_KEY, next);
  } catch {
    // Not remembered; this page still switches.
  }
  translatePage();
  for (const fn of listeners) fn(next);
}

/**
 * @param {(locale: Locale) => void} fn called after each switch
 * @returns {() => void} unsubscribes
 */
export function onLocaleChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/**
 * @param {MessageKey} key
 * @returns {boolean} whether the catalogue has the key (for keys made from server codes)
 */
export function hasKey(key) {
  return Object.hasOwn(CATALOGUES.en, key);
}

/**
 * The text of `key` in the page's language.
 * @param {MessageKey} key
 * @param {Params} [params]
 * @returns {string}
 */
export function t(key, params) {
  const text = CATALOGUES[current][key] ?? CATALOGUES.en[key] ?? key;
  if (!params) return text;
  return text.replace(/\{([a-zA-Z0-9_]+)\}/g, (whole, name) =>
    Object.hasOwn(params, name) ? paramText(params[name]) : whole,
  );
}

/**
 * @param {Param} value
 * @returns {string}
 */
function paramText(value) {
  if (typeof value === "string") return value;
  if (typeof value === "number") return new Intl.NumberFormat(current).format(value);
  if ("key" in value) return t(value.key, value.params);
  return formatTime(value.at, value.style);
}

/** @type {Record<TimeStyle, Intl.DateTimeFormatOptions>} */
const TIME_STYLES = {
  date: { dateStyle: "medium" },
  longdate: { dateStyle: "long" },
  // A calendar day (YYYY-MM-DD given as UTC midnight), not an instant: the same day everywhere.
  day: { dateStyle: "long", timeZone: "UTC" },
  time: { timeStyle: "short" },
  datetime: { dateStyle: "medium", timeStyle: "short" },
  full: { dateStyle: "full", timeStyle: "short" },
  weekday: { weekday: "long", month: "long", day: "numeric" },
};

/**
 * The institution's time zone (an IANA name, from `GET /api/v1/display`, the server's
 * `display.time_zone`), once known: times are shown in it, so that a clinician abroad or a
 * browser with a wrong clock setting reads the same times as the PDFs. Until then, or if the
 * server names none, the browser's.
 * @type {string | undefined}
 */
let timeZone;

/**
 * A time for people, in the page's language and the institution's time zone.
 * @param {string | number | Date} at an ISO string, Unix milliseconds or a Date
 * @param {TimeStyle} [style]
 * @returns {string}
 */
export function formatTime(at, style = "datetime") {
  const date = at instanceof Date ? at : new Date(at);
  if (Number.isNaN(date.getTime())) return String(at);
  const options = TIME_STYLES[style];
  // A calendar day keeps its own zone (UTC): it is the same day everywhere.
  const zoned = timeZone && !options.timeZone ? { ...options, timeZone } : options;
  return new Intl.DateTimeFormat(current, zoned).format(date);
}

/**
 * Shows times in `zone` from now on and re-formats those on the page (marked nodes, and the
 * pages that re-render on a language switch). A name the browser's Intl does not know, or an
 * empty one, is ignored.
 * @param {unknown} zone
 */
export function setTimeZone(zone) {
  if (typeof zone !== "string" || zone === "" || zone === timeZone) return;
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone });
  } catch {
    return;
  }
  timeZone = zone;
  if (typeof document === "undefined") return;
  translatePage();
  for (const fn of listeners) fn(current);
}

/** @returns {string | undefined} the time zone times are shown in, once the server named it */
export function displayTimeZone() {
  return timeZone;
}

/** @type {Promise<unknown> | undefined} */
let display;

/**
 * The server's display settings (`GET /api/v1/display`, public: the time zone, the
 * institution's branding), asked once per page however many modules want them. Null without an
 * answer (offline, an older server).
 * @returns {Promise<unknown>}
 */
export function displaySettings() {
  display ??= (async () => {
    if (typeof fetch === "undefined") return null;
    try {
      const res = await fetch("/api/v1/display", { credentials: "same-origin" });
      return res.ok ? await res.json() : null;
    } catch {
      return null;
    }
  })();
  return display;
}

/**
 * Asks the server which zone times are shown in. Without an answer times stay in the
 * browser's zone.
 * @returns {Promise<void>}
 */
export async function loadTimeZone() {
  const body = await displaySettings();
  if (body && typeof body === "object" && "time_zone" in body) setTimeZone(body.time_zone);
}

/**
 * Sets a node's text to a message and marks it, so a language switch re-translates it.
 * @param {Element} node
 * @param {MessageKey} key
 * @param {Params} [params]
 */
export function tr(node, key, params) {
  node.setAttribute("data-i18n", key);
  if (params) node.setAttribute("data-i18n-params", JSON.stringify(params));
  else node.removeAttribute("data-i18n-params");
  node.textContent = t(key, params);
}

/**
 * Sets an attribute (aria-label, title, placeholder, alt) to a message and marks it.
 * @param {Element} node
 * @param {(typeof ATTRS)[number]} attr
 * @param {MessageKey} key
 * @param {Params} [params]
 */
export function trAttr(node, attr, key, params) {
  node.setAttribute(`data-i18n-${attr}`, key);
  if (params) node.setAttribute(`data-i18n-${attr}-params`, JSON.stringify(params));
  else node.removeAttribute(`data-i18n-${attr}-params`);
  node.setAttribute(attr, t(key, params));
}

/**
 * Sets a node's text to a formatted time and marks it (re-formatted on a switch).
 * @param {Element} node
 * @param {string | number | Date} at
 * @param {TimeStyle} [style]
 */
export function trTime(node, at, style = "datetime") {
  tr(node, "common.time", { time: { at: at instanceof Date ? at.toISOString() : at, style } });
}

/** Empties a node's text and drops its mark (a status line cleared). */
/** @param {Element} node */
export function clearText(node) {
  node.removeAttribute("data-i18n");
  node.removeAttribute("data-i18n-params");
  node.textContent = "";
}

/**
 * @param {string | null} json
 * @returns {Params | undefined}
 */
function parseParams(json) {
  if (!json) return undefined;
  try {
    return JSON.parse(json);
  } catch {
    return undefined;
  }
}

/**
 * Translates every marked node under `root` (the whole page by default) and sets `<html lang>`.
 * @param {ParentNode} [root]
 */
export function translatePage(root = document) {
  if (typeof document === "undefined") return;
  document.documentElement.lang = current;
  for (const node of root.querySelectorAll("[data-i18n]")) {
    const key = /** @type {MessageKey} */ (node.getAttribute("data-i18n"));
    node.textContent = t(key, parseParams(node.getAttribute("data-i18n-params")));
  }
  for (const attr of ATTRS) {
    for (const node of root.querySelectorAll(`[data-i18n-${attr}]`)) {
      const key = /** @type {MessageKey} */ (node.getAttribute(`data-i18n-${attr}`));
      node.setAttribute(attr, t(key, parseParams(node.getAttribute(`data-i18n-${attr}-params`))));
    }
  }
}

/**
 * Puts the language switch into `container`: one button naming the other language in that
 * language ("English" on a Chinese page, "中文" on an English one), which is what a person
 * who cannot read the current language still recognises.
 * @param {Element} container
 * @returns {HTMLButtonElement}
 */
export function mountLanguageSwitch(container) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "btn btn-small lang-switch";
  const label = () => {
    const other = current === "zh-CN" ? "en" : "zh-CN";
    button.lang = other;
    // The name of the other language, written in it: the same in both catalogues.
    tr(button, other === "en" ? "lang.en" : "lang.zh-CN");
    trAttr(button, "title", "lang.switch_title");
  };
  label();
  button.addEventListener("click", () => setLocale(current === "zh-CN" ? "en" : "zh-CN"));
  onLocaleChange(label);
  container.append(button);
  return button;
}

/**
 * The usual start of a page: `<html lang>` and every `data-i18n` text of the markup in the
 * page's language, and a language switch in each `.lang-slot`.
 */
export function startPage() {
  translatePage();
  for (const slot of document.querySelectorAll(".lang-slot")) mountLanguageSwitch(slot);
  void loadTimeZone();
}
