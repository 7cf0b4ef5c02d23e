//! Match: a normalized post → the rules it satisfies ([`Hit`]s), from one search over every
//! term of every rule.
//!
//! # Input → output
//! [`Matcher::build`] compiles a [`RuleSet`] once (shared by all workers behind an `Arc`);
//! [`Matcher::match_post`] takes a post, its [`Normalized`] text and a per-worker
//! [`MatchScratch`], and fills a caller-owned `Vec<Hit>`: one per rule that holds, in rule
//! order, naming the rule's non-excluded terms that were found.
//!
//! # How a post is matched
//! 1. One search of the casefolded text finds every occurrence of every distinct needle at a
//!    place where a term can start (overlapping, so `acme` is found inside `acme corp`): a
//!    `StartTrie` of all needles walked from word starts, plus, only when some term is
//!    written in a script without spaces, an Aho-Corasick automaton of those needles, which
//!    can start anywhere.
//! 2. Each occurrence is checked against the boundary rule of each term written with that
//!    needle: a word boundary on the left (start of text, a non-word character, or a change
//!    between a script written without spaces and another); on the right the same, except
//!    that a word inside a `#hashtag` or `@handle` token needs none (`#acmefail`,
//!    `@acmehq.bsky.social` mention `acme`; `pacmen`, `acmes`, `@theacme`, `#notacme` do
//!    not). `#tag` and `$tag` terms need both boundaries (`#acmefail` is not `#acme`); an
//!    `@handle` term also accepts a `.domain` after it but not a `-` (`@acmehq.bsky.social` is
//!    `@acmehq`, `@acmehq-x` is not). Words and phrases written in a script without spaces
//!    (CJK, Thai, …) match anywhere.
//! 3. A term that passes marks its rule as a candidate if it is one of the rule's
//!    *triggers*: a set of terms of which every way the rule can hold needs one (for an AND,
//!    only its cheapest required part: `acme (help OR support)` is woken by `acme`, never by
//!    `help`). Only marked rules are evaluated, so cost follows matches, not rule count, even
//!    when thousands of rules share a common word; a rule that is a plain OR of terms (a
//!    10k-term terms file) holds as soon as it is marked. Other rules run their compiled query
//!    (postfix, over the sorted set of terms found, their positions for `NEAR`, and the post's
//!    fields).
//!
//! # Invariants
//! - No allocation when no term is found (≈98% of posts): the scratch vectors only clear.
//!   A post that hits allocates its `Hit::terms`.
//! - A term index ([`Hit::terms`], [`Matcher::term`]) names one term of one rule: rule `r`'s
//!   terms are a contiguous range, in the order of [`crate::rules::Rule::terms`]. Terms of
//!   different rules that share a needle share one automaton pattern, and terms that also
//!   share their boundary rule and letter comparison share one *variant*: a hit is checked
//!   once per variant, and a rule's query reads variants, so a word written in 10,000 rules
//!   costs one check per occurrence, not 10,000.
//! - Nothing here panics on input, counts, logs or reads a clock (STYLE 2).
//!
//! # Search structures
//! Up to 150k distinct needles the Aho-Corasick DFA over all of them used to be the search;
//! at 100k needles it was 180 MB and took 0.8 s to build, over the rule-scale targets, and
//! the trie that replaced it builds in a tenth of the time and size and runs as fast or faster
//! (see `start_trie.rs` and benches/NOTES.md). The automaton of needles written without spaces
//! (CJK, Thai names) stays a DFA up to [`DFA_MAX_PATTERNS`] of them and a contiguous NFA
//! above, which bounds its memory; [`Matcher::build_plain_substring`], for the benchmark that
//! counts plain substrings like the peers, puts every needle in it.

mod start_trie;

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

use crate::normalize::{
    char_at, char_before, is_boundary, is_unspaced_script, is_word_char, normalize_accents,
    Normalized, TokenKind,
};
use crate::post::Post;
use crate::rules::{Attachment, Compare, Field, Fold, PostKind, Query, RuleSet, Term, TermKind};
use start_trie::{Needle, StartTrie};

/// Most needles written without spaces for which their automaton is a DFA; above, a
/// contiguous NFA (see the module docs).
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
    /// What the searches of this post found.
    seen: Seen,
    /// Evaluation stack for compiled queries.
    stack: Vec<bool>,
    /// The text with accents removed, for rules with `accents=ignore` (refilled in place: a
    /// fresh `Normalized` per post would rebuild its URL searcher every time).
    folded: Normalized,
    /// The language detected for the last post, when a `lang:` condition needed one.
    detected: Option<Option<&'static str>>,
}

impl MatchScratch {
    /// What language detection said of the last post matched, when a `lang:` condition of a
    /// candidate rule asked for a post without a declared language: `Some(None)` when the
    /// text was too short to tell. `None` when nothing asked.
    pub fn detected_lang(&self) -> Option<Option<&'static str>> {
        self.detected
    }
}

/// What the searches of one post found.
#[derive(Debug, Clone, Default)]
struct Seen {
    /// Variants (see [`Matcher`]) that passed their boundary check.
    found: Vec<u32>,
    /// Rules a trigger marked.
    candidates: Vec<u32>,
    /// Where the variants used by `NEAR` were found.
    occurrences: Vec<Occurrence>,
}

impl MatchScratch {
    /// Empty scratch; it grows to the largest post's needs and then stays.
    pub fn new() -> Self {
        MatchScratch::default()
    }
}

/// One place a variant used by a `NEAR` was found.
#[derive(Debug, Clone, Copy)]
struct Occurrence {
    variant: u32,
    start: usize,
    end: usize,
    /// Found in the accent-folded text rather than the normalized text.
    folded: bool,
}

/// The boundary rule a term is matched with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Boundary {
    /// Words: both sides, except no right boundary inside a hashtag or handle token.
    Word,
    /// Phrases, hashtags, cashtags: both sides.
    Strict,
    /// Handles: both sides, and not followed by `-` (a longer handle).
    Handle,
    /// Prefix terms (`refund*`): the left side only.
    Prefix,
    /// Words and phrases in a script written without spaces: anywhere.
    Substring,
}

/// Per-term flag: written outside every exclusion, so reported in [`Hit::terms`] when found.
const ANCHOR: u8 = 1;
/// Per-term flag: finding it makes its rule a candidate. Only one required part of an AND
/// needs to trigger it (see [`triggers`]), so words many rules share (`help`, `down`) do not
/// wake every rule that mentions them.
const TRIGGER: u8 = 16;
/// The term is an operand of a `NEAR`: record where it was found.
const NEAR: u8 = 2;
/// `raw:`: confirm the exact letters in the post's own text.
const EXACT: u8 = 4;
/// The rule ignores accents: match against the accent-folded text.
const ACCENT_FREE: u8 = 8;

/// One step of a compiled query, run on a stack of booleans.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Push whether this term was found.
    Term(u32),
    /// Push whether this `NEAR` (index into `nears`) holds.
    Near(u32),
    /// Push whether this field condition (index into `fields`) holds.
    Field(u32),
    /// Negate the top.
    Not,
    /// Replace the top n with their conjunction.
    And(u32),
    /// Replace the top n with their disjunction.
    Or(u32),
}

/// A compiled `NEAR/n`: the variants of each side's terms, sorted.
#[derive(Debug, Clone)]
struct NearTest {
    left: Box<[u32]>,
    right: Box<[u32]>,
    within: u32,
}

