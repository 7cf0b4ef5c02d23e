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
//! Links: the `uri` of every link facet feature and the `external.uri` of an `external`
//! embed (or of an `external` as the media of `recordWithMedia`), in document order; the
//! text only shows them shortened (`acme.com/blog/…`). Original (the quoted post):
//! `embed.record.uri` of an `app.bsky.embed.record` embed, `embed.record.record.uri` of a
//! `recordWithMedia`, kept only when it names an `app.bsky.feed.post` (a record embed can
//! also show a feed, a list or a starter pack); such a URI is already the quoted post's
//! canonical id. Repost records (`app.bsky.feed.repost`) are skipped, not posts: they carry
//! no text for a rule to match, so their `subject.uri` is not read.
//!
//! Everything else is skipped under its own reason: the operation decides first (`delete` →
//! Delete, `update` → Update, whatever the collection), then the collection of a create
//! (like, repost, follow, other `app.bsky.graph.*` → Graph, any other lexicon →
//! OtherRecord); `kind: identity` / `account` → Identity / Account.
//!
//! This is the hottest path of the pipeline, so it has two readers with one meaning:
//! [`read`] walks the frame's bytes once without building anything ([`super::scan`]) and
//! handles every ordinary event; [`decode`] walks simd-json's tape and handles whatever the
//! fast reader is unsure of (malformed frames, escaped keys, duplicate containers…). Both
//! keep the same rules for repeated keys: a later scalar field replaces an earlier one,
//! flags and links from every `embed` / `facets` add up, the first `embed` that quotes gives
//! the original, and inside an embed or facet the first `$type` / `media` / `features` /
//! `external` / `record` / `uri` counts (as [`Val::get`] finds it). Both hand the same URIs
//! in the same order to [`super::push_link`], which filters them, so their links agree too.

use std::borrow::Cow;

use super::push_link;
use super::scan::{unescape_in_place, Cursor, RawStr, Scan, Unsure};
use super::tape::Val;
use crate::post::{Author, Platform, Post, PostFlags, Thread, MAX_LINKS};
use crate::skip::SkipReason;

const POST: &[u8] = b"app.bsky.feed.post";
const LINK_FEATURE: &[u8] = b"app.bsky.richtext.facet#link";
const EXTERNAL: &[u8] = b"app.bsky.embed.external";
const RECORD: &[u8] = b"app.bsky.embed.record";
const RECORD_WITH_MEDIA: &[u8] = b"app.bsky.embed.recordWithMedia";

/// Link URIs the fast reader collects from one event before it hands the event to the tape
/// decoder instead. Four times what a post keeps, so that duplicates and non-web URIs cannot
/// push a keepable link out; real posts have a handful, and the rare event with more is read
/// by the tape decoder, which filters as it goes and needs no such bound.
const MAX_LINK_CANDIDATES: usize = 4 * MAX_LINKS;

/// Decides from an event's `kind` and its commit's `operation` and `collection` whether it
/// is a post create, or which skip it is.
fn classify(
    kind: Option<&[u8]>,
    operation: Option<&[u8]>,
    collection: Option<&[u8]>,
) -> Result<(), SkipReason> {
    match kind {
        Some(b"commit") => {}
        Some(b"identity") => return Err(SkipReason::Identity),
        Some(b"account") => return Err(SkipReason::Account),
        Some(_) => return Err(SkipReason::OtherEvent),
        None => return Err(SkipReason::WrongShape),
    }
    match operation {
        Some(b"create") => {}
        Some(b"delete") => return Err(SkipReason::Delete),
        Some(b"update") => return Err(SkipReason::Update),
        _ => return Err(SkipReason::WrongShape),
    }
    match collection.ok_or(SkipReason::WrongShape)? {
        POST => Ok(()),
        b"app.bsky.feed.like" => Err(SkipReason::Like),
        b"app.bsky.feed.repost" => Err(SkipReason::Repost),
        b"app.bsky.graph.follow" => Err(SkipReason::Follow),
        c if c.starts_with(b"app.bsky.graph.") => Err(SkipReason::Graph),
        _ => Err(SkipReason::OtherRecord),
    }
}

