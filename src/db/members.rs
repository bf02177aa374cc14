//! Congregation members: one row per phone number per church.

use chrono::{DateTime, Utc};

use super::{run, Conn, Result};
use crate::domain::{ChurchId, ConversationId, MemberId};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub id: MemberId,
    pub church_id: ChurchId,
    pub phone_hash: Vec<u8>,
    pub phone_ciphertext: Vec<u8>,
    pub phone_last4: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub opted_out: bool,
    pub opted_out_at: Option<DateTime<Utc>>,
    pub unreachable: bool,
    pub unreachable_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, church_id, phone_hash, phone_ciphertext, phone_last4, first_name, last_name, \
                       opted_out, opted_out_at, unreachable, unreachable_reason, created_at, updated_at";

/// Finds the member of `church` with this blind index, or creates it from `new`.
pub async fn find_or_create(c: &mut Conn<'_>, new: &MemberRow) -> Result<MemberRow> {
    let sql = format!(
        "INSERT INTO members (id, church_id, phone_hash, phone_ciphertext, phone_last4, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)
         ON CONFLICT (church_id, phone_hash) DO UPDATE SET updated_at = members.updated_at
         RETURNING {COLUMNS}"
    );
    run!(c, |q| sqlx::query_as::<_, MemberRow>(&sql)
        .bind(new.id)
        .bind(new.church_id)
        .bind(&new.phone_hash)
        .bind(&new.phone_ciphertext)
        .bind(&new.phone_last4)
        .bind(new.created_at)
        .fetch_one(&mut **q)
        .await)
}

pub async fn get(c: &mut Conn<'_>, church: ChurchId, id: MemberId) -> Result<Option<MemberRow>> {
    let sql = format!("SELECT {COLUMNS} FROM members WHERE church_id = $1 AND id = $2");
    run!(c, |q| sqlx::query_as::<_, MemberRow>(&sql).bind(church).bind(id).fetch_optional(&mut **q).await)
}

pub async fn find_by_hash(c: &mut Conn<'_>, church: ChurchId, phone_hash: &[u8]) -> Result<Option<MemberRow>> {
    let sql = format!("SELECT {COLUMNS} FROM members WHERE church_id = $1 AND phone_hash = $2");
    run!(c, |q| sqlx::query_as::<_, MemberRow>(&sql).bind(church).bind(phone_hash).fetch_optional(&mut **q).await)
}

/// A known member of a church, found by number, with their conversation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KnownContact {
    pub phone_hash: Vec<u8>,
    pub member_id: MemberId,
    pub opted_out: bool,
    pub conversation_id: ConversationId,
}

/// A member found by number, with their own conversation if they have one yet.
#[derive(sqlx::FromRow)]
struct MaybeContact {
    phone_hash: Vec<u8>,
    member_id: MemberId,
    opted_out: bool,
    conversation_id: Option<ConversationId>,
}

/// The SQL of [`known_contacts`]: from the church's members by their number's blind index (on
/// PostgreSQL the hashes are one array, `$2`; on SQLite `n` parameters, `$2`…), then each one's
/// own conversation (its plan is checked by the plan tests: never a walk of the church's members
/// or conversations).
pub(crate) fn known_contacts_sql(postgres: bool, n: usize) -> String {
    // The conversation is a subquery per member rather than a join: a join lets PostgreSQL, with
    // the statistics of a young database, walk the church's conversations once per member.
    const CONVERSATION: &str = "(SELECT v.id FROM conversations v
                 WHERE v.church_id = m.church_id AND v.member_id = m.id AND v.group_key IS NULL) AS conversation_id";
    if postgres {
        // One statement for any batch (prepared once), and one lookup of the unique index per
        // number: the LIMIT keeps the lateral subquery apart, so PostgreSQL cannot turn it into
        // a join that reads the church's members instead — which it did on a young database,
        // whose statistics put a handful of members in any church.
        return format!(
            "SELECT m.phone_hash, m.id AS member_id, m.opted_out, {CONVERSATION}
             FROM unnest($2::bytea[]) AS h(hash)
             CROSS JOIN LATERAL (SELECT id, church_id, phone_hash, opted_out FROM members
                                 WHERE church_id = $1 AND phone_hash = h.hash LIMIT 1) AS m"
        );
    }
    let list: Vec<String> = (2..n + 2).map(|i| format!("${i}")).collect();
    format!(
        "SELECT m.phone_hash, m.id AS member_id, m.opted_out, {CONVERSATION}
         FROM members m
         WHERE m.church_id = $1 AND m.phone_hash IN ({})",
        list.join(", ")
    )
}

