//! Operations: retention, the audit log, abuse limits.

use std::time::Duration;

use koinonia::limits::{LimitSettings, Rate};
use serde_json::{json, Value};

use crate::inbound_flow::{serve_fixture, settled_thread, CHURCH_NUMBER, MEMBER_NUMBER};
use crate::support::{fixture, received_event, Backend, Options, Store, TestApp};

const MMS: &str = "/api/webhooks/telnyx/mms";

/// A member sends three files; returns (token, conversation, attachment ids).
async fn three_files(app: &TestApp) -> (String, String, Vec<String>) {
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    let mut media = Vec::new();
    for f in ["photo.jpg", "doc.pdf", "voice.amr"] {
        media.push(serve_fixture(app, &fixture(f)).await);
    }
    let res =
        app.post_webhook(MMS, &received_event("evt-r", MEMBER_NUMBER, CHURCH_NUMBER, "Keep the words", media)).await;
    assert_eq!(res.status(), 200);
    let list = app.get_json(&token, "/api/conversations").await;
    let conv = list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
    let thread = settled_thread(app, &token, &conv).await;
    let ids = thread["data"]["messages"][0]["media"]
        .as_array()
        .expect("media")
        .iter()
        .map(|a| a["id"].as_str().expect("id").to_owned())
        .collect();
    (token, conv, ids)
}

async fn retention_sweeps(app: TestApp) {
    let (token, conv, ids) = three_files(&app).await;
    let previews = app.preview_files().await;
    assert_eq!(app.stored_files().len(), 3 + previews);
    // The leader keeps the first file.
    let res = app
        .http
        .patch(app.url(&format!("/api/attachments/{}", ids[0])))
        .bearer_auth(&token)
        .json(&json!({"keep": true}))
        .send()
        .await
        .expect("keep");
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.expect("json")["data"]["keep"], true);
    // Nothing is old enough yet.
    let now = koinonia::clock::now();
    let report = koinonia::flows::retention::sweep(&app.state.retention(), 365, now).await.expect("sweep");
    assert_eq!(report.deleted, 0);
    // A year and a month later, two instances sweep at once.
    app.exec_at("UPDATE attachments SET stored_at = $1", now - chrono::Duration::days(400)).await;
    let deps = app.state.retention();
    let (a, b) = tokio::join!(
        koinonia::flows::retention::sweep(&deps, 365, now),
        koinonia::flows::retention::sweep(&deps, 365, now)
    );
    let (a, b) = (a.expect("sweep a"), b.expect("sweep b"));
    assert_eq!(a.deleted + b.deleted, 2, "each file deleted once: {a:?} {b:?}");
    assert_eq!(a.failed + b.failed, 0);
    assert_eq!(app.count("audit_log WHERE action = 'media.delete'").await, 2);
    let previews = app.preview_files().await;
    assert_eq!(app.stored_files().len(), 1 + previews, "only the kept file is left");
    let thread = app.get_json(&token, &format!("/api/conversations/{conv}")).await;
    let m = &thread["data"]["messages"][0];
    assert_eq!(m["content"], "Keep the words", "the text stays");
    let statuses: Vec<&str> =
        m["media"].as_array().expect("media").iter().map(|a| a["status"].as_str().unwrap_or("")).collect();
    assert_eq!(statuses, ["stored", "deleted", "deleted"]);
    let res = app.get(&token, &format!("/api/media/{}", ids[1])).await;
    assert_eq!(res.status(), 410);
    let body: Value = res.json().await.expect("json");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("media removed after 365 days")), "{body}");
    assert_eq!(app.get(&token, &format!("/api/media/{}", ids[0])).await.status(), 302, "the kept file is still there");
    // A later sweep has nothing left to do.
    let again = koinonia::flows::retention::sweep(&app.state.retention(), 365, now).await.expect("sweep");
    assert_eq!(again.deleted, 0);
}

crate::matrix!(retention, all, retention_sweeps);

