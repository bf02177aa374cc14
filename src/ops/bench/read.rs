//! `koinonia bench read`: what a leader waits for when opening the inbox, a thread, a search or
//! the library, in a church a tenth full and then full.
//!
//! One church is seeded with `--conversations` members, then messages and stored files are added
//! in bulk through the product's own row writers (the same shapes as real traffic: members with
//! encrypted numbers, their conversations, inbound messages, image attachments) until the church
//! holds a tenth of `--messages` / `--attachments`; every read route is measured over loopback
//! HTTP against a `koinonia serve` child process (p50, p95, the server's CPU per request); then
//! the church is filled to the full size and the same routes measured again. Equal figures in the
//! two columns mean a route's cost follows the page, not the church.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::seed;
use super::serve::{connect, in_scratch, send, server_vars, Payload, Server};
use crate::config::Config;
use crate::crypto::phone::PhoneCrypto;
use crate::domain::{ConversationId, MemberId};

/// What to run.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub messages: usize,
    pub conversations: usize,
    pub attachments: usize,
    /// Requests per route and size.
    pub requests: usize,
    pub database_url: Option<String>,
}

/// One route at one size.
#[derive(Debug, Clone)]
pub struct RouteFigures {
    pub route: &'static str,
    pub p50: Duration,
    pub p95: Duration,
    pub cpu_per_request: Duration,
}

/// What one run measured: the routes at a tenth of the size, then at the full size.
#[derive(Debug, Clone)]
pub struct ReadReport {
    pub options: ReadOptions,
    pub seed_time: Duration,
    pub sizes: Vec<(usize, usize, Vec<RouteFigures>)>,
}

impl ReadReport {
    pub fn render(&self) -> String {
        let o = &self.options;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut out = format!(
            "koinonia bench read: one church, {} conversations, {} on {}; {} requests per route (seeding took {:.1} s)\n",
            o.conversations,
            self.sizes.iter().map(|(m, a, _)| format!("{m} messages / {a} files")).collect::<Vec<_>>().join(" then "),
            if o.database_url.is_some() { "PostgreSQL" } else { "SQLite" },
            o.requests,
            self.seed_time.as_secs_f64(),
        );
        out.push_str(&format!("{:<34}", "route"));
        for (m, _, _) in &self.sizes {
            out.push_str(&format!("{:>36}", format!("at {m} messages")));
        }
        out.push('\n');
        let routes: Vec<&'static str> =
            self.sizes.first().map(|(_, _, r)| r.iter().map(|f| f.route).collect()).unwrap_or_default();
        for route in routes {
            out.push_str(&format!("{route:<34}"));
            for (_, _, figures) in &self.sizes {
                if let Some(f) = figures.iter().find(|f| f.route == route) {
                    out.push_str(&format!(
                        "{:>36}",
                        format!("p50 {:.1} p95 {:.1} cpu {:.2} ms", ms(f.p50), ms(f.p95), ms(f.cpu_per_request))
                    ));
                }
            }
            out.push('\n');
        }
        out.push_str("goal: every route p95 ≤ 20 ms, the same at both sizes");
        out
    }
}

const CHURCH_NUMBER: &str = "+15550100000";
const EMAIL: &str = "bench@koinonia.test";
const PASSWORD: &str = "bench-password-0000";

/// Runs the benchmark in a temporary folder under `work_dir`.
pub async fn read(options: ReadOptions, work_dir: &Path) -> anyhow::Result<ReadReport> {
    let o = &options;
    seed::check_sizes(o.messages, o.conversations, o.attachments)?;
    if o.requests == 0 || o.requests > 100_000 {
        bail!("--requests must be between 1 and 100000");
    }
    in_scratch(work_dir, o.database_url.as_deref(), async |dir, url| run(&options, dir, url).await).await
}

