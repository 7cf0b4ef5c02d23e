//! Query lexer: the text after `rule id:` → tokens with their byte offsets in the line.
//!
//! Tokens: `(`, `)`, `OR`, `AND`, `NEAR/n`, `-` (exclusion, written directly before what it
//! excludes), terms (bare words, `"phrases"`, `#hashtags`, `@handles`, `$cashtags`, any of them
//! with a trailing `*` for a prefix, and `raw:"…"` for case-sensitive text), field operators
//! (`lang:`, `from:`, `is:`, `has:`, `url:`, `domain:`, `followers:`) and list references
//! (`list:name`). A `#` at the start of a token followed by whitespace (or ending the line)
//! starts a comment, so `#acme` is a hashtag and `c#` a word.
//!
//! Every lexical mistake on the line is reported; a bad token is replaced by
//! [`Tok::Invalid`], which the parser treats as an atom, so one typo does not also produce a
//! cascade of grammar errors. Term shapes are checked by [`literal`], shared with terms files
//! and lists so all three accept exactly the same terms.

use super::{
    Attachment, Compare, Field, PostKind, TermKind, MAX_NEAR, MAX_TERM_BYTES, MIN_PREFIX_CHARS,
};
use crate::normalize::{casefold, is_unspaced_script, is_word_char};

/// One token of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok<'a> {
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `OR`
    Or,
    /// `AND`
    And,
    /// `NEAR/n`, holding `n`.
    Near(u32),
    /// `-` directly before a term or `(`.
    Not,
    /// A literal term.
    Term(Lit<'a>),
    /// A field operator, already checked.
    Field(Field),
    /// `list:name`, holding the name.
    List(&'a str),
    /// A token that had a lexical error (already reported); parsed as an atom.
    Invalid,
}

/// A literal term as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lit<'a> {
    /// Decides its boundary rule.
    pub kind: TermKind,
    /// As written: sigil and trailing `*` kept, phrase quotes and `raw:` dropped.
    pub text: &'a str,
    /// Written with a trailing `*`.
    pub prefix: bool,
    /// Written as `raw:…`: matched with its exact letter case.
    pub raw: bool,
}

/// A token and the byte offset in the line where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spanned<'a> {
    pub tok: Tok<'a>,
    pub at: usize,
}

/// A lexical error at a byte offset of the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexError {
    pub at: usize,
    pub message: String,
}

/// Whether `#` at byte `at` of `line` starts a comment: it is followed by whitespace or ends
/// the line. (The caller only asks at the start of a token.)
pub(crate) fn is_comment_start(line: &str, at: usize) -> bool {
    line.get(at..).is_some_and(|rest| {
        rest.starts_with('#') && rest[1..].chars().next().is_none_or(char::is_whitespace)
    })
}

/// The operators a `name:` may be, for error messages.
const OPERATORS: &str = "lang:, from:, is:, has:, url:, domain:, followers:, list: and raw:";

/// Lexes `line[start..]` (up to a comment) into `toks`, reporting every mistake in `errors`.
pub(crate) fn lex_query<'a>(
    line: &'a str,
    start: usize,
    toks: &mut Vec<Spanned<'a>>,
    errors: &mut Vec<LexError>,
) {
    let mut i = start;
    while i < line.len() {
        let rest = &line[i..];
        let Some(c) = rest.chars().next() else { break };
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        if c == '#' && is_comment_start(line, i) {
            break;
        }
        let (tok, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '"' => match quoted(rest) {
                None => {
                    errors.push(LexError {
                        at: i,
                        message: "unterminated phrase: expected a closing '\"'".into(),
                    });
                    toks.push(Spanned {
                        tok: Tok::Invalid,
                        at: i,
                    });
                    return;
                }
                Some(phrase) => {
                    let tok = literal(TermKind::Phrase, phrase, false).map(Tok::Term);
                    (ok_or_invalid(tok, i, errors), phrase.len() + 2)
                }
            },
            '-' => {
                let next = rest[1..].chars().next();
                if next.is_none_or(|n| n.is_whitespace() || n == ')') {
                    errors.push(LexError {
                        at: i,
                        message: "expected a term or '(' directly after '-' (write -term to \
                                  exclude a term)"
                            .into(),
                    });
                    (Tok::Invalid, 1)
                } else {
                    (Tok::Not, 1)
                }
            }
            _ => {
                let len = rest
                    .find(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '"'))
                    .unwrap_or(rest.len());
                let word = &rest[..len];
                // `raw:"…"` and `url:"…"`: the operator's value is the quoted text after it.
                if let Some(op) = word
                    .strip_suffix(':')
                    .filter(|_| rest[len..].starts_with('"'))
                {
                    let Some(value) = quoted(&rest[len..]) else {
                        errors.push(LexError {
                            at: i + len,
                            message: "unterminated phrase: expected a closing '\"'".into(),
                        });
                        toks.push(Spanned {
                            tok: Tok::Invalid,
                            at: i,
                        });
                        return;
                    };
                    let tok = operator(op, value, true);
                    (ok_or_invalid(tok, i, errors), len + value.len() + 2)
                } else {
                    (ok_or_invalid(classify(word), i, errors), len)
                }
            }
        };
        toks.push(Spanned { tok, at: i });
        i += len;
    }
}

