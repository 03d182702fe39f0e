"""GGUF block quantizations -> ONNX Runtime `com.microsoft.MatMulNBits` weights, kept quantized.

Every supported GGUF type is first decoded into integers and per-block affine parameters:

    w = s * q + b          (s, b per sub-block of `bs` elements along K; b may be absent)

then re-packed for MatMulNBits, which computes w = s * (q' - off) with q' unsigned `bits`-bit
integers and off = 2^(bits-1) (its default zero point). Symmetric types (Q4_0, Q5_0, Q8_0,
Q6_K) have b = 0 and map exactly onto MatMulNBits. Asymmetric types (Q4_1, Q5_1, Q4_K, Q5_K)
keep their per-block minimum in a small side matrix MN [N, K/bs] and the graph adds
blocksum(x) @ MN^T (see `QuantWeight.mins`) — exact, instead of rounding the minimum into an
integer zero point. Nothing is re-quantized: the integers are the file's own integers and
the block scales are the file's scales (K-quant super-block scale x 6-bit sub-scale computed
in fp32, as llama.cpp does). What changes is storage: 5- and 6-bit integers are widened to
8 bits, and fp16 super-block scales / 6-bit sub-scales become one fp32 scale per sub-block.

Types not listed in SUPPORTED (Q2_K, Q3_K, the IQ* codebooks, ...) are refused with an error
naming what is supported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QK_K = 256

# name -> (block bytes, block elements)
_BLOCK = {
    "Q4_0": (18, 32),
    "Q4_1": (20, 32),
    "Q5_0": (22, 32),
    "Q5_1": (24, 32),
    "Q8_0": (34, 32),
    "Q4_K": (144, 256),
    "Q5_K": (176, 256),
    "Q6_K": (210, 256),
}
FLOAT_TYPES = ("F32", "F16", "BF16")
# integer levels of the asymmetric types (q in [0, levels))
_LEVELS = {"Q4_1": 16, "Q4_K": 16, "Q5_1": 32, "Q5_K": 32}
SUPPORTED = FLOAT_TYPES + tuple(_BLOCK)


class QuantError(ValueError):
    """An unsupported or malformed quantized tensor."""


@dataclass
class QuantWeight:
    """A [N, K] weight (torch layout: out x in) in MatMulNBits form."""

    n: int
    k: int
    bits: int
    block_size: int
    packed: np.ndarray  # uint8 [N, K/bs, bs*bits/8]
    scales: np.ndarray  # float32 [N, K/bs]
    mins: np.ndarray | None  # float32 [N, K/bs]: w += mins for every element of the block
    source_type: str

    def dequantize(self) -> np.ndarray:
        """Reference dequantization of exactly what the graph computes (tests)."""
        q = unpack(self.packed, self.bits).reshape(self.n, self.k // self.block_size, self.block_size)
        off = 1 << (self.bits - 1)
        w = self.scales[..., None] * (q.astype(np.float32) - off)
        if self.mins is not None:
            w = w + self.mins[..., None]
        return w.reshape(self.n, self.k).astype(np.float32)


def _f16(b: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(b).view(np.float16).astype(np.float32)


def _nibbles_32(qs: np.ndarray) -> np.ndarray:
    """[nb, 16] bytes -> [nb, 32]: element j in the low nibble of byte j, j+16 in the high."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def _decode(type_name: str, blocks: np.ndarray):
    """blocks [nb, block_bytes] -> (q int16 [nb*E/bs, bs], s f32 [nb*E/bs], b f32 | None, bs, signed)."""
    nb = blocks.shape[0]
    if type_name == "Q4_0":
        d = _f16(blocks[:, 0:2])[:, 0]
        q = _nibbles_32(blocks[:, 2:18]).astype(np.int16) - 8
        return q, d, None, 32
    if type_name == "Q4_1":
        d = _f16(blocks[:, 0:2])[:, 0]
        m = _f16(blocks[:, 2:4])[:, 0]
        q = _nibbles_32(blocks[:, 4:20]).astype(np.int16)
        return q, d, m, 32
    if type_name in ("Q5_0", "Q5_1"):
        o = 2 if type_name == "Q5_0" else 4
        d = _f16(blocks[:, 0:2])[:, 0]
        qh = np.ascontiguousarray(blocks[:, o : o + 4]).view(np.uint32)[:, 0]
        hi = ((qh[:, None] >> np.arange(32, dtype=np.uint32)[None, :]) & 1).astype(np.int16)
        q = _nibbles_32(blocks[:, o + 4 : o + 20]).astype(np.int16) | (hi << 4)
        if type_name == "Q5_0":
            return q - 16, d, None, 32
        return q, d, _f16(blocks[:, 2:4])[:, 0], 32
    if type_name == "Q8_0":
        d = _f16(blocks[:, 0:2])[:, 0]
        q = np.ascontiguousarray(blocks[:, 2:34]).view(np.int8).astype(np.int16)
        return q, d, None, 32
    if type_name in ("Q4_K", "Q5_K"):
        d = _f16(blocks[:, 0:2])  # [nb,1]
        dmin = _f16(blocks[:, 2:4])
        sc, mn = _k_scale_min(blocks[:, 4:16])
        s = (d * sc.astype(np.float32)).reshape(-1)  # fp32 product, as llama.cpp computes it
        b = -(dmin * mn.astype(np.float32)).reshape(-1)
        if type_name == "Q4_K":
            qs = blocks[:, 16:144].reshape(nb, 4, 32)  # 4 x 32 bytes -> sub-blocks 2i (low), 2i+1 (high)
            q = np.stack([qs & 0x0F, qs >> 4], axis=2).reshape(nb * 8, 32).astype(np.int16)
        else:
            qh = blocks[:, 16:48]  # [nb, 32]: bit j of byte l is the high bit of sub-block j, element l
            qs = blocks[:, 48:176].reshape(nb, 4, 32)
            ql = np.stack([qs & 0x0F, qs >> 4], axis=2).reshape(nb, 8, 32).astype(np.int16)
            hi = ((qh[:, None, :] >> np.arange(8, dtype=np.uint8)[None, :, None]) & 1).astype(np.int16)
            q = (ql | (hi << 4)).reshape(nb * 8, 32)
        return q, s, b, 32
    if type_name == "Q6_K":
        ql = blocks[:, 0:128].reshape(nb, 2, 64)
        qh = blocks[:, 128:192].reshape(nb, 2, 32)
        scales = np.ascontiguousarray(blocks[:, 192:208]).view(np.int8).astype(np.float32)  # [nb,16]
        d = _f16(blocks[:, 208:210])  # [nb,1]
        # per 128-element half: 4 groups of 32 from (ql low/high nibbles of 64 bytes) | qh 2-bit fields
        lo = np.stack([ql[:, :, 0:32] & 0x0F, ql[:, :, 32:64] & 0x0F, ql[:, :, 0:32] >> 4, ql[:, :, 32:64] >> 4], axis=2)
        hi = np.stack([(qh >> 0) & 3, (qh >> 2) & 3, (qh >> 4) & 3, (qh >> 6) & 3], axis=2)
        q = (lo.astype(np.int16) | (hi.astype(np.int16) << 4)) - 32  # [nb,2,4,32]
        q = q.reshape(nb * 16, 16)
        s = (d * scales).reshape(-1)
        return q, s, None, 16
    raise QuantError(f"unsupported tensor type {type_name}")


