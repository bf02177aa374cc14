//! The job queue: rows in the database, leased by workers that run inside `serve`.
//!
//! A job is written in the same transaction as the facts it belongs to ([`queue`]), claimed
//! with a lease by a worker ([`workers`]); a worker that dies leaves the lease to expire and
//! another takes the job over. Failures are either retried with exponential backoff and jitter
//! (until `max_attempts`) or fatal; either way a dead job's subject is marked failed with the
//! reason. No transaction is held across network I/O: claim, work, then record the outcome.
//! Idle workers are woken in-process at once, and between PostgreSQL instances through
//! `LISTEN/NOTIFY` ([`wake`]), with a slow poll as the safety net.

pub mod queue;
pub mod wake;
pub mod workers;

pub use queue::{
    backoff, enqueue, enqueue_preview, record_gauges, EnqueueError, Job, JobError, JobKind, JobsHandle, NewJob,
    PushTarget,
};
pub use workers::{pools, run_workers, Pool};
