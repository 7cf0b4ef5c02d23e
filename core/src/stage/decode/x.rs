//! X (Twitter): three wire shapes → posts with platform X.
//!
//! - **API v2** ([`decode_v2`]): a filtered-stream line or a search / lookup page.
//!   `data` is one tweet (stream) or an array (page); the author is looked up by `author_id`
//!   in `includes.users` (username → handle, name, `public_metrics.followers_count`,
//!   `verified`). Text is `note_tweet.text` for long posts, else `text`. engagement = like +
//!   retweet + reply + quote counts of `data.public_metrics`. Flags: `referenced_tweets` types
//!   `replied_to` / `quoted` / `retweeted` → reply / quote / repost; link = `entities.urls`
//!   non-empty; media = `attachments.media_keys` non-empty. Links: `entities.urls[]`
//!   `expanded_url`, else `url` (the `t.co` form). Original: the `id` of the `retweeted`
//!   referenced tweet, else of the `quoted` one. A line holding `errors` and no
//!   `data` is [`SkipReason::StreamError`], while a page's partial `errors` (a suspended
//!   mentioned user) do not stop its tweets. `matching_rules` (numeric or string ids) and
//!   twarc's `__twarc` envelope are ignored.
//! - **v1.1 / enterprise original format** ([`decode_v1`]): a status, or a `search/tweets`
//!   response whose `statuses` are all decoded. Text is `extended_tweet.full_text`, else
//!   `full_text`, else `text`. Flags from `in_reply_to_status_id(_str)`, `retweeted_status`,
//!   `quoted_status(_id_str)`, `entities.urls`, and `media` in `entities` /
//!   `extended_entities` (including those inside `extended_tweet`). engagement = favorite +
//!   retweet (+ reply + quote when present). Links: `expanded_url` (else `url`) of
//!   `extended_tweet.entities.urls` when the status has an `extended_tweet` (the top-level
//!   `entities` then describe the 140-character cut, whose only link may be the "read more"
//!   link to the tweet itself), else of `entities.urls`. Media are not links: v1.1 lists them
//!   in `entities.media`. Original: `retweeted_status.id_str`, else `quoted_status.id_str`,
//!   else `quoted_status_id_str`. Stream control messages are skipped: `delete` →
//!   Delete, `limit` / `disconnect` / `warning` / `errors` → StreamError, other envelopes →
//!   OtherEvent.
//! - **Gnip Activity Streams** ([`decode_activity`]): `verb: post | share`; ids are `tag:` /
//!   `id:` URIs whose last `:`-separated part is the tweet / user id. Text is
//!   `long_object.body`, else `body`. `share` (a retweet) sets repost; reply = `inReplyTo`;
//!   quote = `twitter_quoted_status`; link / media from `twitter_entities` /
//!   `twitter_extended_entities` (and `long_object`'s); links as v1.1 with
//!   `long_object.twitter_entities` in the place of `extended_tweet.entities`. Gnip's own
//!   `gnip.urls` enrichment is not read. engagement = favorites + retweets. Original: the
//!   tweet id of a share's `object` (the shared activity), else of `twitter_quoted_status`.
//!   `verb: delete` → Delete; Gnip `info` → OtherEvent; `error` → StreamError.
//!
//! In all three the original is written `x:<id>`, the form [`Post::canonical_id`] gives a
//! tweet, and a retweet's wins over a quote's (a retweet of a quote tweet carries both).
//!
//! All three escape `&`, `<` and `>` in text as HTML references; they are decoded (into the
//! decoder's text buffer, only when present).
//!
//! In all three, a URL that is the post itself or a photo / video is not one of its links:
//! v2 lists photos and videos among a tweet's URLs as `twitter.com/<user>/status/<id>/photo/1`
//! (a retweet lists the original's), where v1.1 keeps them apart in `entities.media`; and a
//! truncated tweet links to its own `twitter.com/i/web/status/<own id>`. Left in, they would
//! make every tweet with a photo match `domain:twitter.com`, and v2 and v1.1 would disagree
//! on the same tweet. The `link` flag still counts them, as before.
//!
//! Retweets are posts with the repost flag (their `RT @user: …` text is what a listener
//! sees); deduplication of reposts is the route stage's decision, not the decoder's.
//! `created_at` is passed through as the platform wrote it (v1.1 uses
//! `Wed Oct 10 20:19:24 +0000 2018`).