/// Where an embed keeps the URI of its link card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EmbedLink {
    /// No link card.
    None,
    /// `embed.external.uri` (an `external` embed).
    External,
    /// `embed.media.external.uri` (a `recordWithMedia` whose media is `external`).
    MediaExternal,
}

/// Sets quote / link / media from an embed's `$type` and, for `recordWithMedia`, the
/// `$type` of its `media`; says where the embed's link URI is.
fn embed_flags(
    embed_type: Option<&[u8]>,
    media_type: Option<&[u8]>,
    flags: &mut PostFlags,
) -> EmbedLink {
    match embed_type {
        Some(RECORD) => flags.quote = true,
        Some(RECORD_WITH_MEDIA) => {
            flags.quote = true;
            match media_type {
                Some(EXTERNAL) => {
                    flags.link = true;
                    return EmbedLink::MediaExternal;
                }
                _ => flags.media = true,
            }
        }
        Some(EXTERNAL) => {
            flags.link = true;
            return EmbedLink::External;
        }
        Some(b"app.bsky.embed.images" | b"app.bsky.embed.video") => flags.media = true,
        _ => {}
    }
    EmbedLink::None
}

/// The fields of a post create, as the event carries them.
struct Fields<'a, S> {
    did: S,
    rkey: S,
    text: S,
    created_at: Option<S>,
    lang: Option<S>,
    time_us: Option<u64>,
    flags: PostFlags,
    links: Vec<Cow<'a, str>>,
    original: Option<S>,
    /// `reply.parent.uri` and `reply.root.uri`.
    parent: Option<S>,
    root: Option<S>,
}

impl<'a> Fields<'a, &'a str> {
    fn into_post(self) -> Post<'a> {
        Post {
            platform: Platform::Bluesky,
            id: Cow::Borrowed(self.rkey),
            uri: None,
            url: None,
            author: Author {
                id: Cow::Borrowed(self.did),
                ..Author::default()
            },
            text: Cow::Borrowed(self.text),
            lang: self.lang.map(Cow::Borrowed),
            created_at: self.created_at.map(Cow::Borrowed),
            time_us: self.time_us,
            engagement: None,
            flags: self.flags,
            links: self.links,
            original: self.original.and_then(quoted_post).map(Cow::Borrowed),
            thread: thread(self.parent, self.root),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Fast reader
// ---------------------------------------------------------------------------------------

/// What the fast reader collects from one event.
#[derive(Default)]
struct Event {
    did: Option<RawStr>,
    time_us: Option<u64>,
    kind: Option<RawStr>,
    commit: bool,
    operation: Option<RawStr>,
    collection: Option<RawStr>,
    rkey: Option<RawStr>,
    record: bool,
    text: Option<RawStr>,
    created_at: Option<RawStr>,
    lang: Option<RawStr>,
    flags: PostFlags,
    /// The URI the first quoting embed names (not yet checked to be a post).
    original: Option<RawStr>,
    /// `reply.parent.uri`, `reply.root.uri` (not yet checked to be posts).
    parent: Option<RawStr>,
    root: Option<RawStr>,
}

/// Reads one Jetstream event from `frame` without a tape: `Some` with the same result
/// [`decode`] gives, or `None` when the reader is unsure of the frame (then nothing in it
/// has changed and the caller decodes it with simd-json).
///
/// `link_spans` is the caller's reusable buffer for the link URIs found on the way.
pub(super) fn read<F: FnMut(Post<'_>)>(
    frame: &mut [u8],
    max_depth: usize,
    link_spans: &mut Vec<RawStr>,
    deleted: &mut String,
    on_post: &mut F,
) -> Option<Result<usize, SkipReason>> {
    link_spans.clear();
    let event = scan_event(frame, max_depth, link_spans).ok()?;
    let plain = |s: Option<RawStr>| s.map(|s| s.plain(frame)).transpose();
    let decided = classify(
        plain(event.kind).ok()?,
        plain(event.operation).ok()?,
        plain(event.collection).ok()?,
    );
    if let Err(skip) = decided {
        if skip == SkipReason::Delete && plain(event.collection).ok()? == Some(POST) {
            let did = plain(event.did)
                .ok()?
                .and_then(|d| std::str::from_utf8(d).ok());
            let rkey = plain(event.rkey)
                .ok()?
                .and_then(|r| std::str::from_utf8(r).ok());
            name_deleted(did, rkey, deleted);
        }
        return Some(Err(skip));
    }
    let (Some(did), Some(rkey), true, Some(text)) =
        (event.did, event.rkey, event.record, event.text)
    else {
        return Some(Err(SkipReason::WrongShape));
    };
    // The frame is accepted: from here on it may be rewritten.
    let mut spans = [
        Some(did),
        Some(rkey),
        Some(text),
        event.created_at,
        event.lang,
        event.original,
        event.parent,
        event.root,
    ];
    for span in spans.iter_mut().flatten() {
        if span.escaped {
            span.end = unescape_in_place(frame, *span);
        }
    }
    // Links are read out of line and only when there are some, so that a post without links
    // (four in five) is built exactly as before.
    if !link_spans.is_empty() {
        unescape_links(frame, link_spans);
    }
    let frame: &[u8] = frame;
    let links = if link_spans.is_empty() {
        Vec::new()
    } else {
        read_links(frame, link_spans)
    };
    let value = |s: Option<RawStr>| s.and_then(|s| simdutf8::basic::from_utf8(s.raw(frame)).ok());
    let [did, rkey, text, created_at, lang, original, parent, root] = spans.map(value);
    let (Some(did), Some(rkey), Some(text)) = (did, rkey, text) else {
        // Unreachable: the reader checked these strings' UTF-8 and escapes.
        return Some(Err(SkipReason::InvalidUtf8));
    };
    on_post(
        Fields {
            did,
            rkey,
            text,
            created_at,
            lang,
            time_us: event.time_us,
            flags: event.flags,
            links,
            original,
            parent,
            root,
        }
        .into_post(),
    );
    Some(Ok(1))
}

/// Unescapes the link URIs `spans` of an accepted frame in place.
#[inline(never)]
fn unescape_links(frame: &mut [u8], spans: &mut [RawStr]) {
    for span in spans.iter_mut() {
        if span.escaped {
            span.end = unescape_in_place(frame, *span);
        }
    }
}

/// The link URIs `spans` (unescaped) that are links (see [`push_link`]).
#[inline(never)]
fn read_links<'f>(frame: &'f [u8], spans: &[RawStr]) -> Vec<Cow<'f, str>> {
    let mut links = Vec::new();
    for span in spans {
        if let Ok(uri) = simdutf8::basic::from_utf8(span.raw(frame)) {
            push_link(&mut links, Cow::Borrowed(uri));
        }
    }
    links
}

