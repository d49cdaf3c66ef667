// Tiny DOM helpers. Text is always set with textContent, never innerHTML, so names and titles
// typed by people can never inject markup. Visible text is either a catalogue message (`i18n`,
// marked so a language switch re-translates it) or people's own words (`user`, marked
// `data-user-content`); `text` is for what is neither (digits, symbols) and for callers that
// already hold a marked message.

import { t, tr, trAttr, trTime } from "./i18n.js";

/** @typedef {import("./i18n.js").MessageKey} MessageKey */
/** @typedef {import("./i18n.js").Params} Params */

/**
 * Creates an element.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {{className?: string, text?: string, user?: string, i18n?: MessageKey, params?: Params,
 *   time?: string | number, timeStyle?: import("./i18n.js").TimeStyle,
 *   label?: MessageKey, labelParams?: Params, title?: MessageKey, titleParams?: Params,
 *   attrs?: Record<string, string>}} [opts]
 * @param {...(Node | string)} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, opts = {}, ...children) {
  const node = document.createElement(tag);
  if (opts.className) node.className = opts.className;
  if (opts.text !== undefined) node.textContent = opts.text;
  if (opts.user !== undefined) {
    node.textContent = opts.user;
    node.setAttribute("data-user-content", "");
  }
  if (opts.i18n !== undefined) tr(node, opts.i18n, opts.params);
  if (opts.time !== undefined) trTime(node, opts.time, opts.timeStyle);
  if (opts.label !== undefined) trAttr(node, "aria-label", opts.label, opts.labelParams);
  if (opts.title !== undefined) trAttr(node, "title", opts.title, opts.titleParams);
  for (const [name, value] of Object.entries(opts.attrs ?? {})) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

/**
 * Looks up an element that the page markup must contain, with its expected type, so a missing
 * or renamed element fails loudly at start-up instead of as a null dereference later.
 * @template {Element} T
 * @param {string} selector
 * @param {new (...args: any[]) => T} type
 * @param {ParentNode} [root]
 * @returns {T}
 */
export function must(selector, type, root = document) {
  const node = root.querySelector(selector);
  if (!(node instanceof type)) throw new Error(`page markup is missing ${selector}`);
  return node;
}

/**
 * Marks a node as holding people's own words (names, titles, chat), which the catalogue does
 * not translate, and sets them.
 * @param {Element} node
 * @param {string} text
 */
export function userText(node, text) {
  node.setAttribute("data-user-content", "");
  node.textContent = text;
}

/**
 * The catalogue key naming a room role; an unknown role (a newer server) is shown as it is.
 * @param {string} role
 * @returns {MessageKey | null}
 */
export function roleKey(role) {
  switch (role) {
    case "doctor":
      return "role.doctor";
    case "specialist":
      return "role.specialist";
    case "patient":
      return "role.patient";
    case "observer":
      return "role.observer";
    case "guest":
      return "role.guest";
    default:
      return null;
  }
}

/**
 * Human label for a room role, as a parameter of a message (translated with the page).
 * @param {string} role
 * @returns {import("./i18n.js").Param}
 */
export function roleParam(role) {
  const key = roleKey(role);
  return key ? { key } : role;
}

/**
 * Human label for a room role in the page's language (for text that is not marked: prefer
 * `roleParam` inside a message).
 * @param {string} role
 * @returns {string}
 */
export function roleLabel(role) {
  const key = roleKey(role);
  return key ? t(key) : role;
}

/**
 * Saves an object URL's content as a file named `name`, then releases the URL.
 * @param {string} href
 * @param {string} name
 */
export function saveObjectUrl(href, name) {
  const a = document.createElement("a");
  a.href = href;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
}
