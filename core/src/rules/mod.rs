//! The rule language: rule files (`*.rules`) → a validated [`RuleSet`] of brands and rules.
//!
//! # Input → output
//! [`RuleSet::load`] reads rule files and directories of them (plus the terms files they
//! name, and the named lists any of them defines); [`RuleSet::parse_str`] parses one file's
//! text. Either returns every brand and rule
//! with its query parsed into a [`Query`] over the rule's own [`Term`]s, or *every* mistake
//! found, each at `file:line:col` ([`RuleErrors`]).
//!
//! ```text
//! # rules/acme.rules
//! brand acme "Acme Corp"
//!   handle @acmehq.bsky.social @acmehq
//!   terms acme-products.txt              # one term per line: becomes rule `acme-terms`
//!   rule acme-mentions tags=mentions: (acme OR "acme corp" OR #acme OR @acmehq) -list:jobs
//!     expect miss "Acme is hiring"
//!   rule acme-support: (acme OR @acmehq) NEAR/5 (help OR broken OR refund*) lang:en
//! list jobs: hiring OR careers OR "apply now"
//! ```
//! The syntax is documented for users in `rules/README.md`.
//!
//! # Invariants of a loaded set
//! - Brand ids and rule ids are unique across all files; ids match `[a-z0-9][a-z0-9_-]*`.
//! - Every rule's query needs at least one term that is not excluded to match (a rule of only
//!   exclusions and field operators would match the whole firehose), so the matcher may
//!   evaluate a rule only when one of its [anchor terms](Rule::is_anchor) was found.
//! - Within a rule, terms are deduplicated by kind, needle, prefix and fold; [`Query::Term`]
//!   and [`Query::Near`] hold indices into [`Rule::terms`]; a `list:` reference is expanded
//!   into the rule's own terms.
//! - Limits (each a clear error, because a rule file is input a person edits and a reload must
//!   not be able to take the process down): a query ≤ [`MAX_QUERY_BYTES`], nesting ≤
//!   [`MAX_DEPTH`], ≤ [`MAX_QUERY_ATOMS`] atoms per query, terms ≤ [`MAX_TERM_BYTES`], rule
//!   files ≤ [`MAX_RULE_FILE_BYTES`], terms files ≤ [`MAX_TERMS_FILE_TERMS`] terms and
//!   [`MAX_TERMS_FILE_BYTES`], `NEAR/n` ≤ [`MAX_NEAR`], prefixes ≥ [`MIN_PREFIX_CHARS`],
//!   lists ≤ [`MAX_LIST_TERMS`], ≤ [`MAX_TAGS`] tags, examples ≤ [`MAX_EXAMPLE_BYTES`].
//!
//! # Why shaped so
//! Loading is the only place rules can be wrong, so it validates completely and reports all
//! errors at once; what it returns is plain data the matcher compiles (`crate::stage::matcher`)
//! without further checks beyond automaton limits.

mod error;
mod lex;
mod load;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use error::{RuleError, RuleErrors};

/// Longest query text after `rule id:`, in bytes. Long OR lists belong in a terms file.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Deepest parenthesis nesting in a query: bounds the parser's recursion.
pub const MAX_DEPTH: usize = 32;
/// Most terms, field operators and list references in one query; terms files and the terms
/// inside a list are exempt.
pub const MAX_QUERY_ATOMS: usize = 1000;
/// Longest term, in bytes as written (sigil included, phrase quotes not).
pub const MAX_TERM_BYTES: usize = 256;
/// Largest rule file: 16 MiB.
pub const MAX_RULE_FILE_BYTES: u64 = 16 << 20;
/// Most terms in one terms file.
pub const MAX_TERMS_FILE_TERMS: usize = 1_000_000;
/// Largest terms file: 64 MiB, room for a million terms of 60 bytes, read whole at load.
pub const MAX_TERMS_FILE_BYTES: u64 = 64 << 20;
/// Largest `n` of `NEAR/n`: beyond a sentence or two, "near" means nothing.
pub const MAX_NEAR: u32 = 50;
/// Fewest characters before the `*` of a prefix term: `a*` would match a third of all words.
pub const MIN_PREFIX_CHARS: usize = 3;
/// Most terms in one named list (`list ID: …` or `list ID file PATH`). Every rule that uses
/// the list holds its own copy of the terms, so lists are kept to what a list is for (job
/// words, spam words); a brand's product catalogue belongs in a `terms` file.
pub const MAX_LIST_TERMS: usize = 10_000;
/// Most tags on one rule.
pub const MAX_TAGS: usize = 16;
/// Longest example text, in bytes.
pub const MAX_EXAMPLE_BYTES: usize = 4096;

