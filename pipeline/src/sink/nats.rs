//! The `nats` sink: routed mentions published to a subject of a team's own JetStream stream,
//! for consumers the team writes itself.
//!
//! Each outbox entry becomes one message: the body is the entry's data exactly as the file
//! sink writes it (the mention contract, a digest or a spike event), `Nats-Msg-Id` is the
//! entry's id (the same `webhook-id` a webhook queue would send), and `Earshot-Event` says what
//! it is (`mention.created`, `mention.digest`, `spike.started`, …). An entry leaves the outbox
//! only when the stream has acknowledged it, so a publish lost to a dropped connection is
//! retried, and the stream's de-duplication window turns the retry of a publish that did
//! land into a no-op: the stream holds each mention once.
//!
//! Everything else is the queue's as for a webhook: the retry schedule, the breaker, the
//! ordering, the concurrency and the dead letters ([`super::dispatch`]). A stream that does
//! not exist (yet) for the subject is a failure to retry, not a reason to drop anything.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;

use super::webhook::{Attempt, Outcome};
use crate::outbox::entry::Entry;

/// How a `nats` queue proves who it is to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NatsAuthKind {
    /// The variable holds a token.
    Token,
    /// The variable holds `user:password`.
    UserPassword,
    /// The variable holds a credentials file's contents (a user JWT and its NKey seed).
    Credentials,
}

/// `nats_auth = { kind = "credentials", env = "CRM_NATS_CREDS" }`: read from the
/// environment, never from the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsAuth {
    /// What the variable holds.
    pub kind: NatsAuthKind,
    /// The environment variable.
    pub env: String,
}

/// Why a `nats` queue cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum NatsSetupError {
    /// The environment variable of `nats_auth` is not set.
    #[error("environment variable `{0}` (nats_auth.env) is not set")]
    EnvNotSet(String),
    /// `user_password` credentials without a `:`.
    #[error("`{0}` must hold `user:password`")]
    NotUserPassword(String),
    /// The credentials do not parse (the text is never repeated: it is a secret).
    #[error("`{env}` does not hold NATS credentials (a user JWT and an NKey seed): {reason}")]
    Credentials {
        /// The variable.
        env: String,
        /// What the parser said.
        reason: String,
    },
    /// The CA file cannot be read or holds no certificate.
    #[error("ca `{path}`: {reason}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The client could not be built.
    #[error("cannot set up the NATS client: {0}")]
    Connect(String),
}

/// The checks of a `nats` queue's subject: dot-separated tokens of visible ASCII, none empty
/// and no wildcard, at most 255 bytes. What a publish may name, and what a stream's consumer
/// can rely on.
pub fn check_subject(subject: &str) -> Result<(), String> {
    if subject.is_empty() || subject.len() > 255 {
        return Err("a subject is 1 to 255 bytes".into());
    }
    for token in subject.split('.') {
        if token.is_empty() {
            return Err(format!(
                "`{subject}`: empty token (leading, trailing or double `.`)"
            ));
        }
        if token == "*" || token == ">" {
            return Err(format!(
                "`{subject}`: wildcards (`*`, `>`) subscribe; a publish names one subject"
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "`{subject}`: only visible ASCII, without spaces, in a subject"
            ));
        }
    }
    Ok(())
}

/// Where and how one `nats` queue publishes.
#[derive(Debug, Clone)]
pub struct NatsTarget {
    /// Queue id.
    pub queue: String,
    /// The subject every entry is published to.
    pub subject: String,
    /// The JetStream context of the queue's connection.
    pub js: async_nats::jetstream::Context,
    /// How long a publish may wait for the stream's acknowledgement.
    pub timeout: Duration,
}

/// What a `nats` queue connects with.
#[derive(Debug, Clone)]
pub struct NatsConnect<'a> {
    /// Queue id (the client's name on the server: `earshot:<queue>`).
    pub queue: &'a str,
    /// Server URLs, comma-separated (`tls://` or loopback `nats://`).
    pub url: &'a str,
    /// Credentials, when the server wants them.
    pub auth: Option<&'a NatsAuth>,
    /// A PEM bundle of the CAs that sign the servers' certificates (default: the public
    /// roots).
    pub ca: Option<&'a Path>,
    /// Connect timeout, and how long a publish waits for its acknowledgement.
    pub timeout: Duration,
}

/// Connects a `nats` queue. The connection is made in the background and kept up by the
/// client (reconnecting without end), so a server that is down at start delays deliveries
/// (they fail and are retried on the queue's schedule) instead of stopping earshot.
pub async fn connect(c: &NatsConnect<'_>, subject: &str) -> Result<NatsTarget, NatsSetupError> {
    let client = client(c, &format!("earshot:{}", c.queue)).await?;
    let mut js = async_nats::jetstream::new(client);
    js.set_timeout(c.timeout);
    Ok(NatsTarget {
        queue: c.queue.to_string(),
        subject: subject.to_string(),
        js,
        timeout: c.timeout,
    })
}

