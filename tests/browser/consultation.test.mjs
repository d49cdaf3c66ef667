// End-to-end browser test: a doctor, a patient and a specialist meet in a real consultation,
// each in their own Chromium context, against a real huizhen server. The doctor and the
// specialist (of another institution, put on the care team from the console's directory) enter
// as their signed-in accounts; the patient and an observer come with invite links. That
// consultation has no waiting room; a second scenario opens one with a waiting room from the
// console and takes two patients on phones through it (waiting, the clinic's message, admit,
// send back, admit again, a second clinician's late admit, decline, lock).
//
// Run through scripts/test-browser.sh, which starts the server in a private network namespace
// and passes:
//   HUIZHEN_URL          base URL of the server (default https://127.0.0.1:18443)
//   HUIZHEN_USER         a doctor account's username (default "doc")
//   HUIZHEN_PASSWORD     its password
//   HUIZHEN_SPECIALIST   a specialist account's username, same password, of another
//                        institution than the doctor's, with a title and the specialty
//                        "Cardiology" (default "spec")
//   HUIZHEN_PHARMACIST   a pharmacist account's username, same password (optional: without it
//                        the pharmacy check is skipped)
//   HUIZHEN_SUPERVISOR   a supervisor account's username, same password (optional, likewise)
//   HUIZHEN_TEST_OUTPUT  where screenshots go (default <repo>/test-output/browser)
//   CHROMIUM             the browser binary (default /usr/bin/chromium)
//   FIREFOX              Firefox ESR for firefox-scenario.mjs (default /usr/bin/firefox-esr);
//                        HUIZHEN_FIREFOX_UNAVAILABLE, set by the script, says why it cannot run
//   HUIZHEN_BROWSER_ONLY optional, for working on one part: "link" runs link-check-scenario.mjs
//                        alone, "referrals" referral-scenario.mjs then referral-steps-scenario.mjs,
//                        "firefox" firefox-scenario.mjs; "webhook" webhook-scenario.mjs
//                        around referral-scenario.mjs;
//                        "workflow" runs workflow-scenario.mjs
//                        alone (HUIZHEN_ENGINES=chromium or firefox: in that engine only);
//                        "a11y" runs a11y-scenario.mjs alone; "day" late-scenario.mjs then
//                        moderation-scenario.mjs; "turn" runs turn-scenario.mjs
//                        alone (it starts its own coturn and server: HUIZHEN_TEST_SERVER_BIN,
//                        HUIZHEN_TEST_MEDIA_ADDR and HUIZHEN_TEST_TURN_ADDR, from the script);
//                        "cap" runs cap-scenario.mjs alone (it puts huizhen-impair,
//                        HUIZHEN_TEST_IMPAIR_BIN from the script, on one page's path);
//                        "downcap" runs downcap-scenario.mjs alone (the network check's
//                        download behind huizhen-impair); "admin" runs admin-scenario.mjs
//                        alone (the administrators' console, and a password change)
//   HUIZHEN_CLIENT_DIR   optional: serve the web client from this directory instead of the
//                        copy embedded in the server binary (to try client changes without
//                        rebuilding the server; the embedded copy is what ships)
//
// The test prints one line per check and finishes with "N passed, N failed". There are no
// speed assertions: the machines running this are small and shared, so every wait is generous
// and only correctness is asserted.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, readFile, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { deflateSync } from "node:zlib";
import { chromium, request } from "playwright-core";
import { axeViolations } from "./a11y.mjs";
import { a11yScenario } from "./a11y-scenario.mjs";
import { adminScenario } from "./admin-scenario.mjs";
import { referralScenario } from "./referral-scenario.mjs";
import { referralStepsScenario } from "./referral-steps-scenario.mjs";
import { lateScenario } from "./late-scenario.mjs";
import { screenShareScenario } from "./screenshare-scenario.mjs";
import { moderationScenario } from "./moderation-scenario.mjs";
import { iceRestartScenario, recordPeerConnections } from "./icerestart-scenario.mjs";
import { timeZoneScenario } from "./timezone-scenario.mjs";
import { linkCheckScenario } from "./link-check-scenario.mjs";
import { downcapScenario } from "./downcap-scenario.mjs";
import { CHROMIUM, CHROMIUM_ARGS } from "./engines.mjs";
import { webhookCheck, webhookSetup } from "./webhook-scenario.mjs";
import { firefoxScenario } from "./firefox-scenario.mjs";
import { phoneScenario } from "./phone-scenario.mjs";
import { workflowScenario } from "./workflow-scenario.mjs";
import { brandingScenario } from "./branding-scenario.mjs";
import { turnScenario } from "./turn-scenario.mjs";
import { capScenario } from "./cap-scenario.mjs";
import { apiFrom, issuePrescriptions } from "./console-api.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.HUIZHEN_URL ?? "https://127.0.0.1:18443").replace(/\/$/, "");
const METRICS_URL = process.env.HUIZHEN_METRICS_URL ?? "http://127.0.0.1:18464/metrics";
const USERNAME = process.env.HUIZHEN_USER ?? "doc";
const PASSWORD = process.env.HUIZHEN_PASSWORD ?? "";
const PHARMACIST = process.env.HUIZHEN_PHARMACIST ?? "";
/** How many prescriptions a page of the pharmacist's queue shows (web-client/js/api.js). */
const PRESCRIPTIONS_PAGE = 25;
const SUPERVISOR = process.env.HUIZHEN_SUPERVISOR ?? "";
const SPECIALIST = process.env.HUIZHEN_SPECIALIST ?? "spec";
const OUT = process.env.HUIZHEN_TEST_OUTPUT ?? path.resolve(HERE, "../../test-output/browser");
const CLIENT_DIR = process.env.HUIZHEN_CLIENT_DIR ? path.resolve(process.env.HUIZHEN_CLIENT_DIR) : "";

/** Waits are long because the test machines are small; nothing here measures speed. */
const JOIN_TIMEOUT = 60_000;
const MEDIA_TIMEOUT = 90_000;
const EVENT_TIMEOUT = 30_000;
/** The whole run may not take longer than this, whatever hangs. */
const WATCHDOG_MS = 30 * 60_000;

// ---------------------------------------------------------------------------------------------
// A minimal harness: named checks, a summary line, screenshots on failure.

/** @type {{name: string, ok: boolean, skipped?: boolean}[]} */
const results = [];
/** The check under way, for the watchdog's report. */
let running = "";
/** The scenarios (dependent flows of checks) in which a check failed: the checks after it in
 * the same scenario depend on it. `true` names the main scenario. */
const brokenScenarios = new Set();
/** @type {Map<string, import("playwright-core").Page>} pages to photograph on failure */
const pages = new Map();
/** @type {import("playwright-core").WebSocketRoute[]} the doctor's signaling sockets, newest last */
const signalingRoutes = [];
/** @type {string[]} uncaught errors and suspicious console output from all pages */
const pageProblems = [];

/**
 * @param {string} name
 * @param {{scenario?: true | string}} opts scenario: part of a dependent flow, `true` for the
 *   main one, a name for another
 * @param {() => Promise<void>} fn
 */
async function check(name, opts, fn) {
  if (opts.scenario !== undefined && brokenScenarios.has(opts.scenario)) {
    results.push({ name, ok: false, skipped: true });
    console.log(`SKIP ${name} (an earlier step failed)`);
    return;
  }
  const started = Date.now();
  running = name;
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (err) {
    results.push({ name, ok: false });
    if (opts.scenario !== undefined) brokenScenarios.add(opts.scenario);
    console.log(`FAIL ${name}`);
    console.log(indent(err instanceof Error ? (err.stack ?? err.message) : String(err)));
    await snapAll(`fail-${slug(name)}`);
    await dumpStates();
  }
}

/** @param {string} text */
function indent(text) {
  return text
    .split("\n")
    .map((l) => `     ${l}`)
    .join("\n");
}

/** @param {string} text */
function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 60);
}

/**
 * @param {import("playwright-core").Page} page
 * @param {string} name
 */
async function snap(page, name) {
  try {
    await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true, timeout: 15_000 });
  } catch {
    // A page that is gone or hung cannot be photographed; the failure is reported elsewhere.
  }
}

/** @param {string} prefix */
async function snapAll(prefix) {
  for (const [who, page] of pages) if (!page.isClosed()) await snap(page, `${prefix}-${who}`);
}

async function dumpStates() {
  for (const [who, page] of pages) {
    if (page.isClosed()) continue;
    try {
      const info = await page.evaluate(() => ({
        state: document.body.dataset.state,
        status: document.querySelector("#status-text")?.textContent ?? "",
        tiles: [...document.querySelectorAll(".tile")].map((t) => /** @type {HTMLElement} */ (t).dataset.participantId),
      }));
      console.log(`     ${who}: ${JSON.stringify(info)}`);
    } catch {
      // ignore
    }
  }
}

