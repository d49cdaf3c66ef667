//! Consultation requests (referrals) over HTTP (docs/protocol.md, "Referrals"): a clinician
//! asks a department or a named specialist for a joint consultation; the receiving side works
//! its inboxes; each step is a `POST` on the request. The rules are `crate::referrals`' and
//! the state machine's; this file reads bodies, shows requests, writes the audit trail (every
//! step, every refusal) and ends the room of a request declined or cancelled after it was
//! scheduled. A request the account is on neither side of is not found, and the attempt is
//! recorded.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::AppState;
use super::api::{ApiJson, ApiQuery, Clinician};
use super::error::ApiError;
use super::referral_consent::consent_view;
use crate::audit::{Action, Actor, AuditEvent};
use crate::domain::clock::now_unix;
use crate::domain::ids::{DepartmentId, InstitutionId, ReferralId, RoomId, UserId};
use crate::domain::member::Member;
use crate::domain::record::RecordKind;
use crate::domain::referral::{ReferralState, Side, Slot, Urgency};
use crate::referrals::consent::ReferralConsents;
use crate::referrals::{
    Detail, Mailbox, NewRequest, ReferralServiceError, Referrals, Request, Stepped, Time, side_of,
};
use crate::rooms::EndReason;
use crate::storage::{ReferralEvent, ReferralRow, RoomStatus, User};

pub(super) fn service(state: &AppState) -> Referrals {
    Referrals::new(state.db.clone())
}

fn referral_id(s: &str) -> Result<ReferralId, ApiError> {
    ReferralId::parse(s).ok_or(ApiError::NotFound)
}

#[derive(Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct TimeBody {
    /// Unix seconds.
    start: i64,
    minutes: u32,
}

impl From<TimeBody> for Time {
    fn from(t: TimeBody) -> Self {
        Time {
            start: t.start,
            minutes: t.minutes,
        }
    }
}

#[derive(Deserialize)]
pub struct CreateBody {
    target_department_id: DepartmentId,
    #[serde(default)]
    target_specialist_id: Option<UserId>,
    patient_ref: String,
    reason: String,
    question: String,
    urgency: Urgency,
    #[serde(default)]
    proposed_times: Vec<TimeBody>,
    /// The requester attests that the patient agreed to sharing the request's documents with
    /// the receiving institution, in these words (`POST /referrals/{id}/consent` later).
    #[serde(default)]
    external_sharing_consent: Option<super::referral_consent::AttestBody>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AcceptBody {
    #[serde(default)]
    start: Option<i64>,
    #[serde(default)]
    minutes: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ForwardBody {
    /// A specialist of the request's department; absent or null: back to the department.
    #[serde(default)]
    specialist_id: Option<UserId>,
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default, rename = "box")]
    mailbox: Option<String>,
}

/// A step's body: JSON, or nothing at all where every field is optional.
fn body<T: DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::Invalid(e.to_string()))
}

/// The step `POST /referrals/{id}/{action}` asks for.
fn parse_request(action: &str, bytes: &Bytes) -> Result<Request, ApiError> {
    Ok(match action {
        "accept" => {
            let b: AcceptBody = body(bytes)?;
            let time = match (b.start, b.minutes) {
                (Some(start), Some(minutes)) => Some(Time { start, minutes }),
                (None, None) => None,
                _ => {
                    return Err(ApiError::Invalid(
                        "give both start and minutes, or neither".into(),
                    ));
                }
            };
            Request::Accept { time }
        }
        "propose" => {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Err(ApiError::Invalid("give the time: start and minutes".into()));
            }
            let time: TimeBody =
                serde_json::from_slice(bytes).map_err(|e| ApiError::Invalid(e.to_string()))?;
            Request::ProposeTime { time: time.into() }
        }
        "decline" => Request::Decline {
            reason: body::<ReasonBody>(bytes)?.reason,
        },
        "cancel" => Request::Cancel {
            reason: body::<ReasonBody>(bytes)?.reason,
        },
        "forward" => Request::Forward {
            specialist: body::<ForwardBody>(bytes)?.specialist_id,
        },
        "start" => Request::Start,
        "close" => Request::Close {
            reason: body::<ReasonBody>(bytes)?.reason,
        },
        _ => return Err(ApiError::NotFound),
    })
}

