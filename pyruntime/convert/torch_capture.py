"""Capture of a PyTorch module into a :class:`~pyruntime.convert.graph.Graph` (torch.fx symbolic tracing).

The traced forward may be any DAG of these ops (residual adds, concats, values read by several ops);
everything else raises ``pyruntime.UnsupportedError`` naming the op and the module path:

  linear      nn.Linear, F.linear with parameters
  conv2d      nn.Conv2d (padding_mode "zeros"; int, tuple, "same" or "valid" padding; any groups),
              F.conv2d with parameters
  (folded)    nn.BatchNorm2d right after a conv, nn.BatchNorm1d right after a Linear, when that layer's
              output is read by the batch norm only: W' = W * g per output channel, b' = (b - mean) *
              g + beta, g = gamma / sqrt(var + eps) (eval-mode statistics)
  max_pool2d  nn.MaxPool2d, F.max_pool2d (dilation 1, no return_indices)
  avg_pool2d  nn.AvgPool2d, F.avg_pool2d (no divisor_override)
  global_avg_pool  nn.AdaptiveAvgPool2d(1), F.adaptive_avg_pool2d(x, 1), x.mean((2, 3)) / torch.mean
              over the last two dims of an NCHW input (+ a flatten unless keepdim=True)
  relu        nn.ReLU, F.relu, torch.relu, x.relu() (and in-place forms)
  clamp       nn.ReLU6, nn.Hardtanh, F.relu6, F.hardtanh, torch.clamp / clamp_min / clamp_max and the
              Tensor methods, with constant bounds
  add         x + y, x += y, torch.add, x.add(y) of two activations of the same shape (alpha 1)
  concat      torch.cat of activations along a non-batch dim
  flatten / reshape  nn.Flatten, nn.Unflatten, torch.flatten, torch.reshape, x.flatten / x.view /
              x.reshape keeping the batch dim: (batch, -1) is a flatten, any other per-sample shape a reshape
  softmax     nn.Softmax, F.softmax, torch.softmax, x.softmax() over dim 1 / -1 of a flat input
  identity    nn.Identity, nn.Dropout* (and F.dropout: conversion is for inference), x.contiguous(), x.float()
  sign        pyruntime.convert.SignSTE, torch.where(x >= c, 1, -1) / torch.where(x < c, -1, 1) (constants
              numbers or one-element tensors; x.ge / torch.ge ... too), also of a scalar affine of an
              activation (x * 2 - 1, (x - 0.5) * 2: held exactly in the sign op's scale and shift).
              torch.sign is refused (sign(0) = 0)
  blinear     pyruntime.convert.BinaryLinear, and nn.Linear / F.linear whose weight is +-alpha per row
              (``binary=``): a bias, batch norm, hardtanh and scalar affine between it and a sign fold into
              integer popcount thresholds (pyruntime.convert.binarize); a BatchNorm1d after one whose output
              stays real folds into its alphas and bias
  bconv2d     pyruntime.convert.BinaryConv2d, and nn.Conv2d / F.conv2d (groups 1) whose weight is +-alpha per
              output channel: as blinear, with BatchNorm2d, the thresholds taken over every dot a window can
              reach (a tap in the zero padding contributes 0); a grouped conv asked to be binary is refused

Format version 5 (:mod:`.torch_tensor_ops`): several inputs (a tuple of example inputs; integer ones are
token ids) and tuple outputs; Linear over the last axis; nn.LayerNorm / F.layer_norm over the last dim,
GELU (both forms), SiLU, Sigmoid, Tanh, LeakyReLU; nn.Embedding / F.embedding; matmul / @ / bmm of two
activations; add / sub / mul / div with broadcasting and constants (a scalar affine not read by a sign
becomes mul / add ops); transpose / permute keeping the batch dim first; indexing (slices, integers, None);
split / chunk; softmax along any non-batch dim; AdaptiveAvgPool2d to any size; nn.Conv1d; nearest Upsample
/ F.interpolate by whole factors. Nodes computed from parameters, buffers and sizes alone are constants.

In-place ops (``x.relu_()``, ``inplace=True``, ``x.add_(y)``, ...) are followed as torch runs them:
ops after one that read its input read the overwritten value.

Shapes are propagated with the example input (twice its batch, so a reshape that hard-codes the
batch size is caught), so size arithmetic such as ``x.view(x.size(0), -1)`` is understood, and every
op's per-sample output shape in the graph is checked against torch's.

Layers are named by module path (``"conv1"``, ``"0"``, ``"layer1.0.conv2"``); a functional layer by
the path of its weight without ``.weight``.
"""
from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .graph import Graph
from .torch_binary import _BAD_SIGNS, PerLayerBinary, _BinaryCapture, _Pending, bad_sign, check_binary_option
from .torch_nodes import _args, _node_label, _qualname, _shape, _unsupported, _where
from .torch_tensor_ops import SIZE_METHODS, TENSOR_FNS, TENSOR_METHODS, TENSOR_MODULES, _TensorCapture

try:
    import torch
    import torch.fx
    import torch.nn.functional as F
    from torch import nn
    from torch.fx.passes.shape_prop import ShapeProp
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None  # type: ignore[assignment]

