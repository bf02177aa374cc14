//! `GET /m/:token`: the link a member gets for a file too large for MMS. The token (128 random
//! bits) is the credential; each open is audited and redirected to a fresh short-lived URL of
//! the original, never recompressed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
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
    let entry = audit::Entry {
        church: Some(a.church_id),
        actor_type: "member",
        actor_id: None,
        action: "media.link_open",
        subject: None,
        client: addr,
        detail: None,
    };
    crate::web::api::media::redirect_to_original(&state, c, &a, entry).await
}
