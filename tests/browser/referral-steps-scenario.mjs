// Browser scenario: the referral steps that end or move a request, taken from the consoles
// (web-client/js/referral-view.js), each seen live by the other side. Called from
// consultation.test.mjs after the referral scenario.
//
// A second cardiologist of the county hospital (李娜) is added by the network's administrator
// through the API. Request 1, sent by the township doctor to the cardiology department: the
// specialist forwards it to 李娜 from the console; it arrives live in 李娜's inbox (her console
// in Chinese); she declines it with a reason; the doctor's console shows it declined, live, with
// the reason. Request 2: accepted and started through the API; the specialist enters the
// consultation through their seat and signs a diagnosis report; the doctor's console shows
// "report issued" live and closes the request; the specialist's console shows it closed.
// Request 3: accepted and started, then its consultation ended by the doctor with no report
// (the patient never came); the specialist closes it from the console with a reason, and the
// doctor's console shows it closed, live, with the reason. Request 4: scheduled, and its patient
// waits on a phone (zh-CN) when the doctor cancels it from the console: the patient's page says
// the clinic called it off and will get in touch, with no outcome to see. Request 5: sent with
// the patient's consent and a document, scheduled; the specialist reads it in the consultation
// (English) when the doctor records from the console (zh-CN) that the patient withdrew: the
// specialist's room drops it at once, says why, and names it nowhere; recorded again, it comes
// back. Request 6: named to 李娜, who is not taking requests: the specialist, covering for her
// from the department's box, may only forward it, and takes it on by forwarding it to
// themself.

import assert from "node:assert/strict";

/**
 * @typedef {object} Harness
 * @property {(name: string, opts: {scenario?: true | string}, fn: () => Promise<void>) => Promise<void>} check
 * @property {(page: import("playwright-core").Page, name: string) => Promise<void>} snap
 * @property {import("playwright-core").Browser} browser
 * @property {(browser: import("playwright-core").Browser, who: string, username: string, opts?: {locale?: string}) => Promise<import("playwright-core").Page>} openConsole
 * @property {(browser: import("playwright-core").Browser, who: string, url: string, name: string | null, opts?: {viewport?: {width: number, height: number}, locale?: string}) => Promise<import("playwright-core").Page>} openJoinPage
 * @property {(http: import("playwright-core").APIRequestContext, username: string) => Promise<{auth: Record<string, string>, me: any}>} apiSignIn
 * @property {(http: import("playwright-core").APIRequestContext, auth: Record<string, string>, roomId: string) => Promise<string>} enterToken
 * @property {Map<string, import("playwright-core").Page>} pages
 * @property {import("playwright-core").APIRequestContext} http
 * @property {string} base
 * @property {string} password the run's password of every account
 * @property {string} doctor
 * @property {string} specialist
 * @property {number} timeout
 * @property {(page: import("playwright-core").Page, what: string) => Promise<void>} assertTextFromCatalogue
 */

const S = "referral-steps";
const COUNTY = "县人民医院";
const CARDIOLOGY = "心血管内科";
const COLLEAGUE = { username: "li.na", name: "李娜", title: "主治医师" };

/**
 * @param {import("playwright-core").APIResponse} res
 * @param {number} status
 * @param {string} what
 */
async function expectStatus(res, status, what) {
  assert.equal(res.status(), status, `${what}: ${res.status()} ${await res.text()}`);
  return res.json();
}

