//! Webhooks that arrive together share a transaction (group commit): each is answered only after
//! its batch committed, every acknowledged event is stored exactly once, a burst from the same
//! members makes one member and one conversation each, and redeliveries change nothing — even
//! when copies of one event land in the same batch.

use futures::stream::{self, StreamExt};
use serde_json::Value;

use crate::support::{received_event, TestApp};

const CHURCH_NUMBER: &str = "+15551230000";
const MEMBERS: usize = 12;
const DISTINCT: usize = 240;
const COPIES_OF_ONE: usize = 10;

fn member(i: usize) -> String {
    format!("+1312555{:04}", 100 + i % MEMBERS)
}

/// One number from the Prometheus text (a plain sample line, labels excluded).
pub(crate) fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

async fn a_burst_is_stored_once_each(app: TestApp) {
    app.church("Grace", CHURCH_NUMBER).await;
    let mut events: Vec<Value> = (0..DISTINCT)
        .map(|i| received_event(&format!("evt-burst-{i}"), &member(i), CHURCH_NUMBER, &format!("Message {i}"), vec![]))
        .collect();
    // Telnyx retrying one event while the first delivery is still in flight.
    let repeated = received_event("evt-burst-repeated", &member(0), CHURCH_NUMBER, "Only once", vec![]);
    events.extend(std::iter::repeat_n(repeated, COPIES_OF_ONE));
    // Redeliveries of events already in the burst.
    events.extend((0..20).map(|i| {
        received_event(&format!("evt-burst-{i}"), &member(i), CHURCH_NUMBER, &format!("Message {i}"), vec![])
    }));

    let statuses: Vec<u16> = stream::iter(events.iter())
        .map(|e| async { app.post_webhook("/api/webhooks/telnyx/mms", e).await.status().as_u16() })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "every webhook acknowledged: {statuses:?}");

    // A 200 means committed: everything is readable at once, no waiting.
    assert_eq!(app.count("messages").await, (DISTINCT + 1) as i64, "each event stored once");
    assert_eq!(app.count("webhook_events").await, (DISTINCT + 1) as i64);
    assert_eq!(app.count("members").await, MEMBERS as i64, "one member per number");
    assert_eq!(app.count("conversations").await, MEMBERS as i64, "one conversation per member");
    let per_member = (DISTINCT / MEMBERS) as i64;
    assert_eq!(
        app.count(&format!("conversations WHERE unread_count = {per_member}")).await,
        (MEMBERS - 1) as i64,
        "each conversation counts every message it received as unread"
    );
    assert_eq!(app.count(&format!("conversations WHERE unread_count = {}", per_member + 1)).await, 1);
    assert_eq!(app.count("messages WHERE content = 'Only once'").await, 1);

    // The webhooks shared transactions: fewer batches than messages written.
    let metrics = app.http.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    let batches = sample(&metrics, "koinonia_inbound_batch_size_count");
    let written = sample(&metrics, "koinonia_inbound_batch_size_sum");
    assert_eq!(written as usize, events.len(), "every webhook went through the intake");
    assert!(batches < written, "{batches} batches for {written} webhooks: none were shared");
}

crate::matrix!(a_burst_is_stored_once_each_everywhere, databases, a_burst_is_stored_once_each);
