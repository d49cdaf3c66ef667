// The clinical workflow of issue 17 from end to end, as its people do it, in one browser engine
// at a time: consultation.test.mjs runs it in Chromium and again in Firefox (engines.mjs gives
// both the same interface; the selectors are the client's DOM contract and catalogue keys, so
// one script serves both engines and both languages).
//
// A township doctor sends an urgent consultation request to the county hospital's cardiology
// department, proposing a time a few minutes ahead, with a lab report; a cardiologist reads the
// report in the console's viewer before answering, then accepts that time; the doctor records
// that the patient withdrew their consent to sharing (the cardiologist's console withholds the
// report, naming it nowhere) and then their consent again; the doctor makes two patient links in the consultation's card and reads each short code; two
// patients on phones type their codes on /code and wait, seeing their place in line; the doctor
// enters and admits the first, and the specialist enters; the clinicians confer privately and
// the patient's page says so; the specialist drafts a diagnosis report (the doctor's day view,
// in another tab, lists it to sign until it is signed) and signs it and a prescription with
// their password; the doctor ends the consultation and the patient's page leads to the
// outcome; a pharmacist approves the prescription; the patient's outcome page shows the report
// and the approved prescription with the specialist's name. Screenshots of every step land in
// test-output/browser (workflow-<engine>-<step>-<who>.png), and every page open after a step is
// checked with axe-core (no serious or critical violation), in both engines.

import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { axeViolations } from "./a11y.mjs";
import { Participant, closeParticipant, firefoxParticipant, instrumentPage, launchFirefox } from "./engines.mjs";

/**
 * @typedef {object} Harness what the main test lends the scenario
 * @property {(name: string, opts: {scenario?: true | string}, fn: () => Promise<void>) => Promise<void>} check
 * @property {(browser: import("playwright-core").Browser, viewport: {width: number, height: number}, locale?: string) => Promise<import("playwright-core").BrowserContext>} newContext
 * @property {(page: import("playwright-core").Page, who: string) => void} watchPage
 * @property {Map<string, import("playwright-core").Page>} pages Chromium pages photographed on failure
 * @property {import("playwright-core").Browser | null} browser Chromium
 * @property {string} base the server's origin
 * @property {string} password the run's password of every account
 * @property {string} doctor the township doctor's username
 * @property {string} specialist the county cardiologist's username
 * @property {string} pharmacist a pharmacist's username
 * @property {number} timeout how long an event may take to show
 * @property {string} out where screenshots go
 */

const HERE = path.dirname(fileURLToPath(import.meta.url));
const LOCALES = path.resolve(HERE, "../../web-client/js/locales");
/** @type {Record<string, Record<string, string>>} the client's own catalogues, by language */
const CATALOGUE = {
  en: (await import(pathToFileURL(path.join(LOCALES, "en.js")).href)).default,
  "zh-CN": (await import(pathToFileURL(path.join(LOCALES, "zh-CN.js")).href)).default,
};

/**
 * A catalogue message with its parameters, as the page shows it.
 * @param {"en" | "zh-CN"} lang
 * @param {string} key
 * @param {Record<string, string | number>} [params]
 */
function message(lang, key, params = {}) {
  const text = CATALOGUE[lang][key];
  if (text === undefined) throw new Error(`no message ${key} in ${lang}`);
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? `{${name}}`));
}

const PHONE = { width: 390, height: 844 };
const DESK = { width: 1280, height: 900 };

/** @param {number} n */
const pad = (n) => String(n).padStart(2, "0");

/**
 * The next five-minute mark at least `minutes` ahead, local time, as a datetime-local input
 * takes it (its step is five minutes). Inside the invitations' window (30 minutes before the
 * slot by default), so the patients' codes work at once.
 * @param {number} minutes
 */
function soon(minutes) {
  const d = new Date(Date.now() + minutes * 60_000);
  d.setMinutes(Math.ceil(d.getMinutes() / 5) * 5, 0, 0);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/**
 * A one-page PDF whose page shows `line` (a lab report a viewer can render).
 * @param {string} line ASCII, no parentheses or backslashes
 */
function onePagePdf(line) {
  const content = `BT /F1 18 Tf 30 100 Td (${line}) Tj ET`;
  const objects = [
    "<< /Type /Catalog /Pages 2 0 R >>",
    "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
    `<< /Length ${content.length} >>\nstream\n${content}\nendstream`,
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
  ];
  let out = "%PDF-1.4\n";
  const offsets = objects.map((o, i) => {
    const at = out.length;
    out += `${i + 1} 0 obj\n${o}\nendobj\n`;
    return at;
  });
  const xref = out.length;
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const at of offsets) out += `${String(at).padStart(10, "0")} 00000 n \n`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return out;
}

/**
 * The whole workflow in one engine.
 * @param {Harness} h
 * @param {"chromium" | "firefox"} engine
 */
