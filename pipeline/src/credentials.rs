//! The credentials a webhook queue sends to a CRM API (or a source to an OAuth API such as
//! Reddit's), and their renewal.
//!
//! CRM APIs take short-lived OAuth 2.0 access tokens: Salesforce and Dynamics 365 hand out
//! tokens that live one to two hours, Zoho Desk and HubSpot OAuth about one hour. A token read
//! once at start would make every delivery after that answer 401. A queue's `auth` therefore
//! names one of four ways to get its `Authorization` header ([`AuthKind`]):
//!
//! - `static`: a token (or `user:password`) from an environment variable, as it is;
//! - `client_credentials`: the OAuth 2.0 client-credentials grant (Dynamics 365 through the
//!   Microsoft identity platform, Salesforce's client-credentials flow);
//! - `refresh_token`: the refresh-token grant (Zoho Desk, HubSpot OAuth apps);
//! - `jwt_bearer`: the JWT bearer grant (RFC 7523) with an RS256 assertion signed by the
//!   connected app's key (Salesforce).
//!
//! A renewed token is cached and used until `renew_before` ahead of its expiry; the renewal
//! that replaces it happens on the next delivery after that, one request at a time per queue
//! (deliveries that need the token meanwhile wait for that one request, never send their
//! own). An endpoint that answers 401 makes the token stale: [`Credentials::stale`] marks it
//! so, the next [`Credentials::header`] renews it, and the delivery is sent once more
//! ([`super::webhook`]); only if the fresh token is refused too are the credentials refused.
//!
//! Secrets come only from the environment and are never shown: not in a log line, an error,
//! a metric or `Debug` output. What a token endpoint says when it refuses is reduced to its
//! HTTP status and its OAuth `error` code (`invalid_grant`), never its description, which may
//! quote what was sent.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use serde::Deserialize;

use crate::metrics::TOKEN_RENEWALS;
use crate::tls::error_chain;

/// How a static `Authorization` header is built from the variable's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthScheme {
    /// `Authorization: Bearer <token>` (Salesforce, HubSpot, Dynamics, Zoho's `Zoho-oauthtoken`
    /// is written out in full by `header`).
    Bearer,
    /// `Authorization: Basic base64(<value>)`, the variable holding `user:password` (Zendesk's
    /// `email/token:api_token`).
    Basic,
    /// `Authorization: <value>` as it is.
    Header,
}

/// A credential that cannot be sent in an HTTP header (a control character, say). The value
/// itself is never part of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid header value")]
pub struct InvalidAuthHeader;

/// Builds the `Authorization` header value of static credentials from the variable's value.
pub fn auth_header(scheme: AuthScheme, value: &str) -> Result<HeaderValue, InvalidAuthHeader> {
    use base64::Engine as _;
    let text = match scheme {
        AuthScheme::Bearer => format!("Bearer {}", value.trim()),
        AuthScheme::Basic => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(value.trim())
        ),
        AuthScheme::Header => value.trim().to_string(),
    };
    let mut v = HeaderValue::from_str(&text).map_err(|_| InvalidAuthHeader)?;
    v.set_sensitive(true);
    Ok(v)
}

/// How a queue gets its `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// A value from the environment, sent as it is (`scheme` says how).
    #[default]
    Static,
    /// OAuth 2.0 client-credentials grant.
    ClientCredentials,
    /// OAuth 2.0 refresh-token grant.
    RefreshToken,
    /// OAuth 2.0 JWT bearer grant (RFC 7523), RS256.
    JwtBearer,
}

impl AuthKind {
    fn name(self) -> &'static str {
        match self {
            AuthKind::Static => "static",
            AuthKind::ClientCredentials => "client_credentials",
            AuthKind::RefreshToken => "refresh_token",
            AuthKind::JwtBearer => "jwt_bearer",
        }
    }
}

/// How a token request proves the client's identity (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` as form fields of the request body (the Microsoft
    /// identity platform, Salesforce, Zoho, HubSpot).
    #[default]
    Body,
    /// HTTP Basic authentication with the client id and secret (Reddit accepts only this).
    Basic,
}

