//! Roles and the permissions that follow from them.
//!
//! The table here is the single place that says who may publish, subscribe, end a room or
//! invite; rooms and the HTTP edge ask it and never test role names themselves.

use serde::{Deserialize, Serialize};

use super::organisation::RoomRelation;
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
    /// Takes part in the conversation (is heard and seen, chats) without being the patient or
    /// on the care team: an interpreter, a relative who speaks, a trainee the care team lets
    /// ask a question. Otherwise as an observer: no downloads, no sharing, no records.
    Guest,
}

impl Role {
    pub fn may_publish(self) -> bool {
        !matches!(self, Role::Observer)
    }

    /// Present at the patient's consultation without being the patient or on the care team
    /// (observers and guests): allowed only while every patient present (or sent back to wait)
    /// agrees to a third party being there (consent `observer_present`).
    pub fn is_third_party(self) -> bool {
        matches!(self, Role::Observer | Role::Guest)
    }

    /// The roles the care team may switch a person between during a consultation: an
    /// observer let speak becomes a guest, a guest made to only watch becomes an observer.
    /// Never into or out of the care team or the patient's role: those come from an account
    /// or an invitation.
    pub fn may_become(self, to: Role) -> bool {
        matches!(
            (self, to),
            (Role::Observer, Role::Guest) | (Role::Guest, Role::Observer)
        )
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

    /// Letting people in from the waiting room, declining them, sending them back, messaging
    /// them, locking the room: the care team.
    pub fn may_admit(self) -> bool {
        self.is_clinician()
    }

    /// Holding someone's audio or video (the server stops forwarding it), and letting an
    /// observer speak or making a guest only watch: the care team, so that a specialist can
    /// silence a noisy line while the doctor's connection is down.
    pub fn may_moderate(self) -> bool {
        self.is_clinician()
    }

    /// Removing someone from the consultation. It revokes the link they came with, so it is
    /// for whoever manages the links: the doctor who runs the consultation, not a specialist
    /// consulted from another institution.
    pub fn may_remove(self) -> bool {
        self.may_invite()
    }

    /// Doctors and specialists: the care team, as opposed to the patient and observers.
    pub fn is_clinician(self) -> bool {
        matches!(self, Role::Doctor | Role::Specialist)
    }

    /// Sharing a document into the room. Patients may share their own results (visible to
    /// everyone); observers only watch.
    pub fn may_share(self, visibility: Visibility) -> bool {
        match visibility {
            Visibility::Everyone => !self.is_third_party(),
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

    /// Saving a copy: a separate right from viewing; observers and guests (trainees, family,
    /// interpreters) may not.
    pub fn may_download(self, visibility: Visibility) -> bool {
        self.may_view(visibility) && !self.is_third_party()
    }

    /// Annotating documents and presenting them (follow mode).
    pub fn may_annotate(self) -> bool {
        self.is_clinician()
    }

    pub fn may_chat(self) -> bool {
        true
    }

    /// Sharing a screen or a window as a second video (a specialist's imaging workstation):
    /// the care team. A patient's screen could show anything of theirs to everyone present, and
    /// observers only watch.
    pub fn may_share_screen(self) -> bool {
        self.is_clinician()
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
    /// and guests read none.
    pub fn may_read_record(self, kind: RecordKind, status: RecordStatus) -> bool {
        match self {
            Role::Doctor | Role::Specialist => true,
            Role::Patient => {
                status != RecordStatus::Draft
                    && matches!(kind, RecordKind::DiagnosisReport | RecordKind::Prescription)
            }
            Role::Observer | Role::Guest => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Doctor => "doctor",
            Role::Specialist => "specialist",
            Role::Patient => "patient",
            Role::Observer => "observer",
            Role::Guest => "guest",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "doctor" => Role::Doctor,
            "specialist" => Role::Specialist,
            "patient" => Role::Patient,
            "observer" => Role::Observer,
            "guest" => Role::Guest,
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
    /// The network's administrator: institutions, departments and every account.
    Admin,
    /// Manages the accounts of their own institution; joins no rooms.
    InstitutionAdmin,
    /// Reviews issued prescriptions and records dispensing; joins no rooms.
    Pharmacist,
    /// A supervisor of one institution: reads and exports the audit trail of what concerns
    /// it (its consultations, its accounts, requests it sent or received), sees its
    /// consultations; joins no rooms.
    Supervisor,
    /// The network's supervisor or regulator: the whole audit trail and every consultation.
    NetworkSupervisor,
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
            AccountRole::Pharmacist
            | AccountRole::Supervisor
            | AccountRole::NetworkSupervisor
            | AccountRole::InstitutionAdmin => Role::Observer,
        }
    }

    /// Clinicians who can be put on a consultation's care team, take referrals and sign.
    pub fn is_clinician(self) -> bool {
        matches!(self, AccountRole::Doctor | AccountRole::Specialist)
    }

    /// Every room, not only those of the account's institution and care teams.
    pub fn sees_all_rooms(self) -> bool {
        matches!(self, AccountRole::Admin | AccountRole::NetworkSupervisor)
    }

    /// Whether this account sees a consultation (the console's list, summaries): a clinician
    /// sees their own institution's consultations and those whose care team they are on (a
    /// referral brings them in); an institution's supervisor sees its consultations; the
    /// network's administrator and supervisor see all; the others none.
    pub fn may_see_room(self, rel: RoomRelation) -> bool {
        match self {
            AccountRole::Admin | AccountRole::NetworkSupervisor => true,
            AccountRole::Supervisor => rel.same_institution,
            AccountRole::Doctor | AccountRole::Specialist => {
                rel.same_institution || rel.care_team.is_some()
            }
            AccountRole::Pharmacist | AccountRole::InstitutionAdmin => false,
        }
    }

    /// Invites, the care team and ending: a member of the care team whose room role may
    /// invite (the consultation's doctor), or the network's administrator.
    pub fn may_manage_room(self, rel: RoomRelation) -> bool {
        match self {
            AccountRole::Admin => true,
            AccountRole::Doctor | AccountRole::Specialist => {
                rel.care_team.is_some_and(Role::may_invite)
            }
            _ => false,
        }
    }

    /// Institutions and departments of the whole network.
    pub fn may_manage_network(self) -> bool {
        matches!(self, AccountRole::Admin)
    }

    pub fn may_review_prescriptions(self) -> bool {
        matches!(self, AccountRole::Pharmacist)
    }

    /// The read-only audit API, its verification and export.
    pub fn may_read_audit(self) -> bool {
        matches!(
            self,
            AccountRole::Supervisor | AccountRole::NetworkSupervisor
        )
    }

    /// Whether the audit trail this account reads is the whole network's, or only what
    /// concerns its institution.
    pub fn reads_whole_audit_trail(self) -> bool {
        matches!(self, AccountRole::NetworkSupervisor)
    }

    /// Other accounts (creating them, ending their sessions: a lost laptop, a departing
    /// colleague): the network's administrator for every institution, an institution's
    /// administrator for their own.
    pub fn may_manage_accounts(self, same_institution: bool) -> bool {
        match self {
            AccountRole::Admin => true,
            AccountRole::InstitutionAdmin => same_institution,
            _ => false,
        }
    }

    /// An institution's webhook to its own systems (its URL, secret, deliveries): the
    /// network's administrator for every institution, an institution's administrator for
    /// their own.
    pub fn may_manage_webhook(self, same_institution: bool) -> bool {
        match self {
            AccountRole::Admin => true,
            AccountRole::InstitutionAdmin => same_institution,
            _ => false,
        }
    }

    /// The roles an account of this role may give to accounts it creates: an institution's
    /// administrator never makes network-wide roles.
    pub fn may_grant(self, role: AccountRole) -> bool {
        match self {
            AccountRole::Admin => true,
            AccountRole::InstitutionAdmin => !matches!(
                role,
                AccountRole::Admin | AccountRole::Supervisor | AccountRole::NetworkSupervisor
            ),
            _ => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AccountRole::Doctor => "doctor",
            AccountRole::Specialist => "specialist",
            AccountRole::Admin => "admin",
            AccountRole::InstitutionAdmin => "institution_admin",
            AccountRole::Pharmacist => "pharmacist",
            AccountRole::Supervisor => "supervisor",
            AccountRole::NetworkSupervisor => "network_supervisor",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "doctor" => AccountRole::Doctor,
            "specialist" => AccountRole::Specialist,
            "admin" => AccountRole::Admin,
            "institution_admin" => AccountRole::InstitutionAdmin,
            "pharmacist" => AccountRole::Pharmacist,
            "supervisor" => AccountRole::Supervisor,
            "network_supervisor" => AccountRole::NetworkSupervisor,
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
        for r in [Role::Specialist, Role::Patient, Role::Observer, Role::Guest] {
            assert!(!r.may_end_room() && !r.may_invite());
        }
        for r in [Role::Patient, Role::Observer, Role::Guest] {
            assert!(!r.may_admit() && !r.is_clinician());
            assert!(!r.may_moderate() && !r.may_remove());
        }
        // Moderation: the care team holds and changes roles; the doctor alone removes.
        assert!(Role::Doctor.may_moderate() && Role::Specialist.may_moderate());
        assert!(Role::Doctor.may_remove() && !Role::Specialist.may_remove());
        assert!(!Role::Observer.may_publish());
        // A guest is heard and seen, and otherwise an observer.
        assert!(Role::Guest.may_publish() && Role::Guest.may_chat());
        assert!(!Role::Guest.may_share(Visibility::Everyone));
        assert!(!Role::Guest.may_download(Visibility::Everyone));
        assert!(Role::Guest.may_view(Visibility::Everyone) && !Role::Guest.may_share_screen());
        assert!(Role::Guest.is_third_party() && Role::Observer.is_third_party());
        assert!(!Role::Patient.is_third_party() && !Role::Doctor.is_third_party());
        // Clinicians-only documents never reach the patient, observers or guests.
        for r in [Role::Patient, Role::Observer, Role::Guest] {
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
        assert!(Role::Doctor.may_share_screen() && Role::Specialist.may_share_screen());
        assert!(!Role::Patient.may_share_screen() && !Role::Observer.may_share_screen());
        let all = [
            Role::Doctor,
            Role::Specialist,
            Role::Patient,
            Role::Observer,
            Role::Guest,
        ];
        for r in all {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        // Only observer <-> guest, and never to the same role.
        for from in all {
            for to in all {
                let allowed = matches!(
                    (from, to),
                    (Role::Observer, Role::Guest) | (Role::Guest, Role::Observer)
                );
                assert_eq!(from.may_become(to), allowed, "{from:?} -> {to:?}");
            }
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
            assert!(!Role::Guest.may_read_record(kind, Issued));
        }
        assert!(
            !Role::Patient.may_read_record(Note, Issued),
            "notes never reach the patient"
        );
        assert!(Role::Patient.may_read_record(Prescription, Dispensed));
        let mine = RoomRelation {
            same_institution: true,
            care_team: Some(Role::Doctor),
        };
        let colleague = RoomRelation {
            same_institution: true,
            care_team: None,
        };
        let referred = RoomRelation {
            same_institution: false,
            care_team: Some(Role::Specialist),
        };
        let elsewhere = RoomRelation::default();
        for role in [AccountRole::Doctor, AccountRole::Specialist] {
            assert!(role.may_see_room(mine) && role.may_see_room(colleague));
            assert!(role.may_see_room(referred), "a referral brings them in");
            assert!(!role.may_see_room(elsewhere), "another institution's");
            assert!(role.may_manage_room(mine));
            assert!(!role.may_manage_room(colleague) && !role.may_manage_room(referred));
        }
        // An institution's supervisor sees its consultations, the network's sees all; neither
        // runs one.
        assert!(AccountRole::Supervisor.may_see_room(colleague));
        assert!(!AccountRole::Supervisor.may_see_room(elsewhere));
        assert!(AccountRole::NetworkSupervisor.may_see_room(elsewhere));
        for role in [AccountRole::Supervisor, AccountRole::NetworkSupervisor] {
            assert!(!role.may_manage_room(mine) && role.may_read_audit());
            assert_eq!(role.room_role(), Role::Observer);
        }
        assert!(AccountRole::NetworkSupervisor.reads_whole_audit_trail());
        assert!(!AccountRole::Supervisor.reads_whole_audit_trail());
        assert!(!AccountRole::Supervisor.sees_all_rooms());
        assert!(!AccountRole::InstitutionAdmin.may_grant(AccountRole::NetworkSupervisor));
        assert_eq!(
            AccountRole::parse("network_supervisor"),
            Some(AccountRole::NetworkSupervisor)
        );
        assert!(AccountRole::Admin.may_manage_room(elsewhere));
        for role in [AccountRole::Pharmacist, AccountRole::InstitutionAdmin] {
            assert!(!role.may_see_room(mine) && !role.may_manage_room(mine));
        }
        for role in [
            AccountRole::Doctor,
            AccountRole::Specialist,
            AccountRole::Pharmacist,
            AccountRole::Supervisor,
        ] {
            assert!(!role.may_manage_accounts(true), "{role:?}");
        }
        assert!(AccountRole::InstitutionAdmin.may_manage_accounts(true));
        assert!(!AccountRole::InstitutionAdmin.may_manage_accounts(false));
        assert!(!AccountRole::InstitutionAdmin.may_grant(AccountRole::Admin));
        assert!(!AccountRole::InstitutionAdmin.may_grant(AccountRole::Supervisor));
        assert!(AccountRole::InstitutionAdmin.may_grant(AccountRole::Specialist));
        assert!(AccountRole::Admin.may_manage_accounts(false));
        // Webhooks: the network's administrator any institution's, an institution's its own.
        assert!(AccountRole::Admin.may_manage_webhook(false));
        assert!(AccountRole::InstitutionAdmin.may_manage_webhook(true));
        assert!(!AccountRole::InstitutionAdmin.may_manage_webhook(false));
        for role in [
            AccountRole::Doctor,
            AccountRole::Specialist,
            AccountRole::Pharmacist,
            AccountRole::Supervisor,
            AccountRole::NetworkSupervisor,
        ] {
            assert!(!role.may_manage_webhook(true), "{role:?}");
        }
    }
}
