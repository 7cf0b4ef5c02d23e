//! The decoded post every stage after `decode` works on.
//!
//! A `Post` borrows from the frame it was decoded from (simd-json unescapes strings in place),
//! so the hot path copies no text; only values that must be built (Mastodon's HTML turned into
//! plain text, a follower count summed from two fields) are owned. Identifiers that a consumer
//! needs in canonical form (the `at://` URI, the web URL) are built only for posts that leave
//! the worker, by [`Post::canonical_id`] and [`Post::web_url`].
//!
//! [`Post::links`] holds the full URLs a post links to as the format states them (a Bluesky
//! link facet's `uri`, an X entity's `expanded_url`, a Mastodon `href`), because the text
//! alone shows shortened forms (`acme.com/blog/…`, `t.co` links) that `url:` / `domain:` rules
//! cannot match. An empty `Vec` does not allocate, so the many posts without links cost
//! nothing.
//!
//! [`Post::original`] names the post a repost or quote refers to, in canonical form, so a
//! stage after the decoder can tell that a thousand retweets are one story.

use std::borrow::Cow;

use serde::Serialize;

/// The network a post was published on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Bluesky, from Jetstream.
    Bluesky,
    /// X (Twitter), API v2 or v1.1 / enterprise formats.
    X,
    /// Mastodon (any server of the fediverse speaking its API).
    Mastodon,
    /// Reddit comments and submissions.
    Reddit,
    /// Any other JSON source, decoded with configured field paths.
    Generic,
}

impl Platform {
    /// The lowercase name used in output and as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Bluesky => "bluesky",
            Platform::X => "x",
            Platform::Mastodon => "mastodon",
            Platform::Reddit => "reddit",
            Platform::Generic => "generic",
        }
    }
}

/// Most links kept per post. Real posts carry one to four; the bound keeps a crafted post (a
/// Bluesky record with hundreds of link facets) from costing more than an ordinary one, in
/// the decoder and in every rule that looks at links.
pub const MAX_LINKS: usize = 16;

/// Longest link kept, in bytes. Browsers and link shorteners stop near 2,000 characters; a
/// longer URI is left out of [`Post::links`] (the post itself is kept), so one odd facet can
/// neither fail a post nor swell a mention.
pub const MAX_LINK_BYTES: usize = 2048;

/// Who wrote a post.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Author<'a> {
    /// Stable platform id: a DID on Bluesky, the numeric user id on X, the account id on
    /// Mastodon, the `t2_` fullname or name on Reddit.
    pub id: Cow<'a, str>,
    /// The handle without a leading `@` (`acme.bsky.social`, `acmehq`, `Gargron`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle: Option<Cow<'a, str>>,
    /// Display name, when the format carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Cow<'a, str>>,
    /// Follower count, when the format carries it (X, Mastodon).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub followers: Option<u64>,
    /// Whether the platform marks the account as verified, when it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// The profile's description (bio), when known: from a profile lookup (Bluesky posts
    /// carry none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Cow<'a, str>>,
}

/// Structural facts about a post that rules and scores use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PostFlags {
    /// The post answers another post.
    pub reply: bool,
    /// The post re-shares another post unchanged (retweet, reblog).
    pub repost: bool,
    /// The post quotes another post.
    pub quote: bool,
    /// The post carries a link (facet, entity or embed).
    pub link: bool,
    /// The post carries images, video or other media.
    pub media: bool,
}

