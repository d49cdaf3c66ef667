// The network's administration in the console (docs/protocol.md, "Organisation"): institutions
// with their departments, and accounts. The network's administrator (`admin`) adds and renames
// institutions, adds departments anywhere and manages every account; an institution's
// administrator (`institution_admin`) adds departments and accounts to their own institution
// only, never network-wide roles, and sees only their own institution's accounts. The server
// decides every time; this view leaves out what the signed-in account may not do, and shows
// every refusal by its error code.
//
// Every visible text is in English and Chinese, as the consent panel writes them: names of
// things (headings, labels, buttons, choices) "English / 中文"; sentences (status lines, hints,
// errors) "中文 · English". They are all in TEXT below.
//
// The whole view is built here into the console's empty <section id="admin"> when an
// administrator signs in, and emptied at sign-out, so nothing of it is in the page otherwise.
//
// DOM contract (tests/browser/admin-scenario.mjs relies on it): #admin-scope; #admin-status
// (what the last change did); li.institution[data-institution-id] with h4, its
// li.department[data-department-id] and a department form; #admin-accounts with
// li.account[data-user-id][data-username][data-role]; #admin-accounts-error; the new-account
// form #admin-account-form, its error #admin-account-error; every error element carries the
// server's code in data-code.

import { ApiError } from "./api.js";
import * as org from "./admin-api.js";
import { el } from "./dom.js";

/** @typedef {import("./api.js").Account} Account */
/** @typedef {import("./api.js").AccountRole} AccountRole */
/** @typedef {import("./admin-api.js").Institution} Institution */
/** @typedef {import("./admin-api.js").InstitutionKind} InstitutionKind */

/**
 * What the console lends this view.
 * @typedef {object} Tools
 * @property {(err: unknown) => string} explain the console's words for a failure (a lost
 *   session goes back to sign-in)
 * @property {(title: string, text: string, okLabel: string) => Promise<boolean>} confirm
 * @property {(message?: string) => void} signOut
 */

/** @type {Record<InstitutionKind, string>} */
const KINDS = {
  hospital: "Hospital / 医院",
  township_clinic: "Township health centre / 乡镇卫生院",
  internet_hospital: "Internet hospital / 互联网医院",
};

/** @type {Record<AccountRole, string>} */
const ROLES = {
  doctor: "Doctor / 医生",
  specialist: "Specialist / 专科医生",
  pharmacist: "Pharmacist / 药师",
  supervisor: "Institution supervisor / 机构监管人员",
  network_supervisor: "Network supervisor / 网络监管人员",
  institution_admin: "Institution administrator / 机构管理员",
  admin: "Network administrator / 网络管理员",
};

