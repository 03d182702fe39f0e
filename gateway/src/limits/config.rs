//! The `limits:` section of the gateway config. Parsing is strict (`deny_unknown_fields`)
//! because a misspelt threshold that silently disables a budget is the worst failure mode.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::LimitsError;

/// Largest amount a counter may hold. Redis Lua numbers are doubles, so comparisons stay
/// exact only below 2^53; keeping every amount below this bound keeps the scripts exact.
pub const MAX_MICROS: i64 = 1 << 52;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub backend: Backend,
    pub budgets: Vec<BudgetRule>,
    pub rate_limits: Vec<RateRule>,
}

/// Where the counters live: `memory` is exact for one process; `redis` shares them
/// between replicas. Written `backend: memory` or `backend: {redis: {url: ...}}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Backend {
    #[default]
    Memory,
    Redis(RedisBackend),
}

// By hand because serde_yaml_ng reads externally tagged enums only as `!redis` tags; the
// plain one-key map is what operators write, and field errors inside it must stay precise
// (an untagged enum would only say "did not match any variant").
impl<'de> Deserialize<'de> for Backend {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Backend, D::Error> {
        struct BackendVisitor;
        impl<'de> Visitor<'de> for BackendVisitor {
            type Value = Backend;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`memory` or `{redis: {url: ...}}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Backend, E> {
                match v {
                    "memory" => Ok(Backend::Memory),
                    "redis" => Err(E::custom(
                        "the redis backend needs settings: `{redis: {url: ...}}`",
                    )),
                    other => Err(E::unknown_variant(other, &["memory", "redis"])),
                }
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Backend, A::Error> {
                let key: String = map.next_key()?.ok_or_else(|| {
                    de::Error::custom("empty backend; expected `memory` or `redis`")
                })?;
                let backend = match key.as_str() {
                    "memory" => {
                        map.next_value::<de::IgnoredAny>()?;
                        Backend::Memory
                    }
                    "redis" => Backend::Redis(map.next_value()?),
                    other => return Err(de::Error::unknown_variant(other, &["memory", "redis"])),
                };
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom(
                        "backend takes exactly one of `memory`, `redis`",
                    ));
                }
                Ok(backend)
            }
        }
        deserializer.deserialize_any(BackendVisitor)
    }
}

#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisBackend {
    /// `redis://[user:password@]host:port[/db]` (no TLS).
    pub url: String,
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    #[serde(default)]
    pub on_redis_error: OnRedisError,
    /// Bound on connecting and on each script call; past it the call counts as a Redis error.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

// The URL may carry a password; config dumps and error logs must not show it.
impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("on_redis_error", &self.on_redis_error)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

fn default_key_prefix() -> String {
    "switchyard:limits".into()
}

fn default_timeout_ms() -> u64 {
    250
}

/// What `admit` does when Redis cannot answer in time.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnRedisError {
    /// Admit without enforcement, with a warning on the response and an error log event.
    FailOpen,
    /// Reject with `LimitRejection::Unavailable` (503). The default: a hard budget is a
    /// promise about money, and an outage must not turn into unbounded spend.
    #[default]
    FailClosed,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Key,
    Team,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Team => "team",
        }
    }
}

/// UTC calendar periods: a `day` starts at 00:00:00Z, a `month` on its first day.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    Month,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }
}

/// A spend budget that applies separately to every subject matching `subject`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BudgetRule {
    pub name: String,
    pub scope: Scope,
    #[serde(default = "any_subject")]
    pub subject: String,
    pub period: Period,
    #[serde(default)]
    pub soft_usd: Option<Usd>,
    #[serde(default)]
    pub hard_usd: Option<Usd>,
}

/// Requests and tokens per UTC clock minute, separately for every matching subject.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateRule {
    pub name: String,
    pub scope: Scope,
    #[serde(default = "any_subject")]
    pub subject: String,
    #[serde(default)]
    pub rpm: Option<u32>,
    #[serde(default)]
    pub tpm: Option<u32>,
}

fn any_subject() -> String {
    "*".into()
}

/// A dollar amount held as integer micro-dollars. It parses from a string (`"12.50"`,
/// exact) or a YAML number; a number is read back through its shortest decimal form, so
/// `0.1` means exactly 100 000 micros, never 99 999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Usd(i64);