/// A queue's `auth` table. Which fields apply depends on `kind`; [`AuthConfig::problems`]
/// says which are missing or out of place.
///
/// ```toml
/// auth = { scheme = "bearer", env = "HUBSPOT_TOKEN" }          # static (the default kind)
///
/// [queue.auth]                                                 # Dynamics 365
/// kind = "client_credentials"
/// token_url = "https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token"
/// client_id_env = "DYNAMICS_CLIENT_ID"
/// client_secret_env = "DYNAMICS_CLIENT_SECRET"
/// scope = "https://contoso.crm.dynamics.com/.default"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// How the header is obtained.
    #[serde(default)]
    pub kind: AuthKind,
    /// `static`: how the header is built from the variable's value.
    #[serde(default)]
    pub scheme: Option<AuthScheme>,
    /// `static`: the environment variable holding the token or `user:password`.
    #[serde(default)]
    pub env: Option<String>,
    /// The OAuth token endpoint (`https://`, or `http://` to a loopback address only).
    #[serde(default)]
    pub token_url: Option<String>,
    /// The environment variable holding the client id (Salesforce: the consumer key).
    #[serde(default)]
    pub client_id_env: Option<String>,
    /// The environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// `refresh_token`: the environment variable holding the refresh token.
    #[serde(default)]
    pub refresh_token_env: Option<String>,
    /// `jwt_bearer`: the environment variable holding the PEM RSA private key that signs the
    /// assertion.
    #[serde(default)]
    pub private_key_env: Option<String>,
    /// `jwt_bearer`: the user the token is for (Salesforce: the integration user's username).
    #[serde(default)]
    pub subject: Option<String>,
    /// `jwt_bearer`: the assertion's audience (default `https://login.salesforce.com`; a
    /// sandbox uses `https://test.salesforce.com`).
    #[serde(default)]
    pub audience: Option<String>,
    /// The scope asked for (Microsoft identity platform: `https://<org>.crm.dynamics.com/.default`).
    #[serde(default)]
    pub scope: Option<String>,
    /// `client_credentials` and `refresh_token`: how the client id and secret are sent.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// The word before the token in the header (default `Bearer`; Zoho Desk:
    /// `Zoho-oauthtoken`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// How long a token lives when the endpoint does not say (Salesforce answers without
    /// `expires_in`; its session timeout is the org's setting, 2 hours by default).
    #[serde(default = "default_lifetime", with = "crate::duration")]
    pub lifetime: Duration,
    /// How long before its expiry a token is renewed (at most half its lifetime).
    #[serde(default = "default_renew_before", with = "crate::duration")]
    pub renew_before: Duration,
}

fn default_lifetime() -> Duration {
    Duration::from_secs(3600)
}
fn default_renew_before() -> Duration {
    Duration::from_secs(300)
}

/// The audience of a Salesforce JWT bearer assertion for a production org.
pub const SALESFORCE_AUDIENCE: &str = "https://login.salesforce.com";

/// The shortest lifetime a token endpoint can give a token; shorter answers are read as this,
/// so an endpoint answering `expires_in: 0` cannot make every delivery renew.
const MIN_LIFETIME: Duration = Duration::from_secs(2);
/// The longest: a token is renewed at least daily whatever the endpoint says.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// How long a failed renewal is remembered: deliveries in that time get its failure without
/// asking the token endpoint again (the dispatcher's breaker paces the rest).
const FAILURE_HOLD: Duration = Duration::from_secs(1);
/// How much of a token endpoint's answer is read.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;
/// How long a JWT bearer assertion is valid (Salesforce accepts up to 3 minutes).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(180);

