// The patient's outcome page behind /outcome#<invite token> (docs/protocol.md, "The patient's
// outcome"): the issued reports, prescriptions and follow-up of their consultation, and its PDF.
//
// The token is the one in the patient's /join link; it travels in the URL fragment, so it never
// reaches the server's logs, and is sent only as the bearer token of the two API calls. The page
// state is `document.body.dataset.state`: loading | ready | empty | error.
//
// Written for a phone held by an older person: large type, one column, and plain words for every
// refusal, in the page's language (i18n.js; the switch re-renders in place). All text is set
// with textContent.

import { el, must, saveObjectUrl, userText } from "./dom.js";
import { startBranding } from "./branding.js";
import { clearText, locale, onLocaleChange, startPage, t, tr } from "./i18n.js";

/** @typedef {{zh: string, en: string}} Words */
/** @typedef {{name: string, title: string, institution: string}} Signer */
/**
 * @typedef {{id: string, kind: string, status: string, status_words: Words,
 *   supersedes: string | null, replaced_by: string | null, issued_at_ms: number,
 *   body: Record<string, any>, signed_by: Signer | null}} OutcomeRecord
 */
/**
 * @typedef {{consultation: {id: string, title: string, created_at: number,
 *   ended_at: number | null, status: string}, institution: {name: string},
 *   clinicians: Signer[], reports: OutcomeRecord[], prescriptions: OutcomeRecord[],
 *   follow_up: {report_id: string, recommendation: string, date: string | null,
 *   advice: string | null}[], available_until: number, generated_at_ms: number}} Outcome
 */

/** The refusals this page explains in its own words; any other code gets `failed`'s. */
const PROBLEMS = new Set(["no_token", "invalid_token", "not_patient_link", "invite_revoked", "outcome_expired", "unauthenticated", "too_many_requests", "failed"]);
/** The refusals after which trying again later can help: the page offers to. */
const RETRYABLE = new Set(["failed", "too_many_requests"]);

/** @typedef {import("./i18n.js").MessageKey} MessageKey */

const statusTitle = must("#status-title", HTMLElement);
const retryButton = must("#retry-button", HTMLButtonElement);
const pdfButton = must("#pdf-button", HTMLButtonElement);
const pdfStatus = must("#pdf-status", HTMLElement);

