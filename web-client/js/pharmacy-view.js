// The pharmacist's screen in the console: issued prescriptions to review, reviewed ones to
// dispense, and a rejection with a reason. Each step is recorded with the pharmacist's account.

import * as api from "./api.js";
import { el } from "./dom.js";
import { signatureText } from "./records-panel.js";

/**
 * @param {HTMLElement} root
 * @param {(err: unknown) => string} explain
 */
export async function showPharmacy(root, explain) {
  root.hidden = false;
  const status = el("p", { className: "hint", attrs: { role: "status" } });
  const lists = el("div");
  root.replaceChildren(el("h2", { text: "Prescriptions" }), status, lists);
  const render = async () => {
    try {
      const [issued, reviewed] = await Promise.all([api.prescriptions("issued"), api.prescriptions("reviewed")]);
      lists.replaceChildren(
        section("To review", issued, ["review", "reject"]),
        section("To dispense", reviewed, ["dispense", "reject"]),
      );
    } catch (err) {
      status.textContent = explain(err);
    }
  };
  /**
   * @param {string} title
   * @param {import("./protocol.js").RecordInfo[]} items
   * @param {("review" | "dispense" | "reject")[]} actions
   */
  const section = (title, items, actions) =>
    el(
      "section",
      { className: "rx-queue" },
      el("h3", { text: `${title} (${items.length})` }),
      el(
        "ul",
        { className: "summary-list" },
        ...items.map((r) => {
          const note = el("input", { className: "rx-note", attrs: { type: "text", maxlength: "1000", placeholder: "Note (optional)", "aria-label": "Note" } });
          const buttons = actions.map((action) => {
            const b = el("button", { className: action === "reject" ? "btn btn-danger" : "btn btn-primary", text: action[0].toUpperCase() + action.slice(1), attrs: { type: "button", "data-action": action } });
            b.addEventListener("click", async () => {
              b.disabled = true;
              try {
                await api.pharmacyAction(r.id, action, note.value.trim());
                status.textContent = `Prescription ${action === "review" ? "reviewed" : action === "dispense" ? "dispensed" : "rejected"}.`;
                await render();
              } catch (err) {
                status.textContent = explain(err);
                b.disabled = false;
              }
            });
            return b;
          });
          const items = Array.isArray(r.body.items) ? r.body.items : [];
          return el(
            "li",
            { className: "rx-item", attrs: { "data-record-id": r.id } },
            el("strong", { text: `${r.author_name} · ${new Date(r.created_at_ms).toLocaleString()}` }),
            el("pre", { className: "record-body", text: items.map((/** @type {any} */ i) => `${i.medication}: ${i.dose}, ${i.route}, ${i.frequency}, ${i.duration}`).join("\n") }),
            el("p", { className: "record-signature", text: r.signature ? signatureText(r.signature) : "Not signed" }),
            note,
            el("div", { className: "actions" }, ...buttons),
          );
        }),
      ),
    );
  await render();
}
