//! The clinicians' JSON API (docs/protocol.md, "HTTP API"): who is signed in (the
//! [`Clinician`] extractor), rooms, invites. Signing in and out, renewal and passwords are in
//! `account.rs`.

use axum::extract::rejection::JsonRejection;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::header::HOST;
use axum::http::request::Parts;
use axum::{Json, extract::FromRequest};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::member::bearer;
use crate::audit::{Action, Actor, AuditEvent};
use crate::domain::clock::now_unix;
use crate::domain::ids::{InviteId, RoomId, SessionId, UserId};
use crate::domain::organisation::RoomRelation;
use crate::domain::referral::Slot;
use crate::domain::role::{AccountRole, Role};
use crate::sessions::{Authenticated, Refusal, SessionError};
use crate::storage::{RoomRecord, RoomStatus, SessionRow, StorageError, User};
use crate::wire::RoomView;

const MAX_TITLE_CHARS: usize = 200;
const MAX_PATIENT_REF_CHARS: usize = 100;
const MAX_ROOMS_LISTED: i64 = 200;

/// JSON body extractor whose rejections use the API's error shape.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| ApiJson(v))
            .map_err(|e| ApiError::Invalid(e.body_text()))
    }
}

/// Query-string extractor whose rejections use the API's error shape (axum's own answers a
/// malformed query with plain text).
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::Invalid(e.body_text()))
    }
}

/// A signed-in clinician, and the live session the request came with.
pub struct Clinician(pub User, pub SessionRow);

impl Clinician {
    pub fn actor(&self) -> Actor {
        Actor::User(self.0.id.clone(), self.0.role)
    }

    /// Refuses what this account's role may not do (`attempted`): audited as `access.denied`
    /// with `reason` (a signed-in account reaching for what its role does not allow may be
    /// misuse), and answered 403.
    pub async fn refuse(
        &self,
        state: &AppState,
        reason: &'static str,
        attempted: &'static str,
    ) -> ApiError {
        let event = AuditEvent::new(self.actor(), Action::AccessDenied)
            .detail(json!({"attempted": attempted}));
        state.audit.refused(self.0.id.as_str(), reason, event).await;
        ApiError::Forbidden
    }

    /// As [`Clinician::refuse`], for something in `room` (the entry names it).
    pub async fn refuse_in_room(
        &self,
        state: &AppState,
        room: &RoomId,
        reason: &'static str,
        attempted: &'static str,
    ) -> ApiError {
        let event = AuditEvent::new(self.actor(), Action::AccessDenied)
            .room(room)
            .detail(json!({"attempted": attempted}));
        state.audit.refused(self.0.id.as_str(), reason, event).await;
        ApiError::Forbidden
    }

    /// How the room stands to this account: same institution, place on its care team.
    pub async fn relation(
        &self,
        state: &AppState,
        room: &RoomRecord,
    ) -> Result<RoomRelation, ApiError> {
        let care_team = state.db.care_team_member(&room.id, &self.0.id).await?;
        Ok(RoomRelation {
            same_institution: room.institution_id == self.0.institution_id,
            care_team: care_team.map(|m| m.role),
        })
    }
}

impl FromRequestParts<AppState> for Clinician {
    type Rejection = ApiError;

