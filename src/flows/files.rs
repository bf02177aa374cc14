//! Files arriving and being prepared, as the job workers run them: a member's file is
//! downloaded and stored (`media.fetch`), its previews are made (`media.preview`), and a file
//! whose download gave up is marked failed with the reason — the message text is never touched.
//! The byte work is `media`'s; this records its results.

use futures::StreamExt;

use crate::carrier::Carrier;
use crate::clock;
use crate::config::Config;
use crate::db;
use crate::db::attachments::AttachmentRow;
use crate::db::Db;
use crate::domain::{AttachmentId, AttachmentStatus, PreviewState};
use crate::jobs::JobError;
use crate::jobs::JobsHandle;
use crate::live::Live;
use crate::media::fetch::Fetcher;
use crate::media::ingest::{self, IngestError, SANDBOX_SCHEME};
use crate::media::names;
use crate::media::preview::{self, PreviewError};
use crate::media::store::MediaStore;

/// What downloading and preparing files needs.
pub struct Deps<'a> {
    pub db: &'a Db,
    pub store: &'a MediaStore,
    pub fetcher: &'a Fetcher,
    pub carrier: &'a Carrier,
    pub jobs: &'a JobsHandle,
    pub live: &'a Live,
    pub config: &'a Config,
}

/// What making previews needs (a reply's send makes one on demand).
pub struct PreviewDeps<'a> {
    pub db: &'a Db,
    pub store: &'a MediaStore,
    pub live: &'a Live,
    pub config: &'a Config,
}

impl Deps<'_> {
    fn previews(&self) -> PreviewDeps<'_> {
        PreviewDeps { db: self.db, store: self.store, live: self.live, config: self.config }
    }
}

/// The job error an ingest failure is: retried when another attempt may succeed.
fn job_error(e: &IngestError) -> JobError {
    if e.is_retryable() {
        JobError::retry(e.leader_reason())
    } else {
        JobError::fatal(e.leader_reason())
    }
}

