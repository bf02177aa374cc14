//! `GET /api/media/:id`: the full-quality original, through a fresh short-lived URL (audited).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{AttachmentId, ConversationId, MediaKind, MessageId};
use crate::flows::library;
use crate::state::AppState;
use crate::web::api::views::AttachmentView;
use crate::web::auth::Leader;
use crate::web::error::{ApiError, ApiResult, Envelope, ErrorBody};
use crate::web::extract::AppPath;
use crate::web::openapi::{
    BadRequest, FileBytes, Forbidden, NotFound, PayloadTooLarge, ServerError, Unauthorized, UnsupportedMediaType,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(library_page))
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
    let (len, stream) = library::preview(&state.library(), leader.church, id, size).await?;
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
    AppPath(id): AppPath<AttachmentId>,
) -> ApiResult<Response> {
    let url = library::open(&state.library(), &leader.actor(), id).await?;
    redirect(&url)
}

/// 302 to a presigned URL, never cached. Shared by leaders' `/api/media/:id` and members' `/m/:token`.
pub(crate) fn redirect(url: &str) -> ApiResult<Response> {
    let location = HeaderValue::from_str(url).map_err(|e| ApiError::Internal(e.into()))?;
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
    /// From this day (`YYYY-MM-DD`, on the church's clock: its time zone) or time (RFC 3339) on.
    #[param(nullable = false)]
    pub from: Option<String>,
    /// Up to this day (included, on the church's clock) or time.
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

impl LibraryQuery {
    /// The filter part, as the flow reads it.
    pub fn filter(&self) -> library::FilterInput<'_> {
        library::FilterInput {
            kind: self.kind.as_deref(),
            from: self.from.as_deref(),
            to: self.to.as_deref(),
            member_id: self.member_id.as_deref(),
            conversation_id: self.conversation_id.as_deref(),
        }
    }
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
    operation_id = "library",
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
async fn library_page(
    State(state): State<AppState>,
    leader: Leader,
    crate::web::extract::AppQuery(q): crate::web::extract::AppQuery<LibraryQuery>,
) -> ApiResult<Response> {
    let limit = super::page_limit(q.limit)?;
    let page = library::list(&state.library(), leader.church, &q.filter(), q.cursor.as_deref(), limit).await?;
    let media = page
        .items
        .iter()
        .map(|a| LibraryItem {
            attachment: super::views::attachment(a),
            conversation_id: a.conversation_id,
            message_id: a.message_id,
            created_at: super::views::timestamp(a.created_at),
        })
        .collect();
    Ok(crate::web::error::ok(StatusCode::OK, LibraryPage { media, next_cursor: page.next_cursor }))
}

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
    crate::web::extract::AppJson(req): crate::web::extract::AppJson<ExportRequest>,
) -> ApiResult<Response> {
    let selection = match (req.ids, &req.filter) {
        (Some(ids), None) => library::Selection::Ids(ids),
        (None, Some(filter)) => library::Selection::Filter(filter.filter()),
        _ => return Err(ApiError::bad_request("give either ids or filter")),
    };
    export_zip(&state, &leader, selection).await
}

/// The export behind both the API and the library page's download button.
pub(crate) async fn export_zip(
    state: &AppState,
    leader: &Leader,
    selection: library::Selection<'_>,
) -> ApiResult<Response> {
    let export = library::export(&state.library(), &leader.actor(), selection).await?;
    let body = axum::body::Body::from_stream(crate::media::export::stream(state.store.clone(), export.entries));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/zip")),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&format!("attachment; filename=\"{}\"", export.file_name))
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}