/// A compiled field condition.
#[derive(Debug, Clone)]
enum FieldTest {
    /// Lowercase primary subtags.
    Lang(Box<[String]>),
    /// Lowercase handles or ids.
    From(Box<[String]>),
    Is(PostKind),
    Has(Attachment),
    /// Lowercase URL part.
    Url(String),
    /// Lowercase host.
    Domain(String),
    Followers(Compare, u64),
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

/// What an automaton hit is checked against: one needle with one boundary rule and one way
/// of comparing letters. Every term is one variant; terms of different rules that are the same
/// variant (`help` in ten thousand rules) are checked once per hit, not once per rule.
#[derive(Debug, Clone, Copy)]
struct Variant {
    boundary: Boundary,
    /// [`EXACT`], [`ACCENT_FREE`] and [`NEAR`] (some term of it is a `NEAR` operand).
    flags: u8,
    /// For [`EXACT`]: the term whose letters are confirmed (exact terms are never shared).
    exact_term: u32,
}

/// Compressed lists: the items of list `i` are `items[start[i]..start[i + 1]]`.
#[derive(Debug, Clone, Default)]
struct Lists {
    start: Vec<u32>,
    items: Vec<u32>,
}

impl Lists {
    /// Builds the lists from `(list, item)` pairs; each list keeps its items ascending.
    fn build(lists: usize, mut pairs: Vec<(u32, u32)>) -> Lists {
        pairs.sort_unstable();
        pairs.dedup();
        let mut start = vec![0u32; lists + 1];
        for &(l, _) in &pairs {
            start[l as usize + 1] += 1;
        }
        for i in 1..start.len() {
            start[i] += start[i - 1];
        }
        Lists {
            start,
            items: pairs.into_iter().map(|(_, item)| item).collect(),
        }
    }

    fn get(&self, i: u32) -> &[u32] {
        let i = i as usize;
        match (self.start.get(i), self.start.get(i + 1)) {
            (Some(&a), Some(&b)) => self.items.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    fn capacity_bytes(&self) -> usize {
        4 * (self.start.capacity() + self.items.capacity())
    }
}

/// All rules compiled into one automaton plus per-term and per-rule tables. `Send + Sync`;
/// share it behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Needles that need a word boundary on their left (see [`StartTrie`]).
    trie: StartTrie,
    /// Needles written in a script without spaces, found anywhere; `None` when there are none.
    floating: Option<AhoCorasick>,
    /// Floating automaton pattern → needle (pattern) index.
    floating_pattern: Vec<u32>,
    /// Every needle is floating ([`Matcher::build_plain_substring`]). Otherwise each floating
    /// needle holds a character of a script without spaces (U+0E00 and above, three or four
    /// UTF-8 bytes), so a text without a byte from 0xE0 up cannot hold one and is not searched.
    floating_everywhere: bool,
    /// Pattern → its variants.
    pattern_variants: Lists,
    variants: Vec<Variant>,
    /// Variant → the rules it triggers.
    variant_rules: Lists,
    /// Variant → its terms, ascending (so a rule's terms are one contiguous run).
    variant_terms: Lists,
    term_variant: Vec<u32>,
    /// Term `t` as written is `term_text[term_end[t - 1]..term_end[t]]` (one buffer instead of
    /// a million small strings).
    term_text: String,
    term_end: Vec<usize>,
    term_rule: Vec<u32>,
    term_boundary: Vec<Boundary>,
    /// [`ANCHOR`], [`TRIGGER`], [`NEAR`], [`EXACT`], [`ACCENT_FREE`].
    term_flags: Vec<u8>,
    rules: Vec<CompiledRule>,
    nears: Vec<NearTest>,
    fields: Vec<FieldTest>,
    /// Some rule ignores accents: texts with accents get a second search.
    accent_free: bool,
}

/// What a compiled query is evaluated against.
struct Facts<'s, 'p> {
    found: &'s [u32],
    occurrences: &'s [Occurrence],
    post: &'s Post<'p>,
    norm: &'s Normalized,
    folded: &'s Normalized,
    lang: Option<&'s str>,
    /// The detected language of a post that declares none, worked out on first need.
    detected: std::cell::OnceCell<Option<&'static str>>,
}

impl Facts<'_, '_> {
    /// The post's declared language, else the one detected in its text.
    fn language(&self) -> Option<&str> {
        self.lang.or_else(|| {
            *self
                .detected
                .get_or_init(|| crate::language::detect(&self.post.text))
        })
    }
}

impl Matcher {
    /// Compiles every rule of `rules`.
    pub fn build(rules: &RuleSet) -> Result<Matcher, MatcherError> {
        Matcher::build_with(rules, DFA_MAX_PATTERNS, false)
    }

    /// A matcher that ignores word boundaries: every term matches wherever its casefolded
    /// text occurs, as plain case-insensitive substring search does. Not for production (it
    /// finds `acme` in `pacmen`); benchmarks use it to check earshot against peers that count
    /// plain substrings, which must agree exactly.
    pub fn build_plain_substring(rules: &RuleSet) -> Result<Matcher, MatcherError> {
        Matcher::build_with(rules, DFA_MAX_PATTERNS, true)
    }

