//! Invites: each link a clinician hands out is recorded, so it can be listed and revoked; its
//! window, its uses (counted in one conditional step) and its short code's keyed hash
//! (migration 0008). Care-team seats are invites too, but none of that applies to them.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, StorageError};
use crate::domain::clock::now_unix;
use crate::domain::ids::{InviteId, ParticipantId, RoomId, UserId};
use crate::domain::role::Role;

/// The most joins the console's list of a room's invitations shows (the latest).
pub const MAX_LISTED_USES: i64 = 2000;

#[derive(Debug, Clone)]
pub struct Invite {
    pub id: InviteId,
    pub room_id: RoomId,
    pub role: Role,
    pub created_by: UserId,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// A care-team seat: the account it belongs to. `None` for a link handed out.
    pub account: Option<UserId>,
    /// Valid from (Unix seconds); `None`: from its creation.
    pub not_before: Option<i64>,
    /// `None`: unlimited.
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub label: Option<String>,
    /// Whether it has a short code (only its keyed hash is stored).
    pub has_code: bool,
    /// The role the care team last gave whoever came with it (`Change::InviteRoleNow`); `None`:
    /// never changed. See [`Invite::role_for_join`].
    pub role_now: Option<Role>,
}

impl Invite {
    /// The role a join with this invitation comes in with: the one the care team last gave
    /// its holder in the consultation, else the one it was made for. A person is an invite,
    /// so a change follows them to another tab or device.
    pub fn role_for_join(&self) -> Role {
        self.role_now.unwrap_or(self.role)
    }

    /// The facts its state is decided from.
    pub fn validity(&self) -> crate::domain::invitation::Validity {
        crate::domain::invitation::Validity {
            revoked: self.revoked_at.is_some(),
            not_before: self.not_before,
            expires_at: self.expires_at,
            max_uses: self.max_uses,
            uses: self.uses,
        }
    }
}

const COLUMNS: &str = "id, room_id, role, created_by, created_at, expires_at, revoked_at, \
                       account_id, not_before, max_uses, uses, label, code_hash, role_now";

fn from_row(row: &AnyRow) -> Result<Invite, StorageError> {
    let id: String = row.try_get("id")?;
    let room: String = row.try_get("room_id")?;
    let role: String = row.try_get("role")?;
    let by: String = row.try_get("created_by")?;
    let account: Option<String> = row.try_get("account_id")?;
    let code_hash: Option<String> = row.try_get("code_hash")?;
    let role_now: Option<String> = row.try_get("role_now")?;
    Ok(Invite {
        id: InviteId::parse(&id).ok_or(StorageError::Corrupt("invite id"))?,
        room_id: RoomId::parse(&room).ok_or(StorageError::Corrupt("invite room"))?,
        role: Role::parse(&role).ok_or(StorageError::Corrupt("invite role"))?,
        created_by: UserId::parse(&by).ok_or(StorageError::Corrupt("invite creator"))?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        account: account
            .map(|a| UserId::parse(&a).ok_or(StorageError::Corrupt("invite account")))
            .transpose()?,
        not_before: row.try_get("not_before")?,
        max_uses: row.try_get("max_uses")?,
        uses: row.try_get("uses")?,
        label: row.try_get("label")?,
        has_code: code_hash.is_some(),
        role_now: role_now
            .map(|r| Role::parse(&r).ok_or(StorageError::Corrupt("invite role now")))
            .transpose()?,
    })
}

impl Db {
    pub async fn create_invite(
        &self,
        room_id: &RoomId,
        role: Role,
        created_by: &UserId,
        expires_at: i64,
    ) -> Result<Invite, StorageError> {
        let invite = Invite {
            id: InviteId::generate(),
            room_id: room_id.clone(),
            role,
            created_by: created_by.clone(),
            created_at: now_unix(),
            expires_at,
            revoked_at: None,
            account: None,
            not_before: None,
            max_uses: None,
            uses: 0,
            label: None,
            has_code: false,
            role_now: None,
        };
        sqlx::query(
            "INSERT INTO invites (id, room_id, role, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(invite.id.as_str())
        .bind(room_id.as_str())
        .bind(role.as_str())
        .bind(created_by.as_str())
        .bind(invite.created_at)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(invite)
    }

    pub async fn invite(&self, id: &InviteId) -> Result<Option<Invite>, StorageError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM invites WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The revoked invites of a room (a live room refuses them, and removes their holders).
    pub async fn revoked_invites(&self, room_id: &RoomId) -> Result<Vec<InviteId>, StorageError> {
        let rows =
            sqlx::query("SELECT id FROM invites WHERE room_id = $1 AND revoked_at IS NOT NULL")
                .bind(room_id.as_str())
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                InviteId::parse(&id).ok_or(StorageError::Corrupt("invite id"))
            })
            .collect()
    }

    /// Revokes a link invite of `room_id`; an invite of another room, or a care-team seat
    /// (taken away by removing its holder from the care team), is `NotFound`.
    pub async fn revoke_invite(&self, room_id: &RoomId, id: &InviteId) -> Result<(), StorageError> {
        let done = sqlx::query(
            "UPDATE invites SET revoked_at = $1 \
             WHERE id = $2 AND room_id = $3 AND revoked_at IS NULL AND account_id IS NULL",
        )
        .bind(now_unix())
        .bind(id.as_str())
        .bind(room_id.as_str())
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }
}

