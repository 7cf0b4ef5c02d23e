//! Rule-file parser: lines of `brand`/`competitor` blocks holding `handle`, `terms`, `rule` and
//! `expect` lines, plus `list` lines anywhere → brands and rules, with every mistake recorded
//! at its line and column.
//!
//! The file is line-based, so a mistake on one line never hides the next: each line is parsed
//! on its own, and a bad `brand` line still opens a block so the lines under it are checked
//! too. Within a query, every lexical mistake is reported, then the first grammar mistake
//! (after one, the rest of the line cannot be read reliably). Ids are checked for uniqueness
//! across every file given to one [`Builder`].
//!
//! Named lists are read in a first pass over every file ([`Builder::collect_lists`]), so a rule
//! may use a list defined further down or in another file; a `list:name` reference expands
//! into the list's terms, interned into the rule's own term table like any other term.
//!
//! Query grammar (precedence `NEAR/n` > `-` > AND > OR):
//! ```text
//! query  := or
//! or     := and ( "OR" and )*
//! and    := unary ( "AND"? unary )*
//! unary  := "-" near | near
//! near   := atom ( "NEAR/n" atom )?          # both atoms: a term or ( term OR … )
//! atom   := term | field | "list:" ID | "(" or ")"
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::lex::{
    self, count, is_comment_start, literal, shorten, term_kind_of, LexError, Lit, Spanned, Tok,
};
use super::load::{self, ReadError};
use super::{
    Brand, BrandId, BrandKind, Example, Expect, Field, Fold, Location, PostKind, Query, Rule,
    RuleError, RuleErrors, RuleId, RuleSet, Term, TermKind, MAX_DEPTH, MAX_EXAMPLE_BYTES,
    MAX_LIST_TERMS, MAX_QUERY_ATOMS, MAX_QUERY_BYTES, MAX_TAGS, MAX_TERMS_FILE_TERMS,
};
use crate::normalize::{casefold, fold_accents};
use crate::post::PostFlags;

/// Errors reported per file before the rest are summarized: a garbage file of a million lines
/// should produce a readable report, not a million lines.
const MAX_ERRORS_PER_FILE: usize = 1000;

/// A named list: its terms as written, and where it was defined.
#[derive(Debug, Clone)]
struct ListDef {
    terms: Vec<OwnedLit>,
    location: Location,
}

/// A literal kept beyond its line (list terms).
#[derive(Debug, Clone)]
struct OwnedLit {
    kind: TermKind,
    text: String,
    prefix: bool,
    raw: bool,
}

impl From<Term> for OwnedLit {
    fn from(t: Term) -> Self {
        OwnedLit {
            kind: t.kind,
            text: t.text,
            prefix: t.prefix,
            raw: t.fold == Fold::Exact,
        }
    }
}

impl From<Lit<'_>> for OwnedLit {
    fn from(l: Lit<'_>) -> Self {
        OwnedLit {
            kind: l.kind,
            text: l.text.to_string(),
            prefix: l.prefix,
            raw: l.raw,
        }
    }
}

/// The rule that `expect` lines attach to.
#[derive(Debug, Clone, Copy)]
enum LastRule {
    /// No rule line yet in this block.
    None,
    /// `rules[i]`.
    At(usize),
    /// The last rule line had a mistake: its examples are checked but kept nowhere.
    Broken,
}

/// Accumulates brands, rules and errors over one or more files.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    brands: Vec<Brand>,
    brand_index: HashMap<String, Location>,
    rules: Vec<Rule>,
    rule_index: HashMap<String, Location>,
    lists: HashMap<String, ListDef>,
    errors: Vec<RuleError>,
}

/// The line being parsed, for turning byte offsets into locations.
#[derive(Clone, Copy)]
struct LineCtx<'a> {
    file: &'a Arc<str>,
    line_no: u32,
    line: &'a str,
}

impl LineCtx<'_> {
    fn col(&self, at: usize) -> u32 {
        col_of(self.line, at)
    }

    fn loc(&self, at: usize) -> Location {
        Location {
            file: Arc::clone(self.file),
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

/// A statement line: its context, where its directive starts, the directive, and the byte
/// offset just after it.
struct Statement<'a> {
    ctx: LineCtx<'a>,
    start: usize,
    directive: &'a str,
    after: usize,
}

/// The statement lines of a file (blank and comment lines skipped).
fn statements<'a>(file: &'a Arc<str>, text: &'a str) -> impl Iterator<Item = Statement<'a>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.split('\n').enumerate().filter_map(move |(n, raw)| {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let start = line.find(|c: char| !c.is_whitespace())?;
        if is_comment_start(line, start) {
            return None;
        }
        let len = line[start..]
            .find(char::is_whitespace)
            .unwrap_or(line.len() - start);
        Some(Statement {
            ctx: LineCtx {
                file,
                line_no: u32::try_from(n + 1).unwrap_or(u32::MAX),
                line,
            },
            start,
            directive: &line[start..start + len],
            after: start + len,
        })
    })
}

