//! Churches: the tenants.

use chrono::{DateTime, Utc};

use super::{run, Conn, Result};
use crate::domain::ChurchId;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChurchRow {
    pub id: ChurchId,
    pub name: String,
    pub phone_number: String,
    pub messaging_profile_id: Option<String>,
    /// An IANA zone name (`UTC` unless set; see [`crate::domain::ChurchTimeZone`]).
    pub time_zone: String,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, phone_number, messaging_profile_id, time_zone, created_at";

pub async fn insert(c: &mut Conn<'_>, row: &ChurchRow) -> Result<()> {
    const SQL: &str = "INSERT INTO churches (id, name, phone_number, messaging_profile_id, time_zone, created_at)
                       VALUES ($1, $2, $3, $4, $5, $6)";
    run!(c, |q| sqlx::query(SQL)
        .bind(row.id)
        .bind(&row.name)
        .bind(&row.phone_number)
        .bind(&row.messaging_profile_id)
        .bind(&row.time_zone)
        .bind(row.created_at)
        .execute(&mut **q)
        .await
        .map(|_| ()))
}

/// The church that owns a phone number (E.164), for routing inbound messages.
pub async fn find_by_number(c: &mut Conn<'_>, number: &str) -> Result<Option<ChurchRow>> {
    let sql = format!("SELECT {COLUMNS} FROM churches WHERE phone_number = $1");
    run!(c, |q| sqlx::query_as::<_, ChurchRow>(&sql).bind(number).fetch_optional(&mut **q).await)
}

pub async fn get(c: &mut Conn<'_>, id: ChurchId) -> Result<Option<ChurchRow>> {
    let sql = format!("SELECT {COLUMNS} FROM churches WHERE id = $1");
    run!(c, |q| sqlx::query_as::<_, ChurchRow>(&sql).bind(id).fetch_optional(&mut **q).await)
}

/// The church's time zone (its IANA name); `None` when there is no such church.
pub async fn time_zone(c: &mut Conn<'_>, id: ChurchId) -> Result<Option<String>> {
    const SQL: &str = "SELECT time_zone FROM churches WHERE id = $1";
    run!(c, |q| sqlx::query_scalar::<_, String>(SQL).bind(id).fetch_optional(&mut **q).await)
}

pub async fn set_time_zone(c: &mut Conn<'_>, id: ChurchId, zone: &str) -> Result<bool> {
    const SQL: &str = "UPDATE churches SET time_zone = $2 WHERE id = $1";
    run!(c, |q| sqlx::query(SQL).bind(id).bind(zone).execute(&mut **q).await.map(|r| r.rows_affected() == 1))
}

/// Claims first-run setup for `church` (false when it was claimed before). Call in the
/// transaction that creates that church: a concurrent claim waits for it, then fails on the key.
pub async fn claim_first_run(c: &mut Conn<'_>, church: ChurchId, now: DateTime<Utc>) -> Result<bool> {
    const SQL: &str =
        "INSERT INTO first_run (id, church_id, created_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING";
    run!(c, |q| sqlx::query(SQL).bind(church).bind(now).execute(&mut **q).await.map(|r| r.rows_affected() == 1))
}

pub async fn count(c: &mut Conn<'_>) -> Result<i64> {
    run!(c, |q| sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM churches").fetch_one(&mut **q).await)
}

/// Every church (the phone simulator lists them; a deployment has a handful).
pub async fn all(c: &mut Conn<'_>) -> Result<Vec<ChurchRow>> {
    let sql = format!("SELECT {COLUMNS} FROM churches ORDER BY name LIMIT 1000");
    run!(c, |q| sqlx::query_as::<_, ChurchRow>(&sql).fetch_all(&mut **q).await)
}

/// Whether the church's notifications carry the first characters of the message.
pub async fn push_include_text(c: &mut Conn<'_>, id: ChurchId) -> Result<Option<bool>> {
    const SQL: &str = "SELECT push_include_text FROM churches WHERE id = $1";
    run!(c, |q| sqlx::query_scalar::<_, bool>(SQL).bind(id).fetch_optional(&mut **q).await)
}

pub async fn set_push_include_text(c: &mut Conn<'_>, id: ChurchId, include: bool) -> Result<bool> {
    const SQL: &str = "UPDATE churches SET push_include_text = $2 WHERE id = $1";
    run!(c, |q| sqlx::query(SQL).bind(id).bind(include).execute(&mut **q).await.map(|r| r.rows_affected() == 1))
}
