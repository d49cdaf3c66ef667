//! Roles and the permissions that follow from them.
//!
//! The table here is the single place that says who may publish, subscribe, end a room or
//! invite; rooms and the HTTP edge ask it and never test role names themselves.

use serde::{Deserialize, Serialize};

/// A participant's role in one consultation room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The primary-care doctor who runs the consultation.
    Doctor,
    /// The remote specialist consulted.
    Specialist,
    Patient,
    /// Watches and listens only (training, a family member).
    Observer,
}

impl Role {
    pub fn may_publish(self) -> bool {
        !matches!(self, Role::Observer)
    }

    pub fn may_subscribe(self) -> bool {
        true
    }

    pub fn may_end_room(self) -> bool {
        matches!(self, Role::Doctor)
    }

    pub fn may_invite(self) -> bool {
        matches!(self, Role::Doctor)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Doctor => "doctor",
            Role::Specialist => "specialist",
            Role::Patient => "patient",
            Role::Observer => "observer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "doctor" => Role::Doctor,
            "specialist" => Role::Specialist,
            "patient" => Role::Patient,
            "observer" => Role::Observer,
            _ => return None,
        })
    }
}

/// The role of a clinician *account* (who signs in to the console), distinct from the role a
/// person has inside one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountRole {
    Doctor,
    Specialist,
    Admin,
}

impl AccountRole {
    /// Creating rooms and invites is reserved to doctors and administrators.
    pub fn may_manage_rooms(self) -> bool {
        matches!(self, AccountRole::Doctor | AccountRole::Admin)
    }

    /// The role this account takes when it joins a room it manages.
    pub fn room_role(self) -> Role {
        match self {
            AccountRole::Specialist => Role::Specialist,
            AccountRole::Doctor | AccountRole::Admin => Role::Doctor,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AccountRole::Doctor => "doctor",
            AccountRole::Specialist => "specialist",
            AccountRole::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "doctor" => AccountRole::Doctor,
            "specialist" => AccountRole::Specialist,
            "admin" => AccountRole::Admin,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_table() {
        assert!(Role::Doctor.may_end_room() && Role::Doctor.may_invite());
        for r in [Role::Specialist, Role::Patient, Role::Observer] {
            assert!(!r.may_end_room() && !r.may_invite());
        }
        assert!(!Role::Observer.may_publish());
        assert!(Role::Patient.may_publish() && Role::Patient.may_subscribe());
        for r in [
            Role::Doctor,
            Role::Specialist,
            Role::Patient,
            Role::Observer,
        ] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }
}
