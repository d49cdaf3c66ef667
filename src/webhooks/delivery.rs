//! The delivery task: reads the outbox for the heads of consultations' queues that are due,
//! claims each (one conditional `UPDATE`, so two processes never send the same attempt), and
//! posts it, at most `concurrency` at once.
//!
//! - Order: only a consultation's lowest pending event is ever attempted, so a later event is
//!   not sent before an earlier one was delivered or given up, per institution.
//! - At least once: an event is marked delivered only after a 2xx answer; an attempt cut off
//!   (a crash, a shutdown past its deadline) leaves it pending with its claim, which lapses
//!   after the attempt's timeout and a margin, and it is sent again, with the same id and
//!   body. Receivers deduplicate by the event id.
//! - Retries: any other answer, a timeout or a connection failure schedules the next attempt
//!   after `domain::webhook::backoff_ms`; after `max_attempts` the event is failed (visible in
//!   the deliveries list, audited as `webhook.delivery_failed`) and the consultation's next
//!   event goes on.
//! - Limits: the attempt's timeout (connecting, sending, the answer's head and the part of
//!   its body read), at most `max_response_bytes` of the answer read, redirects not followed,
//!   no proxy, every address checked against the policy (`resolver.rs`).
//!
//! Stopping: [`Delivery::stop`] claims nothing more and waits for the attempts under way up to
//! its deadline, then abandons them (pending, sent again later).

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde_json::json;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinSet;

use super::Settings;
use super::resolver::Filtering;
use super::signature;
use crate::audit::{Action, Actor, AuditEvent, AuditLog, Outcome};
use crate::domain::clock::{now_unix, now_unix_ms};
use crate::domain::webhook::{WebhookUrl, backoff_ms};
use crate::storage::{AttemptEnd, Db, DueEvent};

/// How often the full outboxes' drops are looked for and audited.
const DROPS_CHECK: Duration = Duration::from_secs(5);
/// Added to the attempt's timeout for its claim, so a live attempt is never claimed twice.
const CLAIM_MARGIN_MS: i64 = 5_000;

/// The running task and what stops it.
pub struct Delivery {
    stop: oneshot::Sender<Duration>,
    task: tokio::task::JoinHandle<()>,
}

/// How one attempt went.
#[derive(Debug)]
struct Attempt {
    status: Option<u16>,
    /// A few words on what went wrong; never the URL, a body or a secret.
    error: Option<String>,
}

impl Attempt {
    fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

impl Delivery {
    pub(super) fn start(
        db: Db,
        audit: AuditLog,
        settings: Arc<Settings>,
        roots: Vec<reqwest::Certificate>,
        wake: Arc<Notify>,
    ) -> Self {
        let (stop, stopped) = oneshot::channel();
        let client = client(&settings, roots);
        let task = tokio::spawn(run(db, audit, settings, client, wake, stopped));
        Self { stop, task }
    }

    /// Stops claiming, waits up to `deadline` for the attempts under way, abandons the rest.
    pub async fn stop(self, deadline: Duration) {
        let _ = self.stop.send(deadline);
        if tokio::time::timeout(deadline + Duration::from_secs(1), self.task)
            .await
            .is_err()
        {
            tracing::warn!("webhook delivery did not stop within its deadline");
        }
    }
}

/// The client every attempt goes through: the public roots and `roots` (`webhooks.ca_file`,
/// checked when read) trusted.
fn client(settings: &Settings, roots: Vec<reqwest::Certificate>) -> reqwest::Client {
    roots
        .into_iter()
        .fold(reqwest::Client::builder(), |b, root| {
            b.add_root_certificate(root)
        })
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(Filtering(settings.policy)))
        .connect_timeout(settings.timeout)
        .timeout(settings.timeout)
        .user_agent(concat!("huizhen-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the webhook client's settings are valid")
}

async fn run(
    db: Db,
    audit: AuditLog,
    settings: Arc<Settings>,
    client: reqwest::Client,
    wake: Arc<Notify>,
    mut stopped: oneshot::Receiver<Duration>,
) {
    let mut running: JoinSet<()> = JoinSet::new();
    let mut drops = tokio::time::interval(DROPS_CHECK);
    drops.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = loop {
        fill(&db, &audit, &settings, &client, &mut running).await;
        tokio::select! {
            d = &mut stopped => break d.unwrap_or(Duration::ZERO),
            _ = wake.notified() => {}
            _ = tokio::time::sleep(settings.poll) => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = drops.tick() => audit_drops(&db, &audit).await,
        }
    };
    let drain = async { while running.join_next().await.is_some() {} };
    if tokio::time::timeout(deadline, drain).await.is_err() {
        tracing::info!(
            abandoned = running.len(),
            "webhook attempts under way at shutdown are left pending; they are sent again after a restart"
        );
        running.abort_all();
    }
}

/// Claims due events up to the concurrency limit and starts their attempts.
async fn fill(
    db: &Db,
    audit: &AuditLog,
    settings: &Arc<Settings>,
    client: &reqwest::Client,
    running: &mut JoinSet<()>,
) {
    while running.try_join_next().is_some() {}
    let free = settings.concurrency.saturating_sub(running.len());
    if free == 0 {
        return;
    }
    let now = now_unix_ms();
    let due = match db.due_webhook_events(now, free as i64).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "the webhook outbox could not be read");
            return;
        }
    };
    let timeout_ms = i64::try_from(settings.timeout.as_millis()).unwrap_or(i64::MAX);
    for event in due {
        let lease = now
            .saturating_add(timeout_ms)
            .saturating_add(CLAIM_MARGIN_MS);
        match db
            .claim_webhook_event(&event.id, event.next_attempt_ms, lease)
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "a webhook event could not be claimed");
                continue;
            }
        }
        let (db, audit, settings, client) =
            (db.clone(), audit.clone(), settings.clone(), client.clone());
        running.spawn(async move {
            let attempt = attempt(&client, &settings, &event).await;
            finish(&db, &audit, &settings, &event, attempt).await;
        });
    }
}

