//! The audit log: who did what to which record, when and from where.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::{run, Conn, Result};
use crate::domain::ChurchId;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: Uuid,
    pub church_id: Option<ChurchId>,
    pub actor_type: String,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub subject_type: Option<String>,
    pub subject_id: Option<Uuid>,
    pub client_addr: Option<String>,
    pub detail: Option<Json<serde_json::Value>>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, church_id, actor_type, actor_id, action, subject_type, subject_id, client_addr, detail, created_at";

pub async fn insert(c: &mut Conn<'_>, r: &AuditRow) -> Result<()> {
    let sql = format!("INSERT INTO audit_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)");
    run!(c, |q| sqlx::query(&sql)
        .bind(r.id)
        .bind(r.church_id)
        .bind(&r.actor_type)
        .bind(r.actor_id)
        .bind(&r.action)
        .bind(&r.subject_type)
        .bind(r.subject_id)
        .bind(&r.client_addr)
        .bind(&r.detail)
        .bind(r.created_at)
        .execute(&mut **q)
        .await
        .map(|_| ()))
}

/// A church's audit log, newest first, older than `before`.
pub async fn page(c: &mut Conn<'_>, church: ChurchId, before: Option<Uuid>, limit: i64) -> Result<Vec<AuditRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_log WHERE church_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
    );
    run!(c, |q| sqlx::query_as::<_, AuditRow>(&sql).bind(church).bind(before).bind(limit).fetch_all(&mut **q).await)
}

/// Like [`page`], with the acting leader's email where the actor is a leader.
pub async fn page_with_actor(
    c: &mut Conn<'_>,
    church: ChurchId,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<(AuditRow, Option<String>)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        entry: AuditRow,
        actor_email: Option<String>,
    }
    const SQL: &str = "SELECT a.id, a.church_id, a.actor_type, a.actor_id, a.action, a.subject_type, a.subject_id,
                              a.client_addr, a.detail, a.created_at, l.email AS actor_email
                       FROM audit_log a LEFT JOIN leaders l ON a.actor_type = 'leader' AND l.id = a.actor_id
                       WHERE a.church_id = $1 AND ($2 IS NULL OR a.id < $2)
                       ORDER BY a.id DESC LIMIT $3";
    let rows =
        run!(c, |q| sqlx::query_as::<_, Row>(SQL).bind(church).bind(before).bind(limit).fetch_all(&mut **q).await)?;
    Ok(rows.into_iter().map(|r| (r.entry, r.actor_email)).collect())
}
