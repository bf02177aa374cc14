//! Conversations: the inbox list, one thread, marking read.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{next_page, page_limit, views};
use crate::app::AppState;
use crate::db;
use crate::db::conversations::{InboxCursor, InboxFilter};
use crate::domain::{ChurchId, ConversationId, MessageId, Phone};
use crate::web::auth::Leader;
use crate::web::error::{ok, ApiError, ApiResult, Envelope};
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
    let inbox = load_inbox(&state, leader.church, query.cursor.as_deref(), query.q.as_deref(), limit).await?;
    Ok(ok(StatusCode::OK, InboxPage { conversations: inbox.conversations, next_cursor: inbox.next_cursor }))
}

/// One page of a church's inbox, newest first.
pub struct Inbox {
    pub conversations: Vec<views::ConversationView>,
    pub next_cursor: Option<String>,
}

/// Loads an inbox page (the API's list and the dashboard's share it).
pub async fn load_inbox(
    state: &AppState,
    church: ChurchId,
    cursor: Option<&str>,
    q: Option<&str>,
    limit: i64,
) -> ApiResult<Inbox> {
    let after = cursor.filter(|c| !c.is_empty()).map(decode_cursor).transpose()?;
    let filter = search_filter(state, q);
    let mut pooled = state.db.acquire().await?;
    let mut rows = db::conversations::list(&mut pooled.conn(), church, after.as_ref(), &filter, limit + 1).await?;
    let next_cursor = next_page(&mut rows, limit, |r| encode_cursor(r.last_message_at, r.id));
    let conversations = rows.iter().map(|r| views::conversation(r, &state.phone, false)).collect();
    Ok(Inbox { conversations, next_cursor })
}

/// `q` searches names (substring), the whole number (blind index) and its last digits.
fn search_filter(state: &AppState, q: Option<&str>) -> InboxFilter {
    let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) else {
        return InboxFilter::default();
    };
    let digits: String = q.chars().filter(char::is_ascii_digit).collect();
    let only_number = q.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
    InboxFilter {
        name_like: Some(q.to_lowercase()),
        last_digits: (only_number && (1..=4).contains(&digits.len())).then_some(digits),
        phone_hash: only_number.then(|| Phone::parse(q).ok()).flatten().map(|p| state.phone.blind_index(&p)),
    }
}

fn encode_cursor(at: DateTime<Utc>, id: ConversationId) -> String {
    let raw = format!("{}|{}", at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true), id);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(cursor: &str) -> ApiResult<InboxCursor> {
    let bad = || ApiError::bad_request("invalid cursor");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (at, id) = raw.split_once('|').ok_or_else(bad)?;
    Ok(InboxCursor {
        last_message_at: DateTime::parse_from_rfc3339(at).map_err(|_| bad())?.with_timezone(&Utc),
        id: id.parse().map_err(|_| bad())?,
    })
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
    let before = parse_before(query.before.as_deref())?;
    let thread = load_thread(&state, leader.church, id, before, limit).await?;
    Ok(ok(
        StatusCode::OK,
        ThreadPage { conversation: thread.conversation, messages: thread.messages, next_cursor: thread.next_cursor },
    ))
}

/// `before` of a thread page: a message id, or nothing for the newest page.
pub fn parse_before(before: Option<&str>) -> ApiResult<Option<MessageId>> {
    match before.filter(|b| !b.is_empty()) {
        Some(b) => Ok(Some(b.parse().map_err(|_| ApiError::bad_request("invalid before cursor"))?)),
        None => Ok(None),
    }
}

/// A page of one conversation: the newest `limit` messages older than `before`, oldest first.
pub struct Thread {
    pub conversation: views::ConversationView,
    pub messages: Vec<views::MessageView>,
    pub next_cursor: Option<String>,
}

/// Loads a thread page (the API's thread and the dashboard's share it). 404 for another
/// church's conversation.
pub async fn load_thread(
    state: &AppState,
    church: ChurchId,
    id: ConversationId,
    before: Option<MessageId>,
    limit: i64,
) -> ApiResult<Thread> {
    let mut pooled = state.db.acquire().await?;
    let c = &mut pooled.conn();
    let conversation = db::conversations::get(c, church, id).await?.ok_or(ApiError::NotFound)?;
    let mut rows = db::messages::page(c, church, id, before, limit + 1).await?;
    let next_cursor = next_page(&mut rows, limit, |m| m.id.to_string());
    rows.reverse(); // oldest first within the page
    let attachments = match (rows.first(), rows.last()) {
        (Some(first), Some(last)) => db::attachments::for_messages(c, church, id, first.id, last.id).await?,
        _ => Vec::new(),
    };
    let mut by_message: HashMap<MessageId, Vec<&db::attachments::AttachmentRow>> = HashMap::new();
    for a in &attachments {
        by_message.entry(a.message_id).or_default().push(a);
    }
    let messages =
        rows.iter().map(|m| views::message(m, by_message.get(&m.id).map_or(&[][..], Vec::as_slice))).collect();
    Ok(Thread { conversation: views::conversation(&conversation, &state.phone, true), messages, next_cursor })
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
    mark_conversation_read(&state, leader.church, id).await?;
    let mut pooled = state.db.acquire().await?;
    let conversation =
        db::conversations::get(&mut pooled.conn(), leader.church, id).await?.ok_or(ApiError::NotFound)?;
    Ok(ok(StatusCode::OK, ConversationData { conversation: views::conversation(&conversation, &state.phone, false) }))
}

/// Marks a conversation read for the whole church and tells open dashboards.
pub async fn mark_conversation_read(state: &AppState, church: ChurchId, id: ConversationId) -> ApiResult<()> {
    let changed = {
        let mut pooled = state.db.acquire().await?;
        db::conversations::mark_read(&mut pooled.conn(), church, id).await?
    };
    if !changed {
        return Err(ApiError::NotFound);
    }
    state.live.publish(church, crate::live::Event::Conversation { conversation_id: id }).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_keeps_precision() {
        let at = crate::clock::now();
        let id = ConversationId::new();
        let c = decode_cursor(&encode_cursor(at, id)).expect("decode");
        assert_eq!(c, InboxCursor { last_message_at: at, id });
        assert!(decode_cursor("not a cursor").is_err());
    }
}