/// One social post, decoded from one frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Post<'a> {
    /// Where it was published.
    pub platform: Platform,
    /// The platform's own id of the post: the record key on Bluesky, the tweet id on X, the
    /// status id on Mastodon, the `t1_`/`t3_` fullname on Reddit.
    pub id: Cow<'a, str>,
    /// A globally unique URI when the frame carries one (Mastodon `uri`, Reddit permalink).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<Cow<'a, str>>,
    /// The web URL when the frame carries one (Mastodon `url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<Cow<'a, str>>,
    /// Who wrote it.
    pub author: Author<'a>,
    /// Plain text (HTML already converted, entities decoded).
    pub text: Cow<'a, str>,
    /// The first language tag the post declares (`en`, `pt-BR`), when it declares one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<Cow<'a, str>>,
    /// Creation time as the platform wrote it (RFC 3339 or the platform's own form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Cow<'a, str>>,
    /// Jetstream's `time_us`: the source's resume cursor, in microseconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_us: Option<u64>,
    /// Likes + reposts + replies (+ quotes) when the format carries public counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engagement: Option<u64>,
    /// Reply / repost / quote / link / media.
    pub flags: PostFlags,
    /// Full URLs of the links the post carries (facets, entities, cards, embeds), in the
    /// order the format lists them, deduplicated, at most [`MAX_LINKS`]. Only `http` /
    /// `https` URLs of at most [`MAX_LINK_BYTES`] are kept. Whenever it is non-empty,
    /// `flags.link` is set; the flag can be set without links (an embed without a URI, a
    /// link to the post's own page).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Cow<'a, str>>,
    /// The globally unique id of the post this one reposts or quotes, in the form
    /// [`Post::canonical_id`] gives that post (`at://…/app.bsky.feed.post/…`, `x:<id>`, the
    /// Mastodon status URI, the Reddit permalink URL), so that an original and its reposts
    /// can be joined on it: the noise gate rolls up reposts of one original this way. Set
    /// only when the format names the post (a repost wins over a quote when a post is both,
    /// as an X retweet of a quote tweet is); `flags.repost` / `flags.quote` can be set
    /// without it (a Mastodon quote that gives only a local id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<Cow<'a, str>>,
    /// The conversation a reply belongs to, as far as the format says.
    #[serde(skip_serializing_if = "Thread::is_empty")]
    pub thread: Thread<'a>,
}

/// Where a reply sits in its conversation: the post it answers and the post that started the
/// conversation, each in the form [`Post::thread_key`] gives a post, so that a reply can be
/// joined to an earlier mention of the same conversation (a CRM case that gets the reply as a
/// comment instead of a second ticket). Empty for a post that answers nothing, and where the
/// format does not name the posts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Thread<'a> {
    /// The post this one answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<Cow<'a, str>>,
    /// The post that started the conversation, when the format says and it is not `parent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<Cow<'a, str>>,
}

impl Thread<'_> {
    /// Neither a parent nor a root.
    pub fn is_empty(&self) -> bool {
        self.parent.is_none() && self.root.is_none()
    }
}

impl Post<'_> {
    /// The name replies give this post: the `at://` URI on Bluesky (what `reply.parent.uri`
    /// holds), `x:<id>` on X, `mastodon:<id>` on Mastodon (a status's `in_reply_to_id` is
    /// the id on the server it was read from, not its URI), `reddit:<fullname>` on Reddit
    /// (a comment's `parent_id` and `link_id`), `generic:<id>` otherwise.
    pub fn thread_key(&self) -> String {
        match self.platform {
            Platform::Bluesky => self.canonical_id(),
            platform => format!("{}:{}", platform.as_str(), self.id),
        }
    }

    /// A globally unique id: `at://did/app.bsky.feed.post/rkey` on Bluesky, the URI the frame
    /// carries where there is one, otherwise `platform:id`.
    pub fn canonical_id(&self) -> String {
        match (self.platform, &self.uri) {
            (Platform::Bluesky, _) => {
                format!("at://{}/app.bsky.feed.post/{}", self.author.id, self.id)
            }
            (_, Some(uri)) => uri.to_string(),
            (platform, None) => format!("{}:{}", platform.as_str(), self.id),
        }
    }

    /// The page a person opens to see the post, when it can be known.
    pub fn web_url(&self) -> Option<String> {
        if let Some(url) = &self.url {
            return Some(url.to_string());
        }
        match self.platform {
            Platform::Bluesky => Some(format!(
                "https://bsky.app/profile/{}/post/{}",
                self.author.id, self.id
            )),
            Platform::X => {
                let who = self.author.handle.as_deref().unwrap_or("i/web");
                Some(format!("https://x.com/{who}/status/{}", self.id))
            }
            _ => None,
        }
    }
}
