//! The table itself: records, the key index, and loading a file into them.
//!
//! Records live in one `Vec`; one hash map per platform takes a normalised key (handle or
//! account id) to a record's index. Per-platform maps let a lookup probe with a borrowed
//! `&str` — no `(Platform, String)` key to build — and a key that is already trimmed and
//! lowercase (DIDs, numeric ids, most handles) is looked up without allocating at all.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::post::Platform;

use super::error::CustomerError;
use super::position::Position;
use super::row::{Accepted, RowProblem};
use super::{from_csv, from_json, CustomerLimits};

/// How many skipped rows are described; all are counted. A hundred lines show the pattern of
/// a broken export without flooding a log or an error report.
pub const MAX_SKIPS_KEPT: usize = 100;

/// Platforms, for the per-platform key maps.
const PLATFORMS: usize = 5;

fn slot(platform: Platform) -> usize {
    match platform {
        Platform::Bluesky => 0,
        Platform::X => 1,
        Platform::Mastodon => 2,
        Platform::Reddit => 3,
        Platform::Generic => 4,
    }
}

/// A customer, as the CRM export describes the owner of an account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Customer {
    /// The CRM's id of the customer, as given (trimmed).
    pub customer_id: String,
    /// The customer's tier, trimmed and lowercased (`enterprise`, `gold`, …), which the scorer
    /// reads for urgency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Who looks after the customer (a name or an address), as given (trimmed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_owner: Option<String>,
    /// Lifetime value in the CRM's currency: finite and non-negative.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifetime_value: Option<f64>,
}

/// The format of a table file, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.csv`: a header row, then one row per account.
    Csv,
    /// `.json`: an array of objects.
    Json,
    /// `.jsonl` or `.ndjson`: one object per line.
    JsonLines,
}

impl Format {
    /// The format a file name says (ASCII case ignored), if any.
    pub fn of(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "jsonl" | "ndjson" => Some(Format::JsonLines),
            _ => None,
        }
    }
}

/// Accounts → customers, for one platform at a time.
#[derive(Default)]
pub struct CustomerTable {
    customers: Vec<Customer>,
    keys: [foldhash::HashMap<Box<str>, usize>; PLATFORMS],
}

impl fmt::Debug for CustomerTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomerTable")
            .field("rows", &self.customers.len())
            .finish_non_exhaustive()
    }
}

impl CustomerTable {
    /// The customer owning the account `author_id` (tried first: a DID, a numeric id) or
    /// `handle` on `platform`. Both are normalised like the table's keys: trimmed, one leading
    /// `@` removed, lowercased.
    pub fn lookup(
        &self,
        platform: Platform,
        author_id: &str,
        handle: Option<&str>,
    ) -> Option<&Customer> {
        let keys = &self.keys[slot(platform)];
        if keys.is_empty() {
            return None;
        }
        let index = with_key(author_id, |key| keys.get(key).copied())
            .or_else(|| handle.and_then(|h| with_key(h, |key| keys.get(key).copied())))?;
        self.customers.get(index)
    }

    /// Accounts in the table.
    pub fn len(&self) -> usize {
        self.customers.len()
    }

    /// Whether the table has no accounts.
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
    }

    /// Keys on `platform`.
    #[cfg(test)]
    pub(super) fn keys_on(&self, platform: Platform) -> usize {
        self.keys[slot(platform)].len()
    }

    /// Reads and parses the table at `path`, in the format its extension names.
    pub fn load(path: &Path, limits: &CustomerLimits) -> Result<Loaded, CustomerError> {
        let format = Format::of(path).ok_or_else(|| CustomerError::UnknownFormat {
            path: path.to_owned(),
        })?;
        let read_error = |source| CustomerError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let size = file.metadata().map_err(read_error)?.len();
        let too_large = |bytes: u64| CustomerError::TooLarge {
            path: path.to_owned(),
            bytes,
            limit: limits.max_bytes,
        };
        if size > limits.max_bytes {
            return Err(too_large(size));
        }
        // Read one byte past the limit, so a file that grows after the size check still
        // cannot make us read more than the limit.
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.take(limits.max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() as u64 > limits.max_bytes {
            return Err(too_large(bytes.len() as u64));
        }
        Self::parse(path, format, &bytes, limits)
    }

    /// Parses a table from `bytes`. `file` only names the table in messages: no I/O here.
    pub fn parse(
        file: &Path,
        format: Format,
        bytes: &[u8],
        limits: &CustomerLimits,
    ) -> Result<Loaded, CustomerError> {
        if bytes.len() as u64 > limits.max_bytes {
            return Err(CustomerError::TooLarge {
                path: file.to_owned(),
                bytes: bytes.len() as u64,
                limit: limits.max_bytes,
            });
        }
        // Spreadsheet programs write a byte-order mark; it is not part of the first column's
        // name.
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let text = simdutf8::compat::from_utf8(bytes).map_err(|e| {
            let valid = &bytes[..e.valid_up_to()];
            // The valid prefix is UTF-8, so this cannot fail; `""` keeps it panic-free.
            let prefix = std::str::from_utf8(valid).unwrap_or("");
            let at = Position::START.advance(prefix, prefix.len());
            CustomerError::NotUtf8 {
                path: file.to_owned(),
                line: at.line,
                col: at.col,
            }
        })?;
        let mut builder = Builder::new(file);
        match format {
            Format::Csv => from_csv::read(file, text, limits, &mut builder)?,
            Format::Json => from_json::read_array(file, text, limits, &mut builder)?,
            Format::JsonLines => from_json::read_lines(file, text, limits, &mut builder)?,
        }
        Ok(builder.finish())
    }
}

