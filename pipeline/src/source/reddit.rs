//! Reddit: the new submissions and comments of listed subreddits, polled through the OAuth API.
//!
//! Input → output: the listings `GET {api_url}/r/<a+b+…>/new` (submissions) and
//! `…/comments` (comments), `limit=100&raw_json=1`, newest first → one frame per `t3` / `t1`
//! thing not handed on before, oldest first (the Reddit decoder reads a single thing as well as
//! a whole Listing).
//!
//! Reddit has no stream: a source polls every `poll_interval`. What is new is told by the
//! thing's id: fullnames are base-36 numbers given out in creation order, so every thing whose
//! number is above the newest one handed on is new. When more than a page (100 things) came
//! since the last poll, the source pages back with `after=<fullname>` until it meets a thing
//! it had, at most `max_pages` pages (Reddit's listings end near 1,000 things; a gap beyond
//! that is logged). Things the spam filter held and a moderator approved later keep their old
//! number and are not seen; nor are edits.
//!
//! Authentication is the OAuth 2.0 client-credentials grant of Reddit's "application only"
//! flow: the app's client id and secret (from the environment) in HTTP Basic to
//! `token_url`, the token cached and renewed before it expires; a 401 renews it and asks once
//! more ([`crate::sink::credentials`]). Every request carries the configured `User-Agent`, as
//! Reddit's API rules require.
//!
//! Rate limits: each answer's `X-Ratelimit-Remaining` and `X-Ratelimit-Reset` are kept; when
//! nothing remains, the next request waits for the window to reset (at most 10 minutes,
//! counted in `earshot_source_rate_limit_waits_total`). A 429 backs off by the rate-limit
//! sequence and at least until the reset or `Retry-After`. Other failures back off like the
//! HTTP sources ([`super::backoff`]); a subreddit that is private, banned or unknown (403 /
//! 404) is logged with Reddit's `reason` and retried with the HTTP-error backoff.
//!
//! Resuming: the checkpoint is a time cursor (µs): the creation time up to which every listing
//! has handed on what it saw (a quiet listing counts as seen up to its last poll less the
//! overlap). A restart pages each listing back to that time less `resume_overlap`; the few
//! things in the overlap go out again with the same mention ids (at-least-once, as the outbox
//! promises). A fresh start takes what was created in the last `backfill` (none by default).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, AUTHORIZATION, USER_AGENT};
use http::HeaderValue;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::time::Instant;
use url::Url;

use super::backoff::{Failure, HttpBackoff, HttpBackoffPolicy};
use super::batch::Position;
use super::emit::Emitter;
use super::error::SourceError;
use super::http_client::{nonzero, parse_url, retry_after};
use crate::credentials::{self, AuthConfig, ClientAuth, Credentials, Holder};
use crate::metrics::SOURCE_RATE_LIMIT_WAITS;
use crate::shutdown::Shutdown;
use crate::skip::SkipReason;

/// The most subreddits one source lists: they go in one path (`r/a+b+…`), at most 21
/// characters each.
pub const MAX_SUBREDDITS: usize = 100;
/// Things per page: Reddit's largest `limit`.
const PAGE_LIMIT: usize = 100;
/// The most pages a poll reads back: Reddit's listings end near 1,000 things.
const MAX_PAGES: u32 = 10;
/// The longest wait for a rate-limit window: Reddit's windows are 10 minutes.
const MAX_RATE_WAIT: Duration = Duration::from_secs(600);
/// How much of an error answer is read for its `reason`.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// Which listing of the subreddits is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Listing {
    /// New submissions (`t3`): `/r/<subs>/new`.
    Submissions,
    /// New comments (`t1`): `/r/<subs>/comments`.
    Comments,
}

impl Listing {
    fn path(self) -> &'static str {
        match self {
            Listing::Submissions => "new",
            Listing::Comments => "comments",
        }
    }
}

