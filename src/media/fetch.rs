//! Streaming media downloader with an SSRF guard.
//!
//! Inbound MMS media URLs come from the provider's webhook, which means they
//! are attacker-influenced input: anyone who can get a webhook accepted (or a
//! provider bug) could point the worker at `http://169.254.169.254/…` or at a
//! service on the internal network. [`Fetcher`] therefore only talks to public
//! unicast addresses (unless [`FetchPolicy::allow_private`], for tests), checks
//! every redirect hop by the same rules, resolves host names through its own
//! resolver so that DNS rebinding cannot slip a private address past the check,
//! and enforces the size limit while the body streams in.
//!
//! Nothing here ever logs or reports a URL's query string (signed media URLs
//! carry their tokens there): only scheme, host, port and path.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use http::header::{HeaderValue, AUTHORIZATION, LOCATION};
use http::StatusCode;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::net::{error_chain, host_display, redact};

/// Limits and switches for [`Fetcher`].
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Allow loopback/private/link-local/… targets (`MEDIA_FETCH_ALLOW_PRIVATE`, tests only).
    pub allow_private: bool,
    /// Largest accepted body in bytes (`MAX_MEDIA_SIZE_BYTES`).
    pub max_bytes: u64,
    /// Redirect hops followed at most.
    pub max_redirects: usize,
    /// Time allowed to establish a TCP (+TLS) connection.
    pub connect_timeout: Duration,
    /// No bytes for this long (waiting for the response head, or between
    /// body chunks) fails with [`FetchError::Timeout`].
    pub idle_timeout: Duration,
    /// `User-Agent` header sent with every request.
    pub user_agent: String,
    /// Lowest average transfer rate (bytes/s) after `rate_grace`: a host that trickles bytes
    /// just often enough to dodge the idle timeout is cut off instead of holding a worker.
    pub min_rate: u64,
    pub rate_grace: Duration,
    /// Hosts that may receive the carrier's API key when they ask for it (401/403): these
    /// domains and their subdomains (`TELNYX_MEDIA_HOSTS`, Telnyx's own by default). Any other
    /// media host is a stranger; a stranger's 401 is a failed download, not a key handed over.
    pub credential_hosts: Vec<String>,
}

/// Telnyx's own domain: its API and media hosts live under it.
pub const DEFAULT_CREDENTIAL_HOSTS: &[&str] = &["telnyx.com"];

/// Whether `host` is one of `domains` or below one of them (`media.telnyx.com` under
/// `telnyx.com`; `telnyx.com.evil.org` is not).
pub fn host_in(host: &str, domains: &[String]) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    domains.iter().any(|d| {
        let d = d.trim_start_matches('.').trim_end_matches('.').to_ascii_lowercase();
        !d.is_empty() && (host == d || host.strip_suffix(&d).is_some_and(|rest| rest.ends_with('.')))
    })
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            allow_private: false,
            max_bytes: 524_288_000,
            max_redirects: 5,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            user_agent: concat!("koinonia/", env!("CARGO_PKG_VERSION")).to_owned(),
            credential_hosts: DEFAULT_CREDENTIAL_HOSTS.iter().map(|d| (*d).to_owned()).collect(),
            min_rate: 16 * 1024,
            rate_grace: Duration::from_secs(20),
        }
    }
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Malformed URL, unsupported scheme, credentials in the URL, bad redirect `Location`.
    #[error("invalid media URL: {0}")]
    InvalidUrl(String),
    /// The target host is (or resolves only to) a non-public address.
    #[error("media URL not allowed: {0}")]
    Forbidden(String),
    /// More redirects than [`FetchPolicy::max_redirects`].
    #[error("too many redirects")]
    TooManyRedirects,
    /// The (final) response had this non-success status.
    #[error("media server answered HTTP {0}")]
    Status(u16),
    /// The body is (or declares itself) larger than the limit.
    #[error("media larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// Connecting took too long, or no bytes arrived for `idle_timeout`.
    #[error("media download timed out")]
    Timeout,
    /// The host sent the body slower than the policy's minimum rate.
    #[error("media host too slow (under {min_rate} bytes per second)")]
    TooSlow { min_rate: u64 },
    /// Connection refused/reset, DNS failure, TLS failure, truncated body, …
    #[error("media download failed: {0}")]
    Network(String),
}

impl FetchError {
    /// Whether trying again later may succeed.
    ///
    /// 404 counts as retryable: provider CDNs answer 404 for a few seconds
    /// after the webhook was sent.
    pub fn is_retryable(&self) -> bool {
        match self {
            FetchError::Status(code) => matches!(*code, 404 | 408 | 425 | 429) || (500..=599).contains(code),
            FetchError::Timeout | FetchError::TooSlow { .. } | FetchError::Network(_) => true,
            FetchError::InvalidUrl(_)
            | FetchError::Forbidden(_)
            | FetchError::TooManyRedirects
            | FetchError::TooLarge { .. } => false,
        }
    }
}

