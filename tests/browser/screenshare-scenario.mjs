// Screen sharing (issue 18), as a scenario of the browser test (consultation.test.mjs calls it
// near the end, before the final check of page problems).
//
// The doctor opens a consultation (no waiting room) with the cardiology specialist on its care
// team and invites a patient, all through the API from the doctor's signed-in console; the
// doctor and the specialist enter from their seats, the patient (a Chinese browser) with the
// link. The specialist clicks "Share screen": with the flags the run already passes for the
// camera, --use-fake-ui-for-media-stream (no picker: a screen is chosen at once) and
// --use-fake-device-for-media-stream (a fake screen: the moving test pattern of the fake
// camera), headless Chromium's getDisplayMedia answers with a capture, so the client's real
// capture path runs and no track needs injecting. The doctor's
// and the patient's pages then show the specialist's screen on the stage, larger than the
// camera tiles, with frames playing; the specialist sees "You are sharing" and a Stop button;
// the doctor's Share button is disabled meanwhile and the patient has none. Stop on the stage
// takes the screen away from every page and gives the doctor the button back.

import assert from "node:assert/strict";
import { apiFrom } from "./console-api.mjs";

/**
 * @typedef {import("playwright-core").Page} Page
 * @typedef {object} ScenarioContext
 * @property {(name: string, opts: {scenario?: true | string}, fn: () => Promise<void>) => Promise<void>} check
 * @property {(page: Page, name: string) => Promise<void>} snap
 * @property {import("playwright-core").Browser} browser
 * @property {(browser: import("playwright-core").Browser, who: string, username: string, opts?: {camera?: boolean, locale?: string}) => Promise<Page>} openConsole
 * @property {(browser: import("playwright-core").Browser, who: string, url: string, name: string | null, opts?: {locale?: string}) => Promise<Page>} openJoinPage
 * @property {Map<string, Page>} pages
 * @property {string} doctor the doctor's username
 * @property {string} specialist the cardiology specialist's username
 * @property {number} timeout how long to wait for something to show
 * @property {(page: Page, what: string) => Promise<void>} assertTextFromCatalogue
 * @property {string} base the server's origin
 */

/**
 * Waits until the page's stage plays a screen share (the picture has a size and its time runs).
 * @param {Page} page
 * @param {string} sharer the sharer's participant id
 * @param {number} timeout
 */
async function screenPlays(page, sharer, timeout) {
  await page.waitForFunction(
    (id) => {
      const stage = document.querySelector("#screen-stage");
      const video = stage?.querySelector("video.screen-video");
      return stage instanceof HTMLElement && !stage.hidden && stage.dataset.sharer === id && video instanceof HTMLVideoElement && !video.hidden && video.videoWidth > 0 && video.currentTime > 0;
    },
    sharer,
    { timeout, polling: 200 },
  );
  // Frames keep coming: the time runs on.
  const at = await page.evaluate(() => /** @type {HTMLVideoElement} */ (document.querySelector("#screen-stage video.screen-video")).currentTime);
  await page.waitForFunction((t) => /** @type {HTMLVideoElement} */ (document.querySelector("#screen-stage video.screen-video")).currentTime > t + 0.5, at, { timeout, polling: 200 });
}

/**
 * The stage is larger than any camera tile on the page.
 * @param {Page} page
 */
async function stageDominates(page) {
  const sizes = await page.evaluate(() => {
    const stage = /** @type {HTMLElement} */ (document.querySelector("#screen-stage")).getBoundingClientRect();
    const tiles = [...document.querySelectorAll("#tiles .tile")].map((t) => t.getBoundingClientRect().width * t.getBoundingClientRect().height);
    return { stage: stage.width * stage.height, largestTile: Math.max(...tiles), tiles: tiles.length };
  });
  assert.equal(sizes.tiles, 3, "every camera is still shown, as a thumbnail");
  assert.ok(sizes.stage > 2 * sizes.largestTile, `the screen has the stage: ${JSON.stringify(sizes)}`);
}

