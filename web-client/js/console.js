// The clinician console behind /: sign in, create consultations, hand out invite links (patients
// and observers), put doctors and specialists on a consultation's care team, enter it, end it.
// It talks only to the HTTP API (./api.js); the live room is the participant app at /join, which
// a clinician on the care team enters with their seat's entry token (the room shows their
// account's name, title and institution), and patients and observers with invite links.

import * as api from "./api.js";
import { el, must, roleParam } from "./dom.js";
import { errorKeyOf } from "./errors.js";
import { startBranding } from "./branding.js";
import { clearText, startPage, tr } from "./i18n.js";
import { showSummary } from "./summary-view.js";
import { showPharmacy } from "./pharmacy-view.js";
import { showAudit } from "./audit-view.js";
import { hideAdministration, mayAdminister, showAdministration } from "./admin-view.js";
import { startDesk, stopDesk } from "./clinician-desk.js";
import { forgetInvitations, invitationList } from "./invite-list.js";
import { institutions } from "./referral-api.js";
import { mountPasswordDialog } from "./password-dialog.js";
import { mountPinDialog } from "./pin-dialog.js";

/** @typedef {import("./api.js").Room} Room */
/** @typedef {import("./api.js").Account} Account */
/** @typedef {import("./api.js").CareTeamMember} CareTeamMember */
/** @typedef {import("./protocol.js").Role} Role */
/** @typedef {import("./i18n.js").MessageKey} MessageKey */
/** @typedef {import("./i18n.js").Params} Params */

/**
 * Invite links are for patients, guests (an interpreter, a companion) and observers; clinicians
 * enter as their own accounts.
 * @type {("patient" | "guest" | "observer")[]}
 */
const INVITE_ROLES = ["patient", "guest", "observer"];
/** @type {Record<"patient" | "guest" | "observer", MessageKey>} */
const INVITE_LABELS = {
  patient: "console.create_invite.patient",
  guest: "console.create_invite.guest",
  observer: "console.create_invite.observer",
};

/** The line under a room's title that says the signed-in clinician's place on its care team. */
/** @type {Record<"doctor" | "specialist", MessageKey>} */
const MY_ROLE_TEXT = {
  doctor: "console.my_role.doctor",
  specialist: "console.my_role.specialist",
};

const ui = {
  account: must("#account", HTMLElement),
  accountName: must("#account-name", HTMLElement),
  availability: must("#availability", HTMLElement),
  availabilityInput: must("#availability-input", HTMLInputElement),
  accountError: must("#account-error", HTMLElement),
  signOut: must("#sign-out", HTMLButtonElement),
  accountNotice: must("#account-notice", HTMLElement),
  passwordDialog: must("#password-dialog", HTMLDialogElement),
  pinDialog: must("#pin-dialog", HTMLDialogElement),
  signingPin: must("#signing-pin", HTMLButtonElement),
  login: must("#login", HTMLElement),
  loginForm: must("#login-form", HTMLFormElement),
  username: must("#username", HTMLInputElement),
  password: must("#password", HTMLInputElement),
  loginError: must("#login-error", HTMLElement),
  loginButton: must("#login-button", HTMLButtonElement),
  dashboard: must("#dashboard", HTMLElement),
  createSection: must("#create-section", HTMLElement),
  createForm: must("#create-form", HTMLFormElement),
  roomTitle: must("#room-title-input", HTMLInputElement),
  patientRef: must("#patient-ref-input", HTMLInputElement),
  waitingRoom: must("#waiting-room-input", HTMLInputElement),
  roomWhen: must("#room-when-input", HTMLInputElement),
  roomMinutes: must("#room-minutes-input", HTMLInputElement),
  createError: must("#create-error", HTMLElement),
  createButton: must("#create-button", HTMLButtonElement),
  refresh: must("#refresh-button", HTMLButtonElement),
  roomsStatus: must("#rooms-status", HTMLElement),
  rooms: must("#rooms", HTMLUListElement),
  confirm: must("#confirm-dialog", HTMLDialogElement),
  confirmTitle: must("#confirm-title", HTMLElement),
  confirmText: must("#confirm-text", HTMLElement),
  confirmOk: must("#confirm-ok", HTMLButtonElement),
  summary: must("#summary", HTMLElement),
  pharmacy: must("#pharmacy", HTMLElement),
  audit: must("#audit", HTMLElement),
  roomsSection: must("#rooms-title", HTMLElement),
};

