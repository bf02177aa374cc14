//! Malware scanning with a real ClamAV daemon (support/clamd.rs): a member's MMS with the EICAR
//! test file, a clean photo and an "infected" PDF keeps the photo and blocks the other two —
//! nothing of them in the store, the library, a ZIP or a member export; a leader's infected
//! upload is refused with 422 and nothing is sent or kept; while the scanner is down files wait
//! (CLAMD_REQUIRED) and pass once it is back; without a scanner files are kept "not scanned".

use std::time::Duration;

use serde_json::Value;
use sha2::Digest;

use crate::inbound_flow::{serve_fixture, settled_thread, CHURCH_NUMBER, MEMBER_NUMBER};
use crate::outbound::upload;
use crate::support::clamd::{TestClamd, EICAR, EICAR_SIGNATURE, PDF_MARKER, PDF_SIGNATURE};
use crate::support::{fixture, received_event, wait_for, Backend, Fixture, Options, Store, TestApp};

fn made(file: &str, mime: &str, bytes: Vec<u8>) -> Fixture {
    Fixture {
        file: file.to_owned(),
        sha256: hex::encode(sha2::Sha256::digest(&bytes)),
        bytes,
        mime: Some(mime.to_owned()),
        kind: None,
        width: None,
        height: None,
        duration: None,
    }
}

/// The EICAR test file, as a member's text attachment.
fn eicar_file() -> Fixture {
    made("eicar.txt", "text/plain", EICAR.to_vec())
}

/// A real PDF that carries the made-up signature's marker in a comment line.
fn infected_pdf() -> Fixture {
    let pdf = fixture("doc.pdf").bytes;
    let header_end = pdf.iter().position(|b| *b == b'\n').expect("a PDF header line") + 1;
    let mut bytes = pdf[..header_end].to_vec();
    bytes.extend_from_slice(format!("%{PDF_MARKER}\n").as_bytes());
    bytes.extend_from_slice(&pdf[header_end..]);
    made("bulletin.pdf", "application/pdf", bytes)
}

/// Whether any stored object holds these bytes.
fn store_holds(app: &TestApp, needle: &[u8]) -> bool {
    app.stored_files()
        .iter()
        .any(|p| std::fs::read(p).map(|b| b.windows(needle.len().max(1)).any(|w| w == needle)).unwrap_or(false))
}

