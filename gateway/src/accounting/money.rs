//! Money as integer micro-dollars (1 USD = 1 000 000 micros). Decimal text is parsed
//! digit by digit so no amount ever passes through a float.

use serde::{Deserialize, Deserializer};

pub const MICROS_PER_USD: i64 = 1_000_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("{0:?} is not a non-negative decimal amount")]
    Syntax(String),
    #[error("{0:?} has more than 6 decimal places (amounts are whole micro-dollars)")]
    TooPrecise(String),
    #[error("{0:?} is too large")]
    Overflow(String),
}

/// Parses `"2.5"`, `"0.000075"`, `"10"` into micros. Negative amounts are refused: no price
/// or rate in this system is negative.
pub fn parse_usd(s: &str) -> Result<i64, MoneyError> {
    let t = s.trim();
    let (int, frac) = match t.split_once('.') {
        Some((i, f)) => (i, f),
        None => (t, ""),
    };
    let all_digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return Err(MoneyError::Syntax(s.into()));
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 6 {
        return Err(MoneyError::TooPrecise(s.into()));
    }
    let overflow = || MoneyError::Overflow(s.into());
    let whole: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| overflow())?
    };
    let mut f: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| overflow())?
    };
    for _ in frac.len()..6 {
        f *= 10;
    }
    whole
        .checked_mul(MICROS_PER_USD)
        .and_then(|w| w.checked_add(f))
        .ok_or_else(overflow)
}

/// Exact decimal text with 6 places: `1234567` → `"1.234567"`, `-5` → `"-0.000005"`.
pub fn format_usd(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    let per = MICROS_PER_USD.unsigned_abs();
    format!("{sign}{}.{:06}", abs / per, abs % per)
}

/// Serde: accepts `"2.50"` or a YAML/JSON number. A number arrives as f64, so it is turned
/// back into its shortest round-trip decimal text (what the author wrote, for anything up
/// to 15 significant digits) and parsed exactly from there.
pub fn de_usd<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Float(f64),
        Text(String),
    }
    let text = match Raw::deserialize(d)? {
        Raw::Int(i) => i.to_string(),
        Raw::Float(f) if f.is_finite() => format!("{f}"),
        Raw::Float(f) => f.to_string(),
        Raw::Text(s) => s,
    };
    parse_usd(&text).map_err(serde::de::Error::custom)
}

pub fn de_usd_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "de_usd")] i64);
    Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_exactly() {
        assert_eq!(parse_usd("2.50"), Ok(2_500_000));
        assert_eq!(parse_usd("0.075"), Ok(75_000));
        assert_eq!(parse_usd("10"), Ok(10_000_000));
        assert_eq!(parse_usd(".5"), Ok(500_000));
        assert_eq!(parse_usd("0.000001"), Ok(1));
        assert_eq!(parse_usd("1.1000000"), Ok(1_100_000));
        assert!(matches!(
            parse_usd("0.0000001"),
            Err(MoneyError::TooPrecise(_))
        ));
        assert!(matches!(parse_usd("-1"), Err(MoneyError::Syntax(_))));
        assert!(matches!(parse_usd("1e3"), Err(MoneyError::Syntax(_))));
        assert!(matches!(parse_usd("."), Err(MoneyError::Syntax(_))));
        assert!(matches!(
            parse_usd("99999999999999999"),
            Err(MoneyError::Overflow(_))
        ));
    }

    #[test]
    fn yaml_numbers_do_not_drift() {
        #[derive(Deserialize)]
        struct P {
            #[serde(deserialize_with = "de_usd")]
            a: i64,
            #[serde(deserialize_with = "de_usd")]
            b: i64,
            #[serde(deserialize_with = "de_usd")]
            c: i64,
        }
        let p: P = serde_yaml_ng::from_str("a: 0.10\nb: 0.075\nc: \"1.25\"").expect("yaml");
        assert_eq!((p.a, p.b, p.c), (100_000, 75_000, 1_250_000));
    }

    proptest! {
        #[test]
        fn format_parse_round_trip(m in 0i64..i64::MAX / 2) {
            prop_assert_eq!(parse_usd(&format_usd(m)), Ok(m));
        }
    }
}
