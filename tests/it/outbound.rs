//! Replies: SMS, MMS, link form; sending exactly once through the stand-in Telnyx API; delivery
//! reports in any order; opt-outs.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::inbound_flow::{CHURCH_NUMBER, MEMBER_NUMBER};
use crate::support::{fixture, received_event, wait_for, Backend, Options, Store, TestApp};

const MMS: &str = "/api/webhooks/telnyx/mms";

/// A church, a leader, and a member who texted in: (token, conversation id).
async fn conversation(app: &TestApp, from: &str) -> (String, String) {
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    let event = received_event(&format!("evt-{from}"), from, CHURCH_NUMBER, "Hello church", vec![]);
    assert_eq!(app.post_webhook(MMS, &event).await.status(), 200);
    let list = app.get_json(&token, "/api/conversations").await;
    (token, list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned())
}

/// Telnyx taking every message: ids `{prefix}`, `{prefix}-2`, `{prefix}-3`, …
struct Accepts {
    prefix: String,
    count: std::sync::atomic::AtomicUsize,
}

impl wiremock::Respond for Accepts {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        let n = self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let id = if n == 1 { self.prefix.clone() } else { format!("{}-{n}", self.prefix) };
        ResponseTemplate::new(200).set_body_json(json!({
            "data": { "id": id, "record_type": "message", "to": [{ "phone_number": MEMBER_NUMBER, "status": "queued" }] }
        }))
    }
}

async fn telnyx_accepts(app: &TestApp, provider_id: &str) {
    Mock::given(method("POST"))
        .and(path("/v2/messages"))
        .respond_with(Accepts { prefix: provider_id.to_owned(), count: Default::default() })
        .mount(&app.telnyx)
        .await;
}

async fn sends(app: &TestApp) -> Vec<(Value, wiremock::Request)> {
    app.telnyx
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == "/v2/messages")
        .map(|r| (serde_json::from_slice(&r.body).expect("json body"), r))
        .collect()
}

async fn post_json(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.http.post(app.url(path)).bearer_auth(token).json(&body).send().await.expect("POST")
}

/// The message as the thread shows it.
async fn message(app: &TestApp, token: &str, conversation: &str, id: &str) -> Value {
    let thread = app.get_json(token, &format!("/api/conversations/{conversation}")).await;
    thread["data"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["id"] == id)
        .cloned()
        .expect("message in thread")
}

async fn wait_message(
    app: &TestApp,
    token: &str,
    conversation: &str,
    id: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(what, Duration::from_secs(20), || async {
        let m = message(app, token, conversation, id).await;
        ok(&m).then_some(m)
    })
    .await
}

pub async fn delivery_report(
    app: &TestApp,
    event_id: &str,
    event_type: &str,
    provider_id: &str,
    status: &str,
    m: Option<&str>,
    errors: Value,
) -> u16 {
    let body = json!({
        "data": {
            "event_type": event_type, "id": event_id, "occurred_at": "2026-11-27T10:00:00.000+00:00", "record_type": "event",
            "payload": {
                "id": provider_id, "record_type": "message", "direction": "outbound", "type": "SMS",
                "from": { "phone_number": CHURCH_NUMBER },
                "to": [ { "phone_number": MEMBER_NUMBER, "status": status } ],
                "errors": errors,
            }
        },
        "meta": { "attempt": 1 }
    });
    let path = match m {
        Some(id) => format!("/api/webhooks/telnyx/status?m={id}"),
        None => "/api/webhooks/telnyx/status".to_owned(),
    };
    app.post_webhook(&path, &body).await.status().as_u16()
}

pub(crate) async fn upload(
    app: &TestApp,
    token: &str,
    conversation: &str,
    name: &str,
    bytes: Vec<u8>,
    caption: Option<&str>,
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new();
    if let Some(c) = caption {
        form = form.text("content", c.to_owned());
    }
    form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()));
    app.http
        .post(app.url(&format!("/api/conversations/{conversation}/reply-with-media")))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload")
}