impl Usd {
    pub fn from_micros(micros: i64) -> Result<Usd, String> {
        if !(0..=MAX_MICROS).contains(&micros) {
            return Err(format!(
                "amount must be between 0 and {} micro-dollars",
                MAX_MICROS
            ));
        }
        Ok(Usd(micros))
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    /// Parses `D[.F]` with at most six fraction digits; anything finer than a micro-dollar
    /// would be rounded, and rounding money silently is what this type exists to prevent.
    pub fn parse(text: &str) -> Result<Usd, String> {
        let s = text.trim();
        let s = s.strip_prefix('$').unwrap_or(s);
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, f),
            None => (s, ""),
        };
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !digits(whole)
            || !digits(frac)
            || (s.contains('.') && frac.is_empty())
        {
            return Err(format!(
                "`{text}` is not a non-negative decimal dollar amount"
            ));
        }
        if frac.len() > 6 {
            return Err(format!(
                "`{text}` has more than 6 decimal places (the unit is one micro-dollar)"
            ));
        }
        let too_big = || format!("`{text}` is too large");
        let whole: i64 = whole.parse().map_err(|_| too_big())?;
        let mut frac_micros: i64 = 0;
        for (i, b) in frac.bytes().enumerate() {
            frac_micros += i64::from(b - b'0') * 10_i64.pow(5 - i as u32);
        }
        let micros = whole
            .checked_mul(1_000_000)
            .and_then(|m| m.checked_add(frac_micros))
            .ok_or_else(too_big)?;
        Usd::from_micros(micros).map_err(|e| format!("`{text}`: {e}"))
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_usd(self.0))
    }
}

