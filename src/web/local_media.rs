//! `GET /media/local/*key`: the local store's stand-in for a presigned S3 URL. The URL's
//! signature covers the key, expiry, type and file name; the file streams from disk.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use percent_encoding::utf8_percent_encode;
use serde::Deserialize;

use crate::media::store::StoreError;
use crate::state::AppState;
use crate::web::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new().route("/media/local/{*key}", get(serve))
}

#[derive(Deserialize)]
struct Signed {
    exp: String,
    ct: String,
    name: String,
    sig: String,
}

async fn serve(State(state): State<AppState>, Path(key): Path<String>, Query(q): Query<Signed>) -> Response {
    let now = chrono::Utc::now().timestamp();
    if !state.store.verify_local_url(&key, &q.exp, &q.ct, &q.name, &q.sig, now) {
        return ApiError::Status(StatusCode::FORBIDDEN, "link expired or invalid".into()).into_response();
    }
    match state.store.read(&key).await {
        Ok((size, stream)) => {
            let disposition = format!(
                "inline; filename=\"{}\"; filename*=UTF-8''{}",
                ascii_fallback(&q.name),
                utf8_percent_encode(&q.name, crate::media::store::COMPONENT)
            );
            let mut res = Response::new(Body::from_stream(stream.map(|r| r.map_err(std::io::Error::other))));
            let h = res.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&q.ct) {
                h.insert(header::CONTENT_TYPE, v);
            }
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=300"));
            res
        }
        Err(StoreError::Store(object_store::Error::NotFound { .. })) => ApiError::NotFound.into_response(),
        Err(e) => ApiError::Internal(e.into()).into_response(),
    }
}

/// The name with anything outside printable ASCII (and quotes) replaced, for old clients.
fn ascii_fallback(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect()
}
