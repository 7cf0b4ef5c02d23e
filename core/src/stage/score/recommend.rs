//! Recommendation: a judged mention → respond, escalate, monitor or do not engage, with the
//! reason.
//!
//! The first rule that applies wins, in this order: our own people's posts are only
//! monitored; a legal threat goes to legal (never a public reply); any other crisis, or an
//! urgency at `escalate_at` or above, is escalated; spam, trolls, bait and competitors'
//! official accounts are not engaged; complaints and questions about our brand are answered by
//! support; leads go to sales; praise from a customer or a large audience is thanked; the rest
//! is monitored.

use serde::{Deserialize, Serialize};

use super::author::AuthorClass;
use super::category::Category;
use super::weights::RecommendSettings;

/// What to do. Also read from configuration (a noise gate's `exempt` actions), by the same
/// snake_case names it is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Answer in public (support, sales, thanks).
    Respond,
    /// Hand to someone who decides now (crisis team, legal, a manager).
    Escalate,
    /// Read, count, do nothing yet.
    Monitor,
    /// Do not answer in public.
    DoNotEngage,
}

/// What to do about a mention, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// The action.
    pub action: Action,
    /// Who should act: `support`, `sales`, `social`, `legal`, `crisis`, or none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<&'static str>,
    /// Why, in a sentence a person reads.
    pub reason: String,
}

/// Everything the recommendation looks at.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// Primary category.
    pub category: Category,
    /// Crisis kinds found (`legal`, `outage`, …).
    pub crisis_kinds: &'a [&'a str],
    /// The author's classes.
    pub classes: &'a [AuthorClass],
    /// Followers, when known.
    pub followers: Option<u64>,
    /// Urgency score.
    pub urgency: u8,
    /// Troll cues found.
    pub troll: bool,
    /// Bait cues found.
    pub bait: bool,
    /// At least one matched brand is ours.
    pub ours: bool,
}

fn rec(action: Action, team: Option<&'static str>, reason: String) -> Recommendation {
    Recommendation {
        action,
        team,
        reason,
    }
}

/// Decides what to do about a mention.
pub fn recommend(f: &Facts<'_>, settings: &RecommendSettings) -> Recommendation {
    use Action::*;
    let is = |c: AuthorClass| f.classes.contains(&c);
    if is(AuthorClass::Brand) || is(AuthorClass::Employee) {
        return rec(
            Monitor,
            None,
            "posted by our own account or an employee".into(),
        );
    }
    if f.crisis_kinds.contains(&"legal") {
        return rec(
            Escalate,
            Some("legal"),
            "legal threat: for the legal team, not a public reply".into(),
        );
    }
    if f.category == Category::Crisis {
        let kinds = f.crisis_kinds.join(", ");
        return rec(Escalate, Some("crisis"), format!("crisis ({kinds})"));
    }
    if f.urgency >= settings.escalate_at && f.category != Category::Spam {
        return rec(
            Escalate,
            Some("social"),
            format!("urgency {} is at least {}", f.urgency, settings.escalate_at),
        );
    }
    if f.category == Category::Spam {
        return rec(DoNotEngage, None, "spam or job post".into());
    }
    if is(AuthorClass::Competitor) {
        return rec(
            DoNotEngage,
            None,
            "a competitor's official account: no public reply".into(),
        );
    }
    if f.troll {
        return rec(DoNotEngage, None, "trolling: a reply feeds it".into());
    }
    if f.bait {
        return rec(
            DoNotEngage,
            None,
            "bait: an invitation to a public fight".into(),
        );
    }
    let customer = is(AuthorClass::Customer);
    match f.category {
        Category::Complaint => rec(
            Respond,
            Some("support"),
            if customer {
                "a customer's complaint: support should answer, the account owner should know"
                    .into()
            } else {
                "complaint: support should answer".into()
            },
        ),
        Category::Lead => rec(
            Respond,
            Some("sales"),
            if f.ours {
                "purchase intent: for sales".into()
            } else {
                "a competitor's unhappy customer: for sales".into()
            },
        ),
        Category::Question if f.ours => rec(
            Respond,
            Some("support"),
            "a question about our brand".into(),
        ),
        Category::Praise
            if f.ours
                && (customer
                    || is(AuthorClass::Influencer)
                    || f.followers.unwrap_or(0) >= settings.thank_followers) =>
        {
            rec(
                Respond,
                Some("social"),
                "praise from a customer or a large audience: worth a thank-you".into(),
            )
        }
        _ => rec(
            Monitor,
            None,
            format!("{}: nothing to answer", f.category.as_str()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(
        category: Category,
        kinds: &'a [&'a str],
        classes: &'a [AuthorClass],
    ) -> Facts<'a> {
        Facts {
            category,
            crisis_kinds: kinds,
            classes,
            followers: None,
            urgency: 30,
            troll: false,
            bait: false,
            ours: true,
        }
    }

    #[test]
    fn the_first_rule_that_applies_wins() {
        use AuthorClass::*;
        use Category::*;
        let s = RecommendSettings::default();
        let cases: [(Facts<'_>, Action, Option<&str>); 9] = [
            (facts(Complaint, &[], &[Employee]), Action::Monitor, None),
            (
                facts(Crisis, &["legal", "outage"], &[Public]),
                Action::Escalate,
                Some("legal"),
            ),
            (
                facts(Crisis, &["outage"], &[Public]),
                Action::Escalate,
                Some("crisis"),
            ),
            (facts(Spam, &[], &[Bot]), Action::DoNotEngage, None),
            (
                facts(Complaint, &[], &[Competitor]),
                Action::DoNotEngage,
                None,
            ),
            (
                facts(Complaint, &[], &[Customer]),
                Action::Respond,
                Some("support"),
            ),
            (
                facts(Lead, &[], &[Prospect]),
                Action::Respond,
                Some("sales"),
            ),
            (facts(Praise, &[], &[Public]), Action::Monitor, None),
            (
                facts(Praise, &[], &[Customer]),
                Action::Respond,
                Some("social"),
            ),
        ];
        for (f, action, team) in cases {
            let r = recommend(&f, &s);
            assert_eq!((r.action, r.team), (action, team), "{f:?}: {}", r.reason);
            assert!(!r.reason.is_empty());
        }
        let mut f = facts(Complaint, &[], &[Public]);
        f.urgency = 70;
        assert_eq!(recommend(&f, &s).action, Action::Escalate);
        f.urgency = 30;
        f.troll = true;
        assert_eq!(recommend(&f, &s).action, Action::DoNotEngage);
    }
}
