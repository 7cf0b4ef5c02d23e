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
//! pipeline longer. And a worker spends at most `max_wait_share` of its time waiting
//! ([`WaitBudget`]): in a burst of matched posts by new authors, once its share is spent it
//! asks without waiting (the profile is cached for the author's next post) and goes on, so a
//! burst is enriched as far as the share allows instead of slowing the pipeline to the API's
//! pace. Answers are read up to 1 MiB; a description is kept to 2,000 characters.

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
    /// The most of a worker's time that goes to waiting for profiles (0 to 1).
    pub max_wait_share: f64,
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
            max_wait_share: 0.2,
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
        if !(self.max_wait_share > 0.0 && self.max_wait_share <= 1.0) {
            return Some("enrichment.max_wait_share must be above 0 and at most 1".into());
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

/// A worker's allowance of time to wait for profiles: it fills at `share` of the time that
/// passes, up to the deadline, and each wait spends it. A worker whose allowance is spent asks
/// without waiting.
#[derive(Debug, Clone)]
pub struct WaitBudget {
    share: f64,
    cap: Duration,
    left: Duration,
    since: Instant,
}

impl WaitBudget {
    /// A full allowance of `cap`, filling at `share` of the time.
    pub fn new(share: f64, cap: Duration) -> Self {
        Self {
            share,
            cap,
            left: cap,
            since: Instant::now(),
        }
    }

    /// What may be waited now.
    fn available(&mut self, now: Instant) -> Duration {
        let earned = now
            .saturating_duration_since(self.since)
            .mul_f64(self.share);
        self.left = (self.left + earned).min(self.cap);
        self.since = now;
        self.left
    }

    fn spend(&mut self, waited: Duration) {
        self.left = self.left.saturating_sub(waited);
    }
}

/// The profile cache and the task that fills it, shared by the workers.
pub struct Profiles {
    cache: Mutex<lru::LruCache<String, Cached>>,
    ttl: Duration,
    deadline: Duration,
    wait_share: f64,
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
        for outcome in [
            "cached", "fetched", "missing", "late", "busy", "unwaited", "failed",
        ] {
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
            wait_share: settings.max_wait_share,
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

    /// A worker's allowance of waiting ([`Profiles::lookup_within`]).
    pub fn budget(&self) -> WaitBudget {
        WaitBudget::new(self.wait_share, self.deadline)
    }

    /// The profile of `did`, waiting at most the deadline (from a worker thread, never from
    /// the runtime). `None`: not found, or not in time.
    pub fn lookup(&self, did: &str) -> Option<Arc<Profile>> {
        self.lookup_within(did, &mut WaitBudget::new(1.0, self.deadline))
    }

    /// [`Profiles::lookup`] waiting at most what `budget` allows: with nothing left, the
    /// profile is asked for without waiting (counted `unwaited`) and cached for later.
    pub fn lookup_within(&self, did: &str, budget: &mut WaitBudget) -> Option<Arc<Profile>> {
        if let Some(hit) = self.cached(did) {
            count("cached");
            return hit;
        }
        let started = Instant::now();
        let wait = budget.available(started).min(self.deadline);
        let (reply, answer) = sync_channel(1);
        let ask = Ask {
            did: did.to_string(),
            reply,
        };
        if self.asks.try_send(ask).is_err() {
            count("busy");
            return None;
        }
        if wait.is_zero() {
            count("unwaited");
            return None;
        }
        let answered = answer.recv_timeout(wait);
        budget.spend(started.elapsed());
        match answered {
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
            ..on.clone()
        };
        assert!(zero.problem().is_some());
        for share in [0.0, 1.5, f64::NAN] {
            let s = EnrichSettings {
                max_wait_share: share,
                ..on.clone()
            };
            assert!(s.problem().unwrap().contains("max_wait_share"), "{share}");
        }
    }

    /// The allowance fills at its share of the time that passes, up to its cap, and waits
    /// spend it.
    #[test]
    fn a_wait_budget_fills_at_its_share_and_is_spent_by_waits() {
        let mut b = WaitBudget::new(0.2, Duration::from_millis(300));
        let t0 = b.since;
        assert_eq!(b.available(t0), Duration::from_millis(300), "full at first");
        b.spend(Duration::from_millis(300));
        assert_eq!(b.available(t0), Duration::ZERO);
        assert_eq!(
            b.available(t0 + Duration::from_millis(500)),
            Duration::from_millis(100),
            "a fifth of 500 ms"
        );
        b.spend(Duration::from_millis(250));
        assert_eq!(b.available(t0 + Duration::from_millis(500)), Duration::ZERO);
        assert_eq!(
            b.available(t0 + Duration::from_secs(60)),
            Duration::from_millis(300),
            "never above the cap"
        );
    }

    /// A worker whose allowance is spent does not wait: the profile is asked for anyway and
    /// cached for the author's next post.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_spent_allowance_asks_without_waiting_and_the_profile_is_cached() {
        crate::tls::ensure_crypto_provider();
        let (api, url) = start().await;
        api.delay_ms.store(50, Ordering::SeqCst);
        let p = Profiles::start(&settings(url), &tokio::runtime::Handle::current()).unwrap();
        let mut spent = WaitBudget::new(0.2, Duration::from_secs(5));
        let now = Instant::now();
        spent.available(now);
        spent.spend(Duration::from_secs(5));
        // Keep the clock still for the budget: `since` in the future earns nothing.
        spent.since = now + Duration::from_secs(3600);
        let p2 = p.clone();
        let (got, spent) = tokio::task::spawn_blocking(move || {
            let got = p2.lookup_within("did:plc:reporter", &mut spent);
            (got, spent)
        })
        .await
        .unwrap();
        assert!(got.is_none(), "no allowance: goes without");
        assert_eq!(spent.left, Duration::ZERO);
        let mut cached = None;
        for _ in 0..500 {
            cached = p.cached("did:plc:reporter");
            if cached.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(cached.flatten().is_some(), "asked anyway, and cached");
        assert_eq!(api.calls.load(Ordering::SeqCst), 1);
    }
}
