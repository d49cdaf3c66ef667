// The phone layout and the pre-call device check (issue 18), as a scenario of the browser test
// (consultation.test.mjs calls it near the end, before the final check of page problems).
//
// A consultation with a waiting room; the doctor enters on a desktop screen. Three patients
// come on phones:
// - Li Na (English, 360×640, everything allowed): the microphone meter moves with Chromium's
//   fake microphone (a beep), she plays the test sound and answers "I heard it", the lists offer
//   the fake devices and remember the one chosen. The doctor sees her check, test sound
//   included. Admitted, her room is measured in portrait (360×640) and landscape (640×360):
//   the controls overlap neither the tabs nor the active speaker, her own picture does not
//   cover the active speaker (until she drags it there), "Hide me" shrinks it, every button is
//   at least 44×44 and says what it is called; her signaling drops and "Reconnecting…" is on the
//   screen while it lasts, in both orientations.
// - Wang Fang (Chinese, 360×640, camera denied by the browser): the page says so and she joins
//   with sound only; the doctor sees "camera blocked"; her room is measured in both
//   orientations in Chinese.
// - Zhao Lei (English, 640×360, microphone denied): the page says the others will not hear
//   her, she joins to watch and chat with the banner, her chat reaches the doctor, and the
//   doctor sees "microphone blocked".
// Denials are played by an init script that makes getUserMedia refuse the device with
// NotAllowedError, as a browser does when its permission is blocked.

import assert from "node:assert/strict";

/**
 * @typedef {import("playwright-core").Page} Page
 * @typedef {import("playwright-core").WebSocketRoute} WebSocketRoute
 * @typedef {object} ScenarioContext
 * @property {(name: string, opts: {scenario?: true | string}, fn: () => Promise<void>) => Promise<void>} check
 * @property {(page: Page, name: string) => Promise<void>} snap
 * @property {import("playwright-core").Browser} browser
 * @property {(browser: import("playwright-core").Browser, viewport: {width: number, height: number}, locale?: string) => Promise<import("playwright-core").BrowserContext>} newContext
 * @property {(page: Page, who: string) => void} watchPage
 * @property {(browser: import("playwright-core").Browser, who: string, url: string, name: string | null) => Promise<Page>} openJoinPage
 * @property {Map<string, Page>} pages
 * @property {import("playwright-core").APIRequestContext} http
 * @property {string} base the server's origin
 * @property {string} password
 * @property {string} doctor the doctor's username
 * @property {number} timeout how long to wait for something to show
 * @property {(page: Page, what: string) => Promise<void>} assertTextFromCatalogue
 */

const PORTRAIT = { width: 360, height: 640 };
const LANDSCAPE = { width: 640, height: 360 };
/** The smallest target a finger hits reliably (WCAG 2.5.5's 44 CSS px). */
const MIN_TARGET = 44;

/**
 * @param {Page} page
 * @param {string} state
 * @param {number} timeout
 */
async function waitForState(page, state, timeout) {
  await page.waitForFunction((s) => document.body.dataset.state === s, state, { timeout, polling: 100 });
}

/**
 * Boxes and problems of the room as laid out now. The active speaker is the first other
 * participant's tile (the local tile is always first in #tiles).
 * @param {Page} page
 */
