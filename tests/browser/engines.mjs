// The two browser engines behind one interface, for scenarios that run in both: Chromium
// (playwright-core) and Debian's Firefox ESR (puppeteer-core over WebDriver BiDi), each with fake
// camera and microphone. Firefox gathers no loopback ICE candidate, so scripts/test-browser.sh
// runs the server and the browsers in a network namespace with a veth pair and a default route,
// and the server's media binds to and announces the veth address.

import { readFile } from "node:fs/promises";
import path from "node:path";
import puppeteer from "puppeteer-core";

/**
 * @typedef {import("puppeteer-core").Page} FirefoxPage
 * @typedef {import("playwright-core").Page} ChromiumPage
 */

const FIREFOX = process.env.FIREFOX ?? "/usr/bin/firefox-esr";
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
/** How every Chromium of the run starts: headless, fake camera and microphone, and certificate
 * errors ignored (the servers' certificates are self-signed). */
export const CHROMIUM_ARGS = [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--ignore-certificate-errors",
  "--allow-loopback-in-peer-connection",
  // Pages fulfilled from disk (HUIZHEN_CLIENT_DIR) count as public, and Chromium's Local
  // Network Access checks would then block their WebSocket to 127.0.0.1.
  ...(process.env.HUIZHEN_CLIENT_DIR ? ["--disable-features=LocalNetworkAccessChecks"] : []),
];
/** Set by the script when the namespace has no veth pair: Firefox could reach no media. */
export const FIREFOX_UNAVAILABLE = process.env.HUIZHEN_FIREFOX_UNAVAILABLE ?? "";
const CLIENT_DIR = process.env.HUIZHEN_CLIENT_DIR ? path.resolve(process.env.HUIZHEN_CLIENT_DIR) : "";
/** Waits are long because the test machines are small; nothing here measures speed. */
export const JOIN_TIMEOUT = 60_000;

const FIREFOX_PREFS = {
  // Fake camera and microphone, and no permission prompt.
  "media.navigator.streams.fake": true,
  "media.navigator.permission.disabled": true,
  // Host candidates with their addresses (not mDNS names), on every interface.
  "media.peerconnection.ice.obfuscate_host_addresses": false,
  "media.peerconnection.ice.default_address_only": false,
};

/**
 * Runs in every page before its scripts: keeps the page's peer connections where the test can
 * read their stats, and reports what the Content-Security-Policy blocks (Firefox logs that
 * nowhere the test can see).
 */
export function instrumentPage() {
  /** @type {RTCPeerConnection[]} */
  const made = [];
  Object.defineProperty(window, "__hzPeerConnections", { value: made });
  const Native = window.RTCPeerConnection;
  if (Native) {
    window.RTCPeerConnection = new Proxy(Native, {
      construct(target, args, newTarget) {
        const pc = Reflect.construct(target, args, newTarget);
        made.push(pc);
        return pc;
      },
    });
  }
  window.addEventListener("securitypolicyviolation", (e) => {
    console.error(`Content Security Policy blocked ${e.violatedDirective} ${e.blockedURI}`);
  });
}

/**
 * Every remote tile's video: frames shown, size, paused and muted. Frames are counted with
 * requestVideoFrameCallback from the first call on (Firefox leaves getVideoPlaybackQuality()'s
 * totalVideoFrames at 0 for a MediaStream); the larger of the two counts.
 * Runs in the page.
 */
