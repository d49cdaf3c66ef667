// The invitations of one consultation, on its card in the console: every link the room has
// (from the server, so a reloaded console shows them again) with its state, its window, how many
// uses it has left and who came in with it; for a link still usable, the link itself (Copy), its
// short code, its QR code, a printable page and Revoke.
//
// The server shows a short code once, in the answer that made it (it keeps only a keyed hash), so
// this tab remembers the codes it was shown until sign-out; for any other link, "New code" asks
// for one, which ends the old code at once.
//
// The list is a <details> that loads when opened: a console lists many consultations, and most
// of them need no one to look at their links.

import * as api from "./api.js";
import { el, roleParam } from "./dom.js";
import { tr, trAttr } from "./i18n.js";

/** @typedef {import("./api.js").Invite} Invite */
/** @typedef {import("./i18n.js").MessageKey} MessageKey */

/** Codes this tab was shown, by invitation id (a code is shown once: see above). */
const codes = new Map();
/** Rooms whose list is open, so a re-rendered card opens it again. */
const opened = new Set();

/** @type {Record<import("./api.js").InviteState, MessageKey>} */
const STATE_TEXT = {
  active: "invites.state.active",
  not_yet: "invites.state.not_yet",
  used_up: "invites.state.used_up",
  expired: "invites.state.expired",
  revoked: "invites.state.revoked",
};

/** Forgets the codes and open lists (sign-out). */
export function forgetInvitations() {
  codes.clear();
  opened.clear();
}

/**
 * What a card needs: the section, and a way to add an invitation just made.
 * @typedef {object} InvitationList
 * @property {HTMLDetailsElement} section
 * @property {(invite: Invite) => Promise<void>} added
 */

/**
 * The invitations section of a room's card.
 * @param {{id: string, title: string}} room
 * @param {{explain: (err: unknown) => MessageKey, showError: (key: MessageKey | null) => void}} opts
 * @returns {InvitationList}
 */
export function invitationList(room, opts) {
  const list = el("ul", { className: "invites", label: "console.invites_of", labelParams: { title: room.title } });
  const status = el("p", { className: "hint invites-status", attrs: { role: "status" } });
  const section = el(
    "details",
    { className: "invitations" },
    el("summary", { i18n: "invites.title" }),
    status,
    list,
  );
  /** The newest load wins: an older answer arriving late is dropped. */
  let generation = 0;

  /** @param {string} [focusId] an invitation whose link takes the focus once shown */
  const load = async (focusId) => {
    const mine = ++generation;
    tr(status, "common.loading");
    status.hidden = false;
    try {
      const invites = await api.listInvites(room.id);
      if (mine !== generation) return;
      list.replaceChildren(...invites.map((invite) => renderInvite(room, invite, { ...opts, reload: load })));
      status.hidden = invites.length > 0;
      if (!invites.length) tr(status, "invites.none");
      if (focusId) /** @type {HTMLInputElement | null} */ (list.querySelector(`li[data-invite-id="${CSS.escape(focusId)}"] input`))?.focus();
    } catch (err) {
      if (mine !== generation) return;
      tr(status, opts.explain(err));
    }
  };

  section.addEventListener("toggle", () => {
    if (section.open) {
      opened.add(room.id);
      void load();
    } else {
      opened.delete(room.id);
    }
  });
  if (opened.has(room.id)) section.open = true;

  return {
    section,
    added: async (invite) => {
      if (invite.code) codes.set(invite.invite_id, invite.code);
      if (section.open) await load(invite.invite_id);
      else {
        // Opening loads the list (the toggle event); the new link then takes the focus.
        opened.add(room.id);
        section.open = true;
        await load(invite.invite_id);
      }
    },
  };
}

/**
 * One invitation.
 * @param {{id: string, title: string}} room
 * @param {Invite} invite
 * @param {{explain: (err: unknown) => MessageKey, showError: (key: MessageKey | null) => void, reload: (focusId?: string) => Promise<void>}} opts
 * @returns {HTMLLIElement}
 */
