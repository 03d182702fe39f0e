#!/usr/bin/env python3
"""Convert a BERT sentence encoder (safetensors + tokenizer.json, e.g. all-MiniLM-L6-v2)
into an fp32 ONNX graph built with onnx helper ops (no torch).

  inputs : input_ids, attention_mask, token_type_ids  [B,S] int64
  outputs: last_hidden_state [B,S,H] float32

Pooling (mean over the attention mask) and L2 normalisation are done by the caller
(local-runtime's Embedder). Writes model.onnx, tokenizer.json, config.json, manifest.json.
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_llama_to_onnx import G, write_json, write_manifest  # noqa: E402

OPSET = 17


def build(cfg, W):
    H, nh, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    hd = H // nh
    eps = cfg.get("layer_norm_eps", 1e-12)
    g = G()
    p = "" if "embeddings.word_embeddings.weight" in W else "bert."

    def w(name):
        return g.init(name, W[p + name].astype(np.float32))

    def ln(x, name):
        return g.op("LayerNormalization", [x, w(name + ".weight"), w(name + ".bias")], axis=-1, epsilon=eps)

    def dense(x, name):
        wt = g.init(name + ".weight_t", np.ascontiguousarray(W[p + name + ".weight"].T.astype(np.float32)))
        return g.op("Add", [g.op("MatMul", [x, wt]), w(name + ".bias")])

    c0 = g.const(np.array(0, np.int64))
    c1 = g.const(np.array(1, np.int64))
    shape = g.op("Shape", ["input_ids"])
    S = g.op("Gather", [shape, c1], axis=0)
    pos = g.op("Range", [c0, S, c1])
    x = g.op("Gather", [w("embeddings.word_embeddings.weight"), "input_ids"], axis=0)
    x = g.op("Add", [x, g.op("Gather", [w("embeddings.position_embeddings.weight"), pos], axis=0)])
    x = g.op("Add", [x, g.op("Gather", [w("embeddings.token_type_embeddings.weight"), "token_type_ids"], axis=0)])
    x = ln(x, "embeddings.LayerNorm")

    # additive mask [B,1,1,S]
    m = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    m = g.op("Unsqueeze", [m, g.const(np.array([1, 2], np.int64))])
    bias = g.op("Mul", [g.op("Sub", [g.const(np.array(1.0, np.float32)), m]), g.const(np.array(-10000.0, np.float32))])
    shp_heads = g.const(np.array([0, 0, nh, hd], np.int64))
    shp_back = g.const(np.array([0, 0, H], np.int64))
    scale = g.const(np.array(1.0 / np.sqrt(hd), np.float32))
    sqrt2 = g.const(np.array(np.sqrt(2.0), np.float32))
    one = g.const(np.array(1.0, np.float32))
    half = g.const(np.array(0.5, np.float32))
    for i in range(L):
        pre = f"encoder.layer.{i}"
        q = g.op("Transpose", [g.op("Reshape", [dense(x, f"{pre}.attention.self.query"), shp_heads])], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [dense(x, f"{pre}.attention.self.key"), shp_heads])], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [dense(x, f"{pre}.attention.self.value"), shp_heads])], perm=[0, 2, 1, 3])
        sc = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k]), scale]), bias])
        pr = g.op("Softmax", [sc], axis=-1)
        ctx = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [pr, v])], perm=[0, 2, 1, 3]), shp_back])
        x = ln(g.op("Add", [dense(ctx, f"{pre}.attention.output.dense"), x]), f"{pre}.attention.output.LayerNorm")
        h = dense(x, f"{pre}.intermediate.dense")
        h = g.op("Mul", [g.op("Mul", [h, half]), g.op("Add", [one, g.op("Erf", [g.op("Div", [h, sqrt2])])])])
        x = ln(g.op("Add", [dense(h, f"{pre}.output.dense"), x]), f"{pre}.output.LayerNorm")
    g.op("Identity", [x], outputs=["last_hidden_state"])

    i64 = TensorProto.INT64
    inputs = [helper.make_tensor_value_info(n, i64, ["batch", "seq"]) for n in ("input_ids", "attention_mask", "token_type_ids")]
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", H])]
    graph = helper.make_graph(g.nodes, "encoder", inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="switchyard-convert")
    model.ir_version = 8
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", required=True, help="directory with model.safetensors, config.json, tokenizer.json")
    ap.add_argument("--out", required=True)
    ap.add_argument("--source-id", default="")
    args = ap.parse_args()
    cfg = json.load(open(os.path.join(args.src, "config.json")))
    max_len = 256
    sb = os.path.join(args.src, "sentence_bert_config.json")
    if os.path.exists(sb):
        max_len = json.load(open(sb)).get("max_seq_length", max_len)
    W = load_file(os.path.join(args.src, "model.safetensors"))
    model = build(cfg, W)
    onnx.checker.check_model(model)
    os.makedirs(args.out, exist_ok=True)
    tmp = os.path.join(args.out, "model.onnx.tmp")
    onnx.save(model, tmp)
    os.replace(tmp, os.path.join(args.out, "model.onnx"))
    shutil.copyfile(os.path.join(args.src, "tokenizer.json"), os.path.join(args.out, "tokenizer.json"))
    write_json(
        os.path.join(args.out, "config.json"),
        {
            "model_type": "bert",
            "hidden_size": cfg["hidden_size"],
            "num_hidden_layers": cfg["num_hidden_layers"],
            "num_attention_heads": cfg["num_attention_heads"],
            "max_seq_length": max_len,
            "pooling": "mean",
            "normalize": True,
        },
    )
    write_manifest(args.out, ["model.onnx", "tokenizer.json", "config.json"], {"id": args.source_id})
    print(f"[convert] wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
