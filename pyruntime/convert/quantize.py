"""int8 quantization, a compression step beside pruning and weight sharing (docs/FORMAT.md 2.5).

Weights: symmetric, one scale per output channel, ``scale[r] = max |W[r]| / 127`` and ``q = round(W / scale)``
(a channel of zeros gets scale 0). Activations, per layer, in one of two modes:

- ``"dynamic"`` (or ``"int8"``): the runtime quantizes each sample's input with its own scale
  (``max |x| / 127``) and the layer gives float32, as PyTorch's ``quantize_dynamic`` and ONNX Runtime's
  ``MatMulInteger``; no calibration data is needed.
- ``"static"``: the input scale is calibrated here (``max |x| / 127`` over the calibration inputs that reach
  the layer) and stored in the file (a ``qlinear`` node). When the layer's output only feeds (through
  relus) another static layer, it is given in int8 with that layer's input scale, its relu fused as a clamp,
  so the two run int8 to int8 without a float round trip.

The arithmetic of an int8 layer is :func:`int8_linear`, which follows FORMAT.md 2.5 operation by
operation in float32 (the runtime gives the same bits). Only linear layers have an int8 form so far.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MODES = ("int8", "dynamic", "static")
#: Quantization given for every layer at once ("int8", "dynamic", "static") or per layer name.
PerLayerMode = None | str | Mapping[str, str | None]


def check_mode(value: object, layer: str | None = None) -> str | None:
    """None, or "dynamic" / "static" ("int8" means "dynamic"); anything else is refused by name."""
    if value is None:
        return None
    where = "quantize" if layer is None else f"quantize for layer '{layer}'"
    if not isinstance(value, str) or value not in MODES:
        raise ValueError(f"{where} must be one of {', '.join(map(repr, MODES))} or None, got {value!r}")
    return "dynamic" if value == "int8" else value


def mode_of(quantize: PerLayerMode, name: str) -> str | None:
    """The mode of layer ``name`` under a global (str) or per-layer (mapping) ``quantize``."""
    if isinstance(quantize, Mapping):
        return check_mode(quantize.get(name), name)
    return check_mode(quantize)


def check_calibration(calibration: Any, input_shape: Sequence[int]) -> np.ndarray:
    """Calibration inputs as float32 (N, *input_shape): refused, naming the problem, when the shape or dtype
    is wrong or a value is NaN or infinite."""
    if isinstance(calibration, (str, bytes)) or not hasattr(calibration, "__len__"):
        raise TypeError(f"calibration must be an array of inputs, got {type(calibration).__name__}")
    x = np.asarray(calibration)
    if x.dtype.kind not in "fiu" or x.dtype == np.bool_:
        raise ValueError(f"calibration must hold numbers, got dtype {x.dtype}")
    want = tuple(int(s) for s in input_shape)
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want or x.shape[0] < 1:
        raise ValueError(f"calibration has shape {x.shape}, expected (N >= 1, {', '.join(map(str, want))})")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"calibration holds a NaN or infinite value (at index {tuple(int(i) for i in bad)})")
    return x


def quantize_weight(w: np.ndarray, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-row symmetric int8 of a 2-D weight: ``(q int8 [rows, cols], scales float32 [rows])``; entries not in
    ``keep`` (pruned) are 0."""
    w = np.asarray(w, np.float32)
    if keep is not None:
        w = np.where(keep, w, np.float32(0))
    amax = np.abs(w).max(axis=1) if w.shape[1] else np.zeros(w.shape[0], np.float32)
    scales = (amax / np.float32(127)).astype(np.float32)
    safe = np.where(scales > 0, scales, np.float32(1)).astype(np.float64)
    q = np.clip(np.rint(w.astype(np.float64) / safe[:, None]), -127, 127).astype(np.int8)
    q[scales == 0] = 0
    return q, scales


def activation_scale(values: np.ndarray) -> float:
    """A static input scale from calibration values: max |x| / 127 (the smallest positive float32 for an
    all-zero input, so the scale stays valid)."""
    m = float(np.abs(values).max()) if values.size else 0.0
    return max(float(np.float32(m) / np.float32(127)), float(np.finfo(np.float32).tiny))


# ---- the arithmetic of FORMAT.md 2.5, in float32 ------------------------------------------------------


def fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a * b + c`` of float32 operands rounded once to float32: the float64 product is exact, the sum is
    rounded to odd in float64 and then to nearest in float32, which is the correctly rounded result."""
    a, b, c = (np.asarray(v, np.float32).astype(np.float64) for v in np.broadcast_arrays(a, b, c))
    p = a * b
    hi = p + c
    t = hi - p
    lo = (p - (hi - t)) + (c - t)
    with np.errstate(invalid="ignore"):
        bump = np.isfinite(hi) & (lo != 0) & ((hi.view(np.int64) & 1) == 0)
    hi = np.where(bump, np.nextafter(hi, np.where(lo > 0, np.inf, -np.inf)), hi)
    with np.errstate(over="ignore"):
        return hi.astype(np.float32)  # overflow gives infinity, as the float32 fma does


def quantize_values(v: np.ndarray, inv: Any) -> np.ndarray:
    """``clamp(round_half_even(v * inv), -127, 127)`` with a float32 product; NaN gives 0 (int64 result)."""
    with np.errstate(invalid="ignore", over="ignore"):
        t = np.asarray(v, np.float32) * np.asarray(inv, np.float32)
    t = np.where(np.isnan(t), np.float32(0), t)
    return np.clip(np.rint(t), -127, 127).astype(np.int64)


def quantize_dynamic(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``x`` (batch, n): with m = max |x|, the scale m / 127 and the values quantized with 127 / m
    (int64); scale 0 and values 0 for a row of zeros; scale NaN and values 0 for a row holding a NaN or an
    infinity (FORMAT.md 2.5, dynamic)."""
    x = np.asarray(x, np.float32)
    m = np.abs(x).max(axis=1) if x.shape[1] else np.zeros(len(x), np.float32)
    finite = np.isfinite(x).all(axis=1)
    ok = finite & (m > 0)
    xs = np.where(finite, np.where(ok, m / np.float32(127), np.float32(0)), np.float32(np.nan)).astype(np.float32)
    inv = (np.float32(127) / np.where(ok, m, np.float32(1))).astype(np.float32)
    return np.where(ok[:, None], quantize_values(x, inv[:, None]), 0), xs


@dataclass(frozen=True)
class Int8Params:
    """How one int8 layer quantizes its activations (a qlinear or qconv2d node's attributes, or dynamic)."""

    mode: str                       # "dynamic" or "static"
    input_scale: float = 0.0        # static
    output_scale: float = 0.0       # static: 0 gives float32
    lo: float = -np.inf             # static: the clamp of the float result (a fused relu: 0)
    hi: float = np.inf

    def attrs(self) -> dict[str, float]:
        return {"input_scale": self.input_scale, "output_scale": self.output_scale, "min": self.lo, "max": self.hi}


@dataclass(frozen=True)
class Int8Layer:
    """An int8 linear or conv2d layer as the reference forward pass runs it."""

    q: np.ndarray                 # the 2-D view [rows, cols]
    scales: np.ndarray
    bias: np.ndarray | None
    params: Int8Params
    shape: tuple[int, ...] = ()  # the weight's own shape (a conv's [O, C / groups, kh, kw])


def int8_linear(x: np.ndarray, q: np.ndarray, scales: np.ndarray, bias: np.ndarray | None,
                p: Int8Params) -> np.ndarray:
    """The output of an int8 linear layer (FORMAT.md 2.5) for inputs ``x`` (batch, in), as float32 (a static
    int8 output as its real value, output_scale * q)."""
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    q = np.asarray(q, np.int64)
    if p.mode == "static":
        sx = np.float32(p.input_scale)
        xs = np.full(len(x), sx, np.float32)
        qx = quantize_values(x, np.float32(1) / sx)
    else:
        qx, xs = quantize_dynamic(x)
    acc = qx @ q.T
    s = (xs[:, None] * np.asarray(scales, np.float32)[None, :]).astype(np.float32)
    b = np.zeros(q.shape[0], np.float32) if bias is None else np.asarray(bias, np.float32)
    y = fma32(acc.astype(np.float32), s, b[None, :])
    return _static_output(y, p) if p.mode == "static" else y.astype(np.float32)


def _static_output(y: np.ndarray, p: Int8Params) -> np.ndarray:
    """A static layer's clamp, then its output quantized when output_scale > 0 (FORMAT.md 2.5)."""
    lo, hi = np.float32(p.lo), np.float32(p.hi)
    y = np.where(lo > y, lo, y)
    y = np.where(hi < y, hi, y)
    if p.output_scale > 0:
        so = np.float32(p.output_scale)
        y = (so * quantize_values(y, np.float32(1) / so).astype(np.float32)).astype(np.float32)
    return y.astype(np.float32)


def int8_conv2d(x: np.ndarray, layer: Int8Layer, attrs: dict[str, Any]) -> np.ndarray:
    """The output of an int8 convolution (FORMAT.md 2.5): dynamic (one scale per sample over its whole input)
    or static (a qconv2d: the calibrated input scale, the clamp and the output quantized), exact integer
    window sums (the padding 0), the epilogue in float32. ``layer.q`` is the weight's 2-D view
    [O, C / groups * kh * kw], ``layer.shape`` its 4-D shape; ``attrs`` the node's (stride, padding, dilation,
    groups)."""
    from .reference import conv2d

    x = np.asarray(x, np.float32)
    p = layer.params
    if p.mode == "static":
        sx = np.float32(p.input_scale)
        qx, xs = quantize_values(x, np.float32(1) / sx), np.full(len(x), sx, np.float32)
    else:
        qx, xs = quantize_dynamic(x.reshape(len(x), -1))
        qx = qx.reshape(x.shape)
    o = layer.q.shape[0]
    w = np.asarray(layer.q, np.float64).reshape(layer.shape)
    acc = np.rint(conv2d(qx.astype(np.float64), w, None, attrs["stride"], attrs["padding"], attrs["dilation"],
                         attrs["groups"]))  # sums of integers below 2^53: exact
    s = (xs[:, None] * np.asarray(layer.scales, np.float32)[None, :]).astype(np.float32)[:, :, None, None]
    b = np.zeros(o, np.float32) if layer.bias is None else np.asarray(layer.bias, np.float32)
    y = fma32(acc.astype(np.float32), s, b[None, :, None, None])
    return _static_output(y, p) if p.mode == "static" else y
