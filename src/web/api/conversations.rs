//! Conversations: the inbox list, one thread, marking read.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{page_limit, views};
use crate::domain::ConversationId;
use crate::flows::inbox;
use crate::state::AppState;
use crate::web::auth::Leader;
use crate::web::error::{ok, ApiResult, Envelope};
use crate::web::extract::{AppPath, AppQuery};
use crate::web::openapi::{BadRequest, Forbidden, NotFound, ServerError, Unauthorized};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_conversations)).routes(routes!(thread)).routes(routes!(mark_read))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Conversations per page: 50 by default, at most 200.
    #[param(minimum = 1, nullable = false)]
    limit: Option<i64>,
    /// The `nextCursor` of the previous page.
    #[param(nullable = false)]
    cursor: Option<String>,
    /// Searches member names, whole numbers and a number's last digits.
    #[param(nullable = false)]
    q: Option<String>,
}

/// A page of the inbox, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxPage {
    conversations: Vec<views::ConversationView>,
    /// The cursor of the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// The inbox
///
/// The church's conversations, newest first, each with its member (number masked), the last
/// message's time and preview, and the unread count (shared by the church's leaders).
#[utoipa::path(
    get,
    path = "/api/conversations",
    tag = "conversations",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of conversations", body = Envelope<InboxPage>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn list_conversations(
    State(state): State<AppState>,
    leader: Leader,
    AppQuery(query): AppQuery<ListQuery>,
) -> ApiResult<Response> {
    let limit = page_limit(query.limit)?;
    let page = inbox::list(&state.inbox(), leader.church, query.cursor.as_deref(), query.q.as_deref(), limit).await?;
    let conversations = page.items.iter().map(views::conversation_row).collect();
    Ok(ok(StatusCode::OK, InboxPage { conversations, next_cursor: page.next_cursor }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ThreadQuery {
    /// Messages per page: 50 by default, at most 200.
    #[param(minimum = 1, nullable = false)]
    limit: Option<i64>,
    /// The `nextCursor` of the previous page (a message id), for older messages.
    #[param(nullable = false)]
    before: Option<String>,
}

/// A page of one conversation.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThreadPage {
    /// The conversation, with the member's number in full.
    conversation: views::ConversationView,
    /// Oldest first within the page.
    messages: Vec<views::MessageView>,
    /// `before` for the next (older) page; null when there is none.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// A conversation
///
/// The newest page of a conversation's messages (oldest first within it), with their files;
/// `before` pages backwards.
#[utoipa::path(
    get,
    path = "/api/conversations/{id}",
    tag = "conversations",
    params(("id" = ConversationId, Path, description = "The conversation"), ThreadQuery),
    responses(
        (status = 200, description = "A page of the thread", body = Envelope<ThreadPage>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn thread(
    State(state): State<AppState>,
    leader: Leader,
    AppPath(id): AppPath<ConversationId>,
    AppQuery(query): AppQuery<ThreadQuery>,
) -> ApiResult<Response> {
    let limit = page_limit(query.limit)?;
    let thread = inbox::thread(&state.inbox(), leader.church, id, query.before.as_deref(), limit).await?;
    Ok(ok(
        StatusCode::OK,
        ThreadPage {
            conversation: views::conversation(&thread.conversation),
            messages: thread.messages.iter().map(views::thread_message).collect(),
            next_cursor: thread.next_cursor,
        },
    ))
}

/// The conversation, as answered by `PATCH /api/conversations/{id}/read`.
#[derive(Serialize, ToSchema)]
pub struct ConversationData {
    conversation: views::ConversationView,
}

/// Mark read
///
/// Marks the conversation read for the whole church (its leaders share one inbox).
#[utoipa::path(
    patch,
    path = "/api/conversations/{id}/read",
    tag = "conversations",
    params(("id" = ConversationId, Path, description = "The conversation")),
    responses(
        (status = 200, description = "The conversation, now read", body = Envelope<ConversationData>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn mark_read(
    State(state): State<AppState>,
    leader: Leader,
    AppPath(id): AppPath<ConversationId>,
) -> ApiResult<Response> {
    let row = inbox::mark_read(&state.inbox(), leader.church, id).await?;
    Ok(ok(StatusCode::OK, ConversationData { conversation: views::conversation_row(&row) }))
}
