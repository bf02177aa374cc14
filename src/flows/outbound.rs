//! Church → member: replies go through an outbox and are sent exactly once.
//!
//! A reply's message row and its send job are written in one transaction. The send job marks
//! the message `in_flight` (committed) *before* calling the carrier and records the carrier's id
//! after. A job that finds its message still `in_flight` was interrupted mid-call: it does not
//! send again, it waits for the delivery report (whose `webhook_url` carries koinonia's own
//! message id) and, if none comes in time, marks the message failed "not confirmed — check
//! before resending". Only answers that certainly did not take effect are retried.

use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};

use crate::carrier::{Carrier, SendLimits};
use crate::clock;
use crate::config::Config;
use crate::crypto::phone::PhoneCrypto;
use crate::db::Db;
use crate::db::{self, Conn};
use crate::domain::{
    Actor, AttachmentId, AttachmentStatus, ConversationId, DeliveryStatus, Direction, MediaKind, MemberId, MessageId,
    Phone, SendState,
};
use crate::jobs::JobsHandle;
use crate::jobs::{self, JobError, NewJob};
use crate::live::Live;
use crate::media::ingest::{IngestError, Ingested};
use crate::media::store::MediaStore;
use crate::sms;
use crate::telnyx::api::{self as telnyx_api, ApiErrorDetail, SendError, SendMessage};

/// What replies and their sending need.
pub struct Deps<'a> {
    pub db: &'a Db,
    pub phone: &'a PhoneCrypto,
    pub jobs: &'a JobsHandle,
    pub live: &'a Live,
    pub store: &'a MediaStore,
    pub carrier: &'a Carrier,
    pub send_limits: &'a SendLimits,
    pub config: &'a Config,
}

/// Most recipients of a group text (Telnyx's `group_mms` limit).
pub const MAX_GROUP_RECIPIENTS: usize = 8;

/// Most characters of one reply (MMS text is not segment-limited, but a reply is not a letter).
pub const MAX_REPLY_CHARS: usize = 5000;
/// Send attempts for answers that certainly did not take effect (429, 5xx, refused connections).
pub const SEND_MAX_ATTEMPTS: u32 = 8;

/// How a reply travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendMode {
    Sms,
    /// Text longer than 10 SMS segments, as MMS (US and Canada only).
    MmsText,
    Mms,
    /// SMS with a link to the full-quality file (too large for MMS, or abroad).
    Link,
    /// A photo too large for MMS: its preview by MMS, with a link to the full-quality file.
    PreviewLink,
}

impl SendMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::MmsText => "mms_text",
            Self::Mms => "mms",
            Self::Link => "link",
            Self::PreviewLink => "preview_link",
        }
    }
    /// As stored in `messages.send_mode` (a preview with the link is `link` + `send_preview`).
    fn stored(self) -> &'static str {
        match self {
            Self::PreviewLink => Self::Link.as_str(),
            other => other.as_str(),
        }
    }
    fn of(m: &db::messages::MessageRow) -> Self {
        let mode = [Self::Sms, Self::MmsText, Self::Mms, Self::Link]
            .into_iter()
            .find(|mode| m.send_mode.as_deref() == Some(mode.as_str()))
            .unwrap_or(Self::Sms);
        if mode == Self::Link && m.send_preview {
            Self::PreviewLink
        } else {
            mode
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("not found")]
    NotFound,
    #[error("This member has opted out (they replied STOP). They can be sent messages again after they text START.")]
    OptedOut,
    #[error(
        "This number could not receive the last message ({0}). Check the number, or send again with \"force\": true."
    )]
    Unreachable(String),
    #[error("{0}")]
    Invalid(String),
    /// A reply to a group conversation that cannot go as a group text (why, for the leader).
    #[error("{0}")]
    Group(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::phone::PhoneCryptoError),
    #[error(transparent)]
    Contact(#[from] crate::flows::contacts::ContactError),
    #[error(transparent)]
    Enqueue(#[from] jobs::EnqueueError),
    /// The uploaded file is over `MAX_MEDIA_SIZE_BYTES` (the limit, formatted).
    #[error("File too large (max {0})")]
    TooLarge(String),
    /// The uploaded file is not one koinonia keeps.
    #[error("{0}")]
    Refused(String),
    /// The upload itself broke off or was malformed.
    #[error("invalid multipart body: {0}")]
    Upload(String),
    /// The virus scanner found malware in the uploaded file (the signature); nothing was kept.
    #[error("{}", crate::scan::blocked_reason(.0))]
    Blocked(String),
    /// No verdict from the virus scanner, and one is required.
    #[error("The virus scanner is not answering, so the file cannot be checked; try again in a minute.")]
    ScannerUnavailable,
    #[error("the file could not be stored: {0}")]
    Store(crate::media::ingest::IngestError),
}

/// A file a leader uploaded, already streamed into the store.
#[derive(Debug, Clone)]
pub struct Upload {
    pub attachment_id: AttachmentId,
    pub key: String,
    pub name: String,
    pub ingested_size: u64,
    pub mime_type: String,
    pub media_type: MediaKind,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub duration_seconds: Option<f64>,
    pub sha256: String,
    /// The scanner's word (`clean` or `not_scanned`) and why not.
    pub scan_state: &'static str,
    pub scan_detail: Option<String>,
}

impl Upload {
    pub fn from_ingested(attachment_id: AttachmentId, key: String, name: String, i: &Ingested) -> Option<Self> {
        Some(Self {
            attachment_id,
            key,
            name,
            ingested_size: i.bytes,
            mime_type: i.inspection.mime_type?.to_owned(),
            media_type: i.inspection.kind?,
            width: i.inspection.width.and_then(|w| i32::try_from(w).ok()),
            height: i.inspection.height.and_then(|h| i32::try_from(h).ok()),
            duration_seconds: i.inspection.duration_seconds,
            sha256: i.inspection.sha256.clone(),
            scan_state: i.scan_record().0,
            scan_detail: i.scan_record().1,
        })
    }
}

/// What a leader sends.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub content: String,
    pub upload: Option<Upload>,
    /// Send even though the number looked unreachable last time.
    pub force: bool,
    /// How a photo too large for MMS travels.
    pub large_image: LargeImage,
}

