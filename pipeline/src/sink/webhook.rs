//! Webhook sink: one delivery attempt of one outbox entry as a signed HTTP POST.
//!
//! Body and extra headers come from the queue's payload format ([`super::payload`]): the
//! Standard Webhooks envelope for `generic`, a CRM's create-API body otherwise. Every request
//! carries `webhook-id` (the entry's id: the same on every attempt and after every restart, the
//! receiver's idempotency key), `webhook-timestamp` and `webhook-signature` (fresh per attempt,
//! see [`super::signature`]), and the queue's `Authorization` header when it has one.
//!
//! Outcomes ([`Outcome::from_status`]):
//! - 2xx: delivered.
//! - 408, 425, 429, 5xx, timeouts and connection errors: retried. A `Retry-After` on 429 /
//!   503, in seconds or as an HTTP date, is honoured (the dispatcher pauses the queue until
//!   then), up to [`MAX_RETRY_AFTER`]: an endpoint cannot park a queue for longer than that.
//! - 3xx: refused. Redirects are never followed ([`crate::tls::http_client_builder`]): the
//!   signed body would go to wherever the answer points. The entry is dead-lettered with the
//!   status, so the operator can fix the queue's URL and replay it.
//! - any other status: rejected — the endpoint refuses this payload and retrying cannot help;
//!   the entry goes to the dead-letter store at once, where it can be replayed once fixed.
//!
//! What an endpoint says is bounded: at most [`MAX_RESPONSE_BODY`] bytes of a response body
//! are read (the rest is dropped with the connection), and the queue's `timeout` covers the
//! whole exchange, a body that trickles included.
//!
//! Secrets: a webhook URL is often a credential itself (Slack's incoming webhooks), so no
//! error, log line or dead-letter record carries it ([`crate::redact`]).
//!
//! TLS is rustls with the one trust store of [`crate::tls`]; connections are kept alive and
//! reused (one client per queue).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::cases::{self, Case};
use super::payload::{CaseRef, EventType, Latency, Lookup, Outgoing, Payload, Rendered};
use super::signature::SigningKey;
use crate::credentials::{Credentials, Issued};
use crate::metrics::PAYLOAD_RENDER_ERRORS;
use crate::outbox::entry::{Entry, Event};

/// Where and how one webhook queue sends.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    /// Queue id.
    pub queue: String,
    /// Endpoint.
    pub url: url::Url,
    /// Signing key; none for a CRM queue whose API never checks the signature.
    pub key: Option<SigningKey>,
    /// The queue's credentials, when its endpoint wants an `Authorization` header.
    pub auth: Option<std::sync::Arc<Credentials>>,
    /// Body format.
    pub payload: std::sync::Arc<Payload>,
    /// The queue's HTTP client (keep-alive pool, timeout).
    pub client: reqwest::Client,
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Delivered,
    /// Failed; may be retried, not before the given time if the endpoint named one.
    Retry(Option<Duration>),
    /// Refused for good.
    Rejected,
    /// Answered with a redirect, which is never followed: refused for good.
    Redirected,
    /// The queue's credentials were refused (a 401 with a fresh token, or by the token
    /// endpoint): nothing this entry can change, and nothing to dead-letter it for. The queue
    /// waits until its credentials are accepted again.
    Unauthorized,
}

/// The longest pause a `Retry-After` can impose on a queue. Longer values are cut to this
/// (and counted): a hostile or broken endpoint asking for a year must not park a queue, nor
/// overflow the time arithmetic. An endpoint still unwilling after an hour answers again.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How much of a response body is read. Endpoints answer with a small JSON or nothing; the
/// body is read only so the connection can be reused, and a larger one is dropped with it.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// A `Retry-After` header read: how long to wait, and whether it was cut to
/// [`MAX_RETRY_AFTER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    /// The wait, at most [`MAX_RETRY_AFTER`].
    pub wait: Duration,
    /// The endpoint asked for more than [`MAX_RETRY_AFTER`].
    pub capped: bool,
}

