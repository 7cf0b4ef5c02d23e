//! JSON text → rows: an array of objects (`.json`) or one object per line (`.jsonl`,
//! `.ndjson`).
//!
//! Each element is taken as raw JSON text borrowed from the file ([`RawValue`]), so its place
//! in the file is known exactly (a pointer difference) and the fields earshot does not read
//! cost nothing but the scan. The array is walked element by element as it is parsed, so the
//! row limit stops a huge array before it is held in memory, and invalid JSON anywhere
//! refuses the file with serde_json's `line:col`.
//!
//! Known keys are matched like CSV headers (trimmed, ASCII case ignored); the first of a
//! repeated key wins. A string or a number is text (a number kept as written, so a 19-digit
//! X id keeps every digit); `null` is absent; anything else skips the row.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::error::CustomerError;
use super::position::Position;
use super::row::{accept, Column, Fields, RowProblem};
use super::table::Builder;
use super::CustomerLimits;

/// Reads a JSON array of objects.
pub(super) fn read_array(
    file: &Path,
    text: &str,
    limits: &CustomerLimits,
    out: &mut Builder,
) -> Result<(), CustomerError> {
    let mut elements = Elements {
        text,
        limits,
        out,
        cursor: Position::START,
        rows: 0,
        too_many_at: None,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = (&mut de)
        .deserialize_seq(&mut elements)
        .and_then(|()| de.end());
    match (parsed, elements.too_many_at) {
        (_, Some(line)) => Err(CustomerError::TooManyRows {
            path: file.to_owned(),
            line,
            limit: limits.max_rows,
        }),
        (Err(e), None) => Err(malformed(file, text, &e)),
        (Ok(()), None) => Ok(()),
    }
}

/// Reads one JSON object per line; blank lines are ignored.
pub(super) fn read_lines(
    file: &Path,
    text: &str,
    limits: &CustomerLimits,
    out: &mut Builder,
) -> Result<(), CustomerError> {
    let mut rows = 0usize;
    let mut offset = 0;
    for (i, line) in text.split('\n').enumerate() {
        let start = offset;
        offset += line.len() + 1;
        if line.trim().is_empty() {
            continue;
        }
        let number = i + 1;
        rows += 1;
        if rows > limits.max_rows {
            return Err(CustomerError::TooManyRows {
                path: file.to_owned(),
                line: number,
                limit: limits.max_rows,
            });
        }
        let raw: &RawValue = serde_json::from_str(line).map_err(|e| {
            let at = Position::at_byte_col(line, 1, e.column());
            CustomerError::Malformed {
                path: file.to_owned(),
                line: number,
                col: at.col,
                message: format!("invalid JSON: {}", message(&e)),
            }
        })?;
        let at = Position {
            offset: start,
            line: number,
            col: 1,
        };
        let at = at.advance(text, offset_in(text, raw.get()));
        element(text, raw, at, limits, out);
    }
    Ok(())
}

/// Walks the top-level array, handing each element to [`element`].
struct Elements<'t, 'b> {
    text: &'t str,
    limits: &'b CustomerLimits,
    out: &'b mut Builder,
    /// Where the last element started: elements come in order, so positions are counted
    /// forward from here.
    cursor: Position,
    rows: usize,
    /// Set, with the line of the first element over the limit, when there are too many rows.
    too_many_at: Option<usize>,
}

impl<'t> Visitor<'t> for &mut Elements<'t, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of customer objects")
    }

    fn visit_seq<A: SeqAccess<'t>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<&'t RawValue>()? {
            self.cursor = self
                .cursor
                .advance(self.text, offset_in(self.text, raw.get()));
            self.rows += 1;
            if self.rows > self.limits.max_rows {
                self.too_many_at = Some(self.cursor.line);
                return Err(de::Error::custom("too many rows"));
            }
            element(self.text, raw, self.cursor, self.limits, self.out);
        }
        Ok(())
    }
}

