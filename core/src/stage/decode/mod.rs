//! Decode: one raw frame (the bytes of one JSON document) → one or more [`Post`]s borrowing
//! the frame, or the [`SkipReason`] the frame is counted under.
//!
//! # Shape
//! A [`Decoder`] is built once per worker thread from a [`Format`] and [`DecodeLimits`] and
//! then fed frame after frame. Each frame is parsed **in place** by simd-json into a tape
//! (strings are unescaped into the frame's own bytes), and a small format module walks that
//! tape and hands every post to the caller's closure. The decoder owns everything that can be
//! reused between frames (simd-json's stage-1/stage-2 buffers, the tape, a second tape and a
//! payload buffer for JSON carried inside a JSON string, and text buffers for values that must
//! be built: Mastodon HTML turned into text, a Reddit permalink, a timestamp), so in the
//! steady state decoding allocates nothing per post. A post may borrow from those buffers,
//! which is why it is handed to a closure rather than returned: it lives until the closure
//! returns.
//!
//! # Invariants
//! - `Ok(n)` always has `n >= 1`: a frame either yields posts or is skipped under exactly one
//!   reason, so the worker's accounting (`frames = frames with posts + Σ skipped`) holds.
//! - Nothing in this module panics on input; malformed input is a [`SkipReason`]:
//!   [`SkipReason::Oversize`] (checked before any parsing), [`SkipReason::InvalidUtf8`],
//!   [`SkipReason::InvalidJson`], [`SkipReason::TooDeep`] (enforced by simd-json's stage 2,
//!   which stops at the limit, so a 1,000-deep frame costs one linear stage-1 pass and 65
//!   pushes), and [`SkipReason::WrongShape`] for valid JSON without the fields a post needs.
//! - Well-formed events that are not posts (likes, deletes, identity events, stream errors…)
//!   are skipped under their own reason so that operators can tell "quiet" from "broken".
//!
//! # Links
//! Every decoder fills [`Post::links`] from the fields its format gives for links (see each
//! module), through `push_link`, so one rule decides for all of them: `http` / `https`
//! only (an `at://` record, a `mailto:` are not web links), at most
//! [`crate::post::MAX_LINK_BYTES`] each (a longer one is left out, not the post), no
//! duplicates, the first [`crate::post::MAX_LINKS`] in the format's order. Links borrow the
//! frame like every other string; only a Mastodon `href` holding character references is
//! built.
//!
//! # Multi-post frames
//! An X v2 search page (`data: [...]`), a v1.1 `search/tweets` response (`statuses: [...]`)
//! and a Reddit Listing carry many posts. Posts are emitted as they are found; an item of such
//! a page that lacks a required field is left out and counted in
//! [`Decoder::malformed_in_last_frame`] (the frame as a whole still decoded). A page whose
//! every item is malformed is [`SkipReason::WrongShape`]; a page with no post items at all
//! (an empty result page, a Listing of `more` stubs) is [`SkipReason::OtherEvent`].
//!
//! # Why a hand-walked tape, and a reader without one for Jetstream
//! Walking simd-json's tape nodes directly, matching each object's keys once in a single pass
//! (no hash map, no serde, no owned DOM), keeps decoding at ~85–90% of the throughput of
//! simd-json's bare in-place parse: the parse itself is the cost, the walk is not. Jetstream,
//! the pipeline's bottleneck, goes one step further: `scan` checks and reads an event in
//! one pass without building the tape at all, and hands the frames it is unsure of to the
//! tape path, which stays the one authority on what is malformed and why.

mod generic;
mod html;
mod jetstream;
mod mastodon;
mod reddit;
mod scan;
mod tape;
mod x;

pub use mastodon::event_skip as mastodon_event_skip;

#[cfg(test)]
mod reader_tests;
#[cfg(test)]
mod tests;

use serde::Deserialize;
use simd_json::{Buffers, ErrorType, Tape};

use std::borrow::Cow;

use crate::post::{Post, MAX_LINKS, MAX_LINK_BYTES};
use crate::skip::SkipReason;

use self::generic::GenericPaths;
use self::scan::RawStr;
use self::tape::Val;

