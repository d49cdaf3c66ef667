//! The clinic's message to everyone waiting in a consultation ("the doctor is running 10
//! minutes late"), from the console (`PUT /api/v1/rooms/{id}/waiting-message`): for a doctor or
//! specialist of its care team who is not in the room yet (in the room, `waiting_message` over
//! signaling does the same). The room's task sets it and tells those waiting; a consultation
//! that is not live has nobody waiting, and is answered 409 `nobody_waiting`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::AppState;
use super::api::{ApiJson, Clinician, room_for};
use super::error::ApiError;

#[derive(Deserialize)]
pub struct MessageBody {
    text: String,
}

pub async fn set(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MessageBody>,
) -> Result<StatusCode, ApiError> {
    let (room, relation) = room_for(&state, &who, &id).await?;
    if !relation.care_team.is_some_and(|role| role.may_admit()) {
        return Err(who
            .refuse_in_room(&state, &room.id, "not_care_team", "waiting.message")
            .await);
    }
    match state
        .rooms
        .message_waiting(&room.id, who.actor(), body.text)
        .await
    {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(ApiError::NobodyWaiting),
        Err(why) => Err(ApiError::Invalid(why)),
    }
}
