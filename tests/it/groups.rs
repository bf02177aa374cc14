//! Group texts: a group MMS is a conversation of its own, keyed by its members; each message names
//! its sender; a leader's reply goes to every member who can receive it as one `group_mms`, with
//! each member's delivery reported on its own.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::inbound_flow::{serve_fixture, settled_thread, CHURCH_NUMBER};
use crate::support::{fixture, received_event, wait_for, Backend, Options, Store, TestApp};

const MMS: &str = "/api/webhooks/telnyx/mms";
const ANN: &str = "+13125550101";
const BEN: &str = "+13125550102";
const CAT: &str = "+13125550103";
const DAN: &str = "+13125550104";

/// A `message.received` from `from` to the church and `cc` (Telnyx lists the others there).
fn group_event(id: &str, from: &str, cc: &[&str], text: &str, media: Vec<Value>) -> Value {
    let mut event = received_event(id, from, CHURCH_NUMBER, text, media);
    event["data"]["payload"]["type"] = json!("MMS");
    event["data"]["payload"]["cc"] = json!(cc.iter().map(|n| json!({ "phone_number": n })).collect::<Vec<_>>());
    event
}

async fn conversations(app: &TestApp, token: &str, q: &str) -> Vec<Value> {
    let list = app.get_json(token, &format!("/api/conversations{q}")).await;
    list["data"]["conversations"].as_array().expect("conversations").clone()
}

async fn post_json(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.http.post(app.url(path)).bearer_auth(token).json(&body).send().await.expect("POST")
}

/// The stand-in Telnyx takes every group MMS, naming each recipient `queued`.
struct TakesGroups(std::sync::atomic::AtomicUsize);

impl wiremock::Respond for TakesGroups {
    fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let to: Vec<Value> = body["to"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| json!({ "phone_number": n, "status": "queued", "carrier": "T-Mobile USA" }))
            .collect();
        ResponseTemplate::new(200)
            .set_body_json(json!({ "data": { "id": format!("grp-{n}"), "type": "MMS", "to": to } }))
    }
}

async fn group_sends(app: &TestApp) -> Vec<Value> {
    let requests = app.telnyx.received_requests().await.unwrap_or_default();
    assert!(requests.iter().all(|r| r.url.path() != "/v2/messages"), "a group reply never goes as one-to-one texts");
    requests
        .into_iter()
        .filter(|r| r.url.path() == "/v2/messages/group_mms")
        .map(|r| serde_json::from_slice(&r.body).expect("json body"))
        .collect()
}

/// One recipient's delivery report, as Telnyx sends one per member of a group.
async fn report(app: &TestApp, event: &str, provider_id: &str, number: &str, status: &str, errors: Value) -> u16 {
    let body = json!({
        "data": {
            "event_type": "message.finalized", "id": event, "occurred_at": "2026-11-30T10:00:00.000+00:00",
            "record_type": "event",
            "payload": {
                "id": provider_id, "record_type": "message", "direction": "outbound", "type": "MMS",
                "from": { "phone_number": CHURCH_NUMBER },
                "to": [ { "phone_number": number, "status": status } ],
                "errors": errors
            }
        },
        "meta": { "attempt": 1 }
    });
    app.post_webhook("/api/webhooks/telnyx/status", &body).await.status().as_u16()
}

