//! The job queue table. Claiming is the one query that differs per dialect: PostgreSQL skips rows
//! another instance has locked (`FOR UPDATE SKIP LOCKED`); SQLite has a single writer, so the same
//! statement without the clause is already atomic.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::{run, Conn, Result};
use crate::domain::{ChurchId, JobId, JobState};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub id: JobId,
    pub kind: String,
    pub payload: Json<serde_json::Value>,
    pub church_id: Option<ChurchId>,
    pub state: JobState,
    pub priority: i32,
    pub run_at: DateTime<Utc>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub lease_until: Option<DateTime<Utc>>,
    pub leased_by: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, kind, payload, church_id, state, priority, run_at, attempts, max_attempts, lease_until, \
                       leased_by, last_error, created_at, updated_at";

pub async fn insert(c: &mut Conn<'_>, j: &JobRow) -> Result<()> {
    let sql =
        format!("INSERT INTO jobs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)");
    run!(c, |q| sqlx::query(&sql)
        .bind(j.id)
        .bind(&j.kind)
        .bind(&j.payload)
        .bind(j.church_id)
        .bind(j.state)
        .bind(j.priority)
        .bind(j.run_at)
        .bind(j.attempts)
        .bind(j.max_attempts)
        .bind(j.lease_until)
        .bind(&j.leased_by)
        .bind(&j.last_error)
        .bind(j.created_at)
        .bind(j.updated_at)
        .execute(&mut **q)
        .await
        .map(|_| ()))
}

/// Takes the next due job, or else one whose lease expired, for `worker` until `lease_until`.
pub async fn claim(
    c: &mut Conn<'_>,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    worker: &str,
) -> Result<Option<JobRow>> {
    Ok(claim_many_where(c, now, lease_until, worker, &ClaimFilter::default(), 1).await?.into_iter().next())
}

/// Which jobs a claim may take: one kind (each kind has its own workers), and none of the
/// churches that already use their share of those workers.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClaimFilter<'a> {
    pub kind: Option<&'a str>,
    pub skip_churches: &'a [ChurchId],
}

/// Up to `limit` jobs in one statement, in the order a claim takes them: the due ones first
/// (highest priority, then oldest); only when none is due, those whose lease expired.
pub async fn claim_many_where(
    c: &mut Conn<'_>,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    worker: &str,
    filter: &ClaimFilter<'_>,
    limit: usize,
) -> Result<Vec<JobRow>> {
    let mut extra = String::new();
    let mut next = 4;
    if filter.kind.is_some() {
        extra.push_str(" AND kind = $4");
        next = 5;
    }
    if !filter.skip_churches.is_empty() {
        let list: Vec<String> = (0..filter.skip_churches.len()).map(|i| format!("${}", next + i)).collect();
        extra.push_str(&format!(" AND (church_id IS NULL OR church_id NOT IN ({}))", list.join(", ")));
        next += filter.skip_churches.len();
    }
    let due = format!("state = 'queued' AND run_at <= $1{extra} ORDER BY priority DESC, run_at, id LIMIT ${next}");
    let expired = format!("state = 'running' AND lease_until <= $1{extra} ORDER BY lease_until, id LIMIT ${next}");
    let limit = i64::try_from(limit.max(1)).unwrap_or(1);
    for (condition, is_due) in [(due, true), (expired, false)] {
        let sql = claim_sql(&condition, matches!(c, Conn::Postgres(_)));
        let mut jobs = run!(&mut *c, |q| {
            let mut query = sqlx::query_as::<_, JobRow>(&sql).bind(now).bind(lease_until).bind(worker);
            if let Some(kind) = filter.kind {
                query = query.bind(kind);
            }
            for church in filter.skip_churches {
                query = query.bind(*church);
            }
            query.bind(limit).fetch_all(&mut **q).await
        })?;
        if !jobs.is_empty() {
            // RETURNING gives no order: put them back in the order they were chosen.
            if is_due {
                jobs.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.run_at.cmp(&b.run_at)).then(a.id.cmp(&b.id)));
            } else {
                jobs.sort_by_key(|j| j.id);
            }
            return Ok(jobs);
        }
    }
    Ok(Vec::new())
}

/// One atomic claim statement. PostgreSQL skips rows another instance is claiming; SQLite has a
/// single writer, so the statement is atomic without it.
fn claim_sql(filter: &str, postgres: bool) -> String {
    let lock = if postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    format!(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $2, leased_by = $3, updated_at = $1
         WHERE id IN (SELECT id FROM jobs WHERE {filter}{lock})
         RETURNING {COLUMNS}"
    )
}

