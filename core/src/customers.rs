//! The CRM customer table: which social accounts belong to which customers.
//!
//! Brand teams export from their CRM a table of accounts — platform, handle (or account id),
//! customer id, and optionally tier, account owner and lifetime value. A matched post whose
//! author is in the table carries the customer record into its mention (the "single view of
//! the customer"), and the scorer reads the tier for urgency.
//!
//! # Input → output
//! A file (`.csv`, `.json` — an array of objects — or `.jsonl` / `.ndjson` — one object per
//! line) → a [`CustomerTable`] answering [`CustomerTable::lookup`] by `(platform, author id or
//! handle)` in one hash probe. Parsing is a pure function of the bytes
//! ([`CustomerTable::parse`]); [`CustomerTable::load`] reads the file and calls it; the live
//! handle `crate::reload::customers::Customers` swaps tables in when the file changes, and
//! alone logs and counts.
//!
//! # Columns
//! `platform`, `handle` and `customer_id` are required; `tier`, `account_owner` and
//! `lifetime_value` are optional (an empty CSV cell or a JSON `null` is absent). A CSV file
//! starts with a header row; column names are matched trimmed and case-insensitively, in any
//! order, and other columns are ignored, because CRM exports carry dozens. JSON keys are
//! matched the same way; a JSON number is accepted wherever text is (X user ids, customer
//! numbers) and kept as written, so 19-digit ids keep every digit.
//!
//! # Keys: exact, after normalisation
//! The `handle` column holds either a handle or the platform's account id: Bluesky posts from
//! Jetstream carry only the author's DID (`did:plc:…`), never the handle, so **Bluesky
//! accounts should be listed by DID**; X rows may give the numeric user id. A lookup tries the
//! author id first, then the handle. Keys are normalised the same way at load and lookup:
//! trimmed, one leading `@` removed, lowercased (Unicode). Nothing else is guessed: `alice`
//! does not match `alice.bsky.social`, and a Mastodon handle is `user@server` exactly as the
//! stream gives it (Mastodon's `acct` omits the server for accounts local to the server being
//! streamed, so list those as the stream shows them). `twitter` is accepted as a platform name
//! for `x`.
//!
//! # Bad rows and bad files
//! A row with a problem — an unknown platform, an empty handle or customer id, a
//! `lifetime_value` that is not a finite non-negative number, a field longer than
//! [`CustomerLimits::max_field_bytes`], a CSV row with the wrong number of fields, a JSON
//! element that is not an object — is skipped and counted, and described as
//! `file:line:col: reason` (the first [`MAX_SKIPS_KEPT`] of them); the rest of the table
//! loads, because one bad row in a million-row export should not cost the other rows. A second
//! row for the same platform and key is skipped as `duplicate of line N`: the first wins. A
//! problem with the file as a whole — unreadable, larger than
//! [`CustomerLimits::max_bytes`], more rows than [`CustomerLimits::max_rows`], not UTF-8,
//! malformed JSON, a CSV header without a required column — is a [`CustomerError`] naming the
//! file and, where known, `line:col`.
//!
//! # Reload
//! The runtime (`earshot::reload::customers::watch`) checks the file's size and modification
//! time every [`CustomersConfig::reload`] (60 s by default) and reloads once a change has held
//! still for one interval, so a half-written export is not read. A failed reload keeps the
//! table in force and is logged at `error`; the next change is tried again. Workers hold a
//! `Customers` handle and take the table in force once per batch.

mod error;
mod from_csv;
mod from_json;
mod position;
mod row;
mod table;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use error::CustomerError;
pub use row::{Column, RowProblem};
pub use table::{Customer, CustomerTable, Format, Loaded, Skipped, MAX_SKIPS_KEPT};

/// `[customers]`: where the CRM customer table is and how often it is checked for changes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CustomersConfig {
    /// The table (`.csv`, `.json`, `.jsonl` or `.ndjson`); none means no customer table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// How often the file's size and modification time are checked; a change is reloaded once
    /// it has held still for one interval. A minute suits a CRM export refreshed hourly or
    /// nightly and costs one `stat` a minute; `"0"` turns reloading off.
    #[serde(with = "crate::duration")]
    pub reload: Duration,
}

impl Default for CustomersConfig {
    fn default() -> Self {
        Self {
            path: None,
            reload: Duration::from_secs(60),
        }
    }
}

/// Hard limits on a customer table, so a wrong path (a log file, a database dump) or a runaway
/// export fails fast with a clear error instead of exhausting memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CustomerLimits {
    /// Largest file read, in bytes. 1 GiB holds some 10 million rows of a typical export; the
    /// whole file is in memory while it is parsed.
    pub max_bytes: u64,
    /// Most rows (skipped rows included). 20 million accounts is beyond the largest CRM we
    /// expect and keeps the table within a few GB of memory.
    pub max_rows: usize,
    /// Longest field of a known column, in bytes. Handles, ids and tiers are short; a longer
    /// value is a shifted column or a pasted note, and the row is skipped.
    pub max_field_bytes: usize,
}

impl Default for CustomerLimits {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            max_rows: 20_000_000,
            max_field_bytes: 1024,
        }
    }
}

#[cfg(test)]
mod tests;
