//! `koinonia bench ingest`: the inbound media path measured against a plain copy.
//!
//! A generated WAV file of the requested size is served over loopback HTTP and taken through the
//! real path (`media::ingest::fetch_and_store`: streaming download, inspection, SHA-256, local
//! store, database update). The baseline is the same file copied and hashed in one pass in this
//! process, so the ratio says what koinonia's pipeline costs over the disk and hash themselves.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Body;
use axum::routing::get;
use axum::Router;
use sha2::Digest;

use crate::app::AppState;
use crate::domain::Phone;
use crate::inbound::{self, AnnouncedFile, InboundMessage, Outcome};
use crate::{db, Config};

/// What one run measured.
#[derive(Debug, Clone)]
pub struct IngestReport {
    pub size_bytes: u64,
    pub koinonia: Duration,
    pub baseline: Duration,
    pub rss_before_kib: Option<u64>,
    pub rss_peak_kib: Option<u64>,
}

impl IngestReport {
    fn mb_per_s(&self, d: Duration) -> f64 {
        self.size_bytes as f64 / 1_048_576.0 / d.as_secs_f64().max(1e-9)
    }

    /// The figures as the command prints them.
    pub fn render(&self) -> String {
        let k = self.mb_per_s(self.koinonia);
        let b = self.mb_per_s(self.baseline);
        let mb = |kib: Option<u64>| kib.map_or("n/a".to_owned(), |v| format!("{:.1} MB", v as f64 / 1024.0));
        format!(
            "koinonia bench ingest: {:.0} MB WAV, loopback HTTP → inspect → local store → database\n\
             koinonia    {k:>8.1} MB/s  ({:.2} s)\n\
             cp+sha256   {b:>8.1} MB/s  ({:.2} s)\n\
             ratio       {:>8.2}        (goal ≥ 0.80)\n\
             peak RSS    {:>8}        during the ingest (goal ≤ 64 MB); {} before it",
            self.size_bytes as f64 / 1_048_576.0,
            self.koinonia.as_secs_f64(),
            self.baseline.as_secs_f64(),
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
    let source = dir.path().join("source.wav");
    write_wav(&source, size).context("generating the test file")?;

    // Baseline: read, hash and write the same bytes in one pass; run before and after koinonia's
    // pass and keep the faster, so disk write-back of one run does not flatter the other.
    let copy = dir.path().join("copy.wav");
    let (baseline_sha, first) = timed_copy(&source, &copy)?;

    // koinonia's own path, on its embedded defaults in the work folder.
    let mut vars = HashMap::new();
    vars.insert("KOINONIA_DATA_DIR".to_owned(), dir.path().join("data").display().to_string());
    vars.insert("MEDIA_FETCH_ALLOW_PRIVATE".to_owned(), "true".to_owned());
    vars.insert("MAX_MEDIA_SIZE_BYTES".to_owned(), (size + (1 << 20)).to_string());
    let config = Config::from_vars(&vars)?;
    let state = AppState::build(config).await?;
    let url = serve_file(source.clone()).await?;
    let attachment = announce(&state, &url).await?;

    let rss_before_kib = reset_peak_rss();
    let started = Instant::now();
    crate::media::ingest::fetch_and_store(&state, attachment, 1)
        .await
        .map_err(|e| anyhow::anyhow!("ingest failed: {e:?}"))?;
    let koinonia = started.elapsed();
    let rss_peak_kib = proc_status_kib("VmHWM");
    let (_, second) = timed_copy(&source, &copy)?;
    let baseline = first.min(second);

    let mut pooled = state.db.acquire().await?;
    let row = db::attachments::get_for_job(&mut pooled.conn(), attachment).await?.context("attachment vanished")?;
    if row.status != "stored" || row.sha256.as_deref() != Some(baseline_sha.as_str()) {
        bail!("the stored file does not match the source (status {}, reason {:?})", row.status, row.failure_reason);
    }
    drop(pooled);
    state.db.close().await;
    Ok(IngestReport { size_bytes: size + 44, koinonia, baseline, rss_before_kib, rss_peak_kib })
}

/// A PCM WAV of `data_len` bytes of noise (one random MiB repeated).
fn write_wav(path: &Path, data_len: u64) -> anyhow::Result<()> {
    let data32 = u32::try_from(data_len).context("WAV data is limited to 4 GiB")?;
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut header = Vec::with_capacity(44);
    header.extend_from_slice(b"RIFF");
    header.extend_from_slice(&(data32.saturating_add(36)).to_le_bytes());
    header.extend_from_slice(b"WAVEfmt ");
    header.extend_from_slice(&16u32.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes()); // PCM
    header.extend_from_slice(&2u16.to_le_bytes()); // stereo
    header.extend_from_slice(&48_000u32.to_le_bytes());
    header.extend_from_slice(&(48_000u32 * 4).to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&16u16.to_le_bytes());
    header.extend_from_slice(b"data");
    header.extend_from_slice(&data32.to_le_bytes());
    f.write_all(&header)?;
    let block: Vec<u8> = (0..1 << 20).map(|_| rand::random::<u8>()).collect();
    let mut left = data_len;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    f.get_ref().sync_all()?;
    Ok(())
}

fn timed_copy(from: &Path, to: &Path) -> anyhow::Result<(String, Duration)> {
    let started = Instant::now();
    let sha = copy_and_hash(from, to).context("baseline copy")?;
    let took = started.elapsed();
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

/// Serves one file on 127.0.0.1 (a stand-in for the carrier's media CDN); returns its URL.
async fn serve_file(path: PathBuf) -> anyhow::Result<String> {
    let len = std::fs::metadata(&path)?.len();
    let app = Router::new().route(
        "/media/source.wav",
        get(move || {
            let path = path.clone();
            async move {
                match tokio::fs::File::open(&path).await {
                    Ok(f) => axum::response::Response::builder()
                        .header("content-type", "audio/wav")
                        .header("content-length", len)
                        .body(Body::from_stream(tokio_util::io::ReaderStream::with_capacity(f, 256 << 10)))
                        .unwrap_or_default(),
                    Err(_) => axum::response::Response::default(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/media/source.wav"))
}

/// Records an inbound MMS announcing the file, as a webhook would; returns the attachment.
async fn announce(state: &AppState, url: &str) -> anyhow::Result<crate::domain::AttachmentId> {
    let church = crate::cli::create_church(&state.db, "Bench", "+15550100000", None).await?;
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
        }],
        autoresponse_type: None,
    };
    let Outcome::Recorded { message, conversation, .. } = inbound::record(state, msg).await? else {
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
