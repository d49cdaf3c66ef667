// Simulcast behind a real bandwidth cap (issue 19, "Real networks"), as a scenario of the browser
// test (consultation.test.mjs calls it near the end; HUIZHEN_BROWSER_ONLY=cap runs it alone).
//
// A doctor and a patient meet, both in Chromium, both sending their camera in three simulcast
// layers. The patient's media, and no one else's, crosses huizhen-impair (the project's
// impairment proxy, impair/): the patient's page rewrites the server's UDP candidates in every
// description it is given to the proxy's address and drops the TCP ones (`viaProxy`), so its
// one path goes through the proxy, which relays to the room's media port as a NAT would. The
// proxy then caps what the server sends the patient at 300 kbit/s (an 8 kB queue in front, tail
// drop), as a weak rural downlink; the patient's uplink, and the doctor's whole link, stay free.
//
// Checked, on the pages as people see them (`data-video-quality` on a remote tile: the layer
// the server says it sends, or "paused"), and from the peer connections' stats:
// - through the proxy uncapped, the patient climbs above the doctor's low layer (h or f);
// - capped, the patient falls to the low layer (q) or, while its estimate finds its feet, no
//   video at all, stays there, and hears the doctor all along (inbound audio packets);
// - the doctor, whose link is free, is sent the patient's camera above q (h or f) meanwhile;
// - the cap lifted (`down clean` on the proxy's standard input), the patient climbs back above
//   q and decodes a larger picture.
//
// The proxy runs in scripts/test-browser.sh's network namespace, listening on the veth pair's
// second address (198.18.0.2); it is stopped after the scenario, killed if node exits first.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import path from "node:path";
import { instrumentPage, remoteVideos } from "./engines.mjs";

/**
 * @typedef {import("playwright-core").Page} Page
 * @typedef {object} Harness what the main test lends the scenario
 * @property {(name: string, opts: {scenario?: true | string}, fn: () => Promise<void>) => Promise<void>} check
 * @property {(browser: import("playwright-core").Browser, viewport: {width: number, height: number}, locale?: string) => Promise<import("playwright-core").BrowserContext>} newContext
 * @property {(page: Page, who: string) => void} watchPage
 * @property {(page: Page, name: string) => Promise<void>} snap
 * @property {Map<string, Page>} pages Chromium pages photographed on failure
 * @property {import("playwright-core").Browser} browser Chromium
 * @property {import("playwright-core").APIRequestContext} http
 * @property {string} base the server's origin
 * @property {string} password the run's password of every account
 * @property {string} doctor the doctor's username
 * @property {number} timeout how long an event may take to show
 * @property {string} out where screenshots and logs go
 */

/** The proxy binary and the namespace's second address, from scripts/test-browser.sh. */
const IMPAIR_BIN = process.env.HUIZHEN_TEST_IMPAIR_BIN ?? "";
const PROXY_ADDR = process.env.HUIZHEN_TEST_TURN_ADDR ?? "127.0.0.1";
const PROXY_PORT = 41_900;
/** The weak downlink: what reaches the patient, and the queue in front of it. */
const CAP = "rate=300kbit,queue=8000";
/** Layers change on the estimator's evidence, which takes seconds to gather on two cores. */
const LAYER_TIMEOUT = 120_000;
const DESK = { width: 1000, height: 700 };

/**
 * Runs in the patient's page before its own code: every description the page is given names
 * the proxy instead of the server for UDP, and no TCP candidate, so that ICE can only take the
 * path through the proxy.
 * @param {{addr: string, port: number}} proxy
 */
export function viaProxy(proxy) {
  const proto = window.RTCPeerConnection.prototype;
  const native = proto.setRemoteDescription;
  /** @param {string} sdp */
  const rewrite = (sdp) =>
    sdp
      .split("\r\n")
      .filter((l) => !(l.startsWith("a=candidate:") && / tcp /i.test(l)))
      .map((l) => {
        if (!l.startsWith("a=candidate:")) return l;
        // a=candidate:FOUNDATION COMPONENT udp PRIORITY ADDRESS PORT typ host ...
        const f = l.split(" ");
        f[4] = proxy.addr;
        f[5] = String(proxy.port);
        return f.join(" ");
      })
      .join("\r\n");
  /** @type {any} */ (proto).setRemoteDescription = function (/** @type {RTCSessionDescriptionInit} */ desc, /** @type {any[]} */ ...rest) {
    const d = desc?.sdp ? { type: desc.type, sdp: rewrite(desc.sdp) } : desc;
    return native.call(this, d, ...rest);
  };
}

/**
 * The room's media port, from the server's UDP candidate in the page's newest description.
 * Runs in the page.
 */
