//! Mastodon: a Status entity, raw or in a streaming envelope → one post (platform Mastodon).
//!
//! A Status gives id, `uri`, `url`, the author from `account` (`id`, `acct` as handle,
//! `display_name`, `followers_count`; Mastodon has no verified mark), lang = `language`,
//! `created_at`, engagement = favourites + reblogs + replies counts, and text = the HTML
//! `content` as plain text (see [`super::html`]), preceded by the content warning
//! (`spoiler_text`) and a blank line when there is one, since a warning often names the very
//! subject of the post. A reblog's own `content` is empty: its text, link and media then come
//! from the reblogged status (as an X retweet carries `RT @user: …`), while id and author stay
//! the reblogger's. Flags: reply = `in_reply_to_id` non-null, repost = `reblog` non-null,
//! quote = `quote` non-null, link = a `card` or an `<a href>` in the content that is not a
//! mention or hashtag, media = `media_attachments` non-empty. Original = the reblogged
//! status's `uri`, else the quoted status's (`quote.quoted_status.uri`, or `quote.uri` where
//! a server puts the status itself in `quote`): the same URI that status's own post gets as
//! its id. Links: the `href` of every
//! such `<a>` in document order, then the `card`'s `url` (the preview Mastodon built for one
//! of them, so usually the same URL and kept once); a reblog's come from the reblogged status
//! with its text.
//!
//! The streaming API's WebSocket envelope `{"stream", "event", "payload"}` carries the status
//! as a JSON **string**: for `update` the (already unescaped) payload is copied into a reused
//! buffer and parsed in place with the same simd-json buffers. `status.update` (an edit) →
//! Update, `delete` → Delete, `filters_changed` → StreamError, any other event
//! (notifications, conversations, announcements) → OtherEvent.

use std::borrow::Cow;

use simd_json::Buffers;

use super::tape::Val;
use super::{html, push_link, sum_counts, with_inner_document, Scratch};
use crate::post::{Author, Platform, Post, PostFlags, Thread};
use crate::skip::SkipReason;

/// Decodes one status or streaming envelope.
pub(super) fn decode<F: FnMut(Post<'_>)>(
    root: Val<'_, '_>,
    buffers: &mut Buffers,
    scratch: &mut Scratch,
    on_post: &mut F,
) -> Result<usize, SkipReason> {
    let mut envelope = false;
    let mut event = None;
    let mut payload = None;
    for (key, value) in root.entries() {
        match key {
            "event" => {
                envelope = true;
                event = value.str();
            }
            "payload" => payload = value.str(),
            _ => {}
        }
    }
    if !envelope {
        return status(root, scratch, on_post);
    }
    match event {
        Some("update") => {
            let payload = payload.ok_or(SkipReason::WrongShape)?;
            scratch.payload.clear();
            scratch.payload.extend_from_slice(payload.as_bytes());
            with_inner_document(buffers, scratch, |inner, scratch| {
                status(inner, scratch, on_post)
            })
        }
        Some("status.update") => Err(SkipReason::Update),
        Some("delete") => {
            // The payload is the deleted status's id on this server.
            if let Some(key) = payload.and_then(|id| super::thread_ref(Platform::Mastodon, id)) {
                scratch.deleted.push_str(&key);
            }
            Err(SkipReason::Delete)
        }
        Some("filters_changed") => Err(SkipReason::StreamError),
        Some(_) => Err(SkipReason::OtherEvent),
        None => Err(SkipReason::WrongShape),
    }
}

