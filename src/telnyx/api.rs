//! Telnyx Messaging API v2 client: `POST /messages`, and what its failures mean
//! for a reply that must be sent exactly once.
//!
//! Telnyx has no idempotency key, so every failure is sorted by whether the
//! message could have gone out (see [`SendError`]):
//!
//! - **certainly not sent** ([`SendError::Retryable`]): HTTP 429 / code 10011,
//!   a 5xx answer, code 40318 (queue full), or a connection that failed before
//!   the request was written;
//! - **maybe sent** ([`SendError::Ambiguous`]): a timeout or broken connection
//!   after the request left, or a 2xx answer whose body cannot be read. The
//!   caller must not resend; the status webhook reconciles the message;
//! - **refused** ([`SendError::Rejected`]): Telnyx answered with an error that
//!   the same request cannot get past (opt-out, bad number, bad sender, …).
//!
//! Refusals are classified by `errors[].code`, not by HTTP status: Telnyx does
//! not document which status carries which code (40300 has been seen with 400,
//! 403 and 422). The status only decides when the body has no usable code.
//!
//! The API key is held as a [`SecretString`] and leaves it only for the
//! `Authorization` header (marked sensitive). It never appears in errors,
//! `Debug` output or logs; text echoed back by the server is scrubbed of it
//! too. Logs carry the endpoint without query string, statuses, error codes
//! and message ids — never phone numbers, message text or media URLs.

use crate::domain::DeliveryStatus;
use std::fmt;
use std::time::Duration;

use http::header::{HeaderMap, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::net::{error_chain, redact};

/// Time allowed to establish the TCP + TLS connection to Telnyx.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a whole send, from connecting to the end of the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body read from Telnyx (a send answer is about 2 KB).
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// `errors[].code` of a member who texted STOP.
pub const CODE_OPTED_OUT: &str = "40300";
/// `errors[].code` values meaning the destination cannot receive messages:
/// invalid 'to' address, unsupported message type for the 'to' address,
/// number not in +E.164, not routable (landline), invalid destination.
pub const CODES_UNREACHABLE: &[&str] = &["40310", "40301", "10016", "40001", "40012"];
/// `errors[].code` values meaning "not now, try again later": unexpected
/// error, request timeout, too many requests, resource being processed,
/// service unavailable, message queue full.
const CODES_TRANSIENT: &[&str] = &["10007", "10008", "10011", "10036", "10037", "40318"];
const CODE_RATE_LIMITED: &str = "10011";
const CODE_QUEUE_FULL: &str = "40318";

// Leading words of `SendError::Retryable::reason` set by this module, which
// `SendError::leader_message` recognises.
const REASON_RATE_LIMITED: &str = "Telnyx is rate limiting";
const REASON_QUEUE_FULL: &str = "Telnyx's message queue is full";
const REASON_CONNECT: &str = "could not connect to Telnyx";

/// Why a [`TelnyxClient`] could not be built (a configuration problem).
#[derive(Debug, thiserror::Error)]
pub enum TelnyxError {
    /// `TELNYX_API_BASE_URL` is not an http(s) URL without credentials, query or fragment.
    #[error("invalid Telnyx API base URL: {0}")]
    InvalidBaseUrl(String),
    /// The API key is empty or cannot be sent in an HTTP header.
    #[error("the Telnyx API key is empty or contains characters not allowed in an HTTP header")]
    InvalidApiKey,
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client for Telnyx: {0}")]
    Client(String),
}

/// Client for Telnyx's Messaging API v2. Cheap to clone (shares one connection pool).
#[derive(Clone)]
pub struct TelnyxClient {
    http: reqwest::Client,
    base: Url,
    messages_url: Url,
    key: SecretString,
}

impl fmt::Debug for TelnyxClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelnyxClient").field("base", &redact(&self.base)).finish_non_exhaustive()
    }
}

impl TelnyxClient {
    /// A client for the API at `base_url` (`TELNYX_API_BASE_URL`, normally
    /// `https://api.telnyx.com/v2`), with a 10 s connect and 30 s whole-request timeout.
    pub fn new(base_url: &Url, api_key: SecretString) -> Result<Self, TelnyxError> {
        Self::with_timeouts(base_url, api_key, CONNECT_TIMEOUT, REQUEST_TIMEOUT)
    }

