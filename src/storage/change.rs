//! Row changes that ride in another module's transaction. The audit trail's writer commits a
//! join's `participants` row in the same transaction as its audit entry, and a room's chat
//! message in the same group commit as everything else queued with it (see `crate::audit`); the
//! SQL stays here, and each change is one statement on whatever connection it is given.
//!
//! A room's end is also news for the institutions' webhooks: [`Change::apply_all`], which the
//! audit writer and [`Db::end_room`](super::Db::end_room) use, queues `consultation.ended` in
//! the same transaction as the end itself, once (only the statement that ended the room queues
//! it), so the event exists exactly when the end was committed: a crash cannot keep one
//! without the other (at least once, in order with the consultation's other events).

use sqlx::{Any, AnyConnection, Executor};

use super::{ChatRecord, StorageError};
use crate::domain::clock::{now_unix, now_unix_ms};
use crate::domain::consent::ConsentPurpose;
use crate::domain::ids::{
    ConsentId, InviteId, ParticipantId, PendingAuditId, ReferralId, RoomId, UserId,
};
use crate::domain::role::Role;
use crate::domain::webhook::EventKind;

/// One change to one row, with the time it happened (not the time it is written).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    ParticipantJoined {
        room: RoomId,
        id: ParticipantId,
        invite: InviteId,
        role: Role,
        name: String,
        at: i64,
    },
    ParticipantLeft {
        id: ParticipantId,
        at: i64,
    },
    RoomEnded {
        room: RoomId,
        at: i64,
    },
    Chat {
        room: RoomId,
        message: ChatRecord,
    },
    ConsentGiven {
        room: RoomId,
        id: ConsentId,
        participant: ParticipantId,
        invite: InviteId,
        purpose: ConsentPurpose,
        wording_version: &'static str,
        at: i64,
    },
    ConsentWithdrawn {
        participant: ParticipantId,
        purpose: ConsentPurpose,
        at: i64,
    },
    /// Someone left the waiting room without ever being let in: the use of their invitation
    /// that their join counted is given back (a dropped phone can come back on a single-use
    /// link). Nothing if their join did not count one.
    InviteUseReturned {
        invite: InviteId,
        participant: ParticipantId,
    },
    /// A patient rejoined as a new participant (a reload): the consents in force of their old
    /// self are theirs.
    ConsentCarried {
        from: ParticipantId,
        to: ParticipantId,
    },
    /// The care team changed someone's role in the room (an observer let speak, a guest made
    /// to only watch): their row names the role they have now; the audit entry committed with
    /// it names both (and `InviteRoleNow` makes it follow them to another tab or device).
    RoleChanged {
        id: ParticipantId,
        role: Role,
    },
    /// Committed with `RoleChanged`: the role a later join with the link invitation comes in
    /// with (`invites.role_now`), for a link with a limited number of uses: one person's (a
    /// patient's or a guest's, single-use by default; a trainee's, given a few uses for their
    /// devices). A link without a limit (an observer link for a whole class) is not one person:
    /// letting one trainee speak must not make every later joiner a guest, so the change stays
    /// with that participant. A care-team seat never changes role.
    InviteRoleNow {
        invite: InviteId,
        role: Role,
    },
    /// A clinician attested on a consultation request that the patient agreed to `purpose` in
    /// the words of `wording_version` (`referral_consents`). Nothing if a consent for it is in
    /// force already: the audit writer is the one writer of these rows, so two attestations
    /// racing leave one row in force.
    ReferralConsentGiven {
        referral: ReferralId,
        id: ConsentId,
        purpose: ConsentPurpose,
        wording_version: &'static str,
        by: UserId,
        at: i64,
    },
    /// A clinician recorded that the patient withdrew it: the row in force is closed.
    ReferralConsentWithdrawn {
        referral: ReferralId,
        purpose: ConsentPurpose,
        by: UserId,
        at: i64,
    },
    /// The owed entry (`storage::audit_pending`) is on the chain: its row goes, in the
    /// transaction that appends it. Nothing if it went already (appended by another process,
    /// or by an earlier try): with `Append::only_if_changed`, the entry is then not written.
    AuditPendingDone {
        id: PendingAuditId,
    },
}

