//! Messages of a conversation, both directions.

use chrono::{DateTime, Utc};

use super::{conversations, run, Conn, Result};
use crate::domain::{ChurchId, ConversationId, DeliveryStatus, Direction, LeaderId, MemberId, MessageId, SendState};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: MessageId,
    pub church_id: ChurchId,
    pub conversation_id: ConversationId,
    pub member_id: MemberId,
    pub leader_id: Option<LeaderId>,
    pub direction: Direction,
    pub content: String,
    pub keyword: Option<String>,
    pub likely_opt_out: bool,
    pub delivery_status: Option<DeliveryStatus>,
    pub failure_reason: Option<String>,
    pub provider_message_id: Option<String>,
    pub cc_ciphertext: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Outbound only: the exactly-once marker (`pending` → `in_flight` → `accepted` | `failed`).
    pub send_state: Option<SendState>,
    pub send_started_at: Option<DateTime<Utc>>,
    /// The carrier's own last status word, kept as received (also unknown future values).
    pub provider_status: Option<String>,
    /// Outbound only: `sms`, `mms`, `mms_text` (long text as MMS) or `link`.
    pub send_mode: Option<String>,
    /// Outbound `link` only: the photo's MMS-sized preview goes with the link, by MMS.
    pub send_preview: bool,
}

impl MessageRow {
    /// A new message of a conversation: no keyword, no delivery or sending state yet. Callers
    /// fill in what they know with `..`.
    pub fn new(
        church: ChurchId,
        conversation: ConversationId,
        member: MemberId,
        direction: Direction,
        content: String,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: MessageId::new(),
            church_id: church,
            conversation_id: conversation,
            member_id: member,
            leader_id: None,
            direction,
            content,
            keyword: None,
            likely_opt_out: false,
            delivery_status: None,
            failure_reason: None,
            provider_message_id: None,
            cc_ciphertext: None,
            created_at: now,
            updated_at: now,
            send_state: None,
            send_started_at: None,
            provider_status: None,
            send_mode: None,
            send_preview: false,
        }
    }
}

const COLUMNS: &str =
    "id, church_id, conversation_id, member_id, leader_id, direction, content, keyword, likely_opt_out, \
                       delivery_status, failure_reason, provider_message_id, cc_ciphertext, created_at, updated_at, \
                       send_state, send_started_at, provider_status, send_mode, send_preview";

pub async fn insert(c: &mut Conn<'_>, m: &MessageRow) -> Result<()> {
    insert_many(c, std::slice::from_ref(m)).await
}

/// Inserts many messages: on PostgreSQL in one statement whatever their number, each column
/// passed as an array (one text, prepared once per connection); on SQLite in as few statements
/// as its parameter limit allows.
pub async fn insert_many(c: &mut Conn<'_>, rows: &[MessageRow]) -> Result<()> {
    insert_moving(c, rows, DateTime::UNIX_EPOCH, &[]).await // nothing moved: the time is unused
}