/** @type {Account | null} */
let user = null;
/**
 * @param {HTMLElement} node
 * @param {MessageKey | null} key the message; null empties and hides the node
 * @param {Params} [params]
 */
function showText(node, key, params) {
  if (key === null) clearText(node);
  else tr(node, key, params);
  node.hidden = key === null;
}

/**
 * The catalogue's words for a failure (its server code's text); a lost session goes back to the
 * sign-in form.
 * @param {unknown} err
 * @returns {MessageKey}
 */
function explain(err) {
  if (err instanceof api.ApiError && err.status === 401) {
    signOut("console.session_expired");
    return "console.session_expired";
  }
  return errorKeyOf(err);
}

/**
 * Keeping the session alive while the console is used. The server ends a session that is not
 * renewed within its idle window (`auth.session_idle_s`), so a console left alone on a shared
 * workstation signs out by itself; while someone uses it (a key, a click, a touch or a scroll
 * since the last renewal) the token is renewed once half its life is over, up to the session's
 * absolute end.
 */
const keepAlive = {
  /** @type {number | undefined} */
  timer: undefined,
  /** Date.now() of the last key, click, touch or scroll. */
  lastActivity: 0,
};

const ACTIVITY_EVENTS = ["pointerdown", "keydown", "wheel", "touchstart"];

function noteActivity() {
  const now = Date.now();
  // Checked at most once a second however fast the events come.
  if (now - keepAlive.lastActivity < 1000) {
    keepAlive.lastActivity = now;
    return;
  }
  keepAlive.lastActivity = now;
  checkSession();
}

function startKeepAlive() {
  stopKeepAlive();
  keepAlive.lastActivity = Date.now();
  for (const type of ACTIVITY_EVENTS) {
    document.addEventListener(type, noteActivity, { capture: true, passive: true });
  }
  document.addEventListener("visibilitychange", checkSession);
  const deadline = api.sessionDeadline();
  // A few checks per token lifetime; background tabs may run them less often, which the
  // deadline check on return (visibilitychange) makes up for.
  const every = deadline ? Math.min(15_000, Math.max(1000, (deadline.expires - deadline.issued) / 6)) : 15_000;
  keepAlive.timer = window.setInterval(checkSession, every);
}

function stopKeepAlive() {
  window.clearInterval(keepAlive.timer);
  keepAlive.timer = undefined;
  for (const type of ACTIVITY_EVENTS) {
    document.removeEventListener(type, noteActivity, { capture: true });
  }
  document.removeEventListener("visibilitychange", checkSession);
}

/** Renews when due and in use; back to the sign-in form once the token has ended. */
function checkSession() {
  const deadline = api.sessionDeadline();
  if (!user || !deadline) return;
  const now = Date.now();
  if (now >= deadline.expires) {
    signOut(deadline.last ? "console.session_limit" : "console.session_idle");
    return;
  }
  const halfway = deadline.issued + (deadline.expires - deadline.issued) / 2;
  if (deadline.last || now < halfway || keepAlive.lastActivity <= deadline.issued) return;
  api.renew().catch((err) => {
    // A network failure is tried again at the next check; a refusal means the session is over.
    if (err instanceof api.ApiError && err.status === 401) {
      signOut("error.unauthenticated");
    }
  });
}

/** @param {MessageKey | null} [message] why, shown above the sign-in form */
function signOut(message = null) {
  stopKeepAlive();
  stopDesk();
  api.forgetSession();
  user = null;
  forgetInvitations();
  ui.rooms.replaceChildren();
  ui.account.hidden = true;
  ui.availability.hidden = true;
  ui.dashboard.hidden = true;
  ui.pharmacy.hidden = true;
  ui.audit.hidden = true;
  hideAdministration();
  ui.accountNotice.hidden = true;
  if (ui.passwordDialog.open) ui.passwordDialog.close();
  if (ui.pinDialog.open) ui.pinDialog.close();
  ui.login.hidden = false;
  document.body.dataset.state = "signed-out";
  showText(ui.loginError, message);
  ui.password.value = "";
  ui.username.focus();
}

/**
 * An account as colleagues see it: "name · title · institution" (empty parts left out).
 * @param {Pick<Account, "display_name" | "title" | "institution">} account
 */
function accountLabel(account) {
  return [account.display_name, account.title, account.institution.name].filter((part) => part !== "").join(" · ");
}

