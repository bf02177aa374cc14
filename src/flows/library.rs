//! The church's media library: stored files by kind, date, member or conversation; opening an
//! original (leaders, and members through their `/m/` link), keeping a file past retention, and
//! exporting originals as a ZIP. Every open, keep and export is audited.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::Page;
use crate::config::Config;
use crate::db;
use crate::db::attachments::{AttachmentRow, LibraryFilter};
use crate::db::Db;
use crate::domain::{
    Actor, AttachmentId, AttachmentStatus, ChurchId, ChurchTimeZone, ClientAddr, ConversationId, MediaKind, MemberId,
};
use crate::flows::audit;
use crate::media::export::Entry;
use crate::media::store::MediaStore;

/// What the library reads and writes.
pub struct Deps<'a> {
    pub db: &'a Db,
    pub store: &'a MediaStore,
    pub config: &'a Config,
}

/// Most files one export may hold.
pub const EXPORT_MAX_FILES: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// No such file (or link) here.
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    /// The file is not stored yet.
    #[error("not stored yet")]
    NotYet,
    /// A chosen file is not stored.
    #[error("{0}")]
    NotStored(String),
    /// The file was removed (retention, or erasure of its member).
    #[error("{0}")]
    Gone(String),
    /// The file could not be stored, or has no preview: the sentence says which.
    #[error("{0}")]
    Missing(String),
    #[error("the media store failed: {0}")]
    Store(#[from] crate::media::store::StoreError),
    #[error("stored attachment {0} lacks its key or type")]
    Incomplete(AttachmentId),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Which files of the library, as a person or a form gives it: every part optional.
#[derive(Debug, Clone, Default)]
pub struct FilterInput<'a> {
    /// `image`, `video`, `audio` or `document`.
    pub kind: Option<&'a str>,
    /// From this day (`YYYY-MM-DD`) or time (RFC 3339) on.
    pub from: Option<&'a str>,
    /// Up to this day (included) or time.
    pub to: Option<&'a str>,
    pub member_id: Option<&'a str>,
    pub conversation_id: Option<&'a str>,
}

impl FilterInput<'_> {
    /// Whether a day (not a time) is given, which the church's time zone turns into instants.
    fn names_a_day(&self) -> bool {
        [self.from, self.to].into_iter().flatten().any(|v| !v.is_empty() && DateTime::parse_from_rfc3339(v).is_err())
    }

    /// The filter the database reads, days taken in `zone`; 400-worthy sentences for what is not
    /// acceptable.
    pub fn parse(&self, zone: ChurchTimeZone) -> Result<LibraryFilter, LibraryError> {
        let media_type = match self.kind.filter(|k| !k.is_empty()) {
            Some(k) => Some(
                MediaKind::parse(k)
                    .ok_or_else(|| LibraryError::Invalid("type must be image, video, audio or document".into()))?,
            ),
            None => None,
        };
        Ok(LibraryFilter {
            media_type,
            from: self.from.filter(|s| !s.is_empty()).map(|v| parse_when("from", v, false, zone)).transpose()?,
            until: self.to.filter(|s| !s.is_empty()).map(|v| parse_when("to", v, true, zone)).transpose()?,
            conversation: parse_id("conversationId", self.conversation_id)?.map(ConversationId),
            member: parse_id("memberId", self.member_id)?.map(MemberId),
        })
    }
}

/// A date (`2026-11-27`, the whole day in the church's zone) or an RFC 3339 time; `end` moves a
/// date to the start of its next day.
fn parse_when(field: &str, value: &str, end: bool, zone: ChurchTimeZone) -> Result<DateTime<Utc>, LibraryError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| LibraryError::Invalid(format!("{field} must be a date (YYYY-MM-DD) or an RFC 3339 time")))?;
    let day = if end { day.succ_opt().unwrap_or(day) } else { day };
    Ok(zone.day_start(day))
}

