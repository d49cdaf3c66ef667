// The short-code page (/code): a patient types the 9 digits the clinic read out or printed,
// the server trades them for the invitation's join token (POST /api/v1/invitations/redeem,
// docs/protocol.md "Invitations"), and the page goes on to /join#<token>. Before the
// invitation's window opens it says when to come back instead. Every text is in Chinese and
// English; the server's error codes are stable, its messages are not shown.

import { must } from "./dom.js";

const DIGITS = 9;

/**
 * @typedef {object} Redeemed
 * @property {string} token the join token (goes into /join's URL fragment only)
 * @property {number | null} not_before Unix seconds
 * @property {number} expires_at Unix seconds
 * @property {number} opens_in seconds until the invitation opens (0: open now)
 */

/** @typedef {{zh: string, en: string}} Bilingual */

/**
 * What each refusal tells the patient.
 * @type {Record<string, Bilingual>}
 */
const TEXT = {
  invalid_code: {
    zh: "邀请码是 9 位数字，请核对后重新输入。",
    en: "An invitation code has 9 digits. Check it and try again.",
  },
  code_not_found: {
    zh: "没有找到这个邀请码。请核对数字，或联系诊所。",
    en: "No invitation has this code. Check the digits, or ask the clinic.",
  },
  invite_revoked: {
    zh: "这个邀请已被撤销。请联系诊所获取新的邀请。",
    en: "This invitation was withdrawn. Ask the clinic for a new one.",
  },
  invite_expired: {
    zh: "这个邀请已过期。请联系诊所获取新的邀请。",
    en: "This invitation has expired. Ask the clinic for a new one.",
  },
  invite_used_up: {
    zh: "这个邀请已被使用过。请联系诊所获取新的邀请。",
    en: "This invitation has already been used. Ask the clinic for a new one.",
  },
  room_ended: {
    zh: "这次会诊已经结束。",
    en: "This consultation has ended.",
  },
  network: {
    zh: "无法连接服务器。请检查网络后重试。",
    en: "Could not reach the server. Check your connection and try again.",
  },
  other: {
    zh: "出了点问题，请稍后重试。",
    en: "Something went wrong. Please try again.",
  },
};

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

/**
 * A time for people, in this browser's time zone.
 * @param {number} unixSeconds
 * @param {string} locale
 * @returns {string}
 */
function localTime(unixSeconds, locale) {
  return new Intl.DateTimeFormat(locale, { dateStyle: "full", timeStyle: "short" }).format(
    new Date(unixSeconds * 1000),
  );
}

function start() {
  const card = must("#code-card", HTMLElement);
  const form = must("#code-form", HTMLFormElement);
  const input = must("#code-input", HTMLInputElement);
  const submit = must("#code-submit", HTMLButtonElement);
  const error = must("#code-error", HTMLElement);
  const errorZh = must(".code-error-zh", HTMLElement, error);
  const errorEn = must(".code-error-en", HTMLElement, error);
  const wait = must("#code-wait", HTMLElement);
  const waitLink = must("#wait-link", HTMLAnchorElement);

  /** @param {Bilingual | null} text */
  const showError = (text) => {
    error.hidden = text === null;
    errorZh.textContent = text?.zh ?? "";
    errorEn.textContent = text?.en ?? "";
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
      showError(TEXT.invalid_code);
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
        must(".wait-from-zh", HTMLElement, wait).textContent = localTime(opens, "zh-CN");
        must(".wait-from-en", HTMLElement, wait).textContent = localTime(opens, "en");
        waitLink.href = target;
        card.hidden = true;
        wait.hidden = false;
        return;
      }
      location.replace(target);
    } catch (err) {
      showError(err instanceof Refused ? err.text : TEXT.other);
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
  /** @param {Bilingual} text */
  constructor(text) {
    super(text.en);
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
    throw new Refused(TEXT.network);
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
    throw new Refused({
      zh: `输错次数太多。请 ${minutes} 分钟后再试。`,
      en: `Too many wrong codes. Try again in ${minutes} minutes.`,
    });
  }
  throw new Refused(Object.hasOwn(TEXT, code) ? TEXT[code] : TEXT.other);
}

if (typeof document !== "undefined") {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
}