/// Downloads media over HTTP(S) from public addresses only (see module docs).
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: Arc<FetchPolicy>,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl Fetcher {
    /// Builds the HTTP client: no automatic redirects, no proxy (a proxy would
    /// resolve host names itself and bypass the address check), the guarded
    /// resolver, and the policy's timeouts.
    pub fn new(policy: FetchPolicy) -> Result<Self, FetchError> {
        let resolver = GuardedResolver { allow_private: policy.allow_private };
        let client = crate::crypto::tls::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(resolver)
            .connect_timeout(policy.connect_timeout)
            .read_timeout(policy.idle_timeout)
            .user_agent(policy.user_agent.clone())
            .build()
            .map_err(|e| FetchError::Network(format!("cannot build HTTP client: {}", error_chain(&e))))?;
        Ok(Self { client, policy: Arc::new(policy) })
    }

    /// The policy this fetcher enforces.
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// GET `url`.
    ///
    /// A plain GET first; if a hop on the original URL's origin answers
    /// 401/403 and `bearer` is `Some`, that hop is retried once with
    /// `Authorization: Bearer …` (Telnyx media URLs may need the API key) — only when the URL's
    /// host is one of the policy's `credential_hosts`.
    /// Redirects (301/302/303/307/308) are followed by hand, at most
    /// `max_redirects` hops, each hop's URL re-checked by the same address
    /// rules; the `Authorization` header is only ever sent to the original
    /// URL's origin (scheme, host and port).
    ///
    /// A declared `Content-Length` above `max_bytes` fails here with
    /// [`FetchError::TooLarge`], before any of the body is read.
    pub async fn get(&self, url: &str, bearer: Option<&str>) -> Result<Download, FetchError> {
        let original = parse_url(url)?;
        // The key goes to the carrier's own hosts only, whatever a webhook names.
        let bearer = bearer.filter(|_| original.host_str().is_some_and(|h| host_in(h, &self.policy.credential_hosts)));
        let origin = original.origin();
        let mut current = original.clone();
        let mut redirects = 0usize;
        let mut use_auth = false;
        let mut auth_tried = false;

        loop {
            self.check_target(&current)?;
            let same_origin = current.origin() == origin;
            let auth = match bearer {
                Some(token) if use_auth && same_origin => Some(bearer_value(token)?),
                _ => None,
            };
            tracing::debug!(
                url = %redact(&current),
                hop = redirects,
                with_auth = auth.is_some(),
                "media fetch request"
            );

            let mut request = self.client.get(current.clone());
            if let Some(value) = auth {
                request = request.header(AUTHORIZATION, value);
            }
            let response = request.send().await.map_err(|e| map_reqwest(e, &current))?;
            let status = response.status();

            if (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN)
                && bearer.is_some()
                && same_origin
                && !auth_tried
            {
                tracing::debug!(
                    url = %redact(&current),
                    status = status.as_u16(),
                    "media fetch retrying with bearer token"
                );
                auth_tried = true;
                use_auth = true;
                continue;
            }

            if is_redirect(status) {
                let location = response.headers().get(LOCATION).ok_or(FetchError::Status(status.as_u16()))?;
                let location = location.to_str().map_err(|_| {
                    FetchError::InvalidUrl(format!("redirect from {} has a non-text Location", redact(&current)))
                })?;
                let next = current.join(location).map_err(|e| {
                    FetchError::InvalidUrl(format!("redirect from {} has an invalid Location: {e}", redact(&current)))
                })?;
                if redirects >= self.policy.max_redirects {
                    tracing::warn!(
                        url = %redact(&original),
                        max = self.policy.max_redirects,
                        "media fetch: too many redirects"
                    );
                    return Err(FetchError::TooManyRedirects);
                }
                redirects += 1;
                check_url_shape(&next)?;
                tracing::debug!(
                    from = %redact(&current),
                    to = %redact(&next),
                    status = status.as_u16(),
                    "media fetch redirect"
                );
                current = next;
                continue;
            }

            if !status.is_success() {
                tracing::debug!(
                    url = %redact(&current),
                    status = status.as_u16(),
                    "media fetch failed status"
                );
                return Err(FetchError::Status(status.as_u16()));
            }

            let content_length = response.content_length();
            if let Some(len) = content_length {
                if len > self.policy.max_bytes {
                    tracing::warn!(
                        url = %redact(&current),
                        content_length = len,
                        limit = self.policy.max_bytes,
                        "media fetch: declared length over the limit"
                    );
                    return Err(FetchError::TooLarge { limit: self.policy.max_bytes });
                }
            }
            let content_type =
                response.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
            return Ok(Download {
                final_url: current,
                content_type,
                content_length,
                max_bytes: self.policy.max_bytes,
                min_rate: self.policy.min_rate,
                rate_grace: self.policy.rate_grace,
                response,
            });
        }
    }

    /// Whether `raw` may be contacted under this policy, before any request: an http(s) URL
    /// without credentials whose host, when an address, is public (unless `allow_private`).
    /// Host names are checked when they resolve, at each request.
    pub fn check_url(&self, raw: &str) -> Result<Url, FetchError> {
        let url = parse_url(raw)?;
        self.check_target(&url)?;
        Ok(url)
    }

    /// POSTs `body` to `url` under the same address rules as a download (the guarded resolver,
    /// no proxy), following no redirect, the whole exchange bounded by `timeout`. Used for Web
    /// Push, whose endpoints browsers hand over: they are untrusted input like media URLs.
    /// Answers the status and the `retry-after` delay the server asked for, if any.
    pub async fn post(
        &self,
        url: &Url,
        headers: http::HeaderMap,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(StatusCode, Option<Duration>), FetchError> {
        self.check_target(url)?;
        let send = self.client.post(url.clone()).headers(headers).body(body).timeout(timeout).send();
        let response = send.await.map_err(|e| map_reqwest(e, url))?;
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(3600)));
        Ok((response.status(), retry_after))
    }

    /// Scheme/userinfo rules plus, for IP-literal hosts, the address rule
    /// (reqwest does not call the resolver for literals).
    fn check_target(&self, url: &Url) -> Result<(), FetchError> {
        check_url_shape(url)?;
        if self.policy.allow_private {
            return Ok(());
        }
        let ip = match url.host() {
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
            Some(Host::Domain(_)) => return Ok(()), // checked by GuardedResolver
            None => return Err(FetchError::InvalidUrl("URL has no host".into())),
        };
        if is_public_ip(ip) {
            Ok(())
        } else {
            let host = host_display(url);
            tracing::warn!(host = %host, "media fetch refused: non-public address");
            Err(FetchError::Forbidden(format!("{host} is not a public address")))
        }
    }
}

