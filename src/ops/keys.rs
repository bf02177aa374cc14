//! `koinonia keys reencrypt`: after `PHONE_ENCRYPTION_KEY` was rotated (the old key moved to
//! `PHONE_ENCRYPTION_KEY_PREVIOUS`), rewrites every stored number under the new key.
//!
//! Rows are walked by id in batches, each committed on its own, so an interrupted run loses at
//! most one batch of work and the next run starts over from the first id, skipping the rows
//! already done (their header names the current key). Each row is replaced only if it still
//! holds the ciphertext read, so `serve` may keep running meanwhile. Numbers never leave this
//! module: progress and errors carry counts only.

use crate::crypto::phone::PhoneCrypto;
use crate::db::phone_ciphertexts::{self, Column};
use crate::db::Db;

/// How a run is bounded.
#[derive(Debug, Clone, Copy)]
pub struct ReencryptOptions {
    /// Rows read and committed together.
    pub batch: usize,
    /// Stop after re-encrypting this many numbers (operators throttle; `None`: all).
    pub limit: Option<u64>,
}

impl Default for ReencryptOptions {
    fn default() -> Self {
        Self { batch: 500, limit: None }
    }
}

/// Where a run stands (given to the progress callback after each committed batch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReencryptReport {
    /// Numbers rewritten under the current key by this run.
    pub reencrypted: u64,
    /// Numbers that decrypt under no configured key (left as they are).
    pub undecryptable: u64,
    /// Numbers still not under the current key after this run (counted at its end).
    pub remaining: u64,
}

/// Progress after a committed batch: the column being walked and the counts so far.
pub struct Progress<'a> {
    pub column: Column,
    pub report: &'a ReencryptReport,
}

/// Numbers not under the current key, in every column (by header; nothing is decrypted).
pub async fn remaining(db: &Db, crypto: &PhoneCrypto) -> Result<u64, sqlx::Error> {
    let header = crypto.current_header();
    let mut pooled = db.acquire().await?;
    let mut total = 0u64;
    for column in Column::ALL {
        let n = phone_ciphertexts::count_not_under(&mut pooled.conn(), column, &header).await?;
        total += u64::try_from(n).unwrap_or(0);
    }
    Ok(total)
}

/// Re-encrypts stored numbers not under the current key, batch by batch.
pub async fn reencrypt(
    db: &Db,
    crypto: &PhoneCrypto,
    options: ReencryptOptions,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<ReencryptReport, sqlx::Error> {
    let header = crypto.current_header();
    let batch = options.batch.max(1);
    let mut report = ReencryptReport::default();
    'columns: for column in Column::ALL {
        let mut after = None;
        loop {
            let room = options.limit.map_or(u64::MAX, |l| l.saturating_sub(report.reencrypted));
            if room == 0 {
                break 'columns;
            }
            let take = i64::try_from(room.min(batch as u64)).unwrap_or(i64::MAX);
            let rows = {
                let mut pooled = db.acquire().await?;
                phone_ciphertexts::not_under(&mut pooled.conn(), column, &header, after, take).await?
            };
            let Some(last) = rows.last() else { break };
            after = Some(last.id);
            let mut rewritten = Vec::with_capacity(rows.len());
            for row in &rows {
                match crypto.reencrypt(&row.ciphertext) {
                    Ok(Some(new)) => rewritten.push((row, new)),
                    Ok(None) => {}
                    Err(_) => report.undecryptable += 1,
                }
            }
            let mut tx = db.begin().await?;
            for (row, new) in &rewritten {
                if phone_ciphertexts::replace(&mut tx.conn(), column, row.id, &row.ciphertext, new).await? {
                    report.reencrypted += 1;
                }
            }
            tx.commit().await?;
            progress(Progress { column, report: &report });
            if (rows.len() as i64) < take {
                break;
            }
        }
    }
    report.remaining = remaining(db, crypto).await?;
    Ok(report)
}
