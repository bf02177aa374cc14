//! Attacks on the real binary, measured from outside (memory from /proc, latency from a second
//! client): floods of logins, idle and trickling connections, and a crash mid-download. Every
//! loop is bounded and talks to 127.0.0.0/8 only.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::process::{self, Server, WebhookKey};
use crate::support::{fixture, received_event};

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn client_from(source: IpAddr) -> reqwest::Client {
    koinonia::crypto::tls::client_builder()
        .local_address(source)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Serves the test photo at paths matching `pattern` on `cdn`, after `delay`.
async fn serve_photo(cdn: &MockServer, pattern: &str, delay: Duration, times: Option<u64>, priority: u8) {
    let photo = fixture("photo.jpg");
    let mock = Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(pattern))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(photo.bytes)
                .insert_header("content-type", "image/jpeg")
                .set_delay(delay),
        )
        .with_priority(priority);
    match times {
        Some(n) => mock.up_to_n_times(n).mount(cdn).await,
        None => mock.mount(cdn).await,
    }
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Polls `/healthz` every 100 ms from 127.0.0.1 while `running`; returns the slowest answer
/// (a failed or refused request counts as 30 s).
async fn watch_health(base: String, running: Arc<AtomicBool>) -> Duration {
    let http = client_from(loopback(1));
    let mut worst = Duration::ZERO;
    while running.load(Ordering::Acquire) {
        let started = Instant::now();
        let ok = matches!(
            tokio::time::timeout(Duration::from_secs(30), http.get(format!("{base}/healthz")).send()).await,
            Ok(Ok(r)) if r.status() == 200
        );
        worst = worst.max(if ok { started.elapsed() } else { Duration::from_secs(30) });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worst
}

/// 500 concurrent logins for unknown emails from 50 addresses: password hashing is bounded, so
/// memory stays low (it reached 7.5 GB when every login hashed on its own thread) and the server
/// keeps answering `/healthz` within a second; the excess is told to come back (503 retry-after).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_cannot_exhaust_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = HashMap::new();
    process::church_and_leader(dir.path(), &env);
    let server = process::serve(dir.path(), &env).await;
    let pid = server.child.id();
    let rss_before = status_kib(pid, "VmRSS:");

    let running = Arc::new(AtomicBool::new(true));
    let health = tokio::spawn(watch_health(server.base.clone(), running.clone()));
    let clients: Vec<reqwest::Client> = (0..50).map(|i| client_from(loopback(2 + i))).collect();
    let logins = (0..500usize).map(|i| {
        let http = clients[i % 50].clone();
        let url = format!("{}/api/auth/login", server.base);
        async move {
            let res = http
                .post(url)
                .json(&json!({"email": format!("nobody{i}@grace.test"), "password": "not the password at all"}))
                .send()
                .await
                .expect("login answered");
            let retry_after = res.headers().get("retry-after").is_some();
            (res.status().as_u16(), retry_after)
        }
    });
    let answers = futures::future::join_all(logins).await;
    running.store(false, Ordering::Release);
    let worst_health = health.await.expect("health watcher");
    let peak = status_kib(pid, "VmHWM:");

    let count = |code: u16| answers.iter().filter(|(s, _)| *s == code).count();
    eprintln!(
        "500 logins: {} × 401, {} × 429, {} × 503; RSS {} → peak {} MiB; slowest /healthz {:?}",
        count(401),
        count(429),
        count(503),
        rss_before / 1024,
        peak / 1024,
        worst_health
    );
    assert!(answers.iter().all(|(s, _)| [401, 429, 503].contains(s)), "only refusals: {answers:?}");
    assert!(answers.iter().filter(|(s, _)| *s == 503 || *s == 429).all(|(_, r)| *r), "refusals say when to retry");
    assert!(count(401) >= 2, "some logins were checked");
    assert!(peak < 256 * 1024, "peak RSS {} MiB", peak / 1024);
    assert!(worst_health < Duration::from_secs(1), "/healthz took {worst_health:?}");
}

/// A server started with the common default of 1,024 open files.
async fn serve_with_1024_files(dir: &std::path::Path, env: &HashMap<String, String>) -> Server {
    let mut cmd = process::koinonia(dir, env);
    cmd.stdout(std::process::Stdio::null());
    // SAFETY: setrlimit is async-signal-safe and touches only the child about to exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            lim.rlim_cur = 1024.min(lim.rlim_max);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    process::serve_on(cmd, process::free_port()).await
}

