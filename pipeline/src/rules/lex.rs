//! Query lexer: the text after `rule id:` → tokens with their byte offsets in the line.
//!
//! Tokens: `(`, `)`, `OR`, `AND`, `-` (exclusion, written directly before what it excludes),
//! terms (bare words, `"phrases"`, `#hashtags`, `@handles`, `$cashtags`) and `lang:xx`. A `#`
//! at the start of a token followed by whitespace (or ending the line) starts a comment, so
//! `#acme` is a hashtag and `c#` a word.
//!
//! Every lexical mistake on the line is reported; a bad token is replaced by
//! [`Tok::Invalid`], which the parser treats as an atom, so one typo does not also produce a
//! cascade of grammar errors. Term shapes are checked by [`check_term`], shared with terms
//! files so both accept exactly the same terms.

use super::{TermKind, MAX_TERM_BYTES};
use crate::stage::normalize::is_word_char;

/// One token of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok<'a> {
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `OR`
    Or,
    /// `AND`
    And,
    /// `-` directly before a term or `(`.
    Not,
    /// A literal term, as written (sigil kept, phrase quotes dropped).
    Term(TermKind, &'a str),
    /// `lang:TAG`, holding the tag.
    Lang(&'a str),
    /// A token that had a lexical error (already reported); parsed as an atom.
    Invalid,
}

/// A token and the byte offset in the line where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
        match c {
            '(' => {
                toks.push(Spanned {
                    tok: Tok::LParen,
                    at: i,
                });
                i += 1;
            }
            ')' => {
                toks.push(Spanned {
                    tok: Tok::RParen,
                    at: i,
                });
                i += 1;
            }
            '"' => {
                let body = &rest[1..];
                match body.find('"') {
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
                    Some(end) => {
                        let phrase = &body[..end];
                        let tok = match check_term(TermKind::Phrase, phrase) {
                            Ok(()) => Tok::Term(TermKind::Phrase, phrase),
                            Err(message) => {
                                errors.push(LexError { at: i, message });
                                Tok::Invalid
                            }
                        };
                        toks.push(Spanned { tok, at: i });
                        i += end + 2;
                    }
                }
            }
            '-' => {
                let next = rest[1..].chars().next();
                if next.is_none_or(|n| n.is_whitespace() || n == ')') {
                    errors.push(LexError {
                        at: i,
                        message: "expected a term or '(' directly after '-' (write -term to \
                                  exclude a term)"
                            .into(),
                    });
                    toks.push(Spanned {
                        tok: Tok::Invalid,
                        at: i,
                    });
                } else {
                    toks.push(Spanned {
                        tok: Tok::Not,
                        at: i,
                    });
                }
                i += 1;
            }
            _ => {
                let len = rest
                    .find(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '"'))
                    .unwrap_or(rest.len());
                let word = &rest[..len];
                let tok = match classify(word) {
                    Ok(tok) => tok,
                    Err(message) => {
                        errors.push(LexError { at: i, message });
                        Tok::Invalid
                    }
                };
                toks.push(Spanned { tok, at: i });
                i += len;
            }
        }
    }
}

/// Classifies a bare token: keyword, field operator or term.
fn classify(word: &str) -> Result<Tok<'_>, String> {
    match word {
        "OR" => return Ok(Tok::Or),
        "AND" => return Ok(Tok::And),
        "NOT" => {
            return Err("'NOT' is not an operator: write -term or -(...) to exclude".into());
        }
        _ => {}
    }
    if let Some((field, value)) = field_operator(word) {
        if !field.eq_ignore_ascii_case("lang") {
            return Err(format!(
                "unknown operator '{field}:'; the only field operator is 'lang:' \
                 (put a term that contains ':' in double quotes)"
            ));
        }
        if value.is_empty() {
            return Err("expected a language tag like 'en' or 'pt-BR' after 'lang:'".into());
        }
        if !is_lang_tag(value) {
            return Err(format!(
                "expected a language tag like 'en' or 'pt-BR' after 'lang:', found '{value}'"
            ));
        }
        return Ok(Tok::Lang(value));
    }
    let kind = term_kind_of(word);
    check_term(kind, word)?;
    Ok(Tok::Term(kind, word))
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

/// Checks that `text` (as written, sigil included) is a well-formed term of `kind`.
pub(crate) fn check_term(kind: TermKind, text: &str) -> Result<(), String> {
    if text.len() > MAX_TERM_BYTES {
        return Err(format!(
            "term is {} bytes; the limit is {MAX_TERM_BYTES}: {}…",
            text.len(),
            prefix(text, 40)
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
    Err(format!("a {what} is {shape}; found '{}'", prefix(text, 60)))
}

/// At most `chars` characters of `s`, for error messages.
fn prefix(s: &str, chars: usize) -> &str {
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

    #[test]
    fn tokens() {
        use TermKind::*;
        use Tok::*;
        let cases: &[(&str, &[Tok<'static>])] = &[
            ("acme", &[Term(Word, "acme")]),
            (
                "acme OR #acme",
                &[Term(Word, "acme"), Or, Term(Hashtag, "#acme")],
            ),
            ("a AND b", &[Term(Word, "a"), And, Term(Word, "b")]),
            ("or and", &[Term(Word, "or"), Term(Word, "and")]),
            ("\"acme  corp\"", &[Term(Phrase, "acme  corp")]),
            ("\"a\"b", &[Term(Phrase, "a"), Term(Word, "b")]),
            (
                "-x -(y)",
                &[Not, Term(Word, "x"), Not, LParen, Term(Word, "y"), RParen],
            ),
            ("-\"a b\"", &[Not, Term(Phrase, "a b")]),
            ("e-trade", &[Term(Word, "e-trade")]),
            (
                "(@acmehq $ACME)",
                &[
                    LParen,
                    Term(Handle, "@acmehq"),
                    Term(Cashtag, "$ACME"),
                    RParen,
                ],
            ),
            (
                "@gargron@mastodon.social",
                &[Term(Handle, "@gargron@mastodon.social")],
            ),
            (
                "lang:en lang:pt-BR LANG:ja",
                &[Lang("en"), Lang("pt-BR"), Lang("ja")],
            ),
            ("c# # a comment", &[Term(Word, "c#")]),
            ("acme #", &[Term(Word, "acme")]),
            ("# all comment", &[]),
            ("\"a # b\"", &[Term(Phrase, "a # b")]),
            ("12:30", &[Term(Word, "12:30")]),
            ("東京", &[Term(Word, "東京")]),
        ];
        for (q, want) in cases {
            let (toks, errors) = lex(q);
            assert!(errors.is_empty(), "{q}: {errors:?}");
            assert_eq!(toks, *want, "{q}");
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