async function measureRoom(page) {
  return page.evaluate((minTarget) => {
    /** @param {Element | null} node */
    const box = (node) => {
      if (!(node instanceof HTMLElement) || !node.checkVisibility()) return null;
      const r = node.getBoundingClientRect();
      return { left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height };
    };
    const problems = [];
    const vw = window.innerWidth;
    const vh = window.innerHeight;
    const buttons = [...document.querySelectorAll("#room button, #room select, #room .tab")].filter(
      (b) => b instanceof HTMLElement && b.checkVisibility({ checkVisibilityCSS: true }),
    );
    for (const b of buttons) {
      const r = b.getBoundingClientRect();
      const what = (b.textContent ?? "").trim() || b.getAttribute("aria-label") || b.className;
      if (r.width < minTarget - 0.5 || r.height < minTarget - 0.5) problems.push(`"${what}" is ${Math.round(r.width)}×${Math.round(r.height)}`);
      // What the button shows is (part of) its name: a speech-input user says what they see.
      const visible = (b instanceof HTMLSelectElement ? "" : b.textContent ?? "").replace(/\s+/g, " ").trim();
      const label = b.getAttribute("aria-label");
      if (visible && label !== null && !label.toLowerCase().includes(visible.toLowerCase())) {
        problems.push(`"${visible}" is named "${label}"`);
      }
      // What lies in a part that scrolls by itself (a panel, the pictures) may be scrolled away.
      const scrolled = b.closest(".panel, .stage") !== null;
      if (!scrolled && (r.left < -0.5 || r.top < -0.5 || r.right > vw + 0.5 || r.bottom > vh + 0.5)) problems.push(`"${what}" is off the screen`);
    }
    return {
      viewport: { width: vw, height: vh },
      scrolls: document.documentElement.scrollHeight > vh + 1 || document.documentElement.scrollWidth > vw + 1,
      main: box(document.querySelector("#tiles .tile-local + .tile video")),
      self: box(document.querySelector("#tiles .tile-local")),
      selfHidden: document.querySelector("#tiles")?.hasAttribute("data-self-hidden") ?? false,
      tabs: box(document.querySelector(".tabs")),
      controls: box(document.querySelector(".controls")),
      banner: box(document.querySelector("#banner")),
      mediaBanner: box(document.querySelector("#media-banner")),
      problems,
    };
  }, MIN_TARGET);
}

/**
 * @typedef {{left: number, top: number, right: number, bottom: number, width: number, height: number}} Box
 * @param {Box | null} a
 * @param {Box | null} b
 */
function overlap(a, b) {
  if (!a || !b) return false;
  return Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5 && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5;
}

/**
 * @param {Box | null} b
 * @param {{width: number, height: number}} vp
 */
function inViewport(b, vp) {
  return b !== null && b.left >= -0.5 && b.top >= -0.5 && b.right <= vp.width + 0.5 && b.bottom <= vp.height + 0.5;
}

/**
 * Fails on everything issue 18 names: controls over the tabs or the active speaker, your own
 * picture over the active speaker, a target under 44×44, anything off the screen.
 * Exported for the Firefox scenario: it runs on a puppeteer page as well (the same
 * `evaluate(fn, arg)`).
 * @param {Page} page
 * @param {string} what
 * @param {{main?: boolean}} [opts] main: there is another participant to be the active speaker
 */
export async function assertPhoneLayout(page, what, opts = { main: true }) {
  const m = await measureRoom(page);
  assert.deepEqual(m.problems, [], `${what}: targets`);
  assert.ok(m.tabs && m.controls, `${what}: tabs and controls are shown`);
  assert.ok(!overlap(m.controls, m.tabs), `${what}: the controls cover the tabs ${JSON.stringify(m)}`);
  assert.ok(inViewport(m.controls, m.viewport) && inViewport(m.tabs, m.viewport), `${what}: controls and tabs on the screen ${JSON.stringify(m)}`);
  assert.equal(m.scrolls, false, `${what}: the page itself does not scroll`);
  if (opts.main !== false) {
    assert.ok(m.main && m.main.width > 100 && m.main.height > 60, `${what}: the active speaker is shown large ${JSON.stringify(m.main)}`);
    assert.ok(inViewport(m.main, m.viewport), `${what}: the active speaker is on the screen`);
    assert.ok(!overlap(m.controls, m.main), `${what}: the controls cover the active speaker ${JSON.stringify(m)}`);
    assert.ok(!overlap(m.tabs, m.main), `${what}: the tabs cover the active speaker`);
    if (!m.selfHidden) assert.ok(!overlap(m.self, m.main), `${what}: your own picture covers the active speaker ${JSON.stringify(m)}`);
  }
  return m;
}

