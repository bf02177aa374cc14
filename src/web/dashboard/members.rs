//! What leaders do to a member from the thread page: name them (any leader), or erase them
//! (admins; a form with the CSRF token,
//! confirmed in the browser first). The export is a plain link to `GET /api/members/:id/export`,
//! which the session cookie authorises.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

use super::pages::PageError;
use super::session::PageSession;
use crate::domain::ConversationId;
use crate::flows::{inbox, members};
use crate::state::AppState;
use crate::web::csrf::{CsrfForm, NoFields};
use crate::web::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new().route("/inbox/{id}/erase", post(erase)).route("/inbox/{id}/name", post(name))
}

/// The thread header's name form.
#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
}

/// Names the member of conversation `id` (any leader of the church), then back to the thread.
async fn name(
    State(state): State<AppState>,
    session: PageSession,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<NameForm>,
) -> Result<Response, PageError> {
    let id: ConversationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let conversation =
        inbox::conversation(&state.inbox(), session.leader.church, id, false).await.map_err(ApiError::from)?;
    let (first, last) = (Some(form.first_name.as_str()), Some(form.last_name.as_str()));
    members::name(&state.members(), &session.leader.actor(), conversation.row.member_id, first, last)
        .await
        .map_err(ApiError::from)?;
    Ok(Redirect::to(&format!("/inbox/{id}")).into_response())
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
