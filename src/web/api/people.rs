//! Members' names, and the church's leaders (managed by its admins).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views;
use crate::db;
use crate::domain::{ChurchId, LeaderId, MemberId};
use crate::flows::{accounts, members};
use crate::state::AppState;
use crate::web::api::auth::Empty;
use crate::web::auth::Leader;
use crate::web::error::{ok, ApiResult, Envelope, ErrorBody};
use crate::web::extract::{AppJson, AppPath};
use crate::web::openapi::{
    BadRequest, Busy, FileBytes, Forbidden, NotFound, PayloadTooLarge, ServerError, Unauthorized, UnsupportedMediaType,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(name_member, erase_member))
        .routes(routes!(export_member))
        .routes(routes!(list_leaders, add_leader))
        .routes(routes!(remove_leader))
        .routes(routes!(reset_password))
}

/// A member's name; an empty or missing part clears it.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NameBody {
    /// At most 100 characters, no control characters.
    first_name: Option<String>,
    /// At most 100 characters, no control characters.
    last_name: Option<String>,
}

/// Name a member
#[utoipa::path(
    patch,
    path = "/api/members/{id}",
    tag = "people",
    params(("id" = MemberId, Path, description = "The member")),
    request_body = NameBody,
    responses(
        (status = 200, description = "The member, named", body = Envelope<views::MemberView>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn name_member(
    State(state): State<AppState>,
    leader: Leader,
    AppPath(id): AppPath<MemberId>,
    AppJson(body): AppJson<NameBody>,
) -> ApiResult<Response> {
    let member =
        members::name(&state.members(), &leader.actor(), id, body.first_name.as_deref(), body.last_name.as_deref())
            .await?;
    Ok(ok(StatusCode::OK, views::member_row(&member)))
}

/// What an erasure removed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Erased {
    /// Files deleted from the store.
    files_deleted: usize,
}

/// Erase a member
///
/// Erases a member on request (admins): messages, files (from the store too) and number. The
/// audit row that records it names no number.
#[utoipa::path(
    delete,
    path = "/api/members/{id}",
    tag = "people",
    params(("id" = MemberId, Path, description = "The member")),
    responses(
        (status = 200, description = "Erased", body = Envelope<Erased>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn erase_member(
    State(state): State<AppState>,
    leader: Leader,
    AppPath(id): AppPath<MemberId>,
) -> ApiResult<Response> {
    let files_deleted = members::erase(&state.members(), &leader.actor(), id).await?;
    Ok(ok(StatusCode::OK, Erased { files_deleted }))
}

/// A leader of the church.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Leader)]
struct LeaderView {
    id: LeaderId,
    email: String,
    church_id: ChurchId,
    is_admin: bool,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(required = true, format = DateTime)]
    last_login_at: Option<String>,
}

/// The church's leaders.
#[derive(Serialize, ToSchema)]
struct LeaderList {
    leaders: Vec<LeaderView>,
}

fn leader_view(l: &db::leaders::LeaderRow) -> LeaderView {
    LeaderView {
        id: l.id,
        email: l.email.clone(),
        church_id: l.church_id,
        is_admin: l.is_admin,
        created_at: views::timestamp(l.created_at),
        last_login_at: l.last_login_at.map(views::timestamp),
    }
}

/// The church's leaders (admins)
#[utoipa::path(
    get,
    path = "/api/leaders",
    tag = "people",
    responses(
        (status = 200, description = "Every leader of the church", body = Envelope<LeaderList>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn list_leaders(State(state): State<AppState>, leader: Leader) -> ApiResult<Response> {
    let rows = accounts::leaders(&state.accounts(), &leader.actor()).await?;
    let leaders: Vec<LeaderView> = rows.iter().map(leader_view).collect();
    Ok(ok(StatusCode::OK, LeaderList { leaders }))
}

#[derive(Deserialize, ToSchema)]
pub struct NewLeader {
    email: String,
    /// One that is too short or too long is refused with 400.
    password: String,
    /// Whether the new leader is an admin (false by default).
    #[serde(default)]
    admin: bool,
}

/// Add a leader (admins)
#[utoipa::path(
    post,
    path = "/api/leaders",
    tag = "people",
    request_body = NewLeader,
    responses(
        (status = 201, description = "The new leader", body = Envelope<LeaderView>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, description = "A leader with that email exists", body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = ServerError),
        (status = 503, response = Busy)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn add_leader(
    State(state): State<AppState>,
    leader: Leader,
    AppJson(body): AppJson<NewLeader>,
) -> ApiResult<Response> {
    let row = accounts::add_leader(&state.accounts(), &leader.actor(), &body.email, &body.password, body.admin).await?;
    Ok(ok(StatusCode::CREATED, leader_view(&row)))
}

/// Remove a leader (admins)
///
/// The church's last admin cannot be removed.
#[utoipa::path(
    delete,
    path = "/api/leaders/{id}",
    tag = "people",
    params(("id" = LeaderId, Path, description = "The leader")),
    responses(
        (status = 200, description = "Removed", body = Envelope<Empty>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, description = "The church's last admin", body = ErrorBody),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn remove_leader(
    State(state): State<AppState>,
    leader: Leader,
    AppPath(id): AppPath<LeaderId>,
) -> ApiResult<Response> {
    accounts::remove_leader(&state.accounts(), &leader.actor(), id).await?;
    Ok(ok(StatusCode::OK, Empty {}))
}

/// A leader's new password.
#[derive(Deserialize, ToSchema)]
pub struct ResetPassword {
    /// The same length rules as `POST /api/auth/password`.
    new: String,
}

/// Reset a leader's password
///
/// An admin sets another leader's password (forgotten passwords): every session of that leader
/// ends. Audited without the password. Admins change their own with `POST /api/auth/password`,
/// which asks for the current one.
#[utoipa::path(
    post,
    path = "/api/leaders/{id}/password",
    tag = "people",
    params(("id" = LeaderId, Path, description = "The leader")),
    request_body = ResetPassword,
    responses(
        (status = 200, description = "Reset", body = Envelope<Empty>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = ServerError),
        (status = 503, response = Busy)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn reset_password(
    State(state): State<AppState>,
    leader: Leader,
    AppPath(id): AppPath<LeaderId>,
    AppJson(body): AppJson<ResetPassword>,
) -> ApiResult<Response> {
    accounts::reset_password(&state.accounts(), &leader.actor(), id, &body.new).await?;
    Ok(ok(StatusCode::OK, Empty {}))
}

/// Export a member's data
///
/// Everything kept about a member as one ZIP, streamed (admins): `member.json`, `messages.json`,
/// `messages.txt` and the original files under `media/`. Audited with the number of files,
/// never the number.
#[utoipa::path(
    get,
    path = "/api/members/{id}/export",
    tag = "people",
    params(("id" = MemberId, Path, description = "The member")),
    responses(
        (status = 200, description = "The ZIP, streamed", content_type = "application/zip", body = FileBytes,
            headers(("content-disposition" = String, description = "`attachment; filename=\"…\"`"))),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn export_member(
    State(state): State<AppState>,
    leader: Leader,
    AppPath(id): AppPath<MemberId>,
) -> ApiResult<Response> {
    let export = members::export(&state.members(), &leader.actor(), id).await?;
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", export.file_name))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment; filename=\"koinonia-member.zip\""));
    let body = axum::body::Body::from_stream(crate::media::export::stream_with(
        state.store.clone(),
        export.inline,
        export.media,
    ));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/zip")),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}
