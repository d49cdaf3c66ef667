//! Invitations for patients and observers (docs/protocol.md, "Invitations"): created with a
//! window (from the consultation's slot), a number of uses, a label and a short code; listed
//! with their state and who used them; a new code; the QR code and a printable page; and the
//! code redeemed, without a session, under the code throttle. The rules are
//! `domain::invitation`'s; uses are counted at `join` (`signaling/invitation.rs`).

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::api::{ApiJson, ApiQuery, Clinician, client_pseudonym, managed_room, public_base};
use super::error::ApiError;
use crate::audit::{Action, Actor, AuditEvent, Outcome};
use crate::auth::{AuthError, Claims, TokenKind};
use crate::domain::clock::now_unix;
use crate::domain::ids::{InviteId, RoomId};
use crate::domain::invitation::{
    self, CodeError, InviteCode, InviteState, MAX_LINK_INVITES_PER_ROOM, check_max_uses,
    clock_text, default_max_uses, slot_window,
};
use crate::domain::role::Role;
use crate::storage::{Invite, InviteUse, NewInvite, RoomRecord, RoomStatus, StorageError};

/// Draws of a fresh code before giving up (a collision among 10^9 codes is rare; eight in a
/// row means something else is wrong).
const CODE_DRAWS: usize = 8;
/// The longest text taken as a code before it is even read.
const MAX_CODE_INPUT: usize = 64;
/// The header that names the code a printed page shows (`…/print`).
const CODE_HEADER: &str = "x-invitation-code";

fn refusal(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Invitation {
        status,
        code,
        message: message.into(),
        retry_after: None,
    }
}

/// A signed join token for a link invitation: bound to its row, so signing again is equivalent
/// (revoking, using up or expiring the row ends every token of it).
fn sign_token(state: &AppState, invite: &Invite) -> String {
    state.key.sign(&Claims {
        kind: TokenKind::Invite,
        sub: invite.id.to_string(),
        room: Some(invite.room_id.clone()),
        role: Some(invite.role),
        sid: None,
        exp: invite.expires_at,
        nonce: rand::random(),
    })
}

/// An invitation as its list shows it; `token` and `url` for one still usable.
fn invite_json(
    state: &AppState,
    base: &str,
    invite: &Invite,
    uses: &[InviteUse],
    now: i64,
) -> Value {
    let invite_state = invite.validity().state(now);
    let used_by: Vec<Value> = uses
        .iter()
        .filter(|u| u.invite_id == invite.id)
        .map(|u| {
            json!({
                "participant_id": u.participant_id,
                "name": u.name,
                "role": u.role,
                "at": u.used_at_ms / 1000,
                "reload": !u.counted,
            })
        })
        .collect();
    let mut v = json!({
        "invite_id": invite.id,
        "role": invite.role,
        // The role the care team last gave its holder (null: never changed): what a new join
        // with it comes in with.
        "role_now": invite.role_now,
        "label": invite.label,
        "state": invite_state.as_str(),
        "created_at": invite.created_at,
        "not_before": invite.not_before,
        "expires_at": invite.expires_at,
        "max_uses": invite.max_uses,
        "uses": invite.uses,
        "used_by": used_by,
        "revoked_at": invite.revoked_at,
        "has_code": invite.has_code,
    });
    if invite_state.is_live() {
        let token = sign_token(state, invite);
        v["url"] = json!(format!("{base}/join#{token}"));
        v["token"] = json!(token);
    }
    v
}

#[derive(Deserialize)]
pub struct InviteBody {
    role: String,
    #[serde(default)]
    expires_in_minutes: Option<u64>,
    #[serde(default)]
    max_uses: Option<i64>,
    #[serde(default)]
    label: Option<String>,
}

