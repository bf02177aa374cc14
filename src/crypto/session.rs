//! Leader sessions: HS256 JWTs signed with `JWT_SECRET`.
//!
//! After a rotation, tokens signed with `JWT_SECRET_PREVIOUS` are still accepted until their own
//! expiry (the grace period is one session lifetime); new tokens are always signed with
//! `JWT_SECRET`.
//!
//! The token carries the leader's church, so every handler gets its tenant from the token; the
//! leader's `token_version` is checked against the database on each request, so raising it (on
//! password change or removal) revokes every earlier token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Mac, SimpleHmac};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{ChurchId, LeaderId};
use crate::secrets::Secrets;

/// How long a login lasts.
pub const SESSION_HOURS: i64 = 12;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: LeaderId,
    pub church: ChurchId,
    pub ver: i64,
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
}

/// The signing secrets. Tokens are compact JWS (RFC 7515) with HS256 only, made and checked
/// here with `hmac` + `sha2` rather than a JWT library: koinonia signs and reads its own tokens
/// with one algorithm, so a general library (and the second crypto backend it brings) buys
/// nothing. Tokens made by earlier releases (jsonwebtoken, the same header) still verify.
#[derive(Clone)]
pub struct SessionKeys {
    /// The current secret first, then the previous one during a rotation.
    secrets: Vec<SecretSlice<u8>>,
}

type HmacSha256 = SimpleHmac<sha2::Sha256>;

/// `{"typ":"JWT","alg":"HS256"}`, as every token's first part.
const HEADER: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9";
/// Seconds of clock difference tolerated at expiry.
const LEEWAY_SECS: i64 = 5;
/// Longest token read (a real one is under 400 bytes).
const MAX_TOKEN_LEN: usize = 2048;

#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
}

fn mac(secret: &[u8]) -> Result<HmacSha256, SessionError> {
    <HmacSha256 as Mac>::new_from_slice(secret).map_err(|_| SessionError::Sign)
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("invalid or expired session")]
    Invalid,
    #[error("session token could not be signed")]
    Sign,
}

impl SessionKeys {
    pub fn new(secrets: &Secrets) -> Self {
        let mut all = vec![SecretSlice::from(secrets.jwt_secret.expose_secret().to_vec())];
        all.extend(secrets.jwt_secret_previous.as_ref().map(|s| SecretSlice::from(s.expose_secret().to_vec())));
        Self { secrets: all }
    }

    pub fn issue(
        &self,
        leader: LeaderId,
        church: ChurchId,
        version: i64,
        now: DateTime<Utc>,
    ) -> Result<(String, Claims), SessionError> {
        let claims = Claims {
            sub: leader,
            church,
            ver: version,
            jti: Uuid::new_v4(),
            iat: now.timestamp(),
            exp: now.timestamp() + SESSION_HOURS * 3600,
        };
        let payload = serde_json::to_vec(&claims).map_err(|_| SessionError::Sign)?;
        let signing_input = format!("{HEADER}.{}", URL_SAFE_NO_PAD.encode(payload));
        let current = self.secrets.first().ok_or(SessionError::Sign)?;
        let mut m = mac(current.expose_secret())?;
        m.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
        Ok((format!("{signing_input}.{signature}"), claims))
    }

    /// The claims of a token signed with a configured secret and not expired.
    pub fn verify(&self, token: &str) -> Result<Claims, SessionError> {
        self.verify_at(token, Utc::now().timestamp())
    }

    fn verify_at(&self, token: &str, now: i64) -> Result<Claims, SessionError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(SessionError::Invalid);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SessionError::Invalid);
        };
        let header: JoseHeader = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or(SessionError::Invalid)?;
        if header.alg != "HS256" {
            return Err(SessionError::Invalid);
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| SessionError::Invalid)?;
        let signing_input = &token[..token.len() - parts_len(token)];
        let signed = self.secrets.iter().any(|secret| {
            mac(secret.expose_secret()).is_ok_and(|mut m| {
                m.update(signing_input.as_bytes());
                m.verify_slice(&signature).is_ok()
            })
        });
        if !signed {
            return Err(SessionError::Invalid);
        }
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or(SessionError::Invalid)?;
        if claims.exp + LEEWAY_SECS < now {
            return Err(SessionError::Invalid);
        }
        Ok(claims)
    }
}

