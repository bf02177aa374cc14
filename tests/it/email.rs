//! E-mail notifications against a real SMTP server (aiosmtpd on loopback): one e-mail to each
//! leader who chose e-mail once a message has waited unread, none once the thread was read, at
//! most one per conversation an hour, never the message itself.

use std::time::Duration;

use koinonia::flows::notifications::email::{sweep, Swept};
use koinonia::notify::email::Mailer;
use serde_json::json;

use crate::inbound_flow::{CHURCH_NUMBER, MEMBER_NUMBER};
use crate::support::smtp::TestSmtp;
use crate::support::{received_event, Backend, Options, Store, TestApp};

const MMS: &str = "/api/webhooks/telnyx/mms";

async fn choose_email(app: &TestApp, token: &str, on: bool) {
    let res = app
        .http
        .patch(app.url("/api/notifications/settings"))
        .bearer_auth(token)
        .json(&json!({ "email": on }))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(res.status(), 200);
}

async fn email_notifications(backend: Backend) {
    let Some(smtp) = TestSmtp::start() else { return };
    let options = Options::default().var("SMTP_URL", &smtp.url()).var("NOTIFY_EMAIL_AFTER_MINUTES", "15");
    let Some(app) = TestApp::try_spawn(backend, Store::Local, options).await else { return };
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let pastor = app.leader(church, "pastor@grace.test").await;
    let _quiet = app.leader(church, "quiet@grace.test").await;
    let other = app.church("Hope", "+15551239999").await;
    let elsewhere = app.leader(other, "pastor@hope.test").await;
    choose_email(&app, &pastor, true).await;
    choose_email(&app, &elsewhere, true).await;
    let checks = koinonia::ops::doctor::run(&app.state.config).await;
    let check = checks.iter().find(|c| c.name == "email").expect("an email check");
    assert_eq!(check.level, koinonia::ops::doctor::Level::Ok, "{check:?}");
    let settings = app.get_json(&pastor, "/api/notifications/settings").await;
    assert_eq!(settings["data"]["emailAvailable"], true, "{settings}");

    let config = &app.state.config;
    let email = config.email.clone().expect("SMTP_URL read");
    let mailer = Mailer::new(&email.smtp).expect("mailer");
    let now = koinonia::clock::now;
    let run = || async { sweep(&app.state.db, &mailer, config, &email, now()).await.expect("sweep") };

    let secret = "Please pray for my mother's surgery on Tuesday";
    assert_eq!(
        app.post_webhook(MMS, &received_event("e-1", MEMBER_NUMBER, CHURCH_NUMBER, secret, vec![])).await.status(),
        200
    );
    let list = app.get_json(&pastor, "/api/conversations").await;
    let conversation = list["data"]["conversations"][0]["id"].as_str().expect("id").to_owned();

    // Not yet: the message has not waited 15 minutes.
    assert_eq!(run().await, Swept::default());
    assert!(smtp.received().is_empty());

    // 16 minutes later: one e-mail, to the leader who chose it, with a link and no message.
    let waited = now() - chrono::Duration::minutes(16);
    app.exec_at("UPDATE conversations SET unread_since = $1", waited).await;
    assert_eq!(run().await, Swept { conversations: 1, sent: 1, failed: 0 });
    let mail = smtp.received();
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].to, "pastor@grace.test", "only the leader who chose e-mail");
    assert_eq!(mail[0].subject, "New message from •••-•••-0001 waiting in the inbox");
    assert!(mail[0].raw.contains(&format!("/inbox/{conversation}")), "{}", mail[0].raw);
    assert!(!mail[0].raw.contains("surgery") && !mail[0].raw.contains("Please pray"), "never the message");
    assert!(!mail[0].raw.contains(MEMBER_NUMBER) && !mail[0].raw.contains("3125550001"), "never the number");

    // Sweeping again sends nothing; a new message within the hour neither.
    assert_eq!(run().await, Swept::default());
    assert_eq!(
        app.post_webhook(MMS, &received_event("e-2", MEMBER_NUMBER, CHURCH_NUMBER, "Are you there?", vec![]))
            .await
            .status(),
        200
    );
    assert_eq!(run().await, Swept::default(), "at most one an hour");
    // An hour on, the newer message is told of.
    app.exec_at("UPDATE email_notifications SET sent_at = $1", now() - chrono::Duration::minutes(61)).await;
    assert_eq!(run().await.sent, 1);
    assert_eq!(smtp.received().len(), 2);

    // Read before the delay: nothing.
    assert_eq!(
        app.post_webhook(MMS, &received_event("e-3", "+13125550002", CHURCH_NUMBER, "Hello", vec![])).await.status(),
        200
    );
    let list = app.get_json(&pastor, "/api/conversations").await;
    let second = list["data"]["conversations"][0]["id"].as_str().expect("id").to_owned();
    assert_ne!(second, conversation);
    let res = app
        .http
        .patch(app.url(&format!("/api/conversations/{second}/read")))
        .bearer_auth(&pastor)
        .send()
        .await
        .expect("read");
    assert_eq!(res.status(), 200);
    app.exec_at(
        "UPDATE conversations SET unread_since = $1 WHERE unread_count > 0",
        now() - chrono::Duration::minutes(30),
    )
    .await;
    assert_eq!(run().await, Swept::default(), "the thread was read first");
    assert_eq!(smtp.received().len(), 2);

    // The leader turns e-mail off: nothing more.
    choose_email(&app, &pastor, false).await;
    assert_eq!(
        app.post_webhook(MMS, &received_event("e-4", "+13125550003", CHURCH_NUMBER, "Hi", vec![])).await.status(),
        200
    );
    app.exec_at(
        "UPDATE conversations SET unread_since = $1 WHERE unread_count > 0",
        now() - chrono::Duration::minutes(30),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(run().await, Swept::default());
    assert_eq!(smtp.received().len(), 2, "Hope's leader hears only of Hope's members");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_notifications_sqlite() {
    email_notifications(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_notifications_postgres() {
    email_notifications(Backend::Postgres).await;
}

/// An SMTP server that is down loses nothing: the claim is given back and the next sweep sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_smtp_server_sends_on_the_next_sweep() {
    let Some(smtp) = TestSmtp::start() else { return };
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let options = Options::default().var("SMTP_URL", &format!("smtp://127.0.0.1:{dead}?tls=none"));
    let Some(app) = TestApp::try_spawn(Backend::Sqlite, Store::Local, options).await else { return };
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let pastor = app.leader(church, "pastor@grace.test").await;
    choose_email(&app, &pastor, true).await;
    assert_eq!(
        app.post_webhook(MMS, &received_event("d-1", MEMBER_NUMBER, CHURCH_NUMBER, "Hi", vec![])).await.status(),
        200
    );
    app.exec_at("UPDATE conversations SET unread_since = $1", koinonia::clock::now() - chrono::Duration::minutes(20))
        .await;
    let config = &app.state.config;
    let checks = koinonia::ops::doctor::run(config).await;
    let check = checks.iter().find(|c| c.name == "email").expect("an email check");
    assert_eq!(check.level, koinonia::ops::doctor::Level::Error, "doctor says the server does not answer: {check:?}");
    let email = config.email.clone().expect("SMTP_URL read");
    let down = Mailer::new(&email.smtp).expect("mailer");
    let swept = sweep(&app.state.db, &down, config, &email, koinonia::clock::now()).await.expect("sweep");
    assert_eq!((swept.sent, swept.failed), (0, 1));
    // The server is back (here: another one, where the settings point now).
    let back = koinonia::notify::email::SmtpSettings::parse(&smtp.url(), None).expect("settings");
    let up = Mailer::new(&back).expect("mailer");
    let swept = sweep(&app.state.db, &up, config, &email, koinonia::clock::now()).await.expect("sweep");
    assert_eq!(swept.sent, 1, "the e-mail was not lost");
    assert_eq!(smtp.received().len(), 1);
}