/// The inside of the `"…"` that `s` starts with, if it is closed.
fn quoted(s: &str) -> Option<&str> {
    let body = s.strip_prefix('"')?;
    body.find('"').map(|end| &body[..end])
}

fn ok_or_invalid<'a>(
    tok: Result<Tok<'a>, String>,
    at: usize,
    errors: &mut Vec<LexError>,
) -> Tok<'a> {
    tok.unwrap_or_else(|message| {
        errors.push(LexError { at, message });
        Tok::Invalid
    })
}

/// Classifies a bare token: keyword, field operator or term.
fn classify(word: &str) -> Result<Tok<'_>, String> {
    match word {
        "OR" => return Ok(Tok::Or),
        "AND" => return Ok(Tok::And),
        "NOT" => {
            return Err("'NOT' is not an operator: write -term or -(...) to exclude".into());
        }
        "NEAR" => {
            return Err(
                "write NEAR/n, where n is the most words allowed between the two terms \
                 (NEAR/3)"
                    .into(),
            );
        }
        _ => {}
    }
    if let Some(n) = word.strip_prefix("NEAR/") {
        return match n.parse::<u32>() {
            Ok(k) if k <= MAX_NEAR && n.bytes().all(|b| b.is_ascii_digit()) => Ok(Tok::Near(k)),
            _ => Err(format!(
                "expected a number of words from 0 to {MAX_NEAR} after NEAR/, found '{n}'"
            )),
        };
    }
    if let Some((field, value)) = field_operator(word) {
        return operator(field, value, false);
    }
    literal(term_kind_of(word), word, false).map(Tok::Term)
}

