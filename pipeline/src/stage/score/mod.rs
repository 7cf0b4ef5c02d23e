//! Score: matched post + hits → sentiment, category and an urgency 0–100 with its reasons.
//!
//! Runs only on posts that matched a rule. Sentiment is VADER (see [`sentiment`]); crisis
//! cues come from a plain word list in `rules/lexicons/crisis.txt`; urgency is a sum of
//! documented features whose points are configured in `[scoring]`. The `reasons` always add up
//! exactly to the score: when the features sum past 100, a `cap` reason with negative points
//! brings it back, so a reader can always see what built the number.

pub mod sentiment;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde::{Deserialize, Serialize};

use crate::post::Post;
use crate::rules::{BrandKind, RuleSet};
use crate::stage::matcher::Hit;
use crate::stage::normalize::Normalized;
use sentiment::{SentimentLabel, SentimentLexicon, SentimentScratch};

/// The embedded crisis cue list (`rules/lexicons/crisis.txt`).
pub const EMBEDDED_CRISIS_CUES: &str = include_str!("../../../../rules/lexicons/crisis.txt");

/// Points per urgency feature (`[scoring]` in the config). Every feature's contribution is
/// documented here, since each appears by name in a mention's `reasons`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoringConfig {
    /// `negative_sentiment`: points at compound −1, scaled linearly from 0 at −0.05.
    pub negative_max: f64,
    /// `crisis_terms`: points when any crisis cue appears.
    pub crisis: f64,
    /// `question`: points when a post about our brand asks something.
    pub question: f64,
    /// `direct_address`: points when the post names one of the brand's own handles.
    pub direct_address: f64,
    /// `influence`: `influence_per_decade` points per power of ten of followers, at most
    /// `influence_max`.
    pub influence_per_decade: f64,
    /// Cap of `influence`.
    pub influence_max: f64,
    /// `verified`: points for a platform-verified author.
    pub verified: f64,
    /// `engagement`: points per power of ten of likes+reposts+replies, at most
    /// `engagement_max`.
    pub engagement_per_decade: f64,
    /// Cap of `engagement`.
    pub engagement_max: f64,
    /// Optional path to a crisis cue list replacing the embedded one.
    pub crisis_cues: Option<std::path::PathBuf>,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        Self {
            negative_max: 40.0,
            crisis: 30.0,
            question: 10.0,
            direct_address: 15.0,
            influence_per_decade: 5.0,
            influence_max: 20.0,
            verified: 5.0,
            engagement_per_decade: 4.0,
            engagement_max: 10.0,
            crisis_cues: None,
        }
    }
}

/// Primary category of a mention (first version: a later stage adds leads and spam).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Safety, outage, security, legal, boycott or recall cues.
    Crisis,
    /// Negative about the brand.
    Complaint,
    /// Asks something.
    Question,
    /// Positive about the brand.
    Praise,
    /// None of the above.
    Other,
}

/// Sentiment in the contract: VADER's compound score and its label.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SentimentOut {
    /// Compound score in [−1, 1].
    pub score: f64,
    /// negative / neutral / positive by VADER's ±0.05 thresholds.
    pub label: SentimentLabel,
}

/// One contribution to the urgency score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    /// Feature name (`negative_sentiment`, `crisis_terms`, `question`, `direct_address`,
    /// `influence`, `verified`, `engagement`, `cap`).
    pub feature: &'static str,
    /// Points it added (negative only for `cap`).
    pub points: i32,
}

/// Urgency 0–100; `reasons` sum exactly to `score`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Urgency {
    /// 0–100.
    pub score: u8,
    /// What built it.
    pub reasons: Vec<Reason>,
}

/// The score stage's output for one post.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    /// Sentiment.
    pub sentiment: SentimentOut,
    /// Primary category.
    pub category: Category,
    /// Urgency.
    pub urgency: Urgency,
    /// Crisis cues found (for explanations).
    pub crisis_cues: Vec<String>,
}

/// Errors building the scorer.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// The crisis cue file could not be read.
    #[error("{path}: cannot read crisis cues: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The cue list could not be compiled.
    #[error("crisis cues: {0}")]
    Build(String),
}

/// The compiled scorer, shared by all workers.
pub struct Scorer {
    config: ScoringConfig,
    lexicon: &'static SentimentLexicon,
    cues: AhoCorasick,
    cue_words: Vec<String>,
    cue_needs_boundary: Vec<bool>,
}

impl std::fmt::Debug for Scorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scorer")
            .field("cues", &self.cue_words.len())
            .finish()
    }
}

