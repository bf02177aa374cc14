//! Telnyx event ids already processed: a redelivered event is recognised here.

use chrono::{DateTime, Utc};

use super::{run, Conn, Result};
use crate::domain::ChurchId;

/// Records an event id; false when it was recorded before (a redelivery).
pub async fn insert_if_new(
    c: &mut Conn<'_>,
    id: &str,
    event_type: &str,
    church: Option<ChurchId>,
    now: DateTime<Utc>,
) -> Result<bool> {
    const SQL: &str = "INSERT INTO webhook_events (id, event_type, church_id, received_at) VALUES ($1, $2, $3, $4)
                       ON CONFLICT (id) DO NOTHING";
    run!(c, |q| sqlx::query(SQL)
        .bind(id)
        .bind(event_type)
        .bind(church)
        .bind(now)
        .execute(&mut **q)
        .await
        .map(|r| r.rows_affected() == 1))
}
