//! X filtered-stream rules kept in step with earshot's rules (`earshot x-rules diff|apply`).
//!
//! X's filtered stream sends only the posts its server-side rules select, so a brand team that
//! adds a product name to a rule file would see nothing new on X until someone edits the X
//! rules by hand. This module turns the loaded [`RuleSet`] into X rules that select a superset
//! of what earshot's rules can match, within X's limits, and plans the change from what X holds
//! now.
//!
//! Input → output:
//! - [`translate`]: rules → X rule values. For each rule it finds a set of terms of which every
//!   post the rule matches must contain one ([`required`]): a term is itself; an OR needs all
//!   of its parts; an AND needs any one part (the cheapest); `a NEAR/n b` needs a term of one
//!   side; exclusions and field conditions (`lang:`, `from:`, `followers:` …) need nothing and
//!   are left to earshot, which judges every post the stream sends. The terms become X
//!   operators (`"quoted phrase"` for words and phrases, `#tag`, `@handle`, `$TICKER`), are
//!   deduplicated across rules, and are packed into values of at most `max_length` characters
//!   joined by ` OR `, at most `max_rules` of them, each tagged [`TAG`].
//! - [`plan`]: those values and X's current rules → keep / add / delete. Only rules tagged
//!   [`TAG`] are earshot's: others are left alone (and count towards the limit); a wanted value
//!   another rule already holds is covered by it.
//!
//! What X cannot express is a gap, reported per rule with its place: a prefix term (`refund*`:
//! X has no wildcard) where no other term of the rule can stand in for it. X matches keywords
//! as whole tokens and ignores accents and case, so every X operator selects at least what the
//! earshot term finds, except earshot's compounds (`acme` also finds `#acmefail`), which X does
//! not send.
//!
//! Packing is by a stable hash of each operator into buckets, so adding a term changes one X
//! rule, not every rule after it.

pub mod api;

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::rules::{Query, Rule, RuleSet, Term, TermKind};

/// The tag of every X rule earshot owns; rules with other tags (or none) are someone else's.
pub const TAG: &str = "earshot";
/// X's limits on the Pro tier: 1,000 rules of up to 1,024 characters.
pub const PRO_MAX_RULES: usize = 1000;
/// See [`PRO_MAX_RULES`].
pub const PRO_MAX_LENGTH: usize = 1024;
/// The shortest rule length accepted: every earshot term (256 bytes at most) must fit in one.
pub const MIN_MAX_LENGTH: usize = 300;
const OR: &str = " OR ";

/// How many rules X allows, and how long each may be (its access level's numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Rules per stream, everyone's together.
    pub max_rules: usize,
    /// Characters per rule value.
    pub max_length: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_rules: PRO_MAX_RULES,
            max_length: PRO_MAX_LENGTH,
        }
    }
}

/// A rule X cannot select the posts of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The rule's id.
    pub rule: String,
    /// Where it is written (`file:line:col`).
    pub location: String,
    /// Why.
    pub why: String,
}

/// The X rule values wanted for a rule set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    /// The values, sorted.
    pub values: Vec<String>,
    /// Distinct X operators in them.
    pub operators: usize,
    /// Rules X cannot select for.
    pub gaps: Vec<Gap>,
}

/// Why no X rules could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The limits themselves are unusable.
    #[error("X rule limits: {0}")]
    Limits(String),
    /// More rules would be needed than X allows.
    #[error(
        "the rules need {needed} X rules of at most {max_length} characters ({operators} operators, \
         {characters} characters in all), more than the {max_rules} this access level allows: \
         raise --max-rules and --max-rule-length to your access level's, or narrow the rules"
    )]
    TooMany {
        /// Rules needed.
        needed: usize,
        /// Rules allowed.
        max_rules: usize,
        /// Characters allowed per rule.
        max_length: usize,
        /// Operators to place.
        operators: usize,
        /// Their characters, separators included.
        characters: usize,
    },
}

/// X's length of a value: UTF-16 code units, which is never less than its characters.
pub fn x_length(s: &str) -> usize {
    s.encode_utf16().count()
}

