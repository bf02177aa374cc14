//! `GET /events`: Server-Sent Events for the signed-in leader's church.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use crate::app::AppState;
use crate::live::Event;
use crate::web::auth::Leader;

pub fn router() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

async fn events(
    State(state): State<AppState>,
    leader: Leader,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let church = leader.church;
    let stream = futures::stream::unfold(state.live.subscribe(), move |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok((c, event)) if c == church => {
                    let name = match &event {
                        Event::Message { .. } => "message",
                        Event::Conversation { .. } => "conversation",
                    };
                    let data = serde_json::to_string(&event).unwrap_or_default();
                    return Some((Ok(SseEvent::default().event(name).data(data)), rx));
                }
                Ok(_) => continue,
                // Fell behind: the page refreshes what it shows.
                Err(RecvError::Lagged(_)) => return Some((Ok(SseEvent::default().event("resync").data("{}")), rx)),
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
