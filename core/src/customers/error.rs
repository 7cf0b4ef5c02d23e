//! Why a customer table as a whole was refused.
//!
//! Problems with single rows are not errors: they are counted skips ([`super::Skipped`]).
//! These are the problems that leave nothing trustworthy to load, and each names the file
//! and, where known, the line and column (1-based, columns in characters).

use std::path::{Path, PathBuf};

/// A customer table that could not be loaded; a table already in force stays.
#[derive(Debug, thiserror::Error)]
pub enum CustomerError {
    /// The file could not be opened or read.
    #[error("{}: cannot read the customer table: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than [`super::CustomerLimits::max_bytes`].
    #[error(
        "{}: the customer table is {bytes} bytes, more than the limit of {limit} bytes",
        .path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (at least `limit + 1` when it grew while being read).
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// The file name does not say which format the file is in.
    #[error(
        "{}: unknown customer table format: the name must end in .csv, .json, .jsonl or .ndjson",
        .path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file is not UTF-8 (an export saved in a legacy code page).
    #[error("{}:{line}:{col}: not UTF-8; export the table as UTF-8", .path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Line of the first invalid byte.
        line: usize,
        /// Column of the first invalid byte.
        col: usize,
    },
    /// The structure of the file is broken: invalid JSON, or a CSV the reader refused.
    #[error("{}:{line}:{col}: {message}", .path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where the problem was found.
        line: usize,
        /// Where the problem was found.
        col: usize,
        /// What is wrong.
        message: String,
    },
    /// A CSV file without even a header row.
    #[error("{}:1:1: the customer table is empty: a CSV table starts with a header row naming \
             its columns (platform, handle, customer_id, …)", .path.display())]
    NoHeader {
        /// The file.
        path: PathBuf,
    },
    /// The CSV header lacks a required column.
    #[error(
        "{}:{line}:1: the header has no {} (it has: {found})",
        .path.display(),
        columns(.missing)
    )]
    MissingColumns {
        /// The file.
        path: PathBuf,
        /// The header's line.
        line: usize,
        /// Every required column that is missing.
        missing: Vec<&'static str>,
        /// The header's column names, for the message (shortened when there are many).
        found: String,
    },
    /// The CSV header names a known column twice, so which one is meant is unclear.
    #[error("{}:{line}:{col}: the header names the {column} column twice", .path.display())]
    DuplicateColumn {
        /// The file.
        path: PathBuf,
        /// The header's line.
        line: usize,
        /// Column of the second occurrence.
        col: usize,
        /// The column.
        column: &'static str,
    },
    /// More rows than [`super::CustomerLimits::max_rows`].
    #[error("{}:{line}:1: more than {limit} rows, the limit", .path.display())]
    TooManyRows {
        /// The file.
        path: PathBuf,
        /// Line of the first row beyond the limit.
        line: usize,
        /// The limit.
        limit: usize,
    },
}

impl CustomerError {
    /// A bounded name for the kind of error (a log field; usable as a metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            CustomerError::Read { .. } => "read",
            CustomerError::TooLarge { .. } => "too_large",
            CustomerError::UnknownFormat { .. } => "unknown_format",
            CustomerError::NotUtf8 { .. } => "not_utf8",
            CustomerError::Malformed { .. } => "malformed",
            CustomerError::NoHeader { .. } => "no_header",
            CustomerError::MissingColumns { .. } => "missing_column",
            CustomerError::DuplicateColumn { .. } => "duplicate_column",
            CustomerError::TooManyRows { .. } => "too_many_rows",
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            CustomerError::Read { path, .. }
            | CustomerError::TooLarge { path, .. }
            | CustomerError::UnknownFormat { path }
            | CustomerError::NotUtf8 { path, .. }
            | CustomerError::Malformed { path, .. }
            | CustomerError::NoHeader { path }
            | CustomerError::MissingColumns { path, .. }
            | CustomerError::DuplicateColumn { path, .. }
            | CustomerError::TooManyRows { path, .. } => path,
        }
    }
}

/// `customer_id column`, `handle and customer_id columns`.
fn columns(names: &[&str]) -> String {
    match names {
        [one] => format!("{one} column"),
        [rest @ .., last] => format!("{} and {last} columns", rest.join(", ")),
        [] => "missing column".to_owned(),
    }
}
