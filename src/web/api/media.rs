//! `GET /api/media/:id`: the full-quality original, through a fresh short-lived URL (audited).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::app::AppState;
use crate::audit;
use crate::db::{self, attachments::AttachmentRow, Conn};
use crate::domain::{AttachmentId, AttachmentStatus};
use crate::web::auth::{ClientAddr, Leader};
use crate::web::error::{ApiError, ApiResult};
use crate::web::extract::AppPath;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/media", get(library)).route("/api/media/{id}", get(open))
}

async fn open(
    State(state): State<AppState>,
    leader: Leader,
    addr: ClientAddr,
    AppPath(id): AppPath<AttachmentId>,
) -> ApiResult<Response> {
    let mut pooled = state.db.acquire().await?;
    let c = &mut pooled.conn();
    let a = db::attachments::get(c, leader.church, id).await?.ok_or(ApiError::NotFound)?;
    match AttachmentStatus::parse(&a.status) {
        Some(AttachmentStatus::Stored) => {}
        Some(AttachmentStatus::Pending) => return Err(ApiError::Conflict("not stored yet".into())),
        Some(AttachmentStatus::Deleted) => {
            let why = a.failure_reason.clone().unwrap_or_else(|| "media removed".into());
            return Err(ApiError::Status(StatusCode::GONE, format!("this file is gone: {why}")));
        }
        Some(AttachmentStatus::Failed) | None => {
            let reason = a.failure_reason.as_deref().unwrap_or("unknown reason");
            return Err(ApiError::Status(StatusCode::NOT_FOUND, format!("this file could not be stored: {reason}")));
        }
    }
    let entry = audit::Entry::leader(leader.church, leader.id, "media.view", addr);
    redirect_to_original(&state, c, &a, entry).await
}

/// Audits the access and answers 302 to a fresh URL of the stored original, valid for
/// `MEDIA_VIEW_TTL_SECONDS`. Shared by leaders' `/api/media/:id` and members' `/m/:token`.
pub(crate) async fn redirect_to_original(
    state: &AppState,
    c: &mut Conn<'_>,
    a: &AttachmentRow,
    entry: audit::Entry,
) -> ApiResult<Response> {
    let (Some(key), Some(mime)) = (a.storage_key.as_deref(), a.mime_type.as_deref()) else {
        return Err(ApiError::Internal(anyhow::anyhow!("stored attachment {} lacks its key or type", a.id)));
    };
    let url = state
        .store
        .presign_get(key, state.config.media_view_ttl, mime, &a.name)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    audit::record(
        c,
        entry.subject("attachment", a.id.0).detail(serde_json::json!({ "conversationId": a.conversation_id })),
    )
    .await?;
    let location = HeaderValue::from_str(&url).map_err(|e| ApiError::Internal(e.into()))?;
    Ok((
        StatusCode::FOUND,
        [(header::LOCATION, location), (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
    )
        .into_response())
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LibraryQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    from: Option<String>,
    to: Option<String>,
    member_id: Option<String>,
    conversation_id: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

/// A date (`2026-11-27`, the whole day) or an RFC 3339 time; `end` moves a date to its next day.
fn parse_when(field: &str, value: &str, end: bool) -> ApiResult<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let day = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| ApiError::bad_request(format!("{field} must be a date (YYYY-MM-DD) or an RFC 3339 time")))?;
    let day = if end { day.succ_opt().unwrap_or(day) } else { day };
    Ok(day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

/// `GET /api/media`: the church's stored files, newest first, filtered.
async fn library(
    State(state): State<AppState>,
    leader: Leader,
    crate::web::extract::AppQuery(q): crate::web::extract::AppQuery<LibraryQuery>,
) -> ApiResult<Response> {
    let limit = super::page_limit(q.limit)?;
    let media_type = match q.kind.as_deref().filter(|k| !k.is_empty()) {
        Some(k) if crate::domain::MediaKind::parse(k).is_some() => Some(k.to_owned()),
        Some(_) => return Err(ApiError::bad_request("type must be image, video, audio or document")),
        None => None,
    };
    let id = |field: &str, v: Option<&str>| -> ApiResult<Option<uuid::Uuid>> {
        v.filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| ApiError::bad_request(format!("{field} is not an id"))))
            .transpose()
    };
    let filter = db::attachments::LibraryFilter {
        media_type,
        from: q.from.as_deref().filter(|s| !s.is_empty()).map(|v| parse_when("from", v, false)).transpose()?,
        until: q.to.as_deref().filter(|s| !s.is_empty()).map(|v| parse_when("to", v, true)).transpose()?,
        conversation: id("conversationId", q.conversation_id.as_deref())?.map(crate::domain::ConversationId),
        member: id("memberId", q.member_id.as_deref())?.map(crate::domain::MemberId),
    };
    let before = id("cursor", q.cursor.as_deref())?.map(AttachmentId);
    let mut pooled = state.db.acquire().await?;
    let mut rows = db::attachments::library(&mut pooled.conn(), leader.church, &filter, before, limit + 1).await?;
    let next = super::next_page(&mut rows, limit, |a| a.id.to_string());
    let media: Vec<serde_json::Value> = rows
        .iter()
        .map(|a| {
            let mut v = serde_json::to_value(super::views::attachment(a)).unwrap_or_default();
            v["conversationId"] = serde_json::json!(a.conversation_id);
            v["messageId"] = serde_json::json!(a.message_id);
            v["createdAt"] = serde_json::json!(super::views::timestamp(a.created_at));
            v
        })
        .collect();
    Ok(crate::web::error::ok(StatusCode::OK, serde_json::json!({ "media": media, "nextCursor": next })))
}
