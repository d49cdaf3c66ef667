// Browser scenario: the screens the other scenarios do not check with axe-core, each in Chinese
// and in English (consultation.test.mjs calls it near the end; a11y.mjs runs axe and
// `assertTextFromCatalogue` runs it too, after checking that the visible text is the
// catalogue's). Every screen passes with no serious or critical violation:
//
// the sign-in page; the code-entry page; the pre-join screen of a patient's link (phone size);
// a bad link's page; the pharmacist's prescription queue; the supervisor's audit trail; and
// each of them again in dark colours (the system's dark mode, which app.css follows); in dark
// colours also a live consultation: a patient waiting with the network check's result, the
// doctor's room with the waiting-room tab, the patient's consent dialog and room on a phone.

import assert from "node:assert/strict";

/**
 * @typedef {object} Harness
 * @property {(name: string, opts: {scenario?: true | string}, fn: () => Promise<void>) => Promise<void>} check
 * @property {(page: import("playwright-core").Page, name: string) => Promise<void>} snap
 * @property {(browser: import("playwright-core").Browser, viewport: {width: number, height: number}, locale?: string) => Promise<import("playwright-core").BrowserContext>} newContext
 * @property {(page: import("playwright-core").Page, who: string) => void} watchPage
 * @property {(browser: import("playwright-core").Browser, who: string, username: string, opts?: {locale?: string}) => Promise<import("playwright-core").Page>} openConsole
 * @property {Map<string, import("playwright-core").Page>} pages
 * @property {import("playwright-core").Browser} browser
 * @property {import("playwright-core").APIRequestContext} http
 * @property {(http: import("playwright-core").APIRequestContext, username: string) => Promise<{auth: Record<string, string>, me: any}>} apiSignIn
 * @property {string} base
 * @property {string} doctor
 * @property {number} timeout
 * @property {(page: import("playwright-core").Page, what: string) => Promise<void>} assertTextFromCatalogue
 */

const S = "a11y";
const LOCALES = [
  ["zh-CN", "zh-CN"],
  ["en-GB", "en"],
];
const PHONE = { width: 360, height: 640 };
const DESKTOP = { width: 1280, height: 800 };

