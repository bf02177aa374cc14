//! Attacks on a running koinonia that must fail (hardening): each test here failed before the
//! protection it names was built.

use std::time::Duration;

use serde_json::json;

use crate::support::{received_event, wait_for, TestApp};

const CHURCH_NUMBER: &str = "+15551230000";
const MEMBER_NUMBER: &str = "+13125550001";

/// Starts a conversation with the member (a leader's first text); returns its id.
async fn start_conversation(app: &TestApp, token: &str) -> String {
    let res = app
        .http
        .post(app.url("/api/conversations"))
        .bearer_auth(token)
        .json(&json!({"phone": MEMBER_NUMBER, "content": "Welcome!"}))
        .send()
        .await
        .expect("start");
    assert_eq!(res.status(), 201);
    let body: serde_json::Value = res.json().await.expect("json");
    body["data"]["conversation"]["id"].as_str().expect("id").to_owned()
}

/// A NUL character in a member's text, a media URL or the event id never loses the message: the
/// webhook is stored (NUL shown as U+FFFD) and acknowledged, on SQLite and PostgreSQL alike.
async fn a_nul_character_never_loses_a_message(app: TestApp) {
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    let media = vec![json!({
        "url": "https://media.example.org/a\u{0}b.jpg",
        "content_type": "image/jpeg\u{0}",
        "size": 10,
    })];
    let event = received_event("evt-\u{0}-nul", MEMBER_NUMBER, CHURCH_NUMBER, "Pray for\u{0} us", media);
    let res = app.post_webhook("/api/webhooks/telnyx/mms", &event).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());
    // Redelivered: still one message.
    let again = app.post_webhook("/api/webhooks/telnyx/mms", &event).await;
    assert_eq!(again.status(), 200);
    let list = app.get_json(&token, "/api/conversations").await;
    let conversation = list["data"]["conversations"][0]["id"].as_str().expect("a conversation").to_owned();
    let thread = app.get_json(&token, &format!("/api/conversations/{conversation}")).await;
    let messages = thread["data"]["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["content"], "Pray for\u{FFFD} us");
    assert_eq!(
        messages[0]["media"].as_array().map(Vec::len),
        Some(1),
        "the file is kept too (it will fail to download)"
    );
}

crate::matrix!(
    a_nul_character_never_loses_a_message_on_both_databases,
    databases,
    a_nul_character_never_loses_a_message
);

/// A signed Telnyx webhook cannot name `sandbox:<another church's object key>` as a file: the
/// simulator's scheme is not a download URL. The other church's file stays where it is.
async fn the_sandbox_scheme_is_not_for_webhooks(app: TestApp) {
    let a = app.church("Grace", CHURCH_NUMBER).await;
    let token_a = app.leader(a, "pastor@grace.test").await;
    let b = app.church("Hope", "+15551239999").await;
    let token_b = app.leader(b, "pastor@hope.test").await;
    // Church A receives a file (a real download from the stand-in CDN).
    let f = crate::support::fixture("photo.jpg");
    let announced = crate::inbound_flow::serve_fixture(&app, &f).await;
    let res = app
        .post_webhook(
            "/api/webhooks/telnyx/mms",
            &received_event("evt-a", MEMBER_NUMBER, CHURCH_NUMBER, "photo", vec![announced]),
        )
        .await;
    assert_eq!(res.status(), 200);
    wait_for("A's file stored", Duration::from_secs(30), || async {
        (app.count("attachments WHERE status = 'stored'").await >= 1).then_some(())
    })
    .await;
    let before = app.stored_files();
    let victim = before.iter().find(|p| !p.to_string_lossy().contains("previews")).expect("A's original").clone();
    let media = app.data_dir.path().join("media");
    let key = victim.strip_prefix(&media).expect("under the media folder").to_string_lossy().into_owned();

    // Church B's number gets a signed webhook naming A's object.
    let evil = vec![json!({"url": format!("sandbox:{key}"), "content_type": "image/jpeg"})];
    let res = app
        .post_webhook("/api/webhooks/telnyx/mms", &received_event("evt-b", "+13125550002", "+15551239999", "", evil))
        .await;
    assert_eq!(res.status(), 200, "acknowledged (the text is kept)");
    let conv_b = wait_for("B's conversation", Duration::from_secs(10), || async {
        let l = app.get_json(&token_b, "/api/conversations").await;
        l["data"]["conversations"][0]["id"].as_str().map(str::to_owned)
    })
    .await;
    let settled = crate::inbound_flow::settled_thread(&app, &token_b, &conv_b).await;
    let att = &settled["data"]["messages"][0]["media"][0];
    assert_eq!(att["status"], "failed", "{att}");
    assert!(victim.exists(), "A's original is untouched");
    let a_list = app.get_json(&token_a, "/api/conversations").await;
    assert_eq!(a_list["data"]["conversations"].as_array().map(Vec::len), Some(1));
}