impl RetryAfter {
    /// Parses a `Retry-After` value at `now`: delay-seconds (`120`) or an HTTP date (`Wed, 21
    /// Oct 2015 07:28:00 GMT`, a date in the past meaning now). `None` for anything else.
    pub fn parse(value: &str, now: SystemTime) -> Option<RetryAfter> {
        let value = value.trim();
        let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            // Digits only: a number too large for u64 is still a (huge) delay.
            Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
        } else {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        };
        Some(RetryAfter {
            wait: wait.min(MAX_RETRY_AFTER),
            capped: wait > MAX_RETRY_AFTER,
        })
    }
}

impl Outcome {
    /// Classifies an HTTP status, with the `Retry-After` header read if any (honoured on 429
    /// and 503 only).
    pub fn from_status(status: u16, retry_after: Option<RetryAfter>) -> Outcome {
        match status {
            200..=299 => Outcome::Delivered,
            300..=399 => Outcome::Redirected,
            408 | 425 | 429 | 500..=599 => {
                let after = if matches!(status, 429 | 503) {
                    retry_after.map(|r| r.wait)
                } else {
                    None
                };
                Outcome::Retry(after)
            }
            _ => Outcome::Rejected,
        }
    }
}

/// One attempt's result.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// How it ended.
    pub outcome: Outcome,
    /// What happened, for logs and the dead-letter record (`HTTP 503`, the I/O error); never
    /// the URL.
    pub detail: String,
    /// The endpoint's `Retry-After` was longer than [`MAX_RETRY_AFTER`] and was cut.
    pub retry_after_capped: bool,
    /// The id of the ticket a delivered create opened (or an earlier attempt had), read from
    /// the CRM's answer where the template says it is.
    pub ticket_id: Option<String>,
    /// The HTTP status the endpoint answered, when it answered.
    pub status: Option<u16>,
    /// A follow-up was refused because its ticket is gone from the CRM (the template's
    /// `gone` answers).
    pub gone: bool,
}

impl Attempt {
    /// An attempt that ended with `outcome`, `detail` saying how.
    pub fn new(outcome: Outcome, detail: String) -> Self {
        Self {
            outcome,
            detail,
            retry_after_capped: false,
            ticket_id: None,
            status: None,
            gone: false,
        }
    }
}

/// The HTTP client of one queue: keep-alive, a timeout over the whole exchange, HTTP/1.1
/// (what every CRM endpoint speaks), rustls with the process's trust store, no redirects.
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    client_with(timeout, &crate::tls::client_config())
}

/// [`client`] with its own TLS configuration (extra trusted roots).
pub fn client_with(
    timeout: Duration,
    tls: &rustls::ClientConfig,
) -> Result<reqwest::Client, reqwest::Error> {
    crate::tls::http_client_builder(tls)
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
}

