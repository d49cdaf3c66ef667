//! Roles and the permissions that follow from them.
//!
//! The table here is the single place that says who may publish, subscribe, end a room or
//! invite; rooms and the HTTP edge ask it and never test role names themselves.

use serde::{Deserialize, Serialize};

use super::ids::UserId;
use super::record::{RecordKind, RecordStatus};

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

    /// Doctors and specialists: the care team, as opposed to the patient and observers.
    pub fn is_clinician(self) -> bool {
        matches!(self, Role::Doctor | Role::Specialist)
    }

    /// Sharing a document into the room. Patients may share their own results (visible to
    /// everyone); observers only watch.
    pub fn may_share(self, visibility: Visibility) -> bool {
        match visibility {
            Visibility::Everyone => !matches!(self, Role::Observer),
            Visibility::Clinicians => self.is_clinician(),
        }
    }

    /// Seeing a document (its listing, its content in the room's viewer, follow mode on it).
    pub fn may_view(self, visibility: Visibility) -> bool {
        match visibility {
            Visibility::Everyone => true,
            Visibility::Clinicians => self.is_clinician(),
        }
    }

    /// Saving a copy: a separate right from viewing; observers (trainees, family) may not.
    pub fn may_download(self, visibility: Visibility) -> bool {
        self.may_view(visibility) && !matches!(self, Role::Observer)
    }

    /// Annotating documents and presenting them (follow mode).
    pub fn may_annotate(self) -> bool {
        self.is_clinician()
    }

    pub fn may_chat(self) -> bool {
        true
    }

    /// Consultation notes.
    pub fn may_write_note(self) -> bool {
        self.is_clinician()
    }

    /// Diagnosis reports (findings, impression, recommendation).
    pub fn may_write_diagnosis(self) -> bool {
        self.is_clinician()
    }

    /// Drafting and issuing e-prescriptions.
    pub fn may_prescribe(self) -> bool {
        self.is_clinician()
    }

    /// Reading a clinical record: the care team reads everything, drafts included; the patient
    /// reads their issued diagnosis reports and prescriptions (never notes or drafts); observers
    /// read none.
    pub fn may_read_record(self, kind: RecordKind, status: RecordStatus) -> bool {
        match self {
            Role::Doctor | Role::Specialist => true,
            Role::Patient => {
                status != RecordStatus::Draft
                    && matches!(kind, RecordKind::DiagnosisReport | RecordKind::Prescription)
            }
            Role::Observer => false,
        }
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

/// Who may see a shared document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Every participant, the patient included.
    Everyone,
    /// Doctors and specialists only: never sent to a patient's or observer's browser.
    Clinicians,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Everyone => "everyone",
            Visibility::Clinicians => "clinicians",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "everyone" => Visibility::Everyone,
            "clinicians" => Visibility::Clinicians,
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
    /// Reviews issued prescriptions and records dispensing; joins no rooms.
    Pharmacist,
    /// A supervisor or regulator: reads and exports the audit trail; joins no rooms.
    Supervisor,
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
            AccountRole::Pharmacist | AccountRole::Supervisor => Role::Observer,
        }
    }

    /// Every room, not only those the account created (the console's list, summaries).
    pub fn sees_all_rooms(self) -> bool {
        matches!(self, AccountRole::Admin | AccountRole::Supervisor)
    }

    /// Whether an account (`me`, with this role) may see a room that `creator` created: its
    /// own, or every room for administrators and supervisors.
    pub fn may_see_room(self, me: &UserId, creator: &UserId) -> bool {
        self.sees_all_rooms() || me == creator
    }

    /// Invites and ending: the room's creator, or an administrator.
    pub fn may_manage_room(self, me: &UserId, creator: &UserId) -> bool {
        self.may_manage_rooms() && self.may_see_room(me, creator)
    }

    pub fn may_review_prescriptions(self) -> bool {
        matches!(self, AccountRole::Pharmacist)
    }

    /// The read-only audit API, its verification and export.
    pub fn may_read_audit(self) -> bool {
        matches!(self, AccountRole::Supervisor)
    }

    /// Other accounts' sessions: ending them all (a lost laptop, a departing colleague).
    pub fn may_manage_accounts(self) -> bool {
        matches!(self, AccountRole::Admin)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AccountRole::Doctor => "doctor",
            AccountRole::Specialist => "specialist",
            AccountRole::Admin => "admin",
            AccountRole::Pharmacist => "pharmacist",
            AccountRole::Supervisor => "supervisor",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "doctor" => AccountRole::Doctor,
            "specialist" => AccountRole::Specialist,
            "admin" => AccountRole::Admin,
            "pharmacist" => AccountRole::Pharmacist,
            "supervisor" => AccountRole::Supervisor,
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
        // Clinicians-only documents never reach the patient or observers.
        for r in [Role::Patient, Role::Observer] {
            assert!(!r.may_view(Visibility::Clinicians) && !r.may_share(Visibility::Clinicians));
            assert!(!r.may_prescribe() && !r.may_annotate());
        }
        assert!(Role::Patient.may_download(Visibility::Everyone));
        assert!(
            Role::Observer.may_view(Visibility::Everyone)
                && !Role::Observer.may_download(Visibility::Everyone)
        );
        assert!(Role::Specialist.may_download(Visibility::Clinicians));
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

    #[test]
    fn record_and_room_visibility() {
        use RecordKind::*;
        use RecordStatus::*;
        for kind in [Note, DiagnosisReport, Prescription] {
            assert!(Role::Doctor.may_read_record(kind, Draft));
            assert!(Role::Specialist.may_read_record(kind, Issued));
            assert!(
                !Role::Patient.may_read_record(kind, Draft),
                "drafts stay with the care team"
            );
            assert!(!Role::Observer.may_read_record(kind, Issued));
        }
        assert!(
            !Role::Patient.may_read_record(Note, Issued),
            "notes never reach the patient"
        );
        assert!(Role::Patient.may_read_record(Prescription, Dispensed));
        let (me, other) = (UserId::generate(), UserId::generate());
        assert!(AccountRole::Doctor.may_see_room(&me, &me));
        assert!(!AccountRole::Doctor.may_see_room(&me, &other));
        assert!(AccountRole::Supervisor.may_see_room(&me, &other));
        assert!(!AccountRole::Supervisor.may_manage_room(&me, &other));
        assert!(AccountRole::Admin.may_manage_room(&me, &other));
        assert!(!AccountRole::Pharmacist.may_manage_room(&me, &me));
        for role in [
            AccountRole::Doctor,
            AccountRole::Specialist,
            AccountRole::Pharmacist,
            AccountRole::Supervisor,
        ] {
            assert!(!role.may_manage_accounts(), "{role:?}");
        }
        assert!(AccountRole::Admin.may_manage_accounts());
    }
}