function finish() {
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  if (pageProblems.length) {
    console.log("page problems:");
    for (const p of pageProblems) console.log(indent(p));
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 && results.length > 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// Page helpers. They rely only on the tile DOM contract documented in web-client/js/room-view.js
// and on `document.body.dataset.state`.

/**
 * @param {import("playwright-core").Page} page
 * @param {string} state
 * @param {number} [timeout]
 */
async function waitForState(page, state, timeout = JOIN_TIMEOUT) {
  await page.waitForFunction((s) => document.body.dataset.state === s, state, { timeout, polling: 200 });
}

/**
 * @param {import("playwright-core").Page} page
 * @param {number} count
 * @param {number} [timeout]
 */
async function waitForTileCount(page, count, timeout = JOIN_TIMEOUT) {
  await page.waitForFunction((n) => document.querySelectorAll("#tiles .tile").length === n, count, {
    timeout,
    polling: 200,
  });
}

/** @param {import("playwright-core").Page} page */
async function localId(page) {
  const id = await page.$eval("#tiles .tile.tile-local", (t) => /** @type {HTMLElement} */ (t).dataset.participantId);
  assert.ok(id, "the local tile has a participant id");
  return id;
}

/**
 * Decoded frame counts of every remote tile's video.
 * @param {import("playwright-core").Page} page
 * @returns {Promise<Record<string, number>>}
 */
async function remoteFrames(page) {
  return page.$$eval("#tiles .tile:not(.tile-local)", (tiles) =>
    Object.fromEntries(
      tiles.map((t) => {
        const video = t.querySelector("video");
        const frames = video ? video.getVideoPlaybackQuality().totalVideoFrames : -1;
        return [/** @type {HTMLElement} */ (t).dataset.participantId ?? "?", frames];
      }),
    ),
  );
}

/**
 * Waits until every remote video on the page decodes new frames: sampled, then sampled again
 * later, each count must have grown (and be above zero).
 * @param {import("playwright-core").Page} page
 * @param {number} expectedRemotes
 */
async function waitForPlayingRemotes(page, expectedRemotes) {
  const deadline = Date.now() + MEDIA_TIMEOUT;
  let last = "";
  while (Date.now() < deadline) {
    const first = await remoteFrames(page);
    await page.waitForTimeout(2000);
    const second = await remoteFrames(page);
    const ids = Object.keys(second);
    last = JSON.stringify({ first, second });
    if (ids.length === expectedRemotes && ids.every((id) => second[id] > 0 && second[id] > (first[id] ?? 0))) return;
  }
  throw new Error(`remote videos are not all playing: ${last}`);
}

/**
 * @param {import("playwright-core").Page} page
 * @param {string} participantId
 * @param {boolean} muted
 */
async function waitForMutedBadge(page, participantId, muted) {
  await page.waitForFunction(
    ([id, want]) => {
      const badge = document.querySelector(`#tiles .tile[data-participant-id="${id}"] .badge-muted`);
      return badge instanceof HTMLElement && badge.hidden === !want && (getComputedStyle(badge).display !== "none") === want;
    },
    /** @type {[string, boolean]} */ ([participantId, muted]),
    { timeout: EVENT_TIMEOUT, polling: 200 },
  );
}

/**
 * @param {import("playwright-core").Page} page
 * @param {string} participantId
 */
async function waitForTileGone(page, participantId) {
  await page.waitForFunction(
    (id) => document.querySelector(`#tiles .tile[data-participant-id="${id}"]`) === null,
    participantId,
    { timeout: EVENT_TIMEOUT, polling: 200 },
  );
}

/**
 * Opens a participant page in a fresh context, fills the display name and clicks Join.
 * @param {import("playwright-core").Browser} browser
 * @param {string} who
 * @param {string} url
 * @param {string | null} name null: a care-team seat's entry, which asks for no name
 * @param {{viewport?: {width: number, height: number}, routeSignaling?: boolean, recordSignaling?: string[], locale?: string, initScript?: () => void}} [opts]
 *   initScript: runs in the page before its own code (a test's instrument)
 *   locale: the browser's language (English by default; "zh-CN" gives the Chinese page)
 *   recordSignaling: every text frame the page receives on its WebSockets is appended here
 *   routeSignaling: pass the page's signaling WebSockets through Playwright, so the test can
 *   cut them (see `signalingRoutes`)
 */
async function openJoinPage(browser, who, url, name, opts = {}) {
  const context = await newContext(browser, opts.viewport ?? { width: 1280, height: 800 }, opts.locale);
  if (opts.routeSignaling) {
    await context.routeWebSocket(/\/ws$/, (ws) => {
      // Forward everything both ways (the default once connected); only keep a handle.
      ws.connectToServer();
      signalingRoutes.push(ws);
    });
  }
  await context.grantPermissions(["camera", "microphone"], { origin: BASE });
  if (opts.initScript) await context.addInitScript(opts.initScript);
  const page = await context.newPage();
  watchPage(page, who);
  pages.set(who, page);
  const record = opts.recordSignaling;
  if (record) {
    page.on("websocket", (ws) => ws.on("framereceived", (f) => record.push(String(f.payload))));
  }
  await page.goto(url, { waitUntil: "load", timeout: JOIN_TIMEOUT });
  if (name === null) {
    await joinSeat(page);
  } else {
    await waitForState(page, "prejoin");
    const zh = opts.locale?.startsWith("zh");
    assert.equal(await page.locator("html").getAttribute("lang"), zh ? "zh-CN" : "en", "the page's language follows the browser's");
    await page.getByLabel(zh ? "显示名称" : "Display name").fill(name);
    await page.getByRole("button", { name: zh ? "加入" : "Join", exact: true }).click();
  }
  return page;
}

/**
 * The runtime half of the catalogue check (i18n-check.mjs is the static half): every visible
 * text of the page comes from the catalogue (an element marked `data-i18n`, which i18n.js sets
 * for every message it writes) or is people's own words (`data-user-content`: names, titles,
 * chat). Digits and punctuation alone pass.
 * @param {import("playwright-core").Page} page
 * @param {string} what
 */
async function assertTextFromCatalogue(page, what) {
  const stray = await page.evaluate(() => {
    const found = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = (node.textContent ?? "").trim();
      if (!/[A-Za-z\u4e00-\u9fff]/.test(text)) continue;
      const parent = node.parentElement;
      if (!parent || parent.closest("script, style, [hidden], dialog:not([open])")) continue;
      if (!parent.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) continue;
      if (parent.closest("[data-i18n], [data-user-content]")) continue;
      found.push(text.slice(0, 80));
    }
    return found;
  });
  assert.deepEqual(stray, [], `${what}: visible text not from the catalogue`);
  // The same screens, in the same language, through axe-core (a11y.mjs).
  const violations = await axeViolations(page);
  if (process.env.HUIZHEN_AXE === "report") {
    for (const v of violations) console.log(`AXE ${what}: ${v.impact} ${v.id} (${v.help}) at ${v.targets.join(" | ")}`);
  } else {
    assert.deepEqual(violations, [], `${what}: serious or critical accessibility violations (axe-core)`);
  }
}

/**
 * On the pre-join screen of a care-team seat's entry: no name is asked for, the page says the
 * account's is shown; clicks Join.
 * @param {import("playwright-core").Page} page
 */
async function joinSeat(page) {
  await waitForState(page, "prejoin");
  assert.equal(await page.locator("#display-name").isVisible(), false, "a seat asks for no display name");
  assert.match((await page.locator("#seat-note").textContent()) ?? "", /You enter as your signed-in account/);
  assert.equal(await page.locator("#seat-note").isVisible(), true);
  await page.getByRole("button", { name: "Join", exact: true }).click();
}

/**
 * Signs in through the API.
 * @param {import("playwright-core").APIRequestContext} http
 * @param {string} username
 * @returns {Promise<{auth: Record<string, string>, me: any}>} the bearer header and `/me`
 */
async function apiSignIn(http, username) {
  const login = await http.post("/api/v1/auth/login", { data: { username, password: PASSWORD } });
  assert.equal(login.status(), 200, `login of ${username}: status ${login.status()}`);
  const auth = { Authorization: `Bearer ${(await login.json()).token}` };
  const me = await http.get("/api/v1/me", { headers: auth });
  assert.equal(me.status(), 200);
  return { auth, me: await me.json() };
}

/**
 * The name a care-team seat is shown under in the room, and a signature's: "name title ·
 * institution" from the account.
 * @param {{display_name: string, title: string, institution: {name: string}}} account
 */
function seatLabel(account) {
  const head = account.title ? `${account.display_name} ${account.title}` : account.display_name;
  return account.institution.name ? `${head} · ${account.institution.name}` : head;
}

/**
 * The entry token of the signed-in clinician's care-team seat.
 * @param {import("playwright-core").APIRequestContext} http
 * @param {Record<string, string>} auth
 * @param {string} roomId
 */
async function enterToken(http, auth, roomId) {
  const res = await http.post(`/api/v1/rooms/${roomId}/enter`, { headers: auth });
  assert.equal(res.status(), 200, `enter status ${res.status()}`);
  const entry = await res.json();
  assert.equal(typeof entry.token, "string");
  const claims = JSON.parse(Buffer.from(entry.token.split(".")[1], "base64url").toString("utf8"));
  assert.equal(typeof claims.sid, "string", "a seat's token names the session that took it");
  return entry.token;
}

/**
 * A console page in a fresh context, signed in.
 * @param {import("playwright-core").Browser} browser
 * @param {string} who
 * @param {string} username
 * @param {{camera?: boolean, locale?: string}} [opts] camera: the page will enter a consultation
 *   with media; locale: the browser's language (English by default; "zh-CN" gives the Chinese console)
 */
async function openConsole(browser, who, username, opts = {}) {
  const context = await newContext(browser, { width: 1100, height: 900 }, opts.locale);
  if (opts.camera) await context.grantPermissions(["camera", "microphone"], { origin: BASE });
  const page = await context.newPage();
  watchPage(page, who);
  pages.set(who, page);
  await page.goto(`${BASE}/`, { waitUntil: "load", timeout: JOIN_TIMEOUT });
  const zh = opts.locale?.startsWith("zh");
  assert.equal(await page.locator("html").getAttribute("lang"), zh ? "zh-CN" : "en", "the console's language follows the browser's");
  await page.getByLabel(zh ? "用户名" : "Username").fill(username);
  await page.getByLabel(zh ? "密码" : "Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: zh ? "登录" : "Sign in" }).click();
  await page.waitForSelector('body[data-state="signed-in"]', { timeout: EVENT_TIMEOUT });
  return page;
}

/**
 * Collects uncaught errors, and any console line that looks like a token or SDP: the client
 * must never log either.
 * @param {import("playwright-core").Page} page
 * @param {string} who
 */
function watchPage(page, who) {
  page.on("pageerror", (err) => pageProblems.push(`${who}: uncaught ${err.message}`));
  page.on("console", (msg) => {
    const text = msg.text();
    if (/hz1\.|v=0\r?\n|a=ice-pwd/.test(text)) pageProblems.push(`${who}: console output contains a token or SDP`);
    // The server sends a strict Content-Security-Policy; anything it blocks is a client bug.
    if (/Content Security Policy|Refused to (load|apply|execute|connect)/.test(text)) {
      pageProblems.push(`${who}: ${text.slice(0, 200)}`);
    }
  });
}

/**
 * A browser context that accepts the server's self-signed certificate, optionally with the
 * web client's static files served from CLIENT_DIR.
 * The page's language is pinned through the browser's (navigator.languages): English unless
 * `locale` says otherwise; the client picks zh-CN for any zh-*.
 * @param {import("playwright-core").Browser} browser
 * @param {{width: number, height: number}} viewport
 * @param {string} [locale] e.g. "zh-CN"
 * @param {string} [base] the server's origin (turn-scenario.mjs runs a server of its own)
 */
async function newContext(browser, viewport, locale = "en-GB", base = BASE) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport, locale });
  if (CLIENT_DIR) {
    await context.route(
      (url) => url.origin === new URL(base).origin && /^\/($|join$|code$|outcome$|js\/|css\/)/.test(url.pathname),
      (route) => {
        const { pathname } = new URL(route.request().url());
        const page = { "/": "index.html", "/join": "join.html", "/code": "code.html", "/outcome": "outcome.html" }[pathname];
        const file = page ?? pathname.slice(1);
        const resolved = path.resolve(CLIENT_DIR, file);
        if (!resolved.startsWith(CLIENT_DIR + path.sep)) return route.fulfill({ status: 404 });
        return route.fulfill({ path: resolved });
      },
    );
  }
  return context;
}

// ---------------------------------------------------------------------------------------------

/** Every signaling message the patient's page received, as text (to prove what never arrived). */
const patientSignaling = /** @type {string[]} */ ([]);

/**
 * Shares a file through the documents panel and waits until it is listed.
 * @param {import("playwright-core").Page} page
 * @param {{name: string, mimeType: string, buffer: Buffer}} file
 * @param {"everyone" | "clinicians"} visibility
 */
async function shareFile(page, file, visibility) {
  await page.locator('.tab[data-tab="documents-panel"]').click();
  await page.locator(".upload-file").setInputFiles(file);
  await page.locator(".upload-visibility").selectOption(visibility);
  await page.locator(".upload-submit").click();
  await page.locator(".upload-status", { hasText: `${file.name} is shared.` }).waitFor({ timeout: EVENT_TIMEOUT });
}

/**
 * @param {import("playwright-core").Page} page
 * @param {string} name
 */
async function docIdByName(page, name) {
  const id = await page.locator(".doc-item", { hasText: name }).first().getAttribute("data-document-id");
  assert.ok(id, `${name} is listed`);
  return id;
}

/** A real two-page PDF (text on each page), written by hand like any PDF writer would. */
function twoPagePdf() {
  const objs = [
    "<< /Type /Catalog /Pages 2 0 R >>",
    "<< /Type /Pages /Kids [3 0 R 5 0 R] /Count 2 >>",
    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 7 0 R >> >> >>",
    streamObj("BT /F1 36 Tf 72 700 Td (Lab results: page 1) Tj ET 0 0 1 RG 10 w 72 72 451 500 re S"),
    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 6 0 R /Resources << /Font << /F1 7 0 R >> >> >>",
    streamObj("BT /F1 36 Tf 72 700 Td (Haemoglobin: page 2) Tj ET 1 0 0 RG 10 w 150 150 300 300 re S"),
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
  ];
  let out = "%PDF-1.4\n";
  const offsets = [];
  objs.forEach((o, i) => {
    offsets.push(Buffer.byteLength(out));
    out += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = Buffer.byteLength(out);
  out += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n`;
  for (const off of offsets) out += `${String(off).padStart(10, "0")} 00000 n \n`;
  out += `trailer\n<< /Size ${objs.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, "latin1");
}

/** @param {string} content */
function streamObj(content) {
  return `<< /Length ${content.length} >>\nstream\n${content}\nendstream`;
}

/**
 * A valid RGB PNG with a checker pattern.
 * @param {number} w
 * @param {number} h
 */
function checkerPng(w, h) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y += 1) {
    for (let x = 0; x < w; x += 1) {
      const on = ((x >> 3) + (y >> 3)) % 2 === 0;
      raw.set(on ? [200, 40, 40] : [240, 240, 240], y * (w * 3 + 1) + 1 + x * 3);
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", deflateSync(raw)),
    pngChunk("IEND", Buffer.alloc(0)),
  ]);
}

/**
 * @param {string} type
 * @param {Buffer} data
 */
function pngChunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** @param {Buffer} buf */
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * A small DICOM CT slice (explicit VR little endian, 16-bit, a gradient), built by hand.
 * @param {number} rows
 * @param {number} cols
 */
function ctSlice(rows, cols) {
  /** @type {Buffer[]} */
  const parts = [Buffer.alloc(128), Buffer.from("DICM", "latin1")];
  /** @param {number} g @param {number} e @param {string} vr @param {Buffer} value */
  const el = (g, e, vr, value) => {
    const long = ["OB", "OW", "SQ", "UN", "UT"].includes(vr);
    const head = Buffer.alloc(long ? 12 : 8);
    head.writeUInt16LE(g, 0);
    head.writeUInt16LE(e, 2);
    head.write(vr, 4, "latin1");
    if (long) head.writeUInt32LE(value.length, 8);
    else head.writeUInt16LE(value.length, 6);
    parts.push(head, value);
  };
  const u16 = (/** @type {number} */ n) => {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(n);
    return b;
  };
  el(0x0002, 0x0010, "UI", Buffer.from("1.2.840.10008.1.2.1\0", "latin1"));
  el(0x0008, 0x0060, "CS", Buffer.from("CT", "latin1"));
  el(0x0028, 0x0002, "US", u16(1));
  el(0x0028, 0x0004, "CS", Buffer.from("MONOCHROME2 ", "latin1"));
  el(0x0028, 0x0010, "US", u16(rows));
  el(0x0028, 0x0011, "US", u16(cols));
  el(0x0028, 0x0100, "US", u16(16));
  const px = Buffer.alloc(rows * cols * 2);
  for (let i = 0; i < rows * cols; i += 1) px.writeUInt16LE((i * 7) % 4096, i * 2);
  el(0x7fe0, 0x0010, "OW", px);
  return Buffer.concat(parts);
}

