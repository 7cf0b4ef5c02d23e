//! A trie of needles walked from every word start of a text: the matcher's search for every
//! term that needs a word boundary on its left, which is every term except those written in a
//! script without spaces.
//!
//! # Input → output
//! [`StartTrie::build`] takes the needles once, each open (a prefix term, found even inside a
//! longer word) or closed. [`StartTrie::for_each_match`] reports, for a text and its
//! hashtag and handle tokens, every `(pattern, start, end)` where a needle occurs starting at
//! a position with a word boundary on its left ([`is_boundary`] between the character there
//! and the one before it) that the matcher can keep: the needle is open, or a word boundary
//! follows it, or it lies inside a hashtag or handle token (`#acmefail`). It may report other
//! occurrences at word starts too, which the matcher's boundary check drops; it never reports
//! one inside a word.
//!
//! # How a text is searched
//! 1. One pass over the bytes, without a branch per ASCII byte, collects the candidate starts:
//!    a byte some needle begins with, followed by a byte some such needle has second (a 64 Kib
//!    table of byte pairs), with a word boundary before it.
//! 2. A candidate survives if a needle of at most three bytes begins with its first two
//!    bytes, or if, by small Bloom filters, its first run (the word up to the first byte that
//!    is not an ASCII word byte, at most eight bytes) is the first run of a closed needle, or
//!    its first four bytes begin an open needle, or, inside a hashtag or handle token, any
//!    needle. Whole runs are what keep rule count from costing throughput: at 100k needles a
//!    post's words share their first four bytes with some needle about 4.4 times, but their
//!    whole first run only 0.16 times.
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
//! words whose whole first run begins a needle reach the trie, so the levels that do not fit
//! a cache are touched about 0.6 times per post at 100k needles. Building is one sort of the
//! needles and one depth-first pass: at 100k needles about 0.1 s and 17 MB where the DFA took
//! 0.8 s and 180 MB (benches/NOTES.md, "Needle trie from word starts" and "Whole-word
//! filter").
//!
//! # Invariants
//! - Needles are valid UTF-8 and so is the text, so a walk that matched a whole needle ends on
//!   a character boundary.
//! - Nothing here allocates after [`StartTrie::build`] or panics on any text.

use crate::normalize::{
    char_at, char_before, is_boundary, is_unspaced_script, is_word_char, Token, TokenKind,
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
    /// The [`first_run`] of each closed needle of four bytes or more, for
    /// [`StartTrie::may_start`]. With `short` and `open` it decides whether a walk can find a
    /// needle the matcher keeps: most word starts begin no needle, even at 100k needles, so
    /// most words cost a few bit tests instead of a walk into levels of the trie that do not
    /// fit a cache.
    runs: KeyFilter,
    /// The first four bytes of each open needle of four bytes or more (a prefix term): it may
    /// end inside a word, so the whole-word test cannot rule it out.
    open: KeyFilter,
    /// The first four bytes of every needle of four bytes or more, for starts inside a
    /// hashtag or handle token, where a word term may end inside a word (`#acmefail`).
    prefixes: KeyFilter,
    /// The depth-4 node of each needle's first four bytes, by those bytes (open addressing,
    /// linear probing, `(key, NONE)` for an empty slot): a walk that passes the filters
    /// starts there, skipping the four levels where walks that die spend their time.
    depth4: Box<[(u32, Node)]>,
    depth4_shift: u32,
    /// Each node's children together, placed depth first; the root is node 0.
    nodes: Vec<Node>,
    /// Dense rows of `classes` entries: child node or [`NONE`].
    dense: Vec<u32>,
}