crate::matrix!(the_sandbox_scheme_is_not_for_webhooks_locally, [sqlite_local => (Sqlite, Local)], the_sandbox_scheme_is_not_for_webhooks);

/// Behind a proxy, the address that counts is the one the proxy saw, not what the client wrote
/// first in `X-Forwarded-For`: spoofed first entries do not dodge the per-address login limit.
async fn a_spoofed_forwarded_for_does_not_dodge_the_login_limit(app: TestApp) {
    let church = app.church("Grace", CHURCH_NUMBER).await;
    app.leader(church, "pastor@grace.test").await;
    let http = koinonia::crypto::tls::client_builder().build().expect("client");
    let mut limited = 0;
    for i in 0..40 {
        let res = http
            .post(app.url("/api/auth/login"))
            .header("x-forwarded-for", format!("10.9.{}.{}, 198.51.100.7", i / 250, i % 250))
            .json(&json!({"email": format!("nobody{i}@grace.test"), "password": "wrong password 1"}))
            .send()
            .await
            .expect("login");
        if res.status() == 429 {
            limited += 1;
        }
    }
    // 20 at once, then one every 6 s: of 40 quick attempts from one client, about 20 are refused.
    assert!(limited >= 15, "per-address limit applied to the proxy's client (198.51.100.7): {limited} × 429");
}

async fn spawn_behind_proxy() -> Option<TestApp> {
    use crate::support::{Backend, Options, Store};
    TestApp::try_spawn(Backend::Sqlite, Store::Local, Options::default().var("TRUST_PROXY_HEADERS", "true")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_forwarded_for_behind_a_proxy() {
    if let Some(app) = spawn_behind_proxy().await {
        a_spoofed_forwarded_for_does_not_dodge_the_login_limit(app).await;
    }
}

/// Eight concurrent first-run setups create exactly one church (each with its own number and
/// email, so no unique constraint could stop them but the claim itself).
async fn concurrent_setups_make_one_church(app: TestApp) {
    let posts = (0..8).map(|i| {
        let number = format!("+1555123{i:04}");
        let email = format!("pastor{i}@grace.test");
        let fields = vec![
            ("church_name".to_owned(), format!("Church {i}")),
            ("church_number".to_owned(), number),
            ("email".to_owned(), email),
            ("password".to_owned(), "correct horse battery".to_owned()),
            ("password_confirm".to_owned(), "correct horse battery".to_owned()),
        ];
        let req = app.http.post(app.url("/setup")).form(&fields);
        async move { req.send().await.expect("setup").status().as_u16() }
    });
    let statuses = futures::future::join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == 303 || *s == 302), "{statuses:?}");
    assert_eq!(app.count("churches").await, 1, "{statuses:?}");
    assert_eq!(app.count("leaders").await, 1);
}

crate::matrix!(concurrent_setups_make_one_church_on_both_databases, databases, concurrent_setups_make_one_church);