use std::borrow::Cow;

use super::tape::Val;
use super::{html, push_link, sum_counts, Emitted, Scratch};
use crate::post::{Author, Platform, Post, PostFlags, Thread};
use crate::skip::SkipReason;

/// Decodes one X API v2 line or page.
pub(super) fn decode_v2<F: FnMut(Post<'_>)>(
    root: Val<'_, '_>,
    scratch: &mut Scratch,
    emitted: &mut Emitted,
    on_post: &mut F,
) -> Result<usize, SkipReason> {
    let mut data = None;
    let mut users = None;
    let mut errors = false;
    let mut meta = false;
    for (key, value) in root.entries() {
        match key {
            "data" => data = Some(value),
            "includes" => users = value.get("users"),
            "errors" => errors = true,
            "meta" => meta = true,
            _ => {}
        }
    }
    match data {
        Some(tweet) if tweet.is_object() => {
            let post = v2_tweet(tweet, users, &mut scratch.text, &mut scratch.original)
                .ok_or(SkipReason::WrongShape)?;
            on_post(post);
            Ok(1)
        }
        Some(page) if page.is_array() => {
            for tweet in page.items() {
                match v2_tweet(tweet, users, &mut scratch.text, &mut scratch.original) {
                    Some(post) => {
                        on_post(post);
                        emitted.posts += 1;
                    }
                    None => emitted.malformed += 1,
                }
            }
            emitted.finish()
        }
        Some(_) => Err(SkipReason::WrongShape),
        None if errors => Err(SkipReason::StreamError),
        // A search page with no results carries only `meta`.
        None if meta => Err(SkipReason::OtherEvent),
        None => Err(SkipReason::WrongShape),
    }
}

