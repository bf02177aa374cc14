//! Web Push, bytes only: a browser's subscription parsed and checked, a notification's JSON
//! encrypted to it (RFC 8291 `aes128gcm`, by `web-push-native`) and the request's headers. The
//! request itself goes out through the SSRF-guarded client of [`crate::media::fetch`]; the flow
//! ([`crate::flows::notifications`]) decides who is told what.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderMap, HeaderValue};
use serde::Serialize;
use url::Url;

use super::vapid::VapidKey;
use crate::media::fetch::Fetcher;

/// Longest endpoint kept (the push services' are well under 1 KiB).
pub const MAX_ENDPOINT_BYTES: usize = 2048;
/// How long a push service keeps an undelivered notification (the phone is off): a day.
pub const TTL: Duration = Duration::from_secs(24 * 3600);

/// Why a subscription is refused; the sentence is safe to show.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubscriptionError {
    #[error("endpoint must be at most {MAX_ENDPOINT_BYTES} bytes")]
    EndpointTooLong,
    #[error("endpoint must be an https:// URL of a push service")]
    EndpointNotHttps,
    #[error("endpoint not allowed: {0}")]
    EndpointNotAllowed(String),
    #[error("keys.p256dh must be the base64url uncompressed P-256 public key (65 bytes)")]
    BadP256dh,
    #[error("keys.auth must be the base64url 16-byte authentication secret")]
    BadAuth,
}

/// A subscription that passed every check.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub endpoint: Url,
    /// As given (base64url), for storing.
    pub p256dh: String,
    pub auth: String,
    public: p256::PublicKey,
    secret: [u8; 16],
}

impl Subscription {
    /// Checks what a browser's `PushSubscription.toJSON()` holds: the endpoint is an https URL
    /// the guarded client may reach (plain http and private addresses only when the fetch
    /// policy allows private targets, as in tests), `p256dh` a point on P-256, `auth` 16 bytes.
    pub fn parse(fetcher: &Fetcher, endpoint: &str, p256dh: &str, auth: &str) -> Result<Self, SubscriptionError> {
        if endpoint.len() > MAX_ENDPOINT_BYTES {
            return Err(SubscriptionError::EndpointTooLong);
        }
        let url = fetcher.check_url(endpoint).map_err(|e| match e {
            crate::media::fetch::FetchError::Forbidden(why) => SubscriptionError::EndpointNotAllowed(why),
            _ => SubscriptionError::EndpointNotHttps,
        })?;
        // Normalising may lengthen it (percent-encoding): the stored form must fit too.
        if url.as_str().len() > MAX_ENDPOINT_BYTES {
            return Err(SubscriptionError::EndpointTooLong);
        }
        if url.scheme() != "https" && !fetcher.policy().allow_private {
            return Err(SubscriptionError::EndpointNotHttps);
        }
        let public = decode(p256dh, 65)
            .and_then(|b| p256::PublicKey::from_sec1_bytes(&b).ok())
            .ok_or(SubscriptionError::BadP256dh)?;
        let secret: [u8; 16] = decode(auth, 16).and_then(|b| b.try_into().ok()).ok_or(SubscriptionError::BadAuth)?;
        Ok(Self {
            endpoint: url,
            p256dh: p256dh.trim().trim_end_matches('=').to_owned(),
            auth: auth.trim().trim_end_matches('=').to_owned(),
            public,
            secret,
        })
    }
}

/// base64url (padded or not) of exactly `len` bytes.
fn decode(text: &str, len: usize) -> Option<Vec<u8>> {
    let text = text.trim().trim_end_matches('=');
    // Longer text cannot decode to `len` bytes: refuse it before decoding.
    if text.len() > len * 4 / 3 + 2 {
        return None;
    }
    URL_SAFE_NO_PAD.decode(text).ok().filter(|b| b.len() == len)
}

/// What the service worker shows (static/sw.js `push` handler).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Notice {
    pub title: String,
    pub body: String,
    /// The thread to open, a path on this deployment.
    pub url: String,
    /// One notification per conversation: a newer one replaces it.
    pub tag: String,
}

/// How soon the push service should deliver (RFC 8030 §5.3).
#[derive(Debug, Clone, Copy)]
pub enum Urgency {
    Normal,
    High,
}

impl Urgency {
    fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::High => "high",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot encrypt the notification: {0}")]
    Encrypt(String),
    #[error("cannot write a header: {0}")]
    Header(String),
}

/// The headers and encrypted body of one push.
pub struct PushRequest {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Encrypts `notice` to `sub` and signs the request for its push service.
pub fn build(
    key: &VapidKey,
    subject: &str,
    sub: &Subscription,
    notice: &Notice,
    urgency: Urgency,
    now_unix: i64,
) -> Result<PushRequest, BuildError> {
    let json = serde_json::to_vec(notice).map_err(|e| BuildError::Encrypt(e.to_string()))?;
    let auth = web_push_native::Auth::clone_from_slice(&sub.secret);
    let body = web_push_native::encrypt(json, &sub.public, &auth).map_err(|e| BuildError::Encrypt(e.to_string()))?;
    let header = |v: String| HeaderValue::from_str(&v).map_err(|e| BuildError::Header(e.to_string()));
    let mut headers = HeaderMap::new();
    headers.insert("ttl", header(TTL.as_secs().to_string())?);
    headers.insert("urgency", HeaderValue::from_static(urgency.as_str()));
    headers.insert(http::header::CONTENT_ENCODING, HeaderValue::from_static("aes128gcm"));
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    // The token is valid for 12 hours: push services refuse more than 24.
    let mut authorization = header(key.authorization(&sub.endpoint, subject, now_unix, TTL / 2))?;
    authorization.set_sensitive(true);
    headers.insert(http::header::AUTHORIZATION, authorization);
    Ok(PushRequest { headers, body })
}

/// What a push service answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Accepted,
    /// 404/410: the subscription is gone (unsubscribed, expired); forget it.
    Gone,
    /// 429, 5xx, a timeout or a network failure: try again later (after this long, if said).
    Retry {
        why: String,
        after: Option<Duration>,
    },
    /// Any other answer (400 bad request, 401/403 VAPID refused, 413): trying again will not help.
    Refused(String),
}

