// The pharmacist's screen in the console: issued prescriptions to review, reviewed ones to
// dispense, and a rejection with a reason. Each step is recorded with the pharmacist's account.
// Each queue shows how many it holds in all and its oldest first, a page at a time
// (`api.PRESCRIPTIONS_PAGE`; "Show more" while more follow). DOM contract: `section[data-queue]`
// with li.rx-item (`data-record-id`), p.rx-shown ("Showing n of total", hidden on the last
// page) and `button[data-queue]` ("Show more", likewise).

import * as api from "./api.js";
import { el } from "./dom.js";
import { tr, trAttr } from "./i18n.js";
import { signatureText } from "./records-panel.js";

/** @typedef {import("./i18n.js").MessageKey} MessageKey */

/** @type {Record<"review" | "dispense" | "reject", {button: MessageKey, done: MessageKey}>} */
const ACTION = {
  review: { button: "pharmacy.review", done: "pharmacy.reviewed" },
  dispense: { button: "pharmacy.dispense", done: "pharmacy.dispensed" },
  reject: { button: "pharmacy.reject", done: "pharmacy.rejected" },
};

/**
 * @param {HTMLElement} root
 * @param {(err: unknown) => MessageKey} explain the catalogue's words for a failure
 */
export async function showPharmacy(root, explain) {
  root.hidden = false;
  const status = el("p", { className: "hint", attrs: { role: "status" } });
  const lists = el("div");
  root.replaceChildren(el("h2", { i18n: "outcome.prescriptions" }), status, lists);
  const render = async () => {
    try {
      const [issued, reviewed] = await Promise.all([api.prescriptions("issued"), api.prescriptions("reviewed")]);
      lists.replaceChildren(section("issued", "pharmacy.to_review", issued, ["review", "reject"]), section("reviewed", "pharmacy.to_dispense", reviewed, ["dispense", "reject"]));
    } catch (err) {
      tr(status, explain(err));
    }
  };
  /**
   * A queue: its first page, its count in all, and "Show more" while pages follow.
   * @param {"issued" | "reviewed"} which
   * @param {MessageKey} title
   * @param {{prescriptions: import("./protocol.js").RecordInfo[], total: number, next: string | null}} page
   * @param {("review" | "dispense" | "reject")[]} actions
   */
  const section = (which, title, page, actions) => {
    const list = el("ul", { className: "summary-list" }, ...page.prescriptions.map((r) => item(r, actions)));
    const more = el("button", { className: "btn btn-small", i18n: "pharmacy.more", attrs: { type: "button", "data-queue": which } });
    const shown = el("p", { className: "hint rx-shown" });
    let next = page.next;
    const showCount = () => {
      more.hidden = next === null;
      shown.hidden = next === null;
      tr(shown, "pharmacy.shown", { n: list.children.length, total: page.total });
    };
    more.addEventListener("click", async () => {
      more.disabled = true;
      try {
        const further = await api.prescriptions(which, next);
        list.append(...further.prescriptions.map((r) => item(r, actions)));
        next = further.next;
        showCount();
      } catch (err) {
        tr(status, explain(err));
      } finally {
        more.disabled = false;
      }
    });
    showCount();
    return el(
      "section",
      { className: "rx-queue", attrs: { "data-queue": which } },
      el("h3", { i18n: "pharmacy.section", params: { title: { key: title }, n: page.total } }),
      list,
      shown,
      el("div", { className: "actions" }, more),
    );
  };
  /**
   * @param {import("./protocol.js").RecordInfo} r
   * @param {("review" | "dispense" | "reject")[]} actions
   */
  const item = (r, actions) => {
    const note = el("input", { className: "rx-note", label: "records.note", attrs: { type: "text", maxlength: "1000" } });
    trAttr(note, "placeholder", "pharmacy.note_placeholder");
    const buttons = actions.map((action) => {
      const b = el("button", { className: action === "reject" ? "btn btn-danger" : "btn btn-primary", i18n: ACTION[action].button, attrs: { type: "button", "data-action": action } });
      b.addEventListener("click", async () => {
        b.disabled = true;
        try {
          await api.pharmacyAction(r.id, action, note.value.trim());
          tr(status, ACTION[action].done);
          await render();
        } catch (err) {
          tr(status, explain(err));
          b.disabled = false;
        }
      });
      return b;
    });
    const items = Array.isArray(r.body.items) ? r.body.items : [];
    return el(
      "li",
      { className: "rx-item", attrs: { "data-record-id": r.id } },
      el("strong", { i18n: "pharmacy.head", params: { name: r.author_name, at: { at: r.created_at_ms, style: "datetime" } } }),
      el("pre", { className: "record-body", user: items.map((/** @type {any} */ i) => `${i.medication}: ${i.dose}, ${i.route}, ${i.frequency}, ${i.duration}`).join("\n") }),
      r.signature
        ? el("p", { className: "record-signature", i18n: signatureText(r.signature).key, params: signatureText(r.signature).params })
        : el("p", { className: "record-signature", i18n: "pharmacy.not_signed" }),
      note,
      el("div", { className: "actions" }, ...buttons),
    );
  };
  await render();
}
