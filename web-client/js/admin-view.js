// The network's administration in the console (docs/protocol.md, "Organisation"): institutions
// with their departments, and accounts. The network's administrator (`admin`) adds and renames
// institutions, adds departments anywhere and manages every account; an institution's
// administrator (`institution_admin`) adds departments and accounts to their own institution
// only, never network-wide roles, and sees only their own institution's accounts. The server
// decides every time; this view leaves out what the signed-in account may not do, and shows
// every refusal by its error code.
//
// Every visible text is a catalogue message (i18n.js, `admin.*` keys), in the page's language;
// TEXT, KINDS, ROLES and ERRORS below name them. Names of institutions, departments and people
// are shown as they are (`data-user-content`).
//
// The whole view is built here into the console's empty <section id="admin"> when an
// administrator signs in, and emptied at sign-out, so nothing of it is in the page otherwise.
//
// DOM contract (tests/browser/admin-scenario.mjs relies on it): #admin-scope; #admin-status
// (what the last change did); li.institution[data-institution-id] with h4, its
// li.department[data-department-id], a department form and the webhook panel (webhook-view.js); #admin-accounts with
// li.account[data-user-id][data-username][data-role] (a page at a time: #admin-accounts-search
// searches on the server, #admin-accounts-more adds the next page); #admin-accounts-error; the new-account
// form #admin-account-form, its error #admin-account-error; every error element carries the
// server's code in data-code.

import { ApiError } from "./api.js";
import * as org from "./admin-api.js";
import { apiErrorKey } from "./errors.js";
import { el } from "./dom.js";
import { clearText, tr, trAttr } from "./i18n.js";
import { webhookPanel } from "./webhook-view.js";

/** @typedef {import("./api.js").Account} Account */
/** @typedef {import("./api.js").AccountRole} AccountRole */
/** @typedef {import("./admin-api.js").Institution} Institution */
/** @typedef {import("./admin-api.js").InstitutionKind} InstitutionKind */

/**
 * What the console lends this view.
 * @typedef {object} Tools
 * @property {(err: unknown) => import("./i18n.js").MessageKey} explain the catalogue's words for
 *   a failure (a lost session goes back to sign-in)
 * @property {(title: Message, text: Message, okLabel: Message) => Promise<boolean>} confirm
 * @property {(message?: import("./i18n.js").MessageKey | null) => void} signOut
 */

/** @typedef {import("./i18n.js").MessageKey} MessageKey */
/** @typedef {import("./i18n.js").Params} Params */
/** @typedef {{key: MessageKey, params?: Params}} Message */

/**
 * @param {MessageKey} key
 * @param {Params} [params]
 * @returns {Message}
 */
function msg(key, params) {
  return params ? { key, params } : { key };
}

/** @param {Message} m the options of `el` that put a message into an element */
function text(m) {
  return { i18n: m.key, params: m.params };
}

/** @param {Message} m the options of `el` that make a message an element's accessible name */
function named(m) {
  return { label: m.key, labelParams: m.params };
}

/** @type {Record<InstitutionKind, Message>} */
const KINDS = {
  hospital: msg("admin.kind.hospital"),
  township_clinic: msg("admin.kind.township_clinic"),
  internet_hospital: msg("admin.kind.internet_hospital"),
};

/** @type {Record<AccountRole, Message>} */
const ROLES = {
  doctor: msg("admin.role.doctor"),
  specialist: msg("admin.role.specialist"),
  pharmacist: msg("admin.role.pharmacist"),
  supervisor: msg("admin.role.supervisor"),
  network_supervisor: msg("admin.role.network_supervisor"),
  institution_admin: msg("admin.role.institution_admin"),
  admin: msg("admin.role.admin"),
};

