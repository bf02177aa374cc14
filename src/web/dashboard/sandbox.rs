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
use serde::Deserialize;

use super::page_headers;
use super::pages::PageError;
use crate::app::AppState;
use crate::db;
use crate::domain::{AttachmentId, Phone};
use crate::flows::inbound::{self, AnnouncedFile, InboundMessage};
use crate::media::ingest::{format_size, SANDBOX_SCHEME};
use crate::media::names;
use crate::media::store::ObjectInfo;
use crate::web::api::conversations::load_thread;
use crate::web::api::views::MessageView;
use crate::web::error::{ApiError, ApiResult};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sandbox", get(page))
        .route("/sandbox/thread", get(thread))
        .route("/sandbox/send", post(send).layer(DefaultBodyLimit::disable()))
        .route("/sandbox/media/{id}", get(media))
}

fn available(state: &AppState) -> Result<(), ApiError> {
    if state.carrier.is_sandbox() {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
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
    available(&state)?;
    let churches = {
        let mut pooled = state.db.acquire().await?;
        db::churches::all(&mut pooled.conn()).await?
    };
    let page = SandboxPage {
        churches: churches.into_iter().map(|c| (c.phone_number, c.name)).collect(),
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
}

/// The member's conversation with that church, if they have one.
async fn conversation_of(
    state: &AppState,
    who: &Who,
) -> ApiResult<Option<(crate::domain::ChurchId, crate::domain::ConversationId)>> {
    let phone = Phone::parse(&who.phone).map_err(|e| ApiError::bad_request(format!("phone: {e}")))?;
    let church_number = Phone::parse(&who.church).map_err(|e| ApiError::bad_request(format!("church: {e}")))?;
    let mut pooled = state.db.acquire().await?;
    let c = &mut pooled.conn();
    let Some(church) = db::churches::find_by_number(c, church_number.as_str()).await? else { return Ok(None) };
    let Some(member) = db::members::find_by_hash(c, church.id, &state.phone.blind_index(&phone)).await? else {
        return Ok(None);
    };
    let conversation = db::conversations::find_for_member(c, church.id, member.id).await?;
    Ok(conversation.map(|id| (church.id, id)))
}

#[derive(Template, WebTemplate)]
#[template(path = "sandbox_thread.html")]
struct ThreadFragment {
    messages: Vec<MessageView>,
    phone: String,
    church: String,
}

async fn thread(State(state): State<AppState>, Query(who): Query<Who>) -> Result<Response, PageError> {
    available(&state)?;
    let messages = match conversation_of(&state, &who).await? {
        Some((church, conversation)) => load_thread(&state, church, conversation, None, 100).await?.messages,
        None => Vec::new(),
    };
    Ok(ThreadFragment { messages, phone: who.phone, church: who.church }.into_response())
}

/// The member opens a file the church sent.
async fn media(State(state): State<AppState>, Path(id): Path<String>, Query(who): Query<Who>) -> ApiResult<Response> {
    available(&state)?;
    let id: AttachmentId = id.parse().map_err(|_| ApiError::NotFound)?;
    let (church, conversation) = conversation_of(&state, &who).await?.ok_or(ApiError::NotFound)?;
    let mut pooled = state.db.acquire().await?;
    let c = &mut pooled.conn();
    let a = db::attachments::get(c, church, id)
        .await?
        .filter(|a| a.conversation_id == conversation && a.status == "stored")
        .ok_or(ApiError::NotFound)?;
    let entry = crate::flows::audit::Entry {
        church: Some(church),
        actor_type: "member",
        actor_id: None,
        action: "media.sandbox_open",
        subject: None,
        client: crate::web::auth::ClientAddr(None),
        detail: None,
    };
    crate::web::api::media::redirect_to_original(&state, c, &a, entry).await
}

/// The simulated phone sends a message: text and any number of files.
async fn send(State(state): State<AppState>, mut multipart: Multipart) -> ApiResult<Response> {
    available(&state)?;
    let mut phone = String::new();
    let mut church = String::new();
    let mut text = String::new();
    let mut files = Vec::new();
    // Staged files go again on every way out but a recorded message.
    let mut staged = crate::media::store::Uncommitted::new(&state.store);
    let max = state.config.max_media_size_bytes;
    let staged_result = async {
        while let Some(mut field) =
            multipart.next_field().await.map_err(|e| ApiError::bad_request(format!("multipart: {e}")))?
        {
            match field.name().unwrap_or_default() {
                "phone" => phone = field.text().await.map_err(|e| ApiError::bad_request(e.to_string()))?,
                "church" => church = field.text().await.map_err(|e| ApiError::bad_request(e.to_string()))?,
                "text" => text = field.text().await.map_err(|e| ApiError::bad_request(e.to_string()))?,
                "files" | "file" => {
                    let name = field.file_name().map(names::display_name).unwrap_or_else(|| "file".into());
                    if field.file_name().is_some_and(str::is_empty) {
                        continue;
                    }
                    let declared = field.content_type().map(str::to_owned);
                    let key = format!("sandbox/{}_{}", uuid::Uuid::new_v4().simple(), names::safe_name(&name));
                    let info = ObjectInfo {
                        content_type: declared.as_deref().unwrap_or("application/octet-stream"),
                        original_filename: &name,
                        conversation_id: crate::domain::ConversationId::new(),
                        uploaded_at: crate::clock::now(),
                    };
                    let mut writer = state.store.writer(&key, &info).await.map_err(|e| ApiError::Internal(e.into()))?;
                    let mut size = 0u64;
                    loop {
                        match field.chunk().await {
                            Ok(Some(chunk)) => {
                                size += chunk.len() as u64;
                                if size > max {
                                    writer.abort().await;
                                    return Err(ApiError::PayloadTooLarge(format!(
                                        "File too large (max {})",
                                        format_size(max)
                                    )));
                                }
                                writer.write(&chunk).await.map_err(|e| ApiError::Internal(e.into()))?;
                            }
                            Ok(None) => break,
                            Err(e) => {
                                writer.abort().await;
                                return Err(ApiError::bad_request(format!("multipart: {e}")));
                            }
                        }
                    }
                    writer.finish().await.map_err(|e| ApiError::Internal(e.into()))?;
                    staged.add(&key);
                    files.push((key, name, declared, size));
                }
                _ => {}
            }
        }
        Ok::<(), ApiError>(())
    }
    .await;
    staged_result?;
    let parsed = (Phone::parse(&phone), Phone::parse(&church));
    let (Ok(from), Ok(to)) = parsed else {
        return Err(ApiError::bad_request("phone and church must be phone numbers"));
    };
    if text.trim().is_empty() && files.is_empty() {
        return Err(ApiError::bad_request("write something or attach a file"));
    }
    let msg = InboundMessage {
        event_id: Some(format!("sandbox-{}", uuid::Uuid::new_v4())),
        event_type: "message.received".into(),
        from,
        to: vec![to],
        cc: Vec::new(),
        text: text.trim().to_owned(),
        files: files
            .iter()
            .map(|(key, name, declared, size)| AnnouncedFile {
                url: format!("{SANDBOX_SCHEME}{key}"),
                declared_type: declared.clone(),
                declared_size: Some(*size),
                declared_sha256: None,
                name: Some(name.clone()),
            })
            .collect(),
        autoresponse_type: None,
    };
    match inbound::record(&state, msg).await {
        Ok(inbound::Outcome::Recorded { .. }) => {
            // The fetch job reads each staged file into place and then deletes it.
            staged.keep();
            Ok((StatusCode::CREATED, axum::Json(serde_json::json!({"success": true, "data": {"files": files.len()}})))
                .into_response())
        }
        Ok(_) => Err(ApiError::bad_request("no church has that number")),
        Err(e) => Err(ApiError::Internal(e.into())),
    }
}