/// A client of the servers of `c`, known to them as `name`, reconnecting without end (a
/// queue's sink, a cluster node).
pub async fn client(c: &NatsConnect<'_>, name: &str) -> Result<async_nats::Client, NatsSetupError> {
    crate::tls::ensure_crypto_provider();
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(c.timeout)
        .retry_on_initial_connect()
        .max_reconnects(None);
    if let Some(auth) = c.auth {
        let value =
            std::env::var(&auth.env).map_err(|_| NatsSetupError::EnvNotSet(auth.env.clone()))?;
        options = match auth.kind {
            NatsAuthKind::Token => options.token(value),
            NatsAuthKind::UserPassword => {
                let (user, password) = value
                    .split_once(':')
                    .ok_or_else(|| NatsSetupError::NotUserPassword(auth.env.clone()))?;
                options.user_and_password(user.to_string(), password.to_string())
            }
            NatsAuthKind::Credentials => {
                options
                    .credentials(&value)
                    .map_err(|e| NatsSetupError::Credentials {
                        env: auth.env.clone(),
                        reason: e.kind().to_string(),
                    })?
            }
        };
    }
    if c.url.split(',').any(|u| u.trim().starts_with("tls://")) {
        options = options
            .require_tls(true)
            .tls_client_config(client_tls(c.ca)?);
    }
    let servers: Vec<&str> = c.url.split(',').map(str::trim).collect();
    options
        .connect(servers)
        .await
        .map_err(|e| NatsSetupError::Connect(e.kind().to_string()))
}

/// rustls with the public roots, or with the CAs of `ca` only.
fn client_tls(ca: Option<&Path>) -> Result<rustls::ClientConfig, NatsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let fail = |reason: String| NatsSetupError::Ca {
                path: path.to_path_buf(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
            let mut any = false;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| fail(format!("not PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| fail(format!("not a CA certificate: {e}")))?;
                any = true;
            }
            if !any {
                return Err(fail("no certificate in the file".into()));
            }
        }
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Publishes one entry and waits for the stream's acknowledgement.
pub async fn attempt(t: &NatsTarget, entry: &Entry) -> Attempt {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, entry.id.as_str());
    headers.insert("Earshot-Event", entry.event.as_str());
    let body = bytes::Bytes::copy_from_slice(entry.data.get().as_bytes());
    let publish = async {
        t.js.publish_with_headers(t.subject.clone(), headers, body)
            .await?
            .await
    };
    match tokio::time::timeout(t.timeout, publish).await {
        Err(_) => Attempt::new(
            Outcome::Retry(None),
            format!("no acknowledgement within {:?}", t.timeout),
        ),
        Ok(Ok(ack)) => Attempt::new(
            Outcome::Delivered,
            if ack.duplicate {
                format!("already in stream `{}`", ack.stream)
            } else {
                format!("stream `{}` sequence {}", ack.stream, ack.sequence)
            },
        ),
        Ok(Err(e)) => {
            let outcome = match e.kind() {
                // The message can never fit, or the stream is set up to refuse it: retrying
                // the same bytes cannot help.
                PublishErrorKind::MaxPayloadExceeded
                | PublishErrorKind::WrongLastMessageId
                | PublishErrorKind::WrongLastSequence => Outcome::Rejected,
                _ => Outcome::Retry(None),
            };
            Attempt::new(outcome, e.kind().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_checked() {
        assert!(check_subject("crm.mentions").is_ok());
        assert!(check_subject("acme.support.v1").is_ok());
        for bad in ["", "a..b", ".a", "a.", "a.*", "a.>", "a b", "ä"] {
            assert!(check_subject(bad).is_err(), "{bad:?} passed");
        }
        assert!(check_subject(&"a".repeat(256)).is_err());
    }

    #[tokio::test]
    async fn credentials_that_do_not_parse_are_named_by_their_variable_never_shown() {
        const VAR: &str = "EARSHOT_TEST_NATS_BAD_CREDS";
        let secret = "-----BEGIN NATS USER JWT-----\nnot-a-jwt-hunter2\n";
        std::env::set_var(VAR, secret);
        let auth = NatsAuth {
            kind: NatsAuthKind::Credentials,
            env: VAR.into(),
        };
        let c = NatsConnect {
            queue: "q",
            url: "nats://127.0.0.1:1",
            auth: Some(&auth),
            ca: None,
            timeout: Duration::from_millis(100),
        };
        let e = match client(&c, "earshot:test").await {
            Err(e) => e,
            Ok(_) => panic!("credentials accepted"),
        };
        assert!(matches!(e, NatsSetupError::Credentials { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains(VAR), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let e = client_tls(Some(&path)).unwrap_err().to_string();
        assert!(e.contains("ca.pem") && e.contains("no certificate"), "{e}");
        let missing = client_tls(Some(&dir.path().join("gone.pem")))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("gone.pem"), "{missing}");
    }
}
