//! The compiled rule set and its swap cell: config → rules, matcher, scorer and router
//! ([`compile`]), held as one [`Compiled`] value that workers read and a reload replaces whole
//! ([`Shared`]).
//!
//! Compiling is pure work on files read once: it runs at start, for `earshot check`, and in
//! [`crate::reload`] on a blocking thread. It sits apart from both the wiring ([`crate::app`])
//! and the reloader so that each depends on it and not on the other.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use tracing::{info, warn};

use crate::config::{Config, ConfigErrors, Routing};
use crate::metrics::RULES_GENERATION;
use crate::rules::{RuleErrors, RuleSet};
use crate::sink::payload::{EventType, Payload, PayloadError};
use crate::sink::SinkKind;
use crate::stage::matcher::{Matcher, MatcherError};
use crate::stage::route::{RouteConfig, RouteError, Router};
use crate::stage::score::{ScoreError, Scorer};

/// Why the rules, routes, scoring or payload templates do not compile.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The rules do not load, or an example in them fails.
    #[error("rules:\n{0}")]
    Rules(RuleErrors),
    /// The matcher could not be built.
    #[error("matcher: {0}")]
    Matcher(#[from] MatcherError),
    /// The scorer could not be built.
    #[error("scoring: {0}")]
    Score(#[from] ScoreError),
    /// The routing file does not load.
    #[error("routes:\n{0}")]
    RoutingFile(ConfigErrors),
    /// The routing file adds or changes a queue; queues are built at start.
    #[error(
        "routes:\n{}: queue `{queue}` is new or changed since the start; queue changes take effect at restart",
        .file.display()
    )]
    QueueChanged {
        /// The routing file.
        file: PathBuf,
        /// The queue id.
        queue: String,
    },
    /// Routes refer to unknown queues or brands.
    #[error("routes:\n{}", lines(.0))]
    Routes(Vec<RouteError>),
    /// A queue's payload template does not load.
    #[error("queue `{queue}`: {source}")]
    Payload {
        /// Queue id.
        queue: String,
        /// Why.
        source: PayloadError,
    },
    /// A queue that receives spike events has a template without a `[spike]` section.
    #[error(
        "queue `{queue}`: it is in [spikes] queues but its payload template {template} has no [spike] section: add one, or send spike events to a queue of format generic or slack"
    )]
    NoSpikeSection {
        /// Queue id.
        queue: String,
        /// The template file (`(built in)` for a built-in format).
        template: String,
    },
    /// A queue set to send follow-ups has a template without a `[followup]` section.
    #[error(
        "queue `{queue}`: cases.follow_ups = true but its payload template {template} has no [followup] section: add one, or leave follow_ups out"
    )]
    NoFollowupSection {
        /// Queue id.
        queue: String,
        /// The template file (`(built in)` for a built-in format).
        template: String,
    },
}

