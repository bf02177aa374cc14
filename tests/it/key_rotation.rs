//! Rotating secrets: `PHONE_ENCRYPTION_KEY` with `koinonia keys reencrypt` (resumable, also when
//! killed mid-run), and `JWT_SECRET` with a grace period for sessions signed before.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use koinonia::crypto::phone::PhoneCrypto;
use koinonia::domain::Phone;
use koinonia::ops::doctor::{self, Level};
use koinonia::ops::keys::{self, ReencryptOptions};
use koinonia::secrets;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::inbound_flow::{CHURCH_NUMBER, MEMBER_NUMBER};
use crate::support::{received_event, wait_for, Backend, Options, Store, TestApp};

const SECOND_MEMBER: &str = "+13125550002";
const THIRD_MEMBER: &str = "+13125550003";
const CC: [&str; 2] = ["+13125550077", "+13125550078"];

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The phone crypto of a configuration with these keys.
fn crypto(hash_key: &str, key: &str, previous: Option<&str>) -> PhoneCrypto {
    let mut vars = HashMap::new();
    vars.insert(secrets::PHONE_HASH_KEY.to_owned(), hash_key.to_owned());
    vars.insert(secrets::PHONE_ENCRYPTION_KEY.to_owned(), key.to_owned());
    vars.insert(secrets::JWT_SECRET.to_owned(), "j".repeat(40));
    if let Some(p) = previous {
        vars.insert(secrets::PHONE_ENCRYPTION_KEY_PREVIOUS.to_owned(), p.to_owned());
    }
    PhoneCrypto::new(&secrets::load(&vars, std::path::Path::new("/nonexistent"), false).expect("secrets"))
}

/// A number encrypted the way koinonia did before keys were tagged (version 1).
fn legacy_ciphertext(key: &[u8; 32], phone: &str) -> Vec<u8> {
    use chacha20poly1305::aead::{Aead, KeyInit};
    let nonce: [u8; 24] = rand::random();
    let ct = chacha20poly1305::XChaCha20Poly1305::new(key.into())
        .encrypt(chacha20poly1305::XNonce::from_slice(&nonce), phone.as_bytes())
        .expect("encrypt");
    [&[1u8][..], &nonce, &ct].concat()
}