/// Settings of a Reddit source (`[[source]] type = "reddit"`).
///
/// ```toml
/// [[source]]
/// id = "reddit"
/// type = "reddit"
/// subreddits = ["espresso", "coffee"]
/// client_id_env = "REDDIT_CLIENT_ID"
/// client_secret_env = "REDDIT_CLIENT_SECRET"
/// user_agent = "server:com.example.listening:1.0 (by /u/example)"
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedditOptions {
    /// Subreddit names without `r/` (at most [`MAX_SUBREDDITS`]).
    pub subreddits: Vec<String>,
    /// What is read: submissions, comments, or both (the default).
    #[serde(default = "default_listings")]
    pub listings: Vec<Listing>,
    /// The environment variable holding the app's client id.
    pub client_id_env: String,
    /// The environment variable holding the app's client secret.
    pub client_secret_env: String,
    /// The `User-Agent` of every request. Reddit asks for
    /// `<platform>:<app id>:<version> (by /u/<username>)` and throttles generic ones.
    #[serde(default = "default_user_agent")]
    pub user_agent: String,
    /// The API (`https://oauth.reddit.com`).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// The token endpoint (`https://www.reddit.com/api/v1/access_token`).
    #[serde(default = "default_token_url")]
    pub token_url: String,
    /// Time between polls. 5 s: two listings every 5 s is 24 requests a minute, a quarter of
    /// the free tier's 100.
    #[serde(default = "default_poll_interval", with = "crate::duration")]
    pub poll_interval: Duration,
    /// The most pages (of 100) a poll reads back, 1 to 10.
    #[serde(default = "default_max_pages")]
    pub max_pages: u32,
    /// On a fresh start, what was created this long ago is taken too.
    #[serde(default, with = "crate::duration")]
    pub backfill: Duration,
    /// How far before the checkpoint a restart reads again.
    #[serde(default = "default_resume_overlap", with = "crate::duration")]
    pub resume_overlap: Duration,
    /// How long one request, body included, may take.
    #[serde(default = "default_request_timeout", with = "crate::duration")]
    pub request_timeout: Duration,
    /// The largest answer read; a larger one is an error. 8 MiB: a page of 100 submissions is
    /// a few hundred KiB.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// Retry delays.
    #[serde(default)]
    pub backoff: HttpBackoffPolicy,
    /// Where a restart resumes (µs since the epoch), from the checkpoint.
    #[serde(skip)]
    pub since_us: Option<u64>,
    /// The source's id (metric labels), from the `[[source]]` table.
    #[serde(skip)]
    pub id: String,
}

