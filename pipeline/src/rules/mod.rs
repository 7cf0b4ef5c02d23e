//! The rule language: rule files (`*.rules`) → a validated [`RuleSet`] of brands and rules.
//!
//! # Input → output
//! [`RuleSet::load`] reads rule files and directories of them (plus the terms files they
//! name); [`RuleSet::parse_str`] parses one file's text. Either returns every brand and rule
//! with its query parsed into a [`Query`] over the rule's own [`Term`]s, or *every* mistake
//! found, each at `file:line:col` ([`RuleErrors`]).
//!
//! ```text
//! # rules/acme.rules
//! brand acme "Acme Corp"
//!   handle @acmehq.bsky.social @acmehq
//!   terms acme-products.txt              # one term per line: becomes rule `acme-terms`
//!   rule acme-mentions: acme OR "acme corp" OR #acme OR @acmehq -"acme anvil joke"
//!   rule acme-support: (acme OR @acmehq) (help OR support OR broken OR refund) lang:en
//! ```
//! The syntax is documented for users in `rules/README.md`.
//!
//! # Invariants of a loaded set
//! - Brand ids and rule ids are unique across all files; ids match `[a-z0-9][a-z0-9_-]*`.
//! - Every rule's query needs at least one term that is not excluded to match (a rule of only
//!   exclusions or `lang:` would match the whole firehose), so the matcher may evaluate a rule
//!   only when one of its [anchor terms](Rule::is_anchor) was found.
//! - Within a rule, terms are deduplicated by kind and casefolded needle; [`Query::Term`] holds
//!   an index into [`Rule::terms`].
//! - Limits (each a clear error, because a rule file is input a person edits and a reload must
//!   not be able to take the process down): a query ≤ [`MAX_QUERY_BYTES`], nesting ≤
//!   [`MAX_DEPTH`], ≤ [`MAX_QUERY_ATOMS`] atoms per query, terms ≤ [`MAX_TERM_BYTES`], rule
//!   files ≤ [`MAX_RULE_FILE_BYTES`], terms files ≤ [`MAX_TERMS_FILE_TERMS`] terms and
//!   [`MAX_TERMS_FILE_BYTES`].
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
/// Most terms and `lang:` atoms in one query; terms files are exempt.
pub const MAX_QUERY_ATOMS: usize = 1000;
/// Longest term, in bytes as written (sigil included, phrase quotes not).
pub const MAX_TERM_BYTES: usize = 256;
/// Largest rule file: 16 MiB.
pub const MAX_RULE_FILE_BYTES: u64 = 16 << 20;
/// Most terms in one terms file.
pub const MAX_TERMS_FILE_TERMS: usize = 1_000_000;
/// Largest terms file: 64 MiB, room for a million terms of 60 bytes, read whole at load.
pub const MAX_TERMS_FILE_BYTES: u64 = 64 << 20;

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
    /// The file, as named in errors.
    pub file: String,
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

/// One literal term of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Its kind.
    pub kind: TermKind,
    /// As written (sigil kept, phrase quotes dropped): what output shows as the matched term.
    pub text: String,
    /// Casefolded with [`crate::stage::normalize::casefold`], sigil kept: what the matcher
    /// searches the normalized text for.
    pub needle: String,
}

/// A parsed query. Precedence when written: `-` binds tightest, then AND (juxtaposition),
/// then OR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// The term at this index of [`Rule::terms`] occurs in the post.
    Term(u32),
    /// The post declares this language (primary subtag compared case-insensitively); holds the
    /// tag as written (`en`, `pt-BR`).
    Lang(String),
    /// The inner query does not hold (`-x`, `-(a OR b)`).
    Not(Box<Query>),
    /// Every part holds (two or more parts).
    And(Vec<Query>),
    /// At least one part holds (two or more parts).
    Or(Vec<Query>),
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
}
