//! The mention: what leaves a worker for a post that matched, and the stable contract that
//! `earshot replay` lines and the `data` of every webhook payload follow.
//!
//! Only matched posts (a few percent of a firehose) become mentions, so this is the one place
//! on the worker's path that builds owned strings. The field names are a public contract that
//! consumers' tooling relies on: add fields, never rename or remove them.

use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::customers::Customer;
use crate::post::{Platform, Post};
use crate::rules::BrandKind;
use crate::stage::score::author::AuthorClass;
use crate::stage::score::recommend::Recommendation;
use crate::stage::score::{Category, CueOut, SentimentOut, Urgency};

/// A post that matched at least one rule, scored and routed.
#[derive(Debug, Clone, Serialize)]
pub struct Mention {
    /// Stable id: the same post always gets the same id, across retries and restarts. Used as
    /// the webhook's `webhook-id` (the receiver's idempotency key).
    pub mention_id: String,
    /// The post, in platform-neutral form.
    pub post: MentionPost,
    /// Every rule that matched.
    pub matches: Vec<MatchOut>,
    /// Sentiment of the post text.
    pub sentiment: SentimentOut,
    /// Primary category.
    pub category: Category,
    /// Every category that applies, the primary first.
    pub categories: Vec<Category>,
    /// Urgency 0–100 with the reasons that add up to it.
    pub urgency: Urgency,
    /// Who is speaking: the class that decides how to answer.
    pub author_class: AuthorClass,
    /// Every class of the author, `author_class` first.
    pub author_classes: Vec<AuthorClass>,
    /// What to do about it, and why.
    pub recommendation: Recommendation,
    /// The cues of `rules/cues/` that counted in the judgement.
    pub cues: Vec<CueOut>,
    /// The author's record in the CRM customer table (`null` when the author is not in it).
    pub customer: Option<Customer>,
    /// Queue ids the mention was routed to (possibly empty).
    pub queues: Vec<String>,
    /// When earshot received the frame, RFC 3339 UTC with milliseconds.
    pub received_at: String,
    /// When the frame was received, for latency accounting inside the process.
    #[serde(skip)]
    pub received: Instant,
}

/// The post part of the contract.
#[derive(Debug, Clone, Serialize)]
pub struct MentionPost {
    /// Globally unique id (`at://…` on Bluesky, the status URI on Mastodon, `x:<id>` on X).
    pub id: String,
    /// Where it was published.
    pub platform: Platform,
    /// Web page of the post, when known.
    pub url: Option<String>,
    /// Who wrote it.
    pub author: MentionAuthor,
    /// Plain text.
    pub text: String,
    /// The post's language: declared by it, else detected in its text where a rule or a
    /// route needed one (see `lang_source`).
    pub lang: Option<String>,
    /// Whether `lang` was declared by the post or detected; left out when there is no `lang`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang_source: Option<LangSource>,
    /// Creation time as the platform gave it.
    pub created_at: Option<String>,
    /// Full URLs of the links the post carries, in the format's order (see
    /// [`Post::links`]); left out when there are none, as most posts have none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// The `id` (same form as [`MentionPost::id`]) of the post this one reposts or quotes,
    /// so a consumer can join a retweet storm to the post it amplifies (see
    /// [`Post::original`]); left out when the post is neither or the format does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    /// The post's place in its conversation: what delivery joins a reply or an author's next
    /// post to an earlier mention's CRM case by (see [`MentionThread`]).
    pub thread: MentionThread,
}

/// Where a mention's language came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LangSource {
    /// The post declared it (Bluesky `langs`, X `lang`, Mastodon `language`).
    Declared,
    /// earshot detected it in the text ([`crate::language`]).
    Detected,
}

