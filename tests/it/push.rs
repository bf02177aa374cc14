//! Web Push notifications, end to end: a leader's browser subscribes (keys made here as a
//! browser makes them), a member texts, and the stand-in push service on loopback receives a
//! request that this test decrypts (RFC 8291 aes128gcm) and whose VAPID token it verifies with
//! the key `GET /api/push/key` gave. Who gets nothing (a leader who chose no push, another
//! church), what a 410 and a 500 do, and how a burst is coalesced.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures::stream::{self, StreamExt};
use p256::ecdsa::signature::Verifier;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde_json::{json, Value};

use crate::support::{received_event, wait_for, Backend, Options, Store, TestApp};

const GRACE: &str = "+15551230000";
const HOPE: &str = "+15551239999";
const MEMBER: &str = "+13125550101";

/// One request the stand-in push service received.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A push service on 127.0.0.1: records every POST and answers 201, or the statuses queued for
/// a path.
#[derive(Clone, Default)]
struct PushService {
    received: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<HashMap<String, VecDeque<u16>>>>,
    origin: String,
}

impl PushService {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let service = Self { origin: format!("http://{addr}"), ..Self::default() };
        let router =
            axum::Router::new().route("/push/{id}", axum::routing::post(Self::receive)).with_state(service.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        service
    }

    async fn receive(State(s): State<Self>, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
        let path = uri.path().to_owned();
        s.received.lock().expect("lock").push(Received { path: path.clone(), headers, body: body.to_vec() });
        let status = s.answers.lock().expect("lock").get_mut(&path).and_then(VecDeque::pop_front).unwrap_or(201);
        StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED)
    }

    fn endpoint(&self, id: &str) -> String {
        format!("{}/push/{id}", self.origin)
    }

    fn answer(&self, id: &str, statuses: &[u16]) {
        self.answers.lock().expect("lock").insert(format!("/push/{id}"), statuses.iter().copied().collect());
    }

    fn to(&self, id: &str) -> Vec<Received> {
        let path = format!("/push/{id}");
        self.received.lock().expect("lock").iter().filter(|r| r.path == path).cloned().collect()
    }
}

/// A browser's push keys: its P-256 key pair and 16-byte auth secret.
struct Browser {
    secret: p256::SecretKey,
    auth: [u8; 16],
    endpoint: String,
}

impl Browser {
    fn new(endpoint: String) -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("rng");
        let secret = p256::SecretKey::from_slice(&bytes).expect("scalar");
        let mut auth = [0u8; 16];
        getrandom::fill(&mut auth).expect("rng");
        Self { secret, auth, endpoint }
    }

    /// What `PushSubscription.toJSON()` gives.
    fn subscription(&self) -> Value {
        let p256dh = URL_SAFE_NO_PAD.encode(self.secret.public_key().to_encoded_point(false).as_bytes());
        json!({ "endpoint": self.endpoint, "expirationTime": null,
                "keys": { "p256dh": p256dh, "auth": URL_SAFE_NO_PAD.encode(self.auth) } })
    }

    /// Decrypts a push as the browser does.
    fn open(&self, r: &Received) -> Value {
        assert_eq!(r.headers["content-encoding"], "aes128gcm");
        let auth = web_push_native::Auth::clone_from_slice(&self.auth);
        let plain = web_push_native::decrypt(r.body.clone(), &self.secret, &auth).expect("the browser decrypts it");
        serde_json::from_slice(&plain).expect("notification JSON")
    }
}

async fn send(app: &TestApp, token: &str, method: reqwest::Method, path: &str, body: &Value) -> reqwest::Response {
    app.http.request(method, app.url(path)).bearer_auth(token).json(body).send().await.expect("request")
}

async fn text(app: &TestApp, id: &str, content: &str) {
    let event = received_event(id, MEMBER, GRACE, content, vec![]);
    assert_eq!(app.post_webhook("/api/webhooks/telnyx/mms", &event).await.status(), 200);
}

