//! X's filtered-stream rules endpoint: list, add (with `dry_run`), delete.
//!
//! `GET /2/tweets/search/stream/rules` pages with `max_results` and `pagination_token`;
//! `POST` takes `{"add": [{"value", "tag"}]}` or `{"delete": {"ids": […]}}`, with `dry_run=true`
//! to validate without changing anything, and answers a `meta.summary` of what was created,
//! deleted or found invalid plus an `errors` list naming each refused value. App-only bearer
//! token from the environment; no redirects; answers bounded; requests sent in chunks of
//! [`CHUNK`]. What X says in an error is reduced to its title, detail and the value it names,
//! cut to plain printable text.

use std::time::Duration;

use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::HeaderValue;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::{XRule, TAG};

/// Values or ids per request.
pub const CHUNK: usize = 100;
/// The largest answer read: a page of 1,000 rules of 2,048 characters is about 2.2 MB.
const MAX_ANSWER: usize = 8 << 20;
/// The most pages of rules read (X holds at most 25,000 rules; pages are 1,000).
const MAX_PAGES: usize = 50;

/// A failed exchange with X.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The token variable is not set or unusable.
    #[error("environment variable `{0}` (the X app's bearer token) is not set or not usable in a header")]
    Token(String),
    /// No answer.
    #[error("X's rules endpoint ({endpoint}): {why}")]
    Unreachable {
        /// `scheme://host:port/…`.
        endpoint: String,
        /// What failed.
        why: String,
    },
    /// An error status.
    #[error("X's rules endpoint ({endpoint}) answered HTTP {status}: {what}")]
    Status {
        /// `scheme://host:port/…`.
        endpoint: String,
        /// The status.
        status: u16,
        /// X's title and detail, plain.
        what: String,
    },
    /// A 2xx that is not what X documents.
    #[error("X's rules endpoint ({endpoint}) gave an answer that cannot be read: {why}")]
    Unreadable {
        /// `scheme://host:port/…`.
        endpoint: String,
        /// Why.
        why: String,
    },
}

/// What a POST did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Values created (or valid, in a dry run) / ids deleted.
    pub done: usize,
    /// Values refused, each with X's reason.
    pub refused: Vec<String>,
}

/// A client of one stream's rules endpoint.
pub struct RulesApi {
    url: Url,
    auth: HeaderValue,
    client: reqwest::Client,
}

impl std::fmt::Debug for RulesApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RulesApi({})", crate::redact::url(&self.url))
    }
}

/// Plain printable text of at most 300 characters: what X says may be shown, never used to
/// write into a terminal or a log line.
fn plain(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect()
}

#[derive(Deserialize, Default)]
struct Problem {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    details: Vec<String>,
    #[serde(default)]
    id: Option<String>,
}

impl Problem {
    fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(t) = &self.title {
            parts.push(plain(t));
        }
        if let Some(d) = &self.detail {
            parts.push(plain(d));
        }
        parts.extend(self.details.iter().map(|d| plain(d)));
        if let Some(v) = &self.value {
            parts.push(format!("value {}", plain(v)));
        }
        if let Some(i) = &self.id {
            parts.push(format!("id {}", plain(i)));
        }
        if parts.is_empty() {
            "no detail".into()
        } else {
            parts.join(": ")
        }
    }
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    data: Vec<XRule>,
    #[serde(default)]
    meta: PageMeta,
}

#[derive(Deserialize, Default)]
struct PageMeta {
    #[serde(default)]
    next_token: Option<String>,
}

#[derive(Deserialize)]
struct Changed {
    meta: ChangedMeta,
    #[serde(default)]
    errors: Vec<Problem>,
}

#[derive(Deserialize)]
struct ChangedMeta {
    summary: Summary,
}

#[derive(Deserialize)]
struct Summary {
    #[serde(default)]
    created: Option<usize>,
    #[serde(default)]
    valid: Option<usize>,
    #[serde(default)]
    deleted: Option<usize>,
}