/// One error per line.
fn lines(errors: &[RouteError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The compiled, shared, read-only part of every worker.
#[derive(Debug)]
pub struct Compiled {
    /// Rule set (brands, rules).
    pub rules: RuleSet,
    /// Term automaton and rule evaluation.
    pub matcher: Matcher,
    /// Sentiment, category, urgency.
    pub scorer: Scorer,
    /// Routing table.
    pub router: Router,
}

/// The compiled stages in force, swapped whole.
#[derive(Debug)]
pub struct Shared {
    generation: AtomicU64,
    current: RwLock<Arc<Compiled>>,
}

impl Shared {
    /// Generation 1, holding `compiled`.
    pub fn new(compiled: Arc<Compiled>) -> Arc<Self> {
        metrics::gauge!(RULES_GENERATION).set(1.0);
        Arc::new(Self {
            generation: AtomicU64::new(1),
            current: RwLock::new(compiled),
        })
    }

    /// The generation in force: it changes exactly when the stages do.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The stages in force and their generation.
    pub fn current(&self) -> (u64, Arc<Compiled>) {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        (self.generation(), current.clone())
    }

    /// Puts `compiled` in force; returns its generation.
    pub(crate) fn replace(&self, compiled: Arc<Compiled>) -> u64 {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        *current = compiled;
        // Bumped under the lock, so a reader that sees the new generation gets the new stages.
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        metrics::gauge!(RULES_GENERATION).set(generation as f64);
        generation
    }
}

/// Loads the rules and compiles every stage.
pub fn compile(config: &Config) -> Result<Compiled, CompileError> {
    let started = Instant::now();
    let rules = RuleSet::load(&config.rules.paths).map_err(CompileError::Rules)?;
    let matcher = Matcher::build(&rules).map_err(CompileError::Matcher)?;
    let examples = crate::examples::run(&rules, &matcher).map_err(CompileError::Rules)?;
    let scorer = Scorer::build(&config.scoring, &rules)?;
    let queue_ids: Vec<String> = config.queues.iter().map(|q| q.id.clone()).collect();
    let routes = current_routes(config)?;
    // Payload templates are checked here too, so `earshot check` reports a broken override.
    for q in config.queues.iter().filter(|q| q.sink == SinkKind::Webhook) {
        let payload =
            Payload::load(q.format, q.template.as_deref(), &q.vars).map_err(|source| {
                CompileError::Payload {
                    queue: q.id.clone(),
                    source,
                }
            })?;
        if q.cases.follow_ups == Some(true) && !payload.handles(EventType::MentionFollowup) {
            return Err(CompileError::NoFollowupSection {
                queue: q.id.clone(),
                template: payload.template_file().unwrap_or("(built in)").to_string(),
            });
        }
        if config.spikes.queues.contains(&q.id) && !payload.handles(EventType::SpikeStarted) {
            return Err(CompileError::NoSpikeSection {
                queue: q.id.clone(),
                template: payload.template_file().unwrap_or("(built in)").to_string(),
            });
        }
    }
    let router = Router::build(&routes, &queue_ids, &rules).map_err(CompileError::Routes)?;
    let undetectable: Vec<&str> = matcher
        .langs()
        .into_iter()
        .chain(router.langs())
        .filter(|l| !crate::language::detectable(l))
        .collect();
    if !undetectable.is_empty() {
        warn!(
            langs = %undetectable.join(", "),
            detected = %crate::language::DETECTED.join(", "),
            "rules or routes name languages detection cannot tell: they match posts that declare them, never posts without a declared language"
        );
    }
    info!(
        brands = rules.brands().len(),
        rules = rules.rules().len(),
        terms = matcher.term_count(),
        examples,
        ms = started.elapsed().as_millis() as u64,
        "rules compiled"
    );
    Ok(Compiled {
        rules,
        matcher,
        scorer,
        router,
    })
}

/// The routes in force: those of the config file, then those of the routing file read again
/// now (so a reload picks up route changes). A queue added to or changed in the routing file
/// since the start is refused: queues are built at start, so that change needs a restart.
fn current_routes(config: &Config) -> Result<Vec<RouteConfig>, CompileError> {
    let Some(path) = &config.routing.path else {
        return Ok(config.routes.clone());
    };
    let known: Vec<&str> = config.queues.iter().map(|q| q.id.as_str()).collect();
    let routing = Routing::load(path, &known).map_err(CompileError::RoutingFile)?;
    for q in &routing.queues {
        if !config.queues.contains(q) {
            return Err(CompileError::QueueChanged {
                file: path.clone(),
                queue: q.id.clone(),
            });
        }
    }
    let mut routes =
        config.routes[..config.routing.inline_routes.min(config.routes.len())].to_vec();
    routes.extend(routing.routes);
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_the_queue_and_every_bad_route() {
        let e = CompileError::QueueChanged {
            file: PathBuf::from("rules/routing.toml"),
            queue: "crisis".into(),
        };
        assert_eq!(
            e.to_string(),
            "routes:\nrules/routing.toml: queue `crisis` is new or changed since the start; \
             queue changes take effect at restart"
        );
        let e = CompileError::Routes(vec![
            RouteError::UnknownQueue {
                index: 0,
                queue: "x".into(),
            },
            RouteError::UnknownQueue {
                index: 2,
                queue: "y".into(),
            },
        ]);
        assert_eq!(
            e.to_string(),
            "routes:\nroute 0: unknown queue `x`\nroute 2: unknown queue `y`"
        );
        let e = CompileError::NoSpikeSection {
            queue: "tickets".into(),
            template: "(built in)".into(),
        };
        assert!(
            e.to_string()
                .starts_with("queue `tickets`: it is in [spikes] queues but its payload template (built in) has no [spike] section"),
            "{e}"
        );
    }
}
