//! Cue lists: the words and phrases, by language, that judgement reads beyond the sentiment
//! lexicon — service failures, crisis kinds, purchase intent, questions, praise, spam, sarcasm.
//!
//! # Why lists and not a model
//! A brand team must be able to read why a post was called a complaint and fix it in a pull
//! request, and the stage must run on every matched post of a firehose in microseconds. A cue
//! list does both: every judgement names the cues that built it, and all cues of all lists
//! are one Aho-Corasick automaton searched once per post.
//!
//! # Format (`rules/cues/*.toml`)
//! Each table is a group: a `signal` (what a cue of the group is evidence of), an optional
//! crisis or spam `kind`, an optional `valence` (added to the post's sentiment, -4 to 4), and
//! one array of cues per language (`en = [...]`, `es = [...]`). A cue is a word or phrase,
//! matched in the casefolded, whitespace-collapsed text on word boundaries; a final `*`
//! drops the right boundary (`cancel*` finds *cancelled*). Cues in scripts written without
//! spaces (Japanese, Chinese, Thai) match inside running text. Every mistake is reported as
//! `file:line:col`.
//!
//! # Negation
//! A complaint, crisis, praise, churn or lead cue preceded within three words (inside the same
//! clause) by a negation (`not`, `never`, `no`, `n't`, `sin`, `não`, `nicht`, `kein`, `pas`,
//! …) does not count: "not delayed", "no injuries", "nicht kaputt". Japanese negation
//! follows the verb and is not checked.

use std::ops::Range;
use std::path::Path;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::is_unspaced_script;
use crate::diagnostic::{line_col, Diagnostic};
use crate::normalize::casefold;

/// Longest cue, in characters.
pub const MAX_CUE_CHARS: usize = 100;
/// Most cues across all files: a cue list is reviewed by people, so anything larger is a
/// mistake (a generated file pasted in), and it would slow every matched post.
pub const MAX_CUES: usize = 50_000;
/// Largest cue file, in bytes.
pub const MAX_CUE_FILE_BYTES: usize = 4 << 20;

/// What a cue is evidence of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Something went wrong for a customer.
    Complaint,
    /// Safety, outage, security, legal, boycott, recall.
    Crisis,
    /// Someone leaving or about to.
    Churn,
    /// "again", "still": worsens a complaint, says nothing alone.
    Repeat,
    /// Purchase intent or shopping for an alternative.
    Lead,
    /// A question without a question mark.
    Question,
    /// Thanks and compliments.
    Praise,
    /// Spam, giveaways, job ads.
    Spam,
    /// Sarcasm marker: positive words mean their opposite.
    Sarcasm,
    /// Positive opener that is sarcastic next to a complaint.
    SarcasmFrame,
    /// Insults and provocation.
    Troll,
    /// Inviting the brand into a fight.
    Bait,
    /// A word the sentiment lexicon scores that names a thing in brand talk ("support").
    Neutral,
}

impl Signal {
    const ALL: [(&'static str, Signal); 13] = [
        ("complaint", Signal::Complaint),
        ("crisis", Signal::Crisis),
        ("churn", Signal::Churn),
        ("repeat", Signal::Repeat),
        ("lead", Signal::Lead),
        ("question", Signal::Question),
        ("praise", Signal::Praise),
        ("spam", Signal::Spam),
        ("sarcasm", Signal::Sarcasm),
        ("sarcasm_frame", Signal::SarcasmFrame),
        ("troll", Signal::Troll),
        ("bait", Signal::Bait),
        ("neutral", Signal::Neutral),
    ];

    fn from_name(name: &str) -> Option<Signal> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    }

    /// The name used in cue files.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// Bit of this signal in a [`Signals`] set.
    const fn bit(self) -> u16 {
        1 << self as u16
    }

    /// Whether a negation before the cue cancels it.
    fn negatable(self) -> bool {
        matches!(
            self,
            Signal::Complaint
                | Signal::Crisis
                | Signal::Churn
                | Signal::Praise
                | Signal::Lead
                | Signal::Spam
        )
    }
}

/// A set of signals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals(u16);

impl Signals {
    /// Whether `s` is in the set.
    pub fn has(self, s: Signal) -> bool {
        self.0 & s.bit() != 0
    }

    pub(super) fn add(&mut self, s: Signal) {
        self.0 |= s.bit();
    }
}

