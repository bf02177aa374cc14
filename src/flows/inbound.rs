//! Member → church: an inbound message becomes facts in one transaction.
//!
//! The event id, member, conversation, message, pending attachments and their download jobs are
//! written together or not at all; a redelivered event finds its id already recorded and
//! changes nothing. Files are downloaded later by workers ([`crate::media::ingest`]).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::clock;
use crate::config::Config;
use crate::crypto::phone::PhoneCrypto;
use crate::db;
use crate::db::{Conn, Db};
use crate::domain::{ChurchId, ConversationId, Direction, MemberId, MessageId, Phone};
use crate::jobs::JobsHandle;
use crate::jobs::{self, NewJob};
use crate::live::Live;
use crate::media::names;

pub mod intake;
pub mod keywords;

pub use intake::Intake;

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

/// Most members of a group conversation (a group MMS has at most 8 recipients besides its
/// sender; a few more are accepted). A larger group's message is filed under its sender alone,
/// with the other numbers noted, so no message is lost to a huge `cc` list.
pub const MAX_GROUP_MEMBERS: usize = 10;

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
    /// The process is shutting down.
    #[error("the inbound intake has stopped")]
    Stopped,
}

/// Records an inbound message in a transaction of its own (see the module docs). Webhooks go
/// through [`Intake`] instead, which shares one transaction between many messages.
pub async fn record(deps: &Deps<'_>, msg: InboundMessage) -> Result<Outcome, InboundError> {
    let mut tx = deps.db.begin().await?;
    let (mut outcomes, effects) = write_all(&mut tx.conn(), deps, &[&msg]).await?;
    tx.commit().await?;
    after_commit(deps, effects).await;
    outcomes.pop().ok_or(InboundError::Stopped)
}

/// Takes a made-up text from a new member to a made-up church through [`write_all`] in a
/// transaction that is rolled back: the statements a webhook runs are prepared, and the pages
/// they touch read, before the first webhook comes. Leaves nothing behind; nothing is published.
///
/// Runs on `connections` connections at once, each rehearsal holding its own: the pool hands out
/// its least recently used connection, so with PostgreSQL the first webhooks after start would
/// otherwise meet connections that never ran these statements (start-up passes the number of
/// connections the pool holds by then).
pub async fn rehearse(deps: &Deps<'_>, connections: u32) -> Result<(), InboundError> {
    futures::future::try_join_all((0..connections.clamp(1, 64)).map(|i| rehearse_on_one(deps, i))).await?;
    Ok(())
}

/// One rehearsal, to a church number of its own (`i` apart from the others running with it).
async fn rehearse_on_one(deps: &Deps<'_>, i: u32) -> Result<(), InboundError> {
    let now = clock::now();
    let number = Phone::from_trusted(format!("+1555019{:04}", 9999 - i));
    let church = db::churches::ChurchRow {
        id: ChurchId::new(),
        name: "Rehearsal".to_owned(),
        phone_number: number.as_str().to_owned(),
        messaging_profile_id: None,
        time_zone: "UTC".to_owned(),
        created_at: now,
    };
    let msg = InboundMessage {
        event_id: Some(format!("rehearsal-{}", uuid::Uuid::now_v7())),
        event_type: "message.received".to_owned(),
        from: Phone::from_trusted("+13125550199".to_owned()),
        to: vec![number],
        cc: Vec::new(),
        text: "Rehearsal".to_owned(),
        files: Vec::new(),
        autoresponse_type: None,
    };
    let mut tx = deps.db.begin().await?;
    // A church already holding the number (unlikely) only means there is nothing to rehearse.
    if db::churches::insert(&mut tx.conn(), &church).await.is_ok() {
        write_all(&mut tx.conn(), deps, &[&msg]).await?;
    }
    tx.rollback().await?;
    Ok(())
}

/// What the live screens and the workers hear of a message once its transaction committed.
pub(crate) struct Effect {
    church: ChurchId,
    conversation: ConversationId,
    message: MessageId,
    files: usize,
    /// A push notification job was written for its church.
    push: bool,
}

/// After a commit: wakes the download workers (once) and tells open dashboards.
pub(crate) async fn after_commit(deps: &Deps<'_>, effects: Vec<Effect>) {
    if effects.iter().any(|e| e.files > 0 || e.push) {
        deps.jobs.wake();
    }
    let events = effects
        .into_iter()
        .map(|e| (e.church, crate::live::Event::Message { conversation_id: e.conversation, message_id: e.message }))
        .collect();
    deps.live.publish_all(events).await;
}

/// A message on its way through [`write_all`].
struct Pending<'m> {
    msg: &'m InboundMessage,
    church: ChurchId,
    /// The church's own number (never a member of a group).
    church_number: &'m Phone,
    hash: Vec<u8>,
}

