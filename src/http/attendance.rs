//! Who has come to a consultation (`GET /api/v1/rooms/{id}/attendance`): for each clinician of
//! its care team, whether and when they first arrived and whether they are in the room now; for
//! the patient's side, when the first patient arrived, how many are in, how many wait. The
//! console's day view tells from it who is late once the agreed time has passed.
//!
//! It reads what the room has written (participants' joins and leaves, through the batched
//! writer) and the waiting room's snapshot, so it may trail the room by a moment. It names the
//! care team's clinicians; who waits (the names they gave at the door, how long each has
//! waited) only to the care team, who see them in the room's queue anyway: a colleague who may
//! see the consultation gets the counts.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::AppState;
use super::api::{Clinician, room_for};
use super::care_team::with_accounts;
use super::error::ApiError;
use super::organisation::Names;
use crate::domain::role::Role;
use crate::storage::{ParticipantRecord, RoomStatus};

pub async fn attendance(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (room, relation) = room_for(&state, &who, &id).await?;
    let team = with_accounts(&state, &room.id).await?;
    let joined = state.db.participants_of(&room.id).await?;
    // An ended consultation has nobody in it, whatever a crash left unwritten.
    let live = room.status == RoomStatus::Open;
    let in_now = |p: &ParticipantRecord| live && p.left_at.is_none();
    let names = Names::of(&state, team.iter().map(|(_, u)| u)).await?;
    let mut clinicians = Vec::with_capacity(team.len());
    for (m, user) in &team {
        let seat: Vec<&ParticipantRecord> =
            joined.iter().filter(|p| p.invite_id == m.seat).collect();
        let account = names.account(user);
        clinicians.push(json!({
            "user_id": user.id,
            "display_name": account.display_name,
            "title": account.title,
            "institution": account.institution,
            "role": m.role,
            "arrived_at": seat.iter().map(|p| p.joined_at).min(),
            "present": seat.iter().any(|p| in_now(p)),
        }));
    }
    let patients: Vec<&ParticipantRecord> =
        joined.iter().filter(|p| p.role == Role::Patient).collect();
    let waiting = live
        .then(|| state.notifications.waiting_in(&room.id))
        .flatten();
    let waiting_people: Vec<Value> = if live && relation.care_team.is_some() {
        state
            .notifications
            .waiting_people(&room.id)
            .into_iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "role": p.role,
                    "since": p.since,
                    "sent_back": p.sent_back,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Json(json!({
        "room_id": room.id,
        "slot_start": room.slot.map(|(start, _)| start),
        "slot_minutes": room.slot.map(|(_, minutes)| minutes),
        "ended": !live,
        "clinicians": clinicians,
        "patients": {
            "arrived_at": patients.iter().map(|p| p.joined_at).min(),
            // Those waiting have joined too (a row each) but are not in the room.
            "present": patients
                .iter()
                .filter(|p| in_now(p))
                .count()
                .saturating_sub(waiting.map_or(0, |w| w.patients)),
            "waiting": waiting.map_or(0, |w| w.count),
            "waiting_since": waiting.map(|w| w.since),
        },
        // In queue order; empty for those not on the care team.
        "waiting_people": waiting_people,
    })))
}
