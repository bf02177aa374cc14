//! Leaders write: a text reply, a reply with a file (streamed straight into the store), and a
//! new conversation with a number.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::views;
use crate::domain::{ConversationId, Phone};
use crate::flows::inbox;
use crate::flows::outbound::{self, Recorded, Reply};
use crate::media::ingest::IngestError;
use crate::state::AppState;
use crate::web::auth::Leader;
use crate::web::error::{ok, ApiError, ApiResult, Envelope};
use crate::web::extract::{AppJson, AppPath};
use crate::web::openapi::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, RateLimited, ServerError, Unauthorized,
    UnsupportedMediaType,
};

/// Room for the multipart framing and the caption around the file itself.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;
/// Largest caption field read from a multipart body.
const MAX_CAPTION_BYTES: usize = 32 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start)).routes(routes!(reply)).routes(
        // The size limit is enforced while streaming (MAX_MEDIA_SIZE_BYTES), not by buffering.
        routes!(reply_with_media).layer(DefaultBodyLimit::disable()),
    )
}

fn recorded_view(r: &Recorded) -> views::MessageView {
    views::message(&r.message, &r.attachments)
}

#[derive(Deserialize, ToSchema)]
pub struct ReplyBody {
    /// The text: SMS, or MMS text when longer than 10 segments to a US or Canadian number.
    content: String,
    /// Send even though the number was reported unable to receive messages.
    #[serde(default)]
    force: bool,
}

/// Reply with text
///
/// Records the reply and its send job in one transaction; a worker sends it (SMS, or MMS text
/// when long) exactly once.
#[utoipa::path(
    post,
    path = "/api/conversations/{id}/reply",
    tag = "conversations",
    params(("id" = ConversationId, Path, description = "The conversation")),
    request_body = ReplyBody,
    responses(
        (status = 201, description = "The reply, queued", body = Envelope<views::MessageView>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, description = "The member opted out, or the number cannot receive messages", body = crate::web::error::ErrorBody),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = RateLimited),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn reply(
    State(state): State<AppState>,
    leader: Leader,
    AppPath(id): AppPath<ConversationId>,
    AppJson(body): AppJson<ReplyBody>,
) -> ApiResult<Response> {
    limit(state.limits.reply(leader.id), "reply")?;
    let recorded = outbound::reply(
        &state.outbound(),
        &leader.actor(),
        id,
        Reply { content: body.content, upload: None, force: body.force, ..Reply::default() },
    )
    .await?;
    Ok(ok(StatusCode::CREATED, recorded_view(&recorded)))
}

#[derive(Deserialize, ToSchema)]
pub struct StartBody {
    /// The number to text, in any common writing (E.164 preferred).
    phone: String,
    content: String,
}

/// The conversation and its first message from the church.
#[derive(Serialize, ToSchema)]
pub struct Started {
    /// The member's conversation (existing or new), with the number in full.
    conversation: views::ConversationView,
    message: views::MessageView,
}

/// Text a number
///
/// A leader texts a number; the member's existing conversation is reused.
#[utoipa::path(
    post,
    path = "/api/conversations",
    tag = "conversations",
    request_body = StartBody,
    responses(
        (status = 201, description = "The message, queued", body = Envelope<Started>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = RateLimited),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn start(
    State(state): State<AppState>,
    leader: Leader,
    AppJson(body): AppJson<StartBody>,
) -> ApiResult<Response> {
    limit(state.limits.reply(leader.id), "reply")?;
    let phone = Phone::parse(&body.phone).map_err(|e| ApiError::bad_request(format!("phone: {e}")))?;
    let (conversation, recorded) =
        outbound::start_conversation(&state.outbound(), &leader.actor(), &phone, &body.content).await?;
    let conversation = inbox::conversation(&state.inbox(), leader.church, conversation, true).await?;
    Ok(ok(
        StatusCode::CREATED,
        Started { conversation: views::conversation(&conversation), message: recorded_view(&recorded) },
    ))
}

/// 429 when a per-leader limit is reached.
fn limit(check: Result<(), std::time::Duration>, what: &'static str) -> ApiResult<()> {
    check.map_err(|wait| {
        metrics::counter!("koinonia_rate_limited_total", "what" => what).increment(1);
        ApiError::RateLimited(crate::limits::retry_after_secs(wait))
    })
}

/// A reply with a file, as `multipart/form-data`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MediaReplyForm {
    /// The file, kept and sent at full quality: as MMS when small enough, else as a link.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// A caption.
    content: Option<String>,
    /// `true` to send even though the number was reported unable to receive messages.
    force: Option<bool>,
}