/// One group of a cue file.
#[derive(Debug, Clone)]
pub struct Group {
    /// Table name (`service_failure`).
    pub name: String,
    /// What its cues are evidence of.
    pub signal: Signal,
    /// Crisis or spam kind (`legal`, `job`), when given.
    pub kind: Option<String>,
    /// Added to the sentiment sum per cue found.
    pub valence: f64,
}

/// A pattern of the automaton: one distinct casefolded cue and the groups listing it.
#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    groups: Vec<u16>,
    /// Needs word boundaries on the left (and on the right unless `prefix`).
    bounded: bool,
    /// Written with a final `*`.
    prefix: bool,
}

/// Every cue of every list, compiled into one automaton. Built once, shared by workers.
#[derive(Clone)]
pub struct Cues {
    groups: Vec<Group>,
    /// `neutral` words: looked up per sentiment token, not searched in the text.
    neutral: std::collections::HashSet<String>,
    patterns: Vec<Pattern>,
    automaton: AhoCorasick,
}

impl std::fmt::Debug for Cues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cues")
            .field("groups", &self.groups.len())
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

/// A cue found in a post.
#[derive(Debug, Clone, PartialEq)]
pub struct CueHit {
    /// Index of the group in [`Cues::groups`].
    pub group: u16,
    /// Which distinct cue it is (see [`Cues::text`]).
    pub pattern: u32,
    /// Byte range in the casefolded text.
    pub span: Range<usize>,
    /// Preceded by a negation in its clause.
    pub negated: bool,
}

impl Cues {
    /// Parses cue files given as `(name, text)` pairs, reporting every mistake of every file.
    pub fn parse(files: &[(String, String)]) -> Result<Cues, Vec<Diagnostic>> {
        let mut builder = Builder::default();
        for (name, text) in files {
            builder.file(name, text);
        }
        builder.finish()
    }

