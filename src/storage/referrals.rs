//! Consultation requests (referrals): the request and where it stands, the times proposed
//! with it, and every step of its life. A step is one transaction that applies only to the
//! version of the request it was decided on (`UPDATE … WHERE version = $expected`): of two
//! clinicians answering at once, one wins and the other is told (`Conflict`), and a step that
//! schedules the request opens its consultation room in that same transaction.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Db, RoomRecord, RoomStatus, StorageError};
use crate::domain::ids::{DepartmentId, InstitutionId, ReferralId, RoomId, UserId};
use crate::domain::referral::{ReferralState, Side, Slot, Target, Urgency};
use crate::domain::role::Role;
use crate::domain::webhook::OutboxEvent;

/// A request as stored, with the slot of its consultation room once it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralRow {
    pub id: ReferralId,
    pub requester_id: UserId,
    /// The requester's institution when they asked; it holds the consultation room.
    pub requester_institution: InstitutionId,
    pub target: Target,
    /// The receiving clinician who last took a step on it (not a forward); `None` until one
    /// does, and again after a forward.
    pub receiver_id: Option<UserId>,
    pub patient_ref: String,
    pub reason: String,
    pub question: String,
    pub urgency: Urgency,
    pub state: ReferralState,
    pub room_id: Option<RoomId>,
    /// The consultation room's slot (the time last agreed), once the request was scheduled.
    pub room_slot: Option<Slot>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One step of a request's life, numbered by the version it produced (1: the request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralEvent {
    pub referral_id: ReferralId,
    pub version: i64,
    /// `create`, or the name of the step (`domain::referral::Action::as_str`).
    pub action: String,
    /// Empty for `create`.
    pub from_state: String,
    pub to_state: String,
    pub actor_id: UserId,
    pub side: Side,
    pub detail: serde_json::Value,
    pub at: i64,
}

/// Which requests a list shows.
#[derive(Debug, Clone, Copy)]
pub enum ReferralBox<'a> {
    /// A clinician's own inbox: named to them, or taken on by them.
    Inbox(&'a UserId),
    /// A department's unassigned requests: addressed to the department as a whole, not yet
    /// taken on by anyone in it.
    Department(&'a DepartmentId),
    /// What a clinician asked for.
    Outbox(&'a UserId),
}

/// What a step records besides the new state.
#[derive(Debug, Clone)]
pub struct NewReferralEvent<'a> {
    pub action: &'a str,
    pub actor: &'a UserId,
    pub side: Side,
    pub detail: serde_json::Value,
}

/// What a step does to the consultation room.
#[derive(Debug, Clone)]
pub enum RoomStep<'a> {
    None,
    /// Open the room (first scheduled): held by the requester's institution, the requester
    /// its care team's doctor, `specialist` on the care team as a specialist, at `slot`.
    Open {
        /// The new room's id (chosen by the caller, so the step's webhook event can name it).
        room: &'a RoomId,
        title: &'a str,
        specialist: Option<&'a UserId>,
        slot: Slot,
    },
    /// A new time agreed for the room the request has: its slot moves, and `specialist` is
    /// put on its care team if not on it yet.
    Reslot {
        room: &'a RoomId,
        specialist: Option<&'a UserId>,
        slot: Slot,
    },
}

/// What a step left: the request after it, and the clinician it put on the room's care team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SteppedRow {
    pub row: ReferralRow,
    pub seated: Option<UserId>,
    /// The request's attachments the step made documents of the room it opened.
    pub documents_copied: Vec<super::ReferralDocumentRow>,
    /// The audit entries the step owes, queued in its transaction (`audit_pending`).
    pub owed: Vec<super::PendingAudit>,
}

/// A step to persist on `row` as it was read (its version is the one expected).
#[derive(Debug, Clone)]
pub struct ReferralStep<'a> {
    pub state: &'a ReferralState,
    pub target: &'a Target,
    pub receiver: Option<&'a UserId>,
    pub event: NewReferralEvent<'a>,
    pub room: RoomStep<'a>,
    pub at: i64,
    /// The webhook event reporting the step, queued in its transaction.
    pub outbox: Option<&'a OutboxEvent>,
}

const SELECT: &str = "SELECT r.id, r.requester_id, r.requester_institution, \
     r.target_department, r.target_specialist, r.receiver_id, r.patient_ref, r.reason, \
     r.question, r.urgency, r.state, r.state_by, r.slot_start, r.slot_minutes, r.state_reason, \
     r.room_id, r.version, r.created_at, r.updated_at, \
     m.slot_start AS room_slot_start, m.slot_minutes AS room_slot_minutes \
     FROM referrals r LEFT JOIN rooms m ON m.id = r.room_id";