function renderInvite(room, invite, opts) {
  const state = invite.state ?? "active";
  const role = roleParam(invite.role);
  const usable = (state === "active" || state === "not_yet") && Boolean(invite.token || invite.url);
  const row = el("li", { className: "invite" });
  row.dataset.inviteId = invite.invite_id;
  row.dataset.state = state;

  const who = invite.label
    ? el("span", { i18n: "invites.role_label", params: { role, label: invite.label } })
    : el("span", { i18n: "common.param", params: { text: role } });
  const badge = el("span", { className: `badge invite-state invite-state-${state}`, i18n: STATE_TEXT[state] ?? "common.param", params: { text: state } });
  const head = el("div", { className: "invite-head" }, who);
  // The care team changed its holder's role: a new join with it comes in so.
  if (invite.role_now && invite.role_now !== invite.role) head.append(el("span", { className: "invite-role-now", i18n: "invites.role_now", params: { role: roleParam(invite.role_now) } }));
  head.append(badge);
  row.append(head);

  /** @type {import("./i18n.js").Param} */
  const until = { at: invite.expires_at * 1000 };
  const window = invite.not_before
    ? el("p", { className: "invite-window", i18n: "invites.window", params: { from: { at: invite.not_before * 1000 }, until } })
    : el("p", { className: "invite-window", i18n: "invites.until", params: { until } });
  const uses =
    invite.max_uses === null || invite.max_uses === undefined
      ? el("p", { className: "invite-uses", i18n: "invites.uses_unlimited", params: { n: invite.uses ?? 0 } })
      : el("p", { className: "invite-uses", i18n: "invites.uses", params: { n: invite.uses ?? 0, max: invite.max_uses } });
  row.append(window, uses);

  const usedBy = invite.used_by ?? [];
  if (usedBy.length) {
    row.append(
      el(
        "ul",
        { className: "invite-used-by", label: "invites.used_by" },
        ...usedBy.map((u) =>
          el(
            "li",
            {},
            el("span", { user: u.name }),
            el("span", { i18n: u.reload ? "invites.used_at_reload" : "invites.used_at", params: { at: { at: u.at * 1000 } } }),
          ),
        ),
      ),
    );
  }
  if (!usable) return row;

  // The link, Copy and Revoke (as before this list existed).
  const url = api.inviteLink(/** @type {Invite} */ (invite));
  const inputId = `invite-${invite.invite_id}`;
  const input = el("input", { attrs: { id: inputId, type: "text", readonly: "", value: url } });
  input.addEventListener("focus", () => input.select());
  const copy = el("button", { className: "btn btn-small", i18n: "console.copy", label: "console.copy_link", labelParams: { role }, attrs: { type: "button" } });
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(url);
      tr(copy, "console.copied");
    } catch {
      // Clipboard refused (permissions, old browser): select it so a keyboard copy works.
      input.focus();
      input.select();
      tr(copy, "console.press_copy");
    }
    setTimeout(() => tr(copy, "console.copy"), 2000);
  });
  const revoke = el("button", { className: "btn btn-small btn-danger", i18n: "console.revoke", label: "console.revoke_link", labelParams: { role }, attrs: { type: "button" } });
  revoke.addEventListener("click", async () => {
    revoke.disabled = true;
    opts.showError(null);
    try {
      await api.revokeInvite(room.id, invite.invite_id);
      codes.delete(invite.invite_id);
      await opts.reload();
    } catch (err) {
      opts.showError(opts.explain(err));
      revoke.disabled = false;
    }
  });
  row.append(
    el("label", { attrs: { for: inputId }, i18n: "invites.link", params: { role } }),
    el("div", { className: "invite-row" }, input, copy, revoke),
  );

  // The short code: shown when this tab holds it; otherwise a new one on request.
  const codeLine = el("p", { className: "invite-code-line" });
  const showCode = () => {
    const code = codes.get(invite.invite_id);
    if (code) {
      codeLine.replaceChildren(el("span", { i18n: "invites.code" }), " ", el("span", { className: "invite-code", text: code, attrs: { "data-code": code.replace(/\D/g, "") } }));
    } else {
      codeLine.replaceChildren(el("span", { className: "hint", i18n: invite.has_code ? "invites.code_hidden" : "invites.code_none" }));
    }
  };
  showCode();
  const newCode = el("button", { className: "btn btn-small", i18n: "invites.new_code", label: "invites.new_code_for", labelParams: { role }, attrs: { type: "button" } });
  newCode.addEventListener("click", async () => {
    newCode.disabled = true;
    opts.showError(null);
    try {
      codes.set(invite.invite_id, await api.newInviteCode(room.id, invite.invite_id));
      showCode();
    } catch (err) {
      opts.showError(opts.explain(err));
    } finally {
      newCode.disabled = false;
    }
  });

  // The QR code of the link, for a phone's camera; fetched with the session.
  const qr = el("img", { className: "invite-qr" });
  trAttr(qr, "alt", "invites.qr_alt", { role });
  qr.hidden = true;
  const showQr = el("button", { className: "btn btn-small", i18n: "invites.show_qr", label: "invites.show_qr_for", labelParams: { role }, attrs: { type: "button", "aria-expanded": "false" } });
  showQr.addEventListener("click", async () => {
    if (!qr.hidden) {
      qr.hidden = true;
      showQr.setAttribute("aria-expanded", "false");
      return;
    }
    showQr.disabled = true;
    opts.showError(null);
    try {
      const previous = qr.src;
      qr.src = await api.inviteQrUrl(room.id, invite.invite_id);
      if (previous.startsWith("blob:")) URL.revokeObjectURL(previous);
      qr.hidden = false;
      showQr.setAttribute("aria-expanded", "true");
    } catch (err) {
      opts.showError(opts.explain(err));
    } finally {
      showQr.disabled = false;
    }
  });

  const print = el("button", { className: "btn btn-small", i18n: "invites.print", label: "invites.print_for", labelParams: { role }, attrs: { type: "button" } });
  print.addEventListener("click", async () => {
    print.disabled = true;
    opts.showError(null);
    try {
      await api.downloadInvitePrint(room.id, invite.invite_id, codes.get(invite.invite_id), `invitation-${invite.invite_id}.html`);
    } catch (err) {
      if (err instanceof api.ApiError && err.code === "code_mismatch") {
        // Another console asked for a new code meanwhile: the one held here no longer works.
        codes.delete(invite.invite_id);
        showCode();
      }
      opts.showError(opts.explain(err));
    } finally {
      print.disabled = false;
    }
  });

  row.append(codeLine, el("div", { className: "invite-row invite-tools" }, newCode, showQr, print), qr);
  return row;
}
