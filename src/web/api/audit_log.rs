//! `GET /api/audit`: the church's audit log, newest first; `PATCH /api/attachments/:id`: keep a
//! file past retention.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::page_limit;
use crate::domain::AttachmentId;
use crate::flows::audit;
use crate::state::AppState;
use crate::web::api::views::AttachmentView;
use crate::web::auth::Leader;
use crate::web::error::{ok, ApiError, ApiResult, Envelope};
use crate::web::extract::{AppJson, AppPath, AppQuery};
use crate::web::openapi::{
    BadRequest, Forbidden, NotFound, PayloadTooLarge, ServerError, Unauthorized, UnsupportedMediaType,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit)).routes(routes!(keep))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries per page: 50 by default, at most 200.
    #[param(minimum = 1, nullable = false)]
    limit: Option<i64>,
    /// The `nextCursor` of the previous page.
    #[param(nullable = false)]
    cursor: Option<String>,
}

/// One audited action.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AuditEntry)]
struct EntryView {
    id: uuid::Uuid,
    /// `leader`, `member` or `system`.
    actor_type: String,
    #[schema(required = true)]
    actor_id: Option<uuid::Uuid>,
    #[schema(required = true)]
    actor_email: Option<String>,
    /// What was done, e.g. `media.view`, `leader.login`, `member.erase`.
    action: String,
    #[schema(required = true)]
    subject_type: Option<String>,
    #[schema(required = true)]
    subject_id: Option<uuid::Uuid>,
    #[schema(required = true)]
    client_addr: Option<String>,
    /// Details of the action (never a phone number).
    #[schema(required = true)]
    detail: Option<serde_json::Value>,
    #[schema(format = DateTime)]
    created_at: String,
}

/// A page of the audit log, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AuditPage {
    entries: Vec<EntryView>,
    /// The cursor of the next (older) page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// The audit log
///
/// The church's audit log, newest first: media views and deletions, logins, changes of leaders
/// and members.
#[utoipa::path(
    get,
    path = "/api/audit",
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of entries", body = Envelope<AuditPage>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn list_audit(
    State(state): State<AppState>,
    leader: Leader,
    AppQuery(q): AppQuery<AuditQuery>,
) -> ApiResult<Response> {
    let limit = page_limit(q.limit)?;
    let page = audit::page(&state.db, leader.church, q.cursor.as_deref(), limit)
        .await?
        .ok_or_else(|| ApiError::bad_request("invalid cursor"))?;
    let entries: Vec<EntryView> = page
        .items
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
    Ok(ok(StatusCode::OK, AuditPage { entries, next_cursor: page.next_cursor }))
}

#[derive(Deserialize, ToSchema)]
pub struct KeepBody {
    /// `true` exempts the file from retention; `false` lets retention delete it again.
    keep: bool,
}

/// Keep a file past retention
///
/// Marks an attachment as exempt from the retention sweep, or not (audited).
#[utoipa::path(
    patch,
    path = "/api/attachments/{id}",
    tag = "media",
    params(("id" = AttachmentId, Path, description = "The attachment")),
    request_body = KeepBody,
    responses(
        (status = 200, description = "The attachment as it is now", body = Envelope<AttachmentView>),
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
async fn keep(
    State(state): State<AppState>,
    leader: Leader,
    AppPath(id): AppPath<AttachmentId>,
    AppJson(body): AppJson<KeepBody>,
) -> ApiResult<Response> {
    let row = crate::flows::library::keep(&state.library(), &leader.actor(), id, body.keep).await?;
    Ok(ok(StatusCode::OK, super::views::attachment(&row)))
}
