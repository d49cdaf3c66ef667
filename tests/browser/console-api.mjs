// The console's API as a scenario calls it: from a signed-in console page, with that page's
// session token (what the console's own code would send).

import assert from "node:assert/strict";

/** @typedef {import("playwright-core").Page} Page */

/**
 * An API call from a signed-in console page, with its session token.
 * @param {Page} page
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
export async function apiFrom(page, method, path, body) {
  const answer = await page.evaluate(
    async ({ method, path, body }) => {
      const token = sessionStorage.getItem("huizhen.console.session");
      const res = await fetch(path, {
        method,
        headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, json: await res.json().catch(() => null) };
    },
    { method, path, body },
  );
  assert.ok(answer.status >= 200 && answer.status < 300, `${method} ${path}: ${answer.status} ${JSON.stringify(answer.json)}`);
  return answer.json;
}

/**
 * Issues `count` prescriptions in consultation `roomId` as the clinician signed in on `page`
 * (their console): takes their seat over signaling, as the room's page does, for the
 * participant's access token, and signs each with their password. The record ids, in order.
 * @param {Page} page
 * @param {string} roomId
 * @param {number} count
 * @param {string} password
 * @param {string} label names the medications (`${label} 1`, …)
 * @returns {Promise<string[]>}
 */
export async function issuePrescriptions(page, roomId, count, password, label) {
  const entry = await apiFrom(page, "POST", `/api/v1/rooms/${roomId}/enter`);
  const ids = await page.evaluate(
    async ({ token, roomId, count, password, label }) => {
      const ws = new WebSocket(`${location.protocol === "http:" ? "ws:" : "wss:"}//${location.host}/ws`);
      /** @type {string} */
      const access = await new Promise((resolve, reject) => {
        ws.onopen = () => ws.send(JSON.stringify({ type: "join", v: 1, token, name: "", publish: { audio: false, video: false } }));
        ws.onmessage = (ev) => {
          const msg = JSON.parse(ev.data);
          if (msg.type === "joined") resolve(msg.access_token);
          else if (msg.type === "error") reject(new Error(`join refused: ${msg.code}`));
        };
        ws.onerror = () => reject(new Error("signaling failed"));
      });
      const made = [];
      for (let i = 1; i <= count; i++) {
        const res = await fetch(`/api/v1/rooms/${roomId}/records`, {
          method: "POST",
          headers: { Authorization: `Bearer ${access}`, "Content-Type": "application/json" },
          body: JSON.stringify({
            kind: "prescription",
            body: { items: [{ medication: `${label} ${i}`, dose: "1 tablet", route: "oral", frequency: "once daily", duration: "7 days" }] },
            issue: true,
            password,
          }),
        });
        const json = await res.json();
        if (res.status !== 201) throw new Error(`prescription ${i}: ${res.status} ${JSON.stringify(json)}`);
        made.push(json.id);
      }
      ws.close();
      return made;
    },
    { token: entry.token, roomId, count, password, label },
  );
  return ids;
}