/// Reads and checks the whole event, collecting the fields a post needs (link URIs into
/// `links`).
fn scan_event(frame: &[u8], max_depth: usize, links: &mut Vec<RawStr>) -> Scan<Event> {
    let mut event = Event::default();
    let mut cursor = Cursor::new(frame, max_depth);
    cursor.object(|c, key| {
        match key {
            b"did" => event.did = c.string_or_skip()?,
            b"time_us" => event.time_us = c.u64_or_skip()?,
            b"kind" => event.kind = c.string_or_skip()?,
            b"commit" => {
                first_time(&mut event.commit)?;
                scan_commit(c, &mut event, links)?;
            }
            _ => c.skip()?,
        }
        Ok(())
    })?;
    cursor.finish()?;
    Ok(event)
}

/// Marks a container key as seen; [`Unsure`] the second time, since a repeated container
/// would need the tape's last-one-wins.
fn first_time(seen: &mut bool) -> Scan<()> {
    if std::mem::replace(seen, true) {
        Err(Unsure)
    } else {
        Ok(())
    }
}

fn scan_commit(c: &mut Cursor<'_>, event: &mut Event, links: &mut Vec<RawStr>) -> Scan<()> {
    c.object_or_skip(|c, key| {
        match key {
            b"operation" => event.operation = c.string_or_skip()?,
            b"collection" => event.collection = c.string_or_skip()?,
            b"rkey" => event.rkey = c.string_or_skip()?,
            b"record" => {
                first_time(&mut event.record)?;
                scan_record(c, event, links)?;
            }
            _ => c.skip()?,
        }
        Ok(())
    })
}

