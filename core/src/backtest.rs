//! Backtest: what a rule change would have matched on recorded posts, before it goes live
//! (`earshot replay --baseline-rules OLD`).
//!
//! Input → output: posts, each matched by two compiled rule sets, the *baseline* (the rules in
//! force) and the *new* ones (the proposed change) → a [`Report`]. Per rule, paired by id: its
//! hits under each set and the posts it gains and loses, with a few example posts; over all
//! posts: how many any rule matched under each set, and how many the change gains and loses.
//!
//! # Shape
//! - [`Backtest`] is the pure core: an accumulator fed `(post, baseline hits, new hits)` that
//!   ends in a [`Report`], serialized for `--json` and rendered for people by `Display`. No
//!   I/O, no clock.
//! - The runtime's `earshot::backtest::replay` feeds it: decode → normalize → match by both
//!   sets, over inputs read the way `earshot replay` reads them.
//!
//! # Invariants
//! - Memory is bounded whatever the input: counters per rule, plus at most `samples` example
//!   posts per rule and bucket (gained, lost, hits). No other part of a post is kept.
//! - Examples are the first ones in the order posts are recorded, so a run over the same
//!   input shows the same posts.
//! - A rule's status compares its definition, its counts compare the posts it matched: a
//!   `same` rule matches the same posts, a `changed` one may too.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::post::Post;
use crate::rules::{Rule, RuleSet};
use crate::skip::{SkipCounts, SkipReason};
use crate::stage::matcher::{Hit, Matcher};

/// Example posts per rule and bucket when the caller does not say.
pub const DEFAULT_SAMPLES: usize = 3;

/// Characters of post text an example shows: enough to see why it matched, short enough
/// to keep a report readable.
pub const SAMPLE_TEXT_CHARS: usize = 200;

/// How a rule differs between the two sets. Definitions are compared (brand, query, terms),
/// not hits: a `changed` rule may still match the same posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleStatus {
    /// Written the same in both sets (so it matches the same posts).
    Same,
    /// In both sets, written differently.
    Changed,
    /// Only in the new set.
    Added,
    /// Only in the baseline set.
    Removed,
}

impl RuleStatus {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleStatus::Same => "same",
            RuleStatus::Changed => "changed",
            RuleStatus::Added => "added",
            RuleStatus::Removed => "removed",
        }
    }
}

/// One example post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// [`Post::canonical_id`].
    pub id: String,
    /// [`Post::web_url`]; `null` when it cannot be known.
    pub url: Option<String>,
    /// The text on one line, cut at [`SAMPLE_TEXT_CHARS`] characters (`…` marks a cut).
    pub text: String,
    /// The rule's terms found in the post, as written in the rule.
    pub terms: Vec<String>,
}

impl Sample {
    fn of(post: &Post<'_>, hit: &Hit, matcher: &Matcher) -> Sample {
        Sample {
            id: post.canonical_id(),
            url: post.web_url(),
            text: one_line(&post.text, SAMPLE_TEXT_CHARS),
            terms: hit
                .terms
                .iter()
                .map(|&t| matcher.term(t).to_string())
                .collect(),
        }
    }
}

/// `text` with every run of whitespace and control characters made one space, trimmed, and
/// cut after `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    let mut chars = 0;
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            space = !out.is_empty();
            continue;
        }
        if chars + usize::from(space) >= max {
            out.push('…');
            return out;
        }
        if space {
            out.push(' ');
            chars += 1;
            space = false;
        }
        out.push(c);
        chars += 1;
    }
    out
}

/// Example posts of one rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuleSamples {
    /// Posts the rule matches under the new set only.
    pub gained: Vec<Sample>,
    /// Posts the rule matches under the baseline set only.
    pub lost: Vec<Sample>,
    /// Posts the rule matches under both; kept only for rules without gains or losses.
    pub hits: Vec<Sample>,
}

