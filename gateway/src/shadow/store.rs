//! The shadow side-table: one row per comparison, written off the request path. No
//! prompt or answer text unless the rule that planned the shadow allowed retention.

use sqlx::Row;

use super::calibrate::Pair;
use crate::store::{with_pool, Db, StoreError};

/// One side of a pair as measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Side {
    pub model: String,
    pub external: bool,
    pub cost_micros: i64,
    pub latency_ms: u64,
    pub output_tokens: u32,
}

/// One stored comparison. Scores are `None` when the shadow call failed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PairRecord {
    pub id: String,
    /// The ledger id of the request that was shadowed.
    pub request_id: String,
    pub ts_ms: i64,
    pub team: String,
    pub key_id: String,
    pub rule: String,
    pub difficulty: f64,
    pub primary: Side,
    pub shadow: Side,
    pub shadow_status: u16,
    pub shadow_error: Option<String>,
    pub primary_is_strong: bool,
    pub length_ratio: Option<f64>,
    pub refusal_primary: Option<bool>,
    pub refusal_shadow: Option<bool>,
    pub format_primary: Option<bool>,
    pub format_shadow: Option<bool>,
    pub lexical: Option<f64>,
    pub embedding: Option<f64>,
    /// `weak`, `strong` or `tie`.
    pub judge: Option<String>,
    pub judge_model: Option<String>,
    pub judge_cost_micros: i64,
    /// Weak answer's quality relative to the strong one, in [0, 1].
    pub quality: Option<f64>,
    pub prompt_text: Option<String>,
    pub primary_text: Option<String>,
    pub shadow_text: Option<String>,
}

impl PairRecord {
    /// The pair as calibration sees it (scored pairs only).
    pub fn calibration_pair(&self) -> Option<Pair> {
        let quality = self.quality?;
        let (strong, weak) = if self.primary_is_strong {
            (&self.primary, &self.shadow)
        } else {
            (&self.shadow, &self.primary)
        };
        Some(Pair {
            difficulty: self.difficulty,
            quality,
            strong_cost_micros: strong.cost_micros,
            weak_cost_micros: weak.cost_micros,
        })
    }

    pub fn strong(&self) -> &Side {
        if self.primary_is_strong {
            &self.primary
        } else {
            &self.shadow
        }
    }

    pub fn weak(&self) -> &Side {
        if self.primary_is_strong {
            &self.shadow
        } else {
            &self.primary
        }
    }
}

fn ppm(x: f64) -> i64 {
    (x * 1e6).round() as i64
}

fn from_ppm(x: i64) -> f64 {
    x as f64 / 1e6
}

fn opt_flag(b: Option<bool>) -> Option<i64> {
    b.map(i64::from)
}

const COLUMNS: &str = "id, request_id, ts_ms, team, key_id, rule, difficulty_ppm, \
    primary_model, primary_external, primary_cost_micros, primary_latency_ms, primary_output_tokens, \
    shadow_model, shadow_external, shadow_cost_micros, shadow_latency_ms, shadow_output_tokens, \
    shadow_status, shadow_error, primary_is_strong, length_ratio_ppm, refusal_primary, refusal_shadow, \
    format_primary, format_shadow, lexical_ppm, embedding_ppm, judge, judge_model, judge_cost_micros, \
    quality_ppm, prompt_text, primary_text, shadow_text";

