//! Integration tests: one binary (link time), real components on 127.0.0.1 port 0.
#![forbid(unsafe_code)]

mod backtest;
mod cli;
mod config_examples;
mod dashboards;
mod delivery;
mod e2e;
mod faults;
mod hostile;
mod judgement;
mod layout;
mod live_page;
mod reload;
mod spikes;
mod support;
mod tls;
mod webhook;
