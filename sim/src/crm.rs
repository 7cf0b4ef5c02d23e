//! Loopback stand-ins for the CRMs' identity providers and ticket APIs, for tests that run
//! earshot for minutes against credentials that expire.
//!
//! Each CRM has its token endpoint, answering the grant that CRM uses in the shape its
//! documentation gives, and its create API, which takes only a token that endpoint issued
//! and that has not expired or been revoked:
//!
//! | CRM | token endpoint | grant | create API | header |
//! |---|---|---|---|---|
//! | Dynamics 365 | `/{tenant}/oauth2/v2.0/token` (Microsoft identity platform) | client credentials, `scope` ending in `/.default` | `/api/data/v9.2/incidents` | `Bearer` |
//! | Salesforce | `/services/oauth2/token` | JWT bearer (RS256, checked against the connected app's public key); no `expires_in` in the answer | `/services/data/v61.0/sobjects/Case` | `Bearer` |
//! | Zoho Desk | `/oauth/v2/token` (Zoho Accounts) | refresh token; errors answered 200 `{"error":…}` | `/api/v1/tickets` | `Zoho-oauthtoken` |
//! | HubSpot | `/oauth/v1/token` | refresh token; errors `{"status":"BAD_REFRESH_TOKEN",…}` | `/crm/v3/objects/tickets` | `Bearer` |
//! | Zendesk | none: an API token | `Basic` of `agent@…/token:<api token>` ([`ZENDESK_AUTH`]) | `/api/v2/tickets.json` | `Basic` |
//!
//! A refused token gets the CRM's own 401 answer (Salesforce `INVALID_SESSION_ID`, Zoho
//! `INVALID_OAUTH`, HubSpot `INVALID_AUTHENTICATION`, Dynamics `WWW-Authenticate: Bearer
//! error="invalid_token"`). Tokens live [`CrmSettings::token_lifetime`]; every
//! [`CrmSettings::revoke_every`]-th one is revoked early, as an administrator or a password
//! change would, so a client meets both expiry and an unexpected 401. [`Crm::refuse`] makes
//! every token endpoint refuse the client's credentials until told otherwise.
//!
//! Each CRM keeps records unique the way the real API does when set up as earshot's README
//! says: Salesforce upserts by the External ID field `Earshot_Mention_Id__c` (`PATCH
//! …/Case/Earshot_Mention_Id__c/<id>`: 201 created, 200 when it exists), Dynamics creates
//! through the alternate key `earshot_mentionid` with `If-None-Match: *` (412 when it exists),
//! HubSpot refuses a second ticket with the same unique `earshot_mention_id` (409), Zendesk
//! answers a create whose `Idempotency-Key` it has seen with the first answer (header
//! `x-idempotency-lookup: hit`) when the body is the same and with 400 `IdempotentRequestError`
//! when it is not. Zoho Desk
//! has no such mechanism: each create is a ticket, and its ticket search
//! (`GET /api/v1/tickets/search?customField1=cf_earshot_mention_id:<id>`, 200 with `data` or
//! 204) finds the tickets whose custom field holds a value. Records are counted by the
//! delivery's `webhook-id` (the mention's id): a test sees every ticket created twice.
//! [`CrmSettings::delay`] holds every create's answer, so a process killed while delivering
//! leaves requests whose answer it never read.
//!
//! Each record has the id the CRM would give it (a Dataverse GUID, an 18-character Salesforce
//! id, a number), in the create's answer as the API writes it (Dynamics only with `Prefer:
//! return=representation`) and in the answers that find it again (an upsert that updated, a
//! Zoho search). Follow-ups are checked against those ids: a Salesforce `CaseComment` whose
//! `ParentId` is a case, a Dynamics `annotation` bound to `/incidents(<id>)`, a HubSpot note
//! associated with a ticket (type 228), a Zoho comment on `/tickets/<id>/comments`, a Zendesk
//! comment by `PUT /api/v2/tickets/<id>.json`; one naming no record gets the API's own error.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use earshot::shutdown::Shutdown;

/// How a create's record is keyed.
enum Key {
    /// No key: every create is a record.
    None,
    /// The CRM refuses a second record with this key.
    Unique(String),
    /// Every create is a record; the key is found by the CRM's search.
    Searchable(String),
}

/// The CRMs the stand-in serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CrmKind {
    /// Microsoft Dynamics 365 through the Microsoft identity platform.
    Dynamics,
    /// Salesforce with the JWT bearer flow.
    Salesforce,
    /// Zoho Desk through Zoho Accounts.
    Zoho,
    /// HubSpot with an OAuth app's refresh token.
    Hubspot,
    /// Zendesk Support with an API token.
    Zendesk,
}

impl CrmKind {
    /// Every CRM served.
    pub const ALL: [CrmKind; 5] = [
        CrmKind::Dynamics,
        CrmKind::Salesforce,
        CrmKind::Zoho,
        CrmKind::Hubspot,
        CrmKind::Zendesk,
    ];

    /// The CRMs whose clients get OAuth tokens that expire.
    pub const OAUTH: [CrmKind; 4] = [
        CrmKind::Dynamics,
        CrmKind::Salesforce,
        CrmKind::Zoho,
        CrmKind::Hubspot,
    ];

