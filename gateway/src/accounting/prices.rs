//! The price catalog: per-model token prices with effective dates, glob model names, a
//! builtin list shipped in the binary and a per-deployment override file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::money::{de_usd, de_usd_opt};
use super::{AccountingConfig, LedgerRecord};
use crate::canonical::Usage;
use crate::store::time::{day_of, format_day, now_ms, parse_date};

const BUILTIN: &str = include_str!("../../data/prices.yaml");

/// Token prices in micro-dollars per million tokens. `$2.50 / M` is `2_500_000`, so the
/// price of a single token is `price / 1e6` micro-dollars and stays exact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Price {
    /// The catalog pattern that matched (exact name or glob).
    pub model: String,
    /// First unix day on which this price applies.
    pub effective_day: i64,
    pub input_per_mtok: i64,
    pub output_per_mtok: i64,
    pub cached_input_per_mtok: i64,
    pub cache_write_per_mtok: i64,
}

/// An amount and whether it came from a known price; an unknown price gives `micros: 0`
/// with `price_known: false`, never a silent $0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cost {
    pub micros: i64,
    pub price_known: bool,
}

impl Cost {
    pub const UNKNOWN: Cost = Cost {
        micros: 0,
        price_known: false,
    };
}

#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("cannot read the price file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid price file {path}: {source}")]
    Yaml {
        path: String,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("invalid price for {model:?} in {path}: {reason}")]
    Invalid {
        path: String,
        model: String,
        reason: String,
    },
    #[error("the reference model {0:?} has no price in the catalog")]
    UnknownReference(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(default)]
    #[allow(dead_code)]
    version: Option<u32>,
    #[serde(default)]
    models: Vec<PriceEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceEntry {
    model: String,
    effective: String,
    #[serde(deserialize_with = "de_usd")]
    input: i64,
    #[serde(deserialize_with = "de_usd")]
    output: i64,
    #[serde(default, deserialize_with = "de_usd_opt")]
    cached_input: Option<i64>,
    #[serde(default, deserialize_with = "de_usd_opt")]
    cache_write: Option<i64>,
}

struct Pattern {
    pattern: String,
    /// Ascending by `effective_day`.
    prices: Vec<Price>,
}

pub struct PriceCatalog {
    exact: HashMap<String, Pattern>,
    /// Most specific first (most literal characters), then file order.
    globs: Vec<Pattern>,
    reference_model: String,
    cpu_hour_micros: i64,
    gpu_hour_micros: i64,
}

impl std::fmt::Debug for PriceCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PriceCatalog")
            .field("models", &(self.exact.len() + self.globs.len()))
            .field("reference_model", &self.reference_model)
            .finish()
    }
}

fn parse_file(text: &str, origin: &str) -> Result<Vec<(String, Vec<Price>)>, PriceError> {
    let file: PriceFile = serde_yaml_ng::from_str(text).map_err(|source| PriceError::Yaml {
        path: origin.into(),
        source,
    })?;
    let mut out: Vec<(String, Vec<Price>)> = Vec::new();
    for e in file.models {
        let invalid = |reason: String| PriceError::Invalid {
            path: origin.into(),
            model: e.model.clone(),
            reason,
        };
        if e.model.trim().is_empty() {
            return Err(invalid("empty model name".into()));
        }
        let effective_day = parse_date(e.effective.trim())
            .ok_or_else(|| invalid(format!("effective {:?} is not YYYY-MM-DD", e.effective)))?;
        let price = Price {
            model: e.model.clone(),
            effective_day,
            input_per_mtok: e.input,
            output_per_mtok: e.output,
            cached_input_per_mtok: e.cached_input.unwrap_or(e.input),
            cache_write_per_mtok: e.cache_write.unwrap_or(e.input),
        };
        match out.iter_mut().find(|(m, _)| *m == e.model) {
            Some((_, prices)) => {
                if prices.iter().any(|p| p.effective_day == effective_day) {
                    return Err(invalid(format!("two prices effective {}", e.effective)));
                }
                prices.push(price);
            }
            None => out.push((e.model.clone(), vec![price])),
        }
    }
    for (_, prices) in &mut out {
        prices.sort_by_key(|p| p.effective_day);
    }
    Ok(out)
}

fn is_glob(p: &str) -> bool {
    p.contains(['*', '?'])
}

