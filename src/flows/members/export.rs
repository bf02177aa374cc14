//! Everything koinonia keeps about one member, for `GET /api/members/:id/export`: `member.json`
//! (who they are, with the full number), `messages.json` (every message of their conversation
//! with its files' metadata), `messages.txt` (a transcript a person can read) and their stored
//! files under `media/`, named by date and file name. Files that were deleted or never stored
//! are described in `messages.json` only. The ZIP itself is streamed by [`crate::media::export`].

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::crypto::phone::PhoneCryptoError;
use crate::db;
use crate::db::attachments::AttachmentRow;
use crate::db::members::MemberRow;
use crate::db::messages::MessageRow;
use crate::domain::{
    AttachmentId, AttachmentStatus, ChurchId, ChurchTimeZone, ConversationId, Direction, MediaKind, MemberId, MessageId,
};
use crate::media::export::{Entry, Inline};
use crate::media::names;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("the member's number cannot be decrypted: {0}")]
    Crypto(#[from] PhoneCryptoError),
}

/// What the archive will hold.
pub struct MemberExport {
    /// A download name without the number: `koinonia-member-{name or id}-{date}.zip`.
    pub file_name: String,
    pub inline: Vec<Inline>,
    /// The stored originals, under `media/`.
    pub media: Vec<Entry>,
}

/// Gathers a member's data; `None` when the member is not this church's.
pub async fn build(
    db: &crate::db::Db,
    phone: &crate::crypto::phone::PhoneCrypto,
    church: ChurchId,
    id: MemberId,
    now: DateTime<Utc>,
) -> Result<Option<MemberExport>, ExportError> {
    let (member, messages, files, zone, groups) = {
        let mut pooled = db.acquire().await?;
        let c = &mut pooled.conn();
        let Some(member) = db::members::get(c, church, id).await? else { return Ok(None) };
        let zone = crate::flows::accounts::time_zone_in(c, church).await?;
        let (mut messages, mut files) = match db::conversations::find_for_member(c, church, id).await? {
            Some(conversation) => (
                db::messages::of_conversation(c, church, conversation).await?,
                db::attachments::of_conversation(c, church, conversation).await?,
            ),
            None => (Vec::new(), Vec::new()),
        };
        // What they wrote to groups is theirs too (the other members' messages are not).
        let in_groups = db::messages::own_in_groups(c, church, id).await?;
        let groups: HashSet<ConversationId> = in_groups.iter().map(|m| m.conversation_id).collect();
        messages.extend(in_groups);
        files.extend(db::attachments::own_in_groups(c, church, id).await?);
        messages.sort_by_key(|m| m.id);
        files.sort_by_key(|a| (a.message_id, a.position));
        (member, messages, files, zone, groups)
    };
    let phone = phone.decrypt(&member.phone_ciphertext)?;
    let name = display_name(&member);
    let media = media_entries(&files, zone);
    let file_of: HashMap<AttachmentId, &str> = media.iter().map(|(id, e)| (*id, e.path.as_str())).collect();
    let mut by_message: HashMap<MessageId, Vec<&AttachmentRow>> = HashMap::new();
    for a in &files {
        by_message.entry(a.message_id).or_default().push(a);
    }

    let member_json = json!({
        "id": member.id,
        "firstName": member.first_name,
        "lastName": member.last_name,
        "phone": phone.as_str(),
        "optedOut": member.opted_out,
        "optedOutAt": member.opted_out_at.map(iso),
        "unreachable": member.unreachable,
        "unreachableReason": member.unreachable_reason,
        "createdAt": iso(member.created_at),
        "updatedAt": iso(member.updated_at),
        "exportedAt": iso(now),
    });
    let messages_json: Vec<Value> = messages
        .iter()
        .map(|m| message_json(m, by_message.get(&m.id).map_or(&[][..], Vec::as_slice), &file_of))
        .collect();
    let files = Files { by_message: &by_message, file_of: &file_of };
    let transcript = transcript(&name, phone.as_str(), &messages, &files, &groups, now, zone);

    let inline = vec![
        Inline { path: "member.json".into(), bytes: pretty(&member_json) },
        Inline { path: "messages.json".into(), bytes: pretty(&Value::Array(messages_json)) },
        Inline { path: "messages.txt".into(), bytes: Bytes::from(transcript) },
    ];
    Ok(Some(MemberExport {
        file_name: format!("koinonia-member-{}-{}.zip", slug(&member), zone.local(now).format("%Y-%m-%d")),
        inline,
        media: media.into_iter().map(|(_, e)| e).collect(),
    }))
}

fn iso(t: DateTime<Utc>) -> String {
    crate::clock::iso8601(t)
}

fn pretty(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(v).unwrap_or_default())
}

