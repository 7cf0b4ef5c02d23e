//! Reddit: a `t1` comment or `t3` submission, alone or in a `Listing` → posts (platform
//! Reddit).
//!
//! Both kinds give id = `name` (the `t1_…` / `t3_…` fullname), author.id = `author_fullname`
//! (older payloads lack it: then `author`), handle = `author`, uri = url =
//! `https://www.reddit.com` + `permalink` (older comments lack a permalink: then the
//! equivalent `/comments/<link id>/_/<comment id>/`), created_at = `created_utc` (seconds)
//! written as an RFC 3339 UTC string. A comment's text is `body` and it is always a reply; its
//! engagement is `score`. A submission's text is `title`, then a blank line and `selftext`
//! when there is one; link = not `is_self`; media = `post_hint` image / video, `is_video` or
//! `is_gallery`; engagement = `score` + `num_comments`. A negative score counts as 0. A link
//! submission's link is its `url` (left out when it is the submission's own page, as a
//! self post's `url` is). A comment has no links: Reddit gives no field for the links in a
//! comment's markdown, and its `link_url` is the link of the submission it answers, not one
//! the comment carries. A crosspost (`crosspost_parent` non-null) is a repost; its original
//! is the parent's uri, `https://www.reddit.com` + the `permalink` of the first
//! `crosspost_parent_list` entry (the parent's own post has that uri as its id). Without that
//! list only the parent's fullname is known, which is not the parent's id: no original.
//! Reddit's JSON escapes `&`, `<` and `>` in text as HTML references unless the client asked
//! for `raw_json=1`; they are decoded either way (a user who literally typed `&amp;` under
//! `raw_json=1` is the rare loser).
//!
//! A Listing yields each of its `t1` / `t3` children; other children (`more` stubs, accounts,
//! subreddits) are not posts. Any other thing kind → OtherEvent. Built strings (a joined
//! text, a permalink, a timestamp) go into the decoder's scratch buffers.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::tape::Val;
use super::{html, push_link, Emitted, Scratch};
use crate::post::{Author, Platform, Post, PostFlags, Thread};
use crate::skip::SkipReason;
use crate::timestamp::write_rfc3339;

const ORIGIN: &str = "https://www.reddit.com";

/// Whether `kind` is a Reddit thing kind (`t1` … `t6`).
pub(super) fn is_thing_kind(kind: &str) -> bool {
    matches!(kind, "t1" | "t2" | "t3" | "t4" | "t5" | "t6" | "more")
}

/// Decodes one Listing or thing.
pub(super) fn decode<F: FnMut(Post<'_>)>(
    root: Val<'_, '_>,
    scratch: &mut Scratch,
    emitted: &mut Emitted,
    on_post: &mut F,
) -> Result<usize, SkipReason> {
    let kind = root
        .get("kind")
        .and_then(Val::str)
        .ok_or(SkipReason::WrongShape)?;
    let data = root
        .get("data")
        .filter(|d| d.is_object())
        .ok_or(SkipReason::WrongShape)?;
    if kind != "Listing" {
        return match thing(kind, data, scratch, on_post) {
            Thing::Post => Ok(1),
            Thing::NotAPost => Err(SkipReason::OtherEvent),
            Thing::Malformed => Err(SkipReason::WrongShape),
        };
    }
    let children = data
        .get("children")
        .filter(|c| c.is_array())
        .ok_or(SkipReason::WrongShape)?;
    for child in children.items() {
        let kind = child.get("kind").and_then(Val::str);
        let data = child.get("data").filter(|d| d.is_object());
        let outcome = match (kind, data) {
            (Some(kind), Some(data)) => thing(kind, data, scratch, on_post),
            _ => Thing::Malformed,
        };
        match outcome {
            Thing::Post => emitted.posts += 1,
            Thing::NotAPost => {}
            Thing::Malformed => emitted.malformed += 1,
        }
    }
    emitted.finish()
}

/// What one thing turned out to be.
enum Thing {
    Post,
    NotAPost,
    Malformed,
}