    /// Checks the bearer token and its session (`crate::sessions`). A genuine token whose
    /// session has ended is refused like any other, and audited: it may be a stolen copy.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(ApiError::Unauthenticated)?;
        match state.sessions.authenticate(token, now_unix()).await {
            // A session opened while its account was being disabled: the account decides.
            Ok(Authenticated { user, .. }) if user.disabled_at.is_some() => {
                Err(ApiError::Unauthenticated)
            }
            Ok(Authenticated { user, session }) => Ok(Clinician(user, session)),
            Err(SessionError::Refused {
                session,
                owner,
                reason,
            }) => {
                let client = parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| client_pseudonym(state, c.0.ip()));
                audit_refused(state, &session, owner, reason, client).await;
                Err(ApiError::Unauthenticated)
            }
            Err(SessionError::Invalid) => {
                // Malformed, forged or of another kind: tampering, or a client's bug; on the
                // record, rate-limited per client address (pseudonymous).
                let client = parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| client_pseudonym(state, c.0.ip()))
                    .unwrap_or_default();
                let event = AuditEvent::new(Actor::Unknown, Action::AccessDenied)
                    .detail(json!({"client": client, "token": "session"}));
                state
                    .audit
                    .refused(&client, "invalid_session_token", event)
                    .await;
                Err(ApiError::Unauthenticated)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A client address as the audit trail and the sessions table keep it: a keyed pseudonym, of
/// the address as the throttles count it (an IPv6 client by its /64). One subscriber holds a
/// whole /64: pseudonyms of its every address would let one client pass for millions, each
/// with its own share of the refusal log (and keep less of the address besides).
pub fn client_pseudonym(state: &AppState, ip: IpAddr) -> String {
    state
        .key
        .pseudonym(crate::auth::client_key(ip).to_string().as_bytes())
}

/// Records that a genuine session token was presented after its session ended.
pub async fn audit_refused(
    state: &AppState,
    session: &SessionId,
    owner: Option<(UserId, AccountRole)>,
    reason: Refusal,
    client: Option<String>,
) {
    tracing::info!(session = %session, reason = reason.as_str(), "session token refused");
    let actor = match owner {
        Some((id, role)) => Actor::User(id, role),
        None => Actor::Unknown,
    };
    // Rate-limited per session, so a replayed stolen token cannot flood the trail.
    state
        .audit
        .refused(
            session.as_str(),
            reason.as_str(),
            AuditEvent::new(actor, Action::SessionRefused)
                .object("session", session)
                .detail(json!({"client": client})),
        )
        .await;
}

#[derive(Serialize)]
pub struct UserView<'a> {
    id: &'a UserId,
    username: &'a str,
    display_name: &'a str,
    role: AccountRole,
}

pub fn user_view(u: &User) -> UserView<'_> {
    UserView {
        id: &u.id,
        username: &u.username,
        display_name: &u.display_name,
        role: u.role,
    }
}

/// The signed-in account with its place in the network and its profile.
pub async fn me(
    State(state): State<AppState>,
    Clinician(user, _): Clinician,
) -> Result<Json<Value>, ApiError> {
    let names = super::organisation::Names::of(&state, [&user]).await?;
    let mut view = json!(names.account(&user));
    // Whether a PIN is set, for the console (never the hash); the directory does not say.
    view["signing_pin"] = json!(user.signing_pin_hash.is_some());
    Ok(Json(view))
}

/// Most drafts the day view lists.
const MAX_PENDING_DRAFTS: i64 = 200;

/// `GET /me/drafts`: what is left to sign in the caller's live consultations (drafts of their
/// care teams), oldest first; doctors and specialists only.
pub async fn pending_drafts(
    State(state): State<AppState>,
    who: Clinician,
) -> Result<Json<Value>, ApiError> {
    if !who.0.role.is_clinician() {
        return Err(who.refuse(&state, "not_a_clinician", "list_drafts").await);
    }
    let drafts = state
        .db
        .pending_drafts(&who.0.id, MAX_PENDING_DRAFTS)
        .await?;
    let views: Vec<crate::wire::PendingDraftView> = drafts.iter().map(Into::into).collect();
    Ok(Json(json!({ "drafts": views })))
}

#[derive(Deserialize)]
pub struct CreateRoomBody {
    title: String,
    #[serde(default)]
    patient_ref: Option<String>,
    /// Whether those who come with an invitation wait to be admitted (by default they do).
    #[serde(default)]
    waiting_room: Option<bool>,
    /// When it takes place (a follow-up visit booked ahead): patients' invitations are then
    /// valid around this time (docs/protocol.md, "Invitations").
    #[serde(default)]
    slot: Option<SlotBody>,
}

#[derive(Deserialize)]
pub struct SlotBody {
    /// Unix seconds.
    start: i64,
    minutes: u32,
}

