//! What one audit entry says: who (actor and role), did what (action), where (room), to what
//! (object and its SHA-256), with which outcome, and when.

use serde::{Deserialize, Serialize};

use crate::domain::ids::{InviteId, ParticipantId, RoomId, UserId};
use crate::domain::role::{AccountRole, Role};

/// Who acted. Participants are recorded by their participant id (the `participants` table
/// maps it to the invite and the name they joined with); clinicians by their account id.
#[derive(Debug, Clone)]
pub enum Actor {
    User(UserId, AccountRole),
    Participant(ParticipantId, Role),
    /// A sign-in attempt for a name that has no account.
    Unknown,
    /// The server itself (startup checks, expiry).
    System,
    /// Someone holding an invitation link, outside the room (the patient's outcome page):
    /// recorded by the invite id.
    Invite(InviteId, Role),
}

impl Actor {
    fn parts(&self) -> (String, &'static str) {
        match self {
            Actor::User(id, role) => (id.to_string(), role.as_str()),
            Actor::Participant(id, role) => (id.to_string(), role.as_str()),
            Actor::Unknown => ("unknown".into(), ""),
            Actor::System => ("system".into(), ""),
            Actor::Invite(id, role) => (id.to_string(), role.as_str()),
        }
    }
}

/// Every kind of event the trail records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    SignIn,
    SignInFailed,
    SignOut,
    SessionRenewed,
    /// Sessions of an account ended by an administrator (how many in the detail).
    SessionsRevoked,
    /// A genuine session token presented after its session ended (revoked, renewed away,
    /// expired): possibly a stolen or replayed token.
    SessionRefused,
    PasswordChanged,
    PasswordChangeFailed,
    /// A clinician set a signing PIN (confirmed with their password).
    SigningPinSet,
    /// A signing PIN erased: by its clinician, or after too many wrong ones (the detail says
    /// which). A password change erases it too (`auth.password_changed` says so).
    SigningPinCleared,
    RoomCreated,
    RoomEnded,
    /// A consultation booked ahead moved to another time (from and to in the detail).
    RoomRescheduled,
    InviteIssued,
    InviteRevoked,
    Joined,
    Left,
    DocumentShared,
    DocumentRejected,
    DocumentViewed,
    DocumentDownloaded,
    DocumentAnnotated,
    RecordCreated,
    RecordDraftUpdated,
    RecordIssued,
    RecordCorrected,
    PrescriptionStateChanged,
    Exported,
    AuditRead,
    AccessDenied,
    InstitutionCreated,
    InstitutionRenamed,
    DepartmentCreated,
    DepartmentRenamed,
    /// A department nobody belonged to, removed.
    DepartmentRemoved,
    AccountCreated,
    /// An account moved to another institution or department, or its title or specialty set.
    AccountUpdated,
    /// An administrator disabled an account (its sessions ended, how many in the detail) or
    /// enabled it again.
    AccountDisabled,
    AccountEnabled,
    /// A clinician began or stopped taking referrals.
    AvailabilityChanged,
    CareTeamAdded,
    CareTeamRemoved,
    /// A clinician on the care team took their seat's entry token (to join the live room).
    SeatEntered,
    /// A clinician confirmed a record with their password and it was signed in their name.
    RecordSigned,
    /// A signing confirmation refused: a wrong password or PIN, too many tries, an account that
    /// may not sign (the reason in the detail).
    SigningFailed,
    /// A clinician let someone in from the waiting room (how long they waited in the detail).
    WaitingAdmitted,
    WaitingDeclined,
    /// A clinician sent someone in the room back to wait.
    WaitingSentBack,
    /// A clinician set or cleared the message to everyone waiting.
    WaitingMessage,
    RoomLocked,
    RoomUnlocked,
    HuddleStarted,
    HuddleEnded,
    /// A clinician began or ended sharing their screen (the reason it ended in the detail).
    ScreenShareStarted,
    ScreenShareStopped,
    /// The care team stopped or resumed forwarding someone's media (muted on the server).
    ParticipantHeld,
    ParticipantRemoved,
    /// The care team changed someone's role in the room (from and to in the detail).
    ParticipantRoleChanged,
    /// A patient agreed to a purpose (with the version of the words shown).
    ConsentGiven,
    ConsentWithdrawn,
    /// From this entry on the chain is keyed (HMAC under the audit key); written once, on a
    /// trail that an earlier version began with plain SHA-256 hashes.
    ChainKeyed,
    // Consultation requests (referrals): each step, with the request as the object and its
    // consultation room where it has one.
    ReferralCreated,
    /// Accepted, or a time agreed (the detail says which state it reached).
    ReferralAccepted,
    ReferralTimeProposed,
    /// A time agreed: the request's step into `scheduled` (an acceptance with a time, or the
    /// requester agreeing to a proposed one), recorded after that step's own entry.
    ReferralScheduled,
    ReferralDeclined,
    ReferralForwarded,
    ReferralStarted,
    ReferralReportIssued,
    ReferralClosed,
    ReferralCancelled,
    /// A document attached to a request (uploaded, or taken from an earlier consultation:
    /// the detail says which), read from it, or removed from it.
    ReferralDocumentAttached,
    ReferralDocumentRead,
    ReferralDocumentRemoved,
    // Invitations (docs/protocol.md, "Invitations"): a join counted as a use (or a reload),
    // a join refused for the window or the uses, short codes redeemed, failed, replaced.
    InviteUsed,
    InviteRefused,
    CodeRedeemed,
    CodeFailed,
    CodeReplaced,
    // The patient's outcome page (docs/protocol.md, "The patient's outcome").
    OutcomeViewed,
    OutcomeDownloaded,
    // Institutions' outgoing webhooks: configuration (by whom, the URL's host only) and what
    // the delivery gave up.
    /// An institution's webhook set up or changed (URL, enabled).
    WebhookConfigured,
    WebhookSecretRotated,
    /// An event given up after its last attempt.
    WebhookDeliveryFailed,
    /// Events not queued because the institution's outbox was full.
    WebhookOutboxFull,
    /// An administrator sent a failed event again.
    WebhookRetried,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::SignIn => "auth.sign_in",
            Action::SignInFailed => "auth.sign_in_failed",
            Action::SignOut => "auth.sign_out",
            Action::SessionRenewed => "auth.session_renewed",
            Action::SessionsRevoked => "auth.sessions_revoked",
            Action::SessionRefused => "auth.session_refused",
            Action::PasswordChanged => "auth.password_changed",
            Action::PasswordChangeFailed => "auth.password_change_failed",
            Action::SigningPinSet => "auth.signing_pin_set",
            Action::SigningPinCleared => "auth.signing_pin_cleared",
            Action::RoomCreated => "room.created",
            Action::RoomEnded => "room.ended",
            Action::RoomRescheduled => "room.rescheduled",
            Action::InviteIssued => "invite.issued",
            Action::InviteRevoked => "invite.revoked",
            Action::Joined => "participant.joined",
            Action::Left => "participant.left",
            Action::DocumentShared => "document.shared",
            Action::DocumentRejected => "document.rejected",
            Action::DocumentViewed => "document.viewed",
            Action::DocumentDownloaded => "document.downloaded",
            Action::DocumentAnnotated => "document.annotated",
            Action::RecordCreated => "record.created",
            Action::RecordDraftUpdated => "record.draft_updated",
            Action::RecordIssued => "record.issued",
            Action::RecordCorrected => "record.corrected",
            Action::PrescriptionStateChanged => "prescription.state_changed",
            Action::Exported => "consultation.exported",
            Action::AuditRead => "audit.read",
            Action::AccessDenied => "access.denied",
            Action::InstitutionCreated => "org.institution_created",
            Action::InstitutionRenamed => "org.institution_renamed",
            Action::DepartmentCreated => "org.department_created",
            Action::DepartmentRenamed => "org.department_renamed",
            Action::DepartmentRemoved => "org.department_removed",
            Action::AccountCreated => "org.account_created",
            Action::AccountUpdated => "org.account_updated",
            Action::AccountDisabled => "org.account_disabled",
            Action::AccountEnabled => "org.account_enabled",
            Action::AvailabilityChanged => "org.availability_changed",
            Action::CareTeamAdded => "care_team.added",
            Action::CareTeamRemoved => "care_team.removed",
            Action::SeatEntered => "care_team.seat_entered",
            Action::RecordSigned => "record.signed",
            Action::SigningFailed => "record.signing_failed",
            Action::ChainKeyed => "chain.keyed",
            Action::WaitingAdmitted => "waiting.admitted",
            Action::WaitingDeclined => "waiting.declined",
            Action::WaitingSentBack => "waiting.sent_back",
            Action::WaitingMessage => "waiting.message",
            Action::RoomLocked => "room.locked",
            Action::RoomUnlocked => "room.unlocked",
            Action::HuddleStarted => "huddle.started",
            Action::HuddleEnded => "huddle.ended",
            Action::ScreenShareStarted => "screen_share.started",
            Action::ScreenShareStopped => "screen_share.stopped",
            Action::ParticipantHeld => "participant.held",
            Action::ParticipantRemoved => "participant.removed",
            Action::ParticipantRoleChanged => "participant.role_changed",
            Action::ConsentGiven => "consent.given",
            Action::ConsentWithdrawn => "consent.withdrawn",
            // Consultation requests (referrals).
            Action::ReferralCreated => "referral.created",
            Action::ReferralAccepted => "referral.accepted",
            Action::ReferralTimeProposed => "referral.time_proposed",
            Action::ReferralScheduled => "referral.scheduled",
            Action::ReferralDeclined => "referral.declined",
            Action::ReferralForwarded => "referral.forwarded",
            Action::ReferralStarted => "referral.started",
            Action::ReferralReportIssued => "referral.report_issued",
            Action::ReferralClosed => "referral.closed",
            Action::ReferralCancelled => "referral.cancelled",
            Action::ReferralDocumentAttached => "referral.document_attached",
            Action::ReferralDocumentRead => "referral.document_read",
            Action::ReferralDocumentRemoved => "referral.document_removed",
            // Invitations.
            Action::InviteUsed => "invite.used",
            Action::InviteRefused => "invite.refused",
            Action::CodeRedeemed => "invitation.code_redeemed",
            Action::CodeFailed => "invitation.code_failed",
            Action::CodeReplaced => "invitation.code_replaced",
            // The patient's outcome page.
            Action::OutcomeViewed => "outcome.viewed",
            Action::OutcomeDownloaded => "outcome.downloaded",
            // Outgoing webhooks.
            Action::WebhookConfigured => "webhook.configured",
            Action::WebhookSecretRotated => "webhook.secret_rotated",
            Action::WebhookDeliveryFailed => "webhook.delivery_failed",
            Action::WebhookOutboxFull => "webhook.outbox_full",
            Action::WebhookRetried => "webhook.retried",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Refused by a rule (permission, limit, bad input).
    Denied,
    /// Failed on the server's side.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }
}