/// Decodes the `data` of one thing of `kind`, emitting it if it is a post.
fn thing<F: FnMut(Post<'_>)>(
    kind: &str,
    data: Val<'_, '_>,
    scratch: &mut Scratch,
    on_post: &mut F,
) -> Thing {
    let comment = match kind {
        "t1" => true,
        "t3" => false,
        _ => return Thing::NotAPost,
    };
    let mut name = None;
    let mut id = None;
    let mut link_id = None;
    let mut parent_id = None;
    let mut author = None;
    let mut author_fullname = None;
    let mut body = None;
    let mut title = None;
    let mut selftext = None;
    let mut permalink = None;
    let mut created = None;
    let mut score = None;
    let mut comments = None;
    let mut url = None;
    let mut crosspost = None;
    let mut flags = PostFlags {
        reply: comment,
        ..PostFlags::default()
    };
    for (key, value) in data.entries() {
        match key {
            "name" => name = value.str(),
            "id" => id = value.str(),
            "link_id" => link_id = value.str(),
            "parent_id" if comment => parent_id = value.str(),
            "author" => author = value.str(),
            "author_fullname" => author_fullname = value.str(),
            "body" => body = value.str(),
            "title" => title = value.str(),
            "selftext" => selftext = value.str(),
            "permalink" => permalink = value.str(),
            "created_utc" => created = value.f64(),
            "score" => score = value.i64(),
            "num_comments" if !comment => comments = value.u64(),
            "url" if !comment => url = value.str(),
            "is_self" if !comment => flags.link = value.bool() == Some(false),
            "post_hint" if !comment => {
                flags.media |= matches!(value.str(), Some("image" | "hosted:video" | "rich:video"));
            }
            "is_video" | "is_gallery" if !comment => flags.media |= value.bool() == Some(true),
            "crosspost_parent" if !comment => flags.repost |= !value.is_null(),
            "crosspost_parent_list" if !comment => {
                crosspost = value
                    .items()
                    .next()
                    .and_then(|parent| parent.get("permalink"))
                    .and_then(Val::str);
            }
            _ => {}
        }
    }
    let (Some(name), Some(author)) = (name, author) else {
        return Thing::Malformed;
    };

    let text: &str = if comment {
        let Some(body) = body else {
            return Thing::Malformed;
        };
        html::unescape_basic(body, &mut scratch.text)
    } else {
        let Some(title) = title else {
            return Thing::Malformed;
        };
        match selftext.filter(|s| !s.is_empty()) {
            None => html::unescape_basic(title, &mut scratch.text),
            Some(selftext) => {
                scratch.text.clear();
                html::push_unescaped_basic(title, &mut scratch.text);
                scratch.text.push_str("\n\n");
                html::push_unescaped_basic(selftext, &mut scratch.text);
                &scratch.text
            }
        }
    };

    scratch.uri.clear();
    match (permalink, link_id, id) {
        (Some(permalink), _, _) => {
            scratch.uri.push_str(ORIGIN);
            scratch.uri.push_str(permalink);
        }
        (None, Some(link), Some(id)) if comment => {
            let link = link.strip_prefix("t3_").unwrap_or(link);
            // Writing to a String cannot fail.
            let _ = write!(scratch.uri, "{ORIGIN}/comments/{link}/_/{id}/");
        }
        _ => {}
    }
    let uri = (!scratch.uri.is_empty()).then_some(scratch.uri.as_str());

    let mut links = Vec::new();
    if let Some(url) = url.filter(|u| flags.link && !is_own_page(u, permalink)) {
        push_link(&mut links, unescape_url(url));
    }

    scratch.original.clear();
    let original = crosspost.filter(|p| !p.is_empty()).map(|permalink| {
        scratch.original.push_str(ORIGIN);
        scratch.original.push_str(permalink);
        Cow::Borrowed(scratch.original.as_str())
    });

    scratch.stamp.clear();
    let created_at = created.and_then(|secs| rfc3339(secs, &mut scratch.stamp));

    let score = score.map(|s| u64::try_from(s).unwrap_or(0));
    let engagement = match comments {
        Some(n) => Some(score.unwrap_or(0).saturating_add(n)),
        None => score,
    };

    on_post(Post {
        platform: Platform::Reddit,
        id: Cow::Borrowed(name),
        uri: uri.map(Cow::Borrowed),
        url: uri.map(Cow::Borrowed),
        author: Author {
            id: Cow::Borrowed(author_fullname.unwrap_or(author)),
            handle: Some(Cow::Borrowed(author)),
            ..Author::default()
        },
        text: Cow::Borrowed(text),
        lang: None,
        created_at: created_at.map(Cow::Borrowed),
        time_us: None,
        engagement,
        flags,
        links,
        original,
        thread: thread(parent_id, link_id.filter(|_| comment)),
    });
    Thing::Post
}