/// The audit trail's name for a step (by the state machine's name for it, or `create`).
fn requested_action(r: &Request) -> Action {
    crate::referrals::audit::step_action(match r {
        Request::Accept { .. } => "accept",
        Request::ProposeTime { .. } => "propose_time",
        Request::Decline { .. } => "decline",
        Request::Forward { .. } => "forward",
        Request::Start => "start",
        Request::IssueReport => "issue_report",
        Request::Close { .. } => "close",
        Request::Cancel { .. } => "cancel",
    })
}

/// Records a refusal and hands it on. A request that is not theirs is an `access.denied`
/// (it may be probing); any other refusal is the attempted step with outcome denied and the
/// code as its reason. Both rate-limited per account and reason.
async fn refuse(
    state: &AppState,
    who: &Clinician,
    attempted: AuditEvent,
    id: Option<&ReferralId>,
    e: ReferralServiceError,
) -> ApiError {
    match &e {
        ReferralServiceError::NotVisible => {
            let mut event = AuditEvent::new(who.actor(), Action::AccessDenied);
            if let Some(id) = id {
                event = event.object("referral", id);
            }
            state
                .audit
                .refused(who.0.id.as_str(), "referral_not_visible", event)
                .await;
        }
        ReferralServiceError::NotFound | ReferralServiceError::Storage(_) => {}
        other => {
            state
                .audit
                .refused(who.0.id.as_str(), other.code(), attempted)
                .await;
        }
    }
    e.into()
}

/// Audits a step that was taken, and what it did to the room.
/// Puts the entries a step owes on the trail (built and queued with it, `referrals::audit`).
async fn audit_step(state: &AppState, s: &Stepped) {
    state.audit.record_owed(&s.owed).await;
    tracing::info!(
        referral = %s.after.id,
        step = s.action,
        from = s.before.state.as_str(),
        to = s.after.state.as_str(),
        "consultation request step"
    );
}

/// A request declined or cancelled after its room was opened will not be held: the room ends.
/// So does a consultation closed without a report, if it is still open (one that ended
/// without a report is what such a close is for, and stays as it ended).
async fn end_room_if_called_off(state: &AppState, actor: Actor, s: &Stepped) {
    let called_off = matches!(
        s.after.state,
        ReferralState::Declined { .. } | ReferralState::Cancelled { .. }
    ) || (s.before.state == ReferralState::InConsultation
        && matches!(s.after.state, ReferralState::Closed { .. }));
    let Some(room) = s.after.room_id.as_ref().filter(|_| called_off) else {
        return;
    };
    match state.db.room(room).await {
        Ok(Some(r)) if r.status == RoomStatus::Ended => return,
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(room = %room, referral = %s.after.id, error = %e, "the room of a called-off consultation request could not be read");
            return;
        }
    }
    // Those waiting for a consultation called off are told so, not that it was held and ended.
    let reason = if matches!(s.after.state, ReferralState::Closed { .. }) {
        EndReason::EndedByDoctor
    } else {
        EndReason::CalledOff
    };
    match state.rooms.end_because(room, reason).await {
        Ok(()) => {
            state
                .audit
                .record_or_log(
                    AuditEvent::new(actor, Action::RoomEnded)
                        .room(room)
                        .object("room", room)
                        .detail(json!({"referral": s.after.id, "state": s.after.state.as_str()})),
                )
                .await;
            super::api::consultation_ended(state);
        }
        Err(e) => {
            tracing::warn!(room = %room, referral = %s.after.id, error = %e, "the room of a called-off consultation request did not end");
        }
    }
}