impl Builder {
    /// Records an error.
    pub(crate) fn error(&mut self, e: RuleError) {
        self.errors.push(e);
    }

    /// First pass over a file: its `list` lines. Run it on every file before
    /// [`Builder::parse_file`] on any, so rules can use lists defined anywhere.
    pub(crate) fn collect_lists(&mut self, file: &str, text: &str, base_dir: &Path) {
        let file: Arc<str> = Arc::from(file);
        for st in statements(&file, text) {
            if st.directive == "list" {
                self.list_line(st.ctx, st.after, base_dir);
            }
        }
    }

    /// Parses one rule file's text (its `list` lines were read by [`Builder::collect_lists`]).
    pub(crate) fn parse_file(&mut self, file: &str, text: &str, base_dir: &Path) {
        let errors_before = self.errors.len();
        let mut block: Option<usize> = None;
        let mut last = LastRule::None;
        let name = file;
        let file: Arc<str> = Arc::from(file);
        for Statement {
            ctx,
            start,
            directive,
            after,
        } in statements(&file, text)
        {
            match directive {
                "list" => {}
                "brand" | "competitor" => {
                    let kind = if directive == "brand" {
                        BrandKind::Brand
                    } else {
                        BrandKind::Competitor
                    };
                    block = Some(self.brand_line(ctx, after, kind));
                    last = LastRule::None;
                }
                "handle" | "terms" | "rule" | "expect" => {
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
                        "terms" => last = self.terms_line(ctx, start, after, brand, base_dir),
                        "rule" => last = self.rule_line(ctx, start, after, brand),
                        _ => self.expect_line(ctx, start, after, last),
                    }
                }
                _ => {
                    let shown = shorten(directive, 40);
                    self.errors.push(ctx.err(
                        start,
                        format!(
                            "unknown directive '{shown}'; expected brand, competitor, handle, \
                             terms, rule, expect or list"
                        ),
                    ));
                }
            }
        }
        let found = self.errors.len() - errors_before;
        if found > MAX_ERRORS_PER_FILE {
            self.errors.truncate(errors_before + MAX_ERRORS_PER_FILE);
            self.errors.push(RuleError::whole_file(
                name,
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
                    file: loc.file.to_string(),
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
            match (w.quoted, lex::check_term(TermKind::Handle, &with_sigil)) {
                (false, Ok(())) => self.brands[brand].handles.push(body.to_string()),
                (true, _) => {
                    self.errors
                        .push(ctx.err(w.at, "a handle is written without quotes"));
                }
                (false, Err(message)) => self.errors.push(ctx.err(w.at, message)),
            }
        }
    }

    /// Reads the terms file named by word `w` of a line; `None` after recording why not.
    fn read_terms_file(
        &mut self,
        ctx: LineCtx<'_>,
        w: &Word<'_>,
        base_dir: &Path,
        max_terms: usize,
    ) -> Option<TermTable> {
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
                return None;
            }
            Err(ReadError::TooLarge(n)) => {
                self.errors.push(ctx.err(
                    w.at,
                    format!(
                        "terms file '{shown}' is {n} bytes; the limit is {} MiB",
                        super::MAX_TERMS_FILE_BYTES >> 20
                    ),
                ));
                return None;
            }
            Err(ReadError::Utf8 { line, col }) => {
                self.errors
                    .push(RuleError::at(&shown, line, col, "invalid UTF-8"));
                return None;
            }
        };
        let before = self.errors.len();
        let table = parse_terms_limited(&shown, &text, &mut self.errors, max_terms);
        if self.errors.len() > before {
            return None;
        }
        if table.terms.is_empty() {
            self.errors
                .push(ctx.err(w.at, format!("terms file '{shown}' has no terms")));
            return None;
        }
        Some(table)
    }

    /// `terms PATH`: the file's terms become one OR rule `<brand>-terms`.
    fn terms_line(
        &mut self,
        ctx: LineCtx<'_>,
        start: usize,
        after: usize,
        brand: usize,
        base_dir: &Path,
    ) -> LastRule {
        let Some(words) = self.words(ctx, after) else {
            return LastRule::Broken;
        };
        let Some(w) = words.first() else {
            self.errors
                .push(ctx.err(after, "expected a terms file path after 'terms'"));
            return LastRule::Broken;
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
            return LastRule::Broken;
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
        let Some(table) = self.read_terms_file(ctx, w, base_dir, MAX_TERMS_FILE_TERMS) else {
            return LastRule::Broken;
        };
        if !registered {
            return LastRule::Broken;
        }
        let n = u32::try_from(table.terms.len()).unwrap_or(u32::MAX);
        let query = join((0..n).map(Query::Term).collect(), Query::Or);
        self.push_rule(
            RuleId(id),
            brand,
            query,
            table.terms,
            ctx.loc(start),
            Vec::new(),
        )
    }

    /// `list ID: a OR "b c" OR #d` or `list ID file PATH`.
    fn list_line(&mut self, ctx: LineCtx<'_>, after: usize, base_dir: &Path) {
        let line = ctx.line;
        let id_at = after + leading_space(&line[after..]);
        let id_len = line[id_at..]
            .find(|c: char| c.is_whitespace() || c == ':')
            .unwrap_or(line.len() - id_at);
        let id = &line[id_at..id_at + id_len];
        if id.is_empty() {
            self.errors
                .push(ctx.err(id_at, "expected a list id after 'list'"));
            return;
        }
        if check_id(id).is_err() {
            self.errors.push(ctx.err(id_at, id_message("list", id)));
            return;
        }
        let rest_at = id_at + id_len + leading_space(&line[id_at + id_len..]);
        let terms = if line[rest_at..].starts_with(':') {
            self.inline_list(ctx, rest_at + 1)
        } else if line[rest_at..].starts_with("file")
            && line[rest_at + 4..]
                .chars()
                .next()
                .is_none_or(char::is_whitespace)
        {
            let Some(words) = self.words(ctx, rest_at + 4) else {
                return;
            };
            match words.as_slice() {
                [w] => self
                    .read_terms_file(ctx, w, base_dir, MAX_LIST_TERMS)
                    .map(|table| table.terms.into_iter().map(OwnedLit::from).collect()),
                [] => {
                    self.errors
                        .push(ctx.err(rest_at + 4, "expected a terms file path after 'file'"));
                    None
                }
                [_, extra, ..] => {
                    self.errors.push(ctx.err(
                        extra.at,
                        format!("unexpected '{}' after the terms file path", extra.text),
                    ));
                    None
                }
            }
        } else {
            self.errors.push(ctx.err(
                rest_at,
                format!(
                    "expected ':' and terms, or 'file PATH', after the list id '{id}' \
                     (list {id}: a OR \"b c\" OR #d)"
                ),
            ));
            None
        };
        let Some(terms) = terms else { return };
        let location = ctx.loc(id_at);
        if let Some(first) = self.lists.get(id) {
            let message = format!(
                "duplicate list id '{id}' (first defined at {})",
                first.location
            );
            self.errors.push(ctx.err(id_at, message));
            return;
        }
        self.lists
            .insert(id.to_string(), ListDef { terms, location });
    }

    /// The terms of `list ID: …`: literals joined by OR, nothing else.
    fn inline_list(&mut self, ctx: LineCtx<'_>, from: usize) -> Option<Vec<OwnedLit>> {
        let line = ctx.line;
        let q_len = line[from..].trim_end().len();
        if q_len > MAX_QUERY_BYTES {
            self.errors.push(ctx.err(
                from,
                format!(
                    "list is {q_len} bytes; the limit is {MAX_QUERY_BYTES} (put long lists in a \
                     file: list ID file PATH)"
                ),
            ));
            return None;
        }
        let mut toks = Vec::new();
        let mut lex_errors = Vec::new();
        lex::lex_query(line, from, &mut toks, &mut lex_errors);
        let failed = !lex_errors.is_empty();
        for e in lex_errors {
            self.errors.push(ctx.err(e.at, e.message));
        }
        if toks.is_empty() && !failed {
            self.errors
                .push(ctx.err(from, "expected terms after ':' (a OR \"b c\" OR #d)"));
            return None;
        }
        let mut terms = Vec::new();
        for (i, t) in toks.iter().enumerate() {
            let want_term = i % 2 == 0;
            match (&t.tok, want_term) {
                (Tok::Term(lit), true) => terms.push(OwnedLit::from(*lit)),
                (Tok::Or, false) | (Tok::Invalid, _) => {}
                (other, _) => {
                    let expected = if want_term { "a term" } else { "OR" };
                    self.errors.push(ctx.err(
                        t.at,
                        format!(
                            "a list is terms joined by OR: expected {expected}, found {}",
                            describe(other)
                        ),
                    ));
                    return None;
                }
            }
        }
        if toks.len() % 2 == 0 && !failed {
            let at = toks.last().map_or(from, |t| t.at);
            self.errors
                .push(ctx.err(at, "expected a term after OR, found end of list"));
            return None;
        }
        (!failed).then_some(terms)
    }

    /// `rule ID [tags=a,b] [accents=ignore]: query`.
    fn rule_line(
        &mut self,
        ctx: LineCtx<'_>,
        start: usize,
        after: usize,
        brand: usize,
    ) -> LastRule {
        let line = ctx.line;
        let id_at = after + leading_space(&line[after..]);
        let id_len = line[id_at..]
            .find(|c: char| c.is_whitespace() || c == ':')
            .unwrap_or(line.len() - id_at);
        let id = &line[id_at..id_at + id_len];
        if id.is_empty() || is_comment_start(line, id_at) {
            self.errors
                .push(ctx.err(id_at, "expected a rule id after 'rule'"));
            return LastRule::Broken;
        }
        let id_ok = check_id(id).is_ok();
        if !id_ok {
            self.errors.push(ctx.err(id_at, id_message("rule", id)));
        }
        let Some((options, colon)) = self.rule_options(ctx, id, id_at + id_len) else {
            return LastRule::Broken;
        };
        // Bad options were reported; the query is still checked, but the rule is not kept.
        let registered = id_ok && options.ok && self.register_rule_id(ctx, id_at, id, "");
        let q_start = colon + 1 + leading_space(&line[colon + 1..]);
        let q_len = line[q_start..].trim_end().len();
        if q_len > MAX_QUERY_BYTES {
            self.errors.push(ctx.err(
                q_start,
                format!(
                    "query is {q_len} bytes; the limit is {MAX_QUERY_BYTES} (put long term lists \
                     in a terms file or a list)"
                ),
            ));
            return LastRule::Broken;
        }
        let mut toks = Vec::new();
        let mut lex_errors = Vec::new();
        lex::lex_query(line, q_start, &mut toks, &mut lex_errors);
        if toks.is_empty() && lex_errors.is_empty() {
            self.errors
                .push(ctx.err(q_start, "expected a query after ':'"));
            return LastRule::Broken;
        }
        let mut parser = QueryParser {
            toks: &toks,
            pos: 0,
            end: line.len(),
            terms: TermTable {
                accents: options.accents,
                ..TermTable::default()
            },
            atoms: 0,
            lists: &self.lists,
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
                return LastRule::Broken;
            }
        };
        if failed {
            return LastRule::Broken;
        }
        if !requires_anchor(&query) {
            self.errors.push(ctx.err(
                id_at,
                format!(
                    "rule '{id}' can match a post that contains none of its terms: add a term \
                     that is not excluded (a rule of only exclusions and field operators such \
                     as lang: or from: would match everything)"
                ),
            ));
            return LastRule::Broken;
        }
        if !registered {
            return LastRule::Broken;
        }
        let terms = parser.terms.terms;
        self.push_rule(
            RuleId(id.to_string()),
            brand,
            query,
            terms,
            ctx.loc(start),
            options.tags,
        )
    }

    /// The `key=value` options between a rule id and its `:`; returns them and the offset of
    /// the `:`, or `None` (after recording it) when there is no `:`.
    fn rule_options(
        &mut self,
        ctx: LineCtx<'_>,
        id: &str,
        from: usize,
    ) -> Option<(RuleOptions, usize)> {
        let line = ctx.line;
        let mut options = RuleOptions::default();
        let mut i = from;
        let mut ok = true;
        loop {
            i += leading_space(&line[i..]);
            if line[i..].starts_with(':') {
                options.ok = ok;
                return Some((options, i));
            }
            let len = line[i..]
                .find(|c: char| c.is_whitespace() || c == ':')
                .unwrap_or(line.len() - i);
            let word = &line[i..i + len];
            let Some((key, value)) = word.split_once('=').filter(|_| !word.is_empty()) else {
                self.errors
                    .push(ctx.err(i, format!("expected ':' after the rule id '{id}'")));
                return None;
            };
            match key {
                "tags" => {
                    for tag in value.split(',') {
                        if check_id(tag).is_err() {
                            self.errors.push(ctx.err(
                                i,
                                format!(
                                    "invalid tag '{tag}': tags are lowercase letters, digits, \
                                     '_' and '-', separated by ','"
                                ),
                            ));
                            ok = false;
                        } else if !options.tags.iter().any(|t| t == tag) {
                            options.tags.push(tag.to_string());
                        }
                    }
                    if options.tags.len() > MAX_TAGS {
                        self.errors
                            .push(ctx.err(i, format!("more than {MAX_TAGS} tags on one rule")));
                        ok = false;
                    }
                }
                "accents" => match value {
                    "ignore" => options.accents = true,
                    "keep" => options.accents = false,
                    _ => {
                        self.errors.push(ctx.err(
                            i,
                            format!("expected accents=ignore or accents=keep, found '{word}'"),
                        ));
                        ok = false;
                    }
                },
                _ => {
                    self.errors.push(ctx.err(
                        i,
                        format!(
                            "unknown rule option '{key}'; the options are tags=a,b and \
                             accents=ignore"
                        ),
                    ));
                    ok = false;
                }
            }
            i += len;
        }
    }

    /// `expect hit "text" [lang:xx] [from:handle] …` under a rule.
    fn expect_line(&mut self, ctx: LineCtx<'_>, start: usize, after: usize, last: LastRule) {
        let line = ctx.line;
        let at = after + leading_space(&line[after..]);
        let len = line[at..]
            .find(char::is_whitespace)
            .unwrap_or(line.len() - at);
        let expect = match &line[at..at + len] {
            "hit" => Expect::Hit,
            "miss" => Expect::Miss,
            other => {
                self.errors.push(ctx.err(
                    at,
                    format!("expected 'hit' or 'miss' after 'expect', found '{other}'"),
                ));
                return;
            }
        };
        let Some(example) = self.example(ctx, start, at + len, expect) else {
            return;
        };
        match last {
            LastRule::At(i) => self.rules[i].examples.push(example),
            LastRule::Broken => {}
            LastRule::None => self.errors.push(ctx.err(
                start,
                "expect belongs under a rule: write it after the rule line it tests",
            )),
        }
    }

    /// The quoted text and attributes of an `expect` line.
    fn example(
        &mut self,
        ctx: LineCtx<'_>,
        start: usize,
        from: usize,
        expect: Expect,
    ) -> Option<Example> {
        let line = ctx.line;
        let text_at = from + leading_space(&line[from..]);
        let Some((text, end)) = example_text(line, text_at) else {
            self.errors.push(ctx.err(
                text_at,
                "expected the post's text in double quotes (\\\" for a quote, \\n for a line \
                 break)",
            ));
            return None;
        };
        if text.len() > MAX_EXAMPLE_BYTES {
            self.errors.push(ctx.err(
                text_at,
                format!("example text is over {MAX_EXAMPLE_BYTES} bytes"),
            ));
            return None;
        }
        let mut example = Example {
            expect,
            text,
            lang: None,
            from: None,
            followers: None,
            flags: PostFlags::default(),
            links: Vec::new(),
            location: ctx.loc(start),
        };
        let mut ok = true;
        let words = self.words(ctx, end)?;
        for w in &words {
            let (key, value) = w.text.split_once(':').unwrap_or((w.text, ""));
            let set = match (key, value) {
                ("lang", v) if !v.is_empty() && !w.quoted => {
                    example.lang = Some(v.to_string());
                    true
                }
                ("from", v) if !v.is_empty() && !w.quoted => {
                    example.from = Some(v.trim_start_matches('@').to_string());
                    true
                }
                ("followers", v) => count(v).map(|n| example.followers = Some(n)).is_some(),
                ("link", v) if v.starts_with("http://") || v.starts_with("https://") => {
                    example.links.push(v.to_string());
                    example.flags.link = true;
                    true
                }
                ("is" | "has", v) => flag(&mut example.flags, key, v)
                    .map(|f| *f = true)
                    .is_some(),
                _ => false,
            };
            if !set {
                self.errors.push(ctx.err(
                    w.at,
                    format!(
                        "unexpected '{}' in an example; after the text come lang:xx, \
                         from:handle, followers:N, is:reply|repost|quote, has:link|media and \
                         link:URL",
                        shorten(w.text, 40)
                    ),
                ));
                ok = false;
            }
        }
        ok.then_some(example)
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
        tags: Vec<String>,
    ) -> LastRule {
        let mut anchors = vec![false; terms.len()];
        mark_anchors(&query, &mut anchors);
        self.rules.push(Rule {
            id,
            brand,
            query,
            terms,
            anchors,
            location,
            tags,
            examples: Vec::new(),
        });
        LastRule::At(self.rules.len() - 1)
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

/// The flag that `is:reply` … `has:media` in an example sets.
fn flag<'f>(flags: &'f mut PostFlags, key: &str, value: &str) -> Option<&'f mut bool> {
    match (key, value) {
        ("is", "reply") => Some(&mut flags.reply),
        ("is", "repost") => Some(&mut flags.repost),
        ("is", "quote") => Some(&mut flags.quote),
        ("has", "link") => Some(&mut flags.link),
        ("has", "media") => Some(&mut flags.media),
        _ => None,
    }
}

