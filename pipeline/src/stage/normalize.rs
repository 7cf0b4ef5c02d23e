//! Normalize: post text → casefolded text plus the hashtag, handle, cashtag and URL tokens the
//! matcher's word-boundary rules need.
//!
//! # Input → output
//! [`normalize`] clears a caller-owned [`Normalized`] and refills it with
//! - the text lowercased (`char::to_lowercase`, with an ASCII fast path since most posts are
//!   ASCII), fullwidth ASCII forms (`ＡＣＭＥ`, common in Japanese posts) mapped to ASCII, and
//!   every run of whitespace (`\n`, tabs, no-break spaces, U+3000) collapsed to one `' '`, so a
//!   phrase term `"acme corp"` is one literal needle whatever the spacing;
//! - the tokens of that text, in order: `#hashtags`, `@handles` (Bluesky handles with their
//!   domain: `@acmehq.bsky.social`), `$cashtags` and `http(s)://` URLs, as byte ranges into
//!   [`Normalized::text`].
//!
//! Terms of rules are folded by the very same function ([`casefold_into`]), so a term and the
//! text it should hit always agree on case, width and spacing.
//!
//! # Invariants
//! - All offsets are byte offsets into [`Normalized::text`] (not into the original text) and lie
//!   on char boundaries; tokens are sorted by start and never overlap.
//! - A token's sigil has a word boundary before it ([`is_boundary`]): `foo@bar.com` holds no
//!   handle and `c#` no hashtag. `#`, `@` and `$` inside a URL start no token.
//! - No allocation once the buffers have grown to the longest post seen: `normalize` only
//!   clears and refills.
//!
//! # Why shaped so
//! The matcher searches one Aho-Corasick automaton over this text and checks boundaries only
//! on the rare hits, so normalize does just the work every post needs (one pass to fold, one
//! `memchr3` pass for sigils) and leaves the per-hit questions ("is this hit inside a hashtag?")
//! to cheap lookups: [`Normalized::inside_hashtag_or_handle`]. It counts nothing: it cannot
//! fail.
//!
//! # Character classes
//! Word characters are Unicode alphanumerics, `_` and combining diacritical marks (so `é`
//! written as `e` + U+0301 is one word). Scripts written without spaces between words (Han,
//! kana, Hangul, Thai, Lao, Khmer, Myanmar, Tibetan) are word characters too, but a change
//! between such a script and any other is a word boundary: `acmeの新製品` mentions `acme`.

use memchr::memmem;

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// `#tag`: the sigil and a run of word characters.
    Hashtag,
    /// `@handle`: the sigil and a run of word characters, `.` and `-` (trailing `.`/`-` are
    /// punctuation, not part of the handle).
    Handle,
    /// `$TICKER`: the sigil, a letter, then word characters.
    Cashtag,
    /// `http://…` or `https://…` up to the next space, without trailing punctuation.
    Url,
}

/// One token of the normalized text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token {
    /// What it is.
    pub kind: TokenKind,
    /// Byte offset of its first byte (the sigil, or the URL scheme) in [`Normalized::text`].
    pub start: usize,
    /// Byte offset one past its last byte.
    pub end: usize,
}

/// A post's text after normalization, with its tokens. Reused across posts: create one per
/// worker with [`Normalized::new`] and pass it to [`normalize`] for each post.
#[derive(Debug, Clone)]
pub struct Normalized {
    /// The casefolded, whitespace-collapsed text.
    text: String,
    /// Every token, sorted by start.
    tokens: Vec<Token>,
    /// URL ranges found by the first pass, merged into `tokens` by the second.
    urls: Vec<Token>,
    /// `://`, built once: constructing a searcher per post would cost more than the search.
    scheme_sep: memmem::Finder<'static>,
}

impl Default for Normalized {
    fn default() -> Self {
        Normalized::new()
    }
}

