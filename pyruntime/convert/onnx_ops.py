"""The ONNX ops without weights, mixed into the graph walker of :mod:`.onnx_capture`: activation functions,
arithmetic with broadcasting and constants, softmax and layer norm, pools, nearest resizing, the shape ops
(reshape, flatten, transpose, squeeze / unsqueeze, concat, split, slice, expand, gather) and the no-ops
(Identity, Dropout, Cast).

Each ``_op_<OpType>(node, ins)`` gets the node and its inputs (:class:`~.onnx_capture.Act` activations,
:class:`~.onnx_capture.Const` constants, None for an omitted optional input) and returns the value of its
first output, or a list of one per output. Axes are ONNX's (batch included): an op along the batch dim is
refused, naming the node.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _core

_INT64_MAX = 2 ** 63 - 1


def _unsupported(msg: str) -> Exception:
    return _core.UnsupportedError(msg)


def _label(node: Any) -> str:
    from .onnx_capture import node_label

    return node_label(node)


def _number_or(c: np.ndarray) -> Any:
    """A one-element constant as a number (a scalar operand), else the float32 array."""
    c = np.asarray(c, np.float32)
    return float(c.reshape(-1)[0]) if c.size == 1 and c.ndim <= 1 else c


class Marker:
    """A value that is a step of a pattern becoming one op further on (a Pad before a Conv, the steps of a
    quantization in :mod:`.onnx_quant`), not a value of the graph: any other reader of one is refused, naming it.
    ``x`` is the activation it starts from, ``extra`` what the op it becomes needs."""

    what = "a step of a pattern"

    def __init__(self, node: Any, x: Any = None, **extra: Any) -> None:
        self.node, self.x, self.extra = node, x, extra

    def describe(self) -> str:
        return f"the output of {_label(self.node)}, {self.what}"


class PaddedAct(Marker):
    what = "a Pad of an image (only read by the Conv or pool whose padding it becomes)"


class _Base:
    """What the op mixins read of the graph walker (:class:`~.onnx_capture._Walker` defines each): its state and
    helpers."""

    g: Any                      # the Graph being built
    values: dict[str, Any]      # ONNX value name -> Act / Const / Marker
    batch: int                  # the batch's size, or SYMBOLIC_BATCH
    opset: int                  # the model's default-domain opset
    cap: Any                    # the OnnxCapture
    onnx: Any                   # the onnx module
    readers: dict[str, list[int]]
    graph_outputs: list[str]

    def act(self, node: Any, k: int = 0) -> Any:
        raise NotImplementedError

    def vid(self, a: Any, node: Any = None) -> int:
        raise NotImplementedError

    def new(self, v: int) -> Any:
        raise NotImplementedError

    def const(self, node: Any, name: str, what: str) -> Any:
        raise NotImplementedError

    def ints(self, node: Any, k: int, attr: str | None = None, default: Any = None) -> Any:
        raise NotImplementedError

    def attr(self, node: Any, name: str, default: Any = None) -> Any:
        raise NotImplementedError

    def axis(self, node: Any, axis: int, rank: int, what: str = "axis") -> int:
        raise NotImplementedError

    def per_sample_const(self, node: Any, c: np.ndarray, rank: int) -> np.ndarray:
        raise NotImplementedError

    def spatial_pads(self, node: Any, spatial: Any, k: Any, strides: Any, dil: Any) -> list[int]:
        raise NotImplementedError

    def emit_linear(self, *a: Any, **k: Any) -> None:
        raise NotImplementedError

    def emit_conv(self, *a: Any, **k: Any) -> None:
        raise NotImplementedError

    def single_reader(self, name: str) -> Any:
        raise NotImplementedError

    def layer_name(self, node: Any, weight: Any, bias: Any, default: str) -> str:
        raise NotImplementedError

    def _layer_done(self, node: Any, name: str, v: int, a: Any) -> None:
        raise NotImplementedError

    def _fold(self, node: Any, values: list[Any]) -> list[Any]:
        raise NotImplementedError

    def describe(self, v: Any) -> str:
        raise NotImplementedError

    def _quant_mul(self, node: Any, ins: list[Any]) -> Any:
        raise NotImplementedError

    def _quant_cast(self, node: Any, ins: list[Any]) -> Any:
        raise NotImplementedError


class _OnnxOps(_Base):
    """The walker's methods for the ops without weights."""

    def _act_value(self, a: Any) -> Any:
        from .onnx_capture import Act

        return a if isinstance(a, Act) else None

    def _as_act(self, v: int, shape: Any) -> Any:
        from .onnx_capture import Act

        return Act(v, tuple(int(d) for d in shape))

    # -- elementwise ----------------------------------------------------------------------------------------
    def _unary(self, node: Any, fn: Any, *args: Any, **kw: Any) -> Any:
        """An elementwise op: on the graph value as it is (a pending reshape stays pending)."""
        x = self.act(node, 0)
        return self._as_act(fn(x.v, *args, **kw), x.shape)

    def _op_Relu(self, node: Any, ins: list[Any]) -> Any:
        return self._unary(node, self.g.relu)

    def _op_Sigmoid(self, node: Any, ins: list[Any]) -> Any:
        return self._unary(node, self.g.sigmoid)

    def _op_Tanh(self, node: Any, ins: list[Any]) -> Any:
        return self._unary(node, self.g.tanh)

    def _op_LeakyRelu(self, node: Any, ins: list[Any]) -> Any:
        return self._unary(node, self.g.leaky_relu, float(self.attr(node, "alpha", 0.01)))

    def _op_Gelu(self, node: Any, ins: list[Any]) -> Any:
        approximate = self.attr(node, "approximate", "none")
        return self._unary(node, self.g.gelu, approximate)

    def _op_Clip(self, node: Any, ins: list[Any]) -> Any:
        bounds = []
        for k, attr, default in ((1, "min", -math.inf), (2, "max", math.inf)):
            if len(node.input) > k and node.input[k]:
                c = np.asarray(self.const(node, node.input[k], attr).value)
                if c.size != 1:
                    raise _unsupported(f"{_label(node)}: a {attr} of shape {c.shape}; only a number is supported")
                bounds.append(float(c.reshape(-1)[0]))
            else:
                bounds.append(float(self.attr(node, attr, default)))
        return self._unary(node, self.g.clamp, bounds[0], bounds[1])

    def _op_HardSigmoid(self, node: Any, ins: list[Any]) -> Any:
        x = self.act(node, 0)
        v = self._hard_sigmoid(node, self.vid(x, node), float(self.attr(node, "alpha", 0.2)),
                               float(self.attr(node, "beta", 0.5)))
        return self._as_act(v, x.shape)

    def _hard_sigmoid(self, node: Any, v: int, alpha: float, beta: float) -> int:
        return self.g.clamp(self.g.add(self.g.mul(v, alpha), beta), 0.0, 1.0)

    def _op_HardSwish(self, node: Any, ins: list[Any]) -> Any:
        x = self.act(node, 0)
        v = self.vid(x, node)
        return self._as_act(self.g.mul(v, self._hard_sigmoid(node, v, 1.0 / 6.0, 0.5)), x.shape)

    def _op_Neg(self, node: Any, ins: list[Any]) -> Any:
        return self._unary(node, self.g.mul, -1.0)

    def _op_Pow(self, node: Any, ins: list[Any]) -> Any:
        x = self.act(node, 0)
        e = np.asarray(self.const(node, node.input[1], "exponent").value)
        p = float(e.reshape(-1)[0]) if e.size == 1 else None
        if p not in (1.0, 2.0, 3.0):
            raise _unsupported(f"{_label(node)}: exponent {e.tolist() if e.size < 5 else e.shape}; only x^1, x^2 "
                               "and x^3 (as products) are supported")
        v = self.vid(x, node)
        out = v
        for _ in range(int(p) - 1):
            out = self.g.mul(out, v)
        return self._as_act(out, x.shape)

    # -- arithmetic -----------------------------------------------------------------------------------------
    def _arith(self, node: Any, ins: list[Any], op: str) -> Any:
        from .onnx_capture import Act, Const

        a, b = ins[0], ins[1]
        if isinstance(a, Act) and isinstance(b, Act):
            ra, rb = len(a.shape), len(b.shape)
            if ra != rb:
                raise _unsupported(f"{_label(node)} of activations of ranks {ra + 1} and {rb + 1}: broadcasting "
                                   "would align the batch dim with another")
            v = getattr(self.g, op)(self.vid(a, node), self.vid(b, node))
            return self.new(v)
        if isinstance(a, Act) and isinstance(b, Const):
            if op == "div" and b.value.dtype.kind in "iu" and self.g.dtype(a.v) == "i32":
                raise _unsupported(f"{_label(node)}: an integer division of integer inputs is not supported")
            c = self.per_sample_const(node, b.value, len(a.shape) + 1)
            return self._const_result(node, a, getattr(self.g, op)(self.vid(a, node), _number_or(c)))
        if isinstance(a, Const) and isinstance(b, Act):
            c = self.per_sample_const(node, a.value, len(b.shape) + 1)
            x = self.vid(b, node)
            if op in ("add", "mul"):
                return self._const_result(node, b, getattr(self.g, op)(x, _number_or(c)))
            if op == "sub":  # c - x == (-x) + c, exactly
                return self._const_result(node, b, self.g.add(self.g.mul(x, -1.0), _number_or(c)))
            raise _unsupported(f"{_label(node)}: a constant divided by an activation is not supported")
        raise _unsupported(f"{_label(node)}: unsupported operands {self.describe(a)} and "
                           f"{self.describe(b)}")

    def _const_result(self, node: Any, a: Any, v: int) -> Any:
        """The result of an activation and a constant: the broadcast shape (a per-sample scalar stays one)."""
        s = tuple(self.g.shape(v))
        return self._as_act(v, () if not a.shape and s == (1,) else s)

    def _op_Add(self, node: Any, ins: list[Any]) -> Any:
        return self._arith(node, ins, "add")

    def _op_Sub(self, node: Any, ins: list[Any]) -> Any:
        return self._arith(node, ins, "sub")

    def _op_Mul(self, node: Any, ins: list[Any]) -> Any:
        q = self._quant_mul(node, ins)
        return q if q is not None else self._arith(node, ins, "mul")

    def _op_Div(self, node: Any, ins: list[Any]) -> Any:
        return self._arith(node, ins, "div")

    # -- softmax, layer norm --------------------------------------------------------------------------------
    def _op_Softmax(self, node: Any, ins: list[Any]) -> Any:
        x = self.act(node, 0)
        rank = len(x.shape) + 1
        opset = self.opset
        axis = int(self.attr(node, "axis", -1 if opset >= 13 else 1))
        ax = self.axis(node, axis, rank)
        v = self.vid(x, node)
        if opset >= 13 or ax == rank - 2:
            return self._as_act(self.g.softmax(v, ax), x.shape)
        # opset < 13: over the trailing dims from axis, as one flat vector
        lead, tail = x.shape[:ax], math.prod(x.shape[ax:])
        flat = self.g.reshape(v, (*lead, tail)) if lead else self.g.flatten(v)
        return self._as_act(self.g.softmax(flat, len(lead)), x.shape)

    def _op_LayerNormalization(self, node: Any, ins: list[Any]) -> Any:
        x = self.act(node, 0)
        rank = len(x.shape) + 1
        axis = int(self.attr(node, "axis", -1))
        if (axis + rank if axis < 0 else axis) != rank - 1 or self._extra_outputs_read(node):
            raise _unsupported(f"{_label(node)} over axis {axis} of a rank-{rank} value: only a layer norm over the "
                               "last axis (without its mean / inverse-deviation outputs) is supported")
        n = x.shape[-1]
        w = np.asarray(self.const(node, node.input[1], "scale").value, np.float32)
        b = (np.asarray(self.const(node, node.input[2], "bias").value, np.float32)
             if len(node.input) > 2 and node.input[2] else None)
        w = np.broadcast_to(w.reshape(-1), (n,)) if w.size == 1 else w.reshape(-1)
        b = None if b is None else (np.broadcast_to(b.reshape(-1), (n,)) if b.size == 1 else b.reshape(-1))
        v = self.g.layer_norm(self.vid(x, node), w, b, float(self.attr(node, "epsilon", 1e-5)))
        return self._as_act(v, x.shape)

    # -- pools ----------------------------------------------------------------------------------------------
    def _image(self, node: Any, x: Any) -> tuple[int, bool]:
        """The graph value of a 2-D image [C, H, W], or of a 1-D signal [C, L] as [C, 1, L] (then True)."""
        if len(x.shape) == 3:
            return self.vid(x, node), False
        if len(x.shape) == 2:
            img = (x.shape[0], 1, x.shape[1])
            return (x.v if self.g.shape(x.v) == img else self.g.reshape(self.vid(x, node), img)), True
        raise _unsupported(f"{_label(node)} on a per-sample shape {x.shape}: only 1-D [C, L] and 2-D [C, H, W] "
                           "inputs are supported")

    def _back(self, v: int, one_d: bool) -> Any:
        """A pool's result; a 1-D one stays [C, 1, L] in the graph (the reshape to [C, L] pending)."""
        s = self.g.shape(v)
        return self._as_act(v, (s[0], s[2])) if one_d else self.new(v)

    def padded_input(self, node: Any) -> tuple[Any, list[int] | None]:
        """Input 0 of a Conv or pool, and the pads [begin..., end...] of the Pad before it (None without one)."""
        v = self.values.get(node.input[0])
        if isinstance(v, PaddedAct):
            if self.attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
                raise _unsupported(f"{_label(node)} with auto_pad {self.attr(node, 'auto_pad')} after a Pad")
            return v.x, v.extra["pads"]
        return self.act(node, 0), None

    def _op_Pad(self, node: Any, ins: list[Any]) -> Any:
        """A constant Pad of an image's height and width that a Conv, an AveragePool (zeros) or a MaxPool (-inf)
        reads alone: it becomes their padding (older exporters write avg_pool2d's padding so)."""
        x = self.act(node, 0)
        rank = len(x.shape) + 1
        mode = self.attr(node, "mode", "constant")
        pads = self.ints(node, 1, "pads") or self.attr(node, "paddings")
        value = 0.0
        if len(node.input) > 2 and node.input[2]:
            value = float(np.asarray(self.const(node, node.input[2], "constant value").value).reshape(-1)[0])
        else:
            value = float(self.attr(node, "value", 0.0))
        reader = self.single_reader(node.output[0])
        ok_reader = reader is not None and (
            (reader.op_type in ("Conv", "AveragePool") and value == 0.0) or
            (reader.op_type == "MaxPool" and value <= -3.4e38))
        if mode != "constant" or pads is None or len(pads) != 2 * rank or rank not in (3, 4) or \
                (len(node.input) > 3 and node.input[3]) or any(p < 0 for p in pads) or \
                any(pads[i] or pads[rank + i] for i in (0, 1)) or not ok_reader:
            raise _unsupported(f"{_label(node)} (mode {mode}, pads {pads}, value {value}): only a constant Pad of the "
                               "spatial dims read by one Conv or AveragePool (zeros) or MaxPool (-inf), which "
                               "becomes its padding, is supported")
        return PaddedAct(node, x, pads=[int(p) for p in pads[2:rank] + pads[rank + 2:]])

    def _pool(self, node: Any, op: str) -> Any:
        x, extra = self.padded_input(node)
        if self._extra_outputs_read(node):
            raise _unsupported(f"{_label(node)} with its indices output; only the pooled values are supported")
        v, one_d = self._image(node, x)
        k = [int(d) for d in self.attr(node, "kernel_shape")]
        n = len(k)
        strides = [int(d) for d in self.attr(node, "strides", [1] * n)]
        dil = [int(d) for d in self.attr(node, "dilations", [1] * n)]
        if any(d != 1 for d in dil):
            raise _unsupported(f"{_label(node)} with dilations {dil}; only dilation 1 is supported")
        pads = self.spatial_pads(node, x.shape[1:], k, strides, dil)
        include = bool(self.attr(node, "count_include_pad", 0))
        if extra is not None:  # the Pad's zeros count as inputs
            if op == "avg" and any(pads) and not include:
                raise _unsupported(f"{_label(node)} with its own pads {pads} and count_include_pad 0 after a Pad")
            pads, include = [p + e for p, e in zip(pads, extra, strict=True)], True
        ceil = bool(self.attr(node, "ceil_mode", 0))
        if one_d:
            k, strides, pads = [1, *k], [1, *strides], [0, pads[0], 0, pads[1]]
        if op == "max":
            return self._back(self.g.max_pool2d(v, k, strides, pads, ceil), one_d)
        return self._back(self.g.avg_pool2d(v, k, strides, pads, ceil, include), one_d)

    def _op_MaxPool(self, node: Any, ins: list[Any]) -> Any:
        return self._pool(node, "max")

    def _op_AveragePool(self, node: Any, ins: list[Any]) -> Any:
        return self._pool(node, "avg")

    def _op_GlobalAveragePool(self, node: Any, ins: list[Any]) -> Any:
        x = self.act(node, 0)
        v, one_d = self._image(node, x)
        return self._back(self.g.global_avg_pool(v), one_d)

    def _op_GlobalMaxPool(self, node: Any, ins: list[Any]) -> Any:
        x = self.act(node, 0)
        v, one_d = self._image(node, x)
        _, h, w = self.g.shape(v)
        return self._back(self.g.max_pool2d(v, (h, w)), one_d)

    def _op_ReduceMean(self, node: Any, ins: list[Any]) -> Any:
        """The mean over the spatial axes (2, 3) of an image: a global average pool."""
        x = self.act(node, 0)
        rank = len(x.shape) + 1
        axes = self.ints(node, 1, "axes")
        keep = int(self.attr(node, "keepdims", 1))
        if rank != 4 or axes is None or sorted(a % rank for a in axes) != [2, 3]:
            raise _unsupported(f"{_label(node)} over axes {axes} of a rank-{rank} value: only the mean over the "
                               "spatial axes (2, 3) of an image, or a decomposed layer norm, is supported")
        v = self.g.global_avg_pool(self.vid(x, node))
        return self.new(v) if keep else self._as_act(v, (x.shape[0],))

    # -- resizing -------------------------------------------------------------------------------------------
    def _nearest(self, node: Any, x: Any, scales: list[float]) -> Any:
        if len(x.shape) != 3 or len(scales) != 4:
            raise _unsupported(f"{_label(node)} of a per-sample shape {x.shape}: only images [C, H, W] are resized")
        sh, sw = scales[2], scales[3]
        if scales[:2] != [1.0, 1.0] or sh != int(sh) or sw != int(sw) or sh < 1 or sw < 1:
            raise _unsupported(f"{_label(node)} by scales {scales}: only whole factors of the height and width are "
                               "supported")
        return self.new(self.g.upsample_nearest(self.vid(x, node), (int(sh), int(sw))))

    def _op_Resize(self, node: Any, ins: list[Any]) -> Any:
        x = self.act(node, 0)
        mode = self.attr(node, "mode", "nearest")
        ctm = self.attr(node, "coordinate_transformation_mode", "half_pixel")
        nearest = self.attr(node, "nearest_mode", "round_prefer_floor")
        repeats = (ctm == "asymmetric" and nearest == "floor") or (
            ctm in ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn") and
            nearest in ("round_prefer_floor", "round_prefer_ceil"))
        if mode != "nearest" or not repeats or self.attr(node, "axes") is not None:
            raise _unsupported(f"{_label(node)} (mode {mode}, {ctm}, nearest_mode {nearest}): only nearest resizing "
                               "that repeats each pixel (asymmetric + floor, or half_pixel + round_prefer_floor / "
                               "ceil) by whole factors is supported")
        full = (self.batch, *x.shape)
        k_scales, k_sizes = (1, 2) if self.opset < 11 else (2, 3)
        scales = None
        if len(node.input) > k_scales and node.input[k_scales]:
            s = np.asarray(self.const(node, node.input[k_scales], "scales").value, np.float64).reshape(-1)
            scales = [float(t) for t in s] if s.size else None
        if scales is None and len(node.input) > k_sizes and node.input[k_sizes]:
            sizes = [int(t) for t in np.asarray(self.const(node, node.input[k_sizes], "sizes").value).reshape(-1)]
            if len(sizes) != len(full) or sizes[0] != self.batch or sizes[1] != full[1]:
                raise _unsupported(f"{_label(node)} to sizes {sizes}: only the height and width of an image are "
                                   "resized")
            scales = [1.0, 1.0] + [sz / d for sz, d in zip(sizes[2:], full[2:], strict=True)]
        if scales is None:
            raise _unsupported(f"{_label(node)} without scales or sizes")
        return self._nearest(node, x, scales)

    def _op_Upsample(self, node: Any, ins: list[Any]) -> Any:
        x = self.act(node, 0)
        if self.attr(node, "mode", "nearest") != "nearest":
            raise _unsupported(f"{_label(node)} (mode {self.attr(node, 'mode')}): only nearest upsampling by whole "
                               "factors is supported")
        if len(node.input) > 1 and node.input[1]:
            scales = [float(t) for t in np.asarray(self.const(node, node.input[1], "scales").value).reshape(-1)]
        else:
            scales = [float(t) for t in self.attr(node, "scales", [])]
        return self._nearest(node, x, scales)

    # -- shape ops ------------------------------------------------------------------------------------------
    def _op_Identity(self, node: Any, ins: list[Any]) -> Any:
        return self.act(node, 0)

    def _op_Dropout(self, node: Any, ins: list[Any]) -> Any:
        if self._extra_outputs_read(node):
            raise _unsupported(f"{_label(node)}: its mask output is read; conversion is for inference (Dropout is "
                               "an identity)")
        return self.act(node, 0)

    def _extra_outputs_read(self, node: Any) -> bool:
        """Whether an output of ``node`` after its first (a mask, indices, statistics) is read or a graph output."""
        return any(o and (self.readers.get(o) or o in self.graph_outputs) for o in node.output[1:])

    def _op_Cast(self, node: Any, ins: list[Any]) -> Any:
        q = self._quant_cast(node, ins)
        if q is not None:
            return q
        x = self.act(node, 0)
        to = int(self.attr(node, "to", 1))
        if to in (1, 10, 11, 16):  # float: the runtime's values are f32 (an i32 value is read as its numbers)
            return x
        if to in (6, 7, 2, 3, 4, 5, 12, 13) and self.g.dtype(x.v) == "i32":
            return x  # integer ids stay integer ids
        raise _unsupported(f"{_label(node)} to {self.onnx.TensorProto.DataType.Name(to)} of a float "
                           "activation: only casts to float, and between integer types of integer inputs, are "
                           "supported")

    def _op_Shape(self, node: Any, ins: list[Any]) -> Any:
        from .onnx_capture import Const

        x = self.act(node, 0)
        full = np.array([self.batch, *x.shape], np.int64)
        start, end = int(self.attr(node, "start", 0)), self.attr(node, "end")
        return Const(full[start: None if end is None else int(end)])

    def _op_Size(self, node: Any, ins: list[Any]) -> Any:
        from .onnx_capture import Const

        x = self.act(node, 0)
        return Const(np.array(self.batch * math.prod(x.shape), np.int64))

    def _op_Reshape(self, node: Any, ins: list[Any]) -> Any:
        x = self.act(node, 0)
        target = self.ints(node, 1, "shape")  # an attribute before opset 5
        if target is None:
            raise _unsupported(f"{_label(node)} without a shape")
        full = [self.batch, *x.shape]
        allowzero = int(self.attr(node, "allowzero", 0))
        out = [full[i] if t == 0 and not allowzero and i < len(full) else t for i, t in enumerate(target)]
        if out.count(-1) == 1:
            rest = math.prod(t for t in out if t != -1)
            out[out.index(-1)] = math.prod(full) // rest if rest else 0
        if not out or out[0] != self.batch or math.prod(out) != math.prod(full):
            shown = ["batch" if i == 0 else d for i, d in enumerate(full)]
            raise _unsupported(f"{_label(node)} reshapes {shown} to {target}: only reshaping each sample, keeping "
                               "the batch dim first, is supported")
        return self._as_act(x.v, out[1:])

    def _op_Flatten(self, node: Any, ins: list[Any]) -> Any:
        x = self.act(node, 0)
        rank = len(x.shape) + 1
        axis = int(self.attr(node, "axis", 1))
        if (axis + rank if axis < 0 else axis) != 1:
            raise _unsupported(f"{_label(node)} at axis {axis}: only flattening each sample (axis 1) is supported")
        return self._as_act(x.v, (math.prod(x.shape),))

    def _op_Transpose(self, node: Any, ins: list[Any]) -> Any:
        x = self.act(node, 0)
        rank = len(x.shape) + 1
        perm = [int(p) for p in self.attr(node, "perm", list(range(rank))[::-1])]
        perm = [p + rank if p < 0 else p for p in perm]
        if perm[0] != 0:
            raise _unsupported(f"{_label(node)} with perm {perm} moves the batch dim")
        per = [p - 1 for p in perm[1:]]
        if per == sorted(per):
            return x
        moved = [d for d in range(len(per)) if x.shape[d] != 1]
        if [p for p in per if x.shape[p] != 1] == moved:  # only dims of 1 move: a reshape
            return self._as_act(x.v, [x.shape[p] for p in per])
        return self.new(self.g.transpose(self.vid(x, node), per))

    def _op_Squeeze(self, node: Any, ins: list[Any]) -> Any:
        x = self.act(node, 0)
        rank = len(x.shape) + 1
        axes = self.ints(node, 1, "axes")
        if axes is None:
            axes = [i + 1 for i, d in enumerate(x.shape) if d == 1]
        per = {self.axis(node, a, rank, "axes") for a in axes}
        if any(x.shape[a] != 1 for a in per):
            raise _unsupported(f"{_label(node)}: axes {axes} of per-sample shape {x.shape} are not all 1")
        return self._as_act(x.v, [d for i, d in enumerate(x.shape) if i not in per])

    def _op_Unsqueeze(self, node: Any, ins: list[Any]) -> Any:
        x = self.act(node, 0)
        axes = self.ints(node, 1, "axes") or []
        rank = len(x.shape) + 1 + len(axes)
        per = sorted(self.axis(node, a, rank, "axes") for a in axes)
        shape = list(x.shape)
        for a in per:
            shape.insert(a, 1)
        return self._as_act(x.v, shape)

    def _op_Expand(self, node: Any, ins: list[Any]) -> Any:
        x = self.act(node, 0)
        target = [int(t) for t in np.asarray(self.const(node, node.input[1], "shape").value).reshape(-1)]
        full = [self.batch, *x.shape]
        try:
            out = list(np.broadcast_shapes(tuple(full), tuple(target)))
        except ValueError as e:
            raise _unsupported(f"{_label(node)}: {full} does not broadcast to {target}") from e
        if len(out) != len(full) or out[0] != self.batch:
            raise _unsupported(f"{_label(node)} to {target}: only broadcasting the per-sample dims is supported")
        if out == full:
            return x
        ones = np.ones(out[1:], np.float32)  # x * 1 broadcasts, exactly
        return self._as_act(self.g.mul(self.vid(x, node), ones), out[1:])

    def _op_Concat(self, node: Any, ins: list[Any]) -> Any:
        xs = [self.act(node, k) for k in range(len(node.input)) if node.input[k]]
        rank = len(xs[0].shape) + 1
        ax = self.axis(node, int(self.attr(node, "axis", 0)), rank)
        if len(xs) == 1:
            return xs[0]
        return self.new(self.g.concat([self.vid(x, node) for x in xs], ax))

    def _op_Split(self, node: Any, ins: list[Any]) -> list[Any]:
        x = self.act(node, 0)
        rank = len(x.shape) + 1
        ax = self.axis(node, int(self.attr(node, "axis", 0)), rank)
        n = x.shape[ax]
        sizes = self.ints(node, 1, "split")
        k = len(node.output)
        if sizes is None:
            parts = int(self.attr(node, "num_outputs", k))
            step = -(-n // parts)
            sizes = [min(step, n - i) for i in range(0, n, step)]
        if sum(sizes) != n or len(sizes) != k:
            raise _unsupported(f"{_label(node)}: sizes {sizes} do not split {n} into {k} outputs")
        out, at = [], 0
        v = self.vid(x, node)
        for name, size in zip(node.output, sizes, strict=True):
            read = bool(self.readers.get(name)) or name in self.graph_outputs
            out.append(None if not read else x if size == n else self.new(self.g.slice(v, ax, at, at + size)))
            at += size
        return out

    def _op_Slice(self, node: Any, ins: list[Any]) -> Any:
        x = self.act(node, 0)
        rank = len(x.shape) + 1
        if self.opset < 10:
            starts, ends = list(self.attr(node, "starts")), list(self.attr(node, "ends"))
            axes, steps = self.attr(node, "axes"), None
        else:
            starts, ends = self.ints(node, 1), self.ints(node, 2)
            axes, steps = self.ints(node, 3), self.ints(node, 4)
        axes = list(axes) if axes is not None else list(range(len(starts)))
        steps = list(steps) if steps is not None else [1] * len(starts)
        v, shape = self.vid(x, node), list(x.shape)
        for a, s, e, st in zip(axes, starts, ends, steps, strict=True):
            full_axis = a + rank if a < 0 else a
            if full_axis == 0:
                if s in (0, -_INT64_MAX - 1) and e >= self.batch and st == 1:
                    continue  # the whole batch
                raise _unsupported(f"{_label(node)} cuts the batch dim ({s}:{e}:{st})")
            ax = self.axis(node, a, rank)
            if st < 1:
                raise _unsupported(f"{_label(node)} with step {st}: only positive steps are supported")
            lo, hi, _ = slice(s, e).indices(shape[ax])
            if (lo, hi, st) == (0, shape[ax], 1):
                continue
            v = self.g.slice(v, ax, lo, hi, st)
            shape = list(self.g.shape(v))
        return self._as_act(v, shape)

    def _op_Gather(self, node: Any, ins: list[Any]) -> Any:
        from .onnx_capture import Act, Const

        data, idx = ins[0], ins[1]
        axis = int(self.attr(node, "axis", 0))
        if isinstance(data, Const) and isinstance(idx, Act):
            table = np.asarray(data.value)
            if axis not in (0, -table.ndim) or table.ndim != 2:
                raise _unsupported(f"{_label(node)}: rows (axis 0) of a constant matrix at integer ids are an "
                                   f"embedding; a table of shape {table.shape} along axis {axis} is not supported")
            ids = self.vid(idx, node)
            if self.g.dtype(ids) != "i32":
                raise _unsupported(f"{_label(node)}: the ids must come from an integer graph input (i32)")
            name = self.layer_name(node, data, None, "embedding")
            v = self.g.embedding(ids, table.astype(np.float32), name=name)
            self._layer_done(node, name, v, None)
            return self._as_act(v, (*idx.shape, table.shape[1]))
        if isinstance(data, Act) and isinstance(idx, Const):
            rank = len(data.shape) + 1
            ax = self.axis(node, axis, rank)
            n = data.shape[ax]
            ind = np.asarray(idx.value).astype(np.int64)
            if ind.ndim > 1 or ind.size == 0:
                raise _unsupported(f"{_label(node)}: indices of shape {ind.shape}; only a number or a list of "
                                   "indices of an activation is supported")
            flat = [int(i) % n for i in ind.reshape(-1)]
            v = self.vid(data, node)
            if len(flat) == 1:
                out = self.g.slice(v, ax, flat[0], flat[0] + 1)
            else:
                step = flat[1] - flat[0]
                if step > 0 and flat == list(range(flat[0], flat[-1] + 1, step)):
                    out = self.g.slice(v, ax, flat[0], flat[-1] + 1, step)
                else:
                    out = self.g.concat([self.g.slice(v, ax, i, i + 1) for i in flat], ax)
            shape = list(data.shape)
            shape[ax: ax + 1] = [] if ind.ndim == 0 else [len(flat)]
            return self._as_act(out, shape)
        raise _unsupported(f"{_label(node)} of {self.describe(data)} at {self.describe(idx)}: supported are "
                           "rows of a constant table at integer ids (an embedding) and constant indices of an "
                           "activation")