/// The members of `church` with these phone hashes that have their own conversation, in one
/// statement.
pub async fn known_contacts(c: &mut Conn<'_>, church: ChurchId, hashes: &[&[u8]]) -> Result<Vec<KnownContact>> {
    let mut found = Vec::with_capacity(hashes.len());
    let postgres = matches!(c, Conn::Postgres(_));
    for chunk in hashes.chunks(1000) {
        let sql = known_contacts_sql(postgres, chunk.len());
        let rows: Vec<MaybeContact> = match &mut *c {
            Conn::Postgres(q) => {
                sqlx::query_as::<_, MaybeContact>(&sql).bind(church).bind(chunk).fetch_all(&mut **q).await?
            }
            Conn::Sqlite(q) => {
                let mut query = sqlx::query_as::<_, MaybeContact>(&sql).bind(church);
                for h in chunk {
                    query = query.bind(*h);
                }
                query.persistent(chunk.len() == 1).fetch_all(&mut **q).await?
            }
        };
        found.extend(rows.into_iter().filter_map(|r| {
            let conversation_id = r.conversation_id?;
            Some(KnownContact {
                phone_hash: r.phone_hash,
                member_id: r.member_id,
                opted_out: r.opted_out,
                conversation_id,
            })
        }));
    }
    Ok(found)
}

/// Records an opt-out (`true`) or opt-in (`false`) keyword.
pub async fn set_opted_out(
    c: &mut Conn<'_>,
    church: ChurchId,
    id: MemberId,
    opted_out: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    const SQL: &str = "UPDATE members SET opted_out = $3,
                           opted_out_at = CASE WHEN $3 THEN $4 ELSE NULL END, updated_at = $4
                       WHERE church_id = $1 AND id = $2";
    run!(c, |q| sqlx::query(SQL).bind(church).bind(id).bind(opted_out).bind(now).execute(&mut **q).await.map(|_| ()))
}

/// A number that cannot receive messages (landline, invalid): the next reply warns first.
pub async fn set_unreachable(
    c: &mut Conn<'_>,
    church: ChurchId,
    id: MemberId,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    run!(c, |q| {
        sqlx::query(
        "UPDATE members SET unreachable = true, unreachable_reason = $3, updated_at = $4 WHERE church_id = $1 AND id = $2"
    )
    .bind(church)
    .bind(id)
    .bind(reason)
    .bind(now)
    .execute(&mut **q)
    .await
    .map(|_| ())
    })
}

/// A message got through: whatever made the number look unreachable no longer holds.
pub async fn clear_unreachable(c: &mut Conn<'_>, church: ChurchId, id: MemberId, now: DateTime<Utc>) -> Result<()> {
    run!(c, |q| sqlx::query(
        "UPDATE members SET unreachable = false, unreachable_reason = NULL, updated_at = $3
         WHERE church_id = $1 AND id = $2 AND unreachable"
    )
    .bind(church)
    .bind(id)
    .bind(now)
    .execute(&mut **q)
    .await
    .map(|_| ()))
}

/// Names a member; false when the member is not this church's.
pub async fn set_name(
    c: &mut Conn<'_>,
    church: ChurchId,
    id: MemberId,
    first: Option<&str>,
    last: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool> {
    run!(c, |q| sqlx::query(
        "UPDATE members SET first_name = $3, last_name = $4, updated_at = $5 WHERE church_id = $1 AND id = $2"
    )
    .bind(church)
    .bind(id)
    .bind(first)
    .bind(last)
    .bind(now)
    .execute(&mut **q)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// Erases a member: the row goes, and with it (ON DELETE CASCADE) their conversation, messages
/// and attachment rows. False when the member is not this church's.
pub async fn delete(c: &mut Conn<'_>, church: ChurchId, id: MemberId) -> Result<bool> {
    run!(c, |q| sqlx::query("DELETE FROM members WHERE church_id = $1 AND id = $2")
        .bind(church)
        .bind(id)
        .execute(&mut **q)
        .await
        .map(|r| r.rows_affected() == 1))
}
