// TURN (issue 19, "Real networks"), as a scenario of the browser test (consultation.test.mjs
// calls it near the end; HUIZHEN_BROWSER_ONLY=turn runs it alone).
//
// A real coturn (Debian's /usr/bin/turnserver) with UDP, TCP and TLS listeners, TLS on 443 with
// a throw-away certificate made here by openssl and signed by a throw-away certificate
// authority (the scenario's own server serves HTTPS with the same one), and a second huizhen
// server, made
// for this scenario alone (the shared one keeps no TURN, so that no other scenario changes),
// whose `[turn]` lists the three URLs. In each of three runs a doctor and a patient meet in a
// consultation while the patient's page may use nothing but a relay on one of those URLs
// (`relayOnly`: the page's RTCPeerConnection gets `iceTransportPolicy: "relay"` and that one
// URL from the server's list, as a browser behind a firewall that lets only it out would use):
//   turn:198.18.0.2:3478?transport=udp, turn:198.18.0.2:3478?transport=tcp,
//   turns:localhost:443?transport=tcp.
// Each run shows the remote video playing on both pages, the patient's selected candidate
// pair's local candidate being a relay over udp / tcp / tls (getStats), every candidate the
// patient gathered being a relay's, and coturn's log having the patient's pseudonym allocate.
// The patient is Chromium, then Firefox ESR (the doctor is Chromium in both).
//
// The TLS URL names a host, not an address, because Firefox refuses `turns:` with an IP address
// before it connects at all (its log: "TLS requires FQDN, not IP address"), and `localhost` is
// the one name that resolves here without touching the machine's resolver; coturn listens on
// 127.0.0.1 as well for it, and its certificate names `localhost`.
//
// In those runs both browsers accept the certificate only because the whole run already ignores
// certificate errors (Chromium's --ignore-certificate-errors, Firefox's WebDriver session with
// acceptInsecureCerts): both check a TURN server's certificate like an HTTPS server's. Measured
// here, gathering relay-only candidates for this URL and an untrusted certificate: Chromium
// without --ignore-certificate-errors reports icecandidateerror 701 "Failed to establish
// connection" and gathers nothing; Firefox ESR 153 without acceptInsecureCerts runs its
// certificate check, the TLS connection fails, and coturn never sees an ALLOCATE. So a fourth
// run shows what a real deployment has: a Chromium started without ignoring certificate errors,
// whose NSS store (its own $HOME/.pki/nssdb, by certutil) trusts the throw-away authority, as a
// hospital's managed browsers trust theirs, opens the scenario's server and calls through
// turns:localhost, its relay over TLS.
//
// Where: scripts/test-browser.sh's network namespace. coturn listens on the veth pair's second
// address (198.18.0.2, a host of its own as a hospital's TURN server would be) and may relay to
// the SFU's media address (198.18.0.1) and nowhere else: every address is a denied peer but
// that one (`allowed-peer-ip` wins over `denied-peer-ip`), as README's example configures it; a
// TURN client of the test's own (turn-client.mjs) checks that coturn grants a permission for the
// SFU's address and answers 403 for any other. Without the veth pair everything falls back to
// 127.0.0.1 (and coturn then needs `allow-loopback-peers`). Both processes are stopped after the
// scenario, and killed if node exits first.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { closeSync, existsSync, openSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium, request } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS, FIREFOX_UNAVAILABLE, JOIN_TIMEOUT, Participant, closeParticipant, chromiumParticipant, firefoxParticipant, instrumentPage, launchFirefox, remoteVideos } from "./engines.mjs";
import { permissionAnswers } from "./turn-client.mjs";

