//! Rule-file parser: lines of `brand`/`competitor` blocks holding `handle`, `terms` and `rule`
//! lines → brands and rules, with every mistake recorded at its line and column.
//!
//! The file is line-based, so a mistake on one line never hides the next: each line is parsed
//! on its own, and a bad `brand` line still opens a block so the lines under it are checked
//! too. Within a query, every lexical mistake is reported, then the first grammar mistake
//! (after one, the rest of the line cannot be read reliably). Ids are checked for uniqueness
//! across every file given to one [`Builder`].
//!
//! Query grammar (precedence `-` > AND > OR):
//! ```text
//! query  := or
//! or     := and ( "OR" and )*
//! and    := unary ( "AND"? unary )*
//! unary  := "-" atom | atom
//! atom   := term | "lang:" tag | "(" or ")"
//! ```

use std::collections::HashMap;
use std::path::Path;

use super::lex::{self, check_term, is_comment_start, term_kind_of, LexError, Spanned, Tok};
use super::load::{self, ReadError};
use super::{
    Brand, BrandId, BrandKind, Location, Query, Rule, RuleError, RuleErrors, RuleId, RuleSet, Term,
    TermKind, MAX_DEPTH, MAX_QUERY_ATOMS, MAX_QUERY_BYTES, MAX_TERMS_FILE_TERMS,
};
use crate::stage::normalize::casefold;

/// Errors reported per file before the rest are summarized: a garbage file of a million lines
/// should produce a readable report, not a million lines.
const MAX_ERRORS_PER_FILE: usize = 1000;

/// Accumulates brands, rules and errors over one or more files.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    brands: Vec<Brand>,
    brand_index: HashMap<String, Location>,
    rules: Vec<Rule>,
    rule_index: HashMap<String, Location>,
    errors: Vec<RuleError>,
}

/// The line being parsed, for turning byte offsets into locations.
#[derive(Clone, Copy)]
struct LineCtx<'a> {
    file: &'a str,
    line_no: u32,
    line: &'a str,
}

impl LineCtx<'_> {
    fn col(&self, at: usize) -> u32 {
        col_of(self.line, at)
    }

    fn loc(&self, at: usize) -> Location {
        Location {
            file: self.file.to_string(),
            line: self.line_no,
            col: self.col(at),
        }
    }

    fn err(&self, at: usize, message: impl Into<String>) -> RuleError {
        RuleError::at(self.file, self.line_no, self.col(at), message)
    }
}

/// 1-based column, in characters, of byte offset `at` of `line`.
pub(crate) fn col_of(line: &str, at: usize) -> u32 {
    let prefix = line.get(..at).unwrap_or(line);
    u32::try_from(prefix.chars().count() + 1).unwrap_or(u32::MAX)
}

/// A word of a directive line: bare, or in double quotes (`quoted` then holds the inside).
struct Word<'a> {
    at: usize,
    text: &'a str,
    quoted: bool,
}

impl Builder {
    /// Records an error.
    pub(crate) fn error(&mut self, e: RuleError) {
        self.errors.push(e);
    }

