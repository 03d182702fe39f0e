//! Real-model parity with llama.cpp (opt-in: `SWITCHYARD_REAL_PARITY=1`, after
//! `scripts/setup-models.sh --only real`): SmolLM2-135M-Instruct Q4_1 and Gemma 3 270M
//! Q4_K_M, converted with int8 activations; for each fixed prompt the Rust runtime decodes
//! llama.cpp's prompt ids greedily and must produce llama.cpp's greedy continuation
//! (scripts/convert/real_fixtures.py; 32 tokens, or up to llama.cpp's end of generation).
//! The serving path is checked too: the converted tokenizer gives llama.cpp's ids on a
//! multilingual text set (SentencePiece for Gemma, byte-level BPE for SmolLM2), the chat
//! template renders the question into llama.cpp's prompt ids, and `LocalModel::generate`
//! answers with llama.cpp's text.
//! Without the variable the test says so and passes: the default suite stays small and
//! needs no 250 MB Gemma download.

mod common;

use std::path::PathBuf;

use local_runtime::decoder::Decoder;
use local_runtime::{
    default_cache_dir, load_tokenizer, ChatMessage, ExecutionProvider, GenerateRequest, LocalModel,
    LocalModelConfig, ModelCatalog, SamplingParams,
};

#[derive(serde::Deserialize)]
struct Case {
    prompt: String,
    ids: Vec<u32>,
    llamacpp_greedy: Vec<u32>,
    llamacpp_text: String,
}

#[derive(serde::Deserialize)]
struct Tokenized {
    text: String,
    ids: Vec<u32>,
}

#[derive(serde::Deserialize)]
struct Reference {
    gguf: String,
    cases: Vec<Case>,
    tokenize: Vec<Tokenized>,
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_models_greedy_match_llama_cpp() {
    if std::env::var("SWITCHYARD_REAL_PARITY").map_or(true, |v| v != "1") {
        eprintln!("real-model parity not run: set SWITCHYARD_REAL_PARITY=1 (after scripts/setup-models.sh --only real)");
        return;
    }
    let root = default_cache_dir().join("models/real-parity");
    let rt = common::runtime();
    let mut failures = Vec::new();
    for name in ["smollm2", "gemma3"] {
        let dir: PathBuf = root.join(name);
        let r: Reference = serde_json::from_str(
            &std::fs::read_to_string(dir.join("reference.json")).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run scripts/setup-models.sh --only real)",
                    dir.display()
                )
            }),
        )
        .expect("reference.json");
        let tok = load_tokenizer(&dir.join("tokenizer.json")).expect("tokenizer");
        for t in &r.tokenize {
            let got = tok.encode(t.text.as_str(), false).expect("encode");
            if got.get_ids() != t.ids.as_slice() {
                failures.push(format!(
                    "{name} tokenizer {:?}: ours {:?} vs llama.cpp {:?}",
                    t.text,
                    got.get_ids(),
                    t.ids
                ));
            }
        }
        let catalog = ModelCatalog {
            family: name.into(),
            parameters: String::new(),
            license: String::new(),
            commercial_use: false,
            use_limits: None,
        };
        let model = LocalModel::load(
            &rt,
            LocalModelConfig::new(format!("local/{name}"), dir.clone(), catalog),
        )
        .expect("LocalModel::load");
        for c in &r.cases {
            let msgs = vec![ChatMessage::user(c.prompt.as_str())];
            let ids = model.prompt_token_ids(&msgs, &[]).expect("prompt ids");
            if ids != c.ids {
                failures.push(format!(
                    "{name} chat template {:?}: ours {ids:?} vs llama.cpp {:?}",
                    c.prompt, c.ids
                ));
                continue;
            }
            let req =
                GenerateRequest::new(msgs, SamplingParams::greedy(c.llamacpp_greedy.len() as u32));
            let (text, _) = common::collect(model.generate(req).expect("generate")).await;
            if text != c.llamacpp_text {
                failures.push(format!(
                    "{name} served {:?}: ours {text:?} vs llama.cpp {:?}",
                    c.prompt, c.llamacpp_text
                ));
            }
        }
        model.shutdown();
        let mut d = Decoder::load(&rt, &dir, &[ExecutionProvider::Cpu], 2).expect("load");
        for c in &r.cases {
            let mut cache = d.empty_cache(1).expect("cache");
            let mut logits = d.forward(&mut cache, &[&c.ids], false).expect("prefill");
            let mut ours = Vec::new();
            while ours.len() < c.llamacpp_greedy.len() {
                let t = argmax(&logits);
                ours.push(t);
                if ours.len() == c.llamacpp_greedy.len() {
                    break;
                }
                logits = d.forward(&mut cache, &[&[t]], false).expect("step");
            }
            let same = ours
                .iter()
                .zip(&c.llamacpp_greedy)
                .take_while(|(a, b)| a == b)
                .count();
            eprintln!(
                "{name} ({}) {:?}: {same}/{} greedy tokens equal llama.cpp's",
                r.gguf,
                c.prompt,
                c.llamacpp_greedy.len()
            );
            if same < c.llamacpp_greedy.len() {
                failures.push(format!(
                    "{name} {:?}: diverges at token {same}: ours {:?} vs llama.cpp {:?}",
                    c.prompt,
                    &ours[same..],
                    &c.llamacpp_greedy[same..]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