/// One v2 tweet object; `None` when it lacks an id, text or author id. Unescaped text, when
/// the tweet has references, is built in `buf`; the original's canonical id in `original`.
fn v2_tweet<'s, 'f: 's>(
    tweet: Val<'_, 'f>,
    users: Option<Val<'_, 'f>>,
    buf: &'s mut String,
    original: &'s mut String,
) -> Option<Post<'s>> {
    let mut id = None;
    let mut text = None;
    let mut note = None;
    let mut author_id = None;
    let mut lang = None;
    let mut created_at = None;
    let mut engagement = None;
    let mut flags = PostFlags::default();
    let mut entities = None;
    let mut retweeted = None;
    let mut quoted = None;
    let mut replied_to = None;
    let mut conversation = None;
    for (key, value) in tweet.entries() {
        match key {
            "id" => id = value.str(),
            "text" => text = value.str(),
            "note_tweet" => note = value.get("text").and_then(Val::str),
            "author_id" => author_id = value.str(),
            "conversation_id" => conversation = value.str(),
            "lang" => lang = value.str(),
            "created_at" => created_at = value.str(),
            "public_metrics" => {
                let count = |k: &str| value.get(k).and_then(Val::u64);
                engagement = sum_counts([
                    count("like_count"),
                    count("retweet_count"),
                    count("reply_count"),
                    count("quote_count"),
                ]);
            }
            "referenced_tweets" => {
                for referenced in value.items() {
                    let id = || referenced.get("id").and_then(Val::str);
                    match referenced.get("type").and_then(Val::str) {
                        Some("replied_to") => {
                            flags.reply = true;
                            replied_to = replied_to.or_else(id);
                        }
                        Some("quoted") => {
                            flags.quote = true;
                            quoted = quoted.or_else(id);
                        }
                        Some("retweeted") => {
                            flags.repost = true;
                            retweeted = retweeted.or_else(id);
                        }
                        _ => {}
                    }
                }
            }
            "entities" => {
                flags.link |= value.get("urls").is_some_and(Val::is_nonempty_array);
                entities = Some(value);
            }
            "attachments" => {
                flags.media |= value.get("media_keys").is_some_and(Val::is_nonempty_array);
            }
            _ => {}
        }
    }
    let id = id?;
    let author_id = author_id?;
    let mut author = Author {
        id: Cow::Borrowed(author_id),
        ..Author::default()
    };
    let user = users.and_then(|users| {
        users
            .items()
            .find(|user| user.get("id").and_then(Val::str) == Some(author_id))
    });
    if let Some(user) = user {
        for (key, value) in user.entries() {
            match key {
                "username" => author.handle = value.str().map(Cow::Borrowed),
                "name" => author.name = value.str().map(Cow::Borrowed),
                "verified" => author.verified = value.bool(),
                "public_metrics" => {
                    author.followers = value.get("followers_count").and_then(Val::u64);
                }
                _ => {}
            }
        }
    }
    Some(Post {
        platform: Platform::X,
        id: Cow::Borrowed(id),
        uri: None,
        url: None,
        author,
        text: Cow::Borrowed(html::unescape_basic(note.or(text)?, buf)),
        lang: lang.map(Cow::Borrowed),
        created_at: created_at.map(Cow::Borrowed),
        time_us: None,
        engagement,
        flags,
        links: entity_links(entities, id),
        original: canonical(retweeted.or(quoted), original),
        thread: thread(replied_to, conversation.filter(|c| *c != id)),
    })
}

/// The thread of a reply: `x:<id>` of the tweet it answers and of the conversation's first
/// tweet, each kept only when it is a tweet id (digits), the root left out when it is the
/// parent.
fn thread(parent: Option<&str>, root: Option<&str>) -> Thread<'static> {
    let key = |id: &str| {
        (id.bytes().all(|b| b.is_ascii_digit()))
            .then(|| super::thread_ref(Platform::X, id))
            .flatten()
    };
    let parent = parent.and_then(key);
    let root = root.and_then(key).filter(|r| Some(r) != parent.as_ref());
    Thread { parent, root }
}

/// Decodes one v1.1 status, `search/tweets` response or stream control message.
pub(super) fn decode_v1<F: FnMut(Post<'_>)>(
    root: Val<'_, '_>,
    scratch: &mut Scratch,
    emitted: &mut Emitted,
    on_post: &mut F,
) -> Result<usize, SkipReason> {
    if !root.is_object() {
        return Err(SkipReason::WrongShape);
    }
    if let Some(statuses) = root.get("statuses") {
        if !statuses.is_array() {
            return Err(SkipReason::WrongShape);
        }
        for status in statuses.items() {
            match v1_status(status, &mut scratch.text, &mut scratch.original) {
                Some(post) => {
                    on_post(post);
                    emitted.posts += 1;
                }
                None => emitted.malformed += 1,
            }
        }
        return emitted.finish();
    }
    if let Some(post) = v1_status(root, &mut scratch.text, &mut scratch.original) {
        on_post(post);
        return Ok(1);
    }
    let skip = v1_control(root);
    if skip == SkipReason::Delete {
        // `{"delete":{"status":{"id_str":…,"user_id_str":…}}}`
        let id = root
            .get("delete")
            .and_then(|d| d.get("status"))
            .and_then(|s| s.get("id_str"))
            .and_then(Val::str);
        if let Some(key) = id
            .filter(|i| i.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|i| super::thread_ref(Platform::X, i))
        {
            scratch.deleted.push_str(&key);
        }
    }
    Err(skip)
}

