//! One row's fields → a customer record and its key, or the reason the row is skipped.
//!
//! Shared by every format: the CSV and JSON readers only find the fields (as text, absent, or
//! of a type that cannot be text) and say where they are; what makes a row acceptable is
//! decided here, once.

use std::borrow::Cow;

use crate::post::Platform;

use super::table::{normalize_key, Customer};

/// The columns of a customer table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// `platform`: bluesky, x (or twitter), mastodon, reddit, generic. Required.
    Platform,
    /// `handle`: the handle or account id on that platform. Required.
    Handle,
    /// `customer_id`: the CRM's id of the customer. Required.
    CustomerId,
    /// `tier`: e.g. enterprise, gold, standard. Optional.
    Tier,
    /// `account_owner`: who looks after the customer. Optional.
    AccountOwner,
    /// `lifetime_value`: a non-negative number. Optional.
    LifetimeValue,
}

impl Column {
    /// Every column, the required ones first.
    pub const ALL: [Column; 6] = [
        Column::Platform,
        Column::Handle,
        Column::CustomerId,
        Column::Tier,
        Column::AccountOwner,
        Column::LifetimeValue,
    ];

    /// The column's name in a header or as a JSON key.
    pub fn name(self) -> &'static str {
        match self {
            Column::Platform => "platform",
            Column::Handle => "handle",
            Column::CustomerId => "customer_id",
            Column::Tier => "tier",
            Column::AccountOwner => "account_owner",
            Column::LifetimeValue => "lifetime_value",
        }
    }

    /// Whether a row needs it.
    pub fn required(self) -> bool {
        matches!(self, Column::Platform | Column::Handle | Column::CustomerId)
    }

    /// The column a header cell or JSON key names: trimmed, ASCII case ignored.
    pub fn named(name: &str) -> Option<Column> {
        let name = name.trim();
        Column::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a row was skipped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RowProblem {
    /// The platform is not one earshot reads.
    #[error("unknown platform {0:?} (use bluesky, x, mastodon, reddit or generic)")]
    UnknownPlatform(String),
    /// A required field is empty.
    #[error("{0} is empty")]
    Empty(Column),
    /// A required field is absent or null (JSON).
    #[error("{0} is missing")]
    Missing(Column),
    /// A field is neither text nor a number (JSON).
    #[error("{0} must be a string or a number")]
    WrongType(Column),
    /// `lifetime_value` does not parse as a finite, non-negative number.
    #[error("lifetime_value {0:?} is not a finite non-negative number")]
    BadLifetimeValue(String),
    /// A field is longer than the limit.
    #[error("{column} is {bytes} bytes long, more than the limit of {limit}")]
    TooLong {
        /// The field.
        column: Column,
        /// Its length (for JSON, of the escaped text when that alone is over the limit).
        bytes: usize,
        /// [`super::CustomerLimits::max_field_bytes`].
        limit: usize,
    },
    /// A JSON element that is not an object.
    #[error("not a JSON object")]
    NotAnObject,
    /// A CSV row with more or fewer fields than the header: its columns may be shifted.
    #[error("the row has {fields} fields, the header has {header}")]
    Ragged {
        /// Fields in the row.
        fields: usize,
        /// Fields in the header.
        header: usize,
    },
    /// The platform and key of an earlier row.
    #[error("duplicate of line {0}")]
    Duplicate(usize),
}

/// A row's fields, indexed by [`Column::index`]; `None` is absent.
pub(super) type Fields<'a> = [Option<Cow<'a, str>>; 6];

/// A problem and the column it is in, when it is in one.
pub(super) type Refusal = (RowProblem, Option<Column>);

/// An accepted row.
pub(super) struct Accepted<'a> {
    pub platform: Platform,
    /// The normalised key ([`normalize_key`]).
    pub key: Cow<'a, str>,
    pub customer: Customer,
}

/// Checks a row and builds its record.
pub(super) fn accept<'a>(
    fields: &'a Fields<'a>,
    max_field_bytes: usize,
) -> Result<Accepted<'a>, Refusal> {
    for column in Column::ALL {
        if let Some(value) = &fields[column.index()] {
            let bytes = value.trim().len();
            if bytes > max_field_bytes {
                let problem = RowProblem::TooLong {
                    column,
                    bytes,
                    limit: max_field_bytes,
                };
                return Err((problem, Some(column)));
            }
        }
    }
    let required = |column: Column| match &fields[column.index()] {
        None => Err((RowProblem::Missing(column), Some(column))),
        Some(value) if value.trim().is_empty() => Err((RowProblem::Empty(column), Some(column))),
        Some(value) => Ok(value.trim()),
    };
    let optional = |column: Column| {
        fields[column.index()]
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };

    let platform = required(Column::Platform)?;
    let platform = platform_named(platform).ok_or_else(|| {
        (
            RowProblem::UnknownPlatform(echo(platform)),
            Some(Column::Platform),
        )
    })?;
    let key = normalize_key(required(Column::Handle)?);
    if key.is_empty() {
        return Err((RowProblem::Empty(Column::Handle), Some(Column::Handle)));
    }
    let customer_id = required(Column::CustomerId)?.to_owned();
    let lifetime_value = match optional(Column::LifetimeValue) {
        None => None,
        Some(text) => match text.parse::<f64>() {
            // `+ 0.0` turns `-0` into 0.
            Ok(v) if v.is_finite() && v >= 0.0 => Some(v + 0.0),
            _ => {
                let problem = RowProblem::BadLifetimeValue(echo(text));
                return Err((problem, Some(Column::LifetimeValue)));
            }
        },
    };
    Ok(Accepted {
        platform,
        key,
        customer: Customer {
            customer_id,
            tier: optional(Column::Tier).map(str::to_lowercase),
            account_owner: optional(Column::AccountOwner).map(str::to_owned),
            lifetime_value,
        },
    })
}

