//! A load-test case: a folder `loadtest/cases/<name>/` holding `case.toml` (the generator
//! settings, the rate steps and the latency budget) and the earshot config under test, a
//! template with `{FIREHOSE}`, `{HOOK}`, `{ADMIN}` and `{RULES}` placeholders that the runner
//! fills with the loopback addresses it picked (STYLE 14: load tests are folders of cases).
//! A template may also hold `{NATS}`: the case then runs earshot as a cluster node, and the
//! runner starts a JetStream server for it and fills in its URL (see [`crate::nats`]).
//!
//! Everything is validated at load, with the file and the key in the message, so a typo in a
//! case fails before any process is started.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::Deserialize;

/// The placeholders a config template must contain; each is filled by the runner.
pub const PLACEHOLDERS: [&str; 4] = ["{FIREHOSE}", "{HOOK}", "{ADMIN}", "{RULES}"];

/// The optional placeholder of a cluster-mode template: a `nats://` URL of the server the
/// runner starts for the run.
pub const NATS: &str = "{NATS}";

/// `case.toml` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    seed: u64,
    mention_rate: f64,
    steps: Vec<u64>,
    step_seconds: f64,
    p99_budget_ms: f64,
    #[serde(default = "default_config")]
    config: String,
    #[serde(default = "default_rules")]
    rules: String,
    #[serde(default = "default_secret_env")]
    secret_env: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    kind: Kind,
    #[serde(default = "default_sample_seconds")]
    sample_seconds: f64,
    #[serde(default)]
    receiver_delay_ms: u64,
    #[serde(default)]
    firehose_max_lag: u64,
    #[serde(default)]
    drain_timeout_seconds: f64,
}

/// What a case measures, and so which report it gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Rising rate steps: the highest rate sustained within the latency budget.
    #[default]
    Steps,
    /// One long step: do memory, disk, file descriptors and delivery stay flat?
    Soak,
    /// More than earshot can take with a slow endpoint: is memory bounded, does backpressure
    /// reach the source, is nothing lost, and how long does the backlog take to drain?
    Overload,
}

fn default_sample_seconds() -> f64 {
    10.0
}

fn default_config() -> String {
    "earshot.toml".into()
}

fn default_rules() -> String {
    "../../../rules".into()
}

fn default_secret_env() -> String {
    "EARSHOT_LOADTEST_SECRET".into()
}

/// A validated case.
#[derive(Debug, Clone)]
pub struct Case {
    /// The case's name: its folder's name.
    pub name: String,
    /// The case folder.
    pub dir: PathBuf,
    /// Generator seed: the same seed offers the same events.
    pub seed: u64,
    /// Share of post creates that mention a brand.
    pub mention_rate: f64,
    /// Offered rates in events per second, one per step, in order.
    pub steps: Vec<u64>,
    /// How long each step lasts.
    pub step_seconds: f64,
    /// A step passes only when its p99 send-to-receipt latency is within this.
    pub p99_budget_ms: f64,
    /// The earshot config template (absolute).
    pub config: PathBuf,
    /// The rules folder that `{RULES}` becomes (absolute).
    pub rules: PathBuf,
    /// The environment variable the template's webhook queues read their secret from.
    pub secret_env: String,
    /// One line on what the case is for.
    pub description: String,
    /// Which report the run writes.
    pub kind: Kind,
    /// How often the runner samples earshot's resident memory, open files and outbox file.
    pub sample_seconds: f64,
    /// How long the receiver holds each webhook before answering (a slow endpoint).
    pub receiver_delay_ms: u64,
    /// The firehose stops generating while earshot is this many events behind what it was
    /// sent (0: never; events older than the firehose's replay window are then lost to a
    /// client that falls that far behind).
    pub firehose_max_lag: u64,
    /// After the input stops, how long the runner waits for every expected mention to be
    /// delivered before stopping earshot (0: it only waits for earshot to read every frame).
    pub drain_timeout_seconds: f64,
    /// Whether the config template holds `{NATS}`: the runner starts a NATS server for it.
    pub uses_nats: bool,
}