impl Normalized {
    /// An empty value with no text; buffers grow on first use and are then reused.
    pub fn new() -> Self {
        Normalized {
            text: String::new(),
            tokens: Vec::new(),
            urls: Vec::new(),
            scheme_sep: memmem::Finder::new("://"),
        }
    }

    /// The casefolded text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The hashtag, handle, cashtag and URL tokens of [`Normalized::text`], sorted by start.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// Whether `start..end` lies inside a hashtag or handle token, after its sigil. The matcher
    /// asks this to accept compound hashtags (`#acmefail`) and Bluesky handles
    /// (`@acmehq.bsky.social`) as mentions of a word term without a right boundary.
    pub fn inside_hashtag_or_handle(&self, start: usize, end: usize) -> bool {
        let i = self.tokens.partition_point(|t| t.start < start);
        match i.checked_sub(1).and_then(|i| self.tokens.get(i)) {
            Some(t) => matches!(t.kind, TokenKind::Hashtag | TokenKind::Handle) && end <= t.end,
            None => false,
        }
    }

    fn clear(&mut self) {
        self.text.clear();
        self.tokens.clear();
        self.urls.clear();
    }
}

/// Clears `out` and fills it with the normalized form of `text` and its tokens. Allocates
/// only while `out`'s buffers grow to the longest text seen.
pub fn normalize(text: &str, out: &mut Normalized) {
    out.clear();
    casefold_into(text, &mut out.text);
    find_urls(&out.text, &out.scheme_sep, &mut out.urls);
    find_tokens(&out.text, &out.urls, &mut out.tokens);
}

/// Appends the casefolded form of `text` to `out`: lowercase, fullwidth ASCII mapped to ASCII,
/// whitespace runs collapsed to one space. Used for post texts and, at rule load, for terms.
///
/// One pass that copies unchanged runs with a single `push_str` (ASCII letters are lowercased
/// in place at the end; kana, Han, Hangul and emoji are skipped over without a table lookup,
/// see `has_no_case`) and writes only what changes: whitespace runs other than one `' '`,
/// fullwidth forms, and characters with a different lowercase.
pub fn casefold_into(text: &str, out: &mut String) {
    let from = out.len();
    let bytes = text.as_bytes();
    let mut seg = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes
            .get(i..i + 8)
            .and_then(|c| <[u8; 8]>::try_from(c).ok())
        {
            if is_plain_chunk(u64::from_le_bytes(chunk)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        if b < 0x80 {
            if !is_ascii_space(b) {
                i += 1;
                continue;
            }
            if b == b' ' && space_len_at(text, i + 1) == 0 {
                // A lone space is already normal.
                i += 1;
                continue;
            }
        } else {
            let Some(c) = text.get(i..).and_then(|rest| rest.chars().next()) else {
                break;
            };
            let len = c.len_utf8();
            if has_no_case(c) {
                i += len;
                continue;
            }
            if !c.is_whitespace() {
                let changed = if let Some(a) = fullwidth_to_ascii(c) {
                    out.push_str(&text[seg..i]);
                    out.push(a);
                    true
                } else if c.to_lowercase().eq(std::iter::once(c)) {
                    false
                } else {
                    out.push_str(&text[seg..i]);
                    out.extend(c.to_lowercase());
                    true
                };
                i += len;
                if changed {
                    seg = i;
                }
                continue;
            }
        }
        // A whitespace run that is not a lone ' ': collapse it.
        let mut j = i;
        loop {
            let n = space_len_at(text, j);
            if n == 0 {
                break;
            }
            j += n;
        }
        out.push_str(&text[seg..i]);
        out.push(' ');
        seg = j;
        i = j;
    }
    out.push_str(&text[seg..]);
    out[from..].make_ascii_lowercase();
}

const LO_BYTES: u64 = 0x0101_0101_0101_0101;
const HI_BITS: u64 = 0x8080_8080_8080_8080;

/// Whether 8 bytes (little-endian) are copied unchanged by [`casefold_into`] apart from ASCII
/// lowercasing: all ASCII, no control characters, no space beside another, and not ending in
/// a space (the next chunk might start a run). Skipping such chunks whole makes the common
/// case a word-at-a-time scan instead of a byte loop.
fn is_plain_chunk(x: u64) -> bool {
    // Any byte >= 0x80, or (classic "has byte less than n" test, exact for n <= 0x80) < 0x20.
    if x & HI_BITS != 0 || x.wrapping_sub(LO_BYTES * 0x20) & !x & HI_BITS != 0 {
        return false;
    }
    // High bit set exactly in the bytes equal to ' ' (no carries: each byte stays < 0x100).
    let y = x ^ (LO_BYTES * 0x20);
    let spaces = !((y & !HI_BITS).wrapping_add(!HI_BITS) | y) & HI_BITS;
    spaces & (spaces << 8) == 0 && spaces >> 63 == 0
}

/// The casefolded form of a term, trimmed: what the matcher searches for.
pub fn casefold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    casefold_into(text.trim(), &mut out);
    out
}