/// Names to show requests with: institutions, departments, and the accounts involved.
struct Directory {
    institutions: HashMap<InstitutionId, String>,
    departments: HashMap<DepartmentId, (String, InstitutionId)>,
    users: HashMap<UserId, User>,
}

impl Directory {
    /// The names `rows` show, and those of the accounts `users`: only those, read a few
    /// queries at a time (not the network's every institution and department).
    async fn load<'a>(
        state: &AppState,
        rows: &[&'a ReferralRow],
        users: impl IntoIterator<Item = &'a UserId>,
    ) -> Result<Self, ApiError> {
        let wanted: Vec<&UserId> = users
            .into_iter()
            .chain(rows.iter().flat_map(|r| Self::accounts(r)))
            .collect();
        let users = state.db.users_by_id(&wanted).await?;
        let wanted: Vec<&DepartmentId> = rows.iter().map(|r| r.target.department()).collect();
        let departments = state.db.departments_by_id(&wanted).await?;
        let institutions: Vec<&InstitutionId> = users
            .iter()
            .map(|u| &u.institution_id)
            .chain(departments.iter().map(|d| &d.institution_id))
            .chain(rows.iter().map(|r| &r.requester_institution))
            .collect();
        let names = state.db.place_names(&institutions, &[]).await?;
        Ok(Self {
            institutions: names.institutions,
            departments: departments
                .into_iter()
                .map(|d| (d.id, (d.name, d.institution_id)))
                .collect(),
            users: users.into_iter().map(|u| (u.id.clone(), u)).collect(),
        })
    }

    /// Every account a request shows.
    fn accounts(r: &ReferralRow) -> impl Iterator<Item = &UserId> {
        std::iter::once(&r.requester_id)
            .chain(r.target.specialist())
            .chain(r.receiver_id.as_ref())
    }

    fn institution(&self, id: &InstitutionId) -> Value {
        json!({"id": id, "name": self.institutions.get(id).map(String::as_str).unwrap_or("")})
    }

    fn person(&self, id: &UserId) -> Value {
        match self.users.get(id) {
            Some(u) => json!({
                "id": u.id,
                "display_name": u.display_name,
                "title": u.title,
                "institution": self.institution(&u.institution_id),
            }),
            None => json!({"id": id}),
        }
    }

    fn department(&self, id: &DepartmentId) -> Value {
        match self.departments.get(id) {
            Some((name, institution)) => json!({
                "id": id,
                "name": name,
                "institution": self.institution(institution),
            }),
            None => json!({"id": id}),
        }
    }

    fn referral(&self, r: &ReferralRow, side: Side) -> Value {
        json!({
            "id": r.id,
            "requester": self.person(&r.requester_id),
            "requester_institution": self.institution(&r.requester_institution),
            "target": {
                "department": self.department(r.target.department()),
                "specialist": r.target.specialist().map(|u| self.person(u)),
            },
            "receiver": r.receiver_id.as_ref().map(|u| self.person(u)),
            "patient_ref": r.patient_ref,
            "reason": r.reason,
            "question": r.question,
            "urgency": r.urgency,
            "urgent": r.urgency.is_marked(),
            "state": r.state.as_str(),
            "state_by": r.state.by(),
            "slot": r.state.slot().map(slot_view),
            "state_reason": r.state.reason(),
            "open": r.state.is_open(),
            "room_id": r.room_id,
            "room_slot": r.room_slot.map(slot_view),
            "version": r.version,
            "created_at": r.created_at,
            "updated_at": r.updated_at,
            "side": side,
        })
    }

    fn event(&self, e: &ReferralEvent) -> Value {
        json!({
            "version": e.version,
            "action": e.action,
            "from_state": (!e.from_state.is_empty()).then_some(&e.from_state),
            "to_state": e.to_state,
            "actor": self.person(&e.actor_id),
            "side": e.side,
            "detail": e.detail,
            "at": e.at,
        })
    }
}

fn slot_view(s: Slot) -> Value {
    json!({"start": s.start(), "minutes": s.minutes(), "end": s.end()})
}

