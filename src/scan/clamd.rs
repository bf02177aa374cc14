//! ClamAV's daemon, spoken to over its socket protocol (TCP or a Unix socket): `PING`,
//! `VERSION` and `INSTREAM` — a command, then the file as length-prefixed chunks ending with an
//! empty one, then one answer. A few lines of framing over tokio's sockets; no crate needed.
//!
//! Every step has a deadline: a daemon that does not answer is an error, never "clean".

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Where clamd listens: `tcp://host:port` or `unix:/path/to/clamd.ctl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Tcp(String),
    Unix(PathBuf),
}

impl Address {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(hostport) = s.strip_prefix("tcp://") {
            let hostport = hostport.trim_end_matches('/');
            let ok = hostport.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            return if ok { Ok(Self::Tcp(hostport.to_owned())) } else { Err(format!("{s:?} needs a host and a port")) };
        }
        if let Some(path) = s.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            return if path.starts_with('/') {
                Ok(Self::Unix(PathBuf::from(path)))
            } else {
                Err(format!("{s:?} needs an absolute socket path"))
            };
        }
        Err(format!("{s:?} is neither tcp://host:port nor unix:/path"))
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(hp) => write!(f, "tcp://{hp}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Why clamd could not give an answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClamdError {
    #[error("the virus scanner at {0} cannot be reached: {1}")]
    Unreachable(String, String),
    #[error("the virus scanner did not answer within {0} s")]
    Timeout(u64),
    #[error("the virus scanner answered {0:?}")]
    Protocol(String),
}

/// clamd's judgement of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// The signature that matched, as clamd names it.
    Infected(String),
    /// Longer than clamd's `StreamMaxLength`: not judged.
    TooLarge,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Chunks sent to clamd are at most this long (its default `StreamMaxLength` chunking is fine
/// with any size; smaller chunks keep the pipeline's memory flat).
const CHUNK: usize = 256 << 10;
/// The longest wait for a connection to clamd.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An answer longer than this is not clamd's.
const MAX_REPLY: usize = 4096;

/// A clamd at one address, with a deadline for each step.
#[derive(Debug, Clone)]
pub struct Clamd {
    address: Address,
    timeout: Duration,
}

impl Clamd {
    pub fn new(address: Address, timeout: Duration) -> Self {
        Self { address, timeout }
    }

    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Connects within [`CONNECT_TIMEOUT`] (or the step deadline, if shorter): a scanner host that
    /// drops packets must not hold every file for the whole step deadline before it is judged
    /// unreachable.
    async fn connect(&self) -> Result<Box<dyn Io>, ClamdError> {
        let unreachable = |e: std::io::Error| ClamdError::Unreachable(self.address.to_string(), e.to_string());
        let limit = self.timeout.min(CONNECT_TIMEOUT);
        let io: Box<dyn Io> = match &self.address {
            Address::Tcp(hp) => {
                let s = self.within(limit, tokio::net::TcpStream::connect(hp.as_str())).await?.map_err(unreachable)?;
                let _ = s.set_nodelay(true);
                Box::new(s)
            }
            Address::Unix(p) => {
                Box::new(self.within(limit, tokio::net::UnixStream::connect(p)).await?.map_err(unreachable)?)
            }
        };
        Ok(io)
    }

    async fn deadline<F: std::future::Future>(&self, f: F) -> Result<F::Output, ClamdError> {
        self.within(self.timeout, f).await
    }

    async fn within<F: std::future::Future>(&self, limit: Duration, f: F) -> Result<F::Output, ClamdError> {
        tokio::time::timeout(limit, f).await.map_err(|_| ClamdError::Timeout(limit.as_secs().max(1)))
    }

    /// A one-line command and its answer.
    async fn command(&self, command: &str) -> Result<String, ClamdError> {
        let mut io = self.connect().await?;
        let line = format!("z{command}\0");
        self.deadline(io.write_all(line.as_bytes())).await?.map_err(|e| self.broken(e))?;
        read_reply(&mut io, self).await
    }

    fn broken(&self, e: std::io::Error) -> ClamdError {
        ClamdError::Unreachable(self.address.to_string(), e.to_string())
    }

    /// `PING` → `PONG`.
    pub async fn ping(&self) -> Result<(), ClamdError> {
        match self.command("PING").await?.as_str() {
            "PONG" => Ok(()),
            other => Err(ClamdError::Protocol(other.to_owned())),
        }
    }

    /// `VERSION`: `ClamAV 1.4.6/27000/Mon Nov 30 09:00:00 2026` (the part after the first `/`
    /// is the signature database's version and date, absent without official signatures).
    pub async fn version(&self) -> Result<String, ClamdError> {
        self.command("VERSION").await
    }

    /// Starts an `INSTREAM` scan: write the file's bytes, then [`Scan::finish`].
    pub async fn scan(&self) -> Result<Scan, ClamdError> {
        let mut io = self.connect().await?;
        self.deadline(io.write_all(b"zINSTREAM\0")).await?.map_err(|e| self.broken(e))?;
        Ok(Scan { io, clamd: self.clone(), broken: None })
    }

    /// Scans one byte string (the doctor's EICAR check, tests).
    pub async fn scan_bytes(&self, bytes: &[u8]) -> Result<Verdict, ClamdError> {
        let mut scan = self.scan().await?;
        scan.write(bytes).await;
        scan.finish().await
    }
}

/// One `INSTREAM` under way.
pub struct Scan {
    io: Box<dyn Io>,
    clamd: Clamd,
    /// The first write that failed: clamd may have closed the stream with an answer (a stream
    /// over `StreamMaxLength`), which [`Scan::finish`] reads.
    broken: Option<ClamdError>,
}

impl Scan {
    /// Sends `data` (in chunks). A failure is kept for [`Scan::finish`], so the caller's own
    /// pipeline (storing the same bytes) goes on undisturbed.
    pub async fn write(&mut self, data: &[u8]) {
        if self.broken.is_some() {
            return;
        }
        for chunk in data.chunks(CHUNK) {
            let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX).to_be_bytes();
            let sent = async {
                self.io.write_all(&len).await?;
                self.io.write_all(chunk).await
            };
            match self.clamd.deadline(sent).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    self.broken = Some(self.clamd.broken(e));
                    return;
                }
                Err(timeout) => {
                    self.broken = Some(timeout);
                    return;
                }
            }
        }
    }

    /// Ends the stream and reads clamd's verdict.
    pub async fn finish(mut self) -> Result<Verdict, ClamdError> {
        if self.broken.is_none() {
            if let Err(e) = self.clamd.deadline(self.io.write_all(&0u32.to_be_bytes())).await? {
                self.broken = Some(self.clamd.broken(e));
            }
        }
        match read_reply(&mut self.io, &self.clamd).await {
            Ok(reply) => verdict(&reply),
            // No answer after a failed write: the write's error is the story.
            Err(e) => Err(self.broken.unwrap_or(e)),
        }
    }
}

/// The standard anti-virus test file (EICAR): every scanner detects it; harmless.
pub const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// The signature database's date in a `VERSION` answer (`ClamAV 1.4.6/27000/Mon Nov 30
/// 09:00:00 2026`); `None` when clamd names none (no official signatures loaded).
pub fn signature_date(version: &str) -> Option<chrono::NaiveDateTime> {
    let date = version.splitn(3, '/').nth(2)?.trim();
    let date = date.split_whitespace().collect::<Vec<_>>().join(" ");
    chrono::NaiveDateTime::parse_from_str(&date, "%a %b %d %H:%M:%S %Y").ok()
}