/// ASCII whitespace as `char::is_whitespace` sees it (`u8::is_ascii_whitespace` leaves out
/// U+000B).
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Byte length of the whitespace character at byte `i` of `text`, or 0 if there is none.
fn space_len_at(text: &str, i: usize) -> usize {
    match text.as_bytes().get(i) {
        None => 0,
        Some(&b) if b < 0x80 => usize::from(is_ascii_space(b)),
        Some(_) => match text.get(i..).and_then(|rest| rest.chars().next()) {
            Some(c) if c.is_whitespace() => c.len_utf8(),
            _ => 0,
        },
    }
}

/// Blocks where no character has a lowercase mapping and none is whitespace (checked for
/// every character by a test): most non-ASCII text in posts (kana, Han, Hangul, emoji,
/// punctuation) skips the case-table lookup.
fn has_no_case(c: char) -> bool {
    matches!(c as u32,
        0x2010..=0x2027       // dashes, quotes, bullets
        | 0x2030..=0x205E     // more punctuation
        | 0x2070..=0x20FF     // super/subscripts, currency, combining marks for symbols
        | 0x2190..=0x23FF     // arrows, math operators, technical
        | 0x2500..=0x2BFF     // box drawing, shapes, misc symbols, dingbats, arrows
        | 0x3001..=0xA63F     // CJK punctuation, kana, Bopomofo, Hangul Jamo, CJK, Yi
        | 0xAC00..=0xD7FF     // Hangul syllables
        | 0xF900..=0xFAFF     // CJK compatibility ideographs
        | 0xFE00..=0xFE0F     // variation selectors
        | 0x1F000..=0x1FAFF   // emoji and pictographs
        | 0x20000..=0x3FFFF // CJK extensions
    )
}

/// `！`..`～` (U+FF01..U+FF5E) are ASCII `!`..`~` in fullwidth form.
fn fullwidth_to_ascii(c: char) -> Option<char> {
    let u = c as u32;
    if (0xFF01..=0xFF5E).contains(&u) {
        char::from_u32(u - 0xFEE0)
    } else {
        None
    }
}

/// A word character: Unicode alphanumeric, `_`, or a combining diacritical mark.
pub fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == '_'
    } else {
        c.is_alphanumeric() || ('\u{300}'..='\u{36f}').contains(&c)
    }
}