/// A request with the times first proposed, every step, where it stands on the patient's
/// consent to sharing, and its documents: for the receiving side of a request to another
/// institution without that consent in force, only how many are withheld (their names may
/// say something about the patient).
async fn detail_view(state: &AppState, d: &Detail) -> Result<Value, ApiError> {
    let sharing = ReferralConsents::new(state.db.clone())
        .sharing(&d.referral)
        .await?;
    // Collected first: a closure over borrowed rows held across the `await` below would make
    // the handler's future not `Send` for every lifetime.
    let mut accounts: Vec<&UserId> = d.events.iter().map(|e| &e.actor_id).collect();
    if let Some(c) = &sharing.consent {
        accounts.push(&c.attested_by);
        accounts.extend(c.withdrawn_by.as_ref());
    }
    let names = Directory::load(state, &[&d.referral], accounts).await?;
    let mut view = names.referral(&d.referral, d.side);
    view["proposed_times"] = d.proposed.iter().copied().map(slot_view).collect();
    view["events"] = d.events.iter().map(|e| names.event(e)).collect();
    view["consent"] = consent_view(&sharing, |u| names.person(u));
    let documents = state.db.referral_documents(&d.referral.id).await?;
    if sharing.readable_by(d.side) {
        view["documents"] = documents
            .iter()
            .map(super::referral_documents::attachment_view)
            .collect();
        view["documents_withheld"] = json!(0);
    } else {
        view["documents"] = json!([]);
        view["documents_withheld"] = json!(documents.len());
    }
    Ok(view)
}

/// The request as `who` sees it now, after they changed something on it (its consent).
pub async fn view_for(
    state: &AppState,
    who: &Clinician,
    row: ReferralRow,
) -> Result<Json<Value>, ApiError> {
    let Some(side) = side_of(&row, &who.0) else {
        return Err(ApiError::NotFound);
    };
    let detail = service(state).detail_of(row, side).await?;
    Ok(Json(detail_view(state, &detail).await?))
}

/// `POST /api/v1/referrals`: a new request, addressed to a department or a named specialist.
pub async fn create(
    State(state): State<AppState>,
    who: Clinician,
    ApiJson(b): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let attempted = AuditEvent::new(who.actor(), Action::ReferralCreated)
        .detail(json!({"department": b.target_department_id}));
    let sharing_consent = match &b.external_sharing_consent {
        Some(attest) => {
            Some(super::referral_consent::check_attestation(&state, &who, attest).await?)
        }
        None => None,
    };
    let new = NewRequest {
        department: b.target_department_id,
        specialist: b.target_specialist_id,
        patient_ref: b.patient_ref,
        reason: b.reason,
        question: b.question,
        urgency: b.urgency,
        proposed: b.proposed_times.into_iter().map(Time::from).collect(),
        sharing_consent,
    };
    let svc = service(&state);
    let row = match svc.create(&who.0, new, now_unix()).await {
        Ok(created) => {
            super::api::abort_point("referral_created");
            // Its entry, and the consent attested with it: queued in its transaction.
            state.audit.record_owed(&created.owed).await;
            created.row
        }
        Err(e) => return Err(refuse(&state, &who, attempted, None, e).await),
    };
    tracing::info!(referral = %row.id, user = %who.0.id, "consultation request created");
    state.webhooks.wake();
    super::events::referral_step(&state, &row, &who.0.id, true).await;
    let detail = svc.detail_of(row, Side::Requester).await?;
    Ok((
        StatusCode::CREATED,
        Json(detail_view(&state, &detail).await?),
    ))
}

