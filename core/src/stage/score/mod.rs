//! Score: a matched post and its hits → sentiment, categories, who is speaking, urgency 0–100
//! with its reasons, and a recommendation.
//!
//! Runs only on posts that matched a rule (a few percent of a firehose), in the worker.
//!
//! # Shape
//! - [`sentiment`]: VADER, ported rule for rule and checked against the reference.
//! - [`cues`]: the cue lists of `rules/cues/` (service failures, crisis kinds, purchase
//!   intent, questions, praise, spam, sarcasm, trolls) in all covered languages, one
//!   automaton. Their valences are added to VADER's sum, so "order delayed three hours,
//!   again" is negative although it holds no emotional word, and a sarcastic post's positive
//!   words count as negative.
//! - [`category`], [`author`], [`urgency`], [`recommend`]: pure decisions over that evidence,
//!   weighted by `rules/scoring.toml` ([`weights`]).
//!
//! Every number a mention carries can be traced: `cues` names the words that counted,
//! `urgency.reasons` add up exactly to the score, and `recommendation.reason` says why.

pub mod author;
pub mod category;
pub mod cues;
pub mod recommend;
pub mod sentiment;
pub mod urgency;
pub mod weights;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::diagnostic::Diagnostic;
use crate::normalize::Normalized;
use crate::post::Post;
use crate::rules::{BrandKind, RuleSet};
use crate::stage::matcher::Hit;
use author::{AuthorLists, Speaker};
pub use category::Category;
use category::Evidence;
use cues::{CueHit, Cues, Signal};
use recommend::{Facts, Recommendation};
use sentiment::{SentimentLabel, SentimentLexicon, SentimentScratch};
use urgency::{per_decade, Reasons};
pub use urgency::{Reason, Urgency};
use weights::Weights;

/// The embedded `rules/scoring.toml` and cue files, used when `[scoring] path` is not set.
const EMBEDDED: &[(&str, &str)] = &[
    (
        "scoring.toml",
        include_str!("../../../../rules/scoring.toml"),
    ),
    (
        "cues/complaint.toml",
        include_str!("../../../../rules/cues/complaint.toml"),
    ),
    (
        "cues/crisis.toml",
        include_str!("../../../../rules/cues/crisis.toml"),
    ),
    (
        "cues/lead.toml",
        include_str!("../../../../rules/cues/lead.toml"),
    ),
    (
        "cues/question.toml",
        include_str!("../../../../rules/cues/question.toml"),
    ),
    (
        "cues/praise.toml",
        include_str!("../../../../rules/cues/praise.toml"),
    ),
    (
        "cues/spam.toml",
        include_str!("../../../../rules/cues/spam.toml"),
    ),
    (
        "cues/tone.toml",
        include_str!("../../../../rules/cues/tone.toml"),
    ),
];

/// `[scoring]` in the config.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoringConfig {
    /// The scoring file (`rules/scoring.toml`), whose `cues` paths are relative to it. Not set:
    /// the copy built into the binary.
    pub path: Option<PathBuf>,
}

/// Sentiment in the contract.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SentimentOut {
    /// In [−1, 1]: VADER's compound with the cue valences added and sarcasm read.
    pub score: f64,
    /// negative / neutral / positive by VADER's ±0.05 thresholds on `score`.
    pub label: SentimentLabel,
    /// VADER's own compound, for comparison with other VADER-based tools.
    pub vader: f64,
}

/// A cue that counted in the judgement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CueOut {
    /// The cue (casefolded).
    pub cue: String,
    /// What it is evidence of (`complaint`, `crisis`, `lead`, …).
    pub signal: &'static str,
    /// Crisis or spam kind (`legal`, `outage`, `job`), when the list gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// The score stage's output for one post.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    /// Sentiment.
    pub sentiment: SentimentOut,
    /// Primary category.
    pub category: Category,
    /// Every category that applies, primary first.
    pub categories: Vec<Category>,
    /// Urgency with its reasons.
    pub urgency: Urgency,
    /// Who is speaking.
    pub speaker: Speaker,
    /// What to do.
    pub recommendation: Recommendation,
    /// The cues that counted.
    pub cues: Vec<CueOut>,
}