/// A new link invitation (a patient's or an observer's).
#[derive(Debug, Clone)]
pub struct NewInvite<'a> {
    pub room_id: &'a RoomId,
    pub role: Role,
    pub created_by: &'a UserId,
    pub not_before: Option<i64>,
    pub expires_at: i64,
    pub max_uses: Option<i64>,
    pub label: Option<&'a str>,
    /// The keyed hash of its short code.
    pub code_hash: &'a str,
}

/// One join an invitation let in, with the participant's name and role as the room recorded
/// them (`None` if that row is missing).
#[derive(Debug, Clone)]
pub struct InviteUse {
    pub invite_id: InviteId,
    pub participant_id: ParticipantId,
    pub name: Option<String>,
    pub role: Option<Role>,
    /// Unix milliseconds.
    pub used_at_ms: i64,
    /// A use of the invitation; `false`: the same browser back (a reload).
    pub counted: bool,
}

impl Db {
    /// Stores a link invitation. [`StorageError::Conflict`] when its code's hash is taken (the
    /// caller draws another code).
    /// Stores a new link invitation, unless the room has `cap` link invitations already (any
    /// state: revoked and expired ones stay listed): `None` then. The room's row is locked
    /// first (an update that changes nothing), so that two clinicians issuing at once are
    /// counted one after the other, on SQLite and on PostgreSQL alike.
    pub async fn create_link_invite(
        &self,
        new: &NewInvite<'_>,
        cap: i64,
    ) -> Result<Option<Invite>, StorageError> {
        let invite = Invite {
            id: InviteId::generate(),
            room_id: new.room_id.clone(),
            role: new.role,
            created_by: new.created_by.clone(),
            created_at: now_unix(),
            expires_at: new.expires_at,
            revoked_at: None,
            account: None,
            not_before: new.not_before,
            max_uses: new.max_uses,
            uses: 0,
            label: new.label.map(str::to_owned),
            has_code: true,
            role_now: None,
        };
        let mut tx = self.begin_write().await?;
        super::rooms::hold_room(&mut tx, new.room_id).await?;
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM invites WHERE room_id = $1 AND account_id IS NULL",
        )
        .bind(new.room_id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let n: i64 = row.try_get("n")?;
        if n >= cap {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO invites (id, room_id, role, created_by, created_at, expires_at, \
             not_before, max_uses, uses, label, code_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10)",
        )
        .bind(invite.id.as_str())
        .bind(new.room_id.as_str())
        .bind(new.role.as_str())
        .bind(new.created_by.as_str())
        .bind(invite.created_at)
        .bind(new.expires_at)
        .bind(new.not_before)
        .bind(new.max_uses)
        .bind(new.label)
        .bind(new.code_hash)
        .execute(&mut *tx)
        .await
        .map_err(super::map_unique)?;
        tx.commit().await?;
        Ok(Some(invite))
    }

    /// The room's consultation slot, `(start, minutes)`, where one was agreed.
    pub async fn room_slot(&self, room: &RoomId) -> Result<Option<(i64, i64)>, StorageError> {
        let row = sqlx::query("SELECT slot_start, slot_minutes FROM rooms WHERE id = $1")
            .bind(room.as_str())
            .fetch_optional(self.pool())
            .await?
            .ok_or(StorageError::NotFound)?;
        let start: Option<i64> = row.try_get("slot_start")?;
        let minutes: Option<i64> = row.try_get("slot_minutes")?;
        Ok(start.zip(minutes))
    }

