//! HTML → plain text for Mastodon content, and X / Reddit entity unescaping, into caller-owned
//! buffers.
//!
//! Mastodon (and the servers speaking its API) send `content` as sanitized HTML: `<p>`
//! paragraphs, `<br>` line breaks, `<a>` links (mentions and hashtags are links with class
//! `mention` / `hashtag` or `rel="tag"`), `<span>`s that hide the middle of long URLs, and
//! a few more block elements for remote content. The conversion is what a reader sees:
//! paragraphs (and other blocks) are separated by a blank line, `<br>` becomes a newline, every
//! tag is stripped (the text of hidden URL spans is kept, so a URL reads whole), `<script>` /
//! `<style>` bodies are dropped, and character references are decoded (numeric ones and the
//! named ones sanitizers emit; an unknown name is kept verbatim, as browsers do).
//!
//! The conversion also reports whether the HTML links anywhere other than a mention or a
//! hashtag, which is the post's `link` flag, and collects the `href` of each such link into
//! the post's links (the text shows them cut short by the hidden spans' `…`). An `href` is
//! borrowed from the HTML unless it holds character references (`?a=1&amp;b=2`), which are
//! decoded into an owned copy. One pass, no allocation beyond growing the output buffer (and
//! the links, for HTML that has any); any input, however broken, yields some text and never
//! panics.
//!
//! [`unescape_basic`] is the much smaller job X and Reddit need: their plain text arrives
//! with `&`, `<` and `>` escaped as `&amp;`, `&lt;`, `&gt;`, and nothing else.

use std::borrow::Cow;

use memchr::{memchr, memchr2};

use super::push_link;

/// What the conversion learned besides the text.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct HtmlFacts {
    /// An `<a href>` that is not a mention or a hashtag.
    pub(super) link: bool,
}

/// Appends the plain text of `html` to `out`, and the targets of its plain links to `links`
/// (through [`push_link`], in document order).
pub(super) fn to_text<'h>(
    html: &'h str,
    out: &mut String,
    links: &mut Vec<Cow<'h, str>>,
) -> HtmlFacts {
    let mut facts = HtmlFacts::default();
    let bytes = html.as_bytes();
    let start_len = out.len();
    // Newlines owed before the next text: 2 after a block, reset when text is written.
    let mut pending: usize = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Text up to the next tag or reference.
        let run_end = memchr2(b'<', b'&', &bytes[i..]).map_or(bytes.len(), |n| i + n);
        if run_end > i {
            flush_breaks(out, start_len, &mut pending);
            out.push_str(&html[i..run_end]);
            i = run_end;
            continue;
        }
        if bytes[i] == b'&' {
            flush_breaks(out, start_len, &mut pending);
            i += decode_reference(&html[i..], out);
            continue;
        }
        // A tag: `<` … `>`. A `<` with no `>` after it is text.
        let Some(close) = memchr(b'>', &bytes[i..]) else {
            flush_breaks(out, start_len, &mut pending);
            out.push_str(&html[i..]);
            break;
        };
        let tag = &html[i + 1..i + close];
        i += close + 1;
        if tag.starts_with('!') || tag.starts_with('?') {
            continue; // comment, doctype, processing instruction
        }
        let (closing, tag) = match tag.strip_prefix('/') {
            Some(rest) => (true, rest),
            None => (false, tag),
        };
        let name_end = tag
            .find(|c: char| c.is_ascii_whitespace() || c == '/')
            .unwrap_or(tag.len());
        let (name, attrs) = tag.split_at(name_end);
        let mut name_buf = [0u8; 10];
        match lowercase_name(name, &mut name_buf) {
            "br" => {
                flush_breaks(out, start_len, &mut pending);
                out.push('\n');
            }
            "p" | "div" | "blockquote" | "pre" | "ul" | "ol" | "h1" | "h2" | "h3" | "h4" | "h5"
            | "h6" | "hr" => pending = 2,
            "li" => pending = pending.max(1),
            "a" if !closing => {
                if let Some(href) = plain_link_href(attrs) {
                    facts.link = true;
                    push_link(links, decode_attribute(href));
                }
            }
            "script" | "style" if !closing => {
                // Skip to the matching close tag (or the end).
                let closer = if name.eq_ignore_ascii_case("script") {
                    "</script"
                } else {
                    "</style"
                };
                i = find_ascii_ci(&bytes[i..], closer.as_bytes()).map_or(bytes.len(), |n| {
                    let after = i + n;
                    memchr(b'>', &bytes[after..]).map_or(bytes.len(), |m| after + m + 1)
                });
            }
            _ => {}
        }
    }
    facts
}