/// How a photo above `MMS_MAX_ATTACHMENT_BYTES` is sent (other large files are always a link).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LargeImage {
    /// Its preview by MMS, so the member sees the picture at once, and a link to the original.
    #[default]
    Preview,
    /// Only a link to the original, by SMS.
    Link,
}

impl LargeImage {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "preview" => Some(Self::Preview),
            "link" => Some(Self::Link),
            _ => None,
        }
    }
}

/// A reply with a file, being received: the file streams into the store as it arrives (checked
/// on its bytes, never buffered whole) and is deleted again on every way out but a recorded
/// reply.
pub struct MediaReply {
    actor: Actor,
    conversation: ConversationId,
    upload: Option<Upload>,
    stored: crate::media::store::Uncommitted,
    checked: bool,
}

impl MediaReply {
    pub fn new(deps: &Deps<'_>, actor: &Actor, conversation: ConversationId) -> Self {
        Self {
            actor: *actor,
            conversation,
            upload: None,
            stored: crate::media::store::Uncommitted::new(deps.store),
            checked: false,
        }
    }

    /// The reply's one file, named `name` by the sender: the conversation and its member are
    /// checked first (cheaply, before a byte is stored), then the body streams into the store.
    pub async fn attach(
        &mut self,
        deps: &Deps<'_>,
        name: Option<&str>,
        force: bool,
        body: futures::stream::BoxStream<'_, Result<bytes::Bytes, IngestError>>,
    ) -> Result<(), ReplyError> {
        use crate::media::{ingest, names};
        if self.upload.is_some() {
            return Err(ReplyError::Invalid("one file per reply".into()));
        }
        if !self.checked {
            precheck(deps, &self.actor, self.conversation, force).await?;
            self.checked = true;
        }
        let original = name.map(names::display_name).unwrap_or_else(|| "file".to_owned());
        let attachment = AttachmentId::new();
        let key = deps.store.key_for(self.actor.church, self.conversation, attachment, &names::safe_name(&original));
        let max = deps.config.max_media_size_bytes;
        let scanner = crate::scan::Scanner::new(&deps.config.scan);
        let ingested =
            ingest::stream_into_store(deps.store, &scanner, max, body, &key, &original, self.conversation, None).await;
        let ingested = match ingested {
            Ok(i) => i,
            Err(IngestError::Infected(signature)) => {
                blocked_upload(deps, &self.actor, &original, &signature).await?;
                return Err(ReplyError::Blocked(signature));
            }
            Err(e) => return Err(upload_error(deps, e)),
        };
        self.stored.add(&key);
        let name = ingest::with_extension(&original, ingested.inspection.mime_type.unwrap_or_default());
        self.upload = Upload::from_ingested(attachment, key, name, &ingested);
        Ok(())
    }

    /// Records the reply with its caption (see [`reply`]); the stored file stays.
    pub async fn send(
        mut self,
        deps: &Deps<'_>,
        caption: String,
        force: bool,
        large_image: LargeImage,
    ) -> Result<Recorded, ReplyError> {
        let Some(upload) = self.upload.take() else {
            return Err(ReplyError::Invalid("a file is required (multipart field \"file\")".into()));
        };
        let reply_to = Reply { content: caption, upload: Some(upload), force, large_image };
        let recorded = reply(deps, &self.actor, self.conversation, reply_to).await?;
        self.stored.keep();
        Ok(recorded)
    }
}