pub async fn create_room(
    State(state): State<AppState>,
    who: Clinician,
    ApiJson(body): ApiJson<CreateRoomBody>,
) -> Result<(StatusCode, Json<RoomView>), ApiError> {
    let user = &who.0;
    if !user.role.may_manage_rooms() {
        return Err(who
            .refuse(&state, "may_not_create_rooms", "create_room")
            .await);
    }
    let title = body.title.trim();
    // Both are shown on every console and printed on the summary: nothing that hides or
    // reorders what is shown.
    let hides = |t: &str| t.chars().any(crate::domain::text::is_hiding);
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS || hides(title) {
        return Err(ApiError::Invalid(format!(
            "title must be 1 to {MAX_TITLE_CHARS} printable characters, with nothing that hides or reorders text"
        )));
    }
    let patient_ref = body
        .patient_ref
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if patient_ref.is_some_and(|p| p.chars().count() > MAX_PATIENT_REF_CHARS || hides(p)) {
        return Err(ApiError::Invalid(format!(
            "patient_ref must be at most {MAX_PATIENT_REF_CHARS} printable characters, with nothing that hides or reorders text"
        )));
    }
    let slot = body.slot.as_ref().map(checked_slot).transpose()?;
    let room = state
        .db
        .create_room_with(
            title,
            patient_ref,
            &user.id,
            body.waiting_room.unwrap_or(true),
            slot,
        )
        .await?;
    state
        .audit
        .record_or_log(
            AuditEvent::new(who.actor(), Action::RoomCreated)
                .room(&room.id)
                .object("room", &room.id),
        )
        .await;
    tracing::info!(room = %room.id, user = %user.id, "room created");
    Ok((StatusCode::CREATED, Json(RoomView::from(&room))))
}

/// Most days one booked listing spans (a day view, a week ahead).
const MAX_BOOKED_SPAN_S: i64 = 31 * 86_400;

#[derive(Deserialize)]
pub struct RoomsQuery {
    /// With `booked_to`: only the consultations booked in `[booked_from, booked_to)`, Unix
    /// seconds, in order of time (a day view), however many others there are.
    #[serde(default)]
    booked_from: Option<i64>,
    #[serde(default)]
    booked_to: Option<i64>,
}

pub async fn list_rooms(
    State(state): State<AppState>,
    who: Clinician,
    ApiQuery(q): ApiQuery<RoomsQuery>,
) -> Result<Json<Value>, ApiError> {
    let booked = match (q.booked_from, q.booked_to) {
        (None, None) => None,
        (Some(from), Some(to)) if from < to && to - from <= MAX_BOOKED_SPAN_S => Some((from, to)),
        _ => {
            return Err(ApiError::Invalid(format!(
                "`booked_from` and `booked_to` come together, the first before the second, at \
                 most {} days apart",
                MAX_BOOKED_SPAN_S / 86_400
            )));
        }
    };
    let rooms = visible_rooms(&state, &who, booked).await?;
    let ids: Vec<RoomId> = rooms.iter().map(|r| r.id.clone()).collect();
    let roles = state.db.care_team_roles(&who.0.id, &ids).await?;
    let referred = state.db.rooms_from_referrals(&ids).await?;
    let views: Vec<Value> = rooms
        .iter()
        .map(|r| {
            let role = roles
                .iter()
                .find(|(id, _)| id == &r.id)
                .map(|(_, role)| *role);
            room_json(&state, &who, r, role, referred.contains(&r.id))
        })
        .collect();
    Ok(Json(json!({ "rooms": views })))
}

/// A room as a clinician sees it, with their place in it: their care-team role (`my_role`,
/// null when they are not on it), whether they run it (`manages`), and how many wait in its
/// waiting room now and since when the longest has (`waiting`, `waiting_since`), and whether a
/// consultation request opened it (`from_referral`: its time is then the request's to move).
fn room_json(
    state: &AppState,
    who: &Clinician,
    room: &RoomRecord,
    care_team: Option<Role>,
    from_referral: bool,
) -> Value {
    let relation = RoomRelation {
        same_institution: room.institution_id == who.0.institution_id,
        care_team,
    };
    let mut v = json!(RoomView::from(room));
    v["my_role"] = json!(care_team);
    v["manages"] = json!(who.0.role.may_manage_room(relation));
    let waiting = state.notifications.waiting_in(&room.id);
    v["waiting"] = json!(waiting.map_or(0, |w| w.count));
    v["waiting_since"] = json!(waiting.map(|w| w.since));
    v["from_referral"] = json!(from_referral);
    v
}