/// What the score stage knows about a matched post besides its text.
#[derive(Debug, Clone, Copy)]
pub struct ScoreInput<'a> {
    /// The post.
    pub post: &'a Post<'a>,
    /// Its normalized text.
    pub norm: &'a Normalized,
    /// The rules it matched.
    pub hits: &'a [Hit],
    /// The rule set of the hits.
    pub rules: &'a RuleSet,
    /// The author's tier when the author is in the CRM customer table (`Some(None)`: a
    /// customer without a tier).
    pub customer_tier: Option<Option<&'a str>>,
    /// A matched brand is in an active mention spike.
    pub in_spike: bool,
}

/// Buffers a worker reuses from one post to the next.
#[derive(Debug, Default)]
pub struct ScoreScratch {
    sentiment: SentimentScratch,
    cues: Vec<CueHit>,
}

/// Errors building the scorer, each with its place.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ScoreError(pub Vec<Diagnostic>);

/// The compiled judgement, shared by all workers.
#[derive(Debug)]
pub struct Scorer {
    weights: Weights,
    lexicon: &'static SentimentLexicon,
    cues: Cues,
    authors: AuthorLists,
    /// Per brand of the rules: its id and handles, casefolded, for [`blame`].
    brand_names: Vec<Vec<String>>,
}

impl Scorer {
    /// Loads `config.path` (or the embedded scoring file) and its cue lists, for `rules`.
    pub fn build(config: &ScoringConfig, rules: &RuleSet) -> Result<Self, ScoreError> {
        let (weights, cues) = match &config.path {
            Some(path) => load_files(path)?,
            None => embedded()?,
        };
        let brand_names = rules
            .brands()
            .iter()
            .map(|b| {
                std::iter::once(b.id.0.as_str())
                    .chain(b.handles.iter().map(String::as_str))
                    .map(|n| crate::normalize::casefold(n.trim_start_matches('@')))
                    .filter(|n| !n.is_empty())
                    .collect()
            })
            .collect();
        Ok(Self {
            brand_names,
            authors: AuthorLists::build(&weights.authors, rules),
            weights,
            lexicon: SentimentLexicon::embedded(),
            cues,
        })
    }

    /// Judges one matched post.
    pub fn score(&self, input: &ScoreInput<'_>, scratch: &mut ScoreScratch) -> Scored {
        let ScoreInput {
            post,
            norm,
            hits,
            rules,
            ..
        } = *input;
        let text = norm.text();
        let hits_cues = &mut scratch.cues;
        hits_cues.clear();
        self.cues.find(text, hits_cues);
        let signals = self.cues.signals(hits_cues);
        let groups = self.cues.groups();
        let failure = signals.has(Signal::Complaint) || signals.has(Signal::Crisis);
        let sarcastic =
            signals.has(Signal::Sarcasm) || (signals.has(Signal::SarcasmFrame) && failure);

        // Sentiment: VADER plus the valences of the cues that count.
        let polarity = self
            .lexicon
            .polarity_with(&post.text, &mut scratch.sentiment);
        let but = contrast_at(text);
        let mut extra = 0.0;
        let mut counted: Vec<CueOut> = Vec::new();
        for h in hits_cues.iter().filter(|h| !h.negated) {
            let g = &groups[h.group as usize];
            let counts = match g.signal {
                Signal::Repeat => failure,
                Signal::Praise => !sarcastic,
                Signal::SarcasmFrame => sarcastic,
                _ => true,
            };
            if !counts
                || counted
                    .iter()
                    .any(|c| c.cue == self.cues.text(h) && c.signal == g.signal.as_str())
            {
                continue;
            }
            let weight = match but {
                Some(b) if h.span.start < b => 0.5,
                Some(_) => 1.5,
                None => 1.0,
            };
            extra += g.valence * weight;
            counted.push(CueOut {
                cue: self.cues.text(h).to_string(),
                signal: g.signal.as_str(),
                kind: g.kind.clone(),
            });
        }
        let english = post
            .lang
            .as_deref()
            .is_none_or(|l| l.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("en")));
        let score = sentiment::compound_with(
            &scratch.sentiment,
            &post.text,
            english,
            |token| self.cues.is_neutral(token),
            extra,
            sarcastic,
        );
        let sentiment = SentimentOut {
            score,
            label: SentimentLabel::of(score),
            vader: polarity.compound,
        };

