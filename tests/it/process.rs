//! koinonia as a separate process, measured from outside: memory while a huge upload is refused.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

struct Server {
    child: std::process::Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn koinonia(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_koinonia"));
    cmd.current_dir(dir).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("RUST_LOG", "warn");
    cmd
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM")
}

async fn start(dir: &std::path::Path) -> Server {
    let out = koinonia(dir)
        .args(["church", "create", "--name", "Grace", "--number", "+15551230000"])
        .output()
        .expect("church");
    assert!(out.status.success());
    let church = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let mut child = koinonia(dir)
        .args(["leader", "create", "--church", &church, "--email", "pastor@grace.test", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("leader");
    child.stdin.take().expect("stdin").write_all(b"correct horse battery").expect("password");
    assert!(child.wait().expect("wait").success());
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let child = koinonia(dir).arg("serve").env("PORT", port.to_string()).spawn().expect("serve");
    let base = format!("http://127.0.0.1:{port}");
    let server = Server { child, base };
    for _ in 0..100 {
        if reqwest::get(format!("{}/healthz", server.base)).await.is_ok_and(|r| r.status() == 200) {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("koinonia did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_600_mb_upload_is_refused_with_memory_bounded_and_nothing_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{}/api/auth/login", server.base))
        .json(&json!({"email": "pastor@grace.test", "password": "correct horse battery"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["data"]["token"].as_str().expect("token").to_owned();
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