fn scan_record(c: &mut Cursor<'_>, event: &mut Event, links: &mut Vec<RawStr>) -> Scan<()> {
    c.object_or_skip(|c, key| {
        match key {
            b"text" => event.text = c.string_or_skip()?,
            b"createdAt" => event.created_at = c.string_or_skip()?,
            b"langs" => event.lang = first_string(c)?,
            b"reply" => {
                // Last one wins, as on the tape.
                (event.parent, event.root) = (None, None);
                event.flags.reply = c.peek()? != b'n';
                if event.flags.reply {
                    scan_reply(c, event)?;
                } else {
                    c.skip()?;
                }
            }
            b"embed" => scan_embed(c, &mut event.flags, &mut event.original, links)?,
            b"facets" => event.flags.link |= scan_facets(c, links)?,
            _ => c.skip()?,
        }
        Ok(())
    })
}

/// `reply.parent.uri` and `reply.root.uri` (the first of each); the value consumed.
fn scan_reply(c: &mut Cursor<'_>, event: &mut Event) -> Scan<()> {
    let (mut parent, mut root) = (None, None);
    c.object_or_skip(|c, key| match key {
        b"parent" if parent.is_none() => {
            parent = Some(scan_uri(c)?);
            Ok(())
        }
        b"root" if root.is_none() => {
            root = Some(scan_uri(c)?);
            Ok(())
        }
        _ => c.skip(),
    })?;
    (event.parent, event.root) = (parent.flatten(), root.flatten());
    Ok(())
}

/// The first element of an array if it is a string; the value consumed.
fn first_string(c: &mut Cursor<'_>) -> Scan<Option<RawStr>> {
    let mut first = None;
    let mut index = 0usize;
    c.array_or_skip(|c| {
        if index == 0 {
            first = c.string_or_skip()?;
        } else {
            c.skip()?;
        }
        index += 1;
        Ok(())
    })?;
    Ok(first)
}