/// Options written between a rule's id and its `:`.
#[derive(Debug, Default)]
struct RuleOptions {
    tags: Vec<String>,
    accents: bool,
    /// Every option was valid.
    ok: bool,
}

/// The text of an example: `"…"` at `at` with `\"`, `\\`, `\n` and `\t` escapes; returns it
/// and the offset after the closing quote.
fn example_text(line: &str, at: usize) -> Option<(String, usize)> {
    let body = line.get(at..)?.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, at + 1 + i + 1)),
            '\\' => match chars.next()?.1 {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                _ => return None,
            },
            c => out.push(c),
        }
    }
    None
}

/// Byte length of the leading whitespace of `s`.
fn leading_space(s: &str) -> usize {
    s.len() - s.trim_start().len()
}

/// Ids: `[a-z0-9][a-z0-9_-]*`.
pub(crate) fn check_id(id: &str) -> Result<(), ()> {
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

/// Up to this many terms a table finds duplicates by scanning (most rules have a handful of
/// terms, and hashing each would cost more); beyond it, through an index by needle.
const LINEAR_INTERN: usize = 16;

/// A rule's distinct terms, deduplicated by kind, needle, prefix and fold (and, for `raw:`
/// terms, letters as written).
#[derive(Debug, Default)]
pub(crate) struct TermTable {
    terms: Vec<Term>,
    /// Needle → indices of the terms with it; filled once the table outgrows a scan.
    index: HashMap<String, Vec<u32>>,
    /// The rule ignores accents (`accents=ignore`).
    accents: bool,
}

impl TermTable {
    /// How many distinct terms it holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.terms.len()
    }

    fn intern(&mut self, lit: &OwnedLit) -> Result<u32, String> {
        let literal = lit.text.strip_suffix('*').filter(|_| lit.prefix);
        let literal = literal.unwrap_or(&lit.text);
        let fold = match (lit.raw, self.accents) {
            (true, _) => Fold::Exact,
            (false, false) => Fold::Case,
            (false, true) => Fold::CaseAndAccents,
        };
        let mut needle = casefold(literal);
        if fold == Fold::CaseAndAccents {
            needle = fold_accents(&needle);
        }
        if needle.is_empty() {
            return Err(format!("term '{}' is empty once normalized", lit.text));
        }
        let same = |t: &Term| {
            t.kind == lit.kind
                && t.prefix == lit.prefix
                && t.fold == fold
                && t.needle == needle
                // An exact term is told apart by its letters as written, not only by its needle.
                && (fold != Fold::Exact || t.literal() == literal)
        };
        let found = if self.terms.len() <= LINEAR_INTERN {
            self.terms.iter().position(same)
        } else {
            self.index
                .get(&needle)
                .and_then(|ids| ids.iter().find(|&&i| same(&self.terms[i as usize])))
                .map(|&i| i as usize)
        };
        if let Some(i) = found {
            return Ok(i as u32);
        }
        let i = u32::try_from(self.terms.len()).map_err(|_| "too many terms".to_string())?;
        if self.terms.len() == LINEAR_INTERN {
            for (j, t) in self.terms.iter().enumerate() {
                self.index
                    .entry(t.needle.clone())
                    .or_default()
                    .push(j as u32);
            }
        }
        if self.terms.len() >= LINEAR_INTERN {
            self.index.entry(needle.clone()).or_default().push(i);
        }
        self.terms.push(Term {
            kind: lit.kind,
            text: lit.text.clone(),
            needle,
            prefix: lit.prefix,
            fold,
        });
        Ok(i)
    }
}

