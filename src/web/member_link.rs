//! `GET /m/:token`: the link a member gets for a file too large for MMS. The token (128 random
//! bits) is the credential; each open is audited and redirected to a fresh short-lived URL of
//! the original, never recompressed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::db;
use crate::flows::audit;
use crate::web::auth::ClientAddr;
use crate::web::error::{ApiError, ApiResult, ErrorBody};
use crate::web::extract::AppPath;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(open_member_link))
}

/// A member's link to a file
///
/// The link a member gets for a file too large for MMS (or to a number outside the US and
/// Canada): redirects to a fresh, short-lived URL of the untouched original. Each open is audited.
#[utoipa::path(
    get,
    path = "/m/{token}",
    tag = "media",
    params(("token" = String, Path, description = "The link's token (22 characters, base64url)")),
    responses(
        (status = 302, description = "To the original", headers(("location" = String, description = "A presigned URL"))),
        (status = 404, description = "No such link", body = ErrorBody),
        (status = 410, description = "The file was removed (retention)", body = ErrorBody),
        (status = 500, response = crate::web::openapi::ServerError)
    )
)]
async fn open_member_link(
    State(state): State<AppState>,
    addr: ClientAddr,
    AppPath(token): AppPath<String>,
) -> ApiResult<Response> {
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
