//! Language detection candidates on labelled short texts: accuracy per language and overall,
//! and the time each takes per text, in one run.
//!
//! ```sh
//! cargo run --release -p earshot-benches --bin langid-eval -- benches/data/langid/tatoeba-testset.tsv
//! ```
//!
//! The file is `id<TAB>ISO 639-3 code<TAB>text` lines (see `benches/data/langid/SOURCES.md`).
//! A detector that cannot name a language it does not know (whichlang has 16) is scored on
//! every line all the same: a post in Catalan that it calls Spanish would route as Spanish.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;

/// What a detector says of a text: an ISO 639-3 code, or `None` when it will not say.
type Detect = fn(&str) -> Option<&'static str>;

fn whatlang_detect(text: &str) -> Option<&'static str> {
    whatlang::detect(text).map(|info| info.lang().code())
}

fn whatlang_reliable(text: &str) -> Option<&'static str> {
    whatlang::detect(text)
        .filter(whatlang::Info::is_reliable)
        .map(|info| info.lang().code())
}

fn whichlang_detect(text: &str) -> Option<&'static str> {
    Some(whichlang::detect_language(text).three_letter_code())
}

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "benches/data/langid/tatoeba-testset.tsv".into());
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let lines: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, '\t');
            let (_, lang, text) = (parts.next()?, parts.next()?, parts.next()?);
            Some((lang, text))
        })
        .collect();
    let candidates: [(&str, Detect); 3] = [
        ("whatlang 0.18", whatlang_detect),
        ("whatlang 0.18, reliable only", whatlang_reliable),
        ("whichlang 0.1", whichlang_detect),
    ];
    let rounds = 5;
    println!("{} texts, {} rounds each", lines.len(), rounds);
    for (name, detect) in candidates {
        let mut right: BTreeMap<&str, (u32, u32, u32)> = BTreeMap::new();
        for (lang, text) in &lines {
            let got = detect(text);
            let e = right.entry(lang).or_default();
            e.0 += 1;
            if got.is_none() {
                e.2 += 1;
            } else if got == Some(*lang) || (*lang == "cmn" && got == Some("zho")) {
                e.1 += 1;
            }
        }
        let mut best = f64::MAX;
        for _ in 0..rounds {
            let started = Instant::now();
            let mut said = 0usize;
            for (_, text) in &lines {
                said += usize::from(std::hint::black_box(detect(text)).is_some());
            }
            std::hint::black_box(said);
            best = best.min(started.elapsed().as_secs_f64());
        }
        let (n, ok, silent) = right
            .values()
            .fold((0, 0, 0), |a, v| (a.0 + v.0, a.1 + v.1, a.2 + v.2));
        println!(
            "\n{name}: {:.1}% right, {:.1}% no answer, {:.2} µs per text",
            100.0 * f64::from(ok) / f64::from(n),
            100.0 * f64::from(silent) / f64::from(n),
            best * 1e6 / lines.len() as f64
        );
        for (lang, (n, ok, silent)) in &right {
            println!(
                "  {lang}: {:.0}% right, {:.0}% no answer",
                100.0 * f64::from(*ok) / f64::from(*n),
                100.0 * f64::from(*silent) / f64::from(*n)
            );
        }
    }
    Ok(())
}
