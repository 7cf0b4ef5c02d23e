//! Admin HTTP server: `/metrics` (Prometheus text), `/healthz` (the process is up),
//! `/readyz` (rules are loaded, workers run and every network source is connected), and
//! `POST /rules/reload` (load the rule files again; JSON answer).
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
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tracing::info;

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
    /// One flag per network source: connected now.
    pub sources_connected: Vec<(String, Arc<AtomicBool>)>,
    /// Rule reloads; `None` where the pipeline does not reload (then the endpoint is 404).
    pub reload: Option<ReloadAccess>,
}

/// What `POST /rules/reload` needs.
#[derive(Clone)]
pub struct ReloadAccess {
    /// Does the reload.
    pub reloader: Arc<Reloader>,
    /// The bearer token callers must present; `None` refuses every call.
    pub token: Option<String>,
    /// The environment variable the token comes from, for the refusal message.
    pub token_env: String,
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/rules/reload", post(reload_rules))
        .with_state(state)
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
    let Some(expected) = access.token.as_deref() else {
        let message = format!(
            "POST /rules/reload is disabled: set a token in the environment variable {}\n",
            access.token_env
        );
        return (StatusCode::FORBIDDEN, message).into_response();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !presented.is_some_and(|t| token_matches(t, expected)) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a valid bearer token is required\n",
        )
            .into_response();
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

/// Binds `addr` and serves the admin routes until shutdown. Returns the bound address
/// (useful with port 0) and the serving task.
pub async fn serve(
    addr: SocketAddr,
    state: AdminState,
    mut shutdown: Shutdown,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    info!(addr = %local, "admin server listening");
    let app = router(state);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.recv().await })
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
            sources_connected: vec![("bluesky".into(), Arc::new(AtomicBool::new(connected)))],
            reload: None,
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
                token: token.map(str::to_owned),
                token_env: "EARSHOT_ADMIN_TOKEN".into(),
            });
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