const TEXT = {
  title: msg("admin.title"),
  /** @param {string} name */
  scopeInstitution: (name) => msg("admin.scope_institution", { name }),
  scopeNetwork: msg("admin.scope_network"),
  noUpdate: msg("admin.no_update"),
  editAccount: msg("admin.edit_account"),
  /** @param {string} name */
  editAccountOf: (name) => msg("admin.edit_account_of", { name }),
  /** @param {string} name */
  accountUpdated: (name) => msg("admin.account_updated", { name }),
  nothingChanged: msg("admin.nothing_changed"),
  institutions: msg("admin.institutions"),
  newInstitution: msg("admin.new_institution"),
  name: msg("admin.name"),
  kind: msg("admin.kind"),
  addInstitution: msg("admin.add_institution"),
  rename: msg("admin.rename"),
  /** @param {string} name */
  renameOf: (name) => msg("admin.rename_of", { name }),
  save: msg("admin.save"),
  cancel: msg("admin.cancel"),
  /** @param {string} name */
  departmentsOf: (name) => msg("admin.departments_of", { name }),
  noDepartments: msg("admin.no_departments"),
  /** @param {string} name */
  newDepartmentIn: (name) => msg("admin.new_department_in", { name }),
  addDepartment: msg("admin.add_department"),
  /** @param {string} name */
  addDepartmentTo: (name) => msg("admin.add_department_to", { name }),
  departmentPlaceholder: msg("admin.department_placeholder"),
  noInstitutions: msg("admin.no_institutions"),
  /** @param {string} dept @param {string} inst */
  departmentAdded: (dept, inst) => msg("admin.department_added", { dept, inst }),
  /** @param {string} name */
  renameDepartmentOf: (name) => msg("admin.rename_department_of", { name }),
  removeDepartment: msg("admin.remove_department"),
  /** @param {string} name */
  removeDepartmentOf: (name) => msg("admin.remove_department_of", { name }),
  /** @param {string} name */
  removeDepartmentTitle: (name) => msg("admin.remove_department_title", { name }),
  removeDepartmentText: msg("admin.remove_department_text"),
  /** @param {string} before @param {string} after */
  departmentRenamed: (before, after) => msg("admin.department_renamed", { before, after }),
  /** @param {string} name */
  departmentRemoved: (name) => msg("admin.department_removed", { name }),
  /** @param {string} name */
  institutionAdded: (name) => msg("admin.institution_added", { name }),
  /** @param {string} before @param {string} after */
  institutionRenamed: (before, after) => msg("admin.institution_renamed", { before, after }),
  accounts: msg("admin.accounts"),
  refresh: msg("admin.refresh"),
  showInstitution: msg("admin.show_institution"),
  searchAccounts: msg("admin.search_accounts"),
  moreAccounts: msg("admin.more_accounts"),
  allInstitutions: msg("admin.all_institutions"),
  noAccounts: msg("admin.no_accounts"),
  takesReferrals: msg("admin.takes_referrals"),
  noReferrals: msg("admin.no_referrals"),
  endSessions: msg("admin.end_sessions"),
  /** @param {string} name */
  endSessionsOf: (name) => msg("admin.end_sessions_of", { name }),
  /** @param {string} name */
  endSessionsTitle: (name) => msg("admin.end_sessions_title", { name }),
  endSessionsSelf: msg("admin.end_sessions_self"),
  endSessionsOther: msg("admin.end_sessions_other"),
  selfEnded: msg("admin.self_ended"),
  disable: msg("admin.disable"),
  enable: msg("admin.enable"),
  disabledState: msg("admin.disabled_state"),
  /** @param {string} name */
  disableOf: (name) => msg("admin.disable_of", { name }),
  /** @param {string} name */
  enableOf: (name) => msg("admin.enable_of", { name }),
  /** @param {string} name */
  disableTitle: (name) => msg("admin.disable_title", { name }),
  disableText: msg("admin.disable_text"),
  /** @param {string} name */
  disabledDone: (name) => msg("admin.disabled_done", { name }),
  /** @param {string} name */
  enabledDone: (name) => msg("admin.enabled_done", { name }),
  newAccount: msg("admin.new_account"),
  username: msg("admin.username"),
  usernameHint: msg("admin.username_hint"),
  displayName: msg("admin.display_name"),
  displayNameHint: msg("admin.display_name_hint"),
  role: msg("admin.role"),
  password: msg("admin.password"),
  passwordHint: msg("admin.password_hint"),
  institution: msg("admin.institution"),
  department: msg("admin.department"),
  noDepartment: msg("admin.no_department"),
  titleField: msg("admin.title_field"),
  specialty: msg("admin.specialty"),
  titlePlaceholder: msg("admin.title_placeholder"),
  specialtyPlaceholder: msg("admin.specialty_placeholder"),
  create: msg("admin.create"),
  /** @param {number} shown @param {number} all */
  accountCount: (shown, all) =>
    shown === all ? (all === 1 ? msg("admin.account_count_one") : msg("admin.account_count_all", { all })) : msg("admin.account_count_some", { shown, all }),
  /** @param {number} n @param {string} name */
  sessionsEnded: (n, name) => (n === 1 ? msg("admin.session_ended", { name }) : msg("admin.sessions_ended", { n, name })),
  /** @param {Account} a */
  created: (a) => {
    const place = [a.institution.name, a.department?.name ?? ""].filter((p) => p !== "").join(" · ");
    return msg("admin.created", { name: a.display_name, username: a.username ?? "", place });
  },
};

/** What each error code means here; `conflict` and `invalid_request` depend on the form. */
const ERRORS = {
  forbidden: msg("admin.error.forbidden"),
  forbiddenInstitution: msg("admin.error.forbidden_institution"),
  not_found: msg("admin.error.not_found"),
  conflict: {
    institution: msg("admin.error.conflict.institution"),
    department: msg("admin.error.conflict.department"),
    account: msg("admin.error.conflict.account"),
    other: msg("admin.error.conflict.other"),
  },
  invalid: {
    username: msg("admin.error.invalid.username"),
    display_name: msg("admin.error.invalid.display_name"),
    title: msg("admin.error.invalid.title"),
    specialty: msg("admin.error.invalid.specialty"),
    password: msg("admin.error.invalid.password"),
    department: msg("admin.error.invalid.department"),
    institution: msg("admin.error.invalid.institution"),
    name: msg("admin.error.invalid.name"),
    kind: msg("admin.error.invalid.kind"),
    other: msg("admin.error.invalid.other"),
  },
};

/** @typedef {keyof typeof ERRORS.invalid} Field */
/** @typedef {keyof typeof ERRORS.conflict} What */

const state = {
  /** @type {Account | null} the signed-in administrator */
  me: /** @type {Account | null} */ (null),
  /** @type {Tools | null} */
  tools: /** @type {Tools | null} */ (null),
  /** @type {Institution[]} the institutions this account administers */
  institutions: /** @type {Institution[]} */ ([]),
  /** @type {Account[]} the pages of the list loaded so far */
  accounts: /** @type {Account[]} */ ([]),
  /** @type {string | null} where the next page starts; null when the last is loaded */
  accountsNext: /** @type {string | null} */ (null),
  /** accounts matching the search and institution, over all pages */
  accountsTotal: 0,
  /** counts the lists asked for: an answer to an older search is dropped */
  accountsAsked: 0,
};

/** The view's live parts, made by `build`. */
let view = /** @type {ReturnType<typeof build> | null} */ (null);

/** @param {AccountRole | undefined} role */
export function mayAdminister(role) {
  return role === "admin" || role === "institution_admin";
}

/**
 * Whether an account of role `by` may give `role` to an account it creates (the server's
 * `may_grant`): the network's administrator any, an institution's administrator no
 * network-wide role.
 * @param {AccountRole} by
 * @param {AccountRole} role
 */