/**
 * @typedef {import("playwright-core").Page} ChromiumPage
 * @typedef {import("puppeteer-core").Page} FirefoxPage
 * @typedef {import("node:child_process").ChildProcess} ChildProcess
 * @typedef {object} Harness what the main test lends the scenario
 * @property {(name: string, opts: {scenario?: true | string}, fn: () => Promise<void>) => Promise<void>} check
 * @property {(browser: import("playwright-core").Browser, viewport: {width: number, height: number}, locale?: string, base?: string) => Promise<import("playwright-core").BrowserContext>} newContext
 * @property {(page: ChromiumPage, who: string) => void} watchPage
 * @property {Map<string, ChromiumPage>} pages Chromium pages photographed on failure
 * @property {import("playwright-core").Browser | null} browser Chromium
 * @property {string} password the run's password (the doctor of this scenario's server has it too)
 * @property {number} timeout how long an event may take to show
 * @property {string} out where screenshots and this scenario's logs go
 */

/** The server binary and the namespace's addresses, from scripts/test-browser.sh. */
const SERVER_BIN = process.env.HUIZHEN_TEST_SERVER_BIN ?? "";
const MEDIA_ADDR = process.env.HUIZHEN_TEST_MEDIA_ADDR ?? "127.0.0.1";
const TURN_ADDR = MEDIA_ADDR === "127.0.0.1" ? "127.0.0.1" : (process.env.HUIZHEN_TEST_TURN_ADDR ?? "127.0.0.1");
const TURNSERVER = "/usr/bin/turnserver";
/** The scenario's own server: another port than the shared one's 18443, no metrics listener. */
const LISTEN = "127.0.0.1:18543";
const TURN_PORT = 3478;
/** TLS where a firewall that lets only HTTPS out lets it through. */
const TURNS_PORT = 443;
const MEDIA_TIMEOUT = 90_000;
const DESK = { width: 1000, height: 700 };
/** The run's Chromium flags but one: certificate errors are not ignored. */
const TRUSTING_CHROMIUM_ARGS = CHROMIUM_ARGS.filter((a) => a !== "--ignore-certificate-errors");

/** The three runs: the one URL the patient may use, and the relay protocol getStats must show. */
const RUNS = [
  { transport: "udp", url: `turn:${TURN_ADDR}:${TURN_PORT}?transport=udp` },
  { transport: "tcp", url: `turn:${TURN_ADDR}:${TURN_PORT}?transport=tcp` },
  // A name, not an address: see the top of the file.
  { transport: "tls", url: `turns:localhost:${TURNS_PORT}?transport=tcp` },
];

/**
 * Runs in the patient's page before its own code: every RTCPeerConnection (the call's and the
 * network check's) may gather nothing but relay candidates, from `url` alone of the servers the
 * page is given (at construction or later with setConfiguration, as the web client does when
 * `joined` brings them). The user name it was given is kept in `window.__hzRelayUser`, for the
 * test to find in coturn's log.
 * @param {string} url
 */
export function relayOnly(url) {
  const Native = window.RTCPeerConnection;
  /**
   * @param {RTCConfiguration | undefined} config
   * @returns {RTCConfiguration}
   */
  const restrict = (config) => {
    const iceServers = (config?.iceServers ?? []).flatMap((s) => {
      const urls = [s.urls].flat().filter((u) => u === url);
      return urls.length ? [{ ...s, urls }] : [];
    });
    if (iceServers[0]) Object.assign(window, { __hzRelayUser: iceServers[0].username });
    return { ...config, iceServers, iceTransportPolicy: "relay" };
  };
  window.RTCPeerConnection = class extends Native {
    /** @param {RTCConfiguration} [config] */
    constructor(config) {
      super(restrict(config));
    }

    /** @param {RTCConfiguration} [config] */
    setConfiguration(config) {
      super.setConfiguration(restrict(config));
    }
  };
}

/**
 * The page's newest peer connection's path: the selected pair's local candidate, and the type
 * of every local candidate gathered. Chromium names the pair on the transport
 * (`selectedCandidatePairId`), Firefox marks it `selected`.
 * Runs in the page.
 */
