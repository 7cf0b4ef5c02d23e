//! Bluesky Jetstream v1: one event → one post (a created `app.bsky.feed.post`) or a skip.
//!
//! An event is `{"did", "time_us", "kind", "commit" | "identity" | "account"}`. Only
//! `kind: commit`, `operation: create`, `collection: app.bsky.feed.post` is a post:
//! id = `rkey`, author.id = `did` (Jetstream carries no handle or follower count),
//! text = `record.text` (`""` is a valid post; a missing or non-string text is
//! [`SkipReason::WrongShape`]), lang = the first of `record.langs`, created_at =
//! `record.createdAt`, time_us = the event's cursor. Flags: reply = `record.reply` present;
//! quote = embed `app.bsky.embed.record` or `recordWithMedia`; link = a facet feature
//! `app.bsky.richtext.facet#link` or embed `external`; media = embed `images` / `video`, or
//! the media half of `recordWithMedia` (an `external` there counts as a link instead).
//!
//! Everything else is skipped under its own reason: the operation decides first (`delete` →
//! Delete, `update` → Update, whatever the collection), then the collection of a create
//! (like, repost, follow, other `app.bsky.graph.*` → Graph, any other lexicon →
//! OtherRecord); `kind: identity` / `account` → Identity / Account.
//!
//! This is the hottest path of the pipeline: each object's keys are matched in one pass.

use std::borrow::Cow;

use super::tape::Val;
use crate::post::{Author, Platform, Post, PostFlags};
use crate::skip::SkipReason;

const POST: &str = "app.bsky.feed.post";

/// Decodes one Jetstream event.
pub(super) fn decode<F: FnMut(Post<'_>)>(
    root: Val<'_, '_>,
    on_post: &mut F,
) -> Result<usize, SkipReason> {
    let mut did = None;
    let mut time_us = None;
    let mut kind = None;
    let mut commit = None;
    for (key, value) in root.entries() {
        match key {
            "did" => did = value.str(),
            "time_us" => time_us = value.u64(),
            "kind" => kind = value.str(),
            "commit" => commit = Some(value),
            _ => {}
        }
    }
    match kind {
        Some("commit") => {}
        Some("identity") => return Err(SkipReason::Identity),
        Some("account") => return Err(SkipReason::Account),
        Some(_) => return Err(SkipReason::OtherEvent),
        None => return Err(SkipReason::WrongShape),
    }

    let mut operation = None;
    let mut collection = None;
    let mut rkey = None;
    let mut record = None;
    for (key, value) in commit.ok_or(SkipReason::WrongShape)?.entries() {
        match key {
            "operation" => operation = value.str(),
            "collection" => collection = value.str(),
            "rkey" => rkey = value.str(),
            "record" => record = Some(value),
            _ => {}
        }
    }
    match operation {
        Some("create") => {}
        Some("delete") => return Err(SkipReason::Delete),
        Some("update") => return Err(SkipReason::Update),
        _ => return Err(SkipReason::WrongShape),
    }
    match collection.ok_or(SkipReason::WrongShape)? {
        POST => {}
        "app.bsky.feed.like" => return Err(SkipReason::Like),
        "app.bsky.feed.repost" => return Err(SkipReason::Repost),
        "app.bsky.graph.follow" => return Err(SkipReason::Follow),
        c if c.starts_with("app.bsky.graph.") => return Err(SkipReason::Graph),
        _ => return Err(SkipReason::OtherRecord),
    }
    let (Some(did), Some(rkey), Some(record)) = (did, rkey, record) else {
        return Err(SkipReason::WrongShape);
    };

    let mut text = None;
    let mut created_at = None;
    let mut lang = None;
    let mut flags = PostFlags::default();
    for (key, value) in record.entries() {
        match key {
            "text" => text = value.str(),
            "createdAt" => created_at = value.str(),
            "langs" => lang = value.items().next().and_then(Val::str),
            "reply" => flags.reply = !value.is_null(),
            "embed" => embed_flags(value, &mut flags),
            "facets" => flags.link |= has_link_facet(value),
            _ => {}
        }
    }
    let text = text.ok_or(SkipReason::WrongShape)?;

    on_post(Post {
        platform: Platform::Bluesky,
        id: Cow::Borrowed(rkey),
        uri: None,
        url: None,
        author: Author {
            id: Cow::Borrowed(did),
            ..Author::default()
        },
        text: Cow::Borrowed(text),
        lang: lang.map(Cow::Borrowed),
        created_at: created_at.map(Cow::Borrowed),
        time_us,
        engagement: None,
        flags,
    });
    Ok(1)
}

/// Sets quote / link / media from an `app.bsky.embed.*` value.
fn embed_flags(embed: Val<'_, '_>, flags: &mut PostFlags) {
    match embed.get("$type").and_then(Val::str) {
        Some("app.bsky.embed.record") => flags.quote = true,
        Some("app.bsky.embed.recordWithMedia") => {
            flags.quote = true;
            match embed
                .get("media")
                .and_then(|m| m.get("$type"))
                .and_then(Val::str)
            {
                Some("app.bsky.embed.external") => flags.link = true,
                _ => flags.media = true,
            }
        }
        Some("app.bsky.embed.external") => flags.link = true,
        Some("app.bsky.embed.images" | "app.bsky.embed.video") => flags.media = true,
        _ => {}
    }
}

/// Whether any facet carries a link feature.
fn has_link_facet(facets: Val<'_, '_>) -> bool {
    facets.items().any(|facet| {
        facet.get("features").is_some_and(|features| {
            features.items().any(|feature| {
                feature.get("$type").and_then(Val::str) == Some("app.bsky.richtext.facet#link")
            })
        })
    })
}
