//! Conversations, with the inbox's summary columns: one per church and member, and one per group
//! of members texting the church number together (a group MMS, keyed by its participants).

use chrono::{DateTime, Utc};

use super::{run, Conn, Result};
use crate::domain::{ChurchId, ConversationId, MemberId};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationRow {
    pub id: ConversationId,
    pub church_id: ChurchId,
    pub member_id: MemberId,
    pub last_message_at: DateTime<Utc>,
    pub last_message_preview: String,
    pub unread_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// A group conversation's key (see [`group_key`]); none for a member's own conversation.
    pub group_key: Option<Vec<u8>>,
}

/// A conversation joined with what the inbox shows of its member.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboxRow {
    pub id: ConversationId,
    pub member_id: MemberId,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone_last4: String,
    pub phone_ciphertext: Vec<u8>,
    pub opted_out: bool,
    pub unreachable: bool,
    pub last_message_at: DateTime<Utc>,
    pub last_message_preview: String,
    pub unread_count: i64,
    pub created_at: DateTime<Utc>,
    /// A group conversation (its `member_*` columns are its first participant's).
    pub is_group: bool,
    /// A group's members in the order they joined; empty for a member's own conversation.
    #[sqlx(skip)]
    pub participants: Vec<Participant>,
}

/// A member of a group conversation, as the inbox shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Participant {
    pub conversation_id: ConversationId,
    pub member_id: MemberId,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone_last4: String,
    pub phone_ciphertext: Vec<u8>,
    pub opted_out: bool,
    pub unreachable: bool,
}

const COLUMNS: &str =
    "id, church_id, member_id, last_message_at, last_message_preview, unread_count, created_at, updated_at, group_key";
const INBOX_COLUMNS: &str = "c.id, c.member_id, m.first_name, m.last_name, m.phone_last4, m.phone_ciphertext, \
                             m.opted_out, m.unreachable, c.last_message_at, c.last_message_preview, c.unread_count, c.created_at, \
                             (c.group_key IS NOT NULL) AS is_group";

pub async fn find_or_create(c: &mut Conn<'_>, new: &ConversationRow) -> Result<ConversationRow> {
    let sql = format!(
        "INSERT INTO conversations (id, church_id, member_id, last_message_at, last_message_preview, unread_count, created_at, updated_at)
         VALUES ($1, $2, $3, $4, '', 0, $4, $4)
         ON CONFLICT (church_id, member_id) WHERE group_key IS NULL DO UPDATE SET updated_at = conversations.updated_at
         RETURNING {COLUMNS}"
    );
    run!(c, |q| sqlx::query_as::<_, ConversationRow>(&sql)
        .bind(new.id)
        .bind(new.church_id)
        .bind(new.member_id)
        .bind(new.created_at)
        .fetch_one(&mut **q)
        .await)
}

/// Moves the conversation to the top of the inbox with a new last message.
pub async fn record_message(
    c: &mut Conn<'_>,
    church: ChurchId,
    id: ConversationId,
    at: DateTime<Utc>,
    preview: &str,
    unread_increment: i64,
) -> Result<()> {
    const SQL: &str = "UPDATE conversations
                       SET last_message_at = CASE WHEN last_message_at > $3 THEN last_message_at ELSE $3 END,
                           last_message_preview = $4, unread_count = unread_count + $5, updated_at = $3,
                           unread_since = CASE WHEN unread_count = 0 AND $5 > 0 THEN $3 ELSE unread_since END
                       WHERE church_id = $1 AND id = $2";
    run!(c, |q| sqlx::query(SQL)
        .bind(church)
        .bind(id)
        .bind(at)
        .bind(preview)
        .bind(unread_increment)
        .execute(&mut **q)
        .await
        .map(|_| ()))
}

/// A conversation that new messages move to the top of its church's inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub church: ChurchId,
    pub id: ConversationId,
    /// The newest message's preview.
    pub preview: String,
    /// How many messages it gained (all unread).
    pub messages: i64,
}

