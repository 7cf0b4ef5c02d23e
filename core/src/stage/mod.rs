//! The CPU stages a worker runs on every post, in order: decode → normalize
//! ([`crate::normalize`]) → match → score → route. What happens to a routed mention after
//! that runs elsewhere: the per-queue noise gate in the outbox writer ([`crate::noise`]), the
//! per-brand spike detector in the monitor thread ([`crate::spike`]).
pub mod decode;
pub mod matcher;
pub mod route;
pub mod score;
