//! Profile enrichment: who is speaking, for platforms whose posts do not say.
//!
//! A Bluesky post (Jetstream) names its author by DID only: no handle, no display name, no
//! follower count. Without them the press, bot and influencer classes and the influence
//! points never fire on the default source. For a matched Bluesky post whose author is not
//! known, a worker asks [`Profiles`]: the answer comes from a bounded cache (size and TTL,
//! not-found answers cached too) or from the public profile API
//! (`app.bsky.actor.getProfiles`, up to 25 actors a call), and the post is scored with the
//! handle, display name, follower count and description filled in.
//!
//! Bounds: one task calls the API, at most `max_calls_per_s` times a second, gathering the
//! actors several workers ask for in one call. A worker waits at most `deadline` for a
//! profile: a slow or failing API, a full request queue or a spent rate limit only makes the
//! mention go without (counted by outcome in `earshot_enrichment_total`), never holds the
//! pipeline longer. Answers are read up to 1 MiB; a description is kept to 2,000 characters.

use std::num::NonZeroUsize;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tracing::{debug, warn};

use crate::metrics::ENRICHMENT;

/// `[enrichment]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichSettings {
    /// Look profiles up (off unless set; the embedded default turns it on).
    pub enabled: bool,
    /// The `app.bsky.actor.getProfiles` endpoint.
    pub url: String,
    /// Profiles kept at most.
    pub cache_size: usize,
    /// How long a profile (or a not-found answer) is kept.
    #[serde(with = "crate::duration")]
    pub cache_ttl: Duration,
    /// API calls a second at most.
    pub max_calls_per_s: u32,
    /// The longest a worker waits for a profile not in the cache.
    #[serde(with = "crate::duration")]
    pub deadline: Duration,
    /// The longest one API call may take.
    #[serde(with = "crate::duration")]
    pub timeout: Duration,
}

impl Default for EnrichSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            url: "https://public.api.bsky.app/xrpc/app.bsky.actor.getProfiles".into(),
            cache_size: 100_000,
            cache_ttl: Duration::from_secs(6 * 3600),
            max_calls_per_s: 10,
            deadline: Duration::from_millis(300),
            timeout: Duration::from_secs(3),
        }
    }
}

impl EnrichSettings {
    /// What is wrong with the settings, if anything.
    pub fn problem(&self) -> Option<String> {
        if !self.enabled {
            return None;
        }
        match url::Url::parse(&self.url) {
            Ok(u) => {
                if let Err(e) = crate::tls::check_remote_url(&u, &["https"], &["http"]) {
                    return Some(format!("enrichment.url: {e}"));
                }
            }
            Err(e) => return Some(format!("enrichment.url: {e}")),
        }
        if self.cache_size == 0 || self.max_calls_per_s == 0 {
            return Some("enrichment: cache_size and max_calls_per_s must be above 0".into());
        }
        if self.deadline.is_zero() || self.timeout.is_zero() {
            return Some("enrichment: deadline and timeout must be above 0".into());
        }
        None
    }
}

/// What a profile lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The handle (`alice.bsky.social`).
    pub handle: String,
    /// The display name.
    pub name: Option<String>,
    /// Followers.
    pub followers: Option<u64>,
    /// The description (bio), at most [`MAX_DESCRIPTION`] characters.
    pub description: Option<String>,
}

/// Characters of a description kept.
pub const MAX_DESCRIPTION: usize = 2000;
/// Actors in one call (the API's limit).
pub const MAX_ACTORS: usize = 25;
/// Bytes of an answer read.
const MAX_ANSWER: usize = 1 << 20;
/// Lookups waiting for the API at most; past it a worker does not wait.
const MAX_WAITING: usize = 1024;

type Reply = SyncSender<Option<Arc<Profile>>>;

/// A cached answer: when it came, and the profile (`None`: no such profile).
type Cached = (Instant, Option<Arc<Profile>>);

struct Ask {
    did: String,
    reply: Reply,
}

/// The profile cache and the task that fills it, shared by the workers.
pub struct Profiles {
    cache: Mutex<lru::LruCache<String, Cached>>,
    ttl: Duration,
    deadline: Duration,
    asks: tokio::sync::mpsc::Sender<Ask>,
}

impl std::fmt::Debug for Profiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profiles").finish_non_exhaustive()
    }
}

fn count(outcome: &'static str) {
    metrics::counter!(ENRICHMENT, "outcome" => outcome).increment(1);
}

