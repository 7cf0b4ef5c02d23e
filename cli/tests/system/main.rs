//! System tests: the runtime with its peers (the simulated firehose, webhook receivers, HTTP
//! endpoints) and the `earshot` binary as a user runs it, all real components on 127.0.0.1
//! port 0. One binary for all of them (link time).
#![forbid(unsafe_code)]

mod backtest;
mod cli;
mod cluster;
mod cluster_dlq;
mod cluster_lease;
mod crm_auth;
mod crm_threads;
mod crm_tickets;
mod delivery;
mod deploy;
mod deploy_cluster;
mod e2e;
mod faults;
mod hostile;
mod nats_sink;
mod reddit;
mod reload;
mod spikes;
#[path = "../support/mod.rs"]
mod support;
mod tls;
mod webhook;
mod x_rules;