/** @param {Harness} h */
export async function a11yScenario(h) {
  const { check, timeout } = h;
  /** @type {string[]} */
  const opened = [];

  /**
   * A fresh page at `url` in `locale`, watched and photographed on failure.
   * @param {string} who
   * @param {string} url
   * @param {string} locale
   * @param {{width: number, height: number}} viewport
   * @param {"light" | "dark"} [scheme]
   */
  const open = async (who, url, locale, viewport, scheme = "light") => {
    const context = await h.newContext(h.browser, viewport, locale);
    const page = await context.newPage();
    await page.emulateMedia({ colorScheme: scheme });
    h.watchPage(page, who);
    h.pages.set(who, page);
    opened.push(who);
    await page.goto(url, { waitUntil: "load", timeout });
    return page;
  };

  try {
    for (const [locale, tag] of LOCALES) {
      await check(`accessibility (${tag}): the sign-in page, the code-entry page, a bad link's page`, { scenario: S }, async () => {
        const signIn = await open(`a11y-signin-${tag}`, `${h.base}/`, locale, DESKTOP);
        await signIn.locator("#login-form").waitFor({ timeout });
        await h.assertTextFromCatalogue(signIn, `the sign-in page (${tag})`);
        const code = await open(`a11y-code-${tag}`, `${h.base}/code`, locale, PHONE);
        await code.locator("#code-form").waitFor({ timeout });
        await h.assertTextFromCatalogue(code, `the code-entry page (${tag})`);
        const bad = await open(`a11y-bad-${tag}`, `${h.base}/join#not-a-token`, locale, PHONE);
        await bad.waitForSelector('body[data-state="error"]', { timeout });
        await h.assertTextFromCatalogue(bad, `a bad link's page (${tag})`);
        await h.snap(bad, `a11y-bad-link-${tag}`);
      });

      await check(`accessibility (${tag}): a patient's pre-join screen on a phone`, { scenario: S }, async () => {
        const { auth } = await h.apiSignIn(h.http, h.doctor);
        const room = await h.http.post("/api/v1/rooms", { headers: auth, data: { title: `A11y ${tag}`, patient_ref: "P-A11Y", waiting_room: true } });
        assert.equal(room.status(), 201);
        const roomId = (await room.json()).id;
        const invite = await h.http.post(`/api/v1/rooms/${roomId}/invites`, { headers: auth, data: { role: "patient" } });
        assert.equal(invite.status(), 201);
        const token = (await invite.json()).token;
        const page = await open(`a11y-prejoin-${tag}`, `${h.base}/join#${token}`, locale, PHONE);
        await page.context().grantPermissions(["camera", "microphone"], { origin: h.base });
        await page.waitForSelector('body[data-state="prejoin"]', { timeout });
        await h.assertTextFromCatalogue(page, `the pre-join screen (${tag})`);
        await h.snap(page, `a11y-prejoin-${tag}`);
      });
    }

    // A patient who uses the keyboard alone (no mouse, perhaps a screen reader): from the
    // code page to the waiting room by Tab, typing and Enter, every stop showing where the
    // focus is.
    await check("accessibility (zh-CN): a patient reaches the waiting room with the keyboard alone, the focus always shown", { scenario: S }, async () => {
      const { auth } = await h.apiSignIn(h.http, h.doctor);
      const room = await h.http.post("/api/v1/rooms", { headers: auth, data: { title: "A11y keys", patient_ref: "P-A11Y", waiting_room: true } });
      assert.equal(room.status(), 201);
      const invite = await h.http.post(`/api/v1/rooms/${(await room.json()).id}/invites`, { headers: auth, data: { role: "patient" } });
      assert.equal(invite.status(), 201);
      const code = String((await invite.json()).code).replace(/\D/g, "");
      assert.equal(code.length, 9);
      const page = await open("a11y-keys", `${h.base}/code`, "zh-CN", DESKTOP);
      await page.context().grantPermissions(["camera", "microphone"], { origin: h.base });
      /** Tabs forward until `selector` has the focus; its focus ring must show. @param {string} selector */
      const tabTo = async (selector) => {
        for (let i = 0; i < 20; i++) {
          const there = await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector);
          if (there) {
            const ring = await page.evaluate(() => {
              const el = /** @type {Element} */ (document.activeElement);
              const css = getComputedStyle(el);
              return { visible: el.matches(":focus-visible"), outline: css.outlineStyle, width: parseFloat(css.outlineWidth) };
            });
            assert.ok(ring.visible && ring.outline !== "none" && ring.width >= 2, `${selector} shows its focus (${JSON.stringify(ring)})`);
            return;
          }
          await page.keyboard.press("Tab");
        }
        throw new Error(`Tab never reached ${selector}`);
      };
      await page.locator("#code-form").waitFor({ timeout });
      await tabTo("#code-input");
      await page.keyboard.type(code);
      await page.keyboard.press("Enter");
      await page.waitForSelector('body[data-state="prejoin"]', { timeout });
      await tabTo("#display-name");
      await page.keyboard.type("王秀英");
      await tabTo("#join-button");
      await page.keyboard.press("Enter");
      await page.waitForSelector('body[data-state="waiting"]', { timeout });
      await h.snap(page, "a11y-keys-waiting");
    });

    // Dark colours (many phones are set so): the same screens, in Chinese, checked the same way
    // (axe's contrast rules among them).
    await check("accessibility (zh-CN, dark): the sign-in page, the code-entry page, a bad link's page, a patient's pre-join screen", { scenario: S }, async () => {
      const signIn = await open("a11y-dark-signin", `${h.base}/`, "zh-CN", DESKTOP, "dark");
      await signIn.locator("#login-form").waitFor({ timeout });
      assert.equal(await signIn.evaluate(() => matchMedia("(prefers-color-scheme: dark)").matches), true);
      await h.assertTextFromCatalogue(signIn, "the sign-in page (zh-CN, dark)");
      await h.snap(signIn, "a11y-dark-signin");
      const code = await open("a11y-dark-code", `${h.base}/code`, "zh-CN", PHONE, "dark");
      await code.locator("#code-form").waitFor({ timeout });
      await h.assertTextFromCatalogue(code, "the code-entry page (zh-CN, dark)");
      const bad = await open("a11y-dark-bad", `${h.base}/join#not-a-token`, "zh-CN", PHONE, "dark");
      await bad.waitForSelector('body[data-state="error"]', { timeout });
      await h.assertTextFromCatalogue(bad, "a bad link's page (zh-CN, dark)");
      const { auth } = await h.apiSignIn(h.http, h.doctor);
      const room = await h.http.post("/api/v1/rooms", { headers: auth, data: { title: "A11y dark", patient_ref: "P-A11Y", waiting_room: true } });
      assert.equal(room.status(), 201);
      const invite = await h.http.post(`/api/v1/rooms/${(await room.json()).id}/invites`, { headers: auth, data: { role: "patient" } });
      assert.equal(invite.status(), 201);
      const prejoin = await open("a11y-dark-prejoin", `${h.base}/join#${(await invite.json()).token}`, "zh-CN", PHONE, "dark");
      await prejoin.context().grantPermissions(["camera", "microphone"], { origin: h.base });
      await prejoin.waitForSelector('body[data-state="prejoin"]', { timeout });
      await h.assertTextFromCatalogue(prejoin, "the pre-join screen (zh-CN, dark)");
      await h.snap(prejoin, "a11y-dark-prejoin");
    });

    // Dark colours in a live consultation: a patient waiting (their network check's figures
    // and advice shown), the doctor's room with the waiting-room tab, and the patient's room on
    // a phone once admitted.
    await check("accessibility (zh-CN, dark): a patient waiting with the network check's result, the doctor's room and waiting-room tab, the patient's room", { scenario: S }, async () => {
      const { auth } = await h.apiSignIn(h.http, h.doctor);
      const room = await h.http.post("/api/v1/rooms", { headers: auth, data: { title: "A11y dark room", patient_ref: "P-A11Y", waiting_room: true } });
      assert.equal(room.status(), 201);
      const roomId = (await room.json()).id;
      const invite = await h.http.post(`/api/v1/rooms/${roomId}/invites`, { headers: auth, data: { role: "patient" } });
      assert.equal(invite.status(), 201);
      const enter = await h.http.post(`/api/v1/rooms/${roomId}/enter`, { headers: auth });
      assert.equal(enter.status(), 200);
      const doctor = await open("a11y-dark-doctor", `${h.base}/join#${(await enter.json()).token}`, "zh-CN", DESKTOP, "dark");
      await doctor.context().grantPermissions(["camera", "microphone"], { origin: h.base });
      await doctor.waitForSelector('body[data-state="prejoin"]', { timeout });
      await doctor.locator("#join-button").click();
      await doctor.waitForSelector('body[data-state="in-room"]', { timeout });

      const patient = await open("a11y-dark-patient", `${h.base}/join#${(await invite.json()).token}`, "zh-CN", PHONE, "dark");
      await patient.context().grantPermissions(["camera", "microphone"], { origin: h.base });
      await patient.waitForSelector('body[data-state="prejoin"]', { timeout });
      await patient.locator("#display-name").fill("王秀英");
      await patient.locator("#join-button").click();
      await patient.waitForSelector('body[data-state="waiting"]', { timeout });
      await patient.locator('#waiting-network[data-path="connected"]').waitFor({ timeout });
      await h.assertTextFromCatalogue(patient, "the waiting page with the network check (zh-CN, dark)");
      await h.snap(patient, "a11y-dark-waiting");

      await doctor.locator('.tab[data-tab="queue-panel"]').click();
      await doctor.locator('#queue-panel .queue-precall[data-media-path="connected"]').waitFor({ timeout });
      await h.assertTextFromCatalogue(doctor, "the doctor's room with the waiting-room tab (zh-CN, dark)");
      await h.snap(doctor, "a11y-dark-doctor-queue");

      await doctor.locator("#queue-panel .queue-admit-next").click();
      await patient.waitForSelector('body[data-state="in-room"]', { timeout });
      await patient.locator("#consent-dialog[open]").waitFor({ timeout });
      await h.assertTextFromCatalogue(patient, "a patient's consent dialog on a phone (zh-CN, dark)");
      await patient.locator("#consent-done").click();
      await patient.waitForFunction(() => document.querySelectorAll("#tiles .tile").length === 2, undefined, { timeout, polling: 200 });
      await h.assertTextFromCatalogue(patient, "a patient's room on a phone (zh-CN, dark)");
      await h.snap(patient, "a11y-dark-patient-room");
    });

    for (const [who, env, selector] of [
      ["pharmacist", "HUIZHEN_PHARMACIST", "#pharmacy"],
      ["supervisor", "HUIZHEN_SUPERVISOR", "#audit"],
    ]) {
      const username = process.env[env] ?? "";
      if (!username) continue;
      for (const [locale, tag] of [...LOCALES, ["zh-CN", "zh-CN, dark"]]) {
        await check(`accessibility (${tag}): the ${who}'s console`, { scenario: S }, async () => {
          const name = `a11y-${who}-${tag.replace(", ", "-")}`;
          const page = await h.openConsole(h.browser, name, username, { locale });
          opened.push(name);
          if (tag.endsWith("dark")) await page.emulateMedia({ colorScheme: "dark" });
          await page.locator(`${selector}:not([hidden])`).waitFor({ timeout });
          // Its list is loaded: rows, or the line that says there are none.
          await page.locator(`${selector} li, ${selector} tr, ${selector} .hint, ${selector} [role=status]`).first().waitFor({ state: "attached", timeout });
          await h.assertTextFromCatalogue(page, `the ${who}'s console (${tag})`);
          if (who === "supervisor") {
            // Roles and the server as actor in words, not as recorded (a pharmacist's and a
            // supervisor's accounts join no room, and their roles are the accounts').
            const raw = await page.evaluate(() =>
              [...document.querySelectorAll("#audit td")].map((td) => td.textContent?.trim() ?? "").filter((t) => ["pharmacist", "supervisor", "network_supervisor", "system"].includes(t)),
            );
            assert.deepEqual(raw, [], "every role and the server in words");
          }
          await h.snap(page, name);
        });
      }
    }
  } finally {
    for (const who of opened) {
      const page = h.pages.get(who);
      h.pages.delete(who);
      await page?.context().close().catch(() => undefined);
    }
  }
}
