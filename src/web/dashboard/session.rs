//! A signed-in leader on a page: the session cookie (checked as the API checks it), or a redirect
//! to the login page.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};

use crate::state::AppState;
use crate::web::auth::{authenticate, Carrier, Leader};

/// The leader behind a page request, with what the page needs to make further requests.
pub struct PageSession {
    pub leader: Leader,
    pub church_name: String,
    /// Sent back in forms and in the `x-csrf-token` header of the page's requests.
    pub csrf: String,
}

impl FromRequestParts<AppState> for PageSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let to_login = || Redirect::to("/login").into_response();
        let Ok((leader, token)) = authenticate(parts, state, Carrier::Cookie).await else { return Err(to_login()) };
        let Ok(Some(church_name)) = crate::flows::accounts::church_name(&state.accounts(), leader.church).await else {
            return Err(to_login());
        };
        Ok(PageSession { leader, church_name, csrf: crate::web::csrf::token(state, &token) })
    }
}
