// The administrators' console (web-client/js/admin-view.js), as a scenario of the browser test
// (consultation.test.mjs calls it near the end, before the final check of page problems).
//
// The network's administrator signs in on a phone-width screen, adds a department to the county
// hospital, adds an institution and renames it (changing its kind), adds a department by mistake,
// renames and removes it (one with accounts is refused), is shown the server's error
// for a bad username, creates a specialist in the new department with a title and a specialty,
// and sees them in the accounts list; the new account signs in. The list is searched on the
// server and paged (More accounts). The county hospital's own administrator sees only their institution's accounts, is
// refused (and shown the refusal) when making an account for another institution, and ends the
// new colleague's sessions, while the colleague is in a consultation through their care-team
// seat: the room page says their sign-in ended and takes them out. The new colleague then changes the initial password from the console,
// in Chinese on a phone: a new password typed differently twice is said at once, a wrong current
// password is refused by the server and said so, and the change ends their other sessions.
// Before that, they set a signing PIN in the console (one too easy to guess is refused) and sign
// a report with it in a consultation, after a wrong try that says how many are left; the
// password change erases it. Last, the network's administrator disables the colleague's account
// (the sign-in page tells them why they cannot come in) and enables it again.
//
// Needs two more accounts with the run's password (scripts/test-browser.sh makes them):
//   HUIZHEN_ADMIN              an `admin` account's username
//   HUIZHEN_INSTITUTION_ADMIN  an `institution_admin` of the county hospital (县人民医院)
// Without HUIZHEN_ADMIN the scenario is skipped.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

const COUNTY = "县人民医院";
const DEPARTMENT = "肾内科";
const NEW_USER = { username: "zhang.wei", name: "张伟", title: "副主任医师", specialty: "Nephrology" };
/** The new specialist's signing PIN. */
const PIN = "482139";

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
 * @property {string} doctor the township doctor's username (puts the new colleague on a care team)
 * @property {number} timeout how long a wait may take
 * @property {(browser: import("playwright-core").Browser, who: string, url: string, name: string | null, opts?: {viewport?: {width: number, height: number}}) => Promise<import("playwright-core").Page>} openJoinPage
 *   a room page joined (name null: through a care-team seat)
 * @property {(page: import("playwright-core").Page, what: string) => Promise<void>} assertTextFromCatalogue
 */

/**
 * @param {Harness} harness
 */
