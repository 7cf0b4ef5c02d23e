//! Credentials against a loopback token endpoint, on a clock the tests drive: tokens are
//! reused while fresh, renewed once however many deliveries need them, replaced after a 401,
//! and refusals are told from outages without showing a secret.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::json;

use super::*;

const KEY: &str = include_str!("../../tests/data/credentials/jwt-test-key.pem");
const PUBLIC_KEY: &str = include_str!("../../tests/data/credentials/jwt-test-key.pub.pem");

/// A clock that moves only when told.
#[derive(Clone)]
struct Hand(Arc<Mutex<Instant>>);

impl Hand {
    fn new() -> Self {
        Hand(Arc::new(Mutex::new(Instant::now())))
    }
    fn clock(&self) -> Clock {
        let at = self.0.clone();
        Arc::new(move || *at.lock().unwrap())
    }
    fn advance(&self, d: Duration) {
        *self.0.lock().unwrap() += d;
    }
}

/// How the stand-in answers the next requests.
#[derive(Clone)]
enum Answer {
    Token { expires_in: Option<u64> },
    Status(u16, &'static str),
}

struct Endpoint {
    requests: AtomicUsize,
    forms: Mutex<Vec<HashMap<String, String>>>,
    headers: Mutex<Vec<HeaderMap>>,
    answer: Mutex<Answer>,
    /// The refresh token the endpoint hands back with each token, when set.
    rotate: Mutex<Option<String>>,
}

async fn token(State(e): State<Arc<Endpoint>>, headers: HeaderMap, body: Bytes) -> Response {
    let n = e.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    e.forms.lock().unwrap().push(form);
    e.headers.lock().unwrap().push(headers);
    // Answer slowly enough that deliveries asking at once overlap with the request.
    tokio::time::sleep(Duration::from_millis(20)).await;
    match e.answer.lock().unwrap().clone() {
        Answer::Token { expires_in } => {
            let mut body = json!({"access_token": format!("tok-{n}"), "token_type": "Bearer"});
            if let Some(s) = expires_in {
                body["expires_in"] = json!(s);
            }
            if let Some(r) = e.rotate.lock().unwrap().clone() {
                body["refresh_token"] = json!(format!("{r}-{n}"));
            }
            json_answer(StatusCode::OK, &body)
        }
        Answer::Status(status, error) => json_answer(
            StatusCode::from_u16(status).unwrap(),
            &json!({"error": error, "error_description": "client secret s3cr3t-client is wrong"}),
        ),
    }
}

fn json_answer(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn endpoint(answer: Answer) -> (Arc<Endpoint>, String) {
    let e = Arc::new(Endpoint {
        requests: AtomicUsize::new(0),
        forms: Mutex::new(Vec::new()),
        headers: Mutex::new(Vec::new()),
        answer: Mutex::new(answer),
        rotate: Mutex::new(None),
    });
    let app = Router::new()
        .route("/oauth2/token", post(token))
        .with_state(e.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (e, format!("http://{addr}/oauth2/token"))
}

fn client() -> reqwest::Client {
    crate::sink::webhook::client(Duration::from_secs(10)).unwrap()
}

/// A table of `kind` for `url`, its variables named after `tag` and set.
fn table(kind: &str, url: &str, tag: &str, extra: &str) -> AuthConfig {
    let vars = [
        ("ID", "client-7"),
        ("SECRET", "s3cr3t-client"),
        ("REFRESH", "r3fresh-1"),
    ];
    for (name, value) in vars {
        std::env::set_var(format!("EARSHOT_TEST_CRED_{tag}_{name}"), value);
    }
    std::env::set_var(format!("EARSHOT_TEST_CRED_{tag}_KEY"), KEY);
    let mut text = format!(
        "kind = \"{kind}\"\ntoken_url = \"{url}\"\nclient_id_env = \"EARSHOT_TEST_CRED_{tag}_ID\"\n"
    );
    match kind {
        "client_credentials" => text.push_str(&format!(
            "client_secret_env = \"EARSHOT_TEST_CRED_{tag}_SECRET\"\n"
        )),
        "refresh_token" => text.push_str(&format!(
            "client_secret_env = \"EARSHOT_TEST_CRED_{tag}_SECRET\"\nrefresh_token_env = \"EARSHOT_TEST_CRED_{tag}_REFRESH\"\n"
        )),
        _ => text.push_str(&format!(
            "private_key_env = \"EARSHOT_TEST_CRED_{tag}_KEY\"\nsubject = \"integration@acme.example\"\n"
        )),
    }
    text.push_str(extra);
    let c: AuthConfig = toml::from_str(&text).unwrap();
    assert_eq!(c.problems(), Vec::<String>::new());
    assert_eq!(c.secret_problems(), Vec::<String>::new());
    c
}

fn value(i: &Issued) -> &str {
    i.header.to_str().unwrap()
}

#[tokio::test]
async fn a_token_is_reused_while_fresh_and_renewed_once_for_everyone_after() {
    let (e, url) = endpoint(Answer::Token {
        expires_in: Some(3600),
    })
    .await;
    let hand = Hand::new();
    let c = table(
        "client_credentials",
        &url,
        "CC",
        "scope = \"https://acme.crm.dynamics.com/.default\"\n",
    );
    let creds = Credentials::with_clock("tickets", &c, client(), hand.clock()).unwrap();
    assert!(creds.renews());
    for _ in 0..10 {
        let i = creds.header().await.unwrap();
        assert_eq!((value(&i), i.generation), ("Bearer tok-1", 1));
    }
    assert_eq!(e.requests.load(Ordering::SeqCst), 1);
    {
        let forms = e.forms.lock().unwrap();
        let want: HashMap<String, String> = [
            ("grant_type", "client_credentials"),
            ("client_id", "client-7"),
            ("client_secret", "s3cr3t-client"),
            ("scope", "https://acme.crm.dynamics.com/.default"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        assert_eq!(forms[0], want);
        let h = &e.headers.lock().unwrap()[0];
        assert_eq!(
            h["content-type"].to_str().unwrap(),
            "application/x-www-form-urlencoded"
        );
        assert_eq!(h["accept"].to_str().unwrap(), "application/json");
    }
    // Fifty-five minutes on: still fresh. Five minutes before expiry: renewed, once, for
    // twenty deliveries asking at the same moment.
    hand.advance(Duration::from_secs(54 * 60));
    assert_eq!(value(&creds.header().await.unwrap()), "Bearer tok-1");
    hand.advance(Duration::from_secs(60));
    let creds = Arc::new(creds);
    let asks: Vec<_> = (0..20)
        .map(|_| {
            let c = creds.clone();
            tokio::spawn(async move { c.header().await.unwrap() })
        })
        .collect();
    for a in asks {
        let i = a.await.unwrap();
        assert_eq!((value(&i), i.generation), ("Bearer tok-2", 2));
    }
    assert_eq!(e.requests.load(Ordering::SeqCst), 2);
    assert!(creds.header().await.unwrap().header.is_sensitive());
}

#[tokio::test]
async fn a_refused_token_is_replaced_once_however_many_deliveries_were_refused() {
    let (e, url) = endpoint(Answer::Token {
        expires_in: Some(3600),
    })
    .await;
    let c = table("client_credentials", &url, "STALE", "");
    let creds = Credentials::with_clock("tickets", &c, client(), Hand::new().clock()).unwrap();
    let first = creds.header().await.unwrap();
    // Three deliveries got 401 with token 1: one renewal.
    for _ in 0..3 {
        creds.stale(first.generation);
        assert_eq!(value(&creds.header().await.unwrap()), "Bearer tok-2");
    }
    assert_eq!(e.requests.load(Ordering::SeqCst), 2);
    // A 401 for a token already replaced changes nothing.
    creds.stale(first.generation);
    assert_eq!(creds.header().await.unwrap().generation, 2);
    assert_eq!(e.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refresh_token_grant_sends_the_rotated_refresh_token_and_zohos_prefix() {
    let (e, url) = endpoint(Answer::Token {
        expires_in: Some(3600),
    })
    .await;
    *e.rotate.lock().unwrap() = Some("r3fresh".into());
    let hand = Hand::new();
    let c = table(
        "refresh_token",
        &url,
        "RT",
        "prefix = \"Zoho-oauthtoken\"\n",
    );
    let creds = Credentials::with_clock("zoho", &c, client(), hand.clock()).unwrap();
    assert_eq!(
        value(&creds.header().await.unwrap()),
        "Zoho-oauthtoken tok-1"
    );
    hand.advance(Duration::from_secs(3600));
    assert_eq!(
        value(&creds.header().await.unwrap()),
        "Zoho-oauthtoken tok-2"
    );
    let forms = e.forms.lock().unwrap();
    assert_eq!(forms[0]["grant_type"], "refresh_token");
    assert_eq!(forms[0]["refresh_token"], "r3fresh-1");
    assert_eq!(forms[0]["client_id"], "client-7");
    assert_eq!(forms[0]["client_secret"], "s3cr3t-client");
    // The endpoint handed back `r3fresh-1` with token 1 (`<prefix>-<request>`): used next.
    assert_eq!(forms[1]["refresh_token"], "r3fresh-1");
    assert!(!forms[0].contains_key("scope"));
}

#[tokio::test]
async fn a_jwt_bearer_assertion_is_signed_rs256_for_the_connected_app() {
    let (e, url) = endpoint(Answer::Token { expires_in: None }).await;
    let hand = Hand::new();
    let c = table("jwt_bearer", &url, "JWT", "lifetime = \"2h\"\n");
    let creds = Credentials::with_clock("salesforce", &c, client(), hand.clock()).unwrap();
    assert_eq!(value(&creds.header().await.unwrap()), "Bearer tok-1");
    let form = e.forms.lock().unwrap()[0].clone();
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let mut check = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    check.set_audience(&[SALESFORCE_AUDIENCE]);
    check.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
    let claims = jsonwebtoken::decode::<serde_json::Value>(&form["assertion"], &key, &check)
        .expect("a valid assertion")
        .claims;
    assert_eq!(claims["iss"], "client-7");
    assert_eq!(claims["sub"], "integration@acme.example");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = claims["exp"].as_u64().unwrap();
    assert!(exp > now && exp <= now + 180, "exp {exp}, now {now}");
    // Without `expires_in`, the configured lifetime (2 h) less `renew_before` (5 min).
    hand.advance(Duration::from_secs(114 * 60));
    assert_eq!(value(&creds.header().await.unwrap()), "Bearer tok-1");
    hand.advance(Duration::from_secs(60));
    assert_eq!(value(&creds.header().await.unwrap()), "Bearer tok-2");
}

#[tokio::test]
async fn refused_credentials_are_told_from_an_outage_and_never_shown() {
    let (e, url) = endpoint(Answer::Status(400, "invalid_client")).await;
    let hand = Hand::new();
    let c = table("client_credentials", &url, "REFUSED", "");
    let creds = Credentials::with_clock("tickets", &c, client(), hand.clock()).unwrap();
    let f = creds.header().await.unwrap_err();
    assert!(f.refused);
    assert_eq!(f.detail, "token endpoint: HTTP 400 (invalid_client)");
    // Held for a moment: deliveries meanwhile get the same answer without a request.
    assert_eq!(creds.header().await.unwrap_err(), f);
    assert_eq!(e.requests.load(Ordering::SeqCst), 1);
    hand.advance(FAILURE_HOLD);
    *e.answer.lock().unwrap() = Answer::Status(503, "temporarily_unavailable");
    let f = creds.header().await.unwrap_err();
    assert!(!f.refused);
    assert_eq!(e.requests.load(Ordering::SeqCst), 2);
    // Debug output names the endpoint's host, not its secrets.
    let shown = format!("{creds:?} {f:?}");
    assert!(
        !shown.contains("s3cr3t") && !shown.contains("client-7"),
        "{shown}"
    );
    hand.advance(FAILURE_HOLD);
    *e.answer.lock().unwrap() = Answer::Token {
        expires_in: Some(60),
    };
    assert_eq!(value(&creds.header().await.unwrap()), "Bearer tok-3");
}

#[tokio::test]
async fn a_token_still_valid_goes_out_while_its_renewal_fails() {
    let (e, url) = endpoint(Answer::Token {
        expires_in: Some(600),
    })
    .await;
    let hand = Hand::new();
    let c = table("client_credentials", &url, "GRACE", "");
    let creds = Credentials::with_clock("tickets", &c, client(), hand.clock()).unwrap();
    assert_eq!(value(&creds.header().await.unwrap()), "Bearer tok-1");
    *e.answer.lock().unwrap() = Answer::Status(500, "server_error");
    // Inside the renewal window (the last 5 min): renewal fails, the old token still works.
    hand.advance(Duration::from_secs(400));
    assert_eq!(value(&creds.header().await.unwrap()), "Bearer tok-1");
    // Past its expiry it is not sent.
    hand.advance(Duration::from_secs(200));
    assert!(!creds.header().await.unwrap_err().refused);
}

#[test]
fn token_answers_are_read_as_the_crm_identity_providers_send_them() {
    let ok = |s: &str| read_answer(200, s.as_bytes());
    assert_eq!(
        ok(r#"{"access_token":"a","expires_in":3599,"token_type":"Bearer"}"#).unwrap(),
        Answer::parsed("a", Some(3599), None)
    );
    // Microsoft's v1 endpoint: a string.
    assert_eq!(
        ok(r#"{"access_token":"a","expires_in":"3599"}"#).unwrap(),
        Answer::parsed("a", Some(3599), None)
    );
    // Salesforce: no expires_in, an instance_url.
    assert_eq!(
        ok(r#"{"access_token":"a","instance_url":"https://x.my.salesforce.com","issued_at":"1"}"#)
            .unwrap(),
        Answer::parsed("a", None, None)
    );
    assert_eq!(
        ok(r#"{"access_token":"a","refresh_token":"r2","expires_in":1800}"#).unwrap(),
        Answer::parsed("a", Some(1800), Some("r2"))
    );
    let refused = |status: u16, s: &str| {
        let f = read_answer(status, s.as_bytes()).unwrap_err();
        assert!(f.refused, "{status} {s}: {f:?}");
        f.detail
    };
    let failed = |status: u16, s: &str| {
        let f = read_answer(status, s.as_bytes()).unwrap_err();
        assert!(!f.refused, "{status} {s}: {f:?}");
        f.detail
    };
    // Zoho answers 200 with an error.
    assert_eq!(
        refused(200, r#"{"error":"invalid_code"}"#),
        "token endpoint: HTTP 200 (invalid_code) without an access token"
    );
    assert_eq!(
        refused(
            400,
            r#"{"error":"invalid_grant","error_description":"expired"}"#
        ),
        "token endpoint: HTTP 400 (invalid_grant)"
    );
    assert_eq!(refused(401, "nope"), "token endpoint: HTTP 401");
    assert_eq!(refused(403, "{}"), "token endpoint: HTTP 403");
    assert_eq!(
        refused(200, r#"{"access_token":""}"#),
        "token endpoint: HTTP 200 without an access token"
    );
    assert_eq!(failed(503, ""), "token endpoint: HTTP 503");
    assert_eq!(
        failed(429, r#"{"error":"slow_down"}"#),
        "token endpoint: HTTP 429 (slow_down)"
    );
    assert_eq!(failed(408, ""), "token endpoint: HTTP 408");
    assert_eq!(
        failed(200, "<html>"),
        "token endpoint: HTTP 200 with an answer that is not JSON"
    );
    // An error code cannot write into a log line.
    assert_eq!(
        refused(400, r#"{"error":"bad\nlevel=error msg=\"forged\""}"#),
        "token endpoint: HTTP 400 (badlevelerrormsgforged)"
    );
}

impl Answer {
    fn parsed(token: &str, expires: Option<u64>, refresh: Option<&str>) -> super::Answer {
        super::Answer {
            access_token: token.into(),
            expires_in: expires.map(Duration::from_secs),
            refresh_token: refresh.map(Into::into),
        }
    }
}

#[test]
fn each_kind_names_what_it_misses_and_what_does_not_apply() {
    let problems = |text: &str| toml::from_str::<AuthConfig>(text).unwrap().problems();
    assert_eq!(
        problems("scheme = \"bearer\"\nenv = \"X\""),
        Vec::<String>::new()
    );
    assert_eq!(
        problems("env = \"X\""),
        ["auth: kind `static` needs `scheme`"]
    );
    assert_eq!(
        problems("scheme = \"bearer\"\nenv = \"X\"\ntoken_url = \"https://a.example/t\""),
        ["auth: `token_url` does not apply to kind `static`"]
    );
    assert_eq!(
        problems("kind = \"client_credentials\"\ntoken_url = \"https://login.example/t\""),
        [
            "auth: kind `client_credentials` needs `client_id_env`",
            "auth: kind `client_credentials` needs `client_secret_env`"
        ]
    );
    assert_eq!(
        problems(
            "kind = \"refresh_token\"\ntoken_url = \"https://a.example/t\"\nclient_id_env = \"A\"\nclient_secret_env = \"B\"\nscope = \"s\"\nscheme = \"bearer\""
        ),
        [
            "auth: `scheme` does not apply to kind `refresh_token`",
            "auth: kind `refresh_token` needs `refresh_token_env`",
            "auth: `scope` does not apply to kind `refresh_token`"
        ]
    );
    assert_eq!(
        problems("kind = \"jwt_bearer\"\ntoken_url = \"https://a.example/t\"\nclient_id_env = \"A\"\nclient_secret_env = \"B\""),
        [
            "auth: `client_secret_env` does not apply to kind `jwt_bearer`",
            "auth: kind `jwt_bearer` needs `private_key_env`",
            "auth: kind `jwt_bearer` needs `subject`"
        ]
    );
    assert_eq!(
        problems("kind = \"client_credentials\"\ntoken_url = \"http://login.example/t\"\nclient_id_env = \"A\"\nclient_secret_env = \"B\"\nprefix = \"two words\"\nlifetime = \"1s\""),
        [
            "auth: token_url: `http://` is only allowed to a loopback address; use `https://` (TLS) for remote hosts",
            "auth: prefix is one word of visible ASCII (`Bearer`)",
            "auth: lifetime must be between 2s and 24h"
        ]
    );
    assert!(toml::from_str::<AuthConfig>("kind = \"password\"").is_err());
}

#[test]
fn secrets_are_named_by_their_variable_never_shown() {
    std::env::set_var(
        "EARSHOT_TEST_CRED_BADKEY",
        "-----BEGIN PRIVATE KEY-----\nnot a key s3cr3t\n",
    );
    std::env::set_var("EARSHOT_TEST_CRED_BADKEY_ID", "client-7");
    let c: AuthConfig = toml::from_str(
        "kind = \"jwt_bearer\"\ntoken_url = \"https://a.example/t\"\nclient_id_env = \"EARSHOT_TEST_CRED_BADKEY_ID\"\nprivate_key_env = \"EARSHOT_TEST_CRED_BADKEY\"\nsubject = \"u\"",
    )
    .unwrap();
    assert_eq!(
        c.secret_problems(),
        ["`EARSHOT_TEST_CRED_BADKEY`: not a PEM RSA private key (PKCS#1 or PKCS#8)"]
    );
    let c: AuthConfig = toml::from_str(
        "kind = \"refresh_token\"\ntoken_url = \"https://a.example/t\"\nclient_id_env = \"EARSHOT_TEST_CRED_UNSET_A\"\nclient_secret_env = \"EARSHOT_TEST_CRED_UNSET_B\"\nrefresh_token_env = \"EARSHOT_TEST_CRED_BADKEY_ID\"",
    )
    .unwrap();
    assert_eq!(
        c.secret_problems(),
        [
            "environment variable `EARSHOT_TEST_CRED_UNSET_A` (auth.client_id_env) is not set",
            "environment variable `EARSHOT_TEST_CRED_UNSET_B` (auth.client_secret_env) is not set"
        ]
    );
}