        // Category.
        let brand_kind = |h: &Hit| rules.brands()[h.brand as usize].kind;
        let ours = hits.iter().any(|h| brand_kind(h) == BrandKind::Brand);
        let theirs = hits.iter().any(|h| brand_kind(h) == BrandKind::Competitor);
        let (about_ours, about_theirs) = if ours && theirs {
            blame(text, hits, rules, &self.brand_names, hits_cues, groups)
        } else {
            (ours, theirs)
        };
        let asks = is_question(text) || signals.has(Signal::Question);
        let (category, categories) = category::categorize(&Evidence {
            signals,
            label: sentiment.label,
            sarcastic,
            ours: about_ours,
            competitor: about_theirs,
            asks,
        });

        // Who is speaking.
        let speaker = self.authors.classify(
            &post.author,
            author::Context {
                customer: input.customer_tier.is_some(),
                lead: categories.contains(&Category::Lead),
                spam: category == Category::Spam,
            },
        );

        // Urgency.
        let w = &self.weights.urgency;
        let mut reasons = Reasons::default();
        if sentiment.score <= -0.05 {
            reasons.add(
                "negative_sentiment",
                w.negative_max * (-sentiment.score - 0.05) / 0.95,
            );
        }
        let mut crisis_kinds: Vec<&str> = Vec::new();
        for c in counted.iter().filter(|c| c.signal == "crisis") {
            let kind = c.kind.as_deref().unwrap_or("crisis");
            if !crisis_kinds.contains(&kind) {
                crisis_kinds.push(kind);
            }
        }
        if !crisis_kinds.is_empty() {
            reasons.add("crisis_terms", w.crisis);
        }
        let cp = &w.category;
        reasons.add(
            "category",
            match category {
                Category::Crisis => cp.crisis,
                Category::Spam => cp.spam,
                Category::Complaint => cp.complaint,
                Category::Lead => cp.lead,
                Category::Question => cp.question,
                Category::Praise => cp.praise,
                Category::Other => cp.other,
            },
        );
        if ours && asks {
            reasons.add("question", w.question);
        }
        let direct = hits.iter().any(|h| {
            rules.brands()[h.brand as usize]
                .handles
                .iter()
                .any(|handle| names_handle(text, handle))
        });
        if direct {
            reasons.add("direct_address", w.direct_address);
        }
        if let Some(f) = post.author.followers {
            reasons.add(
                "influence",
                per_decade(f, w.influence_per_decade, w.influence_max),
            );
        }
        if post.author.verified == Some(true) {
            reasons.add("verified", w.verified);
        }
        if let Some(tier) = input.customer_tier {
            reasons.add("customer_tier", self.weights.tier_points(tier));
        }
        if let Some(e) = post.engagement {
            reasons.add(
                "engagement",
                per_decade(e, w.engagement_per_decade, w.engagement_max),
            );
        }
        if input.in_spike {
            reasons.add("spike", w.spike);
        }
        let urgency = reasons.finish();

        let recommendation = recommend::recommend(
            &Facts {
                category,
                crisis_kinds: &crisis_kinds,
                classes: &speaker.classes,
                followers: post.author.followers,
                urgency: urgency.score,
                troll: signals.has(Signal::Troll),
                bait: signals.has(Signal::Bait),
                ours,
            },
            &self.weights.recommend,
        );
        Scored {
            sentiment,
            category,
            categories,
            urgency,
            speaker,
            recommendation,
            cues: counted,
        }
    }
}