impl Change {
    pub fn participant_joined(
        room: &RoomId,
        id: &ParticipantId,
        invite: &InviteId,
        role: Role,
        name: &str,
    ) -> Self {
        Change::ParticipantJoined {
            room: room.clone(),
            id: id.clone(),
            invite: invite.clone(),
            role,
            name: name.to_owned(),
            at: now_unix(),
        }
    }

    pub fn participant_left(id: &ParticipantId) -> Self {
        Change::ParticipantLeft {
            id: id.clone(),
            at: now_unix(),
        }
    }

    pub fn room_ended(room: &RoomId) -> Self {
        Change::RoomEnded {
            room: room.clone(),
            at: now_unix(),
        }
    }

    pub fn chat(room: &RoomId, message: &ChatRecord) -> Self {
        Change::Chat {
            room: room.clone(),
            message: message.clone(),
        }
    }

    pub fn consent(
        room: &RoomId,
        participant: &ParticipantId,
        invite: &InviteId,
        purpose: ConsentPurpose,
        given: bool,
    ) -> Self {
        if given {
            Change::ConsentGiven {
                room: room.clone(),
                id: ConsentId::generate(),
                participant: participant.clone(),
                invite: invite.clone(),
                purpose,
                wording_version: purpose.wording().version,
                at: now_unix(),
            }
        } else {
            Change::ConsentWithdrawn {
                participant: participant.clone(),
                purpose,
                at: now_unix(),
            }
        }
    }

    /// Runs the change's one statement on `conn` (a pool, a connection or a transaction).
    /// A room's end queues no webhook event this way: use [`Change::apply_all`] for that.
    pub async fn apply<'c, E>(&self, conn: E) -> Result<(), StorageError>
    where
        E: Executor<'c, Database = Any>,
    {
        self.execute(conn).await.map(|_| ())
    }

    /// Runs `changes` in order on `conn` (the caller's transaction), then queues
    /// `consultation.ended` for each room that one of them ended (not one already ended).
    /// Answers how many rows each changed, in order.
    /// The events are queued after every row of the batch, so a batch takes the outbox's rows
    /// last, as every other step that queues does (a referral's step updates its room before
    /// it queues): two transactions never wait on each other in a circle.
    pub async fn apply_all(
        changes: &[&Change],
        conn: &mut AnyConnection,
    ) -> Result<Vec<u64>, StorageError> {
        let mut ended = Vec::new();
        let mut counts = Vec::with_capacity(changes.len());
        for &change in changes {
            let affected = change.execute(&mut *conn).await?;
            counts.push(affected);
            if let Change::RoomEnded { room, at } = change
                && affected == 1
            {
                ended.push((room, *at));
            }
        }
        for (room, at) in ended {
            super::webhooks::enqueue_for_room(
                conn,
                room,
                EventKind::ConsultationEnded,
                serde_json::json!({"room_id": room, "ended_at": at}),
                at,
                now_unix_ms(),
            )
            .await?;
        }
        Ok(counts)
    }