/// One rule's line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleReport {
    /// The rule id.
    pub rule: String,
    /// Its brand's id (in the new set when the rule is in it).
    pub brand: String,
    /// How its definition differs.
    pub status: RuleStatus,
    /// Posts it matches under the baseline set.
    pub hits_baseline: u64,
    /// Posts it matches under the new set.
    pub hits_new: u64,
    /// Posts it matches under the new set and not under the baseline.
    pub gained: u64,
    /// Posts it matches under the baseline and not under the new set.
    pub lost: u64,
    /// The first examples of each, in input order.
    pub samples: RuleSamples,
}

impl RuleReport {
    /// Whether the rule matches different posts under the two sets.
    pub fn differs(&self) -> bool {
        self.gained > 0 || self.lost > 0
    }
}

/// Post-level totals and input accounting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Frames read, including those skipped.
    pub frames: u64,
    /// Posts decoded (a search page or listing frame holds several).
    pub posts: u64,
    /// Posts any baseline rule matches.
    pub matched_baseline: u64,
    /// Posts any new rule matches.
    pub matched_new: u64,
    /// Posts some new rule matches and no baseline rule does.
    pub gained: u64,
    /// Posts some baseline rule matches and no new rule does.
    pub lost: u64,
    /// Frames (and malformed items of multi-post frames) skipped, by reason; zeros left out.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Rules in the baseline set.
    pub rules_baseline: usize,
    /// Rules in the new set.
    pub rules_new: usize,
    /// Whether shutdown stopped the run before the end of its input.
    pub interrupted: bool,
    /// Wall time of the run, reading included.
    pub elapsed_seconds: f64,
    /// Frames per second of wall time.
    pub events_per_second: f64,
}

/// What a backtest found; serialized as is for `--json`, rendered by `Display` for people.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Every rule of either set: rules matching different posts first (most differences
    /// first), then rules written differently, then the rest; file order within each.
    pub rules: Vec<RuleReport>,
    /// Totals.
    pub summary: Summary,
}

/// What the input side counted: frames read and skips at the source and in decode.
#[derive(Debug, Clone, Default)]
pub struct InputTotals {
    /// Frames read, including those skipped.
    pub frames: u64,
    /// Skips by reason.
    pub skipped: SkipCounts,
    /// Whether shutdown stopped reading early.
    pub interrupted: bool,
    /// Wall time.
    pub elapsed: Duration,
}

/// A post's hits under one rule set, with the matcher that resolves their term indices.
#[derive(Debug, Clone, Copy)]
pub struct SideHits<'a> {
    /// The matcher that produced `hits`.
    pub matcher: &'a Matcher,
    /// [`Matcher::match_post`]'s output.
    pub hits: &'a [Hit],
}

/// The accumulator: fed every post with its hits under both sets, it keeps counters and the
/// first examples only.
#[derive(Debug)]
pub struct Backtest {
    samples: usize,
    /// Every rule of either set: the new set's in file order, then those only in the baseline.
    tallies: Vec<RuleReport>,
    /// Baseline rule index → index in `tallies`.
    baseline_slot: Vec<usize>,
    /// New rule index → index in `tallies`.
    new_slot: Vec<usize>,
    rules_baseline: usize,
    rules_new: usize,
    posts: u64,
    matched_baseline: u64,
    matched_new: u64,
    gained: u64,
    lost: u64,
}

