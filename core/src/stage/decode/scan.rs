//! A validating, single-pass JSON reader that builds nothing: the Jetstream fast path.
//!
//! # Why
//! simd-json turns a frame into a tape of every value (stage 2, about 4,300 instructions per
//! Jetstream event) and unescapes every string, although a post needs five strings and a few
//! flags out of the ~60 values of an event. This reader walks the frame once, byte by byte
//! between strings and 16 bytes at a time inside them (strings are most of a frame's bytes),
//! hands each object key to the caller, and lets the caller either take a value or skip it.
//! Skipped values are still checked in full (grammar, string escapes, UTF-8, nesting depth),
//! so a frame it accepts is a frame simd-json accepts.
//!
//! # The contract: certain or [`Unsure`]
//! The reader never decides that a frame is bad. Whatever it cannot vouch for, it reports as
//! [`Unsure`]: a syntax error, invalid UTF-8, a control character in a string, a lone
//! surrogate escape, an escaped object key, nesting near the depth limit, a number outside
//! the plain forms (more than 18 digits, `-0`, exponents of three digits), trailing bytes.
//! The caller then decodes the frame with simd-json, which classifies it exactly as before.
//! That keeps the error taxonomy in one place and makes the fast path a pure optimization:
//! for every frame it accepts, the result must equal the tape decoder's (the decode tests
//! check this on every fixture and on random and mutated events).
//!
//! Reading never writes; a caller that needs a string's value unescapes it afterwards, once
//! the whole frame has been accepted ([`unescape_in_place`]), so falling back always sees
//! the frame as it arrived.

/// The reader cannot vouch for this frame; decode it the authoritative way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Unsure;

/// A reader result.
pub(super) type Scan<T> = Result<T, Unsure>;

/// Deepest nesting the reader follows; deeper frames go to simd-json, which enforces the
/// configured limit. It also bounds the reader's recursion.
const MAX_NESTING: usize = 64;

/// A string in the document: its raw bytes `doc[start..end]` (quotes excluded), already
/// checked: valid UTF-8, valid escapes, no control characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RawStr {
    pub(super) start: usize,
    pub(super) end: usize,
    /// Holds at least one `\` escape, so its raw bytes are not its value.
    pub(super) escaped: bool,
}

impl RawStr {
    /// The raw bytes, which are the value when the string is not escaped.
    #[inline]
    pub(super) fn raw<'d>(&self, doc: &'d [u8]) -> &'d [u8] {
        &doc[self.start..self.end]
    }

    /// The value's bytes for comparison with a known ASCII constant, or [`Unsure`] when the
    /// string is escaped (such values are rare enough to leave to the tape decoder).
    #[inline]
    pub(super) fn plain<'d>(&self, doc: &'d [u8]) -> Scan<&'d [u8]> {
        if self.escaped {
            Err(Unsure)
        } else {
            Ok(self.raw(doc))
        }
    }
}

/// A cursor over one JSON document.
pub(super) struct Cursor<'d> {
    doc: &'d [u8],
    pos: usize,
    depth: usize,
    /// Containers open at once before the reader gives up: one less than the decoder's
    /// limit, so that whatever is near the limit is judged by simd-json.
    max_open: usize,
}

impl<'d> Cursor<'d> {
    /// A cursor at the start of `doc`, following at most `max_depth − 1` levels of nesting.
    pub(super) fn new(doc: &'d [u8], max_depth: usize) -> Self {
        Self {
            doc,
            pos: 0,
            depth: 0,
            max_open: max_depth.min(MAX_NESTING).saturating_sub(1),
        }
    }