/// One Status entity.
fn status<F: FnMut(Post<'_>)>(
    root: Val<'_, '_>,
    scratch: &mut Scratch,
    on_post: &mut F,
) -> Result<usize, SkipReason> {
    let mut id = None;
    let mut uri = None;
    let mut url = None;
    let mut account = None;
    let mut content = None;
    let mut spoiler = None;
    let mut lang = None;
    let mut created_at = None;
    let mut reblog = None;
    let mut quote = None;
    let mut reply_to = None;
    let mut card = None;
    let mut media = false;
    let mut counts = [None; 3];
    let mut flags = PostFlags::default();
    for (key, value) in root.entries() {
        match key {
            "id" => id = value.str(),
            "uri" => uri = value.str(),
            "url" => url = value.str(),
            "account" => account = Some(value),
            "content" => content = value.str(),
            "spoiler_text" => spoiler = value.str(),
            "language" => lang = value.str(),
            "created_at" => created_at = value.str(),
            "in_reply_to_id" => {
                flags.reply = !value.is_null();
                reply_to = value.str();
            }
            "reblog" => reblog = value.non_null(),
            "quote" => {
                flags.quote = !value.is_null();
                quote = value.non_null();
            }
            "card" => card = value.non_null(),
            "media_attachments" => media = value.is_nonempty_array(),
            "favourites_count" => counts[0] = value.u64(),
            "reblogs_count" => counts[1] = value.u64(),
            "replies_count" => counts[2] = value.u64(),
            _ => {}
        }
    }
    let (Some(id), Some(account), Some(mut content)) = (id, account, content) else {
        return Err(SkipReason::WrongShape);
    };
    flags.repost = reblog.is_some();
    let original = reblog
        .and_then(|r| r.get("uri"))
        .or_else(|| quote.and_then(quoted_uri))
        .and_then(Val::str)
        .filter(|uri| !uri.is_empty());
    if let Some(original) = reblog.filter(|_| content.is_empty()) {
        content = original.get("content").and_then(Val::str).unwrap_or("");
        card = original.get("card").and_then(Val::non_null);
        media = original
            .get("media_attachments")
            .is_some_and(Val::is_nonempty_array);
    }

    let mut author = Author::default();
    let mut account_id = None;
    for (key, value) in account.entries() {
        match key {
            "id" => account_id = value.str(),
            "acct" => author.handle = value.str().map(Cow::Borrowed),
            "display_name" => author.name = value.str().map(Cow::Borrowed),
            "followers_count" => author.followers = value.u64(),
            _ => {}
        }
    }
    author.id = Cow::Borrowed(account_id.ok_or(SkipReason::WrongShape)?);

    let text = &mut scratch.text;
    text.clear();
    if let Some(spoiler) = spoiler.filter(|s| !s.is_empty()) {
        text.push_str(spoiler);
        text.push_str("\n\n");
    }
    let mut links = Vec::new();
    let facts = html::to_text(content, text, &mut links);
    if let Some(url) = card.and_then(|c| c.get("url")).and_then(Val::str) {
        push_link(&mut links, Cow::Borrowed(url));
    }
    flags.link = card.is_some() || facts.link;
    flags.media = media;

    on_post(Post {
        platform: Platform::Mastodon,
        id: Cow::Borrowed(id),
        uri: uri.map(Cow::Borrowed),
        url: url.map(Cow::Borrowed),
        author,
        text: Cow::Borrowed(text.as_str()),
        lang: lang.map(Cow::Borrowed),
        created_at: created_at.map(Cow::Borrowed),
        time_us: None,
        engagement: sum_counts(counts),
        flags,
        links,
        original: original.map(Cow::Borrowed),
        thread: Thread {
            parent: reply_to.and_then(|id| super::thread_ref(Platform::Mastodon, id)),
            root: None,
        },
    });
    Ok(1)
}

/// Where a `quote` keeps the quoted status's URI: Mastodon's Quote entity (4.4+) holds the
/// status in `quoted_status`, while servers that shipped quotes earlier put the status itself
/// in `quote`. A shallow quote (`quoted_status_id` only) gives a local id, not a URI: none.
fn quoted_uri<'t, 'f>(quote: Val<'t, 'f>) -> Option<Val<'t, 'f>> {
    match quote.get("quoted_status") {
        Some(status) => status.get("uri"),
        None => quote.get("uri"),
    }
}

/// How an event of Mastodon's streaming API is counted: `None` for `update` (a status, the one
/// event that is a post to decode), else the skip reason it is counted under. The SSE source
/// reads event names from the stream; the decoder only ever sees `update` data.
pub fn event_skip(event: &[u8]) -> Option<SkipReason> {
    match event {
        b"update" => None,
        b"delete" => Some(SkipReason::Delete),
        b"status.update" => Some(SkipReason::Update),
        b"filters_changed" => Some(SkipReason::StreamError),
        _ => Some(SkipReason::OtherEvent),
    }
}
