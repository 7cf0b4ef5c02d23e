//! Rule hot reload: new rules take effect without a restart, whole or not at all.
//!
//! # Shape
//! [`Shared`] holds the compiled stages every worker uses, with a generation number. A worker
//! checks the generation once per batch (one atomic load) and, when it moved, takes the new
//! stages before it starts the batch, so every post of a batch — and so every post — is
//! matched, scored and routed by one rule set, never half of one and half of another.
//!
//! [`Reloader`] builds a replacement from the same configuration (rule files, terms files,
//! lexicons, routes), off the async runtime, and swaps it in only if everything compiles. A
//! failed reload changes nothing: the rules in force stay, and every error is logged, counted
//! (`earshot_rules_reloads_total{outcome="error"}`) and returned to whoever asked. Three
//! things ask: `SIGHUP`, the admin endpoint `POST /rules/reload` (behind a bearer token), and
//! [`watch`], which polls the rule paths.
//!
//! # Why polling, not inotify
//! Rule folders are edited by people and deployed by tools: editors replace files by rename,
//! Kubernetes swaps a ConfigMap's symlink, network filesystems send no events at all. A poll
//! of names, sizes and modification times every couple of seconds sees all of these, costs a
//! few `stat` calls, and needs no platform-specific code; a change is reloaded once it has
//! held still for one interval, so a half-written file is not compiled.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tracing::{error, info};

use crate::compile::{compile, CompileError, Shared};
use crate::config::Config;
use crate::metrics::Trigger;
use crate::metrics::{RULES_LAST_RELOAD_OK, RULES_RELOADS};
use crate::shutdown::Shutdown;

pub mod customers;

/// A reload that took effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reloaded {
    /// The generation now in force.
    pub generation: u64,
    /// Brands and competitors loaded.
    pub brands: usize,
    /// Rules loaded.
    pub rules: usize,
    /// Distinct terms in the automaton.
    pub terms: usize,
    /// Time to load and compile, in milliseconds.
    pub compile_ms: u64,
}

/// A reload that did not take effect; the previous rules stay in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("rules not reloaded (generation {generation} stays in force):\n{}", errors.join("\n"))]
pub struct ReloadFailed {
    /// The generation that stays in force.
    pub generation: u64,
    /// Every error, one per line (`file:line:col: message` for rule mistakes).
    pub errors: Vec<String>,
}

/// Builds replacement stages from the configuration and swaps them in.
#[derive(Debug)]
pub struct Reloader {
    config: Config,
    shared: Arc<Shared>,
    /// One reload at a time: two triggers at once compile once each, in turn.
    busy: tokio::sync::Mutex<()>,
    /// The rule paths' [`fingerprint`] when the last compile (good or bad) read them, so
    /// [`watch`] reloads what changed since, and does not retry a broken set unchanged.
    read_at: std::sync::Mutex<Fingerprint>,
    /// The [`digest`] of the rules in force, and what put them in force: a cluster's nodes
    /// compare digests to know they run the same rules.
    in_force: tokio::sync::watch::Sender<InForce>,
}

/// The rules in force: their content's [`digest`], and the trigger of the reload that put
/// them in force (`None` for the rules the process started with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InForce {
    /// The digest.
    pub digest: String,
    /// What reloaded them.
    pub trigger: Option<Trigger>,
}

impl Reloader {
    /// A reloader of `shared` from `config` (the configuration the pipeline started with).
    pub fn new(config: Config, shared: Arc<Shared>) -> Arc<Self> {
        metrics::gauge!(RULES_LAST_RELOAD_OK).set(1.0);
        let paths = watched(&config);
        let read_at = std::sync::Mutex::new(fingerprint(&paths));
        let (in_force, _) = tokio::sync::watch::channel(InForce {
            digest: digest(&paths),
            trigger: None,
        });
        Arc::new(Self {
            config,
            shared,
            busy: tokio::sync::Mutex::new(()),
            read_at,
            in_force,
        })
    }

    /// The rules in force now, and every change to them.
    pub fn in_force(&self) -> tokio::sync::watch::Receiver<InForce> {
        self.in_force.subscribe()
    }