/**
 * A patient's join page on a phone, in its own context, stopped at the pre-join screen.
 * @param {ScenarioContext} ctx
 * @param {string} who
 * @param {string} token
 * @param {{viewport: {width: number, height: number}, locale?: string, deny?: "camera" | "microphone", route?: WebSocketRoute[], hold?: {on: boolean}}} opts
 *   route: the page's signaling sockets, as the test routes them; hold: while on, new sockets
 *   are answered by nobody (the server is out of reach)
 */
async function openPhone(ctx, who, token, opts) {
  const context = await ctx.newContext(ctx.browser, opts.viewport, opts.locale);
  await context.grantPermissions(["camera", "microphone"], { origin: ctx.base });
  if (opts.deny) {
    // What a browser does when the site's permission for that device is blocked.
    await context.addInitScript((deny) => {
      const md = navigator.mediaDevices;
      const original = md.getUserMedia.bind(md);
      md.getUserMedia = (c) => {
        const asks = deny === "camera" ? c?.video : c?.audio;
        if (asks) return Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
        return original(c);
      };
    }, opts.deny);
  }
  const route = opts.route;
  const hold = opts.hold;
  if (route && hold) {
    await context.routeWebSocket(/\/ws$/, (ws) => {
      route.push(ws);
      // Held: the socket opens but nothing answers (the page keeps trying to resume).
      if (!hold.on) ws.connectToServer();
    });
  }
  const page = await context.newPage();
  ctx.watchPage(page, who);
  ctx.pages.set(who, page);
  await page.goto(`${ctx.base}/join#${token}`, { waitUntil: "load", timeout: ctx.timeout });
  await waitForState(page, "prejoin", ctx.timeout);
  return page;
}

/**
 * @param {Page} page
 * @param {string} name
 * @param {boolean} zh
 */
async function join(page, name, zh) {
  await page.getByLabel(zh ? "显示名称" : "Display name").fill(name);
  await page.getByRole("button", { name: zh ? "加入" : "Join", exact: true }).click();
}

