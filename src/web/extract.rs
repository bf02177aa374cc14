//! Extractors whose rejections answer in the API's JSON envelope.

use axum::extract::{FromRequest, FromRequestParts};

use super::error::ApiError;

/// `Json<T>` that rejects with [`ApiError`].
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

/// `Query<T>` that rejects with [`ApiError`].
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct AppQuery<T>(pub T);

/// `Path<T>` that rejects with [`ApiError`] (a malformed id is a 404).
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct AppPath<T>(pub T);
