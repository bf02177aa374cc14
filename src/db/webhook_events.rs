//! Telnyx event ids already processed: a redelivered event is recognised here.

use std::collections::HashSet;

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

/// An event to record with [`insert_new`]: its id, type and church.
pub struct NewEvent<'a> {
    pub id: &'a str,
    pub event_type: &'a str,
    pub church: Option<ChurchId>,
}

/// Records many event ids in one statement; returns those that were new (the others are
/// redeliveries). The ids must be distinct.
pub async fn insert_new(c: &mut Conn<'_>, events: &[NewEvent<'_>], now: DateTime<Utc>) -> Result<HashSet<String>> {
    let mut fresh = HashSet::with_capacity(events.len());
    match c {
        // One statement whatever their number, the columns passed as arrays (prepared once).
        Conn::Postgres(q) => {
            const SQL: &str = "INSERT INTO webhook_events (id, event_type, church_id, received_at)
                 SELECT e.id, e.event_type, e.church_id, $4
                 FROM unnest($1::text[], $2::text[], $3::uuid[]) AS e(id, event_type, church_id)
                 ON CONFLICT (id) DO NOTHING RETURNING id";
            let ids: Vec<String> = sqlx::query_scalar(SQL)
                .bind(events.iter().map(|e| e.id).collect::<Vec<_>>())
                .bind(events.iter().map(|e| e.event_type).collect::<Vec<_>>())
                .bind(events.iter().map(|e| e.church.map(|c| c.0)).collect::<Vec<_>>())
                .bind(now)
                .fetch_all(&mut **q)
                .await?;
            fresh.extend(ids);
        }
        Conn::Sqlite(q) => {
            for chunk in events.chunks(1000) {
                let mut b =
                    sqlx::QueryBuilder::new("INSERT INTO webhook_events (id, event_type, church_id, received_at) ");
                b.push_values(chunk, |mut r, e| {
                    r.push_bind(e.id).push_bind(e.event_type).push_bind(e.church).push_bind(now);
                });
                b.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
                let ids: Vec<String> = b.build_query_scalar().persistent(false).fetch_all(&mut **q).await?;
                fresh.extend(ids);
            }
        }
    }
    Ok(fresh)
}
