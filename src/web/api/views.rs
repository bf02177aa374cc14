//! JSON shapes of the API (docs/api.md), built from rows in one place.

use serde::Serialize;
use utoipa::ToSchema;

use crate::db::attachments::AttachmentRow;
use crate::db::conversations::{InboxRow, Participant};
use crate::db::messages::MessageRow;
use crate::domain::{
    mask_last4, AttachmentId, AttachmentStatus, ConversationId, DeliveryStatus, Direction, MediaKind, MemberId,
    MessageId, Phone,
};
use crate::flows::inbox;

/// A congregation member. `phone` is masked to its last four digits (`•••-•••-1234`) everywhere
/// but the leader's own thread header.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Member)]
pub struct MemberView {
    pub id: MemberId,
    #[schema(required = true)]
    pub first_name: Option<String>,
    #[schema(required = true)]
    pub last_name: Option<String>,
    pub phone: String,
    pub opted_out: bool,
    pub unreachable: bool,
}

/// A church's conversation with one member, or with a group of members who texted the church
/// number together (a group MMS).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Conversation)]
pub struct ConversationView {
    pub id: ConversationId,
    /// The member; in a group, the first of its members (the one who started it).
    pub member: MemberView,
    /// A group conversation: replies go to every participant as one group MMS.
    pub group: bool,
    /// A group's members in the order they joined (numbers masked); empty for a member's own
    /// conversation.
    pub participants: Vec<MemberView>,
    #[schema(format = DateTime)]
    pub last_message_at: String,
    pub last_message_preview: String,
    pub unread_count: i64,
}

/// One file of a message. `url` (`/api/media/{id}`) answers with the full-quality original.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Attachment)]
pub struct AttachmentView {
    pub id: AttachmentId,
    pub status: AttachmentStatus,
    pub url: String,
    #[serde(rename = "type")]
    #[schema(required = true)]
    pub kind: Option<MediaKind>,
    /// One of the allowed types, once the file's bytes were read.
    #[schema(required = true, schema_with = crate::web::openapi::mime_type_or_null)]
    pub mime_type: Option<String>,
    pub name: String,
    #[schema(required = true)]
    pub size_bytes: Option<i64>,
    #[schema(required = true)]
    pub width: Option<i32>,
    #[schema(required = true)]
    pub height: Option<i32>,
    #[schema(required = true)]
    pub duration_seconds: Option<f64>,
    #[schema(required = true)]
    pub sha256: Option<String>,
    #[schema(required = true)]
    pub failure_reason: Option<String>,
    /// What the virus scanner said: `clean`, `not_scanned` (with the reason) or `infected`
    /// (with the signature; the status reads `blocked`). Null for files stored before scanning.
    #[schema(required = true)]
    pub scan: Option<ScanView>,
    pub keep: bool,
    /// Preview images (JPEG; longest side 320 and 1280 px), once made.
    #[schema(required = true)]
    pub previews: Option<PreviewsView>,
    /// Previews are still to be made (the dashboard shows a placeholder, not the original).
    #[serde(skip)]
    #[schema(ignore)]
    pub preview_pending: bool,
}

/// The virus scanner's word on a file.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Scan)]
pub struct ScanView {
    /// `clean`, `not_scanned` or `infected`.
    pub state: String,
    /// Why it was not scanned, or the signature an infected file matched.
    #[schema(required = true)]
    pub detail: Option<String>,
}

/// URLs of an attachment's preview images.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Previews)]
pub struct PreviewsView {
    pub small: String,
    pub large: String,
}

/// One message, either direction, with its files.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Message)]
pub struct MessageView {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub direction: Direction,
    pub content: String,
    /// Outbound messages only.
    #[schema(required = true)]
    pub delivery_status: Option<DeliveryStatus>,
    #[schema(required = true)]
    pub failure_reason: Option<String>,
    /// An inbound text that is not a keyword but probably asks to opt out.
    pub likely_opt_out: bool,
    #[schema(required = true)]
    pub provider_message_id: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub media: Vec<AttachmentView>,
    /// Who sent an inbound message (a member id; in a group, one of its participants). Null for
    /// a leader's reply.
    #[schema(required = true)]
    pub sender_id: Option<MemberId>,
    /// A reply to a group: each recipient's own delivery. Empty otherwise.
    pub recipients: Vec<RecipientView>,
    /// The sender's name or masked number, for the dashboard (groups only).
    #[serde(skip)]
    #[schema(ignore)]
    pub sender_label: Option<String>,
}

