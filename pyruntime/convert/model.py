"""CompressedModel (a converted graph + encoded tensors), ``from_graph`` and the chain builder ``from_numpy``.

A network is a :class:`~pyruntime.convert.graph.Graph` (any DAG of the runtime's ops: residual adds,
concats, values read by several nodes), compressed by :func:`from_graph`. :func:`from_numpy` takes the
common case, a chain, as a list with one tuple per op; each tuple is the op name, its positional
arguments, then optionally a layer name (a str) and a dict of keyword arguments of the matching
``Graph`` method::

    ("flatten",)                            (batch, *shape) -> (batch, prod(shape))
    ("linear", W, b)                        W: (out, in) like torch.nn.Linear, b: (out,) or None
    ("linear", W, b, "fc1")                 ... with a layer name (default "fc<i>", counting linears from 1)
    ("conv2d", W, b)                        W: (out_c, in_c / groups, kh, kw), b: (out_c,) or None; stride 1,
                                            no padding (default name "conv<i>", counting convs from 1)
    ("conv2d", W, b, "conv1", {"stride": 2, "padding": 1, "dilation": 1, "groups": 1})
                                            padding: int, (h, w), (top, left, bottom, right), "same", "valid"
    ("max_pool2d", k)                       kernel k (int or (kh, kw)); stride k, no padding
    ("max_pool2d", k, {"stride": s, "padding": p, "ceil_mode": True})
    ("avg_pool2d", k[, {... "count_include_pad": False}])
    ("global_avg_pool",)                    [C, H, W] -> [C, 1, 1]
    ("relu",)
    ("relu6",)  ("hardtanh", lo, hi)  ("clamp", lo, hi)     all stored as clamp
    ("reshape", (d0, d1, ...))              per-sample shape, 1..4 dims (one may be -1)
    ("softmax",)                            over the features of a flat input

(add and concat read several values: build those networks with ``Graph``.)

Compression is applied per weighted layer (linear and conv2d), in Deep Compression's order: prune
(``sparsity``, by magnitude over the whole weight), share (``bits``), then encode. Both settings take
a number for every layer or a mapping layer-name -> number (a missing name or ``None`` leaves that
layer alone). A conv weight [O, C/g, kh, kw] is compressed and encoded as the matrix [O, C/g*kh*kw]
(what every encoding stores; the file keeps the 4-D shape).
"""
from __future__ import annotations

import json
import math
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import _core
from .._progress import bar
from ..cost import CostModel
from ..cost.conv import ConvCost
from . import reference
from .binarize import BinaryLayer, binary_payload_bytes, binary_tensor
from .choose import Objective, choose_int8
from .encode import (
    TensorDict,
    decode_tensor,
    dense_tensor,
    encode_layer,
    encoded_bytes,
    int8_candidates,
    int8_matrix,
    nonzeros,
)
from .graph import BINARY_OPS, CONSTANT_OPS, OPS, WEIGHTED_OPS, Graph
from .prune import PerLayer, check_layer_names, magnitude_mask, per_layer
from .quantize import (
    Int8Layer,
    Int8Params,
    PerLayerMode,
    activation_scale,
    check_calibration,
    mode_of,
    quantize_weight,
)

#: ops of from_numpy's tuples (relu6 and hardtanh become clamp)
SUPPORTED_OPS = ("flatten", "linear", "relu", "softmax", "conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool",
                 "relu6", "hardtanh", "clamp", "reshape")


@dataclass(frozen=True)
class LayerReport:
    """Compression of one weighted layer (linear or conv2d: weight + bias) in the file."""

    name: str
    encoding: str
    shape: tuple[int, ...]    # the weight's shape: (out, in), or (out_c, in_c / groups, kh, kw)
    nonzeros: int
    bits: int                 # bits per stored value: codebook index bits, or 32 for f32 values
    file_bytes: int           # weight + bias tensors in the file (headers included)
    dense_bytes: int          # the same as dense fp32
    candidate_bytes: dict[str, int]  # weight tensor bytes of every candidate encoding
    predicted_seconds: dict[str, float] = field(default_factory=dict)  # per candidate, at the objective's batch
    why: str = ""             # why this encoding (the objective, the numbers it compared)
    op: str = "linear"
    quantize: str = ""        # "dynamic" or "static" for an int8 layer, else ""
    weight_error: float = 0.0  # int8: RMS error of the quantized weights relative to the float ones
    centroids: int = 0        # k: distinct shared values of the surviving weights (a dense codebook's extra
    #                           zero for pruned weights not counted); 0 for fp32 values, int8 and binary

    @property
    def density(self) -> float:
        return self.nonzeros / max(1, int(np.prod(self.shape)))

    @property
    def ratio(self) -> float:
        return self.dense_bytes / max(1, self.file_bytes)


