//! Sentiment: post text → VADER polarity (`neg`, `neu`, `pos`, `compound`) and a label.
//!
//! This is a port of **VADER** (Hutto & Gilbert 2014, "VADER: A Parsimonious Rule-based Model
//! for Sentiment Analysis of Social Media Text", ICWSM-14), following the reference
//! implementation, PyPI `vaderSentiment` 3.3.2 (MIT), rule for rule and in the same order of
//! floating-point operations, so that it gives the same numbers. VADER was chosen because it
//! is published, validated on social-media text, needs no model weights, and explains itself:
//! every point of a score comes from a lexicon word and a named rule.
//!
//! # What it does, in the reference's order
//! 1. Each emoji (one code point at a time) is replaced by its description from the emoji
//!    lexicon (`😍` → `smiling face with heart-eyes`), separated by a space from what precedes.
//! 2. The text is split on (Python's) whitespace; leading and trailing ASCII punctuation is
//!    stripped from each token unless that leaves two characters or fewer (so `:)` and `<3`
//!    survive as emoticons, and so does `ok!`).
//! 3. Each token found in the lexicon gets its valence, then: `no` before another lexicon word
//!    is a negation, not a word; ALL CAPS adds emphasis when the text mixes case; up to three
//!    preceding boosters/dampeners ("very", "kind of") add or subtract, less with distance;
//!    negations up to three tokens back flip and shrink it ("never so", "without doubt" are
//!    exceptions); special idioms override it ("the shit", "yeah right"); "least" negates.
//! 4. The "but" rule halves everything before the first `but` and adds half to everything
//!    after it.
//! 5. Exclamation marks (up to 4) and question marks (2 or more) amplify the sum, which is
//!    normalised to `compound` in [-1, 1] with alpha = 15; `neg`/`neu`/`pos` are the shares of
//!    the text's tokens. All four are rounded as the reference rounds them (3 and 4 decimals).
//!
//! Labels use VADER's standard thresholds: `compound ≥ 0.05` positive, `≤ -0.05` negative.
//!
//! # Fidelity
//! The reference has quirks (the "but" rule finds each value by equality, not position; `no.`
//! keeps its full stop and so is not the word `no`; a lexicon key with capitals such as `:D`
//! is unreachable because tokens are lowercased; only single-code-point emoji are replaced, so
//! `👍🏽` reads as "thumbs up medium skin tone"). They are kept on purpose: the scores must mean what VADER's mean, and
//! `core/tests/data/vader/` checks this port against the reference on hundreds of posts.
//! Where Rust and Python differ on Unicode (Python's `split()` also splits on U+001C..U+001F;
//! its `isupper()` rejects titlecase letters), the Python behaviour is reproduced.
//!
//! # Shape
//! [`SentimentLexicon`] is built once (from text, so a deployment can override the files in
//! `rules/lexicons/`, or the embedded default) and shared across workers: it is `Send + Sync`
//! and scoring takes `&self`. Scoring allocates nothing in the steady state when the caller
//! passes a reused [`SentimentScratch`] to [`SentimentLexicon::polarity_with`]: the
//! emoji-substituted text, one lowercase copy of its tokens, the token table and the valences
//! live in the scratch. Only matched posts are scored, so the code favours being checkably the
//! reference over speed (the one allocation left is a token holding a Greek capital sigma,
//! whose context-dependent lowercase goes through `str::to_lowercase`).
//!
//! Scoring never fails and never panics: any string is valid input, so this stage has no
//! skip reason and counts nothing itself; the caller counts labels if it wants them. Loading
//! a lexicon fails with a [`LexiconError`] naming the lexicon, line and column.

#[cfg(test)]
mod golden;
mod rules;
#[cfg(test)]
mod tests;

use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;

use serde::Serialize;

use rules::{
    ALPHA, C_INCR, EXCLAMATION_INCR, MAX_EXCLAMATIONS, N_SCALAR, QUESTION_INCR, QUESTION_MAX,
};

/// The embedded default word lexicon (`rules/lexicons/vader_lexicon.txt`).
const EMBEDDED_LEXICON: &str = include_str!("../../../../rules/lexicons/vader_lexicon.txt");
/// The embedded default emoji lexicon (`rules/lexicons/emoji_utf8_lexicon.txt`).
const EMBEDDED_EMOJI: &str = include_str!("../../../../rules/lexicons/emoji_utf8_lexicon.txt");