/// The first `$type` of an object, if it is a string with a plain value; the value
/// consumed. `on_other` reads every other key.
fn scan_typed(
    c: &mut Cursor<'_>,
    mut on_other: impl FnMut(&mut Cursor<'_>, &[u8]) -> Scan<()>,
) -> Scan<Option<RawStr>> {
    let mut kind = None;
    c.object_or_skip(|c, key| {
        if key == b"$type" && kind.is_none() {
            kind = Some(c.string_or_skip()?);
            Ok(())
        } else {
            on_other(c, key)
        }
    })?;
    Ok(kind.flatten())
}

fn scan_embed(
    c: &mut Cursor<'_>,
    flags: &mut PostFlags,
    original: &mut Option<RawStr>,
    links: &mut Vec<RawStr>,
) -> Scan<()> {
    let mut media: Option<(Option<RawStr>, Option<RawStr>)> = None;
    let mut external: Option<Option<RawStr>> = None;
    // `record.uri` and `record.record.uri`.
    let mut record: Option<(Option<RawStr>, Option<RawStr>)> = None;
    let embed_type = scan_typed(c, |c, key| match key {
        b"record" if record.is_none() => {
            let mut uri = None;
            let mut inner = None;
            c.object_or_skip(|c, key| match key {
                b"uri" if uri.is_none() => {
                    uri = Some(c.string_or_skip()?);
                    Ok(())
                }
                b"record" if inner.is_none() => {
                    inner = Some(scan_uri(c)?);
                    Ok(())
                }
                _ => c.skip(),
            })?;
            record = Some((uri.flatten(), inner.flatten()));
            Ok(())
        }
        b"media" if media.is_none() => {
            let mut media_external = None;
            let media_type = scan_typed(c, |c, key| {
                if key == b"external" && media_external.is_none() {
                    media_external = Some(scan_uri(c)?);
                    Ok(())
                } else {
                    c.skip()
                }
            })?;
            media = Some((media_type, media_external.flatten()));
            Ok(())
        }
        b"external" if external.is_none() => {
            external = Some(scan_uri(c)?);
            Ok(())
        }
        _ => c.skip(),
    })?;
    let doc = c.doc();
    let plain = |s: Option<RawStr>| s.map(|s| s.plain(doc)).transpose();
    let (media_type, media_uri) = media.unwrap_or_default();
    let embed_type = plain(embed_type)?;
    if original.is_none() {
        let (uri, inner) = record.unwrap_or_default();
        *original = match embed_type {
            Some(RECORD) => uri,
            Some(RECORD_WITH_MEDIA) => inner,
            _ => None,
        };
    }
    let uri = match embed_flags(embed_type, plain(media_type)?, flags) {
        EmbedLink::None => None,
        EmbedLink::External => external.flatten(),
        EmbedLink::MediaExternal => media_uri,
    };
    match uri {
        Some(uri) => push_candidate(links, uri),
        None => Ok(()),
    }
}

/// The first `uri` of an object if it is a string; the value consumed.
fn scan_uri(c: &mut Cursor<'_>) -> Scan<Option<RawStr>> {
    let mut uri = None;
    c.object_or_skip(|c, key| {
        if key == b"uri" && uri.is_none() {
            uri = Some(c.string_or_skip()?);
            Ok(())
        } else {
            c.skip()
        }
    })?;
    Ok(uri.flatten())
}

/// Keeps a link URI for after the event is accepted; [`Unsure`] past
/// [`MAX_LINK_CANDIDATES`].
fn push_candidate(links: &mut Vec<RawStr>, uri: RawStr) -> Scan<()> {
    if links.len() >= MAX_LINK_CANDIDATES {
        return Err(Unsure);
    }
    links.push(uri);
    Ok(())
}

/// Whether any facet carries a link feature; the value consumed, link URIs kept in `links`.
fn scan_facets(c: &mut Cursor<'_>, links: &mut Vec<RawStr>) -> Scan<bool> {
    let mut link = false;
    c.array_or_skip(|c| {
        let mut features_seen = false;
        c.object_or_skip(|c, key| {
            if key == b"features" && !features_seen {
                features_seen = true;
                link |= scan_features(c, links)?;
                Ok(())
            } else {
                c.skip()
            }
        })
    })?;
    Ok(link)
}

fn scan_features(c: &mut Cursor<'_>, links: &mut Vec<RawStr>) -> Scan<bool> {
    let mut link = false;
    c.array_or_skip(|c| {
        let doc = c.doc();
        let mut uri = None;
        let kind = scan_typed(c, |c, key| {
            if key == b"uri" && uri.is_none() {
                uri = Some(c.string_or_skip()?);
                Ok(())
            } else {
                c.skip()
            }
        })?;
        if let Some(kind) = kind {
            if kind.plain(doc)? == LINK_FEATURE {
                link = true;
                if let Some(uri) = uri.flatten() {
                    push_candidate(links, uri)?;
                }
            }
        }
        Ok(())
    })?;
    Ok(link)
}

// ---------------------------------------------------------------------------------------
// Tape decoder
// ---------------------------------------------------------------------------------------

/// Decodes one Jetstream event from simd-json's tape.
pub(super) fn decode<F: FnMut(Post<'_>)>(
    root: Val<'_, '_>,
    deleted: &mut String,
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

    let mut operation = None;
    let mut collection = None;
    let mut rkey = None;
    let mut record = None;
    for (key, value) in commit.into_iter().flat_map(Val::entries) {
        match key {
            "operation" => operation = value.str(),
            "collection" => collection = value.str(),
            "rkey" => rkey = value.str(),
            "record" => record = Some(value),
            _ => {}
        }
    }
    let decided = classify(
        kind.map(str::as_bytes),
        operation.map(str::as_bytes),
        collection.map(str::as_bytes),
    );
    if decided == Err(SkipReason::Delete) && collection.map(str::as_bytes) == Some(POST) {
        name_deleted(did, rkey, deleted);
    }
    decided?;
    let (Some(did), Some(rkey), Some(record)) = (did, rkey, record) else {
        return Err(SkipReason::WrongShape);
    };

    let mut text = None;
    let mut created_at = None;
    let mut lang = None;
    let mut flags = PostFlags::default();
    let mut links = Vec::new();
    let mut original = None;
    let (mut parent, mut root) = (None, None);
    for (key, value) in record.entries() {
        match key {
            "text" => text = value.str(),
            "createdAt" => created_at = value.str(),
            "langs" => lang = value.items().next().and_then(Val::str),
            "reply" => {
                flags.reply = !value.is_null();
                parent = uri_of(value.get("parent"));
                root = uri_of(value.get("root"));
            }
            "embed" => {
                let media = value.get("media");
                let embed_type = type_of(Some(value));
                if original.is_none() {
                    let quoted = value.get("record");
                    original = match embed_type {
                        Some(RECORD) => uri_of(quoted),
                        Some(RECORD_WITH_MEDIA) => uri_of(quoted.and_then(|r| r.get("record"))),
                        _ => None,
                    };
                }
                let uri = match embed_flags(embed_type, type_of(media), &mut flags) {
                    EmbedLink::None => None,
                    EmbedLink::External => uri_of(value.get("external")),
                    EmbedLink::MediaExternal => uri_of(media.and_then(|m| m.get("external"))),
                };
                if let Some(uri) = uri {
                    push_link(&mut links, Cow::Borrowed(uri));
                }
            }
            "facets" => flags.link |= link_facets(value, &mut links),
            _ => {}
        }
    }
    let text = text.ok_or(SkipReason::WrongShape)?;

    on_post(
        Fields {
            did,
            rkey,
            text,
            created_at,
            lang,
            time_us,
            flags,
            links,
            original,
            parent,
            root,
        }
        .into_post(),
    );
    Ok(1)
}

/// The thread key of a deleted post (`at://<did>/app.bsky.feed.post/<rkey>`, as
/// [`Post::thread_key`] gives it) into `out`, when both parts look like atproto identifiers.
fn name_deleted(did: Option<&str>, rkey: Option<&str>, out: &mut String) {
    let ok = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b'-' | b'~'))
    };
    if let (Some(did), Some(rkey)) = (did, rkey) {
        if did.starts_with("did:") && ok(did, 2048) && ok(rkey, 512) {
            out.push_str("at://");
            out.push_str(did);
            out.push_str("/app.bsky.feed.post/");
            out.push_str(rkey);
        }
    }
}

