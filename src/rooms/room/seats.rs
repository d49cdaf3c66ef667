//! A care-team seat lasts as long as the sign-in it was taken under. A clinician enters a
//! consultation with a short-lived seat token that names their session (`http::care_team`);
//! signaling lets them in only while that session is open. When it ends before its time (they
//! signed out, an administrator ended the account's sessions, the password changed), the room
//! removes them at once: otherwise someone holding a stolen laptop's room tab would stay in
//! the consultation, with its access and resume tokens, for as long as they liked. Which
//! sessions ended is found by `rooms::seat_sessions`, which tells every live room.

use std::collections::HashSet;

use super::Room;
use crate::domain::ids::{ParticipantId, SessionId};
use crate::rooms::{Farewell, LeaveReason, Problem};

impl Room {
    /// Removes whoever entered under one of `sessions` (the others see `participant_left` with
    /// `session_ended`; their access and resume tokens stop with their place). Ending a session
    /// twice is harmless: the second time finds nobody.
    pub(super) async fn sessions_ended(&mut self, sessions: &HashSet<SessionId>) {
        let ended: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|p| p.session.as_ref().is_some_and(|s| sessions.contains(s)))
            .map(|p| p.id.clone())
            .collect();
        let told = (
            Problem::SessionEnded,
            "your sign-in ended; sign in again to return to the consultation",
        );
        self.turn_out(
            &ended,
            told,
            Farewell::SessionEnded,
            LeaveReason::SessionEnded,
        )
        .await;
        if !ended.is_empty() {
            tracing::info!(room = %self.record.id, removed = ended.len(), "care-team seats ended with their sign-in");
        }
    }
}
