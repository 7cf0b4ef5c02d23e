//! What the HTTP sources ([`http_stream`](super::http_stream), [`sse`](super::sse)) share:
//! URL and header validation, the bearer token from the environment, the client, and the
//! connect → read → reconnect loop.
//!
//! Input → output: a validated `StreamSpec` and a `BodyParser` (NDJSON lines or SSE events)
//! → frames on the emitter, until shutdown.
//!
//! Set-up runs once, when a source starts, so a bad URL, a missing token variable or a header
//! that is not valid HTTP is a clear [`SourceError`] before any connection is tried, never a
//! retry loop that cannot succeed. After that the loop never gives up: a non-2xx status backs
//! off per X's policy ([`HttpBackoff`]; 429 has its own, longer sequence, and a larger
//! `Retry-After` is honoured), connection errors, a body that ends and a body that stalls (no
//! byte at all, keep-alives included, for `stall_timeout`) back off as network errors. The
//! stall clock runs only while the source waits for the network: time spent blocked on a full
//! batch channel (backpressure) is not a stall.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use futures_util::StreamExt;
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, RETRY_AFTER, USER_AGENT};
use url::Url;

use super::backoff::{Failure, HttpBackoff, HttpBackoffPolicy};
use super::emit::Emitter;
use super::error::SourceError;
use crate::shutdown::Shutdown;

/// `earshot/<version>`, sent on every connection so server operators can tell who we are.
pub const USER_AGENT_VALUE: &str = concat!("earshot/", env!("CARGO_PKG_VERSION"));

/// Parses `url` and checks that its scheme is one of `schemes`.
pub fn parse_url(url: &str, schemes: &[&str]) -> Result<Url, SourceError> {
    let parsed = Url::parse(url).map_err(|e| SourceError::bad_url(url, e.to_string()))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(SourceError::bad_url(
            url,
            format!("scheme must be one of {}", schemes.join(", ")),
        ));
    }
    Ok(parsed)
}

/// The headers of every request: the user agent, `Authorization: Bearer <token>` when
/// `bearer_token_env` names a variable (read now; a missing variable is an error), then the
/// configured extra `headers`. The token's header value is marked sensitive, so it never
/// appears in debug output.
pub fn request_headers(
    bearer_token_env: Option<&str>,
    headers: &BTreeMap<String, String>,
) -> Result<HeaderMap, SourceError> {
    let mut map = HeaderMap::new();
    map.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    if let Some(var) = bearer_token_env {
        let token = std::env::var(var)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| SourceError::MissingToken {
                var: var.to_owned(),
            })?;
        let mut value =
            HeaderValue::try_from(format!("Bearer {}", token.trim())).map_err(|_| {
                SourceError::BadHeader {
                    name: "authorization".into(),
                    reason: format!("the token in {var} has characters not allowed in a header"),
                }
            })?;
        value.set_sensitive(true);
        map.insert(AUTHORIZATION, value);
    }
    for (name, value) in headers {
        let header = HeaderName::try_from(name.as_str()).map_err(|e| SourceError::BadHeader {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        let value = HeaderValue::try_from(value.as_str()).map_err(|e| SourceError::BadHeader {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        map.insert(header, value);
    }
    Ok(map)
}

/// A client for one streaming source: rustls with the process's one trust store
/// ([`crate::tls`]), no redirects (a 3xx is an error status like any other: following it would
/// send the bearer token wherever the answer points), a connect timeout, no overall timeout (a
/// stream has no end; stalls are the source's business), and no pool of idle connections:
/// every reconnect opens a fresh connection rather than reusing one that just answered an
/// error and may be half dead.
pub fn build_client(connect_timeout: Duration) -> Result<reqwest::Client, SourceError> {
    crate::tls::http_client_builder(&crate::tls::client_config())
        .connect_timeout(connect_timeout)
        .pool_max_idle_per_host(0)
        .tcp_nodelay(true)
        .build()
        .map_err(SourceError::HttpClient)
}

/// Checks an option that must not be zero.
pub fn nonzero(field: &'static str, value: u128) -> Result<(), SourceError> {
    if value == 0 {
        return Err(SourceError::InvalidOption {
            field,
            reason: "must be greater than zero".into(),
        });
    }
    Ok(())
}

/// Turns response body chunks into frames; one per source, kept across reconnects.
pub(crate) trait BodyParser {
    /// Feeds one body chunk; returns how many frames it completed (handed on or skipped).
    fn feed(&mut self, chunk: &[u8], emitter: &mut Emitter) -> Result<u64, SourceError>;
    /// The body ended (or the connection was dropped): finishes or discards what is pending
    /// and readies the parser for a new connection; returns frames completed.
    fn end(&mut self, emitter: &mut Emitter) -> Result<u64, SourceError>;
    /// Checks a 2xx response before reading it (SSE: the content type); `Err` names the
    /// problem and counts as an HTTP error.
    fn accept(&self, _response: &reqwest::Response) -> Result<(), String> {
        Ok(())
    }
    /// Adds per-connection headers (SSE: `Accept`, `Last-Event-ID`).
    fn add_headers(&self, _headers: &mut HeaderMap) {}
    /// The least delay before reconnecting after a network failure (SSE: the server's
    /// `retry:`).
    fn min_reconnect_delay(&self) -> Duration {
        Duration::ZERO
    }
}

/// A validated HTTP stream: everything [`run_stream`] needs.
#[derive(Debug, Clone)]
pub(crate) struct StreamSpec {
    /// For logs: `"http_stream"` or `"sse"`.
    pub kind: &'static str,
    /// Where to connect.
    pub url: Url,
    /// Headers of every request (token included).
    pub headers: HeaderMap,
    /// How long a connection may deliver nothing at all before it is dropped.
    pub stall_timeout: Duration,
    /// How long connecting (up to the response headers) may take.
    pub connect_timeout: Duration,
    /// Reconnect delays.
    pub backoff: HttpBackoffPolicy,
}

impl StreamSpec {
    /// Validates the options shared by the NDJSON and SSE sources: non-zero limits, an
    /// `http(s)` URL, headers (the bearer token read from its environment variable now).
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        kind: &'static str,
        url: &str,
        bearer_token_env: Option<&str>,
        headers: &BTreeMap<String, String>,
        max_frame_bytes: usize,
        stall_timeout: Duration,
        connect_timeout: Duration,
        backoff: HttpBackoffPolicy,
    ) -> Result<StreamSpec, SourceError> {
        nonzero("max_frame_bytes", max_frame_bytes as u128)?;
        nonzero("stall_timeout", stall_timeout.as_nanos())?;
        nonzero("connect_timeout", connect_timeout.as_nanos())?;
        Ok(StreamSpec {
            kind,
            url: parse_url(url, &["http", "https"])?,
            headers: request_headers(bearer_token_env, headers)?,
            stall_timeout,
            connect_timeout,
            backoff,
        })
    }
}

/// How a connection ended.
enum Session {
    Shutdown,
    Lost { delivered: bool, why: LostBy },
}

enum LostBy {
    Ended,
    Stalled(Duration),
    Body(reqwest::Error),
}

impl fmt::Display for LostBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LostBy::Ended => f.write_str("the server ended the stream"),
            LostBy::Stalled(d) => write!(f, "nothing received for {} ms", d.as_millis()),
            LostBy::Body(e) => write!(f, "read failed: {e}"),
        }
    }
}

