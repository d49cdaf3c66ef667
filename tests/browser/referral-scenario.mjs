// Browser scenario: a consultation request (referral) between two consoles, with live
// notifications. Called from consultation.test.mjs (which passes its harness) near the end of
// the run.
//
// The doctor (township clinic) sends an urgent request to the county hospital's cardiology
// department from the console's form; the specialist's console, open already, shows it arrive
// without a reload (the live notice and the department tab's badge); the specialist opens it, is
// refused a time in the past (the server's error by its code), and accepts the time the doctor
// proposed; the doctor's console shows it scheduled without a reload, and the day view of that
// day lists the consultation at its time. Signing out closes the views.

import assert from "node:assert/strict";

/**
 * @typedef {object} ScenarioContext
 * @property {(name: string, opts: {scenario?: true | string}, fn: () => Promise<void>) => Promise<void>} check
 * @property {(page: import("playwright-core").Page, name: string) => Promise<void>} snap
 * @property {import("playwright-core").Browser} browser
 * @property {(browser: import("playwright-core").Browser, who: string, username: string, opts?: {locale?: string}) => Promise<import("playwright-core").Page>} openConsole
 * @property {(browser: import("playwright-core").Browser, who: string, url: string, name: string, opts?: {viewport?: {width: number, height: number}}) => Promise<import("playwright-core").Page>} openJoinPage
 *   a participant's page in a fresh context, past the pre-join screen
 * @property {Map<string, import("playwright-core").Page>} pages
 * @property {string} doctor the doctor's username
 * @property {string} specialist the cardiology specialist's username
 * @property {number} timeout how long to wait for something to show
 * @property {(page: import("playwright-core").Page, what: string) => Promise<void>} assertTextFromCatalogue
 * @property {import("playwright-core").APIRequestContext} http
 * @property {(http: import("playwright-core").APIRequestContext, username: string) => Promise<{auth: Record<string, string>, me: any}>} apiSignIn
 * @property {(rows: number, cols: number) => Buffer} ctSlice a small DICOM CT slice
 */

/** @param {number} n */
const pad = (n) => String(n).padStart(2, "0");

/**
 * A day from today, local time, as the date and datetime-local inputs take it.
 * @param {number} days
 */
