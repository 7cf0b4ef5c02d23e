//! CRM credentials that expire, with real processes on loopback: an `earshot run` process
//! delivers every mention to four CRM queues (Dynamics 365 with client credentials,
//! Salesforce with the JWT bearer grant, Zoho Desk and HubSpot with refresh tokens) whose
//! loopback stand-ins ([`earshot_sim::crm`]) issue tokens that live 2 s and revoke every
//! seventh one early.
//!
//! - Tokens expiring every 2 s for the length of the run (20 s here; set
//!   `EARSHOT_TEST_CRM_AUTH_RUN_S` for a longer one): every mention is created once at every
//!   CRM, nothing is dead-lettered, and the queues' signing secrets are not set (CRM APIs
//!   never check them).
//! - Credentials refused by every token endpoint, and a static token the API refuses: the
//!   queues wait, `/readyz` and the metrics say why, nothing is dead-lettered, nothing
//!   secret reaches the log; once the credentials are accepted again every mention arrives.
//!   `earshot dlq list` works without any of the queues' secrets set.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use earshot::shutdown;
use earshot_sim::crm::{self, Crm, CrmKind, CrmSettings};

use crate::delivery::{append, posts, terminate, wait_for};
use crate::support::{self, free_port, FileRun};

pub(crate) const KEY: &str =
    include_str!("../../../pipeline/tests/data/credentials/jwt-test-key.pem");
const PUBLIC_KEY: &str =
    include_str!("../../../pipeline/tests/data/credentials/jwt-test-key.pub.pem");

/// The variables the CRM queues read, and their values.
pub(crate) fn secrets() -> Vec<(&'static str, &'static str)> {
    vec![
        ("EARSHOT_TEST_CRM_CLIENT_ID", crm::CLIENT_ID),
        ("EARSHOT_TEST_CRM_CLIENT_SECRET", crm::CLIENT_SECRET),
        ("EARSHOT_TEST_CRM_REFRESH_TOKEN", crm::REFRESH_TOKEN),
        ("EARSHOT_TEST_CRM_JWT_KEY", KEY),
        ("EARSHOT_TEST_CRM_STATIC_TOKEN", "pat-na1-refused-static"),
        ("EARSHOT_TEST_ZENDESK_AUTH", crm::ZENDESK_AUTH),
    ]
}

pub(crate) const TIMING: &str = r#"retry_schedule = ["200ms", "500ms", "1s"]
max_attempts = 5
breaker_failures = 3
breaker_cooldown = "250ms"
breaker_max_cooldown = "1s"
concurrency = 4
[queue.noise]
reposts = false
storm = false"#;

/// A queue of `kind` at the stand-in on `port`, with its catch-all route.
pub(crate) fn queue(kind: CrmKind, port: u16) -> String {
    let base = format!("http://127.0.0.1:{port}");
    let token_path = kind.token_path().unwrap_or_default();
    let (format_vars, auth) = match kind {
        CrmKind::Zendesk => (
            "",
            r#"scheme = "basic"
env = "EARSHOT_TEST_ZENDESK_AUTH""#
                .to_string(),
        ),
        CrmKind::Dynamics => (
            r#"vars = { customer_id = "6f1c2d3e-0000-4000-8000-000000000001" }"#,
            format!(
                r#"kind = "client_credentials"
token_url = "{base}{}"
client_id_env = "EARSHOT_TEST_CRM_CLIENT_ID"
client_secret_env = "EARSHOT_TEST_CRM_CLIENT_SECRET"
scope = "{}"
renew_before = "500ms""#,
                token_path,
                crm::SCOPE
            ),
        ),
        CrmKind::Salesforce => (
            "",
            format!(
                r#"kind = "jwt_bearer"
token_url = "{base}{}"
client_id_env = "EARSHOT_TEST_CRM_CLIENT_ID"
private_key_env = "EARSHOT_TEST_CRM_JWT_KEY"
subject = "{}"
lifetime = "2s"
renew_before = "500ms""#,
                token_path,
                crm::SUBJECT
            ),
        ),
        CrmKind::Zoho | CrmKind::Hubspot => (
            if kind == CrmKind::Zoho {
                r#"vars = { org_id = "700001", department_id = "400001" }"#
            } else {
                ""
            },
            format!(
                r#"kind = "refresh_token"
token_url = "{base}{}"
client_id_env = "EARSHOT_TEST_CRM_CLIENT_ID"
client_secret_env = "EARSHOT_TEST_CRM_CLIENT_SECRET"
refresh_token_env = "EARSHOT_TEST_CRM_REFRESH_TOKEN"
renew_before = "500ms"{}"#,
                token_path,
                if kind == CrmKind::Zoho {
                    "\nprefix = \"Zoho-oauthtoken\""
                } else {
                    ""
                }
            ),
        ),
    };
    let name = kind.name();
    format!(
        r#"[[queue]]
id = "{name}"
sink = "webhook"
format = "{name}"
url = "{base}{path}"
{format_vars}
{TIMING}
[queue.auth]
{auth}
[[route]]
queue = "{name}"
"#,
        path = kind.create_path(),
    )
}

