//! The dashboard over HTTP: first run, sessions, CSRF, security headers, live updates. (Its
//! behaviour in a real browser is tested by `e2e/`.)

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};

use crate::inbound_flow::{CHURCH_NUMBER, MEMBER_NUMBER};
use crate::support::{received_event, Backend, Options, Store, TestApp};

fn form(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> reqwest::RequestBuilder {
    app.http.post(app.url(path)).form(fields)
}

fn session_cookie(res: &reqwest::Response) -> String {
    res.headers()["set-cookie"].to_str().expect("cookie").split(';').next().expect("pair").to_owned()
}

const SETUP: &[(&str, &str)] = &[
    ("church_name", "Grace Church"),
    ("church_number", "+1 555 123 0000"),
    ("email", "Pastor@Grace.test"),
    ("password", "correct horse battery"),
    ("password_confirm", "correct horse battery"),
];

#[tokio::test]
async fn first_run_setup_exists_only_until_a_church_does() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    let res = app.http.get(app.url("/")).send().await.expect("GET /");
    assert_eq!(res.headers()["location"], "/setup");
    let page = app.http.get(app.url("/setup")).send().await.expect("setup page");
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"].to_str().expect("csp").contains("default-src 'self'"));
    let html = page.text().await.expect("html");
    assert!(html.contains("name=\"church_name\"") && !html.contains("name=\"code\""), "no code on loopback");

    let mismatch: Vec<(&str, &str)> =
        SETUP.iter().map(|&(k, v)| if k == "password_confirm" { (k, "something else!") } else { (k, v) }).collect();
    let res = form(&app, "/setup", &mismatch).send().await.expect("setup");
    assert_eq!(res.status(), 400);
    assert!(res.text().await.expect("html").contains("The two passwords differ"));

    let res = form(&app, "/setup", SETUP).send().await.expect("setup");
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/inbox");
    let cookie = session_cookie(&res);
    let inbox = app.http.get(app.url("/inbox")).header("cookie", &cookie).send().await.expect("inbox");
    assert_eq!(inbox.status(), 200);
    let html = inbox.text().await.expect("html");
    assert!(html.contains("Grace Church") && html.contains("pastor@grace.test"));
    assert!(html.contains("No conversations yet"));
    assert_eq!(app.count("leaders WHERE is_admin").await, 1);

    // Gone once a church exists.
    let res = app.http.get(app.url("/setup")).send().await.expect("setup again");
    assert_eq!(res.headers()["location"], "/login");
    let res = form(&app, "/setup", SETUP).send().await.expect("setup again");
    assert_eq!(res.status(), 303);
    assert_eq!(app.count("churches").await, 1);
}

#[tokio::test]
async fn off_loopback_setup_asks_for_the_one_time_code() {
    let options = Options::default().var("HOST", "0.0.0.0");
    let Some(app) = TestApp::try_spawn(Backend::Sqlite, Store::Local, options).await else { return };
    let code = app.state.setup_code.clone().expect("a code when not on loopback");
    let html = app.http.get(app.url("/setup")).send().await.expect("setup").text().await.expect("html");
    assert!(html.contains("name=\"code\""));
    let mut fields = SETUP.to_vec();
    fields.push(("code", "WRONG123"));
    let res = form(&app, "/setup", &fields).send().await.expect("setup");
    assert_eq!(res.status(), 400);
    assert_eq!(app.count("churches").await, 0);
    fields.pop();
    fields.push(("code", &code));
    let res = form(&app, "/setup", &fields).send().await.expect("setup");
    assert_eq!(res.status(), 303);
    assert_eq!(app.count("churches").await, 1);
}

