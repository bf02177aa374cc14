//! `POST /api/auth/login`: a leader's email and password for a session token (and cookie).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::clock;
use crate::crypto::password;
use crate::crypto::session::SESSION_HOURS;
use crate::db;
use crate::domain::{ChurchId, LeaderId};
use crate::flows::audit;
use crate::web::auth::{ClientAddr, Leader, SESSION_COOKIE};
use crate::web::error::{ok, ApiError, ApiResult, Envelope, ErrorBody};
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
    let (token, leader) = authenticate(&state, &req.email, &req.password, addr).await?;
    let secure = if state.config.backend_url.scheme() == "https" { "; Secure" } else { "" };
    let cookie =
        format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}", SESSION_HOURS * 3600);
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

/// Checks a leader's email and password; on success a new session token (the login is audited).
/// The same answer, after the same work, for an unknown email and a wrong password.
pub async fn authenticate(
    state: &AppState,
    email: &str,
    password_text: &str,
    addr: ClientAddr,
) -> ApiResult<(String, db::leaders::LeaderRow)> {
    let email = email.trim().to_lowercase();
    if email.is_empty() || password_text.is_empty() {
        return Err(ApiError::bad_request("email and password are required"));
    }
    login_allowed(state, &email, addr).await?;
    let accounts = {
        let mut pooled = state.db.acquire().await?;
        db::leaders::find_by_email(&mut pooled.conn(), &email).await?
    };
    // One email may lead in several churches (each its own account and password): the password
    // says which. With no account, a dummy hash is checked, so timing does not tell.
    let mut signed_in = None;
    if accounts.is_empty() {
        state.passwords.verify(password_text, None).await?;
    }
    for account in accounts {
        if state.passwords.verify(password_text, Some(&account.password_hash)).await? {
            signed_in = Some(account);
            break;
        }
    }
    let leader = match signed_in {
        Some(l) => l,
        None => {
            metrics::counter!("koinonia_logins_total", "outcome" => "failed").increment(1);
            tracing::info!("login refused");
            return Err(ApiError::Unauthorized("invalid email or password"));
        }
    };
    let now = clock::now();
    let (token, _) = state
        .sessions
        .issue(leader.id, leader.church_id, leader.token_version, now)
        .map_err(|e| ApiError::Internal(e.into()))?;
    {
        let mut pooled = state.db.acquire().await?;
        let c = &mut pooled.conn();
        db::leaders::record_login(c, leader.id, now).await?;
        audit::record(c, audit::Entry::leader(leader.church_id, leader.id, "leader.login", addr)).await?;
    }
    metrics::counter!("koinonia_logins_total", "outcome" => "ok").increment(1);
    Ok((token, leader))
}

/// Applies the login limits to an attempt to check `email`'s password from `addr`: 429 when this
/// address (or this address for this account) tried too often; a delay when the account is being
/// tried from many addresses.
pub async fn login_allowed(state: &AppState, email: &str, addr: ClientAddr) -> ApiResult<()> {
    match state.limits.login(email, addr.0) {
        Ok(permit) => {
            if !permit.delay.is_zero() {
                metrics::counter!("koinonia_login_slowed_total").increment(1);
                tokio::time::sleep(permit.delay).await;
            }
            Ok(())
        }
        Err(wait) => {
            metrics::counter!("koinonia_rate_limited_total", "what" => "login").increment(1);
            Err(ApiError::RateLimited(crate::limits::retry_after_secs(wait)))
        }
    }
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
async fn logout(State(state): State<AppState>, leader: Leader, addr: ClientAddr) -> ApiResult<Response> {
    end_session(&state, &leader, addr).await?;
    let mut res = ok(StatusCode::OK, Empty {});
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&state, "", 0)) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// Revokes the leader's current session (audited). Shared by the API and the dashboard.
pub async fn end_session(state: &AppState, leader: &Leader, addr: ClientAddr) -> ApiResult<()> {
    let Some(crate::web::auth::Session { jti, exp, .. }) = leader.session else { return Ok(()) };
    let expires = chrono::DateTime::from_timestamp(exp, 0).unwrap_or_else(clock::now);
    let mut pooled = state.db.acquire().await?;
    let c = &mut pooled.conn();
    db::leaders::revoke_session(c, jti, expires).await?;
    audit::record(c, audit::Entry::leader(leader.church, leader.id, "leader.logout", addr)).await?;
    Ok(())
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
    addr: ClientAddr,
    AppJson(req): AppJson<PasswordRequest>,
) -> ApiResult<Response> {
    password::check_strength(&req.new).map_err(|e| ApiError::bad_request(format!("new password: {e}")))?;
    let row = {
        let mut pooled = state.db.acquire().await?;
        db::leaders::get(&mut pooled.conn(), leader.church, leader.id).await?.ok_or(ApiError::NotFound)?
    };
    // Guessing the current password is limited like logging in.
    login_allowed(&state, &row.email, addr).await?;
    if !state.passwords.verify(&req.current, Some(&row.password_hash)).await? {
        return Err(ApiError::Unauthorized("the current password is not right"));
    }
    let hash = state.passwords.hash(&req.new).await?;
    let version = {
        let mut pooled = state.db.acquire().await?;
        let c = &mut pooled.conn();
        let version = db::leaders::set_password(c, leader.church, leader.id, &hash).await?.ok_or(ApiError::NotFound)?;
        audit::record(c, audit::Entry::leader(leader.church, leader.id, "leader.password", addr)).await?;
        version
    };
    let (token, _) = state
        .sessions
        .issue(leader.id, leader.church, version, clock::now())
        .map_err(|e| ApiError::Internal(e.into()))?;
    let mut res = ok(StatusCode::OK, TokenData { token: token.clone() });
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&state, &token, SESSION_HOURS * 3600)) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}