    /// The change's statement; how many rows it changed.
    async fn execute<'c, E>(&self, conn: E) -> Result<u64, StorageError>
    where
        E: Executor<'c, Database = Any>,
    {
        let done = match self {
            Change::ParticipantJoined {
                room,
                id,
                invite,
                role,
                name,
                at,
            } => {
                sqlx::query(
                    "INSERT INTO participants (id, room_id, invite_id, role, name, joined_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(id.as_str())
                .bind(room.as_str())
                .bind(invite.as_str())
                .bind(role.as_str())
                .bind(name.as_str())
                .bind(*at)
                .execute(conn)
                .await?
            }
            Change::ParticipantLeft { id, at } => {
                sqlx::query(
                    "UPDATE participants SET left_at = $1 WHERE id = $2 AND left_at IS NULL",
                )
                .bind(*at)
                .bind(id.as_str())
                .execute(conn)
                .await?
            }
            Change::RoomEnded { room, at } => {
                sqlx::query("UPDATE rooms SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL")
                    .bind(*at)
                    .bind(room.as_str())
                    .execute(conn)
                    .await?
            }
            Change::Chat { room, message: m } => {
                sqlx::query(
                    "INSERT INTO chat_messages (id, room_id, participant_id, name, role, body, \
                     created_at_ms, huddle) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(m.id.as_str())
                .bind(room.as_str())
                .bind(m.participant_id.as_str())
                .bind(m.name.as_str())
                .bind(m.role.as_str())
                .bind(m.text.as_str())
                .bind(m.at_ms)
                .bind(i64::from(m.huddle))
                .execute(conn)
                .await?
            }
            Change::ConsentGiven {
                room,
                id,
                participant,
                invite,
                purpose,
                wording_version,
                at,
            } => {
                sqlx::query(
                    "INSERT INTO consents (id, room_id, participant_id, invite_id, purpose, \
                     wording_version, given_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(id.as_str())
                .bind(room.as_str())
                .bind(participant.as_str())
                .bind(invite.as_str())
                .bind(purpose.as_str())
                .bind(*wording_version)
                .bind(*at)
                .execute(conn)
                .await?
            }
            Change::InviteUseReturned {
                invite,
                participant,
            } => {
                sqlx::query(
                    "UPDATE invites SET uses = uses - 1 WHERE id = $1 AND uses > 0 \
                     AND EXISTS (SELECT 1 FROM invite_uses WHERE invite_id = $1 \
                     AND participant_id = $2 AND counted = 1)",
                )
                .bind(invite.as_str())
                .bind(participant.as_str())
                .execute(conn)
                .await?
            }
            Change::ConsentWithdrawn {
                participant,
                purpose,
                at,
            } => {
                sqlx::query(
                    "UPDATE consents SET withdrawn_at = $1 \
                     WHERE participant_id = $2 AND purpose = $3 AND withdrawn_at IS NULL",
                )
                .bind(*at)
                .bind(participant.as_str())
                .bind(purpose.as_str())
                .execute(conn)
                .await?
            }
            Change::RoleChanged { id, role } => {
                sqlx::query("UPDATE participants SET role = $1 WHERE id = $2")
                    .bind(role.as_str())
                    .bind(id.as_str())
                    .execute(conn)
                    .await?
            }
            Change::InviteRoleNow { invite, role } => {
                sqlx::query(
                    "UPDATE invites SET role_now = $1 \
                     WHERE id = $2 AND account_id IS NULL AND max_uses IS NOT NULL",
                )
                .bind(role.as_str())
                .bind(invite.as_str())
                .execute(conn)
                .await?
            }
            Change::ReferralConsentGiven {
                referral,
                id,
                purpose,
                wording_version,
                by,
                at,
            } => {
                sqlx::query(
                    "INSERT INTO referral_consents (id, referral_id, purpose, wording_version, \
                     attested_by, given_at) SELECT $1, $2, $3, $4, $5, $6 \
                     WHERE NOT EXISTS (SELECT 1 FROM referral_consents WHERE referral_id = $2 \
                     AND purpose = $3 AND withdrawn_at IS NULL)",
                )
                .bind(id.as_str())
                .bind(referral.as_str())
                .bind(purpose.as_str())
                .bind(*wording_version)
                .bind(by.as_str())
                .bind(*at)
                .execute(conn)
                .await?
            }
            Change::ReferralConsentWithdrawn {
                referral,
                purpose,
                by,
                at,
            } => {
                sqlx::query(
                    "UPDATE referral_consents SET withdrawn_at = $1, withdrawn_by = $2 \
                     WHERE referral_id = $3 AND purpose = $4 AND withdrawn_at IS NULL",
                )
                .bind(*at)
                .bind(by.as_str())
                .bind(referral.as_str())
                .bind(purpose.as_str())
                .execute(conn)
                .await?
            }
            Change::AuditPendingDone { id } => {
                sqlx::query("DELETE FROM audit_pending WHERE id = $1")
                    .bind(id.as_str())
                    .execute(conn)
                    .await?
            }
            Change::ConsentCarried { from, to } => {
                sqlx::query(
                    "UPDATE consents SET participant_id = $1 \
                     WHERE participant_id = $2 AND withdrawn_at IS NULL",
                )
                .bind(to.as_str())
                .bind(from.as_str())
                .execute(conn)
                .await?
            }
        };
        Ok(done.rows_affected())
    }
}