# call_function targets, by kind (filled when torch is importable)
_FNS: dict[Any, str] = {}
# parameter names of the functions and Tensor methods whose arguments are read (self / input first)
_PARAMS: dict[Any, tuple[str, ...]] = {}
if torch is not None:
    for _kind, _fns in {
        "relu": (F.relu, torch.relu, torch.relu_, F.relu_),
        "clamp": (F.relu6, F.hardtanh, F.hardtanh_, torch.clamp, torch.clamp_, torch.clamp_min, torch.clamp_min_,
                  torch.clamp_max, torch.clamp_max_, torch.clip),
        "reshape": (torch.flatten, torch.reshape),
        "softmax": (F.softmax, torch.softmax),
        "identity": (F.dropout,),
        "linear": (F.linear,),
        "conv": (F.conv2d,),
        "maxpool": (F.max_pool2d,),
        "avgpool": (F.avg_pool2d,),
        "gap": (F.adaptive_avg_pool2d, torch.mean),
        "add": (operator.add, operator.iadd, torch.add),
        "cat": tuple(f for f in (torch.cat, getattr(torch, "concat", None), getattr(torch, "concatenate", None)) if f),
        "sign": (torch.where,),
        "compare": (operator.ge, operator.gt, operator.le, operator.lt, torch.ge, torch.gt, torch.le, torch.lt,
                    torch.greater_equal, torch.greater, torch.less_equal, torch.less),
        "affine": (torch.mul, torch.sub, operator.neg, torch.neg, torch.multiply, torch.subtract),
    }.items():
        for _f in _fns:
            _FNS[_f] = _kind
    _PARAMS.update({
        F.relu6: ("input", "inplace"), F.hardtanh: ("input", "min_val", "max_val", "inplace"),
        F.hardtanh_: ("input", "min_val", "max_val"),
        torch.clamp: ("input", "min", "max"), torch.clamp_: ("input", "min", "max"), torch.clip: ("input", "min", "max"),
        torch.clamp_min: ("input", "min"), torch.clamp_min_: ("input", "min"),
        torch.clamp_max: ("input", "max"), torch.clamp_max_: ("input", "max"),
        F.linear: ("input", "weight", "bias"),
        F.conv2d: ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
        F.max_pool2d: ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
        F.avg_pool2d: ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                       "divisor_override"),
        F.adaptive_avg_pool2d: ("input", "output_size"), torch.mean: ("input", "dim", "keepdim"),
        operator.add: ("input", "other"), operator.iadd: ("input", "other"), torch.add: ("input", "other", "alpha"),
        F.softmax: ("input", "dim"), torch.softmax: ("input", "dim"),
    })
    for _f, _k in TENSOR_FNS.items():
        _FNS.setdefault(_f, _k)
    for _f, _k in _FNS.items():
        if _k == "cat":
            _PARAMS[_f] = ("tensors", "dim")
    from .binary_modules import BinaryConv2d, BinaryLinear, SignSTE
_METHODS = {"relu": "relu", "relu_": "relu", "clamp": "clamp", "clamp_": "clamp", "clip": "clamp", "clip_": "clamp",
            "clamp_min": "clamp", "clamp_min_": "clamp", "clamp_max": "clamp", "clamp_max_": "clamp",
            "view": "reshape", "reshape": "reshape", "flatten": "reshape", "softmax": "softmax",
            "contiguous": "identity", "mean": "gap", "add": "add", "add_": "add", "size": "aux", "dim": "aux",
            "float": "identity", "ge": "compare", "gt": "compare", "le": "compare", "lt": "compare",
            "greater_equal": "compare", "greater": "compare", "less_equal": "compare", "less": "compare",
            "mul": "affine", "sub": "affine", "neg": "affine", "multiply": "affine", "subtract": "affine"}
_METHODS.update({k: v for k, v in TENSOR_METHODS.items() if k not in _METHODS})
_METHOD_PARAMS = {"clamp": ("input", "min", "max"), "clip": ("input", "min", "max"), "clamp_min": ("input", "min"),
                  "clamp_max": ("input", "max"), "mean": ("input", "dim", "keepdim"),
                  "add": ("input", "other", "alpha"), "softmax": ("input", "dim")}
_IDENTITY_MODULES = ("Identity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
                     "FeatureAlphaDropout")
_AUX_FNS = (getattr, operator.getitem, operator.mul, operator.floordiv, operator.sub, operator.add)
_SUPPORTED_MODULES = ("Linear (also torch.ao dynamic-quantized qint8), Conv2d, BatchNorm2d after Conv2d, BatchNorm1d "
                      "after Linear, pyruntime.convert.BinaryLinear, BinaryConv2d and SignSTE, ReLU, ReLU6, Hardtanh, "
                      "MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, Unflatten, Softmax, Dropout, Identity, LayerNorm, "
                      "GELU, SiLU, Sigmoid, Tanh, LeakyReLU, Embedding, Conv1d, Upsample (nearest)")


@dataclass
class Capture:
    """What :func:`capture` found: the graph, pruning masks by layer, the batch norms folded into a
    layer (layer name -> batch norm module path), and the parameters of functional layers (layer name
    -> {"weight": path, "bias": path or None})."""

    graph: Graph
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    folded: dict[str, str] = field(default_factory=dict)
    functional: dict[str, dict[str, str | None]] = field(default_factory=dict)
    binary: dict[str, dict[str, Any]] = field(default_factory=dict)


def _require_torch() -> None:
    if torch is None:
        raise ImportError("pyruntime.convert.from_torch needs PyTorch (pip install torch)")