/// Source formats the decoder understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Bluesky Jetstream v1 events (`kind: commit | identity | account`).
    Jetstream,
    /// X API v2: filtered-stream lines and search / lookup pages (`data` + `includes`).
    XV2,
    /// X API v1.1 statuses, `search/tweets` responses and the enterprise "original format".
    XV1,
    /// X enterprise (Gnip) Activity Streams: `verb`, `actor`, `body`, `long_object`. A format
    /// of its own rather than a variant of [`Format::XV1`] because no field of the two shapes
    /// coincides (ids are `tag:` URIs, the author is an `actor`, counts are camelCase).
    XActivity,
    /// Mastodon Status entities, raw or inside a streaming-API envelope
    /// (`{"event": "update", "payload": "<status JSON>"}`).
    Mastodon,
    /// Reddit things: a `t1` comment or `t3` submission, alone or in a `Listing`.
    Reddit,
    /// Any JSON document, read through configured field paths.
    Generic(GenericFields),
}

impl Format {
    /// The format with this configuration name: `"jetstream"`, `"x_v2"`, `"x_v1"`,
    /// `"x_activity"`, `"mastodon"` or `"reddit"`. The generic format is built from its field
    /// configuration instead, so `"generic"` gives `None`.
    pub fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "jetstream" => Format::Jetstream,
            "x_v2" => Format::XV2,
            "x_v1" => Format::XV1,
            "x_activity" => Format::XActivity,
            "mastodon" => Format::Mastodon,
            "reddit" => Format::Reddit,
            _ => return None,
        })
    }

    /// The configuration name (also a metric label value).
    pub fn name(&self) -> &'static str {
        match self {
            Format::Jetstream => "jetstream",
            Format::XV2 => "x_v2",
            Format::XV1 => "x_v1",
            Format::XActivity => "x_activity",
            Format::Mastodon => "mastodon",
            Format::Reddit => "reddit",
            Format::Generic(_) => "generic",
        }
    }

    /// Guesses the format from one frame (for `earshot replay` auto-detection) by the keys
    /// its top-level object carries; `None` if the frame is not JSON or matches no format.
    ///
    /// Not for the hot path: it copies the frame to parse it. A frame over the default
    /// [`DecodeLimits::max_frame_bytes`] is not examined.
    pub fn detect(frame: &[u8]) -> Option<Format> {
        if frame.len() > DecodeLimits::default().max_frame_bytes {
            return None;
        }
        let mut copy = frame.to_vec();
        let tape = simd_json::to_tape(&mut copy).ok()?;
        let root = Val::root(&tape.0)?;
        let has = |key: &str| root.get(key).is_some();
        if has("did") && has("kind") && has("time_us") {
            return Some(Format::Jetstream);
        }
        if has("verb") && has("actor") {
            return Some(Format::XActivity);
        }
        if root.get("statuses").is_some_and(Val::is_array) || has("id_str") {
            return Some(Format::XV1);
        }
        if has("data") && (has("includes") || has("matching_rules") || has("meta")) {
            return Some(Format::XV2);
        }
        if let Some(data) = root.get("data") {
            let first = if data.is_array() {
                data.items().next()
            } else {
                Some(data)
            };
            if first.is_some_and(|t| {
                t.get("author_id").is_some() || t.get("edit_history_tweet_ids").is_some()
            }) {
                return Some(Format::XV2);
            }
        }
        if root.get("errors").is_some_and(Val::is_array) && root.len() <= 2 {
            return Some(Format::XV2);
        }
        if let Some(kind) = root.get("kind").and_then(Val::str) {
            if has("data") && (kind == "Listing" || reddit::is_thing_kind(kind)) {
                return Some(Format::Reddit);
            }
        }
        if (has("event") && (has("stream") || has("payload")))
            || (has("account") && has("content") && has("uri"))
        {
            return Some(Format::Mastodon);
        }
        None
    }
}

