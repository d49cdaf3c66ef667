//! Startup and shutdown: wires configuration, storage, the media workers, rooms, signaling and
//! the HTTPS listener together. [`Server::start`] is what `huizhen serve` and the integration
//! tests call.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use tokio::sync::Semaphore;

use crate::audit::{Anchored, AuditLog};
use crate::auth::{PasswordWork, SigningKey, TurnSecret, TurnServers};
use crate::config::Config;
use crate::documents::Documents;
use crate::fd_limit;
use crate::http::conn::{self, ConnectionSettings};
use crate::http::{self, AppState};
use crate::media::MediaHandle;
use crate::metrics::Metrics;
use crate::records::Records;
use crate::rooms::{Limits, RoomManager, RoomServices, RoomSettings};
use crate::sessions::{Policy, Sessions};
use crate::signaling::{ErrorCounts, SessionSettings, SignalingContext};
use crate::storage::{Db, private};
use crate::tls::{self, CertSource};

/// Entries of the data directory checked at start (see `storage::private`).
const PRIVATE_CHECK_LIMIT: usize = 100_000;

/// A running server.
pub struct Server {
    /// The HTTPS/WSS address actually bound (port 0 in the config picks one).
    pub https_addr: SocketAddr,
    /// The Prometheus listener, when enabled.
    pub metrics_addr: Option<SocketAddr>,
    pub cert_source: CertSource,
    pub db: Db,
    pub rooms: RoomManager,
    pub media: MediaHandle,
    handle: Handle<SocketAddr>,
    metrics_task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    housekeeping: tokio::task::JoinHandle<()>,
    /// `rooms::seat_sessions::run`.
    seat_search: tokio::task::JoinHandle<()>,
    /// What carries rooms' progress on to their requests (`http/progress.rs`), and what stops
    /// it once the rooms have ended.
    progress: (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ),
    /// The periodic anchoring of the audit trail, and what stops it (between anchors, never
    /// in the middle of one).
    anchoring: (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ),
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Consoles' event streams, ended at shutdown (they would hold the listener's grace).
    notifications: crate::notifications::Notifications,
    /// The institutions' webhooks' delivery task, stopped after the listener (no new events)
    /// and before the audit writer (it audits what it gives up).
    webhook_delivery: crate::webhooks::Delivery,
    grace: Duration,
}

impl Server {
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        // The institution's logo is read once, here: a missing or unsafe file stops the start.
        let brand = Arc::new(config.branding.load()?);
        // Several TLS stacks are linked (rustls for HTTPS, others in dependencies); name ours.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let config = Arc::new(config);

        // Patient data: whatever the server creates is readable by its user alone, and what
        // an earlier run left readable by others is made private again (and said so).
        private::restrict_new_files();
        std::fs::create_dir_all(&config.storage.data_dir).with_context(|| {
            format!(
                "creating data directory {}",
                config.storage.data_dir.display()
            )
        })?;
        let tightened = private::tighten(&config.storage.data_dir, PRIVATE_CHECK_LIMIT)
            .with_context(|| {
                format!(
                    "making the data directory {} private",
                    config.storage.data_dir.display()
                )
            })?;
        if !tightened.paths.is_empty() {
            tracing::warn!(
                count = tightened.paths.len(),
                "files in the data directory were readable by other users; made private (0600/0700)"
            );
        }
        let db = Db::connect(&config.database_url())
            .await
            .context("opening the database")?;
        let key = SigningKey::load_or_create(&config.signing_key_path())?;
        // TURN: the secret shared with the relays, read once; without it no credentials.
        let turn = if config.turn.urls.is_empty() {
            None
        } else {
            let secret = TurnSecret::load(Path::new(&config.turn.secret_file))
                .context("reading turn.secret_file")?;
            tracing::info!(
                servers = config.turn.urls.len(),
                lifetime_s = config.turn.credential_lifetime_s,
                "TURN relays configured"
            );
            TurnServers::new(
                config.turn.urls.clone(),
                secret,
                config.turn.credential_lifetime_s,
            )
        };
        let media = MediaHandle::start(&config.media)?;