/// The conversation part of the contract. `key` is the name replies give this post, and
/// `parent` / `root` name other posts the same way (see [`Post::thread_key`]): not always the
/// post's `id` form (a Mastodon reply names its parent by the server's status id).
#[derive(Debug, Clone, Serialize)]
pub struct MentionThread {
    /// The name replies give this post.
    pub key: String,
    /// The post this one answers, when it is a reply and the format names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The post that started the conversation, when the format says and it is not `parent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

/// The author part of the contract.
#[derive(Debug, Clone, Serialize)]
pub struct MentionAuthor {
    /// Platform id of the account.
    pub id: String,
    /// Handle without `@`, when known.
    pub handle: Option<String>,
    /// Follower count, when the format carries it or a profile lookup found it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub followers: Option<u64>,
    /// Display name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The profile's description, when a profile lookup found it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One matched rule.
#[derive(Debug, Clone, Serialize)]
pub struct MatchOut {
    /// Rule id.
    pub rule: String,
    /// Brand id.
    pub brand: String,
    /// Whether the brand is ours or a competitor.
    pub kind: BrandKind,
    /// The rule's terms that were found, as written in the rule.
    pub terms: Vec<String>,
    /// The rule's tags (`tags=…` on the rule line), for routing and CRM grouping.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl MentionPost {
    /// Copies what the contract needs out of a borrowed post.
    pub fn from_post(post: &Post<'_>) -> Self {
        Self {
            id: post.canonical_id(),
            platform: post.platform,
            url: post.web_url(),
            author: MentionAuthor {
                id: post.author.id.to_string(),
                handle: post.author.handle.as_deref().map(str::to_string),
                followers: post.author.followers,
                name: post.author.name.as_deref().map(str::to_string),
                description: post.author.description.as_deref().map(str::to_string),
            },
            text: post.text.to_string(),
            lang: post.lang.as_deref().map(str::to_string),
            lang_source: post.lang.is_some().then_some(LangSource::Declared),
            created_at: post.created_at.as_deref().map(str::to_string),
            links: post.links.iter().map(|l| l.to_string()).collect(),
            original: post.original.as_deref().map(str::to_string),
            thread: MentionThread {
                key: post.thread_key(),
                parent: post.thread.parent.as_deref().map(str::to_string),
                root: post.thread.root.as_deref().map(str::to_string),
            },
        }
    }
}

/// The stable id of the mention of a post: `m_` and 24 hex digits of SHA-256 over the
/// platform and the post's canonical id. Deterministic, so a replay, a restart or a second
/// worker produces the same id for the same post and receivers can deduplicate on it.
pub fn mention_id(platform: Platform, canonical_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(platform.as_str().as_bytes());
    h.update([0u8]);
    h.update(canonical_id.as_bytes());
    let digest = h.finalize();
    let mut id = String::with_capacity(26);
    id.push_str("m_");
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in &digest[..12] {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 15)]));
    }
    id
}

