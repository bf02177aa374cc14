//! `koinonia bench ingest`: the inbound media path measured against a plain copy.
//!
//! A generated WAV file of the requested size is served over loopback HTTP and taken through the
//! real path (`flows::files::fetch`: streaming download, inspection, SHA-256, local
//! store, database update). The baseline is the same file copied and hashed in one pass in this
//! process, so the ratio says what koinonia's pipeline costs over the disk and hash themselves.
//! The two alternate, [`ROUNDS`] times each, and the fastest of each counts: the disk's
//! write-back of one run would otherwise land in the next and decide the ratio on its own.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sha2::Digest;

use crate::domain::Phone;
use crate::flows::inbound::{self, AnnouncedFile, InboundMessage, Outcome};
use crate::state::AppState;
use crate::{db, Config};
use stand_in::Arrivals;

mod read;
mod seed;
mod serve;
mod stand_in;
mod wav;
mod webhooks;

pub use read::{read, ReadOptions, ReadReport};
pub use seed::{seed, SeedOptions, SeedReport};
pub use webhooks::{webhooks, WebhooksOptions, WebhooksReport};

/// Runs of each path, alternated; the fastest of each counts.
pub const ROUNDS: usize = 3;

/// What one run measured.
#[derive(Debug, Clone)]
pub struct IngestReport {
    pub size_bytes: u64,
    /// Each of koinonia's runs, in order.
    pub koinonia: Vec<Duration>,
    /// Each of the baseline's runs, in order.
    pub baseline: Vec<Duration>,
    pub rss_before_kib: Option<u64>,
    /// The highest peak of koinonia's runs.
    pub rss_peak_kib: Option<u64>,
}

impl IngestReport {
    fn mb_per_s(&self, d: Duration) -> f64 {
        self.size_bytes as f64 / 1_048_576.0 / d.as_secs_f64().max(1e-9)
    }

    /// The fastest of `runs` and, as MB/s, the slowest and fastest.
    fn best(&self, runs: &[Duration]) -> (Duration, f64, f64) {
        let fastest = runs.iter().min().copied().unwrap_or_default();
        let slowest = runs.iter().max().copied().unwrap_or_default();
        (fastest, self.mb_per_s(slowest), self.mb_per_s(fastest))
    }

    /// The figures as the command prints them.
    pub fn render(&self) -> String {
        let (k_time, k_low, k) = self.best(&self.koinonia);
        let (b_time, b_low, b) = self.best(&self.baseline);
        let mb = |kib: Option<u64>| kib.map_or("n/a".to_owned(), |v| format!("{:.1} MB", v as f64 / 1024.0));
        format!(
            "koinonia bench ingest: {:.0} MB WAV, loopback HTTP → inspect → local store → database\n\
             koinonia    {k:>8.1} MB/s  ({:.2} s; the fastest of {} runs, the slowest {k_low:.1} MB/s)\n\
             cp+sha256   {b:>8.1} MB/s  ({:.2} s; the fastest of {} runs, the slowest {b_low:.1} MB/s)\n\
             ratio       {:>8.2}        (goal ≥ 0.80)\n\
             peak RSS    {:>8}        during the ingest (goal ≤ 64 MB); {} before it",
            self.size_bytes as f64 / 1_048_576.0,
            k_time.as_secs_f64(),
            self.koinonia.len(),
            b_time.as_secs_f64(),
            self.baseline.len(),
            k / b,
            mb(self.rss_peak_kib),
            mb(self.rss_before_kib),
        )
    }
}

