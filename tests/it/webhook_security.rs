//! Webhook signatures, redelivery and malformed events: anything wrong changes nothing.

use serde_json::json;

use crate::inbound_flow::{CHURCH_NUMBER, MEMBER_NUMBER};
use crate::support::{received_event, Backend, Options, Store, TestApp};

const MMS: &str = "/api/webhooks/telnyx/mms";

async fn post_raw(app: &TestApp, headers: &[(&str, String)], body: &[u8]) -> u16 {
    let mut req = app.http.post(app.url(MMS)).header("content-type", "application/json").body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    req.send().await.expect("request").status().as_u16()
}

async fn nothing_written(app: &TestApp) {
    for table in ["webhook_events", "members", "conversations", "messages", "attachments", "jobs"] {
        assert_eq!(app.count(table).await, 0, "{table} must stay empty");
    }
}

#[tokio::test]
async fn signature_cases() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    app.church("Grace", CHURCH_NUMBER).await;
    let body =
        serde_json::to_vec(&received_event("evt-sig", MEMBER_NUMBER, CHURCH_NUMBER, "hi", vec![])).expect("json");
    let now = chrono::Utc::now().timestamp();
    let ts = now.to_string();
    let sig = app.signature(&ts, &body);

    // Body changed after signing.
    let mut tampered = body.clone();
    let pos = tampered.iter().position(|b| *b == b'h').expect("an h");
    tampered[pos] = b'H';
    assert_eq!(
        post_raw(&app, &[("telnyx-signature-ed25519", sig.clone()), ("telnyx-timestamp", ts.clone())], &tampered).await,
        401
    );
    // Signed by another key.
    let other = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let mut msg = ts.as_bytes().to_vec();
    msg.push(b'|');
    msg.extend_from_slice(&body);
    use base64::Engine;
    use ed25519_dalek::Signer;
    let foreign = base64::engine::general_purpose::STANDARD.encode(other.sign(&msg).to_bytes());
    assert_eq!(
        post_raw(&app, &[("telnyx-signature-ed25519", foreign), ("telnyx-timestamp", ts.clone())], &body).await,
        401
    );
    // 301 s old and 301 s ahead, correctly signed.
    for skew in [-301i64, 301] {
        let t = (now + skew).to_string();
        let s = app.signature(&t, &body);
        assert_eq!(
            post_raw(&app, &[("telnyx-signature-ed25519", s), ("telnyx-timestamp", t)], &body).await,
            401,
            "skew {skew}"
        );
    }
    // Missing headers.
    assert_eq!(post_raw(&app, &[("telnyx-timestamp", ts.clone())], &body).await, 401);
    assert_eq!(post_raw(&app, &[("telnyx-signature-ed25519", sig.clone())], &body).await, 401);
    assert_eq!(post_raw(&app, &[], &body).await, 401);
    nothing_written(&app).await;

    // Upper-case header names are the same headers.
    assert_eq!(post_raw(&app, &[("TELNYX-SIGNATURE-ED25519", sig), ("Telnyx-Timestamp", ts)], &body).await, 200);
    assert_eq!(app.count("messages").await, 1);

    // Refusals are counted for the operator.
    let metrics = app.http.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("koinonia_webhooks_rejected_total"), "{metrics}");
}

#[tokio::test]
async fn bodies_that_are_not_telnyx_events_get_400_and_change_nothing() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    app.church("Grace", CHURCH_NUMBER).await;
    for body in [
        b"not json".to_vec(),
        b"{}".to_vec(),
        br#"{"data":{"event_type":"message.received"}}"#.to_vec(),
        serde_json::to_vec(
            &json!({"data": {"event_type": "message.received", "id": "e", "payload": {"text": "no from"}}}),
        )
        .expect("json"),
        serde_json::to_vec(&json!({"data": {"event_type": "message.received", "id": "e2", "payload": {
            "from": {"phone_number": "not a number"}, "to": [{"phone_number": CHURCH_NUMBER}]}}}))
        .expect("json"),
    ] {
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = app.signature(&ts, &body);
        let status = post_raw(&app, &[("telnyx-signature-ed25519", sig), ("telnyx-timestamp", ts)], &body).await;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    }
    nothing_written(&app).await;
}

#[tokio::test]
async fn message_to_an_unknown_number_is_acknowledged_and_dropped() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    app.church("Grace", CHURCH_NUMBER).await;
    let res = app.post_webhook(MMS, &received_event("evt-x", MEMBER_NUMBER, "+15559990000", "hello?", vec![])).await;
    assert_eq!(res.status(), 200, "200 so Telnyx stops retrying");
    nothing_written(&app).await;
}

#[tokio::test]
async fn without_a_public_key_webhooks_are_refused() {
    let options = Options::default().var("TELNYX_PUBLIC_KEY", "");
    let Some(app) = TestApp::try_spawn(Backend::Sqlite, Store::Local, options).await else { return };
    app.church("Grace", CHURCH_NUMBER).await;
    let res = app.post_webhook(MMS, &received_event("evt-nokey", MEMBER_NUMBER, CHURCH_NUMBER, "hi", vec![])).await;
    assert_eq!(res.status(), 401);
    nothing_written(&app).await;
}

#[tokio::test]
async fn the_alias_route_behaves_like_the_main_one() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    app.church("Grace", CHURCH_NUMBER).await;
    let res = app
        .post_webhook(
            "/api/messages/webhooks/telnyx/mms",
            &received_event("evt-alias", MEMBER_NUMBER, CHURCH_NUMBER, "hi", vec![]),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.count("messages").await, 1);
}

async fn redelivery_is_a_no_op(app: TestApp) {
    app.church("Grace", CHURCH_NUMBER).await;
    let event = received_event("evt-redelivered", MEMBER_NUMBER, CHURCH_NUMBER, "once", vec![]);
    for _ in 0..5 {
        assert_eq!(app.post_webhook(MMS, &event).await.status(), 200);
    }
    assert_eq!(app.count("messages").await, 1);

    let concurrent = received_event("evt-concurrent", MEMBER_NUMBER, CHURCH_NUMBER, "twice?", vec![]);
    let sends = (0..5).map(|_| app.post_webhook(MMS, &concurrent));
    for res in futures::future::join_all(sends).await {
        assert_eq!(res.status(), 200);
    }
    assert_eq!(app.count("messages").await, 2);
    assert_eq!(app.count("webhook_events").await, 2);
    assert_eq!(app.count("members").await, 1);
    assert_eq!(app.count("conversations").await, 1);
}

crate::matrix!(redelivery, databases, redelivery_is_a_no_op);
