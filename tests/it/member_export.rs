//! `GET /api/members/:id/export`: everything kept about one member as a ZIP, read back with a real
//! ZIP reader (Python's zipfile); and the thread page's admin actions (export link, erase form).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::inbound_flow::{serve_fixture, settled_thread, CHURCH_NUMBER, MEMBER_NUMBER};
use crate::support::{fixture, received_event, Backend, Store, TestApp};

const OTHER_MEMBER: &str = "+13125550002";

/// What Python's zipfile reads in an archive: entry names, the JSON and text files, and the
/// SHA-256 of every entry.
#[derive(Debug)]
pub(crate) struct Archive {
    pub names: Vec<String>,
    pub member: Value,
    pub messages: Value,
    pub transcript: String,
    pub sha256: BTreeMap<String, String>,
}

pub(crate) fn read_zip(bytes: &[u8]) -> Archive {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("export.zip");
    std::fs::write(&path, bytes).expect("write zip");
    const SCRIPT: &str = r#"
import hashlib, json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    bad = z.testzip()
    assert bad is None, f"corrupt entry {bad}"
    names = z.namelist()
    print(json.dumps({
        "names": names,
        "member": json.loads(z.read("member.json")),
        "messages": json.loads(z.read("messages.json")),
        "transcript": z.read("messages.txt").decode("utf-8"),
        "sha256": {n: hashlib.sha256(z.read(n)).hexdigest() for n in names},
    }))
"#;
    let out = std::process::Command::new("python3").arg("-c").arg(SCRIPT).arg(&path).output().expect("python3");
    assert!(out.status.success(), "zipfile: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    Archive {
        names: v["names"].as_array().expect("names").iter().map(|n| n.as_str().expect("name").to_owned()).collect(),
        member: v["member"].clone(),
        messages: v["messages"].clone(),
        transcript: v["transcript"].as_str().expect("transcript").to_owned(),
        sha256: serde_json::from_value(v["sha256"].clone()).expect("hashes"),
    }
}

