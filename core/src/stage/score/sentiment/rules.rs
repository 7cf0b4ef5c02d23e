//! VADER's fixed word lists and constants: boosters and dampeners, negations, special-case
//! idioms. In the reference implementation (`vaderSentiment` 3.3.2, `vaderSentiment.py`) these
//! are code, not lexicon files, so they are code here too; the values and lists are copied
//! unchanged. `match` on string slices keeps every look-up free of allocation and hashing.
//!
//! All functions take *lowercased* tokens, as the reference compares `word.lower()`.

/// Empirically derived mean rating increase for a booster word ("very good").
pub(super) const B_INCR: f64 = 0.293;
/// Empirically derived mean rating decrease for a dampener word ("kind of good").
pub(super) const B_DECR: f64 = -0.293;
/// Empirically derived mean rating increase for an ALL-CAPS word in mixed-case text.
pub(super) const C_INCR: f64 = 0.733;
/// Factor a negation applies to the valence it negates.
pub(super) const N_SCALAR: f64 = -0.74;
/// Normalisation constant of the compound score: `x / sqrt(x² + ALPHA)`, approximating the
/// largest expected raw sum.
pub(super) const ALPHA: f64 = 15.0;
/// Rating increase per exclamation mark, counted up to [`MAX_EXCLAMATIONS`].
pub(super) const EXCLAMATION_INCR: f64 = 0.292;
/// Exclamation marks past this many add nothing.
pub(super) const MAX_EXCLAMATIONS: usize = 4;
/// Rating increase per question mark when there are two or three.
pub(super) const QUESTION_INCR: f64 = 0.18;
/// Rating increase for four or more question marks.
pub(super) const QUESTION_MAX: f64 = 0.96;

/// The booster or dampener value of a single token (`BOOSTER_DICT` without its multi-word keys,
/// which a single whitespace-free token can never equal; see [`booster_bigram`]).
pub(super) fn booster(word: &str) -> Option<f64> {
    let value = match word {
        "absolutely" | "amazingly" | "awfully" | "completely" | "considerable" | "considerably"
        | "decidedly" | "deeply" | "effing" | "enormous" | "enormously" | "entirely"
        | "especially" | "exceptional" | "exceptionally" | "extreme" | "extremely"
        | "fabulously" | "flipping" | "flippin" | "frackin" | "fracking" | "fricking"
        | "frickin" | "frigging" | "friggin" | "fully" | "fuckin" | "fucking" | "fuggin"
        | "fugging" | "greatly" | "hella" | "highly" | "hugely" | "incredible" | "incredibly"
        | "intensely" | "major" | "majorly" | "more" | "most" | "particularly" | "purely"
        | "quite" | "really" | "remarkably" | "so" | "substantially" | "thoroughly" | "total"
        | "totally" | "tremendous" | "tremendously" | "uber" | "unbelievably" | "unusually"
        | "utter" | "utterly" | "very" => B_INCR,
        "almost" | "barely" | "hardly" | "kinda" | "kindof" | "kind-of" | "less" | "little"
        | "marginal" | "marginally" | "occasional" | "occasionally" | "partly" | "scarce"
        | "scarcely" | "slight" | "slightly" | "somewhat" | "sorta" | "sortof" | "sort-of" => {
            B_DECR
        }
        _ => return None,
    };
    Some(value)
}

/// The value of the two-word keys of `BOOSTER_DICT` ("just enough", "kind of", "sort of").
/// The reference looks them up as the space-joined pair; tokens hold no whitespace, so
/// comparing the pair is the same test.
pub(super) fn booster_bigram(first: &str, second: &str) -> Option<f64> {
    match (first, second) {
        ("just", "enough") | ("kind", "of") | ("sort", "of") => Some(B_DECR),
        _ => None,
    }
}

/// Whether a token negates what follows (`negated([word])` of the reference: membership in
/// `NEGATE`, or any token containing `n't`). Only the ASCII apostrophe counts, as in the
/// reference: "don’t" with a curly apostrophe is not a negation there either.
pub(super) fn is_negation(word: &str) -> bool {
    matches!(
        word,
        "aint"
            | "arent"
            | "cannot"
            | "cant"
            | "couldnt"
            | "darent"
            | "didnt"
            | "doesnt"
            | "ain't"
            | "aren't"
            | "can't"
            | "couldn't"
            | "daren't"
            | "didn't"
            | "doesn't"
            | "dont"
            | "hadnt"
            | "hasnt"
            | "havent"
            | "isnt"
            | "mightnt"
            | "mustnt"
            | "neither"
            | "don't"
            | "hadn't"
            | "hasn't"
            | "haven't"
            | "isn't"
            | "mightn't"
            | "mustn't"
            | "neednt"
            | "needn't"
            | "never"
            | "none"
            | "nope"
            | "nor"
            | "not"
            | "nothing"
            | "nowhere"
            | "oughtnt"
            | "shant"
            | "shouldnt"
            | "uhuh"
            | "wasnt"
            | "werent"
            | "oughtn't"
            | "shan't"
            | "shouldn't"
            | "uh-uh"
            | "wasn't"
            | "weren't"
            | "without"
            | "wont"
            | "wouldnt"
            | "won't"
            | "wouldn't"
            | "rarely"
            | "seldom"
            | "despite"
    ) || word.contains("n't")
}

/// The valence a special-case idiom sets (`SPECIAL_CASES`), given its words in order.
///
/// The reference joins 2 or 3 tokens with spaces and looks the string up; since tokens hold no
/// whitespace, matching the token slice is the same test. Its single-word key `badass` can
/// never equal a joined n-gram and so never fires there; it is left out here for that reason.
pub(super) fn special_case(words: &[&str]) -> Option<f64> {
    match words {
        ["the", "shit"] | ["the", "bomb"] | ["to", "die", "for"] => Some(3.0),
        ["bad", "ass"] => Some(1.5),
        ["bus", "stop"] => Some(0.0),
        ["yeah", "right"] => Some(-2.0),
        ["kiss", "of", "death"] => Some(-1.5),
        ["beating", "heart"] => Some(3.5),
        _ => None,
    }
}
