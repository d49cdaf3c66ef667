// ICE restart (issue 19), as a scenario of the browser test (consultation.test.mjs calls it
// once every page of the main consultation plays video).
//
// The patient's page (joined with `recordPeerConnections`, so the test can reach its peer
// connection) reports its ICE `failed`, as Chromium does when the path dies (Wi-Fi to 4G). The
// page asks for an ICE restart over signaling, the server offers fresh ICE credentials,
// Chromium restarts ICE on the same peer connection, and video carries on both ways: the
// patient has the same participant id and still the same peer connection (no rejoin), and the
// doctor's tile of the patient showed "Reconnecting" meanwhile and no longer does.
//
// Here the failure is reported, not caused, so that the restart is checked inside the main
// consultation with three pages; everything after the report is real (the request, the offer,
// ICE on the browser and the server, the media). A real path failure, noticed by the browser
// itself, is cap-scenario.mjs's second check: the patient's path crosses the impairment proxy,
// which drops everything for 20 s, in Chromium and in Firefox ESR.

import assert from "node:assert/strict";

/**
 * @typedef {import("playwright-core").Page} Page
 * @typedef {object} ScenarioContext
 * @property {(name: string, opts: {scenario?: true | string}, fn: () => Promise<void>) => Promise<void>} check
 * @property {(page: Page, name: string) => Promise<void>} snap
 * @property {Page} doctor in the consultation
 * @property {Page} patient in the consultation, its page opened with `recordPeerConnections`
 * @property {Page[]} everyone every page in the consultation
 * @property {(page: Page, expectedRemotes: number) => Promise<void>} waitForPlayingRemotes
 * @property {number} timeout how long to wait for something to show
 */

/**
 * Keeps every RTCPeerConnection the page makes in `window.__pcs`: an init script (it runs
 * before the page's own code).
 */
export function recordPeerConnections() {
  const pcs = /** @type {RTCPeerConnection[]} */ ([]);
  const Original = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Original {
    /** @param {RTCConfiguration} [config] */
    constructor(config) {
      super(config);
      pcs.push(this);
    }
  };
  Object.assign(window, { __pcs: pcs });
}

/** @param {ScenarioContext} ctx */
export async function iceRestartScenario(ctx) {
  const { check, snap, doctor, patient, everyone, waitForPlayingRemotes, timeout } = ctx;
  await check("the patient's path fails: ICE restarts over signaling, video carries on, no rejoin; the doctor sees Reconnecting meanwhile", { scenario: true }, async () => {
    const patientId = await patient.$eval("#tiles .tile.tile-local", (t) => /** @type {HTMLElement} */ (t).dataset.participantId ?? "");
    assert.ok(patientId);
    // The doctor's page notes whether the patient's Reconnecting badge ever shows.
    await doctor.evaluate((id) => {
      const badge = document.querySelector(`#tiles .tile[data-participant-id="${id}"] .badge-reconnecting`);
      if (!(badge instanceof HTMLElement)) throw new Error("no reconnecting badge on the patient's tile");
      // How many times it went from hidden to shown.
      const seen = { shown: false, times: 0 };
      let hidden = badge.hidden;
      Object.assign(window, { __reconnecting: seen });
      new MutationObserver(() => {
        if (hidden && !badge.hidden) seen.times += 1;
        hidden = badge.hidden;
        seen.shown = seen.times > 0;
      }).observe(badge, { attributes: true, attributeFilter: ["hidden"] });
    }, patientId);
    const before = await patient.evaluate(() => {
      const pcs = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__pcs);
      const pc = pcs[pcs.length - 1];
      const ufrag = /a=ice-ufrag:(\S+)/.exec(pc.remoteDescription?.sdp ?? "")?.[1] ?? "";
      Object.assign(window, { __firstUfrag: ufrag });
      return { count: pcs.length, ufrag, state: pc.iceConnectionState };
    });
    assert.ok(before.count >= 1, "the page's peer connection is recorded");
    assert.ok(before.ufrag, "the server's ufrag");
    assert.ok(["connected", "completed"].includes(before.state), before.state);

    // ICE reports `failed` to the page, as when the path is gone.
    await patient.evaluate(() => {
      const pcs = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__pcs);
      const pc = pcs[pcs.length - 1];
      Object.defineProperty(pc, "iceConnectionState", { get: () => "failed", configurable: true });
      pc.dispatchEvent(new Event("iceconnectionstatechange"));
      delete (/** @type {any} */ (pc).iceConnectionState);
    });

    // The server's restart offer was applied (new ufrag) and ICE is up again on it.
    await patient.waitForFunction(
      () => {
        const w = /** @type {any} */ (window);
        const pc = /** @type {RTCPeerConnection} */ (w.__pcs[w.__pcs.length - 1]);
        const ufrag = /a=ice-ufrag:(\S+)/.exec(pc.remoteDescription?.sdp ?? "")?.[1];
        return ufrag !== undefined && ufrag !== w.__firstUfrag && ["connected", "completed"].includes(pc.iceConnectionState);
      },
      undefined,
      { timeout, polling: 100 },
    );
    // The doctor saw the patient reconnecting, and now connected again.
    await doctor.waitForFunction(
      (id) => {
        const badge = document.querySelector(`#tiles .tile[data-participant-id="${id}"] .badge-reconnecting`);
        return /** @type {any} */ (window).__reconnecting.shown && badge instanceof HTMLElement && badge.hidden;
      },
      patientId,
      { timeout, polling: 100 },
    );
    for (const page of everyone) await waitForPlayingRemotes(page, everyone.length - 1);
    const after = await patient.evaluate(() => /** @type {any} */ (window).__pcs.length);
    assert.equal(after, before.count, "the same peer connection: no rejoin");
    assert.equal(await patient.$eval("#tiles .tile.tile-local", (t) => /** @type {HTMLElement} */ (t).dataset.participantId), patientId);
    assert.equal(await patient.evaluate(() => document.body.dataset.state), "in-room");
    // One restart was enough: the page does not ask again once media flows (its first retry
    // would come 5 s after asking).
    await patient.waitForTimeout(6000);
    assert.equal(await doctor.evaluate(() => /** @type {any} */ (window).__reconnecting.times), 1, "the patient was shown reconnecting once");
    assert.equal(await patient.evaluate(() => /** @type {any} */ (window).__pcs.length), before.count, "no rejoin later either");
    await snap(doctor, "icerestart-doctor");
  });
}