async fn visible_rooms(
    state: &AppState,
    who: &Clinician,
    booked: Option<(i64, i64)>,
) -> Result<Vec<RoomRecord>, ApiError> {
    Ok(if who.0.role.sees_all_rooms() {
        state.db.list_rooms(booked, MAX_ROOMS_LISTED).await?
    } else if who.0.role.may_see_room(RoomRelation {
        same_institution: true,
        care_team: None,
    }) {
        state
            .db
            .list_rooms_for(&who.0.id, &who.0.institution_id, booked, MAX_ROOMS_LISTED)
            .await?
    } else {
        Vec::new()
    })
}

fn parse_room_id(id: &str) -> Result<RoomId, ApiError> {
    RoomId::parse(id).ok_or(ApiError::NotFound)
}

/// The room, if this clinician may see it (others' rooms are simply not found), and how it
/// stands to them.
pub async fn room_for(
    state: &AppState,
    who: &Clinician,
    id: &str,
) -> Result<(RoomRecord, RoomRelation), ApiError> {
    let id = parse_room_id(id)?;
    let room = state.db.room(&id).await?.ok_or(ApiError::NotFound)?;
    let relation = who.relation(state, &room).await?;
    if !who.0.role.may_see_room(relation) {
        // Another institution's consultation: not found to them, and on the record.
        let event = AuditEvent::new(who.actor(), Action::AccessDenied).room(&room.id);
        state
            .audit
            .refused(who.0.id.as_str(), "room_not_visible", event)
            .await;
        return Err(ApiError::NotFound);
    }
    Ok((room, relation))
}

/// The room, if this clinician manages it (invites, care team, ending); seeing it without
/// managing it is refused and audited.
pub async fn managed_room(
    state: &AppState,
    who: &Clinician,
    id: &str,
    attempted: &'static str,
) -> Result<RoomRecord, ApiError> {
    let (room, relation) = room_for(state, who, id).await?;
    if !who.0.role.may_manage_room(relation) {
        return Err(who
            .refuse_in_room(state, &room.id, "room_not_managed", attempted)
            .await);
    }
    Ok(room)
}

pub async fn get_room(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (room, relation) = room_for(&state, &who, &id).await?;
    let referred = state
        .db
        .rooms_from_referrals(std::slice::from_ref(&room.id))
        .await?
        .contains(&room.id);
    Ok(Json(room_json(
        &state,
        &who,
        &room,
        relation.care_team,
        referred,
    )))
}

