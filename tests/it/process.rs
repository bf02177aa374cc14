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
    let http = reqwest::Client::new();
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
    let res = reqwest::Client::new()
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
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM attachments WHERE status = 'stored'")
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
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 media files"), "{}", String::from_utf8_lossy(&out.stdout));
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
    let http = reqwest::Client::new();
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
    let res = reqwest::Client::builder()
        .build()
        .expect("client")
        .get(format!("{}/api/media/{media_id}", restored.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("media");
    assert_eq!(res.status(), 200, "the file follows to its stored original");
}
