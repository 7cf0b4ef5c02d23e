//! Parsing the RFC 3339 timestamps the firehose stamps as `createdAt` (and earshot passes
//! through as `post.created_at`), so the receiver can compute send-to-receipt latency without
//! a date crate. Only UTC (`Z`) and numeric offsets are accepted; fractions up to
//! nanoseconds are kept to the microsecond.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the epoch, now.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// (year, month, day) → days since 1970-01-01, proleptic Gregorian (Howard Hinnant's
/// algorithm; the inverse of `earshot::timestamp::civil_from_days`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` to microseconds since the epoch.
pub fn parse_rfc3339_us(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + (b[i] - b'0') as i64;
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..6 {
            micros *= 10;
        }
    }
    let offset_s = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let off = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let secs =
        days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + se - offset_s;
    u64::try_from(secs * 1_000_000 + micros).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_generator_stamp() {
        for t in [
            0u64,
            1_795_000_000_123_456,
            951_782_400_000_001,
            4_102_444_799_999_999,
        ] {
            let s = earshot::timestamp::rfc3339_micros(t);
            assert_eq!(parse_rfc3339_us(&s), Some(t), "{s}");
        }
    }

    #[test]
    fn accepts_millis_offsets_and_rejects_junk() {
        assert_eq!(
            parse_rfc3339_us("2026-11-18T11:06:40.123Z"),
            Some(1_795_000_000_123_000)
        );
        assert_eq!(
            parse_rfc3339_us("2026-11-18T12:06:40+01:00"),
            Some(1_795_000_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_us("2026-11-18T11:06:40.123456789Z"),
            Some(1_795_000_000_123_456)
        );
        for bad in [
            "",
            "2026-11-18",
            "2026-13-18T11:06:40Z",
            "2026-11-18T11:06:40",
            "2026-11-18T11:06:40.Z",
            "2026-11-18T11:06:40Zjunk",
            "20x6-11-18T11:06:40Z",
        ] {
            assert_eq!(parse_rfc3339_us(bad), None, "{bad}");
        }
    }
}
