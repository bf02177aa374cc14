//! The workers inside `serve`: a pool per kind of job, each with its own slots and a share per
//! church; claim with a lease, run with a heartbeat, record the outcome; a dead job's subject is
//! marked failed with the reason.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::queue::{backoff, Job, JobError, JobKind};
use crate::clock;
use crate::db;
use crate::domain::{ChurchId, JobId};
use crate::state::AppState;

/// The workers of one kind of job: their own slots (a send never waits behind a download, a
/// preview never holds a send), and a share per church (one church's backlog, or one slow media
/// host, cannot take every slot from the others).
#[derive(Debug, Clone, Copy)]
pub struct Pool {
    pub kind: JobKind,
    pub slots: usize,
    pub per_church: usize,
}

/// Send slots for each unit of `concurrency`.
pub const SEND_SLOTS_PER_UNIT: usize = 4;

/// The pools of a process with `concurrency` job slots per kind (sends get more: see below).
pub fn pools(concurrency: usize) -> [Pool; 4] {
    let n = concurrency.max(1);
    [
        // A send is a few small statements and one request that mostly waits on the carrier:
        // four times the slots (the carrier's rate limits are kept by `SendLimits`, not here).
        Pool { kind: JobKind::MessageSend, slots: SEND_SLOTS_PER_UNIT * n, per_church: SEND_SLOTS_PER_UNIT * n },
        Pool { kind: JobKind::MediaFetch, slots: n, per_church: (n / 2).max(1) },
        Pool { kind: JobKind::MediaPreview, slots: (n / 2).max(1), per_church: (n / 4).max(1) },
        // A notification job sends to its push services concurrently itself (notify::push).
        Pool { kind: JobKind::PushNotify, slots: (n / 2).max(1), per_church: (n / 4).max(1) },
    ]
}

/// Runs workers until `shutdown` is cancelled, then lets running jobs finish for up to `drain`.
/// `first_round` is dropped once dead leases were given back and every pool made its first claim
/// (and, when it found nothing, looked up when its next job is due): a server that waits for that
/// before it answers does not make its first requests queue behind the workers' start-up
/// statements (on SQLite they share one connection).
pub async fn run_workers(
    state: AppState,
    shutdown: CancellationToken,
    drain: Duration,
    first_round: tokio::sync::mpsc::Sender<()>,
) {
    let tuning = state.config.workers.clone();
    let worker_id = format!("{}-{}-{}", hostname(), std::process::id(), uuid::Uuid::new_v4().simple());
    tracing::info!(worker = %worker_id, concurrency = tuning.concurrency, "job workers started");
    reclaim_dead_leases(&state).await;
    let completions = Completions::start(state.db.clone(), worker_id.clone());
    let running: Vec<_> = pools(tuning.concurrency)
        .into_iter()
        .map(|pool| {
            let worker = Worker { id: worker_id.clone(), completions: completions.clone() };
            tokio::spawn(run_pool(state.clone(), pool, worker, shutdown.clone(), drain, first_round.clone()))
        })
        .collect();
    drop(first_round);
    let mut drained = true;
    for pool in running {
        drained &= pool.await.unwrap_or(false);
    }
    if drained {
        tracing::info!("job workers stopped");
    } else {
        tracing::warn!("job workers stopped with jobs still running; their leases will expire");
    }
}

/// Most jobs one claim statement takes: a backlog is claimed a few slots at a time, not one
/// statement per job.
const MAX_CLAIM: usize = 16;

/// What a pool's jobs share: the worker id their leases carry, and the batched completions.
#[derive(Clone)]
struct Worker {
    id: String,
    completions: Completions,
}

