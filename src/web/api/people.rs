//! Members' names, and the church's leaders (managed by its admins).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::views;
use crate::app::AppState;
use crate::audit;
use crate::clock;
use crate::db::{self, UniqueExt};
use crate::domain::{ChurchId, LeaderId, MemberId};
use crate::web::auth::{ClientAddr, Leader};
use crate::web::error::{ok, ApiError, ApiResult};
use crate::web::extract::{AppJson, AppPath};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/members/{id}", patch(name_member).delete(erase_member))
        .route("/api/members/{id}/export", get(export_member))
        .route("/api/leaders", get(list_leaders).post(add_leader))
        .route("/api/leaders/{id}", delete(remove_leader))
        .route("/api/leaders/{id}/password", post(reset_password))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NameBody {
    first_name: Option<String>,
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

/// Erases a member on request (admins): messages, files (from the store too) and number. The
/// audit row that records it names no number.
async fn erase_member(
    State(state): State<AppState>,
    leader: Leader,
    addr: ClientAddr,
    AppPath(id): AppPath<MemberId>,
) -> ApiResult<Response> {
    let files = erase(&state, &leader, addr, id).await?;
    Ok(ok(StatusCode::OK, serde_json::json!({ "filesDeleted": files })))
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LeaderView {
    id: LeaderId,
    email: String,
    church_id: ChurchId,
    is_admin: bool,
    created_at: String,
    last_login_at: Option<String>,
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

async fn list_leaders(State(state): State<AppState>, leader: Leader) -> ApiResult<Response> {
    admin_only(&leader)?;
    let mut pooled = state.db.acquire().await?;
    let rows = db::leaders::list(&mut pooled.conn(), leader.church).await?;
    let leaders: Vec<LeaderView> = rows.iter().map(leader_view).collect();
    Ok(ok(StatusCode::OK, serde_json::json!({ "leaders": leaders })))
}

#[derive(Deserialize)]
pub struct NewLeader {
    email: String,
    password: String,
    #[serde(default)]
    admin: bool,
}

async fn add_leader(
    State(state): State<AppState>,
    leader: Leader,
    addr: ClientAddr,
    AppJson(body): AppJson<NewLeader>,
) -> ApiResult<Response> {
    admin_only(&leader)?;
    let email =
        crate::cli::normalise_email(&body.email).map_err(|_| ApiError::bad_request("email is not an email address"))?;
    crate::crypto::password::check_strength(&body.password)
        .map_err(|e| ApiError::bad_request(format!("password: {e}")))?;
    let pw = body.password.clone();
    let hash = tokio::task::spawn_blocking(move || crate::crypto::password::hash(&pw))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("password hashing panicked: {e}")))?
        .map_err(|e| ApiError::Internal(e.into()))?;
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
        .on_unique(|| ApiError::Conflict(format!("a leader with email {email} already exists")))?;
    audit::record(c, audit::Entry::leader(leader.church, leader.id, "leader.add", addr).subject("leader", row.id.0))
        .await?;
    Ok(ok(StatusCode::CREATED, leader_view(&row)))
}

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
    Ok(ok(StatusCode::OK, serde_json::json!({})))
}

#[derive(Deserialize)]
pub struct ResetPassword {
    new: String,
}

/// An admin sets another leader's password (forgotten passwords): every session of that leader
/// ends. Audited without the password. Admins change their own with `POST /api/auth/password`,
/// which asks for the current one.
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
    let pw = body.new.clone();
    let hash = tokio::task::spawn_blocking(move || crate::crypto::password::hash(&pw))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("password hashing panicked: {e}")))?
        .map_err(|e| ApiError::Internal(e.into()))?;
    let mut tx = state.db.begin().await?;
    let c = &mut tx.conn();
    db::leaders::set_password(c, leader.church, id, &hash).await?.ok_or(ApiError::NotFound)?;
    audit::record(
        c,
        audit::Entry::leader(leader.church, leader.id, "leader.password_reset", addr).subject("leader", id.0),
    )
    .await?;
    tx.commit().await?;
    Ok(ok(StatusCode::OK, serde_json::json!({})))
}

/// Everything kept about a member as one ZIP, streamed (admins). Audited with the number of
/// files, never the number.
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
    let export = crate::member_export::build(&state, leader.church, id, clock::now())
        .await
        .map_err(|e| match e {
            crate::member_export::ExportError::Db(e) => ApiError::Database(e),
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