/// Longest sampling interval: a sample is what a soak's verdict stands on.
const MAX_SAMPLE_SECONDS: f64 = 600.0;
/// Longest receiver delay: below earshot's default webhook timeout (10 s).
const MAX_RECEIVER_DELAY_MS: u64 = 5_000;
/// Longest drain wait.
const MAX_DRAIN_SECONDS: f64 = 24.0 * 3600.0;

impl Case {
    /// Loads `dir/case.toml` and checks it and its config template.
    pub fn load(dir: &Path) -> anyhow::Result<Case> {
        let path = dir.join("case.toml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let name = dir
            .canonicalize()
            .with_context(|| format!("cannot resolve case folder {}", dir.display()))?
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
            .with_context(|| format!("case folder {} has no name", dir.display()))?;
        let mut case =
            Case::parse(&name, dir, &text).with_context(|| path.display().to_string())?;
        let template = std::fs::read_to_string(&case.config)
            .with_context(|| format!("cannot read config template {}", case.config.display()))?;
        check_template(&template).with_context(|| case.config.display().to_string())?;
        case.uses_nats = uses_nats(&template);
        if !case.rules.is_dir() {
            bail!(
                "{}: rules folder {} does not exist",
                path.display(),
                case.rules.display()
            );
        }
        Ok(case)
    }

    /// Parses and validates the text of a `case.toml`; paths are resolved against `dir`.
    pub fn parse(name: &str, dir: &Path, text: &str) -> anyhow::Result<Case> {
        let f: CaseFile = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        if f.steps.is_empty() {
            bail!("`steps` is empty: give at least one rate in events per second");
        }
        if let Some(i) = f.steps.iter().position(|&r| r == 0) {
            bail!("`steps[{i}]` is 0: every rate must be at least 1 event per second");
        }
        if !(f.mention_rate > 0.0 && f.mention_rate <= 1.0) {
            bail!(
                "`mention_rate` = {} must be in (0, 1]: with no mentions there is nothing to time",
                f.mention_rate
            );
        }
        if !(f.step_seconds >= 0.5 && f.step_seconds <= 3600.0) {
            bail!(
                "`step_seconds` = {} must be between 0.5 and 3600",
                f.step_seconds
            );
        }
        if !(f.p99_budget_ms > 0.0 && f.p99_budget_ms.is_finite()) {
            bail!("`p99_budget_ms` = {} must be positive", f.p99_budget_ms);
        }
        if f.secret_env.is_empty() {
            bail!("`secret_env` is empty");
        }
        if !(f.sample_seconds >= 1.0 && f.sample_seconds <= MAX_SAMPLE_SECONDS) {
            bail!(
                "`sample_seconds` = {} must be between 1 and {MAX_SAMPLE_SECONDS}",
                f.sample_seconds
            );
        }
        if f.receiver_delay_ms > MAX_RECEIVER_DELAY_MS {
            bail!(
                "`receiver_delay_ms` = {} must be at most {MAX_RECEIVER_DELAY_MS} (below earshot's webhook timeout)",
                f.receiver_delay_ms
            );
        }
        if !(f.drain_timeout_seconds >= 0.0 && f.drain_timeout_seconds <= MAX_DRAIN_SECONDS) {
            bail!(
                "`drain_timeout_seconds` = {} must be between 0 and {MAX_DRAIN_SECONDS}",
                f.drain_timeout_seconds
            );
        }
        if f.kind == Kind::Soak && f.steps.len() != 1 {
            bail!(
                "a soak case has exactly one step (its rate); `steps` has {}",
                f.steps.len()
            );
        }
        Ok(Case {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            seed: f.seed,
            mention_rate: f.mention_rate,
            steps: f.steps,
            step_seconds: f.step_seconds,
            p99_budget_ms: f.p99_budget_ms,
            config: dir.join(f.config),
            rules: dir.join(f.rules),
            secret_env: f.secret_env,
            description: f.description,
            kind: f.kind,
            sample_seconds: f.sample_seconds,
            receiver_delay_ms: f.receiver_delay_ms,
            firehose_max_lag: f.firehose_max_lag,
            drain_timeout_seconds: f.drain_timeout_seconds,
            uses_nats: false,
        })
    }
}

/// Checks that a config template has every placeholder, so a forgotten one fails here
/// rather than as an earshot config error about an address like `{HOOK}`.
pub fn check_template(template: &str) -> anyhow::Result<()> {
    let missing: Vec<&str> = PLACEHOLDERS
        .iter()
        .copied()
        .filter(|p| !template.contains(p))
        .collect();
    if !missing.is_empty() {
        bail!("config template lacks {}", missing.join(", "));
    }
    Ok(())
}

/// Whether a config template runs earshot as a cluster node on a NATS server the runner
/// starts: it holds `{NATS}`.
pub fn uses_nats(template: &str) -> bool {
    template.contains(NATS)
}

/// Fills a config template with the addresses the runner picked; `nats` is the server's
/// URL when the template [uses one](uses_nats) (a template without `{NATS}` ignores it).
pub fn fill_template(
    template: &str,
    firehose: &str,
    hook: &str,
    admin: &str,
    rules: &Path,
    nats: Option<&str>,
) -> String {
    let filled = template
        .replace("{FIREHOSE}", firehose)
        .replace("{HOOK}", hook)
        .replace("{ADMIN}", admin)
        .replace("{RULES}", &rules.display().to_string().replace('\\', "/"));
    match nats {
        Some(url) => filled.replace(NATS, url),
        None => filled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        seed = 7
        mention_rate = 0.05
        steps = [500, 1000]
        step_seconds = 3
        p99_budget_ms = 250
    "#;

    fn err(text: &str) -> String {
        format!("{:#}", Case::parse("c", Path::new("/x"), text).unwrap_err())
    }

    #[test]
    fn parses_a_case_with_defaults_resolved_against_its_folder() {
        let c = Case::parse("smoke", Path::new("/cases/smoke"), GOOD).unwrap();
        assert_eq!(c.steps, vec![500, 1000]);
        assert_eq!(c.seed, 7);
        assert_eq!(c.config, Path::new("/cases/smoke/earshot.toml"));
        assert_eq!(c.rules, Path::new("/cases/smoke/../../../rules"));
        assert_eq!(c.secret_env, "EARSHOT_LOADTEST_SECRET");
        assert_eq!(c.kind, Kind::Steps);
        assert_eq!(c.sample_seconds, 10.0);
        assert_eq!(
            (
                c.receiver_delay_ms,
                c.firehose_max_lag,
                c.drain_timeout_seconds
            ),
            (0, 0, 0.0)
        );
    }

    #[test]
    fn soak_and_overload_options_are_checked() {
        let soak = GOOD.replace("[500, 1000]", "[60000]") + "kind = \"soak\"\nsample_seconds = 5\n";
        let c = Case::parse("soak", Path::new("/c"), &soak).unwrap();
        assert_eq!((c.kind, c.sample_seconds), (Kind::Soak, 5.0));
        assert!(err(&format!("{GOOD}kind = \"soak\"\n")).contains("exactly one step"));
        let over = format!(
            "{GOOD}kind = \"overload\"\nreceiver_delay_ms = 20\nfirehose_max_lag = 1000\ndrain_timeout_seconds = 900\n"
        );
        let c = Case::parse("o", Path::new("/c"), &over).unwrap();
        assert_eq!(c.kind, Kind::Overload);
        assert_eq!(
            (
                c.receiver_delay_ms,
                c.firehose_max_lag,
                c.drain_timeout_seconds
            ),
            (20, 1000, 900.0)
        );
        assert!(err(&format!("{GOOD}kind = \"spiky\"\n")).contains("unknown variant"));
        assert!(err(&format!("{GOOD}sample_seconds = 0\n")).contains("`sample_seconds` = 0"));
        assert!(err(&format!("{GOOD}receiver_delay_ms = 60000\n")).contains("receiver_delay_ms"));
        assert!(err(&format!("{GOOD}drain_timeout_seconds = -1\n")).contains("drain_timeout"));
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        assert!(err(&GOOD.replace("[500, 1000]", "[]")).contains("`steps` is empty"));
        assert!(err(&GOOD.replace("[500, 1000]", "[500, 0]")).contains("`steps[1]` is 0"));
        assert!(err(&GOOD.replace("0.05", "1.5")).contains("`mention_rate` = 1.5"));
        assert!(err(&GOOD.replace("step_seconds = 3", "step_seconds = 0")).contains("step_seconds"));
        assert!(err(&GOOD.replace("250", "-1")).contains("p99_budget_ms"));
        let unknown = err(&format!("{GOOD}\nrate = 5\n"));
        assert!(unknown.contains("unknown field `rate`"), "{unknown}");
        let missing = err("seed = 1\n");
        assert!(missing.contains("missing field"), "{missing}");
        let typed = err(&GOOD.replace("seed = 7", "seed = \"seven\""));
        assert!(typed.contains("seed"), "{typed}");
    }

    #[test]
    fn templates_must_have_every_placeholder_and_are_filled() {
        let t = "a={FIREHOSE} b={HOOK} c={ADMIN} d={RULES}";
        check_template(t).unwrap();
        let e = check_template("a={FIREHOSE} c={ADMIN}")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "config template lacks {HOOK}, {RULES}");
        let filled = fill_template(t, "1:1", "2:2", "3:3", Path::new("/r"), None);
        assert_eq!(filled, "a=1:1 b=2:2 c=3:3 d=/r");
        assert!(!uses_nats(t));
        // A single-node template is filled the same whether or not a server is offered.
        let offered = fill_template(t, "1:1", "2:2", "3:3", Path::new("/r"), Some("nats://x:1"));
        assert_eq!(offered, filled);
    }

    #[test]
    fn a_nats_placeholder_makes_a_cluster_case_and_is_filled_everywhere() {
        let t =
            "a={FIREHOSE} b={HOOK} c={ADMIN} d={RULES}\n[cluster]\nurl = \"{NATS}\"\n# {NATS}\n";
        check_template(t).unwrap();
        assert!(uses_nats(t));
        let filled = fill_template(
            t,
            "1:1",
            "2:2",
            "3:3",
            Path::new("/r"),
            Some("nats://127.0.0.1:4222"),
        );
        assert_eq!(
            filled,
            "a=1:1 b=2:2 c=3:3 d=/r\n[cluster]\nurl = \"nats://127.0.0.1:4222\"\n# nats://127.0.0.1:4222\n"
        );
        // `{NATS}` is optional: its absence is not a missing placeholder, and it does not
        // stand in for a required one.
        let e = check_template("a={FIREHOSE} b={HOOK} c={ADMIN} url={NATS}")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "config template lacks {RULES}");
    }

    #[test]
    fn load_finds_out_whether_a_case_needs_a_nats_server() {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules");
        std::fs::create_dir(&rules).unwrap();
        let case = format!("{GOOD}rules = \"rules\"\n");
        std::fs::write(dir.path().join("case.toml"), case).unwrap();
        let single = "f={FIREHOSE} h={HOOK} a={ADMIN} r={RULES}\n";
        std::fs::write(dir.path().join("earshot.toml"), single).unwrap();
        assert!(!Case::load(dir.path()).unwrap().uses_nats);
        let cluster = format!("{single}[cluster]\nurl = \"{{NATS}}\"\n");
        std::fs::write(dir.path().join("earshot.toml"), cluster).unwrap();
        assert!(Case::load(dir.path()).unwrap().uses_nats);
    }

    #[test]
    fn load_reports_the_file_and_a_missing_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("case.toml"), GOOD).unwrap();
        let e = format!("{:#}", Case::load(dir.path()).unwrap_err());
        assert!(e.contains("cannot read config template"), "{e}");
        let e = format!("{:#}", Case::load(&dir.path().join("nope")).unwrap_err());
        assert!(e.contains("case.toml"), "{e}");
    }
}