/// Field paths for generic JSON: dotted paths, array indices as numbers (`"user.handle"`,
/// `"tags.0"`). A segment that is a number indexes an array, and is a key in an object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericFields {
    /// The post text (a string; required).
    pub text: String,
    /// The post id (a string or an integer; required).
    pub id: String,
    /// The author's stable id (a string or an integer; empty when the frame lacks it).
    pub author_id: String,
    /// The author's handle (a leading `@` is removed).
    pub author_handle: Option<String>,
    /// The language tag.
    pub lang: Option<String>,
    /// The creation time, passed through as written.
    pub created_at: Option<String>,
    /// The author's follower count (an integer, or a string of digits).
    pub followers: Option<String>,
    /// The web URL of the post.
    pub url: Option<String>,
}

/// A generic field path that cannot match anything, found by [`GenericFields::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenericFieldsError {
    /// The path is empty.
    #[error("generic field `{field}`: the path is empty")]
    EmptyPath {
        /// The `GenericFields` field.
        field: &'static str,
    },
    /// The path has an empty segment (`"user..id"`, a leading or trailing dot).
    #[error("generic field `{field}`: path `{path}` has an empty segment")]
    EmptySegment {
        /// The `GenericFields` field.
        field: &'static str,
        /// The configured path.
        path: String,
    },
}

impl GenericFields {
    /// Checks every configured path, reporting all the bad ones (config validation calls this
    /// so that a path that can never match is an error at load, not a stream of skips).
    pub fn validate(&self) -> Result<(), Vec<GenericFieldsError>> {
        let errors: Vec<GenericFieldsError> = self
            .paths()
            .filter_map(|(field, path)| check_path(field, path).err())
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Every configured path with the name of its field.
    fn paths(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("text", Some(&self.text)),
            ("id", Some(&self.id)),
            ("author_id", Some(&self.author_id)),
            ("author_handle", self.author_handle.as_ref()),
            ("lang", self.lang.as_ref()),
            ("created_at", self.created_at.as_ref()),
            ("followers", self.followers.as_ref()),
            ("url", self.url.as_ref()),
        ]
        .into_iter()
        .filter_map(|(field, path)| path.map(|p| (field, p.as_str())))
    }
}