/// Connects from `source` and sends half a request's headers.
async fn half_open(source: IpAddr, server: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let mut stream = socket.connect(server).await?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: koinonia\r\nX-Waiting: ").await?;
    Ok(stream)
}

/// 3,000 connections that never finish their headers, from ten addresses, against a server
/// started with 1,024 open files: `/healthz` and a signed webhook still answer within a second,
/// and the idle connections are closed once the header deadline passes. A body sent at one byte
/// a second is cut off after the grace period instead of holding its request for an hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_and_trickling_connections_cannot_starve_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = WebhookKey::new();
    let mut env = HashMap::new();
    env.insert("TELNYX_PUBLIC_KEY".to_owned(), key.public());
    env.insert("HEADER_READ_TIMEOUT_SECONDS".to_owned(), "5".to_owned());
    process::church_and_leader(dir.path(), &env);
    let server = serve_with_1024_files(dir.path(), &env).await;
    let addr: SocketAddr = server.base.trim_start_matches("http://").parse().expect("address");

    let mut held = Vec::with_capacity(3000);
    for i in 0..3000u32 {
        let source = loopback(2 + (i % 10) as u8);
        match half_open(source, addr).await {
            Ok(s) => held.push(s),
            Err(e) => panic!("connection {i} failed: {e}"),
        }
    }

    let http = client_from(loopback(1));
    let started = Instant::now();
    let health = http.get(format!("{}/healthz", server.base)).send().await.expect("healthz");
    let health_time = started.elapsed();
    assert_eq!(health.status(), 200);
    let event = received_event("evt-under-siege", "+13125550001", "+15551230000", "still here", Vec::new());
    let started = Instant::now();
    let webhook = key.post(&http, &server.base, &event).await;
    let webhook_time = started.elapsed();
    assert_eq!(webhook.status(), 200);
    eprintln!("with 3000 half-open connections: /healthz {health_time:?}, signed webhook {webhook_time:?}");
    assert!(health_time < Duration::from_secs(1), "/healthz took {health_time:?}");
    assert!(webhook_time < Duration::from_secs(1), "the webhook took {webhook_time:?}");

    // The header deadline (5 s here) closes every one of them.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut closed = 0;
    for s in held.iter_mut().step_by(30) {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut buf = [0u8; 256];
        if let Ok(Ok(_)) = tokio::time::timeout(left, s.read(&mut buf)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 100, "sampled idle connections closed by the server");
    drop(held);

    // A body at one byte a second.
    let mut slow = half_open(loopback(20), addr).await.expect("connect");
    slow.write_all(b"x\r\n\r\n").await.expect("end of a first request");
    let mut first = vec![0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut first)).await;
    slow.write_all(
        b"POST /api/auth/login HTTP/1.1\r\nHost: koinonia\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
    )
    .await
    .expect("headers");
    let started = Instant::now();
    let mut answer = Vec::new();
    for _ in 0..60 {
        if slow.write_all(b" ").await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_secs(1), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) => {}
        }
    }
    let held_for = started.elapsed();
    eprintln!(
        "a body at 1 byte/s was cut off after {held_for:?}: {:?}",
        String::from_utf8_lossy(&answer).lines().next()
    );
    assert!(held_for < Duration::from_secs(30), "the trickle was held {held_for:?}");
}

