//! A trie of needles walked from every word start of a text: the matcher's search for every
//! term that needs a word boundary on its left, which is every term except those written in a
//! script without spaces.
//!
//! # Input → output
//! [`StartTrie::build`] takes `(pattern, needle)` pairs once; [`StartTrie::for_each_match`]
//! reports, for a text, every `(pattern, start, end)` where a needle occurs starting at a
//! position with a word boundary on its left ([`is_boundary`] between the character there and
//! the one before it). That is exactly what an unanchored Aho-Corasick search followed by the
//! left-boundary check finds, without ever reporting the in-word hits the check would drop.
//!
//! # How a text is searched
//! 1. One pass over the bytes, without a branch per ASCII byte, collects the candidate starts:
//!    a byte some needle begins with, followed by a byte some such needle has second (a 64 Kib
//!    table of byte pairs), with a word boundary before it.
//! 2. A candidate survives if a needle of at most three bytes begins with its first two
//!    bytes, or if its first four bytes are, by a small Bloom filter, the start of a longer
//!    needle. At 1k needles about one candidate in ten survives; at 100k, one in three.
//! 3. A survivor for a short needle is walked from the root. Any other looks its first four
//!    bytes up in a hash table of the trie's depth-4 nodes, whose slots also hold the edge
//!    classes of up to two children, so a walk that dies on the fifth byte (most of them)
//!    never touches the nodes; the rest walk on from there.
//!
//! # Why not the Aho-Corasick DFA
//! A DFA over 100k needles is about 180 MB and takes most of a second to build, which broke
//! the rule-scale targets (100k rules compiled in ≤ 1 s and ≤ 300 MB); the contiguous NFA is
//! small but 25% slower. An unanchored automaton also steps through every byte of every word
//! and reports needles inside words only for the boundary check to drop them. Here the bytes
//! between word starts cost a table lookup each, most words end at the filters, and only
//! real prefixes of needles reach the trie, so the levels that do not fit a cache are touched
//! about twice per post at 100k needles. Building is one sort of the needles and one
//! breadth-first pass: at 100k needles about 0.1 s and 17 MB where the DFA took 0.8 s and
//! 180 MB, and the whole pipeline runs a little faster than with the DFA at 1k and 100k
//! (benches/NOTES.md, "Needle trie from word starts").
//!
//! # Invariants
//! - Needles are valid UTF-8 and so is the text, so a walk that matched a whole needle ends on
//!   a character boundary.
//! - Nothing here allocates after [`StartTrie::build`] or panics on any text.

use crate::stage::normalize::{
    char_at, char_before, is_boundary, is_unspaced_script, is_word_char,
};

/// No node, no pattern.
const NONE: u32 = u32::MAX;

/// A node with at least this many children gets a dense row.
const DENSE_MIN: usize = 6;
/// Marks `Node::meta` of a node whose children are a dense row.
const DENSE: u32 = 1 << 31;

/// Marks a depth-4 slot's copy of a node whose one or two children's edge classes are in
/// `meta` bits 0..8 and 16..24.
const FEW: u32 = 1 << 30;

/// One trie node, 12 bytes. The class of the byte on the edge into it is inside, so looking
/// for a child among sparse siblings reads the line the child itself is in.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// The pattern of the needle that ends here, or [`NONE`].
    pattern: u32,
    /// Sparse: index of the first child in `nodes` (children are contiguous, sorted by
    /// class). Dense: offset of the row in `dense`.
    first: u32,
    /// Bits 0..8: the class of the edge into this node. Bits 8..16: the child count of a
    /// sparse node. [`DENSE`]: the children are a dense row.
    meta: u32,
}

impl Node {
    const EMPTY: Node = Node {
        pattern: NONE,
        first: 0,
        meta: 0,
    };

