//! The JSON API, by resource.

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub mod audit_log;
pub mod auth;
pub mod conversations;
pub mod media;
pub mod people;
pub mod push;
pub mod replies;
pub mod views;
pub mod webhooks;

/// Every JSON route, each registered with its documentation (see [`crate::web::openapi`]).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(audit_log::router())
        .merge(auth::router())
        .merge(conversations::router())
        .merge(replies::router())
        .merge(media::router())
        .merge(people::router())
        .merge(push::router())
        .merge(webhooks::router())
        .merge(crate::web::openapi::router())
}

/// `limit` of a list: 50 by default, 1 to 200.
pub fn page_limit(requested: Option<i64>) -> Result<i64, super::error::ApiError> {
    match requested {
        None => Ok(50),
        Some(n) if n >= 1 => Ok(n.min(200)),
        Some(_) => Err(super::error::ApiError::bad_request("limit must be between 1 and 200")),
    }
}

/// Rows were fetched with `limit + 1`: when the extra one came, it is dropped and the cursor of
/// the last kept row is the next page's.
pub fn next_page<T>(rows: &mut Vec<T>, limit: i64, cursor: impl Fn(&T) -> String) -> Option<String> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(cursor)
    } else {
        None
    }
}
