//! The HTTPS edge: one axum router for the web client, the JSON API and the signaling
//! WebSocket. Handlers translate HTTP to calls on storage, rooms and signaling, and map module
//! errors to client errors ([`error::ApiError`], protocol error codes); no business rules here.

mod account;
mod api;
mod assets;
mod attendance;
mod audit;
mod care_team;
pub mod conn;
mod department_queue;
// How pages are shown: the institution's time zone and branding, for the web client.
mod display;
mod documents;
pub mod error;
mod events;
// Invitations: windows, uses, short codes, QR codes.
mod invitations;
mod member;
// The API's description, docs/openapi.json.
mod openapi;
mod organisation;
// The patient's outcome page, opened with their invitation link.
mod outcome;
pub mod progress;
// The request rate of what needs no session.
mod public_rate;
mod records;
// Consultation requests (referrals).
mod referral_consent;
mod referral_documents;
mod referrals;
mod signing;
mod summary;
// Institutions' outgoing webhooks.
mod waiting_message;
mod webhooks;
mod ws;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderValue;
use axum::http::header;
use axum::routing::{delete, get, patch, post, put};
use tokio::sync::Semaphore;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::audit::AuditLog;
use crate::auth::{CodeThrottle, LoginThrottle, PasswordWork, SigningKey};
use crate::config::Config;
use crate::documents::Documents;
use crate::media::MediaHandle;
use crate::records::Records;
use crate::rooms::RoomManager;
use crate::sessions::Sessions;
use crate::signaling::SignalingContext;
use crate::storage::Db;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub key: SigningKey,
    /// Clinicians' sessions: every authenticated API call is checked against them.
    pub sessions: Sessions,
    pub rooms: RoomManager,
    pub media: MediaHandle,
    pub signaling: SignalingContext,
    /// Caps open signaling connections (`limits.max_connections`).
    pub connections: Arc<Semaphore>,
    pub next_conn: Arc<AtomicU64>,
    pub login_throttle: Arc<LoginThrottle>,
    /// Password hashing and checks, a few at a time off the async runtime.
    pub passwords: PasswordWork,
    pub audit: AuditLog,
    pub documents: Documents,
    pub records: Records,
    /// Failed short-code redemptions, per address and per code (`rooms.code_failures_*`).
    pub code_throttle: Arc<CodeThrottle>,
    /// Requests per address to what needs no session (`limits.public_requests_per_minute`).
    pub public_rate: Arc<crate::auth::RequestRate>,
    /// Live notifications to clinicians' consoles.
    pub notifications: crate::notifications::Notifications,
    /// Institutions' outgoing webhooks.
    pub webhooks: crate::webhooks::Webhooks,
    /// The institution's name, logo and accent colour (`[branding]`), checked and read at start.
    pub brand: Arc<crate::config::branding::Brand>,
}