async function selectedPath() {
  /** @type {RTCPeerConnection[]} */
  const pcs = /** @type {any} */ (window).__hzPeerConnections ?? [];
  const pc = pcs[pcs.length - 1];
  if (!pc) return null;
  const report = await pc.getStats();
  /** @type {any} */
  let pair = null;
  /** @type {string[]} */
  const gathered = [];
  report.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId) ?? pair;
    if (s.type === "local-candidate") gathered.push(s.candidateType);
  });
  if (!pair) report.forEach((s) => (s.type === "candidate-pair" && s.selected ? (pair = s) : undefined));
  const local = pair ? report.get(pair.localCandidateId) : undefined;
  return {
    ice: pc.iceConnectionState,
    local: local ? { type: String(local.candidateType), relayProtocol: String(local.relayProtocol ?? "") } : null,
    gathered,
  };
}

/**
 * Waits until the page's one remote video plays: frames shown advancing between two samples,
 * a picture size, not paused.
 * @param {Participant} p
 */
async function waitForRemoteVideo(p) {
  const deadline = Date.now() + MEDIA_TIMEOUT;
  let last = "";
  while (Date.now() < deadline) {
    const first = await p.evaluate(remoteVideos);
    await new Promise((r) => setTimeout(r, 1500));
    const second = await p.evaluate(remoteVideos);
    last = JSON.stringify({ first, second });
    if (second.length === 1 && first.length === 1 && second[0].frames > first[0].frames && second[0].width > 0 && !second[0].paused) return;
  }
  throw new Error(`${p.who} (${p.engine}): the remote video does not play: ${last}`);
}

/**
 * Stops a child: SIGTERM (the server drains), then SIGKILL after 10 s.
 * @param {ChildProcess | null} child
 */
async function stop(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Runs the server binary once (an administrative command) with `config`; its output goes to
 * the scenario's log.
 * @param {string} config
 * @param {string[]} args
 * @param {string} log
 * @param {string} [input] standard input
 */
function admin(config, args, log, input = "") {
  const fd = openSync(log, "a");
  try {
    execFileSync(SERVER_BIN, ["--config", config, ...args], { input, stdio: ["pipe", fd, fd], env: { PATH: process.env.PATH ?? "" }, timeout: 60_000 });
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether a TCP connection to the TURN server's `port` is accepted.
 * @param {number} port
 * @returns {Promise<boolean>}
 */
function accepts(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: TURN_ADDR, port, timeout: 2000 });
    const done = (/** @type {boolean} */ ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
    socket.once("timeout", () => done(false));
  });
}