/** @param {Account} signedIn */
function showDashboard(signedIn) {
  user = signedIn;
  ui.accountName.textContent = accountLabel(signedIn);
  ui.account.hidden = false;
  // Doctors and specialists say whether they take referrals; the directory shows it.
  ui.availability.hidden = !isClinician();
  // They sign reports and prescriptions: with their password, or a PIN they set here.
  ui.signingPin.hidden = !isClinician();
  ui.availabilityInput.checked = signedIn.accepts_referrals;
  showText(ui.accountError, null);
  ui.login.hidden = true;
  ui.dashboard.hidden = false;
  ui.createSection.hidden = !canCreateRooms();
  document.body.dataset.state = "signed-in";
  startKeepAlive();
  const rooms = ui.roomsSection.closest("section");
  // A pharmacist works the prescription queue; rooms are not theirs.
  if (rooms) rooms.hidden = signedIn.role === "pharmacist";
  if (signedIn.role === "pharmacist") {
    void showPharmacy(ui.pharmacy, explain);
    return;
  }
  // Supervisors see every consultation's summary and the audit trail.
  if (signedIn.role === "supervisor" || signedIn.role === "network_supervisor") void showAudit(ui.audit, explain);
  // Administrators: institutions, departments and accounts (admin-view.js). An institution's
  // administrator sees no consultations, so that is all their console holds.
  if (mayAdminister(signedIn.role)) {
    void showAdministration(signedIn, { explain, confirm: confirmAction, signOut });
    if (rooms && signedIn.role === "institution_admin") {
      rooms.hidden = true;
      return;
    }
  }
  void refreshRooms();
  // Doctors and specialists: consultation requests, the day view, live notifications.
  if (isClinician()) startDesk({ user: signedIn, explain, refreshRooms, referrals: must("#referrals", HTMLElement), day: must("#day-view", HTMLElement), rooms: ui.rooms });
}

/** Doctors and the network's administrator open consultations. */
function canCreateRooms() {
  return user?.role === "doctor" || user?.role === "admin";
}

/** Doctors and specialists: care teams, directory, referrals. */
function isClinician() {
  return user?.role === "doctor" || user?.role === "specialist";
}

/**
 * A message and its parameters.
 * @typedef {{key: MessageKey, params?: Params}} Message
 */

/**
 * Asks for confirmation in a modal dialog (not window.confirm, which some embedded browsers
 * suppress).
 * @param {Message} title
 * @param {Message} text
 * @param {Message} okLabel
 * @returns {Promise<boolean>}
 */
function confirmAction(title, text, okLabel) {
  tr(ui.confirmTitle, title.key, title.params);
  tr(ui.confirmText, text.key, text.params);
  tr(ui.confirmOk, okLabel.key, okLabel.params);
  ui.confirm.returnValue = "";
  ui.confirm.showModal();
  return new Promise((resolve) => {
    ui.confirm.addEventListener("close", () => resolve(ui.confirm.returnValue === "ok"), { once: true });
  });
}

async function refreshRooms() {
  showText(ui.roomsStatus, "common.loading");
  try {
    const rooms = await api.listRooms();
    ui.rooms.replaceChildren(...rooms.map(renderRoom));
    showText(ui.roomsStatus, rooms.length ? null : "console.no_rooms");
  } catch (err) {
    showText(ui.roomsStatus, explain(err));
  }
}

/**
 * A room's status as a message (an unknown one, from a newer server, as it is).
 * @param {string} status
 */
function statusText(status) {
  if (status === "open") return { i18n: /** @type {MessageKey} */ ("console.status.open") };
  if (status === "ended") return { i18n: /** @type {MessageKey} */ ("console.status.ended") };
  return { i18n: /** @type {MessageKey} */ ("common.param"), params: { text: status } };
}

/**
 * Parts joined with " · ", each a message.
 * @param {import("./i18n.js").Param[]} parts
 * @returns {{i18n: MessageKey, params: Params}}
 */
function joined(parts) {
  /** @type {import("./i18n.js").Param} */
  let all = parts[0] ?? "";
  for (const part of parts.slice(1)) all = { key: "console.joined", params: { a: all, b: part } };
  return { i18n: "common.param", params: { text: all } };
}

/**
 * @param {Room} room
 * @returns {HTMLLIElement}
 */
