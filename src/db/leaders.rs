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

/// Accounts one email may sign in to at most (one per church).
pub const MAX_ACCOUNTS_PER_EMAIL: i64 = 5;

/// By login email (stored lower-case): the accounts of that address, one per church at most,
/// oldest first. Machine-side lookup: login is what yields the church.
pub async fn find_by_email(c: &mut Conn<'_>, email: &str) -> Result<Vec<LeaderRow>> {
    let sql = format!("SELECT {COLUMNS} FROM leaders WHERE email = $1 ORDER BY created_at, id LIMIT $2");
    run!(c, |q| sqlx::query_as::<_, LeaderRow>(&sql).bind(email).bind(MAX_ACCOUNTS_PER_EMAIL).fetch_all(&mut **q).await)
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

/// The leaders of one church, oldest first.
pub async fn list(c: &mut Conn<'_>, church: ChurchId) -> Result<Vec<LeaderRow>> {
    let sql = format!("SELECT {COLUMNS} FROM leaders WHERE church_id = $1 ORDER BY created_at, id");
    run!(c, |q| sqlx::query_as::<_, LeaderRow>(&sql).bind(church).fetch_all(&mut **q).await)
}

/// New password; every earlier session of the leader ends (the token version moves on).
pub async fn set_password(c: &mut Conn<'_>, church: ChurchId, id: LeaderId, hash: &str) -> Result<Option<i64>> {
    run!(c, |q| sqlx::query_scalar::<_, i64>(
        "UPDATE leaders SET password_hash = $3, token_version = token_version + 1
         WHERE church_id = $1 AND id = $2 RETURNING token_version"
    )
    .bind(church)
    .bind(id)
    .bind(hash)
    .fetch_optional(&mut **q)
    .await)
}

pub async fn delete(c: &mut Conn<'_>, church: ChurchId, id: LeaderId) -> Result<bool> {
    run!(c, |q| sqlx::query("DELETE FROM leaders WHERE church_id = $1 AND id = $2")
        .bind(church)
        .bind(id)
        .execute(&mut **q)
        .await
        .map(|r| r.rows_affected() == 1))
}

pub async fn count_admins(c: &mut Conn<'_>, church: ChurchId) -> Result<i64> {
    run!(c, |q| sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM leaders WHERE church_id = $1 AND is_admin")
        .bind(church)
        .fetch_one(&mut **q)
        .await)
}

/// Ends one session before it expires.
pub async fn revoke_session(c: &mut Conn<'_>, jti: uuid::Uuid, expires_at: DateTime<Utc>) -> Result<()> {
    run!(c, |q| sqlx::query(
        "INSERT INTO revoked_sessions (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING"
    )
    .bind(jti)
    .bind(expires_at)
    .execute(&mut **q)
    .await
    .map(|_| ()))
}

pub async fn is_revoked(c: &mut Conn<'_>, jti: uuid::Uuid) -> Result<bool> {
    run!(c, |q| sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM revoked_sessions WHERE jti = $1")
        .bind(jti)
        .fetch_one(&mut **q)
        .await
        .map(|n| n > 0))
}

/// Forgets revocations of sessions that expired before `now` (an expired token is refused
/// anyway). Returns how many went.
pub async fn purge_revoked(c: &mut Conn<'_>, now: DateTime<Utc>) -> Result<u64> {
    run!(c, |q| sqlx::query("DELETE FROM revoked_sessions WHERE expires_at < $1")
        .bind(now)
        .execute(&mut **q)
        .await
        .map(|r| r.rows_affected()))
}

/// How a leader wants to hear of new messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct NotifyChoice {
    pub notify_push: bool,
    pub notify_email: bool,
}

pub async fn notify_choice(c: &mut Conn<'_>, church: ChurchId, id: LeaderId) -> Result<Option<NotifyChoice>> {
    const SQL: &str = "SELECT notify_push, notify_email FROM leaders WHERE church_id = $1 AND id = $2";
    run!(c, |q| sqlx::query_as::<_, NotifyChoice>(SQL).bind(church).bind(id).fetch_optional(&mut **q).await)
}

/// Sets what is given of a leader's choice (`None` leaves it); false when there is no such leader.
pub async fn set_notify_choice(
    c: &mut Conn<'_>,
    church: ChurchId,
    id: LeaderId,
    push: Option<bool>,
    email: Option<bool>,
) -> Result<bool> {
    const SQL: &str =
        "UPDATE leaders SET notify_push = COALESCE($3, notify_push), notify_email = COALESCE($4, notify_email)
                       WHERE church_id = $1 AND id = $2";
    run!(c, |q| sqlx::query(SQL)
        .bind(church)
        .bind(id)
        .bind(push)
        .bind(email)
        .execute(&mut **q)
        .await
        .map(|r| r.rows_affected() == 1))
}

/// The e-mail addresses of a church's leaders who chose e-mail notifications.
pub async fn email_recipients(c: &mut Conn<'_>, church: ChurchId) -> Result<Vec<String>> {
    const SQL: &str = "SELECT email FROM leaders WHERE church_id = $1 AND notify_email ORDER BY email";
    run!(c, |q| sqlx::query_scalar::<_, String>(SQL).bind(church).fetch_all(&mut **q).await)
}