/// Which of the two lexicon texts an error is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LexiconFile {
    /// The word lexicon (`vader_lexicon.txt`).
    Words,
    /// The emoji lexicon (`emoji_utf8_lexicon.txt`).
    Emoji,
}

impl LexiconFile {
    /// The file name of the default copy in `rules/lexicons/`.
    pub fn default_name(self) -> &'static str {
        match self {
            LexiconFile::Words => "vader_lexicon.txt",
            LexiconFile::Emoji => "emoji_utf8_lexicon.txt",
        }
    }
}

impl fmt::Display for LexiconFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.default_name())
    }
}

/// What is wrong with a lexicon line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LexiconProblem {
    /// The line has a token but no tab-separated second field.
    #[error("expected `token<TAB>value`, found no tab after the token")]
    MissingField,
    /// The second field of a word-lexicon line is not a finite number.
    #[error("valence `{0}` is not a finite number")]
    InvalidValence(String),
    /// The second field of an emoji-lexicon line is empty.
    #[error("the emoji has an empty description")]
    EmptyDescription,
}

/// A lexicon text that cannot be loaded, with the place of the first problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {problem}")]
pub struct LexiconError {
    /// Which lexicon.
    pub file: LexiconFile,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, in characters, of the field at fault.
    pub col: usize,
    /// What is wrong.
    pub problem: LexiconProblem,
}

/// VADER's scores for one text, rounded as the reference rounds them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Polarity {
    /// Share of the text that is negative, 0–1 (3 decimals).
    pub neg: f64,
    /// Share of the text that is neutral, 0–1 (3 decimals).
    pub neu: f64,
    /// Share of the text that is positive, 0–1 (3 decimals).
    pub pos: f64,
    /// Normalised, weighted sum of all valences, -1 (most negative) to +1 (4 decimals).
    pub compound: f64,
}

impl Polarity {
    /// The score of a text without tokens (empty or whitespace only), as in the reference.
    pub const EMPTY: Polarity = Polarity {
        neg: 0.0,
        neu: 0.0,
        pos: 0.0,
        compound: 0.0,
    };

    /// VADER's standard label: `compound ≥ 0.05` positive, `compound ≤ -0.05` negative,
    /// otherwise neutral.
    pub fn label(&self) -> SentimentLabel {
        SentimentLabel::of(self.compound)
    }
}

/// The sentiment class of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SentimentLabel {
    /// `compound ≤ -0.05`.
    Negative,
    /// Between the thresholds.
    Neutral,
    /// `compound ≥ 0.05`.
    Positive,
}

impl SentimentLabel {
    /// The label of a compound score by VADER's thresholds (±0.05).
    pub fn of(compound: f64) -> SentimentLabel {
        if compound >= 0.05 {
            SentimentLabel::Positive
        } else if compound <= -0.05 {
            SentimentLabel::Negative
        } else {
            SentimentLabel::Neutral
        }
    }

    /// The lowercase name used in output and as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SentimentLabel::Negative => "negative",
            SentimentLabel::Neutral => "neutral",
            SentimentLabel::Positive => "positive",
        }
    }
}

/// The VADER word and emoji lexicons, compiled for look-up. Built once, shared by every
/// worker (`Send + Sync`; scoring takes `&self`).
#[derive(Clone)]
pub struct SentimentLexicon {
    /// Token → mean valence. Keys are as written in the file; tokens are lowercased before
    /// look-up, so a key with capitals (`:D`) is unreachable, exactly as in the reference.
    words: foldhash::HashMap<Box<str>, f64>,
    /// Emoji code point → description. Multi-code-point entries of the file are validated but
    /// not kept: the reference scans one code point at a time and never matches them.
    emoji: foldhash::HashMap<char, Box<str>>,
    /// The smallest code point in `emoji`: every character below it (all of ASCII, with the
    /// shipped file) is copied without a look-up.
    emoji_from: char,
}