const TEXT = {
  title: "Administration / 机构与账户管理",
  /** @param {string} name */
  scopeInstitution: (name) => `您管理${name}的科室和账户。 · You administer ${name}: its departments and its accounts.`,
  scopeNetwork: "您管理整个网络：所有机构、科室和账户。 · You administer the whole network: its institutions, their departments and every account.",
  noUpdate:
    "修改已有账户：点击账户旁的“Edit / 修改”。角色变更在该账户下一次操作时生效。 · To change an existing account, use its Edit button; a new role takes effect on the account's next action.",
  editAccount: "Edit / 修改",
  /** @param {string} name */
  editAccountOf: (name) => `Edit ${name} / 修改 ${name}`,
  /** @param {string} name */
  accountUpdated: (name) => `已保存${name}的修改。 · ${name}: changes saved.`,
  nothingChanged: "没有修改。 · Nothing was changed.",
  institutions: "Institutions and departments / 机构与科室",
  newInstitution: "Add an institution / 添加机构",
  name: "Name / 名称",
  kind: "Kind / 类型",
  addInstitution: "Add institution / 添加机构",
  rename: "Rename / 修改",
  /** @param {string} name */
  renameOf: (name) => `Rename ${name} / 修改${name}`,
  save: "Save / 保存",
  cancel: "Cancel / 取消",
  /** @param {string} name */
  departmentsOf: (name) => `Departments of ${name} / ${name}的科室`,
  noDepartments: "还没有科室。 · No departments yet.",
  /** @param {string} name */
  newDepartmentIn: (name) => `New department in ${name} / ${name}新科室`,
  addDepartment: "Add department / 添加科室",
  /** @param {string} name */
  addDepartmentTo: (name) => `Add department to ${name} / 为${name}添加科室`,
  departmentPlaceholder: "e.g. 肾内科 / Nephrology",
  noInstitutions: "还没有机构。 · No institutions yet.",
  /** @param {string} dept @param {string} inst */
  departmentAdded: (dept, inst) => `已为${inst}添加科室“${dept}”。 · Department ${dept} added to ${inst}.`,
  /** @param {string} name */
  institutionAdded: (name) => `已添加机构“${name}”。 · ${name} added.`,
  /** @param {string} before @param {string} after */
  institutionRenamed: (before, after) => `“${before}”已改为“${after}”。 · ${before} is now ${after}.`,
  accounts: "Accounts / 账户",
  refresh: "Refresh / 刷新",
  showInstitution: "Show / 显示",
  allInstitutions: "All institutions / 全部机构",
  /** @param {number} shown @param {number} all */
  accountCount: (shown, all) =>
    shown === all ? `共 ${all} 个账户。 · ${all} ${all === 1 ? "account" : "accounts"}.` : `显示 ${shown} / ${all} 个账户。 · ${shown} of ${all} accounts.`,
  noAccounts: "没有账户。 · No accounts.",
  takesReferrals: "接受转诊 · Taking referrals",
  noReferrals: "暂不接受转诊 · Not taking referrals",
  endSessions: "End all sessions / 结束所有会话",
  /** @param {string} name */
  endSessionsOf: (name) => `End all sessions of ${name} / 结束${name}的所有会话`,
  /** @param {string} name */
  endSessionsTitle: (name) => `结束${name}的所有会话？ · End all sessions of ${name}?`,
  endSessionsSelf:
    "您将在所有设备上退出登录（包括此控制台），需要重新登录。 · You are signed out everywhere, this console included, and must sign in again.",
  endSessionsOther:
    "对方将立即在所有设备上退出登录（设备丢失、同事离职），须用密码重新登录。 · They are signed out on every device at once (a lost device, a colleague who left) and must sign in again with their password.",
  /** @param {number} n @param {string} name */
  sessionsEnded: (n, name) => `已结束${name}的 ${n} 个会话。 · ${n} ${n === 1 ? "session" : "sessions"} of ${name} ended.`,
  selfEnded: "您的所有会话已结束，请重新登录。 · All your sessions were ended. Please sign in again.",
  newAccount: "New account / 新建账户",
  username: "Username / 用户名",
  usernameHint: "登录用：字母、数字或 . _ - @ · What they sign in with: letters, digits or . _ - @",
  displayName: "Display name / 显示名称",
  displayNameHint: "同事和患者看到的名字。 · As colleagues and patients see it.",
  role: "Role / 角色",
  password: "Initial password / 初始密码",
  passwordHint: "至少 8 个字符。请当面交给本人，登录后可自行修改。 · At least 8 characters. Give it to them in person; they can change it after signing in.",
  institution: "Institution / 机构",
  department: "Department / 科室",
  noDepartment: "No department / 不属于科室",
  titleField: "Title / 职称",
  specialty: "Specialty / 专科",
  optional: "(optional / 可选)",
  create: "Create account / 创建账户",
  /** @param {Account} a */
  created: (a) => {
    const place = [a.institution.name, a.department?.name ?? ""].filter((p) => p !== "").join(" · ");
    return `已创建账户：${a.display_name}（${a.username ?? ""}），${place}，现在即可登录。 · Account created: ${a.display_name} (${a.username ?? ""}), ${place}. They can sign in now.`;
  },
};

