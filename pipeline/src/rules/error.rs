//! Rule-file errors: every mistake found while loading, each with its file, line and column.
//!
//! Loading never stops at the first mistake: a brand team fixing a rule pack wants the whole
//! list in one run (DESIGN "Rules"; STYLE 8), so the loader collects [`RuleError`]s into
//! [`RuleErrors`] and fails once at the end. Locations are 1-based; columns count characters
//! (what an editor shows), not bytes. A problem with a whole file (unreadable, too large) has
//! line 0 and prints as `file: message`.

use std::fmt;

/// One mistake in a rule file or terms file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The file as the caller named it (the path given to [`super::RuleSet::load`], or the
    /// name given to [`super::RuleSet::parse_str`]).
    pub file: String,
    /// 1-based line; 0 when the error concerns the whole file.
    pub line: u32,
    /// 1-based column in characters; 0 when the error concerns the whole file.
    pub col: u32,
    /// What is wrong, naming what was expected.
    pub message: String,
}

// Display is written by hand (thiserror's `#[error]` has no conditional form for structs):
// a whole-file error has no line and column to print.
impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            )
        }
    }
}

impl std::error::Error for RuleError {}

impl RuleError {
    /// An error at `file:line:col`.
    pub fn at(file: &str, line: u32, col: u32, message: impl Into<String>) -> RuleError {
        RuleError {
            file: file.to_string(),
            line,
            col,
            message: message.into(),
        }
    }

    /// An error about a whole file (printed without line and column).
    pub fn whole_file(file: &str, message: impl Into<String>) -> RuleError {
        RuleError {
            file: file.to_string(),
            line: 0,
            col: 0,
            message: message.into(),
        }
    }
}

/// Every mistake found while loading rules, in file order. Never empty when returned as an
/// error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleErrors(pub Vec<RuleError>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleErrors {}

impl RuleErrors {
    /// How many mistakes were found.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no mistake was recorded (never the case for an error returned by a loader).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The mistakes, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, RuleError> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_forms() {
        let cases = [
            (
                RuleError::at("acme.rules", 7, 31, "expected x"),
                "acme.rules:7:31: expected x",
            ),
            (
                RuleError::whole_file("big.rules", "too large"),
                "big.rules: too large",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
        let all = RuleErrors(vec![
            RuleError::at("a.rules", 1, 2, "one"),
            RuleError::at("b.rules", 3, 4, "two"),
        ]);
        assert_eq!(all.to_string(), "a.rules:1:2: one\nb.rules:3:4: two");
        assert_eq!(all.len(), 2);
    }
}
