//! Normalize: post text → casefolded text plus the hashtag, handle, cashtag and URL tokens the
//! matcher's word-boundary rules need; and, for accent-insensitive rules, the same text with
//! the accents of Latin and Greek letters removed.
//!
//! # Input → output
//! [`normalize`] clears a caller-owned [`Normalized`] and refills it with
//! - the text under full Unicode case folding (CaseFolding.txt statuses C and F, so `Straße`,
//!   `STRASSE` and `straße` all become `strasse`, a final `ς` becomes `σ` and `ﬁ` becomes `fi`;
//!   with an ASCII fast path since most posts are ASCII), fullwidth ASCII forms (`ＡＣＭＥ`,
//!   common in Japanese posts) mapped to ASCII, the emoji variation selectors U+FE0E/U+FE0F
//!   dropped (so `❤️` and `❤` are one character; skin-tone modifiers stay), and every run of
//!   whitespace (`\n`, tabs, no-break spaces, U+3000) collapsed to one `' '`, so a phrase term
//!   `"acme corp"` is one literal needle whatever the spacing;
//! - the tokens of that text, in order: `#hashtags`, `@handles` (Bluesky handles with their
//!   domain: `@acmehq.bsky.social`), `$cashtags` and `http(s)://` URLs, as byte ranges into
//!   [`Normalized::text`].
//!
//! Terms of rules are folded by the very same function ([`casefold_into`], through
//! [`casefold`]), so a term and the text it should hit always agree on case, width, spacing
//! and variation selectors: full folding applied to both sides is what makes `straße` find
//! `STRASSE`.
//!
//! [`normalize_accents`] derives from a [`Normalized`] a second one whose text has the accents
//! of Latin and Greek letters removed ([`fold_accents_into`]: `café` → `cafe`, `ωμέγα` →
//! `ωμεγα`), for rules that ask to ignore accents; their terms go through [`fold_accents`]
//! after [`casefold`]. It reports when nothing changed, so the matcher can skip a second
//! search of the (usually ASCII) text.
//!
//! # Invariants
//! - All offsets are byte offsets into [`Normalized::text`] (not into the original text) and lie
//!   on char boundaries; tokens are sorted by start and never overlap.
//! - A token's sigil has a word boundary before it ([`is_boundary`]): `foo@bar.com` holds no
//!   handle and `c#` no hashtag. `#`, `@` and `$` inside a URL start no token.
//! - No allocation once the buffers have grown to the longest post seen: `normalize` and
//!   `normalize_accents` only clear and refill.
//!
//! # Why shaped so
//! The matcher searches this text once (its start trie from word starts, plus an Aho-Corasick
//! automaton only for terms in scripts without spaces) and checks boundaries only on the rare
//! hits, so normalize does just the work every post needs (one pass to fold, one
//! `memchr3` pass for sigils) and leaves the per-hit questions ("is this hit inside a hashtag?")
//! to cheap lookups: [`Normalized::inside_hashtag_or_handle`]. It counts nothing: it cannot
//! fail.
//!
//! # Character classes
//! Word characters are Unicode alphanumerics, `_` and combining diacritical marks (so `é`
//! written as `e` + U+0301 is one word). Scripts written without spaces between words (Han,
//! kana, Hangul, Thai, Lao, Khmer, Myanmar, Tibetan) are word characters too, but a change
//! between such a script and any other is a word boundary: `acmeの新製品` mentions `acme`.
//! The edge of a term that is not a word character (emoji, punctuation) needs no boundary on
//! its side, so the term `🔥` is found in `acme🔥🔥`; the sigils `#`, `@` and `$` are the
//! exception, since they start a token only after a non-word character.

// Case folding comes from `caseless` (unicode-rs): its `Caseless::default_case_fold` adapter
// folds one `char` at a time with the full C + F mappings of CaseFolding.txt and no
// allocation, which is what the single-pass, copy-unchanged-runs loop below needs. `unicase`
// has the same table but only folds into a new `String` (its per-char lookup is private), and
// `focaccia` only compares two strings; neither fits a fold into a reused buffer.
use caseless::Caseless;
use memchr::memmem;
use unicode_normalization::char::{decompose_canonical, is_combining_mark};

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

