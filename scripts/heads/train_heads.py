#!/usr/bin/env python3
"""Trains the sentence heads over MiniLM embeddings and writes them for the gateway.

    train_heads.py --rows rows.jsonl --minilm DIR --out DIR/head.json

Embeddings are computed exactly as `local_runtime::Embedder` does (tokenizer.json with
truncation at config.max_seq_length, padding to the longest, mean pooling over the
attention mask, L2 normalisation), so the head sees at inference what it saw here.

Heads (all logistic regression, L2-regularised, fitted by Newton's method on 385 weights):
  difficulty             P(hard) on the "diff" rows; Platt-calibrated on out-of-fold logits;
                         then p = sigmoid(z_lexical + b z_head + c) is fitted on those
                         out-of-fold logits and the rules' lexical difficulty (--lexical),
                         which is how the gateway combines the two.
  pii/phi/financial/secret/confidential
                         one-vs-rest on the "sens" rows, with every "diff" row as a negative
                         (math, code and long easy prompts carry no sensitive data); Platt
                         calibrated; the threshold is the lowest >= 0.6 whose out-of-fold
                         false-positive rate on non-sensitive rows is <= 0.5%.
Why logistic regression and not an MLP: a few thousand rows of our own templates; a linear
read-out of a frozen sentence encoder is the standard probe, trains in seconds on two
cores, has one threshold to reason about, and costs 6 x 384 multiply-adds at inference.
Figures: 5-fold cross-validation grouped by template (a template's rows share one fold),
printed and stored under "cv" in the file.
"""
import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

CATS = ["pii", "phi", "financial", "secret", "confidential"]
FOLDS = 5
L2 = 1e-4
FPR_TARGET = 0.005
# A read-out with no span evidence needs more than even odds (precision first).
MIN_THRESHOLD = 0.6


def embed(texts, mdir):
    cfg = json.load(open(os.path.join(mdir, "config.json")))
    max_len = int(cfg.get("max_seq_length", 256))
    tok = Tokenizer.from_file(os.path.join(mdir, "tokenizer.json"))
    tok.enable_truncation(max_length=max_len)
    # tokenizer.json pads to a fixed 128; the gateway pads a batch to its longest text and
    # pools over the attention mask, so padding here must not count as tokens.
    tok.no_padding()
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(os.environ.get("SWITCHYARD_TRAIN_THREADS", "2"))
    sess = ort.InferenceSession(os.path.join(mdir, "model.onnx"), so, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    encs = tok.encode_batch(texts)
    order = sorted(range(len(texts)), key=lambda i: len(encs[i].ids))
    out = np.zeros((len(texts), int(cfg.get("hidden_size", 384))), dtype=np.float32)
    for s in range(0, len(order), 32):
        idx = order[s:s + 32]
        L = max(len(encs[i].ids) for i in idx)
        ids = np.zeros((len(idx), L), dtype=np.int64)
        mask = np.zeros((len(idx), L), dtype=np.int64)
        for r, i in enumerate(idx):
            n = len(encs[i].ids)
            ids[r, :n] = encs[i].ids
            mask[r, :n] = encs[i].attention_mask
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        h = sess.run(None, feeds)[0]
        m = mask[:, :, None].astype(np.float32)
        v = (h * m).sum(1) / np.maximum(m.sum(1), 1.0)
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        out[idx] = v
    return out, max_len


def fit_lr(X, y, l2=L2, iters=30):
    """Newton / IRLS for L2-regularised logistic regression (bias unregularised)."""
    n, d = X.shape
    Xb = np.hstack([X, np.ones((n, 1), dtype=X.dtype)]).astype(np.float64)
    w = np.zeros(d + 1)
    reg = np.full(d + 1, l2 * n)
    reg[-1] = 0.0
    for _ in range(iters):
        z = Xb @ w
        p = 1.0 / (1.0 + np.exp(-z))
        g = Xb.T @ (p - y) + reg * w
        H = (Xb * (p * (1 - p))[:, None]).T @ Xb + np.diag(reg) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-7:
            break
    return w[:-1], w[-1]


def fit_offset(x, offset, y, iters=50):
    """p = sigmoid(offset + w x + b): Newton on (w, b), a tiny L2 on w."""
    w = np.zeros(2)
    X = np.stack([x, np.ones_like(x)], 1)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(offset + X @ w)))
        g = X.T @ (p - y) + np.array([1e-3 * w[0], 0.0])
        H = (X * (p * (1 - p))[:, None]).T @ X + np.diag([1e-3, 1e-9])
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(w[0]), float(w[1])


def platt(z, y):
    """Fits p = sigmoid(a z + b) on out-of-fold logits."""
    w, b = fit_lr(z[:, None], y, l2=1e-6)
    return float(w[0]), float(b)


def auc(s, y):
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    # ties: average ranks
    allv = np.concatenate([pos, neg])
    for v in np.unique(allv):
        m = allv == v
        if m.sum() > 1:
            ranks[m] = ranks[m].mean()
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def folds_of(groups):
    """Deterministic group folds: each group hashed to one fold."""
    return np.array([int(hashlib.sha256(g.encode()).hexdigest(), 16) % FOLDS for g in groups])


