// The institution's look, and your own picture moved from the keyboard (issue 18), as a scenario
// of the browser test (consultation.test.mjs calls it near the end, before the final check of
// page problems).
//
// The server is configured with a `[branding]` section (scripts/test-browser.sh): a name in
// both languages, the PNG of tests/fixtures/branding/logo.png and the accent #1a7f37.
// - `GET /api/v1/display` says so, and the logo comes as the fixture's bytes, typed image/png,
//   nosniff, cached under its version.
// - Every page (the console, the code page, the join and outcome pages) shows the name in the
//   page's language and the logo in its header, in English and in Chinese, switched with the
//   page; its buttons take the colour; words in the accent's colour use the shade the server
//   gave for the light and for the dark scheme. The console's and the code page's screens pass
//   the catalogue and axe checks with the name on them.
// - A patient on a phone (360×640, Chromium) in a room with the doctor reaches their own picture
//   with the Tab key; while it has focus its keys are shown; the arrow keys move it, Enter takes
//   it round the corners of the screen (a status says which), it never leaves the screen, Home
//   puts it back; Tab and Enter on "Hide me" minimise it and show it again; in Chinese its name
//   and hint are Chinese.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * @typedef {import("playwright-core").Page} Page
 * @typedef {import("playwright-core").BrowserContext} BrowserContext
 * @typedef {object} ScenarioContext
 * @property {(name: string, opts: {scenario?: true | string}, fn: () => Promise<void>) => Promise<void>} check
 * @property {(page: Page, name: string) => Promise<void>} snap
 * @property {import("playwright-core").Browser} browser
 * @property {(browser: import("playwright-core").Browser, viewport: {width: number, height: number}, locale?: string) => Promise<BrowserContext>} newContext
 * @property {(page: Page, who: string) => void} watchPage
 * @property {(browser: import("playwright-core").Browser, who: string, url: string, name: string | null, opts?: {viewport?: {width: number, height: number}, locale?: string}) => Promise<Page>} openJoinPage
 * @property {Map<string, Page>} pages
 * @property {import("playwright-core").APIRequestContext} http
 * @property {string} base the server's origin
 * @property {string} password
 * @property {string} doctor the doctor's username
 * @property {number} timeout how long to wait for something to show
 * @property {(page: Page, what: string) => Promise<void>} assertTextFromCatalogue
 */

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** What scripts/test-browser.sh configures. */
const LOGO_FILE = path.join(HERE, "../fixtures/branding/logo.png");
const ACCENT = "#1a7f37";
const ACCENT_RGB = "rgb(26, 127, 55)";
const PHONE = { width: 360, height: 640 };
/** self-view.js's step for an arrow key, and its corners' margin (CSS px). */
const KEY_STEP = 24;
const CORNER_MARGIN = 8;

/**
 * @typedef {{name: {"zh-CN": string, en: string}, logo_url: string, accent: {color: string, on_color: string, ink_light: string, ink_dark: string}}} Branding
 */

/**
 * @param {Page} page
 * @param {string} state
 * @param {number} timeout
 */
async function waitForState(page, state, timeout) {
  await page.waitForFunction((s) => document.body.dataset.state === s, state, { timeout, polling: 100 });
}

/**
 * The brand as the page shows it now.
 * @param {Page} page
 */
async function shownBrand(page) {
  return page.evaluate(() => {
    const mark = document.querySelector(".brand-mark");
    const name = mark?.querySelector(".brand-name");
    const logo = mark?.querySelector("img.brand-logo");
    const css = getComputedStyle(document.documentElement);
    const primary = /** @type {HTMLElement | null} */ ([...document.querySelectorAll(".btn-primary")].find((b) => b instanceof HTMLElement && b.checkVisibility()) ?? null);
    return {
      inHeader: !!mark?.closest(".app-header, body > .lang-bar"),
      name: name?.textContent ?? null,
      nameLang: name?.getAttribute("lang") ?? null,
      userContent: name?.hasAttribute("data-user-content") ?? false,
      logo: logo instanceof HTMLImageElement ? { src: logo.getAttribute("src"), alt: logo.getAttribute("alt"), width: logo.naturalWidth, complete: logo.complete } : null,
      primary: css.getPropertyValue("--primary").trim(),
      ink: css.getPropertyValue("--primary-ink").trim(),
      button: primary ? getComputedStyle(primary).backgroundColor : null,
    };
  });
}

/**
 * The local tile's box, and what has focus.
 * @param {Page} page
 */