/// A brand's id, as written after `brand` or `competitor`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct BrandId(pub String);

impl fmt::Display for BrandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A rule's id, as written after `rule` (or `<brand>-terms` for a terms file).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RuleId(pub String);

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a block tracks our own brand or a competitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrandKind {
    /// `brand ID "Name"`.
    Brand,
    /// `competitor ID "Name"`.
    Competitor,
}

impl BrandKind {
    /// `"brand"` or `"competitor"`, as in output and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            BrandKind::Brand => "brand",
            BrandKind::Competitor => "competitor",
        }
    }
}

/// A brand or competitor block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brand {
    /// Its id.
    pub id: BrandId,
    /// The display name, from the quoted string.
    pub name: String,
    /// Brand or competitor.
    pub kind: BrandKind,
    /// The brand's own accounts from `handle` lines, as written without the leading `@`.
    pub handles: Vec<String>,
}

/// Where something was written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file, as named in errors; shared by every location in that file (a 100k-rule pack
    /// would otherwise hold 100k copies of its path).
    pub file: std::sync::Arc<str>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// What kind of literal a term is; decides the boundary rules it is matched with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TermKind {
    /// A bare word (`acme`, `e-trade`).
    Word,
    /// A `"quoted phrase"` (or a terms-file line of several words).
    Phrase,
    /// `#tag`.
    Hashtag,
    /// `@handle`.
    Handle,
    /// `$TICKER`.
    Cashtag,
}

/// How a term's letters are compared with the post's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fold {
    /// `raw:"…"`: the exact characters as written, letter case included.
    Exact,
    /// The default: letter case ignored (Unicode case folding), accents kept.
    Case,
    /// A rule with `accents=ignore`: letter case and accents ignored (`cafe` finds `Café`).
    CaseAndAccents,
}

/// One literal term of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Its kind.
    pub kind: TermKind,
    /// As written (sigil and a trailing `*` kept; phrase quotes and `raw:` dropped): what
    /// output shows as the matched term, and for [`Fold::Exact`] what the post must contain.
    pub text: String,
    /// What the matcher searches the normalized text for: the text without its `*`, casefolded
    /// with [`crate::normalize::casefold`] (and accent-folded for
    /// [`Fold::CaseAndAccents`]), sigil kept.
    pub needle: String,
    /// `term*`: the term may go on into a longer word (`refund*` finds `refunded`).
    pub prefix: bool,
    /// How letters compare.
    pub fold: Fold,
}

impl Term {
    /// The literal as written without the trailing `*` of a prefix term.
    pub fn literal(&self) -> &str {
        if self.prefix {
            self.text.strip_suffix('*').unwrap_or(&self.text)
        } else {
            &self.text
        }
    }
}

/// A parsed query. Precedence when written: `NEAR/n` binds tightest, then `-`, then AND
/// (juxtaposition), then OR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// The term at this index of [`Rule::terms`] occurs in the post.
    Term(u32),
    /// A term of `left` and a term of `right` occur, in either order, without overlapping and
    /// with at most `within` words between them.
    Near {
        /// Indices into [`Rule::terms`].
        left: Vec<u32>,
        /// Indices into [`Rule::terms`].
        right: Vec<u32>,
        /// Most words allowed between the two.
        within: u32,
    },
    /// A condition on the post rather than its text (`lang:`, `from:`, `is:`, …).
    Field(Field),
    /// The inner query does not hold (`-x`, `-(a OR b)`).
    Not(Box<Query>),
    /// Every part holds (two or more parts).
    And(Vec<Query>),
    /// At least one part holds (two or more parts).
    Or(Vec<Query>),
}

/// A field operator: a condition on what the post is, who wrote it, or what it links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// `lang:en,pt-BR`: the post declares one of these languages (primary subtags compared,
    /// case ignored). Holds the tags as written.
    Lang(Vec<String>),
    /// `from:acmehq,globex.com`: the author's handle is one of these (or one of them followed
    /// by a domain, as on Bluesky), or the author's platform id is. Lowercase, without `@`.
    From(Vec<String>),
    /// `is:reply`, `is:repost`, `is:quote`.
    Is(PostKind),
    /// `has:link`, `has:media`.
    Has(Attachment),
    /// `url:acme.com/help`: a link of the post (or a URL in its text) contains this, case
    /// ignored. Lowercase.
    Url(String),
    /// `domain:acme.com`: a link of the post (or a URL in its text) is on this host or a
    /// subdomain of it. Lowercase.
    Domain(String),
    /// `followers:>1000`: the author's follower count compares so; false when the format does
    /// not carry it.
    Followers(Compare, u64),
}

