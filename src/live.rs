//! Live updates for open dashboards. Inside one process a broadcast channel carries them; on
//! PostgreSQL every event goes through `NOTIFY` and each instance's listener rebroadcasts it, so
//! leaders connected to any instance see what happened on any other.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

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

/// The live-update hub of this process.
#[derive(Clone)]
pub struct Live {
    tx: broadcast::Sender<(ChurchId, Event)>,
    db: Db,
}

impl Live {
    pub fn new(db: Db) -> Self {
        let (tx, _) = broadcast::channel(1024);
        Self { tx, db }
    }

    /// Publishes an event to the church's leaders, on every instance.
    pub async fn publish(&self, church: ChurchId, event: Event) {
        self.publish_all(vec![(church, event)]).await;
    }

    /// Publishes many events at once (one statement on PostgreSQL, however many there are).
    pub async fn publish_all(&self, events: Vec<(ChurchId, Event)>) {
        if events.is_empty() {
            return;
        }
        if !db::notify::shared(&self.db) {
            for e in events {
                let _ = self.tx.send(e);
            }
            return;
        }
        let payloads: Vec<String> = events
            .iter()
            .map(|(church, event)| {
                serde_json::to_string(&Envelope { church: *church, event: event.clone() }).unwrap_or_default()
            })
            .collect();
        let sent = async {
            let mut pooled = self.db.acquire().await?;
            db::notify::notify_all(&mut pooled.conn(), CHANNEL, &payloads).await
        }
        .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "live updates not sent through NOTIFY; delivering locally");
            for e in events {
                let _ = self.tx.send(e);
            }
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