    /// Lower-case name (`"zoho"`), as earshot's payload formats are named.
    pub fn name(self) -> &'static str {
        match self {
            CrmKind::Dynamics => "dynamics",
            CrmKind::Salesforce => "salesforce",
            CrmKind::Zoho => "zoho",
            CrmKind::Hubspot => "hubspot",
            CrmKind::Zendesk => "zendesk",
        }
    }

    /// The token endpoint's path; `None` for Zendesk, whose API token is sent as it is.
    pub fn token_path(self) -> Option<&'static str> {
        match self {
            CrmKind::Dynamics => Some("/contoso-tenant/oauth2/v2.0/token"),
            CrmKind::Salesforce => Some("/services/oauth2/token"),
            CrmKind::Zoho => Some("/oauth/v2/token"),
            CrmKind::Hubspot => Some("/oauth/v1/token"),
            CrmKind::Zendesk => None,
        }
    }

    /// The create API's path.
    pub fn create_path(self) -> &'static str {
        match self {
            CrmKind::Dynamics => "/api/data/v9.2/incidents",
            CrmKind::Salesforce => "/services/data/v61.0/sobjects/Case",
            CrmKind::Zoho => "/api/v1/tickets",
            CrmKind::Hubspot => "/crm/v3/objects/tickets",
            CrmKind::Zendesk => "/api/v2/tickets.json",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            CrmKind::Zoho => "Zoho-oauthtoken",
            CrmKind::Zendesk => "Basic",
            _ => "Bearer",
        }
    }
}

/// The client the stand-in knows: what a CRM administrator would have registered.
pub const CLIENT_ID: &str = "3MVG9earshot-client";
/// The client's secret.
pub const CLIENT_SECRET: &str = "client-s3cret-value";
/// The refresh token issued to the client (Zoho, HubSpot).
pub const REFRESH_TOKEN: &str = "1000.refresh-t0ken-value";
/// The Salesforce integration user (the JWT's `sub`).
pub const SUBJECT: &str = "integration@acme.example";
/// The Dynamics scope (`https://<org>.crm.dynamics.com/.default`).
pub const SCOPE: &str = "https://contoso.crm.dynamics.com/.default";
/// The audience of a Salesforce JWT assertion.
pub const AUDIENCE: &str = "https://login.salesforce.com";
/// What a Zendesk queue's variable holds: the agent's address, `/token:` and an API token,
/// sent in `Authorization: Basic`.
pub const ZENDESK_AUTH: &str = "agent@acme.example/token:6wiIBWbGkBMo1mRDMuVwkw1EPsNkeUj95PIz2akv";

/// How the stand-in behaves.
#[derive(Debug, Clone)]
pub struct CrmSettings {
    /// How long an access token is accepted.
    pub token_lifetime: Duration,
    /// Every n-th token is revoked half way through its life (0: none).
    pub revoke_every: u64,
    /// The PEM public key of the Salesforce connected app (the JWT's signer).
    pub jwt_public_key: String,
    /// How long each create waits before it answers (after the record is made).
    pub delay: Duration,
}

struct Issued {
    crm: CrmKind,
    at: Instant,
    revoked_after: Option<Duration>,
}

/// What the stand-in saw, per CRM.
#[derive(Debug, Default, Clone)]
pub struct CrmCounts {
    /// Tokens issued.
    pub tokens: u64,
    /// Token requests refused.
    pub token_refusals: u64,
    /// Creates answered 401 (expired, revoked or unknown token).
    pub unauthorized: u64,
    /// Creates refused for their content (400).
    pub bad_requests: u64,
    /// Tickets created, by mention id, with how many times each was created.
    pub tickets: BTreeMap<String, u64>,
    /// Requests for a record that existed already (an upsert that updated, a 409, a 412):
    /// retries the CRM's uniqueness (or a search) kept from becoming second tickets.
    pub repeats: u64,
    /// Searches for a record (Zoho).
    pub searches: u64,
    /// Follow-ups (comments, notes) by mention id, with the ticket each was added to.
    pub followups: BTreeMap<String, Vec<String>>,
    /// The ticket id of each mention that created one.
    pub ticket_ids: BTreeMap<String, String>,
    /// Follow-ups refused because they named no ticket.
    pub orphans: u64,
    /// Notes that a mention's post was deleted (`webhook-id` `<mention id>.deleted`), by
    /// mention id, with the ticket each was added to.
    pub deletions: BTreeMap<String, String>,
}

impl CrmCounts {
    /// Mentions created more than once.
    pub fn duplicates(&self) -> u64 {
        self.tickets.values().map(|n| n - 1).sum()
    }

    /// The mention ids delivered: as tickets or as follow-ups.
    pub fn ids(&self) -> BTreeSet<String> {
        self.tickets
            .keys()
            .chain(self.followups.keys())
            .cloned()
            .collect()
    }

    /// Follow-ups added more than once.
    pub fn followup_duplicates(&self) -> u64 {
        self.followups.values().map(|t| t.len() as u64 - 1).sum()
    }

    /// The mentions each ticket holds (its own first, then its follow-ups), by the mention
    /// that opened it.
    pub fn cases(&self) -> BTreeMap<String, BTreeSet<String>> {
        let opener: HashMap<&String, &String> =
            self.ticket_ids.iter().map(|(m, t)| (t, m)).collect();
        let mut out: BTreeMap<String, BTreeSet<String>> = self
            .ticket_ids
            .keys()
            .map(|m| (m.clone(), BTreeSet::from([m.clone()])))
            .collect();
        for (mention, tickets) in &self.followups {
            for t in tickets {
                if let Some(first) = opener.get(t) {
                    out.entry((*first).clone())
                        .or_default()
                        .insert(mention.clone());
                }
            }
        }
        out
    }
}

