// The patient's outcome page behind /outcome#<invite token> (docs/protocol.md, "The patient's
// outcome"): the issued reports, prescriptions and follow-up of their consultation, and its PDF.
//
// The token is the one in the patient's /join link; it travels in the URL fragment, so it never
// reaches the server's logs, and is sent only as the bearer token of the two API calls. The page
// state is `document.body.dataset.state`: loading | ready | empty | error.
//
// Written for a phone held by an older person: large type, one column, headings in Chinese and
// English side by side, and plain words for every refusal. All text is set with textContent.

import { el, must, saveObjectUrl } from "./dom.js";

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

/** Refusals and failures, in both languages. @type {Record<string, Words & {title: Words}>} */
const PROBLEMS = {
  no_token: {
    title: { zh: "链接不完整", en: "Incomplete link" },
    zh: "这个链接缺少一部分。请打开医院发给您的完整链接。",
    en: "Part of this link is missing. Open the complete link the clinic sent you.",
  },
  invalid_token: {
    title: { zh: "链接无效", en: "Link not valid" },
    zh: "这个链接无效。请确认您打开的是完整的链接，或请医院重新发送。",
    en: "This link is not valid. Check that you opened the complete link, or ask the clinic to send it again.",
  },
  not_patient_link: {
    title: { zh: "不是患者链接", en: "Not a patient's link" },
    zh: "只有患者的邀请链接可以查看会诊结果。这个链接是给旁听者或医生的。",
    en: "Only a patient's invitation link shows the outcome of a consultation. This link is for an observer or a clinician.",
  },
  invite_revoked: {
    title: { zh: "链接已撤回", en: "Link withdrawn" },
    zh: "医院已撤回这个邀请链接。如需查看会诊结果，请联系医院。",
    en: "The clinic has withdrawn this invitation link. Contact the clinic to see the outcome.",
  },
  outcome_expired: {
    title: { zh: "查看期限已过", en: "No longer available" },
    zh: "通过这个链接查看会诊结果的期限已过。如需副本，请联系医院。",
    en: "The outcome of this consultation can no longer be seen through this link. Contact the clinic for a copy.",
  },
  unauthenticated: {
    title: { zh: "链接无效", en: "Link not valid" },
    zh: "这个链接无效。请打开医院发给您的完整链接。",
    en: "This link is not valid. Open the complete link the clinic sent you.",
  },
  failed: {
    title: { zh: "暂时无法打开", en: "Could not load" },
    zh: "暂时无法加载会诊结果。请检查网络后重试。",
    en: "The outcome could not be loaded right now. Check your connection and try again.",
  },
};

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

/**
 * A heading's text in both languages, each marked with its language.
 * @param {Words} w
 * @returns {(Node | string)[]}
 */
function bilingual(w) {
  return [el("span", { text: w.zh, attrs: { lang: "zh-CN" } }), " ", el("span", { text: w.en, attrs: { lang: "en" } })];
}

/** @param {string} code */
function showProblem(code) {
  const p = PROBLEMS[code] ?? PROBLEMS.failed;
  setState("error");
  statusTitle.replaceChildren(...bilingual(p.title));
  must("#status-zh", HTMLElement).textContent = p.zh;
  must("#status-en", HTMLElement).textContent = p.en;
  retryButton.hidden = !(code === "failed" || !(code in PROBLEMS));
  statusTitle.focus();
}

/**
 * A date in both languages: {zh: "2026年12月3日", en: "3 December 2026"}.
 * @param {Date} d
 * @returns {Words}
 */
function dateParts(d) {
  const opts = /** @type {const} */ ({ year: "numeric", month: "long", day: "numeric" });
  return { zh: d.toLocaleDateString("zh-CN", opts), en: d.toLocaleDateString("en-GB", opts) };
}

/**
 * A date as people read it: 2026年12月3日 · 3 December 2026.
 * @param {Date} d
 * @returns {string}
 */
function dateWords(d) {
  const w = dateParts(d);
  return `${w.zh} · ${w.en}`;
}

/**
 * A follow-up date (YYYY-MM-DD, a calendar day, not an instant) in words.
 * @param {string} day
 */
function dayWords(day) {
  const [y, m, d] = day.split("-").map(Number);
  if (!y || !m || !d) return day;
  const opts = /** @type {const} */ ({ year: "numeric", month: "long", day: "numeric", timeZone: "UTC" });
  const date = new Date(Date.UTC(y, m - 1, d));
  return `${date.toLocaleDateString("zh-CN", opts)} · ${date.toLocaleDateString("en-GB", opts)}`;
}