/// A character of a script written without spaces between words, where a term can only be
/// found as a substring: Han, Hiragana, Katakana, Bopomofo, Hangul, Thai, Lao, Tibetan,
/// Myanmar, Khmer (and their extensions and halfwidth forms).
pub fn is_unspaced_script(c: char) -> bool {
    let u = c as u32;
    if u < 0x0E00 {
        return false;
    }
    matches!(u,
        0x0E00..=0x0EFF       // Thai, Lao
        | 0x0F00..=0x0FFF     // Tibetan
        | 0x1000..=0x109F     // Myanmar
        | 0x1100..=0x11FF     // Hangul Jamo
        | 0x1780..=0x17FF     // Khmer
        | 0x19E0..=0x19FF     // Khmer symbols
        | 0x2E80..=0x2FDF     // CJK radicals, Kangxi radicals
        | 0x3005..=0x3007     // 々 〆 〇
        | 0x3021..=0x3029     // Hangzhou numerals
        | 0x3031..=0x3035     // kana repeat marks
        | 0x3038..=0x303C
        | 0x3040..=0x30FF     // Hiragana, Katakana
        | 0x3100..=0x312F     // Bopomofo
        | 0x3130..=0x318F     // Hangul compatibility Jamo
        | 0x31A0..=0x31FF     // Bopomofo ext, CJK strokes, Katakana ext
        | 0x3400..=0x4DBF     // CJK ext A
        | 0x4E00..=0x9FFF     // CJK unified ideographs
        | 0xA960..=0xA97F     // Hangul Jamo ext A
        | 0xA9E0..=0xA9FF     // Myanmar ext B
        | 0xAA60..=0xAA7F     // Myanmar ext A
        | 0xAC00..=0xD7FF     // Hangul syllables, Jamo ext B
        | 0xF900..=0xFAFF     // CJK compatibility ideographs
        | 0xFF66..=0xFFDC     // halfwidth Katakana and Hangul
        | 0x1B000..=0x1B16F   // kana supplement, ext A, small kana
        | 0x20000..=0x3134F // CJK ext B..G
    )
}

/// Whether there is a word boundary between `edge` (the character at the edge of a term or
/// token) and `neighbor` (the character beside it, `None` at the start or end of the text):
/// the neighbor is not a word character, or one of the two belongs to a script written
/// without spaces and the other does not.
pub fn is_boundary(edge: char, neighbor: Option<char>) -> bool {
    match neighbor {
        None => true,
        Some(n) => !is_word_char(n) || is_unspaced_script(n) != is_unspaced_script(edge),
    }
}

/// The character just before byte offset `at` of `text`, if any (and if `at` is a boundary).
pub fn char_before(text: &str, at: usize) -> Option<char> {
    text.get(..at).and_then(|s| s.chars().next_back())
}

/// The character starting at byte offset `at` of `text`, if any (and if `at` is a boundary).
pub fn char_at(text: &str, at: usize) -> Option<char> {
    text.get(at..).and_then(|s| s.chars().next())
}

/// Trailing punctuation that ends a sentence rather than a URL.
fn is_url_trailer(b: u8) -> bool {
    matches!(
        b,
        b'.' | b',' | b';' | b':' | b'!' | b'?' | b')' | b']' | b'\'' | b'"' | b'>'
    )
}

/// First pass: `http://` and `https://` URLs, up to the next space.
fn find_urls(text: &str, sep: &memmem::Finder<'static>, urls: &mut Vec<Token>) {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(rel) = sep.find(&bytes[from..]) {
        let colon = from + rel;
        let start = if colon >= 5 && &bytes[colon - 5..colon] == b"https" {
            colon - 5
        } else if colon >= 4 && &bytes[colon - 4..colon] == b"http" {
            colon - 4
        } else {
            from = colon + 3;
            continue;
        };
        let after = colon + 3;
        let mut end = memchr::memchr(b' ', &bytes[after..]).map_or(bytes.len(), |i| after + i);
        while end > after && is_url_trailer(bytes[end - 1]) {
            end -= 1;
        }
        let bounded = is_boundary('h', char_before(text, start));
        if bounded && end > after {
            urls.push(Token {
                kind: TokenKind::Url,
                start,
                end,
            });
        }
        from = end.max(after);
    }
}