    /// [`Matcher::build`] with the DFA/NFA threshold of the floating automaton as a parameter,
    /// so tests run every case through both automaton kinds; `plain` for
    /// [`Matcher::build_plain_substring`].
    fn build_with(
        rules: &RuleSet,
        dfa_max_patterns: usize,
        plain: bool,
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
        let mut m = Matcher {
            trie: StartTrie::build(&[]),
            floating: None,
            floating_pattern: Vec::new(),
            floating_everywhere: plain,
            pattern_variants: Lists::default(),
            variants: Vec::new(),
            variant_rules: Lists::default(),
            variant_terms: Lists::default(),
            term_variant: Vec::with_capacity(term_count),
            term_text: String::new(),
            term_end: Vec::with_capacity(term_count),
            term_rule: Vec::with_capacity(term_count),
            term_boundary: Vec::with_capacity(term_count),
            term_flags: Vec::with_capacity(term_count),
            rules: Vec::with_capacity(rules.rules().len()),
            nears: Vec::new(),
            fields: Vec::new(),
            accent_free: false,
        };
        let mut variant_index: HashMap<(u32, Boundary, u8, u32), u32> = HashMap::new();
        let mut variant_pattern: Vec<u32> = Vec::new();
        let mut rule_pairs: Vec<(u32, u32)> = Vec::new();
        let mut term_pairs: Vec<(u32, u32)> = Vec::with_capacity(term_count);
        for (r, rule) in rules.rules().iter().enumerate() {
            // Both fit: checked above.
            let first_term = m.term_end.len() as u32;
            let mut near_terms = vec![false; rule.terms.len()];
            mark_near_terms(&rule.query, &mut near_terms);
            let mut trigger_terms = vec![false; rule.terms.len()];
            // The loader guarantees every rule needs some term; all anchors otherwise.
            match triggers(&rule.query, &rule.terms) {
                Some(set) => set.iter().for_each(|&i| trigger_terms[i as usize] = true),
                None => (0..rule.terms.len())
                    .filter(|&i| rule.is_anchor(i))
                    .for_each(|i| trigger_terms[i] = true),
            }
            for (i, term) in rule.terms.iter().enumerate() {
                let next = needles.len() as u32;
                let p = *needle_index.entry(term.needle.as_str()).or_insert_with(|| {
                    needles.push(term.needle.as_str());
                    next
                });
                m.term_text.push_str(&term.text);
                m.term_end.push(m.term_text.len());
                m.term_rule.push(r as u32);
                m.term_boundary.push(boundary_of(term));
                let mut flags = 0;
                if rule.is_anchor(i) {
                    flags |= ANCHOR;
                }
                if trigger_terms[i] {
                    flags |= TRIGGER;
                }
                if near_terms[i] {
                    flags |= NEAR;
                }
                match term.fold {
                    Fold::Exact => flags |= EXACT,
                    Fold::Case => {}
                    Fold::CaseAndAccents => {
                        flags |= ACCENT_FREE;
                        m.accent_free = true;
                    }
                }
                m.term_flags.push(flags);
                let t = m.term_end.len() as u32 - 1;
                let boundary = boundary_of(term);
                let exact_term = if flags & EXACT != 0 { t } else { u32::MAX };
                let key = (p, boundary, flags & (EXACT | ACCENT_FREE), exact_term);
                let v = *variant_index.entry(key).or_insert_with(|| {
                    m.variants.push(Variant {
                        boundary,
                        flags: flags & (EXACT | ACCENT_FREE),
                        exact_term,
                    });
                    variant_pattern.push(p);
                    (m.variants.len() - 1) as u32
                });
                if flags & NEAR != 0 {
                    m.variants[v as usize].flags |= NEAR;
                }
                if flags & TRIGGER != 0 {
                    rule_pairs.push((v, r as u32));
                }
                term_pairs.push((v, t));
                m.term_variant.push(v);
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

        let variants = m.variants.len();
        m.pattern_variants = Lists::build(
            needles.len(),
            variant_pattern
                .iter()
                .enumerate()
                .map(|(v, &p)| (p, v as u32))
                .collect(),
        );
        m.variant_rules = Lists::build(variants, rule_pairs);
        m.variant_terms = Lists::build(variants, term_pairs);
        // Queries name terms; evaluation looks at variants.
        for near in &mut m.nears {
            for side in [&mut near.left, &mut near.right] {
                let mut v: Vec<u32> = side.iter().map(|&t| m.term_variant[t as usize]).collect();
                v.sort_unstable();
                v.dedup();
                *side = v.into_boxed_slice();
            }
        }
        for rule in &mut m.rules {
            if let Some(program) = &mut rule.program {
                for op in program.iter_mut() {
                    if let Op::Term(t) = op {
                        *t = m.term_variant[*t as usize];
                    }
                }
            }
        }

        if plain {
            m.variants
                .iter_mut()
                .for_each(|v| v.boundary = Boundary::Substring);
        }
        // A needle is found anywhere when its variants say so (they agree: only words and
        // phrases in a script without spaces are, and no other kind shares their needle).
        // A needle is open when some variant needs no boundary on its right.
        let mut floating = vec![false; needles.len()];
        let mut open = vec![false; needles.len()];
        for (v, &p) in variant_pattern.iter().enumerate() {
            match m.variants[v].boundary {
                Boundary::Substring => floating[p as usize] = true,
                Boundary::Prefix => open[p as usize] = true,
                Boundary::Word | Boundary::Strict | Boundary::Handle => {}
            }
        }
        let anchored: Vec<Needle<'_>> = needles
            .iter()
            .enumerate()
            .filter(|&(p, _)| !floating[p])
            .map(|(p, &text)| Needle {
                pattern: p as u32,
                text,
                open: open[p],
            })
            .collect();
        m.trie = StartTrie::build(&anchored);
        drop(anchored);
        let (floating_pattern, floating_needles): (Vec<u32>, Vec<&str>) = needles
            .iter()
            .enumerate()
            .filter(|&(p, _)| floating[p])
            .map(|(p, &n)| (p as u32, n))
            .unzip();
        if !floating_needles.is_empty() {
            let kind = if floating_needles.len() <= dfa_max_patterns {
                AhoCorasickKind::DFA
            } else {
                AhoCorasickKind::ContiguousNFA
            };
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .kind(Some(kind))
                .build(&floating_needles)?;
            // Overlapping search is what `match_post` runs; prove once that it is supported
            // so the hot path can rely on it.
            ac.try_find_overlapping_iter("")?.for_each(drop);
            m.floating = Some(ac);
            m.floating_pattern = floating_pattern;
        }
        Ok(m)
    }

    fn compile(&mut self, q: &Query, first_term: u32, ops: &mut Vec<Op>) {
        match q {
            Query::Term(i) => ops.push(Op::Term(first_term + i)),
            Query::Near {
                left,
                right,
                within,
            } => {
                let global = |side: &[u32]| -> Box<[u32]> {
                    let mut v: Vec<u32> = side.iter().map(|i| first_term + i).collect();
                    v.sort_unstable();
                    v.dedup();
                    v.into_boxed_slice()
                };
                self.nears.push(NearTest {
                    left: global(left),
                    right: global(right),
                    within: *within,
                });
                ops.push(Op::Near((self.nears.len() - 1) as u32));
            }
            Query::Field(field) => {
                let test = match field {
                    Field::Lang(tags) => FieldTest::Lang(
                        tags.iter()
                            .map(|t| primary_subtag(t).to_ascii_lowercase())
                            .collect(),
                    ),
                    Field::From(who) => FieldTest::From(who.clone().into_boxed_slice()),
                    Field::Is(kind) => FieldTest::Is(*kind),
                    Field::Has(what) => FieldTest::Has(*what),
                    Field::Url(part) => FieldTest::Url(part.clone()),
                    Field::Domain(host) => FieldTest::Domain(host.clone()),
                    Field::Followers(cmp, n) => FieldTest::Followers(*cmp, *n),
                };
                self.fields.push(test);
                ops.push(Op::Field((self.fields.len() - 1) as u32));
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
        let MatchScratch {
            seen,
            stack,
            folded,
            detected,
        } = scratch;
        *detected = None;
        seen.found.clear();
        seen.candidates.clear();
        seen.occurrences.clear();
        // Rules that ignore accents match against a folded copy of the text, made only when
        // folding changes something (never for ASCII text).
        let two_texts = self.accent_free && normalize_accents(norm, folded);
        self.scan(post, norm, Pass::Normal { two_texts }, seen);
        if two_texts {
            self.scan(post, folded, Pass::Folded, seen);
        }
        if !seen.candidates.is_empty() {
            *detected = self.evaluate(post, norm, folded, seen, stack, out);
        }
    }

    /// One search of one text, recording the terms that pass their boundary rules.
    fn scan(&self, post: &Post<'_>, norm: &Normalized, pass: Pass, seen: &mut Seen) {
        let text = norm.text();
        let mut on_hit = |pattern: u32, start: usize, end: usize| {
            for &v in self.pattern_variants.get(pattern) {
                let Some(var) = self.variants.get(v as usize) else {
                    continue;
                };
                let wanted = match pass {
                    Pass::Normal { two_texts } => !two_texts || var.flags & ACCENT_FREE == 0,
                    Pass::Folded => var.flags & ACCENT_FREE != 0,
                };
                if !wanted || !accepts(var.boundary, text, start, end, norm) {
                    continue;
                }
                if var.flags & EXACT != 0
                    && !exact_occurs(&post.text, self.literal(var.exact_term), var.boundary)
                {
                    continue;
                }
                seen.found.push(v);
                seen.candidates.extend_from_slice(self.variant_rules.get(v));
                if var.flags & NEAR != 0 {
                    seen.occurrences.push(Occurrence {
                        variant: v,
                        start,
                        end,
                        folded: pass == Pass::Folded,
                    });
                }
            }
        };
        self.trie.for_each_match(text, norm.tokens(), &mut on_hit);
        let Some(ac) = &self.floating else {
            return;
        };
        if !self.floating_everywhere && !text.bytes().any(|b| b >= 0xE0) {
            return;
        }
        // Cannot fail: `build` checked that overlapping search is supported.
        if let Ok(matches) = ac.try_find_overlapping_iter(text) {
            for m in matches {
                if let Some(&p) = self.floating_pattern.get(m.pattern().as_usize()) {
                    on_hit(p, m.start(), m.end());
                }
            }
        }
    }

    /// Evaluates the marked rules and fills `out` with those that hold.
    fn evaluate(
        &self,
        post: &Post<'_>,
        norm: &Normalized,
        folded: &Normalized,
        seen: &mut Seen,
        stack: &mut Vec<bool>,
        out: &mut Vec<Hit>,
    ) -> Option<Option<&'static str>> {
        seen.found.sort_unstable();
        seen.found.dedup();
        seen.candidates.sort_unstable();
        seen.candidates.dedup();
        let facts = Facts {
            found: &seen.found,
            occurrences: &seen.occurrences,
            post,
            norm,
            folded,
            lang: post.lang.as_deref().map(primary_subtag),
            detected: std::cell::OnceCell::new(),
        };
        for &r in &seen.candidates {
            let Some(rule) = self.rules.get(r as usize) else {
                continue;
            };
            let holds = match &rule.program {
                None => true,
                Some(program) => self.eval(program, &facts, stack),
            };
            if !holds {
                continue;
            }
            let terms = self.rule_terms_found(rule, facts.found, ANCHOR);
            out.push(Hit {
                rule: r,
                brand: rule.brand,
                terms,
            });
        }
        facts.detected.get().copied()
    }

    fn eval(&self, program: &[Op], facts: &Facts<'_, '_>, stack: &mut Vec<bool>) -> bool {
        stack.clear();
        for op in program {
            match *op {
                Op::Term(t) => stack.push(facts.found.binary_search(&t).is_ok()),
                Op::Near(n) => stack.push(
                    self.nears
                        .get(n as usize)
                        .is_some_and(|near| near_holds(near, facts)),
                ),
                Op::Field(f) => stack.push(
                    self.fields
                        .get(f as usize)
                        .is_some_and(|field| field_holds(field, facts)),
                ),
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

    /// The terms of `rule` whose variant is in `found` (sorted) and that have all of `flags`,
    /// ascending.
    fn rule_terms_found(&self, rule: &CompiledRule, found: &[u32], flags: u8) -> Vec<u32> {
        let mut terms = Vec::new();
        for &v in found {
            let all = self.variant_terms.get(v);
            let from = all.partition_point(|&t| t < rule.first_term);
            let to = all.partition_point(|&t| t < rule.end_term);
            terms.extend(
                all[from..to]
                    .iter()
                    .copied()
                    .filter(|&t| self.term_flags[t as usize] & flags == flags),
            );
        }
        terms.sort_unstable();
        terms
    }

    /// The terms of rule `rule` (index into [`RuleSet::rules`]) found in the last post matched
    /// with `scratch`, excluded ones included, whether the rule held or not. For explaining a
    /// result (examples, backtests), not for the hot path.
    pub fn found_terms(&self, rule: u32, scratch: &MatchScratch) -> Vec<u32> {
        let mut found = scratch.seen.found.clone();
        found.sort_unstable();
        found.dedup();
        self.rules
            .get(rule as usize)
            .map(|r| self.rule_terms_found(r, &found, 0))
            .unwrap_or_default()
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

    /// The rule (index into [`RuleSet::rules`]) that term `idx` belongs to.
    pub fn term_rule(&self, idx: u32) -> Option<u32> {
        self.term_rule.get(idx as usize).copied()
    }

    /// The term's literal: as written, without the `*` of a prefix term.
    fn literal(&self, idx: u32) -> &str {
        let text = self.term(idx);
        match self.term_boundary.get(idx as usize) {
            Some(Boundary::Prefix) => text.strip_suffix('*').unwrap_or(text),
            _ => text,
        }
    }

    /// The languages `lang:` conditions name, each once.
    pub fn langs(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .fields
            .iter()
            .filter_map(|f| match f {
                FieldTest::Lang(primaries) => Some(primaries.iter().map(|p| p.as_ref())),
                _ => None,
            })
            .flatten()
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// How many terms (over all rules) the matcher indexes.
    pub fn term_count(&self) -> usize {
        self.term_end.len()
    }

    /// How many distinct needles the matcher searches for.
    pub fn pattern_count(&self) -> usize {
        self.pattern_variants.start.len().saturating_sub(1)
    }

    /// The kind of the automaton of needles found anywhere (see the module docs); `None` when
    /// no needle is.
    pub fn floating_kind(&self) -> Option<AhoCorasickKind> {
        self.floating.as_ref().map(|ac| ac.kind())
    }

    /// Approximate heap bytes used by the searchers and the tables.
    pub fn memory_usage(&self) -> usize {
        self.trie.memory_usage()
            + self.floating.as_ref().map_or(0, |ac| ac.memory_usage())
            + 4 * self.floating_pattern.capacity()
            + self.term_text.capacity()
            + self.pattern_variants.capacity_bytes()
            + self.variant_rules.capacity_bytes()
            + self.variant_terms.capacity_bytes()
            + std::mem::size_of::<Variant>() * self.variants.capacity()
            + 4 * self.term_variant.capacity()
            + 8 * self.term_end.capacity()
            + 4 * self.term_rule.capacity()
            + self.term_boundary.capacity()
            + self.term_flags.capacity()
    }
}

/// Which text a search runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// The normalized text; `two_texts` when the folded text gets its own search, so terms
    /// of accent-insensitive rules wait for that one.
    Normal { two_texts: bool },
    /// The accent-folded text: only terms of accent-insensitive rules.
    Folded,
}

/// Terms (indices into `terms`) of which every way `q` can hold needs at least one: the
/// rule's triggers. `None` when `q` can hold with no term found (an exclusion or a field
/// operator alone). For AND, the one part whose set is cheapest: fewest terms, then the
/// longest shortest needle — a brand name rather than `help OR support OR refund*`.
fn triggers(q: &Query, terms: &[Term]) -> Option<Vec<u32>> {
    match q {
        Query::Term(i) => Some(vec![*i]),
        Query::Near { left, right, .. } => {
            let sides = [left.clone(), right.clone()];
            sides.into_iter().min_by_key(|side| cost(side, terms))
        }
        Query::Field(_) | Query::Not(_) => None,
        Query::Or(parts) => {
            let mut all = Vec::new();
            for p in parts {
                all.extend(triggers(p, terms)?);
            }
            all.sort_unstable();
            all.dedup();
            Some(all)
        }
        Query::And(parts) => parts
            .iter()
            .filter_map(|p| triggers(p, terms))
            .min_by_key(|set| cost(set, terms)),
    }
}

/// How often a set of triggers is expected to wake its rule, as an ordering key: more terms
/// wake it more often, and short needles are common words.
fn cost(set: &[u32], terms: &[Term]) -> (usize, std::cmp::Reverse<usize>) {
    let shortest = set
        .iter()
        .filter_map(|&i| terms.get(i as usize))
        .map(|t| t.needle.chars().count())
        .min()
        .unwrap_or(0);
    (set.len(), std::cmp::Reverse(shortest))
}

/// The terms written as an operand of a `NEAR`.
fn mark_near_terms(q: &Query, marks: &mut [bool]) {
    match q {
        Query::Near { left, right, .. } => {
            for &i in left.iter().chain(right) {
                if let Some(m) = marks.get_mut(i as usize) {
                    *m = true;
                }
            }
        }
        Query::Not(inner) => mark_near_terms(inner, marks),
        Query::And(parts) | Query::Or(parts) => {
            parts.iter().for_each(|p| mark_near_terms(p, marks))
        }
        Query::Term(_) | Query::Field(_) => {}
    }
}

/// Whether a term of each side was found, in the same text, not overlapping, with at most
/// `within` words between.
fn near_holds(near: &NearTest, facts: &Facts<'_, '_>) -> bool {
    let on = |side: &[u32], o: &Occurrence| side.binary_search(&o.variant).is_ok();
    facts.occurrences.iter().any(|a| {
        on(&near.left, a)
            && facts.occurrences.iter().any(|b| {
                if !on(&near.right, b) || a.folded != b.folded {
                    return false;
                }
                let (x, y) = if a.start <= b.start { (a, b) } else { (b, a) };
                if y.start < x.end {
                    return false;
                }
                let text = if a.folded {
                    facts.folded.text()
                } else {
                    facts.norm.text()
                };
                words_between(text, x.end, y.start) <= near.within
            })
    })
}

/// How many words start in `text[from..to]` (a word continuing from before `from` does not
/// count). A word is a run of word characters; a change between a script written without
/// spaces and another starts a new one.
fn words_between(text: &str, from: usize, to: usize) -> u32 {
    let Some(gap) = text.get(from..to) else {
        return u32::MAX;
    };
    let mut prev = char_before(text, from);
    let mut words = 0u32;
    for c in gap.chars() {
        if is_word_char(c) && is_boundary(c, prev) {
            words = words.saturating_add(1);
        }
        prev = Some(c);
    }
    words
}

fn field_holds(field: &FieldTest, facts: &Facts<'_, '_>) -> bool {
    let post = facts.post;
    match field {
        FieldTest::Lang(primaries) => facts
            .language()
            .is_some_and(|l| primaries.iter().any(|p| l.eq_ignore_ascii_case(p))),
        FieldTest::From(who) => who.iter().any(|w| {
            post.author.id.eq_ignore_ascii_case(w)
                || post
                    .author
                    .handle
                    .as_deref()
                    .is_some_and(|h| handle_is(h, w))
        }),
        FieldTest::Is(PostKind::Reply) => post.flags.reply,
        FieldTest::Is(PostKind::Repost) => post.flags.repost,
        FieldTest::Is(PostKind::Quote) => post.flags.quote,
        FieldTest::Has(Attachment::Link) => post.flags.link,
        FieldTest::Has(Attachment::Media) => post.flags.media,
        FieldTest::Url(part) => urls(facts).any(|u| contains_ignore_ascii_case(u, part)),
        FieldTest::Domain(host) => urls(facts).any(|u| on_domain(u, host)),
        FieldTest::Followers(cmp, n) => post.author.followers.is_some_and(|f| cmp.holds(f, *n)),
    }
}

/// The URLs a post carries: its links (full URLs from facets, entities, cards), then the URLs
/// written in its text (Mastodon and X texts hold them; Bluesky shows shortened ones).
fn urls<'s>(facts: &'s Facts<'_, '_>) -> impl Iterator<Item = &'s str> {
    let text = facts.norm.text();
    facts.post.links.iter().map(|l| l.as_ref()).chain(
        facts
            .norm
            .tokens()
            .iter()
            .filter(|t| t.kind == TokenKind::Url)
            .filter_map(move |t| text.get(t.start..t.end)),
    )
}

/// Whether handle `h` is `want` (lowercase), or `want` followed by a domain or server
/// (`acmehq` is `AcmeHQ`, `acmehq.bsky.social` and `acmehq@mastodon.social`).
fn handle_is(h: &str, want: &str) -> bool {
    let lower;
    let h = if h.is_ascii() {
        h
    } else {
        lower = h.to_lowercase();
        &lower
    };
    h.len() >= want.len()
        && h.as_bytes()[..want.len()].eq_ignore_ascii_case(want.as_bytes())
        && matches!(h.as_bytes().get(want.len()), None | Some(b'.' | b'@'))
}

/// Case-insensitive (ASCII) substring test; `needle` is lowercase.
fn contains_ignore_ascii_case(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// Whether `url`'s host is `host` (lowercase) or a subdomain of it.
fn on_domain(url: &str, host: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit('@').next().unwrap_or(authority);
    let h = hostport
        .split(':')
        .next()
        .unwrap_or("")
        .trim_end_matches('.');
    h.eq_ignore_ascii_case(host)
        || (h.len() > host.len()
            && h.as_bytes()[h.len() - host.len() - 1] == b'.'
            && h.as_bytes()[h.len() - host.len()..].eq_ignore_ascii_case(host.as_bytes()))
}

/// Whether the post's own text holds `literal` with its exact letters and the boundaries of
/// `boundary` (a `raw:` term; the casefolded search found a candidate already).
fn exact_occurs(text: &str, literal: &str, boundary: Boundary) -> bool {
    let (Some(first), Some(last)) = (literal.chars().next(), literal.chars().next_back()) else {
        return false;
    };
    text.match_indices(literal).any(|(s, _)| {
        let e = s + literal.len();
        match boundary {
            Boundary::Substring => true,
            Boundary::Prefix => is_boundary(first, char_before(text, s)),
            Boundary::Handle => {
                is_boundary(first, char_before(text, s))
                    && char_at(text, e) != Some('-')
                    && is_boundary(last, char_at(text, e))
            }
            Boundary::Word | Boundary::Strict => {
                is_boundary(first, char_before(text, s)) && is_boundary(last, char_at(text, e))
            }
        }
    })
}

/// The boundary rule of a term.
fn boundary_of(term: &Term) -> Boundary {
    let needle = term.needle.as_str();
    match term.kind {
        TermKind::Word | TermKind::Phrase if needle.chars().any(is_unspaced_script) => {
            Boundary::Substring
        }
        _ if term.prefix => Boundary::Prefix,
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
        Boundary::Prefix | Boundary::Substring => true,
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
    use crate::normalize::{is_word_char, normalize};
    use crate::post::{Author, Platform, PostFlags};
    use crate::rules::{Rule, Term};

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
            original: None,
            thread: Default::default(),
        }
    }

    fn rules(text: &str) -> RuleSet {
        RuleSet::parse_str("t.rules", text, Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Both automaton kinds, so every table runs through each.
    fn matchers(set: &RuleSet) -> Vec<Matcher> {
        [usize::MAX, 0]
            .iter()
            .map(|&limit| Matcher::build_with(set, limit, false).expect("build"))
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
                assert_eq!(got, *want, "{name}: {text:?} ({:?})", m.floating_kind());
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
                "support needs a language: too short to detect one",
                "Acme help",
                None,
                &[("joke", &["acme"]), ("cartoon", &["acme"])],
            ),
            (
                "support needs a language: detected in a post that declares none",
                "Acme help please, my order arrived broken",
                None,
                &[
                    ("support", &["acme", "help"]),
                    ("joke", &["acme"]),
                    ("cartoon", &["acme"]),
                ],
            ),
            (
                "a detected language that is not the rule's",
                "Acme help por favor, mi pedido llegó roto y nadie contesta",
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
                assert_eq!(got, want, "{name} ({:?})", m.floating_kind());
            }
        }
    }

    const LANGUAGE_RULES: &str = r#"
list jobs: hiring OR "we're hiring" OR careers OR #hiring
brand acme "Acme"
  rule near: (acme OR @acmehq) NEAR/3 (refund OR "money back")
  rule prefix: refund* acme
  rule tagprefix: #acmefa*
  rule raw: raw:ACME
  rule from: acme from:acmehq
  rule reply: acme is:reply
  rule media: acme has:media
  rule url: acme url:acme.com/help
  rule domain: acme domain:acme.com
  rule big: acme followers:>=10k
  rule langs: acme lang:pt,es
  rule nojobs: vacancy -list:jobs
  rule jobs: acme list:jobs
  rule cafe accents=ignore: "acme café" OR ação OR (crème NEAR/1 brûlée)
"#;

    #[test]
    fn language_operators() {
        let cases: &[(&str, &str, Meta, &[&str])] = &[
            (
                "near, 0 between",
                "acme refund",
                Meta::default(),
                &["near", "prefix"],
            ),
            (
                "near, 3 between, either order",
                "refund is what acme owes",
                Meta::default(),
                &["near", "prefix"],
            ),
            (
                "near, 4 between",
                "acme did not send my refund",
                Meta::default(),
                &["prefix"],
            ),
            (
                "near with a phrase and a handle",
                "@acmehq I want my money back",
                Meta::default(),
                &["near"],
            ),
            ("prefix", "Acme refunded me", Meta::default(), &["prefix"]),
            (
                "prefix needs its left boundary",
                "acme prerefund",
                Meta::default(),
                &[],
            ),
            (
                "hashtag prefix",
                "#AcmeFail again",
                Meta::default(),
                &["tagprefix"],
            ),
            (
                "raw matches exact case",
                "ACME stock",
                Meta::default(),
                &["raw"],
            ),
            ("raw refuses other case", "Acme stock", Meta::default(), &[]),
            (
                "from, bluesky handle",
                "acme news",
                Meta {
                    from: Some("AcmeHQ.bsky.social"),
                    ..Meta::default()
                },
                &["from"],
            ),
            (
                "from, another author",
                "acme news",
                Meta {
                    from: Some("acmehqx"),
                    ..Meta::default()
                },
                &[],
            ),
            (
                "is:reply and has:media",
                "acme",
                Meta {
                    flags: PostFlags {
                        reply: true,
                        media: true,
                        ..PostFlags::default()
                    },
                    ..Meta::default()
                },
                &["reply", "media"],
            ),
            (
                "url and domain",
                "acme see https://Help.acme.com/x and https://acme.com/help/42",
                Meta::default(),
                &["url", "domain"],
            ),
            (
                "domain is not a suffix of a longer name; url: is any part",
                "acme https://notacme.com/help",
                Meta::default(),
                &["url"],
            ),
            (
                "followers at least 10k",
                "acme",
                Meta {
                    followers: Some(10_000),
                    ..Meta::default()
                },
                &["big"],
            ),
            ("followers unknown", "acme", Meta::default(), &[]),
            (
                "lang list",
                "acme",
                Meta {
                    lang: Some("es-MX"),
                    ..Meta::default()
                },
                &["langs"],
            ),
            (
                "list as terms",
                "acme is hiring",
                Meta::default(),
                &["jobs"],
            ),
            (
                "list phrase",
                "acme: we're hiring!",
                Meta::default(),
                &["jobs"],
            ),
            (
                "list as exclusion",
                "a vacancy, #hiring",
                Meta::default(),
                &[],
            ),
            (
                "list as exclusion, none",
                "a vacancy",
                Meta::default(),
                &["nojobs"],
            ),
            (
                "accents ignored, ASCII text",
                "Acme CAFE",
                Meta::default(),
                &["cafe"],
            ),
            (
                "accents ignored, other accents",
                "Acme Cafè",
                Meta::default(),
                &["cafe"],
            ),
            (
                "accents ignored, Portuguese",
                "que AÇÃO!",
                Meta::default(),
                &["cafe"],
            ),
            (
                "accents ignored, near",
                "CREME, true brulée",
                Meta::default(),
                &["cafe"],
            ),
            (
                "accents ignored, too far",
                "creme – the best – brulee",
                Meta::default(),
                &[],
            ),
            (
                "accents ignored, whole words",
                "acme cafés",
                Meta::default(),
                &[],
            ),
        ];
        let set = rules(LANGUAGE_RULES);
        for m in matchers(&set) {
            for (name, text, meta, want) in cases {
                let got: Vec<String> = fast_meta(&m, text, meta)
                    .into_iter()
                    .map(|(r, _)| set.rules()[r as usize].id.0.clone())
                    .collect();
                assert_eq!(got, *want, "{name}: {text:?} ({:?})", m.floating_kind());
                assert_eq!(
                    fast_meta(&m, text, meta),
                    reference_meta(&set, text, meta),
                    "reference: {name}"
                );
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
            scratch.seen.found.capacity(),
            scratch.seen.candidates.capacity(),
            out.capacity(),
        );
        for text in ["nothing here", "acmes pacmen", "#notacme", ""] {
            normalize(text, &mut norm);
            m.match_post(&post(text, None), &norm, &mut scratch, &mut out);
            assert!(out.is_empty(), "{text}");
            let now = (
                scratch.seen.found.capacity(),
                scratch.seen.candidates.capacity(),
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
                // No declared language: English is detected for acme-support's `lang:en`.
                "#acmefail the acme cloud is down",
                None,
                &[
                    "acme-terms",
                    "acme-mentions",
                    "acme-support",
                    "acme-cloud-outage",
                ],
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

    /// What a test post carries besides its text.
    #[derive(Debug, Clone, Default)]
    struct Meta {
        lang: Option<&'static str>,
        from: Option<&'static str>,
        followers: Option<u64>,
        flags: PostFlags,
        links: Vec<&'static str>,
    }

    fn post_with<'a>(text: &'a str, meta: &Meta) -> Post<'a> {
        let mut p = post(text, meta.lang);
        p.author.handle = meta.from.map(Cow::Borrowed);
        p.author.followers = meta.followers;
        p.flags = meta.flags;
        p.links = meta.links.iter().map(|&l| Cow::Borrowed(l)).collect();
        p
    }

    /// A word boundary between `edge` (in the term) and its neighbor, spelled out: an edge
    /// that is emoji or punctuation needs none, except a sigil, which needs a non-word
    /// neighbor like a word does.
    fn ref_boundary(edge: char, neighbor: Option<char>) -> bool {
        let sigil = matches!(edge, '#' | '@' | '$');
        match neighbor {
            None => true,
            Some(_) if !is_word_char(edge) && !sigil => true,
            Some(n) if !is_word_char(n) => true,
            Some(n) => is_unspaced_script(n) != is_unspaced_script(edge),
        }
    }

    /// Whether `start..end` lies in a `#hashtag` or `@handle`, found by walking back from
    /// `start` to the sigil (a sigil inside one of the `urls` ranges starts nothing).
    fn ref_inside_tag(t: &str, start: usize, end: usize, urls: &[(usize, usize)]) -> bool {
        for (j, c) in t[..start].char_indices().rev() {
            if c == '#' || c == '@' {
                if urls.iter().any(|&(a, b)| a <= j && j < b) {
                    return false;
                }
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

    /// Every place `needle` occurs in `t` at a char boundary and passes the term's rules.
    fn ref_occurrences(t: &str, term: &Term, urls: &[(usize, usize)]) -> Vec<(usize, usize)> {
        let needle = term.needle.as_str();
        let unspaced = matches!(term.kind, TermKind::Word | TermKind::Phrase)
            && needle.chars().any(is_unspaced_script);
        let (Some(first), Some(last)) = (needle.chars().next(), needle.chars().next_back()) else {
            return Vec::new();
        };
        t.char_indices()
            .map(|(s, _)| s)
            .filter(|&s| t[s..].starts_with(needle))
            .map(|s| (s, s + needle.len()))
            .filter(|&(s, e)| {
                if unspaced {
                    return true;
                }
                let before = t[..s].chars().next_back();
                let after = t[e..].chars().next();
                let left = ref_boundary(first, before);
                let right = ref_boundary(last, after);
                if term.prefix {
                    return left;
                }
                match term.kind {
                    TermKind::Word => left && (right || ref_inside_tag(t, s, e, urls)),
                    TermKind::Phrase | TermKind::Hashtag | TermKind::Cashtag => left && right,
                    TermKind::Handle => left && right && after != Some('-'),
                }
            })
            .collect()
    }

    /// Whether the post's own text holds a `raw:` term's exact letters, whole-word.
    fn ref_exact(original: &str, term: &Term) -> bool {
        let lit = term.literal();
        let unspaced = lit.chars().any(is_unspaced_script);
        let (Some(first), Some(last)) = (lit.chars().next(), lit.chars().next_back()) else {
            return false;
        };
        original
            .char_indices()
            .map(|(s, _)| s)
            .filter(|&s| original[s..].starts_with(lit))
            .any(|s| {
                let e = s + lit.len();
                let after = original[e..].chars().next();
                unspaced
                    || (ref_boundary(first, original[..s].chars().next_back())
                        && (term.prefix
                            || (ref_boundary(last, after)
                                && !(term.kind == TermKind::Handle && after == Some('-')))))
            })
    }

    /// Byte offsets where words start: a word character after a non-word character, or after
    /// a character of the other kind of script (spaced or not).
    fn ref_word_starts(t: &str) -> Vec<usize> {
        let mut starts = Vec::new();
        let mut prev: Option<char> = None;
        for (i, c) in t.char_indices() {
            let starts_word = is_word_char(c)
                && prev.is_none_or(|p| {
                    !is_word_char(p) || is_unspaced_script(p) != is_unspaced_script(c)
                });
            if starts_word {
                starts.push(i);
            }
            prev = Some(c);
        }
        starts
    }

    fn ref_handle_is(handle: &str, want: &str) -> bool {
        let h = handle.to_lowercase();
        h == want || h.starts_with(&format!("{want}.")) || h.starts_with(&format!("{want}@"))
    }

    fn ref_host(url: &str) -> String {
        let rest = url.split_once("://").map_or("", |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let hostport = authority.rsplit('@').next().unwrap_or("");
        hostport.split(':').next().unwrap_or("").to_lowercase()
    }

    struct RefPost<'a> {
        post: &'a Post<'a>,
        /// The normalized text, and the accent-folded one (the same when folding changes
        /// nothing).
        texts: [&'a str; 2],
        /// URLs written in the text.
        urls: Vec<String>,
        /// Per term of the rule: where it occurs, as (text, start, end) with text an index
        /// into `texts`.
        occ: Vec<Vec<(usize, usize, usize)>>,
    }

    fn ref_eval(q: &Query, p: &RefPost<'_>) -> bool {
        let post = p.post;
        match q {
            Query::Term(i) => !p.occ[*i as usize].is_empty(),
            Query::Near {
                left,
                right,
                within,
            } => {
                let starts = p.texts.map(ref_word_starts);
                let occ = |side: &[u32]| -> Vec<(usize, usize, usize)> {
                    side.iter()
                        .flat_map(|&i| p.occ[i as usize].iter().copied())
                        .collect()
                };
                let (ls, rs) = (occ(left), occ(right));
                // Both in the same text, not overlapping, few enough words between.
                ls.iter().any(|&a| {
                    rs.iter().any(|&b| {
                        let (x, y) = if a.1 <= b.1 { (a, b) } else { (b, a) };
                        a.0 == b.0
                            && y.1 >= x.2
                            && starts[a.0].iter().filter(|&&s| s >= x.2 && s < y.1).count()
                                <= *within as usize
                    })
                })
            }
            Query::Field(Field::Lang(tags)) => post
                .lang
                .as_deref()
                .or_else(|| crate::language::detect(&post.text))
                .and_then(|l| l.split(['-', '_']).next())
                .is_some_and(|l| {
                    tags.iter()
                        .any(|tag| l.eq_ignore_ascii_case(tag.split('-').next().unwrap_or("")))
                }),
            Query::Field(Field::From(who)) => who.iter().any(|w| {
                post.author.id.to_lowercase() == *w
                    || post
                        .author
                        .handle
                        .as_deref()
                        .is_some_and(|h| ref_handle_is(h, w))
            }),
            Query::Field(Field::Is(kind)) => match kind {
                PostKind::Reply => post.flags.reply,
                PostKind::Repost => post.flags.repost,
                PostKind::Quote => post.flags.quote,
            },
            Query::Field(Field::Has(Attachment::Link)) => post.flags.link,
            Query::Field(Field::Has(Attachment::Media)) => post.flags.media,
            Query::Field(Field::Url(part)) => p.urls.iter().any(|u| u.contains(part.as_str())),
            Query::Field(Field::Domain(host)) => p.urls.iter().any(|u| {
                let h = ref_host(u);
                h == *host || h.ends_with(&format!(".{host}"))
            }),
            Query::Field(Field::Followers(cmp, n)) => {
                post.author.followers.is_some_and(|f| cmp.holds(f, *n))
            }
            Query::Not(inner) => !ref_eval(inner, p),
            Query::And(parts) => parts.iter().all(|q| ref_eval(q, p)),
            Query::Or(parts) => parts.iter().any(|q| ref_eval(q, p)),
        }
    }

    fn ref_positive(q: &Query, out: &mut Vec<u32>) {
        match q {
            Query::Term(i) => out.push(*i),
            Query::Near { left, right, .. } => out.extend(left.iter().chain(right)),
            Query::Field(_) | Query::Not(_) => {}
            Query::And(parts) | Query::Or(parts) => parts.iter().for_each(|p| ref_positive(p, out)),
        }
    }

    /// `(rule index, global indices of its positive terms found)` for each rule that holds.
    fn reference_meta(set: &RuleSet, text: &str, meta: &Meta) -> Vec<(u32, Vec<u32>)> {
        let post = post_with(text, meta);
        let mut norm = Normalized::new();
        normalize(text, &mut norm);
        let t = norm.text();
        let url_ranges_of = |n: &Normalized| -> Vec<(usize, usize)> {
            n.tokens()
                .iter()
                .filter(|tok| tok.kind == TokenKind::Url)
                .map(|tok| (tok.start, tok.end))
                .collect()
        };
        let url_ranges = url_ranges_of(&norm);
        // Accent-insensitive terms are looked for in the folded text; where folding changes
        // nothing, that is the normalized text itself.
        let mut folded_norm = Normalized::new();
        let changed = crate::normalize::normalize_accents(&norm, &mut folded_norm);
        let (folded, folded_urls, folded_id) = if changed {
            (folded_norm.text(), url_ranges_of(&folded_norm), 1)
        } else {
            (t, url_ranges.clone(), 0)
        };
        let urls: Vec<String> = post
            .links
            .iter()
            .map(|l| l.to_lowercase())
            .chain(url_ranges.iter().map(|&(a, b)| t[a..b].to_string()))
            .collect();
        let mut out = Vec::new();
        let mut first = 0u32;
        for (r, rule) in set.rules().iter().enumerate() {
            let occ: Vec<Vec<(usize, usize, usize)>> = rule
                .terms
                .iter()
                .map(|term| match term.fold {
                    Fold::Exact if !ref_exact(text, term) => Vec::new(),
                    Fold::Exact | Fold::Case => ref_occurrences(t, term, &url_ranges)
                        .into_iter()
                        .map(|(s, e)| (0, s, e))
                        .collect(),
                    Fold::CaseAndAccents => ref_occurrences(folded, term, &folded_urls)
                        .into_iter()
                        .map(|(s, e)| (folded_id, s, e))
                        .collect(),
                })
                .collect();
            let p = RefPost {
                post: &post,
                texts: [t, folded],
                urls: urls.clone(),
                occ,
            };
            if ref_eval(&rule.query, &p) {
                let mut positive = Vec::new();
                ref_positive(&rule.query, &mut positive);
                positive.sort_unstable();
                positive.dedup();
                let terms = positive
                    .into_iter()
                    .filter(|&i| !p.occ[i as usize].is_empty())
                    .map(|i| first + i);
                out.push((r as u32, terms.collect()));
            }
            first += rule.terms.len() as u32;
        }
        out
    }

    fn reference(set: &RuleSet, text: &str, lang: Option<&'static str>) -> Vec<(u32, Vec<u32>)> {
        let meta = Meta {
            lang,
            ..Meta::default()
        };
        reference_meta(set, text, &meta)
    }

    fn fast_meta(m: &Matcher, text: &str, meta: &Meta) -> Vec<(u32, Vec<u32>)> {
        let mut norm = Normalized::new();
        normalize(text, &mut norm);
        let mut out = Vec::new();
        let p = post_with(text, meta);
        m.match_post(&p, &norm, &mut MatchScratch::new(), &mut out);
        out.into_iter().map(|h| (h.rule, h.terms)).collect()
    }

    fn fast(m: &Matcher, text: &str, lang: Option<&'static str>) -> Vec<(u32, Vec<u32>)> {
        let meta = Meta {
            lang,
            ..Meta::default()
        };
        fast_meta(m, text, &meta)
    }

    #[test]
    fn reference_agrees_on_the_tables() {
        for rules_text in [BOUNDARY_RULES, EVAL_RULES, LANGUAGE_RULES] {
            let set = rules(rules_text);
            for m in matchers(&set) {
                for text in [
                    "#acmefail acme corp",
                    "@acmehq.bsky.social help",
                    "東京 ácme",
                    "acme anvil joke",
                    "my refund for the acme skates never came",
                    "ACME Corp refunded me https://help.acme.com/x",
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
    /// sigils and word characters before them, spaces, punctuation, possessives, kana, emoji
    /// and URLs after, so random texts often hold terms right at the boundary cases.
    const PREFIXES: &[&str] = &["", "", "", "#", "@", "$", "x", "é", "東", "-"];
    const WORDS: &[&str] = &[
        "a",
        "ab",
        "AB",
        "acme",
        "Acme",
        "ACME",
        "acmes",
        "b",
        "c",
        "é",
        "É",
        "東",
        "京",
        "แอ",
        "corp",
        "x",
        "İ",
        "ＡＣ",
        "e\u{301}",
        "https://acme.com/help",
        "https://shop.acme.com",
        "https://x.io/acme",
        "🔥",
        "❤️",
        "❤",
        "👍🏽",
        "STRASSE",
        "Straße",
    ];
    const SEPARATORS: &[&str] = &[
        " ", " ", " ", "  ", "\n", ".", "-", "_", "'s", "’s", "の", "🔥", "", "#", "@",
    ];
    const TERM_PARTS: &[&str] = &[
        "a", "ab", "acme", "b", "c", "é", "東", "corp", "x", "แอ", "🔥", "❤️", "👍", "straße",
    ];
    const FIELDS: &[&str] = &[
        "lang:en",
        "lang:pt-BR",
        "lang:ja,en",
        "is:reply",
        "is:repost",
        "is:quote",
        "has:link",
        "has:media",
        "from:acme",
        "from:@other.bsky.social",
        "followers:>100",
        "followers:<=5000",
        "url:acme.com",
        "url:/acme",
        "domain:acme.com",
    ];

    fn term_strategy() -> impl Strategy<Value = String> {
        let part = || prop::sample::select(TERM_PARTS);
        let body = prop_oneof![
            3 => part().prop_map(String::from),
            1 => (part(), part()).prop_map(|(a, b)| format!("{a}{b}")),
        ];
        let raw =
            prop::sample::select(&["raw:Acme", "raw:ACME", "raw:acme", "raw:\"Acme corp\""][..])
                .prop_map(String::from);
        let plain = (0..8u8, body.clone(), body).prop_map(|(kind, a, b)| match kind {
            0 | 1 => a,
            2 => format!("\"{a} {b}\""),
            3 => format!("#{a}"),
            4 => format!("@{a}"),
            5 => format!("${a}"),
            // Prefix terms; a short one is rejected at load, which the caller filters.
            6 => format!("{a}*"),
            _ => format!("#{a}*"),
        });
        prop_oneof![6 => plain, 1 => raw]
    }

    /// Random queries over a pool of terms (so rules share terms and texts can hold them),
    /// with `NEAR` pairs and field operators.
    fn query_strategy(pool: Vec<String>) -> impl Strategy<Value = String> {
        let term = prop::sample::select(pool);
        let near = (term.clone(), term.clone(), 0..4u32)
            .prop_map(|(a, b, n)| format!("({a} NEAR/{n} {b})"));
        let leaf = prop_oneof![
            8 => term,
            2 => near,
            2 => prop::sample::select(FIELDS).prop_map(String::from),
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
                let written = term
                    .trim_start_matches("raw:")
                    .trim_matches('"')
                    .trim_end_matches('*');
                words.push(written.to_string());
                words.push(written.to_uppercase());
            }
            let queries = prop::collection::vec(query_strategy(pool), 1..6);
            (queries, prop::collection::vec(text_strategy(words), 1..8))
        })
    }

    fn meta_strategy() -> impl Strategy<Value = Meta> {
        (
            prop::sample::select(&[None, Some("en"), Some("pt-BR"), Some("JA")][..]),
            prop::sample::select(
                &[
                    None,
                    Some("acme"),
                    Some("AcmeHQ"),
                    Some("other.bsky.social"),
                ][..],
            ),
            prop::sample::select(
                &[
                    None,
                    Some(0u64),
                    Some(100),
                    Some(101),
                    Some(5000),
                    Some(9000),
                ][..],
            ),
            prop::array::uniform5(any::<bool>()),
            prop::sample::subsequence(
                &[
                    "https://Acme.com/Help/1",
                    "https://shop.acme.com/x",
                    "https://notacme.com/y",
                    "https://x.io/acme",
                ][..],
                0..3,
            ),
        )
            .prop_map(|(lang, from, followers, f, links)| Meta {
                lang,
                from,
                followers,
                links,
                flags: PostFlags {
                    reply: f[0],
                    repost: f[1],
                    quote: f[2],
                    link: f[3],
                    media: f[4],
                },
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
            // Every third rule ignores accents.
            let options = if i % 3 == 2 { " accents=ignore" } else { "" };
            text.push_str(&format!("rule r{i}{options}: {q}\n"));
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
            meta in meta_strategy(),
        ) {
            let Some(set) = rules_from(&queries) else { return Ok(()) };
            for m in matchers(&set) {
                for text in &texts {
                    prop_assert_eq!(
                        fast_meta(&m, text, &meta),
                        reference_meta(&set, text, &meta),
                        "text {:?}, rules {:?}, {:?}, {:?}", text, queries, meta, m.floating_kind()
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
            let written = term.trim_start_matches("raw:").trim_matches('"').trim_end_matches('*');
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
    fn triggers_are_the_cheapest_required_part() {
        let cases: &[(&str, Option<&[&str]>)] = &[
            ("acme", Some(&["acme"])),
            ("acme (help OR support OR refund*)", Some(&["acme"])),
            (
                "(acme OR @acmehq) (help OR support OR broken)",
                Some(&["acme", "@acmehq"]),
            ),
            ("(a OR b) globex", Some(&["globex"])),
            ("help globex", Some(&["globex"])),
            (
                "\"acme cloud\" NEAR/4 (down OR outage)",
                Some(&["acme cloud"]),
            ),
            ("acme OR (globex help)", Some(&["acme", "globex"])),
            ("acme -coyote lang:en", Some(&["acme"])),
        ];
        for (query, want) in cases {
            let set = rules(&format!("brand b \"B\"\nrule r: {query}\n"));
            let rule = &set.rules()[0];
            let got = triggers(&rule.query, &rule.terms).map(|ids| {
                ids.iter()
                    .map(|&i| rule.terms[i as usize].text.clone())
                    .collect::<Vec<_>>()
            });
            let want = want.map(|w| w.iter().map(|t| t.to_string()).collect::<Vec<_>>());
            assert_eq!(got, want, "{query}");
        }
    }

    #[test]
    fn matcher_is_shareable_across_workers() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Matcher>();
        assert_send_sync::<std::sync::Arc<Matcher>>();
    }

    #[test]
    fn floating_automaton_holds_unspaced_needles_only() {
        let ascii = Matcher::build(&rules(EVAL_RULES)).expect("build");
        assert_eq!(ascii.floating_kind(), None, "every needle is in the trie");
        let set = rules("brand b \"B\"\n  rule r: acme OR 東京 OR \"acme 東京\" OR #東京\n");
        let cases = [
            (2, Some(AhoCorasickKind::DFA)),
            (1, Some(AhoCorasickKind::ContiguousNFA)),
        ];
        for (limit, kind) in cases {
            let m = Matcher::build_with(&set, limit, false).expect("build");
            assert_eq!(m.floating_kind(), kind, "limit {limit}");
            assert_eq!(
                m.floating_pattern,
                vec![1, 2],
                "a hashtag keeps its left boundary"
            );
        }
        let plain = Matcher::build_plain_substring(&set).expect("build");
        assert_eq!(plain.floating_pattern, vec![0, 1, 2, 3]);
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
                assert_eq!(m.term_flags[global] & ANCHOR != 0, rule.is_anchor(i));
                global += 1;
            }
        }
        assert_eq!(global, m.term_count());
        assert!(m.memory_usage() > 0);
    }

    // ---- Unicode case folding and emoji terms ----

    const UNICODE_RULES: &str = r#"
brand acme "Acme"
  rule street: straße
  rule wisdom: σοφίας
  rule fire: 🔥
  rule fire_sale: "🔥 sale"
  rule heart: ❤️
  rule thumbs: 👍
  rule tagged: #acme
  rule handle: @acmehq
"#;

    #[test]
    fn full_case_folding_and_emoji_terms() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("sharp s upper case", "STRASSE closed", &["street"]),
            ("sharp s as written", "die Straße ist zu", &["street"]),
            ("capital sharp s", "STRAẞE", &["street"]),
            ("sharp s inside a word", "hauptstraße", &[]),
            ("final sigma upper case", "ΣΟΦΊΑΣ", &["wisdom"]),
            ("final sigma as written", "της σοφίας", &["wisdom"]),
            ("emoji after a word", "acme🔥🔥", &["fire"]),
            ("emoji phrase", "🔥 sale today", &["fire", "fire_sale"]),
            (
                "emoji phrase glued to a word",
                "big🔥 sale",
                &["fire", "fire_sale"],
            ),
            ("emoji between letters", "hot🔥deal", &["fire"]),
            ("heart without selector", "i ❤ acme", &["heart"]),
            ("heart with selector", "i ❤️ acme", &["heart"]),
            ("heart glued to words", "i❤️acme", &["heart"]),
            ("skin tone", "👍🏽 great", &["thumbs"]),
            ("thumbs in a row", "👍👍", &["thumbs"]),
            ("other emoji", "😀 ❣️", &[]),
            (
                "sigil term still needs a boundary",
                "x#acme me@acmehq.com",
                &[],
            ),
            (
                "sigil term after an emoji",
                "🔥#acme 🔥@acmehq",
                &["fire", "tagged", "handle"],
            ),
        ];
        let set = rules(UNICODE_RULES);
        for m in matchers(&set) {
            for (name, text, want) in cases {
                let got: Vec<String> = run(&m, &set, text, None).into_iter().map(|h| h.0).collect();
                assert_eq!(got, *want, "{name}: {text:?} ({:?})", m.floating_kind());
                assert_eq!(
                    fast(&m, text, None),
                    reference(&set, text, None),
                    "{name}: reference"
                );
            }
        }
    }
}
