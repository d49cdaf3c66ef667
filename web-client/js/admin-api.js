// The network's organisation over the HTTP API (docs/protocol.md, "Organisation"), for the
// administrators' console (admin-view.js): institutions and their departments, accounts, and
// ending an account's sessions. Every call goes through api.js (the session token, renewal,
// ApiError); the server decides who may do what.

import { call } from "./api.js";

/** @typedef {import("./api.js").Account} Account */
/** @typedef {import("./api.js").AccountRole} AccountRole */

/** @typedef {"hospital" | "township_clinic" | "internet_hospital"} InstitutionKind */

/**
 * @typedef {object} Department
 * @property {string} id
 * @property {string} name
 */

/**
 * @typedef {object} Institution
 * @property {string} id
 * @property {string} name
 * @property {InstitutionKind} kind
 * @property {Department[]} departments
 */

/**
 * What creating an account sends.
 * @typedef {object} NewAccount
 * @property {string} username
 * @property {string} display_name
 * @property {AccountRole} role
 * @property {string} password
 * @property {string} institution_id
 * @property {string} [department_id]
 * @property {string} [title]
 * @property {string} [specialty]
 */

/** @returns {Promise<Institution[]>} every institution with its departments */
export async function institutions() {
  return /** @type {{institutions: Institution[]}} */ (await call("GET", "/api/v1/institutions")).institutions;
}

/**
 * The network's administrator adds an institution (409 `conflict`: the name is taken).
 * @param {string} name
 * @param {InstitutionKind} kind
 * @returns {Promise<Institution>}
 */
export async function createInstitution(name, kind) {
  return /** @type {Institution} */ (await call("POST", "/api/v1/institutions", { name, kind }));
}

/**
 * The network's administrator renames an institution or changes its kind.
 * @param {string} id
 * @param {string} name
 * @param {InstitutionKind} kind
 */
export async function updateInstitution(id, name, kind) {
  await call("PUT", `/api/v1/institutions/${encodeURIComponent(id)}`, { name, kind });
}

/**
 * A department in an institution (409 `conflict`: the institution has one of this name).
 * @param {string} institutionId
 * @param {string} name
 * @returns {Promise<{id: string, name: string, institution_id: string}>}
 */
export async function createDepartment(institutionId, name) {
  return /** @type {{id: string, name: string, institution_id: string}} */ (
    await call("POST", `/api/v1/institutions/${encodeURIComponent(institutionId)}/departments`, { name })
  );
}

/**
 * Renames a department.
 * @param {string} departmentId
 * @param {string} name
 */
export async function renameDepartment(departmentId, name) {
  return /** @type {{id: string, name: string, institution_id: string}} */ (
    await call("PATCH", `/api/v1/departments/${encodeURIComponent(departmentId)}`, { name })
  );
}

/**
 * Removes a department nobody belongs to (409 `conflict` while accounts do, or when requests
 * were addressed to it).
 * @param {string} departmentId
 */
export async function removeDepartment(departmentId) {
  await call("DELETE", `/api/v1/departments/${encodeURIComponent(departmentId)}`);
}

/**
 * @typedef {object} AccountPage
 * @property {Account[]} accounts by username
 * @property {string | null} next `after` for the following page; null on the last
 * @property {number} total accounts matching, over all pages
 */

/**
 * A page of accounts: the network's (network administrator) or the institution's own.
 * @param {{q?: string, institutionId?: string, after?: string | null}} [query] part of a
 *   username or name; one institution; where the page before ended
 * @returns {Promise<AccountPage>}
 */
export async function accounts(query = {}) {
  const params = new URLSearchParams();
  if (query.q) params.set("q", query.q);
  if (query.institutionId) params.set("institution_id", query.institutionId);
  if (query.after) params.set("after", query.after);
  const search = params.toString();
  return /** @type {AccountPage} */ (await call("GET", `/api/v1/accounts${search ? `?${search}` : ""}`));
}

/**
 * @param {NewAccount} account
 * @returns {Promise<Account>} the account created
 */
export async function createAccount(account) {
  return /** @type {Account} */ (await call("POST", "/api/v1/accounts", account));
}

/**
 * Ends every session of an account (a lost device, a colleague who left).
 * @param {string} userId
 * @returns {Promise<number>} how many sessions were ended
 */
export async function revokeSessions(userId) {
  return /** @type {{sessions_revoked: number}} */ (
    await call("POST", `/api/v1/users/${encodeURIComponent(userId)}/sessions/revoke`)
  ).sessions_revoked;
}

/**
 * Disables an account (it cannot sign in, its sessions end, it leaves the directory) or
 * enables it again.
 * @param {string} userId
 * @param {boolean} disabled
 * @returns {Promise<{disabled: boolean, sessions_revoked: number}>}
 */
export async function setDisabled(userId, disabled) {
  return /** @type {{disabled: boolean, sessions_revoked: number}} */ (
    await call("POST", `/api/v1/accounts/${encodeURIComponent(userId)}/${disabled ? "disable" : "enable"}`)
  );
}

/**
 * What changing an account sends: only the fields that change (`department_id` null clears it).
 * @typedef {object} AccountPatch
 * @property {string} [display_name]
 * @property {AccountRole} [role]
 * @property {string} [institution_id]
 * @property {string | null} [department_id]
 * @property {string} [title]
 * @property {string} [specialty]
 */

/**
 * Changes an account (403 `forbidden` beyond the administrator's reach; 409 `conflict` for
 * their own role, or when someone else changed the account meanwhile).
 * @param {string} userId
 * @param {AccountPatch} patch
 * @returns {Promise<Account>} the account as it is now
 */
export async function updateAccount(userId, patch) {
  return /** @type {Account} */ (await call("PATCH", `/api/v1/accounts/${encodeURIComponent(userId)}`, patch));
}
