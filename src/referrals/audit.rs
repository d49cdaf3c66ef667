//! The audit entries each step of a consultation request owes: built here, queued as JSON in
//! the step's own transaction (`storage::audit_pending`), and put on the chain by the edge
//! (`AuditLog::record_owed`) once it has committed. So a step that happened is never missing
//! from the trail: what a crash or a failed append leaves owed is appended at the next start.

use serde_json::json;

use crate::audit::{Action as AuditAction, Actor, AuditEvent};
use crate::domain::consent::ConsentPurpose;
use crate::domain::referral::{ReferralState, Side};
use crate::storage::{ReferralRow, SteppedRow};

/// The trail's name of a step (`Action::as_str` of the state machine).
pub fn step_action(step: &str) -> AuditAction {
    match step {
        "accept" => AuditAction::ReferralAccepted,
        "propose_time" => AuditAction::ReferralTimeProposed,
        "decline" => AuditAction::ReferralDeclined,
        "forward" => AuditAction::ReferralForwarded,
        "start" => AuditAction::ReferralStarted,
        "issue_report" => AuditAction::ReferralReportIssued,
        "close" => AuditAction::ReferralClosed,
        "cancel" => AuditAction::ReferralCancelled,
        // "create": the names above are every step the state machine has.
        _ => AuditAction::ReferralCreated,
    }
}

/// A new request: `referral.created`, and the patient's consent to sharing its documents with
/// the other institution when the request came with one attested.
pub fn created(actor: &Actor, row: &ReferralRow, consent: Option<&str>) -> Vec<AuditEvent> {
    let mut events = vec![
        AuditEvent::new(actor.clone(), AuditAction::ReferralCreated)
            .object("referral", &row.id)
            .detail(json!({
                "target": row.target,
                "urgency": row.urgency,
                "to": row.state.as_str(),
                "version": row.version,
            })),
    ];
    if let Some(version) = consent {
        events.push(consent_given(actor, row, version));
    }
    events
}

/// The patient's consent to sharing with the other institution, attested on request `row` by
/// the clinician `actor`.
pub fn consent_given(actor: &Actor, row: &ReferralRow, version: &str) -> AuditEvent {
    consent_event(
        actor,
        AuditAction::ConsentGiven,
        row,
        ConsentPurpose::ExternalSharing,
        Some(version),
    )
}

/// A consent on request `row`, attested (or its withdrawal recorded) by the clinician `actor`.
pub fn consent_event(
    actor: &Actor,
    action: AuditAction,
    row: &ReferralRow,
    purpose: ConsentPurpose,
    wording_version: Option<&str>,
) -> AuditEvent {
    let mut detail = json!({
        "purpose": purpose.as_str(),
        // Given by the patient to the requesting clinician, who attests it on the request.
        "attested": true,
        "on": "referral",
    });
    if let Some(v) = wording_version {
        detail["wording_version"] = json!(v);
    }
    let event = AuditEvent::new(actor.clone(), action)
        .object("referral", &row.id)
        .detail(detail);
    match &row.room_id {
        Some(room) => event.room(room),
        None => event,
    }
}

/// What one step of request `before` (taken by `actor`, on `side`, named `step`) owes the
/// trail, from what its transaction did (`s`): the step; `referral.scheduled` when it agreed
/// a time; and, when it opened the consultation's room (`opened`), the room's creation and
/// each document the request brought into it; the specialist it put on the care team.
pub fn stepped(
    actor: &Actor,
    before: &ReferralRow,
    s: &SteppedRow,
    side: Side,
    step: &'static str,
    opened: bool,
) -> Vec<AuditEvent> {
    let after = &s.row;
    let id = &after.id;
    let mut events = Vec::new();
    let mut detail = json!({
        "from": before.state.as_str(),
        "to": after.state.as_str(),
        "side": side,
        "version": after.version,
    });
    if let Some(slot) = after.state.slot() {
        detail["slot"] = json!(slot);
    }
    if before.target != after.target {
        detail["target"] = json!(after.target);
    }
    let mut event = AuditEvent::new(actor.clone(), step_action(step))
        .object("referral", id)
        .detail(detail);
    if let Some(room) = &after.room_id {
        event = event.room(room);
    }
    events.push(event);
    // A time agreed is a step of its own on the trail (issue 17: "scheduled"), whichever step
    // agreed it, so a regulator following when consultations were booked finds each one.
    if let (ReferralState::Scheduled { slot }, false) = (
        &after.state,
        matches!(before.state, ReferralState::Scheduled { .. }),
    ) {
        let mut scheduled = AuditEvent::new(actor.clone(), AuditAction::ReferralScheduled)
            .object("referral", id)
            .detail(json!({"slot": slot, "by_step": step, "version": after.version}));
        if let Some(room) = &after.room_id {
            scheduled = scheduled.room(room);
        }
        events.push(scheduled);
    }
    if let (true, Some(room)) = (opened, &after.room_id) {
        events.push(
            AuditEvent::new(actor.clone(), AuditAction::RoomCreated)
                .room(room)
                .object("room", room)
                .detail(json!({"referral": id, "documents": s.documents_copied.len()})),
        );
        // Each document the request brought into its new room, as the room's trail names
        // shares.
        for a in &s.documents_copied {
            let Some(doc) = &a.room_document else {
                continue;
            };
            events.push(
                AuditEvent::new(actor.clone(), AuditAction::DocumentShared)
                    .room(room)
                    .object("document", doc)
                    .sha256(&a.sha256)
                    .detail(json!({
                        "kind": a.kind,
                        "size": a.size,
                        "visibility": "clinicians",
                        "referral": id,
                        "attachment": a.id,
                    })),
            );
        }
    }
    if let (Some(room), Some(user)) = (&after.room_id, &s.seated) {
        events.push(
            AuditEvent::new(actor.clone(), AuditAction::CareTeamAdded)
                .room(room)
                .object("user", user)
                .detail(json!({"role": "specialist", "referral": id})),
        );
    }
    events
}
