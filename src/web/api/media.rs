//! `GET /api/media/:id`: the full-quality original, through a fresh short-lived URL (audited).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::app::AppState;
use crate::audit;
use crate::db::{self, attachments::AttachmentRow, Conn};
use crate::domain::{AttachmentId, AttachmentStatus};
use crate::web::auth::{ClientAddr, Leader};
use crate::web::error::{ApiError, ApiResult};
use crate::web::extract::AppPath;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/media", get(library))
        .route("/api/media/export", axum::routing::post(export))
        .route("/api/media/{id}", get(open))
        .route("/api/media/{id}/preview/{size}", get(preview))
}

/// `GET /api/media/:id/preview/:size` (`small` or `large`): the derived JPEG, streamed with a
/// private cache lifetime. Previews are not audited (a thread shows dozens); opening the
/// original is.
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

async fn open(
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

#[derive(serde::Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct LibraryQuery {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub member_id: Option<String>,
    pub conversation_id: Option<String>,
    pub cursor: Option<String>,
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

/// `GET /api/media`: the church's stored files, newest first, filtered.
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
    let media: Vec<serde_json::Value> = rows
        .iter()
        .map(|a| {
            let mut v = serde_json::to_value(super::views::attachment(a)).unwrap_or_default();
            v["conversationId"] = serde_json::json!(a.conversation_id);
            v["messageId"] = serde_json::json!(a.message_id);
            v["createdAt"] = serde_json::json!(super::views::timestamp(a.created_at));
            v
        })
        .collect();
    Ok(crate::web::error::ok(StatusCode::OK, serde_json::json!({ "media": media, "nextCursor": next })))
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

#[derive(serde::Deserialize)]
pub struct ExportRequest {
    pub ids: Option<Vec<AttachmentId>>,
    pub filter: Option<LibraryQuery>,
}

/// `POST /api/media/export`: the chosen originals (by id, or all matching a filter) as one ZIP,
/// streamed as it is built. Audited with the files it contained.
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
