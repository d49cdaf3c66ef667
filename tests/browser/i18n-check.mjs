// Static checks of the web client's message catalogue (web-client/js/i18n.js), run by
// scripts/test-browser.sh before any browser starts (and on its own: `node i18n-check.mjs`).
// It fails when:
//  1. a key is in one language's catalogue and not the other's, or their {parameters} differ;
//  2. a key is used in the client (t/tr/trAttr/el's i18n options, data-i18n* attributes, any
//     quoted "section.name" string) but absent from the catalogue;
//  3. a catalogue key is never used (dynamic keys count by prefix: `error.${code}`);
//  4. a code the server can send (the signaling ErrorCode enum, the HTTP error codes listed in
//     docs/openapi.json) has no `error.<code>` text;
//  5. a visible string is written into the page outside the catalogue: a literal with letters
//     assigned to textContent/innerText/title/placeholder/ariaLabel, given to setAttribute for
//     aria-label/title/placeholder/alt, to el's `text:` option, to alert/confirm/prompt; or
//     HTML text and those attributes without a data-i18n mark. SCAN_ONLY lists the files that
//     are converted; the rest are reported as not yet converted (and make the check fail once
//     they are listed).
//
// Prints "i18n: ok" or the problems, one a line; exits 1 on any problem.

import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLIENT = join(ROOT, "web-client");
const JS = join(CLIENT, "js");

/** Files whose literals are not checked yet (rule 5): none left; a file listed here must still carry some. */
const NOT_YET_CONVERTED = new Set([]);

/**
 * Literals that may be shown as they are: no words in either language. Each with its reason.
 * @type {Map<string, string>}
 */
const ALLOWED_LITERALS = new Map([
  ["123 456 789", "the code field's example: digits, the same in every language"],
  ["Request failed (${res.status}).", "an ApiError's message, for developers: the client shows the code's catalogue text"],
]);

const problems = [];
/** @param {string} text */
const fail = (text) => problems.push(text);

// ---- 1. both catalogues, same keys and parameters ------------------------------------------------
const en = (await import(pathToFileURL(join(JS, "locales", "en.js")).href)).default;
const zh = (await import(pathToFileURL(join(JS, "locales", "zh-CN.js")).href)).default;
/** @param {string} s */
const paramsOf = (s) => [...s.matchAll(/\{([a-zA-Z0-9_]+)\}/g)].map((m) => m[1]).sort().join(",");
for (const key of Object.keys(en)) {
  if (!Object.hasOwn(zh, key)) fail(`catalogue: "${key}" is in en.js but not in zh-CN.js`);
  else if (paramsOf(en[key]) !== paramsOf(zh[key])) fail(`catalogue: "${key}" has parameters {${paramsOf(en[key])}} in en, {${paramsOf(zh[key])}} in zh-CN`);
  if (typeof en[key] !== "string" || en[key] === "") fail(`catalogue: "${key}" is empty in en.js`);
}
for (const key of Object.keys(zh)) {
  if (!Object.hasOwn(en, key)) fail(`catalogue: "${key}" is in zh-CN.js but not in en.js`);
  if (typeof zh[key] !== "string" || zh[key] === "") fail(`catalogue: "${key}" is empty in zh-CN.js`);
}
const keys = new Set(Object.keys(en));

// ---- the client's files ---------------------------------------------------------------------------
/** @param {string} dir @returns {string[]} */
function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const path = join(dir, d.name);
    if (d.isDirectory()) return d.name === "locales" ? [] : files(path);
    return /\.(js|html)$/.test(d.name) ? [path] : [];
  });
}
const sources = files(CLIENT).map((path) => ({ path, name: relative(CLIENT, path), text: readFileSync(path, "utf8") }));

