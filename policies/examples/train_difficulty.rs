//! Train the lexical difficulty model.
//!
//! `cargo run --release -p switchyard-policies --example train_difficulty -- /work/shared/eval/dev.jsonl [out.json]`
//!
//! Uses rows labelled `easy` (0) or `hard` (1); `borderline` rows are skipped. Prints
//! 5-fold cross-validated ROC-AUC, accuracy, Brier score and a reliability table, then fits
//! on all rows and writes the weights (default `policies/models/difficulty_lexical.json`).
#![allow(clippy::needless_range_loop)] // dense numeric loops read clearer with indices

use std::io::BufRead;
use std::process::ExitCode;

use policies::classify::difficulty::{features, sigmoid, LexicalModel, DENSE_NAMES, HASH_BITS};

struct Row {
    dense: Vec<f32>,
    hashed: Vec<u32>,
    y: f32,
}

const L2_DENSE: f32 = 1e-3;
const L2_HASH: f32 = 3e-2;
const EPOCHS: usize = 400;
const LR: f32 = 0.05;

fn fit(rows: &[&Row]) -> LexicalModel {
    let d = DENSE_NAMES.len();
    let h = 1usize << HASH_BITS;
    let n = rows.len() as f32;
    let mut mean = vec![0f32; d];
    let mut std = vec![0f32; d];
    for r in rows {
        for i in 0..d {
            mean[i] += r.dense[i] / n;
        }
    }
    for r in rows {
        for i in 0..d {
            std[i] += (r.dense[i] - mean[i]).powi(2) / n;
        }
    }
    for s in std.iter_mut() {
        *s = s.sqrt().max(1e-3);
    }
    let mut m = LexicalModel {
        version: 1,
        dense_names: DENSE_NAMES.iter().map(|s| s.to_string()).collect(),
        mean,
        std,
        dense_w: vec![0.0; d],
        hash_bits: HASH_BITS,
        hash_w: vec![0.0; h],
        bias: 0.0,
        platt_a: 1.0,
        platt_b: 0.0,
        cv: serde_json::Value::Null,
    };
    // Full-batch gradient descent with Adam.
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let np = d + h + 1;
    let mut mom = vec![0f32; np];
    let mut vel = vec![0f32; np];
    for t in 1..=EPOCHS {
        let mut g = vec![0f32; np];
        for r in rows {
            let p = sigmoid(m.logit(&r.dense, &r.hashed));
            let e = (p - r.y) / n;
            for i in 0..d {
                g[i] += e * (r.dense[i] - m.mean[i]) / m.std[i];
            }
            for &k in &r.hashed {
                g[d + k as usize] += e;
            }
            g[np - 1] += e;
        }
        for i in 0..d {
            g[i] += L2_DENSE * m.dense_w[i];
        }
        for k in 0..h {
            g[d + k] += L2_HASH * m.hash_w[k];
        }
        for i in 0..np {
            mom[i] = b1 * mom[i] + (1.0 - b1) * g[i];
            vel[i] = b2 * vel[i] + (1.0 - b2) * g[i] * g[i];
            let mh = mom[i] / (1.0 - b1.powi(t as i32));
            let vh = vel[i] / (1.0 - b2.powi(t as i32));
            let step = LR * mh / (vh.sqrt() + eps);
            if i < d {
                m.dense_w[i] -= step;
            } else if i < d + h {
                m.hash_w[i - d] -= step;
            } else {
                m.bias -= step;
            }
        }
    }
    m
}

