"""Version 4 of docs/FORMAT.md for spec_reader.py: the binary encoding (3.8) and the ``sign``, ``blinear``
and ``bconv2d`` ops (2.1, 2.2, 2.6), written from that page alone like the rest of the reader (numpy only).

spec_reader calls read_bits() for an encoding-6 tensor body, node_shape() for the three ops' attributes and
shapes, and run_node() to emulate them; the arithmetic is the exact one of 2.6 (integer sums, one f32
rounding where 2.6 says fma, f32 operations for sign's affine). bconv2d's geometry is spec_reader's conv2d
one (2.3: _check_conv, conv_out, and the im2col of conv2d(), run on int64 signs for the exact sums).
"""

from __future__ import annotations

import math

import numpy as np
import spec_reader as sr

OPS = ("sign", "blinear", "bconv2d")
MAX_BINARY_COLS = 1 << 24  # 2.6, 3.8: at most 2^24 columns


# ---- 3.8 binary (6) ------------------------------------------------------------------------------------


def read_bits(cur, rows: int, cols: int) -> np.ndarray:
    """3.8 after the alphas: zero padding to 8 (from the payload start), then rows * ceil(cols / 64) u64
    words, LSB first, 1 = +1; pad bits past column cols - 1 must be 0. Returns uint8[rows * cols] of 0/1."""
    if cols > MAX_BINARY_COLS:
        raise cur.fail(f"binary weight has {cols} columns > 2^24")
    cur.pad(8, "alphas")
    words = -(-cols // 64)
    raw = cur.take(8 * rows * words, "words")
    # u64 little-endian: byte b of a word holds bits 8b..8b+7, so the byte stream's LSB-first bits are the
    # words' bits in column order
    bits = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little").reshape(rows, 64 * words)
    pad = np.argwhere(bits[:, cols:])
    if pad.size:
        r, c = (int(v) for v in pad[0])
        raise cur.fail(f"row {r}: pad bit {cols + c} (past column {cols - 1}) is 1")
    return np.ascontiguousarray(bits[:, :cols]).ravel()


def signs(t: sr.Tensor) -> np.ndarray:
    """The binary weight's s[r][c] in {-1, +1} as an int64 (rows, cols) matrix."""
    return np.where(t.bits.reshape(t.rows, t.cols) == 1, 1, -1).astype(np.int64)


def dense_matrix(t: sr.Tensor) -> np.ndarray:
    """3.8: W[r][c] = alphas[r] * (bit ? +1 : -1), float32."""
    return (signs(t).astype(np.float32) * t.scales[:, None]).astype(np.float32)


# ---- 2.1, 2.2: attributes and shapes --------------------------------------------------------------------


def node_shape(where: str, op: str, a: dict, x: list[int], ts: list[sr.Tensor]) -> list[int]:
    if op == "sign":
        if not (math.isfinite(a["scale"]) and math.isfinite(a["shift"])):
            raise sr.SpecError(f"{where}: scale {a['scale']}, shift {a['shift']} (both finite)")
        return list(x)
    if op == "bconv2d":
        return _bconv2d_shape(where, a, x, ts)
    return _blinear_shape(where, a, x, ts)


def _blinear_shape(where: str, a: dict, x: list[int], ts: list[sr.Tensor]) -> list[int]:
    _check_input_output(where, a)
    w = _binary_weight(where, "blinear", ts)
    # ASSUMPTION (gap): "weight [out, in]" means rank exactly 2 and the input rank exactly 1 (as linear's).
    if len(x) != 1 or len(w.shape) != 2 or w.shape[1] != x[0]:
        raise sr.SpecError(f"{where}: weight '{w.name}' {w.shape} does not take input of shape {x}")
    rows, k = w.shape
    _check_second(where, a, ts, rows, k, steps=1)
    return [rows]


def _bconv2d_shape(where: str, a: dict, x: list[int], ts: list[sr.Tensor]) -> list[int]:
    """2.2: conv2d's 9 words as conv2d's with groups 1 (2.3's geometry and limits), then blinear's input and
    output with K = C * kh * kw and each threshold a multiple of 1/2 in 0..K + 1."""
    if a["groups"] != 1:
        raise sr.SpecError(f"{where}: groups {a['groups']}, bconv2d takes groups 1")
    _check_input_output(where, a)
    w = _binary_weight(where, "bconv2d", ts)
    # the second tensor's dense [O] is checked below (bias or thresholds), so not as conv2d's bias here
    shape = sr._check_conv(where, x, a, w, None)
    o, c, kh, kw = w.shape
    _check_second(where, a, ts, o, c * kh * kw, steps=2)
    return shape


def _check_input_output(where: str, a: dict) -> None:
    inp, out = a["input"], a["output"]
    if inp not in (0, 1) or out not in (0, 1):
        raise sr.SpecError(f"{where}: input {inp}, output {out} (each 0 or 1)")


def _binary_weight(where: str, op: str, ts: list[sr.Tensor]) -> sr.Tensor:
    w = ts[0]
    if w.encoding != "binary":
        raise sr.SpecError(f"{where}: weight '{w.name}' is {w.encoding}, {op} takes binary")
    return w


def _check_second(where: str, a: dict, ts: list[sr.Tensor], rows: int, k: int, steps: int) -> None:
    """2.1, 2.2: the optional second tensor is dense [rows]; output 1 needs input 0 and it (the thresholds,
    each a multiple of 1 / steps in 0..K + 1)."""
    second = ts[1] if len(ts) == 2 else None
    if second is not None and (second.encoding != "dense" or second.shape != [rows]):
        what = f"tensor '{second.name}' ({second.encoding} {second.shape})"
        raise sr.SpecError(f"{where}: {what} is not dense [{rows}]")
    if a["output"] == 1:
        if a["input"] != 0:
            raise sr.SpecError(f"{where}: output 1 (thresholds) needs input 0")
        if second is None:
            raise sr.SpecError(f"{where}: output 1 needs the thresholds (a second tensor)")
        _check_thresholds(where, second, k, steps)


def _check_thresholds(where: str, t: sr.Tensor, k: int, steps: int = 1) -> None:
    """2.2: each value a multiple of 1 / steps (blinear: integers, bconv2d: halves) in 0..K + 1.
    ASSUMPTION (gap): -0.0 is the integer 0 (accepted)."""
    v = t.values.astype(np.float64) * steps  # exact: a float32 times 1 or 2 in float64
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(v) & (v == np.floor(v)) & (v >= 0) & (v <= steps * (k + 1))
    bad = np.flatnonzero(~ok)
    if bad.size:
        r = int(bad[0])
        what = "an integer" if steps == 1 else f"a multiple of 1/{steps}"
        raise sr.SpecError(f"{where}: threshold of row {r} is {float(t.values[r])}, not {what} in 0..{k + 1}")


# ---- 2.6: what they compute ------------------------------------------------------------------------------


def run_node(node: sr.Node, ts: list[sr.Tensor], v: np.ndarray) -> np.ndarray:
    """One sign, blinear or bconv2d node on a batch (float64 in and out, the values of 2.6 exactly)."""
    if node.op == "sign":
        return sign(v, node.attrs["scale"], node.attrs["shift"])
    if node.op == "bconv2d":
        return bconv2d(node.attrs, ts, v)
    a, w = node.attrs, ts[0]
    x = np.asarray(v).reshape(v.shape[0], -1)
    second = ts[1].values.astype(np.float32) if len(ts) == 2 else None
    if a["input"] == 1:
        return real_activations(x, w, second)
    dot = binary_dot(x, w)
    if a["output"] == 1:
        p = (dot + w.cols) // 2  # the XNOR popcount, 0..K (dot + K is even)
        return np.where(p >= second.astype(np.int64)[None, :], 1.0, -1.0)
    bias = second if second is not None else np.zeros(w.rows, np.float32)
    return sr.fma32(dot.astype(np.float32), w.scales[None, :], bias[None, :]).astype(np.float64)


def sign(v: np.ndarray, scale: float, shift: float) -> np.ndarray:
    """2.6 sign: v = (x * scale) + shift, each operation an f32 one; +1 where v >= 0, else -1 (NaN: -1)."""
    x = np.asarray(v).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        t = (x * np.float32(scale)) + np.float32(shift)
        return np.where(t >= 0, 1.0, -1.0)


def binary_dot(x: np.ndarray, w: sr.Tensor) -> np.ndarray:
    """2.6 input 0: b = (x >= 0) ? +1 : -1 (NaN: -1), dot[r] = sum_c s[r][c] * b[c], exact (int64)."""
    with np.errstate(invalid="ignore"):
        b = np.where(x >= 0, 1, -1).astype(np.int64)
    return b @ signs(w).T


def real_activations(x: np.ndarray, w: sr.Tensor, bias: np.ndarray | None) -> np.ndarray:
    """2.6 input 1: y[r] = alphas[r] * sum_c s[r][c] * x[c] + bias[r] (float64: the order is unspecified)."""
    y = (x.astype(np.float64) @ signs(w).T.astype(np.float64)) * w.scales.astype(np.float64)[None, :]
    return y if bias is None else y + bias.astype(np.float64)[None, :]


def bconv2d(a: dict, ts: list[sr.Tensor], v: np.ndarray) -> np.ndarray:
    """2.6 bconv2d on a batch [N, C, H, W]. Input 0: the signs b of x (NaN: -1, -0: +1), padded with 0 (a tap
    in the padding contributes 0), dot = sum over the window of s * b exactly (int64, 2.3's im2col); output 0
    fma(float(dot), alphas[o], bias[o]) with one rounding, output 1 +1 where dot + K >= 2 T[o]. Input 1:
    conv2d (2.3) with the weight alphas[o] * s, plus the bias (float64: the order is unspecified)."""
    w = ts[0]
    second = ts[1].values.astype(np.float32) if len(ts) == 2 else None
    if a["input"] == 1:
        bias = None if second is None else second.astype(np.float64)
        return sr.conv2d(np.asarray(v, np.float64), dense_matrix(w).astype(np.float64).reshape(w.shape), bias, a)
    with np.errstate(invalid="ignore"):
        b = np.where(np.asarray(v) >= 0, 1, -1).astype(np.int64)
    dot = sr.conv2d(b, signs(w).reshape(w.shape), None, a)  # int64 in, int64 out: exact
    assert dot.dtype == np.int64
    if a["output"] == 1:
        k = w.cols  # C * kh * kw
        twice_t = (second.astype(np.float64) * 2).astype(np.int64)  # T a multiple of 1/2 (2.2): exact
        return np.where(dot + k >= twice_t[None, :, None, None], 1.0, -1.0)
    bias = second if second is not None else np.zeros(w.rows, np.float32)
    y = sr.fma32(dot.astype(np.float32), w.scales[None, :, None, None], bias[None, :, None, None])
    return y.astype(np.float64)
