//! Agreement with the reference implementation on a corpus of brand mentions.
//!
//! `core/tests/data/vader/texts.txt` holds hundreds of short posts written for this test
//! (complaints, praise, questions, sarcasm, negation, "but", caps, `!!!`/`???`, emoticons,
//! emoji with ZWJ and skin tones, idioms, curly apostrophes, URLs, handles, hashtags, other
//! languages, Unicode whitespace, near-empty lines). `make_golden.py` beside it scores them
//! with `vaderSentiment` 3.3.2 into `golden.tsv`. This test scores the same texts with the
//! embedded lexicon and requires label agreement on ≥ 99% of lines and |Δcompound| ≤ 0.001
//! on ≥ 98% (the port aims for, and at the time of writing reaches, exact agreement on every
//! line and every field; the slack only absorbs a regeneration on another Python, whose float
//! `sum()` may differ in the last bit). Every disagreement is listed in the failure message.

use super::*;

const TEXTS: &str = include_str!("../../../../tests/data/vader/texts.txt");
const GOLDEN: &str = include_str!("../../../../tests/data/vader/golden.tsv");
const HEADER: &str = "neg\tneu\tpos\tcompound\ttext";
/// Largest difference counted as agreement on a score.
const TOLERANCE: f64 = 0.001;

/// One golden row: the reference's scores of one text.
struct Row<'a> {
    line: usize,
    text: &'a str,
    expected: Polarity,
}

fn golden_rows() -> Vec<Row<'static>> {
    let mut lines = GOLDEN.split('\n').enumerate();
    assert_eq!(
        lines.next().map(|(_, l)| l),
        Some(HEADER),
        "golden.tsv header"
    );
    let mut rows = Vec::new();
    for (n, line) in lines {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.splitn(5, '\t').collect();
        let number = |i: usize| -> f64 {
            match fields.get(i).map(|f| f.parse::<f64>()) {
                Some(Ok(v)) => v,
                _ => panic!(
                    "golden.tsv:{}: field {} is not a number: {line:?}",
                    n + 1,
                    i + 1
                ),
            }
        };
        let expected = Polarity {
            neg: number(0),
            neu: number(1),
            pos: number(2),
            compound: number(3),
        };
        let Some(text) = fields.get(4) else {
            panic!("golden.tsv:{}: no text field", n + 1);
        };
        rows.push(Row {
            line: n + 1,
            text,
            expected,
        });
    }
    rows
}

#[test]
fn golden_file_is_fresh_and_large_enough() {
    let texts: Vec<&str> = TEXTS
        .strip_suffix('\n')
        .unwrap_or(TEXTS)
        .split('\n')
        .collect();
    let golden: Vec<&str> = golden_rows().iter().map(|r| r.text).collect();
    assert!(
        texts.len() >= 400,
        "texts.txt has {} lines, want at least 400",
        texts.len()
    );
    assert_eq!(
        texts, golden,
        "golden.tsv does not match texts.txt: run core/tests/data/vader/make_golden.py"
    );
}

#[test]
fn agrees_with_reference_vader() {
    let lexicon = SentimentLexicon::embedded();
    let mut scratch = SentimentScratch::new();
    let rows = golden_rows();
    let (mut label_agree, mut compound_agree, mut shares_agree) = (0, 0, 0);
    let mut disagreements = Vec::new();
    for row in &rows {
        let got = lexicon.polarity_with(row.text, &mut scratch);
        let want = row.expected;
        let same_label = got.label() == want.label();
        let close = |a: f64, b: f64| (a - b).abs() <= TOLERANCE;
        let same_compound = close(got.compound, want.compound);
        let same_shares =
            close(got.neg, want.neg) && close(got.neu, want.neu) && close(got.pos, want.pos);
        label_agree += usize::from(same_label);
        compound_agree += usize::from(same_compound);
        shares_agree += usize::from(same_shares);
        if got != want {
            disagreements.push(format!(
                "golden.tsv:{} {:?}\n    reference {want:?} ({})\n    earshot   {got:?} ({})",
                row.line,
                row.text,
                want.label().as_str(),
                got.label().as_str(),
            ));
        }
    }
    let n = rows.len();
    let share = |k: usize| k as f64 / n as f64;
    let summary = format!(
        "{n} texts: labels agree on {label_agree}, compound within {TOLERANCE} on \
         {compound_agree}, neg/neu/pos within {TOLERANCE} on {shares_agree}; {} differ at all:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert!(
        share(label_agree) >= 0.99,
        "label agreement below 99%. {summary}"
    );
    assert!(
        share(compound_agree) >= 0.98,
        "compound agreement below 98%. {summary}"
    );
    assert!(
        share(shares_agree) >= 0.98,
        "neg/neu/pos agreement below 98%. {summary}"
    );
    if !disagreements.is_empty() {
        // Within the thresholds, but worth seeing with `--nocapture`.
        eprintln!("{summary}");
    }
}
