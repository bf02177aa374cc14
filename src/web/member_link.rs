//! `GET /m/:token`: the link a member gets for a file too large for MMS. The token (128 random
//! bits) is the credential; each open is audited and redirected to a fresh short-lived URL of
//! the original, never recompressed.

use axum::extract::State;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::ClientAddr;
use crate::state::AppState;
use crate::web::error::{ApiResult, ErrorBody};
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
    let url = crate::flows::library::open_link(&state.library(), &token, addr).await?;
    crate::web::api::media::redirect(&url)
}