/// The scoring file and cue files built into the binary.
fn embedded() -> Result<(Weights, Cues), ScoreError> {
    let get = |name: &str| EMBEDDED.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
    let weights =
        Weights::parse("<embedded rules/scoring.toml>", EMBEDDED[0].1).map_err(ScoreError)?;
    let mut files = Vec::new();
    for name in &weights.cues {
        match get(name) {
            Some(text) => files.push((format!("<embedded rules/{name}>"), text.to_string())),
            None => {
                return Err(ScoreError(vec![Diagnostic {
                    file: "<embedded rules/scoring.toml>".into(),
                    line: 0,
                    col: 0,
                    message: format!("cue file `{name}` is not built in"),
                }]))
            }
        }
    }
    let cues = Cues::parse(&files).map_err(ScoreError)?;
    Ok((weights, cues))
}

/// The scoring file at `path` and the cue files it lists.
fn load_files(path: &Path) -> Result<(Weights, Cues), ScoreError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ScoreError(vec![Diagnostic {
            file: name.clone(),
            line: 0,
            col: 0,
            message: format!("cannot read the scoring file: {e}"),
        }])
    })?;
    let weights = Weights::parse(&name, &text).map_err(ScoreError)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let paths: Vec<PathBuf> = weights.cues.iter().map(|c| base.join(c)).collect();
    let cues = Cues::load(&paths).map_err(ScoreError)?;
    Ok((weights, cues))
}

/// The files a scoring configuration reads: the scoring file and its cue files (for the rule
/// watcher, which reloads when any of them changes). Empty for the embedded copy.
pub fn watched_files(config: &ScoringConfig) -> Vec<PathBuf> {
    let Some(path) = &config.path else {
        return Vec::new();
    };
    let mut out = vec![path.clone()];
    if let Ok(text) = std::fs::read_to_string(path) {
        if let Ok(w) = Weights::parse("", &text) {
            let base = path.parent().unwrap_or(Path::new("."));
            out.extend(w.cues.iter().map(|c| base.join(c)));
        }
    }
    out
}

/// In a post naming both our brand and a competitor, whom the complaint, crisis and churn
/// cues are about: each goes to the brand named nearest to it ("Globex lost my parcel again,
/// switching to Acme" blames Globex). Without such cues, or without a place for a brand's
/// name, the post counts as about ours, so that a person reads it.
fn blame(
    text: &str,
    hits: &[Hit],
    rules: &RuleSet,
    brand_names: &[Vec<String>],
    cues: &[CueHit],
    groups: &[cues::Group],
) -> (bool, bool) {
    let mut anchors: Vec<(usize, BrandKind)> = Vec::new();
    for h in hits {
        let kind = rules.brands()[h.brand as usize].kind;
        for name in &brand_names[h.brand as usize] {
            anchors.extend(text.match_indices(name.as_str()).map(|(at, _)| (at, kind)));
        }
    }
    let (mut ours, mut theirs) = (false, false);
    for c in cues.iter().filter(|c| !c.negated) {
        let signal = groups[c.group as usize].signal;
        if !matches!(signal, Signal::Complaint | Signal::Crisis | Signal::Churn) {
            continue;
        }
        let nearest = anchors
            .iter()
            .min_by_key(|(at, _)| at.abs_diff(c.span.start))
            .map(|(_, kind)| *kind);
        match nearest {
            Some(BrandKind::Competitor) => theirs = true,
            _ => ours = true,
        }
    }
    if !ours && !theirs {
        ours = true;
    }
    (ours, theirs)
}

/// Contrast words after which a clause weighs more (VADER's "but" rule, in the covered
/// languages).
const CONTRAST: &[&str] = &["but", "pero", "mas", "aber", "mais", "however"];

/// Byte offset of the first contrast word in `text` (casefolded).
fn contrast_at(text: &str) -> Option<usize> {
    let mut offset = 0;
    for word in text.split_inclusive(|c: char| !c.is_alphanumeric()) {
        let w = word.trim_end_matches(|c: char| !c.is_alphanumeric());
        if CONTRAST.contains(&w) {
            return Some(offset);
        }
        offset += word.len();
    }
    None
}

/// Whether a post asks something: a question mark (ASCII, full-width or Spanish opening).
fn is_question(text: &str) -> bool {
    text.contains(['?', '？', '¿'])
}