/// The platform a table names, ASCII case ignored; `twitter` is `x`.
pub fn platform_named(name: &str) -> Option<Platform> {
    let name = name.trim();
    [
        ("bluesky", Platform::Bluesky),
        ("x", Platform::X),
        ("twitter", Platform::X),
        ("mastodon", Platform::Mastodon),
        ("reddit", Platform::Reddit),
        ("generic", Platform::Generic),
    ]
    .into_iter()
    .find(|(n, _)| n.eq_ignore_ascii_case(name))
    .map(|(_, p)| p)
}

/// A value quoted in a message, cut to 40 characters so a message stays one readable line.
fn echo(value: &str) -> String {
    const MAX: usize = 40;
    match value.char_indices().nth(MAX) {
        None => value.to_owned(),
        Some((cut, _)) => format!("{}…", &value[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(values: [Option<&str>; 6]) -> Fields<'_> {
        values.map(|v| v.map(Cow::Borrowed))
    }

    #[test]
    fn rows_table() {
        type Want = Result<(Platform, &'static str, Customer), Refusal>;
        let full = |id: &str, tier: Option<&str>, owner: Option<&str>, ltv: Option<f64>| Customer {
            customer_id: id.to_owned(),
            tier: tier.map(str::to_owned),
            account_owner: owner.map(str::to_owned),
            lifetime_value: ltv,
        };
        let cases: Vec<(&str, [Option<&str>; 6], Want)> = vec![
            (
                "all fields, normalised",
                [
                    Some(" X "),
                    Some(" @AcmeFan "),
                    Some(" C-1 "),
                    Some(" Gold "),
                    Some(" dana@acme.example "),
                    Some(" 1200.5 "),
                ],
                Ok((
                    Platform::X,
                    "acmefan",
                    full("C-1", Some("gold"), Some("dana@acme.example"), Some(1200.5)),
                )),
            ),
            (
                "twitter is x; empty optionals are absent",
                [
                    Some("Twitter"),
                    Some("12345"),
                    Some("C-2"),
                    Some(""),
                    Some(" "),
                    Some(""),
                ],
                Ok((Platform::X, "12345", full("C-2", None, None, None))),
            ),
            (
                "mastodon keeps user@server",
                [
                    Some("mastodon"),
                    Some("@Fan@Mastodon.Social"),
                    Some("C-3"),
                    None,
                    None,
                    None,
                ],
                Ok((
                    Platform::Mastodon,
                    "fan@mastodon.social",
                    full("C-3", None, None, None),
                )),
            ),
            (
                "negative zero is zero",
                [
                    Some("bluesky"),
                    Some("did:plc:abc"),
                    Some("C-4"),
                    None,
                    None,
                    Some("-0"),
                ],
                Ok((
                    Platform::Bluesky,
                    "did:plc:abc",
                    full("C-4", None, None, Some(0.0)),
                )),
            ),
            (
                "unknown platform",
                [Some("facebook"), Some("a"), Some("C"), None, None, None],
                Err((
                    RowProblem::UnknownPlatform("facebook".into()),
                    Some(Column::Platform),
                )),
            ),
            (
                "a lone @ is an empty handle",
                [Some("x"), Some(" @ "), Some("C"), None, None, None],
                Err((RowProblem::Empty(Column::Handle), Some(Column::Handle))),
            ),
            (
                "empty customer id",
                [Some("x"), Some("a"), Some("  "), None, None, None],
                Err((
                    RowProblem::Empty(Column::CustomerId),
                    Some(Column::CustomerId),
                )),
            ),
            (
                "missing handle",
                [Some("x"), None, Some("C"), None, None, None],
                Err((RowProblem::Missing(Column::Handle), Some(Column::Handle))),
            ),
            (
                "not a number",
                [Some("x"), Some("a"), Some("C"), None, None, Some("$1,200")],
                Err((
                    RowProblem::BadLifetimeValue("$1,200".into()),
                    Some(Column::LifetimeValue),
                )),
            ),
            (
                "infinite",
                [Some("x"), Some("a"), Some("C"), None, None, Some("inf")],
                Err((
                    RowProblem::BadLifetimeValue("inf".into()),
                    Some(Column::LifetimeValue),
                )),
            ),
            (
                "negative",
                [Some("x"), Some("a"), Some("C"), None, None, Some("-5")],
                Err((
                    RowProblem::BadLifetimeValue("-5".into()),
                    Some(Column::LifetimeValue),
                )),
            ),
            (
                "too long, even in an optional column",
                [
                    Some("x"),
                    Some("a"),
                    Some("C"),
                    None,
                    Some("0123456789abcdefghijk"),
                    None,
                ],
                Err((
                    RowProblem::TooLong {
                        column: Column::AccountOwner,
                        bytes: 21,
                        limit: 20,
                    },
                    Some(Column::AccountOwner),
                )),
            ),
        ];
        for (name, values, want) in cases {
            let fields = fields(values);
            let got = accept(&fields, 20).map(|a| (a.platform, a.key.into_owned(), a.customer));
            let want = want.map(|(p, k, c)| (p, k.to_owned(), c));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn echoes_are_short() {
        let long = "é".repeat(100);
        assert_eq!(echo(&long).chars().count(), 41);
        assert_eq!(echo("short"), "short");
    }
}