impl AuthConfig {
    /// Static credentials from `env` (tests, examples).
    pub fn fixed(scheme: AuthScheme, env: &str) -> Self {
        Self {
            kind: AuthKind::Static,
            scheme: Some(scheme),
            env: Some(env.into()),
            token_url: None,
            client_id_env: None,
            client_secret_env: None,
            refresh_token_env: None,
            private_key_env: None,
            subject: None,
            audience: None,
            scope: None,
            client_auth: ClientAuth::Body,
            prefix: None,
            lifetime: default_lifetime(),
            renew_before: default_renew_before(),
        }
    }

    /// The OAuth 2.0 client-credentials grant at `token_url`, the client id and secret from
    /// the named variables, sent as `client_auth` says.
    pub fn client_credentials(
        token_url: &str,
        client_id_env: &str,
        client_secret_env: &str,
        client_auth: ClientAuth,
    ) -> Self {
        Self {
            kind: AuthKind::ClientCredentials,
            scheme: None,
            env: None,
            token_url: Some(token_url.into()),
            client_id_env: Some(client_id_env.into()),
            client_secret_env: Some(client_secret_env.into()),
            client_auth,
            ..Self::fixed(AuthScheme::Bearer, "")
        }
    }

    /// What is wrong with the table, from its fields alone (the environment is
    /// [`AuthConfig::secret_problems`]).
    pub fn problems(&self) -> Vec<String> {
        let kind = self.kind.name();
        let mut out = Vec::new();
        let need = |present: bool, field: &str, out: &mut Vec<String>| {
            if !present {
                out.push(format!("auth: kind `{kind}` needs `{field}`"));
            }
        };
        let forbid = |present: bool, field: &str, out: &mut Vec<String>| {
            if present {
                out.push(format!("auth: `{field}` does not apply to kind `{kind}`"));
            }
        };
        let oauth = self.kind != AuthKind::Static;
        need(self.scheme.is_some() || oauth, "scheme", &mut out);
        need(self.env.is_some() || oauth, "env", &mut out);
        forbid(oauth && self.scheme.is_some(), "scheme", &mut out);
        forbid(oauth && self.env.is_some(), "env", &mut out);
        need(self.token_url.is_some() || !oauth, "token_url", &mut out);
        need(
            self.client_id_env.is_some() || !oauth,
            "client_id_env",
            &mut out,
        );
        forbid(!oauth && self.token_url.is_some(), "token_url", &mut out);
        forbid(
            !oauth && self.client_id_env.is_some(),
            "client_id_env",
            &mut out,
        );
        forbid(!oauth && self.prefix.is_some(), "prefix", &mut out);
        let secret = matches!(
            self.kind,
            AuthKind::ClientCredentials | AuthKind::RefreshToken
        );
        need(
            self.client_secret_env.is_some() || !secret,
            "client_secret_env",
            &mut out,
        );
        forbid(
            !secret && self.client_secret_env.is_some(),
            "client_secret_env",
            &mut out,
        );
        let refresh = self.kind == AuthKind::RefreshToken;
        need(
            self.refresh_token_env.is_some() || !refresh,
            "refresh_token_env",
            &mut out,
        );
        forbid(
            !refresh && self.refresh_token_env.is_some(),
            "refresh_token_env",
            &mut out,
        );
        let jwt = self.kind == AuthKind::JwtBearer;
        need(
            self.private_key_env.is_some() || !jwt,
            "private_key_env",
            &mut out,
        );
        need(self.subject.is_some() || !jwt, "subject", &mut out);
        forbid(
            !jwt && self.private_key_env.is_some(),
            "private_key_env",
            &mut out,
        );
        forbid(!jwt && self.subject.is_some(), "subject", &mut out);
        forbid(!jwt && self.audience.is_some(), "audience", &mut out);
        forbid(
            !secret && self.client_auth != ClientAuth::Body,
            "client_auth",
            &mut out,
        );
        forbid(
            matches!(self.kind, AuthKind::Static | AuthKind::RefreshToken) && self.scope.is_some(),
            "scope",
            &mut out,
        );
        if let Some(u) = &self.token_url {
            match url::Url::parse(u) {
                Err(e) => out.push(format!("auth: token_url: {e}")),
                Ok(u) => {
                    if let Err(m) = crate::tls::check_remote_url(&u, &["https"], &["http"]) {
                        out.push(format!("auth: token_url: {m}"));
                    }
                }
            }
        }
        if let Some(p) = &self.prefix {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_graphic()) {
                out.push("auth: prefix is one word of visible ASCII (`Bearer`)".into());
            }
        }
        if oauth && (self.lifetime < MIN_LIFETIME || self.lifetime > MAX_LIFETIME) {
            out.push("auth: lifetime must be between 2s and 24h".into());
        }
        out
    }

    /// The environment variables this table names, with what each holds.
    fn variables(&self) -> Vec<(&str, &'static str)> {
        [
            (self.env.as_deref(), "env"),
            (self.client_id_env.as_deref(), "client_id_env"),
            (self.client_secret_env.as_deref(), "client_secret_env"),
            (self.refresh_token_env.as_deref(), "refresh_token_env"),
            (self.private_key_env.as_deref(), "private_key_env"),
        ]
        .into_iter()
        .filter_map(|(v, field)| v.map(|v| (v, field)))
        .collect()
    }

    /// What is wrong with the secrets this table names: variables not set, values that
    /// cannot be used. Variables are named, values never shown.
    pub fn secret_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (var, field) in self.variables() {
            if std::env::var(var).is_err() {
                out.push(format!(
                    "environment variable `{var}` (auth.{field}) is not set"
                ));
            }
        }
        if !out.is_empty() {
            return out;
        }
        let checked = match self.kind {
            AuthKind::Static => fixed_header(self).map(drop),
            _ => Grant::from_env(self).map(drop),
        };
        if let Err(e) = checked {
            out.push(e.to_string());
        }
        out
    }
}

