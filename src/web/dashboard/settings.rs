//! `/settings`: how a leader hears of new messages (push on this browser, the choice of push and
//! e-mail) and, for admins, whether the church's notifications carry the message's first words.
//! The page's script subscribes the browser through the JSON API (`/api/push/…`); the forms here
//! call the same flow as `PATCH /api/notifications/settings`.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::pages::{PageError, PageResult};
use super::session::PageSession;
use super::{page_headers, Nav};
use crate::flows::notifications::{self, Change};
use crate::state::AppState;
use crate::web::csrf::CsrfForm;
use crate::web::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings", get(page))
        .route("/settings/notifications", post(save_choice))
        .route("/settings/church", post(save_church))
}

#[derive(Template, WebTemplate)]
#[template(path = "settings.html")]
struct SettingsPage {
    nav: Nav,
    settings: notifications::Settings,
}

async fn page(State(state): State<AppState>, session: PageSession) -> PageResult {
    let settings =
        notifications::settings(&state.notifications(), &session.leader.actor()).await.map_err(ApiError::from)?;
    let page = SettingsPage { nav: Nav::of(&state, &session, "settings"), settings };
    Ok((page_headers(&state), page).into_response())
}

/// The notification choice form: an unticked box is not sent.
#[derive(Deserialize)]
pub struct ChoiceForm {
    push: Option<String>,
    email: Option<String>,
}

async fn save_choice(
    State(state): State<AppState>,
    session: PageSession,
    CsrfForm(form): CsrfForm<ChoiceForm>,
) -> PageResult {
    let push = form.push.is_some();
    // Push cannot be chosen where the server has no key (the box is not shown then).
    let push = (push || state.config.secrets.vapid.is_some()).then_some(push);
    let change = Change { push, email: Some(form.email.is_some()), include_text: None };
    notifications::update(&state.notifications(), &session.leader.actor(), change).await.map_err(ApiError::from)?;
    Ok(Redirect::to("/settings").into_response())
}

#[derive(Deserialize)]
pub struct ChurchForm {
    include_text: Option<String>,
}

async fn save_church(
    State(state): State<AppState>,
    session: PageSession,
    CsrfForm(form): CsrfForm<ChurchForm>,
) -> Result<axum::response::Response, PageError> {
    let change = Change { include_text: Some(form.include_text.is_some()), ..Change::default() };
    notifications::update(&state.notifications(), &session.leader.actor(), change).await.map_err(ApiError::from)?;
    Ok(Redirect::to("/settings").into_response())
}