/// The distinct terms of a terms file, each checked, at most `max_terms` (more is an error).
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
        let parsed = match term.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(inner) => literal(TermKind::Phrase, inner, false),
            None => literal(term_kind_of(term), term, false),
        };
        let interned = parsed.and_then(|lit| table.intern(&OwnedLit::from(lit)));
        match interned {
            Err(message) => errors.push(RuleError::at(file, line_no, col_of(line, at), message)),
            Ok(_) if table.terms.len() > max_terms => {
                errors.push(RuleError::at(
                    file,
                    line_no,
                    col_of(line, at),
                    format!("more than {max_terms} terms in one terms file"),
                ));
                break;
            }
            Ok(_) => {}
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
        Query::Term(_) | Query::Near { .. } => true,
        Query::Field(_) | Query::Not(_) => false,
        Query::And(parts) => parts.iter().any(requires_anchor),
        Query::Or(parts) => !parts.is_empty() && parts.iter().all(requires_anchor),
    }
}

/// Marks the terms that occur outside every exclusion.
fn mark_anchors(q: &Query, anchors: &mut [bool]) {
    let mut mark = |i: u32| {
        if let Some(a) = anchors.get_mut(i as usize) {
            *a = true;
        }
    };
    match q {
        Query::Term(i) => mark(*i),
        Query::Near { left, right, .. } => left.iter().chain(right).for_each(|&i| mark(i)),
        Query::Field(_) | Query::Not(_) => {}
        Query::And(parts) | Query::Or(parts) => parts.iter().for_each(|p| mark_anchors(p, anchors)),
    }
}

