//! Cross-site request forgery: a browser sends the session cookie on its own, so every state
//! change made with the cookie also carries the page's CSRF token — an HMAC of the session
//! token, so nothing needs storing. The API reads it from the `x-csrf-token` header
//! ([`crate::web::auth`]); the pages' forms send it as the `csrf` field ([`CsrfForm`]).

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::auth::{cookie, SESSION_COOKIE};
use super::error::ApiError;
use crate::state::AppState;

/// The CSRF token of a session.
pub fn token(state: &AppState, session_token: &str) -> String {
    state.csrf.sign(&[session_token])
}

/// Whether `sent` is the CSRF token of `session_token`: 403 if not.
pub fn verify(state: &AppState, session_token: &str, sent: &str) -> Result<(), ApiError> {
    if state.csrf.verify(&[session_token], sent) {
        Ok(())
    } else {
        Err(ApiError::Status(StatusCode::FORBIDDEN, "missing or invalid CSRF token; reload the page".into()))
    }
}

#[derive(Deserialize)]
struct WithToken<T> {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    form: T,
}

/// A page's form (`application/x-www-form-urlencoded`) whose `csrf` field matches the session
/// cookie of the request: 403 otherwise, before the handler runs. Without a session cookie the
/// form is passed on (the handler's session check answers).
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let session = cookie(req.headers(), SESSION_COOKIE);
        let axum::Form(WithToken { csrf, form }) = axum::Form::<WithToken<T>>::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("invalid form: {}", e.body_text())))?;
        if let Some(session) = session {
            verify(state, &session, &csrf)?;
        }
        Ok(Self(form))
    }
}

/// A form with nothing but its CSRF token.
#[derive(Deserialize)]
pub struct NoFields {}
