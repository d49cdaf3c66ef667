//! huizhen (会诊): a self-hosted, real-time telemedicine consultation server.
//!
//! A primary-care doctor, the patient and a remote specialist meet in a live audio/video room
//! in their browsers. This crate is the whole server: HTTPS edge, signaling hub, room rules,
//! SFU media relay and storage.
//!
//! # Layout
//!
//! - [`server`]: startup and shutdown; wires everything below together.
//! - [`config`]: the TOML configuration and its environment overrides; the institution's
//!   branding, checked (and its logo read) at start.
//! - [`http`]: the HTTPS edge: web client assets, the clinicians' JSON API, the WebSocket, and
//!   below them the connection caps and deadlines (`http::conn`).
//! - [`signaling`]: one session per WebSocket, speaking the protocol in docs/protocol.md.
//! - [`rooms`]: the clinical rules of a live consultation, one task per room.
//! - [`sfu`]: the sans-IO media core on str0m: transports, producers, consumers, forwarding.
//! - [`media`]: the I/O driver that runs the media core on a UDP socket, one thread per worker.
//! - [`netcheck`]: the pre-call network check over the media path, for someone waiting: a
//!   short-lived peer connection of its own on a media worker, forwarded to nobody.
//! - [`documents`]: documents shared in a room: resumable uploads, content checks, the
//!   content-addressed blob store, integrity on every read, annotations.
//! - [`records`]: clinical records (notes, diagnosis reports, e-prescriptions), drafts, issuing,
//!   corrections and the pharmacy steps.
//! - [`referrals`]: consultation requests to another department or specialist: inboxes, each
//!   step persisted as one conditional transaction, the room a scheduled request opens.
//! - [`summary`]: a consultation's record after the call, and its FHIR R4 and PDF exports.
//! - [`webhooks`]: institutions' outgoing webhooks: configuration, signed delivery from the
//!   transactional outbox, retries, order per consultation.
//! - [`audit`]: the append-only, hash-chained audit trail and its verification.
//! - [`sessions`]: clinicians' sign-ins on the server: checked on every request, renewed,
//!   signed out, revoked on a password change or by an administrator.
//! - [`auth`]: signed tokens, passwords and the sign-in throttle.
//! - [`storage`]: users, rooms, invites, participants, documents, chat and records in SQLite or
//!   PostgreSQL.
//! - [`wire`]: the JSON shapes clients see for stored things, converted from storage rows.
//! - [`metrics`]: the Prometheus endpoint on its own listener.
//! - [`domain`]: the leaf every module speaks: typed identifiers, roles and the permission
//!   table, members, document and record kinds, the clock.
//! - [`fd_limit`]: the open-file limit, raised at start.
//! - [`tls`], [`telemetry`]: certificates, logs.
//!
//! See docs/ARCHITECTURE.md for how a join, a media packet and a signaling message travel.

pub mod admission;
pub mod audit;
pub mod auth;
pub mod config;
pub mod documents;
pub mod domain;
pub mod fd_limit;
#[doc(hidden)]
pub mod fuzz;
pub mod http;
pub mod media;
pub mod metrics;
pub mod netcheck;
pub mod notifications;
pub mod records;
// Consultation requests between institutions (referrals).
pub mod referrals;
pub mod rooms;
pub mod server;
pub mod sessions;
pub mod sfu;
pub mod signaling;
pub mod storage;
pub mod summary;
pub mod telemetry;
pub mod tls;
// Institutions' outgoing webhooks.
pub mod webhooks;
pub mod wire;
