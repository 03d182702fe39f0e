//! Cost accounting: the price catalog, the per-request ledger and spend reports.
//!
//! Money is integer micro-dollars (`i64`) everywhere; see `docs/accounting.md`.

pub mod explore;
mod ledger;
pub mod money;
mod prices;
mod report;

use std::path::PathBuf;

use serde::Deserialize;

pub use ledger::{Ledger, LedgerRecord};
pub use prices::{Cost, Price, PriceCatalog, PriceError};
pub use report::{
    csv_field, render as render_report, spend_report, spend_report_from, GroupBy, SpendQuery,
    SpendRow, SpendSource,
};

/// What to do with a request whose model has no price.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownPrice {
    /// Serve it; the ledger record says `price_known = false` and reports count it.
    #[default]
    Warn,
    /// Refuse it before dispatch (the caller checks `PriceCatalog::lookup`).
    Error,
}

/// The `accounting:` section of the gateway config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountingConfig {
    /// `sqlite:PATH` or `postgres://...`; unset means [`crate::config::Config::database_url`]'s default.
    pub database_url: Option<String>,
    pub flush_interval_ms: u64,
    /// A batch is written as soon as this many records wait, without waiting for the tick.
    pub batch_size: usize,
    /// Records queued in memory at most (a database outage); more are dropped and counted.
    pub max_pending: usize,
    /// YAML merged over the builtin catalog.
    pub prices_file: Option<PathBuf>,
    pub unknown_price: UnknownPrice,
    /// Counterfactual model for savings.
    pub reference_model: String,
    /// Amortized compute price of local inference, written as decimal USD per hour
    /// (`cpu_hour_usd: 0.10`) and held as micro-dollars.
    #[serde(rename = "cpu_hour_usd", deserialize_with = "money::de_usd")]
    pub cpu_hour_micros: i64,
    #[serde(rename = "gpu_hour_usd", deserialize_with = "money::de_usd")]
    pub gpu_hour_micros: i64,
    /// Raw ledger rows older than this many days are deleted; rollups are kept. 0 keeps all.
    pub retention_days: u32,
}

impl Default for AccountingConfig {
    fn default() -> Self {
        AccountingConfig {
            database_url: None,
            flush_interval_ms: 1000,
            batch_size: 500,
            max_pending: 200_000,
            prices_file: None,
            unknown_price: UnknownPrice::Warn,
            reference_model: "gpt-4o".into(),
            cpu_hour_micros: 100_000,
            gpu_hour_micros: 2_500_000,
            retention_days: 30,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_decimal_rates() {
        let c: AccountingConfig = serde_yaml_ng::from_str("{}").expect("empty config");
        assert_eq!(c, AccountingConfig::default());
        let c: AccountingConfig = serde_yaml_ng::from_str(
            "cpu_hour_usd: 0.10\ngpu_hour_usd: \"2.5\"\nunknown_price: error\nretention_days: 7",
        )
        .expect("config");
        assert_eq!(c.cpu_hour_micros, 100_000);
        assert_eq!(c.gpu_hour_micros, 2_500_000);
        assert_eq!(c.unknown_price, UnknownPrice::Error);
        assert!(serde_yaml_ng::from_str::<AccountingConfig>("flush_interval: 5").is_err());
        assert!(serde_yaml_ng::from_str::<AccountingConfig>("cpu_hour_usd: -1").is_err());
    }
}