/// PostgreSQL's update of [`record_messages`], its parameters numbered from `$first` (so that
/// [`super::messages::insert_moving`] can run it with the messages' insert): the time, then
/// the conversations' ids, churches, previews and message counts as arrays ([`bind_moved`]).
///
/// The rows are locked in id order first: concurrent batches moving the same conversations
/// would otherwise lock them in the order a scan meets them, which an update changes (the new
/// row version lives elsewhere), and could deadlock (a 1 s stall, a retry).
pub(crate) fn moving_sql(first: usize) -> String {
    let (at, ids, churches, previews, counts) = (first, first + 1, first + 2, first + 3, first + 4);
    format!(
        "UPDATE conversations
         SET last_message_at = CASE WHEN last_message_at > ${at} THEN last_message_at ELSE ${at} END,
             updated_at = ${at}, last_message_preview = u.preview,
             unread_since = CASE WHEN unread_count = 0 THEN ${at} ELSE unread_since END,
             unread_count = unread_count + u.n
         FROM (SELECT id AS locked FROM conversations WHERE id = ANY(${ids}) ORDER BY id FOR NO KEY UPDATE) AS l
         JOIN unnest(${ids}::uuid[], ${churches}::uuid[], ${previews}::text[], ${counts}::bigint[])
             AS u(id, church_id, preview, n) ON u.id = l.locked
         WHERE conversations.id = l.locked AND conversations.church_id = u.church_id"
    )
}

/// Binds [`moving_sql`]'s parameters, in its order.
pub(crate) fn bind_moved<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    at: DateTime<Utc>,
    moved: &[Moved],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    q.bind(at)
        .bind(moved.iter().map(|m| m.id.0).collect::<Vec<_>>())
        .bind(moved.iter().map(|m| m.church.0).collect::<Vec<_>>())
        .bind(moved.iter().map(|m| m.preview.clone()).collect::<Vec<_>>())
        .bind(moved.iter().map(|m| m.messages).collect::<Vec<_>>())
}

/// Moves conversations to the top of their inboxes after new inbound messages: the newest
/// preview, and the messages counted unread (the first one starts the wait an e-mail reminder
/// measures). A conversation of another church than the one named is left alone.
pub async fn record_messages(c: &mut Conn<'_>, at: DateTime<Utc>, moved: &[Moved]) -> Result<()> {
    if moved.is_empty() {
        return Ok(());
    }
    match c {
        Conn::Postgres(q) => {
            bind_moved(sqlx::query(&moving_sql(1)), at, moved).execute(&mut **q).await?;
        }
        Conn::Sqlite(q) => {
            // One writer at a time: no lock order to keep.
            for chunk in moved.chunks(300) {
                let mut b =
                    sqlx::QueryBuilder::new("UPDATE conversations SET last_message_at = CASE WHEN last_message_at > ");
                b.push_bind(at).push(" THEN last_message_at ELSE ").push_bind(at).push(" END, updated_at = ");
                b.push_bind(at).push(", last_message_preview = CASE id");
                for m in chunk {
                    b.push(" WHEN ").push_bind(m.id).push(" THEN ").push_bind(m.preview.as_str());
                }
                // Every conversation moved here gains unread messages: the first one starts the wait.
                b.push(" ELSE last_message_preview END, unread_since = CASE WHEN unread_count = 0 THEN ");
                b.push_bind(at).push(" ELSE unread_since END, unread_count = unread_count + CASE id");
                for m in chunk {
                    b.push(" WHEN ").push_bind(m.id).push(" THEN ").push_bind(m.messages);
                }
                b.push(" ELSE 0 END WHERE ");
                let mut list = b.separated(" OR ");
                for m in chunk {
                    list.push("(id = ").push_bind_unseparated(m.id).push_unseparated(" AND church_id = ");
                    list.push_bind_unseparated(m.church).push_unseparated(")");
                }
                b.build().persistent(false).execute(&mut **q).await?;
            }
        }
    }
    Ok(())
}