/// Whether `text` (casefolded) names `@handle` as a whole handle (`@acmehq` or
/// `@acmehq.bsky.social` when the handle is `acmehq`).
fn names_handle(text: &str, handle: &str) -> bool {
    let handle = crate::normalize::casefold(handle.trim_start_matches('@'));
    if handle.is_empty() {
        return false;
    }
    let mut from = 0;
    while let Some(pos) = text[from..].find('@') {
        let at = from + pos + 1;
        if text[at..].starts_with(&handle) {
            let end = at + handle.len();
            match text[end..].chars().next() {
                None => return true,
                Some(c) if !(c.is_alphanumeric() || c == '_' || c == '-') && c != '.' => {
                    return true
                }
                Some('.') => {
                    // `@acmehq.bsky.social` names `acmehq`; a sentence-ending dot also counts.
                    return true;
                }
                _ => {}
            }
        }
        from = at;
    }
    false
}

/// Scripts written without spaces between words (CJK, kana, Thai, Lao, Khmer, Myanmar), where
/// word boundaries mean nothing and terms match as substrings.
pub fn is_unspaced_script(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF   // Thai, Lao
        | 0x1000..=0x109F // Myanmar
        | 0x1780..=0x17FF // Khmer
        | 0x3040..=0x30FF // Hiragana, Katakana
        | 0x3400..=0x4DBF // CJK extension A
        | 0x4E00..=0x9FFF // CJK unified
        | 0xF900..=0xFAFF // CJK compatibility
        | 0x20000..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_named_whole() {
        let cases = [
            ("hey @acmehq fix this", "acmehq", true),
            (
                "hey @acmehq.bsky.social fix this",
                "@acmehq.bsky.social",
                true,
            ),
            ("hey @acmehq.bsky.social", "acmehq", true),
            ("hey @acmehqx", "acmehq", false),
            ("mail acmehq", "acmehq", false),
            ("@acmehq", "acmehq", true),
            ("@acmehq_support help", "acmehq", false),
        ];
        for (text, handle, want) in cases {
            assert_eq!(names_handle(text, handle), want, "{text} / {handle}");
        }
    }

    #[test]
    fn questions_in_several_scripts() {
        for (text, want) in [
            ("is it down?", true),
            ("¿funciona", true),
            ("動かない？", true),
            ("ok", false),
        ] {
            assert_eq!(is_question(text), want, "{text}");
        }
    }

    fn rules() -> RuleSet {
        RuleSet::parse_str(
            "t.rules",
            "brand acme \"Acme\"\n  rule a: acme\n",
            Path::new("."),
        )
        .unwrap()
    }

    #[test]
    fn the_shipped_files_on_disk_are_the_built_in_copy() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
        let path = dir.join("scoring.toml");
        let (from_disk, disk_cues) = load_files(&path).unwrap();
        let (built_in, built_in_cues) = embedded().unwrap();
        assert_eq!(from_disk, built_in);
        assert_eq!(disk_cues.len(), built_in_cues.len());
        let config = ScoringConfig {
            path: Some(path.clone()),
        };
        let watched = watched_files(&config);
        assert_eq!(watched.len(), 1 + built_in.cues.len());
        assert!(watched.iter().all(|p| p.exists()), "{watched:?}");
        assert_eq!(
            EMBEDDED.len(),
            1 + built_in.cues.len(),
            "every listed cue file is built in"
        );
    }

    #[test]
    fn a_missing_scoring_or_cue_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let e = Scorer::build(
            &ScoringConfig {
                path: Some(missing.clone()),
            },
            &rules(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(&format!(
                "{}: cannot read the scoring file",
                missing.display()
            )),
            "{e}"
        );

        let shipped = include_str!("../../../../rules/scoring.toml");
        let scoring = dir.path().join("scoring.toml");
        std::fs::write(&scoring, shipped).unwrap();
        let e = Scorer::build(
            &ScoringConfig {
                path: Some(scoring),
            },
            &rules(),
        )
        .unwrap_err()
        .to_string();
        let cue = dir.path().join("cues/complaint.toml");
        assert!(
            e.contains(&format!("{}: cannot read the cue file", cue.display())),
            "{e}"
        );
    }
}
