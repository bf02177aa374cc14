//! Members' phone numbers at rest.
//!
//! A number is stored twice, neither time in clear: as a blind index (HMAC-SHA256 under
//! `PHONE_HASH_KEY`) that equality lookups use, and encrypted (XChaCha20-Poly1305 under
//! `PHONE_ENCRYPTION_KEY`, random 24-byte nonce) so it can be shown to leaders and used to reply.
//!
//! Ciphertexts name the key they were made with, so keys can be rotated: version 2 (written now)
//! is `2 ‖ key id (8 bytes) ‖ nonce ‖ ciphertext+tag`, the header authenticated as associated
//! data; the key id is an HMAC of a fixed label under the key, never the key itself. Version 1
//! (`1 ‖ nonce ‖ ciphertext+tag`, written before rotation existed) names no key and is tried
//! under the current key, then each of `PHONE_ENCRYPTION_KEY_PREVIOUS`. Rows whose first bytes
//! are not [`PhoneCrypto::current_header`] are the ones `koinonia keys reencrypt` rewrites.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Mac, SimpleHmac};
use secrecy::ExposeSecret;

use crate::domain::Phone;
use crate::secrets::Secrets;

const V1: u8 = 1;
const V2: u8 = 2;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
pub const KEY_ID_LEN: usize = 8;
/// Length of a version-2 header: version byte and key id.
pub const HEADER_LEN: usize = 1 + KEY_ID_LEN;

#[derive(Debug, thiserror::Error)]
pub enum PhoneCryptoError {
    #[error("stored phone number cannot be decrypted (wrong PHONE_ENCRYPTION_KEY?)")]
    Decrypt,
    #[error("random number generator failed")]
    Rng,
}

/// One encryption key and the id its ciphertexts carry.
#[derive(Clone)]
struct Key {
    id: [u8; KEY_ID_LEN],
    cipher: XChaCha20Poly1305,
}

impl Key {
    fn new(raw: &[u8; 32]) -> Self {
        let mut mac = <SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(raw)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(b"koinonia/phone-encryption-key-id");
        let digest = mac.finalize().into_bytes();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self { id, cipher: XChaCha20Poly1305::new(raw.into()) }
    }

    fn header(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0] = V2;
        h[1..].copy_from_slice(&self.id);
        h
    }
}

/// Blind index and encryption of phone numbers.
#[derive(Clone)]
pub struct PhoneCrypto {
    hash_key: [u8; 32],
    current: Key,
    /// Decrypt-only keys of earlier rotations.
    previous: Vec<Key>,
}

impl PhoneCrypto {
    pub fn new(secrets: &Secrets) -> Self {
        Self {
            hash_key: *secrets.phone_hash_key.expose_secret(),
            current: Key::new(secrets.phone_encryption_key.expose_secret()),
            previous: secrets.phone_encryption_key_previous.iter().map(|k| Key::new(k.expose_secret())).collect(),
        }
    }