/// Keyset position in the inbox (newest first).
#[derive(Debug, Clone, PartialEq)]
pub struct InboxCursor {
    pub last_message_at: DateTime<Utc>,
    pub id: ConversationId,
}

/// What the inbox may be filtered by.
#[derive(Debug, Clone, Default)]
pub struct InboxFilter {
    /// Lower-cased substring of the member's first or last name.
    pub name_like: Option<String>,
    /// Digits the number ends with (up to four).
    pub last_digits: Option<String>,
    /// Exact number, by blind index.
    pub phone_hash: Option<Vec<u8>>,
}

/// The SQL of [`list`] (its plan is checked by the plan tests).
pub(crate) fn list_sql() -> String {
    format!(
        "SELECT {INBOX_COLUMNS} FROM conversations c JOIN members m ON m.id = c.member_id
         WHERE c.church_id = $1 AND m.church_id = $1
           AND ($2 IS NULL OR c.last_message_at < $2 OR (c.last_message_at = $2 AND c.id < $3))
           AND (($4 IS NULL AND $5 IS NULL AND $6 IS NULL)
                OR LOWER(COALESCE(m.first_name, '') || ' ' || COALESCE(m.last_name, '')) LIKE $4
                OR m.phone_last4 LIKE $5
                OR m.phone_hash = $6)
         ORDER BY c.last_message_at DESC, c.id DESC
         LIMIT $7"
    )
}

/// The SQL of [`list`] for a search by number (the whole number, or up to four last digits):
/// from the church's members by index, not by walking its conversations. With `exact`, `$4` is
/// four last digits matched by `members_last4`; otherwise a suffix pattern, matched among the
/// church's members. `$5` is the whole number's blind index.
pub(crate) fn number_search_sql(exact: bool) -> String {
    let digits = if exact { "m.phone_last4 = $4" } else { "m.phone_last4 LIKE $4" };
    format!(
        "SELECT {INBOX_COLUMNS} FROM members m
             JOIN conversations c ON c.church_id = m.church_id AND c.member_id = m.id AND c.group_key IS NULL
         WHERE m.church_id = $1
           AND ($2 IS NULL OR c.last_message_at < $2 OR (c.last_message_at = $2 AND c.id < $3))
           AND ({digits} OR m.phone_hash = $5)
         ORDER BY c.last_message_at DESC, c.id DESC
         LIMIT $6"
    )
}

/// The SQL of [`list`]'s search among the members of groups: the church's members that match
/// (`$4`, `$5`: by number as in [`number_search_sql`]; by name when `by_name`, `$5` unused), then
/// the groups they are in.
pub(crate) fn groups_search_sql(by_name: bool, exact: bool) -> String {
    let matches = match (by_name, exact) {
        (true, _) => {
            "LOWER(COALESCE(pm.first_name, '') || ' ' || COALESCE(pm.last_name, '')) LIKE $4 OR pm.phone_hash = $5"
        }
        (false, true) => "pm.phone_last4 = $4 OR pm.phone_hash = $5",
        (false, false) => "pm.phone_last4 LIKE $4 OR pm.phone_hash = $5",
    };
    format!(
        "SELECT {INBOX_COLUMNS} FROM members pm
             JOIN conversation_participants p ON p.member_id = pm.id
             JOIN conversations c ON c.id = p.conversation_id
             JOIN members m ON m.id = c.member_id
         WHERE pm.church_id = $1 AND c.church_id = $1
           AND ($2 IS NULL OR c.last_message_at < $2 OR (c.last_message_at = $2 AND c.id < $3))
           AND ({matches})
         ORDER BY c.last_message_at DESC, c.id DESC
         LIMIT $6"
    )
}

