//! The recipients of a leader's reply to a group conversation, each with their own delivery
//! (a group MMS reaches every member separately, and each delivery report names one).

use chrono::{DateTime, Utc};

use super::{run, Conn, Result};
use crate::domain::{ChurchId, DeliveryStatus, MemberId, MessageId};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecipientRow {
    pub message_id: MessageId,
    pub member_id: MemberId,
    pub delivery_status: DeliveryStatus,
    pub provider_status: Option<String>,
    pub failure_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A recipient as the send job needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SendRecipient {
    pub member_id: MemberId,
    pub phone_ciphertext: Vec<u8>,
    pub opted_out: bool,
}

/// Records who a group reply goes to, all `queued`.
pub async fn insert_many(
    c: &mut Conn<'_>,
    church: ChurchId,
    message: MessageId,
    members: &[MemberId],
    now: DateTime<Utc>,
) -> Result<()> {
    if members.is_empty() {
        return Ok(());
    }
    run!(c, |q| {
        let mut b = sqlx::QueryBuilder::new(
            "INSERT INTO message_recipients (message_id, member_id, church_id, delivery_status, updated_at) ",
        );
        b.push_values(members, |mut r, m| {
            r.push_bind(message).push_bind(*m).push_bind(church).push_bind(DeliveryStatus::Queued).push_bind(now);
        });
        b.build().persistent(false).execute(&mut **q).await.map(|_| ())
    })
}

/// The recipients of a message with their numbers (machine side: the send job).
pub async fn for_send(c: &mut Conn<'_>, message: MessageId) -> Result<Vec<SendRecipient>> {
    run!(c, |q| sqlx::query_as::<_, SendRecipient>(
        "SELECT r.member_id, m.phone_ciphertext, m.opted_out
         FROM message_recipients r JOIN members m ON m.id = r.member_id
         WHERE r.message_id = $1 ORDER BY m.id"
    )
    .bind(message)
    .fetch_all(&mut **q)
    .await)
}

/// The recipients of these messages of the church (a thread page's group replies).
pub async fn of_messages(c: &mut Conn<'_>, church: ChurchId, ids: &[MessageId]) -> Result<Vec<RecipientRow>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let rows: Vec<RecipientRow> = run!(&mut *c, |q| {
            let mut b = sqlx::QueryBuilder::new(
                "SELECT message_id, member_id, delivery_status, provider_status, failure_reason, updated_at
                 FROM message_recipients WHERE church_id = ",
            );
            b.push_bind(church).push(" AND message_id IN (");
            let mut list = b.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            b.push(") ORDER BY message_id, member_id");
            b.build_query_as::<RecipientRow>().persistent(false).fetch_all(&mut **q).await
        })?;
        out.extend(rows);
    }
    Ok(out)
}

/// The rank of a recipient's status in SQL, matching `DeliveryStatus::rank`.
const RANK: &str = "CASE delivery_status WHEN 'queued' THEN 0 WHEN 'sending' THEN 1 WHEN 'sent' THEN 2 ELSE 3 END";

/// One recipient's delivery moves forward (never back); the carrier's own word is always kept.
/// `member` none: every recipient of the message (the carrier's answer to the send itself).
pub async fn apply(
    c: &mut Conn<'_>,
    message: MessageId,
    member: Option<MemberId>,
    provider_status: Option<&str>,
    status: Option<DeliveryStatus>,
    failure_reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<u64> {
    // A group's recipients never see `link_sent` (that is the message's own first status).
    let status = status.filter(|s| *s != DeliveryStatus::LinkSent);
    let sql = format!(
        "UPDATE message_recipients SET
             provider_status = COALESCE($3, provider_status),
             failure_reason = CASE WHEN $4 IS NOT NULL AND {RANK} < $5
                                   THEN CASE WHEN $4 = 'failed' THEN $6 ELSE NULL END
                                   ELSE failure_reason END,
             delivery_status = CASE WHEN $4 IS NOT NULL AND {RANK} < $5 THEN $4 ELSE delivery_status END,
             updated_at = $7
         WHERE message_id = $1 AND ($2 IS NULL OR member_id = $2)"
    );
    run!(c, |q| sqlx::query(&sql)
        .bind(message)
        .bind(member)
        .bind(provider_status)
        .bind(status)
        .bind(status.map_or(0, |s| i32::from(s.rank())))
        .bind(failure_reason)
        .bind(now)
        .execute(&mut **q)
        .await
        .map(|r| r.rows_affected()))
}

/// Every recipient's status of one message (machine side), to sum up the message's own.
pub async fn statuses(c: &mut Conn<'_>, message: MessageId) -> Result<Vec<DeliveryStatus>> {
    run!(c, |q| sqlx::query_scalar::<_, DeliveryStatus>(
        "SELECT delivery_status FROM message_recipients WHERE message_id = $1"
    )
    .bind(message)
    .fetch_all(&mut **q)
    .await)
}
