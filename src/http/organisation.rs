//! The network's organisation over HTTP (docs/protocol.md, "Organisation"): institutions and
//! departments (the network's administrator), accounts (the network's administrator for all,
//! an institution's administrator for their own), the directory of specialists, and a
//! clinician's own availability for referrals. The permission table decides; this file reads
//! and writes.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::api::{ApiJson, ApiQuery, Clinician};
use super::error::ApiError;
use crate::audit::{Action, AuditEvent};
use crate::auth::check_new_password;
use crate::domain::ids::{DepartmentId, InstitutionId, UserId};
use crate::domain::organisation::{InstitutionKind, org_name, profile_text};
use crate::domain::role::AccountRole;
use crate::domain::text::{
    MAX_ACCOUNT_NAME_CHARS, MAX_USERNAME_CHARS, display_name, is_valid_username,
};
use crate::storage::{
    AccountChange, AccountQuery, Department, DirectoryQuery, Institution, NewAccount, StorageError,
    User,
};

/// The directory answers at most this many clinicians per query.
const MAX_DIRECTORY_ROWS: i64 = 200;

#[derive(Serialize)]
pub struct DepartmentView<'a> {
    id: &'a DepartmentId,
    name: &'a str,
}

#[derive(Serialize)]
pub struct InstitutionView<'a> {
    id: &'a InstitutionId,
    name: &'a str,
    kind: InstitutionKind,
    departments: Vec<DepartmentView<'a>>,
}

/// An account as administrators and the directory show it (never its password hash).
#[derive(Serialize)]
pub struct AccountView<'a> {
    pub id: &'a UserId,
    pub username: &'a str,
    pub display_name: &'a str,
    pub role: AccountRole,
    pub title: &'a str,
    pub specialty: &'a str,
    pub institution: PlaceView<'a>,
    pub department: Option<PlaceView<'a>>,
    pub accepts_referrals: bool,
    /// Disabled by an administrator: cannot sign in.
    pub disabled: bool,
}

#[derive(Serialize)]
pub struct PlaceView<'a> {
    pub id: &'a str,
    pub name: &'a str,
}

/// Names of institutions and departments, to show accounts with.
pub struct Names {
    institutions: HashMap<InstitutionId, String>,
    departments: HashMap<DepartmentId, String>,
}

impl Names {
    /// The names `users` are shown with (their institutions' and departments'), read for
    /// them alone: a network has thousands of each.
    pub async fn of<'a>(
        state: &AppState,
        users: impl IntoIterator<Item = &'a User>,
    ) -> Result<Self, ApiError> {
        let (mut institutions, mut departments) = (Vec::new(), Vec::new());
        for u in users {
            institutions.push(&u.institution_id);
            departments.extend(u.department_id.as_ref());
        }
        let found = state.db.place_names(&institutions, &departments).await?;
        Ok(Self {
            institutions: found.institutions,
            departments: found.departments,
        })
    }

    pub fn institution(&self, id: &InstitutionId) -> &str {
        self.institutions.get(id).map(String::as_str).unwrap_or("")
    }

    pub fn account<'a>(&'a self, u: &'a User) -> AccountView<'a> {
        AccountView {
            id: &u.id,
            username: &u.username,
            display_name: &u.display_name,
            role: u.role,
            title: &u.title,
            specialty: &u.specialty,
            institution: PlaceView {
                id: u.institution_id.as_str(),
                name: self.institution(&u.institution_id),
            },
            department: u.department_id.as_ref().map(|d| PlaceView {
                id: d.as_str(),
                name: self.departments.get(d).map(String::as_str).unwrap_or(""),
            }),
            accepts_referrals: u.accepts_referrals,
            disabled: u.disabled_at.is_some(),
        }
    }
}

