//! Integration tests of the runtime crate that need no peer: the example configurations,
//! judgement on the labelled tables, and the layout of the workspace.
#![forbid(unsafe_code)]

mod config_examples;
mod judgement;
mod layout;
