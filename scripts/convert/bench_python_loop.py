#!/usr/bin/env python3
"""Plain Python onnxruntime greedy loop over a converted decoder (the benchmark baseline).

Feeds the prompt once (prefill), then one token per step with the KV cache fed back,
batch size 1, exactly what a straightforward Python integration would do. Prints one JSON
line: {"ttft_ms", "decode_tokens_per_s", "tokens", "ids", "text"?}.

  bench_python_loop.py --model DIR --ids 1,2,3 --new-tokens 64 [--threads N]
  bench_python_loop.py --model DIR --prompt "What is the capital of France?"   (needs `tokenizers`)
"""

import argparse
import json
import os
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", help="comma-separated prompt token ids")
    ap.add_argument("--prompt", help="user message, rendered with the ChatML template")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--ignore-eos", action="store_true")
    args = ap.parse_args()

    cfg = json.load(open(os.path.join(args.model, "config.json")))
    tok = None
    if args.ids:
        ids = [int(x) for x in args.ids.split(",") if x]
    else:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
        text = (
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            f"<|im_start|>user\n{args.prompt}<|im_end|>\n<|im_start|>assistant\n"
        )
        ids = tok.encode(text, add_special_tokens=False).ids

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if args.threads:
        so.intra_op_num_threads = args.threads
    t_load = time.perf_counter()
    sess = ort.InferenceSession(os.path.join(args.model, "model.onnx"), so, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t_load

    L, kvh, hd = cfg["num_hidden_layers"], cfg["num_key_value_heads"], cfg["head_dim"]
    eos = set(cfg["eos_token_id"])
    past = {}
    for i in range(L):
        for kv in ("key", "value"):
            past[f"past_key_values.{i}.{kv}"] = np.zeros((1, kvh, 0, hd), np.float32)
    out_names = ["logits"] + [f"present.{i}.{kv}" for i in range(L) for kv in ("key", "value")]

    generated = []
    cur = ids
    pos = 0
    t0 = time.perf_counter()
    ttft = None
    while len(generated) < args.new_tokens:
        n = len(cur)
        feeds = {
            "input_ids": np.array([cur], np.int64),
            "attention_mask": np.ones((1, pos + n), np.int64),
            "position_ids": np.arange(pos, pos + n, dtype=np.int64)[None, :],
        }
        feeds.update(past)
        outs = sess.run(out_names, feeds)
        nxt = int(np.argmax(outs[0][0, -1]))
        for j, name in enumerate(out_names[1:]):
            past[name.replace("present", "past_key_values")] = outs[j + 1]
        pos += n
        generated.append(nxt)
        if ttft is None:
            ttft = time.perf_counter() - t0
            t_dec = time.perf_counter()
        if nxt in eos and not args.ignore_eos:
            break
        cur = [nxt]
    dec_s = time.perf_counter() - t_dec
    res = {
        "load_ms": load_s * 1e3,
        "ttft_ms": ttft * 1e3,
        "decode_tokens_per_s": (len(generated) - 1) / dec_s if len(generated) > 1 else 0.0,
        "tokens": len(generated),
        "ids": generated,
    }
    if tok is not None:
        res["text"] = tok.decode(generated, skip_special_tokens=True)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