/// `raw` with the three references X and Reddit escape in plain text (`&amp;`, `&lt;`,
/// `&gt;`) decoded: borrowed as is when it holds no `&` (the common case, no copy), else
/// built in `buf`. Decoding happens once, so a literal `&amp;` typed by a user (sent as
/// `&amp;amp;`) comes out as typed.
pub(super) fn unescape_basic<'a>(raw: &'a str, buf: &'a mut String) -> &'a str {
    if memchr(b'&', raw.as_bytes()).is_none() {
        return raw;
    }
    buf.clear();
    push_unescaped_basic(raw, buf);
    buf
}

/// Appends `raw` to `out` with `&amp;`, `&lt;` and `&gt;` decoded.
pub(super) fn push_unescaped_basic(raw: &str, out: &mut String) {
    let mut rest = raw;
    while let Some(at) = memchr(b'&', rest.as_bytes()) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let (decoded, used) = if tail.starts_with("&amp;") {
            ('&', 5)
        } else if tail.starts_with("&lt;") {
            ('<', 4)
        } else if tail.starts_with("&gt;") {
            ('>', 4)
        } else {
            ('&', 1)
        };
        out.push(decoded);
        rest = &tail[used..];
    }
    out.push_str(rest);
}

/// Writes the newlines owed before text, unless the text would open the output.
fn flush_breaks(out: &mut String, start_len: usize, pending: &mut usize) {
    if *pending == 0 {
        return;
    }
    if out.len() > start_len {
        let have = out.as_bytes()[start_len..]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\n')
            .count();
        for _ in have..*pending {
            out.push('\n');
        }
    }
    *pending = 0;
}

/// The `href` of an `<a>` whose attributes make it a real link: it has a non-empty `href`
/// and is not a mention or a hashtag. The last `href` counts.
fn plain_link_href(attrs: &str) -> Option<&str> {
    let mut href = None;
    let mut social = false;
    for (name, value) in Attrs(attrs) {
        if name.eq_ignore_ascii_case("href") {
            href = Some(value.trim_matches(|c: char| c.is_ascii_whitespace()))
                .filter(|v| !v.is_empty());
        } else if name.eq_ignore_ascii_case("class") {
            social |= value
                .split_ascii_whitespace()
                .any(|c| c.eq_ignore_ascii_case("mention") || c.eq_ignore_ascii_case("hashtag"));
        } else if name.eq_ignore_ascii_case("rel") {
            social |= value
                .split_ascii_whitespace()
                .any(|r| r.eq_ignore_ascii_case("tag"));
        }
    }
    href.filter(|_| !social)
}

/// An attribute value with its character references decoded: borrowed when it has none.
fn decode_attribute(value: &str) -> Cow<'_, str> {
    let Some(first) = memchr(b'&', value.as_bytes()) else {
        return Cow::Borrowed(value);
    };
    let mut out = String::with_capacity(value.len());
    out.push_str(&value[..first]);
    let mut i = first;
    while i < value.len() {
        if value.as_bytes()[i] == b'&' {
            i += decode_reference(&value[i..], &mut out);
        } else {
            let end = memchr(b'&', &value.as_bytes()[i..]).map_or(value.len(), |n| i + n);
            out.push_str(&value[i..end]);
            i = end;
        }
    }
    Cow::Owned(out)
}

/// Iterator over `name="value"` / `name='value'` / `name=value` / `name` attributes.
struct Attrs<'a>(&'a str);

impl<'a> Iterator for Attrs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let s = self
            .0
            .trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '/');
        if s.is_empty() {
            self.0 = s;
            return None;
        }
        let name_end = s
            .find(|c: char| c.is_ascii_whitespace() || c == '=' || c == '/')
            .unwrap_or(s.len());
        let (name, rest) = s.split_at(name_end);
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
        let Some(rest) = rest.strip_prefix('=') else {
            self.0 = rest;
            return Some((name, ""));
        };
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
        let (value, rest) = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let body = &rest[1..];
                match body.find(q) {
                    Some(end) => (&body[..end], &body[end + 1..]),
                    None => (body, ""),
                }
            }
            _ => {
                let end = rest
                    .find(|c: char| c.is_ascii_whitespace())
                    .unwrap_or(rest.len());
                rest.split_at(end)
            }
        };
        self.0 = rest;
        Some((name, value))
    }
}

