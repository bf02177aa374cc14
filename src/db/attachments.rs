//! Files of messages: pending until a worker has stored them, then stored, failed or deleted.

use chrono::{DateTime, Utc};

use super::{run, Conn, Result};
use crate::domain::{AttachmentId, AttachmentStatus, ChurchId, ConversationId, MediaKind, MessageId, PreviewState};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttachmentRow {
    pub id: AttachmentId,
    pub church_id: ChurchId,
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub position: i32,
    pub status: AttachmentStatus,
    pub source_url: Option<String>,
    pub declared_type: Option<String>,
    pub declared_size: Option<i64>,
    pub declared_sha256: Option<String>,
    pub media_type: Option<MediaKind>,
    pub mime_type: Option<String>,
    pub name: String,
    pub storage_key: Option<String>,
    pub size_bytes: Option<i64>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub duration_seconds: Option<f64>,
    pub sha256: Option<String>,
    pub failure_reason: Option<String>,
    pub keep: bool,
    pub created_at: DateTime<Utc>,
    pub stored_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Unguessable token of the `/m/:token` link when the file was sent as a link.
    pub link_token: Option<String>,
    /// Derived JPEGs (see `media::preview`); set together once made.
    pub preview_small_key: Option<String>,
    pub preview_large_key: Option<String>,
    pub preview_large_bytes: Option<i64>,
    /// NULL until tried, then `ready`, `unavailable` or `failed`.
    pub preview_state: Option<PreviewState>,
    /// The virus scanner's word: `clean`, `not_scanned` or `infected` (see [`crate::scan`]);
    /// NULL for files stored before scanning existed.
    pub scan_state: Option<String>,
    /// Why a file is not scanned, or the signature an infected one matched.
    pub scan_detail: Option<String>,
}

impl AttachmentRow {
    /// A new file of a message, known so far only by its place and name: pending, nothing
    /// declared, stored or derived yet. Callers fill in what they know with `..`.
    pub fn new(
        church: ChurchId,
        conversation: ConversationId,
        message: MessageId,
        position: i32,
        name: String,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: AttachmentId::new(),
            church_id: church,
            conversation_id: conversation,
            message_id: message,
            position,
            status: AttachmentStatus::Pending,
            source_url: None,
            declared_type: None,
            declared_size: None,
            declared_sha256: None,
            media_type: None,
            mime_type: None,
            name,
            storage_key: None,
            size_bytes: None,
            width: None,
            height: None,
            duration_seconds: None,
            sha256: None,
            failure_reason: None,
            keep: false,
            created_at: now,
            stored_at: None,
            deleted_at: None,
            link_token: None,
            preview_small_key: None,
            preview_large_key: None,
            preview_large_bytes: None,
            preview_state: None,
            scan_state: None,
            scan_detail: None,
        }
    }
}

const INSERTED: &str = "id, church_id, conversation_id, message_id, position, status, source_url, declared_type, \
                        declared_size, declared_sha256, media_type, mime_type, name, storage_key, size_bytes, width, \
                        height, duration_seconds, sha256, failure_reason, keep, created_at, stored_at, deleted_at, \
                        link_token, scan_state, scan_detail";
const COLUMNS: &str = "id, church_id, conversation_id, message_id, position, status, source_url, declared_type, \
                       declared_size, declared_sha256, media_type, mime_type, name, storage_key, size_bytes, width, \
                       height, duration_seconds, sha256, failure_reason, keep, created_at, stored_at, deleted_at, \
                       link_token, preview_small_key, preview_large_key, preview_large_bytes, preview_state, \
                       scan_state, scan_detail";

pub async fn insert(c: &mut Conn<'_>, a: &AttachmentRow) -> Result<()> {
    let sql = format!(
        "INSERT INTO attachments ({INSERTED}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
         $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)"
    );
    run!(c, |q| sqlx::query(&sql)
        .bind(a.id)
        .bind(a.church_id)
        .bind(a.conversation_id)
        .bind(a.message_id)
        .bind(a.position)
        .bind(a.status)
        .bind(&a.source_url)
        .bind(&a.declared_type)
        .bind(a.declared_size)
        .bind(&a.declared_sha256)
        .bind(a.media_type)
        .bind(&a.mime_type)
        .bind(&a.name)
        .bind(&a.storage_key)
        .bind(a.size_bytes)
        .bind(a.width)
        .bind(a.height)
        .bind(a.duration_seconds)
        .bind(&a.sha256)
        .bind(&a.failure_reason)
        .bind(a.keep)
        .bind(a.created_at)
        .bind(a.stored_at)
        .bind(a.deleted_at)
        .bind(&a.link_token)
        .bind(&a.scan_state)
        .bind(&a.scan_detail)
        .execute(&mut **q)
        .await
        .map(|_| ()))
}