/// Makes attempt number `attempt` (1-based) to deliver `entry`: a follow-up of `case` when
/// the mention continues one.
pub async fn attempt(
    t: &WebhookTarget,
    entry: &Entry,
    attempt: u32,
    latency: Latency,
    case: Option<&Case>,
) -> Attempt {
    let now = SystemTime::now();
    let case =
        case.filter(|_| matches!(entry.event, Event::MentionCreated | Event::MentionDeleted));
    let out = Outgoing {
        id: &entry.id,
        event: match entry.event {
            Event::MentionCreated if case.is_some() => EventType::MentionFollowup,
            Event::MentionCreated => EventType::MentionCreated,
            Event::MentionDigest => EventType::MentionDigest,
            Event::SpikeStarted => EventType::SpikeStarted,
            Event::SpikeUpdated => EventType::SpikeUpdated,
            Event::SpikeEnded => EventType::SpikeEnded,
            Event::MentionDeleted => EventType::MentionDeleted,
        },
        data: &entry.data,
        queue: &t.queue,
        attempt,
        timestamp: now,
        latency,
        case: case.map(|c| CaseRef {
            mention_id: &c.mention_id,
            ticket_id: c.ticket_id.as_deref(),
        }),
    };
    let rendered = match t.payload.render(&out) {
        Ok(r) => r,
        Err(e) => {
            metrics::counter!(PAYLOAD_RENDER_ERRORS, "queue" => t.queue.clone(), "reason" => e.reason())
                .increment(1);
            return Attempt::new(
                Outcome::Rejected,
                format!("the payload template failed: {e}"),
            );
        }
    };
    let Some(creds) = &t.auth else {
        return send(t, entry, &rendered, None).await;
    };
    let issued = match creds.header().await {
        Ok(i) => i,
        Err(f) if f.refused => return Attempt::new(Outcome::Unauthorized, f.detail),
        Err(f) => return Attempt::new(Outcome::Retry(None), f.detail),
    };
    let first = send(t, entry, &rendered, Some(&issued)).await;
    if first.outcome != Outcome::Unauthorized {
        return first;
    }
    if !creds.renews() {
        return Attempt::new(
            Outcome::Unauthorized,
            "HTTP 401: the endpoint refuses the queue's credentials".into(),
        );
    }
    // The token may have expired early or been revoked: one more try with a new one, which
    // does not count as an attempt of its own.
    creds.stale(issued.generation);
    match creds.header().await {
        Ok(renewed) => {
            let second = send(t, entry, &rendered, Some(&renewed)).await;
            if second.outcome == Outcome::Unauthorized {
                return Attempt::new(
                    Outcome::Unauthorized,
                    "HTTP 401 with a token renewed just now: the endpoint refuses the queue's credentials".into(),
                );
            }
            second
        }
        Err(f) if f.refused => Attempt::new(Outcome::Unauthorized, f.detail),
        Err(f) => Attempt::new(Outcome::Retry(None), f.detail),
    }
}