async fn conversation_of(app: &TestApp, token: &str, last4: &str) -> (String, String) {
    let list = app.get_json(token, "/api/conversations").await;
    let c = list["data"]["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .find(|c| c["member"]["phone"].as_str().is_some_and(|p| p.ends_with(last4)))
        .cloned()
        .expect("conversation");
    (c["id"].as_str().expect("id").to_owned(), c["member"]["id"].as_str().expect("member").to_owned())
}

async fn exporting_one_member(app: TestApp) {
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.admin(church, "admin@grace.test").await;
    let helper = app.leader(church, "helper@grace.test").await;
    let (photo, doc, voice, clip, bin) =
        (fixture("photo.jpg"), fixture("doc.pdf"), fixture("voice.wav"), fixture("clip.mp4"), fixture("binary.bin"));
    let mut ours = Vec::new();
    for f in [&photo, &doc] {
        ours.push(serve_fixture(&app, f).await);
    }
    let theirs = vec![serve_fixture(&app, &voice).await, serve_fixture(&app, &clip).await];
    let refused = vec![serve_fixture(&app, &bin).await];
    for (id, from, text, media) in [
        ("x-1", MEMBER_NUMBER, "Photos from Sunday\nand the bulletin", ours),
        ("x-2", OTHER_MEMBER, "Voice note from the other member", theirs),
        ("x-3", MEMBER_NUMBER, "A file you cannot keep", refused),
    ] {
        assert_eq!(
            app.post_webhook("/api/webhooks/telnyx/mms", &received_event(id, from, CHURCH_NUMBER, text, media))
                .await
                .status(),
            200
        );
    }
    let (conversation, member) = conversation_of(&app, &token, "0001").await;
    let (other_conversation, _) = conversation_of(&app, &token, "0002").await;
    let res = app
        .http
        .post(app.url(&format!("/api/conversations/{conversation}/reply")))
        .bearer_auth(&token)
        .json(&json!({"content": "Thank you, Ruth!"}))
        .send()
        .await
        .expect("reply");
    assert_eq!(res.status(), 201);
    settled_thread(&app, &token, &conversation).await;
    settled_thread(&app, &token, &other_conversation).await;
    let res = app
        .http
        .patch(app.url(&format!("/api/members/{member}")))
        .bearer_auth(&token)
        .json(&json!({"firstName": "Ruth", "lastName": "Moabite"}))
        .send()
        .await
        .expect("name");
    assert_eq!(res.status(), 200);

    let path = format!("/api/members/{member}/export");
    assert_eq!(app.get(&helper, &path).await.status(), 403, "admins only");
    let other = app.church("Hope", "+15551239999").await;
    let other_admin = app.admin(other, "admin@hope.test").await;
    assert_eq!(app.get(&other_admin, &path).await.status(), 404, "another church's member");

    let res = app.get(&token, &path).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let disposition = res.headers()["content-disposition"].to_str().expect("ascii").to_owned();
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(disposition, format!("attachment; filename=\"koinonia-member-ruth-moabite-{today}.zip\""));
    let zip = read_zip(&res.bytes().await.expect("body"));

    let mut names = zip.names.clone();
    names.sort();
    let expected_media = [format!("media/{today} doc.pdf"), format!("media/{today} photo.jpg")];
    let mut expected = vec!["member.json".to_owned(), "messages.json".into(), "messages.txt".into()];
    expected.extend(expected_media.iter().cloned());
    expected.sort();
    assert_eq!(names, expected, "exactly this member's stored files");
    assert_eq!(zip.sha256[&expected_media[0]], doc.sha256, "the original bytes");
    assert_eq!(zip.sha256[&expected_media[1]], photo.sha256, "the original bytes");
    assert_eq!(zip.member["phone"], MEMBER_NUMBER, "the full number");
    assert_eq!(zip.member["id"], member.as_str());
    assert_eq!(zip.member["firstName"], "Ruth");
    assert_eq!(zip.member["optedOut"], false);

    let messages = zip.messages.as_array().expect("messages");
    let texts: Vec<&str> = messages.iter().map(|m| m["content"].as_str().expect("content")).collect();
    assert_eq!(texts, ["Photos from Sunday\nand the bulletin", "A file you cannot keep", "Thank you, Ruth!"]);
    assert!(messages.iter().all(|m| m["id"].is_string() && m["createdAt"].is_string()));
    assert_eq!(messages[2]["direction"], "outbound");
    let files: Vec<&Value> = messages.iter().flat_map(|m| m["media"].as_array().expect("media")).collect();
    assert_eq!(files.len(), 3, "every attachment is described: {files:?}");
    let failed = files.iter().find(|f| f["status"] == "failed").expect("the refused file is listed");
    assert_eq!(failed["name"], "binary.bin");
    assert!(failed["file"].is_null() && failed["failureReason"].is_string(), "{failed}");
    let stored: Vec<&str> = files.iter().filter_map(|f| f["file"].as_str()).collect();
    assert_eq!(stored, [expected_media[1].as_str(), expected_media[0].as_str()]);
    assert_eq!(files[0]["sha256"], photo.sha256.as_str());

    assert!(zip.transcript.contains("Ruth Moabite (+13125550001)"), "{}", zip.transcript);
    assert!(zip.transcript.contains("  Photos from Sunday\n  and the bulletin\n"), "{}", zip.transcript);
    assert!(zip.transcript.contains(&format!("[image: photo.jpg] {}", expected_media[1])), "{}", zip.transcript);
    assert!(zip.transcript.contains("binary.bin] not included"), "{}", zip.transcript);
    assert!(zip.transcript.contains("Church"), "{}", zip.transcript);

    // Nothing of the other member.
    let everything = format!("{} {} {}", zip.member, zip.messages, zip.transcript);
    for theirs in ["Voice note from the other member", "5550002", "voice.wav", "clip.mp4", &other_conversation] {
        assert!(!everything.contains(theirs), "{theirs} leaked into the export");
    }
    for sha in zip.sha256.values() {
        assert!(*sha != voice.sha256 && *sha != clip.sha256, "another member's file in the archive");
    }

    let audit = app.get_json(&token, "/api/audit").await;
    let entry = audit["data"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["action"] == "member.export")
        .cloned()
        .expect("audited");
    assert_eq!(entry["subjectId"], member.as_str());
    assert_eq!(entry["detail"]["files"], 2);
    assert!(!entry.to_string().contains("5550001"), "the audit row holds no number: {entry}");
}

crate::matrix!(member_export, all, exporting_one_member);

/// The thread header offers admins the export link and the erase form; others see neither, and
/// the erase form needs the page's CSRF token.
#[tokio::test]
async fn admins_export_and_erase_from_the_thread_page() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    let church = app.church("Grace", CHURCH_NUMBER).await;
    app.admin(church, "admin@grace.test").await;
    let helper = app.leader(church, "helper@grace.test").await;
    app.post_webhook("/api/webhooks/telnyx/mms", &received_event("t-1", MEMBER_NUMBER, CHURCH_NUMBER, "Hi", vec![]))
        .await;
    let (conversation, member) = conversation_of(&app, &helper, "0001").await;
    let cookie_of = |email: &'static str| {
        let app = &app;
        async move {
            let res = app
                .http
                .post(app.url("/login"))
                .form(&[("email", email), ("password", "correct horse battery")])
                .send()
                .await
                .expect("login");
            res.headers()["set-cookie"].to_str().expect("cookie").split(';').next().expect("pair").to_owned()
        }
    };
    let page = |cookie: String| {
        let app = &app;
        let conversation = conversation.clone();
        async move {
            let res = app
                .http
                .get(app.url(&format!("/inbox/{conversation}")))
                .header("cookie", cookie)
                .send()
                .await
                .expect("page");
            assert_eq!(res.status(), 200);
            res.text().await.expect("html")
        }
    };
    let admin_cookie = cookie_of("admin@grace.test").await;
    let helper_cookie = cookie_of("helper@grace.test").await;
    let html = page(admin_cookie.clone()).await;
    assert!(html.contains(&format!("href=\"/api/members/{member}/export\"")) && html.contains("Export member data"));
    assert!(html.contains(&format!("action=\"/inbox/{conversation}/erase\"")) && html.contains("Erase member…"));
    assert!(html.contains("data-confirm=") && html.contains("/static/member-actions.js"));
    let helper_html = page(helper_cookie.clone()).await;
    assert!(!helper_html.contains("Export member data") && !helper_html.contains("Erase member"), "not for helpers");
    let script = app.http.get(app.url("/static/member-actions.js")).send().await.expect("script");
    assert_eq!(script.status(), 200);
    assert!(script.text().await.expect("js").contains("confirm("));

    // The link works with the cookie session alone (a GET).
    let res = app
        .http
        .get(app.url(&format!("/api/members/{member}/export")))
        .header("cookie", &admin_cookie)
        .send()
        .await
        .expect("export");
    assert_eq!(res.status(), 200);
    assert_eq!(read_zip(&res.bytes().await.expect("zip")).member["phone"], MEMBER_NUMBER);

    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the form's CSRF token")
        .to_owned();
    let erase = |cookie: &str, csrf: &str| {
        app.http
            .post(app.url(&format!("/inbox/{conversation}/erase")))
            .header("cookie", cookie)
            .form(&[("csrf", csrf)])
            .send()
    };
    assert_eq!(erase(&admin_cookie, "forged").await.expect("erase").status(), 403, "needs the CSRF token");
    let helper_csrf =
        helper_html.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).expect("csrf").to_owned();
    assert_eq!(erase(&helper_cookie, &helper_csrf).await.expect("erase").status(), 403, "admins only");
    assert_eq!(app.count("members").await, 1);
    let res = erase(&admin_cookie, &csrf).await.expect("erase");
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/inbox");
    assert_eq!(app.count("members").await, 0);
    assert_eq!(app.count("audit_log WHERE action = 'member.erase'").await, 1);
}