impl StartTrie {
    /// Builds the trie of `needles`. An empty needle is ignored, and of equal needles only the
    /// one with the lowest pattern is reported (open if any of them is).
    pub fn build(needles: &[Needle<'_>]) -> StartTrie {
        let mut class = [0u8; 256];
        let mut classes = 1usize;
        for n in needles {
            for &b in n.text.as_bytes() {
                if class[b as usize] == 0 {
                    // UTF-8 never holds 0xC0, 0xC1 or 0xF5..=0xFF, so at most 243 classes + 0.
                    class[b as usize] = classes as u8;
                    classes += 1;
                }
            }
        }
        let mut sorted: Vec<(&[u8], u32)> = needles
            .iter()
            .filter(|n| !n.text.is_empty())
            .map(|n| (n.text.as_bytes(), n.pattern))
            .collect();
        sorted.sort_unstable();
        sorted.dedup_by(|a, b| a.0 == b.0);

        let set = |bits: &mut [u64], i: usize| bits[i >> 6] |= 1 << (i & 63);
        let mut short = Box::new([0u64; 1024]);
        let mut pairs = Box::new([0u64; 1024]);
        let long = |n: &&Needle<'_>| n.text.len() >= 4;
        let mut runs = KeyFilter::with_capacity(needles.iter().filter(long).count());
        let mut open =
            KeyFilter::with_capacity(needles.iter().filter(long).filter(|n| n.open).count());
        let mut prefixes = KeyFilter::with_capacity(needles.iter().filter(long).count());
        for n in needles.iter().filter(long) {
            let n4 = quad(n.text.as_bytes());
            prefixes.insert(n4);
            if n.open {
                open.insert(n4);
            } else {
                runs.insert(first_run(n.text.as_bytes()));
            }
        }
        for (n, _) in &sorted {
            match *n {
                [b0] => (0..256).for_each(|b1| set(&mut pairs[..], (*b0 as usize) << 8 | b1)),
                [b0, b1, ..] => set(&mut pairs[..], (*b0 as usize) << 8 | *b1 as usize),
                [] => {}
            }
            match *n {
                [b0] => (0..256).for_each(|b1| set(&mut short[..], (*b0 as usize) << 8 | b1)),
                [b0, b1] | [b0, b1, _] => set(&mut short[..], (*b0 as usize) << 8 | *b1 as usize),
                _ => {}
            }
        }
        let mut trie = StartTrie {
            class,
            pairs,
            short,
            runs,
            open,
            prefixes,
            depth4: Box::new([]),
            depth4_shift: 0,
            nodes: vec![Node::EMPTY],
            dense: Vec::new(),
        };
        let mut depth4 = Vec::new();
        // Depth first, each node's children placed together when it is visited: each stacked
        // node owns the run of sorted needles that pass through it. A chain of single
        // children, the tail of most needles, then lies in consecutive nodes, so a walk
        // along a long needle reads a few cache lines instead of one per byte.
        let mut stack = vec![(0usize, 0usize, sorted.len(), 0usize)];
        let mut children = Vec::new();
        while let Some((node, mut lo, hi, depth)) = stack.pop() {
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
                children.push((child, i, j, depth + 1));
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
            // The first child is visited next.
            stack.extend(children.drain(..).rev());
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

    /// Calls `f(pattern, start, end)`, in order of start, then end, for every needle occurring
    /// in `text` at a start with a word boundary on its left that is open, or followed by a
    /// word boundary, or inside one of the hashtag or handle `tokens` (the text's, in order);
    /// and maybe for other needles at such starts (see the module docs).
    ///
    /// Starts are collected a chunk at a time without a branch per ASCII byte (a start is a
    /// byte some needle begins with, followed by a byte that can come second, and not a word
    /// character or sigil right after a word character), then walked: a walk ends with a
    /// mispredicted branch, so the loop over bytes must not add one per word edge as well.
    #[inline]
    pub fn for_each_match(
        &self,
        text: &str,
        tokens: &[Token],
        mut f: impl FnMut(u32, usize, usize),
    ) {
        const CHUNK: usize = 256;
        let bytes = text.as_bytes();
        let mut starts = [0u32; CHUNK];
        let mut inside = InsideTokens { tokens, next: 0 };
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
            // Second filter, on the few word starts only: its tables are larger.
            let mut m = 0;
            for k in 0..n {
                let s = starts[k];
                starts[m] = s;
                m += self.may_start(bytes, s as usize, &mut inside) as usize;
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

    /// 1 when a needle the matcher may keep can start at `bytes[i]`, else 0: a short one, an
    /// open one, a closed one whose first run is the text's there, or, inside a hashtag or
    /// handle token, any.
    #[inline(always)]
    fn may_start(&self, bytes: &[u8], i: usize, inside: &mut InsideTokens<'_>) -> u8 {
        let rest = bytes.get(i..).unwrap_or_default();
        let q = quad(rest);
        let mut may = self.short_at(bytes, i)
            | self.runs.test(first_run(rest))
            | (self.open.test(q) & u8::from(rest.len() >= 4));
        // Rare, and its table is cold: a branch.
        if inside.contains(i) {
            may |= self.prefixes.test(q) & u8::from(rest.len() >= 4);
        }
        may
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
            + (self.runs.words.len() + self.open.words.len() + self.prefixes.words.len()) * 8
            + self.depth4.len() * std::mem::size_of::<(u32, Node)>()
            + self.dense.capacity() * 4
    }
}

/// The hash of the first four bytes, little-endian, of a needle: the depth-4 table's index.
#[inline(always)]
fn quad_hash(q: u32, shift: u32) -> usize {
    (q.wrapping_mul(0x9E37_79B1) >> shift) as usize
}

/// A needle for [`StartTrie::build`].
#[derive(Debug, Clone, Copy)]
pub struct Needle<'a> {
    /// What [`StartTrie::for_each_match`] reports for it.
    pub pattern: u32,
    /// Its bytes, casefolded as the texts are.
    pub text: &'a str,
    /// Kept by the matcher even when a word character follows it (a prefix term,
    /// `refund*`); a closed needle counts only before a word boundary or inside a hashtag or
    /// handle token, which lets the whole-word filter rule out the starts of longer words.
    pub open: bool,
}

/// Walks the hashtag and handle tokens of a text alongside its increasing candidate starts.
struct InsideTokens<'a> {
    tokens: &'a [Token],
    /// The first token that does not end at or before the last start asked about.
    next: usize,
}

impl InsideTokens<'_> {
    /// Whether `i` lies inside a hashtag or handle token, after its first byte. Starts must
    /// come in increasing order.
    #[inline(always)]
    fn contains(&mut self, i: usize) -> bool {
        while let Some(t) = self.tokens.get(self.next) {
            if t.end > i {
                return t.start < i && matches!(t.kind, TokenKind::Hashtag | TokenKind::Handle);
            }
            self.next += 1;
        }
        false
    }
}

/// The first four bytes of `bytes`, little-endian, zeros past its end.
#[inline(always)]
fn quad(bytes: &[u8]) -> u64 {
    match bytes {
        [a, b, c, d, ..] => u64::from(u32::from_le_bytes([*a, *b, *c, *d])),
        _ => {
            let mut q = [0u8; 4];
            q[..bytes.len()].copy_from_slice(bytes);
            u64::from(u32::from_le_bytes(q))
        }
    }
}

/// The first run of `bytes` as a key: its first byte and the ASCII word bytes
/// (`[0-9A-Za-z_]`) after it, at most eight bytes, little-endian, zeros after. A closed needle
/// found at a start with a word boundary after it has the text's first run there as its own:
/// either its run ends inside it, on the same bytes, or the needle is one run and the text's
/// next byte is no ASCII word byte (else no boundary). Eight bytes of zeros when `bytes` is
/// empty. Computed eight lanes at a time, without a loop over the bytes.
#[inline(always)]
fn first_run(bytes: &[u8]) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let x = match bytes.get(..8) {
        Some(b) => u64::from_le_bytes(b.try_into().unwrap_or_default()),
        None => {
            let mut b = [0u8; 8];
            b[..bytes.len()].copy_from_slice(bytes);
            u64::from_le_bytes(b)
        }
    };
    let y = x & !HIGH;
    // High bit of each lane: the seven-bit value is within `lo..=hi` (no lane carries: a
    // lane holds at most 0x7F + 0x7F).
    let within = |v: u64, lo: u64, hi: u64| (v + (0x80 - lo) * ONES) & !(v + (0x7F - hi) * ONES);
    let word = (within(y, b'0'.into(), b'9'.into())
        | within(y | (0x20 * ONES), b'a'.into(), b'z'.into())
        | within(y, b'_'.into(), b'_'.into()))
        & !x
        & HIGH;
    // The first byte always belongs; the run ends at the first other lane that is no word.
    let ends = !word & HIGH & !0x80;
    let len = if ends == 0 {
        8
    } else {
        ends.trailing_zeros() / 8
    };
    x & (u64::MAX >> (64 - 8 * len))
}

/// A blocked Bloom filter of 64-bit keys: two bits in one 64-bit word, about 16 bits per key,
/// so near 2% false positives where a one-bit filter of 8 bits per key had 12%, for the same
/// single load. At 100k keys it is 256 KiB and stays in L2.
#[derive(Debug, Clone)]
struct KeyFilter {
    words: Box<[u64]>,
    /// `64 - log2(words.len())`: the top bits of a hash pick the word.
    shift: u32,
}

impl KeyFilter {
    fn with_capacity(keys: usize) -> KeyFilter {
        // From 256 B to 256 KiB.
        let words = (keys / 4).next_power_of_two().clamp(32, 1 << 15);
        KeyFilter {
            words: vec![0; words].into_boxed_slice(),
            shift: 64 - words.trailing_zeros(),
        }
    }