async function selfTile(page) {
  return page.evaluate(() => {
    const tile = document.querySelector("#tiles .tile-local");
    if (!(tile instanceof HTMLElement)) return null;
    const r = tile.getBoundingClientRect();
    return {
      left: r.left,
      top: r.top,
      right: r.right,
      bottom: r.bottom,
      focused: document.activeElement === tile,
      // What is really drawn there: a picture clipped by the strip it came from, or under
      // something else, would not be found at its own centre.
      onTop: document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2)?.closest(".tile-local") === tile,
      corner: tile.dataset.corner ?? null,
      moved: tile.hasAttribute("data-moved"),
      tabindex: tile.getAttribute("tabindex"),
      label: tile.getAttribute("aria-label"),
      describedBy: tile.getAttribute("aria-describedby"),
      hint: tile.querySelector(".self-hint")?.textContent ?? "",
      hintShown: tile.querySelector(".self-hint")?.checkVisibility() ?? false,
      status: tile.querySelector(".self-status")?.textContent ?? "",
      viewport: { width: window.innerWidth, height: window.innerHeight },
    };
  });
}

/**
 * @param {{left: number, top: number, right: number, bottom: number, viewport: {width: number, height: number}}} b
 */
function onScreen(b) {
  return b.left >= -0.5 && b.top >= -0.5 && b.right <= b.viewport.width + 0.5 && b.bottom <= b.viewport.height + 0.5;
}

/**
 * Presses Tab until the focused element matches `selector` (at most 60 times): what a
 * keyboard user does.
 * @param {Page} page
 * @param {string} selector what should get focus
 */
async function tabTo(page, selector) {
  for (let i = 0; i < 60; i++) {
    await page.keyboard.press("Tab");
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return;
  }
  assert.fail(`the Tab key never reached ${selector}`);
}