#[tokio::test]
async fn login_pages_sessions_and_csrf() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    assert_eq!(form(&app, "/setup", SETUP).send().await.expect("setup").status(), 303);
    let res = app.http.get(app.url("/inbox")).send().await.expect("inbox");
    assert_eq!(res.headers()["location"], "/login", "no session: to the login page");

    let res = form(&app, "/login", &[("email", "pastor@grace.test"), ("password", "wrong password")])
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 401);
    assert!(res.text().await.expect("html").contains("Invalid email or password."));
    let res = form(&app, "/login", &[("email", "pastor@grace.test"), ("password", "correct horse battery")])
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 303);
    let cookie = session_cookie(&res);

    // A member texts; the leader opens the thread (which marks it read).
    assert_eq!(
        app.post_webhook(
            "/api/webhooks/telnyx/mms",
            &received_event("e1", MEMBER_NUMBER, "+15551230000", "Hi", vec![])
        )
        .await
        .status(),
        200
    );
    let html = app
        .http
        .get(app.url("/inbox"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("inbox")
        .text()
        .await
        .expect("html");
    let conv =
        html.split("href=\"/inbox/").nth(1).and_then(|s| s.split('"').next()).expect("a conversation link").to_owned();
    let page = app.http.get(app.url(&format!("/inbox/{conv}"))).header("cookie", &cookie).send().await.expect("thread");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains(MEMBER_NUMBER), "full number in the thread header");
    let csrf =
        html.split("name=\"csrf-token\" content=\"").nth(1).and_then(|s| s.split('"').next()).expect("csrf").to_owned();
    assert_eq!(app.count("conversations WHERE unread_count = 0").await, 1, "opening marks it read");

    // A state change with the cookie needs the page's CSRF token; a bearer token does not.
    let path = format!("/api/conversations/{conv}/reply");
    let res = app
        .http
        .post(app.url(&path))
        .header("cookie", &cookie)
        .json(&json!({"content": "x"}))
        .send()
        .await
        .expect("reply");
    assert_eq!(res.status(), 403);
    let res = app
        .http
        .post(app.url(&path))
        .header("cookie", &cookie)
        .header("x-csrf-token", "0".repeat(64))
        .json(&json!({"content": "x"}))
        .send()
        .await
        .expect("reply");
    assert_eq!(res.status(), 403);
    let res = app
        .http
        .post(app.url(&path))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"content": "Welcome!"}))
        .send()
        .await
        .expect("reply");
    assert_eq!(res.status(), 201);
    let token = app.login("pastor@grace.test", "correct horse battery").await;
    let res =
        app.http.post(app.url(&path)).bearer_auth(&token).json(&json!({"content": "API"})).send().await.expect("reply");
    assert_eq!(res.status(), 201);

    // Fragments and pages are scoped like the API.
    let other = app
        .http
        .get(app.url(&format!("/inbox/{}", uuid::Uuid::now_v7())))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page");
    assert_eq!(other.status(), 404);
    let fragment = app.http.get(app.url("/inbox/fragments/list")).header("cookie", &cookie).send().await.expect("list");
    assert!(fragment.text().await.expect("html").contains("You: API"), "the preview of the last reply");

    // Sign out: needs the token too, then the cookie is cleared.
    let res = app
        .http
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", "nope")])
        .send()
        .await
        .expect("logout");
    assert_eq!(res.status(), 403);
    let res = app
        .http
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("logout");
    assert_eq!(res.status(), 303);
    assert!(res.headers()["set-cookie"].to_str().expect("cookie").contains("Max-Age=0"));
}

#[tokio::test]
async fn the_phone_simulator_exists_only_with_the_sandbox_carrier() {
    let Some(app) = TestApp::try_spawn(Backend::Sqlite, Store::Local, Options::default().telnyx()).await else {
        return;
    };
    app.church("Grace", CHURCH_NUMBER).await;
    assert_eq!(app.http.get(app.url("/sandbox")).send().await.expect("sandbox").status(), 404);
    let send =
        reqwest::multipart::Form::new().text("phone", MEMBER_NUMBER).text("church", CHURCH_NUMBER).text("text", "hi");
    assert_eq!(app.http.post(app.url("/sandbox/send")).multipart(send).send().await.expect("send").status(), 404);
    assert_eq!(app.count("messages").await, 0);
}

