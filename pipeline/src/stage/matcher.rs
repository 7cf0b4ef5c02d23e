//! Match: a normalized post → the rules it satisfies ([`Hit`]s), from one Aho-Corasick
//! automaton over every term of every rule.
//!
//! # Input → output
//! [`Matcher::build`] compiles a [`RuleSet`] once (shared by all workers behind an `Arc`);
//! [`Matcher::match_post`] takes a post, its [`Normalized`] text and a per-worker
//! [`MatchScratch`], and fills a caller-owned `Vec<Hit>`: one per rule that holds, in rule
//! order, naming the rule's non-excluded terms that were found.
//!
//! # How a post is matched
//! 1. One overlapping search (`MatchKind::Standard`, so `acme` is found inside `acme corp`)
//!    of the casefolded text finds every occurrence of every distinct needle.
//! 2. Each occurrence is checked against the boundary rule of each term written with that
//!    needle: a word boundary on the left (start of text, a non-word character, or a change
//!    between a script written without spaces and another); on the right the same, except
//!    that a word inside a `#hashtag` or `@handle` token needs none (`#acmefail`,
//!    `@acmehq.bsky.social` mention `acme`; `pacmen`, `acmes`, `@theacme`, `#notacme` do
//!    not). `#tag` and `$tag` terms need both boundaries (`#acmefail` is not `#acme`); an
//!    `@handle` term also accepts a `.domain` after it but not a `-` (`@acmehq.bsky.social` is
//!    `@acmehq`, `@acmehq-x` is not). Words and phrases written in a script without spaces
//!    (CJK, Thai, …) match anywhere.
//! 3. A term that passes marks the rules it *anchors* (it is written outside every exclusion).
//!    Only marked rules are evaluated, so cost follows matches, not rule count; a rule that is
//!    a plain OR of terms (a 10k-term terms file) holds as soon as it is marked. Other rules
//!    run their compiled query (postfix, over the sorted set of terms found and `post.lang`).
//!
//! # Invariants
//! - No allocation when no term is found (≈98% of posts): the scratch vectors only clear.
//!   A post that hits allocates its `Hit::terms`.
//! - A term index ([`Hit::terms`], [`Matcher::term`]) names one term of one rule: rule `r`'s
//!   terms are a contiguous range, in the order of [`crate::rules::Rule::terms`]. Terms of
//!   different rules that share a needle share one automaton pattern.
//! - Nothing here panics on input, counts, logs or reads a clock (STYLE 2).
//!
//! # Automaton kind
//! A DFA is the fastest search (BASELINES: 1.38 M texts/s at 10k terms vs 0.72 M for the
//! contiguous NFA) but costs about 1.85 KB per pattern: measured 20 MB / 0.05 s to build at
//! 10k terms and 185 MB / 0.6 s at 100k. It is used up to [`DFA_MAX_PATTERNS`] distinct
//! needles (≈280 MB): that covers the 100k-term benchmark list with one copy per process,
//! shared by every worker, plus a second one while a hot reload builds its replacement. Above
//! that the contiguous NFA (≈100 bytes per pattern, about half the speed) keeps memory bounded
//! for million-term lists, where a DFA would need gigabytes.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

use crate::post::Post;
use crate::rules::{Query, RuleSet, TermKind};
use crate::stage::normalize::{char_at, char_before, is_boundary, is_unspaced_script, Normalized};

/// Most distinct needles for which the automaton is a DFA; above, a contiguous NFA.
pub const DFA_MAX_PATTERNS: usize = 150_000;

/// Why a [`Matcher`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    /// The Aho-Corasick builder refused the terms (automaton too large).
    #[error("cannot build the term automaton: {0}")]
    Automaton(#[from] aho_corasick::BuildError),
    /// More terms or rules than 32-bit indices can name.
    #[error("{count} {what} over all rules; the matcher indexes at most {max}")]
    TooMany {
        /// `"terms"` or `"rules"`.
        what: &'static str,
        /// How many there were.
        count: usize,
        /// The most it can index.
        max: usize,
    },
    /// The automaton cannot run overlapping searches (never the case with the settings used).
    #[error("the term automaton does not support overlapping search: {0}")]
    Search(#[from] aho_corasick::MatchError),
}

impl MatcherError {
    /// A bounded name for metric labels and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            MatcherError::Automaton(_) => "automaton",
            MatcherError::TooMany { .. } => "too_many",
            MatcherError::Search(_) => "search",
        }
    }
}

/// One rule that holds for a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Index into [`RuleSet::rules`].
    pub rule: u32,
    /// Index into [`RuleSet::brands`].
    pub brand: u32,
    /// The rule's non-excluded terms found in the post, ascending; resolve with
    /// [`Matcher::term`].
    pub terms: Vec<u32>,
}

/// Per-worker scratch, reused across posts so matching allocates nothing in the steady state.
#[derive(Debug, Clone, Default)]
pub struct MatchScratch {
    /// Terms that passed their boundary check in this post.
    found: Vec<u32>,
    /// Rules an anchor term marked.
    candidates: Vec<u32>,
    /// Evaluation stack for compiled queries.
    stack: Vec<bool>,
}

impl MatchScratch {
    /// Empty scratch; it grows to the largest post's needs and then stays.
    pub fn new() -> Self {
        MatchScratch::default()
    }
}