        let limits = Limits {
            max_message_bytes: config.limits.max_message_bytes,
            messages_per_second: config.limits.messages_per_second,
            max_participants: config.limits.max_participants,
        };
        let metrics = Arc::new(Metrics::default());
        let errors = Arc::new(ErrorCounts::default());
        // The audit key lives in a file of its own, apart from the database; the trail must
        // verify with it before anything is appended.
        let audit = AuditLog::open(
            db.clone(),
            &config.audit_key_path(),
            config.audit_anchor_path(),
        )
        .await
        .context("opening the audit trail")?;
        // Entries owed by steps committed before a crash (or a failed append) go on the trail
        // before anything else happens.
        append_owed(&audit, crate::domain::clock::now_unix_ms()).await;
        // The chain's head is anchored outside the database: now, then every interval when
        // it moved (and at shutdown).
        let anchoring = {
            let audit = audit.clone();
            let period = Duration::from_secs(config.audit.anchor_interval_s);
            let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                let mut every = tokio::time::interval(period);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = every.tick() => anchor(&audit).await,
                        _ = &mut stopped => break,
                    }
                }
            });
            (stop, task)
        };
        let documents = Documents::open(
            db.clone(),
            &config.storage.data_dir,
            config.documents.clone(),
        )
        .context("opening document storage")?;
        let sessions = Sessions::new(db.clone(), key.clone(), Policy::from_config(&config.auth));
        let notifications = crate::notifications::Notifications::start(db.clone());
        let webhooks = crate::webhooks::Webhooks::new(
            db.clone(),
            audit.clone(),
            crate::webhooks::Settings::from_config(&config.webhooks),
        );
        let webhook_delivery = webhooks
            .start()
            .await
            .context("starting webhook delivery")?;
        // Unfinished uploads are kept for resuming, but not for ever, and ended sessions are
        // forgotten: now, then hourly.
        let housekeeping = {
            let documents = documents.clone();
            let sessions = sessions.clone();
            let audit = audit.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(3600));
                loop {
                    every.tick().await;
                    // Owed entries whose append failed (not those a step is appending now).
                    append_owed(&audit, crate::domain::clock::now_unix_ms() - 60_000).await;
                    match documents.expire_uploads().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(count = n, "expired unfinished uploads removed"),
                        Err(e) => tracing::warn!(error = %e, "could not expire unfinished uploads"),
                    }
                    match sessions.purge(crate::domain::clock::now_unix()).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(count = n, "ended sessions removed"),
                        Err(e) => tracing::warn!(error = %e, "could not remove ended sessions"),
                    }
                }
            })
        };
        let (progress, progressed) = crate::rooms::ProgressSender::channel();
        let rooms = RoomManager::new(
            db.clone(),
            media.clone(),
            key.clone(),
            RoomSettings {
                max_participants: config.limits.max_participants,
                max_rooms: config.limits.max_rooms,
                resume_window: Duration::from_secs(config.rooms.resume_window_s),
                idle_stop: Duration::from_secs(30),
                limits,
                turn: turn.clone(),
                clock: Default::default(),
                simulcast: config.media.simulcast,
                joins: Default::default(),
            },
            metrics.clone(),
            RoomServices {
                documents: documents.clone(),
                audit: audit.clone(),
                notifications: notifications.clone(),
                progress,
            },
        );
        // Care-team seats end with the sign-in they were taken under, however it ended.
        let seat_search = tokio::spawn(crate::rooms::seat_sessions::run(rooms.clone()));
        let signaling = SignalingContext {
            key: key.clone(),
            db: db.clone(),
            rooms: rooms.clone(),
            settings: Arc::new(SessionSettings {
                max_message_bytes: config.limits.max_message_bytes,
                messages_per_second: config.limits.messages_per_second,
                message_burst: config.limits.message_burst,
                join_timeout: Duration::from_secs(config.rooms.join_timeout_s),
                write_timeout: Duration::from_secs(config.rooms.write_timeout_s),
            }),
            metrics: metrics.clone(),
            errors: errors.clone(),
            net_checks: crate::netcheck::NetChecks::new(
                media.clone(),
                config.media.max_net_checks,
                Duration::from_secs(config.media.net_check_seconds),
                turn,
                key.clone(),
            ),
        };
        let state = AppState {
            config: config.clone(),
            db: db.clone(),
            key,
            sessions,
            rooms: rooms.clone(),
            media: media.clone(),
            signaling,
            connections: Arc::new(Semaphore::new(config.limits.max_connections)),
            next_conn: Arc::new(AtomicU64::new(1)),
            login_throttle: Arc::default(),
            passwords: PasswordWork::default(),
            audit,
            documents,
            records: Records::new(db.clone()),
            notifications: notifications.clone(),
            code_throttle: Arc::new(crate::auth::CodeThrottle::new(
                config.rooms.code_failures_per_address,
                config.rooms.code_failures_per_code,
            )),
            public_rate: Arc::new(crate::auth::RequestRate::new(
                config.limits.public_requests_per_minute,
            )),
            webhooks,
            brand,
        };

        let (metrics_addr, metrics_task) = if config.metrics.listen.is_empty() {
            (None, None)
        } else {
            let listener = tokio::net::TcpListener::bind(&config.metrics.listen)
                .await
                .with_context(|| {
                    format!("binding the metrics listener {}", config.metrics.listen)
                })?;
            let addr = listener.local_addr()?;
            let app = metrics_router(
                metrics.clone(),
                errors.clone(),
                rooms.clone(),
                media.clone(),
            );
            (
                Some(addr),
                Some(tokio::spawn(
                    async move { axum::serve(listener, app).await },
                )),
            )
        };

        let (cert, private_key, cert_source) = tls::load_or_generate(&config.server)?;
        let tls = RustlsConfig::from_pem(cert, private_key)
            .await
            .context("loading the TLS certificate")?;
        let handle = Handle::new();
        let progress = {
            let (stop, stopped) = tokio::sync::oneshot::channel();
            let task = tokio::spawn(http::progress::run(state.clone(), progressed, stopped));
            (stop, task)
        };
        let app = http::router(state);
        let settings = ConnectionSettings {
            max_connections: connection_cap(&config),
            max_per_address: config.limits.max_connections_per_address,
            handshake_timeout: Duration::from_secs(config.server.tls_handshake_timeout_s),
            header_read_timeout: Duration::from_secs(config.server.header_read_timeout_s),
            idle_timeout: Duration::from_secs(config.server.idle_timeout_s),
        };
        let served = tokio::spawn(
            conn::listener(config.server.listen, tls, settings, metrics.clone())
                .handle(handle.clone())
                .serve(app.into_make_service_with_connect_info::<SocketAddr>()),
        );
        let https_addr = match handle.listening().await {
            Some(addr) => addr,
            None => {
                let err = served
                    .await
                    .map_err(anyhow::Error::from)
                    .and_then(|r| r.map_err(Into::into));
                return Err(anyhow::anyhow!(
                    "cannot listen on {}: {err:?}",
                    config.server.listen
                ));
            }
        };
        Ok(Self {
            https_addr,
            metrics_addr,
            metrics_task,
            housekeeping,
            seat_search,
            progress,
            anchoring,
            cert_source,
            db,
            rooms,
            media,
            handle,
            served,
            notifications,
            webhook_delivery,
            grace: Duration::from_secs(config.server.shutdown_grace_s),
        })
    }

    /// Shuts down in order, each step with a deadline so that nothing can hold the process:
    /// every live room ends (participants get `room_ended`, their leaves are recorded and their
    /// peer connections closed) and no room opens any more; the listener stops and in-flight
    /// requests (an upload's chunk) get the grace period to finish; the media workers send
    /// what they have pending and their threads are joined; what the rooms said of their
    /// consultations is carried on to the requests; webhook attempts under way finish
    /// or are left pending (sent again after a restart); then the audit trail's writer is
    /// flushed and stopped, the head it leaves is anchored, and the database is closed.
    /// Everything acknowledged before was already durable (synced chunks, committed rows).
    pub async fn shutdown(self) {
        if tokio::time::timeout(self.grace, self.rooms.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("rooms did not all end within the shutdown grace period");
        }
        self.notifications.close();
        self.handle.graceful_shutdown(Some(self.grace));
        let _ = tokio::time::timeout(self.grace + Duration::from_secs(1), self.served).await;
        if !self.media.shutdown(self.grace).await {
            tracing::warn!("media workers did not all stop within the shutdown grace period");
        }
        if let Some(t) = self.metrics_task {
            t.abort();
        }
        self.housekeeping.abort();
        self.seat_search.abort();
        // What the rooms said before they ended is carried on to their requests (their steps
        // queue audit entries and webhook events, written and sent below).
        let (stop, mut progress) = self.progress;
        let _ = stop.send(());
        if tokio::time::timeout(self.grace, &mut progress)
            .await
            .is_err()
        {
            // Stopped, not left running while the audit trail and the database close below.
            progress.abort();
            tracing::warn!(
                "consultation requests were not all moved on within the shutdown grace period"
            );
        }
        // Attempts under way get the grace period; the rest stay pending for the next start.
        self.webhook_delivery.stop(self.grace).await;
        let (stop, anchoring) = self.anchoring;
        let _ = stop.send(());
        let _ = tokio::time::timeout(self.grace, anchoring).await;
        // What the rooms and requests queued for the audit trail is written before the
        // database closes, and the head it leaves is anchored.
        // Each bounded too: a database that stopped answering must not hold the process (what
        // the writer could not write is then lost with it, and said so in the log).
        let audit = self.rooms.audit();
        if tokio::time::timeout(self.grace, audit.close())
            .await
            .is_err()
        {
            tracing::error!(
                "the audit trail's writer did not finish within the shutdown grace period; \
                 entries still queued were not written"
            );
        }
        if tokio::time::timeout(self.grace, anchor(audit))
            .await
            .is_err()
        {
            tracing::error!(
                "the audit trail's head could not be anchored within the shutdown grace period"
            );
        }
        if tokio::time::timeout(self.grace, self.db.close())
            .await
            .is_err()
        {
            tracing::warn!("the database did not close within the shutdown grace period");
        }
    }
}

