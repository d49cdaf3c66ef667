//! Institutions' outgoing webhooks: each institution may have one endpoint of its own systems,
//! told of the referral steps and consultation events that concern it (`domain::webhook`
//! lists them), signed, retried, at least once and in order per consultation.
//!
//! Owns an endpoint's configuration (the URL's rules, the secret generated here and shown
//! once), and the delivery task ([`delivery`]) that reads the outbox the steps' transactions
//! wrote (`storage::webhooks`), posts each consultation's events one after another, retries
//! with backoff and gives up after the limit. It audits what it does on its own (an event given
//! up, events dropped from a full outbox); configuration changes are audited by whoever makes
//! them (the HTTP edge, the command line), who knows the actor. It never decides who may
//! configure an institution's webhook (the permission table does), never logs a secret, a URL's
//! path or a body.

pub mod delivery;
mod resolver;
pub mod roots;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use crate::audit::AuditLog;
use crate::config::WebhooksConfig;
use crate::domain::clock::now_unix;
use crate::domain::ids::{InstitutionId, WebhookEventId};
use crate::domain::webhook::{AddressPolicy, DeliveryState, UrlError, WebhookUrl};
use crate::storage::{Db, DeliveryRow, StorageError, WebhookRow};

pub use delivery::Delivery;

/// The most deliveries one list answers.
pub const MAX_LISTED: i64 = 200;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("this institution has no webhook; set one with its URL first")]
    NotConfigured,
    #[error("no such institution")]
    UnknownInstitution,
    /// A retry of an event that is not one of the institution's failed events.
    #[error("no failed event of that id: only an event given up after its last attempt is retried")]
    NoFailedEvent,
    /// The institution's outbox is full: a retried event takes a place like a new one.
    #[error("the outbox holds {0} events waiting already, the most it may; retry once it empties")]
    OutboxFull(i64),
    #[error(transparent)]
    Storage(StorageError),
}

impl WebhookError {
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::Url(e) => e.code(),
            WebhookError::NotConfigured => "no_webhook",
            WebhookError::UnknownInstitution | WebhookError::NoFailedEvent => "not_found",
            WebhookError::OutboxFull(_) => "limit_reached",
            WebhookError::Storage(_) => "internal",
        }
    }
}

impl From<StorageError> for WebhookError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => WebhookError::NotConfigured,
            StorageError::Limit { max, .. } => WebhookError::OutboxFull(max),
            other => WebhookError::Storage(other),
        }
    }
}

/// Why delivery could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// `webhooks.ca_file` cannot be used (the message names it).
    #[error(transparent)]
    CaFile(#[from] roots::CaFileError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The delivery's settings, from `webhooks.*`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub policy: AddressPolicy,
    pub timeout: Duration,
    pub max_response_bytes: usize,
    pub concurrency: usize,
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    pub max_pending: i64,
    pub poll: Duration,
    /// Certificates trusted besides the public roots (`roots`); empty: none.
    pub ca_file: std::path::PathBuf,
}

impl Settings {
    pub fn from_config(c: &WebhooksConfig) -> Self {
        Self {
            policy: AddressPolicy {
                allow_http_loopback: c.allow_http_loopback,
                allow_private: c.allow_private_networks,
            },
            timeout: Duration::from_secs(c.timeout_s),
            max_response_bytes: c.max_response_bytes,
            concurrency: c.concurrency,
            max_attempts: c.max_attempts,
            backoff_base_ms: c.backoff_base_ms,
            backoff_max_ms: c.backoff_max_s.saturating_mul(1000),
            max_pending: i64::try_from(c.max_pending_per_institution).unwrap_or(i64::MAX),
            poll: Duration::from_millis(c.poll_interval_ms),
            ca_file: std::path::PathBuf::from(&c.ca_file),
        }
    }
}

/// What a change of configuration did, for the caller to audit and answer with.
#[derive(Debug, Clone)]
pub struct Changed {
    pub webhook: WebhookRow,
    /// The new secret, when one was made (creation, rotation): shown once, never stored
    /// anywhere but the database.
    pub secret: Option<String>,
    pub created: bool,
}

/// The handle the HTTP edge, the command line and the server use; cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    db: Db,
    audit: AuditLog,
    settings: Arc<Settings>,
    wake: Arc<tokio::sync::Notify>,
}

