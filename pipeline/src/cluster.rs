//! Running as several nodes on NATS JetStream: the building blocks the cluster roles share.
//!
//! - [`lease`]: one holder at a time for a role (a source's reader, the spike detector, a
//!   queue's deliverer), taken over by a standby when its holder dies.
pub mod lease;