/// `GET /api/v1/referrals?box=inbox|department|outbox`.
pub async fn list(
    State(state): State<AppState>,
    who: Clinician,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let (name, mailbox) = match q.mailbox.as_deref().unwrap_or("inbox") {
        "inbox" => ("inbox", Mailbox::Inbox),
        "department" => ("department", Mailbox::Department),
        "outbox" => ("outbox", Mailbox::Outbox),
        _ => {
            return Err(ApiError::Invalid(
                "box must be inbox, department or outbox".into(),
            ));
        }
    };
    let rows = service(&state).list(&who.0, mailbox).await?;
    let listed: Vec<&ReferralRow> = rows.iter().map(|(r, _)| r).collect();
    let names = Directory::load(&state, &listed, []).await?;
    let views: Vec<Value> = rows
        .iter()
        .map(|(r, side)| {
            let mut view = names.referral(r, *side);
            view["covering"] = json!(side_of(r, &who.0).is_none());
            view
        })
        .collect();
    Ok(Json(json!({"box": name, "referrals": views})))
}

/// `GET /api/v1/referrals/{id}`: the request with its proposed times and every step.
pub async fn get(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = referral_id(&id)?;
    match service(&state).detail(&id, &who.0).await {
        Ok(d) => {
            let mut view = detail_view(&state, &d).await?;
            // Seen only because its specialist is not taking requests: forwarding is all the
            // viewer may do (`Referrals::covers`), and the documents are for whoever takes it
            // on (counted, not listed).
            let covering = side_of(&d.referral, &who.0).is_none();
            view["covering"] = json!(covering);
            if covering {
                let listed = view["documents"].as_array().map_or(0, Vec::len);
                let withheld = view["documents_withheld"].as_u64().unwrap_or(0);
                view["documents"] = json!([]);
                view["documents_withheld"] = json!(withheld + listed as u64);
            }
            Ok(Json(view))
        }
        Err(e) => {
            let attempted = AuditEvent::new(who.actor(), Action::AccessDenied);
            Err(refuse(&state, &who, attempted, Some(&id), e).await)
        }
    }
}

