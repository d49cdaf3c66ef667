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
