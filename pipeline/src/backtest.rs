//! Backtest: what a rule change would have matched on recorded posts, before it goes live
//! (`earshot replay --baseline-rules OLD`). The accumulator and its report are pure and live in
//! the core ([`earshot_core::backtest`], re-exported here); [`replay`] reads the inputs the way
//! `earshot replay` does and feeds it.

pub use earshot_core::backtest::*;

pub mod replay;

pub use self::replay::{run, BacktestError, Comparer, RuleSide, RunOptions, Side};
