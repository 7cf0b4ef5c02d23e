//! Driving terms: the words that co-occur with a brand far more during a spike than they
//! usually do.
//!
//! Each brand keeps a decayed count of the posts each token appeared in (same half-life as
//! the volume baseline), and each active spike counts tokens in its own posts. A token drives
//! the spike when it appears in at least [`MIN_COUNT`] spike posts and its share of spike
//! posts is at least [`MIN_LIFT`] times its smoothed baseline share. Terms are ranked by
//! `count × ln(lift)`, the token's contribution to the log-likelihood ratio of the spike's
//! word distribution against the baseline one: a frequent token with a moderate lift beats a
//! one-off with a huge one.

use std::collections::HashMap;

use serde::Serialize;

/// Fewest spike posts a driving term appears in.
pub const MIN_COUNT: u32 = 3;
/// Smallest lift over the baseline share for a driving term.
pub const MIN_LIFT: f64 = 3.0;
/// Tokens remembered per brand; past twice this, the least frequent half is forgotten.
const MAX_TOKENS: usize = 20_000;

/// Words too common to drive anything (English function words and platform noise).
const STOPWORDS: &[&str] = &[
    "the", "and", "for", "you", "your", "are", "was", "were", "this", "that", "with", "have",
    "has", "had", "not", "but", "all", "any", "can", "just", "from", "they", "them", "their",
    "what", "when", "who", "why", "how", "out", "our", "its", "it's", "i'm", "im", "get", "got",
    "been", "will", "would", "could", "should", "about", "there", "here", "than", "then", "into",
    "over", "also", "more", "some", "very", "too", "one", "like", "did", "does", "don't", "dont",
    "doesn't", "isn't", "can't", "cant", "won't", "let", "via", "amp", "http", "https", "www",
    "com", "now", "new", "still", "even", "again", "being", "because", "she", "his", "her", "him",
    "which", "these", "those", "only", "much", "really",
];

/// A driving term of a spike.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrivingTerm {
    /// The token, casefolded.
    pub term: String,
    /// Spike posts it appeared in.
    pub count: u32,
    /// Its share of spike posts over its baseline share.
    pub lift: f64,
}

/// The distinct tokens of a post worth counting: casefolded words of three or more
/// characters (a leading `#` or `@` kept), without stopwords, numbers, links or `exclude`
/// (the brand's own terms, which are in every mention by definition).
pub fn tokens(text: &str, exclude: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '#' | '@' | '\'' | '’')))
    {
        let word = raw.trim_matches(|c: char| matches!(c, '\'' | '’'));
        let sigil = word.starts_with(['#', '@']);
        let body = word.trim_start_matches(['#', '@']);
        if body.chars().count() < 3
            || body.contains(['#', '@'])
            || body.chars().all(|c| c.is_ascii_digit())
        {
            continue;
        }
        let token = if sigil {
            format!("{}{}", &word[..1], body.to_lowercase())
        } else {
            body.to_lowercase().replace('’', "'")
        };
        if STOPWORDS.contains(&token.as_str())
            || exclude.iter().any(|e| e.eq_ignore_ascii_case(&token))
            || out.contains(&token)
        {
            continue;
        }
        out.push(token);
    }
    out
}

/// The words of a brand's terms, casefolded: what [`tokens`] leaves out for that brand.
pub fn exclusions<'a>(terms: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in terms {
        for w in tokens(t, &[]) {
            let bare = w.trim_start_matches(['#', '@']).to_string();
            for x in [w, bare] {
                if !out.contains(&x) {
                    out.push(x);
                }
            }
        }
    }
    out
}

/// A brand's usual vocabulary: decayed per-token post counts.
#[derive(Debug, Default)]
pub struct TermBaseline {
    counts: HashMap<String, f64>,
    /// Decayed count of posts.
    posts: f64,
    /// Second the values are decayed to.
    at: u64,
}