pub fn router(state: AppState) -> Router {
    // What anyone holding a link may call without a session, under a request rate per address.
    let public = Router::new()
        .route("/invitations/redeem", post(invitations::redeem))
        .route("/invitations/check", post(invitations::check))
        // The patient's outcome page, opened with their invitation link.
        .route("/outcome", get(outcome::get_outcome))
        .route("/outcome/pdf", get(outcome::outcome_pdf))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            public_rate::limit,
        ));
    let api = Router::new()
        .route("/auth/login", post(account::login))
        .route("/auth/logout", post(account::logout))
        .route("/auth/renew", post(account::renew))
        .route("/auth/password", post(account::change_password))
        .route(
            "/users/{id}/sessions/revoke",
            post(account::revoke_sessions),
        )
        .route("/me", get(api::me))
        .route("/me/drafts", get(api::pending_drafts))
        .route("/events", get(events::stream))
        .route("/me/availability", put(organisation::set_availability))
        .route(
            "/me/signing-pin",
            put(signing::set_signing_pin).delete(signing::clear_signing_pin),
        )
        .route(
            "/institutions",
            get(organisation::list_institutions).post(organisation::create_institution),
        )
        .route("/institutions/{id}", put(organisation::update_institution))
        // An institution's webhook to its own systems.
        .route(
            "/institutions/{id}/webhook",
            get(webhooks::get).put(webhooks::set),
        )
        .route("/institutions/{id}/webhook/rotate", post(webhooks::rotate))
        .route(
            "/institutions/{id}/webhook/deliveries",
            get(webhooks::deliveries),
        )
        .route(
            "/institutions/{id}/webhook/deliveries/{event}/retry",
            post(webhooks::retry),
        )
        .route(
            "/institutions/{id}/departments",
            post(organisation::create_department),
        )
        .route(
            "/accounts",
            get(organisation::list_accounts).post(organisation::create_account),
        )
        .route("/accounts/{id}", patch(organisation::update_account))
        .route("/accounts/{id}/disable", post(account::disable_account))
        .route("/accounts/{id}/enable", post(account::enable_account))
        .route("/directory", get(organisation::directory))
        .route("/rooms", post(api::create_room).get(api::list_rooms))
        .route("/rooms/{id}", get(api::get_room))
        .route(
            "/rooms/{id}/invites",
            post(invitations::create).get(invitations::list),
        )
        .route("/rooms/{id}/invites/{invite}", delete(api::revoke_invite))
        // Invitations: a new code, the QR code, the printable page; redeeming a code.
        .route(
            "/rooms/{id}/invites/{invite}/code",
            post(invitations::new_code),
        )
        .route("/rooms/{id}/invites/{invite}/qr.svg", get(invitations::qr))
        .route(
            "/rooms/{id}/invites/{invite}/print",
            get(invitations::print),
        )
        .route("/rooms/{id}/end", post(api::end_room))
        .route("/rooms/{id}/slot", put(api::reschedule_room))
        .route(
            "/rooms/{id}/care-team",
            get(care_team::list).post(care_team::add),
        )
        .route("/rooms/{id}/care-team/{user}", delete(care_team::remove))
        .route("/rooms/{id}/enter", post(care_team::enter))
        .route("/rooms/{id}/attendance", get(attendance::attendance))
        .route("/rooms/{id}/waiting-message", put(waiting_message::set))
        .route(
            "/departments/{id}",
            patch(organisation::rename_department).delete(organisation::remove_department),
        )
        .route("/departments/{id}/queue", get(department_queue::list))
        .route("/departments/{id}/queue/next", post(department_queue::next))
        .route("/rooms/{id}/uploads", post(documents::begin_upload))
        .route(
            "/rooms/{id}/uploads/{upload}",
            get(documents::upload_status)
                .put(documents::put_chunk)
                .delete(documents::cancel_upload)
                // A chunk is the one large body the API takes; the limit is its own.
                .layer(DefaultBodyLimit::max(
                    state.config.documents.max_chunk_bytes,
                )),
        )
        .route("/rooms/{id}/documents", get(documents::list_documents))
        .route("/rooms/{id}/documents/{doc}", get(documents::get_document))
        .route(
            "/rooms/{id}/documents/{doc}/content",
            get(documents::document_content),
        )
        .route(
            "/rooms/{id}/documents/{doc}/ecg",
            get(documents::document_ecg),
        )
        .route(
            "/rooms/{id}/documents/{doc}/pages",
            get(documents::document_pages),
        )
        .route(
            "/rooms/{id}/documents/{doc}/dicom",
            get(documents::document_dicom),
        )
        .route(
            "/rooms/{id}/documents/{doc}/pages/{page}",
            get(documents::document_page),
        )
        .route(
            "/rooms/{id}/documents/{doc}/annotations",
            get(documents::document_annotations),
        )
        .route(
            "/rooms/{id}/records",
            post(records::create_record).get(records::list_records),
        )
        .route("/rooms/{id}/records/{rec}", put(records::update_record))
        .route(
            "/rooms/{id}/records/{rec}/issue",
            post(records::issue_record),
        )
        .route("/rooms/{id}/summary", get(summary::get_summary))
        .route("/rooms/{id}/export/fhir", get(summary::export_fhir))
        .route("/rooms/{id}/export/pdf", get(summary::export_pdf))
        .route("/prescriptions", get(records::prescription_queue))
        .route(
            "/prescriptions/{rec}/{action}",
            post(records::pharmacy_action),
        )
        // Consultation requests (referrals).
        .route("/referrals", post(referrals::create).get(referrals::list))
        .route("/referrals/consent-wording", get(referral_consent::wording))
        .route("/referrals/{id}", get(referrals::get))
        .route(
            "/referrals/{id}/documents",
            get(referral_documents::list).post(referral_documents::upload),
        )
        .route(
            "/referrals/{id}/documents/from-consultation",
            post(referral_documents::from_consultation),
        )
        .route(
            "/referrals/{id}/documents/candidates",
            get(referral_documents::candidates),
        )
        .route(
            "/referrals/{id}/documents/{doc}",
            delete(referral_documents::remove),
        )
        .route(
            "/referrals/{id}/documents/{doc}/content",
            get(referral_documents::content),
        )
        .route(
            "/referrals/{id}/documents/{doc}/pages",
            get(referral_documents::pages),
        )
        .route(
            "/referrals/{id}/documents/{doc}/pages/{page}",
            get(referral_documents::page),
        )
        .route(
            "/referrals/{id}/documents/{doc}/ecg",
            get(referral_documents::ecg),
        )
        .route(
            "/referrals/{id}/documents/{doc}/dicom",
            get(referral_documents::dicom),
        )
        .route("/referrals/{id}/consent", post(referral_consent::give))
        .route(
            "/referrals/{id}/consent/withdraw",
            post(referral_consent::withdraw),
        )
        .route("/referrals/{id}/{action}", post(referrals::act))
        .route("/display", get(display::display))
        .route("/audit", get(audit::list))
        .route("/audit/verify", get(audit::verify))
        .route("/audit/export", get(audit::export))
        .merge(public)
        .layer(DefaultBodyLimit::max(
            state.config.limits.max_api_body_bytes,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    // The API's description (docs/openapi.json), for anyone: no session, its own no-store.
    let api = api.route("/openapi.json", get(openapi::document));
    // The institution's logo, public and cacheable (its URL names its version): its own
    // headers, outside the API's no-store.
    let api = api.route("/display/logo/{version}", get(display::logo));
    Router::new()
        .nest("/api/v1", api)
        .route("/ws", get(ws::upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(assets::serve)
        .layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .with_state(state)
}