export function mayGrant(by, role) {
  if (by === "admin") return true;
  if (by === "institution_admin") return role !== "admin" && role !== "supervisor" && role !== "network_supervisor";
  return false;
}

function networkAdmin() {
  return state.me?.role === "admin";
}

function root() {
  const node = document.getElementById("admin");
  if (!(node instanceof HTMLElement)) throw new Error("page markup is missing #admin");
  return node;
}

/**
 * @param {HTMLElement} node
 * @param {Message | null} m null empties and hides it
 * @param {string} [code] the server's error code, kept in data-code
 */
function showText(node, m, code = "") {
  if (m) tr(node, m.key, m.params);
  else clearText(node);
  node.hidden = m === null;
  if (code) node.dataset.code = code;
  else delete node.dataset.code;
}

/**
 * Which field a 400 `invalid_request` is about. The server's message names it; messages are
 * not stable, so anything unrecognised falls back to the general text.
 * @param {string} message
 * @returns {Field}
 */
function invalidField(message) {
  const m = message.toLowerCase();
  if (/^username\b/.test(m)) return "username";
  if (/^display_name\b/.test(m)) return "display_name";
  if (/^title\b/.test(m)) return "title";
  if (/^specialty\b/.test(m)) return "specialty";
  if (/password/.test(m)) return "password";
  if (/department/.test(m)) return "department";
  if (/institution/.test(m)) return "institution";
  if (/^name\b/.test(m)) return "name";
  if (/^kind\b/.test(m)) return "kind";
  return "other";
}

/**
 * A failure in words, chosen by the server's error code.
 * @param {unknown} err
 * @param {What} what the kind of thing being made or changed
 * @returns {{text: Message, code: string, field?: Field}}
 */
function failure(err, what) {
  if (!(err instanceof ApiError)) return { text: msg("error.unknown"), code: "" };
  switch (err.code) {
    case "unauthenticated":
      // The console signs out and says why.
      return { text: msg(state.tools?.explain(err) ?? "error.unauthenticated"), code: err.code };
    case "forbidden":
      return { text: networkAdmin() ? ERRORS.forbidden : ERRORS.forbiddenInstitution, code: err.code };
    case "not_found":
      return { text: ERRORS.not_found, code: err.code };
    case "conflict":
      return { text: ERRORS.conflict[what], code: err.code };
    case "invalid_request": {
      const field = invalidField(err.message);
      // The server's words name what is wrong when no field is recognised (for developers,
      // but better than nothing).
      const text = field === "other" ? msg("admin.error.invalid.other", { detail: err.message }) : ERRORS.invalid[field];
      return { text, code: err.code, field };
    }
    default:
      if (err.status === 401) return { text: msg(state.tools?.explain(err) ?? "error.unauthenticated"), code: err.code };
      // Every other code in the catalogue's words, with the code beside it.
      return { text: msg("error.with_code", { text: { key: apiErrorKey(err) }, code: err.code }), code: err.code };
  }
}

/**
 * Shows a failure in `node`; a field the server named is marked and focused.
 * @param {HTMLElement} node
 * @param {unknown} err
 * @param {What} what
 * @param {Partial<Record<Field, HTMLInputElement | HTMLSelectElement>>} [fields]
 */
