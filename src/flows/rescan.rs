//! `koinonia rescan`: the stored files scanned again with today's signatures — a file that was
//! clean last month may be known-bad today. Each file streams from the store to clamd (no copy
//! on disk or in memory); one found infected is blocked: its row first (no route serves it
//! from then on), then its objects and previews leave the store; audited and counted like a
//! file blocked on arrival. Driven by the database page by page, oldest first.

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::retention::Deps;
use crate::db;
use crate::domain::Actor;
use crate::flows::audit;
use crate::scan::{Clamd, Verdict};

const PAGE: i64 = 200;

/// What one rescan did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RescanReport {
    pub scanned: u64,
    pub clean: u64,
    pub blocked: u64,
    /// Not judged: the scanner failed, the file is longer than it accepts, or the store could
    /// not be read. They keep their state and are listed in the log.
    pub unchecked: u64,
}

/// Rescans the files stored at or after `since` (every stored file when `None`).
pub async fn rescan(deps: &Deps<'_>, clamd: &Clamd, since: Option<DateTime<Utc>>) -> Result<RescanReport, sqlx::Error> {
    let mut report = RescanReport::default();
    let mut after = None;
    loop {
        let page = {
            let mut pooled = deps.db.acquire().await?;
            db::attachments::stored_since(&mut pooled.conn(), since, after, PAGE).await?
        };
        let Some(last) = page.last() else { break };
        after = last.stored_at.map(|at| (at, last.id));
        for a in &page {
            let Some(key) = &a.storage_key else { continue };
            report.scanned += 1;
            match scan_object(deps, clamd, key).await {
                Ok(Verdict::Clean) => {
                    let mut pooled = deps.db.acquire().await?;
                    db::attachments::set_clean(&mut pooled.conn(), a.id).await?;
                    report.clean += 1;
                }
                Ok(Verdict::Infected(signature)) => {
                    if block(deps, a, key, &signature).await? {
                        report.blocked += 1;
                    }
                }
                Ok(Verdict::TooLarge) => {
                    tracing::warn!(attachment = %a.id, "rescan: longer than the virus scanner accepts; not checked");
                    report.unchecked += 1;
                }
                Err(e) => {
                    tracing::warn!(attachment = %a.id, error = %e, "rescan: not checked");
                    report.unchecked += 1;
                }
            }
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    Ok(report)
}

/// Streams one stored object to clamd.
async fn scan_object(deps: &Deps<'_>, clamd: &Clamd, key: &str) -> Result<Verdict, String> {
    let (_, mut body) = deps.store.read(key).await.map_err(|e| format!("reading the stored file: {e}"))?;
    let mut scan = clamd.scan().await.map_err(|e| e.to_string())?;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("reading the stored file: {e}"))?;
        scan.write(&chunk).await;
    }
    scan.finish().await.map_err(|e| e.to_string())
}

/// Blocks a stored file found infected; true when this rescan recorded it.
async fn block(
    deps: &Deps<'_>,
    a: &db::attachments::AttachmentRow,
    key: &str,
    signature: &str,
) -> Result<bool, sqlx::Error> {
    let won = {
        let mut tx = deps.db.begin().await?;
        let c = &mut tx.conn();
        let won = db::attachments::mark_blocked(c, a.id, signature).await?;
        if won {
            let entry = audit::Entry::by(&Actor::system(a.church_id), "media.blocked")
                .subject("attachment", a.id.0)
                .detail(serde_json::json!({ "signature": signature, "direction": a_direction(a), "reason": "rescan" }));
            audit::record(c, entry).await?;
        }
        tx.commit().await?;
        won
    };
    if !won {
        return Ok(false);
    }
    tracing::warn!(attachment = %a.id, signature, "rescan: a stored file is now known malware; blocked and deleted");
    for k in crate::media::preview::keys_with_previews(key, a.id) {
        if let Err(e) = deps.store.delete(&k).await {
            // The row no longer names the object: the orphan sweep removes what is left.
            tracing::warn!(attachment = %a.id, error = %e, "rescan: could not delete a blocked file's object yet");
        }
    }
    metrics::counter!("koinonia_media_blocked_total", "direction" => "rescan").increment(1);
    let event = crate::live::Event::Message { conversation_id: a.conversation_id, message_id: a.message_id };
    deps.live.publish(a.church_id, event).await;
    Ok(true)
}

/// Whether the file came from a member or a leader (for the audit row).
fn a_direction(a: &db::attachments::AttachmentRow) -> &'static str {
    if a.source_url.is_some() {
        "inbound"
    } else {
        "outbound"
    }
}
