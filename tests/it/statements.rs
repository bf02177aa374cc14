//! Statements per webhook, counted from sqlx's own statement log (the `sqlx::query` events every
//! executed statement emits): a text webhook from a known member costs a handful of statements,
//! and a burst shares them — many webhooks per transaction (group commit), one multi-row INSERT
//! per batch — so the count per webhook falls far below one webhook's own. On PostgreSQL the live
//! updates of whatever batches waited go out in one `NOTIFY` statement, and the messages'
//! insert also moves their conversations to the top of the inbox. Concurrent batches
//! moving the same conversations never deadlock (PostgreSQL locks them in id order).

use std::sync::{Arc, Mutex, OnceLock};

use futures::stream::{self, StreamExt};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use crate::support::{received_event, TestApp};

const CHURCH_NUMBER: &str = "+15551230000";
const MEMBERS: usize = 8;
const BURST: usize = 256;

/// The statements sqlx ran, in order (their first line).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("log"))
    }
}

#[derive(Default)]
struct Statement(String);

impl tracing::field::Visit for Statement {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "db.statement" || (field.name() == "summary" && self.0.is_empty()) {
            self.0 = value.split_whitespace().collect::<Vec<_>>().join(" ");
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "db.statement" || (field.name() == "summary" && self.0.is_empty()) {
            self.0 = format!("{value:?}").split_whitespace().collect::<Vec<_>>().join(" ");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Log {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            let mut s = Statement::default();
            event.record(&mut s);
            self.0.lock().expect("log").push(s.0);
        }
    }
}

/// The process's statement log (installed once; nextest runs each test in its own process).
fn statement_log() -> Log {
    static LOG: OnceLock<Log> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Log::default();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("sqlx::query=debug"))
            .with(log.clone());
        tracing::subscriber::set_global_default(subscriber).expect("the statement log is this process's subscriber");
        log
    })
    .clone()
}

/// How many batches the intake has written so far.
async fn batches(app: &TestApp) -> usize {
    let metrics = app.http.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    crate::group_commit::sample(&metrics, "koinonia_inbound_batch_size_count") as usize
}

fn member(i: usize) -> String {
    format!("+1312555{:04}", 200 + i % MEMBERS)
}

/// Statements that belong to the webhook path: the job workers' own (claims, polls, on their
/// own timer) are left out, but the jobs a webhook writes — such as the notification job of
/// each church of a batch — are its statements and counted. So are the live updates' `NOTIFY`
/// statements on PostgreSQL, though the publisher task sends them after the batch, on its own
/// connection, whenever it gets to them (hence counted apart: [`notifies`]).
fn inbound(log: Vec<String>) -> Vec<String> {
    log.into_iter()
        .filter(|s| {
            let s = s.to_ascii_lowercase();
            (!s.contains("jobs") || s.starts_with("insert into jobs")) && !s.contains("pg_notify")
        })
        .collect()
}

/// The live updates' `NOTIFY` statements in `log` (PostgreSQL).
fn notifies(log: &[String]) -> usize {
    log.iter().filter(|s| s.to_ascii_lowercase().contains("pg_notify")).count()
}

async fn statements_per_webhook(app: TestApp) {
    let log = statement_log();
    app.church("Grace", CHURCH_NUMBER).await;
    // The members are known (their first texts made them): the common case.
    for i in 0..MEMBERS {
        let e = received_event(&format!("evt-first-{i}"), &member(i), CHURCH_NUMBER, "Hello", vec![]);
        assert_eq!(app.post_webhook("/api/webhooks/telnyx/mms", &e).await.status(), 200);
    }

    // One webhook alone: every statement it ran, listed when the bound fails. (The live
    // updates' publisher sends a moment after the answer: it is given that moment.)
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(200));
    settle().await;
    log.take();
    let one = received_event("evt-alone", &member(0), CHURCH_NUMBER, "Just one", vec![]);
    assert_eq!(app.post_webhook("/api/webhooks/telnyx/mms", &one).await.status(), 200);
    settle().await;
    let alone = log.take();
    let alone_notifies = notifies(&alone);
    let alone = inbound(alone);
    assert!(!alone.is_empty(), "sqlx's statement log is seen (the count below is real)");
    assert!(alone.len() <= 6, "{} statements for one webhook:\n{}", alone.len(), alone.join("\n"));
    if matches!(app.backend, crate::support::Backend::Postgres) {
        // PostgreSQL moves the conversation in the messages' own statement (a data-modifying WITH).
        let apart = alone.iter().filter(|s| s.to_ascii_lowercase().starts_with("update conversations")).count();
        assert_eq!(apart, 0, "the conversation moved in a statement of its own:\n{}", alone.join("\n"));
    }
    let job_inserts =
        |log: &[String]| log.iter().filter(|s| s.to_ascii_lowercase().starts_with("insert into jobs")).count();
    assert_eq!(job_inserts(&alone), 1, "the church's notification job: one statement, written or not");

    // A burst: the webhooks of a batch share its statements — a batch costs no more statements
    // than one webhook alone, however many it holds.
    let batches_before = batches(&app).await;
    let events: Vec<_> = (0..BURST)
        .map(|i| received_event(&format!("evt-burst-{i}"), &member(i), CHURCH_NUMBER, &format!("Message {i}"), vec![]))
        .collect();
    let statuses: Vec<u16> = stream::iter(events.iter())
        .map(|e| async { app.post_webhook("/api/webhooks/telnyx/mms", e).await.status().as_u16() })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let batches = batches(&app).await - batches_before;
    settle().await;
    let burst = log.take();
    assert!(alone_notifies <= 1, "{alone_notifies} live-update statements for one webhook");
    assert!(
        notifies(&burst) <= batches,
        "{} live-update statements for {batches} batches: at most one a batch",
        notifies(&burst)
    );
    let burst = inbound(burst);
    assert!(
        burst.len() <= batches * alone.len(),
        "{} statements for {batches} batches, {} for one webhook alone: a batch's statements grow with its size",
        burst.len(),
        alone.len()
    );
    assert!(
        job_inserts(&burst) <= batches,
        "{} notification job statements for {batches} batches: one per batch and church, not per message",
        job_inserts(&burst)
    );
    let metrics = app.http.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    let retried = metrics.lines().find_map(|l| l.strip_prefix("koinonia_inbound_batch_retried_total "));
    assert!(
        retried.is_none_or(|n| n.trim() == "0"),
        "no batch failed and was re-written message by message (a deadlock between batches): {retried:?}"
    );
    let per_webhook = burst.len() as f64 / BURST as f64;
    assert!(
        per_webhook <= alone.len() as f64 / 3.0,
        "{per_webhook:.2} statements per webhook in a burst, {} alone: the burst did not share them",
        alone.len()
    );
    assert_eq!(app.count("messages").await, (MEMBERS + 1 + BURST) as i64, "every webhook stored");
    eprintln!(
        "statements: {} for one webhook, {per_webhook:.2} per webhook in a burst of {BURST} ({batches} batches)",
        alone.len()
    );
}

crate::matrix!(statements_per_webhook_counted, databases, statements_per_webhook);