/// The church's zone when `filter` names a day (one read), else UTC unread.
async fn zone_for(
    c: &mut db::Conn<'_>,
    church: ChurchId,
    filter: &FilterInput<'_>,
) -> Result<ChurchTimeZone, LibraryError> {
    if !filter.names_a_day() {
        return Ok(ChurchTimeZone::default());
    }
    Ok(super::accounts::time_zone_in(c, church).await?)
}

/// An optional id given as text.
pub fn parse_id(field: &str, v: Option<&str>) -> Result<Option<uuid::Uuid>, LibraryError> {
    v.filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| LibraryError::Invalid(format!("{field} is not an id"))))
        .transpose()
}

/// A page of the church's stored files, newest first; `cursor` is the previous page's.
pub async fn list(
    deps: &Deps<'_>,
    church: ChurchId,
    filter: &FilterInput<'_>,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Page<AttachmentRow>, LibraryError> {
    let before = parse_id("cursor", cursor)?.map(AttachmentId);
    let mut pooled = deps.db.acquire().await?;
    let c = &mut pooled.conn();
    let filter = filter.parse(zone_for(c, church, filter).await?)?;
    let rows = db::attachments::library(c, church, &filter, before, limit + 1).await?;
    Ok(Page::of(rows, limit, |a| a.id.to_string()))
}

/// How each conversation's member is named in exports and the library: their name, or
/// "member 1234" (the last four digits) when they have none.
pub async fn member_labels(
    deps: &Deps<'_>,
    church: ChurchId,
    files: &[AttachmentRow],
) -> Result<HashMap<ConversationId, String>, LibraryError> {
    let mut pooled = deps.db.acquire().await?;
    labels(&mut pooled.conn(), church, files).await
}

async fn labels(
    c: &mut db::Conn<'_>,
    church: ChurchId,
    files: &[AttachmentRow],
) -> Result<HashMap<ConversationId, String>, LibraryError> {
    let mut ids: Vec<ConversationId> = files.iter().map(|a| a.conversation_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows = db::conversations::get_many(c, church, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let name = crate::domain::full_name(row.first_name.as_deref(), row.last_name.as_deref());
            let label = if name.is_empty() { format!("member {}", row.phone_last4) } else { name };
            (row.id, label)
        })
        .collect())
}

/// Who sent a file: the member (received), or a leader of the church (sent; `None` when that
/// leader was removed since).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    Member,
    Leader(Option<String>),
}