/// An event about to be recorded (no sequence number or hashes yet). Held as the text its
/// entry will store, so that an event owed by a committed step can wait as JSON in
/// `audit_pending` ([`AuditEvent::to_json`], [`AuditEvent::from_json`]) and be sealed later
/// exactly as it would have been at once.
///
/// Every field has a default when read back: a row queued by an earlier release that lacks a
/// field added since is still an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    actor_role: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    room: String,
    #[serde(default)]
    object_type: String,
    #[serde(default)]
    object_id: String,
    #[serde(default)]
    object_sha256: String,
    #[serde(default)]
    outcome: String,
    #[serde(default = "empty_detail")]
    detail: serde_json::Value,
}

fn empty_detail() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

impl AuditEvent {
    pub fn new(actor: Actor, action: Action) -> Self {
        let (actor, actor_role) = actor.parts();
        Self {
            actor,
            actor_role: actor_role.to_owned(),
            action: action.as_str().to_owned(),
            room: String::new(),
            object_type: String::new(),
            object_id: String::new(),
            object_sha256: String::new(),
            outcome: Outcome::Ok.as_str().to_owned(),
            detail: serde_json::Value::Object(Default::default()),
        }
    }

    /// The event as it waits in `audit_pending`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an event is plain JSON")
    }

    /// An event that waited in `audit_pending`; `None` if the row is not one (it was written
    /// by this code only, so that is a damaged database).
    pub fn from_json(json: &str) -> Option<Self> {
        serde_json::from_str::<Self>(json)
            .ok()
            .filter(|e| !e.action.is_empty())
    }

    pub fn room(mut self, room: &RoomId) -> Self {
        self.room = room.to_string();
        self
    }

    pub fn object(mut self, kind: &'static str, id: impl ToString) -> Self {
        self.object_type = kind.to_owned();
        self.object_id = id.to_string();
        self
    }

    pub fn sha256(mut self, hex: &str) -> Self {
        self.object_sha256 = hex.to_owned();
        self
    }

    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome.as_str().to_owned();
        self
    }

    /// Free-form facts (a reason, a status change). Never names, addresses or tokens.
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    /// Adds one fact to the detail.
    pub fn detail_field(mut self, key: &'static str, value: serde_json::Value) -> Self {
        if let serde_json::Value::Object(map) = &mut self.detail {
            map.insert(key.to_owned(), value);
        } else {
            self.detail = serde_json::json!({ key: value });
        }
        self
    }

    /// Fixes the entry's place in the chain and its time, and computes its hash (keyed).
    pub(super) fn seal(
        self,
        seq: i64,
        prev_hash: String,
        at_ms: i64,
        key: &super::AuditKey,
    ) -> AuditEntry {
        let mut entry = AuditEntry {
            seq,
            at_ms,
            actor: self.actor,
            actor_role: self.actor_role,
            action: self.action,
            room_id: self.room,
            object_type: self.object_type,
            object_id: self.object_id,
            object_sha256: self.object_sha256,
            outcome: self.outcome,
            detail: self.detail.to_string(),
            prev_hash,
            hash: String::new(),
            scheme: super::chain::KEYED.to_owned(),
        };
        entry.hash = super::chain::keyed_hash(&entry, key);
        entry
    }
}

/// One stored entry, as the API and the export show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: String,
    pub actor_role: String,
    pub action: String,
    pub room_id: String,
    pub object_type: String,
    pub object_id: String,
    pub object_sha256: String,
    pub outcome: String,
    /// A JSON object, kept as the exact text that was hashed.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
    /// How `hash` was computed: `hmac-sha256` (under the audit key), or `sha256` for entries
    /// written before the chain was keyed.
    pub scheme: String,
}
