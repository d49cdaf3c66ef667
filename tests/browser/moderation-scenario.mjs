// Moderation in the room (issue 17), as a scenario of the browser test (consultation.test.mjs
// calls it near the end, before the final check of page problems).
//
// The doctor opens a consultation (no waiting room, no patient: a teaching session, so an
// observer needs nobody's consent) and invites an observer, a trainee in a Chinese browser. In
// the doctor's room the trainee is a line in the audience with a Manage menu. A specialist
// added to the care team finds the same menu without "Remove" (removal revokes the doctor's
// link), and leaves. "Let them speak": the trainee's page says so, asks for the (fake) camera
// and microphone, shows them muted and off; the trainee turns both on and the doctor's page
// gets a tile with the trainee's picture playing. The doctor confers privately ("Confer
// privately"): the trainee's page says the
// doctors are conferring, the doctor's says the others cannot hear them; back to the patient
// clears both. The doctor mutes the trainee's microphone on the server: the trainee's page says
// so until the doctor unmutes it. "Make them only watch": the trainee's controls go, and the
// doctor's page shows them in the audience again. "Remove from the consultation", with a
// reason: the trainee's page says the care team ended their part, with the reason. Along the
// way, the quality indicators: the trainee's tile on the doctor's page says the media arrives
// well (its figures a tap away), and the trainee's own tile gives their round trip in Chinese.

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
 * @property {string} specialist a specialist's username (of another institution)
 * @property {number} timeout how long to wait for something to show
 * @property {(page: Page, what: string) => Promise<void>} assertTextFromCatalogue
 * @property {string} base the server's origin
 */

/**
 * Opens `who`'s Manage menu on the doctor's page and picks `action`.
 * @param {Page} doc
 * @param {string} who participant id
 * @param {string} action the menu item's data-action
 * @param {number} timeout
 */
async function manage(doc, who, action, timeout) {
  const button = doc.locator(`[data-participant-id="${who}"] .manage`);
  await button.waitFor({ state: "visible", timeout });
  await button.click();
  const item = doc.locator(`.manage-menu [data-action="${action}"]`);
  await item.waitFor({ state: "visible", timeout });
  assert.equal(await button.getAttribute("aria-expanded"), "true");
  await item.click();
  await doc.locator(".manage-menu").waitFor({ state: "detached", timeout });
}

