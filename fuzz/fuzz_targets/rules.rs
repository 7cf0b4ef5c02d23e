//! The rule-file parser on any text: a rule set or located errors, never a panic; a rule set
//! that loads compiles into a matcher (or a matcher error), and the matcher runs on a post
//! whose text is the rule file itself, so its own terms are there to be found.
#![no_main]

use earshot::normalize::{normalize, Normalized};
use earshot::rules::RuleSet;
use earshot::stage::matcher::{MatchScratch, Matcher};
use earshot_fuzz::{names_a_device, nowhere, post_with_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if names_a_device(text) {
        return;
    }
    let set = match RuleSet::parse_str("fuzz.rules", text, nowhere()) {
        Ok(set) => set,
        Err(errors) => {
            assert!(!errors.is_empty(), "an error result without errors");
            for e in errors.iter() {
                let _ = e.to_string();
            }
            return;
        }
    };
    let Ok(matcher) = Matcher::build(&set) else {
        return;
    };
    let post = post_with_text(text);
    let mut norm = Normalized::new();
    normalize(text, &mut norm);
    let mut hits = Vec::new();
    matcher.match_post(&post, &norm, &mut MatchScratch::new(), &mut hits);
    for hit in &hits {
        assert!((hit.rule as usize) < set.rules().len());
        assert!((hit.brand as usize) < set.brands().len());
    }
});