/// One element, which starts at `at`, into `out`.
fn element(text: &str, raw: &RawValue, at: Position, limits: &CustomerLimits, out: &mut Builder) {
    let json = raw.get();
    let place = |value: Option<&RawValue>| {
        let p = value.map_or(at, |v| at.advance(text, offset_in(text, v.get())));
        (p.line, p.col)
    };
    if !json.starts_with('{') {
        out.skip(RowProblem::NotAnObject, || place(None));
        return;
    }
    let mut object = Object::default();
    let mut de = serde_json::Deserializer::from_str(json);
    if de.deserialize_map(&mut object).is_err() {
        // The text was parsed once already, so this is not expected; skip rather than guess.
        out.skip(RowProblem::NotAnObject, || place(None));
        return;
    }
    let mut fields: Fields<'_> = Default::default();
    for column in Column::ALL {
        let Some(value) = object.0[column.index()] else {
            continue;
        };
        match scalar(value, column, limits.max_field_bytes) {
            Ok(text) => fields[column.index()] = text,
            Err(problem) => {
                out.skip(problem, || place(Some(value)));
                return;
            }
        }
    }
    match accept(&fields, limits.max_field_bytes) {
        Ok(row) => {
            let handle = object.0[Column::Handle.index()];
            out.add(row, at.line, || place(handle));
        }
        Err((problem, column)) => {
            let value = column.and_then(|c| object.0[c.index()]);
            out.skip(problem, || place(value));
        }
    }
}

/// The value of `column` as text: a string's contents, a number as written, `None` for
/// `null`. A string whose escaped form alone is far over the limit is refused before it is
/// unescaped.
fn scalar(
    raw: &RawValue,
    column: Column,
    max_field_bytes: usize,
) -> Result<Option<Cow<'_, str>>, RowProblem> {
    let json = raw.get().trim();
    match json.as_bytes().first() {
        Some(b'"') => {
            // An escape is at most six bytes (`\u00e9`) for one to three bytes of text.
            if json.len() > max_field_bytes.saturating_mul(6).saturating_add(2) {
                return Err(RowProblem::TooLong {
                    column,
                    bytes: json.len(),
                    limit: max_field_bytes,
                });
            }
            let inner = &json[1..json.len() - 1];
            if inner.contains('\\') {
                serde_json::from_str::<String>(json)
                    .map(|s| Some(Cow::Owned(s)))
                    .map_err(|_| RowProblem::WrongType(column))
            } else {
                Ok(Some(Cow::Borrowed(inner)))
            }
        }
        Some(b'n') => Ok(None),
        Some(b'-' | b'0'..=b'9') => Ok(Some(Cow::Borrowed(json))),
        _ => Err(RowProblem::WrongType(column)),
    }
}

/// The known keys of one object, as raw values borrowed from the file.
#[derive(Default)]
struct Object<'t>([Option<&'t RawValue>; 6]);

impl<'t> Visitor<'t> for &mut Object<'t> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a customer object")
    }

    fn visit_map<A: MapAccess<'t>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(column) = map.next_key_seed(Key)? {
            match column {
                Some(c) if self.0[c.index()].is_none() => {
                    self.0[c.index()] = Some(map.next_value::<&'t RawValue>()?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// An object key → the column it names, without allocating for it.
struct Key;

impl<'t> DeserializeSeed<'t> for Key {
    type Value = Option<Column>;

    fn deserialize<D: Deserializer<'t>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for Key {
    type Value = Option<Column>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Column::named(key))
    }
}

/// The byte offset in `text` of `part`, a slice of it.
fn offset_in(text: &str, part: &str) -> usize {
    (part.as_ptr() as usize)
        .saturating_sub(text.as_ptr() as usize)
        .min(text.len())
}

/// A serde_json error for the whole file, at its `line:col` in characters.
fn malformed(file: &Path, text: &str, e: &serde_json::Error) -> CustomerError {
    let at = Position::at_byte_col(text, e.line(), e.column());
    CustomerError::Malformed {
        path: file.to_owned(),
        line: at.line,
        col: at.col,
        message: format!("invalid JSON: {}", message(e)),
    }
}

/// serde_json's message without its ` at line L column C`, which the caller states itself.
fn message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
}
