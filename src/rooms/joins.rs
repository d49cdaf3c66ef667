//! How many times each invitation (a link, or a clinician's care-team seat) has brought
//! someone into a consultation, and the caps on it (a seat only counts towards the
//! consultation's: its clinician cannot ask for another). Every join is a row of the consultation's
//! attendance (`participants`), kept for its record, and a reload is a join: without a cap,
//! a script reloading one link in a loop grows that table, the summary and every read of the
//! attendance without bound. No visit needs more than a few dozen joins on one link; the caps
//! leave room for a patient on a phone that drops all day.
//!
//! The room's task owns the counts (loaded from storage when it starts, counted as it admits
//! joins), so the check and the count are one step of the task: concurrent joins cannot both
//! pass the last place.

use std::collections::HashMap;

use crate::domain::ids::InviteId;

/// Joins on one link, over the consultation's life.
pub const MAX_JOINS_PER_INVITE: u32 = 200;
/// Joins in one consultation, every invitation together.
pub const MAX_JOINS_PER_ROOM: u32 = 5_000;

/// The caps a room applies (tests lower them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinCaps {
    pub per_invite: u32,
    pub per_room: u32,
}

impl Default for JoinCaps {
    fn default() -> Self {
        Self {
            per_invite: MAX_JOINS_PER_INVITE,
            per_room: MAX_JOINS_PER_ROOM,
        }
    }
}

/// Which cap a join would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinCap {
    Invite(u32),
    Room(u32),
}

#[derive(Debug, Default)]
pub struct Joins {
    per_invite: HashMap<InviteId, u32>,
    total: u32,
}

impl Joins {
    /// The counts on the record (a room starting again after it stopped, or after a restart).
    pub fn from_counts(counts: impl IntoIterator<Item = (InviteId, u32)>) -> Self {
        let mut joins = Self::default();
        for (invite, n) in counts {
            joins.total = joins.total.saturating_add(n);
            *joins.per_invite.entry(invite).or_default() += n;
        }
        joins
    }

    /// Whether one more join on `invite` stays within the caps.
    pub fn check(&self, invite: &InviteId, caps: JoinCaps) -> Result<(), JoinCap> {
        if self.total >= caps.per_room {
            return Err(JoinCap::Room(caps.per_room));
        }
        if self.per_invite.get(invite).copied().unwrap_or(0) >= caps.per_invite {
            return Err(JoinCap::Invite(caps.per_invite));
        }
        Ok(())
    }

    /// Counts one more join on `invite`, or says which cap it would pass (and counts nothing).
    pub fn take(&mut self, invite: &InviteId, caps: JoinCaps) -> Result<(), JoinCap> {
        self.check(invite, caps)?;
        *self.per_invite.entry(invite.clone()).or_default() += 1;
        self.total += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_invitation_and_per_room() {
        let caps = JoinCaps {
            per_invite: 3,
            per_room: 5,
        };
        let (a, b, c) = (
            InviteId::generate(),
            InviteId::generate(),
            InviteId::generate(),
        );
        let mut joins = Joins::from_counts([(a.clone(), 2)]);
        assert_eq!(joins.take(&a, caps), Ok(()));
        assert_eq!(joins.take(&a, caps), Err(JoinCap::Invite(3)));
        // A refused join counts nothing: the others still have their places.
        assert_eq!(joins.take(&b, caps), Ok(()));
        assert_eq!(joins.take(&b, caps), Ok(()));
        assert_eq!(joins.take(&c, caps), Err(JoinCap::Room(5)));
        assert_eq!(joins.take(&b, caps), Err(JoinCap::Room(5)));
    }
}