    fn label(self) -> u8 {
        self.meta as u8
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct StartTrie {
    /// Byte → class; 0 for a byte no needle holds.
    class: [u8; 256],
    /// Bit `b0 << 8 | b1` is set when some needle starts with `b0 b1`, or is the single byte
    /// `b0`: the first filter, run on every byte.
    pairs: Box<[u64; 1024]>,
    /// Bit `b0 << 8 | b1` is set when some needle of at most three bytes starts with
    /// `b0 b1`, or is the single byte `b0`.
    short: Box<[u64; 1024]>,
    /// The first four bytes of the needles of four bytes or more, for
    /// [`StartTrie::may_start`]. With `short` it decides whether a walk can match: most word
    /// starts begin no needle, even at 100k needles, so most words cost a few bit tests
    /// instead of a walk into levels of the trie that do not fit a cache.
    prefixes: PrefixFilter,
    /// The depth-4 node of each needle's first four bytes, by those bytes (open addressing,
    /// linear probing, `(key, NONE)` for an empty slot): a walk that passes the filters
    /// starts there, skipping the four levels where walks that die spend their time.
    depth4: Box<[(u32, Node)]>,
    depth4_shift: u32,
    /// Breadth-first; the root is node 0.
    nodes: Vec<Node>,
    /// Dense rows of `classes` entries: child node or [`NONE`].
    dense: Vec<u32>,
}

impl StartTrie {
    /// Builds the trie of `needles`, `(pattern, bytes)`. An empty needle is ignored, and of
    /// equal needles only the one with the lowest pattern is reported.
    pub fn build(needles: &[(u32, &str)]) -> StartTrie {
        let mut class = [0u8; 256];
        let mut classes = 1usize;
        for (_, n) in needles {
            for &b in n.as_bytes() {
                if class[b as usize] == 0 {
                    // UTF-8 never holds 0xC0, 0xC1 or 0xF5..=0xFF, so at most 243 classes + 0.
                    class[b as usize] = classes as u8;
                    classes += 1;
                }
            }
        }
        let mut sorted: Vec<(&[u8], u32)> = needles
            .iter()
            .filter(|(_, n)| !n.is_empty())
            .map(|&(p, n)| (n.as_bytes(), p))
            .collect();
        sorted.sort_unstable();
        sorted.dedup_by(|a, b| a.0 == b.0);

        let set = |bits: &mut [u64], i: usize| bits[i >> 6] |= 1 << (i & 63);
        let mut short = Box::new([0u64; 1024]);
        let mut pairs = Box::new([0u64; 1024]);
        let mut prefixes =
            PrefixFilter::with_capacity(sorted.iter().filter(|(n, _)| n.len() >= 4).count());
        for (n, _) in &sorted {
            match *n {
                [b0] => (0..256).for_each(|b1| set(&mut pairs[..], (*b0 as usize) << 8 | b1)),
                [b0, b1, ..] => set(&mut pairs[..], (*b0 as usize) << 8 | *b1 as usize),
                [] => {}
            }
            match *n {
                [b0] => (0..256).for_each(|b1| set(&mut short[..], (*b0 as usize) << 8 | b1)),
                [b0, b1] | [b0, b1, _] => set(&mut short[..], (*b0 as usize) << 8 | *b1 as usize),
                [] => {}
                _ => prefixes.insert(n),
            }
        }
        let mut trie = StartTrie {
            class,
            pairs,
            short,
            prefixes,
            depth4: Box::new([]),
            depth4_shift: 0,
            nodes: vec![Node::EMPTY],
            dense: Vec::new(),
        };
        let mut depth4 = Vec::new();
        // Breadth first: each queued node owns the run of sorted needles that pass through it.
        let mut queue = std::collections::VecDeque::new();
        queue.push_back((0usize, 0usize, sorted.len(), 0usize));
        while let Some((node, mut lo, hi, depth)) = queue.pop_front() {
            if let Some(&(n, p)) = sorted.get(lo) {
                if n.len() == depth {
                    trie.nodes[node].pattern = p;
                    lo += 1;
                }
            }
            let first = trie.nodes.len();
            let mut i = lo;
            while i < hi {
                let b = sorted[i].0[depth];
                let mut j = i + 1;
                while j < hi && sorted[j].0[depth] == b {
                    j += 1;
                }
                trie.nodes.push(Node {
                    meta: u32::from(trie.class[b as usize]),
                    ..Node::EMPTY
                });
                let child = trie.nodes.len() - 1;
                if let (3, Some(&[b0, b1, b2, b3])) = (depth, sorted[i].0.get(..4)) {
                    depth4.push((u32::from_le_bytes([b0, b1, b2, b3]), child as u32));
                }
                queue.push_back((child, i, j, depth + 1));
                i = j;
            }
            let count = trie.nodes.len() - first;
            if count >= DENSE_MIN {
                let row = trie.dense.len();
                trie.dense.resize(row + classes, NONE);
                for child in first..trie.nodes.len() {
                    trie.dense[row + trie.nodes[child].label() as usize] = child as u32;
                }
                trie.nodes[node].first = row as u32;
                trie.nodes[node].meta |= DENSE;
            } else {
                trie.nodes[node].first = first as u32;
                trie.nodes[node].meta |= (count as u32) << 8;
            }
        }
        let slots = (depth4.len() * 2).next_power_of_two().max(16);
        trie.depth4_shift = 32 - slots.trailing_zeros();
        // A slot holds a copy of its node, so a walk starts without one more cache miss; and
        // since most walks that get this far die on the fifth byte, the slot also holds the
        // edge classes of up to two children in the bits of `meta` that name the node's own
        // (known from the key), so those walks never touch the nodes at all.
        let mut table = vec![(0u32, Node::EMPTY); slots].into_boxed_slice();
        for (q, node) in depth4 {
            let mut h = quad_hash(q, trie.depth4_shift);
            while table[h].1.meta != 0 {
                h = (h + 1) & (slots - 1);
            }
            let mut copy = trie.nodes[node as usize];
            let count = (copy.meta >> 8) as u8 as usize;
            if copy.meta & DENSE == 0 && (1..=2).contains(&count) {
                let first = copy.first as usize;
                let l0 = trie.nodes[first].label();
                let l1 = trie.nodes[first + count - 1].label();
                copy.meta = (copy.meta & !0xFF_00FF) | u32::from(l0) | u32::from(l1) << 16;
                copy.meta |= FEW;
            }
            table[h] = (q, copy);
        }
        trie.depth4 = table;
        trie.nodes.shrink_to_fit();
        trie.dense.shrink_to_fit();
        trie
    }

    /// The child of `node` on byte `b`, or [`NONE`].
    #[inline(always)]
    fn child(&self, node: Node, b: u8) -> u32 {
        let c = self.class[b as usize];
        if c == 0 {
            return NONE;
        }
        if node.meta & DENSE != 0 {
            return self
                .dense
                .get(node.first as usize + c as usize)
                .copied()
                .unwrap_or(NONE);
        }
        let first = node.first as usize;
        let len = (node.meta >> 8) as u8 as usize;
        let Some(siblings) = self.nodes.get(first..first + len) else {
            return NONE;
        };
        match siblings.iter().position(|n| n.label() == c) {
            Some(k) => (first + k) as u32,
            None => NONE,
        }
    }

    /// Calls `f(pattern, start, end)` for every needle occurring in `text` at a start with a
    /// word boundary on its left, in order of start, then end.
    ///
    /// Starts are collected a chunk at a time without a branch per ASCII byte (a start is a
    /// byte some needle begins with, followed by a byte that can come second, and not a word
    /// character or sigil right after a word character), then walked: a walk ends with a
    /// mispredicted branch, so the loop over bytes must not add one per word edge as well.
    #[inline]
    pub fn for_each_match(&self, text: &str, mut f: impl FnMut(u32, usize, usize)) {
        const CHUNK: usize = 256;
        let bytes = text.as_bytes();
        let mut starts = [0u32; CHUNK];
        // Whether the character before `i` is a word character of a script written with
        // spaces: then a word character or sigil at `i` continues its word.
        let mut prev_word = 0u8;
        let mut i = 0;
        while i < bytes.len() {
            let end = bytes.len().min(i + CHUNK);
            let mut n = 0;
            while i < end {
                let b = bytes[i];
                let may = self.pair(bytes, i);
                if b < 0x80 {
                    let edge = ASCII_EDGE[b as usize];
                    let start = may & (((edge >> 1) & prev_word) ^ 1);
                    starts[n] = i as u32;
                    n += start as usize;
                    prev_word = edge & WORD;
                    i += 1;
                } else {
                    let c = char_at(text, i).unwrap_or(char::REPLACEMENT_CHARACTER);
                    if may == 1 && is_boundary(c, char_before(text, i)) {
                        starts[n] = i as u32;
                        n += 1;
                    }
                    prev_word = u8::from(!is_unspaced_script(c) && is_word_char(c));
                    i += c.len_utf8();
                }
            }
            // Second filter, on the few word starts only: its table is larger.
            let mut m = 0;
            for k in 0..n {
                let s = starts[k];
                starts[m] = s;
                m += self.may_start(bytes, s as usize) as usize;
            }
            for &s in &starts[..m] {
                let s = s as usize;
                if self.short_at(bytes, s) == 1 {
                    if let Some(&root) = self.nodes.first() {
                        self.walk(bytes, s, root, s, &mut f);
                    }
                } else if let Some(&[a, b, c, d]) = bytes.get(s..s + 4) {
                    if let Some(node) = self.depth4_node(u32::from_le_bytes([a, b, c, d])) {
                        if node.pattern != NONE {
                            f(node.pattern, s, s + 4);
                        }
                        let next = bytes.get(s + 4).map_or(0, |&b| self.class[b as usize]);
                        let few = node.meta & FEW != 0;
                        // `child` reads neither the label bits nor FEW.
                        if next != 0
                            && (!few || next == node.meta as u8 || next == (node.meta >> 16) as u8)
                        {
                            self.walk(bytes, s, node, s + 4, &mut f);
                        }
                    }
                }
            }
        }
    }

    /// 1 when some needle starts with `bytes[i] bytes[i + 1]` or is `bytes[i]`, else 0.
    #[inline(always)]
    fn pair(&self, bytes: &[u8], i: usize) -> u8 {
        let b0 = bytes[i] as usize;
        let b1 = bytes.get(i + 1).copied().unwrap_or(0) as usize;
        let k = b0 << 8 | b1;
        ((self.pairs[k >> 6] >> (k & 63)) & 1) as u8
    }

    /// 1 when some needle of at most three bytes may start at `bytes[i]`, else 0.
    #[inline(always)]
    fn short_at(&self, bytes: &[u8], i: usize) -> u8 {
        let b0 = bytes.get(i).copied().unwrap_or(0) as usize;
        let b1 = bytes.get(i + 1).copied().unwrap_or(0) as usize;
        let k = b0 << 8 | b1;
        ((self.short[k >> 6] >> (k & 63)) & 1) as u8
    }

    /// 1 when some needle may start at `bytes[i]`, else 0 (see `short` and `prefixes`).
    #[inline(always)]
    fn may_start(&self, bytes: &[u8], i: usize) -> u8 {
        self.short_at(bytes, i) | self.prefixes.test(bytes.get(i..).unwrap_or_default())
    }

    /// The depth-4 node reached by the four bytes `q` (little-endian).
    #[inline(always)]
    fn depth4_node(&self, q: u32) -> Option<Node> {
        let mask = self.depth4.len() - 1;
        let mut h = quad_hash(q, self.depth4_shift);
        loop {
            let &(k, node) = self.depth4.get(h)?;
            if node.meta == 0 {
                return None;
            }
            if k == q {
                return Some(node);
            }
            h = (h + 1) & mask;
        }
    }

    /// Follows the trie from `n`, reached by `bytes[start..i]`, reporting each needle that
    /// ends on the way (not one that ends at `n`).
    #[inline(always)]
    fn walk(
        &self,
        bytes: &[u8],
        start: usize,
        mut n: Node,
        mut i: usize,
        f: &mut impl FnMut(u32, usize, usize),
    ) {
        while let Some(&b) = bytes.get(i) {
            let Some(&next) = self.nodes.get(self.child(n, b) as usize) else {
                return;
            };
            n = next;
            i += 1;
            if n.pattern != NONE {
                f(n.pattern, start, i);
            }
        }
    }

    /// Heap bytes held.
    pub fn memory_usage(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.prefixes.words.len() * 8
            + self.depth4.len() * std::mem::size_of::<(u32, Node)>()
            + self.dense.capacity() * 4
    }

    /// Number of nodes, root included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

/// The hash of the first four bytes, little-endian, of a needle: the depth-4 table's index.
#[inline(always)]
fn quad_hash(q: u32, shift: u32) -> usize {
    (q.wrapping_mul(0x9E37_79B1) >> shift) as usize
}

/// A blocked Bloom filter of the first four bytes of needles: two bits in one 64-bit word,
/// about 16 bits per needle, so near 2% false positives where a one-bit filter of 8 bits per
/// needle had 12%, for the same single load. At 100k needles it is 256 KiB and stays in L2.
#[derive(Debug, Clone)]
struct PrefixFilter {
    words: Box<[u64]>,
    /// `64 - log2(words.len())`: the top bits of a hash pick the word.
    shift: u32,
}

impl PrefixFilter {
    fn with_capacity(needles: usize) -> PrefixFilter {
        // From 256 B to 256 KiB.
        let words = (needles / 4).next_power_of_two().clamp(32, 1 << 15);
        PrefixFilter {
            words: vec![0; words].into_boxed_slice(),
            shift: 64 - words.trailing_zeros(),
        }
    }

    /// The word index and the two-bit mask of the first four bytes of `bytes`, or `None`
    /// when it is shorter.
    #[inline(always)]
    fn slot(&self, bytes: &[u8]) -> Option<(usize, u64)> {
        let &[a, b, c, d, ..] = bytes else {
            return None;
        };
        let h = u64::from(u32::from_le_bytes([a, b, c, d])).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mask = 1u64 << (h & 63) | 1u64 << ((h >> 6) & 63);
        Some(((h >> self.shift) as usize, mask))
    }

    fn insert(&mut self, needle: &[u8]) {
        if let Some((w, mask)) = self.slot(needle) {
            if let Some(word) = self.words.get_mut(w) {
                *word |= mask;
            }
        }
    }

    /// 1 when some needle starts with the first four bytes of `bytes`, probably; else 0.
    #[inline(always)]
    fn test(&self, bytes: &[u8]) -> u8 {
        match self.slot(bytes) {
            Some((w, mask)) => self
                .words
                .get(w)
                .map_or(0, |&word| u8::from(word & mask == mask)),
            None => 0,
        }
    }
}

/// [`ASCII_EDGE`] bit: a word character (`[0-9A-Za-z_]`).
const WORD: u8 = 1;
/// [`ASCII_EDGE`] bit: a word character or one of the sigils `#`, `@`, `$`, which start a
/// term only after a character that is not a word character (see [`is_boundary`]).
const NEEDS_BOUNDARY: u8 = 2;

/// Per ASCII byte: [`WORD`] and [`NEEDS_BOUNDARY`].
static ASCII_EDGE: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'_' {
            t[b] = WORD | NEEDS_BOUNDARY;
        } else if c == b'#' || c == b'@' || c == b'$' {
            t[b] = NEEDS_BOUNDARY;
        }
        b += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matches(needles: &[&str], text: &str) -> Vec<(u32, usize, usize)> {
        let pairs: Vec<(u32, &str)> = needles
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u32, *n))
            .collect();
        let trie = StartTrie::build(&pairs);
        let mut out = Vec::new();
        trie.for_each_match(text, |p, s, e| out.push((p, s, e)));
        out
    }

