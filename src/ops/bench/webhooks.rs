//! `koinonia bench webhooks`: signed `message.received` webhooks over loopback HTTP into one or
//! more `koinonia serve` processes, as fast as they take them.
//!
//! The servers are this same binary, started as child processes on a fresh database (a temporary
//! SQLite file, or a new database on the PostgreSQL server given), so their CPU time is read
//! apart from the client's. Every body is signed before the clock starts, each with its own event
//! id; the client holds `--concurrency` HTTP/1.1 connections spread over the instances. After the
//! run the database is read back: every acknowledged webhook must be stored exactly once.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use base64::Engine;
use bytes::Bytes;
use ed25519_dalek::{Signer, SigningKey};

use super::serve::in_scratch;
use super::serve::{
    connect, local_postgres_cpu, machine_busy, machine_ticks, metric_total, self_cpu, send, server_vars, Payload,
    Server,
};
use crate::config::Config;
use crate::db::{self, Db};

/// What to run.
#[derive(Debug, Clone)]
pub struct WebhooksOptions {
    pub requests: usize,
    pub concurrency: usize,
    pub instances: usize,
    /// Distinct members sending (each one's first message creates them).
    pub members: usize,
    /// A PostgreSQL server URL: the run uses a new database on it, dropped afterwards.
    pub database_url: Option<String>,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct WebhooksReport {
    pub options: WebhooksOptions,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
    pub acknowledged: usize,
    pub failed: usize,
    pub stored: usize,
    /// CPU seconds of the koinonia processes during the run.
    pub server_cpu: Duration,
    /// CPU seconds of this process (the client) during the run.
    pub client_cpu: Duration,
    /// Busy share of the whole machine during the run (0–1): the database server included.
    pub machine_busy: f64,
    /// Each instance's first webhook after start, sent alone.
    pub first: Vec<Duration>,
    /// The [`ALONE`] webhooks sent one at a time after those: what the first is compared with.
    pub alone: Vec<Duration>,
    /// CPU seconds of the PostgreSQL server's processes on this machine during the run (zero
    /// on SQLite or a server elsewhere).
    pub database_cpu: Duration,
    /// Messages per group-commit transaction, on average over all instances.
    pub batch_size: f64,
}

impl WebhooksReport {
    /// Whether everything acknowledged was stored, once.
    pub fn consistent(&self) -> bool {
        self.stored == self.acknowledged
    }

    pub fn render(&self) -> String {
        let o = &self.options;
        let n = self.latencies.len().max(1) as f64;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "koinonia bench webhooks: {} signed message.received webhooks, {} members, {} connections, {} instance(s) on {}\n\
             throughput     {:>8.0} webhooks/s  ({:.2} s)\n\
             latency        p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
             after start    first webhook {:.1} ms, the next {} p50 {:.1} ms, max {:.1} ms (each alone)\n\
             koinonia CPU   {:>8.3} ms per webhook  (all instances; goal ≤ 0.2)\n\
             client CPU     {:>8.3} ms per webhook  (this process: signing was done before the clock started)\n\
             {}\
             batches        {:>8.1} messages per transaction on average\n\
             machine busy   {:>8.0} %  (2 cores = 100 %, the database server included)\n\
             acknowledged   {} (200), failed {}, stored {}: {}",
            o.requests,
            o.members,
            o.concurrency,
            o.instances,
            if o.database_url.is_some() { "PostgreSQL" } else { "SQLite" },
            o.requests as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.elapsed.as_secs_f64(),
            ms(super::percentile(&self.latencies, 0.5)),
            ms(super::percentile(&self.latencies, 0.99)),
            ms(super::percentile(&self.latencies, 1.0)),
            ms(self.first.iter().copied().max().unwrap_or_default()),
            self.alone.len(),
            ms(super::percentile(&self.alone, 0.5)),
            ms(super::percentile(&self.alone, 1.0)),
            ms(self.server_cpu) / n,
            ms(self.client_cpu) / n,
            if self.database_cpu.is_zero() {
                String::new()
            } else {
                format!("database CPU   {:>8.3} ms per webhook  (the PostgreSQL processes on this machine)\n", ms(self.database_cpu) / n)
            },
            self.batch_size,
            self.machine_busy * 100.0,
            self.acknowledged,
            self.failed,
            self.stored,
            if self.consistent() { "every acknowledged webhook stored once" } else { "MISMATCH" },
        )
    }
}