/** @returns {string} the invitation token from the URL fragment, or "". */
function tokenFromFragment() {
  const raw = location.hash.replace(/^#/, "").trim();
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** @param {"loading" | "ready" | "empty" | "error"} state */
function setState(state) {
  document.body.dataset.state = state;
  must("#status", HTMLElement).hidden = state === "ready" || state === "empty";
  must("#outcome", HTMLElement).hidden = !(state === "ready" || state === "empty");
  must("#status-spinner", HTMLElement).hidden = state !== "loading";
}

/** @param {string} code */
function showProblem(code) {
  const known = PROBLEMS.has(code) ? code : "failed";
  setState("error");
  tr(statusTitle, /** @type {MessageKey} */ (`outcome.problem.${known}.title`));
  tr(must("#status-text", HTMLElement), /** @type {MessageKey} */ (`outcome.problem.${known}.text`));
  retryButton.hidden = !RETRYABLE.has(known);
  statusTitle.focus();
}

/**
 * A follow-up date (YYYY-MM-DD, a calendar day, not an instant) as a message parameter.
 * @param {string} day
 * @returns {import("./i18n.js").Param}
 */
function dayParam(day) {
  const [y, m, d] = day.split("-").map(Number);
  if (!y || !m || !d) return day;
  return { at: Date.UTC(y, m - 1, d), style: "day" };
}

/**
 * Words the server gives in both languages (a record's status): the page's.
 * @param {Words} w
 * @returns {string}
 */
function serverWords(w) {
  return locale() === "zh-CN" ? w.zh : w.en;
}

/** @param {Signer | null} s */
function signerText(s) {
  if (!s) return "";
  return [s.name, s.title, s.institution].filter(Boolean).join(" · ");
}

/**
 * A labelled paragraph: "检查所见" over the clinician's text.
 * @param {MessageKey} label
 * @param {string} text
 */
function field(label, text) {
  return el("div", { className: "field-block" }, el("h4", { i18n: label }), el("p", { className: "field-text", user: text }));
}

/**
 * The header of a record: its status in words, who signed, when.
 * @param {OutcomeRecord} r
 */
function recordMeta(r) {
  const replaced = r.replaced_by !== null;
  // The server's words for the status, in the page's language (re-rendered on a switch).
  const badge = el("p", { className: `status-words${replaced ? " status-replaced" : ` status-${r.status}`}`, user: serverWords(r.status_words) });
  const who = signerText(r.signed_by);
  const at = { at: r.issued_at_ms, style: /** @type {const} */ ("longdate") };
  const meta = el("p", { className: "record-who", i18n: who ? "outcome.issued_by" : "outcome.issued", params: { at, who } });
  return [badge, meta];
}

/** @param {OutcomeRecord} r */
function reportItem(r) {
  const b = r.body;
  const li = el("li", { className: `outcome-record${r.replaced_by ? " replaced" : ""}` }, ...recordMeta(r));
  li.append(field("records.findings", b.findings ?? ""));
  li.append(field("records.impression", b.impression ?? ""));
  if (b.recommendation) li.append(field("records.recommendation", b.recommendation));
  if (b.follow_up_date) {
    li.append(el("div", { className: "field-block" }, el("h4", { i18n: "outcome.follow_up_date" }), el("p", { className: "field-text", i18n: "common.param", params: { text: dayParam(b.follow_up_date) } })));
  }
  if (b.follow_up_advice) li.append(field("outcome.follow_up_advice", b.follow_up_advice));
  return li;
}

/** @param {OutcomeRecord} r */
function prescriptionItem(r) {
  const li = el("li", { className: `outcome-record${r.replaced_by ? " replaced" : ""}` }, ...recordMeta(r));
  const items = el("ol", { className: "medications" });
  for (const item of r.body.items ?? []) {
    const line = el("li", { className: "medication" }, el("strong", { user: item.medication ?? "" }));
    line.append(el("span", { className: "medication-how", user: [item.dose, item.route, item.frequency, item.duration].filter(Boolean).join(" · ") }));
    if (item.note) line.append(el("span", { className: "medication-note", user: item.note }));
    items.append(line);
  }
  li.append(items);
  return li;
}

/** The outcome shown, re-rendered in the new language on a switch. @type {Outcome | null} */
let shown = null;

/** @param {Outcome} o */
function render(o) {
  shown = o;
  const c = o.consultation;
  userText(must("#consultation-title", HTMLElement), c.title);
  userText(must("#institution", HTMLElement), o.institution.name || "—");
  tr(must("#consultation-date", HTMLElement), "common.time", { time: { at: (c.ended_at ?? c.created_at) * 1000, style: "longdate" } });
  const clinicians = must("#clinicians", HTMLElement);
  clinicians.replaceChildren(...o.clinicians.map((s) => el("li", { user: signerText(s) })));
  if (o.clinicians.length === 0) clinicians.append(el("li", { text: "—" }));

  const reports = must("#reports", HTMLElement);
  reports.replaceChildren(...o.reports.map(reportItem));
  must("#reports-section", HTMLElement).hidden = o.reports.length === 0;
  const prescriptions = must("#prescriptions", HTMLElement);
  prescriptions.replaceChildren(...o.prescriptions.map(prescriptionItem));
  must("#prescriptions-section", HTMLElement).hidden = o.prescriptions.length === 0;

  const follow = must("#follow-up", HTMLElement);
  follow.replaceChildren(
    ...o.follow_up.map((f) => {
      const li = el("li", { className: "follow-up-item" });
      if (f.date) li.append(el("p", { className: "follow-up-date", i18n: "common.param", params: { text: dayParam(f.date) } }));
      if (f.advice) li.append(el("p", { className: "field-text", user: f.advice }));
      if (f.recommendation) li.append(el("p", { className: "field-text", user: f.recommendation }));
      return li;
    }),
  );
  must("#follow-up-section", HTMLElement).hidden = o.follow_up.length === 0;

  const nothing = o.reports.length === 0 && o.prescriptions.length === 0;
  must("#nothing", HTMLElement).hidden = !nothing;
  pdfButton.hidden = nothing;
  tr(must("#available-until", HTMLElement), "outcome.available_until", { date: { at: o.available_until * 1000, style: "longdate" } });
  setState(nothing ? "empty" : "ready");
}

/**
 * Calls the outcome API with the invitation token.
 * @param {string} token
 * @param {string} path
 * @returns {Promise<Response>}
 */
function call(token, path) {
  return fetch(path, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store", credentials: "omit" });
}

/**
 * The stable code of a refusal, from the JSON error body.
 * @param {Response} resp
 * @returns {Promise<string>}
 */
async function errorCode(resp) {
  try {
    const body = await resp.json();
    return typeof body?.error?.code === "string" ? body.error.code : "failed";
  } catch {
    return "failed";
  }
}

/** @param {string} token */
async function load(token) {
  setState("loading");
  retryButton.hidden = true;
  let resp;
  try {
    resp = await call(token, "/api/v1/outcome");
  } catch {
    showProblem("failed");
    return;
  }
  if (!resp.ok) {
    showProblem(await errorCode(resp));
    return;
  }
  render(/** @type {Outcome} */ (await resp.json()));
}

/** @param {string} token */
async function downloadPdf(token) {
  pdfButton.disabled = true;
  tr(pdfStatus, "outcome.preparing");
  try {
    const resp = await call(token, "/api/v1/outcome/pdf");
    if (!resp.ok) {
      const code = await errorCode(resp);
      const known = PROBLEMS.has(code) ? code : "failed";
      tr(pdfStatus, /** @type {MessageKey} */ (`outcome.problem.${known}.text`));
      return;
    }
    const blob = await resp.blob();
    saveObjectUrl(URL.createObjectURL(blob), t("outcome.pdf_name"));
    clearText(pdfStatus);
  } catch {
    tr(pdfStatus, "outcome.problem.failed.text");
  } finally {
    pdfButton.disabled = false;
  }
}

function start() {
  startPage();
  // The institution's name, logo and colour, when the server is configured with them.
  void startBranding();
  // The server's bilingual words (a record's status) are picked, not marked: render again.
  onLocaleChange(() => {
    if (shown) render(shown);
  });
  const token = tokenFromFragment();
  if (!token) {
    showProblem("no_token");
    return;
  }
  retryButton.addEventListener("click", () => void load(token));
  pdfButton.addEventListener("click", () => void downloadPdf(token));
  void load(token);
}

start();
