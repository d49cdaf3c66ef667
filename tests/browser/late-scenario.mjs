// Who is late (issue 17), as a scenario of the browser test (consultation.test.mjs calls it
// near the end, before the final check of page problems).
//
// The doctor asks the cardiology specialist for a consultation that started two minutes ago (an
// urgent case: the server takes a time up to five minutes past) and the specialist accepts that
// time, both through the API from their own signed-in consoles. The doctor's day view then shows
// the consultation with the specialist late (by at least two minutes), the doctor too, and the
// patient (nobody has come and nobody waits); the specialist enters the consultation from their
// console, and once the day view is updated they are no longer late while the others still are;
// a patient comes and waits, and the patient is no longer late, without a click (the live
// `patient_waiting` reads attendance again). The same entry, with who waits and who is late, is
// then measured at phone size (360×640): inside the entry, nothing overlapping, buttons of 44 px.
// The doctor's console runs in English here.

import assert from "node:assert/strict";
import { apiFrom } from "./console-api.mjs";

/**
 * @typedef {import("playwright-core").Page} Page
 * @typedef {object} ScenarioContext
 * @property {(name: string, opts: {scenario?: true | string}, fn: () => Promise<void>) => Promise<void>} check
 * @property {(page: Page, name: string) => Promise<void>} snap
 * @property {import("playwright-core").Browser} browser
 * @property {(browser: import("playwright-core").Browser, who: string, username: string, opts?: {camera?: boolean, locale?: string}) => Promise<Page>} openConsole
 * @property {(browser: import("playwright-core").Browser, who: string, url: string, name: string | null) => Promise<Page>} openJoinPage
 * @property {Map<string, Page>} pages
 * @property {string} doctor the doctor's username
 * @property {string} specialist the cardiology specialist's username
 * @property {number} timeout how long to wait for something to show
 * @property {(page: Page, what: string) => Promise<void>} assertTextFromCatalogue
 * @property {string} base the server's origin
 */