/** @param {ScenarioContext} ctx */
export async function screenShareScenario(ctx) {
  const { check, snap, browser, openConsole, openJoinPage, pages, timeout } = ctx;
  const S = "screenshare";
  /** @type {{doctor?: Page, specialistConsole?: Page, doctorRoom?: Page, specialistRoom?: Page, patientRoom?: Page, roomId?: string, specialistId?: string}} */
  const p = {};
  const own = ["screen-doctor", "screen-specialist", "screen-doctor-room", "screen-specialist-room", "screen-patient-room"];

  try {
    await check("screen share: the doctor, the specialist and a patient are in a consultation; only the clinicians are offered Share screen", { scenario: S }, async () => {
      p.doctor = await openConsole(browser, "screen-doctor", ctx.doctor);
      p.specialistConsole = await openConsole(browser, "screen-specialist", ctx.specialist);
      const doc = p.doctor;
      const spec = p.specialistConsole;
      const specMe = await apiFrom(spec, "GET", "/api/v1/me");
      const room = await apiFrom(doc, "POST", "/api/v1/rooms", { title: `Imaging review ${Date.now()}`, patient_ref: "MRN-SCREEN-1", waiting_room: false });
      p.roomId = room.id;
      await apiFrom(doc, "POST", `/api/v1/rooms/${room.id}/care-team`, { user_id: specMe.id, role: "specialist" });
      const invite = await apiFrom(doc, "POST", `/api/v1/rooms/${room.id}/invites`, { role: "patient" });
      const doctorEntry = await apiFrom(doc, "POST", `/api/v1/rooms/${room.id}/enter`);
      const specialistEntry = await apiFrom(spec, "POST", `/api/v1/rooms/${room.id}/enter`);
      p.doctorRoom = await openJoinPage(browser, "screen-doctor-room", `${ctx.base}/join#${doctorEntry.token}`, null);
      p.specialistRoom = await openJoinPage(browser, "screen-specialist-room", `${ctx.base}/join#${specialistEntry.token}`, null);
      p.patientRoom = await openJoinPage(browser, "screen-patient-room", `${ctx.base}/join#${invite.token}`, "王芳", { locale: "zh-CN" });
      for (const page of [p.doctorRoom, p.specialistRoom, p.patientRoom]) {
        await page.waitForSelector('body[data-state="in-room"]', { timeout });
        await page.waitForFunction(() => document.querySelectorAll("#tiles .tile").length === 3, undefined, { timeout, polling: 200 });
      }
      // The patient's consent dialog stays open: nothing here needs the patient to click.
      p.specialistId = await p.specialistRoom.evaluate(() => document.querySelector("#tiles .tile-local")?.getAttribute("data-participant-id") ?? "");
      assert.ok(p.specialistId, "the specialist's own tile names them");
      for (const page of [p.doctorRoom, p.specialistRoom]) {
        const button = page.locator("#screen-button");
        assert.equal(await button.isVisible(), true, "a clinician is offered Share screen");
        assert.equal((await button.textContent())?.trim(), "Share screen");
        assert.equal(await page.locator("#screen-stage").isVisible(), false, "nobody shares yet: no stage");
      }
      assert.equal(await p.patientRoom.locator("#screen-button").isVisible(), false, "a patient is not offered Share screen");
    });

    await check("screen share: the specialist shares; the doctor's and the patient's pages show the screen on the stage, playing, with the cameras as thumbnails", { scenario: S }, async () => {
      const spec = /** @type {Page} */ (p.specialistRoom);
      const doc = /** @type {Page} */ (p.doctorRoom);
      const patient = /** @type {Page} */ (p.patientRoom);
      const sharer = /** @type {string} */ (p.specialistId);
      await spec.locator("#screen-button").click();
      // The sharer: "You are sharing" with a stop button, not a picture of their own screen.
      const sharing = spec.locator("#screen-stage .screen-sharing");
      await sharing.waitFor({ state: "visible", timeout });
      assert.match((await sharing.textContent()) ?? "", /You are sharing your screen/);
      assert.equal(await spec.locator("#screen-stage video.screen-video").isVisible(), false);
      assert.equal((await spec.locator("#screen-button").textContent())?.trim(), "Stop sharing");
      assert.equal(await spec.locator("#screen-button").getAttribute("aria-pressed"), "true");
      for (const page of [doc, patient]) {
        await screenPlays(page, sharer, timeout);
        await stageDominates(page);
      }
      assert.match((await doc.locator("#screen-stage .screen-caption").textContent()) ?? "", /'s screen$/);
      assert.match((await patient.locator("#screen-stage .screen-caption").textContent()) ?? "", / 的屏幕$/);
      // One share at a time: the doctor's button waits until this one ends.
      assert.equal(await doc.locator("#screen-button").isDisabled(), true, "the doctor cannot ask while the specialist shares");
      await snap(doc, "screenshare-doctor-sees-stage");
      await snap(patient, "screenshare-patient-sees-stage");
      await snap(spec, "screenshare-specialist-sharing");
      await ctx.assertTextFromCatalogue(spec, "the sharer's page while sharing (en)");
      await ctx.assertTextFromCatalogue(patient, "a patient's page with a shared screen (zh-CN)");
    });

    await check("screen share: Stop on the stage ends it on every page and the cameras have the room again", { scenario: S }, async () => {
      const spec = /** @type {Page} */ (p.specialistRoom);
      const doc = /** @type {Page} */ (p.doctorRoom);
      const patient = /** @type {Page} */ (p.patientRoom);
      await spec.locator("#screen-stage .screen-stop").click();
      for (const page of [spec, doc, patient]) {
        await page.locator("#screen-stage").waitFor({ state: "hidden", timeout });
      }
      assert.equal((await spec.locator("#screen-button").textContent())?.trim(), "Share screen");
      await doc.waitForFunction(() => !(/** @type {HTMLButtonElement} */ (document.querySelector("#screen-button")).disabled), undefined, { timeout, polling: 200 });
      // The cameras are back to full size: a tile is wider than the thumbnail strip allows.
      const width = await doc.evaluate(() => Math.max(...[...document.querySelectorAll("#tiles .tile")].map((t) => t.getBoundingClientRect().width)));
      assert.ok(width > 200, `the cameras take the room again (widest tile ${width}px)`);
      await snap(doc, "screenshare-stopped");
    });
  } finally {
    if (p.roomId && p.doctor) await apiFrom(p.doctor, "POST", `/api/v1/rooms/${p.roomId}/end`).catch(() => undefined);
    for (const who of own) {
      const page = pages.get(who);
      pages.delete(who);
      await page?.context().close().catch(() => undefined);
    }
  }
}
