//! Webhook delivery over TLS against a loopback server with certificates from a local test CA:
//! a good one is accepted (with the CA added to the one trust store), and a self-signed, an
//! expired and a wrong-host certificate are refused. A refused handshake is a connection
//! error: the entry is retried, never sent in the clear, and finally dead-lettered, not lost.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use earshot::outbox::entry::{Entry, Event};
use earshot::sink::payload::{Latency, Payload, PayloadFormat};
use earshot::sink::signature::SigningKey;
use earshot::sink::webhook::{self, Outcome, WebhookTarget};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support;

/// A test CA and the certificates it signs.
struct Ca {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "earshot test CA");
        let cert = params.self_signed(&key).unwrap();
        Self {
            cert: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names`, valid from `from` to `to` (years).
    fn leaf(&self, names: &[&str], from: i32, to: i32) -> (CertificateDer<'static>, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(to, 1, 1);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.der().clone(), key)
    }
}

/// A TLS server on loopback that answers every request `204`; counts the requests that got
/// through the handshake.
async fn server(cert: CertificateDer<'static>, key: &KeyPair) -> (u16, Arc<AtomicUsize>) {
    earshot::tls::ensure_crypto_provider();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, count) = (acceptor.clone(), count.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 64 * 1024];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, Ordering::Relaxed);
                let _ = tls
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, served)
}

/// One attempt to deliver an entry to `https://<host>:<port>/hook`, trusting `roots` besides
/// the built-in ones.
async fn attempt(host: &str, port: u16, roots: &[CertificateDer<'static>]) -> webhook::Attempt {
    support::set_secret();
    let tls = earshot::tls::client_config_with(roots);
    let target = WebhookTarget {
        queue: "q".into(),
        url: url::Url::parse(&format!("https://{host}:{port}/hook")).unwrap(),
        key: Some(SigningKey::from_secret(support::SECRET).unwrap()),
        auth: None,
        payload: Arc::new(
            Payload::load(PayloadFormat::Generic, None, &Default::default()).unwrap(),
        ),
        client: webhook::client_with(Duration::from_secs(5), &tls).unwrap(),
    };
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let data = RawValue::from_string(r#"{"mention_id":"m1","post":{}}"#.into()).unwrap();
    let entry = Entry::new("m1".into(), Event::MentionCreated, data, now_us);
    webhook::attempt(
        &target,
        &entry,
        1,
        Latency {
            elapsed_ms: 0,
            budget_ms: None,
            over_budget: false,
        },
        None,
    )
    .await
}

#[tokio::test]
async fn good_certificates_are_accepted_and_bad_ones_refused() {
    let ca = Ca::new();
    let now_year = 1970
        + (SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 31_557_600) as i32;

    // Good: signed by the CA, for this host, valid now.
    let (cert, key) = ca.leaf(&["localhost"], now_year - 1, now_year + 1);
    let (port, served) = server(cert, &key).await;
    let ok = attempt("localhost", port, std::slice::from_ref(&ca.cert)).await;
    assert_eq!(ok.outcome, Outcome::Delivered, "{}", ok.detail);
    // The same server without the CA trusted: the built-in roots do not know it.
    let unknown = attempt("localhost", port, &[]).await;
    assert_eq!(unknown.outcome, Outcome::Retry(None), "{}", unknown.detail);
    assert_eq!(served.load(Ordering::Relaxed), 1);

    // Self-signed, expired, and for another host: each refused in the handshake.
    let self_signed = {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.der().clone(), key)
    };
    let expired = ca.leaf(&["localhost"], now_year - 3, now_year - 1);
    let wrong_host = ca.leaf(&["crm.example.com"], now_year - 1, now_year + 1);
    for (what, (cert, key)) in [
        ("self-signed", self_signed),
        ("expired", expired),
        ("wrong host", wrong_host),
    ] {
        let (port, served) = server(cert, &key).await;
        let a = attempt("localhost", port, std::slice::from_ref(&ca.cert)).await;
        assert_eq!(a.outcome, Outcome::Retry(None), "{what}: {}", a.detail);
        assert!(
            a.detail.to_lowercase().contains("certificate")
                || a.detail.to_lowercase().contains("tls")
                || a.detail.contains("invalid peer"),
            "{what}: the error says why: {}",
            a.detail
        );
        assert_eq!(
            served.load(Ordering::Relaxed),
            0,
            "{what}: no request got through"
        );
    }
}