/// Why a v1.1 object that is not a status is skipped.
fn v1_control(root: Val<'_, '_>) -> SkipReason {
    let Some((key, _)) = root.entries().next() else {
        return SkipReason::WrongShape;
    };
    match key {
        "delete" | "status_withheld_delete" => SkipReason::Delete,
        "limit" | "disconnect" | "warning" | "errors" | "error" => SkipReason::StreamError,
        "scrub_geo" | "status_withheld" | "user_withheld" | "friends" | "friends_str" | "event"
        | "control" | "info" => SkipReason::OtherEvent,
        // A status missing a required field (its first key is a status field).
        _ => SkipReason::WrongShape,
    }
}

/// One v1.1 / original-format status; `None` when it lacks an id, text or user id. Text is
/// unescaped into `buf` when it must be, the original's canonical id built in `original`.
fn v1_status<'s, 'f: 's>(
    status: Val<'_, 'f>,
    buf: &'s mut String,
    original: &'s mut String,
) -> Option<Post<'s>> {
    let mut id = None;
    let mut text = None;
    let mut full_text = None;
    let mut extended_text = None;
    let mut user = None;
    let mut lang = None;
    let mut created_at = None;
    let mut counts = [None; 4];
    let mut flags = PostFlags::default();
    let mut entities = None;
    let mut extended_entities = None;
    let mut retweeted = None;
    let mut quoted = None;
    let mut quoted_id = None;
    let mut replied_to = None;
    for (key, value) in status.entries() {
        match key {
            "id_str" => id = value.str(),
            "text" => text = value.str(),
            "full_text" => full_text = value.str(),
            "extended_tweet" => {
                extended_text = value.get("full_text").and_then(Val::str);
                extended_entities = value.get("entities");
                entity_flags(extended_entities, &mut flags);
                entity_flags(value.get("extended_entities"), &mut flags);
            }
            "user" => user = Some(value),
            "lang" => lang = value.str(),
            "created_at" => created_at = value.str(),
            "favorite_count" => counts[0] = value.u64(),
            "retweet_count" => counts[1] = value.u64(),
            "reply_count" => counts[2] = value.u64(),
            "quote_count" => counts[3] = value.u64(),
            "in_reply_to_status_id" => flags.reply |= !value.is_null(),
            "in_reply_to_status_id_str" => {
                flags.reply |= !value.is_null();
                replied_to = value.str();
            }
            "retweeted_status" => {
                flags.repost |= !value.is_null();
                retweeted = value.get("id_str").and_then(Val::str);
            }
            "quoted_status" => {
                flags.quote |= !value.is_null();
                quoted = value.get("id_str").and_then(Val::str);
            }
            "quoted_status_id_str" => {
                flags.quote |= !value.is_null();
                quoted_id = value.str();
            }
            "entities" => {
                entity_flags(Some(value), &mut flags);
                entities = Some(value);
            }
            "extended_entities" => entity_flags(Some(value), &mut flags),
            _ => {}
        }
    }
    let id = id?;
    let user = user?;
    let mut author = Author::default();
    let mut user_id = None;
    for (key, value) in user.entries() {
        match key {
            "id_str" => user_id = value.str(),
            "screen_name" => author.handle = value.str().map(Cow::Borrowed),
            "name" => author.name = value.str().map(Cow::Borrowed),
            "followers_count" => author.followers = value.u64(),
            "verified" => author.verified = value.bool(),
            _ => {}
        }
    }
    author.id = Cow::Borrowed(user_id?);
    Some(Post {
        platform: Platform::X,
        id: Cow::Borrowed(id),
        uri: None,
        url: None,
        author,
        text: Cow::Borrowed(html::unescape_basic(
            extended_text.or(full_text).or(text)?,
            buf,
        )),
        lang: lang.map(Cow::Borrowed),
        created_at: created_at.map(Cow::Borrowed),
        time_us: None,
        engagement: sum_counts(counts),
        flags,
        links: entity_links(extended_entities.or(entities), id),
        original: canonical(retweeted.or(quoted).or(quoted_id), original),
        thread: thread(replied_to, None),
    })
}