#[tokio::test]
async fn the_simulator_sends_through_the_inbound_pipeline() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::S3).await else { return };
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    let photo = crate::support::fixture("photo.jpg");
    let form = reqwest::multipart::Form::new()
        .text("phone", MEMBER_NUMBER)
        .text("church", CHURCH_NUMBER)
        .text("text", "From my phone")
        .part(
            "files",
            reqwest::multipart::Part::bytes(photo.bytes.clone())
                .file_name("IMG_0001.jpg")
                .mime_str("image/jpeg")
                .expect("mime"),
        );
    let res = app.http.post(app.url("/sandbox/send")).multipart(form).send().await.expect("send");
    assert_eq!(res.status(), 201);
    let list = app.get_json(&token, "/api/conversations").await;
    let conv = list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
    let thread = crate::inbound_flow::settled_thread(&app, &token, &conv).await;
    let a = &thread["data"]["messages"][0]["media"][0];
    assert_eq!(a["status"], "stored");
    assert_eq!(a["name"], "IMG_0001.jpg");
    assert_eq!(a["sha256"], photo.sha256.as_str());
    let previews = app.preview_files().await;
    assert_eq!(app.stored_files().len(), 1 + previews, "the staged copy is gone once stored");
    // The church replies; the simulated phone sees it.
    let res = app
        .http
        .post(app.url(&format!("/api/conversations/{conv}/reply")))
        .bearer_auth(&token)
        .json(&json!({"content": "Thanks for sharing!"}))
        .send()
        .await
        .expect("reply");
    assert_eq!(res.status(), 201);
    let html = app
        .http
        .get(app.url(&format!("/sandbox/thread?phone={}&church={}", "%2B13125550001", "%2B15551230000")))
        .send()
        .await
        .expect("thread")
        .text()
        .await
        .expect("html");
    assert!(html.contains("Thanks for sharing!") && html.contains("From my phone"), "{html}");
}

/// Reads an SSE stream until an event names `conversation`.
async fn wait_for_event(res: reqwest::Response, conversation: &str) -> Value {
    let mut stream = res.bytes_stream();
    let mut buf = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("an event in time")
            .expect("stream open")
            .expect("bytes");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        for block in buf.split("\n\n") {
            if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) {
                if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                    if v["conversationId"] == conversation {
                        return v;
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn leaders_get_live_events_for_their_church_only() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    let a = app.church("Grace", CHURCH_NUMBER).await;
    let b = app.church("Hope", "+15551239999").await;
    let token_a = app.leader(a, "a@grace.test").await;
    let token_b = app.leader(b, "b@hope.test").await;
    let events_a = app.http.get(app.url("/events")).bearer_auth(&token_a).send().await.expect("events");
    assert_eq!(events_a.headers()["content-type"], "text/event-stream");
    let mut events_b =
        app.http.get(app.url("/events")).bearer_auth(&token_b).send().await.expect("events").bytes_stream();
    app.post_webhook(
        "/api/webhooks/telnyx/mms",
        &received_event("live-1", MEMBER_NUMBER, CHURCH_NUMBER, "Live!", vec![]),
    )
    .await;
    let list = app.get_json(&token_a, "/api/conversations").await;
    let conv = list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
    let event = wait_for_event(events_a, &conv).await;
    assert_eq!(event["type"], "message");
    // Church B heard nothing (only keep-alives, if anything, within a short while).
    let quiet = tokio::time::timeout(Duration::from_millis(500), events_b.next()).await;
    if let Ok(Some(Ok(bytes))) = quiet {
        assert!(!String::from_utf8_lossy(&bytes).contains(&conv), "church B must not see church A's events");
    }
    assert_eq!(app.http.get(app.url("/events")).send().await.expect("events").status(), 401);
}

#[tokio::test]
async fn live_events_cross_instances_through_postgres() {
    let Some(first) = TestApp::spawn(Backend::Postgres, Store::Local).await else { return };
    let options = Options { database_url: first.database_url.clone(), ..Default::default() };
    let Some(second) = TestApp::try_spawn(Backend::Postgres, Store::Local, options).await else { return };
    let church = first.church("Grace", CHURCH_NUMBER).await;
    let token = second.leader(church, "pastor@grace.test").await;
    let events = second.http.get(second.url("/events")).bearer_auth(&token).send().await.expect("events");
    tokio::time::sleep(Duration::from_millis(300)).await; // the listener of the second instance is up
                                                          // The webhook lands on the first instance; the leader is connected to the second.
    let res = first
        .post_webhook(
            "/api/webhooks/telnyx/mms",
            &received_event("x-1", MEMBER_NUMBER, CHURCH_NUMBER, "Across", vec![]),
        )
        .await;
    assert_eq!(res.status(), 200);
    let list = second.get_json(&token, "/api/conversations").await;
    let conv = list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
    let event = wait_for_event(events, &conv).await;
    assert_eq!(event["type"], "message");
}

#[tokio::test]
async fn the_system_page_shows_the_self_check_to_admins_only() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    let res = form(&app, "/setup", SETUP).send().await.expect("setup");
    let admin_cookie = session_cookie(&res);
    let page = app.http.get(app.url("/system")).header("cookie", &admin_cookie).send().await.expect("system");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("media store") && html.contains("level-ok"), "{html}");
    let inbox = app
        .http
        .get(app.url("/inbox"))
        .header("cookie", &admin_cookie)
        .send()
        .await
        .expect("inbox")
        .text()
        .await
        .expect("html");
    assert!(inbox.contains("href=\"/system\""), "admins see the link");

    let church = app.state.db.clone();
    let mut pooled = church.acquire().await.expect("conn");
    let church_id = koinonia::db::churches::all(&mut pooled.conn()).await.expect("churches")[0].id;
    drop(pooled);
    koinonia::ops::cli::create_leader(
        &app.state.db,
        &app.state.passwords,
        church_id,
        "helper@grace.test",
        "correct horse battery",
        false,
    )
    .await
    .expect("leader");
    let res = form(&app, "/login", &[("email", "helper@grace.test"), ("password", "correct horse battery")])
        .send()
        .await
        .expect("login");
    let helper_cookie = session_cookie(&res);
    let page = app.http.get(app.url("/system")).header("cookie", &helper_cookie).send().await.expect("system");
    assert_eq!(page.status(), 404);
}

