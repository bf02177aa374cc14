//! `GET /api/audit`: the church's audit log, newest first; `PATCH /api/attachments/:id`: keep a
//! file past retention.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, patch};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::{next_page, page_limit};
use crate::app::AppState;
use crate::audit;
use crate::db;
use crate::domain::AttachmentId;
use crate::web::auth::{ClientAddr, Leader};
use crate::web::error::{ok, ApiError, ApiResult};
use crate::web::extract::{AppJson, AppPath, AppQuery};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/audit", get(list)).route("/api/attachments/{id}", patch(keep))
}

#[derive(Deserialize)]
pub struct AuditQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EntryView {
    id: uuid::Uuid,
    actor_type: String,
    actor_id: Option<uuid::Uuid>,
    actor_email: Option<String>,
    action: String,
    subject_type: Option<String>,
    subject_id: Option<uuid::Uuid>,
    client_addr: Option<String>,
    detail: Option<serde_json::Value>,
    created_at: String,
}

async fn list(State(state): State<AppState>, leader: Leader, AppQuery(q): AppQuery<AuditQuery>) -> ApiResult<Response> {
    let limit = page_limit(q.limit)?;
    let before = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(c.parse::<uuid::Uuid>().map_err(|_| ApiError::bad_request("invalid cursor"))?),
        None => None,
    };
    let mut pooled = state.db.acquire().await?;
    let mut rows = db::audit::page_with_actor(&mut pooled.conn(), leader.church, before, limit + 1).await?;
    let next = next_page(&mut rows, limit, |(r, _)| r.id.to_string());
    let entries: Vec<EntryView> = rows
        .into_iter()
        .map(|(r, email)| EntryView {
            id: r.id,
            actor_type: r.actor_type,
            actor_id: r.actor_id,
            actor_email: email,
            action: r.action,
            subject_type: r.subject_type,
            subject_id: r.subject_id,
            client_addr: r.client_addr,
            detail: r.detail.map(|d| d.0),
            created_at: super::views::timestamp(r.created_at),
        })
        .collect();
    Ok(ok(StatusCode::OK, serde_json::json!({ "entries": entries, "nextCursor": next })))
}

#[derive(Deserialize)]
pub struct KeepBody {
    keep: bool,
}

async fn keep(
    State(state): State<AppState>,
    leader: Leader,
    addr: ClientAddr,
    AppPath(id): AppPath<AttachmentId>,
    AppJson(body): AppJson<KeepBody>,
) -> ApiResult<Response> {
    let mut pooled = state.db.acquire().await?;
    let c = &mut pooled.conn();
    if !db::attachments::set_keep(c, leader.church, id, body.keep).await? {
        return Err(ApiError::NotFound);
    }
    let action = if body.keep { "media.keep" } else { "media.unkeep" };
    audit::record(c, audit::Entry::leader(leader.church, leader.id, action, addr).subject("attachment", id.0)).await?;
    let row = db::attachments::get(c, leader.church, id).await?.ok_or(ApiError::NotFound)?;
    Ok(ok(StatusCode::OK, super::views::attachment(&row)))
}
