//! Admin HTTP server: `/metrics` (Prometheus text), `/healthz` (the process is up),
//! `/readyz` (rules are loaded, workers run and every network source is connected),
//! `POST /rules/reload` (load the rule files again; JSON answer), and the dead-letter store:
//! `GET /dlq`, `POST /dlq/replay`, `POST /dlq/purge` (what `earshot dlq` uses while earshot
//! runs; `GET /dlq?queue=…&id=…`, and for the POSTs a JSON body `{"queue": …, "ids": […]}`,
//! plus `"all": true` for a purge of everything).
//!
//! The live dashboard for responders: `GET /live` (the page; `/` redirects there), its
//! assets `GET /live/app.js` and `GET /live/app.css`, embedded in the binary so the page
//! works without network access beyond this server, and `GET /live/events`, a Server-Sent
//! Events stream fed by [`LiveHub`]: the latest `snapshot` on connect, then every snapshot,
//! `mention` and `spike`. Every page response carries a Content-Security-Policy that allows
//! only this origin: the page shows post texts written by strangers.
//!
//! Bound to 127.0.0.1 by default: metrics reveal brand names and volumes. Mutating endpoints
//! also need `Authorization: Bearer <token>`, the token coming from an environment variable
//! (`admin.token_env`); without one configured they are refused outright. The router is built
//! by a function so tests call it without a socket.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use tracing::info;

use crate::live::LiveHub;
use crate::metrics::Latencies;
use crate::reload::{token_matches, Reloader, Trigger};
use crate::shutdown::Shutdown;

/// What the admin endpoints read.
#[derive(Clone)]
pub struct AdminState {
    /// Stage and mention latencies, published as gauges at scrape time.
    pub latencies: Latencies,
    /// Set once workers run.
    pub workers_running: Arc<AtomicBool>,
    /// The pipeline's parts: one that panicked or reports a failure makes it not ready.
    pub health: Arc<crate::health::Health>,
    /// One flag per network source: connected now.
    pub sources_connected: Vec<(String, Arc<AtomicBool>)>,
    /// Rule reloads; `None` where the pipeline does not reload (then the endpoint is 404).
    pub reload: Option<ReloadAccess>,
    /// The bearer token of mutating endpoints; `None` refuses every call.
    pub token: Option<String>,
    /// The environment variable the token comes from, for the refusal message.
    pub token_env: String,
    /// The outbox and the running queues; `None` where nothing is delivered (404).
    pub dlq: Option<DlqAccess>,
    /// The live dashboard's hub; `None` where nothing feeds it (then `/live` is 404).
    pub live: Option<Arc<LiveHub>>,
}

/// What the dead-letter endpoints need.
#[derive(Clone)]
pub struct DlqAccess {
    /// The outbox.
    pub store: Arc<crate::outbox::store::Store>,
    /// The running queues.
    pub queues: Vec<Arc<crate::sink::dispatch::QueueShared>>,
}

/// What `POST /rules/reload` needs.
#[derive(Clone)]
pub struct ReloadAccess {
    /// Does the reload.
    pub reloader: Arc<Reloader>,
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/rules/reload", post(reload_rules))
        .route("/dlq", get(dlq_list))
        .route("/dlq/replay", post(dlq_replay))
        .route("/dlq/purge", post(dlq_purge))
        .route("/", get(root))
        .route("/live", get(live_page))
        .route("/live/app.js", get(live_js))
        .route("/live/app.css", get(live_css))
        .route("/live/events", get(live_events))
        .with_state(state)
}

/// The page and its assets, compiled into the binary: no build step, no CDN.
const LIVE_HTML: &str = include_str!("../assets/live/index.html");
const LIVE_JS: &str = include_str!("../assets/live/app.js");
const LIVE_CSS: &str = include_str!("../assets/live/app.css");

/// Only this origin, for everything: scripts, styles, the event stream. No inline script or
/// style, so text from a post that slipped into the markup could not run.
const LIVE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// How often an idle event stream sends a comment, so proxies and browsers keep it open
/// and a dead connection is noticed.
const LIVE_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

fn no_live() -> Response {
    (StatusCode::NOT_FOUND, "no live dashboard in this process\n").into_response()
}