struct Inner {
    settings: CrmSettings,
    issued: Mutex<HashMap<String, Issued>>,
    counts: Mutex<BTreeMap<CrmKind, CrmCounts>>,
    serial: AtomicU64,
    refusing: AtomicBool,
    /// The unique keys of records made (Salesforce's External ID, Dynamics' alternate key,
    /// HubSpot's unique property, Zoho's searchable field), with the record's id.
    keys: Mutex<HashMap<(CrmKind, String), String>>,
    /// The record ids made.
    records: Mutex<std::collections::HashSet<(CrmKind, String)>>,
    /// Secrets seen in a place they must not be (a URL query).
    leaks: AtomicU64,
    /// Zendesk's idempotency keys: the body first sent with each and the ticket it made.
    idempotency: Mutex<HashMap<String, (Bytes, String)>>,
}

/// The stand-in: every CRM's token endpoint and create API on one loopback port.
#[derive(Clone)]
pub struct Crm {
    inner: Arc<Inner>,
}

impl Crm {
    /// A stand-in with `settings`.
    pub fn new(settings: CrmSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                issued: Mutex::new(HashMap::new()),
                counts: Mutex::new(BTreeMap::new()),
                serial: AtomicU64::new(0),
                refusing: AtomicBool::new(false),
                keys: Mutex::new(HashMap::new()),
                records: Mutex::new(std::collections::HashSet::new()),
                leaks: AtomicU64::new(0),
                idempotency: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// While `on`, every token endpoint refuses the client's credentials, as after a secret
    /// was rotated or the app's consent withdrawn.
    pub fn refuse(&self, on: bool) {
        self.inner.refusing.store(on, Ordering::SeqCst);
    }

    /// What was seen at `crm`.
    pub fn counts(&self, crm: CrmKind) -> CrmCounts {
        lock(&self.inner.counts)
            .get(&crm)
            .cloned()
            .unwrap_or_default()
    }

    /// Deletes record `ticket` of `crm`, as an agent deleting or merging away a ticket would:
    /// follow-ups naming it get the API's 404 from now on.
    pub fn forget(&self, crm: CrmKind, ticket: &str) {
        lock(&self.inner.records).remove(&(crm, ticket.to_string()));
    }

    /// Requests that carried a secret in their URL.
    pub fn leaks(&self) -> u64 {
        self.inner.leaks.load(Ordering::SeqCst)
    }

    /// Serves on 127.0.0.1:`port` (0: any) until `shutdown`.
    pub async fn start(&self, port: u16, mut shutdown: Shutdown) -> std::io::Result<SocketAddr> {
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(microsoft_token))
            .route("/services/oauth2/token", post(salesforce_token))
            .route("/oauth/v2/token", post(zoho_token))
            .route("/oauth/v1/token", post(hubspot_token))
            .route(CrmKind::Zendesk.create_path(), post(zendesk_create))
            .route(
                "/api/v2/tickets/{ticket}",
                axum::routing::put(zendesk_comment),
            )
            .route(CrmKind::Dynamics.create_path(), post(dynamics_create))
            .route(
                "/api/data/v9.2/{keyed}",
                axum::routing::patch(dynamics_upsert),
            )
            .route(CrmKind::Salesforce.create_path(), post(salesforce_create))
            .route(
                "/services/data/v61.0/sobjects/Case/{field}/{key}",
                axum::routing::patch(salesforce_upsert),
            )
            .route(CrmKind::Zoho.create_path(), post(zoho_create))
            .route("/api/v1/tickets/search", axum::routing::get(zoho_search))
            .route(CrmKind::Hubspot.create_path(), post(hubspot_create))
            .route("/api/data/v9.2/annotations", post(dynamics_note))
            .route(
                "/services/data/v61.0/sobjects/CaseComment",
                post(salesforce_comment),
            )
            .route("/api/v1/tickets/{ticket}/comments", post(zoho_comment))
            .route("/crm/v3/objects/notes", post(hubspot_note))
            .with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.recv().await })
                .await;
        });
        Ok(addr)
    }

    fn count(&self, crm: CrmKind, f: impl FnOnce(&mut CrmCounts)) {
        f(lock(&self.inner.counts).entry(crm).or_default());
    }

    /// Issues a token for `crm`.
    fn issue(&self, crm: CrmKind) -> String {
        let n = self.inner.serial.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("00D{n:06}!{}", fastrand::u64(..));
        let every = self.inner.settings.revoke_every;
        let revoked_after =
            (every > 0 && n.is_multiple_of(every)).then(|| self.inner.settings.token_lifetime / 2);
        lock(&self.inner.issued).insert(
            token.clone(),
            Issued {
                crm,
                at: Instant::now(),
                revoked_after,
            },
        );
        self.count(crm, |c| c.tokens += 1);
        token
    }

    /// Whether `headers` carry a live token of `crm`, with `crm`'s prefix.
    fn authorized(&self, crm: CrmKind, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some(token) = value
            .strip_prefix(crm.prefix())
            .and_then(|t| t.strip_prefix(' '))
        else {
            return false;
        };
        if crm == CrmKind::Zendesk {
            use base64::Engine as _;
            return token == base64::engine::general_purpose::STANDARD.encode(ZENDESK_AUTH);
        }
        let issued = lock(&self.inner.issued);
        let Some(i) = issued.get(token) else {
            return false;
        };
        let age = i.at.elapsed();
        i.crm == crm
            && age < self.inner.settings.token_lifetime
            && i.revoked_after.is_none_or(|r| age < r)
    }

    fn token_lifetime_s(&self) -> u64 {
        self.inner.settings.token_lifetime.as_secs().max(1)
    }

    fn refusing(&self) -> bool {
        self.inner.refusing.load(Ordering::SeqCst)
    }

    /// Checks a form-encoded token request: its content type, no secret in the URL, and the
    /// fields.
    fn form(&self, headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> Form {
        if query.is_some_and(|q| q.contains("secret") || q.contains("token")) {
            self.inner.leaks.fetch_add(1, Ordering::SeqCst);
        }
        let form_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        Form {
            form_type,
            fields: url::form_urlencoded::parse(body).into_owned().collect(),
        }
    }

    /// The create every CRM shares: a live token, a JSON body with `required`; a record
    /// keyed by `key` (when the CRM keeps one unique) is made once, a repeat answered by
    /// `exists` with the record's id; each record made is counted by `webhook-id`, and
    /// answered by `created` with its id.
    #[allow(clippy::too_many_arguments)]
    async fn create(
        &self,
        crm: CrmKind,
        headers: &HeaderMap,
        body: &[u8],
        required: &str,
        key: Key,
        unauthorized: impl FnOnce() -> Response,
        exists: impl FnOnce(&str) -> Response,
        created: impl FnOnce(&str) -> Response,
    ) -> Response {
        let (_, id) = match self.checked(crm, headers, body, &[required], unauthorized) {
            Ok(ok) => ok,
            Err(refused) => return *refused,
        };
        let n = self.inner.serial.fetch_add(1, Ordering::SeqCst);
        let record = crm.record_id(n);
        let existing = match key {
            Key::Unique(k) => {
                let mut keys = lock(&self.inner.keys);
                match keys.get(&(crm, k.clone())) {
                    Some(r) => Some(r.clone()),
                    None => {
                        keys.insert((crm, k), record.clone());
                        None
                    }
                }
            }
            Key::Searchable(k) => {
                lock(&self.inner.keys).insert((crm, k), record.clone());
                None
            }
            Key::None => None,
        };
        match &existing {
            None => {
                lock(&self.inner.records).insert((crm, record.clone()));
                self.count(crm, |c| {
                    *c.tickets.entry(id.clone()).or_default() += 1;
                    c.ticket_ids.insert(id, record.clone());
                });
            }
            Some(_) => self.count(crm, |c| c.repeats += 1),
        }
        // The record is made; the answer takes a while, as a CRM's does.
        tokio::time::sleep(self.inner.settings.delay).await;
        match existing {
            None => created(&record),
            Some(r) => exists(&r),
        }
    }

    /// What every write checks: a live token (else `unauthorized`), a JSON content type and
    /// body, a `webhook-id`, and non-empty strings at `required`. The body and the id.
    fn checked(
        &self,
        crm: CrmKind,
        headers: &HeaderMap,
        body: &[u8],
        required: &[&str],
        unauthorized: impl FnOnce() -> Response,
    ) -> Result<(Value, String), Box<Response>> {
        if !self.authorized(crm, headers) {
            self.count(crm, |c| c.unauthorized += 1);
            return Err(Box::new(unauthorized()));
        }
        let json_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let id = headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (Some(doc), Some(id), true) = (parsed, id, json_type) else {
            self.count(crm, |c| c.bad_requests += 1);
            return Err(Box::new(
                (StatusCode::BAD_REQUEST, "malformed request").into_response(),
            ));
        };
        for field in required {
            if doc
                .pointer(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                self.count(crm, |c| c.bad_requests += 1);
                return Err(Box::new(
                    (
                        StatusCode::BAD_REQUEST,
                        format!("required field missing: {field}"),
                    )
                        .into_response(),
                ));
            }
        }
        Ok((doc, id))
    }

    /// A comment on the record its path names (Zoho, Zendesk): the write is checked as every
    /// write is (`request`: headers, body and its required field), then made a follow-up.
    async fn comment_on(
        &self,
        crm: CrmKind,
        ticket: &str,
        request: (&HeaderMap, &[u8], &str),
        unauthorized: impl FnOnce() -> Response,
        orphan: impl FnOnce() -> Response,
        added: impl FnOnce(&str) -> Response,
    ) -> Response {
        let (headers, body, required) = request;
        let (_, id) = match self.checked(crm, headers, body, &[required], unauthorized) {
            Ok(ok) => ok,
            Err(refused) => return *refused,
        };
        self.follow_up(crm, id, ticket, orphan, added).await
    }

    /// A follow-up of the mention `id` on record `ticket`: counted when the record exists
    /// (then `added`), else `orphan`.
    async fn follow_up(
        &self,
        crm: CrmKind,
        id: String,
        ticket: &str,
        orphan: impl FnOnce() -> Response,
        added: impl FnOnce(&str) -> Response,
    ) -> Response {
        if !lock(&self.inner.records).contains(&(crm, ticket.to_string())) {
            self.count(crm, |c| c.orphans += 1);
            return orphan();
        }
        let n = self.inner.serial.fetch_add(1, Ordering::SeqCst);
        self.count(crm, |c| match id.strip_suffix(".deleted") {
            Some(mention) => {
                c.deletions.insert(mention.to_string(), ticket.to_string());
            }
            None => c.followups.entry(id).or_default().push(ticket.to_string()),
        });
        tokio::time::sleep(self.inner.settings.delay).await;
        added(&format!("{n}"))
    }
}

