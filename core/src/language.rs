//! Language detection for posts that declare none.
//!
//! Most Bluesky, X and Mastodon posts declare a language, but Reddit posts never do and many
//! clients leave it out; a `lang:` condition or a route by language would never match them.
//! earshot detects a language only where one is needed: for a post without a declared
//! language, when a candidate rule has a `lang:` condition (the matcher asks, once per post)
//! or when a matched post is routed by routes that filter on language.
//!
//! Why whichlang: on 2,000 labelled Tatoeba sentences in ten languages
//! (`benches/data/langid/`, `langid-eval` in `benches/`), whichlang named 99.5% of the eight
//! it knows right in 0.33 µs a text; whatlang got 76% of all in 35 µs (84% of English) and
//! lingua 88% in 134 µs with tens of megabytes of models (`benches/NOTES.md`). Its limit is
//! its 16 languages ([`DETECTED`]): a post in another language is called one of them, so a
//! rule on a language outside the list matches declared languages only (`earshot check` says
//! so).
//!
//! Short texts say too little: a text with fewer than [`MIN_LETTERS`] letters once links,
//! @handles and #tags are set aside gets no language.

/// The languages detection can name, as the primary subtags posts declare (`en`, `pt`).
pub const DETECTED: [&str; 16] = [
    "ar", "zh", "de", "en", "fr", "hi", "it", "ja", "ko", "nl", "pt", "ru", "es", "sv", "tr", "vi",
];

/// Fewest letters (after links, handles and tags are left out) a text needs for a language;
/// a CJK character counts as three, since one says as much as a short word.
pub const MIN_LETTERS: usize = 12;

/// Longest text looked at, in bytes: the language of a post shows in its first paragraph,
/// and the cost of a crafted megabyte post stays that of an ordinary one.
const MAX_BYTES: usize = 2048;

/// The language of `text`, as a primary subtag of [`DETECTED`], or `None` when the text is
/// too short to tell.
pub fn detect(text: &str) -> Option<&'static str> {
    let mut kept = String::with_capacity(text.len().min(MAX_BYTES));
    let mut letters = 0usize;
    for word in text.split_whitespace() {
        if kept.len() >= MAX_BYTES {
            break;
        }
        let skip = word.starts_with('@')
            || word.starts_with('#')
            || word.starts_with("http://")
            || word.starts_with("https://")
            || word.starts_with("www.");
        if skip {
            continue;
        }
        for c in word.chars() {
            if c.is_alphabetic() {
                letters += if is_cjk(c) { 3 } else { 1 };
            }
        }
        kept.push_str(word);
        kept.push(' ');
    }
    if letters < MIN_LETTERS {
        return None;
    }
    Some(subtag(whichlang::detect_language(&kept)))
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF       // kana
        | 0x3400..=0x4DBF     // CJK extension A
        | 0x4E00..=0x9FFF     // CJK unified ideographs
        | 0xAC00..=0xD7AF     // Hangul syllables
        | 0xF900..=0xFAFF)
}

fn subtag(lang: whichlang::Lang) -> &'static str {
    use whichlang::Lang;
    match lang {
        Lang::Ara => "ar",
        Lang::Cmn => "zh",
        Lang::Deu => "de",
        Lang::Eng => "en",
        Lang::Fra => "fr",
        Lang::Hin => "hi",
        Lang::Ita => "it",
        Lang::Jpn => "ja",
        Lang::Kor => "ko",
        Lang::Nld => "nl",
        Lang::Por => "pt",
        Lang::Rus => "ru",
        Lang::Spa => "es",
        Lang::Swe => "sv",
        Lang::Tur => "tr",
        Lang::Vie => "vi",
    }
}

/// Whether detection can name `lang` (a primary subtag, any case).
pub fn detectable(lang: &str) -> bool {
    let primary = lang.split(['-', '_']).next().unwrap_or(lang);
    DETECTED.iter().any(|d| d.eq_ignore_ascii_case(primary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_get_the_language_they_are_written_in() {
        let cases = [
            (
                "my rocket skates arrived broken and nobody at support answers",
                Some("en"),
            ),
            (
                "mis patines llegaron rotos y nadie en soporte contesta",
                Some("es"),
            ),
            (
                "meus patins chegaram quebrados e ninguém do suporte responde",
                Some("pt"),
            ),
            (
                "meine Rollschuhe kamen kaputt an und der Support antwortet nicht",
                Some("de"),
            ),
            ("注文したスケートが壊れて届きました", Some("ja")),
            ("@acmehq https://acme.example/orders/1 #fail", None),
            ("ok thanks", None),
        ];
        for (text, want) in cases {
            assert_eq!(detect(text), want, "{text}");
        }
    }

    #[test]
    fn links_and_handles_do_not_make_a_post_english() {
        let text = "@acmehq.bsky.social https://acme.example/support/tickets/88412 \
                    mis patines llegaron rotos, quiero un reembolso";
        assert_eq!(detect(text), Some("es"));
    }

    #[test]
    fn which_languages_can_be_detected() {
        assert!(detectable("pt-BR") && detectable("EN") && !detectable("ca"));
        let huge = "quiero un reembolso por mis patines rotos ".repeat(200_000);
        assert_eq!(detect(&huge), Some("es"), "only the first bytes are read");
    }
}
