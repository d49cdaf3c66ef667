// The join page checks its link as soon as it opens (POST /api/v1/invitations/check), before
// any camera or microphone prompt: a scenario of the browser test (consultation.test.mjs calls
// it near the end, before the final check of page problems).
//
// A revoked link, a used one and a garbage one each get their own page, in the patient's
// language, without the page ever asking for the camera or microphone; a link to a consultation
// whose time is three hours away says when it opens (and that the page will open by itself).
// Someone waiting in a consultation with a time is shown it, told at once when the care team
// moves it (without reloading), and keeps their place in the line.

import assert from "node:assert/strict";

/**
 * @typedef {object} Harness what the main test lends the scenario
 * @property {(name: string, opts: {scenario?: true | string}, fn: () => Promise<void>) => Promise<void>} check
 * @property {(page: import("playwright-core").Page, name: string) => Promise<void>} snap
 * @property {(browser: import("playwright-core").Browser, viewport: {width: number, height: number}, locale?: string) => Promise<import("playwright-core").BrowserContext>} newContext
 * @property {(page: import("playwright-core").Page, who: string) => void} watchPage
 * @property {Map<string, import("playwright-core").Page>} pages photographed on failure
 * @property {import("playwright-core").Browser | null} browser
 * @property {import("playwright-core").APIRequestContext} http
 * @property {string} base
 * @property {string} password the run's password of every account
 * @property {string} doctor the doctor's username
 * @property {string} specialist the specialist's username (of another institution)
 * @property {number} timeout how long a wait may take
 */

/** A phone, as most patients have. */
const PHONE = { width: 360, height: 640 };

/**
 * @param {Harness} h
 */
