//! Mastodon HTML → text on any string: never a panic, links obey the post rules, and the
//! text stays within a small multiple of the HTML (no blow-up from breaks or references).
#![no_main]

use earshot::post::{MAX_LINKS, MAX_LINK_BYTES};
use earshot::stage::decode::html_to_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(html) = std::str::from_utf8(data) else {
        return;
    };
    let mut out = String::from("prefix");
    let (links, link) = html_to_text(html, &mut out);
    assert!(out.starts_with("prefix"), "the output's prefix was changed");
    assert!(
        out.len() <= 6 + 2 * html.len() + 2,
        "text of {} bytes from {} bytes of HTML",
        out.len(),
        html.len()
    );
    assert!(links.len() <= MAX_LINKS);
    assert!(links.iter().all(|l| l.len() <= MAX_LINK_BYTES));
    if !links.is_empty() {
        assert!(link, "links without the link fact");
    }
});