fn media_of(thread: &Value) -> Vec<Value> {
    thread["data"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .flat_map(|m| m["media"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn by_name<'a>(media: &'a [Value], name: &str) -> &'a Value {
    media.iter().find(|m| m["name"] == name).unwrap_or_else(|| panic!("{name} in {media:?}"))
}

/// The dashboard's thread page, as `email` sees it.
async fn thread_page(app: &TestApp, email: &str, conversation: &str) -> String {
    let (cookie, _) = crate::time_zones::page_session(app, email).await;
    let res = app.http.get(app.url(&format!("/inbox/{conversation}"))).header("cookie", cookie).send().await;
    res.expect("page").text().await.expect("html")
}

async fn scanned_app(backend: Backend, store: Store, clamd: &TestClamd, extra: &[(&str, &str)]) -> Option<TestApp> {
    let mut options = Options::default().var("CLAMD_ADDRESS", &clamd.address);
    for (k, v) in extra {
        options = options.var(k, v);
    }
    TestApp::try_spawn(backend, store, options).await
}

async fn malware_in_an_mms(backend: Backend, store: Store) {
    let Some(clamd) = TestClamd::start() else { return };
    let Some(app) = scanned_app(backend, store, &clamd, &[]).await else { return };
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.admin(church, "pastor@grace.test").await;
    let (photo, eicar, pdf) = (fixture("photo.jpg"), eicar_file(), infected_pdf());
    let media =
        vec![serve_fixture(&app, &eicar).await, serve_fixture(&app, &photo).await, serve_fixture(&app, &pdf).await];
    let event = received_event("evt-malware", MEMBER_NUMBER, CHURCH_NUMBER, "Sunday's files", media);
    assert_eq!(app.post_webhook("/api/webhooks/telnyx/mms", &event).await.status(), 200);

    let list = app.get_json(&token, "/api/conversations").await;
    let conversation = list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
    let member = list["data"]["conversations"][0]["member"]["id"].as_str().expect("member").to_owned();
    let thread = settled_thread(&app, &token, &conversation).await;
    assert_eq!(thread["data"]["messages"][0]["content"], "Sunday's files", "the member's text is kept");
    let media = media_of(&thread);
    let kept = by_name(&media, "photo.jpg");
    assert_eq!((kept["status"].as_str(), kept["scan"]["state"].as_str()), (Some("stored"), Some("clean")));
    for (name, signature) in [("eicar.txt", EICAR_SIGNATURE), ("bulletin.pdf", PDF_SIGNATURE)] {
        let m = by_name(&media, name);
        assert_eq!(m["status"], "blocked", "{m}");
        assert_eq!(
            m["failureReason"].as_str(),
            Some(format!("Blocked: this file contains malware ({signature})").as_str()),
            "{m}"
        );
        assert_eq!((m["scan"]["state"].as_str(), m["scan"]["detail"].as_str()), (Some("infected"), Some(signature)));
        // Never served.
        let id = m["id"].as_str().expect("id");
        let res = app.get(&token, &format!("/api/media/{id}")).await;
        assert_eq!(res.status(), 404, "{name} is not served");
        assert!(res.text().await.expect("text").contains("malware"));
    }

    // The thread page says so, naming the signature.
    let html = thread_page(&app, "pastor@grace.test", &conversation).await;
    assert!(html.contains(&format!("Blocked: this file contains malware ({EICAR_SIGNATURE})")), "{html}");
    assert!(html.contains(&format!("Blocked: this file contains malware ({PDF_SIGNATURE})")));
    assert!(!html.contains("Not scanned for viruses"), "the photo was scanned");

    // Nothing of them in the store; the photo is there.
    assert!(!store_holds(&app, EICAR), "the EICAR file reached the store");
    assert!(!store_holds(&app, PDF_MARKER.as_bytes()), "the infected PDF reached the store");
    assert!(store_holds(&app, &photo.bytes), "the clean photo is stored");

    // The library, a ZIP of everything, the member's export: the photo alone.
    let library = app.get_json(&token, "/api/media").await;
    let names: Vec<&str> =
        library["data"]["media"].as_array().expect("media").iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(names, ["photo.jpg"]);
    let res = app
        .http
        .post(app.url("/api/media/export"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "filter": {} }))
        .send()
        .await
        .expect("export");
    assert_eq!(res.status(), 200);
    let zip = crate::operations::zip_contents(&res.bytes().await.expect("zip"));
    assert_eq!(zip.iter().map(|(_, sha)| sha.as_str()).collect::<Vec<_>>(), [photo.sha256.as_str()]);
    let res = app.get(&token, &format!("/api/members/{member}/export")).await;
    assert_eq!(res.status(), 200);
    let export = crate::member_export::read_zip(&res.bytes().await.expect("zip"));
    let files: Vec<&String> = export.names.iter().filter(|n| n.starts_with("media/")).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    for sha in export.sha256.values() {
        assert!(*sha != eicar.sha256 && *sha != pdf.sha256, "a blocked file in the member export");
    }
    assert!(export
        .transcript
        .contains(&format!("not included: Blocked: this file contains malware ({EICAR_SIGNATURE})")));

    // Audited as the system's action, and counted.
    let audit = app.get_json(&token, "/api/audit").await;
    let blocked: Vec<&Value> = audit["data"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "media.blocked")
        .collect();
    assert_eq!(blocked.len(), 2, "{audit}");
    assert!(blocked.iter().all(|e| e["actorType"] == "system"), "{blocked:?}");
    let metrics = app.http.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("koinonia_media_blocked_total{direction=\"inbound\"} 2"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malware_in_an_mms_sqlite_local() {
    malware_in_an_mms(Backend::Sqlite, Store::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malware_in_an_mms_sqlite_s3() {
    malware_in_an_mms(Backend::Sqlite, Store::S3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malware_in_an_mms_postgres_local() {
    malware_in_an_mms(Backend::Postgres, Store::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malware_in_an_mms_postgres_s3() {
    malware_in_an_mms(Backend::Postgres, Store::S3).await;
}

async fn conversation_of_a_member(app: &TestApp, token: &str) -> String {
    let event = received_event("evt-hello", MEMBER_NUMBER, CHURCH_NUMBER, "Hello", vec![]);
    assert_eq!(app.post_webhook("/api/webhooks/telnyx/mms", &event).await.status(), 200);
    let list = app.get_json(token, "/api/conversations").await;
    list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infected_reply_is_refused_and_nothing_is_sent_or_kept() {
    let Some(clamd) = TestClamd::start() else { return };
    let Some(app) = scanned_app(Backend::Sqlite, Store::Local, &clamd, &[]).await else { return };
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    let conversation = conversation_of_a_member(&app, &token).await;
    let res = upload(&app, &token, &conversation, "notes.txt", EICAR.to_vec(), Some("Here is the file")).await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.expect("json");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains(&format!("Blocked: this file contains malware ({EICAR_SIGNATURE})")), "{body}");
    assert_eq!(app.count("messages WHERE direction = 'outbound'").await, 0, "nothing sent");
    assert_eq!(app.count("attachments").await, 0, "nothing recorded");
    assert_eq!(app.count("jobs WHERE kind = 'message.send'").await, 0);
    assert!(app.stored_files().is_empty(), "nothing kept: {:?}", app.stored_files());
    assert_eq!(app.count("audit_log WHERE action = 'media.blocked'").await, 1, "audited");

    // A clean file goes, scanned.
    let res = upload(&app, &token, &conversation, "photo.jpg", fixture("photo.jpg").bytes, None).await;
    assert_eq!(res.status(), 201);
    assert_eq!(app.count("attachments WHERE scan_state = 'clean'").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_scanner_is_down_files_wait_then_pass_once_it_is_back() {
    let Some(mut clamd) = TestClamd::start() else { return };
    let extra = [("CLAMD_REQUIRED", "true"), ("MEDIA_FETCH_MAX_ATTEMPTS", "20"), ("CLAMD_TIMEOUT_SECONDS", "2")];
    let Some(app) = scanned_app(Backend::Sqlite, Store::Local, &clamd, &extra).await else { return };
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    clamd.stop();

    let photo = fixture("photo.jpg");
    let media = vec![serve_fixture(&app, &photo).await];
    let event = received_event("evt-while-down", MEMBER_NUMBER, CHURCH_NUMBER, "A photo", media);
    assert_eq!(app.post_webhook("/api/webhooks/telnyx/mms", &event).await.status(), 200);
    let list = app.get_json(&token, "/api/conversations").await;
    let conversation = list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
    wait_for("the file to wait for the scanner", Duration::from_secs(30), || async {
        let t = app.get_json(&token, &format!("/api/conversations/{conversation}")).await;
        let m = media_of(&t).into_iter().next()?;
        (m["status"] == "pending" && m["failureReason"].as_str()?.contains("waiting for the virus scanner"))
            .then_some(())
    })
    .await;
    assert!(app.stored_files().is_empty(), "not released while unscanned");
    assert_eq!(app.get(&token, "/api/media").await.status(), 200);
    assert_eq!(app.get_json(&token, "/api/media").await["data"]["media"].as_array().map(Vec::len), Some(0));

    tokio::task::block_in_place(|| clamd.run());
    let thread = settled_thread(&app, &token, &conversation).await;
    let m = &media_of(&thread)[0];
    assert_eq!((m["status"].as_str(), m["scan"]["state"].as_str()), (Some("stored"), Some("clean")), "{m}");
    assert!(store_holds(&app, &photo.bytes));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_scanner_files_are_kept_not_scanned_and_say_why() {
    // No address: scanning is off.
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    let media = vec![serve_fixture(&app, &eicar_file()).await];
    let event = received_event("evt-off", MEMBER_NUMBER, CHURCH_NUMBER, "Unscanned", media);
    assert_eq!(app.post_webhook("/api/webhooks/telnyx/mms", &event).await.status(), 200);
    let list = app.get_json(&token, "/api/conversations").await;
    let conversation = list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
    let m = media_of(&settled_thread(&app, &token, &conversation).await).remove(0);
    assert_eq!((m["status"].as_str(), m["scan"]["state"].as_str()), (Some("stored"), Some("not_scanned")), "{m}");
    assert!(m["scan"]["detail"].as_str().is_some_and(|d| d.contains("CLAMD_ADDRESS")), "{m}");
    let html = thread_page(&app, "pastor@grace.test", &conversation).await;
    assert!(html.contains("Not scanned for viruses"), "the page says so, quietly");

    // An address nobody answers at, scanning not required: kept, not scanned, with the reason.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let options = Options::default().var("CLAMD_ADDRESS", &format!("tcp://127.0.0.1:{port}"));
    let Some(app) = TestApp::try_spawn(Backend::Sqlite, Store::Local, options).await else { return };
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    let media = vec![serve_fixture(&app, &fixture("photo.jpg")).await];
    let event = received_event("evt-unreachable", MEMBER_NUMBER, CHURCH_NUMBER, "Unreachable", media);
    assert_eq!(app.post_webhook("/api/webhooks/telnyx/mms", &event).await.status(), 200);
    let list = app.get_json(&token, "/api/conversations").await;
    let conversation = list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
    let m = media_of(&settled_thread(&app, &token, &conversation).await).remove(0);
    assert_eq!((m["status"].as_str(), m["scan"]["state"].as_str()), (Some("stored"), Some("not_scanned")), "{m}");
    assert!(m["scan"]["detail"].as_str().is_some_and(|d| d.contains("cannot be reached")), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_scanner_detects_eicar() {
    use koinonia::ops::doctor::{self, Level};
    let find = |checks: &[doctor::Check]| checks.iter().find(|c| c.name == "virus scanner").cloned().expect("check");
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    let off = find(&doctor::run(&app.state.config).await);
    assert_eq!(off.level, Level::Ok, "recommended, not required: {off}");
    assert!(off.sentence.contains("CLAMD_ADDRESS"), "{off}");

    let Some(clamd) = TestClamd::start() else { return };
    let Some(app) = scanned_app(Backend::Sqlite, Store::Local, &clamd, &[]).await else { return };
    let on = find(&doctor::run(&app.state.config).await);
    // The test signatures carry no date: the check says so, after proving EICAR is detected.
    assert_eq!(on.level, Level::Warn, "{on}");
    assert!(on.sentence.contains("detects the EICAR test file"), "{on}");
    drop(clamd);
    let down = find(&doctor::run(&app.state.config).await);
    assert_eq!(down.level, Level::Error, "{down}");
    assert!(down.sentence.contains("cannot be reached"), "{down}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescan_blocks_stored_files_known_bad_today() {
    use koinonia::flows::rescan::{rescan, RescanReport};
    // Stored while no scanner was set up: kept, not scanned.
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.admin(church, "pastor@grace.test").await;
    let (photo, pdf) = (fixture("photo.jpg"), infected_pdf());
    let media = vec![serve_fixture(&app, &photo).await, serve_fixture(&app, &pdf).await];
    let event = received_event("evt-before-scanning", MEMBER_NUMBER, CHURCH_NUMBER, "Old files", media);
    assert_eq!(app.post_webhook("/api/webhooks/telnyx/mms", &event).await.status(), 200);
    let list = app.get_json(&token, "/api/conversations").await;
    let conversation = list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
    let before = media_of(&settled_thread(&app, &token, &conversation).await);
    assert!(before.iter().all(|m| m["status"] == "stored" && m["scan"]["state"] == "not_scanned"), "{before:?}");
    assert!(store_holds(&app, PDF_MARKER.as_bytes()));

    let Some(clamd) = TestClamd::start() else { return };
    let clamd = koinonia::scan::Clamd::new(
        koinonia::scan::Address::parse(&clamd.address).expect("address"),
        Duration::from_secs(10),
    );
    let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
    let none = rescan(&app.state.retention(), &clamd, Some(tomorrow)).await.expect("rescan");
    assert_eq!(none, RescanReport::default(), "--since leaves older files alone");
    let report = rescan(&app.state.retention(), &clamd, None).await.expect("rescan");
    assert_eq!(report, RescanReport { scanned: 2, clean: 1, blocked: 1, unchecked: 0 });

    let after = media_of(&app.get_json(&token, &format!("/api/conversations/{conversation}")).await);
    let blocked = by_name(&after, "bulletin.pdf");
    assert_eq!(blocked["status"], "blocked", "{blocked}");
    assert_eq!(blocked["scan"]["detail"], PDF_SIGNATURE);
    assert_eq!(by_name(&after, "photo.jpg")["scan"]["state"], "clean");
    assert!(!store_holds(&app, PDF_MARKER.as_bytes()), "the blocked file left the store");
    assert!(store_holds(&app, &photo.bytes));
    let id = blocked["id"].as_str().expect("id");
    assert_eq!(app.get(&token, &format!("/api/media/{id}")).await.status(), 404);
    assert_eq!(app.count("audit_log WHERE action = 'media.blocked'").await, 1);

    // Once blocked, a file is not scanned again.
    let again = rescan(&app.state.retention(), &clamd, None).await.expect("rescan");
    assert_eq!(again, RescanReport { scanned: 1, clean: 1, blocked: 0, unchecked: 0 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_longer_than_the_scanner_takes_are_handled_as_configured() {
    let Some(clamd) = TestClamd::start() else { return };
    // The test clamd takes 4 MB (StreamMaxLength); this text file is 5 MB.
    let big = made("minutes.txt", "text/plain", "Minutes of the meeting. ".repeat(5 << 20 >> 4).into_bytes());
    assert!(big.bytes.len() > 4 << 20);
    for (policy, status, state) in [("not_scanned", "stored", Some("not_scanned")), ("refuse", "failed", None)] {
        let extra = [("CLAMD_TOO_LARGE", policy)];
        let Some(app) = scanned_app(Backend::Sqlite, Store::Local, &clamd, &extra).await else { return };
        let church = app.church("Grace", CHURCH_NUMBER).await;
        let token = app.leader(church, "pastor@grace.test").await;
        let media = vec![serve_fixture(&app, &big).await];
        let event = received_event("evt-big", MEMBER_NUMBER, CHURCH_NUMBER, "The minutes", media);
        assert_eq!(app.post_webhook("/api/webhooks/telnyx/mms", &event).await.status(), 200);
        let list = app.get_json(&token, "/api/conversations").await;
        let conversation = list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
        let m = media_of(&settled_thread(&app, &token, &conversation).await).remove(0);
        assert_eq!(m["status"].as_str(), Some(status), "{policy}: {m}");
        assert_eq!(m["scan"]["state"].as_str(), state, "{policy}: {m}");
        let why = if policy == "refuse" { m["failureReason"].as_str() } else { m["scan"]["detail"].as_str() };
        assert!(why.is_some_and(|w| w.contains("longer than the virus scanner accepts")), "{policy}: {m}");
        assert_eq!(store_holds(&app, b"Minutes of the meeting."), policy == "not_scanned", "{policy}");
    }
}