/// A successful response whose body has not been read yet.
#[derive(Debug)]
pub struct Download {
    /// URL of the response after redirects (may hold a query string: never log it).
    pub final_url: Url,
    /// `Content-Type` as sent by the server (untrusted; sniff the bytes).
    pub content_type: Option<String>,
    /// Declared `Content-Length`, if any (already checked against the limit).
    pub content_length: Option<u64>,
    max_bytes: u64,
    min_rate: u64,
    rate_grace: Duration,
    response: reqwest::Response,
}

/// Whether `total` bytes after `elapsed` is under `min_rate` once `grace` has passed (0: no check).
fn too_slow(total: u64, elapsed: Duration, grace: Duration, min_rate: u64) -> bool {
    min_rate > 0 && elapsed > grace && (total as f64) < min_rate as f64 * (elapsed - grace).as_secs_f64()
}

impl Download {
    /// Body as a stream of chunks, enforcing `max_bytes` as bytes arrive.
    ///
    /// A declared `Content-Length` above the limit yields `Err(TooLarge)`
    /// without reading (normally [`Fetcher::get`] already refused it);
    /// otherwise the stream yields `Err(TooLarge)` as soon as the running
    /// total would exceed the limit (the offending chunk is not yielded, so
    /// at most `max_bytes` bytes ever come out) and then ends. An idle
    /// timeout yields `Err(Timeout)`, a reset or truncated body
    /// `Err(Network)`; after any error the stream ends.
    pub fn into_stream(self) -> BoxStream<'static, Result<Bytes, FetchError>> {
        let limit = self.max_bytes;
        if matches!(self.content_length, Some(len) if len > limit) {
            return stream::once(async move { Err(FetchError::TooLarge { limit }) }).boxed();
        }
        let where_ = redact(&self.final_url);
        let body = self.response.bytes_stream();
        let (min_rate, grace) = (self.min_rate, self.rate_grace);
        struct State<S> {
            body: S,
            total: u64,
            done: bool,
            where_: String,
            started: std::time::Instant,
        }
        let state = State { body, total: 0, done: false, where_, started: std::time::Instant::now() };
        stream::unfold(state, move |mut st| async move {
            if st.done {
                return None;
            }
            match st.body.next().await {
                None => None,
                Some(Ok(chunk)) => {
                    let total = st.total.saturating_add(chunk.len() as u64);
                    if total > limit {
                        tracing::warn!(
                            url = %st.where_,
                            limit,
                            "media fetch: body over the limit"
                        );
                        st.done = true;
                        Some((Err(FetchError::TooLarge { limit }), st))
                    } else if too_slow(total, st.started.elapsed(), grace, min_rate) {
                        tracing::warn!(url = %st.where_, bytes = total, min_rate, "media fetch: host too slow");
                        st.done = true;
                        Some((Err(FetchError::TooSlow { min_rate }), st))
                    } else {
                        st.total = total;
                        Some((Ok(chunk), st))
                    }
                }
                Some(Err(e)) => {
                    st.done = true;
                    let err = map_reqwest_body(e);
                    tracing::debug!(url = %st.where_, error = %err, "media fetch body error");
                    Some((Err(err), st))
                }
            }
        })
        .boxed()
    }
}