impl CrmKind {
    /// The id the CRM gives its `n`-th record.
    fn record_id(self, n: u64) -> String {
        match self {
            CrmKind::Dynamics => format!("{n:08x}-0000-4000-8000-00000000e5e0"),
            CrmKind::Salesforce => format!("500{n:015}"),
            CrmKind::Zoho => format!("1892{n:012}"),
            CrmKind::Hubspot => format!("{}", 9_000_000 + n),
            CrmKind::Zendesk => format!("{}", 35_000 + n),
        }
    }
}

struct Form {
    form_type: bool,
    fields: HashMap<String, String>,
}

impl Form {
    fn has(&self, name: &str, value: &str) -> bool {
        self.fields.get(name).is_some_and(|v| v == value)
    }

    /// A refresh-token grant with the client's refresh token, id and secret.
    fn refresh_grant(&self) -> bool {
        self.form_type
            && self.has("grant_type", "refresh_token")
            && self.has("refresh_token", REFRESH_TOKEN)
            && self.has("client_id", CLIENT_ID)
            && self.has("client_secret", CLIENT_SECRET)
    }
}

fn json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn query(uri: &axum::http::Uri) -> Option<String> {
    uri.query().map(str::to_string)
}

/// Microsoft identity platform: client credentials with a `.default` scope; 401
/// `invalid_client` for a wrong secret, 400 `invalid_scope` for a scope without `.default`.
async fn microsoft_token(
    State(crm): State<Crm>,
    Path(_tenant): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = crm.form(&headers, query(&uri).as_deref(), &body);
    let error = |status: StatusCode, error: &str, code: &str| {
        crm.count(CrmKind::Dynamics, |c| c.token_refusals += 1);
        json(
            status,
            json!({"error": error, "error_description": format!("{code}: refused"), "error_codes": [7000215]}),
        )
    };
    if !f.form_type || !f.has("grant_type", "client_credentials") {
        return error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003",
        );
    }
    if crm.refusing() || !f.has("client_id", CLIENT_ID) || !f.has("client_secret", CLIENT_SECRET) {
        return error(StatusCode::UNAUTHORIZED, "invalid_client", "AADSTS7000215");
    }
    if !f.has("scope", SCOPE) {
        return error(StatusCode::BAD_REQUEST, "invalid_scope", "AADSTS1002012");
    }
    let token = crm.issue(CrmKind::Dynamics);
    json(
        StatusCode::OK,
        json!({"token_type": "Bearer", "expires_in": crm.token_lifetime_s(), "ext_expires_in": crm.token_lifetime_s(), "access_token": token}),
    )
}

