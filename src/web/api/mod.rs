//! The JSON API, by resource.

use axum::Router;

use crate::app::AppState;

pub mod auth;
pub mod conversations;
pub mod media;
pub mod replies;
pub mod views;
pub mod webhooks;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(conversations::router())
        .merge(replies::router())
        .merge(media::router())
        .merge(webhooks::router())
}

/// `limit` of a list: 50 by default, 1 to 200.
pub fn page_limit(requested: Option<i64>) -> Result<i64, super::error::ApiError> {
    match requested {
        None => Ok(50),
        Some(n) if n >= 1 => Ok(n.min(200)),
        Some(_) => Err(super::error::ApiError::bad_request("limit must be between 1 and 200")),
    }
}