    /// [`TelnyxClient::new`] with other timeouts; meant for tests (short
    /// timeouts exercise the [`SendError::Ambiguous`] path).
    pub fn with_timeouts(
        base_url: &Url,
        api_key: SecretString,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, TelnyxError> {
        let messages_url = messages_url(base_url)?;
        if api_key.expose_secret().trim().is_empty() || bearer(&api_key).is_none() {
            return Err(TelnyxError::InvalidApiKey);
        }
        // No redirects: the API never redirects a send, and following one would
        // resend the POST somewhere else.
        let http = crate::crypto::tls::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .user_agent(concat!("koinonia/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TelnyxError::Client(error_chain(&e)))?;
        Ok(Self { http, base: base_url.clone(), messages_url, key: api_key })
    }

    /// Sends one SMS/MMS: `POST {base}/messages`.
    ///
    /// The body carries `from`, `to`, `text` (when given and non-empty),
    /// `media_urls` (only when non-empty: its mere presence makes Telnyx send
    /// MMS), `type: "MMS"` (only when `force_mms`) and `webhook_url` (when
    /// given). `use_profile_webhooks` is left to Telnyx's default (`true`).
    ///
    /// Makes exactly one HTTP request; retrying is the caller's decision, and
    /// only a [`SendError::Retryable`] may be retried.
    pub async fn send_message(&self, req: &SendMessage<'_>) -> Result<SentMessage, SendError> {
        let (url, to, kind) = match req.to {
            To::One(number) => (self.messages_url.clone(), ToBody::One(number), req.force_mms.then_some("MMS")),
            // A group MMS is MMS by its nature: `group_mms` takes no `type`.
            To::Group(numbers) => {
                let mut url = self.messages_url.clone();
                // `messages_url` was checked to be a base URL, so this always appends.
                if let Ok(mut path) = url.path_segments_mut() {
                    path.push("group_mms");
                }
                (url, ToBody::Many(numbers), None)
            }
        };
        let body = RequestBody {
            from: req.from,
            to,
            text: req.text.filter(|t| !t.is_empty()),
            media_urls: req.media_urls,
            kind,
            webhook_url: req.webhook_url,
        };
        let Some(auth) = bearer(&self.key) else {
            // Unreachable: `with_timeouts` checked the key.
            return Err(SendError::Retryable {
                reason: "the Telnyx API key is not a valid header value".to_owned(),
                retry_after: None,
            });
        };
        tracing::debug!(
            url = %redact(&url),
            media = req.media_urls.len(),
            force_mms = req.force_mms,
            "telnyx send request"
        );

        let response = match self.http.post(url).header(AUTHORIZATION, auth).json(&body).send().await {
            Ok(response) => response,
            Err(err) => {
                let err = transport_error(err);
                tracing::debug!(error = %err, "telnyx send failed");
                return Err(err);
            }
        };
        let status = response.status();
        let retry_after = parse_retry_after(response.headers());
        let body = read_capped(response).await;

        let result = if status.is_success() {
            body.map_err(|e| SendError::Ambiguous {
                reason: format!("Telnyx answered HTTP {} but the answer could not be read: {e}", status.as_u16()),
            })
            .and_then(|bytes| parse_success(status, &bytes))
        } else {
            let mut errors = body.ok().and_then(|bytes| parse_errors(&bytes)).unwrap_or_default();
            scrub(&mut errors, self.key.expose_secret());
            Err(classify_answer(status, errors, retry_after))
        };
        match &result {
            Ok(sent) => tracing::debug!(
                status = status.as_u16(),
                message_id = %sent.id,
                to_status = sent.to_status.as_deref().unwrap_or(""),
                "telnyx send accepted"
            ),
            Err(err) => tracing::debug!(status = status.as_u16(), error = %err, "telnyx send failed"),
        }
        result
    }
}

/// Who a message goes to: one number, or the members of a group (a group MMS,
/// `POST {base}/messages/group_mms`, at most 8 numbers in the US and Canada).
#[derive(Clone, Copy)]
pub enum To<'a> {
    One(&'a str),
    Group(&'a [String]),
}

/// One message to send. `from` is the church number, `to` the member's (or the group's), +E.164.
#[derive(Clone, Copy)]
pub struct SendMessage<'a> {
    pub from: &'a str,
    pub to: To<'a>,
    /// Message text; `None` (or empty) for media only.
    pub text: Option<&'a str>,
    /// Public (presigned) URLs of the media; empty for SMS.
    pub media_urls: &'a [String],
    /// Where Telnyx sends this message's `message.sent` / `message.finalized`.
    pub webhook_url: Option<&'a str>,
    /// Send as MMS even without media (a text too long for SMS).
    pub force_mms: bool,
}

/// Phone numbers show their last four digits; text, media URLs and the
/// webhook URL (which may carry tokens) only their size or presence.
impl fmt::Debug for SendMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendMessage")
            .field("from", &mask_number(self.from))
            .field(
                "to",
                &match self.to {
                    To::One(n) => vec![mask_number(n)],
                    To::Group(ns) => ns.iter().map(|n| mask_number(n)).collect(),
                },
            )
            .field("text_chars", &self.text.map(|t| t.chars().count()))
            .field("media_urls", &self.media_urls.len())
            .field("webhook_url", &self.webhook_url.is_some())
            .field("force_mms", &self.force_mms)
            .finish()
    }
}

/// What Telnyx answered to an accepted send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// Telnyx's message id (`data.id`); later webhooks carry it as `payload.id`.
    pub id: String,
    /// `data.to[0].status`, normally `queued`.
    pub to_status: Option<String>,
    /// Each recipient's number and status (`data.to[]`): a group MMS lists every member.
    pub recipients: Vec<(String, Option<String>)>,
}

/// One entry of Telnyx's `errors[]` (send answers and `message.finalized`
/// payloads alike). `detail` may name the phone numbers involved: `Debug`
/// masks them, `Display` of [`SendError`] leaves `detail` out.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "RawErrorDetail")]
pub struct ApiErrorDetail {
    /// Telnyx's error code, e.g. `"40300"` (a number in the JSON is accepted too).
    pub code: String,
    pub title: String,
    pub detail: Option<String>,
}

impl fmt::Debug for ApiErrorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiErrorDetail")
            .field("code", &self.code)
            .field("title", &self.title)
            .field("detail", &self.detail.as_deref().map(mask_digit_runs))
            .finish()
    }
}

/// Why a send did not succeed, sorted by what the caller may do next.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Certainly not sent: 429 / code 10011 (with `retry-after` seconds if
    /// given), a 5xx answer, 40318 queue full, or a connection that failed
    /// before the request was written. Retry with backoff, waiting at least
    /// `retry_after`.
    #[error("Telnyx send failed before taking effect: {reason}")]
    Retryable { reason: String, retry_after: Option<Duration> },
    /// The request may have reached Telnyx (timeout after sending, connection
    /// reset mid-response, unreadable 2xx body): must NOT be retried blindly.
    #[error("Telnyx send outcome unknown: {reason}")]
    Ambiguous { reason: String },
    /// Telnyx refused it; resending the same request cannot succeed.
    #[error("Telnyx refused the message (HTTP {status}){}", summarize(errors))]
    Rejected { status: u16, errors: Vec<ApiErrorDetail> },
}

impl SendError {
    /// Telnyx refused because the member opted out (code 40300).
    pub fn is_opt_out(&self) -> bool {
        self.codes().any(|code| code == CODE_OPTED_OUT)
    }

    /// Telnyx refused because the number cannot receive messages
    /// ([`CODES_UNREACHABLE`]).
    pub fn is_unreachable(&self) -> bool {
        self.codes().any(|code| CODES_UNREACHABLE.contains(&code))
    }

