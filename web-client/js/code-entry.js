// The short-code page (/code): a patient types the 9 digits the clinic read out or printed,
// the server trades them for the invitation's join token (POST /api/v1/invitations/redeem,
// docs/protocol.md "Invitations"), and the page goes on to /join#<token>. Before the
// invitation's window opens it says when to come back instead. Every text is from the catalogue
// (i18n.js); the server's error codes are stable, its messages are not shown.

import { must } from "./dom.js";
import { errorKey } from "./errors.js";
import { startBranding } from "./branding.js";
import { clearText, startPage, tr } from "./i18n.js";

const DIGITS = 9;

/**
 * @typedef {object} Redeemed
 * @property {string} token the join token (goes into /join's URL fragment only)
 * @property {number | null} not_before Unix seconds
 * @property {number} expires_at Unix seconds
 * @property {number} opens_in seconds until the invitation opens (0: open now)
 */

/** @typedef {{key: import("./i18n.js").MessageKey, params?: import("./i18n.js").Params}} Message */

/**
 * The digits typed, full-width ones included, with separators dropped; `null` when something
 * other than digits, spaces and dashes was typed.
 * @param {string} raw
 * @returns {string | null}
 */
export function digitsOf(raw) {
  let digits = "";
  for (const c of raw) {
    const code = c.codePointAt(0) ?? 0;
    if (c >= "0" && c <= "9") digits += c;
    else if (code >= 0xff10 && code <= 0xff19) digits += String.fromCodePoint(code - 0xff10 + 48);
    else if (!/[\s\-‐‑‒–—―－_.·\u3000]/u.test(c)) return null;
  }
  return digits;
}

/**
 * Digits grouped as they are read out: `123 456 789`.
 * @param {string} digits
 * @returns {string}
 */
export function grouped(digits) {
  return (digits.match(/.{1,3}/g) ?? []).join(" ");
}

function start() {
  startPage();
  // The institution's name, logo and colour, when the server is configured with them.
  void startBranding();
  const card = must("#code-card", HTMLElement);
  const form = must("#code-form", HTMLFormElement);
  const input = must("#code-input", HTMLInputElement);
  const submit = must("#code-submit", HTMLButtonElement);
  const error = must("#code-error", HTMLElement);
  const wait = must("#code-wait", HTMLElement);
  const waitLink = must("#wait-link", HTMLAnchorElement);

  /** @param {Message | null} text */
  const showError = (text) => {
    error.hidden = text === null;
    if (text) tr(error, text.key, text.params);
    else clearText(error);
    input.setAttribute("aria-invalid", String(text !== null));
  };

  // Grouped as typed, while only digits and separators are typed (the caret goes to the end,
  // which is where a person typing a code is).
  input.addEventListener("input", () => {
    const digits = digitsOf(input.value);
    if (digits === null || digits.length > DIGITS) return;
    const shown = grouped(digits);
    if (shown !== input.value) input.value = shown;
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const digits = digitsOf(input.value);
    if (digits === null || digits.length !== DIGITS) {
      showError({ key: "error.invalid_code" });
      input.focus();
      return;
    }
    showError(null);
    submit.disabled = true;
    try {
      const redeemed = await redeem(digits);
      const target = `/join#${redeemed.token}`;
      if (redeemed.opens_in > 0) {
        // Measured from now on this browser's clock: the server says how long, not when.
        const opens = Date.now() / 1000 + redeemed.opens_in;
        tr(must("#wait-from", HTMLElement, wait), "code.wait_from", { time: { at: opens * 1000, style: "full" } });
        waitLink.href = target;
        card.hidden = true;
        wait.hidden = false;
        return;
      }
      location.replace(target);
    } catch (err) {
      showError(err instanceof Refused ? err.text : { key: "error.unknown" });
      input.focus();
      input.select();
    } finally {
      submit.disabled = false;
    }
  });

  input.focus();
}

/** A refusal the patient is told about. */
class Refused extends Error {
  /** @param {Message} text */
  constructor(text) {
    super(text.key);
    this.name = "Refused";
    this.text = text;
  }
}

/**
 * @param {string} digits
 * @returns {Promise<Redeemed>}
 */
async function redeem(digits) {
  let response;
  try {
    response = await fetch("/api/v1/invitations/redeem", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: digits }),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new Refused({ key: "error.network" });
  }
  /** @type {any} */
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON: a proxy's page; treated as an unknown failure below.
  }
  if (response.ok && typeof body?.token === "string") {
    return {
      token: body.token,
      not_before: typeof body.not_before === "number" ? body.not_before : null,
      expires_at: Number(body.expires_at),
      opens_in: Math.max(0, Number(body.opens_in) || 0),
    };
  }
  const code = typeof body?.error?.code === "string" ? body.error.code : "other";
  if (code === "too_many_attempts") {
    const seconds = Number(response.headers.get("Retry-After")) || 900;
    const minutes = Math.max(1, Math.ceil(seconds / 60));
    throw new Refused({ key: "code.too_many", params: { minutes } });
  }
  if (code === "too_many_requests") {
    // Everyone behind this address together: not a wrong code, so said apart.
    const seconds = Math.max(1, Number(response.headers.get("Retry-After")) || 60);
    throw new Refused({ key: "code.too_many_requests", params: { seconds } });
  }
  throw new Refused({ key: errorKey(code) });
}

if (typeof document !== "undefined") {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
}
