//! Browsers' Web Push subscriptions, by leader, and the rows a notification job reads.

use chrono::{DateTime, Utc};

use super::{run, Conn, Result};
use crate::domain::{ChurchId, ConversationId, LeaderId, MessageId};

/// One browser's subscription.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubscriptionRow {
    pub id: uuid::Uuid,
    pub church_id: ChurchId,
    pub leader_id: LeaderId,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, church_id, leader_id, endpoint, p256dh, auth, created_at, last_used_at";

/// Records a subscription; an endpoint seen before (this browser, maybe another leader's before)
/// takes the new leader and keys.
pub async fn upsert(c: &mut Conn<'_>, row: &SubscriptionRow) -> Result<()> {
    const SQL: &str = "INSERT INTO push_subscriptions (id, church_id, leader_id, endpoint, p256dh, auth, created_at)
                       VALUES ($1, $2, $3, $4, $5, $6, $7)
                       ON CONFLICT (endpoint) DO UPDATE SET church_id = excluded.church_id,
                           leader_id = excluded.leader_id, p256dh = excluded.p256dh, auth = excluded.auth,
                           created_at = excluded.created_at, last_used_at = NULL";
    run!(c, |q| sqlx::query(SQL)
        .bind(row.id)
        .bind(row.church_id)
        .bind(row.leader_id)
        .bind(&row.endpoint)
        .bind(&row.p256dh)
        .bind(&row.auth)
        .bind(row.created_at)
        .execute(&mut **q)
        .await
        .map(|_| ()))
}

/// Keeps a leader's `keep` newest subscriptions and deletes the rest; returns how many went.
pub async fn keep_newest(c: &mut Conn<'_>, leader: LeaderId, keep: i64) -> Result<u64> {
    const SQL: &str = "DELETE FROM push_subscriptions WHERE leader_id = $1 AND id NOT IN (
                           SELECT id FROM push_subscriptions WHERE leader_id = $1
                           ORDER BY created_at DESC, id DESC LIMIT $2)";
    run!(c, |q| sqlx::query(SQL).bind(leader).bind(keep).execute(&mut **q).await.map(|r| r.rows_affected()))
}

/// Deletes one of a leader's subscriptions by its endpoint.
pub async fn delete_by_endpoint(c: &mut Conn<'_>, church: ChurchId, leader: LeaderId, endpoint: &str) -> Result<bool> {
    const SQL: &str = "DELETE FROM push_subscriptions WHERE church_id = $1 AND leader_id = $2 AND endpoint = $3";
    run!(c, |q| sqlx::query(SQL)
        .bind(church)
        .bind(leader)
        .bind(endpoint)
        .execute(&mut **q)
        .await
        .map(|r| r.rows_affected() == 1))
}

/// Deletes a subscription the push service says is gone (machine side: by its id).
pub async fn delete(c: &mut Conn<'_>, id: uuid::Uuid) -> Result<bool> {
    const SQL: &str = "DELETE FROM push_subscriptions WHERE id = $1";
    run!(c, |q| sqlx::query(SQL).bind(id).execute(&mut **q).await.map(|r| r.rows_affected() == 1))
}

/// Notes that a push to this subscription was accepted.
pub async fn touch(c: &mut Conn<'_>, ids: &[uuid::Uuid], now: DateTime<Utc>) -> Result<()> {
    for chunk in ids.chunks(500) {
        run!(&mut *c, |q| {
            let mut b = sqlx::QueryBuilder::new("UPDATE push_subscriptions SET last_used_at = ");
            b.push_bind(now).push(" WHERE id IN (");
            let mut list = b.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            b.push(")");
            b.build().persistent(false).execute(&mut **q).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// How many subscriptions a leader has.
pub async fn count_for_leader(c: &mut Conn<'_>, church: ChurchId, leader: LeaderId) -> Result<i64> {
    const SQL: &str = "SELECT COUNT(*) FROM push_subscriptions WHERE church_id = $1 AND leader_id = $2";
    run!(c, |q| sqlx::query_scalar::<_, i64>(SQL).bind(church).bind(leader).fetch_one(&mut **q).await)
}

/// The subscriptions of the church's leaders who chose push notifications.
pub async fn of_push_leaders(c: &mut Conn<'_>, church: ChurchId) -> Result<Vec<SubscriptionRow>> {
    let sql = format!(
        "SELECT {} FROM push_subscriptions s JOIN leaders l ON l.id = s.leader_id AND l.church_id = s.church_id
         WHERE s.church_id = $1 AND l.notify_push ORDER BY s.created_at, s.id LIMIT 10000",
        COLUMNS.split(", ").map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", ")
    );
    run!(c, |q| sqlx::query_as::<_, SubscriptionRow>(&sql).bind(church).fetch_all(&mut **q).await)
}

/// Writes `job` (a notification job of `church`) only when one of the church's leaders chose
/// push and has a subscription: one statement, inside the inbound transaction. True if written.
pub async fn insert_job_if_subscribed(c: &mut Conn<'_>, job: &super::jobs::JobRow) -> Result<bool> {
    const SQL: &str = "INSERT INTO jobs (id, kind, payload, church_id, state, priority, run_at, attempts, max_attempts,
                           created_at, updated_at)
                       SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10
                       WHERE EXISTS (SELECT 1 FROM push_subscriptions s JOIN leaders l ON l.id = s.leader_id
                                     WHERE s.church_id = $4 AND l.notify_push)";
    run!(c, |q| sqlx::query(SQL)
        .bind(job.id)
        .bind(&job.kind)
        .bind(&job.payload)
        .bind(job.church_id)
        .bind(job.state)
        .bind(job.priority)
        .bind(job.run_at)
        .bind(job.attempts)
        .bind(job.max_attempts)
        .bind(job.created_at)
        .execute(&mut **q)
        .await
        .map(|r| r.rows_affected() == 1))
}

/// What a notification says of one new message: who wrote (their name or the last digits of
/// their number) and what.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NoticeRow {
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub content: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone_last4: String,
    /// The message was written to a group text (the member above is its sender).
    pub is_group: bool,
}

/// The messages of `church` with these ids, with their member.
pub async fn notices(c: &mut Conn<'_>, church: ChurchId, messages: &[MessageId]) -> Result<Vec<NoticeRow>> {
    let mut out = Vec::with_capacity(messages.len());
    for chunk in messages.chunks(500) {
        let rows: Vec<NoticeRow> = run!(&mut *c, |q| {
            let mut b = sqlx::QueryBuilder::new(
                "SELECT m.id AS message_id, m.conversation_id, m.content, b.first_name, b.last_name, b.phone_last4,
                        (cv.group_key IS NOT NULL) AS is_group
                 FROM messages m JOIN members b ON b.id = m.member_id JOIN conversations cv ON cv.id = m.conversation_id
                 WHERE m.church_id = ",
            );
            b.push_bind(church).push(" AND m.id IN (");
            let mut list = b.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            b.push(")");
            b.build_query_as::<NoticeRow>().persistent(false).fetch_all(&mut **q).await
        })?;
        out.extend(rows);
    }
    Ok(out)
}
