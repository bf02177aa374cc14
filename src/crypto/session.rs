//! Leader sessions: HS256 JWTs signed with `JWT_SECRET`.
//!
//! After a rotation, tokens signed with `JWT_SECRET_PREVIOUS` are still accepted until their own
//! expiry (the grace period is one session lifetime); new tokens are always signed with
//! `JWT_SECRET`.
//!
//! The token carries the leader's church, so every handler gets its tenant from the token; the
//! leader's `token_version` is checked against the database on each request, so raising it (on
//! password change or removal) revokes every earlier token.

use chrono::{DateTime, Utc};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
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

#[derive(Clone)]
pub struct SessionKeys {
    encoding: EncodingKey,
    /// The current secret first, then the previous one during a rotation.
    decoding: Vec<DecodingKey>,
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
        let secret = secrets.jwt_secret.expose_secret();
        let mut decoding = vec![DecodingKey::from_secret(secret)];
        decoding.extend(secrets.jwt_secret_previous.as_ref().map(|s| DecodingKey::from_secret(s.expose_secret())));
        Self { encoding: EncodingKey::from_secret(secret), decoding }
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
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|_| SessionError::Sign)?;
        Ok((token, claims))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, SessionError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        self.decoding
            .iter()
            .find_map(|key| decode::<Claims>(token, key, &validation).ok())
            .map(|d| d.claims)
            .ok_or(SessionError::Invalid)
    }
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
}