/// `POST /api/v1/referrals/{id}/{accept|propose|decline|forward|start|close|cancel}`.
pub async fn act(
    State(state): State<AppState>,
    who: Clinician,
    Path((id, action)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = referral_id(&id)?;
    let request = parse_request(&action, &bytes)?;
    let attempted =
        AuditEvent::new(who.actor(), requested_action(&request)).object("referral", &id);
    let svc = service(&state);
    let stepped = match svc.act(&id, &who.0, request, now_unix()).await {
        Ok(s) => s,
        Err(e) => return Err(refuse(&state, &who, attempted, Some(&id), e).await),
    };
    audit_step(&state, &stepped).await;
    state.webhooks.wake();
    end_room_if_called_off(&state, who.actor(), &stepped).await;
    // A new agreed time moved the request's consultation: those waiting in it are told.
    if let (Some(room), Some(slot)) = (&stepped.after.room_id, stepped.after.room_slot)
        && stepped.before.room_slot != Some(slot)
    {
        state
            .rooms
            .rescheduled(room, (slot.start(), i64::from(slot.minutes())))
            .await;
    }
    // A forward is news to the new receiving side, a step to those already on it.
    let forwarded = stepped.before.target != stepped.after.target;
    super::events::referral_step(&state, &stepped.after, &who.0.id, forwarded).await;
    let detail = svc.detail_of(stepped.after, stepped.side).await?;
    Ok(Json(detail_view(&state, &detail).await?))
}

/// After a record was issued in `room` (`http/records.rs`): a diagnosis report issued by a
/// clinician's account on the receiving side of the request whose consultation this is, while
/// it is under way, issues the request's report. Nothing else changes; a failure is logged
/// (the record stands either way).
pub async fn after_record_issued(
    state: &AppState,
    room: &RoomId,
    member: &Member,
    kind: RecordKind,
) {
    if kind != RecordKind::DiagnosisReport {
        return;
    }
    let Some(account) = &member.account else {
        return;
    };
    let steps = service(state)
        .report_issued(room, account, now_unix())
        .await;
    announce_steps(state, room, account, steps, "its report").await;
}

/// After a patient was admitted to `room` by `account` (`http/progress.rs`): the request still
/// scheduled starts. A failure is logged: the admission stands, and Start can still be pressed.
pub async fn after_patient_admitted(state: &AppState, room: &RoomId, account: &UserId) {
    let step = service(state)
        .patient_admitted(room, account, now_unix())
        .await;
    announce_steps(state, room, account, step.map(Vec::from_iter), "its start").await;
}

/// After `account` ended the consultation in `room`: the request whose report was issued
/// closes. A failure is logged: the consultation has ended, and Close can still be pressed.
pub async fn after_consultation_ended(state: &AppState, room: &RoomId, account: &UserId) {
    let step = service(state)
        .consultation_ended(room, account, now_unix())
        .await;
    announce_steps(state, room, account, step.map(Vec::from_iter), "its close").await;
}

/// Steps taken on `account`'s behalf by what happened in `room`: audited, shown in the
/// consoles and sent to webhooks like the steps taken over API; a failure (`what` could not be
/// recorded) is logged, as what happened in the room stands either way.
async fn announce_steps(
    state: &AppState,
    room: &RoomId,
    account: &UserId,
    steps: Result<Vec<Stepped>, ReferralServiceError>,
    what: &'static str,
) {
    let steps = match steps {
        Ok(steps) if steps.is_empty() => return,
        Ok(steps) => steps,
        Err(e) => {
            tracing::warn!(room = %room, error = %e, what, "a consultation request's step could not be recorded");
            return;
        }
    };
    for stepped in &steps {
        audit_step(state, stepped).await;
        super::events::referral_step(state, &stepped.after, account, false).await;
    }
    state.webhooks.wake();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::referral::ReferralError;
    use axum::response::IntoResponse;

    fn status(e: ReferralServiceError) -> u16 {
        ApiError::from(e).into_response().status().as_u16()
    }

    #[test]
    fn refusals_keep_their_codes_and_statuses() {
        assert_eq!(
            status(ReferralServiceError::Refused(ReferralError::NotNow {
                state: "cancelled",
                action: "accept"
            })),
            409
        );
        assert_eq!(status(ReferralServiceError::Conflict), 409);
        assert!(matches!(
            ApiError::from(ReferralServiceError::Conflict),
            ApiError::Referral {
                code: "conflict",
                ..
            }
        ));
        assert_eq!(
            status(ReferralServiceError::Refused(ReferralError::WrongSide {
                action: "accept",
                side: Side::Requester
            })),
            403
        );
        assert_eq!(
            status(ReferralServiceError::Refused(ReferralError::SlotInPast)),
            400
        );
        assert_eq!(status(ReferralServiceError::NotInDepartment), 400);
        assert_eq!(status(ReferralServiceError::NotVisible), 404);
        assert_eq!(status(ReferralServiceError::NotAClinician), 403);
        match ApiError::from(ReferralServiceError::Refused(ReferralError::SlotInPast)) {
            ApiError::Referral { code, message, .. } => {
                assert_eq!(code, "slot_in_past");
                assert_eq!(message, "that time has passed");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn step_bodies() {
        let b = |s: &str| Bytes::from(s.to_owned());
        assert_eq!(
            parse_request("accept", &b("")).unwrap(),
            Request::Accept { time: None }
        );
        assert_eq!(
            parse_request("accept", &b(r#"{"start": 10, "minutes": 30}"#)).unwrap(),
            Request::Accept {
                time: Some(Time {
                    start: 10,
                    minutes: 30
                })
            }
        );
        assert!(parse_request("accept", &b(r#"{"start": 10}"#)).is_err());
        assert!(parse_request("propose", &b("")).is_err());
        assert_eq!(
            parse_request("cancel", &b("{}")).unwrap(),
            Request::Cancel {
                reason: String::new()
            }
        );
        assert_eq!(
            parse_request("forward", &b("")).unwrap(),
            Request::Forward { specialist: None }
        );
        assert!(matches!(
            parse_request("issue_report", &b("")),
            Err(ApiError::NotFound)
        ));
    }
}
