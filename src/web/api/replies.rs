//! Leaders write: a text reply, a reply with a file (streamed straight into the store), and a
//! new conversation with a number.

use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;

use super::views;
use crate::app::AppState;
use crate::db;
use crate::domain::{AttachmentId, ConversationId, Phone};
use crate::media::ingest::{self, IngestError};
use crate::media::names;
use crate::outbound::{self, Recorded, Reply, ReplyError, Upload};
use crate::web::auth::Leader;
use crate::web::error::{ok, ApiError, ApiResult};
use crate::web::extract::{AppJson, AppPath};

/// Room for the multipart framing and the caption around the file itself.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;
/// Largest caption field read from a multipart body.
const MAX_CAPTION_BYTES: usize = 32 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/conversations", post(start)).route("/api/conversations/{id}/reply", post(reply)).route(
        "/api/conversations/{id}/reply-with-media",
        // The size limit is enforced while streaming (MAX_MEDIA_SIZE_BYTES), not by buffering.
        post(reply_with_media).layer(DefaultBodyLimit::disable()),
    )
}

impl From<ReplyError> for ApiError {
    fn from(e: ReplyError) -> Self {
        match e {
            ReplyError::NotFound => ApiError::NotFound,
            ReplyError::OptedOut | ReplyError::Unreachable(_) => ApiError::Conflict(e.to_string()),
            ReplyError::Invalid(msg) => ApiError::BadRequest(msg),
            ReplyError::Db(e) => ApiError::Database(e),
            other => ApiError::Internal(other.into()),
        }
    }
}

fn recorded_view(r: &Recorded) -> views::MessageView {
    let refs: Vec<&db::attachments::AttachmentRow> = r.attachments.iter().collect();
    views::message(&r.message, &refs)
}

#[derive(Deserialize)]
pub struct ReplyBody {
    content: String,
    #[serde(default)]
    force: bool,
}

async fn reply(
    State(state): State<AppState>,
    leader: Leader,
    AppPath(id): AppPath<ConversationId>,
    AppJson(body): AppJson<ReplyBody>,
) -> ApiResult<Response> {
    limit(state.limits.reply(leader.id), "reply")?;
    let recorded = outbound::reply(
        &state,
        &leader,
        id,
        Reply { content: body.content, upload: None, force: body.force, ..Reply::default() },
    )
    .await?;
    Ok(ok(StatusCode::CREATED, recorded_view(&recorded)))
}

#[derive(Deserialize)]
pub struct StartBody {
    phone: String,
    content: String,
}

async fn start(
    State(state): State<AppState>,
    leader: Leader,
    AppJson(body): AppJson<StartBody>,
) -> ApiResult<Response> {
    limit(state.limits.reply(leader.id), "reply")?;
    let phone = Phone::parse(&body.phone).map_err(|e| ApiError::bad_request(format!("phone: {e}")))?;
    let (conversation, recorded) = outbound::start_conversation(&state, &leader, &phone, &body.content).await?;
    let mut pooled = state.db.acquire().await?;
    let row =
        db::conversations::get(&mut pooled.conn(), leader.church, conversation).await?.ok_or(ApiError::NotFound)?;
    Ok(ok(
        StatusCode::CREATED,
        serde_json::json!({
            "conversation": views::conversation(&row, &state.phone, true),
            "message": recorded_view(&recorded),
        }),
    ))
}

/// 429 when a per-leader limit is reached.
fn limit(check: Result<(), std::time::Duration>, what: &'static str) -> ApiResult<()> {
    check.map_err(|wait| {
        metrics::counter!("koinonia_rate_limited_total", "what" => what).increment(1);
        ApiError::RateLimited(crate::limits::retry_after_secs(wait))
    })
}

fn too_large(state: &AppState) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "File too large (max {})",
        ingest::format_size(state.config.max_media_size_bytes)
    ))
}