/// Second pass: sigil tokens outside URLs, merged with the URLs into one sorted list.
fn find_tokens(text: &str, urls: &[Token], tokens: &mut Vec<Token>) {
    let bytes = text.as_bytes();
    let mut next_url = 0;
    let mut resume = 0;
    for at in memchr::memchr3_iter(b'#', b'@', b'$', bytes) {
        if at < resume {
            continue;
        }
        while let Some(u) = urls.get(next_url) {
            if u.start > at {
                break;
            }
            // A URL that starts inside an earlier token (`@a.https://…`) is part of it.
            if u.start >= resume {
                tokens.push(*u);
                resume = u.end;
            }
            next_url += 1;
        }
        if at < resume {
            continue;
        }
        let sigil = char::from(bytes[at]);
        if !is_boundary(sigil, char_before(text, at)) {
            continue;
        }
        if let Some(token) = sigil_token(text, at, sigil) {
            resume = token.end;
            tokens.push(token);
        }
    }
    for u in &urls[next_url..] {
        if u.start >= resume {
            tokens.push(*u);
            resume = u.end;
        }
    }
}

/// The token starting with the sigil at byte `at`, if its body is well-formed.
fn sigil_token(text: &str, at: usize, sigil: char) -> Option<Token> {
    let body_start = at + 1;
    let body = text.get(body_start..)?;
    let (kind, len) = match sigil {
        '#' => (TokenKind::Hashtag, run_len(body, is_word_char)),
        '@' => {
            let run = &body[..run_len(body, |c| is_word_char(c) || c == '.' || c == '-')];
            (TokenKind::Handle, run.trim_end_matches(['.', '-']).len())
        }
        _ => {
            if !body.chars().next().is_some_and(char::is_alphabetic) {
                return None;
            }
            (TokenKind::Cashtag, run_len(body, is_word_char))
        }
    };
    (len > 0).then_some(Token {
        kind,
        start: at,
        end: body_start + len,
    })
}

