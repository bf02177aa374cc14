//! What leaders read: login, the inbox, a thread, marking read, and tenancy.

use std::time::Duration;

use serde_json::{json, Value};

use crate::inbound_flow::{serve_fixture, settled_thread, CHURCH_NUMBER, MEMBER_NUMBER};
use crate::support::{fixture, received_event, Backend, Store, TestApp};

const MMS: &str = "/api/webhooks/telnyx/mms";

async fn text(app: &TestApp, event: &str, from: &str, to: &str, body: &str) {
    let res = app.post_webhook(MMS, &received_event(event, from, to, body, vec![])).await;
    assert_eq!(res.status(), 200);
}

async fn another_church_sees_nothing(app: TestApp) {
    let a = app.church("Grace", CHURCH_NUMBER).await;
    let b = app.church("Hope", "+15551239999").await;
    let token_a = app.leader(a, "a@grace.test").await;
    let token_b = app.leader(b, "b@hope.test").await;
    let f = fixture("photo.jpg");
    let media = serve_fixture(&app, &f).await;
    let res =
        app.post_webhook(MMS, &received_event("evt-a", MEMBER_NUMBER, CHURCH_NUMBER, "for Grace", vec![media])).await;
    assert_eq!(res.status(), 200);

    let list_a = app.get_json(&token_a, "/api/conversations").await;
    let conv = list_a["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
    let thread = settled_thread(&app, &token_a, &conv).await;
    let media_id = thread["data"]["messages"][0]["media"][0]["id"].as_str().expect("media id").to_owned();

    let list_b = app.get_json(&token_b, "/api/conversations").await;
    assert_eq!(list_b["data"]["conversations"], json!([]));
    for path in [format!("/api/conversations/{conv}"), format!("/api/media/{media_id}")] {
        let res = app.get(&token_b, &path).await;
        assert_eq!(res.status(), 404, "{path}");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["success"], false);
    }
    let res = app
        .http
        .patch(app.url(&format!("/api/conversations/{conv}/read")))
        .bearer_auth(&token_b)
        .send()
        .await
        .expect("patch");
    assert_eq!(res.status(), 404);
    let unread = app.get_json(&token_a, "/api/conversations").await;
    assert_eq!(unread["data"]["conversations"][0]["unreadCount"], 1, "B's attempt changed nothing");
    // The same member texting church B is another member of another church.
    text(&app, "evt-b", MEMBER_NUMBER, "+15551239999", "for Hope").await;
    let list_b = app.get_json(&token_b, "/api/conversations").await;
    assert_eq!(list_b["data"]["conversations"].as_array().map(Vec::len), Some(1));
    assert_eq!(list_b["data"]["conversations"][0]["lastMessagePreview"], "for Hope");
    assert_ne!(list_b["data"]["conversations"][0]["id"], conv.as_str());
}

crate::matrix!(tenancy, databases, another_church_sees_nothing);

