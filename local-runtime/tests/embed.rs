//! Sentence embeddings with all-MiniLM-L6-v2 (needs scripts/setup-models.sh).

mod common;

use local_runtime::{model_names, Embedder};

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn embeddings_are_normalized_and_semantic() {
    let e = Embedder::load(
        &common::runtime(),
        &common::model_dir(model_names::MINILM_L6),
    )
    .unwrap();
    assert_eq!(e.dims(), 384);
    let v = e
        .embed(&[
            "The cat sits on the mat.",
            "A cat is sitting on a rug.",
            "Quarterly revenue grew by eight percent.",
        ])
        .unwrap();
    assert_eq!(v.len(), 3);
    for x in &v {
        assert_eq!(x.len(), 384);
        let n: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-4, "norm {n}");
    }
    let similar = cos(&v[0], &v[1]);
    let unrelated = cos(&v[0], &v[2]);
    assert!(
        similar > 0.5 && similar > unrelated + 0.3,
        "similar {similar} unrelated {unrelated}"
    );
    // batching does not change results (padding is masked out)
    let single = e.embed(&["The cat sits on the mat."]).unwrap();
    assert!(cos(&single[0], &v[0]) > 0.9999);
    assert!(e.embed(&[]).unwrap().is_empty());
}
