#!/usr/bin/env python3
"""Latency per 200 tokens and agreement of Rampart's int4 / int8 / fp32 forms (Python ORT).

Usage: bench_formats.py MODEL_DIR FILE.onnx...   (MODEL_DIR holds tokenizer.json)
"""
import sys, time
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

d, files = sys.argv[1], sys.argv[2:]
tok = Tokenizer.from_file(f"{d}/tokenizer.json")
text = ("Hi, this is Maria Gonzalez from accounts. Please send the contract to 42 Elm Street, "
        "Springfield, IL 62704 and call me on 555-201-3344. ") * 12
ids = tok.encode(text).ids[:200]
feed = {"input_ids": np.array([ids], np.int64), "attention_mask": np.ones((1, len(ids)), np.int64),
        "token_type_ids": np.zeros((1, len(ids)), np.int64)}
ref = None
for f in files:
    for th in (1, 2):
        so = ort.SessionOptions(); so.intra_op_num_threads = th; so.inter_op_num_threads = 1
        s = ort.InferenceSession(f, so, providers=["CPUExecutionProvider"])
        out = s.run(None, feed)[0][0]
        for _ in range(3): s.run(None, feed)
        ts = []
        for _ in range(20):
            t = time.perf_counter(); s.run(None, feed); ts.append((time.perf_counter() - t) * 1e3)
        lab = out.argmax(-1)
        if ref is None: ref = lab
        print(f"{f.split('/')[-1]:18s} threads={th} p50={np.median(ts):6.1f} ms min={min(ts):6.1f} ms "
              f"label agreement vs first={np.mean(lab == ref):.3f}")