const CHURCH_NUMBER: &str = "+15550100000";

/// Webhooks sent one at a time after each instance's first, to compare the first with.
const ALONE: usize = 20;
/// The pause before each webhook sent alone. The first comes after a pause (the client signs
/// every body before it), and a server idle that long answers its next request later than one
/// answering back to back — about 1.9 against 1.0 ms on the 2-core VM, whatever the request —
/// so the ones it is compared with get the same pause: what is left is what start-up left lazy.
const QUIET: Duration = Duration::from_millis(200);

/// Runs the benchmark in a temporary folder under `work_dir`.
pub async fn webhooks(options: WebhooksOptions, work_dir: &Path) -> anyhow::Result<WebhooksReport> {
    let o = &options;
    if o.requests == 0 || o.requests > 1_000_000 {
        bail!("--requests must be between 1 and 1000000");
    }
    if o.concurrency == 0 || o.concurrency > 1024 {
        bail!("--concurrency must be between 1 and 1024");
    }
    if o.instances == 0 || o.instances > 8 {
        bail!("--instances must be between 1 and 8");
    }
    if o.instances > 1 && o.database_url.is_none() {
        bail!("--instances above 1 needs --database-url (instances share one PostgreSQL database)");
    }
    if o.members == 0 || o.members > 1_000_000 {
        bail!("--members must be between 1 and 1000000");
    }
    in_scratch(work_dir, o.database_url.as_deref(), async |dir, url| run(&options, dir, url).await).await
}

async fn run(o: &WebhooksOptions, dir: &Path, database_url: Option<&str>) -> anyhow::Result<WebhooksReport> {
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let mut vars = server_vars(dir, database_url);
    vars.insert(
        "TELNYX_PUBLIC_KEY".into(),
        base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes()),
    );
    let config = Config::from_vars(&vars)?;
    let db = crate::ops::cli::open_db(&config).await?;
    let church = crate::ops::cli::create_church(&db, "Bench", CHURCH_NUMBER, None, None).await?;

    let mut servers = Vec::with_capacity(o.instances);
    for i in 0..o.instances {
        servers.push(Server::start(&vars, dir, i).await?);
    }

    let mut bodies = signed_bodies(&key, o.requests + servers.len() + ALONE, o.members)?;
    // Each instance's first webhook, then ALONE more, one at a time, each after QUIET and on a
    // new connection: what the first request after start costs against the ones after it.
    let warm: Vec<Signed> = bodies.drain(..servers.len() + ALONE).collect();
    let (mut first, mut alone) = (Vec::with_capacity(servers.len()), Vec::with_capacity(ALONE));
    for (i, signed) in warm.iter().enumerate() {
        tokio::time::sleep(QUIET).await;
        let mut conn = connect(servers[i % servers.len()].addr).await?;
        let at = Instant::now();
        let (status, _) = send(&mut conn, webhook_request(signed)?).await?;
        if i < servers.len() { &mut first } else { &mut alone }.push(at.elapsed());
        if status != http::StatusCode::OK {
            bail!("the first webhooks were refused with {status}");
        }
    }
    let cpu_before: Vec<Duration> = servers.iter().map(|s| s.cpu()).collect();
    let client_before = self_cpu();
    let machine_before = machine_ticks();
    let database_before = local_postgres_cpu();
    let started = Instant::now();
    let outcomes = drive(&servers, bodies, o.concurrency).await?;
    let elapsed = started.elapsed();
    let machine_busy = machine_busy(machine_before, machine_ticks());
    let client_cpu = self_cpu().saturating_sub(client_before);
    let server_cpu: Duration = servers.iter().zip(cpu_before).map(|(s, b)| s.cpu().saturating_sub(b)).sum();
    let database_cpu =
        if database_url.is_some() { local_postgres_cpu().saturating_sub(database_before) } else { Duration::ZERO };
    let (mut batched, mut batches) = (0.0, 0.0);
    for s in &servers {
        let page = s.metrics().await?;
        batched += metric_total(&page, "koinonia_inbound_batch_size_sum");
        batches += metric_total(&page, "koinonia_inbound_batch_size_count");
    }

    let acknowledged = outcomes.iter().filter(|o| o.ok).count();
    let latencies = outcomes.iter().map(|o| o.latency).collect();
    let stored = stored_messages(&db, church).await?.saturating_sub(warm.len());
    for s in servers {
        s.stop().await;
    }
    db.close().await;
    Ok(WebhooksReport {
        options: o.clone(),
        elapsed,
        latencies,
        acknowledged,
        failed: o.requests - acknowledged,
        stored,
        server_cpu,
        client_cpu,
        machine_busy,
        first,
        alone,
        database_cpu,
        batch_size: if batches > 0.0 { batched / batches } else { 0.0 },
    })
}