    #[test]
    fn walks_from_word_starts_only() {
        let n = ["acme", "acme corp", "cme", "#acme", "🔥"];
        assert_eq!(
            matches(&n, "acme corp"),
            vec![(0, 0, 4), (1, 0, 9)],
            "overlapping needles from one start; `cme` is inside a word"
        );
        assert_eq!(matches(&n, "pacmen"), vec![], "no start inside a word");
        assert_eq!(
            matches(&n, "#acmefail x"),
            vec![(3, 0, 5), (0, 1, 5)],
            "after a sigil a word starts"
        );
        assert_eq!(
            matches(&n, "acme🔥🔥"),
            vec![(0, 0, 4), (4, 4, 8), (4, 8, 12)],
            "a non-word edge needs no boundary"
        );
        assert_eq!(
            matches(&n, "x#acme"),
            vec![(0, 2, 6)],
            "a sigil after a word starts nothing; the word after it does"
        );
    }

    #[test]
    fn script_changes_and_dense_rows() {
        // Enough siblings under the root for a dense row.
        let n = ["a", "b", "c", "d", "e", "f", "g", "acme", "é"];
        let trie = StartTrie::build(
            &n.iter()
                .enumerate()
                .map(|(i, s)| (i as u32, *s))
                .collect::<Vec<_>>(),
        );
        assert_ne!(trie.nodes[0].meta & DENSE, 0);
        let mut out = Vec::new();
        trie.for_each_match("東京acme café", |p, s, e| out.push((p, s, e)));
        assert_eq!(out, vec![(0, 6, 7), (7, 6, 10), (2, 11, 12)]);
    }

