//! The integration tests, one test binary: each module is a file of `tests/` that exercises the
//! real server (its own on port 0) the way its name says. One binary rather than one per file:
//! every binary links the whole dependency tree (WebRTC, str0m, sqlx, TLS) and compiled
//! `common/` again, which cost CI about five minutes of its two cores. Tests that change what
//! is global to the process stay binaries of their own (`privacy.rs` installs the log
//! subscriber, `panic_log.rs` the panic hook); Cargo.toml names them (`autotests = false`).
//!
//! One file: `cargo test --test integration organisation::`.

mod common;

mod architecture;
mod audit_chain;
mod audit_scope;
mod branding;
mod connections;
mod consent;
mod crash;
mod data_files;
mod department_queue;
mod documents;
mod fuzz_corpus;
mod icerestart;
mod icetcp;
mod impairment;
mod invitations;
mod media;
mod metrics;
mod moderation;
mod netcheck;
mod notifications;
mod openapi;
mod organisation;
mod outcome;
mod records;
mod referral_consent;
mod referral_documents;
mod referrals;
mod refusals;
mod rolechange;
mod screenshare;
mod session_channels;
mod sessions;
mod shutdown;
mod signaling;
mod signing_pin;
mod simulcast;
mod storage;
mod summary_pdf;
mod turn;
mod waiting_room;
mod webhooks;
mod worker_panic;
mod workflow;
