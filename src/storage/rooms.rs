//! Consultation rooms as records: what was scheduled, by whom, and when it ended.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Db, StorageError};
use crate::domain::clock::now_unix;
use crate::domain::ids::{InstitutionId, RoomId, UserId};
use crate::domain::referral::Slot;
use crate::domain::role::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomStatus {
    Open,
    Ended,
}

#[derive(Debug, Clone)]
pub struct RoomRecord {
    pub id: RoomId,
    pub title: String,
    pub patient_ref: Option<String>,
    pub created_by: UserId,
    /// The institution that holds the consultation (its creator's): its clinicians see it.
    pub institution_id: InstitutionId,
    pub created_at: i64,
    pub ended_at: Option<i64>,
    pub status: RoomStatus,
    /// Whoever comes with an invitation waits until a clinician admits them.
    pub waiting_room: bool,
    /// The consultation's agreed time (a scheduled referral's room): start in Unix seconds and
    /// length in minutes; `None` for a room opened without one.
    pub slot: Option<(i64, i64)>,
}

fn from_row(row: &AnyRow) -> Result<RoomRecord, StorageError> {
    let id: String = row.try_get("id")?;
    let created_by: String = row.try_get("created_by")?;
    let ended_at: Option<i64> = row.try_get("ended_at")?;
    let institution: String = row.try_get("institution_id")?;
    let waiting_room: i64 = row.try_get("waiting_room")?;
    let slot_start: Option<i64> = row.try_get("slot_start")?;
    let slot_minutes: Option<i64> = row.try_get("slot_minutes")?;
    Ok(RoomRecord {
        id: RoomId::parse(&id).ok_or(StorageError::Corrupt("room id"))?,
        title: row.try_get("title")?,
        patient_ref: row.try_get("patient_ref")?,
        created_by: UserId::parse(&created_by).ok_or(StorageError::Corrupt("room creator"))?,
        institution_id: InstitutionId::parse(&institution)
            .ok_or(StorageError::Corrupt("room institution"))?,
        created_at: row.try_get("created_at")?,
        ended_at,
        status: if ended_at.is_some() {
            RoomStatus::Ended
        } else {
            RoomStatus::Open
        },
        waiting_room: waiting_room != 0,
        slot: slot_start.zip(slot_minutes),
    })
}

const COLUMNS: &str = "id, title, patient_ref, created_by, institution_id, created_at, ended_at, \
     waiting_room, slot_start, slot_minutes";

/// The filter and order of a room listing, the booked window's bounds being parameters `$n`
/// and `$n+1` (bound either way, so that every listing has the same parameters, in order).
fn listing(booked: Option<(i64, i64)>, n: usize) -> (String, &'static str) {
    match booked {
        Some(_) => (
            format!("AND slot_start >= ${n} AND slot_start < ${}", n + 1),
            "ORDER BY slot_start, id",
        ),
        None => (
            format!("AND ${n} = ${}", n + 1),
            "ORDER BY CASE WHEN ended_at IS NULL THEN 0 ELSE 1 END, created_at DESC, id",
        ),
    }
}

/// Inserts a new room with its creator as its care team's doctor, in the caller's transaction
/// (a scheduled referral opens its room in the transaction that schedules it).
/// Holds `room`'s row until `tx` ends (`NotFound` for no such room): the steps that count
/// what the room holds before adding or taking away (its invitation links, its care team's
/// doctors) run one at a time, each seeing what the one before left. An update that changes
/// nothing takes the row's write lock on both databases.
pub(super) async fn hold_room(
    tx: &mut Transaction<'static, Any>,
    room: &RoomId,
) -> Result<(), StorageError> {
    let held = sqlx::query("UPDATE rooms SET title = title WHERE id = $1")
        .bind(room.as_str())
        .execute(&mut **tx)
        .await?;
    if held.rows_affected() == 0 {
        return Err(StorageError::NotFound);
    }
    Ok(())
}