/// "Add to Home Screen": the manifest names the inbox as the start page, full-screen, with icons
/// that exist at the sizes it declares; the service worker is served from the root, uncached.
#[tokio::test]
async fn the_dashboard_is_installable() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    let res = app.http.get(app.url("/manifest.webmanifest")).send().await.expect("manifest");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/manifest+json");
    let manifest: Value = res.json().await.expect("manifest is JSON");
    assert_eq!((manifest["start_url"].as_str(), manifest["display"].as_str()), (Some("/inbox"), Some("standalone")));
    assert!(manifest["name"].is_string() && manifest["short_name"].is_string() && manifest["theme_color"].is_string());
    let icons = manifest["icons"].as_array().expect("icons");
    let mut sizes = Vec::new();
    for icon in icons.iter().filter(|i| i["type"] == "image/png") {
        let res = app.http.get(app.url(icon["src"].as_str().expect("src"))).send().await.expect("icon");
        assert_eq!((res.status().as_u16(), res.headers()["content-type"].to_str().ok()), (200, Some("image/png")));
        let png = res.bytes().await.expect("png");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{icon}");
        let (w, h) = (
            u32::from_be_bytes(png[16..20].try_into().expect("w")),
            u32::from_be_bytes(png[20..24].try_into().expect("h")),
        );
        assert_eq!(icon["sizes"].as_str(), Some(format!("{w}x{h}").as_str()), "the declared size is the real one");
        sizes.push((w, icon["purpose"].as_str().unwrap_or("any").to_owned()));
    }
    for needed in [(192, "any"), (512, "any"), (512, "maskable")] {
        assert!(sizes.iter().any(|(w, p)| *w == needed.0 && p == needed.1), "{needed:?} in {sizes:?}");
    }
    let sw = app.http.get(app.url("/sw.js")).send().await.expect("sw");
    assert_eq!(sw.status(), 200);
    assert!(sw.headers()["content-type"].to_str().expect("type").starts_with("text/javascript"));
    assert_eq!(sw.headers()["cache-control"], "no-cache");
    let html = app.http.get(app.url("/setup")).send().await.expect("setup").text().await.expect("html");
    assert!(html.contains(r#"<link rel="manifest" href="/manifest.webmanifest">"#));
    assert!(html.contains(r#"<script src="/static/pwa.js" defer></script>"#));
}
