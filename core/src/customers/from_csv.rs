//! CSV text → rows, with the `csv` crate: a header row naming the columns, then one row per
//! account.
//!
//! The header is matched by name ([`Column::named`]), so column order is free and the many
//! other columns of a CRM export are ignored. A header without a required column, or naming
//! one twice, refuses the file: without it no row can load, and a guess at which of two
//! `handle` columns is meant could attach mentions to the wrong customer. A row with more or
//! fewer fields than the header is skipped, since its columns may be shifted.
//!
//! The `csv` crate reports where a record starts, not where each field does; the column of an
//! offending field is found by scanning the record's text again ([`field_start`]), only for
//! the rows that are described. Lines are counted by one cursor that follows the records
//! through the text, so placing every row costs one pass over the file.

use std::borrow::Cow;
use std::path::Path;

use super::error::CustomerError;
use super::position::Position;
use super::row::{accept, Column, Fields, RowProblem};
use super::table::Builder;
use super::CustomerLimits;

/// Most header names quoted in a missing-column error.
const MAX_NAMES_SHOWN: usize = 20;

/// Reads the CSV `text` of `file` into `out`.
pub(super) fn read(
    file: &Path,
    text: &str,
    limits: &CustomerLimits,
    out: &mut Builder,
) -> Result<(), CustomerError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let malformed = |e: csv::Error| {
        let at = e.position().map_or(Position::START, |p| {
            let offset = usize::try_from(p.byte()).unwrap_or(usize::MAX);
            Position::START.advance(text, offset)
        });
        CustomerError::Malformed {
            path: file.to_owned(),
            line: at.line,
            col: at.col,
            message: format!("invalid CSV: {e}"),
        }
    };
    // Records come in file order, so one cursor walks the text once however many rows are
    // placed.
    let mut cursor = Position::START;

    let mut record = csv::StringRecord::new();
    if !reader.read_record(&mut record).map_err(malformed)? {
        return Err(CustomerError::NoHeader {
            path: file.to_owned(),
        });
    }
    let header = record_start(text, &record, &mut cursor);
    let mut index: [Option<usize>; 6] = [None; 6];
    for (i, name) in record.iter().enumerate() {
        let Some(column) = Column::named(name) else {
            continue;
        };
        if index[column.index()].is_some() {
            let at = field_start(text, header, i);
            return Err(CustomerError::DuplicateColumn {
                path: file.to_owned(),
                line: at.line,
                col: at.col,
                column: column.name(),
            });
        }
        index[column.index()] = Some(i);
    }
    let missing: Vec<&'static str> = Column::ALL
        .into_iter()
        .filter(|c| c.required() && index[c.index()].is_none())
        .map(Column::name)
        .collect();
    if !missing.is_empty() {
        let mut found: Vec<String> = record
            .iter()
            .take(MAX_NAMES_SHOWN)
            .map(|n| format!("{:?}", n.trim()))
            .collect();
        if record.len() > MAX_NAMES_SHOWN {
            found.push(format!("and {} more", record.len() - MAX_NAMES_SHOWN));
        }
        return Err(CustomerError::MissingColumns {
            path: file.to_owned(),
            line: header.line,
            missing,
            found: found.join(", "),
        });
    }
    let header_len = record.len();
    // The key's column: a duplicate is described there.
    let handle = index[Column::Handle.index()].unwrap_or(0);

    let mut rows = 0usize;
    while reader.read_record(&mut record).map_err(malformed)? {
        let start = record_start(text, &record, &mut cursor);
        rows += 1;
        if rows > limits.max_rows {
            return Err(CustomerError::TooManyRows {
                path: file.to_owned(),
                line: start.line,
                limit: limits.max_rows,
            });
        }
        let place = |field: usize| {
            let at = field_start(text, start, field);
            (at.line, at.col)
        };
        if record.len() != header_len {
            let problem = RowProblem::Ragged {
                fields: record.len(),
                header: header_len,
            };
            out.skip(problem, || place(0));
            continue;
        }
        let fields: Fields<'_> = index.map(|i| i.and_then(|i| record.get(i)).map(Cow::Borrowed));
        match accept(&fields, limits.max_field_bytes) {
            Ok(row) => out.add(row, start.line, || place(handle)),
            Err((problem, column)) => {
                let field = column.and_then(|c| index[c.index()]).unwrap_or(0);
                out.skip(problem, || place(field));
            }
        }
    }
    Ok(())
}