impl Scorer {
    /// Compiles the cue list (embedded or `config.crisis_cues`).
    pub fn build(config: &ScoringConfig) -> Result<Self, ScoreError> {
        let text = match &config.crisis_cues {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ScoreError::Read {
                path: path.display().to_string(),
                source,
            })?,
            None => EMBEDDED_CRISIS_CUES.to_string(),
        };
        let cue_words: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            // Folded exactly as the text they are searched in (`ß` → `ss`, final `ς` → `σ`).
            .map(crate::stage::normalize::casefold)
            .collect();
        let cue_needs_boundary = cue_words
            .iter()
            .map(|w| !w.chars().any(crate::stage::score::is_unspaced_script))
            .collect();
        let cues = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .build(&cue_words)
            .map_err(|e| ScoreError::Build(e.to_string()))?;
        Ok(Self {
            config: config.clone(),
            lexicon: SentimentLexicon::embedded(),
            cues,
            cue_words,
            cue_needs_boundary,
        })
    }

    /// Scores one matched post; `scratch` is the worker's reused sentiment buffer.
    pub fn score(
        &self,
        post: &Post<'_>,
        norm: &Normalized,
        hits: &[Hit],
        rules: &RuleSet,
        scratch: &mut SentimentScratch,
    ) -> Scored {
        let polarity = self.lexicon.polarity_with(&post.text, scratch);
        let sentiment = SentimentOut {
            score: polarity.compound,
            label: polarity.label(),
        };
        let text = norm.text();
        let crisis_cues = self.find_cues(text);
        let ours = hits
            .iter()
            .any(|h| rules.brands()[h.brand as usize].kind == BrandKind::Brand);
        let question = ours && is_question(text);
        let direct = hits.iter().any(|h| {
            rules.brands()[h.brand as usize]
                .handles
                .iter()
                .any(|handle| names_handle(text, handle))
        });

        let c = &self.config;
        let mut reasons = Vec::new();
        let mut add = |feature: &'static str, points: f64| {
            let points = points.round() as i32;
            if points != 0 {
                reasons.push(Reason { feature, points });
            }
        };
        if polarity.compound <= -0.05 {
            add(
                "negative_sentiment",
                c.negative_max * (-polarity.compound - 0.05) / 0.95,
            );
        }
        if !crisis_cues.is_empty() {
            add("crisis_terms", c.crisis);
        }
        if question {
            add("question", c.question);
        }
        if direct {
            add("direct_address", c.direct_address);
        }
        if let Some(f) = post.author.followers {
            add(
                "influence",
                (c.influence_per_decade * log10p1(f)).min(c.influence_max),
            );
        }
        if post.author.verified == Some(true) {
            add("verified", c.verified);
        }
        if let Some(e) = post.engagement {
            add(
                "engagement",
                (c.engagement_per_decade * log10p1(e)).min(c.engagement_max),
            );
        }
        let urgency = capped(reasons);

        let category = if !crisis_cues.is_empty() {
            Category::Crisis
        } else if sentiment.label == SentimentLabel::Negative {
            Category::Complaint
        } else if is_question(text) {
            Category::Question
        } else if sentiment.label == SentimentLabel::Positive {
            Category::Praise
        } else {
            Category::Other
        };
        Scored {
            sentiment,
            category,
            urgency,
            crisis_cues,
        }
    }

    fn find_cues(&self, text: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        for m in self.cues.find_overlapping_iter(text) {
            let i = m.pattern().as_usize();
            if self.cue_needs_boundary[i] && !on_word_boundaries(text, m.start(), m.end()) {
                continue;
            }
            if !found.iter().any(|f| f == &self.cue_words[i]) {
                found.push(self.cue_words[i].clone());
            }
        }
        found
    }
}

/// Sums reasons into a 0–100 score, adding a `cap` reason when they pass 100.
fn capped(mut reasons: Vec<Reason>) -> Urgency {
    let sum: i32 = reasons.iter().map(|r| r.points).sum();
    let score = sum.clamp(0, 100);
    if sum != score {
        reasons.push(Reason {
            feature: "cap",
            points: score - sum,
        });
    }
    Urgency {
        score: score as u8,
        reasons,
    }
}

fn log10p1(n: u64) -> f64 {
    ((n as f64) + 1.0).log10()
}

/// Whether a post asks something: a question mark (ASCII, full-width or Spanish opening).
fn is_question(text: &str) -> bool {
    text.contains(['?', '？', '¿'])
}

/// Whether `text` (casefolded) names `@handle` as a whole handle (`@acmehq` or
/// `@acmehq.bsky.social` when the handle is `acmehq`).
fn names_handle(text: &str, handle: &str) -> bool {
    let handle = crate::stage::normalize::casefold(handle.trim_start_matches('@'));
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

/// Whether `text[start..end]` is bounded by non-word characters on both sides.
fn on_word_boundaries(text: &str, start: usize, end: usize) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let before = text[..start].chars().next_back().is_none_or(|c| !word(c));
    let after = text[end..].chars().next().is_none_or(|c| !word(c));
    before && after
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
    fn reasons_add_up_to_the_score_and_cap_at_100() {
        let cases: [(&[i32], u8); 4] = [
            (&[], 0),
            (&[40, 30], 70),
            (&[40, 30, 15, 20, 10], 100),
            (&[100, 1], 100),
        ];
        for (points, want) in cases {
            let reasons = points
                .iter()
                .map(|&p| Reason {
                    feature: "x",
                    points: p,
                })
                .collect();
            let u = capped(reasons);
            assert_eq!(u.score, want);
            assert_eq!(
                u.reasons.iter().map(|r| r.points).sum::<i32>(),
                i32::from(u.score)
            );
        }
    }

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

    #[test]
    fn crisis_cues_respect_word_boundaries() {
        let scorer = Scorer::build(&ScoringConfig::default()).unwrap();
        let cases: [(&str, &[&str]); 5] = [
            ("the app is down again", &["is down"]),
            ("this is an issue", &[]),
            ("we will sue acme", &["sue"]),
            ("アプリの障害です", &["障害"]),
            (
                "data breach and lawsuit",
                &["data breach", "breach", "lawsuit"],
            ),
        ];
        for (text, want) in cases {
            let mut got = scorer.find_cues(text);
            got.sort();
            let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            want.sort();
            assert_eq!(got, want, "{text}");
        }
    }
}
