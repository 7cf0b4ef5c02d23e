//! The CPU stages a worker runs on every post, in order: decode → normalize → match → score
//! → route.
pub mod decode;
pub mod matcher;
pub mod noise;
pub mod normalize;
pub mod route;
pub mod score;
pub mod start_trie;