/// What a leader reads when an upload is refused.
fn upload_error(deps: &Deps<'_>, e: IngestError) -> ReplyError {
    match e {
        IngestError::TooLarge(_) | IngestError::Upload { too_large: true, .. } => too_large(deps),
        IngestError::NotAllowed(t) => ReplyError::Refused(format!("File type {t} is not allowed")),
        IngestError::Rejected(reason) => ReplyError::Refused(format!("File not accepted: {reason}")),
        IngestError::Upload { message, .. } => ReplyError::Upload(message),
        IngestError::ScannerUnavailable(why) => {
            tracing::warn!(reason = %why, "a reply's file waits for a virus scanner that does not answer");
            ReplyError::ScannerUnavailable
        }
        IngestError::NotScannable(why) => ReplyError::Refused(format!("File not accepted: {why}")),
        IngestError::Infected(signature) => ReplyError::Blocked(signature),
        other => ReplyError::Store(other),
    }
}

/// A leader's upload the virus scanner refused: nothing was kept; audited and counted.
async fn blocked_upload(deps: &Deps<'_>, actor: &Actor, name: &str, signature: &str) -> Result<(), ReplyError> {
    tracing::warn!(signature, "a reply's file was blocked: the virus scanner found malware");
    let mut pooled = deps.db.acquire().await?;
    let entry = crate::flows::audit::Entry::by(actor, "media.blocked")
        .detail(serde_json::json!({ "signature": signature, "direction": "outbound", "name": name }));
    crate::flows::audit::record(&mut pooled.conn(), entry).await?;
    metrics::counter!("koinonia_media_blocked_total", "direction" => "outbound").increment(1);
    Ok(())
}

/// The reply's file is over `MAX_MEDIA_SIZE_BYTES`.
pub fn too_large(deps: &Deps<'_>) -> ReplyError {
    ReplyError::TooLarge(crate::media::ingest::format_size(deps.config.max_media_size_bytes))
}

/// The recorded reply.
pub struct Recorded {
    pub message: db::messages::MessageRow,
    pub attachments: Vec<db::attachments::AttachmentRow>,
}

/// Cheap checks before an upload is streamed: the conversation exists for this church and its
/// member may be written to.
pub async fn precheck(
    deps: &Deps<'_>,
    actor: &Actor,
    conversation: ConversationId,
    force: bool,
) -> Result<(), ReplyError> {
    let mut pooled = deps.db.acquire().await?;
    let c = &mut pooled.conn();
    let conv = db::conversations::get(c, actor.church, conversation).await?.ok_or(ReplyError::NotFound)?;
    if conv.is_group {
        return group_recipients(deps, &conv).map(|_| ());
    }
    let member = db::members::get(c, actor.church, conv.member_id).await?.ok_or(ReplyError::NotFound)?;
    check_member(&member, force)
}

/// Who a reply to a group goes to: every participant who has not opted out — at least two, at
/// most [`MAX_GROUP_RECIPIENTS`], all in the US or Canada (where group MMS exists).
fn group_recipients(deps: &Deps<'_>, conv: &db::conversations::InboxRow) -> Result<Vec<(MemberId, Phone)>, ReplyError> {
    let mut to = Vec::new();
    for p in conv.participants.iter().filter(|p| !p.opted_out) {
        to.push((p.member_id, deps.phone.decrypt(&p.phone_ciphertext)?));
    }
    let opted_out = conv.participants.len() - to.len();
    if to.len() < 2 {
        let who = if to.is_empty() { "No member" } else { "Only one member" };
        return Err(ReplyError::Group(format!(
            "{who} of this group can receive texts ({opted_out} opted out by replying STOP): a group text needs at least two. \
             Reply to them one to one from their own conversation instead."
        )));
    }
    if to.len() > MAX_GROUP_RECIPIENTS {
        return Err(ReplyError::Group(format!(
            "A group text reaches at most {MAX_GROUP_RECIPIENTS} people; this group has {}.",
            to.len()
        )));
    }
    if to.iter().any(|(_, phone)| !phone.is_us_or_canada()) {
        return Err(ReplyError::Group(
            "Group texts reach numbers in the US and Canada only, and this group has a number elsewhere. \
             Reply to its members one to one instead."
                .to_owned(),
        ));
    }
    Ok(to)
}

fn check_member(member: &db::members::MemberRow, force: bool) -> Result<(), ReplyError> {
    if member.opted_out {
        return Err(ReplyError::OptedOut);
    }
    if member.unreachable && !force {
        return Err(ReplyError::Unreachable(
            member.unreachable_reason.clone().unwrap_or_else(|| "the carrier said it cannot receive messages".into()),
        ));
    }
    Ok(())
}

impl Deps<'_> {
    fn previews(&self) -> crate::flows::files::PreviewDeps<'_> {
        crate::flows::files::PreviewDeps { db: self.db, store: self.store, live: self.live, config: self.config }
    }
}