export async function adminScenario(harness) {
  const t = {
    ...harness,
    admin: process.env.HUIZHEN_ADMIN ?? "",
    institutionAdmin: process.env.HUIZHEN_INSTITUTION_ADMIN ?? "",
  };
  const { check, http, password, timeout } = t;
  if (!t.admin) {
    await check("admin console: (no HUIZHEN_ADMIN: skipped)", {}, async () => {});
    return;
  }
  const scenario = "admin";
  const newPassword = randomBytes(12).toString("base64url");
  /** What the new colleague changes it to (the password check), and signs in with after. */
  const changedPassword = randomBytes(12).toString("base64url");
  /** @type {Map<string, import("playwright-core").Page>} */
  const own = new Map();

  /**
   * A console signed in as `username`, in a fresh context.
   * @param {string} who
   * @param {string} username
   * @param {{width: number, height: number}} viewport
   */
  const signIn = async (who, username, viewport) => {
    if (!t.browser) throw new Error("no browser");
    const context = await t.newContext(t.browser, viewport);
    const page = await context.newPage();
    t.watchPage(page, who);
    t.pages.set(who, page);
    own.set(who, page);
    await page.goto(`${t.base}/`, { waitUntil: "load", timeout });
    await page.getByLabel("Username").fill(username);
    await page.getByLabel("Password", { exact: true }).fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForSelector('body[data-state="signed-in"]', { timeout });
    await page.locator("#admin #admin-scope").waitFor({ timeout });
    return page;
  };

  /** @param {string} username */
  const apiLogin = async (username, pw = password) => {
    const res = await http.post("/api/v1/auth/login", { data: { username, password: pw } });
    assert.equal(res.status(), 200, `login of ${username}: status ${res.status()}`);
    return { Authorization: `Bearer ${(await res.json()).token}` };
  };

  try {
    /** @type {import("playwright-core").Page | null} */
    let page = null;

    await check("admin console: the network's administrator signs in on a phone and adds a department to the county hospital", { scenario }, async () => {
      page = await signIn("admin", t.admin, { width: 390, height: 844 });
      assert.match((await page.locator("#admin-scope").textContent()) ?? "", /whole network/);
      const county = page.locator("li.institution", { has: page.locator("h4", { hasText: COUNTY }) });
      await county.waitFor({ timeout });
      await county.getByLabel(`New department in ${COUNTY}`).fill(DEPARTMENT);
      await county.getByRole("button", { name: `Add department to ${COUNTY}` }).click();
      await page.locator("li.institution", { has: page.locator("h4", { hasText: COUNTY }) })
        .locator("li.department", { hasText: DEPARTMENT }).waitFor({ timeout });
      await page.locator("#admin-status", { hasText: `Department ${DEPARTMENT} added to ${COUNTY}.` }).waitFor({ timeout });
      // Usable on a phone: nothing wider than the screen.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone's screen`);
      await t.snap(page, "admin-department-added");
    });

    await check("admin console: the administrator adds an institution, then renames it and changes its kind", { scenario }, async () => {
      const p = page;
      if (!p) throw new Error("no page");
      const [before, after] = ["石桥镇卫生院", "石桥镇中心卫生院"];
      const item = (/** @type {string} */ name) => p.locator("li.institution", { has: p.locator("h4", { hasText: name }) });
      const add = p.locator("#admin-institution-form");
      await add.getByLabel("Name", { exact: true }).fill(before);
      await add.getByLabel("Kind", { exact: true }).selectOption("township_clinic");
      await add.getByRole("button", { name: "Add institution" }).click();
      await item(before).locator(".status", { hasText: "Township health centre" }).waitFor({ timeout });
      await p.getByRole("button", { name: `Rename ${before}` }).click();
      const form = item(before).locator("form.rename-form");
      await form.getByLabel("Name", { exact: true }).fill(after);
      await form.getByLabel("Kind", { exact: true }).selectOption("hospital");
      await form.getByRole("button", { name: "Save" }).click();
      await item(after).locator(".status", { hasText: "Hospital" }).waitFor({ timeout });
      await p.locator("#admin-status", { hasText: `${before} is now ${after}.` }).waitFor({ timeout });
      assert.equal(await p.locator("li.institution h4", { hasText: before }).count(), 0);
    });

    await check("admin console: a department added by mistake is renamed, then removed; one with accounts is refused", { scenario }, async () => {
      const p = page;
      if (!p) throw new Error("no page");
      const inst = "石桥镇中心卫生院";
      const item = () => p.locator("li.institution", { has: p.locator("h4", { hasText: inst }) });
      await item().getByLabel(`New department in ${inst}`).fill("临时");
      await item().getByRole("button", { name: `Add department to ${inst}` }).click();
      await item().locator("li.department", { hasText: "临时" }).waitFor({ timeout });
      await item().getByRole("button", { name: "Rename department 临时" }).click();
      const form = item().locator("li.department form.rename-form");
      await form.getByLabel("Name", { exact: true }).fill("临时科室");
      await form.getByRole("button", { name: "Save" }).click();
      await p.locator("#admin-status", { hasText: "Department 临时 renamed to 临时科室." }).waitFor({ timeout });
      await item().getByRole("button", { name: "Remove department 临时科室" }).click();
      const dialog = p.getByRole("dialog");
      await dialog.waitFor({ timeout });
      await dialog.getByRole("button", { name: "Remove" }).click();
      await p.locator("#admin-status", { hasText: "Department 临时科室 removed." }).waitFor({ timeout });
      // The status is said before the list is read again: wait for the list, not the words.
      await item().locator("li.department").first().waitFor({ state: "detached", timeout });
      assert.equal(await item().locator("li.department").count(), 0);
      // The county's cardiology has accounts: refused, and said so.
      const county = p.locator("li.institution", { has: p.locator("h4", { hasText: COUNTY }) });
      await county.getByRole("button", { name: "Remove department 心血管内科" }).click();
      await dialog.waitFor({ timeout });
      await dialog.getByRole("button", { name: "Remove" }).click();
      await county.locator(".form-error", { hasText: /./ }).first().waitFor({ timeout });
      await county.locator("li.department", { hasText: "心血管内科" }).waitFor({ timeout });
      await t.assertTextFromCatalogue(p, "the institutions with a department refused removal (en)");
    });

    await check("admin console: a bad username is refused with the server's error; the specialist is created and listed", { scenario }, async () => {
      if (!page) throw new Error("no page");
      const form = page.locator("#admin-account-form");
      await form.getByLabel("Username").fill("zhang wei");
      await form.getByLabel("Display name").fill(NEW_USER.name);
      await form.getByLabel("Role").selectOption("specialist");
      await form.getByLabel("Initial password").fill(newPassword);
      await form.getByLabel("Institution").selectOption({ label: COUNTY });
      await form.getByLabel("Department").selectOption({ label: DEPARTMENT });
      await form.getByLabel("Title").fill(NEW_USER.title);
      await form.getByLabel("Specialty").fill(NEW_USER.specialty);
      await form.getByRole("button", { name: "Create account" }).click();
      // The server's 400 invalid_request, named by its code and shown in the page's language.
      const error = page.locator('#admin-account-error[data-code="invalid_request"]');
      await error.waitFor({ timeout });
      const said = (await error.textContent()) ?? "";
      assert.match(said, /A username is 1 to 64 letters/);
      assert.equal(await form.getByLabel("Username").getAttribute("aria-invalid"), "true");
      await t.snap(page, "admin-bad-username");

      await form.getByLabel("Username").fill(NEW_USER.username);
      await form.getByRole("button", { name: "Create account" }).click();
      const row = page.locator(`#admin-accounts li.account-card[data-username="${NEW_USER.username}"]`);
      await row.waitFor({ timeout });
      assert.equal(await page.locator("#admin-account-error").isVisible(), false, "the error is gone");
      assert.equal(await row.getAttribute("data-role"), "specialist");
      const text = (await row.textContent()) ?? "";
      for (const part of [NEW_USER.name, NEW_USER.title, NEW_USER.specialty, COUNTY, DEPARTMENT, "Specialist"]) {
        assert.ok(text.includes(part), `the listed account shows ${part}: ${text}`);
      }
      await page.locator("#admin-status", { hasText: "Account created" }).waitFor({ timeout });
      await t.snap(page, "admin-account-created");
      await t.assertTextFromCatalogue(page, "the administration view (en)");
    });

    await check("admin console: the new specialist signs in with the initial password, in the new department", { scenario }, async () => {
      const auth = await apiLogin(NEW_USER.username, newPassword);
      const me = await (await http.get("/api/v1/me", { headers: auth })).json();
      assert.equal(me.role, "specialist");
      assert.equal(me.display_name, NEW_USER.name);
      assert.equal(me.title, NEW_USER.title);
      assert.equal(me.specialty, NEW_USER.specialty);
      assert.equal(me.institution.name, COUNTY);
      assert.equal(me.department?.name, DEPARTMENT);
    });

    await check("admin console: the administrator edits the new account's title; the list and the account show it", { scenario }, async () => {
      if (!page) throw new Error("no page");
      const row = page.locator(`#admin-accounts li.account-card[data-username="${NEW_USER.username}"]`);
      await row.getByRole("button", { name: `Edit ${NEW_USER.name}` }).click();
      const form = row.getByRole("form", { name: `Edit ${NEW_USER.name}` });
      await form.waitFor({ timeout });
      assert.equal(await form.getByLabel("Title").inputValue(), NEW_USER.title);
      await form.getByLabel("Title").fill("主任医师");
      await form.getByRole("button", { name: "Save" }).click();
      await page.locator("#admin-status", { hasText: "changes saved" }).waitFor({ timeout });
      const updated = page.locator(`#admin-accounts li.account-card[data-username="${NEW_USER.username}"]`);
      await updated.locator(".account-line", { hasText: "主任医师" }).waitFor({ timeout });
      const auth = await apiLogin(NEW_USER.username, newPassword);
      const me = await (await http.get("/api/v1/me", { headers: auth })).json();
      assert.equal(me.title, "主任医师");
      assert.equal(me.department?.name, DEPARTMENT, "the rest is kept");
      await t.snap(page, "admin-account-edited");
    });

    await check("admin console: the accounts list is searched on the server and comes a page at a time; More accounts adds pages until every account is shown", { scenario }, async () => {
      if (!page) throw new Error("no page");
      const p = page;
      const rows = p.locator("#admin-accounts li.account-card");
      const status = (/** @type {string} */ said) => p.locator("#admin-accounts-status", { hasText: new RegExp(`^${said.replace(/\./g, "\\.")}$`) });
      const search = p.getByLabel("Search by name or username");
      // Part of the name shown finds the new colleague alone.
      await search.fill(NEW_USER.name);
      await status("1 account.").waitFor({ timeout });
      assert.deepEqual(await rows.evaluateAll((r) => r.map((x) => (x instanceof HTMLElement ? x.dataset.username : ""))), [NEW_USER.username]);
      await t.snap(p, "admin-accounts-searched");
      await search.fill("");
      const all = /** @type {{total: number}} */ (await (await http.get("/api/v1/accounts", { headers: await apiLogin(t.admin) })).json()).total;
      await status(`${all} accounts.`).waitFor({ timeout });
      // Pages of 3 (the network here is smaller than the console's 100): each More adds the
      // next, until the last hides the button.
      const pages = (/** @type {URL} */ url) => url.pathname === "/api/v1/accounts";
      await p.route(pages, (route) => {
        const url = new URL(route.request().url());
        if (route.request().method() === "GET") url.searchParams.set("limit", "3");
        return route.continue({ url: url.toString() });
      });
      try {
        await p.locator("#admin-refresh").click();
        await status(`3 of ${all} accounts.`).waitFor({ timeout });
        const more = p.locator("#admin-accounts-more");
        for (let shown = 3; shown < all; shown = Math.min(shown + 3, all)) {
          assert.equal(await more.isVisible(), true, `More accounts is offered at ${shown} of ${all}`);
          await more.click();
          const next = Math.min(shown + 3, all);
          const said = next === all ? `${all} accounts.` : `${next} of ${all} accounts.`;
          await status(said).waitFor({ timeout });
        }
        await more.waitFor({ state: "hidden", timeout });
        const listed = await rows.evaluateAll((r) => r.map((x) => (x instanceof HTMLElement ? x.dataset.username : "")));
        assert.equal(new Set(listed).size, all, `every account once: ${listed}`);
      } finally {
        await p.unroute(pages);
      }
      await t.assertTextFromCatalogue(p, "the accounts list with its search (en)");
    });

    await check("admin console: the county hospital's administrator sees only its accounts, is refused another institution's, and ends a colleague's sessions", { scenario }, async () => {
      if (!t.institutionAdmin) {
        console.log("     (no HUIZHEN_INSTITUTION_ADMIN: skipped)");
        return;
      }
      const ia = await signIn("institution-admin", t.institutionAdmin, { width: 1100, height: 900 });
      assert.match((await ia.locator("#admin-scope").textContent()) ?? "", new RegExp(`You administer ${COUNTY}`));
      await ia.locator(`#admin-accounts li.account-card[data-username="${NEW_USER.username}"]`).waitFor({ timeout });
      const listed = await ia.locator("#admin-accounts li.account-card").evaluateAll((rows) =>
        rows.map((r) => (r instanceof HTMLElement ? r.dataset.username : "")),
      );
      const everyone = /** @type {{accounts: {username: string, institution: {name: string}}[]}} */ (
        await (await http.get("/api/v1/accounts", { headers: await apiLogin(t.admin) })).json()
      ).accounts;
      const county = everyone.filter((a) => a.institution.name === COUNTY).map((a) => a.username).sort();
      assert.ok(everyone.some((a) => a.institution.name !== COUNTY), "the network has accounts elsewhere");
      assert.deepEqual([...listed].sort(), county, "exactly the county hospital's accounts are listed");
      // Only its own institution, no consultations, no network-wide roles to give.
      assert.equal(await ia.locator("li.institution").count(), 1);
      assert.equal(await ia.locator("#rooms-title").isVisible(), false);
      const roles = await ia.locator("#admin-account-role option").evaluateAll((o) => o.map((x) => (x instanceof HTMLOptionElement ? x.value : "")));
      assert.ok(!roles.includes("admin") && !roles.includes("supervisor"), `roles offered: ${roles}`);

      // Asked for an account in another institution anyway (a tampered form): the server
      // refuses, and the refusal is shown.
      const institutions = /** @type {{institutions: {id: string, name: string}[]}} */ (
        await (await http.get("/api/v1/institutions", { headers: await apiLogin(t.institutionAdmin) })).json()
      ).institutions;
      const elsewhere = institutions.find((i) => i.name !== COUNTY);
      assert.ok(elsewhere, "another institution exists");
      const form = ia.locator("#admin-account-form");
      await form.getByLabel("Institution").evaluate((select, id) => {
        if (select instanceof HTMLSelectElement) {
          select.append(new Option("elsewhere", id));
          select.value = id;
        }
      }, elsewhere.id);
      await form.getByLabel("Username").fill("not.mine");
      await form.getByLabel("Display name").fill("Not Mine");
      await form.getByLabel("Initial password").fill(newPassword);
      await form.getByRole("button", { name: "Create account" }).click();
      const refusal = ia.locator('#admin-account-error[data-code="forbidden"]');
      await refusal.waitFor({ timeout });
      assert.match((await refusal.textContent()) ?? "", /only their own institution/);
      await t.snap(ia, "admin-institution-refused");

      // Ending the new colleague's sessions (a lost phone): their token stops working, and the
      // consultation they are in through their care-team seat, taken under that sign-in, takes
      // them out at once.
      const theirs = await apiLogin(NEW_USER.username, newPassword);
      const doctor = await apiLogin(t.doctor);
      const made = await http.post("/api/v1/rooms", { headers: doctor, data: { title: "Nephrology follow-up", patient_ref: "MRN-ADMIN-1" } });
      assert.equal(made.status(), 201, "a consultation");
      const roomId = /** @type {{id: string}} */ (await made.json()).id;
      const me = /** @type {{id: string}} */ (await (await http.get("/api/v1/me", { headers: theirs })).json());
      const added = await http.post(`/api/v1/rooms/${roomId}/care-team`, { headers: doctor, data: { user_id: me.id } });
      assert.equal(added.status(), 201, "the colleague is on its care team");
      const seat = /** @type {{token: string}} */ (await (await http.post(`/api/v1/rooms/${roomId}/enter`, { headers: theirs })).json());
      const room = await t.openJoinPage(/** @type {import("playwright-core").Browser} */ (t.browser), "admin-colleague-room", `${t.base}/join#${seat.token}`, null);
      own.set("admin-colleague-room", room);
      await room.waitForFunction(() => document.body.dataset.state === "in-room", undefined, { timeout });
      await ia.getByRole("button", { name: `End all sessions of ${NEW_USER.name}` }).click();
      const dialog = ia.getByRole("dialog");
      await dialog.waitFor({ timeout });
      await dialog.getByRole("button", { name: "End all sessions" }).click();
      await ia.locator("#admin-status", { hasText: `of ${NEW_USER.name} ended` }).waitFor({ timeout });
      assert.equal((await http.get("/api/v1/me", { headers: theirs })).status(), 401, "their session has ended");
      await room.locator('#status-panel[data-error-code="session_ended"]').waitFor({ timeout });
      assert.match((await room.locator("#status-title").textContent()) ?? "", /Your sign-in has ended/);
      assert.match((await room.locator("#status-text").textContent()) ?? "", /Your sign-in ended .* Sign in to the console again/);
      await t.snap(room, "admin-colleague-seat-ended");
      await t.assertTextFromCatalogue(room, "a room page whose seat's sign-in ended (en)");
    });

    await check("admin console: the new specialist sets a signing PIN in the console (zh-CN, phone) and signs a report with it in a consultation; a PIN too easy to guess and a wrong PIN are said", { scenario }, async () => {
      if (!t.browser) throw new Error("no browser");
      const context = await t.newContext(t.browser, { width: 390, height: 844 }, "zh-CN");
      const page = await context.newPage();
      t.watchPage(page, "pin");
      t.pages.set("pin", page);
      own.set("pin", page);
      await page.goto(`${t.base}/`, { waitUntil: "load", timeout });
      await page.getByLabel("用户名").fill(NEW_USER.username);
      await page.getByLabel("密码", { exact: true }).fill(newPassword);
      await page.getByRole("button", { name: "登录" }).click();
      await page.waitForSelector('body[data-state="signed-in"]', { timeout });
      await page.getByRole("button", { name: "签名 PIN 码" }).click();
      const dialog = page.getByRole("dialog", { name: "签名 PIN 码" });
      await dialog.waitFor({ timeout });
      await page.locator('#pin-state[data-set="false"]', { hasText: "未设置签名 PIN 码" }).waitFor({ timeout });
      const submit = () => dialog.getByRole("button", { name: "设置 PIN 码" }).click();
      // Digits in a row: the server refuses it, the dialog says why.
      await dialog.getByLabel("您的密码").fill(newPassword);
      await dialog.getByLabel("新 PIN 码", { exact: true }).fill("123456");
      await dialog.getByLabel("再次输入新 PIN 码").fill("123456");
      await submit();
      await page.locator('#pin-error[data-code="weak_pin"]', { hasText: "太容易被猜到" }).waitFor({ timeout });
      await t.assertTextFromCatalogue(page, "the PIN dialog with the server's refusal (zh-CN)");
      await t.snap(page, "console-pin-weak-zh");
      await dialog.getByLabel("新 PIN 码", { exact: true }).fill(PIN);
      await dialog.getByLabel("再次输入新 PIN 码").fill(PIN);
      await submit();
      await page.locator('#account-notice[data-pin="set"]', { hasText: "签名 PIN 码已设置" }).waitFor({ timeout });
      assert.equal(await dialog.isVisible(), false);
      assert.equal(await page.locator("#pin-new").inputValue(), "", "nothing typed is kept");
      const theirs = await apiLogin(NEW_USER.username, newPassword);
      const me = /** @type {{id: string, signing_pin: boolean}} */ (await (await http.get("/api/v1/me", { headers: theirs })).json());
      assert.equal(me.signing_pin, true, "the server has it");

      // In a consultation: the report is signed with the PIN, after one wrong try.
      const doctor = await apiLogin(t.doctor);
      const made = await http.post("/api/v1/rooms", { headers: doctor, data: { title: "Nephrology review", patient_ref: "MRN-PIN-1", waiting_room: false } });
      assert.equal(made.status(), 201, "a consultation");
      const roomId = /** @type {{id: string}} */ (await made.json()).id;
      const added = await http.post(`/api/v1/rooms/${roomId}/care-team`, { headers: doctor, data: { user_id: me.id } });
      assert.equal(added.status(), 201, "the colleague is on its care team");
      const seat = /** @type {{token: string}} */ (await (await http.post(`/api/v1/rooms/${roomId}/enter`, { headers: theirs })).json());
      const room = await t.openJoinPage(/** @type {import("playwright-core").Browser} */ (t.browser), "admin-pin-room", `${t.base}/join#${seat.token}`, null, { viewport: { width: 390, height: 844 } });
      own.set("admin-pin-room", room);
      await room.waitForFunction(() => document.body.dataset.state === "in-room", undefined, { timeout });
      await room.click('.tab[data-tab="records-panel"]');
      await room.locator(".record-forms summary", { hasText: "Diagnosis report" }).click();
      await room.locator('.report-form textarea[name="findings"]').fill("eGFR 38 mL/min/1.73m², stable");
      await room.locator('.report-form textarea[name="impression"]').fill("慢性肾脏病 3b 期 (CKD stage 3b)");
      await room.locator('.report-form textarea[name="recommendation"]').fill("Review in 3 months");
      // Saved as a draft first, on a phone: its controls fit the screen; signed from the list.
      await room.locator(".report-form .record-draft").click();
      const draft = room.locator('.record-item[data-kind="diagnosis_report"][data-status="draft"]');
      await draft.locator('button[data-action="issue"]').waitFor({ timeout });
      const overflow = await room.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the room page is ${overflow}px wider than the phone's screen`);
      await draft.scrollIntoViewIfNeeded();
      await t.snap(room, "room-draft-phone");
      await draft.locator('button[data-action="issue"]').click();
      const sign = room.getByRole("dialog", { name: "Sign and issue" });
      await sign.waitFor({ timeout });
      assert.equal(await room.locator("#sign-pin-field").isVisible(), false, "the password first, until the PIN is chosen");
      await room.click("#sign-mode");
      await room.locator("#sign-pin").fill("999000");
      await room.click("#sign-ok");
      await room.locator('#sign-error[data-code="wrong_pin"]', { hasText: "Tries left before the PIN is erased: 4" }).waitFor({ timeout });
      await t.assertTextFromCatalogue(room, "the signing dialog asking for the PIN, after a wrong one (en)");
      await t.snap(room, "room-sign-pin-wrong");
      assert.equal(await room.locator("#sign-pin").inputValue(), "", "the wrong PIN is cleared");
      await room.locator("#sign-pin").fill(PIN);
      await room.click("#sign-ok");
      await sign.waitFor({ timeout, state: "hidden" });
      const issued = room.locator('.record-item[data-kind="diagnosis_report"][data-status="issued"]');
      await issued.waitFor({ timeout, state: "attached" });
      assert.match((await issued.locator(".record-signature").textContent()) ?? "", new RegExp(NEW_USER.name), "signed in the account's name");
      assert.equal(await room.evaluate(() => localStorage.getItem("huizhen.sign_with")), "pin", "the PIN is offered first next time");
    });

    await check("admin console: the new specialist changes the initial password from the console (zh-CN, phone); mistakes are said, the other sessions end", { scenario }, async () => {
      if (!t.browser) throw new Error("no browser");
      const changed = changedPassword;
      // Signed in elsewhere too (their phone's browser, say).
      const elsewhere = await apiLogin(NEW_USER.username, newPassword);
      const context = await t.newContext(t.browser, { width: 390, height: 844 }, "zh-CN");
      const page = await context.newPage();
      t.watchPage(page, "password");
      t.pages.set("password", page);
      own.set("password", page);
      await page.goto(`${t.base}/`, { waitUntil: "load", timeout });
      await page.getByLabel("用户名").fill(NEW_USER.username);
      await page.getByLabel("密码", { exact: true }).fill(newPassword);
      await page.getByRole("button", { name: "登录" }).click();
      await page.waitForSelector('body[data-state="signed-in"]', { timeout });
      await page.getByRole("button", { name: "修改密码" }).click();
      const dialog = page.getByRole("dialog", { name: "修改密码" });
      await dialog.waitFor({ timeout });
      const submit = () => dialog.getByRole("button", { name: "修改密码" }).click();

      // Typed differently twice: said at once.
      await dialog.getByLabel("当前密码").fill(newPassword);
      await dialog.getByLabel("新密码", { exact: true }).fill(changed);
      await dialog.getByLabel("再次输入新密码").fill(`${changed}x`);
      await submit();
      await page.locator('#password-error[data-code="mismatch"]', { hasText: "两次输入的新密码不一致" }).waitFor({ timeout });
      // A wrong current password: the server refuses, the dialog says so, nothing changes.
      await dialog.getByLabel("当前密码").fill("not-the-password");
      await dialog.getByLabel("再次输入新密码").fill(changed);
      await submit();
      await page.locator('#password-error[data-code="wrong_password"]', { hasText: "密码错误" }).waitFor({ timeout });
      await t.assertTextFromCatalogue(page, "the password dialog with the server's refusal (zh-CN)");
      await t.snap(page, "console-password-wrong-zh");
      assert.equal((await http.get("/api/v1/me", { headers: elsewhere })).status(), 200, "nothing changed yet");

      // Right: changed; the session elsewhere has ended, this one goes on.
      await dialog.getByLabel("当前密码").fill(newPassword);
      await submit();
      const notice = page.locator("#account-notice[data-sessions-revoked]");
      await notice.waitFor({ timeout });
      assert.ok(Number(await notice.getAttribute("data-sessions-revoked")) >= 1, "at least the one elsewhere");
      assert.match((await notice.textContent()) ?? "", /密码已修改/);
      assert.equal(await dialog.isVisible(), false);
      assert.equal(await page.locator("#password-current").inputValue(), "", "nothing typed is kept");
      assert.equal((await http.get("/api/v1/me", { headers: elsewhere })).status(), 401, "the session elsewhere has ended");
      await t.snap(page, "console-password-changed-zh");
      await page.reload({ waitUntil: "load" });
      await page.waitForSelector('body[data-state="signed-in"]', { timeout });
      // The change erased the signing PIN, set under the old password.
      await page.getByRole("button", { name: "签名 PIN 码" }).click();
      await page.locator('#pin-state[data-set="false"]', { hasText: "未设置签名 PIN 码" }).waitFor({ timeout });
      await page.getByRole("dialog", { name: "签名 PIN 码" }).getByRole("button", { name: "取消" }).click();
      const old = await http.post("/api/v1/auth/login", { data: { username: NEW_USER.username, password: newPassword } });
      assert.equal(old.status(), 401, "the initial password no longer signs in");
      await apiLogin(NEW_USER.username, changed);
    });
    await check("admin console: the network's administrator disables the new colleague (they cannot sign in, and are told why), then enables the account again", { scenario }, async () => {
      const p = page;
      if (!p) throw new Error("no page");
      await p.getByRole("button", { name: "Refresh" }).first().click().catch(() => undefined);
      const card = p.locator(`li.account-card[data-username="${NEW_USER.username}"]`);
      await card.waitFor({ timeout });
      await card.getByRole("button", { name: `Disable account of ${NEW_USER.name}` }).click();
      const dialog = p.getByRole("dialog");
      await dialog.waitFor({ timeout });
      await dialog.getByRole("button", { name: "Disable account" }).click();
      await p.locator("#admin-status", { hasText: `The account of ${NEW_USER.name} is disabled.` }).waitFor({ timeout });
      await p.locator(`li.account-card[data-username="${NEW_USER.username}"][data-disabled="true"]`).waitFor({ timeout });
      await t.assertTextFromCatalogue(p, "the accounts list with a disabled account (en)");
      await t.snap(p, "admin-account-disabled");
      // Their right password no longer lets them in; the sign-in page says why.
      if (!t.browser) throw new Error("no browser");
      const context = await t.newContext(t.browser, { width: 390, height: 844 }, "zh-CN");
      const login = await context.newPage();
      t.watchPage(login, "disabled-login");
      own.set("disabled-login", login);
      await login.goto(`${t.base}/`, { waitUntil: "load", timeout });
      await login.getByLabel("用户名").fill(NEW_USER.username);
      await login.getByLabel("密码", { exact: true }).fill(changedPassword);
      await login.getByRole("button", { name: "登录" }).click();
      await login.locator("#login-error", { hasText: "此账号已停用" }).waitFor({ timeout });
      await t.snap(login, "login-account-disabled-zh");
      await p.locator(`li.account-card[data-username="${NEW_USER.username}"]`).getByRole("button", { name: `Enable account of ${NEW_USER.name}` }).click();
      await p.locator("#admin-status", { hasText: `The account of ${NEW_USER.name} is enabled again.` }).waitFor({ timeout });
      await apiLogin(NEW_USER.username, changedPassword);
    });
  } finally {
    for (const [who, page] of own) {
      t.pages.delete(who);
      await page.context().close().catch(() => undefined);
    }
  }
}