impl Profiles {
    /// Starts the API task on `runtime`.
    pub fn start(
        settings: &EnrichSettings,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Arc<Profiles>, reqwest::Error> {
        for outcome in ["cached", "fetched", "missing", "late", "busy", "failed"] {
            metrics::counter!(ENRICHMENT, "outcome" => outcome).increment(0);
        }
        let client = crate::tls::http_client_builder(&crate::tls::client_config())
            .timeout(settings.timeout)
            .build()?;
        let (tx, rx) = tokio::sync::mpsc::channel(MAX_WAITING);
        let profiles = Arc::new(Profiles {
            cache: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(settings.cache_size.max(1)).expect("at least 1"),
            )),
            ttl: settings.cache_ttl,
            deadline: settings.deadline,
            asks: tx,
        });
        runtime.spawn(fetcher(
            profiles.clone(),
            rx,
            client,
            settings.url.clone(),
            settings.max_calls_per_s,
        ));
        Ok(profiles)
    }

    /// The profile of `did`, waiting at most the deadline (from a worker thread, never from
    /// the runtime). `None`: not found, or not in time.
    pub fn lookup(&self, did: &str) -> Option<Arc<Profile>> {
        if let Some(hit) = self.cached(did) {
            count("cached");
            return hit;
        }
        let (reply, answer) = sync_channel(1);
        let ask = Ask {
            did: did.to_string(),
            reply,
        };
        if self.asks.try_send(ask).is_err() {
            count("busy");
            return None;
        }
        match answer.recv_timeout(self.deadline) {
            Ok(Some(p)) => {
                count("fetched");
                Some(p)
            }
            Ok(None) => {
                count("missing");
                None
            }
            Err(_) => {
                count("late");
                None
            }
        }
    }

    /// What the cache holds for `did`: `Some(None)` for a cached not-found.
    fn cached(&self, did: &str) -> Option<Option<Arc<Profile>>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(did) {
            Some((at, p)) if at.elapsed() < self.ttl => Some(p.clone()),
            Some(_) => {
                cache.pop(did);
                None
            }
            None => None,
        }
    }

    fn keep(&self, did: &str, profile: Option<Arc<Profile>>) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(did.to_string(), (Instant::now(), profile));
    }
}

/// The API task: gathers what the workers ask (up to 25 actors a call), calls at most
/// `per_s` times a second, fills the cache and answers.
async fn fetcher(
    profiles: Arc<Profiles>,
    mut asks: tokio::sync::mpsc::Receiver<Ask>,
    client: reqwest::Client,
    url: String,
    per_s: u32,
) {
    let spacing = Duration::from_secs(1) / per_s.max(1);
    let mut next_call = tokio::time::Instant::now();
    let mut carried: Vec<Ask> = Vec::new();
    loop {
        if carried.is_empty() {
            match asks.recv().await {
                Some(first) => carried.push(first),
                None => break,
            }
        }
        // Wait for the rate limit, gathering what else is asked meanwhile.
        tokio::time::sleep_until(next_call).await;
        while carried.len() < MAX_WAITING {
            match asks.try_recv() {
                Ok(a) => carried.push(a),
                Err(_) => break,
            }
        }
        // This call's actors: the first 25 asked; the asks for others wait for the next call
        // (their workers may have gone on without them by then).
        let mut dids: Vec<String> = Vec::new();
        for a in &carried {
            if !dids.contains(&a.did) && dids.len() < MAX_ACTORS {
                dids.push(a.did.clone());
            }
        }
        let (batch, rest): (Vec<Ask>, Vec<Ask>) =
            carried.drain(..).partition(|a| dids.contains(&a.did));
        carried = rest;
        next_call = tokio::time::Instant::now() + spacing;
        let found = match call(&client, &url, &dids).await {
            Ok(found) => {
                for did in &dids {
                    let p = found.iter().find(|(d, _)| d == did).map(|(_, p)| p.clone());
                    profiles.keep(did, p);
                }
                Some(found)
            }
            Err(e) => {
                warn!(error = %e, actors = dids.len(), "profile lookup failed; the mentions go without");
                count("failed");
                None
            }
        };
        for a in batch {
            let answer = found
                .as_ref()
                .and_then(|f| f.iter().find(|(d, _)| *d == a.did).map(|(_, p)| p.clone()));
            let _ = a.reply.try_send(answer);
        }
        // Asks carried over whose actor this call answered (asked twice) are answered now.
        let (answered, rest): (Vec<Ask>, Vec<Ask>) = std::mem::take(&mut carried)
            .into_iter()
            .partition(|a| profiles.cached(&a.did).is_some());
        for a in answered {
            let _ = a.reply.try_send(profiles.cached(&a.did).flatten());
        }
        carried = rest;
    }
    debug!("profile lookups finished");
}