    /// The document.
    #[inline]
    pub(super) fn doc(&self) -> &'d [u8] {
        self.doc
    }

    /// The next byte that is not whitespace, without consuming it.
    #[inline(always)]
    pub(super) fn peek(&mut self) -> Scan<u8> {
        loop {
            match self.doc.get(self.pos) {
                Some(b' ' | b'\n' | b'\r' | b'\t') => self.pos += 1,
                Some(&b) => return Ok(b),
                None => return Err(Unsure),
            }
        }
    }

    /// Checks that only whitespace follows the root value.
    pub(super) fn finish(mut self) -> Scan<()> {
        match self.peek() {
            Err(Unsure) => Ok(()),
            Ok(_) => Err(Unsure),
        }
    }

    /// Reads an object, calling `on_key` with each key and the cursor before its value; `on_key`
    /// must consume exactly that value (take it or [`Cursor::skip`] it).
    #[inline]
    pub(super) fn object(
        &mut self,
        mut on_key: impl FnMut(&mut Self, &'d [u8]) -> Scan<()>,
    ) -> Scan<()> {
        self.open(b'{')?;
        if self.peek()? == b'}' {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            let key = self.string()?.plain(self.doc)?;
            if self.peek()? != b':' {
                return Err(Unsure);
            }
            self.pos += 1;
            on_key(self, key)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => break,
                _ => return Err(Unsure),
            }
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(())
    }

    /// Reads an array, calling `on_item` with the cursor at each element; `on_item` must
    /// consume exactly that element.
    #[inline]
    pub(super) fn array(&mut self, mut on_item: impl FnMut(&mut Self) -> Scan<()>) -> Scan<()> {
        self.open(b'[')?;
        if self.peek()? == b']' {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            on_item(self)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => break,
                _ => return Err(Unsure),
            }
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(())
    }

    /// [`Cursor::object`] when the value is an object; any other value is skipped.
    #[inline]
    pub(super) fn object_or_skip(
        &mut self,
        on_key: impl FnMut(&mut Self, &'d [u8]) -> Scan<()>,
    ) -> Scan<()> {
        if self.peek()? == b'{' {
            self.object(on_key)
        } else {
            self.skip()
        }
    }

    /// [`Cursor::array`] when the value is an array; any other value is skipped.
    #[inline]
    pub(super) fn array_or_skip(&mut self, on_item: impl FnMut(&mut Self) -> Scan<()>) -> Scan<()> {
        if self.peek()? == b'[' {
            self.array(on_item)
        } else {
            self.skip()
        }
    }

    /// Consumes the opening bracket `open` (after whitespace) and enters one more level.
    #[inline]
    fn open(&mut self, open: u8) -> Scan<()> {
        if self.peek()? != open || self.depth >= self.max_open {
            return Err(Unsure);
        }
        self.depth += 1;
        self.pos += 1;
        Ok(())
    }

    /// The string at the cursor (after whitespace), checked and consumed.
    #[inline(always)]
    pub(super) fn string(&mut self) -> Scan<RawStr> {
        if self.peek()? != b'"' {
            return Err(Unsure);
        }
        let doc = self.doc;
        let start = self.pos + 1;
        let mut at = start;
        let mut escaped = false;
        let mut non_ascii = false;
        let end = loop {
            at = find_special(doc, at, &mut non_ascii);
            match doc.get(at) {
                Some(b'"') => break at,
                Some(b'\\') => {
                    escaped = true;
                    at += escape_len(&doc[at..])?;
                }
                // A control character, or the end of the document inside the string.
                _ => return Err(Unsure),
            }
        };
        if non_ascii && simdutf8::basic::from_utf8(&doc[start..end]).is_err() {
            return Err(Unsure);
        }
        self.pos = end + 1;
        Ok(RawStr {
            start,
            end,
            escaped,
        })
    }

    /// The string at the cursor, or `None` (the value skipped) when it is another type.
    #[inline]
    pub(super) fn string_or_skip(&mut self) -> Scan<Option<RawStr>> {
        if self.peek()? == b'"' {
            self.string().map(Some)
        } else {
            self.skip().map(|()| None)
        }
    }

    /// The value at the cursor as a non-negative integer, or `None` (the value consumed) when
    /// it is anything else: a negative integer, a fraction, a string…
    #[inline]
    pub(super) fn u64_or_skip(&mut self) -> Scan<Option<u64>> {
        match self.peek()? {
            b'0'..=b'9' => self.number(),
            _ => self.skip().map(|()| None),
        }
    }

    /// Checks and consumes the value at the cursor.
    pub(super) fn skip(&mut self) -> Scan<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(|cursor, _| cursor.skip()),
            b'[' => self.array(Cursor::skip),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => Err(Unsure),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Scan<()> {
        if self.doc[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Unsure)
        }
    }

    /// Reads a number in JSON's grammar; `Some` for a non-negative integer. Forms whose value
    /// simd-json might read differently, or reject (more than 18 digits, `-0`, exponents of
    /// three or more digits), are [`Unsure`].
    fn number(&mut self) -> Scan<Option<u64>> {
        let doc = self.doc;
        let mut at = self.pos;
        let negative = doc.get(at) == Some(&b'-');
        if negative {
            at += 1;
        }
        let int_start = at;
        let mut value: u64 = 0;
        while let Some(&d @ b'0'..=b'9') = doc.get(at) {
            value = value * 10 + u64::from(d - b'0');
            at += 1;
            if at - int_start > 18 {
                return Err(Unsure);
            }
        }
        let int_len = at - int_start;
        if int_len == 0 || (int_len > 1 && doc[int_start] == b'0') || (negative && value == 0) {
            return Err(Unsure);
        }
        let mut integer = true;
        if doc.get(at) == Some(&b'.') {
            integer = false;
            at = digits(doc, at + 1, usize::MAX)?;
        }
        if let Some(b'e' | b'E') = doc.get(at) {
            integer = false;
            at += 1;
            if let Some(b'+' | b'-') = doc.get(at) {
                at += 1;
            }
            at = digits(doc, at, 2)?;
        }
        self.pos = at;
        Ok((integer && !negative).then_some(value))
    }
}

