// The consultation summary in the console, after (or during) the call: who took part and when,
// the documents, the records with every step, the chat; with the FHIR and PDF exports. Read-only:
// nothing here changes the record.

import * as api from "./api.js";
import { el, roleLabel } from "./dom.js";
import { recordText, signatureText } from "./records-panel.js";

const KIND_LABEL = /** @type {Record<string, string>} */ ({
  note: "Consultation note",
  diagnosis_report: "Diagnosis report",
  prescription: "Prescription",
});

/** @param {number} ms */
function at(ms) {
  return new Date(ms).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/**
 * Renders the summary of `roomId` into `root`.
 * @param {HTMLElement} root
 * @param {string} roomId
 * @param {(err: unknown) => string} explain
 */
export async function showSummary(root, roomId, explain) {
  root.hidden = false;
  root.replaceChildren(el("p", { className: "hint", text: "Loading the summary…" }));
  /** @type {any} */
  let s;
  try {
    s = await api.summary(roomId);
  } catch (err) {
    root.replaceChildren(el("p", { className: "form-error", text: explain(err) }));
    return;
  }
  root.dataset.roomId = roomId;
  const error = el("p", { className: "form-error", attrs: { role: "alert" } });
  error.hidden = true;
  /** @param {"fhir" | "pdf"} format @param {string} label */
  const exportButton = (format, label) => {
    const b = el("button", { className: "btn", text: label, attrs: { type: "button" } });
    b.addEventListener("click", () => {
      api.downloadExport(roomId, format).catch((err) => {
        error.textContent = explain(err);
        error.hidden = false;
      });
    });
    return b;
  };
  const close = el("button", { className: "btn btn-small", text: "Close", attrs: { type: "button" } });
  close.addEventListener("click", () => {
    root.hidden = true;
    root.replaceChildren();
  });
  const room = s.room;
  root.replaceChildren(
    el("div", { className: "section-head" }, el("h2", { text: `Summary: ${room.title}` }), close),
    el("p", {
      className: "hint",
      text: [
        `Opened ${at(room.created_at * 1000)}`,
        room.ended_at ? `ended ${at(room.ended_at * 1000)}` : "not ended",
        room.patient_ref ? `patient ref. ${room.patient_ref}` : "",
      ].filter(Boolean).join(" · "),
    }),
    el("div", { className: "actions" }, exportButton("pdf", "Export PDF"), exportButton("fhir", "Export FHIR (JSON)")),
    error,
    el("h3", { text: "Participants" }),
    el(
      "ul",
      { className: "summary-list" },
      ...s.participants.map((/** @type {any} */ p) =>
        el("li", { text: `${p.name} (${roleLabel(p.role)}), ${at(p.joined_at * 1000)} – ${p.left_at ? at(p.left_at * 1000) : "…"}` }),
      ),
    ),
    el("h3", { text: "Documents" }),
    el(
      "ul",
      { className: "summary-list" },
      ...s.documents.map((/** @type {any} */ d) =>
        el("li", {
          text: `${d.name} · ${String(d.kind).toUpperCase()} · ${d.visibility === "clinicians" ? "clinicians only" : "everyone"} · ${d.annotations.length} annotations · SHA-256 ${String(d.sha256).slice(0, 16)}…`,
        }),
      ),
    ),
    el("h3", { text: "Records" }),
    el(
      "ul",
      { className: "summary-list summary-records" },
      ...s.records.map((/** @type {any} */ r) =>
        el(
          "li",
          { attrs: { "data-record-id": r.id, "data-status": r.status } },
          el("strong", { text: `${KIND_LABEL[r.kind] ?? r.kind} · ${r.status}${r.superseded_by ? " · corrected" : ""}` }),
          el("span", { className: "hint", text: ` by ${r.author_name} (${roleLabel(r.author_role)})` }),
          el("p", { className: "record-body", text: recordText(r) }),
          ...(r.signature ? [el("p", { className: "record-signature", text: signatureText(r.signature) })] : []),
          el(
            "ul",
            { className: "summary-steps" },
            ...r.events.map((/** @type {any} */ e) =>
              el("li", { text: `${e.from_status} → ${e.to_status} by ${e.actor_role}, ${at(e.at_ms)}${e.note ? `: ${e.note}` : ""}` }),
            ),
          ),
        ),
      ),
    ),
    el("h3", { text: "Chat" }),
    el(
      "ul",
      { className: "summary-list" },
      ...s.chat.map((/** @type {any} */ m) => el("li", { text: `${at(m.at_ms)} ${m.name}: ${m.text}` })),
    ),
  );
  root.scrollIntoView({ block: "start" });
}