/// Waits until no notification job is queued or running.
async fn jobs_done(app: &TestApp) {
    wait_for("notification jobs to finish", Duration::from_secs(30), || async {
        (app.count("jobs WHERE kind = 'push.notify'").await == 0).then_some(())
    })
    .await;
}

/// Checks the VAPID header against the key the API gave: ES256 over the token, `aud` the push
/// service's origin, `exp` within 24 hours.
fn check_vapid(r: &Received, key: &str, origin: &str) {
    let value = r.headers["authorization"].to_str().expect("ascii");
    let rest = value.strip_prefix("vapid t=").expect("vapid scheme");
    let (token, k) = rest.split_once(", k=").expect("t and k");
    assert_eq!(k, key, "k= is the key GET /api/push/key gave");
    let (input, signature) = token.rsplit_once('.').expect("signed");
    let (header, claims) = input.split_once('.').expect("header.claims");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json");
    assert_eq!(header["alg"], "ES256");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).expect("b64")).expect("json");
    assert_eq!(claims["aud"], origin, "aud is the push service's origin, port included");
    let exp = claims["exp"].as_i64().expect("exp");
    let now = chrono::Utc::now().timestamp();
    assert!(exp > now && exp <= now + 24 * 3600, "exp {exp} within 24 h of {now}");
    assert!(claims["sub"].as_str().is_some_and(|s| s.starts_with("mailto:") || s.starts_with("https:")));
    let public = p256::ecdsa::VerifyingKey::from_sec1_bytes(&URL_SAFE_NO_PAD.decode(key).expect("b64")).expect("key");
    let signature = p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).expect("b64")).expect("sig");
    public.verify(input.as_bytes(), &signature).expect("the token's signature verifies with the VAPID key");
    assert_eq!(r.headers["ttl"], "86400");
    assert!(r.headers.contains_key("urgency"));
}