#[tokio::test]
async fn the_audit_log_pages_through_a_churchs_actions_only() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    let (token, _conv, ids) = three_files(&app).await;
    assert_eq!(app.get(&token, &format!("/api/media/{}", ids[0])).await.status(), 302);
    let res = app
        .http
        .patch(app.url(&format!("/api/attachments/{}", ids[1])))
        .bearer_auth(&token)
        .json(&json!({"keep": true}))
        .send()
        .await
        .expect("keep");
    assert_eq!(res.status(), 200);
    let other = app.church("Hope", "+15551239999").await;
    let other_token = app.leader(other, "b@hope.test").await;

    let page = app.get_json(&token, "/api/audit?limit=2").await;
    let entries = page["data"]["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["action"], "media.keep", "newest first");
    assert_eq!(entries[1]["action"], "media.view");
    assert_eq!(entries[1]["actorType"], "leader");
    assert_eq!(entries[1]["actorEmail"], "pastor@grace.test");
    assert_eq!(entries[1]["subjectType"], "attachment");
    assert_eq!(entries[1]["subjectId"], ids[0].as_str());
    assert_eq!(entries[1]["clientAddr"], "127.0.0.1");
    assert!(entries[1]["createdAt"].as_str().is_some());
    let cursor = page["data"]["nextCursor"].as_str().expect("more").to_owned();
    let rest = app.get_json(&token, &format!("/api/audit?limit=2&cursor={cursor}")).await;
    assert_eq!(rest["data"]["entries"][0]["action"], "leader.login");
    assert_eq!(rest["data"]["nextCursor"], Value::Null);
    // Another church's leader sees only their own login.
    let theirs = app.get_json(&other_token, "/api/audit").await;
    let actions: Vec<&str> = theirs["data"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(actions, ["leader.login"]);
    assert_eq!(
        app.http
            .patch(app.url(&format!("/api/attachments/{}", ids[2])))
            .bearer_auth(&other_token)
            .json(&json!({"keep": true}))
            .send()
            .await
            .expect("keep")
            .status(),
        404
    );
}

fn tight() -> LimitSettings {
    let quick = Rate { burst: 3, every: Duration::from_millis(1500) };
    LimitSettings {
        // Slower than three password checks can ever take, so the fourth attempt is always limited.
        login_per_account: Rate { burst: 3, every: Duration::from_secs(3) },
        login_per_address: Rate { burst: 50, every: Duration::from_millis(100) },
        replies_per_leader: quick,
        uploads_per_leader: quick,
        bad_webhooks_per_address: quick,
        ..LimitSettings::default()
    }
}

async fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).expect("retry-after")
}

