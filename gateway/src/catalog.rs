//! The model catalog comparison: every configured model, open and proprietary, with its
//! licence terms, price or compute cost, measured latency (p50/p95, time to first token,
//! decode rate) from the ledger, and measured quality agreement from shadow pairs — side
//! by side, for `GET /v1/models` and the dashboard. Measurements are read from the
//! shared ledger (so every replica shows the same numbers) at most every 30 s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::Row;

use crate::accounting::PriceCatalog;
use crate::dashboard::data::percentile;
use crate::routing::ModelInfo;
use crate::shadow::store::{load as load_pairs, PairFilter};
use crate::store::time::now_ms;
use crate::store::{with_pool, Db, StoreError};

/// Latency measured over the window, answered requests only (cache hits excluded).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Measured {
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p95_ms: Option<f64>,
    /// Median output tokens per second after the first token (streams) or over the whole
    /// request (non-streaming answers).
    pub tokens_per_s: Option<f64>,
}

/// What shadow pairs say about a model.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Agreement {
    /// Pairs where this model was the cheaper side, compared with a stronger one.
    pub pairs_as_candidate: u64,
    /// Mean quality relative to the stronger model of each pair (1.0 = as good).
    pub quality_vs_reference: Option<f64>,
    /// Of those, how many a judge scored.
    pub judged: u64,
    /// Pairs where this model was the reference.
    pub pairs_as_reference: u64,
}