/// A signed webhook, ready to send.
struct Signed {
    body: Bytes,
    timestamp: String,
    signature: String,
}

/// `n` distinct `message.received` events from `members` numbers, signed now.
fn signed_bodies(key: &SigningKey, n: usize, members: usize) -> anyhow::Result<Vec<Signed>> {
    let timestamp = crate::clock::now().timestamp().to_string();
    let run = uuid::Uuid::new_v4().simple().to_string();
    (0..n)
        .map(|i| {
            let from = format!("+1312{:07}", i % members);
            let body = serde_json::to_vec(&serde_json::json!({
                "data": {
                    "event_type": "message.received",
                    "id": format!("bench-{run}-{i}"),
                    "occurred_at": "2026-01-01T00:00:00.000+00:00",
                    "payload": {
                        "id": format!("msg-{run}-{i}"),
                        "direction": "inbound",
                        "type": "SMS",
                        "from": {"phone_number": from, "carrier": "Bench", "line_type": "Wireless"},
                        "to": [{"phone_number": CHURCH_NUMBER, "status": "webhook_delivered"}],
                        "cc": [],
                        "text": format!("Bench message {i}: see you on Sunday at the 10 o'clock service."),
                        "media": [],
                    },
                    "record_type": "event",
                },
                "meta": {"attempt": 1, "delivered_to": "http://127.0.0.1/api/webhooks/telnyx/mms"},
            }))?;
            let mut signed = Vec::with_capacity(timestamp.len() + 1 + body.len());
            signed.extend_from_slice(timestamp.as_bytes());
            signed.push(b'|');
            signed.extend_from_slice(&body);
            let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&signed).to_bytes());
            Ok(Signed { body: Bytes::from(body), timestamp: timestamp.clone(), signature })
        })
        .collect()
}

struct Outcome {
    ok: bool,
    latency: Duration,
}

/// Sends every body once over `concurrency` keep-alive connections spread over the servers.
async fn drive(servers: &[Server], bodies: Vec<Signed>, concurrency: usize) -> anyhow::Result<Vec<Outcome>> {
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(concurrency);
    for c in 0..concurrency {
        let addr = servers[c % servers.len()].addr;
        let (bodies, next) = (bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut conn = connect(addr).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(signed) = bodies.get(i) else { break };
                let req = webhook_request(signed)?;
                let at = Instant::now();
                let ok = match send(&mut conn, req).await {
                    Ok((status, _)) => status == http::StatusCode::OK,
                    Err(_) => {
                        // The connection broke: count the request as failed and reconnect.
                        conn = connect(addr).await?;
                        false
                    }
                };
                out.push(Outcome { ok, latency: at.elapsed() });
            }
            anyhow::Ok(out)
        }));
    }
    let mut all = Vec::with_capacity(bodies.len());
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

fn webhook_request(signed: &Signed) -> anyhow::Result<hyper::Request<Payload>> {
    Ok(hyper::Request::post("/api/webhooks/telnyx/mms")
        .header(http::header::HOST, "127.0.0.1")
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(crate::telnyx::webhook::TIMESTAMP_HEADER, signed.timestamp.as_str())
        .header(crate::telnyx::webhook::SIGNATURE_HEADER, signed.signature.as_str())
        .body(Payload::new(signed.body.clone()))?)
}

/// Inbound messages stored for the church.
async fn stored_messages(db: &Db, church: crate::domain::ChurchId) -> anyhow::Result<usize> {
    let mut pooled = db.acquire().await?;
    let n = db::messages::count_in_church(&mut pooled.conn(), church, crate::domain::Direction::Inbound).await?;
    Ok(usize::try_from(n).unwrap_or(0))
}
