//! The leaders' dashboard, rendered by koinonia itself (askama templates compiled into the
//! binary, a little progressive-enhancement JavaScript, no build step). Pages call the same
//! loaders and flows as the JSON API; nothing here holds business rules of its own.

use axum::http::{header, HeaderValue};
use axum::Router;

use crate::state::AppState;

pub mod assets;
pub mod events;
pub mod library;
pub mod members;
pub mod pages;
pub mod sandbox;
pub mod session;
pub mod settings;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(pages::router())
        .merge(library::router())
        .merge(members::router())
        .merge(events::router())
        .merge(sandbox::router())
        .merge(settings::router())
        .merge(assets::router())
}

/// The top bar of every signed-in page: the same links everywhere, by role.
pub struct Nav {
    pub church_name: String,
    pub email: String,
    /// Sent back by the page's forms and requests.
    pub csrf: String,
    pub sandbox: bool,
    pub is_admin: bool,
    /// The page it is on: `inbox`, `library`, `settings` or `system`.
    pub current: &'static str,
}

impl Nav {
    pub fn of(state: &AppState, session: &session::PageSession, current: &'static str) -> Self {
        Self {
            church_name: session.church_name.clone(),
            email: session.leader.email.clone(),
            csrf: session.csrf.clone(),
            sandbox: state.carrier.is_sandbox(),
            is_admin: session.leader.is_admin,
            current,
        }
    }
}

/// Content-Security-Policy of the pages: everything from koinonia itself, media also from the
/// store's presigned URLs (another origin on S3).
pub fn content_security_policy(state: &AppState) -> HeaderValue {
    let media = match &state.config.s3 {
        Some(s3) => match &s3.endpoint {
            Some(e) => e.origin().ascii_serialization(),
            None => {
                format!("https://{}.s3.{}.amazonaws.com https://s3.{}.amazonaws.com", s3.bucket, s3.region, s3.region)
            }
        },
        None => String::new(),
    };
    let policy = format!(
        "default-src 'self'; img-src 'self' blob: data: {media}; media-src 'self' blob: {media}; \
         style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; \
         frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"))
}

/// Headers every page carries.
pub fn page_headers(state: &AppState) -> [(header::HeaderName, HeaderValue); 3] {
    [
        (header::CONTENT_SECURITY_POLICY, content_security_policy(state)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ]
}