// ---- 2 and 3. keys used and unused -------------------------------------------------------------------
const KEY_SHAPE = /^[a-z][a-z0-9_]*(\.[a-zA-Z0-9_-]+)+$/;
const used = new Set();
const prefixes = new Set();
const sections = new Set([...keys].map((k) => k.split(".")[0]));
for (const { name, text } of sources) {
  // Any quoted string shaped like a key is a use of it (keys travel through tables and options);
  // one in a catalogue section ("queue.…") that is not a key is a typo.
  for (const m of text.matchAll(/["'`]([a-z][a-z0-9_]*(?:\.[a-zA-Z0-9_-]+)+)["'`]/g)) {
    const key = m[1];
    if (keys.has(key)) used.add(key);
    else if (sections.has(key.split(".")[0]) && !name.endsWith(".html")) fail(`${name}: uses "${key}", which is not in the catalogue`);
  }
  // Keys given where only keys go must exist.
  const strict = [
    ...text.matchAll(/\b(?:t|tr|hasKey)\(\s*(?:[a-zA-Z_.]+,\s*)?"([^"]+)"/g),
    ...text.matchAll(/\btrAttr\([^,]+,\s*"[^"]+",\s*"([^"]+)"/g),
    ...text.matchAll(/\b(?:i18n|label|title|key):\s*"([^"]+)"/g),
    ...text.matchAll(/data-i18n(?:-[a-z-]+)?="([^"]+)"/g),
  ];
  for (const m of strict) {
    if (!KEY_SHAPE.test(m[1])) continue;
    if (!keys.has(m[1])) fail(`${name}: uses "${m[1]}", which is not in the catalogue`);
  }
  // Keys made at run time: `error.${code}` uses every key under `error.`.
  for (const m of text.matchAll(/`([a-z][a-z0-9_]*(?:\.[a-zA-Z0-9_-]+)*\.)\$\{/g)) prefixes.add(m[1]);
}
for (const key of keys) {
  if (used.has(key)) continue;
  if ([...prefixes].some((p) => key.startsWith(p))) continue;
  fail(`catalogue: "${key}" is never used`);
}

// ---- 4. every error code the server can send --------------------------------------------------------
const protocol = readFileSync(join(ROOT, "src", "signaling", "protocol.rs"), "utf8");
const enumBody = protocol.match(/pub enum ErrorCode \{([\s\S]*?)\n\}/)?.[1] ?? "";
const signalingCodes = [...enumBody.matchAll(/^\s*([A-Z][A-Za-z]+),/gm)].map((m) => m[1].replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase()));
if (signalingCodes.length < 20) fail(`server codes: found only ${signalingCodes.length} signaling error codes in src/signaling/protocol.rs`);
const openapi = JSON.parse(readFileSync(join(ROOT, "docs", "openapi.json"), "utf8"));
const httpCodes = new Set(["internal"]);
(function walk(node, path) {
  if (Array.isArray(node)) node.forEach((n) => walk(n, path));
  else if (node && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      if (k === "enum" && path.slice(-3).includes("code")) v.forEach((c) => httpCodes.add(c));
      walk(v, [...path, k]);
    }
  }
})(openapi, []);
if (httpCodes.size < 20) fail(`server codes: found only ${httpCodes.size} HTTP error codes in docs/openapi.json`);
for (const code of new Set([...signalingCodes, ...httpCodes])) {
  if (!keys.has(`error.${code}`)) fail(`server codes: "${code}" has no text (error.${code}) in the catalogue`);
}

// ---- 5. visible literals outside the catalogue -------------------------------------------------------
const WORDS = /[A-Za-z]{2,}|[\u4e00-\u9fff]/;
/** @param {string} literal */
const visible = (literal) =>
  WORDS.test(literal.replace(/\$\{[^}]*\}/g, "")) && !ALLOWED_LITERALS.has(literal) && !keys.has(literal);
// Beyond the sinks: Chinese is never a developer's string, and an English sentence (three words
// or more, starting with a capital) almost never is, except in a thrown Error's message (for
// developers, never shown: errors.js shows codes). Catches texts kept in tables (TEXT = {...}).
const SENTENCE = /^[A-Z][a-z']*(?: [A-Za-z'’,:;.…()-]+){2,}/;
const CJK = /[\u4e00-\u9fff]/;
const LITERAL = String.raw`("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|` + "`(?:[^`\\\\]|\\\\.)*`)";
const JS_SINKS = [
  new RegExp(String.raw`\.(?:textContent|innerText|innerHTML|title|placeholder|ariaLabel|alt)\s*=\s*` + LITERAL, "g"),
  new RegExp(String.raw`setAttribute\(\s*"(?:aria-label|title|placeholder|alt)"\s*,\s*` + LITERAL, "g"),
  new RegExp(String.raw`\btext:\s*` + LITERAL, "g"),
  new RegExp(String.raw`\b(?:alert|confirm|prompt)\(\s*` + LITERAL, "g"),
  new RegExp(String.raw`["'](?:aria-label|title|placeholder|alt)["']:\s*` + LITERAL, "g"),
];
const pending = [];
for (const { name, text } of sources) {
  /** @type {string[]} */
  const found = [];
  if (name.endsWith(".js")) {
    const code = text.replace(/^\s*(\/\/.*|\*.*|\/\*\*.*)$/gm, "");
    for (const sink of JS_SINKS) for (const m of code.matchAll(sink)) if (visible(m[1].slice(1, -1))) found.push(m[0]);
    for (const line of code.split("\n")) {
      if (/^\s*import\b|new (?:Api)?Error\(|throw new|console\.(?:log|warn|error)/.test(line)) continue;
      for (const m of line.matchAll(new RegExp(LITERAL, "g"))) {
        const literal = m[1].slice(1, -1);
        if (ALLOWED_LITERALS.has(literal) || keys.has(literal)) continue;
        if (CJK.test(literal) || SENTENCE.test(literal)) found.push(m[1]);
      }
    }
  } else {
    for (const m of text.matchAll(/<([a-z0-9]+)([^>]*)>([^<]*)</g)) {
      const [, tag, attrs, body] = m;
      if (tag === "script" || tag === "style") continue;
      if (visible(body.trim()) && !/\bdata-i18n=/.test(attrs)) found.push(`<${tag}> ${body.trim()}`);
      for (const a of attrs.matchAll(/\b(aria-label|title|placeholder|alt)="([^"]*)"/g)) {
        if (visible(a[2]) && !new RegExp(`data-i18n-${a[1]}=`).test(attrs)) found.push(`${a[1]}="${a[2]}"`);
      }
    }
  }
  if (NOT_YET_CONVERTED.has(name)) {
    if (found.length) pending.push(`${name} (${found.length})`);
    else fail(`${name}: has no visible literal left: take it off NOT_YET_CONVERTED in i18n-check.mjs`);
    continue;
  }
  for (const f of found) fail(`${name}: visible text outside the catalogue: ${f.slice(0, 120)}`);
}

if (pending.length) console.log(`i18n: not yet converted (literals in English only): ${pending.join(", ")}`);
if (problems.length) {
  for (const p of problems) console.log(`i18n: ${p}`);
  console.log(`i18n: ${problems.length} problem(s)`);
  process.exit(1);
}
console.log(`i18n: ok (${keys.size} keys in zh-CN and en; ${signalingCodes.length + httpCodes.size} server codes covered)`);