/** @param {Harness} h */
export async function turnScenario(h) {
  const { check } = h;
  const S = "turn";
  const base = `https://${LISTEN}`;
  /** @type {ChildProcess | null} */
  let coturn = null;
  /** @type {ChildProcess | null} */
  let server = null;
  // Whatever ends node (the watchdog's exit included), neither process outlives it.
  const killAll = () => {
    for (const child of [coturn, server]) if (child && child.exitCode === null) child.kill("SIGKILL");
  };
  process.on("exit", killAll);
  const tmp = await mkdtemp(path.join(os.tmpdir(), "huizhen-turn-"));
  /** Shared by coturn and the scenario's server (`use-auth-secret`). */
  const secret = randomBytes(24).toString("hex");
  const http = await request.newContext({ baseURL: base, ignoreHTTPSErrors: true, timeout: 30_000 });
  /** @type {import("puppeteer-core").Browser | null} */
  let firefox = null;
  /** @type {import("playwright-core").Browser | null} a Chromium that ignores no certificate error */
  let trusting = null;
  /** @type {Participant[]} the run's pages */
  const open = [];
  /** @type {string[]} what Firefox's pages threw or logged that they must not */
  const problems = [];

  /** coturn's log (it adds the date to the name it is given). */
  const coturnLog = async () => {
    let all = "";
    for (const f of await readdir(tmp)) if (f.startsWith("turn") && f.endsWith(".log")) all += await readFile(path.join(tmp, f), "utf8");
    return all;
  };

  const closeAll = async () => {
    for (const p of open.splice(0)) {
      h.pages.delete(p.who);
      await closeParticipant(p);
    }
  };

  /**
   * A check whose failure photographs the run's pages (Firefox's too); its pages are closed
   * after it, whatever happened.
   * @param {string} name
   * @param {() => Promise<void>} fn
   * @param {string} [scenario]
   */
  const step = (name, fn, scenario = S) =>
    check(name, { scenario }, async () => {
      try {
        await fn();
      } catch (err) {
        for (const p of open) if (!p.isClosed()) await p.screenshot(path.join(h.out, `fail-turn-${p.who}.png`));
        throw err;
      } finally {
        await closeAll();
      }
    });

  /**
   * A Chromium page in a fresh context on this scenario's server.
   * @param {string} who
   * @param {string | null} relayUrl the one relay the page may use; null: no restriction
   */
  const chromiumPage = async (who, relayUrl) => {
    const p = await chromiumParticipant(h, { who, viewport: DESK, base, init: relayUrl ? relayOnly : undefined, arg: relayUrl ?? "" });
    open.push(p);
    return p;
  };

  /**
   * A page of the Chromium that ignores no certificate error (and trusts the throw-away
   * authority), allowed nothing but the relay at `relayUrl`; the web client the server embeds.
   * @param {string} who
   * @param {string} relayUrl
   */
  const trustingPage = async (who, relayUrl) => {
    if (!trusting) throw new Error("the trusting Chromium did not start");
    const context = await trusting.newContext({ viewport: DESK, locale: "en-GB" });
    await context.grantPermissions(["camera", "microphone"], { origin: base });
    await context.addInitScript(instrumentPage);
    await context.addInitScript(relayOnly, relayUrl);
    const page = await context.newPage();
    h.watchPage(page, who);
    h.pages.set(who, page);
    const p = new Participant(who, "chromium", page);
    open.push(p);
    return p;
  };

  /**
   * A Firefox page allowed nothing but the relay at `relayUrl`.
   * @param {string} who
   * @param {string} relayUrl
   */
  const firefoxPage = async (who, relayUrl) => {
    if (!firefox) throw new Error("Firefox did not start");
    const p = await firefoxParticipant(firefox, { who, locale: "en-GB", viewport: DESK, base, problems });
    await /** @type {FirefoxPage} */ (p.page).evaluateOnNewDocument(relayOnly, relayUrl);
    open.push(p);
    return p;
  };

  /**
   * Opens a join link and joins: with a display name for an invite link, without for a seat.
   * @param {Participant} p
   * @param {string} token
   * @param {string | null} name
   */
  const join = async (p, token, name) => {
    await p.goto(`${base}/join#${token}`);
    await p.waitForState("prejoin");
    if (name !== null) await p.fill("#display-name", name);
    await p.click("#join-button");
    await p.waitForState("in-room");
  };

  /** A consultation without waiting room: the doctor's seat and a patient's invite. */
  const openRoom = async (/** @type {string} */ title) => {
    const login = await http.post("/api/v1/auth/login", { data: { username: "doc", password: h.password } });
    assert.equal(login.status(), 200, `login: ${login.status()}`);
    const auth = { Authorization: `Bearer ${(await login.json()).token}` };
    const created = await http.post("/api/v1/rooms", { headers: auth, data: { title, patient_ref: "MRN-TURN-0001", waiting_room: false } });
    assert.ok(created.ok(), `create room: ${created.status()}`);
    const roomId = (await created.json()).id;
    const invite = await http.post(`/api/v1/rooms/${roomId}/invites`, { headers: auth, data: { role: "patient" } });
    assert.ok(invite.ok(), `patient invite: ${invite.status()}`);
    const enter = await http.post(`/api/v1/rooms/${roomId}/enter`, { headers: auth });
    assert.equal(enter.status(), 200, `enter: ${enter.status()}`);
    return { doctor: /** @type {string} */ ((await enter.json()).token), patient: /** @type {string} */ ((await invite.json()).token) };
  };

  /**
   * One run: the doctor (Chromium, unrestricted) and the patient (`engine`, relay-only through
   * `run.url`) see each other's video; the patient's path is the relay over `run.transport`.
   * @param {"chromium" | "firefox" | "trusting"} engine `trusting`: the Chromium that ignores
   *   no certificate error
   * @param {{transport: string, url: string}} run
   */
  const relayedCall = async (engine, run) => {
    const room = await openRoom(`TURN over ${run.transport} (${engine})`);
    const doctor = await chromiumPage(`turn-${run.transport}-doctor`, null);
    await join(doctor, room.doctor, null);
    const who = `turn-${run.transport}-patient-${engine}`;
    const patient =
      engine === "firefox" ? await firefoxPage(who, run.url) : engine === "trusting" ? await trustingPage(who, run.url) : await chromiumPage(who, run.url);
    await join(patient, room.patient, "Li Hua");
    await patient.waitFor(() => document.querySelector("#consent-dialog[open]") !== null, undefined, h.timeout);
    await patient.click("#consent-done");
    await waitForRemoteVideo(patient);
    await waitForRemoteVideo(doctor);
    const pathNow = await patient.evaluate(selectedPath);
    assert.ok(pathNow, `${who}: no peer connection`);
    assert.ok(["connected", "completed"].includes(pathNow.ice), JSON.stringify(pathNow));
    assert.deepEqual(pathNow.local, { type: "relay", relayProtocol: run.transport }, `${who}: the selected pair's local candidate`);
    assert.ok(pathNow.gathered.length > 0 && pathNow.gathered.every((t) => t === "relay"), `${who}: gathered ${pathNow.gathered}`);
    // coturn gave the patient's pseudonym (never a name) its relay.
    const user = /** @type {string} */ (await patient.evaluate(() => /** @type {any} */ (window).__hzRelayUser ?? ""));
    const pseudonym = user.split(":")[1] ?? "";
    assert.match(pseudonym, /^[0-9a-f]{16}$/, `the relay's user name: ${user}`);
    const log = await coturnLog();
    assert.ok(log.split("\n").some((l) => l.includes(pseudonym) && l.includes("ALLOCATE processed, success")), `coturn allocated no relay for ${pseudonym}`);
    assert.ok(!log.includes("Li Hua"), "the patient's name reached coturn");
  };

  try {
    await step("turn: coturn (UDP, TCP, TLS on 443 with a certificate for localhost from a throw-away authority) and a server whose [turn] lists them start", async () => {
      assert.ok(SERVER_BIN, "HUIZHEN_TEST_SERVER_BIN must name the server binary (scripts/test-browser.sh sets it)");
      assert.ok(existsSync(TURNSERVER), `${TURNSERVER} is missing: install Debian's coturn (scripts/test-browser.sh does)`);
      // A throw-away authority, and its certificate for the TURN server's name and addresses
      // (and the scenario's server's, 127.0.0.1), valid for a day.
      const ssl = (/** @type {string[]} */ args) => execFileSync("openssl", args, { stdio: "ignore" });
      const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
      ssl(["req", "-x509", ...ec, "-days", "1", "-subj", "/CN=huizhen test authority", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", path.join(tmp, "ca.key"), "-out", path.join(tmp, "ca.pem")]);
      ssl(["req", ...ec, "-subj", "/CN=localhost", "-keyout", path.join(tmp, "turn.key"), "-out", path.join(tmp, "turn.csr")]);
      const names = [...new Set(["DNS:localhost", "IP:127.0.0.1", `IP:${TURN_ADDR}`])].join(",");
      await writeFile(path.join(tmp, "turn.ext"), `subjectAltName=${names}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
      ssl(["x509", "-req", "-in", path.join(tmp, "turn.csr"), "-CA", path.join(tmp, "ca.pem"), "-CAkey", path.join(tmp, "ca.key"), "-CAcreateserial",
        "-days", "1", "-extfile", path.join(tmp, "turn.ext"), "-out", path.join(tmp, "turn.pem")]);
      // In files rather than on command lines: the secret stays out of `ps`.
      await writeFile(path.join(tmp, "turn.secret"), `${secret}\n`, { mode: 0o600 });
      const loopback = TURN_ADDR === "127.0.0.1";
      await writeFile(
        path.join(tmp, "turnserver.conf"),
        [
          `listening-ip=${TURN_ADDR}`,
          // For turns:localhost (the TLS run).
          ...(loopback ? [] : ["listening-ip=127.0.0.1"]),
          `relay-ip=${TURN_ADDR}`,
          `listening-port=${TURN_PORT}`,
          `tls-listening-port=${TURNS_PORT}`,
          `cert=${path.join(tmp, "turn.pem")}`,
          `pkey=${path.join(tmp, "turn.key")}`,
          "min-port=49160",
          "max-port=49260",
          "use-auth-secret",
          `static-auth-secret=${secret}`,
          "realm=huizhen.test",
          "fingerprint",
          "no-dtls",
          "no-cli",
          "no-software-attribute",
          "no-multicast-peers",
          // The relay reaches the SFU's media address and nothing else.
          "denied-peer-ip=0.0.0.0-255.255.255.255",
          "denied-peer-ip=::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
          `allowed-peer-ip=${MEDIA_ADDR}`,
          ...(loopback ? ["allow-loopback-peers"] : []),
          "simple-log",
          "verbose",
          `log-file=${path.join(tmp, "turn.log")}`,
          `pidfile=${path.join(tmp, "turn.pid")}`,
          `userdb=${path.join(tmp, "turndb")}`,
          "",
        ].join("\n"),
        { mode: 0o600 },
      );
      coturn = spawn(TURNSERVER, ["-c", path.join(tmp, "turnserver.conf")], { stdio: "ignore" });
      // A failed start shows as its exit below (an unheard "error" would end node).
      coturn.on("error", () => undefined);

      const config = path.join(tmp, "huizhen.toml");
      await writeFile(
        config,
        `[server]
listen = "${LISTEN}"
cert_dir = "${tmp}/certs"
tls_cert = "${tmp}/turn.pem"
tls_key = "${tmp}/turn.key"
[storage]
data_dir = "${tmp}/data"
[media]
udp_bind = "${MEDIA_ADDR}:0"
announce = ["${MEDIA_ADDR}"]
# Nothing but the relay may reach the media: no ICE-TCP candidates.
tcp = false
[metrics]
listen = ""
[turn]
urls = [${RUNS.map((r) => JSON.stringify(r.url)).join(", ")}]
secret_file = "${tmp}/turn.secret"
credential_lifetime_s = 600
`,
      );
      const serverLog = path.join(h.out, "turn-server.log");
      await writeFile(serverLog, "");
      admin(config, ["user", "add", "--username", "doc", "--display-name", "Dr. Wang", "--role", "doctor", "--password-stdin"], serverLog, `${h.password}\n`);
      const out = openSync(serverLog, "a");
      // Its own environment: the test's HUIZHEN_* variables would be taken as configuration.
      server = spawn(SERVER_BIN, ["--config", config, "serve"], { stdio: ["ignore", out, out], env: { PATH: process.env.PATH ?? "" } });
      server.on("error", () => undefined);
      closeSync(out);

      const deadline = Date.now() + JOIN_TIMEOUT;
      for (;;) {
        assert.equal(server.exitCode, null, `the server exited (${h.out}/turn-server.log)`);
        assert.equal(coturn.exitCode, null, `coturn exited:\n${await coturnLog()}`);
        const ok = await http.get("/healthz", { timeout: 2000 }).then((r) => r.ok(), () => false);
        // coturn's TCP and TLS listeners accept (its UDP one opens with them).
        const listening = (await Promise.all([TURN_PORT, TURNS_PORT].map(accepts))).every(Boolean);
        if (ok && listening) break;
        assert.ok(Date.now() < deadline, `not ready: server healthy ${ok}, coturn listening ${listening}:\n${await coturnLog()}`);
        await new Promise((r) => setTimeout(r, 300));
      }
    });

    await step("turn: coturn lets a relay reach the SFU's media address and refuses any other peer (itself, loopback, private and public addresses)", async () => {
      const username = `${Math.floor(Date.now() / 1000) + 600}:0123456789abcdef`;
      const others = [TURN_ADDR, "127.0.0.1", "10.1.2.3", "192.0.2.1"].filter((ip, i, all) => ip !== MEDIA_ADDR && all.indexOf(ip) === i);
      const answers = await permissionAnswers({
        host: TURN_ADDR,
        port: TURN_PORT,
        username,
        password: createHmac("sha1", secret).update(username).digest("base64"),
        peers: [MEDIA_ADDR, ...others],
      });
      assert.deepEqual(answers, Object.fromEntries([[MEDIA_ADDR, 200], ...others.map((ip) => [ip, 403])]));
    });

    for (const run of RUNS) {
      await step(`turn: a relay-only Chromium patient over ${run.url} and the doctor see each other; the path is a relay over ${run.transport}`, () => relayedCall("chromium", run), `${S}-chromium-${run.transport}`);
    }

    const tls = /** @type {{transport: string, url: string}} */ (RUNS.find((r) => r.transport === "tls"));
    await step(`turn: a Chromium that ignores no certificate error, trusting the authority that signed the relay's certificate, calls relay-only through ${tls.url}; the path is a relay over tls`, async () => {
      // Its own home, whose NSS store (where Chromium on Linux looks) trusts the authority.
      const home = path.join(tmp, "trusting-home");
      const nssdb = `sql:${path.join(home, ".pki", "nssdb")}`;
      await mkdir(path.join(home, ".pki", "nssdb"), { recursive: true });
      execFileSync("certutil", ["-d", nssdb, "-N", "--empty-password"], { stdio: "ignore" });
      execFileSync("certutil", ["-d", nssdb, "-A", "-t", "C,,", "-n", "huizhen test authority", "-i", path.join(tmp, "ca.pem")], { stdio: "ignore" });
      trusting = await chromium.launch({ executablePath: CHROMIUM, args: TRUSTING_CHROMIUM_ARGS, env: { ...process.env, HOME: home }, timeout: 60_000 });
      // It does check certificates: the shared server's self-signed development one is refused.
      const probe = await (await trusting.newContext()).newPage();
      const shared = (process.env.HUIZHEN_URL ?? "https://127.0.0.1:18443").replace(/\/$/, "");
      const refused = await probe.goto(`${shared}/healthz`, { timeout: 15_000 }).then(() => "", (e) => String(e));
      await probe.context().close();
      assert.match(refused, /ERR_CERT_AUTHORITY_INVALID/, "an untrusted certificate is refused");
      await relayedCall("trusting", tls);
    }, `${S}-trusted`);

    if (FIREFOX_UNAVAILABLE) {
      await check("turn: Firefox relay-only calls", {}, async () => {
        throw new Error(`Firefox cannot reach the media server here: ${FIREFOX_UNAVAILABLE}`);
      });
    } else {
      await step("turn: Firefox ESR starts", async () => {
        firefox = await launchFirefox();
      }, `${S}-firefox`);
      for (const run of RUNS) {
        await step(`turn: a relay-only Firefox patient over ${run.url} and the doctor see each other; the path is a relay over ${run.transport}`, () => relayedCall("firefox", run), `${S}-firefox`);
      }
      await check("turn: no Firefox page threw, tripped the CSP, or logged a token or SDP", {}, async () => {
        assert.deepEqual(problems, []);
      });
    }
  } finally {
    await closeAll();
    await /** @type {import("puppeteer-core").Browser | null} */ (firefox)?.close().catch(() => undefined);
    await /** @type {import("playwright-core").Browser | null} */ (trusting)?.close().catch(() => undefined);
    await http.dispose().catch(() => undefined);
    await stop(server);
    await stop(coturn);
    process.off("exit", killAll);
    await copyFile(path.join(tmp, "turn.log"), path.join(h.out, "turn-coturn.log")).catch(async () => writeFile(path.join(h.out, "turn-coturn.log"), await coturnLog().catch(() => "")));
    await rm(tmp, { recursive: true, force: true });
  }
}
