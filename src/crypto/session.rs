//! Leader sessions: HS256 JWTs signed with `JWT_SECRET`.
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
    decoding: DecodingKey,
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
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret) }
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
        decode::<Claims>(token, &self.decoding, &validation).map(|d| d.claims).map_err(|_| SessionError::Invalid)
    }
}