/// The boundary rule a term is matched with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Boundary {
    /// Words: both sides, except no right boundary inside a hashtag or handle token.
    Word,
    /// Phrases, hashtags, cashtags: both sides.
    Strict,
    /// Handles: both sides, and not followed by `-` (a longer handle).
    Handle,
    /// Words and phrases in a script written without spaces: anywhere.
    Substring,
}

/// One step of a compiled query, run on a stack of booleans.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Push whether this term was found.
    Term(u32),
    /// Push whether the post's language has this primary subtag (index into `langs`).
    Lang(u32),
    /// Negate the top.
    Not,
    /// Replace the top n with their conjunction.
    And(u32),
    /// Replace the top n with their disjunction.
    Or(u32),
}

#[derive(Debug, Clone)]
struct CompiledRule {
    brand: u32,
    /// This rule's term indices are `first_term..end_term`.
    first_term: u32,
    end_term: u32,
    /// `None` for a plain OR of terms: marked means it holds.
    program: Option<Box<[Op]>>,
}

/// All rules compiled into one automaton plus per-term and per-rule tables. `Send + Sync`;
/// share it behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Matcher {
    ac: AhoCorasick,
    /// Pattern `p`'s terms are `pattern_terms[pattern_start[p]..pattern_start[p + 1]]`.
    pattern_start: Vec<u32>,
    pattern_terms: Vec<u32>,
    /// Term `t` as written is `term_text[term_end[t - 1]..term_end[t]]` (one buffer instead of
    /// a million small strings).
    term_text: String,
    term_end: Vec<usize>,
    term_rule: Vec<u32>,
    term_boundary: Vec<Boundary>,
    term_anchor: Vec<bool>,
    rules: Vec<CompiledRule>,
    /// Lowercase primary language subtags used by `lang:`.
    langs: Vec<String>,
}

impl Matcher {
    /// Compiles every rule of `rules`.
    pub fn build(rules: &RuleSet) -> Result<Matcher, MatcherError> {
        Matcher::build_with_dfa_limit(rules, DFA_MAX_PATTERNS)
    }

    /// A matcher that ignores word boundaries: every term matches wherever its casefolded
    /// text occurs, as plain case-insensitive substring search does. Not for production (it
    /// finds `acme` in `pacmen`); benchmarks use it to check earshot against peers that count
    /// plain substrings, which must agree exactly.
    pub fn build_plain_substring(rules: &RuleSet) -> Result<Matcher, MatcherError> {
        let mut m = Matcher::build(rules)?;
        m.term_boundary
            .iter_mut()
            .for_each(|b| *b = Boundary::Substring);
        Ok(m)
    }

    /// [`Matcher::build`] with the DFA/NFA threshold as a parameter, so tests run every case
    /// through both automaton kinds.
    fn build_with_dfa_limit(
        rules: &RuleSet,
        dfa_max_patterns: usize,
    ) -> Result<Matcher, MatcherError> {
        let term_count = rules.term_count();
        let max = u32::MAX as usize - 1;
        if term_count > max {
            return Err(MatcherError::TooMany {
                what: "terms",
                count: term_count,
                max,
            });
        }
        if rules.rules().len() > max {
            let count = rules.rules().len();
            return Err(MatcherError::TooMany {
                what: "rules",
                count,
                max,
            });
        }

        let mut needles: Vec<&str> = Vec::new();
        let mut needle_index: HashMap<&str, u32> = HashMap::new();
        let mut term_pattern: Vec<u32> = Vec::with_capacity(term_count);
        let mut m = Matcher {
            ac: AhoCorasick::new([""; 0])?,
            pattern_start: Vec::new(),
            pattern_terms: Vec::new(),
            term_text: String::new(),
            term_end: Vec::with_capacity(term_count),
            term_rule: Vec::with_capacity(term_count),
            term_boundary: Vec::with_capacity(term_count),
            term_anchor: Vec::with_capacity(term_count),
            rules: Vec::with_capacity(rules.rules().len()),
            langs: Vec::new(),
        };
        for (r, rule) in rules.rules().iter().enumerate() {
            // Both fit: checked above.
            let first_term = m.term_end.len() as u32;
            for (i, term) in rule.terms.iter().enumerate() {
                let next = needles.len() as u32;
                let p = *needle_index.entry(term.needle.as_str()).or_insert_with(|| {
                    needles.push(term.needle.as_str());
                    next
                });
                term_pattern.push(p);
                m.term_text.push_str(&term.text);
                m.term_end.push(m.term_text.len());
                m.term_rule.push(r as u32);
                m.term_boundary.push(boundary_of(term.kind, &term.needle));
                m.term_anchor.push(rule.is_anchor(i));
            }
            let program = if rule.is_pure_or() {
                None
            } else {
                let mut ops = Vec::new();
                m.compile(&rule.query, first_term, &mut ops);
                Some(ops.into_boxed_slice())
            };
            m.rules.push(CompiledRule {
                brand: rule.brand as u32,
                first_term,
                end_term: m.term_end.len() as u32,
                program,
            });
        }

        // Counting sort of terms by pattern: CSR lists, each ascending by term index.
        m.pattern_start = vec![0; needles.len() + 1];
        for &p in &term_pattern {
            m.pattern_start[p as usize + 1] += 1;
        }
        for i in 1..m.pattern_start.len() {
            m.pattern_start[i] += m.pattern_start[i - 1];
        }
        let mut fill = m.pattern_start.clone();
        m.pattern_terms = vec![0; term_pattern.len()];
        for (t, &p) in term_pattern.iter().enumerate() {
            m.pattern_terms[fill[p as usize] as usize] = t as u32;
            fill[p as usize] += 1;
        }

        let kind = if needles.len() <= dfa_max_patterns {
            AhoCorasickKind::DFA
        } else {
            AhoCorasickKind::ContiguousNFA
        };
        m.ac = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .kind(Some(kind))
            .build(&needles)?;
        // Overlapping search is what `match_post` runs; prove once that it is supported so
        // the hot path can rely on it.
        m.ac.try_find_overlapping_iter("")?.for_each(drop);
        Ok(m)
    }

