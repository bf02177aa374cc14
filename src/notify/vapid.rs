//! The application server's identity towards push services (VAPID, RFC 8292): a P-256 key pair
//! whose public half browsers are given when they subscribe, and the short-lived ES256 JWT that
//! goes with every push request (`Authorization: vapid t=<jwt>, k=<public key>`).
//!
//! The private key is a secret: it is never printed, logged or put in an error.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use url::Url;

/// Longest life of a VAPID token the push services accept (RFC 8292 §2: at most 24 hours).
pub const MAX_TOKEN_LIFE: Duration = Duration::from_secs(24 * 3600);

/// Why a VAPID private key is not usable; never contains the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("not valid base64url")]
    NotBase64,
    #[error("must decode to 32 bytes (a P-256 private scalar), got {0}")]
    Length(usize),
    #[error("not a valid P-256 private key")]
    NotOnCurve,
}

/// The VAPID key pair.
#[derive(Clone)]
pub struct VapidKey {
    signing: SigningKey,
    /// The uncompressed public point (65 bytes, 0x04 ‖ x ‖ y), base64url without padding: what
    /// `pushManager.subscribe({applicationServerKey})` takes and what `k=` carries.
    public_b64: String,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey").field("public", &self.public_b64).finish_non_exhaustive()
    }
}

impl VapidKey {
    /// From the base64url (padded or not) 32-byte private scalar.
    pub fn from_base64(raw: &str) -> Result<Self, KeyError> {
        let trimmed = raw.trim().trim_end_matches('=');
        let bytes = URL_SAFE_NO_PAD.decode(trimmed).map_err(|_| KeyError::NotBase64)?;
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != 32 {
            return Err(KeyError::Length(bytes.len()));
        }
        let signing = SigningKey::from_slice(bytes).map_err(|_| KeyError::NotOnCurve)?;
        let point = signing.verifying_key().to_encoded_point(false);
        Ok(Self { public_b64: URL_SAFE_NO_PAD.encode(point.as_bytes()), signing })
    }

    /// The public key as browsers and push services take it (base64url, uncompressed point).
    pub fn public_key(&self) -> &str {
        &self.public_b64
    }

    /// The `Authorization` header value for a push to `endpoint`: a JWT for the endpoint's
    /// origin (`aud`), valid for `life` (capped at 24 h) from `now_unix`, naming `subject`.
    pub fn authorization(&self, endpoint: &Url, subject: &str, now_unix: i64, life: Duration) -> String {
        let life = life.min(MAX_TOKEN_LIFE).as_secs();
        let exp = now_unix.saturating_add(i64::try_from(life).unwrap_or(0));
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": endpoint.origin().ascii_serialization(),
            "exp": exp,
            "sub": subject,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes());
        let signing_input = format!("{header}.{claims}");
        let signature: Signature = self.signing.sign(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(signature.to_bytes());
        format!("vapid t={signing_input}.{signature}, k={}", self.public_b64)
    }
}

/// A new private key, base64url (for `secrets.env` and `koinonia keys vapid`).
pub fn generate() -> Result<String, getrandom::Error> {
    loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        // All but a 2^-32 sliver of 32-byte strings are valid scalars.
        if SigningKey::from_slice(&bytes).is_ok() {
            return Ok(URL_SAFE_NO_PAD.encode(bytes));
        }
    }
}

/// `VAPID_SUBJECT`: a `mailto:` address or an `https:` URL, as RFC 8292 asks.
pub fn check_subject(subject: &str) -> Result<(), &'static str> {
    let s = subject.trim();
    let ok = match s.split_once(':') {
        Some(("mailto", rest)) => rest.contains('@') && !rest.chars().any(char::is_whitespace),
        Some(("https", _)) => Url::parse(s).is_ok_and(|u| u.host().is_some()),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err("must be a mailto: address or an https:// URL (push services contact the sender there)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::VerifyingKey;

    #[test]
    fn keys_round_trip_and_bad_ones_are_refused_without_echo() {
        let raw = generate().expect("rng");
        let key = VapidKey::from_base64(&raw).expect("valid");
        assert_eq!(URL_SAFE_NO_PAD.decode(key.public_key()).expect("b64").len(), 65);
        assert!(!format!("{key:?}").contains(&raw), "Debug never shows the private key");
        assert_eq!(VapidKey::from_base64("@@@").err(), Some(KeyError::NotBase64));
        assert_eq!(VapidKey::from_base64("AAAA").err(), Some(KeyError::Length(3)));
        assert_eq!(VapidKey::from_bytes(&[0u8; 32]).err(), Some(KeyError::NotOnCurve));
        assert_eq!(VapidKey::from_bytes(&[0xff; 32]).err(), Some(KeyError::NotOnCurve));
    }

    #[test]
    fn the_token_is_es256_for_the_endpoint_origin() {
        let key = VapidKey::from_base64(&generate().expect("rng")).expect("valid");
        let endpoint = Url::parse("https://push.example.net:8443/wpush/v2/abc?x=1").expect("url");
        let header = key.authorization(&endpoint, "mailto:ops@example.org", 1_000, Duration::from_secs(90_000));
        let rest = header.strip_prefix("vapid t=").expect("scheme");
        let (token, k) = rest.split_once(", k=").expect("k");
        assert_eq!(k, key.public_key());
        let (input, sig) = token.rsplit_once('.').expect("signature");
        let (_, claims) = input.split_once('.').expect("claims");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).expect("b64")).expect("json");
        assert_eq!(claims["aud"], "https://push.example.net:8443");
        assert_eq!(claims["exp"], 1_000 + 24 * 3600, "capped at 24 hours");
        assert_eq!(claims["sub"], "mailto:ops@example.org");
        let public = VerifyingKey::from_sec1_bytes(&URL_SAFE_NO_PAD.decode(k).expect("b64")).expect("point");
        let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).expect("b64")).expect("sig");
        public.verify(input.as_bytes(), &sig).expect("verifies");
    }

    #[test]
    fn subjects() {
        assert!(check_subject("mailto:pastor@grace.example").is_ok());
        assert!(check_subject("https://inbox.grace.example").is_ok());
        assert!(check_subject("http://inbox.grace.example").is_err());
        assert!(check_subject("pastor@grace.example").is_err());
        assert!(check_subject("mailto:nobody").is_err());
    }
}
