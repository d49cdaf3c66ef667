//! Clinician accounts.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, StorageError, map_unique};
use crate::domain::clock::now_unix;
use crate::domain::ids::UserId;
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
}

pub(super) fn from_row(row: &AnyRow) -> Result<User, StorageError> {
    let id: String = row.try_get("id")?;
    let role: String = row.try_get("role")?;
    Ok(User {
        id: UserId::parse(&id).ok_or(StorageError::Corrupt("user id"))?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        role: AccountRole::parse(&role).ok_or(StorageError::Corrupt("user role"))?,
        password_hash: row.try_get("password_hash")?,
        created_at: row.try_get("created_at")?,
        password_version: row.try_get("password_version")?,
    })
}

const COLUMNS: &str =
    "id, username, display_name, role, password_hash, created_at, password_version";

impl Db {
    pub async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        role: AccountRole,
        password_hash: &str,
    ) -> Result<User, StorageError> {
        let user = User {
            id: UserId::generate(),
            username: username.to_owned(),
            display_name: display_name.to_owned(),
            role,
            password_hash: password_hash.to_owned(),
            created_at: now_unix(),
            password_version: 0,
        };
        sqlx::query(
            "INSERT INTO users (id, username, display_name, role, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(user.id.as_str())
        .bind(&user.username)
        .bind(&user.display_name)
        .bind(role.as_str())
        .bind(&user.password_hash)
        .bind(user.created_at)
        .execute(self.pool())
        .await
        .map_err(map_unique)?;
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

    pub async fn list_users(&self) -> Result<Vec<User>, StorageError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM users ORDER BY username"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }
}
