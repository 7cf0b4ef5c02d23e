//! Timestamps as RFC 3339 text in UTC (`2026-11-23T11:28:46.123Z`): the one formatter behind a
//! mention's times, digests' windows, spike events, dead letters, Reddit's epoch seconds and
//! the synthetic firehose.
//!
//! A leaf with no date crate: one format, always UTC, from seconds since the epoch and a
//! decimal fraction, through Howard Hinnant's `civil_from_days` (proleptic Gregorian).

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Appends `secs` since the epoch as `YYYY-MM-DDTHH:MM:SS` followed by `.` and `fraction`
/// in `digits` decimal digits (nothing when `digits` is 0), then `Z`.
pub fn write_rfc3339(out: &mut String, secs: i64, fraction: u32, digits: usize) {
    let (y, m, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
    );
    if digits > 0 {
        let _ = write!(out, ".{fraction:0digits$}");
    }
    out.push('Z');
}

/// A `SystemTime` with milliseconds (`2026-11-23T11:28:46.123Z`); times before the epoch
/// are the epoch.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut out = String::with_capacity(24);
    write_rfc3339(&mut out, d.as_secs() as i64, d.subsec_millis(), 3);
    out
}

/// Microseconds since the epoch, with microseconds (`2026-11-23T11:28:46.123456Z`).
pub fn rfc3339_micros(time_us: u64) -> String {
    let mut out = String::with_capacity(27);
    write_rfc3339(
        &mut out,
        (time_us / 1_000_000) as i64,
        (time_us % 1_000_000) as u32,
        6,
    );
    out
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's
/// algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_format_as_rfc3339() {
        let cases = [
            (0u64, 0u32, "1970-01-01T00:00:00.000Z"),
            (1_614_265_330, 5, "2021-02-25T15:02:10.005Z"),
            (951_782_400, 999, "2000-02-29T00:00:00.999Z"),
            (1_795_434_526, 120, "2026-11-23T11:48:46.120Z"),
        ];
        for (secs, ms, want) in cases {
            let t = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms as u64);
            assert_eq!(rfc3339_millis(t), want);
        }
    }

    #[test]
    fn whole_seconds_and_microseconds() {
        let mut out = String::new();
        write_rfc3339(&mut out, 1_614_265_330, 0, 0);
        assert_eq!(out, "2021-02-25T15:02:10Z");
        assert_eq!(
            rfc3339_micros(1_614_265_330_000_007),
            "2021-02-25T15:02:10.000007Z"
        );
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