/// [`insert_many`] with [`conversations::record_messages`] for the conversations the messages
/// moved: on PostgreSQL both in one statement (the update a data-modifying `WITH`), one round
/// trip less for every batch of inbound messages.
pub async fn insert_moving(
    c: &mut Conn<'_>,
    rows: &[MessageRow],
    at: DateTime<Utc>,
    moved: &[conversations::Moved],
) -> Result<()> {
    match c {
        Conn::Postgres(q) => {
            let insert = format!(
                "INSERT INTO messages ({COLUMNS})
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[],
                     $7::text[], $8::text[], $9::boolean[], $10::text[], $11::text[], $12::text[], $13::bytea[],
                     $14::timestamptz[], $15::timestamptz[], $16::text[], $17::timestamptz[], $18::text[],
                     $19::text[], $20::boolean[])"
            );
            let sql = if moved.is_empty() {
                insert
            } else {
                format!("WITH moved AS ({}) {insert}", conversations::moving_sql(21))
            };
            let column = |f: &dyn Fn(&MessageRow) -> Option<&str>| rows.iter().map(f).collect::<Vec<_>>();
            let query = sqlx::query(&sql)
                .bind(rows.iter().map(|m| m.id.0).collect::<Vec<_>>())
                .bind(rows.iter().map(|m| m.church_id.0).collect::<Vec<_>>())
                .bind(rows.iter().map(|m| m.conversation_id.0).collect::<Vec<_>>())
                .bind(rows.iter().map(|m| m.member_id.0).collect::<Vec<_>>())
                .bind(rows.iter().map(|m| m.leader_id.map(|l| l.0)).collect::<Vec<_>>())
                .bind(column(&|m| Some(m.direction.as_str())))
                .bind(column(&|m| Some(m.content.as_str())))
                .bind(column(&|m| m.keyword.as_deref()))
                .bind(rows.iter().map(|m| m.likely_opt_out).collect::<Vec<_>>())
                .bind(column(&|m| m.delivery_status.map(|d| d.as_str())))
                .bind(column(&|m| m.failure_reason.as_deref()))
                .bind(column(&|m| m.provider_message_id.as_deref()))
                .bind(rows.iter().map(|m| m.cc_ciphertext.as_deref()).collect::<Vec<_>>())
                .bind(rows.iter().map(|m| m.created_at).collect::<Vec<_>>())
                .bind(rows.iter().map(|m| m.updated_at).collect::<Vec<_>>())
                .bind(column(&|m| m.send_state.map(|s| s.as_str())))
                .bind(rows.iter().map(|m| m.send_started_at).collect::<Vec<_>>())
                .bind(column(&|m| m.provider_status.as_deref()))
                .bind(column(&|m| m.send_mode.as_deref()))
                .bind(rows.iter().map(|m| m.send_preview).collect::<Vec<_>>());
            let query = if moved.is_empty() { query } else { conversations::bind_moved(query, at, moved) };
            query.execute(&mut **q).await?;
        }
        Conn::Sqlite(q) => {
            // 20 parameters a row: 500 rows stay far below SQLite's 32,766.
            for chunk in rows.chunks(500) {
                let mut b = sqlx::QueryBuilder::new(format!("INSERT INTO messages ({COLUMNS}) "));
                b.push_values(chunk, |mut r, m| {
                    r.push_bind(m.id)
                        .push_bind(m.church_id)
                        .push_bind(m.conversation_id)
                        .push_bind(m.member_id)
                        .push_bind(m.leader_id)
                        .push_bind(m.direction)
                        .push_bind(&m.content)
                        .push_bind(&m.keyword)
                        .push_bind(m.likely_opt_out)
                        .push_bind(m.delivery_status)
                        .push_bind(&m.failure_reason)
                        .push_bind(&m.provider_message_id)
                        .push_bind(&m.cc_ciphertext)
                        .push_bind(m.created_at)
                        .push_bind(m.updated_at)
                        .push_bind(m.send_state)
                        .push_bind(m.send_started_at)
                        .push_bind(&m.provider_status)
                        .push_bind(&m.send_mode)
                        .push_bind(m.send_preview);
                });
                // One row is always the same statement, worth preparing once; a batch's text
                // varies with its length and would crowd the per-connection statement cache.
                b.build().persistent(chunk.len() == 1).execute(&mut **q).await?;
            }
            conversations::record_messages(c, at, moved).await?;
        }
    }
    Ok(())
}

/// A page of a thread, newest first: the `limit` messages older than `before` (or the newest).
/// The SQL of [`page`] (its plan is checked by the plan tests).
pub(crate) fn page_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM messages
         WHERE church_id = $1 AND conversation_id = $2 AND ($3 IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4"
    )
}