    /// Parses one rule file's text.
    pub(crate) fn parse_file(&mut self, file: &str, text: &str, base_dir: &Path) {
        let errors_before = self.errors.len();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut block: Option<usize> = None;
        for (n, raw) in text.split('\n').enumerate() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let Some(start) = line.find(|c: char| !c.is_whitespace()) else {
                continue;
            };
            if is_comment_start(line, start) {
                continue;
            }
            let ctx = LineCtx {
                file,
                line_no: u32::try_from(n + 1).unwrap_or(u32::MAX),
                line,
            };
            let len = line[start..]
                .find(char::is_whitespace)
                .unwrap_or(line.len() - start);
            let directive = &line[start..start + len];
            let after = start + len;
            match directive {
                "brand" => block = Some(self.brand_line(ctx, after, BrandKind::Brand)),
                "competitor" => block = Some(self.brand_line(ctx, after, BrandKind::Competitor)),
                "handle" | "terms" | "rule" => {
                    let Some(brand) = block else {
                        self.errors.push(ctx.err(
                            start,
                            format!(
                                "{directive} outside a brand block: start one with \
                                 brand ID \"Name\" or competitor ID \"Name\""
                            ),
                        ));
                        continue;
                    };
                    match directive {
                        "handle" => self.handle_line(ctx, after, brand),
                        "terms" => self.terms_line(ctx, start, after, brand, base_dir),
                        _ => self.rule_line(ctx, start, after, brand),
                    }
                }
                _ => {
                    let shown: String = directive.chars().take(40).collect();
                    self.errors.push(ctx.err(
                        start,
                        format!(
                            "unknown directive '{shown}'; expected brand, competitor, handle, \
                             terms or rule"
                        ),
                    ));
                }
            }
        }
        let found = self.errors.len() - errors_before;
        if found > MAX_ERRORS_PER_FILE {
            self.errors.truncate(errors_before + MAX_ERRORS_PER_FILE);
            self.errors.push(RuleError::whole_file(
                file,
                format!(
                    "{} more errors in this file not shown",
                    found - MAX_ERRORS_PER_FILE
                ),
            ));
        }
    }

    /// The set, or every error found.
    pub(crate) fn finish(self) -> Result<RuleSet, RuleErrors> {
        if self.errors.is_empty() {
            Ok(RuleSet {
                brands: self.brands,
                rules: self.rules,
            })
        } else {
            Err(RuleErrors(self.errors))
        }
    }

    /// `brand ID "Name"`: always opens a block (so the lines under a bad one are checked).
    fn brand_line(&mut self, ctx: LineCtx<'_>, after: usize, kind: BrandKind) -> usize {
        let keyword = kind.as_str();
        let (id, name) = match self.words(ctx, after) {
            None => (String::new(), String::new()),
            Some(words) => self.brand_words(ctx, after, keyword, &words),
        };
        if !id.is_empty() {
            let loc = ctx.loc(after + leading_space(&ctx.line[after..]));
            if let Some(first) = self.brand_index.get(&id) {
                self.errors.push(RuleError {
                    file: loc.file.clone(),
                    line: loc.line,
                    col: loc.col,
                    message: format!("duplicate brand id '{id}' (first defined at {first})"),
                });
            } else {
                self.brand_index.insert(id.clone(), loc);
            }
        }
        self.brands.push(Brand {
            id: BrandId(id),
            name,
            kind,
            handles: Vec::new(),
        });
        self.brands.len() - 1
    }

    fn brand_words(
        &mut self,
        ctx: LineCtx<'_>,
        after: usize,
        keyword: &str,
        words: &[Word<'_>],
    ) -> (String, String) {
        let Some(id) = words.first() else {
            self.errors
                .push(ctx.err(after, format!("expected a {keyword} id after '{keyword}'")));
            return (String::new(), String::new());
        };
        let id_ok = !id.quoted && check_id(id.text).is_ok();
        if !id_ok {
            let what = if id.quoted {
                format!("\"{}\"", id.text)
            } else {
                id.text.to_string()
            };
            self.errors.push(ctx.err(id.at, id_message(keyword, &what)));
        }
        let name = match words.get(1) {
            Some(w) if w.quoted && !w.text.trim().is_empty() => w.text.to_string(),
            Some(w) if w.quoted => {
                self.errors.push(ctx.err(w.at, "the display name is empty"));
                String::new()
            }
            Some(w) => {
                self.errors.push(ctx.err(
                    w.at,
                    format!(
                        "expected a display name in double quotes, found '{}'",
                        w.text
                    ),
                ));
                String::new()
            }
            None => {
                let at = ctx.line.len();
                self.errors.push(ctx.err(
                    at,
                    format!("expected a display name in double quotes after the {keyword} id"),
                ));
                String::new()
            }
        };
        if let Some(extra) = words.get(2) {
            self.errors.push(ctx.err(
                extra.at,
                format!("unexpected '{}' after the display name", extra.text),
            ));
        }
        (
            if id_ok {
                id.text.to_string()
            } else {
                String::new()
            },
            name,
        )
    }

    /// `handle @a @b.bsky.social`.
    fn handle_line(&mut self, ctx: LineCtx<'_>, after: usize, brand: usize) {
        let Some(words) = self.words(ctx, after) else {
            return;
        };
        if words.is_empty() {
            self.errors
                .push(ctx.err(after, "expected a handle after 'handle'"));
        }
        for w in &words {
            let body = w.text.strip_prefix('@').unwrap_or(w.text);
            let with_sigil = format!("@{body}");
            match (w.quoted, check_term(TermKind::Handle, &with_sigil)) {
                (false, Ok(())) => self.brands[brand].handles.push(body.to_string()),
                (true, _) => {
                    self.errors
                        .push(ctx.err(w.at, "a handle is written without quotes"));
                }
                (false, Err(message)) => self.errors.push(ctx.err(w.at, message)),
            }
        }
    }

    /// `terms PATH`: the file's terms become one OR rule `<brand>-terms`.
    fn terms_line(
        &mut self,
        ctx: LineCtx<'_>,
        start: usize,
        after: usize,
        brand: usize,
        base_dir: &Path,
    ) {
        let Some(words) = self.words(ctx, after) else {
            return;
        };
        let Some(w) = words.first() else {
            self.errors
                .push(ctx.err(after, "expected a terms file path after 'terms'"));
            return;
        };
        if let Some(extra) = words.get(1) {
            self.errors.push(ctx.err(
                extra.at,
                format!(
                    "unexpected '{}' after the terms file path (put a path that contains \
                     spaces in double quotes)",
                    extra.text
                ),
            ));
            return;
        }
        let brand_id = &self.brands[brand].id.0;
        let id = format!("{brand_id}-terms");
        // A brand line with a bad id was reported already; its terms rule gets no id.
        let registered = !brand_id.is_empty()
            && self.register_rule_id(
                ctx,
                start,
                &id,
                "; a terms file becomes the rule <brand>-terms, one per brand",
            );
        let rel = Path::new(w.text);
        let path = if rel.is_absolute() {
            rel.to_path_buf()
        } else {
            base_dir.join(rel)
        };
        let shown = path.display().to_string();
        let text = match load::read_text(&path, super::MAX_TERMS_FILE_BYTES) {
            Ok(text) => text,
            Err(ReadError::Io(e)) => {
                self.errors
                    .push(ctx.err(w.at, format!("cannot read terms file '{shown}': {e}")));
                return;
            }
            Err(ReadError::TooLarge(n)) => {
                self.errors.push(ctx.err(
                    w.at,
                    format!(
                        "terms file '{shown}' is {n} bytes; the limit is {} MiB",
                        super::MAX_TERMS_FILE_BYTES >> 20
                    ),
                ));
                return;
            }
            Err(ReadError::Utf8 { line, col }) => {
                self.errors
                    .push(RuleError::at(&shown, line, col, "invalid UTF-8"));
                return;
            }
        };
        let before = self.errors.len();
        let table = parse_terms(&shown, &text, &mut self.errors);
        if self.errors.len() > before {
            return;
        }
        if table.terms.is_empty() {
            self.errors
                .push(ctx.err(w.at, format!("terms file '{shown}' has no terms")));
            return;
        }
        if !registered {
            return;
        }
        let n = u32::try_from(table.terms.len()).unwrap_or(u32::MAX);
        let query = join((0..n).map(Query::Term).collect(), Query::Or);
        self.push_rule(RuleId(id), brand, query, table.terms, ctx.loc(start));
    }

    /// `rule ID: query`.
    fn rule_line(&mut self, ctx: LineCtx<'_>, start: usize, after: usize, brand: usize) {
        let line = ctx.line;
        let id_at = after + leading_space(&line[after..]);
        let id_len = line[id_at..]
            .find(|c: char| c.is_whitespace() || c == ':')
            .unwrap_or(line.len() - id_at);
        let id = &line[id_at..id_at + id_len];
        if id.is_empty() || is_comment_start(line, id_at) {
            self.errors
                .push(ctx.err(id_at, "expected a rule id after 'rule'"));
            return;
        }
        let id_ok = check_id(id).is_ok();
        if !id_ok {
            self.errors.push(ctx.err(id_at, id_message("rule", id)));
        }
        let colon = id_at + id_len + leading_space(&line[id_at + id_len..]);
        if !line[colon..].starts_with(':') {
            self.errors
                .push(ctx.err(colon, format!("expected ':' after the rule id '{id}'")));
            return;
        }
        let registered = id_ok && self.register_rule_id(ctx, id_at, id, "");
        let q_start = colon + 1 + leading_space(&line[colon + 1..]);
        let q_len = line[q_start..].trim_end().len();
        if q_len > MAX_QUERY_BYTES {
            self.errors.push(ctx.err(
                q_start,
                format!(
                    "query is {q_len} bytes; the limit is {MAX_QUERY_BYTES} (put long term lists \
                     in a terms file)"
                ),
            ));
            return;
        }
        let mut toks = Vec::new();
        let mut lex_errors = Vec::new();
        lex::lex_query(line, q_start, &mut toks, &mut lex_errors);
        if toks.is_empty() && lex_errors.is_empty() {
            self.errors
                .push(ctx.err(q_start, "expected a query after ':'"));
            return;
        }
        let mut parser = QueryParser {
            toks: &toks,
            pos: 0,
            end: line.len(),
            terms: TermTable::default(),
            atoms: 0,
        };
        let parsed = parser.parse();
        let failed = !lex_errors.is_empty();
        for e in lex_errors {
            self.errors.push(ctx.err(e.at, e.message));
        }
        let query = match parsed {
            Ok(q) => q,
            Err(e) => {
                self.errors.push(ctx.err(e.at, e.message));
                return;
            }
        };
        if failed {
            return;
        }
        if !requires_anchor(&query) {
            self.errors.push(ctx.err(
                id_at,
                format!(
                    "rule '{id}' can match a post that contains none of its terms: add a term \
                     that is not excluded (a rule of only exclusions and lang: would match \
                     everything)"
                ),
            ));
            return;
        }
        if registered {
            self.push_rule(
                RuleId(id.to_string()),
                brand,
                query,
                parser.terms.terms,
                ctx.loc(start),
            );
        }
    }

    /// Claims a rule id; false (and an error) when it is taken.
    fn register_rule_id(&mut self, ctx: LineCtx<'_>, at: usize, id: &str, hint: &str) -> bool {
        if let Some(first) = self.rule_index.get(id) {
            let message = format!("duplicate rule id '{id}' (first defined at {first}){hint}");
            self.errors.push(ctx.err(at, message));
            return false;
        }
        self.rule_index.insert(id.to_string(), ctx.loc(at));
        true
    }

    fn push_rule(
        &mut self,
        id: RuleId,
        brand: usize,
        query: Query,
        terms: Vec<Term>,
        location: Location,
    ) {
        let mut anchors = vec![false; terms.len()];
        mark_anchors(&query, &mut anchors);
        self.rules.push(Rule {
            id,
            brand,
            query,
            terms,
            anchors,
            location,
        });
    }

    /// Splits a directive line into words, up to a comment; records an unterminated quote.
    fn words<'a>(&mut self, ctx: LineCtx<'a>, from: usize) -> Option<Vec<Word<'a>>> {
        let line = ctx.line;
        let mut words = Vec::new();
        let mut i = from;
        while i < line.len() {
            i += leading_space(&line[i..]);
            if i >= line.len() || is_comment_start(line, i) {
                break;
            }
            if line[i..].starts_with('"') {
                let Some(end) = line[i + 1..].find('"') else {
                    self.errors
                        .push(ctx.err(i, "unterminated string: expected a closing '\"'"));
                    return None;
                };
                words.push(Word {
                    at: i,
                    text: &line[i + 1..i + 1 + end],
                    quoted: true,
                });
                i += end + 2;
            } else {
                let len = line[i..]
                    .find(char::is_whitespace)
                    .unwrap_or(line.len() - i);
                words.push(Word {
                    at: i,
                    text: &line[i..i + len],
                    quoted: false,
                });
                i += len;
            }
        }
        Some(words)
    }
}