/// Public unicast only.
///
/// `false` for: unspecified, `0.0.0.0/8`, loopback, RFC 1918 private, CGNAT
/// `100.64.0.0/10`, link-local, `192.0.0.0/24`, documentation
/// (TEST-NET-1/2/3, `2001:db8::/32`, `3fff::/20`), benchmarking
/// `198.18.0.0/15`, 6to4 relay anycast `192.88.99.0/24`, reserved
/// `240.0.0.0/4` and broadcast, multicast; IPv6 outside global unicast
/// `2000::/3` (ULA `fc00::/7`, link-local `fe80::/10`, site-local,
/// multicast, discard `100::/64`, …), `2001::/23` (IETF protocol
/// assignments incl. Teredo), `64:ff9b:1::/48`; and IPv4-mapped,
/// IPv4-compatible, NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`) forms whose
/// embedded IPv4 address is not public.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let blocked = a == 0 // "this network", incl. unspecified
        || a == 10 // RFC 1918
        || (a == 100 && (64..=127).contains(&b)) // CGNAT 100.64/10
        || a == 127 // loopback
        || (a == 169 && b == 254) // link-local (cloud metadata)
        || (a == 172 && (16..=31).contains(&b)) // RFC 1918
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168) // RFC 1918
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast 224/4, reserved 240/4, broadcast
    !blocked
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    // IPv4-mapped ::ffff:a.b.c.d
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    // IPv4-compatible ::a.b.c.d (deprecated), also covers :: and ::1
    if seg[..6].iter().all(|&s| s == 0) {
        return is_public_v4(embedded_v4(seg[6], seg[7]));
    }
    // NAT64 well-known prefix 64:ff9b::/96: the gateway connects to the embedded IPv4
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6].iter().all(|&s| s == 0) {
        return is_public_v4(embedded_v4(seg[6], seg[7]));
    }
    // Global unicast is 2000::/3; everything else (ULA, link-local,
    // site-local, multicast, discard-only, local-use NAT64, …) is not public.
    if seg[0] & 0xe000 != 0x2000 {
        return false;
    }
    // 2001::/23 IETF protocol assignments (Teredo 2001::/32, ORCHID, …)
    if seg[0] == 0x2001 && seg[1] < 0x0200 {
        return false;
    }
    // documentation 2001:db8::/32 and 3fff::/20
    if (seg[0] == 0x2001 && seg[1] == 0x0db8) || (seg[0] & 0xfff0) == 0x3ff0 {
        return false;
    }
    // 6to4 2002::/16 embeds an IPv4 address in bits 16..48
    if seg[0] == 0x2002 {
        return is_public_v4(embedded_v4(seg[1], seg[2]));
    }
    true
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    let [a, b] = hi.to_be_bytes();
    let [c, d] = lo.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// Resolves host names with the system resolver (via tokio) and drops every
/// non-public address, so that the addresses actually connected to are the
/// ones checked (no DNS-rebinding window between check and connect).
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if allow_private {
                let addrs: Addrs = Box::new(resolved.into_iter());
                return Ok(addrs);
            }
            let total = resolved.len();
            let public: Vec<SocketAddr> = resolved.into_iter().filter(|addr| is_public_ip(addr.ip())).collect();
            if public.is_empty() {
                tracing::warn!(
                    host = %host,
                    resolved = total,
                    "media fetch refused: host resolves only to non-public addresses"
                );
                return Err(Box::new(BlockedHost { host }) as Box<dyn StdError + Send + Sync>);
            }
            if public.len() < total {
                tracing::warn!(
                    host = %host,
                    dropped = total - public.len(),
                    "media fetch: dropped non-public addresses from DNS answer"
                );
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// Error returned by [`GuardedResolver`]; found again in reqwest's error chain.
#[derive(Debug)]
struct BlockedHost {
    host: String,
}

impl fmt::Display for BlockedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} resolves only to non-public addresses", self.host)
    }
}

impl StdError for BlockedHost {}

fn parse_url(raw: &str) -> Result<Url, FetchError> {
    // The parse error never echoes the input, which may hold a token.
    let url = Url::parse(raw.trim()).map_err(|e| FetchError::InvalidUrl(e.to_string()))?;
    check_url_shape(&url)?;
    Ok(url)
}