    /// One sentence fit to show a leader (never the API key, never a phone number).
    pub fn leader_message(&self) -> String {
        match self {
            SendError::Retryable { reason, .. } => {
                if reason.starts_with(REASON_RATE_LIMITED) {
                    "Telnyx is rate limiting; will retry.".to_owned()
                } else if reason.starts_with(REASON_QUEUE_FULL) {
                    "Telnyx's sending queue is full; will retry.".to_owned()
                } else if reason.starts_with(REASON_CONNECT) {
                    "Telnyx could not be reached; will retry.".to_owned()
                } else {
                    "Telnyx had a temporary problem; will retry.".to_owned()
                }
            }
            SendError::Ambiguous { .. } => {
                "Telnyx did not confirm the message, so it may or may not have been sent — check before resending."
                    .to_owned()
            }
            SendError::Rejected { status, errors } => {
                if self.is_opt_out() {
                    return "The member has opted out (replied STOP).".to_owned();
                }
                let unreachable = errors.iter().find(|e| CODES_UNREACHABLE.contains(&e.code.as_str()));
                if let Some(e) = unreachable {
                    return format!("The member's number cannot receive messages: {}.", describe(e));
                }
                match errors.first() {
                    Some(e) => format!("Telnyx refused the message: {}.", describe(e)),
                    None => format!("Telnyx refused the message (HTTP {status})."),
                }
            }
        }
    }

    fn codes(&self) -> impl Iterator<Item = &str> {
        let errors: &[ApiErrorDetail] = match self {
            SendError::Rejected { errors, .. } => errors,
            SendError::Retryable { .. } | SendError::Ambiguous { .. } => &[],
        };
        errors.iter().map(|e| e.code.as_str())
    }
}

/// `to[].status` of a `message.sent` / `message.finalized` payload →
/// koinonia's `deliveryStatus`; `None` for a status koinonia does not know.
/// `delivery_unconfirmed` (no receipt from the carrier) is not a failure: it
/// stays `sent`. For `failed`, [`delivery_failure_reason`] gives the reason.
pub fn delivery_status(telnyx_status: &str) -> Option<DeliveryStatus> {
    match telnyx_status {
        "queued" => Some(DeliveryStatus::Queued),
        "sending" => Some(DeliveryStatus::Sending),
        "sent" | "delivery_unconfirmed" => Some(DeliveryStatus::Sent),
        "delivered" => Some(DeliveryStatus::Delivered),
        "sending_failed" | "delivery_failed" | "expired" => Some(DeliveryStatus::Failed),
        _ => None,
    }
}

/// A failure reason from a payload's `errors[]`, e.g. "Undeliverable (40008)";
/// `None` when there are none.
pub fn delivery_failure_reason(errors: &[ApiErrorDetail]) -> Option<String> {
    errors.first().map(describe)
}

#[derive(Serialize)]
struct RequestBody<'a> {
    from: &'a str,
    to: ToBody<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    media_urls: &'a [String],
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_url: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ToBody<'a> {
    One(&'a str),
    Many(&'a [String]),
}

#[derive(Deserialize)]
struct SuccessBody {
    data: SuccessData,
}

#[derive(Deserialize)]
struct SuccessData {
    id: String,
    #[serde(default)]
    to: Option<Vec<Recipient>>,
}

#[derive(Deserialize)]
struct Recipient {
    #[serde(default)]
    phone_number: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    errors: Vec<ApiErrorDetail>,
}

#[derive(Deserialize)]
struct RawErrorDetail {
    #[serde(default)]
    code: Option<Code>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Code {
    Text(String),
    Number(i64),
}

impl From<RawErrorDetail> for ApiErrorDetail {
    fn from(raw: RawErrorDetail) -> Self {
        let code = match raw.code {
            Some(Code::Text(s)) => s.trim().to_owned(),
            Some(Code::Number(n)) => n.to_string(),
            None => String::new(),
        };
        ApiErrorDetail { code, title: raw.title.unwrap_or_default(), detail: raw.detail }
    }
}

/// `{base}/messages`, keeping the base path (`…/v2` and `…/v2/` alike).
fn messages_url(base: &Url) -> Result<Url, TelnyxError> {
    if !matches!(base.scheme(), "http" | "https") {
        return Err(TelnyxError::InvalidBaseUrl(format!("unsupported scheme {:?}", base.scheme())));
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err(TelnyxError::InvalidBaseUrl("credentials in the URL are not allowed".to_owned()));
    }
    if base.host().is_none() {
        return Err(TelnyxError::InvalidBaseUrl("the URL has no host".to_owned()));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(TelnyxError::InvalidBaseUrl(format!("{} must not have a query or fragment", redact(base))));
    }
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| TelnyxError::InvalidBaseUrl(format!("{} cannot be a base URL", redact(base))))?
        .pop_if_empty()
        .push("messages");
    Ok(url)
}

/// `Authorization: Bearer <key>`, marked sensitive (hidden from `Debug`,
/// never compressed into HTTP/2 header tables); `None` if the key cannot be a header value.
fn bearer(key: &SecretString) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret())).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// A reqwest error before any answer: not sent if the connection never
/// opened, otherwise possibly sent.
fn transport_error(err: reqwest::Error) -> SendError {
    let err = err.without_url();
    let chain = error_chain(&err);
    if err.is_connect() {
        // DNS, TCP or TLS failed (a connect timeout included): nothing was written.
        SendError::Retryable { reason: format!("{REASON_CONNECT}: {chain}"), retry_after: None }
    } else if err.is_builder() {
        SendError::Retryable { reason: format!("could not build the request: {chain}"), retry_after: None }
    } else if err.is_timeout() {
        SendError::Ambiguous { reason: format!("no answer from Telnyx in time: {chain}") }
    } else {
        SendError::Ambiguous { reason: format!("the connection to Telnyx failed after the request was sent: {chain}") }
    }
}

/// The body, up to [`MAX_RESPONSE_BYTES`]; the error says why it could not be read.
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(format!("the answer is larger than {MAX_RESPONSE_BYTES} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(err) => return Err(error_chain(&err.without_url())),
        }
    }
}

fn parse_success(status: StatusCode, bytes: &[u8]) -> Result<SentMessage, SendError> {
    let ambiguous =
        |what: String| SendError::Ambiguous { reason: format!("Telnyx answered HTTP {} but {what}", status.as_u16()) };
    let parsed: SuccessBody =
        serde_json::from_slice(bytes).map_err(|e| ambiguous(format!("the answer is not a message: {e}")))?;
    let id = parsed.data.id.trim().to_owned();
    if id.is_empty() {
        return Err(ambiguous("the message id is empty".to_owned()));
    }
    let to = parsed.data.to.unwrap_or_default();
    let to_status = to.first().and_then(|r| r.status.clone());
    let recipients = to.into_iter().filter_map(|r| Some((r.phone_number?, r.status))).collect();
    Ok(SentMessage { id, to_status, recipients })
}

