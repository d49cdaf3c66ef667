//! An invitation's window and uses, checked at `join` (docs/protocol.md, "Invitations").
//!
//! A link invitation opens at its `not_before` (`invite_not_yet` before, with `opens_at`) and
//! is good for `max_uses` joins. A use is taken in one conditional `UPDATE` before the room is
//! asked, and given back if the room refuses the join, so of two browsers racing for the last
//! use exactly one gets in (`invite_used_up` for the other). A join whose `replaces` names a
//! participant this invitation let in is the same browser coming back (a reload): it takes that
//! participant over instead of a use, once (a second join naming the same participant is a new
//! use). A `resume` never comes here. Care-team seats are not limited.

use serde_json::json;

use super::SignalingContext;
use super::protocol::ErrorCode;
use crate::audit::{Action, Actor, AuditEvent};
use crate::domain::clock::{now_unix, now_unix_ms};
use crate::domain::ids::{InviteId, ParticipantId};
use crate::domain::invitation::clock_text;
use crate::rooms::{Joined, ResumeRef};
use crate::storage::Invite;

/// A join the invitation lets through, to be settled once the room has answered.
pub(super) struct Ticket {
    invite: InviteId,
    room: crate::domain::ids::RoomId,
    role: crate::domain::role::Role,
    /// `None`: a use was counted; `Some`: the participant this join takes over (a reload).
    takes_over: Option<ParticipantId>,
    max_uses: Option<i64>,
}

/// A join the invitation does not let through: the refusal, and when it opens.
pub(super) struct NotAdmitted {
    pub code: ErrorCode,
    pub message: String,
    pub opens_at: Option<i64>,
}

impl NotAdmitted {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            opens_at: None,
        }
    }
}

fn unavailable<E>(_: E) -> NotAdmitted {
    NotAdmitted::new(ErrorCode::Internal, "storage unavailable")
}

/// Checks the invitation's window and takes a use (or the replaced participant); `None` for a
/// care-team seat. `client` is the pseudonym of the client's address.
pub(super) async fn admit(
    ctx: &SignalingContext,
    invite: &Invite,
    replaces: Option<&ResumeRef>,
    client: &str,
) -> Result<Option<Ticket>, NotAdmitted> {
    if invite.account.is_some() {
        return Ok(None);
    }
    let now = now_unix();
    if now >= invite.expires_at {
        ctx.rooms
            .audit()
            .invite_refused(invite, "invite_expired", client, None)
            .await;
        return Err(NotAdmitted::new(
            ErrorCode::TokenExpired,
            "this link has expired; ask for a new one",
        ));
    }
    if let Some(opens) = invite.not_before.filter(|nb| now < *nb) {
        ctx.rooms
            .audit()
            .invite_refused(invite, "invite_not_yet", client, None)
            .await;
        let minutes = (opens - now + 59) / 60;
        return Err(NotAdmitted {
            code: ErrorCode::InviteNotYet,
            message: format!(
                "this invitation opens at {} (in {minutes} minutes); come back then",
                clock_text(opens, 0)
            ),
            opens_at: Some(opens),
        });
    }
    let mut ticket = Ticket {
        invite: invite.id.clone(),
        room: invite.room_id.clone(),
        role: invite.role,
        takes_over: None,
        max_uses: invite.max_uses,
    };
    if let Some(old) = replaces
        && ctx
            .db
            .take_over_invite_use(&invite.id, &old.participant)
            .await
            .map_err(unavailable)?
    {
        ticket.takes_over = Some(old.participant.clone());
        return Ok(Some(ticket));
    }
    if ctx
        .db
        .take_invite_use(&invite.id)
        .await
        .map_err(unavailable)?
    {
        return Ok(Some(ticket));
    }
    // No use left, or revoked since it was read.
    let now_revoked = ctx
        .db
        .invite(&invite.id)
        .await
        .map_err(unavailable)?
        .is_none_or(|i| i.revoked_at.is_some());
    if now_revoked {
        return Err(NotAdmitted::new(
            ErrorCode::InviteRevoked,
            "this invite link was revoked",
        ));
    }
    ctx.rooms
        .audit()
        .invite_refused(invite, "invite_used_up", client, None)
        .await;
    Err(NotAdmitted::new(
        ErrorCode::InviteUsedUp,
        "this invitation has been used; ask the clinic for a new one",
    ))
}

/// Records the use once the room let the participant in, or gives it back if it did not.
pub(super) async fn settle<R>(
    ctx: &SignalingContext,
    ticket: Option<Ticket>,
    result: &Result<(R, Joined), (ErrorCode, String)>,
    client: &str,
) {
    let Some(ticket) = ticket else {
        return;
    };
    let db = &ctx.db;
    match result {
        Ok((_, joined)) => {
            let counted = ticket.takes_over.is_none();
            if let Err(e) = db
                .record_invite_use(
                    &ticket.invite,
                    &joined.participant,
                    now_unix_ms(),
                    client,
                    counted,
                )
                .await
            {
                tracing::warn!(invite = %ticket.invite, error = %e, "invitation use not recorded");
            }
            let event = AuditEvent::new(
                Actor::Participant(joined.participant.clone(), ticket.role),
                Action::InviteUsed,
            )
            .room(&ticket.room)
            .object("invite", &ticket.invite)
            .detail(json!({
                "counted": counted,
                "replaced": ticket.takes_over,
                "max_uses": ticket.max_uses,
                "client": client,
            }));
            ctx.rooms.audit().record_or_log(event).await;
        }
        Err(_) => {
            let undone = match &ticket.takes_over {
                None => db.give_back_invite_use(&ticket.invite).await,
                Some(old) => db.release_invite_take_over(&ticket.invite, old).await,
            };
            if let Err(e) = undone {
                tracing::warn!(invite = %ticket.invite, error = %e, "invitation use not given back");
            }
        }
    }
}