#[tokio::test]
async fn abuse_limits_answer_429_and_recover() {
    let options = Options { limits: Some(tight()), ..Default::default() };
    let Some(app) = TestApp::try_spawn(Backend::Sqlite, Store::Local, options).await else { return };
    let church = app.church("Grace", CHURCH_NUMBER).await;
    koinonia::ops::cli::create_leader(
        &app.state.db,
        &app.state.passwords,
        church,
        "pastor@grace.test",
        "correct horse battery",
        false,
    )
    .await
    .expect("leader");

    // Logins per account.
    let login = |password: &'static str| {
        app.http
            .post(app.url("/api/auth/login"))
            .json(&json!({"email": "pastor@grace.test", "password": password}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(login("wrong password").await.expect("login").status(), 401);
    }
    let limited = login("correct horse battery").await.expect("login");
    assert_eq!(limited.status(), 429);
    let wait = retry_after(&limited).await;
    assert!((1..=3).contains(&wait), "{wait}");
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let ok = login("correct horse battery").await.expect("login");
    assert_eq!(ok.status(), 200, "recovers after retry-after");
    let token = ok.json::<Value>().await.expect("json")["data"]["token"].as_str().expect("token").to_owned();

    // Forged webhooks per address; a correctly signed one is never limited.
    let forged = || {
        app.http
            .post(app.url(MMS))
            .header("telnyx-signature-ed25519", "AAAA")
            .header("telnyx-timestamp", chrono::Utc::now().timestamp().to_string())
            .body("{}")
            .send()
    };
    for _ in 0..3 {
        assert_eq!(forged().await.expect("forged").status(), 401);
    }
    let res = forged().await.expect("forged");
    assert_eq!(res.status(), 429);
    assert!(retry_after(&res).await >= 1);
    let good = app.post_webhook(MMS, &received_event("evt-good", MEMBER_NUMBER, CHURCH_NUMBER, "Real", vec![])).await;
    assert_eq!(good.status(), 200, "signed webhooks pass while forgeries are limited");

    // Replies per leader.
    let list = app.get_json(&token, "/api/conversations").await;
    let conv = list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
    let reply = || {
        app.http
            .post(app.url(&format!("/api/conversations/{conv}/reply")))
            .bearer_auth(&token)
            .json(&json!({"content": "hi"}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(reply().await.expect("reply").status(), 201);
    }
    let res = reply().await.expect("reply");
    assert_eq!(res.status(), 429);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["success"], false);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(reply().await.expect("reply").status(), 201);
}

/// Sum of a metric's samples (all label sets) in Prometheus text; panics on a malformed line.
fn metric_sum(text: &str, name: &str) -> f64 {
    let mut sum = 0.0;
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("malformed line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let metric = series.split('{').next().unwrap_or(series);
        assert!(
            metric.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if series.contains('{') {
            assert!(series.ends_with('}'), "unclosed labels in {line:?}");
        }
        if metric == name {
            sum += value;
        }
    }
    sum
}

#[tokio::test]
async fn metrics_parse_and_move_with_traffic() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    app.church("Grace", CHURCH_NUMBER).await;
    let scrape =
        || async { app.http.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text") };
    let before = scrape().await;
    let received = metric_sum(&before, "koinonia_webhooks_received_total");
    for i in 0..3 {
        let res =
            app.post_webhook(MMS, &received_event(&format!("m-{i}"), MEMBER_NUMBER, CHURCH_NUMBER, "hi", vec![])).await;
        assert_eq!(res.status(), 200);
    }
    let after = scrape().await;
    assert!(metric_sum(&after, "koinonia_webhooks_received_total") >= received + 3.0);
    assert!(after.contains("koinonia_http_request_duration_seconds"), "HTTP latencies");
    assert!(after.contains("koinonia_jobs{state=\"queued\"}"), "queue depth");
    assert!(after.contains("koinonia_jobs_oldest_queued_age_seconds"));
    // No phone number ever appears in metrics.
    assert!(!after.contains("5550001"));
}

#[tokio::test]
async fn the_media_library_lists_and_filters_a_churchs_files() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    let (token, conv, _ids) = three_files(&app).await;
    let photo = serve_fixture(&app, &fixture("image.png")).await;
    let res = app.post_webhook(MMS, &received_event("lib-2", "+13125550077", CHURCH_NUMBER, "", vec![photo])).await;
    assert_eq!(res.status(), 200);
    let list = app.get_json(&token, "/api/conversations").await;
    let other_conv = list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
    settled_thread(&app, &token, &other_conv).await;
    let member = app.get_json(&token, &format!("/api/conversations/{conv}")).await["data"]["conversation"]["member"]
        ["id"]
        .as_str()
        .expect("member")
        .to_owned();

    let all = app.get_json(&token, "/api/media").await;
    let media = all["data"]["media"].as_array().expect("media");
    assert_eq!(media.len(), 4);
    assert_eq!(media[0]["mimeType"], "image/png", "newest first");
    assert!(media
        .iter()
        .all(|m| m["status"] == "stored" && m["conversationId"].is_string() && m["createdAt"].is_string()));
    let count = |v: &Value| v["data"]["media"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(count(&app.get_json(&token, "/api/media?type=image").await), 2);
    assert_eq!(count(&app.get_json(&token, "/api/media?type=document").await), 1);
    assert_eq!(count(&app.get_json(&token, &format!("/api/media?memberId={member}")).await), 3);
    assert_eq!(count(&app.get_json(&token, &format!("/api/media?conversationId={other_conv}")).await), 1);
    let today = chrono::Utc::now().date_naive();
    let tomorrow = today.succ_opt().expect("date");
    let yesterday = today.pred_opt().expect("date");
    assert_eq!(count(&app.get_json(&token, &format!("/api/media?from={today}&to={today}")).await), 4);
    assert_eq!(count(&app.get_json(&token, &format!("/api/media?from={tomorrow}")).await), 0);
    assert_eq!(count(&app.get_json(&token, &format!("/api/media?to={yesterday}")).await), 0);
    let page = app.get_json(&token, "/api/media?limit=3").await;
    assert_eq!(count(&page), 3);
    let cursor = page["data"]["nextCursor"].as_str().expect("cursor").to_owned();
    let rest = app.get_json(&token, &format!("/api/media?limit=3&cursor={cursor}")).await;
    assert_eq!(count(&rest), 1);
    assert_eq!(rest["data"]["nextCursor"], Value::Null);
    assert_eq!(app.get(&token, "/api/media?type=spreadsheet").await.status(), 400);
    assert_eq!(app.get(&token, "/api/media?from=soon").await.status(), 400);
    let other = app.church("Hope", "+15551239999").await;
    let other_token = app.leader(other, "b@hope.test").await;
    assert_eq!(count(&app.get_json(&other_token, "/api/media").await), 0, "another church sees none");
}

/// Names and SHA-256 of a ZIP's entries, read by Python's zipfile (an independent reader), after
/// its integrity test.
pub(crate) fn zip_contents(bytes: &[u8]) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("export.zip");
    std::fs::write(&path, bytes).expect("write zip");
    let script = "import sys, zipfile, hashlib\nz = zipfile.ZipFile(sys.argv[1])\nbad = z.testzip()\nassert bad is None, bad\nfor i in z.infolist():\n    print(i.filename + '\\t' + hashlib.sha256(z.read(i)).hexdigest())\n";
    let out = std::process::Command::new("python3").arg("-c").arg(script).arg(&path).output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t').map(|(n, h)| (n.to_owned(), h.to_owned())))
        .collect()
}

async fn exporting_originals_as_a_zip(app: TestApp) {
    let (token, conv, ids) = three_files(&app).await;
    let member = app.get_json(&token, &format!("/api/conversations/{conv}")).await["data"]["conversation"]["member"]
        ["id"]
        .as_str()
        .expect("member")
        .to_owned();
    let res = app
        .http
        .patch(app.url(&format!("/api/members/{member}")))
        .bearer_auth(&token)
        .json(&json!({"firstName": "Ruth"}))
        .send()
        .await
        .expect("name");
    assert_eq!(res.status(), 200);

    let res = app
        .http
        .post(app.url("/api/media/export"))
        .bearer_auth(&token)
        .json(&json!({ "ids": [ids[0], ids[1]] }))
        .send()
        .await
        .expect("export");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    assert!(res.headers()["content-disposition"].to_str().expect("cd").contains("koinonia-media-"));
    let zip = res.bytes().await.expect("zip");
    let contents = zip_contents(&zip);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        contents,
        vec![
            (format!("{today} Ruth/photo.jpg"), fixture("photo.jpg").sha256),
            (format!("{today} Ruth/doc.pdf"), fixture("doc.pdf").sha256),
        ],
        "named by date and member, the exact originals"
    );
    // All matching a filter.
    let res = app
        .http
        .post(app.url("/api/media/export"))
        .bearer_auth(&token)
        .json(&json!({"filter": {"type": "audio"}}))
        .send()
        .await
        .expect("export");
    assert_eq!(res.status(), 200);
    let contents = zip_contents(&res.bytes().await.expect("zip"));
    assert_eq!(contents.len(), 1);
    assert_eq!(contents[0].1, fixture("voice.amr").sha256);
    let audit = app.get_json(&token, "/api/audit?limit=5").await;
    let export = audit["data"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["action"] == "media.export")
        .cloned()
        .expect("audited");
    assert_eq!(export["detail"]["files"].as_array().map(Vec::len), Some(1), "the files it contained");
    // Bad requests.
    for body in
        [json!({}), json!({"ids": []}), json!({"ids": [uuid::Uuid::now_v7()]}), json!({"filter": {"type": "video"}})]
    {
        let res =
            app.http.post(app.url("/api/media/export")).bearer_auth(&token).json(&body).send().await.expect("export");
        assert!(matches!(res.status().as_u16(), 400 | 404), "{body}: {}", res.status());
    }
}

crate::matrix!(export, [sqlite_local => (Sqlite, Local), postgres_s3 => (Postgres, S3)], exporting_originals_as_a_zip);

/// Revocations of sessions that have expired are purged (the token is refused anyway); those of
/// live sessions stay.
async fn purging_expired_revocations(app: TestApp) {
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    let res = app.http.post(app.url("/api/auth/logout")).bearer_auth(&token).send().await.expect("logout");
    assert_eq!(res.status(), 200);
    let now = chrono::Utc::now();
    {
        let mut pooled = app.state.db.acquire().await.expect("conn");
        let c = &mut pooled.conn();
        for hours in [1, 30] {
            koinonia::db::leaders::revoke_session(c, uuid::Uuid::now_v7(), now - chrono::Duration::hours(hours))
                .await
                .expect("expired revocation");
        }
    }
    assert_eq!(app.count("revoked_sessions").await, 3);
    let purged = koinonia::flows::retention::purge_revoked_sessions(&app.state.db, now).await.expect("purge");
    assert_eq!(purged, 2);
    assert_eq!(app.count("revoked_sessions").await, 1, "the live session's revocation stays");
    assert_eq!(app.get(&token, "/api/conversations").await.status(), 401, "and still refuses its token");
    assert_eq!(koinonia::flows::retention::purge_revoked_sessions(&app.state.db, now).await.expect("again"), 0);
}

crate::matrix!(revoked_sessions_purge, databases, purging_expired_revocations);

/// `koinonia retention run` purges them too.
#[tokio::test]
async fn retention_run_purges_expired_revocations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env: std::collections::HashMap<String, String> =
        [("KOINONIA_DATA_DIR".to_owned(), dir.path().join("data").display().to_string())].into_iter().collect();
    let out = crate::support::process::koinonia(dir.path(), &env).arg("migrate").output().expect("migrate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let vars = env.clone();
    let config = koinonia::Config::from_vars(&vars).expect("config");
    let db = koinonia::ops::cli::open_db(&config).await.expect("db");
    let now = chrono::Utc::now();
    {
        let mut pooled = db.acquire().await.expect("conn");
        let c = &mut pooled.conn();
        koinonia::db::leaders::revoke_session(c, uuid::Uuid::now_v7(), now - chrono::Duration::hours(2))
            .await
            .expect("expired");
        koinonia::db::leaders::revoke_session(c, uuid::Uuid::now_v7(), now + chrono::Duration::hours(2))
            .await
            .expect("live");
    }
    db.close().await;
    let out = crate::support::process::koinonia(dir.path(), &env).args(["retention", "run"]).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("; 1 expired session revocations purged"), "{stdout}");
    let db = koinonia::ops::cli::open_db(&config).await.expect("db");
    let left: i64 = match &db {
        koinonia::db::Db::Sqlite(p) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM revoked_sessions").fetch_one(p).await.expect("count")
        }
        koinonia::db::Db::Postgres(_) => unreachable!("embedded mode"),
    };
    assert_eq!(left, 1);
    db.close().await;
}