/// `errors[]` of an error answer; `None` when the body has none.
fn parse_errors(bytes: &[u8]) -> Option<Vec<ApiErrorDetail>> {
    let body: ErrorBody = serde_json::from_slice(bytes).ok()?;
    (!body.errors.is_empty()).then_some(body.errors)
}

/// Sorts a non-2xx answer. A code decides when it is one Telnyx documents: a
/// client-side code (1xxxx, 2xxxx, 400xx–403xx) refuses, a transient one
/// ([`CODES_TRANSIENT`]) retries, refusal winning over transient. Otherwise the
/// status decides: 5xx, 408, 425 and 429 retry, anything else refuses.
fn classify_answer(status: StatusCode, errors: Vec<ApiErrorDetail>, retry_after: Option<Duration>) -> SendError {
    let code = status.as_u16();
    if errors.iter().any(|e| is_documented_refusal(&e.code)) {
        return SendError::Rejected { status: code, errors };
    }
    if let Some(e) = errors.iter().find(|e| CODES_TRANSIENT.contains(&e.code.as_str())) {
        let reason = match e.code.as_str() {
            CODE_RATE_LIMITED => format!("{REASON_RATE_LIMITED} ({CODE_RATE_LIMITED}, HTTP {code})"),
            CODE_QUEUE_FULL => format!("{REASON_QUEUE_FULL} ({CODE_QUEUE_FULL}, HTTP {code})"),
            _ => format!("Telnyx had a temporary problem: {} (HTTP {code})", describe(e)),
        };
        return SendError::Retryable { reason, retry_after };
    }
    match code {
        429 => SendError::Retryable { reason: format!("{REASON_RATE_LIMITED} (HTTP 429)"), retry_after },
        408 | 425 | 500..=599 => SendError::Retryable { reason: format!("Telnyx answered HTTP {code}"), retry_after },
        _ => SendError::Rejected { status: code, errors },
    }
}

fn is_documented_refusal(code: &str) -> bool {
    if CODES_TRANSIENT.contains(&code) {
        return false;
    }
    matches!(code.parse::<u32>(), Ok(10000..=10999 | 20000..=20999 | 40000..=40399))
}

/// `retry-after` in delta-seconds (the HTTP-date form is ignored); without it, Telnyx's
/// `x-ratelimit-reset` (seconds until the window resets, or the Unix time it resets at).
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
    if let Some(secs) = header(RETRY_AFTER.as_str()) {
        return Some(Duration::from_secs(secs));
    }
    let reset = header("x-ratelimit-reset")?;
    if reset > 1_000_000_000 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
        Some(Duration::from_secs(reset.saturating_sub(now).min(3600)))
    } else {
        Some(Duration::from_secs(reset.min(3600)))
    }
}

/// Removes the API key from text the server sent back (it has no business
/// echoing it, but the key must never reach a log or a leader). Strings under
/// 8 characters are left alone: replacing them would mangle ordinary words,
/// and no real Telnyx key is that short.
fn scrub(errors: &mut [ApiErrorDetail], key: &str) {
    let key = key.trim();
    if key.len() < 8 {
        return;
    }
    for e in errors {
        for text in [&mut e.code, &mut e.title].into_iter().chain(e.detail.as_mut()) {
            if text.contains(key) {
                *text = text.replace(key, "[redacted]");
            }
        }
    }
}

/// "Title (code)", cleaned for display: control characters removed, at most
/// 120 characters, no trailing period.
fn describe(e: &ApiErrorDetail) -> String {
    let mut title: String =
        e.title.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_owned();
    if title.chars().count() > 120 {
        title = title.chars().take(119).collect::<String>() + "…";
    }
    let title = title.trim_end_matches('.');
    let code: String = e.code.chars().filter(|c| c.is_ascii_alphanumeric()).take(12).collect();
    match (title.is_empty(), code.is_empty()) {
        (false, false) => format!("{title} ({code})"),
        (false, true) => title.to_owned(),
        (true, false) => format!("error {code}"),
        (true, true) => "no reason given".to_owned(),
    }
}

/// `": 40300 Blocked due to STOP message; …"` for `Display` (no `detail`: it may name phone numbers).
fn summarize(errors: &[ApiErrorDetail]) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = errors.iter().map(describe).collect();
    format!(": {}", parts.join("; "))
}

/// `•••1234`: the last four characters only.
fn mask_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("•••{tail}")
}