/// `"text"` with `\` and `"` escaped, as X's exact-phrase operator takes it.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        // A line break cannot be in a rule; X matches across whitespace anyway.
        out.push(if c.is_whitespace() { ' ' } else { c });
    }
    out.push('"');
    out
}

/// The X operator for a term, or why there is none.
fn operator(term: &Term) -> Result<String, String> {
    if term.prefix {
        return Err(format!(
            "`{}` is a prefix term and X has no wildcard",
            term.text
        ));
    }
    let text = term.literal();
    let name = text.get(1..).unwrap_or_default();
    let plain = |s: &str, extra: &[char]| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || extra.contains(&c))
    };
    Ok(match term.kind {
        TermKind::Word | TermKind::Phrase => quoted(text),
        TermKind::Hashtag if plain(name, &[]) => format!("#{name}"),
        TermKind::Handle
            if name.len() <= 15 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            format!("@{name}")
        }
        TermKind::Cashtag
            if name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && plain(name, &['.']) =>
        {
            format!("${name}")
        }
        // A handle of another network (`@acmehq.bsky.social`), a tag X would not take as one:
        // their words, as a phrase.
        _ => quoted(name),
    })
}

/// The terms of which every post matching `q` contains one, the cheapest such set; `None`
/// when there is none (an exclusion or a field condition alone, or a term X cannot express).
pub fn required(
    rule: &Rule,
    q: &Query,
    expressible: &dyn Fn(u32) -> bool,
) -> Option<BTreeSet<u32>> {
    let cost = |set: &BTreeSet<u32>| -> usize {
        set.iter()
            .map(|&i| {
                rule.terms
                    .get(i as usize)
                    .map_or(0, |t| t.text.len() + OR.len())
            })
            .sum()
    };
    let all = |terms: &[u32]| -> Option<BTreeSet<u32>> {
        terms
            .iter()
            .all(|&i| expressible(i))
            .then(|| terms.iter().copied().collect())
    };
    let cheapest = |sets: Vec<BTreeSet<u32>>| sets.into_iter().min_by_key(|s| cost(s));
    match q {
        Query::Term(i) => expressible(*i).then(|| BTreeSet::from([*i])),
        Query::Near { left, right, .. } => {
            cheapest([all(left), all(right)].into_iter().flatten().collect())
        }
        Query::And(parts) => cheapest(
            parts
                .iter()
                .filter_map(|p| required(rule, p, expressible))
                .collect(),
        ),
        Query::Or(parts) => {
            let mut union = BTreeSet::new();
            for p in parts {
                union.extend(required(rule, p, expressible)?);
            }
            Some(union)
        }
        Query::Field(_) | Query::Not(_) => None,
    }
}

/// The X rule values that select a superset of what `rules` can match, within `limits`.
pub fn translate(rules: &RuleSet, limits: Limits) -> Result<Translation, TranslateError> {
    if limits.max_rules == 0 {
        return Err(TranslateError::Limits(
            "max_rules must be at least 1".into(),
        ));
    }
    if limits.max_length < MIN_MAX_LENGTH {
        return Err(TranslateError::Limits(format!(
            "max_length must be at least {MIN_MAX_LENGTH} (X's smallest is 512)"
        )));
    }
    let mut operators = BTreeSet::new();
    let mut gaps = Vec::new();
    for rule in rules.rules() {
        let ops: Vec<Result<String, String>> = rule.terms.iter().map(operator).collect();
        let expressible = |i: u32| ops.get(i as usize).is_some_and(Result::is_ok);
        match required(rule, &rule.query, &expressible) {
            Some(set) => {
                for i in set {
                    if let Some(Ok(op)) = ops.get(i as usize) {
                        operators.insert(op.clone());
                    }
                }
            }
            None => {
                let why = ops
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| rule.is_anchor(*i))
                    .find_map(|(_, o)| o.as_ref().err().cloned())
                    .unwrap_or_else(|| "no term every match must contain".into());
                gaps.push(Gap {
                    rule: rule.id.to_string(),
                    location: rule.location.to_string(),
                    why,
                });
            }
        }
    }
    let values = pack(&operators, limits)?;
    Ok(Translation {
        values,
        operators: operators.len(),
        gaps,
    })
}