function serverPort() {
  /** @type {RTCPeerConnection[]} */
  const pcs = /** @type {any} */ (window).__hzPeerConnections ?? [];
  for (const pc of [...pcs].reverse()) {
    const line = (pc.remoteDescription?.sdp ?? "").split("\r\n").find((l) => l.startsWith("a=candidate:") && / udp /i.test(l));
    if (line) return Number(line.split(" ")[5]);
  }
  return 0;
}

/**
 * Audio packets the page has received, over every peer connection, and the path the newest one
 * took (the remote candidate's address and port).
 * Runs in the page.
 */
async function received() {
  /** @type {RTCPeerConnection[]} */
  const pcs = /** @type {any} */ (window).__hzPeerConnections ?? [];
  let audio = 0;
  let remote = "";
  for (const pc of pcs) {
    if (pc.connectionState === "closed") continue;
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") audio += s.packetsReceived ?? 0;
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const pair = report.get(s.selectedCandidatePairId);
        const r = pair ? report.get(pair.remoteCandidateId) : undefined;
        if (r) remote = `${r.address ?? r.ip}:${r.port}`;
      }
    });
  }
  return { audio, remote };
}

/**
 * What the page is sent of its one remote video (`data-video-quality`), and its picture width.
 * Runs in the page.
 */
function sentOfRemote() {
  const tile = /** @type {HTMLElement | null} */ (document.querySelector("#tiles .tile:not(.tile-local)"));
  const video = tile?.querySelector("video");
  return { quality: tile?.dataset.videoQuality ?? "", width: video?.videoWidth ?? 0 };
}