/// Records a reply in an existing conversation and queues its sending.
pub async fn reply(
    deps: &Deps<'_>,
    actor: &Actor,
    conversation: ConversationId,
    reply: Reply,
) -> Result<Recorded, ReplyError> {
    let content = normalise_content(&reply.content, reply.upload.is_some())?;
    let now = clock::now();
    let mut tx = deps.db.begin().await?;
    let c = &mut tx.conn();
    let conv = db::conversations::get(c, actor.church, conversation).await?.ok_or(ReplyError::NotFound)?;
    let (member, phone, group) = if conv.is_group {
        let group = group_recipients(deps, &conv)?;
        let first = group.first().map(|(_, phone)| phone.clone()).ok_or(ReplyError::NotFound)?;
        (conv.member_id, first, group.into_iter().map(|(id, _)| id).collect())
    } else {
        let member = db::members::get(c, actor.church, conv.member_id).await?.ok_or(ReplyError::NotFound)?;
        check_member(&member, reply.force)?;
        (member.id, deps.phone.decrypt(&member.phone_ciphertext)?, Vec::new())
    };
    let recorded = record(
        deps,
        c,
        actor,
        Draft {
            conversation,
            member,
            phone: &phone,
            group,
            content,
            upload: reply.upload,
            large_image: reply.large_image,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    deps.jobs.wake();
    announce(deps.live, &recorded.message).await;
    Ok(recorded)
}

/// A leader texts a number: the member's conversation is found or created, then as [`reply`].
pub async fn start_conversation(
    deps: &Deps<'_>,
    actor: &Actor,
    phone: &Phone,
    content: &str,
) -> Result<(ConversationId, Recorded), ReplyError> {
    let content = normalise_content(content, false)?;
    let now = clock::now();
    let mut tx = deps.db.begin().await?;
    let c = &mut tx.conn();
    let (member, conversation) =
        crate::flows::contacts::member_and_conversation(c, deps.phone, actor.church, phone, now).await?;
    check_member(&member, false)?;
    let recorded = record(
        deps,
        c,
        actor,
        Draft {
            conversation,
            member: member.id,
            phone,
            group: Vec::new(),
            content,
            upload: None,
            large_image: LargeImage::Preview,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    deps.jobs.wake();
    announce(deps.live, &recorded.message).await;
    Ok((conversation, recorded))
}

/// Tells open dashboards that a message changed.
async fn announce(live: &Live, m: &db::messages::MessageRow) {
    let event = crate::live::Event::Message { conversation_id: m.conversation_id, message_id: m.id };
    live.publish(m.church_id, event).await;
}

fn normalise_content(content: &str, has_file: bool) -> Result<String, ReplyError> {
    let trimmed = content.trim();
    if trimmed.is_empty() && !has_file {
        return Err(ReplyError::Invalid("content must not be empty".into()));
    }
    if trimmed.chars().count() > MAX_REPLY_CHARS {
        return Err(ReplyError::Invalid(format!("content must be at most {MAX_REPLY_CHARS} characters")));
    }
    if trimmed.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err(ReplyError::Invalid("content must not contain control characters".into()));
    }
    Ok(trimmed.to_owned())
}

/// Decides how the reply travels, refusing what cannot be sent at all.
fn choose_mode(
    deps: &Deps<'_>,
    phone: &Phone,
    content: &str,
    upload: Option<&Upload>,
    large_image: LargeImage,
) -> Result<SendMode, ReplyError> {
    let domestic = phone.is_us_or_canada();
    let too_long = || {
        ReplyError::Invalid(format!(
            "Message too long for SMS: at most {} segments (1,530 GSM-7 or 670 Unicode characters) to numbers outside the US and Canada",
            sms::MAX_SEGMENTS
        ))
    };
    match upload {
        Some(u) if domestic && u.ingested_size <= deps.config.mms_max_attachment_bytes => Ok(SendMode::Mms),
        Some(u) if domestic && u.media_type == MediaKind::Image && large_image == LargeImage::Preview => {
            Ok(SendMode::PreviewLink)
        }
        Some(_) => {
            // The link adds about 60 characters to the text.
            let with_link = format!("{content}\n{}/m/{}", deps.config.public_url(""), "x".repeat(22));
            if !domestic && !sms::fits_sms(&with_link) {
                return Err(too_long());
            }
            Ok(SendMode::Link)
        }
        None if sms::fits_sms(content) => Ok(SendMode::Sms),
        None if domestic => Ok(SendMode::MmsText),
        None => Err(too_long()),
    }
}

/// A reply about to be recorded: to whom, what, and how a large photo travels.
struct Draft<'p> {
    conversation: ConversationId,
    member: MemberId,
    /// The member's number (a group's first recipient's: every one is in the US or Canada).
    phone: &'p Phone,
    /// A group reply's recipients; empty for a member's own conversation.
    group: Vec<MemberId>,
    content: String,
    upload: Option<Upload>,
    large_image: LargeImage,
}

/// Writes the reply, its file and its send job (inside the caller's transaction).
async fn record(
    deps: &Deps<'_>,
    c: &mut Conn<'_>,
    actor: &Actor,
    draft: Draft<'_>,
    now: DateTime<Utc>,
) -> Result<Recorded, ReplyError> {
    let Draft { conversation, member, phone, group, content, upload, large_image } = draft;
    let mut mode = choose_mode(deps, phone, &content, upload.as_ref(), large_image)?;
    if !group.is_empty() && mode == SendMode::Sms {
        mode = SendMode::MmsText; // a group text is MMS by its nature
    }
    let message = db::messages::MessageRow {
        leader_id: actor.leader_id(),
        delivery_status: Some(if mode == SendMode::Link { DeliveryStatus::LinkSent } else { DeliveryStatus::Queued }),
        send_state: Some(SendState::Pending),
        send_mode: Some(mode.stored().to_owned()),
        send_preview: mode == SendMode::PreviewLink,
        ..db::messages::MessageRow::new(actor.church, conversation, member, Direction::Outbound, content, now)
    };
    db::messages::insert(c, &message).await?;
    db::recipients::insert_many(c, actor.church, message.id, &group, now).await?;
    let mut attachments = Vec::new();
    if let Some(u) = upload {
        let row = db::attachments::AttachmentRow {
            id: u.attachment_id,
            status: AttachmentStatus::Stored,
            media_type: Some(u.media_type),
            mime_type: Some(u.mime_type),
            storage_key: Some(u.key),
            size_bytes: Some(i64::try_from(u.ingested_size).unwrap_or(i64::MAX)),
            width: u.width,
            height: u.height,
            duration_seconds: u.duration_seconds,
            sha256: Some(u.sha256),
            stored_at: Some(now),
            scan_state: Some(u.scan_state.to_owned()),
            scan_detail: u.scan_detail,
            link_token: matches!(mode, SendMode::Link | SendMode::PreviewLink).then(link_token).transpose()?,
            ..db::attachments::AttachmentRow::new(actor.church, conversation, message.id, 0, u.name, now)
        };
        db::attachments::insert(c, &row).await?;
        if let Some(kind) = row.media_type {
            jobs::enqueue_preview(c, actor.church, row.id, kind, now).await?;
        }
        attachments.push(row);
    }
    jobs::enqueue(
        c,
        NewJob {
            job: jobs::Job::MessageSend { message_id: message.id },
            church: Some(actor.church),
            max_attempts: SEND_MAX_ATTEMPTS,
            priority: 1,
        },
        now,
    )
    .await?;
    let preview_text =
        if message.content.is_empty() { "You sent a file".to_owned() } else { format!("You: {}", message.content) };
    let preview = crate::flows::inbound::preview(&preview_text, std::iter::empty());
    db::conversations::record_message(c, actor.church, conversation, now, &preview, 0).await?;
    Ok(Recorded { message, attachments })
}

/// 128 random bits, URL-safe.
fn link_token() -> Result<String, ReplyError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| ReplyError::Crypto(crate::crypto::phone::PhoneCryptoError::Rng))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Where a reply goes: its member, or the recipients of a group reply.
enum Destination {
    One(Phone),
    Group(Vec<(MemberId, Phone)>),
}

/// The recipients of a group reply who can still be written to; those who opted out since it
/// was written are marked failed. `None` (and the message failed) when fewer than two remain.
async fn group_destination(
    deps: &Deps<'_>,
    c: &mut Conn<'_>,
    id: MessageId,
) -> Result<Option<Vec<(MemberId, Phone)>>, JobError> {
    let now = clock::now();
    let mut to = Vec::new();
    for r in db::recipients::for_send(c, id).await? {
        if r.opted_out {
            let why = "The member has opted out (replied STOP).";
            db::recipients::apply(c, id, Some(r.member_id), None, Some(DeliveryStatus::Failed), Some(why), now).await?;
            continue;
        }
        to.push((r.member_id, deps.phone.decrypt(&r.phone_ciphertext).map_err(|e| JobError::fatal(e.to_string()))?));
    }
    if to.len() < 2 {
        let why = "Fewer than two members of the group can receive texts now (the others opted out).";
        db::messages::mark_send_failed(c, id, why, now).await?;
        return Ok(None);
    }
    Ok(Some(to))
}

/// Job body of `message.send`. No database connection is held across the carrier call.
pub async fn send(deps: &Deps<'_>, id: MessageId) -> Result<(), JobError> {
    let (message, ctx, destination, attachments) = {
        let mut pooled = deps.db.acquire().await?;
        let c = &mut pooled.conn();
        // The message and where it goes, in one read.
        let Some((message, ctx)) = db::messages::for_send(c, id).await? else { return Ok(()) };
        match message.send_state {
            Some(SendState::Pending) => {}
            Some(SendState::InFlight) => return reconcile(deps, c, &message).await,
            Some(SendState::Accepted | SendState::Failed) | None => return Ok(()),
        }
        let ctx = ctx.ok_or_else(|| JobError::fatal("church or member is gone"))?;
        let destination = if ctx.is_group {
            match group_destination(deps, c, id).await? {
                Some(to) => Destination::Group(to),
                None => return Ok(()),
            }
        } else {
            if ctx.opted_out {
                db::messages::mark_send_failed(c, id, "The member has opted out (replied STOP).", clock::now()).await?;
                return Ok(());
            }
            Destination::One(deps.phone.decrypt(&ctx.phone_ciphertext).map_err(|e| JobError::fatal(e.to_string()))?)
        };
        let with_files = matches!(message.send_mode.as_deref(), Some("mms" | "link"));
        let attachments = if with_files { db::attachments::of_message(c, id).await? } else { Vec::new() };
        (message, ctx, destination, attachments)
    };
    let mode = SendMode::of(&message);

    if let Err(wait) = deps.send_limits.check(&ctx.church_number) {
        return Err(JobError::Defer(wait.max(Duration::from_millis(10))));
    }

    // Build the request before committing to it: nothing below may fail once `in_flight`.
    let mut text = message.content.clone();
    let mut media_urls = Vec::new();
    match mode {
        SendMode::Mms => {
            for a in &attachments {
                let (Some(key), Some(mime)) = (a.storage_key.as_deref(), a.mime_type.as_deref()) else { continue };
                let url = deps
                    .store
                    .presign_get(key, deps.config.media_url_ttl, mime, &a.name)
                    .await
                    .map_err(|e| JobError::retry(format!("presigning media: {e}")))?;
                media_urls.push(url);
            }
        }
        SendMode::Link | SendMode::PreviewLink => {
            for a in &attachments {
                if mode == SendMode::PreviewLink {
                    if let Some(url) = preview_url(deps, a).await? {
                        media_urls.push(url);
                    }
                }
                if let Some(token) = &a.link_token {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&deps.config.public_url(&format!("/m/{token}")));
                }
            }
        }
        SendMode::Sms | SendMode::MmsText => {}
    }
    let force_mms =
        mode == SendMode::MmsText || (matches!(mode, SendMode::Link | SendMode::PreviewLink) && !sms::fits_sms(&text));
    let webhook_url = deps.config.public_url(&format!("/api/webhooks/telnyx/status?m={id}"));
    let group_numbers: Vec<String> = match &destination {
        Destination::Group(to) => to.iter().map(|(_, p)| p.as_str().to_owned()).collect(),
        Destination::One(_) => Vec::new(),
    };
    let request = SendMessage {
        from: &ctx.church_number,
        to: match &destination {
            Destination::One(phone) => telnyx_api::To::One(phone.as_str()),
            Destination::Group(_) => telnyx_api::To::Group(&group_numbers),
        },
        text: (!text.is_empty()).then_some(text.as_str()),
        media_urls: &media_urls,
        webhook_url: Some(&webhook_url),
        force_mms,
    };

    {
        let mut pooled = deps.db.acquire().await?;
        if !db::messages::mark_in_flight(&mut pooled.conn(), id, clock::now()).await? {
            return Ok(()); // someone else took it
        }
    }
    let started = std::time::Instant::now();
    let result = deps.carrier.send(&request).await;
    metrics::histogram!("koinonia_send_seconds").record(started.elapsed().as_secs_f64());
    let now = clock::now();
    let outcome = record_send_outcome(deps, &message, &ctx, &destination, mode, result, now).await;
    announce(deps.live, &message).await;
    outcome
}