/// `POST /rooms/{id}/invites`.
pub async fn create(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<InviteBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let room = managed_room(&state, &who, &id, "invite.issue").await?;
    if room.status == RoomStatus::Ended {
        return Err(ApiError::RoomEnded);
    }
    let role = Role::parse(&body.role)
        .filter(|r| !r.is_clinician())
        .ok_or_else(|| {
            ApiError::Invalid(
                "invite links are for patients, guests and observers (role patient, guest or \
                 observer); clinicians join as their own accounts: add them to the care team"
                    .into(),
            )
        })?;
    let max_uses = match body.max_uses {
        Some(n) => Some(check_max_uses(n).map_err(ApiError::Invalid)?),
        None => default_max_uses(role),
    };
    let label = invitation::label(body.label.as_deref())
        .map_err(|e| ApiError::Invalid(format!("label: {e}")))?;
    let (not_before, expires_at) = window(&state, &room.id, body.expires_in_minutes).await?;
    let mut stored = None;
    for (code, hash) in fresh_codes(&state) {
        let new = NewInvite {
            room_id: &room.id,
            role,
            created_by: &who.0.id,
            not_before,
            expires_at,
            max_uses,
            label: label.as_deref(),
            code_hash: &hash,
        };
        match state
            .db
            .create_link_invite(&new, MAX_LINK_INVITES_PER_ROOM)
            .await
        {
            Ok(Some(invite)) => {
                stored = Some((invite, code));
                break;
            }
            Ok(None) => {
                // Issuing hundreds of links is a script, not a clinic: on the record.
                let event = AuditEvent::new(who.actor(), Action::InviteIssued)
                    .room(&room.id)
                    .detail(json!({"limit": "invites_per_room"}));
                state
                    .audit
                    .refused(who.0.id.as_str(), "limit_reached", event)
                    .await;
                return Err(ApiError::LimitReached {
                    limit: "invites_per_room",
                    message: format!(
                        "limit reached: a consultation holds at most {MAX_LINK_INVITES_PER_ROOM} \
                         invitation links (revoked and expired ones included)"
                    ),
                });
            }
            Err(StorageError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let (invite, code) = stored.ok_or_else(no_free_code)?;
    let base = public_base(&state, &headers);
    state
        .audit
        .record(
            AuditEvent::new(who.actor(), Action::InviteIssued)
                .room(&room.id)
                .object("invite", &invite.id)
                .detail(json!({
                    "role": role,
                    "not_before": not_before,
                    "expires_at": expires_at,
                    "max_uses": max_uses,
                })),
        )
        .await?;
    tracing::info!(room = %room.id, invite = %invite.id, role = role.as_str(), "invite issued");
    let mut answer = invite_json(&state, &base, &invite, &[], now_unix());
    answer["code"] = json!(code.display());
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `(not_before, expires_at)` of a new invitation: `expires_in_minutes` from now when given;
/// else around the room's slot when it has one; else the default lifetime from now.
async fn window(
    state: &AppState,
    room: &RoomId,
    expires_in_minutes: Option<u64>,
) -> Result<(Option<i64>, i64), ApiError> {
    let rooms = &state.config.rooms;
    let now = now_unix();
    let lifetime = |minutes: u64| {
        if minutes == 0 || minutes > rooms.invite_max_minutes {
            return Err(ApiError::Invalid(format!(
                "expires_in_minutes must be 1 to {}",
                rooms.invite_max_minutes
            )));
        }
        Ok((None, now + minutes as i64 * 60))
    };
    if let Some(minutes) = expires_in_minutes {
        return lifetime(minutes);
    }
    let Some((start, minutes)) = state.db.room_slot(room).await? else {
        return lifetime(rooms.invite_default_minutes);
    };
    let (opens, closes) = slot_window(
        start,
        minutes,
        rooms.invite_open_before_minutes,
        rooms.invite_close_after_minutes,
    );
    if closes <= now {
        return Err(refusal(
            StatusCode::CONFLICT,
            "slot_passed",
            "this consultation's time slot has passed; give the invitation a lifetime \
             (expires_in_minutes) or agree a new time",
        ));
    }
    Ok((Some(opens), closes))
}

/// Fresh codes with their keyed hashes, to try one after another while a hash is taken.
fn fresh_codes(state: &AppState) -> impl Iterator<Item = (InviteCode, String)> + '_ {
    (0..CODE_DRAWS).map(|_| {
        let code = InviteCode::generate();
        let hash = state.key.code_hash(code.digits());
        (code, hash)
    })
}

fn no_free_code() -> ApiError {
    ApiError::Internal("no free invitation code".into())
}

/// `GET /rooms/{id}/invites`: every link invitation of the room with its state and uses.
pub async fn list(
    State(state): State<AppState>,
    who: Clinician,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let room = managed_room(&state, &who, &id, "invite.list").await?;
    let invites = state.db.link_invites(&room.id).await?;
    let uses = state.db.invite_uses(&room.id).await?;
    let base = public_base(&state, &headers);
    let now = now_unix();
    let list: Vec<Value> = invites
        .iter()
        .map(|i| invite_json(&state, &base, i, &uses, now))
        .collect();
    Ok(Json(json!({ "invites": list })))
}

/// A link invitation of a room this clinician manages; seats and other rooms' invitations are
/// not found.
async fn managed_invite(
    state: &AppState,
    who: &Clinician,
    room: &str,
    invite: &str,
    attempted: &'static str,
) -> Result<(RoomRecord, Invite), ApiError> {
    let room = managed_room(state, who, room, attempted).await?;
    let id = InviteId::parse(invite).ok_or(ApiError::NotFound)?;
    let invite = state
        .db
        .invite(&id)
        .await?
        .filter(|i| i.room_id == room.id && i.account.is_none())
        .ok_or(ApiError::NotFound)?;
    Ok((room, invite))
}

/// Refuses an invitation that can no longer be used, or whose consultation has ended: its
/// code, QR code and page are not handed out.
fn still_live(room: &RoomRecord, invite: &Invite) -> Result<(), ApiError> {
    if room.status == RoomStatus::Ended {
        return Err(ApiError::RoomEnded);
    }
    let (code, what) = match invite.validity().state(now_unix()) {
        InviteState::Active | InviteState::NotYet => return Ok(()),
        InviteState::Revoked => ("invite_revoked", "was revoked"),
        InviteState::Expired => ("invite_expired", "has expired"),
        InviteState::UsedUp => ("invite_used_up", "has been used as often as it allows"),
    };
    Err(refusal(
        StatusCode::CONFLICT,
        code,
        format!("this invitation {what}; create a new one"),
    ))
}

/// `POST /rooms/{id}/invites/{invite}/code`: a new short code; the old one stops working.
pub async fn new_code(
    State(state): State<AppState>,
    who: Clinician,
    Path((room, invite)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (room, invite) = managed_invite(&state, &who, &room, &invite, "invite.code").await?;
    still_live(&room, &invite)?;
    let mut replaced = None;
    for (code, hash) in fresh_codes(&state) {
        match state.db.set_invite_code(&room.id, &invite.id, &hash).await {
            Ok(()) => {
                replaced = Some(code);
                break;
            }
            Err(StorageError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let code = replaced.ok_or_else(no_free_code)?;
    state
        .audit
        .record(
            AuditEvent::new(who.actor(), Action::CodeReplaced)
                .room(&room.id)
                .object("invite", &invite.id),
        )
        .await?;
    tracing::info!(room = %room.id, invite = %invite.id, "invitation code replaced");
    Ok(Json(
        json!({"invite_id": invite.id, "code": code.display()}),
    ))
}

/// The QR code of a join link, as an SVG document (no XML prolog: it is inlined too).
fn qr_svg(url: &str) -> Result<String, ApiError> {
    let code = qrcode::QrCode::with_error_correction_level(url.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| ApiError::Internal(format!("QR code: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    Ok(match svg.find("<svg") {
        Some(i) => svg[i..].to_owned(),
        None => svg,
    })
}

/// `GET /rooms/{id}/invites/{invite}/qr.svg`: the QR code of the invitation's join link, with
/// a freshly signed token.
pub async fn qr(
    State(state): State<AppState>,
    who: Clinician,
    Path((room, invite)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (room, invite) = managed_invite(&state, &who, &room, &invite, "invite.qr").await?;
    still_live(&room, &invite)?;
    let url = format!(
        "{}/join#{}",
        public_base(&state, &headers),
        sign_token(&state, &invite)
    );
    let mut response = qr_svg(&url)?.into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'self'"),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub struct PrintQuery {
    /// Minutes east of UTC the times are written in (the browser's: 480 in China).
    #[serde(default)]
    utc_offset_minutes: i32,
}

/// `GET /rooms/{id}/invites/{invite}/print`: a printable page, in Chinese and English: the
/// consultation, the window, the code in large digits (when the request names it in
/// `X-Invitation-Code`: codes are stored hashed), the QR code and how to use them.
pub async fn print(
    State(state): State<AppState>,
    who: Clinician,
    Path((room, invite)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<PrintQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (room, invite) = managed_invite(&state, &who, &room, &invite, "invite.print").await?;
    still_live(&room, &invite)?;
    if !(-720..=840).contains(&query.utc_offset_minutes) {
        return Err(ApiError::Invalid(
            "utc_offset_minutes must be -720 to 840".into(),
        ));
    }
    let code = match headers.get(CODE_HEADER) {
        None => None,
        Some(raw) => {
            let mismatch = || {
                refusal(
                    StatusCode::CONFLICT,
                    "code_mismatch",
                    "this is not the invitation's current code; ask for a new code",
                )
            };
            let code = raw
                .to_str()
                .ok()
                .and_then(|s| InviteCode::parse(s).ok())
                .ok_or_else(mismatch)?;
            let owner = state
                .db
                .invite_by_code(&state.key.code_hash(code.digits()))
                .await?;
            if owner.is_none_or(|o| o.id != invite.id) {
                return Err(mismatch());
            }
            Some(code)
        }
    };
    let base = public_base(&state, &headers);
    let url = format!("{base}/join#{}", sign_token(&state, &invite));
    let page = print_page(&PrintPage {
        title: &room.title,
        label: invite.label.as_deref(),
        role: invite.role,
        not_before: invite.not_before,
        expires_at: invite.expires_at,
        max_uses: invite.max_uses,
        offset: query.utc_offset_minutes,
        code: code.as_ref(),
        qr: &qr_svg(&url)?,
        code_page: &format!("{base}/code"),
    });
    let mut response = page.into_response();
    let h = response.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(csp) = HeaderValue::from_str(&PRINT_CSP) {
        h.insert(CONTENT_SECURITY_POLICY, csp);
    }
    Ok(response)
}

/// The printed page's only style; the CSP admits exactly it (by hash), nothing else.
const PRINT_STYLE: &str = "\
@page{size:A4;margin:14mm}\
body{font-family:system-ui,\"Noto Sans CJK SC\",\"PingFang SC\",\"Microsoft YaHei\",sans-serif;color:#000;background:#fff;margin:0}\
main{max-width:180mm;margin:0 auto}\
h1{font-size:20pt;margin:0 0 4mm;text-align:center}\
h2{font-size:13pt;margin:0 0 2mm}\
.title{font-size:15pt;text-align:center;margin:0 0 6mm}\
.cols{display:grid;grid-template-columns:1fr 1fr;gap:8mm;margin:0 0 6mm}\
.code{text-align:center;border:2px solid #000;border-radius:4mm;padding:4mm;margin:0 0 6mm}\
.code p{margin:0}\
.digits{font-size:40pt;font-weight:700;letter-spacing:2mm;font-variant-numeric:tabular-nums}\
.qr{text-align:center;margin:0 0 6mm}\
.qr svg{width:70mm;height:70mm}\
ol{margin:0;padding-left:6mm}\
li{margin:0 0 1mm}\
.url{font-family:monospace;font-size:12pt;word-break:break-all}";

static PRINT_CSP: LazyLock<String> = LazyLock::new(|| {
    use sha2::Digest;
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(PRINT_STYLE));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'self'"
    )
});

struct PrintPage<'a> {
    title: &'a str,
    label: Option<&'a str>,
    role: Role,
    not_before: Option<i64>,
    expires_at: i64,
    max_uses: Option<i64>,
    offset: i32,
    code: Option<&'a InviteCode>,
    qr: &'a str,
    code_page: &'a str,
}

/// Text for HTML: `&`, `<`, `>`, `"` and `'` escaped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn print_page(p: &PrintPage<'_>) -> String {
    let until = clock_text(p.expires_at, p.offset);
    let (when_zh, when_en) = match p.not_before {
        Some(from) => {
            let from = clock_text(from, p.offset);
            (
                format!("请于 {from} 至 {until} 之间加入。"),
                format!("Join between {from} and {until}."),
            )
        }
        None => (
            format!("请于 {until} 之前加入。"),
            format!("Join before {until}."),
        ),
    };
    let (who_zh, who_en) = match p.role {
        Role::Observer => ("旁听", "to watch"),
        Role::Guest => ("参会", "to take part"),
        _ => ("患者及家属", "for the patient"),
    };
    let uses_zh = match p.max_uses {
        Some(1) => "此邀请仅可使用一次，请勿转给他人。".to_owned(),
        Some(n) => format!("此邀请最多可使用 {n} 次。"),
        None => String::new(),
    };
    let uses_en = match p.max_uses {
        Some(1) => "It works once: keep it to yourself.".to_owned(),
        Some(n) => format!("It works {n} times at most."),
        None => String::new(),
    };
    let label = p
        .label
        .map(|l| {
            format!(
                "<p class=\"title\"><span lang=\"zh-CN\">邀请对象</span> · \
                 <span lang=\"en\">For</span>: {}</p>",
                esc(l)
            )
        })
        .unwrap_or_default();
    let code = p
        .code
        .map(|c| {
            format!(
                "<section class=\"code\"><p><span lang=\"zh-CN\">邀请码</span> · \
                 <span lang=\"en\">Invitation code</span></p>\
                 <p class=\"digits\">{}</p></section>",
                esc(&c.display())
            )
        })
        .unwrap_or_default();
    let page = esc(p.code_page);
    let (step_zh, step_en) = if p.code.is_some() {
        (
            format!(
                "用手机扫描二维码；或在浏览器中打开 <span class=\"url\">{page}</span>，输入上面的邀请码。"
            ),
            format!(
                "Scan the QR code with your phone, or open <span class=\"url\">{page}</span> \
                 in a browser and type the code above."
            ),
        )
    } else {
        (
            "用手机扫描二维码。".to_owned(),
            "Scan the QR code with your phone.".to_owned(),
        )
    };
    format!(
        "<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>会诊邀请 · Consultation invitation</title><style>{style}</style></head><body><main>\
         <h1><span lang=\"zh-CN\">远程会诊邀请（{who_zh}）</span><br>\
         <span lang=\"en\">Video consultation invitation ({who_en})</span></h1>\
         <p class=\"title\">{title}</p>{label}\
         <div class=\"cols\"><section lang=\"zh-CN\"><h2>时间</h2><p>{when_zh}</p></section>\
         <section lang=\"en\"><h2>When</h2><p>{when_en}</p></section></div>\
         {code}<div class=\"qr\">{qr}</div>\
         <div class=\"cols\"><section lang=\"zh-CN\"><h2>如何加入</h2><ol>\
         <li>{step_zh}</li><li>输入您的称呼，允许使用摄像头和麦克风。</li>\
         <li>未到时间时，页面会告诉您何时再来。{uses_zh}</li></ol></section>\
         <section lang=\"en\"><h2>How to join</h2><ol>\
         <li>{step_en}</li><li>Type your name and allow the camera and microphone.</li>\
         <li>If you are early, the page tells you when to come back. {uses_en}</li></ol></section></div>\
         </main></body></html>\n",
        style = PRINT_STYLE,
        title = esc(p.title),
        qr = p.qr,
    )
}

#[derive(Deserialize)]
pub struct RedeemBody {
    code: String,
}

/// Why a code was not redeemed: the answer and the audit entry's reason.
struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
    invite: Option<Invite>,
}

impl Failure {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            invite: None,
        }
    }

    fn internal(e: StorageError) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

/// `POST /invitations/redeem`: the join token of the invitation a short code opens.
pub async fn redeem(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RedeemBody>,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let client = client_pseudonym(&state, peer.ip());
    let parsed = if body.code.chars().count() > MAX_CODE_INPUT {
        Err(CodeError::WrongLength(body.code.chars().count()))
    } else {
        InviteCode::parse(&body.code)
    };
    let hash = parsed
        .as_ref()
        .ok()
        .map(|c| state.key.code_hash(c.digits()));
    // Checked and counted in one step: parallel guesses cannot all pass before one fails.
    let attempt = match state
        .code_throttle
        .begin(peer.ip(), hash.as_deref(), started)
    {
        Ok(attempt) => attempt,
        Err(throttled) => {
            let event = AuditEvent::new(Actor::Unknown, Action::CodeFailed).detail(json!({
                "client": client,
                "scope": throttled.scope.as_str(),
            }));
            state.audit.refused(&client, "code_throttled", event).await;
            let secs = throttled.retry_after.as_secs().max(1);
            return Err(ApiError::Invitation {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "too_many_attempts",
                message: format!(
                    "too many wrong codes; try again in {} minutes",
                    secs.div_ceil(60)
                ),
                retry_after: Some(secs),
            });
        }
    };
    let found = match (parsed, hash) {
        (Ok(_), Some(hash)) => open(&state, &hash).await,
        (Err(e), _) => Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "invalid_code",
            e.to_string(),
        )),
        (Ok(_), None) => unreachable!("a parsed code has a hash"),
    };
    let invite = match found {
        Ok(invite) => invite,
        Err(failure) if failure.code == "internal" => {
            drop(attempt);
            return Err(ApiError::Internal(failure.message));
        }
        Err(failure) => {
            attempt.failed(started);
            let mut event = AuditEvent::new(Actor::Unknown, Action::CodeFailed)
                .outcome(Outcome::Denied)
                .detail(json!({"reason": failure.code, "client": client}));
            if let Some(invite) = &failure.invite {
                event = event.room(&invite.room_id).object("invite", &invite.id);
            }
            state.audit.record_or_log(event).await;
            tracing::info!(reason = failure.code, "invitation code refused");
            return Err(refusal(failure.status, failure.code, failure.message));
        }
    };
    attempt.succeeded();
    state
        .audit
        .record_or_log(
            AuditEvent::new(Actor::Unknown, Action::CodeRedeemed)
                .room(&invite.room_id)
                .object("invite", &invite.id)
                .detail(json!({"client": client})),
        )
        .await;
    let now = now_unix();
    let token = sign_token(&state, &invite);
    Ok(Json(json!({
        "token": token,
        "url": format!("{}/join#{token}", public_base(&state, &headers)),
        "role": invite.role,
        "not_before": invite.not_before,
        "expires_at": invite.expires_at,
        "opens_in": invite.not_before.map_or(0, |nb| (nb - now).max(0)),
    })))
}

#[derive(Deserialize)]
pub struct CheckBody {
    token: String,
}

/// What the join page asks as soon as it opens, before any device prompt: whether its link
/// still lets someone in, and from when (`POST /api/v1/invitations/check`). Nothing is used up;
/// the join takes the use. Care-team seats are answered as such (the console renews them).
pub async fn check(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<CheckBody>,
) -> Result<Json<Value>, ApiError> {
    let client = client_pseudonym(&state, peer.ip());
    // Expiry is judged below, against the invitation's own window: it moves with the
    // consultation's time, so the token's `exp` (its window when it was made) does not decide.
    let claims = match state.key.decode(&body.token, TokenKind::Invite) {
        Ok(claims) => claims,
        Err(_) => return Err(bad_link(&state, &client).await),
    };
    let (Some(room), Some(role), Some(id)) = (
        claims.room.clone(),
        claims.role,
        InviteId::parse(&claims.sub),
    ) else {
        return Err(bad_link(&state, &client).await);
    };
    let invite = state
        .db
        .invite(&id)
        .await?
        .filter(|i| i.room_id == room && i.role == role);
    let Some(invite) = invite else {
        return Err(bad_link(&state, &client).await);
    };
    let seat = invite.account.is_some();
    let until = if seat { claims.exp } else { invite.expires_at };
    if let Err(AuthError::Expired) = claims.within(until, now_unix()) {
        state
            .audit
            .invite_refused(&invite, "invite_expired", &client, Some(CHECKED))
            .await;
        return Err(refusal(
            StatusCode::GONE,
            "invite_expired",
            "this invitation has expired; ask the clinic for a new one",
        ));
    }
    let invite = match usable(&state, invite).await {
        Ok(invite) => invite,
        Err(failure) if failure.code == "internal" => {
            return Err(ApiError::Internal(failure.message));
        }
        Err(failure) => {
            if let Some(invite) = &failure.invite {
                state
                    .audit
                    .invite_refused(invite, failure.code, &client, Some(CHECKED))
                    .await;
            }
            return Err(refusal(failure.status, failure.code, failure.message));
        }
    };
    let now = now_unix();
    let opens_in = invite.not_before.map_or(0, |nb| (nb - now).max(0));
    Ok(Json(json!({
        "state": if opens_in > 0 { "not_yet" } else { "active" },
        // What the join comes in as: the role the care team last gave the link's holder.
        "role": invite.role_for_join(),
        "seat": seat,
        "not_before": invite.not_before,
        "expires_at": invite.expires_at,
        "opens_in": opens_in,
    })))
}

/// What a dead link's `invite.refused` says found it: the join page's first question, before
/// the join that would record it.
const CHECKED: &str = "invitations.check";

/// A token that is not one of ours, or names no invitation: on the record, rate-limited.
async fn bad_link(state: &AppState, client: &str) -> ApiError {
    let event = AuditEvent::new(Actor::Unknown, Action::AccessDenied)
        .outcome(Outcome::Denied)
        .detail(json!({"attempted": "invitations.check", "client": client}));
    state.audit.refused(client, "invalid_token", event).await;
    refusal(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "this link is not valid; open the complete link you were sent",
    )
}

/// The usable invitation a code's hash opens, or why not.
async fn open(state: &AppState, hash: &str) -> Result<Invite, Failure> {
    let Some(invite) = state
        .db
        .invite_by_code(hash)
        .await
        .map_err(Failure::internal)?
    else {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            "code_not_found",
            "no invitation has this code; check the digits, or ask the clinic",
        ));
    };
    usable(state, invite).await
}

