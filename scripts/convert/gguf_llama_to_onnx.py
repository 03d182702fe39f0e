#!/usr/bin/env python3
"""Convert a llama-architecture GGUF (e.g. SmolLM2-135M-Instruct Q4_1) into an fp32 ONNX
decoder with KV cache, in the standard HF/optimum layout:

  inputs : input_ids [B,S] i64, attention_mask [B,P+S] i64, position_ids [B,S] i64,
           past_key_values.{i}.key / .value [B,KVH,P,D] f32
  outputs: logits [B,S,V] f32, present.{i}.key / .value [B,KVH,P+S,D] f32

The attention mask is a per-sequence mask over the whole (past + new) key range, so a
batch may be left-padded. Next to model.onnx the converter writes tokenizer.json (byte-level
BPE rebuilt from the GGUF vocabulary and merges), tokenizer_config.json (chat template),
config.json, generation_config.json and manifest.json (sha256 of every file).

`--tiny` writes a small random-weight model of the same architecture (same tokenizer)
for fast unit tests. `--random-full` writes a random-weight model with SmolLM2-135M's full
shape (30 layers, hidden 576, 9/3 heads, vocab 49152: same compute and memory traffic as the
real model) for speed measurements; the end-of-sequence rows of its tied embedding / LM head
are zeroed so greedy decoding never stops early. With `--tokenizer-dir DIR` (a directory
this converter wrote before) the tokenizer files are copied from there and no GGUF (nor the
`gguf` package) is needed, e.g. on a GPU machine with only numpy and onnx:

  python3 gguf_llama_to_onnx.py --random-full --tokenizer-dir tiny-llama/ --out smollm2-random/
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_quant as gq  # noqa: E402
from gguf_tokenizer import TokenizerError, build_tokenizer_json  # noqa: E402

CONVERTER_VERSION = 2
OPSET = 17
SUPPORTED_ARCHS = ("llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3")
# MatMulNBits accuracy_level: 4 = int8 activations (fast; like llama.cpp's Q8 activations),
# 0 = fp32 activations (same results as the dequantized fp32 model). Set by --activations.
ACCURACY_LEVEL = 4
# "gqa": com.microsoft.GroupQueryAttention with a KV cache appended in place (right-padded
# rows, seqlens_k); "standard": standard ops, attention_mask/position_ids (left-padded rows),
# Concat of past and new keys every step. Set by --attention.
ATTENTION = "gqa"


class ConvertError(Exception):
    """A GGUF this converter cannot convert (unsupported or malformed); the message says why."""


END_OF_TURN = ("<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<|end|>", "<|eot_id|>", "<|eom_id|>")

# Gemma's turn markup, for Gemma vocabularies whose file carries no template (the base
# models the registries ship): a system message joins the first user turn, as in Gemma's own
# template. Files with a template always use theirs; others without one get the runtime's
# ChatML default.
GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def default_template(vocab: dict):
    if "<start_of_turn>" in vocab and "<end_of_turn>" in vocab:
        return GEMMA_TEMPLATE
    return None


def log(msg: str) -> None:
    print(f"[convert] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# GGUF reading
# ---------------------------------------------------------------------------------------


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


def _unpermute_rows(n_rows: int, n_head: int) -> np.ndarray:
    head_dim = n_rows // n_head
    return np.arange(n_rows).reshape(n_head, head_dim // 2, 2).swapaxes(1, 2).reshape(-1)


def unpermute(w, n_head: int):
    """Undo llama.cpp's Q/K row permutation (interleaved RoPE -> HF rotate-half order).
    Rows are whole output channels, so quantized weights are permuted block-row-wise, exactly."""
    if isinstance(w, gq.QuantWeight):
        idx = _unpermute_rows(w.n, n_head)
        w.packed = np.ascontiguousarray(w.packed[idx])
        w.scales = np.ascontiguousarray(w.scales[idx])
        if w.mins is not None:
            w.mins = np.ascontiguousarray(w.mins[idx])
        return w
    out_dim = w.shape[0]
    head_dim = out_dim // n_head
    return (
        w.reshape(n_head, head_dim // 2, 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def load_gguf(path: str, keep_quantized: bool = True):
    """Reads the GGUF: config, weights (QuantWeight where kept quantized, else fp32) and
    tokenizer. Raises ConvertError (never crashes) on an unsupported or malformed file."""
    import gguf
    from gguf.quants import dequantize

    try:
        reader = gguf.GGUFReader(path)
    except Exception as e:  # the reader raises ValueError/IndexError/struct errors on garbage
        raise ConvertError(f"{path}: not a readable GGUF file, truncated or corrupt ({type(e).__name__}: {e})") from e
    arch = field(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHS:
        raise ConvertError(f"unsupported architecture {arch!r}; supported: {', '.join(SUPPORTED_ARCHS)}")

    def need(key, conv=int):
        v = field(reader, key)
        if v is None:
            raise ConvertError(f"{path}: missing metadata {key}")
        return conv(v)

    cfg = {
        "arch": arch,
        "n_layer": need(f"{arch}.block_count"),
        "hidden": need(f"{arch}.embedding_length"),
        "ffn": need(f"{arch}.feed_forward_length"),
        "n_head": need(f"{arch}.attention.head_count"),
        "n_kv_head": int(field(reader, f"{arch}.attention.head_count_kv", field(reader, f"{arch}.attention.head_count"))),
        "rope_theta": float(field(reader, f"{arch}.rope.freq_base", 10000.0)),
        "eps": float(field(reader, f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)),
        "ctx": int(field(reader, f"{arch}.context_length", 2048)),
        "name": field(reader, "general.name", ""),
        "license": field(reader, "general.license", ""),
    }
    kl = field(reader, f"{arch}.attention.key_length")
    cfg["head_dim"] = int(kl) if kl is not None else cfg["hidden"] // cfg["n_head"]
    vl = field(reader, f"{arch}.attention.value_length")
    if vl is not None and int(vl) != cfg["head_dim"]:
        raise ConvertError(f"{path}: key_length {cfg['head_dim']} != value_length {vl} is not supported")
    rd = field(reader, f"{arch}.rope.dimension_count")
    if rd is not None and int(rd) != cfg["head_dim"]:
        raise ConvertError(f"{path}: partial rotary embeddings (rope.dimension_count {rd} < head_dim) are not supported")
    st = field(reader, f"{arch}.rope.scaling.type")
    sf = field(reader, f"{arch}.rope.scaling.factor")
    if st not in (None, "none") and not (st == "linear" and sf is not None):
        raise ConvertError(f"{path}: rope scaling {st!r} is not supported (supported: none, linear)")
    cfg["rope_linear_factor"] = float(sf) if st == "linear" else 1.0
    # llama.cpp's per-architecture graphs (src/llama-model.cpp, llm_build_*):
    gemma = arch in ("gemma2", "gemma3")
    cfg["permute_qk"] = arch == "llama"  # llama's converter permutes Q/K for interleaved RoPE
    cfg["embed_scale"] = float(np.sqrt(cfg["hidden"])) if gemma else 1.0
    cfg["ffn_act"] = "gelu_tanh" if gemma else "silu"
    cfg["post_norms"] = gemma
    cfg["attn_softcap"] = float(field(reader, f"{arch}.attn_logit_softcapping", 0.0) or 0.0) if arch == "gemma2" else 0.0
    cfg["final_softcap"] = float(field(reader, f"{arch}.final_logit_softcapping", 0.0) or 0.0) if arch == "gemma2" else 0.0
    window = field(reader, f"{arch}.attention.sliding_window")
    cfg["window"] = int(window) if window is not None and gemma else 0
    # which layers use the sliding window (llama.cpp: set_swa_pattern(2) for gemma2, 6 for gemma3)
    pattern = {"gemma2": 2, "gemma3": 6}.get(arch, 0)
    cfg["swa_layers"] = [bool(cfg["window"]) and (i % pattern < pattern - 1) for i in range(cfg["n_layer"])] if pattern else [False] * cfg["n_layer"]
    # gemma3's local layers use their own RoPE base (llama.cpp: rope_freq_base_train_swa = 10000)
    cfg["rope_theta_swa"] = 10000.0 if arch == "gemma3" else cfg["rope_theta"]
    tensors = {}
    qtypes = {}
    for t in reader.tensors:
        tname = t.tensor_type.name
        qtypes[tname] = qtypes.get(tname, 0) + 1
        # GGUF dims are innermost-first; numpy data is already [rows, cols] = torch layout.
        shape = tuple(int(x) for x in reversed(t.shape))
        try:
            if tname in gq.FLOAT_TYPES or len(shape) != 2 or not keep_quantized:
                if tname not in gq.SUPPORTED:
                    raise gq.QuantError(f"tensor type {tname} is not supported; supported: {', '.join(gq.SUPPORTED)}")
                arr = dequantize(t.data, t.tensor_type).astype(np.float32)
                tensors[t.name] = arr.reshape(shape)
            else:
                tensors[t.name] = gq.to_matmul_nbits(tname, t.data, shape[0], shape[1])
        except gq.QuantError as e:
            raise ConvertError(f"{path}: tensor {t.name}: {e}") from e
        except (ValueError, IndexError) as e:  # truncated data: numpy reshape/view failures
            raise ConvertError(f"{path}: tensor {t.name} ({tname}, shape {shape}) is malformed: {e}") from e
    cfg["quant_types"] = qtypes
    if "token_embd.weight" not in tensors:
        raise ConvertError(f"{path}: no token_embd.weight tensor")
    emb = tensors["token_embd.weight"]
    cfg["vocab"] = emb.n if isinstance(emb, gq.QuantWeight) else emb.shape[0]
    if any(n.startswith("rope_factors") for n in tensors):
        raise ConvertError(f"{path}: per-dimension rope factors (phi3 longrope) are not supported")
    need_t = ["attn_norm", "attn_output", "ffn_norm", "ffn_up", "ffn_down"]
    need_t += ["attn_qkv"] if arch == "phi3" else ["attn_q", "attn_k", "attn_v", "ffn_gate"]
    if gemma:
        need_t += ["post_attention_norm", "post_ffw_norm"]
    if arch in ("qwen3", "gemma3"):
        need_t += ["attn_q_norm", "attn_k_norm"]
    for i in range(cfg["n_layer"]):
        for n in need_t:
            if f"blk.{i}.{n}.weight" not in tensors:
                raise ConvertError(f"{path}: missing tensor blk.{i}.{n}.weight ({arch})")
        if cfg["permute_qk"]:
            q = f"blk.{i}.attn_q.weight"
            k = f"blk.{i}.attn_k.weight"
            tensors[q] = unpermute(tensors[q], cfg["n_head"])
            tensors[k] = unpermute(tensors[k], cfg["n_kv_head"])
    tok = {
        "tokens": list(field(reader, "tokenizer.ggml.tokens") or []),
        "types": [int(x) for x in (field(reader, "tokenizer.ggml.token_type") or [])],
        "scores": [float(x) for x in (field(reader, "tokenizer.ggml.scores") or [])],
        "add_space_prefix": bool(field(reader, "tokenizer.ggml.add_space_prefix", True)),
        "unk": field(reader, "tokenizer.ggml.unknown_token_id"),
        "merges": list(field(reader, "tokenizer.ggml.merges") or []),
        "model": field(reader, "tokenizer.ggml.model"),
        "pre": field(reader, "tokenizer.ggml.pre"),
        "bos": field(reader, "tokenizer.ggml.bos_token_id"),
        "eos": field(reader, "tokenizer.ggml.eos_token_id"),
        "chat_template": field(reader, "tokenizer.chat_template"),
    }
    return cfg, tensors, tok


# ---------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# Graph
# ---------------------------------------------------------------------------------------


class G:
    def __init__(self):
        self.nodes = []
        self.inits = []
        self.n = 0

    def name(self, p):
        self.n += 1
        return f"{p}_{self.n}"

    def init(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr, order="C"), name))
        return name

    def const(self, arr, p="c"):
        return self.init(self.name(p), np.asarray(arr))

    def op(self, op, inputs, p=None, outputs=None, **attrs):
        if outputs is None:
            outputs = [self.name(p or op.lower())]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=self.name("n_" + op), **attrs))
        return outputs[0] if len(outputs) == 1 else outputs


def prune(nodes, inits, outputs):
    """Drops nodes (and initializers) no graph output depends on: the GQA graph leaves the
    standard attention's mask and shape nodes unused."""
    need = set(outputs)
    keep = []
    for n in reversed(nodes):
        if any(o in need for o in n.output):
            keep.append(n)
            need.update(i for i in n.input if i)
    keep.reverse()
    return keep, [t for t in inits if t.name in need]