/// (id, ciphertext) of every stored number, members first, then group MMS recipients.
async fn stored_numbers(app: &TestApp) -> Vec<(String, Vec<u8>)> {
    const MEMBERS: &str = "SELECT phone_last4, phone_ciphertext FROM members ORDER BY id";
    const CC_SQL: &str = "SELECT content, cc_ciphertext FROM messages WHERE cc_ciphertext IS NOT NULL ORDER BY id";
    let mut out = Vec::new();
    for sql in [MEMBERS, CC_SQL] {
        let rows: Vec<(String, Vec<u8>)> = match &app.state.db {
            koinonia::db::Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.expect("rows"),
            koinonia::db::Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.expect("rows"),
        };
        out.extend(rows);
    }
    out
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let res = app.http.post(app.url(path)).bearer_auth(token).json(&body).send().await.expect("POST");
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn rotating_the_phone_key(old: TestApp) {
    let secrets = &old.state.config.secrets;
    let hash_key = b64(secrets.phone_hash_key.expose_secret());
    let old_key_raw = *secrets.phone_encryption_key.expose_secret();
    let old_key = b64(&old_key_raw);
    let church = old.church("Grace", CHURCH_NUMBER).await;
    let token = old.leader(church, "pastor@grace.test").await;

    // Three members: one texts, one sends a group MMS (whose two other numbers become members
    // too), one a leader writes to first; the third's number is then rewritten as koinonia wrote
    // numbers before keys were tagged.
    old.post_webhook("/api/webhooks/telnyx/mms", &received_event("r-1", MEMBER_NUMBER, CHURCH_NUMBER, "Hi", vec![]))
        .await;
    let mut group = received_event("r-2", SECOND_MEMBER, CHURCH_NUMBER, "To all of you", vec![]);
    group["data"]["payload"]["cc"] = json!(CC.iter().map(|n| json!({ "phone_number": n })).collect::<Vec<_>>());
    assert_eq!(old.post_webhook("/api/webhooks/telnyx/mms", &group).await.status(), 200);
    let (status, body) =
        post(&old, &token, "/api/conversations", json!({"phone": THIRD_MEMBER, "content": "Welcome"})).await;
    assert_eq!(status, 201, "{body}");
    let third_conversation = body["data"]["conversation"]["id"].as_str().expect("id").to_owned();
    let legacy = legacy_ciphertext(&old_key_raw, THIRD_MEMBER);
    let sql = "UPDATE members SET phone_ciphertext = $1 WHERE phone_last4 = '0003'";
    match &old.state.db {
        koinonia::db::Db::Postgres(p) => sqlx::query(sql).bind(&legacy).execute(p).await.map(|_| ()),
        koinonia::db::Db::Sqlite(p) => sqlx::query(sql).bind(&legacy).execute(p).await.map(|_| ()),
    }
    .expect("legacy ciphertext");

    // Rotation: a new key, the old one kept for reading.
    let new_key = secrets::generate(32).expect("rng");
    let rotated = crypto(&hash_key, &new_key, Some(&old_key));
    let only_new = crypto(&hash_key, &new_key, None);
    let db = &old.state.db;
    assert_eq!(keys::remaining(db, &rotated).await.expect("count"), 6, "five numbers and one group list");
    let mut batches = 0;
    let first = keys::reencrypt(db, &rotated, ReencryptOptions { batch: 1, limit: Some(2) }, |_| batches += 1)
        .await
        .expect("first run");
    assert_eq!((first.reencrypted, first.remaining, first.undecryptable), (2, 4, 0), "--limit stops the run");
    assert_eq!(batches, 2, "one committed batch per row with --batch 1");
    let second =
        keys::reencrypt(db, &rotated, ReencryptOptions { batch: 1, limit: None }, |_| {}).await.expect("second run");
    assert_eq!((second.reencrypted, second.remaining), (4, 0), "the second run does the rest, skipping done rows");
    let third = keys::reencrypt(db, &rotated, ReencryptOptions::default(), |_| {}).await.expect("third run");
    assert_eq!((third.reencrypted, third.remaining), (0, 0));

    // Every number reads with the new key alone, and no longer with the old one.
    let old_only = crypto(&hash_key, &old_key, None);
    let stored = stored_numbers(&old).await;
    assert_eq!(stored.len(), 6);
    let mut plain: Vec<String> = Vec::new();
    for (_, ct) in &stored {
        plain.push(only_new.decrypt(ct).expect("decrypts with the new key alone").as_str().to_owned());
        assert!(old_only.decrypt(ct).is_err(), "not under the old key any more");
    }
    let want = [MEMBER_NUMBER, SECOND_MEMBER, CC[0], CC[1], THIRD_MEMBER].map(str::to_owned);
    assert_eq!(plain, [want.as_slice(), &[CC.join(",")]].concat());
    let conversations = old.count("conversations").await;
    // The old instance (which knows only the old key) stops, as in a real rotation.
    let mut old = old;
    old.pause().await;

    // A deployment configured with the new key only: numbers show, blind-index lookups still find
    // the members, and replies (which decrypt the number) go out.
    let options = Options {
        database_url: Some(old.any_database_url.clone()),
        ..Options::default()
            .var("PHONE_HASH_KEY", &hash_key)
            .var("PHONE_ENCRYPTION_KEY", &new_key)
            .var("JWT_SECRET", &"n".repeat(40))
    };
    let Some(new) = TestApp::try_spawn(old.backend, Store::Local, options).await else { return };
    let token = new.login("pastor@grace.test", "correct horse battery").await;
    let list = new.get_json(&token, "/api/conversations").await;
    for c in list["data"]["conversations"].as_array().expect("conversations") {
        let id = c["id"].as_str().expect("id");
        let thread = new.get_json(&token, &format!("/api/conversations/{id}")).await;
        let phone = thread["data"]["conversation"]["member"]["phone"].as_str().expect("phone");
        assert!([MEMBER_NUMBER, SECOND_MEMBER, THIRD_MEMBER].contains(&phone), "the full number shows: {phone}");
        if thread["data"]["conversation"]["group"] == true {
            let participants = thread["data"]["conversation"]["participants"].as_array().expect("participants");
            assert_eq!(participants.len(), 3, "the group's three members");
        }
    }
    assert_eq!(
        new.post_webhook(
            "/api/webhooks/telnyx/mms",
            &received_event("r-3", MEMBER_NUMBER, CHURCH_NUMBER, "Again", vec![])
        )
        .await
        .status(),
        200
    );
    let (status, body) =
        post(&new, &token, "/api/conversations", json!({"phone": THIRD_MEMBER, "content": "Hello again"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["conversation"]["id"], third_conversation.as_str(), "found by its blind index");
    assert_eq!(new.count("conversations").await, conversations, "no member was created twice");
    assert_eq!(new.count("members").await, 5);
    let first_member = list["data"]["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .find(|c| c["member"]["phone"] == "•••-•••-0001")
        .and_then(|c| c["id"].as_str())
        .expect("the first member's conversation")
        .to_owned();
    let thread = new.get_json(&token, &format!("/api/conversations/{first_member}")).await;
    assert_eq!(thread["data"]["messages"].as_array().map(Vec::len), Some(2), "the new text joined their thread");
    let message = body["data"]["message"]["id"].as_str().expect("message").to_owned();
    wait_for("the reply to be delivered", Duration::from_secs(20), || async {
        let t = new.get_json(&token, &format!("/api/conversations/{third_conversation}")).await;
        let m = t["data"]["messages"].as_array()?.iter().find(|m| m["id"] == message.as_str())?.clone();
        (m["deliveryStatus"] == "delivered").then_some(())
    })
    .await;
}

crate::matrix!(phone_key_rotation, databases, rotating_the_phone_key);

/// `koinonia doctor` warns while numbers remain under an older key.
#[tokio::test]
async fn doctor_warns_until_every_number_is_under_the_current_key() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let _ = app.leader(church, "pastor@grace.test").await;
    app.post_webhook("/api/webhooks/telnyx/mms", &received_event("d-1", MEMBER_NUMBER, CHURCH_NUMBER, "Hi", vec![]))
        .await;
    let check = |checks: Vec<doctor::Check>| {
        checks.into_iter().find(|c| c.name == "phone encryption").expect("a phone encryption check")
    };
    let ok = check(doctor::run(&app.state.config).await);
    assert_eq!(ok.level, Level::Ok, "{ok}");

    let secrets = &app.state.config.secrets;
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("DATABASE_URL".into(), app.any_database_url.clone());
    vars.insert("KOINONIA_DATA_DIR".into(), app.data_dir.path().display().to_string());
    vars.insert("PHONE_HASH_KEY".into(), b64(secrets.phone_hash_key.expose_secret()));
    vars.insert("PHONE_ENCRYPTION_KEY".into(), secrets::generate(32).expect("rng"));
    vars.insert("PHONE_ENCRYPTION_KEY_PREVIOUS".into(), b64(secrets.phone_encryption_key.expose_secret()));
    vars.insert("JWT_SECRET".into(), "j".repeat(40));
    let rotated = koinonia::Config::from_vars(&vars).expect("config");
    let warn = check(doctor::run(&rotated).await);
    assert_eq!(warn.level, Level::Warn, "{warn}");
    assert!(warn.sentence.contains("1 stored numbers") && warn.sentence.contains("koinonia keys reencrypt"), "{warn}");
    assert!(!warn.sentence.contains("5550001"), "counts only: {warn}");

    let crypto = PhoneCrypto::new(&rotated.secrets);
    keys::reencrypt(&app.state.db, &crypto, ReencryptOptions::default(), |_| {}).await.expect("reencrypt");
    let done = check(doctor::run(&rotated).await);
    assert_eq!(done.level, Level::Ok, "{done}");
    assert!(done.sentence.contains("PHONE_ENCRYPTION_KEY_PREVIOUS can be removed"), "{done}");
}

/// The command as an operator runs it: killed mid-run, then run again; a number under no known
/// key makes it exit 1 with a sentence holding counts only.
#[tokio::test]
async fn the_reencrypt_command_resumes_after_being_killed() {
    const MEMBERS: usize = 3000;
    let dir = tempfile::tempdir().expect("tempdir");
    let (hash_key, old_key, new_key) =
        (secrets::generate(32).expect("rng"), secrets::generate(32).expect("rng"), secrets::generate(32).expect("rng"));
    let env = |key: &str, previous: Option<&str>| {
        let mut env: HashMap<String, String> = HashMap::new();
        env.insert("DATABASE_URL".into(), format!("sqlite://{}/koinonia.db", dir.path().display()));
        env.insert("KOINONIA_DATA_DIR".into(), dir.path().display().to_string());
        env.insert("PHONE_HASH_KEY".into(), hash_key.clone());
        env.insert("PHONE_ENCRYPTION_KEY".into(), key.to_owned());
        env.insert("JWT_SECRET".into(), "j".repeat(40));
        if let Some(p) = previous {
            env.insert("PHONE_ENCRYPTION_KEY_PREVIOUS".into(), p.to_owned());
        }
        env
    };

    // Members written under the old key, in one transaction.
    let config = koinonia::Config::from_vars(&env(&old_key, None)).expect("config");
    let db = koinonia::ops::cli::open_db(&config).await.expect("db");
    let church = koinonia::ops::cli::create_church(&db, "Grace", CHURCH_NUMBER, None, None).await.expect("church");
    let old = PhoneCrypto::new(&config.secrets);
    let mut tx = db.begin().await.expect("tx");
    for i in 0..MEMBERS {
        let phone = Phone::parse(&format!("+1312555{i:04}")).expect("phone");
        koinonia::flows::contacts::member_and_conversation(
            &mut tx.conn(),
            &old,
            church,
            &phone,
            koinonia::clock::now(),
        )
        .await
        .expect("member");
    }
    tx.commit().await.expect("commit");
    db.close().await;

    // Killed after its first committed batches.
    let mut child = crate::support::process::koinonia(dir.path(), &env(&new_key, Some(&old_key)))
        .args(["keys", "reencrypt", "--batch", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut progress = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut seen = 0;
    while let Some(Ok(line)) = progress.next() {
        assert!(!line.contains("+1312555"), "no number in progress lines: {line}");
        if line.contains("re-encrypted so far") {
            seen += 1;
            if seen == 20 {
                break;
            }
        }
    }
    child.kill().expect("kill");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "killed mid-run (it would have needed {MEMBERS} batches)");
    drop(progress);

    let rotated = crypto(&hash_key, &new_key, Some(&old_key));
    let config = koinonia::Config::from_vars(&env(&new_key, Some(&old_key))).expect("config");
    let db = koinonia::ops::cli::open_db(&config).await.expect("db");
    let left = keys::remaining(&db, &rotated).await.expect("remaining");
    assert!(left > 0 && left <= (MEMBERS - 20) as u64, "{left} left after the kill");
    db.close().await;

    // The second run finishes the job, skipping the rows already done.
    let out = crate::support::process::koinonia(dir.path(), &env(&new_key, Some(&old_key)))
        .args(["keys", "reencrypt", "--batch", "200"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    assert_eq!(stdout, format!("re-encrypted {left} numbers; 0 left under older keys\n"));

    // With the new key alone, every number reads back.
    let config = koinonia::Config::from_vars(&env(&new_key, None)).expect("config");
    let db = koinonia::ops::cli::open_db(&config).await.expect("db");
    let only_new = PhoneCrypto::new(&config.secrets);
    let rows: Vec<(Vec<u8>, Vec<u8>)> = match &db {
        koinonia::db::Db::Sqlite(p) => {
            sqlx::query_as("SELECT phone_hash, phone_ciphertext FROM members").fetch_all(p).await.expect("rows")
        }
        koinonia::db::Db::Postgres(_) => unreachable!("a SQLite file"),
    };
    assert_eq!(rows.len(), MEMBERS);
    for (hash, ct) in &rows {
        let phone = only_new.decrypt(ct).expect("decrypts with the new key alone");
        assert_eq!(&only_new.blind_index(&phone), hash, "the blind index still matches");
    }

    // A number under a key nobody configured: counted, never shown, exit 1.
    let stranger = crypto(&hash_key, &secrets::generate(32).expect("rng"), None);
    let foreign = stranger.encrypt(&Phone::parse("+13125559999").expect("phone")).expect("enc");
    match &db {
        koinonia::db::Db::Sqlite(p) => {
            sqlx::query("UPDATE members SET phone_ciphertext = $1 WHERE phone_last4 = '0007'")
                .bind(&foreign)
                .execute(p)
                .await
                .expect("update");
        }
        koinonia::db::Db::Postgres(_) => unreachable!("a SQLite file"),
    }
    db.close().await;
    let out = crate::support::process::koinonia(dir.path(), &env(&new_key, Some(&old_key)))
        .args(["keys", "reencrypt"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout, "re-encrypted 0 numbers; 1 left under older keys\n");
    assert!(stderr.contains("1 stored numbers decrypt under no known key"), "{stderr}");
    assert!(!stderr.contains("+1312555") && !stderr.contains("5559999"), "{stderr}");
}

/// A token signed with the previous `JWT_SECRET` works (with its CSRF token) until it expires;
/// one from an unknown secret does not; without `JWT_SECRET_PREVIOUS` the old one does not.
async fn rotating_the_session_secret(before: TestApp) {
    let old_secret = String::from_utf8(before.state.config.secrets.jwt_secret.expose_secret().clone()).expect("text");
    let church = before.church("Grace", CHURCH_NUMBER).await;
    let token = before.leader(church, "pastor@grace.test").await;
    before
        .post_webhook("/api/webhooks/telnyx/mms", &received_event("s-1", MEMBER_NUMBER, CHURCH_NUMBER, "Hi", vec![]))
        .await;
    let conversation = before.get_json(&token, "/api/conversations").await["data"]["conversations"][0]["id"]
        .as_str()
        .expect("conversation")
        .to_owned();
    // A dashboard session (cookie + the page's CSRF token) made before the rotation.
    let login = before
        .http
        .post(before.url("/login"))
        .form(&[("email", "pastor@grace.test"), ("password", "correct horse battery")])
        .send()
        .await
        .expect("login");
    let cookie = login.headers()["set-cookie"].to_str().expect("cookie").split(';').next().expect("pair").to_owned();
    let page = before.http.get(before.url("/inbox")).header("cookie", &cookie).send().await.expect("page");
    let html = page.text().await.expect("html");
    let csrf = html
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("csrf meta")
        .to_owned();

    let new_secret = "n".repeat(48);
    let shared = || Options { database_url: Some(before.any_database_url.clone()), ..Options::default() };
    let keys_of = |o: Options| {
        let s = &before.state.config.secrets;
        o.var("PHONE_HASH_KEY", &b64(s.phone_hash_key.expose_secret()))
            .var("PHONE_ENCRYPTION_KEY", &b64(s.phone_encryption_key.expose_secret()))
            .var("JWT_SECRET", &new_secret)
    };
    let graced = keys_of(shared()).var("JWT_SECRET_PREVIOUS", &old_secret);
    let Some(rotated) = TestApp::try_spawn(before.backend, Store::Local, graced).await else { return };
    let Some(strict) = TestApp::try_spawn(before.backend, Store::Local, keys_of(shared())).await else { return };

    assert_eq!(rotated.get(&token, "/api/conversations").await.status(), 200, "the old token in its grace period");
    assert_eq!(strict.get(&token, "/api/conversations").await.status(), 401, "without JWT_SECRET_PREVIOUS");
    let read = |app: &TestApp, csrf: &str| {
        app.http
            .patch(app.url(&format!("/api/conversations/{conversation}/read")))
            .header("cookie", &cookie)
            .header("x-csrf-token", csrf)
            .send()
    };
    assert_eq!(read(&rotated, &csrf).await.expect("read").status(), 200, "the old cookie and CSRF token work");
    assert_eq!(read(&rotated, "0123").await.expect("read").status(), 403, "CSRF is still checked");
    let page = rotated.http.get(rotated.url("/inbox")).header("cookie", &cookie).send().await.expect("page");
    assert_eq!(page.status(), 200, "the dashboard keeps the old session");
    let fresh_csrf = page
        .text()
        .await
        .expect("html")
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .map(str::to_owned)
        .expect("csrf");
    assert_eq!(read(&rotated, &fresh_csrf).await.expect("read").status(), 200, "and its newly rendered CSRF token");

    // A token from a secret nobody configured, and an expired one from the previous secret.
    let leader = {
        let mut pooled = rotated.state.db.acquire().await.expect("conn");
        koinonia::db::leaders::find_by_email(&mut pooled.conn(), "pastor@grace.test")
            .await
            .expect("q")
            .into_iter()
            .next()
            .expect("leader")
    };
    let mut vars = HashMap::new();
    vars.insert(secrets::PHONE_HASH_KEY.to_owned(), secrets::generate(32).expect("rng"));
    vars.insert(secrets::PHONE_ENCRYPTION_KEY.to_owned(), secrets::generate(32).expect("rng"));
    let signer = |secret: &str| {
        let mut v = vars.clone();
        v.insert(secrets::JWT_SECRET.to_owned(), secret.to_owned());
        koinonia::crypto::session::SessionKeys::new(
            &secrets::load(&v, std::path::Path::new("/nonexistent"), false).expect("secrets"),
        )
    };
    let now = chrono::Utc::now();
    let (unknown, _) =
        signer(&"u".repeat(40)).issue(leader.id, leader.church_id, leader.token_version, now).expect("sign");
    assert_eq!(rotated.get(&unknown, "/api/conversations").await.status(), 401, "an unknown secret");
    let (expired, _) = signer(&old_secret)
        .issue(leader.id, leader.church_id, leader.token_version, now - chrono::Duration::hours(13))
        .expect("sign");
    assert_eq!(rotated.get(&expired, "/api/conversations").await.status(), 401, "the grace ends with the token");

    // New sessions are signed with the new secret: the strict instance accepts them.
    let fresh = rotated.login("pastor@grace.test", "correct horse battery").await;
    assert_eq!(strict.get(&fresh, "/api/conversations").await.status(), 200);
    let (status, body) = post(
        &rotated,
        &token,
        "/api/auth/password",
        json!({"current": "correct horse battery", "new": "a much better passphrase"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let changed = body["data"]["token"].as_str().expect("token");
    assert_eq!(strict.get(changed, "/api/conversations").await.status(), 200, "password change signs with JWT_SECRET");
}

crate::matrix!(session_secret_rotation, databases, rotating_the_session_secret);

/// Embedded mode: renaming the key's line in `secrets.env` is the whole rotation; koinonia writes
/// a new key there and `keys reencrypt` moves the numbers under it.
#[tokio::test]
async fn embedded_rotation_by_renaming_the_line_in_secrets_env() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("koinonia-data");
    let env: HashMap<String, String> = HashMap::new();
    let church = crate::support::process::church_and_leader(dir.path(), &env);
    let vars: HashMap<String, String> =
        [("KOINONIA_DATA_DIR".to_owned(), data.display().to_string())].into_iter().collect();
    let config = koinonia::Config::from_vars(&vars).expect("config");
    let db = koinonia::ops::cli::open_db(&config).await.expect("db");
    let old = PhoneCrypto::new(&config.secrets);
    let mut pooled = db.acquire().await.expect("conn");
    let phone = Phone::parse(MEMBER_NUMBER).expect("phone");
    koinonia::flows::contacts::member_and_conversation(
        &mut pooled.conn(),
        &old,
        church.parse().expect("church id"),
        &phone,
        koinonia::clock::now(),
    )
    .await
    .expect("member");
    drop(pooled);
    db.close().await;

    let file = data.join("secrets.env");
    let text = std::fs::read_to_string(&file).expect("secrets.env");
    std::fs::write(&file, text.replace("PHONE_ENCRYPTION_KEY=", "PHONE_ENCRYPTION_KEY_PREVIOUS=")).expect("rename");
    let out = crate::support::process::koinonia(dir.path(), &env).args(["keys", "reencrypt"]).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "re-encrypted 1 numbers; 0 left under older keys\n");
    let text = std::fs::read_to_string(&file).expect("secrets.env");
    assert_eq!(text.lines().filter(|l| l.starts_with("PHONE_ENCRYPTION_KEY=")).count(), 1, "a new key was written");
    assert_eq!(text.lines().filter(|l| l.starts_with("PHONE_ENCRYPTION_KEY_PREVIOUS=")).count(), 1);

    let rotated = koinonia::Config::from_vars(&vars).expect("config");
    assert_eq!(rotated.secrets.phone_encryption_key_previous.len(), 1);
    let db = koinonia::ops::cli::open_db(&rotated).await.expect("db");
    let mut pooled = db.acquire().await.expect("conn");
    let c = &mut pooled.conn();
    let member = koinonia::db::members::find_by_hash(c, church.parse().expect("id"), &old.blind_index(&phone))
        .await
        .expect("query")
        .expect("found by its blind index");
    let new = PhoneCrypto::new(&rotated.secrets);
    assert!(new.is_current(&member.phone_ciphertext));
    assert!(old.decrypt(&member.phone_ciphertext).is_err(), "no longer under the old key");
    assert_eq!(new.decrypt(&member.phone_ciphertext).expect("decrypt"), phone);
    drop(pooled);
    db.close().await;
}
