//! `/sandbox`: a phone simulator, present only with the sandbox carrier. Anyone can play a
//! member: texts and files go through the same inbound pipeline a Telnyx webhook takes (files
//! are staged in the store and fetched by the same job), and the church's replies show up here.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;

use super::page_headers;
use super::pages::PageError;
use crate::domain::{AttachmentId, MemberId};
use crate::flows::sandbox;
use crate::media::ingest::format_size;
use crate::state::AppState;
use crate::web::api::views::{self, MessageView};
use crate::web::error::{ApiError, ApiResult};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sandbox", get(page))
        .route("/sandbox/thread", get(thread))
        .route("/sandbox/send", post(send).layer(DefaultBodyLimit::disable()))
        .route("/sandbox/media/{id}", get(media))
}

#[derive(Template, WebTemplate)]
#[template(path = "sandbox.html")]
struct SandboxPage {
    churches: Vec<(String, String)>,
    accept: String,
    max_bytes: u64,
    max_label: String,
}

async fn page(State(state): State<AppState>) -> Result<Response, PageError> {
    let churches = sandbox::churches(&state.sandbox()).await.map_err(ApiError::from)?;
    let page = SandboxPage {
        churches,
        accept: super::pages::accept_list(),
        max_bytes: state.config.max_media_size_bytes,
        max_label: format_size(state.config.max_media_size_bytes),
    };
    Ok((page_headers(&state), page).into_response())
}

#[derive(Deserialize)]
pub struct Who {
    phone: String,
    church: String,
    /// The other numbers of a group text (none: the phone's own conversation).
    #[serde(default)]
    group: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "sandbox_thread.html")]
struct ThreadFragment {
    messages: Vec<MessageView>,
    phone: String,
    church: String,
    group: String,
    /// The phone's member: in a group, the other members' messages show as received.
    me: Option<MemberId>,
}

async fn thread(State(state): State<AppState>, Query(who): Query<Who>) -> Result<Response, PageError> {
    let found = sandbox::conversation_of(&state.sandbox(), &who.phone, &who.church, &who.group)
        .await
        .map_err(ApiError::from)?;
    let (messages, me) = match found {
        Some((church, conversation, me)) => (
            crate::flows::inbox::thread(&state.inbox(), church, conversation, None, 100)
                .await
                .map_err(ApiError::from)?
                .messages
                .iter()
                .map(views::thread_message)
                .collect(),
            Some(me),
        ),
        None => (Vec::new(), None),
    };
    Ok(ThreadFragment { messages, phone: who.phone, church: who.church, group: who.group, me }.into_response())
}

/// The member opens a file the church sent.
async fn media(State(state): State<AppState>, Path(id): Path<String>, Query(who): Query<Who>) -> ApiResult<Response> {
    sandbox::available(&state.sandbox())?;
    let id: AttachmentId = id.parse().map_err(|_| ApiError::NotFound)?;
    let url = sandbox::open_file(&state.sandbox(), &who.phone, &who.church, &who.group, id).await?;
    crate::web::api::media::redirect(&url)
}

/// The simulated phone sends a message: text and any number of files.
async fn send(State(state): State<AppState>, mut multipart: Multipart) -> ApiResult<Response> {
    let deps = state.sandbox();
    let mut outgoing = sandbox::Outgoing::new(&deps)?;
    let mut phone = String::new();
    let mut church = String::new();
    let mut text = String::new();
    let mut group = String::new();
    while let Some(field) =
        multipart.next_field().await.map_err(|e| ApiError::bad_request(format!("multipart: {e}")))?
    {
        match field.name().unwrap_or_default() {
            "phone" => phone = field.text().await.map_err(|e| ApiError::bad_request(e.to_string()))?,
            "church" => church = field.text().await.map_err(|e| ApiError::bad_request(e.to_string()))?,
            "text" => text = field.text().await.map_err(|e| ApiError::bad_request(e.to_string()))?,
            "group" => group = field.text().await.map_err(|e| ApiError::bad_request(e.to_string()))?,
            "files" | "file" => {
                if field.file_name().is_some_and(str::is_empty) {
                    continue;
                }
                let name = field.file_name().unwrap_or("file").to_owned();
                let declared = field.content_type().map(str::to_owned);
                let body = field.map_err(|e| e.to_string()).boxed();
                outgoing.attach(&deps, &name, declared, body).await?;
            }
            _ => {}
        }
    }
    let files = outgoing.send(&deps, &phone, &church, &group, &text).await?;
    Ok((StatusCode::CREATED, axum::Json(serde_json::json!({"success": true, "data": {"files": files}})))
        .into_response())
}