/// Why a queue's credentials cannot be set up from the environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// A variable the table names is not set.
    #[error("environment variable `{0}` is not set")]
    NotSet(String),
    /// A static value cannot be sent as a header.
    #[error("`{env}`: {source}")]
    Header {
        /// The variable.
        env: String,
        /// Why.
        source: InvalidAuthHeader,
    },
    /// The JWT signing key does not parse as a PEM RSA private key.
    #[error("`{0}`: not a PEM RSA private key (PKCS#1 or PKCS#8)")]
    Key(String),
    /// The table itself is incomplete (caught at config load; here for callers that skip it).
    #[error("{0}")]
    Config(String),
}

/// A value that is never printed.
#[derive(Clone)]
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

fn read(var: &str) -> Result<Secret, CredentialError> {
    std::env::var(var)
        .map(|v| Secret(v.trim().to_string()))
        .map_err(|_| CredentialError::NotSet(var.to_string()))
}

fn field<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, CredentialError> {
    value
        .as_deref()
        .ok_or_else(|| CredentialError::Config(format!("auth needs `{name}`")))
}

/// The header of static credentials.
fn fixed_header(c: &AuthConfig) -> Result<HeaderValue, CredentialError> {
    let var = field(&c.env, "env")?;
    let scheme = c
        .scheme
        .ok_or_else(|| CredentialError::Config("auth needs `scheme`".into()))?;
    auth_header(scheme, &read(var)?.0).map_err(|source| CredentialError::Header {
        env: var.to_string(),
        source,
    })
}

/// What a token request sends: the grant and its secrets, read from the environment once.
enum Grant {
    ClientCredentials {
        client_id: Secret,
        client_secret: Secret,
        scope: Option<String>,
        client_auth: ClientAuth,
    },
    RefreshToken {
        client_id: Secret,
        client_secret: Secret,
        refresh_token: Secret,
        client_auth: ClientAuth,
    },
    JwtBearer {
        client_id: Secret,
        subject: String,
        audience: String,
        key: Box<jsonwebtoken::EncodingKey>,
    },
}

