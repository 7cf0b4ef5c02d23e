//! Admin HTTP server: `/metrics` (Prometheus text), `/healthz` (the process is up),
//! `/readyz` (rules are loaded, workers run and every network source is connected),
//! `POST /rules/reload` (load the rule files again; JSON answer), and the dead-letter store:
//! `GET /dlq`, `POST /dlq/replay`, `POST /dlq/purge` (what `earshot dlq` uses while earshot
//! runs; `GET /dlq?queue=…&id=…&limit=…&after=…` answers one page at a time, and the POSTs
//! take a JSON body `{"queue": …, "ids": […]}`, plus `"all": true` for a purge of
//! everything). A cluster node keeps no dead letters: there they answer 409, naming the
//! cluster's stream and `earshot dlq --config`.
//!
//! The live dashboard for responders: `GET /live` (the page; `/` redirects there), its
//! assets `GET /live/app.js` and `GET /live/app.css`, embedded in the binary so the page
//! works without network access beyond this server, and `GET /live/events`, a Server-Sent
//! Events stream fed by [`LiveHub`]: the latest `snapshot` on connect, then every snapshot,
//! `mention` and `spike`. Every page response carries a Content-Security-Policy that allows
//! only this origin: the page shows post texts written by strangers.
//!
//! Everything but `/healthz` answers only requests for an allowed `Host` and only callers
//! with the bearer token, or (for reading) a dashboard session from a login link: metrics
//! reveal brands and volumes, dead letters hold customer records. See [`access`]. The
//! connections themselves are bounded and timed out ([`listener`]), with optional TLS.
//! The router is built by a function so tests call it without a socket.

pub mod access;
pub mod listener;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use tracing::info;

pub use crate::config::{AdminSettings, AdminTls};
use crate::live::LiveHub;
use crate::metrics::Latencies;
use crate::metrics::Trigger;
use crate::reload::Reloader;
use crate::shutdown::Shutdown;
pub use access::Access;

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
    /// Who may call: the Host allow-list, the bearer token, login codes and sessions.
    pub access: Arc<Access>,
    /// How many dashboards may follow `/live/events` at once.
    pub live_limit: LiveLimit,
    /// The outbox and the running queues; `None` where nothing is delivered (404).
    pub dlq: Option<DlqAccess>,
    /// This process is a cluster node: its dead letters are in the cluster's stream (409).
    pub cluster: bool,
    /// The live dashboard's hub; `None` where nothing feeds it (then `/live` is 404).
    pub live: Option<Arc<LiveHub>>,
}

/// The limit on dashboard event streams.
#[derive(Clone)]
pub struct LiveLimit {
    viewers: Arc<tokio::sync::Semaphore>,
    keep_alive: Duration,
}

impl LiveLimit {
    /// `admin.max_live_viewers` streams at once, each sending a keep-alive comment well
    /// within `admin.idle_timeout` (so a quiet stream is not taken for an idle connection).
    pub fn of(settings: &AdminSettings) -> LiveLimit {
        LiveLimit {
            viewers: Arc::new(tokio::sync::Semaphore::new(
                settings.max_live_viewers.max(1),
            )),
            keep_alive: LIVE_KEEP_ALIVE.min(settings.idle_timeout / 2),
        }
    }
}

impl AdminState {
    /// A state for `settings` with nothing to serve but health, readiness and metrics:
    /// workers not yet running, no sources, no reload, no dead letters, no dashboard. The
    /// caller fills in what the process has.
    pub fn new(settings: &AdminSettings, token: Option<String>) -> AdminState {
        AdminState {
            latencies: Latencies::new(),
            workers_running: Arc::new(AtomicBool::new(false)),
            health: crate::health::Health::new(),
            sources_connected: Vec::new(),
            reload: None,
            access: Arc::new(Access::new(settings, token)),
            live_limit: LiveLimit::of(settings),
            dlq: None,
            cluster: false,
            live: None,
        }
    }
}

/// What the dead-letter endpoints need.
#[derive(Clone)]
pub struct DlqAccess {
    /// The outbox.
    pub store: Arc<crate::outbox::store::Store>,
    /// The running queues.
    pub queues: Vec<Arc<crate::outbox::queue::QueueShared>>,
}

/// What `POST /rules/reload` needs.
#[derive(Clone)]
pub struct ReloadAccess {
    /// Does the reload.
    pub reloader: Arc<Reloader>,
}