/// Length of the `.signature` tail of a token.
fn parts_len(token: &str) -> usize {
    token.rfind('.').map_or(0, |i| token.len() - i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{self, JWT_SECRET, JWT_SECRET_PREVIOUS, PHONE_ENCRYPTION_KEY, PHONE_HASH_KEY};
    use std::collections::HashMap;

    fn keys(current: &str, previous: Option<&str>) -> SessionKeys {
        let mut vars = HashMap::new();
        vars.insert(PHONE_HASH_KEY.to_owned(), secrets::generate(32).expect("rng"));
        vars.insert(PHONE_ENCRYPTION_KEY.to_owned(), secrets::generate(32).expect("rng"));
        vars.insert(JWT_SECRET.to_owned(), current.to_owned());
        if let Some(p) = previous {
            vars.insert(JWT_SECRET_PREVIOUS.to_owned(), p.to_owned());
        }
        SessionKeys::new(&secrets::load(&vars, std::path::Path::new("/nonexistent"), false).expect("secrets"))
    }

    #[test]
    fn the_previous_secret_verifies_until_expiry_and_never_signs() {
        let (a, b, c) = ("a".repeat(32), "b".repeat(32), "c".repeat(32));
        let now = Utc::now();
        let (leader, church) = (LeaderId::new(), ChurchId::new());
        let (old_token, _) = keys(&a, None).issue(leader, church, 0, now).expect("sign");
        let rotated = keys(&b, Some(&a));
        assert_eq!(rotated.verify(&old_token).expect("old token in its grace period").sub, leader);
        assert!(keys(&b, None).verify(&old_token).is_err(), "without JWT_SECRET_PREVIOUS");
        assert!(keys(&b, Some(&c)).verify(&old_token).is_err(), "an unknown secret");
        let (new_token, _) = rotated.issue(leader, church, 0, now).expect("sign");
        assert!(keys(&b, None).verify(&new_token).is_ok(), "new tokens are signed with JWT_SECRET");
        let (expired, _) =
            keys(&a, None).issue(leader, church, 0, now - chrono::Duration::hours(SESSION_HOURS + 1)).expect("sign");
        assert!(rotated.verify(&expired).is_err(), "the grace period ends with the token");
    }

    #[test]
    fn forged_altered_and_foreign_tokens_are_refused() {
        let a = "a".repeat(32);
        let k = keys(&a, None);
        let now = Utc::now();
        let (token, claims) = k.issue(LeaderId::new(), ChurchId::new(), 3, now).expect("sign");
        assert_eq!(k.verify(&token).expect("valid").jti, claims.jti);
        // A token as the JWT library of earlier releases made them (same header and encoding).
        let old = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIwMTkzZjVkMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDEiLCJjaHVyY2giOiIwMTkzZjVkMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDIiLCJ2ZXIiOjAsImp0aSI6IjAxOTNmNWQwLTAwMDAtNDAwMC04MDAwLTAwMDAwMDAwMDAwMyIsImlhdCI6MTc2NDQ3NjgwMCwiZXhwIjo0MTAyNDQ0ODAwfQ.3asDjdagZIuiuzyWejRNHPya6lMG6e_xBSkCkirU0WU";
        assert_eq!(k.verify_at(old, now.timestamp()).expect("an earlier release's token").ver, 0);
        // Another payload under the same signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"x","church":"y","ver":0,"jti":"z","iat":0,"exp":9999999999}"#);
        parts[1] = &forged;
        assert!(k.verify(&parts.join(".")).is_err());
        // alg=none, and a token with a fourth part.
        let none =
            format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#), token.split('.').nth(1).unwrap_or(""));
        assert!(k.verify(&none).is_err());
        assert!(k.verify(&format!("{token}.x")).is_err());
        assert!(k.verify("").is_err() && k.verify("a.b.c").is_err());
        assert!(k.verify(&"a".repeat(5000)).is_err());
        // Expiry, with five seconds of leeway.
        assert!(k.verify_at(&token, claims.exp + LEEWAY_SECS).is_ok());
        assert!(k.verify_at(&token, claims.exp + LEEWAY_SECS + 1).is_err());
    }
}