impl SentimentLexicon {
    /// Parses the word lexicon (`token<TAB>valence[<TAB>…]` a line) and the emoji lexicon
    /// (`emoji<TAB>description[<TAB>…]` a line). Lines are trimmed of surrounding whitespace
    /// (CRLF files load as is); blank lines are skipped; a repeated token keeps its last value,
    /// as the reference's dictionary does. The first malformed line is reported with its
    /// line and column.
    pub fn parse(lexicon: &str, emoji: &str) -> Result<Self, LexiconError> {
        let mut words = foldhash::HashMap::with_capacity_and_hasher(8192, Default::default());
        for entry in entries(lexicon, LexiconFile::Words) {
            let entry = entry?;
            let valence = parse_valence(entry.value).ok_or_else(|| LexiconError {
                file: LexiconFile::Words,
                line: entry.line,
                col: entry.value_col,
                problem: LexiconProblem::InvalidValence(entry.value.to_owned()),
            })?;
            words.insert(Box::from(entry.key), valence);
        }
        let mut emoji_map = foldhash::HashMap::with_capacity_and_hasher(2048, Default::default());
        for entry in entries(emoji, LexiconFile::Emoji) {
            let entry = entry?;
            if entry.value.is_empty() {
                return Err(LexiconError {
                    file: LexiconFile::Emoji,
                    line: entry.line,
                    col: entry.value_col,
                    problem: LexiconProblem::EmptyDescription,
                });
            }
            let mut chars = entry.key.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                emoji_map.insert(c, Box::from(entry.value));
            }
        }
        Ok(SentimentLexicon {
            words,
            emoji_from: emoji_map.keys().copied().min().unwrap_or(char::MAX),
            emoji: emoji_map,
        })
    }

    /// The lexicons shipped in `rules/lexicons/` (vaderSentiment 3.3.2), compiled into the
    /// binary and parsed on first use.
    pub fn embedded() -> &'static SentimentLexicon {
        static EMBEDDED: OnceLock<SentimentLexicon> = OnceLock::new();
        EMBEDDED.get_or_init(|| match Self::parse(EMBEDDED_LEXICON, EMBEDDED_EMOJI) {
            Ok(lexicon) => lexicon,
            // The embedded files are fixed at compile time and a unit test parses them, so
            // this is a build defect, never a consequence of input.
            Err(e) => panic!("the embedded VADER lexicon does not parse: {e}"),
        })
    }

    /// Number of word entries (distinct tokens).
    pub fn word_count(&self) -> usize {
        self.words.len()
    }

    /// Number of emoji that are replaced by descriptions (single code points).
    pub fn emoji_count(&self) -> usize {
        self.emoji.len()
    }

    /// The valence of a lexicon token (as written in the file), if it has one.
    pub fn valence(&self, token: &str) -> Option<f64> {
        self.words.get(token).copied()
    }

    /// Scores a text. Allocates fresh scratch; a worker scoring many posts should keep a
    /// [`SentimentScratch`] and call [`SentimentLexicon::polarity_with`].
    pub fn polarity(&self, text: &str) -> Polarity {
        self.polarity_with(text, &mut SentimentScratch::default())
    }

    /// Scores a text using caller-owned scratch buffers, which are cleared, not shrunk, so
    /// scoring allocates nothing once they have grown to the largest post seen.
    pub fn polarity_with(&self, text: &str, scratch: &mut SentimentScratch) -> Polarity {
        let SentimentScratch {
            text: replaced,
            lower,
            tokens,
            sentiments,
        } = scratch;
        // Cleared first: `compound_with` reads the valences of the last text scored.
        sentiments.clear();
        self.replace_emoji(text, replaced);
        // `text_no_emoji.strip()` of the reference.
        let text = replaced.trim_matches(is_python_space);
        self.tokenize(text, lower, tokens);
        if tokens.is_empty() {
            return Polarity::EMPTY;
        }
        let words = Words {
            lower,
            tokens,
            cap_diff: cap_differential(tokens),
        };
        for i in 0..tokens.len() {
            let word = words.lower(i);
            let valence = if rules::booster(word).is_some()
                || (word == "kind" && i + 1 < tokens.len() && words.lower(i + 1) == "of")
            {
                // Modifiers are not scored themselves: they act on the word after them.
                0.0
            } else {
                words.valence(i)
            };
            sentiments.push(valence);
        }
        but_check(&words, sentiments);
        score_valence(sentiments, text)
    }

    /// Replaces each emoji by its description, as `polarity_scores` does: a space is put
    /// before the description unless the previous character was a space; nothing is put
    /// after it.
    fn replace_emoji(&self, text: &str, out: &mut String) {
        out.clear();
        let mut prev_space = true;
        for c in text.chars() {
            let found = if c < self.emoji_from {
                None
            } else {
                self.emoji.get(&c)
            };
            match found {
                Some(description) => {
                    if !prev_space {
                        out.push(' ');
                    }
                    out.push_str(description);
                    prev_space = false;
                }
                None => {
                    out.push(c);
                    prev_space = c == ' ';
                }
            }
        }
    }

    /// Splits `text` into tokens (`SentiText._words_and_emoticons`), recording for each its
    /// lowercase form (appended to `lower`), whether it is ALL CAPS and its lexicon
    /// valence.
    fn tokenize(&self, text: &str, lower: &mut String, tokens: &mut Vec<Token>) {
        lower.clear();
        tokens.clear();
        for raw in text.split(is_python_space).filter(|t| !t.is_empty()) {
            let word = strip_punctuation_if_word(raw);
            let lower_start = lower.len();
            push_lowercase(word, lower);
            let lowered = &lower[lower_start..];
            tokens.push(Token {
                lower: lower_start..lower.len(),
                upper: is_python_upper(word),
                valence: self.words.get(lowered).copied(),
            });
        }
    }
}

