//! Screen sharing in a room: who may share (the permission table), one share at a time, and
//! telling everyone who shares. The media core adds and stops the share's m-lines; the room
//! only decides and announces.

use super::Room;
use crate::audit::{Action, AuditEvent};
use crate::domain::ids::ParticipantId;
use crate::rooms::ice_restart::MediaLink;
use crate::rooms::{Notice, Problem};
use crate::sfu::SfuCommand;

/// Screen shares one connection may start: each leaves a stopped m-line in the sharer's and
/// every subscriber's session description, so an endless start/stop loop would grow every
/// offer in the room. Far above what a consultation uses; joining again starts afresh.
pub(super) const MAX_SCREEN_SHARES_PER_CONNECTION: u32 = 50;

impl Room {
    /// A participant asks to start (`active`) or stop sharing their screen. At most one share
    /// runs in a room at a time (`Room::screen`): the room's task is the single owner of that
    /// slot, so two clinicians asking at once cannot both get it.
    pub(super) async fn screen_share(
        &mut self,
        participant: ParticipantId,
        conn: u64,
        active: bool,
    ) {
        let Some(p) = self.find(&participant).filter(|p| p.is_conn(conn)) else {
            return;
        };
        if !active {
            if self.screen.as_ref() == Some(&participant) {
                self.end_screen_share(&participant, "stopped").await;
            }
            return;
        }
        if !p.role.may_share_screen() {
            p.send(Notice::refused(
                Problem::Forbidden,
                "your role may not share a screen",
            ));
            self.refused(p, "screen_share_forbidden").await;
            return;
        }
        match &self.screen {
            // Asked twice (a retry): already theirs.
            Some(sharer) if sharer == &participant => return,
            Some(_) => {
                p.send(Notice::refused(
                    Problem::ScreenShareBusy,
                    "someone else is sharing their screen; one share at a time",
                ));
                return;
            }
            None => {}
        }
        if p.media == MediaLink::Connecting {
            p.send(Notice::refused(
                Problem::MediaNotReady,
                "your media connection is not up yet; share once it is",
            ));
            return;
        }
        if p.screens_shared >= MAX_SCREEN_SHARES_PER_CONNECTION {
            p.send(Notice::refused(
                Problem::Invalid,
                format!(
                    "at most {MAX_SCREEN_SHARES_PER_CONNECTION} screen shares per connection; join again to share more"
                ),
            ));
            return;
        }
        let event = self
            .audit(p, Action::ScreenShareStarted)
            .object("participant", &participant);
        if let Some(p) = self.find_mut(&participant) {
            p.screens_shared += 1;
        }
        self.screen = Some(participant.clone());
        let _ = self
            .media
            .command(SfuCommand::StartScreen {
                participant: participant.clone(),
            })
            .await;
        self.broadcast_where(
            |_| true,
            Notice::ScreenShare {
                sharer: Some(participant.clone()),
            },
        );
        self.services.audit.record_or_log(event).await;
        tracing::info!(room = %self.record.id, participant = %participant, "screen share started");
    }

    /// Ends `sharer`'s share, if they share: the media core stops its m-lines (unless the
    /// sharer's transport is going anyway) and everyone is told. `why` goes on the record.
    pub(super) async fn end_screen_share(&mut self, sharer: &ParticipantId, why: &'static str) {
        if self.screen.as_ref() != Some(sharer) {
            return;
        }
        self.screen = None;
        let _ = self
            .media
            .command(SfuCommand::StopScreen {
                participant: sharer.clone(),
            })
            .await;
        self.broadcast_where(|_| true, Notice::ScreenShare { sharer: None });
        let event = match self.find(sharer) {
            Some(p) => self.audit(p, Action::ScreenShareStopped),
            // Gone already (a leave): recorded under the room, naming them.
            None => AuditEvent::new(crate::audit::Actor::System, Action::ScreenShareStopped)
                .room(self.id()),
        };
        let event = event
            .object("participant", sharer)
            .detail(serde_json::json!({ "reason": why }));
        self.services.audit.record_or_log(event).await;
        tracing::info!(room = %self.record.id, participant = %sharer, reason = why, "screen share stopped");
    }
}