    /// The link invitations of a room (never its care-team seats), newest first: at most
    /// `MAX_LINK_INVITES_PER_ROOM` (`domain::invitation`), which issuing keeps to.
    pub async fn link_invites(&self, room: &RoomId) -> Result<Vec<Invite>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM invites WHERE room_id = $1 AND account_id IS NULL \
             ORDER BY created_at DESC, id"
        ))
        .bind(room.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// The invitation a short code opens, whatever its state.
    pub async fn invite_by_code(&self, code_hash: &str) -> Result<Option<Invite>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM invites WHERE code_hash = $1 AND account_id IS NULL"
        ))
        .bind(code_hash)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Gives a link invitation of `room` a new short code; the old one stops working.
    /// `NotFound` for a seat, another room's invitation or a revoked one; `Conflict` when the
    /// new code's hash is taken.
    pub async fn set_invite_code(
        &self,
        room: &RoomId,
        id: &InviteId,
        code_hash: &str,
    ) -> Result<(), StorageError> {
        let done = sqlx::query(
            "UPDATE invites SET code_hash = $1 \
             WHERE id = $2 AND room_id = $3 AND account_id IS NULL AND revoked_at IS NULL",
        )
        .bind(code_hash)
        .bind(id.as_str())
        .bind(room.as_str())
        .execute(self.pool())
        .await
        .map_err(super::map_unique)?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    /// Counts one use of a link invitation, if it has one left and is not revoked: one
    /// conditional statement, so of concurrent joins for the last use exactly one gets it.
    pub async fn take_invite_use(&self, id: &InviteId) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE invites SET uses = uses + 1 WHERE id = $1 AND revoked_at IS NULL \
             AND account_id IS NULL AND (max_uses IS NULL OR uses < max_uses)",
        )
        .bind(id.as_str())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives back a use taken for a join that did not happen (the room refused it).
    pub async fn give_back_invite_use(&self, id: &InviteId) -> Result<(), StorageError> {
        sqlx::query("UPDATE invites SET uses = uses - 1 WHERE id = $1 AND uses > 0")
            .bind(id.as_str())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks `participant`, let in by `invite`, as replaced by a new join of the same browser:
    /// `true` the first time, `false` if it was not this invitation's or was replaced already.
    pub async fn take_over_invite_use(
        &self,
        invite: &InviteId,
        participant: &ParticipantId,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE invite_uses SET taken_over = 1 \
             WHERE invite_id = $1 AND participant_id = $2 AND taken_over = 0",
        )
        .bind(invite.as_str())
        .bind(participant.as_str())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Undoes [`Db::take_over_invite_use`] for a join that did not happen.
    pub async fn release_invite_take_over(
        &self,
        invite: &InviteId,
        participant: &ParticipantId,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE invite_uses SET taken_over = 0 WHERE invite_id = $1 AND participant_id = $2",
        )
        .bind(invite.as_str())
        .bind(participant.as_str())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records a join an invitation let in; `client` is a keyed pseudonym of its address.
    pub async fn record_invite_use(
        &self,
        invite: &InviteId,
        participant: &ParticipantId,
        used_at_ms: i64,
        client: &str,
        counted: bool,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO invite_uses (invite_id, participant_id, used_at_ms, client, counted) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(invite.as_str())
        .bind(participant.as_str())
        .bind(used_at_ms)
        .bind(client)
        .bind(i64::from(counted))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The joins the room's link invitations let in, oldest first: the latest
    /// [`MAX_LISTED_USES`] (an observers' link admits without a limit, and a reload is a join).
    pub async fn invite_uses(&self, room: &RoomId) -> Result<Vec<InviteUse>, StorageError> {
        let rows = sqlx::query(
            "SELECT * FROM (\
               SELECT u.invite_id, u.participant_id, u.used_at_ms, u.counted, p.name, p.role \
               FROM invite_uses u JOIN invites i ON i.id = u.invite_id \
               LEFT JOIN participants p ON p.id = u.participant_id \
               WHERE i.room_id = $1 ORDER BY u.used_at_ms DESC, u.participant_id DESC LIMIT $2\
             ) latest ORDER BY used_at_ms, participant_id",
        )
        .bind(room.as_str())
        .bind(MAX_LISTED_USES)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let invite: String = row.try_get("invite_id")?;
                let participant: String = row.try_get("participant_id")?;
                let role: Option<String> = row.try_get("role")?;
                let counted: i64 = row.try_get("counted")?;
                Ok(InviteUse {
                    invite_id: InviteId::parse(&invite)
                        .ok_or(StorageError::Corrupt("invite use's invite"))?,
                    participant_id: ParticipantId::parse(&participant)
                        .ok_or(StorageError::Corrupt("invite use's participant"))?,
                    name: row.try_get("name")?,
                    role: role.as_deref().and_then(Role::parse),
                    used_at_ms: row.try_get("used_at_ms")?,
                    counted: counted != 0,
                })
            })
            .collect()
    }
}