/// The links of an `entities` object (v2, v1.1, Gnip's `twitter_entities`): each of its
/// `urls` as `expanded_url`, else as `url`, leaving out the tweet `own_id` itself and photo
/// and video pages.
/// Nothing is allocated for a tweet without URLs.
fn entity_links<'f>(entities: Option<Val<'_, 'f>>, own_id: &str) -> Vec<Cow<'f, str>> {
    let mut links = Vec::new();
    let urls = entities.and_then(|e| e.get("urls"));
    for item in urls.into_iter().flat_map(Val::items) {
        let url = item
            .get("expanded_url")
            .and_then(Val::str)
            .or_else(|| item.get("url").and_then(Val::str));
        if let Some(url) = url.filter(|u| !is_self_or_media(u, own_id)) {
            push_link(&mut links, Cow::Borrowed(url));
        }
    }
    links
}

/// Whether `url`, on twitter.com / x.com, is a page of the tweet `id` (`…/status/<id>` or
/// `…/statuses/<id>`, with anything after it) or the photo / video page of any tweet
/// (`…/status/<other id>/photo/1`).
fn is_self_or_media(url: &str, id: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    if !(scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")) {
        return false;
    }
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = strip_prefix_ci(host, "www.")
        .or_else(|| strip_prefix_ci(host, "mobile."))
        .unwrap_or(host);
    if !(host.eq_ignore_ascii_case("twitter.com") || host.eq_ignore_ascii_case("x.com")) {
        return false;
    }
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut segments = path.split('/');
    while let Some(segment) = segments.next() {
        if segment == "status" || segment == "statuses" {
            let status = segments.next();
            let media = matches!(segments.next(), Some("photo" | "video"));
            return media || (!id.is_empty() && status == Some(id));
        }
    }
    false
}

/// `s` without `prefix` (ASCII, any case), if it starts with it.
fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// link / media from a v1.1 `entities` or `extended_entities` object.
fn entity_flags(entities: Option<Val<'_, '_>>, flags: &mut PostFlags) {
    let Some(entities) = entities else { return };
    flags.link |= entities.get("urls").is_some_and(Val::is_nonempty_array);
    flags.media |= entities.get("media").is_some_and(Val::is_nonempty_array);
}