function showFailure(node, err, what, fields = {}) {
  const f = failure(err, what);
  showText(node, f.text, f.code);
  const input = f.field ? fields[f.field] : undefined;
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

/** @param {Iterable<HTMLInputElement | HTMLSelectElement>} inputs */
function clearInvalid(inputs) {
  for (const input of inputs) input.removeAttribute("aria-invalid");
}

/**
 * @param {HTMLSelectElement} select
 * @param {[string, Message | string][]} options value and label (a message, or a name as it is)
 * @param {string} [keep] the value to keep selected when it is still offered
 */
function fillSelect(select, options, keep) {
  select.replaceChildren(...options.map(([value, label]) => el("option", { ...(typeof label === "string" ? { user: label } : text(label)), attrs: { value } })));
  if (keep !== undefined && options.some(([value]) => value === keep)) select.value = keep;
}

/** @param {HTMLSelectElement} select @param {InstitutionKind} [keep] */
function fillKinds(select, keep) {
  fillSelect(select, /** @type {[string, Message][]} */ (Object.entries(KINDS)), keep);
}

/**
 * A labelled field: label, control, and an optional hint it is described by.
 * @param {string} id
 * @param {Message} label
 * @param {HTMLInputElement | HTMLSelectElement} control
 * @param {{hint?: Message, optional?: boolean}} [opts]
 */
function field(id, label, control, opts = {}) {
  control.id = id;
  const labelNode = el("label", { ...text(label), attrs: { for: id } });
  if (opts.optional) labelNode.append(" ", el("span", { className: "optional", i18n: "common.optional" }));
  const node = el("div", { className: "field" }, labelNode, control);
  if (opts.hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    node.append(el("p", { className: "hint", ...text(opts.hint), attrs: { id: hintId } }));
  }
  return node;
}

/**
 * @param {string} maxlength
 * @param {Record<string, string>} [attrs]
 */
function textInput(maxlength, attrs = {}) {
  return el("input", { attrs: { type: "text", maxlength, autocomplete: "off", ...attrs } });
}

/** An error line (role=alert), hidden while empty. */
function errorLine(id = "") {
  const node = el("p", { className: "form-error", attrs: { role: "alert", ...(id ? { id } : {}) } });
  node.hidden = true;
  return node;
}

/** Builds the view's skeleton into #admin. */
function build() {
  const section = root();
  const scope = el("p", { className: "hint", attrs: { id: "admin-scope" } });
  const status = el("p", { className: "admin-status", attrs: { id: "admin-status", role: "status", "aria-live": "polite" } });

  // Institutions and departments.
  const institutions = el("ul", { className: "admin-institutions", attrs: { id: "admin-institutions" } });
  const institutionsEmpty = el("p", { className: "hint", ...text(TEXT.noInstitutions) });
  institutionsEmpty.hidden = true;
  const newInstitutionName = textInput("100", { required: "" });
  const newInstitutionKind = el("select");
  fillKinds(newInstitutionKind, "hospital");
  const newInstitutionButton = el("button", { className: "btn btn-primary", ...text(TEXT.addInstitution), attrs: { type: "submit" } });
  const newInstitutionError = errorLine("admin-institution-error");
  const newInstitutionForm = el(
    "form",
    { className: "form form-inline", attrs: { id: "admin-institution-form", "aria-labelledby": "admin-new-institution-title" } },
    field("admin-institution-name", TEXT.name, newInstitutionName),
    field("admin-institution-kind", TEXT.kind, newInstitutionKind),
    newInstitutionButton,
  );
  const newInstitution = el(
    "div",
    { className: "admin-new-institution" },
    el("h4", { ...text(TEXT.newInstitution), attrs: { id: "admin-new-institution-title" } }),
    newInstitutionForm,
    newInstitutionError,
  );
  newInstitution.hidden = !networkAdmin();

  // Accounts.
  const refresh = el("button", { className: "btn btn-small", ...text(TEXT.refresh), attrs: { type: "button", id: "admin-refresh" } });
  const filter = el("select");
  const filterField = field("admin-accounts-filter", TEXT.showInstitution, filter);
  filterField.hidden = !networkAdmin();
  // The list is searched on the server (a network has thousands of accounts), a page at a time.
  const search = el("input", { attrs: { type: "search", maxlength: "64", autocomplete: "off", spellcheck: "false" } });
  const searchField = field("admin-accounts-search", TEXT.searchAccounts, search);
  const more = el("button", { className: "btn btn-small", ...text(TEXT.moreAccounts), attrs: { type: "button", id: "admin-accounts-more" } });
  more.hidden = true;
  const accountsStatus = el("p", { className: "hint", attrs: { id: "admin-accounts-status" } });
  const accountsError = errorLine("admin-accounts-error");
  const accounts = el("ul", { className: "admin-accounts", attrs: { id: "admin-accounts", "aria-labelledby": "admin-accounts-title" } });

  // The new account.
  const username = textInput("64", { required: "", autocapitalize: "none", spellcheck: "false" });
  const displayName = textInput("64", { required: "" });
  const role = el("select");
  const password = el("input", { attrs: { type: "password", required: "", autocomplete: "new-password" } });
  const institution = el("select");
  const department = el("select");
  const title = textInput("60");
  trAttr(title, "placeholder", TEXT.titlePlaceholder.key);
  const specialty = textInput("60");
  trAttr(specialty, "placeholder", TEXT.specialtyPlaceholder.key);
  const create = el("button", { className: "btn btn-primary", ...text(TEXT.create), attrs: { type: "submit" } });
  const accountError = errorLine("admin-account-error");
  const accountForm = el(
    "form",
    { className: "form admin-account-form", attrs: { id: "admin-account-form", "aria-labelledby": "admin-new-account-title" } },
    field("admin-account-username", TEXT.username, username, { hint: TEXT.usernameHint }),
    field("admin-account-display-name", TEXT.displayName, displayName, { hint: TEXT.displayNameHint }),
    field("admin-account-role", TEXT.role, role),
    field("admin-account-password", TEXT.password, password, { hint: TEXT.passwordHint }),
    field("admin-account-institution", TEXT.institution, institution),
    field("admin-account-department", TEXT.department, department, { optional: true }),
    field("admin-account-title", TEXT.titleField, title, { optional: true }),
    field("admin-account-specialty", TEXT.specialty, specialty, { optional: true }),
    el("div", { className: "admin-form-actions" }, create),
  );

  section.replaceChildren(
    el("h2", { ...text(TEXT.title), attrs: { id: "admin-title" } }),
    scope,
    status,
    el(
      "section",
      { className: "admin-part", attrs: { "aria-labelledby": "admin-institutions-title" } },
      el("h3", { ...text(TEXT.institutions), attrs: { id: "admin-institutions-title" } }),
      institutions,
      institutionsEmpty,
      newInstitution,
    ),
    el(
      "section",
      { className: "admin-part", attrs: { "aria-labelledby": "admin-accounts-title" } },
      el("div", { className: "section-head" }, el("h3", { ...text(TEXT.accounts), attrs: { id: "admin-accounts-title" } }), refresh),
      filterField,
      searchField,
      accountsStatus,
      accountsError,
      accounts,
      more,
    ),
    el(
      "section",
      { className: "admin-part", attrs: { "aria-labelledby": "admin-new-account-title" } },
      el("h3", { ...text(TEXT.newAccount), attrs: { id: "admin-new-account-title" } }),
      el("p", { className: "hint", ...text(TEXT.noUpdate) }),
      accountForm,
      accountError,
    ),
  );
  section.setAttribute("aria-labelledby", "admin-title");

  const parts = {
    scope,
    status,
    institutions,
    institutionsEmpty,
    newInstitutionForm,
    newInstitutionName,
    newInstitutionKind,
    newInstitutionButton,
    newInstitutionError,
    refresh,
    filter,
    search,
    more,
    accountsStatus,
    accountsError,
    accounts,
    accountForm,
    username,
    displayName,
    role,
    password,
    institution,
    department,
    title,
    specialty,
    create,
    accountError,
  };

  newInstitutionForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void addInstitution();
  });
  refresh.addEventListener("click", () => void reload());
  filter.addEventListener("change", () => void loadAccounts());
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let typing;
  // Asks once typing pauses, not at every key.
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => void loadAccounts(), 300);
  });
  more.addEventListener("click", () => void loadAccounts(true));
  institution.addEventListener("change", () => {
    department.value = "";
    fillDepartmentChoices();
  });
  accountForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void createAccount();
  });
  return parts;
}