/// `GET /`: the dashboard, where there is one.
async fn root(State(state): State<AdminState>) -> Response {
    if state.live.is_none() {
        return no_live();
    }
    Redirect::to("/live").into_response()
}

/// A page asset with its content type and the page's security headers.
fn live_asset(state: &AdminState, content_type: &'static str, body: &'static str) -> Response {
    if state.live.is_none() {
        return no_live();
    }
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, LIVE_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // Links to posts open other sites: they need not learn this server's address.
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn live_page(State(state): State<AdminState>) -> Response {
    live_asset(&state, "text/html; charset=utf-8", LIVE_HTML)
}

async fn live_js(State(state): State<AdminState>) -> Response {
    live_asset(&state, "text/javascript; charset=utf-8", LIVE_JS)
}

async fn live_css(State(state): State<AdminState>) -> Response {
    live_asset(&state, "text/css; charset=utf-8", LIVE_CSS)
}

/// `GET /live/events`: the hub's messages as named Server-Sent Events. Ends when the hub is
/// closed (on shutdown, see [`serve`]) or dropped; the browser's `EventSource` reconnects
/// on its own while the server is up.
async fn live_events(State(state): State<AdminState>) -> Response {
    let Some(hub) = &state.live else {
        return no_live();
    };
    let viewer = hub.subscribe();
    let stream = futures_util::stream::unfold(viewer, |mut viewer| async move {
        let message = viewer.next().await?;
        let event = Event::default().event(message.event).data(&*message.data);
        Some((Ok::<_, std::convert::Infallible>(event), viewer))
    });
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(LIVE_KEEP_ALIVE))
        .into_response();
    // Reverse proxies (nginx) buffer responses unless told not to; events would arrive late.
    response.headers_mut().insert(
        http::HeaderName::from_static("x-accel-buffering"),
        http::HeaderValue::from_static("no"),
    );
    response
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    state.latencies.publish();
    let body = crate::metrics::prometheus().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    let mut not_ready = Vec::new();
    if !state.workers_running.load(Ordering::Relaxed) {
        not_ready.push("workers are not running".to_string());
    }
    for (id, connected) in &state.sources_connected {
        if !connected.load(Ordering::Relaxed) {
            not_ready.push(format!("source `{id}` is not connected"));
        }
    }
    not_ready.extend(state.health.problems());
    if let Some(d) = &state.dlq {
        if !d.store.writable() {
            not_ready.push(format!(
                "the outbox {} cannot write (disk full or an I/O error); it is opened again until it can",
                d.store.path().display()
            ));
        }
    }
    for q in state.dlq.iter().flat_map(|d| &d.queues) {
        if q.disabled.load(Ordering::Relaxed) {
            not_ready.push(format!(
                "queue `{}` is disabled (its endpoint failed past disable_after)",
                q.id
            ));
        }
    }
    if not_ready.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, not_ready.join("\n") + "\n")
    }
}

async fn reload_rules(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    let Some(access) = &state.reload else {
        return (StatusCode::NOT_FOUND, "rule reload is not available\n").into_response();
    };
    if let Err(refused) = authorized(&state, &headers, "POST /rules/reload") {
        return *refused;
    }
    let (status, body) = match access.reloader.reload(Trigger::Admin).await {
        Ok(reloaded) => (StatusCode::OK, serde_json::to_string(&reloaded)),
        Err(failed) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            serde_json::to_string(&failed),
        ),
    };
    let body = body.unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body + "\n",
    )
        .into_response()
}

/// Refuses a mutating call without the configured bearer token (or when none is configured).
fn authorized(state: &AdminState, headers: &HeaderMap, what: &str) -> Result<(), Box<Response>> {
    let Some(expected) = state.token.as_deref() else {
        let message = format!(
            "{what} is disabled: set a token in the environment variable {}\n",
            state.token_env
        );
        return Err(Box::new((StatusCode::FORBIDDEN, message).into_response()));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !presented.is_some_and(|t| token_matches(t, expected)) {
        return Err(Box::new(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a valid bearer token is required\n",
            )
                .into_response(),
        ));
    }
    Ok(())
}

fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body + "\n",
    )
        .into_response()
}

fn no_dlq() -> Response {
    (
        StatusCode::NOT_FOUND,
        "this process delivers nothing: no dead-letter store\n",
    )
        .into_response()
}