use crate::routing::glob_match;

fn ceil_div(num: u128, den: u128) -> i64 {
    i64::try_from(num.div_ceil(den)).unwrap_or(i64::MAX)
}

fn nonneg(v: i64) -> u128 {
    u128::try_from(v.max(0)).unwrap_or(0)
}

impl PriceCatalog {
    /// The catalog shipped in the binary, with the default reference model and compute
    /// rates of [`AccountingConfig::default`].
    pub fn builtin() -> Self {
        let cfg = AccountingConfig::default();
        let entries = match parse_file(BUILTIN, "builtin prices.yaml") {
            Ok(e) => e,
            // The builtin file is covered by tests; never reached in a released build.
            Err(e) => {
                tracing::error!("builtin price catalog is invalid: {e}");
                Vec::new()
            }
        };
        Self::from_entries(entries, &cfg)
    }

    /// The builtin catalog merged with `cfg.prices_file` (whole patterns replaced) and the
    /// compute rates and reference model of `cfg`. Fails when the reference model has no
    /// price: every savings figure would be wrong.
    pub fn load(cfg: &AccountingConfig) -> Result<Self, PriceError> {
        let mut entries = parse_file(BUILTIN, "builtin prices.yaml")?;
        if let Some(path) = &cfg.prices_file {
            let overrides = Self::read_file(path)?;
            for (model, prices) in overrides {
                match entries.iter_mut().find(|(m, _)| *m == model) {
                    Some(slot) => slot.1 = prices,
                    None => entries.push((model, prices)),
                }
            }
        }
        let catalog = Self::from_entries(entries, cfg);
        if catalog.lookup(&catalog.reference_model).is_none() {
            return Err(PriceError::UnknownReference(
                catalog.reference_model.clone(),
            ));
        }
        Ok(catalog)
    }