/// Who sent each of these files, by attachment.
pub async fn senders(
    deps: &Deps<'_>,
    church: ChurchId,
    files: &[AttachmentRow],
) -> Result<HashMap<AttachmentId, Sender>, LibraryError> {
    let mut ids: Vec<crate::domain::MessageId> = files.iter().map(|a| a.message_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows = {
        let mut pooled = deps.db.acquire().await?;
        db::messages::senders(&mut pooled.conn(), church, &ids).await?
    };
    let by_message: HashMap<_, _> = rows
        .into_iter()
        .map(|(id, direction, email)| {
            let sender =
                if direction == crate::domain::Direction::Outbound { Sender::Leader(email) } else { Sender::Member };
            (id, sender)
        })
        .collect();
    Ok(files.iter().filter_map(|a| Some((a.id, by_message.get(&a.message_id)?.clone()))).collect())
}

/// What to export: chosen files, or every stored file matching a filter.
pub enum Selection<'a> {
    Ids(Vec<AttachmentId>),
    Filter(FilterInput<'a>),
}

/// A ZIP about to be streamed: its download name and its entries.
pub struct Export {
    pub file_name: String,
    pub entries: Vec<Entry>,
}

/// Chooses the originals of an export (audited with the files it holds). Chosen ids must all be
/// the church's stored files; a filter may match at most [`EXPORT_MAX_FILES`].
pub async fn export(deps: &Deps<'_>, actor: &Actor, selection: Selection<'_>) -> Result<Export, LibraryError> {
    let mut pooled = deps.db.acquire().await?;
    let c = &mut pooled.conn();
    let files = match selection {
        Selection::Ids(ids) => {
            if ids.is_empty() || ids.len() > EXPORT_MAX_FILES {
                return Err(LibraryError::Invalid(format!("ids must name 1 to {EXPORT_MAX_FILES} files")));
            }
            let found = db::attachments::get_many(c, actor.church, &ids).await?;
            let mut by_id: HashMap<AttachmentId, AttachmentRow> = found.into_iter().map(|a| (a.id, a)).collect();
            let mut files = Vec::with_capacity(ids.len());
            for id in ids {
                // A repeated id names a file already taken.
                let Some(a) = by_id.remove(&id) else {
                    if files.iter().any(|f: &AttachmentRow| f.id == id) {
                        continue;
                    }
                    return Err(LibraryError::NotFound);
                };
                if a.status != AttachmentStatus::Stored {
                    return Err(LibraryError::NotStored(format!("file {id} is not stored (it is {})", a.status)));
                }
                files.push(a);
            }
            files
        }
        Selection::Filter(filter) => {
            let filter = filter.parse(zone_for(c, actor.church, &filter).await?)?;
            let mut files = Vec::new();
            let mut before = None;
            loop {
                let page = db::attachments::library(c, actor.church, &filter, before, 500).await?;
                let Some(last) = page.last() else { break };
                before = Some(last.id);
                let full = page.len() < 500;
                files.extend(page);
                if files.len() > EXPORT_MAX_FILES {
                    return Err(LibraryError::Invalid(format!(
                        "at most {EXPORT_MAX_FILES} files per export; narrow the filter"
                    )));
                }
                if full {
                    break;
                }
            }
            files
        }
    };
    if files.is_empty() {
        return Err(LibraryError::Invalid("no stored file matches".into()));
    }
    let member_of = labels(c, actor.church, &files).await?;
    let zone = super::accounts::time_zone_in(c, actor.church).await?;
    let ids: Vec<String> = files.iter().map(|a| a.id.to_string()).collect();
    audit::record(c, audit::Entry::by(actor, "media.export").detail(serde_json::json!({ "files": ids }))).await?;
    Ok(Export {
        file_name: format!("koinonia-media-{}.zip", zone.local(crate::clock::now()).format("%Y-%m-%d")),
        entries: zip_entries(&files, &member_of, zone),
    })
}

/// Names entries `{YYYY-MM-DD} {member}/{name}` (the day in the church's zone), keeping them unique.
fn zip_entries(
    files: &[AttachmentRow],
    member_of: &HashMap<ConversationId, String>,
    zone: ChurchTimeZone,
) -> Vec<Entry> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    files
        .iter()
        .filter_map(|a| {
            let key = a.storage_key.clone()?;
            let folder = format!(
                "{} {}",
                zone.local(a.created_at).format("%Y-%m-%d"),
                member_of.get(&a.conversation_id).map_or("member", String::as_str)
            );
            let base = format!(
                "{}/{}",
                crate::media::names::safe_name(&folder).replace('_', " "),
                crate::media::names::display_name(&a.name)
            );
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            let path = if *n == 1 {
                base
            } else {
                match base.rsplit_once('.') {
                    Some((stem, ext)) if !stem.ends_with('/') => format!("{stem} ({n}).{ext}"),
                    _ => format!("{base} ({n})"),
                }
            };
            Some(Entry { key, path })
        })
        .collect()
}

/// A fresh, short-lived URL of a stored original for a leader (`MEDIA_VIEW_TTL_SECONDS`); the
/// view is audited.
pub async fn open(deps: &Deps<'_>, actor: &Actor, id: AttachmentId) -> Result<String, LibraryError> {
    let a = {
        let mut pooled = deps.db.acquire().await?;
        db::attachments::get(&mut pooled.conn(), actor.church, id).await?.ok_or(LibraryError::NotFound)?
    };
    match a.status {
        AttachmentStatus::Stored => {}
        AttachmentStatus::Pending => return Err(LibraryError::NotYet),
        AttachmentStatus::Deleted => {
            let why = a.failure_reason.clone().unwrap_or_else(|| "media removed".into());
            return Err(LibraryError::Gone(format!("this file is gone: {why}")));
        }
        AttachmentStatus::Failed | AttachmentStatus::Blocked => {
            let reason = a.failure_reason.as_deref().unwrap_or("unknown reason");
            return Err(LibraryError::Missing(format!("this file could not be stored: {reason}")));
        }
    }
    presign_audited(deps, &a, audit::Entry::by(actor, "media.view")).await
}

