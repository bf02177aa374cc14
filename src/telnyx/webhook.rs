//! Telnyx webhooks: Ed25519 signature check and the event shapes koinonia reads.
//!
//! Telnyx signs `"{telnyx-timestamp}|{raw body}"` with the account's key and sends the base64
//! signature in `telnyx-signature-ed25519`. The check runs on the exact raw bytes (never on
//! re-serialised JSON) and refuses timestamps more than 300 s from now, either way.

use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use http::HeaderMap;
use serde::{Deserialize, Deserializer};

pub const SIGNATURE_HEADER: &str = "telnyx-signature-ed25519";
pub const TIMESTAMP_HEADER: &str = "telnyx-timestamp";
/// Largest accepted distance between the signed timestamp and now.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a webhook was refused (logged and counted; the sender only sees 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no TELNYX_PUBLIC_KEY configured")]
    NoKey,
    #[error("missing telnyx-signature-ed25519 header")]
    MissingSignature,
    #[error("missing telnyx-timestamp header")]
    MissingTimestamp,
    #[error("telnyx-timestamp is not a number")]
    BadTimestamp,
    #[error("timestamp outside the 300 s tolerance")]
    Stale,
    #[error("signature is not 64 bytes of base64")]
    MalformedSignature,
    #[error("signature does not match (wrong TELNYX_PUBLIC_KEY, or the body was changed)")]
    Mismatch,
}

impl SignatureError {
    /// A short label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::NoKey => "no_key",
            Self::MissingSignature | Self::MissingTimestamp => "missing_header",
            Self::BadTimestamp | Self::Stale => "stale",
            Self::MalformedSignature => "malformed",
            Self::Mismatch => "mismatch",
        }
    }
}

/// Checks a webhook's signature at `now` (Unix seconds).
pub fn verify(key: Option<&VerifyingKey>, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), SignatureError> {
    let key = key.ok_or(SignatureError::NoKey)?;
    // `HeaderMap` lookups are case-insensitive, as HTTP requires.
    let signature = headers.get(SIGNATURE_HEADER).ok_or(SignatureError::MissingSignature)?;
    let timestamp = headers.get(TIMESTAMP_HEADER).ok_or(SignatureError::MissingTimestamp)?;
    let ts_text = timestamp.to_str().map_err(|_| SignatureError::BadTimestamp)?.trim();
    let ts: i64 = ts_text.parse().map_err(|_| SignatureError::BadTimestamp)?;
    if (now - ts).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    let sig_bytes = base64::engine::general_purpose::STANDARD
        .decode(signature.as_bytes())
        .map_err(|_| SignatureError::MalformedSignature)?;
    let sig_arr: [u8; 64] = sig_bytes.try_into().map_err(|_| SignatureError::MalformedSignature)?;
    let sig = Signature::from_bytes(&sig_arr);
    let mut signed = Vec::with_capacity(timestamp.as_bytes().len() + 1 + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.push(b'|');
    signed.extend_from_slice(body);
    key.verify_strict(&signed, &sig).map_err(|_| SignatureError::Mismatch)
}

/// The envelope of every Telnyx v2 webhook.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = TelnyxEvent)]
pub struct Envelope {
    pub data: EventData,
}

/// `message.received`, `message.sent` or `message.finalized`, with its payload as Telnyx documents it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = TelnyxEventData)]
pub struct EventData {
    pub event_type: String,
    pub id: String,
    #[serde(default)]
    pub occurred_at: Option<String>,
    #[serde(default)]
    pub payload: serde_json::Value,
}

/// Parses the envelope; `None` when the body is not a Telnyx event.
///
/// A NUL character (`\u0000`) anywhere in the event becomes U+FFFD: PostgreSQL cannot store NUL
/// in text, and refusing the event would make Telnyx retry it until it gave up, losing the
/// member's message. Both databases store the same replacement.
pub fn parse_envelope(body: &[u8]) -> Option<Envelope> {
    let mut env: Envelope = serde_json::from_slice(body).ok()?;
    scrub_nul_str(&mut env.data.event_type);
    scrub_nul_str(&mut env.data.id);
    if let Some(at) = env.data.occurred_at.as_mut() {
        scrub_nul_str(at);
    }
    scrub_nul(&mut env.data.payload);
    (!env.data.event_type.is_empty() && !env.data.id.is_empty()).then_some(env)
}

fn scrub_nul_str(s: &mut String) {
    if s.contains('\0') {
        *s = s.replace('\0', "\u{FFFD}");
    }
}

/// Every string of a JSON value (keys too) with NUL replaced by U+FFFD.
fn scrub_nul(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => scrub_nul_str(s),
        Value::Array(items) => items.iter_mut().for_each(scrub_nul),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(map);
                for (mut k, mut val) in old {
                    scrub_nul_str(&mut k);
                    scrub_nul(&mut val);
                    map.insert(k, val);
                }
            } else {
                map.values_mut().for_each(scrub_nul);
            }
        }
        _ => {}
    }
}