/// Where `record`'s first field starts, moving `cursor` there.
///
/// `csv` places a record where the previous one ended, so the previous line ending (or the
/// `\n` of a `\r\n`) and blank lines come first; they are stepped over.
fn record_start(text: &str, record: &csv::StringRecord, cursor: &mut Position) -> Position {
    let bytes = text.as_bytes();
    let mut first = record
        .position()
        .and_then(|p| usize::try_from(p.byte()).ok())
        .map_or(cursor.offset, |b| b.clamp(cursor.offset, bytes.len()));
    while first < bytes.len() && matches!(bytes[first], b'\r' | b'\n') {
        first += 1;
    }
    *cursor = cursor.advance(text, first);
    *cursor
}

/// Where field `field` (0-based) of the record starting at `start` starts.
///
/// `csv` reports where a record starts, not its fields, so they are skipped here as the
/// reader splits them with its default settings: `,` between fields; a field that starts
/// with `"` runs to the matching `"` (`""` inside is a quote) and may span lines.
fn field_start(text: &str, start: Position, field: usize) -> Position {
    let bytes = text.as_bytes();
    let mut i = start.offset;
    for _ in 0..field {
        if bytes.get(i) == Some(&b'"') {
            i += 1;
            while i < bytes.len() {
                match (bytes[i], bytes.get(i + 1)) {
                    (b'"', Some(b'"')) => i += 2,
                    (b'"', _) => {
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
        }
        while i < bytes.len() && !matches!(bytes[i], b',' | b'\r' | b'\n') {
            i += 1;
        }
        if bytes.get(i) != Some(&b',') {
            break;
        }
        i += 1;
    }
    start.advance(text, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(line, col)` of every field of every record.
    type Places = Vec<Vec<(usize, usize)>>;

    /// Every field of every record, as `field_start` places them.
    fn places(text: &str) -> Places {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut cursor = Position::START;
        let mut record = csv::StringRecord::new();
        let mut out = Vec::new();
        while reader.read_record(&mut record).unwrap() {
            let start = record_start(text, &record, &mut cursor);
            out.push(
                (0..record.len())
                    .map(|f| {
                        let at = field_start(text, start, f);
                        (at.line, at.col)
                    })
                    .collect(),
            );
        }
        out
    }

    #[test]
    fn fields_are_placed_across_line_endings_blank_lines_and_quotes() {
        let cases: &[(&str, &str, Places)] = &[
            (
                "lf",
                "a,b\ncc,d\n",
                vec![vec![(1, 1), (1, 3)], vec![(2, 1), (2, 4)]],
            ),
            (
                "crlf",
                "a,b\r\ncc,d\r\n",
                vec![vec![(1, 1), (1, 3)], vec![(2, 1), (2, 4)]],
            ),
            (
                "blank lines",
                "a,b\n\n\r\ncc,d",
                vec![vec![(1, 1), (1, 3)], vec![(4, 1), (4, 4)]],
            ),
            (
                "quotes, escaped quotes, a line break in a field",
                "\"x,\"\"y\",é,z\n\"two\nlines\",w\n",
                vec![vec![(1, 1), (1, 9), (1, 11)], vec![(2, 1), (3, 8)]],
            ),
            ("empty fields", ",,c\n", vec![vec![(1, 1), (1, 2), (1, 3)]]),
        ];
        for (name, text, want) in cases {
            assert_eq!(&places(text), want, "{name}");
        }
    }
}