/// One POST of `event`, signed now.
async fn attempt(client: &reqwest::Client, settings: &Settings, event: &DueEvent) -> Attempt {
    // The rules in force now, not only when the URL was set.
    if WebhookUrl::parse(&event.url, settings.policy).is_err() {
        return Attempt {
            status: None,
            error: Some("the endpoint's URL is no longer allowed".into()),
        };
    }
    let t = now_unix();
    let sent = client
        .post(&event.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            signature::HEADER,
            signature::header(&event.secret, t, event.body.as_bytes()),
        )
        .header("Huizhen-Event-Id", event.id.as_str())
        .header("Huizhen-Event-Type", event.kind.as_str())
        .header("Huizhen-Consultation", &event.consultation)
        .header("Huizhen-Sequence", event.seq.to_string())
        .body(event.body.clone())
        .send()
        .await;
    let mut response = match sent {
        Ok(r) => r,
        Err(e) => {
            let what = if e.is_timeout() {
                "timed out"
            } else if let Some(tls) = tls_failure(&e) {
                tls
            } else if e.is_connect() {
                "could not connect"
            } else {
                "request failed"
            };
            return Attempt {
                status: None,
                error: Some(what.into()),
            };
        }
    };
    let status = response.status().as_u16();
    // Read a little of the answer (a receiver may expect it read), never more than the cap.
    let mut read = 0usize;
    while read < settings.max_response_bytes {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            _ => break,
        }
    }
    Attempt {
        status: Some(status),
        error: (!(200..300).contains(&status)).then(|| format!("answered {status}")),
    }
}

/// What went wrong in the TLS handshake, if that is what failed: an endpoint whose certificate
/// no trusted authority issued (a hospital's own CA missing from `webhooks.ca_file`) is told
/// apart from one that could not be reached, in the deliveries list and the logs.
fn tls_failure(e: &reqwest::Error) -> Option<&'static str> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(match tls {
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
                    "TLS: the endpoint's certificate is issued by an authority not trusted (see webhooks.ca_file)"
                }
                rustls::Error::InvalidCertificate(_) => {
                    "TLS: the endpoint's certificate is not valid for it"
                }
                _ => "TLS handshake failed",
            });
        }
        // rustls's error travels inside io::Errors (one in another), whose `source` skips
        // what they wrap: look inside them.
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as _),
            None => err.source(),
        };
    }
    None
}

/// Records how the attempt went: delivered, again later, or given up (audited).
async fn finish(db: &Db, audit: &AuditLog, settings: &Settings, event: &DueEvent, a: Attempt) {
    let attempts = event.attempts + 1;
    let now = now_unix_ms();
    let end = if a.delivered() {
        AttemptEnd::Delivered
    } else if attempts >= i64::from(settings.max_attempts) {
        AttemptEnd::Failed
    } else {
        let jitter: f64 = rand::rng().random();
        let wait = backoff_ms(
            u32::try_from(attempts).unwrap_or(u32::MAX),
            settings.backoff_base_ms,
            settings.backoff_max_ms,
            jitter,
        );
        AttemptEnd::Retry {
            at_ms: now.saturating_add(i64::try_from(wait).unwrap_or(i64::MAX)),
        }
    };
    if let Err(e) = db
        .finish_webhook_attempt(
            &event.id,
            &event.institution_id,
            end,
            a.status,
            a.error.as_deref(),
            now,
        )
        .await
    {
        // The claim lapses and the event is attempted again: at least once.
        tracing::warn!(event = %event.id, error = %e, "a webhook attempt's outcome could not be recorded");
        return;
    }
    match end {
        AttemptEnd::Delivered => {
            tracing::debug!(event = %event.id, attempts, "webhook event delivered")
        }
        AttemptEnd::Retry { .. } => {
            tracing::info!(event = %event.id, attempts, status = a.status, "webhook attempt failed; will retry")
        }
        AttemptEnd::Failed => {
            tracing::warn!(event = %event.id, attempts, status = a.status, "webhook event given up");
            audit
                .record_or_log(
                    AuditEvent::new(Actor::System, Action::WebhookDeliveryFailed)
                        .object("webhook_event", &event.id)
                        .outcome(Outcome::Error)
                        .detail(json!({
                            "institution": event.institution_id,
                            "type": event.kind.as_str(),
                            "consultation": event.consultation,
                            "sequence": event.seq,
                            "attempts": attempts,
                            "last_status": a.status,
                            "last_error": a.error,
                        })),
                )
                .await;
        }
    }
}

/// Audits events dropped from full outboxes since the last time (one entry per institution
/// and check, however many were dropped).
async fn audit_drops(db: &Db, audit: &AuditLog) {
    let found = match db.unaudited_webhook_drops().await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "webhook drops could not be read");
            return;
        }
    };
    for (institution, dropped, audited) in found {
        tracing::warn!(institution = %institution, dropped = dropped - audited, "a webhook outbox is full: events were not queued");
        audit
            .record_or_log(
                AuditEvent::new(Actor::System, Action::WebhookOutboxFull)
                    .object("institution", &institution)
                    .outcome(Outcome::Error)
                    .detail(json!({"dropped": dropped - audited, "dropped_total": dropped})),
            )
            .await;
        if let Err(e) = db.mark_webhook_drops_audited(&institution, dropped).await {
            tracing::warn!(error = %e, "webhook drops could not be marked audited");
        }
    }
}
