//! What leaders do to a member from the thread page: name them (any leader), erase them
//! (admins; a form with the CSRF token, confirmed in the browser first), or from a group's page
//! open one member's own conversation to write to them alone. The export is a plain link to `GET /api/members/:id/export`,
//! which the session cookie authorises.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

use super::pages::PageError;
use super::session::PageSession;
use crate::domain::{ConversationId, MemberId};
use crate::flows::{inbox, members};
use crate::state::AppState;
use crate::web::csrf::{CsrfForm, NoFields};
use crate::web::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/inbox/{id}/erase", post(erase))
        .route("/inbox/{id}/name", post(name))
        .route("/inbox/{id}/members/{member}/own", post(own))
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
    let conversation = one_to_one(&state, &session, id).await?;
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
    let conversation = one_to_one(&state, &session, id).await?;
    members::erase(&state.members(), &session.leader.actor(), conversation.row.member_id)
        .await
        .map_err(ApiError::from)?;
    Ok(Redirect::to("/inbox").into_response())
}

/// A member's own conversation (naming and erasing act on one member: in a group, from that
/// member's own conversation).
async fn one_to_one(
    state: &AppState,
    session: &PageSession,
    id: ConversationId,
) -> Result<inbox::Conversation, PageError> {
    let conversation =
        inbox::conversation(&state.inbox(), session.leader.church, id, false).await.map_err(ApiError::from)?;
    if conversation.row.is_group {
        return Err(
            ApiError::BadRequest("this is a group: open a member's own conversation (\"Text alone\")".into()).into()
        );
    }
    Ok(conversation)
}

/// Opens (creating it if needed) the own conversation of a member of group `id`.
async fn own(
    State(state): State<AppState>,
    session: PageSession,
    Path((id, member)): Path<(String, String)>,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    let id: ConversationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let member: MemberId = member.parse().map_err(|_| ApiError::NotFound)?;
    let group = inbox::conversation(&state.inbox(), session.leader.church, id, false).await.map_err(ApiError::from)?;
    if !group.row.participants.iter().any(|p| p.member_id == member) {
        return Err(ApiError::NotFound.into());
    }
    let own =
        members::own_conversation(&state.members(), &session.leader.actor(), member).await.map_err(ApiError::from)?;
    Ok(Redirect::to(&format!("/inbox/{own}")).into_response())
}
