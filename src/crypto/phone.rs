//! Members' phone numbers at rest.
//!
//! A number is stored twice, neither time in clear: as a blind index (HMAC-SHA256 under
//! `PHONE_HASH_KEY`) that equality lookups use, and encrypted (XChaCha20-Poly1305 under
//! `PHONE_ENCRYPTION_KEY`, random 24-byte nonce) so it can be shown to leaders and used to reply.
//! The ciphertext starts with a one-byte key version so keys can be rotated later.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Mac, SimpleHmac};
use secrecy::ExposeSecret;

use crate::domain::Phone;
use crate::secrets::Secrets;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum PhoneCryptoError {
    #[error("stored phone number cannot be decrypted (wrong PHONE_ENCRYPTION_KEY?)")]
    Decrypt,
    #[error("random number generator failed")]
    Rng,
}

/// Blind index and encryption of phone numbers.
#[derive(Clone)]
pub struct PhoneCrypto {
    hash_key: [u8; 32],
    cipher: XChaCha20Poly1305,
}

impl PhoneCrypto {
    pub fn new(secrets: &Secrets) -> Self {
        let enc = secrets.phone_encryption_key.expose_secret();
        Self { hash_key: *secrets.phone_hash_key.expose_secret(), cipher: XChaCha20Poly1305::new(enc.into()) }
    }

    /// The equality-lookup index of a number (32 bytes).
    pub fn blind_index(&self, phone: &Phone) -> Vec<u8> {
        // HMAC takes keys of any length; 32 bytes cannot be refused.
        let mut mac = <SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(&self.hash_key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(phone.as_str().as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// `version ‖ nonce ‖ ciphertext+tag`.
    pub fn encrypt(&self, phone: &Phone) -> Result<Vec<u8>, PhoneCryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| PhoneCryptoError::Rng)?;
        let ct = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), phone.as_str().as_bytes())
            .map_err(|_| PhoneCryptoError::Rng)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn decrypt(&self, stored: &[u8]) -> Result<Phone, PhoneCryptoError> {
        if stored.len() < 1 + NONCE_LEN + 16 || stored[0] != VERSION {
            return Err(PhoneCryptoError::Decrypt);
        }
        let (nonce, ct) = stored[1..].split_at(NONCE_LEN);
        let plain = self.cipher.decrypt(XNonce::from_slice(nonce), ct).map_err(|_| PhoneCryptoError::Decrypt)?;
        String::from_utf8(plain).map(Phone::from_trusted).map_err(|_| PhoneCryptoError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{self, Secrets};
    use std::collections::HashMap;

    pub(crate) fn test_secrets() -> Secrets {
        let mut vars = HashMap::new();
        for (k, len) in [(secrets::PHONE_HASH_KEY, 32), (secrets::PHONE_ENCRYPTION_KEY, 32), (secrets::JWT_SECRET, 48)]
        {
            vars.insert(k.to_owned(), secrets::generate(len).expect("rng"));
        }
        secrets::load(&vars, std::path::Path::new("/nonexistent"), false).expect("secrets")
    }

    #[test]
    fn round_trip_and_stable_index() {
        let c = PhoneCrypto::new(&test_secrets());
        let p = Phone::parse("+13125550001").expect("phone");
        let a = c.encrypt(&p).expect("enc");
        let b = c.encrypt(&p).expect("enc");
        assert_ne!(a, b, "random nonces");
        assert!(!a.windows(4).any(|w| w == b"5550"), "no clear digits in the ciphertext");
        assert_eq!(c.decrypt(&a).expect("dec"), p);
        assert_eq!(c.blind_index(&p), c.blind_index(&p));
        assert_ne!(c.blind_index(&p), c.blind_index(&Phone::parse("+13125550002").expect("phone")));
    }

    #[test]
    fn other_key_cannot_decrypt() {
        let p = Phone::parse("+13125550001").expect("phone");
        let ct = PhoneCrypto::new(&test_secrets()).encrypt(&p).expect("enc");
        assert!(PhoneCrypto::new(&test_secrets()).decrypt(&ct).is_err());
        assert!(PhoneCrypto::new(&test_secrets()).decrypt(&[1, 2, 3]).is_err());
    }
}
