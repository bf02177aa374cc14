//! `GET /m/:token`: the link a member gets for a file too large for MMS. The token (128 random
//! bits) is the credential; each open is audited and redirected to a fresh short-lived URL of
//! the original, never recompressed.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::app::AppState;
use crate::audit;
use crate::db;
use crate::web::auth::ClientAddr;
use crate::web::error::{ApiError, ApiResult};

pub fn router() -> Router<AppState> {
    Router::new().route("/m/{token}", get(open))
}

async fn open(State(state): State<AppState>, addr: ClientAddr, Path(token): Path<String>) -> ApiResult<Response> {
    if token.len() != 22 || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(ApiError::NotFound);
    }
    let mut pooled = state.db.acquire().await?;
    let c = &mut pooled.conn();
    let a = db::attachments::find_by_link_token(c, &token).await?.ok_or(ApiError::NotFound)?;
    match a.status.as_str() {
        "stored" => {}
        "deleted" => return Err(ApiError::Status(StatusCode::GONE, "this file has been removed".into())),
        _ => return Err(ApiError::NotFound),
    }
    let (Some(key), Some(mime)) = (a.storage_key.as_deref(), a.mime_type.as_deref()) else {
        return Err(ApiError::NotFound);
    };
    let url = state
        .store
        .presign_get(key, state.config.media_view_ttl, mime, &a.name)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    audit::record(
        c,
        audit::Entry {
            church: Some(a.church_id),
            actor_type: "member",
            actor_id: None,
            action: "media.link_open",
            subject: Some(("attachment", a.id.0)),
            client: addr,
            detail: Some(serde_json::json!({ "conversationId": a.conversation_id })),
        },
    )
    .await?;
    let location = HeaderValue::from_str(&url).map_err(|e| ApiError::Internal(e.into()))?;
    Ok((
        StatusCode::FOUND,
        [(header::LOCATION, location), (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
    )
        .into_response())
}