fn institution_views<'a>(
    institutions: &'a [Institution],
    departments: &'a [Department],
) -> Vec<InstitutionView<'a>> {
    institutions
        .iter()
        .map(|i| InstitutionView {
            id: &i.id,
            name: &i.name,
            kind: i.kind,
            departments: departments
                .iter()
                .filter(|d| d.institution_id == i.id)
                .map(|d| DepartmentView {
                    id: &d.id,
                    name: &d.name,
                })
                .collect(),
        })
        .collect()
}

/// Records a refused administrative call (who tried what) and refuses it.
async fn refuse(state: &AppState, who: &Clinician, attempted: &'static str) -> ApiError {
    who.refuse(state, "not_an_administrator", attempted).await
}

/// Every institution with its departments: any signed-in account (referrals name them).
pub async fn list_institutions(
    State(state): State<AppState>,
    _who: Clinician,
) -> Result<Json<Value>, ApiError> {
    let institutions = state.db.list_institutions().await?;
    let departments = state.db.list_departments(None).await?;
    Ok(Json(
        json!({"institutions": institution_views(&institutions, &departments)}),
    ))
}

#[derive(Deserialize)]
pub struct InstitutionBody {
    name: String,
    kind: String,
}

fn institution_fields(body: &InstitutionBody) -> Result<(String, InstitutionKind), ApiError> {
    let name = org_name(&body.name).map_err(|e| ApiError::Invalid(format!("name: {e}")))?;
    let kind = InstitutionKind::parse(&body.kind).ok_or_else(|| {
        ApiError::Invalid("kind must be hospital, township_clinic or internet_hospital".into())
    })?;
    Ok((name, kind))
}

pub async fn create_institution(
    State(state): State<AppState>,
    who: Clinician,
    ApiJson(body): ApiJson<InstitutionBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !who.0.role.may_manage_network() {
        return Err(refuse(&state, &who, "institution.create").await);
    }
    let (name, kind) = institution_fields(&body)?;
    let institution = match state.db.create_institution(&name, kind).await {
        Err(StorageError::Conflict) => {
            return Err(ApiError::Conflict(
                "an institution with this name exists".into(),
            ));
        }
        other => other?,
    };
    state
        .audit
        .record(
            AuditEvent::new(who.actor(), Action::InstitutionCreated)
                .object("institution", &institution.id)
                .detail(json!({"kind": kind.as_str()})),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!(institution_views(&[institution], &[]).remove(0))),
    ))
}