pub async fn page(
    c: &mut Conn<'_>,
    church: ChurchId,
    conversation: ConversationId,
    before: Option<MessageId>,
    limit: i64,
) -> Result<Vec<MessageRow>> {
    let sql = page_sql();
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

/// Messages of a church in one direction (benchmarks read back what they sent).
pub async fn count_in_church(c: &mut Conn<'_>, church: ChurchId, direction: Direction) -> Result<i64> {
    run!(c, |q| sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM messages WHERE church_id = $1 AND direction = $2")
        .bind(church)
        .bind(direction)
        .fetch_one(&mut **q)
        .await)
}

/// Machine side (jobs, status webhooks): by id alone; the row carries its church.
pub async fn get_for_job(c: &mut Conn<'_>, id: MessageId) -> Result<Option<MessageRow>> {
    let sql = format!("SELECT {COLUMNS} FROM messages WHERE id = $1");
    run!(c, |q| sqlx::query_as::<_, MessageRow>(&sql).bind(id).fetch_optional(&mut **q).await)
}

/// Machine side (status webhooks without koinonia's id): by the carrier's message id.
pub async fn find_by_provider_id(c: &mut Conn<'_>, provider_id: &str) -> Result<Option<MessageRow>> {
    let sql = format!("SELECT {COLUMNS} FROM messages WHERE provider_message_id = $1");
    run!(c, |q| sqlx::query_as::<_, MessageRow>(&sql).bind(provider_id).fetch_optional(&mut **q).await)
}

/// pending → in_flight, committed before the carrier is called. False when it was not pending.
pub async fn mark_in_flight(c: &mut Conn<'_>, id: MessageId, now: DateTime<Utc>) -> Result<bool> {
    run!(c, |q| sqlx::query(
        "UPDATE messages SET send_state = 'in_flight', send_started_at = $2, updated_at = $2
         WHERE id = $1 AND send_state = 'pending'"
    )
    .bind(id)
    .bind(now)
    .execute(&mut **q)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// in_flight → pending: the carrier certainly did not take it (retry later).
pub async fn back_to_pending(c: &mut Conn<'_>, id: MessageId, reason: &str, now: DateTime<Utc>) -> Result<bool> {
    run!(c, |q| sqlx::query(
        "UPDATE messages SET send_state = 'pending', failure_reason = $2, updated_at = $3
         WHERE id = $1 AND send_state = 'in_flight'"
    )
    .bind(id)
    .bind(reason)
    .bind(now)
    .execute(&mut **q)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// The rank of a delivery status in SQL, matching `DeliveryStatus::rank`.
const RANK: &str = "CASE COALESCE(delivery_status, 'queued') WHEN 'queued' THEN 0 WHEN 'link_sent' THEN 0 \
                    WHEN 'sending' THEN 1 WHEN 'sent' THEN 2 ELSE 3 END";

/// The carrier took the message: its id is recorded and the status moves forward (never back).
pub async fn mark_accepted(
    c: &mut Conn<'_>,
    id: MessageId,
    provider_id: &str,
    status: Option<DeliveryStatus>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let sql = format!(
        "UPDATE messages SET send_state = 'accepted', provider_message_id = COALESCE(provider_message_id, $2),
             delivery_status = CASE WHEN $3 IS NOT NULL AND {RANK} < $4 THEN $3 ELSE delivery_status END,
             failure_reason = NULL, updated_at = $5
         WHERE id = $1 AND send_state IN ('pending', 'in_flight')"
    );
    run!(c, |q| sqlx::query(&sql)
        .bind(id)
        .bind(provider_id)
        .bind(status)
        .bind(status.map_or(0, |s| i32::from(s.rank())))
        .bind(now)
        .execute(&mut **q)
        .await
        .map(|r| r.rows_affected() == 1))
}

/// The message will not be sent: failed with a reason a leader can read.
pub async fn mark_send_failed(c: &mut Conn<'_>, id: MessageId, reason: &str, now: DateTime<Utc>) -> Result<bool> {
    run!(c, |q| sqlx::query(
        "UPDATE messages SET send_state = 'failed', delivery_status = 'failed', failure_reason = $2, updated_at = $3
         WHERE id = $1 AND send_state IN ('pending', 'in_flight')"
    )
    .bind(id)
    .bind(reason)
    .bind(now)
    .execute(&mut **q)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// A delivery report. The status moves only forward; the carrier's raw word is always kept; an
/// interrupted send (still `in_flight`) is reconciled to `accepted` with the carrier's id.
#[allow(clippy::too_many_arguments)]
pub async fn apply_delivery_report(
    c: &mut Conn<'_>,
    id: MessageId,
    provider_id: &str,
    provider_status: &str,
    status: Option<DeliveryStatus>,
    failure_reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let sql = format!(
        "UPDATE messages SET
             provider_message_id = COALESCE(provider_message_id, $2),
             provider_status = $3,
             send_state = CASE WHEN send_state IN ('in_flight', 'pending') THEN 'accepted' ELSE send_state END,
             failure_reason = CASE WHEN $4 IS NOT NULL AND {RANK} < $5
                                   THEN CASE WHEN $4 = 'failed' THEN $6 ELSE NULL END
                                   ELSE failure_reason END,
             delivery_status = CASE WHEN $4 IS NOT NULL AND {RANK} < $5 THEN $4 ELSE delivery_status END,
             updated_at = $7
         WHERE id = $1 AND direction = 'outbound'"
    );
    run!(c, |q| sqlx::query(&sql)
        .bind(id)
        .bind(provider_id)
        .bind(provider_status)
        .bind(status)
        .bind(status.map_or(0, |s| i32::from(s.rank())))
        .bind(failure_reason)
        .bind(now)
        .execute(&mut **q)
        .await
        .map(|r| r.rows_affected() == 1))
}

/// What sending one outbound message needs beyond the message: the church's number and the
/// member's state (machine side).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SendContext {
    pub church_number: String,
    pub phone_ciphertext: Vec<u8>,
    pub opted_out: bool,
    pub unreachable: bool,
    /// A reply to a group conversation: it goes to its recipients ([`super::recipients`]), not to
    /// the member above.
    pub is_group: bool,
}

/// A message to send and, in the same read, where it goes: the send job's first step.
#[derive(sqlx::FromRow)]
struct ForSend {
    #[sqlx(flatten)]
    message: MessageRow,
    church_number: Option<String>,
    phone_ciphertext: Option<Vec<u8>>,
    member_opted_out: Option<bool>,
    member_unreachable: Option<bool>,
    is_group: Option<bool>,
}

/// The message (machine side, by id alone) and its [`SendContext`] (none when its church or
/// member is gone), in one statement.
pub async fn for_send(c: &mut Conn<'_>, id: MessageId) -> Result<Option<(MessageRow, Option<SendContext>)>> {
    let columns: Vec<String> = COLUMNS.split(',').map(|col| format!("m.{}", col.trim())).collect();
    let sql = format!(
        "SELECT {}, ch.phone_number AS church_number, mb.phone_ciphertext, mb.opted_out AS member_opted_out,
                mb.unreachable AS member_unreachable, (cv.group_key IS NOT NULL) AS is_group
         FROM messages m LEFT JOIN churches ch ON ch.id = m.church_id LEFT JOIN members mb ON mb.id = m.member_id
              LEFT JOIN conversations cv ON cv.id = m.conversation_id
         WHERE m.id = $1",
        columns.join(", ")
    );
    let row = run!(c, |q| sqlx::query_as::<_, ForSend>(&sql).bind(id).fetch_optional(&mut **q).await)?;
    Ok(row.map(|r| {
        let is_group = r.is_group.unwrap_or(false);
        let ctx = match (r.church_number, r.phone_ciphertext, r.member_opted_out, r.member_unreachable) {
            (Some(church_number), Some(phone_ciphertext), Some(opted_out), Some(unreachable)) => {
                Some(SendContext { church_number, phone_ciphertext, opted_out, unreachable, is_group })
            }
            _ => None,
        };
        (r.message, ctx)
    }))
}

/// Every message of one conversation, oldest first (a member's data export).
pub async fn of_conversation(
    c: &mut Conn<'_>,
    church: ChurchId,
    conversation: ConversationId,
) -> Result<Vec<MessageRow>> {
    let sql = format!("SELECT {COLUMNS} FROM messages WHERE church_id = $1 AND conversation_id = $2 ORDER BY id");
    run!(c, |q| sqlx::query_as::<_, MessageRow>(&sql).bind(church).bind(conversation).fetch_all(&mut **q).await)
}

/// The SQL of [`own_in_groups`] (its plan is checked by the plan tests: through the groups'
/// threads, never a walk of the church's messages).
pub(crate) fn own_in_groups_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM messages
         WHERE conversation_id IN (SELECT p.conversation_id FROM conversation_participants p WHERE p.member_id = $2)
           AND member_id = $2 AND church_id = $1 AND direction = 'inbound'
         ORDER BY id"
    )
}

/// What a member sent to group conversations, oldest first (their data export).
pub async fn own_in_groups(c: &mut Conn<'_>, church: ChurchId, member: MemberId) -> Result<Vec<MessageRow>> {
    let sql = own_in_groups_sql();
    run!(c, |q| sqlx::query_as::<_, MessageRow>(&sql).bind(church).bind(member).fetch_all(&mut **q).await)
}

/// Who sent each of these messages of the church: its direction and, for a reply, its leader's
/// email (none when that leader was removed). Read in chunks, so any number of ids fits the
/// databases' limits on bound values; ids of other churches are simply absent.
pub async fn senders(
    c: &mut Conn<'_>,
    church: ChurchId,
    ids: &[MessageId],
) -> Result<Vec<(MessageId, Direction, Option<String>)>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let placeholders: Vec<String> = (2..=chunk.len() + 1).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT m.id, m.direction, l.email FROM messages m LEFT JOIN leaders l ON l.id = m.leader_id
             WHERE m.church_id = $1 AND m.id IN ({})",
            placeholders.join(", ")
        );
        let rows: Vec<(MessageId, Direction, Option<String>)> = run!(&mut *c, |q| {
            let mut query = sqlx::query_as(&sql).bind(church);
            for id in chunk {
                query = query.bind(*id);
            }
            query.fetch_all(&mut **q).await
        })?;
        out.extend(rows);
    }
    Ok(out)
}