impl TermBaseline {
    /// Adds one post's tokens at second `now`.
    pub fn add(&mut self, now: u64, tokens: &[String], half_life_s: f64) {
        self.decay_to(now, half_life_s);
        self.posts += 1.0;
        for t in tokens {
            *self.counts.entry(t.clone()).or_insert(0.0) += 1.0;
        }
        if self.counts.len() > 2 * MAX_TOKENS {
            let mut values: Vec<f64> = self.counts.values().copied().collect();
            let mid = values.len() / 2;
            let (_, cut, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
            let cut = *cut;
            self.counts.retain(|_, v| *v > cut);
        }
    }

    /// Scales every count down to second `now`. Counts are stored decayed to `at`, and only
    /// the ratio of a token's count to `posts` matters, so one factor on `posts` alone would
    /// do for shares; the counts are scaled too so that pruning compares like with like.
    fn decay_to(&mut self, now: u64, half_life_s: f64) {
        if now <= self.at {
            return;
        }
        let factor = 0.5f64.powf((now - self.at) as f64 / half_life_s);
        self.at = now;
        if factor > 0.999_999 {
            return;
        }
        self.posts *= factor;
        self.counts.retain(|_, v| {
            *v *= factor;
            *v > 1e-3
        });
    }

    /// The token's smoothed share of baseline posts (add-half smoothing, so a token never
    /// seen has a small, nonzero share that shrinks as the baseline grows).
    fn share(&self, token: &str) -> f64 {
        let c = self.counts.get(token).copied().unwrap_or(0.0);
        (c + 0.5) / (self.posts + 1.0)
    }
}

/// Token counts of one spike's posts.
#[derive(Debug, Default, Clone)]
pub struct SpikeTerms {
    counts: HashMap<String, u32>,
    posts: u32,
}

impl SpikeTerms {
    /// Adds one spike post's tokens.
    pub fn add(&mut self, tokens: &[String]) {
        self.posts += 1;
        for t in tokens {
            *self.counts.entry(t.clone()).or_insert(0) += 1;
        }
    }

    /// The `n` driving terms against `baseline`, best first.
    pub fn driving(&self, baseline: &TermBaseline, n: usize) -> Vec<DrivingTerm> {
        if self.posts == 0 {
            return Vec::new();
        }
        let posts = self.posts as f64;
        let mut terms: Vec<(f64, DrivingTerm)> = self
            .counts
            .iter()
            .filter(|(_, &c)| c >= MIN_COUNT)
            .filter_map(|(t, &c)| {
                let lift = (c as f64 / posts) / baseline.share(t);
                (lift >= MIN_LIFT).then(|| {
                    let score = c as f64 * lift.ln();
                    let lift = (lift * 10.0).round() / 10.0;
                    (
                        score,
                        DrivingTerm {
                            term: t.clone(),
                            count: c,
                            lift,
                        },
                    )
                })
            })
            .collect();
        terms.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.term.cmp(&b.1.term)));
        terms.into_iter().take(n).map(|(_, t)| t).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn tokens_keep_words_hashtags_and_handles_and_drop_noise() {
        let ex = exclusions(["Acme", "#acmefail", "Rocket Skates"]);
        let t = tokens(
            "The Acme app is DOWN again!! #AcmeFail #outage @acmehq.bsky.social 503 errors, it's down https://x.co",
            &ex,
        );
        assert_eq!(
            t,
            s(&["app", "down", "#outage", "@acmehq", "bsky", "social", "errors"])
        );
        assert!(ex.contains(&"rocket".to_string()) && ex.contains(&"acmefail".to_string()));
    }

    #[test]
    fn driving_terms_are_the_ones_far_above_their_baseline() {
        let mut base = TermBaseline::default();
        for i in 0..1000u64 {
            let mut t = s(&["love", "order"]);
            if i % 50 == 0 {
                t.push("outage".into());
            }
            base.add(i, &t, 1800.0);
        }
        let mut spike = SpikeTerms::default();
        for i in 0..40 {
            let mut t = s(&["outage", "love"]);
            if i % 4 == 0 {
                t.push("refund".into());
            }
            if i == 0 {
                t.push("once".into());
            }
            spike.add(&t);
        }
        let d = spike.driving(&base, 8);
        let names: Vec<&str> = d.iter().map(|t| t.term.as_str()).collect();
        // outage: 100% of spike posts vs 2% usually; refund: 25% vs never; love: as usual;
        // once: below the minimum count.
        assert_eq!(names, ["outage", "refund"], "{d:?}");
        assert_eq!(d[0].count, 40);
        assert!(d[0].lift > 30.0, "{d:?}");
    }

    #[test]
    fn the_baseline_forgets_and_stays_bounded() {
        let mut base = TermBaseline::default();
        base.add(0, &s(&["old"]), 10.0);
        base.add(1000, &s(&["new"]), 10.0);
        assert!(!base.counts.contains_key("old"));
        for i in 0..(2 * MAX_TOKENS + 10) {
            base.add(1000, &[format!("w{i}")], 10.0);
        }
        assert!(base.counts.len() <= 2 * MAX_TOKENS + 1);
    }
}
