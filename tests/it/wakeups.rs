//! Job wake-ups between instances: a job written by one instance is taken at once by an idle
//! worker of another on the same PostgreSQL database (`LISTEN/NOTIFY`), not after the workers'
//! safety-net poll.

use std::time::Duration;

use koinonia::domain::Actor;
use koinonia::flows::outbound::{self, Reply};
use serde_json::Value;

use crate::support::{wait_for, Backend, Options, Store, TestApp};

#[tokio::test]
async fn a_job_written_by_one_instance_wakes_the_workers_of_another() {
    // B polls only once a minute: only a notification can make it send within seconds.
    let mut vars = Options::default().vars;
    for (k, len) in [("PHONE_HASH_KEY", 32), ("PHONE_ENCRYPTION_KEY", 32), ("JWT_SECRET", 48)] {
        vars.insert(k.into(), koinonia::secrets::generate(len).expect("rng"));
    }
    let options = Options { vars: vars.clone(), poll_ms: 60_000, ..Options::default() };
    let Some(b) = TestApp::try_spawn(Backend::Postgres, Store::Local, options).await else { return };
    let church = b.church("Grace", "+15551230000").await;
    let token = b.leader(church, "pastor@grace.test").await;
    let res = b
        .http
        .post(b.url("/api/conversations"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"phone": "+13125550101", "content": "Welcome"}))
        .send()
        .await
        .expect("start");
    assert_eq!(res.status(), 201);
    let started: Value = res.json().await.expect("json");
    let conversation = started["data"]["conversation"]["id"].as_str().expect("id").parse().expect("uuid");
    // B's own reply wakes B in-process; wait until it is sent and B's workers are idle again.
    wait_for("B sends its own reply", Duration::from_secs(10), || async {
        (b.count("messages WHERE content = 'Welcome' AND delivery_status IN ('sent', 'delivered')").await == 1)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A: another instance of the same deployment that runs no workers of its own.
    let data = tempfile::tempdir().expect("tempdir");
    vars.insert("DATABASE_URL".into(), b.database_url.clone().expect("postgres"));
    vars.insert("KOINONIA_DATA_DIR".into(), data.path().display().to_string());
    let a = koinonia::AppState::build(koinonia::Config::from_vars(&vars).expect("config")).await.expect("A");
    let reply = Reply { content: "From instance A".into(), ..Reply::default() };
    outbound::reply(&a.outbound(), &Actor::operator(church), conversation, reply).await.expect("reply through A");

    wait_for("B to send what A queued", Duration::from_secs(10), || async {
        let n =
            b.count("messages WHERE content = 'From instance A' AND delivery_status IN ('sent', 'delivered')").await;
        (n == 1).then_some(())
    })
    .await;
}