/// Reply with a file
///
/// The file streams straight into the store (never buffered whole), is checked against the
/// allowed types on its bytes, and goes out as MMS, or as an SMS with a link to the original
/// when larger than `MMS_MAX_ATTACHMENT_BYTES` or to a number outside the US and Canada.
#[utoipa::path(
    post,
    path = "/api/conversations/{id}/reply-with-media",
    tag = "conversations",
    params(("id" = ConversationId, Path, description = "The conversation")),
    request_body(content = MediaReplyForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "The reply, queued", body = Envelope<views::MessageView>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, description = "The member opted out, or the number cannot receive messages", body = crate::web::error::ErrorBody),
        (status = 413, description = "The file is larger than `MAX_MEDIA_SIZE_BYTES`", body = crate::web::error::ErrorBody),
        (status = 415, description = "The body is not multipart, or the file's type is not allowed", body = crate::web::error::ErrorBody),
        (status = 429, response = RateLimited),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn reply_with_media(
    State(state): State<AppState>,
    leader: Leader,
    AppPath(id): AppPath<ConversationId>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    limit(state.limits.upload(leader.id), "upload")?;
    let deps = state.outbound();
    let mut multipart = multipart?;
    // A declared length beyond the limit is refused before a byte is read.
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > state.config.max_media_size_bytes + MULTIPART_OVERHEAD) {
        return Err(outbound::too_large(&deps).into());
    }
    let read = read_media_reply(&deps, &leader, id, &mut multipart).await;
    if let Err(e) = &read {
        if e.status().is_client_error() && e.status() != StatusCode::PAYLOAD_TOO_LARGE {
            drain(&mut multipart, state.config.max_media_size_bytes + MULTIPART_OVERHEAD).await;
        }
    }
    let recorded = read?;
    Ok(ok(StatusCode::CREATED, recorded_view(&recorded)))
}

/// Reads the form's fields in order, streaming the file into the store, and records the reply.
async fn read_media_reply(
    deps: &outbound::Deps<'_>,
    leader: &Leader,
    id: ConversationId,
    multipart: &mut Multipart,
) -> ApiResult<Recorded> {
    let mut caption = String::new();
    let mut force = false;
    let mut large_image = outbound::LargeImage::default();
    let mut reply = outbound::MediaReply::new(deps, &leader.actor(), id);
    while let Some(field) = multipart.next_field().await.map_err(|e| multipart_error(deps, e))? {
        match field.name().unwrap_or_default() {
            "content" => caption = read_text(field).await?,
            "force" => force = read_text(field).await?.trim() == "true",
            "largeImage" => {
                large_image = outbound::LargeImage::parse(&read_text(field).await?)
                    .ok_or_else(|| ApiError::bad_request("largeImage must be \"preview\" or \"link\""))?;
            }
            "file" => {
                let name = field.file_name().map(str::to_owned);
                let body = field.map_err(upload_broke).boxed();
                reply.attach(deps, name.as_deref(), force, body).await?;
            }
            _ => {
                // Unknown fields are drained and ignored.
                let mut f = field;
                while f.chunk().await.map_err(|e| multipart_error(deps, e))?.is_some() {}
            }
        }
    }
    Ok(reply.send(deps, caption, force, large_image).await?)
}

/// Reads what is left of a refused upload — at most `max` more bytes, for at most 30 seconds —
/// so that a client still sending its file reads the answer rather than a reset connection.
async fn drain(multipart: &mut Multipart, max: u64) {
    let mut left = max;
    let read_rest = async {
        while let Ok(Some(mut field)) = multipart.next_field().await {
            while let Ok(Some(chunk)) = field.chunk().await {
                left = left.saturating_sub(chunk.len() as u64);
                if left == 0 {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), read_rest).await;
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

fn multipart_error(deps: &outbound::Deps<'_>, e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return outbound::too_large(deps).into();
    }
    ApiError::bad_request(format!("invalid multipart body: {}", e.body_text()))
}

/// A body that broke off while the file streamed, as the media pipeline reports it.
fn upload_broke(e: axum::extract::multipart::MultipartError) -> IngestError {
    IngestError::Upload { too_large: e.status() == StatusCode::PAYLOAD_TOO_LARGE, message: e.body_text() }
}