/** @param {ScenarioContext} ctx */
export async function phoneScenario(ctx) {
  const { check, snap, http, base, timeout } = ctx;
  const S = "phone";
  /** @type {Record<string, Page>} */
  const p = {};
  const room = { id: "", li: "", wang: "", zhao: "" };
  /** @type {WebSocketRoute[]} Li Na's signaling sockets */
  const liSockets = [];
  const liHold = { on: false };
  /** @type {Record<string, string>} */
  let auth = {};

  await check("phone: a consultation with a waiting room, the doctor in it", { scenario: S }, async () => {
    const login = await http.post("/api/v1/auth/login", { data: { username: ctx.doctor, password: ctx.password } });
    assert.equal(login.status(), 200);
    auth = { Authorization: `Bearer ${(await login.json()).token}` };
    const created = await http.post("/api/v1/rooms", { headers: auth, data: { title: "Phone check", waiting_room: true } });
    assert.ok(created.ok(), `create room: ${created.status()}`);
    room.id = (await created.json()).id;
    for (const who of /** @type {const} */ (["li", "wang", "zhao"])) {
      const res = await http.post(`/api/v1/rooms/${room.id}/invites`, { headers: auth, data: { role: "patient" } });
      assert.ok(res.ok(), `invite: ${res.status()}`);
      room[who] = (await res.json()).token;
    }
    const enter = await http.post(`/api/v1/rooms/${room.id}/enter`, { headers: auth });
    assert.equal(enter.status(), 200);
    p.doctor = await ctx.openJoinPage(ctx.browser, "phone-doctor", `${base}/join#${(await enter.json()).token}`, null);
    await waitForState(p.doctor, "in-room", timeout);
    await p.doctor.locator('.tab[data-tab="queue-panel"]').click();
  });

  await check("phone: the pre-join check: the meter moves with the fake microphone, the test sound, the device lists", { scenario: S }, async () => {
    p.li = await openPhone(ctx, "phone-li", room.li, { viewport: PORTRAIT, route: liSockets, hold: liHold });
    const page = p.li;
    // A click on the page lets it make sound (browsers start audio only after one).
    await page.getByLabel("Display name").click();
    await page.locator("#mic-level-row").waitFor({ timeout });
    // Chromium's fake microphone beeps: the meter must see it.
    await page.waitForFunction(() => Number(document.querySelector("#mic-level")?.getAttribute("data-level") ?? 0) > 0.02, undefined, {
      timeout,
      polling: 50,
    });
    assert.ok((await page.locator("#mic-level").evaluate((m) => /** @type {HTMLMeterElement} */ (m).value)) > 0, "the bar moved");
    await page.getByRole("button", { name: "Play a test sound" }).click();
    await page.getByRole("button", { name: "I heard it" }).waitFor({ timeout });
    await snap(page, "phone-prejoin-speaker-question");
    await page.getByRole("button", { name: "I heard it" }).click();
    await page.locator('#speaker-result[data-speaker="heard"]').waitFor({ timeout });
    assert.equal(await page.locator("#speaker-result").textContent(), "Your speaker works.");
    // Chromium's fake devices: several microphones. A choice is remembered on this device.
    const mics = await page.locator("#microphone-select option").evaluateAll((os) => os.map((o) => /** @type {HTMLOptionElement} */ (o).value));
    if (mics.length > 1) {
      assert.equal(await page.getByLabel("Microphone", { exact: true }).isVisible(), true, "a choice of microphones is offered");
      await page.getByLabel("Microphone", { exact: true }).selectOption(mics[1]);
      await page.waitForFunction(
        (id) => JSON.parse(localStorage.getItem("huizhen.devices") ?? "{}").microphone === id,
        mics[1],
        { timeout, polling: 100 },
      );
      // The new microphone is in use, the list says so, and the meter follows it.
      await page.waitForFunction((id) => /** @type {HTMLSelectElement} */ (document.querySelector("#microphone-select")).value === id, mics[1], {
        timeout,
        polling: 100,
      });
      await page.waitForFunction(() => Number(document.querySelector("#mic-level")?.getAttribute("data-level") ?? 0) > 0.02, undefined, {
        timeout,
        polling: 50,
      });
    }
    const small = await page.evaluate((min) => {
      return [...document.querySelectorAll("#prejoin button, #prejoin select")]
        .filter((b) => b instanceof HTMLElement && b.checkVisibility())
        .map((b) => b.getBoundingClientRect())
        .filter((r) => r.width < min || r.height < min).length;
    }, MIN_TARGET);
    assert.equal(small, 0, "every pre-join control is at least 44×44");
    await ctx.assertTextFromCatalogue(page, "the pre-join device check");
    await snap(page, "phone-prejoin-check");
  });

  await check("phone: the doctor sees the check's result, the test sound included", { scenario: S }, async () => {
    await join(p.li, "Li Na", false);
    await waitForState(p.li, "waiting", timeout);
    await p.li.locator("#waiting-checks", { hasText: "Sound heard" }).waitFor({ timeout });
    const item = p.doctor.locator("#queue-panel .queue-item", { hasText: "Li Na" });
    await item.locator('.queue-precall[data-speaker="heard"]').waitFor({ timeout });
    assert.match((await item.locator(".queue-precall").textContent()) ?? "", /camera OK.*microphone OK.*connection \w+.*heard the test sound/);
    await snap(p.li, "phone-waiting-portrait");
  });

  await check("phone: in the room at 360×640 and 640×360 nothing covers the active speaker, the controls leave the tabs alone", { scenario: S }, async () => {
    await p.doctor.getByRole("button", { name: "Admit next" }).click();
    await waitForState(p.li, "in-room", timeout);
    await p.li.locator("#consent-dialog[open]").waitFor({ timeout });
    await p.li.getByRole("button", { name: "Done", exact: true }).click();
    await p.li.waitForFunction(() => document.querySelectorAll("#tiles .tile").length === 2, undefined, { timeout, polling: 200 });
    await assertPhoneLayout(p.li, "360×640");
    await snap(p.li, "phone-room-portrait-en");
    await p.li.setViewportSize(LANDSCAPE);
    await assertPhoneLayout(p.li, "640×360");
    await snap(p.li, "phone-room-landscape-en");
    await p.li.setViewportSize(PORTRAIT);
  });

  await check("phone: your own picture can be hidden and moved", { scenario: S }, async () => {
    const page = p.li;
    await page.getByRole("button", { name: "Hide me" }).click();
    await page.locator("#tiles[data-self-hidden]").waitFor({ timeout });
    const hidden = await assertPhoneLayout(page, "hidden self-view");
    assert.ok(hidden.self && hidden.self.height <= 60, `hidden, only its button stays (${JSON.stringify(hidden.self)})`);
    assert.equal(await page.getByRole("button", { name: "Show me" }).getAttribute("aria-pressed"), "true");
    await page.getByRole("button", { name: "Show me" }).click();
    await page.waitForFunction(() => !document.querySelector("#tiles")?.hasAttribute("data-self-hidden"), undefined, { timeout });
    // Dragged by a finger, it goes where it is put, and stays whole on the screen.
    const before = await measureRoom(page);
    assert.ok(before.self);
    // Taken by its lower right corner, away from its button.
    const from = { x: before.self.right - 8, y: before.self.bottom - 8 };
    await page.mouse.move(from.x, from.y);
    await page.mouse.down();
    await page.mouse.move(from.x - 60, from.y - 400, { steps: 8 });
    await page.mouse.up();
    const after = await measureRoom(page);
    assert.ok(after.self && after.self.top < before.self.top - 50, `moved up (${before.self.top} → ${after.self?.top})`);
    assert.ok(inViewport(after.self, after.viewport), "still whole on the screen");
    assert.equal(await page.locator("#tiles .tile-local").getAttribute("data-moved"), "true");
    await snap(page, "phone-self-view-moved");
    // Turning the phone puts it back in its place.
    await page.setViewportSize(LANDSCAPE);
    await page.waitForFunction(() => !document.querySelector("#tiles .tile-local")?.hasAttribute("data-moved"), undefined, { timeout });
    await assertPhoneLayout(page, "640×360 after a move");
    await page.setViewportSize(PORTRAIT);
  });

  await check("phone: the signaling drops: Reconnecting… is on the screen, in portrait and landscape", { scenario: S }, async () => {
    const page = p.li;
    assert.ok(liSockets.length > 0, "Li Na's signaling is routed");
    liHold.on = true;
    await liSockets[liSockets.length - 1].close({ code: 4900, reason: "test: network drop" });
    await waitForState(page, "reconnecting", timeout);
    for (const vp of [PORTRAIT, LANDSCAPE]) {
      await page.setViewportSize(vp);
      const m = await measureRoom(page);
      assert.ok(m.banner && inViewport(m.banner, m.viewport), `${vp.width}×${vp.height}: the banner is on the screen (${JSON.stringify(m.banner)})`);
      assert.equal(await page.locator("#banner").textContent(), "Reconnecting…");
      assert.ok(!overlap(m.controls, m.tabs), "the controls still leave the tabs alone");
      await snap(page, `phone-reconnecting-${vp.width}x${vp.height}`);
    }
    await page.setViewportSize(PORTRAIT);
    liHold.on = false;
    // The held sockets go; the next one reaches the server and resumes.
    for (const ws of liSockets) await ws.close({ code: 4900, reason: "test: network back" }).catch(() => undefined);
    await waitForState(page, "in-room", timeout);
    assert.equal(await page.locator("#banner").isVisible(), false, "the banner goes once back");
  });

  await check("phone: camera denied (in Chinese): joins with sound only and says so; the doctor sees it", { scenario: S }, async () => {
    p.wang = await openPhone(ctx, "phone-wang", room.wang, { viewport: PORTRAIT, locale: "zh-CN", deny: "camera" });
    const page = p.wang;
    await page.locator('#preview-status[data-i18n="join.prejoin.camera_denied"]').waitFor({ timeout });
    assert.match((await page.locator("#preview-status").textContent()) ?? "", /摄像头被禁止使用/);
    await snap(page, "phone-prejoin-camera-denied-zh");
    await join(page, "王芳", true);
    await waitForState(page, "waiting", timeout);
    const item = p.doctor.locator("#queue-panel .queue-item", { hasText: "王芳" });
    await item.locator(".queue-precall", { hasText: "camera blocked" }).waitFor({ timeout });
    assert.match((await item.locator(".queue-precall").textContent()) ?? "", /camera blocked.*microphone OK/);
    await p.doctor.getByRole("button", { name: "Admit next" }).click();
    await waitForState(page, "in-room", timeout);
    await page.locator("#consent-dialog[open]").waitFor({ timeout });
    await page.getByRole("button", { name: "完成", exact: true }).click();
    await page.locator('#media-banner[data-media="camera_denied"]').waitFor({ timeout });
    assert.equal(await page.locator("#camera-button").isVisible(), false, "no camera to turn off");
    assert.equal(await page.locator("#mic-button").isVisible(), true, "the microphone is on");
    await page.waitForFunction(() => document.querySelectorAll("#tiles .tile").length >= 2, undefined, { timeout, polling: 200 });
    for (const vp of [PORTRAIT, LANDSCAPE]) {
      await page.setViewportSize(vp);
      const m = await assertPhoneLayout(page, `zh-CN ${vp.width}×${vp.height}`);
      assert.ok(inViewport(m.mediaBanner, m.viewport), "the camera banner is on the screen");
      await snap(page, `phone-room-camera-denied-zh-${vp.width}x${vp.height}`);
    }
    await ctx.assertTextFromCatalogue(page, "the room, camera denied, in Chinese");
  });

  await check("phone: microphone denied: joins to watch and chat, with the banner; the doctor sees it", { scenario: S }, async () => {
    p.zhao = await openPhone(ctx, "phone-zhao", room.zhao, { viewport: LANDSCAPE, deny: "microphone" });
    const page = p.zhao;
    await page.locator('#preview-status[data-i18n="join.prejoin.microphone_denied"]').waitFor({ timeout });
    assert.equal(await page.locator("#mic-level-row").isVisible(), false, "no meter without a microphone");
    await join(page, "Zhao Lei", false);
    await waitForState(page, "waiting", timeout);
    const item = p.doctor.locator("#queue-panel .queue-item", { hasText: "Zhao Lei" });
    await item.locator(".queue-precall", { hasText: "microphone blocked" }).waitFor({ timeout });
    await p.doctor.getByRole("button", { name: "Admit next" }).click();
    await waitForState(page, "in-room", timeout);
    await page.locator("#consent-dialog[open]").waitFor({ timeout });
    await page.getByRole("button", { name: "Done", exact: true }).click();
    await page.locator('#media-banner[data-media="microphone_denied"]').waitFor({ timeout });
    assert.match((await page.locator("#media-banner").textContent()) ?? "", /the others cannot hear you/);
    assert.equal(await page.locator("#mic-button").isVisible(), false, "no microphone to mute");
    await page.waitForFunction(() => document.querySelectorAll("#tiles .tile").length >= 2, undefined, { timeout, polling: 200 });
    const m = await assertPhoneLayout(page, "640×360, microphone denied");
    assert.ok(inViewport(m.mediaBanner, m.viewport), "the banner is on the screen");
    await page.getByRole("tab", { name: "Chat" }).click();
    await page.getByLabel("Message", { exact: true }).fill("I cannot use my microphone");
    await page.getByRole("button", { name: "Send", exact: true }).click();
    await p.doctor.getByRole("tab", { name: "Chat" }).click();
    await p.doctor.locator("#chat-panel .chat-text", { hasText: "I cannot use my microphone" }).waitFor({ timeout });
    await snap(page, "phone-room-microphone-denied-640x360");
  });

  for (const who of ["phone-doctor", "phone-li", "phone-wang", "phone-zhao"]) {
    const page = ctx.pages.get(who);
    ctx.pages.delete(who);
    await page?.context().close().catch(() => undefined);
  }
}