def _module_weights(mod: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Effective weight, bias and pruning mask of an nn.Linear / nn.Conv2d (honouring torch.nn.utils.prune)."""
    mask = None
    if hasattr(mod, "weight_orig") and hasattr(mod, "weight_mask"):
        m = mod.weight_mask.detach()
        w = mod.weight_orig.detach() * m
        mask = m.cpu().numpy() != 0
    else:
        w = mod.weight.detach()
    b = getattr(mod, "bias", None)
    if b is not None and hasattr(mod, "bias_orig") and hasattr(mod, "bias_mask"):
        b = mod.bias_orig.detach() * mod.bias_mask.detach()
    w_np = w.cpu().float().numpy().astype(np.float32)
    b_np = None if b is None else b.detach().cpu().float().numpy().astype(np.float32)
    return w_np, b_np, mask


# -- classification ---------------------------------------------------------------------------------------
def _kind(node: Any, gm: Any, root: Any) -> str:
    """What a traced node is (a key of the emitters, or io / param / aux); raises for anything else."""
    op = node.op
    if op in ("placeholder", "output"):
        return "io"
    if op == "get_attr":
        return "param"
    if op == "call_module":
        return _module_kind(node, gm.get_submodule(node.target))
    if op == "call_method":
        if node.target in ("sign", "sign_", "sgn", "sgn_"):
            raise bad_sign(node, root)
        kind = _METHODS.get(node.target)
        if kind is None:
            raise _unsupported(f"unsupported op 'Tensor.{node.target}' in {_where(node, root)}")
        return kind
    if op == "call_function":
        fn = node.target
        if fn in _BAD_SIGNS:
            raise bad_sign(node, root)
        if fn in _FNS:
            return _FNS[fn]
        if fn in _AUX_FNS:
            return "aux"
        raise _unsupported(f"unsupported op '{_qualname(fn)}' in {_where(node, root)}")
    raise _unsupported(f"unsupported fx node kind '{op}' ({node.target}) in {_where(node, root)}")


def _is_dynamic_int8_linear(mod: Any) -> bool:
    """torch.ao.nn.quantized.dynamic.Linear (what torch.ao.quantization.quantize_dynamic makes of nn.Linear)."""
    cls = type(mod)
    return cls.__name__ == "Linear" and cls.__module__.startswith("torch.ao.nn.quantized.dynamic")


def int8_module_weights(mod: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """A dynamic-quantized Linear's weight as int8 ``q`` [out, in] and per-row ``scales`` (per-tensor scales
    repeated), its float bias, and how many weights sat at -128 (clamped to -127: the format is symmetric).
    Refuses a weight with a nonzero zero point or another dtype, naming the layer."""
    import torch

    w = mod.weight()
    if w.dtype != torch.qint8:
        raise _unsupported(f"dynamic-quantized Linear with a {w.dtype} weight (only qint8 imports)")
    if w.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        if int(w.q_zero_point()) != 0:
            raise _unsupported(f"dynamic-quantized Linear with weight zero point {w.q_zero_point()} (only symmetric "
                               "int8 weights import)")
        scales = np.full(w.shape[0], w.q_scale(), np.float32)
    elif w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric) and w.q_per_channel_axis() == 0:
        if bool((w.q_per_channel_zero_points() != 0).any()):
            raise _unsupported("dynamic-quantized Linear with nonzero weight zero points (only symmetric int8 weights "
                               "import)")
        scales = w.q_per_channel_scales().numpy().astype(np.float32)
    else:
        raise _unsupported(f"dynamic-quantized Linear with weight scheme {w.qscheme()}")
    q = w.int_repr().numpy().astype(np.int16)
    clamped = int((q == -128).sum())
    q = np.maximum(q, -127).astype(np.int8)
    b = mod.bias()
    return q, scales, None if b is None else b.detach().numpy().astype(np.float32), clamped


def _module_kind(node: Any, mod: Any) -> str:
    cls = type(mod)
    if isinstance(mod, nn.Linear) and (cls.forward is nn.Linear.forward or
                                       (isinstance(mod, BinaryLinear) and cls.forward is BinaryLinear.forward)):
        return "linear"
    if isinstance(mod, SignSTE) and cls.forward is SignSTE.forward:
        return "sign"
    if _is_dynamic_int8_linear(mod):
        return "linear"
    if isinstance(mod, nn.Conv2d) and (cls.forward is nn.Conv2d.forward or
                                       (isinstance(mod, BinaryConv2d) and cls.forward is BinaryConv2d.forward)):
        if mod.padding_mode != "zeros":
            raise _unsupported(f"conv module '{node.target}' has padding_mode '{mod.padding_mode}'; only zero "
                               "padding is supported")
        return "conv"
    if cls in (nn.BatchNorm1d, nn.BatchNorm2d):
        if not mod.track_running_stats or mod.running_mean is None:
            raise _unsupported(f"batch norm module '{node.target}' ({cls.__name__}) has no running statistics "
                               "to fold")
        return "batchnorm"
    table = {nn.ReLU: "relu", nn.ReLU6: "clamp", nn.Hardtanh: "clamp", nn.Flatten: "reshape", nn.Unflatten: "reshape",
             nn.Softmax: "softmax", nn.MaxPool2d: "maxpool", nn.AvgPool2d: "avgpool", nn.AdaptiveAvgPool2d: "gap"}
    if cls in table:
        return table[cls]
    if cls in TENSOR_MODULES:
        return TENSOR_MODULES[cls]
    if cls.__name__ in _IDENTITY_MODULES and cls.__module__.startswith("torch.nn"):
        return "identity"
    raise _unsupported(f"unsupported module '{node.target}' ({cls.__module__}.{cls.__name__}); supported: "
                       f"{_SUPPORTED_MODULES}")


# -- capture ----------------------------------------------------------------------------------------------
def _trace(module: Any) -> Any:
    """torch.fx.symbolic_trace, with pyruntime's SignSTE, BinaryLinear and BinaryConv2d kept as leaf modules."""

    class Tracer(torch.fx.Tracer):
        proxy_buffer_attributes = True  # buffers as get_attr nodes: a slice of one by a size is a constant

        def is_leaf_module(self, m: Any, qualname: str) -> bool:
            return isinstance(m, (SignSTE, BinaryLinear, BinaryConv2d)) or super().is_leaf_module(m, qualname)

    tracer = Tracer()
    graph = tracer.trace(module)
    return torch.fx.GraphModule(tracer.root, graph, type(module).__name__)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def capture(module: Any, example_input: Any, binary: PerLayerBinary = None) -> Capture:
    """Traces ``module`` into a :class:`Capture` (graph, masks, folded batch norms) for
    :func:`pyruntime.convert.from_graph`. ``binary``: which linear and conv layers become binary (blinear,
    bconv2d) layers: None (default) BinaryLinear and BinaryConv2d modules and those whose weight is +-alpha
    per row / output channel (2 or more inputs; convs of groups 1); True every linear and conv layer
    (refused, by name, where a weight is not binary or a conv is grouped); False none; a mapping layer name
    -> True (must be binary) / False (stays float) / None (automatic)."""
    _require_torch()
    check_binary_option(binary)
    if not isinstance(module, nn.Module):
        raise TypeError(f"from_torch expects a torch.nn.Module, got {type(module).__name__}")
    examples = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    xs = [x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x)) for x in examples]
    for k, x in enumerate(xs):
        if x.dim() < 2:
            who = "example_input" if len(xs) == 1 else f"example input {k}"
            raise ValueError(f"{who} must have a batch dimension first, got shape {tuple(x.shape)}")
        if x.shape[0] != xs[0].shape[0]:
            raise ValueError(f"example input {k} has batch {x.shape[0]}, input 0 has {xs[0].shape[0]}")
    try:
        gm = _trace(module)
    except Exception as e:
        raise _unsupported(f"could not trace {type(module).__name__} with torch.fx ({type(e).__name__}: {e}); "
                           "only forwards without data-dependent control flow, of supported ops, can be "
                           "converted") from e
    gm.graph.eliminate_dead_code()
    gm.recompile()

    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(xs):
        raise _unsupported(f"{type(module).__name__}.forward takes {len(placeholders)} inputs, {len(xs)} example "
                           "inputs were given (pass a tuple of one per input)")
    static = _static_nodes(gm)
    # Early, shape-free check so an unsupported op is named even if it would fail on the example input.
    for node in gm.graph.nodes:
        if node not in static:
            _kind(node, gm, module)

    was_training, module_training = gm.training, module.training
    gm.eval()
    module.eval()  # the module itself runs the examples: a traced module prints tracebacks when it fails
    shapes = ", ".join(str(tuple(x.shape)) for x in xs)
    try:
        with torch.no_grad():
            try:  # the example as given first, so that a shape mistake is reported with the user's own shapes
                module(*[x.clone() for x in xs])
            except Exception as e:  # noqa: BLE001 - any failure of the user's forward is reported
                raise ValueError(f"example_input: {type(module).__name__} does not run on shape {shapes}: "
                                 f"{_first_line(e)}") from None
            doubled = [torch.cat([x, x]) for x in xs]
            try:
                module(*[x.clone() for x in doubled])
            except Exception as e:  # noqa: BLE001 - as above
                raise ValueError(f"{type(module).__name__} runs on the example input {shapes} but not on twice its "
                                 f"batch: the forward hard-codes the batch size ({_first_line(e)})") from None
            ShapeProp(gm).propagate(*doubled)
    finally:
        gm.train(was_training)
        module.train(module_training)
    inputs = []
    for x in xs:
        if x.is_floating_point():
            inputs.append(([int(s) for s in x.shape[1:]], "f32"))
        elif x.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool):
            inputs.append(([int(s) for s in x.shape[1:]], "i32"))
        else:
            raise _unsupported(f"an input of dtype {x.dtype}: inputs are float or integer (token ids)")
    cap = _Builder(gm, module, inputs, 2 * int(xs[0].shape[0]), binary, static).run(placeholders)
    if isinstance(binary, Mapping):
        names = cap.graph.layer_names
        unknown = [k for k in binary if k not in names]
        if unknown:
            raise ValueError(f"binary names unknown layers {unknown}; the layers are {names}")
    return cap