pub(super) async fn insert(
    tx: &mut Transaction<'static, Any>,
    room: &RoomRecord,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO rooms (id, title, patient_ref, created_by, institution_id, created_at, \
         waiting_room, slot_start, slot_minutes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(room.id.as_str())
    .bind(&room.title)
    .bind(room.patient_ref.as_deref())
    .bind(room.created_by.as_str())
    .bind(room.institution_id.as_str())
    .bind(room.created_at)
    .bind(i64::from(room.waiting_room))
    .bind(room.slot.map(|(start, _)| start))
    .bind(room.slot.map(|(_, minutes)| minutes))
    .execute(&mut **tx)
    .await?;
    super::care_team::insert(
        tx,
        &room.id,
        &room.created_by,
        Role::Doctor,
        &room.created_by,
    )
    .await?;
    Ok(())
}

/// Moves consultation `room` to `slot` in the caller's transaction, and with it the windows of
/// the patients' invitations made for its old time (those with a window start, `not_before`):
/// each keeps its distance from the start and from the end, so an invitation "from 30 minutes
/// before until an hour after" stays so around the new time. Invitations given a lifetime of
/// their own and care-team seats keep theirs. Answers the old slot and how many invitations
/// moved.
pub(super) async fn move_slot(
    tx: &mut Transaction<'static, Any>,
    room: &RoomId,
    slot: Slot,
) -> Result<(Option<(i64, i64)>, u64), StorageError> {
    let old = sqlx::query("SELECT slot_start, slot_minutes FROM rooms WHERE id = $1")
        .bind(room.as_str())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StorageError::NotFound)?;
    let old: Option<(i64, i64)> = old
        .try_get::<Option<i64>, _>("slot_start")?
        .zip(old.try_get::<Option<i64>, _>("slot_minutes")?);
    let (start, minutes) = (slot.start(), i64::from(slot.minutes()));
    sqlx::query("UPDATE rooms SET slot_start = $1, slot_minutes = $2 WHERE id = $3")
        .bind(start)
        .bind(minutes)
        .bind(room.as_str())
        .execute(&mut **tx)
        .await?;
    let Some((old_start, old_minutes)) = old else {
        return Ok((None, 0));
    };
    let start_shift = start - old_start;
    let end_shift = (start + minutes * 60) - (old_start + old_minutes * 60);
    let moved = sqlx::query(
        "UPDATE invites SET not_before = not_before + $1, expires_at = expires_at + $2 \
         WHERE room_id = $3 AND not_before IS NOT NULL AND account_id IS NULL",
    )
    .bind(start_shift)
    .bind(end_shift)
    .bind(room.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok((old, moved))
}

/// What moving a consultation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rescheduled {
    /// Its time before, if it had one.
    pub from: Option<(i64, i64)>,
    /// The patients' invitations whose windows moved with it.
    pub invitations_moved: u64,
}

