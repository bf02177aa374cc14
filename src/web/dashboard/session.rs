//! A signed-in leader on a page: the session cookie, or a redirect to the login page.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};

use crate::app::AppState;
use crate::db;
use crate::web::auth::{cookie, csrf_token, SESSION_COOKIE};

/// The leader behind a page request, with what the page needs to make further requests.
pub struct PageSession {
    pub leader: crate::web::auth::Leader,
    pub church_name: String,
    /// Sent back in forms and in the `x-csrf-token` header of the page's requests.
    pub csrf: String,
}

impl FromRequestParts<AppState> for PageSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let to_login = || Redirect::to("/login").into_response();
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else { return Err(to_login()) };
        let Ok(claims) = state.sessions.verify(&token) else { return Err(to_login()) };
        let found = async {
            let mut pooled = state.db.acquire().await.ok()?;
            let c = &mut pooled.conn();
            let leader = db::leaders::get(c, claims.church, claims.sub).await.ok()??;
            if db::leaders::is_revoked(c, claims.jti).await.ok()? {
                return None;
            }
            let church = db::churches::get(c, claims.church).await.ok()??;
            (leader.token_version == claims.ver).then_some((leader, church))
        }
        .await;
        let Some((leader, church)) = found else { return Err(to_login()) };
        Ok(PageSession {
            leader: crate::web::auth::Leader {
                id: leader.id,
                church: leader.church_id,
                email: leader.email,
                is_admin: leader.is_admin,
                session: Some((claims.jti, claims.exp)),
            },
            church_name: church.name,
            csrf: csrf_token(state, &token),
        })
    }
}