/// `uri` if it names a Bluesky post (`at://<repo>/app.bsky.feed.post/<rkey>`), the form
/// [`Post::canonical_id`] gives a post.
fn quoted_post(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("at://")?;
    let mut parts = rest.split('/');
    let (repo, collection, rkey) = (parts.next()?, parts.next()?, parts.next()?);
    let post = !repo.is_empty()
        && collection == "app.bsky.feed.post"
        && !rkey.is_empty()
        && parts.next().is_none();
    post.then_some(uri)
}

/// The thread of a reply from its `reply.parent.uri` and `reply.root.uri`: each kept when it
/// names a post, the root left out when it is the parent.
fn thread<'a>(parent: Option<&'a str>, root: Option<&'a str>) -> Thread<'a> {
    let parent = parent.and_then(quoted_post);
    let root = root.and_then(quoted_post).filter(|r| Some(*r) != parent);
    Thread {
        parent: parent.map(Cow::Borrowed),
        root: root.map(Cow::Borrowed),
    }
}

/// The first `$type` of an object, if it is a string.
fn type_of<'f>(value: Option<Val<'_, 'f>>) -> Option<&'f [u8]> {
    value
        .and_then(|v| v.get("$type"))
        .and_then(Val::str)
        .map(str::as_bytes)
}

/// The first `uri` of an object, if it is a string.
fn uri_of<'f>(value: Option<Val<'_, 'f>>) -> Option<&'f str> {
    value.and_then(|v| v.get("uri")).and_then(Val::str)
}

/// Whether any facet carries a link feature; adds the link features' URIs to `links`.
fn link_facets<'f>(facets: Val<'_, 'f>, links: &mut Vec<Cow<'f, str>>) -> bool {
    let mut link = false;
    for facet in facets.items() {
        for feature in facet.get("features").into_iter().flat_map(Val::items) {
            if type_of(Some(feature)) == Some(LINK_FEATURE) {
                link = true;
                if let Some(uri) = uri_of(Some(feature)) {
                    push_link(links, Cow::Borrowed(uri));
                }
            }
        }
    }
    link
}
