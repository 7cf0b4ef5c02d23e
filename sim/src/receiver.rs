//! A webhook receiver that checks what a CRM would: the Standard Webhooks signature (against
//! the secret, within a 5-minute tolerance), the envelope and the mention contract. It records
//! each accepted mention once by `webhook-id`, counts duplicates and bad requests, and can be
//! told to fail the next N requests (with a status and `Retry-After`) to exercise retries.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;

use earshot::shutdown::Shutdown;
use earshot::sink::signature::SigningKey;

/// What the receiver saw.
#[derive(Default)]
pub struct Received {
    /// Accepted mentions by webhook-id, in arrival order of first delivery.
    pub by_id: HashMap<String, serde_json::Value>,
    /// The order ids first arrived in.
    pub order: Vec<String>,
    /// The last few mentions, newest last, for display.
    pub recent: VecDeque<serde_json::Value>,
    /// (path, webhook-id) of every accepted delivery: a mention routed to two queues arrives
    /// once at each queue's path, and only a second arrival at the same path is a duplicate.
    pub deliveries: std::collections::HashSet<(String, String)>,
    /// Digests (`mention.digest`) accepted, by webhook-id: what noise control rolled up.
    pub digests: HashMap<String, serde_json::Value>,
    /// Spike events (`spike.started`, `spike.updated`, `spike.ended`) accepted, in arrival
    /// order: (webhook-id, event type, document).
    pub spikes: Vec<(String, String, serde_json::Value)>,
    /// Mentions that came as `mention.followup`, by webhook-id: the first mention of their
    /// case (they are in `by_id` too).
    pub followups: HashMap<String, String>,
    /// The mentions a `mention.deleted` retracted, in arrival order.
    pub deletions: Vec<String>,
}

/// Receiver state shared with the handler.
#[derive(Clone)]
pub struct Receiver {
    key: SigningKey,
    /// Everything accepted.
    pub received: Arc<Mutex<Received>>,
    /// Requests with a valid signature delivering an id already delivered to the same path.
    pub duplicates: Arc<AtomicU64>,
    /// Requests refused (bad signature, missing headers, bad body).
    pub rejected: Arc<AtomicU64>,
    /// Requests answered with an injected failure.
    pub failed: Arc<AtomicU64>,
    /// Fail this many upcoming requests…
    pub fail_next: Arc<AtomicU64>,
    /// …with this status (e.g. 503 or 429)…
    pub fail_status: Arc<AtomicU64>,
    /// …and this `Retry-After` in seconds (0 = none).
    pub fail_retry_after: Arc<AtomicU64>,
    /// Milliseconds every request waits before it is answered (a slow endpoint).
    pub delay_ms: Arc<AtomicU64>,
}

impl Receiver {
    /// A receiver verifying with `key`.
    pub fn new(key: SigningKey) -> Self {
        Self {
            key,
            received: Arc::default(),
            duplicates: Arc::default(),
            rejected: Arc::default(),
            failed: Arc::default(),
            fail_next: Arc::default(),
            fail_status: Arc::new(AtomicU64::new(503)),
            fail_retry_after: Arc::default(),
            delay_ms: Arc::default(),
        }
    }

    /// Accepted mention count.
    pub fn count(&self) -> usize {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .order
            .len()
    }

    /// The routes (POST on any path).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/{*path}", post(handle))
            .route("/", post(handle))
            .with_state(self.clone())
    }

    /// Binds 127.0.0.1 (port 0 = any) and serves until shutdown.
    pub async fn start(&self, port: u16, mut shutdown: Shutdown) -> std::io::Result<SocketAddr> {
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        let addr = listener.local_addr()?;
        let app = self.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.recv().await })
                .await;
        });
        Ok(addr)
    }
}