fn default_listings() -> Vec<Listing> {
    vec![Listing::Submissions, Listing::Comments]
}
fn default_user_agent() -> String {
    concat!("server:earshot:", env!("CARGO_PKG_VERSION")).to_string()
}
fn default_api_url() -> String {
    "https://oauth.reddit.com".into()
}
fn default_token_url() -> String {
    "https://www.reddit.com/api/v1/access_token".into()
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_max_pages() -> u32 {
    MAX_PAGES
}
fn default_resume_overlap() -> Duration {
    Duration::from_secs(60)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_response_bytes() -> usize {
    8 << 20
}

/// Whether `name` is a subreddit name Reddit can give: 2 to 21 letters, digits and `_`, not
/// starting with `_`.
fn valid_subreddit(name: &str) -> bool {
    (2..=21).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.starts_with('_')
}

impl RedditOptions {
    /// What is wrong with the options, from the options alone (the secrets are checked when
    /// the source starts).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.subreddits.is_empty() {
            out.push("subreddits: list at least one".into());
        }
        if self.subreddits.len() > MAX_SUBREDDITS {
            out.push(format!("subreddits: at most {MAX_SUBREDDITS}"));
        }
        for s in &self.subreddits {
            if !valid_subreddit(s) {
                out.push(format!(
                    "subreddits: `{s}` is not a subreddit name (2 to 21 letters, digits and `_`, without `r/`)"
                ));
            }
        }
        if self.listings.is_empty() {
            out.push("listings: name submissions, comments or both".into());
        }
        if !(1..=MAX_PAGES).contains(&self.max_pages) {
            out.push(format!("max_pages must be 1 to {MAX_PAGES}"));
        }
        if HeaderValue::from_str(&self.user_agent).is_err() || self.user_agent.trim().is_empty() {
            out.push("user_agent must be a non-empty header value".into());
        }
        out
    }

    /// The URLs this source connects to, for the TLS check of the config (`api_url`,
    /// `token_url`).
    pub fn urls(&self) -> [(&'static str, &str); 2] {
        [("api_url", &self.api_url), ("token_url", &self.token_url)]
    }

    /// Polls until shutdown, retrying forever; returns `Ok` on shutdown after flushing the
    /// partial batch. Errors: bad options or a missing secret (before any request), a closed
    /// channel.
    pub async fn run(
        self,
        mut emitter: Emitter,
        mut shutdown: Shutdown,
    ) -> Result<(), SourceError> {
        let mut poller = Poller::new(&self, emitter.source())?;
        let mut backoff = HttpBackoff::new(self.backoff);
        let source = emitter.source();
        loop {
            if shutdown.is_shutdown() {
                break;
            }
            let started = Instant::now();
            let delay = match poller.poll(&mut emitter, &mut shutdown).await? {
                Polled::Shutdown => break,
                Polled::Done => {
                    if !emitter
                        .stats()
                        .connected
                        .load(std::sync::atomic::Ordering::Relaxed)
                    {
                        emitter.stats().record_connect();
                        tracing::info!(source, "reddit: polling");
                    }
                    backoff.reset();
                    self.poll_interval.saturating_sub(started.elapsed())
                }
                Polled::Failed(fail) => {
                    emitter.stats().record_reconnect();
                    let mut delay = backoff.next_delay(fail.failure);
                    if let Some(wait) = fail.wait {
                        delay = delay.max(wait.min(MAX_RATE_WAIT));
                    }
                    let (status, why) = (fail.status, fail.why);
                    if matches!(status, Some(401 | 403)) || fail.refused {
                        tracing::error!(source, status, why, delay_ms = delay.as_millis() as u64,
                            "reddit: refused; check the app's credentials and the subreddits, retrying with backoff");
                    } else {
                        tracing::warn!(
                            source,
                            status,
                            why,
                            failure = fail.failure.as_str(),
                            delay_ms = delay.as_millis() as u64,
                            "reddit: poll failed, retrying after backoff"
                        );
                    }
                    delay
                }
            };
            emitter.flush().await?;
            tokio::select! {
                biased;
                _ = shutdown.recv() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        emitter.stats().record_disconnect();
        tracing::info!(source, "reddit: stopped");
        emitter.flush().await
    }
}

/// What one poll came to.
enum Polled {
    Done,
    Shutdown,
    Failed(Fail),
}

/// Why a request failed: how to back off, and what to log (never a secret).
#[derive(Debug)]
struct Fail {
    failure: Failure,
    status: Option<u16>,
    /// The credentials were refused by the token endpoint.
    refused: bool,
    /// The least wait before the next try (rate-limit reset, `Retry-After`).
    wait: Option<Duration>,
    why: String,
}

impl Fail {
    fn new(failure: Failure, status: Option<u16>, why: impl Into<String>) -> Self {
        Self {
            failure,
            status,
            refused: false,
            wait: None,
            why: why.into(),
        }
    }
}

/// One listing's place: the newest thing handed on, and how far its checkpoint may go.
struct Feed {
    listing: Listing,
    url: Url,
    /// The number of the newest thing seen (base 36 of the fullname); `None` until the first
    /// poll, which takes things by time instead.
    newest: Option<u64>,
    /// Every thing created before this (µs) has been handed on.
    mark_us: u64,
}

/// The rate-limit window Reddit reported last.
#[derive(Debug, Default)]
struct RateWindow {
    remaining: Option<f64>,
    reset_at: Option<Instant>,
}

impl RateWindow {
    fn note(&mut self, headers: &HeaderMap, now: Instant) {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        if let Some(r) = number("x-ratelimit-remaining") {
            self.remaining = Some(r);
        }
        if let Some(s) = number("x-ratelimit-reset") {
            self.reset_at = Some(now + Duration::from_secs_f64(s).min(MAX_RATE_WAIT));
        }
    }

    /// How long to wait before the next request: until the reset when nothing remains.
    fn wait(&self, now: Instant) -> Option<Duration> {
        match (self.remaining, self.reset_at) {
            (Some(r), Some(at)) if r < 1.0 && at > now => Some(at - now),
            _ => None,
        }
    }
}

struct Poller {
    source: u16,
    id: String,
    client: reqwest::Client,
    credentials: Credentials,
    user_agent: HeaderValue,
    feeds: Vec<Feed>,
    max_pages: u32,
    request_timeout: Duration,
    max_response_bytes: usize,
    /// A poll that finds nothing new marks its listing seen up to its start less this.
    overlap_us: u64,
    rate: RateWindow,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

impl Poller {
    fn new(o: &RedditOptions, source: u16) -> Result<Poller, SourceError> {
        if let Some(p) = o.problems().into_iter().next() {
            return Err(SourceError::InvalidOption {
                field: "reddit",
                reason: p,
            });
        }
        nonzero("poll_interval", o.poll_interval.as_nanos())?;
        nonzero("request_timeout", o.request_timeout.as_nanos())?;
        nonzero("max_response_bytes", o.max_response_bytes as u128)?;
        let api = parse_url(&o.api_url, &["http", "https"])?;
        parse_url(&o.token_url, &["http", "https"])?;
        let user_agent =
            HeaderValue::from_str(&o.user_agent).map_err(|e| SourceError::BadHeader {
                name: "user-agent".into(),
                reason: e.to_string(),
            })?;
        let client = crate::tls::http_client_builder(&crate::tls::client_config())
            .user_agent(user_agent.clone())
            .connect_timeout(o.request_timeout)
            .timeout(o.request_timeout)
            .build()
            .map_err(SourceError::HttpClient)?;
        let auth = AuthConfig {
            // Reddit's answer says `expires_in` (a day); this is only the fallback.
            lifetime: Duration::from_secs(3600),
            // Reddit's documentation writes the scheme in lower case.
            prefix: Some("bearer".into()),
            ..AuthConfig::client_credentials(
                &o.token_url,
                &o.client_id_env,
                &o.client_secret_env,
                ClientAuth::Basic,
            )
        };
        let credentials = Credentials::held_by(
            Holder::Source(o.id.clone()),
            &auth,
            client.clone(),
            credentials::system_clock(),
        )
        .map_err(|e| SourceError::Credentials(e.to_string()))?;
        let floor = match o.since_us {
            Some(since) => since,
            None => now_us().saturating_sub(o.backfill.as_micros() as u64),
        };
        let subs = o.subreddits.join("+");
        let mut feeds = Vec::new();
        for &listing in &o.listings {
            if feeds.iter().any(|f: &Feed| f.listing == listing) {
                continue;
            }
            let mut url = api.clone();
            url.path_segments_mut()
                .map_err(|()| SourceError::bad_url(&o.api_url, "cannot be a base"))?
                .pop_if_empty()
                .extend(["r", &subs, listing.path()]);
            url.query_pairs_mut()
                .append_pair("limit", &PAGE_LIMIT.to_string())
                .append_pair("raw_json", "1");
            feeds.push(Feed {
                listing,
                url,
                newest: None,
                mark_us: floor,
            });
        }
        Ok(Poller {
            source,
            id: o.id.clone(),
            client,
            credentials,
            user_agent,
            feeds,
            max_pages: o.max_pages,
            request_timeout: o.request_timeout,
            max_response_bytes: o.max_response_bytes,
            overlap_us: o.resume_overlap.as_micros() as u64,
            rate: RateWindow::default(),
        })
    }

    /// Reads every listing once and hands on what is new.
    async fn poll(
        &mut self,
        emitter: &mut Emitter,
        shutdown: &mut Shutdown,
    ) -> Result<Polled, SourceError> {
        for f in 0..self.feeds.len() {
            let started_us = now_us();
            let fresh = match self.read_feed(f, emitter, shutdown).await {
                Ok(Some(fresh)) => fresh,
                Ok(None) => return Ok(Polled::Shutdown),
                Err(fail) => return Ok(Polled::Failed(fail)),
            };
            let feed = &mut self.feeds[f];
            match fresh.iter().map(|t| t.created_us).max() {
                Some(newest_us) => feed.mark_us = feed.mark_us.max(newest_us),
                None => feed.mark_us = feed.mark_us.max(started_us.saturating_sub(self.overlap_us)),
            }
            let position = self.feeds.iter().map(|f| f.mark_us).min();
            let last = fresh.len().saturating_sub(1);
            for (i, thing) in fresh.iter().enumerate() {
                let at = if i == last {
                    position.map(Position::Cursor)
                } else {
                    None
                };
                emitter.push(&thing.bytes, at)?;
            }
        }
        Ok(Polled::Done)
    }

    /// The new things of feed `f`, oldest first; `None` on shutdown.
    async fn read_feed(
        &mut self,
        f: usize,
        emitter: &mut Emitter,
        shutdown: &mut Shutdown,
    ) -> Result<Option<Vec<Thing>>, Fail> {
        let mut fresh: Vec<Thing> = Vec::new();
        let mut after: Option<String> = None;
        let mut seen_newest: Option<u64> = None;
        let mut reached = false;
        for page in 0..self.max_pages {
            let mut url = self.feeds[f].url.clone();
            if let Some(a) = &after {
                url.query_pairs_mut().append_pair("after", a);
            }
            let Some(body) = self.get(&url, shutdown).await? else {
                return Ok(None);
            };
            let listing: Page<'_> = serde_json::from_slice(&body).map_err(|e| {
                Fail::new(
                    Failure::Http,
                    Some(200),
                    format!("the answer is not a Listing: {e}"),
                )
            })?;
            if listing.kind != "Listing" {
                return Err(Fail::new(
                    Failure::Http,
                    Some(200),
                    "the answer is not a Listing",
                ));
            }
            let feed = &self.feeds[f];
            for child in &listing.data.children {
                let Some(head) = Head::read(child) else {
                    emitter.skip(SkipReason::WrongShape);
                    continue;
                };
                seen_newest = seen_newest.max(Some(head.number));
                let new = match feed.newest {
                    Some(n) => head.number > n,
                    None => head.created_us >= feed.mark_us,
                };
                if new {
                    fresh.push(Thing {
                        number: head.number,
                        created_us: head.created_us,
                        bytes: child.get().as_bytes().to_vec(),
                    });
                } else {
                    reached = true;
                }
            }
            after = listing.data.after.filter(|a| !a.is_empty());
            if reached || after.is_none() || listing.data.children.is_empty() {
                break;
            }
            if page + 1 == self.max_pages {
                tracing::warn!(source = self.source, listing = ?feed.listing, pages = self.max_pages,
                    "reddit: more new things than the pages read back; older ones of this interval are missed (poll more often)");
            }
        }
        fresh.sort_unstable_by_key(|t| t.number);
        fresh.dedup_by_key(|t| t.number);
        let feed = &mut self.feeds[f];
        feed.newest = feed.newest.max(seen_newest);
        Ok(Some(fresh))
    }

    /// One authorised GET: waits out an empty rate-limit window first, renews a refused token
    /// once; `None` on shutdown.
    async fn get(&mut self, url: &Url, shutdown: &mut Shutdown) -> Result<Option<Vec<u8>>, Fail> {
        let mut renewed = false;
        loop {
            if let Some(wait) = self.rate.wait(Instant::now()) {
                metrics::counter!(SOURCE_RATE_LIMIT_WAITS, "source" => self.id.clone())
                    .increment(1);
                tracing::info!(
                    source = self.source,
                    wait_ms = wait.as_millis() as u64,
                    "reddit: rate-limit window used up; waiting for its reset"
                );
                tokio::select! {
                    biased;
                    _ = shutdown.recv() => return Ok(None),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            let issued = self.credentials.header().await.map_err(|f| Fail {
                refused: f.refused,
                ..Fail::new(Failure::Http, None, f.detail)
            })?;
            let request = self
                .client
                .get(url.clone())
                .header(AUTHORIZATION, issued.header)
                .header(USER_AGENT, self.user_agent.clone())
                .send();
            let answer = tokio::select! {
                biased;
                _ = shutdown.recv() => return Ok(None),
                a = tokio::time::timeout(self.request_timeout, self.read(request)) => a,
            };
            let (status, headers, body) = match answer {
                Err(_) => return Err(Fail::new(Failure::Network, None, "the request timed out")),
                Ok(r) => r?,
            };
            self.rate.note(&headers, Instant::now());
            match status {
                200..=299 => return Ok(Some(body)),
                401 if !renewed && self.credentials.renews() => {
                    self.credentials.stale(issued.generation);
                    renewed = true;
                }
                _ => {
                    let mut fail = Fail::new(
                        Failure::from_status(status),
                        Some(status),
                        error_reason(status, &body),
                    );
                    if status == 429 {
                        fail.wait = retry_after(&headers)
                            .or_else(|| self.rate.reset_at.map(|at| at - Instant::now()));
                    }
                    return Err(fail);
                }
            }
        }
    }

    /// Sends `request` and reads its answer, at most `max_response_bytes` of a success and
    /// [`MAX_ERROR_BODY`] of an error.
    async fn read(
        &self,
        request: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>,
    ) -> Result<(u16, HeaderMap, Vec<u8>), Fail> {
        let network = |e: reqwest::Error| {
            Fail::new(
                Failure::Network,
                None,
                crate::tls::error_chain(&e.without_url()),
            )
        };
        let mut resp = request.await.map_err(network)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let limit = if (200..300).contains(&status) {
            self.max_response_bytes
        } else {
            MAX_ERROR_BODY
        };
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(network)? {
            if body.len() + chunk.len() > limit {
                if (200..300).contains(&status) {
                    return Err(Fail::new(
                        Failure::Http,
                        Some(status),
                        format!("an answer over max_response_bytes ({limit})"),
                    ));
                }
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, headers, body))
    }
}

/// `HTTP <status>` and Reddit's `reason` / `message` from an error answer
/// (`{"reason": "private", "message": "Forbidden", "error": 403}`), reduced to plain words so
/// an answer cannot write into a log line.
fn error_reason(status: u16, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        reason: Option<String>,
        #[serde(default)]
        message: Option<String>,
    }
    let mut out = format!("HTTP {status}");
    if let Ok(a) = serde_json::from_slice::<Answer>(body) {
        for word in [a.reason, a.message].into_iter().flatten() {
            let word: String = word
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' '))
                .take(64)
                .collect();
            if !word.is_empty() {
                let _ = write!(out, " ({word})");
            }
        }
    }
    out
}

/// A Listing page: only what paging needs; the children stay raw, to be handed on as they are.
#[derive(Deserialize)]
struct Page<'a> {
    kind: &'a str,
    #[serde(borrow)]
    data: PageData<'a>,
}