pub(crate) struct Run {
    pub(crate) files: FileRun,
    pub(crate) admin: String,
}

impl Run {
    pub(crate) fn new(rest: &str) -> Self {
        let admin = format!("127.0.0.1:{}", free_port());
        Run {
            files: FileRun::new(&admin, rest),
            admin,
        }
    }

    pub(crate) fn start(&self) -> Child {
        let log = std::fs::File::create(self.files.dir.join("earshot.log")).unwrap();
        support::earshot()
            .args(["run", "--config"])
            .arg(&self.files.config)
            .current_dir(&self.files.dir)
            .env("EARSHOT_LOG", "info,earshot::credentials=debug")
            .env("EARSHOT_ADMIN_TOKEN", "test-token")
            .envs(secrets())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.files.dir.join("earshot.log")).unwrap_or_default()
    }

    pub(crate) fn tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The value of series `series` (`name{labels}`).
    pub(crate) async fn metric(&self, series: &str) -> Option<f64> {
        support::metric(&self.admin, series).await
    }

    /// Dead letters of every queue, from the metrics.
    pub(crate) async fn dead_letters(&self, queues: &[&str]) -> f64 {
        let mut sum = 0.0;
        for q in queues {
            sum += self
                .metric(&format!("earshot_queue_dead_letters{{queue=\"{q}\"}}"))
                .await
                .unwrap_or(f64::NAN);
        }
        sum
    }
}

