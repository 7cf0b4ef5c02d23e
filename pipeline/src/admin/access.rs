//! Who may call the admin server: the `Host` allow-list, the bearer token, and the login
//! links and sessions of the live page.
//!
//! Programs (Prometheus, `earshot dlq`, curl) send `Authorization: Bearer <token>`, the token
//! coming from the environment variable `admin.token_env`. A browser cannot be given a
//! header, and the token must not be printed: at start earshot mints a random one-time
//! *login code* and prints a link with it (`/login?code=…`); opening the link trades the code
//! for a random session id kept here, sent back as an `HttpOnly`, `SameSite=Strict` cookie.
//! A session reads (GET) but never changes anything: replays, purges and reloads take the
//! token only, so no page can make a browser change state.
//!
//! Codes and session ids are 128 random bits from the operating system; only their SHA-256
//! is kept, compared in constant time against every entry (the lists are short and
//! bounded), so neither memory nor timing gives one away. Codes expire after
//! `login_code_ttl` and work once; sessions expire after `session_ttl`, and past
//! `max_sessions` a new login ends the oldest.

use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use super::AdminState;
use crate::config::admin::host_of_header;
use crate::config::AdminSettings;

/// The name of the dashboard's session cookie.
pub const SESSION_COOKIE: &str = "earshot_session";

/// Login codes waiting to be used at once; minting more drops the oldest. A code is printed
/// at start and on request, so a handful is plenty.
const MAX_CODES: usize = 8;

/// The admin server's gatekeeper: shared by every request.
pub struct Access {
    token: Option<String>,
    token_env: String,
    hosts: Vec<String>,
    tls: bool,
    code_ttl: Duration,
    session_ttl: Duration,
    max_sessions: usize,
    codes: Mutex<Vec<Secret>>,
    sessions: Mutex<Vec<Secret>>,
}

/// A code or session id as kept: its hash and when it expires.
struct Secret {
    hash: [u8; 32],
    expires: Instant,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Access")
            .field("token_set", &self.token.is_some())
            .field("token_env", &self.token_env)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// 128 random bits from the operating system, as 32 hex digits.
fn random_secret() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system provides random numbers");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Finds `presented` among `kept` (dropping expired entries), comparing every entry in
/// constant time. With `take`, a found entry is removed (a login code works once).
fn find(kept: &Mutex<Vec<Secret>>, presented: &str, take: bool) -> bool {
    let wanted = hash(presented);
    let now = Instant::now();
    let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
    kept.retain(|s| s.expires > now);
    let mut found = None;
    for (i, s) in kept.iter().enumerate() {
        if bool::from(s.hash.ct_eq(&wanted)) {
            found = Some(i);
        }
    }
    if let (Some(i), true) = (found, take) {
        kept.remove(i);
    }
    found.is_some()
}

/// Keeps a new secret, dropping expired ones and, past `max`, the oldest.
fn keep(kept: &Mutex<Vec<Secret>>, secret: &str, ttl: Duration, max: usize) {
    let now = Instant::now();
    let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
    kept.retain(|s| s.expires > now);
    while kept.len() >= max.max(1) {
        kept.remove(0);
    }
    kept.push(Secret {
        hash: hash(secret),
        expires: now + ttl,
    });
}

impl Access {
    /// The gatekeeper for `settings`, with the token read from the environment (`None` when
    /// the variable is unset or empty).
    pub fn new(settings: &AdminSettings, token: Option<String>) -> Access {
        Access {
            token: token.filter(|t| !t.is_empty()),
            token_env: settings.token_env.clone(),
            hosts: settings.hosts(),
            tls: settings.tls.is_some(),
            code_ttl: settings.login_code_ttl,
            session_ttl: settings.session_ttl,
            max_sessions: settings.max_sessions,
            codes: Mutex::new(Vec::new()),
            sessions: Mutex::new(Vec::new()),
        }
    }

    /// Mints a one-time login code, valid for `login_code_ttl`.
    pub fn mint_login_code(&self) -> String {
        let code = random_secret();
        keep(&self.codes, &code, self.code_ttl, MAX_CODES);
        code
    }

    /// A login link for a server reached at `base` (`http://127.0.0.1:9464`), with a new
    /// code.
    pub fn login_url(&self, base: &str) -> String {
        format!("{base}/login?code={}", self.mint_login_code())
    }

    /// Trades a login code for a new session id; `None` when the code is unknown, used or
    /// expired.
    fn log_in(&self, code: &str) -> Option<String> {
        if !find(&self.codes, code, true) {
            return None;
        }
        let session = random_secret();
        keep(
            &self.sessions,
            &session,
            self.session_ttl,
            self.max_sessions,
        );
        Some(session)
    }

