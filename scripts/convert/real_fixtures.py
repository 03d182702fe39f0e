#!/usr/bin/env python3
"""Real-model parity references (opt-in; scripts/setup-models.sh --only real).

For each real GGUF (SmolLM2-135M-Instruct Q4_1, Gemma 3 270M Q4_K_M) and a fixed prompt set,
llama.cpp (llama-cpp-python) tokenizes the chat-formatted prompt and decodes greedily;
the prompt text and ids, llama.cpp's continuation ids and text, and llama.cpp's tokenization
of a multilingual text set go to --out/<name>/reference.json, next to the model converted
with gguf_llama_to_onnx.py (int8 activations, as llama.cpp computes; tokenizer and chat
template included). local-runtime/tests/real_parity.rs (SWITCHYARD_REAL_PARITY=1) checks that
the converted tokenizer and chat template give llama.cpp's prompt ids, that the Rust runtime
decodes them greedily into llama.cpp's first --new-tokens tokens, and that serving the
question through the runtime's chat path gives llama.cpp's text.

  real_fixtures.py --model NAME=GGUF[:FORMAT] ... --out DIR [--new-tokens 32]
  FORMAT: chatml (SmolLM2) or gemma
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

PROMPTS = [
    "What is the capital of France?",
    "Write a two-sentence summary of the water cycle.",
    "List three primary colors.",
    "Translate 'good morning' into Spanish.",
    "Write a SQL query that counts the rows of the table users.",
    "Explain what a CPU does in one sentence.",
]


# Tokenization checks on the real vocabularies (SentencePiece for Gemma, byte-level BPE for
# SmolLM2): languages, scripts, whitespace, digits, code.
TOKENIZE = [
    "Patient John Miller, SSN 219-09-9999, type 2 diabetes, HbA1c 8.2 — write a summary.",
    "Der Patient wurde am Montag untersucht; die Ergebnisse sind unauffällig.",
    "Le patient a été vu à la clinique lundi. Pacjent był badany w poniedziałek.",
    "東京の天気は晴れです。 北京 and Seoul 서울",
    "emoji 🙂🚀 and symbols ✓ € £ ¥",
    "  two leading spaces, tabs\tand\n\nblank lines   ",
    "numbers 1234567, 3.14159 and 2025-12-07",
    "def square(x):\n    return x ** 2  # square\n",
    "don't won't I'm they'll IT'S",
]


def eog(llm):
    import llama_cpp

    try:
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        return {t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)}
    except Exception:
        return {llm.token_eos()}


def render(fmt: str, q: str) -> str:
    if fmt == "chatml":
        return (
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"
        )
    if fmt == "gemma":
        return f"<start_of_turn>user\n{q}<end_of_turn>\n<start_of_turn>model\n"
    raise SystemExit(f"unknown prompt format {fmt}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--new-tokens", type=int, default=32)
    args = ap.parse_args()
    from llama_cpp import Llama

    os.makedirs(args.out, exist_ok=True)
    for spec in args.model:
        name, rest = spec.split("=", 1)
        gguf_path, fmt = rest.rsplit(":", 1) if ":" in rest else (rest, "chatml")
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        subprocess.run(
            [sys.executable, os.path.join(HERE, "gguf_llama_to_onnx.py"), "--gguf", gguf_path,
             "--activations", "int8", "--out", d, "--source-id", os.path.basename(gguf_path)],
            check=True,
        )
        llm = Llama(model_path=gguf_path, n_ctx=512, n_threads=2, verbose=False)
        cases = []
        for q in PROMPTS:
            text = render(fmt, q)
            ids = llm.tokenize(text.encode(), add_bos=(fmt == "gemma"), special=True)
            out = subprocess.run(
                [sys.executable, os.path.join(HERE, "llamacpp_ref.py"), "greedy", "--gguf", gguf_path,
                 "--ids", ",".join(map(str, ids)), "--new-tokens", str(args.new_tokens)],
                check=True, capture_output=True, text=True,
            )
            ref = json.loads(out.stdout.strip().splitlines()[-1])
            greedy = ref["ids"]
            text_out = llm.detokenize([t for t in greedy if t not in eog(llm)]).decode("utf-8", errors="replace")
            cases.append(
                {
                    "prompt": q,
                    "text": text,
                    "ids": ids,
                    "llamacpp_greedy": greedy,
                    "llamacpp_margins": ref["margins"],
                    "llamacpp_stds": ref["stds"],
                    "llamacpp_text": text_out,
                }
            )
        tokenized = [
            {"text": t, "ids": [int(x) for x in llm.tokenize(t.encode(), add_bos=False, special=True)]}
            for t in TOKENIZE
        ]
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(
                {"gguf": os.path.basename(gguf_path), "new_tokens": args.new_tokens, "cases": cases, "tokenize": tokenized},
                f,
                ensure_ascii=False,
            )
        print(f"[real] {name}: {len(cases)} prompts", file=sys.stderr)
    sys.path.insert(0, HERE)
    from gguf_llama_to_onnx import sha256

    files = {}
    for dirpath, _, names in os.walk(args.out):
        for n in sorted(names):
            rel = os.path.relpath(os.path.join(dirpath, n), args.out)
            if rel not in ("manifest.json", ".converter-id", ".verified"):
                p = os.path.join(args.out, rel)
                files[rel] = {"sha256": sha256(p), "bytes": os.path.getsize(p)}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump({"files": files}, f, indent=1)


if __name__ == "__main__":
    main()