/// Runs the benchmark in a temporary folder under `work_dir`.
pub async fn ingest(size_mb: u64, work_dir: &Path) -> anyhow::Result<IngestReport> {
    if size_mb == 0 || size_mb > 4000 {
        bail!("--size-mb must be between 1 and 4000");
    }
    let dir =
        tempfile::Builder::new().prefix("koinonia-bench-").tempdir_in(work_dir).context("creating a work folder")?;
    let size = size_mb * 1_048_576;
    let wav = wav::Wav::new(size)?;
    let source = dir.path().join("source.wav");
    wav.write_to(&source).context("generating the test file")?;

    // koinonia's own path, on its embedded defaults in the work folder.
    let mut vars = HashMap::new();
    vars.insert("KOINONIA_DATA_DIR".to_owned(), dir.path().join("data").display().to_string());
    vars.insert("MEDIA_FETCH_ALLOW_PRIVATE".to_owned(), "true".to_owned());
    vars.insert("MAX_MEDIA_SIZE_BYTES".to_owned(), (size + (1 << 20)).to_string());
    let config = Config::from_vars(&vars)?;
    let state = AppState::build(config).await?;
    let url = stand_in::media_host(wav.clone()).await?;
    let church = crate::ops::cli::create_church(&state.db, "Bench", "+15550100000", None, None).await?;

    // Baseline: read, hash and write the same bytes in one pass.
    let copy = dir.path().join("copy.wav");
    let (mut koinonia, mut baseline) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
    let (mut rss_before_kib, mut rss_peak_kib) = (None, None);
    for _ in 0..ROUNDS {
        let (expected_sha, took) = timed_copy(&source, &copy)?;
        baseline.push(took);

        let attachment = announce(&state, church, &url).await?;
        let before = reset_peak_rss();
        rss_before_kib = rss_before_kib.or(before);
        let started = Instant::now();
        crate::flows::files::fetch(&state.files(), attachment, 1)
            .await
            .map_err(|e| anyhow::anyhow!("ingest failed: {e:?}"))?;
        koinonia.push(started.elapsed());
        rss_peak_kib = rss_peak_kib.max(proc_status_kib("VmHWM"));

        let mut pooled = state.db.acquire().await?;
        let row = db::attachments::get_for_job(&mut pooled.conn(), attachment).await?.context("attachment vanished")?;
        drop(pooled);
        if row.status != crate::domain::AttachmentStatus::Stored || row.sha256.as_deref() != Some(expected_sha.as_str())
        {
            bail!("the stored file does not match the source (status {}, reason {:?})", row.status, row.failure_reason);
        }
        // Untimed: the stored copy reaches the disk before the next run, as the baseline's does.
        if let Some(path) = row.storage_key.as_deref().and_then(|key| state.store.local_path(key)) {
            std::fs::File::open(&path).and_then(|f| f.sync_all()).context("syncing the stored file")?;
            std::fs::remove_file(&path).ok();
        }
    }
    state.db.close().await;
    Ok(IngestReport { size_bytes: wav.len(), koinonia, baseline, rss_before_kib, rss_peak_kib })
}

/// One baseline run; the copy is synced (untimed) and removed afterwards.
fn timed_copy(from: &Path, to: &Path) -> anyhow::Result<(String, Duration)> {
    let started = Instant::now();
    let sha = copy_and_hash(from, to).context("baseline copy")?;
    let took = started.elapsed();
    std::fs::File::open(to).and_then(|f| f.sync_all()).context("syncing the baseline copy")?;
    std::fs::remove_file(to).ok();
    Ok((sha, took))
}

fn copy_and_hash(from: &Path, to: &Path) -> anyhow::Result<String> {
    let mut input = std::fs::File::open(from)?;
    let mut output = std::fs::File::create(to)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n])?;
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Records an inbound MMS announcing the file, as a webhook would; returns the attachment.
async fn announce(
    state: &AppState,
    church: crate::domain::ChurchId,
    url: &str,
) -> anyhow::Result<crate::domain::AttachmentId> {
    let msg = InboundMessage {
        event_id: Some(format!("bench-{}", uuid::Uuid::new_v4())),
        event_type: "message.received".into(),
        from: Phone::parse("+13125550100").map_err(|e| anyhow::anyhow!("{e}"))?,
        to: vec![Phone::parse("+15550100000").map_err(|e| anyhow::anyhow!("{e}"))?],
        cc: Vec::new(),
        text: "benchmark".into(),
        files: vec![AnnouncedFile {
            url: url.to_owned(),
            declared_type: Some("audio/wav".into()),
            declared_size: None,
            declared_sha256: None,
            name: None,
        }],
        autoresponse_type: None,
    };
    let Outcome::Recorded { message, conversation, .. } = inbound::record(&state.inbound(), msg).await? else {
        bail!("the benchmark message was not recorded");
    };
    let mut pooled = state.db.acquire().await?;
    let rows = db::attachments::for_messages(&mut pooled.conn(), church, conversation, message, message).await?;
    rows.first().map(|a| a.id).context("no attachment recorded")
}