    #[test]
    fn empty_and_missing() {
        assert_eq!(matches(&[], "anything"), vec![]);
        assert_eq!(matches(&["", "a"], "a"), vec![(1, 0, 1)]);
        assert_eq!(matches(&["abc"], ""), vec![]);
        assert_eq!(matches(&["abc"], "ab"), vec![]);
    }

    /// Every `(pattern, start, end)` by brute force: each needle at each char boundary with
    /// a left word boundary.
    fn reference(needles: &[String], text: &str) -> Vec<(u32, usize, usize)> {
        let mut first: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        for (i, n) in needles.iter().enumerate() {
            first.entry(n.as_str()).or_insert(i as u32);
        }
        let mut out = Vec::new();
        for (s, c) in text.char_indices() {
            if !is_boundary(c, char_before(text, s)) {
                continue;
            }
            for (i, n) in needles.iter().enumerate() {
                if !n.is_empty()
                    && text[s..].starts_with(n.as_str())
                    && first[n.as_str()] == i as u32
                {
                    out.push((i as u32, s, s + n.len()));
                }
            }
        }
        out.sort_unstable_by_key(|&(p, s, e)| (s, e, p));
        out
    }

    const PIECES: &[&str] = &[
        "a", "ac", "acm", "acme", "acmx", "b", "e", " ", "#", "@", "é", "東", "🔥", "x", "-", "1",
    ];

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 2000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Needles built from a few shared pieces give deep shared prefixes, nodes with one,
        /// two and many children (dense rows, the depth-4 slots' child classes) and short and
        /// long needles; texts from the same pieces hit them inside and across words.
        #[test]
        fn finds_what_brute_force_finds(
            needles in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(PIECES), 1..6)
                    .prop_map(|p| p.concat()),
                0..40,
            ),
            text in proptest::collection::vec(proptest::sample::select(PIECES), 0..120)
                .prop_map(|p| p.concat()),
        ) {
            let pairs: Vec<(u32, &str)> =
                needles.iter().enumerate().map(|(i, n)| (i as u32, n.as_str())).collect();
            let trie = StartTrie::build(&pairs);
            let mut got = Vec::new();
            trie.for_each_match(&text, |p, s, e| got.push((p, s, e)));
            got.sort_unstable_by_key(|&(p, s, e)| (s, e, p));
            prop_assert_eq!(got, reference(&needles, &text));
        }
    }
}
