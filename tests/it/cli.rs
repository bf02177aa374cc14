//! The operator commands, run as the real binary.

use std::io::Write;
use std::process::{Command, Stdio};

/// The binary in `dir` with a clean environment (no RUST_LOG: stderr holds only its messages).
fn koinonia(dir: &std::path::Path) -> Command {
    let mut cmd = crate::support::process::koinonia(dir, &std::collections::HashMap::new());
    cmd.env_remove("RUST_LOG");
    cmd
}

#[test]
fn church_and_leader_create_print_ids_and_refuse_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = koinonia(dir.path())
        .args(["church", "create", "--name", "Grace", "--number", "+15551230000"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let church = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "the id alone on one line: {stdout:?}");
    assert!(uuid::Uuid::parse_str(church).is_ok(), "{church}");
    // Embedded defaults were created, secrets private.
    let secrets = dir.path().join("koinonia-data/secrets.env");
    assert!(dir.path().join("koinonia-data/koinonia.db").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&secrets).expect("secrets").permissions().mode() & 0o777, 0o600);
    }

    let mut child = koinonia(dir.path())
        .args(["leader", "create", "--church", church, "--email", "pastor@grace.test", "--password-stdin", "--admin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(b"correct horse battery\n").expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(uuid::Uuid::parse_str(String::from_utf8_lossy(&out.stdout).trim()).is_ok());

    // The same number twice, a bad number: non-zero, a sentence on stderr, nothing on stdout.
    for args in [
        vec!["church", "create", "--name", "Again", "--number", "+15551230000"],
        vec!["church", "create", "--name", "Bad", "--number", "12"],
        vec!["church", "create", "--name", "Mars", "--number", "+15551230007", "--time-zone", "Mars/Olympus"],
    ] {
        let out = koinonia(dir.path()).args(&args).output().expect("run");
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty());
        assert!(!out.stderr.is_empty());
    }
    let out = koinonia(dir.path())
        .args(["church", "create", "--name", "Hope", "--number", "+15551230008", "--time-zone", "America/Chicago"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(uuid::Uuid::parse_str(String::from_utf8_lossy(&out.stdout).trim()).is_ok());
    assert_eq!(
        std::fs::read_to_string(&secrets).expect("secrets").lines().filter(|l| l.contains('=')).count(),
        4,
        "secrets generated once (the three keys and the Web Push key)"
    );
}

#[test]
fn a_bad_setting_stops_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (var, value) in [
        ("PORT", "eighty"),
        ("MAX_MEDIA_SIZE_BYTES", "-1"),
        ("DATABASE_URL", "mysql://x"),
        ("TELNYX_PUBLIC_KEY", "not base64!"),
        ("MEDIA_FETCH_ALLOW_PRIVATE", "maybe"),
        ("PHONE_ENCRYPTION_KEY_PREVIOUS", "not base64!"),
        ("JWT_SECRET_PREVIOUS", "too short"),
    ] {
        let out = koinonia(dir.path()).arg("migrate").env(var, value).output().expect("run");
        assert!(!out.status.success(), "{var}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var), "{var}: {err}");
    }
    let out = koinonia(dir.path()).arg("migrate").env("TELNYX_API_KEY", "KEY123").output().expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("TELNYX_PUBLIC_KEY"));
    let out = koinonia(dir.path())
        .arg("migrate")
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("PHONE_HASH_KEY"), "secrets are required with PostgreSQL");
}