/// One attachment of a church.
pub async fn get(c: &mut Conn<'_>, church: ChurchId, id: AttachmentId) -> Result<Option<AttachmentRow>> {
    let sql = format!("SELECT {COLUMNS} FROM attachments WHERE church_id = $1 AND id = $2");
    run!(c, |q| sqlx::query_as::<_, AttachmentRow>(&sql).bind(church).bind(id).fetch_optional(&mut **q).await)
}

/// Machine side (jobs): by id alone; the row carries its church.
pub async fn get_for_job(c: &mut Conn<'_>, id: AttachmentId) -> Result<Option<AttachmentRow>> {
    let sql = format!("SELECT {COLUMNS} FROM attachments WHERE id = $1");
    run!(c, |q| sqlx::query_as::<_, AttachmentRow>(&sql).bind(id).fetch_optional(&mut **q).await)
}

/// The attachments of the messages `first..=last` (by id) of one conversation, in message order.
/// The SQL of [`for_messages`] (its plan is checked by the plan tests).
pub(crate) fn for_messages_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM attachments
         WHERE church_id = $1 AND conversation_id = $2 AND message_id >= $3 AND message_id <= $4
         ORDER BY message_id, position"
    )
}

pub async fn for_messages(
    c: &mut Conn<'_>,
    church: ChurchId,
    conversation: ConversationId,
    first: MessageId,
    last: MessageId,
) -> Result<Vec<AttachmentRow>> {
    let sql = for_messages_sql();
    run!(c, |q| sqlx::query_as::<_, AttachmentRow>(&sql)
        .bind(church)
        .bind(conversation)
        .bind(first)
        .bind(last)
        .fetch_all(&mut **q)
        .await)
}

/// What a worker learned about a stored file.
#[derive(Debug, Clone)]
pub struct Stored {
    pub storage_key: String,
    pub media_type: MediaKind,
    pub mime_type: String,
    pub name: String,
    pub size_bytes: i64,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub duration_seconds: Option<f64>,
    pub sha256: String,
    /// `clean` or `not_scanned`, and why not.
    pub scan_state: &'static str,
    pub scan_detail: Option<String>,
}

/// pending → stored. False when the attachment was no longer pending.
pub async fn mark_stored(c: &mut Conn<'_>, id: AttachmentId, s: &Stored, now: DateTime<Utc>) -> Result<bool> {
    const SQL: &str = "UPDATE attachments SET status = 'stored', storage_key = $2, media_type = $3, mime_type = $4,
                           name = $5, size_bytes = $6, width = $7, height = $8, duration_seconds = $9, sha256 = $10,
                           failure_reason = NULL, stored_at = $11, scan_state = $12, scan_detail = $13
                       WHERE id = $1 AND status = 'pending'";
    run!(c, |q| sqlx::query(SQL)
        .bind(id)
        .bind(&s.storage_key)
        .bind(s.media_type)
        .bind(&s.mime_type)
        .bind(&s.name)
        .bind(s.size_bytes)
        .bind(s.width)
        .bind(s.height)
        .bind(s.duration_seconds)
        .bind(&s.sha256)
        .bind(now)
        .bind(s.scan_state)
        .bind(&s.scan_detail)
        .execute(&mut **q)
        .await
        .map(|r| r.rows_affected() == 1))
}