/// Open first, then emergencies, urgent, routine, then the longest waiting.
const ORDER: &str = "ORDER BY r.is_open DESC, r.urgency_rank, r.created_at, r.id";

fn slot_of(start: Option<i64>, minutes: Option<i64>) -> Result<Option<Slot>, StorageError> {
    match (start, minutes) {
        (None, None) => Ok(None),
        (Some(start), Some(minutes)) => u32::try_from(minutes)
            .ok()
            .and_then(|m| Slot::from_stored(start, m))
            .map(Some)
            .ok_or(StorageError::Corrupt("referral slot")),
        _ => Err(StorageError::Corrupt("referral slot")),
    }
}

fn user(id: Option<String>, what: &'static str) -> Result<Option<UserId>, StorageError> {
    id.map(|s| UserId::parse(&s).ok_or(StorageError::Corrupt(what)))
        .transpose()
}

fn from_row(row: &AnyRow) -> Result<ReferralRow, StorageError> {
    let id: String = row.try_get("id")?;
    let requester: String = row.try_get("requester_id")?;
    let institution: String = row.try_get("requester_institution")?;
    let department: String = row.try_get("target_department")?;
    let urgency: String = row.try_get("urgency")?;
    let state: String = row.try_get("state")?;
    let by: Option<String> = row.try_get("state_by")?;
    let by = by
        .map(|s| Side::parse(&s).ok_or(StorageError::Corrupt("referral state side")))
        .transpose()?;
    let slot = slot_of(row.try_get("slot_start")?, row.try_get("slot_minutes")?)?;
    let reason: Option<String> = row.try_get("state_reason")?;
    let room: Option<String> = row.try_get("room_id")?;
    let department =
        DepartmentId::parse(&department).ok_or(StorageError::Corrupt("referral department"))?;
    Ok(ReferralRow {
        id: ReferralId::parse(&id).ok_or(StorageError::Corrupt("referral id"))?,
        requester_id: UserId::parse(&requester)
            .ok_or(StorageError::Corrupt("referral requester"))?,
        requester_institution: InstitutionId::parse(&institution)
            .ok_or(StorageError::Corrupt("referral institution"))?,
        target: Target::new(
            department,
            user(row.try_get("target_specialist")?, "referral specialist")?,
        ),
        receiver_id: user(row.try_get("receiver_id")?, "referral receiver")?,
        patient_ref: row.try_get("patient_ref")?,
        reason: row.try_get("reason")?,
        question: row.try_get("question")?,
        urgency: Urgency::parse(&urgency).ok_or(StorageError::Corrupt("referral urgency"))?,
        state: ReferralState::from_stored(&state, by, slot, reason)
            .ok_or(StorageError::Corrupt("referral state"))?,
        room_id: room
            .map(|r| RoomId::parse(&r).ok_or(StorageError::Corrupt("referral room")))
            .transpose()?,
        room_slot: slot_of(
            row.try_get("room_slot_start")?,
            row.try_get("room_slot_minutes")?,
        )?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn event_from_row(row: &AnyRow) -> Result<ReferralEvent, StorageError> {
    let id: String = row.try_get("referral_id")?;
    let actor: String = row.try_get("actor_id")?;
    let side: String = row.try_get("side")?;
    let detail: String = row.try_get("detail")?;
    Ok(ReferralEvent {
        referral_id: ReferralId::parse(&id).ok_or(StorageError::Corrupt("referral event id"))?,
        version: row.try_get("version")?,
        action: row.try_get("action")?,
        from_state: row.try_get("from_state")?,
        to_state: row.try_get("to_state")?,
        actor_id: UserId::parse(&actor).ok_or(StorageError::Corrupt("referral event actor"))?,
        side: Side::parse(&side).ok_or(StorageError::Corrupt("referral event side"))?,
        detail: serde_json::from_str(&detail)
            .map_err(|_| StorageError::Corrupt("referral event detail"))?,
        at: row.try_get("at")?,
    })
}

async fn insert_event(
    tx: &mut Transaction<'static, Any>,
    referral: &ReferralId,
    version: i64,
    from_state: &str,
    to_state: &str,
    event: &NewReferralEvent<'_>,
    at: i64,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO referral_events (referral_id, version, action, from_state, to_state, \
         actor_id, side, detail, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(referral.as_str())
    .bind(version)
    .bind(event.action)
    .bind(from_state)
    .bind(to_state)
    .bind(event.actor.as_str())
    .bind(event.side.as_str())
    .bind(event.detail.to_string())
    .bind(at)
    .execute(&mut **tx)
    .await
    .map_err(super::map_unique)?;
    Ok(())
}

/// Puts the receiving clinician on the room's care team as a specialist, unless they are on
/// it; whether they were put on it now.
async fn seat_specialist(
    tx: &mut Transaction<'static, Any>,
    room: &RoomId,
    specialist: &UserId,
    added_by: &UserId,
) -> Result<bool, StorageError> {
    let on_it = sqlx::query("SELECT user_id FROM care_team WHERE room_id = $1 AND user_id = $2")
        .bind(room.as_str())
        .bind(specialist.as_str())
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
    if !on_it {
        super::care_team::insert(tx, room, specialist, Role::Specialist, added_by).await?;
    }
    Ok(!on_it)
}

async fn set_room_slot(
    tx: &mut Transaction<'static, Any>,
    room: &RoomId,
    slot: Slot,
) -> Result<(), StorageError> {
    sqlx::query("UPDATE rooms SET slot_start = $1, slot_minutes = $2 WHERE id = $3")
        .bind(slot.start())
        .bind(i64::from(slot.minutes()))
        .bind(room.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Db {
    /// Stores a new request (its state `requested`, version 1), the times proposed with it
    /// and its first event, in one transaction.
    /// The webhook event `outbox` is queued in the same transaction, and so is the patient's
    /// consent the request was sent with (`consent`: a `Change::ReferralConsentGiven`), and
    /// the audit entries it owes (`audit`, JSON); answers those as queued.
    pub async fn insert_referral(
        &self,
        row: &ReferralRow,
        proposed: &[Slot],
        event: &NewReferralEvent<'_>,
        outbox: Option<&OutboxEvent>,
        consent: Option<&super::Change>,
        audit: Vec<String>,
    ) -> Result<Vec<super::PendingAudit>, StorageError> {
        let mut tx = self.begin_write().await?;
        hold_requester_caps(&mut tx, row).await?;
        sqlx::query(
            "INSERT INTO referrals (id, requester_id, requester_institution, target_department, \
             target_specialist, receiver_id, patient_ref, reason, question, urgency, \
             urgency_rank, state, state_by, slot_start, slot_minutes, state_reason, is_open, \
             room_id, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
             $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
        )
        .bind(row.id.as_str())
        .bind(row.requester_id.as_str())
        .bind(row.requester_institution.as_str())
        .bind(row.target.department().as_str())
        .bind(row.target.specialist().map(UserId::as_str))
        .bind(row.receiver_id.as_ref().map(UserId::as_str))
        .bind(&row.patient_ref)
        .bind(&row.reason)
        .bind(&row.question)
        .bind(row.urgency.as_str())
        .bind(i64::from(row.urgency.sort_rank()))
        .bind(row.state.as_str())
        .bind(row.state.by().map(Side::as_str))
        .bind(row.state.slot().map(Slot::start))
        .bind(row.state.slot().map(|s| i64::from(s.minutes())))
        .bind(row.state.reason())
        .bind(i64::from(row.state.is_open()))
        .bind(row.room_id.as_ref().map(RoomId::as_str))
        .bind(row.version)
        .bind(row.created_at)
        .bind(row.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(super::map_unique)?;
        for (position, slot) in proposed.iter().enumerate() {
            sqlx::query(
                "INSERT INTO referral_slots (referral_id, position, start_at, minutes) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(row.id.as_str())
            .bind(position as i64)
            .bind(slot.start())
            .bind(i64::from(slot.minutes()))
            .execute(&mut *tx)
            .await?;
        }
        insert_event(
            &mut tx,
            &row.id,
            row.version,
            "",
            row.state.as_str(),
            event,
            row.created_at,
        )
        .await?;
        if let Some(e) = outbox {
            super::webhooks::enqueue(&mut tx, e, crate::domain::clock::now_unix_ms()).await?;
        }
        if let Some(consent) = consent {
            consent.apply(&mut *tx).await?;
        }
        let owed = super::audit_pending::queue(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(owed)
    }

    pub async fn referral(&self, id: &ReferralId) -> Result<Option<ReferralRow>, StorageError> {
        let row = sqlx::query(&format!("{SELECT} WHERE r.id = $1"))
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The request whose consultation `room` is, if one is.
    pub async fn referral_for_room(
        &self,
        room: &RoomId,
    ) -> Result<Option<ReferralRow>, StorageError> {
        let row = sqlx::query(&format!("{SELECT} WHERE r.room_id = $1"))
            .bind(room.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The live consultations a department was asked for: requests to it (the department or
    /// one of its specialists) whose room is open and booked in `[from, to)` (Unix seconds;
    /// one never booked counts from when it was made), at most `limit`, in order of agreed
    /// time. The window keeps consultations nobody ended (a patient who never came) from
    /// crowding out the day's.
    pub async fn department_consultations(
        &self,
        department: &DepartmentId,
        (from, to): (i64, i64),
        limit: i64,
    ) -> Result<Vec<ReferralRow>, StorageError> {
        let rows = sqlx::query(&format!(
            "{SELECT} WHERE r.target_department = $1 AND r.room_id IS NOT NULL \
             AND m.ended_at IS NULL AND COALESCE(m.slot_start, m.created_at) >= $2 \
             AND COALESCE(m.slot_start, m.created_at) < $3 ORDER BY m.slot_start, r.id LIMIT $4"
        ))
        .bind(department.as_str())
        .bind(from)
        .bind(to)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// The times proposed with the request, in the requester's order.
    pub async fn referral_slots(&self, id: &ReferralId) -> Result<Vec<Slot>, StorageError> {
        let rows = sqlx::query(
            "SELECT start_at, minutes FROM referral_slots WHERE referral_id = $1 \
             ORDER BY position",
        )
        .bind(id.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                slot_of(Some(r.try_get("start_at")?), Some(r.try_get("minutes")?))?
                    .ok_or(StorageError::Corrupt("referral slot"))
            })
            .collect()
    }

    /// Every step of the request, oldest first.
    pub async fn referral_events(
        &self,
        id: &ReferralId,
    ) -> Result<Vec<ReferralEvent>, StorageError> {
        let rows = sqlx::query(
            "SELECT referral_id, version, action, from_state, to_state, actor_id, side, detail, \
             at FROM referral_events WHERE referral_id = $1 ORDER BY version",
        )
        .bind(id.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// A list of requests: open ones first, then by urgency (emergency, urgent, routine), then
    /// the longest waiting; at most `limit`.
    pub async fn referrals_in(
        &self,
        which: ReferralBox<'_>,
        limit: i64,
    ) -> Result<Vec<ReferralRow>, StorageError> {
        let (filter, id) = match which {
            ReferralBox::Inbox(user) => (
                "r.target_specialist = $1 OR r.receiver_id = $1",
                user.as_str(),
            ),
            // The department's own, and those named to one of its specialists who is not
            // taking requests now and that nobody answered yet (`Referrals::covers`).
            ReferralBox::Department(department) => (
                "r.target_department = $1 AND r.receiver_id IS NULL \
                 AND (r.target_specialist IS NULL OR (r.state = 'requested' AND EXISTS \
                 (SELECT 1 FROM users u WHERE u.id = r.target_specialist \
                  AND (u.accepts_referrals = 0 OR u.disabled_at IS NOT NULL))))",
                department.as_str(),
            ),
            ReferralBox::Outbox(user) => ("r.requester_id = $1", user.as_str()),
        };
        let rows = sqlx::query(&format!("{SELECT} WHERE {filter} {ORDER} LIMIT $2"))
            .bind(id)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Takes a step on `before` (as read): the new state, target and receiver, the event and
    /// what it does to the room, in one transaction that applies only if the request is still
    /// at `before.version`; otherwise nothing changes and the answer is `Conflict` (someone
    /// else's step came first). Answers the request as it is after the step.
    pub async fn step_referral(
        &self,
        before: &ReferralRow,
        step: &ReferralStep<'_>,
        audit: &(dyn Fn(&SteppedRow) -> Vec<String> + Sync),
    ) -> Result<SteppedRow, StorageError> {
        let mut tx = self.begin_write().await?;
        let state = step.state;
        let done = sqlx::query(
            "UPDATE referrals SET state = $1, state_by = $2, slot_start = $3, \
             slot_minutes = $4, state_reason = $5, is_open = $6, target_department = $7, \
             target_specialist = $8, receiver_id = $9, updated_at = $10, version = version + 1 \
             WHERE id = $11 AND version = $12",
        )
        .bind(state.as_str())
        .bind(state.by().map(Side::as_str))
        .bind(state.slot().map(Slot::start))
        .bind(state.slot().map(|s| i64::from(s.minutes())))
        .bind(state.reason())
        .bind(i64::from(state.is_open()))
        .bind(step.target.department().as_str())
        .bind(step.target.specialist().map(UserId::as_str))
        .bind(step.receiver.map(UserId::as_str))
        .bind(step.at)
        .bind(before.id.as_str())
        .bind(before.version)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            // Dropping the transaction rolls it back.
            return Err(StorageError::Conflict);
        }
        let mut seated = None;
        let mut documents_copied = Vec::new();
        match &step.room {
            RoomStep::None => {}
            RoomStep::Open {
                room: id,
                title,
                specialist,
                slot,
            } => {
                let room = RoomRecord {
                    id: (*id).clone(),
                    title: (*title).to_owned(),
                    patient_ref: Some(before.patient_ref.clone()),
                    created_by: before.requester_id.clone(),
                    institution_id: before.requester_institution.clone(),
                    created_at: step.at,
                    ended_at: None,
                    status: RoomStatus::Open,
                    // A referred patient waits until the clinicians admit them.
                    waiting_room: true,
                    slot: Some((slot.start(), i64::from(slot.minutes()))),
                };
                super::rooms::insert(&mut tx, &room).await?;
                set_room_slot(&mut tx, &room.id, *slot).await?;
                if let Some(specialist) = specialist
                    && seat_specialist(&mut tx, &room.id, specialist, step.event.actor).await?
                {
                    seated = Some((*specialist).clone());
                }
                sqlx::query("UPDATE referrals SET room_id = $1 WHERE id = $2")
                    .bind(room.id.as_str())
                    .bind(before.id.as_str())
                    .execute(&mut *tx)
                    .await?;
                // The request's documents come with it, for the care team.
                documents_copied = super::referral_documents::copy_into_room(
                    &mut tx,
                    &before.id,
                    &room.id,
                    &before.requester_id,
                )
                .await?;
            }
            RoomStep::Reslot {
                room,
                specialist,
                slot,
            } => {
                // The patients' invitations made for the old time move with it.
                super::rooms::move_slot(&mut tx, room, *slot).await?;
                if let Some(specialist) = specialist
                    && seat_specialist(&mut tx, room, specialist, step.event.actor).await?
                {
                    seated = Some((*specialist).clone());
                }
            }
        }
        insert_event(
            &mut tx,
            &before.id,
            before.version + 1,
            before.state.as_str(),
            state.as_str(),
            &step.event,
            step.at,
        )
        .await?;
        if let Some(e) = step.outbox {
            super::webhooks::enqueue(&mut tx, e, crate::domain::clock::now_unix_ms()).await?;
        }
        // The row as the step left it, read in its transaction: what its audit entries say.
        let row = sqlx::query(&format!("{SELECT} WHERE r.id = $1"))
            .bind(before.id.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(from_row)
            .transpose()?
            .ok_or(StorageError::NotFound)?;
        let mut stepped = SteppedRow {
            row,
            seated,
            documents_copied,
            owed: Vec::new(),
        };
        stepped.owed = super::audit_pending::queue(&mut tx, audit(&stepped)).await?;
        tx.commit().await?;
        Ok(stepped)
    }
}

/// Requests one clinician may have open at once.
pub const MAX_OPEN_REFERRALS_PER_REQUESTER: i64 = 500;
/// Requests one clinician may send in a day (24 hours), open or not: a loop that creates and
/// cancels cannot grow the table without bound either.
pub const MAX_REFERRALS_PER_REQUESTER_PER_DAY: i64 = 300;

/// Holds the requester's account row for the rest of the transaction, then checks their caps:
/// two requests of one clinician at once take turns, so neither can pass the last place
/// unseen (on PostgreSQL the row lock orders them; SQLite's writes are serialised already).
async fn hold_requester_caps(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    row: &ReferralRow,
) -> Result<(), StorageError> {
    let held = sqlx::query("UPDATE users SET id = id WHERE id = $1")
        .bind(row.requester_id.as_str())
        .execute(&mut **tx)
        .await?;
    if held.rows_affected() == 0 {
        return Err(StorageError::NotFound);
    }
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM referrals WHERE requester_id = $1 AND is_open = 1",
    )
    .bind(row.requester_id.as_str())
    .fetch_one(&mut **tx)
    .await?;
    if open >= MAX_OPEN_REFERRALS_PER_REQUESTER {
        return Err(StorageError::Limit {
            limit: "open_referrals",
            max: MAX_OPEN_REFERRALS_PER_REQUESTER,
        });
    }
    let today: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM referrals WHERE requester_id = $1 AND created_at > $2",
    )
    .bind(row.requester_id.as_str())
    .bind(row.created_at - 86_400)
    .fetch_one(&mut **tx)
    .await?;
    if today >= MAX_REFERRALS_PER_REQUESTER_PER_DAY {
        return Err(StorageError::Limit {
            limit: "referrals_per_day",
            max: MAX_REFERRALS_PER_REQUESTER_PER_DAY,
        });
    }
    Ok(())
}