function renderRoom(room) {
  const ended = room.status === "ended";
  const headingId = `room-${room.id}`;
  /** @type {import("./i18n.js").Param[]} */
  const meta = [{ key: "console.created", params: { at: { at: room.created_at * 1000 } } }];
  if (room.slot_start) meta.push({ key: "console.booked", params: { at: { at: room.slot_start * 1000 }, minutes: room.slot_minutes ?? 0 } });
  if (room.patient_ref) meta.push({ key: "console.patient_ref_of", params: { ref: room.patient_ref } });
  if (room.my_role) meta.push({ key: MY_ROLE_TEXT[room.my_role] });
  const item = el(
    "li",
    { className: ended ? "room-card room-ended" : "room-card", attrs: { "aria-labelledby": headingId } },
    el(
      "div",
      { className: "room-head" },
      el("h3", { user: room.title, attrs: { id: headingId } }),
      el("span", { className: `status status-${room.status}`, ...statusText(room.status) }),
      ...(room.waiting_room ? [el("span", { className: "status status-waiting-room", i18n: "console.waiting_room_badge" })] : []),
    ),
    el("p", { className: "hint", ...joined(meta) }),
  );
  item.dataset.roomId = room.id;
  // Who waits now, as the list was loaded (./clinician-desk.js shows it and keeps it current).
  item.dataset.waiting = String(room.waiting ?? 0);
  item.dataset.waitingSince = room.waiting_since ? String(room.waiting_since) : "";
  const summaryButton = el("button", { className: "btn", i18n: "console.summary", label: "console.summary_of", labelParams: { title: room.title }, attrs: { type: "button" } });
  summaryButton.addEventListener("click", () => void showSummary(ui.summary, room.id, explain));
  if (ended || (!room.my_role && !room.manages)) {
    item.append(el("div", { className: "actions" }, summaryButton));
    return item;
  }

  const error = el("p", { className: "form-error", attrs: { role: "alert" } });
  error.hidden = true;
  const actions = el("div", { className: "actions" });

  if (room.my_role) {
    const enterButton = el("button", { className: "btn btn-primary", i18n: "console.enter", attrs: { type: "button" } });
    enterButton.addEventListener("click", async () => {
      enterButton.disabled = true;
      showText(error, null);
      try {
        // The seat on the care team: the room shows this account's name, title and
        // institution, never a typed name. The token stays in the fragment so it never reaches
        // a server log.
        const entry = await api.enterRoom(room.id);
        location.assign(`/join#${entry.token}`);
      } catch (err) {
        showText(error, explain(err));
        enterButton.disabled = false;
      }
    });
    actions.append(enterButton);
  }
  actions.append(summaryButton);
  if (!room.manages) {
    item.append(actions, error);
    return item;
  }

  const invitations = invitationList(room, { explain, showError: (key) => showText(error, key) });

  const inviteButtons = INVITE_ROLES.map((role) => {
    const button = el("button", {
      className: "btn",
      i18n: "console.invite_button",
      params: { role: roleParam(role) },
      label: INVITE_LABELS[role],
      labelParams: { title: room.title },
      attrs: { type: "button" },
    });
    button.dataset.role = role;
    button.addEventListener("click", async () => {
      button.disabled = true;
      showText(error, null);
      try {
        await invitations.added(await api.createInvite(room.id, role));
      } catch (err) {
        showText(error, explain(err));
      } finally {
        button.disabled = false;
      }
    });
    return button;
  });

  const endButton = el("button", { className: "btn btn-danger", i18n: "console.end", attrs: { type: "button" } });
  endButton.addEventListener("click", async () => {
    const ok = await confirmAction(
      { key: "console.end_title", params: { title: room.title } },
      { key: "console.end_text" },
      { key: "console.end" },
    );
    if (!ok) return;
    endButton.disabled = true;
    try {
      await api.endRoom(room.id);
      await refreshRooms();
    } catch (err) {
      showText(error, explain(err));
      endButton.disabled = false;
    }
  });
  actions.append(endButton);

  item.append(
    actions,
    el("div", { className: "actions", label: "console.create_invite", attrs: { role: "group" } }, el("span", { className: "actions-label", i18n: "console.new_invite" }), ...inviteButtons),
    el("p", { className: "hint", i18n: "console.invite_hint" }),
    error,
    invitations.section,
  );
  // A consultation request's room moves with the time agreed on the request.
  if (!room.from_referral) item.append(renderReschedule(room, (err) => showText(error, err ? explain(err) : null)));
  item.append(renderCareTeam(room));
  return item;
}

