//! Messages of a conversation, both directions.

use chrono::{DateTime, Utc};

use super::{run, Conn, Result};
use crate::domain::{ChurchId, ConversationId, LeaderId, MemberId, MessageId};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: MessageId,
    pub church_id: ChurchId,
    pub conversation_id: ConversationId,
    pub member_id: MemberId,
    pub leader_id: Option<LeaderId>,
    pub direction: String,
    pub content: String,
    pub keyword: Option<String>,
    pub likely_opt_out: bool,
    pub delivery_status: Option<String>,
    pub failure_reason: Option<String>,
    pub provider_message_id: Option<String>,
    pub cc_ciphertext: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, church_id, conversation_id, member_id, leader_id, direction, content, keyword, likely_opt_out, \
                       delivery_status, failure_reason, provider_message_id, cc_ciphertext, created_at, updated_at";

pub async fn insert(c: &mut Conn<'_>, m: &MessageRow) -> Result<()> {
    let sql = format!(
        "INSERT INTO messages ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    );
    run!(c, |q| sqlx::query(&sql)
        .bind(m.id)
        .bind(m.church_id)
        .bind(m.conversation_id)
        .bind(m.member_id)
        .bind(m.leader_id)
        .bind(&m.direction)
        .bind(&m.content)
        .bind(&m.keyword)
        .bind(m.likely_opt_out)
        .bind(&m.delivery_status)
        .bind(&m.failure_reason)
        .bind(&m.provider_message_id)
        .bind(&m.cc_ciphertext)
        .bind(m.created_at)
        .bind(m.updated_at)
        .execute(&mut **q)
        .await
        .map(|_| ()))
}

/// A page of a thread, newest first: the `limit` messages older than `before` (or the newest).
pub async fn page(
    c: &mut Conn<'_>,
    church: ChurchId,
    conversation: ConversationId,
    before: Option<MessageId>,
    limit: i64,
) -> Result<Vec<MessageRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM messages
         WHERE church_id = $1 AND conversation_id = $2 AND ($3 IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4"
    );
    run!(c, |q| sqlx::query_as::<_, MessageRow>(&sql)
        .bind(church)
        .bind(conversation)
        .bind(before)
        .bind(limit)
        .fetch_all(&mut **q)
        .await)
}

pub async fn get(c: &mut Conn<'_>, church: ChurchId, id: MessageId) -> Result<Option<MessageRow>> {
    let sql = format!("SELECT {COLUMNS} FROM messages WHERE church_id = $1 AND id = $2");
    run!(c, |q| sqlx::query_as::<_, MessageRow>(&sql).bind(church).bind(id).fetch_optional(&mut **q).await)
}

/// Messages of one conversation in a webhook event (machine side): how many exist.
pub async fn count_in_conversation(c: &mut Conn<'_>, church: ChurchId, conversation: ConversationId) -> Result<i64> {
    run!(c, |q| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM messages WHERE church_id = $1 AND conversation_id = $2"
    )
    .bind(church)
    .bind(conversation)
    .fetch_one(&mut **q)
    .await)
}