/// One recipient of a reply to a group, with its own delivery.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Recipient)]
pub struct RecipientView {
    pub member_id: MemberId,
    pub delivery_status: DeliveryStatus,
    #[schema(required = true)]
    pub failure_reason: Option<String>,
    /// The member's name or masked number, for the dashboard.
    #[serde(skip)]
    #[schema(ignore)]
    pub label: String,
}

/// ISO-8601 UTC with milliseconds, as JavaScript's `Date` prints it.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    crate::clock::iso8601(t)
}

/// A member as a leader sees it: the number masked, or in full where the flow gave it (the
/// thread header only).
pub fn member(row: &InboxRow, phone: Option<&Phone>) -> MemberView {
    MemberView {
        id: row.member_id,
        first_name: row.first_name.clone(),
        last_name: row.last_name.clone(),
        phone: phone.map_or_else(|| mask_last4(&row.phone_last4), |p| p.as_str().to_owned()),
        opted_out: row.opted_out,
        unreachable: row.unreachable,
    }
}

/// A member from its own row (numbers masked).
pub fn member_row(m: &crate::db::members::MemberRow) -> MemberView {
    MemberView {
        id: m.id,
        first_name: m.first_name.clone(),
        last_name: m.last_name.clone(),
        phone: mask_last4(&m.phone_last4),
        opted_out: m.opted_out,
        unreachable: m.unreachable,
    }
}

/// A conversation of the inbox list (number masked).
pub fn conversation_row(row: &InboxRow) -> ConversationView {
    conversation_with(row, None)
}

/// A conversation as the flow gave it (with the full number when it did).
pub fn conversation(c: &inbox::Conversation) -> ConversationView {
    conversation_with(&c.row, c.phone.as_ref())
}

fn conversation_with(row: &InboxRow, phone: Option<&Phone>) -> ConversationView {
    ConversationView {
        id: row.id,
        member: member(row, phone),
        group: row.is_group,
        participants: row.participants.iter().map(participant).collect(),
        last_message_at: timestamp(row.last_message_at),
        last_message_preview: row.last_message_preview.clone(),
        unread_count: row.unread_count,
    }
}

pub fn attachment(a: &AttachmentRow) -> AttachmentView {
    let stored = a.status == AttachmentStatus::Stored;
    let infected = a.scan_state.as_deref() == Some("infected");
    AttachmentView {
        id: a.id,
        status: if infected && a.status == AttachmentStatus::Failed { AttachmentStatus::Blocked } else { a.status },
        url: format!("/api/media/{}", a.id),
        kind: a.media_type,
        mime_type: a.mime_type.clone(),
        name: crate::media::names::display_name(&a.name),
        size_bytes: a.size_bytes.or(if stored { None } else { a.declared_size }),
        width: a.width,
        height: a.height,
        duration_seconds: a.duration_seconds,
        sha256: a.sha256.clone(),
        failure_reason: a.failure_reason.clone(),
        scan: a.scan_state.as_ref().map(|state| ScanView { state: state.clone(), detail: a.scan_detail.clone() }),
        keep: a.keep,
        previews: (stored && a.preview_small_key.is_some() && a.preview_large_key.is_some()).then(|| PreviewsView {
            small: format!("/api/media/{}/preview/small", a.id),
            large: format!("/api/media/{}/preview/large", a.id),
        }),
        preview_pending: stored
            && a.preview_state.is_none()
            && matches!(a.media_type, Some(MediaKind::Image | MediaKind::Video)),
    }
}

