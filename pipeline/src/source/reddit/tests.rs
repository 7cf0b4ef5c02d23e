//! The Reddit source against a loopback stand-in of Reddit's API that checks every request as
//! Reddit documents it: the token endpoint (`POST /api/v1/access_token`, HTTP Basic with the
//! app's id and secret, `grant_type=client_credentials`, a `User-Agent`), the listings
//! (`GET /r/<a+b>/new|comments`, `limit` ≤ 100, `raw_json=1`, `after`, `Authorization: bearer`),
//! the `X-Ratelimit-*` headers and a 429 past the window, and Reddit's error bodies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap as AxumHeaders, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::*;
use crate::source::testutil::{emitter, fixture_bytes, recv_frames, wait_until, TEST_TIMEOUT};

const CLIENT_ID: &str = "p-jcoLKBynTLew";
const CLIENT_SECRET: &str = "gko_LXELoV07ZBNUXrvWZfzE3aI";
const AGENT: &str = "server:com.example.listening:1.0 (by /u/example)";

/// The stand-in's state.
#[derive(Default)]
struct Api {
    /// `t3` things, oldest first.
    submissions: Mutex<Vec<Value>>,
    /// `t1` things, oldest first.
    comments: Mutex<Vec<Value>>,
    /// Tokens handed out that are still good.
    tokens: Mutex<HashMap<String, ()>>,
    token_requests: AtomicUsize,
    listing_requests: AtomicUsize,
    /// Requests allowed in the current window; `u64::MAX` means no limit.
    window_left: AtomicU64,
    /// Seconds the stand-in reports until the window resets.
    window_reset_s: AtomicU64,
    served_429: AtomicUsize,
    /// Answer listings with 429 this many times, the headers saying there was room.
    throttle: AtomicU64,
    /// Answer every listing with 403 `private`.
    private: AtomicBool,
    /// Forget every token after each listing answer (the source must renew and ask again).
    revoke_each: AtomicBool,
    /// What did not look like Reddit's documented requests.
    violations: Mutex<Vec<String>>,
}

impl Api {
    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }

    /// Adds `n` things of `kind` created at `created` (seconds), numbered after the last.
    fn add(&self, kind: &str, n: usize, created: f64) {
        let template: Value = {
            let name = if kind == "t3" {
                "reddit-submissions-listing.json"
            } else {
                "reddit-comments-listing.json"
            };
            let listing: Value = serde_json::from_slice(&fixture_bytes(name)).unwrap();
            listing["data"]["children"][0].clone()
        };
        let list = if kind == "t3" {
            &self.submissions
        } else {
            &self.comments
        };
        let mut list = list.lock().unwrap();
        for _ in 0..n {
            let number = 1_000_000 + list.len() as u64;
            let id = to_base36(number);
            let mut thing = template.clone();
            thing["data"]["id"] = json!(id);
            thing["data"]["name"] = json!(format!("{kind}_{id}"));
            thing["data"]["created_utc"] = json!(created);
            list.push(thing);
        }
    }
}

fn to_base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    while n > 0 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [("content-type", "application/json")],
        json!({"message": "Unauthorized", "error": 401}).to_string(),
    )
        .into_response()
}

async fn access_token(State(api): State<Arc<Api>>, headers: AxumHeaders, body: String) -> Response {
    api.token_requests.fetch_add(1, Ordering::SeqCst);
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    if header("user-agent") != AGENT {
        api.violation(format!(
            "token request with user-agent {:?}",
            header("user-agent")
        ));
    }
    if header("content-type") != "application/x-www-form-urlencoded" {
        api.violation(format!(
            "token request content-type {:?}",
            header("content-type")
        ));
    }
    if body != "grant_type=client_credentials" {
        // Reddit takes the client's credentials in Basic only; they must not be in the body.
        api.violation(format!("token request body {body:?}"));
    }
    use base64::Engine as _;
    let basic = header("authorization")
        .strip_prefix("Basic ")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    if basic.as_deref() != Some(&format!("{CLIENT_ID}:{CLIENT_SECRET}")) {
        return unauthorized();
    }
    let n = api.token_requests.load(Ordering::SeqCst);
    let token = format!("{n}-Xk2mM3eGcWkX9D0TiSQGjwZHYNu");
    api.tokens.lock().unwrap().insert(token.clone(), ());
    (
        [("content-type", "application/json")],
        json!({"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"})
            .to_string(),
    )
        .into_response()
}