/// The same for a member opening their `/m/:token` link (the token is the credential).
pub async fn open_link(deps: &Deps<'_>, token: &str, client: ClientAddr) -> Result<String, LibraryError> {
    if token.len() != 22 || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(LibraryError::NotFound);
    }
    let a = {
        let mut pooled = deps.db.acquire().await?;
        db::attachments::find_by_link_token(&mut pooled.conn(), token).await?.ok_or(LibraryError::NotFound)?
    };
    match a.status {
        AttachmentStatus::Stored => {}
        AttachmentStatus::Deleted => return Err(LibraryError::Gone("this file has been removed".into())),
        AttachmentStatus::Pending | AttachmentStatus::Failed | AttachmentStatus::Blocked => {
            return Err(LibraryError::NotFound)
        }
    }
    let entry = audit::Entry::member(a.church_id, "media.link_open", client);
    presign_audited(deps, &a, entry).await
}

/// Audits the access and gives a fresh URL of the stored original, valid for
/// `MEDIA_VIEW_TTL_SECONDS`.
pub(crate) async fn presign_audited(
    deps: &Deps<'_>,
    a: &AttachmentRow,
    entry: audit::Entry,
) -> Result<String, LibraryError> {
    let (Some(key), Some(mime)) = (a.storage_key.as_deref(), a.mime_type.as_deref()) else {
        return Err(LibraryError::Incomplete(a.id));
    };
    let url = deps.store.presign_get(key, deps.config.media_view_ttl, mime, &a.name).await?;
    let entry = entry.subject("attachment", a.id.0).detail(serde_json::json!({ "conversationId": a.conversation_id }));
    let mut pooled = deps.db.acquire().await?;
    audit::record(&mut pooled.conn(), entry).await?;
    Ok(url)
}

/// A file's derived JPEG as a stream with its length (not audited: a thread shows dozens).
pub async fn preview(
    deps: &Deps<'_>,
    church: ChurchId,
    id: AttachmentId,
    size: crate::media::preview::Size,
) -> Result<(u64, crate::media::store::ByteStream), LibraryError> {
    let a = {
        let mut pooled = deps.db.acquire().await?;
        db::attachments::get(&mut pooled.conn(), church, id).await?.ok_or(LibraryError::NotFound)?
    };
    let key = match size {
        crate::media::preview::Size::Small => a.preview_small_key.as_deref(),
        crate::media::preview::Size::Large => a.preview_large_key.as_deref(),
    };
    let no_preview = || LibraryError::Missing("this file has no preview".into());
    let Some(key) = key.filter(|_| a.status == AttachmentStatus::Stored) else { return Err(no_preview()) };
    match deps.store.read(key).await {
        Ok(found) => Ok(found),
        Err(crate::media::store::StoreError::Store(object_store::Error::NotFound { .. })) => Err(no_preview()),
        Err(e) => Err(e.into()),
    }
}

/// Exempts a file from retention, or not (audited); the file as it is now.
pub async fn keep(deps: &Deps<'_>, actor: &Actor, id: AttachmentId, keep: bool) -> Result<AttachmentRow, LibraryError> {
    let mut tx = deps.db.begin().await?;
    let c = &mut tx.conn();
    if !db::attachments::set_keep(c, actor.church, id, keep).await? {
        return Err(LibraryError::NotFound);
    }
    let action = if keep { "media.keep" } else { "media.unkeep" };
    audit::record(c, audit::Entry::by(actor, action).subject("attachment", id.0)).await?;
    let row = db::attachments::get(c, actor.church, id).await?.ok_or(LibraryError::NotFound)?;
    tx.commit().await?;
    Ok(row)
}