/// A `name:value` token: `quoted` when the value was written in double quotes.
fn operator<'a>(name: &str, value: &'a str, quoted: bool) -> Result<Tok<'a>, String> {
    let name_lc = name.to_ascii_lowercase();
    if quoted && !matches!(name_lc.as_str(), "raw" | "url") {
        return Err(format!(
            "'{name}:' takes no quoted value; only raw: and url: do"
        ));
    }
    let empty = || format!("expected a value after '{name}:'");
    match name_lc.as_str() {
        "raw" => {
            if value.is_empty() {
                return Err("expected the exact text after 'raw:' (raw:\"ACME\")".into());
            }
            let kind = if quoted && value.contains(char::is_whitespace) {
                TermKind::Phrase
            } else {
                term_kind_of(value)
            };
            literal(kind, value, true).map(Tok::Term)
        }
        "lang" => {
            if value.is_empty() {
                return Err("expected a language tag like 'en' or 'pt-BR' after 'lang:'".into());
            }
            let tags: Vec<&str> = value.split(',').collect();
            if let Some(bad) = tags.iter().find(|t| !is_lang_tag(t)) {
                return Err(format!(
                    "expected a language tag like 'en' or 'pt-BR' after 'lang:', found '{bad}'"
                ));
            }
            Ok(Tok::Field(Field::Lang(
                tags.into_iter().map(String::from).collect(),
            )))
        }
        "from" => {
            if value.is_empty() {
                return Err(empty());
            }
            let mut who = Vec::new();
            for part in value.split(',') {
                let body = part.strip_prefix('@').unwrap_or(part);
                if body.is_empty() || !body.chars().all(is_author_char) {
                    return Err(format!(
                        "expected a handle or account id after 'from:', found '{part}'"
                    ));
                }
                who.push(body.to_lowercase());
            }
            Ok(Tok::Field(Field::From(who)))
        }
        "is" => match value {
            "reply" => Ok(Tok::Field(Field::Is(PostKind::Reply))),
            "repost" => Ok(Tok::Field(Field::Is(PostKind::Repost))),
            "quote" => Ok(Tok::Field(Field::Is(PostKind::Quote))),
            _ => Err(format!(
                "expected reply, repost or quote after 'is:', found '{value}'"
            )),
        },
        "has" => match value {
            "link" => Ok(Tok::Field(Field::Has(Attachment::Link))),
            "media" => Ok(Tok::Field(Field::Has(Attachment::Media))),
            _ => Err(format!(
                "expected link or media after 'has:', found '{value}'"
            )),
        },
        "url" => {
            if value.is_empty() || value.contains(char::is_whitespace) {
                return Err(format!(
                    "expected part of a URL after 'url:', found '{value}'"
                ));
            }
            Ok(Tok::Field(Field::Url(value.to_lowercase())))
        }
        "domain" => {
            let host = value.trim_end_matches('.').to_ascii_lowercase();
            let ok = host.contains('.')
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.chars().all(|c| c.is_alphanumeric() || c == '-')
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                });
            if !ok {
                return Err(format!(
                    "expected a domain like 'acme.com' after 'domain:', found '{value}'"
                ));
            }
            Ok(Tok::Field(Field::Domain(host)))
        }
        "followers" => followers(value).map(|(cmp, n)| Tok::Field(Field::Followers(cmp, n))),
        "list" => {
            if value.is_empty() || super::parse::check_id(value).is_err() {
                return Err(format!(
                    "expected a list id after 'list:', found '{value}' (ids are lowercase \
                     letters, digits, '_' and '-')"
                ));
            }
            Ok(Tok::List(value))
        }
        _ => Err(format!(
            "unknown operator '{name}:'; the operators are {OPERATORS} (put a term that \
             contains ':' in double quotes)"
        )),
    }
}

/// `>1000`, `>=10k`, `<5000`, `<=1.5m`, `=0`, `250`.
fn followers(value: &str) -> Result<(Compare, u64), String> {
    let (cmp, number) = if let Some(n) = value.strip_prefix(">=") {
        (Compare::AtLeast, n)
    } else if let Some(n) = value.strip_prefix("<=") {
        (Compare::AtMost, n)
    } else if let Some(n) = value.strip_prefix('>') {
        (Compare::Greater, n)
    } else if let Some(n) = value.strip_prefix('<') {
        (Compare::Less, n)
    } else {
        (Compare::Equal, value.strip_prefix('=').unwrap_or(value))
    };
    count(number).map(|n| (cmp, n)).ok_or_else(|| {
        format!(
            "expected a comparison and a count after 'followers:' (followers:>1000, \
             followers:>=10k, followers:<1.5m), found '{value}'"
        )
    })
}

/// `1000`, `10k`, `1.5m`: a whole count.
pub(crate) fn count(s: &str) -> Option<u64> {
    let (digits, scale) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1_000u64),
        b'm' | b'M' => (&s[..s.len() - 1], 1_000_000u64),
        _ => (s, 1u64),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (scale == 1 && !frac.is_empty())
        || frac.len() > 6
    {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let frac_value = if frac.is_empty() {
        0
    } else {
        let f: u64 = frac.parse().ok()?;
        f.checked_mul(scale)? / 10u64.checked_pow(u32::try_from(frac.len()).ok()?)?
    };
    whole.checked_mul(scale)?.checked_add(frac_value)
}

/// Characters of a handle or account id after `from:` (DIDs have `:`, Mastodon `@`).
fn is_author_char(c: char) -> bool {
    is_word_char(c) || matches!(c, '.' | '-' | '@' | ':')
}

/// `name:value` where name is a letter followed by letters or `_`.
fn field_operator(word: &str) -> Option<(&str, &str)> {
    let colon = word.find(':')?;
    let name = &word[..colon];
    let mut chars = name.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphabetic() || c == '_'))
        .then(|| (name, &word[colon + 1..]))
}

