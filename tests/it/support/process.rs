//! koinonia as a separate process: the real binary with a clean environment, as an operator
//! runs it.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `koinonia serve`; killed and reaped when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary, run in `dir` with only PATH, `RUST_LOG=warn` and `env`.
pub fn koinonia(dir: &Path, env: &HashMap<String, String>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_koinonia"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .envs(env);
    cmd
}

/// Creates the church Grace (+15551230000) and its leader pastor@grace.test with the operator
/// commands; returns the church id.
pub fn church_and_leader(dir: &Path, env: &HashMap<String, String>) -> String {
    church_with_leader(dir, env, "Grace", "+15551230000", "pastor@grace.test")
}

/// Creates a church and its leader `email` (password "correct horse battery") with the operator
/// commands; returns the church id.
pub fn church_with_leader(dir: &Path, env: &HashMap<String, String>, name: &str, number: &str, email: &str) -> String {
    let out =
        koinonia(dir, env).args(["church", "create", "--name", name, "--number", number]).output().expect("church");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let church = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let mut child = koinonia(dir, env)
        .args(["leader", "create", "--church", &church, "--email", email, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("leader");
    child.stdin.take().expect("stdin").write_all(b"correct horse battery").expect("password");
    assert!(child.wait().expect("wait").success());
    church
}

/// A free loopback port (the kernel picks it; the tiny race is acceptable in tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port()
}

/// Starts `serve` from `cmd` (already configured) on `port` and waits for `/healthz`.
pub async fn serve_on(mut cmd: Command, port: u16) -> Server {
    let child = cmd.arg("serve").env("PORT", port.to_string()).spawn().expect("serve");
    // Owned at once, so that it is killed and reaped whatever happens next.
    let server = Server { child, base: format!("http://127.0.0.1:{port}") };
    for _ in 0..150 {
        if crate::support::http_get(format!("{}/healthz", server.base)).await.is_ok_and(|r| r.status() == 200) {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("koinonia did not start");
}

/// `serve` in `dir` with `env`, on a free port.
pub async fn serve(dir: &Path, env: &HashMap<String, String>) -> Server {
    let mut cmd = koinonia(dir, env);
    cmd.stdout(Stdio::null());
    serve_on(cmd, free_port()).await
}

/// A Telnyx webhook key pair: `TELNYX_PUBLIC_KEY` for the server, signatures for requests.
pub struct WebhookKey(pub ed25519_dalek::SigningKey);

impl WebhookKey {
    pub fn new() -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>()))
    }

    /// The server's `TELNYX_PUBLIC_KEY`.
    pub fn public(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.0.verifying_key().to_bytes())
    }

    /// `(telnyx-timestamp, telnyx-signature-ed25519)` for `body`, signed now.
    pub fn sign(&self, body: &[u8]) -> (String, String) {
        use base64::Engine;
        use ed25519_dalek::Signer;
        let ts = chrono::Utc::now().timestamp().to_string();
        let mut msg = ts.as_bytes().to_vec();
        msg.push(b'|');
        msg.extend_from_slice(body);
        (ts, base64::engine::general_purpose::STANDARD.encode(self.0.sign(&msg).to_bytes()))
    }

    /// POSTs `body` to `{base}/api/webhooks/telnyx/mms`, signed.
    pub async fn post(&self, http: &reqwest::Client, base: &str, body: &serde_json::Value) -> reqwest::Response {
        let raw = serde_json::to_vec(body).expect("json");
        let (ts, sig) = self.sign(&raw);
        http.post(format!("{base}/api/webhooks/telnyx/mms"))
            .header("content-type", "application/json")
            .header("telnyx-timestamp", ts)
            .header("telnyx-signature-ed25519", sig)
            .body(raw)
            .send()
            .await
            .expect("webhook")
    }
}

/// GET `{base}{path}` as the leader with `token`; the JSON answer (whatever its status).
pub async fn get_json(http: &reqwest::Client, base: &str, path: &str, token: &str) -> serde_json::Value {
    http.get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Logs in the leader made by [`church_and_leader`] on `base`; returns the bearer token.
pub async fn login(base: &str) -> String {
    login_as(base, "pastor@grace.test").await
}

/// Logs in `email` (password "correct horse battery") on `base`; returns the bearer token.
pub async fn login_as(base: &str, email: &str) -> String {
    let res = koinonia::crypto::tls::client_builder()
        .build()
        .expect("client")
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 200, "login");
    let body: serde_json::Value = res.json().await.expect("json");
    body["data"]["token"].as_str().expect("token").to_owned()
}