/// Decodes the character reference at the start of `s` (which starts with `&`) into `out`
/// and returns how many bytes it consumed. Anything that is not a complete reference is a
/// literal `&`.
fn decode_reference(s: &str, out: &mut String) -> usize {
    // The longest reference we decode is `&#x10FFFF;` / a long entity name.
    let window = &s.as_bytes()[..s.len().min(12)];
    let Some(semi) = memchr(b';', window) else {
        out.push('&');
        return 1;
    };
    let body = &s[1..semi];
    let decoded = if let Some(num) = body.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => num.parse::<u32>().ok(),
        };
        code.map(|c| match c {
            0 => '\u{FFFD}',
            c => char::from_u32(c).unwrap_or('\u{FFFD}'),
        })
    } else {
        named(body)
    };
    match decoded {
        Some(c) => {
            out.push(c);
            semi + 1
        }
        None => {
            out.push('&');
            1
        }
    }
}

/// The named references sanitizers and fediverse servers emit.
fn named(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{A0}',
        "shy" => '\u{AD}',
        "zwj" => '\u{200D}',
        "zwnj" => '\u{200C}',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "sbquo" => '‚',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "laquo" => '«',
        "raquo" => '»',
        "lsaquo" => '‹',
        "rsaquo" => '›',
        "bull" => '•',
        "middot" => '·',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "deg" => '°',
        "times" => '×',
        "divide" => '÷',
        "plusmn" => '±',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "sect" => '§',
        "para" => '¶',
        "iexcl" => '¡',
        "iquest" => '¿',
        _ => return None,
    })
}

