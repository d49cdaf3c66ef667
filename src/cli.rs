//! The binary's administrative commands for the network's organisation: institutions and
//! their departments, where accounts belong, and institutions' webhooks. Every change is audited as the server's own
//! (`Actor::System`, `"via": "command_line"`), through the trail the server writes.

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;

use huizhen::audit::{Action, Actor, AuditEvent, AuditLog};
use huizhen::domain::ids::{DepartmentId, InstitutionId};
use huizhen::domain::organisation::{InstitutionKind, org_name, profile_text};
use huizhen::storage::{Db, Department, Institution, StorageError};

#[derive(Subcommand)]
pub enum InstitutionCommand {
    /// Add an institution (a hospital, a township clinic, an internet hospital).
    Add {
        #[arg(long)]
        name: String,
        /// hospital, township_clinic or internet_hospital
        #[arg(long, default_value = "hospital")]
        kind: String,
    },
    /// List institutions and their departments.
    List,
    /// Rename an institution or change its kind (the migration's "Default institution",
    /// usually).
    Rename {
        /// The institution's id or current name.
        #[arg(long)]
        institution: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        kind: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum DepartmentCommand {
    /// Add a department to an institution.
    Add {
        /// The institution's id or name.
        #[arg(long)]
        institution: String,
        #[arg(long)]
        name: String,
    },
    /// Rename a department.
    Rename {
        /// The institution's id or name.
        #[arg(long)]
        institution: String,
        /// The department's id or current name.
        #[arg(long)]
        department: String,
        #[arg(long)]
        name: String,
    },
    /// Remove a department nobody belongs to and no consultation request was addressed to.
    Remove {
        /// The institution's id or name.
        #[arg(long)]
        institution: String,
        /// The department's id or name.
        #[arg(long)]
        department: String,
    },
}

pub fn parse_kind(kind: &str) -> anyhow::Result<InstitutionKind> {
    InstitutionKind::parse(kind)
        .context("kind must be hospital, township_clinic or internet_hospital")
}

/// An institution named by id or by name.
pub async fn find_institution(db: &Db, which: &str) -> anyhow::Result<Institution> {
    let found = match InstitutionId::parse(which) {
        Some(id) => db.institution(&id).await?,
        None => db.institution_by_name(which.trim()).await?,
    };
    found.with_context(|| format!("no institution {which:?} (see `huizhen institution list`)"))
}

/// A department of `institution`, named by id or by name.
pub async fn find_department(
    db: &Db,
    institution: &Institution,
    which: &str,
) -> anyhow::Result<Department> {
    let found = match DepartmentId::parse(which) {
        Some(id) => db
            .department(&id)
            .await?
            .filter(|d| d.institution_id == institution.id),
        None => db.department_by_name(&institution.id, which.trim()).await?,
    };
    found.with_context(|| format!("no department {which:?} in {}", institution.name))
}

/// A title or specialty as given on the command line.
pub fn profile(field: &str, raw: &str) -> anyhow::Result<String> {
    profile_text(raw).map_err(|e| anyhow::anyhow!("{field}: {e}"))
}

/// Appends a command's audit entry; a command whose step cannot be recorded fails.
pub async fn audited(audit: &AuditLog, event: AuditEvent) -> anyhow::Result<()> {
    audit
        .record(event)
        .await
        .context("writing the audit trail")?;
    Ok(())
}

pub async fn institution(db: &Db, audit: &AuditLog, cmd: InstitutionCommand) -> anyhow::Result<()> {
    match cmd {
        InstitutionCommand::Add { name, kind } => {
            let kind = parse_kind(&kind)?;
            let name = org_name(&name).map_err(|e| anyhow::anyhow!("name: {e}"))?;
            let created = match db.create_institution(&name, kind).await {
                Err(StorageError::Conflict) => bail!("an institution named {name:?} exists"),
                other => other?,
            };
            audited(
                audit,
                AuditEvent::new(Actor::System, Action::InstitutionCreated)
                    .object("institution", &created.id)
                    .detail(json!({"kind": kind.as_str(), "via": "command_line"})),
            )
            .await?;
            println!(
                "created {} ({}) as {}",
                created.name,
                created.id,
                kind.as_str()
            );
        }
        InstitutionCommand::List => {
            let departments = db.list_departments(None).await?;
            for i in db.list_institutions().await? {
                println!("{}\t{}\t{}", i.id, i.kind.as_str(), i.name);
                for d in departments.iter().filter(|d| d.institution_id == i.id) {
                    println!("  {}\t{}", d.id, d.name);
                }
            }
        }
        InstitutionCommand::Rename {
            institution,
            name,
            kind,
        } => {
            let found = find_institution(db, &institution).await?;
            let kind = kind
                .as_deref()
                .map(parse_kind)
                .transpose()?
                .unwrap_or(found.kind);
            let name = org_name(&name).map_err(|e| anyhow::anyhow!("name: {e}"))?;
            match db.rename_institution(&found.id, &name, kind).await {
                Err(StorageError::Conflict) => bail!("an institution named {name:?} exists"),
                other => other?,
            }
            audited(
                audit,
                AuditEvent::new(Actor::System, Action::InstitutionRenamed)
                    .object("institution", &found.id)
                    .detail(json!({"kind": kind.as_str(), "via": "command_line"})),
            )
            .await?;
            println!("{} is now {name} ({})", found.id, kind.as_str());
        }
    }
    Ok(())
}

pub async fn department(db: &Db, audit: &AuditLog, cmd: DepartmentCommand) -> anyhow::Result<()> {
    match cmd {
        DepartmentCommand::Add { institution, name } => {
            let found = find_institution(db, &institution).await?;
            let name = org_name(&name).map_err(|e| anyhow::anyhow!("name: {e}"))?;
            let created = match db.create_department(&found.id, &name).await {
                Err(StorageError::Conflict) => {
                    bail!("{} has a department named {name:?}", found.name)
                }
                other => other?,
            };
            audited(
                audit,
                AuditEvent::new(Actor::System, Action::DepartmentCreated)
                    .object("department", &created.id)
                    .detail(json!({"institution": found.id, "via": "command_line"})),
            )
            .await?;
            println!(
                "created {} ({}) in {}",
                created.name, created.id, found.name
            );
        }
        DepartmentCommand::Rename {
            institution,
            department,
            name,
        } => {
            let found = find_institution(db, &institution).await?;
            let dept = find_department(db, &found, &department).await?;
            let name = org_name(&name).map_err(|e| anyhow::anyhow!("name: {e}"))?;
            match db.rename_department(&dept.id, &name).await {
                Err(StorageError::Conflict) => {
                    bail!("{} has a department named {name:?}", found.name)
                }
                other => other?,
            }
            audited(
                audit,
                AuditEvent::new(Actor::System, Action::DepartmentRenamed)
                    .object("department", &dept.id)
                    .detail(json!({"institution": found.id, "via": "command_line"})),
            )
            .await?;
            println!("renamed {} to {name} in {}", dept.name, found.name);
        }
        DepartmentCommand::Remove {
            institution,
            department,
        } => {
            let found = find_institution(db, &institution).await?;
            let dept = find_department(db, &found, &department).await?;
            match db.remove_department(&dept.id).await {
                Err(StorageError::Conflict) => bail!(
                    "{} still has accounts, or received consultation requests: move its \
                     accounts to another department first (one that received requests stays)",
                    dept.name
                ),
                other => other?,
            }
            audited(
                audit,
                AuditEvent::new(Actor::System, Action::DepartmentRemoved)
                    .object("department", &dept.id)
                    .detail(
                        json!({"institution": found.id, "name": dept.name, "via": "command_line"}),
                    ),
            )
            .await?;
            println!("removed {} from {}", dept.name, found.name);
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Show an institution's webhook (never its secret).
    Show {
        /// The institution's id or name.
        #[arg(long)]
        institution: String,
    },
    /// Set an institution's webhook URL (https; see [webhooks] in the configuration); a new
    /// webhook's secret is printed once. Enabled unless --disabled is given.
    Set {
        #[arg(long)]
        institution: String,
        #[arg(long)]
        url: String,
        #[arg(long)]
        disabled: bool,
    },
    /// Turn an institution's webhook back on.
    Enable {
        #[arg(long)]
        institution: String,
    },
    /// Turn an institution's webhook off: no new events are queued for it, and what is
    /// queued waits until it is enabled again.
    Disable {
        #[arg(long)]
        institution: String,
    },
    /// Make a new secret and print it once; the old one signs nothing from now on.
    Rotate {
        #[arg(long)]
        institution: String,
    },
    /// The institution's recent events and where each stands, newest first.
    Deliveries {
        #[arg(long)]
        institution: String,
        /// pending, delivered or failed
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

fn print_webhook(w: &huizhen::storage::WebhookRow) {
    println!("institution\t{}", w.institution_id);
    println!("url\t{}", w.url);
    println!("enabled\t{}", w.enabled);
    println!("pending\t{} (at most {})", w.pending, w.max_pending);
    println!("dropped\t{}", w.dropped);
}

pub async fn webhook(
    db: &Db,
    audit: &AuditLog,
    settings: huizhen::webhooks::Settings,
    cmd: WebhookCommand,
) -> anyhow::Result<()> {
    use huizhen::domain::webhook::{DeliveryState, WebhookUrl};
    use huizhen::webhooks::Webhooks;
    let hooks = Webhooks::new(db.clone(), audit.clone(), settings);
    let configured = |c: &huizhen::webhooks::Changed| {
        AuditEvent::new(Actor::System, Action::WebhookConfigured)
            .object("institution", &c.webhook.institution_id)
            .detail(json!({
                "created": c.created,
                "enabled": c.webhook.enabled,
                "host": WebhookUrl::from_stored(c.webhook.url.clone()).host(),
                "via": "command_line",
            }))
    };
    match cmd {
        WebhookCommand::Show { institution } => {
            let found = find_institution(db, &institution).await?;
            print_webhook(&hooks.get(&found.id).await?);
        }
        WebhookCommand::Set {
            institution,
            url,
            disabled,
        } => {
            let found = find_institution(db, &institution).await?;
            let changed = hooks.set(&found.id, Some(&url), Some(!disabled)).await?;
            audited(audit, configured(&changed)).await?;
            print_webhook(&changed.webhook);
            if let Some(secret) = &changed.secret {
                println!("secret\t{secret}");
                println!("(shown once: give it to the institution's systems now)");
            }
        }
        WebhookCommand::Enable { institution } => {
            let found = find_institution(db, &institution).await?;
            let changed = hooks.set(&found.id, None, Some(true)).await?;
            audited(audit, configured(&changed)).await?;
            print_webhook(&changed.webhook);
        }
        WebhookCommand::Disable { institution } => {
            let found = find_institution(db, &institution).await?;
            let changed = hooks.set(&found.id, None, Some(false)).await?;
            audited(audit, configured(&changed)).await?;
            print_webhook(&changed.webhook);
        }
        WebhookCommand::Rotate { institution } => {
            let found = find_institution(db, &institution).await?;
            let changed = hooks.rotate(&found.id).await?;
            audited(
                audit,
                AuditEvent::new(Actor::System, Action::WebhookSecretRotated)
                    .object("institution", &found.id)
                    .detail(json!({"via": "command_line"})),
            )
            .await?;
            println!("secret\t{}", changed.secret.unwrap_or_default());
            println!("(shown once: give it to the institution's systems now)");
        }
        WebhookCommand::Deliveries {
            institution,
            state,
            limit,
        } => {
            let found = find_institution(db, &institution).await?;
            let state = state
                .as_deref()
                .map(|s| {
                    DeliveryState::parse(s).context("state must be pending, delivered or failed")
                })
                .transpose()?;
            for d in hooks.deliveries(&found.id, state, limit).await? {
                println!(
                    "{}\t{}\t{}\t#{}\t{}\tattempts {}\t{}",
                    d.id,
                    d.kind.as_str(),
                    d.consultation,
                    d.seq,
                    d.state.as_str(),
                    d.attempts,
                    d.last_error.as_deref().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}
