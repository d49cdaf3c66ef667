//! A department's queue (`/api/v1/departments/{id}/queue`): the live consultations its
//! clinicians were asked for (requests to the department or to one of its specialists), with
//! who waits in each, so that any doctor or specialist of the department may take the next
//! patient. `POST …/queue/next` admits the patient who has waited longest, puts the caller on
//! that consultation's care team if they are not on it (audited, as any addition is), and
//! answers their seat's entry token to follow the patient in.
//!
//! The waiting counts it reads are a snapshot, and acting on a snapshot is a race: twenty
//! clinicians tapping "next" at once would all be sent to the same consultation (and the
//! patients of the others left waiting). So the queue only orders the consultations; the
//! admission itself is the room's step (`rooms::RoomManager::admit_next`, taken on the room's
//! task, its waiting room's only owner): each call asks the consultations in turn, the longest
//! waiting first, until one lets someone in. Of concurrent calls each admits a different
//! person, and the calls left over, when nobody waits any more, are answered 409
//! `nobody_waiting`.
//!
//! The queue shows what the department's inbox already shows of a request (its title and
//! agreed time) and how many wait: no patient's name, and nothing of the consultation itself
//! until the clinician is on its care team.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::AppState;
use super::api::Clinician;
use super::care_team::seat_token;
use super::error::ApiError;
use crate::audit::{Action, AuditEvent, Outcome};
use crate::domain::clock::now_unix;
use crate::domain::ids::{DepartmentId, RoomId};
use crate::domain::role::Role;
use crate::notifications::WaitingNow;
use crate::rooms::Problem;
use crate::storage::{ReferralRow, StorageError};

/// Most consultations one queue lists (a department's live consultations of a day).
const MAX_QUEUE: i64 = 200;
/// The queue's window around now, in seconds: consultations booked (or, never booked, made)
/// from two days before to one day after. Wider than anyone can wait: an invitation admits at
/// most `MAX_INVITE_MARGIN_MINUTES` around a slot of at most four hours.
const QUEUE_BACK_S: i64 = 2 * 86_400;
const QUEUE_AHEAD_S: i64 = 86_400;

/// One live consultation of the queue.
struct Entry {
    room: RoomId,
    title: String,
    slot: Option<(i64, i64)>,
    waiting: Option<WaitingNow>,
    on_care_team: bool,
}

pub async fn list(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let department = own_department(&state, &who, &id, "department_queue.list").await?;
    let entries = entries(&state, &who, &department).await?;
    let rooms: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "room_id": e.room,
                "title": e.title,
                "slot_start": e.slot.map(|(start, _)| start),
                "slot_minutes": e.slot.map(|(_, minutes)| minutes),
                "waiting": e.waiting.map_or(0, |w| w.count),
                "waiting_since": e.waiting.map(|w| w.since),
                "on_care_team": e.on_care_team,
            })
        })
        .collect();
    Ok(Json(json!({"department_id": department, "rooms": rooms})))
}

/// Admits the patient who has waited longest in the department's consultations; the caller
/// joins that consultation's care team (if not on it) and gets their seat's entry token.
pub async fn next(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let department = own_department(&state, &who, &id, "department_queue.next").await?;
    let entries = entries(&state, &who, &department).await?;
    let mut admitted = None;
    for entry in entries.into_iter().filter(|e| e.waiting.is_some()) {
        match state.rooms.admit_next(&entry.room, who.actor()).await {
            Ok(participant) => {
                admitted = Some((entry.room, participant));
                break;
            }
            // Taken by someone else since the snapshot, or gone; or the one first in line is
            // an observer the patient has not agreed to (the care team in the room sees why):
            // the next consultation.
            Err(Problem::NotWaiting | Problem::ConsentRequired) => continue,
            Err(problem) => {
                return Err(ApiError::Internal(format!(
                    "the consultation could not admit its patient ({problem:?})"
                )));
            }
        }
    }
    let Some((room, participant)) = admitted else {
        return Err(ApiError::NobodyWaiting);
    };
    let member = match state.db.care_team_member(&room, &who.0.id).await? {
        Some(member) => member,
        None => {
            // The receiving side's seat, as accepting the request gives it: a doctor of the
            // department who takes a patient from the queue helps with another institution's
            // consultation, and must not become one of its managing doctors (end it, invite,
            // remove the referring doctor).
            let role = Role::Specialist;
            match state
                .db
                .add_to_care_team(&room, &who.0.id, role, &who.0.id)
                .await
            {
                Ok(member) => {
                    state
                        .audit
                        .record(
                            AuditEvent::new(who.actor(), Action::CareTeamAdded)
                                .room(&room)
                                .object("user", &who.0.id)
                                .detail(json!({
                                    "role": role,
                                    "institution": who.0.institution_id,
                                    "via": "department_queue",
                                    "department": department,
                                })),
                        )
                        .await?;
                    member
                }
                // Two taps at once: the other one put them on it.
                Err(StorageError::Conflict) => state
                    .db
                    .care_team_member(&room, &who.0.id)
                    .await?
                    .ok_or(ApiError::NotFound)?,
                Err(e) => return Err(e.into()),
            }
        }
    };
    let mut answer = seat_token(&state, &who, &room, &member).await;
    answer["room_id"] = json!(room);
    answer["participant_id"] = json!(participant);
    tracing::info!(room = %room, user = %who.0.id, "patient admitted from the department queue");
    Ok(Json(answer))
}

/// The department named, when it is the caller's own; anyone else is refused (and audited).
async fn own_department(
    state: &AppState,
    who: &Clinician,
    id: &str,
    attempted: &'static str,
) -> Result<DepartmentId, ApiError> {
    let department = DepartmentId::parse(id).ok_or(ApiError::NotFound)?;
    if who.0.role.is_clinician() && who.0.department_id.as_ref() == Some(&department) {
        return Ok(department);
    }
    let event = AuditEvent::new(who.actor(), Action::AccessDenied)
        .outcome(Outcome::Denied)
        .object("department", &department)
        .detail(json!({"attempted": attempted}));
    state
        .audit
        .refused(who.0.id.as_str(), "not_in_department", event)
        .await;
    Err(ApiError::Denied(
        "only the department's own doctors and specialists take patients from its queue".into(),
    ))
}

/// The department's live consultations: those where someone waits first, the longest
/// waiting first, then the rest by agreed time.
async fn entries(
    state: &AppState,
    who: &Clinician,
    department: &DepartmentId,
) -> Result<Vec<Entry>, ApiError> {
    let now = now_unix();
    let rows: Vec<ReferralRow> = state
        .db
        .department_consultations(
            department,
            (now - QUEUE_BACK_S, now + QUEUE_AHEAD_S),
            MAX_QUEUE,
        )
        .await?;
    let mut entries = Vec::with_capacity(rows.len());
    for r in rows {
        let Some(room) = r.room_id else { continue };
        let Some(record) = state.db.room(&room).await? else {
            continue;
        };
        entries.push(Entry {
            waiting: state.notifications.waiting_in(&room),
            on_care_team: state.db.care_team_member(&room, &who.0.id).await?.is_some(),
            title: record.title,
            slot: record.slot,
            room,
        });
    }
    entries.sort_by_key(|e| (e.waiting.map_or(i64::MAX, |w| w.since), e.slot.map(|s| s.0)));
    Ok(entries)
}
