"""A float64 numpy forward pass over a model dict's nodes: the test oracle of the runtime.

``forward(nodes, weights, x)`` runs the nodes of ``CompressedModel.to_dict()`` (op, inputs, attrs)
with ``weights[i] = (W, b)`` for node ``i`` (dense arrays, None for ops without weights) on a batch
``x`` (batch first). Every op follows the file's definition (``pyruntime.convert.graph``), which is
torch's: conv2d by im2col, pools with torch's ceil_mode and divisor rules, padding never winning a
max. Plain and slow by design; accumulation is float64.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Weights = tuple[np.ndarray, np.ndarray | None] | None


def _pad(x: np.ndarray, pad: Sequence[int], extra_h: int = 0, extra_w: int = 0, value: float = 0.0) -> np.ndarray:
    t, left, b, r = (int(p) for p in pad)
    return np.pad(x, ((0, 0), (0, 0), (t, b + extra_h), (left, r + extra_w)), constant_values=value)


def _windows(xp: np.ndarray, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, oh: int, ow: int):
    """Yields (ky, kx, x[:, :, ky*dh + oy*sh, kx*dw + ox*sw]) for every kernel tap, over all outputs."""
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dh, kx * dw
            yield ky, kx, xp[:, :, y0:y0 + sh * (oh - 1) + 1:sh, x0:x0 + sw * (ow - 1) + 1:sw]


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: Sequence[int], padding: Sequence[int],
           dilation: Sequence[int], groups: int) -> np.ndarray:
    """NCHW conv (torch's cross-correlation) by im2col: x [N, C, H, W], w [O, C/groups, kh, kw]."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    sh, sw = stride
    dh, dw = dilation
    t, left, bt, r = padding
    oh = (h + t + bt - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + left + r - dw * (kw - 1) - 1) // sw + 1
    xp = _pad(x, padding)
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=np.float64)
    for ky, kx, win in _windows(xp, kh, kw, sh, sw, dh, dw, oh, ow):
        cols[:, :, ky, kx] = win
    og = o // groups
    out = np.empty((n, o, oh * ow), dtype=np.float64)
    for g in range(groups):
        patch = cols[:, g * cg:(g + 1) * cg].reshape(n, cg * kh * kw, oh * ow)
        wg = w[g * og:(g + 1) * og].reshape(og, cg * kh * kw).astype(np.float64)
        out[:, g * og:(g + 1) * og] = np.einsum("ok,nkp->nop", wg, patch, optimize=True)
    out = out.reshape(n, o, oh, ow)
    if b is not None:
        out += np.asarray(b, dtype=np.float64)[None, :, None, None]
    return out


def _pool_geometry(h: int, w: int, attrs: dict[str, Any]) -> tuple[int, int]:
    from .graph import pool_out

    kh, kw = attrs["kernel"]
    sh, sw = attrs["stride"]
    t, left, b, r = attrs["padding"]
    ceil = bool(attrs["ceil_mode"])
    return pool_out(h, t, b, kh, sh, ceil), pool_out(w, left, r, kw, sw, ceil)