/// The admin routes, behind the Host check and then the caller check.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/login", get(access::login))
        .route("/login/codes", post(access::new_login_code))
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
        // The last layer added runs first: Host, then caller.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::check_caller,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::check_host,
        ))
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
    let Ok(permit) = state.live_limit.viewers.clone().try_acquire_owned() else {
        metrics::counter!(crate::metrics::ADMIN_LIVE_VIEWERS_REJECTED).increment(1);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "30")],
            "too many dashboards are open (admin.max_live_viewers); try again shortly\n",
        )
            .into_response();
    };
    let viewer = hub.subscribe();
    // The permit lives as long as the stream: a closed dashboard frees its place.
    let stream =
        futures_util::stream::unfold((viewer, permit), |(mut viewer, permit)| async move {
            let message = viewer.next().await?;
            let event = Event::default().event(message.event).data(&*message.data);
            Some((Ok::<_, std::convert::Infallible>(event), (viewer, permit)))
        });
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(state.live_limit.keep_alive))
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
        if let Some(how) = q.refused() {
            not_ready.push(format!(
                "queue `{}`: its credentials are refused ({how}); its entries wait",
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

async fn reload_rules(State(state): State<AdminState>) -> Response {
    let Some(access) = &state.reload else {
        return (StatusCode::NOT_FOUND, "rule reload is not available\n").into_response();
    };
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

fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body + "\n",
    )
        .into_response()
}

/// The answer of the dead-letter endpoints where this process has no dead-letter store. A
/// cluster node has none of its own: its queues' dead letters are in the cluster's stream,
/// which `earshot dlq --config` reads (a 409 that says so, rather than a 404 that would read
/// as "no dead letters").
fn no_dlq(state: &AdminState) -> Response {
    if state.cluster {
        let error = format!(
            "this earshot is a cluster node: dead letters are in the cluster's JetStream \
             stream {}, not here; `earshot dlq list|replay|purge --config <this node's \
             config>` works on them",
            crate::cluster::DLQ_STREAM
        );
        return json_response(
            StatusCode::CONFLICT,
            &serde_json::json!({ "error": error, "stream": crate::cluster::DLQ_STREAM }),
        );
    }
    (
        StatusCode::NOT_FOUND,
        "this process delivers nothing: no dead-letter store\n",
    )
        .into_response()
}

/// `GET /dlq?queue=…&id=…&limit=…&after=…`: one page of dead letters, as JSON
/// `{"letters": […], "next": "<cursor>" | null}`; `next` goes into `after` for the next page.
/// Pages hold 100 letters unless `limit` says otherwise (at most [`crate::dlq::MAX_PAGE`]),
/// so an answer stays small however many letters the store holds.
async fn dlq_list(
    State(state): State<AdminState>,
    query: Result<axum::extract::Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(dlq) = &state.dlq else {
        return no_dlq(&state);
    };
    let axum::extract::Query(query) = match query {
        Ok(q) => q,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let limit = query.limit.unwrap_or(DLQ_PAGE);
    if limit == 0 || limit > crate::dlq::MAX_PAGE {
        return (
            StatusCode::BAD_REQUEST,
            format!("limit must be between 1 and {}\n", crate::dlq::MAX_PAGE),
        )
            .into_response();
    }
    let filter = crate::dlq::Filter {
        queue: query.queue,
        ids: query.id.into_iter().collect(),
        all: false,
    };
    match crate::dlq::list_page(&dlq.store, &filter, query.after.as_deref(), limit) {
        Ok(Ok(page)) => json_response(StatusCode::OK, &page),
        Ok(Err(bad)) => (StatusCode::BAD_REQUEST, format!("{bad}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// Letters in a `GET /dlq` page unless `limit` says otherwise.
const DLQ_PAGE: usize = 100;

/// Query of `GET /dlq`.
#[derive(serde::Deserialize)]
struct ListQuery {
    queue: Option<String>,
    id: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
}

/// Answer of the mutating dead-letter endpoints.
#[derive(serde::Serialize)]
struct Changed {
    replayed: Option<usize>,
    purged: Option<usize>,
}

async fn dlq_replay(State(state): State<AdminState>, body: axum::body::Bytes) -> Response {
    dlq_change(state, body, true).await
}

async fn dlq_purge(State(state): State<AdminState>, body: axum::body::Bytes) -> Response {
    dlq_change(state, body, false).await
}

async fn dlq_change(state: AdminState, body: axum::body::Bytes, replay: bool) -> Response {
    let what = if replay {
        "POST /dlq/replay"
    } else {
        "POST /dlq/purge"
    };
    let Some(dlq) = &state.dlq else {
        return no_dlq(&state);
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

/// Why the admin server did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// `admin.listen`.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The TLS certificate or key does not load.
    #[error("admin.tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// Binds `settings.listen` and serves the admin routes until shutdown, over TLS when
/// `settings.tls` says so, within the connection limits of `settings`. Returns the bound
/// address (useful with port 0) and the serving task.
///
/// Graceful shutdown waits for every open response to finish, and a dashboard's event
/// stream never finishes on its own: on shutdown the live hub is closed first, which ends
/// every stream, so a browser left open does not keep the process alive.
pub async fn serve(
    settings: &AdminSettings,
    state: AdminState,
    mut shutdown: Shutdown,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), ServeError> {
    let tls = settings
        .tls
        .as_ref()
        .map(|tls| crate::tls::server_config(&tls.cert, &tls.key))
        .transpose()?;
    let addr = settings.listen;
    let bound = tokio::net::TcpListener::bind(addr)
        .await
        .and_then(|l| Ok((l.local_addr()?, l)));
    let (local, tcp) = bound.map_err(|source| ServeError::Bind { addr, source })?;
    info!(addr = %local, tls = tls.is_some(), "admin server listening");
    crate::metrics::register_admin();
    let live = state.live.clone();
    let app = router(state);
    let limits = listener::Limits::of(settings);
    let task = tokio::spawn(listener::run(tcp, app, tls, limits, async move {
        shutdown.recv().await;
        if let Some(live) = live {
            live.close();
        }
    }));
    Ok((local, task))
}

/// The address a browser or client on this machine reaches the server at, as
/// `http(s)://host:port`: the listen address, or loopback where it listens on every
/// interface.
pub fn base_url(settings: &AdminSettings, bound: SocketAddr) -> String {
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let host = match bound.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!("{scheme}://{host}:{}", bound.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    /// The token of the test states.
    const TOKEN: &str = "t";

    /// Dead letters with these ids in queue `support` of `store`.
    fn bury_letters(store: &crate::outbox::store::Store, ids: &[impl AsRef<str>]) {
        use crate::outbox::entry::{Entry, Event};
        use crate::outbox::store::{Commit, Table};
        let entries = ids
            .iter()
            .map(|id| {
                let id = id.as_ref();
                let data =
                    serde_json::value::RawValue::from_string(format!(r#"{{"mention_id":"{id}"}}"#))
                        .unwrap();
                (
                    "support",
                    Entry::new(id.into(), Event::MentionCreated, data, 1),
                )
            })
            .collect();
        let (keys, _) = store
            .commit(&Commit {
                entries,
                ..Commit::default()
            })
            .unwrap();
        let (stored, _) = store.read(Table::Outbox, "support", 0, keys.len()).unwrap();
        let items: Vec<_> = keys
            .iter()
            .zip(&stored)
            .map(|(k, s)| (*k, Some(&s.entry)))
            .collect();
        store.bury("support", &items).unwrap();
    }

    fn state(workers: bool, connected: bool) -> AdminState {
        let mut s = AdminState::new(&AdminSettings::default(), Some(TOKEN.into()));
        s.workers_running = Arc::new(AtomicBool::new(workers));
        s.sources_connected = vec![("bluesky".into(), Arc::new(AtomicBool::new(connected)))];
        s
    }

    fn access(token: Option<&str>) -> Arc<Access> {
        Arc::new(Access::new(
            &AdminSettings::default(),
            token.map(str::to_owned),
        ))
    }

    /// A request for an allowed host with the test token.
    fn authed(request: http::request::Builder) -> http::request::Builder {
        request
            .header(header::HOST, "localhost:9464")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
    }

    #[tokio::test]
    async fn dead_letters_are_listed_and_replayed_or_purged_with_the_token() {
        use crate::outbox::store::{Store, Table};
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("o.redb")).unwrap());
        bury_letters(&store, &["m_a", "m_b"]);
        let queue = crate::outbox::queue::QueueShared::new("support", &store);
        let app = |token: Option<&str>| {
            let mut s = state(true, true);
            s.access = access(token);
            s.dlq = Some(DlqAccess {
                store: store.clone(),
                queues: vec![queue.clone()],
            });
            router(s)
        };
        let (status, body) = get_status(app(Some(TOKEN)), "/dlq?queue=support").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(page["next"], serde_json::Value::Null);
        let listed = page["letters"].as_array().unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0]["id"], "m_a");
        assert_eq!(listed[0]["data"]["mention_id"], "m_a");
        let post = |app: Router, path: &str, token: Option<&str>, body: &str| {
            let mut r = Request::post(path).header(header::HOST, "localhost");
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

    /// A cluster node's dead letters are in the cluster's stream: its endpoints say so and
    /// name the command that reads them, where a process that delivers nothing answers 404.
    #[tokio::test]
    async fn a_cluster_node_points_at_the_cluster_for_its_dead_letters() {
        let plain = state(true, true);
        assert_eq!(
            get_status(router(plain.clone()), "/dlq").await.0,
            StatusCode::NOT_FOUND
        );
        let mut node = state(true, true);
        node.cluster = true;
        let (status, body) = get_status(router(node.clone()), "/dlq?queue=support").await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["stream"], "EARSHOT_DLQ");
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.contains("earshot dlq") && error.contains("--config"),
            "{error}"
        );
        for path in ["/dlq/replay", "/dlq/purge"] {
            let request = authed(Request::post(path))
                .body(Body::from(r#"{"queue":"support"}"#))
                .unwrap();
            let (status, body) = respond(router(node.clone()), request).await;
            assert_eq!(status, StatusCode::CONFLICT, "{path}: {body}");
            assert!(body.contains("EARSHOT_DLQ"), "{path}: {body}");
        }
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
        respond(app, authed(Request::get(path)).body(Body::empty()).unwrap()).await
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
        let mut request = Request::post("/rules/reload").header(header::HOST, "localhost");
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
        let compiled = crate::compile::compile(&config).unwrap();
        let reloader = Reloader::new(config, crate::compile::Shared::new(Arc::new(compiled)));
        let with_token = |token: Option<&str>| {
            let mut s = state(true, true);
            s.reload = Some(ReloadAccess {
                reloader: reloader.clone(),
            });
            s.access = access(token);
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
                .oneshot(authed(Request::get(path)).body(Body::empty()).unwrap())
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
            .oneshot(authed(Request::get("/")).body(Body::empty()).unwrap())
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
            .oneshot(
                authed(Request::get("/live/events"))
                    .body(Body::empty())
                    .unwrap(),
            )
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
        let (addr, task) = serve(&loopback(), with_live(&hub), shutdown).await.unwrap();
        let mut browser = tokio::net::TcpStream::connect(addr).await.unwrap();
        browser
            .write_all(
                b"GET /live/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer t\r\n\
                  Accept: text/event-stream\r\n\r\n",
            )
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

    /// Default settings on 127.0.0.1, port chosen by the OS.
    fn loopback() -> AdminSettings {
        AdminSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..AdminSettings::default()
        }
    }

    /// Every endpoint's path and method; each must refuse a caller without the token.
    const GUARDED: &[(&str, &str)] = &[
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/dlq"),
        ("POST", "/dlq/replay"),
        ("POST", "/dlq/purge"),
        ("POST", "/rules/reload"),
        ("POST", "/login/codes"),
        ("GET", "/"),
        ("GET", "/live"),
        ("GET", "/live/app.js"),
        ("GET", "/live/app.css"),
        ("GET", "/live/events"),
        ("GET", "/no-such-page"),
    ];

    fn request(method: &str, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "127.0.0.1:9464")
    }

    #[tokio::test]
    async fn every_endpoint_but_healthz_needs_the_token() {
        let hub = LiveHub::new();
        let app = |token: Option<&str>| {
            let mut s = with_live(&hub);
            s.access = access(token);
            router(s)
        };
        for &(method, path) in GUARDED {
            let (status, body) = respond(
                app(Some("s3cret")),
                request(method, path).body(Body::empty()).unwrap(),
            )
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
            let wrong = request(method, path)
                .header(header::AUTHORIZATION, "Bearer s3cre")
                .body(Body::empty())
                .unwrap();
            assert_eq!(
                respond(app(Some("s3cret")), wrong).await.0,
                StatusCode::UNAUTHORIZED,
                "{method} {path}"
            );
            // No token configured: refused, naming the variable to set.
            let (status, body) = respond(
                app(None),
                request(method, path)
                    .header(header::AUTHORIZATION, "Bearer ")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
            assert!(body.contains("EARSHOT_ADMIN_TOKEN"), "{body}");
            let right = request(method, path)
                .header(header::AUTHORIZATION, "Bearer s3cret")
                .body(Body::empty())
                .unwrap();
            let status = app(Some("s3cret")).oneshot(right).await.unwrap().status();
            assert!(
                status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                "{method} {path} with the token: {status}"
            );
        }
        for token in [None, Some("s3cret")] {
            let (status, body) = respond(
                app(token),
                request("GET", "/healthz").body(Body::empty()).unwrap(),
            )
            .await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
        }
    }

    #[tokio::test]
    async fn requests_for_other_hosts_are_refused() {
        let settings = AdminSettings {
            listen: "10.0.0.7:9464".parse().unwrap(),
            plaintext_ok: true,
            allowed_hosts: vec!["localhost".into(), "admin.example.com".into()],
            ..AdminSettings::default()
        };
        let app = || {
            let s = AdminState::new(&settings, Some(TOKEN.into()));
            s.workers_running.store(true, Ordering::Relaxed);
            router(s)
        };
        let get = |host: &str, path: &str| {
            Request::get(path)
                .header(header::HOST, host)
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .unwrap()
        };
        for host in [
            "localhost",
            "localhost:9464",
            "LOCALHOST:1",
            "admin.example.com:443",
            "10.0.0.7:9464",
        ] {
            let (status, body) = respond(app(), get(host, "/readyz")).await;
            assert_eq!(status, StatusCode::OK, "{host}: {body}");
        }
        // A rebinding page names its own host; 127.0.0.1 is not listed in these settings.
        for host in [
            "evil.example",
            "evil.example:9464",
            "127.0.0.1:9464",
            "x y",
            "",
        ] {
            let (status, body) = respond(app(), get(host, "/readyz")).await;
            assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{host:?}: {body}");
        }
        let (_, body) = respond(app(), get("evil.example", "/metrics")).await;
        assert!(
            body.contains("evil.example") && body.contains("admin.allowed_hosts"),
            "{body}"
        );
        // No Host at all.
        let bare = Request::get("/readyz").body(Body::empty()).unwrap();
        assert_eq!(
            respond(app(), bare).await.0,
            StatusCode::MISDIRECTED_REQUEST
        );
        assert_eq!(
            respond(app(), get("evil.example", "/healthz")).await.0,
            StatusCode::OK,
            "probes reach /healthz by any name"
        );
    }

    /// The `Set-Cookie` of a login with `code`, or the status of its refusal.
    async fn log_in(app: Router, code: &str) -> Result<String, StatusCode> {
        let resp = app
            .oneshot(
                request("GET", &format!("/login?code={code}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        if resp.status() != StatusCode::SEE_OTHER {
            return Err(resp.status());
        }
        assert_eq!(resp.headers()[header::LOCATION], "/live");
        Ok(resp.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned())
    }

    fn with_cookie(method: &str, path: &str, cookie: &str) -> Request<Body> {
        let pair = cookie.split(';').next().unwrap();
        request(method, path)
            .header(header::COOKIE, format!("theme=dark; {pair}"))
            .body(Body::empty())
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_login_code_opens_one_reading_session_once() {
        let hub = LiveHub::new();
        let mut s = with_live(&hub);
        s.access = access(None);
        let access = s.access.clone();
        let app = router(s);
        let code = access.mint_login_code();
        assert_eq!(code.len(), 32);
        let cookie = log_in(app.clone(), &code).await.unwrap();
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
            assert!(cookie.contains(flag), "{cookie}");
        }
        assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
        assert!(!cookie.contains(&code), "the session is not the code");
        assert_eq!(
            log_in(app.clone(), &code).await,
            Err(StatusCode::FORBIDDEN),
            "a code works once"
        );
        for bad in ["", "0", &"f".repeat(32), &"a".repeat(5000)] {
            assert_eq!(log_in(app.clone(), bad).await, Err(StatusCode::FORBIDDEN));
        }
        // The session reads, without any token configured (as in `earshot demo`)...
        for path in ["/live", "/live/app.js", "/", "/readyz", "/metrics"] {
            let status = app
                .clone()
                .oneshot(with_cookie("GET", path, &cookie))
                .await
                .unwrap()
                .status();
            assert!(
                status.is_success() || status.is_redirection(),
                "{path}: {status}"
            );
        }
        let events = app
            .clone()
            .oneshot(with_cookie("GET", "/live/events", &cookie))
            .await
            .unwrap();
        assert_eq!(events.status(), StatusCode::OK);
        drop(events);
        // ...but changes nothing.
        for path in ["/dlq/purge", "/rules/reload", "/login/codes"] {
            let (status, _) = respond(app.clone(), with_cookie("POST", path, &cookie)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        }
        let forged = "earshot_session=00000000000000000000000000000000";
        let (status, _) = respond(app.clone(), with_cookie("GET", "/live", forged)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // Codes and sessions expire.
        let late = access.mint_login_code();
        tokio::time::advance(Duration::from_secs(10 * 60 + 1)).await;
        assert_eq!(log_in(app.clone(), &late).await, Err(StatusCode::FORBIDDEN));
        tokio::time::advance(Duration::from_secs(12 * 3600)).await;
        let (status, _) = respond(app.clone(), with_cookie("GET", "/live", &cookie)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "the session expired");
    }

    #[tokio::test]
    async fn sessions_are_bounded_and_marked_secure_over_tls() {
        let settings = AdminSettings {
            max_sessions: 2,
            tls: Some(AdminTls {
                cert: "cert.pem".into(),
                key: "key.pem".into(),
            }),
            ..AdminSettings::default()
        };
        let hub = LiveHub::new();
        let mut s = AdminState::new(&settings, Some(TOKEN.into()));
        s.live = Some(hub.clone());
        let access = s.access.clone();
        let app = router(s);
        let mut cookies = Vec::new();
        for _ in 0..3 {
            let cookie = log_in(app.clone(), &access.mint_login_code())
                .await
                .unwrap();
            assert!(cookie.ends_with("; Secure"), "{cookie}");
            cookies.push(cookie);
        }
        let statuses: Vec<StatusCode> = futures_util::future::join_all(
            cookies
                .iter()
                .map(|c| app.clone().oneshot(with_cookie("GET", "/live", c))),
        )
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
        assert_eq!(
            statuses,
            [StatusCode::UNAUTHORIZED, StatusCode::OK, StatusCode::OK],
            "the third login ended the oldest session"
        );
        // With the token, a new login code for a browser.
        let (status, body) = respond(
            app.clone(),
            authed(Request::post("/login/codes"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let code: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(log_in(app, code["code"].as_str().unwrap()).await.is_ok());
    }

    #[tokio::test]
    async fn dashboards_past_the_viewer_limit_are_told_to_come_back() {
        let settings = AdminSettings {
            max_live_viewers: 2,
            ..AdminSettings::default()
        };
        let hub = LiveHub::new();
        let mut s = AdminState::new(&settings, Some(TOKEN.into()));
        s.live = Some(hub.clone());
        let app = router(s);
        let open = || {
            app.clone().oneshot(
                authed(Request::get("/live/events"))
                    .body(Body::empty())
                    .unwrap(),
            )
        };
        let first = open().await.unwrap();
        let second = open().await.unwrap();
        assert_eq!(
            (first.status(), second.status()),
            (StatusCode::OK, StatusCode::OK)
        );
        let rejected_before = counter_value(crate::metrics::ADMIN_LIVE_VIEWERS_REJECTED, "");
        let third = open().await.unwrap();
        assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(third.headers()[header::RETRY_AFTER], "30");
        assert!(
            counter_value(crate::metrics::ADMIN_LIVE_VIEWERS_REJECTED, "") > rejected_before,
            "counted"
        );
        drop(first);
        assert_eq!(
            open().await.unwrap().status(),
            StatusCode::OK,
            "a closed dashboard frees its place"
        );
        drop(second);
    }

    /// The value of the counter `name` whose label set contains `labels` (`""`: no labels),
    /// from the process's Prometheus text.
    fn counter_value(name: &str, labels: &str) -> f64 {
        let text = crate::metrics::prometheus().render();
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .find(|l| {
                let rest = &l[name.len()..];
                if labels.is_empty() {
                    rest.starts_with(' ')
                } else {
                    rest.starts_with('{') && rest.contains(labels)
                }
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    }

    #[tokio::test]
    async fn dead_letters_come_a_page_at_a_time() {
        use crate::outbox::store::Store;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("o.redb")).unwrap());
        let ids: Vec<String> = (0..5).map(|i| format!("m_{i}")).collect();
        bury_letters(&store, &ids);
        let mut s = state(true, true);
        s.dlq = Some(DlqAccess {
            store: store.clone(),
            queues: Vec::new(),
        });
        let app = router(s);
        let mut seen = Vec::new();
        let mut after = String::new();
        let mut pages = 0;
        loop {
            let (status, body) = get_status(app.clone(), &format!("/dlq?limit=2{after}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let page: crate::dlq::Page = serde_json::from_str(&body).unwrap();
            assert!(page.letters.len() <= 2);
            seen.extend(page.letters.into_iter().map(|l| l.id));
            pages += 1;
            match page.next {
                Some(next) => after = format!("&after={next}"),
                None => break,
            }
        }
        assert_eq!((seen, pages), (ids.clone(), 3));
        let (_, body) = get_status(app.clone(), "/dlq").await;
        let page: crate::dlq::Page = serde_json::from_str(&body).unwrap();
        assert_eq!((page.letters.len(), page.next), (5, None), "default page");
        for bad in [
            "/dlq?limit=0",
            "/dlq?limit=1001",
            "/dlq?limit=x",
            "/dlq?after=nonsense",
            "/dlq?after=:3",
        ] {
            let (status, body) = get_status(app.clone(), bad).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        }
    }

    /// Reads from `stream` until it closes; the bytes read. Fails past `within` (tokio time).
    async fn read_until_closed(stream: &mut tokio::net::TcpStream, within: Duration) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut seen = Vec::new();
        tokio::time::timeout(within, async {
            let mut chunk = [0u8; 1024];
            loop {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("still open after {within:?}: {seen:?}"));
        seen
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_trickling_its_headers_is_cut_off() {
        use tokio::io::AsyncWriteExt;
        let settings = AdminSettings {
            header_read_timeout: Duration::from_secs(5),
            ..loopback()
        };
        let (_trigger, shutdown) = crate::shutdown::channel();
        let (addr, _task) = serve(&settings, state(true, true), shutdown).await.unwrap();
        let before = counter_value(
            crate::metrics::ADMIN_CONNECTIONS_CLOSED,
            "reason=\"header_timeout\"",
        );
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Padding: 0123456789\r\n\r\n";
        let mut sent = 0;
        // One byte a second, as a slowloris client sends them.
        for byte in head {
            if client.write_all(&[*byte]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
            // Anything but "nothing to read yet" means the server answered or closed.
            match client.try_read(&mut [0u8; 1]) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                _ => break,
            }
        }
        assert!(
            sent < head.len() / 2,
            "the server was still reading headers after {sent} s"
        );
        let answer = read_until_closed(&mut client, Duration::from_secs(60)).await;
        assert!(
            !String::from_utf8_lossy(&answer).contains("200 OK"),
            "{answer:?}"
        );
        assert!(
            counter_value(
                crate::metrics::ADMIN_CONNECTIONS_CLOSED,
                "reason=\"header_timeout\""
            ) > before
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_request_body_is_cut_off_by_the_idle_timeout() {
        use tokio::io::AsyncWriteExt;
        let settings = AdminSettings {
            idle_timeout: Duration::from_secs(30),
            ..loopback()
        };
        let (_trigger, shutdown) = crate::shutdown::channel();
        let (addr, _task) = serve(&settings, state(true, true), shutdown).await.unwrap();
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client
            .write_all(
                b"POST /dlq/purge HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer t\r\n\
                  Content-Length: 100\r\n\r\n{\"queue\"",
            )
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        read_until_closed(&mut client, Duration::from_secs(3600)).await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(30) && waited < Duration::from_secs(40),
            "closed after {waited:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_thousand_dashboards_at_once_get_their_limits_and_the_server_stays_up() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let settings = loopback();
        let hub = LiveHub::new();
        let mut s = AdminState::new(&settings, Some(TOKEN.into()));
        s.live = Some(hub.clone());
        let (trigger, shutdown) = crate::shutdown::channel();
        let (addr, task) = serve(&settings, s, shutdown).await.unwrap();
        let request = format!(
            "GET /live/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        );
        // A thousand viewers connect at once; each reads the first bytes of its answer (or
        // the close) and keeps its connection.
        let mut viewers = tokio::task::JoinSet::new();
        for _ in 0..1000 {
            let request = request.clone();
            viewers.spawn(async move {
                let Ok(mut c) = tokio::net::TcpStream::connect(addr).await else {
                    return ("refused".to_string(), None);
                };
                if c.write_all(request.as_bytes()).await.is_err() {
                    return ("closed".to_string(), None);
                }
                let mut head = [0u8; 64];
                match tokio::time::timeout(Duration::from_secs(20), c.read(&mut head)).await {
                    Ok(Ok(n)) if n > 0 => {
                        let line = String::from_utf8_lossy(&head[..n]);
                        let status = line.split_whitespace().nth(1).unwrap_or("?").to_string();
                        (status, Some(c))
                    }
                    Ok(_) => ("closed".to_string(), None),
                    Err(_) => ("no answer".to_string(), Some(c)),
                }
            });
        }
        let mut by_outcome = std::collections::BTreeMap::<String, usize>::new();
        let mut held = Vec::new();
        while let Some(done) = viewers.join_next().await {
            let (outcome, conn) = done.unwrap();
            // Only the streams stay open; the refused close their side.
            if outcome == "200" {
                held.extend(conn);
            }
            *by_outcome.entry(outcome).or_default() += 1;
        }
        eprintln!("1000 dashboards at once: {by_outcome:?}");
        // Every one of them was answered: a stream (at most the viewer limit), 503 past it,
        // or closed at once past the connection limit. None was left hanging.
        assert_eq!(by_outcome.get("no answer"), None, "{by_outcome:?}");
        assert_eq!(
            by_outcome.get("200").copied().unwrap_or(0),
            settings.max_live_viewers,
            "{by_outcome:?}"
        );
        assert_eq!(by_outcome.values().sum::<usize>(), 1000);
        // With the viewers' streams still open, the server answers a plain request (once it
        // has seen the refused ones close).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let _ = c
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .await;
            let mut answer = [0u8; 64];
            let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut answer))
                .await
                .expect("an answer or a close")
                .unwrap_or(0);
            if n > 0 {
                assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{by_outcome:?}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server never answered again: {by_outcome:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(held);
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("shutdown with dashboards open")
            .unwrap();
    }

    #[tokio::test]
    async fn connections_past_the_limit_are_closed_at_once() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let settings = AdminSettings {
            max_connections: 2,
            ..loopback()
        };
        let (trigger, shutdown) = crate::shutdown::channel();
        let (addr, task) = serve(&settings, state(true, true), shutdown).await.unwrap();
        let request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
        // A kept-alive connection that has had its answer: served, and held open.
        let served = |mut c: tokio::net::TcpStream| async move {
            c.write_all(request).await.unwrap();
            let mut answer = [0u8; 512];
            let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut answer))
                .await
                .expect("an answer")
                .unwrap();
            assert!(
                String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"),
                "{:?}",
                String::from_utf8_lossy(&answer[..n])
            );
            c
        };
        let first = served(tokio::net::TcpStream::connect(addr).await.unwrap()).await;
        let _second = served(tokio::net::TcpStream::connect(addr).await.unwrap()).await;
        let before = counter_value(
            crate::metrics::ADMIN_CONNECTIONS_REJECTED,
            "reason=\"limit\"",
        );
        let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = third.write_all(request).await;
        let answer = read_until_closed(&mut third, Duration::from_secs(10)).await;
        assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
        assert!(
            counter_value(
                crate::metrics::ADMIN_CONNECTIONS_REJECTED,
                "reason=\"limit\""
            ) > before
        );
        // A connection that leaves frees its place.
        drop(first);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let _ = c.write_all(request).await;
            let mut answer = [0u8; 64];
            let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut answer))
                .await
                .expect("an answer or a close")
                .unwrap_or(0);
            if n > 0 {
                assert!(answer.starts_with(b"HTTP/1.1 200"));
                break;
            }
            // The server may not have seen the first one close yet.
            assert!(
                std::time::Instant::now() < deadline,
                "no place freed after a connection closed"
            );
            tokio::task::yield_now().await;
        }
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("shutdown with kept-alive connections open")
            .unwrap();
    }

    #[tokio::test]
    async fn tls_serves_https_and_marks_the_session_cookie_secure() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let generated =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .unwrap();
        let tls = AdminTls {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        std::fs::write(&tls.cert, generated.cert.pem()).unwrap();
        std::fs::write(&tls.key, generated.signing_key.serialize_pem()).unwrap();
        let settings = AdminSettings {
            tls: Some(tls),
            ..loopback()
        };
        let hub = LiveHub::new();
        let mut s = AdminState::new(&settings, Some(TOKEN.into()));
        s.live = Some(hub.clone());
        let access = s.access.clone();
        let (trigger, shutdown) = crate::shutdown::channel();
        let (addr, task) = serve(&settings, s, shutdown).await.unwrap();
        assert!(base_url(&settings, addr).starts_with("https://127.0.0.1:"));

        let mut roots = rustls::RootCertStore::empty();
        roots.add(generated.cert.der().clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let https_get = |path: String| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
                tls.write_all(
                    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .unwrap();
                let mut answer = Vec::new();
                let _ = tls.read_to_end(&mut answer).await;
                String::from_utf8_lossy(&answer).into_owned()
            }
        };
        let health = https_get("/healthz".into()).await;
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        let login = https_get(format!("/login?code={}", access.mint_login_code())).await;
        assert!(login.starts_with("HTTP/1.1 303"), "{login}");
        let cookie = login
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
            .unwrap_or_default();
        assert!(cookie.contains("; Secure"), "{login}");

        // Plain HTTP on the TLS port gets no answer.
        let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
        plain
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let answer = read_until_closed(&mut plain, Duration::from_secs(10)).await;
        assert!(
            !String::from_utf8_lossy(&answer).contains("200 OK"),
            "{answer:?}"
        );
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
    }
}