/** @param {Harness} h */
export async function referralStepsScenario(h) {
  const admin = process.env.HUIZHEN_ADMIN ?? "";
  if (!admin) {
    await h.check("referral steps: (no HUIZHEN_ADMIN: skipped)", {}, async () => {});
    return;
  }
  const { check, http, timeout } = h;
  const stamp = Date.now();
  const reason1 = `Palpitations at night ${stamp}`;
  const reason2 = `Murmur on auscultation ${stamp}`;
  const declined = "Holter monitoring first, then ask again";
  const reason3 = `Chest tightness ${stamp}`;
  const noShow = "The patient did not come; please book again";
  const reason4 = `Shortness of breath ${stamp}`;
  const calledOff = "患者已住院，会诊取消";
  const reason5 = `Syncope on standing ${stamp}`;
  const reason6 = `Ankle swelling ${stamp}`;
  /** @type {Record<string, import("playwright-core").Page>} */
  const p = {};
  /** @type {{doctor?: Record<string, string>, specialist?: Record<string, string>, cardiology?: string, colleague?: string, r1?: string, r2?: string, room?: string}} */
  const a = {};

  /**
   * A request from the township doctor to the cardiology department.
   * @param {string} reason
   */
  const request = async (reason) => {
    const res = await http.post("/api/v1/referrals", {
      headers: a.doctor,
      data: { target_department_id: a.cardiology, patient_ref: `P-STEPS-${stamp}`, reason, question: "Next step?", urgency: "routine" },
    });
    return /** @type {{id: string}} */ (await expectStatus(res, 201, "create a request")).id;
  };
  /**
   * @param {Record<string, string> | undefined} auth
   * @param {string | undefined} id
   * @param {string} action
   * @param {unknown} [data]
   */
  const step = async (auth, id, action, data) =>
    expectStatus(await http.post(`/api/v1/referrals/${id}/${action}`, { headers: auth, ...(data === undefined ? {} : { data }) }), 200, action);

  try {
    await check("referral steps: a second cardiologist; the consoles of the doctor (zh-CN), the specialist and 李娜 (zh-CN) open", { scenario: S }, async () => {
      const adminAuth = (await h.apiSignIn(http, admin)).auth;
      a.doctor = (await h.apiSignIn(http, h.doctor)).auth;
      a.specialist = (await h.apiSignIn(http, h.specialist)).auth;
      const institutions = /** @type {{institutions: {id: string, name: string, departments: {id: string, name: string}[]}[]}} */ (
        await expectStatus(await http.get("/api/v1/institutions", { headers: adminAuth }), 200, "institutions")
      ).institutions;
      const county = institutions.find((i) => i.name === COUNTY);
      a.cardiology = county?.departments.find((d) => d.name === CARDIOLOGY)?.id;
      assert.ok(county && a.cardiology, "the county hospital's cardiology");
      const created = await http.post("/api/v1/accounts", {
        headers: adminAuth,
        data: {
          username: COLLEAGUE.username,
          display_name: COLLEAGUE.name,
          role: "specialist",
          password: h.password,
          institution_id: county.id,
          department_id: a.cardiology,
          title: COLLEAGUE.title,
          specialty: "Cardiology",
        },
      });
      a.colleague = /** @type {{id: string}} */ (await expectStatus(created, 201, "create 李娜")).id;
      p.doctor = await h.openConsole(h.browser, "steps-doctor", h.doctor, { locale: "zh-CN" });
      p.specialist = await h.openConsole(h.browser, "steps-specialist", h.specialist);
      p.colleague = await h.openConsole(h.browser, "steps-colleague", COLLEAGUE.username, { locale: "zh-CN" });
      for (const page of Object.values(p)) await page.locator('#referrals[data-live="connected"]').waitFor({ state: "attached", timeout });
    });

    await check("referral steps: the specialist forwards a request to 李娜, who sees it arrive live", { scenario: S }, async () => {
      a.r1 = await request(reason1);
      const spec = p.specialist;
      await spec.locator("#referral-tab-department").click();
      const item = spec.locator("#referral-panel li.referral-item", { hasText: reason1 });
      await item.waitFor({ timeout });
      await item.getByRole("button", { name: /Open request/ }).click();
      const dialog = spec.locator("#referral-dialog");
      await spec.locator('#referral-dialog[data-state="requested"]').waitFor({ timeout });
      await dialog.locator("summary", { hasText: "Forward to a colleague" }).click();
      const to = dialog.getByLabel("Forward to");
      // The department's other clinicians, by name and title (the specialist is not offered).
      await to.locator(`option[value="${a.colleague}"]`).waitFor({ state: "attached", timeout });
      assert.equal(await to.locator(`option[value="${a.colleague}"]`).textContent(), `${COLLEAGUE.name} · ${COLLEAGUE.title}`);
      await to.selectOption(String(a.colleague));
      await dialog.getByRole("button", { name: "Forward", exact: true }).click();
      await dialog.waitFor({ state: "hidden", timeout });
      await spec.locator("#referral-notice", { hasText: "Forwarded" }).waitFor({ timeout });

      const col = p.colleague;
      await col.locator("#referral-notice", { hasText: "收到新的会诊申请" }).waitFor({ timeout });
      await col.locator("#referral-tab-inbox .tab-badge", { hasText: "1" }).waitFor({ timeout });
      await col.locator("#referral-tab-inbox").click();
      await col.locator('#referral-panel li.referral-item[data-state="requested"]', { hasText: reason1 }).waitFor({ timeout });
      await h.snap(col, "referral-forwarded-colleague");
      await h.assertTextFromCatalogue(col, "a forwarded request in 李娜's inbox (zh-CN)");
    });

    await check("referral steps: 李娜 declines it with a reason; the doctor's console shows it declined, live, with the reason", { scenario: S }, async () => {
      const col = p.colleague;
      await col.locator("#referral-panel li.referral-item", { hasText: reason1 }).getByRole("button", { name: /查看申请/ }).click();
      const dialog = col.locator("#referral-dialog");
      await col.locator('#referral-dialog[data-state="requested"]').waitFor({ timeout });
      await dialog.locator("summary", { hasText: "拒绝" }).click();
      await dialog.getByLabel("原因（对方可见）").fill(declined);
      await dialog.getByRole("button", { name: "拒绝", exact: true }).click();
      await col.locator('#referral-dialog[data-state="declined"]').waitFor({ timeout });
      await h.snap(col, "referral-declined-colleague");

      const doc = p.doctor;
      await doc.locator("#referral-tab-outbox").click();
      const sent = doc.locator('#referral-panel li.referral-item[data-state="declined"]', { hasText: reason1 });
      await sent.waitFor({ timeout });
      await sent.getByRole("button", { name: /查看申请/ }).click();
      const shown = doc.locator('#referral-dialog[data-state="declined"]');
      await shown.waitFor({ timeout });
      assert.match((await shown.textContent()) ?? "", new RegExp(declined));
      // Nothing more to do with a declined request: no step is offered.
      assert.equal(await shown.locator(".actions button", { hasText: /接受|关闭|转交/ }).count(), 0);
      await h.assertTextFromCatalogue(doc, "a declined request in the doctor's dialog (zh-CN)");
      await shown.getByRole("button", { name: "返回列表" }).click();
    });

    await check("referral steps: after the specialist's signed report the doctor closes the request; the specialist's console shows it closed", { scenario: S }, async () => {
      a.r2 = await request(reason2);
      const start = Math.floor(Date.now() / 1000) + 3600;
      await step(a.specialist, a.r2, "accept", { start, minutes: 30 });
      const started = /** @type {{room_id: string}} */ (await step(a.doctor, a.r2, "start"));
      assert.equal(typeof started.room_id, "string");
      // The specialist signs a diagnosis report in the consultation, entered through their seat.
      const token = await h.enterToken(http, /** @type {Record<string, string>} */ (a.specialist), started.room_id);
      const room = await h.openJoinPage(h.browser, "steps-room", `${h.base}/join#${token}`, null);
      await room.locator('.tab[data-tab="records-panel"]').click();
      await room.locator(".record-forms summary", { hasText: "Diagnosis report" }).click();
      await room.locator('.report-form textarea[name="findings"]').fill("Grade 2/6 systolic murmur at the apex");
      await room.locator('.report-form textarea[name="impression"]').fill("Mild mitral regurgitation");
      await room.locator('.report-form textarea[name="recommendation"]').fill("Echocardiography in 6 months");
      await room.locator(".report-form button[type=submit]").click();
      const sign = room.getByRole("dialog", { name: "Sign and issue the diagnosis report" });
      await sign.getByLabel("Your password").fill(h.password);
      await sign.getByRole("button", { name: "Sign and issue" }).click();
      await room.locator(".record-status", { hasText: "Diagnosis report signed and issued." }).waitFor({ timeout });

      const doc = p.doctor;
      const sent = doc.locator('#referral-panel li.referral-item[data-state="report_issued"]', { hasText: reason2 });
      await sent.waitFor({ timeout });
      await sent.getByRole("button", { name: /查看申请/ }).click();
      const dialog = doc.locator('#referral-dialog[data-state="report_issued"]');
      await dialog.waitFor({ timeout });
      await dialog.getByRole("button", { name: "结案" }).click();
      await doc.locator('#referral-dialog[data-state="closed"]').waitFor({ timeout });
      await h.snap(doc, "referral-closed-doctor");

      const spec = p.specialist;
      await spec.locator("#referral-tab-inbox").click();
      await spec.locator('#referral-panel li.referral-item[data-state="closed"]', { hasText: reason2 }).waitFor({ timeout });
      await h.snap(spec, "referral-closed-specialist");
    });

    await check("referral steps: a consultation ended without a report; the specialist closes the request with a reason, and the doctor's console shows it closed, live, with the reason", { scenario: S }, async () => {
      const r3 = await request(reason3);
      await step(a.specialist, r3, "accept", { start: Math.floor(Date.now() / 1000) + 3600, minutes: 30 });
      const started = /** @type {{room_id: string}} */ (await step(a.doctor, r3, "start"));
      const ended = await http.post(`/api/v1/rooms/${started.room_id}/end`, { headers: a.doctor });
      assert.equal(ended.status(), 204, `end the room: ${ended.status()}`);

      const spec = p.specialist;
      await spec.locator("#referral-tab-inbox").click();
      const item = spec.locator('#referral-panel li.referral-item[data-state="in_consultation"]', { hasText: reason3 });
      await item.waitFor({ timeout });
      await item.getByRole("button", { name: /Open request/ }).click();
      const dialog = spec.locator('#referral-dialog[data-state="in_consultation"]');
      await dialog.waitFor({ timeout });
      await dialog.locator("summary", { hasText: "Close without a report" }).click();
      // Without a reason the server refuses, and the console says why.
      await dialog.getByRole("button", { name: "Close without a report", exact: true }).click();
      await spec.locator('#referral-step-error[data-error-code="reason_required"]').waitFor({ timeout });
      await dialog.getByLabel("Reason (the other side sees it)").fill(noShow);
      await dialog.getByRole("button", { name: "Close without a report", exact: true }).click();
      await spec.locator('#referral-dialog[data-state="closed"]').waitFor({ timeout });
      await h.snap(spec, "referral-closed-without-report-specialist");

      const doc = p.doctor;
      // The request closed in the step before is still open in the doctor's dialog.
      if (await doc.locator("#referral-dialog[open]").count()) await doc.locator("#referral-dialog").getByRole("button", { name: "返回列表" }).click();
      await doc.locator("#referral-tab-outbox").click();
      const sent = doc.locator('#referral-panel li.referral-item[data-state="closed"]', { hasText: reason3 });
      await sent.waitFor({ timeout });
      await sent.getByRole("button", { name: /查看申请/ }).click();
      const shown = doc.locator('#referral-dialog[data-state="closed"]');
      await shown.waitFor({ timeout });
      assert.match((await shown.textContent()) ?? "", new RegExp(noShow));
      await h.assertTextFromCatalogue(doc, "a request closed without a report in the doctor's dialog (zh-CN)");
      await h.snap(doc, "referral-closed-without-report-doctor");
      await shown.getByRole("button", { name: "返回列表" }).click();
    });

    await check("referral steps: the doctor cancels a scheduled consultation while its patient waits on a phone; the patient's page (zh-CN) says the clinic called it off", { scenario: S }, async () => {
      const r4 = await request(reason4);
      const scheduled = /** @type {{room_id: string}} */ (await step(a.specialist, r4, "accept", { start: Math.floor(Date.now() / 1000) + 120, minutes: 30 }));
      const invite = await http.post(`/api/v1/rooms/${scheduled.room_id}/invites`, { headers: a.doctor, data: { role: "patient" } });
      const link = /** @type {{token: string}} */ (await expectStatus(invite, 201, "invite the patient"));
      const patient = await h.openJoinPage(h.browser, "steps-patient", `${h.base}/join#${link.token}`, "王秀英", { viewport: { width: 360, height: 640 }, locale: "zh-CN" });
      await patient.locator('body[data-state="waiting"]').waitFor({ timeout });

      const doc = p.doctor;
      if (await doc.locator("#referral-dialog[open]").count()) await doc.locator("#referral-dialog").getByRole("button", { name: "返回列表" }).click();
      await doc.locator("#referral-tab-outbox").click();
      const sent = doc.locator('#referral-panel li.referral-item[data-state="scheduled"]', { hasText: reason4 });
      await sent.waitFor({ timeout });
      await sent.getByRole("button", { name: /查看申请/ }).click();
      const dialog = doc.locator('#referral-dialog[data-state="scheduled"]');
      await dialog.waitFor({ timeout });
      await dialog.locator("summary", { hasText: "撤销申请" }).click();
      await dialog.getByLabel("原因（对方可见）").fill(calledOff);
      await dialog.getByRole("button", { name: "撤销申请", exact: true }).click();
      await doc.locator('#referral-dialog[data-state="cancelled"]').waitFor({ timeout });

      // Told at once, in the patient's language, with nothing to follow: no outcome, no rejoin.
      await patient.locator('body[data-state="ended"]').waitFor({ timeout });
      assert.equal((await patient.locator("#status-title").textContent())?.trim(), "医院已取消本次会诊");
      assert.equal((await patient.locator("#status-text").textContent())?.trim(), "本次会诊不会在约定时间进行。医院将另行与您联系预约。");
      assert.equal(await patient.locator("#status-outcome").isVisible(), false, "nothing came of it to show");
      assert.equal(await patient.locator("#status-action").isVisible(), false, "no way back in");
      // The clinic's reason is for the clinicians: the patient's page does not show it.
      assert.equal(((await patient.locator("body").textContent()) ?? "").includes(calledOff), false);
      await h.assertTextFromCatalogue(patient, "a called-off consultation on the patient's phone (zh-CN)");
      await h.snap(patient, "referral-called-off-patient-phone");
      await doc.locator("#referral-dialog").getByRole("button", { name: "返回列表" }).click();
    });

    await check("referral steps: the doctor records the patient's withdrawal while the specialist reads the request's document in the consultation; the room drops it at once, named nowhere, and shows it again once consent is recorded", { scenario: S }, async () => {
      const wording = /** @type {{version: string}} */ (await expectStatus(await http.get("/api/v1/referrals/consent-wording", { headers: a.doctor }), 200, "the consent's words"));
      const made = await http.post("/api/v1/referrals", {
        headers: a.doctor,
        data: {
          target_department_id: a.cardiology,
          patient_ref: `P-STEPS-${stamp}`,
          reason: reason5,
          question: "Tilt test?",
          urgency: "routine",
          external_sharing_consent: { wording_version: wording.version },
        },
      });
      const r5 = /** @type {{id: string}} */ (await expectStatus(made, 201, "a request with consent")).id;
      const name = `holter-${stamp}.csv`;
      const rows = Array.from({ length: 250 }, (_, i) => [Math.sin(i / 6), Math.cos(i / 6)].map((v) => v.toFixed(3)).join(","));
      const ecg = Buffer.from(`# sample_rate_hz=250\nI,II\n${rows.join("\n")}\n`);
      await expectStatus(await http.post(`/api/v1/referrals/${r5}/documents?name=${encodeURIComponent(name)}`, { headers: a.doctor, data: ecg }), 201, "attach");
      const scheduled = /** @type {{room_id: string}} */ (await step(a.specialist, r5, "accept", { start: Math.floor(Date.now() / 1000) + 120, minutes: 30 }));
      const token = await h.enterToken(http, /** @type {Record<string, string>} */ (a.specialist), scheduled.room_id);
      const room = await h.openJoinPage(h.browser, "steps-room-consent", `${h.base}/join#${token}`, null);
      const item = room.locator("#documents-panel li.doc-item", { hasText: name });
      await room.locator('.tab[data-tab="documents-panel"]').click();
      await item.waitFor({ timeout });

      // The doctor records the withdrawal in their console.
      const doc = p.doctor;
      if (await doc.locator("#referral-dialog[open]").count()) await doc.locator("#referral-dialog").getByRole("button", { name: "返回列表" }).click();
      await doc.locator("#referral-tab-outbox").click();
      await doc.locator("#referral-panel li.referral-item", { hasText: reason5 }).getByRole("button", { name: /查看申请/ }).click();
      const state = doc.locator('#referral-dialog[open] #referral-consent-state[data-in-force="true"]');
      await state.waitFor({ timeout });
      await state.getByRole("button", { name: "患者撤回同意" }).click();
      await doc.locator('#referral-consent-state[data-in-force="false"]', { hasText: "患者已撤回同意" }).waitFor({ timeout });

      // The specialist's room: gone from the list, said why, named nowhere in the page.
      await item.waitFor({ state: "detached", timeout });
      await room.locator("#notice", { hasText: "does not agree to sharing it with your hospital" }).waitFor({ timeout });
      const counted = room.locator("#documents-panel li.doc-withheld");
      await counted.waitFor({ timeout });
      assert.match((await counted.textContent()) ?? "", /withheld from you: 1\. The patient has not agreed/);
      await h.snap(room, "referral-consent-withdrawn-room");
      await h.assertTextFromCatalogue(room, "the specialist's room after the patient withdrew consent (en)");
      assert.equal(((await room.locator("body").textContent()) ?? "").includes(name), false, "the document is named nowhere");
      // On a phone too: the line wraps within the screen, in the documents tab.
      await room.setViewportSize({ width: 390, height: 844 });
      await room.locator('.tab[data-tab="documents-panel"]').click();
      await counted.waitFor({ timeout });
      const box = await counted.boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `the withheld line within a phone's width: ${JSON.stringify(box)}`);
      const overflow = await room.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(overflow <= 390, `the page scrolls sideways on a phone (${overflow} px wide)`);
      await h.snap(room, "referral-consent-withdrawn-room-phone");
      await room.setViewportSize({ width: 1280, height: 800 });

      // Recorded again: it comes back.
      const again = doc.locator("#referral-consent-state");
      await again.getByRole("button", { name: "记录患者同意" }).click();
      await again.getByLabel("患者已同意以上内容").check();
      await again.getByRole("button", { name: "记录患者同意" }).click();
      await doc.locator('#referral-consent-state[data-in-force="true"]').waitFor({ timeout });
      await item.waitFor({ timeout });
      await counted.waitFor({ state: "detached", timeout });
      await doc.locator("#referral-dialog").getByRole("button", { name: "返回列表" }).click();
    });

    await check("referral steps: a request named to 李娜, who is not taking requests, waits in the department's box; the specialist covering for her is offered only a forward, and takes it on by forwarding it to themself", { scenario: S }, async () => {
      const me = /** @type {{id: string}} */ ((await h.apiSignIn(http, h.specialist)).me);
      const res = await http.post("/api/v1/referrals", {
        headers: a.doctor,
        data: { target_department_id: a.cardiology, target_specialist_id: a.colleague, patient_ref: `P-STEPS-${stamp}`, reason: reason6, question: "Next step?", urgency: "routine" },
      });
      const id = /** @type {{id: string}} */ (await expectStatus(res, 201, "a request to 李娜")).id;
      const spec = p.specialist;
      // Back from the request the last check left open.
      const open = spec.locator("#referral-dialog[open]");
      if (await open.count()) await open.getByRole("button", { name: "Back to the list" }).click();
      await spec.locator("#referral-tab-department").click();
      const item = spec.locator("#referral-panel li.referral-item", { hasText: reason6 });
      await item.waitFor({ timeout });
      await item.getByRole("button", { name: /Open request/ }).click();
      const dialog = spec.locator('#referral-dialog[data-state="requested"]');
      await dialog.waitFor({ timeout });
      const hint = dialog.locator(".covering-hint");
      await hint.waitFor({ timeout });
      assert.match((await hint.textContent()) ?? "", new RegExp(`${COLLEAGUE.name}.*is not taking requests now`));
      // Nothing but the forward, open at once: no time to accept, nothing to decline.
      assert.equal(await dialog.locator(".referral-steps button", { hasText: /Accept|Decline|Propose/ }).count(), 0);
      const to = dialog.getByLabel("Forward to");
      await to.locator(`option[value="${me.id}"]`).waitFor({ state: "attached", timeout });
      assert.equal(await to.locator(`option[value="${a.colleague}"]`).count(), 0, "not back to the colleague who is away");
      await h.snap(spec, "referral-covering-specialist");
      await h.assertTextFromCatalogue(spec, "a request covered for an away colleague");
      await to.selectOption(me.id);
      await dialog.getByRole("button", { name: "Forward", exact: true }).click();
      await spec.locator("#referral-dialog").waitFor({ state: "hidden", timeout });
      await spec.locator("#referral-notice", { hasText: "Forwarded" }).waitFor({ timeout });
      // Theirs now: in their own inbox, answered as any request named to them.
      const taken = /** @type {any} */ (await expectStatus(await http.get(`/api/v1/referrals/${id}`, { headers: a.specialist }), 200, "the request"));
      assert.equal(taken.receiver?.id, me.id);
      assert.equal(taken.target?.specialist?.id, me.id);
      assert.notEqual(taken.covering, true);
      await spec.locator("#referral-tab-inbox").click();
      const mine = spec.locator('#referral-panel li.referral-item[data-state="requested"]', { hasText: reason6 });
      await mine.waitFor({ timeout });
      await mine.getByRole("button", { name: /Open request/ }).click();
      await dialog.waitFor({ timeout });
      assert.equal(await dialog.locator(".covering-hint").count(), 0);
      await dialog.locator(".referral-steps button", { hasText: /Decline/ }).first().waitFor({ state: "attached", timeout });
    });
  } finally {
    for (const who of ["steps-doctor", "steps-specialist", "steps-colleague", "steps-room", "steps-patient", "steps-room-consent"]) {
      const page = h.pages.get(who);
      h.pages.delete(who);
      await page?.context().close().catch(() => undefined);
    }
  }
}