async fn reply_with_media(
    State(state): State<AppState>,
    leader: Leader,
    AppPath(id): AppPath<ConversationId>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> ApiResult<Response> {
    limit(state.limits.upload(leader.id), "upload")?;
    // A declared length beyond the limit is refused before a byte is read.
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > state.config.max_media_size_bytes + MULTIPART_OVERHEAD) {
        return Err(too_large(&state));
    }
    let mut caption = String::new();
    let mut force = false;
    let mut large_image = outbound::LargeImage::default();
    let mut upload: Option<Upload> = None;
    let mut checked = false;
    while let Some(field) = multipart.next_field().await.map_err(|e| multipart_error(&state, e))? {
        match field.name().unwrap_or_default() {
            "content" => caption = read_text(field).await?,
            "force" => force = read_text(field).await?.trim() == "true",
            "largeImage" => {
                large_image = outbound::LargeImage::parse(&read_text(field).await?)
                    .ok_or_else(|| ApiError::bad_request("largeImage must be \"preview\" or \"link\""))?;
            }
            "file" => {
                if upload.is_some() {
                    return Err(ApiError::bad_request("one file per reply"));
                }
                if !checked {
                    outbound::precheck(&state, &leader, id, force).await?;
                    checked = true;
                }
                let original = field.file_name().map(names::display_name).unwrap_or_else(|| "file".to_owned());
                let attachment = AttachmentId::new();
                let key = state.store.key_for(leader.church, id, attachment, &names::safe_name(&original));
                let max = state.config.max_media_size_bytes;
                let body = field.map_err(IngestError::Upload).boxed();
                let ingested = ingest::stream_into_store(&state.store, max, body, &key, &original, id, None)
                    .await
                    .map_err(|e| upload_error(&state, e))?;
                let name = ingest::with_extension(&original, ingested.inspection.mime_type.unwrap_or_default());
                upload = Upload::from_ingested(attachment, key, name, &ingested);
            }
            _ => {
                // Unknown fields are drained and ignored.
                let mut f = field;
                while f.chunk().await.map_err(|e| multipart_error(&state, e))?.is_some() {}
            }
        }
    }
    let Some(upload) = upload else {
        return Err(ApiError::bad_request("a file is required (multipart field \"file\")"));
    };
    let key = upload.key.clone();
    match outbound::reply(&state, &leader, id, Reply { content: caption, upload: Some(upload), force, large_image })
        .await
    {
        Ok(recorded) => Ok(ok(StatusCode::CREATED, recorded_view(&recorded))),
        Err(e) => {
            // The file was stored for a reply that was not recorded: nothing of it is kept.
            if let Err(del) = state.store.delete(&key).await {
                tracing::warn!(error = %del, "could not remove the file of a refused reply");
            }
            Err(e.into())
        }
    }
}

async fn read_text(field: axum::extract::multipart::Field<'_>) -> ApiResult<String> {
    let mut buf = Vec::new();
    let mut field = field;
    while let Some(chunk) = field.chunk().await.map_err(|e| ApiError::bad_request(format!("multipart: {e}")))? {
        if buf.len() + chunk.len() > MAX_CAPTION_BYTES {
            return Err(ApiError::bad_request("content is too long"));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf).map_err(|_| ApiError::bad_request("content must be UTF-8 text"))
}

fn multipart_error(state: &AppState, e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large(state);
    }
    ApiError::bad_request(format!("invalid multipart body: {}", e.body_text()))
}

fn upload_error(state: &AppState, e: IngestError) -> ApiError {
    match e {
        IngestError::TooLarge(_) => too_large(state),
        IngestError::NotAllowed(t) => ApiError::UnsupportedMediaType(format!("File type {t} is not allowed")),
        IngestError::Rejected(reason) => ApiError::UnsupportedMediaType(format!("File not accepted: {reason}")),
        IngestError::Upload(e) => multipart_error(state, e),
        other => ApiError::Internal(other.into()),
    }
}
