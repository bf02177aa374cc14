//! A member texts words and files; the text is stored at once, every file is downloaded, stored
//! byte for byte and described; a leader follows the link to the original.

use std::time::Duration;

use serde_json::{json, Value};
use sha2::Digest;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::{fixture, received_event, wait_for, Fixture, TestApp};

pub const CHURCH_NUMBER: &str = "+15551230000";
pub const MEMBER_NUMBER: &str = "+13125550001";

/// Serves a fixture on the stand-in CDN; returns the announced media entry.
pub async fn serve_fixture(app: &TestApp, f: &Fixture) -> Value {
    let mime = f.mime.clone().unwrap_or_else(|| "application/octet-stream".into());
    Mock::given(method("GET"))
        .and(path(format!("/media/{}", f.file)))
        .respond_with(
            ResponseTemplate::new(200).set_body_bytes(f.bytes.clone()).insert_header("content-type", mime.as_str()),
        )
        .mount(&app.cdn)
        .await;
    json!({
        "url": format!("{}/media/{}", app.cdn.uri(), f.file),
        "content_type": mime,
        "size": f.bytes.len(),
        "hash_sha256": f.sha256,
    })
}

/// The thread once every attachment has left `pending`.
pub async fn settled_thread(app: &TestApp, token: &str, conversation: &str) -> Value {
    wait_for("attachments to settle", Duration::from_secs(30), || async {
        let t = app.get_json(token, &format!("/api/conversations/{conversation}")).await;
        let pending = t["data"]["messages"]
            .as_array()?
            .iter()
            .flat_map(|m| m["media"].as_array().cloned().unwrap_or_default())
            .any(|a| a["status"] == "pending");
        (!pending).then_some(t)
    })
    .await
}

async fn member_texts_words_and_files(app: TestApp) {
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    let files: Vec<Fixture> = ["photo.jpg", "clip.mp4", "voice.amr", "doc.pdf"].into_iter().map(fixture).collect();
    let mut media = Vec::new();
    for f in &files {
        media.push(serve_fixture(&app, f).await);
    }
    let event = received_event("evt-words-and-files", MEMBER_NUMBER, CHURCH_NUMBER, "Photos from Sunday!", media);

    // Acknowledged before any download (read_api's slow-CDN test shows the file still pending).
    let res = app.post_webhook("/api/webhooks/telnyx/mms", &event).await;
    assert_eq!(res.status(), 200);

    // The text is there at once.
    let list = app.get_json(&token, "/api/conversations").await;
    let convs = list["data"]["conversations"].as_array().expect("conversations");
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0]["lastMessagePreview"], "Photos from Sunday!");
    assert_eq!(convs[0]["unreadCount"], 1);
    assert_eq!(convs[0]["member"]["phone"], "•••-•••-0001");
    assert_eq!(list["data"]["nextCursor"], Value::Null);
    let conversation = convs[0]["id"].as_str().expect("id").to_owned();

    let thread = settled_thread(&app, &token, &conversation).await;
    assert_eq!(thread["data"]["conversation"]["member"]["phone"], MEMBER_NUMBER, "full number in the thread header");
    let messages = thread["data"]["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m["direction"], "inbound");
    assert_eq!(m["content"], "Photos from Sunday!");
    assert_eq!(m["deliveryStatus"], Value::Null);
    let attachments = m["media"].as_array().expect("media");
    assert_eq!(attachments.len(), files.len());

    for (a, f) in attachments.iter().zip(&files) {
        assert_eq!(a["status"], "stored", "{}: {a}", f.file);
        assert_eq!(a["sha256"], f.sha256.as_str(), "{}", f.file);
        assert_eq!(a["mimeType"].as_str(), f.mime.as_deref(), "{}", f.file);
        assert_eq!(a["type"].as_str(), f.kind.as_deref(), "{}", f.file);
        assert_eq!(a["sizeBytes"], f.bytes.len(), "{}", f.file);
        assert_eq!(a["width"].as_i64(), f.width, "{}", f.file);
        assert_eq!(a["height"].as_i64(), f.height, "{}", f.file);
        match f.duration {
            Some(d) => {
                let got = a["durationSeconds"].as_f64().unwrap_or(-1.0);
                assert!((got - d).abs() < 0.15, "{}: duration {got} vs {d}", f.file);
            }
            None => assert_eq!(a["durationSeconds"], Value::Null, "{}", f.file),
        }
        assert_eq!(a["name"], f.file.as_str());
        let url = a["url"].as_str().expect("url");
        assert_eq!(url, format!("/api/media/{}", a["id"].as_str().expect("id")));

        // The leader follows the link to the original, byte for byte.
        let res = app.get(&token, url).await;
        assert_eq!(res.status(), 302, "{}", f.file);
        let location = res.headers()["location"].to_str().expect("location").to_owned();
        let original = crate::support::http_get(&location).await.expect("presigned GET");
        assert_eq!(original.status(), 200, "{}", f.file);
        assert_eq!(
            original.headers()["content-type"].to_str().expect("type"),
            f.mime.as_deref().expect("mime"),
            "{}",
            f.file
        );
        let bytes = original.bytes().await.expect("bytes");
        assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), f.sha256, "{}", f.file);
        assert_eq!(bytes.as_ref(), f.bytes.as_slice());
    }
    let previews = app.preview_files().await;
    assert_eq!(app.stored_files().len(), files.len() + previews);
    assert!(app.count("audit_log WHERE action = 'media.view'").await >= files.len() as i64);

    if let Some(s3) = &app.s3 {
        let uploads: Vec<_> = s3
            .seen()
            .into_iter()
            .filter(|r| {
                r.method == "POST" && r.query.contains("uploads")
                    || r.method == "PUT" && !r.query.contains("partNumber")
            })
            .collect();
        assert!(!uploads.is_empty(), "uploads went through S3");
        for u in &uploads {
            assert_eq!(u.header("x-amz-server-side-encryption"), Some("AES256"), "SSE-S3 on {}", u.path);
            assert!(u.header("x-amz-meta-original-filename").is_some(), "original-filename on {}", u.path);
            assert!(u.header("x-amz-meta-conversation-id") == Some(conversation.as_str()));
            let date = u.header("x-amz-meta-upload-date").expect("upload-date");
            assert!(chrono::DateTime::parse_from_rfc3339(date).is_ok(), "ISO-8601: {date}");
            assert!(u.header("authorization").is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256")), "SigV4");
        }
        let key_prefix = format!("/{}/conversations/{church}/{conversation}/", crate::support::s3::BUCKET);
        assert!(uploads.iter().all(|u| u.path.starts_with(&key_prefix)), "keys under folder/church/conversation");
    }
}