impl fmt::Debug for SentimentLexicon {
    /// Sizes only: the full tables are thousands of entries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentimentLexicon")
            .field("words", &self.words.len())
            .field("emoji", &self.emoji.len())
            .finish()
    }
}

/// Buffers that scoring reuses from one post to the next. Create one per worker.
#[derive(Debug, Default)]
pub struct SentimentScratch {
    /// The text with emoji replaced by their descriptions.
    text: String,
    /// The lowercase form of every token, concatenated.
    lower: String,
    /// One entry per token.
    tokens: Vec<Token>,
    /// One valence per token.
    sentiments: Vec<f64>,
}

impl SentimentScratch {
    /// Empty scratch; it grows to the largest post scored with it.
    pub fn new() -> Self {
        Self::default()
    }
}

/// One token of the emoji-substituted text.
#[derive(Debug, Clone)]
struct Token {
    /// Byte range of its lowercase form in the scratch's `lower`.
    lower: Range<usize>,
    /// Python's `isupper()`: it has cased letters and all of them are uppercase.
    upper: bool,
    /// Its valence when its lowercase form is a lexicon token.
    valence: Option<f64>,
}

/// The tokens of one text, with the accessors the rules need.
struct Words<'s> {
    lower: &'s str,
    tokens: &'s [Token],
    /// Some, but not all, tokens are ALL CAPS: only then is capitalisation emphasis.
    cap_diff: bool,
}

