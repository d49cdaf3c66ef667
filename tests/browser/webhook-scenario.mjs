// Browser scenario: an institution's webhook set up from the administrators' console
// (web-client/js/webhook-view.js), and events reaching a real receiver. Called from
// consultation.test.mjs in two parts around the referral scenario.
//
// `webhookSetup`, before the referral scenario: a receiver (a plain HTTP server of this test on
// 127.0.0.1; scripts/test-browser.sh lets the server send http to loopback) starts; the county
// hospital's administrator, in Chinese, opens the hospital's webhook panel (none set), is shown
// the server's refusal of a plain-http address elsewhere (`url_not_https`), sets the receiver's
// address (the signing secret shown once), and makes a new secret (asked first; a different
// secret shown).
//
// `webhookCheck`, after it: the receiver got the referral's `referral.created` for the county
// hospital, signed with the newest secret (HMAC-SHA256 over "<t>.<body>"), carrying ids and
// states but none of the referral's clinical words; the console, refreshed, lists that event as
// delivered. Then the receiver goes down: a new request's event is given up after its attempts
// (shown failed, with the receiver's 503); back up, the administrator presses "Send again" and the
// same event is delivered.

import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

const COUNTY = "县人民医院";

/**
 * @typedef {object} Harness
 * @property {(name: string, opts: {scenario?: true | string}, fn: () => Promise<void>) => Promise<void>} check
 * @property {(page: import("playwright-core").Page, name: string) => Promise<void>} snap
 * @property {import("playwright-core").Browser} browser
 * @property {(browser: import("playwright-core").Browser, who: string, username: string, opts?: {locale?: string}) => Promise<import("playwright-core").Page>} openConsole
 * @property {Map<string, import("playwright-core").Page>} pages
 * @property {number} timeout
 * @property {(page: import("playwright-core").Page, what: string) => Promise<void>} assertTextFromCatalogue
 * @property {import("playwright-core").APIRequestContext} http
 * @property {(http: import("playwright-core").APIRequestContext, username: string) => Promise<{auth: Record<string, string>, me: any}>} apiSignIn
 * @property {string} doctor the township doctor's username
 */

/**
 * What the receiver was sent.
 * @typedef {object} Received
 * @property {string} signature the Huizhen-Signature header
 * @property {string} body
 */

/**
 * What the first part leaves the second.
 * @typedef {object} Hooks
 * @property {Received[]} received
 * @property {string} secret the newest signing secret shown
 * @property {import("playwright-core").Page} page the administrator's console
 * @property {() => Promise<void>} close
 * @property {{down: boolean}} receiver while `down`, the receiver answers 503 to everything
 */

const S = "webhooks";

/**
 * @param {Harness} h
 * @returns {Promise<Hooks | null>} null when the scenario cannot run
 */