    /// The word index and the two-bit mask of `key`.
    #[inline(always)]
    fn slot(&self, key: u64) -> (usize, u64) {
        let h = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mask = 1u64 << (h & 63) | 1u64 << ((h >> 6) & 63);
        ((h >> self.shift) as usize, mask)
    }

    fn insert(&mut self, key: u64) {
        let (w, mask) = self.slot(key);
        if let Some(word) = self.words.get_mut(w) {
            *word |= mask;
        }
    }

    /// 1 when `key` was inserted, probably; else 0.
    #[inline(always)]
    fn test(&self, key: u64) -> u8 {
        let (w, mask) = self.slot(key);
        self.words
            .get(w)
            .map_or(0, |&word| u8::from(word & mask == mask))
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
    use crate::normalize::{normalize, Normalized};
    use proptest::prelude::*;

    fn open_needles<'a>(needles: &[&'a str]) -> Vec<Needle<'a>> {
        needles
            .iter()
            .enumerate()
            .map(|(i, text)| Needle {
                pattern: i as u32,
                text,
                open: true,
            })
            .collect()
    }

    /// What the trie reports for open needles (every occurrence at a word start) in the
    /// normalized `text`.
    fn matches(needles: &[&str], text: &str) -> Vec<(u32, usize, usize)> {
        let trie = StartTrie::build(&open_needles(needles));
        let mut out = Vec::new();
        let mut norm = Normalized::new();
        normalize(text, &mut norm);
        trie.for_each_match(norm.text(), norm.tokens(), |p, s, e| out.push((p, s, e)));
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
        let trie = StartTrie::build(&open_needles(&n));
        assert_ne!(trie.nodes[0].meta & DENSE, 0);
        let mut out = Vec::new();
        trie.for_each_match("東京acme café", &[], |p, s, e| out.push((p, s, e)));
        assert_eq!(out, vec![(0, 6, 7), (7, 6, 10), (2, 11, 12)]);
    }

    #[test]
    fn empty_and_missing() {
        assert_eq!(matches(&[], "anything"), vec![]);
        assert_eq!(matches(&["", "a"], "a"), vec![(1, 0, 1)]);
        assert_eq!(matches(&["abc"], ""), vec![]);
        assert_eq!(matches(&["abc"], "ab"), vec![]);
    }

    #[test]
    fn closed_needles_need_the_whole_first_run() {
        let needles = [
            Needle {
                pattern: 0,
                text: "acme",
                open: false,
            },
            Needle {
                pattern: 1,
                text: "acme corp",
                open: false,
            },
            Needle {
                pattern: 2,
                text: "refund",
                open: true,
            },
            Needle {
                pattern: 3,
                text: "o'brien",
                open: false,
            },
            Needle {
                pattern: 4,
                text: "@acmehq.bsky.social",
                open: false,
            },
        ];
        let trie = StartTrie::build(&needles);
        let found = |text: &str| {
            let mut norm = Normalized::new();
            normalize(text, &mut norm);
            let mut out = Vec::new();
            trie.for_each_match(norm.text(), norm.tokens(), |p, _, _| out.push(p));
            out
        };
        assert_eq!(found("acme corp"), [0, 1]);
        assert_eq!(found("acme's"), [0], "a possessive ends the run");
        assert_eq!(
            found("acmecorp acmes"),
            [0u32; 0],
            "longer words are ruled out"
        );
        assert_eq!(found("refunds"), [2], "an open needle ends anywhere");
        assert_eq!(found("o'brien"), [3], "the run ends inside the needle");
        assert_eq!(found("#acmefail"), [0], "inside a hashtag, any needle");
        assert_eq!(found("@acmehq.bsky.social"), [4, 0]);
        assert_eq!(
            found("x@acmehq.bsky.social"),
            [0u32; 0],
            "no handle, no word start"
        );
    }

    #[test]
    fn first_runs() {
        let key = |s: &str| first_run(s.as_bytes()).to_le_bytes();
        assert_eq!(&key("acme corp"), b"acme\0\0\0\0");
        assert_eq!(&key("#acme_2x!"), b"#acme_2x");
        assert_eq!(&key("acme"), b"acme\0\0\0\0");
        assert_eq!(&key("Zé"), b"Z\0\0\0\0\0\0\0");
        assert_eq!(&key("éa"), &[0xC3, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&key("a-b"), b"a\0\0\0\0\0\0\0");
        assert_eq!(&key("@ab"), b"@ab\0\0\0\0\0");
        assert_eq!(&key("a`{[/:@"), b"a\0\0\0\0\0\0\0");
        assert_eq!(&key("internationalization"), b"internat");
        assert_eq!(&key(""), &[0; 8]);
        // Every byte value after the first, against the word-byte definition.
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || b == b'_';
            let run = first_run(&[b'a', b, b'z', 0, 0, 0, 0, 0]);
            assert_eq!(run > 0xFF, want, "byte {b:#x}");
        }
    }

    /// `(pattern, start, end)`.
    type Occurrence = (u32, usize, usize);

    /// Every `(pattern, start, end)` by brute force: each needle at each char boundary with
    /// a left word boundary; and of those, the ones the matcher keeps: open needles, closed
    /// ones with a right boundary, and any inside a hashtag or handle token.
    fn reference(
        needles: &[(String, bool)],
        norm: &Normalized,
    ) -> (Vec<Occurrence>, Vec<Occurrence>) {
        let text = norm.text();
        let mut first: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        for (i, (n, _)) in needles.iter().enumerate() {
            first.entry(n.as_str()).or_insert(i as u32);
        }
        let mut all = Vec::new();
        let mut kept = Vec::new();
        for (s, c) in text.char_indices() {
            if !is_boundary(c, char_before(text, s)) {
                continue;
            }
            for (i, (n, _)) in needles.iter().enumerate() {
                if n.is_empty()
                    || !text[s..].starts_with(n.as_str())
                    || first[n.as_str()] != i as u32
                {
                    continue;
                }
                let e = s + n.len();
                all.push((i as u32, s, e));
                let open = needles.iter().any(|(m, open)| m == n && *open);
                let right = is_boundary(char_before(text, e).unwrap_or(' '), char_at(text, e));
                if open || right || norm.inside_hashtag_or_handle(s, e) {
                    kept.push((i as u32, s, e));
                }
            }
        }
        all.sort_unstable_by_key(|&(p, s, e)| (s, e, p));
        kept.sort_unstable_by_key(|&(p, s, e)| (s, e, p));
        (all, kept)
    }

    const PIECES: &[&str] = &[
        "a", "ac", "acm", "acme", "acmx", "b", "e", " ", "#", "@", ".", "é", "東", "🔥", "x", "-",
        "1", "'",
    ];

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 2000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Needles built from a few shared pieces give deep shared prefixes, nodes with one,
        /// two and many children (dense rows, the depth-4 slots' child classes) and short and
        /// long needles; texts from the same pieces hit them inside and across words, and
        /// inside hashtags and handles. The trie reports every occurrence the matcher keeps,
        /// and nothing but occurrences at word starts.
        #[test]
        fn finds_what_brute_force_finds(
            needles in proptest::collection::vec(
                (
                    proptest::collection::vec(proptest::sample::select(PIECES), 1..6)
                        .prop_map(|p| p.concat()),
                    proptest::bool::weighted(0.2),
                ),
                0..40,
            ),
            text in proptest::collection::vec(proptest::sample::select(PIECES), 0..120)
                .prop_map(|p| p.concat()),
        ) {
            let list: Vec<Needle<'_>> = needles
                .iter()
                .enumerate()
                .map(|(i, (text, open))| Needle { pattern: i as u32, text, open: *open })
                .collect();
            let trie = StartTrie::build(&list);
            let mut norm = Normalized::new();
            normalize(&text, &mut norm);
            let mut got = Vec::new();
            trie.for_each_match(norm.text(), norm.tokens(), |p, s, e| got.push((p, s, e)));
            got.sort_unstable_by_key(|&(p, s, e)| (s, e, p));
            let (all, kept) = reference(&needles, &norm);
            for k in &kept {
                prop_assert!(got.contains(k), "missed {:?} in {:?}: got {:?}", k, norm.text(), got);
            }
            for g in &got {
                prop_assert!(all.contains(g), "{:?} is no occurrence at a word start", g);
            }
        }
    }
}
