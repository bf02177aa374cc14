//! Member → church: an inbound message becomes facts in one transaction.
//!
//! The event id, member, conversation, message, pending attachments and their download jobs are
//! written together or not at all; a redelivered event finds its id already recorded and
//! changes nothing. Files are downloaded later by workers ([`crate::media::ingest`]).

use chrono::{DateTime, Utc};

use crate::clock;
use crate::config::Config;
use crate::crypto::phone::PhoneCrypto;
use crate::db;
use crate::db::Db;
use crate::domain::{ConversationId, Direction, MessageId, Phone};
use crate::jobs::JobsHandle;
use crate::jobs::{self, NewJob};
use crate::live::Live;
use crate::media::names;

pub mod keywords;

/// What recording an inbound message needs.
pub struct Deps<'a> {
    pub db: &'a Db,
    pub phone: &'a PhoneCrypto,
    pub jobs: &'a JobsHandle,
    pub live: &'a Live,
    pub config: &'a Config,
}

/// Most files kept from one message (Telnyx sends at most 10).
pub const MAX_FILES: usize = 20;

/// A file announced by the carrier, to be downloaded.
#[derive(Debug, Clone)]
pub struct AnnouncedFile {
    pub url: String,
    pub declared_type: Option<String>,
    pub declared_size: Option<u64>,
    pub declared_sha256: Option<String>,
    /// The file's own name, when the sender gave one (otherwise taken from the URL).
    pub name: Option<String>,
}

/// An inbound message, whatever carried it (Telnyx webhook or the sandbox phone).
#[derive(Debug, Clone)]
pub struct InboundMessage {
    /// The carrier's event id, for deduplication.
    pub event_id: Option<String>,
    pub event_type: String,
    pub from: Phone,
    /// The church numbers it was sent to (the first one known to koinonia wins).
    pub to: Vec<Phone>,
    /// Other recipients of a group MMS.
    pub cc: Vec<Phone>,
    pub text: String,
    pub files: Vec<AnnouncedFile>,
    /// Telnyx's `autoresponse_type` (`STOP`, `START`, `HELP`) when its profile recognised a keyword.
    pub autoresponse_type: Option<String>,
}

/// What became of an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Recorded {
        message: MessageId,
        conversation: ConversationId,
        files: usize,
    },
    /// The event id was seen before: nothing changed.
    Duplicate,
    /// No church owns the number it was sent to: nothing stored.
    UnknownNumber,
}

