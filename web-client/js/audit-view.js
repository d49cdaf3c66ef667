// The audit trail for supervisors and regulators in the console: verify the hash chain, export
// every entry as JSON Lines, and page through the newest entries. Read-only; each of these reads
// is itself recorded in the trail.

import * as api from "./api.js";
import { el } from "./dom.js";

const PAGE = 200;

/**
 * @param {HTMLElement} root
 * @param {(err: unknown) => string} explain
 */
export async function showAudit(root, explain) {
  root.hidden = false;
  const result = el("p", { className: "audit-result", attrs: { role: "status" } });
  const verify = el("button", { className: "btn btn-primary", text: "Verify the chain", attrs: { type: "button" } });
  const exportButton = el("button", { className: "btn", text: "Export (JSON Lines)", attrs: { type: "button" } });
  const table = el("table", { className: "audit-table" });
  root.replaceChildren(
    el("h2", { text: "Audit trail" }),
    el("div", { className: "actions" }, verify, exportButton),
    result,
    table,
  );
  verify.addEventListener("click", async () => {
    verify.disabled = true;
    try {
      const v = await api.auditVerify();
      root.dataset.verified = v.first_broken ? "broken" : "intact";
      result.textContent = v.first_broken
        ? `BROKEN at entry ${v.first_broken.seq} (${v.first_broken.kind.replace("_", " ")}); ${v.entries} entries checked.`
        : `Intact: ${v.entries} entries. Head: entry ${v.head_seq}, ${v.head_hash}. Keep the head elsewhere to detect truncation later.`;
    } catch (err) {
      result.textContent = explain(err);
    } finally {
      verify.disabled = false;
    }
  });
  exportButton.addEventListener("click", () => {
    api.auditExport().catch((err) => {
      result.textContent = explain(err);
    });
  });
  try {
    const entries = await api.auditEntries(PAGE);
    table.replaceChildren(
      el("thead", {}, el("tr", {}, ...["#", "time", "action", "outcome", "actor", "role", "room", "object"].map((h) => el("th", { text: h })))),
      el(
        "tbody",
        {},
        ...entries.map((e) =>
          el(
            "tr",
            { className: e.outcome === "ok" ? "" : "audit-refused" },
            el("td", { text: String(e.seq) }),
            el("td", { text: new Date(e.at_ms).toLocaleString() }),
            el("td", { text: e.action }),
            el("td", { text: e.outcome }),
            el("td", { text: e.actor }),
            el("td", { text: e.actor_role }),
            el("td", { text: e.room_id }),
            el("td", { text: e.object_id ? `${e.object_type} ${e.object_id}` : "" }),
          ),
        ),
      ),
    );
  } catch (err) {
    result.textContent = explain(err);
  }
}