fn check_path(field: &'static str, path: &str) -> Result<(), GenericFieldsError> {
    if path.is_empty() {
        return Err(GenericFieldsError::EmptyPath { field });
    }
    if path.split('.').any(str::is_empty) {
        return Err(GenericFieldsError::EmptySegment {
            field,
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// Bytes [`Decoder::decode_padded`] needs after a frame to parse it without copying it.
pub const FRAME_PADDING: usize = simd_json::INPUT_PADDING;

/// Hard limits on what one frame may cost (security): an attacker-controlled stream must not
/// be able to make a worker allocate or recurse without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Frames longer than this are skipped as [`SkipReason::Oversize`] before parsing.
    /// Default 1 MiB: the largest real payloads (an X v2 search page of 100 tweets with
    /// expansions) are ~400 KiB; a single post is under 10 KiB.
    pub max_frame_bytes: usize,
    /// Objects and arrays nested deeper than this are [`SkipReason::TooDeep`]. Default 64:
    /// real payloads nest under 10 levels (an X v1.1 quote of a retweet reaches 7).
    pub max_depth: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 1 << 20,
            max_depth: 64,
        }
    }
}

/// Owned buffers a post may borrow from while the caller's closure runs.
#[derive(Default)]
struct Scratch {
    /// Tape for JSON carried inside a JSON string (Mastodon's streaming `payload`).
    inner_tape: Option<Tape<'static>>,
    /// Unescaped copy of such a payload, parsed in place.
    payload: Vec<u8>,
    /// Built text: Mastodon HTML as plain text, X / Reddit text with references decoded,
    /// Reddit title + selftext.
    text: String,
    /// Built URI: Reddit permalink.
    uri: String,
    /// Built timestamp: Reddit `created_utc` as RFC 3339.
    stamp: String,
    /// Built original: the canonical id of the post an X tweet reposts or quotes
    /// (`x:<id>`), a Reddit crosspost's parent permalink.
    original: String,
    /// Built id: a generic id given as a number.
    id: String,
    /// Built author id: a generic author id given as a number.
    author_id: String,
    /// Link URIs the Jetstream fast reader found in an event, before they are unescaped.
    link_spans: Vec<RawStr>,
    /// The thread key ([`Post::thread_key`]) of the post a delete event names, when the last
    /// frame was one; empty otherwise.
    deleted: String,
}

/// Counts of one multi-post frame while it is walked.
#[derive(Debug, Default, Clone, Copy)]
struct Emitted {
    posts: usize,
    malformed: usize,
}

impl Emitted {
    /// The frame's result: its post count, or why a frame without posts is skipped.
    fn finish(self) -> Result<usize, SkipReason> {
        match (self.posts, self.malformed) {
            (0, 0) => Err(SkipReason::OtherEvent),
            (0, _) => Err(SkipReason::WrongShape),
            (n, _) => Ok(n),
        }
    }
}

/// Decodes frames of one format into posts, reusing its buffers from frame to frame.
///
/// One per worker thread (`Send`, not shared). Build with [`Decoder::new`], then call
/// [`Decoder::decode`] for every frame.
pub struct Decoder {
    format: Format,
    limits: DecodeLimits,
    /// Compiled paths when the format is [`Format::Generic`].
    generic: Option<GenericPaths>,
    /// simd-json's stage-1 index, stage-2 stack, padded input copy and string buffer; carries
    /// the depth limit.
    buffers: Buffers,
    /// The outer tape, empty between calls (its lifetime is re-bound to each frame).
    tape: Option<Tape<'static>>,
    scratch: Scratch,
    malformed: usize,
}

impl Decoder {
    /// A decoder for `format` under `limits`.
    pub fn new(format: Format, limits: DecodeLimits) -> Self {
        let generic = match &format {
            Format::Generic(fields) => Some(GenericPaths::compile(fields)),
            _ => None,
        };
        Self {
            format,
            limits,
            generic,
            // Sized for a typical stream frame; grows to the largest frame seen, then stays.
            buffers: Buffers::with_max_depth(4096, limits.max_depth),
            tape: Some(Tape(Vec::with_capacity(256))),
            scratch: Scratch::default(),
            malformed: 0,
        }
    }

    /// The format this decoder reads.
    pub fn format(&self) -> &Format {
        &self.format
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> DecodeLimits {
        self.limits
    }

    /// Items of the last multi-post frame (search page, Listing) that were left out because
    /// they lacked a required field, while the frame itself decoded. The worker adds this to
    /// its [`SkipReason::WrongShape`] count so no malformed post goes uncounted.
    pub fn malformed_in_last_frame(&self) -> usize {
        self.malformed
    }

    /// Decodes one frame in place. Calls `on_post` once per post in the frame (a stream line
    /// holds one; a Reddit Listing, an X v2 search page `data: [...]` or a v1.1
    /// `statuses: [...]` response holds many) and returns how many (always at least one); or
    /// the reason the frame is skipped.
    ///
    /// The frame's bytes are rewritten (strings are unescaped in place): decode a frame once.
    /// simd-json first copies the frame into a padded buffer; [`Decoder::decode_padded`] saves
    /// that copy where the caller has the padding.
    pub fn decode(
        &mut self,
        frame: &mut [u8],
        on_post: impl FnMut(Post<'_>),
    ) -> Result<usize, SkipReason> {
        let len = frame.len();
        self.decode_in(frame, len, on_post)
    }

    /// [`Decoder::decode`] of the frame `buf[..len]`, parsed where it lies when `buf[len..]`
    /// holds at least [`FRAME_PADDING`] bytes (of any content; they are read, and left as they
    /// were). Without enough padding it falls back to the copying parse.
    pub fn decode_padded(
        &mut self,
        buf: &mut [u8],
        len: usize,
        on_post: impl FnMut(Post<'_>),
    ) -> Result<usize, SkipReason> {
        let len = len.min(buf.len());
        if buf.len() - len < FRAME_PADDING {
            return self.decode_in(&mut buf[..len], len, on_post);
        }
        self.decode_in(buf, len, on_post)
    }

    /// [`Decoder::decode`] without the Jetstream fast reader: every frame goes through
    /// simd-json's tape, the authority on what a frame holds. For the fuzz targets, which
    /// check that the fast reader and the tape agree on every frame; other formats have only
    /// the tape path, so for them this is [`Decoder::decode`].
    #[doc(hidden)]
    pub fn decode_without_fast_reader(
        &mut self,
        frame: &mut [u8],
        on_post: impl FnMut(Post<'_>),
    ) -> Result<usize, SkipReason> {
        self.malformed = 0;
        self.scratch.deleted.clear();
        let len = frame.len();
        if len > self.limits.max_frame_bytes {
            return Err(SkipReason::Oversize);
        }
        self.decode_tape(frame, len, on_post)
    }

    /// The post the last frame deleted, as its thread key (`at://…`, `x:<id>`,
    /// `mastodon:<id>`), when that frame was a delete of a post ([`SkipReason::Delete`]) that
    /// names it; `None` for every other frame.
    pub fn deleted(&self) -> Option<&str> {
        (!self.scratch.deleted.is_empty()).then_some(self.scratch.deleted.as_str())
    }

    /// Decodes `buf[..len]`; `buf` is either exactly the frame or the frame plus padding.
    fn decode_in(
        &mut self,
        buf: &mut [u8],
        len: usize,
        mut on_post: impl FnMut(Post<'_>),
    ) -> Result<usize, SkipReason> {
        self.malformed = 0;
        self.scratch.deleted.clear();
        if len > self.limits.max_frame_bytes {
            return Err(SkipReason::Oversize);
        }
        if self.format == Format::Jetstream {
            if let Some(result) = jetstream::read(
                &mut buf[..len],
                self.limits.max_depth,
                &mut self.scratch.link_spans,
                &mut self.scratch.deleted,
                &mut on_post,
            ) {
                return result;
            }
        }
        self.decode_tape(buf, len, on_post)
    }

    /// Decodes `buf[..len]` through simd-json's tape (`buf` as in [`Decoder::decode_in`]).
    fn decode_tape(
        &mut self,
        buf: &mut [u8],
        len: usize,
        mut on_post: impl FnMut(Post<'_>),
    ) -> Result<usize, SkipReason> {
        let mut tape = self.tape.take().unwrap_or_else(|| Tape(Vec::new())).reset();
        let parsed = if buf.len() == len {
            simd_json::fill_tape(buf, &mut self.buffers, &mut tape)
        } else {
            simd_json::fill_tape_padded(buf, len, &mut self.buffers, &mut tape)
        };
        let outcome = match parsed {
            Ok(()) => match Val::root(&tape.0) {
                Some(root) => Ok(self.dispatch(root, &mut on_post)),
                None => Err(ParseFailure::Other),
            },
            Err(e) => Err(ParseFailure::of(e.error())),
        };
        self.tape = Some(tape.reset());
        match outcome {
            Ok(result) => result,
            Err(failure) => Err(failure.reason(&buf[..len])),
        }
    }

    fn dispatch<F: FnMut(Post<'_>)>(
        &mut self,
        root: Val<'_, '_>,
        on_post: &mut F,
    ) -> Result<usize, SkipReason> {
        let mut emitted = Emitted::default();
        let result = match &self.format {
            Format::Jetstream => jetstream::decode(root, &mut self.scratch.deleted, on_post),
            Format::XV2 => x::decode_v2(root, &mut self.scratch, &mut emitted, on_post),
            Format::XV1 => x::decode_v1(root, &mut self.scratch, &mut emitted, on_post),
            Format::XActivity => x::decode_activity(root, &mut self.scratch, on_post),
            Format::Mastodon => {
                mastodon::decode(root, &mut self.buffers, &mut self.scratch, on_post)
            }
            Format::Reddit => reddit::decode(root, &mut self.scratch, &mut emitted, on_post),
            Format::Generic(_) => match &self.generic {
                Some(paths) => generic::decode(root, paths, &mut self.scratch, on_post),
                None => Err(SkipReason::WrongShape),
            },
        };
        self.malformed = emitted.malformed;
        result
    }
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("format", &self.format)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Why simd-json rejected a frame, reduced before the tape's borrow of the frame ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParseFailure {
    Utf8,
    Depth,
    Other,
}

impl ParseFailure {
    fn of(kind: &ErrorType) -> Self {
        match kind {
            ErrorType::InvalidUtf8 => ParseFailure::Utf8,
            ErrorType::DepthLimitExceeded => ParseFailure::Depth,
            _ => ParseFailure::Other,
        }
    }

    /// The skip reason. simd-json reports a syntax error found in stage 1 before it reports
    /// invalid UTF-8, so on that (cold) path the frame is checked for UTF-8 itself: a frame
    /// that is not UTF-8 is counted as such whatever else is wrong with it.
    fn reason(self, frame: &[u8]) -> SkipReason {
        match self {
            ParseFailure::Utf8 => SkipReason::InvalidUtf8,
            ParseFailure::Depth => SkipReason::TooDeep,
            ParseFailure::Other if std::str::from_utf8(frame).is_err() => SkipReason::InvalidUtf8,
            ParseFailure::Other => SkipReason::InvalidJson,
        }
    }
}

/// Mastodon's HTML → plain text conversion on its own: appends the text of `html` to `out`
/// and returns the post's links and whether it links anywhere but a mention or hashtag. For
/// the fuzz targets, which reach the converter faster without the JSON around it.
#[doc(hidden)]
pub fn html_to_text<'h>(html: &'h str, out: &mut String) -> (Vec<Cow<'h, str>>, bool) {
    let mut links = Vec::new();
    let facts = html::to_text(html, out, &mut links);
    (links, facts.link)
}

/// Parses JSON held in `scratch.payload` (already copied there by the caller) and hands its
/// root to `f`. Used for documents embedded in a JSON string; the outer frame's limits apply.
fn with_inner_document<R>(
    buffers: &mut Buffers,
    scratch: &mut Scratch,
    f: impl FnOnce(Val<'_, '_>, &mut Scratch) -> Result<R, SkipReason>,
) -> Result<R, SkipReason> {
    let mut payload = std::mem::take(&mut scratch.payload);
    let mut tape = scratch
        .inner_tape
        .take()
        .unwrap_or_else(|| Tape(Vec::new()))
        .reset();
    let outcome = match simd_json::fill_tape(&mut payload, buffers, &mut tape) {
        Ok(()) => match Val::root(&tape.0) {
            Some(root) => f(root, scratch),
            None => Err(SkipReason::InvalidJson),
        },
        Err(e) => Err(match ParseFailure::of(e.error()) {
            ParseFailure::Depth => SkipReason::TooDeep,
            ParseFailure::Utf8 => SkipReason::InvalidUtf8,
            ParseFailure::Other => SkipReason::InvalidJson,
        }),
    };
    scratch.inner_tape = Some(tape.reset());
    payload.clear();
    scratch.payload = payload;
    outcome
}

/// Adds `url` to a post's `links` if it is a web link (`http://` or `https://`, any case,
/// with something after it) of at most [`MAX_LINK_BYTES`], not already there, and fewer than
/// [`MAX_LINKS`] are kept. Every decoder goes through here, in the format's order, so the two
/// Jetstream readers (which call it with the same URIs in the same order) agree.
/// The name a reply gives the post it answers, `<platform>:<id>` (the form
/// [`Post::thread_key`] gives that post), when `id` looks like an id of the platform (1 to 64
/// letters, digits, `_`, `-`, `.`): a frame cannot make an arbitrary string a thread key.
fn thread_ref(platform: crate::post::Platform, id: &str) -> Option<Cow<'static, str>> {
    let fits = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    fits.then(|| Cow::Owned(format!("{}:{id}", platform.as_str())))
}

fn push_link<'a>(links: &mut Vec<Cow<'a, str>>, url: Cow<'a, str>) {
    if links.len() < MAX_LINKS && is_web_link(&url) && !links.contains(&url) {
        links.push(url);
    }
}

/// Whether `url` is an `http` / `https` URL short enough to keep.
fn is_web_link(url: &str) -> bool {
    if url.len() > MAX_LINK_BYTES {
        return false;
    }
    let bytes = url.as_bytes();
    let after_scheme = if bytes.len() >= 7 && bytes[..7].eq_ignore_ascii_case(b"http://") {
        7
    } else if bytes.len() >= 8 && bytes[..8].eq_ignore_ascii_case(b"https://") {
        8
    } else {
        return false;
    };
    bytes.len() > after_scheme
}

/// Sums the counts that are present; `None` when none is.
fn sum_counts<const N: usize>(counts: [Option<u64>; N]) -> Option<u64> {
    counts.into_iter().flatten().reduce(u64::saturating_add)
}
