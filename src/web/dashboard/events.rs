//! `GET /events`: Server-Sent Events for the signed-in leader's church.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use crate::live::Event;
use crate::state::AppState;
use crate::web::auth::Leader;

pub fn router() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

/// How often a live stream checks that its session still holds.
const SESSION_CHECK: Duration = Duration::from_secs(10);

struct Live {
    rx: tokio::sync::broadcast::Receiver<(crate::domain::ChurchId, Event)>,
    check: tokio::time::Interval,
    state: AppState,
    leader: Leader,
}

async fn events(
    State(state): State<AppState>,
    leader: Leader,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let mut check = tokio::time::interval(SESSION_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.reset();
    let live = Live { rx: state.live.subscribe(), check, state, leader };
    let stream = futures::stream::unfold(live, |mut live| async move {
        loop {
            let received = tokio::select! {
                r = live.rx.recv() => r,
                _ = live.check.tick() => {
                    // A session that was logged out, whose password changed, whose leader was
                    // removed or that expired ends its stream (the page then signs in again).
                    if crate::web::auth::still_signed_in(&live.state, &live.leader).await {
                        continue;
                    }
                    return None;
                }
            };
            match received {
                Ok((c, event)) if c == live.leader.church => {
                    let name = match &event {
                        Event::Message { .. } => "message",
                        Event::Conversation { .. } => "conversation",
                    };
                    let data = serde_json::to_string(&event).unwrap_or_default();
                    return Some((Ok(SseEvent::default().event(name).data(data)), live));
                }
                Ok(_) => continue,
                // Fell behind: the page refreshes what it shows.
                Err(RecvError::Lagged(_)) => return Some((Ok(SseEvent::default().event("resync").data("{}")), live)),
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
