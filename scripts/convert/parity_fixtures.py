#!/usr/bin/env python3
"""Parity fixtures: tiny random-weight GGUF files, their ONNX conversions and llama.cpp's
teacher-forced logits on them (run by scripts/setup-models.sh in $CACHE/venv-llamacpp).

For every (architecture, tensor type) in VARIANTS it writes, under --out/<arch>-<type>/:

  model.gguf           2 layers, hidden 256, 4/2 heads, vocab 512, random weights: the
                       quantized tensors are random *block bytes* (every bit pattern is a valid
                       block) with their fp16 scale fields set to sane magnitudes, so every
                       code path of the format is exercised, not only what a quantizer emits
  model.onnx, config.json, ...   gguf_llama_to_onnx.py --decoder-only output
  llamacpp_logits.f32  llama.cpp (llama-cpp-python, logits_all) logits, [positions, vocab] f32
  reference.json       {"tokens": [...], "positions", "vocab", "tensor_type", "architecture"}

local-runtime/tests/parity.rs runs the same tokens through the Rust runtime and compares.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import gguf  # noqa: E402
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType  # noqa: E402

# Tensor types of the projection matrices (and the tied embedding / LM head).
TYPES = ["F32", "F16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"]
VARIANTS = [("llama", t) for t in TYPES] + [
    (arch, t) for arch in ("qwen2", "qwen3", "gemma2", "gemma3", "phi3") for t in ("F32", "Q8_0", "Q4_K")
]
# gemma3 needs 6 layers to have a global (non-sliding-window) layer: layers 0-4 are local
N_LAYER = {"gemma3": 6}
WINDOW = 8  # sliding window of the gemma fixtures: shorter than the 48 tokens, so it matters

SHAPE = {"n_layer": 2, "hidden": 256, "ffn": 512, "n_head": 4, "n_kv_head": 2, "vocab": 512, "ctx": 256}
N_TOKENS = 48


def vocab_tokens(n: int):
    """A SentencePiece-style vocabulary llama.cpp accepts: unk, bos, eos, 256 byte tokens,
    then plain pieces (the tests feed token ids, so the pieces' text does not matter)."""
    toks, scores, types = ["<unk>", "<s>", "</s>"], [0.0, 0.0, 0.0], [2, 3, 3]
    for b in range(256):
        toks.append(f"<0x{b:02X}>")
        scores.append(0.0)
        types.append(6)
    # chat control tokens some architectures' vocab set-up looks up by name (phi3: <|end|>)
    for t in ("<|endoftext|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"):
        toks.append(t)
        scores.append(0.0)
        types.append(3)
    i = 0
    while len(toks) < n:
        toks.append(f"\u2581t{i}")
        scores.append(-float(i))
        types.append(1)
        i += 1
    return toks, scores, types


def pack_k_scales(sc: np.ndarray, m: np.ndarray) -> np.ndarray:
    """6-bit scales and mins [nb, 8] -> the 12-byte Q4_K/Q5_K field (inverse of
    gguf.quants.Q4_K.get_scale_min)."""
    sc, m = sc.astype(np.uint8), m.astype(np.uint8)
    out = np.zeros((sc.shape[0], 12), np.uint8)
    out[:, 0:4] = (sc[:, 0:4] & 0x3F) | ((sc[:, 4:8] >> 4) << 6)
    out[:, 4:8] = (m[:, 0:4] & 0x3F) | ((m[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((m[:, 4:8] & 0x0F) << 4)
    return out


def random_tensor(rng, qtype: str, rows: int, cols: int, scale: float):
    """Random weights of `qtype`, shape [rows, cols]: (array, raw_dtype or None)."""
    if qtype == "F32":
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float32), None
    if qtype == "F16":
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float16), None
    t = GGMLQuantizationType[qtype]
    be, bb = GGML_QUANT_SIZES[t]
    nb = rows * cols // be
    raw = rng.integers(0, 256, size=(nb, bb), dtype=np.uint8)

    def put(off, vals):
        raw[:, off : off + 2] = np.asarray(vals, np.float16).view(np.uint8).reshape(nb, 2)

    u = lambda lo, hi: rng.uniform(lo, hi, nb)  # noqa: E731
    # scale fields chosen so that weights have a standard deviation of roughly `scale`
    if qtype in ("Q4_0",):
        put(0, u(0.5, 1.5) * scale / 4.6)
    elif qtype == "Q5_0":
        put(0, u(0.5, 1.5) * scale / 9.2)
    elif qtype == "Q8_0":
        put(0, u(0.5, 1.5) * scale / 74)
    elif qtype in ("Q4_1", "Q5_1"):
        levels = 15 if qtype == "Q4_1" else 31
        d = u(0.5, 1.5) * scale * 3.46 / levels
        put(0, d)
        put(2, -d * levels / 2 + u(-0.2, 0.2) * scale)
    elif qtype in ("Q4_K", "Q5_K"):
        # w = d*sc*q - dmin*m with 6-bit sc, m and q in [0, 15] / [0, 31]. A quantizer picks
        # each sub-block's min from its data, so blocks are centred: m ~ sc*levels/2*d/dmin.
        levels = 15 if qtype == "Q4_K" else 31
        d = u(0.5, 1.5) * scale * 3.46 / levels / 48
        put(0, d)
        put(2, d * levels / 2)
        sc = rng.integers(32, 64, size=(nb, 8))
        m = np.clip(sc + rng.integers(-3, 4, size=(nb, 8)), 0, 63)
        raw[:, 4:16] = pack_k_scales(sc, m)
    elif qtype == "Q6_K":
        # w = d*sc*(q-32), int8 sc (mean |sc| ~64), q in [0, 63]
        put(208, u(0.5, 1.5) * scale / 18.5 / 64)
    return raw.reshape(rows, -1), t


def write_gguf(path: str, arch: str, qtype: str, seed: int):
    """A tiny random model; `arch`/`qtype` outside what the converter supports make the
    error fixtures (the file is still valid GGUF)."""
    rng = np.random.default_rng(seed)
    s = SHAPE
    H, F, V = s["hidden"], s["ffn"], s["vocab"]
    L = N_LAYER.get(arch, s["n_layer"])
    hd = H // s["n_head"]
    kvd = s["n_kv_head"] * hd
    w = gguf.GGUFWriter(path, arch)
    w.add_name(f"tiny-{arch}-{qtype}")
    w.add_context_length(s["ctx"])
    w.add_embedding_length(H)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(s["n_head"])
    w.add_head_count_kv(s["n_kv_head"])
    if arch != "gemma3":
        w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(hd)
    if arch in ("qwen3", "gemma2", "gemma3"):
        w.add_key_length(hd)
        w.add_value_length(hd)
    if arch in ("gemma2", "gemma3"):
        w.add_sliding_window(WINDOW)
    if arch == "gemma3":
        w.add_rope_freq_base(1000000.0)
    if arch == "gemma2":
        w.add_float32(f"{arch}.attn_logit_softcapping", 50.0)
        w.add_float32(f"{arch}.final_logit_softcapping", 30.0)
    toks, scores, types = vocab_tokens(V)
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    def add(name, rows, cols, scale, ty=qtype):
        arr, raw = random_tensor(rng, ty, rows, cols, scale)
        if raw is None:
            w.add_tensor(name, arr)
        else:
            w.add_tensor(name, arr, raw_dtype=raw)

    def norm(name, n):
        w.add_tensor(name, (1.0 + rng.standard_normal(n) * 0.1).astype(np.float32))

    gemma = arch.startswith("gemma")
    # gemma scales the embedding by sqrt(hidden) = 16: draw it 16x smaller
    add("token_embd.weight", V, H, 1.0 / 16 if gemma else 1.0)
    for i in range(L):
        b = f"blk.{i}"
        norm(f"{b}.attn_norm.weight", H)
        if arch == "phi3":
            add(f"{b}.attn_qkv.weight", H + 2 * kvd, H, 0.15)
        else:
            add(f"{b}.attn_q.weight", H, H, 0.15)
            add(f"{b}.attn_k.weight", kvd, H, 0.15)
            add(f"{b}.attn_v.weight", kvd, H, 0.1)
        if arch == "qwen2":
            for n, d in (("attn_q", H), ("attn_k", kvd), ("attn_v", kvd)):
                w.add_tensor(f"{b}.{n}.bias", (rng.standard_normal(d) * 0.1).astype(np.float32))
        if arch in ("qwen3", "gemma3"):
            norm(f"{b}.attn_q_norm.weight", hd)
            norm(f"{b}.attn_k_norm.weight", hd)
        add(f"{b}.attn_output.weight", H, H, 0.06)
        if gemma:
            norm(f"{b}.post_attention_norm.weight", H)
        norm(f"{b}.ffn_norm.weight", H)
        if arch == "phi3":
            add(f"{b}.ffn_up.weight", 2 * F, H, 0.06)
        else:
            add(f"{b}.ffn_gate.weight", F, H, 0.06)
            add(f"{b}.ffn_up.weight", F, H, 0.06)
        add(f"{b}.ffn_down.weight", H, F, 0.045)
        if gemma:
            norm(f"{b}.post_ffw_norm.weight", H)
    norm("output_norm.weight", H)
    if arch == "phi3":  # llama.cpp's phi3 graph requires an untied output matrix
        add("output.weight", V, H, 0.06)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", help="comma-separated <arch>-<type> names")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(1234)
    tokens = [1] + [int(x) for x in rng.integers(3, SHAPE["vocab"], N_TOKENS - 1)]
    only = set(args.only.split(",")) if args.only else None
    for seed, (arch, qtype) in enumerate(VARIANTS):
        name = f"{arch}-{qtype}"
        if only and name not in only:
            continue
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        gg = os.path.join(d, "model.gguf")
        write_gguf(gg, arch, qtype, seed)
        subprocess.run(
            [sys.executable, os.path.join(HERE, "gguf_llama_to_onnx.py"), "--gguf", gg, "--decoder-only", "--out", d,
             "--source-id", f"parity fixture {name}"],
            check=True,
        )
        ref = os.path.join(d, "llamacpp_logits.f32")
        out = subprocess.run(
            [sys.executable, os.path.join(HERE, "llamacpp_ref.py"), "logits", "--gguf", gg, "--ids",
             ",".join(map(str, tokens)), "--out", ref, "--threads", "2"],
            check=True, capture_output=True, text=True,
        )
        info = json.loads(out.stdout.strip().splitlines()[-1])
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump({"tokens": tokens, "architecture": arch, "tensor_type": qtype, **info}, f)
        print(f"[parity] {name}: {info['positions']} positions", file=sys.stderr)
    # GGUF files the converter must refuse with a clear error (local-runtime/tests/convert_errors.rs)
    if not only:
        ed = os.path.join(args.out, "errors")
        os.makedirs(ed, exist_ok=True)
        write_gguf(os.path.join(ed, "unsupported-arch.gguf"), "mamba", "F32", 0)
        write_gguf(os.path.join(ed, "unsupported-type.gguf"), "llama", "Q2_K", 0)
    # one manifest over every file (scripts/setup-models.sh verifies it like a model's)
    from gguf_llama_to_onnx import sha256

    files = {}
    for dirpath, _, names in os.walk(args.out):
        for n in sorted(names):
            rel = os.path.relpath(os.path.join(dirpath, n), args.out)
            if rel in ("manifest.json", ".converter-id", ".verified"):
                continue
            files[rel] = {"sha256": sha256(os.path.join(args.out, rel)), "bytes": os.path.getsize(os.path.join(args.out, rel))}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump({"files": files, "variants": [f"{a}-{t}" for a, t in VARIANTS]}, f, indent=1)


if __name__ == "__main__":
    main()
