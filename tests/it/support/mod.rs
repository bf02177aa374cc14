//! The test harness: starts koinonia the way `serve` does, on 127.0.0.1:0, against a real
//! database (a fresh SQLite file, or a fresh PostgreSQL database from `TEST_DATABASE_URL`), a real
//! store (a temp folder, or the in-process S3 server), a stand-in media CDN and a real Ed25519
//! key pair for signing webhooks.

#![allow(dead_code)]

pub mod clamd;
pub mod process;
pub mod s3;
pub mod smtp;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use koinonia::domain::ChurchId;
use koinonia::{App, AppState, Config};
use serde_json::{json, Value};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;
use wiremock::MockServer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Local,
    S3,
}

/// Options a test may change before the app starts.
#[derive(Clone)]
pub struct Options {
    pub vars: HashMap<String, String>,
    pub reconcile_ms: u64,
    pub telnyx_timeout_ms: u64,
    /// Share an existing database (several instances of one deployment, or one after another).
    pub database_url: Option<String>,
    /// Abuse limits other than the defaults.
    pub limits: Option<koinonia::limits::LimitSettings>,
    /// The workers' safety-net poll (100 ms unless a test needs it out of the way).
    pub poll_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        let mut vars = HashMap::new();
        vars.insert("MEDIA_FETCH_ALLOW_PRIVATE".into(), "true".into());
        vars.insert("MEDIA_FETCH_MAX_ATTEMPTS".into(), "4".into());
        Self { vars, reconcile_ms: 60_000, telnyx_timeout_ms: 5_000, database_url: None, limits: None, poll_ms: 100 }
    }
}

impl Options {
    pub fn var(mut self, k: &str, v: &str) -> Self {
        self.vars.insert(k.into(), v.into());
        self
    }

    /// Sends through the stand-in Telnyx API instead of the sandbox carrier.
    pub fn telnyx(self) -> Self {
        self.var("TELNYX_API_KEY", "KEY0123456789-test")
    }
}

pub struct TestApp {
    /// The PostgreSQL database this app uses, for a second instance to share.
    pub database_url: Option<String>,
    /// The database URL this app uses, whichever the backend (a SQLite file lives in `data_dir`).
    pub any_database_url: String,
    pub addr: SocketAddr,
    pub base: String,
    pub state: AppState,
    pub http: reqwest::Client,
    pub webhook_key: SigningKey,
    pub cdn: MockServer,
    /// The stand-in Telnyx API (used when the options say `.telnyx()`).
    pub telnyx: MockServer,
    pub s3: Option<s3::S3Server>,
    pub backend: Backend,
    pub data_dir: tempfile::TempDir,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

static TRACING: Once = Once::new();

/// `postgres://…` for PostgreSQL tests. Missing: skipped locally, a failure in CI.
pub fn test_database_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL").ok().filter(|s| !s.is_empty()) {
        Some(url) => Some(url),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("TEST_DATABASE_URL must be set in CI: the PostgreSQL half of the suite cannot be skipped")
        }
        None => {
            eprintln!("TEST_DATABASE_URL not set: skipping the PostgreSQL variant");
            None
        }
    }
}

