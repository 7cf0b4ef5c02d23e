//! The CPU stages a worker runs on every post, in order.
pub mod decode;
pub mod matcher;
pub mod normalize;
pub mod score;
