// Firefox (issue 18), as a scenario of the browser test (consultation.test.mjs calls it near the
// end, before the final check of page problems).
//
// Debian's Firefox ESR, driven by puppeteer-core over WebDriver BiDi, with fake camera and
// microphone. Firefox gathers no loopback ICE candidate, so the script runs the server and the
// browsers in a network namespace with a veth pair and a default route, and the server's media
// binds to and announces the veth address (scripts/test-browser.sh).
//
// (a) A three-person room in Firefox alone: the doctor takes their seat with the entry token the
//     API gives, the patient comes with an invite link on a phone-sized screen in Chinese (the
//     browser's language, set per participant through BiDi's locale override; the pre-join
//     check's test sound and device list, and the phone layout measured as in Chromium,
//     upright and on its side), and the
//     cardiology specialist signs in to the console and enters through "Enter consultation".
//     Every page plays the two others' video (frames shown advancing, videoWidth > 0) and
//     receives their sound (the peer connection's inbound audio stats growing, the remote
//     videos unmuted).
// (b) A mixed room: the doctor in Firefox first, the patient in Chromium, the specialist in
//     Firefox: each sees and hears the two others, so Firefox and Chromium both ways.
// (c) A Chromium specialist shares a screen (headless Firefox has none to capture): the Firefox
//     doctor and the Firefox patient (phone, Chinese) show it on the stage, playing and larger
//     than the cameras, until it stops.
// What was negotiated (codecs) is checked from the peer connections' stats: Opus and VP8, and
// in the mixed room, that Chromium sends its microphone as redundant audio (RED) which Firefox
// hears, whether it negotiated RED or is sent plain Opus taken apart on the server.

import assert from "node:assert/strict";
import path from "node:path";
import { JOIN_TIMEOUT, Participant, closeParticipant, chromiumParticipant, firefoxParticipant, launchFirefox, remoteVideos } from "./engines.mjs";
import { assertPhoneLayout } from "./phone-scenario.mjs";

/**
 * @typedef {import("puppeteer-core").Page} FirefoxPage
 * @typedef {import("playwright-core").Page} ChromiumPage
 * @typedef {object} Harness what the main test lends the scenario
 * @property {(name: string, opts: {scenario?: true | string}, fn: () => Promise<void>) => Promise<void>} check
 * @property {(page: ChromiumPage, name: string) => Promise<void>} snap
 * @property {(browser: import("playwright-core").Browser, viewport: {width: number, height: number}, locale?: string) => Promise<import("playwright-core").BrowserContext>} newContext
 * @property {(page: ChromiumPage, who: string) => void} watchPage
 * @property {Map<string, ChromiumPage>} pages Chromium pages photographed on failure
 * @property {import("playwright-core").Browser | null} browser Chromium
 * @property {import("playwright-core").APIRequestContext} http
 * @property {string} base the server's origin
 * @property {string} password the run's password of every account
 * @property {string} doctor the doctor's username
 * @property {string} specialist the cardiology specialist's username
 * @property {number} timeout how long an event may take to show
 * @property {string} out where screenshots go
 */

const MEDIA_TIMEOUT = 90_000;
/** The server's metrics (scripts/test-browser.sh sets it). */
const METRICS_URL = process.env.HUIZHEN_METRICS_URL ?? "http://127.0.0.1:18464/metrics";

const PHONE = { width: 390, height: 844 };
const DESK = { width: 1280, height: 800 };

/**
 * What the page's newest peer connection receives: per inbound stream, its kind, packets,
 * decoded frames and codec.
 * Runs in the page.
 */
async function inboundStats() {
  /** @type {RTCPeerConnection[]} */
  const pcs = /** @type {any} */ (window).__hzPeerConnections ?? [];
  const pc = pcs[pcs.length - 1];
  if (!pc) return [];
  const report = await pc.getStats();
  /** @type {{kind: string, mid: string, packets: number, frames: number, codec: string}[]} */
  const out = [];
  report.forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    const codec = s.codecId ? report.get(s.codecId) : undefined;
    out.push({
      kind: s.kind ?? s.mediaType,
      mid: String(s.mid ?? s.trackIdentifier ?? s.id),
      packets: s.packetsReceived ?? 0,
      frames: s.framesDecoded ?? 0,
      codec: codec?.mimeType ?? "",
    });
  });
  return out;
}