impl Webhooks {
    pub fn new(db: Db, audit: AuditLog, settings: Settings) -> Self {
        Self {
            db,
            audit,
            settings: Arc::new(settings),
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Tells the delivery task that events were queued (it also reads the outbox on its own).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    async fn institution_exists(&self, id: &InstitutionId) -> Result<(), WebhookError> {
        match self.db.institution(id).await? {
            Some(_) => Ok(()),
            None => Err(WebhookError::UnknownInstitution),
        }
    }

    pub async fn get(&self, institution: &InstitutionId) -> Result<WebhookRow, WebhookError> {
        self.institution_exists(institution).await?;
        self.db
            .webhook(institution)
            .await?
            .ok_or(WebhookError::NotConfigured)
    }

    /// Sets the endpoint: a new one needs its URL and gets a secret (shown once); an existing
    /// one keeps what is not given. `enabled` defaults to on for a new endpoint.
    pub async fn set(
        &self,
        institution: &InstitutionId,
        url: Option<&str>,
        enabled: Option<bool>,
    ) -> Result<Changed, WebhookError> {
        self.institution_exists(institution).await?;
        let url = url
            .map(|u| WebhookUrl::parse(u, self.settings.policy))
            .transpose()?;
        let now = now_unix();
        match self.db.webhook(institution).await? {
            Some(existing) => {
                let url = url.map_or(existing.url.clone(), |u| u.as_str().to_owned());
                let webhook = self
                    .db
                    .update_webhook(institution, &url, enabled.unwrap_or(existing.enabled), now)
                    .await?;
                self.wake();
                Ok(Changed {
                    webhook,
                    secret: None,
                    created: false,
                })
            }
            None => {
                let url = url.ok_or(WebhookError::NotConfigured)?;
                let secret = signature::new_secret();
                let created = self
                    .db
                    .create_webhook(
                        institution,
                        url.as_str(),
                        &secret,
                        enabled.unwrap_or(true),
                        self.settings.max_pending,
                        now,
                    )
                    .await;
                let webhook = match created {
                    // Two administrators at once: the other's came first; change theirs.
                    Err(StorageError::Conflict) => {
                        return Box::pin(self.set(institution, Some(url.as_str()), enabled)).await;
                    }
                    other => other?,
                };
                Ok(Changed {
                    webhook,
                    secret: Some(secret),
                    created: true,
                })
            }
        }
    }

    /// A new secret; the old one signs nothing from now on (events already queued included).
    pub async fn rotate(&self, institution: &InstitutionId) -> Result<Changed, WebhookError> {
        self.institution_exists(institution).await?;
        let secret = signature::new_secret();
        let webhook = self
            .db
            .rotate_webhook_secret(institution, &secret, now_unix())
            .await?;
        Ok(Changed {
            webhook,
            secret: Some(secret),
            created: false,
        })
    }

    /// The institution's recent events and where each stands, newest first.
    pub async fn deliveries(
        &self,
        institution: &InstitutionId,
        state: Option<DeliveryState>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, WebhookError> {
        self.institution_exists(institution).await?;
        Ok(self
            .db
            .webhook_deliveries(institution, state, limit.clamp(1, MAX_LISTED))
            .await?)
    }

    /// Sends `institution`'s failed event `id` again (an endpoint fixed since, an outage
    /// over): back in the outbox with its sequence, attempted now (the delivery task is
    /// woken), with a fresh round of attempts.
    pub async fn retry(
        &self,
        institution: &InstitutionId,
        id: &WebhookEventId,
    ) -> Result<DeliveryRow, WebhookError> {
        self.institution_exists(institution).await?;
        let row = self
            .db
            .retry_webhook_event(institution, id, crate::domain::clock::now_unix_ms())
            .await?
            .ok_or(WebhookError::NoFailedEvent)?;
        self.wake();
        Ok(row)
    }

    /// Starts the delivery task (see [`delivery`]), with the extra trust anchors of
    /// `ca_file` read and checked now (an unusable file stops the start, naming it).
    pub async fn start(&self) -> Result<Delivery, StartError> {
        let roots = roots::load(&self.settings.ca_file)?;
        if !roots.is_empty() {
            tracing::info!(
                certificates = roots.len(),
                "webhook endpoints' certificates may also be issued by the authorities of webhooks.ca_file"
            );
        }
        // The limit in force, where the statements that queue read it.
        self.db
            .set_webhook_limits(self.settings.max_pending)
            .await?;
        Ok(Delivery::start(
            self.db.clone(),
            self.audit.clone(),
            self.settings.clone(),
            roots,
            self.wake.clone(),
        ))
    }
}
