//! Refused webhooks, kept briefly so an operator (and `koinonia doctor`) can see why.

use chrono::{DateTime, Utc};

use super::{run, Conn, Result};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RejectionRow {
    pub route: String,
    pub reason: String,
    pub client_addr: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// Records one refusal and forgets those older than a week.
pub async fn record(
    c: &mut Conn<'_>,
    route: &str,
    reason: &str,
    client: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    run!(c, |q| sqlx::query(
        "INSERT INTO webhook_rejections (id, route, reason, client_addr, received_at) VALUES ($1, $2, $3, $4, $5)"
    )
    .bind(uuid::Uuid::now_v7())
    .bind(route)
    .bind(reason)
    .bind(client)
    .bind(now)
    .execute(&mut **q)
    .await
    .map(|_| ()))?;
    run!(c, |q| sqlx::query("DELETE FROM webhook_rejections WHERE received_at < $1")
        .bind(now - chrono::Duration::days(7))
        .execute(&mut **q)
        .await
        .map(|_| ()))
}

/// The most recent refusals since `since`, newest first.
pub async fn recent(c: &mut Conn<'_>, since: DateTime<Utc>, limit: i64) -> Result<Vec<RejectionRow>> {
    run!(c, |q| sqlx::query_as::<_, RejectionRow>(
        "SELECT route, reason, client_addr, received_at FROM webhook_rejections
         WHERE received_at >= $1 ORDER BY received_at DESC LIMIT $2"
    )
    .bind(since)
    .bind(limit)
    .fetch_all(&mut **q)
    .await)
}
