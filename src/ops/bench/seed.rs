//! `koinonia bench seed`: fills the configured database with a church's worth of realistic rows
//! (members with encrypted numbers, their conversations, inbound messages, stored photos) through
//! the product's own row writers, in bulk, so the read routes can be measured from outside at the
//! size a church reaches after years. `bench read` seeds its scratch database the same way.
//!
//! The photos are rows only: their bytes are not written to the media store (a download of one
//! answers as a missing file would).

use std::time::{Duration, Instant};

use anyhow::bail;

use crate::config::Config;
use crate::crypto::phone::PhoneCrypto;
use crate::db::{self, Db};
use crate::domain::{AttachmentStatus, ChurchId, ConversationId, Direction, MediaKind, MemberId, Phone};

/// What to add.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub messages: usize,
    pub conversations: usize,
    pub attachments: usize,
    /// The church's number: the church that owns it, or a new church "Bench" with it.
    pub church_number: String,
}

/// What was added, and where.
#[derive(Debug, Clone)]
pub struct SeedReport {
    pub options: SeedOptions,
    pub church: ChurchId,
    pub created: bool,
    pub took: Duration,
}

impl SeedReport {
    pub fn render(&self) -> String {
        let o = &self.options;
        format!(
            "koinonia bench seed: {} church {} ({})\n\
             added          {} messages and {} stored photos over {} members' conversations\n\
             took           {:.1} s ({:.0} messages/s), then ANALYZE",
            if self.created { "created" } else { "added to" },
            self.church,
            o.church_number,
            o.messages,
            o.attachments,
            o.conversations,
            self.took.as_secs_f64(),
            o.messages as f64 / self.took.as_secs_f64().max(1e-9),
        )
    }
}

/// Checks the sizes the way `bench read` does.
pub(super) fn check_sizes(messages: usize, conversations: usize, attachments: usize) -> anyhow::Result<()> {
    if conversations == 0 || conversations > 1_000_000 {
        bail!("--conversations must be between 1 and 1000000");
    }
    if messages < conversations || messages > 20_000_000 {
        bail!("--messages must be at least --conversations and at most 20000000");
    }
    if attachments > messages {
        bail!("--attachments must not exceed --messages");
    }
    Ok(())
}

/// Adds `--conversations` members (numbers +1 312 000 0000 onwards; those the church already has
/// are reused), then `--messages` messages spread over them and `--attachments` stored photos, to
/// the church that owns `--church-number` in the database `config` names.
pub async fn seed(config: &Config, options: SeedOptions) -> anyhow::Result<SeedReport> {
    let o = &options;
    check_sizes(o.messages, o.conversations, o.attachments)?;
    let number = Phone::parse(&o.church_number).map_err(|e| anyhow::anyhow!("--church-number: {e}"))?;
    let db = crate::ops::cli::open_db(config).await?;
    let started = Instant::now();
    let existing = {
        let mut pooled = db.acquire().await?;
        db::churches::find_by_number(&mut pooled.conn(), number.as_str()).await?
    };
    let (church, created) = match existing {
        Some(c) => (c.id, false),
        None => (crate::ops::cli::create_church(&db, "Bench", number.as_str(), None, None).await?, true),
    };
    let phone = PhoneCrypto::new(&config.secrets);
    let contacts = contacts(&db, &phone, church, o.conversations).await?;
    messages(&db, church, &contacts, (0, 0), (o.messages, o.attachments)).await?;
    analyze(&db).await?;
    db.close().await;
    Ok(SeedReport { options, church, created, took: started.elapsed() })
}

/// Members with encrypted numbers and their conversations; every tenth one named.
pub(super) async fn contacts(
    db: &Db,
    phone: &PhoneCrypto,
    church: ChurchId,
    n: usize,
) -> anyhow::Result<Vec<(MemberId, ConversationId)>> {
    let now = crate::clock::now();
    let mut out = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(5_000) {
        let mut tx = db.begin().await?;
        let c = &mut tx.conn();
        for i in chunk {
            let number = Phone::parse(&format!("+1312{:07}", i)).map_err(|e| anyhow::anyhow!("{e}"))?;
            let (member, conversation) =
                crate::flows::contacts::member_and_conversation(c, phone, church, &number, now).await?;
            if i % 10 == 0 {
                db::members::set_name(c, church, member.id, Some(&format!("Grace{i}")), Some("Smith"), now).await?;
            }
            out.push((member.id, conversation));
        }
        tx.commit().await?;
    }
    Ok(out)
}

/// Adds inbound messages (spread over the conversations) and stored photos until the church holds
/// `to`, in transactions of 50,000 rows.
pub(super) async fn messages(
    db: &Db,
    church: ChurchId,
    contacts: &[(MemberId, ConversationId)],
    from: (usize, usize),
    to: (usize, usize),
) -> anyhow::Result<()> {
    let now = crate::clock::now();
    let (messages, attachments) = (to.0 - from.0, to.1 - from.1);
    let every = messages.checked_div(attachments).map_or(usize::MAX, |e| e.max(1));
    let mut with_file = 0;
    let mut k = 0;
    while k < messages {
        let n = (messages - k).min(50_000);
        let mut tx = db.begin().await?;
        let c = &mut tx.conn();
        let rows: Vec<db::messages::MessageRow> = (k..k + n)
            .map(|i| {
                let (member, conversation) = contacts[(from.0 + i) % contacts.len()];
                db::messages::MessageRow::new(
                    church,
                    conversation,
                    member,
                    Direction::Inbound,
                    format!("Message {}: see you on Sunday at the 10 o'clock service.", from.0 + i),
                    now,
                )
            })
            .collect();
        db::messages::insert_many(c, &rows).await?;
        for (j, m) in rows.iter().enumerate() {
            if (k + j) % every == 0 && with_file < attachments {
                with_file += 1;
                let key = format!("conversations/{church}/{}/{}.jpg", m.conversation_id, m.id);
                let row = db::attachments::AttachmentRow {
                    status: AttachmentStatus::Stored,
                    media_type: Some(MediaKind::Image),
                    mime_type: Some("image/jpeg".into()),
                    declared_type: Some("image/jpeg".into()),
                    storage_key: Some(key),
                    size_bytes: Some(2_400_000),
                    width: Some(4032),
                    height: Some(3024),
                    sha256: Some("0".repeat(64)),
                    stored_at: Some(now),
                    ..db::attachments::AttachmentRow::new(church, m.conversation_id, m.id, 0, "photo.jpg".into(), now)
                };
                db::attachments::insert(c, &row).await?;
            }
        }
        tx.commit().await?;
        k += n;
    }
    Ok(())
}

pub(super) async fn analyze(db: &Db) -> anyhow::Result<()> {
    let mut pooled = db.acquire().await?;
    db::run!(&mut pooled.conn(), |q| sqlx::query("ANALYZE").execute(&mut **q).await.map(|_| ()))?;
    Ok(())
}