    fn compile(&mut self, q: &Query, first_term: u32, ops: &mut Vec<Op>) {
        match q {
            Query::Term(i) => ops.push(Op::Term(first_term + i)),
            Query::Lang(tag) => {
                let primary = primary_subtag(tag).to_ascii_lowercase();
                let idx = match self.langs.iter().position(|l| *l == primary) {
                    Some(i) => i,
                    None => {
                        self.langs.push(primary);
                        self.langs.len() - 1
                    }
                };
                ops.push(Op::Lang(idx as u32));
            }
            Query::Not(inner) => {
                self.compile(inner, first_term, ops);
                ops.push(Op::Not);
            }
            Query::And(parts) | Query::Or(parts) => {
                for p in parts {
                    self.compile(p, first_term, ops);
                }
                let n = parts.len() as u32;
                ops.push(if matches!(q, Query::And(_)) {
                    Op::And(n)
                } else {
                    Op::Or(n)
                });
            }
        }
    }

    /// Finds the rules `post` satisfies. `norm` must be `post.text` normalized. Clears `out`
    /// first; allocates only for hits.
    pub fn match_post(
        &self,
        post: &Post<'_>,
        norm: &Normalized,
        scratch: &mut MatchScratch,
        out: &mut Vec<Hit>,
    ) {
        out.clear();
        scratch.found.clear();
        scratch.candidates.clear();
        let text = norm.text();
        // Cannot fail: `build` checked that overlapping search is supported.
        let Ok(matches) = self.ac.try_find_overlapping_iter(text) else {
            return;
        };
        for m in matches {
            let p = m.pattern().as_usize();
            let (Some(&a), Some(&b)) = (self.pattern_start.get(p), self.pattern_start.get(p + 1))
            else {
                continue;
            };
            for &t in self
                .pattern_terms
                .get(a as usize..b as usize)
                .unwrap_or(&[])
            {
                let t_ = t as usize;
                if !accepts(self.term_boundary[t_], text, m.start(), m.end(), norm) {
                    continue;
                }
                scratch.found.push(t);
                if self.term_anchor[t_] {
                    scratch.candidates.push(self.term_rule[t_]);
                }
            }
        }
        if scratch.candidates.is_empty() {
            return;
        }
        scratch.found.sort_unstable();
        scratch.found.dedup();
        scratch.candidates.sort_unstable();
        scratch.candidates.dedup();
        let lang = post.lang.as_deref().map(primary_subtag);
        for &r in &scratch.candidates {
            let Some(rule) = self.rules.get(r as usize) else {
                continue;
            };
            let holds = match &rule.program {
                None => true,
                Some(program) => self.eval(program, &scratch.found, lang, &mut scratch.stack),
            };
            if !holds {
                continue;
            }
            let found = &scratch.found;
            let from = found.partition_point(|&t| t < rule.first_term);
            let to = found.partition_point(|&t| t < rule.end_term);
            let terms = found[from..to]
                .iter()
                .copied()
                .filter(|&t| self.term_anchor[t as usize])
                .collect();
            out.push(Hit {
                rule: r,
                brand: rule.brand,
                terms,
            });
        }
    }

    fn eval(
        &self,
        program: &[Op],
        found: &[u32],
        lang: Option<&str>,
        stack: &mut Vec<bool>,
    ) -> bool {
        stack.clear();
        for op in program {
            match *op {
                Op::Term(t) => stack.push(found.binary_search(&t).is_ok()),
                Op::Lang(l) => {
                    let want = self.langs.get(l as usize).map(String::as_str);
                    stack.push(
                        matches!((lang, want), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b)),
                    );
                }
                Op::Not => {
                    if let Some(top) = stack.last_mut() {
                        *top = !*top;
                    }
                }
                Op::And(n) | Op::Or(n) => {
                    let k = stack.len().saturating_sub(n as usize);
                    let parts = &stack[k..];
                    let v = if matches!(op, Op::And(_)) {
                        parts.iter().all(|&b| b)
                    } else {
                        parts.iter().any(|&b| b)
                    };
                    stack.truncate(k);
                    stack.push(v);
                }
            }
        }
        stack.pop().unwrap_or(false)
    }

    /// The term with index `idx` as written in its rule (`""` for an index out of range).
    pub fn term(&self, idx: u32) -> &str {
        let i = idx as usize;
        let Some(&end) = self.term_end.get(i) else {
            return "";
        };
        let start = if i == 0 { 0 } else { self.term_end[i - 1] };
        self.term_text.get(start..end).unwrap_or("")
    }

    /// How many terms (over all rules) the matcher indexes.
    pub fn term_count(&self) -> usize {
        self.term_end.len()
    }

    /// How many distinct needles the automaton holds.
    pub fn pattern_count(&self) -> usize {
        self.pattern_start.len().saturating_sub(1)
    }

    /// The automaton kind chosen (see the module docs).
    pub fn automaton_kind(&self) -> AhoCorasickKind {
        self.ac.kind()
    }

    /// Approximate heap bytes used by the automaton and the tables.
    pub fn memory_usage(&self) -> usize {
        self.ac.memory_usage()
            + self.term_text.capacity()
            + 4 * (self.pattern_start.capacity() + self.pattern_terms.capacity())
            + 8 * self.term_end.capacity()
            + 4 * self.term_rule.capacity()
            + self.term_boundary.capacity()
            + self.term_anchor.capacity()
    }
}