/// `$12.50`, `$0.000125`: at least cents, more digits only when they are not zero.
pub fn format_usd(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let mut frac = format!("{:06}", m % 1_000_000);
    while frac.len() > 2 && frac.ends_with('0') {
        frac.pop();
    }
    format!("{sign}${}.{frac}", m / 1_000_000)
}

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Usd, D::Error> {
        struct UsdVisitor;
        impl Visitor<'_> for UsdVisitor {
            type Value = Usd;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a dollar amount such as 12.5 or \"12.50\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Usd, E> {
                Usd::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Usd, E> {
                Usd::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Usd, E> {
                Usd::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Usd, E> {
                if !v.is_finite() {
                    return Err(E::custom("a dollar amount must be finite"));
                }
                // `{}` prints the shortest decimal that reads back as the same f64, which
                // is the text the operator wrote for any amount with <= 15 digits.
                Usd::parse(&format!("{v}")).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(UsdVisitor)
    }
}

pub(crate) fn validate(cfg: &LimitsConfig) -> Result<(), LimitsError> {
    let err = |m: String| Err(LimitsError::Config(m));
    let mut seen = std::collections::HashSet::new();
    for b in &cfg.budgets {
        if b.name.trim().is_empty() {
            return err("a budget has an empty name".into());
        }
        if !seen.insert(b.name.as_str()) {
            return err(format!("budget name `{}` is used twice", b.name));
        }
        if b.subject.is_empty() {
            return err(format!("budget `{}`: subject must not be empty", b.name));
        }
        match (b.soft_usd, b.hard_usd) {
            (None, None) => {
                return err(format!(
                    "budget `{}` needs soft_usd, hard_usd or both",
                    b.name
                ))
            }
            (Some(s), Some(h)) if s > h => {
                return err(format!(
                    "budget `{}`: soft_usd {s} is above hard_usd {h}, so it could never warn",
                    b.name
                ))
            }
            _ => {}
        }
    }
    let mut seen = std::collections::HashSet::new();
    for r in &cfg.rate_limits {
        if r.name.trim().is_empty() {
            return err("a rate limit has an empty name".into());
        }
        if !seen.insert(r.name.as_str()) {
            return err(format!("rate limit name `{}` is used twice", r.name));
        }
        if r.subject.is_empty() {
            return err(format!(
                "rate limit `{}`: subject must not be empty",
                r.name
            ));
        }
        if r.rpm.is_none() && r.tpm.is_none() {
            return err(format!("rate limit `{}` needs rpm, tpm or both", r.name));
        }
    }
    if let Backend::Redis(r) = &cfg.backend {
        if r.key_prefix.is_empty() {
            return err("redis key_prefix must not be empty".into());
        }
        if r.timeout_ms == 0 {
            return err("redis timeout_ms must be above 0".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usd_parses_exactly() {
        assert_eq!(Usd::parse("12.5").map(Usd::micros), Ok(12_500_000));
        assert_eq!(Usd::parse("0.000001").map(Usd::micros), Ok(1));
        assert_eq!(Usd::parse("$3").map(Usd::micros), Ok(3_000_000));
        assert!(Usd::parse("0.0000001").is_err());
        assert!(Usd::parse("-1").is_err());
        assert!(Usd::parse("1.").is_err());
        assert!(Usd::parse("abc").is_err());
        assert!(Usd::parse("99999999999999999999").is_err());
    }

    #[test]
    fn yaml_numbers_keep_their_decimal_value() {
        #[derive(Deserialize)]
        struct T {
            a: Usd,
            b: Usd,
            c: Usd,
        }
        let t: Result<T, _> = serde_yaml_ng::from_str("a: 0.1\nb: 7\nc: \"0.29\"\n");
        let t = t.expect("valid");
        assert_eq!(
            (t.a.micros(), t.b.micros(), t.c.micros()),
            (100_000, 7_000_000, 290_000)
        );
    }

    #[test]
    fn config_parses_both_backends_and_rejects_unknown_fields() {
        let yaml = r#"
backend:
  redis:
    url: redis://:secret@127.0.0.1:6379
    on_redis_error: fail_open
budgets:
  - name: team-daily
    scope: team
    period: day
    soft_usd: 8
    hard_usd: "10.00"
rate_limits:
  - name: key-rpm
    scope: key
    subject: "svc-*"
    rpm: 60
"#;
        let cfg: LimitsConfig = serde_yaml_ng::from_str(yaml).expect("valid config");
        let Backend::Redis(r) = &cfg.backend else {
            panic!("expected redis backend")
        };
        assert_eq!(r.on_redis_error, OnRedisError::FailOpen);
        assert_eq!(r.key_prefix, "switchyard:limits");
        assert_eq!(r.timeout_ms, 250);
        assert!(!format!("{r:?}").contains("secret"));
        assert_eq!(cfg.budgets[0].subject, "*");
        assert_eq!(cfg.budgets[0].hard_usd.map(Usd::micros), Some(10_000_000));

        let memory: LimitsConfig = serde_yaml_ng::from_str("backend: memory").expect("valid");
        assert_eq!(memory.backend, Backend::Memory);
        let default: LimitsConfig = serde_yaml_ng::from_str("{}").expect("valid");
        assert_eq!(default, LimitsConfig::default());
        let default_closed: RedisBackend =
            serde_yaml_ng::from_str("url: redis://127.0.0.1").expect("valid");
        assert_eq!(default_closed.on_redis_error, OnRedisError::FailClosed);

        assert!(
            serde_yaml_ng::from_str::<LimitsConfig>("backend: {redis: {url: x, tls: true}}")
                .is_err()
        );
        assert!(serde_yaml_ng::from_str::<LimitsConfig>("backend: postgres").is_err());
        let typo = "budgets:\n  - {name: a, scope: key, period: day, hard_usdd: 1}\n";
        assert!(serde_yaml_ng::from_str::<LimitsConfig>(typo).is_err());
    }

    #[test]
    fn validation_catches_useless_rules() {
        let cfg = |yaml: &str| serde_yaml_ng::from_str::<LimitsConfig>(yaml).expect("parses");
        assert!(validate(&cfg("budgets: [{name: a, scope: key, period: day}]")).is_err());
        assert!(validate(&cfg(
            "budgets: [{name: a, scope: key, period: day, soft_usd: 2, hard_usd: 1}]"
        ))
        .is_err());
        assert!(validate(&cfg("rate_limits: [{name: a, scope: key}]")).is_err());
        assert!(validate(&cfg(
            "rate_limits: [{name: a, scope: key, rpm: 1}, {name: a, scope: team, rpm: 1}]"
        ))
        .is_err());
        assert!(validate(&cfg(
            "budgets: [{name: a, scope: key, period: month, soft_usd: 1, hard_usd: 1}]"
        ))
        .is_ok());
    }

    #[test]
    fn formats_usd() {
        assert_eq!(format_usd(10_000_000), "$10.00");
        assert_eq!(format_usd(125), "$0.000125");
        assert_eq!(format_usd(1_230_000), "$1.23");
    }
}