def build_decoder(cfg, W) -> onnx.ModelProto:
    H, nh, kvh, hd = cfg["hidden"], cfg["n_head"], cfg["n_kv_head"], cfg["head_dim"]
    L, V, eps = cfg["n_layer"], cfg["vocab"], cfg["eps"]
    group = nh // kvh
    g = G()

    arch = cfg.get("arch", "llama")
    swa = cfg.get("swa_layers", [False] * L)
    QD = nh * hd  # attention width (gemma3/qwen3: not necessarily the hidden size)

    # rope tables [max_pos, hd] in rotate-half layout, one per (base, linear scale) in use
    max_pos = cfg["ctx"]
    rope_tables = {}

    def rope_table(theta, factor):
        """[max_pos, hd/2] cos/sin caches (com.microsoft.RotaryEmbedding's layout)."""
        if (theta, factor) not in rope_tables:
            inv = 1.0 / (theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
            emb = np.outer(np.arange(max_pos, dtype=np.float64) / factor, inv)
            k = len(rope_tables)
            rope_tables[(theta, factor)] = (
                g.init(f"rope_cos_{k}", np.cos(emb).astype(np.float32)),
                g.init(f"rope_sin_{k}", np.sin(emb).astype(np.float32)),
            )
        return rope_tables[(theta, factor)]

    emb_w = W["token_embd.weight"]
    # The embedding lookup reads one row per token, so an fp32 table costs memory, not
    # bandwidth; the (tied) LM head reads the whole matrix every step and stays quantized.
    emb_f32 = emb_w.dequantize() if isinstance(emb_w, gq.QuantWeight) else emb_w
    embed = g.init("model.embed_tokens.weight", emb_f32)
    c_eps = g.const(np.array(eps, np.float32), "eps")
    c_two = g.const(np.array(2.0, np.float32), "two")
    c_scale = g.const(np.array(1.0 / np.sqrt(hd), np.float32), "scale")
    c_neg = g.const(np.array(-1e9, np.float32), "neg")
    c_zero_f = g.const(np.array(0.0, np.float32), "zf")
    c0 = g.const(np.array(0, np.int64), "i0")
    c1 = g.const(np.array(1, np.int64), "i1")
    c2 = g.const(np.array(2, np.int64), "i2")

    def rms(x, w_name, w):
        wn = g.init(w_name, w)
        p = g.op("Pow", [x, c_two])
        m = g.op("ReduceMean", [p], axes=[-1], keepdims=1)
        a = g.op("Add", [m, c_eps])
        s = g.op("Sqrt", [a])
        d = g.op("Div", [x, s])
        return g.op("Mul", [d, wn])

    blocksums = {}

    def linear_multi(x, parts):
        """Projections of the same input [(name, w), ...] -> outputs. Quantized weights of one
        format are concatenated along N into a single MatMulNBits (and one min term), then
        split: fewer, larger kernels."""
        ws = [w for _, w in parts]
        same = all(isinstance(w, gq.QuantWeight) for w in ws) and len(
            {(w.bits, w.block_size, w.k, w.mins is None, w.source_type) for w in ws}
        ) == 1
        if not same or len(parts) == 1:
            return [linear(x, n, w) for n, w in parts]
        w0 = ws[0]
        fused = gq.QuantWeight(
            n=sum(w.n for w in ws),
            k=w0.k,
            bits=w0.bits,
            block_size=w0.block_size,
            packed=np.concatenate([w.packed for w in ws], axis=0),
            scales=np.concatenate([w.scales for w in ws], axis=0),
            mins=None if w0.mins is None else np.concatenate([w.mins for w in ws], axis=0),
            source_type=w0.source_type,
        )
        y = linear(x, "+".join(n for n, _ in parts), fused)
        sizes = g.const(np.array([w.n for w in ws], np.int64), "fsplit")
        return g.op("Split", [y, sizes], axis=-1, outputs=[g.name("proj") for _ in parts])

    def linear(x, name, w):  # w is torch layout [out, in] (fp32) or a QuantWeight
        if not isinstance(w, gq.QuantWeight):
            wn = g.init(name, np.ascontiguousarray(w.T))
            return g.op("MatMul", [x, wn])
        # accuracy_level 4: int8 activations x int4/int8 weights (MLAS's fast path; llama.cpp
        # likewise quantizes activations to 8 bits for its quantized dot products).
        if w.bits == 8 and ACCURACY_LEVEL == 0:
            # MLAS has no fast fp32-activation kernel for 8-bit weights (measured ~50x slower
            # than int8 activations): keep such weights as fp32 instead.
            wn = g.init(name, np.ascontiguousarray(w.dequantize().T))
            return g.op("MatMul", [x, wn])
        y = g.op(
            "MatMulNBits",
            [x, g.init(name + ".qweight", w.packed), g.init(name + ".scales", w.scales)],
            domain="com.microsoft",
            K=w.k,
            N=w.n,
            bits=w.bits,
            block_size=w.block_size,
            accuracy_level=ACCURACY_LEVEL,
        )
        if w.mins is None:
            return y
        # Asymmetric blocks: w = s*(q - off) + mn, so x.w = MatMulNBits(x) + blocksum(x) . MN^T
        # (exact; the block sums are shared by every projection of the same input).
        key = (x, w.block_size)
        if key not in blocksums:
            shp = g.const(np.array([0, 0, w.k // w.block_size, w.block_size], np.int64), "bshp")
            xr = g.op("Reshape", [x, shp])
            blocksums[key] = g.op("ReduceSum", [xr, g.const(np.array([-1], np.int64))], keepdims=0)
        m = g.op("MatMul", [blocksums[key], g.init(name + ".mins", np.ascontiguousarray(w.mins.T))])
        return g.op("Add", [y, m])

    # shapes
    ids_shape = g.op("Shape", ["input_ids"])
    B = g.op("Gather", [ids_shape, c0], axis=0)
    S = g.op("Gather", [ids_shape, c1], axis=0)
    past_shape = g.op("Shape", ["past_key_values.0.key"])
    P = g.op("Gather", [past_shape, c2], axis=0)
    T = g.op("Add", [P, S])
    B1 = g.op("Unsqueeze", [B, g.const(np.array([0], np.int64))])
    S1 = g.op("Unsqueeze", [S, g.const(np.array([0], np.int64))])

    # mask bias [B,1,S,T]: key j visible to query i iff j <= P+i and attention_mask[b,j]
    kpos = g.op("Range", [c0, T, c1])  # [T]
    qpos = g.op("Range", [P, T, c1])  # [S]
    kpos2 = g.op("Unsqueeze", [kpos, g.const(np.array([0], np.int64))])  # [1,T]
    qpos2 = g.op("Unsqueeze", [qpos, g.const(np.array([1], np.int64))])  # [S,1]
    causal = g.op("LessOrEqual", [kpos2, qpos2])  # [S,T]
    am = g.op("Cast", ["attention_mask"], to=TensorProto.BOOL)
    am4 = g.op("Unsqueeze", [am, g.const(np.array([1, 2], np.int64))])  # [B,1,1,T]
    allowed = g.op("And", [causal, am4])  # [B,1,S,T]
    bias = g.op("Where", [allowed, c_zero_f, c_neg])
    bias_local = None
    if any(swa):
        # sliding-window layers also hide keys more than `window - 1` positions back (the
        # row's tokens are contiguous in the cache, so cache-index distance = position distance)
        dist = g.op("Sub", [qpos2, kpos2])  # [S,T]
        near = g.op("Less", [dist, g.const(np.array(cfg["window"], np.int64))])
        bias_local = g.op("Where", [g.op("And", [allowed, near]), c_zero_f, c_neg])

    def cos_sin(theta, factor):
        return rope_table(theta, factor)

    def rope(x, cs):  # x [B,h,S,hd], rotate-half (NeoX) layout
        # One contrib node instead of ~6 standard ones per tensor: decode is dominated by
        # per-node overhead at this model size (profiled: ~2000 nodes per step before).
        return g.op("RotaryEmbedding", [x, "position_ids", cs[0], cs[1]], domain="com.microsoft", interleaved=0)

    shp_bshd = lambda h: g.op(  # noqa: E731
        "Concat", [B1, S1, g.const(np.array([h, hd], np.int64))], axis=0
    )
    shp_q = shp_bshd(nh)
    shp_kv = shp_bshd(kvh)
    # Q grouped per KV head: [B, kvh, group*S, hd]
    neg1 = g.const(np.array([-1], np.int64))
    shp_qg = g.op("Concat", [B1, g.const(np.array([kvh], np.int64)), neg1, g.const(np.array([hd], np.int64))], axis=0)
    T1 = g.op("Unsqueeze", [T, g.const(np.array([0], np.int64))])
    shp_scores = g.op("Concat", [B1, g.const(np.array([nh], np.int64)), S1, T1], axis=0)
    shp_scores_g = g.op("Concat", [B1, g.const(np.array([kvh], np.int64)), neg1, T1], axis=0)
    shp_ctx = g.op("Concat", [B1, g.const(np.array([nh], np.int64)), S1, g.const(np.array([hd], np.int64))], axis=0)
    shp_bsh = g.op("Concat", [B1, S1, g.const(np.array([QD], np.int64))], axis=0)
    shp_bsk = g.op("Concat", [B1, S1, g.const(np.array([kvh * hd], np.int64))], axis=0)

    def ffn(x, i, pre, blk):
        h = rms(x, f"{pre}.pre_feedforward_layernorm.weight", W[f"{blk}.ffn_norm.weight"])
        if f"{blk}.ffn_gate.weight" in W:
            gate, up = linear_multi(
                h,
                [(f"{pre}.mlp.gate_proj.weight", W[f"{blk}.ffn_gate.weight"]), (f"{pre}.mlp.up_proj.weight", W[f"{blk}.ffn_up.weight"])],
            )
        else:  # phi3: fused gate_up (first half gate, second half up, as llama.cpp's swiglu)
            gu = linear(h, f"{pre}.mlp.gate_up_proj.weight", W[f"{blk}.ffn_up.weight"])
            gate, up = g.op("Split", [gu, half_ffn], axis=-1, outputs=[g.name("gate"), g.name("up")])
        if cfg.get("ffn_act") == "gelu_tanh":
            a = g.op("FastGelu", [gate], domain="com.microsoft")  # the tanh approximation
        else:
            a = g.op("Mul", [gate, g.op("Sigmoid", [gate])])
        act = g.op("Mul", [a, up])
        down = linear(act, f"{pre}.mlp.down_proj.weight", W[f"{blk}.ffn_down.weight"])
        if cfg.get("post_norms"):
            down = rms(down, f"{pre}.post_feedforward_layernorm.weight", W[f"{blk}.post_ffw_norm.weight"])
        x = g.op("Add", [x, down])
        return x

    x = g.op("Gather", [embed, "input_ids"], axis=0)
    if cfg.get("embed_scale", 1.0) != 1.0:
        x = g.op("Mul", [x, g.const(np.array(cfg["embed_scale"], np.float32), "escale")])
    half_ffn = g.const(np.array([cfg["ffn"], cfg["ffn"]], np.int64), "hffn")
    qkv_split = g.const(np.array([QD, kvh * hd, kvh * hd], np.int64), "qkvs")
    for i in range(L):
        pre = f"model.layers.{i}"
        blk = f"blk.{i}"
        h = rms(x, f"{pre}.input_layernorm.weight", W[f"{blk}.attn_norm.weight"])
        if f"{blk}.attn_qkv.weight" in W:  # phi3: fused QKV projection, split after the matmul
            qkv = linear(h, f"{pre}.self_attn.qkv_proj.weight", W[f"{blk}.attn_qkv.weight"])
            q, k, v = g.op("Split", [qkv, qkv_split], axis=-1, outputs=[g.name("q"), g.name("k"), g.name("v")])
        else:
            q, k, v = linear_multi(
                h,
                [(f"{pre}.self_attn.{t}_proj.weight", W[f"{blk}.attn_{t}.weight"]) for t in ("q", "k", "v")],
            )
        for t, nm in (("q", "attn_q"), ("k", "attn_k"), ("v", "attn_v")):  # qwen2: QKV bias
            if f"{blk}.{nm}.bias" in W:
                b = g.init(f"{pre}.self_attn.{t}_proj.bias", W[f"{blk}.{nm}.bias"])
                if t == "q":
                    q = g.op("Add", [q, b])
                elif t == "k":
                    k = g.op("Add", [k, b])
                else:
                    v = g.op("Add", [v, b])
        if swa[i]:
            cs = cos_sin(cfg.get("rope_theta_swa", cfg["rope_theta"]), 1.0)
        else:
            cs = cos_sin(cfg["rope_theta"], cfg.get("rope_linear_factor", 1.0))
        if ATTENTION == "gqa":
            if f"{blk}.attn_q_norm.weight" in W:  # qwen3/gemma3: per-head RMSNorm of q and k before RoPE
                q = rms(g.op("Reshape", [q, shp_q]), f"{pre}.self_attn.q_norm.weight", W[f"{blk}.attn_q_norm.weight"])
                k = rms(g.op("Reshape", [k, shp_kv]), f"{pre}.self_attn.k_norm.weight", W[f"{blk}.attn_k_norm.weight"])
                q = g.op("Reshape", [q, shp_bsh])
                k = g.op("Reshape", [k, shp_bsk])
            # One node per layer: RoPE, the KV cache append, grouped-query attention (causal,
            # per-row lengths from seqlens_k, sliding window, soft-capping). With past and
            # present bound to the same buffer (decoder.rs) the cache is appended in place.
            attrs = dict(num_heads=nh, kv_num_heads=kvh, do_rotary=1, rotary_interleaved=0, scale=float(1.0 / np.sqrt(hd)))
            if swa[i]:
                # same window as llama.cpp's sliding-window layers (checked by the parity
                # fixtures with window 8 over 48 tokens; window - 1 fails them)
                attrs["local_window_size"] = int(cfg["window"])
            if cfg.get("attn_softcap"):
                attrs["softcap"] = float(cfg["attn_softcap"])
            ctx, _, _ = g.op(
                "GroupQueryAttention",
                [q, k, v, f"past_key_values.{i}.key", f"past_key_values.{i}.value", "seqlens_k", "total_sequence_length", cs[0], cs[1]],
                domain="com.microsoft",
                outputs=[g.name("attn"), f"present.{i}.key", f"present.{i}.value"],
                **attrs,
            )
            o = linear(ctx, f"{pre}.self_attn.o_proj.weight", W[f"{blk}.attn_output.weight"])
            if cfg.get("post_norms"):
                o = rms(o, f"{pre}.post_attention_layernorm.weight", W[f"{blk}.post_attention_norm.weight"])
            x = g.op("Add", [x, o])
            x = ffn(x, i, pre, blk)
            continue
        q = g.op("Reshape", [q, shp_q])  # [B,S,nh,hd]
        k = g.op("Reshape", [k, shp_kv])
        if f"{blk}.attn_q_norm.weight" in W:  # qwen3/gemma3: per-head RMSNorm of q and k before RoPE
            q = rms(q, f"{pre}.self_attn.q_norm.weight", W[f"{blk}.attn_q_norm.weight"])
            k = rms(k, f"{pre}.self_attn.k_norm.weight", W[f"{blk}.attn_k_norm.weight"])
        q = g.op("Transpose", [q], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [k], perm=[0, 2, 1, 3])
        v = g.op("Transpose", [g.op("Reshape", [v, shp_kv])], perm=[0, 2, 1, 3])
        q = g.op("Mul", [rope(q, cs), c_scale])
        k = rope(k, cs)
        pk = g.op("Concat", [f"past_key_values.{i}.key", k], axis=2, outputs=[f"present.{i}.key"])
        pv = g.op("Concat", [f"past_key_values.{i}.value", v], axis=2, outputs=[f"present.{i}.value"])
        qg = g.op("Reshape", [q, shp_qg])  # [B,kvh,group*S,hd]
        kt = g.op("Transpose", [pk], perm=[0, 1, 3, 2])  # [B,kvh,hd,T]
        sc = g.op("MatMul", [qg, kt])  # [B,kvh,group*S,T]
        sc = g.op("Reshape", [sc, shp_scores])  # [B,nh,S,T]
        if cfg.get("attn_softcap"):  # gemma2: cap * tanh(scores / cap), before the mask
            c = cfg["attn_softcap"]
            sc = g.op("Mul", [g.op("Tanh", [g.op("Mul", [sc, g.const(np.array(1.0 / c, np.float32))])]), g.const(np.array(c, np.float32))])
        sc = g.op("Add", [sc, bias_local if swa[i] else bias])
        pr = g.op("Softmax", [sc], axis=-1)
        pr = g.op("Reshape", [pr, shp_scores_g])
        ctx = g.op("MatMul", [pr, pv])  # [B,kvh,group*S,hd]
        ctx = g.op("Transpose", [g.op("Reshape", [ctx, shp_ctx])], perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, shp_bsh])
        o = linear(ctx, f"{pre}.self_attn.o_proj.weight", W[f"{blk}.attn_output.weight"])
        if cfg.get("post_norms"):  # gemma2/3: norm the attention output before the residual add
            o = rms(o, f"{pre}.post_attention_layernorm.weight", W[f"{blk}.post_attention_norm.weight"])
        x = g.op("Add", [x, o])
        x = ffn(x, i, pre, blk)
    x = rms(x, "model.norm.weight", W["output_norm.weight"])
    lm_w = W.get("output.weight", emb_w)  # tied embeddings when there is no output.weight
    cap = cfg.get("final_softcap", 0.0)
    out_name = "logits_raw" if cap else "logits"
    if isinstance(lm_w, gq.QuantWeight) and not (lm_w is emb_w and lm_w.bits == 8 and ACCURACY_LEVEL == 0):
        g.op("Identity", [linear(x, "lm_head", lm_w)], outputs=[out_name])
    else:
        flat = g.op("Reshape", [x, g.const(np.array([-1, H], np.int64))])
        lm = embed if lm_w is emb_w else g.init("lm_head.weight", lm_w)
        logits2 = g.op("Gemm", [flat, lm], transB=1)
        shp_logits = g.op("Concat", [B1, S1, g.const(np.array([V], np.int64))], axis=0)
        g.op("Reshape", [logits2, shp_logits], outputs=[out_name])
    if cap:  # gemma2: final logit soft-capping
        t = g.op("Tanh", [g.op("Mul", [out_name, g.const(np.array(1.0 / cap, np.float32))])])
        g.op("Mul", [t, g.const(np.array(cap, np.float32))], outputs=["logits"])

    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    if ATTENTION == "gqa":
        inputs = [
            helper.make_tensor_value_info("input_ids", i64, ["batch", "seq"]),
            # per row: its total length (past + new) - 1; and the largest total length
            helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["batch"]),
            helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
        ]
    else:
        inputs = [
            helper.make_tensor_value_info("input_ids", i64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", i64, ["batch", "total"]),
            helper.make_tensor_value_info("position_ids", i64, ["batch", "seq"]),
        ]
    outputs = [helper.make_tensor_value_info("logits", f32, ["batch", "seq", V])]
    for i in range(L):
        for kv in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_key_values.{i}.{kv}", f32, ["batch", kvh, "past", hd]))
            outputs.append(helper.make_tensor_value_info(f"present.{i}.{kv}", f32, ["batch", kvh, "total", hd]))
    nodes, inits = prune(g.nodes, g.inits, [o.name for o in outputs])
    graph = helper.make_graph(nodes, "decoder", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)], producer_name="switchyard-convert")
    model.ir_version = 8
    return model


# ---------------------------------------------------------------------------------------
# Tiny random model
# ---------------------------------------------------------------------------------------


def tiny_weights(vocab: int, seed: int = 0, full: bool = False):
    rng = np.random.default_rng(seed)
    if full:  # SmolLM2-135M's shape
        cfg = {
            "n_layer": 30,
            "hidden": 576,
            "ffn": 1536,
            "n_head": 9,
            "n_kv_head": 3,
            "rope_theta": 100000.0,
            "eps": 1e-5,
            "ctx": 8192,
            "name": "random-smollm2-135m-shape",
        }
    else:
        cfg = {
            "n_layer": 2,
            "hidden": 64,
            "ffn": 128,
            "n_head": 4,
            "n_kv_head": 2,
            "rope_theta": 10000.0,
            "eps": 1e-5,
            "ctx": 2048,
            "name": "tiny-random-llama",
        }
    cfg["license"] = "apache-2.0"
    cfg["vocab"] = vocab
    cfg["head_dim"] = cfg["hidden"] // cfg["n_head"]
    H, F, hd = cfg["hidden"], cfg["ffn"], cfg["head_dim"]

    def r(*shape, scale=0.08):
        if full:  # float32 draws: ~135M values, keep it fast and small
            return rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    W = {"token_embd.weight": r(vocab, H, scale=0.5), "output_norm.weight": 1.0 + r(H, scale=0.1)}
    for i in range(cfg["n_layer"]):
        W[f"blk.{i}.attn_norm.weight"] = 1.0 + r(H, scale=0.1)
        W[f"blk.{i}.ffn_norm.weight"] = 1.0 + r(H, scale=0.1)
        W[f"blk.{i}.attn_q.weight"] = r(cfg["n_head"] * hd, H, scale=0.3)
        W[f"blk.{i}.attn_k.weight"] = r(cfg["n_kv_head"] * hd, H, scale=0.3)
        W[f"blk.{i}.attn_v.weight"] = r(cfg["n_kv_head"] * hd, H, scale=0.3)
        W[f"blk.{i}.attn_output.weight"] = r(H, H)
        W[f"blk.{i}.ffn_gate.weight"] = r(F, H)
        W[f"blk.{i}.ffn_up.weight"] = r(F, H)
        W[f"blk.{i}.ffn_down.weight"] = r(H, F)
    return cfg, W


# ---------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def write_manifest(out_dir: str, files, source: dict):
    manifest = {
        "converter_version": CONVERTER_VERSION,
        "source": source,
        "files": {name: {"sha256": sha256(os.path.join(out_dir, name)), "bytes": os.path.getsize(os.path.join(out_dir, name))} for name in files},
    }
    write_json(os.path.join(out_dir, "manifest.json"), manifest)


def read_tokenizer_dir(d: str) -> dict:
    """Tokenizer files and special ids of a model directory this converter wrote before."""

    def rd(name):
        with open(os.path.join(d, name), encoding="utf-8") as f:
            return json.load(f)

    tj, tc, c = rd("tokenizer.json"), rd("tokenizer_config.json"), rd("config.json")
    eos = c.get("eos_token_id") or []
    return {
        "tokenizer_json": tj,
        "tokenizer_config": tc,
        "bos": c.get("bos_token_id"),
        "eos_ids": [int(x) for x in (eos if isinstance(eos, list) else [eos])],
        "vocab": int(c["vocab_size"]),
    }


def weights_summary(summary) -> str:
    """e.g. "MatMulNBits int4 (from Q4_1) x210, int8 (from Q8_0) x1, fp32 x61"."""
    counts = {}
    for src, bits in summary.values():
        label = "fp32" if bits == 32 else f"int{bits} (from {src})"
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", help="source GGUF file (also the tokenizer source for --tiny)")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--tiny", action="store_true", help="emit a 2-layer random-weight model instead")
    ap.add_argument(
        "--random-full", action="store_true", help="emit a random-weight model with SmolLM2-135M's full shape (speed tests)"
    )
    ap.add_argument(
        "--tokenizer-dir",
        help="with --tiny/--random-full: copy the tokenizer from this converted model directory instead of reading --gguf",
    )
    ap.add_argument("--source-id", default="", help="provenance string recorded in manifest.json")
    ap.add_argument(
        "--activations",
        choices=["int8", "fp32"],
        default="int8",
        help="activation precision of the quantized matmuls (MatMulNBits accuracy_level 4 or 0)",
    )
    ap.add_argument(
        "--attention",
        choices=["gqa", "standard"],
        default="gqa",
        help="GroupQueryAttention with an in-place KV cache (default), or standard ops (optimum layout)",
    )
    ap.add_argument(
        "--decoder-only",
        action="store_true",
        help="write model.onnx and config.json only, no tokenizer files (parity fixtures with test vocabularies)",
    )
    ap.add_argument(
        "--dequantize", action="store_true", help="expand every weight to fp32 (the old format; for comparisons)"
    )
    args = ap.parse_args()
    random = args.tiny or args.random_full
    if args.tiny and args.random_full:
        ap.error("--tiny and --random-full are exclusive")
    if args.tokenizer_dir and not random:
        ap.error("--tokenizer-dir needs --tiny or --random-full")
    if not args.gguf and not args.tokenizer_dir:
        ap.error("--gguf is required (or --tokenizer-dir with --tiny/--random-full)")

    global ACCURACY_LEVEL, ATTENTION
    ACCURACY_LEVEL = 4 if args.activations == "int8" else 0
    ATTENTION = args.attention
    t0 = time.time()
    if args.tokenizer_dir:
        log(f"tokenizer from {args.tokenizer_dir}")
        tdir = read_tokenizer_dir(args.tokenizer_dir)
        vocab_n, tok = tdir["vocab"], None
    else:
        log(f"reading {args.gguf}")
        try:
            cfg, W, tok = load_gguf(args.gguf, keep_quantized=not args.dequantize)
        except ConvertError as e:
            log(f"error: {e}")
            sys.exit(2)
        vocab_n = cfg["vocab"]
    if random:
        cfg, W = tiny_weights(vocab_n, full=args.random_full)
    if args.random_full:
        # Zero the end-of-sequence rows of the tied embedding/LM head: their logit is exactly
        # 0, below the maximum of the other ~49k random logits, so greedy never stops early.
        if tok is not None:
            tj0 = build_tokenizer_json(tok)["model"]["vocab"]
            stop = [tj0.get("<|im_end|>"), tj0.get("<|endoftext|>"), tok["eos"]]
        else:
            stop = tdir["eos_ids"]
        for i in {int(x) for x in stop if x is not None}:
            W["token_embd.weight"][i] = 0.0
    log(f"config: {json.dumps({k: v for k, v in cfg.items() if k not in ('name',)})}")

    os.makedirs(args.out, exist_ok=True)
    tmp = os.path.join(args.out, "model.onnx.tmp")
    log("building ONNX graph")
    W_summary = {k: (v.source_type, v.bits) if isinstance(v, gq.QuantWeight) else ("F32", 32) for k, v in W.items()}
    model = build_decoder(cfg, W)
    del W
    onnx.checker.check_model(model, full_check=False) if model.ByteSize() < 2**31 - 1 else None
    log(f"writing model.onnx ({model.ByteSize() / 1e6:.0f} MB)")
    onnx.save(model, tmp)
    os.replace(tmp, os.path.join(args.out, "model.onnx"))

    if args.decoder_only:
        bos = tok["bos"] if tok else None
        eos_ids = [int(tok["eos"])] if tok and tok["eos"] is not None else []
    elif tok is None:
        write_json(os.path.join(args.out, "tokenizer.json"), tdir["tokenizer_json"])
        write_json(os.path.join(args.out, "tokenizer_config.json"), tdir["tokenizer_config"])
        bos, eos_ids = tdir["bos"], tdir["eos_ids"]
    else:
        try:
            tj = build_tokenizer_json(tok)
        except TokenizerError as e:
            log(f"error: {e}")
            sys.exit(2)
        write_json(os.path.join(args.out, "tokenizer.json"), tj)
        vocab = tj["model"]["vocab"]

        def tid(t):
            return vocab.get(t)

        bos = tok["bos"]
        eos_ids = []
        # A turn ends with the family's end-of-turn token (ChatML <|im_end|>, Gemma
        # <end_of_turn>, Phi-3 <|end|>, Llama 3 <|eot_id|>); also honour the GGUF eos.
        for t in END_OF_TURN:
            if tid(t) is not None:
                eos_ids.append(tid(t))
        if tok["eos"] is not None and tok["eos"] not in eos_ids and tok["eos"] != bos:
            eos_ids.append(int(tok["eos"]))
        write_json(
            os.path.join(args.out, "tokenizer_config.json"),
            {
                "add_bos_token": False,
                "bos_token": tok["tokens"][bos] if bos is not None else None,
                "eos_token": tok["tokens"][eos_ids[0]] if eos_ids else None,
                "chat_template": tok["chat_template"] or default_template(vocab),
            },
        )
    write_json(
        os.path.join(args.out, "config.json"),
        {
            "model_type": cfg.get("arch", "llama"),
            "name": cfg["name"],
            "num_hidden_layers": cfg["n_layer"],
            "hidden_size": cfg["hidden"],
            "intermediate_size": cfg["ffn"],
            "num_attention_heads": cfg["n_head"],
            "num_key_value_heads": cfg["n_kv_head"],
            "head_dim": cfg["head_dim"],
            "vocab_size": cfg["vocab"],
            "max_position_embeddings": cfg["ctx"],
            "rms_norm_eps": cfg["eps"],
            "rope_theta": cfg["rope_theta"],
            "tie_word_embeddings": True,
            "bos_token_id": bos,
            "eos_token_id": eos_ids,
            "torch_dtype": "float32",
            # What /readyz and /v1/models report: the GGUF's tensor types and how they are kept.
            "switchyard": {
                "architecture": cfg.get("arch", "llama"),
                "gguf_tensor_types": cfg.get("quant_types", {}),
                "weights": weights_summary(W_summary),
                "activations": args.activations,
                "attention": args.attention,
            },
        },
    )
    write_json(
        os.path.join(args.out, "generation_config.json"),
        {"bos_token_id": bos, "eos_token_id": eos_ids, "do_sample": False},
    )
    files = ["model.onnx", "tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json"]
    if args.decoder_only:
        files = ["model.onnx", "config.json", "generation_config.json"]
    source = {"gguf": os.path.basename(args.gguf) if args.gguf else None, "id": args.source_id, "tiny": args.tiny}
    if args.random_full:
        source["random_full"] = True
    if args.tokenizer_dir:
        source["tokenizer_dir"] = os.path.basename(os.path.normpath(args.tokenizer_dir))
    write_manifest(args.out, files, source)
    log(f"done in {time.time() - t0:.1f}s -> {args.out}")


if __name__ == "__main__":
    main()