    /// Reads and parses cue files.
    pub fn load(paths: &[std::path::PathBuf]) -> Result<Cues, Vec<Diagnostic>> {
        let mut files = Vec::new();
        let mut errors = Vec::new();
        for path in paths {
            match read_limited(path) {
                Ok(text) => files.push((path.display().to_string(), text)),
                Err(message) => errors.push(Diagnostic {
                    file: path.display().to_string(),
                    line: 0,
                    col: 0,
                    message,
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Cues::parse(&files)
    }

    /// The groups, indexed by [`CueHit::group`].
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// Whether `token` (lowercase) is a `neutral` word, whose lexicon valence is left out.
    pub fn is_neutral(&self, token: &str) -> bool {
        !self.neutral.is_empty() && self.neutral.contains(token)
    }

    /// The cue of a hit, casefolded as it was matched.
    pub fn text(&self, hit: &CueHit) -> &str {
        &self.patterns[hit.pattern as usize].text
    }

    /// Number of distinct cues.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Whether there are no cues.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Finds every cue in `text` (casefolded, as [`crate::normalize`] makes it),
    /// appending to `out` in text order, each group's cue once per place.
    pub fn find(&self, text: &str, out: &mut Vec<CueHit>) {
        for m in self.automaton.find_overlapping_iter(text) {
            let p = &self.patterns[m.pattern().as_usize()];
            let (start, end) = (m.start(), m.end());
            if p.bounded && !bounded(text, start, end, p.prefix) {
                continue;
            }
            let negated = negated_before(text, start) || (!p.bounded && negated_after(text, end));
            for &group in &p.groups {
                out.push(CueHit {
                    group,
                    pattern: m.pattern().as_u32(),
                    span: start..end,
                    negated: negated && self.groups[group as usize].signal.negatable(),
                });
            }
        }
    }

    /// The signals of the hits that count (not negated).
    pub fn signals(&self, hits: &[CueHit]) -> Signals {
        let mut s = Signals::default();
        for h in hits.iter().filter(|h| !h.negated) {
            s.add(self.groups[h.group as usize].signal);
        }
        s
    }
}

fn read_limited(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read the cue file: {e}"))?;
    if meta.len() > MAX_CUE_FILE_BYTES as u64 {
        return Err(format!(
            "the cue file is {} bytes, over the limit of {MAX_CUE_FILE_BYTES}",
            meta.len()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read the cue file: {e}"))
}

/// Whether `text[start..end]` starts at a word start and (unless `prefix`) ends at a word
/// end. `#` and `@` before a cue do not join it to a word (`#boycott` holds `boycott`).
fn bounded(text: &str, start: usize, end: usize, prefix: bool) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let first = text[start..].chars().next();
    let last = text[..end].chars().next_back();
    let before_ok = first.is_none_or(|c| !word(c))
        || text[..start].chars().next_back().is_none_or(|c| !word(c));
    let after_ok = prefix
        || last.is_none_or(|c| !word(c))
        || text[end..].chars().next().is_none_or(|c| !word(c));
    before_ok && after_ok
}

/// Negations in the languages the lists cover, as whole words.
const NEGATIONS: &[&str] = &[
    "not", "no", "never", "without", "nor", "neither", "nothing", "sin", "nunca", "jamás", "ni",
    "não", "nao", "sem", "nem", "jamais", "nicht", "kein", "keine", "keinen", "keiner", "nie",
    "niemals", "ohne", "pas", "sans", "aucun", "aucune", "plus",
];

/// Whether one of the (up to) three words before `start`, in the same clause, is a
/// negation.
fn negated_before(text: &str, start: usize) -> bool {
    let before = &text[..start];
    // The clause: back to the last punctuation that ends one.
    let clause_start = before
        .char_indices()
        .rev()
        .find(|(_, c)| ".,!?;:。、！？\n".contains(*c))
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(0);
    before[clause_start..]
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .filter(|w| !w.is_empty())
        .rev()
        .take(3)
        .any(|w| NEGATIONS.contains(&w) || w.ends_with("n't") || w.ends_with("n’t"))
}

/// Japanese "never happened" endings: `一度も障害に当たったことがない` denies the outage.
/// Only these are checked: a plain `ない` after a cue is as often part of the complaint
/// (`障害で使えない`, "unusable because of the outage").
const AFTER_NEGATIONS: &[&str] = &[
    "ことがない",
    "ことはない",
    "ことない",
    "ことがありません",
    "ことはありません",
];

/// Whether the clause after `end` denies the cue before it (see [`AFTER_NEGATIONS`]).
fn negated_after(text: &str, end: usize) -> bool {
    let rest = &text[end..];
    let clause = rest
        .find(['。', '！', '？', '!', '?', '\n'])
        .map_or(rest, |i| &rest[..i]);
    AFTER_NEGATIONS.iter().any(|n| clause.contains(n))
}

#[derive(Default)]
struct Builder {
    groups: Vec<Group>,
    patterns: Vec<Pattern>,
    index: std::collections::HashMap<String, usize>,
    neutral: std::collections::HashSet<String>,
    errors: Vec<Diagnostic>,
}

const GROUP_KEYS: &[&str] = &["signal", "kind", "valence"];

impl Builder {
    fn err(&mut self, file: &str, text: &str, span: Range<usize>, message: String) {
        let (line, col) = line_col(text, span.start);
        self.errors.push(Diagnostic {
            file: file.to_string(),
            line,
            col,
            message,
        });
    }

    fn file(&mut self, file: &str, text: &str) {
        let (root, syntax) = DeTable::parse_recoverable(text);
        for e in &syntax {
            let span = e.span().unwrap_or(0..0);
            self.err(file, text, span, e.message().trim().to_string());
        }
        if !syntax.is_empty() {
            return;
        }
        for (key, value) in root.get_ref().iter() {
            let name = key.get_ref().to_string();
            match value.get_ref().as_table() {
                Some(table) => self.group(file, text, &name, key.span(), table),
                None => self.err(
                    file,
                    text,
                    key.span(),
                    format!("`{name}` must be a group table (`[{name}]`)"),
                ),
            }
        }
    }

    fn group(
        &mut self,
        file: &str,
        text: &str,
        name: &str,
        span: Range<usize>,
        table: &DeTable<'_>,
    ) {
        let get = |k: &str| {
            table
                .iter()
                .find(|(key, _)| key.get_ref() == k)
                .map(|(_, v)| v)
        };
        let signal = match get("signal") {
            None => {
                self.err(
                    file,
                    text,
                    span.clone(),
                    format!("group `{name}` needs a `signal`"),
                );
                None
            }
            Some(v) => match v.get_ref().as_str().map(|s| (s, Signal::from_name(s))) {
                Some((_, Some(s))) => Some(s),
                other => {
                    let names: Vec<&str> = Signal::ALL.iter().map(|(n, _)| *n).collect();
                    let got = other
                        .map(|(s, _)| format!("`{s}`"))
                        .unwrap_or("a non-string".into());
                    self.err(
                        file,
                        text,
                        v.span(),
                        format!(
                            "group `{name}`: signal is {got}, expected one of: {}",
                            names.join(", ")
                        ),
                    );
                    None
                }
            },
        };
        let kind = get("kind").and_then(|v| match v.get_ref().as_str() {
            Some(s) if is_id(s) => Some(s.to_string()),
            _ => {
                self.err(
                    file,
                    text,
                    v.span(),
                    format!("group `{name}`: kind must be a lowercase id such as `legal`"),
                );
                None
            }
        });
        let valence = match get("valence") {
            None => 0.0,
            Some(v) => match number(v.get_ref()) {
                Some(x) if (-4.0..=4.0).contains(&x) => x,
                _ => {
                    self.err(
                        file,
                        text,
                        v.span(),
                        format!("group `{name}`: valence must be a number from -4 to 4"),
                    );
                    0.0
                }
            },
        };
        let index = self.groups.len() as u16;
        if let Some(signal) = signal {
            self.groups.push(Group {
                name: name.to_string(),
                signal,
                kind,
                valence,
            });
        }
        for (key, value) in table.iter() {
            let lang = key.get_ref();
            if GROUP_KEYS.contains(&lang.as_ref()) {
                continue;
            }
            if !(2..=3).contains(&lang.len()) || !lang.bytes().all(|b| b.is_ascii_lowercase()) {
                self.err(
                    file,
                    text,
                    key.span(),
                    format!("group `{name}`: unknown key `{lang}`, expected signal, kind, valence or a language code such as `en`"),
                );
                continue;
            }
            let Some(items) = value.get_ref().as_array() else {
                self.err(
                    file,
                    text,
                    value.span(),
                    format!("group `{name}`: `{lang}` must be an array of cues"),
                );
                continue;
            };
            for item in items.iter() {
                self.cue(file, text, name, item, signal.map(|_| index));
            }
        }
    }

    fn cue(
        &mut self,
        file: &str,
        text: &str,
        group_name: &str,
        item: &Spanned<DeValue<'_>>,
        group: Option<u16>,
    ) {
        let Some(raw) = item.get_ref().as_str() else {
            self.err(
                file,
                text,
                item.span(),
                format!("group `{group_name}`: a cue must be a string"),
            );
            return;
        };
        let (body, prefix) = match raw.trim().strip_suffix('*') {
            Some(b) => (b, true),
            None => (raw.trim(), false),
        };
        let problem = if body.is_empty() {
            Some("an empty cue".to_string())
        } else if body.chars().count() > MAX_CUE_CHARS {
            Some(format!("a cue is at most {MAX_CUE_CHARS} characters"))
        } else if body.contains('*') {
            Some("`*` may only end a cue".to_string())
        } else {
            None
        };
        if let Some(p) = problem {
            self.err(
                file,
                text,
                item.span(),
                format!("group `{group_name}`: {p}"),
            );
            return;
        }
        let Some(group) = group else { return };
        let folded = casefold(body);
        if self.groups[group as usize].signal == Signal::Neutral {
            self.neutral.insert(folded);
            return;
        }
        let i = match self.index.get(&folded) {
            Some(&i) => i,
            None => {
                if self.patterns.len() == MAX_CUES {
                    self.err(
                        file,
                        text,
                        item.span(),
                        format!("more than {MAX_CUES} distinct cues"),
                    );
                    return;
                }
                self.index.insert(folded.clone(), self.patterns.len());
                self.patterns.push(Pattern {
                    bounded: !folded.chars().any(is_unspaced_script),
                    text: folded,
                    groups: Vec::new(),
                    prefix,
                });
                self.patterns.len() - 1
            }
        };
        let p = &mut self.patterns[i];
        p.prefix &= prefix;
        if !p.groups.contains(&group) {
            p.groups.push(group);
        }
    }

    fn finish(self) -> Result<Cues, Vec<Diagnostic>> {
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        let automaton = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .build(self.patterns.iter().map(|p| &p.text))
            .map_err(|e| {
                vec![Diagnostic {
                    file: "cues".into(),
                    line: 0,
                    col: 0,
                    message: e.to_string(),
                }]
            })?;
        Ok(Cues {
            neutral: self.neutral,
            groups: self.groups,
            patterns: self.patterns,
            automaton,
        })
    }
}

fn number(v: &DeValue<'_>) -> Option<f64> {
    match v {
        DeValue::Float(f) => f.to_string().parse().ok(),
        DeValue::Integer(i) => i.to_string().parse().ok(),
        _ => None,
    }
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cues(text: &str) -> Result<Cues, Vec<Diagnostic>> {
        Cues::parse(&[("c.toml".to_string(), text.to_string())])
    }

    fn found(c: &Cues, text: &str) -> Vec<(String, String, bool)> {
        let mut out = Vec::new();
        c.find(&casefold(text), &mut out);
        out.iter()
            .map(|h| {
                (
                    c.groups()[h.group as usize].name.clone(),
                    c.text(h).to_string(),
                    h.negated,
                )
            })
            .collect()
    }

    #[test]
    fn cues_match_whole_words_prefixes_and_unspaced_scripts() {
        let c = cues(
            "[fail]\nsignal = \"complaint\"\nvalence = -1.5\nen = [\"delayed\", \"cancel*\", \"still waiting\"]\nja = [\"遅延\"]\n",
        )
        .unwrap();
        assert_eq!(c.groups()[0].valence, -1.5);
        let yes = |t: &str, cue: &str| {
            assert!(found(&c, t).iter().any(|(_, f, _)| f == cue), "{t} → {cue}");
        };
        yes("Flight DELAYED again", "delayed");
        yes("they cancelled it", "cancel");
        yes("still   waiting", "still waiting");
        yes("電車が遅延しています", "遅延");
        assert!(found(&c, "一度も遅延したことがない。")[0].2, "denied");
        assert!(!found(&c, "遅延。ことがない")[0].2, "another sentence");
        yes("#delayed", "delayed");
        assert!(found(&c, "undelayed").is_empty());
        assert!(found(&c, "delayedx").is_empty());
        assert!(found(&c, "precancel").is_empty());
    }

    #[test]
    fn negation_in_the_same_clause_cancels_a_cue() {
        let c = cues("[f]\nsignal = \"complaint\"\nen = [\"delayed\", \"no answer\"]\n[s]\nsignal = \"troll\"\nen = [\"ratio\"]\n").unwrap();
        let neg = |t: &str| found(&c, t).iter().map(|h| h.2).collect::<Vec<_>>();
        assert_eq!(neg("my order was not delayed"), [true]);
        assert_eq!(neg("it wasn't even delayed"), [true]);
        assert_eq!(neg("no refund, no answer"), [false]);
        assert_eq!(neg("not sure why, delayed"), [false]);
        assert_eq!(neg("never mind the rest of it delayed"), [false]);
        assert_eq!(neg("not a ratio"), [false], "tone is never negated");
        let signals = c.signals(&{
            let mut v = Vec::new();
            c.find("not delayed", &mut v);
            v
        });
        assert!(!signals.has(Signal::Complaint));
    }

    #[test]
    fn every_mistake_is_reported_with_its_place() {
        let text = "[a]\nsignal = \"complaint\"\nen = [\"\", \"x*y\"]\n[b]\nsignal = \"nope\"\nvalence = 9\nEN = [\"x\"]\n[c]\nen = [\"x\"]\n";
        let errs: Vec<String> = cues(text)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            errs,
            [
                "c.toml:3:7: group `a`: an empty cue",
                "c.toml:3:11: group `a`: `*` may only end a cue",
                "c.toml:5:10: group `b`: signal is `nope`, expected one of: complaint, crisis, churn, repeat, lead, question, praise, spam, sarcasm, sarcasm_frame, troll, bait, neutral",
                "c.toml:6:11: group `b`: valence must be a number from -4 to 4",
                "c.toml:7:1: group `b`: unknown key `EN`, expected signal, kind, valence or a language code such as `en`",
                "c.toml:8:2: group `c` needs a `signal`",
            ]
        );
        let syntax = cues("[a\n").unwrap_err();
        assert_eq!((syntax[0].line, syntax[0].file.as_str()), (1, "c.toml"));
    }

    #[test]
    fn a_cue_listed_in_two_groups_reports_both() {
        let c = cues("[a]\nsignal = \"praise\"\nen = [\"bravo\"]\n[b]\nsignal = \"sarcasm\"\nen = [\"Bravo\"]\n").unwrap();
        assert_eq!(c.len(), 1);
        let s = c.signals(&{
            let mut v = Vec::new();
            c.find("bravo", &mut v);
            v
        });
        assert!(s.has(Signal::Praise) && s.has(Signal::Sarcasm));
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_searched_without_panicking(text in "\\PC{0,60}") {
            let c = shipped();
            let mut out = Vec::new();
            c.find(&casefold(&text), &mut out);
        }
    }

    fn shipped() -> Cues {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/cues");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        Cues::load(&paths).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn the_shipped_lists_load() {
        let c = shipped();
        assert!(c.len() > 500, "{}", c.len());
    }
}