/// Every run of 7 or more digits (a phone number, with or without `+`)
/// becomes `•••` and its last four digits.
fn mask_digit_runs(text: &str) -> String {
    fn flush(out: &mut String, run: &mut String) {
        if run.len() >= 7 {
            out.push_str("•••");
            out.push_str(&run[run.len() - 4..]);
        } else {
            out.push_str(run);
        }
        run.clear();
    }
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut out, &mut run);
            out.push(c);
        }
    }
    flush(&mut out, &mut run);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

    const KEY: &str = "KEY0123456789abcdef_Zq9SECRETsecret";

    fn key() -> SecretString {
        SecretString::from(KEY)
    }

    fn base(server: &MockServer) -> Url {
        Url::parse(&format!("{}/v2", server.uri())).expect("url")
    }

    fn client(server: &MockServer) -> TelnyxClient {
        TelnyxClient::new(&base(server), key()).expect("client")
    }

    fn sms<'a>(text: &'a str, media: &'a [String]) -> SendMessage<'a> {
        SendMessage {
            from: "+15551230001",
            to: To::One("+15559870002"),
            text: Some(text),
            media_urls: media,
            webhook_url: None,
            force_mms: false,
        }
    }

    /// The real send answer (trimmed) from TELNYX.md §1.
    fn accepted() -> Value {
        json!({
            "data": {
                "record_type": "message",
                "direction": "outbound",
                "id": "403195bd-9cb7-4d24-81d6-32680da2d823",
                "type": "SMS",
                "from": { "phone_number": "+15551230001", "carrier": "Telnyx", "line_type": "Wireless" },
                "to": [ { "phone_number": "+15559870002", "status": "queued",
                          "carrier": "NEW CINGULAR WIRELESS PCS, LLC - DC", "line_type": "Wireless" } ],
                "cc": [], "text": "test", "media": [], "encoding": "GSM-7", "parts": 1, "tags": [],
                "cost": { "amount": "0.0140", "currency": "USD" },
                "received_at": "2025-03-22T11:28:39.401+00:00",
                "sent_at": null, "completed_at": null,
                "valid_until": "2025-03-22T12:28:39.401+00:00",
                "errors": []
            }
        })
    }

    fn error_body(code: &str, title: &str) -> Value {
        json!({ "errors": [ { "code": code, "title": title,
            "detail": "Messages cannot be sent from '+15551230001' to '+15559870002'." } ] })
    }

    async fn mount(server: &MockServer, response: impl Respond + 'static) {
        Mock::given(method("POST")).and(path("/v2/messages")).respond_with(response).expect(1).mount(server).await;
    }

    async fn only_request(server: &MockServer) -> Request {
        let mut requests = server.received_requests().await.expect("recording");
        assert_eq!(requests.len(), 1, "exactly one request");
        requests.remove(0)
    }

    async fn only_body(server: &MockServer) -> Value {
        serde_json::from_slice(&only_request(server).await.body).expect("json body")
    }

    async fn send_answer(response: ResponseTemplate) -> SendError {
        let server = MockServer::start().await;
        mount(&server, response).await;
        client(&server).send_message(&sms("hi", &[])).await.expect_err("should fail")
    }

    #[track_caller]
    fn assert_no_key(err: &SendError) {
        for text in [err.to_string(), format!("{err:?}"), err.leader_message()] {
            assert!(!text.contains(KEY), "key leaked: {text}");
            assert!(!text.contains("SECRET"), "key leaked: {text}");
        }
    }

    #[tokio::test]
    async fn sms_success_parses_answer_and_sends_exact_body() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v2/messages"))
            .and(header("authorization", format!("Bearer {KEY}").as_str()))
            .and(header("content-type", "application/json"))
            .respond_with(ResponseTemplate::new(200).set_body_json(accepted()))
            .expect(1)
            .mount(&server)
            .await;
        let req = SendMessage {
            webhook_url: Some("https://church.example.org/api/webhooks/telnyx/status?m=0193"),
            ..sms("See you Sunday!", &[])
        };
        let sent = client(&server).send_message(&req).await.expect("sent");
        assert_eq!(sent.id, "403195bd-9cb7-4d24-81d6-32680da2d823");
        assert_eq!(sent.to_status.as_deref(), Some("queued"));
        assert_eq!(
            only_body(&server).await,
            json!({
                "from": "+15551230001",
                "to": "+15559870002",
                "text": "See you Sunday!",
                "webhook_url": "https://church.example.org/api/webhooks/telnyx/status?m=0193"
            })
        );
    }

    #[tokio::test]
    async fn mms_sends_media_urls_without_type() {
        let server = MockServer::start().await;
        mount(&server, ResponseTemplate::new(200).set_body_json(accepted())).await;
        let media = vec!["https://files.example.org/m/1.jpg?X-Amz-Signature=abc".to_owned()];
        let req = SendMessage { text: None, ..sms("", &media) };
        client(&server).send_message(&req).await.expect("sent");
        assert_eq!(
            only_body(&server).await,
            json!({
                "from": "+15551230001",
                "to": "+15559870002",
                "media_urls": ["https://files.example.org/m/1.jpg?X-Amz-Signature=abc"]
            })
        );
    }

    #[tokio::test]
    async fn mms_with_caption_keeps_text_and_all_urls() {
        let server = MockServer::start().await;
        mount(&server, ResponseTemplate::new(200).set_body_json(accepted())).await;
        let media = vec!["https://f.example.org/a.jpg".to_owned(), "https://f.example.org/b.mp4".to_owned()];
        client(&server).send_message(&sms("Photos", &media)).await.expect("sent");
        assert_eq!(
            only_body(&server).await,
            json!({
                "from": "+15551230001",
                "to": "+15559870002",
                "text": "Photos",
                "media_urls": ["https://f.example.org/a.jpg", "https://f.example.org/b.mp4"]
            })
        );
    }

    #[tokio::test]
    async fn forced_mms_sends_type_and_no_media_urls() {
        let server = MockServer::start().await;
        mount(&server, ResponseTemplate::new(200).set_body_json(accepted())).await;
        let long = "a".repeat(2000);
        let req = SendMessage { force_mms: true, ..sms(&long, &[]) };
        client(&server).send_message(&req).await.expect("sent");
        assert_eq!(
            only_body(&server).await,
            json!({ "from": "+15551230001", "to": "+15559870002", "text": long, "type": "MMS" })
        );
    }

    #[tokio::test]
    async fn success_without_to_status_is_still_success() {
        let server = MockServer::start().await;
        mount(&server, ResponseTemplate::new(200).set_body_json(json!({ "data": { "id": "abc" } }))).await;
        let sent = client(&server).send_message(&sms("hi", &[])).await.expect("sent");
        assert_eq!(sent, SentMessage { id: "abc".into(), to_status: None, recipients: Vec::new() });
    }

    #[tokio::test]
    async fn a_group_mms_goes_to_group_mms_with_every_number() {
        let server = MockServer::start().await;
        let answer = json!({ "data": { "id": "g-1", "type": "MMS", "to": [
            { "phone_number": "+15559870002", "status": "queued" },
            { "phone_number": "+15559870003", "status": "queued" }
        ] } });
        Mock::given(method("POST"))
            .and(path("/v2/messages/group_mms"))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer))
            .expect(1)
            .mount(&server)
            .await;
        let group = vec!["+15559870002".to_owned(), "+15559870003".to_owned()];
        let req = SendMessage { to: To::Group(&group), force_mms: true, ..sms("Hello all", &[]) };
        let sent = client(&server).send_message(&req).await.expect("sent");
        assert_eq!(sent.id, "g-1");
        assert_eq!(
            sent.recipients,
            vec![
                ("+15559870002".to_owned(), Some("queued".to_owned())),
                ("+15559870003".to_owned(), Some("queued".to_owned()))
            ]
        );
        assert_eq!(
            only_body(&server).await,
            json!({ "from": "+15551230001", "to": ["+15559870002", "+15559870003"], "text": "Hello all" })
        );
        assert!(!format!("{req:?}").contains("9870002"), "numbers are masked in logs");
    }

    #[tokio::test]
    async fn rate_limited_with_retry_after_is_retryable() {
        let err = send_answer(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "7")
                .set_body_json(json!({ "errors": [ { "code": "10011", "title": "Too many requests" } ] })),
        )
        .await;
        match &err {
            SendError::Retryable { retry_after, .. } => assert_eq!(*retry_after, Some(Duration::from_secs(7))),
            other => panic!("expected Retryable, got {other:?}"),
        }
        assert_eq!(err.leader_message(), "Telnyx is rate limiting; will retry.");
        assert!(!err.is_opt_out() && !err.is_unreachable());
        assert_no_key(&err);
    }

    #[tokio::test]
    async fn bare_429_is_retryable_rate_limit() {
        let err = send_answer(ResponseTemplate::new(429)).await;
        assert!(matches!(err, SendError::Retryable { retry_after: None, .. }), "{err:?}");
        assert_eq!(err.leader_message(), "Telnyx is rate limiting; will retry.");
    }

    #[tokio::test]
    async fn server_errors_are_retryable() {
        let err = send_answer(ResponseTemplate::new(500)).await;
        assert!(matches!(err, SendError::Retryable { retry_after: None, .. }), "{err:?}");
        assert_eq!(err.leader_message(), "Telnyx had a temporary problem; will retry.");
        assert_no_key(&err);

        let err = send_answer(ResponseTemplate::new(503).insert_header("Retry-After", "2")).await;
        assert!(matches!(err, SendError::Retryable { retry_after: Some(d), .. } if d == Duration::from_secs(2)));

        let err = send_answer(ResponseTemplate::new(500).set_body_json(error_body("10007", "Unexpected error"))).await;
        assert!(matches!(err, SendError::Retryable { .. }), "{err:?}");

        // An undocumented code leaves the decision to the status.
        let err = send_answer(ResponseTemplate::new(502).set_body_json(error_body("99999", "Bad gateway"))).await;
        assert!(matches!(err, SendError::Retryable { .. }), "{err:?}");

        let err = send_answer(ResponseTemplate::new(504).set_body_string("<html>gateway timeout</html>")).await;
        assert!(matches!(err, SendError::Retryable { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn queue_full_is_retryable_whatever_the_status() {
        let err =
            send_answer(ResponseTemplate::new(400).set_body_json(error_body("40318", "Message queue full"))).await;
        assert!(matches!(err, SendError::Retryable { .. }), "{err:?}");
        assert_eq!(err.leader_message(), "Telnyx's sending queue is full; will retry.");
    }

    #[tokio::test]
    async fn opt_out_is_rejected_with_400_403_and_422() {
        for status in [400, 403, 422] {
            let err = send_answer(
                ResponseTemplate::new(status).set_body_json(error_body("40300", "Blocked due to STOP message")),
            )
            .await;
            match &err {
                SendError::Rejected { status: s, errors } => {
                    assert_eq!(*s, status);
                    assert_eq!(errors.len(), 1);
                    assert_eq!(errors[0].code, "40300");
                    assert_eq!(errors[0].title, "Blocked due to STOP message");
                    assert!(errors[0].detail.is_some());
                }
                other => panic!("{status}: expected Rejected, got {other:?}"),
            }
            assert!(err.is_opt_out(), "{status}");
            assert!(!err.is_unreachable(), "{status}");
            assert_eq!(err.leader_message(), "The member has opted out (replied STOP).");
            assert!(!err.to_string().contains("+1555"), "Display must not carry phone numbers: {err}");
            assert_no_key(&err);
        }
    }

    #[tokio::test]
    async fn code_beats_status() {
        // Opt-out arriving with a 5xx status is still a refusal, not a retry.
        let err = send_answer(ResponseTemplate::new(503).set_body_json(error_body("40300", "Blocked"))).await;
        assert!(matches!(err, SendError::Rejected { status: 503, .. }), "{err:?}");
        assert!(err.is_opt_out());
        // A refusal next to a transient code wins: resending cannot succeed.
        let body = json!({ "errors": [ { "code": "10011", "title": "Too many requests" },
                                       { "code": "40305", "title": "Invalid 'from' address" } ] });
        let err = send_answer(ResponseTemplate::new(429).set_body_json(body)).await;
        assert!(matches!(err, SendError::Rejected { status: 429, .. }), "{err:?}");
    }

    #[tokio::test]
    async fn invalid_to_is_unreachable() {
        let err =
            send_answer(ResponseTemplate::new(422).set_body_json(error_body("40310", "Invalid 'to' address"))).await;
        assert!(matches!(err, SendError::Rejected { status: 422, .. }), "{err:?}");
        assert!(err.is_unreachable());
        assert!(!err.is_opt_out());
        assert_eq!(err.leader_message(), "The member's number cannot receive messages: Invalid 'to' address (40310).");
    }

    #[tokio::test]
    async fn invalid_from_is_rejected_and_named() {
        let err =
            send_answer(ResponseTemplate::new(400).set_body_json(error_body("40305", "Invalid 'from' address"))).await;
        assert!(matches!(err, SendError::Rejected { status: 400, .. }), "{err:?}");
        assert!(!err.is_opt_out() && !err.is_unreachable());
        assert_eq!(err.leader_message(), "Telnyx refused the message: Invalid 'from' address (40305).");
        assert!(err.to_string().contains("40305"), "{err}");
        assert_no_key(&err);
    }

    #[tokio::test]
    async fn client_error_without_errors_is_rejected_by_status() {
        let err = send_answer(ResponseTemplate::new(401).set_body_string("Unauthorized")).await;
        assert!(matches!(&err, SendError::Rejected { status: 401, errors } if errors.is_empty()), "{err:?}");
        assert_eq!(err.leader_message(), "Telnyx refused the message (HTTP 401).");
        let err = send_answer(ResponseTemplate::new(400).set_body_json(json!({ "errors": [] }))).await;
        assert!(matches!(err, SendError::Rejected { status: 400, .. }), "{err:?}");
        for status in [408, 425] {
            let err = send_answer(ResponseTemplate::new(status)).await;
            assert!(matches!(err, SendError::Retryable { .. }), "{status}: {err:?}");
        }
    }

    #[tokio::test]
    async fn numeric_code_is_accepted() {
        let body = json!({ "errors": [ { "code": 40300, "title": "Blocked due to STOP message" } ] });
        let err = send_answer(ResponseTemplate::new(400).set_body_json(body)).await;
        assert!(err.is_opt_out(), "{err:?}");
    }

    #[tokio::test]
    async fn unreadable_success_is_ambiguous() {
        let err = send_answer(ResponseTemplate::new(200).set_body_string("<html>oops</html>")).await;
        assert!(matches!(err, SendError::Ambiguous { .. }), "{err:?}");
        assert_eq!(
            err.leader_message(),
            "Telnyx did not confirm the message, so it may or may not have been sent — check before resending."
        );
        assert_no_key(&err);
        let err = send_answer(ResponseTemplate::new(200).set_body_json(json!({ "data": { "to": [] } }))).await;
        assert!(matches!(err, SendError::Ambiguous { .. }), "{err:?}");
        let err = send_answer(ResponseTemplate::new(200).set_body_json(json!({ "data": { "id": "" } }))).await;
        assert!(matches!(err, SendError::Ambiguous { .. }), "{err:?}");
        let err = send_answer(ResponseTemplate::new(200).set_body_string("x".repeat(MAX_RESPONSE_BYTES + 1))).await;
        assert!(matches!(err, SendError::Ambiguous { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn timeout_after_sending_is_ambiguous() {
        let server = MockServer::start().await;
        mount(&server, ResponseTemplate::new(200).set_body_json(accepted()).set_delay(Duration::from_secs(3))).await;
        let client =
            TelnyxClient::with_timeouts(&base(&server), key(), Duration::from_secs(2), Duration::from_millis(300))
                .expect("client");
        let err = client.send_message(&sms("hi", &[])).await.expect_err("timeout");
        assert!(matches!(err, SendError::Ambiguous { .. }), "{err:?}");
        assert_no_key(&err);
        // The request did reach the server: resending would duplicate it.
        only_request(&server).await;
    }

    #[tokio::test]
    async fn connection_refused_is_retryable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let base = Url::parse(&format!("http://{addr}/v2")).expect("url");
        let client = TelnyxClient::new(&base, key()).expect("client");
        let err = client.send_message(&sms("hi", &[])).await.expect_err("refused");
        assert!(matches!(err, SendError::Retryable { retry_after: None, .. }), "{err:?}");
        assert_eq!(err.leader_message(), "Telnyx could not be reached; will retry.");
        assert_no_key(&err);
    }

    #[tokio::test]
    async fn connection_closed_after_request_is_ambiguous() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 8192];
            let mut got = Vec::new();
            // Read the whole request (head and JSON body), then hang up without answering.
            while !String::from_utf8_lossy(&got).contains("\"to\"") {
                let n = sock.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        let base = Url::parse(&format!("http://{addr}/v2")).expect("url");
        let err =
            TelnyxClient::new(&base, key()).expect("client").send_message(&sms("hi", &[])).await.expect_err("cut");
        assert!(matches!(err, SendError::Ambiguous { .. }), "{err:?}");
        assert_no_key(&err);
        let got = server.await.expect("server task");
        assert!(String::from_utf8_lossy(&got).starts_with("POST /v2/messages "));
    }

    #[tokio::test]
    async fn connection_cut_mid_answer_is_ambiguous() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 8192];
            let _ = sock.read(&mut buf).await;
            let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n{\"data\":{\"id\":\"abc\"").await;
        });
        let base = Url::parse(&format!("http://{addr}/v2")).expect("url");
        let err =
            TelnyxClient::new(&base, key()).expect("client").send_message(&sms("hi", &[])).await.expect_err("cut");
        assert!(matches!(err, SendError::Ambiguous { .. }), "{err:?}");
    }

    /// Answers an error whose text echoes the request's Authorization header.
    struct EchoAuth;

    impl Respond for EchoAuth {
        fn respond(&self, req: &Request) -> ResponseTemplate {
            let auth = req.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            ResponseTemplate::new(400).set_body_json(json!({ "errors": [
                { "code": "40305", "title": format!("Invalid 'from' address for {auth}"), "detail": auth } ] }))
        }
    }

    #[tokio::test]
    async fn key_echoed_by_the_server_is_scrubbed() {
        let server = MockServer::start().await;
        mount(&server, EchoAuth).await;
        let err = client(&server).send_message(&sms("hi", &[])).await.expect_err("rejected");
        assert!(matches!(err, SendError::Rejected { status: 400, .. }), "{err:?}");
        assert!(err.leader_message().contains("40305"), "{}", err.leader_message());
        assert_no_key(&err);
    }

    #[tokio::test]
    async fn key_never_in_debug_or_construction_errors() {
        let server = MockServer::start().await;
        let c = client(&server);
        let debug = format!("{c:?}");
        assert!(!debug.contains(KEY), "{debug}");
        assert!(debug.contains("/v2"), "{debug}");

        let base = base(&server);
        for bad in ["", "   ", "line\nbreak", "nul\0"] {
            let err = TelnyxClient::new(&base, SecretString::from(bad)).expect_err("bad key");
            assert!(matches!(err, TelnyxError::InvalidApiKey), "{err:?}");
        }
        let err = TelnyxClient::new(&base, SecretString::from(format!("{KEY}\n"))).expect_err("bad key");
        assert!(!err.to_string().contains(KEY) && !format!("{err:?}").contains(KEY));
    }

    #[test]
    fn messages_url_keeps_the_base_path() {
        for (base, want) in [
            ("https://api.telnyx.com/v2", "https://api.telnyx.com/v2/messages"),
            ("https://api.telnyx.com/v2/", "https://api.telnyx.com/v2/messages"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/messages"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/messages"),
        ] {
            let url = messages_url(&Url::parse(base).expect("url")).expect(base);
            assert_eq!(url.as_str(), want);
        }
        for bad in ["ftp://api.telnyx.com/v2", "https://u:p@api.telnyx.com/v2", "https://api.telnyx.com/v2?x=1"] {
            let err = messages_url(&Url::parse(bad).expect("url")).expect_err(bad);
            assert!(matches!(err, TelnyxError::InvalidBaseUrl(_)), "{bad}: {err:?}");
            assert!(!err.to_string().contains(":p@"), "{err}");
        }
    }

    #[test]
    fn unreachable_codes() {
        for code in ["40310", "40301", "10016", "40001", "40012"] {
            let err = SendError::Rejected {
                status: 400,
                errors: vec![ApiErrorDetail { code: code.into(), title: "t".into(), detail: None }],
            };
            assert!(err.is_unreachable(), "{code}");
            assert!(!err.is_opt_out(), "{code}");
        }
        for code in ["40300", "40305", "40302", "10009"] {
            let err = SendError::Rejected {
                status: 400,
                errors: vec![ApiErrorDetail { code: code.into(), title: "t".into(), detail: None }],
            };
            assert!(!err.is_unreachable(), "{code}");
        }
        let err = SendError::Retryable { reason: "x".into(), retry_after: None };
        assert!(!err.is_unreachable() && !err.is_opt_out());
        assert!(!SendError::Ambiguous { reason: "x".into() }.is_opt_out());
    }

    #[test]
    fn leader_message_fallbacks() {
        let rejected = |title: &str, code: &str| SendError::Rejected {
            status: 400,
            errors: vec![ApiErrorDetail { code: code.into(), title: title.into(), detail: None }],
        };
        assert_eq!(rejected("", "40317").leader_message(), "Telnyx refused the message: error 40317.");
        assert_eq!(
            rejected("Message too large.", "40302").leader_message(),
            "Telnyx refused the message: Message too large (40302)."
        );
        assert_eq!(rejected("Odd\nthing", "").leader_message(), "Telnyx refused the message: Odd thing.");
        let long = rejected(&"x".repeat(500), "40302").leader_message();
        assert!(long.chars().count() < 200, "{long}");
    }

    #[test]
    fn delivery_status_mapping() {
        for (telnyx, ours) in [
            ("queued", "queued"),
            ("sending", "sending"),
            ("sent", "sent"),
            ("delivered", "delivered"),
            ("delivery_unconfirmed", "sent"),
            ("sending_failed", "failed"),
            ("delivery_failed", "failed"),
            ("expired", "failed"),
        ] {
            assert_eq!(delivery_status(telnyx).map(DeliveryStatus::as_str), Some(ours), "{telnyx}");
        }
        for unknown in ["", "webhook_delivered", "received", "DELIVERED", "failed"] {
            assert_eq!(delivery_status(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn delivery_failure_reason_from_payload_errors() {
        let errors: Vec<ApiErrorDetail> = serde_json::from_value(json!([
            { "code": "40008", "title": "Undeliverable", "detail": "The recipient carrier did not accept the message." }
        ]))
        .expect("errors");
        assert_eq!(delivery_failure_reason(&errors).as_deref(), Some("Undeliverable (40008)"));
        assert_eq!(delivery_failure_reason(&[]), None);
    }

    #[test]
    fn retry_after_parsing() {
        let mut headers = HeaderMap::new();
        assert_eq!(parse_retry_after(&headers), None);
        let mut reset = HeaderMap::new();
        reset.insert("x-ratelimit-reset", HeaderValue::from_static("3"));
        assert_eq!(parse_retry_after(&reset), Some(Duration::from_secs(3)), "x-ratelimit-reset as seconds");
        let soon = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() + 5;
        reset.insert("x-ratelimit-reset", HeaderValue::from_str(&soon.to_string()).expect("value"));
        let wait = parse_retry_after(&reset).expect("epoch form");
        assert!(wait <= Duration::from_secs(5) && wait >= Duration::from_secs(3), "{wait:?}");
        for (value, want) in [
            ("7", Some(7)),
            (" 120 ", Some(120)),
            ("0", Some(0)),
            ("-1", None),
            ("1.5", None),
            ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ] {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(value));
            assert_eq!(parse_retry_after(&headers), want.map(Duration::from_secs), "{value}");
        }
    }

    #[test]
    fn error_detail_debug_masks_phone_numbers() {
        let e = ApiErrorDetail {
            code: "40300".into(),
            title: "Blocked due to STOP message".into(),
            detail: Some("Messages cannot be sent from '+15551230001' to '+15559870002' (rule 42).".into()),
        };
        let debug = format!("{e:?}");
        assert!(!debug.contains("15551230001") && !debug.contains("15559870002"), "{debug}");
        assert!(debug.contains("'+•••0001' to '+•••0002' (rule 42)"), "{debug}");
        assert!(debug.contains("40300"), "{debug}");
    }

    #[test]
    fn short_keys_do_not_mangle_server_text() {
        let mut errors = vec![ApiErrorDetail { code: "40300".into(), title: "Blocked".into(), detail: None }];
        scrub(&mut errors, "k");
        assert_eq!(errors[0].title, "Blocked");
        scrub(&mut errors, "Blocked!");
        assert_eq!(errors[0].title, "Blocked");
        errors[0].title = "key KEY0123456789 echoed".into();
        scrub(&mut errors, "KEY0123456789");
        assert_eq!(errors[0].title, "key [redacted] echoed");
    }

    #[test]
    fn send_message_debug_hides_numbers_and_urls() {
        let media = vec!["https://f.example.org/a.jpg?X-Amz-Signature=topsecret".to_owned()];
        let req = SendMessage { webhook_url: Some("https://c.example.org/s?m=1"), ..sms("private words", &media) };
        let debug = format!("{req:?}");
        for hidden in ["+15551230001", "+15559870002", "private", "topsecret", "example.org"] {
            assert!(!debug.contains(hidden), "{debug}");
        }
        assert!(debug.contains("0001") && debug.contains("0002"), "{debug}");
    }
}