/// Sends the rendered entry once, signed afresh, with `auth` as its `Authorization`. A 401
/// comes back as [`Outcome::Unauthorized`] for [`attempt`] to deal with.
async fn send(
    t: &WebhookTarget,
    entry: &Entry,
    rendered: &Rendered,
    auth: Option<&Issued>,
) -> Attempt {
    let now = SystemTime::now();
    let ts = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let url = if !rendered.join.is_empty() {
        // A follow-up's address beside the queue's: it must stay on the queue's origin, so a
        // ticket id or a template can never send the request (and its credentials) elsewhere.
        match t.url.join(&rendered.join) {
            Ok(u) if u.origin() == t.url.origin() => u,
            Ok(_) => {
                return Attempt::new(
                    Outcome::Rejected,
                    "the template's followup url leaves the queue's origin".into(),
                )
            }
            Err(e) => {
                return Attempt::new(
                    Outcome::Rejected,
                    format!("the template's followup url makes no URL: {e}"),
                )
            }
        }
    } else if rendered.path.is_empty() {
        t.url.clone()
    } else {
        // The path was checked to hold only URL path characters when it was rendered.
        match url::Url::parse(&format!("{}{}", t.url.as_str(), rendered.path)) {
            Ok(u) => u,
            Err(e) => {
                return Attempt::new(
                    Outcome::Rejected,
                    format!("the template's request path makes no URL: {e}"),
                )
            }
        }
    };
    if let Some(lookup) = &rendered.lookup {
        match look_up(t, rendered, lookup, auth).await {
            Found::No => {}
            Found::Yes(detail, ticket_id) => {
                return Attempt {
                    ticket_id,
                    ..Attempt::new(Outcome::Delivered, detail)
                }
            }
            Found::Failed(attempt) => return attempt,
        }
    }
    let mut req = t
        .client
        .request(rendered.method.clone(), url)
        .header(http::header::CONTENT_TYPE, rendered.content_type.clone())
        .header("webhook-id", &entry.id)
        .header("webhook-timestamp", ts.to_string());
    if let Some(key) = &t.key {
        req = req.header("webhook-signature", key.sign(&entry.id, ts, &rendered.body));
    }
    for (name, value) in &rendered.headers {
        req = req.header(name.clone(), value.clone());
    }
    if let Some(auth) = auth {
        req = req.header(http::header::AUTHORIZATION, auth.header.clone());
    }
    match req.body(rendered.body.clone()).send().await {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| RetryAfter::parse(v, SystemTime::now()));
            let exists = rendered.exists.contains(&status);
            let outcome = if exists {
                // The record keyed by this message's id is there already: an earlier
                // attempt created it, and its answer was lost.
                Outcome::Delivered
            } else if status == 401 {
                Outcome::Unauthorized
            } else {
                Outcome::from_status(status, retry_after)
            };
            // Read a bounded part of the body, so a small answer lets the connection go back
            // to the pool (a larger one is dropped with its connection); kept only when the
            // ticket id is to be read from it.
            let keep = rendered.ticket_id.is_some() && outcome == Outcome::Delivered;
            // A refused follow-up's answer may say that its ticket is gone.
            let follow_up_refused = !rendered.join.is_empty() && (400..500).contains(&status);
            let keep = keep || (follow_up_refused && !rendered.gone.codes.is_empty());
            let mut body = Vec::new();
            let mut read = 0usize;
            while read <= MAX_RESPONSE_BODY {
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        read += chunk.len();
                        if keep && body.len() + chunk.len() <= MAX_RESPONSE_BODY {
                            body.extend_from_slice(&chunk);
                        }
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            let ticket_id = rendered
                .ticket_id
                .as_deref()
                .filter(|_| outcome == Outcome::Delivered)
                .and_then(|pointer| cases::ticket_id(&body, pointer));
            let gone = follow_up_refused && rendered.gone.says(status, &body);
            let detail = match outcome {
                _ if exists => format!("HTTP {status}: created by an earlier attempt"),
                Outcome::Redirected => format!(
                    "HTTP {status}: the endpoint redirects, and redirects are not followed (point the queue's url at the final address)"
                ),
                _ => format!("HTTP {status}"),
            };
            Attempt {
                outcome,
                detail,
                retry_after_capped: matches!(outcome, Outcome::Retry(Some(_)))
                    && retry_after.is_some_and(|r| r.capped),
                ticket_id,
                status: Some(status),
                gone,
            }
        }
        Err(e) => Attempt::new(Outcome::Retry(None), error_chain(&e.without_url())),
    }
}

/// What a lookup before a create found.
enum Found {
    /// No record: create it.
    No,
    /// The record exists (an earlier attempt created it): delivered, as this says, with the
    /// record's ticket id when the template names where it is.
    Yes(String, Option<String>),
    /// The lookup failed: the attempt ends as this says.
    Failed(Attempt),
}

/// Sends the lookup of a CRM whose create cannot carry a key (Zoho Desk's ticket search) with
/// the format's headers and the credentials: 200 with a non-empty list at `found` means the
/// record exists; 204, or an empty list, that it does not.
async fn look_up(
    t: &WebhookTarget,
    rendered: &Rendered,
    lookup: &Lookup,
    auth: Option<&Issued>,
) -> Found {
    let url = match url::Url::parse(&format!("{}{}", t.url.as_str(), lookup.path)) {
        Ok(u) => u,
        Err(e) => {
            return Found::Failed(Attempt::new(
                Outcome::Rejected,
                format!("the template's lookup makes no URL: {e}"),
            ))
        }
    };
    let mut req = t
        .client
        .get(url)
        .header(http::header::ACCEPT, "application/json");
    for (name, value) in &rendered.headers {
        req = req.header(name.clone(), value.clone());
    }
    if let Some(auth) = auth {
        req = req.header(http::header::AUTHORIZATION, auth.header.clone());
    }
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            return Found::Failed(Attempt::new(
                Outcome::Retry(None),
                format!("lookup: {}", error_chain(&e.without_url())),
            ))
        }
    };
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    while body.len() <= MAX_RESPONSE_BODY {
        match resp.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    match status {
        204 => Found::No,
        200 => {
            let listed = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v.pointer(&lookup.found)
                        .and_then(|l| l.as_array())
                        .map(|l| !l.is_empty())
                });
            match listed {
                Some(true) => Found::Yes(
                    "HTTP 200 to the lookup: created by an earlier attempt".into(),
                    lookup
                        .ticket_id
                        .as_deref()
                        .and_then(|p| cases::ticket_id(&body, p)),
                ),
                Some(false) => Found::No,
                None => Found::Failed(Attempt::new(
                    Outcome::Retry(None),
                    format!("lookup: HTTP 200 without a list at {}", lookup.found),
                )),
            }
        }
        401 => Found::Failed(Attempt::new(
            Outcome::Unauthorized,
            "HTTP 401 to the lookup".into(),
        )),
        _ => {
            let outcome = match Outcome::from_status(status, None) {
                Outcome::Delivered => Outcome::Retry(None),
                other => other,
            };
            Found::Failed(Attempt::new(outcome, format!("lookup: HTTP {status}")))
        }
    }
}

