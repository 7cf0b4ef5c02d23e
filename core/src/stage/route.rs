//! Route: scored mention → the queues it goes to.
//!
//! Route rules (`[[route]]` in the routing file or the config) are conditions on brand, brand
//! kind, category, sentiment, urgency, author class, recommended action and language, each
//! naming one queue; a mention goes to every queue one
//! of whose routes it satisfies (each queue once). Compiled once against the rule set: brand
//! ids become indices, so routing a mention is a few comparisons per route and no string work.
//! Noise control (reposts, storms, cool-downs, rate limits) comes after routing, per queue,
//! in the outbox writer ([`crate::noise`]).

use serde::Deserialize;

use crate::post::Post;
use crate::rules::{BrandKind, RuleSet};
use crate::stage::matcher::Hit;
use crate::stage::score::author::AuthorClass;
use crate::stage::score::recommend::Action;
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
    /// Author classes (the mention's primary `author_class`).
    #[serde(default)]
    pub author_classes: Vec<AuthorClass>,
    /// Recommended actions (`recommendation.action`).
    #[serde(default)]
    pub actions: Vec<Action>,
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
    author_classes: Vec<AuthorClass>,
    actions: Vec<Action>,
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
                    author_classes: r.author_classes.clone(),
                    actions: r.actions.clone(),
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

    /// Whether some route filters on language: a matched post that declares none then gets
    /// one detected before it is routed.
    pub fn needs_lang(&self) -> bool {
        self.routes.iter().any(|r| !r.langs.is_empty())
    }

    /// The languages routes filter on, each once.
    pub fn langs(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .routes
            .iter()
            .flat_map(|r| r.langs.iter().map(String::as_str))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
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
                && (r.author_classes.is_empty()
                    || r.author_classes.contains(&scored.speaker.class))
                && (r.actions.is_empty() || r.actions.contains(&scored.recommendation.action))
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

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::path::Path;

    use super::*;
    use crate::post::{Author, Platform, PostFlags};
    use crate::stage::score::author::Speaker;
    use crate::stage::score::recommend::Recommendation;
    use crate::stage::score::{Reason, SentimentOut, Urgency};

    fn rules() -> RuleSet {
        RuleSet::parse_str(
            "t.rules",
            "brand acme \"Acme\"\n  rule acme: acme\ncompetitor globex \"Globex\"\n  rule globex: globex\n",
            Path::new("."),
        )
        .expect("test rules parse")
    }

    fn post(lang: Option<&'static str>) -> Post<'static> {
        Post {
            platform: Platform::Bluesky,
            id: Cow::Borrowed("1"),
            uri: None,
            url: None,
            author: Author {
                id: Cow::Borrowed("did:plc:x"),
                ..Author::default()
            },
            text: Cow::Borrowed("text"),
            lang: lang.map(Cow::Borrowed),
            created_at: None,
            time_us: None,
            engagement: None,
            flags: PostFlags::default(),
            links: Vec::new(),
            original: None,
            thread: Default::default(),
        }
    }

    fn scored(category: Category, label: SentimentLabel, urgency: u8) -> Scored {
        Scored {
            sentiment: SentimentOut {
                score: 0.0,
                label,
                vader: 0.0,
            },
            category,
            categories: vec![category],
            urgency: Urgency {
                score: urgency,
                reasons: vec![Reason {
                    feature: "x",
                    points: i32::from(urgency),
                }],
            },
            speaker: Speaker {
                class: AuthorClass::Public,
                classes: vec![AuthorClass::Public],
            },
            recommendation: Recommendation {
                action: Action::Monitor,
                team: None,
                reason: String::new(),
            },
            cues: Vec::new(),
        }
    }

    fn with(mut s: Scored, class: AuthorClass, action: Action) -> Scored {
        s.speaker.class = class;
        s.speaker.classes = vec![class];
        s.recommendation.action = action;
        s
    }

    fn hit(brand: u32) -> Hit {
        Hit {
            rule: brand,
            brand,
            terms: vec![0],
        }
    }

    #[test]
    fn routes_table() {
        let rules = rules();
        let queues: Vec<String> = ["support", "sales", "crisis", "es", "press", "escalations"]
            .map(String::from)
            .to_vec();
        let routes = vec![
            RouteConfig {
                queue: "support".into(),
                kinds: vec![BrandKind::Brand],
                categories: vec![Category::Complaint, Category::Question],
                min_urgency: 20,
                ..RouteConfig::default()
            },
            RouteConfig {
                queue: "sales".into(),
                brands: vec!["globex".into()],
                sentiments: vec![SentimentLabel::Negative],
                ..RouteConfig::default()
            },
            RouteConfig {
                queue: "crisis".into(),
                categories: vec![Category::Crisis],
                ..RouteConfig::default()
            },
            // A second route to the same queue: the mention still goes there once.
            RouteConfig {
                queue: "crisis".into(),
                min_urgency: 90,
                ..RouteConfig::default()
            },
            RouteConfig {
                queue: "es".into(),
                langs: vec!["es".into()],
                ..RouteConfig::default()
            },
            RouteConfig {
                queue: "press".into(),
                author_classes: vec![AuthorClass::Press, AuthorClass::Influencer],
                ..RouteConfig::default()
            },
            RouteConfig {
                queue: "escalations".into(),
                kinds: vec![BrandKind::Brand],
                actions: vec![Action::Escalate],
                ..RouteConfig::default()
            },
        ];
        let router = Router::build(&routes, &queues, &rules).expect("routes compile");
        use Category::*;
        use SentimentLabel::*;
        type Case = (
            &'static str,
            Vec<Hit>,
            Option<&'static str>,
            Scored,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "acme complaint",
                vec![hit(0)],
                Some("en"),
                scored(Complaint, Negative, 30),
                vec!["support"],
            ),
            (
                "below min urgency",
                vec![hit(0)],
                Some("en"),
                scored(Complaint, Negative, 19),
                vec![],
            ),
            (
                "praise goes nowhere",
                vec![hit(0)],
                None,
                scored(Praise, Positive, 50),
                vec![],
            ),
            (
                "unhappy globex",
                vec![hit(1)],
                None,
                scored(Complaint, Negative, 5),
                vec!["sales"],
            ),
            (
                "happy globex",
                vec![hit(1)],
                None,
                scored(Praise, Positive, 5),
                vec![],
            ),
            (
                "crisis twice, once",
                vec![hit(0)],
                None,
                scored(Crisis, Neutral, 95),
                vec!["crisis"],
            ),
            (
                "both brands",
                vec![hit(0), hit(1)],
                Some("es-MX"),
                scored(Complaint, Negative, 40),
                vec!["support", "sales", "es"],
            ),
            (
                "a journalist asking",
                vec![hit(0)],
                None,
                with(
                    scored(Question, Neutral, 10),
                    AuthorClass::Press,
                    Action::Monitor,
                ),
                vec!["press"],
            ),
            (
                "escalate on our brand",
                vec![hit(0)],
                None,
                with(
                    scored(Complaint, Negative, 25),
                    AuthorClass::Public,
                    Action::Escalate,
                ),
                vec!["support", "escalations"],
            ),
            (
                "escalate on a competitor only",
                vec![hit(1)],
                None,
                with(
                    scored(Praise, Positive, 10),
                    AuthorClass::Public,
                    Action::Escalate,
                ),
                vec![],
            ),
            (
                "no lang never matches lang",
                vec![hit(0)],
                None,
                scored(Other, Neutral, 0),
                vec![],
            ),
        ];
        let mut out = Vec::new();
        for (name, hits, lang, s, want) in cases {
            router.route(&post(lang), &hits, &rules, &s, &mut out);
            let got: Vec<&str> = out
                .iter()
                .map(|&i| router.queues()[i as usize].as_str())
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn unknown_queues_and_brands_are_all_reported() {
        let rules = rules();
        let routes = vec![
            RouteConfig {
                queue: "nope".into(),
                ..RouteConfig::default()
            },
            RouteConfig {
                queue: "a".into(),
                brands: vec!["initech".into()],
                ..RouteConfig::default()
            },
        ];
        let errors = Router::build(&routes, &["a".to_string()], &rules).unwrap_err();
        assert_eq!(
            errors,
            vec![
                RouteError::UnknownQueue {
                    index: 0,
                    queue: "nope".into()
                },
                RouteError::UnknownBrand {
                    index: 1,
                    brand: "initech".into()
                },
            ]
        );
    }
}
