#!/usr/bin/env python3
"""Rewrites Rampart's int4 ONNX graph into fp32 and int8 forms of the *same* weights.

Used only to compare weight formats (docs/classification.md, "Learned PII detector"); the
gateway runs the shipped int4 file. fp32: every com.microsoft MatMulNBits (4-bit, block 32,
symmetric, no zero points -> implicit 8) is dequantized into a plain MatMul initializer.
int8: onnxruntime.quantization.quantize_dynamic over the fp32 graph (per-channel int8
MatMulInteger), so the three files differ only in how the weights are stored.

Usage: rampart_variants.py --src model_q4.onnx --out-dir DIR
"""
import argparse
import os

import numpy as np
import onnx
from onnx import helper, numpy_helper


def dequant_nbits(q: np.ndarray, scales: np.ndarray, k: int, n: int, block: int) -> np.ndarray:
    # q: [N, blocks, block/2] uint8, low nibble = even element.
    lo = (q & 0x0F).astype(np.int8)
    hi = (q >> 4).astype(np.int8)
    vals = np.stack([lo, hi], axis=-1).reshape(n, -1, block).astype(np.float32) - 8.0
    w = vals * scales.reshape(n, -1, 1).astype(np.float32)
    return w.reshape(n, -1)[:, :k].T.copy()  # [K, N] for MatMul(x, W)


def to_fp32(src: str, dst: str) -> None:
    m = onnx.load(src)
    inits = {i.name: i for i in m.graph.initializer}
    new_nodes = []
    drop = set()
    for node in m.graph.node:
        if node.op_type != "MatMulNBits":
            new_nodes.append(node)
            continue
        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        if a.get("bits", 4) != 4 or len(node.input) > 3 and node.input[3]:
            raise SystemExit(f"unsupported MatMulNBits form in {node.name}")
        q = numpy_helper.to_array(inits[node.input[1]])
        s = numpy_helper.to_array(inits[node.input[2]])
        w = dequant_nbits(q, s, a["K"], a["N"], a["block_size"])
        wname = node.input[1] + "_fp32"
        m.graph.initializer.append(numpy_helper.from_array(w, wname))
        drop.update(node.input[1:3])
        mm_out = node.output[0]
        if len(node.input) > 5 and node.input[5]:  # bias
            mm_out = node.output[0] + "_nobias"
            new_nodes.append(helper.make_node("MatMul", [node.input[0], wname], [mm_out]))
            new_nodes.append(helper.make_node("Add", [mm_out, node.input[5]], [node.output[0]]))
        else:
            new_nodes.append(helper.make_node("MatMul", [node.input[0], wname], [node.output[0]], name=node.name))
    del m.graph.node[:]
    m.graph.node.extend(new_nodes)
    keep = [i for i in m.graph.initializer if i.name not in drop]
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    onnx.checker.check_model(m)
    onnx.save(m, dst)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    fp32 = os.path.join(args.out_dir, "model_fp32.onnx")
    to_fp32(args.src, fp32)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(fp32, os.path.join(args.out_dir, "model_int8.onnx"),
                     weight_type=QuantType.QInt8, per_channel=True)
    print("wrote", fp32, "and model_int8.onnx")


if __name__ == "__main__":
    main()