/**
 * "Change the time" of a consultation this account runs: a date, a time and a length; the
 * patients' links made for the old time move with it (the server's rule).
 * @param {Room} room
 * @param {(err: unknown) => void} showError null clears
 * @returns {HTMLElement}
 */
function renderReschedule(room, showError) {
  const whenId = `reschedule-when-${room.id}`;
  const minutesId = `reschedule-minutes-${room.id}`;
  const when = el("input", { attrs: { id: whenId, type: "datetime-local", step: "300", required: "" } });
  const minutes = el("input", { attrs: { id: minutesId, type: "number", min: "5", max: "240", step: "5", value: String(room.slot_minutes ?? 30) } });
  if (room.slot_start) {
    // The current time as the input shows it: local, to the minute.
    const d = new Date(room.slot_start * 1000);
    d.setMinutes(d.getMinutes() - d.getTimezoneOffset());
    when.value = d.toISOString().slice(0, 16);
  }
  const move = el("button", { className: "btn btn-small reschedule-move", i18n: "console.reschedule_move", attrs: { type: "button" } });
  move.addEventListener("click", async () => {
    const at = when.value ? new Date(when.value).getTime() : NaN;
    if (!Number.isFinite(at)) {
      when.focus();
      return;
    }
    move.disabled = true;
    showError(null);
    try {
      await api.rescheduleRoom(room.id, { start: Math.floor(at / 1000), minutes: Number(minutes.value) || 30 });
      await refreshRooms();
    } catch (err) {
      showError(err);
      move.disabled = false;
    }
  });
  return el(
    "details",
    { className: "reschedule" },
    el("summary", { i18n: room.slot_start ? "console.reschedule" : "console.reschedule_set" }),
    el(
      "div",
      { className: "reschedule-fields" },
      el("div", { className: "field" }, el("label", { i18n: "console.when", attrs: { for: whenId } }), when),
      el("div", { className: "field" }, el("label", { i18n: "console.minutes", attrs: { for: minutesId } }), minutes),
    ),
    el("p", { className: "hint", i18n: "console.reschedule_hint" }),
    move,
  );
}

/**
 * "title · institution" of an account (empty parts left out).
 * @param {Account} account
 */
function placeLine(account) {
  return [account.title, account.institution.name].filter((part) => part !== "").join(" · ");
}

/**
 * The care team of a consultation this account runs: who is on it (with Remove), and "Add
 * clinician", a search of the directory by name or specialty with Add on each result.
 * @param {Room} room
 * @returns {HTMLElement}
 */
