//! The `huizhen` command: run the server, and administer it.

mod cli;

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use huizhen::audit::{Action, Actor, AuditEvent, AuditKey, AuditLog, Verification};
use huizhen::auth::{MAX_PASSWORD_BYTES, check_new_password, hash_password};
use huizhen::domain::clock::now_unix;

use huizhen::config::Config;
use huizhen::domain::role::AccountRole;
use huizhen::server::Server;
use huizhen::storage::{Db, NewAccount, StorageError};
use huizhen::tls::CertSource;

#[derive(Parser)]
#[command(
    name = "huizhen",
    version,
    about = "Self-hosted telemedicine consultation server"
)]
struct Cli {
    /// TOML configuration file (every key is optional; see `huizhen config`).
    #[arg(long, short, global = true, env = "HUIZHEN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Print the configuration with every default.
    Config,
    /// Manage clinician accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the network's institutions.
    #[command(subcommand)]
    Institution(cli::InstitutionCommand),
    /// Manage institutions' departments.
    #[command(subcommand)]
    Department(cli::DepartmentCommand),
    /// Check or export the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage an institution's webhook to its own systems.
    #[command(subcommand)]
    Webhook(cli::WebhookCommand),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain from the first entry with the audit key (audit.key_file) and
    /// compare every anchor of the anchor file (audit.anchor_file) with it; exit status 1 and
    /// the first broken link or anchor if the trail was altered, rewritten or cut short.
    Verify,
    /// Write every entry as JSON Lines to standard output.
    Export,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a clinician account.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        display_name: String,
        /// doctor, specialist, admin, institution_admin, pharmacist, supervisor (of the
        /// account's institution) or network_supervisor
        #[arg(long, default_value = "doctor")]
        role: String,
        /// The institution (id or name) the account belongs to; the migration's "Default
        /// institution" if none is given.
        #[arg(long)]
        institution: Option<String>,
        /// The department (id or name) within the institution.
        #[arg(long)]
        department: Option<String>,
        /// Professional title as shown to colleagues and patients (主任医师, Attending).
        #[arg(long, default_value = "")]
        title: String,
        /// Specialty, as the directory searches it (cardiology, 心血管内科).
        #[arg(long, default_value = "")]
        specialty: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Move an account to another institution or department, or set its title or specialty.
    Set {
        #[arg(long)]
        username: String,
        #[arg(long)]
        institution: Option<String>,
        #[arg(long)]
        department: Option<String>,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        specialty: Option<String>,
    },
    /// List clinician accounts.
    List,
    /// Set a clinician's password; every session of the account ends (signed-in browsers go
    /// back to the sign-in form).
    Passwd {
        #[arg(long)]
        username: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// End every session of a clinician's account at once (a lost device, a departing
    /// colleague); the password stays.
    RevokeSessions {
        #[arg(long)]
        username: String,
    },
    /// Disable a clinician's account (a colleague who left): it cannot sign in, every session
    /// of it ends, it leaves the directory; its records stay.
    Disable {
        #[arg(long)]
        username: String,
    },
    /// Enable a disabled account again.
    Enable {
        #[arg(long)]
        username: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Config) = cli.command {
        print!("{}", Config::default_toml());
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref())?;
    huizhen::telemetry::init(&config.log);
    huizhen::telemetry::install_panic_hook();
    // Every command may create the data directory, the database or keys: private from the
    // first file on (`huizhen user add` usually runs before the first `serve`).
    huizhen::storage::private::restrict_new_files();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::Config => unreachable!("handled above"),
            Command::User(cmd) => user(config, cmd).await,
            Command::Audit(cmd) => audit(config, cmd).await,
            Command::Institution(cmd) => organisation(config, Some(cmd), None).await,
            Command::Department(cmd) => organisation(config, None, Some(cmd)).await,
            Command::Webhook(cmd) => webhook(config, cmd).await,
        }
    })
}

async fn audit(config: Config, cmd: AuditCommand) -> anyhow::Result<()> {
    let db = Db::connect(&config.database_url())
        .await
        .context("opening the database")?;
    let key = match cmd {
        // Checking needs the key, but never makes one: a missing key is news to report.
        AuditCommand::Verify => AuditKey::load(&config.audit_key_path())?,
        // Reading the entries needs none; nothing is appended.
        AuditCommand::Export => AuditKey::random(),
    };
    let anchors = config.audit_anchor_path();
    let log = AuditLog::new(db.clone(), key).with_anchor_file(anchors.clone());
    let result = match cmd {
        AuditCommand::Verify => {
            let v = log.verify().await?;
            print_verification(&v, &anchors);
            if v.ok() {
                Ok(())
            } else {
                Err(anyhow::anyhow!("audit trail verification failed"))
            }
        }
        AuditCommand::Export => {
            use futures_util::StreamExt;
            use std::io::Write;
            // A page at a time: the trail may be larger than memory.
            let mut pages = std::pin::pin!(log.export(None));
            let mut out = std::io::stdout().lock();
            while let Some(page) = pages.next().await {
                out.write_all(&page?)?;
            }
            out.flush()?;
            Ok(())
        }
    };
    db.close().await;
    result
}