export function remoteVideos() {
  /** @type {WeakMap<HTMLVideoElement, {frames: number}>} */
  const counters = /** @type {any} */ (window).__hzFrameCounters ?? new WeakMap();
  /** @type {any} */ (window).__hzFrameCounters = counters;
  /** @param {HTMLVideoElement} video */
  const shown = (video) => {
    let counter = counters.get(video);
    if (!counter) {
      const c = { frames: 0 };
      counter = c;
      counters.set(video, c);
      const tick = () => {
        c.frames += 1;
        video.requestVideoFrameCallback(tick);
      };
      video.requestVideoFrameCallback(tick);
    }
    return Math.max(counter.frames, video.getVideoPlaybackQuality().totalVideoFrames);
  };
  return [...document.querySelectorAll("#tiles .tile:not(.tile-local)")].map((t) => {
    const video = t.querySelector("video");
    return {
      id: /** @type {HTMLElement} */ (t).dataset.participantId ?? "?",
      frames: video ? shown(video) : -1,
      width: video?.videoWidth ?? 0,
      paused: video?.paused ?? true,
      muted: video?.muted ?? true,
    };
  });
}

/**
 * Either kind of page, for the checks both share: Firefox's (puppeteer) and Chromium's
 * (playwright) have the same `evaluate` and `waitForFunction`, but not the same options.
 */
/** @type {WeakMap<object, FirefoxPage>} the page in front, per Firefox */
const FRONT = new WeakMap();

export class Participant {
  /**
   * @param {string} who
   * @param {"firefox" | "chromium"} engine
   * @param {FirefoxPage | ChromiumPage} page
   */
  constructor(who, engine, page) {
    this.who = who;
    this.engine = engine;
    this.page = page;
  }

  /**
   * @template T
   * @param {() => T | Promise<T>} fn
   * @returns {Promise<T>}
   */
  evaluate(fn) {
    return /** @type {any} */ (this.page).evaluate(fn);
  }

  /**
   * Runs `fn(arg)` in the page.
   * @template A, T
   * @param {(arg: A) => T | Promise<T>} fn
   * @param {A} arg
   * @returns {Promise<T>}
   */
  evaluateWith(fn, arg) {
    return /** @type {any} */ (this.page).evaluate(fn, arg);
  }

  /**
   * Waits until `fn(arg)` is true in the page.
   * @template A
   * @param {(arg: A) => boolean} fn
   * @param {A} arg
   * @param {number} timeout
   */
  async waitFor(fn, arg, timeout) {
    if (this.engine === "firefox") {
      await /** @type {FirefoxPage} */ (this.page).waitForFunction(fn, { timeout, polling: 200 }, arg);
    } else {
      await /** @type {ChromiumPage} */ (this.page).waitForFunction(fn, arg, { timeout, polling: 200 });
    }
  }

  /** @param {string} state */
  waitForState(state) {
    return this.waitFor((s) => document.body.dataset.state === s, state, JOIN_TIMEOUT);
  }

  /** @param {string} selector */
  async click(selector) {
    if (this.engine === "firefox") {
      await this.front();
      await this.waitForSelector(selector, JOIN_TIMEOUT);
      await /** @type {FirefoxPage} */ (this.page).locator(selector).setTimeout(JOIN_TIMEOUT).setWaitForStableBoundingBox(false).click();
    } else {
      await /** @type {ChromiumPage} */ (this.page).locator(selector).click({ timeout: JOIN_TIMEOUT });
    }
  }

  /**
   * Presses a key on whatever has the focus, as a keyboard user would.
   * @param {string} key e.g. "Escape", "-"
   */
  async press(key) {
    if (this.engine === "firefox") await this.front();
    await /** @type {any} */ (this.page).keyboard.press(key);
  }