impl Grant {
    fn from_env(c: &AuthConfig) -> Result<Grant, CredentialError> {
        let client_id = || read(field(&c.client_id_env, "client_id_env")?);
        let client_secret = || read(field(&c.client_secret_env, "client_secret_env")?);
        Ok(match c.kind {
            AuthKind::Static => {
                return Err(CredentialError::Config(
                    "static credentials have no token endpoint".into(),
                ))
            }
            AuthKind::ClientCredentials => Grant::ClientCredentials {
                client_id: client_id()?,
                client_secret: client_secret()?,
                scope: c.scope.clone(),
                client_auth: c.client_auth,
            },
            AuthKind::RefreshToken => Grant::RefreshToken {
                client_id: client_id()?,
                client_secret: client_secret()?,
                refresh_token: read(field(&c.refresh_token_env, "refresh_token_env")?)?,
                client_auth: c.client_auth,
            },
            AuthKind::JwtBearer => {
                let var = field(&c.private_key_env, "private_key_env")?;
                let pem = std::env::var(var).map_err(|_| CredentialError::NotSet(var.into()))?;
                let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|_| CredentialError::Key(var.to_string()))?;
                Grant::JwtBearer {
                    client_id: client_id()?,
                    subject: field(&c.subject, "subject")?.to_string(),
                    audience: c
                        .audience
                        .clone()
                        .unwrap_or_else(|| SALESFORCE_AUDIENCE.to_string()),
                    key: Box::new(key),
                }
            }
        })
    }

    /// The `Authorization: Basic` header of a grant whose client authenticates with HTTP
    /// Basic: the id and secret form-urlencoded, joined by `:`, in base64 (RFC 6749 §2.3.1).
    fn basic(&self) -> Option<HeaderValue> {
        let (id, secret) = match self {
            Grant::ClientCredentials {
                client_id,
                client_secret,
                client_auth: ClientAuth::Basic,
                ..
            }
            | Grant::RefreshToken {
                client_id,
                client_secret,
                client_auth: ClientAuth::Basic,
                ..
            } => (client_id, client_secret),
            _ => return None,
        };
        use base64::Engine as _;
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!("{}:{}", encode(&id.0), encode(&secret.0));
        let mut value = HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
        .ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// The form fields of one token request at `now`; `rotated` replaces the configured
    /// refresh token when the endpoint handed back a new one.
    fn form(&self, now: SystemTime, rotated: Option<&Secret>) -> Result<String, Failure> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        match self {
            Grant::ClientCredentials {
                client_id,
                client_secret,
                scope,
                client_auth,
            } => {
                form.append_pair("grant_type", "client_credentials");
                if *client_auth == ClientAuth::Body {
                    form.append_pair("client_id", &client_id.0)
                        .append_pair("client_secret", &client_secret.0);
                }
                if let Some(scope) = scope {
                    form.append_pair("scope", scope);
                }
            }
            Grant::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
                client_auth,
            } => {
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", &rotated.unwrap_or(refresh_token).0);
                if *client_auth == ClientAuth::Body {
                    form.append_pair("client_id", &client_id.0)
                        .append_pair("client_secret", &client_secret.0);
                }
            }
            Grant::JwtBearer {
                client_id,
                subject,
                audience,
                key,
            } => {
                let at = now.duration_since(UNIX_EPOCH).unwrap_or_default();
                let claims = serde_json::json!({
                    "iss": client_id.0,
                    "sub": subject,
                    "aud": audience,
                    "exp": (at + ASSERTION_LIFETIME).as_secs(),
                });
                let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
                let assertion = jsonwebtoken::encode(&header, &claims, key).map_err(|_| {
                    Failure::refused("the JWT assertion cannot be signed with the key".into())
                })?;
                form.append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
                    .append_pair("assertion", &assertion);
            }
        }
        Ok(form.finish())
    }
}

/// Why no usable header could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The credentials were refused (a 4xx from the token endpoint, an OAuth `error`): only an
    /// operator can fix that. Otherwise the endpoint could not be reached or failed (5xx,
    /// 429, a timeout), which passes.
    pub refused: bool,
    /// What happened: the status and the OAuth error code, never a secret.
    pub detail: String,
}