/// The price a model is charged at.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "basis", rename_all = "snake_case")]
pub enum Pricing {
    /// USD per million tokens.
    Tokens {
        input_per_mtok_usd: f64,
        output_per_mtok_usd: f64,
    },
    /// In-process: compute time at the configured hourly rates.
    Compute {
        cpu_hour_usd: f64,
        gpu_hour_usd: f64,
    },
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogEntry {
    pub id: String,
    pub owned_by: String,
    pub local: bool,
    pub license: String,
    pub commercial_use: Option<bool>,
    pub pricing: Pricing,
    pub measured: Option<Measured>,
    pub agreement: Option<Agreement>,
}

/// The window measurements cover.
const WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;
/// Ledger rows read per refresh, newest first: enough for stable percentiles.
const MAX_ROWS: i64 = 50_000;
const REFRESH: Duration = Duration::from_secs(30);

type Measurements = (HashMap<String, Measured>, HashMap<String, Agreement>);

/// Builds catalog entries; holds the last measurements for up to 30 s.
pub struct Catalog {
    db: Option<Db>,
    prices: Arc<PriceCatalog>,
    cached: tokio::sync::Mutex<Option<(Instant, Arc<Measurements>)>>,
}

impl Catalog {
    pub fn new(db: Option<Db>, prices: Arc<PriceCatalog>) -> Catalog {
        Catalog {
            db,
            prices,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The entries for `models`, measured. A database error leaves measurements out
    /// rather than failing the listing.
    pub async fn entries(&self, models: &[ModelInfo]) -> Vec<CatalogEntry> {
        let m = self.measurements().await;
        models
            .iter()
            .map(|info| self.entry(info, m.as_deref()))
            .collect()
    }

    fn entry(&self, info: &ModelInfo, m: Option<&Measurements>) -> CatalogEntry {
        let meta = info.metadata.as_ref();
        let local = info.owned_by == "local";
        let license = meta
            .and_then(|v| v.get("license"))
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| {
                if local {
                    "see model card".into()
                } else {
                    "proprietary API (provider terms)".into()
                }
            });
        let commercial_use = meta
            .and_then(|v| v.get("commercial_use"))
            .and_then(|v| v.as_bool());
        let pricing = if local {
            let (cpu, gpu) = self.prices.local_rates_micros();
            Pricing::Compute {
                cpu_hour_usd: cpu as f64 / 1e6,
                gpu_hour_usd: gpu as f64 / 1e6,
            }
        } else {
            let upstream = info
                .id
                .split_once('/')
                .filter(|(p, _)| *p == info.owned_by)
                .map_or(info.id.as_str(), |(_, m)| m);
            match self
                .prices
                .lookup(&info.id)
                .or_else(|| self.prices.lookup(upstream))
            {
                Some(p) => Pricing::Tokens {
                    input_per_mtok_usd: p.input_per_mtok as f64 / 1e6,
                    output_per_mtok_usd: p.output_per_mtok as f64 / 1e6,
                },
                None => Pricing::Unknown,
            }
        };
        CatalogEntry {
            id: info.id.clone(),
            owned_by: info.owned_by.clone(),
            local,
            license,
            commercial_use,
            pricing,
            measured: m.and_then(|(lat, _)| lat.get(&info.id).cloned()),
            agreement: m.and_then(|(_, q)| q.get(&info.id).cloned()),
        }
    }

    async fn measurements(&self) -> Option<Arc<Measurements>> {
        let db = self.db.as_ref()?;
        let mut cached = self.cached.lock().await;
        if let Some((at, m)) = cached.as_ref() {
            if at.elapsed() < REFRESH {
                return Some(m.clone());
            }
        }
        match measure(db, now_ms() - WINDOW_MS).await {
            Ok(m) => {
                let m = Arc::new(m);
                *cached = Some((Instant::now(), m.clone()));
                Some(m)
            }
            Err(e) => {
                tracing::warn!("model catalog measurements unavailable: {e}");
                cached.as_ref().map(|(_, m)| m.clone())
            }
        }
    }

    /// Forgets the cached measurements (tests, after a known change).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }
}

/// Latency per model from the ledger and agreement per model from shadow pairs.
pub async fn measure(db: &Db, since_ms: i64) -> Result<Measurements, StoreError> {
    #[derive(Default)]
    struct Acc {
        requests: u64,
        errors: u64,
        latency: Vec<f64>,
        ttft: Vec<f64>,
        rate: Vec<f64>,
    }
    let mut acc: HashMap<String, Acc> = HashMap::new();
    with_pool!(db, |pool| {
        let rows = sqlx::query(
            "SELECT model, latency_ms, ttft_ms, output_tokens, status FROM ledger \
             WHERE ts_ms >= $1 AND cache_hit = 0 AND model <> '' ORDER BY ts_ms DESC LIMIT $2",
        )
        .bind(since_ms)
        .bind(MAX_ROWS)
        .fetch_all(pool)
        .await?;
        for row in rows {
            let model: String = row.try_get("model")?;
            let latency: i64 = row.try_get("latency_ms")?;
            let ttft: Option<i64> = row.try_get("ttft_ms")?;
            let tokens: i64 = row.try_get("output_tokens")?;
            let status: i64 = row.try_get("status")?;
            let a = acc.entry(model).or_default();
            a.requests += 1;
            if status >= 400 {
                a.errors += 1;
                continue;
            }
            a.latency.push(latency as f64);
            if let Some(t) = ttft {
                a.ttft.push(t as f64);
            }
            let decode_ms = (latency - ttft.unwrap_or(0)).max(1) as f64;
            if tokens > 1 {
                a.rate.push(tokens as f64 * 1000.0 / decode_ms);
            }
        }
    });
    let mut latency = HashMap::new();
    for (model, mut a) in acc {
        for v in [&mut a.latency, &mut a.ttft, &mut a.rate] {
            v.sort_by(f64::total_cmp);
        }
        latency.insert(
            model,
            Measured {
                requests: a.requests,
                errors: a.errors,
                p50_ms: percentile(&a.latency, 0.50),
                p95_ms: percentile(&a.latency, 0.95),
                ttft_p50_ms: percentile(&a.ttft, 0.50),
                ttft_p95_ms: percentile(&a.ttft, 0.95),
                tokens_per_s: percentile(&a.rate, 0.50),
            },
        );
    }
    let pairs = load_pairs(
        db,
        &PairFilter {
            from_ms: Some(since_ms),
            limit: MAX_ROWS as usize,
            ..PairFilter::default()
        },
    )
    .await?;
    let mut agreement: HashMap<String, (Agreement, f64)> = HashMap::new();
    for p in pairs.iter().filter(|p| p.quality.is_some()) {
        let q = p.quality.unwrap_or(0.0);
        let weak = agreement.entry(p.weak().model.clone()).or_default();
        weak.0.pairs_as_candidate += 1;
        weak.0.judged += u64::from(p.judge.is_some());
        weak.1 += q;
        agreement
            .entry(p.strong().model.clone())
            .or_default()
            .0
            .pairs_as_reference += 1;
    }
    let agreement = agreement
        .into_iter()
        .map(|(m, (mut a, sum))| {
            if a.pairs_as_candidate > 0 {
                a.quality_vs_reference = Some(sum / a.pairs_as_candidate as f64);
            }
            (m, a)
        })
        .collect();
    Ok((latency, agreement))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_carry_licence_and_pricing_basis_without_a_database() {
        let catalog = Catalog::new(None, Arc::new(PriceCatalog::builtin()));
        let models = [
            ModelInfo {
                id: "local/smollm2-135m-instruct".into(),
                owned_by: "local".into(),
                metadata: Some(
                    serde_json::json!({"license": "Apache-2.0", "commercial_use": true}),
                ),
            },
            ModelInfo {
                id: "gpt-4o-mini".into(),
                owned_by: "openai".into(),
                metadata: None,
            },
            ModelInfo {
                id: "openai/gpt-4o".into(),
                owned_by: "openai".into(),
                metadata: None,
            },
            ModelInfo {
                id: "mystery".into(),
                owned_by: "openai".into(),
                metadata: None,
            },
        ];
        let e = catalog.entries(&models).await;
        assert!(e[0].local);
        assert_eq!(e[0].license, "Apache-2.0");
        assert_eq!(e[0].commercial_use, Some(true));
        assert!(matches!(e[0].pricing, Pricing::Compute { .. }));
        assert!(
            matches!(e[1].pricing, Pricing::Tokens { input_per_mtok_usd, output_per_mtok_usd } if input_per_mtok_usd > 0.0 && output_per_mtok_usd > input_per_mtok_usd)
        );
        // `provider/model` is priced as the provider's model.
        assert!(matches!(e[2].pricing, Pricing::Tokens { .. }));
        assert_eq!(e[3].pricing, Pricing::Unknown);
        assert!(e
            .iter()
            .all(|x| x.measured.is_none() && x.agreement.is_none()));
    }
}
