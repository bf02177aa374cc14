//! `GET /api/media/:id`: the full-quality original, through a fresh short-lived URL (audited).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::db::{self, attachments::AttachmentRow, Conn};
use crate::domain::{AttachmentId, AttachmentStatus, ConversationId, MediaKind, MessageId};
use crate::flows::audit;
use crate::web::api::views::AttachmentView;
use crate::web::auth::{ClientAddr, Leader};
use crate::web::error::{ApiError, ApiResult, Envelope, ErrorBody};
use crate::web::extract::AppPath;
use crate::web::openapi::{
    BadRequest, FileBytes, Forbidden, NotFound, PayloadTooLarge, ServerError, Unauthorized, UnsupportedMediaType,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(library))
        .routes(routes!(export))
        .routes(routes!(open_original))
        .routes(routes!(preview))
}

/// A file's preview
///
/// The derived JPEG (`small`: longest side 320 px, `large`: 1280 px), streamed with a private
/// cache lifetime. Previews are not audited (a thread shows dozens); opening the original is.
#[utoipa::path(
    get,
    path = "/api/media/{id}/preview/{size}",
    tag = "media",
    params(
        ("id" = AttachmentId, Path, description = "The attachment"),
        ("size" = String, Path, description = "`small` or `large`")
    ),
    responses(
        (status = 200, description = "The preview", content_type = "image/jpeg", body = FileBytes),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such file, or it has no preview", body = ErrorBody),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn preview(
    State(state): State<AppState>,
    leader: Leader,
    AppPath((id, size)): AppPath<(AttachmentId, String)>,
) -> ApiResult<Response> {
    let size = crate::media::preview::Size::parse(&size)
        .ok_or_else(|| ApiError::bad_request("size must be \"small\" or \"large\""))?;
    let a = {
        let mut pooled = state.db.acquire().await?;
        db::attachments::get(&mut pooled.conn(), leader.church, id).await?.ok_or(ApiError::NotFound)?
    };
    let key = match size {
        crate::media::preview::Size::Small => a.preview_small_key.as_deref(),
        crate::media::preview::Size::Large => a.preview_large_key.as_deref(),
    };
    let Some(key) = key.filter(|_| a.status == "stored") else {
        return Err(ApiError::Status(StatusCode::NOT_FOUND, "this file has no preview".into()));
    };
    let (len, stream) = match state.store.read(key).await {
        Ok(found) => found,
        Err(crate::media::store::StoreError::Store(object_store::Error::NotFound { .. })) => {
            return Err(ApiError::Status(StatusCode::NOT_FOUND, "this file has no preview".into()));
        }
        Err(e) => return Err(ApiError::Internal(e.into())),
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
            (header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=86400, immutable")),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// A file's original
///
/// Redirects to a fresh, short-lived URL of the full-quality original (`MEDIA_VIEW_TTL_SECONDS`);
/// every view is audited.
#[utoipa::path(
    get,
    path = "/api/media/{id}",
    tag = "media",
    params(("id" = AttachmentId, Path, description = "The attachment")),
    responses(
        (status = 302, description = "To the original", headers(("location" = String, description = "A presigned URL"))),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such file, or it could not be stored (the reason is given)", body = ErrorBody),
        (status = 409, description = "The file is not stored yet", body = ErrorBody),
        (status = 410, description = "The file was removed (retention)", body = ErrorBody),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn open_original(
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

/// Which files of the library: all filters are optional and combine.
#[derive(serde::Deserialize, Default, Clone, Debug, IntoParams, ToSchema)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
#[schema(as = LibraryFilter)]
pub struct LibraryQuery {
    /// Files of one kind.
    #[serde(rename = "type")]
    #[param(value_type = Option<MediaKind>, nullable = false)]
    #[schema(value_type = Option<MediaKind>)]
    pub kind: Option<String>,
    /// From this day (`YYYY-MM-DD`) or time (RFC 3339) on.
    #[param(nullable = false)]
    pub from: Option<String>,
    /// Up to this day (included) or time.
    #[param(nullable = false)]
    pub to: Option<String>,
    /// One member's files.
    #[param(value_type = Option<uuid::Uuid>, nullable = false)]
    #[schema(value_type = Option<uuid::Uuid>)]
    pub member_id: Option<String>,
    /// One conversation's files.
    #[param(value_type = Option<uuid::Uuid>, nullable = false)]
    #[schema(value_type = Option<uuid::Uuid>)]
    pub conversation_id: Option<String>,
    /// The `nextCursor` of the previous page.
    #[param(nullable = false)]
    pub cursor: Option<String>,
    /// Files per page: 50 by default, at most 200.
    #[param(minimum = 1, nullable = false)]
    pub limit: Option<i64>,
}

/// A date (`2026-11-27`, the whole day) or an RFC 3339 time; `end` moves a date to its next day.
fn parse_when(field: &str, value: &str, end: bool) -> ApiResult<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let day = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| ApiError::bad_request(format!("{field} must be a date (YYYY-MM-DD) or an RFC 3339 time")))?;
    let day = if end { day.succ_opt().unwrap_or(day) } else { day };
    Ok(day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

/// A stored file of the library, with where it belongs.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LibraryItem {
    #[serde(flatten)]
    attachment: AttachmentView,
    conversation_id: ConversationId,
    message_id: MessageId,
    #[schema(format = DateTime)]
    created_at: String,
}

/// A page of the media library, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LibraryPage {
    media: Vec<LibraryItem>,
    /// The cursor of the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// The media library
///
/// The church's stored files, newest first, filtered by kind, dates, member or conversation.
#[utoipa::path(
    get,
    path = "/api/media",
    tag = "media",
    params(LibraryQuery),
    responses(
        (status = 200, description = "A page of files", body = Envelope<LibraryPage>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn library(
    State(state): State<AppState>,
    leader: Leader,
    crate::web::extract::AppQuery(q): crate::web::extract::AppQuery<LibraryQuery>,
) -> ApiResult<Response> {
    let limit = super::page_limit(q.limit)?;
    let filter = library_filter(&q)?;
    let before = parse_id("cursor", q.cursor.as_deref())?.map(AttachmentId);
    let mut pooled = state.db.acquire().await?;
    let mut rows = db::attachments::library(&mut pooled.conn(), leader.church, &filter, before, limit + 1).await?;
    let next = super::next_page(&mut rows, limit, |a| a.id.to_string());
    let media = rows
        .iter()
        .map(|a| LibraryItem {
            attachment: super::views::attachment(a),
            conversation_id: a.conversation_id,
            message_id: a.message_id,
            created_at: super::views::timestamp(a.created_at),
        })
        .collect();
    Ok(crate::web::error::ok(StatusCode::OK, LibraryPage { media, next_cursor: next }))
}

pub(crate) fn parse_id(field: &str, v: Option<&str>) -> ApiResult<Option<uuid::Uuid>> {
    v.filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| ApiError::bad_request(format!("{field} is not an id"))))
        .transpose()
}

pub(crate) fn library_filter(q: &LibraryQuery) -> ApiResult<db::attachments::LibraryFilter> {
    let media_type = match q.kind.as_deref().filter(|k| !k.is_empty()) {
        Some(k) if crate::domain::MediaKind::parse(k).is_some() => Some(k.to_owned()),
        Some(_) => return Err(ApiError::bad_request("type must be image, video, audio or document")),
        None => None,
    };
    Ok(db::attachments::LibraryFilter {
        media_type,
        from: q.from.as_deref().filter(|s| !s.is_empty()).map(|v| parse_when("from", v, false)).transpose()?,
        until: q.to.as_deref().filter(|s| !s.is_empty()).map(|v| parse_when("to", v, true)).transpose()?,
        conversation: parse_id("conversationId", q.conversation_id.as_deref())?.map(crate::domain::ConversationId),
        member: parse_id("memberId", q.member_id.as_deref())?.map(crate::domain::MemberId),
    })
}

/// How each file's member is named in exports and the library: their name, or "member 1234"
/// (the last four digits) when they have none.
pub(crate) async fn member_labels(
    c: &mut Conn<'_>,
    church: crate::domain::ChurchId,
    files: &[AttachmentRow],
) -> ApiResult<std::collections::HashMap<crate::domain::ConversationId, String>> {
    let mut member_of = std::collections::HashMap::new();
    for a in files {
        if let std::collections::hash_map::Entry::Vacant(v) = member_of.entry(a.conversation_id) {
            if let Some(row) = db::conversations::get(c, church, a.conversation_id).await? {
                let name = [row.first_name.as_deref(), row.last_name.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                v.insert(if name.trim().is_empty() { format!("member {}", row.phone_last4) } else { name });
            }
        }
    }
    Ok(member_of)
}

/// Most files one export may hold.
const EXPORT_MAX_FILES: usize = 10_000;

/// Either `ids` or `filter`.
#[derive(serde::Deserialize, ToSchema)]
pub struct ExportRequest {
    /// The files to export (stored files of the church).
    #[schema(nullable = false)]
    pub ids: Option<Vec<AttachmentId>>,
    /// Every stored file matching this filter (`cursor` and `limit` are ignored).
    #[schema(nullable = false)]
    pub filter: Option<LibraryQuery>,
}

/// Export originals as a ZIP
///
/// The chosen originals (by id, or all matching a filter) as one ZIP, streamed as it is built,
/// entries named `{date} {member}/{file}`. Audited with the files it contained.
#[utoipa::path(
    post,
    path = "/api/media/export",
    tag = "media",
    request_body = ExportRequest,
    responses(
        (status = 200, description = "The ZIP, streamed", content_type = "application/zip", body = FileBytes,
            headers(("content-disposition" = String, description = "`attachment; filename=\"koinonia-media-{date}.zip\"`"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, description = "A chosen file is not stored", body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn export(
    State(state): State<AppState>,
    leader: Leader,
    addr: ClientAddr,
    crate::web::extract::AppJson(req): crate::web::extract::AppJson<ExportRequest>,
) -> ApiResult<Response> {
    export_zip(&state, &leader, addr, req).await
}

/// The export behind both the API and the library page's download button.
pub(crate) async fn export_zip(
    state: &AppState,
    leader: &Leader,
    addr: ClientAddr,
    req: ExportRequest,
) -> ApiResult<Response> {
    let mut pooled = state.db.acquire().await?;
    let c = &mut pooled.conn();
    let files = match (req.ids, req.filter) {
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() > EXPORT_MAX_FILES {
                return Err(ApiError::bad_request(format!("ids must name 1 to {EXPORT_MAX_FILES} files")));
            }
            let mut files = Vec::with_capacity(ids.len());
            for id in ids {
                let a = db::attachments::get(c, leader.church, id).await?.ok_or(ApiError::NotFound)?;
                if a.status != "stored" {
                    return Err(ApiError::Conflict(format!("file {id} is not stored (it is {})", a.status)));
                }
                files.push(a);
            }
            files
        }
        (None, Some(filter)) => {
            let filter = library_filter(&filter)?;
            let mut files = Vec::new();
            let mut before = None;
            loop {
                let page = db::attachments::library(c, leader.church, &filter, before, 500).await?;
                let Some(last) = page.last() else { break };
                before = Some(last.id);
                let full = page.len() < 500;
                files.extend(page);
                if files.len() > EXPORT_MAX_FILES {
                    return Err(ApiError::bad_request(format!(
                        "at most {EXPORT_MAX_FILES} files per export; narrow the filter"
                    )));
                }
                if full {
                    break;
                }
            }
            files
        }
        _ => return Err(ApiError::bad_request("give either ids or filter")),
    };
    if files.is_empty() {
        return Err(ApiError::bad_request("no stored file matches"));
    }
    let member_of = member_labels(c, leader.church, &files).await?;
    let ids: Vec<String> = files.iter().map(|a| a.id.to_string()).collect();
    audit::record(
        c,
        audit::Entry::leader(leader.church, leader.id, "media.export", addr)
            .detail(serde_json::json!({ "files": ids })),
    )
    .await?;
    drop(pooled);
    let entries = crate::media::export::entries(&files, &member_of);
    let filename = format!("koinonia-media-{}.zip", crate::clock::now().format("%Y-%m-%d"));
    let body = axum::body::Body::from_stream(crate::media::export::stream(state.store.clone(), entries));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/zip")),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}