#[derive(Deserialize)]
struct PageData<'a> {
    #[serde(default)]
    after: Option<String>,
    #[serde(borrow)]
    children: Vec<&'a RawValue>,
}

/// What a thing is ordered by.
struct Head {
    number: u64,
    created_us: u64,
}

impl Head {
    /// The number and creation time of a `t1` / `t3` thing; `None` for anything else.
    fn read(raw: &RawValue) -> Option<Head> {
        #[derive(Deserialize)]
        struct Thing<'a> {
            kind: &'a str,
            data: Data<'a>,
        }
        #[derive(Deserialize)]
        struct Data<'a> {
            name: &'a str,
            created_utc: f64,
        }
        let t: Thing<'_> = serde_json::from_str(raw.get()).ok()?;
        let (prefix, id) = t.data.name.split_once('_')?;
        if prefix != t.kind || !matches!(t.kind, "t1" | "t3") || id.len() > 12 {
            return None;
        }
        let number = u64::from_str_radix(id, 36).ok()?;
        if !t.data.created_utc.is_finite() || t.data.created_utc < 0.0 {
            return None;
        }
        Some(Head {
            number,
            created_us: (t.data.created_utc * 1e6) as u64,
        })
    }
}

/// A new thing to hand on.
struct Thing {
    number: u64,
    created_us: u64,
    bytes: Vec<u8>,
}

#[cfg(test)]
mod tests;
