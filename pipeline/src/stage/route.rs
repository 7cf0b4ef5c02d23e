//! Route: scored mention → the queues it goes to.
//!
//! Route rules (`[[route]]` in the config) are conditions on brand, brand kind, category,
//! sentiment, urgency and language, each naming one queue; a mention goes to every queue one
//! of whose routes it satisfies (each queue once). Compiled once against the rule set: brand
//! ids become indices, so routing a mention is a few comparisons per route and no string work.
//! Later stages of the product add noise control (dedup, rate limits) on top of this.

use serde::Deserialize;

use crate::post::Post;
use crate::rules::{BrandKind, RuleSet};
use crate::stage::matcher::Hit;
use crate::stage::score::sentiment::SentimentLabel;
use crate::stage::score::{Category, Scored};

/// One `[[route]]` table: every condition given must hold; an empty list means "any".
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The queue id mentions go to.
    pub queue: String,
    /// Brand ids (any of them matched).
    #[serde(default)]
    pub brands: Vec<String>,
    /// `brand` and/or `competitor` (a matched brand of that kind).
    #[serde(default)]
    pub kinds: Vec<BrandKind>,
    /// Categories.
    #[serde(default)]
    pub categories: Vec<Category>,
    /// Sentiment labels.
    #[serde(default)]
    pub sentiments: Vec<SentimentLabel>,
    /// Lowest urgency (inclusive).
    #[serde(default)]
    pub min_urgency: u8,
    /// Primary language subtags (`en` matches `en-US`).
    #[serde(default)]
    pub langs: Vec<String>,
}

/// A route rule referring to something that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The queue id is not defined.
    #[error("route {index}: unknown queue `{queue}`")]
    UnknownQueue {
        /// Position of the route in the config (0-based).
        index: usize,
        /// The id given.
        queue: String,
    },
    /// The brand id is not defined in the rules.
    #[error("route {index}: unknown brand `{brand}` (not defined in the rules)")]
    UnknownBrand {
        /// Position of the route in the config (0-based).
        index: usize,
        /// The id given.
        brand: String,
    },
}

#[derive(Debug, Clone)]
struct CompiledRoute {
    queue: u16,
    brands: Vec<u32>,
    kinds: Vec<BrandKind>,
    categories: Vec<Category>,
    sentiments: Vec<SentimentLabel>,
    min_urgency: u8,
    langs: Vec<String>,
}

/// The compiled routing table, shared by all workers.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<CompiledRoute>,
    queues: Vec<String>,
}

impl Router {
    /// Compiles `routes` against the queue ids and the rule set, reporting every unknown id.
    pub fn build(
        routes: &[RouteConfig],
        queues: &[String],
        rules: &RuleSet,
    ) -> Result<Router, Vec<RouteError>> {
        let mut errors = Vec::new();
        let mut compiled = Vec::new();
        for (index, r) in routes.iter().enumerate() {
            let queue = queues.iter().position(|q| *q == r.queue);
            if queue.is_none() {
                errors.push(RouteError::UnknownQueue {
                    index,
                    queue: r.queue.clone(),
                });
            }
            let mut brands = Vec::new();
            for b in &r.brands {
                match rules.brands().iter().position(|x| x.id.0 == *b) {
                    Some(i) => brands.push(i as u32),
                    None => errors.push(RouteError::UnknownBrand {
                        index,
                        brand: b.clone(),
                    }),
                }
            }
            if let Some(queue) = queue {
                compiled.push(CompiledRoute {
                    queue: queue as u16,
                    brands,
                    kinds: r.kinds.clone(),
                    categories: r.categories.clone(),
                    sentiments: r.sentiments.clone(),
                    min_urgency: r.min_urgency,
                    langs: r
                        .langs
                        .iter()
                        .map(|l| primary_subtag(l).to_ascii_lowercase())
                        .collect(),
                });
            }
        }
        if errors.is_empty() {
            Ok(Router {
                routes: compiled,
                queues: queues.to_vec(),
            })
        } else {
            Err(errors)
        }
    }

    /// Queue ids by index.
    pub fn queues(&self) -> &[String] {
        &self.queues
    }

    /// Writes into `out` the indices of the queues the mention goes to, each once, in queue
    /// order.
    pub fn route(
        &self,
        post: &Post<'_>,
        hits: &[Hit],
        rules: &RuleSet,
        scored: &Scored,
        out: &mut Vec<u16>,
    ) {
        out.clear();
        let lang = post.lang.as_deref().map(primary_subtag);
        for r in &self.routes {
            if out.contains(&r.queue) {
                continue;
            }
            let brand_ok = r.brands.is_empty() || hits.iter().any(|h| r.brands.contains(&h.brand));
            let kind_ok = r.kinds.is_empty()
                || hits
                    .iter()
                    .any(|h| r.kinds.contains(&rules.brands()[h.brand as usize].kind));
            let ok = brand_ok
                && kind_ok
                && (r.categories.is_empty() || r.categories.contains(&scored.category))
                && (r.sentiments.is_empty() || r.sentiments.contains(&scored.sentiment.label))
                && scored.urgency.score >= r.min_urgency
                && (r.langs.is_empty()
                    || lang.is_some_and(|l| r.langs.iter().any(|x| x.eq_ignore_ascii_case(l))));
            if ok {
                out.push(r.queue);
            }
        }
        out.sort_unstable();
    }
}

fn primary_subtag(lang: &str) -> &str {
    lang.split(['-', '_']).next().unwrap_or(lang)
}