/// Byte length of the leading whitespace of `s`.
fn leading_space(s: &str) -> usize {
    s.len() - s.trim_start().len()
}

/// Ids: `[a-z0-9][a-z0-9_-]*`.
fn check_id(id: &str) -> Result<(), ()> {
    let mut bytes = id.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok =
        bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(())
    }
}

fn id_message(what: &str, id: &str) -> String {
    format!(
        "invalid {what} id '{id}': ids are lowercase letters, digits, '_' and '-', starting with \
         a letter or digit"
    )
}

/// A rule's distinct terms, deduplicated by kind and needle.
#[derive(Debug, Default)]
pub(crate) struct TermTable {
    terms: Vec<Term>,
    index: HashMap<(TermKind, String), u32>,
}

impl TermTable {
    /// How many distinct terms it holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.terms.len()
    }

    fn intern(&mut self, kind: TermKind, text: &str) -> Result<u32, String> {
        let needle = casefold(text);
        if needle.is_empty() {
            return Err(format!("term '{text}' is empty once normalized"));
        }
        let key = (kind, needle);
        if let Some(&i) = self.index.get(&key) {
            return Ok(i);
        }
        let i = u32::try_from(self.terms.len()).map_err(|_| "too many terms".to_string())?;
        let (kind, needle) = key.clone();
        self.terms.push(Term {
            kind,
            text: text.to_string(),
            needle,
        });
        self.index.insert(key, i);
        Ok(i)
    }
}