/// Checks a delivery; returns the webhook-id and the parsed envelope, or why it is refused.
pub fn verify(
    key: &SigningKey,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<(String, serde_json::Value), String> {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(format!("missing header {name}"))
    };
    let id = h("webhook-id")?.to_string();
    let ts: i64 = h("webhook-timestamp")?
        .parse()
        .map_err(|_| "bad webhook-timestamp".to_string())?;
    let sig = h("webhook-signature")?;
    if !key.verify(&id, ts, body, sig, now, 300) {
        return Err("signature does not verify".into());
    }
    let envelope: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let data = &envelope["data"];
    if envelope["type"] == "mention.deleted" {
        let mid = data["mention_id"].as_str().unwrap_or_default();
        if mid.is_empty() || id != format!("{mid}.deleted") || data["post"]["id"].as_str().is_none()
        {
            return Err(
                "a mention.deleted's webhook-id is not <mention_id>.deleted, or it names no post"
                    .into(),
            );
        }
        return Ok((id, envelope));
    }
    if envelope["type"] == "mention.digest" {
        if data["digest_id"].as_str() != Some(id.as_str()) || data.get("total").is_none() {
            return Err("digest_id does not match webhook-id, or the digest lacks `total`".into());
        }
        return Ok((id, envelope));
    }
    if let Some(kind) = envelope["type"]
        .as_str()
        .filter(|t| t.starts_with("spike."))
    {
        let spike_id = data["spike_id"].as_str().unwrap_or_default();
        if spike_id.is_empty()
            || !id.starts_with(spike_id)
            || !kind.ends_with(data["event"].as_str().unwrap_or("?"))
        {
            return Err("spike_id or event does not match webhook-id and type".into());
        }
        return Ok((id, envelope));
    }
    let followup = envelope["type"] == "mention.followup";
    if followup
        && envelope["case"]["mention_id"]
            .as_str()
            .is_none_or(|first| first.is_empty() || first == id)
    {
        return Err("a mention.followup names no other mention as its case".into());
    }
    if !(followup || envelope["type"] == "mention.created")
        || data["mention_id"].as_str() != Some(id.as_str())
    {
        return Err("envelope type or mention_id does not match webhook-id".into());
    }
    for field in [
        "post",
        "matches",
        "sentiment",
        "category",
        "urgency",
        "queues",
    ] {
        if data.get(field).is_none() {
            return Err(format!("mention lacks `{field}`"));
        }
    }
    Ok((id, envelope))
}

async fn handle(
    State(r): State<Receiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let delay = r.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    if r.fail_next.load(Ordering::Relaxed) > 0 {
        r.fail_next.fetch_sub(1, Ordering::Relaxed);
        r.failed.fetch_add(1, Ordering::Relaxed);
        let status = StatusCode::from_u16(r.fail_status.load(Ordering::Relaxed) as u16)
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let after = r.fail_retry_after.load(Ordering::Relaxed);
        let mut h = HeaderMap::new();
        if after > 0 {
            h.insert("retry-after", after.into());
        }
        return (status, h, "injected failure\n".to_string());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    match verify(&r.key, &headers, &body, now) {
        Err(why) => {
            r.rejected.fetch_add(1, Ordering::Relaxed);
            (StatusCode::BAD_REQUEST, HeaderMap::new(), why + "\n")
        }
        Ok((id, envelope)) => {
            let mut rec = r.received.lock().unwrap_or_else(|e| e.into_inner());
            if envelope["type"] == "mention.deleted" {
                if !rec.deliveries.insert((uri.path().to_string(), id.clone())) {
                    r.duplicates.fetch_add(1, Ordering::Relaxed);
                } else if let Some(mid) = envelope["data"]["mention_id"].as_str() {
                    rec.deletions.push(mid.to_string());
                }
                return (StatusCode::NO_CONTENT, HeaderMap::new(), String::new());
            }
            if envelope["type"] == "mention.digest" {
                if !rec.deliveries.insert((uri.path().to_string(), id.clone())) {
                    r.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                rec.digests.insert(id, envelope["data"].clone());
                return (StatusCode::NO_CONTENT, HeaderMap::new(), String::new());
            }
            if let Some(kind) = envelope["type"]
                .as_str()
                .filter(|t| t.starts_with("spike."))
            {
                if !rec.deliveries.insert((uri.path().to_string(), id.clone())) {
                    r.duplicates.fetch_add(1, Ordering::Relaxed);
                } else {
                    rec.spikes
                        .push((id, kind.to_string(), envelope["data"].clone()));
                }
                return (StatusCode::NO_CONTENT, HeaderMap::new(), String::new());
            }
            if !rec.deliveries.insert((uri.path().to_string(), id.clone())) {
                r.duplicates.fetch_add(1, Ordering::Relaxed);
            } else if !rec.by_id.contains_key(&id) {
                if let Some(first) = envelope["case"]["mention_id"].as_str() {
                    rec.followups.insert(id.clone(), first.to_string());
                }
                rec.order.push(id.clone());
                rec.recent.push_back(envelope["data"].clone());
                if rec.recent.len() > 100 {
                    rec.recent.pop_front();
                }
                rec.by_id.insert(id, envelope["data"].clone());
            }
            (StatusCode::NO_CONTENT, HeaderMap::new(), String::new())
        }
    }
}