impl Words<'_> {
    fn len(&self) -> usize {
        self.tokens.len()
    }

    fn lower(&self, i: usize) -> &str {
        &self.lower[self.tokens[i].lower.clone()]
    }

    fn in_lexicon(&self, i: usize) -> bool {
        self.tokens[i].valence.is_some()
    }

    /// `sentiment_valence` of the reference: the valence of token `i` after every rule that
    /// looks at its neighbours; 0 for a token outside the lexicon.
    fn valence(&self, i: usize) -> f64 {
        let Some(base) = self.tokens[i].valence else {
            return 0.0;
        };
        let cap_diff = self.cap_diff;
        let mut valence = base;
        // "no" right before another lexicon word negates it rather than counting itself.
        if self.lower(i) == "no" && i + 1 < self.len() && self.in_lexicon(i + 1) {
            valence = 0.0;
        }
        if (i > 0 && self.lower(i - 1) == "no")
            || (i > 1 && self.lower(i - 2) == "no")
            || (i > 2 && self.lower(i - 3) == "no" && matches!(self.lower(i - 1), "or" | "nor"))
        {
            valence = base * N_SCALAR;
        }
        if self.tokens[i].upper && cap_diff {
            if valence > 0.0 {
                valence += C_INCR;
            } else {
                valence -= C_INCR;
            }
        }
        // Up to three preceding non-lexicon tokens may boost, dampen or negate.
        for start_i in 0..3 {
            let j = match i.checked_sub(start_i + 1) {
                Some(j) if !self.in_lexicon(j) => j,
                _ => continue,
            };
            let mut s = self.scalar_inc_dec(j, valence, cap_diff);
            if start_i == 1 && s != 0.0 {
                s *= 0.95;
            }
            if start_i == 2 && s != 0.0 {
                s *= 0.9;
            }
            valence += s;
            valence = self.negation_check(valence, start_i, i);
            if start_i == 2 {
                valence = self.special_idioms_check(valence, i);
            }
        }
        self.least_check(valence, i)
    }

    /// `scalar_inc_dec`: what booster or dampener token `j` adds to `valence`.
    fn scalar_inc_dec(&self, j: usize, valence: f64, cap_diff: bool) -> f64 {
        let Some(mut scalar) = rules::booster(self.lower(j)) else {
            return 0.0;
        };
        if valence < 0.0 {
            scalar *= -1.0;
        }
        if self.tokens[j].upper && cap_diff {
            if valence > 0.0 {
                scalar += C_INCR;
            } else {
                scalar -= C_INCR;
            }
        }
        scalar
    }

    /// `_negation_check`: negation `start_i + 1` tokens before `i`, with the "never so/this"
    /// (intensifies) and "without doubt" (leaves alone) exceptions.
    fn negation_check(&self, valence: f64, start_i: usize, i: usize) -> f64 {
        let w = |k: usize| self.lower(i - k);
        match start_i {
            0 if rules::is_negation(w(1)) => valence * N_SCALAR,
            1 => {
                if w(2) == "never" && matches!(w(1), "so" | "this") {
                    valence * 1.25
                } else if w(2) == "without" && w(1) == "doubt" {
                    valence
                } else if rules::is_negation(w(2)) {
                    valence * N_SCALAR
                } else {
                    valence
                }
            }
            2 => {
                // The reference's condition reads `never (so|this) _` OR `_ _ (so|this)`
                // (Python's `and`/`or` precedence); kept as written.
                if (w(3) == "never" && matches!(w(2), "so" | "this"))
                    || matches!(w(1), "so" | "this")
                {
                    valence * 1.25
                } else if w(3) == "without" && (w(2) == "doubt" || w(1) == "doubt") {
                    valence
                } else if rules::is_negation(w(3)) {
                    valence * N_SCALAR
                } else {
                    valence
                }
            }
            _ => valence,
        }
    }

    /// `_special_idioms_check`: idioms that set the valence, then the two-word dampeners
    /// before the word. Called only with `i ≥ 3`.
    fn special_idioms_check(&self, mut valence: f64, i: usize) -> f64 {
        let w = |k: usize| self.lower(k);
        let behind: [&[&str]; 5] = [
            &[w(i - 1), w(i)],
            &[w(i - 2), w(i - 1), w(i)],
            &[w(i - 2), w(i - 1)],
            &[w(i - 3), w(i - 2), w(i - 1)],
            &[w(i - 3), w(i - 2)],
        ];
        if let Some(v) = behind.iter().find_map(|seq| rules::special_case(seq)) {
            valence = v;
        }
        if i + 1 < self.len() {
            if let Some(v) = rules::special_case(&[w(i), w(i + 1)]) {
                valence = v;
            }
        }
        if i + 2 < self.len() {
            if let Some(v) = rules::special_case(&[w(i), w(i + 1), w(i + 2)]) {
                valence = v;
            }
        }
        // The reference also tries the three-word n-gram `i-3 i-2 i-1`, which no booster key
        // has; only the two-word ones can match.
        for (a, b) in [(i - 3, i - 2), (i - 2, i - 1)] {
            if let Some(v) = rules::booster_bigram(w(a), w(b)) {
                valence += v;
            }
        }
        valence
    }

    /// `_least_check`: "least good" negates; "at least" and "very least" do not.
    fn least_check(&self, valence: f64, i: usize) -> f64 {
        if i > 1 && !self.in_lexicon(i - 1) && self.lower(i - 1) == "least" {
            if self.lower(i - 2) != "at" && self.lower(i - 2) != "very" {
                return valence * N_SCALAR;
            }
        } else if i > 0 && !self.in_lexicon(i - 1) && self.lower(i - 1) == "least" {
            return valence * N_SCALAR;
        }
        valence
    }
}

/// `allcap_differential`: some, but not all, tokens are ALL CAPS.
fn cap_differential(tokens: &[Token]) -> bool {
    let upper = tokens.iter().filter(|t| t.upper).count();
    let differential = tokens.len() - upper;
    0 < differential && differential < tokens.len()
}