impl Failure {
    fn refused(detail: String) -> Self {
        Self {
            refused: true,
            detail,
        }
    }
    fn unavailable(detail: String) -> Self {
        Self {
            refused: false,
            detail,
        }
    }
}

/// Where a queue's credentials read the time: token lifetimes and renewal are measured on
/// it, so tests drive it instead of waiting for tokens to expire.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The process's monotonic clock.
pub fn system_clock() -> Clock {
    Arc::new(Instant::now)
}

/// A token in use.
#[derive(Clone)]
struct Token {
    header: HeaderValue,
    /// From this instant it is renewed before use.
    renew_at: Instant,
    /// After this instant it is not sent at all.
    expires_at: Instant,
    generation: u64,
}

/// A renewing queue's token state. Renewal takes `renewing`, so one request at a time goes
/// to the token endpoint; `current` is read without waiting.
struct Renewer {
    holder: Holder,
    token_url: url::Url,
    grant: Grant,
    prefix: String,
    lifetime: Duration,
    renew_before: Duration,
    client: reqwest::Client,
    clock: Clock,
    current: Mutex<Option<Token>>,
    /// The last failed renewal and when: held for [`FAILURE_HOLD`].
    renewing: tokio::sync::Mutex<Option<(Instant, Failure)>>,
    /// A refresh token the endpoint handed back in place of the configured one.
    rotated: Mutex<Option<Secret>>,
    generations: AtomicU64,
}

/// Who holds a set of credentials: the label of its renewal metric and the field of its log
/// lines (`queue = "x"` or `source = "x"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A webhook queue.
    Queue(String),
    /// A source that reads an OAuth API (Reddit).
    Source(String),
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Queue(q) => write!(f, "queue {q}"),
            Holder::Source(s) => write!(f, "source {s}"),
        }
    }
}

impl Holder {
    fn label(&self) -> (&'static str, String) {
        match self {
            Holder::Queue(q) => ("queue", q.clone()),
            Holder::Source(s) => ("source", s.clone()),
        }
    }
}

/// The `Authorization` header of one queue or source: fixed, or renewed from a token
/// endpoint.
pub struct Credentials {
    inner: Inner,
}

enum Inner {
    Fixed(HeaderValue),
    Renewing(Box<Renewer>),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Fixed(_) => f.write_str("Credentials(static)"),
            Inner::Renewing(r) => write!(f, "Credentials({})", crate::redact::url(&r.token_url)),
        }
    }
}

/// A header to send, and which token it is (for [`Credentials::stale`]).
#[derive(Debug, Clone)]
pub struct Issued {
    /// The `Authorization` value.
    pub header: HeaderValue,
    /// 0 for static credentials; otherwise the token's number, counted from 1 per queue.
    pub generation: u64,
}

impl Credentials {
    /// Sets up the credentials of queue `queue` from its table and the environment; token
    /// requests go through `client` (the queue's, with its timeout and trust store).
    pub fn from_config(
        queue: &str,
        c: &AuthConfig,
        client: reqwest::Client,
    ) -> Result<Credentials, CredentialError> {
        Credentials::with_clock(queue, c, client, system_clock())
    }

    /// [`Credentials::from_config`] with lifetimes measured on `clock`.
    pub fn with_clock(
        queue: &str,
        c: &AuthConfig,
        client: reqwest::Client,
        clock: Clock,
    ) -> Result<Credentials, CredentialError> {
        Credentials::held_by(Holder::Queue(queue.to_string()), c, client, clock)
    }