/// Recursive-descent parser over one query's tokens; recursion is bounded by [`MAX_DEPTH`].
struct QueryParser<'t, 'a, 'l> {
    toks: &'t [Spanned<'a>],
    pos: usize,
    /// Byte offset reported for "end of query".
    end: usize,
    terms: TermTable,
    atoms: usize,
    lists: &'l HashMap<String, ListDef>,
}

type Parsed = Result<Query, LexError>;

impl QueryParser<'_, '_, '_> {
    fn parse(&mut self) -> Parsed {
        let q = self.parse_or(0, None)?;
        match self.toks.get(self.pos) {
            None => Ok(q),
            Some(t) => Err(LexError {
                at: t.at,
                message: match &t.tok {
                    Tok::RParen => "unexpected ')' without a matching '('".into(),
                    Tok::Near(_) => "NEAR/n joins exactly two operands: combine several \
                                     NEAR conditions with AND"
                        .into(),
                    other => format!("unexpected {}", describe(other)),
                },
            }),
        }
    }

    fn peek(&self) -> Option<&Tok<'_>> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn parse_or(&mut self, depth: usize, after: Option<&str>) -> Parsed {
        let first = self.parse_and(depth, after)?;
        if self.peek() != Some(&Tok::Or) {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            parts.push(self.parse_and(depth, Some("OR"))?);
        }
        Ok(join(flatten(parts, true), Query::Or))
    }

    fn parse_and(&mut self, depth: usize, after: Option<&str>) -> Parsed {
        let first = self.parse_unary(depth, after)?;
        if !matches!(
            self.peek(),
            Some(
                Tok::And
                    | Tok::Term(_)
                    | Tok::Field(_)
                    | Tok::List(_)
                    | Tok::LParen
                    | Tok::Not
                    | Tok::Invalid
            )
        ) {
            return Ok(first);
        }
        let mut parts = vec![first];
        loop {
            match self.peek() {
                Some(Tok::And) => {
                    self.pos += 1;
                    parts.push(self.parse_unary(depth, Some("AND"))?);
                }
                Some(
                    Tok::Term(_)
                    | Tok::Field(_)
                    | Tok::List(_)
                    | Tok::LParen
                    | Tok::Not
                    | Tok::Invalid,
                ) => {
                    parts.push(self.parse_unary(depth, None)?);
                }
                _ => break,
            }
        }
        Ok(join(flatten(parts, false), Query::And))
    }

    fn parse_unary(&mut self, depth: usize, after: Option<&str>) -> Parsed {
        if self.peek() == Some(&Tok::Not) {
            self.pos += 1;
            let inner = self.parse_near(depth, Some("'-'"))?;
            return Ok(Query::Not(Box::new(inner)));
        }
        self.parse_near(depth, after)
    }

    fn parse_near(&mut self, depth: usize, after: Option<&str>) -> Parsed {
        let left_at = self.toks.get(self.pos).map_or(self.end, |t| t.at);
        let left = self.parse_atom(depth, after)?;
        let Some(&Tok::Near(within)) = self.peek() else {
            return Ok(left);
        };
        self.pos += 1;
        let right_at = self.toks.get(self.pos).map_or(self.end, |t| t.at);
        let right = self.parse_atom(depth, Some("NEAR"))?;
        let operand = |q: Query, at: usize| -> Result<Vec<u32>, LexError> {
            match q {
                Query::Term(i) => Ok(vec![i]),
                Query::Or(parts) if parts.iter().all(|p| matches!(p, Query::Term(_))) => Ok(parts
                    .into_iter()
                    .filter_map(|p| match p {
                        Query::Term(i) => Some(i),
                        _ => None,
                    })
                    .collect()),
                // A placeholder for a token already reported.
                Query::And(parts) if parts.is_empty() => Ok(Vec::new()),
                _ => Err(LexError {
                    at,
                    message: format!(
                        "NEAR/{within} joins two terms, or two ( … OR … ) groups of terms; \
                         found something else here"
                    ),
                }),
            }
        };
        let left = operand(left, left_at)?;
        let right = operand(right, right_at)?;
        if let Some(Tok::Near(_)) = self.peek() {
            return Err(LexError {
                at: self.toks[self.pos].at,
                message: "NEAR/n joins exactly two operands: combine several NEAR conditions \
                          with AND"
                    .into(),
            });
        }
        Ok(Query::Near {
            left,
            right,
            within,
        })
    }

    fn parse_atom(&mut self, depth: usize, after: Option<&str>) -> Parsed {
        let Some(t) = self.toks.get(self.pos).cloned() else {
            return Err(expected(after, self.end, "end of query"));
        };
        match t.tok {
            Tok::Term(lit) => {
                self.pos += 1;
                self.count_atom(t.at)?;
                let i = self
                    .terms
                    .intern(&OwnedLit::from(lit))
                    .map_err(|message| LexError { at: t.at, message })?;
                Ok(Query::Term(i))
            }
            Tok::Field(field) => {
                self.pos += 1;
                self.count_atom(t.at)?;
                Ok(Query::Field(field))
            }
            Tok::List(name) => {
                self.pos += 1;
                self.count_atom(t.at)?;
                let Some(list) = self.lists.get(name) else {
                    let mut known: Vec<&str> = self.lists.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    let hint = if known.is_empty() {
                        "no lists are defined (list ID: a OR b)".to_string()
                    } else {
                        format!("the lists are {}", known.join(", "))
                    };
                    return Err(LexError {
                        at: t.at,
                        message: format!("unknown list '{name}'; {hint}"),
                    });
                };
                let mut parts = Vec::with_capacity(list.terms.len());
                for lit in &list.terms {
                    let i = self
                        .terms
                        .intern(lit)
                        .map_err(|message| LexError { at: t.at, message })?;
                    parts.push(Query::Term(i));
                }
                parts.sort_unstable_by_key(|p| match p {
                    Query::Term(i) => *i,
                    _ => u32::MAX,
                });
                parts.dedup();
                Ok(join(parts, Query::Or))
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
                if self.peek() == Some(&Tok::RParen) {
                    self.pos += 1;
                    Ok(inner)
                } else {
                    Err(LexError {
                        at: t.at,
                        message: "unclosed '(': expected ')' before the end of the query".into(),
                    })
                }
            }
            other => Err(expected(after, t.at, &describe(&other))),
        }
    }

    fn count_atom(&mut self, at: usize) -> Result<(), LexError> {
        self.atoms += 1;
        if self.atoms > MAX_QUERY_ATOMS {
            return Err(LexError {
                at,
                message: format!(
                    "query has more than {MAX_QUERY_ATOMS} terms; put long term lists in a terms \
                     file or a list"
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

fn describe(tok: &Tok<'_>) -> String {
    match tok {
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Or => "OR".into(),
        Tok::And => "AND".into(),
        Tok::Near(n) => format!("NEAR/{n}"),
        Tok::Not => "'-'".into(),
        Tok::Term(lit) => format!("'{}'", lit.text),
        Tok::Field(field) => format!("the field operator '{}'", field_name(field)),
        Tok::List(name) => format!("'list:{name}'"),
        Tok::Invalid => "an invalid token".into(),
    }
}

/// `lang:`, `from:`, … for messages.
fn field_name(field: &Field) -> &'static str {
    match field {
        Field::Lang(_) => "lang:",
        Field::From(_) => "from:",
        Field::Is(PostKind::Reply | PostKind::Repost | PostKind::Quote) => "is:",
        Field::Has(_) => "has:",
        Field::Url(_) => "url:",
        Field::Domain(_) => "domain:",
        Field::Followers(..) => "followers:",
    }
}