/// The thread of a comment: the thing it answers (`parent_id`, a comment or the submission)
/// and its submission (`link_id`), as `reddit:<fullname>`, the root left out when it is the
/// parent.
fn thread<'a>(parent: Option<&str>, root: Option<&str>) -> Thread<'a> {
    let parent = parent.and_then(|p| super::thread_ref(Platform::Reddit, p));
    let root = root
        .and_then(|r| super::thread_ref(Platform::Reddit, r))
        .filter(|r| Some(r) != parent.as_ref());
    Thread { parent, root }
}

/// Whether `url` is the page of the submission whose permalink is `permalink`
/// (`https://www.reddit.com/r/x/comments/…/`, on any reddit.com host).
fn is_own_page(url: &str, permalink: Option<&str>) -> bool {
    let Some(permalink) = permalink.filter(|p| !p.is_empty()) else {
        return false;
    };
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let reddit = host.eq_ignore_ascii_case("reddit.com")
        || host
            .len()
            .checked_sub(".reddit.com".len())
            .and_then(|at| host.get(at..))
            .is_some_and(|tail| tail.eq_ignore_ascii_case(".reddit.com"));
    reddit && path.split(['?', '#']).next() == Some(permalink)
}

/// A submission `url` with the references Reddit escapes without `raw_json=1` (`&amp;`,
/// `&lt;`, `&gt;`) decoded: borrowed unless it holds one.
fn unescape_url(url: &str) -> Cow<'_, str> {
    if url.contains('&') && ["&amp;", "&lt;", "&gt;"].iter().any(|r| url.contains(r)) {
        let mut out = String::with_capacity(url.len());
        html::push_unescaped_basic(url, &mut out);
        Cow::Owned(out)
    } else {
        Cow::Borrowed(url)
    }
}

/// Writes `secs` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` into `out` (fractions are
/// dropped); `None` outside years 1970..=9999 or for a non-finite value.
pub(super) fn rfc3339(secs: f64, out: &mut String) -> Option<&str> {
    const MAX: f64 = 253_402_300_799.0; // 9999-12-31T23:59:59Z
    if !(0.0..=MAX).contains(&secs) {
        return None;
    }
    // In range and non-negative, so the truncation is exact on the integer part.
    #[allow(clippy::cast_possible_truncation)]
    let secs = secs.floor() as i64;
    write_rfc3339(out, secs, 0, 0);
    Some(out.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_rfc3339_utc() {
        let cases: &[(f64, Option<&str>)] = &[
            (0.0, Some("1970-01-01T00:00:00Z")),
            (1_411_010_034.0, Some("2014-09-18T03:13:54Z")),
            (1_492_274_908.9, Some("2017-04-15T16:48:28Z")),
            (951_782_400.0, Some("2000-02-29T00:00:00Z")),
            (1_709_164_800.0, Some("2024-02-29T00:00:00Z")),
            (4_107_542_400.0, Some("2100-03-01T00:00:00Z")),
            (253_402_300_799.0, Some("9999-12-31T23:59:59Z")),
            (253_402_300_800.0, None),
            (-1.0, None),
            (f64::NAN, None),
            (f64::INFINITY, None),
        ];
        for (secs, want) in cases {
            let mut out = String::new();
            assert_eq!(rfc3339(*secs, &mut out), *want, "{secs}");
        }
    }
}