    /// The rule paths' fingerprint when they were last compiled.
    fn read_at(&self) -> Fingerprint {
        self.read_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The stages the reloader swaps.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The rule paths it reloads from.
    pub fn rule_paths(&self) -> &[PathBuf] {
        &self.config.rules.paths
    }

    /// Loads and compiles the rules again; on success they are in force when this returns.
    pub async fn reload(&self, trigger: Trigger) -> Result<Reloaded, ReloadFailed> {
        let _turn = self.busy.lock().await;
        let config = self.config.clone();
        let started = Instant::now();
        let compiled = tokio::task::spawn_blocking(move || {
            let paths = watched(&config);
            let read_at = fingerprint(&paths);
            let digest = digest(&paths);
            (read_at, digest, compile(&config))
        })
        .await;
        let mut read_digest = String::new();
        let compiled = match compiled {
            Ok((read_at, digest, compiled)) => {
                read_digest = digest;
                *self.read_at.lock().unwrap_or_else(|e| e.into_inner()) = read_at;
                compiled.map_err(|e| match e {
                    CompileError::Rules(errors) => errors.iter().map(ToString::to_string).collect(),
                    other => vec![other.to_string()],
                })
            }
            Err(e) => Err(vec![format!("the compile task failed: {e}")]),
        };
        let compile_ms = started.elapsed().as_millis() as u64;
        match compiled {
            Ok(compiled) => {
                let reloaded = Reloaded {
                    generation: 0,
                    brands: compiled.rules.brands().len(),
                    rules: compiled.rules.rules().len(),
                    terms: compiled.matcher.term_count(),
                    compile_ms,
                };
                let generation = self.shared.replace(Arc::new(compiled));
                self.in_force.send_replace(InForce {
                    digest: read_digest,
                    trigger: Some(trigger),
                });
                metrics::counter!(RULES_RELOADS, "trigger" => trigger.as_str(), "outcome" => "ok")
                    .increment(1);
                metrics::gauge!(RULES_LAST_RELOAD_OK).set(1.0);
                info!(
                    trigger = trigger.as_str(),
                    generation,
                    rules = reloaded.rules,
                    terms = reloaded.terms,
                    ms = compile_ms,
                    "rules reloaded"
                );
                Ok(Reloaded {
                    generation,
                    ..reloaded
                })
            }
            Err(errors) => {
                let failed = ReloadFailed {
                    generation: self.shared.generation(),
                    errors,
                };
                metrics::counter!(RULES_RELOADS, "trigger" => trigger.as_str(), "outcome" => "error")
                    .increment(1);
                metrics::gauge!(RULES_LAST_RELOAD_OK).set(0.0);
                error!(
                    trigger = trigger.as_str(),
                    errors = failed.errors.len(),
                    "{failed}"
                );
                Err(failed)
            }
        }
    }
}

/// Reloads on every `SIGHUP` until shutdown (Unix only; elsewhere it just waits).
pub async fn on_sighup(reloader: Arc<Reloader>, mut shutdown: Shutdown) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                error!(error = %e, "cannot listen for SIGHUP; reload by the admin endpoint or the rule files instead");
                shutdown.recv().await;
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.recv() => return,
                got = hangups.recv() => {
                    if got.is_none() {
                        return;
                    }
                    let _ = reloader.reload(Trigger::Signal).await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = reloader;
        shutdown.recv().await;
    }
}

/// Polls the rule paths every `interval` and reloads after a change that has held still for
/// one interval. A failed reload is retried only after the files change again.
pub async fn watch(reloader: Arc<Reloader>, interval: Duration, shutdown: Shutdown) {
    let paths = watched(&reloader.config);
    poll(
        paths,
        interval,
        shutdown,
        || reloader.read_at(),
        || {
            let reloader = reloader.clone();
            async move {
                let _ = reloader.reload(Trigger::Watch).await;
            }
        },
    )
    .await;
}

/// Polls the [`fingerprint`] of `paths` every `interval` and calls `reload` once it differs
/// from `read_at()` (the fingerprint of what is in force) and has held still for one
/// interval, so a half-written file is never read. Shared by every file watcher.
pub async fn poll<F: std::future::Future<Output = ()>>(
    paths: Vec<PathBuf>,
    interval: Duration,
    mut shutdown: Shutdown,
    read_at: impl Fn() -> Fingerprint,
    mut reload: impl FnMut() -> F,
) {
    let mut pending: Option<Fingerprint> = None;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            _ = ticks.tick() => {}
        }
        let now = {
            let paths = paths.clone();
            match tokio::task::spawn_blocking(move || fingerprint(&paths)).await {
                Ok(f) => f,
                Err(_) => continue,
            }
        };
        if now == read_at() {
            pending = None;
            continue;
        }
        if pending.as_ref() != Some(&now) {
            // Changed since the last look: wait until it holds still.
            pending = Some(now);
            continue;
        }
        pending = None;
        reload().await;
    }
}