/// A message of a thread, with its files (and in a group, who sent it or who it reached).
pub fn thread_message(t: &inbox::ThreadMessage) -> MessageView {
    MessageView {
        sender_label: t.sender.as_ref().map(participant_label),
        recipients: t
            .recipients
            .iter()
            .map(|(r, who)| RecipientView {
                member_id: r.member_id,
                delivery_status: r.delivery_status,
                failure_reason: r.failure_reason.clone(),
                label: who.as_ref().map_or_else(|| "a former member".to_owned(), participant_label),
            })
            .collect(),
        ..message(&t.message, &t.files)
    }
}

/// A group member's name, or their masked number.
fn participant_label(p: &Participant) -> String {
    crate::domain::name_or_masked(p.first_name.as_deref(), p.last_name.as_deref(), &p.phone_last4)
}

/// "First Last" (either part may be missing), or `otherwise` when there is no name.
fn name_or(first: Option<&str>, last: Option<&str>, otherwise: impl FnOnce() -> String) -> String {
    let name = crate::domain::full_name(first, last);
    if name.is_empty() {
        otherwise()
    } else {
        name
    }
}

/// A group's member (number masked).
pub fn participant(p: &Participant) -> MemberView {
    MemberView {
        id: p.member_id,
        first_name: p.first_name.clone(),
        last_name: p.last_name.clone(),
        phone: mask_last4(&p.phone_last4),
        opted_out: p.opted_out,
        unreachable: p.unreachable,
    }
}

pub fn message(m: &MessageRow, attachments: &[AttachmentRow]) -> MessageView {
    MessageView {
        id: m.id,
        conversation_id: m.conversation_id,
        direction: m.direction,
        content: m.content.clone(),
        delivery_status: m.delivery_status,
        failure_reason: m.failure_reason.clone(),
        likely_opt_out: m.likely_opt_out,
        provider_message_id: m.provider_message_id.clone(),
        created_at: timestamp(m.created_at),
        media: attachments.iter().map(attachment).collect(),
        sender_id: (m.direction == Direction::Inbound).then_some(m.member_id),
        recipients: Vec::new(),
        sender_label: None,
    }
}

/// Display helpers used by the dashboard's templates.
impl ConversationView {
    /// The member's name, or their (masked or full) number; a group's members' names.
    pub fn display_name(&self) -> String {
        if self.group {
            return group_name(&self.participants);
        }
        let m = &self.member;
        name_or(m.first_name.as_deref(), m.last_name.as_deref(), || m.phone.clone())
    }

    pub fn time_label(&self) -> String {
        short_time(&self.last_message_at)
    }

    /// Whether a leader has named the member (otherwise the number is the name).
    pub fn has_name(&self) -> bool {
        self.group || self.display_name() != self.member.phone
    }
}

impl MemberView {
    /// The member's name, or their number.
    pub fn display_name(&self) -> String {
        name_or(self.first_name.as_deref(), self.last_name.as_deref(), || self.phone.clone())
    }
}

impl ConversationView {
    /// How many of a group's members can receive texts (have not opted out).
    pub fn reachable(&self) -> usize {
        self.participants.iter().filter(|p| !p.opted_out).count()
    }
}

impl RecipientView {
    /// One recipient's delivery as a leader reads it.
    pub fn status_word(&self) -> String {
        match self.delivery_status {
            DeliveryStatus::Queued | DeliveryStatus::LinkSent => "queued".to_owned(),
            DeliveryStatus::Sending => "sending".to_owned(),
            DeliveryStatus::Sent => "sent".to_owned(),
            DeliveryStatus::Delivered => "delivered".to_owned(),
            DeliveryStatus::Failed => {
                format!("not delivered ({})", self.failure_reason.as_deref().unwrap_or("no reason given"))
            }
        }
    }
}