/// The end of a run of one to `max` digits starting at `at`.
fn digits(doc: &[u8], at: usize, max: usize) -> Scan<usize> {
    let run = doc[at.min(doc.len())..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if run == 0 || run > max {
        return Err(Unsure);
    }
    Ok(at + run)
}

/// Length of the escape sequence at the start of `s` (`s[0]` is `\`), checked: one of JSON's
/// escapes, a `\uXXXX` that is not a surrogate, or a high-low surrogate pair. A lone
/// surrogate is [`Unsure`].
#[inline]
fn escape_len(s: &[u8]) -> Scan<usize> {
    match s.get(1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(2),
        Some(b'u') => match hex4(s, 2)? {
            0xD800..=0xDBFF => match (s.get(6..8), hex4(s, 8)) {
                (Some(b"\\u"), Ok(0xDC00..=0xDFFF)) => Ok(12),
                _ => Err(Unsure),
            },
            0xDC00..=0xDFFF => Err(Unsure),
            _ => Ok(6),
        },
        _ => Err(Unsure),
    }
}

/// The four hex digits at `s[at..at + 4]` as a number.
#[inline]
fn hex4(s: &[u8], at: usize) -> Scan<u32> {
    let digits = s.get(at..at + 4).ok_or(Unsure)?;
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return Err(Unsure),
        };
        Ok(acc << 4 | u32::from(v))
    })
}

/// Unescapes the checked string `s` where it lies and returns the end of its value
/// (`s.start..end`): an escape is never shorter than what it stands for, so the value fits
/// in the raw string's place.
pub(super) fn unescape_in_place(doc: &mut [u8], s: RawStr) -> usize {
    let mut read = s.start;
    let mut write = s.start;
    while read < s.end {
        let run = memchr::memchr(b'\\', &doc[read..s.end]).unwrap_or(s.end - read);
        doc.copy_within(read..read + run, write);
        read += run;
        write += run;
        if read >= s.end {
            break;
        }
        let (value, len) = unescape_one(&doc[read..s.end]);
        let bytes = value.encode_utf8(&mut [0; 4]).len();
        value.encode_utf8(&mut doc[write..write + bytes]);
        read += len;
        write += bytes;
    }
    write
}

/// The character an escape checked by [`escape_len`] stands for, and its length. (Total on
/// unchecked input too: anything malformed gives U+FFFD.)
fn unescape_one(s: &[u8]) -> (char, usize) {
    let simple = |c: char| (c, 2);
    match s.get(1) {
        Some(b'"') => simple('"'),
        Some(b'\\') => simple('\\'),
        Some(b'/') => simple('/'),
        Some(b'b') => simple('\u{8}'),
        Some(b'f') => simple('\u{c}'),
        Some(b'n') => simple('\n'),
        Some(b'r') => simple('\r'),
        Some(b't') => simple('\t'),
        Some(b'u') => match hex4(s, 2) {
            Ok(high @ 0xD800..=0xDBFF) => match hex4(s, 8) {
                Ok(low @ 0xDC00..=0xDFFF) => {
                    let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                    (char::from_u32(c).unwrap_or('\u{FFFD}'), 12)
                }
                _ => ('\u{FFFD}', 6),
            },
            Ok(c) => (char::from_u32(c).unwrap_or('\u{FFFD}'), 6),
            Err(Unsure) => ('\u{FFFD}', 2),
        },
        _ => ('\u{FFFD}', 1),
    }
}

