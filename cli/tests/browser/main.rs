//! The end-to-end tests that need programs beside earshot: headless Chromium on the live
//! dashboard page of a running `earshot demo`, and `promtool` on the alerting rules and the
//! metrics a running earshot exports. A target of their own, so that
//! `cargo test -p earshot-cli --test system` runs everything else without them.
#![forbid(unsafe_code)]

mod dashboards;
mod live_page;
// Shared with the system tests, which use the helpers these do not.
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;
