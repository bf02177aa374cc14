//! Leader accounts.

use chrono::{DateTime, Utc};

use super::{run, Conn, Result};
use crate::domain::{ChurchId, LeaderId};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LeaderRow {
    pub id: LeaderId,
    pub church_id: ChurchId,
    pub email: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub token_version: i64,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, church_id, email, password_hash, is_admin, token_version, created_at, last_login_at";

pub async fn insert(c: &mut Conn<'_>, row: &LeaderRow) -> Result<()> {
    const SQL: &str = "INSERT INTO leaders (id, church_id, email, password_hash, is_admin, token_version, created_at)
                       VALUES ($1, $2, $3, $4, $5, $6, $7)";
    run!(c, |q| sqlx::query(SQL)
        .bind(row.id)
        .bind(row.church_id)
        .bind(&row.email)
        .bind(&row.password_hash)
        .bind(row.is_admin)
        .bind(row.token_version)
        .bind(row.created_at)
        .execute(&mut **q)
        .await
        .map(|_| ()))
}

/// By login email (stored lower-case). Machine-side lookup: login is what yields the church.
pub async fn find_by_email(c: &mut Conn<'_>, email: &str) -> Result<Option<LeaderRow>> {
    let sql = format!("SELECT {COLUMNS} FROM leaders WHERE email = $1");
    run!(c, |q| sqlx::query_as::<_, LeaderRow>(&sql).bind(email).fetch_optional(&mut **q).await)
}

/// A leader of one church.
pub async fn get(c: &mut Conn<'_>, church: ChurchId, id: LeaderId) -> Result<Option<LeaderRow>> {
    let sql = format!("SELECT {COLUMNS} FROM leaders WHERE church_id = $1 AND id = $2");
    run!(c, |q| sqlx::query_as::<_, LeaderRow>(&sql).bind(church).bind(id).fetch_optional(&mut **q).await)
}

pub async fn record_login(c: &mut Conn<'_>, id: LeaderId, now: DateTime<Utc>) -> Result<()> {
    run!(c, |q| sqlx::query("UPDATE leaders SET last_login_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(&mut **q)
        .await
        .map(|_| ()))
}
