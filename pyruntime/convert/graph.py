"""Graph builder: a network as a DAG of runtime ops, with per-sample shapes checked as it is built.

::

    g = Graph((1, 28, 28))                                  # per-sample input shape (no batch), NCHW
    v = g.conv2d(g.input, W1, b1, padding=2, name="conv1")  # every method returns a value id
    v = g.max_pool2d(g.relu(v), 2)                           # pool stride defaults to the kernel (torch)
    v = g.linear(g.flatten(v), W2, b2, name="fc")
    cm = from_graph(g, sparsity=0.8, bits=4)                 # pyruntime.convert.from_graph

Value 0 (``g.input``) is the graph input, value ``i + 1`` the output of node ``i``; the graph output
is the last node's output. A graph of several inputs (format version 5: ``Graph((T,), dtype="i32")`` then
``g.add_input(shape, dtype)`` before the first node) numbers them 0 .. I-1 and node ``i``'s output I + i;
``g.set_outputs([...])`` makes any values the outputs. Shapes are per sample: ``[features]`` or
``[tokens, features]`` for linear, ``[C, H, W]`` for the 2-D ops. Ops (the file's op table,
``csrc/common/op_schema.h``):

  linear           x [..., in] -> [..., out] (over the last axis); weight [out, in], optional bias [out]
  conv2d           [C, H, W] -> [O, OH, OW]; weight [O, C/groups, kh, kw], optional bias [O];
                   stride, padding, dilation, groups
  max_pool2d       [C, H, W] -> [C, OH, OW]; kernel, stride (default: kernel), padding, ceil_mode
  avg_pool2d       the same + count_include_pad (torch's divisor rules)
  global_avg_pool  [C, H, W] -> [C, 1, 1]
  relu, clamp      elementwise; relu6 = clamp(0, 6), hardtanh(a, b) = clamp(a, b)
  softmax          over the features of a flat input
  flatten          [d0, d1, ...] -> [d0 * d1 * ...]
  reshape          same number of elements, 1..4 dims (one may be -1)
  add, sub, mul, div  two values that broadcast (numpy's rules over the per-sample dims), or a value and a
                   constant (a number or an array); add of two equal shapes is format version 2
  matmul           [..., M, K] @ [..., K, N] of two values (attention's scores and context)
  transpose, slice per-sample axes permuted; one axis cut to start:end:step
  layer_norm       over the last axis, optional weight and bias; gelu (erf / tanh), silu, sigmoid, tanh,
                   leaky_relu elementwise; softmax along an axis (softmax_axis in the file beyond rank 1)
  embedding        i32 ids [...] -> [..., D]: rows of a table (a weighted layer: pruned, shared, int8)
  upsample_nearest, adaptive_avg_pool2d  [C, H, W] -> [C, H * sh, W * sw] / [C, oh, ow]
  concat           2.. values along a per-sample axis (channels = 0), other dims equal
  sign             elementwise: +1 where x * scale + shift >= 0, else -1 (FORMAT.md 2.6)
  blinear          x [in] -> [out]: a binary linear layer, signs [out, in] (+-1) and alphas [out]; the
                   input taken as its sign (input 0, XNOR-popcount) or as it is (input 1); a bias (real
                   output) or integer popcount thresholds (+-1 output)
  bconv2d          [C, H, W] -> [O, OH, OW]: a binary convolution (groups 1), signs [O, C, kh, kw] and
                   alphas [O], conv2d's geometry, blinear's input and output (a tap in the zero padding
                   contributes 0; thresholds are multiples of 1/2: +1 where dot + K >= 2 T)

``padding`` is an int (all sides), a pair ``(h, w)`` (top = bottom = h, left = right = w), a
4-tuple ``(top, left, bottom, right)``, or for conv2d ``"valid"`` / ``"same"`` (torch's rule: the
odd pixel goes to the bottom / right). Errors name the layer: ``ValueError`` for inconsistent
shapes or settings, ``pyruntime.UnsupportedError`` where the op cannot take that input at all.

Weighted layers (linear, conv2d) carry a name, unique in the graph: the ``name`` given, else
``fc<k>`` / ``conv<k>`` counting that op's layers from 1. Compression settings, masks, reports and
``CompressedModel.dense_weights()`` refer to layers by these names.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _core

OPS = ("linear", "conv2d", "relu", "clamp", "softmax", "flatten", "reshape", "max_pool2d", "avg_pool2d",
       "global_avg_pool", "add", "concat", "sign", "blinear", "bconv2d", "layer_norm", "gelu", "silu", "sigmoid",
       "tanh", "leaky_relu", "softmax_axis", "sub", "mul", "div", "matmul", "transpose", "slice", "embedding",
       "upsample_nearest", "adaptive_avg_pool2d")
#: ops with float weights, which pruning, sharing and int8 apply to
WEIGHTED_OPS = ("linear", "conv2d", "embedding")
#: every op that is a named layer (binary layers too)
LAYER_OPS = ("linear", "conv2d", "embedding", "blinear", "bconv2d")
#: ops whose node may hold constant tensors that stay dense (not a layer): layer_norm's weight and bias, the
#: constant operand of add, sub, mul, div
CONSTANT_OPS = ("layer_norm", "add", "sub", "mul", "div")
#: the binary layers (FORMAT.md 2.6)
BINARY_OPS = ("blinear", "bconv2d")
MAX_CONCAT_INPUTS = 16
MAX_RANK = 4
MAX_GRAPH_INPUTS = MAX_GRAPH_OUTPUTS = 16


@dataclass
class Node:
    """One op of a :class:`Graph`: value ids it reads, its attrs (as the file stores them), its output
    shape (per sample), and for weighted layers the weight (float32) and optional bias."""

    op: str
    inputs: list[int]
    attrs: dict[str, Any]
    shape: tuple[int, ...]
    name: str | None = None
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _unsupported(msg: str) -> Exception:
    return _core.UnsupportedError(msg)


def _int(v: Any, what: str, who: str, lo: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{who}: {what} must be an int, got {v!r}")
    if int(v) < lo:
        raise ValueError(f"{who}: {what} must be >= {lo}, got {int(v)}")
    return int(v)


def _pair(v: Any, what: str, who: str, lo: int) -> list[int]:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{who}: {what} must be an int or a pair (h, w), got {v!r}")
        return [_int(v[0], what, who, lo), _int(v[1], what, who, lo)]
    x = _int(v, what, who, lo)
    return [x, x]


def _padding4(v: Any, who: str) -> list[int]:
    """[top, left, bottom, right] from an int, a pair (h, w) or a 4-tuple (top, left, bottom, right)."""
    if isinstance(v, (tuple, list)) and len(v) == 4:
        return [_int(p, "padding", who) for p in v]
    if isinstance(v, (tuple, list)) and len(v) != 2:
        raise ValueError(f"{who}: padding must be an int, a pair (h, w) or (top, left, bottom, right), got {v!r}")
    h, w = _pair(v, "padding", who, 0)
    return [h, w, h, w]


def conv_out(size: int, pad_a: int, pad_b: int, kernel: int, stride: int, dilation: int) -> int:
    """Output length of a convolution along one axis (may be < 1: no valid output)."""
    return (size + pad_a + pad_b - dilation * (kernel - 1) - 1) // stride + 1


def pool_out(size: int, pad_a: int, pad_b: int, kernel: int, stride: int, ceil_mode: bool) -> int:
    """Output length of a pooling along one axis (torch's rule; may be < 1)."""
    span = size + pad_a + pad_b - kernel
    if span < 0:
        return 0
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + pad_a:  # the last window would start in the bottom/right padding
        out -= 1
    return out


builtins_slice = slice


def broadcast_shapes(a: Sequence[int], b: Sequence[int], who: str) -> tuple[int, ...]:
    """Numpy's broadcast of two per-sample shapes (FORMAT.md 2.7), at most 4 dims."""
    try:
        out = tuple(int(d) for d in np.broadcast_shapes(tuple(a), tuple(b)))
    except ValueError:
        raise ValueError(f"{who}: shapes {tuple(a)} and {tuple(b)} do not broadcast") from None
    if len(out) > MAX_RANK:
        raise _unsupported(f"{who}: the result of {tuple(a)} and {tuple(b)} has more than {MAX_RANK} dims")
    return out


class Graph:
    """A network under construction; see the module docstring."""

    input = 0

    def __init__(self, input_shape: Sequence[int], dtype: str = "f32") -> None:
        self.input_shapes: list[tuple[int, ...]] = []
        self.input_types: list[str] = []
        self.nodes: list[Node] = []
        self._outputs: list[int] | None = None
        self._counts: dict[str, int] = {}
        self.add_input(input_shape, dtype)

    def add_input(self, shape: Sequence[int], dtype: str = "f32") -> int:
        """Another graph input (format version 5), before any node: a per-sample ``shape`` of ``dtype`` "f32" or
        "i32" (token ids, which an :meth:`embedding` reads). Returns its value id (inputs are values 0, 1, ...)."""
        if self.nodes:
            raise ValueError("inputs are added before the first node (they are values 0, 1, ...)")
        if len(self.input_shapes) >= MAX_GRAPH_INPUTS:
            raise ValueError(f"a graph has at most {MAX_GRAPH_INPUTS} inputs")
        try:
            shp = None if isinstance(shape, str) else tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            shp = None
        if not shp or len(shp) > MAX_RANK or any(s <= 0 for s in shp):
            raise ValueError(f"input_shape must be the shape of one sample (1..{MAX_RANK} positive dims, no "
                             f"batch), got {shape!r}")
        if dtype not in ("f32", "i32"):
            raise ValueError(f"an input's dtype is 'f32' or 'i32' (token ids), got {dtype!r}")
        self.input_shapes.append(shp)
        self.input_types.append(dtype)
        return len(self.input_shapes) - 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The first input's per-sample shape."""
        return self.input_shapes[0]

    @property
    def n_inputs(self) -> int:
        return len(self.input_shapes)

    def node_of(self, value: int) -> Node | None:
        """The node whose output ``value`` is (None for a graph input)."""
        return None if value < self.n_inputs else self.nodes[value - self.n_inputs]

    def set_outputs(self, values: Sequence[int]) -> None:
        """The graph outputs (format version 5), any values; by default the last node's output alone."""
        vs = [self._check_value(v, "set_outputs()") for v in values]
        if not 1 <= len(vs) <= MAX_GRAPH_OUTPUTS:
            raise ValueError(f"a graph has 1..{MAX_GRAPH_OUTPUTS} outputs, got {len(vs)}")
        self._outputs = vs

    @property
    def outputs(self) -> list[int]:
        """The graph outputs' value ids."""
        return list(self._outputs) if self._outputs is not None else [self.output]

    def dtype(self, value: int) -> str:
        """"i32" for token ids (an i32 input and the shape ops of one), else "f32"."""
        v = self._check_value(value, "dtype()")
        node = self.node_of(v)
        if node is None:
            return self.input_types[v]
        if node.op in ("flatten", "reshape", "slice", "transpose", "concat"):
            return "i32" if all(self.dtype(i) == "i32" for i in node.inputs) else "f32"
        return "f32"

    # -- queries --------------------------------------------------------------------------------------
    @property
    def output(self) -> int:
        """The last node's value (the graph output unless :meth:`set_outputs` says otherwise)."""
        if not self.nodes:
            raise ValueError("the graph has no nodes")
        return self.n_inputs + len(self.nodes) - 1

    def shape(self, value: int) -> tuple[int, ...]:
        """Per-sample shape of a value."""
        v = self._check_value(value, "shape()")
        node = self.node_of(v)
        return self.input_shapes[v] if node is None else node.shape

    @property
    def layer_names(self) -> list[str]:
        """Names of the weighted layers (linear, conv2d, blinear, bconv2d), in graph order."""
        return [n.name for n in self.nodes if n.op in LAYER_OPS]  # type: ignore[misc]

    @property
    def binary_layer_names(self) -> list[str]:
        """Names of the binary layers (blinear, bconv2d), in graph order."""
        return [n.name for n in self.nodes if n.op in BINARY_OPS]  # type: ignore[misc]

    def is_binary(self, value: int) -> bool:
        """Whether a value holds only +1 and -1 (a sign, a blinear or bconv2d with thresholds, or a flatten,
        reshape or max_pool2d of one): a binary layer reading it takes XNOR-popcount input (input 0) by
        default."""
        v = self._check_value(value, "is_binary()")
        while v >= self.n_inputs:
            n = self.nodes[v - self.n_inputs]
            if n.op == "sign" or (n.op in BINARY_OPS and n.attrs["output"] == 1):
                return True
            if n.op not in ("flatten", "reshape", "max_pool2d"):
                return False
            v = n.inputs[0]
        return False

    def node_label(self, index: int) -> str:
        n = self.nodes[index]
        return f"layer '{n.name}' ({n.op})" if n.name else f"node {index} ({n.op})"

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        inputs = self.input_shape if self.n_inputs == 1 else self.input_shapes
        return f"<Graph input={inputs} nodes={len(self.nodes)} layers={self.layer_names}>"

    # -- plumbing -------------------------------------------------------------------------------------
    def _check_value(self, v: Any, who: str) -> int:
        last = self.n_inputs + len(self.nodes) - 1
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= int(v) <= last:
            first = "0 = input" if self.n_inputs == 1 else f"0..{self.n_inputs - 1} = inputs"
            raise ValueError(f"{who}: {v!r} is not a value of this graph ({first}, {self.n_inputs}..{last} = "
                             "outputs of the nodes so far)")
        return int(v)

    def _who(self, op: str, name: str | None) -> str:
        return f"layer '{name}' ({op})" if name else f"node {len(self.nodes)} ({op})"

    def _add(self, op: str, inputs: list[int], attrs: dict[str, Any], shape: Sequence[int], name: str | None,
             **extra: Any) -> int:
        shape = tuple(int(s) for s in shape)
        if len(shape) > MAX_RANK:
            raise _unsupported(f"{self._who(op, name)}: output shape {shape} has more than {MAX_RANK} dims")
        self.nodes.append(Node(op, list(inputs), attrs, shape, name, **extra))
        return self.n_inputs + len(self.nodes) - 1

    def _layer_name(self, op: str, name: str | None, default_prefix: str) -> str:
        k = self._counts.get(op, 0) + 1
        self._counts[op] = k
        nm = str(name) if name is not None else f"{default_prefix}{k}"
        if not nm:
            raise ValueError(f"{op} layer {k}: the name must not be empty")
        if nm in self.layer_names:
            raise ValueError(f"duplicate layer name '{nm}' (layers so far: {self.layer_names})")
        return nm

    def _in(self, x: Any, op: str, name: str | None, rank: int | None = None) -> tuple[int, tuple[int, ...], str]:
        who = self._who(op, name)
        v = self._check_value(x, who)
        s = self.shape(v)
        if rank == 3 and len(s) != 3:
            raise _unsupported(f"{who}: input shape {s} is not [C, H, W]")
        if rank == 1 and len(s) != 1:
            raise _unsupported(f"{who}: input shape {s} is not flat (add a flatten before it)")
        return v, s, who

    @staticmethod
    def _weights(who: str, w: Any, b: Any, rank: int) -> tuple[np.ndarray, np.ndarray | None]:
        w = np.array(w, dtype=np.float32)
        b = None if b is None else np.array(b, dtype=np.float32)
        if w.ndim != rank:
            what = "(out, in)" if rank == 2 else "(out_channels, in_channels / groups, kh, kw)"
            raise ValueError(f"{who}: weight must be {rank}-D {what}, got shape {w.shape}")
        if min(w.shape) < 1:
            raise ValueError(f"{who}: weight shape {w.shape} has an empty dimension")
        if b is not None and b.shape != (w.shape[0],):
            raise ValueError(f"{who}: bias {b.shape} does not match {w.shape[0]} outputs")
        if not np.all(np.isfinite(w)) or (b is not None and not np.all(np.isfinite(b))):
            raise ValueError(f"{who}: weights contain NaN or infinity")
        return w, b

    # -- weighted layers ------------------------------------------------------------------------------
    def linear(self, x: int, weight: Any, bias: Any = None, *, name: str | None = None) -> int:
        """``y = W x + b`` over the last axis of the input (a flat one, or [..., in]: format version 5);
        ``weight`` is (out, in) like torch.nn.Linear."""
        nm = self._layer_name("linear", name, "fc")
        v, s, who = self._in(x, "linear", nm)
        w, b = self._weights(who, weight, bias, 2)
        if w.shape[1] != s[-1]:
            hint = f" (it applies to the last axis of the {s} input: flatten it first)" if len(s) > 1 else ""
            raise ValueError(f"{who}: weight {w.shape} expects {w.shape[1]} inputs, the input has {s[-1]}{hint}")
        return self._add("linear", [v], {}, (*s[:-1], w.shape[0]), nm, weight=w, bias=b)

    def embedding(self, ids: int, table: Any, *, name: str | None = None) -> int:
        """Rows of ``table`` (V, D) at the i32 ``ids`` (an i32 input, or a shape op of one): [...] -> [..., D]
        (format version 5). A weighted layer: pruning, sharing and int8 apply to the table."""
        nm = self._layer_name("embedding", name, "embedding")
        v, s, who = self._in(ids, "embedding", nm)
        if self.dtype(v) != "i32":
            raise ValueError(f"{who}: the ids must be an i32 value (a graph input of dtype 'i32'), value {v} is f32")
        w, _ = self._weights(who, table, None, 2)
        return self._add("embedding", [v], {}, (*s, w.shape[1]), nm, weight=w)

    def conv2d(self, x: int, weight: Any, bias: Any = None, *, stride: Any = 1, padding: Any = 0,
               dilation: Any = 1, groups: int = 1, name: str | None = None) -> int:
        """2-D convolution (cross-correlation, as torch) of a [C, H, W] input with zero padding."""
        nm = self._layer_name("conv2d", name, "conv")
        v, s, who = self._in(x, "conv2d", nm, rank=3)
        w, b = self._weights(who, weight, bias, 4)
        o, cg, kh, kw = (int(d) for d in w.shape)
        g = _int(groups, "groups", who, 1)
        c = s[0]
        if c % g or o % g:
            raise ValueError(f"{who}: groups={g} must divide the {c} input and {o} output channels")
        if cg != c // g:
            raise ValueError(f"{who}: weight {tuple(w.shape)} expects {cg * g} input channels (groups={g}), the "
                             f"input has {c}")
        attrs, oh, ow = self._conv_geometry(who, s, kh, kw, stride, padding, dilation)
        attrs["groups"] = g
        return self._add("conv2d", [v], attrs, (o, oh, ow), nm, weight=w, bias=b)

    @staticmethod
    def _conv_geometry(who: str, s: tuple[int, ...], kh: int, kw: int, stride: Any, padding: Any,
                       dilation: Any) -> tuple[dict[str, Any], int, int]:
        """conv2d's stride, padding (4 sides) and dilation attrs for a kh x kw kernel on a [C, H, W] input, and
        the output's OH, OW."""
        _, h, wd = s
        st = _pair(stride, "stride", who, 1)
        dl = _pair(dilation, "dilation", who, 1)
        if isinstance(padding, str):
            if padding == "valid":
                pad = [0, 0, 0, 0]
            elif padding == "same":
                th, tw = dl[0] * (kh - 1), dl[1] * (kw - 1)
                pad = [th // 2, tw // 2, th - th // 2, tw - tw // 2]
            else:
                raise ValueError(f"{who}: padding must be a number, a tuple, 'valid' or 'same', got {padding!r}")
        else:
            pad = _padding4(padding, who)
        oh = conv_out(h, pad[0], pad[2], kh, st[0], dl[0])
        ow = conv_out(wd, pad[1], pad[3], kw, st[1], dl[1])
        if oh < 1 or ow < 1:
            raise ValueError(f"{who}: a {kh}x{kw} kernel (dilation {dl}) does not fit the {h}x{wd} input padded "
                             f"by {pad} (top, left, bottom, right)")
        return {"stride": st, "padding": pad, "dilation": dl}, oh, ow

    def blinear(self, x: int, signs: Any, alphas: Any = None, *, bias: Any = None, thresholds: Any = None,
                input: int | None = None, name: str | None = None) -> int:
        """A binary linear layer (FORMAT.md 2.6) on a flat input: ``signs`` (out, in) of +1 / -1, ``alphas`` (out,)
        finite >= 0 (default 1), so W = alphas[:, None] * signs.

        ``input``: 0 takes the sign of x (XNOR-popcount), 1 takes x as it is (binary weights, real
        activations); default 0 when x is binary (:meth:`is_binary`), else 1. With ``thresholds`` (out,)
        integers in 0..in + 1 the output is +1 where the popcount ``(dot + in) / 2`` is >= T, else -1 (needs
        input 0); otherwise it is ``alphas * dot + bias`` (bias optional)."""
        from .binarize import MAX_BINARY_COLS, check_alphas, check_signs

        nm = self._layer_name("blinear", name, "bfc")
        v, s, who = self._in(x, "blinear", nm, rank=1)
        sg = check_signs(signs, who)
        rows, cols = sg.shape
        if cols != s[0]:
            raise ValueError(f"{who}: signs {sg.shape} expect {cols} inputs, the input has {s[0]}")
        if cols > MAX_BINARY_COLS:
            raise ValueError(f"{who}: {cols} inputs; a binary layer has at most {MAX_BINARY_COLS}")
        a = np.ones(rows, np.float32) if alphas is None else check_alphas(alphas, rows, who)
        mode, out, second = self._binary_output(v, who, input, thresholds, bias, rows, cols, half=False)
        w = (a[:, None] * sg.astype(np.float32)).astype(np.float32)
        return self._add("blinear", [v], {"input": int(mode), "output": out}, (rows,), nm, weight=w,
                         bias=second if out == 0 else None,
                         meta={"signs": sg, "alphas": a, "thresholds": second if out == 1 else None})

    def _binary_output(self, v: int, who: str, input: int | None, thresholds: Any, bias: Any, rows: int, k: int,
                       half: bool) -> tuple[int, int, np.ndarray | None]:
        """A binary layer's (input mode, output mode, second tensor): input 0 when ``v`` holds signs (unless
        given); thresholds (output 1, integers or, with ``half``, halves in 0..K + 1) or a bias (output 0)."""
        from .binarize import check_thresholds

        mode = (0 if self.is_binary(v) else 1) if input is None else input
        if isinstance(mode, bool) or mode not in (0, 1):
            raise ValueError(f"{who}: input must be 0 (the sign of x: XNOR-popcount) or 1 (x as it is), got {input!r}")
        if thresholds is not None and bias is not None:
            raise ValueError(f"{who}: give thresholds (a +-1 output) or a bias (a real output), not both")
        if thresholds is not None:
            if mode != 0:
                raise ValueError(f"{who}: thresholds (a +-1 output) need input 0 (binary inputs)")
            return mode, 1, check_thresholds(thresholds, rows, k, who, half=half)
        if bias is None:
            return mode, 0, None
        second = np.asarray(bias, np.float32)
        if second.shape != (rows,) or not np.isfinite(second).all():
            raise ValueError(f"{who}: bias must be {rows} finite numbers, got shape {second.shape}")
        return mode, 0, second

    def bconv2d(self, x: int, signs: Any, alphas: Any = None, *, bias: Any = None, thresholds: Any = None,
                stride: Any = 1, padding: Any = 0, dilation: Any = 1, input: int | None = None,
                name: str | None = None) -> int:
        """A binary convolution (FORMAT.md 2.6, groups 1) of a [C, H, W] input: ``signs`` (O, C, kh, kw) of +1 /
        -1, ``alphas`` (O,) finite >= 0 (default 1); stride, padding and dilation as :meth:`conv2d`'s.

        ``input`` as :meth:`blinear`'s (0: the sign of x, XNOR-popcount; 1: x as it is). Each output position
        sums over its window's taps inside the input (a tap in the zero padding contributes 0), so with
        ``thresholds`` (O,), multiples of 1/2 in 0..K + 1 (K = C * kh * kw), the output is +1 where
        ``dot + K >= 2 T`` (needs input 0); otherwise it is ``alphas * dot + bias`` (bias optional)."""
        from .binarize import MAX_BINARY_COLS, check_alphas, check_signs

        nm = self._layer_name("bconv2d", name, "bconv")
        v, s, who = self._in(x, "bconv2d", nm, rank=3)
        sg = check_signs(signs, who, ndim=4)
        rows, c, kh, kw = (int(d) for d in sg.shape)
        k = c * kh * kw
        if c != s[0]:
            raise ValueError(f"{who}: signs {sg.shape} expect {c} input channels, the input has {s[0]} (a binary "
                             "convolution has groups 1)")
        if k > MAX_BINARY_COLS:
            raise ValueError(f"{who}: {k} weights per output channel; a binary layer has at most {MAX_BINARY_COLS}")
        attrs, oh, ow = self._conv_geometry(who, s, kh, kw, stride, padding, dilation)
        a = np.ones(rows, np.float32) if alphas is None else check_alphas(alphas, rows, who)
        mode, out, second = self._binary_output(v, who, input, thresholds, bias, rows, k, half=True)
        w = (a[:, None, None, None] * sg.astype(np.float32)).astype(np.float32)
        attrs.update(groups=1, input=int(mode), output=out)
        return self._add("bconv2d", [v], attrs, (rows, oh, ow), nm, weight=w, bias=second if out == 0 else None,
                         meta={"signs": sg, "alphas": a, "thresholds": second if out == 1 else None})

    # -- elementwise ----------------------------------------------------------------------------------
    def sign(self, x: int, scale: float = 1.0, shift: float = 0.0, *, name: str | None = None) -> int:
        """+1 where ``x * scale + shift >= 0`` (each operation rounded to float32), else -1 (a NaN gives -1)."""
        v, s, who = self._in(x, "sign", name)
        sc, sh = float(np.float32(scale)), float(np.float32(shift))
        if not (math.isfinite(sc) and math.isfinite(sh)):
            raise ValueError(f"{who}: scale and shift must be finite, got {scale!r}, {shift!r}")
        return self._add("sign", [v], {"scale": sc, "shift": sh}, s, name)

    # -- transformer ops (format version 5) -------------------------------------------------------------
    def _unary(self, op: str, x: int, name: str | None, **attrs: Any) -> int:
        v, s, _ = self._in(x, op, name)
        return self._add(op, [v], attrs, s, name)

    def gelu(self, x: int, approximate: str = "none", *, name: str | None = None) -> int:
        """torch's GELU: ``approximate`` "none" (the erf form) or "tanh"."""
        if approximate not in ("none", "tanh"):
            raise ValueError(f"{self._who('gelu', name)}: approximate must be 'none' or 'tanh', got {approximate!r}")
        return self._unary("gelu", x, name, approximate=int(approximate == "tanh"))

    def silu(self, x: int, *, name: str | None = None) -> int:
        return self._unary("silu", x, name)

    def sigmoid(self, x: int, *, name: str | None = None) -> int:
        return self._unary("sigmoid", x, name)

    def tanh(self, x: int, *, name: str | None = None) -> int:
        return self._unary("tanh", x, name)

    def leaky_relu(self, x: int, slope: float = 0.01, *, name: str | None = None) -> int:
        sl = float(np.float32(slope))
        if not math.isfinite(sl):
            raise ValueError(f"{self._who('leaky_relu', name)}: slope must be finite, got {slope!r}")
        return self._unary("leaky_relu", x, name, slope=sl)

    def layer_norm(self, x: int, weight: Any = None, bias: Any = None, eps: float = 1e-5, *,
                   name: str | None = None) -> int:
        """torch.nn.LayerNorm over the last axis (N): optional ``weight`` and ``bias`` of N values."""
        v, s, who = self._in(x, "layer_norm", name)
        e = float(np.float32(eps))
        if not (math.isfinite(e) and e >= 0):
            raise ValueError(f"{who}: eps must be finite and >= 0, got {eps!r}")
        w = None if weight is None else np.array(weight, np.float32)
        b = None if bias is None else np.array(bias, np.float32)
        for what, t in (("weight", w), ("bias", b)):
            if t is not None and (t.shape != (s[-1],) or not np.isfinite(t).all()):
                raise ValueError(f"{who}: {what} must be {s[-1]} finite values (the last axis), got shape {t.shape}")
        if b is not None and w is None:
            w = np.ones(s[-1], np.float32)
        return self._add("layer_norm", [v], {"eps": e}, s, name, weight=w, bias=b)

    def _arith(self, op: str, a: int, b: Any, name: str | None) -> int:
        va, sa, who = self._in(a, op, name)
        if isinstance(b, (int, np.integer)) and not isinstance(b, bool):
            vb = self._check_value(b, who)
            sb, const = self.shape(vb), None
        else:  # a constant operand: a number or an array, the same for every sample
            const = np.array(b, np.float32)
            if const.ndim == 0:
                const = const.reshape(1)
            if const.ndim > MAX_RANK:
                raise ValueError(f"{who}: a constant operand has at most {MAX_RANK} dims, got shape {const.shape}")
            sb = const.shape
        out = broadcast_shapes(sa, sb, who)
        if const is None:
            if op == "add" and sa == sb:
                return self._add("add", [va, vb], {}, sa, name)
            return self._add(op, [va, vb], {}, out, name)
        return self._add(op, [va], {}, out, name, weight=const)

    def sub(self, a: int, b: Any, *, name: str | None = None) -> int:
        """``a - b``: ``b`` a value or a constant (a number or an array), broadcast as numpy."""
        return self._arith("sub", a, b, name)

    def mul(self, a: int, b: Any, *, name: str | None = None) -> int:
        """``a * b``, as :meth:`sub`."""
        return self._arith("mul", a, b, name)

    def div(self, a: int, b: Any, *, name: str | None = None) -> int:
        """``a / b``, as :meth:`sub`."""
        return self._arith("div", a, b, name)

    def matmul(self, a: int, b: int, *, name: str | None = None) -> int:
        """``a @ b`` of two values: [..., M, K] @ [..., K, N] -> [..., M, N], leading dims broadcast."""
        va, sa, who = self._in(a, "matmul", name)
        vb = self._check_value(b, who)
        sb = self.shape(vb)
        if len(sa) < 2 or len(sb) < 2:
            raise _unsupported(f"{who}: operands {sa} and {sb} must have rank 2 or more")
        if sa[-1] != sb[-2]:
            raise ValueError(f"{who}: {sa} @ {sb}: the inner dimensions differ")
        out = (*broadcast_shapes(sa[:-2], sb[:-2], who), sa[-2], sb[-1])
        return self._add("matmul", [va, vb], {}, out, name)

    def transpose(self, x: int, perm: Sequence[int], *, name: str | None = None) -> int:
        """The per-sample axes permuted: output axis i is input axis perm[i]."""
        v, s, who = self._in(x, "transpose", name)
        p = [int(a) + len(s) if int(a) < 0 else int(a) for a in perm]
        if sorted(p) != list(range(len(s))):
            raise ValueError(f"{who}: perm {list(perm)} is not a permutation of the {len(s)} axes of {s}")
        return self._add("transpose", [v], {"perm": p + [0] * (MAX_RANK - len(p))}, [s[a] for a in p], name)

    def slice(self, x: int, axis: int, start: int, end: int, step: int = 1, *, name: str | None = None) -> int:
        """Elements start, start + step, ... < end along per-sample ``axis`` (python's rules for negative and
        out-of-range bounds; the slice must not be empty)."""
        v, s, who = self._in(x, "slice", name)
        ax = _int(axis + len(s) if isinstance(axis, (int, np.integer)) and axis < 0 else axis, "axis", who)
        if ax >= len(s):
            raise ValueError(f"{who}: axis {axis} out of range for shape {s}")
        st = _int(step, "step", who, 1)
        lo, hi, _ = builtins_slice(start, end).indices(s[ax])
        if lo >= hi:
            raise ValueError(f"{who}: {start}:{end} is empty along axis {ax} of {s}")
        out = list(s)
        out[ax] = len(range(lo, hi, st))
        return self._add("slice", [v], {"axis": ax, "start": lo, "end": hi, "step": st}, out, name)

    def upsample_nearest(self, x: int, scale: Any, *, name: str | None = None) -> int:
        """[C, H, W] -> [C, H * sh, W * sw], each pixel repeated (integer scales)."""
        v, s, who = self._in(x, "upsample_nearest", name, rank=3)
        sc = _pair(scale, "scale", who, 1)
        return self._add("upsample_nearest", [v], {"scale": sc}, (s[0], s[1] * sc[0], s[2] * sc[1]), name)

    def adaptive_avg_pool2d(self, x: int, output_size: Any, *, name: str | None = None) -> int:
        """torch's adaptive average pool of a [C, H, W] input to [C, oh, ow]; (1, 1) is :meth:`global_avg_pool`."""
        v, s, who = self._in(x, "adaptive_avg_pool2d", name, rank=3)
        o = _pair(output_size, "output_size", who, 1)
        if o == [1, 1]:
            return self.global_avg_pool(x, name=name)
        return self._add("adaptive_avg_pool2d", [v], {"output_size": o}, (s[0], *o), name)

    def relu(self, x: int, *, name: str | None = None) -> int:
        v, s, _ = self._in(x, "relu", name)
        return self._add("relu", [v], {}, s, name)

    def clamp(self, x: int, min: float = -math.inf, max: float = math.inf, *,
              name: str | None = None) -> int:
        """``min(max(x, min), max)``; the bounds are stored as float32 (+-inf allowed)."""
        v, s, who = self._in(x, "clamp", name)
        lo, hi = (float(np.float32(b if b is not None else d)) for b, d in ((min, -math.inf), (max, math.inf)))
        if math.isnan(lo) or math.isnan(hi) or lo > hi:
            raise ValueError(f"{who}: needs min <= max (no NaN), got min={min!r}, max={max!r}")
        return self._add("clamp", [v], {"min": lo, "max": hi}, s, name)

    def relu6(self, x: int, *, name: str | None = None) -> int:
        return self.clamp(x, 0.0, 6.0, name=name)

    def hardtanh(self, x: int, min_val: float = -1.0, max_val: float = 1.0, *, name: str | None = None) -> int:
        return self.clamp(x, min_val, max_val, name=name)

    def softmax(self, x: int, axis: int = -1, *, name: str | None = None) -> int:
        """Softmax along per-sample ``axis`` (a flat input: the softmax op of version 1; else softmax_axis)."""
        v, s, who = self._in(x, "softmax", name)
        ax = axis + len(s) if axis < 0 else axis
        if not 0 <= ax < len(s):
            raise ValueError(f"{who}: axis {axis} out of range for shape {s}")
        if len(s) == 1:
            return self._add("softmax", [v], {}, s, name)
        return self._add("softmax_axis", [v], {"axis": ax}, s, name)

    def add(self, a: int, b: Any, *, name: str | None = None) -> int:
        """``a + b``: two values of the same shape (a residual connection), or (format version 5) shapes that
        broadcast as numpy's, or ``b`` a constant (a number or an array)."""
        return self._arith("add", a, b, name)

    # -- shapes ---------------------------------------------------------------------------------------
    def flatten(self, x: int, *, name: str | None = None) -> int:
        v, s, _ = self._in(x, "flatten", name)
        return self._add("flatten", [v], {}, (math.prod(s),), name)

    def reshape(self, x: int, shape: Sequence[int], *, name: str | None = None) -> int:
        """Same elements, new per-sample shape (1..4 dims; one may be -1)."""
        v, s, who = self._in(x, "reshape", name)
        try:
            dims = [int(d) for d in shape]
        except (TypeError, ValueError):
            raise ValueError(f"{who}: shape must be a sequence of ints, got {shape!r}") from None
        n = math.prod(s)
        if dims.count(-1) == 1:
            rest = math.prod(d for d in dims if d != -1)
            if rest > 0 and n % rest == 0:
                dims[dims.index(-1)] = n // rest
        if not 1 <= len(dims) <= MAX_RANK or any(d < 1 for d in dims) or math.prod(dims) != n:
            raise ValueError(f"{who}: cannot reshape {s} ({n} elements) to {list(shape)} (1..{MAX_RANK} positive "
                             "dims, the same number of elements)")
        return self._add("reshape", [v], {"shape": dims}, dims, name)

    def concat(self, values: Sequence[int], axis: int = 0, *, name: str | None = None) -> int:
        """Concatenation along per-sample ``axis`` (0 = channels of [C, H, W]; negative counts from the
        end). More than 16 values become nested concats."""
        if isinstance(values, (int, np.integer)) or len(values) < 2:
            raise ValueError(f"{self._who('concat', name)}: needs at least 2 values, got {values!r}")
        vs = [self._check_value(x, self._who("concat", name)) for x in values]
        shapes = [self.shape(x) for x in vs]
        who = self._who("concat", name)
        rank = len(shapes[0])
        ax = _int(axis + rank if isinstance(axis, (int, np.integer)) and axis < 0 else axis, "axis", who)
        if ax >= rank:
            raise ValueError(f"{who}: axis {axis} out of range for rank-{rank} values")
        for s in shapes[1:]:
            if len(s) != rank or any(a != b for i, (a, b) in enumerate(zip(s, shapes[0], strict=True)) if i != ax):
                raise ValueError(f"{who}: shapes {shapes} differ outside axis {ax}")
        while len(vs) > MAX_CONCAT_INPUTS:
            head = self.concat(vs[:MAX_CONCAT_INPUTS], ax)
            vs = [head, *vs[MAX_CONCAT_INPUTS:]]
        out = list(self.shape(vs[0]))
        out[ax] = sum(self.shape(x)[ax] for x in vs)
        return self._add("concat", vs, {"axis": ax}, out, name)

    # -- pooling --------------------------------------------------------------------------------------
    def _pool(self, op: str, x: int, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool,
              name: str | None, extra: dict[str, Any]) -> int:
        v, s, who = self._in(x, op, name, rank=3)
        k = _pair(kernel_size, "kernel_size", who, 1)
        st = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else _pair(stride, "stride",
                                                                                                   who, 1)
        pad = _padding4(padding, who)
        if pad[0] >= k[0] or pad[2] >= k[0] or pad[1] >= k[1] or pad[3] >= k[1]:
            raise ValueError(f"{who}: padding {pad} (top, left, bottom, right) must be smaller than the kernel {k} "
                             "on each side")
        c, h, w = s
        oh = pool_out(h, pad[0], pad[2], k[0], st[0], bool(ceil_mode))
        ow = pool_out(w, pad[1], pad[3], k[1], st[1], bool(ceil_mode))
        if oh < 1 or ow < 1:
            raise ValueError(f"{who}: a {k[0]}x{k[1]} window does not fit the {h}x{w} input padded by {pad}")
        attrs = {"kernel": k, "stride": st, "padding": pad, "ceil_mode": int(bool(ceil_mode)), **extra}
        return self._add(op, [v], attrs, (c, oh, ow), name)

    def max_pool2d(self, x: int, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False, *,
                   name: str | None = None) -> int:
        """Max over windows (padding never wins); ``stride`` defaults to the kernel, as in torch."""
        return self._pool("max_pool2d", x, kernel_size, stride, padding, ceil_mode, name, {})

    def avg_pool2d(self, x: int, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                   count_include_pad: bool = True, *, name: str | None = None) -> int:
        """Mean over windows; the divisor counts the padding (``count_include_pad``) or not, as torch."""
        return self._pool("avg_pool2d", x, kernel_size, stride, padding, ceil_mode, name,
                          {"count_include_pad": int(bool(count_include_pad))})

    def global_avg_pool(self, x: int, *, name: str | None = None) -> int:
        """[C, H, W] -> [C, 1, 1] (follow with flatten for a linear head)."""
        v, s, _ = self._in(x, "global_avg_pool", name, rank=3)
        return self._add("global_avg_pool", [v], {}, (s[0], 1, 1), name)

    # -- checks ---------------------------------------------------------------------------------------
    def check_complete(self) -> None:
        """Raises ValueError if the graph is empty or a node's output is never read (dead code)."""
        if not self.nodes:
            raise ValueError("a model needs at least one layer")
        used = {v for n in self.nodes for v in n.inputs} | set(self.outputs)
        for i in range(len(self.nodes)):
            if self.n_inputs + i not in used:
                raise ValueError(f"{self.node_label(i)}: its output (value {self.n_inputs + i}) is never read and is "
                                 "not a graph output")
