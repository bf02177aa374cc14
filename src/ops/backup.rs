//! `koinonia backup --to DIR`: a consistent copy of the embedded deployment while `serve` runs.
//!
//! The database is copied with SQLite's `VACUUM INTO` (a transactionally consistent snapshot
//! taken online), then the media folder file by file, then `secrets.env` — without which the
//! members' phone numbers in the copy cannot be read. With PostgreSQL, use `pg_dump` and the
//! bucket's versioning instead (README, "Deploying at scale").

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::config::{Config, DatabaseKind};
use crate::db::Db;

/// What was copied.
#[derive(Debug, Clone, Default)]
pub struct BackupReport {
    pub database_bytes: u64,
    pub media_files: u64,
    pub media_bytes: u64,
}

pub async fn run(config: &Config, to: &Path) -> anyhow::Result<BackupReport> {
    let DatabaseKind::Sqlite { .. } = &config.database else {
        bail!("backup copies the embedded SQLite database; with PostgreSQL use pg_dump (see the README)");
    };
    if config.s3.is_some() {
        bail!("backup copies the local media folder; with S3, rely on bucket versioning (see the README)");
    }
    if to.exists() && std::fs::read_dir(to).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty; choose a new folder", to.display());
    }
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let db_copy = to.join("koinonia.db");
    let db = Db::connect(&config.database).await.context("opening the database")?;
    let Db::Sqlite(pool) = &db else { bail!("not a SQLite database") };
    let target = db_copy.to_str().context("the backup folder's path is not UTF-8")?.to_owned();
    sqlx::query("VACUUM INTO $1").bind(&target).execute(pool).await.context("snapshotting the database")?;
    db.close().await;
    let mut report = BackupReport { database_bytes: std::fs::metadata(&db_copy)?.len(), ..Default::default() };

    let media_to = to.join("media");
    copy_tree(&config.media_dir, &media_to, &mut report).context("copying the media folder")?;
    let secrets = config.data_dir.join("secrets.env");
    if secrets.exists() {
        copy_private(&secrets, &to.join("secrets.env")).context("copying secrets.env")?;
    }
    Ok(report)
}

/// Copies every complete file below `from` (object_store's in-progress uploads, named `…#n`, are
/// skipped).
fn copy_tree(from: &Path, to: &Path, report: &mut BackupReport) -> anyhow::Result<()> {
    if !from.exists() {
        return Ok(());
    }
    let mut stack: Vec<PathBuf> = vec![from.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let rel = path.strip_prefix(from)?;
            if entry.file_type()?.is_dir() {
                std::fs::create_dir_all(to.join(rel))?;
                stack.push(path);
            } else if !path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains('#')) {
                if let Some(parent) = to.join(rel).parent() {
                    std::fs::create_dir_all(parent)?;
                }
                match std::fs::copy(&path, to.join(rel)) {
                    Ok(bytes) => {
                        report.media_files += 1;
                        report.media_bytes += bytes;
                    }
                    // Deleted by retention while we copied: not part of the backup.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}

fn copy_private(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::copy(from, to)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