/// The send job is dead: the message is failed with the reason.
pub async fn give_up(deps: &Deps<'_>, id: MessageId, reason: &str) -> Result<(), sqlx::Error> {
    let mut pooled = deps.db.acquire().await?;
    let why = format!("could not be handed to the carrier: {reason}");
    db::messages::mark_send_failed(&mut pooled.conn(), id, &why, clock::now()).await.map(|_| ())
}

/// A presigned URL of the MMS-sized preview of a large photo, made now if the preview job has
/// not made it yet; `None` (the link alone goes) when no preview can be made or it does not fit.
async fn preview_url(deps: &Deps<'_>, a: &db::attachments::AttachmentRow) -> Result<Option<String>, JobError> {
    use crate::media::preview::PreviewError;
    let (key, bytes) = match crate::flows::files::ensure_previews(&deps.previews(), a).await {
        Ok(made) => made,
        Err(PreviewError::Transient(e)) => return Err(JobError::retry(format!("making the preview: {e}"))),
        Err(e) => {
            tracing::info!(attachment = %a.id, reason = %e, "no preview for a large photo; sending the link alone");
            return Ok(None);
        }
    };
    if bytes > deps.config.mms_max_attachment_bytes {
        return Ok(None);
    }
    let name = format!("{}-preview.jpg", a.name.rsplit_once('.').map_or(a.name.as_str(), |(stem, _)| stem));
    let url = deps
        .store
        .presign_get(&key, deps.config.media_url_ttl, "image/jpeg", &name)
        .await
        .map_err(|e| JobError::retry(format!("presigning the preview: {e}")))?;
    Ok(Some(url))
}