/// After kill -9 during a download, the restarted process takes the download up again at once
/// instead of waiting out its own dead lease (120 s here): the file is stored within 20 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_process_resumes_downloads_at_once() {
    let cdn = MockServer::start().await;
    // The first request hangs (the process is killed meanwhile); later ones are answered at once.
    serve_photo(&cdn, "^/media/photo.jpg$", Duration::from_secs(600), Some(1), 1).await;
    serve_photo(&cdn, "^/media/photo.jpg$", Duration::ZERO, None, 2).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let key = WebhookKey::new();
    let mut env = HashMap::new();
    env.insert("TELNYX_PUBLIC_KEY".to_owned(), key.public());
    env.insert("MEDIA_FETCH_ALLOW_PRIVATE".to_owned(), "true".to_owned());
    env.insert("JOB_LEASE_SECONDS".to_owned(), "120".to_owned());
    process::church_and_leader(dir.path(), &env);
    let mut first = process::serve(dir.path(), &env).await;
    let http = client_from(loopback(1));
    let media = vec![json!({"url": format!("{}/media/photo.jpg", cdn.uri()), "content_type": "image/jpeg"})];
    let res =
        key.post(&http, &first.base, &received_event("evt-crash", "+13125550001", "+15551230000", "", media)).await;
    assert_eq!(res.status(), 200);
    for _ in 0..100 {
        if !cdn.received_requests().await.unwrap_or_default().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cdn.received_requests().await.unwrap_or_default().len(), 1, "the download started");
    first.child.kill().expect("kill -9");
    let _ = first.child.wait();

    let second = process::serve(dir.path(), &env).await;
    let restarted = Instant::now();
    let token = process::login(&second.base).await;
    let stored = loop {
        let list = process::get_json(&http, &second.base, "/api/conversations", &token).await;
        let conv = list["data"]["conversations"][0]["id"].as_str().unwrap_or_default().to_owned();
        let thread = process::get_json(&http, &second.base, &format!("/api/conversations/{conv}"), &token).await;
        let status = thread["data"]["messages"][0]["media"][0]["status"].as_str().unwrap_or_default().to_owned();
        if status == "stored" || restarted.elapsed() > Duration::from_secs(20) {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("stored {:?} after the restart", restarted.elapsed());
    assert_eq!(stored, "stored", "the download resumed within 20 s of the restart (lease 120 s)");
}

/// One church's media host trickling six files cannot hold another church's photo or reply:
/// measured on the real binary, church Hope's photo is stored and its reply sent within seconds
/// while Grace's host is still sending its first bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_media_host_does_not_stall_another_church() {
    let cdn = MockServer::start().await;
    serve_photo(&cdn, "^/slow/", Duration::from_secs(60), None, 5).await;
    serve_photo(&cdn, "^/fast/", Duration::ZERO, None, 5).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = WebhookKey::new();
    let mut env = HashMap::new();
    env.insert("TELNYX_PUBLIC_KEY".to_owned(), key.public());
    env.insert("MEDIA_FETCH_ALLOW_PRIVATE".to_owned(), "true".to_owned());
    process::church_and_leader(dir.path(), &env);
    process::church_with_leader(dir.path(), &env, "Hope", "+15551239999", "pastor@hope.test");
    let server = process::serve(dir.path(), &env).await;
    let http = client_from(loopback(1));

    let slow: Vec<Value> =
        (0..6).map(|i| json!({"url": format!("{}/slow/{i}.jpg", cdn.uri()), "content_type": "image/jpeg"})).collect();
    let grace = received_event("evt-grace", "+13125550001", "+15551230000", "", slow);
    assert_eq!(key.post(&http, &server.base, &grace).await.status(), 200);
    for _ in 0..100 {
        if cdn.received_requests().await.unwrap_or_default().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    let fast = vec![json!({"url": format!("{}/fast/photo.jpg", cdn.uri()), "content_type": "image/jpeg"})];
    let hope_event = received_event("evt-hope", "+13125550002", "+15551239999", "photo", fast);
    assert_eq!(key.post(&http, &server.base, &hope_event).await.status(), 200);
    let token = process::login_as(&server.base, "pastor@hope.test").await;
    let thread = |conv: String| {
        let (http, base, token) = (http.clone(), server.base.clone(), token.clone());
        async move { process::get_json(&http, &base, &format!("/api/conversations/{conv}"), &token).await }
    };
    let list = process::get_json(&http, &server.base, "/api/conversations", &token).await;
    let conv = list["data"]["conversations"][0]["id"].as_str().expect("Hope's conversation").to_owned();
    let mut stored = false;
    while started.elapsed() < Duration::from_secs(20) {
        if thread(conv.clone()).await["data"]["messages"][0]["media"][0]["status"] == "stored" {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored_after = started.elapsed();
    assert!(stored, "Hope's photo waited behind Grace's slow host");
    let res = http
        .post(format!("{}/api/conversations/{conv}/reply", server.base))
        .bearer_auth(&token)
        .json(&json!({"content": "Thank you!"}))
        .send()
        .await
        .expect("reply");
    assert_eq!(res.status(), 201);
    let mut sent = false;
    while started.elapsed() < Duration::from_secs(25) {
        let t = thread(conv.clone()).await;
        if t["data"]["messages"].as_array().into_iter().flatten().any(|m| {
            m["direction"] == "outbound"
                && ["sent", "delivered"].contains(&m["deliveryStatus"].as_str().unwrap_or_default())
        }) {
            sent = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("Hope's photo stored after {stored_after:?}, reply sent after {:?}", started.elapsed());
    assert!(sent, "Hope's reply waited behind Grace's downloads");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}
