//! Members: naming, erasure on request, and the export of everything kept about one.

use crate::clock;
use crate::crypto::phone::PhoneCrypto;
use crate::db;
use crate::db::members::MemberRow;
use crate::db::Db;
use crate::domain::{Actor, ConversationId, MemberId};
use crate::flows::audit;
use crate::live::Live;
use crate::media::store::MediaStore;

pub mod export;

/// What the member flows read and write.
pub struct Deps<'a> {
    pub db: &'a Db,
    pub store: &'a MediaStore,
    pub phone: &'a PhoneCrypto,
    pub live: &'a Live,
}

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// No such member in this church.
    #[error("not found")]
    NotFound,
    #[error("only an admin of the church can {0}")]
    AdminOnly(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("the media store failed: {0}")]
    Store(#[from] crate::media::store::StoreError),
    #[error("the member's number cannot be decrypted: {0}")]
    Crypto(#[from] crate::crypto::phone::PhoneCryptoError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A name part as given: trimmed, at most 100 characters, no control characters; empty clears.
fn clean_name(field: &str, value: Option<&str>) -> Result<Option<String>, MemberError> {
    let Some(v) = value else { return Ok(None) };
    let v = v.trim();
    if v.chars().count() > 100 || v.chars().any(char::is_control) {
        return Err(MemberError::Invalid(format!(
            "{field} must be at most 100 characters, without control characters"
        )));
    }
    Ok((!v.is_empty()).then(|| v.to_owned()))
}

/// Names a member (a missing or empty part clears it) and tells open dashboards.
pub async fn name(
    deps: &Deps<'_>,
    actor: &Actor,
    id: MemberId,
    first: Option<&str>,
    last: Option<&str>,
) -> Result<MemberRow, MemberError> {
    let first = clean_name("firstName", first)?;
    let last = clean_name("lastName", last)?;
    let (member, conversations) = {
        let mut pooled = deps.db.acquire().await?;
        let c = &mut pooled.conn();
        if !db::members::set_name(c, actor.church, id, first.as_deref(), last.as_deref(), clock::now()).await? {
            return Err(MemberError::NotFound);
        }
        let member = db::members::get(c, actor.church, id).await?.ok_or(MemberError::NotFound)?;
        let own = db::conversations::find_for_member(c, actor.church, id).await?;
        (member, own.into_iter().chain(db::conversations::groups_of(c, actor.church, id).await?).collect::<Vec<_>>())
    };
    // Their own conversation and every group they are in show the new name.
    for conversation_id in conversations {
        deps.live.publish(actor.church, crate::live::Event::Conversation { conversation_id }).await;
    }
    Ok(member)
}

/// A member's own conversation, created (empty) when they have only written in groups.
pub async fn own_conversation(deps: &Deps<'_>, actor: &Actor, id: MemberId) -> Result<ConversationId, MemberError> {
    let now = clock::now();
    let mut tx = deps.db.begin().await?;
    let c = &mut tx.conn();
    let member = db::members::get(c, actor.church, id).await?.ok_or(MemberError::NotFound)?;
    let phone = deps.phone.decrypt(&member.phone_ciphertext)?;
    let (_, conversation) = crate::flows::contacts::member_and_conversation(c, deps.phone, actor.church, &phone, now)
        .await
        .map_err(|e| match e {
            crate::flows::contacts::ContactError::Db(e) => MemberError::Db(e),
            crate::flows::contacts::ContactError::Crypto(e) => MemberError::Crypto(e),
        })?;
    tx.commit().await?;
    Ok(conversation)
}

/// Erases a member on request (admins): their files from the store (with previews) first — if
/// the store fails nothing is erased yet and the request can be repeated — then their row, whose
/// deletion takes their conversation, messages and files' rows with it, and the audit row that
/// records it (naming no number), in one transaction. In a group conversation only what they
/// sent goes: the group stays with its other members. Returns how many files went.
pub async fn erase(deps: &Deps<'_>, actor: &Actor, id: MemberId) -> Result<usize, MemberError> {
    if !actor.is_admin() {
        return Err(MemberError::AdminOnly("erase a member"));
    }
    let (keys, conversation) = {
        let mut pooled = deps.db.acquire().await?;
        let c = &mut pooled.conn();
        db::members::get(c, actor.church, id).await?.ok_or(MemberError::NotFound)?;
        (
            db::attachments::keys_of_member(c, actor.church, id).await?,
            db::conversations::find_for_member(c, actor.church, id).await?,
        )
    };
    for (attachment, key) in &keys {
        for k in crate::media::preview::keys_with_previews(key, *attachment) {
            deps.store.delete(&k).await?;
        }
    }
    let mut tx = deps.db.begin().await?;
    let c = &mut tx.conn();
    let groups = db::conversations::leave_groups(c, actor.church, id).await?;
    if !db::members::delete(c, actor.church, id).await? {
        return Err(MemberError::NotFound);
    }
    let entry = audit::Entry::by(actor, "member.erase")
        .subject("member", id.0)
        .detail(serde_json::json!({ "files": keys.len() }));
    audit::record(c, entry).await?;
    tx.commit().await?;
    for conversation_id in conversation.into_iter().chain(groups) {
        deps.live.publish(actor.church, crate::live::Event::Conversation { conversation_id }).await;
    }
    Ok(keys.len())
}

/// Everything kept about a member, ready to stream as a ZIP (admins); the export is audited with
/// the number of files, never the number.
pub async fn export(deps: &Deps<'_>, actor: &Actor, id: MemberId) -> Result<export::MemberExport, MemberError> {
    if !actor.is_admin() {
        return Err(MemberError::AdminOnly("export a member's data"));
    }
    let export = match export::build(deps.db, deps.phone, actor.church, id, clock::now()).await {
        Ok(Some(export)) => export,
        Ok(None) => return Err(MemberError::NotFound),
        Err(export::ExportError::Db(e)) => return Err(e.into()),
        Err(export::ExportError::Crypto(e)) => return Err(e.into()),
    };
    let mut pooled = deps.db.acquire().await?;
    let entry = audit::Entry::by(actor, "member.export")
        .subject("member", id.0)
        .detail(serde_json::json!({ "files": export.media.len() }));
    audit::record(&mut pooled.conn(), entry).await?;
    Ok(export)
}
