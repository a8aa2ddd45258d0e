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

#: ops that move elements as they are (an i32 value stays integers through them)
_MOVES = ("flatten", "reshape", "slice", "transpose", "concat")
_ARITHMETIC = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}


def _erf(x: np.ndarray) -> np.ndarray:
    import math

    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _lift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a`` (batch first) with size-1 axes after the batch so that its matrices' leading dims align with b's."""
    extra = b.ndim - a.ndim
    return a.reshape(a.shape[0], *([1] * extra), *a.shape[1:]) if extra > 0 else a


def adaptive_avg_pool2d(x: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """torch's adaptive average pool of [N, C, H, W] to [N, C, oh, ow] (FORMAT.md 2.7)."""
    n, c, h, w = x.shape
    oh, ow = int(size[0]), int(size[1])
    out = np.empty((n, c, oh, ow), np.float64)
    for i in range(oh):
        y0, y1 = (i * h) // oh, -(-((i + 1) * h) // oh)
        for j in range(ow):
            x0, x1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            out[:, :, i, j] = x[:, :, y0:y1, x0:x1].mean(axis=(2, 3))
    return out


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


def forward(nodes: Sequence[dict[str, Any]], weights: Sequence[Weights | Any], x: Any,
            *, all_values: bool = False) -> Any:
    """Runs the graph on ``x`` (batch first; a tuple of one array per input for a graph of several) in float64;
    returns the last node's output (float64), or with ``all_values`` every value (the inputs first). An
    embedding reads ids as integers; a constant operand of add, sub, mul or div is ``weights[i] = (b, None)``,
    layer_norm's ``(weight, bias)`` (either may be None). An int8 layer (``weights[i]`` an
    :class:`~pyruntime.convert.quantize.Int8Layer`) computes as FORMAT.md 2.5 defines, in float32, and so do
    sign and a binary layer (blinear or bconv2d, a :class:`~pyruntime.convert.binarize.BinaryLayer`) as 2.6
    defines."""
    from .binarize import BinaryLayer, bconv2d_forward, blinear_forward, sign_values
    from .quantize import Int8Layer, int8_conv2d, int8_linear

    xs = x if isinstance(x, tuple) else (x,)
    values = [np.asarray(a) if np.issubdtype(np.asarray(a).dtype, np.integer) else np.asarray(a, dtype=np.float64)
              for a in xs]
    for node, wb in zip(nodes, weights, strict=True):
        ins = [values[i] for i in node["inputs"]]
        if node["op"] != "embedding" and node["op"] not in _MOVES:
            ins = [np.asarray(a, dtype=np.float64) for a in ins]
        v = ins[0]
        op = node["op"]
        a = node.get("attrs") or {}
        n = v.shape[0]
        if op == "embedding":
            table = (wb.q.astype(np.float64) * wb.scales[:, None] if isinstance(wb, Int8Layer)
                     else np.asarray(wb[0], np.float64))  # type: ignore[index]
            y = table[np.asarray(v, np.int64)]
        elif isinstance(wb, Int8Layer) and op in ("conv2d", "qconv2d"):
            y = int8_conv2d(v, wb, a).astype(np.float64)
        elif isinstance(wb, Int8Layer):  # each row of the last axis is a sample of the layer
            rows = v.reshape(-1, v.shape[-1]) if v.ndim > 2 else v
            y = int8_linear(rows, wb.q, wb.scales, wb.bias, wb.params).astype(np.float64)
            y = y.reshape(*v.shape[:-1], -1)
        elif isinstance(wb, BinaryLayer) and op == "bconv2d":
            y = bconv2d_forward(v, wb, a).astype(np.float64)
        elif isinstance(wb, BinaryLayer):
            y = blinear_forward(v, wb).astype(np.float64)
        elif op == "sign":
            y = sign_values(v, a["scale"], a["shift"]).astype(np.float64)
        elif op == "linear":  # over the last axis
            w, b = wb  # type: ignore[misc]
            y = v @ w.astype(np.float64).T + (0 if b is None else b.astype(np.float64))
        elif op in _ARITHMETIC:
            other = ins[1] if len(ins) > 1 else np.asarray(wb[0], np.float64)  # type: ignore[index]
            if len(ins) > 1 and other.ndim < v.ndim:  # both have a batch axis: align the per-sample dims
                other = other.reshape(other.shape[0], *([1] * (v.ndim - other.ndim)), *other.shape[1:])
            elif len(ins) > 1 and v.ndim < other.ndim:
                v = v.reshape(v.shape[0], *([1] * (other.ndim - v.ndim)), *v.shape[1:])
            y = _ARITHMETIC[op](v, other)
        elif op == "layer_norm":
            w, b = wb if wb is not None else (None, None)  # type: ignore[misc]
            mean = v.mean(axis=-1, keepdims=True)
            y = (v - mean) / np.sqrt(((v - mean) ** 2).mean(axis=-1, keepdims=True) + a["eps"])
            y = y * (1 if w is None else np.asarray(w, np.float64)) + (0 if b is None else np.asarray(b, np.float64))
        elif op == "gelu":
            y = (0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v**3))) if a["approximate"]
                 else 0.5 * v * (1 + _erf(v / np.sqrt(2))))
        elif op == "silu":
            y = v / (1 + np.exp(-v))
        elif op == "sigmoid":
            y = 1 / (1 + np.exp(-v))
        elif op == "tanh":
            y = np.tanh(v)
        elif op == "leaky_relu":
            y = np.where(v >= 0, v, a["slope"] * v)
        elif op == "softmax_axis":
            ax = int(a["axis"]) + 1
            e = np.exp(v - v.max(axis=ax, keepdims=True))
            y = e / e.sum(axis=ax, keepdims=True)
        elif op == "matmul":
            y = np.matmul(_lift(ins[0], ins[1]), _lift(ins[1], ins[0]))
        elif op == "transpose":
            y = np.transpose(v, [0] + [int(p) + 1 for p in a["perm"][:v.ndim - 1]])
        elif op == "slice":
            idx = [slice(None)] * v.ndim
            idx[int(a["axis"]) + 1] = slice(int(a["start"]), int(a["end"]), int(a["step"]))
            y = v[tuple(idx)]
        elif op == "upsample_nearest":
            y = v.repeat(int(a["scale"][0]), axis=2).repeat(int(a["scale"][1]), axis=3)
        elif op == "adaptive_avg_pool2d":
            y = adaptive_avg_pool2d(v, a["output_size"])
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
        elif op == "concat":
            y = np.concatenate(ins, axis=int(a["axis"]) + 1)
        else:
            raise ValueError(f"reference forward: unknown op '{op}'")
        values.append(y)
    return values if all_values else values[-1]
