//! The orphan sweep: objects in the store that no row points to are deleted once they are older
//! than a grace period. They come from a crash between a store write and its commit, a request
//! cancelled in a way no guard saw, an erasure racing an inbound download, or files the phone
//! simulator staged and nobody fetched. Requests already delete what they stored when they are
//! refused ([`crate::media::store::Uncommitted`]); this is the net under that.
//!
//! The sweep walks the store (one listing, page by page) and checks keys against the database in
//! batches by attachment id, which every key carries: `{folder}/{church}/{conversation}/{id}_{name}`
//! and `…/previews/{id}-{size}.jpg`. Keys of any other shape are left alone.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::retention::Deps;
use crate::db;
use crate::domain::AttachmentId;
use crate::media::ingest::SANDBOX_PREFIX;
use crate::media::store::StoreError;

/// How old an unreferenced object must be before it is deleted: far longer than any upload,
/// download or staged simulator file can take to be committed.
pub const GRACE: Duration = Duration::from_secs(24 * 3600);

/// Keys checked against the database at once.
const BATCH: usize = 200;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OrphanReport {
    pub examined: u64,
    pub deleted: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum OrphanError {
    #[error("media store: {0}")]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// The attachment an object of the church folders belongs to, by its key.
pub fn attachment_of(key: &str, folder: &str) -> Option<AttachmentId> {
    let rest = key.strip_prefix(folder)?.strip_prefix('/')?;
    let file = rest.rsplit('/').next()?;
    let id = match rest.split('/').count() {
        3 => file.split_once('_')?.0,
        4 if rest.split('/').nth(2) == Some("previews") => file.strip_suffix(".jpg")?.rsplit_once('-')?.0,
        _ => return None,
    };
    uuid::Uuid::parse_str(id).ok().map(AttachmentId)
}

/// Deletes unreferenced objects last modified before `now - grace`.
pub async fn sweep(deps: &Deps<'_>, now: DateTime<Utc>, grace: Duration) -> Result<OrphanReport, OrphanError> {
    let cutoff = now - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::days(1));
    let mut report = OrphanReport::default();

    // Staged simulator files are fetched within seconds of being staged.
    let mut staged = deps.store.list(SANDBOX_PREFIX.trim_end_matches('/'));
    while let Some(item) = staged.next().await {
        let (key, modified) = item?;
        report.examined += 1;
        if modified < cutoff {
            deps.store.delete(&key).await?;
            report.deleted += 1;
        }
    }

    let folder = deps.store.folder().to_owned();
    let mut listing = deps.store.list(&folder);
    let mut batch: Vec<(String, AttachmentId)> = Vec::with_capacity(BATCH);
    loop {
        let next = listing.next().await.transpose()?;
        let done = next.is_none();
        if let Some((key, modified)) = next {
            report.examined += 1;
            if let Some(id) = attachment_of(&key, &folder).filter(|_| modified < cutoff) {
                batch.push((key, id));
            }
        }
        if batch.len() >= BATCH || (done && !batch.is_empty()) {
            let ids: Vec<AttachmentId> = batch.iter().map(|(_, id)| *id).collect::<HashSet<_>>().into_iter().collect();
            let referenced: HashSet<String> = {
                let mut pooled = deps.db.acquire().await?;
                db::attachments::object_keys(&mut pooled.conn(), &ids).await?.into_iter().collect()
            };
            for (key, _) in batch.drain(..) {
                if !referenced.contains(&key) {
                    tracing::info!(key = %key, "deleting an object no row points to");
                    deps.store.delete(&key).await?;
                    report.deleted += 1;
                }
            }
        }
        if done {
            break;
        }
    }
    metrics::counter!("koinonia_media_orphans_deleted_total").increment(report.deleted);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::attachment_of;

    #[test]
    fn keys_name_their_attachment() {
        let id = "0193f5d0-0000-7000-8000-000000000001";
        let original = format!("conversations/c/v/{id}_photo.jpg");
        assert_eq!(attachment_of(&original, "conversations").map(|a| a.0.to_string()).as_deref(), Some(id));
        let preview = format!("conversations/c/v/previews/{id}-small.jpg");
        assert_eq!(attachment_of(&preview, "conversations").map(|a| a.0.to_string()).as_deref(), Some(id));
        assert!(attachment_of("conversations/c/v/notes.txt", "conversations").is_none());
        assert!(attachment_of(&format!("other/c/v/{id}_photo.jpg"), "conversations").is_none());
        assert!(attachment_of(&format!("conversations/c/{id}_photo.jpg"), "conversations").is_none());
    }
}