  /**
   * @param {string} selector
   * @param {string} text
   */
  async fill(selector, text) {
    if (this.engine === "firefox") {
      await this.front();
      await this.waitForSelector(selector, JOIN_TIMEOUT);
      // As Playwright fills in Chromium: focused, the value set, `input` and `change` fired.
      // Puppeteer's locator types a text field's value a key at a time, one WebDriver BiDi
      // round trip each, which made a request's reason and question take many seconds.
      const set = await /** @type {FirefoxPage} */ (this.page).evaluate(
        (/** @type {string} */ s, /** @type {string} */ t) => {
          /** @type {Element | null} */
          let node = null;
          try {
            node = document.querySelector(s);
          } catch {
            return false; // not plain CSS: puppeteer's own selectors
          }
          const proto =
            node instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype : node instanceof HTMLInputElement ? HTMLInputElement.prototype : null;
          // A field a person could not type into (disabled, read-only) or not all of the text
          // (maxlength): puppeteer's fill, which waits and types, as a person would.
          const field = /** @type {HTMLInputElement | HTMLTextAreaElement} */ (node);
          if (!node || !proto || field.disabled || field.readOnly || (field.maxLength >= 0 && t.length > field.maxLength)) return false;
          /** @type {HTMLInputElement | HTMLTextAreaElement} */ (node).focus();
          Object.getOwnPropertyDescriptor(proto, "value")?.set?.call(node, t);
          node.dispatchEvent(new Event("input", { bubbles: true }));
          node.dispatchEvent(new Event("change", { bubbles: true }));
          return true;
        },
        selector,
        text,
      );
      if (!set) await /** @type {FirefoxPage} */ (this.page).locator(selector).setTimeout(JOIN_TIMEOUT).setWaitForStableBoundingBox(false).fill(text);
    } else {
      await /** @type {ChromiumPage} */ (this.page).locator(selector).fill(text, { timeout: JOIN_TIMEOUT });
    }
  }

  /**
   * Brings a Firefox page to the front before a person's action, as a person would: a page
   * behind others gets its animation frames throttled, and puppeteer's locators wait on them
   * (a click on a background page took up to a minute).
   */
  async front() {
    const page = /** @type {FirefoxPage} */ (this.page);
    const browser = page.browser();
    if (FRONT.get(browser) === page) return;
    await page.bringToFront();
    FRONT.set(browser, page);
  }

  /** @param {string} file */
  async screenshot(file) {
    try {
      if (this.engine === "firefox") await /** @type {FirefoxPage} */ (this.page).screenshot({ path: /** @type {`${string}.png`} */ (file), fullPage: true });
      else await /** @type {ChromiumPage} */ (this.page).screenshot({ path: file, fullPage: true, timeout: 15_000 });
    } catch {
      // A page that is gone or hung cannot be photographed; the failure is reported elsewhere.
    }
  }

  isClosed() {
    return this.page.isClosed();
  }

  /** Closes the page, as a person closes a tab. */
  async close() {
    await /** @type {any} */ (this.page).close();
  }
  /**
   * Opens a URL in this page.
   * @param {string} url
   */
  async goto(url) {
    await /** @type {any} */ (this.page).goto(url, { waitUntil: "load", timeout: JOIN_TIMEOUT });
  }

  /**
   * Waits until an element matching `selector` is shown (or, with `state`, hidden or only in
   * the document).
   * @param {string} selector
   * @param {number} timeout
   * @param {"visible" | "hidden" | "attached"} [state]
   */
  async waitForSelector(selector, timeout, state = "visible") {
    if (this.engine === "firefox") {
      // Polled on a timer, not on animation frames (see `front`).
      await this.waitFor(
        (/** @type {{selector: string, state: string}} */ a) => {
          const node = document.querySelector(a.selector);
          if (a.state === "attached") return node !== null;
          const shown = node !== null && node.getClientRects().length > 0 && getComputedStyle(node).visibility !== "hidden";
          return a.state === "visible" ? shown : !shown;
        },
        { selector, state },
        timeout,
      );
    } else {
      await /** @type {ChromiumPage} */ (this.page).locator(selector).first().waitFor({ state, timeout });
    }
  }

  /**
   * The text of the first element matching `selector` ("" when there is none).
   * @param {string} selector
   * @returns {Promise<string>}
   */
  text(selector) {
    return /** @type {any} */ (this.page).evaluate((/** @type {string} */ s) => document.querySelector(s)?.textContent ?? "", selector);
  }