/// Done: the rows go (those `worker` holds). Returns how many went.
pub async fn complete_many(c: &mut Conn<'_>, ids: &[JobId], worker: &str) -> Result<u64> {
    let mut done = 0;
    for chunk in ids.chunks(500) {
        let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql =
            format!("DELETE FROM jobs WHERE leased_by = $1 AND state = 'running' AND id IN ({})", list.join(", "));
        done += run!(&mut *c, |q| {
            let mut query = sqlx::query(&sql).bind(worker);
            for id in chunk {
                query = query.bind(*id);
            }
            query.persistent(chunk.len() == 1).execute(&mut **q).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(done)
}

/// Done: the row goes. Only the lease holder can finish a job.
pub async fn complete(c: &mut Conn<'_>, id: JobId, worker: &str) -> Result<bool> {
    Ok(complete_many(c, &[id], worker).await? == 1)
}

/// Back to the queue, due at `run_at`.
pub async fn retry(
    c: &mut Conn<'_>,
    id: JobId,
    worker: &str,
    run_at: DateTime<Utc>,
    error: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    const SQL: &str = "UPDATE jobs SET state = 'queued', run_at = $3, lease_until = NULL, leased_by = NULL,
                           last_error = $4, updated_at = $5
                       WHERE id = $1 AND leased_by = $2 AND state = 'running'";
    run!(c, |q| sqlx::query(SQL)
        .bind(id)
        .bind(worker)
        .bind(run_at)
        .bind(error)
        .bind(now)
        .execute(&mut **q)
        .await
        .map(|r| r.rows_affected() == 1))
}

/// Dead: kept (state `failed`) for an operator to read.
pub async fn fail(c: &mut Conn<'_>, id: JobId, worker: &str, error: &str, now: DateTime<Utc>) -> Result<bool> {
    const SQL: &str = "UPDATE jobs SET state = 'failed', lease_until = NULL, last_error = $3, updated_at = $4
                       WHERE id = $1 AND leased_by = $2 AND state = 'running'";
    run!(c, |q| sqlx::query(SQL)
        .bind(id)
        .bind(worker)
        .bind(error)
        .bind(now)
        .execute(&mut **q)
        .await
        .map(|r| r.rows_affected() == 1))
}

/// The workers (`leased_by`) holding running jobs whose id starts with `prefix`.
pub async fn lease_holders(c: &mut Conn<'_>, prefix: &str) -> Result<Vec<String>> {
    const SQL: &str = "SELECT DISTINCT leased_by FROM jobs
                       WHERE state = 'running' AND leased_by IS NOT NULL AND substr(leased_by, 1, length($1)) = $1";
    run!(c, |q| sqlx::query_scalar::<_, String>(SQL).bind(prefix).fetch_all(&mut **q).await)
}

/// Ends the leases of a worker known to be dead: its jobs become claimable now, as if their
/// leases had run out (a send in flight is then reconciled, never resent blindly).
pub async fn expire_leases(c: &mut Conn<'_>, worker: &str, now: DateTime<Utc>) -> Result<u64> {
    const SQL: &str =
        "UPDATE jobs SET lease_until = $2 WHERE leased_by = $1 AND state = 'running' AND lease_until > $2";
    run!(c, |q| sqlx::query(SQL).bind(worker).bind(now).execute(&mut **q).await.map(|r| r.rows_affected()))
}

/// Keeps a long job's lease alive.
pub async fn extend_lease(c: &mut Conn<'_>, id: JobId, worker: &str, lease_until: DateTime<Utc>) -> Result<bool> {
    run!(c, |q| sqlx::query("UPDATE jobs SET lease_until = $3 WHERE id = $1 AND leased_by = $2 AND state = 'running'")
        .bind(id)
        .bind(worker)
        .bind(lease_until)
        .execute(&mut **q)
        .await
        .map(|r| r.rows_affected() == 1))
}

/// Jobs per state, for metrics and tests.
pub async fn count_by_state(c: &mut Conn<'_>, state: JobState) -> Result<i64> {
    run!(c, |q| sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM jobs WHERE state = $1")
        .bind(state)
        .fetch_one(&mut **q)
        .await)
}

/// When the next queued job is due (for sleeping until then).
pub async fn next_due(c: &mut Conn<'_>) -> Result<Option<DateTime<Utc>>> {
    run!(c, |q| sqlx::query_scalar::<_, Option<DateTime<Utc>>>("SELECT MIN(run_at) FROM jobs WHERE state = 'queued'")
        .fetch_one(&mut **q)
        .await)
}

/// When the next queued job of `kind` is due.
pub async fn next_due_of(c: &mut Conn<'_>, kind: &str) -> Result<Option<DateTime<Utc>>> {
    run!(c, |q| sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
        "SELECT MIN(run_at) FROM jobs WHERE state = 'queued' AND kind = $1"
    )
    .bind(kind)
    .fetch_one(&mut **q)
    .await)
}

/// Back to the queue at `run_at` without counting the attempt (waiting on a rate limit, or for a
/// delivery report): only the lease holder can.
pub async fn defer(
    c: &mut Conn<'_>,
    id: JobId,
    worker: &str,
    run_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool> {
    const SQL: &str = "UPDATE jobs SET state = 'queued', run_at = $3, lease_until = NULL, leased_by = NULL,
                           attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = $4
                       WHERE id = $1 AND leased_by = $2 AND state = 'running'";
    run!(c, |q| sqlx::query(SQL)
        .bind(id)
        .bind(worker)
        .bind(run_at)
        .bind(now)
        .execute(&mut **q)
        .await
        .map(|r| r.rows_affected() == 1))
}

/// When the oldest job still waiting was queued (due or not).
pub async fn oldest_queued(c: &mut Conn<'_>) -> Result<Option<DateTime<Utc>>> {
    run!(c, |q| sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
        "SELECT MIN(created_at) FROM jobs WHERE state = 'queued'"
    )
    .fetch_one(&mut **q)
    .await)
}