/// The first position at or after `at` that holds `"`, `\` or a control character (or
/// `doc.len()`), noting in `non_ascii` whether a byte ≥ 0x80 came before it.
#[cfg(target_arch = "x86_64")]
#[inline]
#[allow(unsafe_code)] // calls the SSE2 version: see SAFETY below
fn find_special(doc: &[u8], at: usize, non_ascii: &mut bool) -> usize {
    // SAFETY: SSE2 is part of the x86-64 baseline: every CPU this code runs on has it.
    unsafe { find_special_sse2(doc, at, non_ascii) }
}

/// [`find_special`] 16 bytes at a time. The two 8-byte loads compile to one unaligned
/// 16-byte load, without a raw pointer. The last bytes of the document are read as the
/// 16-byte chunk that ends with it, so no string ends in a byte-at-a-time loop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn find_special_sse2(doc: &[u8], mut at: usize, non_ascii: &mut bool) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_set_epi64x,
    };
    /// (special, non-ASCII) bit masks of `chunk`, one bit per byte.
    #[target_feature(enable = "sse2")]
    #[inline]
    fn classify(chunk: &[u8; 16]) -> (u32, u32) {
        let (lo, hi) = chunk.split_at(8);
        let lo = i64::from_le_bytes(lo.try_into().unwrap_or_default());
        let hi = i64::from_le_bytes(hi.try_into().unwrap_or_default());
        let bytes: __m128i = _mm_set_epi64x(hi, lo);
        let is_control = _mm_cmpeq_epi8(_mm_min_epu8(bytes, _mm_set1_epi8(0x1F)), bytes);
        let special = _mm_or_si128(
            _mm_or_si128(
                _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'"' as i8)),
                _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\\' as i8)),
            ),
            is_control,
        );
        // movemask takes each byte's top bit: all ones where a comparison held, and the
        // non-ASCII bytes in the input itself.
        (
            _mm_movemask_epi8(special).cast_unsigned(),
            _mm_movemask_epi8(bytes).cast_unsigned(),
        )
    }
    /// The first special position of a chunk at `base` whose masks are `(special, high)`
    /// counted from `at`, or `None`; notes non-ASCII bytes before it.
    #[inline]
    fn first(
        base: usize,
        at: usize,
        special: u32,
        high: u32,
        non_ascii: &mut bool,
    ) -> Option<usize> {
        let skip = at - base;
        let (special, high) = (special >> skip, high >> skip);
        if special != 0 {
            let offset = special.trailing_zeros();
            *non_ascii |= high & ((1 << offset) - 1) != 0;
            Some(at + offset as usize)
        } else {
            *non_ascii |= high != 0;
            None
        }
    }
    while let Some(chunk) = doc.get(at..at + 16) {
        let (special, high) = classify(chunk.try_into().unwrap_or(&[0; 16]));
        if let Some(found) = first(at, at, special, high, non_ascii) {
            return found;
        }
        at += 16;
    }
    if at < doc.len() {
        if let Some(base) = doc.len().checked_sub(16) {
            let chunk = doc[base..].try_into().unwrap_or(&[0; 16]);
            let (special, high) = classify(chunk);
            return first(base, at, special, high, non_ascii).unwrap_or(doc.len());
        }
    }
    find_special_scalar(doc, at, non_ascii)
}

/// [`find_special`] without SIMD, for other targets.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn find_special(doc: &[u8], at: usize, non_ascii: &mut bool) -> usize {
    find_special_scalar(doc, at, non_ascii)
}