/// Sends one push through the guarded client, bounded by `timeout`.
pub async fn send(fetcher: &Fetcher, sub: &Subscription, req: PushRequest, timeout: Duration) -> Delivery {
    use crate::media::fetch::FetchError;
    match fetcher.post(&sub.endpoint, req.headers, req.body, timeout).await {
        Ok((status, _)) if status.is_success() => Delivery::Accepted,
        Ok((status, _)) if status.as_u16() == 404 || status.as_u16() == 410 => Delivery::Gone,
        Ok((status, after)) if status.as_u16() == 429 || status.is_server_error() => {
            Delivery::Retry { why: format!("push service answered HTTP {}", status.as_u16()), after }
        }
        Ok((status, _)) => Delivery::Refused(format!("push service answered HTTP {}", status.as_u16())),
        Err(FetchError::Forbidden(why)) => Delivery::Refused(why),
        Err(FetchError::InvalidUrl(why)) => Delivery::Refused(why),
        Err(e) => Delivery::Retry { why: e.to_string(), after: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fetch::FetchPolicy;

    fn fetcher(allow_private: bool) -> Fetcher {
        Fetcher::new(FetchPolicy { allow_private, ..FetchPolicy::default() }).expect("client")
    }

    fn browser_keys() -> (p256::SecretKey, String, [u8; 16], String) {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("rng");
        let secret = p256::SecretKey::from_slice(&bytes).expect("scalar");
        let public = URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes());
        let mut auth = [0u8; 16];
        getrandom::fill(&mut auth).expect("rng");
        (secret, public, auth, URL_SAFE_NO_PAD.encode(auth))
    }

    #[test]
    fn subscriptions_are_checked() {
        let (_, p256dh, _, auth) = browser_keys();
        let strict = fetcher(false);
        let ok = "https://fcm.googleapis.com/fcm/send/abc";
        assert!(Subscription::parse(&strict, ok, &p256dh, &auth).is_ok());
        let err = |e: &str, k: &str, a: &str| Subscription::parse(&strict, e, k, a).err();
        assert_eq!(err("http://push.example.com/x", &p256dh, &auth), Some(SubscriptionError::EndpointNotHttps));
        assert_eq!(err("ftp://push.example.com/x", &p256dh, &auth), Some(SubscriptionError::EndpointNotHttps));
        assert!(matches!(err("https://127.0.0.1:9/x", &p256dh, &auth), Some(SubscriptionError::EndpointNotAllowed(_))));
        assert!(matches!(err("https://[::1]/x", &p256dh, &auth), Some(SubscriptionError::EndpointNotAllowed(_))));
        let long = format!("{ok}/{}", "a".repeat(MAX_ENDPOINT_BYTES));
        assert_eq!(err(&long, &p256dh, &auth), Some(SubscriptionError::EndpointTooLong));
        assert_eq!(err(ok, "AAAA", &auth), Some(SubscriptionError::BadP256dh));
        // 65 bytes that are not a point of the curve.
        let off_curve = URL_SAFE_NO_PAD.encode([4u8; 65]);
        assert_eq!(err(ok, &off_curve, &auth), Some(SubscriptionError::BadP256dh));
        assert_eq!(err(ok, &p256dh, "short"), Some(SubscriptionError::BadAuth));
        assert_eq!(err(ok, &p256dh, "not base64!"), Some(SubscriptionError::BadAuth));
        // The tests' switch lets the stand-in push service on loopback in, over plain http.
        assert!(Subscription::parse(&fetcher(true), "http://127.0.0.1:9/push", &p256dh, &auth).is_ok());
    }

    #[test]
    fn the_browser_decrypts_what_is_built() {
        let (secret, p256dh, auth_bytes, auth) = browser_keys();
        let sub = Subscription::parse(&fetcher(false), "https://push.example.com/s/1", &p256dh, &auth).expect("sub");
        let key = VapidKey::from_base64(&crate::notify::vapid::generate().expect("rng")).expect("key");
        let notice =
            Notice { title: "Ann".into(), body: "New message".into(), url: "/inbox/x".into(), tag: "x".into() };
        let req = build(&key, "mailto:a@b.example", &sub, &notice, Urgency::High, 100).expect("built");
        assert_eq!(req.headers["content-encoding"], "aes128gcm");
        assert_eq!(req.headers["ttl"], "86400");
        assert_eq!(req.headers["urgency"], "high");
        assert!(req.headers["authorization"].is_sensitive());
        let auth = web_push_native::Auth::clone_from_slice(&auth_bytes);
        let plain = web_push_native::decrypt(req.body, &secret, &auth).expect("decrypts");
        let got: serde_json::Value = serde_json::from_slice(&plain).expect("json");
        assert_eq!(got, serde_json::json!({"title": "Ann", "body": "New message", "url": "/inbox/x", "tag": "x"}));
    }
}