class CompressedModel:
    """A converted network: graph, encoded tensors, and a per-layer report. Immutable once built.

    ``to_bytes()``/``save(path)`` write the .pyrt file (through the C++ writer), ``load()`` runs it in
    the runtime, ``dense_weights()`` gives the weights the runtime computes with, for parity checks,
    and ``run_numpy()`` a float64 numpy forward pass over them (a reference).
    """

    def __init__(self, input_shape: Sequence[int], nodes: list[dict[str, Any]], tensors: list[TensorDict],
                 layers: list[LayerReport], metadata: dict[str, Any] | None = None, *,
                 inputs: Sequence[tuple[Sequence[int], str]] | None = None, outputs: Sequence[int] | None = None) -> None:
        self.input_shape = tuple(int(s) for s in input_shape)
        #: per graph input: (per-sample shape, "f32" or "i32")
        self.inputs = [(tuple(int(d) for d in sh), str(t)) for sh, t in inputs] if inputs else [(self.input_shape,
                                                                                                  "f32")]
        #: the graph outputs' value ids (None: the last node's output)
        self.outputs = None if outputs is None else [int(v) for v in outputs]
        self._nodes = nodes
        self._tensors = tensors
        self.layers = layers
        self.metadata = dict(metadata or {})
        self._bytes: bytes | None = None

    # -- file -----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The model dict of ``pyruntime._core.write_model`` (inputs and outputs, or input_shape for one f32 input
        and the last node's output; nodes, tensors, metadata)."""
        io: dict[str, Any] = {"input_shape": list(self.input_shape)}
        if len(self.inputs) > 1 or self.inputs[0][1] != "f32" or self.outputs is not None:
            io = {"inputs": [{"shape": list(sh), "type": t} for sh, t in self.inputs],
                  "outputs": list(self.outputs) if self.outputs is not None
                  else [len(self.inputs) + len(self._nodes) - 1]}
        return {
            **io,
            "nodes": [{**n, **({"attrs": dict(n["attrs"])} if "attrs" in n else {})} for n in self._nodes],
            "tensors": [dict(t) for t in self._tensors],
            "metadata": json.dumps(self.metadata, sort_keys=True),
        }

    def to_bytes(self) -> bytes:
        """The .pyrt file contents."""
        if self._bytes is None:
            self._bytes = bytes(_core.write_model(self.to_dict()))
        return self._bytes

    def save(self, path: str | os.PathLike[str]) -> int:
        """Writes the .pyrt file; returns its size in bytes."""
        data = self.to_bytes()
        with open(path, "wb") as f:
            f.write(data)
        return len(data)

    def load(self):  # -> pyruntime.Model
        """Loads the model into the runtime (from the bytes, no file needed)."""
        from .._model import load

        return load(self.to_bytes())

    # -- sizes ----------------------------------------------------------------------------------------
    @property
    def file_bytes(self) -> int:
        return len(self.to_bytes())

    @property
    def dense_bytes(self) -> int:
        """Size of all weights and biases as dense fp32."""
        return sum(r.dense_bytes for r in self.layers)

    @property
    def ratio(self) -> float:
        """Dense fp32 parameter bytes / file bytes (the whole file: header, graph, checksums included)."""
        return self.dense_bytes / max(1, self.file_bytes)

    def report(self) -> str:
        """A text table, one row per weighted layer, plus the whole file."""
        from .._report import format_table

        rows = [[r.name, r.encoding, "x".join(map(str, r.shape)), str(r.nonzeros), f"{100 * r.density:.1f}%",
                 str(r.bits), str(r.centroids or ""), str(r.file_bytes), str(r.dense_bytes),
                 f"{r.ratio:.1f}x"] for r in self.layers]
        rows.append(["total (file)", "", "", str(sum(r.nonzeros for r in self.layers)), "", "", "",
                     str(self.file_bytes), str(self.dense_bytes), f"{self.ratio:.1f}x"])
        table = format_table(["layer", "encoding", "shape", "nonzeros", "density", "bits", "k", "bytes",
                              "dense bytes", "ratio"], rows)
        why = [f"  {r.name}: {r.encoding}: {r.why}" for r in self.layers if r.why]
        return table + ("\nencoding choice:\n" + "\n".join(why) if why else "")

    def report_rows(self) -> list[dict[str, Any]]:
        """The report as dicts (with ``density`` and ``ratio``)."""
        return [{**asdict(r), "density": r.density, "ratio": r.ratio} for r in self.layers]

    # -- weights --------------------------------------------------------------------------------------
    def _node_weights(self) -> list[tuple[np.ndarray, np.ndarray | None] | None]:
        out: list[tuple[np.ndarray, np.ndarray | None] | None] = []
        for n in self._nodes:
            t = n["tensors"]
            if not t:
                out.append(None)
                continue
            b = decode_tensor(self._tensors[t[1]]) if len(t) > 1 else None
            if self._tensors[t[0]]["encoding"] == "binary":
                tw, a = self._tensors[t[0]], n.get("attrs") or {}
                bits = np.asarray(tw["bits"]).reshape([int(d) for d in tw["shape"]])
                signs = np.where(bits != 0, 1, -1).astype(np.int8)
                out.append(BinaryLayer(signs, np.asarray(tw["scales"], np.float32), b, int(a.get("input", 0)),
                                       int(a.get("output", 0))))
                continue
            w = decode_tensor(self._tensors[t[0]])
            if self._tensors[t[0]]["encoding"] in ("int8", "csr+int8"):
                a = n.get("attrs") or {}
                p = (Int8Params("static", a["input_scale"], a["output_scale"], a["min"], a["max"])
                     if n["op"] in ("qlinear", "qconv2d") else Int8Params("dynamic"))
                tw = self._tensors[t[0]]
                out.append(Int8Layer(int8_matrix(tw), np.asarray(tw["scales"]), b, p, tuple(tw["shape"])))
                continue
            out.append((w, b))
        return out

    def dense_weights(self) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        """Per weighted layer name: ``(W, b)`` as dense float32, exactly the compressed weights (pruned
        zeros, shared values) the runtime computes with; conv weights are 4-D [O, C/g, kh, kw]. A binary
        layer gives ``alphas * signs`` and its bias (None when its output is the sign by thresholds:
        :meth:`binary_layers` has those)."""
        def dense(wb: Any) -> Any:
            if isinstance(wb, Int8Layer):
                return (wb.q.astype(np.float32) * wb.scales[:, None]).reshape(wb.shape), wb.bias
            if isinstance(wb, BinaryLayer):
                return wb.weight, (wb.second if wb.output == 0 else None)
            return wb

        weighted = [dense(wb) for n, wb in zip(self._nodes, self._node_weights(), strict=True) if n["op"] in _LAYERS]
        return {r.name: wb for r, wb in zip(self.layers, weighted, strict=True)}  # type: ignore[misc]

    def binary_layers(self) -> dict[str, BinaryLayer]:
        """Per binary layer name: its signs (int8 +-1), alphas, input and output modes, and its second tensor
        (the bias for output 0, the integer popcount thresholds for output 1)."""
        layers = [wb for n, wb in zip(self._nodes, self._node_weights(), strict=True) if n["op"] in _LAYERS]
        return {r.name: wb for r, wb in zip(self.layers, layers, strict=True) if isinstance(wb, BinaryLayer)}

    def run_numpy(self, *xs: np.ndarray, all_values: bool = False) -> Any:
        """A plain numpy forward pass over :meth:`dense_weights` (float64 accumulation), as float32: a
        reference for the runtime. ``xs``: one batch (batch first) per graph input. Returns the output, or a
        tuple of one per output for a model of several. With ``all_values``, every value of the graph as a
        list (the inputs first, then each node's output)."""
        if len(xs) != len(self.inputs):
            raise ValueError(f"the model takes {len(self.inputs)} inputs, got {len(xs)}")
        arrays = [np.asarray(x) for x in xs]
        for k, (x, (shape, _)) in enumerate(zip(arrays, self.inputs, strict=True)):
            if tuple(x.shape[1:]) != shape:
                who = "input" if len(xs) == 1 else f"input {k}"
                raise ValueError(f"{who} of shape {x.shape}: expected (batch, {', '.join(map(str, shape))})")
        values = reference.forward(self._nodes, self._node_weights(), tuple(arrays), all_values=True)
        if all_values:
            return [v.astype(np.float32) for v in values]
        outs = self.outputs if self.outputs is not None else [len(values) - 1]
        ys = [values[v].astype(np.float32) for v in outs]
        return ys[0] if len(ys) == 1 else tuple(ys)

    def __repr__(self) -> str:
        return (f"<CompressedModel input={self.input_shape} layers={len(self.layers)} "
                f"file_bytes={self.file_bytes} ratio={self.ratio:.1f}x>")