/**
 * Shows the administration for a signed-in `admin` or `institution_admin` account.
 * @param {Account} me
 * @param {Tools} tools
 */
export async function showAdministration(me, tools) {
  state.me = me;
  state.tools = tools;
  view = build();
  showText(view.scope, networkAdmin() ? TEXT.scopeNetwork : TEXT.scopeInstitution(me.institution.name));
  fillSelect(
    view.role,
    /** @type {[AccountRole, Message][]} */ (Object.entries(ROLES)).filter(([role]) => mayGrant(me.role, role)),
    "doctor",
  );
  root().hidden = false;
  await reload();
}

/** Empties and hides the view (sign-out): nothing of one account's administration stays. */
export function hideAdministration() {
  const section = document.getElementById("admin");
  if (section) {
    section.hidden = true;
    section.replaceChildren();
  }
  view = null;
  state.me = null;
  state.tools = null;
  state.institutions = [];
  state.accounts = [];
  state.accountsNext = null;
  state.accountsTotal = 0;
}

/** Institutions and accounts again, from the server. */
async function reload() {
  await Promise.all([loadInstitutions(), loadAccounts()]);
}

async function loadInstitutions() {
  const me = state.me;
  if (!me || !view) return;
  try {
    const all = await org.institutions();
    if (state.me !== me || !view) return;
    // An institution's administrator works in their own institution only.
    state.institutions = networkAdmin() ? all : all.filter((i) => i.id === me.institution.id);
    view.institutions.replaceChildren(...state.institutions.map(renderInstitution));
    view.institutionsEmpty.hidden = state.institutions.length > 0;
    fillInstitutionChoices();
  } catch (err) {
    if (view) showFailure(view.accountsError, err, "institution");
  }
}

/** The account form's and the filter's institutions, and the departments, keeping choices. */
function fillInstitutionChoices() {
  const me = state.me;
  if (!me || !view) return;
  /** @type {[string, Message | string][]} */
  const choices = state.institutions.map((i) => [i.id, i.name]);
  fillSelect(view.institution, choices, view.institution.value || me.institution.id);
  fillSelect(view.filter, [["", TEXT.allInstitutions], ...choices], view.filter.value);
  fillDepartmentChoices();
}

function fillDepartmentChoices() {
  if (!view) return;
  const chosen = state.institutions.find((i) => i.id === view?.institution.value);
  /** @type {[string, Message | string][]} */
  const options = [["", TEXT.noDepartment], ...(chosen?.departments ?? []).map((d) => /** @type {[string, string]} */ ([d.id, d.name]))];
  fillSelect(view.department, options, view.department.value);
}

/**
 * One institution: its name and kind (Rename for the network's administrator), its
 * departments, and a form to add one.
 * @param {Institution} inst
 * @returns {HTMLLIElement}
 */
function renderInstitution(inst) {
  const headingId = `admin-institution-${inst.id}`;
  const error = errorLine();
  const head = el(
    "div",
    { className: "institution-head" },
    el("h4", { user: inst.name, attrs: { id: headingId, tabindex: "-1" } }),
    el("span", { className: "status", ...(KINDS[inst.kind] ? text(KINDS[inst.kind]) : { user: inst.kind }) }),
  );
  const item = el("li", { className: "institution", attrs: { "aria-labelledby": headingId } }, head);
  item.dataset.institutionId = inst.id;
  if (networkAdmin()) {
    const [button, form] = renameForm(inst, error);
    head.append(button);
    item.append(form);
  }

  const departments = inst.departments.length
    ? el(
        "ul",
        { className: "departments", ...named(TEXT.departmentsOf(inst.name)) },
        ...inst.departments.map((d) => departmentItem(inst, d, error)),
      )
    : el("p", { className: "hint", ...text(TEXT.noDepartments) });

  const inputId = `admin-new-department-${inst.id}`;
  const input = textInput("100", { id: inputId, required: "" });
  trAttr(input, "placeholder", TEXT.departmentPlaceholder.key);
  const add = el("button", {
    className: "btn btn-small",
    ...text(TEXT.addDepartment),
    ...named(TEXT.addDepartmentTo(inst.name)), attrs: { type: "submit" },
  });
  const form = el(
    "form",
    { className: "form department-form" },
    el("label", { ...text(TEXT.newDepartmentIn(inst.name)), attrs: { for: inputId } }),
    el("div", { className: "search-row" }, input, add),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    add.disabled = true;
    showText(error, null);
    input.removeAttribute("aria-invalid");
    try {
      const created = await org.createDepartment(inst.id, input.value.trim());
      if (view) showText(view.status, TEXT.departmentAdded(created.name, inst.name));
      await loadInstitutions();
      focusInstitution(inst.id);
    } catch (err) {
      showFailure(error, err, "department", { name: input });
      add.disabled = false;
      input.focus();
    }
  });
  item.append(departments, form, error);
  if (state.tools) item.append(webhookPanel(inst, state.tools));
  return item;
}

/**
 * One department: its name, Rename (in place) and Remove (after asking; refused by the server
 * while accounts belong to it).
 * @param {Institution} inst
 * @param {{id: string, name: string}} d
 * @param {HTMLElement} error the institution's error line
 * @returns {HTMLLIElement}
 */
