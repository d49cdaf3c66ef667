// The consultation summary in the console, after (or during) the call: who took part and when,
// the documents, the records with every step, the chat; with the FHIR and PDF exports. Read-only:
// nothing here changes the record.

import * as api from "./api.js";
import { el, roleParam } from "./dom.js";
import { tr } from "./i18n.js";
import { KIND_LABEL, recordStatusParam, recordText, signatureText } from "./records-panel.js";

/**
 * A time as a message parameter (formatted in the page's language).
 * @param {number} ms
 * @returns {import("./i18n.js").Param}
 */
function at(ms) {
  return { at: ms, style: "datetime" };
}

/**
 * Renders the summary of `roomId` into `root`.
 * @param {HTMLElement} root
 * @param {string} roomId
 * @param {(err: unknown) => import("./i18n.js").MessageKey} explain the catalogue's words for a failure
 */
export async function showSummary(root, roomId, explain) {
  root.hidden = false;
  root.replaceChildren(el("p", { className: "hint", i18n: "summary.loading" }));
  /** @type {any} */
  let s;
  try {
    s = await api.summary(roomId);
  } catch (err) {
    root.replaceChildren(el("p", { className: "form-error", i18n: explain(err) }));
    return;
  }
  root.dataset.roomId = roomId;
  const error = el("p", { className: "form-error", attrs: { role: "alert" } });
  error.hidden = true;
  /** @param {"fhir" | "pdf"} format @param {import("./i18n.js").MessageKey} label */
  const exportButton = (format, label) => {
    const b = el("button", { className: "btn", i18n: label, attrs: { type: "button" } });
    b.addEventListener("click", () => {
      api.downloadExport(roomId, format).catch((err) => {
        tr(error, explain(err));
        error.hidden = false;
      });
    });
    return b;
  };
  const close = el("button", { className: "btn btn-small", i18n: "common.close", attrs: { type: "button" } });
  close.addEventListener("click", () => {
    root.hidden = true;
    root.replaceChildren();
  });
  const room = s.room;
  root.replaceChildren(
    el("div", { className: "section-head" }, el("h2", { i18n: "summary.title", params: { title: room.title } }), close),
    el("p", {
      className: "hint",
      i18n: "summary.facts",
      params: {
        opened: at(room.created_at * 1000),
        ended: room.ended_at ? { key: "summary.ended", params: { at: at(room.ended_at * 1000) } } : { key: "summary.not_ended" },
        patient: room.patient_ref ? { key: "summary.patient_ref", params: { ref: room.patient_ref } } : "",
      },
    }),
    el("div", { className: "actions" }, exportButton("pdf", "summary.export_pdf"), exportButton("fhir", "summary.export_fhir")),
    error,
    el("h3", { i18n: "summary.participants" }),
    el(
      "ul",
      { className: "summary-list" },
      ...s.participants.map((/** @type {any} */ p) =>
        el("li", {
          i18n: "summary.participant",
          params: { name: p.name, role: roleParam(p.role), from: at(p.joined_at * 1000), to: p.left_at ? at(p.left_at * 1000) : "…" },
        }),
      ),
    ),
    el("h3", { i18n: "room.tab.documents" }),
    el(
      "ul",
      { className: "summary-list" },
      ...s.documents.map((/** @type {any} */ d) =>
        el("li", {
          i18n: "summary.document",
          params: {
            name: d.name,
            kind: String(d.kind).toUpperCase(),
            visibility: { key: d.visibility === "clinicians" ? "documents.visible.clinicians" : "documents.visible.everyone" },
            annotations: d.annotations.length,
            sha: String(d.sha256).slice(0, 16),
          },
        }),
      ),
    ),
    el("h3", { i18n: "room.tab.records" }),
    el(
      "ul",
      { className: "summary-list summary-records" },
      ...s.records.map((/** @type {any} */ r) =>
        el(
          "li",
          { attrs: { "data-record-id": r.id, "data-status": r.status } },
          el("strong", {
            i18n: "summary.record_head",
            params: {
              kind: Object.hasOwn(KIND_LABEL, r.kind) ? { key: KIND_LABEL[/** @type {keyof typeof KIND_LABEL} */ (r.kind)] } : r.kind,
              status: recordStatusParam(r.status),
              corrected: r.superseded_by ? { key: "records.corrected" } : "",
            },
          }),
          el("span", { className: "hint", i18n: "summary.record_by", params: { name: r.author_name, role: roleParam(r.author_role) } }),
          el("p", { className: "record-body", ...recordText(r) }),
          ...(r.signature ? [el("p", { className: "record-signature", ...sigOpts(signatureText(r.signature)) })] : []),
          el(
            "ul",
            { className: "summary-steps" },
            ...r.events.map((/** @type {any} */ e) =>
              el("li", {
                i18n: e.note ? "summary.step_note" : "summary.step",
                params: { from: recordStatusParam(e.from_status), to: recordStatusParam(e.to_status), role: roleParam(e.actor_role), at: at(e.at_ms), note: e.note ?? "" },
              }),
            ),
          ),
        ),
      ),
    ),
    el("h3", { i18n: "room.tab.chat" }),
    el(
      "ul",
      { className: "summary-list" },
      ...s.chat.map((/** @type {any} */ m) => el("li", { i18n: "summary.chat", params: { at: at(m.at_ms), name: m.name, text: m.text } })),
    ),
  );
  root.scrollIntoView({ block: "start" });
}

/**
 * @param {{key: import("./i18n.js").MessageKey, params: import("./i18n.js").Params}} m
 * @returns {{i18n: import("./i18n.js").MessageKey, params: import("./i18n.js").Params}}
 */
function sigOpts(m) {
  return { i18n: m.key, params: m.params };
}