function renderCareTeam(room) {
  const headingId = `care-team-${room.id}`;
  const searchId = `directory-search-${room.id}`;
  const hintId = `directory-hint-${room.id}`;
  const heading = el("h4", { i18n: "console.care_team", attrs: { id: headingId, tabindex: "-1" } });
  const teamStatus = el("p", { className: "hint", attrs: { role: "status" } });
  const team = el("ul", { className: "care-team-list", attrs: { "aria-labelledby": headingId } });
  const error = el("p", { className: "form-error", attrs: { role: "alert" } });
  error.hidden = true;
  /** Accounts on the team now, so search results can say so. */
  let onTeam = new Set();

  const input = el("input", {
    attrs: { id: searchId, type: "search", maxlength: "60", autocomplete: "off", spellcheck: "false", "aria-describedby": hintId },
  });
  const searchButton = el("button", { className: "btn btn-small", i18n: "console.search", attrs: { type: "submit" } });
  // Where to look: the whole network, one institution, or one of its departments (filled from
  // the network's list when the search is first opened).
  const whereId = `directory-where-${room.id}`;
  const where = el("select", { attrs: { id: whereId, name: "where" } }, el("option", { i18n: "console.directory_anywhere", attrs: { value: "" } }));
  const acceptingId = `directory-accepting-${room.id}`;
  const accepting = el("input", { attrs: { id: acceptingId, type: "checkbox", name: "accepting" } });
  const form = el(
    "form",
    { className: "form directory-search", label: "console.find_clinician", labelParams: { title: room.title }, attrs: { role: "search" } },
    el("label", { i18n: "console.name_or_specialty", attrs: { for: searchId } }),
    el("div", { className: "search-row" }, input, searchButton),
    el("p", { className: "hint", i18n: "console.directory_hint", attrs: { id: hintId } }),
    el("label", { i18n: "console.directory_where", attrs: { for: whereId } }),
    where,
    el("label", { className: "toggle" }, accepting, el("span", { i18n: "console.directory_accepting" })),
  );
  let placesLoaded = false;
  const loadPlaces = async () => {
    if (placesLoaded) return;
    placesLoaded = true;
    try {
      for (const inst of await institutions()) {
        const group = el("optgroup");
        group.label = inst.name;
        group.append(el("option", { user: inst.name, attrs: { value: `i:${inst.id}` } }));
        for (const d of inst.departments) group.append(el("option", { user: `${d.name} · ${inst.name}`, attrs: { value: `d:${d.id}` } }));
        where.append(group);
      }
    } catch {
      // Without the list the search still works across the network.
      placesLoaded = false;
    }
  };
  const resultsStatus = el("p", { className: "hint", attrs: { role: "status" } });
  const results = el("ul", { className: "directory-results", label: "console.found_for", labelParams: { title: room.title } });
  const add = el("details", { className: "care-team-add" }, el("summary", { i18n: "console.add_clinician" }), form, resultsStatus, results);
  add.addEventListener("toggle", () => {
    if (add.open) void loadPlaces();
  });

  const load = async () => {
    try {
      const members = await api.careTeam(room.id);
      onTeam = new Set(members.map((m) => m.account.id));
      team.replaceChildren(...members.map(memberRow));
      showText(teamStatus, null);
    } catch (err) {
      showText(teamStatus, explain(err));
    }
  };

  /** @param {CareTeamMember} m */
  const memberRow = (m) => {
    const name = m.account.display_name;
    const remove = el("button", {
      className: "btn btn-small btn-danger",
      i18n: "console.remove",
      label: "console.remove_from_team",
      labelParams: { name },
      attrs: { type: "button" },
    });
    remove.addEventListener("click", async () => {
      const ok = await confirmAction(
        { key: "console.remove_title", params: { name } },
        { key: "console.remove_text" },
        { key: "console.remove" },
      );
      if (!ok) return;
      remove.disabled = true;
      showText(error, null);
      try {
        await api.removeFromCareTeam(room.id, m.account.id);
        if (m.account.id === user?.id) {
          // Off the team: this account no longer runs the consultation.
          await refreshRooms();
          return;
        }
        await load();
        heading.focus();
      } catch (err) {
        // The one conflict here: the consultation's last doctor, who cannot leave it unrun.
        showText(error, err instanceof api.ApiError && err.code === "conflict" ? "console.last_doctor" : explain(err));
        remove.disabled = false;
      }
    });
    const row = el(
      "li",
      { className: "care-team-member" },
      el("span", { className: "member-name", user: name }),
      el("span", { className: "hint", ...joined([...(placeLine(m.account) ? [placeLine(m.account)] : []), roleParam(m.role)]) }),
      remove,
    );
    row.dataset.userId = m.account.id;
    row.dataset.role = m.role;
    return row;
  };

  /** @param {Account} a */
  const resultRow = (a) => {
    const details = [a.title, a.institution.name, a.department?.name ?? "", a.specialty].filter((part) => part !== "").join(" · ");
    const row = el(
      "li",
      { className: "directory-result" },
      el("span", { className: "member-name", user: a.display_name }),
      el("span", { className: "hint", user: details }),
      el("span", {
        className: a.accepts_referrals ? "availability availability-on" : "availability",
        i18n: a.accepts_referrals ? "console.taking_referrals" : "console.not_taking_referrals",
      }),
    );
    row.dataset.userId = a.id;
    const onTeamNote = () => el("span", { className: "hint on-team", i18n: "console.on_team", attrs: { tabindex: "-1" } });
    if (onTeam.has(a.id)) {
      row.append(onTeamNote());
      return row;
    }
    const addButton = el("button", {
      className: "btn btn-small btn-primary",
      i18n: "console.add",
      label: "console.add_to_team",
      labelParams: { name: a.display_name },
      attrs: { type: "button" },
    });
    addButton.addEventListener("click", async () => {
      addButton.disabled = true;
      showText(error, null);
      try {
        await api.addToCareTeam(room.id, a.id);
        const note = onTeamNote();
        addButton.replaceWith(note);
        note.focus();
        tr(resultsStatus, "console.added_to_team", { name: a.display_name });
        await load();
      } catch (err) {
        showText(error, explain(err));
        addButton.disabled = false;
      }
    });
    row.append(addButton);
    return row;
  };

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const query = input.value.trim();
    searchButton.disabled = true;
    showText(error, null);
    tr(resultsStatus, "console.searching");
    try {
      // One box for both: a clinician whose name or specialty matches, where chosen.
      const place = where.value;
      /** @type {{institution?: string, department?: string, accepting?: boolean}} */
      const filters = {
        ...(place.startsWith("i:") ? { institution: place.slice(2) } : {}),
        ...(place.startsWith("d:") ? { department: place.slice(2) } : {}),
        ...(accepting.checked ? { accepting: true } : {}),
      };
      const answers = query
        ? await Promise.all([api.directory({ name: query, ...filters }), api.directory({ specialty: query, ...filters })])
        : [await api.directory(filters)];
      /** @type {Map<string, Account>} */
      const found = new Map();
      for (const a of answers.flat()) found.set(a.id, a);
      results.replaceChildren(...[...found.values()].map(resultRow));
      if (found.size === 0) tr(resultsStatus, "console.found_none");
      else tr(resultsStatus, found.size === 1 ? "console.found_one" : "console.found_many", { n: found.size });
    } catch (err) {
      clearText(resultsStatus);
      showText(error, explain(err));
    } finally {
      searchButton.disabled = false;
    }
  });

  void load();
  return el("section", { className: "care-team", attrs: { "aria-labelledby": headingId } }, heading, teamStatus, team, add, error);
}