/** @param {Signer | null} s */
function signerText(s) {
  if (!s) return "";
  return [s.name, s.title, s.institution].filter(Boolean).join(" · ");
}

/**
 * A labelled paragraph: "检查所见 Findings" over the text.
 * @param {Words} label
 * @param {string} text
 */
function field(label, text) {
  return el("div", { className: "field-block" }, el("h4", { className: "bi" }, ...bilingual(label)), el("p", { className: "field-text", text }));
}

/**
 * The header of a record: its status in words, who signed, when.
 * @param {OutcomeRecord} r
 */
function recordMeta(r) {
  const replaced = r.replaced_by !== null;
  const badge = el("p", { className: `status-words${replaced ? " status-replaced" : ` status-${r.status}`}` }, ...bilingual(r.status_words));
  const meta = el("p", { className: "record-who" });
  const who = signerText(r.signed_by);
  meta.textContent = `${dateWords(new Date(r.issued_at_ms))}${who ? ` · ${who}` : ""}`;
  return [badge, meta];
}

/** @param {OutcomeRecord} r */
function reportItem(r) {
  const b = r.body;
  const li = el("li", { className: `outcome-record${r.replaced_by ? " replaced" : ""}` }, ...recordMeta(r));
  li.append(field({ zh: "检查所见", en: "Findings" }, b.findings ?? ""));
  li.append(field({ zh: "诊断意见", en: "Impression" }, b.impression ?? ""));
  if (b.recommendation) li.append(field({ zh: "建议", en: "Recommendation" }, b.recommendation));
  if (b.follow_up_date) li.append(field({ zh: "复诊日期", en: "Follow-up date" }, dayWords(b.follow_up_date)));
  if (b.follow_up_advice) li.append(field({ zh: "复诊建议", en: "Follow-up advice" }, b.follow_up_advice));
  return li;
}

/** @param {OutcomeRecord} r */
function prescriptionItem(r) {
  const li = el("li", { className: `outcome-record${r.replaced_by ? " replaced" : ""}` }, ...recordMeta(r));
  const items = el("ol", { className: "medications" });
  for (const item of r.body.items ?? []) {
    const line = el("li", { className: "medication" }, el("strong", { text: item.medication ?? "" }));
    line.append(el("span", { className: "medication-how", text: [item.dose, item.route, item.frequency, item.duration].filter(Boolean).join(" · ") }));
    if (item.note) line.append(el("span", { className: "medication-note", text: item.note }));
    items.append(line);
  }
  li.append(items);
  return li;
}

/** @param {Outcome} o */
function render(o) {
  const c = o.consultation;
  must("#consultation-title", HTMLElement).textContent = c.title;
  must("#institution", HTMLElement).textContent = o.institution.name || "—";
  must("#consultation-date", HTMLElement).textContent = dateWords(new Date((c.ended_at ?? c.created_at) * 1000));
  const clinicians = must("#clinicians", HTMLElement);
  clinicians.replaceChildren(...o.clinicians.map((s) => el("li", { text: signerText(s) })));
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
      if (f.date) li.append(el("p", { className: "follow-up-date", text: dayWords(f.date) }));
      if (f.advice) li.append(el("p", { className: "field-text", text: f.advice }));
      if (f.recommendation) li.append(el("p", { className: "field-text", text: f.recommendation }));
      return li;
    }),
  );
  must("#follow-up-section", HTMLElement).hidden = o.follow_up.length === 0;

  const nothing = o.reports.length === 0 && o.prescriptions.length === 0;
  must("#nothing", HTMLElement).hidden = !nothing;
  pdfButton.hidden = nothing;
  const until = dateParts(new Date(o.available_until * 1000));
  must("#available-until", HTMLElement).textContent = `此链接可查看至 ${until.zh}。 This link shows the outcome until ${until.en}.`;
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
  pdfStatus.textContent = "正在准备… Preparing…";
  try {
    const resp = await call(token, "/api/v1/outcome/pdf");
    if (!resp.ok) {
      const code = await errorCode(resp);
      const p = PROBLEMS[code] ?? PROBLEMS.failed;
      pdfStatus.textContent = `${p.zh} ${p.en}`;
      return;
    }
    const blob = await resp.blob();
    saveObjectUrl(URL.createObjectURL(blob), "会诊结果-outcome.pdf");
    pdfStatus.textContent = "";
  } catch {
    pdfStatus.textContent = `${PROBLEMS.failed.zh} ${PROBLEMS.failed.en}`;
  } finally {
    pdfButton.disabled = false;
  }
}

function start() {
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
