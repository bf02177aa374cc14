//! What the HTTP benchmarks share: `koinonia serve` child processes on loopback ports, a lean
//! HTTP/1.1 client connection, CPU readings from `/proc`, and scratch PostgreSQL databases.

use std::collections::HashMap;
use std::path::Path;
use std::pin::Pin;
use std::process::Stdio;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use bytes::Bytes;
use hyper_util::rt::TokioIo;

/// The variables every benchmark server shares: its data folder, fresh secrets (given, so that
/// several instances agree on them) and the database.
pub fn server_vars(dir: &Path, database_url: Option<&str>) -> HashMap<String, String> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("KOINONIA_DATA_DIR".into(), dir.join("data").display().to_string());
    vars.insert("PHONE_HASH_KEY".into(), b64(&rand::random::<[u8; 32]>()));
    vars.insert("PHONE_ENCRYPTION_KEY".into(), b64(&rand::random::<[u8; 32]>()));
    vars.insert("JWT_SECRET".into(), b64(&rand::random::<[u8; 48]>()));
    if let Some(url) = database_url {
        vars.insert("DATABASE_URL".into(), url.to_owned());
    }
    vars
}

/// Runs a benchmark in a temporary folder under `work_dir`, on a scratch database of its own
/// when a PostgreSQL server is given (dropped afterwards, whatever the outcome).
pub async fn in_scratch<T>(
    work_dir: &Path,
    database_url: Option<&str>,
    run: impl AsyncFnOnce(&Path, Option<&str>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let dir =
        tempfile::Builder::new().prefix("koinonia-bench-").tempdir_in(work_dir).context("creating a work folder")?;
    let scratch = match database_url {
        Some(url) => Some(ScratchDatabase::create(url).await?),
        None => None,
    };
    let result = run(dir.path(), scratch.as_ref().map(|s| s.url.as_str())).await;
    if let Some(s) = scratch {
        s.drop_database().await;
    }
    result
}

/// A request body sent in one piece.
pub struct Payload(Option<Bytes>);

impl Payload {
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Self(Some(bytes.into()))
    }

    pub fn empty() -> Self {
        Self(None)
    }
}

impl http_body::Body for Payload {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.get_mut().0.take().map(|b| Ok(http_body::Frame::data(b))))
    }
}

pub type Conn = hyper::client::conn::http1::SendRequest<Payload>;

pub async fn connect(addr: std::net::SocketAddr) -> anyhow::Result<Conn> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends a request and reads its whole answer (at most 16 MiB).
pub async fn send(conn: &mut Conn, req: hyper::Request<Payload>) -> anyhow::Result<(http::StatusCode, Vec<u8>)> {
    use http_body::Body as _;
    conn.ready().await?;
    let resp = conn.send_request(req).await?;
    let status = resp.status();
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame?.into_data() {
            out.extend_from_slice(&data);
            if out.len() > 16 << 20 {
                bail!("an answer of more than 16 MiB");
            }
        }
    }
    Ok((status, out))
}

/// A `koinonia serve` child process on a loopback port.
pub struct Server {
    child: tokio::process::Child,
    pub addr: std::net::SocketAddr,
}

impl Server {
    pub async fn start(vars: &HashMap<String, String>, dir: &Path, index: usize) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::fs::File::create(dir.join(format!("serve-{index}.log")))?;
        let exe = std::env::current_exe().context("finding this program")?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("serve")
            .env_clear()
            .envs(vars)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        let child = cmd.spawn().context("starting koinonia serve")?;
        let server = Self { child, addr };
        server.ready(dir, index).await?;
        Ok(server)
    }

    async fn ready(&self, dir: &Path, index: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(mut conn) = connect(self.addr).await {
                let req =
                    hyper::Request::get("/healthz").header(http::header::HOST, "127.0.0.1").body(Payload::empty())?;
                if matches!(send(&mut conn, req).await, Ok((s, _)) if s.is_success()) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(dir.join(format!("serve-{index}.log"))).unwrap_or_default();
        bail!("koinonia serve did not become healthy within 60 s; its log:\n{log}")
    }

    /// `GET /metrics` of this instance.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let mut conn = connect(self.addr).await?;
        let req = hyper::Request::get("/metrics").header(http::header::HOST, "127.0.0.1").body(Payload::empty())?;
        let (status, body) = send(&mut conn, req).await?;
        if !status.is_success() {
            bail!("GET /metrics answered {status}");
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// CPU time used so far.
    pub fn cpu(&self) -> Duration {
        self.child.id().and_then(|pid| process_cpu(&format!("/proc/{pid}/stat"))).unwrap_or_default()
    }

    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: signalling our own child process by its pid.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of a process, from its `/proc/.../stat`.
fn process_cpu(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces; fields after its closing parenthesis are plain.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) / clock_ticks_per_s()))
}

/// CPU time of the PostgreSQL server's processes on this machine so far (its backends, and
/// through the postmaster's children's times those already gone); zero when none is local.
/// Meaningful as a difference over a run, when the server serves little else meanwhile.
pub fn local_postgres_cpu() -> Duration {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Duration::ZERO };
    let mut total = 0.0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        if !head.split_once('(').is_some_and(|(_, comm)| comm.starts_with("postgres")) {
            continue;
        }
        let fields: Vec<f64> = rest.split_whitespace().skip(11).take(4).filter_map(|f| f.parse().ok()).collect();
        total += fields.iter().sum::<f64>();
    }
    Duration::from_secs_f64(total / clock_ticks_per_s())
}

/// A counter or a summary's `_sum` / `_count` line of a Prometheus text page, added over its
/// labels.
pub fn metric_total(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let metric = key.split('{').next()?;
            (metric == name).then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

pub fn self_cpu() -> Duration {
    process_cpu("/proc/self/stat").unwrap_or_default()
}

/// (busy, total) jiffies of the whole machine.
pub fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")) else { return (0, 0) };
    let v: Vec<u64> = cpu.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

pub fn machine_busy(before: (u64, u64), after: (u64, u64)) -> f64 {
    let busy = after.0.saturating_sub(before.0) as f64;
    let total = after.1.saturating_sub(before.1) as f64;
    if total > 0.0 {
        busy / total
    } else {
        0.0
    }
}

/// A database of its own on the given PostgreSQL server, dropped after the run.
pub struct ScratchDatabase {
    server: String,
    name: String,
    pub url: String,
}

impl ScratchDatabase {
    pub async fn create(server: &str) -> anyhow::Result<Self> {
        use sqlx::Connection;
        let name = format!("koinonia_bench_{}", uuid::Uuid::new_v4().simple());
        let mut url = url::Url::parse(server).context("--database-url is not a URL")?;
        let mut conn = sqlx::PgConnection::connect(server).await.context("connecting to --database-url")?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .context("creating a scratch database (the user needs CREATEDB)")?;
        conn.close().await?;
        url.set_path(&format!("/{name}"));
        Ok(Self { server: server.to_owned(), name, url: url.to_string() })
    }

    pub async fn drop_database(self) {
        use sqlx::Connection;
        let result = async {
            let mut conn = sqlx::PgConnection::connect(&self.server).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&mut conn).await?;
            conn.close().await
        }
        .await;
        if let Err(e) = result {
            eprintln!("could not drop the scratch database {}: {e}", self.name);
        }
    }
}
