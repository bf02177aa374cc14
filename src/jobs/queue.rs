//! The queue itself: what a job is, how one is written (inside the transaction of the facts it
//! belongs to), how an attempt ends, and how idle workers are woken.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use tokio::sync::Notify;

use crate::clock;
use crate::db::{self, Conn};
use crate::domain::{AttachmentId, ChurchId, ConversationId, JobId, JobState, MediaKind, MessageId};

crate::domain::text_enum!(
    /// Kinds of job, as stored in `jobs.kind`: the one place they are named.
    JobKind {
        MediaFetch = "media.fetch",
        MessageSend = "message.send",
        MediaPreview = "media.preview",
        PushNotify = "push.notify",
    }
);

/// A piece of background work and what it works on. Stored as its kind and a JSON payload
/// (`{"attachment_id": …}`, `{"message_id": …}` or `{"messages": [{"conversation_id": …,
/// "message_id": …}, …]}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Download one inbound file into the store.
    MediaFetch { attachment_id: AttachmentId },
    /// Hand one outbound message to the carrier.
    MessageSend { message_id: MessageId },
    /// Make the previews of one stored image or video.
    MediaPreview { attachment_id: AttachmentId },
    /// Tell the church's leaders who chose push of new messages: the newest of each
    /// conversation in one inbound batch (one notification per conversation).
    PushNotify { messages: Vec<PushTarget> },
}

/// The newest message of a conversation, for [`Job::PushNotify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushTarget {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
}

#[derive(Serialize, Deserialize)]
struct PushPayload {
    messages: Vec<PushTarget>,
}

#[derive(Serialize, Deserialize)]
struct AttachmentPayload {
    attachment_id: AttachmentId,
}

#[derive(Serialize, Deserialize)]
struct MessagePayload {
    message_id: MessageId,
}

impl Job {
    pub fn kind(&self) -> JobKind {
        match self {
            Self::MediaFetch { .. } => JobKind::MediaFetch,
            Self::MessageSend { .. } => JobKind::MessageSend,
            Self::MediaPreview { .. } => JobKind::MediaPreview,
            Self::PushNotify { .. } => JobKind::PushNotify,
        }
    }

    pub(crate) fn payload(&self) -> serde_json::Value {
        match self {
            Self::MediaFetch { attachment_id } | Self::MediaPreview { attachment_id } => {
                serde_json::json!(AttachmentPayload { attachment_id: *attachment_id })
            }
            Self::MessageSend { message_id } => serde_json::json!(MessagePayload { message_id: *message_id }),
            Self::PushNotify { messages } => serde_json::json!(PushPayload { messages: messages.clone() }),
        }
    }

    /// The job a stored row holds; why not, for a row koinonia did not write.
    pub fn of_row(row: &db::jobs::JobRow) -> Result<Self, String> {
        let kind = JobKind::parse(&row.kind).ok_or_else(|| format!("unknown job kind {:?}", row.kind))?;
        let bad = |e: serde_json::Error| format!("bad payload: {e}");
        let payload = row.payload.0.clone();
        Ok(match kind {
            JobKind::MediaFetch => {
                let p: AttachmentPayload = serde_json::from_value(payload).map_err(bad)?;
                Self::MediaFetch { attachment_id: p.attachment_id }
            }
            JobKind::MediaPreview => {
                let p: AttachmentPayload = serde_json::from_value(payload).map_err(bad)?;
                Self::MediaPreview { attachment_id: p.attachment_id }
            }
            JobKind::MessageSend => {
                let p: MessagePayload = serde_json::from_value(payload).map_err(bad)?;
                Self::MessageSend { message_id: p.message_id }
            }
            JobKind::PushNotify => {
                let p: PushPayload = serde_json::from_value(payload).map_err(bad)?;
                Self::PushNotify { messages: p.messages }
            }
        })
    }
}

/// A job to write (inside the caller's transaction).
pub struct NewJob {
    pub job: Job,
    pub church: Option<ChurchId>,
    pub max_attempts: u32,
    pub priority: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("cannot write job: {0}")]
    Db(#[from] sqlx::Error),
}

/// Writes a job; the caller commits it with the facts it belongs to, then calls
/// [`JobsHandle::wake`].
pub async fn enqueue(c: &mut Conn<'_>, new: NewJob, now: DateTime<Utc>) -> Result<JobId, EnqueueError> {
    let row = db::jobs::JobRow {
        church_id: new.church,
        priority: new.priority,
        max_attempts: i32::try_from(new.max_attempts).unwrap_or(i32::MAX),
        ..queued_row(new.job.kind().as_str(), new.job.payload(), now)
    };
    db::jobs::insert(c, &row).await?;
    // Idle workers of other instances hear of it when the transaction commits.
    db::notify::notify(c, super::wake::CHANNEL, new.job.kind().as_str()).await?;
    Ok(row.id)
}

