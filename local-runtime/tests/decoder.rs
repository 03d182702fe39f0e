//! KV-cache and batching correctness on the tiny random-weight model.

mod common;

use local_runtime::decoder::Decoder;
use local_runtime::{model_names, ExecutionProvider};

fn tiny() -> Decoder {
    let rt = common::runtime();
    Decoder::load(
        &rt,
        &common::model_dir(model_names::TINY_LLAMA),
        &[ExecutionProvider::Cpu],
        2,
    )
    .expect("load tiny model")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

const A: &[u32] = &[1, 9690, 198, 2683, 314, 260, 3575, 282, 4649, 47, 2, 198];
const B: &[u32] = &[1, 4093, 198, 19556, 17, 2];

#[test]
fn kv_cache_decode_matches_full_recomputation() {
    let mut d = tiny();
    let v = d.vocab_size();
    // full recomputation over A, all positions
    let mut c = d.empty_cache(1).unwrap();
    let full = d.forward(&mut c, &[A], true).unwrap();
    // incremental: prefill 5 tokens, then one token at a time
    let mut c = d.empty_cache(1).unwrap();
    let first = d.forward(&mut c, &[&A[..5]], false).unwrap();
    assert!(max_diff(&first, &full[4 * v..5 * v]) < 1e-4);
    for i in 5..A.len() {
        let step = d.forward(&mut c, &[&A[i..i + 1]], false).unwrap();
        let diff = max_diff(&step, &full[i * v..(i + 1) * v]);
        assert!(diff < 1e-4, "position {i}: max |Δlogit| = {diff}");
    }
    assert_eq!(c.seq_len(0), A.len());
}

#[test]
fn batched_left_padded_steps_match_single_sequences() {
    let mut d = tiny();
    let v = d.vocab_size();
    let next_a = [17u32, 42, 300];
    let next_b = [5u32, 6000, 12];

    // singles
    let mut single = |prompt: &[u32], next: &[u32]| {
        let mut c = d.empty_cache(1).unwrap();
        let mut out = vec![d.forward(&mut c, &[prompt], false).unwrap()];
        for t in next {
            out.push(d.forward(&mut c, &[&[*t][..]], false).unwrap());
        }
        out
    };
    let sa = single(A, &next_a);
    let sb = single(B, &next_b);

    // batched: prefill separately, merge (B is left-padded by 6), step together
    let mut ca = d.empty_cache(1).unwrap();
    let la = d.forward(&mut ca, &[A], false).unwrap();
    let mut cb = d.empty_cache(1).unwrap();
    let lb = d.forward(&mut cb, &[B], false).unwrap();
    assert!(max_diff(&la, &sa[0]) < 1e-5 && max_diff(&lb, &sb[0]) < 1e-5);
    let mut batch = d.empty_cache(0).unwrap();
    d.append(&mut batch, &cb).unwrap();
    d.append(&mut batch, &ca).unwrap();
    assert_eq!(batch.batch(), 2);
    assert_eq!(batch.padded_len(), A.len());
    assert_eq!(batch.seq_len(0), B.len());
    for i in 0..next_a.len() {
        let out = d
            .forward(&mut batch, &[&[next_b[i]][..], &[next_a[i]][..]], false)
            .unwrap();
        let db = max_diff(&out[..v], &sb[i + 1]);
        let da = max_diff(&out[v..], &sa[i + 1]);
        assert!(db < 1e-4 && da < 1e-4, "step {i}: Δb={db} Δa={da}");
    }

    // removing the longer row trims the padding; the short row still decodes identically
    d.retain(&mut batch, &[true, false]).unwrap();
    assert_eq!(batch.batch(), 1);
    assert_eq!(batch.padded_len(), B.len() + next_b.len());
    let mut cb2 = d.empty_cache(1).unwrap();
    let mut all_b: Vec<u32> = B.to_vec();
    all_b.extend_from_slice(&next_b);
    d.forward(&mut cb2, &[&all_b], false).unwrap();
    let x = d.forward(&mut cb2, &[&[77][..]], false).unwrap();
    let y = d.forward(&mut batch, &[&[77][..]], false).unwrap();
    assert!(max_diff(&x, &y) < 1e-4);
}

#[test]
fn mismatched_rows_are_rejected() {
    let mut d = tiny();
    let mut c = d.empty_cache(2).unwrap();
    assert!(d.forward(&mut c, &[A], false).is_err());
    assert!(d.forward(&mut c, &[A, B], false).is_err());
}

#[test]
fn kv_cache_is_preallocated_and_appended_in_place() {
    let mut d = tiny();
    // scripts/convert writes the GroupQueryAttention layout: past and present share one
    // preallocated buffer, so a decode step copies nothing of the cache
    assert!(d.in_place_kv_cache());
    let mut c = d.empty_cache(1).unwrap();
    d.forward(&mut c, &[&A[..5]], false).unwrap();
    let cap = c.capacity();
    assert!(cap >= 32 && cap.is_power_of_two(), "capacity {cap}");
    let mut t = 5u32;
    while c.seq_len(0) < cap {
        d.forward(&mut c, &[&[t % 500 + 3]], false).unwrap();
        t += 1;
        assert_eq!(c.capacity(), cap, "reallocated before the buffer was full");
    }
    // full: the next step doubles the capacity once (amortised O(1) per token)
    d.forward(&mut c, &[&[7]], false).unwrap();
    assert_eq!(c.capacity(), 2 * cap);
    assert_eq!(c.seq_len(0), cap + 1);
}

#[test]
fn a_cached_prefix_continued_by_several_tokens_matches_full_recomputation() {
    // Prefix reuse: copy the first 7 positions of A's cache, then feed the other 5 tokens
    // at once (GQA with a past and several new tokens); every logit must equal the full
    // prefill's at the same positions.
    let mut d = tiny();
    let v = d.vocab_size();
    let mut c = d.empty_cache(1).unwrap();
    let full = d.forward(&mut c, &[A], true).unwrap();
    let mut other = d.empty_cache(1).unwrap();
    let mut b_then: Vec<u32> = A[..7].to_vec();
    b_then.extend_from_slice(&[11, 12, 13]);
    d.forward(&mut other, &[&b_then], false).unwrap();
    let mut p = d.prefix(&other, 0, 7).unwrap().expect("GQA layout");
    assert_eq!(p.seq_len(0), 7);
    let rest = d.forward(&mut p, &[&A[7..]], true).unwrap();
    for (i, pos) in (7..A.len()).enumerate() {
        let diff = max_diff(&rest[i * v..(i + 1) * v], &full[pos * v..(pos + 1) * v]);
        assert!(diff < 1e-4, "position {pos}: max |Δlogit| = {diff}");
    }
    // a prefix longer than the row, or of the empty row, is refused
    assert!(d.prefix(&other, 0, 11).unwrap().is_none());
    assert!(d.prefix(&other, 1, 3).unwrap().is_none());
}