def _k_scale_min(scales: np.ndarray):
    """The 12-byte packed 6-bit scales/mins of Q4_K/Q5_K -> ([nb,8], [nb,8]) (gguf.quants)."""
    nb = scales.shape[0]
    s = scales.reshape(nb, 3, 4)
    d, m, m_d = s[:, 0, :], s[:, 1, :], s[:, 2, :]
    sc = np.concatenate([d & 0x3F, (m_d & 0x0F) | ((d >> 2) & 0x30)], axis=-1)
    mn = np.concatenate([m & 0x3F, (m_d >> 4) | ((m >> 2) & 0x30)], axis=-1)
    return sc, mn


def pack(q: np.ndarray, bits: int) -> np.ndarray:
    """Unsigned integers [..., bs] -> MatMulNBits bytes: 4-bit puts element 2i low, 2i+1 high."""
    q = q.astype(np.uint8)
    if bits == 8:
        return q
    return (q[..., 0::2] & 0x0F) | (q[..., 1::2] << 4)


def unpack(p: np.ndarray, bits: int) -> np.ndarray:
    if bits == 8:
        return p
    return np.stack([p & 0x0F, p >> 4], axis=-1).reshape(*p.shape[:-1], p.shape[-1] * 2)


def to_matmul_nbits(type_name: str, raw: np.ndarray, n: int, k: int) -> QuantWeight:
    """A GGUF tensor's raw bytes ([N, K-bytes] as gguf's reader gives them) -> QuantWeight."""
    if type_name not in _BLOCK:
        raise QuantError(f"tensor type {type_name} cannot be kept quantized; supported: {', '.join(SUPPORTED)}")
    bb, be = _BLOCK[type_name]
    raw = np.ascontiguousarray(raw).reshape(-1)
    if k % be != 0:
        raise QuantError(f"{type_name}: row length {k} is not a multiple of its block ({be})")
    want = n * (k // be) * bb
    if raw.size != want:
        raise QuantError(f"{type_name}: {raw.size} bytes for a [{n}, {k}] tensor, expected {want} (truncated file?)")
    q, s, b, bs = _decode(type_name, raw.reshape(-1, bb))
    lo, hi = int(q.min(initial=0)), int(q.max(initial=0))
    signed = b is None
    if signed:
        bits = 4 if (lo >= -8 and hi <= 7) else 8
        off = 1 << (bits - 1)
        qu = q + off  # w = s*q = s*(qu - off)
        mins = None
    else:
        levels = _LEVELS[type_name]
        bits = 4 if levels <= 16 else 8
        off = 1 << (bits - 1)
        # Centre the raw integers on the zero point: w = s*q + b = s*(qu - off) + (b + s*c)
        # with qu = q + off - c, c = levels/2. Keeps the MatMulNBits term small, so the int8
        # activation rounding is not amplified by a large constant the min term cancels.
        c = levels // 2
        qu = q + (off - c)
        mins = (b + s * c).astype(np.float32).reshape(n, k // bs)
    if qu.min(initial=0) < 0 or qu.max(initial=0) >= (1 << bits):
        raise QuantError(f"{type_name}: integers out of range for {bits}-bit packing")
    nblk = k // bs
    packed = pack(qu.reshape(n, nblk, bs), bits)
    return QuantWeight(
        n=n,
        k=k,
        bits=bits,
        block_size=bs,
        packed=np.ascontiguousarray(packed),
        scales=np.ascontiguousarray(s.astype(np.float32).reshape(n, nblk)),
        mins=mins,
        source_type=type_name,
    )
