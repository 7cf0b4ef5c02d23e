//! Durations in configuration: `"250ms"`, `"30s"`, `"5m"`, `"1.5s"`.
//!
//! Input → output: a string of a decimal number and a unit (`us`, `µs`, `ms`, `s`, `m`, `h`, `d`)
//! → a [`Duration`]. A bare number is refused (except `"0"`): whether `30` meant seconds or
//! milliseconds is exactly the ambiguity a config file should not have. Used through
//! `#[serde(with = "crate::duration")]` on every duration option: the sources, the admin
//! server, the outbox, the queues, noise control, spikes and the customer table.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string is empty.
    #[error("empty duration")]
    Empty,
    /// No unit after the number.
    #[error("duration {0:?} has no unit (use us, ms, s, m, h or d)")]
    MissingUnit(String),
    /// An unknown unit.
    #[error("duration {0:?} has an unknown unit (use us, ms, s, m, h or d)")]
    UnknownUnit(String),
    /// The number does not parse or is out of range.
    #[error("duration {0:?} is not a valid number of that unit")]
    BadNumber(String),
}

/// Parses `"<number><unit>"`, e.g. `"250ms"`, `"1.5s"`, `"2m"`; `"0"` alone is zero.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err(DurationError::BadNumber(text.to_owned()));
    }
    let nanos_per_unit: f64 = match unit.trim() {
        "" => return Err(DurationError::MissingUnit(text.to_owned())),
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        "d" => 86_400e9,
        _ => return Err(DurationError::UnknownUnit(text.to_owned())),
    };
    // Integers are exact; a fraction goes through f64, exact to the nanosecond for any
    // duration a config file would hold.
    if let Ok(whole) = number.parse::<u64>() {
        let nanos = (whole as u128) * (nanos_per_unit as u128);
        return u64::try_from(nanos)
            .map(Duration::from_nanos)
            .map_err(|_| DurationError::BadNumber(text.to_owned()));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| DurationError::BadNumber(text.to_owned()))?;
    let nanos = (value * nanos_per_unit).round();
    if !nanos.is_finite() || nanos < 0.0 || nanos > u64::MAX as f64 {
        return Err(DurationError::BadNumber(text.to_owned()));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// Serde `deserialize_with` for a duration string.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// Serde `serialize_with`: whole milliseconds when exact, else microseconds.
pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    let micros = value.as_micros();
    if micros.is_multiple_of(1000) {
        serializer.serialize_str(&format!("{}ms", micros / 1000))
    } else {
        serializer.serialize_str(&format!("{micros}us"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let ok: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("250ms", Duration::from_millis(250)),
            ("30s", Duration::from_secs(30)),
            (" 5m ", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            ("30d", Duration::from_secs(30 * 86_400)),
            ("1500us", Duration::from_micros(1500)),
            ("7µs", Duration::from_micros(7)),
            ("1.5s", Duration::from_millis(1500)),
            ("0.25ms", Duration::from_micros(250)),
        ];
        for (text, want) in ok {
            assert_eq!(parse(text), Ok(*want), "{text}");
        }
        let bad: &[(&str, DurationError)] = &[
            ("", DurationError::Empty),
            ("30", DurationError::MissingUnit("30".into())),
            ("3w", DurationError::UnknownUnit("3w".into())),
            ("ms", DurationError::BadNumber("ms".into())),
            ("1.2.3s", DurationError::BadNumber("1.2.3s".into())),
            ("-1s", DurationError::BadNumber("-1s".into())),
            (
                "99999999999999999999h",
                DurationError::BadNumber("99999999999999999999h".into()),
            ),
        ];
        for (text, want) in bad {
            assert_eq!(parse(text).as_ref(), Err(want), "{text}");
        }
    }

    #[test]
    fn serialize_round_trips() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct T {
            #[serde(with = "super")]
            d: Duration,
        }
        for d in [
            Duration::from_millis(250),
            Duration::from_micros(1500),
            Duration::ZERO,
        ] {
            let text = toml::to_string(&T { d }).expect("serializes");
            assert_eq!(toml::from_str::<T>(&text).expect("parses"), T { d });
        }
    }
}
