//! Members' names, sessions (logout, password change) and the church's leaders.

use serde_json::{json, Value};

use crate::inbound_flow::{CHURCH_NUMBER, MEMBER_NUMBER};
use crate::support::{received_event, Backend, Store, TestApp};

async fn send(app: &TestApp, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn names_and_sessions(app: TestApp) {
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    app.post_webhook("/api/webhooks/telnyx/mms", &received_event("p-1", MEMBER_NUMBER, CHURCH_NUMBER, "Hi", vec![]))
        .await;
    let list = app.get_json(&token, "/api/conversations").await;
    let member = list["data"]["conversations"][0]["member"]["id"].as_str().expect("member").to_owned();

    let (status, body) = send(
        &app,
        &token,
        reqwest::Method::PATCH,
        &format!("/api/members/{member}"),
        Some(json!({"firstName": " Ruth ", "lastName": "Boaz"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["firstName"], "Ruth");
    assert_eq!(body["data"]["lastName"], "Boaz");
    assert_eq!(body["data"]["phone"], "•••-•••-0001");
    let found = app.get_json(&token, "/api/conversations?q=ruth").await;
    assert_eq!(found["data"]["conversations"][0]["member"]["firstName"], "Ruth", "search by name");
    let (status, _) = send(
        &app,
        &token,
        reqwest::Method::PATCH,
        &format!("/api/members/{member}"),
        Some(json!({"firstName": "x".repeat(101)})),
    )
    .await;
    assert_eq!(status, 400);
    let other = app.church("Hope", "+15551239999").await;
    let other_token = app.leader(other, "b@hope.test").await;
    let (status, _) = send(
        &app,
        &other_token,
        reqwest::Method::PATCH,
        &format!("/api/members/{member}"),
        Some(json!({"firstName": "Eve"})),
    )
    .await;
    assert_eq!(status, 404);

    // Password change: the old session ends, the new token works.
    let (status, _) = send(
        &app,
        &token,
        reqwest::Method::POST,
        "/api/auth/password",
        Some(json!({"current": "wrong one!", "new": "a much better passphrase"})),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = send(
        &app,
        &token,
        reqwest::Method::POST,
        "/api/auth/password",
        Some(json!({"current": "correct horse battery", "new": "short"})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = send(
        &app,
        &token,
        reqwest::Method::POST,
        "/api/auth/password",
        Some(json!({"current": "correct horse battery", "new": "a much better passphrase"})),
    )
    .await;
    assert_eq!(status, 200);
    let new_token = body["data"]["token"].as_str().expect("token").to_owned();
    assert_eq!(app.get(&token, "/api/conversations").await.status(), 401, "other sessions revoked");
    assert_eq!(app.get(&new_token, "/api/conversations").await.status(), 200);
    let again = app.login("pastor@grace.test", "a much better passphrase").await;

    // Logout: that token is refused from now on; the other session lives on.
    let (status, _) = send(&app, &new_token, reqwest::Method::POST, "/api/auth/logout", None).await;
    assert_eq!(status, 200);
    assert_eq!(app.get(&new_token, "/api/conversations").await.status(), 401);
    assert_eq!(app.get(&again, "/api/conversations").await.status(), 200);
    assert!(app.count("audit_log WHERE action IN ('leader.password', 'leader.logout')").await >= 2);
}

crate::matrix!(names_and_sessions_everywhere, databases, names_and_sessions);

#[tokio::test]
async fn admins_manage_their_churchs_leaders() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let admin = app.admin(church, "admin@grace.test").await;
    let member_leader = app.leader(church, "helper@grace.test").await;

    let (status, _) = send(&app, &member_leader, reqwest::Method::GET, "/api/leaders", None).await;
    assert_eq!(status, 403, "only admins");
    let (status, body) = send(&app, &admin, reqwest::Method::GET, "/api/leaders", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["leaders"].as_array().map(Vec::len), Some(2));

    let (status, body) = send(
        &app,
        &admin,
        reqwest::Method::POST,
        "/api/leaders",
        Some(json!({"email": "New@Grace.test", "password": "welcome to grace"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["email"], "new@grace.test");
    assert_eq!(body["data"]["isAdmin"], false);
    let new_id = body["data"]["id"].as_str().expect("id").to_owned();
    let (status, _) = send(
        &app,
        &admin,
        reqwest::Method::POST,
        "/api/leaders",
        Some(json!({"email": "new@grace.test", "password": "welcome to grace"})),
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = send(
        &app,
        &admin,
        reqwest::Method::POST,
        "/api/leaders",
        Some(json!({"email": "nope", "password": "welcome to grace"})),
    )
    .await;
    assert_eq!(status, 400);
    let newcomer = app.login("new@grace.test", "welcome to grace").await;
    assert_eq!(app.get(&newcomer, "/api/conversations").await.status(), 200);

    let (status, _) = send(&app, &admin, reqwest::Method::DELETE, &format!("/api/leaders/{new_id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(app.get(&newcomer, "/api/conversations").await.status(), 401, "a removed leader's session ends");
    let admin_id = send(&app, &admin, reqwest::Method::GET, "/api/leaders", None).await.1["data"]["leaders"]
        .as_array()
        .expect("leaders")
        .iter()
        .find(|l| l["isAdmin"] == true)
        .and_then(|l| l["id"].as_str())
        .expect("admin id")
        .to_owned();
    let (status, body) = send(&app, &admin, reqwest::Method::DELETE, &format!("/api/leaders/{admin_id}"), None).await;
    assert_eq!(status, 409, "{body}");
    let other = app.church("Hope", "+15551239999").await;
    let other_admin = app.admin(other, "admin@hope.test").await;
    let (status, _) =
        send(&app, &other_admin, reqwest::Method::DELETE, &format!("/api/leaders/{admin_id}"), None).await;
    assert_eq!(status, 404, "another church's leader");
}

async fn erasing_a_member(app: TestApp) {
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let admin = app.admin(church, "admin@grace.test").await;
    let helper = app.leader(church, "helper@grace.test").await;
    let mut media = Vec::new();
    for f in ["photo.jpg", "doc.pdf"] {
        media.push(crate::inbound_flow::serve_fixture(&app, &crate::support::fixture(f)).await);
    }
    app.post_webhook(
        "/api/webhooks/telnyx/mms",
        &received_event("erase-1", MEMBER_NUMBER, CHURCH_NUMBER, "Please forget me", media),
    )
    .await;
    let list = app.get_json(&admin, "/api/conversations").await;
    let conv = list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
    let member = list["data"]["conversations"][0]["member"]["id"].as_str().expect("member").to_owned();
    crate::inbound_flow::settled_thread(&app, &admin, &conv).await;
    let previews = app.preview_files().await;
    assert_eq!(app.stored_files().len(), 2 + previews);

    let (status, _) = send(&app, &helper, reqwest::Method::DELETE, &format!("/api/members/{member}"), None).await;
    assert_eq!(status, 403, "admins only");
    let other = app.church("Hope", "+15551239999").await;
    let other_admin = app.admin(other, "admin@hope.test").await;
    let (status, _) = send(&app, &other_admin, reqwest::Method::DELETE, &format!("/api/members/{member}"), None).await;
    assert_eq!(status, 404);

    let (status, body) = send(&app, &admin, reqwest::Method::DELETE, &format!("/api/members/{member}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["filesDeleted"], 2);
    assert!(app.stored_files().is_empty(), "the files left the store");
    for table in ["members", "conversations", "messages", "attachments"] {
        assert_eq!(app.count(table).await, 0, "{table}");
    }
    assert_eq!(app.get(&admin, &format!("/api/conversations/{conv}")).await.status(), 404);
    let audit = app.get_json(&admin, "/api/audit").await;
    let entry = audit["data"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["action"] == "member.erase")
        .cloned()
        .expect("audited");
    assert_eq!(entry["subjectId"], member.as_str());
    assert!(!entry.to_string().contains("5550001"), "the audit row holds no number: {entry}");
    let (status, _) = send(&app, &admin, reqwest::Method::DELETE, &format!("/api/members/{member}"), None).await;
    assert_eq!(status, 404, "gone");
}

crate::matrix!(erasure, [sqlite_s3 => (Sqlite, S3), postgres_local => (Postgres, Local)], erasing_a_member);

async fn an_admin_resets_a_leaders_password(app: TestApp) {
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let admin = app.admin(church, "admin@grace.test").await;
    let helper = app.leader(church, "helper@grace.test").await;
    let other_helper = app.leader(church, "second@grace.test").await;
    let leaders = send(&app, &admin, reqwest::Method::GET, "/api/leaders", None).await.1;
    let id_of = |email: &str| {
        leaders["data"]["leaders"]
            .as_array()
            .expect("leaders")
            .iter()
            .find(|l| l["email"] == email)
            .and_then(|l| l["id"].as_str())
            .expect("leader id")
            .to_owned()
    };
    let (helper_id, admin_id) = (id_of("helper@grace.test"), id_of("admin@grace.test"));
    let path = format!("/api/leaders/{helper_id}/password");

    let (status, _) = reset(&app, &other_helper, &path, "a brand new passphrase").await;
    assert_eq!(status, 403, "only admins");
    let other = app.church("Hope", "+15551239999").await;
    let other_admin = app.admin(other, "admin@hope.test").await;
    let (status, _) = reset(&app, &other_admin, &path, "a brand new passphrase").await;
    assert_eq!(status, 404, "another church's leader");
    let (status, body) = reset(&app, &admin, &path, "short").await;
    assert_eq!(status, 400, "the same length rules as a password change: {body}");
    let (status, _) = reset(&app, &admin, &format!("/api/leaders/{admin_id}/password"), "a brand new passphrase").await;
    assert_eq!(status, 400, "an admin's own password changes with the current one");
    assert_eq!(app.get(&helper, "/api/conversations").await.status(), 200);

    let (status, body) = reset(&app, &admin, &path, "a brand new passphrase").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.get(&helper, "/api/conversations").await.status(), 401, "the leader's sessions end");
    assert_eq!(app.get(&admin, "/api/conversations").await.status(), 200, "the admin's own session lives on");
    let res = app
        .http
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": "helper@grace.test", "password": "correct horse battery"}))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 401, "the old password no longer works");
    let fresh = app.login("helper@grace.test", "a brand new passphrase").await;
    assert_eq!(app.get(&fresh, "/api/conversations").await.status(), 200);

    let audit = app.get_json(&admin, "/api/audit").await;
    let entry = audit["data"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["action"] == "leader.password_reset")
        .cloned()
        .expect("audited");
    assert_eq!(entry["subjectId"], helper_id.as_str());
    assert!(!entry.to_string().contains("brand new"), "no password in the audit log: {entry}");
}

crate::matrix!(password_reset, databases, an_admin_resets_a_leaders_password);

async fn reset(app: &TestApp, token: &str, path: &str, new: &str) -> (u16, Value) {
    send(app, token, reqwest::Method::POST, path, Some(json!({ "new": new }))).await
}
