//! Who is speaking: the author of a matched post → its classes (customer, employee, press,
//! influencer, bot, prospect, our own or a competitor's official account).
//!
//! Social CRM starts from the fact that most people who talk about a brand are not its
//! customers, and that the right answer depends on who they are: a competitor's official
//! account is never answered in public, a journalist goes to communications, a known customer
//! gets the account owner. Lists of accounts come from the rules (`handle` lines of brands and
//! competitors) and `rules/scoring.toml` (`[authors]`); customers from the CRM customer table.

use serde::Serialize;

use super::weights::AuthorSettings;
use crate::post::Author;
use crate::rules::{BrandKind, RuleSet};

/// A class of author.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorClass {
    /// One of our brand's own accounts.
    Brand,
    /// A competitor's official account.
    Competitor,
    /// One of our employees.
    Employee,
    /// Found in the CRM customer table.
    Customer,
    /// Press or media.
    Press,
    /// Likely a bot or a spammer.
    Bot,
    /// Followers at or above the influencer threshold.
    Influencer,
    /// Not a customer, showing purchase intent.
    Prospect,
    /// Anyone else.
    Public,
}

/// The author's classes, the primary first (in the order of [`AuthorClass`]'s variants).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Speaker {
    /// The class that decides how to answer.
    pub class: AuthorClass,
    /// Every class that applies, `class` first.
    pub classes: Vec<AuthorClass>,
}

/// Facts about the post that classes depend on, besides the author.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context {
    /// The author is in the CRM customer table.
    pub customer: bool,
    /// The post is a lead.
    pub lead: bool,
    /// The post is spam.
    pub spam: bool,
}

/// The account lists, compiled (lowercase, without `@`).
#[derive(Debug, Clone)]
pub struct AuthorLists {
    brand: Vec<String>,
    competitor: Vec<String>,
    employees: Vec<String>,
    press: Vec<String>,
    press_words: Vec<String>,
    bot_words: Vec<String>,
    influencer_followers: u64,
}

fn account(s: &str) -> String {
    s.trim().trim_start_matches('@').to_lowercase()
}

/// Whether `handle` or `id` is the listed account `entry`: equal, or the handle is the entry
/// on a domain or server (`dana.bsky.social`, `dana@mastodon.social` for `dana`).
fn is_account(entry: &str, handle: Option<&str>, id: &str) -> bool {
    if entry.eq_ignore_ascii_case(id) {
        return true;
    }
    handle.is_some_and(|h| {
        h == entry
            || h.strip_prefix(entry)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('@'))
    })
}

impl AuthorLists {
    /// Compiles the lists of `settings` and the brand handles of `rules`.
    pub fn build(settings: &AuthorSettings, rules: &RuleSet) -> Self {
        let handles = |kind: BrandKind| -> Vec<String> {
            rules
                .brands()
                .iter()
                .filter(|b| b.kind == kind)
                .flat_map(|b| b.handles.iter().map(|h| account(h)))
                .collect()
        };
        let lower = |v: &[String]| v.iter().map(|s| account(s)).collect();
        Self {
            brand: handles(BrandKind::Brand),
            competitor: handles(BrandKind::Competitor),
            employees: lower(&settings.employees),
            press: lower(&settings.press),
            press_words: lower(&settings.press_words),
            bot_words: lower(&settings.bot_words),
            influencer_followers: settings.influencer_followers,
        }
    }