/** What each error code means here; `conflict` and `invalid_request` depend on the form. */
const ERRORS = {
  forbidden: "您的账户无权执行此操作。 · Your account may not do this.",
  forbiddenInstitution:
    "无权执行此操作：机构管理员只能管理本机构的科室和账户，且不能创建网络管理员或监管人员账户。 · Not allowed: an institution's administrator manages only their own institution's departments and accounts, and never creates administrator or supervisor accounts.",
  not_found: "未找到，可能已被删除。请刷新后重试。 · Not found: it may have been removed. Refresh and try again.",
  conflict: {
    institution: "已有同名机构。 · An institution with this name exists.",
    department: "该机构已有同名科室。 · The institution already has a department with this name.",
    account: "该用户名已被使用。 · This username is taken.",
    other: "与他人的修改冲突，请刷新后重试。 · Someone else changed this meanwhile. Refresh and try again.",
  },
  invalid: {
    username: "用户名须为 1–64 个字母、数字或 . _ - @。 · A username is 1 to 64 letters, digits or . _ - @.",
    display_name: "显示名称须为 1–64 个字符，不含隐藏字符。 · A display name is 1 to 64 characters, with no hidden characters.",
    title: "职称最多 60 个字符，不含隐藏字符。 · A title is at most 60 characters, with no hidden characters.",
    specialty: "专科最多 60 个字符，不含隐藏字符。 · A specialty is at most 60 characters, with no hidden characters.",
    password: "初始密码至少需要 8 个字符（最多 4096 字节）。 · The initial password needs at least 8 characters (and at most 4096 bytes).",
    department: "该科室不属于所选机构。 · This department is not one of the chosen institution's.",
    institution: "所选机构不存在，请刷新后重选。 · No such institution: refresh and choose again.",
    name: "名称须为 1–100 个字符，不含隐藏字符。 · A name is 1 to 100 characters, with no hidden characters.",
    kind: "请选择机构类型。 · Choose the kind of institution.",
    other: "请检查填写的内容。 · Check what you entered.",
  },
  too_many_attempts: "尝试次数过多，请稍后再试。 · Too many attempts. Try again later.",
  network: "无法连接服务器，请检查网络后重试。 · The server could not be reached. Check the network and try again.",
  internal: "服务器出现问题，请稍后再试。 · The server had a problem. Try again in a moment.",
  unexpected: "出了点问题，请重试。 · Something went wrong. Try again.",
  /** @param {string} code */
  other: (code) => `操作未完成（错误代码 ${code}）。 · That did not work (error code ${code}).`,
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
  /** @type {Account[]} */
  accounts: /** @type {Account[]} */ ([]),
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
 * @param {string} text empty hides it
 * @param {string} [code] the server's error code, kept in data-code
 */
function showText(node, text, code = "") {
  node.textContent = text;
  node.hidden = text === "";
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
 * @returns {{text: string, code: string, field?: Field}}
 */
function failure(err, what) {
  if (!(err instanceof ApiError)) return { text: ERRORS.unexpected, code: "" };
  switch (err.code) {
    case "unauthenticated":
      // The console signs out and says why.
      return { text: state.tools?.explain(err) ?? "", code: err.code };
    case "forbidden":
      return { text: networkAdmin() ? ERRORS.forbidden : ERRORS.forbiddenInstitution, code: err.code };
    case "not_found":
      return { text: ERRORS.not_found, code: err.code };
    case "conflict":
      return { text: ERRORS.conflict[what], code: err.code };
    case "invalid_request": {
      const field = invalidField(err.message);
      const text = field === "other" ? `${ERRORS.invalid.other} (${err.message})` : ERRORS.invalid[field];
      return { text, code: err.code, field };
    }
    case "too_many_attempts":
      return { text: ERRORS.too_many_attempts, code: err.code };
    case "network":
      return { text: ERRORS.network, code: err.code };
    case "internal":
      return { text: ERRORS.internal, code: err.code };
    default:
      if (err.status === 401) return { text: state.tools?.explain(err) ?? "", code: err.code };
      return { text: ERRORS.other(err.code), code: err.code };
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
 * @param {[string, string][]} options value and label
 * @param {string} [keep] the value to keep selected when it is still offered
 */
function fillSelect(select, options, keep) {
  select.replaceChildren(...options.map(([value, label]) => el("option", { text: label, attrs: { value } })));
  if (keep !== undefined && options.some(([value]) => value === keep)) select.value = keep;
}

/** @param {HTMLSelectElement} select @param {InstitutionKind} [keep] */
function fillKinds(select, keep) {
  fillSelect(select, /** @type {[string, string][]} */ (Object.entries(KINDS)), keep);
}

/**
 * A labelled field: label, control, and an optional hint it is described by.
 * @param {string} id
 * @param {string} label
 * @param {HTMLInputElement | HTMLSelectElement} control
 * @param {{hint?: string, optional?: boolean}} [opts]
 */
function field(id, label, control, opts = {}) {
  control.id = id;
  const labelNode = el("label", { text: label, attrs: { for: id } });
  if (opts.optional) labelNode.append(" ", el("span", { className: "optional", text: TEXT.optional }));
  const node = el("div", { className: "field" }, labelNode, control);
  if (opts.hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    node.append(el("p", { className: "hint", text: opts.hint, attrs: { id: hintId } }));
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
  const institutionsEmpty = el("p", { className: "hint", text: TEXT.noInstitutions });
  institutionsEmpty.hidden = true;
  const newInstitutionName = textInput("100", { required: "" });
  const newInstitutionKind = el("select");
  fillKinds(newInstitutionKind, "hospital");
  const newInstitutionButton = el("button", { className: "btn btn-primary", text: TEXT.addInstitution, attrs: { type: "submit" } });
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
    el("h4", { text: TEXT.newInstitution, attrs: { id: "admin-new-institution-title" } }),
    newInstitutionForm,
    newInstitutionError,
  );
  newInstitution.hidden = !networkAdmin();

  // Accounts.
  const refresh = el("button", { className: "btn btn-small", text: TEXT.refresh, attrs: { type: "button", id: "admin-refresh" } });
  const filter = el("select");
  const filterField = field("admin-accounts-filter", TEXT.showInstitution, filter);
  filterField.hidden = !networkAdmin();
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
  const title = textInput("60", { placeholder: "e.g. 主任医师 / Chief physician" });
  const specialty = textInput("60", { placeholder: "e.g. 心血管内科 / Cardiology" });
  const create = el("button", { className: "btn btn-primary", text: TEXT.create, attrs: { type: "submit" } });
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
    el("h2", { text: TEXT.title, attrs: { id: "admin-title" } }),
    scope,
    status,
    el(
      "section",
      { className: "admin-part", attrs: { "aria-labelledby": "admin-institutions-title" } },
      el("h3", { text: TEXT.institutions, attrs: { id: "admin-institutions-title" } }),
      institutions,
      institutionsEmpty,
      newInstitution,
    ),
    el(
      "section",
      { className: "admin-part", attrs: { "aria-labelledby": "admin-accounts-title" } },
      el("div", { className: "section-head" }, el("h3", { text: TEXT.accounts, attrs: { id: "admin-accounts-title" } }), refresh),
      filterField,
      accountsStatus,
      accountsError,
      accounts,
    ),
    el(
      "section",
      { className: "admin-part", attrs: { "aria-labelledby": "admin-new-account-title" } },
      el("h3", { text: TEXT.newAccount, attrs: { id: "admin-new-account-title" } }),
      el("p", { className: "hint", text: TEXT.noUpdate }),
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
  filter.addEventListener("change", () => renderAccounts());
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
  view.scope.textContent = networkAdmin() ? TEXT.scopeNetwork : TEXT.scopeInstitution(me.institution.name);
  fillSelect(
    view.role,
    /** @type {[AccountRole, string][]} */ (Object.entries(ROLES)).filter(([role]) => mayGrant(me.role, role)),
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
  /** @type {[string, string][]} */
  const choices = state.institutions.map((i) => [i.id, i.name]);
  fillSelect(view.institution, choices, view.institution.value || me.institution.id);
  fillSelect(view.filter, [["", TEXT.allInstitutions], ...choices], view.filter.value);
  fillDepartmentChoices();
}

function fillDepartmentChoices() {
  if (!view) return;
  const chosen = state.institutions.find((i) => i.id === view?.institution.value);
  /** @type {[string, string][]} */
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
    el("h4", { text: inst.name, attrs: { id: headingId, tabindex: "-1" } }),
    el("span", { className: "status", text: KINDS[inst.kind] ?? inst.kind }),
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
        { className: "departments", attrs: { "aria-label": TEXT.departmentsOf(inst.name) } },
        ...inst.departments.map((d) => {
          const li = el("li", { className: "department", text: d.name });
          li.dataset.departmentId = d.id;
          return li;
        }),
      )
    : el("p", { className: "hint", text: TEXT.noDepartments });

  const inputId = `admin-new-department-${inst.id}`;
  const input = textInput("100", { id: inputId, required: "", placeholder: TEXT.departmentPlaceholder });
  const add = el("button", {
    className: "btn btn-small",
    text: TEXT.addDepartment,
    attrs: { type: "submit", "aria-label": TEXT.addDepartmentTo(inst.name) },
  });
  const form = el(
    "form",
    { className: "form department-form" },
    el("label", { text: TEXT.newDepartmentIn(inst.name), attrs: { for: inputId } }),
    el("div", { className: "search-row" }, input, add),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    add.disabled = true;
    showText(error, "");
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
  return item;
}

/**
 * The network administrator's Rename button and its form (name and kind).
 * @param {Institution} inst
 * @param {HTMLElement} error
 * @returns {[HTMLButtonElement, HTMLFormElement]}
 */
function renameForm(inst, error) {
  const button = el("button", {
    className: "btn btn-small",
    text: TEXT.rename,
    attrs: { type: "button", "aria-label": TEXT.renameOf(inst.name), "aria-expanded": "false" },
  });
  const name = textInput("100", { required: "" });
  const kind = el("select");
  const save = el("button", { className: "btn btn-primary btn-small", text: TEXT.save, attrs: { type: "submit" } });
  const cancel = el("button", { className: "btn btn-small", text: TEXT.cancel, attrs: { type: "button" } });
  const form = el(
    "form",
    { className: "form form-inline rename-form", attrs: { "aria-label": TEXT.renameOf(inst.name) } },
    field(`admin-rename-name-${inst.id}`, TEXT.name, name),
    field(`admin-rename-kind-${inst.id}`, TEXT.kind, kind),
    el("div", { className: "actions" }, save, cancel),
  );
  inlineForm(button, form, cancel, error, () => {
    name.value = inst.name;
    fillKinds(kind, inst.kind);
    return name;
  }, true);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    save.disabled = true;
    showText(error, "");
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
    showText(error, "");
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
  showText(parts.newInstitutionError, "");
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

async function loadAccounts() {
  const me = state.me;
  if (!me || !view) return;
  view.refresh.disabled = true;
  try {
    const accounts = await org.accounts();
    if (state.me !== me || !view) return;
    state.accounts = accounts;
    showText(view.accountsError, "");
    renderAccounts();
  } catch (err) {
    if (view) showFailure(view.accountsError, err, "account");
  } finally {
    if (view) view.refresh.disabled = false;
  }
}

/** The accounts list, filtered by institution (the network's administrator). */
function renderAccounts() {
  if (!view) return;
  const only = view.filter.value;
  const shown = only ? state.accounts.filter((a) => a.institution.id === only) : state.accounts;
  view.accounts.replaceChildren(...shown.map(renderAccount));
  view.accountsStatus.textContent = state.accounts.length ? TEXT.accountCount(shown.length, state.accounts.length) : TEXT.noAccounts;
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
    text: TEXT.endSessions,
    attrs: { type: "button", "aria-label": TEXT.endSessionsOf(a.display_name) },
  });
  end.addEventListener("click", () => void endSessions(a, end));
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
      el("span", { className: "member-name", text: a.display_name, attrs: { id: nameId } }),
      el("span", { className: "status", text: ROLES[a.role] ?? a.role }),
      editButton,
      end,
    ),
    el("p", { className: "account-line" }, el("span", { className: "mono", text: a.username ?? "" }), profile ? ` · ${profile}` : ""),
    el("p", { className: "account-line hint", text: place }),
    editForm,
    error,
  );
  if (clinician) {
    item.append(
      el("p", {
        className: `account-line availability${a.accepts_referrals ? " availability-on" : ""}`,
        text: a.accepts_referrals ? TEXT.takesReferrals : TEXT.noReferrals,
      }),
    );
  }
  item.dataset.userId = a.id;
  item.dataset.username = a.username ?? "";
  item.dataset.role = a.role;
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
    text: TEXT.editAccount,
    attrs: { type: "button", "aria-label": TEXT.editAccountOf(a.display_name), "aria-expanded": "false" },
  });
  const name = textInput("64", { required: "" });
  const role = el("select");
  const institution = el("select");
  const department = el("select");
  const title = textInput("60");
  const specialty = textInput("60");
  const save = el("button", { className: "btn btn-primary btn-small", text: TEXT.save, attrs: { type: "submit" } });
  const cancel = el("button", { className: "btn btn-small", text: TEXT.cancel, attrs: { type: "button" } });
  const form = el(
    "form",
    { className: "form account-edit", attrs: { "aria-label": TEXT.editAccountOf(a.display_name) } },
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
    /** @type {[string, string][]} */
    const options = [["", TEXT.noDepartment], ...(chosen?.departments ?? []).map((d) => /** @type {[string, string]} */ ([d.id, d.name]))];
    fillSelect(department, options, institution.value === a.institution.id ? (a.department?.id ?? "") : "");
  };
  institution.addEventListener("change", departments);
  inlineForm(button, form, cancel, error, () => {
    const by = me?.role ?? "doctor";
    name.value = a.display_name;
    /** @type {[string, string][]} */
    const roles = Object.entries(ROLES).filter(([r]) => r === a.role || (a.id !== me?.id && mayGrant(by, /** @type {AccountRole} */ (r))));
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
    showText(error, "");
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
  showText(view.accountsError, "");
  try {
    const n = await org.revokeSessions(a.id);
    if (self) {
      tools.signOut(TEXT.selfEnded);
      return;
    }
    if (view) showText(view.status, TEXT.sessionsEnded(n, a.display_name));
  } catch (err) {
    if (view) showFailure(view.accountsError, err, "account");
  } finally {
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
  showText(parts.accountError, "");
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