/// A page of the inbox, newest first, with each group's participants.
pub async fn list(
    c: &mut Conn<'_>,
    church: ChurchId,
    after: Option<&InboxCursor>,
    filter: &InboxFilter,
    limit: i64,
) -> Result<Vec<InboxRow>> {
    let mut rows = list_rows(c, church, after, filter, limit).await?;
    fill_participants(c, church, &mut rows).await?;
    Ok(rows)
}

async fn list_rows(
    c: &mut Conn<'_>,
    church: ChurchId,
    after: Option<&InboxCursor>,
    filter: &InboxFilter,
    limit: i64,
) -> Result<Vec<InboxRow>> {
    let by_number = filter.name_like.is_none() && (filter.last_digits.is_some() || filter.phone_hash.is_some());
    if by_number {
        let digits = filter.last_digits.as_deref().unwrap_or_default();
        let exact = digits.len() == 4;
        // More than four digits match only the whole number: no last-digits pattern.
        let pattern = match digits.len() {
            4 => Some(digits.to_owned()),
            1..=3 => Some(format!("%{digits}")),
            _ => None,
        };
        // A member's own conversations, then the groups they are in: merged in inbox order.
        let mut rows = Vec::new();
        for sql in [number_search_sql(exact), groups_search_sql(false, exact)] {
            let found: Vec<InboxRow> = run!(&mut *c, |q| sqlx::query_as::<_, InboxRow>(&sql)
                .bind(church)
                .bind(after.map(|a| a.last_message_at))
                .bind(after.map(|a| a.id))
                .bind(pattern.as_deref())
                .bind(filter.phone_hash.as_deref())
                .bind(limit)
                .fetch_all(&mut **q)
                .await)?;
            rows.extend(found);
        }
        return Ok(merged(rows, limit));
    }
    // One statement for the rest: absent filters are bound as NULL and switch themselves off.
    let sql = list_sql();
    let name = filter.name_like.as_ref().map(|n| format!("%{}%", escape_like(n)));
    let digits = filter.last_digits.as_ref().map(|d| format!("%{d}"));
    let rows: Vec<InboxRow> = run!(&mut *c, |q| sqlx::query_as::<_, InboxRow>(&sql)
        .bind(church)
        .bind(after.map(|a| a.last_message_at))
        .bind(after.map(|a| a.id))
        .bind(name.as_deref())
        .bind(digits.as_deref())
        .bind(filter.phone_hash.as_deref())
        .bind(limit)
        .fetch_all(&mut **q)
        .await)?;
    let Some(name) = name else { return Ok(rows) };
    // A name also finds the groups its member is in (not only those they started).
    let sql = groups_search_sql(true, false);
    let groups: Vec<InboxRow> = run!(&mut *c, |q| sqlx::query_as::<_, InboxRow>(&sql)
        .bind(church)
        .bind(after.map(|a| a.last_message_at))
        .bind(after.map(|a| a.id))
        .bind(name.as_str())
        .bind(None::<Vec<u8>>)
        .bind(limit)
        .fetch_all(&mut **q)
        .await)?;
    Ok(merged(rows.into_iter().chain(groups).collect(), limit))
}

/// Rows of several searches as one page: inbox order, each conversation once, `limit` at most.
fn merged(mut rows: Vec<InboxRow>, limit: i64) -> Vec<InboxRow> {
    rows.sort_by_key(|r| std::cmp::Reverse((r.last_message_at, r.id)));
    rows.dedup_by_key(|r| r.id);
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    rows
}

/// `%` and `_` in a search are literal characters, not wildcards.
fn escape_like(s: &str) -> String {
    s.replace(['%', '_'], "")
}

/// The SQL of [`get`] (its plan is checked by the plan tests).
pub(crate) fn get_sql() -> String {
    format!(
        "SELECT {INBOX_COLUMNS} FROM conversations c JOIN members m ON m.id = c.member_id
         WHERE c.church_id = $1 AND c.id = $2 AND m.church_id = $1"
    )
}