    fn read_file(path: &Path) -> Result<Vec<(String, Vec<Price>)>, PriceError> {
        let text = std::fs::read_to_string(path).map_err(|source| PriceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        parse_file(&text, &path.display().to_string())
    }

    fn from_entries(entries: Vec<(String, Vec<Price>)>, cfg: &AccountingConfig) -> Self {
        let mut exact = HashMap::new();
        let mut globs = Vec::new();
        for (pattern, prices) in entries {
            let p = Pattern {
                pattern: pattern.clone(),
                prices,
            };
            if is_glob(&pattern) {
                globs.push(p);
            } else {
                exact.insert(pattern, p);
            }
        }
        // Stable sort keeps file order among equally specific patterns.
        globs.sort_by_key(|p| {
            std::cmp::Reverse(
                p.pattern
                    .chars()
                    .filter(|c| !matches!(c, '*' | '?'))
                    .count(),
            )
        });
        PriceCatalog {
            exact,
            globs,
            reference_model: cfg.reference_model.clone(),
            cpu_hour_micros: cfg.cpu_hour_micros,
            gpu_hour_micros: cfg.gpu_hour_micros,
        }
    }

    pub fn reference_model(&self) -> &str {
        &self.reference_model
    }

    /// The price in force today for `model`, if the catalog knows it.
    pub fn lookup(&self, model: &str) -> Option<&Price> {
        self.lookup_on(model, day_of(now_ms()))
    }

    /// The price in force on unix day `day` (prices change; old records keep old prices).
    pub fn lookup_on(&self, model: &str, day: i64) -> Option<&Price> {
        let pattern = self
            .exact
            .get(model)
            .or_else(|| self.globs.iter().find(|g| glob_match(&g.pattern, model)))?;
        pattern.prices.iter().rev().find(|p| p.effective_day <= day)
    }

    /// Cost of `usage` at today's price of `model`.
    ///
    /// `usage.input_tokens` counts every prompt token, so the cache reads and writes are
    /// carved out of it (clamped to it) and priced at their own rates. The sum is in
    /// micro-dollars × 1e6 (exact integers) and rounded UP once at the end: a request that
    /// used any priced token costs at least 1 micro, and a total is never understated by
    /// rounding.
    pub fn cost(&self, model: &str, usage: &Usage) -> Cost {
        match self.lookup(model) {
            Some(p) => Cost {
                micros: Self::usage_cost(p, usage),
                price_known: true,
            },
            None => Cost::UNKNOWN,
        }
    }

    pub fn usage_cost(p: &Price, usage: &Usage) -> i64 {
        let input = u128::from(usage.input_tokens);
        let cached = u128::from(usage.cache_read_input_tokens).min(input);
        let written = u128::from(usage.cache_creation_input_tokens).min(input - cached);
        let fresh = input - cached - written;
        let num = fresh * nonneg(p.input_per_mtok)
            + cached * nonneg(p.cached_input_per_mtok)
            + written * nonneg(p.cache_write_per_mtok)
            + u128::from(usage.output_tokens) * nonneg(p.output_per_mtok);
        ceil_div(num, 1_000_000)
    }

    /// What `usage` would have cost on the reference frontier model.
    pub fn counterfactual(&self, usage: &Usage) -> Cost {
        self.cost(&self.reference_model, usage)
    }

    /// Amortized compute cost of `busy_ms` of local inference at the configured hourly
    /// rate, rounded up to whole micros. Measured time may be fractional; money is not.
    pub fn local_cost(&self, busy_ms: f64, gpu: bool) -> i64 {
        let rate = nonneg(if gpu {
            self.gpu_hour_micros
        } else {
            self.cpu_hour_micros
        });
        if busy_ms.is_nan() || busy_ms <= 0.0 {
            return 0;
        }
        // Whole microseconds: sub-microsecond precision is below any rate's resolution.
        let busy_us = (busy_ms * 1000.0).round().min(u64::MAX as f64) as u64;
        ceil_div(rate * u128::from(busy_us), 3_600_000_000)
    }

    /// Upper-bound cost of a request before it runs, for budget reservations: every prompt
    /// token at the dearest input rate (a prompt-cache write costs more than a plain input
    /// token) and the full `max_output_tokens`, so the real cost never exceeds it.
    pub fn estimate(&self, model: &str, input_tokens: u32, max_output_tokens: u32) -> Cost {
        let Some(p) = self.lookup(model) else {
            return Cost::UNKNOWN;
        };
        let input_rate = p
            .input_per_mtok
            .max(p.cached_input_per_mtok)
            .max(p.cache_write_per_mtok);
        let num = u128::from(input_tokens) * nonneg(input_rate)
            + u128::from(max_output_tokens) * nonneg(p.output_per_mtok);
        Cost {
            micros: ceil_div(num, 1_000_000),
            price_known: true,
        }
    }

    /// Fills the token, cost and counterfactual fields of a ledger record for a request
    /// served by a priced (API) model.
    pub fn apply(&self, rec: &mut LedgerRecord, usage: &Usage, tokens_estimated: bool) {
        let cost = self.cost(&rec.model, usage);
        Self::fill_usage(rec, usage, tokens_estimated);
        rec.cost_micros = cost.micros;
        rec.price_known = cost.price_known;
        rec.counterfactual_micros = self.counterfactual(usage).micros;
    }

    /// Same as [`apply`](Self::apply) for a request served in-process: the cost is the
    /// amortized compute time, which is always known.
    pub fn apply_local(
        &self,
        rec: &mut LedgerRecord,
        usage: &Usage,
        tokens_estimated: bool,
        busy_ms: f64,
        gpu: bool,
    ) {
        Self::fill_usage(rec, usage, tokens_estimated);
        rec.cost_micros = self.local_cost(busy_ms, gpu);
        rec.price_known = true;
        rec.counterfactual_micros = self.counterfactual(usage).micros;
    }

    fn fill_usage(rec: &mut LedgerRecord, usage: &Usage, tokens_estimated: bool) {
        rec.input_tokens = usage.input_tokens;
        rec.output_tokens = usage.output_tokens;
        rec.cached_tokens = usage.cache_read_input_tokens;
        rec.tokens_estimated = tokens_estimated;
    }

    /// The hourly compute rates of in-process inference (CPU, GPU), µ$ per hour.
    pub fn local_rates_micros(&self) -> (i64, i64) {
        (self.cpu_hour_micros, self.gpu_hour_micros)
    }

    /// Every pattern and its price in force today, for `/admin` and docs.
    pub fn list(&self) -> Vec<(&str, &Price)> {
        let today = day_of(now_ms());
        let mut out: Vec<(&str, &Price)> = self
            .exact
            .values()
            .chain(self.globs.iter())
            .filter_map(|p| {
                p.prices
                    .iter()
                    .rev()
                    .find(|x| x.effective_day <= today)
                    .map(|x| (p.pattern.as_str(), x))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }
}

impl Price {
    pub fn effective(&self) -> String {
        format_day(self.effective_day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_parses_and_covers_the_common_models() {
        let entries = parse_file(BUILTIN, "builtin").expect("builtin prices parse");
        assert!(!entries.is_empty());
        let c = PriceCatalog::builtin();
        for m in [
            "gpt-4o",
            "gpt-4o-2024-08-06",
            "gpt-4o-mini",
            "gpt-4o-mini-2024-07-18",
            "gpt-4.1",
            "gpt-4.1-mini-2025-04-14",
            "gpt-4.1-nano",
            "o3",
            "o4-mini",
            "claude-opus-4-1-20250805",
            "claude-opus-4-20250514",
            "claude-opus-4-5-20251101",
            "claude-sonnet-4-5",
            "claude-sonnet-4-20250514",
            "claude-haiku-4-5-20251001",
            "claude-3-5-sonnet-20241022",
            "claude-3-5-haiku-latest",
        ] {
            assert!(c.lookup(m).is_some(), "{m} has no price");
        }
        assert!(c.lookup("gpt-5-turbo-imaginary").is_none());
    }

    #[test]
    fn specific_patterns_win_and_dates_select_the_price() {
        let c = PriceCatalog::builtin();
        let p = |m: &str| c.lookup(m).map(|p| p.input_per_mtok);
        assert_eq!(p("gpt-4o"), Some(2_500_000));
        assert_eq!(p("gpt-4o-2024-05-13"), Some(5_000_000));
        assert_eq!(p("gpt-4o-mini-2024-07-18"), Some(150_000));
        assert_eq!(p("gpt-4.1-nano-2025-04-14"), Some(100_000));
        assert_eq!(p("claude-opus-4-5-20251101"), Some(5_000_000));
        assert_eq!(p("claude-opus-4-1-20250805"), Some(15_000_000));
        // Bedrock model ids and cross-region inference profiles.
        assert_eq!(
            p("anthropic.claude-sonnet-4-5-20250929-v1:0"),
            Some(3_000_000)
        );
        assert_eq!(
            p("us.anthropic.claude-haiku-4-5-20251001-v1:0"),
            Some(1_000_000)
        );
        let before_cut = parse_date("2025-05-01").expect("date");
        assert_eq!(
            c.lookup_on("o3", before_cut).map(|p| p.input_per_mtok),
            Some(10_000_000)
        );
        assert_eq!(p("o3"), Some(2_000_000));
        assert!(c
            .lookup_on("o3", parse_date("2025-01-01").expect("date"))
            .is_none());
    }

    #[test]
    fn glob_semantics() {
        assert!(glob_match("a*", "a"));
        assert!(glob_match("a*c", "abbbc"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(!glob_match("gpt-4.1-20*", "gpt-4.1-mini-2025-04-14"));
        assert!(glob_match("*-mini*", "o4-mini-2025"));
    }

    #[test]
    fn cache_tokens_are_priced_separately_and_rounded_up() {
        let c = PriceCatalog::builtin();
        let usage = Usage {
            input_tokens: 1000,
            output_tokens: 100,
            cache_read_input_tokens: 400,
            cache_creation_input_tokens: 0,
        };
        // 600 × 2.5 + 400 × 1.25 + 100 × 10 = 3000 micros for gpt-4o.
        assert_eq!(c.cost("gpt-4o", &usage).micros, 3000);
        let one = Usage {
            input_tokens: 1,
            ..Usage::default()
        };
        // 0.15 micros rounds up to 1.
        assert_eq!(c.cost("gpt-4o-mini", &one).micros, 1);
        assert_eq!(c.cost("nope", &one), Cost::UNKNOWN);
    }

    #[test]
    fn local_cost_is_amortized_hourly_rate() {
        let c = PriceCatalog::builtin();
        assert_eq!(c.local_cost(3_600_000.0, true), 2_500_000);
        assert_eq!(c.local_cost(3_600_000.0, false), 100_000);
        assert_eq!(c.local_cost(1.0, false), 1);
        assert_eq!(c.local_cost(0.0, true), 0);
        assert_eq!(c.local_cost(-5.0, true), 0);
        assert_eq!(c.local_cost(f64::NAN, true), 0);
    }
}
