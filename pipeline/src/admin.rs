//! Admin HTTP server: `/metrics` (Prometheus text), `/healthz` (the process is up),
//! `/readyz` (rules are loaded, workers run and every network source is connected).
//!
//! Bound to 127.0.0.1 by default: metrics reveal brand names and volumes. The router is built
//! by a function so tests call it without a socket.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tracing::info;

use crate::metrics::Latencies;
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
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
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
        }
    }

    async fn get_status(app: Router, path: &str) -> (StatusCode, String) {
        let resp = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
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