/// A BCP 47-ish tag: 2–3 letters, then `-` subtags of 1–8 letters or digits.
fn is_lang_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or("");
    (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The kind a bare token (or a terms-file line) is, from its first character.
pub(crate) fn term_kind_of(word: &str) -> TermKind {
    match word.as_bytes().first() {
        Some(b'#') => TermKind::Hashtag,
        Some(b'@') => TermKind::Handle,
        Some(b'$') => TermKind::Cashtag,
        _ if word.contains(char::is_whitespace) => TermKind::Phrase,
        _ => TermKind::Word,
    }
}

/// A checked literal of `kind` written as `text` (a trailing `*` makes it a prefix term).
pub(crate) fn literal(kind: TermKind, text: &str, raw: bool) -> Result<Lit<'_>, String> {
    let body = match text.strip_suffix('*') {
        Some(body) if !body.is_empty() => body,
        _ => text,
    };
    let prefix = body.len() < text.len();
    check_term(kind, body)?;
    if prefix {
        if body.ends_with(|c: char| c.is_whitespace() || c == '*') {
            return Err(format!(
                "'*' ends a prefix term and follows its last letter: found '{}'",
                shorten(text, 60)
            ));
        }
        let folded = casefold(body);
        let chars = folded
            .trim_start_matches(['#', '@', '$'])
            .chars()
            .filter(|&c| is_word_char(c))
            .count();
        if chars < MIN_PREFIX_CHARS && !folded.chars().any(is_unspaced_script) {
            return Err(format!(
                "a prefix term needs at least {MIN_PREFIX_CHARS} letters before '*' (it \
                 would match too many words): found '{}'",
                shorten(text, 60)
            ));
        }
    }
    Ok(Lit {
        kind,
        text,
        prefix,
        raw,
    })
}

/// Checks that `text` (as written, sigil included, no trailing `*`) is a well-formed term of
/// `kind`.
pub(crate) fn check_term(kind: TermKind, text: &str) -> Result<(), String> {
    if text.len() > MAX_TERM_BYTES {
        return Err(format!(
            "term is {} bytes; the limit is {MAX_TERM_BYTES}: {}…",
            text.len(),
            shorten(text, 40)
        ));
    }
    if let Some(c) = text.chars().find(|c| c.is_control() && !c.is_whitespace()) {
        return Err(format!("control character {c:?} in term"));
    }
    let body = match kind {
        TermKind::Word => return Ok(()),
        TermKind::Phrase => {
            return if text.trim().is_empty() {
                Err("empty phrase".into())
            } else {
                Ok(())
            };
        }
        TermKind::Hashtag | TermKind::Handle | TermKind::Cashtag => &text[1..],
    };
    let (what, sigil) = match kind {
        TermKind::Hashtag => ("hashtag", '#'),
        TermKind::Handle => ("handle", '@'),
        _ => ("cashtag", '$'),
    };
    if body.is_empty() {
        return Err(format!("expected a {what} after '{sigil}'"));
    }
    let ok = match kind {
        TermKind::Hashtag => body.chars().all(is_word_char),
        TermKind::Handle => {
            body.chars()
                .all(|c| is_word_char(c) || matches!(c, '.' | '-' | '@'))
                && body.starts_with(is_word_char)
                && body.ends_with(is_word_char)
        }
        _ => {
            body.starts_with(|c: char| c.is_alphabetic())
                && body.chars().all(|c| is_word_char(c) || c == '.')
                && body.ends_with(is_word_char)
        }
    };
    if ok {
        return Ok(());
    }
    let shape = match kind {
        TermKind::Hashtag => "'#' followed by letters, digits or '_'",
        TermKind::Handle => "'@' followed by letters, digits, '_', '.' or '-'",
        _ => "'$' followed by a letter, then letters, digits or '.'",
    };
    Err(format!(
        "a {what} is {shape}; found '{}'",
        shorten(text, 60)
    ))
}

