//! Calibration of the difficulty threshold from scored shadow pairs, the RouteLLM way:
//! a router sends a request to the strong (frontier) side when its difficulty is at or
//! above a threshold `t`, to the weak (cheap) side otherwise. Each pair says what both
//! sides cost on one real request and how good the weak answer was relative to the
//! strong one, so every threshold's outcome on the same traffic can be computed:
//! the share sent to the strong side, the quality relative to sending everything there,
//! and the cost.

use serde::Serialize;

/// One scored pair, reduced to what calibration needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    /// The classifier's difficulty score of the request, in [0, 1].
    pub difficulty: f64,
    /// Quality of the weak answer relative to the strong one, in [0, 1].
    pub quality: f64,
    pub strong_cost_micros: i64,
    pub weak_cost_micros: i64,
}

/// What routing the pairs' traffic with one threshold would have given.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Requests with difficulty >= threshold go to the strong side. Above 1: none do.
    pub threshold: f64,
    pub strong_share: f64,
    /// Mean quality relative to sending everything to the strong side (1.0).
    pub quality: f64,
    pub cost_per_request_micros: f64,
    /// Cost relative to sending everything to the strong side.
    pub relative_cost: f64,
}

/// A threshold above every difficulty score: nothing goes to the strong side.
pub const NONE_STRONG: f64 = 1.000_001;

/// The curve at every threshold that changes the routing (each distinct difficulty,
/// plus "nothing strong"), in increasing threshold order: from all-strong to all-weak.
pub fn curve(pairs: &[Pair]) -> Vec<CurvePoint> {
    if pairs.is_empty() {
        return Vec::new();
    }
    let mut sorted: Vec<Pair> = pairs
        .iter()
        .filter(|p| p.difficulty.is_finite() && p.quality.is_finite())
        .copied()
        .collect();
    sorted.sort_by(|a, b| a.difficulty.total_cmp(&b.difficulty));
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let all_strong: i64 = sorted.iter().map(|p| p.strong_cost_micros).sum();
    // Walking the threshold up moves one request at a time from strong to weak; the
    // running sums make the whole curve O(n log n).
    let (mut weak_quality, mut weak_cost, mut strong_cost) = (0.0, 0i64, all_strong);
    let mut out = Vec::with_capacity(n + 1);
    let mut i = 0;
    while i <= n {
        let threshold = if i < n {
            sorted[i].difficulty
        } else {
            NONE_STRONG
        };
        let strong = n - i;
        let quality = (weak_quality + strong as f64) / n as f64;
        let cost = weak_cost + strong_cost;
        out.push(CurvePoint {
            threshold,
            strong_share: strong as f64 / n as f64,
            quality,
            cost_per_request_micros: cost as f64 / n as f64,
            relative_cost: if all_strong > 0 {
                cost as f64 / all_strong as f64
            } else {
                1.0
            },
        });
        if i == n {
            break;
        }
        // Every pair at this difficulty moves together.
        let d = sorted[i].difficulty;
        while i < n && sorted[i].difficulty == d {
            weak_quality += sorted[i].quality.clamp(0.0, 1.0);
            weak_cost += sorted[i].weak_cost_micros;
            strong_cost -= sorted[i].strong_cost_micros;
            i += 1;
        }
    }
    out
}

/// The cheapest point that keeps `target` quality; among equally cheap ones, the one
/// sending least to the strong side. `None` when no threshold reaches the target.
pub fn recommend(curve: &[CurvePoint], target: f64) -> Option<CurvePoint> {
    curve
        .iter()
        .filter(|p| p.quality + 1e-12 >= target)
        .min_by(|a, b| {
            a.cost_per_request_micros
                .total_cmp(&b.cost_per_request_micros)
                .then(a.strong_share.total_cmp(&b.strong_share))
        })
        .copied()
}