pub async fn insert(db: &Db, r: &PairRecord) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO shadow_pairs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
         $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, \
         $29, $30, $31, $32, $33, $34) ON CONFLICT (id) DO NOTHING"
    );
    let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    with_pool!(db, |pool| {
        sqlx::query(&sql)
            .bind(&r.id)
            .bind(&r.request_id)
            .bind(r.ts_ms)
            .bind(&r.team)
            .bind(&r.key_id)
            .bind(&r.rule)
            .bind(ppm(r.difficulty))
            .bind(&r.primary.model)
            .bind(i64::from(r.primary.external))
            .bind(r.primary.cost_micros)
            .bind(ms(r.primary.latency_ms))
            .bind(i64::from(r.primary.output_tokens))
            .bind(&r.shadow.model)
            .bind(i64::from(r.shadow.external))
            .bind(r.shadow.cost_micros)
            .bind(ms(r.shadow.latency_ms))
            .bind(i64::from(r.shadow.output_tokens))
            .bind(i64::from(r.shadow_status))
            .bind(&r.shadow_error)
            .bind(i64::from(r.primary_is_strong))
            .bind(r.length_ratio.map(ppm))
            .bind(opt_flag(r.refusal_primary))
            .bind(opt_flag(r.refusal_shadow))
            .bind(opt_flag(r.format_primary))
            .bind(opt_flag(r.format_shadow))
            .bind(r.lexical.map(ppm))
            .bind(r.embedding.map(ppm))
            .bind(&r.judge)
            .bind(&r.judge_model)
            .bind(r.judge_cost_micros)
            .bind(r.quality.map(ppm))
            .bind(&r.prompt_text)
            .bind(&r.primary_text)
            .bind(&r.shadow_text)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Which pairs to read.
#[derive(Debug, Clone, Default)]
pub struct PairFilter {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub team: Option<String>,
    pub rule: Option<String>,
    /// At most this many, newest first (0: no limit).
    pub limit: usize,
}

pub async fn load(db: &Db, f: &PairFilter) -> Result<Vec<PairRecord>, StoreError> {
    let mut sql = format!(
        "SELECT {COLUMNS} FROM shadow_pairs WHERE ts_ms >= $1 AND ts_ms < $2 \
         AND ($3 = '' OR team = $3) AND ($4 = '' OR rule = $4) ORDER BY ts_ms DESC"
    );
    if f.limit > 0 {
        sql.push_str(&format!(" LIMIT {}", f.limit));
    }
    let from = f.from_ms.unwrap_or(0);
    let to = f.to_ms.unwrap_or(i64::MAX);
    let team = f.team.clone().unwrap_or_default();
    let rule = f.rule.clone().unwrap_or_default();
    let mut out = Vec::new();
    with_pool!(db, |pool| {
        let rows = sqlx::query(&sql)
            .bind(from)
            .bind(to)
            .bind(&team)
            .bind(&rule)
            .fetch_all(pool)
            .await?;
        for row in rows {
            let flag = |c: &str| -> Result<Option<bool>, sqlx::Error> {
                Ok(row.try_get::<Option<i64>, _>(c)?.map(|v| v != 0))
            };
            let score = |c: &str| -> Result<Option<f64>, sqlx::Error> {
                Ok(row.try_get::<Option<i64>, _>(c)?.map(from_ppm))
            };
            let side = |p: &str| -> Result<Side, sqlx::Error> {
                Ok(Side {
                    model: row.try_get(format!("{p}_model").as_str())?,
                    external: row.try_get::<i64, _>(format!("{p}_external").as_str())? != 0,
                    cost_micros: row.try_get(format!("{p}_cost_micros").as_str())?,
                    latency_ms: row
                        .try_get::<i64, _>(format!("{p}_latency_ms").as_str())?
                        .max(0) as u64,
                    output_tokens: u32::try_from(
                        row.try_get::<i64, _>(format!("{p}_output_tokens").as_str())?,
                    )
                    .unwrap_or(0),
                })
            };
            out.push(PairRecord {
                id: row.try_get("id")?,
                request_id: row.try_get("request_id")?,
                ts_ms: row.try_get("ts_ms")?,
                team: row.try_get("team")?,
                key_id: row.try_get("key_id")?,
                rule: row.try_get("rule")?,
                difficulty: from_ppm(row.try_get("difficulty_ppm")?),
                primary: side("primary")?,
                shadow: side("shadow")?,
                shadow_status: u16::try_from(row.try_get::<i64, _>("shadow_status")?).unwrap_or(0),
                shadow_error: row.try_get("shadow_error")?,
                primary_is_strong: row.try_get::<i64, _>("primary_is_strong")? != 0,
                length_ratio: score("length_ratio_ppm")?,
                refusal_primary: flag("refusal_primary")?,
                refusal_shadow: flag("refusal_shadow")?,
                format_primary: flag("format_primary")?,
                format_shadow: flag("format_shadow")?,
                lexical: score("lexical_ppm")?,
                embedding: score("embedding_ppm")?,
                judge: row.try_get("judge")?,
                judge_model: row.try_get("judge_model")?,
                judge_cost_micros: row.try_get("judge_cost_micros")?,
                quality: score("quality_ppm")?,
                prompt_text: row.try_get("prompt_text")?,
                primary_text: row.try_get("primary_text")?,
                shadow_text: row.try_get("shadow_text")?,
            });
        }
    });
    Ok(out)
}

/// Removes pairs older than `cutoff_ms` (run with the ledger's retention).
pub async fn delete_before(db: &Db, cutoff_ms: i64) -> Result<u64, StoreError> {
    Ok(with_pool!(db, |pool| {
        sqlx::query("DELETE FROM shadow_pairs WHERE ts_ms < $1")
            .bind(cutoff_ms)
            .execute(pool)
            .await?
            .rows_affected()
    }))
}