    /// The classes of `author`.
    pub fn classify(&self, author: &Author<'_>, cx: Context) -> Speaker {
        let handle = author.handle.as_deref().map(account);
        let handle = handle.as_deref();
        let listed = |list: &[String]| list.iter().any(|e| is_account(e, handle, &author.id));
        let name = author.name.as_deref().map(str::to_lowercase);
        let bio = author.description.as_deref().map(str::to_lowercase);
        let has_word = |text: &Option<String>, w: &String| {
            text.as_deref().is_some_and(|n| {
                n.split(|c: char| !c.is_alphanumeric())
                    .any(|part| part == w)
                    || (!w.is_ascii() && n.contains(w.as_str()))
            })
        };
        // A press word in the handle, the display name or the profile's description ("tech
        // reporter at …").
        let press_word = |w: &String| {
            handle.is_some_and(|h| h.contains(w.as_str()))
                || has_word(&name, w)
                || has_word(&bio, w)
        };
        let bot = cx.spam
            || handle.is_some_and(|h| {
                let local = h.split(['.', '@']).next().unwrap_or(h);
                local.chars().rev().take_while(char::is_ascii_digit).count() >= 6
                    || local.split(|c: char| !c.is_ascii_alphabetic()).any(|part| {
                        self.bot_words
                            .iter()
                            .any(|w| part == w || part.ends_with(w.as_str()))
                    })
            });
        let followers = author.followers.unwrap_or(0);
        let checks = [
            (AuthorClass::Brand, listed(&self.brand)),
            (AuthorClass::Competitor, listed(&self.competitor)),
            (AuthorClass::Employee, listed(&self.employees)),
            (AuthorClass::Customer, cx.customer),
            (
                AuthorClass::Press,
                listed(&self.press) || self.press_words.iter().any(press_word),
            ),
            (AuthorClass::Bot, bot),
            (
                AuthorClass::Influencer,
                self.influencer_followers > 0 && followers >= self.influencer_followers,
            ),
            (AuthorClass::Prospect, cx.lead && !cx.customer),
        ];
        let mut classes: Vec<AuthorClass> = checks
            .iter()
            .filter(|(_, on)| *on)
            .map(|(c, _)| *c)
            .collect();
        if classes.is_empty() {
            classes.push(AuthorClass::Public);
        }
        Speaker {
            class: classes[0],
            classes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn lists() -> AuthorLists {
        let rules = RuleSet::parse_str(
            "t.rules",
            "brand acme \"Acme\"\n  handle @acmehq\n  rule a: acme\ncompetitor globex \"Globex\"\n  handle @globexcorp\n  rule g: globex\n",
            std::path::Path::new("."),
        )
        .unwrap();
        let settings = AuthorSettings {
            influencer_followers: 10_000,
            employees: vec!["dana.acme.bsky.social".into(), "did:plc:emp".into()],
            press: vec!["@reuters".into()],
            press_words: vec!["news".into(), "ニュース".into()],
            bot_words: vec!["bot".into(), "giveaway".into()],
        };
        AuthorLists::build(&settings, &rules)
    }

    fn author(
        id: &str,
        handle: Option<&str>,
        name: Option<&str>,
        followers: Option<u64>,
    ) -> Author<'static> {
        Author {
            id: Cow::Owned(id.into()),
            handle: handle.map(|h| Cow::Owned(h.into())),
            name: name.map(|n| Cow::Owned(n.into())),
            followers,
            verified: None,
            description: None,
        }
    }

    /// A press word in the profile's description (what a profile lookup fills in) makes the
    /// author press, as one in the handle or the name does.
    #[test]
    fn a_press_word_in_the_description_is_press() {
        let lists = lists();
        let mut a = author(
            "did:plc:x",
            Some("dana.bsky.social"),
            Some("Dana"),
            Some(900),
        );
        let before = lists.classify(&a, Context::default()).classes;
        a.description = Some(Cow::Borrowed("Tech desk at Planet News. Tips welcome"));
        let after = lists.classify(&a, Context::default()).classes;
        assert!(!before.contains(&AuthorClass::Press), "{before:?}");
        assert!(after.contains(&AuthorClass::Press), "{after:?}");
    }

    #[test]
    fn classes_from_lists_counts_and_context() {
        use AuthorClass::*;
        let l = lists();
        let none = Context::default();
        let cases: Vec<(Author<'static>, Context, Vec<AuthorClass>)> = vec![
            (author("1", Some("acmehq"), None, None), none, vec![Brand]),
            (
                author("1", Some("acmehq.bsky.social"), None, None),
                none,
                vec![Brand],
            ),
            (
                author("1", Some("GlobexCorp@mastodon.social"), None, None),
                none,
                vec![Competitor],
            ),
            (
                author("did:plc:emp", None, None, None),
                none,
                vec![Employee],
            ),
            (
                author("1", Some("Reuters"), None, Some(25_000_000)),
                none,
                vec![Press, Influencer],
            ),
            (
                author("1", Some("dailynews.bsky.social"), None, None),
                none,
                vec![Press],
            ),
            (
                author("1", None, Some("Tokyo ニュース速報"), None),
                none,
                vec![Press],
            ),
            (author("1", Some("deals_bot"), None, None), none, vec![Bot]),
            (
                author("1", Some("jane84920133"), None, None),
                none,
                vec![Bot],
            ),
            (author("1", Some("abbott"), None, None), none, vec![Public]),
            (
                author("1", Some("jane"), None, Some(9_999)),
                none,
                vec![Public],
            ),
            (
                author("1", Some("jane"), None, Some(10_000)),
                Context {
                    customer: true,
                    lead: true,
                    spam: false,
                },
                vec![Customer, Influencer],
            ),
            (
                author("1", Some("jane"), None, None),
                Context { lead: true, ..none },
                vec![Prospect],
            ),
            (
                author("1", Some("jane"), None, None),
                Context { spam: true, ..none },
                vec![Bot],
            ),
        ];
        for (a, cx, want) in cases {
            let got = l.classify(&a, cx);
            assert_eq!(got.classes, want, "{a:?}");
            assert_eq!(got.class, want[0]);
        }
    }
}