impl Backtest {
    /// An empty backtest of `new` against `baseline`, keeping up to `samples` examples per rule
    /// and bucket.
    pub fn new(baseline: &RuleSet, new: &RuleSet, samples: usize) -> Backtest {
        let tally = |rule: &str, brand: &str, status| RuleReport {
            rule: rule.to_string(),
            brand: brand.to_string(),
            status,
            hits_baseline: 0,
            hits_new: 0,
            gained: 0,
            lost: 0,
            samples: RuleSamples::default(),
        };
        let mut tallies = Vec::with_capacity(new.rules().len());
        let mut new_slot = Vec::with_capacity(new.rules().len());
        for rule in new.rules() {
            let status = match baseline.rule(&rule.id.0) {
                None => RuleStatus::Added,
                Some(old) if same_definition(baseline, old, new, rule) => RuleStatus::Same,
                Some(_) => RuleStatus::Changed,
            };
            new_slot.push(tallies.len());
            tallies.push(tally(&rule.id.0, brand_id(new, rule), status));
        }
        let mut baseline_slot = Vec::with_capacity(baseline.rules().len());
        for rule in baseline.rules() {
            match new.rules().iter().position(|r| r.id == rule.id) {
                Some(i) => baseline_slot.push(new_slot[i]),
                None => {
                    baseline_slot.push(tallies.len());
                    let brand = brand_id(baseline, rule);
                    tallies.push(tally(&rule.id.0, brand, RuleStatus::Removed));
                }
            }
        }
        Backtest {
            samples,
            tallies,
            baseline_slot,
            new_slot,
            rules_baseline: baseline.rules().len(),
            rules_new: new.rules().len(),
            posts: 0,
            matched_baseline: 0,
            matched_new: 0,
            gained: 0,
            lost: 0,
        }
    }

    /// Records one post and its hits under both sets. Builds an example only while its
    /// bucket has room, so a post that hits costs a few counter increments in the steady state.
    pub fn record(&mut self, post: &Post<'_>, baseline: SideHits<'_>, new: SideHits<'_>) {
        self.posts += 1;
        let (in_baseline, in_new) = (!baseline.hits.is_empty(), !new.hits.is_empty());
        self.matched_baseline += u64::from(in_baseline);
        self.matched_new += u64::from(in_new);
        self.gained += u64::from(in_new && !in_baseline);
        self.lost += u64::from(in_baseline && !in_new);
        for (slot, hit, kept) in
            slotted(&self.baseline_slot, baseline.hits, &self.new_slot, new.hits)
        {
            let t = &mut self.tallies[slot];
            t.hits_baseline += 1;
            if !kept {
                t.lost += 1;
                if t.samples.lost.len() < self.samples {
                    t.samples.lost.push(Sample::of(post, hit, baseline.matcher));
                }
            }
        }
        for (slot, hit, kept) in
            slotted(&self.new_slot, new.hits, &self.baseline_slot, baseline.hits)
        {
            let t = &mut self.tallies[slot];
            t.hits_new += 1;
            if !kept {
                t.gained += 1;
                if t.samples.gained.len() < self.samples {
                    t.samples.gained.push(Sample::of(post, hit, new.matcher));
                }
            } else if !t.differs() && t.samples.hits.len() < self.samples {
                t.samples.hits.push(Sample::of(post, hit, new.matcher));
            }
        }
    }

    /// The report, with the input side's totals.
    pub fn finish(self, input: InputTotals) -> Report {
        let mut rules: Vec<RuleReport> = self
            .tallies
            .into_iter()
            .map(|mut r| {
                if r.differs() {
                    r.samples.hits.clear();
                }
                r
            })
            .collect();
        // Stable: file order within a group.
        rules.sort_by_key(|r| {
            let group = if r.differs() {
                0
            } else if r.status != RuleStatus::Same {
                1
            } else {
                2
            };
            (group, std::cmp::Reverse(r.gained + r.lost))
        });
        let secs = input.elapsed.as_secs_f64();
        Report {
            rules,
            summary: Summary {
                frames: input.frames,
                posts: self.posts,
                matched_baseline: self.matched_baseline,
                matched_new: self.matched_new,
                gained: self.gained,
                lost: self.lost,
                skipped: input.skipped.nonzero().collect(),
                rules_baseline: self.rules_baseline,
                rules_new: self.rules_new,
                interrupted: input.interrupted,
                elapsed_seconds: secs,
                events_per_second: input.frames as f64 / secs.max(1e-9),
            },
        }
    }
}

