//! The phone simulator (sandbox carrier only): someone plays a member, or several members of a
//! group text (each in turn, naming the others). Their files are staged
//! in the store and announced like a carrier's, so the message goes through the same inbound
//! flow and the same download job a Telnyx webhook takes; they read the church's replies and
//! open its files as a member would.

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::db;
use crate::db::Db;
use crate::domain::{AttachmentId, AttachmentStatus, ChurchId, ClientAddr, ConversationId, MemberId, Phone};
use crate::flows::audit;
use crate::flows::inbound::{self, AnnouncedFile, InboundMessage};
use crate::media::ingest::{format_size, SANDBOX_PREFIX, SANDBOX_SCHEME};
use crate::media::names;
use crate::media::store::MediaStore;
use crate::media::store::{ObjectInfo, Uncommitted};

/// What the simulator needs: its own reads and staging, and the inbound and library flows.
pub struct Deps<'a> {
    pub db: &'a Db,
    pub store: &'a MediaStore,
    pub phone: &'a crate::crypto::phone::PhoneCrypto,
    pub carrier: &'a crate::carrier::Carrier,
    pub config: &'a crate::config::Config,
    pub inbound: inbound::Deps<'a>,
    pub library: crate::flows::library::Deps<'a>,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// There is no simulator: the carrier is not the sandbox.
    #[error("not found")]
    Unavailable,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("File too large (max {0})")]
    TooLarge(String),
    #[error("the media store failed: {0}")]
    Store(#[from] crate::media::store::StoreError),
    #[error("cannot record the message: {0}")]
    Inbound(#[from] inbound::InboundError),
    #[error("the media link failed: {0}")]
    Link(#[from] crate::flows::library::LibraryError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Whether the simulator exists here.
pub fn available(deps: &Deps<'_>) -> Result<(), SandboxError> {
    if deps.carrier.is_sandbox() {
        Ok(())
    } else {
        Err(SandboxError::Unavailable)
    }
}

/// The churches a member can text: (number, name).
pub async fn churches(deps: &Deps<'_>) -> Result<Vec<(String, String)>, SandboxError> {
    available(deps)?;
    let mut pooled = deps.db.acquire().await?;
    let rows = db::churches::all(&mut pooled.conn()).await?;
    Ok(rows.into_iter().map(|c| (c.phone_number, c.name)).collect())
}

/// The other numbers of a group text on the simulated phone: written comma- or space-separated,
/// at most [`inbound::MAX_GROUP_MEMBERS`] numbers in all. Empty: the phone texts the church alone.
pub fn group_numbers(group: &str) -> Result<Vec<Phone>, SandboxError> {
    let numbers = group
        .split([',', ';', ' ', '\n'])
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| Phone::parse(n).map_err(|e| SandboxError::Invalid(format!("group number {n:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if numbers.len() >= inbound::MAX_GROUP_MEMBERS {
        return Err(SandboxError::Invalid(format!(
            "a group text has at most {} numbers besides yours",
            inbound::MAX_GROUP_MEMBERS - 1
        )));
    }
    Ok(numbers)
}

/// The phone's conversation with the church of that number — its own, or with `group` (the other
/// numbers of a group text) the group's — if there is one yet, with the phone's member id.
pub async fn conversation_of(
    deps: &Deps<'_>,
    phone: &str,
    church: &str,
    group: &str,
) -> Result<Option<(ChurchId, ConversationId, MemberId)>, SandboxError> {
    available(deps)?;
    let phone = Phone::parse(phone).map_err(|e| SandboxError::Invalid(format!("phone: {e}")))?;
    let church_number = Phone::parse(church).map_err(|e| SandboxError::Invalid(format!("church: {e}")))?;
    let others = group_numbers(group)?;
    let mut pooled = deps.db.acquire().await?;
    let c = &mut pooled.conn();
    let Some(church) = db::churches::find_by_number(c, church_number.as_str()).await? else { return Ok(None) };
    let mut members = Vec::new();
    for number in std::iter::once(&phone).chain(others.iter().filter(|n| **n != phone && **n != church_number)) {
        match db::members::find_by_hash(c, church.id, &deps.phone.blind_index(number)).await? {
            Some(m) => members.push(m.id),
            None => return Ok(None), // someone of the group never wrote: no conversation yet
        }
    }
    let me = members[0];
    let conversation = if members.len() == 1 {
        db::conversations::find_for_member(c, church.id, me).await?
    } else {
        db::conversations::find_group(c, church.id, &members).await?
    };
    Ok(conversation.map(|id| (church.id, id, me)))
}

/// The member opens a stored file of their conversation, or of their group's (audited as theirs).
pub async fn open_file(
    deps: &Deps<'_>,
    phone: &str,
    church: &str,
    group: &str,
    id: AttachmentId,
) -> Result<String, SandboxError> {
    let (church, conversation, _) = conversation_of(deps, phone, church, group).await?.ok_or(SandboxError::NotFound)?;
    let a = {
        let mut pooled = deps.db.acquire().await?;
        db::attachments::get(&mut pooled.conn(), church, id).await?
    };
    let a = a
        .filter(|a| a.conversation_id == conversation && a.status == AttachmentStatus::Stored)
        .ok_or(SandboxError::NotFound)?;
    let entry = audit::Entry::member(church, "media.sandbox_open", ClientAddr::default());
    Ok(crate::flows::library::presign_audited(&deps.library, &a, entry).await?)
}

/// A message being composed on the simulated phone: its files are staged in the store as they
/// arrive and deleted again unless the message is recorded.
pub struct Outgoing {
    files: Vec<AnnouncedFile>,
    staged: Uncommitted,
}

impl Outgoing {
    pub fn new(deps: &Deps<'_>) -> Result<Self, SandboxError> {
        available(deps)?;
        Ok(Self { files: Vec::new(), staged: Uncommitted::new(deps.store) })
    }

    /// Stages one file, streamed into the store up to `MAX_MEDIA_SIZE_BYTES`; `body` yields its
    /// chunks or why the upload broke off.
    pub async fn attach(
        &mut self,
        deps: &Deps<'_>,
        name: &str,
        declared_type: Option<String>,
        mut body: BoxStream<'_, Result<Bytes, String>>,
    ) -> Result<(), SandboxError> {
        let name = names::display_name(name);
        let key = format!("{SANDBOX_PREFIX}{}_{}", uuid::Uuid::new_v4().simple(), names::safe_name(&name));
        let info = ObjectInfo {
            content_type: declared_type.as_deref().unwrap_or("application/octet-stream"),
            original_filename: &name,
            conversation_id: ConversationId::new(),
            uploaded_at: crate::clock::now(),
        };
        let max = deps.config.max_media_size_bytes;
        let mut writer = deps.store.writer(&key, &info).await?;
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    writer.abort().await;
                    return Err(SandboxError::Invalid(format!("multipart: {e}")));
                }
            };
            size += chunk.len() as u64;
            if size > max {
                writer.abort().await;
                return Err(SandboxError::TooLarge(format_size(max)));
            }
            writer.put(chunk).await?;
        }
        writer.finish().await?;
        self.staged.add(&key);
        self.files.push(AnnouncedFile {
            url: format!("{SANDBOX_SCHEME}{key}"),
            declared_type,
            declared_size: Some(size),
            declared_sha256: None,
            name: Some(name),
        });
        Ok(())
    }

    /// Sends the message from `phone` to the church numbered `church` (and with `group`, to the
    /// other numbers of a group text, as a carrier lists them in `cc`), as a carrier would
    /// announce it; returns how many files it carried.
    pub async fn send(
        self,
        deps: &Deps<'_>,
        phone: &str,
        church: &str,
        group: &str,
        text: &str,
    ) -> Result<usize, SandboxError> {
        let (Ok(from), Ok(to)) = (Phone::parse(phone), Phone::parse(church)) else {
            return Err(SandboxError::Invalid("phone and church must be phone numbers".into()));
        };
        let cc = group_numbers(group)?;
        if text.trim().is_empty() && self.files.is_empty() {
            return Err(SandboxError::Invalid("write something or attach a file".into()));
        }
        let count = self.files.len();
        let msg = InboundMessage {
            event_id: Some(format!("sandbox-{}", uuid::Uuid::new_v4())),
            event_type: "message.received".into(),
            from,
            to: vec![to],
            cc,
            text: text.trim().to_owned(),
            files: self.files,
            autoresponse_type: None,
        };
        match inbound::record(&deps.inbound, msg).await? {
            inbound::Outcome::Recorded { .. } => {
                // The fetch job reads each staged file into place and then deletes it.
                self.staged.keep();
                Ok(count)
            }
            _ => Err(SandboxError::Invalid("no church has that number".into())),
        }
    }
}