ui.loginForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  ui.loginButton.disabled = true;
  showText(ui.loginError, null);
  try {
    await api.login(ui.username.value.trim(), ui.password.value);
    ui.password.value = "";
    // The account's full view: its institution, title and availability.
    showDashboard(await api.me());
  } catch (err) {
    if (err instanceof api.ApiError && err.status === 401) {
      showText(ui.loginError, "error.invalid_credentials");
    } else {
      showText(ui.loginError, explain(err));
    }
    ui.password.focus();
  } finally {
    ui.loginButton.disabled = false;
  }
});

ui.createForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const title = ui.roomTitle.value.trim();
  if (!title) {
    showText(ui.createError, "console.title_required");
    ui.roomTitle.focus();
    return;
  }
  ui.createButton.disabled = true;
  showText(ui.createError, null);
  try {
    // A time given: booked ahead (the browser's local time, as the input shows it).
    const when = ui.roomWhen.value ? new Date(ui.roomWhen.value).getTime() : NaN;
    const slot = Number.isFinite(when) ? { start: Math.floor(when / 1000), minutes: Number(ui.roomMinutes.value) || 30 } : undefined;
    await api.createRoom(title, ui.patientRef.value.trim() || undefined, ui.waitingRoom.checked, slot);
    ui.createForm.reset();
    await refreshRooms();
  } catch (err) {
    showText(ui.createError, explain(err));
  } finally {
    ui.createButton.disabled = false;
  }
});

ui.refresh.addEventListener("click", () => void refreshRooms());
ui.availabilityInput.addEventListener("change", async () => {
  const accepting = ui.availabilityInput.checked;
  ui.availabilityInput.disabled = true;
  showText(ui.accountError, null);
  try {
    await api.setAvailability(accepting);
    if (user) user.accepts_referrals = accepting;
  } catch (err) {
    ui.availabilityInput.checked = !accepting;
    showText(ui.accountError, explain(err));
  } finally {
    ui.availabilityInput.disabled = false;
  }
});
mountPasswordDialog({
  explain,
  // The server erased the signing PIN with the old password.
  changed: () => {
    if (user) user.signing_pin = false;
  },
});
mountPinDialog({ explain, account: () => user });
ui.signOut.addEventListener("click", async () => {
  // The server ends the session first, so the token is worthless even if it was copied.
  ui.signOut.disabled = true;
  try {
    await api.logout();
  } finally {
    ui.signOut.disabled = false;
    signOut();
  }
});

async function start() {
  startPage();
  // The institution's name, logo and colour, when the server is configured with them.
  void startBranding();
  if (!api.sessionToken()) {
    signOut();
    return;
  }
  try {
    showDashboard(await api.me());
  } catch (err) {
    if (err instanceof api.ApiError && err.status === 401) signOut();
    else signOut(explain(err));
  }
}

void start();