#: the file's layer ops: a node of one has a layer report (constant tensors of other ops do not)
_LAYERS = ("linear", "conv2d", "embedding", "qlinear", "qconv2d", "blinear", "bconv2d")


def _unsupported(msg: str) -> Exception:
    return _core.UnsupportedError(msg)


# Per op of from_numpy's tuples: the Graph method and how many positional arguments it takes (min, max).
_TUPLE_OPS: dict[str, tuple[str, int, int]] = {
    "flatten": ("flatten", 0, 0), "linear": ("linear", 1, 2), "relu": ("relu", 0, 0), "softmax": ("softmax", 0, 0),
    "conv2d": ("conv2d", 1, 2), "max_pool2d": ("max_pool2d", 1, 1), "avg_pool2d": ("avg_pool2d", 1, 1),
    "global_avg_pool": ("global_avg_pool", 0, 0), "relu6": ("relu6", 0, 0), "hardtanh": ("hardtanh", 0, 2),
    "clamp": ("clamp", 0, 2), "reshape": ("reshape", 1, 1),
}


def graph_from_layers(layers: Sequence[tuple], input_shape: Sequence[int]) -> Graph:
    """The chain of :func:`from_numpy`'s layer tuples (see the module docstring) as a :class:`Graph`."""
    g = Graph(input_shape)
    v = g.input
    for i, layer in enumerate(layers):
        if not isinstance(layer, (tuple, list)) or not layer or not isinstance(layer[0], str):
            raise TypeError(f"layer {i}: expected a tuple like ('linear', W, b), got {layer!r}")
        op, rest = layer[0], list(layer[1:])
        if op not in _TUPLE_OPS:
            raise _unsupported(f"layer {i}: unsupported op '{op}' (supported: {', '.join(SUPPORTED_OPS)}; add and "
                               "concat need a Graph)")
        method, lo, hi = _TUPLE_OPS[op]
        kwargs: dict[str, Any] = {}
        if rest and isinstance(rest[-1], dict):
            kwargs = dict(rest.pop())
        name = rest.pop() if rest and isinstance(rest[-1], str) and len(rest) > lo else None
        if not lo <= len(rest) <= hi or any(isinstance(r, (str, dict)) for r in rest):
            args = ", ".join(["W", "b"][:hi] if op in WEIGHTED_OPS else [f"arg{j}" for j in range(hi)])
            raise TypeError(f"layer {i}: expected ('{op}'{', ' + args if args else ''}[, name][, {{kwargs}}]), got "
                            f"{len(layer)} items")
        if name is not None:
            kwargs["name"] = name
        try:
            v = getattr(g, method)(v, *rest, **kwargs)
        except TypeError as e:
            raise TypeError(f"layer {i} ({op}): {e}") from e
    return g