async fn listing(
    State(api): State<Arc<Api>>,
    Path((subs, which)): Path<(String, String)>,
    headers: AxumHeaders,
    RawQuery(query): RawQuery,
) -> Response {
    api.listing_requests.fetch_add(1, Ordering::SeqCst);
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    if header("user-agent") != AGENT {
        api.violation(format!(
            "listing request with user-agent {:?}",
            header("user-agent")
        ));
    }
    if subs != "espresso+coffee" {
        api.violation(format!("subreddits {subs:?}"));
    }
    let token = header("authorization")
        .strip_prefix("bearer ")
        .unwrap_or("");
    if !api.tokens.lock().unwrap().contains_key(token) {
        return unauthorized();
    }
    let left = api.window_left.load(Ordering::SeqCst);
    let reset = api.window_reset_s.load(Ordering::SeqCst);
    if api
        .throttle
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        api.served_429.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            json!({"message": "Too Many Requests", "error": 429}).to_string(),
        )
            .into_response();
    }
    if left == 0 {
        api.served_429.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [
                ("x-ratelimit-remaining", "0.0".to_string()),
                ("x-ratelimit-reset", reset.to_string()),
            ],
            json!({"message": "Too Many Requests", "error": 429}).to_string(),
        )
            .into_response();
    }
    if left != u64::MAX {
        api.window_left.fetch_sub(1, Ordering::SeqCst);
    }
    if api.private.load(Ordering::SeqCst) {
        return (
            StatusCode::FORBIDDEN,
            json!({"reason": "private", "message": "Forbidden", "error": 403}).to_string(),
        )
            .into_response();
    }
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let limit: usize = params
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(25);
    if limit > 100 {
        api.violation(format!("limit {limit}"));
    }
    if params.get("raw_json").map(String::as_str) != Some("1") {
        api.violation("raw_json is not 1".into());
    }
    let things = match which.as_str() {
        "new" => api.submissions.lock().unwrap().clone(),
        "comments" => api.comments.lock().unwrap().clone(),
        other => {
            api.violation(format!("listing {other:?}"));
            return StatusCode::NOT_FOUND.into_response();
        }
    };
    // Newest first; `after` names the last thing of the previous page.
    let mut newest_first: Vec<Value> = things.into_iter().rev().collect();
    if let Some(after) = params.get("after") {
        match newest_first
            .iter()
            .position(|t| t["data"]["name"] == json!(after))
        {
            Some(i) => newest_first.drain(..=i).for_each(drop),
            None => newest_first.clear(),
        }
    }
    let more = newest_first.len() > limit;
    newest_first.truncate(limit);
    let after = if more {
        newest_first.last().map(|t| t["data"]["name"].clone())
    } else {
        None
    };
    if api.revoke_each.load(Ordering::SeqCst) {
        api.tokens.lock().unwrap().clear();
    }
    let remaining = if left == u64::MAX {
        996.0
    } else {
        (left - 1) as f64
    };
    (
        [
            (
                "content-type",
                "application/json; charset=UTF-8".to_string(),
            ),
            ("x-ratelimit-used", "4".to_string()),
            ("x-ratelimit-remaining", format!("{remaining:.1}")),
            ("x-ratelimit-reset", reset.to_string()),
        ],
        json!({"kind": "Listing", "data": {"after": after, "dist": newest_first.len(),
            "modhash": "", "geo_filter": null, "children": newest_first, "before": null}})
        .to_string(),
    )
        .into_response()
}

