//! Rule-file errors: the located [`Diagnostic`] of every mistake found while loading rules
//! and terms files, under the names the rule language's API uses.

pub use crate::diagnostic::{Diagnostic as RuleError, Diagnostics as RuleErrors};