/// One pool's loop; true when its jobs all finished within `drain` after `shutdown`. Drops
/// `first_round` after its first claim (see [`run_workers`]).
async fn run_pool(
    state: AppState,
    pool: Pool,
    worker: Worker,
    shutdown: CancellationToken,
    drain: Duration,
    first_round: tokio::sync::mpsc::Sender<()>,
) -> bool {
    let mut first_round = Some(first_round);
    let poll = state.config.workers.poll_interval;
    let slots = Arc::new(Semaphore::new(pool.slots));
    let by_church: Arc<std::sync::Mutex<HashMap<ChurchId, usize>>> = Arc::default();
    let finished = Arc::new(Notify::new());
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (full, busiest): (Vec<ChurchId>, usize) = by_church
            .lock()
            .map(|m| {
                let full = m.iter().filter(|(_, n)| **n >= pool.per_church).map(|(c, _)| *c).collect();
                let busiest = m.values().copied().filter(|n| *n < pool.per_church).max().unwrap_or(0);
                (full, busiest)
            })
            .unwrap_or_default();
        // Every free slot at once, as long as no church could pass its share: each church not
        // yet full has room for at least `per_church - busiest` more.
        let mut permits = vec![permit];
        let room = MAX_CLAIM.min(pool.per_church.saturating_sub(busiest)).max(1);
        while permits.len() < room {
            match slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        match claim(&state, &worker.id, pool.kind.as_str(), &full, permits.len()).await {
            Ok(jobs) if !jobs.is_empty() => {
                for (job, permit) in jobs.into_iter().zip(permits.drain(..)) {
                    let church = job.church_id;
                    if let (Some(c), Ok(mut m)) = (church, by_church.lock()) {
                        *m.entry(c).or_insert(0) += 1;
                    }
                    let (state, worker, by_church, finished) =
                        (state.clone(), worker.clone(), by_church.clone(), finished.clone());
                    let span = tracing::info_span!("job", id = %job.id, kind = %job.kind, attempt = job.attempts);
                    tokio::spawn(
                        async move {
                            execute(&state, job, &worker).await;
                            if let (Some(c), Ok(mut m)) = (church, by_church.lock()) {
                                if let Some(n) = m.get_mut(&c) {
                                    *n -= 1;
                                    if *n == 0 {
                                        m.remove(&c);
                                    }
                                }
                            }
                            drop(permit);
                            finished.notify_waiters();
                        }
                        .instrument(span),
                    );
                }
                // Slots claimed for jobs that were not there go back now (dropping `permits`).
            }
            Ok(_) => {
                drop(permits);
                // With churches at their share, what is due may be theirs: wait for one of this
                // pool's jobs to end rather than polling for it.
                let wait = if full.is_empty() { idle_wait(&state, pool.kind.as_str(), poll).await } else { poll };
                drop(first_round.take());
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = state.jobs.notify.notified() => {}
                    _ = finished.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            Err(e) => {
                drop(permits);
                tracing::warn!(error = %e, kind = pool.kind.as_str(), "cannot claim jobs; retrying");
                drop(first_round.take());
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        }
        drop(first_round.take());
    }
    // Drain: wait until every slot is free again, or give up and leave the leases to expire.
    let all = u32::try_from(pool.slots).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(drain, slots.acquire_many(all)).await.is_ok();
    drained
}

/// Sleep until the next queued job of `kind` is due, but no longer than the poll interval.
async fn idle_wait(state: &AppState, kind: &str, poll: Duration) -> Duration {
    let next = async {
        let mut pooled = state.db.acquire().await.ok()?;
        db::jobs::next_due_of(&mut pooled.conn(), kind).await.ok().flatten()
    }
    .await;
    match next {
        Some(at) => (at - clock::now()).to_std().unwrap_or(Duration::ZERO).clamp(Duration::from_millis(5), poll),
        None => poll,
    }
}

async fn claim(
    state: &AppState,
    worker: &str,
    kind: &str,
    skip_churches: &[ChurchId],
    limit: usize,
) -> Result<Vec<db::jobs::JobRow>, sqlx::Error> {
    let now = clock::now();
    let lease = chrono::Duration::from_std(state.config.workers.lease).unwrap_or(chrono::Duration::minutes(5));
    let mut pooled = state.db.acquire().await?;
    let filter = db::jobs::ClaimFilter { kind: Some(kind), skip_churches };
    db::jobs::claim_many_where(&mut pooled.conn(), now, now + lease, worker, &filter, limit).await
}

/// Runs one claimed job with a heartbeat, then records its outcome.
async fn execute(state: &AppState, job: db::jobs::JobRow, worker: &Worker) {
    let heartbeat = {
        let state = state.clone();
        let worker = worker.id.clone();
        let id = job.id;
        tokio::spawn(async move {
            let lease = state.config.workers.lease;
            loop {
                tokio::time::sleep(lease / 3).await;
                let until = clock::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
                if let Ok(mut pooled) = state.db.acquire().await {
                    if let Ok(false) = db::jobs::extend_lease(&mut pooled.conn(), id, &worker, until).await {
                        break;
                    }
                }
            }
        })
    };
    let result = dispatch(state, &job).await;
    heartbeat.abort();
    if let Err(e) = record_outcome(state, &job, worker, result).await {
        tracing::error!(error = %e, "cannot record job outcome; the lease will expire and the job run again");
    }
}

async fn dispatch(state: &AppState, row: &db::jobs::JobRow) -> Result<(), JobError> {
    match Job::of_row(row).map_err(JobError::fatal)? {
        Job::MediaFetch { attachment_id } => {
            crate::flows::files::fetch(&state.files(), attachment_id, row.attempts).await
        }
        Job::MessageSend { message_id } => crate::flows::outbound::send(&state.outbound(), message_id).await,
        Job::MediaPreview { attachment_id } => crate::flows::files::make_previews(&state.files(), attachment_id).await,
        Job::PushNotify { messages } => {
            let church = row.church_id.ok_or_else(|| JobError::fatal("a notification job without its church"))?;
            crate::flows::notifications::send_push(&state.notifications(), church, &messages).await
        }
    }
}

/// What happens to a job's subject when the job is dead.
async fn on_dead(state: &AppState, row: &db::jobs::JobRow, reason: &str) -> Result<(), sqlx::Error> {
    match Job::of_row(row) {
        Ok(Job::MediaFetch { attachment_id }) => {
            crate::flows::files::give_up(&state.files(), attachment_id, reason).await
        }
        Ok(Job::MessageSend { message_id }) => {
            crate::flows::outbound::give_up(&state.outbound(), message_id, reason).await
        }
        Ok(Job::MediaPreview { attachment_id }) => {
            crate::flows::files::previews_failed(&state.files(), attachment_id).await
        }
        // A notification that could not be sent is only late news: nothing to mark.
        Ok(Job::PushNotify { .. }) | Err(_) => Ok(()),
    }
}

async fn record_outcome(
    state: &AppState,
    job: &db::jobs::JobRow,
    worker: &Worker,
    result: Result<(), JobError>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let Err(failure) = result else {
        worker.completions.complete(job.id).await?;
        metrics::counter!("koinonia_jobs_total", "kind" => job.kind.clone(), "outcome" => "done").increment(1);
        return Ok(());
    };
    let now = clock::now();
    let worker = worker.id.as_str();
    let mut pooled = state.db.acquire().await?;
    let c = &mut pooled.conn();
    match failure {
        JobError::Defer(delay) => {
            let run_at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
            db::jobs::defer(c, job.id, worker, run_at, now).await?;
        }
        JobError::Retry { error, after } if job.attempts < job.max_attempts => {
            let attempts = u32::try_from(job.attempts).unwrap_or(1);
            let base = match JobKind::parse(&job.kind) {
                Some(JobKind::MediaFetch) => state.config.workers.fetch_backoff_base,
                _ => state.config.workers.send_backoff_base,
            };
            let delay = after.unwrap_or_else(|| backoff(base, attempts));
            let run_at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
            tracing::info!(error = %error, retry_in_ms = delay.as_millis() as u64, "job will be retried");
            db::jobs::retry(c, job.id, worker, run_at, &error, now).await?;
            metrics::counter!("koinonia_jobs_total", "kind" => job.kind.clone(), "outcome" => "retry").increment(1);
        }
        JobError::Retry { error, .. } | JobError::Fatal(error) => {
            tracing::warn!(error = %error, attempts = job.attempts, "job failed for good");
            if db::jobs::fail(c, job.id, worker, &error, now).await? {
                drop(pooled);
                on_dead(state, job, &error).await?;
            }
            metrics::counter!("koinonia_jobs_total", "kind" => job.kind.clone(), "outcome" => "failed").increment(1);
        }
    }
    Ok(())
}

/// Jobs leased by an earlier process on this host that is no longer running (killed, crashed)
/// are made claimable at once instead of after their leases run out. A worker id is
/// `{host}-{pid}-{uuid}`; a process that still runs keeps its leases.
async fn reclaim_dead_leases(state: &AppState) {
    let prefix = format!("{}-", hostname());
    let own = std::process::id();
    let holders = match state.db.acquire().await {
        Ok(mut pooled) => db::jobs::lease_holders(&mut pooled.conn(), &prefix).await.unwrap_or_default(),
        Err(_) => return,
    };
    for holder in holders {
        let pid =
            holder.strip_prefix(&prefix).and_then(|rest| rest.split('-').next()).and_then(|p| p.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        if pid == own || process_alive(pid) {
            continue;
        }
        if let Ok(mut pooled) = state.db.acquire().await {
            if let Ok(n) = db::jobs::expire_leases(&mut pooled.conn(), &holder, clock::now()).await {
                tracing::info!(worker = %holder, jobs = n, "took over the jobs of a stopped process on this host");
            }
        }
    }
}

/// Whether a process with this id exists (signal 0 checks without sending anything).
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: kill with signal 0 sends nothing; it only reports whether the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn hostname() -> String {
    std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "koinonia".to_owned())
}

/// Finished jobs leave the queue together: each finished job hands its id over and waits, one
/// task deletes whatever has gathered in one statement (group commit, as for webhooks), then
/// answers. A job is still done only once its row is gone.
#[derive(Clone)]
struct Completions {
    tx: tokio::sync::mpsc::Sender<(JobId, Done)>,
}

/// Where a finished job hears that its row is gone.
type Done = tokio::sync::oneshot::Sender<Result<(), Arc<sqlx::Error>>>;

impl Completions {
    /// Starts the task; it ends when the last handle is dropped.
    fn start(db: db::Db, worker: String) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(JobId, Done)>(1024);
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while rx.recv_many(&mut batch, 512).await > 0 {
                let ids: Vec<JobId> = batch.iter().map(|(id, _)| *id).collect();
                let done = async {
                    let mut pooled = db.acquire().await?;
                    db::jobs::complete_many(&mut pooled.conn(), &ids, &worker).await
                }
                .await
                .map(|_| ())
                .map_err(Arc::new);
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(done.clone());
                }
            }
        });
        Self { tx }
    }

    /// Removes a finished job; returns once its row is gone.
    async fn complete(&self, id: JobId) -> Result<(), Arc<sqlx::Error>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx.send((id, reply)).await.map_err(|_| Arc::new(sqlx::Error::PoolClosed))?;
        answer.await.map_err(|_| Arc::new(sqlx::Error::PoolClosed))?
    }
}