/// Parses a terms file: one term per non-empty, non-comment line.
pub(crate) fn parse_terms(file: &str, text: &str, errors: &mut Vec<RuleError>) -> TermTable {
    parse_terms_limited(file, text, errors, MAX_TERMS_FILE_TERMS)
}

/// [`parse_terms`] with the term limit as a parameter, so tests can reach it cheaply.
pub(crate) fn parse_terms_limited(
    file: &str,
    text: &str,
    errors: &mut Vec<RuleError>,
    max_terms: usize,
) -> TermTable {
    let mut table = TermTable::default();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let before = errors.len();
    for (n, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let at = leading_space(line);
        if at == line.len() || is_comment_start(line, at) {
            continue;
        }
        let line_no = u32::try_from(n + 1).unwrap_or(u32::MAX);
        let term = strip_trailing_comment(&line[at..]);
        let (kind, written) = match term.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(inner) => (TermKind::Phrase, inner),
            None => (term_kind_of(term), term),
        };
        if let Err(message) =
            check_term(kind, written).and_then(|()| table.intern(kind, written).map(drop))
        {
            errors.push(RuleError::at(file, line_no, col_of(line, at), message));
        } else if table.terms.len() > max_terms {
            errors.push(RuleError::at(
                file,
                line_no,
                col_of(line, at),
                format!("more than {max_terms} terms in one terms file"),
            ));
            break;
        }
        if errors.len() - before >= MAX_ERRORS_PER_FILE {
            errors.push(RuleError::whole_file(
                file,
                "too many errors; stopped reading this file",
            ));
            break;
        }
    }
    table
}