fn auc(scores: &[(f32, f32)]) -> f64 {
    let mut pos = 0f64;
    let mut neg = 0f64;
    let mut wins = 0f64;
    for &(s, y) in scores {
        if y > 0.5 {
            pos += 1.0;
        } else {
            neg += 1.0;
        }
        let _ = s;
    }
    for &(sp, yp) in scores.iter().filter(|x| x.1 > 0.5) {
        let _ = yp;
        for &(sn, _) in scores.iter().filter(|x| x.1 <= 0.5) {
            wins += if sp > sn {
                1.0
            } else if sp == sn {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (pos * neg).max(1.0)
}

/// Fit Platt parameters (a, b) on out-of-fold logits by gradient descent on log loss.
fn platt(z: &[(f32, f32)]) -> (f32, f32) {
    let (mut a, mut b) = (1.0f32, 0.0f32);
    let n = z.len() as f32;
    for _ in 0..3000 {
        let (mut ga, mut gb) = (0.0, 0.0);
        for &(zi, y) in z {
            let e = sigmoid(a * zi + b) - y;
            ga += e * zi / n;
            gb += e / n;
        }
        a -= 0.1 * ga;
        b -= 0.1 * gb;
    }
    (a, b)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: train_difficulty DEV.jsonl [OUT.json]");
        return ExitCode::FAILURE;
    };
    let out = args.get(2).cloned().unwrap_or_else(|| {
        format!(
            "{}/models/difficulty_lexical.json",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut rows = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let Ok(line) = line else {
            eprintln!("{path}:{}: read error", i + 1);
            return ExitCode::FAILURE;
        };
        let v: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("{path}:{}: {e}", i + 1);
                return ExitCode::FAILURE;
            }
        };
        let y = match v["difficulty"].as_str() {
            Some("easy") => 0.0,
            Some("hard") => 1.0,
            _ => continue,
        };
        let prompt = v["prompt"].as_str().unwrap_or("");
        let (dense, hashed) = features(prompt, 1);
        rows.push(Row { dense, hashed, y });
    }
    // Deterministic shuffle (LCG) into 5 folds.
    let mut idx: Vec<usize> = (0..rows.len()).collect();
    let mut seed: u64 = 0x5eed;
    for i in (1..idx.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        idx.swap(i, (seed >> 33) as usize % (i + 1));
    }
    let k = 5;
    let mut oof: Vec<(f32, f32)> = Vec::new();
    let mut fold_aucs = Vec::new();
    for f in 0..k {
        let train: Vec<&Row> = idx
            .iter()
            .enumerate()
            .filter(|(p, _)| p % k != f)
            .map(|(_, &i)| &rows[i])
            .collect();
        let test: Vec<&Row> = idx
            .iter()
            .enumerate()
            .filter(|(p, _)| p % k == f)
            .map(|(_, &i)| &rows[i])
            .collect();
        let m = fit(&train);
        let scored: Vec<(f32, f32)> = test
            .iter()
            .map(|r| (m.logit(&r.dense, &r.hashed), r.y))
            .collect();
        fold_aucs.push(auc(&scored));
        oof.extend(scored);
    }
    let (pa, pb) = platt(&oof);
    let cv_auc = auc(&oof);
    let stats = |a: f32, b: f32| {
        let n = oof.len() as f64;
        let acc = oof
            .iter()
            .filter(|(z, y)| (sigmoid(a * z + b) >= 0.5) == (*y > 0.5))
            .count() as f64
            / n;
        let brier = oof
            .iter()
            .map(|(z, y)| ((sigmoid(a * z + b) - y) as f64).powi(2))
            .sum::<f64>()
            / n;
        (acc, brier)
    };
    let (acc_raw, brier_raw) = stats(1.0, 0.0);
    let (acc_cal, brier_cal) = stats(pa, pb);
    println!(
        "rows: {} (hard {})",
        rows.len(),
        rows.iter().filter(|r| r.y > 0.5).count()
    );
    println!(
        "5-fold CV ROC-AUC {cv_auc:.4} (folds {:?})",
        fold_aucs
            .iter()
            .map(|a| format!("{a:.3}"))
            .collect::<Vec<_>>()
    );
    println!("raw:   accuracy@0.5 {acc_raw:.4}  Brier {brier_raw:.4}");
    println!("platt: a={pa:.3} b={pb:.3}  accuracy@0.5 {acc_cal:.4}  Brier {brier_cal:.4}");
    println!("reliability (Platt-scaled, out-of-fold):  bin  n  mean_pred  frac_hard");
    for bin in 0..5 {
        let lo = bin as f32 / 5.0;
        let hi = lo + 0.2;
        let sel: Vec<_> = oof
            .iter()
            .map(|(z, y)| (sigmoid(pa * z + pb), *y))
            .filter(|(p, _)| *p >= lo && (*p < hi || bin == 4))
            .collect();
        if sel.is_empty() {
            continue;
        }
        let mp = sel.iter().map(|x| x.0).sum::<f32>() / sel.len() as f32;
        let fh = sel.iter().map(|x| x.1).sum::<f32>() / sel.len() as f32;
        println!("  [{lo:.1},{hi:.1})  {:3}  {mp:.3}  {fh:.3}", sel.len());
    }
    let all: Vec<&Row> = rows.iter().collect();
    let mut m = fit(&all);
    m.platt_a = pa;
    m.platt_b = pb;
    m.cv = serde_json::json!({
        "folds": k, "roc_auc": (cv_auc * 10000.0).round() / 10000.0,
        "accuracy": (acc_cal * 10000.0).round() / 10000.0, "brier": (brier_cal * 10000.0).round() / 10000.0,
        "rows": rows.len(),
    });
    // Round weights to keep the file small.
    let r = |v: &mut Vec<f32>| v.iter_mut().for_each(|x| *x = (*x * 1e4).round() / 1e4);
    r(&mut m.dense_w);
    r(&mut m.hash_w);
    r(&mut m.mean);
    r(&mut m.std);
    let json = match serde_json::to_string(&m) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("serialize: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::write(&out, json + "\n") {
        eprintln!("{out}: {e}");
        return ExitCode::FAILURE;
    }
    println!("wrote {out}");
    ExitCode::SUCCESS
}
