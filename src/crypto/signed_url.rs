//! Expiring HMAC-signed URLs, for what koinonia serves itself instead of a presigned S3 URL
//! (the local media store).

use hmac::{Mac, SimpleHmac};
use subtle::ConstantTimeEq;

type HmacSha256 = SimpleHmac<sha2::Sha256>;

/// Signs lists of fields with one key; checks them against it and, during a secret rotation,
/// against the previous one.
#[derive(Clone)]
pub struct UrlSigner {
    key: [u8; 32],
    previous: Option<[u8; 32]>,
}

impl UrlSigner {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key, previous: None }
    }

    /// Also accepts what `previous` signed (it never signs anything new).
    pub fn with_previous(mut self, previous: Option<[u8; 32]>) -> Self {
        self.previous = previous;
        self
    }

    /// Hex HMAC-SHA256 over the fields, each length-prefixed so no two lists sign alike.
    pub fn sign(&self, fields: &[&str]) -> String {
        sign_with(&self.key, fields)
    }

    pub fn verify(&self, fields: &[&str], signature: &str) -> bool {
        let matches = |key: &[u8; 32]| -> bool { sign_with(key, fields).as_bytes().ct_eq(signature.as_bytes()).into() };
        matches(&self.key) || self.previous.as_ref().is_some_and(matches)
    }
}

fn sign_with(key: &[u8; 32], fields: &[&str]) -> String {
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    for f in fields {
        mac.update(&(f.len() as u64).to_be_bytes());
        mac.update(f.as_bytes());
    }
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify() {
        let s = UrlSigner::new([7; 32]);
        let sig = s.sign(&["a/b", "123"]);
        assert!(s.verify(&["a/b", "123"], &sig));
        assert!(!s.verify(&["a/b", "124"], &sig));
        assert!(!s.verify(&["a/b1", "23"], &s.sign(&["a/b", "123"])));
        assert!(!UrlSigner::new([8; 32]).verify(&["a/b", "123"], &sig));
    }

    #[test]
    fn a_previous_key_verifies_but_does_not_sign() {
        let old_sig = UrlSigner::new([7; 32]).sign(&["a"]);
        let rotated = UrlSigner::new([8; 32]).with_previous(Some([7; 32]));
        assert!(rotated.verify(&["a"], &old_sig));
        assert_ne!(rotated.sign(&["a"]), old_sig);
        assert!(!UrlSigner::new([8; 32]).verify(&["a"], &old_sig));
    }
}
