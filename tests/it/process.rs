//! koinonia as a separate process, measured from outside: memory while a huge upload is refused.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::process::{self, Server};

/// The binary in `dir` with a clean environment.
fn koinonia(dir: &std::path::Path) -> std::process::Command {
    process::koinonia(dir, &HashMap::new())
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM")
}

/// A church with its leader, served from `dir`.
async fn start(dir: &std::path::Path) -> Server {
    process::church_and_leader(dir, &HashMap::new());
    process::serve_on(koinonia(dir), process::free_port()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_600_mb_upload_is_refused_with_memory_bounded_and_nothing_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let http = koinonia::crypto::tls::client_builder().build().expect("client");
    let token = process::login(&server.base).await;
    let started: Value = http
        .post(format!("{}/api/conversations", server.base))
        .bearer_auth(&token)
        .json(&json!({"phone": "+13125550001", "content": "Hello"}))
        .send()
        .await
        .expect("start")
        .json()
        .await
        .expect("json");
    let conv = started["data"]["conversation"]["id"].as_str().expect("conversation").to_owned();
    let before = peak_rss_kib(server.child.id());

    // 600 MB, generated as it is sent (a JPEG start, then filler), with no declared length.
    let chunk = bytes::Bytes::from(vec![0x55u8; 1 << 20]);
    let head = bytes::Bytes::from_static(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00");
    let body = futures::stream::iter(
        std::iter::once(Ok::<_, std::io::Error>(head)).chain((0..600).map(move |_| Ok(chunk.clone()))),
    );
    let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(body)).file_name("huge.jpg");
    let res = http
        .post(format!("{}/api/conversations/{conv}/reply-with-media", server.base))
        .bearer_auth(&token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await;
    match res {
        Ok(res) => {
            assert_eq!(res.status(), 413);
            let body: Value = res.json().await.expect("json");
            assert_eq!(body["error"], "File too large (max 500.0 MB)");
        }
        // The server may close the connection right after answering, while the client is
        // still writing: what matters then is what it kept and the memory it used.
        Err(e) => eprintln!("upload ended by the server: {e}"),
    }
    let peak = peak_rss_kib(server.child.id());
    eprintln!("server peak RSS: {} MB before, {} MB after a 600 MB upload", before / 1024, peak / 1024);
    assert!(peak < 128 * 1024, "peak RSS {peak} KiB: memory must not grow with the upload");
    let files = crate::support::files_under(&dir.path().join("koinonia-data/media"));
    assert!(files.is_empty(), "nothing of the upload kept: {files:?}");
    // The server is still fine.
    let list = http.get(format!("{}/api/conversations", server.base)).bearer_auth(&token).send().await.expect("list");
    assert_eq!(list.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_to_a_working_deployment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    // A member texts a photo through the simulator.
    let photo = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/media/photo.jpg")).expect("fixture");
    let form = reqwest::multipart::Form::new()
        .text("phone", "+13125550001")
        .text("church", "+15551230000")
        .text("text", "Before the backup")
        .part("files", reqwest::multipart::Part::bytes(photo).file_name("photo.jpg"));
    let res = koinonia::crypto::tls::client_builder()
        .build()
        .expect("client")
        .post(format!("{}/sandbox/send", server.base))
        .multipart(form)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 201);
    // Wait until the file is stored and the simulator's staged copy is gone.
    let media = dir.path().join("koinonia-data/media");
    let live =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("koinonia-data/koinonia.db").display()))
            .await
            .expect("read the live database");
    for _ in 0..100 {
        let stored: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM attachments WHERE status = 'stored' AND preview_state = 'ready'")
                .fetch_one(&live)
                .await
                .unwrap_or(0);
        if stored == 1 && crate::support::files_under(&media.join("sandbox")).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    live.close().await;
    // Back up while the server runs.
    let backup = dir.path().join("backup");
    let out = koinonia(dir.path()).args(["backup", "--to"]).arg(&backup).output().expect("backup");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 media files"), "{}", String::from_utf8_lossy(&out.stdout));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(backup.join("secrets.env")).expect("secrets copied").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = koinonia(dir.path()).args(["backup", "--to"]).arg(&backup).output().expect("backup");
    assert!(!again.status.success(), "never overwrites a backup");
    drop(server);

    // Restore: the backup folder is a data folder.
    let restored_dir = tempfile::tempdir().expect("tempdir");
    let mut restored_cmd = koinonia(restored_dir.path());
    restored_cmd.env("KOINONIA_DATA_DIR", &backup);
    let restored = process::serve_on(restored_cmd, process::free_port()).await;
    let http = koinonia::crypto::tls::client_builder().build().expect("client");
    let token = process::login(&restored.base).await;
    let list: Value = http
        .get(format!("{}/api/conversations", restored.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let conv = list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
    let thread: Value = http
        .get(format!("{}/api/conversations/{conv}", restored.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("thread")
        .json()
        .await
        .expect("json");
    assert_eq!(
        thread["data"]["conversation"]["member"]["phone"], "+13125550001",
        "numbers decrypt with the copied secrets"
    );
    let media_id = thread["data"]["messages"][0]["media"][0]["id"].as_str().expect("media").to_owned();
    let res = koinonia::crypto::tls::client_builder()
        .build()
        .expect("client")
        .get(format!("{}/api/media/{media_id}", restored.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("media");
    assert_eq!(res.status(), 200, "the file follows to its stored original");
}

/// Streams one generated file of `mb` megabytes (text, so no preview job) as a reply.
async fn upload_text(http: &reqwest::Client, base: &str, token: &str, conv: &str, name: &str, mb: usize) {
    let line = bytes::Bytes::from("Sunday service notes, all of them. ".repeat(1 << 15).into_bytes());
    let per_mb = (1 << 20) as f64 / line.len() as f64;
    let chunks = (mb as f64 * per_mb).ceil() as usize;
    let body = futures::stream::iter((0..chunks).map(move |_| Ok::<_, std::io::Error>(line.clone())));
    let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(body)).file_name(name.to_owned());
    let res = http
        .post(format!("{base}/api/conversations/{conv}/reply-with-media"))
        .bearer_auth(token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap_or_default());
}

/// A 2 GB export streams as a ZIP that `unzip -t` accepts, with the server's memory flat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_gb_export_streams_with_memory_flat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let http = koinonia::crypto::tls::client_builder().build().expect("client");
    let token = process::login(&server.base).await;
    let started: Value = http
        .post(format!("{}/api/conversations", server.base))
        .bearer_auth(&token)
        .json(&json!({"phone": "+13125550001", "content": "The recordings"}))
        .send()
        .await
        .expect("start")
        .json()
        .await
        .expect("json");
    let conv = started["data"]["conversation"]["id"].as_str().expect("conversation").to_owned();
    const FILES: usize = 5;
    const MB: usize = 420;
    for i in 0..FILES {
        upload_text(&http, &server.base, &token, &conv, &format!("notes-{i}.txt"), MB).await;
    }
    // Measure the export alone, in a fresh process (the uploads' memory is not the export's).
    drop(server);
    let server = process::serve_on(koinonia(dir.path()), process::free_port()).await;
    let token = process::login(&server.base).await;
    let before = peak_rss_kib(server.child.id());

    let mut res = http
        .post(format!("{}/api/media/export", server.base))
        .bearer_auth(&token)
        .json(&json!({"filter": {"type": "document"}}))
        .send()
        .await
        .expect("export");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let zip_path = dir.path().join("export.zip");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&zip_path).expect("zip file"));
    let mut total = 0u64;
    while let Some(chunk) = res.chunk().await.expect("chunk") {
        total += chunk.len() as u64;
        std::io::Write::write_all(&mut out, &chunk).expect("write");
    }
    std::io::Write::flush(&mut out).expect("flush");
    let peak = peak_rss_kib(server.child.id());
    let originals = (FILES * MB) as u64 * (1 << 20);
    eprintln!(
        "export: {:.2} GB streamed; server peak RSS {} MB at start, {} MB after the export (goal: under 64 MB)",
        total as f64 / 1e9,
        before / 1024,
        peak / 1024
    );
    assert!(total > originals, "the ZIP holds every original: {total} bytes");
    assert!(peak < 64 * 1024, "peak RSS {} MB: an export must not hold files in memory", peak / 1024);

    let test = std::process::Command::new("unzip").arg("-tq").arg(&zip_path).output().expect("unzip is installed");
    assert!(
        test.status.success(),
        "unzip -t: {}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    let listing = std::process::Command::new("unzip").arg("-Z1").arg(&zip_path).output().expect("unzip -Z1");
    let names = String::from_utf8_lossy(&listing.stdout);
    assert_eq!(names.lines().count(), FILES, "{names}");
    assert!(names.lines().all(|n| n.ends_with(".txt") && n.contains("member 0001/")), "{names}");
}

/// After `DELETE /api/members/:id` nothing holds the member's number, words or files: no row in
/// any table, no object in the store, no line of the server's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_member_leaves_no_trace_in_rows_store_or_logs() {
    use sqlx::{Column, Row};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = HashMap::new();
    env.insert("LOG_FORMAT".to_owned(), "json".to_owned());
    env.insert("RUST_LOG".to_owned(), "debug,sqlx=warn,hyper=warn,h2=warn,reqwest=warn".to_owned());
    let church = process::church_and_leader(dir.path(), &env);
    let mut admin = process::koinonia(dir.path(), &env)
        .args(["leader", "create", "--church", &church, "--email", "admin@grace.test", "--password-stdin", "--admin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("admin");
    std::io::Write::write_all(&mut admin.stdin.take().expect("stdin"), b"correct horse battery").expect("password");
    assert!(admin.wait().expect("wait").success());
    let log = dir.path().join("serve.log");
    let mut cmd = process::koinonia(dir.path(), &env);
    cmd.stdout(std::fs::File::create(&log).expect("log")).stderr(std::process::Stdio::null());
    let server = process::serve_on(cmd, process::free_port()).await;
    let http = koinonia::crypto::tls::client_builder().build().expect("client");

    // The member texts words and a photo (through the simulator: the same pipeline as Telnyx's).
    let photo = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/media/photo.jpg")).expect("fixture");
    let form = reqwest::multipart::Form::new()
        .text("phone", "+13125550177")
        .text("church", "+15551230000")
        .text("text", "Please forget me, Zebulon")
        .part("files", reqwest::multipart::Part::bytes(photo).file_name("zebulon-portrait.jpg"));
    let res = http.post(format!("{}/sandbox/send", server.base)).multipart(form).send().await.expect("send");
    assert_eq!(res.status(), 201);
    let token = process::login_as(&server.base, "admin@grace.test").await;
    let db_path = dir.path().join("koinonia-data/koinonia.db");
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", db_path.display())).await.expect("sqlite");
    for _ in 0..200 {
        let ready: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM attachments WHERE status = 'stored' AND preview_state IS NOT NULL",
        )
        .fetch_one(&db)
        .await
        .unwrap_or(0);
        if ready == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list: Value = http
        .get(format!("{}/api/conversations", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let member = list["data"]["conversations"][0]["member"]["id"].as_str().expect("member").to_owned();
    // A leader looked at the photo (an audited view) and answered.
    let thread: Value = http
        .get(format!(
            "{}/api/conversations/{}",
            server.base,
            list["data"]["conversations"][0]["id"].as_str().expect("id")
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("thread")
        .json()
        .await
        .expect("json");
    let attachment = thread["data"]["messages"][0]["media"][0]["id"].as_str().expect("attachment").to_owned();
    let no_redirect =
        koinonia::crypto::tls::client_builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let view = no_redirect
        .get(format!("{}/api/media/{attachment}", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("view");
    assert_eq!(view.status(), 302);

    let erased =
        http.delete(format!("{}/api/members/{member}", server.base)).bearer_auth(&token).send().await.expect("erase");
    assert_eq!(erased.status(), 200);
    drop(server);

    let traces = ["3125550177", "5550177", "Zebulon", "zebulon-portrait"];
    // Every table, every column.
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            .fetch_all(&db)
            .await
            .expect("tables");
    assert!(tables.len() > 10, "{tables:?}");
    for table in &tables {
        let rows = sqlx::query(&format!("SELECT * FROM \"{table}\"")).fetch_all(&db).await.expect("rows");
        for row in rows {
            for (i, column) in row.columns().iter().enumerate() {
                let text = match row.try_get::<Option<String>, _>(i) {
                    Ok(v) => v.unwrap_or_default(),
                    Err(_) => row
                        .try_get::<Option<Vec<u8>>, _>(i)
                        .ok()
                        .flatten()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default(),
                };
                for t in traces {
                    assert!(!text.contains(t), "{table}.{} still holds {t:?}: {text}", column.name());
                }
            }
        }
    }
    for table in ["members", "conversations", "messages", "attachments"] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&db).await.expect("count");
        assert_eq!(n, 0, "{table}");
    }
    db.close().await;
    // The store.
    let left = crate::support::files_under(&dir.path().join("koinonia-data/media"));
    assert!(left.is_empty(), "{left:?}");
    // The server's log, which did record the work (JSON lines).
    let lines = std::fs::read_to_string(&log).expect("log");
    assert!(lines.lines().count() > 5, "the log recorded the work");
    for line in lines.lines() {
        for t in traces {
            assert!(!line.contains(t), "a log line holds {t:?}: {line}");
        }
    }
}