async fn run(o: &ReadOptions, dir: &Path, database_url: Option<&str>) -> anyhow::Result<ReadReport> {
    let vars = server_vars(dir, database_url);
    let config = Config::from_vars(&vars)?;
    let db = crate::ops::cli::open_db(&config).await?;
    let phone = PhoneCrypto::new(&config.secrets);
    let church = crate::ops::cli::create_church(&db, "Bench", CHURCH_NUMBER, None, None).await?;
    let passwords = crate::crypto::password::Hasher::new(crate::crypto::password::HasherLimits::for_this_machine());
    crate::ops::cli::create_leader(&db, &passwords, church, EMAIL, PASSWORD, true).await?;

    let started = Instant::now();
    let contacts = seed::contacts(&db, &phone, church, o.conversations).await?;
    let mut seed_time = started.elapsed();
    let mut sizes = Vec::new();
    let mut seeded = (0, 0);
    for (messages, attachments) in [(o.messages / 10, o.attachments / 10), (o.messages, o.attachments)] {
        let started = Instant::now();
        seed::messages(&db, church, &contacts, seeded, (messages, attachments)).await?;
        seed::analyze(&db).await?;
        seed_time += started.elapsed();
        seeded = (messages, attachments);
        let server = Server::start(&vars, dir, sizes.len()).await?;
        let figures = measure(&server, &contacts, o.requests).await;
        server.stop().await;
        sizes.push((messages, attachments, figures?));
    }
    db.close().await;
    Ok(ReadReport { options: o.clone(), seed_time, sizes })
}

/// Signs in and measures every read route.
async fn measure(
    server: &Server,
    contacts: &[(MemberId, ConversationId)],
    requests: usize,
) -> anyhow::Result<Vec<RouteFigures>> {
    let mut conn = connect(server.addr).await?;
    let login = serde_json::to_vec(&serde_json::json!({"email": EMAIL, "password": PASSWORD}))?;
    let req = hyper::Request::post("/api/auth/login")
        .header(http::header::HOST, "127.0.0.1")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Payload::new(login))?;
    let (status, body) = send(&mut conn, req).await?;
    if !status.is_success() {
        bail!("signing in to the benchmark server failed with {status}");
    }
    let token = serde_json::from_slice::<serde_json::Value>(&body)?["data"]["token"]
        .as_str()
        .context("no token in the login answer")?
        .to_owned();

    let (_, thread) = contacts[contacts.len() / 2];
    let routes: Vec<(&'static str, String, bool)> = vec![
        ("GET /api/conversations", "/api/conversations".into(), false),
        ("GET /api/conversations?q=Smith", "/api/conversations?q=Smith".into(), false),
        ("GET /api/conversations?q=0042", "/api/conversations?q=0042".into(), false),
        ("GET /api/conversations/:id", format!("/api/conversations/{thread}"), false),
        ("GET /api/media", "/api/media".into(), false),
        ("GET /inbox", "/inbox".into(), true),
        ("GET /inbox/:id", format!("/inbox/{thread}"), true),
        ("GET /library", "/library".into(), true),
    ];
    let mut figures = Vec::with_capacity(routes.len());
    for (route, path, page) in routes {
        let request = || {
            let b = hyper::Request::get(path.as_str()).header(http::header::HOST, "127.0.0.1");
            let b = if page {
                // The dashboard's session cookie, as a browser sends it.
                b.header(http::header::COOKIE, format!("koinonia_session={token}"))
            } else {
                b.header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            };
            b.body(Payload::empty())
        };
        for _ in 0..3 {
            send(&mut conn, request()?).await?;
        }
        let cpu = server.cpu();
        let mut latencies = Vec::with_capacity(requests);
        for _ in 0..requests {
            let at = Instant::now();
            let (status, _) = send(&mut conn, request()?).await?;
            latencies.push(at.elapsed());
            if !status.is_success() {
                bail!("{route} answered {status}");
            }
        }
        let cpu = server.cpu().saturating_sub(cpu);
        let at = |p: f64| super::percentile(&latencies, p);
        figures.push(RouteFigures {
            route,
            p50: at(0.5),
            p95: at(0.95),
            cpu_per_request: cpu / u32::try_from(requests).unwrap_or(u32::MAX),
        });
    }
    Ok(figures)
}