impl RulesApi {
    /// A client of `rules_url` with the bearer token in `token_env`, each exchange bounded by
    /// `timeout`.
    pub fn new(rules_url: Url, token_env: &str, timeout: Duration) -> Result<RulesApi, ApiError> {
        let token = std::env::var(token_env)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| ApiError::Token(token_env.into()))?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .map_err(|_| ApiError::Token(token_env.into()))?;
        auth.set_sensitive(true);
        let client = crate::tls::http_client_builder(&crate::tls::client_config())
            .timeout(timeout)
            .build()
            .map_err(|e| ApiError::Unreachable {
                endpoint: crate::redact::url(&rules_url),
                why: e.to_string(),
            })?;
        Ok(RulesApi {
            url: rules_url,
            auth,
            client,
        })
    }

    fn endpoint(&self) -> String {
        crate::redact::url(&self.url)
    }

    /// Sends `request` and reads a bounded 2xx answer; anything else is an error.
    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, ApiError> {
        let unreachable = |e: reqwest::Error| ApiError::Unreachable {
            endpoint: self.endpoint(),
            why: crate::tls::error_chain(&e.without_url()),
        };
        let mut resp = request
            .header(AUTHORIZATION, self.auth.clone())
            .send()
            .await
            .map_err(unreachable)?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(ApiError::Unreadable {
                    endpoint: self.endpoint(),
                    why: format!("an answer over {MAX_ANSWER} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        if !(200..300).contains(&status) {
            let what = serde_json::from_slice::<Problem>(&body)
                .map(|p| p.describe())
                .unwrap_or_else(|_| "an answer that is not JSON".into());
            return Err(ApiError::Status {
                endpoint: self.endpoint(),
                status,
                what,
            });
        }
        Ok(body)
    }

    fn unreadable(&self, e: serde_json::Error) -> ApiError {
        ApiError::Unreadable {
            endpoint: self.endpoint(),
            why: e.to_string(),
        }
    }

    /// Every rule X holds for the stream.
    pub async fn list(&self) -> Result<Vec<XRule>, ApiError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = self.url.clone();
            url.query_pairs_mut().append_pair("max_results", "1000");
            if let Some(t) = &token {
                url.query_pairs_mut().append_pair("pagination_token", t);
            }
            let body = self.exchange(self.client.get(url)).await?;
            let page: Page = serde_json::from_slice(&body).map_err(|e| self.unreadable(e))?;
            out.extend(page.data);
            token = page.meta.next_token.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(out);
            }
        }
        Err(ApiError::Unreadable {
            endpoint: self.endpoint(),
            why: format!("more than {MAX_PAGES} pages of rules"),
        })
    }

    async fn post(&self, body: serde_json::Value, dry_run: bool) -> Result<Outcome, ApiError> {
        let mut url = self.url.clone();
        if dry_run {
            url.query_pairs_mut().append_pair("dry_run", "true");
        }
        let request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let answer = self.exchange(request).await?;
        let changed: Changed = serde_json::from_slice(&answer).map_err(|e| self.unreadable(e))?;
        let s = changed.meta.summary;
        Ok(Outcome {
            done: if dry_run {
                s.valid.or(s.created).or(s.deleted).unwrap_or(0)
            } else {
                s.created.or(s.deleted).unwrap_or(0)
            },
            refused: changed.errors.iter().map(Problem::describe).collect(),
        })
    }

    /// Adds `values` tagged [`TAG`] (validates only, with `dry_run`), in chunks.
    pub async fn add(&self, values: &[String], dry_run: bool) -> Result<Outcome, ApiError> {
        let mut total = Outcome::default();
        for chunk in values.chunks(CHUNK) {
            let add: Vec<_> = chunk
                .iter()
                .map(|v| json!({"value": v, "tag": TAG}))
                .collect();
            let o = self.post(json!({ "add": add }), dry_run).await?;
            total.done += o.done;
            total.refused.extend(o.refused);
        }
        Ok(total)
    }

    /// Deletes the rules `ids`, in chunks.
    pub async fn delete(&self, ids: &[String], dry_run: bool) -> Result<Outcome, ApiError> {
        let mut total = Outcome::default();
        for chunk in ids.chunks(CHUNK) {
            let o = self
                .post(json!({ "delete": { "ids": chunk } }), dry_run)
                .await?;
            total.done += o.done;
            total.refused.extend(o.refused);
        }
        Ok(total)
    }
}

/// The rules endpoint of a filtered stream at `stream_url` (`…/2/tweets/search/stream`, any
/// query dropped): the same origin and path with `/rules` added.
pub fn rules_url(stream_url: &str) -> Option<Url> {
    let mut u = Url::parse(stream_url).ok()?;
    if !u
        .path()
        .trim_end_matches('/')
        .ends_with("/tweets/search/stream")
    {
        return None;
    }
    let path = format!("{}/rules", u.path().trim_end_matches('/'));
    u.set_path(&path);
    u.set_query(None);
    u.set_fragment(None);
    Some(u)
}