/**
 * How the page's newest peer connection sends its microphone: the codec of its outbound audio
 * (RED where the browser sends redundant audio) and whether its answer kept RED on the audio
 * m-line (and the audio m-lines of both descriptions, for the log).
 * Runs in the page.
 * @returns {Promise<{codec: string, packets: number, answerRed: boolean, audio: string, offered: string[]}>}
 */
async function audioSent() {
  /** @type {RTCPeerConnection[]} */
  const pcs = /** @type {any} */ (window).__hzPeerConnections ?? [];
  const pc = pcs[pcs.length - 1];
  if (!pc) return { codec: "", packets: 0, answerRed: false, audio: "", offered: [] };
  const report = await pc.getStats();
  let codec = "";
  let packets = 0;
  report.forEach((s) => {
    if (s.type !== "outbound-rtp" || (s.kind ?? s.mediaType) !== "audio") return;
    codec = (s.codecId ? report.get(s.codecId)?.mimeType : "") ?? "";
    packets = s.packetsSent ?? 0;
  });
  const audio = (pc.localDescription?.sdp ?? "").split("\r\n").find((l) => l.startsWith("m=audio")) ?? "";
  const answerRed = /a=rtpmap:\d+ red\/48000/i.test(pc.localDescription?.sdp ?? "") && audio.length > 0;
  const offered = (pc.remoteDescription?.sdp ?? "").split("\r\n").filter((l) => l.startsWith("m=audio"));
  return { codec, packets, answerRed, audio, offered };
}

/**
 * Waits until every remote video on the page plays (frames shown advancing between two
 * samples, a picture size) and every remote's sound arrives (inbound audio packets advancing):
 * `remotes` of each. Autoplay with sound may be refused; the page then offers "Turn on sound",
 * which the test clicks as a person would, and the remote videos must then be unmuted.
 * @param {Participant} p
 * @param {number} remotes
 * @returns {Promise<string[]>} the codecs received
 */
async function waitForMedia(p, remotes) {
  const deadline = Date.now() + MEDIA_TIMEOUT;
  let last = "";
  while (Date.now() < deadline) {
    const [videos1, stats1] = [await p.evaluate(remoteVideos), await p.evaluate(inboundStats)];
    await new Promise((r) => setTimeout(r, 2000));
    const [videos2, stats2] = [await p.evaluate(remoteVideos), await p.evaluate(inboundStats)];
    last = JSON.stringify({ videos1, videos2, stats1, stats2 });
    const before = new Map(videos1.map((v) => [v.id, v.frames]));
    const playing = videos2.filter((v) => v.frames > 0 && v.frames > (before.get(v.id) ?? 0) && v.width > 0 && !v.paused);
    const packets = new Map(stats1.map((s) => [`${s.kind}:${s.mid}`, s.packets]));
    const growing = (/** @type {string} */ kind) =>
      stats2.filter((s) => s.kind === kind && s.packets > (packets.get(`${kind}:${s.mid}`) ?? 0)).length;
    if (videos2.length === remotes && playing.length === remotes && growing("audio") >= remotes && growing("video") >= remotes) {
      if (videos2.some((v) => v.muted)) {
        // The browser refused sound without a gesture: the page says so and offers the button.
        await p.click("#sound-button");
        await p.waitFor(() => [...document.querySelectorAll("#tiles .tile:not(.tile-local) video")].every((v) => !(/** @type {HTMLVideoElement} */ (v).muted)), undefined, JOIN_TIMEOUT);
        continue;
      }
      return [...new Set(stats2.map((s) => s.codec).filter(Boolean))].sort();
    }
  }
  throw new Error(`${p.who} (${p.engine}): not every remote plays and sounds: ${last}`);
}