function departmentItem(inst, d, error) {
  const remove = el("button", {
    className: "btn btn-small btn-danger",
    ...text(TEXT.removeDepartment),
    ...named(TEXT.removeDepartmentOf(d.name)), attrs: { type: "button" },
  });
  const name = textInput("100", { required: "" });
  const { button: rename, form, save, cancel } = renameControls(TEXT.renameDepartmentOf(d.name), field(`admin-rename-department-${d.id}`, TEXT.name, name));
  inlineForm(rename, form, cancel, error, () => {
    name.value = d.name;
    return name;
  }, true);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    save.disabled = true;
    showText(error, null);
    try {
      const renamed = await org.renameDepartment(d.id, name.value.trim());
      if (view) showText(view.status, TEXT.departmentRenamed(d.name, renamed.name));
      await reload();
      focusInstitution(inst.id);
    } catch (err) {
      showFailure(error, err, "department", { name });
      save.disabled = false;
    }
  });
  remove.addEventListener("click", async () => {
    const tools = state.tools;
    if (!tools) return;
    if (!(await tools.confirm(TEXT.removeDepartmentTitle(d.name), TEXT.removeDepartmentText, TEXT.removeDepartment))) return;
    remove.disabled = true;
    showText(error, null);
    try {
      await org.removeDepartment(d.id);
      if (view) showText(view.status, TEXT.departmentRemoved(d.name));
      await reload();
      focusInstitution(inst.id);
    } catch (err) {
      showFailure(error, err, "department");
      remove.disabled = false;
    }
  });
  const li = el("li", { className: "department" }, el("span", { className: "department-name", user: d.name }), rename, remove, form);
  li.dataset.departmentId = d.id;
  return li;
}

/**
 * The network administrator's Rename button and its form (name and kind).
 * @param {Institution} inst
 * @param {HTMLElement} error
 * @returns {[HTMLButtonElement, HTMLFormElement]}
 */
function renameForm(inst, error) {
  const name = textInput("100", { required: "" });
  const kind = el("select");
  const { button, form, save, cancel } = renameControls(
    TEXT.renameOf(inst.name),
    field(`admin-rename-name-${inst.id}`, TEXT.name, name),
    field(`admin-rename-kind-${inst.id}`, TEXT.kind, kind),
  );
  inlineForm(button, form, cancel, error, () => {
    name.value = inst.name;
    fillKinds(kind, inst.kind);
    return name;
  }, true);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    save.disabled = true;
    showText(error, null);
    name.removeAttribute("aria-invalid");
    try {
      const newName = name.value.trim();
      await org.updateInstitution(inst.id, newName, /** @type {InstitutionKind} */ (kind.value));
      if (view) showText(view.status, TEXT.institutionRenamed(inst.name, newName));
      // Accounts show their institution's name.
      await reload();
      focusInstitution(inst.id);
    } catch (err) {
      showFailure(error, err, "institution", { name });
      save.disabled = false;
    }
  });
  return [button, form];
}

/**
 * A Rename button and the form it opens in place (`fields`, then Save and Cancel), both named
 * `label` for screen readers; the caller wires them (`inlineForm`) and handles the submit.
 * @param {Message} label
 * @param {...HTMLElement} fields
 */
function renameControls(label, ...fields) {
  const button = el("button", {
    className: "btn btn-small",
    ...text(TEXT.rename),
    ...named(label), attrs: { type: "button", "aria-expanded": "false" },
  });
  const save = el("button", { className: "btn btn-primary btn-small", ...text(TEXT.save), attrs: { type: "submit" } });
  const cancel = el("button", { className: "btn btn-small", ...text(TEXT.cancel), attrs: { type: "button" } });
  const form = el("form", { className: "form form-inline rename-form", ...named(label) }, ...fields, el("div", { className: "actions" }, save, cancel));
  return { button, form, save, cancel };
}

/**
 * Wires a form that opens in place under its button: hidden at first; the button fills it
 * (`fill`, which returns the field to start in), shows it and clears its error; Cancel hides it
 * and goes back to the button.
 * @param {HTMLButtonElement} button
 * @param {HTMLFormElement} form
 * @param {HTMLButtonElement} cancel
 * @param {HTMLElement} error
 * @param {() => HTMLInputElement} fill
 * @param {boolean} [select] select the starting field's text (to replace it)
 */
function inlineForm(button, form, cancel, error, fill, select = false) {
  form.hidden = true;
  button.addEventListener("click", () => {
    const first = fill();
    form.hidden = false;
    button.setAttribute("aria-expanded", "true");
    showText(error, null);
    first.focus();
    if (select) first.select();
  });
  cancel.addEventListener("click", () => {
    form.hidden = true;
    button.setAttribute("aria-expanded", "false");
    button.focus();
  });
}

/** @param {string} id */
function focusInstitution(id) {
  const heading = view?.institutions.querySelector(`li[data-institution-id="${CSS.escape(id)}"] h4`);
  if (heading instanceof HTMLElement) heading.focus();
}

async function addInstitution() {
  const parts = view;
  if (!parts) return;
  parts.newInstitutionButton.disabled = true;
  showText(parts.newInstitutionError, null);
  parts.newInstitutionName.removeAttribute("aria-invalid");
  try {
    const created = await org.createInstitution(
      parts.newInstitutionName.value.trim(),
      /** @type {InstitutionKind} */ (parts.newInstitutionKind.value),
    );
    parts.newInstitutionName.value = "";
    showText(parts.status, TEXT.institutionAdded(created.name));
    await loadInstitutions();
    focusInstitution(created.id);
  } catch (err) {
    showFailure(parts.newInstitutionError, err, "institution", { name: parts.newInstitutionName, kind: parts.newInstitutionKind });
  } finally {
    parts.newInstitutionButton.disabled = false;
  }
}