/// The other members of a group text: every number of `to` and `cc` but the church's and the
/// sender's, once each, in the order given. Empty for a message to the church alone.
fn group_others(msg: &InboundMessage, church_number: &Phone) -> Vec<Phone> {
    if msg.cc.is_empty() && msg.to.len() <= 1 {
        return Vec::new(); // the common case: to the church alone, nothing to allocate
    }
    let mut seen: HashSet<&str> = [msg.from.as_str(), church_number.as_str()].into_iter().collect();
    msg.cc.iter().chain(&msg.to).filter(|p| seen.insert(p.as_str())).cloned().collect()
}

/// Writes inbound messages inside the caller's transaction, in as few statements as their number
/// allows: each church number is looked up once, the event ids are recorded in one statement,
/// known members are found in one, the messages inserted in one, and each conversation moved to
/// the top of the inbox once. Nothing is published or woken: the caller passes the effects to
/// [`after_commit`] once the transaction committed. Returns one outcome per message, in order.
pub(crate) async fn write_all(
    c: &mut Conn<'_>,
    deps: &Deps<'_>,
    msgs: &[&InboundMessage],
) -> Result<(Vec<Outcome>, Vec<Effect>), InboundError> {
    let now = clock::now();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; msgs.len()];

    // 1. The church each message was sent to.
    let mut churches: HashMap<&Phone, Option<ChurchId>> = HashMap::new();
    let mut pending: Vec<(usize, Pending<'_>)> = Vec::with_capacity(msgs.len());
    for (i, msg) in msgs.iter().enumerate() {
        let mut church = None;
        for number in &msg.to {
            let found = match churches.get(number) {
                Some(known) => *known,
                None => {
                    let found = db::churches::find_by_number(c, number.as_str()).await?.map(|ch| ch.id);
                    churches.insert(number, found);
                    found
                }
            };
            if let Some(id) = found {
                church = Some((id, number));
                break;
            }
        }
        match church {
            Some((church, church_number)) => {
                pending.push((i, Pending { msg, church, church_number, hash: deps.phone.blind_index(&msg.from) }))
            }
            None => outcomes[i] = Some(Outcome::UnknownNumber),
        }
    }

    // 2. Redeliveries: an event id seen before (or twice in this batch) changes nothing.
    let mut seen = HashSet::new();
    let mut events = Vec::new();
    pending.retain(|(i, p)| match &p.msg.event_id {
        None => true,
        Some(id) if seen.insert(id.as_str()) => {
            events.push(db::webhook_events::NewEvent { id, event_type: &p.msg.event_type, church: Some(p.church) });
            true
        }
        Some(_) => {
            outcomes[*i] = Some(Outcome::Duplicate);
            false
        }
    });
    if !events.is_empty() {
        let fresh = db::webhook_events::insert_new(c, &events, now).await?;
        pending.retain(|(i, p)| match &p.msg.event_id {
            Some(id) if !fresh.contains(id) => {
                outcomes[*i] = Some(Outcome::Duplicate);
                false
            }
            _ => true,
        });
    }

    // 3. Members and their conversations: the known ones in one statement per church, a new
    //    number created on its first message.
    let mut contacts: HashMap<(ChurchId, &[u8]), (MemberId, bool, ConversationId)> = HashMap::new();
    let mut by_church: HashMap<ChurchId, Vec<&[u8]>> = HashMap::new();
    for (_, p) in &pending {
        by_church.entry(p.church).or_default().push(&p.hash);
    }
    for (church, hashes) in by_church {
        for k in db::members::known_contacts(c, church, &hashes).await? {
            if let Some(h) = hashes.iter().find(|h| **h == k.phone_hash.as_slice()) {
                contacts.insert((church, h), (k.member_id, k.opted_out, k.conversation_id));
            }
        }
    }

    // 4. Each message in order: keywords, its row, its files.
    let mut rows = Vec::with_capacity(pending.len());
    let mut files_of = Vec::with_capacity(pending.len());
    let mut moved: HashMap<ConversationId, db::conversations::Moved> = HashMap::new();
    let mut effects = Vec::with_capacity(pending.len());
    for (i, p) in &pending {
        let msg = p.msg;
        let key = (p.church, p.hash.as_slice());
        let others = group_others(msg, p.church_number);
        let group = !others.is_empty() && others.len() < MAX_GROUP_MEMBERS;
        if others.len() >= MAX_GROUP_MEMBERS {
            tracing::warn!(
                numbers = others.len() + 1,
                "a group text too large for a group conversation; filed under its sender"
            );
        }
        let (member, mut opted_out, conversation) = match contacts.get(&key) {
            _ if group => {
                let (sender, conversation) =
                    crate::flows::contacts::group_conversation(c, deps.phone, p.church, &msg.from, &others, now)
                        .await?;
                (sender.id, sender.opted_out, conversation)
            }
            Some(known) => *known,
            None => {
                let (member, conversation) =
                    crate::flows::contacts::member_and_conversation(c, deps.phone, p.church, &msg.from, now).await?;
                (member.id, member.opted_out, conversation)
            }
        };
        let keyword = keywords::classify(&msg.text, msg.autoresponse_type.as_deref());
        match keyword {
            Some(keywords::Keyword::OptOut) if !opted_out => {
                db::members::set_opted_out(c, p.church, member, true, now).await?;
                opted_out = true;
            }
            Some(keywords::Keyword::OptIn) if opted_out => {
                db::members::set_opted_out(c, p.church, member, false, now).await?;
                opted_out = false;
            }
            _ => {}
        }
        if !group {
            contacts.insert(key, (member, opted_out, conversation));
        } else if let Some(own) = contacts.get_mut(&key) {
            own.1 = opted_out; // the member's own conversation, if this batch meets it, knows too
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
            ..db::messages::MessageRow::new(p.church, conversation, member, Direction::Inbound, msg.text.clone(), now)
        };
        let files: Vec<&AnnouncedFile> = msg.files.iter().take(MAX_FILES).collect();
        if msg.files.len() > MAX_FILES {
            tracing::warn!(count = msg.files.len(), kept = MAX_FILES, "message announced too many files");
        }
        let preview = preview(&msg.text, files.iter().map(|f| f.declared_type.as_deref()));
        let update = moved.entry(conversation).or_insert(db::conversations::Moved {
            church: p.church,
            id: conversation,
            preview: String::new(),
            messages: 0,
        });
        update.preview = preview;
        update.messages += 1;
        outcomes[*i] = Some(Outcome::Recorded { message: message.id, conversation, files: files.len() });
        effects.push(Effect { church: p.church, conversation, message: message.id, files: files.len(), push: false });
        files_of.push((p.church, conversation, message.id, files));
        rows.push(message);
    }
    // The messages, and each conversation moved to the top once (in id order: see
    // `db::conversations::moving_sql`).
    let mut moved: Vec<_> = moved.into_values().collect();
    moved.sort_by_key(|m| m.id);
    db::messages::insert_moving(c, &rows, now, &moved).await?;

    // 5. Files (after their messages: they refer to them), each with its download job.
    for (church, conversation, message, files) in files_of {
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
                ..db::attachments::AttachmentRow::new(church, conversation, message, position, name, now)
            };
            let id = row.id;
            db::attachments::insert(c, &row).await?;
            jobs::enqueue(
                c,
                NewJob {
                    job: jobs::Job::MediaFetch { attachment_id: id },
                    church: Some(church),
                    max_attempts: deps.config.media_fetch_max_attempts,
                    priority: 0,
                },
                now,
            )
            .await?;
        }
    }

    // 6. Leaders who chose push notifications: one job per church of the batch.
    let notified = crate::flows::notifications::queue_push(
        c,
        deps.config,
        effects.iter().map(|e| (e.church, e.conversation, e.message)),
        now,
    )
    .await?;
    for e in &mut effects {
        e.push = notified.contains(&e.church);
    }

    let outcomes = outcomes.into_iter().map(|o| o.unwrap_or(Outcome::Duplicate)).collect();
    Ok((outcomes, effects))
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
    fn a_groups_other_members_leave_out_the_church_and_the_sender() {
        let p = |n: &str| Phone::parse(n).expect("number");
        let msg = InboundMessage {
            event_id: None,
            event_type: "message.received".into(),
            from: p("+13125550101"),
            to: vec![p("+15551230000")],
            cc: vec![p("+13125550102"), p("+15551230000"), p("+13125550101"), p("+13125550103"), p("+13125550102")],
            text: String::new(),
            files: Vec::new(),
            autoresponse_type: None,
        };
        assert_eq!(group_others(&msg, &p("+15551230000")), vec![p("+13125550102"), p("+13125550103")]);
        let alone = InboundMessage { cc: Vec::new(), ..msg };
        assert!(group_others(&alone, &p("+15551230000")).is_empty(), "to the church alone: no group");
    }

    #[test]
    fn previews() {
        assert_eq!(preview("  Hello\n there ", std::iter::empty()), "Hello there");
        assert_eq!(preview("", [Some("image/jpeg")].into_iter()), "Photo");
        assert_eq!(preview("", [Some("audio/amr"), None].into_iter()), "2 files");
        let long = "x".repeat(200);
        assert_eq!(preview(&long, std::iter::empty()).chars().count(), 121);
    }
}