fn check_url_shape(url: &Url) -> Result<(), FetchError> {
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(FetchError::InvalidUrl(format!("unsupported scheme {other:?} (only http and https)"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FetchError::InvalidUrl(format!("credentials in URL are not allowed ({})", redact(url))));
    }
    if url.host().is_none() {
        return Err(FetchError::InvalidUrl("URL has no host".into()));
    }
    Ok(())
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

fn bearer_value(token: &str) -> Result<HeaderValue, FetchError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| FetchError::InvalidUrl("bearer token is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

fn find_in_chain<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        cur = e.source();
    }
    None
}

fn map_reqwest(err: reqwest::Error, url: &Url) -> FetchError {
    let err = err.without_url();
    if let Some(blocked) = find_in_chain::<BlockedHost>(&err) {
        return FetchError::Forbidden(blocked.to_string());
    }
    if err.is_timeout() || find_in_chain::<std::io::Error>(&err).is_some_and(is_io_timeout) {
        return FetchError::Timeout;
    }
    FetchError::Network(format!("{}: {}", redact(url), error_chain(&err)))
}

fn map_reqwest_body(err: reqwest::Error) -> FetchError {
    let err = err.without_url();
    if err.is_timeout() || find_in_chain::<std::io::Error>(&err).is_some_and(is_io_timeout) {
        return FetchError::Timeout;
    }
    FetchError::Network(error_chain(&err))
}

fn is_io_timeout(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use wiremock::matchers::{header, header_exists, method, path};
    use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

    fn policy(allow_private: bool, max_bytes: u64) -> FetchPolicy {
        FetchPolicy {
            allow_private,
            max_bytes,
            max_redirects: 5,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            user_agent: "koinonia-test".into(),
            credential_hosts: vec!["127.0.0.1".into(), "localhost".into()],
            min_rate: 0,
            rate_grace: Duration::from_secs(20),
        }
    }

    #[test]
    fn the_key_goes_to_listed_domains_and_their_subdomains_only() {
        let listed = vec!["telnyx.com".to_owned()];
        assert!(host_in("telnyx.com", &listed));
        assert!(host_in("media.telnyx.com", &listed));
        assert!(host_in("MEDIA.Telnyx.COM.", &listed));
        assert!(!host_in("telnyx.com.evil.org", &listed));
        assert!(!host_in("eviltelnyx.com", &listed));
        assert!(!host_in("127.0.0.1", &listed));
        assert!(!host_in("anything", &[]));
    }

    fn fetcher(allow_private: bool, max_bytes: u64) -> Fetcher {
        Fetcher::new(policy(allow_private, max_bytes)).expect("client builds")
    }

    async fn collect(dl: Download) -> (Vec<u8>, Option<FetchError>, usize) {
        let mut s = dl.into_stream();
        let mut out = Vec::new();
        let mut err = None;
        let mut items_after_err = 0;
        while let Some(item) = s.next().await {
            match item {
                Ok(chunk) if err.is_none() => out.extend_from_slice(&chunk),
                Ok(_) => items_after_err += 1,
                Err(e) => {
                    if err.is_some() {
                        items_after_err += 1;
                    }
                    err.get_or_insert(e);
                }
            }
        }
        (out, err, items_after_err)
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn client_builds_without_installed_crypto_provider() {
        // No runtime needed, no provider installed: must not panic.
        let f = Fetcher::new(FetchPolicy::default());
        assert!(f.is_ok());
    }

    #[tokio::test]
    async fn streams_200_body_exactly() {
        let server = MockServer::start().await;
        let body = pattern(300_000);
        Mock::given(method("GET"))
            .and(path("/media/a.jpg"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body.clone(), "image/jpeg"))
            .expect(1)
            .mount(&server)
            .await;
        let f = fetcher(true, 1_000_000);
        let dl = f.get(&format!("{}/media/a.jpg?token=secret", server.uri()), None).await.expect("download");
        assert_eq!(dl.content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(dl.content_length, Some(body.len() as u64));
        assert_eq!(dl.final_url.path(), "/media/a.jpg");
        let (got, err, _) = collect(dl).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got, body);
    }

    #[tokio::test]
    async fn body_of_exactly_max_bytes_is_accepted() {
        let server = MockServer::start().await;
        let body = pattern(4096);
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(body.clone()))
            .mount(&server)
            .await;
        let dl = fetcher(true, 4096).get(&format!("{}/x", server.uri()), None).await.expect("download");
        let (got, err, _) = collect(dl).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got, body);
    }

    #[tokio::test]
    async fn status_404_is_retryable_error() {
        let server = MockServer::start().await;
        Mock::given(method("GET")).respond_with(ResponseTemplate::new(404)).mount(&server).await;
        let err = fetcher(true, 1000).get(&format!("{}/missing", server.uri()), None).await.expect_err("404");
        assert!(matches!(err, FetchError::Status(404)), "{err:?}");
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn declared_length_over_limit_fails_before_reading() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(pattern(10_000)))
            .mount(&server)
            .await;
        let err = fetcher(true, 1000).get(&format!("{}/big", server.uri()), None).await.expect_err("too large");
        assert!(matches!(err, FetchError::TooLarge { limit: 1000 }), "{err:?}");
        assert!(!err.is_retryable());
    }

    /// A server of one connection: reads the request, then lets `answer` write (or not).
    async fn answer_once<F, Fut>(answer: F) -> SocketAddr
    where
        F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let _ = sock.read(&mut buf).await;
            answer(sock).await;
        });
        addr
    }

    /// Raw HTTP/1.1 server: answers one request with a body of `total` bytes
    /// sent in 1000-byte pieces, either chunked or delimited by connection
    /// close, without Content-Length. Returns (address, bytes written).
    async fn raw_server(total: usize, chunked: bool) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let written = Arc::new(AtomicUsize::new(0));
        let w = written.clone();
        tokio::spawn(async move {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let hdr: &[u8] = if chunked {
                b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nTransfer-Encoding: chunked\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nConnection: close\r\n\r\n"
            };
            if sock.write_all(hdr).await.is_err() {
                return;
            }
            let piece = vec![b'z'; 1000];
            let mut sent = 0;
            while sent < total {
                let n = piece.len().min(total - sent);
                let res = if chunked {
                    let mut frame = format!("{n:x}\r\n").into_bytes();
                    frame.extend_from_slice(&piece[..n]);
                    frame.extend_from_slice(b"\r\n");
                    sock.write_all(&frame).await
                } else {
                    sock.write_all(&piece[..n]).await
                };
                if res.is_err() {
                    return;
                }
                sent += n;
                w.store(sent, Ordering::SeqCst);
            }
            if chunked {
                let _ = sock.write_all(b"0\r\n\r\n").await;
            }
            let _ = sock.shutdown().await;
        });
        (addr, written)
    }

    async fn undeclared_over_limit(chunked: bool) {
        let limit = 10_000u64;
        let (addr, _written) = raw_server(200_000, chunked).await;
        let dl = fetcher(true, limit).get(&format!("http://{addr}/stream"), None).await.expect("headers ok");
        assert_eq!(dl.content_length, None);
        assert_eq!(dl.content_type.as_deref(), Some("video/mp4"));
        let (got, err, after) = collect(dl).await;
        assert!(matches!(err, Some(FetchError::TooLarge { limit: 10_000 })), "{err:?}");
        assert!(got.len() as u64 <= limit, "yielded {} bytes", got.len());
        assert!(got.len() as u64 > limit / 2, "yielded {} bytes", got.len());
        assert_eq!(after, 0, "stream must end after TooLarge");
    }

    #[tokio::test]
    async fn undeclared_chunked_body_over_limit_stops() {
        undeclared_over_limit(true).await;
    }

    #[tokio::test]
    async fn undeclared_close_delimited_body_over_limit_stops() {
        undeclared_over_limit(false).await;
    }

    #[tokio::test]
    async fn undeclared_body_under_limit_streams_fully() {
        let (addr, _) = raw_server(25_500, true).await;
        let dl = fetcher(true, 100_000).get(&format!("http://{addr}/ok"), None).await.expect("download");
        let (got, err, _) = collect(dl).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got.len(), 25_500);
    }

    #[tokio::test]
    async fn stalled_body_times_out() {
        let addr = answer_once(|mut sock| async move {
            let _ = sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello").await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        })
        .await;
        let mut p = policy(true, 1000);
        p.idle_timeout = Duration::from_millis(300);
        let dl = Fetcher::new(p).expect("client").get(&format!("http://{addr}/slow"), None).await.expect("headers");
        let started = std::time::Instant::now();
        let (got, err, after) = collect(dl).await;
        assert_eq!(got, b"hello");
        assert!(matches!(err, Some(FetchError::Timeout)), "{err:?}");
        assert!(err.as_ref().is_some_and(FetchError::is_retryable));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(after, 0);
    }

    #[tokio::test]
    async fn a_trickling_host_is_cut_off_after_the_grace_period() {
        let addr = answer_once(|mut sock| async move {
            let _ = sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n").await;
            // A byte every 50 ms: never idle long enough for the idle timeout.
            for _ in 0..2000 {
                if sock.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        let mut p = policy(true, 1_000_000);
        p.idle_timeout = Duration::from_secs(5);
        p.min_rate = 1024;
        p.rate_grace = Duration::from_millis(300);
        let dl = Fetcher::new(p).expect("client").get(&format!("http://{addr}/trickle"), None).await.expect("headers");
        let started = std::time::Instant::now();
        let (_, err, _) = collect(dl).await;
        assert!(matches!(err, Some(FetchError::TooSlow { min_rate: 1024 })), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[test]
    fn the_rate_is_judged_after_the_grace_period() {
        let s = Duration::from_secs;
        assert!(!too_slow(0, s(10), s(20), 1024), "within the grace period");
        assert!(too_slow(1000, s(21), s(20), 1024));
        assert!(!too_slow(2048, s(21), s(20), 1024));
        assert!(!too_slow(0, s(100), s(20), 0), "0 turns it off");
    }

    #[tokio::test]
    async fn truncated_body_is_network_error() {
        let addr = answer_once(|mut sock| async move {
            let _ = sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello").await;
            // dropped: connection closes early
        })
        .await;
        let dl = fetcher(true, 1000).get(&format!("http://{addr}/cut?sig=topsecret"), None).await.expect("headers");
        let (_, err, _) = collect(dl).await;
        match err {
            Some(e @ FetchError::Network(_)) => {
                assert!(e.is_retryable());
                assert!(!e.to_string().contains("topsecret"), "{e}");
            }
            other => panic!("expected Network, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn connection_refused_is_network_error_without_query() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let err =
            fetcher(true, 1000).get(&format!("http://{addr}/x?token=topsecret"), None).await.expect_err("refused");
        assert!(matches!(err, FetchError::Network(_)), "{err:?}");
        assert!(err.is_retryable());
        let msg = err.to_string();
        assert!(!msg.contains("topsecret"), "{msg}");
        assert!(msg.contains("/x"), "{msg}");
    }

    /// 401 unless the request carries the bearer token, then redirect elsewhere.
    struct AuthThenRedirect {
        to: String,
    }

    impl Respond for AuthThenRedirect {
        fn respond(&self, req: &Request) -> ResponseTemplate {
            match req.headers.get("authorization").and_then(|v| v.to_str().ok()) {
                Some("Bearer KEY123") => ResponseTemplate::new(302).insert_header("Location", self.to.as_str()),
                _ => ResponseTemplate::new(401),
            }
        }
    }

    #[tokio::test]
    async fn bearer_retry_and_cross_origin_redirect_drops_authorization() {
        let first = MockServer::start().await;
        let second = MockServer::start().await;
        let body = pattern(5000);
        Mock::given(method("GET"))
            .and(path("/final.png"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body.clone(), "image/png"))
            .expect(1)
            .mount(&second)
            .await;
        Mock::given(method("GET"))
            .and(path("/media/1"))
            .respond_with(AuthThenRedirect { to: format!("{}/final.png?X-Amz-Signature=abc", second.uri()) })
            .expect(2)
            .mount(&first)
            .await;

        let dl =
            fetcher(true, 1_000_000).get(&format!("{}/media/1", first.uri()), Some("KEY123")).await.expect("download");
        assert_eq!(dl.final_url.path(), "/final.png");
        assert_eq!(dl.final_url.port(), second.address().port().into());
        let (got, err, _) = collect(dl).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got, body);

        let first_reqs = first.received_requests().await.expect("recording");
        assert_eq!(first_reqs.len(), 2);
        assert!(first_reqs[0].headers.get("authorization").is_none());
        assert_eq!(first_reqs[1].headers.get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer KEY123"));
        let second_reqs = second.received_requests().await.expect("recording");
        assert_eq!(second_reqs.len(), 1);
        assert!(second_reqs[0].headers.get("authorization").is_none(), "Authorization leaked to another origin");
    }

    #[tokio::test]
    async fn same_origin_redirect_keeps_authorization() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/a"))
            .and(header("authorization", "Bearer K"))
            .respond_with(ResponseTemplate::new(307).insert_header("Location", "/b"))
            .mount(&server)
            .await;
        Mock::given(method("GET")).and(path("/a")).respond_with(ResponseTemplate::new(403)).mount(&server).await;
        Mock::given(method("GET"))
            .and(path("/b"))
            .and(header_exists("authorization"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(b"ok".to_vec()))
            .mount(&server)
            .await;
        let dl = fetcher(true, 100).get(&format!("{}/a", server.uri()), Some("K")).await.expect("download");
        let (got, err, _) = collect(dl).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got, b"ok");
    }

    #[tokio::test]
    async fn unauthorized_without_bearer_is_fatal_status() {
        let server = MockServer::start().await;
        Mock::given(method("GET")).respond_with(ResponseTemplate::new(401)).expect(1).mount(&server).await;
        let err = fetcher(true, 100).get(&format!("{}/a", server.uri()), None).await.expect_err("401");
        assert!(matches!(err, FetchError::Status(401)), "{err:?}");
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn bearer_is_retried_only_once() {
        let server = MockServer::start().await;
        Mock::given(method("GET")).respond_with(ResponseTemplate::new(403)).expect(2).mount(&server).await;
        let err = fetcher(true, 100).get(&format!("{}/a", server.uri()), Some("K")).await.expect_err("403");
        assert!(matches!(err, FetchError::Status(403)), "{err:?}");
    }

    #[tokio::test]
    async fn redirect_loop_is_too_many_redirects() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/loop"))
            .respond_with(ResponseTemplate::new(302).insert_header("Location", "/loop"))
            .mount(&server)
            .await;
        let err = fetcher(true, 100).get(&format!("{}/loop", server.uri()), None).await.expect_err("loop");
        assert!(matches!(err, FetchError::TooManyRedirects), "{err:?}");
        assert!(!err.is_retryable());
        // the original request plus max_redirects (5) followed hops
        let n = server.received_requests().await.expect("recording").len();
        assert_eq!(n, 6);
    }

    #[tokio::test]
    async fn exactly_max_redirects_is_followed() {
        let server = MockServer::start().await;
        for i in 0..5 {
            Mock::given(method("GET"))
                .and(path(format!("/r{i}")))
                .respond_with(ResponseTemplate::new(301).insert_header("Location", format!("/r{}", i + 1)))
                .mount(&server)
                .await;
        }
        Mock::given(method("GET"))
            .and(path("/r5"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(b"done".to_vec()))
            .mount(&server)
            .await;
        let dl = fetcher(true, 100).get(&format!("{}/r0", server.uri()), None).await.expect("5 redirects are allowed");
        assert_eq!(dl.final_url.path(), "/r5");
    }

    #[tokio::test]
    async fn private_targets_are_forbidden_and_never_contacted() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(b"secret".to_vec()))
            .mount(&server)
            .await;
        let port = server.address().port();
        let f = fetcher(false, 1000);
        for url in [
            format!("http://127.0.0.1:{port}/x"),
            format!("http://localhost:{port}/x?token=topsecret"),
            "http://[::1]/x".to_owned(),
            format!("http://[::ffff:127.0.0.1]:{port}/x"),
            format!("http://2130706433:{port}/x"), // 127.0.0.1 in decimal
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "http://10.0.0.1/x".to_owned(),
            "http://[fd00::1]/x".to_owned(),
            "http://0.0.0.0/x".to_owned(),
        ] {
            let err = f.get(&url, Some("KEY")).await.expect_err(&url);
            assert!(matches!(err, FetchError::Forbidden(_)), "{url}: {err:?}");
            assert!(!err.is_retryable());
            assert!(!err.to_string().contains("topsecret"), "{err}");
        }
        let err = f.get(&format!("http://localhost:{port}/x"), None).await.expect_err("localhost");
        assert!(err.to_string().contains("localhost"), "{err}");
        assert!(!err.to_string().contains("127.0.0.1"), "{err}");
        let n = server.received_requests().await.expect("recording").len();
        assert_eq!(n, 0, "a request reached the private server");
    }

    #[tokio::test]
    async fn per_hop_check_refuses_private_literals() {
        // A wiremock origin is itself private, so a live "public origin
        // redirects to a private address" test is impossible here; `get`
        // runs this same check at the top of every hop, so exercise it
        // directly.
        let f = fetcher(false, 1000);
        let hop = Url::parse("http://192.168.1.10/admin").expect("url");
        let err = f.check_target(&hop).expect_err("private hop");
        assert!(matches!(err, FetchError::Forbidden(_)), "{err:?}");
        let hop = Url::parse("http://93.184.216.34/file").expect("url");
        assert!(f.check_target(&hop).is_ok());
    }

    #[tokio::test]
    async fn invalid_urls_are_rejected() {
        let f = fetcher(false, 1000);
        for url in [
            "ftp://example.com/file.jpg",
            "file:///etc/passwd",
            "gopher://example.com/",
            "http://user:pass@example.com/x",
            "https://user@example.com/x",
            "not a url",
            "data:text/plain,hi",
        ] {
            let err = f.get(url, None).await.expect_err(url);
            assert!(matches!(err, FetchError::InvalidUrl(_)), "{url}: {err:?}");
            assert!(!err.is_retryable());
            assert!(!err.to_string().contains("pass"), "{err}");
        }
    }

    #[tokio::test]
    async fn redirect_to_ftp_is_invalid() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(302).insert_header("Location", "ftp://example.com/f"))
            .mount(&server)
            .await;
        let err = fetcher(true, 100).get(&format!("{}/a", server.uri()), None).await.expect_err("ftp");
        assert!(matches!(err, FetchError::InvalidUrl(_)), "{err:?}");
    }

    #[test]
    fn retryable_classification() {
        for code in [404, 408, 425, 429, 500, 502, 503, 504, 599] {
            assert!(FetchError::Status(code).is_retryable(), "{code}");
        }
        for code in [400, 401, 403, 405, 410, 413, 415, 451, 300, 304] {
            assert!(!FetchError::Status(code).is_retryable(), "{code}");
        }
        assert!(FetchError::Timeout.is_retryable());
        assert!(FetchError::Network("x".into()).is_retryable());
        assert!(!FetchError::TooLarge { limit: 1 }.is_retryable());
        assert!(!FetchError::TooManyRedirects.is_retryable());
        assert!(!FetchError::Forbidden("h".into()).is_retryable());
        assert!(!FetchError::InvalidUrl("u".into()).is_retryable());
    }

    #[test]
    fn redact_drops_query_userinfo_fragment() {
        let u = Url::parse("https://u:p@cdn.example.com:8443/a/b.jpg?sig=s3cr3t#frag").expect("url");
        assert_eq!(redact(&u), "https://cdn.example.com:8443/a/b.jpg");
        let u = Url::parse("http://[2001:db8::1]/x?t=1").expect("url");
        assert_eq!(redact(&u), "http://[2001:db8::1]/x");
    }

    #[test]
    fn public_ip_table() {
        let cases: &[(&str, bool)] = &[
            // IPv4 public
            ("8.8.8.8", true),
            ("1.1.1.1", true),
            ("93.184.216.34", true),
            ("100.63.255.255", true),
            ("100.128.0.1", true),
            ("172.15.255.255", true),
            ("172.32.0.1", true),
            ("192.0.1.1", true),
            ("192.169.0.1", true),
            ("198.17.255.255", true),
            ("198.20.0.1", true),
            ("223.255.255.254", true),
            ("11.0.0.1", true),
            // IPv4 not public
            ("0.0.0.0", false),
            ("0.1.2.3", false),
            ("10.0.0.1", false),
            ("10.255.255.255", false),
            ("100.64.0.1", false),
            ("100.127.255.254", false),
            ("127.0.0.1", false),
            ("127.255.255.254", false),
            ("169.254.169.254", false),
            ("169.254.0.1", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("192.0.0.8", false),
            ("192.0.2.1", false),
            ("192.88.99.1", false),
            ("192.168.1.1", false),
            ("198.18.0.1", false),
            ("198.19.255.255", false),
            ("198.51.100.7", false),
            ("203.0.113.9", false),
            ("224.0.0.1", false),
            ("239.255.255.250", false),
            ("240.0.0.1", false),
            ("255.255.255.255", false),
            // IPv6 public
            ("2606:4700::1111", true),
            ("2001:4860:4860::8888", true),
            ("2a00:1450:4001:80b::200e", true),
            ("2600::", true),
            ("::ffff:8.8.8.8", true),
            ("64:ff9b::808:808", true),
            ("2002:808:808::1", true),
            // IPv6 not public
            ("::", false),
            ("::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:10.1.2.3", false),
            ("::ffff:169.254.169.254", false),
            ("::ffff:0.0.0.0", false),
            ("::127.0.0.1", false),
            ("::192.168.0.1", false),
            ("64:ff9b::7f00:1", false),
            ("64:ff9b::a9fe:a9fe", false),
            ("64:ff9b:1::1", false),
            ("2002:7f00:1::1", false),
            ("2002:c0a8:101::1", false),
            ("100::1", false),
            ("2001::1", false),
            ("2001:0:4136:e378::1", false),
            ("2001:db8::1", false),
            ("3fff::1", false),
            ("fc00::1", false),
            ("fd00::1", false),
            ("fdff:ffff::1", false),
            ("fe80::1", false),
            ("febf::1", false),
            ("fec0::1", false),
            ("ff02::1", false),
            ("ff0e::1", false),
            ("5f00::1", false),
            ("1000::1", false),
            ("4000::1", false),
        ];
        for (text, expected) in cases {
            let ip: IpAddr = text.parse().expect("ip");
            assert_eq!(is_public_ip(ip), *expected, "{text}");
        }
    }
}
