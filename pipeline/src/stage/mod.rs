//! The CPU stages a worker runs on every post, in order: decode → normalize → match → score
//! → route; then, per queue, [`noise`] decides whether a routed mention is delivered now or
//! held for the queue's digest.
pub mod decode;
pub mod matcher;
pub mod noise;
pub mod normalize;
pub mod route;
pub mod score;
pub mod spike;
pub mod start_trie;