def _static_nodes(gm: Any) -> set[Any]:
    """The nodes computed from constants and sizes alone (parameters, buffers, x.size(), x.shape and what is
    computed from them): evaluated while converting (:mod:`.torch_tensor_ops`), never ops of the graph."""
    static: set[Any] = set()
    for node in gm.graph.nodes:
        size = (node.op == "call_method" and node.target in SIZE_METHODS) or (
            node.op == "call_function" and node.target is getattr and node.args[1] in ("shape", "dtype", "device"))
        computed = node.op in ("call_function", "call_method", "call_module") and bool(node.all_input_nodes) and \
            all(a in static for a in node.all_input_nodes)
        if node.op == "get_attr" or size or computed:
            static.add(node)
    return static


class _Builder(_TensorCapture, _BinaryCapture):
    """Walks the traced graph in order, emitting Graph ops (one method per kind; signs and binary layers in
    :class:`~pyruntime.convert.torch_binary._BinaryCapture`, constants and the ops of format version 5 in
    :class:`~pyruntime.convert.torch_tensor_ops._TensorCapture`)."""

    def __init__(self, gm: Any, root: Any, inputs: list[tuple[list[int], str]], batch: int,
                 binary: PerLayerBinary = None, static: set[Any] | None = None) -> None:
        self.gm, self.root, self.batch, self.binary = gm, root, batch, binary
        self.pending: dict[Any, _Pending] = {}
        self.consumed: dict[Any, int] = {}
        self.static_nodes = static or set()
        self.static: dict[Any, Any] = {}
        self.pieces: dict[Any, list[int]] = {}  # the values of a split's pieces
        try:
            self.g = Graph(*inputs[0])
            for shape, dtype in inputs[1:]:
                self.g.add_input(shape, dtype)
        except ValueError as e:
            raise _unsupported(f"input of {type(root).__name__}: {e}") from e
        self.cap = Capture(self.g)
        self.value_of: dict[Any, int] = {}
        self.folded_bn: set[Any] = set()

    def where(self, node: Any) -> str:
        return _where(node, self.root)

    def _kind_of(self, node: Any) -> str:
        return _kind(node, self.gm, self.root)

    def src(self, node: Any, arg: Any = None) -> int:
        """The value an op reads (its first argument unless ``arg`` is given)."""
        return self._value(node.args[0] if arg is None and node.args else arg, node)

    def _value(self, a: Any, reader: Any = None) -> int:
        """The value of activation ``a``, read by node ``reader`` (None: returned by the forward); a pending
        scalar affine becomes mul / add ops here. Anything else is refused, naming the reader."""
        who = (f"op '{_node_label(reader)}' in {self.where(reader)} reads" if reader is not None
               else f"{type(self.root).__name__}.forward returns")
        if isinstance(a, torch.fx.Node) and a in self.pending:
            if self.pending[a].compare is None:
                return self._materialize(a)
            raise _unsupported(f"{who} '{a.name}' ({_node_label(a)}), a comparison of an activation; a comparison is "
                               "only supported as the condition of a sign (torch.where(x >= 0, 1.0, -1.0) or "
                               "pyruntime.convert.SignSTE)")
        if not isinstance(a, torch.fx.Node) or a not in self.value_of:
            raise _unsupported(f"{who} something other than the network's activations (a constant, a parameter or a "
                               "size); only ops on activations are supported, and a forward returns tensors computed "
                               "from its inputs (a tensor, or a tuple of them)")
        return self.value_of[a]

    def _materialize(self, a: Any) -> int:
        """A scalar affine held for a sign (x * a + b, 1 - x, ...) read by another op: its steps as mul and add
        ops, in torch's order (each step one f32 operation, as torch computes it)."""
        p = self.pending.pop(a)
        v = p.base
        for op, k in p.chain:
            v = self.g.mul(v, k) if op == "mul" else self.g.add(v, k)
        self.value_of[a] = v
        return v

    def run(self, placeholders: list[Any]) -> Capture:
        for k, p in enumerate(placeholders):
            self.value_of[p] = k
        output_values: list[int] | None = None
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                continue
            if node in self.static_nodes:  # computed while converting
                self.static[node] = self._size_of(node) if (
                    node.args and isinstance(node.args[0], torch.fx.Node) and node.args[0] not in self.static_nodes
                ) else self._eval_static(node)
                continue
            if node in self.consumed:  # folded into a binary layer's thresholds
                self.value_of[node] = self.consumed[node]
                continue
            if node.op == "output":
                out = node.args[0]
                outs = list(out) if isinstance(out, (tuple, list)) else [out]
                output_values = [self._value(o) for o in outs]
                continue
            kind = _kind(node, self.gm, self.root)
            if kind in ("param", "io"):
                continue
            if kind in ("aux", "add") and _shape(node) is not None and self._scalar_affine(node) is not None:
                kind = "affine"
            if kind == "affine" and self._scalar_affine(node) is None:
                kind = "arith"  # the product or difference of two activations, or with a constant tensor
            if kind == "split":
                self.pieces[node] = self._split(node)
                continue
            if kind == "aux" and (_shape(node) is not None or node.args and node.args[0] in self.pieces):
                kind = ("getitem" if node.target is operator.getitem else
                        "arith" if node.target in (operator.mul, operator.sub, operator.add, operator.truediv) else kind)
            if kind in ("affine", "compare"):
                self.pending[node] = getattr(self, f"_{kind}")(node)
                continue
            if kind == "aux" or (kind == "add" and _shape(node) is None):
                if _shape(node) is not None:
                    raise _unsupported(f"unsupported op '{_node_label(node)}' on activations in {self.where(node)}")
                continue
            v = getattr(self, f"_{kind}")(node)
            self.value_of[node] = v
            if self.g.nodes and v == self.g.output:
                self._check_shape(node, v)
            mutated = self._mutated(node)
            if mutated is not None:  # ops after an in-place op read the new value of its input
                self.value_of[mutated] = v
        if output_values is None or not self.g.nodes:
            raise _unsupported(f"{type(self.root).__name__} computes no supported layer")
        if output_values != [self.g.output]:
            self.g.set_outputs(output_values)
        return self.cap

    def _mutated(self, node: Any) -> Any:
        """The activation an in-place op (x.relu_(), F.relu(x, inplace=True), nn.ReLU(inplace=True),
        x.add_(y), ...) overwrites, or None."""
        if node.op == "call_module":
            inplace = bool(getattr(self.gm.get_submodule(node.target), "inplace", False))
        elif node.op == "call_method":
            inplace = node.target.endswith("_")
        else:
            name = getattr(node.target, "__name__", "")
            inplace = bool(node.kwargs.get("inplace", False)) or node.target is operator.iadd or (
                name.endswith("_") and not name.startswith("_"))
        a = node.args[0] if node.args else None
        return a if inplace and isinstance(a, torch.fx.Node) and a in self.value_of else None

    def _check_shape(self, node: Any, v: int) -> None:
        traced = _shape(node)
        if traced is None:
            raise _unsupported(f"op '{_node_label(node)}' in {self.where(node)} does not produce a tensor")
        if traced[0] != self.batch or tuple(traced[1:]) != self.g.shape(v):
            raise _unsupported(f"op '{_node_label(node)}' in {self.where(node)}: torch gives per-sample shape "
                               f"{tuple(traced[1:])} (batch {traced[0]}), the conversion {self.g.shape(v)} (batch "
                               f"{self.batch}); this use of the op is not supported")

    # -- weighted layers ------------------------------------------------------------------------------
    def _layer_name(self, node: Any, name: str) -> str:
        if name in self.g.layer_names:
            raise _unsupported(f"layer '{name}' in {self.where(node)} is called more than once; a module whose "
                               "weights are used twice cannot be converted")
        return name

    def _fn_weights(self, node: Any, a: dict[str, Any],
                    what: str) -> tuple[str, np.ndarray, np.ndarray | None, dict[str, str | None]]:
        def fetch(n: Any) -> Any:
            if n is None:
                return None
            if not isinstance(n, torch.fx.Node) or n.op != "get_attr":
                raise _unsupported(f"{what} in {self.where(node)} with computed weights is not supported")
            obj: Any = self.gm
            for part in n.target.split("."):
                obj = getattr(obj, part)
            return obj.detach().cpu().float().numpy().astype(np.float32)

        w_node, b_node = a.get("weight"), a.get("bias")
        w, b = fetch(w_node), fetch(b_node)
        if w is None:
            raise _unsupported(f"{what} in {self.where(node)} without a weight")
        t = w_node.target
        default = "linear" if what == "F.linear" else "conv"
        name = t[: -len(".weight")] if t.endswith(".weight") else (default if t == "weight" else t)
        return name, w, b, {"weight": str(t), "bias": None if b_node is None else str(b_node.target)}

    def _fold(self, node: Any, kind: str, w: np.ndarray, b: np.ndarray | None,
              name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Folds the batch norm that reads this layer's output, if it is the layer's only reader."""
        users = list(node.users)
        bn_cls = nn.BatchNorm2d if kind == "conv" else nn.BatchNorm1d
        if len(users) != 1 or users[0].op != "call_module":
            return w, b
        bn = self.gm.get_submodule(users[0].target)
        if type(bn) is not bn_cls or not bn.track_running_stats or bn.running_mean is None:
            return w, b
        self.folded_bn.add(users[0])
        self.cap.folded[name] = str(users[0].target)
        return _fold_batchnorm(w, b, bn)

    def _linear(self, node: Any) -> int:
        x = self.src(node)
        ins = _shape(node.args[0])
        if ins is None or len(ins) < 2:
            raise _unsupported(f"linear {self.where(node)} applied to a {ins} input: it needs (batch, ..., "
                               "features)")
        if node.op == "call_module" and _is_dynamic_int8_linear(self.gm.get_submodule(node.target)):
            name = self._layer_name(node, str(node.target))
            q, scales, b, clamped = int8_module_weights(self.gm.get_submodule(node.target))
            w = (q.astype(np.float32) * scales[:, None]).astype(np.float32)
            v = self.g.linear(x, w, b, name=name)
            self.g.node_of(v).meta["int8"] = {"q": q, "scales": scales, "clamped": clamped}
            return v
        if node.op == "call_module":
            name = str(node.target)
            w, b, mask = _module_weights(self.gm.get_submodule(node.target))
        else:
            name, w, b, params = self._fn_weights(node, _args(node, _PARAMS[F.linear]), "F.linear")
            mask = None
            self.cap.functional[self._layer_name(node, name)] = params
        name = self._layer_name(node, name)
        mod = self.gm.get_submodule(node.target) if node.op == "call_module" else None
        binary = self._binary_weight(node, name, mod, w, mask)
        if binary is not None:
            return self._binary_layer(node, x, name, binary[0], binary[1], b, mod)
        w = self._float_weight(mod, w)  # a BinaryLinear kept as a float layer: alpha * sign(W)
        w, b = self._fold(node, "linear", w, b, name)
        if mask is not None:
            self.cap.masks[name] = mask
        return self.g.linear(x, w, b, name=name)

    def _conv(self, node: Any) -> int:
        x = self.src(node)
        mod = None
        if node.op == "call_module":
            mod = self.gm.get_submodule(node.target)
            name = str(node.target)
            w, b, mask = _module_weights(mod)
            stride, padding, dilation, groups = mod.stride, mod.padding, mod.dilation, mod.groups
        else:
            a = _args(node, _PARAMS[F.conv2d])
            name, w, b, params = self._fn_weights(node, a, "F.conv2d")
            self.cap.functional[self._layer_name(node, name)] = params
            mask = None
            stride, padding, dilation, groups = (a.get("stride", 1), a.get("padding", 0), a.get("dilation", 1),
                                                 a.get("groups", 1))
        ins = _shape(node.args[0])
        if ins is None or len(ins) != 4:
            raise _unsupported(f"conv2d {self.where(node)} applied to a {ins} input: only (batch, C, H, W) inputs "
                               "are supported")
        name = self._layer_name(node, name)
        geometry = {"stride": _ints(stride), "padding": padding if isinstance(padding, str) else _ints(padding),
                    "dilation": _ints(dilation)}
        binary = self._binary_weight(node, name, mod, w, mask, int(groups))
        if binary is not None:
            return self._binary_layer(node, x, name, binary[0], binary[1], b, mod, geometry)
        w = self._float_weight(mod, w)  # a BinaryConv2d kept as a float layer: alpha * sign(W)
        w, b = self._fold(node, "conv", w, b, name)
        if mask is not None:
            self.cap.masks[name] = mask
        try:
            return self.g.conv2d(x, w, b, groups=int(groups), name=name, **geometry)
        except (TypeError, ValueError) as e:
            raise _unsupported(f"conv2d {self.where(node)}: {e}") from e

    def _batchnorm(self, node: Any) -> int:
        if node in self.folded_bn:
            return self.src(node)
        mod = self.gm.get_submodule(node.target)
        prev = node.args[0]
        layer = "Conv2d" if type(mod) is nn.BatchNorm2d else "Linear"
        if isinstance(prev, torch.fx.Node) and prev.op in ("call_module", "call_function") and \
                _kind(prev, self.gm, self.root) == ("conv" if layer == "Conv2d" else "linear") and len(prev.users) > 1:
            others = ", ".join(f"'{_node_label(u)}'" for u in prev.users if u is not node)
            why = f"the output of '{_node_label(prev)}' is also read by {others}"
        elif isinstance(prev, torch.fx.Node):
            at = "" if prev.op == "call_module" else f" in {self.where(prev)}"
            why = f"it reads '{_node_label(prev)}'{at}, not a {layer}"
        else:
            why = f"it does not read a {layer}"
        raise _unsupported(f"batch norm {self.where(node)} ({type(mod).__name__}) cannot be folded: {why}; a batch "
                           f"norm is converted only right after a {layer} whose output it alone reads")

    # -- elementwise ----------------------------------------------------------------------------------
    def _identity(self, node: Any) -> int:
        return self.src(node)

    def _relu(self, node: Any) -> int:
        return self.g.relu(self.src(node))

    def _clamp(self, node: Any) -> int:
        x = self.src(node)
        if node.op == "call_module":
            mod = self.gm.get_submodule(node.target)
            lo, hi = mod.min_val, mod.max_val
        else:
            key = node.target if node.op == "call_function" else node.target.rstrip("_")
            a = _args(node, _PARAMS[key] if node.op == "call_function" else _METHOD_PARAMS[key])
            if key is F.relu6:
                lo, hi = 0.0, 6.0
            elif key in (F.hardtanh, F.hardtanh_):
                lo, hi = a.get("min_val", -1.0), a.get("max_val", 1.0)
            else:
                lo, hi = a.get("min"), a.get("max")
        for bound in (lo, hi):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))):
                raise _unsupported(f"'{_node_label(node)}' in {self.where(node)} with bound {bound!r}: only constant "
                                   "number bounds are supported")
        if lo is None and hi is None:
            raise _unsupported(f"'{_node_label(node)}' in {self.where(node)} without bounds")
        return self.g.clamp(x, -np.inf if lo is None else float(lo), np.inf if hi is None else float(hi))

    def _add(self, node: Any) -> int:
        names = _PARAMS[node.target] if node.op == "call_function" else _METHOD_PARAMS["add"]
        a = _args(node, names)
        if a.get("alpha", 1) != 1:
            raise _unsupported(f"'{_node_label(node)}' in {self.where(node)} with alpha={a['alpha']}: only a plain "
                               "sum of two activations is supported")
        ia, ib = a.get("input"), a.get("other")
        if not all(isinstance(t, torch.fx.Node) and t in self.value_of for t in (ia, ib)) or _shape(ia) != _shape(ib):
            return self._arith(node)  # a constant operand, a pending affine, or broadcasting
        return self.g.add(self.value_of[ia], self.value_of[ib])

    # -- shapes ---------------------------------------------------------------------------------------
    def _reshape(self, node: Any) -> int:
        x = self.src(node)
        ins, outs = _shape(node.args[0]), _shape(node)
        if ins is None or outs is None:
            raise _unsupported(f"'{_node_label(node)}' in {self.where(node)} on a non-tensor")
        if outs[0] != ins[0]:
            raise _unsupported(f"'{_node_label(node)}' in {self.where(node)} reshapes {ins} to {outs} (example "
                               "batch doubled); only reshaping each sample, keeping the batch dim, is supported")
        if outs == ins:
            return x
        if len(outs) == 2:
            return self.g.flatten(x)
        if len(outs) - 1 > 4:
            raise _unsupported(f"'{_node_label(node)}' in {self.where(node)} reshapes to {outs}: at most 4 dims per "
                               "sample are supported")
        return self.g.reshape(x, outs[1:])

    def _softmax(self, node: Any) -> int:
        if node.op == "call_module":
            dim = self.gm.get_submodule(node.target).dim
        else:
            dim = _args(node, _PARAMS[node.target] if node.op == "call_function" else _METHOD_PARAMS["softmax"]) \
                .get("dim")
        ins = _shape(node.args[0])
        rank = 0 if ins is None else len(ins)
        d = None if dim is None else int(dim) % max(rank, 1)
        if rank < 2 or d is None or d == 0:
            raise _unsupported(f"softmax in {self.where(node)} over dim {dim} of a rank-{rank} input: only softmax "
                               "over a given non-batch dim is supported")
        return self.g.softmax(self.src(node), axis=d - 1)

    def _cat(self, node: Any) -> int:
        a = _args(node, ("tensors", "dim"))
        ts = a.get("tensors")
        if not isinstance(ts, (list, tuple)) or not ts:
            raise _unsupported(f"'{_node_label(node)}' in {self.where(node)}: expected a list of activations")
        vs = [self.src(node, t) for t in ts]
        rank = len(_shape(ts[0]) or ())
        dim = int(a.get("dim", 0))
        d = dim + rank if dim < 0 else dim
        if not 1 <= d < rank:
            raise _unsupported(f"'{_node_label(node)}' in {self.where(node)} along dim {dim}: only concatenation "
                               "along a non-batch dim is supported")
        if len(vs) == 1:
            return vs[0]
        return self.g.concat(vs, d - 1)

    # -- pooling --------------------------------------------------------------------------------------
    def _pool_args(self, node: Any, names: tuple[str, ...], attrs: tuple[str, ...]) -> dict[str, Any]:
        if node.op == "call_module":
            mod = self.gm.get_submodule(node.target)
            return {k: getattr(mod, k) for k in attrs}
        return _args(node, names)

    def _pool_check(self, node: Any) -> None:
        ins = _shape(node.args[0])
        if ins is None or len(ins) != 4:
            raise _unsupported(f"'{_node_label(node)}' in {self.where(node)} on a {ins} input: only (batch, C, H, "
                               "W) inputs are supported")

    def _maxpool(self, node: Any) -> int:
        x = self.src(node)
        self._pool_check(node)
        a = self._pool_args(node, _PARAMS[F.max_pool2d], ("kernel_size", "stride", "padding", "dilation",
                                                          "ceil_mode", "return_indices"))
        if a.get("return_indices", False):
            raise _unsupported(f"'{_node_label(node)}' in {self.where(node)} with return_indices is not supported")
        if any(d != 1 for d in np.atleast_1d(_ints(a.get("dilation", 1)))):
            raise _unsupported(f"'{_node_label(node)}' in {self.where(node)} with dilation {a['dilation']}: only "
                               "dilation 1 is supported")
        try:
            return self.g.max_pool2d(x, _ints(a["kernel_size"]), _ints(a.get("stride")), _ints(a.get("padding", 0)),
                                     bool(a.get("ceil_mode", False)))
        except (TypeError, ValueError) as e:
            raise _unsupported(f"'{_node_label(node)}' in {self.where(node)}: {e}") from e

    def _avgpool(self, node: Any) -> int:
        x = self.src(node)
        self._pool_check(node)
        a = self._pool_args(node, _PARAMS[F.avg_pool2d], ("kernel_size", "stride", "padding", "ceil_mode",
                                                          "count_include_pad", "divisor_override"))
        if a.get("divisor_override") is not None:
            raise _unsupported(f"'{_node_label(node)}' in {self.where(node)} with divisor_override is not supported")
        try:
            return self.g.avg_pool2d(x, _ints(a["kernel_size"]), _ints(a.get("stride")), _ints(a.get("padding", 0)),
                                     bool(a.get("ceil_mode", False)), bool(a.get("count_include_pad", True)))
        except (TypeError, ValueError) as e:
            raise _unsupported(f"'{_node_label(node)}' in {self.where(node)}: {e}") from e

    def _gap(self, node: Any) -> int:
        """AdaptiveAvgPool2d(1) / F.adaptive_avg_pool2d(x, 1) / x.mean over the last two dims of NCHW."""
        x = self.src(node)
        ins = _shape(node.args[0])
        label = f"'{_node_label(node)}' in {self.where(node)}"
        if ins is None or len(ins) != 4:
            raise _unsupported(f"{label} on a {ins} input: only global average pooling of (batch, C, H, W) inputs "
                               "is supported")
        is_mean = (node.op == "call_method" and node.target == "mean") or node.target is torch.mean
        if not is_mean:
            size = (self.gm.get_submodule(node.target).output_size if node.op == "call_module"
                    else _args(node, _PARAMS[F.adaptive_avg_pool2d]).get("output_size"))
            if size not in (1, (1, 1), [1, 1]):
                outs = _shape(node)
                return self.g.adaptive_avg_pool2d(x, (int(outs[2]), int(outs[3])))  # type: ignore[index]
            return self.g.global_avg_pool(x)
        a = _args(node, _METHOD_PARAMS["mean"])
        dims = a.get("dim")
        dims = [dims] if isinstance(dims, int) else list(dims) if isinstance(dims, (list, tuple)) else None
        if a.get("dtype") is not None or dims is None or sorted(d % 4 for d in dims) != [2, 3]:
            raise _unsupported(f"{label} over dims {a.get('dim')}: only the mean over the spatial dims (2, 3) of a "
                               "(batch, C, H, W) input is supported")
        v = self.g.global_avg_pool(x)
        return v if a.get("keepdim", False) else self.g.flatten(v)


def _ints(v: Any) -> Any:
    """torch's int-or-tuple settings as ints / lists of ints (None and strings unchanged)."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)):
        return [int(t) for t in v]
    return int(v)


def _fold_batchnorm(w: np.ndarray, b: np.ndarray | None, bn: Any) -> tuple[np.ndarray, np.ndarray]:
    """Linear / conv followed by eval-mode batch norm == one layer with output channels scaled and the
    bias shifted: W' = W * g, b' = (b - mean) * g + beta, g = gamma / sqrt(var + eps). Pruned zeros stay zero."""
    var = bn.running_var.detach().double().cpu().numpy()
    mean = bn.running_mean.detach().double().cpu().numpy()
    gamma = bn.weight.detach().double().cpu().numpy() if bn.weight is not None else np.ones_like(var)
    beta = bn.bias.detach().double().cpu().numpy() if bn.bias is not None else np.zeros_like(var)
    g = gamma / np.sqrt(var + bn.eps)
    b0 = np.zeros_like(mean) if b is None else b.astype(np.float64)
    w2 = (w.astype(np.float64) * g.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
    b2 = ((b0 - mean) * g + beta).astype(np.float32)
    return w2, b2


# -- back into torch --------------------------------------------------------------------------------------
def _layer_module(module: Any, name: str) -> Any:
    if name == "linear" and isinstance(module, nn.Linear):
        return module
    if name == "conv" and isinstance(module, nn.Conv2d):
        return module
    return module.get_submodule(name)


def assign_weights(module: Any, weights: dict[str, tuple[np.ndarray, np.ndarray | None]],
                   folded: dict[str, str] | None = None,
                   functional: dict[str, dict[str, str | None]] | None = None) -> None:
    """Copies ``CompressedModel.dense_weights()`` back into the module's nn.Linear / nn.Conv2d layers (by
    module path), so torch computes with exactly the compressed weights (parity checks, fine-tuning).

    ``folded`` (layer -> batch norm path) names the batch norms folded into a layer: the layer gets the
    folded weights and the batch norm becomes an exact identity in eval mode (mean 0, var 1, eps 0,
    gamma 1, beta 0): y * 1 / sqrt(1 + 0) + 0 == y bit for bit. The folded bias goes to the layer's
    bias, or, if it has none, to the batch norm's beta (y + beta, exact), or, for a non-affine batch
    norm, to a new bias parameter of the layer. ``functional`` (layer -> {"weight": path, "bias": path
    or None}) gives the parameters of layers computed by F.linear / F.conv2d. The module stays in
    whatever mode it was; run it in eval mode.
    """
    _require_torch()
    folded = folded or {}
    functional = functional or {}
    with torch.no_grad():
        for name, (w, b) in weights.items():
            mod = None
            if name in functional:
                wp = module.get_parameter(str(functional[name]["weight"]))
                bias_path = functional[name].get("bias")
                bp = module.get_parameter(str(bias_path)) if bias_path else None
                wp.copy_(torch.as_tensor(np.ascontiguousarray(w)).reshape(wp.shape))
            else:
                mod = _layer_module(module, name)
                tw = torch.as_tensor(np.ascontiguousarray(w)).reshape(mod.weight.shape).to(mod.weight.dtype)
                if hasattr(mod, "weight_orig"):
                    mod.weight_orig.copy_(tw)
                    mod.weight_mask.copy_((tw != 0).to(mod.weight_mask.dtype))
                    mod.weight = mod.weight_orig * mod.weight_mask
                else:
                    mod.weight.copy_(tw)
                bp = mod.bias
            bn = module.get_submodule(folded[name]) if name in folded else None
            if bn is not None:
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0)
                bn.eps = 0.0
                if bn.weight is not None:
                    bn.weight.fill_(1.0)
                    bn.bias.zero_()
            if b is None:
                continue
            tb = torch.as_tensor(np.ascontiguousarray(b))
            if bp is not None:
                bp.copy_(tb)
            elif bn is not None and bn.bias is not None:
                bn.bias.copy_(tb)
            elif mod is not None:
                mod.bias = nn.Parameter(tb.clone().to(mod.weight.dtype))
            else:
                raise ValueError(f"layer '{name}' (functional, no bias parameter) cannot take the bias folded from "
                                 f"batch norm '{folded.get(name)}'")