/// Position of `needle` (ASCII, lowercase) in `haystack`, ignoring ASCII case.
fn find_ascii_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// `name` in ASCII lowercase, in `buf`; names longer than `buf` (we act on none) give `""`.
fn lowercase_name<'b>(name: &str, buf: &'b mut [u8; 10]) -> &'b str {
    let Some(dst) = buf.get_mut(..name.len()) else {
        return "";
    };
    for (d, s) in dst.iter_mut().zip(name.bytes()) {
        *d = s.to_ascii_lowercase();
    }
    std::str::from_utf8(dst).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_the_html_mastodon_sends() {
        // (name, html, text, link, links)
        let cases: &[(&str, &str, &str, bool, &[&str])] = &[
            ("one paragraph", "<p>Hello world</p>", "Hello world", false, &[]),
            ("paragraphs", "<p>a</p><p>b</p>", "a\n\nb", false, &[]),
            ("br", "<p>a<br>b<br />c</p>", "a\nb\nc", false, &[]),
            ("br then paragraph", "<p>a<br></p><p>b</p>", "a\n\nb", false, &[]),
            ("entities", "<p>&quot;x&quot; &amp; &lt;y&gt; &#39;z&#x27;</p>", "\"x\" & <y> 'z'", false, &[]),
            ("unknown entity kept", "a &bogus; b &amp c", "a &bogus; b &amp c", false, &[]),
            ("nbsp and emoji ref", "a&nbsp;b &#128512;", "a\u{A0}b 😀", false, &[]),
            ("bad numeric ref", "&#0; &#xD800; &#99999999;", "\u{FFFD} \u{FFFD} \u{FFFD}", false, &[]),
            (
                "hidden url spans read whole",
                "<p><a href=\"https://ex.com/a/b\" rel=\"nofollow noopener\"><span class=\"invisible\">https://</span><span class=\"ellipsis\">ex.com/a</span><span class=\"invisible\">/b</span></a></p>",
                "https://ex.com/a/b",
                true,
                &["https://ex.com/a/b"],
            ),
            (
                "mention is not a link",
                "<p><span class=\"h-card\"><a href=\"https://m.s/@x\" class=\"u-url mention\">@<span>x</span></a></span> hi</p>",
                "@x hi",
                false,
                &[],
            ),
            (
                "hashtag is not a link",
                "<p><a href=\"https://m.s/tags/rust\" class=\"mention hashtag\" rel=\"tag\">#<span>rust</span></a></p>",
                "#rust",
                false,
                &[],
            ),
            ("rel tag alone", "<a href='https://p.l/tag/x' rel=tag>#x</a>", "#x", false, &[]),
            ("anchor without href", "<a name=x>y</a>", "y", false, &[]),
            ("script dropped", "<p>a</p><script>alert('<p>')</script><p>b</p>", "a\n\nb", false, &[]),
            ("list items", "<ul><li>a</li><li>b</li></ul>", "a\nb", false, &[]),
            ("lone lt is text", "1 < 2", "1 < 2", false, &[]),
            ("unclosed tag is text", "a <b", "a <b", false, &[]),
            ("comment", "a<!-- c -->b", "ab", false, &[]),
            ("empty", "", "", false, &[]),
            ("uppercase tags", "<P>a</P><P>b<BR>c</P>", "a\n\nb\nc", false, &[]),
            (
                "references in href decoded",
                "<a href=\"https://ex.com/?a=1&amp;b=2&#38;c=&#x33;&amp\">x</a>",
                "x",
                true,
                &["https://ex.com/?a=1&b=2&c=3&amp"],
            ),
            (
                "links in order, once each, web only",
                "<A HREF='https://b.example/'>b</A> <a href=https://a.example/>a</a> <a href=\" https://b.example/ \">b</a> <a href=\"mailto:x@y.z\">m</a> <a href=\"/relative\">r</a>",
                "b a b m r",
                true,
                &["https://b.example/", "https://a.example/"],
            ),
            (
                "mention and hashtag hrefs are not links",
                "<a href=\"https://m.s/@x\" class=\"u-url mention\">@x</a> <a href=\"https://m.s/tags/y\" rel=\"tag\">#y</a> <a href=\"https://ex.com\">ex</a>",
                "@x #y ex",
                true,
                &["https://ex.com"],
            ),
        ];
        for (name, html, text, link, links) in cases {
            let mut out = String::new();
            let mut found = Vec::new();
            let facts = to_text(html, &mut out, &mut found);
            assert_eq!(out, *text, "{name}");
            assert_eq!(facts.link, *link, "{name}");
            assert_eq!(found, *links, "{name}");
        }
    }

    #[test]
    fn hrefs_borrow_the_html_unless_they_hold_references() {
        let html = r#"<a href="https://ex.com/a">a</a> <a href="https://ex.com/?a&amp;b">b</a>"#;
        let mut links = Vec::new();
        to_text(html, &mut String::new(), &mut links);
        assert!(
            matches!(&links[..], [Cow::Borrowed(_), Cow::Owned(_)]),
            "{links:?}"
        );
        assert_eq!(links, ["https://ex.com/a", "https://ex.com/?a&b"]);
    }

    #[test]
    fn unescapes_what_x_and_reddit_escape() {
        // (raw, text, borrowed)
        let cases: &[(&str, &str, bool)] = &[
            ("no references", "no references", true),
            ("a &amp; b &lt;3 &gt;", "a & b <3 >", false),
            ("&amp;amp; stays one level", "&amp; stays one level", false),
            (
                "&quot; &hellip; &#39; are not escaped by X",
                "&quot; &hellip; &#39; are not escaped by X",
                false,
            ),
            ("AT&T", "AT&T", false),
            ("&", "&", false),
            ("&amp", "&amp", false),
        ];
        for (raw, text, borrowed) in cases {
            let mut buf = String::new();
            let out = unescape_basic(raw, &mut buf);
            assert_eq!(out, *text, "{raw}");
            assert_eq!(std::ptr::eq(out, *raw), *borrowed, "{raw}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_converts_without_panicking(
            html in "(<[a-zA-Z/!]{0,6}[^>]{0,24}>?|&[#a-zA-Z0-9]{0,9};?|[^<&]{0,12})*",
        ) {
            let mut out = String::new();
            to_text(&html, &mut out, &mut Vec::new());
            let mut buf = String::new();
            let plain = unescape_basic(&html, &mut buf);
            proptest::prop_assert!(plain.len() <= html.len());
        }
    }

    #[test]
    fn appends_after_existing_text() {
        let mut out = String::from("CW\n\n");
        to_text("<p>a</p><p>b</p>", &mut out, &mut Vec::new());
        assert_eq!(out, "CW\n\na\n\nb");
    }
}