/// Records what the carrier answered (see the module docs for what each answer means).
async fn record_send_outcome(
    deps: &Deps<'_>,
    message: &db::messages::MessageRow,
    ctx: &db::messages::SendContext,
    destination: &Destination,
    mode: SendMode,
    result: Result<crate::telnyx::api::SentMessage, SendError>,
    now: DateTime<Utc>,
) -> Result<(), JobError> {
    let id = message.id;
    let mut pooled = deps.db.acquire().await?;
    let c = &mut pooled.conn();
    if let (Destination::Group(_), Err(e @ SendError::Rejected { .. })) = (destination, &result) {
        let reason = e.leader_message();
        db::messages::mark_send_failed(c, id, &reason, now).await?;
        db::recipients::apply(c, id, None, None, Some(DeliveryStatus::Failed), Some(&reason), now).await?;
        metrics::counter!("koinonia_sends_total", "outcome" => "rejected", "mode" => "group").increment(1);
        tracing::warn!(message = %id, error = %e, "carrier refused the group reply");
        return Ok(());
    }
    match result {
        Ok(sent) if matches!(destination, Destination::Group(_)) => {
            let Destination::Group(to) = destination else { return Ok(()) };
            for (number, word) in &sent.recipients {
                let Some((member, _)) = to.iter().find(|(_, p)| p.as_str() == number) else { continue };
                let status = word.as_deref().and_then(report_status);
                db::recipients::apply(c, id, Some(*member), word.as_deref(), status, None, now).await?;
            }
            let status = DeliveryStatus::of_group(&db::recipients::statuses(c, id).await?);
            db::messages::mark_accepted(c, id, &sent.id, status, now).await?;
            metrics::counter!("koinonia_sends_total", "outcome" => "accepted", "mode" => "group").increment(1);
            Ok(())
        }
        Ok(sent) => {
            let status = sent.to_status.as_deref().and_then(report_status);
            db::messages::mark_accepted(c, id, &sent.id, status, now).await?;
            if ctx.unreachable {
                db::members::clear_unreachable(c, message.church_id, message.member_id, now).await?;
            }
            metrics::counter!("koinonia_sends_total", "outcome" => "accepted", "mode" => mode.as_str()).increment(1);
            tracing::debug!(message = %id, mode = mode.as_str(), "reply handed to the carrier");
            Ok(())
        }
        Err(SendError::Retryable { reason, retry_after }) => {
            db::messages::back_to_pending(c, id, &format!("{reason}; will retry"), now).await?;
            metrics::counter!("koinonia_sends_total", "outcome" => "retry", "mode" => mode.as_str()).increment(1);
            Err(JobError::Retry { error: reason, after: retry_after })
        }
        Err(e @ SendError::Ambiguous { .. }) => {
            // Left in flight: the delivery report, or the reconcile deadline, settles it.
            metrics::counter!("koinonia_sends_total", "outcome" => "unconfirmed", "mode" => mode.as_str()).increment(1);
            tracing::warn!(message = %id, error = %e, "send outcome unknown; waiting for a delivery report");
            Err(JobError::Defer(deps.config.workers.send_reconcile))
        }
        Err(e @ SendError::Rejected { .. }) => {
            let reason = e.leader_message();
            db::messages::mark_send_failed(c, id, &reason, now).await?;
            if e.is_opt_out() {
                db::members::set_opted_out(c, message.church_id, message.member_id, true, now).await?;
            } else if e.is_unreachable() {
                db::members::set_unreachable(c, message.church_id, message.member_id, &reason, now).await?;
            }
            metrics::counter!("koinonia_sends_total", "outcome" => "rejected", "mode" => mode.as_str()).increment(1);
            tracing::warn!(message = %id, error = %e, "carrier refused the reply");
            Ok(())
        }
    }
}