async fn start(api: Arc<Api>) -> String {
    let app = axum::Router::new()
        .route("/api/v1/access_token", axum::routing::post(access_token))
        .route("/r/{subs}/{which}", axum::routing::get(listing))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn new_api() -> Arc<Api> {
    let api = Arc::new(Api::default());
    api.window_left.store(u64::MAX, Ordering::SeqCst);
    api.window_reset_s.store(400, Ordering::SeqCst);
    api
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Options against the stand-in at `base`, secrets in variables tagged `tag`.
fn options(base: &str, tag: &str, secret: &str) -> RedditOptions {
    let id_var = format!("EARSHOT_TEST_REDDIT_{tag}_ID");
    let secret_var = format!("EARSHOT_TEST_REDDIT_{tag}_SECRET");
    std::env::set_var(&id_var, CLIENT_ID);
    std::env::set_var(&secret_var, secret);
    let mut o: RedditOptions = toml::from_str(&format!(
        r#"subreddits = ["espresso", "coffee"]
           client_id_env = "{id_var}"
           client_secret_env = "{secret_var}"
           user_agent = "{AGENT}"
           api_url = "{base}"
           token_url = "{base}/api/v1/access_token"
           poll_interval = "20ms"
           [backoff]
           network_step = "10ms"
           network_cap = "50ms"
           http_base = "10ms"
           http_cap = "50ms"
           rate_limit_base = "10ms"
           rate_limit_cap = "50ms""#
    ))
    .expect("options");
    o.id = "reddit".into();
    o
}

fn names(frames: &[Vec<u8>]) -> Vec<String> {
    frames
        .iter()
        .map(|f| {
            let v: Value = serde_json::from_slice(f).expect("a frame is one JSON thing");
            v["data"]["name"].as_str().expect("a name").to_string()
        })
        .collect()
}

fn fullnames(kind: &str, from: u64, to: u64) -> Vec<String> {
    (from..to)
        .map(|n| format!("{kind}_{}", to_base36(1_000_000 + n)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_submissions_and_comments_are_handed_on_once_oldest_first_across_pages() {
    crate::tls::ensure_crypto_provider();
    let api = new_api();
    let base = start(api.clone()).await;
    // Before the source starts: not taken (no backfill).
    api.add("t3", 3, now_s() - 3600.0);
    api.add("t1", 2, now_s() - 3600.0);
    let (em, rx, stats) = emitter(64, 16);
    let (trigger, shutdown) = crate::shutdown::channel();
    let task = tokio::spawn(options(&base, "PAGES", CLIENT_SECRET).run(em, shutdown));
    wait_until("the first poll", || stats.connected.load(Ordering::Relaxed)).await;
    // 150 submissions between two polls: more than a page of 100.
    api.add("t3", 150, now_s());
    api.add("t1", 5, now_s());
    let (frames, _) = recv_frames(&rx, 155).await;
    let got = names(&frames);
    let mut want = fullnames("t3", 3, 153);
    want.extend(fullnames("t1", 2, 7));
    let (mut got_sorted, mut want_sorted) = (got.clone(), want.clone());
    got_sorted.sort();
    want_sorted.sort();
    assert_eq!(
        got_sorted, want_sorted,
        "every new thing once, none of the old"
    );
    let t3: Vec<&String> = got.iter().filter(|n| n.starts_with("t3_")).collect();
    assert!(
        t3.windows(2).all(|w| w[0] < w[1]),
        "submissions oldest first"
    );
    // Later things come in a later poll; nothing is repeated.
    api.add("t3", 2, now_s());
    let (frames, _) = recv_frames(&rx, 2).await;
    assert_eq!(names(&frames), fullnames("t3", 153, 155));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rx.try_recv().is_err(), "nothing handed on twice");
    assert_eq!(
        stats.reconnects.load(Ordering::Relaxed),
        0,
        "no failed poll"
    );
    assert_eq!(
        api.token_requests.load(Ordering::SeqCst),
        1,
        "one token, reused"
    );
    trigger.trigger();
    task.await.unwrap().expect("stops cleanly");
    assert_eq!(*api.violations.lock().unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_rate_limit_window_is_waited_out_not_overrun() {
    crate::tls::ensure_crypto_provider();
    let api = new_api();
    let base = start(api.clone()).await;
    api.window_left.store(3, Ordering::SeqCst);
    api.window_reset_s.store(1, Ordering::SeqCst);
    let (em, rx, stats) = emitter(64, 16);
    let (trigger, shutdown) = crate::shutdown::channel();
    let task = tokio::spawn(options(&base, "RATE", CLIENT_SECRET).run(em, shutdown));
    wait_until("the window used up", || {
        api.window_left.load(Ordering::SeqCst) == 0
    })
    .await;
    // The window opens again; what came meanwhile is taken then.
    api.add("t1", 4, now_s());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        rx.try_recv().is_err(),
        "no request while the window is empty"
    );
    api.window_left.store(u64::MAX, Ordering::SeqCst);
    let (frames, _) = recv_frames(&rx, 4).await;
    assert_eq!(names(&frames), fullnames("t1", 0, 4));
    assert_eq!(
        api.served_429.load(Ordering::SeqCst),
        0,
        "never past the window"
    );
    assert_eq!(stats.reconnects.load(Ordering::Relaxed), 0);
    trigger.trigger();
    task.await.unwrap().expect("stops cleanly");
    assert_eq!(*api.violations.lock().unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_renewed_and_the_request_asked_again() {
    crate::tls::ensure_crypto_provider();
    let api = new_api();
    let base = start(api.clone()).await;
    api.revoke_each.store(true, Ordering::SeqCst);
    let (em, rx, stats) = emitter(64, 16);
    let (trigger, shutdown) = crate::shutdown::channel();
    let task = tokio::spawn(options(&base, "RENEW", CLIENT_SECRET).run(em, shutdown));
    wait_until("the first poll", || stats.connected.load(Ordering::Relaxed)).await;
    for round in 0..3u64 {
        api.add("t3", 2, now_s());
        let (frames, _) = recv_frames(&rx, 2).await;
        assert_eq!(names(&frames), fullnames("t3", 2 * round, 2 * round + 2));
    }
    assert!(api.token_requests.load(Ordering::SeqCst) >= 4, "renewed");
    assert_eq!(
        stats.reconnects.load(Ordering::Relaxed),
        0,
        "a renewal is not a failure"
    );
    trigger.trigger();
    task.await.unwrap().expect("stops cleanly");
    assert_eq!(*api.violations.lock().unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_and_a_private_subreddit_back_off_and_keep_trying() {
    crate::tls::ensure_crypto_provider();
    let api = new_api();
    let base = start(api.clone()).await;
    let (em, rx, stats) = emitter(64, 16);
    let (trigger, shutdown) = crate::shutdown::channel();
    let task = tokio::spawn(options(&base, "REFUSED", "not-the-secret").run(em, shutdown));
    wait_until("tries with backoff", || {
        stats.reconnects.load(Ordering::Relaxed) >= 3
    })
    .await;
    assert_eq!(
        api.listing_requests.load(Ordering::SeqCst),
        0,
        "no listing without a token"
    );
    assert!(!stats.connected.load(Ordering::Relaxed));
    assert!(!task.is_finished(), "the source keeps trying");
    trigger.trigger();
    task.await.unwrap().expect("stops cleanly");
    assert!(rx.try_recv().is_err());

    api.private.store(true, Ordering::SeqCst);
    let (em, _rx, stats) = emitter(64, 16);
    let (trigger, shutdown) = crate::shutdown::channel();
    let task = tokio::spawn(options(&base, "PRIVATE", CLIENT_SECRET).run(em, shutdown));
    wait_until("tries with backoff", || {
        stats.reconnects.load(Ordering::Relaxed) >= 2
    })
    .await;
    api.private.store(false, Ordering::SeqCst);
    wait_until("polling once the subreddit opens", || {
        stats.connected.load(Ordering::Relaxed)
    })
    .await;
    trigger.trigger();
    task.await.unwrap().expect("stops cleanly");
    assert_eq!(*api.violations.lock().unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_the_checkpoint_and_a_fresh_start_takes_its_backfill() {
    crate::tls::ensure_crypto_provider();
    let api = new_api();
    let base = start(api.clone()).await;
    let t0 = now_s() - 600.0;
    api.add("t3", 2, t0);
    api.add("t3", 3, t0 + 120.0);
    api.add("t1", 1, t0 + 400.0);
    // Resume from a checkpoint at t0 + 120 s (overlap 0): the last three submissions and the
    // comment; their frames carry a cursor.
    let mut o = options(&base, "RESUME", CLIENT_SECRET);
    o.resume_overlap = Duration::ZERO;
    o.since_us = Some(((t0 + 120.0) * 1e6) as u64);
    let (em, rx, _stats) = emitter(64, 16);
    let (trigger, shutdown) = crate::shutdown::channel();
    let task = tokio::spawn(o.run(em, shutdown));
    let (frames, _) = recv_frames(&rx, 4).await;
    let mut want = fullnames("t3", 2, 5);
    want.extend(fullnames("t1", 0, 1));
    assert_eq!(names(&frames), want);
    trigger.trigger();
    task.await.unwrap().expect("stops cleanly");

    // A fresh start with a backfill of 5 minutes: only the comment is that young.
    let mut o = options(&base, "BACKFILL", CLIENT_SECRET);
    o.backfill = Duration::from_secs(300);
    let (em, rx, _stats) = emitter(64, 1);
    let (trigger, shutdown) = crate::shutdown::channel();
    let task = tokio::spawn(o.run(em, shutdown));
    let batch = tokio::task::block_in_place(|| rx.recv_timeout(TEST_TIMEOUT)).expect("a batch");
    assert_eq!(
        names(&crate::source::testutil::frames_of(&batch)),
        fullnames("t1", 0, 1)
    );
    match batch.position {
        Some(Position::Cursor(us)) => assert!(us >= ((t0 + 400.0) * 1e6) as u64, "{us}"),
        other => panic!("a time cursor, got {other:?}"),
    }
    trigger.trigger();
    task.await.unwrap().expect("stops cleanly");
}

#[tokio::test]
async fn bad_options_and_missing_secrets_stop_the_source_before_any_request() {
    let mut o = options("http://127.0.0.1:9", "OPTS", CLIENT_SECRET);
    o.subreddits = vec!["r/espresso".into()];
    let (em, _rx, _stats) = emitter(4, 4);
    let (_trigger, shutdown) = crate::shutdown::channel();
    let e = o.run(em, shutdown).await.expect_err("refused");
    assert!(e.to_string().contains("r/espresso"), "{e}");

    let mut o = options("http://127.0.0.1:9", "UNSET", CLIENT_SECRET);
    o.client_secret_env = "EARSHOT_TEST_REDDIT_NEVER_SET".into();
    let (em, _rx, _stats) = emitter(4, 4);
    let (_trigger, shutdown) = crate::shutdown::channel();
    let e = o.run(em, shutdown).await.expect_err("refused");
    assert_eq!(e.reason(), "credentials");
    assert!(
        e.to_string().contains("EARSHOT_TEST_REDDIT_NEVER_SET"),
        "{e}"
    );
}

#[test]
fn problems_name_each_bad_option() {
    let mut o = options("https://oauth.reddit.com", "PROBLEMS", CLIENT_SECRET);
    o.subreddits = (0..101).map(|i| format!("sub{i}")).collect();
    o.listings.clear();
    o.max_pages = 11;
    let p = o.problems().join("\n");
    for needle in ["at most 100", "listings", "max_pages"] {
        assert!(p.contains(needle), "{needle} in {p}");
    }
    o.subreddits = vec![
        "_x".into(),
        "a".into(),
        "way_too_long_for_reddit_names".into(),
    ];
    assert_eq!(
        o.problems()
            .iter()
            .filter(|p| p.contains("is not a subreddit"))
            .count(),
        3
    );
}

#[test]
fn heads_read_fullnames_in_base_36_and_reject_other_things() {
    let raw = |s: &str| RawValue::from_string(s.to_string()).unwrap();
    let h = Head::read(&raw(
        r#"{"kind":"t3","data":{"name":"t3_5jo144","created_utc":1482373052.0}}"#,
    ))
    .expect("a submission");
    assert_eq!(h.number, u64::from_str_radix("5jo144", 36).unwrap());
    assert_eq!(h.created_us, 1_482_373_052_000_000);
    for bad in [
        r#"{"kind":"more","data":{"name":"t1_abc","created_utc":1.0}}"#,
        r#"{"kind":"t1","data":{"name":"t3_abc","created_utc":1.0}}"#,
        r#"{"kind":"t1","data":{"name":"t1_a-c","created_utc":1.0}}"#,
        r#"{"kind":"t1","data":{"name":"t1_abc"}}"#,
    ] {
        assert!(Head::read(&raw(bad)).is_none(), "{bad}");
    }
}

#[test]
fn error_reasons_keep_reddits_words_and_nothing_else() {
    assert_eq!(
        error_reason(
            403,
            br#"{"reason": "private", "message": "Forbidden", "error": 403}"#
        ),
        "HTTP 403 (private) (Forbidden)"
    );
    assert_eq!(
        error_reason(404, b"{\"reason\": \"banned\\n\\u001b[31mx\"}"),
        "HTTP 404 (banned31mx)"
    );
    assert_eq!(error_reason(502, b"<html>"), "HTTP 502");
}

/// A 429 although the window said there was room: the poll fails, backs off at least the
/// `Retry-After`, and the things come on the next poll, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_backs_off_and_loses_nothing() {
    crate::tls::ensure_crypto_provider();
    let api = new_api();
    let base = start(api.clone()).await;
    let (em, rx, stats) = emitter(64, 16);
    let (trigger, shutdown) = crate::shutdown::channel();
    let task = tokio::spawn(options(&base, "THROTTLED", CLIENT_SECRET).run(em, shutdown));
    wait_until("the first poll", || stats.connected.load(Ordering::Relaxed)).await;
    api.add("t3", 3, now_s());
    api.throttle.store(1, Ordering::SeqCst);
    let (frames, _) = recv_frames(&rx, 3).await;
    assert_eq!(names(&frames), fullnames("t3", 0, 3));
    assert_eq!(api.served_429.load(Ordering::SeqCst), 1);
    assert_eq!(
        stats.reconnects.load(Ordering::Relaxed),
        1,
        "one failed poll"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rx.try_recv().is_err(), "nothing twice");
    trigger.trigger();
    task.await.unwrap().expect("stops cleanly");
    assert_eq!(*api.violations.lock().unwrap(), Vec::<String>::new());
}
