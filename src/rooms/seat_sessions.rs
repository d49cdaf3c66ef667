//! Which clinicians' sign-ins ended lately, told to every live room so that the care-team
//! seats taken under them end too (`rooms/room/seats.rs`).
//!
//! A session can end in this process (sign-out, a password change, an administrator over the
//! API: those wake the search at once) or in another (`huizhen user revoke-sessions` and
//! `huizhen user passwd` write the database while the server runs): so the search reads the
//! database, every [`SEARCH_EVERY`], for sessions revoked in the last [`LOOK_BACK`]. The
//! overlap is deliberate: a seat join that checked its session just before the session ended
//! can reach its room after the first search told it; a later search, which tells the rooms
//! the same sessions again, removes it then. Telling a room twice is harmless.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::{RoomCommand, RoomManager};
use crate::domain::clock::now_unix;
use crate::domain::ids::SessionId;

/// How often the database is searched when nothing wakes the search.
pub const SEARCH_EVERY: Duration = Duration::from_secs(5);
/// How far back each search looks (seconds): well past a join's way from signaling's check of
/// its session to its room.
pub const LOOK_BACK: i64 = 60;

/// Searches until the task is aborted (at shutdown).
pub async fn run(rooms: RoomManager) {
    let wake = rooms.seat_search.clone();
    let mut every = tokio::time::interval(SEARCH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = wake.notified() => {}
        }
        // The revocation's time is written in whole seconds, so one more second back.
        let since = now_unix() - LOOK_BACK - 1;
        match rooms.db.sessions_revoked_since(since).await {
            Ok(ended) if ended.is_empty() => {}
            Ok(ended) => rooms.end_seats(Arc::new(ended.into_iter().collect())).await,
            Err(e) => tracing::warn!(error = %e, "could not read which sessions ended"),
        }
    }
}

impl RoomManager {
    /// Some sign-in ended in this process (committed already): the search runs now instead of
    /// at its next turn.
    pub fn sessions_ended(&self) {
        self.seat_search.notify_one();
    }

    /// Tells every live room that `sessions` ended.
    async fn end_seats(&self, sessions: Arc<HashSet<SessionId>>) {
        let handles: Vec<_> = {
            let live = self.live.lock().expect("room map poisoned");
            live.values().filter(|h| !h.is_closed()).cloned().collect()
        };
        for h in handles {
            let _ = h
                .send(RoomCommand::SessionsEnded {
                    sessions: sessions.clone(),
                })
                .await;
        }
    }
}