pub(crate) use crate::tls::error_chain;

pub use crate::credentials::{auth_header, InvalidAuthHeader};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classification() {
        let cases = [
            (200, None, Outcome::Delivered),
            (201, None, Outcome::Delivered),
            (204, None, Outcome::Delivered),
            (400, None, Outcome::Rejected),
            (401, None, Outcome::Rejected),
            (404, None, Outcome::Rejected),
            (408, None, Outcome::Retry(None)),
            (429, Some("7"), Outcome::Retry(Some(Duration::from_secs(7)))),
            (
                429,
                Some("Wed, 21 Oct 2015 07:28:00 GMT"),
                Outcome::Retry(Some(Duration::ZERO)),
            ),
            (429, Some("soon"), Outcome::Retry(None)),
            (500, Some("7"), Outcome::Retry(None)),
            (
                503,
                Some(" 2 "),
                Outcome::Retry(Some(Duration::from_secs(2))),
            ),
            (301, None, Outcome::Redirected),
            (307, None, Outcome::Redirected),
            (308, None, Outcome::Redirected),
        ];
        let now = SystemTime::now();
        for (status, after, want) in cases {
            assert_eq!(
                Outcome::from_status(status, after.and_then(|a| RetryAfter::parse(a, now))),
                want,
                "{status} {after:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_capped_in_both_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let cases = [
            ("0", Some((0, false))),
            ("3600", Some((3600, false))),
            ("3601", Some((3600, true))),
            ("18446744073709551615", Some((3600, true))),
            ("99999999999999999999999999", Some((3600, true))),
            ("-5", None),
            ("1.5", None),
            ("", None),
            // 2023-11-14T22:13:20Z is `now`; two minutes later, and a year later.
            ("Tue, 14 Nov 2023 22:15:20 GMT", Some((120, false))),
            ("Thu, 14 Nov 2024 22:13:20 GMT", Some((3600, true))),
            ("Tue, 14 Nov 2023 22:00:00 GMT", Some((0, false))),
            ("Fri, 31 Dec 9999 23:59:59 GMT", Some((3600, true))),
        ];
        for (value, want) in cases {
            let got = RetryAfter::parse(value, now).map(|r| (r.wait.as_secs(), r.capped));
            assert_eq!(got, want, "{value:?}");
        }
    }

    #[test]
    fn auth_headers() {
        use crate::sink::AuthScheme::*;
        assert_eq!(auth_header(Bearer, " t0k ").unwrap(), "Bearer t0k");
        assert_eq!(
            auth_header(Basic, "me@x.com/token:abc").unwrap(),
            "Basic bWVAeC5jb20vdG9rZW46YWJj"
        );
        assert_eq!(
            auth_header(Header, "Zoho-oauthtoken 1000.x").unwrap(),
            "Zoho-oauthtoken 1000.x"
        );
        assert!(auth_header(Bearer, "a\nb").is_err());
        assert!(auth_header(Bearer, "x").unwrap().is_sensitive());
    }

    /// A Zoho-style lookup before the create, against a loopback API answering the search
    /// as told: a record found ends the delivery without a create; none found (204 or an
    /// empty list) creates; an answer without the list is retried; a refused search is
    /// rejected; a 401 to the search is the credentials'.
    #[tokio::test]
    async fn a_lookup_before_the_create_ends_the_delivery_when_it_finds_the_record() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};

        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        use axum::routing::{get, post};

        #[derive(Default)]
        struct Api {
            search: Mutex<(u16, &'static str)>,
            creates: AtomicUsize,
        }
        let api = Arc::new(Api::default());
        let app = axum::Router::new()
            .route(
                "/api/v1/tickets/search",
                get(
                    |axum::extract::State(a): axum::extract::State<Arc<Api>>| async move {
                        let (status, body) = *a.search.lock().unwrap();
                        (StatusCode::from_u16(status).unwrap(), body).into_response()
                    },
                ),
            )
            .route(
                "/api/v1/tickets",
                post(
                    |axum::extract::State(a): axum::extract::State<Arc<Api>>| async move {
                        a.creates.fetch_add(1, Ordering::SeqCst);
                        (StatusCode::OK, "{\"id\":\"1\"}").into_response()
                    },
                ),
            )
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        crate::tls::ensure_crypto_provider();
        let vars = [("org_id", "7"), ("department_id", "4")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let payload =
            Payload::load(super::super::payload::PayloadFormat::Zoho, None, &vars).unwrap();
        let target = WebhookTarget {
            queue: "zoho".into(),
            url: url::Url::parse(&format!("http://{addr}/api/v1/tickets")).unwrap(),
            key: None,
            auth: None,
            payload: std::sync::Arc::new(payload),
            client: client(Duration::from_secs(5)).unwrap(),
        };
        let data = serde_json::value::RawValue::from_string(
            include_str!("../../../rules/payloads/samples/mention.json").to_string(),
        )
        .unwrap();
        let entry = Entry::new("m_1".into(), Event::MentionCreated, data, 0);
        let latency = Latency {
            elapsed_ms: 0,
            budget_ms: None,
            over_budget: false,
        };
        let cases: [((u16, &'static str), Outcome, usize, &str); 6] = [
            (
                (200, r#"{"data":[{"id":"9"}],"count":1}"#),
                Outcome::Delivered,
                0,
                "HTTP 200 to the lookup: created by an earlier attempt",
            ),
            ((204, ""), Outcome::Delivered, 1, "HTTP 200"),
            (
                (200, r#"{"data":[],"count":0}"#),
                Outcome::Delivered,
                1,
                "HTTP 200",
            ),
            (
                (200, r#"{"error":"x"}"#),
                Outcome::Retry(None),
                0,
                "lookup: HTTP 200 without a list at /data",
            ),
            ((422, "{}"), Outcome::Rejected, 0, "lookup: HTTP 422"),
            (
                (401, "{}"),
                Outcome::Unauthorized,
                0,
                "HTTP 401 to the lookup",
            ),
        ];
        for (search, outcome, creates, detail) in cases {
            *api.search.lock().unwrap() = search;
            api.creates.store(0, Ordering::SeqCst);
            let a = send(
                &target,
                &entry,
                &target
                    .payload
                    .render(&Outgoing {
                        id: &entry.id,
                        event: EventType::MentionCreated,
                        data: &entry.data,
                        queue: "zoho",
                        attempt: 1,
                        timestamp: SystemTime::now(),
                        latency,
                        case: None,
                    })
                    .unwrap(),
                None,
            )
            .await;
            assert_eq!(
                (a.outcome, a.detail.as_str()),
                (outcome, detail),
                "{search:?}"
            );
            assert_eq!(api.creates.load(Ordering::SeqCst), creates, "{search:?}");
        }
    }
}