    /// The equality-lookup index of a number (32 bytes).
    pub fn blind_index(&self, phone: &Phone) -> Vec<u8> {
        // HMAC takes keys of any length; 32 bytes cannot be refused.
        let mut mac = <SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(&self.hash_key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(phone.as_str().as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The first bytes of every ciphertext made under the current key (version and key id).
    pub fn current_header(&self) -> [u8; HEADER_LEN] {
        self.current.header()
    }

    /// True when `stored` was made under the current key (by its header, without decrypting).
    pub fn is_current(&self, stored: &[u8]) -> bool {
        stored.starts_with(&self.current.header())
    }

    /// `2 ‖ key id ‖ nonce ‖ ciphertext+tag`, under the current key.
    pub fn encrypt(&self, phone: &Phone) -> Result<Vec<u8>, PhoneCryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| PhoneCryptoError::Rng)?;
        let header = self.current.header();
        let ct = self
            .current
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: phone.as_str().as_bytes(), aad: &header })
            .map_err(|_| PhoneCryptoError::Rng)?;
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + ct.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypts with the key the ciphertext names (version 2), or with the current key and then
    /// each previous one (version 1).
    pub fn decrypt(&self, stored: &[u8]) -> Result<Phone, PhoneCryptoError> {
        let plain = match stored.first() {
            Some(&V2) if stored.len() >= HEADER_LEN + NONCE_LEN + TAG_LEN => {
                let (header, rest) = stored.split_at(HEADER_LEN);
                let key = self.keys().find(|k| k.id[..] == header[1..]).ok_or(PhoneCryptoError::Decrypt)?;
                let (nonce, ct) = rest.split_at(NONCE_LEN);
                key.cipher
                    .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: header })
                    .map_err(|_| PhoneCryptoError::Decrypt)?
            }
            Some(&V1) if stored.len() >= 1 + NONCE_LEN + TAG_LEN => {
                let (nonce, ct) = stored[1..].split_at(NONCE_LEN);
                self.keys()
                    .find_map(|k| k.cipher.decrypt(XNonce::from_slice(nonce), ct).ok())
                    .ok_or(PhoneCryptoError::Decrypt)?
            }
            _ => return Err(PhoneCryptoError::Decrypt),
        };
        String::from_utf8(plain).map(Phone::from_trusted).map_err(|_| PhoneCryptoError::Decrypt)
    }

    /// The ciphertext under the current key, or `None` when it already is.
    pub fn reencrypt(&self, stored: &[u8]) -> Result<Option<Vec<u8>>, PhoneCryptoError> {
        if self.is_current(stored) {
            return Ok(None);
        }
        let phone = self.decrypt(stored)?;
        self.encrypt(&phone).map(Some)
    }

    fn keys(&self) -> impl Iterator<Item = &Key> {
        std::iter::once(&self.current).chain(self.previous.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{self, Secrets};
    use std::collections::HashMap;

    fn vars() -> HashMap<String, String> {
        let mut vars = HashMap::new();
        for (k, len) in [(secrets::PHONE_HASH_KEY, 32), (secrets::PHONE_ENCRYPTION_KEY, 32), (secrets::JWT_SECRET, 48)]
        {
            vars.insert(k.to_owned(), secrets::generate(len).expect("rng"));
        }
        vars
    }

    fn load(vars: &HashMap<String, String>) -> Secrets {
        secrets::load(vars, std::path::Path::new("/nonexistent"), false).expect("secrets")
    }

    pub(crate) fn test_secrets() -> Secrets {
        load(&vars())
    }

    /// A version-1 ciphertext, as koinonia wrote them before keys could be rotated.
    fn encrypt_v1(key: &[u8; 32], phone: &Phone) -> Vec<u8> {
        let nonce = [7u8; NONCE_LEN];
        let ct = XChaCha20Poly1305::new(key.into())
            .encrypt(XNonce::from_slice(&nonce), phone.as_str().as_bytes())
            .expect("encrypt");
        [&[V1][..], &nonce, &ct].concat()
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

    #[test]
    fn ciphertexts_name_their_key_and_rotation_keeps_old_ones_readable() {
        let p = Phone::parse("+13125550001").expect("phone");
        let old_vars = vars();
        let old = PhoneCrypto::new(&load(&old_vars));
        let under_old = old.encrypt(&p).expect("enc");
        assert_eq!(under_old[0], V2);
        assert!(old.is_current(&under_old));
        let old_key = *load(&old_vars).phone_encryption_key.expose_secret();
        assert!(!under_old.windows(KEY_ID_LEN).any(|w| old_key.windows(KEY_ID_LEN).any(|k| k == w)), "no key bytes");
        let legacy = encrypt_v1(&old_key, &p);
        assert_eq!(old.decrypt(&legacy).expect("v1 under the current key"), p);

        let mut rotated_vars = vars();
        rotated_vars.insert(secrets::PHONE_HASH_KEY.into(), old_vars[secrets::PHONE_HASH_KEY].clone());
        let only_new = PhoneCrypto::new(&load(&rotated_vars));
        rotated_vars
            .insert(secrets::PHONE_ENCRYPTION_KEY_PREVIOUS.into(), old_vars[secrets::PHONE_ENCRYPTION_KEY].clone());
        let rotated = PhoneCrypto::new(&load(&rotated_vars));
        assert!(!rotated.is_current(&under_old) && !rotated.is_current(&legacy));
        assert_eq!(rotated.decrypt(&under_old).expect("v2 under a previous key"), p);
        assert_eq!(rotated.decrypt(&legacy).expect("v1 under a previous key"), p);
        assert!(only_new.decrypt(&under_old).is_err() && only_new.decrypt(&legacy).is_err());

        let fresh = rotated.reencrypt(&legacy).expect("reencrypt").expect("was not current");
        assert!(rotated.is_current(&fresh));
        assert_eq!(rotated.reencrypt(&fresh).expect("reencrypt"), None, "already current");
        assert_eq!(only_new.decrypt(&fresh).expect("the new key alone reads it"), p);
        assert_eq!(only_new.blind_index(&p), old.blind_index(&p), "the blind index does not change");

        let mut tampered = fresh.clone();
        tampered[1] ^= 1;
        assert!(rotated.decrypt(&tampered).is_err(), "a changed header is refused");
    }
}