/// Salesforce: the JWT bearer grant; the assertion must be RS256 from the connected app's key,
/// `iss` its consumer key, `sub` the user, `aud` the login host, `exp` at most 3 minutes on.
/// The answer has no `expires_in`: the session lives as the org's policy says.
async fn salesforce_token(
    State(crm): State<Crm>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = crm.form(&headers, query(&uri).as_deref(), &body);
    let refuse = |error: &str, description: &str| {
        crm.count(CrmKind::Salesforce, |c| c.token_refusals += 1);
        json(
            StatusCode::BAD_REQUEST,
            json!({"error": error, "error_description": description}),
        )
    };
    if !f.form_type || !f.has("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return refuse("unsupported_grant_type", "grant type not supported");
    }
    let Some(assertion) = f.fields.get("assertion") else {
        return refuse("invalid_request", "assertion required");
    };
    if crm.refusing() {
        return refuse("invalid_client", "invalid client credentials");
    }
    let Ok(key) =
        jsonwebtoken::DecodingKey::from_rsa_pem(crm.inner.settings.jwt_public_key.as_bytes())
    else {
        return refuse("invalid_client", "no certificate for the connected app");
    };
    let mut check = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    check.set_audience(&[AUDIENCE]);
    check.set_issuer(&[CLIENT_ID]);
    check.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let claims = match jsonwebtoken::decode::<Value>(assertion, &key, &check) {
        Ok(d) => d.claims,
        Err(_) => return refuse("invalid_grant", "invalid assertion"),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    if claims["sub"] != SUBJECT || claims["exp"].as_u64().is_none_or(|e| e > now + 300) {
        return refuse("invalid_grant", "user hasn't approved this consumer");
    }
    let token = crm.issue(CrmKind::Salesforce);
    json(
        StatusCode::OK,
        json!({"access_token": token, "scope": "api", "instance_url": "https://acme.my.salesforce.com",
            "id": "https://login.salesforce.com/id/00D/005", "token_type": "Bearer", "issued_at": now.to_string()}),
    )
}

/// Zoho Accounts: the refresh-token grant. Zoho answers a refused request with 200 and an
/// `error` field.
async fn zoho_token(
    State(crm): State<Crm>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = crm.form(&headers, query(&uri).as_deref(), &body);
    if crm.refusing() || !f.refresh_grant() {
        crm.count(CrmKind::Zoho, |c| c.token_refusals += 1);
        return json(StatusCode::OK, json!({"error": "invalid_code"}));
    }
    let token = crm.issue(CrmKind::Zoho);
    json(
        StatusCode::OK,
        json!({"access_token": token, "api_domain": "https://www.zohoapis.com", "token_type": "Bearer", "expires_in": crm.token_lifetime_s()}),
    )
}

/// HubSpot: the refresh-token grant; a refusal is 400 with HubSpot's `status` and `message`.
async fn hubspot_token(
    State(crm): State<Crm>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = crm.form(&headers, query(&uri).as_deref(), &body);
    if crm.refusing() || !f.refresh_grant() {
        crm.count(CrmKind::Hubspot, |c| c.token_refusals += 1);
        return json(
            StatusCode::BAD_REQUEST,
            json!({"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token", "correlationId": "0"}),
        );
    }
    let token = crm.issue(CrmKind::Hubspot);
    json(
        StatusCode::OK,
        json!({"token_type": "bearer", "refresh_token": REFRESH_TOKEN, "access_token": token, "expires_in": crm.token_lifetime_s()}),
    )
}

fn dynamics_unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Bearer error=\"invalid_token\", error_description=\"The access token expired\"",
        )],
    )
        .into_response()
}

