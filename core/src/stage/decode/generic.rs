//! Generic JSON: any document → one post (platform Generic), read through configured dotted
//! field paths ([`super::GenericFields`]).
//!
//! Paths are split once, when the decoder is built. A segment indexes an array when the
//! value there is an array and the segment is a number, and is a key otherwise (so `"0"` can
//! still name an object key). text must be a string and id a string or an integer, else the
//! frame is [`SkipReason::WrongShape`]; author id may be a string or an integer and is empty
//! when absent; followers may be an integer or a string of digits; the other fields are
//! strings and are left out when absent or of another type. A handle's leading `@` is
//! removed. Integers are written into the decoder's scratch buffers, not allocated. There is
//! no field for links (`url` is the post's own page), so a generic post has none.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::tape::Val;
use super::{GenericFields, Scratch};
use crate::post::{Author, Platform, Post, PostFlags};
use crate::skip::SkipReason;

/// One segment of a compiled path.
#[derive(Debug, Clone)]
struct Segment {
    key: Box<str>,
    index: Option<usize>,
}

/// A compiled dotted path.
#[derive(Debug, Clone)]
struct Path(Vec<Segment>);

impl Path {
    fn compile(path: &str) -> Self {
        Path(
            path.split('.')
                .map(|s| Segment {
                    key: s.into(),
                    index: s.parse().ok(),
                })
                .collect(),
        )
    }

    fn resolve<'t, 'f>(&self, root: Val<'t, 'f>) -> Option<Val<'t, 'f>> {
        self.0
            .iter()
            .try_fold(root, |value, segment| match segment.index {
                Some(i) if value.is_array() => value.index(i),
                _ => value.get(&segment.key),
            })
    }
}

/// [`GenericFields`] compiled for decoding.
#[derive(Debug, Clone)]
pub(super) struct GenericPaths {
    text: Path,
    id: Path,
    author_id: Path,
    author_handle: Option<Path>,
    lang: Option<Path>,
    created_at: Option<Path>,
    followers: Option<Path>,
    url: Option<Path>,
}

impl GenericPaths {
    pub(super) fn compile(fields: &GenericFields) -> Self {
        let optional = |p: &Option<String>| p.as_deref().map(Path::compile);
        Self {
            text: Path::compile(&fields.text),
            id: Path::compile(&fields.id),
            author_id: Path::compile(&fields.author_id),
            author_handle: optional(&fields.author_handle),
            lang: optional(&fields.lang),
            created_at: optional(&fields.created_at),
            followers: optional(&fields.followers),
            url: optional(&fields.url),
        }
    }
}

/// Decodes one document through `paths`.
pub(super) fn decode<F: FnMut(Post<'_>)>(
    root: Val<'_, '_>,
    paths: &GenericPaths,
    scratch: &mut Scratch,
    on_post: &mut F,
) -> Result<usize, SkipReason> {
    let text = paths
        .text
        .resolve(root)
        .and_then(Val::str)
        .ok_or(SkipReason::WrongShape)?;
    let id = paths.id.resolve(root).ok_or(SkipReason::WrongShape)?;
    let id = string_or_integer(id, &mut scratch.id).ok_or(SkipReason::WrongShape)?;
    let author_id = match paths.author_id.resolve(root) {
        Some(v) => string_or_integer(v, &mut scratch.author_id).unwrap_or(""),
        None => "",
    };
    let string = |path: &Option<Path>| path.as_ref()?.resolve(root)?.str();
    let followers = paths
        .followers
        .as_ref()
        .and_then(|p| p.resolve(root))
        .and_then(|v| {
            v.u64()
                .or_else(|| v.str().and_then(|s| s.trim().parse().ok()))
        });
    let handle = string(&paths.author_handle).map(|h| h.strip_prefix('@').unwrap_or(h));

    on_post(Post {
        platform: Platform::Generic,
        id: Cow::Borrowed(id),
        uri: None,
        url: string(&paths.url).map(Cow::Borrowed),
        author: Author {
            id: Cow::Borrowed(author_id),
            handle: handle.map(Cow::Borrowed),
            name: None,
            followers,
            verified: None,
            description: None,
        },
        text: Cow::Borrowed(text),
        lang: string(&paths.lang).map(Cow::Borrowed),
        created_at: string(&paths.created_at).map(Cow::Borrowed),
        time_us: None,
        engagement: None,
        flags: PostFlags::default(),
        links: Vec::new(),
        original: None,
        thread: Default::default(),
    });
    Ok(1)
}

/// A string as is, or an integer written into `buf`.
fn string_or_integer<'a>(value: Val<'_, 'a>, buf: &'a mut String) -> Option<&'a str> {
    if let Some(s) = value.str() {
        return Some(s);
    }
    buf.clear();
    // Writing to a String cannot fail.
    let _ = match (value.u64(), value.i64()) {
        (Some(n), _) => write!(buf, "{n}"),
        (None, Some(n)) => write!(buf, "{n}"),
        (None, None) => return None,
    };
    Some(buf.as_str())
}
