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
    Router::new().route("/api/media/{id}", get(open))
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