def from_numpy(
    layers: Sequence[tuple],
    input_shape: Sequence[int],
    *,
    sparsity: PerLayer = None,
    bits: PerLayer = None,
    masks: dict[str, np.ndarray] | None = None,
    metadata: dict[str, Any] | None = None,
    optimize: str = "size",
    batch: int = 1,
    threads: int = 1,
    size_budget: float | None = None,
    speed_budget: float | None = None,
    cost_model: CostModel | None = None,
    quantize: PerLayerMode = None,
    calibration: Any = None,
) -> CompressedModel:
    """Builds a :class:`CompressedModel` from a chain of layer tuples (see the module docstring).

    ``input_shape`` excludes the batch dimension. The other arguments are those of :func:`from_graph`.
    """
    graph = graph_from_layers(layers, input_shape)
    return from_graph(graph, sparsity=sparsity, bits=bits, masks=masks, metadata=metadata, optimize=optimize,
                      batch=batch, threads=threads, size_budget=size_budget, speed_budget=speed_budget,
                      cost_model=cost_model, quantize=quantize, calibration=calibration)


def from_graph(
    graph: Graph,
    *,
    sparsity: PerLayer = None,
    bits: PerLayer = None,
    masks: dict[str, np.ndarray] | None = None,
    metadata: dict[str, Any] | None = None,
    optimize: str = "size",
    batch: int = 1,
    threads: int = 1,
    size_budget: float | None = None,
    speed_budget: float | None = None,
    cost_model: CostModel | None = None,
    quantize: PerLayerMode = None,
    calibration: Any = None,
) -> CompressedModel:
    """Compresses the weighted layers of ``graph`` and builds a :class:`CompressedModel`.

    ``sparsity=None`` keeps the zeros already in the weights; a number (or per-layer mapping) prunes
    that fraction of each weight by magnitude. ``bits=None`` keeps the fp32 values; a number (or
    mapping) shares each layer's surviving weights among ``2**bits`` k-means centroids. ``masks``
    (layer name -> boolean array of the weight's shape) marks weights that were pruned (False) even if
    their value is not zero. Biases stay dense fp32.

    ``quantize`` makes linear and conv layers int8 (:mod:`pyruntime.convert.quantize`): ``"int8"`` or
    ``"dynamic"`` (per-sample activation scales at run time), ``"static"`` (scales calibrated on
    ``calibration``, inputs of shape ``(N, *input_shape)``), for every layer or per layer name; pruning
    comes first (the survivors are quantized), and a layer is either shared (``bits``) or int8. Its
    weight is stored as int8 or csr+int8, as the objective below prefers.

    Each weight tensor is stored in the encoding the objective prefers among those that represent it
    exactly (:mod:`pyruntime.convert.choose`): ``optimize="size"`` (default) the smallest file, within
    ``speed_budget`` (a factor over the fastest candidate's predicted time) if given;
    ``optimize="speed"`` the fastest at ``batch`` samples on ``threads`` threads, within
    ``size_budget`` (a factor over the smallest candidate's file bytes, per layer): 1.5 when not given,
    so a speed-optimized file is at most 1.5x the size-optimized one; a larger factor allows more, and
    ``size_budget=math.inf`` none (the fastest whatever its size). A layer whose fastest encoding the
    default budget excluded says so in its reason. Times come from ``cost_model`` (default
    :func:`pyruntime.cost.default_cost_model`); a conv layer is predicted by the method the runtime
    will run it by, direct, direct_lanes or im2col, with that method's own terms
    (:class:`pyruntime.cost.conv.ConvCost`).
    The choice and its reason are in the layer reports and in the file's metadata, where
    ``Model.summary()`` finds them.
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"from_graph expects a pyruntime.convert.Graph, got {type(graph).__name__}")
    objective = Objective(optimize=optimize, batch=batch, threads=threads, size_budget=size_budget,
                          speed_budget=speed_budget)
    if cost_model is None:
        from ..cost import default_cost_model

        cost_model = default_cost_model()
    graph.check_complete()
    names = graph.layer_names
    check_layer_names(sparsity, names, "sparsity")
    check_layer_names(bits, names, "bits")
    check_layer_names(quantize, names, "quantize")
    if masks:
        check_layer_names(masks, names, "masks")
    for setting, what in ((sparsity, "sparsity"), (bits, "bits"), (quantize, "quantize"), (masks, "masks")):
        if isinstance(setting, Mapping):
            named = [n for n in graph.binary_layer_names if setting.get(n) is not None]
            if named:
                op = next(n.op for n in graph.nodes if n.name == named[0])
                raise ValueError(f"layer '{named[0]}' is binary ({op}): {what} does not apply to it (a number for "
                                 "every layer leaves binary layers alone)")
    int8 = _int8_plan(graph, quantize, bits, sparsity, masks, calibration)

    nodes: list[dict[str, Any]] = []
    tensors: list[TensorDict] = []
    reports: list[LayerReport] = []
    weighted = [n for n in graph.nodes if n.op in WEIGHTED_OPS or n.op in BINARY_OPS]
    progress = bar(sum(int(np.size(n.weight)) for n in weighted), "converting", unit="weight", unit_scale=True)
    for node in graph.nodes:
        if node.op in WEIGHTED_OPS or node.op in BINARY_OPS:
            progress.set_postfix_str(str(node.name))
        if node.op not in OPS:  # pragma: no cover - the builder only makes known ops
            raise _unsupported(f"unsupported op '{node.op}'")
        d: dict[str, Any] = {"op": node.op, "inputs": list(node.inputs), "tensors": []}
        if node.attrs:
            d["attrs"] = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in node.attrs.items()}
        if node.op in BINARY_OPS:
            report, wt, bt = _binary_layer(node)
            d["tensors"] = [len(tensors)] + ([len(tensors) + 1] if bt is not None else [])
            tensors.append(wt)
            if bt is not None:
                tensors.append(bt)
            reports.append(report)
        elif node.op in WEIGHTED_OPS:
            name = str(node.name)
            cost: Any = cost_model
            if node.op == "conv2d":
                cost = ConvCost.of_node(cost_model, graph.shape(node.inputs[0]), node)
            elif node.op == "linear" and len(node.shape) > 1:  # over the last axis: each row is a sample
                cost = ConvCost(cost_model, 1, math.prod(node.shape[:-1]))
            if name in int8:
                report, wt, bt = _int8_layer(node, int8[name], objective, cost)
                if int8[name].params.mode == "static":  # qlinear / qconv2d: the conv's attributes, then these
                    d["op"] = "q" + node.op
                    d["attrs"] = {**d.get("attrs", {}), **int8[name].params.attrs()}
            else:
                report, wt, bt = _compress_layer(node.op, name, node.weight, node.bias,  # type: ignore[arg-type]
                                                 per_layer(sparsity, name, "sparsity"), per_layer(bits, name, "bits"),
                                                 (masks or {}).get(name), objective, cost)
            d["tensors"] = [len(tensors)] + ([len(tensors) + 1] if bt is not None else [])
            tensors.append(wt)
            if bt is not None:
                tensors.append(bt)
            reports.append(report)
        elif node.op in CONSTANT_OPS and node.weight is not None:  # layer_norm's weight and bias, an operand
            for what, t in (("weight", node.weight), ("bias", node.bias)):
                if t is not None:
                    d["tensors"].append(len(tensors))
                    tensors.append(dense_tensor(f"{node.name or f'node{len(nodes)}.{node.op}'}.{what}", t))
        nodes.append(d)
        if node.op in WEIGHTED_OPS or node.op in BINARY_OPS:
            progress.update(int(np.size(node.weight)))
    progress.close()
    meta = {"producer": "pyruntime.convert", "layers": [r.name for r in reports],
            "encoding_choice": {**objective.to_dict(), "cost_model": cost_model.name,
                                "why": {r.name: r.why for r in reports}}}
    meta.update(metadata or {})
    return CompressedModel(graph.input_shape, nodes, tensors, reports, meta,
                           inputs=list(zip(graph.input_shapes, graph.input_types, strict=True)),
                           outputs=graph.outputs if graph.outputs != [graph.output] else None)


#: Ops a runtime runs on an int8 value as it is (FORMAT.md 2.5), so a static chain stays int8 through them.
INT8_PASS_THROUGH = ("relu", "max_pool2d", "flatten", "reshape")


@dataclass
class _Int8Choice:
    keep: np.ndarray          # the weights pruning keeps (2-D)
    params: Int8Params


def _prune_mask(w: np.ndarray, sparsity: float | None, mask: np.ndarray | None) -> np.ndarray:
    keep = (w != 0) if mask is None else (np.asarray(mask, dtype=bool) & (w != 0))
    if sparsity is not None:
        keep &= magnitude_mask(np.where(keep, w, 0), float(sparsity))
    return keep


def _int8_plan(graph: Graph, quantize: PerLayerMode, bits: PerLayer, sparsity: PerLayer,
               masks: dict[str, np.ndarray] | None, calibration: Any) -> dict[str, _Int8Choice]:
    """Per layer to quantize: what pruning keeps and how its activations are quantized (static scales are
    calibrated here, on the pruned float network; a static layer feeding only (through relu, max_pool2d,
    flatten, reshape) another static layer gives int8 at that layer's input scale, a relu fused as a clamp)."""
    modes: dict[str, str] = {}
    for node in graph.nodes:
        if node.op not in WEIGHTED_OPS:
            continue
        mode = mode_of(quantize, str(node.name))
        if mode is None and "int8" in node.meta:
            mode = "dynamic"  # already int8 in its source (a torch.ao dynamic-quantized Linear)
        if mode is None:
            continue
        if per_layer(bits, str(node.name), "bits") is not None:
            raise ValueError(f"layer '{node.name}': bits (weight sharing) and quantize (int8) exclude each other")
        if mode == "static" and (node.op == "embedding" or graph.n_inputs > 1):
            raise ValueError(f"layer '{node.name}': static int8 takes a layer of a single-input graph that is not an "
                             "embedding ('int8' quantizes the weights alone)")
        modes[str(node.name)] = mode
    if not modes:
        return {}
    keeps = {}
    for node in graph.nodes:
        if node.op in WEIGHTED_OPS:
            w = np.asarray(node.weight, np.float32)
            keeps[node.name] = _prune_mask(w, per_layer(sparsity, str(node.name), "sparsity"),
                                           (masks or {}).get(str(node.name)))
    scales: dict[str, float] = {}
    if "static" in modes.values():
        if calibration is None:
            static = sorted(n for n, m in modes.items() if m == "static")
            raise ValueError(f"static int8 needs calibration= inputs (layers {static})")
        x = check_calibration(calibration, graph.input_shape)
        nodes = [{"op": n.op, "inputs": n.inputs, "attrs": n.attrs} for n in graph.nodes]
        weights = [_binary_reference(n) if n.op in BINARY_OPS else None if n.op not in WEIGHTED_OPS else
                   (np.where(keeps[n.name], n.weight, np.float32(0)).astype(np.float32), n.bias) for n in graph.nodes]
        values = reference.forward(nodes, weights, x, all_values=True)
        for node in graph.nodes:
            if modes.get(str(node.name)) == "static":
                scales[str(node.name)] = activation_scale(values[node.inputs[0]])
    readers: dict[int, list[int]] = {}
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            readers.setdefault(v, []).append(i)
    out: dict[str, _Int8Choice] = {}
    for i, node in enumerate(graph.nodes):
        name = str(node.name)
        if name not in modes:
            continue
        if modes[name] == "dynamic":
            out[name] = _Int8Choice(keeps[name], Int8Params("dynamic"))
            continue
        # follow single readers through the ops the runtime runs on int8 as it is (FORMAT.md 2.5) to a static layer
        value, relu, nxt = graph.n_inputs + i, False, None
        while len(readers.get(value, [])) == 1:
            j = readers[value][0]
            consumer = graph.nodes[j]
            if consumer.op in INT8_PASS_THROUGH:
                relu, value = relu or consumer.op == "relu", graph.n_inputs + j
                continue
            if consumer.op in WEIGHTED_OPS and modes.get(str(consumer.name)) == "static":
                nxt = str(consumer.name)
            break
        lo = 0.0 if (relu and nxt is not None) else -np.inf
        out[name] = _Int8Choice(keeps[name], Int8Params("static", scales[name],
                                                        scales[nxt] if nxt is not None else 0.0, lo, np.inf))
    return out


def _int8_layer(node: Any, choice: _Int8Choice, objective: Objective | None = None,
                cost_model: Any = None) -> tuple[LayerReport, TensorDict, TensorDict | None]:
    """Quantize a linear layer's surviving weights to int8 and store int8 or csr+int8, as the objective
    prefers (:func:`~pyruntime.convert.choose.choose_int8`; default: the smaller)."""
    name = str(node.name)
    shape = tuple(int(d) for d in np.shape(node.weight))
    w = np.asarray(node.weight, np.float32).reshape(shape[0], -1)  # a conv weight as its 2-D view
    keep = np.asarray(choice.keep).reshape(w.shape)
    given = node.meta.get("int8")
    if given is not None:  # its source's own int8 weights, as they are
        q = np.where(keep, given["q"], 0).astype(np.int8)
        scales = np.asarray(given["scales"], np.float32)
    else:
        q, scales = quantize_weight(w, keep)
    cands = {e: {**t, "shape": list(shape)} for e, t in int8_candidates(f"{name}.weight", q, scales).items()}
    sizes = {e: encoded_bytes(t) for e, t in cands.items()}
    picked = choose_int8(cands, sizes, objective or Objective(), cost_model)
    enc = picked.encoding
    wt = cands[enc]
    bt = dense_tensor(f"{name}.bias", node.bias) if node.bias is not None else None
    wq = q.astype(np.float32) * scales[:, None]
    kept = np.where(keep, w, 0)
    err = float(np.linalg.norm(wq - kept) / max(float(np.linalg.norm(kept)), 1e-30))
    p = choice.params
    how = ("dynamic activation scales" if p.mode == "dynamic" else
           f"static: input scale {p.input_scale:.4g}, " + (f"int8 output at scale {p.output_scale:.4g}"
                                                            if p.output_scale > 0 else "float output"))
    why = f"int8 ({how}); {enc}: {picked.why}; weight error {100 * err:.2f}% (RMS)"
    if given is not None:
        why += "; weights imported as int8" + (f" ({given['clamped']} at -128 clamped to -127)" if given["clamped"] else "")
    n_bias = 0 if node.bias is None else np.asarray(node.bias).size
    report = LayerReport(name=name, encoding=enc, shape=shape, nonzeros=int(np.count_nonzero(q)), bits=8,
                         file_bytes=sizes[enc] + (encoded_bytes(bt) if bt is not None else 0),
                         dense_bytes=4 * (w.size + n_bias), candidate_bytes=sizes,
                         predicted_seconds=picked.seconds, why=why, op=node.op, quantize=p.mode, weight_error=err)
    return report, wt, bt


def _binary_reference(node: Any) -> BinaryLayer:
    m = node.meta
    second = m["thresholds"] if node.attrs["output"] == 1 else node.bias
    return BinaryLayer(m["signs"], m["alphas"], second, node.attrs["input"], node.attrs["output"])


def _binary_layer(node: Any) -> tuple[LayerReport, TensorDict, TensorDict | None]:
    """A blinear or bconv2d node's binary weight and its optional second tensor (bias or thresholds), dense f32."""
    name = str(node.name)
    signs, alphas = node.meta["signs"], node.meta["alphas"]
    rows, cols = int(signs.shape[0]), int(signs[0].size)
    wt = binary_tensor(f"{name}.weight", signs, alphas)
    out = int(node.attrs["output"])
    second = node.meta["thresholds"] if out == 1 else node.bias
    bt = None if second is None else dense_tensor(f"{name}.{'thresholds' if out else 'bias'}", second)
    try:
        wbytes = encoded_bytes(wt)
    except _core.UnsupportedError:  # a runtime without binary layers: the size FORMAT.md 3.8 gives
        wbytes = binary_payload_bytes(rows, cols)
    how = ("binary inputs (XNOR-popcount)" if node.attrs["input"] == 0 else "real inputs (binary weights only)")
    if out == 0:
        how += ", real output (alphas * dot + bias)"
    elif node.op == "bconv2d":
        how += ", +-1 output by thresholds (dot + K >= 2 T; a tap in the zero padding contributes 0)"
    else:
        how += ", +-1 output by integer popcount thresholds"
    folded = node.meta.get("folded")
    if folded:
        how += f"; folded: {folded}"
    if node.meta.get("flipped"):
        how += f"; {node.meta['flipped']} rows' signs flipped"
    report = LayerReport(name=name, encoding="binary", shape=tuple(int(d) for d in signs.shape), nonzeros=rows * cols,
                         bits=1, file_bytes=wbytes + (encoded_bytes(bt) if bt is not None else 0),
                         dense_bytes=4 * (rows * cols + rows), candidate_bytes={"binary": wbytes},
                         why=how, op=node.op)
    return report, wt, bt


def _compress_layer(op: str, name: str, w: np.ndarray, b: np.ndarray | None, sparsity: float | None,
                    bits: int | None, mask: np.ndarray | None, objective: Objective,
                    cost_model: CostModel) -> tuple[LayerReport, TensorDict, TensorDict | None]:
    """Prune, share and encode one weight (any rank: encoded as its 2-D view [d0, d1*d2*...], stored with
    its own shape); the bias stays dense."""
    shape = tuple(int(s) for s in w.shape)
    if mask is not None and np.shape(mask) != shape:
        raise ValueError(f"layer '{name}': mask shape {np.shape(mask)} differs from weight shape {shape}")
    keep = (w != 0) if mask is None else (np.asarray(mask, dtype=bool) & (w != 0))
    if sparsity is not None:
        keep &= magnitude_mask(np.where(keep, w, 0), float(sparsity))
    w2 = np.where(keep, w, np.float32(0)).astype(np.float32).reshape(shape[0], -1)
    wt, choice = encode_layer(f"{name}.weight", w2, bits=None if bits is None else int(bits),
                              mask=keep.reshape(w2.shape), objective=objective, cost_model=cost_model,
                              return_choice=True)
    wt = {**wt, "shape": list(shape)}  # same rows and columns: the encoded bytes do not change
    sizes = choice.file_bytes
    bt = dense_tensor(f"{name}.bias", b) if b is not None else None
    file_bytes = sizes[wt["encoding"]] + (int(_core.encoded_tensor_bytes(bt)) if bt is not None else 0)
    n_bias = 0 if b is None else b.size
    k = _shared_values(wt, keep.reshape(w2.shape)) if bits is not None or "centroids" in wt else 0
    if bits is not None and k < 1 << int(bits):
        warnings.warn(f"layer '{name}': bits={int(bits)} asks for {1 << int(bits)} centroids, got {k}: its "
                      f"{int(keep.sum())} surviving weights take only {k} distinct values",
                      stacklevel=_caller_level())
    report = LayerReport(
        name=name, encoding=wt["encoding"], shape=shape, nonzeros=nonzeros(wt),
        bits=int(wt["index_bits"]) if "index_bits" in wt else 32, file_bytes=file_bytes,
        dense_bytes=4 * (w2.size + n_bias), candidate_bytes=sizes, predicted_seconds=choice.seconds, why=choice.why,
        op=op, centroids=k)
    return report, wt, bt


def _caller_level() -> int:
    """The ``stacklevel`` of a warning issued by this function's caller that points at the first frame outside
    pyruntime (the user's call of from_numpy, from_graph, from_torch...)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(2), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def _shared_values(t: TensorDict, keep: np.ndarray) -> int:
    """How many distinct values the surviving weights (``keep``, the 2-D mask) take in the tensor dict ``t``
    (dense, csr, codebook or csr+codebook): the k of a shared layer."""
    enc = t["encoding"]
    if enc == "csr+codebook":
        vals = np.asarray(t["centroids"])[np.unique(np.asarray(t["indices"]))]
    elif enc == "codebook":
        vals = np.asarray(t["centroids"])[np.unique(np.asarray(t["indices"])[keep.ravel()])]
    elif enc == "csr":
        vals = np.asarray(t["values"])
    else:
        vals = np.asarray(t["values"])[keep.ravel()]
    return int(np.unique(vals).size)