/// A send found `in_flight`: never resent; settled by its delivery report or, failing that, by
/// the deadline.
async fn reconcile(deps: &Deps<'_>, c: &mut Conn<'_>, message: &db::messages::MessageRow) -> Result<(), JobError> {
    let started = message.send_started_at.unwrap_or(message.updated_at);
    let deadline = started
        + chrono::Duration::from_std(deps.config.workers.send_reconcile).unwrap_or(chrono::Duration::minutes(10));
    let now = clock::now();
    if now < deadline {
        return Err(JobError::Defer((deadline - now).to_std().unwrap_or(Duration::from_secs(1))));
    }
    db::messages::mark_send_failed(c, message.id, "not confirmed — check before resending", now).await?;
    metrics::counter!("koinonia_sends_total", "outcome" => "unconfirmed_failed", "mode" => "any").increment(1);
    Ok(())
}

/// A delivery report of a group reply: each member it names moves forward (and what it says of
/// that member — opted out, unreachable — is recorded), then the message's own status is summed
/// up from its recipients'.
async fn apply_group_report(
    c: &mut Conn<'_>,
    phone: &PhoneCrypto,
    message: &db::messages::MessageRow,
    report: &DeliveryReport,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let church = message.church_id;
    let codes: Vec<&str> = report.errors.iter().map(|e| e.code.as_str()).collect();
    for (number, word) in &report.recipients {
        let Ok(number) = Phone::parse(number) else { continue };
        let Some(member) = db::members::find_by_hash(c, church, &phone.blind_index(&number)).await? else { continue };
        let status = report_status(word);
        let changed = db::recipients::apply(c, message.id, Some(member.id), Some(word), status, reason, now).await?;
        if changed == 0 {
            continue; // not a recipient of this message
        }
        if codes.contains(&telnyx_api::CODE_OPTED_OUT) {
            db::members::set_opted_out(c, church, member.id, true, now).await?;
        } else if status == Some(DeliveryStatus::Failed)
            && codes.iter().any(|c| telnyx_api::CODES_UNREACHABLE.contains(c))
        {
            let why = reason.unwrap_or("the carrier could not deliver to this number");
            db::members::set_unreachable(c, church, member.id, why, now).await?;
        } else if status == Some(DeliveryStatus::Delivered) {
            db::members::clear_unreachable(c, church, member.id, now).await?;
        }
    }
    let summed = DeliveryStatus::of_group(&db::recipients::statuses(c, message.id).await?);
    let word = summed.map_or_else(|| report.status.clone(), |s| s.as_str().to_owned());
    let why = (summed == Some(DeliveryStatus::Failed)).then_some(reason).flatten();
    db::messages::apply_delivery_report(c, message.id, &report.provider_id, &word, summed, why, now).await?;
    Ok(())
}