/// Anchors the audit trail's head if it moved; says so if the trail no longer holds what was
/// anchored.
async fn anchor(audit: &AuditLog) {
    match audit.anchor().await {
        Ok(Anchored::Written(_) | Anchored::Unmoved | Anchored::NoAnchorFile) => {}
        Ok(Anchored::Refused { seq, reason }) => tracing::error!(
            seq,
            reason,
            "the audit trail no longer holds what was anchored: not anchoring it; run \
             `huizhen audit verify`"
        ),
        Err(e) => tracing::error!(error = %e, "could not anchor the audit trail"),
    }
}

/// Raises the open-file limit and returns the HTTPS connection cap in force: the configured one,
/// or what the limit leaves room for if that is less (so that the cap, not `EMFILE`, is what a
/// flood of connections meets), with a warning.
fn connection_cap(config: &Config) -> usize {
    let configured = config.limits.max_http_connections;
    let cap = match fd_limit::raise() {
        Ok(Some(limit)) => {
            // ICE-TCP connections hold descriptors too, up to their own cap.
            let media_sockets = config.media.workers
                + if config.media.tcp {
                    config.media.tcp_max_connections + 1
                } else {
                    0
                };
            let fit = fd_limit::connections_that_fit(limit, media_sockets);
            tracing::info!(
                soft = limit.soft,
                hard = limit.hard,
                "open-file limit (soft raised to hard)"
            );
            if configured > fit {
                tracing::warn!(
                    configured,
                    cap = fit,
                    open_file_limit = limit.soft,
                    "limits.max_http_connections plus the media sockets and {} descriptors for \
                     the rest exceeds the open-file limit: connections are capped lower; raise \
                     the hard limit (LimitNOFILE=, ulimit -Hn) to allow more",
                    fd_limit::RESERVED_DESCRIPTORS
                );
                fit
            } else {
                configured
            }
        }
        Ok(None) => configured,
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-file limit");
            configured
        }
    };
    if config.limits.max_connections > cap {
        tracing::warn!(
            signaling = config.limits.max_connections,
            http = cap,
            "limits.max_connections (signaling) is above the HTTPS connection cap: the lower \
             one is what holds"
        );
    }
    cap
}