export async function webhookSetup(h) {
  const admin = process.env.HUIZHEN_INSTITUTION_ADMIN ?? "";
  if (!admin) {
    await h.check("webhooks: (no HUIZHEN_INSTITUTION_ADMIN: skipped)", {}, async () => {});
    return null;
  }
  /** @type {Received[]} */
  const received = [];
  const receiver = { down: false };
  const server = createServer((req, res) => {
    /** @type {Buffer[]} */
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      // What it answered down is not what it got.
      if (receiver.down) return void res.writeHead(503).end();
      received.push({ signature: String(req.headers["huizhen-signature"] ?? ""), body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(204).end();
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  const close = () => new Promise((resolve) => server.close(() => resolve(undefined)));

  /** @type {Hooks | null} */
  let hooks = null;
  await h.check("webhooks: the county hospital's administrator (zh-CN) sets the hospital's webhook; a plain-http address elsewhere is refused by code; the secret is shown once and renewed", { scenario: S }, async () => {
    const page = await h.openConsole(h.browser, "webhook-admin", admin, { locale: "zh-CN" });
    const institution = page.locator("#admin li.institution", { has: page.locator("h4", { hasText: COUNTY }) });
    await institution.waitFor({ timeout: h.timeout });
    const panel = institution.locator("details.webhook-panel");
    await panel.locator("summary").click();
    await institution.locator('details.webhook-panel[data-webhook="none"]').waitFor({ timeout: h.timeout });
    assert.equal(await panel.locator(".webhook-status").textContent(), "尚未设置 Webhook。");
    const url = panel.getByLabel("地址（URL）");

    await url.fill("http://his.county.example/huizhen");
    await panel.getByRole("button", { name: "保存" }).click();
    const error = panel.locator('.form-error[data-code="url_not_https"]');
    await error.waitFor({ timeout: h.timeout });
    assert.equal(await url.getAttribute("aria-invalid"), "true");
    assert.equal(await panel.getAttribute("data-webhook"), "none", "nothing was set");

    await url.fill(`http://127.0.0.1:${port}/huizhen`);
    await panel.getByRole("button", { name: "保存" }).click();
    await institution.locator('details.webhook-panel[data-webhook="on"]').waitFor({ timeout: h.timeout });
    const secretBox = panel.locator(".webhook-secret");
    await secretBox.waitFor({ timeout: h.timeout });
    const first = (await secretBox.locator("code").textContent()) ?? "";
    assert.match(first, /^whsec_[A-Za-z0-9_-]{43}$/);
    assert.match((await panel.locator(".webhook-counts").textContent()) ?? "", /0 条待发送/);
    await panel.locator(".webhook-events").waitFor({ timeout: h.timeout });
    await h.snap(page, "webhook-set-admin");
    await h.assertTextFromCatalogue(page, "the administrators' webhook panel (zh-CN)");

    // A new secret: asked first, then shown once, different.
    await panel.getByRole("button", { name: "更换密钥" }).click();
    const confirm = page.locator("#confirm-dialog");
    await confirm.waitFor({ timeout: h.timeout });
    await confirm.getByRole("button", { name: "更换密钥" }).click();
    await panel.locator(".webhook-status", { hasText: "已生成新密钥" }).waitFor({ timeout: h.timeout });
    const second = (await secretBox.locator("code").textContent()) ?? "";
    assert.match(second, /^whsec_/);
    assert.notEqual(second, first);
    hooks = { received, secret: second, page, close, receiver };
  });
  if (!hooks) await close();
  return hooks;
}

/**
 * @param {Harness} h
 * @param {Hooks | null} hooks
 */
export async function webhookCheck(h, hooks) {
  if (!hooks) return;
  const { received, secret, page } = hooks;
  try {
    await h.check("webhooks: the receiver got the referral's event, signed with the newest secret, with no clinical words; the console lists it as delivered", { scenario: S }, async () => {
      const deadline = Date.now() + h.timeout;
      /** @type {{signature: string, body: string, event: any} | undefined} */
      let created;
      while (!created && Date.now() < deadline) {
        created = received
          .map((r) => ({ ...r, event: JSON.parse(r.body) }))
          .find((r) => r.event.type === "referral.created");
        if (!created) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.ok(created, `referral.created never arrived (got ${received.length} events)`);
      const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(created.signature);
      assert.ok(m, `signature header ${created.signature}`);
      const want = createHmac("sha256", secret).update(`${m[1]}.${created.body}`).digest();
      assert.ok(timingSafeEqual(want, Buffer.from(m[2], "hex")), "signed with the secret shown last");
      assert.equal(typeof created.event.id, "string");
      assert.equal(created.event.consultation.sequence, 1);
      // Ids, states and times only: the referral scenario's reason and question stay out.
      assert.doesNotMatch(created.body, /Exertional|angiography/);

      const panel = page.locator("#admin details.webhook-panel[data-webhook=\"on\"]");
      await panel.getByRole("button", { name: "刷新" }).click();
      // This event (the referral-steps scenario sends more requests after it).
      const item = panel.locator(`li.webhook-delivery[data-event-id="${created.event.id}"][data-state="delivered"]`);
      await item.waitFor({ timeout: h.timeout });
      assert.match((await item.textContent()) ?? "", /会诊申请已发出.*已送达.*HTTP 204/);
      assert.equal(await item.getAttribute("data-type"), "referral.created");
      await h.snap(page, "webhook-delivered-admin");
      await h.assertTextFromCatalogue(page, "the webhook's recent events (zh-CN)");
    });

    await h.check("webhooks: while the hospital's receiver is down a new request's event is given up after its attempts; the administrator sends it again from the console, and it is delivered", { scenario: S }, async () => {
      hooks.receiver.down = true;
      const { auth } = await h.apiSignIn(h.http, h.doctor);
      const listed = await h.http.get("/api/v1/institutions", { headers: auth });
      const county = /** @type {{institutions: {name: string, departments: {id: string}[]}[]}} */ (await listed.json()).institutions.find((i) => i.name === COUNTY);
      assert.ok(county?.departments.length, "the county hospital's departments");
      const sent = await h.http.post("/api/v1/referrals", {
        headers: auth,
        data: { target_department_id: county.departments[0].id, patient_ref: "P-HOOK-DOWN", reason: "Webhook receiver down", question: "Sent again?", urgency: "routine" },
      });
      assert.equal(sent.status(), 201, await sent.text());
      const referral = /** @type {{id: string}} */ (await sent.json()).id;
      try {

        // Given up (scripts/test-browser.sh: three attempts, a fraction of a second apart).
        const panel = page.locator('#admin details.webhook-panel[data-webhook="on"]');
        // This request's (the line names its consultation by the first 12 characters of its id).
        const failed = panel.locator('li.webhook-delivery[data-type="referral.created"][data-state="failed"]', { hasText: referral.slice(0, 12) });
        let deadline = Date.now() + h.timeout;
        while ((await failed.count()) === 0 && Date.now() < deadline) {
          await panel.getByRole("button", { name: "刷新" }).click();
          await new Promise((resolve) => setTimeout(resolve, 300));
        }
        await failed.first().waitFor({ timeout: 1000 });
        const eventId = (await failed.first().getAttribute("data-event-id")) ?? "";
        assert.ok(eventId, "the failed event's id");
        assert.match((await failed.first().textContent()) ?? "", /HTTP 503/);
        assert.equal(received.filter((r) => JSON.parse(r.body).id === eventId).length, 0);
        await h.snap(page, "webhook-failed-admin");

        // Back up: sent again, delivered once, the same event.
        hooks.receiver.down = false;
        await failed.first().getByRole("button", { name: "重新发送" }).click();
        const delivered = panel.locator(`li.webhook-delivery[data-event-id="${eventId}"][data-state="delivered"]`);
        deadline = Date.now() + h.timeout;
        while ((await delivered.count()) === 0 && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 300));
          await panel.getByRole("button", { name: "刷新" }).click();
        }
        await delivered.waitFor({ timeout: 1000 });
        const copies = received.map((r) => JSON.parse(r.body)).filter((e) => e.id === eventId);
        assert.ok(copies.length >= 1, "the receiver got it");
        assert.equal(copies[0].type, "referral.created");
        assert.equal(copies[0].consultation.id, referral);
        await h.snap(page, "webhook-sent-again-admin");
      } finally {
        hooks.receiver.down = false;
        // Withdrawn, so that no later scenario finds it in the department's box.
        const cancelled = await h.http.post(`/api/v1/referrals/${referral}/cancel`, { headers: auth, data: { reason: "Only a test of the webhook" } });
        assert.equal(cancelled.status(), 200, await cancelled.text());
      }
    });
  } finally {
    h.pages.delete("webhook-admin");
    await page.context().close().catch(() => undefined);
    await hooks.close();
  }
}
