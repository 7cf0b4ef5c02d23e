//! `rules/scoring.toml`: the numbers behind urgency, who-is-speaking and recommendations, and
//! the list of cue files. Validated completely at load: unknown keys, wrong types and
//! out-of-range values are reported as `file:line:col`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::diagnostic::{line_col, Diagnostic};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    /// Cue files, relative to the scoring file.
    pub cues: Vec<String>,
    /// Urgency points.
    pub urgency: UrgencyWeights,
    /// Who is speaking.
    #[serde(default)]
    pub authors: AuthorSettings,
    /// Recommendation thresholds.
    #[serde(default)]
    pub recommend: RecommendSettings,
}

/// `[urgency]`: points per feature (each appears by name in `reasons`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrgencyWeights {
    /// `negative_sentiment` at sentiment −1 (linear from 0 at −0.05).
    pub negative_max: f64,
    /// `crisis_terms`.
    pub crisis: f64,
    /// `question`.
    pub question: f64,
    /// `direct_address`.
    pub direct_address: f64,
    /// `influence` per power of ten of followers…
    pub influence_per_decade: f64,
    /// …at most this.
    pub influence_max: f64,
    /// `verified`.
    pub verified: f64,
    /// `engagement` per power of ten of likes + reposts + replies…
    pub engagement_per_decade: f64,
    /// …at most this.
    pub engagement_max: f64,
    /// `spike`: the brand is in an active mention spike.
    pub spike: f64,
    /// `category`: points by primary category.
    pub category: CategoryPoints,
    /// `customer_tier`: points by CRM tier (lowercase), with `default`.
    pub customer_tier: BTreeMap<String, f64>,
}

/// `[urgency.category]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryPoints {
    /// Crisis.
    pub crisis: f64,
    /// Complaint.
    pub complaint: f64,
    /// Lead.
    pub lead: f64,
    /// Question.
    pub question: f64,
    /// Praise.
    pub praise: f64,
    /// Spam or job post.
    pub spam: f64,
    /// Other.
    pub other: f64,
}

/// `[authors]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthorSettings {
    /// Followers from which an author is an influencer.
    pub influencer_followers: u64,
    /// Our employees' handles or account ids.
    pub employees: Vec<String>,
    /// Press and media handles or account ids.
    pub press: Vec<String>,
    /// Words in a handle or display name that mark a press account.
    pub press_words: Vec<String>,
    /// Words in a handle that mark a likely bot.
    pub bot_words: Vec<String>,
}

impl Default for AuthorSettings {
    fn default() -> Self {
        Self {
            influencer_followers: 10_000,
            employees: Vec::new(),
            press: Vec::new(),
            press_words: Vec::new(),
            bot_words: Vec::new(),
        }
    }
}

/// `[recommend]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecommendSettings {
    /// Urgency from which any mention is escalated.
    pub escalate_at: u8,
    /// Followers from which praise is worth a reply.
    pub thank_followers: u64,
}

impl Default for RecommendSettings {
    fn default() -> Self {
        Self {
            escalate_at: 70,
            thank_followers: 5_000,
        }
    }
}

impl Weights {
    /// Parses and checks the scoring file's text.
    pub fn parse(file: &str, text: &str) -> Result<Weights, Vec<Diagnostic>> {
        let at = |span: Option<std::ops::Range<usize>>, message: String| {
            let (line, col) = span.map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            Diagnostic {
                file: file.to_string(),
                line,
                col,
                message,
            }
        };
        let weights: Weights =
            toml::from_str(text).map_err(|e| vec![at(e.span(), e.message().trim().to_string())])?;
        let u = &weights.urgency;
        let c = &u.category;
        // (key, value, lowest allowed): points are 0–100; category points may also pull down.
        let mut checks: Vec<(String, f64, f64)> = [
            ("negative_max", u.negative_max),
            ("crisis", u.crisis),
            ("question", u.question),
            ("direct_address", u.direct_address),
            ("influence_per_decade", u.influence_per_decade),
            ("influence_max", u.influence_max),
            ("verified", u.verified),
            ("engagement_per_decade", u.engagement_per_decade),
            ("engagement_max", u.engagement_max),
            ("spike", u.spike),
        ]
        .into_iter()
        .map(|(k, v)| (format!("urgency.{k}"), v, 0.0))
        .collect();
        checks.extend(
            [
                ("crisis", c.crisis),
                ("complaint", c.complaint),
                ("lead", c.lead),
                ("question", c.question),
                ("praise", c.praise),
                ("spam", c.spam),
                ("other", c.other),
            ]
            .into_iter()
            .map(|(k, v)| (format!("urgency.category.{k}"), v, -100.0)),
        );
        checks.extend(
            u.customer_tier
                .iter()
                .map(|(k, v)| (format!("urgency.customer_tier.{k}"), *v, 0.0)),
        );
        let errors: Vec<Diagnostic> = checks
            .into_iter()
            .filter(|(_, v, lo)| !(*lo..=100.0).contains(v))
            .map(|(key, v, lo)| {
                at(
                    key_span(text, &key),
                    format!("{key} is {v}, expected {lo} to 100"),
                )
            })
            .collect();
        if errors.is_empty() {
            Ok(weights)
        } else {
            Err(errors)
        }
    }

    /// Points for a customer of `tier` (letter case ignored), or `default`.
    pub fn tier_points(&self, tier: Option<&str>) -> f64 {
        let table = &self.urgency.customer_tier;
        tier.and_then(|t| {
            table
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(t.trim()))
                .map(|(_, v)| *v)
        })
        .or_else(|| table.get("default").copied())
        .unwrap_or(0.0)
    }
}

/// Where the value of `dotted` (`urgency.category.spam`) is written: the line `spam = …`
/// under the table `[urgency.category]`, for the place of a range error that serde does not
/// give.
fn key_span(text: &str, dotted: &str) -> Option<std::ops::Range<usize>> {
    let (table, key) = dotted.rsplit_once('.')?;
    let mut in_table = false;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if t.starts_with('[') {
            in_table = t.trim_matches(|c| c == '[' || c == ']').trim() == table;
        } else if in_table {
            if let Some((k, _)) = t.split_once('=') {
                if k.trim() == key {
                    let col = line.find('=').map(|i| i + 1).unwrap_or(0);
                    let value = line[col..].len() - line[col..].trim_start().len();
                    return Some(offset + col + value..offset + line.len());
                }
            }
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../../rules/scoring.toml");

    #[test]
    fn the_shipped_file_loads() {
        let w = Weights::parse("scoring.toml", SHIPPED).unwrap();
        assert_eq!(w.tier_points(Some("Gold")), 14.0);
        assert_eq!(w.tier_points(Some("bronze")), 5.0);
        assert_eq!(w.tier_points(None), 5.0);
        assert!(w.cues.len() >= 7);
    }

    #[test]
    fn mistakes_name_their_place() {
        let bad = SHIPPED.replace("negative_max = 35", "negativ_max = 35");
        let e = Weights::parse("s.toml", &bad).unwrap_err();
        assert!(e[0].to_string().starts_with("s.toml:"), "{}", e[0]);
        assert!(e[0].message.contains("negativ_max"), "{}", e[0]);
        assert!(e[0].line > 1);
        let bad = SHIPPED.replace("spam = -40", "spam = -400");
        let e = Weights::parse("s.toml", &bad).unwrap_err();
        let line = SHIPPED
            .lines()
            .position(|l| l.starts_with("spam = -40"))
            .unwrap()
            + 1;
        assert_eq!(
            e[0].to_string(),
            format!("s.toml:{line}:8: urgency.category.spam is -400, expected -100 to 100")
        );
    }
}