/**
 * The accounts list from its first page for the search and institution chosen, or (`more`) its
 * next page added to those shown.
 * @param {boolean} [more]
 */
async function loadAccounts(more = false) {
  const me = state.me;
  if (!me || !view) return;
  if (more && !state.accountsNext) return;
  const asked = ++state.accountsAsked;
  view.refresh.disabled = true;
  view.more.disabled = true;
  try {
    const page = await org.accounts({
      q: view.search.value.trim(),
      institutionId: view.filter.value,
      after: more ? state.accountsNext : null,
    });
    if (state.me !== me || !view || asked !== state.accountsAsked) return;
    state.accounts = more ? [...state.accounts, ...page.accounts] : page.accounts;
    state.accountsNext = page.next;
    state.accountsTotal = page.total;
    showText(view.accountsError, null);
    renderAccounts();
  } catch (err) {
    if (view && asked === state.accountsAsked) showFailure(view.accountsError, err, "account");
  } finally {
    if (view && asked === state.accountsAsked) {
      view.refresh.disabled = false;
      view.more.disabled = false;
    }
  }
}

/** The accounts loaded, how many of how many match, and whether more can be loaded. */
function renderAccounts() {
  if (!view) return;
  view.accounts.replaceChildren(...state.accounts.map(renderAccount));
  const count = state.accountsTotal ? TEXT.accountCount(state.accounts.length, state.accountsTotal) : TEXT.noAccounts;
  tr(view.accountsStatus, count.key, count.params);
  view.more.hidden = state.accountsNext === null;
}

/**
 * @param {Account} a
 * @returns {HTMLLIElement}
 */
function renderAccount(a) {
  const nameId = `admin-account-${a.id}`;
  const clinician = a.role === "doctor" || a.role === "specialist";
  const end = el("button", {
    className: "btn btn-small btn-danger",
    ...text(TEXT.endSessions),
    ...named(TEXT.endSessionsOf(a.display_name)), attrs: { type: "button" },
  });
  end.addEventListener("click", () => void endSessions(a, end));
  // Disable (a colleague who left) or enable again; not one's own account.
  const toggle = el("button", {
    className: a.disabled ? "btn btn-small" : "btn btn-small btn-danger",
    ...text(a.disabled ? TEXT.enable : TEXT.disable),
    ...named(a.disabled ? TEXT.enableOf(a.display_name) : TEXT.disableOf(a.display_name)),
    attrs: { type: "button", "data-action": a.disabled ? "enable" : "disable" },
  });
  toggle.hidden = a.id === state.me?.id;
  toggle.addEventListener("click", () => void setDisabled(a, toggle));
  const error = errorLine();
  const [editButton, editForm] = accountForm(a, error);
  const place = [a.institution.name, a.department?.name ?? ""].filter((p) => p !== "").join(" · ");
  const profile = [a.title, a.specialty].filter((p) => p !== "").join(" · ");
  const item = el(
    "li",
    { className: "account-card", attrs: { "aria-labelledby": nameId } },
    el(
      "div",
      { className: "account-head" },
      el("span", { className: "member-name", user: a.display_name, attrs: { id: nameId } }),
      el("span", { className: "status", ...(ROLES[a.role] ? text(ROLES[a.role]) : { user: a.role }) }),
      ...(a.disabled ? [el("span", { className: "status status-disabled", ...text(TEXT.disabledState) })] : []),
      editButton,
      end,
      toggle,
    ),
    el("p", { className: "account-line" }, el("span", { className: "mono", user: a.username ?? "" }), ...(profile ? [el("span", { user: ` · ${profile}` })] : [])),
    el("p", { className: "account-line hint", user: place }),
    editForm,
    error,
  );
  if (clinician) {
    item.append(
      el("p", {
        className: `account-line availability${a.accepts_referrals ? " availability-on" : ""}`,
        ...text(a.accepts_referrals ? TEXT.takesReferrals : TEXT.noReferrals),
      }),
    );
  }
  item.dataset.userId = a.id;
  item.dataset.username = a.username ?? "";
  item.dataset.role = a.role;
  item.dataset.disabled = String(a.disabled === true);
  return item;
}

/**
 * The Edit button of an account and its form: name shown, role (those the signed-in
 * administrator may give; not their own), institution (the network's administrator only),
 * department, title and specialty. Only what changed is sent.
 * @param {Account} a
 * @param {HTMLElement} error
 * @returns {[HTMLButtonElement, HTMLFormElement]}
 */