/// Appends the casefolded form of `text` to `out`: full Unicode case folding (C + F),
/// fullwidth ASCII mapped to ASCII, emoji variation selectors dropped, whitespace runs
/// collapsed to one space. Used for post texts and, at rule load, for terms.
///
/// One pass that copies unchanged runs with a single `push_str` (ASCII letters are lowercased
/// in place at the end; kana, Han, Hangul and emoji are skipped over without a table lookup,
/// see `has_no_case`) and writes only what changes: whitespace runs other than one `' '`,
/// fullwidth forms, variation selectors, and characters that fold to something else. A
/// variation selector inside a whitespace run is part of the run, so dropping it never leaves
/// two spaces side by side.
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
            if b == b' ' && space_len_at(text, i + 1) == 0 && selector_len_at(bytes, i + 1) == 0 {
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
            if is_emoji_selector(c) {
                out.push_str(&text[seg..i]);
                i += len;
                seg = i;
                continue;
            }
            if !c.is_whitespace() {
                if let Some(a) = fullwidth_to_ascii(c) {
                    out.push_str(&text[seg..i]);
                    out.push(a);
                    seg = i + len;
                } else {
                    let mut fold = std::iter::once(c).default_case_fold();
                    let first = fold.next().unwrap_or(c);
                    let second = fold.next();
                    if first != c || second.is_some() {
                        out.push_str(&text[seg..i]);
                        out.push(first);
                        out.extend(second);
                        out.extend(fold);
                        seg = i + len;
                    }
                }
                i += len;
                continue;
            }
        }
        // A whitespace run that is not a lone ' ' (variation selectors in it included):
        // collapse it.
        let mut j = i;
        loop {
            let n = match space_len_at(text, j) {
                0 => selector_len_at(bytes, j),
                n => n,
            };
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

/// U+FE0E (text style) and U+FE0F (emoji style): they choose how a character is drawn, not
/// which character it is, and posts use them inconsistently (`❤️` and `❤` are both common),
/// so folding drops them. Other variation selectors (U+FE00..U+FE0D, for CJK and math forms)
/// stay.
fn is_emoji_selector(c: char) -> bool {
    matches!(c, '\u{FE0E}' | '\u{FE0F}')
}

/// Byte length (3) of the emoji variation selector at byte `i` of `bytes`, or 0 if there is
/// none.
fn selector_len_at(bytes: &[u8], i: usize) -> usize {
    match bytes.get(i..i + 3) {
        Some([0xEF, 0xB8, 0x8E | 0x8F]) => 3,
        _ => 0,
    }
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

/// The casefolded form of a term, trimmed: what the matcher searches for. Trimmed again after
/// folding, since a dropped variation selector can leave a space at an end (`"\u{FE0F} acme"`).
pub fn casefold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    casefold_into(text.trim(), &mut out);
    if out.starts_with(' ') || out.ends_with(' ') {
        out = out.trim_matches(' ').to_string();
    }
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

/// Blocks where no character has a case folding, none is whitespace and none is an emoji
/// variation selector (checked for every character by a test): most non-ASCII text in posts
/// (kana, Han, Hangul, emoji, punctuation) skips the case-table lookup.
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
        | 0xFE00..=0xFE0D     // variation selectors, less the emoji ones (dropped)
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

/// Fills `out` with `src`'s text accent-folded ([`fold_accents_into`]) and that text's tokens,
/// and returns true; or, when folding changes nothing (every ASCII post, and most others),
/// leaves `out` cleared and returns false, so the caller need not search the same text twice.
/// Allocates only while `out`'s buffers grow to the longest text seen.
pub fn normalize_accents(src: &Normalized, out: &mut Normalized) -> bool {
    out.clear();
    let text = src.text.as_str();
    let start = ascii_prefix_len(text.as_bytes());
    if start == text.len() || !fold_accents_from(text, start, &mut out.text) {
        out.clear();
        return false;
    }
    find_urls(&out.text, &out.scheme_sep, &mut out.urls);
    find_tokens(&out.text, &out.urls, &mut out.tokens);
    true
}

/// Appends `folded` (text already casefolded by [`casefold_into`]) to `out` with the accents of
/// Latin and Greek letters removed, and returns whether anything changed. Pure ASCII is
/// appended unchanged after a word-at-a-time scan, and returns false.
///
/// What is removed or replaced, and why:
/// - Combining marks of the combining-diacritics blocks (U+0300–036F, U+1AB0–1AFF,
///   U+1DC0–1DFF, U+20D0–20FF, U+FE20–FE2F) that follow a Latin or Greek letter, whether
///   written as separate characters (`e` + U+0301) or inside a precomposed letter (`é`, `ệ`,
///   `ά`, found by canonical decomposition with `unicode-normalization`): `café` → `cafe`,
///   `ação` → `acao`, `ωμέγα` → `ωμεγα`, `i̇stanbul` (from `İSTANBUL`) → `istanbul`.
/// - Latin letters that have no decomposition but are read as accented forms of a base
///   letter: `ø`→`o`, `ł`→`l`, `đ`→`d`, `ħ`→`h`, `ı`→`i`, `æ`→`ae`, `œ`→`oe`, `þ`→`th`
///   (lowercase only: the input is casefolded).
///
/// What stays:
/// - Marks on any other base. In Cyrillic `й` (и + U+0306) and `ё` are letters of their own
///   to Russian and Ukrainian readers, not accented `и` and `е`, so they are kept; marks on
///   digits and symbols (the keycap U+20E3 in `1⃣`) are kept too.
/// - Everything outside Latin and Greek letters is copied unchanged, not renormalized, so
///   kana voicing marks (`が`, U+3099/U+309A are outside those blocks anyway) and Hangul
///   (`한국`) survive as written. A Latin or Greek letter loses only diacritic-block marks,
///   and every canonical composition of such a letter uses only those (checked by a test over
///   all of Unicode), so what remains needs no recomposition to be in NFC.
///
/// Folding is idempotent and never changes ASCII.
pub fn fold_accents_into(folded: &str, out: &mut String) -> bool {
    let start = ascii_prefix_len(folded.as_bytes());
    if start == folded.len() {
        out.push_str(folded);
        return false;
    }
    fold_accents_from(folded, start, out)
}

/// The accent-folded form of a term already casefolded with [`casefold`]: what an
/// accent-insensitive rule searches for in [`normalize_accents`]'s text.
pub fn fold_accents(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    fold_accents_into(s, &mut out);
    out
}

/// [`fold_accents_into`] for text whose first non-ASCII byte is at `start`.
fn fold_accents_from(folded: &str, start: usize, out: &mut String) -> bool {
    let mut changed = false;
    let mut seg = 0;
    // Whether the last character that is not a combining mark is a Latin or Greek letter:
    // the marks that follow it are its accents.
    let mut after_letter = start > 0 && folded.as_bytes()[start - 1].is_ascii_alphabetic();
    for (i, c) in folded[start..].char_indices() {
        let i = start + i;
        if c.is_ascii() {
            after_letter = c.is_ascii_alphabetic();
            continue;
        }
        if is_diacritic_mark(c) {
            if after_letter {
                out.push_str(&folded[seg..i]);
                seg = i + c.len_utf8();
                changed = true;
            }
            continue;
        }
        // Another mark on the same letter (a Hebrew point, say): kept, and the letter's later
        // diacritics still go. Only asked after a Latin or Greek letter, which is rare
        // outside Latin and Greek text.
        if after_letter && is_combining_mark(c) {
            continue;
        }
        after_letter = is_latin_or_greek_letter(c);
        if !after_letter {
            continue;
        }
        let base = strip_diacritics(c).unwrap_or(c);
        let replacement = letter_without_accent(base);
        if base == c && replacement.is_none() {
            continue;
        }
        out.push_str(&folded[seg..i]);
        match replacement {
            Some(r) => out.push_str(r),
            None => out.push(base),
        }
        seg = i + c.len_utf8();
        changed = true;
    }
    out.push_str(&folded[seg..]);
    changed
}

/// Length of the ASCII prefix of `bytes`, eight bytes at a time.
fn ascii_prefix_len(bytes: &[u8]) -> usize {
    let mut i = 0;
    while let Some(chunk) = bytes
        .get(i..i + 8)
        .and_then(|c| <[u8; 8]>::try_from(c).ok())
    {
        if u64::from_le_bytes(chunk) & HI_BITS != 0 {
            break;
        }
        i += 8;
    }
    i + bytes[i..]
        .iter()
        .position(|&b| b >= 0x80)
        .unwrap_or(bytes.len() - i)
}

/// A combining mark of the combining-diacritics blocks: what accent folding removes.
fn is_diacritic_mark(c: char) -> bool {
    matches!(c as u32,
        0x0300..=0x036F       // Combining Diacritical Marks
        | 0x1AB0..=0x1AFF     // ... Extended
        | 0x1DC0..=0x1DFF     // ... Supplement
        | 0x20D0..=0x20FF     // ... for Symbols
        | 0xFE20..=0xFE2F // Combining Half Marks
    )
}

/// A letter of the Latin or Greek blocks, the bases whose diacritics accent folding removes.
fn is_latin_or_greek_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    matches!(c as u32,
        0x00C0..=0x02AF       // Latin-1 letters, Latin Extended-A and -B, IPA
        | 0x0370..=0x03FF     // Greek and Coptic
        | 0x1D00..=0x1DBF     // phonetic extensions
        | 0x1E00..=0x1FFF     // Latin Extended Additional, Greek Extended
        | 0x2C60..=0x2C7F     // Latin Extended-C
        | 0xA720..=0xA7FF     // Latin Extended-D
        | 0xAB30..=0xAB6F     // Latin Extended-E
        | 0xFB00..=0xFB06 // Latin ligatures
    ) && c.is_alphabetic()
}

/// The base letter of a precomposed Latin or Greek letter whose canonical decomposition is
/// that letter and diacritic-block marks only (`ệ` → `e`), or `None`.
fn strip_diacritics(c: char) -> Option<char> {
    let mut base = None;
    let mut marks = 0;
    let mut other = false;
    decompose_canonical(c, |d| {
        if base.is_none() {
            base = Some(d);
        } else if is_diacritic_mark(d) {
            marks += 1;
        } else {
            other = true;
        }
    });
    base.filter(|&b| marks > 0 && !other && is_latin_or_greek_letter(b))
}

/// Latin letters with no canonical decomposition that readers take for an accented base
/// letter (or a ligature of two), and what accent-insensitive matching reads them as.
fn letter_without_accent(c: char) -> Option<&'static str> {
    Some(match c {
        'ø' => "o",
        'ł' => "l",
        'đ' => "d",
        'ħ' => "h",
        'ı' => "i",
        'æ' => "ae",
        'œ' => "oe",
        'þ' => "th",
        _ => return None,
    })
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
/// - an edge that is not a word character (emoji, punctuation) is a boundary by itself, so a
///   term `🔥` is found in `acme🔥🔥` and `"acme 🔥"` in `acme 🔥sale`: a word boundary is
///   about not cutting a word in two, and such an edge cuts none;
/// - except the sigils `#`, `@` and `$`, which start a token only after a non-word character
///   (`me@acmehq.com` holds no handle, so the term `@acmehq` must not be found there);
/// - otherwise the neighbor is not a word character, or one of the two belongs to a script
///   written without spaces and the other does not.
pub fn is_boundary(edge: char, neighbor: Option<char>) -> bool {
    let Some(n) = neighbor else {
        return true;
    };
    if !is_word_char(edge) && !matches!(edge, '#' | '@' | '$') {
        return true;
    }
    !is_word_char(n) || is_unspaced_script(n) != is_unspaced_script(edge)
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
            ("greek final sigma", "σοφίας ΣΟΦΊΑΣ", "σοφίασ σοφίασ"),
            ("sharp s", "Straße", "strasse"),
            ("capital sharp s", "STRAẞE", "strasse"),
            ("ligature fi", "ﬁnance", "finance"),
            ("n with apostrophe", "ŉ", "\u{2bc}n"),
            ("long s", "ſ", "s"),
            ("micro sign is mu", "µ", "μ"),
            ("kelvin sign", "\u{212a}", "k"),
            ("greek with ypogegrammeni", "ᾳ", "αι"),
            ("cherokee folds to uppercase", "ꭰꮎ Ꮎ", "ᎠᎾ Ꮎ"),
            ("dotted capital I expands", "İ", "i\u{307}"),
            ("armenian ligature", "և", "եւ"),
            ("fullwidth ascii", "ＡＣＭＥの新製品", "acmeの新製品"),
            ("unicode spaces", "acme\u{a0}\u{3000}corp", "acme corp"),
            ("mixed path spaces", "é \t x", "é x"),
            ("leading and trailing runs", "  acme  ", " acme "),
            ("empty", "", ""),
            (
                "emoji kept, variation selectors dropped",
                "ACME 🔥🏳️‍🌈",
                "acme 🔥🏳\u{200d}🌈",
            ),
            ("emoji style selector", "I ❤️ acme", "i ❤ acme"),
            ("text style selector", "☺\u{fe0e}", "☺"),
            ("skin tone stays", "👍🏽", "👍🏽"),
            ("keycap", "1️⃣", "1\u{20e3}"),
            ("selector inside a space run", "a \u{fe0f} b", "a b"),
            ("selector after a space", "a \u{fe0f}b", "a b"),
            ("selector before a space", "a\u{fe0f} b", "a b"),
            ("cjk variation selector stays", "葛\u{fe00}", "葛\u{fe00}"),
        ];
        let mut n = Normalized::new();
        for (name, input, want) in cases {
            normalize(input, &mut n);
            assert_eq!(n.text(), *want, "{name}");
            assert_eq!(fold_reference(input), *want, "{name} (reference)");
        }
    }

    #[test]
    fn terms_fold_like_text() {
        let cases: &[(&str, &str)] = &[
            ("  Straße ", "strasse"),
            ("❤️", "❤"),
            ("\u{fe0f} acme \u{fe0f}", "acme"),
            ("\u{fe0f}", ""),
            ("ＡＣＭＥ Corp", "acme corp"),
        ];
        for (term, want) in cases {
            assert_eq!(casefold(term), *want, "{term:?}");
        }
    }

    /// The obvious per-character fold the fast one must equal: a variation selector is
    /// dropped without ending a whitespace run.
    fn fold_reference(text: &str) -> String {
        let mut out = String::new();
        let mut in_space = false;
        for c in text.chars() {
            if matches!(c, '\u{fe0e}' | '\u{fe0f}') {
                continue;
            }
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
                None => out.extend(std::iter::once(c).default_case_fold()),
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
                std::iter::once(c)
                    .default_case_fold()
                    .eq(std::iter::once(c)),
                "{c:?} has a case folding"
            );
            assert!(!c.is_whitespace(), "{c:?} is whitespace");
            assert!(!is_emoji_selector(c), "{c:?} is dropped");
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
                        "x", "ABCDEFGHIJ", "a\r\nb", "ẞ", "ﬁ", "ꭰ", "ς", "µ", "❤️", "👍🏽",
                        "\u{fe0f}", "\u{fe0e}", " \u{fe0f} ", "1️⃣", "abcdefg ",
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
            ('@', Some('a'), false),
            ('$', Some('é'), false),
            ('@', Some('東'), true),
            ('🔥', Some('a'), true),
            ('🔥', Some('🔥'), true),
            ('❤', Some('x'), true),
            ('!', Some('x'), true),
            ('👍', Some('\u{1f3fd}'), true),
            ('a', Some('🔥'), true),
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
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats");
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

    #[test]
    fn folds_accents() {
        use unicode_normalization::UnicodeNormalization;
        // (name, casefolded input, accent-folded output)
        let cases: &[(&str, &str, &str)] = &[
            ("ascii unchanged", "acme corp #up", "acme corp #up"),
            ("french", "café crème", "cafe creme"),
            ("portuguese", "ação não", "acao nao"),
            ("german umlaut", "über strasse", "uber strasse"),
            ("spanish", "señor", "senor"),
            ("vietnamese stacked marks", "việt nam đẹp", "viet nam dep"),
            ("vietnamese horn", "phở ư", "pho u"),
            ("polish", "łódź", "lodz"),
            ("danish and norwegian", "søren æbler", "soren aebler"),
            ("french ligature", "œuvre", "oeuvre"),
            ("icelandic thorn", "þing", "thing"),
            ("croatian and maltese", "đak ħal", "dak hal"),
            ("dotless i", "ıi", "ii"),
            ("letter with accent and no decomposition", "ǿ ǽ", "o ae"),
            (
                "separate combining marks",
                "cafe\u{301} a\u{300}\u{323}",
                "cafe a",
            ),
            ("dotted i from casefolded İ", "i\u{307}stanbul", "istanbul"),
            ("greek", "ωμέγα ΐ ῷ", "ωμεγα ι ω"),
            ("greek separate mark", "α\u{301}", "α"),
            ("cyrillic short i kept", "йогурт", "йогурт"),
            ("cyrillic yo kept", "ёлка", "ёлка"),
            ("cyrillic with separate breve kept", "и\u{306}", "и\u{306}"),
            ("kana voicing kept", "がぱ", "がぱ"),
            ("decomposed kana kept", "か\u{3099}", "か\u{3099}"),
            ("hangul kept", "한국", "한국"),
            ("keycap kept", "1\u{20e3}", "1\u{20e3}"),
            ("mark on punctuation kept", "!\u{301}", "!\u{301}"),
            ("mark at start kept", "\u{301}a", "\u{301}a"),
            (
                "other mark kept, diacritic after it removed",
                "a\u{5b0}\u{301}",
                "a\u{5b0}",
            ),
            (
                "marks of several blocks",
                "a\u{1ab0}\u{1dc0}\u{20d0}\u{fe20}",
                "a",
            ),
            ("emoji kept", "café 🔥👍🏽", "cafe 🔥👍🏽"),
            (
                "ascii after the first change",
                "é and then a long ascii tail",
                "e and then a long ascii tail",
            ),
        ];
        for (name, input, want) in cases {
            let mut out = String::from("kept:");
            let changed = fold_accents_into(input, &mut out);
            assert_eq!(&out[5..], *want, "{name}");
            assert_eq!(changed, input != want, "{name}: changed");
            assert_eq!(fold_accents(input), *want, "{name} (fold_accents)");
            // The reference recomposes everything, the fast fold only what it changes.
            let want_nfc: String = want.nfc().collect();
            assert_eq!(
                fold_accents_reference(input),
                want_nfc,
                "{name} (reference)"
            );
        }
    }

    #[test]
    fn normalize_accents_refolds_tokens() {
        let mut n = Normalized::new();
        let mut a = Normalized::new();
        normalize("Ação da #Açaí e @José.bsky.social: https://x.io/é", &mut n);
        assert!(normalize_accents(&n, &mut a));
        assert_eq!(
            a.text(),
            "acao da #acai e @jose.bsky.social: https://x.io/e"
        );
        let kinds: Vec<(TokenKind, &str)> = a
            .tokens()
            .iter()
            .map(|t| (t.kind, &a.text()[t.start..t.end]))
            .collect();
        assert_eq!(
            kinds,
            [
                (TokenKind::Hashtag, "#acai"),
                (TokenKind::Handle, "@jose.bsky.social"),
                (TokenKind::Url, "https://x.io/e"),
            ]
        );
        for unchanged in ["plain ascii #acme", "東京タワー", "йогурт", ""] {
            normalize(unchanged, &mut n);
            assert!(!normalize_accents(&n, &mut a), "{unchanged}");
            assert_eq!((a.text(), a.tokens()), ("", &[][..]), "{unchanged}");
        }
    }

    #[test]
    fn normalize_accents_reuses_buffers() {
        let mut n = Normalized::new();
        let mut a = Normalized::new();
        normalize(
            "a much longer café text with #tags and @josé.bsky.social",
            &mut n,
        );
        assert!(normalize_accents(&n, &mut a));
        let caps = (a.text.capacity(), a.tokens.capacity(), a.urls.capacity());
        for text in ["ação #x", "ascii only", "é"] {
            normalize(text, &mut n);
            normalize_accents(&n, &mut a);
            assert_eq!(
                (a.text.capacity(), a.tokens.capacity(), a.urls.capacity()),
                caps,
                "{text}"
            );
        }
    }

    /// Removing diacritic-block marks from a Latin or Greek letter can leave no composable
    /// mark behind (so `fold_accents_into` needs no NFC pass): every precomposed Latin or
    /// Greek letter decomposes to a Latin or Greek base and diacritic-block marks only, or is
    /// left alone.
    #[test]
    fn latin_and_greek_compositions_use_diacritics_only() {
        let all = (0..=0x10FFFFu32).filter_map(char::from_u32);
        for c in all.filter(|&c| is_latin_or_greek_letter(c)) {
            let mut parts = Vec::new();
            decompose_canonical(c, |d| parts.push(d));
            if parts.len() < 2 {
                continue;
            }
            assert!(is_latin_or_greek_letter(parts[0]), "{c:?} → {parts:?}");
            assert!(
                parts[1..].iter().all(|&m| is_diacritic_mark(m)),
                "{c:?} → {parts:?}"
            );
            assert_eq!(strip_diacritics(c), Some(parts[0]), "{c:?}");
        }
    }

    /// Accent folding as the standard spells it: canonical decomposition, drop the
    /// diacritic-block marks that follow a Latin or Greek letter (other marks between them do
    /// not end the letter), map the letters with no decomposition, recompose (NFC). The fast
    /// fold leaves text it does not change as written, so the two agree on NFC input.
    fn fold_accents_reference(folded: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        let mut after_letter = false;
        let mut kept = String::new();
        for d in folded.nfc().collect::<String>().nfd() {
            if is_diacritic_mark(d) && after_letter {
                continue;
            }
            if !is_combining_mark(d) {
                after_letter = is_latin_or_greek_letter(d);
            }
            match letter_without_accent(d) {
                Some(r) => kept.push_str(r),
                None => kept.push(d),
            }
        }
        kept.nfc().collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 1024,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn accent_folding_is_idempotent_and_keeps_ascii(
            parts in prop::collection::vec(
                prop_oneof![
                    prop::sample::select(&[
                        " ", "acme", "é", "e\u{301}", "\u{301}", "\u{323}", "\u{5b0}",
                        "ø", "æ", "þ", "ı", "ǿ", "ệ", "ώ", "ΐ", "α", "й", "и\u{306}", "が",
                        "か\u{3099}", "한", "1\u{20e3}", "🔥", "👍🏽", "#", "@x.y", "東京",
                        "\u{1ab0}", "\u{fe20}", "ﬁ", "!",
                    ][..]).prop_map(String::from),
                    "\\PC{0,6}",
                    "[ -~]{0,12}",
                ],
                0..16,
            )
        ) {
            let text = parts.concat();
            let folded = casefold(&text);
            let once = fold_accents(&folded);
            let mut twice = String::new();
            prop_assert!(!fold_accents_into(&once, &mut twice), "{:?}", once);
            prop_assert_eq!(&twice, &once);
            // ASCII is never changed: every ASCII char of the input is in the output, in
            // order, and pure ASCII comes back as it was.
            prop_assert!(ascii_is_subsequence(&folded, &once), "{:?} → {:?}", folded, once);
            if folded.is_ascii() {
                prop_assert_eq!(&once, &folded);
            }
            let nfc: String = {
                use unicode_normalization::UnicodeNormalization;
                folded.nfc().collect()
            };
            prop_assert_eq!(fold_accents(&nfc), fold_accents_reference(&nfc), "{:?}", nfc);
        }
    }

    /// Whether the ASCII chars of `a` appear in `b` in order.
    fn ascii_is_subsequence(a: &str, b: &str) -> bool {
        let mut b = b.chars();
        a.chars().filter(char::is_ascii).all(|c| b.any(|d| d == c))
    }
}