/// When the store fails, leaders read a plain reason; the folder path (or S3 endpoint and
/// bucket) stays in the server log.
async fn store_failures_do_not_show_internals(app: TestApp) {
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    // The media folder becomes a file: every write to it fails.
    let media = app.data_dir.path().join("media");
    std::fs::remove_dir_all(&media).expect("remove media folder");
    std::fs::write(&media, b"not a folder").expect("file in its place");
    let f = crate::support::fixture("photo.jpg");
    let announced = crate::inbound_flow::serve_fixture(&app, &f).await;
    let res = app
        .post_webhook(
            "/api/webhooks/telnyx/mms",
            &received_event("evt-store", MEMBER_NUMBER, CHURCH_NUMBER, "", vec![announced]),
        )
        .await;
    assert_eq!(res.status(), 200);
    let list = app.get_json(&token, "/api/conversations").await;
    let conversation = list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
    let reason = wait_for("a failure reason", Duration::from_secs(30), || async {
        let t = app.get_json(&token, &format!("/api/conversations/{conversation}")).await;
        t["data"]["messages"][0]["media"][0]["failureReason"].as_str().map(str::to_owned)
    })
    .await;
    let folder = app.data_dir.path().to_string_lossy().into_owned();
    assert!(!reason.contains(&folder) && !reason.contains("MEDIA_DIR"), "{reason}");
    assert_eq!(reason, koinonia::media::ingest::STORE_FAILED);
}

crate::matrix!(store_failures_do_not_show_internals_locally, [sqlite_local => (Sqlite, Local)], store_failures_do_not_show_internals);

/// Nothing stays in the store that no row points to: a refused upload (two files, a bad
/// `largeImage`) leaves nothing behind at once, and the sweep removes older unreferenced objects
/// (a crash between store write and commit, a staged simulator file nobody fetched) while files
/// that rows point to stay.
async fn no_object_without_a_row(app: TestApp) {
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    let http = &app.http;
    let conversation = start_conversation(&app, &token).await;
    let photo = crate::support::fixture("photo.jpg").bytes;
    let part =
        || reqwest::multipart::Part::bytes(photo.clone()).file_name("photo.jpg").mime_str("image/jpeg").expect("part");
    // Two files, then a bad largeImage after the file: both refused, nothing kept.
    for form in [
        reqwest::multipart::Form::new().part("file", part()).part("file", part()),
        reqwest::multipart::Form::new().part("file", part()).text("largeImage", "sideways"),
    ] {
        let res = http
            .post(app.url(&format!("/api/conversations/{conversation}/reply-with-media")))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await
            .expect("upload");
        assert_eq!(res.status(), 400);
    }
    wait_for("refused uploads removed", Duration::from_secs(10), || async {
        app.stored_files().is_empty().then_some(())
    })
    .await;

    // One stored file that a row points to, and two orphans.
    let res = http
        .post(app.url(&format!("/api/conversations/{conversation}/reply-with-media")))
        .bearer_auth(&token)
        .multipart(reqwest::multipart::Form::new().part("file", part()))
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), 201);
    let previews = app.preview_files().await;
    let kept = app.stored_files();
    assert_eq!(kept.len(), 1 + previews);
    let store = &app.state.store;
    let orphan = format!("{}/{church}/{conversation}/{}_lost.jpg", store.folder(), uuid::Uuid::now_v7());
    let staged = "sandbox/0123abcd_never-fetched.jpg";
    for key in [orphan.as_str(), staged] {
        let info = koinonia::media::store::ObjectInfo {
            content_type: "image/jpeg",
            original_filename: "x.jpg",
            conversation_id: koinonia::domain::ConversationId::new(),
            uploaded_at: chrono::Utc::now(),
        };
        let mut w = store.writer(key, &info).await.expect("writer");
        w.write(&photo).await.expect("write");
        w.finish().await.expect("finish");
    }
    assert_eq!(app.stored_files().len(), kept.len() + 2);
    // Within the grace period nothing goes; a day later the two orphans do.
    let now = chrono::Utc::now();
    let early = koinonia::flows::orphans::sweep(&app.state.retention(), now, koinonia::flows::orphans::GRACE)
        .await
        .expect("sweep");
    assert_eq!(early.deleted, 0);
    let later = now + chrono::Duration::days(2);
    let report = koinonia::flows::orphans::sweep(&app.state.retention(), later, koinonia::flows::orphans::GRACE)
        .await
        .expect("sweep");
    assert_eq!(report.deleted, 2, "{report:?}");
    assert_eq!(app.stored_files(), kept, "the files rows point to stay (original and previews)");
}

crate::matrix!(no_object_without_a_row_everywhere, all, no_object_without_a_row);