/// pending → failed, with the reason a leader will read.
pub async fn mark_failed(c: &mut Conn<'_>, id: AttachmentId, reason: &str) -> Result<bool> {
    run!(c, |q| sqlx::query(
        "UPDATE attachments SET status = 'failed', failure_reason = $2 WHERE id = $1 AND status = 'pending'"
    )
    .bind(id)
    .bind(reason)
    .execute(&mut **q)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// pending or stored → failed because the virus scanner found `signature` (on arrival, or by a
/// rescan): never served again, the reason says so (see [`crate::scan::blocked_reason`]), and
/// the row forgets its objects (a stored one's are deleted next; whatever is left, the orphan
/// sweep removes). False when the file was neither pending nor stored.
pub async fn mark_blocked(c: &mut Conn<'_>, id: AttachmentId, signature: &str) -> Result<bool> {
    const SQL: &str = "UPDATE attachments SET status = 'failed', failure_reason = $2, scan_state = 'infected',
                           scan_detail = $3, storage_key = NULL, preview_small_key = NULL,
                           preview_large_key = NULL, preview_large_bytes = NULL
                       WHERE id = $1 AND status IN ('pending', 'stored')";
    run!(c, |q| sqlx::query(SQL)
        .bind(id)
        .bind(crate::scan::blocked_reason(signature))
        .bind(signature)
        .execute(&mut **q)
        .await
        .map(|r| r.rows_affected() == 1))
}

/// Stored files stored at or after `since` (all when `None`), after the keyset position
/// `after`, oldest first (`koinonia rescan`).
pub async fn stored_since(
    c: &mut Conn<'_>,
    since: Option<DateTime<Utc>>,
    after: Option<(DateTime<Utc>, AttachmentId)>,
    limit: i64,
) -> Result<Vec<AttachmentRow>> {
    stored_page(c, "($1 IS NULL OR stored_at >= $1)", since, after, limit).await
}

/// A page of stored files that also match `filter` (SQL over `$1`, bound to `first`), after the
/// keyset position `after`, oldest first.
async fn stored_page(
    c: &mut Conn<'_>,
    filter: &str,
    first: Option<DateTime<Utc>>,
    after: Option<(DateTime<Utc>, AttachmentId)>,
    limit: i64,
) -> Result<Vec<AttachmentRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM attachments
         WHERE status = 'stored' AND {filter}
           AND ($2 IS NULL OR stored_at > $2 OR (stored_at = $2 AND id > $3))
         ORDER BY stored_at, id LIMIT $4"
    );
    run!(c, |q| sqlx::query_as::<_, AttachmentRow>(&sql)
        .bind(first)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(limit)
        .fetch_all(&mut **q)
        .await)
}

/// Records a scan of a stored file that found nothing.
pub async fn set_clean(c: &mut Conn<'_>, id: AttachmentId) -> Result<()> {
    const SQL: &str =
        "UPDATE attachments SET scan_state = 'clean', scan_detail = NULL WHERE id = $1 AND status = 'stored'";
    run!(c, |q| sqlx::query(SQL).bind(id).execute(&mut **q).await.map(|_| ()))
}

/// Notes the latest problem of a still-pending download (shown while it retries).
pub async fn note_problem(c: &mut Conn<'_>, id: AttachmentId, reason: &str) -> Result<()> {
    run!(c, |q| sqlx::query("UPDATE attachments SET failure_reason = $2 WHERE id = $1 AND status = 'pending'")
        .bind(id)
        .bind(reason)
        .execute(&mut **q)
        .await
        .map(|_| ()))
}

/// All attachments of one message, in order (machine side).
pub async fn of_message(c: &mut Conn<'_>, message: MessageId) -> Result<Vec<AttachmentRow>> {
    let sql = format!("SELECT {COLUMNS} FROM attachments WHERE message_id = $1 ORDER BY position");
    run!(c, |q| sqlx::query_as::<_, AttachmentRow>(&sql).bind(message).fetch_all(&mut **q).await)
}

/// By the unguessable token of a `/m/:token` link (the token is the credential).
pub async fn find_by_link_token(c: &mut Conn<'_>, token: &str) -> Result<Option<AttachmentRow>> {
    let sql = format!("SELECT {COLUMNS} FROM attachments WHERE link_token = $1");
    run!(c, |q| sqlx::query_as::<_, AttachmentRow>(&sql).bind(token).fetch_optional(&mut **q).await)
}

/// Stored files older than `cutoff`, not kept, after the keyset position `after`, oldest first.
pub async fn expired(
    c: &mut Conn<'_>,
    cutoff: DateTime<Utc>,
    after: Option<(DateTime<Utc>, AttachmentId)>,
    limit: i64,
) -> Result<Vec<AttachmentRow>> {
    stored_page(c, "keep = false AND stored_at < $1", Some(cutoff), after, limit).await
}

