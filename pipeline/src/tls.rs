//! TLS set-up: rustls with the `ring` provider for every client (websocket, HTTP streams,
//! webhooks), and one trust store for all of them. No OpenSSL anywhere.
//!
//! The trust store is Mozilla's root program as compiled into the binary (`webpki-roots`),
//! the same for the Jetstream websocket, the HTTP stream sources and every webhook queue:
//! one list to review, the same answer from every component about the same server, and a
//! binary that verifies certificates identically on a full distribution and in a scratch
//! container without `/etc/ssl`. Extra roots (a company's own CA, a test CA) are added on top
//! with [`client_config_with`]; nothing is ever removed from verification.

use std::path::Path;
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

/// Why a certificate and key cannot serve TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or holds no certificate.
    #[error("cert {path}: {message}")]
    Cert {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The key file could not be read or holds no private key.
    #[error("key {path}: {message}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the pair (a key that does not match the certificate, say).
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// The rustls server configuration of the admin server for a PEM certificate chain and key:
/// the `ring` provider, TLS 1.2 and 1.3, HTTP/1.1 only. Also what `[admin] tls` is checked
/// with at load.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert_path = cert_file.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Cert {
            path: cert_path.clone(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: cert_path,
            message: "no PEM certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::Key {
        path: key_file.display().to_string(),
        message: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Checks that a remote endpoint uses TLS: `secure` schemes anywhere, `plain` schemes only
/// towards a loopback host (tests, local receivers, sidecars).
pub fn check_remote_url(u: &url::Url, secure: &[&str], plain: &[&str]) -> Result<(), String> {
    let scheme = u.scheme();
    if secure.contains(&scheme) {
        return Ok(());
    }
    if plain.contains(&scheme) {
        let loopback = match u.host() {
            // The hosts of schemes the URL standard does not know (`nats://`) stay text.
            Some(url::Host::Domain(d)) => {
                d == "localhost"
                    || d.parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        if loopback {
            return Ok(());
        }
        return Err(format!(
            "`{scheme}://` is only allowed to a loopback address; use `{}://` (TLS) for remote hosts",
            secure.first().copied().unwrap_or("https")
        ));
    }
    Err(format!(
        "unsupported scheme `{scheme}`, expected {}",
        [secure, plain].concat().join(" or ")
    ))
}

/// An error and its causes on one line (`error sending request: connection refused`), for
/// the messages of every HTTP client (webhooks, token endpoints, sources, X's rules API).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
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
