//! Latency of `Classifier::classify` on synthetic chats/documents of ~200, ~2 000 and
//! ~20 000 tokens (chars/4). Run: `cargo bench -p switchyard-policies --bench classify`.
use std::hint::black_box;
use std::time::Instant;

use policies::{Classifier, ClassifyInput, OrgRules, Segment, SegmentRole};

/// Deterministic synthetic prose with a sprinkling of sensitive-looking values.
fn synth(target_chars: usize, seed: u64) -> String {
    const WORDS: &[&str] = &[
        "the",
        "deployment",
        "pipeline",
        "should",
        "retry",
        "requests",
        "when",
        "upstream",
        "latency",
        "exceeds",
        "budget",
        "please",
        "summarize",
        "these",
        "notes",
        "for",
        "our",
        "weekly",
        "review",
        "and",
        "explain",
        "why",
        "cache",
        "hit",
        "rate",
        "dropped",
        "after",
        "release",
        "with",
        "customer",
        "feedback",
        "about",
        "search",
        "quality",
        "in",
        "region",
    ];
    const EXTRAS: &[&str] = &[
        "Contact me at dana.k@example.org or +1 415 555 0199.",
        "The build uses python 3.12 and runs 42 tests in 3.5 seconds.",
        "Refund order 88213 was approved yesterday.",
        "Ask Maria Lopez about the Q3 roadmap.",
    ];
    let mut s = String::with_capacity(target_chars + 64);
    let mut x = seed;
    let mut n = 0;
    while s.len() < target_chars {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = (x >> 33) as usize;
        if n % 40 == 39 {
            s.push_str(EXTRAS[r % EXTRAS.len()]);
            s.push(' ');
        } else {
            s.push_str(WORDS[r % WORDS.len()]);
            s.push(if n % 12 == 11 { '.' } else { ' ' });
            if n % 12 == 11 {
                s.push(' ');
            }
        }
        n += 1;
    }
    s
}

fn main() {
    let classifier = match Classifier::new(OrgRules::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("classifier: {e}");
            return;
        }
    };
    println!(
        "{:<28} {:>8} {:>10} {:>10} {:>12}",
        "input", "tokens", "p50 (µs)", "p99 (µs)", "µs/1k tok"
    );
    for (label, tokens, turns, iters) in [
        ("chat ~200 tokens", 200usize, 4usize, 4000usize),
        ("chat ~2 000 tokens", 2_000, 8, 800),
        ("document ~20 000 tokens", 20_000, 1, 80),
    ] {
        let texts: Vec<String> = (0..turns)
            .map(|i| synth(tokens * 4 / turns, 7 + i as u64))
            .collect();
        let segs: Vec<Segment<'_>> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| Segment {
                role: if i % 2 == 0 {
                    SegmentRole::User
                } else {
                    SegmentRole::Assistant
                },
                text: t,
            })
            .collect();
        let input = ClassifyInput {
            segments: &segs,
            embedding: None,
        };
        for _ in 0..(iters / 10).max(3) {
            black_box(classifier.classify(black_box(&input)));
        }
        let mut times = Vec::with_capacity(iters);
        let mut est = 0;
        for _ in 0..iters {
            let t = Instant::now();
            let c = classifier.classify(black_box(&input));
            times.push(t.elapsed().as_secs_f64() * 1e6);
            est = c.est_prompt_tokens;
            black_box(c);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let p50 = times[times.len() / 2];
        let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
        println!(
            "{label:<28} {est:>8} {p50:>10.1} {p99:>10.1} {:>12.1}",
            p50 * 1000.0 / est.max(1) as f64
        );
    }
}
