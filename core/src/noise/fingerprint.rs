//! SimHash fingerprints of mention texts: text → 64-bit fingerprint, so that near-identical
//! texts (a copy-paste campaign, a bot network) land a few bits apart.
//!
//! # Features
//! The text is split on whitespace. Tokens that are links (`https://…`, `www.…`, a bare
//! `acme.example/…` as Bluesky shows a shortened link) or handles (`@…`) are dropped, so
//! "the same text with a different link or a different @mention" is the same text. What is
//! left is lowercased and cut into words at every character that is not alphanumeric
//! (`#acme` → `acme`, `don't` → `don`, `t`). The features are every word and every pair of
//! adjacent words, each weighing one: one changed word in a text of `n` words changes 3 of
//! `2n − 1` features, so a long text stays close to its original (unigrams alone would weigh
//! the same change as heavily, and word 3-shingles three times as heavily).
//!
//! # Determinism
//! Fingerprints are compared across restarts (a held storm's key is its fingerprint), so the
//! hash is fixed here rather than borrowed from a hasher whose output may change between
//! versions: FNV-1a over the UTF-8 of each lowercased word, finished with the MurmurHash3
//! 64-bit mixer so that every output bit depends on every input bit, as SimHash needs.
//!
//! Texts of fewer than [`MIN_WORDS`] words have no fingerprint: two short posts ("love it
//! @acme", "love it!") match each other far too easily to be called a storm.

/// Fewest words a text needs to get a fingerprint (see the module documentation).
pub const MIN_WORDS: usize = 4;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Mixed into the hash of a word pair so that a pair never hashes like a single word.
const PAIR_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

/// MurmurHash3's 64-bit finalizer: spreads every input bit over every output bit.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// Whether a whitespace-separated token is a link or a handle, which a storm's copies vary.
fn is_link_or_handle(token: &str) -> bool {
    if token.starts_with('@') {
        return true;
    }
    let lower_starts = |prefix: &str| {
        token
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    if token.contains("://") || lower_starts("www.") {
        return true;
    }
    // A bare `host.tld/path`: a dot, then later a slash.
    match (token.find('.'), token.rfind('/')) {
        (Some(dot), Some(slash)) => dot > 0 && dot < slash,
        _ => false,
    }
}

/// Calls `on_word` with the FNV-1a hash of every word of `text`, lowercased, in order
/// (links and handles left out), without allocating.
fn for_each_word(text: &str, mut on_word: impl FnMut(u64)) {
    for token in text.split_whitespace() {
        if is_link_or_handle(token) {
            continue;
        }
        let mut hash = FNV_OFFSET;
        let mut in_word = false;
        for c in token.chars() {
            if c.is_alphanumeric() {
                in_word = true;
                for lower in c.to_lowercase() {
                    let mut utf8 = [0u8; 4];
                    for &b in lower.encode_utf8(&mut utf8).as_bytes() {
                        hash = (hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
                    }
                }
            } else if in_word {
                on_word(hash);
                hash = FNV_OFFSET;
                in_word = false;
            }
        }
        if in_word {
            on_word(hash);
        }
    }
}

/// The number of words [`simhash`] counts in `text`.
pub fn word_count(text: &str) -> usize {
    let mut n = 0;
    for_each_word(text, |_| n += 1);
    n
}

/// The 64-bit SimHash of `text`, or `None` when it has fewer than [`MIN_WORDS`] words.
///
/// Each feature's hash votes +1 on the bits it has set and −1 on the others; the fingerprint
/// has the bits whose vote is positive. Texts that share most features share most bits.
pub fn simhash(text: &str) -> Option<u64> {
    let mut votes = [0i32; 64];
    let mut words = 0usize;
    let mut previous: Option<u64> = None;
    let mut vote = |feature: u64| {
        for (bit, v) in votes.iter_mut().enumerate() {
            if feature >> bit & 1 == 1 {
                *v += 1;
            } else {
                *v -= 1;
            }
        }
    };
    for_each_word(text, |word| {
        words += 1;
        vote(mix(word));
        if let Some(prev) = previous {
            vote(mix(prev.rotate_left(17) ^ word ^ PAIR_SALT));
        }
        previous = Some(word);
    });
    if words < MIN_WORDS {
        return None;
    }
    let mut fingerprint = 0u64;
    for (bit, v) in votes.iter().enumerate() {
        if *v > 0 {
            fingerprint |= 1 << bit;
        }
    }
    Some(fingerprint)
}

/// The number of bits in which two fingerprints differ.
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}
