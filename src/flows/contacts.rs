//! A phone number becomes a member of one church, with their own conversation; several numbers
//! texting the church together become a group conversation. Shared by inbound messages and by
//! leaders starting a conversation.

use chrono::{DateTime, Utc};

use crate::crypto::phone::{PhoneCrypto, PhoneCryptoError};
use crate::db::{self, Conn};
use crate::domain::{ChurchId, ConversationId, MemberId, Phone};

#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Crypto(#[from] PhoneCryptoError),
}

/// Finds or creates the member with this number in `church`, and their conversation.
///
/// A known number costs two reads and writes nothing (the common case: a member writing again);
/// a new one is created with an upsert, so two first messages from the same number at once
/// still make one member and one conversation.
pub async fn member_and_conversation(
    c: &mut Conn<'_>,
    crypto: &PhoneCrypto,
    church: ChurchId,
    phone: &Phone,
    now: DateTime<Utc>,
) -> Result<(db::members::MemberRow, ConversationId), ContactError> {
    let hash = crypto.blind_index(phone);
    if let Some(member) = db::members::find_by_hash(c, church, &hash).await? {
        if let Some(conversation) = db::conversations::find_for_member(c, church, member.id).await? {
            return Ok((member, conversation));
        }
    }
    let member = member(c, crypto, church, phone, hash, now).await?;
    let conversation = db::conversations::find_or_create(
        c,
        &db::conversations::ConversationRow {
            id: ConversationId::new(),
            church_id: church,
            member_id: member.id,
            last_message_at: now,
            last_message_preview: String::new(),
            unread_count: 0,
            created_at: now,
            updated_at: now,
            group_key: None,
        },
    )
    .await?;
    Ok((member, conversation.id))
}

/// Finds or creates the members of a group text — `from`, who wrote, and `others` (never the
/// church's number) — and the group's conversation. Returns the writer and the conversation.
pub async fn group_conversation(
    c: &mut Conn<'_>,
    crypto: &PhoneCrypto,
    church: ChurchId,
    from: &Phone,
    others: &[Phone],
    now: DateTime<Utc>,
) -> Result<(db::members::MemberRow, ConversationId), ContactError> {
    let sender = known_or_new(c, crypto, church, from, now).await?;
    let mut ids = vec![sender.id];
    for phone in others {
        let m = known_or_new(c, crypto, church, phone, now).await?;
        if !ids.contains(&m.id) {
            ids.push(m.id);
        }
    }
    let conversation = db::conversations::find_or_create_group(c, church, &ids, now).await?;
    Ok((sender, conversation))
}

async fn known_or_new(
    c: &mut Conn<'_>,
    crypto: &PhoneCrypto,
    church: ChurchId,
    phone: &Phone,
    now: DateTime<Utc>,
) -> Result<db::members::MemberRow, ContactError> {
    let hash = crypto.blind_index(phone);
    match db::members::find_by_hash(c, church, &hash).await? {
        Some(m) => Ok(m),
        None => member(c, crypto, church, phone, hash, now).await,
    }
}

/// Creates the member with this number (an upsert: a concurrent first message finds the same).
async fn member(
    c: &mut Conn<'_>,
    crypto: &PhoneCrypto,
    church: ChurchId,
    phone: &Phone,
    hash: Vec<u8>,
    now: DateTime<Utc>,
) -> Result<db::members::MemberRow, ContactError> {
    Ok(db::members::find_or_create(
        c,
        &db::members::MemberRow {
            id: MemberId::new(),
            church_id: church,
            phone_hash: hash,
            phone_ciphertext: crypto.encrypt(phone)?,
            phone_last4: phone.last4().to_owned(),
            first_name: None,
            last_name: None,
            opted_out: false,
            opted_out_at: None,
            unreachable: false,
            unreachable_reason: None,
            created_at: now,
            updated_at: now,
        },
    )
    .await?)
}