/// `media.fetch`: downloads one inbound attachment and stores it.
pub async fn fetch(deps: &Deps<'_>, id: AttachmentId, attempt: i32) -> Result<(), JobError> {
    let row = {
        let mut pooled = deps.db.acquire().await?;
        db::attachments::get_for_job(&mut pooled.conn(), id).await?
    };
    let Some(row) = row else { return Ok(()) };
    if row.status != AttachmentStatus::Pending {
        return Ok(());
    }
    let Some(url) = row.source_url.clone() else {
        return Err(JobError::fatal("attachment has no source URL"));
    };
    let staged = ingest::staged_key(&url, deps.carrier.is_sandbox());
    let outcome = async {
        if staged.is_none() && url.starts_with(SANDBOX_SCHEME) {
            return Err(IngestError::Rejected("not a file the phone simulator staged".into()));
        }
        let body = match staged {
            // The phone simulator staged the file in the store; everything after the download
            // is the same path a carrier's file takes.
            Some(staged) => deps.store.read(staged).await?.1.map(|r| r.map_err(IngestError::from)).boxed(),
            None => {
                let bearer = deps.config.telnyx_api_key.as_ref().map(secrecy::ExposeSecret::expose_secret);
                let download = deps.fetcher.get(&url, bearer).await?;
                download.into_stream().map(|r| r.map_err(IngestError::from)).boxed()
            }
        };
        let safe = names::safe_name(&row.name);
        let key = deps.store.key_for(row.church_id, row.conversation_id, row.id, &safe);
        let ingested = ingest::stream_into_store(
            deps.store,
            &crate::scan::Scanner::new(&deps.config.scan),
            deps.config.max_media_size_bytes,
            body,
            &key,
            &row.name,
            row.conversation_id,
            row.declared_sha256.as_deref(),
        )
        .await?;
        Ok::<_, IngestError>((key, ingested))
    }
    .await;

    let (key, ingested) = match outcome {
        Ok(done) => done,
        Err(IngestError::Infected(signature)) => {
            if let Some(staged) = staged {
                let _ = deps.store.delete(staged).await;
            }
            block(deps, &row, &signature).await?;
            return Ok(());
        }
        Err(e) => {
            tracing::info!(attachment = %row.id, attempt, error = %e, "inbound file not stored");
            let job_error = job_error(&e);
            match &job_error {
                JobError::Retry { error, .. } => {
                    if let Ok(mut pooled) = deps.db.acquire().await {
                        let _ = db::attachments::note_problem(&mut pooled.conn(), row.id, error).await;
                    }
                }
                // A simulator's staged file that will never be stored is not kept either.
                _ => {
                    if let Some(staged) = staged {
                        let _ = deps.store.delete(staged).await;
                    }
                }
            }
            return Err(job_error);
        }
    };
    let i = &ingested.inspection;
    let (Some(mime), Some(kind)) = (i.mime_type, i.kind) else {
        return Err(JobError::fatal("inspection lost the type"));
    };
    let stored = db::attachments::Stored {
        storage_key: key,
        media_type: kind,
        mime_type: mime.to_owned(),
        name: ingest::with_extension(&row.name, mime),
        size_bytes: i64::try_from(ingested.bytes).unwrap_or(i64::MAX),
        width: i.width.and_then(|w| i32::try_from(w).ok()),
        height: i.height.and_then(|h| i32::try_from(h).ok()),
        duration_seconds: i.duration_seconds,
        sha256: i.sha256.clone(),
        scan_state: ingested.scan_record().0,
        scan_detail: ingested.scan_record().1,
    };
    {
        let now = clock::now();
        let mut tx = deps.db.begin().await?;
        let c = &mut tx.conn();
        if db::attachments::mark_stored(c, row.id, &stored, now).await? {
            crate::jobs::enqueue_preview(c, row.church_id, row.id, kind, now)
                .await
                .map_err(|e| JobError::retry(e.to_string()))?;
        }
        tx.commit().await?;
    }
    deps.jobs.wake();
    announce(deps.live, &row).await;
    if let Some(staged) = staged {
        let _ = deps.store.delete(staged).await;
    }
    metrics::counter!("koinonia_media_stored_total", "direction" => "inbound").increment(1);
    metrics::counter!("koinonia_media_bytes_stored_total").increment(ingested.bytes);
    tracing::info!(attachment = %row.id, bytes = ingested.bytes, mime, "inbound file stored");
    Ok(())
}

/// The virus scanner found `signature` in a member's file: it was never stored; the attachment
/// reads "Blocked: …", the event is audited and counted, and the message text stays.
async fn block(deps: &Deps<'_>, row: &db::attachments::AttachmentRow, signature: &str) -> Result<(), JobError> {
    tracing::warn!(attachment = %row.id, signature, "inbound file blocked: the virus scanner found malware");
    let mut tx = deps.db.begin().await?;
    let c = &mut tx.conn();
    if db::attachments::mark_blocked(c, row.id, signature).await? {
        let system = crate::domain::Actor::system(row.church_id);
        let entry = crate::flows::audit::Entry::by(&system, "media.blocked")
            .subject("attachment", row.id.0)
            .detail(serde_json::json!({ "signature": signature, "direction": "inbound" }));
        crate::flows::audit::record(c, entry).await?;
    }
    tx.commit().await?;
    metrics::counter!("koinonia_media_blocked_total", "direction" => "inbound").increment(1);
    let row = {
        let mut pooled = deps.db.acquire().await?;
        db::attachments::get_for_job(&mut pooled.conn(), row.id).await?
    };
    if let Some(row) = row {
        announce(deps.live, &row).await;
    }
    Ok(())
}