/** @param {ScenarioContext} ctx */
export async function brandingScenario(ctx) {
  const { check, snap, browser, http, base, timeout } = ctx;
  /** @type {Branding | null} */
  let branding = null;

  await check("branding: the server names the institution and serves its logo safely", { scenario: "branding" }, async () => {
    const display = await (await http.get("/api/v1/display")).json();
    branding = display.branding;
    assert.ok(branding?.name && branding.logo_url && branding.accent, `the run's server is branded: ${JSON.stringify(display)}`);
    assert.equal(branding.accent.color, ACCENT);
    assert.equal(branding.accent.on_color, "#ffffff");
    assert.match(branding.logo_url, /^\/api\/v1\/display\/logo\/[0-9a-f]{16}$/);
    const logo = await http.get(branding.logo_url);
    assert.equal(logo.status(), 200);
    const h = logo.headers();
    assert.equal(h["content-type"], "image/png");
    assert.equal(h["x-content-type-options"], "nosniff");
    assert.equal(h["cache-control"], "public, max-age=31536000, immutable");
    assert.equal(h["content-security-policy"], "default-src 'none'; sandbox");
    assert.ok(Buffer.from(await logo.body()).equals(await readFile(LOGO_FILE)), "the logo is the configured file");
  });

  await check("branding: every page shows the name and the logo in its header, in both languages, and takes the colour", { scenario: "branding" }, async () => {
    const b = /** @type {Branding} */ (branding);
    for (const locale of ["en-GB", "zh-CN"]) {
      const zh = locale === "zh-CN";
      const expected = zh ? b.name["zh-CN"] : b.name.en;
      for (const where of ["/", "/code", "/join", "/outcome"]) {
        const context = await ctx.newContext(browser, { width: 1100, height: 800 }, locale);
        try {
          const page = await context.newPage();
          ctx.watchPage(page, `branding${where}`);
          await page.goto(`${base}${where}`, { waitUntil: "load", timeout });
          await page.locator(".brand-mark .brand-name").waitFor({ timeout });
          await page.waitForFunction(() => document.querySelector("img.brand-logo") instanceof HTMLImageElement && /** @type {HTMLImageElement} */ (document.querySelector("img.brand-logo")).complete, undefined, { timeout, polling: 100 });
          const shown = await shownBrand(page);
          const what = `${where} (${locale})`;
          assert.equal(shown.inHeader, true, `${what}: in the header`);
          assert.equal(shown.name, expected, `${what}: the name in the page's language`);
          assert.equal(shown.nameLang, zh ? "zh-CN" : "en", `${what}: marked with its language`);
          assert.equal(shown.userContent, true, `${what}: the institution's own words`);
          assert.deepEqual(shown.logo, { src: b.logo_url, alt: "", width: 64, complete: true }, `${what}: the logo, decorative beside the name`);
          assert.equal(shown.primary, ACCENT, `${what}: the accent token`);
          assert.equal(shown.ink, b.accent.ink_light, `${what}: words in the accent's colour, light scheme`);
          if (shown.button !== null) assert.equal(shown.button, ACCENT_RGB, `${what}: a primary button in the colour`);
          if (where === "/" || where === "/code") {
            await ctx.assertTextFromCatalogue(page, `branded ${what}`);
            await snap(page, `branding-${where === "/" ? "console" : "code"}-${zh ? "zh" : "en"}`);
          }
          // The dark scheme: the same accent, words in the lighter shade.
          await page.emulateMedia({ colorScheme: "dark" });
          const dark = await shownBrand(page);
          assert.equal(dark.primary, ACCENT, `${what}: the same accent in the dark scheme`);
          assert.equal(dark.ink, b.accent.ink_dark, `${what}: words in the accent's colour, dark scheme`);
          if (where === "/code" && !zh) {
            await snap(page, "branding-code-dark");
            // The name follows the language switch, with no reload.
            await page.locator(".lang-switch").first().click();
            await page.waitForFunction((name) => document.querySelector(".brand-name")?.textContent === name, b.name["zh-CN"], { timeout, polling: 100 });
            assert.equal(await page.locator(".brand-name").getAttribute("lang"), "zh-CN");
          }
        } finally {
          await context.close().catch(() => undefined);
        }
      }
    }
  });

  /** @type {Record<string, Page>} */
  const p = {};
  await check("branding: on a phone, your own picture moves and hides from the keyboard, inside the screen", { scenario: "branding-self-view" }, async () => {
    const login = await http.post("/api/v1/auth/login", { data: { username: ctx.doctor, password: ctx.password } });
    assert.equal(login.status(), 200);
    const auth = { Authorization: `Bearer ${(await login.json()).token}` };
    const created = await http.post("/api/v1/rooms", { headers: auth, data: { title: "Keyboard check", waiting_room: false } });
    assert.ok(created.ok(), `create room: ${created.status()}`);
    const roomId = (await created.json()).id;
    const invite = await http.post(`/api/v1/rooms/${roomId}/invites`, { headers: auth, data: { role: "patient" } });
    assert.ok(invite.ok(), `invite: ${invite.status()}`);
    const patientToken = (await invite.json()).token;
    const enter = await http.post(`/api/v1/rooms/${roomId}/enter`, { headers: auth });
    assert.equal(enter.status(), 200);
    p.doctor = await ctx.openJoinPage(browser, "branding-doctor", `${base}/join#${(await enter.json()).token}`, null);
    await waitForState(p.doctor, "in-room", timeout);
    p.patient = await ctx.openJoinPage(browser, "branding-patient", `${base}/join#${patientToken}`, "Chen Jing", { viewport: PHONE });
    const page = p.patient;
    await waitForState(page, "in-room", timeout);
    await page.locator("#consent-dialog[open]").waitFor({ timeout });
    await page.getByRole("button", { name: "Done", exact: true }).click();
    await page.waitForFunction(() => document.querySelectorAll("#tiles .tile").length === 2, undefined, { timeout, polling: 200 });

    // Reached with the Tab key; named, described, and its keys shown while it has focus.
    await tabTo(page, "#tiles .tile-local");
    const start = await selfTile(page);
    assert.ok(start, "the local tile is there");
    assert.equal(start.tabindex, "0");
    assert.equal(start.label, "Your picture");
    assert.equal(start.describedBy, "self-hint");
    assert.equal(start.hint, "Arrows: move · Enter: next corner · Home: back");
    assert.equal(start.hintShown, true, "the keys are shown while it has focus");
    assert.equal(await page.getByRole("listitem", { name: "Your picture" }).count(), 1, "found by its name");
    await ctx.assertTextFromCatalogue(page, "the phone room with your own picture focused");
    await snap(page, "branding-self-view-focused");

    // The arrow keys: a step each, the page itself does not scroll.
    for (let i = 0; i < 3; i++) await page.keyboard.press("ArrowUp");
    const up = await selfTile(page);
    assert.ok(up && up.moved && onScreen(up) && up.onTop, `moved, on the screen and seen ${JSON.stringify(up)}`);
    assert.ok(Math.abs(up.top - Math.max(start.top - 3 * KEY_STEP, 0)) < 1, `three steps up (${start.top} → ${up.top})`);
    assert.ok(Math.abs(up.left - start.left) < 0.5, "up is up");
    assert.equal(await page.evaluate(() => document.scrollingElement?.scrollTop ?? 0), 0, "the page did not scroll");

    // Enter takes it round the corners, clockwise from the top left, each said in the status.
    const corners = /** @type {const} */ ([
      ["top-left", "top left"],
      ["top-right", "top right"],
      ["bottom-right", "bottom right"],
      ["bottom-left", "bottom left"],
    ]);
    for (const [corner, words] of corners) {
      await page.keyboard.press("Enter");
      const at = await selfTile(page);
      assert.ok(at && at.corner === corner && onScreen(at), `${corner}: ${JSON.stringify(at)}`);
      assert.equal(at.onTop, true, `${corner}: seen there, over whatever lies under it`);
      const { width, height } = at.viewport;
      if (corner.endsWith("left")) assert.ok(Math.abs(at.left - CORNER_MARGIN) < 1, `${corner}: left ${at.left}`);
      else assert.ok(Math.abs(at.right - (width - CORNER_MARGIN)) < 1, `${corner}: right ${at.right}`);
      if (corner.startsWith("top")) assert.ok(Math.abs(at.top - CORNER_MARGIN) < 1, `${corner}: top ${at.top}`);
      else assert.ok(Math.abs(at.bottom - (height - CORNER_MARGIN)) < 1, `${corner}: bottom ${at.bottom}`);
      assert.equal(at.status, `Your picture is in the ${words} corner`);
      assert.equal(at.focused, true, "focus stays on the picture");
    }
    await snap(page, "branding-self-view-bottom-left");

    // Pushed against the edge, it stops there: always whole on the screen.
    for (let i = 0; i < 5; i++) await page.keyboard.press("Shift+ArrowDown");
    for (let i = 0; i < 5; i++) await page.keyboard.press("Shift+ArrowLeft");
    const pushed = await selfTile(page);
    assert.ok(pushed && onScreen(pushed), `kept on the screen ${JSON.stringify(pushed)}`);
    assert.ok(Math.abs(pushed.left) < 1 && Math.abs(pushed.bottom - pushed.viewport.height) < 1, `in the very corner ${JSON.stringify(pushed)}`);

    // Home: back where the layout puts it.
    await page.keyboard.press("Home");
    const home = await selfTile(page);
    assert.ok(home && !home.moved && home.corner === null, `back in place ${JSON.stringify(home)}`);
    // In its strip again (which may have scrolled meanwhile, as focus moved, so not at the same
    // pixels as at the start) and whole on the screen.
    const strip = await page.evaluate(() => {
      const r = document.querySelector("#tiles")?.getBoundingClientRect();
      return r ? { left: r.left, top: r.top, right: r.right, bottom: r.bottom } : null;
    });
    assert.ok(
      strip && home.top >= strip.top - 0.5 && home.bottom <= strip.bottom + 0.5 && onScreen(home),
      `back in its strip: ${JSON.stringify({ home, strip, start })}`,
    );
    assert.equal(home.status, "Your picture is back in its place");

    // Minimised and shown again from the keyboard: "Hide me" is a Tab stop inside the picture.
    await tabTo(page, "#tiles .tile-local .self-toggle");
    await page.keyboard.press("Enter");
    await page.locator("#tiles[data-self-hidden]").waitFor({ timeout });
    const hidden = await selfTile(page);
    assert.equal(hidden?.tabindex, null, "hidden, the picture is no longer a stop of the Tab key");
    assert.equal(await page.locator(".tile-local .self-toggle").getAttribute("aria-pressed"), "true");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => !document.querySelector("#tiles")?.hasAttribute("data-self-hidden"), undefined, { timeout });
    assert.equal((await selfTile(page))?.tabindex, "0", "shown again, it can be moved again");

    // In Chinese: its name and its keys.
    await page.locator(".room-lang .lang-switch").click();
    await page.waitForFunction(() => document.documentElement.lang === "zh-CN", undefined, { timeout });
    await tabTo(page, "#tiles .tile-local");
    const zh = await selfTile(page);
    assert.equal(zh?.label, "您的画面");
    assert.equal(zh?.hint, "方向键：移动 · 回车：换到下一个角 · Home：放回原处");
    await page.keyboard.press("Enter");
    assert.equal((await selfTile(page))?.status, "您的画面在左上角");
    await ctx.assertTextFromCatalogue(page, "the phone room in Chinese with your own picture focused");
    await snap(page, "branding-self-view-zh");
  });

  // The scenario's pages go, whatever happened above.
  for (const who of ["branding-doctor", "branding-patient"]) {
    const page = ctx.pages.get(who);
    ctx.pages.delete(who);
    await page?.context().close().catch(() => undefined);
  }
}
