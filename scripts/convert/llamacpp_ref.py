#!/usr/bin/env python3
"""llama.cpp (llama-cpp-python) as the reference implementation: speed and logits.

Runs in $CACHE/venv-llamacpp (scripts/setup-llamacpp.sh). Two modes, one JSON line out:

  llamacpp_ref.py bench  --gguf F --ids 1,2,3 --new-tokens 128 --threads 2 [--rounds 3]
      greedy decode of exactly --new-tokens tokens after the prompt ids (end-of-sequence
      ignored, as in the Rust bench): {"ttft_ms", "decode_tokens_per_s", "ids", "rounds": [...]}
      (best round reported; every round listed)
  llamacpp_ref.py logits --gguf F --ids 1,2,3 --out FILE.f32 [--threads 2]
      teacher-forced logits at every position (logits_all), written as little-endian f32
      [positions, vocab]; prints {"positions", "vocab"}
  llamacpp_ref.py greedy --gguf F --ids 1,2,3 --new-tokens 32
      greedy continuation ids (stops at end-of-generation), with each step's top-1 minus
      top-2 logit margin and logit standard deviation: {"ids", "margins", "stds"}
"""

import argparse
import json
import sys
import time

import numpy as np


def plain_cpu_buffers():
    """Keep every weight in llama.cpp's plain CPU buffer, not its "extra" buffer types
    (AMX tiles, re-packed interleaved blocks). On CPUs with AMX (amx_int8: Sapphire Rapids
    and later) ggml 0.3.36's AMX buffer segfaults on the tiny parity models' Q8_0 matrices;
    the plain buffer runs the same quantized dot products with the ordinary CPU kernels, so
    the logits stay llama.cpp's. The real models (SmolLM2 Q4_1) crash there too, so the
    benchmark uses the plain buffer as well. llama-cpp-python does not expose the switch, so
    the default parameters it starts from are patched. SWITCHYARD_LLAMACPP_EXTRA_BUFTS=1 turns it off."""
    import os

    import llama_cpp.llama_cpp as C

    if os.environ.get("SWITCHYARD_LLAMACPP_EXTRA_BUFTS") == "1" or getattr(C, "_switchyard_plain", False):
        return
    default = C.llama_model_default_params

    def params():
        p = default()
        p.use_extra_bufts = False
        return p

    C.llama_model_default_params = params
    C._switchyard_plain = True


def load(path, threads, n_ctx, logits_all=False, plain=True):
    from llama_cpp import Llama

    if plain:
        plain_cpu_buffers()
    return Llama(
        model_path=path,
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        n_batch=512,
        logits_all=logits_all,
        verbose=False,
        seed=0,
    )


def last_logits(llm):
    """The last evaluated position's logits (llama-cpp-python keeps `scores` only with
    logits_all, so read llama.cpp's own buffer)."""
    ptr = llm._ctx.get_logits_ith(-1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),))


def ids_arg(s):
    return [int(x) for x in s.split(",") if x]


def bench(args):
    ids = ids_arg(args.ids)
    llm = load(args.gguf, args.threads, len(ids) + args.new_tokens + 8)
    rounds = []
    out_ids = None
    # untimed warm-up (page in the mmapped weights, size the buffers), as the Rust bench does
    llm.eval(ids)
    for _ in range(8):
        llm.eval([int(np.argmax(last_logits(llm)))])
    for _ in range(args.rounds):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        gen = []
        t_first = None
        while len(gen) < args.new_tokens:
            # greedy = argmax of the last logits row, exactly what temperature 0 does
            tok = int(np.argmax(last_logits(llm)))
            gen.append(tok)
            if t_first is None:
                t_first = time.perf_counter()
            if len(gen) == args.new_tokens:
                break
            llm.eval([tok])
        t_end = time.perf_counter()
        rounds.append(
            {
                "ttft_ms": (t_first - t0) * 1e3,
                "decode_tokens_per_s": (len(gen) - 1) / (t_end - t_first) if len(gen) > 1 else 0.0,
            }
        )
        out_ids = gen
    best = max(rounds, key=lambda r: r["decode_tokens_per_s"])
    print(json.dumps({**best, "ids": out_ids, "rounds": rounds, "threads": args.threads}))


def logits(args):
    ids = ids_arg(args.ids)
    llm = load(args.gguf, args.threads, max(64, len(ids) + 8), logits_all=True)
    llm.eval(ids)
    sc = np.asarray(llm.scores[: len(ids)], dtype=np.float32)
    sc.astype("<f4").tofile(args.out)
    print(json.dumps({"positions": int(sc.shape[0]), "vocab": int(sc.shape[1])}))


def greedy(args):
    ids = ids_arg(args.ids)
    llm = load(args.gguf, args.threads, len(ids) + args.new_tokens + 8)
    llm.eval(ids)
    eog = set()
    try:
        import llama_cpp

        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        eog = {t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)}
    except Exception:
        eog = {llm.token_eos()}
    gen, margins, stds = [], [], []
    while len(gen) < args.new_tokens:
        lg = last_logits(llm)
        tok = int(np.argmax(lg))
        top2 = np.partition(lg, -2)[-2:]
        gen.append(tok)
        # how decisive each greedy choice was (top-1 minus top-2 logit, and the spread of
        # the logits): a near-tie may go either way under different int8 rounding
        margins.append(float(top2[1] - top2[0]))
        stds.append(float(np.std(lg)))
        if tok in eog:
            break
        llm.eval([tok])
    print(json.dumps({"ids": gen, "margins": margins, "stds": stds}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["bench", "logits", "greedy"])
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.mode == "logits" and not args.out:
        ap.error("logits needs --out")
    {"bench": bench, "logits": logits, "greedy": greedy}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