async fn push_notifications(app: TestApp) {
    let service = PushService::start().await;
    let grace = app.church("Grace", GRACE).await;
    let hope = app.church("Hope", HOPE).await;
    let pastor = app.admin(grace, "pastor@grace.test").await;
    let quiet = app.leader(grace, "quiet@grace.test").await;
    let other = app.admin(hope, "pastor@hope.test").await;

    let key = app.get_json(&pastor, "/api/push/key").await["data"]["publicKey"].as_str().expect("key").to_owned();
    assert_eq!(URL_SAFE_NO_PAD.decode(&key).expect("base64url").len(), 65);
    let settings = app.get_json(&pastor, "/api/notifications/settings").await;
    assert_eq!(settings["data"]["push"], false, "off until chosen");
    assert_eq!(settings["data"]["pushAvailable"], true);

    // Subscriptions are checked before anything is stored.
    let browser = Browser::new(service.endpoint("pastor"));
    let good = browser.subscription();
    let mut bad_cases = vec![
        ("ftp endpoint", json!({"endpoint": "ftp://127.0.0.1/push", "keys": good["keys"]})),
        (
            "endpoint too long",
            json!({"endpoint": format!("{}?{}", browser.endpoint, "a".repeat(2100)), "keys": good["keys"]}),
        ),
        (
            "p256dh not a point",
            json!({"endpoint": browser.endpoint, "keys": {"p256dh": URL_SAFE_NO_PAD.encode([4u8; 65]), "auth": good["keys"]["auth"]}}),
        ),
        (
            "p256dh too short",
            json!({"endpoint": browser.endpoint, "keys": {"p256dh": "BAAA", "auth": good["keys"]["auth"]}}),
        ),
        (
            "auth not base64url",
            json!({"endpoint": browser.endpoint, "keys": {"p256dh": good["keys"]["p256dh"], "auth": "!!!!"}}),
        ),
        (
            "auth of 15 bytes",
            json!({"endpoint": browser.endpoint, "keys": {"p256dh": good["keys"]["p256dh"], "auth": URL_SAFE_NO_PAD.encode([1u8; 15])}}),
        ),
        ("no keys", json!({"endpoint": browser.endpoint})),
    ];
    for (what, body) in bad_cases.drain(..) {
        let res = send(&app, &pastor, reqwest::Method::POST, "/api/push/subscriptions", &body).await;
        assert_eq!(res.status(), 400, "{what}");
    }
    assert_eq!(app.count("push_subscriptions").await, 0);

    // The pastor and the quiet leader subscribe; the quiet one then turns push off. Hope's
    // admin subscribes too.
    let res = send(&app, &pastor, reqwest::Method::POST, "/api/push/subscriptions", &good).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    assert_eq!((body["data"]["push"].clone(), body["data"]["devices"].clone()), (json!(true), json!(1)));
    let quiet_browser = Browser::new(service.endpoint("quiet"));
    let res = send(&app, &quiet, reqwest::Method::POST, "/api/push/subscriptions", &quiet_browser.subscription()).await;
    assert_eq!(res.status(), 201);
    let res = send(&app, &quiet, reqwest::Method::PATCH, "/api/notifications/settings", &json!({"push": false})).await;
    assert_eq!(res.status(), 200);
    let res =
        send(&app, &quiet, reqwest::Method::PATCH, "/api/notifications/settings", &json!({"includeMessageText": true}))
            .await;
    assert_eq!(res.status(), 403, "the church's setting is the admins'");
    let hope_browser = Browser::new(service.endpoint("hope"));
    let res = send(&app, &other, reqwest::Method::POST, "/api/push/subscriptions", &hope_browser.subscription()).await;
    assert_eq!(res.status(), 201);

    // A member texts Grace: the pastor's browser hears of it, without the text.
    text(&app, "evt-1", "Please pray for my mother, she is in hospital tonight").await;
    let first = wait_for("the push", Duration::from_secs(30), || async { service.to("pastor").first().cloned() }).await;
    jobs_done(&app).await;
    let conversations = app.get_json(&pastor, "/api/conversations").await;
    let conversation = conversations["data"]["conversations"][0]["id"].as_str().expect("id").to_owned();
    let n = browser.open(&first);
    assert_eq!(
        n,
        json!({"title": "•••-•••-0101", "body": "New message from •••-•••-0101",
               "url": format!("/inbox/{conversation}"), "tag": conversation})
    );
    check_vapid(&first, &key, &service.origin);
    assert!(service.to("quiet").is_empty(), "a leader who chose no push gets nothing");
    assert!(service.to("hope").is_empty(), "another church's leaders get nothing");

    // With the church's setting on, the first 60 characters come along.
    let res = send(
        &app,
        &pastor,
        reqwest::Method::PATCH,
        "/api/notifications/settings",
        &json!({"includeMessageText": true}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let long = "Could someone call me back about the youth retreat on Saturday? We need rides.";
    text(&app, "evt-2", long).await;
    let second =
        wait_for("the second push", Duration::from_secs(30), || async { service.to("pastor").get(1).cloned() }).await;
    let n = browser.open(&second);
    let first60: String = long.chars().take(60).collect();
    assert_eq!(n["body"], format!("{first60}…"));
    assert_eq!(n["tag"], conversation.as_str());

    // A burst in one conversation: one notification per batch (the webhooks of a batch share
    // one job), never one per message.
    jobs_done(&app).await;
    let before = service.to("pastor").len();
    let batches_before = batches(&app).await;
    let events: Vec<Value> = (0..40)
        .map(|i| received_event(&format!("evt-burst-{i}"), MEMBER, GRACE, &format!("Burst {i}"), vec![]))
        .collect();
    let statuses: Vec<u16> = stream::iter(events.iter())
        .map(|e| async { app.post_webhook("/api/webhooks/telnyx/mms", e).await.status().as_u16() })
        .buffer_unordered(40)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200));
    jobs_done(&app).await;
    let pushes = service.to("pastor").len() - before;
    let batches = batches(&app).await - batches_before;
    assert!(pushes >= 1 && pushes <= batches && pushes < 40, "{pushes} pushes for 40 messages in {batches} batches");
    let last = service.to("pastor").last().cloned().expect("last");
    assert_eq!(browser.open(&last)["tag"], conversation.as_str(), "the same tag: each replaces the one before");

    // A push service that fails (500) is tried again; one that says the subscription is gone
    // (410) loses it.
    service.answer("pastor", &[500]);
    let before = service.to("pastor").len();
    text(&app, "evt-3", "Retry me").await;
    jobs_done(&app).await;
    assert_eq!(service.to("pastor").len() - before, 2, "refused once with 500, then delivered");
    service.answer("pastor", &[410]);
    text(&app, "evt-4", "Anyone there?").await;
    wait_for("the gone subscription to be removed", Duration::from_secs(30), || async {
        (app.count("push_subscriptions WHERE endpoint LIKE '%/push/pastor'").await == 0).then_some(())
    })
    .await;
    let metrics = app.http.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    for outcome in ["sent", "removed", "retry"] {
        assert!(metrics.contains(&format!("koinonia_push_total{{outcome=\"{outcome}\"}}")), "{outcome} counted");
    }

    // Unsubscribing: by endpoint, only one's own; the last one ends the choice of push.
    let res = send(
        &app,
        &other,
        reqwest::Method::DELETE,
        "/api/push/subscriptions",
        &json!({"endpoint": quiet_browser.endpoint}),
    )
    .await;
    assert_eq!(res.status(), 404, "another leader's browser is not found");
    let res = send(
        &app,
        &quiet,
        reqwest::Method::DELETE,
        "/api/push/subscriptions",
        &json!({"endpoint": quiet_browser.endpoint}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.count("push_subscriptions").await, 1, "Hope's browser is left");
}

/// How many batches the intake has written so far.
async fn batches(app: &TestApp) -> usize {
    let metrics = app.http.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    crate::group_commit::sample(&metrics, "koinonia_inbound_batch_size_count") as usize
}

crate::matrix!(web_push, databases, push_notifications);

/// At most 10 browsers per leader: the oldest goes.
async fn ten_browsers_per_leader(app: TestApp) {
    let service = PushService::start().await;
    let grace = app.church("Grace", GRACE).await;
    let pastor = app.admin(grace, "pastor@grace.test").await;
    for i in 0..12 {
        let b = Browser::new(service.endpoint(&format!("b{i}")));
        let res = send(&app, &pastor, reqwest::Method::POST, "/api/push/subscriptions", &b.subscription()).await;
        assert_eq!(res.status(), 201);
    }
    assert_eq!(app.count("push_subscriptions").await, 10);
    assert_eq!(app.count("push_subscriptions WHERE endpoint LIKE '%/push/b0' OR endpoint LIKE '%/push/b1'").await, 0);
}

crate::matrix!(web_push_bounded, databases, ten_browsers_per_leader);

/// PostgreSQL without VAPID_PRIVATE_KEY (an existing deployment): the server starts, push is
/// off and says so, and doctor warns with how to make a key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_vapid_key_push_is_off_and_everything_else_runs() {
    let options = Options::default().var("VAPID_PRIVATE_KEY", "");
    let Some(app) = TestApp::try_spawn(Backend::Postgres, Store::Local, options).await else { return };
    let grace = app.church("Grace", GRACE).await;
    let pastor = app.admin(grace, "pastor@grace.test").await;
    let res = app.get(&pastor, "/api/push/key").await;
    assert_eq!(res.status(), 404);
    assert!(res.text().await.expect("text").contains("off"));
    let browser = Browser::new("https://push.example.com/x".into());
    let res = send(&app, &pastor, reqwest::Method::POST, "/api/push/subscriptions", &browser.subscription()).await;
    assert_eq!(res.status(), 409);
    assert_eq!(app.get_json(&pastor, "/api/notifications/settings").await["data"]["pushAvailable"], false);
    text(&app, "evt-1", "Hello").await;
    assert_eq!(app.count("messages").await, 1, "inbound works as before");
    let checks = koinonia::ops::doctor::run(&app.state.config).await;
    let push = checks.iter().find(|c| c.name == "push").expect("a push check");
    assert_eq!(push.level, koinonia::ops::doctor::Level::Warn);
    assert!(push.sentence.contains("koinonia keys vapid"), "{}", push.sentence);
}
