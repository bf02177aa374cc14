//! Retention: media older than `MEDIA_RETENTION_DAYS` leaves the store; the message text stays.
//! The same daily run forgets revocations of sessions that have expired.
//!
//! The sweep is driven by the database, page by page in `stored_at` order, so it resumes where
//! it stopped and never lists the bucket. Each file's object is deleted first, then its row is
//! marked `deleted` only if it is still `stored` and not kept: two sweeps at once (two
//! instances) both delete idempotently and exactly one records the deletion and its audit row.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::db;
use crate::domain::Actor;
use crate::flows::audit;

/// What the sweeps read, delete and announce.
pub struct Deps<'a> {
    pub db: &'a db::Db,
    pub store: &'a crate::media::store::MediaStore,
    pub live: &'a crate::live::Live,
}

const PAGE: i64 = 200;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub examined: u64,
    pub deleted: u64,
    pub failed: u64,
}

/// Deletes the media stored more than `days` days before `now`.
pub async fn sweep(deps: &Deps<'_>, days: u32, now: DateTime<Utc>) -> Result<SweepReport, sqlx::Error> {
    let cutoff = now - chrono::Duration::days(i64::from(days));
    let reason = format!("media removed after {days} days");
    let mut report = SweepReport::default();
    let mut after = None;
    loop {
        let page = {
            let mut pooled = deps.db.acquire().await?;
            db::attachments::expired(&mut pooled.conn(), cutoff, after, PAGE).await?
        };
        let Some(last) = page.last() else { break };
        after = last.stored_at.map(|at| (at, last.id));
        for a in &page {
            report.examined += 1;
            if let Some(key) = &a.storage_key {
                let mut deleted = Ok(());
                for k in crate::media::preview::keys_with_previews(key, a.id) {
                    deleted = deleted.and(deps.store.delete(&k).await);
                }
                if let Err(e) = deleted {
                    report.failed += 1;
                    tracing::warn!(attachment = %a.id, error = %e, "retention: could not delete; will try on the next sweep");
                    continue;
                }
            }
            let recorded = {
                let mut pooled = deps.db.acquire().await?;
                let c = &mut pooled.conn();
                let won = db::attachments::mark_deleted(c, a.id, &reason, clock::now()).await?;
                if won {
                    let entry = audit::Entry::by(&Actor::system(a.church_id), "media.delete")
                        .subject("attachment", a.id.0)
                        .detail(serde_json::json!({ "reason": "retention", "days": days, "name": a.name }));
                    audit::record(c, entry).await?;
                }
                won
            };
            if recorded {
                report.deleted += 1;
                metrics::counter!("koinonia_media_deleted_total", "reason" => "retention").increment(1);
                let event =
                    crate::live::Event::Message { conversation_id: a.conversation_id, message_id: a.message_id };
                deps.live.publish(a.church_id, event).await;
            }
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    Ok(report)
}

/// Deletes the rows of `revoked_sessions` whose token expired before `now`: a revocation is
/// useless once the token itself is refused. Returns how many went.
pub async fn purge_revoked_sessions(db: &db::Db, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let mut pooled = db.acquire().await?;
    db::leaders::purge_revoked(&mut pooled.conn(), now).await
}

/// The daily run inside `serve` (first a minute after start): the media sweep
/// (`MEDIA_RETENTION_DAYS=0` turns it off), the orphan sweep and the purge of expired session
/// revocations.
pub async fn run_daily(
    db: db::Db,
    store: crate::media::store::MediaStore,
    live: crate::live::Live,
    days: u32,
    shutdown: CancellationToken,
) {
    let deps = &Deps { db: &db, store: &store, live: &live };
    if days == 0 {
        tracing::info!("retention sweep disabled (MEDIA_RETENTION_DAYS=0)");
    }
    let mut wait = Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if days > 0 {
            match sweep(deps, days, clock::now()).await {
                Ok(r) => {
                    tracing::info!(
                        examined = r.examined,
                        deleted = r.deleted,
                        failed = r.failed,
                        "retention sweep done"
                    )
                }
                Err(e) => tracing::warn!(error = %e, "retention sweep failed; next one in a day"),
            }
        }
        match crate::flows::orphans::sweep(deps, clock::now(), crate::flows::orphans::GRACE).await {
            Ok(r) => tracing::info!(examined = r.examined, deleted = r.deleted, "orphan sweep done"),
            Err(e) => tracing::warn!(error = %e, "orphan sweep failed; next one in a day"),
        }
        match purge_revoked_sessions(deps.db, clock::now()).await {
            Ok(n) => tracing::info!(purged = n, "expired session revocations purged"),
            Err(e) => tracing::warn!(error = %e, "purging expired session revocations failed; next try in a day"),
        }
        wait = Duration::from_secs(24 * 3600);
    }
}