/// What `is:` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostKind {
    /// `is:reply`.
    Reply,
    /// `is:repost`.
    Repost,
    /// `is:quote`.
    Quote,
}

/// What `has:` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attachment {
    /// `has:link`.
    Link,
    /// `has:media`.
    Media,
}

/// The comparison of `followers:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// `>`
    Greater,
    /// `>=`
    AtLeast,
    /// `<`
    Less,
    /// `<=`
    AtMost,
    /// `=` or no sign.
    Equal,
}

impl Compare {
    /// Whether `value` compares so with `bound`.
    pub fn holds(self, value: u64, bound: u64) -> bool {
        match self {
            Compare::Greater => value > bound,
            Compare::AtLeast => value >= bound,
            Compare::Less => value < bound,
            Compare::AtMost => value <= bound,
            Compare::Equal => value == bound,
        }
    }
}

/// Whether an inline example expects its rule to hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `expect hit "…"`.
    Hit,
    /// `expect miss "…"`.
    Miss,
}

/// An inline example under a rule: a post and whether the rule must match it. `earshot check`
/// (and every load and reload) runs them, so a rule change that breaks its own examples never
/// goes live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Hit or miss.
    pub expect: Expect,
    /// The post's text.
    pub text: String,
    /// `lang:xx`.
    pub lang: Option<String>,
    /// `from:handle`.
    pub from: Option<String>,
    /// `followers:N`.
    pub followers: Option<u64>,
    /// `is:reply` / `is:repost` / `is:quote` / `has:link` / `has:media`.
    pub flags: crate::post::PostFlags,
    /// `link:URL`, each one.
    pub links: Vec<String>,
    /// Where the `expect` line is.
    pub location: Location,
}

/// One rule: a query tied to a brand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its id, unique across the set.
    pub id: RuleId,
    /// Index into [`RuleSet::brands`].
    pub brand: usize,
    /// The query.
    pub query: Query,
    /// The rule's distinct terms; [`Query::Term`] indexes this.
    pub terms: Vec<Term>,
    /// Per term: whether it occurs outside any exclusion (see [`Rule::is_anchor`]).
    anchors: Vec<bool>,
    /// Where the rule (or its `terms` line) was written.
    pub location: Location,
    /// `tags=a,b` on the rule line: labels that travel with every hit (routes and CRMs group
    /// by them).
    pub tags: Vec<String>,
    /// The `expect` lines under the rule.
    pub examples: Vec<Example>,
}

impl Rule {
    /// Whether term `i` is an anchor: written outside every `-` exclusion, so finding it can
    /// make the rule hold. A rule can only hold when one of its anchors was found.
    pub fn is_anchor(&self, i: usize) -> bool {
        self.anchors.get(i).copied().unwrap_or(false)
    }

    /// Whether the query is a plain OR of terms (a terms file, `a OR #b OR "c d"`): it holds
    /// exactly when one of its terms is found, with nothing else to evaluate.
    pub fn is_pure_or(&self) -> bool {
        match &self.query {
            Query::Term(_) => true,
            Query::Or(parts) => parts.iter().all(|p| matches!(p, Query::Term(_))),
            _ => false,
        }
    }
}

/// A validated set of brands and rules, loaded from one or more rule files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    brands: Vec<Brand>,
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Loads rule files and directories (a directory: its `*.rules` files, sorted by name).
    /// Terms files named in a rule file are read relative to that file. Returns every error
    /// found in every file.
    pub fn load(paths: &[PathBuf]) -> Result<RuleSet, RuleErrors> {
        load::load(paths)
    }

    /// Parses one rule file's text. `name` is used in error locations; terms files are read
    /// relative to `base_dir`.
    pub fn parse_str(name: &str, text: &str, base_dir: &Path) -> Result<RuleSet, RuleErrors> {
        let mut builder = parse::Builder::default();
        if text.len() as u64 > MAX_RULE_FILE_BYTES {
            builder.error(RuleError::whole_file(
                name,
                load::too_large_rule_file(text.len()),
            ));
        } else {
            builder.collect_lists(name, text, base_dir);
            builder.parse_file(name, text, base_dir);
        }
        builder.finish()
    }

    /// The brands and competitors, in file order.
    pub fn brands(&self) -> &[Brand] {
        &self.brands
    }

    /// The rules, in file order (a brand's terms-file rule where its `terms` line stands).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule with this id.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id.0 == id)
    }

    /// Total number of terms over all rules.
    pub fn term_count(&self) -> usize {
        self.rules.iter().map(|r| r.terms.len()).sum()
    }

    /// Total number of inline examples over all rules.
    pub fn example_count(&self) -> usize {
        self.rules.iter().map(|r| r.examples.len()).sum()
    }
}