fn brand_id<'a>(set: &'a RuleSet, rule: &Rule) -> &'a str {
    set.brands()
        .get(rule.brand)
        .map(|b| b.id.0.as_str())
        .unwrap_or("")
}

/// Whether two rules are written the same: same brand (id and kind), query and terms. Where
/// they were written does not count.
fn same_definition(a_set: &RuleSet, a: &Rule, b_set: &RuleSet, b: &Rule) -> bool {
    let brand =
        |set: &RuleSet, r: &Rule| set.brands().get(r.brand).map(|br| (br.id.clone(), br.kind));
    a.query == b.query && a.terms == b.terms && brand(a_set, a) == brand(b_set, b)
}

impl fmt::Display for Report {
    /// The human-readable report: a table of every rule, then examples per rule, then totals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id_w = self.rules.iter().map(|r| r.rule.len()).max().unwrap_or(0);
        let brand_w = self.rules.iter().map(|r| r.brand.len()).max().unwrap_or(0);
        let (id_w, brand_w) = (id_w.max(4), brand_w.max(5));
        writeln!(
            f,
            "{:<id_w$}  {:<brand_w$}  {:<7}  {:>8}  {:>8}  {:>6}  {:>6}",
            "rule", "brand", "status", "baseline", "new", "gained", "lost"
        )?;
        for r in &self.rules {
            writeln!(
                f,
                "{:<id_w$}  {:<brand_w$}  {:<7}  {:>8}  {:>8}  {:>6}  {:>6}",
                r.rule,
                r.brand,
                r.status.as_str(),
                r.hits_baseline,
                r.hits_new,
                signed('+', r.gained),
                signed('-', r.lost)
            )?;
        }
        for r in &self.rules {
            let s = &r.samples;
            if s.gained.is_empty() && s.lost.is_empty() && s.hits.is_empty() {
                continue;
            }
            writeln!(f)?;
            if r.differs() {
                writeln!(
                    f,
                    "{} ({}, {}): {} → {} posts, {} gained, {} lost",
                    r.rule,
                    r.brand,
                    r.status.as_str(),
                    r.hits_baseline,
                    r.hits_new,
                    r.gained,
                    r.lost
                )?;
            } else {
                writeln!(
                    f,
                    "{} ({}, {}): {} posts, unchanged",
                    r.rule,
                    r.brand,
                    r.status.as_str(),
                    r.hits_new
                )?;
            }
            samples(f, "gained", r.gained, &s.gained)?;
            samples(f, "lost", r.lost, &s.lost)?;
            samples(f, "hits", r.hits_new, &s.hits)?;
        }
        let t = &self.summary;
        writeln!(f)?;
        writeln!(
            f,
            "posts: {} read; matched by any rule: {} baseline, {} new; {} gained, {} lost",
            t.posts, t.matched_baseline, t.matched_new, t.gained, t.lost
        )?;
        let skipped: u64 = t.skipped.values().sum();
        write!(f, "frames: {} read, {} skipped", t.frames, skipped)?;
        for (i, (reason, n)) in t.skipped.iter().enumerate() {
            let sep = if i == 0 { " (" } else { ", " };
            write!(f, "{sep}{} {n}", reason.as_str())?;
        }
        if !t.skipped.is_empty() {
            write!(f, ")")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "rules: {} baseline, {} new; elapsed {:.3}s, {:.0} events/s{}",
            t.rules_baseline,
            t.rules_new,
            t.elapsed_seconds,
            t.events_per_second,
            if t.interrupted {
                "; interrupted before the end of the input"
            } else {
                ""
            }
        )
    }
}

fn signed(sign: char, n: u64) -> String {
    if n == 0 {
        "0".into()
    } else {
        format!("{sign}{n}")
    }
}