/// `_but_check`: valences before the first "but" are halved, those after it grow by half.
///
/// Ported with the reference's quirk: it iterates over the values and finds each one's
/// position with `list.index(value)`, the *first equal* value, so when two tokens share a
/// valence the first of them is scaled (possibly twice) and the later one not at all.
fn but_check(words: &Words<'_>, sentiments: &mut [f64]) {
    let Some(bi) = (0..words.len()).find(|&i| words.lower(i) == "but") else {
        return;
    };
    for k in 0..sentiments.len() {
        let sentiment = sentiments[k];
        let Some(si) = sentiments.iter().position(|&s| s == sentiment) else {
            continue;
        };
        if si < bi {
            sentiments[si] = sentiment * 0.5;
        } else if si > bi {
            sentiments[si] = sentiment * 1.5;
        }
    }
}

/// VADER's compound with brand cues taken into account, for the last text scored with
/// `scratch`: the per-token valences (after every VADER rule) when `lexicon` is set (it is not
/// for text in another language than English, where the English lexicon's words mean other
/// things: German *die*, Spanish *no*), leaving out tokens for which `neutral` holds (words
/// that name things in brand talk, such as *support*); plus `extra`, the cue valences; with
/// positive valences read as negative when `sarcastic` ("great, another delay").
/// Punctuation emphasis and normalisation are VADER's own.
pub fn compound_with(
    scratch: &SentimentScratch,
    text: &str,
    lexicon: bool,
    neutral: impl Fn(&str) -> bool,
    extra: f64,
    sarcastic: bool,
) -> f64 {
    let mut sum_s = extra;
    if lexicon {
        for (token, &s) in scratch.tokens.iter().zip(&scratch.sentiments) {
            if s == 0.0 || neutral(&scratch.lower[token.lower.clone()]) {
                continue;
            }
            sum_s += if sarcastic && s > 0.0 { -s } else { s };
        }
    }
    let amplifier = punctuation_emphasis(text);
    if sum_s > 0.0 {
        sum_s += amplifier;
    } else if sum_s < 0.0 {
        sum_s -= amplifier;
    }
    round_half_even(normalize(sum_s), 4)
}