/// [`find_special`] one byte at a time (the tail of a string, and other targets).
#[inline]
fn find_special_scalar(doc: &[u8], at: usize, non_ascii: &mut bool) -> usize {
    for (i, &b) in doc.iter().enumerate().skip(at) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return i;
        }
        *non_ascii |= b >= 0x80;
    }
    doc.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip_all(doc: &[u8]) -> Scan<()> {
        let mut cursor = Cursor::new(doc, 64);
        cursor.skip()?;
        cursor.finish()
    }

    #[test]
    fn accepts_valid_documents() {
        for doc in [
            r#"{}"#,
            r#"[]"#,
            r#" { "a" : [ 1 , -2 , 3.5 , 4e10 , 5E-3 , true , false , null , "x" ] } "#,
            r#"{"a":{"b":{"c":[[],[{}]]}}}"#,
            r#""\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#,
            "\"caf\u{e9} \u{1F600} 日本語 0123456789abcdef0123456789\"",
            "0",
            "123456789012345678",
        ] {
            assert_eq!(skip_all(doc.as_bytes()), Ok(()), "{doc}");
        }
    }

    #[test]
    fn is_unsure_of_invalid_or_unusual_documents() {
        for doc in [
            &b""[..],
            b"{",
            b"{\"a\"}",
            b"{\"a\":1,}",
            b"[1,]",
            b"[1 2]",
            b"{\"a\":1}x",
            b"{\"a\":tru}",
            b"{\"a\":nul}",
            b"01",
            b"-",
            b"-0",
            b"1.",
            b"1e",
            b"1e100",
            b"1234567890123456789",
            b"\"unterminated",
            b"\"control \x01 char\"",
            b"\"tab\tin string\"",
            b"\"bad \\x escape\"",
            b"\"short \\u12\"",
            b"\"lone high \\ud83d\"",
            b"\"lone low \\ude00\"",
            b"\"bad utf-8 \xff\"",
            b"\"truncated \xe6\x97\"",
            b"{\"\\u0061\":1}",
            b"{'a':1}",
        ] {
            assert_eq!(
                skip_all(doc),
                Err(Unsure),
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
    }

    #[test]
    fn leaves_deep_nesting_to_the_tape_decoder() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let shallow = nested(9);
        let mut ok = Cursor::new(shallow.as_bytes(), 10);
        assert_eq!(ok.skip(), Ok(()));
        let deep = nested(10);
        let mut near_limit = Cursor::new(deep.as_bytes(), 10);
        assert_eq!(near_limit.skip(), Err(Unsure));
        let deeper = nested(200);
        let mut beyond = Cursor::new(deeper.as_bytes(), 1000);
        assert_eq!(beyond.skip(), Err(Unsure));
    }

    #[test]
    fn numbers_give_non_negative_integers_only() {
        let read = |doc: &str| Cursor::new(doc.as_bytes(), 64).u64_or_skip();
        assert_eq!(read("1783175888085434"), Ok(Some(1_783_175_888_085_434)));
        assert_eq!(read("0"), Ok(Some(0)));
        assert_eq!(read("-5"), Ok(None));
        assert_eq!(read("1.5"), Ok(None));
        assert_eq!(read("2e3"), Ok(None));
        assert_eq!(read("\"17\""), Ok(None));
    }

    #[test]
    fn finds_specials_across_chunk_edges() {
        for len in 0..40 {
            for (filler, non_ascii_expected) in [("a", false), ("é", true)] {
                let body = filler.repeat(len);
                let doc = format!("\"{body}\"tail");
                let mut cursor = Cursor::new(doc.as_bytes(), 64);
                let s = cursor.string().unwrap();
                assert_eq!((s.start, s.end), (1, 1 + body.len()));
                let mut non_ascii = false;
                assert_eq!(
                    find_special(doc.as_bytes(), 1, &mut non_ascii),
                    1 + body.len()
                );
                assert_eq!(non_ascii, non_ascii_expected && len > 0);
            }
        }
    }

    #[test]
    fn unescapes_in_place_like_a_json_parser() {
        let cases = [
            r#""plain""#,
            r#""a\"b\\c\/d\be\ff\ng\rh\ti""#,
            r#""caf\u00e9 \u0026 \u003c \ud83d\ude00 end""#,
            r#""\u65e5\u672c""#,
            r#""\n""#,
        ];
        for case in cases {
            let expected: String = serde_json::from_str(case).unwrap();
            let mut doc = case.as_bytes().to_vec();
            let s = Cursor::new(&doc, 64).string().unwrap();
            let end = unescape_in_place(&mut doc, s);
            assert_eq!(std::str::from_utf8(&doc[s.start..end]), Ok(&*expected));
        }
    }
}