/// A digest of the content of `paths` (each file, and each file in a folder, by name and
/// bytes, in a fixed order): the same on every node holding the same rules wherever they
/// are installed, different as soon as one byte differs. Files that cannot be read count as
/// absent.
pub fn digest(paths: &[PathBuf]) -> String {
    use sha2::{Digest as _, Sha256};
    let mut hash = Sha256::new();
    let mut add = |file: &Path| {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        hash.update(name.unwrap_or_default().as_bytes());
        hash.update([0]);
        match std::fs::read(file) {
            Ok(bytes) => {
                hash.update((bytes.len() as u64).to_le_bytes());
                hash.update(&bytes);
            }
            Err(_) => hash.update(u64::MAX.to_le_bytes()),
        }
    };
    for path in paths {
        match std::fs::read_dir(path) {
            Ok(entries) => {
                let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
                files.sort();
                files.iter().filter(|f| f.is_file()).for_each(|f| add(f));
            }
            Err(_) => add(path),
        }
    }
    hash.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a reload reads: the rule paths and the scoring file with its cue lists.
fn watched(config: &Config) -> Vec<PathBuf> {
    let mut paths = config.rules.paths.clone();
    paths.extend(crate::stage::score::watched_files(&config.scoring));
    paths
}

/// Names, sizes and modification times of the watched paths and the files in watched folders.
pub type Fingerprint = Vec<(PathBuf, Option<(u64, Option<SystemTime>)>)>;

/// The [`Fingerprint`] of `paths`: each path, and for a folder each file in it (rule files
/// and the terms files beside them).
pub fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    let stat = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.len(), m.modified().ok()))
    };
    let mut out = Vec::new();
    for path in paths {
        out.push((path.clone(), stat(path)));
        if let Ok(entries) = std::fs::read_dir(path) {
            let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for file in files {
                let s = stat(&file);
                out.push((file, s));
            }
        }
    }
    out
}

/// Compares a presented bearer token with the expected one in time that does not depend on
/// where they differ (`subtle`, whose comparison the optimizer cannot turn into an early
/// exit). Only the length can be learned, and a token's length is no secret.
pub fn token_matches(presented: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(dir: &Path, query: &str) {
        let text = format!("brand acme \"Acme\"\n  rule acme-mentions: {query}\n");
        std::fs::write(dir.join("acme.rules"), text).unwrap();
    }

    fn reloader(dir: &Path) -> Arc<Reloader> {
        let text = format!("[rules]\npaths = [\"{}\"]\n", dir.display());
        let config = Config::parse("test.toml", &text, Path::new(".")).unwrap();
        let compiled = compile(&config).unwrap();
        Reloader::new(config, Shared::new(Arc::new(compiled)))
    }

    fn rule_query(shared: &Shared) -> String {
        format!("{:?}", shared.current().1.rules.rules()[0].terms)
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cre", "s3cret"));
        assert!(!token_matches("s3cret!", "s3cret"));
        assert!(!token_matches("S3cret", "s3cret"));
        assert!(!token_matches("", "s3cret"));
    }

    #[test]
    fn fingerprint_sees_edits_renames_and_new_files() {
        let dir = tempfile::tempdir().unwrap();
        pack(dir.path(), "acme");
        let paths = vec![dir.path().to_path_buf()];
        let before = fingerprint(&paths);
        assert_eq!(fingerprint(&paths), before, "nothing changed");
        pack(dir.path(), "acme OR \"acme corp\"");
        let edited = fingerprint(&paths);
        assert_ne!(edited, before, "a size change");
        std::fs::write(dir.path().join("products.txt"), "rocket skates\n").unwrap();
        assert_ne!(fingerprint(&paths), edited, "a new file");
    }

    #[tokio::test]
    async fn a_failed_reload_keeps_the_rules_in_force() {
        let dir = tempfile::tempdir().unwrap();
        pack(dir.path(), "acme");
        let reloader = reloader(dir.path());
        let before = rule_query(reloader.shared());

        pack(dir.path(), "(acme OR");
        let failed = reloader.reload(Trigger::Admin).await.unwrap_err();
        assert_eq!(failed.generation, 1);
        assert!(
            failed.errors.iter().all(|e| e.contains("acme.rules:2:")),
            "{failed}"
        );
        assert_eq!(reloader.shared().generation(), 1);
        assert_eq!(rule_query(reloader.shared()), before);

        pack(dir.path(), "acme OR globex");
        let reloaded = reloader.reload(Trigger::Admin).await.unwrap();
        assert_eq!(reloaded.generation, 2);
        assert_eq!((reloaded.brands, reloaded.rules, reloaded.terms), (1, 1, 2));
        assert_eq!(reloader.shared().generation(), 2);
        assert_ne!(rule_query(reloader.shared()), before);
    }

    #[tokio::test]
    async fn watching_reloads_a_changed_folder() {
        let dir = tempfile::tempdir().unwrap();
        pack(dir.path(), "acme");
        let reloader = reloader(dir.path());
        let (trigger, _) = crate::shutdown::channel();
        let task = tokio::spawn(watch(
            reloader.clone(),
            Duration::from_millis(20),
            trigger.subscribe(),
        ));
        pack(dir.path(), "acme OR \"acme corp\"");
        let deadline = Instant::now() + Duration::from_secs(20);
        while reloader.shared().generation() < 2 {
            assert!(Instant::now() < deadline, "the change was never reloaded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            reloader.shared().current().1.rules.rules()[0].terms.len(),
            2
        );
        trigger.trigger();
        task.await.unwrap();
    }
}