/// Resets the kernel's peak-RSS mark for this process; returns the current RSS.
fn reset_peak_rss() -> Option<u64> {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    proc_status_kib("VmRSS")
}

fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The `p` quantile (0–1) of some latencies, nearest rank; zero when there are none.
fn percentile(latencies: &[Duration], p: f64) -> Duration {
    let mut v = latencies.to_vec();
    v.sort_unstable();
    let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(idx).copied().unwrap_or_default()
}

/// What `bench outbound` measured.
#[derive(Debug, Clone)]
pub struct OutboundReport {
    pub messages: usize,
    /// Recording the replies (outbox rows and jobs), workers stopped.
    pub enqueue: Duration,
    /// Handing the whole backlog to the stand-in Telnyx.
    pub drain: Duration,
    /// The same requests straight from an HTTP client, no database.
    pub baseline_per_s: f64,
    /// Queue-to-request latencies at a steady offered load.
    pub latencies: Vec<Duration>,
    pub steady_rate: f64,
}

impl OutboundReport {
    pub fn render(&self) -> String {
        let rate = |d: Duration| self.messages as f64 / d.as_secs_f64().max(1e-9);
        let sends = rate(self.drain);
        format!(
            "koinonia bench outbound: {} replies, SQLite, stand-in Telnyx on loopback, no rate limit\n\
             sending         {sends:>8.0} sends/s     ({:.2} s to drain the backlog; goal ≥ 1000)\n\
             raw HTTP        {:>8.0} requests/s  (same concurrency, no database)\n\
             ratio           {:>8.3}\n\
             recording       {:>8.0} replies/s   ({:.2} s, workers stopped)\n\
             queue→request   p50 {:.1} ms, p99 {:.1} ms at a steady {:.0} replies/s ({} replies)",
            self.messages,
            self.drain.as_secs_f64(),
            self.baseline_per_s,
            sends / self.baseline_per_s.max(1e-9),
            rate(self.enqueue),
            self.enqueue.as_secs_f64(),
            percentile(&self.latencies, 0.5).as_secs_f64() * 1000.0,
            percentile(&self.latencies, 0.99).as_secs_f64() * 1000.0,
            self.steady_rate,
            self.latencies.len(),
        )
    }
}