export async function workflowScenario(h, engine) {
  const S = `workflow-${engine}`;
  const { timeout } = h;
  // Both languages in each engine: the doctor and the first patient in one, the specialist and
  // the second patient in the other, swapped between the engines.
  /** @type {{doctor: "en" | "zh-CN", specialist: "en" | "zh-CN"}} */
  const lang = engine === "firefox" ? { doctor: "zh-CN", specialist: "en" } : { doctor: "en", specialist: "zh-CN" };
  const browserLocale = (/** @type {"en" | "zh-CN"} */ l) => (l === "en" ? "en-GB" : "zh-CN");
  /** @type {import("puppeteer-core").Browser | null} */
  let firefox = null;
  /** @type {string[]} what Firefox's pages threw or logged that they must not */
  const problems = [];
  /** @type {Map<string, Participant>} */
  const open = new Map();
  const reason = `Palpitations and a faint (${engine}) ${Date.now()}`;
  const medication = `Metoprolol succinate (${engine})`;
  const labReport = `troponin-${engine}.pdf`;
  /** @type {{room: string, codes: string[]}} */
  const made = { room: "", codes: [] };

  /**
   * A participant's page in the scenario's engine.
   * @param {string} who
   * @param {"en" | "zh-CN"} language
   * @param {{width: number, height: number}} viewport
   */
  const newPage = async (who, language, viewport) => {
    const name = `wf-${engine}-${who}`;
    /** @type {Participant} */
    let p;
    if (engine === "firefox") {
      if (!firefox) throw new Error("Firefox did not start");
      p = await firefoxParticipant(firefox, { who: name, locale: browserLocale(language), viewport, base: h.base, problems });
    } else {
      if (!h.browser) throw new Error("no Chromium");
      const context = await h.newContext(h.browser, viewport, browserLocale(language));
      await context.grantPermissions(["camera", "microphone"], { origin: h.base });
      await context.addInitScript(instrumentPage);
      const page = await context.newPage();
      h.watchPage(page, name);
      h.pages.set(name, page);
      p = new Participant(name, "chromium", page);
    }
    open.set(who, p);
    return p;
  };

  /**
   * @param {string} who
   * @returns {Participant}
   */
  const page = (who) => {
    const p = open.get(who);
    if (!p) throw new Error(`${who}'s page is not open (an earlier step failed)`);
    return p;
  };

  /** @param {string} label */
  const snapAll = async (label) => {
    for (const [who, p] of open) if (!p.isClosed()) await p.screenshot(path.join(h.out, `workflow-${engine}-${label}-${who}.png`));
  };

  /** axe-core on every open page as it is now: no serious or critical violation, either engine. */
  const axeAll = async () => {
    /** @type {string[]} */
    const found = [];
    for (const [who, p] of open) {
      if (p.isClosed()) continue;
      for (const v of await axeViolations(/** @type {any} */ (p.page))) found.push(`${who}: ${v.id} (${v.impact}) at ${v.targets.join(", ")}`);
    }
    assert.deepEqual(found, [], "accessibility (axe-core)");
  };

  /**
   * A check of the scenario: its pages are photographed after it (the step's screenshots) and
   * checked with axe-core, and photographed on failure as well.
   * @param {string} label file-name part of its screenshots
   * @param {string} name
   * @param {() => Promise<void>} fn
   */
  const step = (label, name, fn) =>
    h.check(`workflow (${engine}): ${name}`, { scenario: S }, async () => {
      try {
        await fn();
        await snapAll(label);
        await axeAll();
      } catch (err) {
        await snapAll(`fail-${label}`);
        throw err;
      }
    });

  /**
   * The id of the consultation whose card in the console bears `title`, once it is listed.
   * @param {Participant} p
   * @param {string} title
   * @returns {Promise<string>}
   */
  const roomTitled = async (p, title) => {
    const find = (/** @type {string} */ t) =>
      /** @type {HTMLElement | undefined} */ ([...document.querySelectorAll("li.room-card")].find((c) => c.querySelector("h3")?.textContent === t))?.dataset.roomId ?? "";
    // A non-empty answer is truthy: the wait ends.
    await p.waitFor(/** @type {any} */ (find), title, timeout);
    return p.evaluateWith(find, title);
  };

  /**
   * Signs in to the console.
   * @param {Participant} p
   * @param {string} username
   * @param {"en" | "zh-CN"} language
   */
  const signIn = async (p, username, language) => {
    await p.goto(`${h.base}/`);
    assert.equal(await p.evaluate(() => document.documentElement.lang), language, `${p.who}: the console's language follows the browser's`);
    await p.fill("#username", username);
    await p.fill("#password", h.password);
    await p.click("#login-button");
    await p.waitForSelector('body[data-state="signed-in"]', timeout, "attached");
  };

  /**
   * A patient types their code on /code and joins with their name: they wait.
   * @param {Participant} p
   * @param {string} code as the console shows it ("123 456 789")
   * @param {string} name
   */
  const patientArrives = async (p, code, name) => {
    await p.goto(`${h.base}/code`);
    await p.fill("#code-input", code);
    await p.click("#code-submit");
    await p.waitFor(() => location.pathname === "/join", undefined, timeout);
    await p.waitForState("prejoin");
    await p.fill("#display-name", name);
    await p.click("#join-button");
    await p.waitForState("waiting");
  };

  /**
   * Waits until the patient's place in line reads as the catalogue says.
   * @param {Participant} p
   * @param {"en" | "zh-CN"} language
   * @param {number} n
   * @param {number} of
   */
  const waitForPlace = async (p, language, n, of) => {
    const want = message(language, "waiting.position", { n, of });
    await p.waitFor((w) => document.querySelector("#waiting-position")?.textContent === w, want, timeout).catch(async () => {
      throw new Error(`${p.who}: place in line "${await p.text("#waiting-position")}", not "${want}"`);
    });
  };

  /**
   * Signs and issues the record whose form is open, with the account's password.
   * @param {Participant} p
   * @param {string} submit the form's submit button
   */
  const signWithPassword = async (p, submit) => {
    await p.click(submit);
    await p.waitForSelector("#sign-dialog", timeout);
    await p.fill("#sign-password", h.password);
    await p.click("#sign-ok");
    await p.waitForSelector("#sign-dialog", timeout, "hidden");
  };

  /**
   * Every remote picture on these pages plays: each video this page receives (by its decoder's
   * count, from the page's own peer connections, the same in both engines) keeps decoding new
   * frames. A frozen picture with all the tiles there is what a participant whose video the
   * server paused sees.
   * @param {Participant[]} pages
   */
  const picturesPlay = async (pages) => {
    for (const p of pages) {
      // A Firefox page behind others is throttled: in front, as the person looking at it.
      if (p.engine === "firefox") await p.front();
      const decoded = async () => {
        /** @type {Record<string, number>} */
        const out = {};
        const pcs = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__hzPeerConnections ?? []);
        for (const [i, pc] of pcs.entries()) {
          if (pc.connectionState === "closed") continue;
          (await pc.getStats()).forEach((r) => {
            if (r.type === "inbound-rtp" && r.kind === "video" && (r.packetsReceived ?? 0) > 0) out[`${i}/${r.id}`] = r.framesDecoded ?? 0;
          });
        }
        return out;
      };
      // Both remote videos have begun to arrive (the last one in has just joined).
      await p.waitFor(
        async () => {
          const pcs = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__hzPeerConnections ?? []);
          let arriving = 0;
          for (const pc of pcs) {
            if (pc.connectionState === "closed") continue;
            (await pc.getStats()).forEach((r) => {
              if (r.type === "inbound-rtp" && r.kind === "video" && (r.framesDecoded ?? 0) > 0) arriving += 1;
            });
          }
          return arriving >= 2;
        },
        undefined,
        timeout,
      );
      const before = await p.evaluateWith(decoded, undefined);
      await p.waitFor(
        async (/** @type {Record<string, number>} */ b) => {
          const pcs = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__hzPeerConnections ?? []);
          /** @type {Record<string, number>} */
          const now = {};
          for (const [i, pc] of pcs.entries()) {
            if (pc.connectionState === "closed") continue;
            (await pc.getStats()).forEach((r) => {
              if (r.type === "inbound-rtp" && r.kind === "video") now[`${i}/${r.id}`] = r.framesDecoded ?? 0;
            });
          }
          return Object.entries(b).every(([id, n]) => (now[id] ?? 0) >= n + 20);
        },
        before,
        timeout,
      );
    }
  };

  try {
    await step("01-request", "the township doctor signs in and sends an urgent request to the county's cardiology, with a time a few minutes ahead", async () => {
      if (engine === "firefox") firefox = await launchFirefox();
      const doctor = await newPage("doctor", lang.doctor, DESK);
      await signIn(doctor, h.doctor, lang.doctor);
      await doctor.waitForSelector('#referrals[data-live="connected"]', timeout, "attached");
      await doctor.click('#referrals button[data-i18n="referral.new"]');
      const form = "#referral-form";
      await doctor.waitForSelector(form, timeout);
      // The department by its name (data, the same in both languages).
      const department = await doctor.labelled(form, "referral.department");
      await doctor.waitFor((sel) => [...(document.querySelector(sel)?.querySelectorAll("option") ?? [])].some((o) => o.textContent?.includes("心血管内科")), department, timeout);
      const value = await doctor.evaluateWith(
        (sel) => [.../** @type {HTMLSelectElement} */ (document.querySelector(sel)).options].find((o) => o.textContent?.includes("心血管内科"))?.value ?? "",
        department,
      );
      assert.ok(value, "the county's cardiology is offered");
      await doctor.select(department, value);
      await doctor.fill(await doctor.labelled(form, "console.patient_ref"), `P-WF-${engine}`);
      await doctor.fill(await doctor.labelled(form, "referral.reason"), reason);
      await doctor.fill(await doctor.labelled(form, "referral.question"), "Holter first, or admit for monitoring?");
      await doctor.select(await doctor.labelled(form, "referral.urgency"), "urgent");
      await doctor.fill(`${form} .time-row input[type="datetime-local"]`, soon(10));
      // To another hospital, with a document: the doctor attests that the patient agreed to
      // the words shown (the form sends no document without it).
      await doctor.waitForSelector("#referral-consent .consent-words", timeout);
      await doctor.click("#referral-consent-agreed");
      // The lab report goes with the request (chosen as a person would, through the input).
      await doctor.evaluateWith(
        (a) => {
          const input = /** @type {HTMLInputElement} */ (document.querySelector(a.sel));
          const dt = new DataTransfer();
          dt.items.add(new File([a.text], a.name, { type: "application/pdf" }));
          input.files = dt.files;
          input.dispatchEvent(new Event("change", { bubbles: true }));
        },
        { sel: "#referral-files", name: labReport, text: onePagePdf("Troponin I 0.02 ng/mL") },
      );
      await doctor.click(`${form} button[data-i18n="referral.send"]`);
      const sent = await doctor.withText('#referral-panel li.referral-item[data-state="requested"]', reason, "data-referral-id", timeout);
      assert.equal(await doctor.evaluateWith((s) => document.querySelector(s)?.getAttribute("data-urgency"), sent), "urgent");
      await doctor.waitFor(() => document.querySelector("#referral-notice")?.getAttribute("data-i18n") === "referral.docs.sent_with", undefined, timeout);
    });

    await step("02-viewed", "a county cardiologist opens the request from the department's inbox and reads the lab report in the console's viewer before answering", async () => {
      const specialist = await newPage("specialist", lang.specialist, DESK);
      await signIn(specialist, h.specialist, lang.specialist);
      await specialist.click("#referral-tab-department");
      const item = await specialist.withText("#referral-panel li.referral-item", reason, "data-referral-id", timeout);
      assert.equal(await specialist.evaluateWith((s) => document.querySelector(s)?.getAttribute("data-urgency"), item), "urgent");
      await specialist.click(`${item} button`);
      await specialist.waitForSelector('#referral-dialog[data-state="requested"]', timeout);
      // The case's lab report is there to read before answering.
      const report = await specialist.withText('#referral-documents li.referral-document[data-source="upload"]', labReport, "data-document-id", timeout);
      await specialist.waitForSelector("#referral-documents button.attachment-save", timeout);
      assert.equal(await specialist.count("#referral-documents button.attachment-remove"), 0, "only the requester removes");
      // Viewed inline: its page rendered by the server, in the viewer the room has.
      await specialist.click(`${report} button.attachment-view`);
      const viewer = "#attachment-viewer[open] .viewer";
      await specialist.waitForSelector(`${viewer}[data-loaded-page="1"]`, timeout);
      const shown = await specialist.evaluateWith((sel) => {
        const img = /** @type {HTMLImageElement | null} */ (document.querySelector(`${sel} img.viewer-img`));
        return { width: img?.naturalWidth ?? 0, page: document.querySelector(`${sel} .viewer-page`)?.textContent ?? "", title: document.querySelector(`${sel} .viewer-title`)?.textContent ?? "" };
      }, viewer);
      assert.ok(shown.width > 0, "the page image loaded");
      assert.equal(shown.page, message(lang.specialist, "viewer.page", { page: 1, pages: 1 }));
      assert.equal(shown.title, labReport);
      // Not a room: nothing to present, follow or draw on.
      assert.equal(await specialist.count(`${viewer} :is(.viewer-present, .viewer-follow, .viewer-tools):not([hidden])`), 0, "no live controls outside a room");
      // Zoom with the mouse, then with the keyboard on the page (the stage has the focus).
      await specialist.click(`${viewer} .viewer-zoom-in`);
      await specialist.waitForSelector(`${viewer}[data-zoom="1.25"]`, timeout, "attached");
      await specialist.evaluateWith((sel) => /** @type {HTMLElement} */ (document.querySelector(`${sel} .viewer-stage`))?.focus(), viewer);
      await specialist.press("-");
      await specialist.waitForSelector(`${viewer}[data-zoom="1"]`, timeout, "attached");
      // Left open: the step's screenshot and axe check see the viewer.
    });

    await step("02-accepted", "the cardiologist closes the viewer with Escape and accepts the proposed time; the doctor's console shows it scheduled", async () => {
      const specialist = page("specialist");
      await specialist.press("Escape");
      await specialist.waitFor(() => !document.querySelector("#attachment-viewer")?.hasAttribute("open"), undefined, timeout);
      // The focus is back on the button that opened it, in the request's dialog.
      await specialist.waitFor(() => document.activeElement?.classList.contains("attachment-view") === true, undefined, timeout);
      await specialist.waitForSelector('#referral-dialog[data-state="requested"]', timeout);
      await specialist.click('#referral-dialog button[data-i18n="referral.accept_time"]');
      await specialist.waitForSelector('#referral-dialog[data-state="scheduled"]', timeout);
      // Scheduled: the report is in the consultation's room.
      await specialist.waitForSelector('#referral-documents li.referral-document[data-in-room="true"]', timeout);
      // The doctor did nothing: the live notification brings the change.
      const doctor = page("doctor");
      await doctor.waitFor(
        (r) => [...document.querySelectorAll('#referral-panel li.referral-item[data-state="scheduled"]')].some((n) => n.textContent?.includes(r)),
        reason,
        timeout,
      );
    });

    await step("02-consent", "the doctor records that the patient withdrew their consent to sharing: the cardiologist's console says so at once and the request withholds the lab report, named nowhere; the doctor records the consent again, and the report is back", async () => {
      const doctor = page("doctor");
      const specialist = page("specialist");
      // The cardiologist's dialog is still open from accepting: back to the list first.
      await specialist.press("Escape");
      await specialist.waitFor(() => !document.querySelector("#referral-dialog")?.hasAttribute("open"), undefined, timeout);
      const mine = await doctor.withText("#referral-panel li.referral-item", reason, "data-referral-id", timeout);
      await doctor.click(`${mine} button`);
      await doctor.waitForSelector('#referral-dialog[open] #referral-consent-state[data-in-force="true"]', timeout);
      await doctor.click("#referral-consent-withdraw");
      await doctor.waitForSelector('#referral-dialog[open] #referral-consent-state[data-in-force="false"]', timeout);
      // The doctor still reads the report.
      await doctor.withText("#referral-documents li.referral-document", labReport, "data-document-id", timeout);
      const notice = (/** @type {string} */ key) => document.querySelector("#referral-notice")?.getAttribute("data-i18n") === key;
      // The cardiologist is told at once, naming the request, in their language.
      await specialist.waitFor(notice, "referral.consent_withdrawn_named", timeout);
      // Reading the request again, from their own inbox now that they took it: how many are
      // withheld, and no name.
      await specialist.click("#referral-tab-inbox");
      const theirs = await specialist.withText("#referral-panel li.referral-item", reason, "data-referral-id", timeout);
      await specialist.click(`${theirs} button`);
      await specialist.waitForSelector('#referral-dialog[open] #referral-consent-state[data-in-force="false"][data-withheld="1"]', timeout);
      assert.equal(await specialist.count("#referral-documents li.referral-document"), 0, "no document listed");
      assert.ok(!((await specialist.text("#referral-dialog")) ?? "").includes(labReport), "the report is named nowhere");
      // The patient agrees again: the box first (the button says so without it), then recorded.
      await doctor.click("#referral-consent-give");
      await doctor.waitFor(
        () => document.querySelector('#referral-consent-state [role="status"]')?.getAttribute("data-i18n") === "referral.consent.confirm_first",
        undefined,
        timeout,
      );
      await doctor.click("#referral-consent-again");
      await doctor.click("#referral-consent-give");
      await doctor.waitForSelector('#referral-dialog[open] #referral-consent-state[data-in-force="true"]', timeout);
      await specialist.waitFor(notice, "referral.consent_given_named", timeout);
      await specialist.press("Escape");
      await specialist.waitFor(() => !document.querySelector("#referral-dialog")?.hasAttribute("open"), undefined, timeout);
      await specialist.click(`${theirs} button`);
      await specialist.waitForSelector('#referral-dialog[open] #referral-consent-state[data-in-force="true"]', timeout);
      await specialist.withText("#referral-documents li.referral-document", labReport, "data-document-id", timeout);
      // Both back to their lists for what follows.
      for (const p of [doctor, specialist]) {
        await p.press("Escape");
        await p.waitFor(() => !document.querySelector("#referral-dialog")?.hasAttribute("open"), undefined, timeout);
      }
    });

    await step("03-links", "the doctor makes two patient links in the consultation's card and reads their short codes; the QR code shows", async () => {
      const doctor = page("doctor");
      // The accepted request opened a consultation titled with its reason.
      made.room = await roomTitled(doctor, reason);
      assert.ok(made.room, "the consultation's card names its room");
      const card = `li.room-card[data-room-id="${made.room}"]`;
      for (let i = 1; i <= 2; i++) {
        await doctor.click(`${card} button[data-role="patient"]`);
        await doctor.waitFor((a) => document.querySelectorAll(`${a.card} li.invite[data-state="active"] .invite-code`).length === a.i, { card, i }, timeout);
      }
      made.codes = await doctor.evaluateWith(
        (c) => [...document.querySelectorAll(`${c} li.invite[data-state="active"] .invite-code`)].map((n) => n.textContent ?? "").reverse(),
        card,
      );
      assert.equal(made.codes.length, 2);
      for (const code of made.codes) assert.match(code, /^\d{3} \d{3} \d{3}$/, "nine digits in groups of three");
      assert.equal(
        await doctor.text(`${card} li.invite[data-state="active"] .invite-state`),
        message(lang.doctor, "invites.state.active"),
        "the link's state, in the doctor's language",
      );
      // A link's QR code, fetched with the session, for a phone's camera.
      await doctor.click(`${card} li.invite:first-child .invite-tools button[aria-expanded]`);
      await doctor.waitFor(
        (c) => {
          const img = /** @type {HTMLImageElement | null} */ (document.querySelector(`${c} li.invite .invite-qr:not([hidden])`));
          return Boolean(img && img.complete && img.naturalWidth > 0);
        },
        card,
        timeout,
      );
    });

    await step("04-waiting", "two patients on phones type their codes and wait: the first is number 1, the second number 2", async () => {
      const first = await newPage("patient1", lang.doctor, PHONE);
      await patientArrives(first, made.codes[0], lang.doctor === "zh-CN" ? "王秀英" : "Wang Xiuying");
      await waitForPlace(first, lang.doctor, 1, 1);
      const second = await newPage("patient2", lang.specialist, PHONE);
      await patientArrives(second, made.codes[1], lang.specialist === "zh-CN" ? "赵建国" : "Zhao Jianguo");
      await waitForPlace(second, lang.specialist, 2, 2);
      await waitForPlace(first, lang.doctor, 1, 2);
      assert.equal(await first.count("#tiles .tile"), 0, "nothing of the room while waiting");
      // Each runs the network check over the media path while waiting (a peer connection of
      // its own to the server, forwarded to nobody but back to itself) and reads its figures,
      // both directions, and advice.
      for (const [p, l] of /** @type {const} */ ([[first, lang.doctor], [second, lang.specialist]])) {
        await p.waitForSelector('#waiting-network[data-path="connected"]', timeout);
        const figures = (await p.text("#waiting-network .net-figures")) ?? "";
        assert.match(
          figures,
          l === "zh-CN"
            ? /^往返 \d+\s毫秒 · 上行 (至少 )?\d+(\.\d)?\s(k|M)bit\/s，丢包 \d+\.\d% · 下行 至少 \d+(\.\d)?\s(k|M)bit\/s，丢包 \d+\.\d%$/
            : /^Round trip \d+\sms · upload (at least )?\d+(\.\d)?\s(k|M)bit\/s, loss \d+\.\d\s% · download at least \d+(\.\d)?\s(k|M)bit\/s, loss \d+\.\d\s%$/,
        );
        // The echo came back: the download was measured and judged, and the overall word is
        // the weaker direction's.
        const judged = await p.evaluate(() => {
          const n = /** @type {HTMLElement} */ (document.querySelector("#waiting-network"));
          return { all: n.dataset.quality, up: n.dataset.upQuality, down: n.dataset.downQuality };
        });
        const rank = ["good", "fair", "poor"];
        assert.ok(rank.includes(judged.down ?? ""), `the download judged: ${JSON.stringify(judged)}`);
        assert.equal(judged.all, rank[Math.max(rank.indexOf(judged.up ?? ""), rank.indexOf(judged.down ?? ""))], JSON.stringify(judged));
        const downKbps = Number(/(?:download at least|下行 至少) (\d+(?:\.\d)?)\s(k|M)bit/.exec(figures)?.[1]);
        assert.ok(downKbps > 0, `something came back down: ${figures}`);
        assert.ok(((await p.text("#waiting-network .net-advice")) ?? "").length > 0, "advice in words");
      }
      // The console shows both codes used.
      const doctor = page("doctor");
      await doctor.click(`li.room-card[data-room-id="${made.room}"] .invitations > summary`);
      await doctor.click(`li.room-card[data-room-id="${made.room}"] .invitations > summary`);
      await doctor.waitFor(
        (c) => document.querySelectorAll(`${c} li.invite[data-state="used_up"] .invite-used-by li`).length === 2,
        `li.room-card[data-room-id="${made.room}"]`,
        timeout,
      );
    });

    await step("05-admitted", "the doctor enters from the console and admits the next patient; the second moves up; the specialist enters", async () => {
      const doctor = page("doctor");
      await doctor.click(`li.room-card[data-room-id="${made.room}"] button[data-i18n="console.enter"]`);
      await doctor.waitFor(() => location.pathname === "/join", undefined, timeout);
      await doctor.waitForState("prejoin");
      await doctor.click("#join-button");
      await doctor.waitForState("in-room");
      await doctor.click('.tab[data-tab="queue-panel"]');
      await doctor.waitFor(() => document.querySelectorAll("#queue-panel .queue-item").length === 2, undefined, timeout);
      // The clinician sees each one's network check with its figures, the download's included.
      await doctor.waitFor(() => document.querySelectorAll('#queue-panel .queue-precall[data-media-path="connected"][data-down-kbps][data-down-loss-permille]').length === 2, undefined, timeout);
      await doctor.click("#queue-panel .queue-admit-next");
      const first = page("patient1");
      await first.waitForState("in-room");
      await waitForPlace(page("patient2"), lang.specialist, 1, 1);
      // Let in, the patient is asked for consent first; this one decides later.
      await first.waitForSelector("#consent-dialog[open]", timeout, "attached");
      await first.click("#consent-done");
      const specialist = page("specialist");
      await specialist.goto(`${h.base}/`);
      await specialist.waitForSelector('body[data-state="signed-in"]', timeout, "attached");
      await specialist.click(`li.room-card[data-room-id="${made.room}"] button[data-i18n="console.enter"]`);
      await specialist.waitFor(() => location.pathname === "/join", undefined, timeout);
      await specialist.waitForState("prejoin");
      await specialist.click("#join-button");
      await specialist.waitForState("in-room");
      for (const p of [doctor, first, specialist]) await p.waitFor(() => document.querySelectorAll("#tiles .tile").length === 3, undefined, timeout);
      await picturesPlay([doctor, first, specialist]);
      // The request's lab report is among the room's documents for the clinicians, not the patient.
      const hasReport = (/** @type {string} */ name) => [...document.querySelectorAll(".doc-list .doc-item")].some((n) => n.textContent?.includes(name));
      await specialist.waitFor(hasReport, labReport, timeout);
      assert.equal(await first.evaluateWith(hasReport, labReport), false, "clinicians-only documents stay out of the patient's list");
    });

    await step("06-huddle", "the clinicians confer privately: the patient's page says so; back to the patient clears it", async () => {
      const [doctor, first, specialist] = [page("doctor"), page("patient1"), page("specialist")];
      await doctor.click("#huddle-button");
      await first.waitForSelector('#moderation-banner[data-huddle="true"]', timeout);
      assert.equal((await first.text("#moderation-banner")).includes(message(lang.doctor, "moderation.banner.huddle")), true, "the patient is told, in their language");
      assert.equal(await first.evaluate(() => /** @type {HTMLElement | null} */ (document.querySelector("#huddle-button"))?.offsetParent ?? null), null, "the patient cannot start or end one");
      await specialist.waitForSelector('#moderation-banner[data-huddle="true"]', timeout);
      await snapAll("06-huddle-on");
      await specialist.click("#huddle-button");
      for (const p of [first, doctor, specialist]) await p.waitForSelector("#moderation-banner", timeout, "hidden");
    });

    await step("07-signed", "the specialist drafts a diagnosis report, completes it, and signs it and a prescription with their password; the doctor's day view lists the draft until it is signed; the patient sees both once signed, by them", async () => {
      const [first, specialist] = [page("patient1"), page("specialist")];
      await specialist.click('.tab[data-tab="records-panel"]');
      await specialist.click('.record-forms summary[data-i18n="records.report"]');
      await specialist.fill('.report-form textarea[name="findings"]', "Holter: paroxysmal AF");
      await specialist.fill('.report-form textarea[name="impression"]', "阵发性心房颤动 (paroxysmal atrial fibrillation)");
      await specialist.fill('.report-form textarea[name="recommendation"]', "Rate control; anticoagulation per CHA2DS2-VASc");
      // Saved as a draft first, then completed: the care team's until signed.
      const draft = '.record-item[data-kind="diagnosis_report"][data-status="draft"]';
      await specialist.click(".report-form .record-draft");
      await specialist.waitForSelector(`${draft} button[data-action="edit"]`, timeout);
      const findings = () => specialist.evaluate(() => /** @type {HTMLTextAreaElement | null} */ (document.querySelector(".report-form textarea[name=findings]"))?.value ?? null);
      assert.equal(await findings(), "", "the form is emptied once saved");
      await specialist.click(`${draft} button[data-action="edit"]`);
      await specialist.waitForSelector(".report-form .record-editing", timeout);
      assert.equal(await findings(), "Holter: paroxysmal AF", "the draft's text back in its form");
      await specialist.fill('.report-form textarea[name="findings"]', "Holter: paroxysmal AF, longest run 40 s");
      await specialist.click(".report-form .record-draft");
      await specialist.waitFor((sel) => document.querySelector(sel)?.textContent?.includes("longest run 40 s") ?? false, `${draft} .record-body`, timeout);
      // The doctor's console, in another tab: the day view lists the draft left to sign.
      const desk = await newPage("doctor-desk", lang.doctor, DESK);
      await signIn(desk, h.doctor, lang.doctor);
      const draftId = await specialist.evaluate(() => /** @type {HTMLElement | null} */ (document.querySelector('.record-item[data-kind="diagnosis_report"][data-status="draft"]'))?.dataset.recordId ?? "");
      assert.ok(draftId, "the draft's id on the room page");
      await desk.waitForSelector(`#day-drafts li.draft-item[data-record-id="${draftId}"]`, timeout);
      await snapAll("07-draft");
      assert.equal(await first.count('.record-item[data-kind="diagnosis_report"]'), 0, "the patient sees no draft");
      // Signed from the list, with the password.
      await signWithPassword(specialist, `${draft} button[data-action="issue"]`);
      await specialist.waitForSelector('.record-item[data-kind="diagnosis_report"][data-status="issued"]', timeout, "attached");
      assert.equal(await specialist.count(`${draft}`), 0, "no draft left");
      // Signed, it leaves the doctor's list at once (a live event), with nothing else to sign.
      await desk.waitForSelector("#day-drafts", timeout, "hidden");
      await desk.close();
      await specialist.click('.record-forms summary[data-i18n="records.prescription"]');
      await specialist.fill('.rx-form input[name="medication"]', medication);
      await specialist.fill('.rx-form input[name="dose"]', "47.5 mg");
      await specialist.fill('.rx-form input[name="frequency"]', "once daily");
      await specialist.fill('.rx-form input[name="duration"]', "4 weeks");
      await signWithPassword(specialist, ".rx-form button[type=submit]");
      for (const kind of ["diagnosis_report", "prescription"]) {
        await first.waitForSelector(`.record-item[data-kind="${kind}"][data-status="issued"]`, timeout, "attached");
      }
      await first.click('.tab[data-tab="records-panel"]');
      const signature = await first.text('.record-item[data-kind="prescription"] .record-signature');
      const specialistName = await specialist.evaluate(() => document.querySelector(".tile-local .tile-name")?.textContent ?? "");
      assert.ok(specialistName && signature.includes(specialistName.split(" · ")[0].trim()), `signed by the specialist: "${signature}" (${specialistName})`);
      // Half a minute on, every picture still plays.
      await picturesPlay([page("doctor"), page("patient1"), page("specialist")]);
    });

    await step("08-ended", "the doctor ends the consultation: the patient's page says so and leads to the outcome", async () => {
      const [doctor, first] = [page("doctor"), page("patient1")];
      await doctor.click("#end-button");
      await doctor.click("#end-confirm");
      await first.waitForState("ended");
      await first.waitForSelector("#status-outcome", timeout);
      assert.equal(await first.text("#status-outcome"), message(lang.doctor, "join.end.outcome"));
      // The one still waiting is told as well.
      await page("patient2").waitFor(() => document.body.dataset.state === "ended" || document.body.dataset.state === "error", undefined, timeout);
    });

    await step("09-pharmacist", "a pharmacist sees who prescribed and approves the prescription", async () => {
      if (!h.pharmacist) throw new Error("no pharmacist account (HUIZHEN_PHARMACIST)");
      const pharmacist = await newPage("pharmacist", "en", DESK);
      await signIn(pharmacist, h.pharmacist, "en");
      const item = await pharmacist.withText(".rx-item", medication, "data-record-id", timeout);
      assert.ok((await pharmacist.text(`${item} .record-signature`)).length > 0, "the queue says who signed it");
      await pharmacist.click(`${item} button[data-action="review"]`);
      // Approved: it moves to the ones to dispense.
      await pharmacist.waitFor(
        (m) => [...document.querySelectorAll(".rx-item")].some((n) => n.textContent?.includes(m) && n.querySelector('button[data-action="dispense"]')),
        medication,
        timeout,
      );
    });

    await step("10-outcome", "the patient opens the outcome: the report, and the prescription approved by the pharmacy, signed by the specialist", async () => {
      const first = page("patient1");
      await first.click("#status-outcome");
      await first.waitFor(() => location.pathname === "/outcome", undefined, timeout);
      await first.waitFor(() => document.body.dataset.state === "ready", undefined, timeout);
      assert.match(await first.text("#reports"), /阵发性心房颤动/);
      assert.ok((await first.text("#prescriptions")).includes(medication), "the prescription is listed");
      assert.equal(await first.count("#prescriptions .status-issued"), 0, "no longer only issued");
      assert.equal(await first.count("#prescriptions .status-reviewed"), 1, "the pharmacy approved it");
      assert.equal(await first.evaluate(() => document.documentElement.lang), lang.doctor);
    });

    await step("11-follow-up", "the doctor books a follow-up visit from the console: its card shows the time, and its patient link opens only shortly before; moved, the waiting patient's page shows the new time", async () => {
      const doctor = page("doctor");
      await doctor.goto(`${h.base}/`);
      await doctor.waitForSelector('body[data-state="signed-in"]', timeout, "attached");
      const title = `Follow-up (${engine}) ${Date.now()}`;
      const d = new Date(Date.now() + 2 * 86_400_000);
      const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
      await doctor.fill("#room-title-input", title);
      await doctor.fill("#room-when-input", `${day}T10:00`);
      await doctor.fill("#room-minutes-input", "20");
      await doctor.click("#create-button");
      const room = await roomTitled(doctor, title);
      const card = `li.room-card[data-room-id="${room}"]`;
      const booked = message(lang.doctor, "console.booked", { at: "AT", minutes: 20 }).split("AT")[0];
      assert.ok((await doctor.text(card)).includes(booked), `the card says it is booked (${booked})`);
      await doctor.click(`${card} button[data-role="patient"]`);
      await doctor.waitForSelector(`${card} li.invite[data-state="not_yet"]`, timeout);
      assert.equal(await doctor.text(`${card} li.invite .invite-state`), message(lang.doctor, "invites.state.not_yet"));
      // The patient opens the link days early: not open yet, and when it opens.
      const link = await doctor.evaluateWith(
        (c) => /** @type {HTMLInputElement | null} */ (document.querySelector(`${c} li.invite input[type="text"]`))?.value ?? "",
        card,
      );
      assert.ok(link.includes("/join"), `the card shows the link (${link})`);
      const early = await newPage("patient3", lang.doctor, PHONE);
      await early.goto(link);
      await early.waitFor(() => document.querySelector("#status-panel")?.getAttribute("data-error-code") === "invite_not_yet", undefined, timeout);
      const opensAt = Number(await early.evaluate(() => document.querySelector("#status-panel")?.getAttribute("data-opens-at")));
      assert.ok(opensAt > Date.now() / 1000, `it opens later (${opensAt})`);
      // The patient calls: the visit moves a day later, to 15:30 for 30 minutes; the card says so.
      const e = new Date(Date.now() + 3 * 86_400_000);
      const later = `${e.getFullYear()}-${pad(e.getMonth() + 1)}-${pad(e.getDate())}`;
      await doctor.click(`${card} details.reschedule > summary`);
      await doctor.fill(`${card} details.reschedule input[type="datetime-local"]`, `${later}T15:30`);
      await doctor.fill(`${card} details.reschedule input[type="number"]`, "30");
      await doctor.click(`${card} button.reschedule-move`);
      const movedStart = Math.floor(new Date(`${later}T15:30`).getTime() / 1000);
      await doctor.waitFor(
        (a) => {
          const hint = document.querySelector(`li.room-card[data-room-id="${a.room}"] > p.hint`);
          const params = JSON.parse(hint?.getAttribute("data-i18n-params") ?? "{}");
          return JSON.stringify(params).includes(String(a.at * 1000)) && JSON.stringify(params).includes('"minutes":30');
        },
        { room, at: movedStart },
        timeout,
      );
      // The page that waits learns the new time when it comes back to the screen (and once a
      // minute while it stays there); the link's window moved with the visit.
      await early.evaluate(() => {
        document.dispatchEvent(new Event("visibilitychange"));
      });
      const firstStart = Math.floor(new Date(`${day}T10:00`).getTime() / 1000);
      const moved = message(lang.doctor, "join.not_yet.moved", { time: "AT" }).split("AT")[0];
      await early.waitFor(
        (a) =>
          Number(document.querySelector("#status-panel")?.getAttribute("data-opens-at")) === a.at &&
          (document.querySelector("#status-detail")?.textContent ?? "").startsWith(a.moved),
        { at: opensAt + (movedStart - firstStart), moved },
        timeout,
      );
    });

    if (engine === "firefox") {
      await h.check("workflow (firefox): no page threw, tripped the CSP, or logged a token or SDP", {}, async () => {
        assert.deepEqual(problems, []);
      });
    }
  } finally {
    for (const [, p] of open) {
      h.pages.delete(p.who);
      await closeParticipant(p);
    }
    await /** @type {import("puppeteer-core").Browser | null} */ (firefox)?.close().catch(() => undefined);
  }
}
