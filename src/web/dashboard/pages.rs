//! Pages: first-run setup, login/logout, the inbox and a thread, and the fragments the page's
//! script swaps in when live updates arrive.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::session::PageSession;
use super::{page_headers, Nav};
use crate::domain::ClientAddr;
use crate::domain::{ConversationId, MessageId};
use crate::flows::accounts;
use crate::flows::inbox;
use crate::media::mime::ALLOWED;
use crate::state::AppState;
use crate::web::api::auth::session_cookie;
use crate::web::api::views::{self, ConversationView, MessageView};
use crate::web::auth::{cookie, SESSION_COOKIE};
use crate::web::csrf::{CsrfForm, NoFields};
use crate::web::error::ApiError;

const THREAD_PAGE: i64 = 30;
const LIST_PAGE: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/setup", get(setup_form).post(setup))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/inbox", get(inbox))
        .route("/inbox/{id}", get(thread))
        .route("/inbox/fragments/list", get(list_fragment))
        .route("/system", get(system))
        .route("/system/time-zone", post(set_time_zone))
        .route("/inbox/{id}/fragments/messages", get(messages_fragment))
        .route("/inbox/{id}/fragments/message/{message}", get(message_fragment))
}

/// A page error, rendered as a page with the same status the API would give.
pub struct PageError(ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<sqlx::Error> for PageError {
    fn from(e: sqlx::Error) -> Self {
        Self(ApiError::Database(e))
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let message = if status.is_server_error() {
            tracing::error!(error = ?self.0, "page failed");
            "Something went wrong on our side. Please try again.".to_owned()
        } else if status == StatusCode::NOT_FOUND {
            "This page does not exist, or it belongs to another church.".to_owned()
        } else {
            self.0.to_string()
        };
        (status, ErrorPage { status: status.as_u16(), message }).into_response()
    }
}

pub type PageResult = Result<Response, PageError>;

async fn root(State(state): State<AppState>) -> PageResult {
    if !accounts::is_set_up(&state.accounts()).await.map_err(ApiError::from)? {
        return Ok(Redirect::to("/setup").into_response());
    }
    Ok(Redirect::to("/inbox").into_response())
}

// ---- first run -------------------------------------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "setup.html")]
struct SetupPage {
    error: Option<String>,
    needs_code: bool,
    church_name: String,
    church_number: String,
    email: String,
    zones: Vec<ZoneOption>,
}

/// One choice of time zone: its IANA name and whether it is the one chosen.
pub struct ZoneOption {
    pub name: &'static str,
    pub selected: bool,
}

/// Every time zone, `chosen` selected (UTC when `chosen` is none of them).
pub fn zone_options(chosen: &str) -> Vec<ZoneOption> {
    let chosen = crate::domain::ChurchTimeZone::stored(chosen);
    crate::domain::ChurchTimeZone::names().map(|name| ZoneOption { name, selected: name == chosen.name() }).collect()
}

#[derive(Deserialize, Default)]
pub struct SetupForm {
    #[serde(default)]
    church_name: String,
    #[serde(default)]
    church_number: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    time_zone: String,
}

async fn setup_form(State(state): State<AppState>) -> PageResult {
    if accounts::is_set_up(&state.accounts()).await.map_err(ApiError::from)? {
        return Ok(Redirect::to("/login").into_response());
    }
    let page = SetupPage {
        error: None,
        needs_code: state.setup_code.is_some(),
        church_name: String::new(),
        church_number: String::new(),
        email: String::new(),
        zones: zone_options("UTC"),
    };
    Ok((page_headers(&state), page).into_response())
}

async fn setup(State(state): State<AppState>, addr: ClientAddr, Form(form): Form<SetupForm>) -> PageResult {
    if accounts::is_set_up(&state.accounts()).await.map_err(ApiError::from)? {
        return Ok(Redirect::to("/login").into_response());
    }
    let setup = accounts::Setup {
        code: &form.code,
        church_name: &form.church_name,
        church_number: &form.church_number,
        email: &form.email,
        password: &form.password,
        password_confirm: &form.password_confirm,
        time_zone: &form.time_zone,
    };
    match accounts::setup(&state.accounts(), setup, addr).await {
        Ok(Some(signed_in)) => signed_in_page(&state, &signed_in.token),
        // Another request finished setup first.
        Ok(None) => Ok(Redirect::to("/login").into_response()),
        Err(accounts::AccountError::Invalid(error)) => {
            let page = SetupPage {
                error: Some(error),
                needs_code: state.setup_code.is_some(),
                church_name: form.church_name.clone(),
                church_number: form.church_number.clone(),
                email: form.email.clone(),
                zones: zone_options(&form.time_zone),
            };
            Ok((StatusCode::BAD_REQUEST, page_headers(&state), page).into_response())
        }
        Err(e) => Err(ApiError::from(e).into()),
    }
}

/// Sets the session cookie and goes to the inbox.
fn signed_in_page(state: &AppState, token: &str) -> PageResult {
    let mut res = Redirect::to("/inbox").into_response();
    let cookie = session_cookie(state, token, crate::crypto::session::SESSION_HOURS * 3600);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

// ---- login -----------------------------------------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
struct LoginPage {
    error: Option<String>,
    email: String,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

async fn login_form(State(state): State<AppState>) -> PageResult {
    if !accounts::is_set_up(&state.accounts()).await.map_err(ApiError::from)? {
        return Ok(Redirect::to("/setup").into_response());
    }
    Ok((page_headers(&state), LoginPage { error: None, email: String::new() }).into_response())
}

async fn login(State(state): State<AppState>, addr: ClientAddr, Form(form): Form<LoginForm>) -> PageResult {
    let error = match accounts::login(&state.accounts(), &form.email, &form.password, addr).await {
        Ok(signed_in) => return signed_in_page(&state, &signed_in.token),
        Err(e) => ApiError::from(e),
    };
    let message = match &error {
        ApiError::Unauthorized(_) => "Invalid email or password.".to_owned(),
        ApiError::RateLimited(secs) => format!("Too many attempts. Try again in {secs} seconds."),
        ApiError::BadRequest(_) => "Enter your email and password.".to_owned(),
        _ => return Err(error.into()),
    };
    let page = LoginPage { error: Some(message), email: form.email };
    Ok((error.status(), page_headers(&state), page).into_response())
}

async fn logout(
    State(state): State<AppState>,
    addr: ClientAddr,
    headers: axum::http::HeaderMap,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> PageResult {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        // The token is refused from now on, not only forgotten by this browser.
        accounts::logout_token(&state.accounts(), &token, addr).await.map_err(ApiError::from)?;
    }
    let mut res = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&state, "", 0)) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

// ---- inbox and thread --------------------------------------------------------------------

/// What the composer needs to check files before uploading them.
pub struct Limits {
    pub max_bytes: u64,
    pub max_label: String,
    pub mms_max_bytes: u64,
    pub accept: String,
}

impl Limits {
    pub fn of(state: &AppState) -> Self {
        Self {
            max_bytes: state.config.max_media_size_bytes,
            max_label: crate::media::ingest::format_size(state.config.max_media_size_bytes),
            mms_max_bytes: state.config.mms_max_attachment_bytes,
            accept: accept_list(),
        }
    }
}

/// The `accept` attribute: every allowed type, plus extensions browsers do not map themselves.
pub fn accept_list() -> String {
    let mut list: Vec<&str> = ALLOWED.iter().map(|(m, _)| *m).collect();
    list.extend([".heic", ".amr", ".3gp", ".vcf", ".m4a"]);
    list.join(",")
}

#[derive(Template, WebTemplate)]
#[template(path = "inbox.html")]
struct InboxPage {
    nav: Nav,
    conversations: Vec<ConversationView>,
    next_cursor: Option<String>,
    selected: Option<String>,
    thread: Option<ThreadView>,
    limits: Limits,
}

struct ThreadView {
    conversation: ConversationView,
    messages: Vec<MessageView>,
    older: Option<String>,
}

async fn inbox(State(state): State<AppState>, session: PageSession) -> PageResult {
    render_inbox(&state, session, None).await
}

async fn thread(State(state): State<AppState>, session: PageSession, Path(id): Path<String>) -> PageResult {
    let id: ConversationId = id.parse().map_err(|_| ApiError::NotFound)?;
    render_inbox(&state, session, Some(id)).await
}

async fn render_inbox(state: &AppState, session: PageSession, selected: Option<ConversationId>) -> PageResult {
    let church = session.leader.church;
    let thread = match selected {
        Some(id) => {
            let t = inbox::thread(&state.inbox(), church, id, None, THREAD_PAGE).await.map_err(ApiError::from)?;
            // Opening a thread marks it read for the church.
            inbox::mark_read(&state.inbox(), church, id).await.map_err(ApiError::from)?;
            Some(ThreadView {
                conversation: views::conversation(&t.conversation),
                messages: t.messages.iter().map(views::thread_message).collect(),
                older: t.next_cursor,
            })
        }
        None => None,
    };
    let list = inbox::list(&state.inbox(), church, None, None, LIST_PAGE).await.map_err(ApiError::from)?;
    let page = InboxPage {
        nav: Nav::of(state, &session, "inbox"),
        conversations: list.items.iter().map(views::conversation_row).collect(),
        next_cursor: list.next_cursor,
        selected: selected.map(|s| s.to_string()),
        thread,
        limits: Limits::of(state),
    };
    Ok((page_headers(state), page).into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "system.html")]
struct SystemPage {
    nav: Nav,
    checks: Vec<crate::ops::doctor::Check>,
    zones: Vec<ZoneOption>,
}

/// The self-check, for a church's admins.
async fn system(State(state): State<AppState>, session: PageSession) -> PageResult {
    if !session.leader.is_admin {
        return Err(ApiError::NotFound.into());
    }
    let checks = crate::ops::doctor::run(&state.config).await;
    let zone = accounts::time_zone(&state.db, session.leader.church).await.map_err(ApiError::from)?;
    let page = SystemPage { nav: Nav::of(&state, &session, "system"), checks, zones: zone_options(zone.name()) };
    Ok((page_headers(&state), page).into_response())
}

/// The church settings form on /system.
#[derive(Deserialize)]
pub struct TimeZoneForm {
    #[serde(default)]
    time_zone: String,
}

/// Sets the church's time zone (admins), then back to /system.
async fn set_time_zone(
    State(state): State<AppState>,
    session: PageSession,
    CsrfForm(form): CsrfForm<TimeZoneForm>,
) -> PageResult {
    accounts::set_time_zone(&state.accounts(), &session.leader.actor(), &form.time_zone)
        .await
        .map_err(ApiError::from)?;
    Ok(Redirect::to("/system").into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "conversation_list.html")]
struct ListFragment {
    conversations: Vec<ConversationView>,
    next_cursor: Option<String>,
    selected: Option<String>,
}

#[derive(Deserialize)]
pub struct ListFragmentQuery {
    selected: Option<String>,
    cursor: Option<String>,
    q: Option<String>,
}

async fn list_fragment(
    State(state): State<AppState>,
    session: PageSession,
    Query(q): Query<ListFragmentQuery>,
) -> PageResult {
    let list = inbox::list(&state.inbox(), session.leader.church, q.cursor.as_deref(), q.q.as_deref(), LIST_PAGE)
        .await
        .map_err(ApiError::from)?;
    let conversations = list.items.iter().map(views::conversation_row).collect();
    Ok(ListFragment { conversations, next_cursor: list.next_cursor, selected: q.selected }.into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "messages.html")]
struct MessagesFragment {
    messages: Vec<MessageView>,
    older: Option<String>,
}

#[derive(Deserialize)]
pub struct MessagesQuery {
    before: Option<String>,
}

async fn messages_fragment(
    State(state): State<AppState>,
    session: PageSession,
    Path(id): Path<String>,
    Query(q): Query<MessagesQuery>,
) -> PageResult {
    let id: ConversationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let t = inbox::thread(&state.inbox(), session.leader.church, id, q.before.as_deref(), THREAD_PAGE)
        .await
        .map_err(ApiError::from)?;
    let messages = t.messages.iter().map(views::thread_message).collect();
    Ok(MessagesFragment { messages, older: t.next_cursor }.into_response())
}

async fn message_fragment(
    State(state): State<AppState>,
    session: PageSession,
    Path((id, message)): Path<(String, String)>,
) -> PageResult {
    let id: ConversationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let message: MessageId = message.parse().map_err(|_| ApiError::NotFound)?;
    let m = inbox::message(&state.inbox(), session.leader.church, id, message).await.map_err(ApiError::from)?;
    Ok(MessagesFragment { messages: vec![views::thread_message(&m)], older: None }.into_response())
}
