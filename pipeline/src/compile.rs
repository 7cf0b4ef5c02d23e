//! The compiled rule set and its swap cell: config → rules, matcher, scorer and router
//! ([`compile`]), held as one [`Compiled`] value that workers read and a reload replaces whole
//! ([`Shared`]).
//!
//! Compiling is pure work on files read once: it runs at start, for `earshot check`, and in
//! [`crate::reload`] on a blocking thread. It sits apart from both the wiring ([`crate::app`])
//! and the reloader so that each depends on it and not on the other.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use tracing::info;

use crate::config::{Config, Routing};
use crate::metrics::RULES_GENERATION;
use crate::rules::{RuleErrors, RuleSet};
use crate::sink::payload::{EventType, Payload};
use crate::sink::SinkKind;
use crate::stage::matcher::{Matcher, MatcherError};
use crate::stage::route::{RouteConfig, Router};
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
    /// Routes refer to unknown queues or brands, or the routing file does not load.
    #[error("routes:\n{0}")]
    Routes(String),
    /// A queue's payload template is unusable.
    #[error("queue `{queue}`: {message}")]
    Queue {
        /// Queue id.
        queue: String,
        /// What is wrong.
        message: String,
    },
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
        let payload = Payload::load(q.format, q.template.as_deref(), &q.vars).map_err(|e| {
            CompileError::Queue {
                queue: q.id.clone(),
                message: e.to_string(),
            }
        })?;
        if config.spikes.queues.contains(&q.id) && !payload.handles(EventType::SpikeStarted) {
            return Err(CompileError::Queue {
                queue: q.id.clone(),
                message: format!(
                    "it is in [spikes] queues but its payload template {} has no [spike] section: add one, or send spike events to a queue of format generic or slack",
                    payload.template_file().unwrap_or("(built in)")
                ),
            });
        }
    }
    let router = Router::build(&routes, &queue_ids, &rules).map_err(|errs| {
        CompileError::Routes(
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
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
    let routing = Routing::load(path, &known).map_err(|e| CompileError::Routes(e.to_string()))?;
    for q in &routing.queues {
        if !config.queues.contains(q) {
            return Err(CompileError::Routes(format!(
                "{}: queue `{}` is new or changed since the start; queue changes take effect at restart",
                path.display(),
                q.id
            )));
        }
    }
    let mut routes =
        config.routes[..config.routing.inline_routes.min(config.routes.len())].to_vec();
    routes.extend(routing.routes);
    Ok(routes)
}
