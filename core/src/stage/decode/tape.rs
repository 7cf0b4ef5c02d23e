//! A read-only view of one value on simd-json's tape: tape nodes → typed field access.
//!
//! simd-json's tape stores a document as a flat array of nodes in document order; an object
//! or array node records how many nodes its subtree spans, so skipping a value is one add.
//! [`Val`] is a slice starting at a value's node and covering exactly its subtree. Strings
//! borrow the frame (`'f`), never the tape (`'t`), so a post outlives the walk.
//!
//! Every accessor is total: a missing key, a wrong type or (impossible for a tape simd-json
//! built, but checked anyway) an inconsistent span gives `None`, never a panic. Lookups are
//! linear scans of an object's keys, which beats hashing for the small objects of social
//! payloads (Jetstream's largest object has 6 keys).

use simd_json::{Node, StaticNode};

/// One value on the tape: its node and its whole subtree.
#[derive(Clone, Copy, Debug)]
pub(super) struct Val<'t, 'f>(&'t [Node<'f>]);

/// Number of nodes `node`'s value spans, itself included.
#[inline]
fn span(node: &Node<'_>) -> usize {
    match node {
        Node::Object { count, .. } | Node::Array { count, .. } => count.saturating_add(1),
        _ => 1,
    }
}

impl<'t, 'f> Val<'t, 'f> {
    /// The document's root value, or `None` for an empty tape.
    pub(super) fn root(tape: &'t [Node<'f>]) -> Option<Self> {
        let len = span(tape.first()?);
        tape.get(..len).map(Val)
    }

    /// The string, if this is one.
    #[inline]
    pub(super) fn str(self) -> Option<&'f str> {
        match self.0.first() {
            Some(Node::String(s)) => Some(s),
            _ => None,
        }
    }

    /// A non-negative integer (a float is not a count).
    #[inline]
    pub(super) fn u64(self) -> Option<u64> {
        match self.0.first() {
            Some(Node::Static(StaticNode::U64(n))) => Some(*n),
            Some(Node::Static(StaticNode::I64(n))) => u64::try_from(*n).ok(),
            _ => None,
        }
    }

    /// Any integer.
    #[inline]
    pub(super) fn i64(self) -> Option<i64> {
        match self.0.first() {
            Some(Node::Static(StaticNode::I64(n))) => Some(*n),
            Some(Node::Static(StaticNode::U64(n))) => i64::try_from(*n).ok(),
            _ => None,
        }
    }

    /// Any number, as a float.
    #[inline]
    pub(super) fn f64(self) -> Option<f64> {
        match self.0.first() {
            Some(Node::Static(StaticNode::F64(n))) => Some(*n),
            #[allow(clippy::cast_precision_loss)]
            Some(Node::Static(StaticNode::I64(n))) => Some(*n as f64),
            #[allow(clippy::cast_precision_loss)]
            Some(Node::Static(StaticNode::U64(n))) => Some(*n as f64),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    #[inline]
    pub(super) fn bool(self) -> Option<bool> {
        match self.0.first() {
            Some(Node::Static(StaticNode::Bool(b))) => Some(*b),
            _ => None,
        }
    }

    /// Whether this is `null`.
    #[inline]
    pub(super) fn is_null(self) -> bool {
        matches!(self.0.first(), Some(Node::Static(StaticNode::Null)))
    }

    /// Whether this is an object.
    #[inline]
    pub(super) fn is_object(self) -> bool {
        matches!(self.0.first(), Some(Node::Object { .. }))
    }

    /// Whether this is an array.
    #[inline]
    pub(super) fn is_array(self) -> bool {
        matches!(self.0.first(), Some(Node::Array { .. }))
    }

    /// Element count of an array or key count of an object; 0 for anything else.
    #[inline]
    pub(super) fn len(self) -> usize {
        match self.0.first() {
            Some(Node::Object { len, .. } | Node::Array { len, .. }) => *len,
            _ => 0,
        }
    }

    /// Whether this is an array with at least one element.
    #[inline]
    pub(super) fn is_nonempty_array(self) -> bool {
        matches!(self.0.first(), Some(Node::Array { len, .. }) if *len > 0)
    }

    /// `Some(self)` unless this is `null` (JSON APIs send absent values both ways).
    #[inline]
    pub(super) fn non_null(self) -> Option<Self> {
        (!self.is_null()).then_some(self)
    }

    /// The value of the first `key` in an object.
    #[inline]
    pub(super) fn get(self, key: &str) -> Option<Val<'t, 'f>> {
        self.entries().find_map(|(k, v)| (k == key).then_some(v))
    }

    /// The element at `index` of an array.
    pub(super) fn index(self, index: usize) -> Option<Val<'t, 'f>> {
        if !self.is_array() {
            return None;
        }
        self.items().nth(index)
    }

    /// The key/value pairs of an object, in document order; empty for anything else.
    #[inline]
    pub(super) fn entries(self) -> Entries<'t, 'f> {
        match self.0.split_first() {
            Some((Node::Object { .. }, rest)) => Entries(rest),
            _ => Entries(&[]),
        }
    }

    /// The elements of an array, in order; empty for anything else.
    #[inline]
    pub(super) fn items(self) -> Items<'t, 'f> {
        match self.0.split_first() {
            Some((Node::Array { .. }, rest)) => Items(rest),
            _ => Items(&[]),
        }
    }
}

/// Iterator over an object's key/value pairs.
pub(super) struct Entries<'t, 'f>(&'t [Node<'f>]);

impl<'t, 'f> Iterator for Entries<'t, 'f> {
    type Item = (&'f str, Val<'t, 'f>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (key, rest) = self.0.split_first()?;
        let Node::String(key) = key else {
            self.0 = &[];
            return None;
        };
        let len = span(rest.first()?);
        let Some((value, tail)) = rest.split_at_checked(len) else {
            self.0 = &[];
            return None;
        };
        self.0 = tail;
        Some((key, Val(value)))
    }
}

/// Iterator over an array's elements.
pub(super) struct Items<'t, 'f>(&'t [Node<'f>]);

impl<'t, 'f> Iterator for Items<'t, 'f> {
    type Item = Val<'t, 'f>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let len = span(self.0.first()?);
        let Some((value, tail)) = self.0.split_at_checked(len) else {
            self.0 = &[];
            return None;
        };
        self.0 = tail;
        Some(Val(value))
    }
}