    /// The credentials `holder` sends, from `c` and the environment, with lifetimes measured
    /// on `clock`.
    pub fn held_by(
        holder: Holder,
        c: &AuthConfig,
        client: reqwest::Client,
        clock: Clock,
    ) -> Result<Credentials, CredentialError> {
        if c.kind == AuthKind::Static {
            return Ok(Credentials {
                inner: Inner::Fixed(fixed_header(c)?),
            });
        }
        let token_url = url::Url::parse(field(&c.token_url, "token_url")?)
            .map_err(|e| CredentialError::Config(format!("auth: token_url: {e}")))?;
        let lifetime = c.lifetime.clamp(MIN_LIFETIME, MAX_LIFETIME);
        Ok(Credentials {
            inner: Inner::Renewing(Box::new(Renewer {
                holder,
                token_url,
                grant: Grant::from_env(c)?,
                prefix: c.prefix.clone().unwrap_or_else(|| "Bearer".into()),
                lifetime,
                renew_before: c.renew_before,
                client,
                clock,
                current: Mutex::new(None),
                renewing: tokio::sync::Mutex::new(None),
                rotated: Mutex::new(None),
                generations: AtomicU64::new(0),
            })),
        })
    }

    /// Whether a refused token can be replaced by asking again.
    pub fn renews(&self) -> bool {
        matches!(self.inner, Inner::Renewing(_))
    }

    /// The header to send now: the cached token while it is fresh, else a renewed one.
    pub async fn header(&self) -> Result<Issued, Failure> {
        match &self.inner {
            Inner::Fixed(h) => Ok(Issued {
                header: h.clone(),
                generation: 0,
            }),
            Inner::Renewing(r) => r.header().await,
        }
    }

    /// The endpoint refused token `generation` (a 401): it is not used again, and the next
    /// [`Credentials::header`] asks for a new one. A token already replaced is left alone, so
    /// several deliveries refused at once cause one renewal.
    pub fn stale(&self, generation: u64) {
        if let Inner::Renewing(r) = &self.inner {
            let mut current = r.current.lock().unwrap_or_else(|p| p.into_inner());
            if current.as_ref().is_some_and(|t| t.generation == generation) {
                *current = None;
            }
        }
    }
}

impl Renewer {
    fn fresh(&self, now: Instant) -> Option<Token> {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current.as_ref().filter(|t| now < t.renew_at).cloned()
    }

    async fn header(&self) -> Result<Issued, Failure> {
        let issued = |t: Token| Issued {
            header: t.header,
            generation: t.generation,
        };
        if let Some(t) = self.fresh((self.clock)()) {
            return Ok(issued(t));
        }
        let mut last_failure = self.renewing.lock().await;
        let now = (self.clock)();
        // Another delivery may have renewed while this one waited.
        if let Some(t) = self.fresh(now) {
            return Ok(issued(t));
        }
        let usable = {
            let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
            current.as_ref().filter(|t| now < t.expires_at).cloned()
        };
        if let Some((at, failure)) = &*last_failure {
            if now.duration_since(*at) < FAILURE_HOLD {
                // Renewal failed just now; a token still valid goes out meanwhile.
                return usable.map(issued).ok_or_else(|| failure.clone());
            }
        }
        match self.renew().await {
            Ok(token) => {
                *last_failure = None;
                let (key, name) = self.holder.label();
                metrics::counter!(TOKEN_RENEWALS, key => name, "outcome" => "renewed").increment(1);
                tracing::debug!(holder = %self.holder, generation = token.generation, "access token renewed");
                *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
                Ok(issued(token))
            }
            Err(failure) => {
                let outcome = if failure.refused { "refused" } else { "failed" };
                let (key, name) = self.holder.label();
                metrics::counter!(TOKEN_RENEWALS, key => name, "outcome" => outcome).increment(1);
                tracing::warn!(holder = %self.holder, endpoint = %crate::redact::url(&self.token_url),
                    detail = %failure.detail, "cannot renew the access token");
                *last_failure = Some(((self.clock)(), failure.clone()));
                usable.map(issued).ok_or(failure)
            }
        }
    }

