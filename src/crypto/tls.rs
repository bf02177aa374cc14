//! TLS for koinonia's outgoing connections (Telnyx, media hosts, S3): rustls with the `ring`
//! provider, the only crypto backend in the build. reqwest and object_store are built without a
//! provider of their own, so it is installed here, once per process, before any client is made.

use std::sync::Once;

/// Makes `ring` the process's rustls provider (idempotent; safe from any thread).
pub fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means another provider was installed first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// `reqwest::Client::builder()`, after the provider is installed.
pub fn client_builder() -> reqwest::ClientBuilder {
    install();
    reqwest::Client::builder()
}

#[cfg(test)]
mod tests {
    #[test]
    fn clients_build_with_the_ring_provider() {
        let client = super::client_builder().build();
        assert!(client.is_ok());
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