/// `Acme Anvil  # our product` → `Acme Anvil`.
fn strip_trailing_comment(s: &str) -> &str {
    let mut prev_space = false;
    for (i, c) in s.char_indices() {
        if c == '#' && prev_space && is_comment_start(s, i) {
            return s[..i].trim_end();
        }
        prev_space = c.is_whitespace();
    }
    s.trim_end()
}

/// One part as itself, several joined by `make`.
fn join(mut parts: Vec<Query>, make: fn(Vec<Query>) -> Query) -> Query {
    if parts.len() == 1 {
        if let Some(q) = parts.pop() {
            return q;
        }
    }
    make(parts)
}

/// Whether every way the query can hold needs some term outside all exclusions to be found.
fn requires_anchor(q: &Query) -> bool {
    match q {
        Query::Term(_) => true,
        Query::Lang(_) | Query::Not(_) => false,
        Query::And(parts) => parts.iter().any(requires_anchor),
        Query::Or(parts) => !parts.is_empty() && parts.iter().all(requires_anchor),
    }
}

/// Marks the terms that occur outside every exclusion.
fn mark_anchors(q: &Query, anchors: &mut [bool]) {
    match q {
        Query::Term(i) => {
            if let Some(a) = anchors.get_mut(*i as usize) {
                *a = true;
            }
        }
        Query::Lang(_) | Query::Not(_) => {}
        Query::And(parts) | Query::Or(parts) => parts.iter().for_each(|p| mark_anchors(p, anchors)),
    }
}

/// Recursive-descent parser over one query's tokens; recursion is bounded by [`MAX_DEPTH`].
struct QueryParser<'t, 'a> {
    toks: &'t [Spanned<'a>],
    pos: usize,
    /// Byte offset reported for "end of query".
    end: usize,
    terms: TermTable,
    atoms: usize,
}

type Parsed = Result<Query, LexError>;

impl QueryParser<'_, '_> {
    fn parse(&mut self) -> Parsed {
        let q = self.parse_or(0, None)?;
        match self.toks.get(self.pos) {
            None => Ok(q),
            Some(t) => Err(LexError {
                at: t.at,
                message: match t.tok {
                    Tok::RParen => "unexpected ')' without a matching '('".into(),
                    other => format!("unexpected {}", describe(other)),
                },
            }),
        }
    }

