//! Unit tests of the VADER port, one table per rule. Every expected value in the tables was
//! produced by the reference, `vaderSentiment` 3.3.2 (`SentimentIntensityAnalyzer().
//! polarity_scores(text)`), so each row checks a real outcome of the rule it names, exactly.
//! The corpus-wide agreement test is in `golden.rs`.

// Expected values are the reference's rounded outputs; one happens to be 0.318, which
// clippy takes for an approximation of 1/π.
#![allow(clippy::approx_constant)]

use super::*;

/// A short name for a lexicon problem, for the tables below.
fn problem_name(problem: &LexiconProblem) -> &'static str {
    match problem {
        LexiconProblem::MissingField => "missing_field",
        LexiconProblem::InvalidValence(_) => "invalid_valence",
        LexiconProblem::EmptyDescription => "empty_description",
    }
}

/// One case: a name, the text, and the reference's `[neg, neu, pos, compound]`.
struct Case {
    name: &'static str,
    text: &'static str,
    expected: [f64; 4],
}

const fn case(name: &'static str, text: &'static str, expected: [f64; 4]) -> Case {
    Case {
        name,
        text,
        expected,
    }
}

/// Scores every case twice, with fresh and with reused scratch, and compares both with the
/// reference.
fn check(table: &[Case]) {
    let lexicon = SentimentLexicon::embedded();
    let mut scratch = SentimentScratch::new();
    let mut failures = Vec::new();
    for case in table {
        let [neg, neu, pos, compound] = case.expected;
        let expected = Polarity {
            neg,
            neu,
            pos,
            compound,
        };
        let fresh = lexicon.polarity(case.text);
        let reused = lexicon.polarity_with(case.text, &mut scratch);
        if fresh != expected || reused != expected {
            failures.push(format!(
                "{}: {:?}\n  expected {expected:?}\n  got      {fresh:?} (reused scratch: {reused:?})",
                case.name, case.text
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) differ from the reference:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

const NEGATION: &[Case] = &[
    case("plain", "The Acme app is good", [0.0, 0.58, 0.42, 0.4404]),
    case(
        "not",
        "The Acme app is not good",
        [0.325, 0.675, 0.0, -0.3412],
    ),
    case(
        "contraction",
        "The Acme app isn't good",
        [0.376, 0.624, 0.0, -0.3412],
    ),
    case(
        "contraction_without_apostrophe",
        "The Acme app isnt good",
        [0.376, 0.624, 0.0, -0.3412],
    ),
    case(
        "curly_apostrophe_is_no_negation",
        "Acme don’t care, terrible",
        [0.373, 0.241, 0.386, 0.0258],
    ),
    case(
        "two_back",
        "Acme is not very good",
        [0.396, 0.604, 0.0, -0.3865],
    ),
    case(
        "three_back",
        "Acme was never really that good",
        [0.343, 0.657, 0.0, -0.3843],
    ),
    case(
        "never_so",
        "Acme has never been so good",
        [0.0, 0.572, 0.428, 0.5777],
    ),
    case(
        "never_this",
        "Acme was never this good",
        [0.0, 0.502, 0.498, 0.6084],
    ),
    case(
        "without_doubt",
        "Without a doubt, Acme is excellent",
        [0.0, 0.408, 0.592, 0.7013],
    ),
    case(
        "without_doubt_adjacent",
        "without doubt excellent service",
        [0.0, 0.256, 0.744, 0.7013],
    ),
    case(
        "no_before_lexicon_word",
        "Acme gives no good answers",
        [0.376, 0.624, 0.0, -0.3412],
    ),
    case("no_alone_keeps_punctuation", "No.", [0.0, 1.0, 0.0, 0.0]),
    case("no_as_word", "no", [1.0, 0.0, 0.0, -0.296]),
    case("no_no", "no no good", [0.454, 0.189, 0.357, -0.1326]),
    case(
        "no_x_or",
        "no help or support",
        [0.693, 0.307, 0.0, -0.5448],
    ),
    case(
        "neither_nor",
        "Neither helpful nor friendly",
        [0.357, 0.306, 0.337, -0.0328],
    ),
    case(
        "least",
        "Acme is the least helpful airline",
        [0.318, 0.682, 0.0, -0.3252],
    ),
    case(
        "at_least",
        "At least Acme is helpful",
        [0.0, 0.588, 0.412, 0.4215],
    ),
    case(
        "very_least",
        "at the very least helpful",
        [0.0, 0.565, 0.435, 0.4728],
    ),
    case("least_first", "least helpful", [0.7, 0.3, 0.0, -0.3252]),
    case(
        "despite",
        "despite great reviews",
        [0.622, 0.378, 0.0, -0.5096],
    ),
];

const BUT: &[Case] = &[
    case(
        "but_before_and_after",
        "The food was great but the service was awful",
        [0.295, 0.517, 0.188, -0.3506],
    ),
    case(
        "but_only_after",
        "Nice try but terrible app",
        [0.459, 0.331, 0.21, -0.5023],
    ),
    case(
        "but_capitalised",
        "Cheap. BUT broken",
        [0.675, 0.325, 0.0, -0.631],
    ),
    case(
        "but_first_only",
        "good but bad but good",
        [0.378, 0.159, 0.462, 0.0129],
    ),
    case(
        "but_equal_values",
        "good good but good",
        [0.0, 0.114, 0.886, 0.775],
    ),
    case("no_but", "good and bad", [0.473, 0.135, 0.392, -0.1531]),
];

const CAPS: &[Case] = &[
    case(
        "caps_word_in_mixed",
        "Acme support is GREAT",
        [0.0, 0.21, 0.79, 0.8192],
    ),
    case(
        "caps_all_words",
        "ACME SUPPORT IS GREAT",
        [0.0, 0.227, 0.773, 0.7783],
    ),
    case(
        "caps_booster",
        "Acme is VERY good",
        [0.0, 0.433, 0.567, 0.6028],
    ),
    case(
        "caps_booster_negative",
        "Acme is VERY bad",
        [0.601, 0.399, 0.0, -0.6732],
    ),
    case(
        "caps_negative_word",
        "the update is TERRIBLE",
        [0.561, 0.439, 0.0, -0.5904],
    ),
    case(
        "caps_digits_not_cased",
        "ACME 2024 is bad",
        [0.538, 0.462, 0.0, -0.5423],
    ),
    case(
        "caps_titlecase_letter_is_not_upper",
        "ǅUNGLA BAD",
        [0.809, 0.191, 0.0, -0.6408],
    ),
];

const PUNCTUATION: &[Case] = &[
    case(
        "exclamation_one",
        "Acme is great!",
        [0.0, 0.313, 0.687, 0.6588],
    ),
    case(
        "exclamation_four",
        "Acme is great!!!!",
        [0.0, 0.275, 0.725, 0.7405],
    ),
    case(
        "exclamation_capped",
        "Acme is great!!!!!!!!",
        [0.0, 0.275, 0.725, 0.7405],
    ),
    case(
        "exclamation_negative",
        "Acme is awful!!",
        [0.642, 0.358, 0.0, -0.555],
    ),
    case("question_one", "Is Acme good?", [0.0, 0.408, 0.592, 0.4404]),
    case("question_two", "Is Acme good??", [0.0, 0.38, 0.62, 0.504]),
    case(
        "question_three",
        "Is Acme good???",
        [0.0, 0.368, 0.632, 0.533],
    ),
    case(
        "question_many",
        "Is Acme good?????",
        [0.0, 0.341, 0.659, 0.594],
    ),
    case(
        "mixed_marks",
        "Acme is awful?!?!",
        [0.664, 0.336, 0.0, -0.6052],
    ),
    case("punctuation_on_neutral", "Acme!!!", [0.0, 1.0, 0.0, 0.0]),
];

const BOOSTERS: &[Case] = &[
    case("very", "Acme is very good", [0.0, 0.484, 0.516, 0.4927]),
    case(
        "extremely",
        "Acme is extremely bad",
        [0.558, 0.442, 0.0, -0.5849],
    ),
    case(
        "dampener_slightly",
        "Acme is slightly good",
        [0.0, 0.535, 0.465, 0.3832],
    ),
    case(
        "kind_of",
        "Acme is kind of good",
        [0.0, 0.605, 0.395, 0.3832],
    ),
    case("kinda", "Acme is kinda good", [0.0, 0.535, 0.465, 0.3832]),
    case(
        "sort_of",
        "Acme is sort of bad",
        [0.487, 0.513, 0.0, -0.5849],
    ),
    case(
        "just_enough",
        "Acme was just enough good",
        [0.0, 0.605, 0.395, 0.3832],
    ),
    case(
        "booster_two_back",
        "Acme is really quite good",
        [0.0, 0.535, 0.465, 0.5379],
    ),
    case(
        "booster_three_back",
        "really the app is good",
        [0.0, 0.58, 0.42, 0.4404],
    ),
    case("booster_alone", "very", [0.0, 1.0, 0.0, 0.0]),
];

const IDIOMS: &[Case] = &[
    case("the_shit", "Acme is the shit", [0.0, 0.429, 0.571, 0.6124]),
    case(
        "the_bomb",
        "this new acme phone is the bomb",
        [0.0, 0.6, 0.4, 0.6124],
    ),
    case(
        "bad_ass",
        "Acme support is bad ass",
        [0.327, 0.187, 0.486, 0.1779],
    ),
    case(
        "yeah_right",
        "yeah right Acme is helpful",
        [0.0, 0.375, 0.625, 0.6124],
    ),
    case(
        "kiss_of_death",
        "that update was the kiss of death",
        [0.5, 0.5, 0.0, -0.6124],
    ),
    case(
        "to_die_for",
        "their cake is to die for",
        [0.438, 0.562, 0.0, -0.5994],
    ),
    case(
        "beating_heart",
        "a good beating heart",
        [0.263, 0.088, 0.649, 0.6597],
    ),
    case(
        "bus_stop",
        "waiting at the bus stop crying",
        [0.0, 1.0, 0.0, 0.0],
    ),
];

const EMOJI: &[Case] = &[
    case("emoji_positive", "Acme 😍", [0.0, 0.571, 0.429, 0.4588]),
    case("emoji_negative", "Acme 😡", [0.0, 1.0, 0.0, 0.0]),
    case("emoji_glued", "Acme😍great", [0.0, 0.571, 0.429, 0.4588]),
    case("emoji_several", "😂😂😂", [0.218, 0.345, 0.437, 0.8271]),
    case("emoji_skin_tone", "👍🏽 Acme", [0.0, 1.0, 0.0, 0.0]),
    case(
        "emoji_zwj",
        "👩‍💻 at Acme loves it",
        [0.0, 0.619, 0.381, 0.5719],
    ),
    case("emoji_flag", "🇺🇸 Acme", [0.0, 1.0, 0.0, 0.0]),
    case("emoji_heart_variation", "Acme ❤️", [0.0, 1.0, 0.0, 0.0]),
    case("emoticon_smile", "Acme :)", [0.0, 0.25, 0.75, 0.4588]),
    case("emoticon_frown", "Acme :(", [0.744, 0.256, 0.0, -0.4404]),
    case("emoticon_heart", "Acme <3", [0.0, 0.256, 0.744, 0.4404]),
    case("emoticon_nose", "Acme :-)", [0.0, 0.303, 0.697, 0.3182]),
    case(
        "emoticon_capital_d_lowercased",
        "Acme :D",
        [0.0, 0.199, 0.801, 0.6166],
    ),
];

const TOKENS: &[Case] = &[
    case("empty", "", [0.0, 0.0, 0.0, 0.0]),
    case("spaces_only", "   ", [0.0, 0.0, 0.0, 0.0]),
    case("dots", "...", [0.0, 1.0, 0.0, 0.0]),
    case(
        "punctuation_strip",
        "\"great\", said @Acme",
        [0.0, 0.328, 0.672, 0.6249],
    ),
    case("short_token_keeps_punctuation", "ok!", [0.0, 1.0, 0.0, 0.0]),
    case("hashtag", "#love #Acme", [0.0, 0.192, 0.808, 0.6369]),
    case("url", "https://acme.example/good", [0.0, 1.0, 0.0, 0.0]),
    case("nbsp", "bad\u{a0}service", [0.778, 0.222, 0.0, -0.5423]),
    case(
        "ideographic_space",
        "bad\u{3000}service",
        [0.778, 0.222, 0.0, -0.5423],
    ),
    case(
        "unit_separator",
        "bad\u{1f}service",
        [0.778, 0.222, 0.0, -0.5423],
    ),
    case(
        "zero_width_space",
        "bad\u{200b}service",
        [0.0, 1.0, 0.0, 0.0],
    ),
    case("greek_sigma", "ΟΔΟΣ good", [0.0, 0.256, 0.744, 0.4404]),
    case("dotted_capital_i", "İYİ good", [0.0, 0.256, 0.744, 0.4404]),
];

#[test]
fn negation_matches_reference() {
    check(NEGATION);
}

#[test]
fn but_rule_matches_reference() {
    check(BUT);
}

#[test]
fn caps_emphasis_matches_reference() {
    check(CAPS);
}

#[test]
fn punctuation_emphasis_matches_reference() {
    check(PUNCTUATION);
}

#[test]
fn boosters_and_dampeners_match_reference() {
    check(BOOSTERS);
}

#[test]
fn idioms_match_reference() {
    check(IDIOMS);
}

#[test]
fn emoji_and_emoticons_match_reference() {
    check(EMOJI);
}

#[test]
fn tokenization_matches_reference() {
    check(TOKENS);
}

#[test]
fn rules_move_the_score_the_way_they_claim() {
    let lexicon = SentimentLexicon::embedded();
    let c = |text: &str| lexicon.polarity(text).compound;
    // (what, smaller compound, larger compound)
    let table = [
        ("negation flips", "Acme is not good", "Acme is good"),
        ("booster raises", "Acme is good", "Acme is very good"),
        ("dampener lowers", "Acme is kind of good", "Acme is good"),
        ("caps raise in mixed case", "Acme is good", "Acme is GOOD"),
        ("exclamation raises", "Acme is good", "Acme is good!"),
        ("clause after but dominates", "good but bad", "bad but good"),
        ("least negates", "the least helpful", "the most helpful"),
    ];
    for (what, lower, higher) in table {
        assert!(
            c(lower) < c(higher),
            "{what}: {lower:?} {} !< {higher:?} {}",
            c(lower),
            c(higher)
        );
    }
}

#[test]
fn labels_use_vaders_thresholds() {
    let table = [
        (0.05, SentimentLabel::Positive),
        (0.0499, SentimentLabel::Neutral),
        (0.0, SentimentLabel::Neutral),
        (-0.0, SentimentLabel::Neutral),
        (-0.0499, SentimentLabel::Neutral),
        (-0.05, SentimentLabel::Negative),
        (1.0, SentimentLabel::Positive),
        (-1.0, SentimentLabel::Negative),
    ];
    for (compound, label) in table {
        let polarity = Polarity {
            compound,
            ..Polarity::EMPTY
        };
        assert_eq!(polarity.label(), label, "compound {compound}");
    }
    let json = serde_json::to_string(&[
        SentimentLabel::Negative,
        SentimentLabel::Neutral,
        SentimentLabel::Positive,
    ])
    .unwrap_or_default();
    assert_eq!(json, r#"["negative","neutral","positive"]"#);
    for label in [
        SentimentLabel::Negative,
        SentimentLabel::Neutral,
        SentimentLabel::Positive,
    ] {
        assert_eq!(
            serde_json::to_string(&label).unwrap_or_default(),
            format!("\"{}\"", label.as_str())
        );
    }
}

#[test]
fn embedded_lexicon_loads_every_entry() {
    let lexicon = SentimentLexicon::embedded();
    // 7,520 lines, of which 14 repeat an earlier token (the later value wins).
    assert_eq!(lexicon.word_count(), 7506);
    // 3,570 entries, of which 1,212 are single code points.
    assert_eq!(lexicon.emoji_count(), 1212);
    let table = [
        ("good", Some(1.9)),
        (":)", Some(2.0)),
        ("<3", Some(1.9)),
        ("acme", None),
    ];
    for (token, valence) in table {
        assert_eq!(lexicon.valence(token), valence, "{token}");
    }
    assert!(
        std::ptr::eq(lexicon, SentimentLexicon::embedded()),
        "parsed once"
    );
}

#[test]
fn parse_accepts_overrides_and_the_reference_format() {
    // Expected values from the reference loading the same texts as its lexicon files.
    let table: [(&str, &str, &str, &str, f64); 5] = [
        (
            "custom word replaces the default",
            "acme\t2.5\n",
            "",
            "love acme",
            0.5423,
        ),
        (
            "crlf and extra fields",
            "acme\t2.5\t0.5\t[2, 3]\r\n",
            "",
            "acme",
            0.5423,
        ),
        (
            "last duplicate wins",
            "acme\t-1\nacme\t1\n",
            "",
            "acme",
            0.25,
        ),
        (
            "blank lines skipped",
            "\n\nacme\t1\n\n",
            "\n\n",
            "acme",
            0.25,
        ),
        (
            "emoji description scored",
            "happy\t2\n",
            "☀\thappy\n",
            "☀",
            0.4588,
        ),
    ];
    for (name, words, emoji, text, compound) in table {
        let lexicon = match SentimentLexicon::parse(words, emoji) {
            Ok(lexicon) => lexicon,
            Err(e) => panic!("{name}: {e}"),
        };
        assert_eq!(lexicon.polarity(text).compound, compound, "{name}");
    }
}

#[test]
fn parse_errors_name_line_and_column() {
    let table = [
        (
            "no tab",
            "good\t1.9\nbad\n",
            "",
            LexiconFile::Words,
            2,
            4,
            "missing_field",
        ),
        (
            "not a number",
            "good\tgreat\n",
            "",
            LexiconFile::Words,
            1,
            6,
            "invalid_valence",
        ),
        (
            "not finite",
            "good\tinf\n",
            "",
            LexiconFile::Words,
            1,
            6,
            "invalid_valence",
        ),
        (
            "indented",
            "  good\tx\n",
            "",
            LexiconFile::Words,
            1,
            8,
            "invalid_valence",
        ),
        (
            "emoji no tab",
            "",
            "😀\tgrinning face\n😁\n",
            LexiconFile::Emoji,
            2,
            2,
            "missing_field",
        ),
        (
            "emoji empty description",
            "",
            "😀\t\tx\n",
            LexiconFile::Emoji,
            1,
            3,
            "empty_description",
        ),
    ];
    for (name, words, emoji, file, line, col, reason) in table {
        match SentimentLexicon::parse(words, emoji) {
            Ok(_) => panic!("{name}: parsed"),
            Err(e) => {
                assert_eq!(
                    (e.file, e.line, e.col, problem_name(&e.problem)),
                    (file, line, col, reason),
                    "{name}: {e}"
                );
                assert!(
                    e.to_string().starts_with(&format!("{file}:{line}:{col}: ")),
                    "{name}: {e}"
                );
            }
        }
    }
}

#[test]
fn hostile_text_scores_without_panicking() {
    let lexicon = SentimentLexicon::embedded();
    let long = "good ".repeat(20_000) + &"!".repeat(1000) + &"?".repeat(1000);
    let table = [
        "\u{0}\u{1}\u{7f}",
        "\u{feff}good",
        "̈́̈́̈́good",
        "💩💩💩💩💩💩💩💩💩💩💩💩💩💩💩💩💩💩💩💩",
        "no no no no no no",
        "but but but",
        "kind",
        "kind of",
        "least",
        "never so",
        long.as_str(),
    ];
    for text in table {
        let p = lexicon.polarity(text);
        for v in [p.neg, p.neu, p.pos, p.compound] {
            assert!(v.is_finite(), "{text:?}: {p:?}");
        }
        assert!((-1.0..=1.0).contains(&p.compound), "{text:?}: {p:?}");
    }
    assert_eq!(lexicon.polarity(&long).label(), SentimentLabel::Positive);
}

#[test]
fn helpers_follow_python_semantics() {
    let strip = [
        (":)", ":)"),
        ("ok!", "ok!"),
        ("(great)", "great"),
        ("@acme", "acme"),
        ("...", "..."),
        ("'é!'", "'é!'"),
        ("#héllo", "héllo"),
    ];
    for (token, expected) in strip {
        assert_eq!(
            strip_punctuation_if_word(token),
            expected,
            "strip {token:?}"
        );
    }
    let upper = [
        ("GOOD", true),
        ("Good", false),
        ("A1", true),
        ("123", false),
        (":D", true),
        ("ǅUNGLA", false),
        ("ÉTÉ", true),
        ("", false),
    ];
    for (word, expected) in upper {
        assert_eq!(is_python_upper(word), expected, "isupper {word:?}");
    }
    let lower = [
        ("GOOD", "good"),
        ("ΟΔΟΣ", "οδος"),
        ("ΣΑ", "σα"),
        ("İ", "i\u{307}"),
        ("ÉTÉ", "été"),
    ];
    for (word, expected) in lower {
        let mut out = String::new();
        push_lowercase(word, &mut out);
        assert_eq!(out, expected, "lower {word:?}");
    }
    let rounding = [
        (0.0625, 3, 0.062),
        (0.0635, 3, 0.064),
        (0.12345, 4, 0.1235),
        (-0.00004, 4, -0.0),
        (0.5, 0, 0.0),
        (1.5, 0, 2.0),
    ];
    for (x, digits, expected) in rounding {
        assert_eq!(round_half_even(x, digits), expected, "round({x}, {digits})");
    }
}