/// A stable bucket number for `op` among `buckets`.
fn bucket(op: &str, buckets: usize) -> usize {
    let digest = Sha256::digest(op.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % buckets as u64) as usize
}

/// Packs `ops` into values of at most `max_length` joined by ` OR `: by stable hash into as
/// few buckets as fit (starting from three quarters full), else first-fit by length.
fn pack(ops: &BTreeSet<String>, limits: Limits) -> Result<Vec<String>, TranslateError> {
    if ops.is_empty() {
        return Ok(Vec::new());
    }
    let characters: usize = ops.iter().map(|o| x_length(o) + OR.len()).sum();
    let too_many = |needed: usize| TranslateError::TooMany {
        needed,
        max_rules: limits.max_rules,
        max_length: limits.max_length,
        operators: ops.len(),
        characters,
    };
    let join = |set: &[&String]| set.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(OR);
    let mut k = characters.div_ceil(limits.max_length * 3 / 4).max(1);
    while k <= limits.max_rules {
        let mut buckets: BTreeMap<usize, Vec<&String>> = BTreeMap::new();
        for op in ops {
            buckets.entry(bucket(op, k)).or_default().push(op);
        }
        let values: Vec<String> = buckets.values().map(|b| join(b)).collect();
        if values.iter().all(|v| x_length(v) <= limits.max_length) {
            let mut values = values;
            values.sort();
            return Ok(values);
        }
        k += k.div_ceil(8);
    }
    // Uneven buckets: first-fit, longest first.
    let mut by_length: Vec<&String> = ops.iter().collect();
    by_length.sort_by_key(|o| std::cmp::Reverse(x_length(o)));
    let mut bins: Vec<(usize, Vec<&String>)> = Vec::new();
    for op in by_length {
        let len = x_length(op);
        match bins
            .iter_mut()
            .find(|(used, _)| used + OR.len() + len <= limits.max_length)
        {
            Some((used, bin)) => {
                *used += OR.len() + len;
                bin.push(op);
            }
            None => bins.push((len, vec![op])),
        }
    }
    if bins.len() > limits.max_rules {
        return Err(too_many(bins.len()));
    }
    let mut values: Vec<String> = bins
        .into_iter()
        .map(|(_, mut b)| {
            b.sort();
            join(&b)
        })
        .collect();
    values.sort();
    Ok(values)
}

/// A rule X holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct XRule {
    /// X's id of it.
    pub id: String,
    /// Its value.
    pub value: String,
    /// Its tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// What to change at X.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    /// earshot's rules that stay.
    pub keep: Vec<XRule>,
    /// Values to add (tagged [`TAG`]).
    pub add: Vec<String>,
    /// earshot's rules no longer wanted (and repeats of a value).
    pub delete: Vec<XRule>,
    /// Rules that are not earshot's: left alone.
    pub others: Vec<XRule>,
}

impl Plan {
    /// Whether X already holds what is wanted.
    pub fn in_sync(&self) -> bool {
        self.add.is_empty() && self.delete.is_empty()
    }

    /// Rules X will hold once applied.
    pub fn total_after(&self) -> usize {
        self.others.len() + self.keep.len() + self.add.len()
    }
}

/// The change from `current` to `wanted`.
pub fn plan(wanted: &[String], current: &[XRule]) -> Plan {
    let wanted_set: BTreeSet<&str> = wanted.iter().map(String::as_str).collect();
    let mut plan = Plan::default();
    let mut held: BTreeSet<String> = BTreeSet::new();
    for r in current {
        if r.tag.as_deref() != Some(TAG) {
            held.insert(r.value.clone());
            plan.others.push(r.clone());
        }
    }
    for r in current.iter().filter(|r| r.tag.as_deref() == Some(TAG)) {
        if wanted_set.contains(r.value.as_str()) && held.insert(r.value.clone()) {
            plan.keep.push(r.clone());
        } else {
            plan.delete.push(r.clone());
        }
    }
    plan.add = wanted
        .iter()
        .filter(|v| !held.contains(v.as_str()))
        .cloned()
        .collect();
    plan
}

#[cfg(test)]
mod tests;
