#!/usr/bin/env python3
"""Tokenizer parity fixtures: small GGUF vocabularies of every kind the converter rebuilds,
their conversions and llama.cpp's own tokenization of a fixed text set (run by
scripts/setup-models.sh in $CACHE/venv-llamacpp).

For every variant in VARIANTS it writes, under --out/<variant>/:

  model.gguf        a 1-layer random-weight llama model whose vocabulary is the variant's:
                    SentencePiece (scores, byte fallback, control and user-defined tokens,
                    with and without the space prefix) or byte-level BPE (merges learned here
                    on our own text) under each pre-tokenizer name the converter maps
  tokenizer.json, ... gguf_llama_to_onnx.py output (the tokenizer the runtime loads)
  reference.json    {"texts": [...], "ids": [[...]], "pieces": [...]} from llama.cpp
                    (tokenize with special tokens parsed, no BOS; detokenize)

local-runtime/tests/tokenizer_parity.rs encodes the same texts with the converted tokenizer
and compares. The vocabularies are built from text written for this file, not from any
model's vocabulary, so the fixtures are small and free of licences.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import gguf  # noqa: E402

from gguf_tokenizer import BYTE, CONTROL, NORMAL, UNKNOWN, USER_DEFINED  # noqa: E402

# Text the vocabularies are learned from: several languages, code, numbers, whitespace runs.
CORPUS = """
The patient was seen in the clinic on Monday. Her blood pressure was normal and she was told
to come back in three months. The doctor wrote a short summary for the chart.
Please write a SQL query that returns every customer who ordered more than twice last year.
SELECT name, count(*) FROM orders WHERE year = 2025 GROUP BY name HAVING count(*) > 2;
def square(x):
    return x * x  # the square of x

Der Patient wurde am Montag in der Klinik untersucht. Die Ergebnisse sind unauffällig.
Le patient a été vu à la clinique lundi. Les résultats sont normaux, merci beaucoup.
El paciente fue atendido en la clínica el lunes. Los resultados son normales.
O paciente foi atendido na clínica na segunda-feira. Não há alterações.
Pacjent był badany w poniedziałek w przychodni. Wyniki są prawidłowe, dziękuję.
Il paziente è stato visitato lunedì. I risultati sono nella norma.
We'll see what they've done; I'm sure it's fine and you'd agree they'll finish.
Numbers: 1, 22, 333, 4444, 55555, 3.14159, 2,718 and 1e-9 are all numbers.
Invoice 123456 of 2025, order 123 456 789, 1000 units at 1000 each, in 2025 and 2026.
Tabs\tand   runs   of    spaces, and blank lines:


end of text.
"""

# Characters deliberately left out of the SentencePiece vocabularies: they must come out as
# <0xXX> byte tokens (byte fallback).
NOT_IN_SPM = set("東京北🙂✓")

TEXTS = [
    "Hello world",
    "The patient was seen in the clinic on Monday.",
    " leading space",
    "trailing space ",
    "two  spaces, three   spaces and\ttabs",
    "lines\nand\n\nblank lines\n",
    "Zürich, São Paulo, Kraków, naïve café, dziękuję",
    "Patient John Miller, SSN 219-09-9999, HbA1c 8.2%",
    "東京 and 北京 are cities",
    "emoji 🙂 and a check ✓",
    "numbers 1234567 and 3.14159 and 2025",
    "don't won't I'm they'll we've you'd IT'S",
    "def square(x):\n    return x * x  # square\n",
    "SELECT name FROM orders WHERE year = 2025;",
    "",
    "   ",
]
SPM_SPECIAL_TEXTS = [
    "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
    "a <mask> in the middle",
]
BPE_SPECIAL_TEXTS = ["<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"]

# name -> (kind, settings)
VARIANTS = {
    "spm-prefix": ("spm", {"add_space_prefix": True}),  # Llama 2 / Mistral v0.1 style
    "spm-noprefix": ("spm", {"add_space_prefix": False}),  # Gemma style
    "bpe-smollm": ("bpe", {"pre": "smollm"}),
    "bpe-llama3": ("bpe", {"pre": "llama-bpe"}),
    "bpe-qwen2": ("bpe", {"pre": "qwen2"}),
    "bpe-gpt2": ("bpe", {"pre": "gpt-2"}),
}


def spm_vocab(n_pieces: int = 1200):
    """unk, bos, eos, the 256 byte tokens, control and user-defined tokens, every corpus
    character, then the most useful substrings with distinct scores."""
    toks, scores, types = ["<unk>", "<s>", "</s>"], [0.0, 0.0, 0.0], [UNKNOWN, CONTROL, CONTROL]
    for b in range(256):
        toks.append(f"<0x{b:02X}>")
        scores.append(0.0)
        types.append(BYTE)
    for t in ("<start_of_turn>", "<end_of_turn>", "<pad>"):
        toks.append(t)
        scores.append(0.0)
        types.append(CONTROL)
    toks.append("<mask>")
    scores.append(0.0)
    types.append(USER_DEFINED)
    text = CORPUS.replace(" ", "\u2581")
    chars = sorted({c for c in text if c not in NOT_IN_SPM})
    counts = collections.Counter()
    for line in text.split("\n"):
        line = "\u2581" + line
        for n in range(2, 9):
            for i in range(len(line) - n + 1):
                piece = line[i : i + n]
                # pieces start at a word boundary or inside a word, never span two words
                if "\u2581" in piece[1:] and piece.strip("\u2581"):
                    continue
                counts[piece] += 1
    ranked = sorted(((c * (len(p) - 1), p) for p, c in counts.items() if c > 1), key=lambda x: (-x[0], x[1]))
    pieces = [p for _, p in ranked[:n_pieces]]
    # chars score lowest; longer useful pieces higher; every score distinct (as trained
    # SentencePiece models have) so the merge order is unambiguous
    for i, c in enumerate(chars):
        toks.append(c)
        scores.append(-10000.0 - i)
        types.append(NORMAL)
    for i, p in enumerate(pieces):
        if p in toks:
            continue
        toks.append(p)
        scores.append(-float(i) - 0.5)
        types.append(NORMAL)
    return toks, scores, types, []


def bytes_to_unicode():
    """GPT-2's byte -> printable character map (what byte-level BPE vocabularies use)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def bpe_vocab(n_merges: int = 700):
    """Byte-level BPE learned on CORPUS: 256 byte symbols, the merges' results, specials."""
    b2u = bytes_to_unicode()
    words = collections.Counter(
        tuple(b2u[b] for b in w.encode("utf-8")) for w in re.findall(r" ?[A-Za-zÀ-ž]+|[0-9]{1,3}| ?[0-9]+| ?[^\sA-Za-zÀ-ž0-9]+|\s+", CORPUS)
    )
    toks = [b2u[b] for b in range(256)]
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        (a, b), c = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        if c < 2:
            break
        merges.append(f"{a} {b}")
        toks.append(a + b)
        new = collections.Counter()
        for w, cnt in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += cnt
        words = new
    types = [NORMAL] * len(toks)
    for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        toks.append(t)
        types.append(CONTROL)
    return toks, [0.0] * len(toks), types, merges


