//! Members' names, and the church's leaders (managed by its admins).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views;
use crate::app::AppState;
use crate::clock;
use crate::db::{self, UniqueExt};
use crate::domain::{ChurchId, LeaderId, MemberId};
use crate::flows::audit;
use crate::web::api::auth::Empty;
use crate::web::auth::{ClientAddr, Leader};
use crate::web::error::{ok, ApiError, ApiResult, Envelope, ErrorBody};
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

fn clean_name(field: &str, value: Option<String>) -> ApiResult<Option<String>> {
    let Some(v) = value else { return Ok(None) };
    let v = v.trim();
    if v.chars().count() > 100 || v.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{field} must be at most 100 characters, without control characters"
        )));
    }
    Ok((!v.is_empty()).then(|| v.to_owned()))
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
    let first = clean_name("firstName", body.first_name)?;
    let last = clean_name("lastName", body.last_name)?;
    let mut pooled = state.db.acquire().await?;
    let c = &mut pooled.conn();
    if !db::members::set_name(c, leader.church, id, first.as_deref(), last.as_deref(), clock::now()).await? {
        return Err(ApiError::NotFound);
    }
    let member = db::members::get(c, leader.church, id).await?.ok_or(ApiError::NotFound)?;
    drop(pooled);
    if let Some(conversation) = {
        let mut pooled = state.db.acquire().await?;
        db::conversations::find_for_member(&mut pooled.conn(), leader.church, id).await?
    } {
        state.live.publish(leader.church, crate::live::Event::Conversation { conversation_id: conversation }).await;
    }
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
    addr: ClientAddr,
    AppPath(id): AppPath<MemberId>,
) -> ApiResult<Response> {
    let files_deleted = erase(&state, &leader, addr, id).await?;
    Ok(ok(StatusCode::OK, Erased { files_deleted }))
}