  /**
   * How many elements match `selector`.
   * @param {string} selector
   * @returns {Promise<number>}
   */
  count(selector) {
    return /** @type {any} */ (this.page).evaluate((/** @type {string} */ s) => document.querySelectorAll(s).length, selector);
  }

  /**
   * Chooses an option of a <select> by its value, as a person would.
   * @param {string} selector
   * @param {string} value
   */
  async select(selector, value) {
    if (this.engine === "firefox") {
      await this.front();
      await /** @type {FirefoxPage} */ (this.page).select(selector, value);
    } else await /** @type {ChromiumPage} */ (this.page).selectOption(selector, value, { timeout: JOIN_TIMEOUT });
  }

  /**
   * A stable selector for the first element matching `selector` whose text contains `text`,
   * made from its identifying attribute `key` (lists re-render, so a marked node could be
   * replaced before it is used); waits until there is one.
   * @param {string} selector
   * @param {string} text
   * @param {string} key an attribute that names the item (data-referral-id, data-record-id)
   * @param {number} timeout
   * @returns {Promise<string>}
   */
  async withText(selector, text, key, timeout) {
    const find = (/** @type {{selector: string, text: string, key: string}} */ a) =>
      [...document.querySelectorAll(a.selector)].find((n) => (n.textContent ?? "").includes(a.text))?.getAttribute(a.key) ?? "";
    // A non-empty answer is truthy: the wait ends.
    await this.waitFor(/** @type {any} */ (find), { selector, text, key }, timeout).catch(() => {
      throw new Error(`${this.who}: no ${selector} with "${text}"`);
    });
    const value = await this.evaluateWith(find, { selector, text, key });
    return `${selector}[${key}="${value}"]`;
  }

  /**
   * The id of the control that a label from the catalogue names, under `scope`.
   * @param {string} scope
   * @param {string} key the label's message key (its data-i18n)
   * @returns {Promise<string>} a selector for the control
   */
  async labelled(scope, key) {
    const id = await /** @type {any} */ (this.page).evaluate(
      (/** @type {{scope: string, key: string}} */ a) => document.querySelector(`${a.scope} label[data-i18n="${a.key}"]`)?.getAttribute("for") ?? "",
      { scope, key },
    );
    if (!id) throw new Error(`${this.who}: no label ${key} in ${scope}`);
    return `[id="${id}"]`;
  }
}

/** @param {string} file */
function contentType(file) {
  const ext = path.extname(file);
  return (
    { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".json": "application/json", ".svg": "image/svg+xml", ".png": "image/png" }[ext] ??
    "application/octet-stream"
  );
}


/**
 * What a scenario needs of the main test to open a Chromium participant.
 * @typedef {object} ChromiumHarness
 * @property {(browser: import("playwright-core").Browser, viewport: {width: number, height: number}, locale?: string, base?: string) => Promise<import("playwright-core").BrowserContext>} newContext
 * @property {(page: ChromiumPage, who: string) => void} watchPage
 * @property {Map<string, ChromiumPage>} pages Chromium pages photographed on failure
 * @property {import("playwright-core").Browser | null} browser
 */

/**
 * A Chromium participant in a fresh context on `base`: camera and microphone granted,
 * instrumented like every page, watched for problems and photographed on failure; `init` (with
 * `arg`) runs in it before the page's own code where given.
 * @template A
 * @param {ChromiumHarness} h
 * @param {{who: string, viewport: {width: number, height: number}, base: string, locale?: string, init?: (arg: A) => void, arg?: A}} opts
 * @returns {Promise<Participant>}
 */
export async function chromiumParticipant(h, opts) {
  if (!h.browser) throw new Error("no Chromium");
  const context = await h.newContext(h.browser, opts.viewport, opts.locale ?? "en-GB", opts.base);
  await context.grantPermissions(["camera", "microphone"], { origin: opts.base });
  await context.addInitScript(instrumentPage);
  if (opts.init) await context.addInitScript(opts.init, /** @type {A} */ (opts.arg));
  const page = await context.newPage();
  h.watchPage(page, opts.who);
  h.pages.set(opts.who, page);
  return new Participant(opts.who, "chromium", page);
}