/// A live-updates stream ends when its session is revoked (here: logout), within the stream's
/// session check, instead of feeding a signed-out browser for hours.
async fn a_revoked_session_loses_its_live_stream(app: TestApp) {
    use futures::StreamExt;
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    let res = app.http.get(app.url("/events")).bearer_auth(&token).send().await.expect("events");
    assert_eq!(res.status(), 200);
    let mut stream = res.bytes_stream();
    let logout = app.http.post(app.url("/api/auth/logout")).bearer_auth(&token).send().await.expect("logout");
    assert_eq!(logout.status(), 200);
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = stream.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream of a logged-out session is still open after 20 s");
}

crate::matrix!(a_revoked_session_loses_its_live_stream_locally, [sqlite_local => (Sqlite, Local)], a_revoked_session_loses_its_live_stream);

/// An admin adding a leader learns nothing about other churches: an email that leads elsewhere
/// is added like any other (it is a separate account with its own password), and each password
/// signs in to its own church. Within one church an email is still unique (409).
async fn an_email_in_another_church_is_not_revealed(app: TestApp) {
    let grace = app.church("Grace", CHURCH_NUMBER).await;
    let hope = app.church("Hope", "+15551239999").await;
    let _ = app.leader(hope, "shared@example.org").await; // password "correct horse battery"
    let admin = app.admin(grace, "admin@grace.test").await;
    let add = |email: &str, password: &str| {
        app.http
            .post(app.url("/api/leaders"))
            .bearer_auth(&admin)
            .json(&json!({"email": email, "password": password}))
            .send()
    };
    let res = add("Shared@Example.org", "another long passphrase").await.expect("add");
    assert_eq!(res.status(), 201, "same answer as for a new address");
    let res = add("shared@example.org", "yet another passphrase").await.expect("add");
    assert_eq!(res.status(), 409, "already a leader of this church");
    // Each password opens its own church.
    let hope_token = app.login("shared@example.org", "correct horse battery").await;
    let grace_token = app.login("shared@example.org", "another long passphrase").await;
    let whoami = |token: String| {
        let http = app.http.clone();
        let url = app.url("/api/leaders");
        async move { http.get(url).bearer_auth(token).send().await.expect("leaders").status().as_u16() }
    };
    // Not admins: 403 on the admin route proves the sessions are valid and distinct accounts.
    assert_eq!(whoami(hope_token.clone()).await, 403);
    assert_eq!(whoami(grace_token.clone()).await, 403);
    assert_ne!(hope_token, grace_token);
}

crate::matrix!(
    an_email_in_another_church_is_not_revealed_on_both_databases,
    databases,
    an_email_in_another_church_is_not_revealed
);

/// Guessing the current password through `POST /api/auth/password` is limited like login.
async fn password_change_guesses_are_limited(app: TestApp) {
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    let mut limited = 0;
    for i in 0..12 {
        let res = app
            .http
            .post(app.url("/api/auth/password"))
            .bearer_auth(&token)
            .json(&json!({"current": format!("wrong guess number {i}"), "new": "a brand new passphrase"}))
            .send()
            .await
            .expect("password");
        match res.status().as_u16() {
            401 => {}
            429 => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(limited >= 5, "{limited} × 429 of 12 guesses");
}

crate::matrix!(password_change_guesses_are_limited_locally, [sqlite_local => (Sqlite, Local)], password_change_guesses_are_limited);

/// A file name with a right-to-left override cannot pose as another type: the name shown, the
/// name downloaded and the name in a ZIP carry no invisible formatting characters.
async fn file_names_cannot_lie(app: TestApp) {
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    let conversation = start_conversation(&app, &token).await;
    let pdf = crate::support::fixture("doc.pdf").bytes;
    let part = reqwest::multipart::Part::bytes(pdf)
        .file_name("invoice\u{202e}fdp.bat")
        .mime_str("application/pdf")
        .expect("part");
    let res = app
        .http
        .post(app.url(&format!("/api/conversations/{conversation}/reply-with-media")))
        .bearer_auth(&token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), 201);
    let body: serde_json::Value = res.json().await.expect("json");
    let name = body["data"]["media"][0]["name"].as_str().expect("name").to_owned();
    assert!(!name.contains('\u{202e}'), "{name:?}");
    assert!(name.starts_with("invoicefdp.bat"), "{name:?}");
}

crate::matrix!(file_names_cannot_lie_locally, [sqlite_local => (Sqlite, Local)], file_names_cannot_lie);
