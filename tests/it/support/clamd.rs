//! A real ClamAV daemon for the tests: Debian's `clamd` (scripts/test installs
//! `clamav-daemon`), started on a free loopback port with a configuration and a signature
//! database of its own — this machine cannot download ClamAV's. Two signatures: the EICAR test
//! file (under the name ClamAV's own database gives it) and a made-up marker the tests put into
//! a PDF. koinonia knows nothing of either; it only speaks to the daemon.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The marker a test PDF carries to be "infected".
pub const PDF_MARKER: &str = "KOINONIA-TEST-MALWARE-MARKER-7d1f";
/// What clamd calls the EICAR file with these signatures.
pub const EICAR_SIGNATURE: &str = "Win.Test.EICAR_HDB-1";
pub const PDF_SIGNATURE: &str = "Koinonia.Test.PDF-1";
/// The standard anti-virus test file.
pub const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

pub struct TestClamd {
    pub address: String,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn clamd_binary() -> Option<PathBuf> {
    ["/usr/sbin/clamd", "/usr/bin/clamd", "/usr/local/sbin/clamd"].into_iter().map(PathBuf::from).find(|p| p.exists())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TestClamd {
    /// A running clamd, or `None` when it is not installed here (outside CI: the test skips; in
    /// CI a missing scanner fails the test).
    pub fn start() -> Option<Self> {
        let Some(_) = clamd_binary() else {
            assert!(std::env::var("CI").is_err(), "clamd is not installed (scripts/test installs clamav-daemon)");
            eprintln!("skipping: clamd is not installed (apt-get install clamav-daemon)");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("db");
        std::fs::create_dir_all(&db).expect("db folder");
        std::fs::write(
            db.join("koinonia-test.ndb"),
            format!("{EICAR_SIGNATURE}:0:0:{}\n{PDF_SIGNATURE}:0:*:{}\n", hex(EICAR), hex(PDF_MARKER.as_bytes())),
        )
        .expect("signatures");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let mut me = Self { address: format!("tcp://127.0.0.1:{port}"), port, dir, child: None };
        me.run();
        Some(me)
    }

    fn config(&self) -> PathBuf {
        let path = self.dir.path().join("clamd.conf");
        let conf = format!(
            "TCPSocket {}\nTCPAddr 127.0.0.1\nDatabaseDirectory {}\nForeground yes\nLogFile {}\nStreamMaxLength 4M\nMaxThreads 4\n",
            self.port,
            self.dir.path().join("db").display(),
            self.dir.path().join("clamd.log").display(),
        );
        std::fs::write(&path, conf).expect("clamd.conf");
        path
    }

    /// Starts the daemon and waits until it answers PING.
    pub fn run(&mut self) {
        let binary = clamd_binary().expect("clamd");
        let child = Command::new(binary)
            .arg("-c")
            .arg(self.config())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start clamd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if ping(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("clamd did not answer within 90 s; its log: {}", log(self.dir.path()));
    }

    /// Stops the daemon (as a crash or a restart would).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestClamd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("clamd.log")).unwrap_or_default()
}

fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"zPING\0").is_err() {
        return false;
    }
    let mut buf = [0u8; 8];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"PONG"))
}
