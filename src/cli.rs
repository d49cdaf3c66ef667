//! The binary's administrative commands for the network's organisation: institutions and
//! their departments, and where accounts belong. Every change is audited as the server's own
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

async fn audited(audit: &AuditLog, event: AuditEvent) -> anyhow::Result<()> {
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
    }
    Ok(())
}
