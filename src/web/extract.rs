//! Extractors whose rejections answer in the API's JSON envelope.
//!
//! `AppJson` and `AppQuery` also refuse text holding a NUL character: PostgreSQL cannot store
//! one (a query with it fails), so such a request is refused with 400 on either database
//! rather than failing with 500 on one of them.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

const NUL_REFUSED: &str = "text must not contain NUL characters";

/// `Json<T>` that rejects with [`ApiError`].
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())) {
            return Err(ApiError::UnsupportedMediaType("expected a JSON body (Content-Type: application/json)".into()));
        }
        let bytes = Bytes::from_request(req, state).await?;
        if json_has_nul(&bytes) {
            return Err(ApiError::bad_request(NUL_REFUSED));
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(Self(value))
    }
}

/// `application/json` or any `application/…+json`, as axum's `Json` accepts.
fn is_json(content_type: Option<&str>) -> bool {
    let Some(essence) = content_type.and_then(|c| c.split(';').next()) else { return false };
    let essence = essence.trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Whether a JSON text holds a string with a NUL (`\u0000`; a raw NUL is not valid JSON).
fn json_has_nul(text: &[u8]) -> bool {
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\\' {
            if text.get(i + 1) == Some(&b'u') && text.get(i + 2..i + 6) == Some(b"0000".as_slice()) {
                return true;
            }
            i += 2; // an escape: `\\` must not start another
        } else {
            i += 1;
        }
    }
    false
}

/// `Query<T>` that rejects with [`ApiError`].
pub struct AppQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // A NUL can only be written `%00` in a query string.
        if parts.uri.query().is_some_and(|q| q.contains("%00")) {
            return Err(ApiError::bad_request(NUL_REFUSED));
        }
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// `Path<T>` that rejects with [`ApiError`] (a malformed id is a 404).
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct AppPath<T>(pub T);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_in_json_text_is_found_through_escapes() {
        assert!(json_has_nul(br#"{"a": "x\u0000y"}"#));
        assert!(!json_has_nul(br#"{"a": "x\\u0000y"}"#), "an escaped backslash, then text");
        assert!(json_has_nul(br#"{"a": "x\\\u0000"}"#));
        assert!(!json_has_nul(br#"{"a": "\u00e9\n"}"#));
        assert!(!json_has_nul(br#"{"a": "ends with \"#));
    }

    #[test]
    fn json_content_types() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        assert!(is_json(Some("application/merge-patch+json")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(None));
    }
}