/// Reads one answer, up to its terminating NUL (or the end of the stream).
async fn read_reply(io: &mut Box<dyn Io>, clamd: &Clamd) -> Result<String, ClamdError> {
    let mut out = Vec::with_capacity(64);
    let mut buf = [0u8; 512];
    loop {
        let n = clamd.deadline(io.read(&mut buf)).await?.map_err(|e| clamd.broken(e))?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if let Some(end) = out.iter().position(|b| *b == 0) {
            out.truncate(end);
            break;
        }
        if out.len() > MAX_REPLY {
            return Err(ClamdError::Protocol("an answer longer than clamd gives".into()));
        }
    }
    if out.is_empty() {
        return Err(ClamdError::Protocol("nothing (the connection closed)".into()));
    }
    Ok(String::from_utf8_lossy(&out).trim().to_owned())
}

/// `stream: OK`, `stream: Win.Test.EICAR_HDB-1 FOUND`, `INSTREAM size limit exceeded. ERROR`.
fn verdict(reply: &str) -> Result<Verdict, ClamdError> {
    let body = reply.strip_prefix("stream:").map(str::trim);
    match body {
        Some("OK") => Ok(Verdict::Clean),
        Some(b) if b.ends_with(" FOUND") => {
            let name = b.trim_end_matches(" FOUND").trim();
            let name: String =
                name.chars().filter(|c| c.is_ascii_graphic()).take(200).collect::<String>().replace(".UNOFFICIAL", "");
            Ok(Verdict::Infected(if name.is_empty() { "unnamed signature".into() } else { name }))
        }
        _ if reply.contains("size limit exceeded") => Ok(Verdict::TooLarge),
        _ => Err(ClamdError::Protocol(reply.chars().take(200).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(Address::parse("tcp://127.0.0.1:3310"), Ok(Address::Tcp("127.0.0.1:3310".into())));
        assert_eq!(Address::parse("unix:/run/clamav/clamd.ctl"), Ok(Address::Unix("/run/clamav/clamd.ctl".into())));
        assert_eq!(Address::parse("unix:///run/clamd.sock"), Ok(Address::Unix("/run/clamd.sock".into())));
        for bad in ["127.0.0.1:3310", "tcp://nohost", "tcp://:3310", "unix:relative", "http://x:1"] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Address::parse("tcp://localhost:3310").map(|a| a.to_string()), Ok("tcp://localhost:3310".into()));
    }

    #[test]
    fn signature_dates() {
        let d = signature_date("ClamAV 1.4.6/27000/Mon Nov 30 09:00:00 2026").expect("date");
        assert_eq!(d.to_string(), "2026-11-30 09:00:00");
        assert!(signature_date("ClamAV 1.4.6/27000/Tue Dec  1 09:00:00 2026").is_some(), "a padded day");
        assert_eq!(signature_date("ClamAV 1.4.6"), None);
        assert_eq!(EICAR.len(), 68);
    }

    /// A daemon that takes the connection and never answers gives no verdict: an error within
    /// the step deadline, never "clean".
    #[tokio::test]
    async fn a_silent_daemon_is_a_timeout_not_a_verdict() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let addr = listener.local_addr().expect("addr");
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket); // kept open, never read or answered
            }
        });
        let clamd = Clamd::new(Address::Tcp(addr.to_string()), Duration::from_millis(300));
        let started = std::time::Instant::now();
        assert!(matches!(clamd.scan_bytes(EICAR).await, Err(ClamdError::Timeout(_))));
        assert!(matches!(clamd.ping().await, Err(ClamdError::Timeout(_))));
        assert!(started.elapsed() < Duration::from_secs(5), "bounded by the step deadline");
        held.abort();
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict("stream: OK").ok(), Some(Verdict::Clean));
        assert_eq!(
            verdict("stream: Win.Test.EICAR_HDB-1.UNOFFICIAL FOUND").ok(),
            Some(Verdict::Infected("Win.Test.EICAR_HDB-1".into()))
        );
        assert_eq!(verdict("stream: Eicar-Signature FOUND").ok(), Some(Verdict::Infected("Eicar-Signature".into())));
        assert_eq!(verdict("INSTREAM size limit exceeded. ERROR").ok(), Some(Verdict::TooLarge));
        assert!(verdict("stream: lstat() failed: No such file. ERROR").is_err());
        assert!(verdict("UNKNOWN COMMAND").is_err());
    }
}