/// One side of a message.
#[derive(Debug, Clone, Deserialize)]
pub struct Party {
    pub phone_number: String,
    #[serde(default)]
    pub status: Option<String>,
}

/// A file of an inbound MMS. Telnyx's spec names the hash `hash_sha256`, its examples `sha256`.
#[derive(Debug, Clone, Deserialize)]
pub struct InboundMedia {
    pub url: String,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub hash_sha256: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
}

impl InboundMedia {
    pub fn declared_sha256(&self) -> Option<String> {
        self.hash_sha256
            .as_deref()
            .or(self.sha256.as_deref())
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    }
}

/// `payload` of `message.received`. Unknown fields are ignored; shapes are read leniently.
#[derive(Debug, Clone, Deserialize)]
pub struct ReceivedPayload {
    #[serde(default)]
    pub id: Option<String>,
    pub from: Party,
    #[serde(deserialize_with = "one_or_many")]
    pub to: Vec<Party>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub cc: Vec<Party>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub media: Vec<InboundMedia>,
    #[serde(default)]
    pub autoresponse_type: Option<String>,
}

/// `to`/`cc` arrive as an array of parties, but a single object or a bare number is accepted too.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Party>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape {
        Many(Vec<Shape>),
        One(Party),
        Number(String),
        Null(()),
    }
    fn flatten(s: Shape, out: &mut Vec<Party>) {
        match s {
            Shape::Many(v) => v.into_iter().for_each(|s| flatten(s, out)),
            Shape::One(p) => out.push(p),
            Shape::Number(n) => out.push(Party { phone_number: n, status: None }),
            Shape::Null(()) => {}
        }
    }
    let mut out = Vec::new();
    flatten(Shape::deserialize(d)?, &mut out);
    Ok(out)
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use http::HeaderValue;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[42u8; 32])
    }

    fn signed_headers(k: &SigningKey, ts: &str, body: &[u8]) -> HeaderMap {
        let mut msg = ts.as_bytes().to_vec();
        msg.push(b'|');
        msg.extend_from_slice(body);
        let sig = base64::engine::general_purpose::STANDARD.encode(k.sign(&msg).to_bytes());
        let mut h = HeaderMap::new();
        h.insert(SIGNATURE_HEADER, HeaderValue::from_str(&sig).expect("header"));
        h.insert(TIMESTAMP_HEADER, HeaderValue::from_str(ts).expect("header"));
        h
    }

    #[test]
    fn signature_cases() {
        let k = key();
        let vk = k.verifying_key();
        let body = br#"{"data":{"event_type":"message.received","id":"e1","payload":{}}}"#;
        let now = 1_700_000_000;
        let h = signed_headers(&k, &now.to_string(), body);
        assert_eq!(verify(Some(&vk), &h, body, now), Ok(()));
        assert_eq!(verify(Some(&vk), &h, b"{}", now), Err(SignatureError::Mismatch));
        assert_eq!(verify(None, &h, body, now), Err(SignatureError::NoKey));
        let other = SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        assert_eq!(verify(Some(&other), &h, body, now), Err(SignatureError::Mismatch));
        assert_eq!(verify(Some(&vk), &h, body, now + 301), Err(SignatureError::Stale));
        assert_eq!(verify(Some(&vk), &h, body, now - 301), Err(SignatureError::Stale));
        assert_eq!(verify(Some(&vk), &h, body, now + 300), Ok(()));
        assert_eq!(verify(Some(&vk), &HeaderMap::new(), body, now), Err(SignatureError::MissingSignature));
        let mut no_ts = h.clone();
        no_ts.remove(TIMESTAMP_HEADER);
        assert_eq!(verify(Some(&vk), &no_ts, body, now), Err(SignatureError::MissingTimestamp));
        let mut bad = h.clone();
        bad.insert(SIGNATURE_HEADER, HeaderValue::from_static("AAAA"));
        assert_eq!(verify(Some(&vk), &bad, body, now), Err(SignatureError::MalformedSignature));
    }

    #[test]
    fn payload_shapes() {
        let p: ReceivedPayload = serde_json::from_value(serde_json::json!({
            "from": {"phone_number": "+13125550001"},
            "to": [{"phone_number": "+17735550002"}],
            "text": null,
            "media": [{"url": "https://x/y.jpg", "content_type": "image/jpeg", "sha256": "AB".repeat(32)}],
            "unknown": {"nested": true}
        }))
        .expect("parse");
        assert_eq!(p.to[0].phone_number, "+17735550002");
        assert_eq!(p.media[0].declared_sha256().as_deref(), Some("ab".repeat(32).as_str()));
        let p: ReceivedPayload = serde_json::from_value(serde_json::json!({
            "from": {"phone_number": "+13125550001"}, "to": "+17735550002", "media": null, "cc": null
        }))
        .expect("parse");
        assert_eq!(p.to.len(), 1);
        assert!(p.media.is_empty() && p.cc.is_empty());
    }
}