async function main() {
  assert.ok(PASSWORD, "HUIZHEN_PASSWORD must be set (scripts/test-browser.sh does this)");
  await mkdir(OUT, { recursive: true });
  // Old screenshots would be mistaken for this run's; logs beside them belong to the runner.
  for (const file of await readdir(OUT)) if (file.endsWith(".png")) await rm(path.join(OUT, file), { force: true });

  const http = await request.newContext({ baseURL: BASE, ignoreHTTPSErrors: true, timeout: 30_000 });
  /** @type {import("playwright-core").Browser | null} */
  let browser = null;
  try {
    /** @type {{patient: string, observer: string}} invite links' tokens */
    const tokens = { patient: "", observer: "" };
    let roomId = "";
    let roomTitle = "";
    let liveStatus = "";
    /** The doctor's API session (it takes the doctor's seat later) and both clinicians' `/me`. */
    let doctorAuth = /** @type {Record<string, string>} */ ({});
    /** @type {any} */
    let doctorMe = null;
    /** @type {any} */
    let specialistMe = null;
    // Issue 17's whole workflow, in each engine (referral, codes, waiting room, huddle, signing,
    // pharmacy, outcome).
    const workflows = async () => {
      for (const engine of /** @type {const} */ (process.env.HUIZHEN_ENGINES ? /** @type {any} */ (process.env.HUIZHEN_ENGINES.split(",")) : ["chromium", "firefox"])) {
        await workflowScenario({ check, newContext, watchPage, pages, browser, base: BASE, password: PASSWORD, doctor: USERNAME, specialist: SPECIALIST, pharmacist: PHARMACIST, timeout: EVENT_TIMEOUT, out: OUT }, engine);
      }
    };
    // HUIZHEN_BROWSER_ONLY=workflow runs those alone (for working on them; CI runs everything).
    if (process.env.HUIZHEN_BROWSER_ONLY === "workflow") {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
      await workflows();
      return;
    }
    if (process.env.HUIZHEN_BROWSER_ONLY === "firefox") {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
      await firefoxScenario({ check, snap, newContext, watchPage, pages, browser, http, base: BASE, password: PASSWORD, doctor: USERNAME, specialist: SPECIALIST, timeout: EVENT_TIMEOUT, out: OUT });
      return;
    }
    if (process.env.HUIZHEN_BROWSER_ONLY === "referrals") {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
      await referralScenario({ check, snap, browser, openConsole, openJoinPage, pages, doctor: USERNAME, specialist: SPECIALIST, timeout: EVENT_TIMEOUT, assertTextFromCatalogue, http, apiSignIn, ctSlice });
      await referralStepsScenario({ check, snap, browser, openConsole, openJoinPage, apiSignIn, enterToken, pages, http, base: BASE, password: PASSWORD, doctor: USERNAME, specialist: SPECIALIST, timeout: EVENT_TIMEOUT, assertTextFromCatalogue });
      return;
    }
    if (process.env.HUIZHEN_BROWSER_ONLY === "webhook") {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
      const harness = { check, snap, browser, openConsole, pages, timeout: EVENT_TIMEOUT, assertTextFromCatalogue, http, apiSignIn, doctor: USERNAME };
      const hooks = await webhookSetup(harness);
      await referralScenario({ check, snap, browser, openConsole, openJoinPage, pages, doctor: USERNAME, specialist: SPECIALIST, timeout: EVENT_TIMEOUT, assertTextFromCatalogue, http, apiSignIn, ctSlice });
      await webhookCheck(harness, hooks);
      return;
    }
    if (process.env.HUIZHEN_BROWSER_ONLY === "admin") {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
      await adminScenario({ check, snap, newContext, watchPage, pages, browser, http, base: BASE, password: PASSWORD, doctor: USERNAME, timeout: EVENT_TIMEOUT, assertTextFromCatalogue, openJoinPage });
      return;
    }
    if (process.env.HUIZHEN_BROWSER_ONLY === "day") {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
      await lateScenario({ check, snap, browser, openConsole, openJoinPage, pages, doctor: USERNAME, specialist: SPECIALIST, timeout: EVENT_TIMEOUT, assertTextFromCatalogue, base: BASE });
      await moderationScenario({ check, snap, browser, openConsole, openJoinPage, pages, doctor: USERNAME, specialist: SPECIALIST, timeout: EVENT_TIMEOUT, assertTextFromCatalogue, base: BASE });
      return;
    }
    if (process.env.HUIZHEN_BROWSER_ONLY === "link") {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
      await linkCheckScenario({ check, snap, newContext, watchPage, pages, browser, http, base: BASE, password: PASSWORD, doctor: USERNAME, specialist: SPECIALIST, timeout: EVENT_TIMEOUT });
      return;
    }
    if (process.env.HUIZHEN_BROWSER_ONLY === "a11y") {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
      await a11yScenario({ check, snap, newContext, watchPage, openConsole, pages, browser, http, apiSignIn, base: BASE, doctor: USERNAME, timeout: EVENT_TIMEOUT, assertTextFromCatalogue });
      return;
    }
    const turn = () => turnScenario({ check, newContext, watchPage, pages, browser, password: PASSWORD, timeout: EVENT_TIMEOUT, out: OUT });
    const cap = () => {
      if (!browser) throw new Error("no Chromium");
      return capScenario({ check, snap, newContext, watchPage, pages, browser, http, base: BASE, password: PASSWORD, doctor: USERNAME, timeout: EVENT_TIMEOUT, out: OUT });
    };
    const downcap = () => {
      if (!browser) throw new Error("no Chromium");
      return downcapScenario({ check, newContext, watchPage, pages, browser, http, base: BASE, password: PASSWORD, doctor: USERNAME, timeout: EVENT_TIMEOUT, out: OUT });
    };
    if (process.env.HUIZHEN_BROWSER_ONLY === "downcap") {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
      await downcap();
      return;
    }
    if (process.env.HUIZHEN_BROWSER_ONLY === "cap") {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
      await cap();
      return;
    }
    if (process.env.HUIZHEN_BROWSER_ONLY === "turn") {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
      await turn();
      return;
    }

    await check("api: sign in, create a room, patient and observer links; clinicians get none", { scenario: true }, async () => {
      const login = await http.post("/api/v1/auth/login", { data: { username: USERNAME, password: PASSWORD } });
      assert.equal(login.status(), 200, `login status ${login.status()}`);
      const { token, user } = await login.json();
      assert.equal(typeof token, "string");
      assert.equal(user.username, USERNAME);
      const auth = { Authorization: `Bearer ${token}` };
      doctorAuth = auth;
      doctorMe = await (await http.get("/api/v1/me", { headers: auth })).json();
      assert.equal(doctorMe.role, "doctor");
      specialistMe = (await apiSignIn(http, SPECIALIST)).me;
      assert.equal(specialistMe.role, "specialist");
      assert.ok(specialistMe.title && specialistMe.institution.name, "the specialist has a title and an institution");
      assert.notEqual(specialistMe.institution.id, doctorMe.institution.id, "the specialist works elsewhere");

      const wrong = await http.post("/api/v1/auth/login", { data: { username: USERNAME, password: "not-the-password" } });
      assert.equal(wrong.status(), 401, "a wrong password is refused with 401");
      assert.equal((await wrong.json()).error.code, "invalid_credentials");

      roomTitle = `Browser test ${new Date().toISOString()}`;
      const room = await http.post("/api/v1/rooms", { headers: auth, data: { title: roomTitle, patient_ref: "MRN-0001", waiting_room: false } });
      // protocol.md names no status for creations: any 2xx (the server answers 201) is fine.
      assert.ok(room.ok(), `create room status ${room.status()}`);
      const roomJson = await room.json();
      roomId = roomJson.id;
      assert.equal(roomJson.title, roomTitle);
      liveStatus = roomJson.status;
      const seen = await (await http.get(`/api/v1/rooms/${roomId}`, { headers: auth })).json();
      assert.equal(seen.my_role, "doctor", "the creator is the consultation's doctor");
      assert.equal(seen.manages, true);

      for (const role of /** @type {const} */ (["patient", "observer"])) {
        const res = await http.post(`/api/v1/rooms/${roomId}/invites`, { headers: auth, data: { role } });
        assert.ok(res.ok(), `create ${role} invite status ${res.status()}`);
        const invite = await res.json();
        assert.equal(invite.role, role);
        assert.equal(typeof invite.token, "string");
        assert.match(invite.url, /\/join#/, "the invite url carries the token in the fragment");
        tokens[role] = invite.token;
      }
      // Clinicians enter as their accounts: no link makes someone a doctor or a specialist.
      for (const role of ["doctor", "specialist"]) {
        const res = await http.post(`/api/v1/rooms/${roomId}/invites`, { headers: auth, data: { role } });
        assert.equal(res.status(), 400, `a ${role} invite is refused`);
      }
    });

    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });

    await check("console: the specialist signs in, has no consultation yet, and starts taking referrals", { scenario: true }, async () => {
      if (!browser) throw new Error("no browser");
      // Kept open: the specialist enters the consultation from here once on its care team.
      const page = await openConsole(browser, "specialist", SPECIALIST, { camera: true });
      assert.equal(await page.locator("#account-name").textContent(), [specialistMe.display_name, specialistMe.title, specialistMe.institution.name].join(" · "));
      await page.locator("#rooms-status", { hasText: "No consultations yet." }).waitFor({ timeout: EVENT_TIMEOUT });
      assert.equal(await page.locator(`li.room-card[data-room-id="${roomId}"]`).count(), 0, "another institution's consultation is not listed");
      assert.equal(await page.locator("#create-section").isVisible(), false, "a specialist opens no consultations");
      const availability = page.getByLabel("Taking referrals");
      assert.equal(await availability.isChecked(), specialistMe.accepts_referrals);
      if (!specialistMe.accepts_referrals) await availability.check();
      // The directory says so (a query for those taking referrals finds them).
      const deadline = Date.now() + EVENT_TIMEOUT;
      for (;;) {
        const res = await http.get("/api/v1/directory?accepting=true&specialty=cardio", { headers: doctorAuth });
        const found = (await res.json()).clinicians.some((/** @type {any} */ c) => c.id === specialistMe.id);
        if (found) break;
        assert.ok(Date.now() < deadline, "the specialist takes referrals in the directory");
        await page.waitForTimeout(250);
      }
      await snap(page, "console-specialist");
    });

    await check("console: the doctor finds the specialist in the directory and adds them to the care team", { scenario: true }, async () => {
      if (!browser) throw new Error("no browser");
      const page = await openConsole(browser, "console", USERNAME);
      assert.equal(await page.locator("#account-name").textContent(), [doctorMe.display_name, doctorMe.title, doctorMe.institution.name].filter(Boolean).join(" · "));
      const card = page.locator(`li.room-card[data-room-id="${roomId}"]`);
      await card.waitFor({ timeout: EVENT_TIMEOUT });
      assert.equal(await card.locator("h3").textContent(), roomTitle);
      // Links for the patient, guests and observers only; each button's accessible name begins with
      // its visible label.
      for (const role of ["Patient", "Guest", "Observer"]) {
        assert.equal(await card.getByRole("button", { name: `${role} link: new invite for ${roomTitle}` }).count(), 1, `a ${role} link button`);
      }
      for (const role of ["Doctor", "Specialist"]) {
        assert.equal(await card.getByRole("button", { name: new RegExp(`^${role} link`) }).count(), 0, `no ${role} link button`);
      }
      await card.getByRole("button", { name: /^Observer link: new invite/ }).click();
      const link = card.locator("ul.invites input");
      await link.first().waitFor({ timeout: EVENT_TIMEOUT });
      assert.match(await link.first().inputValue(), /\/join#hz1\./);
      // The care team: the doctor who opened it.
      const team = card.locator(".care-team-member");
      await team.first().waitFor({ timeout: EVENT_TIMEOUT });
      assert.equal(await team.count(), 1);
      assert.equal(await team.first().getAttribute("data-role"), "doctor");
      assert.match((await team.first().textContent()) ?? "", new RegExp(doctorMe.display_name.replace(/\./g, "\\.")));
      await snap(page, "console");
      // Remove asks first; the consultation's last doctor stays, and the server says why.
      await team.first().getByRole("button", { name: `Remove ${doctorMe.display_name} from the care team` }).click();
      const confirm = page.locator("#confirm-dialog");
      await confirm.waitFor({ timeout: EVENT_TIMEOUT });
      await confirm.getByRole("button", { name: "Remove" }).click();
      await card.locator(".care-team .form-error", { hasText: /last doctor/ }).waitFor({ timeout: EVENT_TIMEOUT });
      assert.equal(await team.count(), 1, "the doctor is still on the care team");
      // Add clinician: search the directory by specialty, add the specialist.
      await card.locator(".care-team-add summary").click();
      await card.getByLabel("Name or specialty").fill("cardio");
      await card.getByRole("button", { name: "Search", exact: true }).click();
      const result = card.locator(`.directory-result[data-user-id="${specialistMe.id}"]`);
      await result.waitFor({ timeout: EVENT_TIMEOUT });
      const shown = (await result.textContent()) ?? "";
      for (const want of [specialistMe.display_name, specialistMe.title, specialistMe.institution.name, "Cardiology", "Taking referrals"]) {
        assert.ok(shown.includes(want), `the result shows ${want}: ${shown}`);
      }
      await snap(page, "console-directory");
      // Narrowed to the doctor's own institution, the county's specialist is not found; in the
      // specialist's department, taking referrals now, they are.
      const where = card.getByLabel("Institution or department");
      await where.locator(`option[value="i:${doctorMe.institution.id}"]`).waitFor({ state: "attached", timeout: EVENT_TIMEOUT });
      await where.selectOption(`i:${doctorMe.institution.id}`);
      await card.getByRole("button", { name: "Search", exact: true }).click();
      await result.waitFor({ state: "detached", timeout: EVENT_TIMEOUT });
      await where.selectOption(`d:${specialistMe.department.id}`);
      await card.getByLabel("Only those taking referrals now").check();
      await card.getByRole("button", { name: "Search", exact: true }).click();
      await result.waitFor({ timeout: EVENT_TIMEOUT });
      await result.getByRole("button", { name: `Add ${specialistMe.display_name} to the care team` }).click();
      const added = card.locator(`.care-team-member[data-user-id="${specialistMe.id}"]`);
      await added.waitFor({ timeout: EVENT_TIMEOUT });
      assert.equal(await added.getAttribute("data-role"), "specialist");
      assert.match((await added.textContent()) ?? "", new RegExp(`${specialistMe.title}.*${specialistMe.institution.name}`));
      await result.locator(".on-team").waitFor({ timeout: EVENT_TIMEOUT });
      await snap(page, "console-care-team");
      // The rooms list with a card's care team, directory and invite links open (English).
      await assertTextFromCatalogue(page, "the doctor's rooms list (en)");
      const listed = await (await http.get(`/api/v1/rooms/${roomId}/care-team`, { headers: doctorAuth })).json();
      assert.deepEqual(
        listed.care_team.map((/** @type {any} */ m) => `${m.account.id}:${m.role}`).sort(),
        [`${doctorMe.id}:doctor`, `${specialistMe.id}:specialist`].sort(),
      );
      // "Enter consultation" takes the doctor's seat: the room page asks for no name.
      await card.getByRole("button", { name: "Enter consultation" }).click();
      await page.waitForURL(/\/join#hz1\./, { timeout: EVENT_TIMEOUT });
      await waitForState(page, "prejoin");
      assert.equal(await page.locator("#display-name").isVisible(), false, "a seat asks for no display name");
      await page.locator("#seat-note").waitFor({ timeout: EVENT_TIMEOUT });
      await snap(page, "seat-prejoin");
      pages.delete("console");
      await page.context().close();
    });

    await check("console: signing out ends the session on the server; a session ended elsewhere returns to sign-in", {}, async () => {
      if (!browser) throw new Error("no browser");
      const context = await newContext(browser, { width: 1100, height: 900 });
      const page = await context.newPage();
      watchPage(page, "console-sign-out");
      pages.set("console-sign-out", page);
      const signIn = async () => {
        await page.getByLabel("Username").fill(USERNAME);
        await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
        await page.getByRole("button", { name: "Sign in" }).click();
        await page.waitForSelector('body[data-state="signed-in"]', { timeout: EVENT_TIMEOUT });
        const token = await page.evaluate(() => sessionStorage.getItem("huizhen.console.session"));
        assert.ok(token, "the console keeps a session token");
        return token;
      };
      const me = async (/** @type {string} */ token) =>
        (await http.get("/api/v1/me", { headers: { Authorization: `Bearer ${token}` } })).status();
      await page.goto(`${BASE}/`, { waitUntil: "load", timeout: JOIN_TIMEOUT });
      const first = await signIn();
      assert.equal(await me(first), 200);
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.waitForSelector('body[data-state="signed-out"]', { timeout: EVENT_TIMEOUT });
      assert.equal(await page.evaluate(() => sessionStorage.length), 0, "the tab forgets the session");
      assert.equal(await me(first), 401, "the signed-out token no longer works");

      // The session ends on the server (another device signs it out): the next call returns
      // the console to the sign-in form and says why.
      const second = await signIn();
      const out = await http.post("/api/v1/auth/logout", { headers: { Authorization: `Bearer ${second}` } });
      assert.equal(out.status(), 204);
      await page.getByRole("button", { name: "Refresh" }).click();
      await page.waitForSelector('body[data-state="signed-out"]', { timeout: EVENT_TIMEOUT });
      assert.match((await page.locator("#login-error").textContent()) ?? "", /session has expired/i);
      await snap(page, "console-session-ended");
      pages.delete("console-sign-out");
      await context.close();
    });

    await check("a garbage invite link ends in the error state as soon as the page opens", {}, async () => {
      if (!browser) throw new Error("no browser");
      // The link is checked before anything else: no name to type, no device prompt.
      const context = await newContext(browser, { width: 1280, height: 800 });
      const page = await context.newPage();
      watchPage(page, "garbage");
      pages.set("garbage", page);
      await page.goto(`${BASE}/join#garbage`, { waitUntil: "load", timeout: JOIN_TIMEOUT });
      await waitForState(page, "error");
      const text = (await page.locator("#status-text").textContent()) ?? "";
      assert.match(text, /invitation link is not valid/i, `error text: ${text}`);
      assert.equal(await page.locator("#status-panel").getAttribute("data-error-code"), "invalid_token");
      await snap(page, "garbage-link-error");
      pages.delete("garbage");
      await page.context().close();
    });

    /** @type {Record<string, import("playwright-core").Page>} */
    const p = {};
    /** @type {Record<string, string>} participant ids */
    const id = {};

    await check("doctor, patient and specialist join and see three tiles", { scenario: true }, async () => {
      if (!browser) throw new Error("no browser");
      // The doctor takes their seat with the API session's entry token.
      p.doctor = await openJoinPage(browser, "doctor", `${BASE}/join#${await enterToken(http, doctorAuth, roomId)}`, null, {
        routeSignaling: true,
      });
      await waitForState(p.doctor, "in-room");
      // The patient uses a phone-sized screen: the layout must work there too.
      // In Chinese (the browser's language), while the consoles are in English.
      p.patient = await openJoinPage(browser, "patient", `${BASE}/join#${tokens.patient}`, "Li Hua", {
        viewport: { width: 390, height: 844 },
        recordSignaling: patientSignaling,
        locale: "zh-CN",
        initScript: recordPeerConnections,
      });
      await waitForState(p.patient, "in-room");
      // The first thing the patient sees in the room: what they are asked to agree to.
      await p.patient.locator("#consent-dialog[open]").waitFor({ timeout: EVENT_TIMEOUT });
      // The specialist, on the care team now, finds the consultation in their console and enters.
      const specialistConsole = pages.get("specialist");
      assert.ok(specialistConsole, "the specialist's console is open");
      p.specialist = specialistConsole;
      await p.specialist.getByRole("button", { name: "Refresh" }).click();
      const card = p.specialist.locator(`li.room-card[data-room-id="${roomId}"]`);
      await card.waitFor({ timeout: EVENT_TIMEOUT });
      assert.match((await card.textContent()) ?? "", /You are on its care team as specialist/);
      assert.equal(await card.getByRole("button", { name: /invite link/ }).count(), 0, "a specialist hands out no links");
      assert.equal(await card.getByRole("button", { name: "End consultation" }).count(), 0, "nor ends it");
      assert.equal(await card.locator(".care-team").count(), 0, "nor manages its care team");
      await snap(p.specialist, "console-specialist-room");
      await card.getByRole("button", { name: "Enter consultation" }).click();
      await p.specialist.waitForURL(/\/join#hz1\./, { timeout: EVENT_TIMEOUT });
      await joinSeat(p.specialist);
      await waitForState(p.specialist, "in-room");
      for (const who of ["doctor", "patient", "specialist"]) {
        await waitForTileCount(p[who], 3);
        assert.equal(await p[who].locator("#tiles .tile.tile-local").count(), 1, `${who}: one local tile`);
        assert.equal(await p[who].locator("#tiles .tile video").count(), 3, `${who}: a video per tile`);
        id[who] = await localId(p[who]);
      }
      assert.equal(new Set(Object.values(id)).size, 3, "three distinct participant ids");
      for (const who of ["doctor", "patient", "specialist"]) {
        const ids = await p[who].$$eval("#tiles .tile", (ts) => ts.map((t) => /** @type {HTMLElement} */ (t).dataset.participantId));
        assert.deepEqual([...ids].sort(), Object.values(id).sort(), `${who} sees everyone`);
      }
      // The clinicians are shown as their accounts (name, title, institution), never a typed name.
      for (const [who, account] of /** @type {const} */ ([["doctor", doctorMe], ["specialist", specialistMe]])) {
        const label = seatLabel(account);
        assert.ok(account.title && label.includes(account.institution.name), `${who}: a label with title and institution`);
        assert.equal(await p.patient.locator(`#tiles .tile[data-participant-id="${id[who]}"] .tile-name`).textContent(), label, `the patient sees the ${who} as ${label}`);
        assert.equal(await p[who].locator("#tiles .tile.tile-local .tile-name").textContent(), `${label} (you)`);
      }
      await snap(p.patient, "seat-names-patient");
      // Only the doctor may end the consultation.
      assert.equal(await p.doctor.locator("#end-button").isVisible(), true, "doctor has End consultation");
      assert.equal(await p.patient.locator("#end-button").isVisible(), false, "patient has no End consultation");
    });

    await check("before the patient agrees: an observer is kept out, and a document is not shared with the other hospital", { scenario: true }, async () => {
      if (!browser) throw new Error("no browser");
      // The observer is told why, and may try again (the page stays open for later).
      p.observer = await openJoinPage(browser, "observer", `${BASE}/join#${tokens.observer}`, "Student");
      await waitForState(p.observer, "error");
      assert.equal(await p.observer.locator("#status-panel").getAttribute("data-error-code"), "consent_required");
      assert.equal(await p.observer.locator("#status-title").textContent(), "Waiting for the patient's consent");
      assert.equal(
        await p.observer.locator("#status-text").textContent(),
        "The patient has not yet agreed to observers being present. Try again later.",
      );
      assert.equal(await p.observer.getByRole("button", { name: "Try again" }).isVisible(), true);
      await snap(p.observer, "observer-consent-required");
      // The specialist works at another hospital: sharing needs the patient's consent.
      await p.doctor.locator('.tab[data-tab="documents-panel"]').click();
      await p.doctor.locator(".upload-file").setInputFiles({ name: "early.png", mimeType: "image/png", buffer: checkerPng(8, 8) });
      await p.doctor.locator(".upload-submit").click();
      const refused = p.doctor.locator('.upload-status[data-error-code="consent_required"]');
      await refused.waitFor({ timeout: EVENT_TIMEOUT });
      assert.match((await refused.textContent()) ?? "", /^Not shared: .*patient has not agreed to sharing documents/);
      assert.equal(await p.doctor.locator(".doc-item", { hasText: "early.png" }).count(), 0);
      await snap(p.doctor, "document-consent-required");
      // Nothing is in force yet, and everyone can see so.
      for (const who of ["doctor", "patient", "specialist"]) {
        assert.equal(await p[who].locator("#consent-status").getAttribute("data-in-force"), "", `${who}: nothing in force`);
      }
    });

    await check("the patient gives consent through the consent panel", { scenario: true }, async () => {
      const dialog = p.patient.locator("#consent-dialog");
      assert.equal(await dialog.isVisible(), true, "the consent dialog is the first thing shown");
      const items = dialog.locator(".consent-item");
      assert.deepEqual(
        await items.evaluateAll((els) => els.map((e) => /** @type {HTMLElement} */ (e).dataset.purpose)),
        ["recording", "observer_present", "external_sharing"],
      );
      for (const item of await items.all()) {
        // The patient's language (the browser's: Chinese); large type; a clear "我同意" each,
        // nothing agreed yet.
        const words = (await item.locator(".consent-text").textContent()) ?? "";
        assert.match(words, /[\u4e00-\u9fff]/, `Chinese words: ${words}`);
        assert.equal(await item.locator(".consent-text").getAttribute("lang"), "zh-CN");
        const size = await item.locator(".consent-text").evaluate((n) => parseFloat(getComputedStyle(n).fontSize));
        assert.ok(size >= 20, `large text (${size}px)`);
        assert.equal(await item.getByLabel("我同意").isChecked(), false);
      }
      await assertTextFromCatalogue(p.patient, "the patient's room with the consent dialog (zh-CN)");
      await snap(p.patient, "consent-dialog-patient");
      for (const purpose of ["observer_present", "external_sharing"]) {
        const item = dialog.locator(`.consent-item[data-purpose="${purpose}"]`);
        await item.getByLabel("我同意").check();
        await dialog.locator(`.consent-item[data-purpose="${purpose}"][data-given="true"]`).waitFor({ timeout: EVENT_TIMEOUT });
      }
      assert.equal(await dialog.locator('.consent-item[data-purpose="recording"]').getAttribute("data-given"), "false");
      assert.equal(await dialog.locator('.consent-item[data-purpose="recording"] .consent-state').textContent(), "未同意");
      await snap(p.patient, "consent-given-patient");
      await dialog.getByRole("button", { name: "完成" }).click();
      await dialog.waitFor({ state: "hidden", timeout: EVENT_TIMEOUT });
      // Everyone sees what is in force (the patient in Chinese); only the patient has the Consent button.
      for (const who of ["doctor", "specialist"]) {
        await p[who]
          .locator("#consent-status", { hasText: "Patient agreed: others present (observers, guests), sharing with other hospitals" })
          .waitFor({ timeout: EVENT_TIMEOUT });
      }
      await p.patient.locator("#consent-status", { hasText: "患者已同意：其他人员在场（旁听者、参会者）、与其他医院共享" }).waitFor({ timeout: EVENT_TIMEOUT });
      assert.equal(await p.patient.getByRole("button", { name: "知情同意" }).isVisible(), true);
      assert.equal(await p.doctor.locator("#consent-button").isVisible(), false, "clinicians are not asked");
      // The patient switches the page to English, in the call: everything re-translated in
      // place (no reload: the call goes on), <html lang> follows, and the choice is remembered.
      await p.patient.locator("#room .lang-switch").click();
      await p.patient.locator("html[lang='en']").waitFor({ timeout: EVENT_TIMEOUT });
      assert.equal(await p.patient.evaluate(() => localStorage.getItem("huizhen.locale")), "en");
      await p.patient.locator("#consent-status", { hasText: "Patient agreed: others present (observers, guests), sharing with other hospitals" }).waitFor({ timeout: EVENT_TIMEOUT });
      assert.equal(await p.patient.locator("#leave-button").textContent(), "Leave");
      assert.equal(await p.patient.locator("#room .lang-switch").textContent(), "中文");
      await waitForState(p.patient, "in-room");
      // The button opens it again, as it stands, now in English (the server's English wording).
      await p.patient.getByRole("button", { name: "Consent" }).click();
      await dialog.waitFor({ timeout: EVENT_TIMEOUT });
      assert.equal(await dialog.locator('.consent-item[data-purpose="observer_present"] .consent-text').getAttribute("lang"), "en");
      assert.equal(await dialog.locator('.consent-item[data-purpose="observer_present"]').getByLabel("I agree").isChecked(), true);
      await assertTextFromCatalogue(p.patient, "the patient's room after switching to English");
      await p.patient.keyboard.press("Escape");
      await dialog.waitFor({ state: "hidden", timeout: EVENT_TIMEOUT });
      await snap(p.doctor, "consent-status-doctor");
    });

    await check("every page plays both remote videos", { scenario: true }, async () => {
      for (const who of ["doctor", "patient", "specialist"]) await waitForPlayingRemotes(p[who], 2);
      for (const who of ["doctor", "patient", "specialist"]) await snap(p[who], `in-room-${who}`);
    });

    await check("a second room runs on the second media worker: its two pages play each other", {}, async () => {
      if (!browser) throw new Error("no browser");
      // The first room holds worker 0, so a room opened now goes to worker 1 (fewest rooms),
      // whose UDP port is the configured one + 1, announced in that room's offers.
      const login = await http.post("/api/v1/auth/login", { data: { username: USERNAME, password: PASSWORD } });
      assert.equal(login.status(), 200, `login status ${login.status()}`);
      const auth = { Authorization: `Bearer ${(await login.json()).token}` };
      const room = await http.post("/api/v1/rooms", { headers: auth, data: { title: "Second worker", patient_ref: "MRN-0002", waiting_room: false } });
      assert.ok(room.ok(), `create room status ${room.status()}`);
      const secondRoom = (await room.json()).id;
      const res = await http.post(`/api/v1/rooms/${secondRoom}/invites`, { headers: auth, data: { role: "patient" } });
      assert.ok(res.ok(), `create patient invite status ${res.status()}`);
      const invite = { doctor: await enterToken(http, auth, secondRoom), patient: (await res.json()).token };
      const doctor2 = await openJoinPage(browser, "second-room-doctor", `${BASE}/join#${invite.doctor}`, null);
      await waitForState(doctor2, "in-room");
      const patient2 = await openJoinPage(browser, "second-room-patient", `${BASE}/join#${invite.patient}`, "Zhang Wei");
      await waitForState(patient2, "in-room");
      // Asked for consent on entering; this patient decides later.
      await patient2.locator("#consent-dialog[open]").waitFor({ timeout: EVENT_TIMEOUT });
      await patient2.getByRole("button", { name: "Done", exact: true }).click();
      await waitForPlayingRemotes(doctor2, 1);
      await waitForPlayingRemotes(patient2, 1);
      const metrics = await (await http.get(METRICS_URL)).text();
      const rooms = (/** @type {string} */ worker) =>
        Number(new RegExp(`^huizhen_media_rooms\\{worker="${worker}"\\} (\\d+)$`, "m").exec(metrics)?.[1] ?? NaN);
      assert.equal(rooms("0"), 1, "the first room on worker 0");
      assert.equal(rooms("1"), 1, "this room on worker 1");
      await snap(doctor2, "second-worker-doctor");
      for (const page of [doctor2, patient2]) {
        await page.locator("#leave-button").click();
        await waitForState(page, "ended", EVENT_TIMEOUT);
        await page.context().close();
      }
      pages.delete("second-room-doctor");
      pages.delete("second-room-patient");
    });

    await iceRestartScenario({ check, snap, doctor: p.doctor, patient: p.patient, everyone: [p.doctor, p.patient, p.specialist], waitForPlayingRemotes, timeout: EVENT_TIMEOUT });

    await check("an observer joins without camera, sees and hears everyone, and leaves", { scenario: true }, async () => {
      if (!browser) throw new Error("no browser");
      // The observer turned away before the patient agreed tries again.
      const page = p.observer;
      await page.getByRole("button", { name: "Try again" }).click();
      await waitForState(page, "in-room");
      await waitForTileCount(page, 4);
      const observerId = await localId(page);
      await waitForPlayingRemotes(page, 3);
      // The others see them in the audience (no camera, no microphone), not as an empty tile.
      const line = `#audience .audience-item[data-participant-id="${observerId}"]`;
      await p.doctor.waitForSelector(line, { timeout: EVENT_TIMEOUT });
      assert.equal(await p.doctor.locator(`${line} .audience-name`).textContent(), "Student");
      assert.equal(await p.doctor.locator(`${line} .audience-role`).textContent(), "Observer");
      assert.equal(await p.doctor.locator(`${line} .badge-reconnecting`).isVisible(), false, "not reconnecting");
      assert.equal(await p.doctor.locator("#audience-count").textContent(), "1");
      assert.equal(await p.doctor.locator(`#tiles .tile[data-participant-id="${observerId}"]`).count(), 0, "no tile");
      assert.equal(await page.locator("#mic-button").isVisible(), false, "an observer has no mute button");
      await snap(page, "observer");
      await snap(p.doctor, "doctor-with-audience");
      await page.locator("#leave-button").click();
      await waitForState(page, "ended", EVENT_TIMEOUT);
      await p.doctor.waitForSelector(line, { state: "detached", timeout: EVENT_TIMEOUT });
      assert.equal(await p.doctor.locator("#audience").isVisible(), false, "the empty audience is hidden");
      pages.delete("observer");
      await page.context().close();
    });

    await check("a lecture's crowd arrives at once and is listed in the audience, not as tiles", { scenario: true }, async () => {
      if (!browser) throw new Error("no browser");
      // Eight observers on one invite (an invite link may be shared with a class), joining over
      // bare WebSockets from a page of the server's origin, all in the same moment: what the
      // room then announces may come as one participants_joined.
      const crowd = 8;
      const context = await newContext(browser, { width: 800, height: 600 });
      const page = await context.newPage();
      watchPage(page, "crowd");
      await page.goto(`${BASE}/`, { waitUntil: "load", timeout: JOIN_TIMEOUT });
      const tilesBefore = await p.doctor.locator("#tiles .tile").count();
      await page.evaluate(async ({ token, n }) => {
        const url = `${location.origin.replace(/^http/, "ws")}/ws`;
        const sockets = await Promise.all(
          Array.from({ length: n }, () => new Promise((resolve, reject) => {
            const ws = new WebSocket(url);
            ws.onopen = () => resolve(ws);
            ws.onerror = () => reject(new Error("signaling socket failed"));
          })),
        );
        sockets.forEach((ws, i) => ws.send(JSON.stringify({
          type: "join", v: 1, token, name: `Student ${i + 1}`, publish: { audio: false, video: false },
        })));
        /** @type {any} */ (window).crowd = sockets;
      }, { token: tokens.observer, n: crowd });
      await p.doctor.waitForFunction(
        (n) => document.querySelector("#audience-count")?.textContent === String(n),
        crowd,
        { timeout: EVENT_TIMEOUT, polling: 200 },
      );
      const names = await p.doctor.locator("#audience .audience-name").allTextContents();
      assert.deepEqual([...names].sort(), Array.from({ length: crowd }, (_, i) => `Student ${i + 1}`).sort());
      assert.equal(await p.doctor.locator("#tiles .tile").count(), tilesBefore, "no tile for the audience");
      await snap(p.doctor, "doctor-with-a-crowd");
      await page.evaluate(() => {
        for (const ws of /** @type {any} */ (window).crowd) {
          ws.send(JSON.stringify({ type: "leave" }));
          ws.close();
        }
      });
      await p.doctor.waitForSelector("#audience", { state: "hidden", timeout: EVENT_TIMEOUT });
      await context.close();
    });

    await check("the patient turns the camera off and on again", { scenario: true }, async () => {
      const tile = `#tiles .tile[data-participant-id="${id.patient}"]`;
      await p.patient.locator("#camera-button").click();
      await p.doctor.waitForSelector(`${tile} .tile-placeholder:not([hidden])`, { timeout: EVENT_TIMEOUT });
      await p.specialist.waitForSelector(`${tile} .tile-placeholder:not([hidden])`, { timeout: EVENT_TIMEOUT });
      await snap(p.doctor, "patient-camera-off-doctor-view");
      await p.patient.locator("#camera-button").click();
      await p.doctor.waitForSelector(`${tile} .tile-placeholder[hidden]`, { state: "attached", timeout: EVENT_TIMEOUT });
      // The picture comes back, not just the tile state.
      await waitForPlayingRemotes(p.doctor, 2);
    });

    await check("the patient mutes: doctor and specialist see the Muted badge", { scenario: true }, async () => {
      await waitForMutedBadge(p.doctor, id.patient, false);
      await p.patient.locator("#mic-button").click();
      await waitForMutedBadge(p.patient, id.patient, true);
      await waitForMutedBadge(p.doctor, id.patient, true);
      await waitForMutedBadge(p.specialist, id.patient, true);
      // Nobody else is shown muted.
      await waitForMutedBadge(p.specialist, id.doctor, false);
      await snap(p.doctor, "patient-muted-doctor-view");
      await snap(p.patient, "patient-muted-patient-view");
    });

    // ---- documents, follow mode, annotations, records ----------------------------------------
    const pdf = twoPagePdf();
    const png = checkerPng(64, 48);
    /** @type {Record<string, string>} */
    const docId = {};
    await check("the doctor shares a clinicians-only PDF and an image, with upload progress", { scenario: true }, async () => {
      await shareFile(p.doctor, { name: "lab-results.pdf", mimeType: "application/pdf", buffer: pdf }, "clinicians");
      await shareFile(p.doctor, { name: "wound.png", mimeType: "image/png", buffer: png }, "everyone");
      docId.pdf = await docIdByName(p.doctor, "lab-results.pdf");
      docId.png = await docIdByName(p.doctor, "wound.png");
      await snap(p.doctor, "documents-doctor");
    });

    await check("the specialist sees both; the patient only the image, never the PDF", { scenario: true }, async () => {
      await p.specialist.locator(`.doc-item[data-document-id="${docId.pdf}"]`).waitFor({ timeout: EVENT_TIMEOUT });
      await p.specialist.locator(`.doc-item[data-document-id="${docId.png}"]`).waitFor({ timeout: EVENT_TIMEOUT });
      await p.patient.locator(`.doc-item[data-document-id="${docId.png}"]`).waitFor({ timeout: EVENT_TIMEOUT });
      assert.equal(await p.patient.locator(`.doc-item[data-document-id="${docId.pdf}"]`).count(), 0);
      assert.ok(!patientSignaling.some((m) => m.includes(docId.pdf)), "the PDF's id never reached the patient's browser");
      await snap(p.patient, "documents-patient");
    });

    await check("the doctor presents the PDF: the specialist follows page, zoom and pointer", { scenario: true }, async () => {
      await p.doctor.locator(`.doc-item[data-document-id="${docId.pdf}"] .doc-open`).click();
      await p.doctor.waitForFunction(() => document.querySelector("#viewer")?.getAttribute("data-page") === "1", null, { timeout: EVENT_TIMEOUT });
      await p.doctor.locator(".viewer-img").and(p.doctor.locator("[src]")).waitFor({ timeout: EVENT_TIMEOUT });
      await p.doctor.waitForFunction(() => document.querySelector("#viewer")?.getAttribute("data-loaded-page") === "1", null, { timeout: EVENT_TIMEOUT });
      /** Where the page lies in the stage, in pixels. */
      const placement = () =>
        p.doctor.evaluate(() => {
          const stage = /** @type {HTMLElement} */ (document.querySelector(".viewer-stage")).getBoundingClientRect();
          const sheet = /** @type {HTMLElement} */ (document.querySelector(".viewer-sheet")).getBoundingClientRect();
          return { top: sheet.top - stage.top, bottom: sheet.bottom - stage.bottom, left: sheet.left - stage.left, right: sheet.right - stage.right, height: sheet.height, stageHeight: stage.height };
        });
      // A tall page opens at its top, its width filling the view (not at its middle).
      const opened = await placement();
      assert.ok(opened.height > opened.stageHeight, `the A4 page is taller than the view at its width (${JSON.stringify(opened)})`);
      assert.ok(Math.abs(opened.top) < 2 && Math.abs(opened.left) < 2 && Math.abs(opened.right) < 2, `opened at its top, width fitted: ${JSON.stringify(opened)}`);
      // The whole page, then from the keyboard: + zooms, 0 fits the width again at the top.
      await p.doctor.locator(".viewer-fit-page").click();
      const whole = await placement();
      assert.ok(whole.top >= -1 && whole.bottom <= 1 && whole.height <= whole.stageHeight + 1, `the whole page in view: ${JSON.stringify(whole)}`);
      await p.doctor.locator(".viewer-stage").focus();
      await p.doctor.keyboard.press("0");
      await p.doctor.keyboard.press("+");
      await p.doctor.waitForFunction(() => document.querySelector("#viewer")?.getAttribute("data-zoom") === "1.25", null, { timeout: EVENT_TIMEOUT });
      await p.doctor.keyboard.press("ArrowDown");
      await p.doctor.keyboard.press("0");
      await p.doctor.waitForFunction(() => document.querySelector("#viewer")?.getAttribute("data-zoom") === "1", null, { timeout: EVENT_TIMEOUT });
      const fitted = await placement();
      assert.ok(Math.abs(fitted.top) < 2 && Math.abs(fitted.left) < 2, `0: width fitted, at the top again: ${JSON.stringify(fitted)}`);
      await p.doctor.locator(".viewer-present").click();
      await p.doctor.locator(".viewer-next").click();
      await p.doctor.locator(".viewer-zoom-in").click();
      const stage = await p.doctor.locator(".viewer-stage").boundingBox();
      assert.ok(stage);
      await p.doctor.mouse.move(stage.x + stage.width / 2, stage.y + stage.height / 2);
      await p.doctor.mouse.move(stage.x + stage.width / 2 + 20, stage.y + stage.height / 2 + 10);
      await p.specialist.waitForFunction(
        (id) => {
          const v = document.querySelector("#viewer");
          return (
            v?.getAttribute("data-document-id") === id &&
            v.getAttribute("data-page") === "2" &&
            v.getAttribute("data-loaded-page") === "2" &&
            v.getAttribute("data-zoom") === "1.25"
          );
        },
        docId.pdf,
        { timeout: EVENT_TIMEOUT, polling: 200 },
      );
      await p.specialist.locator(".viewer-pointer[data-pointer]").waitFor({ timeout: EVENT_TIMEOUT });
      // The rendered page really arrived (a decoded image, not a broken one).
      await p.specialist.waitForFunction(() => {
        const img = /** @type {HTMLImageElement | null} */ (document.querySelector(".viewer-img"));
        return !!img && img.complete && img.naturalWidth > 100;
      }, null, { timeout: EVENT_TIMEOUT });
      // The patient is not told about a clinicians-only document being presented.
      assert.equal(await p.patient.locator("#viewer").getAttribute("data-document-id"), null);
      await snap(p.specialist, "follow-specialist");
    });

    await check("the specialist annotates the page: the doctor sees it at once", { scenario: true }, async () => {
      await p.specialist.locator('.viewer-tools button[data-tool="circle"]').click();
      const stage = await p.specialist.locator(".viewer-stage").boundingBox();
      assert.ok(stage);
      await p.specialist.mouse.move(stage.x + stage.width * 0.5, stage.y + stage.height * 0.5);
      await p.specialist.mouse.down();
      await p.specialist.mouse.move(stage.x + stage.width * 0.55, stage.y + stage.height * 0.55);
      await p.specialist.mouse.up();
      await p.doctor.waitForFunction(() => document.querySelector("#viewer")?.getAttribute("data-annotations") === "1", null, { timeout: EVENT_TIMEOUT });
      assert.equal(await p.doctor.locator(".viewer-overlay .annotation-circle").count(), 1);
      await snap(p.doctor, "annotated-doctor");
    });

    await check("the clinicians confer privately: the patient's page says so, the specialist's that the patient cannot hear them; back to the patient clears it", { scenario: true }, async () => {
      await p.doctor.locator("#huddle-button").click();
      for (const page of [p.patient, p.specialist]) {
        await page.locator('#moderation-banner[data-huddle="true"]').waitFor({ state: "visible", timeout: EVENT_TIMEOUT });
      }
      assert.equal(await p.patient.locator("#huddle-button").isVisible(), false, "the patient cannot start or end a huddle");
      await p.specialist.waitForFunction(() => document.querySelector("#huddle-button")?.getAttribute("aria-pressed") === "true", undefined, { timeout: EVENT_TIMEOUT });
      await snap(p.patient, "huddle-patient");
      await p.specialist.locator("#huddle-button").click();
      for (const page of [p.patient, p.doctor, p.specialist]) {
        await page.locator("#moderation-banner").waitFor({ state: "hidden", timeout: EVENT_TIMEOUT });
      }
    });

    await check("the specialist signs a diagnosis report with their password (a wrong one first): doctor and patient see who signed", { scenario: true }, async () => {
      await p.specialist.locator('.tab[data-tab="records-panel"]').click();
      await p.specialist.locator(".record-forms summary", { hasText: "Diagnosis report" }).click();
      await p.specialist.locator('.report-form textarea[name="findings"]').fill("Hb 92 g/L, MCV 72 fL");
      await p.specialist.locator('.report-form textarea[name="impression"]').fill("缺铁性贫血 (iron-deficiency anaemia)");
      await p.specialist.locator('.report-form textarea[name="recommendation"]').fill("Oral iron; repeat blood count in 4 weeks");
      await p.specialist.locator(".report-form button[type=submit]").click();
      // Issuing signs it in the account's name: the password is asked for in a modal dialog.
      const dialog = p.specialist.getByRole("dialog", { name: "Sign and issue the diagnosis report" });
      await dialog.waitFor({ timeout: EVENT_TIMEOUT });
      assert.match((await dialog.textContent()) ?? "", /signed in your account's name/);
      await dialog.getByLabel("Your password").fill("not-the-password");
      await dialog.getByRole("button", { name: "Sign and issue" }).click();
      const error = dialog.locator("#sign-error");
      await error.waitFor({ timeout: EVENT_TIMEOUT });
      assert.match((await error.textContent()) ?? "", /password/i, "the server's answer is shown");
      assert.equal(await dialog.isVisible(), true, "the dialog stays open to try again");
      assert.equal(await p.doctor.locator('.record-item[data-kind="diagnosis_report"]').count(), 0, "nothing was issued");
      await snap(p.specialist, "sign-wrong-password");
      await dialog.getByLabel("Your password").fill(PASSWORD);
      await dialog.getByRole("button", { name: "Sign and issue" }).click();
      await dialog.waitFor({ state: "hidden", timeout: EVENT_TIMEOUT });
      await p.specialist.locator(".record-status", { hasText: "Diagnosis report signed and issued." }).waitFor({ timeout: EVENT_TIMEOUT });
      for (const page of [p.doctor, p.patient]) {
        await page.locator('.record-item[data-kind="diagnosis_report"][data-status="issued"]').waitFor({ state: "attached", timeout: EVENT_TIMEOUT });
      }
      await p.patient.locator('.tab[data-tab="records-panel"]').click();
      const report = p.patient.locator('.record-item[data-kind="diagnosis_report"]');
      assert.match((await report.locator(".record-body").textContent()) ?? "", /缺铁性贫血/);
      const signature = (await report.locator(".record-signature").textContent()) ?? "";
      assert.ok(signature.startsWith(`Signed by ${seatLabel(specialistMe)}, `), `signature line: ${signature}`);
      await snap(p.patient, "report-patient");
      await p.doctor.locator(".viewer-present").click(); // stop presenting
    });

    await check("the doctor signs a prescription (after cancelling once) with their password", { scenario: true }, async () => {
      await p.doctor.locator('.tab[data-tab="records-panel"]').click();
      await p.doctor.locator(".record-forms summary", { hasText: "Prescription" }).click();
      const form = p.doctor.locator(".rx-form");
      await form.locator('input[name="medication"]').fill("琥珀酸亚铁片 (ferrous succinate)");
      await form.locator('input[name="dose"]').fill("0.1 g");
      await form.locator('input[name="frequency"]').fill("three times daily");
      await form.locator('input[name="duration"]').fill("4 weeks");
      const dialog = p.doctor.getByRole("dialog", { name: "Sign and issue the prescription" });
      await form.locator("button[type=submit]").click();
      await dialog.getByRole("button", { name: "Cancel" }).click();
      await dialog.waitFor({ state: "hidden", timeout: EVENT_TIMEOUT });
      await p.doctor.locator(".record-status", { hasText: "signing was cancelled" }).waitFor({ timeout: EVENT_TIMEOUT });
      assert.equal(await form.locator('input[name="medication"]').inputValue(), "琥珀酸亚铁片 (ferrous succinate)", "the form keeps what was typed");
      await form.locator("button[type=submit]").click();
      await dialog.getByLabel("Your password").fill(PASSWORD);
      await snap(p.doctor, "sign-prescription");
      await dialog.getByRole("button", { name: "Sign and issue" }).click();
      await dialog.waitFor({ state: "hidden", timeout: EVENT_TIMEOUT });
      const rx = p.patient.locator('.record-item[data-kind="prescription"][data-status="issued"]');
      await rx.waitFor({ state: "attached", timeout: EVENT_TIMEOUT });
      const signature = (await rx.locator(".record-signature").textContent()) ?? "";
      assert.ok(signature.startsWith(`Signed by ${seatLabel(doctorMe)}, `), `signature line: ${signature}`);
    });

    await check("a consultation note is issued without a password", { scenario: true }, async () => {
      await p.doctor.locator(".record-forms summary", { hasText: "Consultation note" }).click();
      await p.doctor.locator('.note-form textarea[name="text"]').fill("Referred to cardiology for the anaemia work-up.");
      await p.doctor.locator(".note-form button[type=submit]").click();
      const note = p.specialist.locator('.record-item[data-kind="note"][data-status="issued"]');
      await note.waitFor({ state: "attached", timeout: EVENT_TIMEOUT });
      assert.equal(await note.locator(".record-signature").count(), 0, "a note carries no signature");
      assert.equal(await p.doctor.locator("#sign-dialog").isVisible(), false, "no password was asked for");
    });

    await check("chat reaches everyone and stays with the consultation", { scenario: true }, async () => {
      await p.patient.locator('.tab[data-tab="chat-panel"]').click();
      await p.patient.locator(".chat-input").fill("谢谢医生");
      await p.patient.locator(".chat-form button[type=submit]").click();
      for (const page of [p.doctor, p.specialist]) {
        await page.locator(".chat-item .chat-text", { hasText: "谢谢医生" }).waitFor({ state: "attached", timeout: EVENT_TIMEOUT });
      }
    });

    await check("a DICOM slice opens in the viewer with its header fields", { scenario: true }, async () => {
      await shareFile(p.doctor, { name: "chest-ct.dcm", mimeType: "application/dicom", buffer: ctSlice(64, 64) }, "clinicians");
      const id = await docIdByName(p.doctor, "chest-ct.dcm");
      await p.specialist.locator('.tab[data-tab="documents-panel"]').click();
      await p.specialist.locator(`.doc-item[data-document-id="${id}"] .doc-open`).click();
      await p.specialist.waitForFunction(
        () => {
          const v = document.querySelector("#viewer");
          const img = /** @type {HTMLImageElement | null} */ (document.querySelector(".viewer-img"));
          return v?.getAttribute("data-dicom-modality") === "CT" && v.getAttribute("data-loaded-page") === "1" && img?.naturalWidth === 64;
        },
        null,
        { timeout: EVENT_TIMEOUT, polling: 200 },
      );
      assert.match((await p.specialist.locator(".viewer-status").textContent()) ?? "", /CT/);
      await snap(p.specialist, "dicom-specialist");
    });

    await check("the doctor's signaling drops: Reconnecting…, resume, media carries on", { scenario: true }, async () => {
      // Record every state the page passes through: "reconnecting" may last well under a second.
      await p.doctor.evaluate(() => {
        const log = /** @type {string[]} */ ([]);
        Object.assign(window, { __stateLog: log });
        new MutationObserver(() => log.push(document.body.dataset.state ?? "")).observe(document.body, {
          attributes: true,
          attributeFilter: ["data-state"],
        });
      });
      const before = signalingRoutes.length;
      assert.ok(before > 0, "the doctor's signaling socket is routed");
      // A close code with no meaning in protocol.md: to both ends it looks like a dropped link.
      await signalingRoutes[before - 1].close({ code: 4900, reason: "test: network drop" });
      await p.doctor.waitForFunction(
        () => /** @type {string[]} */ (/** @type {any} */ (window).__stateLog).includes("reconnecting"),
        undefined,
        { timeout: EVENT_TIMEOUT, polling: 100 },
      );
      await waitForState(p.doctor, "in-room", EVENT_TIMEOUT);
      assert.ok(signalingRoutes.length > before, "a new signaling socket was opened (resume)");
      // Resume keeps the participant: same id, same peer connection, nobody saw them leave.
      assert.equal(await localId(p.doctor), id.doctor, "the doctor is still the same participant");
      await waitForTileCount(p.patient, 3, EVENT_TIMEOUT);
      await p.patient.waitForFunction(
        (doc) => {
          const badge = document.querySelector(`#tiles .tile[data-participant-id="${doc}"] .badge-reconnecting`);
          return badge instanceof HTMLElement && badge.hidden;
        },
        id.doctor,
        { timeout: EVENT_TIMEOUT, polling: 200 },
      );
      await waitForPlayingRemotes(p.doctor, 2);
      await waitForPlayingRemotes(p.patient, 2);
      // The patient's mute survived the doctor's reconnect.
      await waitForMutedBadge(p.doctor, id.patient, true);
    });

    await check("the specialist reloads after the entry token expired: a fresh one comes from the console's session, back in as the account", { scenario: true }, async () => {
      const page = p.specialist;
      const before = new URL(page.url()).hash.slice(1);
      // The server's answer to a `join` with an expired entry token (as for a reload minutes
      // after entering), played by the test on the first new socket: the page must take a fresh
      // token from the console's session in this tab and join again, replacing its old self.
      let mocked = 0;
      await page.context().routeWebSocket(/\/ws$/, (ws) => {
        if (mocked > 0) {
          ws.connectToServer();
          return;
        }
        mocked += 1;
        ws.onMessage((message) => {
          if (JSON.parse(String(message)).type !== "join") return;
          ws.send(JSON.stringify({ type: "error", code: "token_expired", message: "the token has expired", fatal: true }));
          void ws.close({ code: 4001, reason: "token expired" });
        });
      });
      await page.reload({ waitUntil: "load" });
      await waitForState(page, "in-room");
      assert.equal(mocked, 1, "the first join was refused as expired");
      const after = new URL(page.url()).hash.slice(1);
      assert.notEqual(after, before, "the address holds the fresh entry token");
      assert.equal(typeof JSON.parse(Buffer.from(after.split(".")[1], "base64url").toString("utf8")).sid, "string");
      const newId = await localId(page);
      await waitForTileGone(p.patient, id.specialist);
      const tile = p.patient.locator(`#tiles .tile[data-participant-id="${newId}"] .tile-name`);
      await tile.waitFor({ timeout: EVENT_TIMEOUT });
      assert.equal(await tile.textContent(), seatLabel(specialistMe));
      id.specialist = newId;
      await waitForTileCount(p.patient, 3, EVENT_TIMEOUT);
      await waitForPlayingRemotes(page, 2);
      await snap(page, "specialist-after-reload");
    });

    await check("the specialist leaves: its tile disappears for the others", { scenario: true }, async () => {
      await p.specialist.locator("#leave-button").click();
      await waitForState(p.specialist, "ended", EVENT_TIMEOUT);
      await waitForTileGone(p.doctor, id.specialist);
      await waitForTileGone(p.patient, id.specialist);
      await waitForTileCount(p.doctor, 2, EVENT_TIMEOUT);
      await waitForTileCount(p.patient, 2, EVENT_TIMEOUT);
      // Screen readers are told who left (a polite live region nobody sees); the patient's page
      // in their language.
      assert.equal(await p.doctor.locator("#announcer").getAttribute("aria-live"), "polite");
      await p.doctor.locator("#announcer", { hasText: /left the consultation\.$/ }).waitFor({ state: "attached", timeout: EVENT_TIMEOUT });
      await snap(p.specialist, "specialist-left");
      await snap(p.doctor, "after-leave-doctor");
    });

    await check("the patient reloads the page and is back in the room, still muted", { scenario: true }, async () => {
      await p.patient.reload({ waitUntil: "load" });
      await waitForState(p.patient, "in-room");
      // The language chosen with the switch (English) is remembered over the browser's (Chinese).
      assert.equal(await p.patient.locator("html").getAttribute("lang"), "en");
      await waitForTileCount(p.patient, 2);
      const newPatientId = await localId(p.patient);
      // `join` with `replaces` removes the old participant at once: no ghost tile.
      await waitForTileGone(p.doctor, id.patient);
      await p.doctor.waitForSelector(`#tiles .tile[data-participant-id="${newPatientId}"]`, { timeout: EVENT_TIMEOUT });
      await waitForTileCount(p.doctor, 2, EVENT_TIMEOUT);
      id.patient = newPatientId;
      await waitForPlayingRemotes(p.doctor, 1);
      await waitForPlayingRemotes(p.patient, 1);
      // Muted before the reload, muted after it: on their own controls and for the doctor.
      assert.equal(await p.patient.locator("#mic-button").getAttribute("aria-label"), "Unmute microphone");
      await waitForMutedBadge(p.patient, id.patient, true);
      await waitForMutedBadge(p.doctor, id.patient, true);
      await snap(p.patient, "patient-after-reload");
    });

    await check("the doctor ends the consultation: the patient sees it has ended", { scenario: true }, async () => {
      await p.doctor.locator("#end-button").click();
      await p.doctor.locator("#end-confirm").click();
      await waitForState(p.patient, "ended", EVENT_TIMEOUT);
      await waitForState(p.doctor, "ended", EVENT_TIMEOUT);
      const title = (await p.patient.locator("#status-title").textContent()) ?? "";
      assert.match(title, /The consultation has ended/);
      assert.equal(await p.patient.locator("#tiles .tile").count(), 0, "no tiles remain");
      await snap(p.patient, "ended-patient");
      await snap(p.doctor, "ended-doctor");
      const login = await http.post("/api/v1/auth/login", { data: { username: USERNAME, password: PASSWORD } });
      const auth = { Authorization: `Bearer ${(await login.json()).token}` };
      const after = await http.get(`/api/v1/rooms/${roomId}`, { headers: auth });
      assert.equal(after.status(), 200);
      assert.notEqual((await after.json()).status, liveStatus, "the room's status changed when it ended");
    });

    await check("a pharmacist reviews and dispenses the prescription in the console", { scenario: true }, async () => {
      if (!PHARMACIST) {
        console.log("     (no HUIZHEN_PHARMACIST: skipped)");
        return;
      }
      if (!browser) throw new Error("no browser");
      const context = await newContext(browser, { width: 1100, height: 900 });
      const page = await context.newPage();
      watchPage(page, "pharmacist");
      pages.set("pharmacist", page);
      await page.goto(`${BASE}/`, { waitUntil: "load", timeout: JOIN_TIMEOUT });
      // More than a page waits: the doctor issues a page's worth and one more in a
      // consultation of their own (rejected again below, so that later scenarios find theirs on
      // the first page).
      const seeder = await openConsole(browser, "rx-seeder", USERNAME);
      const extra = await apiFrom(seeder, "POST", "/api/v1/rooms", { title: `Pharmacy paging ${Date.now()}`, patient_ref: "MRN-RX-PAGE", waiting_room: false });
      const seeded = await issuePrescriptions(seeder, extra.id, PRESCRIPTIONS_PAGE + 1, PASSWORD, "Paging test drug");
      pages.delete("rx-seeder");
      await seeder.context().close();
      await page.getByLabel("Username").fill(PHARMACIST);
      await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
      await page.getByRole("button", { name: "Sign in" }).click();
      // A page at a time, oldest first, with how many there are in all; "Show more" until the
      // last page, which hides it.
      const toReview = page.locator('section[data-queue="issued"]');
      await toReview.locator(".rx-item").first().waitFor({ timeout: EVENT_TIMEOUT });
      assert.equal(await toReview.locator(".rx-item").count(), PRESCRIPTIONS_PAGE, "one page");
      const shown = (await toReview.locator(".rx-shown").textContent()) ?? "";
      const total = Number(new RegExp(`^Showing ${PRESCRIPTIONS_PAGE} of (\\d+)\\.$`).exec(shown)?.[1]);
      assert.ok(total >= PRESCRIPTIONS_PAGE + 2, `the ferrous succinate and the seeded ones: ${shown}`);
      const more = toReview.getByRole("button", { name: "Show more" });
      for (let pageNo = 2; (await more.isVisible()); pageNo++) {
        await more.click();
        await toReview.locator(".rx-item").nth(Math.min(total, pageNo * PRESCRIPTIONS_PAGE) - 1).waitFor({ timeout: EVENT_TIMEOUT });
      }
      assert.equal(await toReview.locator(".rx-item").count(), total, "every page shown once");
      assert.equal(await toReview.locator(".rx-shown").isVisible(), false);
      const listed = await toReview.locator(".rx-item").evaluateAll((items) => items.map((li) => li.getAttribute("data-record-id")));
      assert.equal(new Set(listed).size, total, "no prescription twice");
      for (const id of seeded) assert.ok(listed.includes(id), `seeded ${id} listed`);
      await snap(page, "pharmacist-all-pages");
      for (const id of seeded) await apiFrom(page, "POST", `/api/v1/prescriptions/${id}/reject`, { note: "paging test" });
      await page.reload({ waitUntil: "load" });
      const item = page.locator(".rx-item", { hasText: "ferrous succinate" });
      await item.waitFor({ timeout: EVENT_TIMEOUT });
      // The queue says who signed it.
      const signature = (await item.locator(".record-signature").textContent()) ?? "";
      assert.ok(signature.startsWith(`Signed by ${seatLabel(doctorMe)}, `), `signature line: ${signature}`);
      await snap(page, "pharmacist-queue");
      await item.locator('button[data-action="review"]').click({ timeout: EVENT_TIMEOUT });
      await page.locator(".rx-item", { hasText: "ferrous succinate" }).locator('button[data-action="dispense"]').click({ timeout: EVENT_TIMEOUT });
      await page.locator("[role=status]", { hasText: "dispensed" }).waitFor({ timeout: EVENT_TIMEOUT });
      await snap(page, "pharmacist");
      pages.delete("pharmacist");
      await context.close();
    });

    await check("the doctor's console shows the summary and exports PDF and FHIR", { scenario: true }, async () => {
      if (!browser) throw new Error("no browser");
      const context = await newContext(browser, { width: 1100, height: 900 });
      const page = await context.newPage();
      watchPage(page, "console-summary");
      pages.set("console-summary", page);
      await page.goto(`${BASE}/`, { waitUntil: "load", timeout: JOIN_TIMEOUT });
      await page.getByLabel("Username").fill(USERNAME);
      await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
      await page.getByRole("button", { name: "Sign in" }).click();
      const card = page.locator(`li.room-card[data-room-id="${roomId}"]`);
      await card.getByRole("button", { name: /^Summary/ }).click({ timeout: EVENT_TIMEOUT });
      const summary = page.locator("#summary");
      await summary.locator("h2", { hasText: "Summary" }).waitFor({ timeout: EVENT_TIMEOUT });
      const text = (await summary.textContent()) ?? "";
      for (const want of ["lab-results.pdf", "缺铁性贫血", "谢谢医生", seatLabel(specialistMe), `Signed by ${seatLabel(specialistMe)}`]) {
        assert.ok(text.includes(want), `the summary shows ${want}`);
      }
      if (PHARMACIST) await summary.locator('[data-status="dispensed"]').waitFor({ state: "attached", timeout: EVENT_TIMEOUT });
      for (const [label, ext] of [["Export PDF", ".pdf"], ["Export FHIR (JSON)", ".fhir.json"]]) {
        const [download] = await Promise.all([page.waitForEvent("download", { timeout: EVENT_TIMEOUT }), summary.getByRole("button", { name: label }).click()]);
        assert.ok(download.suggestedFilename().endsWith(ext), download.suggestedFilename());
        const file = await download.path();
        const bytes = await readFile(file);
        if (ext === ".pdf") assert.ok(bytes.subarray(0, 5).toString("latin1") === "%PDF-", "a PDF");
        else assert.equal(JSON.parse(bytes.toString("utf8")).resourceType, "Bundle");
      }
      await snap(page, "summary");
      pages.delete("console-summary");
      await context.close();
    });

    await check("a supervisor sees the audit trail of it all, and it verifies", {}, async () => {
      if (!SUPERVISOR) {
        console.log("     (no HUIZHEN_SUPERVISOR: skipped)");
        return;
      }
      if (!browser) throw new Error("no browser");
      const context = await newContext(browser, { width: 1280, height: 900 });
      const page = await context.newPage();
      watchPage(page, "supervisor");
      pages.set("supervisor", page);
      await page.goto(`${BASE}/`, { waitUntil: "load", timeout: JOIN_TIMEOUT });
      await page.getByLabel("Username").fill(SUPERVISOR);
      await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
      await page.getByRole("button", { name: "Sign in" }).click();
      const audit = page.locator("#audit");
      for (const action of ["care_team.added", "care_team.seat_entered", "document.shared", "document.viewed", "record.signed", "record.issued", "prescription.state_changed", "consultation.exported"]) {
        await audit.locator("td", { hasText: action }).first().waitFor({ state: "attached", timeout: EVENT_TIMEOUT });
      }
      // In words, with the code as recorded beside them.
      await audit.locator('td[data-code="record.signed"]', { hasText: "Record signed" }).first().waitFor({ state: "attached", timeout: EVENT_TIMEOUT });
      await audit.getByRole("button", { name: "Verify the chain" }).click();
      await audit.locator(".audit-result", { hasText: "Intact" }).waitFor({ timeout: EVENT_TIMEOUT });
      // A supervisor also sees every consultation, and its summary.
      await page.locator(`li.room-card[data-room-id="${roomId}"]`).waitFor({ timeout: EVENT_TIMEOUT });
      await snap(page, "audit-supervisor");
      pages.delete("supervisor");
      await context.close();
    });

    // ---- the waiting room ----------------------------------------------------------------------
    // A consultation opened from the console with its waiting room (the form's default): the
    // doctor enters; two patients on phones wait in line, see the clinic's message, are admitted,
    // sent back, admitted again or declined; a second clinician's stale Admit is told it came
    // too late; a locked room turns a new link away.
    /** @type {Record<string, import("playwright-core").Page>} */
    const w = {};
    /** @type {Record<string, string>} */
    const lobby = { room: "", title: "", patient1: "", patient2: "", late: "" };
    /** Every signaling frame the first waiting patient's page received. */
    const waiterSignaling = /** @type {string[]} */ ([]);
    /** The specialist's `waiting_room` updates held back by the test (a slow second clinician). */
    const heldQueue = { on: false, frames: /** @type {string[]} */ ([]), page: /** @type {import("playwright-core").WebSocketRoute | null} */ (null) };
    const phone = { width: 390, height: 844 };
    /**
     * @param {import("playwright-core").Page} page
     * @param {string} text
     */
    const waitForPosition = (page, text) => page.locator("#waiting-position", { hasText: text }).waitFor({ timeout: EVENT_TIMEOUT });

    await check("console: the doctor opens a consultation with a waiting room (checked by default) and enters", { scenario: "lobby" }, async () => {
      if (!browser) throw new Error("no browser");
      const page = await openConsole(browser, "lobby-doctor", USERNAME, { camera: true });
      const box = page.getByLabel("Waiting room: patients wait until admitted");
      assert.equal(await box.isChecked(), true, "the waiting room is on by default");
      lobby.title = `Waiting room test ${new Date().toISOString()}`;
      await page.getByLabel("Title", { exact: true }).fill(lobby.title);
      await page.getByRole("button", { name: "Create consultation" }).click();
      const card = page.locator("li.room-card", { has: page.locator("h3", { hasText: lobby.title }) });
      await card.waitFor({ timeout: EVENT_TIMEOUT });
      lobby.room = (await card.getAttribute("data-room-id")) ?? "";
      assert.ok(lobby.room, "the card names its room");
      await card.locator(".status-waiting-room", { hasText: "Waiting room" }).waitFor({ timeout: EVENT_TIMEOUT });
      const seen = await (await http.get(`/api/v1/rooms/${lobby.room}`, { headers: doctorAuth })).json();
      assert.equal(seen.waiting_room, true, "created with a waiting room");
      for (const key of /** @type {const} */ (["patient1", "patient2", "late"])) {
        // Single-use links: the second patient's reload while waiting does not spend theirs (the
        // server gives a use back to whoever leaves the line without being let in).
        const data = { role: "patient" };
        const res = await http.post(`/api/v1/rooms/${lobby.room}/invites`, { headers: doctorAuth, data });
        assert.ok(res.ok(), `create patient invite status ${res.status()}`);
        lobby[key] = (await res.json()).token;
      }
      await snap(page, "lobby-console");
      await card.getByRole("button", { name: "Enter consultation" }).click();
      await page.waitForURL(/\/join#hz1\./, { timeout: EVENT_TIMEOUT });
      await joinSeat(page);
      // A clinician goes straight in, and manages the waiting room from its tab.
      await waitForState(page, "in-room");
      w.doctor = page;
      const tab = page.locator('.tab[data-tab="queue-panel"]');
      await tab.waitFor({ timeout: EVENT_TIMEOUT });
      assert.equal(await page.locator("#queue-count").isVisible(), false, "no badge while nobody waits");
      await tab.click();
      await page.locator("#queue-panel .queue-empty", { hasText: "Nobody is waiting." }).waitFor({ timeout: EVENT_TIMEOUT });
      assert.equal(await page.getByRole("button", { name: "Admit next" }).isDisabled(), true);
    });

    await check("a patient opens their link on a phone and waits: number 1 in line, nothing of the room", { scenario: "lobby" }, async () => {
      if (!browser) throw new Error("no browser");
      w.patient1 = await openJoinPage(browser, "lobby-patient1", `${BASE}/join#${lobby.patient1}`, "Chen Jie", {
        viewport: phone,
        recordSignaling: waiterSignaling,
      });
      await waitForState(w.patient1, "waiting");
      await waitForPosition(w.patient1, "You are number 1 in line (of 1)");
      assert.equal(await w.patient1.locator("#waiting-consultation").textContent(), lobby.title);
      assert.equal(await w.patient1.locator("#waiting-position").isVisible(), true);
      assert.equal(await w.patient1.locator(".waiting-status").getAttribute("aria-live"), "polite", "the place in line is announced");
      assert.equal(await w.patient1.locator("#waiting-estimate").isVisible(), false, "no estimate before any admission");
      assert.equal(await w.patient1.getByRole("button", { name: "Leave" }).isVisible(), true);
      // The camera stays on (admission is instant) and the pre-call check ran.
      await w.patient1.locator('#waiting-checks[data-connection="good"]').waitFor({ timeout: EVENT_TIMEOUT });
      assert.match((await w.patient1.locator("#waiting-checks").textContent()) ?? "", /Camera works · Microphone works · Connection good/);
      assert.equal(await w.patient1.locator("#waiting-preview").isVisible(), true, "their own camera is shown");
      await assertTextFromCatalogue(w.patient1, "the waiting screen");
      assert.equal(await w.patient1.locator("#tiles .tile").count(), 0);
      const frames = waiterSignaling.join("\n");
      for (const absent of ["access_token", "resume_token", '"offer"', '"participants"']) {
        assert.ok(!frames.includes(absent), `nothing of the room reached someone waiting (${absent})`);
      }
      // Large text for a phone: the place in line is at least 28px.
      const size = await w.patient1.locator("#waiting-position").evaluate((n) => parseFloat(getComputedStyle(n).fontSize));
      assert.ok(size >= 28, `the place in line is large (${size}px)`);
    });

    await check("a second patient is number 2; the doctor sees both, with waiting times and pre-call checks", { scenario: "lobby" }, async () => {
      if (!browser) throw new Error("no browser");
      w.patient2 = await openJoinPage(browser, "lobby-patient2", `${BASE}/join#${lobby.patient2}`, "Zhou Min", { viewport: phone });
      await waitForState(w.patient2, "waiting");
      await waitForPosition(w.patient2, "You are number 2 in line (of 2)");
      await waitForPosition(w.patient1, "You are number 1 in line (of 2)");
      const doctor = w.doctor;
      await doctor.locator("#queue-count", { hasText: "2" }).waitFor({ timeout: EVENT_TIMEOUT });
      const items = doctor.locator("#queue-panel .queue-item");
      // First the signaling round trip, then the network check over the media path replaces
      // it: the figures the browser read on a real peer connection to the server.
      await doctor.waitForFunction(() => document.querySelectorAll('#queue-panel .queue-precall[data-media-path="connected"]').length === 2, null, {
        timeout: EVENT_TIMEOUT,
        polling: 200,
      });
      assert.deepEqual(await items.locator(".queue-name").allTextContents(), ["Chen Jie", "Zhou Min"], "longest waiting first");
      for (const text of await items.locator(".queue-waited").allTextContents()) assert.match(text, /^Waiting (less than a minute|\d+ min)/);
      for (const text of await items.locator(".queue-precall").allTextContents()) {
        assert.match(
          text,
          /camera OK.*microphone OK.*connection (good|fair|poor): \d+\sms · upload \d+(\.\d)?\s(k|M)bit\/s, \d+\.\d\s% lost · download at least \d+(\.\d)?\s(k|M)bit\/s, \d+\.\d\s% lost, jitter \d+\sms/,
        );
      }
      // The person waiting reads the same check in plain words, with advice.
      for (const page of [w.patient1, w.patient2]) {
        const network = page.locator('#waiting-network[data-path="connected"]');
        await network.waitFor({ timeout: EVENT_TIMEOUT });
        assert.match(
          (await network.locator(".net-figures").textContent()) ?? "",
          /^Round trip \d+\sms · upload \d+(\.\d)?\s(k|M)bit\/s, loss \d+\.\d\s% · download at least \d+(\.\d)?\s(k|M)bit\/s, loss \d+\.\d\s%$/,
        );
        assert.match((await network.getAttribute("data-down-quality")) ?? "", /^(good|fair|poor)$/, "the download was judged");
        assert.match((await network.locator(".net-advice").textContent()) ?? "", /^Your connection is (good for video|fair|weak)/);
      }
      assert.equal(await items.locator(".badge-sent-back:visible").count(), 0, "nobody was sent back yet");
      await snap(w.patient1, "waiting-patient1");
      await snap(w.patient2, "waiting-patient2");
      await snap(doctor, "queue-panel-doctor");
    });

    await check("the doctor's message reaches everyone waiting", { scenario: "lobby" }, async () => {
      const message = "The doctor is running 10 minutes late";
      await w.doctor.getByLabel("Message to everyone waiting").fill(message);
      await w.doctor.getByRole("button", { name: "Send message" }).click();
      for (const page of [w.patient1, w.patient2]) {
        await page.locator("#waiting-message-text", { hasText: message }).waitFor({ timeout: EVENT_TIMEOUT });
        assert.equal(await page.locator("#waiting-message").isVisible(), true);
      }
      await w.doctor.locator(".queue-message-current", { hasText: message }).waitFor({ timeout: EVENT_TIMEOUT });
      await snap(w.patient1, "waiting-message-patient1");
      await snap(w.patient2, "waiting-message-patient2");
    });

    await check("Admit next: the first patient is in the room and sees the doctor's video; the second is number 1", { scenario: "lobby" }, async () => {
      await w.doctor.getByRole("button", { name: "Admit next" }).click();
      await waitForState(w.patient1, "in-room");
      await waitForTileCount(w.patient1, 2);
      await waitForPlayingRemotes(w.patient1, 1);
      await waitForPlayingRemotes(w.doctor, 1);
      id.lobbyPatient1 = await localId(w.patient1);
      await waitForPosition(w.patient2, "You are number 1 in line (of 1)");
      await w.doctor.locator("#queue-count", { hasText: "1" }).waitFor({ timeout: EVENT_TIMEOUT });
      await snap(w.patient1, "admitted-patient1");
      // Let in, the patient is asked for consent first thing; they decide later.
      await w.patient1.locator("#consent-dialog[open]").waitFor({ timeout: EVENT_TIMEOUT });
      await w.patient1.getByRole("button", { name: "Done", exact: true }).click();
      await w.patient1.locator("#consent-dialog").waitFor({ state: "hidden", timeout: EVENT_TIMEOUT });
    });

    await check("the second patient reloads while waiting: back in line at once, without the pre-join screen", { scenario: "lobby" }, async () => {
      // Every state the reloaded page passes through.
      await w.patient2.addInitScript(() => {
        const log = /** @type {string[]} */ ([]);
        Object.assign(window, { __stateLog: log });
        new MutationObserver(() => log.push(document.body?.dataset.state ?? "")).observe(document, {
          subtree: true,
          attributes: true,
          attributeFilter: ["data-state"],
        });
      });
      await w.patient2.reload({ waitUntil: "load" });
      await waitForState(w.patient2, "waiting");
      await waitForPosition(w.patient2, "You are number 1 in line (of 1)");
      const states = await w.patient2.evaluate(() => /** @type {string[]} */ (/** @type {any} */ (window).__stateLog));
      assert.ok(!states.includes("prejoin"), `no pre-join screen on the way: ${states.join(" > ")}`);
      await w.doctor.waitForFunction(
        () => [...document.querySelectorAll("#queue-panel .queue-name")].map((n) => n.textContent).join() === "Zhou Min",
        null,
        { timeout: EVENT_TIMEOUT, polling: 200 },
      );
    });

    await check("the doctor sends the patient back with a reason: waiting screen with the reason, no video", { scenario: "lobby" }, async () => {
      const tile = w.doctor.locator(`#tiles .tile[data-participant-id="${id.lobbyPatient1}"]`);
      await tile.getByRole("button", { name: "Send back Chen Jie to the waiting room" }).click();
      const dialog = w.doctor.getByRole("dialog", { name: "Send Chen Jie back to the waiting room?" });
      await dialog.waitFor({ timeout: EVENT_TIMEOUT });
      await dialog.getByLabel("Reason shown to them").fill("The doctors are conferring");
      await snap(w.doctor, "send-back-dialog");
      await dialog.getByRole("button", { name: "Send back" }).click();
      await waitForState(w.patient1, "waiting");
      await w.patient1.locator("#waiting-reason", { hasText: "The doctors are conferring" }).waitFor({ timeout: EVENT_TIMEOUT });
      assert.equal(await w.patient1.locator("#waiting-title").textContent(), "The doctor asked you to wait");
      // Someone sent back waits at the front.
      await waitForPosition(w.patient1, "You are number 1 in line (of 2)");
      await waitForPosition(w.patient2, "You are number 2 in line (of 2)");
      assert.equal(await w.patient1.locator("#tiles .tile").count(), 0, "the room view is gone");
      const playing = await w.patient1.locator("video").evaluateAll((vs) => vs.filter((v) => /** @type {HTMLVideoElement} */ (v).srcObject).map((v) => v.id));
      assert.deepEqual(playing, ["waiting-preview"], "no video but their own camera");
      await waitForTileGone(w.doctor, id.lobbyPatient1);
      const back = w.doctor.locator(`#queue-panel .queue-item[data-participant-id="${id.lobbyPatient1}"]`);
      await back.waitFor({ timeout: EVENT_TIMEOUT });
      assert.equal(await back.getAttribute("data-sent-back"), "true");
      assert.equal(await back.locator(".badge-sent-back").isVisible(), true);
      await snap(w.patient1, "sent-back-patient1");
    });

    await check("a second clinician enters; the doctor admits the patient again, who sees both videos; the specialist's late Admit is told", { scenario: "lobby" }, async () => {
      if (!browser) throw new Error("no browser");
      const add = await http.post(`/api/v1/rooms/${lobby.room}/care-team`, { headers: doctorAuth, data: { user_id: specialistMe.id } });
      assert.ok(add.ok(), `add to the care team: status ${add.status()}`);
      const { auth } = await apiSignIn(http, SPECIALIST);
      const context = await newContext(browser, { width: 1280, height: 800 });
      // The specialist's page is slow to hear about the queue: its updates are held back while
      // the doctor admits, so its Admit arrives for someone already in the room.
      await context.routeWebSocket(/\/ws$/, (ws) => {
        const server = ws.connectToServer();
        heldQueue.page = ws;
        server.onMessage((message) => {
          const text = String(message);
          if (heldQueue.on && text.includes('"type":"waiting_room"')) heldQueue.frames.push(text);
          else ws.send(message);
        });
      });
      await context.grantPermissions(["camera", "microphone"], { origin: BASE });
      const page = await context.newPage();
      watchPage(page, "lobby-specialist");
      pages.set("lobby-specialist", page);
      await page.goto(`${BASE}/join#${await enterToken(http, auth, lobby.room)}`, { waitUntil: "load", timeout: JOIN_TIMEOUT });
      await joinSeat(page);
      await waitForState(page, "in-room");
      w.specialist = page;
      await page.locator('.tab[data-tab="queue-panel"]').click();
      const stale = page.locator(`#queue-panel .queue-item[data-participant-id="${id.lobbyPatient1}"]`);
      await stale.waitFor({ timeout: EVENT_TIMEOUT });
      heldQueue.on = true;
      await w.doctor.getByRole("button", { name: "Admit Chen Jie" }).click();
      await waitForState(w.patient1, "in-room");
      assert.equal(await localId(w.patient1), id.lobbyPatient1, "the same participant, admitted again");
      // A fresh peer connection: the doctor's and the specialist's pictures play.
      await waitForTileCount(w.patient1, 3);
      await waitForPlayingRemotes(w.patient1, 2);
      await stale.getByRole("button", { name: "Admit Chen Jie" }).click();
      await page.locator("#notice", { hasText: "Already admitted by someone else" }).waitFor({ timeout: EVENT_TIMEOUT });
      await page.locator("#queue-panel .queue-status", { hasText: "Already admitted by someone else" }).waitFor({ timeout: EVENT_TIMEOUT });
      await snap(page, "already-admitted-specialist");
      heldQueue.on = false;
      for (const frame of heldQueue.frames.splice(0)) heldQueue.page?.send(frame);
      await stale.waitFor({ state: "detached", timeout: EVENT_TIMEOUT });
      // Two admissions: the one still waiting is given an estimate now.
      await w.patient2.locator("#waiting-estimate", { hasText: /^Estimated wait: about \d+ (min|h)$/ }).waitFor({ timeout: EVENT_TIMEOUT });
      await waitForPosition(w.patient2, "You are number 1 in line (of 1)");
      await snap(w.patient2, "waiting-estimate-patient2");
    });

    await check("the doctor declines the second patient with a reason: the declined screen", { scenario: "lobby" }, async () => {
      await w.doctor.getByRole("button", { name: "Decline Zhou Min" }).click();
      const dialog = w.doctor.getByRole("dialog", { name: "Decline Zhou Min?" });
      await dialog.waitFor({ timeout: EVENT_TIMEOUT });
      await dialog.getByLabel("Reason shown to them").fill("Please book a visit in person");
      await dialog.getByRole("button", { name: "Decline", exact: true }).click();
      await waitForState(w.patient2, "error");
      assert.equal(await w.patient2.locator("#status-panel").getAttribute("data-error-code"), "declined");
      assert.equal(await w.patient2.locator("#status-title").textContent(), "You were not admitted");
      assert.match((await w.patient2.locator("#status-detail").textContent()) ?? "", /Please book a visit in person/);
      assert.equal(await w.patient2.locator("#status-action").isVisible(), false, "nothing to retry");
      await w.doctor.locator("#queue-panel .queue-empty").waitFor({ timeout: EVENT_TIMEOUT });
      await snap(w.patient2, "declined-patient2");
    });

    await check("the doctor locks the consultation: a new link shows the locked screen", { scenario: "lobby" }, async () => {
      if (!browser) throw new Error("no browser");
      await w.doctor.getByRole("button", { name: "Lock the consultation to new arrivals" }).click();
      await w.doctor.locator('#queue-panel .queue-lock[aria-pressed="true"]').waitFor({ timeout: EVENT_TIMEOUT });
      await snap(w.doctor, "locked-doctor");
      const page = await openJoinPage(browser, "lobby-late", `${BASE}/join#${lobby.late}`, "Late Patient", { viewport: phone });
      await waitForState(page, "error");
      assert.equal(await page.locator("#status-panel").getAttribute("data-error-code"), "room_locked");
      assert.equal(await page.locator("#status-title").textContent(), "The consultation is closed to new arrivals");
      await snap(page, "locked-patient");
      // The admitted patient is not affected.
      assert.equal(w.patient1.isClosed() ? "" : await w.patient1.evaluate(() => document.body.dataset.state), "in-room");
    });

    // Whatever happened above: the scenario's pages go.
    for (const who of ["lobby-doctor", "lobby-patient1", "lobby-patient2", "lobby-specialist", "lobby-late"]) {
      const page = pages.get(who);
      pages.delete(who);
      await page?.context().close().catch(() => undefined);
    }

    await adminScenario({ check, snap, newContext, watchPage, pages, browser, http, base: BASE, password: PASSWORD, doctor: USERNAME, timeout: EVENT_TIMEOUT, assertTextFromCatalogue, openJoinPage });
    const webhookHarness = { check, snap, browser, openConsole, pages, timeout: EVENT_TIMEOUT, assertTextFromCatalogue, http, apiSignIn, doctor: USERNAME };
    const hooks = await webhookSetup(webhookHarness);
    await referralScenario({ check, snap, browser, openConsole, openJoinPage, pages, doctor: USERNAME, specialist: SPECIALIST, timeout: EVENT_TIMEOUT, assertTextFromCatalogue, http, apiSignIn, ctSlice });
    // Checked before the referral steps send more: the console lists an institution's 20 most
    // recent events, and the request this looks for must still be among them.
    await webhookCheck(webhookHarness, hooks);
    await referralStepsScenario({ check, snap, browser, openConsole, openJoinPage, apiSignIn, enterToken, pages, http, base: BASE, password: PASSWORD, doctor: USERNAME, specialist: SPECIALIST, timeout: EVENT_TIMEOUT, assertTextFromCatalogue });
    await lateScenario({ check, snap, browser, openConsole, openJoinPage, pages, doctor: USERNAME, specialist: SPECIALIST, timeout: EVENT_TIMEOUT, assertTextFromCatalogue, base: BASE });
    await screenShareScenario({ check, snap, browser, openConsole, openJoinPage, pages, doctor: USERNAME, specialist: SPECIALIST, timeout: EVENT_TIMEOUT, assertTextFromCatalogue, base: BASE });
    await moderationScenario({ check, snap, browser, openConsole, openJoinPage, pages, doctor: USERNAME, specialist: SPECIALIST, timeout: EVENT_TIMEOUT, assertTextFromCatalogue, base: BASE });
    await linkCheckScenario({ check, snap, newContext, watchPage, pages, browser, http, base: BASE, password: PASSWORD, doctor: USERNAME, specialist: SPECIALIST, timeout: EVENT_TIMEOUT });
    await firefoxScenario({ check, snap, newContext, watchPage, pages, browser, http, base: BASE, password: PASSWORD, doctor: USERNAME, specialist: SPECIALIST, timeout: EVENT_TIMEOUT, out: OUT });
    await turn();
    await cap();
    await downcap();
    await workflows();

    await a11yScenario({ check, snap, newContext, watchPage, openConsole, pages, browser, http, apiSignIn, base: BASE, doctor: USERNAME, timeout: EVENT_TIMEOUT, assertTextFromCatalogue });
    await timeZoneScenario({ check, browser, base: BASE, timeout: EVENT_TIMEOUT });
    await phoneScenario({ check, snap, browser, newContext, watchPage, openJoinPage, pages, http, base: BASE, password: PASSWORD, doctor: USERNAME, timeout: EVENT_TIMEOUT, assertTextFromCatalogue });
    await brandingScenario({ check, snap, browser, newContext, watchPage, openJoinPage, pages, http, base: BASE, password: PASSWORD, doctor: USERNAME, timeout: EVENT_TIMEOUT, assertTextFromCatalogue });

    await check("no page threw, tripped the CSP, or logged a token or SDP", {}, async () => {
      assert.deepEqual(pageProblems, []);
    });
  } finally {
    await browser?.close().catch(() => undefined);
    await http.dispose().catch(() => undefined);
  }
}

const watchdog = setTimeout(() => {
  console.log(`FAIL the run took longer than ${WATCHDOG_MS / 60_000} minutes`);
  // Whether the run hung or the machine was busy: the check under way, the load, and what
  // took the processors (a run on a loaded machine is slow everywhere, a hang in one place).
  console.log(`     under way: ${running || "(set-up)"}`);
  console.log(`     load average: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")} on ${os.cpus().length} processors`);
  try {
    console.log(indent(execFileSync("ps", ["-eo", "pcpu,etimes,comm", "--sort=-pcpu"], { encoding: "utf8" }).split("\n").slice(0, 12).join("\n")));
  } catch {
    // ps is missing: the load average above says enough.
  }
  results.push({ name: "watchdog", ok: false });
  process.exit(finish());
}, WATCHDOG_MS);
watchdog.unref();

try {
  await main();
} catch (err) {
  console.log("FAIL setup");
  console.log(indent(err instanceof Error ? (err.stack ?? err.message) : String(err)));
  results.push({ name: "setup", ok: false });
}
process.exitCode = finish();
