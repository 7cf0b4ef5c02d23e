//! Inline rule examples: each `expect hit "…"` / `expect miss "…"` line under a rule is run
//! through the compiled matcher, exactly as a live post would be.
//!
//! Running them at every load (start, `earshot check`, hot reload) rather than in a separate
//! test step means a rule edit that breaks its own examples is refused like a syntax error:
//! the rules in force stay, and the failure is reported at the `expect` line's
//! `file:line:col`, with the terms the matcher did find, so the author sees why.

use std::borrow::Cow;

use crate::normalize::{normalize, Normalized};
use crate::post::{Author, Platform, Post};
use crate::rules::{Example, Expect, RuleError, RuleErrors, RuleSet};
use crate::stage::matcher::{MatchScratch, Matcher};

/// Runs every example of every rule; `Ok(count)` when all hold, else one error per example
/// that does not.
pub fn run(rules: &RuleSet, matcher: &Matcher) -> Result<usize, RuleErrors> {
    let mut norm = Normalized::new();
    let mut scratch = MatchScratch::new();
    let mut hits = Vec::new();
    let mut failures = Vec::new();
    let mut count = 0;
    for (r, rule) in rules.rules().iter().enumerate() {
        for example in &rule.examples {
            count += 1;
            let post = post_of(example);
            normalize(&post.text, &mut norm);
            matcher.match_post(&post, &norm, &mut scratch, &mut hits);
            let hit = hits.iter().any(|h| h.rule as usize == r);
            // The rule's own terms in the text, whatever the query made of them.
            let found: Vec<&str> = matcher
                .found_terms(r as u32, &scratch)
                .into_iter()
                .map(|t| matcher.term(t))
                .collect();
            let message = match (example.expect, hit) {
                (Expect::Hit, false) if found.is_empty() => Some(format!(
                    "example expects rule '{}' to hit, but it does not: none of its terms is \
                     in this text",
                    rule.id
                )),
                (Expect::Hit, false) => Some(format!(
                    "example expects rule '{}' to hit, but it does not (terms found: {})",
                    rule.id,
                    found.join(", ")
                )),
                (Expect::Miss, true) => {
                    let own: Vec<&str> = hits
                        .iter()
                        .filter(|h| h.rule as usize == r)
                        .flat_map(|h| h.terms.iter().map(|&t| matcher.term(t)))
                        .collect();
                    Some(format!(
                        "example expects rule '{}' not to hit, but it does (on: {})",
                        rule.id,
                        own.join(", ")
                    ))
                }
                _ => None,
            };
            if let Some(message) = message {
                let loc = &example.location;
                failures.push(RuleError::at(&loc.file, loc.line, loc.col, message));
            }
        }
    }
    if failures.is_empty() {
        Ok(count)
    } else {
        Err(RuleErrors(failures))
    }
}

/// The post an example describes.
fn post_of(example: &Example) -> Post<'_> {
    let from = example.from.as_deref();
    Post {
        platform: Platform::Generic,
        id: Cow::Borrowed("example"),
        uri: None,
        url: None,
        author: Author {
            id: Cow::Borrowed(from.unwrap_or("")),
            handle: from.map(Cow::Borrowed),
            name: None,
            followers: example.followers,
            verified: None,
            description: None,
        },
        text: Cow::Borrowed(&example.text),
        lang: example.lang.as_deref().map(Cow::Borrowed),
        created_at: None,
        time_us: None,
        engagement: None,
        flags: example.flags,
        links: example
            .links
            .iter()
            .map(|l| Cow::Borrowed(l.as_str()))
            .collect(),
        original: None,
        thread: Default::default(),
    }
}
