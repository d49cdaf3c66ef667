//! The care team of each consultation: the clinicians on it, the role each takes in its room,
//! and each one's seat (an invite bound to the account, so that removing a clinician reuses
//! everything a revoked invite does: the live room removes them, and they cannot come back).

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Db, StorageError, map_unique};
use crate::domain::clock::now_unix;
use crate::domain::ids::{InviteId, RoomId, UserId};
use crate::domain::role::Role;

/// A seat never expires by time: it lasts as long as its holder is on the care team.
const SEAT_EXPIRES_AT: i64 = i64::MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CareTeamMember {
    pub room_id: RoomId,
    pub user_id: UserId,
    pub role: Role,
    pub seat: InviteId,
    pub added_by: UserId,
    pub added_at: i64,
}

fn from_row(row: &AnyRow) -> Result<CareTeamMember, StorageError> {
    let room: String = row.try_get("room_id")?;
    let user: String = row.try_get("user_id")?;
    let role: String = row.try_get("role")?;
    let seat: String = row.try_get("seat")?;
    let by: String = row.try_get("added_by")?;
    Ok(CareTeamMember {
        room_id: RoomId::parse(&room).ok_or(StorageError::Corrupt("care team room"))?,
        user_id: UserId::parse(&user).ok_or(StorageError::Corrupt("care team user"))?,
        role: Role::parse(&role).ok_or(StorageError::Corrupt("care team role"))?,
        seat: InviteId::parse(&seat).ok_or(StorageError::Corrupt("care team seat"))?,
        added_by: UserId::parse(&by).ok_or(StorageError::Corrupt("care team adder"))?,
        added_at: row.try_get("added_at")?,
    })
}

const COLUMNS: &str = "room_id, user_id, role, seat, added_by, added_at";

/// Adds a clinician in the caller's transaction (room creation adds its creator so).
pub(super) async fn insert(
    tx: &mut Transaction<'static, Any>,
    room: &RoomId,
    user: &UserId,
    role: Role,
    added_by: &UserId,
) -> Result<CareTeamMember, StorageError> {
    let member = CareTeamMember {
        room_id: room.clone(),
        user_id: user.clone(),
        role,
        seat: InviteId::generate(),
        added_by: added_by.clone(),
        added_at: now_unix(),
    };
    sqlx::query(
        "INSERT INTO invites (id, room_id, role, created_by, created_at, expires_at, account_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(member.seat.as_str())
    .bind(room.as_str())
    .bind(role.as_str())
    .bind(added_by.as_str())
    .bind(member.added_at)
    .bind(SEAT_EXPIRES_AT)
    .bind(user.as_str())
    .execute(&mut **tx)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO care_team ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
    ))
    .bind(room.as_str())
    .bind(user.as_str())
    .bind(role.as_str())
    .bind(member.seat.as_str())
    .bind(added_by.as_str())
    .bind(member.added_at)
    .execute(&mut **tx)
    .await
    .map_err(map_unique)?;
    Ok(member)
}

impl Db {
    /// Puts a clinician on a room's care team; one already on it is `Conflict` (two
    /// concurrent additions of the same person: one wins, the other is told).
    pub async fn add_to_care_team(
        &self,
        room: &RoomId,
        user: &UserId,
        role: Role,
        added_by: &UserId,
    ) -> Result<CareTeamMember, StorageError> {
        let mut tx = self.begin_write().await?;
        let member = insert(&mut tx, room, user, role, added_by).await?;
        tx.commit().await?;
        Ok(member)
    }

    /// Takes a clinician off the care team and revokes their seat; returns the seat (the live
    /// room removes whoever came with it). Not on it: `NotFound`; the consultation's last
    /// clinician who runs it (a doctor's seat): `Conflict`, nothing changed.
    pub async fn remove_from_care_team(
        &self,
        room: &RoomId,
        user: &UserId,
    ) -> Result<InviteId, StorageError> {
        let mut tx = self.begin_write().await?;
        // One removal of this room's care team at a time: the check below that a doctor stays
        // reads what the removal before left. Two doctors removing each other at once left the
        // consultation with none.
        super::rooms::hold_room(&mut tx, room).await?;
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM care_team WHERE room_id = $1 AND user_id = $2"
        ))
        .bind(room.as_str())
        .bind(user.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StorageError::NotFound)?;
        let member = from_row(&row)?;
        if member.role.may_invite() {
            let others = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM care_team WHERE room_id = $1 AND user_id <> $2"
            ))
            .bind(room.as_str())
            .bind(user.as_str())
            .fetch_all(&mut *tx)
            .await?;
            let mut runs = false;
            for row in &others {
                runs |= from_row(row)?.role.may_invite();
            }
            if !runs {
                return Err(StorageError::Conflict);
            }
        }
        sqlx::query("DELETE FROM care_team WHERE room_id = $1 AND user_id = $2")
            .bind(room.as_str())
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE invites SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_unix())
            .bind(member.seat.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(member.seat)
    }

    /// Whether the care team includes a clinician of another institution than the room's
    /// (a referral brought them in): sharing documents then needs the patient's consent.
    pub async fn care_team_spans_institutions(&self, room: &RoomId) -> Result<bool, StorageError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM care_team c JOIN users u ON u.id = c.user_id \
             JOIN rooms r ON r.id = c.room_id \
             WHERE c.room_id = $1 AND u.institution_id <> r.institution_id",
        )
        .bind(room.as_str())
        .fetch_one(self.pool())
        .await?;
        let n: i64 = row.try_get("n")?;
        Ok(n > 0)
    }

    /// The care team, in the order they were added (by the second; doctors first within one).
    pub async fn care_team(&self, room: &RoomId) -> Result<Vec<CareTeamMember>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM care_team WHERE room_id = $1 \
             ORDER BY added_at, CASE role WHEN 'doctor' THEN 0 ELSE 1 END, user_id"
        ))
        .bind(room.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// The account's role on each of `rooms`' care teams, where it has one.
    pub async fn care_team_roles(
        &self,
        user: &UserId,
        rooms: &[RoomId],
    ) -> Result<Vec<(RoomId, Role)>, StorageError> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (0..rooms.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT room_id, role FROM care_team WHERE user_id = $1 AND room_id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(user.as_str());
        for room in rooms {
            query = query.bind(room.as_str());
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                let room: String = r.try_get("room_id")?;
                let role: String = r.try_get("role")?;
                Ok((
                    RoomId::parse(&room).ok_or(StorageError::Corrupt("care team room"))?,
                    Role::parse(&role).ok_or(StorageError::Corrupt("care team role"))?,
                ))
            })
            .collect()
    }

    pub async fn care_team_member(
        &self,
        room: &RoomId,
        user: &UserId,
    ) -> Result<Option<CareTeamMember>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM care_team WHERE room_id = $1 AND user_id = $2"
        ))
        .bind(room.as_str())
        .bind(user.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }
}