fn print_verification(v: &Verification, anchors: &std::path::Path) {
    match &v.first_broken {
        None => println!("audit trail intact: {} entries", v.entries),
        Some(b) => println!(
            "audit trail BROKEN at entry {} ({:?}); {} entries checked",
            b.seq, b.kind, v.entries
        ),
    }
    println!("head: seq {} hash {}", v.head_seq, v.head_hash);
    match v.keyed_from {
        Some(1) => println!("keyed: every entry"),
        Some(seq) => println!(
            "keyed: from entry {seq} on (entries before it were written unkeyed, before the upgrade)"
        ),
        None => println!("keyed: no entry yet"),
    }
    println!(
        "anchors: {} checked in {}; entries up to {} anchored, {} after it not yet",
        v.anchors_checked,
        anchors.display(),
        v.anchored_seq,
        v.unanchored
    );
    if let Some(a) = &v.first_broken_anchor {
        let seq = a.seq.map_or("-".to_owned(), |s| s.to_string());
        let since = match a.last_good_seq {
            Some(good) => format!("; entries up to {good} still match their anchors"),
            None => String::new(),
        };
        println!(
            "anchor BROKEN on line {} (entry {seq}): {:?}{since}",
            a.line, a.kind
        );
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server = Server::start(config.clone()).await?;
    let port = server.https_addr.port();
    let shown_host = match server.https_addr.ip() {
        ip if ip.is_unspecified() => "localhost".to_string(),
        ip => ip.to_string(),
    };
    println!("huizhen is running");
    println!("  web client and API: https://{shown_host}:{port}/");
    let ports: Vec<String> = server
        .media
        .local_addrs()
        .iter()
        .map(|a| a.port().to_string())
        .collect();
    println!(
        "  media (UDP):        port{} {}",
        if ports.len() > 1 { "s" } else { "" },
        ports.join(", ")
    );
    for addr in server.media.announced() {
        println!("  announced to peers: {addr}");
    }
    if let Some(addr) = server.metrics_addr {
        println!("  metrics:            http://{addr}/metrics");
    }
    match server.cert_source {
        CertSource::Configured => {}
        CertSource::Development { generated_now } => println!(
            "  TLS: self-signed development certificate in {}{} (browsers will warn; see certs/README.md)",
            config.server.cert_dir.display(),
            if generated_now { ", generated now" } else { "" }
        ),
    }
    if server.db.list_users().await?.is_empty() {
        println!();
        println!("No clinician account yet. Create the first one with:");
        println!("  huizhen user add --username doctor --display-name \"Dr. Wang\" --role doctor");
        println!(
            "(with cargo: cargo run --release -- user add ...), then sign in at the URL above."
        );
    }
    shutdown_signal().await;
    println!("shutting down");
    server.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn organisation(
    config: Config,
    institution: Option<cli::InstitutionCommand>,
    department: Option<cli::DepartmentCommand>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.storage.data_dir)?;
    let db = Db::connect(&config.database_url())
        .await
        .context("opening the database")?;
    let audit = open_audit(&config, &db).await?;
    let result = match (institution, department) {
        (Some(cmd), _) => cli::institution(&db, &audit, cmd).await,
        (_, Some(cmd)) => cli::department(&db, &audit, cmd).await,
        (None, None) => Ok(()),
    };
    audit.close().await;
    db.close().await;
    result
}

async fn user(config: Config, cmd: UserCommand) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.storage.data_dir)?;
    let db = Db::connect(&config.database_url())
        .await
        .context("opening the database")?;
    // The commands that append open the trail as the server does (its key, checked against
    // it) before they change anything; appends wait for their commit (`record`).
    match cmd {
        UserCommand::Add {
            username,
            display_name,
            role,
            institution,
            department,
            title,
            specialty,
            password_stdin,
        } => {
            let role = AccountRole::parse(&role).context(
                "role must be doctor, specialist, admin, institution_admin, pharmacist, supervisor or network_supervisor",
            )?;
            let username = username.trim();
            if !huizhen::domain::text::is_valid_username(username) {
                bail!(
                    "username must be 1 to {} ASCII letters, digits or . _ - @",
                    huizhen::domain::text::MAX_USERNAME_CHARS
                );
            }
            // The rule the HTTP API applies: nothing that could show a different name.
            let display_name = huizhen::domain::text::display_name(
                &display_name,
                huizhen::domain::text::MAX_ACCOUNT_NAME_CHARS,
            )
            .map_err(|e| anyhow::anyhow!("display name: {e}"))?;
            let title = cli::profile("title", &title)?;
            let specialty = cli::profile("specialty", &specialty)?;
            let place = match &institution {
                Some(which) => cli::find_institution(&db, which).await?,
                None => {
                    cli::find_institution(&db, huizhen::domain::organisation::DEFAULT_INSTITUTION)
                        .await?
                }
            };
            let department = match &department {
                Some(which) => Some(cli::find_department(&db, &place, which).await?),
                None => None,
            };
            let password = read_password(password_stdin)?;
            let hash = hash_password(&password)?;
            let audit = open_audit(&config, &db).await?;
            let created = db
                .create_account(&NewAccount {
                    username,
                    display_name: &display_name,
                    role,
                    password_hash: &hash,
                    institution: &place.id,
                    department: department.as_ref().map(|d| &d.id),
                    title: &title,
                    specialty: &specialty,
                })
                .await;
            let user = match created {
                Ok(user) => user,
                Err(StorageError::Conflict) => {
                    audit.close().await;
                    bail!("a user named {username} exists already")
                }
                Err(e) => return Err(e.into()),
            };
            cli::audited(
                &audit,
                AuditEvent::new(Actor::System, Action::AccountCreated)
                    .object("user", &user.id)
                    .detail(serde_json::json!({
                        "role": role.as_str(),
                        "institution": user.institution_id,
                        "department": user.department_id,
                        "via": "command_line",
                    })),
            )
            .await?;
            audit.close().await;
            println!(
                "created {} ({}) as {} in {}{}",
                user.username,
                user.id,
                role.as_str(),
                place.name,
                department
                    .map(|d| format!(", {}", d.name))
                    .unwrap_or_default()
            );
        }
        UserCommand::Set {
            username,
            institution,
            department,
            title,
            specialty,
        } => {
            let account = account_named(&db, &username).await?;
            let place = match &institution {
                Some(which) => cli::find_institution(&db, which).await?,
                None => cli::find_institution(&db, account.institution_id.as_str()).await?,
            };
            let moved = place.id != account.institution_id;
            let department = match &department {
                Some(which) => Some(cli::find_department(&db, &place, which).await?.id),
                // A department of the old institution does not follow the account.
                None if moved => None,
                None => account.department_id.clone(),
            };
            let title = match &title {
                Some(t) => cli::profile("title", t)?,
                None => account.title.clone(),
            };
            let specialty = match &specialty {
                Some(s) => cli::profile("specialty", s)?,
                None => account.specialty.clone(),
            };
            let audit = open_audit(&config, &db).await?;
            db.set_user_place(
                &account.id,
                &place.id,
                department.as_ref(),
                &title,
                &specialty,
            )
            .await?;
            cli::audited(
                &audit,
                AuditEvent::new(Actor::System, Action::AccountUpdated)
                    .object("user", &account.id)
                    .detail(serde_json::json!({
                        "institution": place.id,
                        "department": department,
                        "via": "command_line",
                    })),
            )
            .await?;
            audit.close().await;
            println!("{username} is in {}", place.name);
        }
        UserCommand::List => {
            let institutions = db.list_institutions().await?;
            let departments = db.list_departments(None).await?;
            // id, username, role, name, institution, title, department, specialty (tab-separated;
            // the last two empty where the account has none).
            for u in db.list_users().await? {
                let place = institutions
                    .iter()
                    .find(|i| i.id == u.institution_id)
                    .map(|i| i.name.as_str())
                    .unwrap_or("");
                let department = departments
                    .iter()
                    .find(|d| Some(&d.id) == u.department_id.as_ref())
                    .map(|d| d.name.as_str())
                    .unwrap_or("");
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    u.id,
                    u.username,
                    u.role.as_str(),
                    u.display_name,
                    place,
                    u.title,
                    department,
                    u.specialty
                );
            }
        }
        UserCommand::Passwd {
            username,
            password_stdin,
        } => {
            let account = account_named(&db, &username).await?;
            let password = read_password(password_stdin)?;
            let hash = hash_password(&password)?;
            let audit = open_audit(&config, &db).await?;
            let revoked =
                huizhen::sessions::reset_password(&db, &account.id, &hash, now_unix()).await?;
            cli::audited(
                &audit,
                AuditEvent::new(Actor::System, Action::PasswordChanged)
                    .object("user", &account.id)
                    .detail(serde_json::json!({
                        "sessions_revoked": revoked,
                        "via": "command_line",
                    })),
            )
            .await?;
            audit.close().await;
            println!("password changed for {username}; {revoked} session(s) ended");
        }
        UserCommand::RevokeSessions { username } => {
            let account = account_named(&db, &username).await?;
            let audit = open_audit(&config, &db).await?;
            let revoked = huizhen::sessions::revoke_all(&db, &account.id, now_unix()).await?;
            cli::audited(
                &audit,
                AuditEvent::new(Actor::System, Action::SessionsRevoked)
                    .object("user", &account.id)
                    .detail(serde_json::json!({
                        "sessions_revoked": revoked,
                        "via": "command_line",
                    })),
            )
            .await?;
            audit.close().await;
            println!("{revoked} session(s) of {username} ended");
        }
        UserCommand::Disable { username } => set_disabled(&config, &db, &username, true).await?,
        UserCommand::Enable { username } => set_disabled(&config, &db, &username, false).await?,
    }
    db.close().await;
    Ok(())
}

