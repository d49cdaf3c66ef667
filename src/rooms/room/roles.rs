//! Changing someone's role during a consultation: the care team lets an observer speak (they
//! become a guest) or makes a guest only watch again (an observer). The permission table says
//! which changes exist (`Role::may_become`); the room applies one, tells the person and the
//! others, puts it on the record, and has the media core add or stop the person's own m-lines.
//!
//! A change follows the person, who is their invitation: a resume keeps it, a reload on the
//! same link carries it over (`Room::join`, like a patient's consents), and a new join with the
//! link from another tab or device comes in with it, because the change is stored on the
//! invitation with the participant's row (`Change::InviteRoleNow`, `invites.role_now`) and the
//! join reads it there (`Invite::role_for_join`). What such a join may send is settled by the
//! room, not by signaling: a reload made just after a change may read the older role from
//! storage, and the room's own record (the participant it replaces) wins. On a link several
//! people share (a class watching on one observer link), the change reaches whoever joins with
//! it next as well: the care team gave it to the link's holder.

use super::Room;
use crate::audit::{Action, Actor, Append, AuditEvent};
use crate::domain::ids::ParticipantId;
use crate::domain::role::Role;
use crate::rooms::{Notice, Problem, Publish};
use crate::sfu::{PublishKinds, SfuCommand};
use crate::storage::Change;

/// Role changes one person may be given while they are in the room: each one that lets them
/// speak adds two m-lines to their session description (stopped ones stay), so an endless
/// back and forth would grow every offer they get. Far above what a consultation needs.
pub(super) const MAX_ROLE_CHANGES_PER_PARTICIPANT: u32 = 20;

impl Room {
    /// `actor` (of the care team: `Room::moderate` checked) changes `target`'s role to `role`.
    pub(super) async fn set_role(
        &mut self,
        actor: &ParticipantId,
        by: Actor,
        target: &ParticipantId,
        role: Role,
    ) {
        let tell_actor = |room: &Self, problem: Problem, text: String| {
            if let Some(a) = room.find(actor) {
                a.send(Notice::refused(problem, text));
            }
        };
        let Some(p) = self.find(target).filter(|p| &p.id != actor) else {
            tell_actor(
                self,
                Problem::NotPresent,
                "nobody else of that id is in the consultation".to_owned(),
            );
            return;
        };
        // Asked twice (two clinicians at once, a retry): already done.
        if p.role == role {
            return;
        }
        if p.account.is_some() || !p.role.may_become(role) {
            tell_actor(
                self,
                Problem::Forbidden,
                format!(
                    "role {} cannot change to {}: only someone who came with an invitation \
                     link changes role, between observer and guest",
                    p.role.as_str(),
                    role.as_str()
                ),
            );
            if let Some(a) = self.find(actor) {
                self.refused(a, "role_change_forbidden").await;
            }
            return;
        }
        if p.role_changes >= MAX_ROLE_CHANGES_PER_PARTICIPANT {
            tell_actor(
                self,
                Problem::Invalid,
                format!(
                    "at most {MAX_ROLE_CHANGES_PER_PARTICIPANT} role changes per person; they can join again"
                ),
            );
            return;
        }
        let (from, invite) = (p.role, p.invite.clone());
        let Some(p) = self.find_mut(target) else {
            return;
        };
        p.role = role;
        p.role_changes += 1;
        if role.may_publish() {
            // Offered both; their client starts with the microphone muted and the camera off
            // (they turn them on), and says so with `media_state`.
            p.publish = Publish {
                audio: true,
                video: true,
            };
            p.audio_muted = true;
            p.video_off = true;
        } else {
            p.publish = Publish::default();
            p.audio_muted = false;
            p.video_off = false;
        }
        let publish = PublishKinds {
            audio: p.publish.audio,
            video: p.publish.video,
        };
        let view = p.info();
        p.send(Notice::RoleChanged {
            role,
            by: actor.clone(),
        });
        let _ = self
            .media
            .command(SfuCommand::SetPublish {
                participant: target.clone(),
                publish,
            })
            .await;
        self.broadcast_except(target, Notice::ParticipantUpdated(view));
        let event = AuditEvent::new(by, Action::ParticipantRoleChanged)
            .room(self.id())
            .object("participant", target)
            .detail(serde_json::json!({"from": from.as_str(), "to": role.as_str()}));
        let change = Change::RoleChanged {
            id: target.clone(),
            role,
        };
        let follows = Change::InviteRoleNow { invite, role };
        self.services
            .audit
            .submit_or_log(Append::entry(event).with(change).with(follows))
            .await;
        tracing::info!(room = %self.record.id, participant = %target, from = from.as_str(), to = role.as_str(), "role changed");
    }
}