fn samples(f: &mut fmt::Formatter<'_>, label: &str, total: u64, list: &[Sample]) -> fmt::Result {
    if list.is_empty() {
        return Ok(());
    }
    let more = total.saturating_sub(list.len() as u64);
    if more > 0 {
        writeln!(f, "  {label} (first {} of {total}):", list.len())?;
    } else {
        writeln!(f, "  {label}:")?;
    }
    for s in list {
        match &s.url {
            Some(url) if *url != s.id => writeln!(f, "    {}  {url}", s.id)?,
            _ => writeln!(f, "    {}", s.id)?,
        }
        writeln!(f, "      [{}] {}", s.terms.join(", "), s.text)?;
    }
    Ok(())
}

/// Each of `hits` (rules indexed by `slots`) with its tally slot and whether `other` (indexed
/// by `other_slots`) has a hit in the same slot. A post has a handful of hits at most, so the
/// search is linear.
fn slotted<'h>(
    slots: &'h [usize],
    hits: &'h [Hit],
    other_slots: &'h [usize],
    other: &'h [Hit],
) -> impl Iterator<Item = (usize, &'h Hit, bool)> + 'h {
    let slot_of = |slots: &[usize], h: &Hit| slots.get(h.rule as usize).copied();
    hits.iter().filter_map(move |hit| {
        let slot = slot_of(slots, hit)?;
        let kept = other.iter().any(|h| slot_of(other_slots, h) == Some(slot));
        Some((slot, hit, kept))
    })
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::path::Path;

    use super::*;
    use crate::normalize::{normalize, Normalized};
    use crate::post::{Author, Platform, PostFlags};
    use crate::stage::matcher::MatchScratch;

    /// One compiled rule set.
    struct TestSide {
        rules: RuleSet,
        matcher: Matcher,
    }

    fn side(text: &str) -> TestSide {
        let rules = RuleSet::parse_str("test.rules", text, Path::new(".")).expect("rules load");
        let matcher = Matcher::build(&rules).expect("matcher builds");
        TestSide { rules, matcher }
    }

    fn post(id: &str, text: &str) -> Post<'static> {
        Post {
            platform: Platform::Bluesky,
            id: Cow::Owned(id.to_string()),
            uri: None,
            url: None,
            author: Author {
                id: Cow::Borrowed("did:plc:test"),
                ..Author::default()
            },
            text: Cow::Owned(text.to_string()),
            lang: Some(Cow::Borrowed("en")),
            created_at: None,
            time_us: None,
            engagement: None,
            flags: PostFlags::default(),
            links: Vec::new(),
            original: None,
            thread: Default::default(),
        }
    }

    /// Matches every `(id, text)` post by both sets and reports.
    fn backtest(baseline: &str, new: &str, samples: usize, posts: &[(&str, &str)]) -> Report {
        let (b, n) = (side(baseline), side(new));
        let mut bt = Backtest::new(&b.rules, &n.rules, samples);
        let mut norm = Normalized::new();
        let mut scratch = MatchScratch::new();
        let (mut hb, mut hn) = (Vec::new(), Vec::new());
        for (id, text) in posts {
            let p = post(id, text);
            normalize(&p.text, &mut norm);
            b.matcher.match_post(&p, &norm, &mut scratch, &mut hb);
            n.matcher.match_post(&p, &norm, &mut scratch, &mut hn);
            let baseline = SideHits {
                matcher: &b.matcher,
                hits: &hb,
            };
            let new = SideHits {
                matcher: &n.matcher,
                hits: &hn,
            };
            bt.record(&p, baseline, new);
        }
        bt.finish(InputTotals::default())
    }

    fn rule<'a>(report: &'a Report, id: &str) -> &'a RuleReport {
        report
            .rules
            .iter()
            .find(|r| r.rule == id)
            .unwrap_or_else(|| panic!("no rule {id} in {report:#?}"))
    }

    fn ids(samples: &[Sample]) -> Vec<&str> {
        samples
            .iter()
            .map(|s| s.id.rsplit('/').next().unwrap_or(""))
            .collect()
    }

    const BASELINE: &str = "brand acme \"Acme\"\n\
        rule acme-any: acme\n\
        rule acme-support: acme (help OR broken)\n\
        rule acme-old: anvil\n\
        competitor globex \"Globex\"\n\
        rule globex: globex\n";
    const NEW: &str = "brand acme \"Acme\"\n\
        rule acme-any: acme\n\
        rule acme-support: acme (help OR broken OR refund)\n\
        rule acme-new: rocket\n\
        competitor globex \"Globex\"\n\
        rule globex: globex -hiring\n";
    const POSTS: &[(&str, &str)] = &[
        ("p1", "acme help please"),
        ("p2", "my acme order arrived broken, I want a refund"),
        ("p3", "acme refund now"),
        ("p4", "anvil on sale"),
        ("p5", "rocket skates"),
        ("p6", "globex is hiring"),
        ("p7", "globex outage"),
        ("p8", "nothing to see"),
    ];

    /// One rule of a report on one line: counts and the ids of its gained and lost examples.
    fn summary_line(r: &RuleReport) -> String {
        format!(
            "{} {} {} {}->{} +{} -{} gained[{}] lost[{}]",
            r.rule,
            r.brand,
            r.status.as_str(),
            r.hits_baseline,
            r.hits_new,
            r.gained,
            r.lost,
            ids(&r.samples.gained).join(" "),
            ids(&r.samples.lost).join(" ")
        )
    }

    #[test]
    fn rules_are_paired_by_id_and_those_that_differ_come_first() {
        let r = backtest(BASELINE, NEW, 3, POSTS);
        let got: Vec<String> = r.rules.iter().map(summary_line).collect();
        // Most differences first; ties in file order (the new set's rules, then those only in
        // the baseline); `acme-support` gains p3 through its new term `refund`.
        assert_eq!(
            got,
            [
                "acme-support acme changed 2->3 +1 -0 gained[p3] lost[]",
                "acme-new acme added 0->1 +1 -0 gained[p5] lost[]",
                "globex globex changed 2->1 +0 -1 gained[] lost[p6]",
                "acme-old acme removed 1->0 +0 -1 gained[] lost[p4]",
                "acme-any acme same 3->3 +0 -0 gained[] lost[]",
            ]
        );
    }

    #[test]
    fn post_level_totals_count_a_post_once_whatever_its_rules() {
        let r = backtest(BASELINE, NEW, 3, POSTS);
        let s = &r.summary;
        assert_eq!(s.posts, 8);
        // Baseline: p1 p2 p3 (acme-any), p4, p6, p7. New: p1 p2 p3, p5, p7.
        assert_eq!((s.matched_baseline, s.matched_new), (6, 5));
        // p3 gains a rule (acme-support) but was matched before: not a post gained.
        assert_eq!((s.gained, s.lost), (1, 2));
        assert_eq!((s.rules_baseline, s.rules_new), (4, 4));
    }

    #[test]
    fn hits_samples_only_for_rules_without_gains_or_losses() {
        let r = backtest(BASELINE, NEW, 3, POSTS);
        let any = rule(&r, "acme-any");
        assert_eq!(ids(&any.samples.hits), ["p1", "p2", "p3"]);
        assert_eq!(any.samples.hits[0].terms, ["acme"]);
        assert!(rule(&r, "acme-support").samples.hits.is_empty());
        assert!(rule(&r, "globex").samples.hits.is_empty());
        let support = rule(&r, "acme-support");
        assert_eq!(support.samples.gained[0].terms, ["acme", "refund"]);
    }

    #[test]
    fn samples_are_the_first_n_in_input_order() {
        let posts: Vec<(String, String)> = (0..20)
            .map(|i| (format!("p{i:02}"), format!("acme number {i}")))
            .collect();
        let posts: Vec<(&str, &str)> = posts.iter().map(|(a, b)| (&**a, &**b)).collect();
        let baseline = "brand acme \"Acme\"\nrule a: acme\nrule gone: acme\n";
        let new = "brand acme \"Acme\"\nrule a: acme\nrule b: acme\n";
        for n in [0, 1, 3] {
            let r = backtest(baseline, new, n, &posts);
            let want: Vec<String> = (0..n).map(|i| format!("p{i:02}")).collect();
            assert_eq!(ids(&rule(&r, "a").samples.hits), want, "hits, {n}");
            assert_eq!(ids(&rule(&r, "b").samples.gained), want, "gained, {n}");
            assert_eq!(ids(&rule(&r, "gone").samples.lost), want, "lost, {n}");
            assert_eq!(rule(&r, "b").gained, 20);
            assert_eq!(rule(&r, "gone").lost, 20);
        }
    }

    #[test]
    fn a_rule_moved_or_reworded_without_effect_is_changed_only_when_its_definition_is() {
        let baseline = "brand acme \"Acme\"\nrule a: acme OR anvil\nrule b: acme\n";
        // `a` moves down a line and gains a term nobody writes; `b` is only moved.
        let new = "brand acme \"Acme\"\n\nrule b: acme\nrule a: acme OR anvil OR zzyzx\n";
        let r = backtest(baseline, new, 3, &[("p1", "acme")]);
        assert_eq!(rule(&r, "a").status, RuleStatus::Changed);
        assert_eq!(rule(&r, "b").status, RuleStatus::Same);
        assert!(!rule(&r, "a").differs());
        let order: Vec<&str> = r.rules.iter().map(|r| r.rule.as_str()).collect();
        assert_eq!(order, ["a", "b"], "written differently before unchanged");
    }

    #[test]
    fn sample_text_is_one_line_and_cut() {
        let cases: &[(&str, usize, &str)] = &[
            ("plain", 10, "plain"),
            ("  two\n\nlines\t here ", 20, "two lines here"),
            ("abcdefghij", 10, "abcdefghij"),
            ("abcdefghijk", 10, "abcdefghij…"),
            ("abc def", 3, "abc…"),
            ("héllo wörld", 5, "héllo…"),
            ("a\u{0}b", 10, "a b"),
            ("", 10, ""),
        ];
        for &(text, max, want) in cases {
            assert_eq!(one_line(text, max), want, "{text:?}");
        }
    }

    #[test]
    fn text_report_shows_the_table_examples_and_totals() {
        let r = backtest(BASELINE, NEW, 1, POSTS);
        let text = r.to_string();
        let lines: Vec<&str> = text.lines().collect();
        let words = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(
            words(lines[0]),
            "rule brand status baseline new gained lost"
        );
        assert_eq!(words(lines[1]), "acme-support acme changed 2 3 +1 0");
        assert!(text.contains("  gained:\n    at://did:plc:test/app.bsky.feed.post/p3  https://bsky.app/profile/did:plc:test/post/p3\n      [acme, refund] acme refund now\n"), "{text}");
        assert!(
            text.contains("acme-any (acme, same): 3 posts, unchanged\n  hits (first 1 of 3):\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "posts: 8 read; matched by any rule: 6 baseline, 5 new; 1 gained, 2 lost"
            ),
            "{text}"
        );
    }

    #[test]
    fn json_field_names_are_stable() {
        let mut totals = InputTotals {
            frames: 10,
            ..InputTotals::default()
        };
        totals.skipped.add(SkipReason::Like);
        totals.skipped.add(SkipReason::Like);
        let (b, n) = (side(BASELINE), side(NEW));
        let r = Backtest::new(&b.rules, &n.rules, 3).finish(totals);
        let v = serde_json::to_value(&r).expect("serializes");
        let first = &v["rules"][0];
        for key in [
            "rule",
            "brand",
            "status",
            "hits_baseline",
            "hits_new",
            "gained",
            "lost",
            "samples",
        ] {
            assert!(first.get(key).is_some(), "rules[0].{key} in {v}");
        }
        assert_eq!(v["summary"]["skipped"], serde_json::json!({"like": 2}));
        assert_eq!(v["summary"]["frames"], 10);
        assert_eq!(v["rules"][0]["status"], "changed");
    }
}