/// The fetch job is dead: the attachment is `failed` with the reason; the message text is
/// untouched.
pub async fn give_up(deps: &Deps<'_>, id: AttachmentId, reason: &str) -> Result<(), sqlx::Error> {
    let row = {
        let mut pooled = deps.db.acquire().await?;
        let c = &mut pooled.conn();
        db::attachments::mark_failed(c, id, reason).await?;
        db::attachments::get_for_job(c, id).await?
    };
    if let Some(row) = row {
        announce(deps.live, &row).await;
    }
    metrics::counter!("koinonia_media_failed_total", "direction" => "inbound").increment(1);
    Ok(())
}

/// `media.preview`: makes the previews of one stored image or video; a file that cannot have
/// one is marked so (`unavailable` or `failed`) and the dashboard shows an icon.
pub async fn make_previews(deps: &Deps<'_>, id: AttachmentId) -> Result<(), JobError> {
    let row = {
        let mut pooled = deps.db.acquire().await?;
        db::attachments::get_for_job(&mut pooled.conn(), id).await?
    };
    let Some(row) = row else { return Ok(()) };
    if row.status != AttachmentStatus::Stored || row.preview_state == Some(PreviewState::Ready) {
        return Ok(());
    }
    match ensure_previews(&deps.previews(), &row).await {
        Ok(_) => Ok(()),
        Err(PreviewError::Transient(e)) => Err(JobError::retry(e)),
        Err(e) => {
            let state_word = if matches!(e, PreviewError::Unavailable(_)) {
                PreviewState::Unavailable
            } else {
                PreviewState::Failed
            };
            tracing::info!(attachment = %row.id, reason = %e, "no preview for this file");
            let mut pooled = deps.db.acquire().await?;
            db::attachments::set_preview_state(&mut pooled.conn(), row.id, state_word).await?;
            Ok(())
        }
    }
}

/// The preview job is dead: the file shows an icon.
pub async fn previews_failed(deps: &Deps<'_>, id: AttachmentId) -> Result<(), sqlx::Error> {
    let mut pooled = deps.db.acquire().await?;
    db::attachments::set_preview_state(&mut pooled.conn(), id, PreviewState::Failed).await
}

/// Makes and stores the previews of a stored file unless they exist; returns the large
/// preview's key and size in bytes.
pub async fn ensure_previews(deps: &PreviewDeps<'_>, row: &AttachmentRow) -> Result<(String, u64), PreviewError> {
    if let (Some(key), Some(bytes)) = (&row.preview_large_key, row.preview_large_bytes) {
        return Ok((key.clone(), u64::try_from(bytes).unwrap_or(0)));
    }
    let Some(key) = row.storage_key.as_deref() else {
        return Err(PreviewError::Unavailable("the file is not stored".into()));
    };
    let original = preview::Original {
        id: row.id,
        conversation_id: row.conversation_id,
        key,
        mime: row.mime_type.as_deref().unwrap_or_default(),
        size: row.size_bytes,
    };
    let made = preview::render_and_store(deps.store, &original, deps.config.mms_max_attachment_bytes).await?;
    let recorded = {
        let mut pooled = deps.db.acquire().await.map_err(|e| PreviewError::Transient(e.to_string()))?;
        db::attachments::set_previews(
            &mut pooled.conn(),
            row.id,
            &made.small_key,
            &made.large_key,
            i64::try_from(made.large_bytes).unwrap_or(i64::MAX),
        )
        .await
        .map_err(|e| PreviewError::Transient(e.to_string()))?
    };
    if !recorded {
        // Deleted or erased meanwhile: the previews must not outlive their original.
        let _ = deps.store.delete(&made.small_key).await;
        let _ = deps.store.delete(&made.large_key).await;
        return Err(PreviewError::Unavailable("the file was removed while its preview was made".into()));
    }
    metrics::counter!("koinonia_previews_made_total").increment(1);
    announce(deps.live, row).await;
    Ok((made.large_key, made.large_bytes))
}

/// Tells open dashboards that a file's message changed.
async fn announce(live: &Live, row: &AttachmentRow) {
    let event = crate::live::Event::Message { conversation_id: row.conversation_id, message_id: row.message_id };
    live.publish(row.church_id, event).await;
}
