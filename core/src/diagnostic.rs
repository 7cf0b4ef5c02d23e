//! Located diagnostics: one mistake in a file a person edits (config, rules, terms, cue
//! lexicons, scoring weights, payload templates, the customer table), with its file, line and
//! column, and the list of every mistake found in one load.
//!
//! Loading never stops at the first mistake: a brand team fixing a rule pack or an operator
//! fixing a config wants the whole list in one run (DESIGN "Rules"; STYLE 8), so loaders
//! collect [`Diagnostic`]s into [`Diagnostics`] and fail once at the end. Locations are
//! 1-based; columns count characters (what an editor shows), not bytes. A problem with a whole
//! file (unreadable, too large) has line 0 and prints as `file: message`.
//!
//! A leaf: every loader uses it and it uses nothing of earshot, so the rule language, the
//! scoring stages and the config all report mistakes the same way without depending on each
//! other.

use std::fmt;

/// One mistake in a file, at its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the caller named it (the path it was loaded from, or the name given to a
    /// parser of text).
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
impl fmt::Display for Diagnostic {
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

impl std::error::Error for Diagnostic {}

impl Diagnostic {
    /// An error at `file:line:col`.
    pub fn at(file: &str, line: u32, col: u32, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.to_string(),
            line,
            col,
            message: message.into(),
        }
    }

    /// An error about a whole file (printed without line and column).
    pub fn whole_file(file: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.to_string(),
            line: 0,
            col: 0,
            message: message.into(),
        }
    }
}

/// Every mistake found in one load, in file order. Never empty when returned as an
/// error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
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

impl std::error::Error for Diagnostics {}

impl Diagnostics {
    /// How many mistakes were found.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no mistake was recorded (never the case for an error returned by a loader).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The mistakes, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
}

/// 1-based line and column (in characters) of a byte offset into `text`; an offset past the
/// end counts as the end.
pub fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = text[line_start..offset].chars().count() + 1;
    (line as u32, col as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_forms() {
        let cases = [
            (
                Diagnostic::at("acme.rules", 7, 31, "expected x"),
                "acme.rules:7:31: expected x",
            ),
            (
                Diagnostic::whole_file("big.rules", "too large"),
                "big.rules: too large",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
        let all = Diagnostics(vec![
            Diagnostic::at("a.rules", 1, 2, "one"),
            Diagnostic::at("b.rules", 3, 4, "two"),
        ]);
        assert_eq!(all.to_string(), "a.rules:1:2: one\nb.rules:3:4: two");
        assert_eq!(all.len(), 2);
    }
}