#[derive(Deserialize)]
struct Answer {
    profiles: Vec<ProfileView>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileView {
    did: String,
    handle: String,
    display_name: Option<String>,
    description: Option<String>,
    followers_count: Option<u64>,
}

/// One `getProfiles` call for `dids`: the profiles found, by DID.
async fn call(
    client: &reqwest::Client,
    url: &str,
    dids: &[String],
) -> Result<Vec<(String, Arc<Profile>)>, String> {
    let mut u = url::Url::parse(url).map_err(|e| e.to_string())?;
    {
        let mut q = u.query_pairs_mut();
        for d in dids {
            q.append_pair("actors", d);
        }
    }
    let mut resp = client
        .get(u)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| crate::tls::error_chain(&e.without_url()))?;
    let status = resp.status();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(format!("an answer over {MAX_ANSWER} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    let answer: Answer = serde_json::from_slice(&body).map_err(|e| format!("the answer: {e}"))?;
    Ok(answer
        .profiles
        .into_iter()
        .filter(|p| dids.contains(&p.did) && !p.handle.is_empty() && p.handle.len() <= 253)
        .map(|p| {
            let description = p
                .description
                .map(|d| d.chars().take(MAX_DESCRIPTION).collect::<String>())
                .filter(|d| !d.is_empty());
            (
                p.did,
                Arc::new(Profile {
                    handle: p.handle,
                    name: p.display_name.filter(|n| !n.is_empty()),
                    followers: p.followers_count,
                    description,
                }),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use axum::extract::{RawQuery, State};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    use super::*;

    /// A stand-in of `app.bsky.actor.getProfiles` as the lexicon gives it: `actors`
    /// repeated, at most 25 (else 400 `InvalidRequest`), `profiles` holding a
    /// `profileViewDetailed` for each actor it knows; an answer held back `delay_ms`.
    #[derive(Default)]
    struct Api {
        calls: AtomicUsize,
        most_actors: AtomicUsize,
        delay_ms: AtomicU64,
    }

    fn view(did: &str) -> Option<serde_json::Value> {
        let (handle, name, followers, description) = match did {
            "did:plc:reporter" => (
                "dana.bsky.social",
                "Dana",
                48_200,
                "Tech reporter at Planet News",
            ),
            "did:plc:quiet" => ("quiet.bsky.social", "", 12, ""),
            _ => return None,
        };
        Some(serde_json::json!({
            "did": did, "handle": handle, "displayName": name, "description": description,
            "avatar": "https://cdn.bsky.app/img/avatar/plain/x/y@jpeg",
            "followersCount": followers, "followsCount": 311, "postsCount": 5120,
            "indexedAt": "2026-11-30T08:12:44.123Z", "createdAt": "2023-05-02T17:40:10.000Z",
            "viewer": {"muted": false, "blockedBy": false}, "labels": []
        }))
    }

    async fn get_profiles(
        State(api): State<Arc<Api>>,
        RawQuery(q): RawQuery,
    ) -> axum::response::Response {
        api.calls.fetch_add(1, Ordering::SeqCst);
        let actors: Vec<String> = url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
            .filter(|(k, _)| k == "actors")
            .map(|(_, v)| v.into_owned())
            .collect();
        api.most_actors.fetch_max(actors.len(), Ordering::SeqCst);
        if actors.is_empty() || actors.len() > 25 {
            let e = serde_json::json!({"error": "InvalidRequest", "message": "actors must have 1 to 25 items"});
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
        tokio::time::sleep(Duration::from_millis(api.delay_ms.load(Ordering::SeqCst))).await;
        let profiles: Vec<serde_json::Value> = actors.iter().filter_map(|a| view(a)).collect();
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "profiles": profiles }).to_string(),
        )
            .into_response()
    }

    async fn start() -> (Arc<Api>, String) {
        let api = Arc::new(Api::default());
        let app = axum::Router::new()
            .route(
                "/xrpc/app.bsky.actor.getProfiles",
                axum::routing::get(get_profiles),
            )
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (
            api,
            format!("http://{addr}/xrpc/app.bsky.actor.getProfiles"),
        )
    }

    fn settings(url: String) -> EnrichSettings {
        EnrichSettings {
            enabled: true,
            url,
            deadline: Duration::from_secs(5),
            max_calls_per_s: 1000,
            ..EnrichSettings::default()
        }
    }

    async fn lookup(p: &Arc<Profiles>, did: &'static str) -> Option<Arc<Profile>> {
        let p = p.clone();
        tokio::task::spawn_blocking(move || p.lookup(did))
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn profiles_are_fetched_once_then_cached_found_or_not() {
        crate::tls::ensure_crypto_provider();
        let (api, url) = start().await;
        let p = Profiles::start(&settings(url), &tokio::runtime::Handle::current()).unwrap();
        let dana = lookup(&p, "did:plc:reporter").await.expect("a profile");
        assert_eq!(
            (dana.handle.as_str(), dana.name.as_deref(), dana.followers),
            ("dana.bsky.social", Some("Dana"), Some(48_200))
        );
        assert_eq!(
            dana.description.as_deref(),
            Some("Tech reporter at Planet News")
        );
        let quiet = lookup(&p, "did:plc:quiet").await.expect("a profile");
        assert_eq!(
            (quiet.name.clone(), quiet.description.clone()),
            (None, None),
            "empty is none"
        );
        assert!(lookup(&p, "did:plc:gone").await.is_none());
        let calls = api.calls.load(Ordering::SeqCst);
        assert!(lookup(&p, "did:plc:reporter").await.is_some());
        assert!(
            lookup(&p, "did:plc:gone").await.is_none(),
            "not found is cached too"
        );
        assert_eq!(
            api.calls.load(Ordering::SeqCst),
            calls,
            "both from the cache"
        );
    }

    /// Many workers asking at once: calls of at most 25 actors, each actor answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lookups_are_gathered_into_calls_of_at_most_25_actors() {
        crate::tls::ensure_crypto_provider();
        let (api, url) = start().await;
        api.delay_ms.store(50, Ordering::SeqCst);
        let p = Profiles::start(&settings(url), &tokio::runtime::Handle::current()).unwrap();
        let dids: Vec<&'static str> = (0..60)
            .map(|i| &*Box::leak(format!("did:plc:nobody{i}").into_boxed_str()))
            .chain(["did:plc:reporter"])
            .collect();
        let mut tasks = Vec::new();
        for d in &dids {
            let p = p.clone();
            let d: &'static str = d;
            tasks.push(tokio::task::spawn_blocking(move || (d, p.lookup(d))));
        }
        let mut found = HashMap::new();
        for t in tasks {
            let (d, r) = t.await.unwrap();
            found.insert(d, r.is_some());
        }
        assert!(found["did:plc:reporter"]);
        assert_eq!(found.values().filter(|f| **f).count(), 1);
        assert!(api.most_actors.load(Ordering::SeqCst) <= 25);
        assert!(
            api.calls.load(Ordering::SeqCst) < dids.len(),
            "lookups share calls"
        );
    }

    /// An API slower than the deadline: the lookup goes without, and the profile that comes
    /// later is cached for the next mention of that author.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_api_costs_no_more_than_the_deadline() {
        crate::tls::ensure_crypto_provider();
        let (api, url) = start().await;
        api.delay_ms.store(400, Ordering::SeqCst);
        let p = Profiles::start(
            &EnrichSettings {
                deadline: Duration::from_millis(20),
                ..settings(url)
            },
            &tokio::runtime::Handle::current(),
        )
        .unwrap();
        assert!(
            lookup(&p, "did:plc:reporter").await.is_none(),
            "late: goes without"
        );
        let mut later = None;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            later = p.cached("did:plc:reporter");
            if later.is_some() {
                break;
            }
        }
        assert!(later.flatten().is_some(), "the late answer is cached");
    }

    #[test]
    fn settings_are_checked() {
        assert!(EnrichSettings::default().problem().is_none(), "off is fine");
        let on = EnrichSettings {
            enabled: true,
            ..EnrichSettings::default()
        };
        assert!(on.problem().is_none());
        let plain = EnrichSettings {
            url: "http://api.example/xrpc/app.bsky.actor.getProfiles".into(),
            ..on.clone()
        };
        assert!(plain.problem().unwrap().contains("enrichment.url"));
        let zero = EnrichSettings {
            max_calls_per_s: 0,
            ..on
        };
        assert!(zero.problem().is_some());
    }
}
