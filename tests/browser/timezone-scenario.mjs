// Times in the institution's zone (issue 18), as a scenario of the browser test
// (consultation.test.mjs calls it near the end, before the final check of page problems).
//
// The server is configured with `display.time_zone = "UTC"` (scripts/test-browser.sh); this
// browser runs in Pacific/Kiritimati (UTC+14, so the day differs too). A public page (the code
// page: no session) asks `GET /api/v1/display`, and i18n.js's `formatTime` then shows an instant
// in the server's zone, not the browser's: the same text as Intl gives for that zone, different
// from what it gives for the browser's.

import assert from "node:assert/strict";

/**
 * @typedef {object} ScenarioContext
 * @property {(name: string, opts: {scenario?: true | string}, fn: () => Promise<void>) => Promise<void>} check
 * @property {import("playwright-core").Browser} browser
 * @property {string} base the server's origin
 * @property {number} timeout how long to wait for something to show
 */

const BROWSER_ZONE = "Pacific/Kiritimati";
// 2026-12-03T09:30:00Z: 23:30 on the 3rd in Kiritimati, 09:30 in UTC.
const INSTANT = Date.UTC(2026, 11, 3, 9, 30);

/** @param {ScenarioContext} ctx */
export async function timeZoneScenario({ check, browser, base, timeout }) {
  await check("times are shown in the institution's zone, not the browser's", { scenario: "timezone" }, async () => {
    const context = await browser.newContext({
      ignoreHTTPSErrors: true,
      locale: "en-GB",
      timezoneId: BROWSER_ZONE,
    });
    try {
      const page = await context.newPage();
      const display = await (await page.request.get(`${base}/api/v1/display`)).json();
      assert.equal(display.time_zone, "UTC");
      assert.equal(display.utc_offset, "+00:00");
      await page.goto(`${base}/code`);
      // The page's own copy of i18n.js (same URL, same module) learns the zone. Polled with
      // evaluate: a waitForFunction with this async predicate returned before the zone was
      // known in one CI run.
      const until = Date.now() + timeout;
      while (!(await page.evaluate(async () => (await import("/js/i18n.js")).displayTimeZone() === "UTC"))) {
        assert.ok(Date.now() < until, "the page never learnt the server's zone");
        await page.waitForTimeout(100);
      }
      // What i18n.js shows, and what Intl shows in the page's language in each zone.
      const { shown, inZone, inBrowser } = await page.evaluate(async (at) => {
        const i18n = await import("/js/i18n.js");
        const style = { dateStyle: /** @type {const} */ ("medium"), timeStyle: /** @type {const} */ ("short") };
        return {
          shown: i18n.formatTime(at, "datetime"),
          inZone: new Intl.DateTimeFormat(i18n.locale(), { ...style, timeZone: "UTC" }).format(at),
          inBrowser: new Intl.DateTimeFormat(i18n.locale(), style).format(at),
        };
      }, INSTANT);
      assert.notEqual(inZone, inBrowser, "the browser's zone must differ for this check to mean anything");
      assert.equal(shown, inZone);
      assert.match(shown, /9:30/);
    } finally {
      await context.close().catch(() => undefined);
    }
  });
}