async fn wait_for_arrivals(arrivals: &Arrivals, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = arrivals.lock().map(|a| a.len()).unwrap_or_default();
        if done >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {done} of {n} sends arrived within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Queues `messages` replies and measures how fast the send workers hand them to a stand-in
/// Telnyx API with no rate limit; then the latency at a steady load.
pub async fn outbound(messages: usize, work_dir: &Path) -> anyhow::Result<OutboundReport> {
    if messages == 0 || messages > 1_000_000 {
        bail!("--messages must be between 1 and 1000000");
    }
    let dir =
        tempfile::Builder::new().prefix("koinonia-bench-").tempdir_in(work_dir).context("creating a work folder")?;
    let arrivals: Arrivals = Default::default();
    let telnyx = stand_in::telnyx(arrivals.clone()).await?;

    // Baseline: the same requests straight from an HTTP client, as many at a time as send slots.
    let concurrency = crate::config::WorkerTuning::default().concurrency * crate::jobs::workers::SEND_SLOTS_PER_UNIT;
    let baseline_n = messages.min(4000);
    let client = crate::crypto::tls::client_builder().build()?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let client = client.clone();
        let url = format!("{telnyx}/messages");
        tasks.push(tokio::spawn(async move {
            for i in (t..baseline_n).step_by(concurrency) {
                let body = serde_json::json!({"from": "+15550100000", "to": "+13125550100", "text": "Bench",
                    "webhook_url": format!("http://127.0.0.1/api/webhooks/telnyx/status?m=baseline-{i}")});
                let _ = client.post(&url).json(&body).send().await.and_then(|r| r.error_for_status());
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let baseline_per_s = baseline_n as f64 / started.elapsed().as_secs_f64().max(1e-9);
    if let Ok(mut a) = arrivals.lock() {
        a.clear();
    }

    let mut vars = HashMap::new();
    vars.insert("KOINONIA_DATA_DIR".to_owned(), dir.path().join("data").display().to_string());
    vars.insert("TELNYX_API_KEY".to_owned(), "bench-key-not-secret".to_owned());
    vars.insert("TELNYX_PUBLIC_KEY".to_owned(), "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=".to_owned());
    vars.insert("TELNYX_API_BASE_URL".to_owned(), telnyx);
    vars.insert("SEND_RATE_PER_NUMBER".to_owned(), "1000000".to_owned());
    vars.insert("SEND_RATE_ACCOUNT".to_owned(), "1000000".to_owned());
    let mut config = Config::from_vars(&vars)?;
    config.workers.poll_interval = Duration::from_millis(200);
    let state = AppState::build(config).await?;
    let church = crate::ops::cli::create_church(&state.db, "Bench", "+15550100000", None, None).await?;
    let leader_id = crate::ops::cli::create_leader(
        &state.db,
        &state.passwords,
        church,
        "bench@koinonia.test",
        "bench-password-0000",
        false,
    )
    .await?;
    let leader = crate::domain::Actor::leader(church, leader_id, false, crate::domain::ClientAddr::default());
    let members = 100.min(messages);
    let mut conversations = Vec::with_capacity(members);
    for i in 0..members {
        let phone = Phone::parse(&format!("+1312555{:04}", 1000 + i)).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut tx = state.db.begin().await?;
        let (_, conv) = crate::flows::contacts::member_and_conversation(
            &mut tx.conn(),
            &state.phone,
            church,
            &phone,
            crate::clock::now(),
        )
        .await?;
        tx.commit().await?;
        conversations.push(conv);
    }
    let reply = |i: usize| crate::flows::outbound::Reply { content: format!("Bench reply {i}"), ..Default::default() };

    // 1. The backlog: recorded with the workers stopped, then drained.
    let started = Instant::now();
    for i in 0..messages {
        crate::flows::outbound::reply(&state.outbound(), &leader, conversations[i % members], reply(i)).await?;
    }
    let enqueue = started.elapsed();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let workers = tokio::spawn(crate::jobs::run_workers(
        state.clone(),
        shutdown.clone(),
        Duration::from_secs(5),
        tokio::sync::mpsc::channel(1).0,
    ));
    let started = Instant::now();
    state.jobs.wake();
    wait_for_arrivals(&arrivals, messages).await?;
    let drain = started.elapsed();

    // 2. Latency at a steady load below capacity.
    let steady_n = messages.min(2000);
    let steady_rate = (messages as f64 / drain.as_secs_f64().max(1e-9) / 2.0).clamp(10.0, 500.0);
    if let Ok(mut a) = arrivals.lock() {
        a.clear();
    }
    let mut queued: HashMap<String, Instant> = HashMap::with_capacity(steady_n);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / steady_rate));
    for i in 0..steady_n {
        ticker.tick().await;
        let at = Instant::now();
        let id = crate::flows::outbound::reply(&state.outbound(), &leader, conversations[i % members], reply(i))
            .await?
            .message
            .id;
        queued.insert(id.to_string(), at);
    }
    wait_for_arrivals(&arrivals, steady_n).await?;
    let latencies = arrivals
        .lock()
        .map(|a| a.iter().filter_map(|(m, t)| queued.get(m).map(|q| t.saturating_duration_since(*q))).collect())
        .unwrap_or_default();
    shutdown.cancel();
    let _ = workers.await;
    state.db.close().await;
    Ok(OutboundReport { messages, enqueue, drain, baseline_per_s, latencies, steady_rate })
}
