//! Waking idle workers when a job is written. In this process [`super::JobsHandle::wake`] does
//! it at once; between instances sharing one PostgreSQL database every enqueue sends a `NOTIFY`
//! on [`CHANNEL`] (delivered when its transaction commits) and each instance's listener wakes
//! its own workers. The workers' slow poll stays as the safety net for a lost notification.

use tokio_util::sync::CancellationToken;

use super::JobsHandle;
use crate::db::{self, Db};

/// The channel of job wake-ups; the payload is the job's kind.
pub const CHANNEL: &str = "koinonia_jobs";

/// On PostgreSQL: wakes this instance's idle workers whenever any instance writes a job, until
/// `shutdown`. On SQLite: returns at once.
pub async fn run_listener(db: Db, jobs: JobsHandle, shutdown: CancellationToken) {
    db::notify::listen(&db, CHANNEL, shutdown, move |_kind| jobs.wake()).await;
}