fn display_name(m: &MemberRow) -> String {
    crate::domain::full_name(m.first_name.as_deref(), m.last_name.as_deref())
}

/// ASCII letters and digits of the member's name, or the start of their id: safe in a
/// `Content-Disposition` header and on any file system, and never the number.
fn slug(m: &MemberRow) -> String {
    let mut out = String::new();
    for ch in display_name(m).chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').chars().take(40).collect::<String>();
    if out.is_empty() {
        m.id.0.simple().to_string().chars().take(8).collect()
    } else {
        out
    }
}

/// The stored originals as `media/{YYYY-MM-DD} {file name}`, unique within the archive.
fn media_entries(files: &[AttachmentRow], zone: ChurchTimeZone) -> Vec<(AttachmentId, Entry)> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    files
        .iter()
        .filter(|a| a.status == AttachmentStatus::Stored)
        .filter_map(|a| {
            let key = a.storage_key.clone()?;
            let day = zone.local(a.created_at).format("%Y-%m-%d");
            let base = format!("media/{day} {}", names::display_name(&a.name));
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            let path = if *n == 1 {
                base
            } else {
                match base.rsplit_once('.') {
                    Some((stem, ext)) if !stem.ends_with('/') && !ext.contains('/') => format!("{stem} ({n}).{ext}"),
                    _ => format!("{base} ({n})"),
                }
            };
            Some((a.id, Entry { key, path }))
        })
        .collect()
}

fn message_json(m: &MessageRow, files: &[&AttachmentRow], file_of: &HashMap<AttachmentId, &str>) -> Value {
    json!({
        "id": m.id,
        "direction": m.direction,
        "content": m.content,
        "keyword": m.keyword,
        "likelyOptOut": m.likely_opt_out,
        "groupMms": m.cc_ciphertext.is_some(),
        "deliveryStatus": m.delivery_status,
        "failureReason": m.failure_reason,
        "createdAt": iso(m.created_at),
        "media": files.iter().map(|a| json!({
            "id": a.id,
            "status": a.status,
            "type": a.media_type,
            "mimeType": a.mime_type,
            "name": a.name,
            "sizeBytes": a.size_bytes,
            "width": a.width,
            "height": a.height,
            "durationSeconds": a.duration_seconds,
            "sha256": a.sha256,
            "failureReason": a.failure_reason,
            "storedAt": a.stored_at.map(iso),
            "deletedAt": a.deleted_at.map(iso),
            "file": file_of.get(&a.id),
        })).collect::<Vec<_>>(),
    })
}

/// The files of the exported messages, and where each stored one is in the archive.
struct Files<'a> {
    by_message: &'a HashMap<MessageId, Vec<&'a AttachmentRow>>,
    file_of: &'a HashMap<AttachmentId, &'a str>,
}

fn transcript(
    name: &str,
    phone: &str,
    messages: &[MessageRow],
    files: &Files<'_>,
    groups: &HashSet<ConversationId>,
    now: DateTime<Utc>,
    zone: ChurchTimeZone,
) -> String {
    let who = if name.is_empty() { phone.to_owned() } else { format!("{name} ({phone})") };
    let member_label = if name.is_empty() { "Member" } else { name };
    let to_group = format!("{member_label}, to a group text");
    // `%Z` names the offset's abbreviation (CST, IST, or +0530 where a zone has none).
    let mut out = format!(
        "Messages between the church and {who}\nExported {}. Times are the church's local time ({zone}).\n",
        zone.local(now).format("%Y-%m-%d %H:%M %Z"),
    );
    if messages.is_empty() {
        out.push_str("\n(no messages)\n");
    }
    for m in messages {
        let from = match m.direction {
            Direction::Outbound => "Church",
            Direction::Inbound if groups.contains(&m.conversation_id) => to_group.as_str(),
            Direction::Inbound => member_label,
        };
        out.push_str(&format!("\n{}  {from}", zone.local(m.created_at).format("%Y-%m-%d %H:%M")));
        if let Some(status) = &m.delivery_status {
            out.push_str(&format!(" [{status}]"));
        }
        out.push_str(":\n");
        for line in m.content.lines() {
            out.push_str(&format!("  {line}\n"));
        }
        for a in files.by_message.get(&m.id).map_or(&[][..], Vec::as_slice) {
            let kind = a.media_type.map_or("file", MediaKind::as_str);
            match files.file_of.get(&a.id) {
                Some(path) => out.push_str(&format!("  [{kind}: {}] {path}\n", a.name)),
                None => out.push_str(&format!(
                    "  [{kind}: {}] not included: {}\n",
                    a.name,
                    a.failure_reason.as_deref().unwrap_or(a.status.as_str())
                )),
            }
        }
    }
    out
}