/** @param {ScenarioContext} ctx */
export async function moderationScenario(ctx) {
  const { check, snap, browser, openConsole, openJoinPage, pages, timeout } = ctx;
  const S = "moderation";
  /** @type {{doctor?: Page, doctorRoom?: Page, trainee?: Page, roomId?: string, traineeId?: string}} */
  const p = {};
  const own = ["mod-doctor", "mod-doctor-room", "mod-trainee", "mod-specialist", "mod-specialist-room"];

  try {
    await check("moderation: the doctor and an observer (zh-CN) are in a teaching consultation; the observer is in the audience with a Manage menu and has no microphone or camera", { scenario: S }, async () => {
      p.doctor = await openConsole(browser, "mod-doctor", ctx.doctor);
      const room = await apiFrom(p.doctor, "POST", "/api/v1/rooms", { title: `Teaching ${Date.now()}`, patient_ref: "MRN-TEACH-1", waiting_room: false });
      p.roomId = room.id;
      const invite = await apiFrom(p.doctor, "POST", `/api/v1/rooms/${room.id}/invites`, { role: "observer" });
      const entry = await apiFrom(p.doctor, "POST", `/api/v1/rooms/${room.id}/enter`);
      p.doctorRoom = await openJoinPage(browser, "mod-doctor-room", `${ctx.base}/join#${entry.token}`, null);
      p.trainee = await openJoinPage(browser, "mod-trainee", `${ctx.base}/join#${invite.token}`, "实习生小张", { locale: "zh-CN" });
      for (const page of [p.doctorRoom, p.trainee]) await page.waitForSelector('body[data-state="in-room"]', { timeout });
      const doc = p.doctorRoom;
      await doc.locator("#audience .audience-item").first().waitFor({ state: "visible", timeout });
      p.traineeId = (await doc.locator("#audience .audience-item").first().getAttribute("data-participant-id")) ?? "";
      assert.ok(p.traineeId);
      assert.equal(await doc.locator(`.audience-item[data-participant-id="${p.traineeId}"] .manage`).isVisible(), true);
      assert.equal(await doc.locator("#huddle-button").isVisible(), true, "a clinician may confer privately");
      assert.equal(await p.trainee.locator("#huddle-button").isVisible(), false);
      assert.equal(await p.trainee.locator("#mic-button").isVisible(), false, "an observer sends nothing");
      assert.equal(await p.trainee.locator(".manage:visible").count(), 0, "an observer manages nobody");
    });

    await check("moderation: a specialist on the care team may let the trainee speak but not remove them (removal revokes the doctor's link)", { scenario: S }, async () => {
      const id = /** @type {string} */ (p.traineeId);
      const doctor = /** @type {Page} */ (p.doctor);
      const spec = await openConsole(browser, "mod-specialist", ctx.specialist);
      const me = await apiFrom(spec, "GET", "/api/v1/me");
      await apiFrom(doctor, "POST", `/api/v1/rooms/${p.roomId}/care-team`, { user_id: me.id });
      const entry = await apiFrom(spec, "POST", `/api/v1/rooms/${p.roomId}/enter`);
      const room = await openJoinPage(browser, "mod-specialist-room", `${ctx.base}/join#${entry.token}`, null);
      await room.waitForSelector('body[data-state="in-room"]', { timeout });
      const button = room.locator(`[data-participant-id="${id}"] .manage`);
      await button.waitFor({ state: "visible", timeout });
      await button.click();
      await room.locator('.manage-menu [data-action="make_guest"]').waitFor({ state: "visible", timeout });
      assert.equal(await room.locator('.manage-menu [data-action="remove"]').count(), 0, "no Remove for a specialist");
      await button.click();
      await room.locator(".manage-menu").waitFor({ state: "detached", timeout });
      // The doctor's own menu still has it.
      const docButton = /** @type {Page} */ (p.doctorRoom).locator(`[data-participant-id="${id}"] .manage`);
      await docButton.click();
      await /** @type {Page} */ (p.doctorRoom).locator('.manage-menu [data-action="remove"]').waitFor({ state: "visible", timeout });
      await docButton.click();
      await /** @type {Page} */ (p.doctorRoom).locator(".manage-menu").waitFor({ state: "detached", timeout });
      await room.locator("#leave-button").click();
      await room.waitForSelector('body[data-state="ended"]', { timeout });
      for (const who of ["mod-specialist-room", "mod-specialist"]) {
        const page = pages.get(who);
        pages.delete(who);
        await page?.context().close();
      }
    });

    await check("moderation: Let them speak; the trainee's page says so and starts muted, turns both on, and the doctor's page plays the trainee's picture", { scenario: S }, async () => {
      const doc = /** @type {Page} */ (p.doctorRoom);
      const trainee = /** @type {Page} */ (p.trainee);
      const id = /** @type {string} */ (p.traineeId);
      await manage(doc, id, "make_guest", timeout);
      await trainee.locator("#notice", { hasText: "邀请您发言" }).waitFor({ state: "visible", timeout });
      const mic = trainee.locator("#mic-button");
      await mic.waitFor({ state: "visible", timeout });
      assert.equal((await mic.textContent())?.trim(), "取消静音", "the microphone starts muted");
      await trainee.locator("#camera-button").waitFor({ state: "visible", timeout });
      // The doctor sees a guest with a tile (they may be heard and seen now).
      const tile = doc.locator(`#tiles .tile[data-participant-id="${id}"]`);
      await tile.waitFor({ state: "visible", timeout });
      assert.equal((await tile.locator(".tile-role").textContent())?.trim(), "Guest");
      await mic.click();
      await trainee.locator("#camera-button").click();
      await doc.waitForFunction(
        (pid) => {
          const video = document.querySelector(`#tiles .tile[data-participant-id="${pid}"] video`);
          return video instanceof HTMLVideoElement && video.videoWidth > 0 && video.currentTime > 0;
        },
        id,
        { timeout, polling: 200 },
      );
      await doc.waitForFunction((pid) => document.querySelector(`#tiles .tile[data-participant-id="${pid}"] .badge-muted`)?.hasAttribute("hidden"), id, { timeout, polling: 200 });
      // Quality: on loopback the guest's media arrives well; a tap shows the figures. The
      // trainee's own tile says how their link to the server is, in Chinese.
      const quality = tile.locator(".quality");
      await tile.locator('.quality[data-level="good"]').waitFor({ state: "visible", timeout });
      // The frame rate joins the label once the first interval of decoded frames is measured,
      // a report or two after the level: wait for the whole label rather than read it once.
      await doc.waitForFunction(
        (pid) => /^Good connection: \d+\skbit\/s, [\d.]+\s% lost, \d+\sframes\/s$/.test(document.querySelector(`#tiles .tile[data-participant-id="${pid}"] .quality`)?.getAttribute("aria-label") ?? ""),
        id,
        { timeout, polling: 200 },
      );
      await quality.click();
      assert.equal(await quality.getAttribute("aria-expanded"), "true");
      assert.match((await tile.locator(".quality-details").textContent()) ?? "", /kbit\/s/);
      const own = trainee.locator("#tiles .tile-local .quality");
      await own.waitFor({ state: "visible", timeout });
      await trainee.waitForFunction(() => /往返 \d+\s毫秒/.test(document.querySelector("#tiles .tile-local .quality")?.getAttribute("aria-label") ?? ""), undefined, { timeout, polling: 200 });
      await snap(trainee, "moderation-guest-speaks-zh");
      await ctx.assertTextFromCatalogue(trainee, "a guest's page after being let speak (zh-CN)");
    });

    await check("moderation: Confer privately; the trainee's page says the doctors confer, the doctor's that the others cannot hear them; back to the patient clears both", { scenario: S }, async () => {
      const doc = /** @type {Page} */ (p.doctorRoom);
      const trainee = /** @type {Page} */ (p.trainee);
      const button = doc.locator("#huddle-button");
      await button.click();
      await trainee.locator("#moderation-banner", { hasText: "医生正在私下讨论" }).waitFor({ state: "visible", timeout });
      await doc.locator("#moderation-banner", { hasText: "Conferring privately" }).waitFor({ state: "visible", timeout });
      await doc.waitForFunction(() => document.querySelector("#huddle-button")?.getAttribute("aria-pressed") === "true", undefined, { timeout, polling: 200 });
      assert.equal((await button.textContent())?.trim(), "Back to the patient");
      // What the doctor writes meanwhile stays among the clinicians: their page marks it, the
      // guest's never shows it (the server did not send it).
      await doc.locator('.tab[data-tab="chat-panel"]').click();
      await doc.locator(".chat-input").fill("Borderline troponin: admit for observation?");
      await doc.locator(".chat-form button[type=submit]").click();
      const mine = doc.locator(".chat-item.chat-huddle", { hasText: "Borderline troponin" });
      await mine.waitFor({ state: "visible", timeout });
      assert.equal((await mine.locator(".chat-private").textContent())?.trim(), "Among clinicians only (while conferring)");
      await snap(doc, "moderation-huddle-chat");
      await snap(trainee, "moderation-huddle-guest-zh");
      await ctx.assertTextFromCatalogue(doc, "the doctor's page during a huddle (en)");
      await button.click();
      for (const page of [doc, trainee]) await page.locator("#moderation-banner").waitFor({ state: "hidden", timeout });
      assert.equal(await trainee.locator(".chat-item", { hasText: "Borderline troponin" }).count(), 0, "the guest never got the huddle's message");
    });

    await check("moderation: the doctor mutes the trainee's microphone on the server; the trainee's page says so until the doctor unmutes it", { scenario: S }, async () => {
      const doc = /** @type {Page} */ (p.doctorRoom);
      const trainee = /** @type {Page} */ (p.trainee);
      const id = /** @type {string} */ (p.traineeId);
      await manage(doc, id, "mute", timeout);
      await trainee.locator("#moderation-banner", { hasText: "医生已将您静音" }).waitFor({ state: "visible", timeout });
      // The menu now offers the way back.
      await manage(doc, id, "unmute", timeout);
      await trainee.locator("#moderation-banner").waitFor({ state: "hidden", timeout });
    });

    await check("moderation: Make them only watch; the trainee's controls go and the doctor's page shows them in the audience again", { scenario: S }, async () => {
      const doc = /** @type {Page} */ (p.doctorRoom);
      const trainee = /** @type {Page} */ (p.trainee);
      const id = /** @type {string} */ (p.traineeId);
      await manage(doc, id, "make_observer", timeout);
      await trainee.locator("#notice", { hasText: "改为旁听" }).waitFor({ state: "visible", timeout });
      await trainee.locator("#mic-button").waitFor({ state: "hidden", timeout });
      assert.equal(await trainee.locator("#camera-button").isVisible(), false);
      await doc.locator(`.audience-item[data-participant-id="${id}"]`).waitFor({ state: "visible", timeout });
      assert.equal(await doc.locator(`#tiles .tile[data-participant-id="${id}"]`).count(), 0);
      // The camera is released: no live track is left on the trainee's page.
      const live = await trainee.evaluate(() => {
        const local = document.querySelector("#tiles .tile-local video");
        const stream = local instanceof HTMLVideoElement ? local.srcObject : null;
        return stream instanceof MediaStream ? stream.getTracks().filter((t) => t.readyState === "live").length : 0;
      });
      assert.equal(live, 0, "an observer's camera and microphone are off");
    });

    await check("moderation: Remove from the consultation, with a reason; the trainee's page says the care team ended their part and shows the reason", { scenario: S }, async () => {
      const doc = /** @type {Page} */ (p.doctorRoom);
      const trainee = /** @type {Page} */ (p.trainee);
      const id = /** @type {string} */ (p.traineeId);
      await manage(doc, id, "remove", timeout);
      const dialog = doc.locator("#reason-dialog");
      await dialog.waitFor({ state: "visible", timeout });
      assert.match((await doc.locator("#reason-dialog-title").textContent()) ?? "", /^Remove 实习生小张 from the consultation\?$/);
      await doc.locator("#reason-input").fill("课程到此结束");
      await doc.locator("#reason-ok").click();
      await trainee.waitForSelector('body[data-state="error"]', { timeout });
      assert.equal(await trainee.locator("#status-panel").getAttribute("data-error-code"), "removed");
      await trainee.locator("#status-panel", { hasText: "课程到此结束" }).waitFor({ state: "visible", timeout });
      await doc.locator(`[data-participant-id="${id}"]`).waitFor({ state: "detached", timeout });
      await snap(trainee, "moderation-removed-zh");
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