/// The account a command names by username.
async fn account_named(db: &Db, username: &str) -> anyhow::Result<huizhen::storage::User> {
    db.user_by_username(username)
        .await?
        .with_context(|| format!("no user named {username}"))
}

/// `huizhen user disable` / `enable`: as the administrators' console does it, audited as the
/// system.
async fn set_disabled(
    config: &Config,
    db: &Db,
    username: &str,
    disable: bool,
) -> anyhow::Result<()> {
    let account = account_named(db, username).await?;
    let audit = open_audit(config, db).await?;
    let now = now_unix();
    db.set_disabled(&account.id, disable.then_some(now)).await?;
    let revoked = if disable {
        huizhen::sessions::revoke_all(db, &account.id, now).await?
    } else {
        0
    };
    let action = if disable {
        Action::AccountDisabled
    } else {
        Action::AccountEnabled
    };
    cli::audited(
        &audit,
        AuditEvent::new(Actor::System, action)
            .object("user", &account.id)
            .detail(serde_json::json!({
                "sessions_revoked": revoked,
                "via": "command_line",
            })),
    )
    .await?;
    audit.close().await;
    if disable {
        println!("{username} disabled; {revoked} session(s) ended");
    } else {
        println!("{username} enabled");
    }
    Ok(())
}

async fn webhook(config: Config, cmd: cli::WebhookCommand) -> anyhow::Result<()> {
    config.validate()?;
    std::fs::create_dir_all(&config.storage.data_dir)?;
    let db = Db::connect(&config.database_url())
        .await
        .context("opening the database")?;
    let audit = open_audit(&config, &db).await?;
    let settings = huizhen::webhooks::Settings::from_config(&config.webhooks);
    let result = cli::webhook(&db, &audit, settings, cmd).await;
    audit.close().await;
    db.close().await;
    result
}

/// The audit trail as the server opens it (its key, checked against the trail), for a command
/// that appends to it.
async fn open_audit(config: &Config, db: &Db) -> anyhow::Result<AuditLog> {
    AuditLog::open(
        db.clone(),
        &config.audit_key_path(),
        config.audit_anchor_path(),
    )
    .await
    .context("opening the audit trail")
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut s = String::new();
        std::io::stdin()
            .take(MAX_PASSWORD_BYTES as u64 + 2)
            .read_to_string(&mut s)?;
        s.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        // Without a terminal (a script, a container's entrypoint) there is nothing to prompt
        // on: say what to do instead of "No such device or address".
        let no_terminal = |e: std::io::Error| {
            anyhow::anyhow!(
                "cannot prompt for a password ({e}): there is no terminal; pipe the password in \
                 with --password-stdin, e.g. `printf '%s' \"$PASSWORD\" | huizhen user add ... \
                 --password-stdin`"
            )
        };
        let first = rpassword::prompt_password("password: ").map_err(no_terminal)?;
        let again = rpassword::prompt_password("again: ").map_err(no_terminal)?;
        if first != again {
            bail!("the passwords differ");
        }
        first
    };
    check_new_password(&password)?;
    Ok(password)
}
