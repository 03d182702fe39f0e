//! Wall-clock helpers. Times are stored as unix milliseconds (`BIGINT`) so that SQLite and
//! PostgreSQL share one schema and one set of queries; calendar conversion happens here
//! instead of in SQL, where the two dialects disagree.

use std::time::{SystemTime, UNIX_EPOCH};

pub const DAY_MS: i64 = 86_400_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid time {input:?}: expected RFC 3339 (2025-01-31T12:00:00Z), a date (2025-01-31) or unix seconds")]
pub struct TimeError {
    pub input: String,
}

/// Unix seconds, for the places that speak seconds (`created`, status timestamps).
pub fn now_s() -> u64 {
    (now_ms() / 1000).max(0) as u64
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Unix day number (days since 1970-01-01, UTC) of a timestamp; floors for negative times.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// The workspace's one calendar helper (`policies::calendar`).
pub use policies::calendar::{civil_from_days, days_from_civil};

/// `YYYY-MM-DD` of a unix day number.
pub fn format_day(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// RFC 3339 in UTC with millisecond precision.
pub fn format_rfc3339(ms: i64) -> String {
    let day = day_of(ms);
    let rem = ms - day * DAY_MS;
    let (h, mi, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!("{}T{h:02}:{mi:02}:{s:02}.{milli:03}Z", format_day(day))
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `YYYY-MM-DD` → unix day number.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = digits(&s[0..4])?;
    let m = u32::try_from(digits(&s[5..7])?).ok()?;
    let d = u32::try_from(digits(&s[8..10])?).ok()?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses RFC 3339 (`2025-01-31T12:00:00Z`, `...+02:00`, fractional seconds), a bare date
/// (midnight UTC) or integer unix seconds, into unix milliseconds.
pub fn parse_time(input: &str) -> Result<i64, TimeError> {
    let err = || TimeError {
        input: input.chars().take(64).collect(),
    };
    let s = input.trim();
    if let Some(secs) = digits(s) {
        return secs.checked_mul(1000).ok_or_else(err);
    }
    if s.len() == 10 {
        return parse_date(s).map(|d| d * DAY_MS).ok_or_else(err);
    }
    // ASCII only, which also makes every byte index below a char boundary.
    if s.len() < 20 || !s.is_ascii() {
        return Err(err());
    }
    let day = parse_date(&s[..10]).ok_or_else(err)?;
    let t = s.as_bytes();
    if !matches!(t[10], b'T' | b't' | b' ') || t[13] != b':' || t[16] != b':' {
        return Err(err());
    }
    let h = digits(&s[11..13]).ok_or_else(err)?;
    let mi = digits(&s[14..16]).ok_or_else(err)?;
    let sec = digits(&s[17..19]).ok_or_else(err)?;
    if h > 23 || mi > 59 || sec > 60 {
        return Err(err());
    }
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return Err(err());
        }
        let ms_digits: String = frac[..n].chars().chain("000".chars()).take(3).collect();
        millis = digits(&ms_digits).ok_or_else(err)?;
        rest = &frac[n..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(err()),
            };
            let oh = digits(&rest[1..3]).ok_or_else(err)?;
            let om = digits(&rest[4..6]).ok_or_else(err)?;
            if oh > 23 || om > 59 {
                return Err(err());
            }
            sign * (oh * 60 + om)
        }
        _ => return Err(err()),
    };
    Ok(day * DAY_MS + ((h * 60 + mi - offset_min) * 60 + sec) * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_accepted_forms() {
        assert_eq!(parse_time("0"), Ok(0));
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1970-01-02"), Ok(DAY_MS));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_time("1970-01-01T01:00:00.25+01:00"), Ok(250));
        assert_eq!(
            parse_time("2024-02-29T23:59:59.999Z"),
            Ok(days_from_civil(2024, 2, 29) * DAY_MS + DAY_MS - 1)
        );
        for bad in [
            "",
            "yesterday",
            "2023-02-29",
            "2024-13-01",
            "2024-01-01T25:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00+0100",
            "2024-01-01T00:00:00.Z",
            "-5",
            "2024-01-01Té0:00:00Z",
            "2024-01-01T0é:00:00Z",
            "2024-01-01T00:00:00+0é:0",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?} was accepted");
        }
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips(ms in -62_000_000_000_000i64..253_000_000_000_000i64) {
            prop_assert_eq!(parse_time(&format_rfc3339(ms)), Ok(ms));
        }

        #[test]
        fn civil_round_trips(day in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(day);
            prop_assert_eq!(days_from_civil(y, m, d), day);
        }
    }
}