/// The erasure itself, shared by the API and the dashboard; returns how many files went.
pub async fn erase(state: &AppState, leader: &Leader, addr: ClientAddr, id: MemberId) -> ApiResult<usize> {
    if !leader.is_admin {
        return Err(ApiError::Status(StatusCode::FORBIDDEN, "only an admin of the church can erase a member".into()));
    }
    let keys = {
        let mut pooled = state.db.acquire().await?;
        let c = &mut pooled.conn();
        db::members::get(c, leader.church, id).await?.ok_or(ApiError::NotFound)?;
        db::attachments::keys_of_member(c, leader.church, id).await?
    };
    // Files first (with their previews): if the store fails, nothing is erased yet and the
    // request can be repeated.
    for (attachment, key) in &keys {
        for k in crate::media::preview::keys_with_previews(key, *attachment) {
            state.store.delete(&k).await.map_err(|e| ApiError::Internal(e.into()))?;
        }
    }
    let conversation = {
        let mut pooled = state.db.acquire().await?;
        db::conversations::find_for_member(&mut pooled.conn(), leader.church, id).await?
    };
    let mut tx = state.db.begin().await?;
    let c = &mut tx.conn();
    if !db::members::delete(c, leader.church, id).await? {
        return Err(ApiError::NotFound);
    }
    let entry = audit::Entry::leader(leader.church, leader.id, "member.erase", addr)
        .subject("member", id.0)
        .detail(serde_json::json!({ "files": keys.len() }));
    audit::record(c, entry).await?;
    tx.commit().await?;
    if let Some(conversation_id) = conversation {
        state.live.publish(leader.church, crate::live::Event::Conversation { conversation_id }).await;
    }
    Ok(keys.len())
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

fn admin_only(leader: &Leader) -> ApiResult<()> {
    if leader.is_admin {
        Ok(())
    } else {
        Err(ApiError::Status(StatusCode::FORBIDDEN, "only an admin of the church can manage its leaders".into()))
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
    admin_only(&leader)?;
    let mut pooled = state.db.acquire().await?;
    let rows = db::leaders::list(&mut pooled.conn(), leader.church).await?;
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
    addr: ClientAddr,
    AppJson(body): AppJson<NewLeader>,
) -> ApiResult<Response> {
    admin_only(&leader)?;
    let email = crate::ops::cli::normalise_email(&body.email)
        .map_err(|_| ApiError::bad_request("email is not an email address"))?;
    crate::crypto::password::check_strength(&body.password)
        .map_err(|e| ApiError::bad_request(format!("password: {e}")))?;
    let hash = state.passwords.hash(&body.password).await?;
    let row = db::leaders::LeaderRow {
        id: LeaderId::new(),
        church_id: leader.church,
        email: email.clone(),
        password_hash: hash,
        is_admin: body.admin,
        token_version: 0,
        created_at: clock::now(),
        last_login_at: None,
    };
    let mut pooled = state.db.acquire().await?;
    let c = &mut pooled.conn();
    db::leaders::insert(c, &row)
        .await
        .on_unique(|| ApiError::Conflict(format!("{email} is already a leader of this church")))?;
    audit::record(c, audit::Entry::leader(leader.church, leader.id, "leader.add", addr).subject("leader", row.id.0))
        .await?;
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
    addr: ClientAddr,
    AppPath(id): AppPath<LeaderId>,
) -> ApiResult<Response> {
    admin_only(&leader)?;
    let mut tx = state.db.begin().await?;
    let c = &mut tx.conn();
    let target = db::leaders::get(c, leader.church, id).await?.ok_or(ApiError::NotFound)?;
    if target.is_admin && db::leaders::count_admins(c, leader.church).await? <= 1 {
        return Err(ApiError::Conflict("the church's last admin cannot be removed".into()));
    }
    db::leaders::delete(c, leader.church, id).await?;
    audit::record(c, audit::Entry::leader(leader.church, leader.id, "leader.remove", addr).subject("leader", id.0))
        .await?;
    tx.commit().await?;
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
    addr: ClientAddr,
    AppPath(id): AppPath<LeaderId>,
    AppJson(body): AppJson<ResetPassword>,
) -> ApiResult<Response> {
    admin_only(&leader)?;
    {
        let mut pooled = state.db.acquire().await?;
        db::leaders::get(&mut pooled.conn(), leader.church, id).await?.ok_or(ApiError::NotFound)?;
    }
    if id == leader.id {
        return Err(ApiError::bad_request(
            "change your own password with POST /api/auth/password (it asks for the current one)",
        ));
    }
    crate::crypto::password::check_strength(&body.new)
        .map_err(|e| ApiError::bad_request(format!("new password: {e}")))?;
    let hash = state.passwords.hash(&body.new).await?;
    let mut tx = state.db.begin().await?;
    let c = &mut tx.conn();
    db::leaders::set_password(c, leader.church, id, &hash).await?.ok_or(ApiError::NotFound)?;
    audit::record(
        c,
        audit::Entry::leader(leader.church, leader.id, "leader.password_reset", addr).subject("leader", id.0),
    )
    .await?;
    tx.commit().await?;
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
    addr: ClientAddr,
    AppPath(id): AppPath<MemberId>,
) -> ApiResult<Response> {
    if !leader.is_admin {
        return Err(ApiError::Status(
            StatusCode::FORBIDDEN,
            "only an admin of the church can export a member's data".into(),
        ));
    }
    let export = crate::flows::members::export::build(&state, leader.church, id, clock::now())
        .await
        .map_err(|e| match e {
            crate::flows::members::export::ExportError::Db(e) => ApiError::Database(e),
            e => ApiError::Internal(e.into()),
        })?
        .ok_or(ApiError::NotFound)?;
    {
        let mut pooled = state.db.acquire().await?;
        let entry = audit::Entry::leader(leader.church, leader.id, "member.export", addr)
            .subject("member", id.0)
            .detail(serde_json::json!({ "files": export.media.len() }));
        audit::record(&mut pooled.conn(), entry).await?;
    }
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