/// The curve at fixed thresholds (0, 0.05, …, 1), for tables and charts.
pub fn sampled(curve: &[CurvePoint], steps: usize) -> Vec<CurvePoint> {
    let steps = steps.max(1);
    (0..=steps)
        .filter_map(|k| {
            let t = k as f64 / steps as f64;
            // The routing at threshold t is the curve point of the smallest distinct
            // difficulty >= t (or the all-weak end).
            curve
                .iter()
                .find(|p| p.threshold >= t)
                .map(|p| CurvePoint { threshold: t, ..*p })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pair(difficulty: f64, quality: f64) -> Pair {
        Pair {
            difficulty,
            quality,
            strong_cost_micros: 100,
            weak_cost_micros: 1,
        }
    }

    #[test]
    fn known_optimum_is_found() {
        // Easy requests (d < 0.6): the weak side is as good. Hard ones: it fails.
        let pairs: Vec<Pair> = (0..100)
            .map(|i| {
                let d = f64::from(i) / 100.0;
                pair(d, if d < 0.6 { 1.0 } else { 0.0 })
            })
            .collect();
        let c = curve(&pairs);
        assert_eq!(c.len(), 101);
        assert_eq!(c[0].strong_share, 1.0);
        assert_eq!(c[0].quality, 1.0);
        assert_eq!(c[100].strong_share, 0.0);
        assert!((c[100].quality - 0.6).abs() < 1e-12);
        let best = recommend(&c, 1.0).expect("full quality is reachable");
        assert!((best.threshold - 0.6).abs() < 1e-12, "{best:?}");
        assert!((best.strong_share - 0.4).abs() < 1e-12);
        assert!((best.cost_per_request_micros - (40.0 * 100.0 + 60.0) / 100.0).abs() < 1e-9);
        // At 95% five of the hard requests may go weak: the threshold rises to 0.65.
        let best = recommend(&c, 0.95).expect("reachable");
        assert!((best.threshold - 0.65).abs() < 1e-12, "{best:?}");
        assert!(best.quality >= 0.95);
    }

    #[test]
    fn ties_in_difficulty_move_together() {
        let pairs = [pair(0.5, 1.0), pair(0.5, 0.0), pair(0.2, 1.0)];
        let c = curve(&pairs);
        let thresholds: Vec<f64> = c.iter().map(|p| p.threshold).collect();
        assert_eq!(thresholds, [0.2, 0.5, NONE_STRONG]);
        assert!((c[2].quality - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn unreachable_target_and_empty_input() {
        assert!(curve(&[]).is_empty());
        assert_eq!(recommend(&[], 0.9), None);
        let c = curve(&[pair(0.1, 0.0)]);
        // All-strong always reaches 1.0, so any target up to 1 is reachable.
        assert_eq!(recommend(&c, 1.0).map(|p| p.strong_share), Some(1.0));
        assert_eq!(recommend(&c, 1.01), None);
    }

    #[test]
    fn sampled_curve_reads_off_the_routing_at_each_threshold() {
        let pairs: Vec<Pair> = (0..10).map(|i| pair(f64::from(i) / 10.0, 0.5)).collect();
        let s = sampled(&curve(&pairs), 20);
        assert_eq!(s.len(), 21);
        assert!((s[10].threshold - 0.5).abs() < 1e-12);
        assert!((s[10].strong_share - 0.5).abs() < 1e-12);
        assert!((s[18].strong_share - 0.1).abs() < 1e-12);
        assert_eq!(s[20].strong_share, 0.0);
    }

    proptest! {
        #[test]
        fn curve_is_monotone_and_matches_brute_force(
            raw in prop::collection::vec((0u32..20, 0.0f64..1.0, 0i64..1000, 0i64..1000), 1..60),
            target in 0.0f64..1.0,
        ) {
            let pairs: Vec<Pair> = raw.iter().map(|(d, q, s, w)| Pair {
                difficulty: f64::from(*d) / 20.0, quality: *q, strong_cost_micros: *s, weak_cost_micros: *w,
            }).collect();
            let c = curve(&pairs);
            for w in c.windows(2) {
                prop_assert!(w[0].strong_share >= w[1].strong_share);
                prop_assert!(w[0].quality + 1e-9 >= w[1].quality);
            }
            // Brute force at every curve threshold.
            for p in &c {
                let n = pairs.len() as f64;
                let q: f64 = pairs.iter().map(|x| if x.difficulty >= p.threshold { 1.0 } else { x.quality }).sum::<f64>() / n;
                let cost: i64 = pairs.iter().map(|x| if x.difficulty >= p.threshold { x.strong_cost_micros } else { x.weak_cost_micros }).sum();
                prop_assert!((q - p.quality).abs() < 1e-9);
                prop_assert!((cost as f64 / n - p.cost_per_request_micros).abs() < 1e-9);
            }
            if let Some(best) = recommend(&c, target) {
                prop_assert!(best.quality + 1e-12 >= target);
                for p in c.iter().filter(|p| p.quality + 1e-12 >= target) {
                    prop_assert!(best.cost_per_request_micros <= p.cost_per_request_micros + 1e-9);
                }
            }
        }
    }
}
