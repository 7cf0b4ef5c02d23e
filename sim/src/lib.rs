//! The outside world of earshot, played on loopback: a Jetstream-compatible firehose that
//! serves generated or scripted events ([`simulator`]), a webhook receiver that verifies
//! what a CRM would ([`receiver`]), and the CRMs' identity providers and ticket APIs
//! ([`crm`]).
//!
//! `earshot demo`, the load test and the integration tests share them. They are a crate of
//! their own so that the runtime (`earshot`) never links the code that imitates its peers:
//! this crate depends on the runtime, for its shutdown signal and the webhook signing key,
//! and not the other way round.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod crm;
pub use earshot_core::generator;
pub mod receiver;
pub mod simulator;

/// A random Standard Webhooks secret (`whsec_` and 24 random bytes in base64), for a run
/// whose sender and receiver are both ours.
pub fn random_secret() -> String {
    use base64::Engine as _;
    let mut rng = fastrand::Rng::new();
    let bytes: Vec<u8> = (0..24).map(|_| rng.u8(..)).collect();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}