/// A table and what was skipped on the way.
#[derive(Debug)]
pub struct Loaded {
    /// The accounts that loaded.
    pub table: CustomerTable,
    /// Rows skipped, all of them.
    pub skipped: usize,
    /// The first [`MAX_SKIPS_KEPT`] skipped rows, in file order.
    pub skips: Vec<Skipped>,
}

/// A skipped row: where it is and why. Displays as `file:line:col: reason`.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// The table file.
    pub file: Arc<Path>,
    /// 1-based line where the row (or the offending field) is.
    pub line: usize,
    /// 1-based column (in characters) of the offending field; 1 when no one field is at fault.
    pub col: usize,
    /// Why it was skipped.
    pub problem: RowProblem,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.problem
        )
    }
}

/// Collects rows into a table, keeping the first row of each key.
pub(super) struct Builder {
    file: Arc<Path>,
    table: CustomerTable,
    /// The line of each record, for `duplicate of line N`; dropped when the table is done.
    lines: Vec<usize>,
    skipped: usize,
    skips: Vec<Skipped>,
}

impl Builder {
    fn new(file: &Path) -> Self {
        Self {
            file: file.into(),
            table: CustomerTable::default(),
            lines: Vec::new(),
            skipped: 0,
            skips: Vec::new(),
        }
    }

    /// Adds an accepted row found at `line`; a key seen before skips it as a duplicate, at
    /// the position `at` gives (asked only when the skip is described).
    pub fn add(&mut self, row: Accepted<'_>, line: usize, at: impl FnOnce() -> (usize, usize)) {
        let keys = &mut self.table.keys[slot(row.platform)];
        if let Some(&first) = keys.get(&*row.key) {
            let first_line = self.lines[first];
            self.skip(RowProblem::Duplicate(first_line), at);
            return;
        }
        let index = self.table.customers.len();
        keys.insert(row.key.into(), index);
        self.table.customers.push(row.customer);
        self.lines.push(line);
    }

    /// Counts a skipped row; describes it, at the `(line, col)` that `at` works out, while
    /// fewer than [`MAX_SKIPS_KEPT`] are described.
    pub fn skip(&mut self, problem: RowProblem, at: impl FnOnce() -> (usize, usize)) {
        self.skipped += 1;
        if self.skips.len() < MAX_SKIPS_KEPT {
            let (line, col) = at();
            self.skips.push(Skipped {
                file: self.file.clone(),
                line,
                col,
                problem,
            });
        }
    }

    fn finish(mut self) -> Loaded {
        self.table.customers.shrink_to_fit();
        Loaded {
            table: self.table,
            skipped: self.skipped,
            skips: self.skips,
        }
    }
}

/// A handle or account id as a key: trimmed, one leading `@` removed, lowercased. Borrowed
/// when nothing changes but the trimming.
pub(super) fn normalize_key(text: &str) -> Cow<'_, str> {
    let text = text.trim();
    let text = text.strip_prefix('@').unwrap_or(text);
    if text
        .bytes()
        .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
    {
        Cow::Owned(text.to_lowercase())
    } else {
        Cow::Borrowed(text)
    }
}

/// Calls `f` with `text` as a key ([`normalize_key`]), lowercasing a short ASCII key on the
/// stack so the lookup of a mixed-case handle does not allocate.
fn with_key<R>(text: &str, f: impl FnOnce(&str) -> R) -> R {
    const STACK: usize = 128;
    let trimmed = text.trim();
    let trimmed = trimmed.strip_prefix('@').unwrap_or(trimmed);
    if trimmed.is_ascii() && trimmed.len() <= STACK {
        let mut buffer = [0u8; STACK];
        let lower = &mut buffer[..trimmed.len()];
        lower.copy_from_slice(trimmed.as_bytes());
        lower.make_ascii_lowercase();
        // Lowercased ASCII is ASCII, so this is always `Ok`.
        if let Ok(key) = std::str::from_utf8(lower) {
            return f(key);
        }
    }
    f(&normalize_key(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalise_alike_on_every_path() {
        for (text, want) in [
            ("did:plc:abc", "did:plc:abc"),
            (" @AcmeHQ ", "acmehq"),
            ("@Fan@Mastodon.Social", "fan@mastodon.social"),
            ("@@double", "@double"),
            ("ÉCLAIR", "éclair"),
            ("", ""),
        ] {
            assert_eq!(normalize_key(text), want, "{text:?}");
            with_key(text, |key| assert_eq!(key, want, "{text:?}"));
        }
        let long = format!("@{}", "A".repeat(300));
        with_key(&long, |key| assert_eq!(key, "a".repeat(300)));
    }

    #[test]
    fn formats_come_from_the_extension() {
        for (name, want) in [
            ("crm.csv", Some(Format::Csv)),
            ("CRM.CSV", Some(Format::Csv)),
            ("crm.json", Some(Format::Json)),
            ("crm.jsonl", Some(Format::JsonLines)),
            ("crm.ndjson", Some(Format::JsonLines)),
            ("crm.tsv", None),
            ("crm", None),
        ] {
            assert_eq!(Format::of(Path::new(name)), want, "{name}");
        }
    }
}