def oof_logits(X, y, fold):
    z = np.zeros(len(y))
    for k in range(FOLDS):
        tr, te = fold != k, fold == k
        if te.sum() == 0 or len(np.unique(y[tr])) < 2:
            continue
        w, b = fit_lr(X[tr], y[tr])
        z[te] = X[te] @ w + b
    return z


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", required=True)
    ap.add_argument("--minilm", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--lexical", required=True,
                    help="the rules' JSONL output for the rows (ids = row index): its lexical difficulty")
    a = ap.parse_args()
    t0 = time.time()
    rows = [json.loads(line) for line in open(a.rows, encoding="utf-8") if line.strip()]
    X, max_len = embed([r["text"] for r in rows], a.minilm)
    t_embed = time.time() - t0
    groups = [r["group"] for r in rows]
    fold = folds_of(groups)
    task = np.array([r["task"] for r in rows])
    cv = {"rows": len(rows), "folds": FOLDS, "grouped_by": "template"}

    # difficulty
    dm = task == "diff"
    yd = np.array([r["labels"].get("difficulty", 0) for r in rows], dtype=np.float64)
    zd = oof_logits(X[dm], yd[dm], fold[dm])
    pa, pb = platt(zd, yd[dm])
    pd = sigmoid(pa * zd + pb)
    cv["difficulty"] = {"n": int(dm.sum()), "auc": auc(zd, yd[dm]),
                        "accuracy": float(((pd >= 0.5) == (yd[dm] == 1)).mean()),
                        "brier": float(((pd - yd[dm]) ** 2).mean())}
    w, b = fit_lr(X[dm], yd[dm])
    difficulty = {"dim": X.shape[1], "w": [float(x) for x in pa * w], "bias": float(pa * b + pb)}
    # How the gateway combines it with the lexical model: p = sigmoid(a z_lex + b z_head + c),
    # fitted on the out-of-fold head logits, so the combined score stays calibrated.
    lex = {}
    for line in open(a.lexical, encoding="utf-8"):
        o = json.loads(line)
        if "difficulty" in o:
            lex[int(o["id"])] = float(o["difficulty"])
    idx = np.nonzero(dm)[0]
    pl = np.clip(np.array([lex[i] for i in idx]), 1e-6, 1 - 1e-6)
    zl = np.log(pl / (1 - pl))
    zh = pa * zd + pb
    # The lexical logit enters with weight 1 (an offset): it is calibrated on its own
    # data, and our rows over-sample exactly the prompts it gets wrong, so a free weight
    # would learn to distrust it everywhere. Only the head's weight and a bias are fitted.
    hw, cb = fit_offset(zh, zl, yd[dm])
    cw = np.array([1.0, hw])
    comb = sigmoid(zl + hw * zh + cb)
    avg = sigmoid((zl + zh) / 2)
    cv["difficulty"].update({
        "auc_lexical_only": auc(zl, yd[dm]), "auc_combined": auc(comb, yd[dm]), "auc_averaged": auc(avg, yd[dm]),
        "accuracy_lexical_only": float(((pl >= 0.5) == (yd[dm] == 1)).mean()),
        "accuracy_combined": float(((comb >= 0.5) == (yd[dm] == 1)).mean()),
        "brier_combined": float(((comb - yd[dm]) ** 2).mean()),
    })
    difficulty_combine = {"lexical": float(cw[0]), "head": float(cw[1]), "bias": float(cb)}

    # sensitivity: sens rows + diff rows as negatives
    sensitive_any = np.array([r["task"] == "sens" and any(r["labels"].get(c, 0) for c in CATS) for r in rows])
    heads = []
    for c in CATS:
        y = np.array([r["labels"].get(c, 0) if r["task"] == "sens" else 0 for r in rows], dtype=np.float64)
        z = oof_logits(X, y, fold)
        ca, cb = platt(z, y)
        p = sigmoid(ca * z + cb)
        clean = ~sensitive_any
        thr = MIN_THRESHOLD
        for t in np.arange(MIN_THRESHOLD, 0.99, 0.01):
            if (p[clean] >= t).mean() <= FPR_TARGET:
                thr = float(round(t, 2))
                break
        else:
            thr = 0.99
        pos = y == 1
        cv[c] = {"n_pos": int(pos.sum()), "auc": auc(z, y), "threshold": thr,
                 "recall": float((p[pos] >= thr).mean()),
                 "fpr_non_sensitive": float((p[clean] >= thr).mean()),
                 "fpr_other_categories": float((p[sensitive_any & ~pos] >= thr).mean())}
        w, b = fit_lr(X, y)
        heads.append({"category": c, "w": [float(x) for x in ca * w], "bias": float(ca * b + cb), "threshold": thr})
    # any-category figures at the chosen thresholds (what the gateway's decision sees)
    cv["train_seconds"] = round(time.time() - t0, 1)
    cv["embed_seconds"] = round(t_embed, 1)

    man = json.load(open(os.path.join(a.minilm, "manifest.json")))
    out = {
        "version": 1,
        "embedding": {"model": os.path.basename(os.path.normpath(a.minilm)),
                      "model_sha256": man["files"]["model.onnx"]["sha256"],
                      "dim": int(X.shape[1]), "max_tokens": max_len},
        "difficulty": difficulty,
        "difficulty_combine": difficulty_combine,
        "categories": heads,
        "cv": cv,
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f)
    os.replace(tmp, a.out)
    json.dump(cv, sys.stderr, indent=1)
    print(file=sys.stderr)


if __name__ == "__main__":
    main()