def max_pool2d(x: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    n, c, h, w = x.shape
    kh, kw = attrs["kernel"]
    sh, sw = attrs["stride"]
    oh, ow = _pool_geometry(h, w, attrs)
    t, left, b, r = attrs["padding"]
    # ceil_mode windows may reach past the bottom/right padding: pad (with -inf) as far as they reach
    extra_h = max(0, (oh - 1) * sh + kh - (h + t + b))
    extra_w = max(0, (ow - 1) * sw + kw - (w + left + r))
    xp = _pad(x, attrs["padding"], extra_h, extra_w, -np.inf)
    out = np.full((n, c, oh, ow), -np.inf)
    for _, _, win in _windows(xp, kh, kw, sh, sw, 1, 1, oh, ow):
        np.maximum(out, win, out=out)
    return out


def avg_pool2d(x: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    n, c, h, w = x.shape
    kh, kw = attrs["kernel"]
    sh, sw = attrs["stride"]
    oh, ow = _pool_geometry(h, w, attrs)
    t, left, b, r = attrs["padding"]
    extra_h = max(0, (oh - 1) * sh + kh - (h + t + b))
    extra_w = max(0, (ow - 1) * sw + kw - (w + left + r))
    xp = _pad(x, attrs["padding"], extra_h, extra_w, 0.0)
    total = np.zeros((n, c, oh, ow))
    for _, _, win in _windows(xp, kh, kw, sh, sw, 1, 1, oh, ow):
        total += win
    y0 = np.arange(oh) * sh - t  # window starts in input coordinates
    x0 = np.arange(ow) * sw - left
    if attrs["count_include_pad"]:
        lo_h, hi_h, lo_w, hi_w = -t, h + b, -left, w + r
    else:
        lo_h, hi_h, lo_w, hi_w = 0, h, 0, w
    ch = np.minimum(y0 + kh, hi_h) - np.maximum(y0, lo_h)
    cw = np.minimum(x0 + kw, hi_w) - np.maximum(x0, lo_w)
    return total / (ch[:, None] * cw[None, :]).astype(np.float64)


def forward(nodes: Sequence[dict[str, Any]], weights: Sequence[Weights | Any], x: np.ndarray,
            *, all_values: bool = False) -> Any:
    """Runs the graph on ``x`` (batch first) in float64; returns the last node's output (float64), or with
    ``all_values`` every value (the input first). An int8 layer (``weights[i]`` an
    :class:`~pyruntime.convert.quantize.Int8Layer`) computes as FORMAT.md 2.5 defines, in float32, and so do
    sign and a binary layer (blinear or bconv2d, a :class:`~pyruntime.convert.binarize.BinaryLayer`) as 2.6
    defines."""
    from .binarize import BinaryLayer, bconv2d_forward, blinear_forward, sign_values
    from .quantize import Int8Layer, int8_conv2d, int8_linear

    values = [np.asarray(x, dtype=np.float64)]
    for node, wb in zip(nodes, weights, strict=True):
        ins = [values[i] for i in node["inputs"]]
        v = ins[0]
        op = node["op"]
        a = node.get("attrs") or {}
        n = v.shape[0]
        if isinstance(wb, Int8Layer) and op in ("conv2d", "qconv2d"):
            y = int8_conv2d(v, wb, a).astype(np.float64)
        elif isinstance(wb, Int8Layer):
            y = int8_linear(v, wb.q, wb.scales, wb.bias, wb.params).astype(np.float64)
        elif isinstance(wb, BinaryLayer) and op == "bconv2d":
            y = bconv2d_forward(v, wb, a).astype(np.float64)
        elif isinstance(wb, BinaryLayer):
            y = blinear_forward(v, wb).astype(np.float64)
        elif op == "sign":
            y = sign_values(v, a["scale"], a["shift"]).astype(np.float64)
        elif op == "linear":
            w, b = wb  # type: ignore[misc]
            y = v @ w.astype(np.float64).T + (0 if b is None else b.astype(np.float64))
        elif op == "conv2d":
            w, b = wb  # type: ignore[misc]
            y = conv2d(v, w, b, a["stride"], a["padding"], a["dilation"], a["groups"])
        elif op == "relu":
            y = np.maximum(v, 0)
        elif op == "clamp":
            y = np.minimum(np.maximum(v, a["min"]), a["max"])
        elif op == "softmax":  # over all of a sample's elements, whatever its rank (FORMAT.md 2.1)
            flat = v.reshape(n, -1)
            e = np.exp(flat - flat.max(axis=1, keepdims=True))
            y = (e / e.sum(axis=1, keepdims=True)).reshape(v.shape)
        elif op == "flatten":
            y = v.reshape(n, -1)
        elif op == "reshape":
            y = v.reshape(n, *a["shape"])
        elif op == "max_pool2d":
            y = max_pool2d(v, a)
        elif op == "avg_pool2d":
            y = avg_pool2d(v, a)
        elif op == "global_avg_pool":
            y = v.mean(axis=(2, 3), keepdims=True)
        elif op == "add":
            y = ins[0] + ins[1]
        elif op == "concat":
            y = np.concatenate(ins, axis=int(a["axis"]) + 1)
        else:
            raise ValueError(f"reference forward: unknown op '{op}'")
        values.append(y)
    return values if all_values else values[-1]