/** @param {Harness} h */
export async function firefoxScenario(h) {
  const { check, http } = h;
  const S = "firefox";
  /** @type {import("puppeteer-core").Browser | null} */
  let firefox = null;
  /** @type {Participant[]} every participant page of the scenario, both browsers */
  const open = [];
  /** @type {string[]} what Firefox's pages threw or logged that they must not */
  const problems = [];

  /** @param {string} username */
  const signIn = async (username) => {
    const login = await http.post("/api/v1/auth/login", { data: { username, password: h.password } });
    assert.equal(login.status(), 200, `login of ${username}: ${login.status()}`);
    const auth = { Authorization: `Bearer ${(await login.json()).token}` };
    const me = await (await http.get("/api/v1/me", { headers: auth })).json();
    return { auth, me };
  };

  /**
   * A consultation without waiting room, the specialist on its care team, a patient link.
   * @param {string} title
   */
  const openRoom = async (title) => {
    const doctor = await signIn(h.doctor);
    const specialist = await signIn(h.specialist);
    const created = await http.post("/api/v1/rooms", { headers: doctor.auth, data: { title, patient_ref: "MRN-FX-0001", waiting_room: false } });
    assert.ok(created.ok(), `create room: ${created.status()}`);
    const roomId = (await created.json()).id;
    const team = await http.post(`/api/v1/rooms/${roomId}/care-team`, { headers: doctor.auth, data: { user_id: specialist.me.id } });
    assert.equal(team.status(), 201, `care team: ${team.status()}`);
    const invite = await http.post(`/api/v1/rooms/${roomId}/invites`, { headers: doctor.auth, data: { role: "patient" } });
    assert.ok(invite.ok(), `patient invite: ${invite.status()}`);
    /** @param {{auth: Record<string, string>}} who */
    const seat = async (who) => {
      const res = await http.post(`/api/v1/rooms/${roomId}/enter`, { headers: who.auth });
      assert.equal(res.status(), 200, `enter: ${res.status()}`);
      return /** @type {string} */ ((await res.json()).token);
    };
    return { roomId, doctor, specialist, patientToken: /** @type {string} */ ((await invite.json()).token), seat };
  };

  /**
   * A Firefox page in its own browser context (user context), in `locale`, `viewport` sized.
   * @param {string} who
   * @param {string} locale
   * @param {{width: number, height: number}} viewport
   */
  const firefoxPage = async (who, locale, viewport) => {
    if (!firefox) throw new Error("Firefox did not start");
    const p = await firefoxParticipant(firefox, { who, locale, viewport, base: h.base, problems });
    open.push(p);
    return p;
  };

  /**
   * A Chromium participant page (a fresh context, as the main test's pages).
   * @param {string} who
   * @param {{width: number, height: number}} viewport
   */
  const chromiumPage = async (who, viewport) => {
    const p = await chromiumParticipant(h, { who, viewport, base: h.base });
    open.push(p);
    return p;
  };

  /**
   * Opens a join link and joins: with a display name for an invite link, without for a seat.
   * @param {Participant} p
   * @param {string} token
   * @param {string | null} name
   * @param {"en" | "zh-CN"} lang what the page must be in
   */
  const join = async (p, token, name, lang) => {
    await p.goto(`${h.base}/join#${token}`);
    await p.waitForState("prejoin");
    assert.equal(await p.evaluate(() => document.documentElement.lang), lang, `${p.who}: the page's language follows the browser's`);
    if (name !== null) await p.fill("#display-name", name);
    else assert.equal(await p.evaluate(() => /** @type {HTMLElement} */ (document.querySelector("#display-name")).offsetParent === null), true, `${p.who}: a seat asks for no name`);
    await p.click("#join-button");
    await p.waitForState("in-room");
  };

  /**
   * Every page shows `n` tiles, then every page plays and hears the others.
   * @param {Participant[]} ps
   * @returns {Promise<string[]>} every codec received
   */
  const allSeeAndHear = async (ps) => {
    for (const p of ps) await p.waitFor((n) => document.querySelectorAll("#tiles .tile").length === n, ps.length, JOIN_TIMEOUT);
    /** @type {Set<string>} */
    const codecs = new Set();
    for (const p of ps) for (const c of await waitForMedia(p, ps.length - 1)) codecs.add(c);
    return [...codecs].sort();
  };

  /** @param {string} prefix */
  const snapAll = async (prefix) => {
    for (const p of open) if (!p.isClosed()) await p.screenshot(path.join(h.out, `${prefix}-${p.who}.png`));
  };

  /**
   * A check whose failure photographs the scenario's pages (the main test's check photographs
   * only the Chromium pages it knows); its pages are closed after it, whatever happened.
   * @param {string} name
   * @param {() => Promise<void>} fn
   * @param {string} [scenario] the flow it depends on
   */
  const step = (name, fn, scenario = S) =>
    check(name, { scenario }, async () => {
      try {
        await fn();
      } catch (err) {
        await snapAll("fail-firefox");
        throw err;
      } finally {
        await closeAll();
      }
    });

  /** Closes the scenario's pages (their contexts). */
  const closeAll = async () => {
    for (const p of open.splice(0)) {
      h.pages.delete(p.who);
      await closeParticipant(p);
    }
  };

  try {
    await step("firefox: Debian's Firefox ESR starts under WebDriver BiDi with fake camera and microphone", async () => {
      firefox = await launchFirefox();
      assert.match(await firefox.version(), /^firefox\//i);
    });

    await step("firefox: doctor (seat), patient (invite link, phone, zh-CN) and specialist (console) in Firefox see and hear each other", async () => {
      const room = await openRoom(`Firefox room ${new Date().toISOString()}`);
      const doctor = await firefoxPage("ff-doctor", "en-GB", DESK);
      await join(doctor, await room.seat(room.doctor), null, "en");
      const patient = await firefoxPage("ff-patient", "zh-CN", PHONE);
      // The pre-join check in Firefox, as phone-scenario.mjs does in Chromium: the meter is
      // shown for the fake microphone, the test sound is asked about and answered, and the
      // microphone list offers the fake device. (Whether the meter moves is not checked here:
      // these machines have no audio device, and Firefox's AudioContext then never leaves
      // "suspended", measured 2026-12-06, so Web Audio reads nothing; Chromium's does.)
      await patient.goto(`${h.base}/join#${room.patientToken}`);
      await patient.waitForState("prejoin");
      await patient.click("#display-name");
      await patient.waitFor(() => /** @type {HTMLElement | null} */ (document.querySelector("#mic-level-row"))?.hidden === false, undefined, h.timeout);
      // The test sound: asked about when it played, or, where the browser cannot start its
      // audio (Firefox on these machines, which have no audio device), said so at once; never
      // a button left waiting.
      await patient.click("#speaker-test");
      await patient.waitFor(
        () => /** @type {HTMLElement} */ (document.querySelector("#speaker-ask")).hidden === false || document.querySelector("#speaker-result")?.getAttribute("data-i18n") === "join.check.speaker_unavailable",
        undefined,
        h.timeout,
      );
      if (await patient.evaluate(() => /** @type {HTMLElement} */ (document.querySelector("#speaker-ask")).hidden === false)) {
        await patient.click("#speaker-heard");
        await patient.waitFor(() => document.querySelector("#speaker-result")?.getAttribute("data-speaker") === "heard", undefined, h.timeout);
        assert.equal(await patient.evaluate(() => document.querySelector("#speaker-result")?.textContent), "您的扬声器正常。");
      } else {
        assert.equal(await patient.evaluate(() => /** @type {HTMLButtonElement} */ (document.querySelector("#speaker-test")).disabled), false, "the button can be pressed again");
      }
      const mics = await patient.evaluate(() => [...document.querySelectorAll("#microphone-select option")].length);
      assert.ok(mics >= 1, "the fake microphone is listed");
      await join(patient, room.patientToken, "李华", "zh-CN");
      // Asked for consent on entering; this patient decides later.
      await patient.waitFor(() => document.querySelector("#consent-dialog[open]") !== null, undefined, h.timeout);
      await patient.click("#consent-done");
      // The specialist signs in to the console and enters from the consultation's card.
      const specialist = await firefoxPage("ff-specialist", "en-GB", DESK);
      await specialist.goto(`${h.base}/`);
      await specialist.fill("#username", h.specialist);
      await specialist.fill("#password", h.password);
      await specialist.click("#login-button");
      await specialist.waitFor(() => document.body.dataset.state === "signed-in", undefined, h.timeout);
      await specialist.click(`li.room-card[data-room-id="${room.roomId}"] button[data-i18n="console.enter"]`);
      await specialist.waitFor(() => location.pathname === "/join", undefined, h.timeout);
      await specialist.waitForState("prejoin");
      await specialist.click("#join-button");
      await specialist.waitForState("in-room");

      const codecs = await allSeeAndHear([doctor, patient, specialist]);
      assert.deepEqual(codecs, ["audio/opus", "video/VP8"], "Firefox receives Opus and VP8");
      await snapAll("firefox-room");
      // The phone layout, measured from element boxes as in Chromium (phone-scenario.mjs): the
      // controls cover neither the tabs nor the active speaker, nor does your own picture,
      // every target at least 44×44, nothing off the screen; upright and on its side.
      const phone = /** @type {any} */ (patient.page);
      await assertPhoneLayout(phone, `Firefox, ${PHONE.width}×${PHONE.height}, zh-CN`);
      await phone.setViewport({ width: PHONE.height, height: PHONE.width });
      await patient.waitFor(() => window.innerWidth > window.innerHeight, undefined, h.timeout);
      await assertPhoneLayout(phone, `Firefox, ${PHONE.height}×${PHONE.width}, zh-CN`);
      await patient.screenshot(path.join(h.out, "firefox-room-ff-patient-landscape.png"));
    });

    await step("firefox and chromium: a mixed room (Firefox doctor, Chromium patient, Firefox specialist) sees and hears each other both ways", async () => {
      const room = await openRoom(`Mixed room ${new Date().toISOString()}`);
      const doctor = await firefoxPage("mixed-doctor-firefox", "en-GB", DESK);
      await join(doctor, await room.seat(room.doctor), null, "en");
      const patient = await chromiumPage("mixed-patient-chromium", PHONE);
      await join(patient, room.patientToken, "Chen Jing", "en");
      await patient.waitFor(() => document.querySelector("#consent-dialog[open]") !== null, undefined, h.timeout);
      await patient.click("#consent-done");
      const specialist = await firefoxPage("mixed-specialist-firefox", "en-GB", DESK);
      await join(specialist, await room.seat(room.specialist), null, "en");

      const codecs = await allSeeAndHear([doctor, patient, specialist]);
      // Chromium keeps the RED the server offers first and sends its microphone as RED (the
      // server counts RED packets in; Chromium's stats name the Opus inside); what
      // Firefox does with it decides what it receives (RED whole, or plain Opus taken apart on
      // the server), and either way it hears the patient (allSeeAndHear).
      const chromium = await patient.evaluate(audioSent);
      const firefox = await doctor.evaluate(audioSent);
      console.log(`redundant audio: Chromium ${JSON.stringify(chromium)}, Firefox ${JSON.stringify(firefox)}; received ${codecs.join(", ")}`);
      assert.equal(chromium.answerRed, true, `Chromium's answer keeps RED: ${JSON.stringify(chromium)}`);
      const redIn = async () => {
        const text = await (await http.get(METRICS_URL)).text();
        return [...text.matchAll(/^huizhen_media_audio_red_in_total\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
      };
      const [red1, sent1] = [await redIn(), (await patient.evaluate(audioSent)).packets];
      await new Promise((r) => setTimeout(r, 2000));
      const [red2, sent2] = [await redIn(), (await patient.evaluate(audioSent)).packets];
      console.log(`RED packets in: ${red2 - red1} while Chromium sent ${sent2 - sent1} audio packets`);
      // Only the Chromium patient can send RED in this room (Firefox's answers left it out).
      assert.ok(sent2 > sent1, "Chromium's microphone is sent");
      assert.ok(red2 - red1 >= (sent2 - sent1) / 2, `the server receives Chromium's microphone as RED: ${red2 - red1} of ${sent2 - sent1}`);
      const expected = firefox.answerRed ? ["audio/opus", "audio/red", "video/VP8"] : ["audio/opus", "video/VP8"];
      assert.deepEqual(codecs, expected, "both browsers receive Opus (RED where negotiated) and VP8");
      await snapAll("mixed-room");
    }, "firefox-mixed");

    await step("firefox and chromium: a Chromium specialist shares a screen; the Firefox doctor and patient see it on the stage, playing, until it stops", async () => {
      const room = await openRoom(`Shared screen for Firefox ${new Date().toISOString()}`);
      const doctor = await firefoxPage("share-doctor-firefox", "en-GB", DESK);
      await join(doctor, await room.seat(room.doctor), null, "en");
      const patient = await firefoxPage("share-patient-firefox", "zh-CN", PHONE);
      await join(patient, room.patientToken, "王芳", "zh-CN");
      await patient.waitFor(() => document.querySelector("#consent-dialog[open]") !== null, undefined, h.timeout);
      await patient.click("#consent-done");
      // Headless Firefox has no screen to capture (getDisplayMedia answers NotFoundError,
      // measured 2026-12-06), so the sharer is Chromium, whose fake capture the run's flags
      // give; what Firefox must do is receive and show it.
      const specialist = await chromiumPage("share-specialist-chromium", DESK);
      await join(specialist, await room.seat(room.specialist), null, "en");
      await allSeeAndHear([doctor, patient, specialist]);
      await specialist.click("#screen-button");
      await specialist.waitFor(() => document.querySelector("#screen-stage .screen-sharing") !== null, undefined, h.timeout);
      /** The stage plays a screen: a picture with a size whose time runs on. */
      const plays = async (/** @type {Participant} */ p) => {
        await p.waitFor(
          () => {
            const stage = document.querySelector("#screen-stage");
            const video = stage?.querySelector("video.screen-video");
            return stage instanceof HTMLElement && !stage.hidden && video instanceof HTMLVideoElement && !video.hidden && video.videoWidth > 0 && video.currentTime > 0;
          },
          undefined,
          h.timeout,
        );
        const at = await p.evaluate(() => /** @type {HTMLVideoElement} */ (document.querySelector("#screen-stage video.screen-video")).currentTime);
        await p.waitFor((t) => /** @type {HTMLVideoElement} */ (document.querySelector("#screen-stage video.screen-video")).currentTime > t + 0.5, at, h.timeout);
        // The stage is larger than any camera tile.
        const sizes = await p.evaluate(() => {
          const stage = /** @type {HTMLElement} */ (document.querySelector("#screen-stage")).getBoundingClientRect();
          const tiles = [...document.querySelectorAll("#tiles .tile")].map((t) => t.getBoundingClientRect()).map((r) => r.width * r.height);
          return { stage: stage.width * stage.height, largest: Math.max(...tiles) };
        });
        assert.ok(sizes.stage > sizes.largest, `${p.who}: the screen has the stage ${JSON.stringify(sizes)}`);
      };
      await plays(doctor);
      await plays(patient);
      assert.match(await patient.evaluate(() => document.querySelector("#screen-stage .screen-caption")?.textContent ?? ""), / 的屏幕$/);
      await snapAll("firefox-sees-screen");
      await specialist.click("#screen-stage .screen-stop");
      for (const p of [doctor, patient]) {
        await p.waitFor(() => /** @type {HTMLElement | null} */ (document.querySelector("#screen-stage"))?.hidden === true, undefined, h.timeout);
      }
    }, "firefox-mixed");

    await check("firefox: no page threw, tripped the CSP, or logged a token or SDP", {}, async () => {
      assert.deepEqual(problems, []);
    });
  } finally {
    await closeAll();
    await /** @type {import("puppeteer-core").Browser | null} */ (firefox)?.close().catch(() => undefined);
  }
}
