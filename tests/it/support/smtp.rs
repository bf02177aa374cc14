//! A real SMTP server for the tests: Python's aiosmtpd (scripts/test installs it into
//! target/smtp-venv), on a free loopback port, keeping every e-mail it takes in a Maildir the
//! tests read.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestSmtp {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

/// The Python that has aiosmtpd: `KOINONIA_SMTP_PYTHON`, or scripts/test's venv.
fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("KOINONIA_SMTP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/smtp-venv/bin/python"));
    let ok = Command::new(&candidate)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(candidate)
}

/// One e-mail as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub to: String,
    pub subject: String,
    /// The whole message, then its decoded text body.
    pub raw: String,
}

impl TestSmtp {
    /// A running server, or `None` when aiosmtpd is not installed here (outside CI: the test
    /// skips; in CI it fails).
    pub fn start() -> Option<Self> {
        let Some(python) = python() else {
            assert!(std::env::var("CI").is_err(), "aiosmtpd is not installed (scripts/test installs it)");
            eprintln!("skipping: aiosmtpd is not installed (python3 -m venv target/smtp-venv && target/smtp-venv/bin/pip install aiosmtpd)");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("mail"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let me = Self { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
            {
                return Some(me);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("aiosmtpd did not listen within 30 s");
    }

    /// `SMTP_URL` for this server (plain SMTP: it is on loopback).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// Every e-mail taken so far, read with Python's own e-mail parser (headers decoded, the
    /// text body as sent).
    pub fn received(&self) -> Vec<Received> {
        const SCRIPT: &str = r#"
import email, email.policy, json, mailbox, sys
box = mailbox.Maildir(sys.argv[1], create=False)
out = []
for key in box.keys():
    with box.get_file(key) as f:
        m = email.message_from_binary_file(f, policy=email.policy.default)
    body = m.get_body(preferencelist=("plain",))
    out.append({"to": str(m["To"]), "subject": str(m["Subject"]), "body": body.get_content() if body else "", "raw": m.as_string()})
print(json.dumps(out))
"#;
        let mail = self.dir.path().join("mail");
        if !mail.exists() {
            return Vec::new();
        }
        let python = python().expect("aiosmtpd's python");
        let out = Command::new(python).arg("-c").arg(SCRIPT).arg(&mail).output().expect("python");
        assert!(out.status.success(), "reading the Maildir: {}", String::from_utf8_lossy(&out.stderr));
        let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
        list.iter()
            .map(|m| Received {
                to: m["to"].as_str().unwrap_or_default().to_owned(),
                subject: m["subject"].as_str().unwrap_or_default().to_owned(),
                raw: format!("{}\n{}", m["raw"].as_str().unwrap_or_default(), m["body"].as_str().unwrap_or_default()),
            })
            .collect()
    }
}

impl Drop for TestSmtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