/// A created record: 204 with its `OData-EntityId`, or 201 with the record when the request
/// said `Prefer: return=representation`.
fn dynamics_created(id: &str, headers: &HeaderMap) -> Response {
    let entity = format!("https://contoso.crm.dynamics.com/api/data/v9.2/incidents({id})");
    let represent = headers
        .get("Prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("return=representation"));
    if represent {
        (
            StatusCode::CREATED,
            [
                ("OData-EntityId", entity),
                (header::CONTENT_TYPE.as_str(), "application/json; odata.metadata=minimal".into()),
            ],
            json!({"@odata.context": "https://contoso.crm.dynamics.com/api/data/v9.2/$metadata#incidents/$entity", "incidentid": id, "statecode": 0}).to_string(),
        )
            .into_response()
    } else {
        (StatusCode::NO_CONTENT, [("OData-EntityId", entity)]).into_response()
    }
}

async fn dynamics_create(State(crm): State<Crm>, headers: HeaderMap, body: Bytes) -> Response {
    crm.create(
        CrmKind::Dynamics,
        &headers,
        &body,
        "/title",
        Key::None,
        dynamics_unauthorized,
        |_| StatusCode::NO_CONTENT.into_response(),
        |id| dynamics_created(id, &headers),
    )
    .await
}

/// `POST annotations`: a note bound to a case by `objectid_incident@odata.bind`
/// (`/incidents(<id>)`); 404 when the case does not exist.
async fn dynamics_note(State(crm): State<Crm>, headers: HeaderMap, body: Bytes) -> Response {
    let (doc, id) = match crm.checked(
        CrmKind::Dynamics,
        &headers,
        &body,
        &["/notetext", "/subject", "/objectid_incident@odata.bind"],
        dynamics_unauthorized,
    ) {
        Ok(ok) => ok,
        Err(refused) => return *refused,
    };
    let bind = doc["objectid_incident@odata.bind"].as_str().unwrap_or("");
    let ticket = bind
        .strip_prefix("/incidents(")
        .and_then(|b| b.strip_suffix(')'))
        .unwrap_or("");
    crm.follow_up(
        CrmKind::Dynamics,
        id,
        ticket,
        || {
            json(
                StatusCode::NOT_FOUND,
                json!({"error": {"code": "0x80040217", "message": format!("incident With Id = {ticket} Does Not Exist")}}),
            )
        },
        |n| {
            (
                StatusCode::NO_CONTENT,
                [(
                    "OData-EntityId",
                    format!("https://contoso.crm.dynamics.com/api/data/v9.2/annotations({n})"),
                )],
            )
                .into_response()
        },
    )
    .await
}

/// `PATCH incidents(earshot_mentionid='<id>')` with `If-None-Match: *`: create-only through
/// the alternate key; 412 when a case with that key exists.
async fn dynamics_upsert(
    State(crm): State<Crm>,
    Path(keyed): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = keyed
        .strip_prefix("incidents(earshot_mentionid='")
        .and_then(|k| k.strip_suffix("')"))
        .filter(|k| !k.is_empty() && !k.contains('\''));
    let create_only = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == b"*");
    let (Some(key), true) = (key, create_only) else {
        crm.count(CrmKind::Dynamics, |c| c.bad_requests += 1);
        return json(
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": "0x80060888", "message": "Resource not found for the segment, or an upsert without If-None-Match"}}),
        );
    };
    crm.create(
        CrmKind::Dynamics,
        &headers,
        &body,
        "/title",
        Key::Unique(key.to_string()),
        dynamics_unauthorized,
        |_| {
            json(
                StatusCode::PRECONDITION_FAILED,
                json!({"error": {"code": "0x80060882", "message": "A record with matching key values already exists."}}),
            )
        },
        |id| dynamics_created(id, &headers),
    )
    .await
}

fn salesforce_unauthorized() -> Response {
    json(
        StatusCode::UNAUTHORIZED,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]),
    )
}

async fn salesforce_create(State(crm): State<Crm>, headers: HeaderMap, body: Bytes) -> Response {
    crm.create(
        CrmKind::Salesforce,
        &headers,
        &body,
        "/Subject",
        Key::None,
        salesforce_unauthorized,
        |_| StatusCode::OK.into_response(),
        |id| {
            json(
                StatusCode::CREATED,
                json!({"id": id, "success": true, "errors": []}),
            )
        },
    )
    .await
}

/// `POST sobjects/CaseComment`: `ParentId` must be a case; 400
/// `INVALID_CROSS_REFERENCE_KEY` otherwise.
async fn salesforce_comment(State(crm): State<Crm>, headers: HeaderMap, body: Bytes) -> Response {
    let (doc, id) = match crm.checked(
        CrmKind::Salesforce,
        &headers,
        &body,
        &["/ParentId", "/CommentBody"],
        salesforce_unauthorized,
    ) {
        Ok(ok) => ok,
        Err(refused) => return *refused,
    };
    let ticket = doc["ParentId"].as_str().unwrap_or("").to_string();
    crm.follow_up(
        CrmKind::Salesforce,
        id,
        &ticket,
        || {
            json(
                StatusCode::BAD_REQUEST,
                json!([{"message": "invalid cross reference id", "errorCode": "INVALID_CROSS_REFERENCE_KEY", "fields": ["ParentId"]}]),
            )
        },
        |n| json(StatusCode::CREATED, json!({"id": format!("00a{n:015}"), "success": true, "errors": []})),
    )
    .await
}