/// A queued job's row, due now, one attempt allowed, no church: callers name what differs.
pub(crate) fn queued_row(kind: &str, payload: serde_json::Value, now: DateTime<Utc>) -> db::jobs::JobRow {
    db::jobs::JobRow {
        id: JobId::new(),
        kind: kind.to_owned(),
        payload: Json(payload),
        church_id: None,
        state: JobState::Queued,
        priority: 0,
        run_at: now,
        attempts: 0,
        max_attempts: 1,
        lease_until: None,
        leased_by: None,
        last_error: None,
        created_at: now,
        updated_at: now,
    }
}

/// Queues the previews of a stored file when its kind has them (images and videos).
pub async fn enqueue_preview(
    c: &mut Conn<'_>,
    church: ChurchId,
    attachment: AttachmentId,
    kind: MediaKind,
    now: DateTime<Utc>,
) -> Result<(), EnqueueError> {
    if !matches!(kind, MediaKind::Image | MediaKind::Video) {
        return Ok(());
    }
    let new = NewJob {
        job: Job::MediaPreview { attachment_id: attachment },
        church: Some(church),
        max_attempts: 3,
        priority: -1,
    };
    enqueue(c, new, now).await.map(|_| ())
}

/// Wakes this process's idle workers after an enqueue (other instances hear of it through
/// [`super::wake`]).
#[derive(Clone, Default)]
pub struct JobsHandle {
    pub(super) notify: Arc<Notify>,
}

impl JobsHandle {
    pub fn wake(&self) {
        self.notify.notify_waiters();
        self.notify.notify_one();
    }
}

/// How a job attempt ended badly.
#[derive(Debug)]
pub enum JobError {
    /// Worth another attempt (after `after`, or the backoff schedule).
    Retry { error: String, after: Option<Duration> },
    /// Another attempt cannot succeed.
    Fatal(String),
    /// Not now (a rate limit, or waiting for a delivery report): run again after this long
    /// without counting an attempt.
    Defer(Duration),
}

impl JobError {
    pub fn retry(error: impl Into<String>) -> Self {
        Self::Retry { error: error.into(), after: None }
    }
    pub fn fatal(error: impl Into<String>) -> Self {
        Self::Fatal(error.into())
    }
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        Self::retry(format!("database: {e}"))
    }
}

/// Sets the queue's gauges (jobs by state, age of the oldest queued job). Read from the
/// database at scrape time, so every instance reports the shared queue.
pub async fn record_gauges(db: &db::Db) {
    let Ok(mut pooled) = db.acquire().await else { return };
    let c = &mut pooled.conn();
    for s in [JobState::Queued, JobState::Running, JobState::Failed] {
        if let Ok(n) = db::jobs::count_by_state(c, s).await {
            metrics::gauge!("koinonia_jobs", "state" => s.as_str()).set(n as f64);
        }
    }
    if let Ok(oldest) = db::jobs::oldest_queued(c).await {
        let age = oldest.map_or(0.0, |t| (clock::now() - t).num_milliseconds().max(0) as f64 / 1000.0);
        metrics::gauge!("koinonia_jobs_oldest_queued_age_seconds").set(age);
    }
}

/// Delay before attempt `attempts + 1`: `base · 2^(attempts-1)`, ±20 % jitter, at most an hour.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(20);
    let raw = base.saturating_mul(1u32 << exp).min(Duration::from_secs(3600));
    let jitter = rand::random_range(0.8..1.2);
    raw.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter() {
        let base = Duration::from_secs(1);
        for (attempt, nominal) in [(1u32, 1.0f64), (2, 2.0), (3, 4.0), (6, 32.0)] {
            let d = backoff(base, attempt).as_secs_f64();
            assert!(d >= nominal * 0.79 && d <= nominal * 1.21, "attempt {attempt}: {d}");
        }
        assert!(backoff(base, 40) <= Duration::from_secs(4400));
    }

    #[test]
    fn a_job_reads_back_from_its_row_as_written() {
        let now = clock::now();
        for job in [
            Job::MediaFetch { attachment_id: AttachmentId::new() },
            Job::MessageSend { message_id: MessageId::new() },
            Job::MediaPreview { attachment_id: AttachmentId::new() },
            Job::PushNotify {
                messages: vec![PushTarget { conversation_id: ConversationId::new(), message_id: MessageId::new() }],
            },
        ] {
            let row = queued_row(job.kind().as_str(), job.payload(), now);
            assert_eq!(Job::of_row(&row), Ok(job.clone()));
        }
        // Rows written by earlier releases hold the same payload shape.
        let id = AttachmentId::new();
        let mut row = queued_row("media.fetch", serde_json::json!({ "attachment_id": id }), now);
        assert_eq!(Job::of_row(&row), Ok(Job::MediaFetch { attachment_id: id }));
        row.kind = "mystery".into();
        assert!(Job::of_row(&row).is_err_and(|e| e.contains("unknown job kind")));
        row.kind = "message.send".into();
        assert!(Job::of_row(&row).is_err_and(|e| e.contains("bad payload")));
    }
}
