//! Category: the evidence about a matched post → one primary category and every other that
//! applies.
//!
//! Each category has its own test (below); the primary is the first that applies in the order
//! crisis, spam, complaint, lead, question, praise — the order in which they need a human —
//! and `other` when none does. A complaint phrased as a question is a complaint that is also
//! a question; an unhappy customer of a competitor is a lead, not a complaint, because the
//! brand cannot fix the competitor's service but can offer its own.

use serde::{Deserialize, Serialize};

use super::cues::{Signal, Signals};
use super::sentiment::SentimentLabel;

/// A category of mention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Safety, outage, security breach, legal threat, boycott or recall.
    Crisis,
    /// Spam, giveaway, engagement bait or job post.
    Spam,
    /// A customer unhappy with our brand.
    Complaint,
    /// Purchase intent, or a competitor's unhappy customer.
    Lead,
    /// Asks something.
    Question,
    /// Positive about the brand.
    Praise,
    /// None of the above.
    Other,
}

impl Category {
    /// Every category, in order of precedence.
    pub const ALL: [Category; 7] = [
        Category::Crisis,
        Category::Spam,
        Category::Complaint,
        Category::Lead,
        Category::Question,
        Category::Praise,
        Category::Other,
    ];

    /// The lowercase name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Crisis => "crisis",
            Category::Spam => "spam",
            Category::Complaint => "complaint",
            Category::Lead => "lead",
            Category::Question => "question",
            Category::Praise => "praise",
            Category::Other => "other",
        }
    }

    /// Parses [`Category::as_str`].
    pub fn from_name(name: &str) -> Option<Category> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// What the category decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct Evidence {
    /// Cue signals found (negated cues left out).
    pub signals: Signals,
    /// Sentiment label after brand cues and sarcasm.
    pub label: SentimentLabel,
    /// A sarcasm marker, or a sarcastic opener next to a complaint.
    pub sarcastic: bool,
    /// What is said is about our brand (in a post naming ours and a competitor's, the
    /// brand nearest to the complaint, crisis and churn cues).
    pub ours: bool,
    /// What is said is about a competitor.
    pub competitor: bool,
    /// A question mark or a question opener.
    pub asks: bool,
}

/// The primary category and the others that apply, primary first.
pub fn categorize(e: &Evidence) -> (Category, Vec<Category>) {
    let s = e.signals;
    let unhappy = e.label == SentimentLabel::Negative
        || e.sarcastic
        || ((s.has(Signal::Complaint) || s.has(Signal::Churn))
            && e.label != SentimentLabel::Positive);
    let applies = |c: Category| match c {
        Category::Crisis => e.ours && s.has(Signal::Crisis),
        Category::Spam => s.has(Signal::Spam),
        Category::Complaint => e.ours && unhappy,
        Category::Lead => {
            s.has(Signal::Lead) || (e.competitor && (unhappy || s.has(Signal::Crisis)))
        }
        Category::Question => e.asks,
        Category::Praise => e.label == SentimentLabel::Positive && !e.sarcastic,
        Category::Other => false,
    };
    let all: Vec<Category> = Category::ALL.into_iter().filter(|&c| applies(c)).collect();
    match all.first() {
        Some(&primary) => (primary, all),
        None => (Category::Other, vec![Category::Other]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(signals: &[Signal], label: SentimentLabel, ours: bool, asks: bool) -> Evidence {
        let mut s = Signals::default();
        for &x in signals {
            s.add(x);
        }
        Evidence {
            signals: s,
            label,
            sarcastic: false,
            ours,
            competitor: !ours,
            asks,
        }
    }

    /// Signals, label, ours, asks → the categories wanted.
    type Case = (
        &'static [Signal],
        SentimentLabel,
        bool,
        bool,
        &'static [Category],
    );

    #[test]
    fn precedence_and_the_others_that_apply() {
        use Category::*;
        use SentimentLabel::*;
        let cases: [Case; 9] = [
            (
                &[Signal::Crisis],
                Negative,
                true,
                true,
                &[Crisis, Complaint, Question],
            ),
            (&[Signal::Crisis], Neutral, false, false, &[Lead]),
            (
                &[Signal::Complaint],
                Neutral,
                true,
                true,
                &[Complaint, Question],
            ),
            (&[Signal::Complaint], Positive, true, false, &[Praise]),
            (&[], Negative, false, false, &[Lead]),
            (&[Signal::Churn], Neutral, false, false, &[Lead]),
            (&[Signal::Lead], Neutral, true, true, &[Lead, Question]),
            (&[Signal::Spam], Positive, true, false, &[Spam, Praise]),
            (&[], Neutral, true, false, &[Other]),
        ];
        for (signals, label, ours, asks, want) in cases {
            let (primary, all) = categorize(&evidence(signals, label, ours, asks));
            assert_eq!(all, want, "{signals:?} {label:?} ours={ours}");
            assert_eq!(primary, want[0]);
        }
    }

    #[test]
    fn sarcasm_is_a_complaint_not_praise() {
        let mut e = evidence(&[Signal::Complaint], SentimentLabel::Positive, true, false);
        e.sarcastic = true;
        assert_eq!(categorize(&e).1, [Category::Complaint]);
    }
}