    fn peek(&self) -> Option<Tok<'_>> {
        self.toks.get(self.pos).map(|t| t.tok)
    }

    fn parse_or(&mut self, depth: usize, after: Option<&str>) -> Parsed {
        let mut parts = vec![self.parse_and(depth, after)?];
        while self.peek() == Some(Tok::Or) {
            self.pos += 1;
            parts.push(self.parse_and(depth, Some("OR"))?);
        }
        Ok(join(flatten(parts, true), Query::Or))
    }

    fn parse_and(&mut self, depth: usize, after: Option<&str>) -> Parsed {
        let mut parts = vec![self.parse_unary(depth, after)?];
        loop {
            match self.peek() {
                Some(Tok::And) => {
                    self.pos += 1;
                    parts.push(self.parse_unary(depth, Some("AND"))?);
                }
                Some(Tok::Term(..) | Tok::Lang(_) | Tok::LParen | Tok::Not | Tok::Invalid) => {
                    parts.push(self.parse_unary(depth, None)?);
                }
                _ => break,
            }
        }
        Ok(join(flatten(parts, false), Query::And))
    }

    fn parse_unary(&mut self, depth: usize, after: Option<&str>) -> Parsed {
        if self.peek() == Some(Tok::Not) {
            self.pos += 1;
            let inner = self.parse_atom(depth, Some("'-'"))?;
            return Ok(Query::Not(Box::new(inner)));
        }
        self.parse_atom(depth, after)
    }

    fn parse_atom(&mut self, depth: usize, after: Option<&str>) -> Parsed {
        let Some(t) = self.toks.get(self.pos).copied() else {
            return Err(expected(after, self.end, "end of query"));
        };
        match t.tok {
            Tok::Term(kind, text) => {
                self.pos += 1;
                self.count_atom(t.at)?;
                let i = self
                    .terms
                    .intern(kind, text)
                    .map_err(|message| LexError { at: t.at, message })?;
                Ok(Query::Term(i))
            }
            Tok::Lang(tag) => {
                self.pos += 1;
                self.count_atom(t.at)?;
                Ok(Query::Lang(tag.to_string()))
            }
            Tok::Invalid => {
                // Already reported by the lexer; any placeholder will do.
                self.pos += 1;
                Ok(Query::And(Vec::new()))
            }
            Tok::LParen => {
                if depth >= MAX_DEPTH {
                    return Err(LexError {
                        at: t.at,
                        message: format!("parentheses nested deeper than {MAX_DEPTH} levels"),
                    });
                }
                self.pos += 1;
                let inner = self.parse_or(depth + 1, Some("'('"))?;
                if self.peek() == Some(Tok::RParen) {
                    self.pos += 1;
                    Ok(inner)
                } else {
                    Err(LexError {
                        at: t.at,
                        message: "unclosed '(': expected ')' before the end of the query".into(),
                    })
                }
            }
            other => Err(expected(after, t.at, &describe(other))),
        }
    }

    fn count_atom(&mut self, at: usize) -> Result<(), LexError> {
        self.atoms += 1;
        if self.atoms > MAX_QUERY_ATOMS {
            return Err(LexError {
                at,
                message: format!(
                    "query has more than {MAX_QUERY_ATOMS} terms; put long term lists in a terms \
                     file"
                ),
            });
        }
        Ok(())
    }
}

/// `a OR (b OR c)` → `a OR b OR c`; likewise for AND.
fn flatten(parts: Vec<Query>, or: bool) -> Vec<Query> {
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        match p {
            Query::Or(inner) if or => out.extend(inner),
            Query::And(inner) if !or && !inner.is_empty() => out.extend(inner),
            other => out.push(other),
        }
    }
    out
}

fn expected(after: Option<&str>, at: usize, found: &str) -> LexError {
    let message = match after {
        Some(a) => format!("expected a term or '(' after {a}, found {found}"),
        None => format!("expected a term or '(', found {found}"),
    };
    LexError { at, message }
}

fn describe(tok: Tok<'_>) -> String {
    match tok {
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Or => "OR".into(),
        Tok::And => "AND".into(),
        Tok::Not => "'-'".into(),
        Tok::Term(_, text) => format!("'{text}'"),
        Tok::Lang(tag) => format!("'lang:{tag}'"),
        Tok::Invalid => "an invalid token".into(),
    }
}
