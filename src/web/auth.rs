//! Who is asking: a leader's session from `Authorization: Bearer …` or the session cookie, and the
//! client's address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use super::error::ApiError;
use crate::domain::{Actor, ChurchId, ClientAddr, LeaderId};
use crate::state::AppState;

/// Name of the dashboard's session cookie.
pub const SESSION_COOKIE: &str = "koinonia_session";
/// Header that carries the page's CSRF token on state-changing requests made with the cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authenticated leader. Every church-scoped query takes `church` from here.
#[derive(Debug, Clone)]
pub struct Leader {
    pub id: LeaderId,
    pub church: ChurchId,
    pub email: String,
    pub is_admin: bool,
    /// The session this request came with.
    pub session: Option<Session>,
    /// Where the request came from.
    pub client: ClientAddr,
}

/// A leader's session: its token id and expiry (Unix seconds), for logout, and the leader's
/// token version it was issued under, to tell later whether it still holds.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    pub jti: uuid::Uuid,
    pub exp: i64,
    pub version: i64,
}

/// Whether `leader`'s session still holds (for long-lived requests such as the live stream).
pub async fn still_signed_in(state: &AppState, leader: &Leader) -> bool {
    let Some(session) = leader.session else { return true };
    crate::flows::accounts::session_holds(
        &state.accounts(),
        leader.church,
        leader.id,
        session.jti,
        session.exp,
        session.version,
    )
    .await
}

/// How a request may carry its session.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// `Authorization: Bearer …` or the cookie (the API).
    BearerOrCookie,
    /// Only the cookie (the pages).
    Cookie,
}

/// The signed-in leader of a request and the session token it came with: the one check behind
/// the API's [`Leader`] and the pages' `PageSession`. A state change carried by the cookie must
/// also carry the page's CSRF token in [`CSRF_HEADER`] (the pages' forms check theirs with
/// [`crate::web::csrf::CsrfForm`]).
pub async fn authenticate(parts: &Parts, state: &AppState, carrier: Carrier) -> Result<(Leader, String), ApiError> {
    let bearer = if carrier == Carrier::BearerOrCookie { bearer(&parts.headers) } else { None };
    let (token, from_cookie) = match bearer {
        Some(t) => (t, false),
        None => {
            (cookie(&parts.headers, SESSION_COOKIE).ok_or(ApiError::Unauthorized("authentication required"))?, true)
        }
    };
    // A browser sends the cookie on its own, so a state change carried by the cookie must
    // also prove it comes from koinonia's pages (CSRF): the page's token in a header.
    if carrier == Carrier::BearerOrCookie && from_cookie && !parts.method.is_safe() {
        let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
        crate::web::csrf::verify(state, &token, sent)?;
    }
    let (leader, claims) = crate::flows::accounts::session(&state.accounts(), &token)
        .await?
        .ok_or(ApiError::Unauthorized("invalid or expired session"))?;
    Ok((Leader::of_session(leader, &claims, client_addr(parts, state)), token))
}

impl FromRequestParts<AppState> for Leader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        authenticate(parts, state, Carrier::BearerOrCookie).await.map(|(leader, _)| leader)
    }
}

impl Leader {
    pub fn of_session(
        leader: crate::db::leaders::LeaderRow,
        claims: &crate::crypto::session::Claims,
        client: ClientAddr,
    ) -> Self {
        Self {
            id: leader.id,
            church: leader.church_id,
            email: leader.email,
            is_admin: leader.is_admin,
            session: Some(Session { jti: claims.jti, exp: claims.exp, version: claims.ver }),
            client,
        }
    }

    /// The leader as the rules see them.
    pub fn actor(&self) -> Actor {
        Actor::leader(self.church, self.id, self.is_admin, self.client)
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned()).filter(|t| !t.is_empty())
}

/// A cookie's value from the `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The client's address: the socket peer or, when the deployment says it sits behind its own
/// proxy (`TRUST_PROXY_HEADERS=true`), the rightmost `X-Forwarded-For` entry that none of its
/// proxies added. Entries to the left of that were written by the client and prove nothing.
impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(client_addr(parts, state))
    }
}

/// The client address of a request (see the extractor above).
pub fn client_addr(parts: &Parts, state: &AppState) -> ClientAddr {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
    if state.config.trust_proxy_headers {
        let chain = parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        if let Some(client) = forwarded_client(chain, &state.config.trusted_proxies) {
            return ClientAddr(Some(client));
        }
    }
    ClientAddr(peer)
}

/// The client in an `X-Forwarded-For` chain (all header lines, in order): walking from the right,
/// the first entry that is not one of `trusted` proxies. An unreadable entry ends the walk: what
/// lies left of it cannot be trusted either.
pub fn forwarded_client<'a>(lines: impl Iterator<Item = &'a str>, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let entries: Vec<&str> = lines.flat_map(|l| l.split(',')).map(str::trim).filter(|e| !e.is_empty()).collect();
    for entry in entries.iter().rev().take(32) {
        let ip = parse_forwarded_entry(entry)?;
        if !trusted.iter().any(|net| net.contains(&ip)) {
            return Some(ip);
        }
    }
    None
}

/// `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]:443` or `203.0.113.7:443`.
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    entry.parse::<SocketAddr>().ok().map(|s| s.ip())
}

#[cfg(test)]
mod tests {
    use super::forwarded_client;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn the_client_is_the_rightmost_entry_no_proxy_of_ours_added() {
        // One proxy: it appended what it saw; the client wrote the first entry itself.
        assert_eq!(forwarded_client(["6.6.6.6, 198.51.100.4"].into_iter(), &[]), Some(ip("198.51.100.4")));
        // Several header lines count as one list.
        assert_eq!(forwarded_client(["6.6.6.6", "198.51.100.4"].into_iter(), &[]), Some(ip("198.51.100.4")));
        // Behind a CDN and a load balancer in 10.0.0.0/8, the CDN's entries are skipped too.
        let trusted = ["10.0.0.0/8".parse().expect("net"), "192.0.2.10/32".parse().expect("net")];
        assert_eq!(
            forwarded_client(["1.2.3.4, 198.51.100.4, 192.0.2.10, 10.1.2.3"].into_iter(), &trusted),
            Some(ip("198.51.100.4"))
        );
        assert_eq!(forwarded_client(["[2001:db8::7]:443"].into_iter(), &[]), Some(ip("2001:db8::7")));
        // Garbage at the right end: nothing to go on (the peer is used).
        assert_eq!(forwarded_client(["198.51.100.4, not-an-address"].into_iter(), &[]), None);
        assert_eq!(forwarded_client(std::iter::empty(), &[]), None);
    }
}