/// Mentions for tests of the stages downstream of the worker (noise control, the spike
/// monitor): what a test says about a mention, everything else a plausible constant. Built for
/// this crate's tests and, with the `testing` feature, for the runtime's.
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use std::time::Instant;

    use super::{
        mention_id, LangSource, MatchOut, Mention, MentionAuthor, MentionPost, MentionThread,
    };
    use crate::post::Platform;
    use crate::rules::BrandKind;
    use crate::stage::score::author::AuthorClass;
    use crate::stage::score::recommend::{Action, Recommendation};
    use crate::stage::score::sentiment::SentimentLabel;
    use crate::stage::score::{Category, SentimentOut, Urgency};

    /// What a test says about a mention; everything else is a plausible constant.
    #[derive(Clone, Debug)]
    pub struct Spec {
        /// The post id (`x:<id>`).
        pub id: String,
        /// The author's id.
        pub author: String,
        /// The author's handle.
        pub handle: Option<String>,
        /// The post text.
        pub text: String,
        /// The post it reposts or quotes.
        pub original: Option<String>,
        /// Urgency, 0–100.
        pub urgency: u8,
        /// The recommended action.
        pub action: Action,
    }

    /// A mention of post `x:<id>` by `author` saying `text`.
    pub fn spec(id: &str, author: &str, text: &str) -> Spec {
        Spec {
            id: format!("x:{id}"),
            author: author.to_owned(),
            handle: Some(format!("{author}_handle")),
            text: text.to_owned(),
            original: None,
            urgency: 40,
            action: Action::Respond,
        }
    }

    impl Spec {
        /// Reposts or quotes `x:<original>`.
        pub fn of(mut self, original: &str) -> Spec {
            self.original = Some(format!("x:{original}"));
            self
        }

        /// With this urgency.
        pub fn urgency(mut self, urgency: u8) -> Spec {
            self.urgency = urgency;
            self
        }

        /// With this recommended action.
        pub fn action(mut self, action: Action) -> Spec {
            self.action = action;
            self
        }

        /// The mention.
        pub fn build(&self) -> Mention {
            let tweet = self.id.strip_prefix("x:").unwrap_or(&self.id);
            Mention {
                mention_id: mention_id(Platform::X, &self.id),
                post: MentionPost {
                    id: self.id.clone(),
                    platform: Platform::X,
                    url: Some(format!("https://x.com/{}/status/{tweet}", self.author)),
                    author: MentionAuthor {
                        id: self.author.clone(),
                        handle: self.handle.clone(),
                        followers: Some(120),
                        name: None,
                        description: None,
                    },
                    text: self.text.clone(),
                    lang: Some("en".to_owned()),
                    lang_source: Some(LangSource::Declared),
                    created_at: None,
                    links: Vec::new(),
                    original: self.original.clone(),
                    thread: MentionThread {
                        key: self.id.clone(),
                        parent: None,
                        root: None,
                    },
                },
                matches: vec![MatchOut {
                    rule: "acme-support".to_owned(),
                    brand: "acme".to_owned(),
                    kind: BrandKind::Brand,
                    terms: vec!["acme".to_owned()],
                    tags: Vec::new(),
                }],
                sentiment: SentimentOut {
                    score: -0.6,
                    label: SentimentLabel::Negative,
                    vader: -0.6,
                },
                category: Category::Complaint,
                categories: vec![Category::Complaint],
                urgency: Urgency {
                    score: self.urgency,
                    reasons: Vec::new(),
                },
                author_class: AuthorClass::Public,
                author_classes: vec![AuthorClass::Public],
                recommendation: Recommendation {
                    action: self.action,
                    team: None,
                    reason: String::new(),
                },
                cues: Vec::new(),
                customer: None,
                queues: vec!["support".to_owned()],
                received_at: "2026-11-23T11:28:46.120Z".to_owned(),
                received: Instant::now(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    use crate::post::{Author, PostFlags};

    /// A plain post: no flags, links or optional fields.
    fn post(
        platform: Platform,
        id: &'static str,
        author: &'static str,
        text: &'static str,
    ) -> Post<'static> {
        Post {
            platform,
            id: Cow::Borrowed(id),
            uri: None,
            url: None,
            author: Author {
                id: Cow::Borrowed(author),
                ..Author::default()
            },
            text: Cow::Borrowed(text),
            lang: None,
            created_at: None,
            time_us: None,
            engagement: None,
            flags: PostFlags::default(),
            links: Vec::new(),
            original: None,
            thread: Default::default(),
        }
    }

    #[test]
    fn mention_ids_are_stable_and_distinct() {
        let a = mention_id(Platform::Bluesky, "at://did:plc:x/app.bsky.feed.post/1");
        assert_eq!(
            a,
            mention_id(Platform::Bluesky, "at://did:plc:x/app.bsky.feed.post/1")
        );
        assert_ne!(
            a,
            mention_id(Platform::Bluesky, "at://did:plc:x/app.bsky.feed.post/2")
        );
        assert_ne!(
            a,
            mention_id(Platform::X, "at://did:plc:x/app.bsky.feed.post/1")
        );
        assert_eq!(a.len(), 26);
        assert!(a.starts_with("m_"));
    }

    #[test]
    fn links_are_in_the_contract_only_when_the_post_has_some() {
        let mut post = post(
            Platform::Bluesky,
            "3l3qo2v6show4",
            "did:plc:x",
            "acme.example/blog/…",
        );
        let json = serde_json::to_value(MentionPost::from_post(&post)).expect("json");
        assert!(json.get("links").is_none());
        post.flags.link = true;
        post.links = vec![
            Cow::Borrowed("https://acme.example/blog/outage-update"),
            Cow::Owned("https://acme.example/?a=1&b=2".to_owned()),
        ];
        let json = serde_json::to_value(MentionPost::from_post(&post)).expect("json");
        assert_eq!(
            json["links"],
            serde_json::json!([
                "https://acme.example/blog/outage-update",
                "https://acme.example/?a=1&b=2"
            ])
        );
    }

    #[test]
    fn the_original_is_in_the_contract_only_for_reposts_and_quotes() {
        let mut post = post(
            Platform::X,
            "1440716856763977732",
            "4100727022",
            "RT @carolJhedges: …",
        );
        let json = serde_json::to_value(MentionPost::from_post(&post)).expect("json");
        assert!(json.get("original").is_none());
        post.flags.repost = true;
        post.original = Some(Cow::Borrowed("x:1440713161355583489"));
        let json = serde_json::to_value(MentionPost::from_post(&post)).expect("json");
        assert_eq!(json["original"], "x:1440713161355583489");
        assert_eq!(
            json["id"], "x:1440716856763977732",
            "the same form as the id"
        );
    }
}