/** @param {Harness} h */
export async function capScenario(h) {
  const { check, http } = h;
  await check("simulcast behind a real cap: the patient's downlink capped at 300 kbit/s gets the doctor's low layer and all the sound, the doctor keeps a higher layer, and the patient climbs back when the cap lifts", { scenario: true }, async () => {
    assert.ok(IMPAIR_BIN, "HUIZHEN_TEST_IMPAIR_BIN must name huizhen-impair (scripts/test-browser.sh sets it)");
    /** @type {import("node:child_process").ChildProcessWithoutNullStreams | null} */
    let proxy = null;
    const kill = () => proxy?.kill("SIGKILL");
    process.once("exit", kill);
    /** @type {import("playwright-core").BrowserContext[]} */
    const contexts = [];
    try {
      const login = await http.post("/api/v1/auth/login", { data: { username: h.doctor, password: h.password } });
      assert.equal(login.status(), 200);
      const auth = { Authorization: `Bearer ${(await login.json()).token}` };
      const created = await http.post("/api/v1/rooms", { headers: auth, data: { title: `Weak downlink ${new Date().toISOString()}`, patient_ref: "MRN-CAP-0001", waiting_room: false } });
      assert.ok(created.ok(), `create room: ${created.status()}`);
      const roomId = (await created.json()).id;
      const invite = await http.post(`/api/v1/rooms/${roomId}/invites`, { headers: auth, data: { role: "patient" } });
      assert.ok(invite.ok(), `patient invite: ${invite.status()}`);
      const patientToken = (await invite.json()).token;
      const seat = await http.post(`/api/v1/rooms/${roomId}/enter`, { headers: auth });
      assert.equal(seat.status(), 200);
      const doctorToken = (await seat.json()).token;

      /**
       * @param {string} who
       * @param {((arg: {addr: string, port: number}) => void) | null} init
       */
      const page = async (who, init) => {
        const context = await h.newContext(h.browser, DESK);
        contexts.push(context);
        await context.grantPermissions(["camera", "microphone"], { origin: h.base });
        await context.addInitScript(instrumentPage);
        if (init) await context.addInitScript(init, { addr: PROXY_ADDR, port: PROXY_PORT });
        const p = await context.newPage();
        h.watchPage(p, who);
        h.pages.set(who, p);
        return p;
      };
      /**
       * @param {Page} p
       * @param {string} token
       * @param {string | null} name
       */
      const join = async (p, token, name) => {
        await p.goto(`${h.base}/join#${token}`);
        await p.waitForFunction(() => document.body.dataset.state === "prejoin", undefined, { timeout: h.timeout });
        if (name) await p.fill("#display-name", name);
        await p.click("#join-button");
        await p.waitForFunction(() => document.body.dataset.state === "in-room", undefined, { timeout: h.timeout });
      };

      // The doctor first, on a free path: the room's media port is in its offer.
      const doctor = await page("cap-doctor", null);
      await join(doctor, doctorToken, null);
      await doctor.waitForFunction(serverPort, undefined, { timeout: h.timeout });
      const port = await doctor.evaluate(serverPort);
      const log = createWriteStream(path.join(h.out, "cap-proxy.log"));
      proxy = spawn(IMPAIR_BIN, ["--listen", `${PROXY_ADDR}:${PROXY_PORT}`, "--upstream", `${process.env.HUIZHEN_TEST_MEDIA_ADDR ?? "127.0.0.1"}:${port}`, "--seed", "19", "--report-s", "5"], { stdio: ["pipe", "pipe", "pipe"] });
      proxy.stdout.pipe(log);
      proxy.stderr.pipe(log);

      const patient = await page("cap-patient", viaProxy);
      await join(patient, patientToken, "Weak Link");
      // Its one path is the proxy's.
      let path1 = await patient.evaluate(received);
      for (const until = Date.now() + h.timeout; !(path1.remote && path1.audio) && Date.now() < until; ) {
        await new Promise((r) => setTimeout(r, 500));
        path1 = await patient.evaluate(received);
      }
      assert.equal(path1.remote, `${PROXY_ADDR}:${PROXY_PORT}`, `the patient's media goes through the proxy: ${JSON.stringify(path1)}`);

      // On a free path first: the patient climbs above q, as the doctor does.
      /** @param {Page} p */
      const above = (p) =>
        p.waitForFunction(() => {
          const q = /** @type {HTMLElement | null} */ (document.querySelector("#tiles .tile:not(.tile-local)"))?.dataset.videoQuality;
          return q === "h" || q === "f";
        }, undefined, { timeout: LAYER_TIMEOUT, polling: 500 });
      await above(patient);
      const before = await patient.evaluate(sentOfRemote);

      // The cap: the patient falls to q (or no video while the estimate finds its feet), the
      // doctor stays above it.
      proxy.stdin.write(`down ${CAP}\n`);
      const cappedAt = Date.now();
      await patient.waitForFunction(() => {
        const q = /** @type {HTMLElement | null} */ (document.querySelector("#tiles .tile:not(.tile-local)"))?.dataset.videoQuality;
        return q === "q" || q === "paused";
      }, undefined, { timeout: LAYER_TIMEOUT, polling: 500 });
      const fell = (Date.now() - cappedAt) / 1000;
      await above(doctor);
      // Held there for a while, hearing the doctor all along.
      const audio1 = (await patient.evaluate(received)).audio;
      /** @type {string[]} */
      const seen = [];
      for (let i = 0; i < 10; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        seen.push((await patient.evaluate(sentOfRemote)).quality);
      }
      const audio2 = (await patient.evaluate(received)).audio;
      assert.ok(seen.every((q) => q === "q" || q === "paused"), `under the cap the patient is sent no more than q: ${seen.join(" ")}`);
      // 10 s of Opus at 50 packets a second; some may wait in the proxy's queue.
      assert.ok(audio2 - audio1 >= 400, `the patient hears the doctor under the cap: ${audio2 - audio1} audio packets in 10 s`);
      const doctorSees = (await doctor.evaluate(sentOfRemote)).quality;
      assert.ok(doctorSees === "h" || doctorSees === "f", `the doctor, on a free link, is sent more than q: ${doctorSees}`);
      await h.snap(patient, "cap-patient-capped");
      const capped = await patient.evaluate(sentOfRemote);

      // The cap lifts.
      proxy.stdin.write("down clean\n");
      const lifted = Date.now();
      await above(patient);
      await patient.waitForFunction((w) => {
        const v = /** @type {HTMLVideoElement | null} */ (document.querySelector("#tiles .tile:not(.tile-local) video"));
        return (v?.videoWidth ?? 0) > w;
      }, capped.width, { timeout: h.timeout, polling: 500 });
      const climbed = await patient.evaluate(sentOfRemote);
      console.log(
        `cap: on a free path the patient was sent ${before.quality} (${before.width} px wide); ${fell.toFixed(1)} s after the cap, no more than q; ` +
          `then under 300 kbit/s it was sent ${seen.join(" ")} (one a second), heard ${audio2 - audio1} audio packets in 10 s, ` +
          `decoded ${capped.width} px wide; the doctor was sent ${doctorSees}; ${((Date.now() - lifted) / 1000).toFixed(1)} s after the cap lifted, ` +
          `the patient was sent ${climbed.quality} and decoded ${climbed.width} px wide`,
      );
      const videos = await patient.evaluate(remoteVideos);
      assert.ok(videos.length === 1 && !videos[0].paused, `the doctor's picture plays: ${JSON.stringify(videos)}`);
      await h.snap(patient, "cap-patient-lifted");
      proxy.stdin.write("stats\n");
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      proxy?.kill("SIGTERM");
      process.off("exit", kill);
      for (const c of contexts) await c.close().catch(() => {});
    }
  });
}