pub async fn get(c: &mut Conn<'_>, church: ChurchId, id: ConversationId) -> Result<Option<InboxRow>> {
    let sql = get_sql();
    let row =
        run!(&mut *c, |q| sqlx::query_as::<_, InboxRow>(&sql).bind(church).bind(id).fetch_optional(&mut **q).await)?;
    let mut rows: Vec<InboxRow> = row.into_iter().collect();
    fill_participants(c, church, &mut rows).await?;
    Ok(rows.pop())
}

/// Reads the participants of the groups among `rows` (one statement, none without groups).
async fn fill_participants(c: &mut Conn<'_>, church: ChurchId, rows: &mut [InboxRow]) -> Result<()> {
    let groups: Vec<ConversationId> = rows.iter().filter(|r| r.is_group).map(|r| r.id).collect();
    if groups.is_empty() {
        return Ok(());
    }
    let mut found = participants(c, church, &groups).await?;
    for row in rows.iter_mut().filter(|r| r.is_group) {
        row.participants = found.iter().filter(|p| p.conversation_id == row.id).cloned().collect();
    }
    found.clear();
    Ok(())
}

/// The participants of these group conversations of the church, each group's in joining order.
pub async fn participants(c: &mut Conn<'_>, church: ChurchId, ids: &[ConversationId]) -> Result<Vec<Participant>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let rows: Vec<Participant> = run!(&mut *c, |q| {
            let mut b = sqlx::QueryBuilder::new(
                "SELECT p.conversation_id, p.member_id, m.first_name, m.last_name, m.phone_last4, m.phone_ciphertext,
                        m.opted_out, m.unreachable
                 FROM conversation_participants p JOIN members m ON m.id = p.member_id
                 WHERE p.church_id = ",
            );
            b.push_bind(church).push(" AND p.conversation_id IN (");
            let mut list = b.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            b.push(") ORDER BY p.conversation_id, p.position");
            b.build_query_as::<Participant>().persistent(false).fetch_all(&mut **q).await
        })?;
        out.extend(rows);
    }
    Ok(out)
}

/// The key of a group conversation: a digest of its members' ids, in any order (member ids are
/// unique per number and church, and unlike the numbers' blind index never change).
pub fn group_key(members: &[MemberId]) -> Vec<u8> {
    use sha2::Digest;
    let mut ids: Vec<[u8; 16]> = members.iter().map(|m| *m.0.as_bytes()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut hash = sha2::Sha256::new();
    hash.update(b"koinonia group v1");
    for id in &ids {
        hash.update(id);
    }
    hash.finalize().to_vec()
}

/// The group conversation of exactly these members, if there is one.
pub async fn find_group(c: &mut Conn<'_>, church: ChurchId, members: &[MemberId]) -> Result<Option<ConversationId>> {
    let key = group_key(members);
    run!(c, |q| sqlx::query_scalar("SELECT id FROM conversations WHERE church_id = $1 AND group_key = $2")
        .bind(church)
        .bind(&key)
        .fetch_optional(&mut **q)
        .await)
}

/// Finds or creates the group conversation of exactly these members (the first one, who wrote
/// first, is the one the inbox shows first), with its participants. Two first messages of the
/// same group at once still make one conversation.
pub async fn find_or_create_group(
    c: &mut Conn<'_>,
    church: ChurchId,
    members: &[MemberId],
    now: DateTime<Utc>,
) -> Result<ConversationId> {
    if let Some(id) = find_group(c, church, members).await? {
        return Ok(id);
    }
    let key = group_key(members);
    let first = members.first().copied().ok_or(sqlx::Error::RowNotFound)?;
    let id: ConversationId = run!(&mut *c, |q| {
        sqlx::query_scalar(
        "INSERT INTO conversations (id, church_id, member_id, group_key, last_message_at, last_message_preview, unread_count, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, '', 0, $5, $5)
         ON CONFLICT (church_id, group_key) WHERE group_key IS NOT NULL DO UPDATE SET updated_at = conversations.updated_at
         RETURNING id"
    )
    .bind(ConversationId::new())
    .bind(church)
    .bind(first)
    .bind(&key)
    .bind(now)
    .fetch_one(&mut **q)
    .await
    })?;
    for (position, member) in members.iter().enumerate() {
        run!(&mut *c, |q| sqlx::query(
            "INSERT INTO conversation_participants (conversation_id, member_id, church_id, position)
             VALUES ($1, $2, $3, $4) ON CONFLICT (conversation_id, member_id) DO NOTHING"
        )
        .bind(id)
        .bind(*member)
        .bind(church)
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .execute(&mut **q)
        .await
        .map(|_| ()))?;
    }
    Ok(id)
}

/// The group conversations a member is in.
pub async fn groups_of(c: &mut Conn<'_>, church: ChurchId, member: MemberId) -> Result<Vec<ConversationId>> {
    run!(c, |q| sqlx::query_scalar(
        "SELECT conversation_id FROM conversation_participants WHERE member_id = $2 AND church_id = $1"
    )
    .bind(church)
    .bind(member)
    .fetch_all(&mut **q)
    .await)
}

/// A conversation whose unread messages may be worth an e-mail (see [`waiting`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Waiting {
    pub id: ConversationId,
    pub church_id: ChurchId,
    pub last_message_at: DateTime<Utc>,
    pub is_group: bool,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone_last4: String,
}

