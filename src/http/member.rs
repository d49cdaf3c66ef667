//! Participants' HTTP calls into their own room (documents, records): authenticated by the
//! access token from `joined`, and honoured only while the room says they are still in it.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use crate::audit::{Action, Actor, AuditEvent};
use crate::auth::{AuthError, TokenKind};
use crate::domain::ids::{ParticipantId, RoomId};
use crate::domain::member::Member;

/// The bearer token of a request, if any.
pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// A participant of the room named in the path (`/rooms/{id}/...`), present right now.
pub struct RoomMember {
    pub room: RoomId,
    pub member: Member,
}

impl RoomMember {
    /// An audit event with this participant as the actor, in their room.
    pub fn event(&self, action: Action) -> AuditEvent {
        AuditEvent::new(
            Actor::Participant(self.member.participant.clone(), self.member.role),
            action,
        )
        .room(&self.room)
    }
}

impl FromRequestParts<AppState> for RoomMember {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(ApiError::Unauthenticated)?.to_owned();
        let claims = match state.key.verify(&token, TokenKind::Access) {
            Ok(c) => c,
            Err(e) => {
                // Expired access tokens are ordinary (a participant long gone); forged ones
                // and other kinds of token are not.
                if e != AuthError::Expired {
                    let client = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
                        .await
                        .map(|ConnectInfo(a)| state.key.pseudonym(a.ip().to_string().as_bytes()))
                        .unwrap_or_default();
                    let event = AuditEvent::new(Actor::Unknown, Action::AccessDenied)
                        .detail(serde_json::json!({"client": client, "token": "access"}));
                    state
                        .audit
                        .refused(&client, "invalid_access_token", event)
                        .await;
                }
                return Err(ApiError::Unauthenticated);
            }
        };
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        let room = params
            .iter()
            .find(|(k, _)| *k == "id")
            .and_then(|(_, v)| RoomId::parse(v))
            .ok_or(ApiError::NotFound)?;
        if claims.room.as_ref() != Some(&room) {
            let event = AuditEvent::new(Actor::Unknown, Action::AccessDenied)
                .room(&room)
                .detail(serde_json::json!({"participant": claims.sub}));
            state
                .audit
                .refused(&claims.sub, "access_token_other_room", event)
                .await;
            return Err(ApiError::Denied(
                "this access token belongs to another consultation".into(),
            ));
        }
        let participant = ParticipantId::parse(&claims.sub).ok_or(ApiError::Unauthenticated)?;
        let member = state
            .rooms
            .member(&room, &participant)
            .await
            .ok_or_else(|| ApiError::Denied("you are no longer in this consultation".into()))?;
        Ok(RoomMember { room, member })
    }
}
