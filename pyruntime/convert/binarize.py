"""Binary layers (docs/FORMAT.md 2.6): splitting a weight into signs and per-row scales, folding what lies
between a binary layer and a sign into integer popcount thresholds, the exact numpy arithmetic of the
``sign`` and ``blinear`` ops, and :func:`from_binary_layers`, the import of a binarized network given as
plain arrays (weight bits and thresholds, the form FINN-style BNN tools export). numpy only.

Notation: a binary weight is ``W[r][c] = alphas[r] * s[r][c]``, ``s`` in {-1, +1}; K is the layer's number
of inputs; with binary inputs ``b`` (the sign of x), ``dot[r] = sum_c s[r][c] * b[c]`` is an integer in
-K..K of K's parity and ``p[r] = (dot[r] + K) / 2`` the XNOR popcount (0..K). A layer whose output feeds
a sign gives ``y[r] = +1 iff p[r] >= T[r]`` (``output 1``), T an integer in 0..K + 1. A binary convolution
(bconv2d) sums, per output position, the window's taps inside the input (a tap in the zero padding contributes
0), so its dot can take every integer in -K..K, and its output 1 is ``+1 iff dot + K >= 2 T``, T a multiple of
1/2 in 0..K + 1.

**Threshold folding.** Whatever lies between the layer and the sign (a bias, a batch norm, a hardtanh, a
scalar affine) makes the sign a function of ``dot`` alone, ``+1 iff v(dot) >= 0``. :func:`fold_thresholds`
takes that predicate evaluated at every candidate dot (-K, -K + 2, .., K), as the converter computes it
with the source's own float32 operations, and finds the threshold: where the predicate rises with ``dot``,
T is the popcount of its first true value (K + 1 if none); where it falls (a negative batch-norm scale),
the row's signs are flipped (dot -> -dot), as FINN does; a constant row gets T = 0 or K + 1. For a binary
convolution the candidates are every integer -K..K and T = (d* + K) / 2, d* the first dot with a true
predicate. A predicate
that is neither rising nor falling cannot be a threshold and is refused. The folded layer agrees with the
source on every input, not just approximately.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _core

#: The largest K (weight columns) a binary layer may have: every integer of the layer is exact in f32.
MAX_BINARY_COLS = 1 << 24


def _unsupported(msg: str) -> Exception:
    return _core.UnsupportedError(msg)


# ---- weights ------------------------------------------------------------------------------------------


def binary_rows(w: np.ndarray) -> np.ndarray:
    """Per row of a 2-D weight: whether every entry has the same magnitude (+-alpha, alpha >= 0), finite."""
    w = np.asarray(w, np.float32)
    a = np.abs(w)
    return np.isfinite(w).all(axis=1) & (a == a.max(axis=1, keepdims=True)).all(axis=1)


def is_binary_weight(w: np.ndarray) -> bool:
    """Whether ``w`` (2-D) holds only +-alpha per row (+-1 included)."""
    w = np.asarray(w)
    return w.ndim == 2 and w.size > 0 and bool(binary_rows(w).all())


def split_binary(w: np.ndarray, who: str) -> tuple[np.ndarray, np.ndarray]:
    """``(signs int8 +-1, alphas float32 >= 0)`` with ``w == alphas[:, None] * signs``; a zero entry (only in a
    row of zeros) gets +1. Refuses, naming ``who``, a weight that is not +-alpha per row."""
    w = np.asarray(w, np.float32)
    if w.ndim != 2:
        raise ValueError(f"{who}: a binary weight must be 2-D (out, in), got shape {w.shape}")
    ok = binary_rows(w)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        r = int(bad[0])
        vals = np.unique(np.abs(w[r]))
        raise ValueError(f"{who}: the weight is not binary: {bad.size} of {w.shape[0]} rows are not +-alpha (row {r} "
                         f"holds magnitudes {_few(vals)}); a binary layer's row takes two values, +alpha and -alpha "
                         "(train it as pyruntime.convert.BinaryLinear / BinaryConv2d, or leave it out of "
                         "binary=)")
    alphas = np.abs(w).max(axis=1).astype(np.float32)
    signs = np.where(np.signbit(w) & (w != 0), -1, 1).astype(np.int8)
    return signs, alphas


def _few(values: np.ndarray, n: int = 4) -> str:
    shown = ", ".join(f"{float(v):.6g}" for v in values[:n])
    return f"[{shown}{', ...' if values.size > n else ''}]"


def check_signs(signs: Any, who: str, ndim: int = 2) -> np.ndarray:
    """+-1 signs (any numeric dtype) as int8, ``ndim``-D (2: (out, in); 4: a convolution's (O, C, kh, kw));
    refuses, naming ``who``, other values or shapes."""
    s = np.asarray(signs)
    if s.ndim != ndim or min(s.shape) < 1:
        what = "a 2-D (out, in)" if ndim == 2 else "a 4-D (out_channels, in_channels, kh, kw)"
        raise ValueError(f"{who}: signs must be {what} array, got shape {s.shape}")
    if s.dtype == np.bool_ or s.dtype.kind not in "iuf":
        raise ValueError(f"{who}: signs must be numbers +1 / -1, got dtype {s.dtype}")
    bad = (s != 1) & (s != -1)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{who}: signs must be +1 or -1, got {s[at].item()!r} at [{', '.join(map(str, at))}]")
    return s.astype(np.int8)


def check_bits(bits: Any, shape: tuple[int, int] | None, who: str) -> np.ndarray:
    """Weight bits (0 for -1, 1 for +1) of shape ``(out, in)`` (``shape``; None: any 2-D) as uint8; refuses,
    naming ``who``, another shape or a value other than 0 and 1."""
    b = np.asarray(bits)
    if b.dtype.kind not in "biuf":
        raise ValueError(f"{who}: bits must be 0 / 1 numbers or booleans, got dtype {b.dtype}")
    if b.ndim != 2 or min(b.shape) < 1:
        raise ValueError(f"{who}: bits must be a 2-D (out, in) array, got shape {b.shape}")
    if shape is not None and tuple(b.shape) != tuple(shape):
        raise ValueError(f"{who}: bits have shape {b.shape}, expected {tuple(shape)} (out, in)")
    bad = (b != 0) & (b != 1)
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{who}: bits must be 0 (for -1) or 1 (for +1), got {b[r, c].item()!r} at [{r}, {c}]")
    return b.astype(np.uint8)


def check_thresholds(t: Any, rows: int, cols: int, who: str, half: bool = False) -> np.ndarray:
    """Integer popcount thresholds (``half``: multiples of 1/2, a bconv2d's), one per row, in 0..K + 1 (K =
    ``cols``), as float32; refuses, naming ``who``, a wrong length, a non-integer, or a value out of range."""
    a = np.asarray(t)
    if a.dtype == np.bool_ or a.dtype.kind not in "iuf":
        raise ValueError(f"{who}: thresholds must be integers, got dtype {a.dtype}")
    if a.shape != (rows,):
        raise ValueError(f"{who}: thresholds have shape {a.shape}, expected ({rows},): one per output neuron")
    f = a.astype(np.float64)
    steps = 2 if half else 1
    bad = ~np.isfinite(f) | (f * steps != np.floor(f * steps))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "multiples of 1/2" if half else "integers (popcounts)"
        raise ValueError(f"{who}: thresholds must be {what}, got {a[i].item()!r} at [{i}]")
    out = (f < 0) | (f > cols + 1)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise ValueError(f"{who}: threshold {a[i].item()!r} at [{i}] is out of range 0..{cols + 1} (K + 1, K = {cols} "
                         "inputs): y = +1 iff popcount >= T")
    return f.astype(np.float32)


def check_alphas(alphas: Any, rows: int, who: str) -> np.ndarray:
    a = np.asarray(alphas, dtype=np.float32)
    if a.shape != (rows,):
        raise ValueError(f"{who}: alphas have shape {a.shape}, expected ({rows},): one per output neuron")
    if not (np.isfinite(a).all() and (a >= 0).all()):
        raise ValueError(f"{who}: alphas must be finite and >= 0")
    return a


def binary_tensor(name: str, signs: np.ndarray, alphas: np.ndarray) -> dict[str, Any]:
    """The tensor dict of a binary weight (FORMAT.md 3.8): bits 0/1 row-major (1 = +1), scales = alphas."""
    s = np.asarray(signs)
    return {"name": name, "encoding": "binary", "shape": [int(d) for d in s.shape],
            "bits": np.ascontiguousarray((s > 0).astype(np.uint8).ravel()),
            "scales": np.ascontiguousarray(alphas, dtype=np.float32)}


def binary_payload_bytes(rows: int, cols: int) -> int:
    """Payload bytes of a binary tensor (FORMAT.md 3.8): the alphas padded to 8, then one u64 per 64 columns."""
    return (4 * rows + 7) // 8 * 8 + 8 * rows * ((cols + 63) // 64)


# ---- folding ------------------------------------------------------------------------------------------


def candidate_dots(k: int, every_integer: bool = False) -> np.ndarray:
    """Every value an integer dot of K +-1 products can take: -K, -K + 2, .., K (K + 1 values, float64); with
    ``every_integer`` (a binary convolution, whose padded windows sum fewer taps) -K, -K + 1, .., K."""
    return np.arange(-k, k + 1, 1 if every_integer else 2, dtype=np.float64)


@dataclass(frozen=True)
class Thresholds:
    """A folded sign: ``T`` (float32 integers, or multiples of 1/2 for a convolution, in 0..K + 1) and the rows
    whose signs were flipped."""

    T: np.ndarray
    flip: np.ndarray  # bool per row

    @property
    def flipped(self) -> int:
        return int(self.flip.sum())


def fold_thresholds(positive: np.ndarray, who: str, every_integer: bool = False) -> Thresholds:
    """Thresholds from the sign's outcome at every candidate dot: ``positive[i, r]`` is True when row r's sign
    is +1 at ``dot = -K + 2 i`` (i = 0..K, so i is the popcount). A row rising with i gets ``T = first i``
    (K + 1 if never); a falling row is flipped (its signs negated, dot -> -dot) and then rises; a row that
    does both is refused, naming ``who``. With ``every_integer`` (a binary convolution) ``positive[i, r]`` is
    the outcome at ``dot = -K + i`` (i = 0..2K) and ``T = first i / 2`` (+1 iff ``dot + K >= 2 T``)."""
    pos = np.asarray(positive, dtype=bool)
    n = pos.shape[0]
    k = (n - 1) // 2 if every_integer else n - 1
    step = np.diff(pos.astype(np.int8), axis=0)
    rising = (step >= 0).all(axis=0)
    falling = (step <= 0).all(axis=0)
    if not (rising | falling).all():
        r = int(np.flatnonzero(~(rising | falling))[0])
        raise _unsupported(f"{who}: the sign of row {r} is not monotone in the layer's dot product (it changes "
                           f"{int(np.abs(step[:, r]).sum())} times over dot = -{k}..{k}); only a monotone chain (bias, "
                           "batch norm, hardtanh, scalar affine) between a binary layer and its sign folds into "
                           "thresholds")
    flip = falling & ~rising  # constant rows keep their signs
    up = np.where(flip[None, :], pos[::-1], pos)  # a flipped row's outcome at popcount i is the original's at K - i
    first = np.where(up.any(axis=0), up.argmax(axis=0) / (2 if every_integer else 1), k + 1)
    return Thresholds(first.astype(np.float32), flip)


def fold_batchnorm_output(alphas: np.ndarray, bias: np.ndarray | None, mean: np.ndarray, var: np.ndarray,
                          gamma: np.ndarray | None, beta: np.ndarray | None,
                          eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch norm after a real-output binary layer: ``bn(alpha * dot + b) = alpha' * dot + b'`` with
    ``alpha' = alpha * g``, ``b' = (b - mean) * g + beta``, ``g = gamma / sqrt(var + eps)``. Returns
    ``(|alpha'|, b', flip)``: rows whose alpha' is negative get their signs flipped (flip True)."""
    var = np.asarray(var, np.float64)
    g = (np.ones_like(var) if gamma is None else np.asarray(gamma, np.float64)) / np.sqrt(var + eps)
    b0 = np.zeros_like(var) if bias is None else np.asarray(bias, np.float64)
    a2 = np.asarray(alphas, np.float64) * g
    b2 = (b0 - np.asarray(mean, np.float64)) * g + (0.0 if beta is None else np.asarray(beta, np.float64))
    flip = a2 < 0
    return np.abs(a2).astype(np.float32), b2.astype(np.float32), flip


# ---- the sign op's scale and shift from a scalar affine and a comparison ------------------------------


def sign_params(chain: Sequence[tuple[str, float]], compare: str, c: float, positive: bool,
                who: str) -> tuple[float, float]:
    """The ``(scale, shift)`` of a sign op (+1 iff ``f32(f32(x * scale) + shift) >= 0``) that gives, for every
    float32 x, what torch gives for ``where(cmp(affine(x), c), +1, -1)`` (``positive``) or ``(-1, +1)``.

    ``chain`` is the scalar affine applied to x first, in order, as ``("mul", a)`` / ``("add", b)`` float32
    constants; ``compare`` one of ge, gt, le, lt against the float32 constant ``c``. Supported (exactly, by
    IEEE-754's rounding): x, a x, a x + b, x + b and (x + b) a with |a| >= 1, compared to 0 (the first two to
    any finite c), with +1 on the side of >= or of <= (a NaN gives -1 with >=, +1 with < and its -1 branch).
    A strict comparison (+1 where x > c) is refused: the sign op's zero gives +1."""
    fam = {("ge", True): "ge", ("lt", False): "ge", ("le", True): "le", ("gt", False): "le"}.get((compare, positive))
    if fam is None:
        side = ">" if (compare, positive) in (("gt", True), ("le", False)) else "<"
        raise _unsupported(f"{who}: a sign that is +1 where x {side} c (strictly) is not supported: the runtime's sign "
                           "is +1 at zero; write torch.where(x >= c, 1.0, -1.0) (or use pyruntime.convert.SignSTE)")
    c32 = float(np.float32(c))
    if not math.isfinite(c32):
        raise _unsupported(f"{who}: the sign compares with {c!r}; only a finite constant is supported")
    kinds = [k for k, _ in chain]
    vals = [float(np.float32(v)) for _, v in chain]
    if not all(math.isfinite(v) for v in vals):
        raise _unsupported(f"{who}: the scalar affine before the sign has a non-finite constant {vals}")
    sgn = 1.0 if fam == "ge" else -1.0
    if kinds in ([], ["mul"]):
        a = vals[0] if kinds else 1.0
        return sgn * a, -sgn * c32
    if c32 == 0 and kinds == ["add"]:
        return sgn, sgn * vals[0]
    if c32 == 0 and kinds == ["mul", "add"]:
        return sgn * vals[0], sgn * vals[1]
    if c32 == 0 and kinds == ["add", "mul"] and abs(vals[1]) >= 1:
        s2 = sgn if vals[1] > 0 else -sgn
        return s2, s2 * vals[0]
    form = " then ".join(f"{'* ' if k == 'mul' else '+ '}{v:g}" for k, v in zip(kinds, vals, strict=True)) or "x"
    raise _unsupported(f"{who}: the scalar affine before the sign ({form}, compared with {c32:g}) cannot be held by "
                       "the sign op exactly; supported: x * a + b, (x + b) * a with |a| >= 1, compared with 0, or "
                       "x * a compared with any constant")


# ---- the arithmetic of FORMAT.md 2.6 ------------------------------------------------------------------


@dataclass(frozen=True)
class BinaryLayer:
    """A blinear or bconv2d node as the reference forward pass runs it."""

    signs: np.ndarray            # int8 +-1, [out, in] (bconv2d: [O, C, kh, kw])
    alphas: np.ndarray           # float32 [out]
    second: np.ndarray | None    # float32 [out]: the bias (output 0) or the thresholds (output 1)
    input: int = 0
    output: int = 0

    @property
    def weight(self) -> np.ndarray:
        a = self.alphas.reshape((-1,) + (1,) * (self.signs.ndim - 1))
        return (a * self.signs.astype(np.float32)).astype(np.float32)


def sign_values(x: np.ndarray, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    """The sign op (FORMAT.md 2.6): +1 where ``f32(f32(x * scale) + shift) >= 0`` else -1 (NaN: -1), float32."""
    with np.errstate(invalid="ignore", over="ignore"):
        v = np.asarray(x, np.float32) * np.float32(scale) + np.float32(shift)
        return np.where(v.astype(np.float32) >= 0, np.float32(1), np.float32(-1))


def binary_dot(x: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """``dot[n, r] = sum_c s[r][c] * b[n][c]`` with b the sign of x (NaN: -1), as exact integers (int64)."""
    b = np.where(np.asarray(x) >= 0, 1.0, -1.0).reshape(len(x), -1)
    return np.rint(b @ np.asarray(signs, np.float64).T).astype(np.int64)  # sums of +-1 below 2^53: exact


def blinear_forward(x: np.ndarray, layer: BinaryLayer) -> np.ndarray:
    """The output of a blinear node (FORMAT.md 2.6) for a batch ``x`` (batch, in), as float32 for input 0 and
    float64 for input 1 (a sum whose order the format leaves open)."""
    from .quantize import fma32

    x = np.asarray(x)
    k = layer.signs.shape[1]
    if layer.input == 1:
        y = (np.asarray(x, np.float64).reshape(len(x), -1) @ layer.signs.T.astype(np.float64)) * layer.alphas
        return y + (0.0 if layer.second is None else layer.second.astype(np.float64))
    dot = binary_dot(x, layer.signs)
    if layer.output == 1:
        p = (dot + k) // 2
        return np.where(p >= np.asarray(layer.second)[None, :], np.float32(1), np.float32(-1))
    b = np.zeros(layer.signs.shape[0], np.float32) if layer.second is None else layer.second
    return fma32(dot.astype(np.float32), layer.alphas[None, :], b[None, :])


def bconv2d_forward(x: np.ndarray, layer: BinaryLayer, attrs: Mapping[str, Any]) -> np.ndarray:
    """The output of a bconv2d node (FORMAT.md 2.6) for a batch ``x`` [N, C, H, W]: input 0 sums, over each
    window's taps inside the input, ``s * b`` (b the sign of x, NaN: -1; a tap in the zero padding adds 0),
    exactly, then ``fma(dot, alpha, bias)`` (output 0, float32) or ``+1 iff dot + K >= 2 T`` (output 1);
    input 1 is conv2d with the weight ``alphas * s`` and the bias (float64, a sum whose order the format
    leaves open)."""
    from .quantize import fma32
    from .reference import conv2d

    geometry = (attrs["stride"], attrs["padding"], attrs["dilation"], 1)
    if layer.input == 1:
        return conv2d(np.asarray(x, np.float64), layer.weight, layer.second, *geometry)
    b = np.where(np.asarray(x) >= 0, 1.0, -1.0)  # the padding conv2d adds is 0
    dot = np.rint(conv2d(b, layer.signs, None, *geometry)).astype(np.int64)  # sums of +-1 below 2^53: exact
    k = int(np.prod(layer.signs.shape[1:]))
    if layer.output == 1:
        t2 = 2 * np.asarray(layer.second, np.float64)[None, :, None, None]
        return np.where(dot + k >= t2, np.float32(1), np.float32(-1))
    rows = layer.signs.shape[0]
    bias = np.zeros(rows, np.float32) if layer.second is None else np.asarray(layer.second, np.float32)
    return fma32(dot.astype(np.float32), layer.alphas[None, :, None, None], bias[None, :, None, None])


# ---- FINN-style import --------------------------------------------------------------------------------


_LAYER_KEYS = ("bits", "thresholds", "bias", "alphas", "name")


def _layer_dict(i: int, layer: Any) -> dict[str, Any]:
    if isinstance(layer, Mapping):
        extra = sorted(set(layer) - set(_LAYER_KEYS))
        if extra:
            raise ValueError(f"layer {i}: unknown keys {extra} (expected {', '.join(_LAYER_KEYS)})")
        if "bits" not in layer:
            raise ValueError(f"layer {i}: no 'bits' (the weight bits, shape (out, in), 1 for +1 and 0 for -1)")
        return dict(layer)
    if isinstance(layer, (tuple, list)) and 1 <= len(layer) <= 2:
        return {"bits": layer[0], "thresholds": layer[1] if len(layer) > 1 else None}
    raise TypeError(f"layer {i}: expected a dict {{'bits', 'thresholds' | 'bias', 'alphas', 'name'}} or a tuple "
                    f"(bits, thresholds), got {type(layer).__name__}")


def binary_layers_graph(layers: Sequence[Any], input_shape: Sequence[int], *,
                        input_scale: float | None = None, input_shift: float | None = None) -> Any:
    """The :class:`~pyruntime.convert.graph.Graph` of :func:`from_binary_layers`."""
    from .graph import Graph

    if isinstance(layers, (Mapping, str, bytes)) or not isinstance(layers, Sequence) or not layers:
        raise TypeError("layers must be a non-empty list of per-layer dicts {'bits', 'thresholds' | 'bias', ...}")
    g = Graph(input_shape)
    v = g.input
    if len(g.input_shape) > 1:
        v = g.flatten(v)
    if input_scale is not None or input_shift is not None:
        v = g.sign(v, 1.0 if input_scale is None else input_scale, 0.0 if input_shift is None else input_shift)
    features = g.shape(v)[0]
    names: set[str] = set()
    for i, raw in enumerate(layers):
        d = _layer_dict(i, raw)
        name = str(d.get("name") or f"fc{i + 1}")
        if name in names:
            raise ValueError(f"layer {i}: duplicate layer name '{name}'")
        names.add(name)
        who = f"layer {i} ('{name}')"
        bits = check_bits(d["bits"], None, who)
        rows, cols = bits.shape
        if cols != features:
            raise ValueError(f"{who}: bits have {cols} columns (inputs), the layer's input has {features} features "
                             f"({'the input' if i == 0 else f'layer {i - 1} has {features} outputs'})")
        if cols > MAX_BINARY_COLS:
            raise ValueError(f"{who}: {cols} inputs; a binary layer has at most {MAX_BINARY_COLS}")
        t, b = d.get("thresholds"), d.get("bias")
        if t is not None and b is not None:
            raise ValueError(f"{who}: give thresholds (a +-1 output) or a bias (a real output), not both")
        thresholds = None if t is None else check_thresholds(t, rows, cols, who)
        if b is not None:
            b = np.asarray(b, np.float32)
            if b.shape != (rows,) or not np.isfinite(b).all():
                raise ValueError(f"{who}: bias must be {rows} finite numbers, got shape {b.shape}")
        alphas = np.ones(rows, np.float32) if d.get("alphas") is None else check_alphas(d["alphas"], rows, who)
        signs = np.where(bits == 1, 1, -1).astype(np.int8)
        v = g.blinear(v, signs, alphas, bias=b, thresholds=thresholds, input=0, name=name)
        features = rows
    return g


def from_binary_layers(layers: Sequence[Any], input_shape: Sequence[int], *, input_scale: float | None = None,
                       input_shift: float | None = None, metadata: dict[str, Any] | None = None) -> Any:
    """A :class:`~pyruntime.convert.model.CompressedModel` from a binarized MLP given as plain arrays (the
    form FINN-style BNN tools export), one entry per layer::

        {"bits": B,            # (out, in) 0/1 (bool or int), 1 for a +1 weight, 0 for -1
         "thresholds": T,      # (out,) integer popcounts in 0..in + 1: y = +1 iff popcount(XNOR) >= T
         "name": "fc1"}        # optional (default fc<i>, counting from 1)
        {"bits": B, "bias": b, "alphas": a}   # a real-output layer (usually the last): y = a * dot + b
        {"bits": B}                           # ... or the plain dot products (alphas 1, no bias)

    (a tuple ``(bits, thresholds)`` works as well). Every layer takes binary inputs: the first the sign of
    the network's input (``x >= 0``), or, with ``input_scale`` / ``input_shift``, the sign of
    ``x * input_scale + input_shift`` (``2, -1`` binarizes [0, 1] pixels at 0.5); the others the +-1 outputs
    of the layer before. The popcount counts agreeing positions of the input and the weight bits:
    ``popcount = (dot + in) / 2`` with ``dot = sum s * b`` over +-1 values. An input of more than one
    dimension is flattened first.

    Each layer is checked and refused by name (``ValueError: layer 1 ('fc2'): ...``): bits of the wrong
    shape or with values other than 0 and 1, a layer whose inputs do not match the previous layer's outputs,
    thresholds of the wrong length, not integers, or outside 0..in + 1, both thresholds and a bias.
    """
    from .model import from_graph

    g = binary_layers_graph(layers, input_shape, input_scale=input_scale, input_shift=input_shift)
    meta = {"source": "binary layers"}
    meta.update(metadata or {})
    return from_graph(g, metadata=meta)