#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::phone::PhoneCryptoError),
    #[error(transparent)]
    Contact(#[from] crate::flows::contacts::ContactError),
    #[error(transparent)]
    Enqueue(#[from] jobs::EnqueueError),
}

/// Records an inbound message (see the module docs).
pub async fn record(deps: &Deps<'_>, msg: InboundMessage) -> Result<Outcome, InboundError> {
    let now = clock::now();
    let mut tx = deps.db.begin().await?;
    let c = &mut tx.conn();

    let mut church = None;
    for number in &msg.to {
        if let Some(found) = db::churches::find_by_number(c, number.as_str()).await? {
            church = Some(found);
            break;
        }
    }
    let Some(church) = church else {
        return Ok(Outcome::UnknownNumber);
    };

    if let Some(event_id) = &msg.event_id {
        if !db::webhook_events::insert_if_new(c, event_id, &msg.event_type, Some(church.id), now).await? {
            return Ok(Outcome::Duplicate);
        }
    }

    let (member, conversation) =
        crate::flows::contacts::member_and_conversation(c, deps.phone, church.id, &msg.from, now).await?;

    let keyword = keywords::classify(&msg.text, msg.autoresponse_type.as_deref());
    match keyword {
        Some(keywords::Keyword::OptOut) if !member.opted_out => {
            db::members::set_opted_out(c, church.id, member.id, true, now).await?;
        }
        Some(keywords::Keyword::OptIn) if member.opted_out => {
            db::members::set_opted_out(c, church.id, member.id, false, now).await?;
        }
        _ => {}
    }

    let cc_ciphertext = if msg.cc.is_empty() {
        None
    } else {
        let list: Vec<&str> = msg.cc.iter().map(Phone::as_str).collect();
        let joined = Phone::from_trusted(list.join(","));
        Some(deps.phone.encrypt(&joined)?)
    };
    let message = db::messages::MessageRow {
        keyword: keyword.map(|k| k.as_str().to_owned()),
        likely_opt_out: keyword.is_none() && keywords::likely_opt_out(&msg.text),
        cc_ciphertext,
        ..db::messages::MessageRow::new(
            church.id,
            conversation.id,
            member.id,
            Direction::Inbound,
            msg.text.clone(),
            now,
        )
    };
    let message_id = message.id;
    db::messages::insert(c, &message).await?;

    let files: Vec<&AnnouncedFile> = msg.files.iter().take(MAX_FILES).collect();
    if msg.files.len() > MAX_FILES {
        tracing::warn!(count = msg.files.len(), kept = MAX_FILES, "message announced too many files");
    }
    for (position, file) in files.iter().enumerate() {
        let declared_type = file.declared_type.as_deref().map(normalise_type);
        let name = match &file.name {
            Some(n) => names::display_name(n),
            None => names::inbound_name(&file.url, declared_type.as_deref(), position),
        };
        let position = i32::try_from(position).unwrap_or(i32::MAX);
        let row = db::attachments::AttachmentRow {
            source_url: Some(file.url.clone()),
            media_type: declared_type.as_deref().and_then(crate::media::mime::kind_of),
            declared_type,
            declared_size: file.declared_size.and_then(|s| i64::try_from(s).ok()),
            declared_sha256: file.declared_sha256.clone(),
            ..db::attachments::AttachmentRow::new(church.id, conversation.id, message_id, position, name, now)
        };
        let id = row.id;
        db::attachments::insert(c, &row).await?;
        jobs::enqueue(
            c,
            NewJob {
                job: jobs::Job::MediaFetch { attachment_id: id },
                church: Some(church.id),
                max_attempts: deps.config.media_fetch_max_attempts,
                priority: 0,
            },
            now,
        )
        .await?;
    }

    let preview = preview(&msg.text, files.iter().map(|f| f.declared_type.as_deref()));
    db::conversations::record_message(c, church.id, conversation.id, now, &preview, 1).await?;
    tx.commit().await?;

    if !files.is_empty() {
        deps.jobs.wake();
    }
    deps.live.publish(church.id, crate::live::Event::Message { conversation_id: conversation.id, message_id }).await;
    Ok(Outcome::Recorded { message: message_id, conversation: conversation.id, files: files.len() })
}

/// `image/jpeg; charset=…` → `image/jpeg`.
fn normalise_type(t: &str) -> String {
    t.split(';').next().unwrap_or(t).trim().to_ascii_lowercase()
}

/// The inbox's one-line summary of a message.
pub fn preview<'a>(text: &str, files: impl Iterator<Item = Option<&'a str>>) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if !text.is_empty() {
        let mut p: String = text.chars().take(120).collect();
        if text.chars().count() > 120 {
            p.push('…');
        }
        return p;
    }
    let kinds: Vec<Option<crate::domain::MediaKind>> =
        files.map(|t| t.map(normalise_type).as_deref().and_then(crate::media::mime::kind_of)).collect();
    match kinds.as_slice() {
        [] => String::new(),
        [one] => match one {
            Some(crate::domain::MediaKind::Image) => "Photo".into(),
            Some(crate::domain::MediaKind::Video) => "Video".into(),
            Some(crate::domain::MediaKind::Audio) => "Voice note".into(),
            Some(crate::domain::MediaKind::Document) => "Document".into(),
            None => "File".into(),
        },
        many => format!("{} files", many.len()),
    }
}

/// Seconds since the Unix epoch, for signature checks.
pub fn unix_now(now: DateTime<Utc>) -> i64 {
    now.timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews() {
        assert_eq!(preview("  Hello\n there ", std::iter::empty()), "Hello there");
        assert_eq!(preview("", [Some("image/jpeg")].into_iter()), "Photo");
        assert_eq!(preview("", [Some("audio/amr"), None].into_iter()), "2 files");
        let long = "x".repeat(200);
        assert_eq!(preview(&long, std::iter::empty()).chars().count(), 121);
    }
}
