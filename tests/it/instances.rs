//! Two `koinonia serve` processes on one PostgreSQL database and one S3 bucket, one of them
//! killed with SIGKILL while webhooks, downloads and sends are in flight (docs/flows.md "Guarantees under
//! failure").

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::process::{self, Server};
use crate::support::{fixture, fresh_postgres_database, received_event, s3, test_database_url};

const CHURCH: &str = "+15551230000";

/// Telnyx taking a message, a little slowly, with a fresh id each time.
struct FreshIds;

impl wiremock::Respond for FreshIds {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        ResponseTemplate::new(200)
            .set_body_json(json!({"data": {"id": uuid::Uuid::new_v4().to_string(), "to": [{"status": "queued"}]}}))
            .set_delay(Duration::from_millis(80))
    }
}

fn koinonia(env: &HashMap<String, String>, dir: &std::path::Path) -> Command {
    process::koinonia(dir, env)
}

async fn start(env: &HashMap<String, String>, dir: &std::path::Path) -> Server {
    process::serve(dir, env).await
}

fn sign(key: &SigningKey, body: &[u8]) -> (String, String) {
    process::WebhookKey(key.clone()).sign(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_one_killed_lose_nothing_and_repeat_nothing() {
    let Some(admin) = test_database_url() else { return };
    let database_url = fresh_postgres_database(&admin).await;
    let s3 = s3::S3Server::start().await;
    let cdn = MockServer::start().await;
    let photo = fixture("photo.jpg");
    Mock::given(method("GET"))
        .and(path("/media/photo.jpg"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(photo.bytes.clone())
                .insert_header("content-type", "image/jpeg")
                .set_delay(Duration::from_millis(150)),
        )
        .mount(&cdn)
        .await;
    let telnyx = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v2/messages")).respond_with(FreshIds).mount(&telnyx).await;
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = HashMap::new();
    for (k, v) in [
        ("DATABASE_URL", database_url.clone()),
        ("PHONE_HASH_KEY", koinonia::secrets::generate(32).expect("rng")),
        ("PHONE_ENCRYPTION_KEY", koinonia::secrets::generate(32).expect("rng")),
        ("JWT_SECRET", koinonia::secrets::generate(48).expect("rng")),
        ("AWS_S3_BUCKET", s3::BUCKET.to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", s3::SECRET_KEY.to_owned()),
        ("AWS_ENDPOINT_URL", s3.endpoint.clone()),
        ("TELNYX_API_KEY", "KEY-instances-test".to_owned()),
        ("TELNYX_PUBLIC_KEY", base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes())),
        ("TELNYX_API_BASE_URL", format!("{}/v2", telnyx.uri())),
        ("MEDIA_FETCH_ALLOW_PRIVATE", "true".to_owned()),
        ("JOB_LEASE_SECONDS", "3".to_owned()),
        ("SEND_RECONCILE_SECONDS", "4".to_owned()),
        ("SEND_RATE_PER_NUMBER", "1000".to_owned()),
        ("SEND_RATE_ACCOUNT", "1000".to_owned()),
        ("KOINONIA_DATA_DIR", dir.path().join("data").display().to_string()),
        ("RUST_LOG", "error".to_owned()),
    ] {
        env.insert(k.to_owned(), v);
    }
    process::church_and_leader(dir.path(), &env);

    let a = Arc::new(tokio::sync::Mutex::new(Some(start(&env, dir.path()).await)));
    let a_base = a.lock().await.as_ref().map(|i| i.base.clone()).expect("a");
    let b = start(&env, dir.path()).await;
    let http = koinonia::crypto::tls::client_builder().timeout(Duration::from_secs(20)).build().expect("client");
    let token = process::login(&b.base).await;

    // 500 webhooks from 50 members, alternating instances; every tenth carries a photo. After
    // 200 are acknowledged, A is killed; what failed on A is sent again to B (Telnyx failover).
    let acked = Arc::new(AtomicUsize::new(0));
    let a_dead = Arc::new(AtomicBool::new(false));
    let killer = {
        let (acked, a, a_dead, http, token, a_base) =
            (acked.clone(), a.clone(), a_dead.clone(), http.clone(), token.clone(), a_base.clone());
        tokio::spawn(async move {
            while acked.load(Ordering::SeqCst) < 200 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Replies queued on A just before it dies: some are being sent when it is killed.
            for n in 0..20 {
                let res = http
                    .post(format!("{a_base}/api/conversations"))
                    .bearer_auth(&token)
                    .json(&json!({"phone": format!("+1773555{:04}", 2000 + n), "content": format!("welcome {n}")}))
                    .send()
                    .await
                    .expect("start a conversation on A");
                assert_eq!(res.status(), 201);
            }
            if let Some(mut instance) = a.lock().await.take() {
                let _ = instance.child.kill(); // SIGKILL
                let _ = instance.child.wait();
            }
            a_dead.store(true, Ordering::SeqCst);
        })
    };
    let sends = futures::stream::iter(0..500usize).map(|i| {
        let (http, key, acked, a_dead) = (http.clone(), key.clone(), acked.clone(), a_dead.clone());
        let (a_base, b_base, cdn) = (a_base.clone(), b.base.clone(), cdn.uri());
        async move {
            let media = if i % 10 == 0 {
                vec![json!({"url": format!("{cdn}/media/photo.jpg"), "content_type": "image/jpeg"})]
            } else {
                vec![]
            };
            let event = received_event(
                &format!("evt-{i}"),
                &format!("+1312555{:04}", 1000 + i % 50),
                CHURCH,
                &format!("message {i}"),
                media,
            );
            let body = serde_json::to_vec(&event).expect("json");
            let mut target = if i % 2 == 0 && !a_dead.load(Ordering::SeqCst) { a_base.clone() } else { b_base.clone() };
            for _ in 0..5 {
                let (ts, sig) = sign(&key, &body);
                let res = http
                    .post(format!("{target}/api/webhooks/telnyx/mms"))
                    .header("telnyx-timestamp", ts)
                    .header("telnyx-signature-ed25519", sig)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                if res.is_ok_and(|r| r.status() == 200) {
                    acked.fetch_add(1, Ordering::SeqCst);
                    return true;
                }
                target = b_base.clone(); // failover
            }
            false
        }
    });
    let results: Vec<bool> = sends.buffer_unordered(8).collect().await;
    assert!(results.iter().all(|ok| *ok), "every webhook was acknowledged by one instance or the other");
    killer.await.expect("killer");
    assert!(a_dead.load(Ordering::SeqCst));

    // Replies, queued on the survivor after the kill, plus the ones A had claimed.
    let list: Value = http
        .get(format!("{}/api/conversations?limit=20", b.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let conversations: Vec<String> = list["data"]["conversations"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_owned())
        .collect();
    for (n, conv) in conversations.iter().enumerate() {
        let res = http
            .post(format!("{}/api/conversations/{conv}/reply", b.base))
            .bearer_auth(&token)
            .json(&json!({"content": format!("reply {n}")}))
            .send()
            .await
            .expect("reply");
        assert_eq!(res.status(), 201);
    }

    // Wait until the queue is empty: jobs A held expire and B takes them over.
    let pool = sqlx::PgPool::connect(&database_url).await.expect("pg");
    let mut idle = false;
    for _ in 0..300 {
        let busy: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')")
            .fetch_one(&pool)
            .await
            .expect("count");
        if busy == 0 {
            idle = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(idle, "the survivor drained the queue");

    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.expect(sql) }
    };
    assert_eq!(count("SELECT COUNT(*) FROM webhook_events").await, 500);
    assert_eq!(
        count("SELECT COUNT(*) FROM messages WHERE direction = 'inbound'").await,
        500,
        "each message exactly once"
    );
    assert_eq!(count("SELECT COUNT(DISTINCT content) FROM messages WHERE direction = 'inbound'").await, 500);
    assert_eq!(count("SELECT COUNT(*) FROM members").await, 70);
    assert_eq!(count("SELECT COUNT(*) FROM attachments").await, 50);
    assert_eq!(count("SELECT COUNT(*) FROM attachments WHERE status = 'stored'").await, 50, "every file stored");
    // Each file once in the bucket, with its two previews once the preview jobs are done.
    for _ in 0..300 {
        if count("SELECT COUNT(*) FROM jobs WHERE kind = 'media.preview'").await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let previews = count("SELECT COUNT(*) FROM attachments WHERE preview_small_key IS NOT NULL").await;
    assert_eq!(s3.object_files().len() as i64, 50 + 2 * previews, "each file stored once in the bucket");

    // Replies: each handed to Telnyx at most once; each either accepted or visibly not confirmed.
    let requests = telnyx.received_requests().await.unwrap_or_default();
    let mut per_message: HashMap<String, usize> = HashMap::new();
    for r in &requests {
        let body: Value = serde_json::from_slice(&r.body).expect("json");
        let m = body["webhook_url"].as_str().and_then(|u| u.rsplit_once("m=")).map(|(_, m)| m.to_owned()).expect("m");
        *per_message.entry(m).or_default() += 1;
    }
    assert!(per_message.values().all(|n| *n == 1), "no reply sent twice: {per_message:?}");
    let outbound: Vec<(uuid::Uuid, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT id, send_state, failure_reason FROM messages WHERE direction = 'outbound'")
            .fetch_all(&pool)
            .await
            .expect("outbound");
    assert_eq!(outbound.len(), conversations.len() + 20);
    let unconfirmed = outbound.iter().filter(|o| o.1.as_deref() == Some("failed")).count();
    eprintln!(
        "{} replies: {} accepted, {unconfirmed} not confirmed (in flight on the killed instance)",
        outbound.len(),
        outbound.len() - unconfirmed
    );
    for (id, state, reason) in &outbound {
        match state.as_deref() {
            Some("accepted") => assert_eq!(per_message.get(&id.to_string()), Some(&1), "{id} accepted, sent once"),
            Some("failed") => assert_eq!(reason.as_deref(), Some("not confirmed — check before resending"), "{id}"),
            other => panic!("{id} left in {other:?}"),
        }
    }
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_downloads_finish() {
    let cdn = MockServer::start().await;
    let photo = fixture("photo.jpg");
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(photo.bytes.clone())
                .insert_header("content-type", "image/jpeg")
                .set_delay(Duration::from_millis(1500)),
        )
        .mount(&cdn)
        .await;
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = HashMap::new();
    env.insert(
        "TELNYX_PUBLIC_KEY".to_owned(),
        base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes()),
    );
    env.insert("MEDIA_FETCH_ALLOW_PRIVATE".to_owned(), "true".to_owned());
    env.insert("RUST_LOG".to_owned(), "error".to_owned());
    process::church_and_leader(dir.path(), &env);
    let mut instance = start(&env, dir.path()).await;
    let media = vec![json!({"url": format!("{}/media/slow.jpg", cdn.uri()), "content_type": "image/jpeg"})];
    let body =
        serde_json::to_vec(&received_event("evt-term", "+13125550001", CHURCH, "slow photo", media)).expect("json");
    let (ts, sig) = sign(&key, &body);
    let res = koinonia::crypto::tls::client_builder()
        .build()
        .expect("client")
        .post(format!("{}/api/webhooks/telnyx/mms", instance.base))
        .header("telnyx-timestamp", ts)
        .header("telnyx-signature-ed25519", sig)
        .body(body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(res.status(), 200);
    // The download has started when the CDN saw the request.
    for _ in 0..100 {
        if !cdn.received_requests().await.unwrap_or_default().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = instance.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let status = tokio::task::spawn_blocking(move || {
        let status = instance.child.wait();
        (status, instance)
    })
    .await
    .expect("wait");
    assert!(status.0.expect("exit").success(), "a clean exit after SIGTERM");
    let db = dir.path().join("koinonia-data/koinonia.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.expect("sqlite");
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM attachments WHERE status = 'stored'")
        .fetch_one(&pool)
        .await
        .expect("count");
    // (The preview job the download queued may wait for the next start: it is not a download.)
    let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'media.fetch'")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!((stored, jobs), (1, 0), "the running download finished before the process left");
    assert_eq!(cdn.received_requests().await.unwrap_or_default().len(), 1, "and ran once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_no_phone_numbers_or_secrets() {
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = HashMap::new();
    env.insert(
        "TELNYX_PUBLIC_KEY".to_owned(),
        base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes()),
    );
    env.insert("LOG_FORMAT".to_owned(), "json".to_owned());
    env.insert("RUST_LOG".to_owned(), "debug,sqlx=warn,hyper=warn,h2=warn,reqwest=warn".to_owned());
    process::church_and_leader(dir.path(), &env);
    let log = dir.path().join("serve.log");
    let mut cmd = koinonia(&env, dir.path());
    cmd.stdout(std::fs::File::create(&log).expect("log")).stderr(Stdio::null());
    let instance = process::serve_on(cmd, process::free_port()).await;
    let http = koinonia::crypto::tls::client_builder().build().expect("client");
    for (i, text) in ["Hello from +13125550001", "STOP"].iter().enumerate() {
        let body = serde_json::to_vec(&received_event(&format!("log-{i}"), "+13125550001", CHURCH, text, vec![]))
            .expect("json");
        let (ts, sig) = sign(&key, &body);
        let res = http
            .post(format!("{}/api/webhooks/telnyx/mms", instance.base))
            .header("telnyx-timestamp", ts)
            .header("telnyx-signature-ed25519", sig)
            .body(body)
            .send()
            .await
            .expect("webhook");
        assert_eq!(res.status(), 200);
    }
    // A forged one is logged with its reason.
    let res = http
        .post(format!("{}/api/webhooks/telnyx/mms", instance.base))
        .header("telnyx-timestamp", chrono::Utc::now().timestamp().to_string())
        .header("telnyx-signature-ed25519", "AAAA")
        .body("{}")
        .send()
        .await
        .expect("forged");
    assert_eq!(res.status(), 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(instance);
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() > 3, "{text}");
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.get("level").is_some() && v.get("timestamp").is_some(), "{line}");
    }
    assert!(text.contains("bad signature"), "refusals are logged with their reason");
    for secret in ["5550001", "13125550001", &env["TELNYX_PUBLIC_KEY"]] {
        assert!(!text.contains(secret), "{secret} appears in the logs:\n{text}");
    }
}