/// The boundary rule of a term.
fn boundary_of(kind: TermKind, needle: &str) -> Boundary {
    match kind {
        TermKind::Word | TermKind::Phrase if needle.chars().any(is_unspaced_script) => {
            Boundary::Substring
        }
        TermKind::Word => Boundary::Word,
        TermKind::Phrase | TermKind::Hashtag | TermKind::Cashtag => Boundary::Strict,
        TermKind::Handle => Boundary::Handle,
    }
}

/// Whether an occurrence of a needle at `start..end` of `text` counts for a term with rule `b`.
fn accepts(b: Boundary, text: &str, start: usize, end: usize, norm: &Normalized) -> bool {
    if b == Boundary::Substring {
        return true;
    }
    let (Some(first), Some(last)) = (char_at(text, start), char_before(text, end)) else {
        return false;
    };
    if !is_boundary(first, char_before(text, start)) {
        return false;
    }
    let next = char_at(text, end);
    match b {
        Boundary::Word => is_boundary(last, next) || norm.inside_hashtag_or_handle(start, end),
        Boundary::Strict => is_boundary(last, next),
        Boundary::Handle => next != Some('-') && is_boundary(last, next),
        Boundary::Substring => true,
    }
}

/// `pt-BR` → `pt`; `zh_Hant` → `zh`.
fn primary_subtag(tag: &str) -> &str {
    tag.split(['-', '_']).next().unwrap_or(tag)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;
    use crate::post::{Author, Platform, PostFlags};
    use crate::rules::{Rule, Term};
    use crate::stage::normalize::{is_word_char, normalize};

    fn post<'a>(text: &'a str, lang: Option<&'a str>) -> Post<'a> {
        Post {
            platform: Platform::Bluesky,
            id: Cow::Borrowed("3l3qo2v6show4"),
            uri: None,
            url: None,
            author: Author::default(),
            text: Cow::Borrowed(text),
            lang: lang.map(Cow::Borrowed),
            created_at: None,
            time_us: None,
            engagement: None,
            flags: PostFlags::default(),
            links: Vec::new(),
        }
    }

    fn rules(text: &str) -> RuleSet {
        RuleSet::parse_str("t.rules", text, Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Both automaton kinds, so every table runs through each.
    fn matchers(set: &RuleSet) -> Vec<Matcher> {
        [usize::MAX, 0]
            .iter()
            .map(|&limit| Matcher::build_with_dfa_limit(set, limit).expect("build"))
            .collect()
    }

    /// `(rule id, [terms as written])` for each hit.
    fn run(
        m: &Matcher,
        set: &RuleSet,
        text: &str,
        lang: Option<&str>,
    ) -> Vec<(String, Vec<String>)> {
        let mut norm = Normalized::new();
        normalize(text, &mut norm);
        let mut scratch = MatchScratch::new();
        let mut out = Vec::new();
        m.match_post(&post(text, lang), &norm, &mut scratch, &mut out);
        out.iter()
            .map(|h| {
                let rule = &set.rules()[h.rule as usize];
                assert_eq!(h.brand as usize, rule.brand);
                (
                    rule.id.0.clone(),
                    h.terms.iter().map(|&t| m.term(t).to_string()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn plain_substring_mode_ignores_boundaries_only() {
        let set = rules(BOUNDARY_RULES);
        let plain = Matcher::build_plain_substring(&set).expect("build");
        let strict = Matcher::build(&set).expect("build");
        let ids = |m: &Matcher, text: &str| -> Vec<String> {
            run(m, &set, text, None)
                .into_iter()
                .map(|(id, _)| id)
                .collect()
        };
        let cases: [(&str, &[&str], &[&str]); 4] = [
            ("pacmen everywhere", &["word"], &[]),
            ("#notacme", &["word"], &[]),
            ("@acmehqx", &["word", "handle"], &["word"]),
            ("nothing here", &[], &[]),
        ];
        for (text, want_plain, want_strict) in cases {
            assert_eq!(ids(&plain, text), want_plain.to_vec(), "plain: {text}");
            assert_eq!(ids(&strict, text), want_strict.to_vec(), "strict: {text}");
        }
    }

    const BOUNDARY_RULES: &str = r#"
brand acme "Acme"
  rule word: acme
  rule phrase: "acme corp"
  rule tag: #acme
  rule handle: @acmehq
  rule cash: $ACME
  rule cjk: 東京
  rule accent: Ácme
  rule thai: แอคมี
"#;

    #[test]
    fn boundaries_and_case() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("plain word", "I love Acme", &["word"]),
            ("upper case", "ACME!!", &["word"]),
            ("possessive", "Acme's new thing", &["word"]),
            ("curly possessive", "Acme’s new thing", &["word"]),
            ("compound hashtag", "#acmefail again", &["word"]),
            ("exact hashtag", "#Acme rocks", &["word", "tag"]),
            (
                "hashtag with suffix is not the hashtag",
                "#acme_fail",
                &["word"],
            ),
            (
                "bluesky handle",
                "@acmehq.bsky.social help",
                &["word", "handle"],
            ),
            ("plain handle", "hey @AcmeHQ!", &["word", "handle"]),
            ("longer handle", "@acmehqx", &["word"]),
            ("dashed handle", "@acmehq-support", &["word"]),
            ("inside a word", "pacmen", &[]),
            ("plural", "acmes", &[]),
            ("handle ending in it", "@theacme", &[]),
            ("hashtag ending in it", "#notacme", &[]),
            ("email address", "me@acme.com", &["word"]),
            ("email is no handle", "me@acmehq.com", &[]),
            ("phrase", "acme corp", &["word", "phrase"]),
            (
                "phrase across spaces",
                "Acme  \n Corp.",
                &["word", "phrase"],
            ),
            (
                "phrase needs its right boundary",
                "acme corporation",
                &["word"],
            ),
            ("phrase needs its left boundary", "xacme corp", &[]),
            ("cashtag", "$ACME up 3%", &["word", "cash"]),
            ("longer cashtag", "$ACMEX", &[]),
            ("cjk substring", "東京タワーに行った", &["cjk"]),
            ("thai substring", "ฉันชอบแอคมีมาก", &["thai"]),
            ("latin beside kana", "acmeの新製品", &["word"]),
            ("fullwidth", "ＡＣＭＥのサービス", &["word"]),
            ("accent folds", "ÁCME and ácme", &["accent"]),
            ("accent is not ascii", "acme", &["word"]),
            ("combining accent is a word char", "acme\u{301}", &[]),
            ("url path", "https://x.io/acme", &["word"]),
            ("url host", "https://acmecloud.io", &[]),
            ("empty", "", &[]),
        ];
        let set = rules(BOUNDARY_RULES);
        for m in matchers(&set) {
            for (name, text, want) in cases {
                let got: Vec<String> = run(&m, &set, text, None).into_iter().map(|h| h.0).collect();
                assert_eq!(got, *want, "{name}: {text:?} ({:?})", m.automaton_kind());
            }
        }
    }

    const EVAL_RULES: &str = r#"
brand acme "Acme"
  rule support: (acme OR @acmehq) (help OR refund) lang:en
  rule joke: acme -"anvil joke"
  rule cartoon: acme -(coyote OR "road runner")
  rule pt: acme lang:pt-BR
  rule both: acme AND #acme
competitor globex "Globex"
  rule globex: globex OR #globex
  rule compare: (acme OR globex) (better OR worse)
"#;

    #[test]
    fn rules_are_evaluated() {
        type Case = (
            &'static str,
            &'static str,
            Option<&'static str>,
            &'static [(&'static str, &'static [&'static str])],
        );
        let cases: &[Case] = &[
            (
                "support in english",
                "Acme help please",
                Some("en"),
                &[
                    ("support", &["acme", "help"]),
                    ("joke", &["acme"]),
                    ("cartoon", &["acme"]),
                ],
            ),
            (
                "support needs lang",
                "Acme help please",
                None,
                &[("joke", &["acme"]), ("cartoon", &["acme"])],
            ),
            (
                "lang primary subtag, any case",
                "@acmehq refund",
                Some("EN-us"),
                &[
                    ("support", &["acme", "@acmehq", "refund"]),
                    ("joke", &["acme"]),
                    ("cartoon", &["acme"]),
                ],
            ),
            (
                "exclusion phrase",
                "acme anvil joke",
                None,
                &[("cartoon", &["acme"])],
            ),
            (
                "exclusion group",
                "acme and the Road Runner",
                None,
                &[("joke", &["acme"])],
            ),
            (
                "region ignored",
                "acme",
                Some("pt"),
                &[
                    ("joke", &["acme"]),
                    ("cartoon", &["acme"]),
                    ("pt", &["acme"]),
                ],
            ),
            (
                "and of two terms",
                "#acme acme",
                None,
                &[
                    ("joke", &["acme"]),
                    ("cartoon", &["acme"]),
                    ("both", &["acme", "#acme"]),
                ],
            ),
            (
                "only non-anchor terms",
                "help refund anvil joke",
                Some("en"),
                &[],
            ),
            (
                "two brands",
                "globex is better than acme",
                None,
                &[
                    ("joke", &["acme"]),
                    ("cartoon", &["acme"]),
                    ("globex", &["globex"]),
                    ("compare", &["acme", "globex", "better"]),
                ],
            ),
            ("nothing", "a quiet day", Some("en"), &[]),
        ];
        let set = rules(EVAL_RULES);
        for m in matchers(&set) {
            for (name, text, lang, want) in cases {
                let got = run(&m, &set, text, *lang);
                let want: Vec<(String, Vec<String>)> = want
                    .iter()
                    .map(|(r, ts)| (r.to_string(), ts.iter().map(|t| t.to_string()).collect()))
                    .collect();
                assert_eq!(got, want, "{name} ({:?})", m.automaton_kind());
            }
        }
    }

    #[test]
    fn terms_file_rule_and_term_lookup() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("p.txt"),
            "Acme Anvil\nRocket Skates\n#RocketSkates\n",
        )
        .expect("write");
        let set = RuleSet::parse_str(
            "t.rules",
            "brand acme \"Acme\"\n terms p.txt\n rule acme: acme\n",
            dir.path(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for m in matchers(&set) {
            assert_eq!(m.term_count(), 4);
            assert_eq!(m.pattern_count(), 4);
            assert_eq!(m.term(2), "#RocketSkates");
            assert_eq!(m.term(99), "");
            let got = run(
                &m,
                &set,
                "my ROCKET SKATES and acme anvil #rocketskates",
                None,
            );
            let want = vec![
                (
                    "acme-terms".to_string(),
                    vec![
                        "Acme Anvil".to_string(),
                        "Rocket Skates".into(),
                        "#RocketSkates".into(),
                    ],
                ),
                ("acme".to_string(), vec!["acme".to_string()]),
            ];
            assert_eq!(got, want);
        }
    }

    #[test]
    fn scratch_and_output_are_reused() {
        let set = rules(EVAL_RULES);
        let m = Matcher::build(&set).expect("build");
        let mut norm = Normalized::new();
        let mut scratch = MatchScratch::new();
        let mut out = Vec::new();
        let hit = "acme help #acme globex better";
        normalize(hit, &mut norm);
        m.match_post(&post(hit, Some("en")), &norm, &mut scratch, &mut out);
        assert_eq!(out.len(), 6);
        let caps = (
            scratch.found.capacity(),
            scratch.candidates.capacity(),
            out.capacity(),
        );
        for text in ["nothing here", "acmes pacmen", "#notacme", ""] {
            normalize(text, &mut norm);
            m.match_post(&post(text, None), &norm, &mut scratch, &mut out);
            assert!(out.is_empty(), "{text}");
            let now = (
                scratch.found.capacity(),
                scratch.candidates.capacity(),
                out.capacity(),
            );
            assert_eq!(now, caps, "{text}");
        }
    }

    #[test]
    fn shipped_pack_examples() {
        let mut root = Path::new(env!("CARGO_MANIFEST_DIR"));
        while !root.join("rules/acme.rules").is_file() {
            root = root.parent().expect("an ancestor holds rules/acme.rules");
        }
        let set = RuleSet::load(&[root.join("rules")]).unwrap_or_else(|e| panic!("{e}"));
        let m = Matcher::build(&set).expect("build");
        let cases: &[(&str, Option<&str>, &[&str])] = &[
            ("Acme's new anvil is great", Some("en"), &["acme-mentions"]),
            (
                "@acmehq.bsky.social my rocket skates are broken, need a refund",
                Some("en"),
                &["acme-terms", "acme-mentions", "acme-support"],
            ),
            ("the coyote ordered from acme again", Some("en"), &[]),
            (
                "#acmefail the acme cloud is down",
                None,
                &["acme-terms", "acme-mentions", "acme-cloud-outage"],
            ),
            (
                "Acme Cloud 障害 発生中",
                Some("ja"),
                &["acme-terms", "acme-mentions", "acme-cloud-outage"],
            ),
            (
                "a acme está fora do ar, preciso de ajuda",
                Some("pt-BR"),
                &["acme-mentions", "acme-support-pt"],
            ),
            (
                "$ACME up 4% today",
                Some("en"),
                &["acme-mentions", "acme-stock"],
            ),
            (
                "switched from Globex to acme",
                Some("en"),
                &["acme-mentions", "globex-mentions", "globex-switching"],
            ),
            ("Initech TPS report meme", Some("en"), &[]),
            (
                "イニテックのサポートに問い合わせ中",
                Some("ja"),
                &["initech-japan"],
            ),
            ("pacman and globexx", Some("en"), &[]),
        ];
        for (text, lang, want) in cases {
            let got: Vec<String> = run(&m, &set, text, *lang)
                .into_iter()
                .map(|h| h.0)
                .collect();
            assert_eq!(got, *want, "{text}");
        }
    }

    // ---- The slow, obviously correct reference matcher ----

    /// A word boundary between `edge` (in the term) and its neighbor, spelled out.
    fn ref_boundary(edge: char, neighbor: Option<char>) -> bool {
        match neighbor {
            None => true,
            Some(n) if !is_word_char(n) => true,
            Some(n) => is_unspaced_script(n) != is_unspaced_script(edge),
        }
    }

    /// Whether `start..end` lies in a `#hashtag` or `@handle`, found by walking back from
    /// `start` to the sigil.
    fn ref_inside_tag(t: &str, start: usize, end: usize) -> bool {
        for (j, c) in t[..start].char_indices().rev() {
            if c == '#' || c == '@' {
                if !ref_boundary(c, t[..j].chars().next_back()) {
                    return false;
                }
                let body = &t[j + 1..];
                let len = if c == '#' {
                    body.find(|c: char| !is_word_char(c)).unwrap_or(body.len())
                } else {
                    let run = body
                        .find(|c: char| !(is_word_char(c) || c == '.' || c == '-'))
                        .unwrap_or(body.len());
                    body[..run].trim_end_matches(['.', '-']).len()
                };
                return len > 0 && end <= j + 1 + len;
            }
            if !(is_word_char(c) || c == '.' || c == '-') {
                return false;
            }
        }
        false
    }

    fn ref_occurs(t: &str, term: &Term) -> bool {
        let needle = term.needle.as_str();
        let unspaced = matches!(term.kind, TermKind::Word | TermKind::Phrase)
            && needle.chars().any(is_unspaced_script);
        let (Some(first), Some(last)) = (needle.chars().next(), needle.chars().next_back()) else {
            return false;
        };
        t.char_indices().map(|(s, _)| s).any(|s| {
            if !t[s..].starts_with(needle) {
                return false;
            }
            if unspaced {
                return true;
            }
            let e = s + needle.len();
            let before = t[..s].chars().next_back();
            let after = t[e..].chars().next();
            let left = ref_boundary(first, before);
            let right = ref_boundary(last, after);
            match term.kind {
                TermKind::Word => left && (right || ref_inside_tag(t, s, e)),
                TermKind::Phrase | TermKind::Hashtag | TermKind::Cashtag => left && right,
                TermKind::Handle => left && right && after != Some('-'),
            }
        })
    }

    fn ref_eval(q: &Query, found: &[bool], lang: Option<&str>) -> bool {
        match q {
            Query::Term(i) => found[*i as usize],
            Query::Lang(tag) => {
                let want = tag.split('-').next().unwrap_or("");
                lang.and_then(|l| l.split(['-', '_']).next())
                    .is_some_and(|l| l.eq_ignore_ascii_case(want))
            }
            Query::Not(inner) => !ref_eval(inner, found, lang),
            Query::And(parts) => parts.iter().all(|p| ref_eval(p, found, lang)),
            Query::Or(parts) => parts.iter().any(|p| ref_eval(p, found, lang)),
        }
    }

    fn ref_positive(q: &Query, out: &mut Vec<u32>) {
        match q {
            Query::Term(i) => out.push(*i),
            Query::Lang(_) | Query::Not(_) => {}
            Query::And(parts) | Query::Or(parts) => parts.iter().for_each(|p| ref_positive(p, out)),
        }
    }

    /// `(rule index, global indices of its positive terms found)` for each rule that holds.
    fn reference(set: &RuleSet, text: &str, lang: Option<&str>) -> Vec<(u32, Vec<u32>)> {
        let mut norm = Normalized::new();
        normalize(text, &mut norm);
        let t = norm.text();
        let mut out = Vec::new();
        let mut first = 0u32;
        for (r, rule) in set.rules().iter().enumerate() {
            let found: Vec<bool> = rule.terms.iter().map(|term| ref_occurs(t, term)).collect();
            if ref_eval(&rule.query, &found, lang) {
                let mut positive = Vec::new();
                ref_positive(&rule.query, &mut positive);
                positive.sort_unstable();
                positive.dedup();
                let terms = positive
                    .into_iter()
                    .filter(|&i| found[i as usize])
                    .map(|i| first + i);
                out.push((r as u32, terms.collect()));
            }
            first += rule.terms.len() as u32;
        }
        out
    }

    fn fast(m: &Matcher, text: &str, lang: Option<&str>) -> Vec<(u32, Vec<u32>)> {
        let mut norm = Normalized::new();
        normalize(text, &mut norm);
        let mut out = Vec::new();
        m.match_post(&post(text, lang), &norm, &mut MatchScratch::new(), &mut out);
        out.into_iter().map(|h| (h.rule, h.terms)).collect()
    }

    #[test]
    fn reference_agrees_on_the_tables() {
        for rules_text in [BOUNDARY_RULES, EVAL_RULES] {
            let set = rules(rules_text);
            for m in matchers(&set) {
                for text in [
                    "#acmefail acme corp",
                    "@acmehq.bsky.social help",
                    "東京 ácme",
                    "acme anvil joke",
                ] {
                    assert_eq!(
                        fast(&m, text, Some("en")),
                        reference(&set, text, Some("en")),
                        "{text}"
                    );
                }
            }
        }
    }

    // ---- Property: the fast matcher finds what the reference finds ----

    /// Texts are runs of (prefix, word, separator): words in several cases and scripts,
    /// sigils and word characters before them, spaces, punctuation, possessives, kana and
    /// emoji after, so random texts often hold terms right at the boundary cases.
    const PREFIXES: &[&str] = &["", "", "", "#", "@", "$", "x", "é", "東", "-"];
    const WORDS: &[&str] = &[
        "a", "ab", "AB", "acme", "Acme", "ACME", "b", "c", "é", "É", "東", "京", "แอ", "corp", "x",
        "İ", "ＡＣ", "e\u{301}",
    ];
    const SEPARATORS: &[&str] = &[
        " ", " ", " ", "  ", "\n", ".", "-", "_", "'s", "’s", "の", "🔥", "", "#", "@",
    ];
    const TERM_PARTS: &[&str] = &["a", "ab", "acme", "b", "c", "é", "東", "corp", "x", "แอ"];

    fn term_strategy() -> impl Strategy<Value = String> {
        let part = || prop::sample::select(TERM_PARTS);
        let body = prop_oneof![
            3 => part().prop_map(String::from),
            1 => (part(), part()).prop_map(|(a, b)| format!("{a}{b}")),
        ];
        (0..6u8, body.clone(), body).prop_map(|(kind, a, b)| match kind {
            0 | 1 => a,
            2 => format!("\"{a} {b}\""),
            3 => format!("#{a}"),
            4 => format!("@{a}"),
            _ => format!("${a}"),
        })
    }

    /// Random queries over a pool of terms (so rules share terms and texts can hold them).
    fn query_strategy(pool: Vec<String>) -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            8 => prop::sample::select(pool),
            1 => prop::sample::select(&["lang:en", "lang:pt-BR", "lang:ja"][..]).prop_map(String::from),
        ];
        leaf.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                1 => inner.clone().prop_map(|q| format!("-({q})")),
                2 => prop::collection::vec(inner.clone(), 2..4)
                    .prop_map(|qs| format!("({})", qs.join(" "))),
                2 => prop::collection::vec(inner, 2..4)
                    .prop_map(|qs| format!("({})", qs.join(" OR "))),
            ]
        })
    }

    /// A pool of terms, queries over it, and texts made of ordinary words and the pool's
    /// terms as written and upper-cased.
    fn case_strategy() -> impl Strategy<Value = (Vec<String>, Vec<String>)> {
        prop::collection::vec(term_strategy(), 1..6).prop_flat_map(|pool| {
            let mut words: Vec<String> = WORDS.iter().map(|w| w.to_string()).collect();
            for term in &pool {
                let written = term.trim_matches('"');
                words.push(written.to_string());
                words.push(written.to_uppercase());
            }
            let queries = prop::collection::vec(query_strategy(pool), 1..6);
            (queries, prop::collection::vec(text_strategy(words), 1..8))
        })
    }

    /// A rule set of the generated queries that are valid rules (a query that could match
    /// without any positive term is rejected by design), or `None` if none is.
    fn rules_from(queries: &[String]) -> Option<RuleSet> {
        let valid: Vec<&String> = queries
            .iter()
            .filter(|q| {
                let text = format!("brand b \"B\"\nrule r: {q}\n");
                RuleSet::parse_str("p.rules", &text, Path::new(".")).is_ok()
            })
            .collect();
        if valid.is_empty() {
            return None;
        }
        let mut text = String::from("brand b \"B\"\n");
        for (i, q) in valid.iter().enumerate() {
            text.push_str(&format!("rule r{i}: {q}\n"));
        }
        RuleSet::parse_str("p.rules", &text, Path::new(".")).ok()
    }

    fn text_strategy(words: Vec<String>) -> impl Strategy<Value = String> {
        let piece = (
            prop::sample::select(PREFIXES),
            prop::sample::select(words),
            prop::sample::select(SEPARATORS),
        );
        prop::collection::vec(piece, 0..12).prop_map(|pieces| {
            pieces
                .iter()
                .map(|(p, w, s)| format!("{p}{w}{s}"))
                .collect::<String>()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            // Keep failures in the test output rather than in files beside the source.
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn fast_matcher_equals_reference(
            (queries, texts) in case_strategy(),
            lang in prop::sample::select(&[None, Some("en"), Some("pt-BR"), Some("JA")][..]),
        ) {
            let Some(set) = rules_from(&queries) else { return Ok(()) };
            for m in matchers(&set) {
                for text in &texts {
                    prop_assert_eq!(
                        fast(&m, text, lang),
                        reference(&set, text, lang),
                        "text {:?}, rules {:?}, {:?}", text, queries, m.automaton_kind()
                    );
                }
            }
        }

        #[test]
        fn terms_written_into_text_are_found(
            term in term_strategy(),
            before in prop::sample::select(&["", " ", "x", "é", "東", "#", "@", "の"][..]),
            after in prop::sample::select(&["", " ", "x", "'s", "東", ".", "-", "の"][..]),
        ) {
            let Some(set) = rules_from(std::slice::from_ref(&term)) else { return Ok(()) };
            let written = term.trim_matches('"');
            let text = format!("{before}{written}{after}");
            for m in matchers(&set) {
                prop_assert_eq!(fast(&m, &text, None), reference(&set, &text, None), "{:?}", text);
            }
            // Standing alone between spaces, every term is found.
            let alone = format!("x {written} x");
            let hits = fast(&Matcher::build(&set).expect("build"), &alone, None);
            prop_assert_eq!(hits.len(), 1, "{:?}", alone);
        }
    }

    #[test]
    fn matcher_is_shareable_across_workers() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Matcher>();
        assert_send_sync::<std::sync::Arc<Matcher>>();
    }

    #[test]
    fn automaton_kind_follows_pattern_count() {
        let set = rules(EVAL_RULES);
        let patterns = Matcher::build(&set).expect("build").pattern_count();
        let cases = [
            (patterns, AhoCorasickKind::DFA),
            (patterns - 1, AhoCorasickKind::ContiguousNFA),
            (DFA_MAX_PATTERNS, AhoCorasickKind::DFA),
        ];
        for (limit, kind) in cases {
            let m = Matcher::build_with_dfa_limit(&set, limit).expect("build");
            assert_eq!(m.automaton_kind(), kind, "limit {limit}");
        }
    }

    #[test]
    fn rule_order_and_anchor_flags_match_the_rule_set() {
        let set = rules(EVAL_RULES);
        let m = Matcher::build(&set).expect("build");
        let mut global = 0usize;
        for rule in set.rules() {
            let rule: &Rule = rule;
            for (i, term) in rule.terms.iter().enumerate() {
                assert_eq!(m.term(global as u32), term.text);
                assert_eq!(m.term_anchor[global], rule.is_anchor(i));
                global += 1;
            }
        }
        assert_eq!(global, m.term_count());
        assert_eq!(m.automaton_kind(), AhoCorasickKind::DFA);
        assert!(m.memory_usage() > 0);
    }
}