impl Db {
    /// Moves a consultation that did not come from a consultation request to `slot` (see
    /// [`move_slot`]); a request's room moves with the request's agreed time instead, so it is
    /// `Conflict` here. `NotFound` for an ended room.
    pub async fn reschedule_room(
        &self,
        room: &RoomId,
        slot: Slot,
    ) -> Result<Rescheduled, StorageError> {
        let mut tx = self.begin_write().await?;
        let live = sqlx::query("SELECT id FROM rooms WHERE id = $1 AND ended_at IS NULL")
            .bind(room.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !live {
            return Err(StorageError::NotFound);
        }
        let referred = sqlx::query("SELECT id FROM referrals WHERE room_id = $1")
            .bind(room.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if referred {
            return Err(StorageError::Conflict);
        }
        let (from, invitations_moved) = move_slot(&mut tx, room, slot).await?;
        tx.commit().await?;
        Ok(Rescheduled {
            from,
            invitations_moved,
        })
    }

    /// Which of `rooms` a consultation request opened.
    pub async fn rooms_from_referrals(
        &self,
        rooms: &[RoomId],
    ) -> Result<std::collections::HashSet<RoomId>, StorageError> {
        if rooms.is_empty() {
            return Ok(Default::default());
        }
        let placeholders: Vec<String> = (1..=rooms.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT room_id FROM referrals WHERE room_id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for room in rooms {
            query = query.bind(room.as_str());
        }
        query
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                let id: String = r.try_get("room_id")?;
                RoomId::parse(&id).ok_or(StorageError::Corrupt("referral room"))
            })
            .collect()
    }

    /// A room held by its creator's institution, with the creator as its care team's doctor
    /// (one transaction: a room never exists without the clinician who runs it).
    pub async fn create_room(
        &self,
        title: &str,
        patient_ref: Option<&str>,
        created_by: &UserId,
    ) -> Result<RoomRecord, StorageError> {
        self.create_room_with(title, patient_ref, created_by, false, None)
            .await
    }

    /// The same, saying whether those with an invitation wait to be admitted, and when it
    /// takes place when booked ahead.
    pub async fn create_room_with(
        &self,
        title: &str,
        patient_ref: Option<&str>,
        created_by: &UserId,
        waiting_room: bool,
        slot: Option<Slot>,
    ) -> Result<RoomRecord, StorageError> {
        let creator = self.user(created_by).await?.ok_or(StorageError::NotFound)?;
        let room = RoomRecord {
            id: RoomId::generate(),
            title: title.to_owned(),
            patient_ref: patient_ref.map(str::to_owned),
            created_by: created_by.clone(),
            institution_id: creator.institution_id.clone(),
            created_at: now_unix(),
            ended_at: None,
            status: RoomStatus::Open,
            waiting_room,
            slot: slot.map(|s| (s.start(), i64::from(s.minutes()))),
        };
        let mut tx = self.begin_write().await?;
        insert(&mut tx, &room).await?;
        tx.commit().await?;
        Ok(room)
    }

    pub async fn room(&self, id: &RoomId) -> Result<Option<RoomRecord>, StorageError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM rooms WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Rooms, open ones first, each part newest first, at most `limit`; with `booked`, only
    /// those booked in `[from, to)` (Unix seconds), by their time (a day's consultations).
    pub async fn list_rooms(
        &self,
        booked: Option<(i64, i64)>,
        limit: i64,
    ) -> Result<Vec<RoomRecord>, StorageError> {
        let (filter, order) = listing(booked, 1);
        let (from, to) = booked.unwrap_or_default();
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM rooms WHERE 1 = 1 {filter} {order} LIMIT $3"
        ))
        .bind(from)
        .bind(to)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// The rooms an account sees as a clinician: its institution's and those whose care team
    /// it is on; ordered and filtered as [`Db::list_rooms`]. Open ones first: a consultation
    /// a clinician was added to stays in their console however many newer ones there are.
    pub async fn list_rooms_for(
        &self,
        user: &UserId,
        institution: &InstitutionId,
        booked: Option<(i64, i64)>,
        limit: i64,
    ) -> Result<Vec<RoomRecord>, StorageError> {
        let (filter, order) = listing(booked, 3);
        let (from, to) = booked.unwrap_or_default();
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM rooms WHERE (institution_id = $1 \
             OR id IN (SELECT room_id FROM care_team WHERE user_id = $2)) {filter} {order} \
             LIMIT $5"
        ))
        .bind(institution.as_str())
        .bind(user.as_str())
        .bind(from)
        .bind(to)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Marks the room ended and queues its `consultation.ended` webhook event, in one
    /// transaction; ending an ended room is not an error (and queues nothing).
    pub async fn end_room(&self, id: &RoomId) -> Result<(), StorageError> {
        let mut tx = self.begin_write().await?;
        super::Change::apply_all(&[&super::Change::room_ended(id)], &mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
