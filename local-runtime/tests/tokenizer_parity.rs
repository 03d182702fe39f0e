//! Tokenization parity with llama.cpp, the reference implementation: for every vocabulary
//! kind the converter rebuilds (SentencePiece with and without the space prefix; byte-level
//! BPE under the SmolLM, Llama 3, Qwen 2 and GPT-2 pre-tokenizers), a small GGUF is written
//! and tokenized by llama.cpp in scripts/setup-models.sh (scripts/convert/tokenizer_fixtures.py),
//! then converted by scripts/convert/gguf_llama_to_onnx.py. Here the converted
//! `tokenizer.json`, loaded as the runtime loads it, must give the same ids for every text
//! (multilingual text, byte fallback, whitespace runs, digits, contractions, code, special
//! tokens) and decode them back to what llama.cpp decodes.

mod common;

use std::path::PathBuf;

use local_runtime::{default_cache_dir, load_tokenizer};

#[derive(serde::Deserialize)]
struct Reference {
    variant: String,
    texts: Vec<String>,
    ids: Vec<Vec<u32>>,
    pieces: Vec<String>,
}

const VARIANTS: &[&str] = &[
    "spm-prefix",
    "spm-noprefix",
    "bpe-smollm",
    "bpe-llama3",
    "bpe-qwen2",
    "bpe-gpt2",
];

fn fixtures_dir() -> PathBuf {
    let d = default_cache_dir().join("models").join("tokenizer-parity");
    assert!(
        d.join("manifest.json").is_file(),
        "tokenizer parity fixtures missing at {}: {}",
        d.display(),
        common::SETUP_HINT
    );
    d
}

#[test]
fn converted_tokenizers_match_llama_cpp() {
    let root = fixtures_dir();
    let mut failures = Vec::new();
    let mut checked = 0;
    for variant in VARIANTS {
        let dir = root.join(variant);
        let raw = std::fs::read_to_string(dir.join("reference.json"))
            .unwrap_or_else(|e| panic!("{variant}: reference.json: {e}"));
        let reference: Reference = serde_json::from_str(&raw).expect("reference.json");
        assert_eq!(reference.variant, *variant);
        let tok = load_tokenizer(&dir.join("tokenizer.json")).expect("tokenizer.json loads");
        for ((text, want), want_text) in reference
            .texts
            .iter()
            .zip(&reference.ids)
            .zip(&reference.pieces)
        {
            let got = tok.encode(text.as_str(), false).expect("encode");
            if got.get_ids() != want.as_slice() {
                failures.push(format!(
                    "{variant}: {text:?}\n  llama.cpp {want:?}\n  ours      {:?}",
                    got.get_ids()
                ));
                continue;
            }
            let back = tok.decode(want, false).expect("decode");
            if &back != want_text {
                failures.push(format!(
                    "{variant}: decode of {text:?}: llama.cpp {want_text:?}, ours {back:?}"
                ));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} texts differ from llama.cpp:\n{}",
        failures.len(),
        failures.len() + checked,
        failures.join("\n")
    );
    assert!(checked >= 6 * 16, "only {checked} texts checked");
}