pub async fn revoke_invite(
    State(state): State<AppState>,
    who: Clinician,
    Path((id, invite)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let room = managed_room(&state, &who, &id, "invite.revoke").await?;
    let room_id = room.id;
    let invite_id = InviteId::parse(&invite).ok_or(ApiError::NotFound)?;
    state.db.revoke_invite(&room_id, &invite_id).await?;
    // Whoever came with it leaves the live room now (their access token and resume token die
    // with their presence there).
    let removed = state.rooms.invite_revoked(&room_id, &invite_id).await;
    state
        .audit
        .record_or_log(
            AuditEvent::new(who.actor(), Action::InviteRevoked)
                .room(&room_id)
                .object("invite", &invite_id)
                .detail(json!({"participants_removed": removed})),
        )
        .await;
    tracing::info!(room = %room_id, invite = %invite_id, "invite revoked");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn end_room(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let room = managed_room(&state, &who, &id, "room.end").await?;
    let room_id = room.id;
    state.rooms.end(&room_id).await?;
    // The worst moment to die: the end is committed and nothing after it has run (this audit
    // entry, the answer, the delivery task's wake-up).
    abort_point("room_ended");
    state
        .audit
        .record_or_log(
            AuditEvent::new(who.actor(), Action::RoomEnded)
                .room(&room_id)
                .object("room", &room_id),
        )
        .await;
    tracing::info!(room = %room_id, user = %who.0.id, "room ended from the API");
    super::referrals::after_consultation_ended(&state, &room_id, &who.0.id).await;
    consultation_ended(&state);
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/v1/rooms/{id}/slot`: moves a consultation to another time (or gives one booked
/// without a time its time), with the windows of the patients' invitations made for the old
/// time. A consultation request's room moves with the request's agreed time instead.
pub async fn reschedule_room(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SlotBody>,
) -> Result<Json<Value>, ApiError> {
    let room = managed_room(&state, &who, &id, "room.reschedule").await?;
    if room.status == RoomStatus::Ended {
        return Err(ApiError::RoomEnded);
    }
    let slot = checked_slot(&body)?;
    let moved = match state.db.reschedule_room(&room.id, slot).await {
        Ok(moved) => moved,
        Err(StorageError::NotFound) => return Err(ApiError::RoomEnded),
        Err(StorageError::Conflict) => {
            return Err(ApiError::Referral {
                status: StatusCode::CONFLICT,
                code: "referral_room",
                message: "this consultation comes from a consultation request: agree the new \
                          time on the request"
                    .into(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let slot_json = |(start, minutes): (i64, i64)| json!({"start": start, "minutes": minutes});
    state
        .audit
        .record_or_log(
            AuditEvent::new(who.actor(), Action::RoomRescheduled)
                .room(&room.id)
                .object("room", &room.id)
                .detail(json!({
                    "from": moved.from.map(slot_json),
                    "to": slot_json((slot.start(), i64::from(slot.minutes()))),
                    "invitations_moved": moved.invitations_moved,
                })),
        )
        .await;
    tracing::info!(room = %room.id, user = %who.0.id, "consultation rescheduled");
    state
        .rooms
        .rescheduled(&room.id, (slot.start(), i64::from(slot.minutes())))
        .await;
    state.notifications.tell_care_team(
        &room.id,
        crate::notifications::Event::ConsultationRescheduled {
            room_id: room.id.clone(),
        },
    );
    let room = state.db.room(&room.id).await?.ok_or(ApiError::NotFound)?;
    let role = state
        .db
        .care_team_member(&room.id, &who.0.id)
        .await?
        .map(|m| m.role);
    Ok(Json(room_json(&state, &who, &room, role, false)))
}

/// A time as a client gives it, checked with the rules (and codes) of a referral's time:
/// `slot_in_past`, `slot_too_far`, `bad_duration`.
fn checked_slot(s: &SlotBody) -> Result<Slot, ApiError> {
    Slot::new(s.start, s.minutes, now_unix()).map_err(|e| ApiError::Referral {
        status: StatusCode::BAD_REQUEST,
        code: e.code(),
        message: e.to_string(),
    })
}

/// The room's end was committed with its `consultation.ended` webhook event (see
/// `storage::Change::apply_all`): the delivery task is told to look now rather than at its
/// next poll.
pub(super) fn consultation_ended(state: &AppState) {
    state.webhooks.wake();
}

/// Crash tests only (tests/crash.rs): with `HUIZHEN_TEST_ABORT_AT` set to `point`, the process
/// aborts there, as a crash would (nothing flushed, nothing answered). Unset, it does nothing.
pub(super) fn abort_point(point: &str) {
    if std::env::var_os("HUIZHEN_TEST_ABORT_AT").is_some_and(|v| v == point) {
        std::process::abort();
    }
}

/// `public_url`, or the origin the client used to reach us.
pub(super) fn public_base(state: &AppState, headers: &axum::http::HeaderMap) -> String {
    let configured = state.config.server.public_url.trim_end_matches('/');
    if !configured.is_empty() {
        return configured.to_owned();
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| state.config.server.listen.to_string());
    format!("https://{host}")
}