/** @param {ScenarioContext} ctx */
export async function lateScenario(ctx) {
  const { check, snap, browser, openConsole, openJoinPage, pages, timeout } = ctx;
  const S = "late";
  const reason = `Syncope, started late ${Date.now()}`;
  /** @type {{doctor?: Page, specialist?: Page, roomId?: string, specialistId?: string, doctorId?: string}} */
  const p = {};

  try {
    await check("who is late: a consultation that started two minutes ago shows the specialist, the doctor and the patient late", { scenario: S }, async () => {
      p.specialist = await openConsole(browser, "late-specialist", ctx.specialist);
      p.doctor = await openConsole(browser, "late-doctor", ctx.doctor);
      const spec = p.specialist;
      const doc = p.doctor;
      const me = await apiFrom(spec, "GET", "/api/v1/me");
      p.specialistId = me.id;
      p.doctorId = (await apiFrom(doc, "GET", "/api/v1/me")).id;
      // Two minutes ago: the earliest the server takes is five minutes past.
      const start = Math.floor(Date.now() / 1000) - 120;
      const created = await apiFrom(doc, "POST", "/api/v1/referrals", {
        target_department_id: me.department.id,
        target_specialist_id: me.id,
        patient_ref: "P-LATE-0001",
        reason,
        question: "Holter first?",
        urgency: "urgent",
        proposed_times: [{ start, minutes: 30 }],
      });
      const accepted = await apiFrom(spec, "POST", `/api/v1/referrals/${created.id}/accept`, { start, minutes: 30 });
      assert.equal(accepted.state, "scheduled");
      assert.equal(typeof accepted.room_id, "string", "scheduling opened a room");
      p.roomId = accepted.room_id;

      // The doctor's day view (today) is updated by the acceptance's notification. Just after
      // midnight, two minutes ago was yesterday: the view is turned to that day first.
      const startDay = await doc.evaluate((at) => {
        const d = new Date(at * 1000);
        return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
      }, start);
      if (startDay !== (await doc.inputValue("#day-view-date"))) await doc.fill("#day-view-date", startDay);
      const entry = doc.locator(`#day-view li.day-item[data-room-id="${accepted.room_id}"]`);
      await entry.waitFor({ timeout });
      const specialistLate = entry.locator(`.day-late li.late-item[data-user-id="${me.id}"]`);
      await specialistLate.waitFor({ timeout });
      const minutes = Number(await specialistLate.getAttribute("data-minutes"));
      assert.ok(minutes >= 2, `late by at least two minutes: ${minutes}`);
      assert.match((await specialistLate.textContent()) ?? "", new RegExp(`^${me.display_name}.* not here yet · ${minutes} min late$`));
      await entry.locator(`.day-late li.late-item[data-user-id="${p.doctorId}"]`).waitFor({ timeout });
      const patientLate = entry.locator('.day-late li.late-item[data-who="patient"]');
      await patientLate.waitFor({ timeout });
      assert.match((await patientLate.textContent()) ?? "", /The patient has not come yet · \d+ min late/);
      await snap(doc, "late-before-doctor");
      await ctx.assertTextFromCatalogue(doc, "the doctor's day view with who is late (en)");
    });

    await check("who is late: the specialist enters; the doctor's day view no longer shows them late, the others still", { scenario: S }, async () => {
      const spec = /** @type {Page} */ (p.specialist);
      const doc = /** @type {Page} */ (p.doctor);
      const entry = await apiFrom(spec, "POST", `/api/v1/rooms/${p.roomId}/enter`);
      await openJoinPage(browser, "late-specialist-room", `${ctx.base}/join#${entry.token}`, null);
      const room = pages.get("late-specialist-room");
      await room?.waitForSelector('body[data-state="in-room"]', { timeout });
      const item = doc.locator(`#day-view li.day-item[data-room-id="${p.roomId}"]`);
      const specialistLate = item.locator(`li.late-item[data-user-id="${p.specialistId}"]`);
      // The server writes joins in batches: update the day view until the arrival shows.
      const until = Date.now() + timeout;
      while ((await specialistLate.count()) > 0) {
        assert.ok(Date.now() < until, "the specialist is still shown late after entering");
        await doc.locator("#day-view-refresh").click();
        await doc.waitForTimeout(500);
      }
      assert.equal(await item.locator(`li.late-item[data-user-id="${p.doctorId}"]`).count(), 1, "the doctor has not come: still late");
      assert.equal(await item.locator('li.late-item[data-who="patient"]').count(), 1, "nor has the patient");
      await snap(doc, "late-after-doctor");
    });

    await check("who is late: a patient comes and waits; the doctor's day view stops showing the patient late, live", { scenario: S }, async () => {
      const doc = /** @type {Page} */ (p.doctor);
      const invite = await apiFrom(doc, "POST", `/api/v1/rooms/${p.roomId}/invites`, { role: "patient" });
      const patient = await openJoinPage(browser, "late-patient", invite.url || `${ctx.base}/join#${invite.token}`, "Zhao Min");
      await patient.waitForSelector('body[data-state="waiting"]', { timeout });
      const item = doc.locator(`#day-view li.day-item[data-room-id="${p.roomId}"]`);
      // No click: the live patient_waiting reads who is late again.
      await item.locator(".waiting-count").waitFor({ timeout });
      await item.locator('li.late-item[data-who="patient"]').waitFor({ state: "detached", timeout });
      assert.equal(await item.locator(`li.late-item[data-user-id="${p.doctorId}"]`).count(), 1, "the doctor is still late");
      // Who waits, by the name they gave, and for how long.
      const waiter = item.locator('ul.day-waiting li.waiting-person[data-name="Zhao Min"]');
      await waiter.waitFor({ timeout });
      assert.match((await waiter.textContent()) ?? "", /^Zhao Min \(Patient\) · waiting \d+ min$/);
      await snap(doc, "day-view-who-waits");
      await ctx.assertTextFromCatalogue(doc, "the doctor's day view with a patient waiting (en)");
    });

    await check("who is late: from the day view, without entering, the doctor tells the patient waiting that they run late; the patient's page shows it", { scenario: S }, async () => {
      const doc = /** @type {Page} */ (p.doctor);
      const patient = /** @type {Page} */ (pages.get("late-patient"));
      const item = doc.locator(`#day-view li.day-item[data-room-id="${p.roomId}"]`);
      const words = "医生晚到10分钟 / The doctor is running 10 minutes late";
      await item.locator("details.day-message > summary").click();
      await item.locator("details.day-message textarea").fill(words);
      await item.locator("details.day-message button.day-message-send").click();
      await item.locator('p.day-message-status[data-state="sent"]').waitFor({ timeout });
      assert.equal(await item.locator("p.day-message-status").textContent(), "Everyone waiting now reads this message.");
      await patient.locator("#waiting-message-text", { hasText: words }).waitFor({ timeout });
      assert.equal(await patient.locator("#waiting-message").isVisible(), true);
      await snap(doc, "day-view-message-sent");
      // Closed again, so that the phone's layout below is the entry as it first shows.
      await item.locator("details.day-message > summary").click();
    });

    await check("who is late on a phone: the day view's entry with who waits and who is late fits a 360×640 screen, nothing overlapping", { scenario: S }, async () => {
      const doc = /** @type {Page} */ (p.doctor);
      const before = doc.viewportSize();
      await doc.setViewportSize({ width: 360, height: 640 });
      try {
        const item = doc.locator(`#day-view li.day-item[data-room-id="${p.roomId}"]`);
        await item.scrollIntoViewIfNeeded();
        const m = await item.evaluate((li) => {
          /** @param {Element} e */
          const box = (e) => {
            const r = e.getBoundingClientRect();
            return { left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height };
          };
          const parts = [...li.querySelectorAll(".day-time, .room-head h3, .waiting-count, ul.day-late li, ul.day-waiting li, button")]
            .filter((e) => e instanceof HTMLElement && e.offsetParent !== null)
            .map((e) => ({ what: `${e.tagName.toLowerCase()}.${e.className} ${(e.textContent ?? "").trim().slice(0, 40)}`, ...box(e) }));
          return {
            width: document.documentElement.clientWidth,
            scrollWidth: document.documentElement.scrollWidth,
            item: box(li),
            parts,
            buttons: [...li.querySelectorAll("button")].filter((b) => b instanceof HTMLElement && b.offsetParent !== null).map(box),
          };
        });
        assert.ok(m.scrollWidth <= m.width, `the console does not scroll sideways at 360 px: ${m.scrollWidth} > ${m.width}`);
        assert.ok(m.parts.some((x) => x.what.startsWith("li.waiting-person")), "who waits is shown on the phone");
        assert.ok(m.parts.some((x) => x.what.startsWith("li.late-item")), "who is late is shown on the phone");
        for (const x of m.parts) {
          assert.ok(x.left >= m.item.left - 0.5 && x.right <= m.item.right + 0.5, `inside its entry, not cut off: ${JSON.stringify(x)} in ${JSON.stringify(m.item)}`);
        }
        for (let i = 0; i < m.parts.length; i++) {
          for (let j = i + 1; j < m.parts.length; j++) {
            const a = m.parts[i];
            const b = m.parts[j];
            const over = Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5 && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5;
            assert.ok(!over, `${a.what} and ${b.what} overlap on the phone`);
          }
        }
        for (const b of m.buttons) assert.ok(b.height >= 44 && b.width >= 44, `a button large enough to hit on a phone: ${JSON.stringify(b)}`);
        await snap(doc, "day-view-who-waits-phone");
      } finally {
        if (before) await doc.setViewportSize(before);
      }
    });

    await check("department queue: the specialist's day view shows who waits in the department, live, and Take next patient enters", { scenario: S }, async () => {
      const spec = /** @type {Page} */ (p.specialist);
      const queued = spec.locator(`#day-queue li.queue-item[data-room-id="${p.roomId}"]`);
      // No click: the live department_queue_changed reads the queue again.
      await queued.waitFor({ timeout });
      assert.match((await queued.locator(".waiting-count").textContent()) ?? "", /1 waiting/);
      await ctx.assertTextFromCatalogue(spec, "the specialist's day view with the department queue (en)");
      await snap(spec, "department-queue");
      await spec.locator("#day-queue-next").click();
      await spec.waitForURL(/\/join#/, { timeout });
      // Their seat's page: no name to type, Join enters as the signed-in account.
      await spec.waitForSelector('body[data-state="prejoin"]', { timeout });
      await spec.getByRole("button", { name: "Join", exact: true }).click();
      await spec.waitForSelector('body[data-state="in-room"]', { timeout });
    });
  } finally {
    for (const who of ["late-doctor", "late-specialist", "late-specialist-room", "late-patient"]) {
      const page = pages.get(who);
      pages.delete(who);
      await page?.context().close().catch(() => undefined);
    }
  }
}
