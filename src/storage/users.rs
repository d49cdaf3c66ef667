//! Clinician accounts: who they are, their place in the network (institution, department) and
//! their profile (title, specialty, whether they take referrals now).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::organisation::hold_department;
use super::{Db, StorageError, map_unique};
use crate::domain::clock::now_unix;
use crate::domain::ids::{DepartmentId, InstitutionId, UserId};
use crate::domain::organisation::DEFAULT_INSTITUTION;
use crate::domain::role::AccountRole;

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub role: AccountRole,
    pub password_hash: String,
    pub created_at: i64,
    /// Bumped by every password change; sessions opened under an older one are not honoured.
    pub password_version: i64,
    pub institution_id: InstitutionId,
    pub department_id: Option<DepartmentId>,
    pub title: String,
    pub specialty: String,
    pub accepts_referrals: bool,
    /// The Argon2id hash of the account's signing PIN, if one is set (`auth::check_new_pin`).
    pub signing_pin_hash: Option<String>,
    /// When an administrator disabled the account (Unix seconds); it signs in again once
    /// enabled.
    pub disabled_at: Option<i64>,
}

/// What an account becomes (`Db::update_account`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountChange {
    pub display_name: String,
    pub role: AccountRole,
    pub institution: InstitutionId,
    pub department: Option<DepartmentId>,
    pub title: String,
    pub specialty: String,
}

/// What creating an account takes. The institution and department must exist, and the
/// department must belong to the institution (checked by the caller, which knows who asks).
#[derive(Debug, Clone)]
pub struct NewAccount<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub role: AccountRole,
    pub password_hash: &'a str,
    pub institution: &'a InstitutionId,
    pub department: Option<&'a DepartmentId>,
    pub title: &'a str,
    pub specialty: &'a str,
}

/// The directory's filters; empty ones match everything.
#[derive(Debug, Clone, Default)]
pub struct DirectoryQuery<'a> {
    pub institution: Option<&'a InstitutionId>,
    pub department: Option<&'a DepartmentId>,
    /// Matched as a case-insensitive substring of the specialty.
    pub specialty: Option<&'a str>,
    /// Matched as a case-insensitive substring of the name shown.
    pub name: Option<&'a str>,
    pub accepting_only: bool,
    pub limit: i64,
}

/// What a page of the accounts list asks for.
#[derive(Debug, Clone, Copy)]
pub struct AccountQuery<'a> {
    /// One institution's accounts, or (`None`) the whole network's.
    pub institution: Option<&'a InstitutionId>,
    /// Matched as a case-insensitive substring of the username or the name shown.
    pub text: Option<&'a str>,
    /// Only usernames that sort after this one: where the page before ended.
    pub after: Option<&'a str>,
    pub limit: i64,
}