crate::matrix!(member_texts_words_and_files_everywhere, all, member_texts_words_and_files);

async fn ten_files_of_mixed_types(app: TestApp) {
    app.church("Grace", CHURCH_NUMBER).await;
    let names = [
        "photo.jpg",
        "image.png",
        "anim.gif",
        "clip.mp4",
        "clip.3gp",
        "voice.m4a",
        "voice.mp3",
        "voice.amr",
        "voice.wav",
        "doc.pdf",
    ];
    let files: Vec<Fixture> = names.into_iter().map(fixture).collect();
    let mut media = Vec::new();
    for f in &files {
        media.push(serve_fixture(&app, f).await);
    }
    let res = app
        .post_webhook("/api/webhooks/telnyx/mms", &received_event("evt-ten", MEMBER_NUMBER, CHURCH_NUMBER, "", media))
        .await;
    assert_eq!(res.status(), 200);
    wait_for("ten stored attachments", Duration::from_secs(30), || async {
        (app.count("attachments WHERE status = 'stored'").await == 10).then_some(())
    })
    .await;
    assert_eq!(app.count("attachments").await, 10);
    assert_eq!(app.count("messages").await, 1);
    let previews = app.preview_files().await;
    assert_eq!(app.stored_files().len(), 10 + previews);
}

crate::matrix!(ten_files_everywhere, [sqlite_local => (Sqlite, Local), postgres_s3 => (Postgres, S3)], ten_files_of_mixed_types);

/// The start-up rehearsal (a made-up text through the webhook's statements, rolled back) leaves
/// nothing behind, however often it runs and on however many connections at once; a real webhook
/// after it is stored as usual.
async fn the_start_up_rehearsal_leaves_nothing_behind(app: TestApp) {
    const TABLES: [&str; 7] =
        ["churches", "members", "conversations", "messages", "webhook_events", "jobs", "attachments"];
    let mut before = Vec::new();
    for t in TABLES {
        before.push(app.count(t).await);
    }
    for _ in 0..2 {
        koinonia::flows::inbound::rehearse(&app.state.inbound(), 3).await.expect("the rehearsal runs to its end");
    }
    for (t, n) in TABLES.iter().zip(&before) {
        assert_eq!(app.count(t).await, *n, "{t} after the rehearsal");
    }
    app.church("Grace", CHURCH_NUMBER).await;
    let event = received_event("evt-after-rehearsal", MEMBER_NUMBER, CHURCH_NUMBER, "Hello", vec![]);
    assert_eq!(app.post_webhook("/api/webhooks/telnyx/mms", &event).await.status(), 200);
    assert_eq!(app.count("messages").await, before[3] + 1);
}

crate::matrix!(start_up_rehearsal, databases, the_start_up_rehearsal_leaves_nothing_behind);
