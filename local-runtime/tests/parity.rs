//! Parity with llama.cpp, the reference implementation, on tiny random-weight GGUF files
//! (llama, qwen2, qwen3, gemma2, gemma3, phi3; every tensor type the converter supports):
//! one per (architecture, tensor type), converted by scripts/convert/gguf_llama_to_onnx.py
//! and run by llama.cpp (llama-cpp-python, teacher-forced, logits at every position) in
//! scripts/setup-models.sh (scripts/convert/parity_fixtures.py). Here the same tokens go
//! through the Rust runtime and the logits are compared position by position.
//!
//! Tolerance (docs/local-runtime.md, "Parity"): both implementations quantize activations to
//! int8 for their quantized matmuls (llama.cpp: Q8_0/Q8_1/Q8_K blocks; ONNX Runtime's
//! MatMulNBits accuracy_level 4: int8 blocks of 32), so bit-exactness is not the bar.
//! Measured against the exact fp32 computation of the same weights, each implementation
//! alone reaches a worst-position cosine of 0.992-0.9998 on these fixtures, so the two can
//! differ by about twice that: we require cosine >= 0.97 at every position and >= 0.995 on
//! average, and the same top-1 token wherever llama.cpp's top-2 margin is at least 0.25 x
//! the standard deviation of its logits (a smaller margin is within the int8 noise).
//! Float weights (F32, F16) go through fp32 MatMul: cosine >= 0.9999 and top-1 everywhere.

mod common;

use std::path::{Path, PathBuf};

use local_runtime::decoder::Decoder;
use local_runtime::{default_cache_dir, ExecutionProvider};

#[derive(serde::Deserialize)]
struct Reference {
    tokens: Vec<u32>,
    positions: usize,
    vocab: usize,
    tensor_type: String,
    architecture: String,
}

fn fixtures_dir() -> PathBuf {
    let d = default_cache_dir().join("models").join("parity");
    assert!(
        d.join("manifest.json").is_file(),
        "parity fixtures missing at {}: {}",
        d.display(),
        common::SETUP_HINT
    );
    d
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        ab += (*x as f64) * (*y as f64);
        aa += (*x as f64) * (*x as f64);
        bb += (*y as f64) * (*y as f64);
    }
    ab / (aa.sqrt() * bb.sqrt()).max(1e-30)
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// (top-1 margin over the second best, standard deviation) of one logits row.
fn margin_and_std(v: &[f32]) -> (f32, f32) {
    let (mut a, mut b) = (f32::MIN, f32::MIN);
    for &x in v {
        if x > a {
            b = a;
            a = x;
        } else if x > b {
            b = x;
        }
    }
    let n = v.len() as f64;
    let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
    let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n;
    (a - b, var.sqrt() as f32)
}

struct Outcome {
    name: String,
    min_cos: f64,
    mean_cos: f64,
    top1_checked: usize,
    top1_failed: Vec<usize>,
    float_weights: bool,
}

fn check(dir: &Path) -> Outcome {
    let r: Reference = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reference.json")).expect("reference.json"),
    )
    .expect("parse reference.json");
    let want = read_f32(&dir.join("llamacpp_logits.f32"));
    assert_eq!(want.len(), r.positions * r.vocab, "{}", dir.display());
    let rt = common::runtime();
    let mut d = Decoder::load(&rt, dir, &[ExecutionProvider::Cpu], 2)
        .unwrap_or_else(|e| panic!("load {}: {e}", dir.display()));
    assert_eq!(d.vocab_size(), r.vocab);
    let mut cache = d.empty_cache(1).expect("cache");
    let got = d.forward(&mut cache, &[&r.tokens], true).expect("forward");
    assert_eq!(got.len(), want.len());
    let v = r.vocab;
    let float_weights = matches!(r.tensor_type.as_str(), "F32" | "F16" | "BF16");
    let (mut min_cos, mut sum_cos) = (f64::MAX, 0.0);
    let (mut checked, mut failed) = (0, Vec::new());
    for p in 0..r.positions {
        let (a, b) = (&got[p * v..(p + 1) * v], &want[p * v..(p + 1) * v]);
        let c = cosine(a, b);
        min_cos = min_cos.min(c);
        sum_cos += c;
        let (margin, std) = margin_and_std(b);
        if float_weights || margin >= 0.25 * std {
            checked += 1;
            if argmax(a) != argmax(b) {
                failed.push(p);
            }
        }
    }
    Outcome {
        name: format!("{}-{}", r.architecture, r.tensor_type),
        min_cos,
        mean_cos: sum_cos / r.positions as f64,
        top1_checked: checked,
        top1_failed: failed,
        float_weights,
    }
}

#[test]
fn tiny_models_match_llama_cpp_for_every_architecture_and_tensor_type() {
    let root = fixtures_dir();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("read fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("reference.json").is_file())
        .collect();
    dirs.sort();
    let mut bad = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for dir in &dirs {
        let o = check(dir);
        seen.insert(o.name.clone());
        let (min_floor, mean_floor) = if o.float_weights {
            (0.9999, 0.9999)
        } else {
            (0.97, 0.995)
        };
        eprintln!(
            "{:<12} cosine min {:.5} mean {:.5}; top-1 {}/{} positions agree",
            o.name,
            o.min_cos,
            o.mean_cos,
            o.top1_checked - o.top1_failed.len(),
            o.top1_checked
        );
        if o.min_cos < min_floor || o.mean_cos < mean_floor || !o.top1_failed.is_empty() {
            bad.push(format!(
                "{}: min cos {:.5} (floor {min_floor}), mean {:.5} (floor {mean_floor}), top-1 differs at {:?}",
                o.name, o.min_cos, o.mean_cos, o.top1_failed
            ));
        }
    }
    // every architecture and every tensor type the converter keeps (or expands) is covered
    let want: Vec<String> = [
        "F32", "F16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K",
    ]
    .iter()
    .map(|t| format!("llama-{t}"))
    .chain(
        ["qwen2", "qwen3", "gemma2", "gemma3", "phi3"]
            .iter()
            .flat_map(|a| ["F32", "Q8_0", "Q4_K"].map(|t| format!("{a}-{t}"))),
    )
    .collect();
    let missing: Vec<&String> = want.iter().filter(|w| !seen.contains(*w)).collect();
    assert!(
        missing.is_empty(),
        "parity fixtures missing in {}: {missing:?} ({})",
        root.display(),
        common::SETUP_HINT
    );
    assert!(bad.is_empty(), "parity failures:\n{}", bad.join("\n"));
}