/// stored → deleted (its object already removed), unless a leader marked it "keep" meanwhile.
pub async fn mark_deleted(c: &mut Conn<'_>, id: AttachmentId, reason: &str, now: DateTime<Utc>) -> Result<bool> {
    run!(c, |q| sqlx::query(
        "UPDATE attachments SET status = 'deleted', deleted_at = $2, failure_reason = $3,
             preview_small_key = NULL, preview_large_key = NULL, preview_large_bytes = NULL
         WHERE id = $1 AND status = 'stored' AND keep = false"
    )
    .bind(id)
    .bind(now)
    .bind(reason)
    .execute(&mut **q)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// Exempts a file from retention (or not); false when it is not this church's.
pub async fn set_keep(c: &mut Conn<'_>, church: ChurchId, id: AttachmentId, keep: bool) -> Result<bool> {
    run!(c, |q| sqlx::query("UPDATE attachments SET keep = $3 WHERE church_id = $1 AND id = $2")
        .bind(church)
        .bind(id)
        .bind(keep)
        .execute(&mut **q)
        .await
        .map(|r| r.rows_affected() == 1))
}

/// Every stored original of a member's own conversation and of what they sent to groups, with
/// its attachment id (for erasure; the previews' keys follow from these).
pub async fn keys_of_member(
    c: &mut Conn<'_>,
    church: ChurchId,
    member: crate::domain::MemberId,
) -> Result<Vec<(AttachmentId, String)>> {
    run!(c, |q| sqlx::query_as::<_, (AttachmentId, String)>(
        "SELECT a.id, a.storage_key FROM attachments a JOIN conversations cv ON cv.id = a.conversation_id
         WHERE a.church_id = $1 AND cv.member_id = $2 AND cv.group_key IS NULL AND a.storage_key IS NOT NULL
         UNION ALL
         SELECT a.id, a.storage_key FROM messages m JOIN attachments a ON a.message_id = m.id
         WHERE m.member_id = $2 AND m.church_id = $1 AND m.direction = 'inbound' AND a.storage_key IS NOT NULL
           AND m.conversation_id IN (SELECT p.conversation_id FROM conversation_participants p WHERE p.member_id = $2)"
    )
    .bind(church)
    .bind(member)
    .fetch_all(&mut **q)
    .await)
}

/// Records both previews of a stored file. False when the file is no longer stored (deleted or
/// erased meanwhile): the caller removes the objects it just wrote.
pub async fn set_previews(
    c: &mut Conn<'_>,
    id: AttachmentId,
    small_key: &str,
    large_key: &str,
    large_bytes: i64,
) -> Result<bool> {
    run!(c, |q| sqlx::query(
        "UPDATE attachments SET preview_small_key = $2, preview_large_key = $3, preview_large_bytes = $4,
             preview_state = 'ready'
         WHERE id = $1 AND status = 'stored'"
    )
    .bind(id)
    .bind(small_key)
    .bind(large_key)
    .bind(large_bytes)
    .execute(&mut **q)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// Records that a file has no preview (`unavailable` or `failed`).
pub async fn set_preview_state(c: &mut Conn<'_>, id: AttachmentId, state: PreviewState) -> Result<()> {
    run!(c, |q| {
        sqlx::query(
        "UPDATE attachments SET preview_state = $2 WHERE id = $1 AND (preview_state IS NULL OR preview_state <> 'ready')"
    )
    .bind(id)
    .bind(state)
    .execute(&mut **q)
    .await
    .map(|_| ())
    })
}

/// Filters of the media library (all optional).
#[derive(Debug, Clone, Default)]
pub struct LibraryFilter {
    pub media_type: Option<MediaKind>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub conversation: Option<ConversationId>,
    pub member: Option<crate::domain::MemberId>,
}

/// A church's stored files, newest first, older than `before`.
/// The SQL of [`library`] (its plan is checked by the plan tests). Ordered by `church_id` first
/// (one value here, so the same order) so that only the church's own index serves the order: a
/// walk of every church's files by id is never a candidate.
pub(crate) fn library_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM attachments
         WHERE church_id = $1 AND status = 'stored'
           AND ($2 IS NULL OR media_type = $2)
           AND ($3 IS NULL OR created_at >= $3)
           AND ($4 IS NULL OR created_at < $4)
           AND ($5 IS NULL OR conversation_id = $5)
           AND ($6 IS NULL OR conversation_id IN (SELECT id FROM conversations WHERE church_id = $1 AND member_id = $6 AND group_key IS NULL))
           AND ($7 IS NULL OR id < $7)
         ORDER BY church_id, id DESC LIMIT $8"
    )
}

pub async fn library(
    c: &mut Conn<'_>,
    church: ChurchId,
    f: &LibraryFilter,
    before: Option<AttachmentId>,
    limit: i64,
) -> Result<Vec<AttachmentRow>> {
    let sql = library_sql();
    run!(c, |q| sqlx::query_as::<_, AttachmentRow>(&sql)
        .bind(church)
        .bind(f.media_type)
        .bind(f.from)
        .bind(f.until)
        .bind(f.conversation)
        .bind(f.member)
        .bind(before)
        .bind(limit)
        .fetch_all(&mut **q)
        .await)
}

/// Every attachment of one conversation, in message order (a member's data export).
pub async fn of_conversation(
    c: &mut Conn<'_>,
    church: ChurchId,
    conversation: ConversationId,
) -> Result<Vec<AttachmentRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM attachments WHERE church_id = $1 AND conversation_id = $2 ORDER BY message_id, position"
    );
    run!(c, |q| sqlx::query_as::<_, AttachmentRow>(&sql).bind(church).bind(conversation).fetch_all(&mut **q).await)
}