/// Conversations with a message unread since before `unread_before`, active since `active_since`,
/// not yet told of by e-mail up to their last message or last told before `told_before`; the
/// longest-waiting first, `limit` at most.
pub async fn waiting(
    c: &mut Conn<'_>,
    unread_before: DateTime<Utc>,
    active_since: DateTime<Utc>,
    told_before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Waiting>> {
    run!(c, |q| sqlx::query_as::<_, Waiting>(
        "SELECT c.id, c.church_id, c.last_message_at, (c.group_key IS NOT NULL) AS is_group,
                m.first_name, m.last_name, m.phone_last4
         FROM conversations c JOIN members m ON m.id = c.member_id
              LEFT JOIN email_notifications n ON n.conversation_id = c.id
         WHERE c.unread_count > 0 AND c.last_message_at > $2 AND c.unread_since <= $1
           AND (n.conversation_id IS NULL OR (n.through < c.last_message_at AND n.sent_at <= $3))
         ORDER BY c.unread_since LIMIT $4"
    )
    .bind(unread_before)
    .bind(active_since)
    .bind(told_before)
    .bind(limit)
    .fetch_all(&mut **q)
    .await)
}

/// Claims the e-mail about a conversation up to `through`: false when another instance (or an
/// e-mail since `told_before`) got there first.
pub async fn claim_email(
    c: &mut Conn<'_>,
    w: &Waiting,
    told_before: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool> {
    run!(c, |q| sqlx::query(
        "INSERT INTO email_notifications (conversation_id, church_id, through, sent_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (conversation_id) DO UPDATE SET through = excluded.through, sent_at = excluded.sent_at
         WHERE email_notifications.through < excluded.through AND email_notifications.sent_at <= $5"
    )
    .bind(w.id)
    .bind(w.church_id)
    .bind(w.last_message_at)
    .bind(now)
    .bind(told_before)
    .execute(&mut **q)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// Gives a claim back (the e-mail could not be sent): the next sweep tries again.
pub async fn release_email(c: &mut Conn<'_>, conversation: ConversationId, now: DateTime<Utc>) -> Result<()> {
    run!(c, |q| sqlx::query("DELETE FROM email_notifications WHERE conversation_id = $1 AND sent_at = $2")
        .bind(conversation)
        .bind(now)
        .execute(&mut **q)
        .await
        .map(|_| ()))
}

/// Before a member is erased: each group they head is handed to its next participant (with the
/// leaders' replies filed under that member), so erasing one member of a group takes their own
/// messages only. A group with nobody else left goes with the member. Returns the groups the
/// member was in.
pub async fn leave_groups(c: &mut Conn<'_>, church: ChurchId, member: MemberId) -> Result<Vec<ConversationId>> {
    let groups = groups_of(c, church, member).await?;
    for group in &groups {
        let next: Option<MemberId> = run!(&mut *c, |q| sqlx::query_scalar(
            "SELECT p.member_id FROM conversation_participants p JOIN conversations cv ON cv.id = p.conversation_id
             WHERE p.conversation_id = $1 AND cv.church_id = $2 AND cv.member_id = $3 AND p.member_id <> $3
             ORDER BY p.position LIMIT 1"
        )
        .bind(*group)
        .bind(church)
        .bind(member)
        .fetch_optional(&mut **q)
        .await)?;
        let Some(next) = next else { continue };
        run!(&mut *c, |q| sqlx::query(
            "UPDATE messages SET member_id = $3 WHERE conversation_id = $1 AND church_id = $2 AND member_id = $4
                 AND direction = 'outbound'"
        )
        .bind(*group)
        .bind(church)
        .bind(next)
        .bind(member)
        .execute(&mut **q)
        .await
        .map(|_| ()))?;
        run!(&mut *c, |q| sqlx::query("UPDATE conversations SET member_id = $3 WHERE id = $1 AND church_id = $2")
            .bind(*group)
            .bind(church)
            .bind(next)
            .execute(&mut **q)
            .await
            .map(|_| ()))?;
    }
    Ok(groups)
}

/// [`get`] for many conversations of one church, in one statement per thousand.
pub async fn get_many(c: &mut Conn<'_>, church: ChurchId, ids: &[ConversationId]) -> Result<Vec<InboxRow>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        let rows: Vec<InboxRow> = run!(&mut *c, |q| {
            let mut b = sqlx::QueryBuilder::new(format!(
                "SELECT {INBOX_COLUMNS} FROM conversations c JOIN members m ON m.id = c.member_id
                 WHERE m.church_id = "
            ));
            b.push_bind(church).push(" AND c.church_id = ").push_bind(church).push(" AND c.id IN (");
            let mut list = b.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            b.push(")");
            b.build_query_as::<InboxRow>().persistent(false).fetch_all(&mut **q).await
        })?;
        out.extend(rows);
    }
    fill_participants(c, church, &mut out).await?;
    Ok(out)
}

/// Marks a conversation read for the whole church; false when it is not this church's.
pub async fn mark_read(c: &mut Conn<'_>, church: ChurchId, id: ConversationId) -> Result<bool> {
    run!(c, |q| sqlx::query(
        "UPDATE conversations SET unread_count = 0, unread_since = NULL WHERE church_id = $1 AND id = $2"
    )
    .bind(church)
    .bind(id)
    .execute(&mut **q)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// A member's own (one-to-one) conversation, if any.
pub async fn find_for_member(c: &mut Conn<'_>, church: ChurchId, member: MemberId) -> Result<Option<ConversationId>> {
    run!(c, |q| sqlx::query_scalar::<_, ConversationId>(
        "SELECT id FROM conversations WHERE church_id = $1 AND member_id = $2 AND group_key IS NULL"
    )
    .bind(church)
    .bind(member)
    .fetch_optional(&mut **q)
    .await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_groups_key_is_its_members_in_any_order() {
        let (a, b, c) = (MemberId::new(), MemberId::new(), MemberId::new());
        assert_eq!(group_key(&[a, b, c]), group_key(&[c, a, b]));
        assert_eq!(group_key(&[a, b, b]), group_key(&[b, a]), "each member counts once");
        assert_ne!(group_key(&[a, b]), group_key(&[a, b, c]), "another member, another group");
    }
}
