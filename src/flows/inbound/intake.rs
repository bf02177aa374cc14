//! Group commit for inbound webhooks: many messages share one transaction, and on disk one
//! commit.
//!
//! Each webhook hands its message to the intake and waits; one task takes whatever has queued
//! (up to [`MAX_BATCH`]), writes it all in one transaction ([`super::write_all`]: a handful of
//! statements per batch rather than per message), commits, and only then
//! answers every waiting webhook — so a 200 still means the message is committed. If the shared
//! transaction fails, each of its messages is recorded alone, so one bad message fails only its
//! own webhook (which Telnyx delivers again), never its neighbours'.
//!
//! One batch is written at a time, on PostgreSQL too: while it commits, the next one gathers.
//! Several writing tasks per instance took smaller batches (an idle task takes a single
//! message), which cost more CPU per message in koinonia and in PostgreSQL alike; with one,
//! two instances on one database take at least as many webhooks as one (README, Performance).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{after_commit, record, write_all, Deps, InboundError, InboundMessage, Outcome};
use crate::config::Config;
use crate::crypto::phone::PhoneCrypto;
use crate::db::Db;
use crate::jobs::JobsHandle;
use crate::live::Live;

/// Most messages written in one transaction. At a few microseconds of SQL each, a full batch
/// holds the database for milliseconds, not longer.
pub const MAX_BATCH: usize = 256;
/// Messages that may wait for the intake; a webhook beyond that waits to hand its message over.
const QUEUE: usize = 4 * MAX_BATCH;

/// Hands inbound messages to the group-commit task. Cheap to clone.
#[derive(Clone)]
pub struct Intake {
    tx: mpsc::Sender<Request>,
}

struct Request {
    msg: InboundMessage,
    reply: oneshot::Sender<Result<Outcome, InboundError>>,
}

/// What the intake task owns: the parts of [`Deps`] it lends to each batch.
pub struct Parts {
    pub db: Db,
    pub phone: PhoneCrypto,
    pub jobs: JobsHandle,
    pub live: Live,
    pub config: Arc<Config>,
}

impl Intake {
    /// Starts the task; it ends when the last `Intake` is dropped.
    pub fn start(parts: Parts) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(parts, rx));
        Self { tx }
    }

    /// Records `msg`; returns once the transaction holding it has committed.
    pub async fn record(&self, msg: InboundMessage) -> Result<Outcome, InboundError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Request { msg, reply }).await.map_err(|_| InboundError::Stopped)?;
        answer.await.map_err(|_| InboundError::Stopped)?
    }
}

async fn run(parts: Parts, mut rx: mpsc::Receiver<Request>) {
    let deps = Deps { db: &parts.db, phone: &parts.phone, jobs: &parts.jobs, live: &parts.live, config: &parts.config };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit(&deps, std::mem::take(&mut batch)).await;
    }
}

/// Records one batch and answers its webhooks.
async fn commit(deps: &Deps<'_>, batch: Vec<Request>) {
    metrics::histogram!("koinonia_inbound_batch_size").record(batch.len() as f64);
    if batch.len() > 1 {
        match together(deps, &batch).await {
            Ok((outcomes, effects)) => {
                for (req, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = req.reply.send(Ok(outcome));
                }
                after_commit(deps, effects).await;
                return;
            }
            Err(e) => {
                metrics::counter!("koinonia_inbound_batch_retried_total").increment(1);
                tracing::warn!(error = %e, messages = batch.len(), "a shared transaction failed; recording its messages one by one");
            }
        }
    }
    for req in batch {
        let result = record(deps, req.msg).await;
        let _ = req.reply.send(result);
    }
}

async fn together(deps: &Deps<'_>, batch: &[Request]) -> Result<(Vec<Outcome>, Vec<super::Effect>), InboundError> {
    let msgs: Vec<&InboundMessage> = batch.iter().map(|r| &r.msg).collect();
    let mut tx = deps.db.begin().await?;
    let written = write_all(&mut tx.conn(), deps, &msgs).await?;
    tx.commit().await?;
    Ok(written)
}