/// The files of what a member sent to group conversations, in message order (their data export).
pub async fn own_in_groups(
    c: &mut Conn<'_>,
    church: ChurchId,
    member: crate::domain::MemberId,
) -> Result<Vec<AttachmentRow>> {
    let columns: Vec<String> = COLUMNS.split(',').map(|col| format!("a.{}", col.trim())).collect();
    let sql = format!(
        "SELECT {} FROM messages m JOIN attachments a ON a.message_id = m.id
         WHERE m.member_id = $2 AND m.church_id = $1 AND m.direction = 'inbound'
           AND m.conversation_id IN (SELECT p.conversation_id FROM conversation_participants p WHERE p.member_id = $2)
         ORDER BY a.message_id, a.position",
        columns.join(", ")
    );
    run!(c, |q| sqlx::query_as::<_, AttachmentRow>(&sql).bind(church).bind(member).fetch_all(&mut **q).await)
}

/// The object keys rows point to, for the attachments among `ids` that exist: the original and
/// both previews (the orphan sweep keeps exactly these).
pub async fn object_keys(c: &mut Conn<'_>, ids: &[AttachmentId]) -> Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT storage_key, preview_small_key, preview_large_key FROM attachments WHERE id IN ({})",
        placeholders.join(", ")
    );
    let rows: Vec<(Option<String>, Option<String>, Option<String>)> = run!(c, |q| {
        let mut query = sqlx::query_as(&sql);
        for id in ids {
            query = query.bind(*id);
        }
        query.fetch_all(&mut **q).await
    })?;
    Ok(rows.into_iter().flat_map(|(a, b, c)| [a, b, c]).flatten().collect())
}

/// The church's attachments among `ids` (any order; ids of other churches or of nothing are
/// simply absent). Read in chunks, so any number of ids stays within the databases' limits on
/// bound values.
pub async fn get_many(c: &mut Conn<'_>, church: ChurchId, ids: &[AttachmentId]) -> Result<Vec<AttachmentRow>> {
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let placeholders: Vec<String> = (2..=chunk.len() + 1).map(|i| format!("${i}")).collect();
        let sql =
            format!("SELECT {COLUMNS} FROM attachments WHERE church_id = $1 AND id IN ({})", placeholders.join(", "));
        let found: Vec<AttachmentRow> = run!(&mut *c, |q| {
            let mut query = sqlx::query_as::<_, AttachmentRow>(&sql).bind(church);
            for id in chunk {
                query = query.bind(*id);
            }
            query.fetch_all(&mut **q).await
        })?;
        rows.extend(found);
    }
    Ok(rows)
}
