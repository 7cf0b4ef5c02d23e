//! TLS set-up: rustls with the `ring` provider for every client (websocket, HTTP streams,
//! webhooks), and one trust store for all of them. No OpenSSL anywhere.
//!
//! The trust store is Mozilla's root program as compiled into the binary (`webpki-roots`),
//! the same for the Jetstream websocket, the HTTP stream sources and every webhook queue:
//! one list to review, the same answer from every component about the same server, and a
//! binary that verifies certificates identically on a full distribution and in a scratch
//! container without `/etc/ssl`. Extra roots (a company's own CA, a test CA) are added on top
//! with [`client_config_with`]; nothing is ever removed from verification.

use std::sync::{Arc, Once, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// Installs rustls' `ring` crypto provider as the process default, once. Every TLS client in
/// earshot calls this before connecting, so library users and tests need no set-up of their own.
pub fn ensure_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Another component may have installed a provider first; either one works.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The client configuration every outgoing TLS connection uses: the built-in roots, TLS 1.2
/// and 1.3, no client certificate, no ALPN (each client sets its own protocol list).
pub fn client_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| Arc::new(client_config_with(&[])))
        .clone()
}

/// The client configuration with `extra` roots trusted besides the built-in ones.
pub fn client_config_with(extra: &[CertificateDer<'static>]) -> ClientConfig {
    ensure_crypto_provider();
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra {
        // A certificate that is not a usable root is skipped by rustls' own check below.
        let _ = roots.add(cert.clone());
    }
    ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// An HTTP client builder on `tls` for HTTP/1.1: redirects are never followed (a 3xx answer
/// is returned to the caller as it is). Following one would re-send a signed body, customer
/// data included, or a bearer token, to wherever the answer points, past the checks the
/// configured URL went through at load.
pub fn http_client_builder(tls: &ClientConfig) -> reqwest::ClientBuilder {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .http1_only()
        .user_agent(concat!("earshot/", env!("CARGO_PKG_VERSION")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_trusts_the_same_built_in_roots() {
        let a = client_config();
        let b = client_config();
        assert!(Arc::ptr_eq(&a, &b), "built once, shared");
        assert!(a.alpn_protocols.is_empty());
        assert!(webpki_roots::TLS_SERVER_ROOTS.len() > 100);
    }
}
