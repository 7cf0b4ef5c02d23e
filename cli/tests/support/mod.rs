//! Helpers shared by the integration tests.

pub mod nats;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

/// The variable the tests' webhook queues read their secret from.
pub const SECRET_ENV: &str = "EARSHOT_TEST_WEBHOOK_SECRET";
/// The secret itself (the Standard Webhooks specification's example secret).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Sets the test secret in the environment, once, before any test reads it.
pub fn set_secret() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::env::set_var(SECRET_ENV, SECRET));
}

/// The `earshot` binary, run from the repository root with warnings-only logs.
pub fn earshot() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_earshot"));
    c.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    c.env("EARSHOT_LOG", "warn");
    c
}

/// `core/tests/fixtures/formats`: the recorded format samples (see SOURCES.md there).
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/fixtures/formats")
}

/// The repository's `rules/` folder.
pub fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules")
}

/// The head of a test config: two workers, rules from `rules`, the admin server on a free
/// loopback port, an outbox of its own, and one Jetstream source at `sim`. `rules_extra` and `admin_extra` are
/// more lines for those sections; the caller appends queues and routes.
pub fn jetstream_config_head(
    rules: &std::path::Path,
    sim: std::net::SocketAddr,
    rules_extra: &str,
    admin_extra: &str,
) -> String {
    format!(
        r#"
[pipeline]
workers = 2
[rules]
paths = ["{rules}"]
{rules_extra}
[admin]
listen = "127.0.0.1:0"
{admin_extra}
[outbox]
path = "{outbox}"
[[source]]
id = "sim"
type = "jetstream"
url = "ws://{sim}/subscribe"
"#,
        rules = rules.display(),
        outbox = scratch_dir().join("outbox.redb").display(),
    )
}

/// The head of a test config for a process run in its own folder: two workers, the
/// repository's rules (not watched), the admin server at `admin`, an outbox under `state/`,
/// and one source following `input.ndjson` (Jetstream lines) as it grows. The caller
/// appends queues and routes.
pub fn file_config_head(admin: &str) -> String {
    format!(
        r#"[pipeline]
workers = 2
[rules]
paths = ["{rules}"]
watch = "0"
[admin]
listen = "{admin}"
[outbox]
path = "state/outbox.redb"
[[source]]
id = "posts"
type = "file"
format = "jetstream"
path = "input.ndjson"
follow = true
poll_interval = "50ms"
"#,
        rules = rules_dir().display(),
    )
}

/// A folder for one `earshot run` process: an empty `input.ndjson` it follows, and its config
/// `earshot.toml` made of [`file_config_head`] with the admin server at `admin` and `rest`
/// (queues and routes).
pub struct FileRun {
    /// The folder, the process's working directory.
    pub dir: PathBuf,
    /// The followed input.
    pub input: PathBuf,
    /// The config.
    pub config: PathBuf,
}

impl FileRun {
    /// Writes the folder's files.
    pub fn new(admin: &str, rest: &str) -> Self {
        let dir = scratch_dir();
        let input = dir.join("input.ndjson");
        std::fs::write(&input, "").unwrap();
        let config = dir.join("earshot.toml");
        std::fs::write(&config, file_config_head(admin) + rest).unwrap();
        FileRun { dir, input, config }
    }
}

/// A fresh folder for one test's files, kept after the test (the process's temporary folder
/// is cleaned by the OS; a test that failed leaves its outbox to look at).
pub fn scratch_dir() -> PathBuf {
    tempfile::Builder::new()
        .prefix("earshot-test-")
        .tempdir()
        .expect("a temporary folder")
        .keep()
}

/// A queue `all` with the given sink lines, and the route that sends every mention to it.
pub fn catch_all_queue(sink: &str) -> String {
    format!("[[queue]]\nid = \"all\"\n{sink}\n[[route]]\nqueue = \"all\"\n")
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of series `series` (`name{labels}`) at the admin server at `admin`, read with the
/// tests' token; `None` when it is absent or the server does not answer.
pub async fn metric(admin: &str, series: &str) -> Option<f64> {
    let text = reqwest::Client::new()
        .get(format!("http://{admin}/metrics"))
        .bearer_auth("test-token")
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// `GET /readyz` of the admin server at `admin` with the tests' token: its status (0 when it
/// does not answer) and body.
pub async fn readyz(admin: &str) -> (u16, String) {
    earshot::tls::ensure_crypto_provider();
    let client = reqwest::Client::new();
    match client
        .get(format!("http://{admin}/readyz"))
        .bearer_auth("test-token")
        .send()
        .await
    {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// Copies `from` (a folder) into `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
