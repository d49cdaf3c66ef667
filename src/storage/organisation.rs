//! The network's institutions and their departments.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, StorageError, map_foreign_key, map_unique};
use crate::domain::clock::now_unix;
use crate::domain::ids::{DepartmentId, InstitutionId};
use crate::domain::organisation::InstitutionKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Institution {
    pub id: InstitutionId,
    pub name: String,
    pub kind: InstitutionKind,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    pub id: DepartmentId,
    pub institution_id: InstitutionId,
    pub name: String,
    pub created_at: i64,
}

/// The names [`Db::place_names`] found, by id.
#[derive(Debug, Default)]
pub struct PlaceNames {
    pub institutions: HashMap<InstitutionId, String>,
    pub departments: HashMap<DepartmentId, String>,
}

fn institution_from_row(row: &AnyRow) -> Result<Institution, StorageError> {
    let id: String = row.try_get("id")?;
    let kind: String = row.try_get("kind")?;
    Ok(Institution {
        id: InstitutionId::parse(&id).ok_or(StorageError::Corrupt("institution id"))?,
        name: row.try_get("name")?,
        kind: InstitutionKind::parse(&kind).ok_or(StorageError::Corrupt("institution kind"))?,
        created_at: row.try_get("created_at")?,
    })
}

fn department_from_row(row: &AnyRow) -> Result<Department, StorageError> {
    let id: String = row.try_get("id")?;
    let institution: String = row.try_get("institution_id")?;
    Ok(Department {
        id: DepartmentId::parse(&id).ok_or(StorageError::Corrupt("department id"))?,
        institution_id: InstitutionId::parse(&institution)
            .ok_or(StorageError::Corrupt("department institution"))?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Institutions in one network at most (Guizhou's platform, among the largest, links about
/// 1,800): every clinician's console lists them all (`GET /institutions`), so the list is kept
/// to what one answer carries.
pub const MAX_INSTITUTIONS: i64 = 5_000;
/// Departments of one institution at most (a large hospital has a few dozen).
pub const MAX_DEPARTMENTS_PER_INSTITUTION: i64 = 200;
/// Departments in the whole network at most, for the same reason as institutions.
pub const MAX_DEPARTMENTS: i64 = 20_000;

/// Counts `sql` (one `COUNT(*)`, bound with `bind` when given) within `tx` and refuses with
/// [`StorageError::Limit`] at `max`.
async fn under_cap(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    sql: &str,
    bind: Option<&str>,
    limit: &'static str,
    max: i64,
) -> Result<(), StorageError> {
    let mut query = sqlx::query_scalar::<_, i64>(sql);
    if let Some(b) = bind {
        query = query.bind(b);
    }
    if query.fetch_one(&mut **tx).await? >= max {
        return Err(StorageError::Limit { limit, max });
    }
    Ok(())
}

impl Db {
    /// Makes concurrent creations in `table` take turns for the rest of `tx`, so a count and
    /// the insert after it are one step: on PostgreSQL a table lock that other writers of the
    /// table (creations, renames, removals) wait for, for the few milliseconds of the insert,
    /// while reads go on; SQLite's write transactions are serialised already.
    async fn creations_take_turns(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        table: &'static str,
    ) -> Result<(), StorageError> {
        if self.postgres {
            sqlx::query(&format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// A new institution; a name already taken is `Conflict`, one past [`MAX_INSTITUTIONS`]
    /// `Limit`.
    pub async fn create_institution(
        &self,
        name: &str,
        kind: InstitutionKind,
    ) -> Result<Institution, StorageError> {
        let institution = Institution {
            id: InstitutionId::generate(),
            name: name.to_owned(),
            kind,
            created_at: now_unix(),
        };
        let mut tx = self.begin_write().await?;
        self.creations_take_turns(&mut tx, "institutions").await?;
        under_cap(
            &mut tx,
            "SELECT COUNT(*) FROM institutions",
            None,
            "institutions",
            MAX_INSTITUTIONS,
        )
        .await?;
        sqlx::query(
            "INSERT INTO institutions (id, name, kind, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(institution.id.as_str())
        .bind(&institution.name)
        .bind(kind.as_str())
        .bind(institution.created_at)
        .execute(&mut *tx)
        .await
        .map_err(map_unique)?;
        tx.commit().await?;
        Ok(institution)
    }

    pub async fn institution(
        &self,
        id: &InstitutionId,
    ) -> Result<Option<Institution>, StorageError> {
        let row = sqlx::query("SELECT id, name, kind, created_at FROM institutions WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(institution_from_row).transpose()
    }

    pub async fn institution_by_name(
        &self,
        name: &str,
    ) -> Result<Option<Institution>, StorageError> {
        let row =
            sqlx::query("SELECT id, name, kind, created_at FROM institutions WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await?;
        row.as_ref().map(institution_from_row).transpose()
    }

    pub async fn list_institutions(&self) -> Result<Vec<Institution>, StorageError> {
        let rows = sqlx::query("SELECT id, name, kind, created_at FROM institutions ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(institution_from_row).collect()
    }

    /// Renames an institution (the default one made by the migration, usually).
    pub async fn rename_institution(
        &self,
        id: &InstitutionId,
        name: &str,
        kind: InstitutionKind,
    ) -> Result<(), StorageError> {
        let done = sqlx::query("UPDATE institutions SET name = $1, kind = $2 WHERE id = $3")
            .bind(name)
            .bind(kind.as_str())
            .bind(id.as_str())
            .execute(self.pool())
            .await
            .map_err(map_unique)?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    /// A new department of an existing institution; a name the institution already has is
    /// `Conflict`, an unknown institution `NotFound`, one past [`MAX_DEPARTMENTS_PER_INSTITUTION`]
    /// or [`MAX_DEPARTMENTS`] `Limit`.
    pub async fn create_department(
        &self,
        institution: &InstitutionId,
        name: &str,
    ) -> Result<Department, StorageError> {
        if self.institution(institution).await?.is_none() {
            return Err(StorageError::NotFound);
        }
        let department = Department {
            id: DepartmentId::generate(),
            institution_id: institution.clone(),
            name: name.to_owned(),
            created_at: now_unix(),
        };
        let mut tx = self.begin_write().await?;
        self.creations_take_turns(&mut tx, "departments").await?;
        under_cap(
            &mut tx,
            "SELECT COUNT(*) FROM departments WHERE institution_id = $1",
            Some(institution.as_str()),
            "departments_per_institution",
            MAX_DEPARTMENTS_PER_INSTITUTION,
        )
        .await?;
        under_cap(
            &mut tx,
            "SELECT COUNT(*) FROM departments",
            None,
            "departments",
            MAX_DEPARTMENTS,
        )
        .await?;
        sqlx::query(
            "INSERT INTO departments (id, institution_id, name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(department.id.as_str())
        .bind(institution.as_str())
        .bind(&department.name)
        .bind(department.created_at)
        .execute(&mut *tx)
        .await
        .map_err(map_unique)?;
        tx.commit().await?;
        Ok(department)
    }

    pub async fn department(&self, id: &DepartmentId) -> Result<Option<Department>, StorageError> {
        let row = sqlx::query(
            "SELECT id, institution_id, name, created_at FROM departments WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(department_from_row).transpose()
    }

    pub async fn department_by_name(
        &self,
        institution: &InstitutionId,
        name: &str,
    ) -> Result<Option<Department>, StorageError> {
        let row = sqlx::query(
            "SELECT id, institution_id, name, created_at FROM departments \
             WHERE institution_id = $1 AND name = $2",
        )
        .bind(institution.as_str())
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(department_from_row).transpose()
    }

    /// Renames a department; a name its institution already has is `Conflict`, an unknown
    /// department `NotFound`.
    pub async fn rename_department(
        &self,
        id: &DepartmentId,
        name: &str,
    ) -> Result<(), StorageError> {
        let done = sqlx::query("UPDATE departments SET name = $1 WHERE id = $2")
            .bind(name)
            .bind(id.as_str())
            .execute(self.pool())
            .await
            .map_err(map_unique)?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    /// Removes a department nobody and nothing belongs to: an account in it, or a consultation
    /// request ever addressed to it (the record of who was asked stays whole), makes it
    /// `Conflict`; an unknown department is `NotFound`.
    ///
    /// The department's row is held first ([`hold_department`]), as an account placed in it
    /// holds it: on PostgreSQL an account inserted by a transaction not yet committed is
    /// invisible to the `NOT EXISTS` below, and nothing else (`users.department_id` has no
    /// foreign key: SQLite cannot add one to an existing column) would stop the removal from
    /// leaving that account in a department that no longer exists. Holding the row first makes
    /// the removal wait for such a transaction, and the check, a statement of its own, then
    /// sees the account.
    pub async fn remove_department(&self, id: &DepartmentId) -> Result<(), StorageError> {
        let mut tx = self.begin_write().await?;
        let held = sqlx::query("UPDATE departments SET name = name WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        if held.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        let done = sqlx::query(
            "DELETE FROM departments WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM users WHERE department_id = $1) \
             AND NOT EXISTS (SELECT 1 FROM referrals WHERE target_department = $1)",
        )
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        // A request addressed to it that was committed while this waited for the row: the
        // foreign key refuses what the check above could not yet see.
        .map_err(map_foreign_key)?;
        if done.rows_affected() == 0 {
            return Err(StorageError::Conflict);
        }
        tx.commit().await.map_err(map_foreign_key)?;
        Ok(())
    }

    /// The names of the institutions and departments among `institutions` and `departments`
    /// (ids that do not exist are left out): what showing a page of accounts needs, rather than
    /// the whole network's organisation on every request.
    pub async fn place_names(
        &self,
        institutions: &[&InstitutionId],
        departments: &[&DepartmentId],
    ) -> Result<PlaceNames, StorageError> {
        let mut names = PlaceNames::default();
        let select = "SELECT id, name FROM institutions WHERE id IN";
        for row in
            super::rows_with_ids(self, select, institutions.iter().map(|i| i.as_str())).await?
        {
            let id: String = row.try_get("id")?;
            let id = InstitutionId::parse(&id).ok_or(StorageError::Corrupt("institution id"))?;
            names.institutions.insert(id, row.try_get("name")?);
        }
        let select = "SELECT id, name FROM departments WHERE id IN";
        for row in
            super::rows_with_ids(self, select, departments.iter().map(|d| d.as_str())).await?
        {
            let id: String = row.try_get("id")?;
            let id = DepartmentId::parse(&id).ok_or(StorageError::Corrupt("department id"))?;
            names.departments.insert(id, row.try_get("name")?);
        }
        Ok(names)
    }

    /// The departments among `ids` that exist (in no particular order): a page of requests
    /// reads the few it names, not the network's whole list.
    pub async fn departments_by_id(
        &self,
        ids: &[&DepartmentId],
    ) -> Result<Vec<Department>, StorageError> {
        let select = "SELECT id, institution_id, name, created_at FROM departments WHERE id IN";
        super::rows_with_ids(self, select, ids.iter().map(|d| d.as_str()))
            .await?
            .iter()
            .map(department_from_row)
            .collect()
    }

    /// Every department, or one institution's, by institution then name.
    pub async fn list_departments(
        &self,
        institution: Option<&InstitutionId>,
    ) -> Result<Vec<Department>, StorageError> {
        let rows = sqlx::query(
            "SELECT id, institution_id, name, created_at FROM departments \
             WHERE ($1 = '' OR institution_id = $1) ORDER BY institution_id, name",
        )
        .bind(institution.map(InstitutionId::as_str).unwrap_or(""))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(department_from_row).collect()
    }
}

/// Holds `department`'s row until `tx` ends, if it is one of `institution`'s
/// ([`StorageError::NoSuchDepartment`] otherwise): an account placed in it within `tx` cannot
/// then lose its department to a removal running at the same time (see
/// [`Db::remove_department`]). An update that changes nothing takes the row's write lock on
/// both databases (SQLite's `BEGIN IMMEDIATE` already holds the whole database's).
pub(super) async fn hold_department(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    department: &DepartmentId,
    institution: &InstitutionId,
) -> Result<(), StorageError> {
    let held =
        sqlx::query("UPDATE departments SET name = name WHERE id = $1 AND institution_id = $2")
            .bind(department.as_str())
            .bind(institution.as_str())
            .execute(&mut **tx)
            .await?;
    if held.rows_affected() == 0 {
        return Err(StorageError::NoSuchDepartment);
    }
    Ok(())
}