def write_gguf(path: str, kind: str, settings: dict, seed: int):
    if kind == "spm":
        toks, scores, types, merges = spm_vocab()
    else:
        toks, scores, types, merges = bpe_vocab()
    rng = np.random.default_rng(seed)
    H, F, V = 64, 128, len(toks)
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(f"tokenizer-fixture-{kind}")
    w.add_context_length(256)
    w.add_embedding_length(H)
    w.add_block_count(1)
    w.add_feed_forward_length(F)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(H // 4)
    if kind == "spm":
        w.add_tokenizer_model("llama")
        w.add_token_scores(scores)
        w.add_add_space_prefix(settings["add_space_prefix"])
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
    else:
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(settings["pre"])
        w.add_token_merges(merges)
        w.add_bos_token_id(toks.index("<|endoftext|>"))
        w.add_eos_token_id(toks.index("<|im_end|>"))
    w.add_token_list(toks)
    w.add_token_types(types)

    def t(name, *shape):
        w.add_tensor(name, (rng.standard_normal(shape) * 0.05).astype(np.float32))

    t("token_embd.weight", V, H)
    w.add_tensor("output_norm.weight", np.ones(H, np.float32))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(H, np.float32))
    w.add_tensor("blk.0.ffn_norm.weight", np.ones(H, np.float32))
    t("blk.0.attn_q.weight", H, H)
    t("blk.0.attn_k.weight", H // 2, H)
    t("blk.0.attn_v.weight", H // 2, H)
    t("blk.0.attn_output.weight", H, H)
    t("blk.0.ffn_gate.weight", F, H)
    t("blk.0.ffn_up.weight", F, H)
    t("blk.0.ffn_down.weight", H, F)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llamacpp_tokenize(gguf_path: str, texts: list) -> dict:
    from llama_cpp import Llama

    llm = Llama(model_path=gguf_path, vocab_only=True, verbose=False)
    ids, pieces = [], []
    for text in texts:
        toks = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        ids.append([int(x) for x in toks])
        pieces.append(llm.detokenize(toks, special=True).decode("utf-8", errors="replace"))
    return {"ids": ids, "pieces": pieces}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for seed, (name, (kind, settings)) in enumerate(VARIANTS.items()):
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        gg = os.path.join(d, "model.gguf")
        write_gguf(gg, kind, settings, seed)
        subprocess.run(
            [sys.executable, os.path.join(HERE, "gguf_llama_to_onnx.py"), "--gguf", gg, "--out", d,
             "--source-id", f"tokenizer fixture {name}"],
            check=True,
        )
        texts = TEXTS + (SPM_SPECIAL_TEXTS if kind == "spm" else BPE_SPECIAL_TEXTS)
        ref = {"variant": name, "kind": kind, **settings, "texts": texts, **llamacpp_tokenize(gg, texts)}
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(ref, f, ensure_ascii=False, indent=1)
        print(f"[tokenizer-parity] {name}: {len(texts)} texts", file=sys.stderr)
    from gguf_llama_to_onnx import sha256

    files = {}
    for dirpath, _, names in os.walk(args.out):
        for n in sorted(names):
            rel = os.path.relpath(os.path.join(dirpath, n), args.out)
            if rel in ("manifest.json", ".converter-id", ".verified"):
                continue
            p = os.path.join(args.out, rel)
            files[rel] = {"sha256": sha256(p), "bytes": os.path.getsize(p)}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump({"files": files, "variants": list(VARIANTS)}, f, indent=1)


if __name__ == "__main__":
    main()