/// `GET /dlq?queue=…`: the dead letters, as JSON. Read-only, so no token (the server is on
/// loopback; dead letters hold what the metrics already reveal, and post texts).
async fn dlq_list(
    State(state): State<AdminState>,
    axum::extract::Query(filter): axum::extract::Query<ListQuery>,
) -> Response {
    let Some(dlq) = &state.dlq else {
        return no_dlq();
    };
    let filter = crate::dlq::Filter {
        queue: filter.queue,
        ids: filter.id.into_iter().collect(),
        all: false,
    };
    match crate::dlq::list(&dlq.store, &filter) {
        Ok(letters) => json_response(StatusCode::OK, &letters),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// Query of `GET /dlq`.
#[derive(serde::Deserialize)]
struct ListQuery {
    queue: Option<String>,
    id: Option<String>,
}

/// Answer of the mutating dead-letter endpoints.
#[derive(serde::Serialize)]
struct Changed {
    replayed: Option<usize>,
    purged: Option<usize>,
}

async fn dlq_replay(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    dlq_change(state, headers, body, true).await
}

async fn dlq_purge(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    dlq_change(state, headers, body, false).await
}

async fn dlq_change(
    state: AdminState,
    headers: HeaderMap,
    body: axum::body::Bytes,
    replay: bool,
) -> Response {
    let what = if replay {
        "POST /dlq/replay"
    } else {
        "POST /dlq/purge"
    };
    if let Err(refused) = authorized(&state, &headers, what) {
        return *refused;
    }
    let Some(dlq) = &state.dlq else {
        return no_dlq();
    };
    let filter: crate::dlq::Filter = if body.is_empty() {
        crate::dlq::Filter::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(f) => f,
            Err(e) => return (StatusCode::BAD_REQUEST, format!("body: {e}\n")).into_response(),
        }
    };
    let result = if replay {
        crate::dlq::replay(&dlq.store, &filter, &dlq.queues)
            .map(|n| Changed {
                replayed: Some(n),
                purged: None,
            })
            .map_err(crate::dlq::PurgeError::Store)
    } else {
        crate::dlq::purge(&dlq.store, &filter, &dlq.queues).map(|n| Changed {
            replayed: None,
            purged: Some(n),
        })
    };
    match result {
        Ok(changed) => {
            info!(what, queue = ?filter.queue, ids = filter.ids.len(), "dead letters changed");
            json_response(StatusCode::OK, &changed)
        }
        Err(e @ crate::dlq::PurgeError::Unfiltered) => {
            (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// Binds `addr` and serves the admin routes until shutdown. Returns the bound address
/// (useful with port 0) and the serving task.
///
/// Graceful shutdown waits for every open response to finish, and a dashboard's event
/// stream never finishes on its own: on shutdown the live hub is closed first, which ends
/// every stream, so a browser left open does not keep the process alive.
pub async fn serve(
    addr: SocketAddr,
    state: AdminState,
    mut shutdown: Shutdown,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    info!(addr = %local, "admin server listening");
    let live = state.live.clone();
    let app = router(state);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.recv().await;
                if let Some(live) = live {
                    live.close();
                }
            })
            .await;
    });
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn state(workers: bool, connected: bool) -> AdminState {
        AdminState {
            latencies: Latencies::new(),
            workers_running: Arc::new(AtomicBool::new(workers)),
            health: crate::health::Health::new(),
            sources_connected: vec![("bluesky".into(), Arc::new(AtomicBool::new(connected)))],
            reload: None,
            token: None,
            token_env: "EARSHOT_ADMIN_TOKEN".into(),
            dlq: None,
            live: None,
        }
    }

    #[tokio::test]
    async fn dead_letters_are_listed_and_replayed_or_purged_with_the_token() {
        use crate::outbox::entry::{Entry, Event};
        use crate::outbox::store::{Commit, Store, Table};
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("o.redb")).unwrap());
        let data = |id: &str| {
            serde_json::value::RawValue::from_string(format!(r#"{{"mention_id":"{id}"}}"#)).unwrap()
        };
        let (keys, _) = store
            .commit(&Commit {
                entries: ["m_a", "m_b"]
                    .map(|id| {
                        (
                            "support",
                            Entry::new(id.into(), Event::MentionCreated, data(id), 1),
                        )
                    })
                    .into(),
                ..Commit::default()
            })
            .unwrap();
        let (stored, _) = store.read(Table::Outbox, "support", 0, 10).unwrap();
        let items: Vec<_> = keys
            .iter()
            .zip(&stored)
            .map(|(k, s)| (*k, Some(&s.entry)))
            .collect();
        store.bury("support", &items).unwrap();
        let queue = crate::sink::dispatch::QueueShared::new("support", &store);
        let app = |token: Option<&str>| {
            let mut s = state(true, true);
            s.token = token.map(str::to_owned);
            s.dlq = Some(DlqAccess {
                store: store.clone(),
                queues: vec![queue.clone()],
            });
            router(s)
        };
        let (status, body) = get_status(app(None), "/dlq?queue=support").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let listed: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0]["id"], "m_a");
        assert_eq!(listed[0]["data"]["mention_id"], "m_a");
        let post = |app: Router, path: &str, token: Option<&str>, body: &str| {
            let mut r = Request::post(path);
            if let Some(t) = token {
                r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            respond(app, r.body(Body::from(body.to_string())).unwrap())
        };
        assert_eq!(
            post(app(None), "/dlq/replay", Some("t"), "").await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            post(app(Some("t")), "/dlq/replay", Some("x"), "").await.0,
            StatusCode::UNAUTHORIZED
        );
        let (status, body) = post(
            app(Some("t")),
            "/dlq/replay",
            Some("t"),
            r#"{"ids":["m_b"]}"#,
        )
        .await;
        assert_eq!(
            (status, body.trim()),
            (StatusCode::OK, r#"{"replayed":1,"purged":null}"#)
        );
        assert_eq!(store.count(Table::Outbox, "support").unwrap(), 1);
        assert_eq!(queue.depth.load(Ordering::Relaxed), 1);
        let (status, body) = post(
            app(Some("t")),
            "/dlq/purge",
            Some("t"),
            r#"{"queue":"support"}"#,
        )
        .await;
        assert_eq!(
            (status, body.trim()),
            (StatusCode::OK, r#"{"replayed":null,"purged":1}"#)
        );
        assert_eq!(store.count(Table::Dead, "support").unwrap(), 0);
        let (status, _) = post(app(Some("t")), "/dlq/purge", Some("t"), "{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    async fn respond(app: Router, request: Request<Body>) -> (StatusCode, String) {
        let resp = app.oneshot(request).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn get_status(app: Router, path: &str) -> (StatusCode, String) {
        respond(app, Request::get(path).body(Body::empty()).unwrap()).await
    }

    #[tokio::test]
    async fn health_and_readiness() {
        assert_eq!(
            get_status(router(state(false, false)), "/healthz").await.0,
            StatusCode::OK
        );
        let (status, body) = get_status(router(state(true, false)), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("source `bluesky` is not connected"), "{body}");
        assert_eq!(
            get_status(router(state(true, true)), "/readyz").await.0,
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn readiness_names_a_panicked_part_and_an_outbox_that_cannot_write() {
        use std::sync::atomic::AtomicBool;
        // A worker that panicked.
        let s = state(true, true);
        let worker = s
            .health
            .register(crate::health::Component::Worker, "worker 1");
        let _ = std::thread::spawn(move || {
            let _held = worker;
            panic!("injected");
        })
        .join();
        let (status, body) = get_status(router(s), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("worker 1: panicked"), "{body}");
        // An outbox on a full disk.
        let dir = tempfile::tempdir().unwrap();
        let full = Arc::new(AtomicBool::new(false));
        let store = Arc::new(
            crate::outbox::store::Store::open_with(
                &dir.path().join("outbox.redb"),
                crate::fault::FaultyDisk::opener(full.clone()),
            )
            .unwrap(),
        );
        let mut s = state(true, true);
        s.dlq = Some(DlqAccess {
            store: store.clone(),
            queues: Vec::new(),
        });
        assert_eq!(
            get_status(router(s.clone()), "/readyz").await.0,
            StatusCode::OK
        );
        full.store(true, Ordering::Relaxed);
        let commit = crate::outbox::store::Commit {
            positions: vec![("src", crate::source::batch::Position::Offset(1))],
            ..Default::default()
        };
        assert!(store.commit(&commit).is_err());
        let (status, body) = get_status(router(s.clone()), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("cannot write"), "{body}");
        // Room again: the next write reopens the store, and readiness comes back.
        full.store(false, Ordering::Relaxed);
        std::thread::sleep(crate::outbox::store::REOPEN_EVERY);
        store.commit(&commit).unwrap();
        assert_eq!(get_status(router(s), "/readyz").await.0, StatusCode::OK);
    }

    async fn post_reload(app: Router, token: Option<&str>) -> (StatusCode, String) {
        let mut request = Request::post("/rules/reload");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        respond(app, request.body(Body::empty()).unwrap()).await
    }

    #[tokio::test]
    async fn rule_reload_needs_a_configured_token() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("acme.rules"),
            "brand acme \"Acme\"\n  rule acme: acme\n",
        )
        .unwrap();
        let text = format!("[rules]\npaths = [\"{}\"]\n", dir.path().display());
        let config =
            crate::config::Config::parse("t.toml", &text, std::path::Path::new(".")).unwrap();
        let compiled = crate::app::compile(&config).unwrap();
        let reloader = Reloader::new(config, crate::reload::Shared::new(Arc::new(compiled)));
        let with_token = |token: Option<&str>| {
            let mut s = state(true, true);
            s.reload = Some(ReloadAccess {
                reloader: reloader.clone(),
            });
            s.token = token.map(str::to_owned);
            router(s)
        };

        let (status, body) = post_reload(router(state(true, true)), Some("t")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, body) = post_reload(with_token(None), Some("t")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains("EARSHOT_ADMIN_TOKEN"), "{body}");
        let (status, _) = post_reload(with_token(Some("t")), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = post_reload(with_token(Some("t")), Some("t")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("\"generation\":2"), "{body}");
        let (status, _) = get_status(with_token(Some("t")), "/rules/reload").await;
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "reload is POST only"
        );
    }

    fn with_live(hub: &Arc<LiveHub>) -> AdminState {
        let mut s = state(true, true);
        s.live = Some(hub.clone());
        s
    }

    #[tokio::test]
    async fn live_page_and_assets_are_served_with_their_types_and_a_same_origin_policy() {
        let hub = LiveHub::new();
        for (path, content_type, contains) in [
            ("/live", "text/html", "<script src=\"/live/app.js\""),
            (
                "/live/app.js",
                "text/javascript",
                "new EventSource('/live/events')",
            ),
            ("/live/app.css", "text/css", "--red"),
        ] {
            let resp = router(with_live(&hub))
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            let headers = resp.headers().clone();
            let header = |name: header::HeaderName| {
                headers
                    .get(&name)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default()
            };
            assert!(
                header(header::CONTENT_TYPE).starts_with(content_type),
                "{path}: {headers:?}"
            );
            let csp = header(header::CONTENT_SECURITY_POLICY);
            assert!(csp.starts_with("default-src 'self';"), "{path}: {csp}");
            assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
            assert!(!csp.contains("http"), "no other origin: {csp}");
            assert_eq!(header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            let body = String::from_utf8(body.to_vec()).unwrap();
            assert!(body.contains(contains), "{path}");
        }
        let html = LIVE_HTML.to_ascii_lowercase();
        assert!(
            !html.contains("<script>") && !html.contains("style="),
            "the page has no inline script or style (the policy would block it)"
        );
        assert!(
            !LIVE_JS.contains("innerHTML"),
            "post texts reach the page as text, never as markup"
        );
        let resp = router(with_live(&hub))
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert!(resp.status().is_redirection(), "{}", resp.status());
        assert_eq!(resp.headers()[header::LOCATION], "/live");
    }

    #[tokio::test]
    async fn live_is_not_found_without_a_hub() {
        for path in [
            "/",
            "/live",
            "/live/app.js",
            "/live/app.css",
            "/live/events",
        ] {
            let (status, body) = get_status(router(state(true, true)), path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        }
    }

    /// Reads a Server-Sent Events body until `n` events have arrived (bounded wait).
    async fn read_events(
        body: &mut axum::body::BodyDataStream,
        buffer: &mut String,
        n: usize,
    ) -> Vec<(String, serde_json::Value)> {
        use futures_util::StreamExt;
        let mut events = Vec::new();
        while events.len() < n {
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !name.is_empty() {
                    events.push((name, serde_json::from_str(&data).unwrap()));
                }
            }
            if events.len() >= n {
                break;
            }
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), body.next())
                .await
                .unwrap_or_else(|_| panic!("no event within 5 s; got {events:?} and {buffer:?}"))
                .expect("the stream ended early")
                .unwrap();
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        events
    }

    #[tokio::test]
    async fn live_events_stream_the_snapshot_first_then_what_is_published() {
        use crate::live::LiveKind;
        let hub = LiveHub::new();
        hub.set_snapshot(r#"{"at":1,"queues":["support"],"brands":[],"spikes":[]}"#.into());
        let resp = router(with_live(&hub))
            .oneshot(Request::get("/live/events").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-cache");
        let mut body = resp.into_body().into_data_stream();
        let mut buffer = String::new();
        let first = read_events(&mut body, &mut buffer, 1).await;
        assert_eq!(first[0].0, "snapshot");
        assert_eq!(first[0].1["queues"][0], "support");
        assert_eq!(hub.viewers(), 1);

        hub.publish(
            LiveKind::Mention,
            r#"{"id":"m_1","brands":["acme"],"queues":["support"],"text":"line\nbreak"}"#.into(),
        );
        hub.publish(
            LiveKind::Spike,
            r#"{"spike_id":"spk_acme_negative_1","event":"started","brand":"acme"}"#.into(),
        );
        hub.set_snapshot(r#"{"at":2}"#.into());
        let mut next = read_events(&mut body, &mut buffer, 3).await;
        // Published events keep their order; a new snapshot may come between them.
        let at = next.iter().position(|(n, _)| n == "snapshot").unwrap();
        assert_eq!(
            next.remove(at),
            ("snapshot".to_owned(), serde_json::json!({"at": 2}))
        );
        let names: Vec<&str> = next.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["mention", "spike"], "{next:?}");
        assert_eq!(next[0].1["text"], "line\nbreak");
        assert_eq!(next[1].1["spike_id"], "spk_acme_negative_1");
        drop(body);
        assert_eq!(hub.viewers(), 0, "a closed stream is no longer a viewer");
    }

    /// A browser left open on the dashboard holds an event stream that never ends by itself;
    /// graceful shutdown waits for open responses, so it must end them.
    #[tokio::test]
    async fn an_open_dashboard_does_not_hold_up_graceful_shutdown() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let hub = LiveHub::new();
        hub.set_snapshot(r#"{"at":1}"#.into());
        let (trigger, shutdown) = crate::shutdown::channel();
        let (addr, task) = serve("127.0.0.1:0".parse().unwrap(), with_live(&hub), shutdown)
            .await
            .unwrap();
        let mut browser = tokio::net::TcpStream::connect(addr).await.unwrap();
        browser
            .write_all(b"GET /live/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        let read_until = std::time::Duration::from_secs(5);
        while !String::from_utf8_lossy(&seen).contains("event: snapshot") {
            let n = tokio::time::timeout(read_until, browser.read(&mut chunk))
                .await
                .expect("no snapshot within 5 s")
                .unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&chunk[..n]);
        }
        trigger.trigger();
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("the admin server was still waiting for the event stream 5 s after shutdown")
            .unwrap();
        let rest = tokio::time::timeout(read_until, async {
            let mut rest = Vec::new();
            browser.read_to_end(&mut rest).await.map(|_| rest)
        })
        .await
        .expect("the connection stayed open")
        .unwrap();
        assert!(
            String::from_utf8_lossy(&rest).ends_with("0\r\n\r\n"),
            "the stream ended cleanly (last chunk): {}",
            String::from_utf8_lossy(&rest)
        );
        assert_eq!(hub.viewers(), 0);
    }

    #[tokio::test]
    async fn metrics_render_prometheus_text() {
        let _ = crate::metrics::prometheus();
        metrics::counter!(crate::metrics::WORKER_FRAMES_PROCESSED).increment(1);
        let (status, body) = get_status(router(state(true, true)), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("earshot_worker_frames_processed_total"),
            "{body}"
        );
        assert!(
            body.contains("earshot_stage_duration_seconds{stage=\"decode\",quantile=\"0.99\"}"),
            "{body}"
        );
    }
}
