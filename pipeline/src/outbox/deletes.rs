//! Deletes: when an author deletes a post earshot routed, its copies go.
//!
//! Platform terms (X, Bluesky) expect copies of a deleted post to be removed. Workers see
//! every delete event of their sources and ask the [`RoutedIndex`] whether its post was
//! routed; only those (a few in a million deletes) reach the outbox writer, which finds the
//! routed mention in the store (`routed` table, kept `keep` after routing) and writes a
//! `mention.deleted` entry to each queue the mention went to, in the same durable commit. A
//! queue's dispatcher then drops the mention if it is still waiting (counted `dropped`: it is
//! never sent), or sends `mention.deleted` after it (`notified`): the generic envelope, or a
//! note on the ticket in a CRM. File and stdout queues keep their lines (`not_sent`).

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::RwLock;

/// The thread keys of the posts routed in the last `keep`, as 64-bit hashes: what a worker
/// checks each delete event against. A hash collision only sends a delete to the writer,
/// which finds nothing in the store.
#[derive(Debug, Default)]
pub struct RoutedIndex {
    keys: RwLock<HashSet<u64>>,
}

fn hash(key: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

impl RoutedIndex {
    /// An index of `keys` (the store's, at start).
    pub fn new(keys: impl IntoIterator<Item = String>) -> Self {
        Self {
            keys: RwLock::new(keys.into_iter().map(|k| hash(&k)).collect()),
        }
    }

    /// Remembers a routed post.
    pub fn insert(&self, key: &str) {
        self.keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hash(key));
    }

    /// Whether a post with this thread key was routed (or a collision says so).
    pub fn contains(&self, key: &str) -> bool {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&hash(key))
    }

    /// Forgets posts (deleted, or routed longer ago than the store keeps them).
    pub fn remove<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let mut set = self.keys.write().unwrap_or_else(|p| p.into_inner());
        for k in keys {
            set.remove(&hash(k));
        }
    }

    /// How many posts it holds.
    pub fn len(&self) -> usize {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routed_posts_are_known_until_forgotten() {
        let index = RoutedIndex::new(["x:1".to_string()]);
        index.insert("at://did:plc:a/app.bsky.feed.post/3k");
        assert!(index.contains("x:1") && index.contains("at://did:plc:a/app.bsky.feed.post/3k"));
        assert!(!index.contains("x:2"));
        index.remove(["x:1"]);
        assert!(!index.contains("x:1"));
        assert_eq!(index.len(), 1);
    }
}