function localDay(days) {
  const d = new Date();
  d.setDate(d.getDate() + days);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** @param {ScenarioContext} ctx */
export async function referralScenario(ctx) {
  const { check, snap, browser, openConsole, openJoinPage, pages, timeout } = ctx;
  const S = "referrals";
  const tomorrow = localDay(1);
  const yesterday = localDay(-1);
  const reason = `Exertional chest pain ${Date.now()}`;
  /** @type {{doctor?: import("playwright-core").Page, specialist?: import("playwright-core").Page}} */
  const p = {};

  try {
    // The township doctor's console runs in Chinese, the county specialist's in English.
    await check("referrals: both consoles open with their live notifications (the doctor's in zh-CN); the doctor sends an urgent request to cardiology", { scenario: S }, async () => {
      p.specialist = await openConsole(browser, "ref-specialist", ctx.specialist);
      p.doctor = await openConsole(browser, "ref-doctor", ctx.doctor, { locale: "zh-CN" });
      for (const page of [p.specialist, p.doctor]) {
        await page.locator('#referrals[data-live="connected"]').waitFor({ state: "attached", timeout });
        await page.locator("#day-view-date").waitFor({ timeout });
      }
      // Marks the specialist's page: gone if it reloads.
      await p.specialist.evaluate(() => {
        /** @type {any} */ (window).notReloaded = true;
      });
      const doc = p.doctor;
      // Chinese labels from the catalogue.
      assert.equal(await doc.locator("#rooms-title").textContent(), "会诊");
      assert.equal(await doc.locator("#day-view-title").textContent(), "日程");
      await doc.getByRole("button", { name: "新会诊申请" }).click();
      const form = doc.locator("#referral-form");
      await form.getByLabel("科室", { exact: true }).selectOption({ label: "心血管内科 · 县人民医院" }, { timeout });
      await form.getByLabel("患者编号").fill("P-REF-0007");
      await form.getByLabel("申请原因").fill(reason);
      await form.getByLabel("会诊问题").fill("Stress test or angiography first?");
      await form.getByLabel("紧急程度").selectOption("urgent");
      assert.equal(await form.getByLabel("紧急程度").locator("option:checked").textContent(), "紧急");
      await form.getByLabel("日期和时间").fill(`${tomorrow}T10:00`);
      // To another hospital: the server's words, in both languages with their version, and the
      // attestation that the patient agreed (its documents need it).
      const consent = form.locator("fieldset#referral-consent");
      await consent.waitFor({ timeout });
      await consent.locator('p[lang="zh-CN"]', { hasText: "其他医院" }).waitFor({ timeout });
      await consent.locator('p[lang="en"]', { hasText: "another hospital" }).waitFor({ timeout });
      assert.match((await consent.textContent()) ?? "", /文本版本 \d{4}-\d{2}-\d{2}/);
      await form.getByLabel("患者已同意以上内容").check();
      await form.getByRole("button", { name: "发送申请" }).click();
      const sent = doc.locator("#referral-panel li.referral-item", { hasText: reason });
      await sent.waitFor({ timeout });
      assert.equal(await doc.locator("#referral-tab-outbox").getAttribute("aria-selected"), "true", "the sent box is shown");
      assert.equal(await sent.getAttribute("data-urgency"), "urgent");
      assert.equal(await sent.getAttribute("data-state"), "requested");
      await doc.locator("#referral-notice", { hasText: "会诊申请已发出" }).waitFor({ timeout });
      await snap(doc, "referral-sent-doctor");
      await ctx.assertTextFromCatalogue(doc, "the doctor's console with the request form and the sent box (zh-CN)");
    });

    await check("referrals: the specialist's console shows the request arrive live (notice, badge), urgent first", { scenario: S }, async () => {
      const spec = /** @type {import("playwright-core").Page} */ (p.specialist);
      await spec.locator("#referral-notice", { hasText: "New consultation request (urgent)" }).waitFor({ timeout });
      // Addressed to the department as a whole: its tab counts it.
      await spec.locator("#referral-tab-department .tab-badge", { hasText: "1" }).waitFor({ timeout });
      assert.equal(await spec.evaluate(() => /** @type {any} */ (window).notReloaded), true, "no reload");
      await spec.locator("#referral-tab-department").click();
      const item = spec.locator("#referral-panel li.referral-item", { hasText: reason });
      await item.waitFor({ timeout });
      assert.equal(await item.getAttribute("data-urgency"), "urgent");
      assert.equal(await spec.locator("#referral-panel li.referral-item").first().getAttribute("data-urgency"), "urgent", "urgent ones first");
      await snap(spec, "referral-arrived-specialist");
      await ctx.assertTextFromCatalogue(spec, "the specialist's referral inbox (en)");
    });

    await check("referrals: the doctor attaches an ECG and a CT slice; the specialist views both in the request before answering", { scenario: S }, async () => {
      const spec = /** @type {import("playwright-core").Page} */ (p.specialist);
      const doc = /** @type {import("playwright-core").Page} */ (p.doctor);
      const id = await doc.locator("#referral-panel li.referral-item", { hasText: reason }).getAttribute("data-referral-id");
      assert.ok(id, "the sent request has its id");
      const { auth } = await ctx.apiSignIn(ctx.http, ctx.doctor);
      // Three leads at 250 Hz, two seconds: a strip the viewer draws.
      const rows = Array.from({ length: 500 }, (_, i) => [Math.sin(i / 8), Math.sin(i / 8 + 1), Math.cos(i / 5) / 2].map((v) => v.toFixed(3)).join(","));
      const ecg = Buffer.from(`# sample_rate_hz=250\nI,II,V1\n${rows.join("\n")}\n`);
      for (const [name, body] of /** @type {const} */ ([["ecg-12lead.csv", ecg], ["chest-ct.dcm", ctx.ctSlice(64, 64)]])) {
        const r = await ctx.http.post(`/api/v1/referrals/${id}/documents?name=${encodeURIComponent(name)}`, { headers: auth, data: body });
        assert.equal(r.status(), 201, await r.text());
      }
      await spec.locator("#referral-panel li.referral-item", { hasText: reason }).getByRole("button", { name: /Open request/ }).click();
      await spec.locator('#referral-dialog[data-state="requested"]').waitFor({ timeout });
      const viewer = spec.locator("#attachment-viewer[open] .viewer");
      /** @param {string} name */
      const view = async (name) => {
        await spec.locator("#referral-documents li.referral-document", { hasText: name }).locator("button.attachment-view").click();
        await viewer.waitFor({ timeout });
      };
      // The ECG: every lead drawn, its rate said.
      await view("ecg-12lead.csv");
      const strip = viewer.locator("svg.ecg-strip");
      await strip.waitFor({ timeout });
      assert.equal(await strip.locator(".ecg-trace").count(), 3, "three leads");
      assert.match((await viewer.locator(".viewer-status").textContent()) ?? "", /250/);
      await snap(spec, "referral-attachment-ecg");
      await spec.keyboard.press("Escape");
      await viewer.waitFor({ state: "detached", timeout });
      // The CT slice: rendered by the server, with its header's modality.
      await view("chest-ct.dcm");
      await spec.locator('#attachment-viewer[open] .viewer[data-dicom-modality="CT"][data-loaded-page="1"]').waitFor({ timeout });
      const width = await viewer.locator("img.viewer-img").evaluate((img) => /** @type {HTMLImageElement} */ (img).naturalWidth);
      assert.equal(width, 64);
      await snap(spec, "referral-attachment-dicom");
      await spec.keyboard.press("Escape");
      await viewer.waitFor({ state: "detached", timeout });
      // The dialog stays, for the answer below.
      assert.equal(await spec.locator('#referral-dialog[data-state="requested"]').isVisible(), true);
    });

    await check("referrals: the doctor records the patient's withdrawal; the specialist's request withholds the documents, named nowhere; consent recorded again", { scenario: S }, async () => {
      const spec = /** @type {import("playwright-core").Page} */ (p.specialist);
      const doc = /** @type {import("playwright-core").Page} */ (p.doctor);
      await doc.locator("#referral-panel li.referral-item", { hasText: reason }).getByRole("button", { name: /查看申请/ }).click();
      const state = doc.locator('#referral-dialog[open] #referral-consent-state[data-in-force="true"]');
      await state.waitFor({ timeout });
      assert.match((await state.textContent()) ?? "", /患者已同意向对方医院分享资料/);
      await state.getByRole("button", { name: "患者撤回同意" }).click();
      await doc.locator('#referral-consent-state[data-in-force="false"]', { hasText: "患者已撤回同意" }).waitFor({ timeout });
      // The doctor still has the documents.
      assert.equal(await doc.locator("#referral-documents li.referral-document").count(), 2);
      await snap(doc, "referral-consent-withdrawn-doctor");
      await ctx.assertTextFromCatalogue(doc, "the doctor's request after a withdrawal (zh-CN)");
      // The specialist's console is told at once, in words that say what changed.
      await spec.locator("#referral-notice", { hasText: "the patient withdrew their consent to sharing its documents" }).waitFor({ timeout });
      // The specialist, reading the request again: a count, no names, no documents.
      await spec.keyboard.press("Escape");
      await spec.locator("#referral-dialog[open]").waitFor({ state: "hidden", timeout });
      await spec.locator("#referral-panel li.referral-item", { hasText: reason }).getByRole("button", { name: /Open request/ }).click();
      const withheld = spec.locator('#referral-dialog[open] #referral-consent-state[data-in-force="false"][data-withheld="2"]');
      await withheld.waitFor({ timeout });
      assert.match((await withheld.textContent()) ?? "", /The patient has not agreed to share documents with this hospital \(2 documents withheld\)/);
      assert.equal(await spec.locator("#referral-documents li.referral-document").count(), 0);
      await spec.locator("#referral-documents li.empty", { hasText: "2 documents attached, not shown" }).waitFor({ timeout });
      const shown = (await spec.locator("#referral-dialog").textContent()) ?? "";
      assert.ok(!shown.includes("ecg-12lead") && !shown.includes("chest-ct"), "no document named");
      await snap(spec, "referral-consent-withheld-specialist");
      await ctx.assertTextFromCatalogue(spec, "the specialist's request with documents withheld (en)");
      // The patient agrees again: recorded by the doctor, in the words shown.
      const again = doc.locator("#referral-consent-state");
      await again.getByRole("button", { name: "记录患者同意" }).click();
      await again.locator('[role="status"]', { hasText: "请勾选" }).waitFor({ timeout });
      await again.getByLabel("患者已同意以上内容").check();
      await again.getByRole("button", { name: "记录患者同意" }).click();
      await doc.locator('#referral-consent-state[data-in-force="true"]').waitFor({ timeout });
      await doc.getByRole("button", { name: "返回列表" }).click();
      await spec.locator("#referral-notice", { hasText: "the patient's consent to sharing its documents was recorded" }).waitFor({ timeout });
      // The specialist's view shows them again.
      await spec.keyboard.press("Escape");
      await spec.locator("#referral-dialog[open]").waitFor({ state: "hidden", timeout });
      await spec.locator("#referral-panel li.referral-item", { hasText: reason }).getByRole("button", { name: /Open request/ }).click();
      await spec.locator('#referral-dialog[open] #referral-consent-state[data-in-force="true"]').waitFor({ timeout });
      assert.equal(await spec.locator("#referral-documents li.referral-document").count(), 2);
    });

    await check("referrals: the specialist opens it; a time in the past is refused with the server's code", { scenario: S }, async () => {
      const spec = /** @type {import("playwright-core").Page} */ (p.specialist);
      // Open already when the attachments were viewed just before.
      if (!(await spec.locator("#referral-dialog[open]").count())) {
        await spec.locator("#referral-panel li.referral-item", { hasText: reason }).getByRole("button", { name: /Open request/ }).click();
      }
      const dialog = spec.getByRole("dialog", { name: /Consultation request: Exertional chest pain/ });
      await dialog.waitFor({ timeout });
      assert.equal(await dialog.getAttribute("data-state"), "requested");
      // Opened: no longer counted as new.
      await spec.locator("#referral-tab-department .tab-badge").waitFor({ state: "hidden", timeout });
      await dialog.locator(".step-time").getByLabel("Date and time").fill(`${yesterday}T10:00`);
      await dialog.getByRole("button", { name: "Propose this time" }).click();
      const error = spec.locator('#referral-step-error[data-error-code="slot_in_past"]');
      await error.waitFor({ timeout });
      assert.match((await error.textContent()) ?? "", /The time is in the past.*slot_in_past/);
      await ctx.assertTextFromCatalogue(spec, "the specialist's request dialog (en)");
      assert.equal(await dialog.getAttribute("data-state"), "requested", "nothing changed");
      await snap(spec, "referral-refused-specialist");
    });

    await check("referrals: the specialist accepts the proposed time; the doctor's console shows it scheduled live", { scenario: S }, async () => {
      const spec = /** @type {import("playwright-core").Page} */ (p.specialist);
      const doc = /** @type {import("playwright-core").Page} */ (p.doctor);
      const dialog = spec.locator("#referral-dialog");
      // The proposed time in the page's language (English: "Accept <date>, 10:00 AM (30 min)").
      await dialog.getByRole("button", { name: /^Accept .*10:00\sAM \(30 min\)$/ }).click();
      await spec.locator('#referral-dialog[data-state="scheduled"]').waitFor({ timeout });
      assert.equal(await spec.locator("#referral-step-error").isVisible(), false);
      assert.equal(await dialog.getByRole("button", { name: "Enter consultation" }).count(), 1, "the request links to its room");
      await snap(spec, "referral-scheduled-specialist");
      await dialog.getByRole("button", { name: "Back to the list" }).click();
      // The doctor did nothing: the notification brings the change, in Chinese.
      const sent = doc.locator("#referral-panel li.referral-item", { hasText: reason });
      await doc.locator(`#referral-panel li.referral-item[data-state="scheduled"]`, { hasText: reason }).waitFor({ timeout });
      await doc.locator("#referral-notice", { hasText: "状态更新：已预约" }).waitFor({ timeout });
      const [y, m, d] = tomorrow.split("-").map(Number);
      assert.match((await sent.textContent()) ?? "", new RegExp(`时间 ${y}年${m}月${d}日 10:00（30 分钟）`));
      await snap(doc, "referral-scheduled-doctor");
    });

    await check("referrals: the consultation is in the doctor's day view for that day, at its time", { scenario: S }, async () => {
      const doc = /** @type {import("playwright-core").Page} */ (p.doctor);
      await doc.locator("#day-view-date").fill(tomorrow);
      const entry = doc.locator("#day-view li.day-item", { hasText: reason });
      await entry.waitFor({ timeout });
      assert.equal(await entry.locator(".day-time").textContent(), "10:00–10:30");
      assert.equal(await entry.getByRole("button", { name: "进入会诊" }).count(), 1);
      // Tomorrow's consultation has not started: nobody is late yet.
      assert.equal(await entry.locator(".late-item").count(), 0);
      await ctx.assertTextFromCatalogue(doc, "the doctor's day view (zh-CN)");
      // Today has none of it.
      await doc.getByRole("button", { name: "今天" }).click();
      await entry.waitFor({ state: "detached", timeout });
      await doc.setViewportSize({ width: 390, height: 844 });
      await doc.locator("#day-view-date").fill(tomorrow);
      await entry.waitFor({ timeout });
      await snap(doc, "referral-day-view-phone");
    });

    await check("live: the specialist's console cannot reach the stream, retries, and reloads what changed meanwhile", { scenario: S }, async () => {
      const spec = /** @type {import("playwright-core").Page} */ (p.specialist);
      const doc = /** @type {import("playwright-core").Page} */ (p.doctor);
      // The network between the specialist's console and the stream breaks: every attempt fails
      // until `cut` is lifted (the console reloaded to start from a broken stream).
      let cut = true;
      await spec.context().route("**/api/v1/events", (route) => (cut ? route.abort("connectionreset") : route.continue()));
      await spec.reload({ waitUntil: "load" });
      await spec.locator('#referrals[data-live="disconnected"]').waitFor({ state: "attached", timeout });
      // Taken on by the specialist: in their own inbox now.
      await spec.locator('#referral-tab-inbox[aria-selected="true"]').waitFor({ timeout });
      await spec.locator('#referral-panel li.referral-item[data-state="scheduled"]', { hasText: reason }).waitFor({ timeout });
      // Meanwhile the doctor proposes another time: no notification can reach the specialist.
      await doc.locator("#referral-panel li.referral-item", { hasText: reason }).getByRole("button", { name: /查看申请/ }).click();
      const dialog = doc.locator("#referral-dialog");
      await dialog.locator(".step-time").getByLabel("日期和时间").fill(`${tomorrow}T11:00`);
      await dialog.getByRole("button", { name: "提议此时间" }).click();
      await doc.locator('#referral-dialog[data-state="counter_proposed"]').waitFor({ timeout });
      await ctx.assertTextFromCatalogue(doc, "the doctor's request dialog (zh-CN)");
      await dialog.getByRole("button", { name: "返回列表" }).click();
      cut = false;
      await spec.locator('#referrals[data-live="connected"]').waitFor({ state: "attached", timeout: 2 * timeout });
      // Back: the lists were read again.
      await spec.locator('#referral-panel li.referral-item[data-state="counter_proposed"]', { hasText: reason }).waitFor({ timeout });
    });

    await check("live: a patient in a consultation's waiting room shows on its entry in the doctor's console", { scenario: S }, async () => {
      const doc = /** @type {import("playwright-core").Page} */ (p.doctor);
      await doc.setViewportSize({ width: 1100, height: 900 });
      const title = `Waiting count ${Date.now()}`;
      await doc.getByLabel("标题", { exact: true }).fill(title);
      await doc.getByRole("button", { name: "创建会诊" }).click();
      const card = doc.locator("li.room-card", { hasText: title });
      await card.waitFor({ timeout });
      await card.getByRole("button", { name: `患者链接：为${title}新建邀请` }).click();
      const url = await card.locator(".invites input").first().inputValue({ timeout });
      const patient = await openJoinPage(browser, "ref-patient", url, "Li Lei", { viewport: { width: 390, height: 844 } });
      const count = card.locator(".waiting-count");
      await count.waitFor({ timeout });
      assert.match((await count.textContent()) ?? "", /候诊 1 人/);
      await snap(doc, "live-waiting-doctor");
      await ctx.assertTextFromCatalogue(doc, "the doctor's rooms list with a waiting count (zh-CN)");
      // They leave: the count goes.
      pages.delete("ref-patient");
      await patient.context().close();
      await count.waitFor({ state: "detached", timeout });
    });

    await check("referrals: signing out closes the views and the notifications", { scenario: S }, async () => {
      const doc = /** @type {import("playwright-core").Page} */ (p.doctor);
      await doc.getByRole("button", { name: "退出登录" }).click();
      await doc.waitForSelector('body[data-state="signed-out"]', { timeout });
      assert.equal(await doc.locator("#referrals").isVisible(), false);
      assert.equal(await doc.locator("#referrals").getAttribute("data-live"), "disconnected");
      assert.equal(await doc.locator("#day-view li.day-item").count(), 0);
    });
  } finally {
    for (const who of ["ref-doctor", "ref-specialist", "ref-patient"]) {
      const page = pages.get(who);
      pages.delete(who);
      await page?.context().close().catch(() => undefined);
    }
  }
}
