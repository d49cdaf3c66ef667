// Accessibility checks with axe-core (the npm package, run inside the page): a screen passes
// when axe finds no violation of "serious" or "critical" impact. Called by the browser test on
// every screen whose text it checks against the catalogue, in the language that screen is in,
// so each main screen is checked in zh-CN and in English.
//
// axe is evaluated into the page through the driver rather than added as a <script>: the
// client's Content-Security-Policy refuses inline scripts, and the test must not weaken it.

import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
/** @type {Promise<string> | null} */
let source = null;

/** The impacts that fail a screen. */
const FAILING = new Set(["serious", "critical"]);

/**
 * @typedef {object} Violation
 * @property {string} id the rule
 * @property {string} impact
 * @property {string} help
 * @property {string[]} targets selectors of the first offending elements
 */

/**
 * The serious and critical violations on the page as it is now.
 * @param {import("playwright-core").Page} page
 * @returns {Promise<Violation[]>}
 */
export async function axeViolations(page) {
  source ??= readFile(require.resolve("axe-core/axe.min.js"), "utf8");
  const axe = await source;
  // The source as a script of its own (a string is run as it is, through the driver): an eval
  // inside the page would be refused by the CSP.
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(axe);
  const found = await page.evaluate(async () => {
    const results = await /** @type {any} */ (window).axe.run(document, { resultTypes: ["violations"] });
    return results.violations.map((/** @type {any} */ v) => ({
      id: v.id,
      impact: v.impact ?? "",
      help: v.help,
      targets: v.nodes.slice(0, 3).map((/** @type {any} */ n) => String(n.target)),
    }));
  });
  return found.filter((v) => FAILING.has(v.impact));
}
