//! TLS set-up: rustls with the `ring` provider for every client (websocket, HTTP streams,
//! webhooks). No OpenSSL anywhere; the provider is installed once per process.

use std::sync::Once;

/// Installs rustls' `ring` crypto provider as the process default, once. Every TLS client in
/// earshot calls this before connecting, so library users and tests need no set-up of their own.
pub fn ensure_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Another component may have installed a provider first; either one works.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