/// Connects, reads and reconnects until shutdown; flushes the partial batch before returning.
pub(crate) async fn run_stream<P: BodyParser>(
    spec: StreamSpec,
    parser: &mut P,
    emitter: &mut Emitter,
    shutdown: &mut Shutdown,
) -> Result<(), SourceError> {
    let client = build_client(spec.connect_timeout)?;
    let mut backoff = HttpBackoff::new(spec.backoff);
    let source = emitter.source();
    let kind = spec.kind;
    loop {
        if shutdown.is_shutdown() {
            break;
        }
        let mut headers = spec.headers.clone();
        parser.add_headers(&mut headers);
        let request = client.get(spec.url.clone()).headers(headers).send();
        let response = tokio::select! {
            biased;
            _ = shutdown.recv() => break,
            r = tokio::time::timeout(spec.connect_timeout, request) => r,
        };
        let (failure, delivered, retry_after) = match response {
            Err(_) => {
                tracing::warn!(source, kind, url = %crate::redact::url(&spec.url), "connect timed out");
                (Failure::Network, false, None)
            }
            Ok(Err(error)) => {
                let error = error.without_url();
                tracing::warn!(source, kind, url = %crate::redact::url(&spec.url), %error, "connect failed");
                (Failure::Network, false, None)
            }
            Ok(Ok(response)) if !response.status().is_success() => {
                let status = response.status().as_u16();
                let retry_after = retry_after(response.headers());
                if matches!(status, 401 | 403) {
                    tracing::error!(
                        source, kind, url = %crate::redact::url(&spec.url), status,
                        "credentials refused; check the token, retrying with backoff"
                    );
                } else {
                    tracing::warn!(source, kind, url = %crate::redact::url(&spec.url), status, "HTTP error status");
                }
                (Failure::from_status(status), false, retry_after)
            }
            Ok(Ok(response)) => match parser.accept(&response) {
                Err(why) => {
                    tracing::warn!(source, kind, url = %crate::redact::url(&spec.url), why, "unusable response");
                    (Failure::Http, false, None)
                }
                Ok(()) => {
                    emitter.stats().record_connect();
                    tracing::info!(source, kind, url = %crate::redact::url(&spec.url), "connected");
                    match read_body(response, parser, emitter, shutdown, spec.stall_timeout).await?
                    {
                        Session::Shutdown => break,
                        Session::Lost { delivered, why } => {
                            tracing::warn!(source, kind, url = %crate::redact::url(&spec.url), %why, "connection lost");
                            (Failure::Network, delivered, None)
                        }
                    }
                }
            },
        };
        emitter.stats().record_reconnect();
        emitter.flush().await?;
        if delivered {
            backoff.reset();
        }
        let mut delay = backoff.next_delay(failure);
        let cap = match failure {
            Failure::Network => spec.backoff.network_cap,
            Failure::Http => spec.backoff.http_cap,
            Failure::RateLimited => spec.backoff.rate_limit_cap,
        };
        if let Some(wanted) = retry_after {
            delay = delay.max(wanted.min(cap));
        }
        if failure == Failure::Network {
            delay = delay.max(parser.min_reconnect_delay().min(cap));
        }
        tracing::info!(
            source,
            kind,
            failure = failure.as_str(),
            delay_ms = delay.as_millis() as u64,
            "reconnecting after backoff"
        );
        tokio::select! {
            biased;
            _ = shutdown.recv() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    emitter.stats().record_disconnect();
    tracing::info!(source, kind, "stopped");
    emitter.flush().await
}

async fn read_body<P: BodyParser>(
    response: reqwest::Response,
    parser: &mut P,
    emitter: &mut Emitter,
    shutdown: &mut Shutdown,
    stall_timeout: Duration,
) -> Result<Session, SourceError> {
    let mut body = std::pin::pin!(response.bytes_stream());
    let stall = tokio::time::sleep(stall_timeout);
    let mut stall = std::pin::pin!(stall);
    let mut delivered = false;
    let why = loop {
        tokio::select! {
            biased;
            _ = shutdown.recv() => {
                parser.end(emitter)?;
                return Ok(Session::Shutdown);
            }
            _ = emitter.linger() => emitter.flush().await?,
            chunk = body.next() => match chunk {
                Some(Ok(bytes)) => {
                    delivered |= parser.feed(&bytes, emitter)? > 0;
                    // Reset after the chunk is handed on: time blocked on backpressure is not
                    // a stall of the server.
                    stall.as_mut().reset(tokio::time::Instant::now() + stall_timeout);
                }
                Some(Err(error)) => break LostBy::Body(error.without_url()),
                None => break LostBy::Ended,
            },
            _ = &mut stall => break LostBy::Stalled(stall_timeout),
        }
    };
    delivered |= parser.end(emitter)? > 0;
    Ok(Session::Lost { delivered, why })
}

/// `Retry-After` in its delta-seconds form (the HTTP-date form is not worth a date parser).
/// A `Retry-After` of seconds (an HTTP date is not honoured: the backoff applies).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?;
    text.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_header() {
        let cases: &[(Option<&str>, Option<Duration>)] = &[
            (Some("120"), Some(Duration::from_secs(120))),
            (Some(" 5 "), Some(Duration::from_secs(5))),
            (Some("Wed, 21 Oct 2015 07:28:00 GMT"), None),
            (None, None),
        ];
        for (value, want) in cases {
            let mut h = HeaderMap::new();
            if let Some(v) = value {
                h.insert(RETRY_AFTER, HeaderValue::from_str(v).expect("valid"));
            }
            assert_eq!(retry_after(&h), *want, "{value:?}");
        }
    }

    #[test]
    fn urls() {
        let cases: &[(&str, bool)] = &[
            ("https://api.x.com/2/tweets/search/stream", true),
            ("http://127.0.0.1:8080/s", true),
            ("wss://jetstream2.us-east.bsky.network/subscribe", false),
            ("not a url", false),
        ];
        for (url, ok) in cases {
            let got = parse_url(url, &["http", "https"]);
            assert_eq!(got.is_ok(), *ok, "{url}");
            if let Err(e) = got {
                assert_eq!(e.reason(), "bad_url");
            }
        }
    }

    #[test]
    fn headers_token_and_errors() {
        std::env::set_var("EARSHOT_TEST_HTTP_CLIENT_TOKEN", " secret-1 ");
        let mut extra = BTreeMap::new();
        extra.insert("x-extra".to_owned(), "yes".to_owned());
        let map = request_headers(Some("EARSHOT_TEST_HTTP_CLIENT_TOKEN"), &extra).expect("ok");
        assert_eq!(map[AUTHORIZATION], "Bearer secret-1");
        assert!(map[AUTHORIZATION].is_sensitive());
        assert_eq!(map["x-extra"], "yes");
        assert_eq!(map[USER_AGENT], USER_AGENT_VALUE);
        assert!(
            !format!("{map:?}").contains("secret-1"),
            "token never printed"
        );

        let missing = request_headers(Some("EARSHOT_TEST_HTTP_CLIENT_UNSET"), &BTreeMap::new());
        assert!(
            matches!(missing, Err(SourceError::MissingToken { ref var }) if var == "EARSHOT_TEST_HTTP_CLIENT_UNSET")
        );
        let mut bad = BTreeMap::new();
        bad.insert("bad header".to_owned(), "v".to_owned());
        assert_eq!(
            request_headers(None, &bad).expect_err("bad name").reason(),
            "bad_header"
        );
        let mut bad = BTreeMap::new();
        bad.insert("x-a".to_owned(), "line\nbreak".to_owned());
        assert_eq!(
            request_headers(None, &bad).expect_err("bad value").reason(),
            "bad_header"
        );
    }
}