/// A new, empty PostgreSQL database; returns its URL.
pub async fn fresh_postgres_database(admin_url: &str) -> String {
    let name = format!("koinonia_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin_url).await.expect("connect to TEST_DATABASE_URL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
    let mut url = url::Url::parse(admin_url).expect("TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

impl TestApp {
    /// Starts an app, or `None` when the backend is not available here (PostgreSQL outside CI).
    pub async fn try_spawn(backend: Backend, store: Store, options: Options) -> Option<Self> {
        TRACING.call_once(|| {
            if std::env::var("TEST_LOG").is_ok() {
                koinonia::telemetry::init_tracing(koinonia::config::LogFormat::Text);
            }
        });
        let data_dir = tempfile::tempdir().expect("tempdir");
        let webhook_key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        let mut vars = options.vars.clone();
        vars.insert("PORT".into(), "0".into());
        vars.insert("KOINONIA_DATA_DIR".into(), data_dir.path().display().to_string());
        vars.entry("TELNYX_PUBLIC_KEY".into()).or_insert_with(|| {
            base64::engine::general_purpose::STANDARD.encode(webhook_key.verifying_key().to_bytes())
        });
        for (k, len) in [("PHONE_HASH_KEY", 32), ("PHONE_ENCRYPTION_KEY", 32), ("JWT_SECRET", 48)] {
            vars.entry(k.into()).or_insert_with(|| koinonia::secrets::generate(len).expect("rng"));
        }
        match backend {
            Backend::Sqlite => {
                let url = match &options.database_url {
                    Some(url) => url.clone(),
                    None => format!("sqlite://{}/test.db", data_dir.path().display()),
                };
                vars.insert("DATABASE_URL".into(), url);
            }
            Backend::Postgres => {
                // Given like the other keys at scale (embedded mode generates its own).
                vars.entry("VAPID_PRIVATE_KEY".into())
                    .or_insert_with(|| koinonia::notify::vapid::generate().expect("rng"));
                let admin = test_database_url()?;
                let url = match &options.database_url {
                    Some(url) => url.clone(),
                    None => fresh_postgres_database(&admin).await,
                };
                vars.insert("DATABASE_URL".into(), url);
            }
        }
        let s3 = match store {
            Store::Local => None,
            Store::S3 => {
                let server = s3::S3Server::start().await;
                vars.insert("AWS_S3_BUCKET".into(), s3::BUCKET.into());
                vars.insert("AWS_REGION".into(), "us-east-1".into());
                vars.insert("AWS_ACCESS_KEY_ID".into(), s3::ACCESS_KEY.into());
                vars.insert("AWS_SECRET_ACCESS_KEY".into(), s3::SECRET_KEY.into());
                vars.insert("AWS_ENDPOINT_URL".into(), server.endpoint.clone());
                Some(server)
            }
        };
        let telnyx = MockServer::start().await;
        vars.insert("TELNYX_API_BASE_URL".into(), format!("{}/v2", telnyx.uri()));
        vars.entry("SEND_RATE_PER_NUMBER".into()).or_insert_with(|| "1000".into());
        vars.entry("SEND_RATE_ACCOUNT".into()).or_insert_with(|| "1000".into());
        let mut config = Config::from_vars(&vars).expect("test configuration");
        config.workers.poll_interval = Duration::from_millis(options.poll_ms);
        config.workers.fetch_backoff_base = Duration::from_millis(20);
        config.workers.send_backoff_base = Duration::from_millis(20);
        config.workers.send_reconcile = Duration::from_millis(options.reconcile_ms);
        config.workers.telnyx_timeout = Duration::from_millis(options.telnyx_timeout_ms);
        if let Some(limits) = &options.limits {
            config.limits = limits.clone();
        }
        let any_database_url = vars.get("DATABASE_URL").cloned().unwrap_or_default();
        let database_url = Some(any_database_url.clone()).filter(|u| u.starts_with("postgres"));
        let app = App::build(config).await.expect("app starts");
        let addr = app.local_addr().expect("addr");
        let state = app.state().clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run(shutdown.clone()));
        let http = koinonia::crypto::tls::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Some(Self {
            database_url,
            any_database_url,
            addr,
            base: format!("http://{addr}"),
            state,
            http,
            webhook_key,
            cdn: MockServer::start().await,
            telnyx,
            s3,
            backend,
            data_dir,
            shutdown,
            task: Some(task),
        })
    }

    pub async fn spawn(backend: Backend, store: Store) -> Option<Self> {
        Self::try_spawn(backend, store, Options::default()).await
    }

    /// Stops the app like SIGTERM does and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }

    /// Stops the app like [`TestApp::stop`] but keeps its folders (and SQLite file) for another
    /// instance to open. Its `state.db` is closed.
    pub async fn pause(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A church owning `number`, made through the operator command's code.
    pub async fn church(&self, name: &str, number: &str) -> ChurchId {
        koinonia::ops::cli::create_church(&self.state.db, name, number, None, None).await.expect("church")
    }

    /// An admin of `church` (password "correct horse battery"), logged in: returns the bearer token.
    pub async fn admin(&self, church: ChurchId, email: &str) -> String {
        self.signed_in(church, email, true).await
    }

    /// A leader of `church`, logged in: returns the bearer token.
    pub async fn leader(&self, church: ChurchId, email: &str) -> String {
        self.signed_in(church, email, false).await
    }

    async fn signed_in(&self, church: ChurchId, email: &str, admin: bool) -> String {
        koinonia::ops::cli::create_leader(
            &self.state.db,
            &self.state.passwords,
            church,
            email,
            "correct horse battery",
            admin,
        )
        .await
        .expect("leader");
        self.login(email, "correct horse battery").await
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let res = self
            .http
            .post(self.url("/api/auth/login"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("login request");
        assert_eq!(res.status(), 200, "login of {email}");
        let body: Value = res.json().await.expect("login json");
        body["data"]["token"].as_str().expect("token").to_owned()
    }

    /// Signs `body` as Telnyx would at `timestamp`.
    pub fn signature(&self, timestamp: &str, body: &[u8]) -> String {
        let mut msg = timestamp.as_bytes().to_vec();
        msg.push(b'|');
        msg.extend_from_slice(body);
        base64::engine::general_purpose::STANDARD.encode(self.webhook_key.sign(&msg).to_bytes())
    }

    /// POSTs a correctly signed webhook.
    pub async fn post_webhook(&self, path: &str, body: &Value) -> reqwest::Response {
        let raw = serde_json::to_vec(body).expect("json");
        let ts = chrono::Utc::now().timestamp().to_string();
        self.http
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("telnyx-signature-ed25519", self.signature(&ts, &raw))
            .header("telnyx-timestamp", ts)
            .body(raw)
            .send()
            .await
            .expect("webhook request")
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.expect("GET")
    }

    pub async fn get_json(&self, token: &str, path: &str) -> Value {
        let res = self.get(token, path).await;
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.expect("json")
    }

    /// Count of rows in a table (tests only: table names are constants).
    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match &self.state.db {
            koinonia::db::Db::Postgres(p) => sqlx::query_scalar(&sql).fetch_one(p).await.expect("count"),
            koinonia::db::Db::Sqlite(p) => sqlx::query_scalar(&sql).fetch_one(p).await.expect("count"),
        }
    }

    /// Runs one statement with one timestamp parameter (tests only: e.g. to age rows).
    pub async fn exec_at(&self, sql: &str, at: chrono::DateTime<chrono::Utc>) {
        match &self.state.db {
            koinonia::db::Db::Postgres(p) => sqlx::query(sql).bind(at).execute(p).await.map(|_| ()),
            koinonia::db::Db::Sqlite(p) => sqlx::query(sql).bind(at).execute(p).await.map(|_| ()),
        }
        .expect("statement");
    }

    /// Waits until no preview job is left, then answers how many preview files the store holds
    /// (two per file whose previews were made), so that tests can count originals.
    pub async fn preview_files(&self) -> usize {
        wait_for("preview jobs to finish", Duration::from_secs(60), || async {
            (self.count("jobs WHERE kind = 'media.preview'").await == 0).then_some(())
        })
        .await;
        2 * self.count("attachments WHERE preview_small_key IS NOT NULL").await as usize
    }

    /// Files in the media store (local folder or the S3 server's bucket).
    pub fn stored_files(&self) -> Vec<PathBuf> {
        match &self.s3 {
            Some(s3) => s3.object_files(),
            None => files_under(&self.data_dir.path().join("media")),
        }
    }
}

/// Every file below `dir` (none when it does not exist).
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Polls `check` until it yields `Some`, or panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A real fixture file and what the manifest says of it.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub file: String,
    pub bytes: Vec<u8>,
    pub mime: Option<String>,
    pub kind: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub duration: Option<f64>,
    pub sha256: String,
}

pub fn fixture(file: &str) -> Fixture {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/media");
    let manifest: Vec<Value> =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest")).expect("manifest json");
    let entry = manifest.iter().find(|e| e["file"] == file).unwrap_or_else(|| panic!("{file} not in manifest"));
    Fixture {
        file: file.to_owned(),
        bytes: std::fs::read(dir.join(file)).expect("fixture file"),
        mime: entry["mimeType"].as_str().map(str::to_owned),
        kind: entry["type"].as_str().map(str::to_owned),
        width: entry["width"].as_i64(),
        height: entry["height"].as_i64(),
        duration: entry["durationSeconds"].as_f64(),
        sha256: entry["sha256"].as_str().expect("sha").to_owned(),
    }
}

/// A `message.received` event as Telnyx sends it.
pub fn received_event(event_id: &str, from: &str, to: &str, text: &str, media: Vec<Value>) -> Value {
    json!({
        "data": {
            "event_type": "message.received",
            "id": event_id,
            "occurred_at": "2026-11-27T10:00:00.000+00:00",
            "record_type": "event",
            "payload": {
                "id": uuid::Uuid::new_v4().to_string(),
                "record_type": "message",
                "direction": "inbound",
                "type": if media.is_empty() { "SMS" } else { "MMS" },
                "from": { "phone_number": from, "carrier": "T-Mobile USA", "line_type": "Wireless" },
                "to": [ { "phone_number": to, "carrier": "Telnyx", "line_type": "Wireless", "status": "webhook_delivered" } ],
                "cc": [],
                "text": text,
                "media": media,
                "messaging_profile_id": "740572b6-099c-44a1-89b9-6c92163bc68d",
                "encoding": "GSM-7",
                "parts": 1,
                "received_at": "2026-11-27T10:00:00.000+00:00",
                "errors": []
            }
        },
        "meta": { "attempt": 1, "delivered_to": "https://example.org/api/webhooks/telnyx/mms" }
    })
}

/// Runs a test body once per backend/store combination named, each as its own `#[tokio::test]`.
#[macro_export]
macro_rules! matrix {
    ($name:ident, [$($variant:ident => ($backend:ident, $store:ident)),+ $(,)?], $body:ident) => {
        mod $name {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $variant() {
                    use $crate::support::{Backend, Store, TestApp};
                    if let Some(app) = TestApp::spawn(Backend::$backend, Store::$store).await {
                        super::$body(app).await;
                    }
                }
            )+
        }
    };
    ($name:ident, all, $body:ident) => {
        $crate::matrix!($name, [
            sqlite_local => (Sqlite, Local),
            sqlite_s3 => (Sqlite, S3),
            postgres_local => (Postgres, Local),
            postgres_s3 => (Postgres, S3),
        ], $body);
    };
    ($name:ident, databases, $body:ident) => {
        $crate::matrix!($name, [sqlite => (Sqlite, Local), postgres => (Postgres, Local)], $body);
    };
}

/// `reqwest::get`, with the TLS provider koinonia installs (reqwest has none of its own here).
pub async fn http_get<U: reqwest::IntoUrl>(url: U) -> reqwest::Result<reqwest::Response> {
    koinonia::crypto::tls::client_builder().build()?.get(url).send().await
}