pub async fn update_institution(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<InstitutionBody>,
) -> Result<StatusCode, ApiError> {
    if !who.0.role.may_manage_network() {
        return Err(refuse(&state, &who, "institution.update").await);
    }
    let id = InstitutionId::parse(&id).ok_or(ApiError::NotFound)?;
    let (name, kind) = institution_fields(&body)?;
    match state.db.rename_institution(&id, &name, kind).await {
        Err(StorageError::Conflict) => {
            return Err(ApiError::Conflict(
                "an institution with this name exists".into(),
            ));
        }
        other => other?,
    }
    state
        .audit
        .record(
            AuditEvent::new(who.actor(), Action::InstitutionRenamed)
                .object("institution", &id)
                .detail(json!({"kind": kind.as_str()})),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct DepartmentBody {
    name: String,
}

/// A new department: the network's administrator, or the institution's own administrator.
pub async fn create_department(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DepartmentBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let institution = InstitutionId::parse(&id).ok_or(ApiError::NotFound)?;
    if !who
        .0
        .role
        .may_manage_accounts(institution == who.0.institution_id)
    {
        return Err(refuse(&state, &who, "department.create").await);
    }
    let name = org_name(&body.name).map_err(|e| ApiError::Invalid(format!("name: {e}")))?;
    let department = match state.db.create_department(&institution, &name).await {
        Err(StorageError::Conflict) => {
            return Err(ApiError::Conflict(
                "the institution has a department with this name".into(),
            ));
        }
        other => other?,
    };
    state
        .audit
        .record(
            AuditEvent::new(who.actor(), Action::DepartmentCreated)
                .object("department", &department.id)
                .detail(json!({"institution": institution})),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": department.id, "name": department.name, "institution_id": institution})),
    ))
}

/// The department `id`, if the caller administers its institution (refusals audited as
/// `attempted`).
async fn managed_department(
    state: &AppState,
    who: &Clinician,
    id: &str,
    attempted: &'static str,
) -> Result<crate::storage::Department, ApiError> {
    let department = match DepartmentId::parse(id) {
        Some(d) => state.db.department(&d).await?,
        None => None,
    };
    let same = department
        .as_ref()
        .is_some_and(|d| d.institution_id == who.0.institution_id);
    if !who.0.role.may_manage_accounts(same) {
        return Err(refuse(state, who, attempted).await);
    }
    department.ok_or(ApiError::NotFound)
}

/// `PATCH /departments/{id}`: renames a department (its administrators).
pub async fn rename_department(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DepartmentBody>,
) -> Result<Json<Value>, ApiError> {
    let department = managed_department(&state, &who, &id, "department.rename").await?;
    let name = org_name(&body.name).map_err(|e| ApiError::Invalid(format!("name: {e}")))?;
    match state.db.rename_department(&department.id, &name).await {
        Err(StorageError::Conflict) => {
            return Err(ApiError::Conflict(
                "the institution has a department with this name".into(),
            ));
        }
        other => other?,
    }
    state
        .audit
        .record(
            AuditEvent::new(who.actor(), Action::DepartmentRenamed)
                .object("department", &department.id)
                .detail(json!({"institution": department.institution_id})),
        )
        .await?;
    Ok(Json(json!({
        "id": department.id,
        "name": name,
        "institution_id": department.institution_id,
    })))
}

/// `DELETE /departments/{id}`: removes a department nobody belongs to and no request was ever
/// addressed to (409 `conflict` otherwise: move its accounts first).
pub async fn remove_department(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let department = managed_department(&state, &who, &id, "department.remove").await?;
    match state.db.remove_department(&department.id).await {
        Err(StorageError::Conflict) => {
            return Err(ApiError::Conflict(
                "accounts belong to this department, or consultation requests were addressed to \
                 it: move its accounts to another department first; a department that received \
                 requests stays, for their record"
                    .into(),
            ));
        }
        other => other?,
    }
    state
        .audit
        .record_or_log(
            AuditEvent::new(who.actor(), Action::DepartmentRemoved)
                .object("department", &department.id)
                .detail(json!({"institution": department.institution_id, "name": department.name})),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Most accounts one page of the list holds, and how many it holds unless asked.
pub const MAX_ACCOUNTS_PAGE: i64 = 200;
const DEFAULT_ACCOUNTS_PAGE: i64 = 100;

/// `GET /accounts`' query: a page of the list, narrowed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountListParams {
    /// One institution's accounts (an institution's administrator sees only their own anyway).
    #[serde(default)]
    institution_id: Option<InstitutionId>,
    /// Part of the username or of the name shown, any case.
    #[serde(default)]
    q: Option<String>,
    /// The `next` of the page before.
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

/// Accounts by username, a page at a time: the whole network's for the network's administrator,
/// their own institution's for an institution's administrator (asking for another institution
/// is refused and recorded). `next` is the `after` of the following page, `null` on the last;
/// `total` counts every page of what was asked.
pub async fn list_accounts(
    State(state): State<AppState>,
    who: Clinician,
    ApiQuery(params): ApiQuery<AccountListParams>,
) -> Result<Json<Value>, ApiError> {
    let institution = match who.0.role {
        AccountRole::Admin => params.institution_id.clone(),
        AccountRole::InstitutionAdmin => match &params.institution_id {
            Some(asked) if asked != &who.0.institution_id => {
                return Err(refuse(&state, &who, "account.list").await);
            }
            _ => Some(who.0.institution_id.clone()),
        },
        _ => return Err(refuse(&state, &who, "account.list").await),
    };
    let limit = params.limit.unwrap_or(DEFAULT_ACCOUNTS_PAGE);
    if !(1..=MAX_ACCOUNTS_PAGE).contains(&limit) {
        return Err(ApiError::Invalid(format!(
            "limit: 1 to {MAX_ACCOUNTS_PAGE}"
        )));
    }
    let text = params.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let after = params.after.as_deref().filter(|a| !a.is_empty());
    if text.is_some_and(|q| q.chars().count() > MAX_ACCOUNT_NAME_CHARS)
        || after.is_some_and(|a| a.chars().count() > MAX_USERNAME_CHARS)
    {
        return Err(ApiError::Invalid(format!(
            "q: at most {MAX_ACCOUNT_NAME_CHARS} characters; after: a username"
        )));
    }
    let query = AccountQuery {
        institution: institution.as_ref(),
        text,
        after,
        // One more than the page: whether another follows.
        limit: limit + 1,
    };
    let mut users = state.db.account_page(&query).await?;
    let next = if users.len() as i64 > limit {
        users.truncate(limit as usize);
        users.last().map(|u| u.username.clone())
    } else {
        None
    };
    let total = state.db.count_accounts(&query).await?;
    let names = Names::of(&state, &users).await?;
    let views: Vec<_> = users.iter().map(|u| names.account(u)).collect();
    Ok(Json(
        json!({"accounts": views, "next": next, "total": total}),
    ))
}

#[derive(Deserialize)]
pub struct AccountBody {
    username: String,
    display_name: String,
    role: String,
    password: String,
    institution_id: InstitutionId,
    #[serde(default)]
    department_id: Option<DepartmentId>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    specialty: String,
}

/// Checks an account's place: the institution exists and the department is one of its own.
pub async fn check_place(
    state: &AppState,
    institution: &InstitutionId,
    department: Option<&DepartmentId>,
) -> Result<(), ApiError> {
    if state.db.institution(institution).await?.is_none() {
        return Err(ApiError::Invalid("no such institution".into()));
    }
    if let Some(department) = department {
        let found = state.db.department(department).await?;
        if found.is_none_or(|d| &d.institution_id != institution) {
            return Err(ApiError::Invalid(
                "no such department in this institution".into(),
            ));
        }
    }
    Ok(())
}

pub async fn create_account(
    State(state): State<AppState>,
    who: Clinician,
    ApiJson(body): ApiJson<AccountBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let role = AccountRole::parse(&body.role).ok_or_else(|| {
        ApiError::Invalid(
            "role must be doctor, specialist, pharmacist, supervisor, institution_admin or admin"
                .into(),
        )
    })?;
    let same = body.institution_id == who.0.institution_id;
    if !who.0.role.may_manage_accounts(same) || !who.0.role.may_grant(role) {
        return Err(refuse(&state, &who, "account.create").await);
    }
    let username = body.username.trim();
    if !is_valid_username(username) {
        return Err(ApiError::Invalid(format!(
            "username must be 1 to {MAX_USERNAME_CHARS} letters, digits or . _ - @"
        )));
    }
    let name = display_name(&body.display_name, MAX_ACCOUNT_NAME_CHARS)
        .map_err(|e| ApiError::Invalid(format!("display_name: {e}")))?;
    let title = profile_text(&body.title).map_err(|e| ApiError::Invalid(format!("title: {e}")))?;
    let specialty =
        profile_text(&body.specialty).map_err(|e| ApiError::Invalid(format!("specialty: {e}")))?;
    check_new_password(&body.password).map_err(|e| ApiError::Invalid(e.to_string()))?;
    check_place(&state, &body.institution_id, body.department_id.as_ref()).await?;
    let hash = state.passwords.hash(body.password).await?;
    let created = state
        .db
        .create_account(&NewAccount {
            username,
            display_name: &name,
            role,
            password_hash: &hash,
            institution: &body.institution_id,
            department: body.department_id.as_ref(),
            title: &title,
            specialty: &specialty,
        })
        .await;
    let user = match created {
        Err(StorageError::Conflict) => {
            return Err(ApiError::Conflict("this username is taken".into()));
        }
        other => other?,
    };
    state
        .audit
        .record(
            AuditEvent::new(who.actor(), Action::AccountCreated)
                .object("user", &user.id)
                .detail(json!({
                    "role": role.as_str(),
                    "institution": user.institution_id,
                    "department": user.department_id,
                })),
        )
        .await?;
    let names = Names::of(&state, [&user]).await?;
    Ok((StatusCode::CREATED, Json(json!(names.account(&user)))))
}

/// `PATCH /accounts/{id}`: each field given is changed, the others kept.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    institution_id: Option<InstitutionId>,
    /// Absent: kept (or cleared when the account moves to another institution); `null`: none.
    #[serde(default, deserialize_with = "present")]
    department_id: Option<Option<DepartmentId>>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    specialty: Option<String>,
}

/// A field that is present, even as `null` (`Some(None)`), apart from one that is absent.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Changes an account's name, role, place or profile: the network's administrator any
/// account, an institution's administrator their own institution's, within the roles they may
/// give, never moving it to another institution. Nobody changes their own role. Takes effect
/// on the account's next call (sessions read the account each time).
pub async fn update_account(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AccountPatch>,
) -> Result<Json<Value>, ApiError> {
    let id = UserId::parse(&id).ok_or(ApiError::NotFound)?;
    if !who.0.role.may_manage_accounts(false) && !who.0.role.may_manage_accounts(true) {
        return Err(refuse(&state, &who, "account.update").await);
    }
    let target = state.db.user(&id).await?.ok_or(ApiError::NotFound)?;
    let mine = target.institution_id == who.0.institution_id;
    if !who.0.role.may_manage_accounts(mine) {
        // Another institution's account: as if it did not exist, and recorded.
        refuse(&state, &who, "account.update").await;
        return Err(ApiError::NotFound);
    }
    if !who.0.role.may_grant(target.role) {
        return Err(refuse(&state, &who, "account.update").await);
    }
    let role = match body.role.as_deref() {
        None => target.role,
        Some(r) => AccountRole::parse(r).ok_or_else(|| {
            ApiError::Invalid(
                "role must be doctor, specialist, pharmacist, supervisor, network_supervisor, \
                 institution_admin or admin"
                    .into(),
            )
        })?,
    };
    if role != target.role {
        if !who.0.role.may_grant(role) {
            return Err(refuse(&state, &who, "account.update").await);
        }
        if target.id == who.0.id {
            return Err(ApiError::Conflict(
                "you cannot change your own role; ask another administrator".into(),
            ));
        }
    }
    let institution = body
        .institution_id
        .clone()
        .unwrap_or_else(|| target.institution_id.clone());
    let moved = institution != target.institution_id;
    if moved
        && !who
            .0
            .role
            .may_manage_accounts(institution == who.0.institution_id)
    {
        return Err(refuse(&state, &who, "account.move").await);
    }
    let department = match body.department_id.clone() {
        Some(d) => d,
        None if moved => None,
        None => target.department_id.clone(),
    };
    check_place(&state, &institution, department.as_ref()).await?;
    let display_name = match &body.display_name {
        Some(n) => display_name(n, MAX_ACCOUNT_NAME_CHARS)
            .map_err(|e| ApiError::Invalid(format!("display_name: {e}")))?,
        None => target.display_name.clone(),
    };
    let title = match &body.title {
        Some(t) => profile_text(t).map_err(|e| ApiError::Invalid(format!("title: {e}")))?,
        None => target.title.clone(),
    };
    let specialty = match &body.specialty {
        Some(s) => profile_text(s).map_err(|e| ApiError::Invalid(format!("specialty: {e}")))?,
        None => target.specialty.clone(),
    };
    let change = AccountChange {
        display_name,
        role,
        institution,
        department,
        title,
        specialty,
    };
    match state.db.update_account(&target, &change).await {
        Err(StorageError::Conflict) => {
            return Err(ApiError::Conflict(
                "the account was changed by someone else meanwhile; reload it".into(),
            ));
        }
        other => other?,
    }
    let changed: Vec<&str> = [
        ("display_name", change.display_name != target.display_name),
        ("role", change.role != target.role),
        ("institution", change.institution != target.institution_id),
        ("department", change.department != target.department_id),
        ("title", change.title != target.title),
        ("specialty", change.specialty != target.specialty),
    ]
    .into_iter()
    .filter_map(|(field, differs)| differs.then_some(field))
    .collect();
    state
        .audit
        .record(
            AuditEvent::new(who.actor(), Action::AccountUpdated)
                .object("user", &target.id)
                .detail(json!({
                    "changed": changed,
                    "role": change.role.as_str(),
                    "role_before": target.role.as_str(),
                    "institution": change.institution,
                    "department": change.department,
                    "via": "api",
                })),
        )
        .await?;
    let user = state.db.user(&target.id).await?.ok_or(ApiError::NotFound)?;
    let names = Names::of(&state, [&user]).await?;
    Ok(Json(json!(names.account(&user))))
}

#[derive(Deserialize)]
pub struct DirectoryParams {
    #[serde(default)]
    institution: Option<InstitutionId>,
    #[serde(default)]
    department: Option<DepartmentId>,
    #[serde(default)]
    specialty: Option<String>,
    /// Part of the name shown.
    #[serde(default)]
    name: Option<String>,
    /// `true`: only those who take referrals now.
    #[serde(default)]
    accepting: Option<bool>,
}

/// The directory of clinicians, for referrals and care teams: any clinician or administrator.
pub async fn directory(
    State(state): State<AppState>,
    who: Clinician,
    ApiQuery(params): ApiQuery<DirectoryParams>,
) -> Result<Json<Value>, ApiError> {
    if !(who.0.role.is_clinician() || who.0.role.may_manage_accounts(true)) {
        return Err(refuse(&state, &who, "directory.search").await);
    }
    let specialty = params
        .specialty
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let name = params
        .name
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if specialty.is_some_and(|s| s.chars().count() > 60)
        || name.is_some_and(|s| s.chars().count() > 64)
    {
        return Err(ApiError::Invalid(
            "specialty: at most 60 characters; name: at most 64".into(),
        ));
    }
    let users = state
        .db
        .directory(&DirectoryQuery {
            institution: params.institution.as_ref(),
            department: params.department.as_ref(),
            specialty,
            name,
            accepting_only: params.accepting.unwrap_or(false),
            limit: MAX_DIRECTORY_ROWS,
        })
        .await?;
    let names = Names::of(&state, &users).await?;
    let views: Vec<_> = users
        .iter()
        .map(|u| {
            let mut v = json!(names.account(u));
            // Colleagues need not know each other's sign-in names.
            v.as_object_mut().map(|o| o.remove("username"));
            v
        })
        .collect();
    Ok(Json(json!({"clinicians": views})))
}

#[derive(Deserialize)]
pub struct AvailabilityBody {
    accepts_referrals: bool,
}

/// A clinician begins or stops taking referrals.
pub async fn set_availability(
    State(state): State<AppState>,
    who: Clinician,
    ApiJson(body): ApiJson<AvailabilityBody>,
) -> Result<StatusCode, ApiError> {
    if !who.0.role.is_clinician() {
        return Err(who
            .refuse(&state, "not_a_clinician", "set_availability")
            .await);
    }
    state
        .db
        .set_accepts_referrals(&who.0.id, body.accepts_referrals)
        .await?;
    state
        .audit
        .record_or_log(
            AuditEvent::new(who.actor(), Action::AvailabilityChanged)
                .object("user", &who.0.id)
                .detail(json!({"accepts_referrals": body.accepts_referrals})),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}
