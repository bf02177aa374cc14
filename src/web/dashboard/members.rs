//! What an admin does to a member from the thread page: erase them (a form with the CSRF token,
//! confirmed in the browser first). The export is a plain link to `GET /api/members/:id/export`,
//! which the session cookie authorises.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Form, Router};
use serde::Deserialize;

use super::pages::PageError;
use super::session::PageSession;
use crate::app::AppState;
use crate::db;
use crate::domain::ConversationId;
use crate::web::auth::{cookie, ClientAddr, SESSION_COOKIE};
use crate::web::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new().route("/inbox/{id}/erase", post(erase))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Erases the member of conversation `id` (admins), then back to the inbox.
async fn erase(
    State(state): State<AppState>,
    session: PageSession,
    addr: ClientAddr,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    let token = cookie(&headers, SESSION_COOKIE).unwrap_or_default();
    if !state.csrf.verify(&[&token], &form.csrf) {
        return Err(ApiError::Status(StatusCode::FORBIDDEN, "invalid CSRF token; reload the page".into()).into());
    }
    let id: ConversationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let member = {
        let mut pooled = state.db.acquire().await.map_err(ApiError::from)?;
        db::conversations::get(&mut pooled.conn(), session.leader.church, id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?
            .member_id
    };
    crate::web::api::people::erase(&state, &session.leader, addr, member).await?;
    Ok(Redirect::to("/inbox").into_response())
}
