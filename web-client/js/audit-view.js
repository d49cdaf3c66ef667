// The audit trail for supervisors and regulators in the console: verify the hash chain, export
// every entry as JSON Lines, and page through the newest entries. Read-only; each of these reads
// is itself recorded in the trail.

import * as api from "./api.js";
import { el, roleKey } from "./dom.js";
import { hasKey, tr } from "./i18n.js";

/** @typedef {import("./i18n.js").MessageKey} MessageKey */

const PAGE = 200;

/**
 * A recorded code in words where the catalogue has them (a code from a newer server as it is).
 * @param {MessageKey} key
 * @param {string} code
 * @param {boolean} [withCode] show the code beside the words
 */
function codeCell(key, code, withCode = true) {
  if (!hasKey(key)) return el("td", {}, el("code", { user: code }));
  const td = el("td", {}, el("span", { i18n: key }));
  if (withCode) td.append(" ", el("code", { className: "audit-code", user: code }));
  td.dataset.code = code;
  return td;
}

/**
 * A room's role (doctor, patient, guest…) or, for those who join no room, an account's
 * (pharmacist, supervisor, administrator), in words; one neither knows, as recorded.
 * @param {string | null} role an account's or a room's role, as recorded
 */
function roleCell(role) {
  const account = /** @type {MessageKey} */ (`admin.role.${role}`);
  const key = role ? (roleKey(role) ?? (hasKey(account) ? account : null)) : null;
  return key ? el("td", { i18n: key }) : el("td", { user: role ?? "" });
}

/** @type {import("./i18n.js").MessageKey[]} */
const AUDIT_COLUMNS = ["audit.col.time", "audit.col.action", "audit.col.outcome", "audit.col.actor", "audit.col.role", "audit.col.room", "audit.col.object"];

/**
 * @param {HTMLElement} root
 * @param {(err: unknown) => import("./i18n.js").MessageKey} explain the catalogue's words for a failure
 */
export async function showAudit(root, explain) {
  root.hidden = false;
  const result = el("p", { className: "audit-result", attrs: { role: "status" } });
  const verify = el("button", { className: "btn btn-primary", i18n: "audit.verify", attrs: { type: "button" } });
  const exportButton = el("button", { className: "btn", i18n: "audit.export", attrs: { type: "button" } });
  const table = el("table", { className: "audit-table" });
  // The table scrolls sideways on narrow screens: its frame takes the keyboard's focus, so the
  // rows can be scrolled without a mouse, and is named by the heading.
  const frame = el("div", { className: "audit-scroll", attrs: { tabindex: "0", role: "region", "aria-labelledby": "audit-title" } }, table);
  root.replaceChildren(
    el("h2", { i18n: "audit.title", attrs: { id: "audit-title" } }),
    el("div", { className: "actions" }, verify, exportButton),
    result,
    frame,
  );
  verify.addEventListener("click", async () => {
    verify.disabled = true;
    try {
      const v = await api.auditVerify();
      root.dataset.verified = v.first_broken ? "broken" : "intact";
      if (v.first_broken) tr(result, "audit.broken", { seq: String(v.first_broken.seq), kind: v.first_broken.kind, entries: v.entries });
      else tr(result, "audit.intact", { entries: v.entries, seq: String(v.head_seq), hash: v.head_hash });
    } catch (err) {
      tr(result, explain(err));
    } finally {
      verify.disabled = false;
    }
  });
  exportButton.addEventListener("click", () => {
    api.auditExport().catch((err) => {
      tr(result, explain(err));
    });
  });
  try {
    const entries = await api.auditEntries(PAGE);
    table.replaceChildren(
      el("thead", {}, el("tr", {}, el("th", { text: "#" }), ...AUDIT_COLUMNS.map((h) => el("th", { i18n: h })))),
      el(
        "tbody",
        {},
        ...entries.map((e) =>
          el(
            "tr",
            { className: e.outcome === "ok" ? "" : "audit-refused" },
            el("td", { text: String(e.seq) }),
            el("td", { time: e.at_ms, timeStyle: "datetime" }),
            // Actions, outcomes and roles in words, each action with its code as recorded (what
            // the export and a regulator's tools name); ids as recorded.
            codeCell(/** @type {MessageKey} */ (`audit.action.${e.action}`), e.action),
            codeCell(/** @type {MessageKey} */ (`audit.outcome.${e.outcome}`), e.outcome, false),
            // The server itself (a scheduled step, a start) in words; everyone else by id.
            e.actor === "system" ? el("td", { i18n: "audit.actor.system" }) : el("td", { user: e.actor }),
            roleCell(e.actor_role),
            el("td", { user: e.room_id }),
            el("td", { user: e.object_id ? `${e.object_type} ${e.object_id}` : "" }),
          ),
        ),
      ),
    );
  } catch (err) {
    tr(result, explain(err));
  }
}