/// `score_valence`: punctuation emphasis, the compound normalisation and the three shares,
/// rounded as the reference rounds them. `sentiments` is non-empty.
fn score_valence(sentiments: &[f64], text: &str) -> Polarity {
    // Left-to-right sum, as Python 3.11's `sum()` (3.12 switched to compensated summation,
    // which can differ in the last bit; see tests/data/vader/make_golden.py).
    let mut sum_s = sentiments.iter().fold(0.0, |acc, s| acc + s);
    let amplifier = punctuation_emphasis(text);
    if sum_s > 0.0 {
        sum_s += amplifier;
    } else if sum_s < 0.0 {
        sum_s -= amplifier;
    }
    let compound = normalize(sum_s);

    let (mut pos_sum, mut neg_sum, mut neu_count) = (0.0_f64, 0.0_f64, 0_usize);
    for &s in sentiments {
        if s > 0.0 {
            // +1 compensates for neutral words, which count 1 each.
            pos_sum += s + 1.0;
        }
        if s < 0.0 {
            neg_sum += s - 1.0;
        }
        if s == 0.0 {
            neu_count += 1;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += amplifier;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= amplifier;
    }
    // Every token adds at least 1, and there is at least one token: total ≥ 1.
    let total = pos_sum + neg_sum.abs() + neu_count as f64;
    Polarity {
        neg: round_half_even((neg_sum / total).abs(), 3),
        neu: round_half_even((neu_count as f64 / total).abs(), 3),
        pos: round_half_even((pos_sum / total).abs(), 3),
        compound: round_half_even(compound, 4),
    }
}

/// Emphasis from `!` (0.292 each, up to 4) and `?` (0.18 each for 2–3, 0.96 for more).
fn punctuation_emphasis(text: &str) -> f64 {
    let exclamations = text
        .bytes()
        .filter(|&b| b == b'!')
        .count()
        .min(MAX_EXCLAMATIONS);
    let questions = text.bytes().filter(|&b| b == b'?').count();
    let question_amplifier = match questions {
        0 | 1 => 0.0,
        2 | 3 => questions as f64 * QUESTION_INCR,
        _ => QUESTION_MAX,
    };
    exclamations as f64 * EXCLAMATION_INCR + question_amplifier
}

/// `normalize`: maps a raw sum onto [-1, 1] with `x / sqrt(x² + alpha)`.
fn normalize(score: f64) -> f64 {
    (score / (score * score + ALPHA).sqrt()).clamp(-1.0, 1.0)
}

/// Python's `round(x, digits)`: the correctly rounded decimal, ties to even on the exact
/// binary value. Rust's fixed-precision formatting rounds the same way, and parsing the
/// result back gives the same double as CPython's `round`. Formatting into a stack buffer
/// keeps this free of allocation.
fn round_half_even(x: f64, digits: usize) -> f64 {
    use std::fmt::Write;
    let mut buf = StackBuf {
        bytes: [0; 64],
        len: 0,
    };
    match write!(buf, "{x:.digits$}") {
        Ok(()) => buf.as_str().parse().unwrap_or(x),
        // Only a value too long for the buffer (never a score in [-1, 1]) gets here.
        Err(_) => x,
    }
}

/// A fixed-size `fmt::Write` target.
struct StackBuf {
    bytes: [u8; 64],
    len: usize,
}

impl StackBuf {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dest = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        dest.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Python's `str.isspace()`: Unicode White_Space plus the ASCII separators U+001C..U+001F,
/// which Python's `split()` also splits on.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `_strip_punc_if_word`: strips leading and trailing ASCII punctuation, unless two or fewer
/// characters would remain (then the token is likely an emoticon and is kept whole).
fn strip_punctuation_if_word(token: &str) -> &str {
    let stripped = token.trim_matches(|c: char| c.is_ascii_punctuation());
    if stripped.chars().nth(2).is_none() {
        token
    } else {
        stripped
    }
}

/// Appends Python's `word.lower()` to `out`. Per character for all but Greek capital sigma,
/// whose lowercase depends on its neighbours (final `ς`); a token holding one goes through
/// `str::to_lowercase`, which applies the same Final_Sigma rule as Python.
fn push_lowercase(word: &str, out: &mut String) {
    if word.is_ascii() {
        out.extend(word.bytes().map(|b| char::from(b.to_ascii_lowercase())));
    } else if word.contains('Σ') {
        out.push_str(&word.to_lowercase());
    } else {
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
}

/// Python's `str.isupper()`: at least one uppercase letter and no lowercase or titlecase one.
fn is_python_upper(word: &str) -> bool {
    let mut cased = false;
    for c in word.chars() {
        if c.is_lowercase() || is_titlecase(c) {
            return false;
        }
        cased |= c.is_uppercase();
    }
    cased
}

/// Unicode general category Lt (titlecase letters), which Rust's `char` does not expose.
fn is_titlecase(c: char) -> bool {
    matches!(
        c,
        '\u{1c5}'
            | '\u{1c8}'
            | '\u{1cb}'
            | '\u{1f2}'
            | '\u{1f88}'..='\u{1f8f}'
            | '\u{1f98}'..='\u{1f9f}'
            | '\u{1fa8}'..='\u{1faf}'
            | '\u{1fbc}'
            | '\u{1fcc}'
            | '\u{1ffc}'
    )
}

/// One non-blank line of a lexicon: its first two tab-separated fields.
struct Entry<'a> {
    line: usize,
    key: &'a str,
    value: &'a str,
    value_col: usize,
}

/// The entries of a lexicon text, as the reference reads them: each line stripped of
/// surrounding whitespace, then `split('\t')[0:2]`.
fn entries(text: &str, file: LexiconFile) -> impl Iterator<Item = Result<Entry<'_>, LexiconError>> {
    text.split('\n').enumerate().filter_map(move |(n, raw)| {
        let line = raw.trim_matches(is_python_space);
        if line.is_empty() {
            return None;
        }
        let lead = raw[..raw.len() - raw.trim_start_matches(is_python_space).len()]
            .chars()
            .count();
        let mut fields = line.split('\t');
        let key = fields.next().unwrap_or("");
        let Some(value) = fields.next() else {
            return Some(Err(LexiconError {
                file,
                line: n + 1,
                col: lead + key.chars().count() + 1,
                problem: LexiconProblem::MissingField,
            }));
        };
        Some(Ok(Entry {
            line: n + 1,
            key,
            value,
            value_col: lead + key.chars().count() + 2,
        }))
    })
}

/// Parses a valence as Python's `float()` would for the numbers a lexicon holds; rejects
/// anything that is not a finite number.
fn parse_valence(field: &str) -> Option<f64> {
    field
        .trim_matches(is_python_space)
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}
