//! The shared inbox as leaders read it: the conversation list (newest first, searchable), one
//! thread page by page with its files, and marking a conversation read for the whole church.
//! The API and the dashboard render the same results.

use std::collections::HashMap;

use base64::Engine;
use chrono::{DateTime, Utc};

use super::Page;
use crate::crypto::phone::PhoneCrypto;
use crate::db;
use crate::db::attachments::AttachmentRow;
use crate::db::conversations::{InboxCursor, InboxFilter, InboxRow, Participant};
use crate::db::messages::MessageRow;
use crate::db::recipients::RecipientRow;
use crate::db::Db;
use crate::domain::{ChurchId, ConversationId, MessageId, Phone};
use crate::live::Live;

/// What the inbox reads and whom it tells.
pub struct Deps<'a> {
    pub db: &'a Db,
    pub phone: &'a PhoneCrypto,
    pub live: &'a Live,
}

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// No such conversation or message in this church.
    #[error("not found")]
    NotFound,
    /// A cursor that koinonia did not give.
    #[error("{0}")]
    BadCursor(&'static str),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A conversation as a leader sees it; `phone` is the member's full number, given only where a
/// leader asked for one conversation (the thread header).
pub struct Conversation {
    pub row: InboxRow,
    pub phone: Option<Phone>,
}

/// One message with its files, in position order. In a group conversation, an inbound message
/// names its sender and a reply each recipient's delivery.
pub struct ThreadMessage {
    pub message: MessageRow,
    pub files: Vec<AttachmentRow>,
    pub sender: Option<Participant>,
    pub recipients: Vec<(RecipientRow, Option<Participant>)>,
}

/// A page of one conversation: the newest `limit` messages older than the cursor, oldest first;
/// `next_cursor` pages further back.
pub struct Thread {
    pub conversation: Conversation,
    pub messages: Vec<ThreadMessage>,
    pub next_cursor: Option<String>,
}

/// A page of the inbox. `q` searches names (substring), the whole number (blind index) and its
/// last digits; `cursor` is the previous page's `next_cursor`.
pub async fn list(
    deps: &Deps<'_>,
    church: ChurchId,
    cursor: Option<&str>,
    q: Option<&str>,
    limit: i64,
) -> Result<Page<InboxRow>, InboxError> {
    let after = cursor.filter(|c| !c.is_empty()).map(decode_cursor).transpose()?;
    let filter = search_filter(deps, q);
    let mut pooled = deps.db.acquire().await?;
    let rows = db::conversations::list(&mut pooled.conn(), church, after.as_ref(), &filter, limit + 1).await?;
    Ok(Page::of(rows, limit, |r| encode_cursor(r.last_message_at, r.id)))
}

/// One conversation of the church (`full_phone`: with the member's number decrypted).
pub async fn conversation(
    deps: &Deps<'_>,
    church: ChurchId,
    id: ConversationId,
    full_phone: bool,
) -> Result<Conversation, InboxError> {
    let mut pooled = deps.db.acquire().await?;
    let row = db::conversations::get(&mut pooled.conn(), church, id).await?.ok_or(InboxError::NotFound)?;
    Ok(with_phone(deps, row, full_phone))
}

/// A thread page: the conversation with the full number, and its messages older than `before`
/// (a message id; none for the newest page). 404 for another church's conversation.
pub async fn thread(
    deps: &Deps<'_>,
    church: ChurchId,
    id: ConversationId,
    before: Option<&str>,
    limit: i64,
) -> Result<Thread, InboxError> {
    let before = parse_before(before)?;
    let mut pooled = deps.db.acquire().await?;
    let c = &mut pooled.conn();
    let conversation = db::conversations::get(c, church, id).await?.ok_or(InboxError::NotFound)?;
    let rows = db::messages::page(c, church, id, before, limit + 1).await?;
    let mut page = Page::of(rows, limit, |m| m.id.to_string());
    page.items.reverse(); // oldest first within the page
    let files = match (page.items.first(), page.items.last()) {
        (Some(first), Some(last)) => db::attachments::for_messages(c, church, id, first.id, last.id).await?,
        _ => Vec::new(),
    };
    let recipients = group_recipients(c, church, &conversation, &page.items).await?;
    drop(pooled);
    let messages = attributed(with_files(page.items, files), &conversation.participants, recipients);
    Ok(Thread { conversation: with_phone(deps, conversation, true), messages, next_cursor: page.next_cursor })
}

/// The recipients of a group's replies among `messages` (none outside a group).
async fn group_recipients(
    c: &mut db::Conn<'_>,
    church: ChurchId,
    conversation: &InboxRow,
    messages: &[MessageRow],
) -> Result<Vec<RecipientRow>, sqlx::Error> {
    if !conversation.is_group {
        return Ok(Vec::new());
    }
    let replies: Vec<MessageId> =
        messages.iter().filter(|m| m.direction == crate::domain::Direction::Outbound).map(|m| m.id).collect();
    if replies.is_empty() {
        return Ok(Vec::new());
    }
    db::recipients::of_messages(c, church, &replies).await
}

/// Names each group message's sender and each reply's recipients from the group's members.
fn attributed(
    mut messages: Vec<ThreadMessage>,
    participants: &[Participant],
    recipients: Vec<RecipientRow>,
) -> Vec<ThreadMessage> {
    if participants.is_empty() {
        return messages;
    }
    let who = |member| participants.iter().find(|p| p.member_id == member).cloned();
    let mut by_message: HashMap<MessageId, Vec<(RecipientRow, Option<Participant>)>> = HashMap::new();
    for r in recipients {
        let p = who(r.member_id);
        by_message.entry(r.message_id).or_default().push((r, p));
    }
    for m in &mut messages {
        if m.message.direction == crate::domain::Direction::Inbound {
            m.sender = who(m.message.member_id);
        }
        m.recipients = by_message.remove(&m.message.id).unwrap_or_default();
    }
    messages
}

/// One message of a conversation with its files (the dashboard redraws one bubble at a time).
pub async fn message(
    deps: &Deps<'_>,
    church: ChurchId,
    conversation: ConversationId,
    id: MessageId,
) -> Result<ThreadMessage, InboxError> {
    let mut pooled = deps.db.acquire().await?;
    let c = &mut pooled.conn();
    let message = db::messages::get(c, church, id)
        .await?
        .filter(|m| m.conversation_id == conversation)
        .ok_or(InboxError::NotFound)?;
    let files = db::attachments::for_messages(c, church, conversation, id, id).await?;
    let conv = db::conversations::get(c, church, conversation).await?.ok_or(InboxError::NotFound)?;
    let recipients = group_recipients(c, church, &conv, std::slice::from_ref(&message)).await?;
    let one = ThreadMessage { message, files, sender: None, recipients: Vec::new() };
    attributed(vec![one], &conv.participants, recipients).pop().ok_or(InboxError::NotFound)
}

/// Marks a conversation read for the whole church (its leaders share one inbox), tells open
/// dashboards, and gives the conversation back.
pub async fn mark_read(deps: &Deps<'_>, church: ChurchId, id: ConversationId) -> Result<InboxRow, InboxError> {
    let row = {
        let mut pooled = deps.db.acquire().await?;
        let c = &mut pooled.conn();
        if !db::conversations::mark_read(c, church, id).await? {
            return Err(InboxError::NotFound);
        }
        db::conversations::get(c, church, id).await?.ok_or(InboxError::NotFound)?
    };
    deps.live.publish(church, crate::live::Event::Conversation { conversation_id: id }).await;
    Ok(row)
}

fn with_phone(deps: &Deps<'_>, row: InboxRow, full_phone: bool) -> Conversation {
    let phone = if full_phone {
        match deps.phone.decrypt(&row.phone_ciphertext) {
            Ok(p) => Some(p),
            Err(e) => {
                // The masked number is shown instead.
                tracing::error!(member = %row.member_id, error = %e, "cannot decrypt a member's number");
                None
            }
        }
    } else {
        None
    };
    Conversation { row, phone }
}

/// Messages with their files (`files` in position order, of these messages).
fn with_files(messages: Vec<MessageRow>, files: Vec<AttachmentRow>) -> Vec<ThreadMessage> {
    let mut by_message: HashMap<MessageId, Vec<AttachmentRow>> = HashMap::new();
    for a in files {
        by_message.entry(a.message_id).or_default().push(a);
    }
    messages
        .into_iter()
        .map(|message| {
            let files = by_message.remove(&message.id).unwrap_or_default();
            ThreadMessage { message, files, sender: None, recipients: Vec::new() }
        })
        .collect()
}

/// `before` of a thread page: a message id, or nothing for the newest page.
fn parse_before(before: Option<&str>) -> Result<Option<MessageId>, InboxError> {
    match before.filter(|b| !b.is_empty()) {
        Some(b) => Ok(Some(b.parse().map_err(|_| InboxError::BadCursor("invalid before cursor"))?)),
        None => Ok(None),
    }
}

/// `q` searches names (substring); a `q` made only of digits and phone punctuation searches
/// numbers instead: the whole number (blind index) or up to four last digits.
fn search_filter(deps: &Deps<'_>, q: Option<&str>) -> InboxFilter {
    let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) else {
        return InboxFilter::default();
    };
    let digits: String = q.chars().filter(char::is_ascii_digit).collect();
    let only_number = q.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if !only_number || digits.is_empty() {
        return InboxFilter { name_like: Some(q.to_lowercase()), ..InboxFilter::default() };
    }
    InboxFilter {
        name_like: None,
        phone_hash: Phone::parse(q).ok().map(|p| deps.phone.blind_index(&p)),
        // More than four digits match only a whole number.
        last_digits: Some(digits),
    }
}

fn encode_cursor(at: DateTime<Utc>, id: ConversationId) -> String {
    let raw = format!("{}|{}", at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true), id);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(cursor: &str) -> Result<InboxCursor, InboxError> {
    let bad = || InboxError::BadCursor("invalid cursor");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (at, id) = raw.split_once('|').ok_or_else(bad)?;
    Ok(InboxCursor {
        last_message_at: DateTime::parse_from_rfc3339(at).map_err(|_| bad())?.with_timezone(&Utc),
        id: id.parse().map_err(|_| bad())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_keeps_precision() {
        let at = crate::clock::now();
        let id = ConversationId::new();
        let c = decode_cursor(&encode_cursor(at, id)).expect("decode");
        assert_eq!(c, InboxCursor { last_message_at: at, id });
        assert!(decode_cursor("not a cursor").is_err());
    }
}
