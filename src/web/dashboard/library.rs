//! `/library`: every stored file of the church as a grid of previews, newest first, filtered by
//! type, dates and member, with infinite scroll; selected files (or all matching the filter)
//! download as one streamed ZIP.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::session::PageSession;
use super::{page_headers, Nav};
use crate::domain::AttachmentId;
use crate::flows::library;
use crate::state::AppState;
use crate::web::api::media::{export_zip, LibraryQuery};
use crate::web::api::views::{self, AttachmentView};
use crate::web::csrf::CsrfForm;
use crate::web::error::ApiError;

/// Tiles per page (one screen on a desktop, several on a phone).
const PAGE: i64 = 48;
/// Members offered in the filter (the most recently active).
const MEMBERS_IN_FILTER: i64 = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/library", get(page))
        .route("/library/fragments/tiles", get(tiles))
        .route("/library/export", post(export))
}

/// One file in the grid.
pub struct Tile {
    pub file: AttachmentView,
    pub conversation_id: String,
    pub member: String,
    /// Sent by the church (else received from the member), and by which leader when known.
    pub outbound: bool,
    pub leader: Option<String>,
    /// The day it arrived (UTC until the page's script shows the reader's own day).
    pub date: String,
    pub created_at: String,
}

/// A member in the filter.
pub struct MemberOption {
    pub id: String,
    pub label: String,
}

/// The filter as the form holds it (empty strings for "any").
#[derive(Default)]
pub struct FilterView {
    pub kind: String,
    pub from: String,
    pub to: String,
    pub member_id: String,
    pub conversation_id: String,
    /// Tiles per page when not the default (kept across pages).
    pub limit: Option<i64>,
}

impl FilterView {
    fn of(q: &LibraryQuery) -> Self {
        let v = |o: &Option<String>| o.clone().unwrap_or_default();
        Self {
            kind: v(&q.kind),
            from: v(&q.from),
            to: v(&q.to),
            member_id: v(&q.member_id),
            conversation_id: v(&q.conversation_id),
            limit: q.limit,
        }
    }

    /// The filter as a query string for the next page's URL.
    pub fn query(&self) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("type", &self.kind),
            ("from", &self.from),
            ("to", &self.to),
            ("memberId", &self.member_id),
            ("conversationId", &self.conversation_id),
        ] {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        if let Some(limit) = self.limit {
            s.append_pair("limit", &limit.to_string());
        }
        s.finish()
    }

    pub fn is_filtered(&self) -> bool {
        !(self.kind.is_empty()
            && self.from.is_empty()
            && self.to.is_empty()
            && self.member_id.is_empty()
            && self.conversation_id.is_empty())
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "library.html")]
struct LibraryPage {
    nav: Nav,
    filter: FilterView,
    members: Vec<MemberOption>,
    tiles: Vec<Tile>,
    next_cursor: Option<String>,
    error: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "library_tiles.html")]
struct TilesFragment {
    filter: FilterView,
    tiles: Vec<Tile>,
    next_cursor: Option<String>,
}

async fn page(State(state): State<AppState>, session: PageSession, Query(q): Query<LibraryQuery>) -> Response {
    let church = session.leader.church;
    let filter = FilterView::of(&q);
    let (tiles, next_cursor, error) = match load_tiles(&state, church, &q).await {
        Ok((tiles, next)) => (tiles, next, None),
        Err(ApiError::BadRequest(msg)) => (Vec::new(), None, Some(msg)),
        Err(e) => return e.into_response(),
    };
    let members = match crate::flows::inbox::list(&state.inbox(), church, None, None, MEMBERS_IN_FILTER).await {
        Ok(list) => list
            .items
            .iter()
            .map(views::conversation_row)
            .map(|c| MemberOption { id: c.member.id.to_string(), label: c.display_name() })
            .collect(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let page = LibraryPage { nav: Nav::of(&state, &session, "library"), filter, members, tiles, next_cursor, error };
    (page_headers(&state), page).into_response()
}

/// The next page of tiles, for infinite scroll.
async fn tiles(
    State(state): State<AppState>,
    session: PageSession,
    Query(q): Query<LibraryQuery>,
) -> Result<Response, ApiError> {
    let (tiles, next_cursor) = load_tiles(&state, session.leader.church, &q).await?;
    Ok((page_headers(&state), TilesFragment { filter: FilterView::of(&q), tiles, next_cursor }).into_response())
}

async fn load_tiles(
    state: &AppState,
    church: crate::domain::ChurchId,
    q: &LibraryQuery,
) -> Result<(Vec<Tile>, Option<String>), ApiError> {
    let limit = crate::web::api::page_limit(Some(q.limit.unwrap_or(PAGE)))?;
    let page = library::list(&state.library(), church, &q.filter(), q.cursor.as_deref(), limit).await?;
    let members = library::member_labels(&state.library(), church, &page.items).await?;
    let senders = library::senders(&state.library(), church, &page.items).await?;
    let tiles = page
        .items
        .iter()
        .map(|a| Tile {
            file: views::attachment(a),
            conversation_id: a.conversation_id.to_string(),
            member: members.get(&a.conversation_id).cloned().unwrap_or_default(),
            outbound: matches!(senders.get(&a.id), Some(library::Sender::Leader(_))),
            leader: match senders.get(&a.id) {
                Some(library::Sender::Leader(email)) => email.clone(),
                _ => None,
            },
            date: a.created_at.format("%b %-d, %Y").to_string(),
            created_at: views::timestamp(a.created_at),
        })
        .collect();
    Ok((tiles, page.next_cursor))
}

/// The download button's form: the chosen ids (comma-separated), or `all` with the filter.
#[derive(Deserialize)]
struct ExportForm {
    #[serde(default)]
    ids: String,
    #[serde(default)]
    all: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    from: Option<String>,
    to: Option<String>,
    #[serde(rename = "memberId")]
    member_id: Option<String>,
    #[serde(rename = "conversationId")]
    conversation_id: Option<String>,
}

/// A plain form post (so the browser streams the ZIP straight to disk), checked like every
/// change made with the cookie: the page's CSRF token must come with it.
async fn export(
    State(state): State<AppState>,
    session: PageSession,
    CsrfForm(form): CsrfForm<ExportForm>,
) -> Result<Response, ApiError> {
    let filter = library::FilterInput {
        kind: form.kind.as_deref(),
        from: form.from.as_deref(),
        to: form.to.as_deref(),
        member_id: form.member_id.as_deref(),
        conversation_id: form.conversation_id.as_deref(),
    };
    let selection = if form.all == "1" {
        library::Selection::Filter(filter)
    } else {
        let ids = form
            .ids
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse().map(AttachmentId).map_err(|_| ApiError::bad_request("ids must be file ids")))
            .collect::<Result<Vec<_>, _>>()?;
        library::Selection::Ids(ids)
    };
    export_zip(&state, &session.leader, selection).await
}