/// "Ann, Ben and •••-•••-0103": a group by its members (first names where known).
fn group_name(members: &[MemberView]) -> String {
    let names: Vec<String> = members
        .iter()
        .map(|m| name_or(m.first_name.as_deref(), None, || name_or(None, m.last_name.as_deref(), || m.phone.clone())))
        .collect();
    match names.as_slice() {
        [] => "Group".to_owned(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

impl MessageView {
    pub fn is_outbound(&self) -> bool {
        self.direction == Direction::Outbound
    }

    pub fn time_label(&self) -> String {
        short_time(&self.created_at)
    }

    /// The delivery status as a leader reads it; a group reply's counts its recipients
    /// ("Delivered to 3 of 4").
    pub fn status_label(&self) -> String {
        let total = self.recipients.len();
        if total > 0 && self.delivery_status != Some(DeliveryStatus::Failed) {
            let delivered = self.recipients.iter().filter(|r| r.delivery_status == DeliveryStatus::Delivered).count();
            let failed = self.recipients.iter().filter(|r| r.delivery_status == DeliveryStatus::Failed).count();
            let mut label = if delivered > 0 {
                format!("Delivered to {delivered} of {total}")
            } else {
                match self.delivery_status {
                    Some(DeliveryStatus::Sent) => format!("Sent to {total}"),
                    Some(DeliveryStatus::Sending) => format!("Sending to {total}"),
                    _ => format!("Queued for {total}"),
                }
            };
            if failed > 0 {
                label.push_str(&format!(" · not delivered to {failed}"));
            }
            return label;
        }
        match self.delivery_status {
            Some(DeliveryStatus::Queued) => "Queued".into(),
            Some(DeliveryStatus::LinkSent) => "Sent as a link".into(),
            Some(DeliveryStatus::Sending) => "Sending".into(),
            Some(DeliveryStatus::Sent) => "Sent".into(),
            Some(DeliveryStatus::Delivered) => "Delivered".into(),
            Some(DeliveryStatus::Failed) => {
                format!("Failed: {}", self.failure_reason.as_deref().unwrap_or("unknown reason"))
            }
            None => String::new(),
        }
    }
}

impl AttachmentView {
    /// Why a kept file was not virus-scanned (the pages say so, quietly).
    pub fn not_scanned(&self) -> Option<&str> {
        let scan =
            self.scan.as_ref().filter(|s| s.state == "not_scanned" && self.status == AttachmentStatus::Stored)?;
        Some(scan.detail.as_deref().unwrap_or("not scanned"))
    }

    /// The preview job has not run yet.
    pub fn preview_waiting(&self) -> bool {
        self.preview_pending
    }

    pub fn is(&self, kind: &str) -> bool {
        self.kind.is_some_and(|k| k == kind)
    }

    pub fn size_label(&self) -> String {
        self.size_bytes.map(|b| human_size(u64::try_from(b).unwrap_or(0))).unwrap_or_default()
    }

    pub fn duration_label(&self) -> String {
        match self.duration_seconds {
            Some(d) if d.is_finite() && d >= 0.0 => {
                let secs = d.round() as u64;
                format!("{}:{:02}", secs / 60, secs % 60)
            }
            _ => String::new(),
        }
    }

    /// What a placeholder says while the file is not shown.
    pub fn kind_label(&self) -> &'static str {
        match self.kind {
            Some(MediaKind::Image) => "photo",
            Some(MediaKind::Video) => "video",
            Some(MediaKind::Audio) => "voice note",
            Some(MediaKind::Document) => "document",
            None => "file",
        }
    }
}

/// `1.2 MB`, `340 KB`, `12 bytes`.
pub fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1_048_576 => format!("{:.1} MB", b as f64 / 1_048_576.0),
        b if b >= 1024 => format!("{} KB", (b + 512) / 1024),
        b => format!("{b} bytes"),
    }
}

/// `14:05` today, `Nov 3` otherwise (UTC).
fn short_time(iso: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(iso) {
        Ok(t) => {
            let t = t.with_timezone(&chrono::Utc);
            if t.date_naive() == chrono::Utc::now().date_naive() {
                t.format("%H:%M").to_string()
            } else {
                t.format("%b %-d").to_string()
            }
        }
        Err(_) => String::new(),
    }
}