export async function linkCheckScenario(h) {
  const { check, http } = h;
  /** @param {string} username */
  const signIn = async (username) => {
    const login = await http.post("/api/v1/auth/login", { data: { username, password: h.password } });
    assert.equal(login.status(), 200, `login of ${username}`);
    const auth = { Authorization: `Bearer ${(await login.json()).token}` };
    const me = await (await http.get("/api/v1/me", { headers: auth })).json();
    return { auth, me };
  };
  /** @type {Record<string, string>} */
  let doctor = {};
  /** @type {Record<string, string>} */
  const links = {};

  /**
   * Opens a link on a phone and waits for the page's answer; counts camera and microphone
   * requests, which must be none.
   * @param {string} who
   * @param {string} token
   * @param {string} locale
   */
  const open = async (who, token, locale) => {
    if (!h.browser) throw new Error("no browser");
    const context = await h.newContext(h.browser, PHONE, locale);
    await context.addInitScript(() => {
      /** @type {any} */ (window).__mediaRequests = 0;
      const md = navigator.mediaDevices;
      if (md) {
        const original = md.getUserMedia.bind(md);
        md.getUserMedia = (c) => {
          /** @type {any} */ (window).__mediaRequests += 1;
          return original(c);
        };
      }
    });
    const page = await context.newPage();
    h.watchPage(page, who);
    h.pages.set(who, page);
    await page.goto(`${h.base}/join#${token}`, { waitUntil: "load", timeout: h.timeout });
    await page.waitForFunction(() => document.body.dataset.state === "error", undefined, { timeout: h.timeout, polling: 100 });
    const seen = await page.evaluate(() => ({
      code: document.querySelector("#status-panel, [data-error-code]")?.getAttribute("data-error-code") ?? "",
      title: document.querySelector("#status-title, .status-title, h1, h2")?.textContent ?? "",
      text: document.body.innerText,
      media: /** @type {any} */ (window).__mediaRequests,
    }));
    return { page, seen };
  };

  await check("link check: set-up (a revoked, a used and an early link)", { scenario: "link check" }, async () => {
    doctor = (await signIn(h.doctor)).auth;
    const spec = await signIn(h.specialist);
    const room = await http.post("/api/v1/rooms", { headers: doctor, data: { title: "Link check", waiting_room: false } });
    assert.equal(room.status(), 201);
    const roomId = (await room.json()).id;
    /** @param {string} id */
    const invite = async (id) => {
      const r = await http.post(`/api/v1/rooms/${id}/invites`, { headers: doctor, data: { role: "patient" } });
      assert.equal(r.status(), 201);
      return r.json();
    };
    const revoked = await invite(roomId);
    const del = await http.delete(`/api/v1/rooms/${roomId}/invites/${revoked.invite_id}`, { headers: doctor });
    assert.equal(del.status(), 204);
    links.revoked = revoked.token;
    // Single-use: a first browser's join uses it (the check itself never does).
    links.used = (await invite(roomId)).token;
    // A consultation three hours from now, through a referral the specialist accepts.
    const department = spec.me.department?.id;
    assert.ok(department, "the specialist has a department");
    const at = Math.floor(Date.now() / 1000) + 3 * 3600;
    const ref = await http.post("/api/v1/referrals", {
      headers: doctor,
      data: {
        target_department_id: department,
        patient_ref: "P-LINK-1",
        reason: "Follow-up of palpitations",
        question: "Holter attached; is treatment needed?",
        urgency: "routine",
        proposed_times: [{ start: at, minutes: 30 }],
      },
    });
    assert.equal(ref.status(), 201, await ref.text());
    const accepted = await http.post(`/api/v1/referrals/${(await ref.json()).id}/accept`, {
      headers: spec.auth,
      data: { start: at, minutes: 30 },
    });
    assert.equal(accepted.status(), 200, await accepted.text());
    const early = await invite((await accepted.json()).room_id);
    assert.equal(early.state, "not_yet");
    links.early = early.token;
  });

  await check("link check: a used link is told so on opening, without a camera prompt", { scenario: "link check" }, async () => {
    // The first browser uses it (a real join), the second is told before anything else.
    if (!h.browser) throw new Error("no browser");
    const first = await h.newContext(h.browser, PHONE, "en-GB");
    await first.grantPermissions(["camera", "microphone"], { origin: h.base });
    const page = await first.newPage();
    h.watchPage(page, "link user");
    await page.goto(`${h.base}/join#${links.used}`, { waitUntil: "load", timeout: h.timeout });
    await page.waitForFunction(() => document.body.dataset.state === "prejoin", undefined, { timeout: h.timeout });
    await page.getByLabel("Display name").fill("Used once");
    await page.getByRole("button", { name: "Join", exact: true }).click();
    await page.waitForFunction(() => document.body.dataset.state === "in-room", undefined, { timeout: h.timeout });
    const { page: second, seen } = await open("used link", links.used, "en-GB");
    assert.equal(seen.code, "invite_used_up", seen.text);
    assert.equal(seen.media, 0, "no camera or microphone prompt");
    await h.snap(second, "link-used-en");
    await first.close();
    await second.context().close();
  });

  await check("link check: a revoked link, in Chinese, without a camera prompt", { scenario: "link check" }, async () => {
    const { page, seen } = await open("revoked link", links.revoked, "zh-CN");
    assert.equal(seen.code, "invite_revoked", seen.text);
    assert.equal(seen.media, 0, "no camera or microphone prompt");
    assert.match(seen.text, /[\u4e00-\u9fff]/, "the page speaks Chinese");
    await h.snap(page, "link-revoked-zh");
    await page.context().close();
  });

  await check("link check: a garbage link gets the bad-link page", { scenario: "link check" }, async () => {
    const { page, seen } = await open("garbage link", "hz1.garbage.link", "en-GB");
    assert.equal(seen.code, "invalid_token", seen.text);
    assert.equal(seen.media, 0);
    await page.context().close();
  });

  await check("link check: an early link says when it opens", { scenario: "link check" }, async () => {
    const { page, seen } = await open("early link", links.early, "en-GB");
    assert.equal(seen.code, "invite_not_yet", seen.text);
    assert.equal(seen.media, 0, "no camera or microphone prompt");
    assert.match(seen.text, /opens at/i, seen.text);
    assert.match(seen.text, /opens by itself/i, seen.text);
    await h.snap(page, "link-early-en");
    await page.context().close();
  });

  await check("link check: someone waiting is told at once when the consultation moves, and keeps their place", { scenario: "link check" }, async () => {
    if (!h.browser) throw new Error("no browser");
    const now = Math.floor(Date.now() / 1000);
    const start = now + 5 * 60;
    const room = await http.post("/api/v1/rooms", {
      headers: doctor,
      data: { title: "Moved follow-up", waiting_room: true, slot: { start, minutes: 20 } },
    });
    assert.equal(room.status(), 201, await room.text());
    const roomId = (await room.json()).id;
    const link = await http.post(`/api/v1/rooms/${roomId}/invites`, { headers: doctor, data: { role: "patient" } });
    assert.equal(link.status(), 201);
    const context = await h.newContext(h.browser, PHONE, "zh-CN");
    await context.grantPermissions(["camera", "microphone"], { origin: h.base });
    const page = await context.newPage();
    h.watchPage(page, "moved patient");
    h.pages.set("moved patient", page);
    await page.goto(`${h.base}/join#${(await link.json()).token}`, { waitUntil: "load", timeout: h.timeout });
    await page.waitForFunction(() => document.body.dataset.state === "prejoin", undefined, { timeout: h.timeout });
    await page.getByLabel("显示名称").fill("王芳");
    await page.getByRole("button", { name: "加入", exact: true }).click();
    await page.waitForFunction(() => document.body.dataset.state === "waiting", undefined, { timeout: h.timeout });
    /** The consultation's time as the waiting page shows it. */
    const slot = () =>
      page.evaluate(() => {
        const el = /** @type {HTMLElement} */ (document.querySelector("#waiting-slot"));
        return { hidden: el.hidden, start: el.dataset.slotStart ?? "", moved: el.dataset.moved ?? "", text: el.textContent ?? "" };
      });
    const first = await slot();
    assert.deepEqual([first.hidden, first.start, first.moved], [false, String(start), "false"], JSON.stringify(first));
    assert.match(first.text, /会诊时间/, first.text);

    /** @param {number} to */
    const move = async (to) => {
      const r = await http.put(`/api/v1/rooms/${roomId}/slot`, { headers: doctor, data: { start: to, minutes: 30 } });
      assert.equal(r.status(), 200, await r.text());
    };
    // Ten minutes later: still in the line, told at once (no reload, no polling).
    await move(start + 10 * 60);
    await page.waitForFunction((want) => document.querySelector("#waiting-slot")?.getAttribute("data-slot-start") === want, String(start + 10 * 60), { timeout: h.timeout });
    const moved = await slot();
    assert.equal(moved.moved, "true", JSON.stringify(moved));
    assert.match(moved.text, /医院已将会诊改到/, moved.text);
    assert.equal(await page.evaluate(() => document.body.dataset.state), "waiting");
    await h.snap(page, "link-moved-waiting-zh");

    // To tomorrow: still in the line, the date shown with the time; the doctor's queue still
    // has them (the clinic decides what happens next).
    const tomorrow = now + 24 * 3600;
    await move(tomorrow);
    await page.waitForFunction((want) => document.querySelector("#waiting-slot")?.getAttribute("data-slot-start") === want, String(tomorrow), { timeout: h.timeout });
    const later = await slot();
    assert.equal(later.moved, "true", JSON.stringify(later));
    assert.equal(await page.evaluate(() => document.body.dataset.state), "waiting");
    const info = await (await http.get(`/api/v1/rooms/${roomId}`, { headers: doctor })).json();
    assert.equal(info.waiting, 1, JSON.stringify(info));
    await h.snap(page, "link-moved-tomorrow-zh");
    await context.close();
  });
}