/// `PATCH …/Case/Earshot_Mention_Id__c/<id>`: upsert by the External ID field; 201 when it
/// creates, 200 when the case exists.
async fn salesforce_upsert(
    State(crm): State<Crm>,
    Path((field, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if field != "Earshot_Mention_Id__c" {
        crm.count(CrmKind::Salesforce, |c| c.bad_requests += 1);
        return json(
            StatusCode::NOT_FOUND,
            json!([{"message": format!("Provided external ID field does not exist or is not accessible: {field}"), "errorCode": "NOT_FOUND"}]),
        );
    }
    crm.create(
        CrmKind::Salesforce,
        &headers,
        &body,
        "/Subject",
        Key::Unique(key),
        salesforce_unauthorized,
        |id| {
            json(
                StatusCode::OK,
                json!({"id": id, "success": true, "errors": [], "created": false}),
            )
        },
        |id| {
            json(
                StatusCode::CREATED,
                json!({"id": id, "success": true, "errors": [], "created": true}),
            )
        },
    )
    .await
}

fn zoho_unauthorized() -> Response {
    json(
        StatusCode::UNAUTHORIZED,
        json!({"errorCode": "INVALID_OAUTH", "message": "The OAuth Token you provided is invalid."}),
    )
}

/// A ticket create; the custom field `cf_earshot_mention_id`, when sent, is searchable.
async fn zoho_create(State(crm): State<Crm>, headers: HeaderMap, body: Bytes) -> Response {
    if headers.get("orgId").is_none() {
        crm.count(CrmKind::Zoho, |c| c.bad_requests += 1);
        return json(
            StatusCode::BAD_REQUEST,
            json!({"errorCode": "INVALID_DATA", "message": "orgId header is required"}),
        );
    }
    let key = serde_json::from_slice::<Value>(&body).ok().and_then(|b| {
        b.pointer("/cf/cf_earshot_mention_id")?
            .as_str()
            .map(str::to_string)
    });
    crm.create(
        CrmKind::Zoho,
        &headers,
        &body,
        "/subject",
        key.map_or(Key::None, Key::Searchable),
        zoho_unauthorized,
        |_| StatusCode::OK.into_response(),
        |id| {
            json(
                StatusCode::OK,
                json!({"id": id, "ticketNumber": id.trim_start_matches("1892").trim_start_matches('0')}),
            )
        },
    )
    .await
}

/// `POST /api/v1/tickets/<id>/comments`: `orgId`, `content`; 404 for an unknown ticket.
async fn zoho_comment(
    State(crm): State<Crm>,
    Path(ticket): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers.get("orgId").is_none() {
        crm.count(CrmKind::Zoho, |c| c.bad_requests += 1);
        return json(
            StatusCode::BAD_REQUEST,
            json!({"errorCode": "INVALID_DATA", "message": "orgId header is required"}),
        );
    }
    crm.comment_on(
        CrmKind::Zoho,
        &ticket,
        (&headers, &body, "/content"),
        zoho_unauthorized,
        || {
            json(
                StatusCode::NOT_FOUND,
                json!({"errorCode": "URL_NOT_FOUND", "message": "The URL you requested could not be found"}),
            )
        },
        |n| json(StatusCode::OK, json!({"id": n, "isPublic": false, "contentType": "plainText"})),
    )
    .await
}

/// `GET /api/v1/tickets/search?customField1=<api name>:<value>`: 200 with the tickets found
/// in `data`, 204 when there are none.
async fn zoho_search(State(crm): State<Crm>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    if !crm.authorized(CrmKind::Zoho, &headers) {
        crm.count(CrmKind::Zoho, |c| c.unauthorized += 1);
        return zoho_unauthorized();
    }
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let Some(value) = query
        .get("customField1")
        .and_then(|f| f.strip_prefix("cf_earshot_mention_id:"))
    else {
        crm.count(CrmKind::Zoho, |c| c.bad_requests += 1);
        return json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"errorCode": "UNPROCESSABLE_ENTITY", "message": "customField1 is apiName:value of a ticket custom field"}),
        );
    };
    crm.count(CrmKind::Zoho, |c| c.searches += 1);
    let found = lock(&crm.inner.keys)
        .get(&(CrmKind::Zoho, value.to_string()))
        .cloned();
    if let Some(ticket) = found {
        crm.count(CrmKind::Zoho, |c| c.repeats += 1);
        json(
            StatusCode::OK,
            json!({"data": [{"id": ticket, "cf": {"cf_earshot_mention_id": value}}], "count": 1}),
        )
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

/// A ticket create; the `earshot_mention_id` property has unique values: a second ticket with
/// the same value is refused with 409.
async fn hubspot_create(State(crm): State<Crm>, headers: HeaderMap, body: Bytes) -> Response {
    let key = serde_json::from_slice::<Value>(&body).ok().and_then(|b| {
        b.pointer("/properties/earshot_mention_id")?
            .as_str()
            .map(str::to_string)
    });
    crm.create(
        CrmKind::Hubspot,
        &headers,
        &body,
        "/properties/subject",
        key.map_or(Key::None, Key::Unique),
        hubspot_unauthorized,
        |_| {
            json(
                StatusCode::CONFLICT,
                json!({"status": "error", "message": "A ticket with this earshot_mention_id already exists", "category": "CONFLICT"}),
            )
        },
        |id| json(StatusCode::CREATED, json!({"id": id, "properties": {}})),
    )
    .await
}

fn hubspot_unauthorized() -> Response {
    json(
        StatusCode::UNAUTHORIZED,
        json!({"status": "error", "message": "Authentication credentials not found.", "category": "INVALID_AUTHENTICATION"}),
    )
}

/// `POST /crm/v3/objects/notes`: `hs_timestamp`, `hs_note_body`, and one association of type
/// 228 (note to ticket) to a ticket that exists; 400 otherwise.
async fn hubspot_note(State(crm): State<Crm>, headers: HeaderMap, body: Bytes) -> Response {
    let (doc, id) = match crm.checked(
        CrmKind::Hubspot,
        &headers,
        &body,
        &[
            "/properties/hs_timestamp",
            "/properties/hs_note_body",
            "/associations/0/to/id",
        ],
        hubspot_unauthorized,
    ) {
        Ok(ok) => ok,
        Err(refused) => return *refused,
    };
    let typed = doc.pointer("/associations/0/types/0").is_some_and(|t| {
        t["associationCategory"] == "HUBSPOT_DEFINED" && t["associationTypeId"] == 228
    });
    let ticket = doc
        .pointer("/associations/0/to/id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !typed {
        crm.count(CrmKind::Hubspot, |c| c.bad_requests += 1);
        return json(
            StatusCode::BAD_REQUEST,
            json!({"status": "error", "message": "association type 228 (note to ticket) is required", "category": "VALIDATION_ERROR"}),
        );
    }
    crm.follow_up(
        CrmKind::Hubspot,
        id,
        &ticket,
        || {
            json(
                StatusCode::BAD_REQUEST,
                json!({"status": "error", "message": format!("One or more associations are invalid: ticket {ticket} not found"), "category": "VALIDATION_ERROR"}),
            )
        },
        |n| json(StatusCode::CREATED, json!({"id": n, "properties": {}})),
    )
    .await
}

fn zendesk_unauthorized() -> Response {
    json(
        StatusCode::UNAUTHORIZED,
        json!({"error": "Couldn't authenticate you"}),
    )
}

/// `POST /api/v2/tickets.json`: `ticket.comment.body` required. With an `Idempotency-Key`
/// seen before (Zendesk keeps them two hours; this run is shorter): the same body gets the
/// first answer again, with `x-idempotency-lookup: hit`; another body is refused with 400
/// `IdempotentRequestError`, as Zendesk refuses a key reused with other parameters.
async fn zendesk_create(State(crm): State<Crm>, headers: HeaderMap, body: Bytes) -> Response {
    let (_, id) = match crm.checked(
        CrmKind::Zendesk,
        &headers,
        &body,
        &["/ticket/comment/body"],
        zendesk_unauthorized,
    ) {
        Ok(ok) => ok,
        Err(refused) => return *refused,
    };
    let answer = |ticket: &str, lookup: &str| {
        let mut r = json(
            StatusCode::CREATED,
            json!({"ticket": {"id": ticket.parse::<u64>().unwrap_or(0), "status": "new"}}),
        );
        if let Ok(v) = header::HeaderValue::from_str(lookup) {
            r.headers_mut().insert("x-idempotency-lookup", v);
        }
        r
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let n = crm.inner.serial.fetch_add(1, Ordering::SeqCst);
    let record = CrmKind::Zendesk.record_id(n);
    // What the key says, decided under the lock and acted on after it.
    let seen: Option<Result<String, ()>> = key.as_ref().and_then(|key| {
        let mut keys = lock(&crm.inner.idempotency);
        match keys.get(key) {
            Some((first, ticket)) if *first == body => Some(Ok(ticket.clone())),
            Some(_) => Some(Err(())),
            None => {
                keys.insert(key.clone(), (body.clone(), record.clone()));
                None
            }
        }
    });
    match seen {
        Some(Ok(ticket)) => {
            crm.count(CrmKind::Zendesk, |c| c.repeats += 1);
            tokio::time::sleep(crm.inner.settings.delay).await;
            return answer(&ticket, "hit");
        }
        Some(Err(())) => {
            crm.count(CrmKind::Zendesk, |c| c.bad_requests += 1);
            return json(
                StatusCode::BAD_REQUEST,
                json!({"error": "IdempotentRequestError", "description": "Request parameters do not match the original request with this idempotency key"}),
            );
        }
        None => {}
    }
    lock(&crm.inner.records).insert((CrmKind::Zendesk, record.clone()));
    crm.count(CrmKind::Zendesk, |c| {
        *c.tickets.entry(id.clone()).or_default() += 1;
        c.ticket_ids.insert(id, record.clone());
    });
    tokio::time::sleep(crm.inner.settings.delay).await;
    answer(&record, if key.is_some() { "miss" } else { "" })
}

/// `PUT /api/v2/tickets/<id>.json` with a comment: a follow-up (or a deletion note) on the
/// ticket; 404 `RecordNotFound` when there is no such ticket.
async fn zendesk_comment(
    State(crm): State<Crm>,
    Path(ticket): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(ticket) = ticket.strip_suffix(".json") else {
        crm.count(CrmKind::Zendesk, |c| c.bad_requests += 1);
        return json(
            StatusCode::NOT_FOUND,
            json!({"error": "InvalidEndpoint", "description": "Not found"}),
        );
    };
    let ticket = ticket.to_string();
    crm.comment_on(
        CrmKind::Zendesk,
        &ticket,
        (&headers, &body, "/ticket/comment/body"),
        zendesk_unauthorized,
        || json(StatusCode::NOT_FOUND, json!({"error": "RecordNotFound", "description": "Not found"})),
        |n| {
            json(
                StatusCode::OK,
                json!({"ticket": {"id": ticket.parse::<u64>().unwrap_or(0)}, "audit": {"id": n.parse::<u64>().unwrap_or(0)}}),
            )
        },
    )
    .await
}