/// Byte length of the longest prefix of `s` whose chars all satisfy `f`.
fn run_len(s: &str, f: impl Fn(char) -> bool) -> usize {
    s.char_indices()
        .find(|&(_, c)| !f(c))
        .map_or(s.len(), |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn tok(kind: TokenKind, text: &str, part: &str) -> Token {
        let start = text.find(part).expect("token text in normalized text");
        Token {
            kind,
            start,
            end: start + part.len(),
        }
    }

    #[test]
    fn folds_case_width_and_space() {
        let cases: &[(&str, &str, &str)] = &[
            ("ascii lowercase", "ACME Corp", "acme corp"),
            ("ascii space runs", "acme \t\n  corp", "acme corp"),
            ("ascii lone specials", "a\tb\nc\rd\x0be", "a b c d e"),
            ("unicode lowercase", "ÁCME Ünïcode", "ácme ünïcode"),
            ("greek sigma by char", "ΣΟΦΙΑ", "σοφια"),
            ("dotted capital I expands", "İ", "i\u{307}"),
            ("fullwidth ascii", "ＡＣＭＥの新製品", "acmeの新製品"),
            ("unicode spaces", "acme\u{a0}\u{3000}corp", "acme corp"),
            ("mixed path spaces", "é \t x", "é x"),
            ("leading and trailing runs", "  acme  ", " acme "),
            ("empty", "", ""),
            ("emoji untouched", "ACME 🔥🏳️‍🌈", "acme 🔥🏳️‍🌈"),
        ];
        let mut n = Normalized::new();
        for (name, input, want) in cases {
            normalize(input, &mut n);
            assert_eq!(n.text(), *want, "{name}");
            assert_eq!(fold_reference(input), *want, "{name} (reference)");
        }
    }

    /// The obvious per-character fold the fast one must equal.
    fn fold_reference(text: &str) -> String {
        let mut out = String::new();
        let mut in_space = false;
        for c in text.chars() {
            if c.is_whitespace() {
                if !in_space {
                    out.push(' ');
                }
                in_space = true;
                continue;
            }
            in_space = false;
            match fullwidth_to_ascii(c) {
                Some(a) => out.push(a.to_ascii_lowercase()),
                None => out.extend(c.to_lowercase()),
            }
        }
        out
    }

    #[test]
    fn plain_chunks() {
        let cases: &[(&[u8; 8], bool)] = &[
            (b"abcdefgh", true),
            (b"ab cd ef", true),
            (b"ABC!~{}0", true),
            (b"ab  cdef", false),
            (b"abcdefg ", false),
            (b" bcdefgh", true),
            (b"abc\tdefg", false),
            (b"abc\ndefg", false),
            (b"abc\x7fdefg", true),
            (b"\x1fbcdefgh", false),
            (&[b'a', b'b', 0xc3, 0xa9, b'c', b'd', b'e', b'f'], false),
            (b"a b c d ", false),
            (b"a b c d!", true),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                is_plain_chunk(u64::from_le_bytes(**bytes)),
                *want,
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn caseless_blocks_have_no_case() {
        let all = (0..=0x10FFFFu32).filter_map(char::from_u32);
        for c in all.filter(|&c| has_no_case(c)) {
            assert!(
                c.to_lowercase().eq(std::iter::once(c)),
                "{c:?} has a lowercase"
            );
            assert!(!c.is_whitespace(), "{c:?} is whitespace");
            assert!(fullwidth_to_ascii(c).is_none(), "{c:?} is fullwidth ASCII");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 1024,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn fold_equals_reference(
            parts in prop::collection::vec(
                prop_oneof![
                    prop::sample::select(&[
                        " ", "  ", "\t", "\n", "\u{a0}", "\u{3000}", " \u{3000}", "\u{3000} ",
                        "\u{2028}", "\x0b", "ÁCME", "İ", "ǅ", "Ω", "K", "ＡＣ", "東京", "ア",
                        "🏳️‍🌈", "ß", "Σ", "e\u{301}", "#", "@x.y", "Hello World", "ab cd",
                        "x", "ABCDEFGHIJ", "a\r\nb",
                    ][..]).prop_map(String::from),
                    "\\PC{0,6}",
                ],
                0..16,
            )
        ) {
            let text = parts.concat();
            let mut out = String::from("kept:");
            casefold_into(&text, &mut out);
            prop_assert_eq!(&out[5..], fold_reference(&text), "{:?}", text);
        }
    }

    #[test]
    fn finds_tokens() {
        use TokenKind::*;
        type Case = (
            &'static str,
            &'static str,
            &'static [(TokenKind, &'static str)],
        );
        let cases: &[Case] = &[
            ("hashtag", "Love #Acme!", &[(Hashtag, "#acme")]),
            (
                "compound hashtag",
                "#AcmeFail again",
                &[(Hashtag, "#acmefail")],
            ),
            ("cjk hashtag", "#東京タワー へ", &[(Hashtag, "#東京タワー")]),
            ("hashtag after cjk", "新製品#acme", &[(Hashtag, "#acme")]),
            ("no hashtag inside a word", "c# and f#", &[]),
            ("lone sigils", "# @ $ #! @.", &[]),
            (
                "bluesky handle",
                "hi @AcmeHQ.bsky.social.",
                &[(Handle, "@acmehq.bsky.social")],
            ),
            ("handle trailing dash", "@acme- x", &[(Handle, "@acme")]),
            ("email is no handle", "me@acme.com", &[]),
            ("cashtag", "buy $ACME now", &[(Cashtag, "$acme")]),
            ("price is no cashtag", "it cost $100", &[]),
            (
                "url hides its sigils",
                "see https://x.com/#acme @acme",
                &[(Url, "https://x.com/#acme"), (Handle, "@acme")],
            ),
            (
                "url trailing punctuation",
                "(http://acme.com/a).",
                &[(Url, "http://acme.com/a")],
            ),
            ("url needs scheme", "ftp://acme.com", &[]),
            ("url scheme inside word", "xhttps://acme.com", &[]),
            (
                "url inside a handle",
                "@a.https://x.io",
                &[(Handle, "@a.https")],
            ),
            (
                "mixed order",
                "$ACME #up https://a.io @b",
                &[
                    (Cashtag, "$acme"),
                    (Hashtag, "#up"),
                    (Url, "https://a.io"),
                    (Handle, "@b"),
                ],
            ),
        ];
        let mut n = Normalized::new();
        for (name, input, want) in cases {
            normalize(input, &mut n);
            let want: Vec<Token> = want.iter().map(|(k, p)| tok(*k, n.text(), p)).collect();
            assert_eq!(n.tokens(), want.as_slice(), "{name}: {:?}", n.text());
        }
    }

    #[test]
    fn inside_hashtag_or_handle() {
        // (text, term, expected) for the first occurrence of `term` in the normalized text.
        let cases: &[(&str, &str, bool)] = &[
            ("#acmefail", "acme", true),
            ("@acmehq.bsky.social", "acme", true),
            ("@acmehq.bsky.social", "bsky", true),
            ("$acmex", "acme", false),
            ("acmefail", "acme", false),
            ("#acme fail", "fail", false),
            ("https://acme.com", "acme", false),
        ];
        let mut n = Normalized::new();
        for (text, term, want) in cases {
            normalize(text, &mut n);
            let s = n.text().find(term).expect("term in text");
            assert_eq!(
                n.inside_hashtag_or_handle(s, s + term.len()),
                *want,
                "{text} / {term}"
            );
        }
    }

    #[test]
    fn char_classes_and_boundaries() {
        let words = [
            ('a', true),
            ('É', true),
            ('_', true),
            ('7', true),
            ('\u{301}', true),
        ];
        let non_words = [
            ('\'', false),
            ('’', false),
            ('#', false),
            ('-', false),
            ('🔥', false),
        ];
        for (c, want) in words.iter().chain(non_words.iter()) {
            assert_eq!(is_word_char(*c), *want, "{c:?}");
        }
        let cases = [
            ('e', None, true),
            ('e', Some(' '), true),
            ('e', Some('x'), false),
            ('e', Some('の'), true),
            ('東', Some('京'), false),
            ('東', Some('a'), true),
            ('#', Some('a'), false),
        ];
        for (edge, n, want) in cases {
            assert_eq!(is_boundary(edge, n), want, "{edge:?} {n:?}");
        }
    }

    #[test]
    fn reuses_buffers() {
        let mut n = Normalized::new();
        normalize(
            "a much longer text with #tags and @handles.bsky.social than later",
            &mut n,
        );
        let (cap_text, cap_tokens) = (n.text.capacity(), n.tokens.capacity());
        normalize("short #x", &mut n);
        assert_eq!(n.text(), "short #x");
        assert_eq!(
            (n.text.capacity(), n.tokens.capacity()),
            (cap_text, cap_tokens)
        );
    }

    #[test]
    fn fixture_texts_normalize_consistently() {
        let Some(dir) = fixtures_dir() else {
            panic!("shared/fixtures/formats not found above CARGO_MANIFEST_DIR");
        };
        let raw = std::fs::read_to_string(dir.join("jetstream-sample.ndjson"))
            .expect("read jetstream sample");
        let mut n = Normalized::new();
        let mut texts = 0;
        for line in raw.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("fixture is JSON");
            let Some(text) = v.pointer("/commit/record/text").and_then(|t| t.as_str()) else {
                continue;
            };
            texts += 1;
            normalize(text, &mut n);
            assert_eq!(n.text(), fold_reference(text));
            for t in n.tokens() {
                let s = &n.text()[t.start..t.end];
                let first = s.as_bytes()[0];
                assert!(matches!(first, b'#' | b'@' | b'$' | b'h'), "{s}");
            }
            assert!(n.tokens().windows(2).all(|w| w[0].end <= w[1].start));
        }
        assert_eq!(texts, 17, "the sample holds 17 post creates");
    }

    fn fixtures_dir() -> Option<std::path::PathBuf> {
        let mut dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        loop {
            let candidate = dir.join("shared/fixtures/formats");
            if candidate.is_dir() {
                return Some(candidate);
            }
            dir = dir.parent()?;
        }
    }
}
