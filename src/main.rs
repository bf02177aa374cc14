//! The `koinonia` command: parses arguments and calls the library. Nothing else lives here.

use std::io::Read;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use koinonia::crypto::password;
use koinonia::ops::cli;
use koinonia::{App, Config};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "koinonia", version, about = "Two-way SMS/MMS inbox for churches")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API, webhooks and workers (the default command).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage churches.
    Church {
        #[command(subcommand)]
        action: ChurchAction,
    },
    /// Manage leader accounts.
    Leader {
        #[command(subcommand)]
        action: LeaderAction,
    },
    /// Embedded mode: a consistent copy of the database, media and secrets while serve runs.
    Backup {
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Self-check of the configuration; exits 1 when a check is an error.
    Doctor,
    /// Media retention.
    Retention {
        #[command(subcommand)]
        action: RetentionAction,
    },
    /// Scan the stored files again with the virus scanner's current signatures; a file now
    /// known to be malware is blocked and deleted (needs CLAMD_ADDRESS).
    Rescan {
        /// Only files stored on or after this day (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
    },
    /// Secret rotation.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Measure koinonia's paths against a baseline (developers).
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand)]
enum RetentionAction {
    /// One retention sweep now: deletes media older than --days (default MEDIA_RETENTION_DAYS).
    Run {
        #[arg(long)]
        days: Option<u32>,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Re-encrypt every stored phone number not under PHONE_ENCRYPTION_KEY (resumable).
    Reencrypt {
        /// Numbers read and committed together.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        batch: u64,
        /// Stop after re-encrypting this many numbers (run again to continue).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Print a new Web Push (VAPID) private key for VAPID_PRIVATE_KEY (base64url P-256 scalar).
    Vapid,
}

#[derive(Subcommand)]
enum BenchWhat {
    /// Stream a generated file through download → inspect → local store; compare with cp+sha256.
    Ingest {
        #[arg(long, default_value_t = 500)]
        size_mb: u64,
        /// Folder for the generated files (default: the system's temporary folder).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// Queue replies and send them to a stand-in Telnyx on loopback; sends/s and latency.
    Outbound {
        #[arg(long, default_value_t = 10_000)]
        messages: usize,
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// Signed inbound webhooks over loopback into `koinonia serve` processes: webhooks/s,
    /// latency, server CPU, then stored == acknowledged.
    Webhooks {
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        /// Connections held open by the client.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// `koinonia serve` processes sharing the database (more than one needs --database-url).
        #[arg(long, default_value_t = 1)]
        instances: usize,
        /// Distinct member numbers sending.
        #[arg(long, default_value_t = 1_000)]
        members: usize,
        /// A PostgreSQL server (postgres://…): the run creates a database of its own there and
        /// drops it afterwards. Default: a temporary SQLite file.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// Add a church's worth of rows to the configured database (the environment, as for
    /// `serve`): members and their conversations, messages, stored photos (rows only).
    Seed {
        #[command(flatten)]
        size: ChurchSize,
        /// The church that owns this number, or a new church "Bench" with it.
        #[arg(long, default_value = "+15550100000")]
        church_number: String,
    },
    /// Seed one church (a tenth full, then full) and measure the inbox, thread, search and
    /// library routes over loopback: p50/p95 and server CPU per request at both sizes.
    Read {
        #[command(flatten)]
        size: ChurchSize,
        /// Requests per route and size.
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// A PostgreSQL server (postgres://…): the run uses a new database there, dropped
        /// afterwards. Default: a temporary SQLite file.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

/// How much of a church `bench seed` and `bench read` make.
#[derive(clap::Args)]
struct ChurchSize {
    #[arg(long, default_value_t = 1_000_000)]
    messages: usize,
    #[arg(long, default_value_t = 10_000)]
    conversations: usize,
    #[arg(long, default_value_t = 100_000)]
    attachments: usize,
}

#[derive(Subcommand)]
enum ChurchAction {
    /// Create a church; prints its id.
    Create {
        #[arg(long)]
        name: String,
        /// The church's Telnyx number, E.164 (+15551230000).
        #[arg(long)]
        number: String,
        #[arg(long)]
        messaging_profile_id: Option<String>,
        /// The church's time zone, an IANA name (America/Chicago); the zone of exports. Default UTC.
        #[arg(long)]
        time_zone: Option<String>,
    },
}

#[derive(Subcommand)]
enum LeaderAction {
    /// Create a leader; prints its id. The password is read from standard input.
    Create {
        #[arg(long)]
        church: String,
        #[arg(long)]
        email: String,
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long)]
        admin: bool,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let command = args.command.unwrap_or(Command::Serve);
    // Benchmarks configure their own servers in a temporary folder: they read no configuration
    // and write nothing into the working folder. `bench seed` fills the configured database.
    let config = match &command {
        Command::Bench { what } if !matches!(what, BenchWhat::Seed { .. }) => None,
        Command::Keys { action: KeysAction::Vapid } => None,
        _ => match Config::from_env() {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("koinonia: configuration error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    koinonia::telemetry::init_tracing(config.as_ref().map_or(koinonia::config::LogFormat::Text, |c| c.log_format));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("koinonia: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match (command, config) {
        (Command::Bench { what: BenchWhat::Seed { size, church_number } }, Some(config)) => {
            let ChurchSize { messages, conversations, attachments } = size;
            let options = koinonia::ops::bench::SeedOptions { messages, conversations, attachments, church_number };
            runtime.block_on(async {
                println!("{}", koinonia::ops::bench::seed(&config, options).await?.render());
                Ok(())
            })
        }
        (Command::Bench { what }, _) => runtime.block_on(bench(what)),
        // A new key on standard output only (nothing logged), for VAPID_PRIVATE_KEY.
        (Command::Keys { action: KeysAction::Vapid }, _) => koinonia::notify::vapid::generate()
            .map(|key| println!("{key}"))
            .map_err(|e| anyhow::anyhow!("cannot generate a key: {e}")),
        (command, Some(config)) => runtime.block_on(run(command, config)),
        (_, None) => Err(anyhow::anyhow!("no configuration")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("koinonia: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(what: BenchWhat) -> anyhow::Result<()> {
    let folder = |dir: Option<std::path::PathBuf>| dir.unwrap_or_else(std::env::temp_dir);
    match what {
        BenchWhat::Ingest { size_mb, dir } => {
            println!("{}", koinonia::ops::bench::ingest(size_mb, &folder(dir)).await?.render());
        }
        BenchWhat::Outbound { messages, dir } => {
            println!("{}", koinonia::ops::bench::outbound(messages, &folder(dir)).await?.render());
        }
        BenchWhat::Webhooks { requests, concurrency, instances, members, database_url, dir } => {
            let options =
                koinonia::ops::bench::WebhooksOptions { requests, concurrency, instances, members, database_url };
            let report = koinonia::ops::bench::webhooks(options, &folder(dir)).await?;
            println!("{}", report.render());
            if !report.consistent() {
                anyhow::bail!("stored messages differ from acknowledged webhooks");
            }
        }
        BenchWhat::Seed { .. } => anyhow::bail!("bench seed needs the configuration"),
        BenchWhat::Read { size, requests, database_url, dir } => {
            let ChurchSize { messages, conversations, attachments } = size;
            let options =
                koinonia::ops::bench::ReadOptions { messages, conversations, attachments, requests, database_url };
            println!("{}", koinonia::ops::bench::read(options, &folder(dir)).await?.render());
        }
    }
    Ok(())
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Doctor => {
            let checks = koinonia::ops::doctor::run(&config).await;
            for c in &checks {
                println!("{c}");
            }
            if checks.iter().any(|c| c.level == koinonia::ops::doctor::Level::Error) {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Backup { to } => {
            let r = koinonia::ops::backup::run(&config, &to).await?;
            println!(
                "backup in {}: database {} bytes, {} media files ({} bytes), secrets.env",
                to.display(),
                r.database_bytes,
                r.media_files,
                r.media_bytes
            );
            Ok(())
        }
        Command::Retention { action: RetentionAction::Run { days } } => {
            let days = days.unwrap_or(config.media_retention_days);
            if days == 0 {
                anyhow::bail!("--days must be at least 1 (MEDIA_RETENTION_DAYS=0 turns the daily sweep off)");
            }
            let state = koinonia::AppState::build(config).await?;
            let report = koinonia::flows::retention::sweep(&state.retention(), days, koinonia::clock::now()).await?;
            let purged = koinonia::flows::retention::purge_revoked_sessions(&state.db, koinonia::clock::now()).await?;
            let orphans = koinonia::flows::orphans::sweep(
                &state.retention(),
                koinonia::clock::now(),
                koinonia::flows::orphans::GRACE,
            )
            .await?;
            println!(
                "retention: {} files older than {days} days examined, {} deleted, {} failed; {purged} expired session revocations purged; {} unreferenced objects deleted",
                report.examined, report.deleted, report.failed, orphans.deleted
            );
            state.db.close().await;
            if report.failed > 0 {
                anyhow::bail!("{} files could not be deleted; run again later", report.failed);
            }
            Ok(())
        }
        Command::Rescan { since } => {
            let since = since
                .map(|d| {
                    chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
                        .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
                        .map_err(|_| anyhow::anyhow!("--since must be a day, YYYY-MM-DD"))
                })
                .transpose()?;
            let Some(address) = config.scan.address.clone() else {
                anyhow::bail!("CLAMD_ADDRESS is not set: there is no virus scanner to rescan with");
            };
            let clamd = koinonia::scan::Clamd::new(address, config.scan.timeout);
            clamd.ping().await?;
            let state = koinonia::AppState::build(config).await?;
            let r = koinonia::flows::rescan::rescan(&state.retention(), &clamd, since).await?;
            println!(
                "rescan: {} files scanned, {} clean, {} blocked, {} not checked",
                r.scanned, r.clean, r.blocked, r.unchecked
            );
            state.db.close().await;
            if r.unchecked > 0 {
                anyhow::bail!("{} files could not be checked (the log says why); run again later", r.unchecked);
            }
            Ok(())
        }
        Command::Keys { action: KeysAction::Reencrypt { batch, limit } } => reencrypt(&config, batch, limit).await,
        Command::Keys { action: KeysAction::Vapid } => Ok(()),
        Command::Bench { what } => bench(what).await,
        Command::Serve => serve(config).await,
        Command::Migrate => {
            cli::open_db(&config).await?;
            eprintln!("database is up to date");
            Ok(())
        }
        Command::Church { action: ChurchAction::Create { name, number, messaging_profile_id, time_zone } } => {
            let db = cli::open_db(&config).await?;
            let id =
                cli::create_church(&db, &name, &number, messaging_profile_id.as_deref(), time_zone.as_deref()).await?;
            eprintln!("created church {name:?}");
            println!("{id}");
            Ok(())
        }
        Command::Leader { action: LeaderAction::Create { church, email, password_stdin: _, admin } } => {
            let church = church.parse().map_err(|_| anyhow::anyhow!("--church: not a church id"))?;
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input)?;
            let db = cli::open_db(&config).await?;
            let id = cli::create_leader(
                &db,
                &password::Hasher::new(password::HasherLimits::for_this_machine()),
                church,
                &email,
                cli::password_from(&input),
                admin,
            )
            .await?;
            eprintln!("created leader {email}");
            println!("{id}");
            Ok(())
        }
    }
}

async fn reencrypt(config: &Config, batch: u64, limit: Option<u64>) -> anyhow::Result<()> {
    let db = cli::open_db(config).await?;
    let crypto = koinonia::crypto::phone::PhoneCrypto::new(&config.secrets);
    let before = koinonia::ops::keys::remaining(&db, &crypto).await?;
    eprintln!("{before} stored numbers are not under the current PHONE_ENCRYPTION_KEY");
    let options = koinonia::ops::keys::ReencryptOptions { batch: usize::try_from(batch).unwrap_or(500), limit };
    let report = koinonia::ops::keys::reencrypt(&db, &crypto, options, |p| {
        eprintln!(
            "{}: {} re-encrypted so far{}",
            p.column.label(),
            p.report.reencrypted,
            if p.report.undecryptable > 0 {
                format!(", {} undecryptable", p.report.undecryptable)
            } else {
                String::new()
            }
        );
    })
    .await?;
    db.close().await;
    println!("re-encrypted {} numbers; {} left under older keys", report.reencrypted, report.remaining);
    if report.undecryptable > 0 {
        anyhow::bail!(
            "{} stored numbers decrypt under no known key; add the key they were written with to \
             PHONE_ENCRYPTION_KEY_PREVIOUS and run again",
            report.undecryptable
        );
    }
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let sandbox = config.sandbox_carrier();
    let app = App::build(config).await?;
    let addr = app.local_addr()?;
    let backend = app.state().config.backend_url.clone();
    tracing::info!(%addr, backend_url = %backend, sandbox_carrier = sandbox, "koinonia is listening");
    // Where to go next, on standard error whatever the log settings.
    let churches = {
        let mut pooled = app.state().db.acquire().await?;
        koinonia::db::churches::count(&mut pooled.conn()).await?
    };
    match (&app.state().setup_code, churches) {
        (Some(code), 0) => {
            eprintln!("koinonia is serving on {addr}. First run: open {backend}setup and enter the one-time setup code {code}")
        }
        (None, 0) => eprintln!("koinonia is serving on {addr}. First run: open {backend}setup to create your church"),
        _ => eprintln!("koinonia is serving on {addr}. Open {backend}login"),
    }
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing requests and running jobs");
        signal.cancel();
    });
    app.run(shutdown).await?;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