fn member_id_of(conversation: &Value, last4: &str) -> String {
    conversation["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .find(|p| p["phone"].as_str().is_some_and(|n| n.ends_with(last4)))
        .and_then(|p| p["id"].as_str())
        .unwrap_or_else(|| panic!("no participant ending {last4}: {conversation}"))
        .to_owned()
}

async fn group_texts(app: TestApp) {
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    Mock::given(method("POST"))
        .and(path("/v2/messages/group_mms"))
        .respond_with(TakesGroups(Default::default()))
        .mount(&app.telnyx)
        .await;

    // Ann texts the church and three friends, with a photo and a document; Telnyx also lists the
    // church number among the others.
    let files = [fixture("photo.jpg"), fixture("doc.pdf")];
    let mut media = Vec::new();
    for f in &files {
        media.push(serve_fixture(&app, f).await);
    }
    let first = group_event("g-1", ANN, &[BEN, CAT, CHURCH_NUMBER, DAN], "Small group tonight?", media);
    assert_eq!(app.post_webhook(MMS, &first).await.status(), 200);
    let list = conversations(&app, &token, "").await;
    assert_eq!(list.len(), 1, "one conversation for the group");
    let group = &list[0];
    assert_eq!(group["group"], true);
    let phones: Vec<&str> =
        group["participants"].as_array().expect("participants").iter().filter_map(|p| p["phone"].as_str()).collect();
    assert_eq!(phones, ["•••-•••-0101", "•••-•••-0102", "•••-•••-0103", "•••-•••-0104"], "the church is not a member");
    assert_eq!(group["member"]["phone"], "•••-•••-0101", "the group shows who started it first");
    let id = group["id"].as_str().expect("id").to_owned();
    let (ann, ben, cat, dan) = (
        member_id_of(group, "0101"),
        member_id_of(group, "0102"),
        member_id_of(group, "0103"),
        member_id_of(group, "0104"),
    );

    // Ben answers everyone, listing the group in another order: the same conversation.
    let second = group_event("g-2", BEN, &[DAN, ANN, CAT], "Count me in", vec![]);
    assert_eq!(app.post_webhook(MMS, &second).await.status(), 200);
    // Ann also texts the church alone: her own conversation, not the group's.
    let alone = received_event("g-3", ANN, CHURCH_NUMBER, "Just to you: thank you", vec![]);
    assert_eq!(app.post_webhook(MMS, &alone).await.status(), 200);
    let list = conversations(&app, &token, "").await;
    assert_eq!(list.len(), 2, "the group and Ann's own conversation");
    assert_eq!(list.iter().filter(|c| c["group"] == true).count(), 1);
    assert_eq!(app.count("members").await, 4);

    let thread = settled_thread(&app, &token, &id).await;
    let messages = thread["data"]["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2);
    assert_eq!(
        (messages[0]["senderId"].as_str(), messages[0]["content"].as_str()),
        (Some(ann.as_str()), Some("Small group tonight?"))
    );
    assert_eq!(messages[1]["senderId"].as_str(), Some(ben.as_str()), "each message names its sender");
    let stored: Vec<&str> =
        messages[0]["media"].as_array().expect("media").iter().filter_map(|m| m["status"].as_str()).collect();
    assert_eq!(stored, ["stored", "stored"], "the group's files are kept like any others");
    assert_eq!(thread["data"]["conversation"]["participants"].as_array().map(Vec::len), Some(4));

    // A search by a member's name or number finds the group they are in.
    let res = app
        .http
        .patch(app.url(&format!("/api/members/{dan}")))
        .bearer_auth(&token)
        .json(&json!({ "firstName": "Dana" }))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(res.status(), 200);
    let found = conversations(&app, &token, "?q=dana").await;
    assert_eq!(found.iter().map(|c| c["id"].as_str()).collect::<Vec<_>>(), [Some(id.as_str())], "by name");
    let found = conversations(&app, &token, "?q=0103").await;
    assert_eq!(found.iter().map(|c| c["id"].as_str()).collect::<Vec<_>>(), [Some(id.as_str())], "by last digits");

    // Cat opts out from the group: she is still a member, but replies no longer reach her.
    let stop = group_event("g-4", CAT, &[ANN, BEN, DAN], "STOP", vec![]);
    assert_eq!(app.post_webhook(MMS, &stop).await.status(), 200);

    // The leader's reply: one group MMS to everyone who can receive it.
    let res =
        post_json(&app, &token, &format!("/api/conversations/{id}/reply"), json!({ "content": "See you at 7!" })).await;
    assert_eq!(res.status(), 201);
    let reply: Value = res.json().await.expect("json");
    let reply_id = reply["data"]["id"].as_str().expect("id").to_owned();
    let sent = wait_for("the group send", Duration::from_secs(20), || async {
        let t = app.get_json(&token, &format!("/api/conversations/{id}")).await;
        let m = t["data"]["messages"].as_array()?.iter().find(|m| m["id"] == reply_id.as_str())?.clone();
        (m["providerMessageId"] == "grp-1").then_some(m)
    })
    .await;
    let requests = group_sends(&app).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["from"], CHURCH_NUMBER);
    assert_eq!(requests[0]["to"], json!([ANN, BEN, DAN]), "every member but the one who opted out");
    assert_eq!(requests[0]["text"], "See you at 7!");
    let recipients: Vec<(&str, &str)> = sent["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .map(|r| (r["memberId"].as_str().unwrap_or(""), r["deliveryStatus"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(recipients.len(), 3);
    assert!(recipients.iter().all(|(m, s)| *m != cat && *s == "queued"), "{recipients:?}");

    // One report per member; the message sums them up, and a failure is that member's alone.
    assert_eq!(report(&app, "d-1", "grp-1", ANN, "delivered", json!([])).await, 200);
    assert_eq!(report(&app, "d-2", "grp-1", BEN, "delivered", json!([])).await, 200);
    let m = message(&app, &token, &id, &reply_id).await;
    assert_eq!(m["deliveryStatus"], "queued", "Dan's delivery is still to come");
    let failed = json!([{ "code": "40008", "title": "Undeliverable", "detail": "not accepted" }]);
    assert_eq!(report(&app, "d-3", "grp-1", DAN, "delivery_failed", failed).await, 200);
    assert_eq!(report(&app, "d-1", "grp-1", ANN, "sent", json!([])).await, 200, "a redelivery changes nothing");
    let m = message(&app, &token, &id, &reply_id).await;
    assert_eq!(m["deliveryStatus"], "delivered", "delivered to every member it could reach");
    let by_member: std::collections::HashMap<&str, (&str, Option<&str>)> = m["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .map(|r| {
            (
                r["memberId"].as_str().unwrap_or(""),
                (r["deliveryStatus"].as_str().unwrap_or(""), r["failureReason"].as_str()),
            )
        })
        .collect();
    assert_eq!(by_member[ann.as_str()], ("delivered", None));
    assert_eq!(by_member[ben.as_str()], ("delivered", None));
    assert_eq!(by_member[dan.as_str()].0, "failed");
    assert!(by_member[dan.as_str()].1.is_some_and(|r| r.contains("40008")), "{:?}", by_member[dan.as_str()]);
    assert_eq!(group_sends(&app).await.len(), 1, "sent once");

    // Exported one by one: Ann's archive holds what she wrote, to the group and to the church
    // alone, with her group photo; not what the others wrote.
    let admin = app.admin(church, "admin@grace.test").await;
    let res = app.get(&admin, &format!("/api/members/{ann}/export")).await;
    assert_eq!(res.status(), 200);
    let archive = crate::member_export::read_zip(&res.bytes().await.expect("zip"));
    let texts: Vec<&str> =
        archive.messages.as_array().expect("messages").iter().filter_map(|m| m["content"].as_str()).collect();
    assert_eq!(texts, ["Small group tonight?", "Just to you: thank you"]);
    assert!(archive.transcript.contains("to a group text"), "{}", archive.transcript);
    assert!(!archive.transcript.contains("Count me in"), "another member's message is not hers");
    assert!(archive.names.iter().any(|n| n.ends_with(".jpg")), "her group photo: {:?}", archive.names);

    // Erasing one member takes their messages only: the group stays with the others.
    let res = app.http.delete(app.url(&format!("/api/members/{ann}"))).bearer_auth(&admin).send().await.expect("erase");
    assert!(res.status().is_success(), "{}", res.status());
    let thread = app.get_json(&token, &format!("/api/conversations/{id}")).await;
    let conversation = &thread["data"]["conversation"];
    assert_eq!(conversation["participants"].as_array().map(Vec::len), Some(3));
    assert_eq!(conversation["member"]["id"].as_str(), Some(ben.as_str()), "handed to the next member");
    let left: Vec<&str> =
        thread["data"]["messages"].as_array().expect("messages").iter().filter_map(|m| m["content"].as_str()).collect();
    assert_eq!(left, ["Count me in", "STOP", "See you at 7!"], "Ann's own message went with her");
    assert_eq!(conversations(&app, &token, "").await.len(), 1, "Ann's own conversation went too");
}

async fn message(app: &TestApp, token: &str, conversation: &str, id: &str) -> Value {
    let thread = app.get_json(token, &format!("/api/conversations/{conversation}")).await;
    thread["data"]["messages"].as_array().expect("messages").iter().find(|m| m["id"] == id).cloned().expect("message")
}

async fn telnyx_app(backend: Backend) -> Option<TestApp> {
    TestApp::try_spawn(backend, Store::Local, Options::default().telnyx()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_texts_sqlite() {
    if let Some(app) = telnyx_app(Backend::Sqlite).await {
        group_texts(app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_texts_postgres() {
    if let Some(app) = telnyx_app(Backend::Postgres).await {
        group_texts(app).await;
    }
}

/// A reply the group cannot take is refused with a reason, and nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_replies_that_cannot_go_are_refused() {
    let Some(app) = telnyx_app(Backend::Sqlite).await else { return };
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    // Abroad: group MMS exists in the US and Canada only.
    let abroad = group_event("a-1", ANN, &["+442079460958", BEN], "Hello from London", vec![]);
    assert_eq!(app.post_webhook(MMS, &abroad).await.status(), 200);
    // Two members, one of whom opts out: fewer than two left.
    let pair = group_event("a-2", CAT, &[DAN], "Hi both", vec![]);
    assert_eq!(app.post_webhook(MMS, &pair).await.status(), 200);
    let stop = group_event("a-3", DAN, &[CAT], "STOP", vec![]);
    assert_eq!(app.post_webhook(MMS, &stop).await.status(), 200);
    // Too many numbers for a group: filed under the sender, with the others noted.
    let crowd: Vec<String> = (0..12).map(|i| format!("+1312555{:04}", 200 + i)).collect();
    let crowd: Vec<&str> = crowd.iter().map(String::as_str).collect();
    let big = group_event("a-4", "+13125550300", &crowd, "Hello everyone", vec![]);
    assert_eq!(app.post_webhook(MMS, &big).await.status(), 200);

    let list = conversations(&app, &token, "").await;
    let find = |last4: &str| {
        list.iter()
            .find(|c| c["member"]["phone"].as_str().is_some_and(|p| p.ends_with(last4)))
            .cloned()
            .unwrap_or_else(|| panic!("no conversation of {last4}"))
    };
    let crowd = find("0300");
    assert_eq!(crowd["group"], false, "a crowd of 13 is not a group conversation");
    for (conversation, why) in [(find("0101"), "US and Canada"), (find("0103"), "at least two")] {
        let id = conversation["id"].as_str().expect("id");
        let res = post_json(&app, &token, &format!("/api/conversations/{id}/reply"), json!({ "content": "Hi" })).await;
        assert_eq!(res.status(), 422);
        let body: Value = res.json().await.expect("json");
        assert!(body["error"].as_str().is_some_and(|e| e.contains(why)), "{body}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.telnyx.received_requests().await.unwrap_or_default().is_empty(), "nothing sent");
}

/// A group send whose answer is lost is settled by its delivery report, never sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_group_answer_is_reconciled_never_resent() {
    let options = Options { telnyx_timeout_ms: 300, reconcile_ms: 3_000, ..Options::default().telnyx() };
    let Some(app) = TestApp::try_spawn(Backend::Sqlite, Store::Local, options).await else { return };
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    assert_eq!(app.post_webhook(MMS, &group_event("l-1", ANN, &[BEN], "Hi", vec![])).await.status(), 200);
    let id = conversations(&app, &token, "").await[0]["id"].as_str().expect("id").to_owned();
    Mock::given(method("POST"))
        .and(path("/v2/messages/group_mms"))
        .respond_with(
            ResponseTemplate::new(200).set_delay(Duration::from_secs(3)).set_body_json(json!({"data": {"id": "late"}})),
        )
        .mount(&app.telnyx)
        .await;
    let res = post_json(&app, &token, &format!("/api/conversations/{id}/reply"), json!({ "content": "Hello" })).await;
    let reply: Value = res.json().await.expect("json");
    let reply_id = reply["data"]["id"].as_str().expect("id").to_owned();
    wait_for("the request", Duration::from_secs(5), || async { (group_sends(&app).await.len() == 1).then_some(()) })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Reports come through the message's own webhook URL (`m`), one per member.
    for (event, number) in [("l-d1", ANN), ("l-d2", BEN)] {
        let body = json!({ "data": { "event_type": "message.sent", "id": event, "record_type": "event",
            "payload": { "id": "grp-late", "to": [ { "phone_number": number, "status": "sent" } ], "errors": [] } } });
        let path = format!("/api/webhooks/telnyx/status?m={reply_id}");
        assert_eq!(app.post_webhook(&path, &body).await.status(), 200);
    }
    let m = message(&app, &token, &id, &reply_id).await;
    assert_eq!((m["deliveryStatus"].as_str(), m["providerMessageId"].as_str()), (Some("sent"), Some("grp-late")));
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let m = message(&app, &token, &id, &reply_id).await;
    assert_eq!(m["deliveryStatus"], "sent", "settled by its reports, not failed as unconfirmed");
    assert_eq!(group_sends(&app).await.len(), 1, "sent exactly once");
}