/// A case-insensitive `LIKE` pattern (with `ESCAPE '\'`) for `s` anywhere in the value; LIKE's
/// own characters in `s` are matched literally.
fn like_pattern(s: &str) -> String {
    let escaped = s
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

pub(super) fn from_row(row: &AnyRow) -> Result<User, StorageError> {
    let id: String = row.try_get("id")?;
    let role: String = row.try_get("role")?;
    let institution: String = row.try_get("institution_id")?;
    let department: Option<String> = row.try_get("department_id")?;
    let accepts: i64 = row.try_get("accepts_referrals")?;
    Ok(User {
        id: UserId::parse(&id).ok_or(StorageError::Corrupt("user id"))?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        role: AccountRole::parse(&role).ok_or(StorageError::Corrupt("user role"))?,
        password_hash: row.try_get("password_hash")?,
        created_at: row.try_get("created_at")?,
        password_version: row.try_get("password_version")?,
        institution_id: InstitutionId::parse(&institution)
            .ok_or(StorageError::Corrupt("user institution"))?,
        department_id: department
            .map(|d| DepartmentId::parse(&d).ok_or(StorageError::Corrupt("user department")))
            .transpose()?,
        title: row.try_get("title")?,
        specialty: row.try_get("specialty")?,
        accepts_referrals: accepts != 0,
        signing_pin_hash: row.try_get("signing_pin_hash")?,
        disabled_at: row.try_get("disabled_at")?,
    })
}

const COLUMNS: &str = "id, username, display_name, role, password_hash, created_at, \
     password_version, institution_id, department_id, title, specialty, accepts_referrals, \
     signing_pin_hash, disabled_at";
/// The same columns of `users u`, for queries that join accounts to another table.
pub(super) const JOINED_COLUMNS: &str = "u.id, u.username, u.display_name, u.role, \
     u.password_hash, u.created_at, u.password_version, u.institution_id, u.department_id, \
     u.title, u.specialty, u.accepts_referrals, u.signing_pin_hash, u.disabled_at";

impl Db {
    /// An account in the default institution, with no department or title (tests, and the
    /// first administrator of a fresh server).
    pub async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        role: AccountRole,
        password_hash: &str,
    ) -> Result<User, StorageError> {
        let default = InstitutionId::parse(DEFAULT_INSTITUTION).expect("a valid id");
        self.create_account(&NewAccount {
            username,
            display_name,
            role,
            password_hash,
            institution: &default,
            department: None,
            title: "",
            specialty: "",
        })
        .await
    }

    /// A new account; a username already taken is `Conflict`, a department that is not (or no
    /// longer) the institution's `NoSuchDepartment`.
    pub async fn create_account(&self, new: &NewAccount<'_>) -> Result<User, StorageError> {
        let user = User {
            id: UserId::generate(),
            username: new.username.to_owned(),
            display_name: new.display_name.to_owned(),
            role: new.role,
            password_hash: new.password_hash.to_owned(),
            created_at: now_unix(),
            password_version: 0,
            institution_id: new.institution.clone(),
            department_id: new.department.cloned(),
            title: new.title.to_owned(),
            specialty: new.specialty.to_owned(),
            accepts_referrals: false,
            signing_pin_hash: None,
            disabled_at: None,
        };
        let mut tx = self.begin_write().await?;
        if let Some(department) = new.department {
            hold_department(&mut tx, department, new.institution).await?;
        }
        sqlx::query(
            "INSERT INTO users (id, username, display_name, role, password_hash, created_at, \
             institution_id, department_id, title, specialty, accepts_referrals) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0)",
        )
        .bind(user.id.as_str())
        .bind(&user.username)
        .bind(&user.display_name)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(user.created_at)
        .bind(user.institution_id.as_str())
        .bind(user.department_id.as_ref().map(DepartmentId::as_str))
        .bind(&user.title)
        .bind(&user.specialty)
        .execute(&mut *tx)
        .await
        .map_err(map_unique)?;
        tx.commit().await?;
        Ok(user)
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, StorageError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE username = $1"))
            .bind(username)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn user(&self, id: &UserId) -> Result<Option<User>, StorageError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The accounts among `ids` that exist (in no particular order), a few queries for any
    /// number of them.
    pub async fn users_by_id(&self, ids: &[&UserId]) -> Result<Vec<User>, StorageError> {
        let select = format!("SELECT {COLUMNS} FROM users WHERE id IN");
        super::rows_with_ids(self, &select, ids.iter().map(|u| u.as_str()))
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StorageError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM users ORDER BY username"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Moves an account within the network and sets its profile ([`StorageError::NoSuchDepartment`]
    /// for a department not, or no longer, in `institution`).
    pub async fn set_user_place(
        &self,
        id: &UserId,
        institution: &InstitutionId,
        department: Option<&DepartmentId>,
        title: &str,
        specialty: &str,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin_write().await?;
        if let Some(department) = department {
            hold_department(&mut tx, department, institution).await?;
        }
        let done = sqlx::query(
            "UPDATE users SET institution_id = $1, department_id = $2, title = $3, \
             specialty = $4 WHERE id = $5",
        )
        .bind(institution.as_str())
        .bind(department.map(DepartmentId::as_str))
        .bind(title)
        .bind(specialty)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    /// Replaces an account's name, role, place and profile with `to`, if it still stands
    /// where `from` says it did (institution and role): the caller decided it may make this
    /// change from those, so an account moved or given another role meanwhile is not changed
    /// ([`StorageError::Conflict`]). [`StorageError::NotFound`] for no such account,
    /// [`StorageError::NoSuchDepartment`] for a department not (or no longer) in `to`'s
    /// institution.
    pub async fn update_account(
        &self,
        from: &User,
        to: &AccountChange,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin_write().await?;
        if let Some(department) = &to.department {
            hold_department(&mut tx, department, &to.institution).await?;
        }
        let done = sqlx::query(
            "UPDATE users SET display_name = $1, role = $2, institution_id = $3, \
             department_id = $4, title = $5, specialty = $6 \
             WHERE id = $7 AND institution_id = $8 AND role = $9",
        )
        .bind(&to.display_name)
        .bind(to.role.as_str())
        .bind(to.institution.as_str())
        .bind(to.department.as_ref().map(DepartmentId::as_str))
        .bind(&to.title)
        .bind(&to.specialty)
        .bind(from.id.as_str())
        .bind(from.institution_id.as_str())
        .bind(from.role.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(());
        }
        tx.rollback().await?;
        match self.user(&from.id).await? {
            Some(_) => Err(StorageError::Conflict),
            None => Err(StorageError::NotFound),
        }
    }

    /// Whether the clinician takes new referrals now (the directory shows it).
    pub async fn set_accepts_referrals(&self, id: &UserId, on: bool) -> Result<(), StorageError> {
        let done = sqlx::query("UPDATE users SET accepts_referrals = $1 WHERE id = $2")
            .bind(i64::from(on))
            .bind(id.as_str())
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    /// Disables the account from `at` (Unix seconds), or enables it again with `None`. A
    /// disabled account no longer takes referrals. `NotFound` for no such account.
    pub async fn set_disabled(&self, id: &UserId, at: Option<i64>) -> Result<(), StorageError> {
        let done = match at {
            Some(at) => sqlx::query(
                "UPDATE users SET disabled_at = $1, accepts_referrals = 0 WHERE id = $2",
            )
            .bind(at)
            .bind(id.as_str()),
            None => {
                sqlx::query("UPDATE users SET disabled_at = NULL WHERE id = $1").bind(id.as_str())
            }
        }
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    /// A page of accounts by username: at most `q.limit` of those matching `q`, after
    /// `q.after`.
    pub async fn account_page(&self, q: &AccountQuery<'_>) -> Result<Vec<User>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM users \
             WHERE ($1 = '' OR institution_id = $1) \
             AND ($2 = '' OR LOWER(username) LIKE $2 ESCAPE '\\' \
                  OR LOWER(display_name) LIKE $2 ESCAPE '\\') \
             AND ($3 = '' OR username > $3) \
             ORDER BY username LIMIT $4"
        ))
        .bind(q.institution.map(InstitutionId::as_str).unwrap_or(""))
        .bind(q.text.map(like_pattern).unwrap_or_default())
        .bind(q.after.unwrap_or(""))
        .bind(q.limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// How many accounts match `q`'s institution and text (all pages).
    pub async fn count_accounts(&self, q: &AccountQuery<'_>) -> Result<i64, StorageError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM users \
             WHERE ($1 = '' OR institution_id = $1) \
             AND ($2 = '' OR LOWER(username) LIKE $2 ESCAPE '\\' \
                  OR LOWER(display_name) LIKE $2 ESCAPE '\\')",
        )
        .bind(q.institution.map(InstitutionId::as_str).unwrap_or(""))
        .bind(q.text.map(like_pattern).unwrap_or_default())
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Clinicians (doctors and specialists) matching the query, by institution, department
    /// and name; at most `limit`.
    pub async fn directory(&self, q: &DirectoryQuery<'_>) -> Result<Vec<User>, StorageError> {
        let specialty = q.specialty.map(like_pattern).unwrap_or_default();
        let name = q.name.map(like_pattern).unwrap_or_default();
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM users \
             WHERE role IN ('doctor', 'specialist') AND disabled_at IS NULL \
             AND ($1 = '' OR institution_id = $1) \
             AND ($2 = '' OR department_id = $2) \
             AND ($3 = '' OR LOWER(specialty) LIKE $3 ESCAPE '\\') \
             AND ($4 = 0 OR accepts_referrals = 1) \
             AND ($6 = '' OR LOWER(display_name) LIKE $6 ESCAPE '\\') \
             ORDER BY institution_id, department_id, display_name, id LIMIT $5"
        ))
        .bind(q.institution.map(InstitutionId::as_str).unwrap_or(""))
        .bind(q.department.map(DepartmentId::as_str).unwrap_or(""))
        .bind(specialty)
        .bind(i64::from(q.accepting_only))
        .bind(q.limit)
        .bind(name)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }
}
