//! A consultation's care team over HTTP: who is on it (anyone who sees the room), adding and
//! removing clinicians (whoever manages the room), and a clinician's entry into the live room
//! as their own account: `enter` answers a short-lived token for their seat, which the
//! signaling `join` takes like an invite token, but the name, title and institution shown come
//! from the account and the seat is honoured only while the session that took it is open.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::api::{ApiJson, Clinician, managed_room, room_for};
use super::error::ApiError;
use super::organisation::Names;
use crate::audit::{Action, AuditEvent, Outcome};
use crate::auth::{Claims, TokenKind};
use crate::domain::clock::now_unix;
use crate::domain::ids::{RoomId, UserId};
use crate::domain::role::Role;
use crate::storage::{CareTeamMember, RoomStatus, StorageError, User};

/// How long a seat's entry token lasts: long enough to open the room page (or for a load test
/// to set up its rooms before joining), short enough that a copied one is worth little; it is
/// also honoured only while the session that took it is open.
pub const SEAT_TOKEN_SECONDS: i64 = 300;

pub async fn list(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (room, _) = room_for(&state, &who, &id).await?;
    let team = with_accounts(&state, &room.id).await?;
    let names = Names::of(&state, team.iter().map(|(_, u)| u)).await?;
    let mut members = Vec::with_capacity(team.len());
    for (m, user) in &team {
        let mut account = json!(names.account(user));
        if let Some(o) = account.as_object_mut() {
            o.remove("username");
        }
        members.push(json!({
            "account": account,
            "role": m.role,
            "added_at": m.added_at,
            "added_by": m.added_by,
        }));
    }
    Ok(Json(json!({"care_team": members})))
}

/// A consultation's care team, each member with their account (one whose account is gone is
/// left out).
pub async fn with_accounts(
    state: &AppState,
    room: &RoomId,
) -> Result<Vec<(CareTeamMember, User)>, ApiError> {
    let team = state.db.care_team(room).await?;
    let mut members = Vec::with_capacity(team.len());
    for m in team {
        if let Some(user) = state.db.user(&m.user_id).await? {
            members.push((m, user));
        }
    }
    Ok(members)
}

#[derive(Deserialize)]
pub struct AddBody {
    user_id: UserId,
    /// doctor or specialist; by default the account's own (a specialist joins as one).
    #[serde(default)]
    role: Option<Role>,
}

pub async fn add(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AddBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let room = managed_room(&state, &who, &id, "care_team.add").await?;
    if room.status == RoomStatus::Ended {
        return Err(ApiError::RoomEnded);
    }
    let account = state
        .db
        .user(&body.user_id)
        .await?
        .ok_or_else(|| ApiError::Invalid("no such account".into()))?;
    if !account.role.is_clinician() {
        return Err(ApiError::Invalid(
            "only doctors and specialists join a care team".into(),
        ));
    }
    if account.disabled_at.is_some() {
        return Err(ApiError::AccountDisabled);
    }
    let role = body.role.unwrap_or_else(|| account.role.room_role());
    if !role.is_clinician() {
        return Err(ApiError::Invalid(
            "a care team role is doctor or specialist".into(),
        ));
    }
    let member = match state
        .db
        .add_to_care_team(&room.id, &account.id, role, &who.0.id)
        .await
    {
        Err(StorageError::Conflict) => {
            return Err(ApiError::Conflict(
                "this clinician is on the care team already".into(),
            ));
        }
        other => other?,
    };
    state
        .audit
        .record(
            AuditEvent::new(who.actor(), Action::CareTeamAdded)
                .room(&room.id)
                .object("user", &account.id)
                .detail(json!({"role": role, "institution": account.institution_id})),
        )
        .await?;
    tracing::info!(room = %room.id, user = %account.id, "added to the care team");
    Ok((
        StatusCode::CREATED,
        Json(json!({"user_id": member.user_id, "role": member.role, "added_at": member.added_at})),
    ))
}

pub async fn remove(
    State(state): State<AppState>,
    who: Clinician,
    Path((id, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let room = managed_room(&state, &who, &id, "care_team.remove").await?;
    let user = UserId::parse(&user).ok_or(ApiError::NotFound)?;
    let team = state.db.care_team(&room.id).await?;
    let leaving = team
        .iter()
        .find(|m| m.user_id == user)
        .ok_or(ApiError::NotFound)?;
    // A consultation always keeps a clinician who can run it.
    if leaving.role.may_invite()
        && !team
            .iter()
            .any(|m| m.user_id != user && m.role.may_invite())
    {
        return Err(ApiError::Conflict(
            "the consultation's last doctor cannot be removed; add another doctor first".into(),
        ));
    }
    // Checked again where it is decided, under the room's lock: another removal may have
    // taken the other doctor since the team was read.
    let seat = match state.db.remove_from_care_team(&room.id, &user).await {
        Err(StorageError::Conflict) => {
            return Err(ApiError::Conflict(
                "the consultation's last doctor cannot be removed; add another doctor first".into(),
            ));
        }
        other => other?,
    };
    let removed = state.rooms.invite_revoked(&room.id, &seat).await;
    state
        .audit
        .record(
            AuditEvent::new(who.actor(), Action::CareTeamRemoved)
                .room(&room.id)
                .object("user", &user)
                .detail(json!({"participants_removed": removed})),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A clinician on the care team enters the live room as their account.
pub async fn enter(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (room, relation) = room_for(&state, &who, &id).await?;
    let Some(member) = relation
        .care_team
        .and(state.db.care_team_member(&room.id, &who.0.id).await?)
    else {
        let event = AuditEvent::new(who.actor(), Action::AccessDenied)
            .outcome(Outcome::Denied)
            .room(&room.id)
            .detail(json!({"attempted": "care_team.enter"}));
        state
            .audit
            .refused(who.0.id.as_str(), "not_on_care_team", event)
            .await;
        return Err(ApiError::Denied(
            "you are not on this consultation's care team; ask its doctor to add you".into(),
        ));
    };
    if room.status == RoomStatus::Ended {
        return Err(ApiError::RoomEnded);
    }
    Ok(Json(seat_token(&state, &who, &room.id, &member).await))
}

/// A short-lived token for `member`'s seat, taken by `who` under their session (audited as an
/// entry): what the signaling `join` takes to enter as the account.
pub async fn seat_token(
    state: &AppState,
    who: &Clinician,
    room: &RoomId,
    member: &CareTeamMember,
) -> Value {
    let expires_at = now_unix() + SEAT_TOKEN_SECONDS;
    let token = state.key.sign(&Claims {
        kind: TokenKind::Invite,
        sub: member.seat.to_string(),
        room: Some(room.clone()),
        role: Some(member.role),
        sid: Some(who.1.id.clone()),
        exp: expires_at,
        nonce: rand::random(),
    });
    state
        .audit
        .record_or_log(
            AuditEvent::new(who.actor(), Action::SeatEntered)
                .room(room)
                .object("invite", &member.seat),
        )
        .await;
    json!({
        "token": token,
        "role": member.role,
        "expires_at": expires_at,
    })
}