pub(crate) async fn start_crm(
    lifetime: Duration,
    revoke_every: u64,
    delay: Duration,
) -> (Crm, u16, shutdown::ShutdownTrigger) {
    let crm = Crm::new(CrmSettings {
        token_lifetime: lifetime,
        revoke_every,
        jwt_public_key: PUBLIC_KEY.into(),
        delay,
    });
    let (trigger, _) = shutdown::channel();
    let addr = crm.start(0, trigger.subscribe()).await.unwrap();
    (crm, addr.port(), trigger)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_that_expire_every_two_seconds_cost_no_mention() {
    earshot::tls::ensure_crypto_provider();
    let run_for = Duration::from_secs(
        std::env::var("EARSHOT_TEST_CRM_AUTH_RUN_S")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    let (crm, port, _stop) = start_crm(Duration::from_secs(2), 7, Duration::ZERO).await;
    let rest: String = CrmKind::OAUTH.iter().map(|k| queue(*k, port)).collect();
    let run = Run::new(&rest);
    let child = run.start();
    // Posts keep arriving for the whole run: 40 every quarter second.
    let chunks = (run_for.as_millis() / 250) as usize;
    let (frames, expected) = posts(2101, chunks * 40);
    let started = Instant::now();
    for chunk in frames.chunks(40) {
        append(&run.files.input, chunk);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let all = wait_for(Duration::from_secs(60), || {
        CrmKind::OAUTH
            .iter()
            .all(|k| crm.counts(*k).ids() == expected)
    })
    .await;
    let elapsed = started.elapsed();
    let queues: Vec<&str> = CrmKind::OAUTH.iter().map(|k| k.name()).collect();
    let dead = run.dead_letters(&queues).await;
    let mut unauthorized_attempts = 0.0;
    for q in &queues {
        unauthorized_attempts += run
            .metric(&format!(
                "earshot_webhook_deliveries_total{{queue=\"{q}\",outcome=\"unauthorized\"}}"
            ))
            .await
            .unwrap_or(0.0);
    }
    terminate(child);
    eprintln!(
        "token expiry run: {:.0} s, {} mentions to each of 4 CRMs, tokens living 2 s, every 7th revoked after 1 s",
        elapsed.as_secs_f64(),
        expected.len()
    );
    eprintln!("crm | tokens issued | 401 answers | tickets | duplicates | missing");
    for k in CrmKind::OAUTH {
        let c = crm.counts(k);
        let missing = expected.difference(&c.ids()).count();
        eprintln!(
            "{} | {} | {} | {} | {} | {missing}",
            k.name(),
            c.tokens,
            c.unauthorized,
            c.tickets.len(),
            c.duplicates()
        );
    }
    eprintln!("dead letters {dead}, attempts ending unauthorized {unauthorized_attempts}");
    assert!(all, "not every mention reached every CRM:\n{}", run.tail());
    assert_eq!(dead, 0.0, "dead letters:\n{}", run.tail());
    assert_eq!(unauthorized_attempts, 0.0, "a fresh token was refused");
    for k in CrmKind::OAUTH {
        let c = crm.counts(k);
        assert_eq!(c.duplicates(), 0, "{}: tickets created twice", k.name());
        assert_eq!(c.bad_requests, 0, "{}: bad requests", k.name());
        assert_eq!(c.token_refusals, 0, "{}: token requests refused", k.name());
        // A token lives 2 s and is renewed 0.5 s before its end: at least one per 2 s of
        // deliveries.
        let floor = (run_for.as_secs() / 2).saturating_sub(2);
        assert!(
            c.tokens >= floor,
            "{}: {} tokens in {run_for:?}",
            k.name(),
            c.tokens
        );
    }
    assert!(
        CrmKind::OAUTH
            .iter()
            .any(|k| crm.counts(*k).unauthorized > 0),
        "no revoked token was ever sent: the 401 path went untested"
    );
    assert_eq!(crm.leaks(), 0, "a secret was sent in a URL");
    let log = run.log();
    for (_, value) in secrets() {
        let probe = value.lines().nth(1).unwrap_or(value);
        assert!(!log.contains(probe), "a secret is in the log");
    }
    assert!(!log.contains("00D0"), "an access token is in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_hold_the_queue_and_dead_letter_nothing() {
    earshot::tls::ensure_crypto_provider();
    let (crm, port, _stop) = start_crm(Duration::from_secs(3600), 0, Duration::ZERO).await;
    crm.refuse(true);
    // Dynamics through its token endpoint, and a HubSpot private-app token the API refuses.
    let hubspot_static = format!(
        r#"[[queue]]
id = "hubspot"
sink = "webhook"
format = "hubspot"
url = "http://127.0.0.1:{port}{}"
{TIMING}
[queue.auth]
scheme = "bearer"
env = "EARSHOT_TEST_CRM_STATIC_TOKEN"
[[route]]
queue = "hubspot"
"#,
        CrmKind::Hubspot.create_path()
    );
    let run = Run::new(&(queue(CrmKind::Dynamics, port) + &hubspot_static));
    let child = run.start();
    let (frames, expected) = posts(2102, 400);
    append(&run.files.input, &frames);
    let refused = |q: &str| format!("earshot_queue_credentials_refused{{queue=\"{q}\"}}");
    let said = wait_for(Duration::from_secs(60), || {
        let (status, body) = futures_block(support::readyz(&run.admin));
        status == 503
            && body.contains("queue `dynamics`: its credentials are refused (token endpoint: HTTP 401 (invalid_client)); its entries wait")
            && body.contains("queue `hubspot`: its credentials are refused (HTTP 401: the endpoint refuses the queue's credentials); its entries wait")
    })
    .await;
    assert!(
        said,
        "readyz: {:?}\n{}",
        support::readyz(&run.admin).await,
        run.tail()
    );
    // Several seconds of refusals: far past the queue's five attempts and its breaker.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for q in ["dynamics", "hubspot"] {
        assert_eq!(
            run.metric(&refused(q)).await,
            Some(1.0),
            "{q}: refused gauge"
        );
    }
    assert_eq!(run.dead_letters(&["dynamics", "hubspot"]).await, 0.0);
    assert!(crm.counts(CrmKind::Dynamics).tickets.is_empty());
    // The Dynamics app's consent is restored: everything waiting goes.
    crm.refuse(false);
    let all = wait_for(Duration::from_secs(60), || {
        crm.counts(CrmKind::Dynamics).ids() == expected
    })
    .await;
    assert!(
        all,
        "not delivered after the credentials were accepted:\n{}",
        run.tail()
    );
    let ready_again = wait_for(Duration::from_secs(10), || {
        !futures_block(support::readyz(&run.admin))
            .1
            .contains("queue `dynamics`")
    })
    .await;
    assert!(ready_again, "{:?}", support::readyz(&run.admin).await);
    assert_eq!(run.metric(&refused("dynamics")).await, Some(0.0));
    assert_eq!(run.dead_letters(&["dynamics", "hubspot"]).await, 0.0);
    terminate(child);
    let log = run.log();
    assert!(
        log.contains("the queue's credentials are refused"),
        "{}",
        run.tail()
    );
    for (_, value) in secrets() {
        let probe = value.lines().nth(1).unwrap_or(value);
        assert!(!log.contains(probe), "a secret is in the log");
    }
    // The dead-letter tool reads the store without any queue's secret set.
    let out = support::earshot()
        .args(["dlq", "list", "--config"])
        .arg(&run.files.config)
        .current_dir(&run.files.dir)
        .env("EARSHOT_ADMIN_TOKEN", "test-token")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a future to completion from a synchronous closure inside the multi-threaded runtime.
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}
