//! `POST /api/auth/login`: a leader's email and password for a session token (and cookie).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::crypto::session::SESSION_HOURS;
use crate::domain::{ChurchId, ClientAddr, LeaderId};
use crate::flows::accounts;
use crate::state::AppState;
use crate::web::auth::{Leader, SESSION_COOKIE};
use crate::web::error::{ok, ApiResult, Envelope, ErrorBody};
use crate::web::extract::AppJson;
use crate::web::openapi::{
    BadRequest, Busy, Forbidden, PayloadTooLarge, RateLimited, ServerError, Unauthorized, UnsupportedMediaType,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login)).routes(routes!(logout)).routes(routes!(change_password))
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    email: String,
    password: String,
}

/// The signed-in leader.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SessionLeader)]
pub struct LeaderView {
    pub id: LeaderId,
    pub email: String,
    pub church_id: ChurchId,
    pub is_admin: bool,
}

/// A new session.
#[derive(Serialize, ToSchema)]
pub struct LoginData {
    /// The bearer token (a JWT) for `Authorization: Bearer …`.
    token: String,
    leader: LeaderView,
}

/// Sign in
///
/// A leader's email and password for a session token; the same session is also set as the
/// dashboard's cookie. Attempts are limited per account and per client address.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = Envelope<LoginData>,
            headers(("set-cookie" = String, description = "The session cookie (HttpOnly, SameSite=Lax)"))),
        (status = 400, response = BadRequest),
        (status = 401, description = "Wrong email or password", body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = RateLimited),
        (status = 500, response = ServerError),
        (status = 503, response = Busy)
    )
)]
async fn login(
    State(state): State<AppState>,
    addr: ClientAddr,
    AppJson(req): AppJson<LoginRequest>,
) -> ApiResult<Response> {
    let accounts::SignedIn { token, leader } =
        accounts::login(&state.accounts(), &req.email, &req.password, addr).await?;
    let cookie = session_cookie(&state, &token, SESSION_HOURS * 3600);
    let mut res = ok(
        StatusCode::OK,
        LoginData {
            token,
            leader: LeaderView {
                id: leader.id,
                email: leader.email,
                church_id: leader.church_id,
                is_admin: leader.is_admin,
            },
        },
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res.into_response())
}

/// The session cookie (`max_age` 0 clears it): HttpOnly, SameSite=Lax, Secure on https.
pub fn session_cookie(state: &AppState, token: &str, max_age: i64) -> String {
    let secure = if state.config.backend_url.scheme() == "https" { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// Nothing more to say.
#[derive(Serialize, ToSchema)]
pub struct Empty {}

/// Sign out
///
/// Ends this session: its token is refused from now on, and the cookie is cleared.
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    responses(
        (status = 200, description = "Signed out", body = Envelope<Empty>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn logout(State(state): State<AppState>, leader: Leader) -> ApiResult<Response> {
    if let Some(session) = leader.session {
        accounts::logout(&state.accounts(), &leader.actor(), session.jti, session.exp).await?;
    }
    let mut res = ok(StatusCode::OK, Empty {});
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&state, "", 0)) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordRequest {
    current: String,
    /// The new password; one that is too short or too long is refused with 400.
    new: String,
}

/// A new token for this session.
#[derive(Serialize, ToSchema)]
pub struct TokenData {
    token: String,
}

/// Change password
///
/// Changes the signed-in leader's password; every other session ends, and this one gets a new
/// token (and cookie). Checking the current password is limited like a login (429).
#[utoipa::path(
    post,
    path = "/api/auth/password",
    tag = "auth",
    request_body = PasswordRequest,
    responses(
        (status = 200, description = "Changed", body = Envelope<TokenData>),
        (status = 400, response = BadRequest),
        (status = 401, description = "No valid session, or the current password is not right", body = ErrorBody),
        (status = 403, response = Forbidden),
        (status = 429, description = "Too many wrong current passwords from this address (limited like login)", body = ErrorBody, headers(("retry-after" = u64, description = "Seconds to wait before trying again"))),
        (status = 404, description = "The leader was removed meanwhile", body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = ServerError),
        (status = 503, response = Busy)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn change_password(
    State(state): State<AppState>,
    leader: Leader,
    AppJson(req): AppJson<PasswordRequest>,
) -> ApiResult<Response> {
    let token = accounts::change_password(&state.accounts(), &leader.actor(), &req.current, &req.new).await?;
    let mut res = ok(StatusCode::OK, TokenData { token: token.clone() });
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&state, &token, SESSION_HOURS * 3600)) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}
