//! Live updates for open dashboards. Inside one process a broadcast channel carries them; on
//! PostgreSQL every event goes through `NOTIFY` and each instance's listener rebroadcasts it, so
//! leaders connected to any instance see what happened on any other.

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::db::{self, Db};
use crate::domain::{ChurchId, ConversationId, MessageId};

const CHANNEL: &str = "koinonia_live";

/// Something a leader's screen should show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Event {
    /// A message was added or changed (text, status, or one of its files).
    #[serde(rename_all = "camelCase")]
    Message { conversation_id: ConversationId, message_id: MessageId },
    /// A conversation's summary changed (e.g. marked read).
    #[serde(rename_all = "camelCase")]
    Conversation { conversation_id: ConversationId },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Envelope {
    church: ChurchId,
    event: Event,
}

/// Event batches waiting for the publisher; beyond that, events are delivered on this instance
/// only (a burst that large is already more than any screen shows).
const WAITING_BATCHES: usize = 256;

/// The live-update hub of this process.
#[derive(Clone)]
pub struct Live {
    tx: broadcast::Sender<(ChurchId, Event)>,
    db: Db,
    /// On PostgreSQL: the publisher task's queue ([`publish`]).
    outbox: Option<mpsc::Sender<Vec<(ChurchId, Event)>>>,
}

impl Live {
    /// On PostgreSQL this starts the publisher task (it ends with the last clone), so it must
    /// be called inside the runtime.
    pub fn new(db: Db) -> Self {
        let (tx, _) = broadcast::channel(1024);
        let outbox = db::notify::shared(&db).then(|| {
            let (outbox, queued) = mpsc::channel(WAITING_BATCHES);
            tokio::spawn(publish(db.clone(), tx.clone(), queued));
            outbox
        });
        Self { tx, db, outbox }
    }

    /// Publishes an event to the church's leaders, on every instance.
    pub async fn publish(&self, church: ChurchId, event: Event) {
        self.publish_all(vec![(church, event)]).await;
    }

    /// Publishes many events at once. On PostgreSQL they are handed to the publisher task,
    /// which sends whatever has queued in one statement: the caller (a batch of webhooks, a
    /// worker) never waits on a round trip for news.
    pub async fn publish_all(&self, events: Vec<(ChurchId, Event)>) {
        if events.is_empty() {
            return;
        }
        let events = match &self.outbox {
            None => events,
            Some(outbox) => match outbox.try_send(events) {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!("live updates queue full; delivering on this instance only");
                    e.into_inner()
                }
            },
        };
        for e in events {
            let _ = self.tx.send(e);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<(ChurchId, Event)> {
        self.tx.subscribe()
    }

    /// On PostgreSQL: listens for other instances' (and this one's) events until `shutdown`.
    pub async fn run_listener(self, shutdown: tokio_util::sync::CancellationToken) {
        let tx = self.tx.clone();
        db::notify::listen(&self.db, CHANNEL, shutdown, move |payload| {
            if let Ok(env) = serde_json::from_str::<Envelope>(payload) {
                let _ = tx.send((env.church, env.event));
            }
        })
        .await;
    }
}

/// The publisher task: sends queued events through `NOTIFY` on a connection of its own, every
/// batch that waited in one statement, until the last [`Live`] is dropped. What cannot be sent
/// is delivered on this instance.
async fn publish(
    db: Db,
    local: broadcast::Sender<(ChurchId, Event)>,
    mut queued: mpsc::Receiver<Vec<(ChurchId, Event)>>,
) {
    let mut sender = db::notify::Sender::new(db);
    let mut batches = Vec::new();
    while queued.recv_many(&mut batches, WAITING_BATCHES).await > 0 {
        let events: Vec<(ChurchId, Event)> = batches.drain(..).flatten().collect();
        let payloads: Vec<String> = events
            .iter()
            .filter_map(|(church, event)| {
                serde_json::to_string(&Envelope { church: *church, event: event.clone() }).ok()
            })
            .collect();
        if let Err(e) = sender.send_all(CHANNEL, &payloads).await {
            tracing::warn!(error = %e, "live updates not sent through NOTIFY; delivering on this instance");
            for e in events {
                let _ = local.send(e);
            }
        }
    }
}