fn metrics_router(
    metrics: Arc<Metrics>,
    errors: Arc<ErrorCounts>,
    rooms: RoomManager,
    media: MediaHandle,
) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (metrics, errors, rooms, media) = (
                metrics.clone(),
                errors.clone(),
                rooms.clone(),
                media.clone(),
            );
            async move {
                use axum::response::IntoResponse;
                match metrics
                    .render(rooms.live_rooms(), &errors.snapshot(), &media)
                    .await
                {
                    Ok(body) => (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            crate::metrics::CONTENT_TYPE,
                        )],
                        body,
                    )
                        .into_response(),
                    // Writing into a String fails only if an encoder refuses its input (a
                    // histogram with no bucket); a scrape with half an exposition is worse
                    // than none.
                    Err(e) => {
                        tracing::error!(error = %e, "encoding the metrics failed");
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
                    }
                }
            }
        }),
    )
}

/// Appends the audit entries owed by steps committed at or before `before_ms` and left behind
/// (`AuditLog::append_pending`); a failure is logged, and they wait for the next try.
async fn append_owed(audit: &AuditLog, before_ms: i64) {
    match audit.append_pending(before_ms).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            count = n,
            "audit entries owed by committed steps appended late"
        ),
        Err(e) => {
            tracing::error!(error = %e, "audit entries owed by committed steps could not be appended")
        }
    }
}