async fn text_reply_and_delivery_reports(app: TestApp) {
    let (token, conv) = conversation(&app, MEMBER_NUMBER).await;
    telnyx_accepts(&app, "prov-text-1").await;
    let res =
        post_json(&app, &token, &format!("/api/conversations/{conv}/reply"), json!({"content": "See you Sunday!"}))
            .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.expect("json");
    let m = &created["data"];
    assert_eq!(m["direction"], "outbound");
    assert_eq!(m["content"], "See you Sunday!");
    assert_eq!(m["deliveryStatus"], "queued");
    assert_eq!(m["media"], json!([]));
    let id = m["id"].as_str().expect("id").to_owned();

    let accepted =
        wait_message(&app, &token, &conv, &id, "provider id", |m| m["providerMessageId"] == "prov-text-1").await;
    assert_eq!(accepted["deliveryStatus"], "queued");
    let requests = sends(&app).await;
    assert_eq!(requests.len(), 1);
    let (body, req) = &requests[0];
    assert_eq!(req.headers.get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer KEY0123456789-test"));
    assert_eq!(
        body,
        &json!({
            "from": CHURCH_NUMBER,
            "to": MEMBER_NUMBER,
            "text": "See you Sunday!",
            "webhook_url": app.url(&format!("/api/webhooks/telnyx/status?m={id}")),
        }),
        "no media_urls, no type for an SMS"
    );

    // Reports arrive; a duplicate changes nothing; an older report never moves it back.
    assert_eq!(delivery_report(&app, "dr-1", "message.sent", "prov-text-1", "sent", Some(&id), json!([])).await, 200);
    assert_eq!(message(&app, &token, &conv, &id).await["deliveryStatus"], "sent");
    assert_eq!(
        delivery_report(&app, "dr-2", "message.finalized", "prov-text-1", "delivered", Some(&id), json!([])).await,
        200
    );
    assert_eq!(message(&app, &token, &conv, &id).await["deliveryStatus"], "delivered");
    assert_eq!(delivery_report(&app, "dr-1", "message.sent", "prov-text-1", "sent", Some(&id), json!([])).await, 200);
    assert_eq!(delivery_report(&app, "dr-3", "message.sent", "prov-text-1", "sending", None, json!([])).await, 200);
    assert_eq!(message(&app, &token, &conv, &id).await["deliveryStatus"], "delivered");

    // Finalized before sent: stays final. The profile-level route (no `m`) finds it by provider id.
    let res = post_json(&app, &token, &format!("/api/conversations/{conv}/reply"), json!({"content": "Second"})).await;
    let second: Value = res.json().await.expect("json");
    let second_id = second["data"]["id"].as_str().expect("id").to_owned();
    wait_message(&app, &token, &conv, &second_id, "accepted", |m| m["providerMessageId"] == "prov-text-1-2").await;
    let failure = json!([{ "code": "40008", "title": "Undeliverable", "detail": "The recipient carrier did not accept the message." }]);
    assert_eq!(
        delivery_report(&app, "dr-4", "message.finalized", "prov-text-1-2", "delivery_failed", None, failure).await,
        200
    );
    assert_eq!(
        delivery_report(&app, "dr-5", "message.sent", "prov-text-1-2", "sent", Some(&second_id), json!([])).await,
        200
    );
    let m = message(&app, &token, &conv, &second_id).await;
    assert_eq!(m["deliveryStatus"], "failed");
    assert!(m["failureReason"].as_str().is_some_and(|r| r.contains("40008")), "{m}");
    // An unknown future status is recorded, never a 500.
    assert_eq!(
        delivery_report(&app, "dr-6", "message.finalized", "prov-text-1", "teleported", Some(&id), json!([])).await,
        200
    );
    assert_eq!(message(&app, &token, &conv, &id).await["deliveryStatus"], "delivered");
    assert_eq!(sends(&app).await.len(), 2, "one request per reply");
}

async fn telnyx_app(backend: Backend) -> Option<TestApp> {
    TestApp::try_spawn(backend, Store::Local, Options::default().telnyx()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_reply_sqlite() {
    if let Some(app) = telnyx_app(Backend::Sqlite).await {
        text_reply_and_delivery_reports(app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_reply_postgres() {
    if let Some(app) = telnyx_app(Backend::Postgres).await {
        text_reply_and_delivery_reports(app).await;
    }
}

async fn media_replies_as_mms_and_as_link(app: TestApp) {
    let (token, conv) = conversation(&app, MEMBER_NUMBER).await;
    telnyx_accepts(&app, "prov-media").await;

    // Under the MMS limit: MMS with a presigned URL a stranger can fetch.
    let photo = fixture("photo.jpg");
    let res = upload(&app, &token, &conv, "Sunday photo.jpg", photo.bytes.clone(), Some("From Sunday")).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.expect("json");
    let mms_id = created["data"]["id"].as_str().expect("id").to_owned();
    assert_eq!(created["data"]["deliveryStatus"], "queued");
    assert_eq!(created["data"]["media"][0]["status"], "stored");
    assert_eq!(created["data"]["media"][0]["name"], "Sunday photo.jpg");
    assert_eq!(created["data"]["media"][0]["sha256"], photo.sha256.as_str());
    assert_eq!(created["data"]["media"][0]["width"], 64);
    wait_message(&app, &token, &conv, &mms_id, "mms accepted", |m| m["providerMessageId"] == "prov-media").await;
    let (body, _) = sends(&app).await.into_iter().next().expect("a send");
    assert_eq!(body["text"], "From Sunday");
    assert!(body.get("type").is_none());
    let urls = body["media_urls"].as_array().expect("media_urls");
    assert_eq!(urls.len(), 1);
    let stranger =
        koinonia::crypto::tls::client_builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let fetched = stranger.get(urls[0].as_str().expect("url")).send().await.expect("GET media url");
    assert_eq!(fetched.status(), 200, "directly fetchable: no redirect, no cookie");
    assert_eq!(fetched.headers()["content-type"], "image/jpeg");
    assert_eq!(fetched.bytes().await.expect("bytes").as_ref(), photo.bytes.as_slice());

    // Over the limit (the test sets MMS_MAX_ATTACHMENT_BYTES=10000): SMS with a link to the original.
    let clip = fixture("clip.mp4");
    let res = upload(&app, &token, &conv, "clip.mp4", clip.bytes.clone(), Some("The whole service")).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.expect("json");
    let link_id = created["data"]["id"].as_str().expect("id").to_owned();
    assert_eq!(created["data"]["deliveryStatus"], "link_sent");
    let m = wait_message(&app, &token, &conv, &link_id, "link accepted", |m| !m["providerMessageId"].is_null()).await;
    assert_eq!(m["deliveryStatus"], "link_sent", "until Telnyx's status arrives");
    let all = sends(&app).await;
    let (body, _) = all.last().expect("second send");
    assert!(body.get("media_urls").is_none(), "{body}");
    let text = body["text"].as_str().expect("text");
    let (caption, link) = text.split_once('\n').expect("caption and link");
    assert_eq!(caption, "The whole service");
    assert!(link.starts_with(&app.url("/m/")), "{link}");
    let res = stranger.get(link).send().await.expect("GET link");
    assert_eq!(res.status(), 302);
    let original =
        crate::support::http_get(res.headers()["location"].to_str().expect("location")).await.expect("GET original");
    assert_eq!(original.headers()["content-type"], "video/mp4");
    assert_eq!(original.bytes().await.expect("bytes").as_ref(), clip.bytes.as_slice(), "never recompressed");
    assert!(app.count("audit_log WHERE action = 'media.link_open'").await >= 1);
    assert_eq!(stranger.get(app.url("/m/AAAAAAAAAAAAAAAAAAAAAA")).send().await.expect("GET").status(), 404);
    // The two uploads and, once their jobs ran, their previews; nothing else.
    let previews = app.preview_files().await;
    assert_eq!(app.stored_files().len(), 2 + previews);
}

/// Sends one photo reply with the given `largeImage` choice (None: the default).
async fn upload_photo(
    app: &TestApp,
    token: &str,
    conversation: &str,
    bytes: Vec<u8>,
    choice: Option<&str>,
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new().text("content", "The baptism");
    if let Some(c) = choice {
        form = form.text("largeImage", c.to_owned());
    }
    form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name("baptism.jpg"));
    app.http
        .post(app.url(&format!("/api/conversations/{conversation}/reply-with-media")))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload")
}

/// A 5 MB photo: its MMS-sized preview goes by MMS (the member sees the picture at once) and
/// the text carries a link to the exact original; choosing "link" sends the link alone.
async fn large_photos_go_as_preview_and_link(app: TestApp) {
    let (token, conv) = conversation(&app, MEMBER_NUMBER).await;
    telnyx_accepts(&app, "prov-preview").await;
    let photo = crate::previews::jpeg(2600, 2000, 97);
    assert!(photo.len() > 4_500_000, "a large photo: {} bytes", photo.len());
    let limit = 614_400; // MMS_MAX_ATTACHMENT_BYTES's default

    let res = upload_photo(&app, &token, &conv, photo.clone(), None).await;
    let status = res.status();
    let created: Value = res.json().await.expect("json");
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["id"].as_str().expect("id").to_owned();
    assert_eq!(created["data"]["deliveryStatus"], "queued", "an MMS, not a bare link");
    wait_message(&app, &token, &conv, &id, "accepted", |m| m["providerMessageId"] == "prov-preview").await;
    let (body, _) = sends(&app).await.into_iter().next().expect("a send");
    let urls = body["media_urls"].as_array().expect("media_urls");
    assert_eq!(urls.len(), 1);
    let stranger =
        koinonia::crypto::tls::client_builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let preview = stranger.get(urls[0].as_str().expect("url")).send().await.expect("GET preview");
    assert_eq!(preview.status(), 200);
    assert_eq!(preview.headers()["content-type"], "image/jpeg");
    let preview = preview.bytes().await.expect("bytes");
    assert!(preview.len() <= limit, "the MMS media fits the limit: {} bytes", preview.len());
    let img = image::load_from_memory(&preview).expect("a real JPEG");
    let (w, h) = (img.width(), img.height());
    assert!((640..=1280).contains(&w), "the large preview, shrunk only as far as the limit needs: {w}×{h}");
    assert!(((w as f64 / h as f64) - 2600.0 / 2000.0).abs() < 0.01, "aspect kept: {w}×{h}");
    let text = body["text"].as_str().expect("text");
    let (caption, link) = text.split_once('\n').expect("caption and link");
    assert_eq!(caption, "The baptism");
    assert!(link.starts_with(&app.url("/m/")), "{link}");
    let res = stranger.get(link).send().await.expect("GET link");
    assert_eq!(res.status(), 302);
    let original =
        crate::support::http_get(res.headers()["location"].to_str().expect("location")).await.expect("original");
    assert_eq!(original.bytes().await.expect("bytes").as_ref(), photo.as_slice(), "the exact original bytes");

    // "Send only a link": an SMS with the link, no media.
    let res = upload_photo(&app, &token, &conv, photo.clone(), Some("link")).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.expect("json");
    assert_eq!(created["data"]["deliveryStatus"], "link_sent");
    let id = created["data"]["id"].as_str().expect("id").to_owned();
    wait_message(&app, &token, &conv, &id, "link accepted", |m| !m["providerMessageId"].is_null()).await;
    let all = sends(&app).await;
    let (body, _) = all.last().expect("second send");
    assert!(body.get("media_urls").is_none(), "{body}");
    assert!(body["text"].as_str().is_some_and(|t| t.contains("/m/")));

    // A choice that is neither is refused, and nothing of that upload is kept.
    let previews = app.preview_files().await;
    let before = app.stored_files().len() - previews;
    let res = upload_photo(&app, &token, &conv, photo, Some("thumbnail")).await;
    assert_eq!(res.status(), 400);
    let previews = app.preview_files().await;
    assert_eq!(app.stored_files().len() - previews, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_photo_preview_and_link_sqlite_s3() {
    if let Some(app) = TestApp::try_spawn(Backend::Sqlite, Store::S3, Options::default().telnyx()).await {
        large_photos_go_as_preview_and_link(app).await;
    }
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_photo_preview_and_link_postgres_local() {
    if let Some(app) = TestApp::try_spawn(Backend::Postgres, Store::Local, Options::default().telnyx()).await {
        large_photos_go_as_preview_and_link(app).await;
    }
}

async fn media_replies_everywhere(backend: Backend, store: Store) {
    let options = Options::default().telnyx().var("MMS_MAX_ATTACHMENT_BYTES", "10000");
    if let Some(app) = TestApp::try_spawn(backend, store, options).await {
        media_replies_as_mms_and_as_link(app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_reply_sqlite_local() {
    media_replies_everywhere(Backend::Sqlite, Store::Local).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_reply_sqlite_s3() {
    media_replies_everywhere(Backend::Sqlite, Store::S3).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_reply_postgres_local() {
    media_replies_everywhere(Backend::Postgres, Store::Local).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_reply_postgres_s3() {
    media_replies_everywhere(Backend::Postgres, Store::S3).await;
}

#[tokio::test]
async fn server_errors_are_retried_until_one_send_is_accepted() {
    let Some(app) = telnyx_app(Backend::Sqlite).await else { return };
    let (token, conv) = conversation(&app, MEMBER_NUMBER).await;
    Mock::given(method("POST"))
        .and(path("/v2/messages"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .mount(&app.telnyx)
        .await;
    telnyx_accepts(&app, "prov-after-500s").await;
    let res =
        post_json(&app, &token, &format!("/api/conversations/{conv}/reply"), json!({"content": "Third time lucky"}))
            .await;
    let id = res.json::<Value>().await.expect("json")["data"]["id"].as_str().expect("id").to_owned();
    wait_message(&app, &token, &conv, &id, "accepted after two 500s", |m| m["providerMessageId"] == "prov-after-500s")
        .await;
    assert_eq!(sends(&app).await.len(), 3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sends(&app).await.len(), 3, "nothing sent after the accepted one");
}

#[tokio::test]
async fn rate_limited_sends_wait_for_retry_after() {
    let Some(app) = telnyx_app(Backend::Sqlite).await else { return };
    let (token, conv) = conversation(&app, MEMBER_NUMBER).await;
    Mock::given(method("POST"))
        .and(path("/v2/messages"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"errors": [{"code": "10011", "title": "Too many requests"}]})),
        )
        .up_to_n_times(1)
        .mount(&app.telnyx)
        .await;
    telnyx_accepts(&app, "prov-after-429").await;
    let res =
        post_json(&app, &token, &format!("/api/conversations/{conv}/reply"), json!({"content": "Patience"})).await;
    let id = res.json::<Value>().await.expect("json")["data"]["id"].as_str().expect("id").to_owned();
    wait_message(&app, &token, &conv, &id, "accepted after the 429", |m| m["providerMessageId"] == "prov-after-429")
        .await;
    let requests = app.telnyx.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 2);
    assert_eq!(app.count("jobs").await, 0, "the job finished");
}

#[tokio::test]
async fn opted_out_answer_marks_the_member_and_is_not_retried() {
    let Some(app) = telnyx_app(Backend::Sqlite).await else { return };
    let (token, conv) = conversation(&app, MEMBER_NUMBER).await;
    Mock::given(method("POST"))
        .and(path("/v2/messages"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"errors": [{
            "code": "40300", "title": "Blocked due to STOP message",
            "detail": "Messages cannot be sent from '+15551230000' to '+13125550001' due to an existing block rule."}]})))
        .mount(&app.telnyx)
        .await;
    let res = post_json(&app, &token, &format!("/api/conversations/{conv}/reply"), json!({"content": "Hello?"})).await;
    let id = res.json::<Value>().await.expect("json")["data"]["id"].as_str().expect("id").to_owned();
    let m = wait_message(&app, &token, &conv, &id, "failed", |m| m["deliveryStatus"] == "failed").await;
    assert!(m["failureReason"].as_str().is_some_and(|r| r.contains("opted out")), "{m}");
    let thread = app.get_json(&token, &format!("/api/conversations/{conv}")).await;
    assert_eq!(thread["data"]["conversation"]["member"]["optedOut"], true);
    assert_eq!(sends(&app).await.len(), 1, "no retry");
    let res = post_json(&app, &token, &format!("/api/conversations/{conv}/reply"), json!({"content": "Again?"})).await;
    assert_eq!(res.status(), 409);
    assert_eq!(sends(&app).await.len(), 1);
}

#[tokio::test]
async fn stop_start_and_help_from_the_member() {
    let Some(app) = telnyx_app(Backend::Sqlite).await else { return };
    let (token, conv) = conversation(&app, MEMBER_NUMBER).await;
    telnyx_accepts(&app, "prov-kw").await;
    let text = |id: &str, body: &str| received_event(id, MEMBER_NUMBER, CHURCH_NUMBER, body, vec![]);
    assert_eq!(app.post_webhook(MMS, &text("kw-1", "We have to stop meeting so late")).await.status(), 200);
    assert_eq!(app.post_webhook(MMS, &text("kw-2", "please stop texting me")).await.status(), 200);
    assert_eq!(app.post_webhook(MMS, &text("kw-3", " Stop. ")).await.status(), 200);
    let res = post_json(&app, &token, &format!("/api/conversations/{conv}/reply"), json!({"content": "Sorry!"})).await;
    assert_eq!(res.status(), 409);
    let body: Value = res.json().await.expect("json");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("opted out")), "{body}");
    assert_eq!(app.post_webhook(MMS, &text("kw-4", "HELP")).await.status(), 200);
    assert_eq!(app.post_webhook(MMS, &text("kw-5", "start")).await.status(), 200);
    let thread = app.get_json(&token, &format!("/api/conversations/{conv}")).await;
    let messages = thread["data"]["messages"].as_array().expect("messages");
    let flags: Vec<(String, bool)> = messages
        .iter()
        .map(|m| (m["content"].as_str().unwrap_or_default().to_owned(), m["likelyOptOut"] == true))
        .collect();
    assert!(flags.contains(&("We have to stop meeting so late".into(), false)));
    assert!(flags.contains(&("please stop texting me".into(), true)));
    assert!(flags.contains(&("Stop.".into(), false)) || flags.contains(&(" Stop. ".into(), false)));
    assert!(messages.iter().any(|m| m["content"] == "HELP"), "keywords are stored like any message");
    assert_eq!(thread["data"]["conversation"]["member"]["optedOut"], false, "START opted back in");
    assert!(sends(&app).await.is_empty(), "koinonia answers no keyword itself");
    let res =
        post_json(&app, &token, &format!("/api/conversations/{conv}/reply"), json!({"content": "Welcome back"})).await;
    assert_eq!(res.status(), 201);
    // autoresponse_type alone also counts.
    let mut event = text("kw-6", "Arrêtez");
    event["data"]["payload"]["autoresponse_type"] = json!("STOP");
    assert_eq!(app.post_webhook(MMS, &event).await.status(), 200);
    let res = post_json(&app, &token, &format!("/api/conversations/{conv}/reply"), json!({"content": "?"})).await;
    assert_eq!(res.status(), 409);
}

#[tokio::test]
async fn uploads_too_large_or_of_a_forbidden_type_keep_nothing() {
    let options = Options::default().var("MAX_MEDIA_SIZE_BYTES", "100000");
    let Some(app) = TestApp::try_spawn(Backend::Sqlite, Store::Local, options).await else { return };
    let (token, conv) = conversation(&app, MEMBER_NUMBER).await;

    // Streamed (chunked, no length): stops at the limit.
    let mut big = fixture("photo.jpg").bytes;
    big.resize(300_000, 1);
    let stream =
        futures::stream::iter(big.chunks(16_384).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>());
    let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(stream)).file_name("big.jpg");
    let res = app
        .http
        .post(app.url(&format!("/api/conversations/{conv}/reply-with-media")))
        .bearer_auth(&token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body, json!({"success": false, "error": "File too large (max 0.1 MB)"}));

    // Declared length beyond the limit: refused before reading.
    let res = upload(&app, &token, &conv, "big.jpg", big.clone(), None).await;
    assert_eq!(res.status(), 413);

    // A Windows program named like a photo.
    let mut exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".to_vec();
    exe.resize(4096, 0);
    exe[0x3c] = 0x80;
    exe[0x80..0x84].copy_from_slice(b"PE\0\0");
    let res = upload(&app, &token, &conv, "photo.jpg", exe, Some("look")).await;
    assert_eq!(res.status(), 415);
    let body: Value = res.json().await.expect("json");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("is not allowed") || e.contains("not accepted")),
        "{body}"
    );
    let res = upload(&app, &token, &conv, "notes.txt", vec![], None).await;
    assert_eq!(res.status(), 415, "empty file");
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
    assert_eq!(app.count("messages WHERE direction = 'outbound'").await, 0);

    // Names are sanitised for keys but kept for display.
    let res = upload(&app, &token, &conv, "../../etc/Sunday photo.jpg", fixture("photo.jpg").bytes, None).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["data"]["media"][0]["name"], "Sunday photo.jpg");
    // The original (its previews may already sit beside it, under previews/).
    let files: Vec<_> =
        app.stored_files().into_iter().filter(|p| !p.components().any(|c| c.as_os_str() == "previews")).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let stored = files[0].file_name().and_then(|n| n.to_str()).expect("name");
    assert!(stored.ends_with("_Sunday_photo.jpg"), "{stored}");
}

#[tokio::test]
async fn a_leader_starts_a_conversation_with_a_number() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    let res = post_json(
        &app,
        &token,
        "/api/conversations",
        json!({"phone": "(312) 555-0042", "content": "Welcome to Grace!"}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    let conv = body["data"]["conversation"]["id"].as_str().expect("conversation").to_owned();
    assert_eq!(body["data"]["conversation"]["member"]["phone"], "+13125550042");
    assert_eq!(body["data"]["message"]["content"], "Welcome to Grace!");
    // Sandbox carrier: delivered to the simulator at once.
    let id = body["data"]["message"]["id"].as_str().expect("id").to_owned();
    let m = wait_message(&app, &token, &conv, &id, "delivered", |m| m["deliveryStatus"] == "delivered").await;
    assert!(m["providerMessageId"].as_str().is_some_and(|p| p.starts_with("sandbox-")));
    // The same number again reuses the conversation.
    let res = post_json(&app, &token, "/api/conversations", json!({"phone": "+13125550042", "content": "Again"})).await;
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["data"]["conversation"]["id"], conv.as_str());
    for bad in [json!({"phone": "nope", "content": "x"}), json!({"phone": "+13125550042", "content": "  "})] {
        assert_eq!(post_json(&app, &token, "/api/conversations", bad).await.status(), 400);
    }
    assert_eq!(
        post_json(&app, &token, &format!("/api/conversations/{}/reply", uuid::Uuid::now_v7()), json!({"content": "x"}))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn an_interrupted_send_is_reconciled_never_repeated() {
    let options = Options { telnyx_timeout_ms: 300, reconcile_ms: 3_000, ..Options::default().telnyx() };
    let Some(app) = TestApp::try_spawn(Backend::Sqlite, Store::Local, options).await else { return };
    let (token, conv) = conversation(&app, MEMBER_NUMBER).await;
    // Telnyx takes the request but answers too late.
    Mock::given(method("POST"))
        .and(path("/v2/messages"))
        .respond_with(
            ResponseTemplate::new(200).set_delay(Duration::from_secs(3)).set_body_json(json!({"data": {"id": "late"}})),
        )
        .mount(&app.telnyx)
        .await;
    let reply = |content: &'static str| {
        let app = &app;
        let token = token.clone();
        let conv = conv.clone();
        async move {
            let res =
                post_json(app, &token, &format!("/api/conversations/{conv}/reply"), json!({ "content": content }))
                    .await;
            res.json::<Value>().await.expect("json")["data"]["id"].as_str().expect("id").to_owned()
        }
    };
    // First: its delivery report arrives and settles it.
    let first = reply("First").await;
    wait_for("the first request", Duration::from_secs(5), || async { (sends(&app).await.len() == 1).then_some(()) })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        delivery_report(&app, "rc-1", "message.sent", "prov-late-1", "sent", Some(&first), json!([])).await,
        200
    );
    let m = message(&app, &token, &conv, &first).await;
    assert_eq!((m["deliveryStatus"].as_str(), m["providerMessageId"].as_str()), (Some("sent"), Some("prov-late-1")));
    // Second: no report ever comes; after the reconcile window it is failed, not resent.
    let second = reply("Second").await;
    let m = wait_message(&app, &token, &conv, &second, "unconfirmed", |m| m["deliveryStatus"] == "failed").await;
    assert_eq!(m["failureReason"], "not confirmed — check before resending");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sends(&app).await.len(), 2, "each reply went to Telnyx exactly once");
}

#[tokio::test]
async fn numbers_abroad_get_links_and_short_texts() {
    let Some(app) = telnyx_app(Backend::Sqlite).await else { return };
    let (token, conv) = conversation(&app, "+442079460958").await;
    telnyx_accepts(&app, "prov-uk").await;
    let res = upload(&app, &token, &conv, "photo.jpg", fixture("photo.jpg").bytes, None).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["data"]["deliveryStatus"], "link_sent", "no MMS outside the US and Canada");
    let long = "x".repeat(1600);
    let res = post_json(&app, &token, &format!("/api/conversations/{conv}/reply"), json!({ "content": long })).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.expect("json");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("10 segments")), "{body}");
    wait_for("the link send", Duration::from_secs(10), || async { (sends(&app).await.len() == 1).then_some(()) }).await;
    let (sent, _) = sends(&app).await.remove(0);
    assert!(sent.get("media_urls").is_none());
    assert!(sent["text"].as_str().is_some_and(|t| t.contains("/m/")));
}

#[tokio::test]
async fn long_texts_to_us_numbers_go_as_mms() {
    let Some(app) = telnyx_app(Backend::Sqlite).await else { return };
    let (token, conv) = conversation(&app, MEMBER_NUMBER).await;
    telnyx_accepts(&app, "prov-long").await;
    let long = "Grace and peace. ".repeat(100);
    let res = post_json(&app, &token, &format!("/api/conversations/{conv}/reply"), json!({ "content": long })).await;
    assert_eq!(res.status(), 201);
    wait_for("the send", Duration::from_secs(10), || async { (sends(&app).await.len() == 1).then_some(()) }).await;
    let (sent, _) = sends(&app).await.remove(0);
    assert_eq!(sent["type"], "MMS");
    assert!(sent.get("media_urls").is_none());
}

#[tokio::test]
async fn an_unreachable_number_warns_before_the_next_reply() {
    let Some(app) = telnyx_app(Backend::Sqlite).await else { return };
    let (token, conv) = conversation(&app, MEMBER_NUMBER).await;
    Mock::given(method("POST"))
        .and(path("/v2/messages"))
        .respond_with(
            ResponseTemplate::new(422)
                .set_body_json(json!({"errors": [{"code": "40310", "title": "Invalid 'to' address"}]})),
        )
        .up_to_n_times(1)
        .mount(&app.telnyx)
        .await;
    telnyx_accepts(&app, "prov-forced").await;
    let res = post_json(&app, &token, &format!("/api/conversations/{conv}/reply"), json!({"content": "Hi"})).await;
    let id = res.json::<Value>().await.expect("json")["data"]["id"].as_str().expect("id").to_owned();
    wait_message(&app, &token, &conv, &id, "failed", |m| m["deliveryStatus"] == "failed").await;
    let thread = app.get_json(&token, &format!("/api/conversations/{conv}")).await;
    assert_eq!(thread["data"]["conversation"]["member"]["unreachable"], true);
    let res =
        post_json(&app, &token, &format!("/api/conversations/{conv}/reply"), json!({"content": "Hi again"})).await;
    assert_eq!(res.status(), 409);
    let body: Value = res.json().await.expect("json");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("could not receive")), "{body}");
    assert_eq!(sends(&app).await.len(), 1, "no second failing send");
    let res = post_json(
        &app,
        &token,
        &format!("/api/conversations/{conv}/reply"),
        json!({"content": "Hi again", "force": true}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.expect("json")["data"]["id"].as_str().expect("id").to_owned();
    wait_message(&app, &token, &conv, &id, "accepted", |m| m["providerMessageId"] == "prov-forced").await;
    let thread = app.get_json(&token, &format!("/api/conversations/{conv}")).await;
    assert_eq!(thread["data"]["conversation"]["member"]["unreachable"], false, "a send that got through clears it");
}

#[tokio::test]
async fn a_burst_of_replies_is_paced_per_number() {
    let options = Options::default().telnyx().var("SEND_RATE_PER_NUMBER", "4").var("SEND_RATE_ACCOUNT", "100");
    let Some(app) = TestApp::try_spawn(Backend::Sqlite, Store::Local, options).await else { return };
    let (token, conv) = conversation(&app, MEMBER_NUMBER).await;
    telnyx_accepts(&app, "prov-paced").await;
    let started = std::time::Instant::now();
    for i in 0..12 {
        let res = post_json(
            &app,
            &token,
            &format!("/api/conversations/{conv}/reply"),
            json!({ "content": format!("Notice {i}") }),
        )
        .await;
        assert_eq!(res.status(), 201);
    }
    wait_for("all twelve sends", Duration::from_secs(20), || async { (sends(&app).await.len() == 12).then_some(()) })
        .await;
    // 4 a second with a burst of 4: the last of 12 cannot leave before about two seconds.
    assert!(started.elapsed() >= Duration::from_millis(1900), "paced, not fired at once: {:?}", started.elapsed());
    assert_eq!(app.count("jobs").await, 0);
}