/// koinonia's status and its rank for a carrier status word.
fn report_status(telnyx_status: &str) -> Option<DeliveryStatus> {
    telnyx_api::delivery_status(telnyx_status)
}

/// A delivery report from the carrier.
#[derive(Debug, Clone)]
pub struct DeliveryReport {
    /// The carrier's event id and type, for deduplication (none for a report without one).
    pub event_id: Option<String>,
    pub event_type: String,
    /// koinonia's message id, from the `webhook_url`'s `m` parameter, when present.
    pub message: Option<MessageId>,
    pub provider_id: String,
    /// The group message's id, when the carrier gives one besides `provider_id`.
    pub group_message_id: Option<String>,
    pub status: String,
    /// Each recipient the report names, with its status (`payload.to[]`): a group reply's
    /// reports name the member they are about.
    pub recipients: Vec<(String, String)>,
    pub errors: Vec<ApiErrorDetail>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportOutcome {
    Applied,
    /// The event was seen before: nothing changed.
    Duplicate,
    UnknownMessage,
}

/// Moves a message's status forward from a delivery report (never backward). The event id, the
/// new status and what it says about the member are one transaction: a report that fails is
/// not recorded as seen, so the carrier's retry is applied.
pub async fn apply_report(
    db: &Db,
    phone: &PhoneCrypto,
    live: &Live,
    report: &DeliveryReport,
) -> Result<ReportOutcome, sqlx::Error> {
    let now = clock::now();
    let mut tx = db.begin().await?;
    let c = &mut tx.conn();
    if let Some(event_id) = &report.event_id {
        if !db::webhook_events::insert_if_new(c, event_id, &report.event_type, None, now).await? {
            return Ok(ReportOutcome::Duplicate);
        }
    }
    let ids = [Some(report.provider_id.as_str()), report.group_message_id.as_deref()];
    let by_hint = match report.message {
        Some(id) => db::messages::get_for_job(c, id).await?.filter(|m| {
            m.direction == Direction::Outbound
                && m.provider_message_id.as_deref().is_none_or(|p| ids.contains(&Some(p)))
        }),
        None => None,
    };
    let mut message = by_hint;
    for id in ids.into_iter().flatten() {
        if message.is_none() {
            message = db::messages::find_by_provider_id(c, id).await?;
        }
    }
    let Some(message) = message else {
        tx.commit().await?;
        return Ok(ReportOutcome::UnknownMessage);
    };
    let status = report_status(&report.status);
    if status.is_none() {
        tracing::warn!(status = %report.status, message = %message.id, "unknown delivery status recorded as is");
    }
    let reason = telnyx_api::delivery_failure_reason(&report.errors);
    let group = db::recipients::statuses(c, message.id).await?;
    if !group.is_empty() {
        apply_group_report(c, phone, &message, report, reason.as_deref(), now).await?;
        tx.commit().await?;
        announce(live, &message).await;
        return Ok(ReportOutcome::Applied);
    }
    db::messages::apply_delivery_report(
        c,
        message.id,
        &report.provider_id,
        &report.status,
        status,
        reason.as_deref(),
        now,
    )
    .await?;
    let codes: Vec<&str> = report.errors.iter().map(|e| e.code.as_str()).collect();
    if codes.contains(&telnyx_api::CODE_OPTED_OUT) {
        db::members::set_opted_out(c, message.church_id, message.member_id, true, now).await?;
    } else if status == Some(DeliveryStatus::Failed) && codes.iter().any(|c| telnyx_api::CODES_UNREACHABLE.contains(c))
    {
        let why = reason.as_deref().unwrap_or("the carrier could not deliver to this number");
        db::members::set_unreachable(c, message.church_id, message.member_id, why, now).await?;
    } else if status == Some(DeliveryStatus::Delivered) {
        db::members::clear_unreachable(c, message.church_id, message.member_id, now).await?;
    }
    tx.commit().await?;
    announce(live, &message).await;
    Ok(ReportOutcome::Applied)
}