/// The invitation, if it still lets someone in now or later; else why not.
async fn usable(state: &AppState, invite: Invite) -> Result<Invite, Failure> {
    let refused = |status, code, message: &str| Failure {
        status,
        code,
        message: message.to_owned(),
        invite: Some(invite.clone()),
    };
    let ended = state
        .db
        .room(&invite.room_id)
        .await
        .map_err(Failure::internal)?
        .is_none_or(|r| r.status == RoomStatus::Ended);
    match invite.validity().state(now_unix()) {
        InviteState::Revoked => Err(refused(
            StatusCode::GONE,
            "invite_revoked",
            "this invitation was revoked; ask the clinic for a new one",
        )),
        _ if ended => Err(refused(
            StatusCode::CONFLICT,
            "room_ended",
            "this consultation has ended",
        )),
        InviteState::UsedUp => Err(refused(
            StatusCode::CONFLICT,
            "invite_used_up",
            "this invitation has been used; ask the clinic for a new one",
        )),
        InviteState::Expired => Err(refused(
            StatusCode::GONE,
            "invite_expired",
            "this invitation has expired; ask the clinic for a new one",
        )),
        InviteState::Active | InviteState::NotYet => Ok(invite),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_page_escapes_what_people_typed() {
        let code = InviteCode::parse("012345678").unwrap();
        let html = print_page(&PrintPage {
            title: "<script>alert(1)</script> & \"co\"",
            label: Some("guardian <b>"),
            role: Role::Patient,
            not_before: Some(1_796_450_400),
            expires_at: 1_796_457_600,
            max_uses: Some(1),
            offset: 480,
            code: Some(&code),
            qr: "<svg></svg>",
            code_page: "https://clinic.example/code",
        });
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;co&quot;"));
        assert!(html.contains("guardian &lt;b&gt;"));
        assert!(html.contains("012 345 678"));
        assert!(html.contains("2026-12-05 14:00 UTC+08:00"), "{html}");
        assert!(html.contains("2026-12-05 16:00 UTC+08:00"), "{html}");
        assert!(html.contains(PRINT_STYLE));
        assert!(PRINT_CSP.starts_with("default-src 'none'; style-src 'sha256-"));
    }

    #[test]
    fn a_join_link_fits_a_qr_code() {
        let url = format!(
            "https://consult.example-hospital.cn/join#hz1.{}",
            "x".repeat(400)
        );
        let svg = qr_svg(&url).unwrap();
        assert!(svg.starts_with("<svg"), "no XML prolog: it is inlined");
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("<script"));
    }
}