function accountForm(a, error) {
  const me = state.me;
  const button = el("button", {
    className: "btn btn-small",
    ...text(TEXT.editAccount),
    ...named(TEXT.editAccountOf(a.display_name)), attrs: { type: "button", "aria-expanded": "false" },
  });
  const name = textInput("64", { required: "" });
  const role = el("select");
  const institution = el("select");
  const department = el("select");
  const title = textInput("60");
  const specialty = textInput("60");
  const save = el("button", { className: "btn btn-primary btn-small", ...text(TEXT.save), attrs: { type: "submit" } });
  const cancel = el("button", { className: "btn btn-small", ...text(TEXT.cancel), attrs: { type: "button" } });
  const form = el(
    "form",
    { className: "form account-edit", ...named(TEXT.editAccountOf(a.display_name)) },
    field(`admin-edit-name-${a.id}`, TEXT.displayName, name),
    field(`admin-edit-role-${a.id}`, TEXT.role, role),
    field(`admin-edit-institution-${a.id}`, TEXT.institution, institution),
    field(`admin-edit-department-${a.id}`, TEXT.department, department),
    field(`admin-edit-title-${a.id}`, TEXT.titleField, title, { optional: true }),
    field(`admin-edit-specialty-${a.id}`, TEXT.specialty, specialty, { optional: true }),
    el("div", { className: "actions" }, save, cancel),
  );
  const departments = () => {
    const chosen = state.institutions.find((i) => i.id === institution.value);
    /** @type {[string, Message | string][]} */
    const options = [["", TEXT.noDepartment], ...(chosen?.departments ?? []).map((d) => /** @type {[string, string]} */ ([d.id, d.name]))];
    fillSelect(department, options, institution.value === a.institution.id ? (a.department?.id ?? "") : "");
  };
  institution.addEventListener("change", departments);
  inlineForm(button, form, cancel, error, () => {
    const by = me?.role ?? "doctor";
    name.value = a.display_name;
    const roles = /** @type {[string, Message][]} */ (Object.entries(ROLES)).filter(([r]) => r === a.role || (a.id !== me?.id && mayGrant(by, /** @type {AccountRole} */ (r))));
    fillSelect(role, roles, a.role);
    role.disabled = a.id === me?.id;
    fillSelect(institution, state.institutions.map((i) => /** @type {[string, string]} */ ([i.id, i.name])), a.institution.id);
    institution.disabled = !networkAdmin();
    departments();
    title.value = a.title;
    specialty.value = a.specialty;
    return name;
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    /** @type {import("./admin-api.js").AccountPatch} */
    const patch = {};
    if (name.value.trim() !== a.display_name) patch.display_name = name.value.trim();
    if (role.value !== a.role) patch.role = /** @type {AccountRole} */ (role.value);
    if (institution.value !== a.institution.id) patch.institution_id = institution.value;
    if (department.value !== (a.department?.id ?? "") || patch.institution_id) patch.department_id = department.value || null;
    if (title.value.trim() !== a.title) patch.title = title.value.trim();
    if (specialty.value.trim() !== a.specialty) patch.specialty = specialty.value.trim();
    if (Object.keys(patch).length === 0) {
      showText(error, TEXT.nothingChanged);
      return;
    }
    save.disabled = true;
    showText(error, null);
    clearInvalid([name, title, specialty]);
    try {
      const updated = await org.updateAccount(a.id, patch);
      if (view) showText(view.status, TEXT.accountUpdated(updated.display_name));
      await loadAccounts();
    } catch (err) {
      showFailure(error, err, "account", { display_name: name, title, specialty });
      save.disabled = false;
    }
  });
  return [button, form];
}

/**
 * "End all sessions": every device the account is signed in on is signed out.
 * @param {Account} a
 * @param {HTMLButtonElement} button
 */
async function endSessions(a, button) {
  const tools = state.tools;
  if (!tools || !view) return;
  const self = a.id === state.me?.id;
  const ok = await tools.confirm(TEXT.endSessionsTitle(a.display_name), self ? TEXT.endSessionsSelf : TEXT.endSessionsOther, TEXT.endSessions);
  if (!ok || !view) return;
  button.disabled = true;
  showText(view.accountsError, null);
  try {
    const n = await org.revokeSessions(a.id);
    if (self) {
      tools.signOut(TEXT.selfEnded.key);
      return;
    }
    if (view) showText(view.status, TEXT.sessionsEnded(n, a.display_name));
  } catch (err) {
    if (view) showFailure(view.accountsError, err, "account");
  } finally {
    button.disabled = false;
  }
}

/**
 * Disables an account (after asking) or enables it again, then lists the accounts anew.
 * @param {Account} a
 * @param {HTMLButtonElement} button
 */
async function setDisabled(a, button) {
  const tools = state.tools;
  if (!tools || !view) return;
  const disable = a.disabled !== true;
  if (disable && !(await tools.confirm(TEXT.disableTitle(a.display_name), TEXT.disableText, TEXT.disable))) return;
  if (!view) return;
  button.disabled = true;
  showText(view.accountsError, null);
  try {
    await org.setDisabled(a.id, disable);
    if (view) showText(view.status, disable ? TEXT.disabledDone(a.display_name) : TEXT.enabledDone(a.display_name));
    await loadAccounts();
  } catch (err) {
    if (view) showFailure(view.accountsError, err, "account");
    button.disabled = false;
  }
}

async function createAccount() {
  const me = state.me;
  const parts = view;
  if (!me || !parts) return;
  /** @type {import("./admin-api.js").NewAccount} */
  const body = {
    username: parts.username.value.trim(),
    display_name: parts.displayName.value.trim(),
    role: /** @type {AccountRole} */ (parts.role.value),
    password: parts.password.value,
    institution_id: parts.institution.value || me.institution.id,
  };
  if (parts.department.value) body.department_id = parts.department.value;
  if (parts.title.value.trim()) body.title = parts.title.value.trim();
  if (parts.specialty.value.trim()) body.specialty = parts.specialty.value.trim();
  parts.create.disabled = true;
  showText(parts.accountError, null);
  const fields = {
    username: parts.username,
    display_name: parts.displayName,
    password: parts.password,
    institution: parts.institution,
    department: parts.department,
    title: parts.title,
    specialty: parts.specialty,
  };
  clearInvalid(Object.values(fields));
  try {
    const created = await org.createAccount(body);
    showText(parts.status, TEXT.created({ ...created, username: created.username ?? body.username }));
    // The institution and department stay chosen for the next colleague; the person's go.
    for (const input of [parts.username, parts.displayName, parts.password, parts.title, parts.specialty]) input.value = "";
    await loadAccounts();
    parts.username.focus();
  } catch (err) {
    showFailure(parts.accountError, err, "account", fields);
    if (err instanceof ApiError && err.code === "conflict") {
      parts.username.setAttribute("aria-invalid", "true");
      parts.username.focus();
    }
  } finally {
    parts.create.disabled = false;
  }
}