/// Decodes one Gnip Activity Streams activity or system message.
pub(super) fn decode_activity<F: FnMut(Post<'_>)>(
    root: Val<'_, '_>,
    scratch: &mut Scratch,
    on_post: &mut F,
) -> Result<usize, SkipReason> {
    let mut verb = None;
    let mut id = None;
    let mut body = None;
    let mut long_body = None;
    let mut actor = None;
    let mut lang = None;
    let mut created_at = None;
    let mut counts = [None; 2];
    let mut flags = PostFlags::default();
    let mut entities = None;
    let mut long_entities = None;
    let mut object = None;
    let mut quoted = None;
    let mut control = None;
    for (key, value) in root.entries() {
        match key {
            "verb" => verb = value.str(),
            "id" => id = value.str(),
            "body" => body = value.str(),
            "long_object" => {
                long_body = value.get("body").and_then(Val::str);
                long_entities = value.get("twitter_entities");
                entity_flags(long_entities, &mut flags);
                entity_flags(value.get("twitter_extended_entities"), &mut flags);
            }
            "actor" => actor = Some(value),
            "twitter_lang" => lang = value.str(),
            "postedTime" => created_at = value.str(),
            "favoritesCount" => counts[0] = value.u64(),
            "retweetCount" => counts[1] = value.u64(),
            "inReplyTo" => flags.reply |= !value.is_null(),
            "object" => object = value.get("id").and_then(Val::str),
            "twitter_quoted_status" => {
                flags.quote |= !value.is_null();
                quoted = value.get("id").and_then(Val::str);
            }
            "twitter_entities" => {
                entity_flags(Some(value), &mut flags);
                entities = Some(value);
            }
            "twitter_extended_entities" => entity_flags(Some(value), &mut flags),
            "info" => control = Some(SkipReason::OtherEvent),
            "error" => control = Some(SkipReason::StreamError),
            _ => {}
        }
    }
    match verb {
        Some("post") => {}
        Some("share") => flags.repost = true,
        Some("delete") => return Err(SkipReason::Delete),
        Some(_) => return Err(SkipReason::OtherEvent),
        None => return Err(control.unwrap_or(SkipReason::WrongShape)),
    }
    let (Some(id), Some(text), Some(actor)) = (id, long_body.or(body), actor) else {
        return Err(SkipReason::WrongShape);
    };
    let mut author = Author::default();
    let mut actor_id = None;
    for (key, value) in actor.entries() {
        match key {
            "id" => actor_id = value.str(),
            "preferredUsername" => author.handle = value.str().map(Cow::Borrowed),
            "displayName" => author.name = value.str().map(Cow::Borrowed),
            "followersCount" => author.followers = value.u64(),
            "verified" => author.verified = value.bool(),
            _ => {}
        }
    }
    author.id = Cow::Borrowed(last_part(actor_id.ok_or(SkipReason::WrongShape)?));
    let id = last_part(id);
    // A share's `object` is the activity it shares; a post's is the post itself.
    let shared = object.filter(|_| flags.repost);
    let original = canonical(shared.or(quoted).map(last_part), &mut scratch.original);
    on_post(Post {
        platform: Platform::X,
        id: Cow::Borrowed(id),
        uri: None,
        url: None,
        author,
        text: Cow::Borrowed(html::unescape_basic(text, &mut scratch.text)),
        lang: lang.map(Cow::Borrowed),
        created_at: created_at.map(Cow::Borrowed),
        time_us: None,
        engagement: sum_counts(counts),
        flags,
        links: entity_links(long_entities.or(entities), id),
        original,
        thread: Default::default(),
    });
    Ok(1)
}

/// The canonical id (`x:<id>`, as [`Post::canonical_id`] gives for X) of the tweet `id`,
/// built in `buf`; `None` for no id or an empty one.
fn canonical<'s>(id: Option<&str>, buf: &'s mut String) -> Option<Cow<'s, str>> {
    let id = id.filter(|id| !id.is_empty())?;
    buf.clear();
    buf.push_str("x:");
    buf.push_str(id);
    Some(Cow::Borrowed(buf.as_str()))
}

/// `tag:search.twitter.com,2005:887453193294282752` → `887453193294282752`.
fn last_part(uri: &str) -> &str {
    uri.rsplit(':').next().unwrap_or(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_tweet_itself_and_media_from_links() {
        // (url, is the tweet 42 itself or media)
        let cases: &[(&str, bool)] = &[
            ("https://twitter.com/i/web/status/42", true),
            ("https://twitter.com/acme/status/42", true),
            ("https://x.com/acme/status/42?s=20", true),
            ("http://mobile.twitter.com/acme/statuses/42#m", true),
            ("https://WWW.Twitter.com/acme/status/42/photo/1", true),
            ("https://twitter.com/other/status/7/photo/1", true),
            ("https://twitter.com/other/status/7/video/1", true),
            ("https://twitter.com/other/status/7", false),
            ("https://twitter.com/other/status/421", false),
            ("https://twitter.com/acme", false),
            ("https://nottwitter.com/acme/status/42", false),
            ("https://example.com/status/42", false),
            ("ftp://twitter.com/acme/status/42", false),
            ("twitter.com/acme/status/42", false),
        ];
        for (url, itself) in cases {
            assert_eq!(is_self_or_media(url, "42"), *itself, "{url}");
        }
        assert!(!is_self_or_media("https://twitter.com/i/web/status/", ""));
    }
}