#[test]
fn the_local_store_refuses_a_folder_it_cannot_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, b"x").expect("file");
    let out = koinonia(dir.path())
        .arg("serve")
        .env("PORT", "0")
        .env("MEDIA_DIR", blocker.join("media"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("MEDIA_DIR"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_ingest_benchmark_runs_and_reports_its_figures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = koinonia(dir.path())
        .args(["bench", "ingest", "--size-mb", "3", "--dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = String::from_utf8_lossy(&out.stdout);
    for line in ["koinonia ", "cp+sha256", "ratio", "peak RSS"] {
        assert!(report.contains(line), "{line} missing from:\n{report}");
    }
}

#[test]
fn the_outbound_benchmark_runs_and_reports_its_figures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = koinonia(dir.path())
        .args(["bench", "outbound", "--messages", "200", "--dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = String::from_utf8_lossy(&out.stdout);
    for line in ["sends/s", "raw HTTP", "ratio", "queue→request"] {
        assert!(report.contains(line), "{line} missing from:\n{report}");
    }
}

/// The webhook benchmark drives real `serve` processes, checks what it stored, and leaves the
/// folder it was started in untouched (it reads no configuration, so no `koinonia-data/`).
#[test]
fn the_webhook_benchmark_stores_what_it_acknowledged_and_writes_nothing_where_it_runs() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let out = koinonia(cwd.path())
        .args(["bench", "webhooks", "--requests", "300", "--members", "20", "--concurrency", "16", "--dir"])
        .arg(work.path())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = String::from_utf8_lossy(&out.stdout);
    for line in ["webhooks/s", "p99", "first webhook", "koinonia CPU", "acknowledged   300 (200), failed 0, stored 300"]
    {
        assert!(report.contains(line), "{line} missing from:\n{report}");
    }
    let left: Vec<_> = std::fs::read_dir(cwd.path()).expect("read").collect();
    assert!(left.is_empty(), "the benchmark wrote into its working folder: {left:?}");
    let work_left: Vec<_> = std::fs::read_dir(work.path()).expect("read").collect();
    assert!(work_left.is_empty(), "the benchmark left its temporary folder behind: {work_left:?}");
}

/// `bench seed` fills the configured database (here the embedded one): a church created on the
/// first run and added to on the next, its members reused, the rows counted in the database.
#[test]
fn the_seed_benchmark_fills_the_configured_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = |number: &str| {
        let out = koinonia(dir.path())
            .args(["bench", "seed", "--messages", "500", "--conversations", "20", "--attachments", "50"])
            .args(["--church-number", number])
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = seed("+15550100000");
    assert!(first.contains("created church"), "{first}");
    assert!(first.contains("added          500 messages and 50 stored photos over 20 members"), "{first}");
    let again = seed("+15550100000");
    assert!(again.contains("added to church"), "{again}");
    let refused =
        koinonia(dir.path()).args(["bench", "seed", "--messages", "5", "--conversations", "20"]).output().expect("run");
    assert!(!refused.status.success(), "fewer messages than conversations");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--messages must be at least --conversations"));

    let counts = tokio::runtime::Runtime::new().expect("runtime").block_on(async {
        use sqlx::Connection;
        let path = dir.path().join("koinonia-data").join("koinonia.db");
        let url = format!("sqlite://{}?mode=ro", path.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open the embedded database");
        let mut counts = Vec::new();
        for table in ["churches", "members", "conversations", "messages", "attachments"] {
            let n: i64 =
                sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&mut conn).await.expect("count");
            counts.push(n);
        }
        counts
    });
    assert_eq!(counts, vec![1, 20, 20, 1000, 100], "churches, members, conversations, messages, photos");
}

#[test]
fn the_read_benchmark_measures_every_route_at_two_sizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = koinonia(dir.path())
        .args(["bench", "read", "--messages", "600", "--conversations", "30", "--attachments", "60"])
        .args(["--requests", "3", "--dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = String::from_utf8_lossy(&out.stdout);
    for line in ["at 60 messages", "at 600 messages", "GET /api/conversations/:id", "GET /inbox/:id", "GET /library"] {
        assert!(report.contains(line), "{line} missing from:\n{report}");
    }
}

/// `serve` says where to go: the setup page while no church exists (with the one-time code when
/// it listens beyond loopback), the sign-in page after.
#[test]
fn serve_prints_the_address_to_open() {
    use std::io::BufRead;
    let first_line = |dir: &std::path::Path, host: &str| -> String {
        let port = crate::support::process::free_port();
        let mut child = koinonia(dir)
            .args(["serve"])
            .env("HOST", host)
            .env("PORT", port.to_string())
            .env("BACKEND_URL", format!("http://127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve");
        let stderr = child.stderr.take().expect("stderr");
        let line = std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("koinonia is serving"))
            .unwrap_or_default();
        let _ = child.kill();
        let _ = child.wait();
        line
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let line = first_line(dir.path(), "127.0.0.1");
    assert!(
        line.contains("First run: open http://127.0.0.1:") && line.ends_with("/setup to create your church"),
        "{line}"
    );
    let line = first_line(dir.path(), "0.0.0.0");
    assert!(line.contains("/setup and enter the one-time setup code "), "{line}");
    let code = line.rsplit(' ').next().unwrap_or_default();
    assert_eq!(code.len(), 8, "{line}");
    let out = koinonia(dir.path())
        .args(["church", "create", "--name", "Grace", "--number", "+15551230000"])
        .output()
        .expect("church");
    assert!(out.status.success());
    let line = first_line(dir.path(), "127.0.0.1");
    assert!(line.ends_with("/login"), "{line}");
}

#[test]
fn rescan_needs_a_scanner_and_a_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = koinonia(dir.path()).args(["rescan"]).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CLAMD_ADDRESS"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = koinonia(dir.path()).args(["rescan", "--since", "last week"]).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"), "{}", String::from_utf8_lossy(&out.stderr));
}