    /// One request to the token endpoint.
    async fn renew(&self) -> Result<Token, Failure> {
        let started = (self.clock)();
        let rotated = self
            .rotated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let body = self.grant.form(SystemTime::now(), rotated.as_ref())?;
        let mut request = self
            .client
            .post(self.token_url.clone())
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        if let Some(basic) = self.grant.basic() {
            request = request.header(http::header::AUTHORIZATION, basic);
        }
        let answer = request.body(body).send().await;
        let mut resp = match answer {
            Ok(r) => r,
            Err(e) => {
                return Err(Failure::unavailable(format!(
                    "token endpoint: {}",
                    error_chain(&e.without_url())
                )))
            }
        };
        let status = resp.status().as_u16();
        let mut text = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if text.len() + chunk.len() > MAX_TOKEN_RESPONSE {
                        return Err(Failure::unavailable(format!(
                            "token endpoint: HTTP {status} with an answer over {MAX_TOKEN_RESPONSE} bytes"
                        )));
                    }
                    text.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(Failure::unavailable(format!(
                        "token endpoint: HTTP {status}, answer cut: {}",
                        error_chain(&e.without_url())
                    )))
                }
            }
        }
        let answer = read_answer(status, &text)?;
        let header = HeaderValue::from_str(&format!("{} {}", self.prefix, answer.access_token))
            .map(|mut h| {
                h.set_sensitive(true);
                h
            })
            .map_err(|_| {
                Failure::refused(format!(
                    "token endpoint: HTTP {status} with a token that cannot be sent in a header"
                ))
            })?;
        if let Some(r) = answer.refresh_token {
            if matches!(self.grant, Grant::RefreshToken { .. }) {
                *self.rotated.lock().unwrap_or_else(|p| p.into_inner()) = Some(Secret(r));
            }
        }
        let lifetime = answer
            .expires_in
            .unwrap_or(self.lifetime)
            .clamp(MIN_LIFETIME, MAX_LIFETIME);
        let margin = self.renew_before.min(lifetime / 2);
        Ok(Token {
            header,
            renew_at: started + (lifetime - margin),
            expires_at: started + lifetime,
            generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
        })
    }
}

/// A token endpoint's answer that gave a token.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    access_token: String,
    expires_in: Option<Duration>,
    refresh_token: Option<String>,
}

/// Reads a token endpoint's answer: status `status`, body `text`. 2xx with `access_token` is
/// a token; 408, 429 and 5xx are failures that pass; every other status, and a 2xx with an
/// OAuth `error` (Zoho answers 200 `{"error":"invalid_code"}`), is a refusal.
fn read_answer(status: u16, text: &[u8]) -> Result<Answer, Failure> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        access_token: Option<String>,
        #[serde(default)]
        expires_in: Option<serde_json::Value>,
        #[serde(default)]
        refresh_token: Option<String>,
        #[serde(default)]
        error: Option<String>,
    }
    let raw: Option<Raw> = serde_json::from_slice(text).ok();
    let code = raw
        .as_ref()
        .and_then(|r| r.error.as_deref())
        .map(|e| {
            // An OAuth error code is `[\x20-\x7e]` without `"` and `\`; keep a short,
            // plain one, so an endpoint cannot write into a log line through it.
            let e: String = e
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                .take(64)
                .collect();
            format!(" ({e})")
        })
        .unwrap_or_default();
    let detail = format!("token endpoint: HTTP {status}{code}");
    if matches!(status, 408 | 429 | 500..=599) {
        return Err(Failure::unavailable(detail));
    }
    if !(200..300).contains(&status) {
        return Err(Failure::refused(detail));
    }
    let Some(raw) = raw else {
        return Err(Failure::unavailable(format!(
            "{detail} with an answer that is not JSON"
        )));
    };
    match raw.access_token {
        Some(t) if raw.error.is_none() && !t.is_empty() => Ok(Answer {
            access_token: t,
            expires_in: raw
                .expires_in
                .and_then(|v| match v {
                    serde_json::Value::Number(n) => n.as_u64(),
                    // The Microsoft identity platform's v1 endpoint sends `"3599"`.
                    serde_json::Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                })
                .map(Duration::from_secs),
            refresh_token: raw.refresh_token.filter(|r| !r.is_empty()),
        }),
        _ => Err(Failure::refused(format!(
            "{detail} without an access token"
        ))),
    }
}

#[cfg(test)]
mod tests;