    /// Whether the request carries the configured bearer token.
    fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.token else {
            return false;
        };
        headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.strip_prefix("Bearer "))
            .any(|t| crate::reload::token_matches(t.trim(), expected))
    }

    /// Whether the request carries a live session cookie.
    fn session_ok(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
            .any(|id| find(&self.sessions, id, false))
    }

    /// Whether the `Host` (or, without one, the request target's authority) is served here.
    fn host_ok(&self, request: &Request) -> Result<(), String> {
        let value = match request.headers().get(header::HOST) {
            Some(v) => v
                .to_str()
                .map_err(|_| "the Host header is not text".to_string())?,
            None => match request.uri().authority() {
                Some(a) => a.as_str(),
                None => return Err("the request names no Host".to_string()),
            },
        };
        let shown: String = value.chars().take(100).collect();
        match host_of_header(value) {
            Some(host) if self.hosts.contains(&host) => Ok(()),
            Some(_) => Err(format!(
                "host `{shown}` is not served here; admin.allowed_hosts (and the listen \
                 address) allow: {}",
                self.hosts.join(", ")
            )),
            None => Err(format!("Host `{shown}` is malformed")),
        }
    }
}

/// Refuses requests for another host: a DNS-rebinding page reaches this server under its
/// own name. `/healthz` answers any host (probes address pods by IP, and it tells nothing).
pub async fn check_host(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    if let Err(message) = state.access.host_ok(&request) {
        crate::metrics::admin_request_refused("host");
        return (StatusCode::MISDIRECTED_REQUEST, message + "\n").into_response();
    }
    next.run(request).await
}

/// Lets through requests with the bearer token, GET requests with a session, `/healthz` and
/// `/login`; refuses the rest, naming what is missing.
pub async fn check_caller(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path == "/healthz" || path == "/login" {
        return next.run(request).await;
    }
    let access = &state.access;
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if access.bearer_ok(request.headers()) || (reads && access.session_ok(request.headers())) {
        return next.run(request).await;
    }
    let what = format!("{} {}", request.method(), path);
    if access.token.is_none() {
        crate::metrics::admin_request_refused("no_token");
        let browser = if reads {
            " (or, in a browser, open the login link earshot prints at start)"
        } else {
            ""
        };
        let message = format!(
            "{what} is disabled: set a token in the environment variable {}{browser}\n",
            access.token_env
        );
        return (StatusCode::FORBIDDEN, message).into_response();
    }
    crate::metrics::admin_request_refused("unauthorized");
    let message = if reads {
        "a valid bearer token is required (or, in a browser, open the login link earshot \
         prints at start)\n"
    } else {
        "a valid bearer token is required\n"
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        message,
    )
        .into_response()
}

/// Query of `GET /login`.
#[derive(serde::Deserialize)]
pub struct LoginQuery {
    code: Option<String>,
}

/// `GET /login?code=…`: trades a login code for a session cookie and opens the dashboard.
pub async fn login(
    State(state): State<AdminState>,
    axum::extract::Query(query): axum::extract::Query<LoginQuery>,
) -> Response {
    let code = query.code.unwrap_or_default();
    // Bounded before hashing: a code is 32 characters.
    let session = (code.len() <= 64)
        .then(|| state.access.log_in(&code))
        .flatten();
    let Some(session) = session else {
        crate::metrics::admin_request_refused("login");
        return (
            StatusCode::FORBIDDEN,
            [(header::CACHE_CONTROL, "no-store")],
            "this login link is not valid: it was used already, has expired or is mistyped. \
             earshot prints a new one at each start; with the admin token, \
             POST /login/codes makes another\n",
        )
            .into_response();
    };
    let secure = if state.access.tls { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        state.access.session_ttl.as_secs()
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/live".to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
            // The code is in this page's address: do not hand it to anyone else.
            (header::REFERRER_POLICY, "no-referrer".to_string()),
        ],
    )
        .into_response()
}

/// `POST /login/codes` (bearer token): a new login code, for a browser to open the
/// dashboard after the link printed at start was used or expired.
pub async fn new_login_code(State(state): State<AdminState>) -> Response {
    let code = state.access.mint_login_code();
    let body = serde_json::json!({
        "code": code,
        "path": format!("/login?code={code}"),
        "expires_in_s": state.access.code_ttl.as_secs(),
    });
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string() + "\n",
    )
        .into_response()
}