async fn inbox_pages_and_threads(app: TestApp) {
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    // Five members, each texting once; then member 0 texts again and moves to the top.
    for i in 0..5 {
        text(&app, &format!("evt-{i}"), &format!("+1312555000{i}"), CHURCH_NUMBER, &format!("hello {i}")).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    text(&app, "evt-again", "+13125550000", CHURCH_NUMBER, "me again").await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/conversations?limit=2&cursor={c}"),
            None => "/api/conversations?limit=2".to_owned(),
        };
        let page = app.get_json(&token, &path).await;
        for c in page["data"]["conversations"].as_array().expect("list") {
            seen.push(c["lastMessagePreview"].as_str().expect("preview").to_owned());
        }
        match page["data"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["me again", "hello 4", "hello 3", "hello 2", "hello 1"]);

    // Search by name is empty (no names yet), by last digits finds one.
    let found = app.get_json(&token, "/api/conversations?q=0003").await;
    assert_eq!(found["data"]["conversations"].as_array().map(Vec::len), Some(1));
    let found = app.get_json(&token, "/api/conversations?q=%2B13125550002").await;
    assert_eq!(found["data"]["conversations"][0]["lastMessagePreview"], "hello 2");

    // A thread pages backwards, oldest first within a page.
    let top = app.get_json(&token, "/api/conversations?limit=1").await;
    let conv = top["data"]["conversations"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(top["data"]["conversations"][0]["unreadCount"], 2);
    let page = app.get_json(&token, &format!("/api/conversations/{conv}?limit=1")).await;
    assert_eq!(page["data"]["messages"][0]["content"], "me again");
    let before = page["data"]["nextCursor"].as_str().expect("older page").to_owned();
    let older = app.get_json(&token, &format!("/api/conversations/{conv}?limit=1&before={before}")).await;
    assert_eq!(older["data"]["messages"][0]["content"], "hello 0");
    assert_eq!(older["data"]["nextCursor"], Value::Null);
    let both = app.get_json(&token, &format!("/api/conversations/{conv}")).await;
    let contents: Vec<_> =
        both["data"]["messages"].as_array().expect("m").iter().map(|m| m["content"].clone()).collect();
    assert_eq!(contents, [json!("hello 0"), json!("me again")]);

    // Mark read.
    let res = app
        .http
        .patch(app.url(&format!("/api/conversations/{conv}/read")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("patch");
    assert_eq!(res.status(), 200);
    let after = app.get_json(&token, "/api/conversations?limit=1").await;
    assert_eq!(after["data"]["conversations"][0]["unreadCount"], 0);

    // Bad input answers in the envelope.
    for bad in ["/api/conversations?limit=0", "/api/conversations?cursor=zzz", "/api/conversations?limit=abc"] {
        let res = app.get(&token, bad).await;
        assert_eq!(res.status(), 400, "{bad}");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["success"], false);
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    assert_eq!(app.get(&token, "/api/conversations/not-a-uuid").await.status(), 404);
}

crate::matrix!(inbox, databases, inbox_pages_and_threads);

#[tokio::test]
async fn login_and_sessions() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    let church = app.church("Grace", CHURCH_NUMBER).await;
    koinonia::ops::cli::create_leader(
        &app.state.db,
        &app.state.passwords,
        church,
        "Pastor@Grace.test",
        "correct horse battery",
        true,
    )
    .await
    .expect("leader");
    let res = app
        .http
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": " pastor@grace.TEST ", "password": "correct horse battery"}))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().expect("cookie").to_owned();
    assert!(cookie.starts_with("koinonia_session=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["leader"]["email"], "pastor@grace.test");
    assert_eq!(body["data"]["leader"]["isAdmin"], true);
    assert_eq!(app.count("audit_log WHERE action = 'leader.login'").await, 1);

    // The cookie works as well as the bearer token.
    let session = cookie.split(';').next().expect("pair");
    let res = app.http.get(app.url("/api/conversations")).header("cookie", session).send().await.expect("get");
    assert_eq!(res.status(), 200);

    for (email, password) in [("pastor@grace.test", "wrong password!"), ("nobody@grace.test", "correct horse battery")]
    {
        let res = app
            .http
            .post(app.url("/api/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("login");
        assert_eq!(res.status(), 401);
        let body: Value = res.json().await.expect("json");
        assert_eq!(body, json!({"success": false, "error": "invalid email or password"}));
    }
    let res = app
        .http
        .post(app.url("/api/auth/login"))
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 400);
    for auth in [None, Some("Bearer nonsense"), Some("Basic abc")] {
        let mut req = app.http.get(app.url("/api/conversations"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        assert_eq!(req.send().await.expect("get").status(), 401, "{auth:?}");
    }
    let health = app.http.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn media_that_is_not_stored_yet_or_failed_answers_clearly() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    // A CDN that never answers in time keeps the file pending for a while.
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_delay(Duration::from_secs(20)))
        .mount(&app.cdn)
        .await;
    let media = vec![json!({"url": format!("{}/media/slow.jpg", app.cdn.uri()), "content_type": "image/jpeg"})];
    assert_eq!(
        app.post_webhook(MMS, &received_event("evt-slow", MEMBER_NUMBER, CHURCH_NUMBER, "", media)).await.status(),
        200
    );
    let list = app.get_json(&token, "/api/conversations").await;
    assert_eq!(list["data"]["conversations"][0]["lastMessagePreview"], "Photo");
    let conv = list["data"]["conversations"][0]["id"].as_str().expect("id").to_owned();
    let thread = app.get_json(&token, &format!("/api/conversations/{conv}")).await;
    let a = &thread["data"]["messages"][0]["media"][0];
    assert_eq!(a["status"], "pending");
    assert_eq!(a["type"], "image");
    let res = app.get(&token, a["url"].as_str().expect("url")).await;
    assert_eq!(res.status(), 409);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "not stored yet");
}
