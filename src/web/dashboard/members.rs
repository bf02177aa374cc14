//! What an admin does to a member from the thread page: erase them (a form with the CSRF token,
//! confirmed in the browser first). The export is a plain link to `GET /api/members/:id/export`,
//! which the session cookie authorises.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::Router;

use super::pages::PageError;
use super::session::PageSession;
use crate::domain::ConversationId;
use crate::flows::{inbox, members};
use crate::state::AppState;
use crate::web::csrf::{CsrfForm, NoFields};
use crate::web::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new().route("/inbox/{id}/erase", post(erase))
}

/// Erases the member of conversation `id` (admins), then back to the inbox.
async fn erase(
    State(state): State<AppState>,
    session: PageSession,
    Path(id): Path<String>,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    let id: ConversationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let conversation =
        inbox::conversation(&state.inbox(), session.leader.church, id, false).await.map_err(ApiError::from)?;
    members::erase(&state.members(), &session.leader.actor(), conversation.row.member_id)
        .await
        .map_err(ApiError::from)?;
    Ok(Redirect::to("/inbox").into_response())
}