/// At most `chars` characters of `s`, for error messages.
pub(crate) fn shorten(s: &str, chars: usize) -> &str {
    s.char_indices().nth(chars).map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(q: &str) -> (Vec<Tok<'_>>, Vec<(usize, String)>) {
        let mut toks = Vec::new();
        let mut errors = Vec::new();
        lex_query(q, 0, &mut toks, &mut errors);
        (
            toks.into_iter().map(|t| t.tok).collect(),
            errors.into_iter().map(|e| (e.at, e.message)).collect(),
        )
    }

    /// A token as a short string: `word:acme`, `phrase:a b*` (prefix), `raw word:ACME`,
    /// `field:Lang(["en"])`, …
    fn show(tok: &Tok<'_>) -> String {
        match tok {
            Tok::Term(lit) => {
                format!(
                    "{}{:?}:{}",
                    if lit.raw { "raw " } else { "" },
                    lit.kind,
                    lit.text
                )
                .to_lowercase()
                    + if lit.prefix { " (prefix)" } else { "" }
            }
            Tok::Field(f) => format!("field:{f:?}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn tokens() {
        let cases: &[(&str, &[&str])] = &[
            ("acme", &["word:acme"]),
            ("acme OR #acme", &["word:acme", "Or", "hashtag:#acme"]),
            ("a AND b", &["word:a", "And", "word:b"]),
            ("or and", &["word:or", "word:and"]),
            ("\"acme  corp\"", &["phrase:acme  corp"]),
            ("\"a\"b", &["phrase:a", "word:b"]),
            (
                "-x -(y)",
                &["Not", "word:x", "Not", "LParen", "word:y", "RParen"],
            ),
            ("-\"a b\"", &["Not", "phrase:a b"]),
            ("e-trade", &["word:e-trade"]),
            (
                "(@acmehq $ACME)",
                &["LParen", "handle:@acmehq", "cashtag:$acme", "RParen"],
            ),
            (
                "@gargron@mastodon.social",
                &["handle:@gargron@mastodon.social"],
            ),
            (
                "lang:en lang:pt-BR LANG:ja lang:en,es",
                &[
                    "field:Lang([\"en\"])",
                    "field:Lang([\"pt-BR\"])",
                    "field:Lang([\"ja\"])",
                    "field:Lang([\"en\", \"es\"])",
                ],
            ),
            ("c# # a comment", &["word:c#"]),
            ("acme #", &["word:acme"]),
            ("# all comment", &[]),
            ("\"a # b\"", &["phrase:a # b"]),
            ("12:30", &["word:12:30"]),
            ("東京", &["word:東京"]),
            (
                "refund* #acme*",
                &["word:refund* (prefix)", "hashtag:#acme* (prefix)"],
            ),
            ("\"rocket skat*\"", &["phrase:rocket skat* (prefix)"]),
            ("f*ck *", &["word:f*ck", "word:*"]),
            ("a NEAR/3 b", &["word:a", "Near(3)", "word:b"]),
            (
                "raw:ACME raw:\"Acme Corp\"",
                &["raw word:acme", "raw phrase:acme corp"],
            ),
            (
                "from:@AcmeHQ,did:plc:abc",
                &["field:From([\"acmehq\", \"did:plc:abc\"])"],
            ),
            (
                "is:reply is:repost is:quote has:link has:media",
                &[
                    "field:Is(Reply)",
                    "field:Is(Repost)",
                    "field:Is(Quote)",
                    "field:Has(Link)",
                    "field:Has(Media)",
                ],
            ),
            (
                "url:Acme.com/Help url:\"acme.com/a(b)\"",
                &[
                    "field:Url(\"acme.com/help\")",
                    "field:Url(\"acme.com/a(b)\")",
                ],
            ),
            ("domain:Acme.COM", &["field:Domain(\"acme.com\")"]),
            (
                "followers:>1000 followers:>=10k followers:<1.5m followers:250",
                &[
                    "field:Followers(Greater, 1000)",
                    "field:Followers(AtLeast, 10000)",
                    "field:Followers(Less, 1500000)",
                    "field:Followers(Equal, 250)",
                ],
            ),
            ("-list:jobs", &["Not", "List(\"jobs\")"]),
            ("🔥", &["word:🔥"]),
        ];
        for (q, want) in cases {
            let (toks, errors) = lex(q);
            assert!(errors.is_empty(), "{q}: {errors:?}");
            let got: Vec<String> = toks.iter().map(show).collect();
            assert_eq!(got, *want, "{q}");
        }
    }

    #[test]
    fn errors() {
        let long = format!("a{}", "b".repeat(MAX_TERM_BYTES));
        let cases: Vec<(&str, usize, &str)> = vec![
            (
                "acme \"corp",
                5,
                "unterminated phrase: expected a closing '\"'",
            ),
            ("\"  \"", 0, "empty phrase"),
            ("a - b", 2, "expected a term or '(' directly after '-'"),
            ("a -", 2, "expected a term or '(' directly after '-'"),
            ("x NOT y", 2, "'NOT' is not an operator"),
            ("src:web", 0, "unknown operator 'src:'"),
            ("NEAR", 0, "write NEAR/n"),
            (
                "a NEAR/x b",
                2,
                "expected a number of words from 0 to 50 after NEAR/",
            ),
            ("a NEAR/51 b", 2, "expected a number of words from 0 to 50"),
            (
                "ab*",
                0,
                "a prefix term needs at least 3 letters before '*'",
            ),
            ("#a*", 0, "a prefix term needs at least 3 letters"),
            (
                "\"acme *\"",
                0,
                "'*' ends a prefix term and follows its last letter",
            ),
            ("raw:", 0, "expected the exact text after 'raw:'"),
            ("raw:\"open", 4, "unterminated phrase"),
            ("from:", 0, "expected a value after 'from:'"),
            (
                "from:a,,b",
                0,
                "expected a handle or account id after 'from:', found ''",
            ),
            (
                "is:retweet",
                0,
                "expected reply, repost or quote after 'is:'",
            ),
            ("has:video", 0, "expected link or media after 'has:'"),
            ("domain:acme", 0, "expected a domain like 'acme.com'"),
            ("domain:-x.com", 0, "expected a domain"),
            (
                "followers:many",
                0,
                "expected a comparison and a count after 'followers:'",
            ),
            ("followers:>1.5", 0, "expected a comparison and a count"),
            (
                "followers:>99999999999999999999",
                0,
                "expected a comparison",
            ),
            (
                "lang:en,",
                0,
                "expected a language tag like 'en' or 'pt-BR' after 'lang:', found ''",
            ),
            ("list:Jobs", 0, "expected a list id after 'list:'"),
            ("lang:\"en\"", 0, "'lang:' takes no quoted value"),
            ("https://acme.com", 0, "unknown operator 'https:'"),
            (
                "lang:",
                0,
                "expected a language tag like 'en' or 'pt-BR' after 'lang:'",
            ),
            ("lang:english1", 0, "found 'english1'"),
            (
                "a #acme!",
                2,
                "a hashtag is '#' followed by letters, digits or '_'",
            ),
            ("@", 0, "expected a handle after '@'"),
            ("@acme.", 0, "a handle is '@' followed by"),
            ("$100", 0, "a cashtag is '$' followed by a letter"),
            ("#(x)", 0, "expected a hashtag after '#'"),
            (&long, 0, "term is 257 bytes; the limit is 256"),
        ];
        for (q, at, want) in cases {
            let (toks, errors) = lex(q);
            assert_eq!(errors.len(), 1, "{q}: {errors:?}");
            assert_eq!(errors[0].0, at, "{q}");
            assert!(
                errors[0].1.starts_with(want) || errors[0].1.contains(want),
                "{q}: {}",
                errors[0].1
            );
            assert!(toks.contains(&Tok::Invalid), "{q}");
        }
    }

    #[test]
    fn reports_every_error_on_a_line() {
        let (_, errors) = lex("foo:x #bad! \"open");
        let at: Vec<usize> = errors.iter().map(|e| e.0).collect();
        assert_eq!(at, vec![0, 6, 12]);
    }

    #[test]
    fn term_kinds() {
        let cases = [
            ("acme", TermKind::Word),
            ("Acme Anvil", TermKind::Phrase),
            ("#acme", TermKind::Hashtag),
            ("@acme.bsky.social", TermKind::Handle),
            ("$ACME", TermKind::Cashtag),
        ];
        for (w, k) in cases {
            assert_eq!(term_kind_of(w), k, "{w}");
        }
    }
}