/** Starts Firefox ESR with fake devices, or says why it cannot reach the media server here. */
export async function launchFirefox() {
  if (FIREFOX_UNAVAILABLE) throw new Error(`Firefox cannot reach the media server here: ${FIREFOX_UNAVAILABLE}`);
  return puppeteer.launch({
    browser: "firefox",
    executablePath: FIREFOX,
    headless: true,
    acceptInsecureCerts: true,
    extraPrefsFirefox: FIREFOX_PREFS,
    timeout: 60_000,
    protocolTimeout: 120_000,
  });
}

/**
 * A Firefox page in its own browser context (user context), in `locale`, `viewport` sized,
 * instrumented like the Chromium pages; what it throws or logs that it must not goes to
 * `problems`.
 * @param {import("puppeteer-core").Browser} firefox
 * @param {{who: string, locale: string, viewport: {width: number, height: number}, base: string, problems: string[]}} opts
 * @returns {Promise<Participant>}
 */
export async function firefoxParticipant(firefox, opts) {
  const { who, problems } = opts;
  const context = await firefox.createBrowserContext();
  // BiDi's locale override: navigator.languages of this context only.
  await /** @type {any} */ (firefox).connection.send("emulation.setLocaleOverride", { locale: opts.locale, userContexts: [context.id] });
  const page = await context.newPage();
  await page.setViewport(opts.viewport);
  await page.evaluateOnNewDocument(instrumentPage);
  page.on("pageerror", (err) => {
    const text = err instanceof Error ? err.message : String(err);
    // Firefox's own notice when a page is closed or left while a WebSocket is still open (it
    // reaches puppeteer as a page error, but no script threw it): the scenarios close pages in
    // the middle of their connections.
    if (/^The connection to wss?:\/\/\S+ was interrupted while the page was loading\.$/.test(text)) return;
    problems.push(`${who}: uncaught ${text}`);
  });
  page.on("console", (msg) => {
    const text = msg.text();
    if (/hz1\.|v=0\r?\n|a=ice-pwd/.test(text)) problems.push(`${who}: console output contains a token or SDP`);
    if (/Content Security Policy/.test(text)) problems.push(`${who}: ${text.slice(0, 200)}`);
  });
  if (CLIENT_DIR) await serveClientFromDisk(page, opts.base);
  return new Participant(who, "firefox", page);
}

/**
 * The web client's files from CLIENT_DIR, as the Chromium contexts do (newContext).
 * @param {FirefoxPage} page
 * @param {string} base
 */
async function serveClientFromDisk(page, base) {
  const origin = new URL(base).origin;
  await page.setRequestInterception(true);
  page.on("request", async (req) => {
    const url = new URL(req.url());
    if (url.origin !== origin || !/^\/($|join$|code$|outcome$|js\/|css\/)/.test(url.pathname)) return req.continue();
    const named = /** @type {Record<string, string>} */ ({ "/": "index.html", "/join": "join.html", "/code": "code.html", "/outcome": "outcome.html" })[url.pathname];
    const resolved = path.resolve(CLIENT_DIR, named ?? url.pathname.slice(1));
    if (!resolved.startsWith(CLIENT_DIR + path.sep)) return req.respond({ status: 404, body: "" });
    try {
      return req.respond({ status: 200, contentType: contentType(resolved), body: await readFile(resolved) });
    } catch {
      return req.respond({ status: 404, body: "" });
    }
  });
}

/**
 * Closes a participant's browser context, whichever the engine.
 * @param {Participant} p
 */
export async function closeParticipant(p) {
  if (p.engine === "firefox") await /** @type {FirefoxPage} */ (p.page).browserContext().close().catch(() => undefined);
  else await /** @type {ChromiumPage} */ (p.page).context().close().catch(() => undefined);
}
