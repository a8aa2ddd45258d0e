"""Capture of an ONNX model into a :class:`~pyruntime.convert.graph.Graph` (the front end of ``from_onnx``).

The model's nodes are walked in their (topological) order, model-local functions inlined first and nodes no
graph output depends on skipped. Each ONNX value is an activation (a value of the Graph, batch first), a
constant (an initializer, a ``Constant`` node, or anything computed from constants and shapes alone: folded with
numpy by ``onnx.reference`` while converting, the ``Shape -> Gather -> Unsqueeze -> Concat -> Reshape`` chains
exporters emit for reshapes included), or a step of a pattern that becomes one op further on (a Pad before a
Conv, a dynamic quantization's integer product). Everything else raises ``pyruntime.UnsupportedError`` naming
the ONNX op type, the node and what is supported. Each activation's shape is checked against ONNX shape
inference's where that is known.

The batch is the first dim of every graph input, fixed (``dim_value``) or symbolic (``dim_param``); every other
dim of an input must be fixed, since the Graph holds static per-sample shapes. ``Shape`` of an activation gives
the batch as the input's fixed size, or for a symbolic batch as a stand-in number (:data:`SYMBOLIC_BATCH`) that a
``Reshape`` then recognizes as the batch dim; a reshape, transpose, flatten, slice, split, gather or concat that
would move, cut or merge the batch dim is refused. Float inputs are f32 values, integer and bool inputs i32
(token ids, masks); the runtime takes them in the order of the ONNX graph's inputs (initializers listed as inputs
left out). A constant with a leading batch-sized dim that is the same for every sample broadcasts as one sample.

Ops (format version 5 wherever a transformer needs it; :mod:`.onnx_ops` and :mod:`.onnx_patterns` hold most):

  Gemm                linear (transA 0; transB, alpha, beta; the B operand an initializer)
  MatMul              linear when one operand is a constant matrix (x @ W: weight W^T; W @ x over the
                      second-to-last axis), matmul of two activations (attention)
  Conv                conv2d (2-D; 1-D as a conv2d of height 1), any pads / strides / dilations / group / auto_pad
  BatchNormalization  folded into the Conv / Gemm / MatMul (+ bias Add) before it when that layer's output is read
                      by the batch norm alone; otherwise a per-channel mul and add
  Relu, Clip, LeakyRelu, Sigmoid, Tanh, Gelu (opset 20), HardSigmoid, HardSwish, Neg, Pow (exponent 1, 2 or 3)
  Add, Sub, Mul, Div  two activations (numpy broadcasting) or an activation and a constant (c - x too; c / x not)
  Softmax             along any non-batch axis (opset < 13: over the trailing dims from ``axis``)
  LayerNormalization  over the last axis
  MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool (2-D; 1-D through a height of 1); ReduceMean over the
                      spatial axes (2, 3) of an image; a constant Pad of the spatial dims before a Conv or pool
                      (zeros; -inf for MaxPool) becomes its padding
  Resize / Upsample   nearest, by whole factors (modes that repeat each pixel)
  Reshape, Flatten (axis 1), Transpose, Squeeze, Unsqueeze, Concat, Split, Slice, Expand, Identity, Dropout, Cast;
                      Shape and Size of an activation are constants
  Gather              rows of a constant table at i32 ids (embedding); constant indices of an activation (slice +
                      reshape, or a concat of slices)
  GELU patterns       x * 0.5 * (1 + erf(x / sqrt 2)) and the tanh form, in the orders exporters write them -> gelu
  decomposed LN       ReduceMean / Sub / Pow / ReduceMean / Add eps / Sqrt / Div [* weight] [+ bias] -> layer_norm
  quantized           :mod:`.onnx_quant`: DequantizeLinear of integer weights (int8 layers with the file's
                      scales where they are one per output channel), QuantizeLinear / DequantizeLinear pairs on
                      activations (a clamp to their range), DynamicQuantizeLinear + MatMulInteger / ConvInteger

Layer names (what ``sparsity=`` / ``bits=`` / ``quantize=`` mappings and the reports use): the weight
initializer's name without ``.weight`` (and without the ``_quantized`` suffix of quantization tools), when it is
a real name (``fc1.weight`` -> ``fc1``); else the bias initializer's name without ``.bias``; else the node's name
(a TorchScript exporter scope ``/encoder/layer.0/query/MatMul`` -> ``encoder.layer.0.query``); else ``fc<k>`` /
``conv<k>`` / ``embedding<k>``. Generated names (``onnx::MatMul_172``, ``val_42``, ``node_MatMul_41``) are
skipped; a name taken twice gets ``_2``, ``_3`` ... The metadata maps each layer to its ONNX node.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _core
from .graph import MAX_RANK, Graph
from .onnx_ops import Marker, _OnnxOps
from .onnx_patterns import Fusion, emit_fusion, find_fusions
from .onnx_quant import QuantInfo, _OnnxQuant

#: the number a symbolic batch dim stands as while constants are folded (a Shape of an activation); a
#: Reshape whose target has it (or a fixed batch's size) in front keeps the batch dim
SYMBOLIC_BATCH = 65521
_FLOAT_TYPES = (1, 10, 11, 16)            # FLOAT, FLOAT16, DOUBLE, BFLOAT16
_INT_TYPES = (2, 3, 4, 5, 6, 7, 9, 12, 13)  # the integer types and BOOL
_GENERATED = re.compile(r"(.*::.*|val_\d+|_?v_\d+|const_?\d*|node_.*|\d+|.*_output_\d+|initializer_?\d*)")
_RANDOM_OPS = ("RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli")


def _unsupported(msg: str) -> Exception:
    return _core.UnsupportedError(msg)


def require_onnx() -> Any:
    """The onnx module, or a one-line ImportError saying how to get it."""
    try:
        import onnx
    except ImportError:
        raise ImportError('pyruntime.convert.from_onnx needs the onnx package: pip install "pyruntime[onnx]"') \
            from None
    return onnx


def load_model(model: Any) -> Any:
    """An ``onnx.ModelProto`` from a path (str / os.PathLike), the serialized bytes, or a ModelProto."""
    onnx = require_onnx()
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        try:
            return onnx.load_from_string(bytes(model))
        except Exception as e:  # protobuf's DecodeError and friends
            raise ValueError(f"the bytes are not an ONNX model ({type(e).__name__}: {e})") from e
    if isinstance(model, (str, os.PathLike)):
        return onnx.load(os.fspath(model))
    raise TypeError(f"from_onnx expects a path, bytes or an onnx.ModelProto, got {type(model).__name__}")


@dataclass
class Act:
    """An activation: graph value ``v`` holding the ONNX value's per-sample ``shape`` (its batch dim dropped).
    The Graph's shape of ``v`` may differ by a reshape (squeezes and unsqueezes are only made real when an op
    needs them; a per-sample scalar lives as one element)."""

    v: int
    shape: tuple[int, ...]


@dataclass
class Const:
    """A constant: its value, the initializer it was computed from (for layer names), and the integer form it
    was dequantized from (:class:`~pyruntime.convert.onnx_quant.QuantInfo`), if any."""

    value: np.ndarray
    origin: str = ""
    quant: QuantInfo | None = None


@dataclass
class _Absorbed:
    """A layer with what :meth:`_Walker._absorb` folded into it: the ONNX value it computes, its weight, bias and
    int8 form, the bias constant and the batch norm's node."""

    out: str
    w: np.ndarray
    b: np.ndarray | None
    quant: dict[str, Any] | None
    bias: Const | None = None
    bn: str = ""


@dataclass
class OnnxCapture:
    """What :func:`capture` found: the graph; per layer its ONNX node, the batch norm folded into it, how its int8
    weights were imported or why they were dequantized; notes about the model as a whole."""

    graph: Graph
    nodes: dict[str, str] = field(default_factory=dict)
    folded: dict[str, str] = field(default_factory=dict)
    int8: dict[str, str] = field(default_factory=dict)
    dequantized: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    opset: int = 0
    producer: str = ""


def capture(model: Any) -> OnnxCapture:
    """The :class:`OnnxCapture` of an ONNX model (a path, bytes or a ModelProto) for :func:`from_graph`."""
    proto = load_model(model)
    if proto.functions:  # model-local functions (some exporters wrap modules in them): inlined first
        try:
            from onnx import inliner
        except ImportError:  # onnx < 1.16: their call nodes are then refused by domain
            inliner = None
        if inliner is not None:
            proto = inliner.inline_local_functions(proto)
    return _Walker(proto).run()


def node_label(node: Any) -> str:
    name = node.name or (f"output '{node.output[0]}'" if node.output else "unnamed")
    return f"{node.op_type} node '{name}'" if node.name else f"{node.op_type} node ({name})"


def _clean_origin(name: str, suffix: str) -> str | None:
    """A layer name from an initializer name: without quantization suffixes and ``suffix``; None when generated."""
    for s in ("_quantized", "_dequantized", "_DequantizeLinear_Output", "_QuantizeLinear_Output", "_Transposed"):
        name = name.removesuffix(s)
    if not name or _GENERATED.fullmatch(name):
        return None
    if name.endswith(suffix):
        return name[: -len(suffix)] or None
    return name if suffix == ".weight" else None


def _scope_name(node: Any) -> str | None:
    """A layer name from a node name: a TorchScript exporter scope ``/a/b/Op`` -> ``a.b``; generated names None."""
    name = node.name
    if name.startswith("/"):
        parts = [p for p in name.split("/") if p]
        if len(parts) > 1:
            return ".".join(parts[:-1])
        return None
    if not name or _GENERATED.fullmatch(name):
        return None
    return name


class _Walker(_OnnxOps, _OnnxQuant):
    """Walks the ONNX graph in order, keeping each value as an :class:`Act`, a :class:`Const` or a pattern step
    (:class:`~pyruntime.convert.onnx_ops.Marker`), and emitting Graph ops (one ``_op_<OpType>`` method per op
    type, in :mod:`.onnx_ops` and :mod:`.onnx_quant`; the weighted layers here)."""

    def __init__(self, model: Any) -> None:
        onnx = require_onnx()
        from onnx import numpy_helper

        self.onnx = onnx
        self.model = model
        self.gp = model.graph
        self.opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.nodes = list(self.gp.node)
        self.values: dict[str, Any] = {}
        for init in self.gp.initializer:
            self.values[init.name] = Const(numpy_helper.to_array(init), init.name)
        for sparse in self.gp.sparse_initializer:
            self.values[sparse.values.name] = Const(numpy_helper.to_array(sparse), sparse.values.name)
        self.readers: dict[str, list[int]] = {}
        for i, node in enumerate(self.nodes):
            for name in node.input:
                if name:
                    self.readers.setdefault(name, []).append(i)
        self.graph_outputs = [o.name for o in self.gp.output]
        self.consumed: set[int] = self._dead()
        self.layer_counts: dict[str, int] = {}
        self.cap: OnnxCapture | None = None
        self.inferred = self._inferred_shapes()

    # -- set-up ---------------------------------------------------------------------------------------------
    def _dead(self) -> set[int]:
        """The nodes no graph output depends on (skipped: the Graph holds no dead code)."""
        producer = {o: i for i, n in enumerate(self.nodes) for o in n.output if o}
        live: set[int] = set()
        todo = [producer[o] for o in self.graph_outputs if o in producer]
        while todo:
            i = todo.pop()
            if i not in live:
                live.add(i)
                todo.extend(producer[x] for x in self.nodes[i].input if x in producer)
        return set(range(len(self.nodes))) - live

    def _inferred_shapes(self) -> dict[str, list[int | None]]:
        """ONNX shape inference's shapes (None for a symbolic dim), to check each activation's shape against."""
        try:
            inferred = self.onnx.shape_inference.infer_shapes(self.model, strict_mode=False, data_prop=True)
        except Exception:  # noqa: BLE001 - a model shape inference cannot read is still converted
            return {}
        out: dict[str, list[int | None]] = {}
        for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
            t = vi.type.tensor_type
            if t.HasField("shape"):
                out[vi.name] = [int(d.dim_value) if d.HasField("dim_value") else None for d in t.shape.dim]
        return out

    def _inputs(self) -> Graph:
        inits = set(self.values)
        specs, fixed, symbolic = [], set(), False
        for vi in self.gp.input:
            if vi.name in inits:
                continue  # an initializer listed as an input too (older exporters): a constant
            t = vi.type.tensor_type
            if not vi.type.HasField("tensor_type") or not t.HasField("shape"):
                raise _unsupported(f"graph input '{vi.name}' has no tensor shape; inputs are tensors (batch, ...)")
            dims = list(t.shape.dim)
            if len(dims) < 2:
                raise _unsupported(f"graph input '{vi.name}' has rank {len(dims)}; an input is (batch, ...) with "
                                   "at least one per-sample dim")
            if dims[0].HasField("dim_value"):
                fixed.add(int(dims[0].dim_value))
            else:
                symbolic = True
            shape = []
            for k, d in enumerate(dims[1:], 1):
                if not d.HasField("dim_value"):
                    raise _unsupported(f"graph input '{vi.name}' has the symbolic dim '{d.dim_param}' at axis {k}; "
                                       "only the batch (axis 0) may be symbolic: export with fixed per-sample sizes "
                                       "(or fix them with onnx.tools.update_model_dims)")
                shape.append(int(d.dim_value))
            if t.elem_type in _FLOAT_TYPES:
                dtype = "f32"
            elif t.elem_type in _INT_TYPES:
                dtype = "i32"
            else:
                raise _unsupported(f"graph input '{vi.name}' of element type "
                                   f"{self.onnx.TensorProto.DataType.Name(t.elem_type)}: inputs are float (f32) "
                                   "or integer (i32 token ids)")
            specs.append((vi.name, shape, dtype))
        if not specs:
            raise _unsupported("the ONNX graph has no inputs besides its initializers")
        if len(fixed) > 1:
            raise _unsupported(f"the graph inputs have different batch sizes {sorted(fixed)}")
        self.batch = SYMBOLIC_BATCH if symbolic or not fixed else fixed.pop()
        try:
            g = Graph(specs[0][1], specs[0][2])
            for _, shape, dtype in specs[1:]:
                g.add_input(shape, dtype)
        except ValueError as e:
            raise _unsupported(f"graph inputs {[s[0] for s in specs]}: {e}") from e
        for k, (name, shape, _) in enumerate(specs):
            self.values[name] = Act(k, tuple(shape))
        return g

    # -- the walk -------------------------------------------------------------------------------------------
    def run(self) -> OnnxCapture:
        for node in self.nodes:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and not node.input:
                self._assign(node, [Const(v) for v in self._fold(node, [])])  # patterns read them
        self.g = self._inputs()
        self.cap = OnnxCapture(self.g, opset=self.opset, producer=f"{self.model.producer_name} "
                                                                 f"{self.model.producer_version}".strip())
        fusions: dict[int, Fusion] = find_fusions(self)
        for i, node in enumerate(self.nodes):
            if i in self.consumed or (node.op_type == "Constant" and not node.input and node.output[0] in self.values):
                continue
            try:
                if i in fusions:
                    self._emit_fusion(fusions[i])
                    continue
                self._assign(node, self._convert(node))
            except (ValueError, TypeError) as e:
                if isinstance(e, _core.UnsupportedError) and node_label(node) in str(e):
                    raise
                raise _unsupported(f"{node_label(node)}: {e}") from e
            for name in node.output:
                self._check_shape(node, name)
        self._outputs()
        return self.cap

    def _convert(self, node: Any) -> list[Any]:
        if node.domain not in ("", "ai.onnx"):
            raise _unsupported(f"{node_label(node)} of domain '{node.domain}' is not supported; only standard "
                               f"ONNX ops convert ({SUPPORTED})")
        ins = [self.values.get(n) if n else None for n in node.input]
        for n, v in zip(node.input, ins, strict=True):
            if n and v is None:
                raise _unsupported(f"{node_label(node)} reads '{n}', which no node before it computes (the nodes "
                                   "must be in topological order; subgraphs are not supported)")
        present = [v for v in ins if v is not None]
        if all(isinstance(v, Const) for v in present) and node.op_type not in _RANDOM_OPS:
            return self._fold_const(node, present, ins)
        handler = getattr(self, f"_op_{node.op_type}", None)
        if handler is None:
            raise _unsupported(f"unsupported ONNX op '{node.op_type}' ({node_label(node)}); supported: {SUPPORTED}")
        out = handler(node, ins)
        return out if isinstance(out, list) else [out]

    def _emit_fusion(self, f: Fusion) -> None:
        emit_fusion(self, f)

    def _assign(self, node: Any, outs: list[Any]) -> None:
        for name, v in zip(node.output, outs, strict=False):
            if name and v is not None:
                self.values[name] = v

    # -- constants ------------------------------------------------------------------------------------------
    def _fold_const(self, node: Any, present: list[Const], ins: list[Any]) -> list[Any]:
        """A node of constants: computed now (DequantizeLinear keeps its integer form for int8 layers)."""
        if node.op_type == "DequantizeLinear":
            return [self._dequantize_const(node, ins)]
        if node.op_type in ("ConstantOfShape", "Expand", "Tile") and self.batch == SYMBOLIC_BATCH:
            k = 0 if node.op_type == "ConstantOfShape" else 1  # the shape / repeats
            ins = list(ins)
            ins[k] = Const(self._unbatch_shape(ins[k].value), ins[k].origin)
        outs = self._fold(node, [c.value if c is not None else None for c in ins])
        origin = present[0].origin if present and node.op_type in ("Identity", "Cast", "Transpose", "Reshape",
                                                                   "Squeeze", "Unsqueeze", "Flatten") else ""
        return [Const(o, origin) for o in outs]

    def _unbatch_shape(self, shape: np.ndarray) -> np.ndarray:
        """A shape tensor holding the symbolic batch's stand-in in front, with 1 instead (a constant the same for
        every sample is built once and broadcast)."""
        s = np.array(shape, copy=True)
        if s.ndim == 1 and s.size and int(s[0]) == SYMBOLIC_BATCH:
            s[0] = 1
        return s

    def _fold(self, node: Any, values: list[np.ndarray | None]) -> list[Any]:
        """The outputs of ``node`` for constant inputs, with onnx's reference implementation of the op."""
        from onnx import helper
        from onnx.reference import ReferenceEvaluator

        names = [f"in{k}" if v is not None else "" for k, v in enumerate(values)]
        outs = [f"out{k}" for k in range(len(node.output))]
        n = helper.make_node(node.op_type, names, outs)
        n.attribute.extend(node.attribute)
        und = self.onnx.TensorProto.UNDEFINED
        g = helper.make_graph([n], "fold", [helper.make_tensor_value_info(x, und, None) for x in names if x],
                              [helper.make_tensor_value_info(x, und, None) for x in outs])
        feeds = {x: v for x, v in zip(names, values, strict=True) if x}
        # the model's opset first; onnx's reference lacks some old versions of an op (then the newest, which for
        # the ops exporters fold computes the same)
        for opset in dict.fromkeys((max(self.opset, 1), self.onnx.defs.onnx_opset_version())):
            m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                                  ir_version=max(int(self.model.ir_version), 8))
            try:
                res = ReferenceEvaluator(m).run(None, feeds)
                break
            except Exception as e:  # noqa: BLE001 - whatever the reference implementation raises
                err = e
        else:
            raise _unsupported(f"{node_label(node)}: computing it from constants failed ({type(err).__name__}: "
                               f"{err})") from err
        return [np.asarray(r) if r is not None else None for r in res]

    def const(self, node: Any, name: str, what: str) -> Const:
        v = self.values.get(name)
        if not isinstance(v, Const):
            raise _unsupported(f"{node_label(node)}: its {what} ('{name}') must be a constant (an initializer or "
                               "computed from constants), it is computed from the inputs")
        return v

    def ints(self, node: Any, k: int, attr: str | None = None, default: Any = None) -> list[int] | None:
        """Integer list from input ``k`` (a constant) or, for older opsets, attribute ``attr``."""
        if len(node.input) > k and node.input[k]:
            return [int(x) for x in np.asarray(self.const(node, node.input[k], attr or f"input {k}").value).ravel()]
        if attr is not None:
            a = self.attr(node, attr)
            if a is not None:
                return [int(x) for x in a]
        return default

    @staticmethod
    def attr(node: Any, name: str, default: Any = None) -> Any:
        from onnx import helper

        for a in node.attribute:
            if a.name == name:
                v = helper.get_attribute_value(a)
                return v.decode() if isinstance(v, bytes) else v
        return default

    # -- activations ----------------------------------------------------------------------------------------
    def act(self, node: Any, k: int = 0) -> Act:
        """Input ``k`` of ``node`` as an activation (refused, naming it, when it is a constant or a pattern step)."""
        name = node.input[k] if len(node.input) > k else ""
        v = self.values.get(name) if name else None
        if isinstance(v, Act):
            return v
        if isinstance(v, Marker):
            raise _unsupported(f"{node_label(node)} reads '{name}', {v.describe()}")
        raise _unsupported(f"{node_label(node)}: input {k} ('{name}') must be an activation here, not a constant")

    def vid(self, a: Act, node: Any = None) -> int:
        """The graph value of ``a`` with exactly its shape (a reshape added when they differ; a per-sample scalar as
        one element)."""
        shape = a.shape or (1,)
        if self.g.shape(a.v) == shape:
            return a.v
        if len(shape) > MAX_RANK:
            who = node_label(node) if node is not None else "a value"
            raise _unsupported(f"{who}: a per-sample shape {shape} has more than {MAX_RANK} dims")
        a.v = self.g.reshape(a.v, shape)
        return a.v

    def new(self, v: int) -> Act:
        return Act(v, tuple(self.g.shape(v)))

    def full_rank(self, a: Act) -> int:
        return len(a.shape) + 1

    def axis(self, node: Any, axis: int, rank: int, what: str = "axis") -> int:
        """A per-sample axis from an ONNX axis of a rank-``rank`` value (batch included); the batch is refused."""
        ax = int(axis) + rank if int(axis) < 0 else int(axis)
        if not 0 <= ax < rank:
            raise _unsupported(f"{node_label(node)}: {what} {axis} is out of range for rank {rank}")
        if ax == 0:
            raise _unsupported(f"{node_label(node)} works along the batch dim ({what} {axis}); only the per-sample "
                               "dims can be")
        return ax - 1

    def per_sample_const(self, node: Any, c: np.ndarray, rank: int) -> np.ndarray:
        """A constant operand of an op on a rank-``rank`` activation (batch included) as it applies to one sample:
        a leading dim of 1, or of the batch's size when every sample's slice is the same, dropped."""
        c = np.asarray(c)
        if c.ndim > rank:
            raise _unsupported(f"{node_label(node)}: a constant of shape {c.shape} has more dims than the activation "
                               f"(rank {rank}); broadcasting would move the batch dim")
        if c.ndim == rank:
            if c.shape[0] != 1 and (c.shape[0] != self.batch or not (c == c[:1]).all()):
                raise _unsupported(f"{node_label(node)}: a constant of shape {c.shape} differs along the batch dim; "
                                   "a constant is the same for every sample")
            c = c[0]
        return c

    # -- outputs and checks ---------------------------------------------------------------------------------
    def _check_shape(self, node: Any, name: str) -> None:
        v = self.values.get(name)
        dims = self.inferred.get(name)
        if not isinstance(v, Act) or dims is None or not dims:
            return
        if len(dims) != len(v.shape) + 1 or any(d is not None and d != s for d, s in zip(dims[1:], v.shape,
                                                                                          strict=True)):
            raise _unsupported(f"{node_label(node)}: output '{name}' has per-sample shape {v.shape} here, ONNX "
                               f"shape inference gives {dims} (batch first); this use of the op is not supported")

    def _outputs(self) -> None:
        outs = []
        for name in self.graph_outputs:
            v = self.values.get(name)
            if isinstance(v, Act):
                outs.append(self.vid(v))
                continue
            what = "a constant" if isinstance(v, Const) else v.describe() if isinstance(v, Marker) else "not computed"
            raise _unsupported(f"graph output '{name}' is {what}; an output must be computed from the inputs")
        if not self.g.nodes:
            raise _unsupported("the ONNX graph computes no supported op (its outputs are its inputs)")
        if outs != [self.g.output]:
            self.g.set_outputs(outs)

    # -- layers ---------------------------------------------------------------------------------------------
    def layer_name(self, node: Any, weight: Const, bias: Const | None, default: str) -> str:
        """See the module docstring: initializer names, then the node's, then ``<default><k>``; unique."""
        k = self.layer_counts.get(default, 0) + 1
        self.layer_counts[default] = k
        name = (_clean_origin(weight.origin, ".weight") or (_clean_origin(bias.origin, ".bias") if bias else None)
                or _scope_name(node) or f"{default}{k}")
        taken = set(self.g.layer_names)
        base, j = name, 2
        while name in taken:
            name, j = f"{base}_{j}", j + 1
        return name

    def single_reader(self, name: str) -> Any:
        """The one node reading value ``name`` (not yet converted) when nothing else reads it, else None."""
        rs = self.readers.get(name, [])
        if len(rs) != 1 or name in self.graph_outputs or rs[0] in self.consumed:
            return None
        return self.nodes[rs[0]]

    def _absorb(self, out: str, n_out: int, rank: int, channel: int, w: np.ndarray, b: np.ndarray | None,
                quant: dict[str, Any] | None) -> _Absorbed:
        """A bias Add, then a BatchNormalization, reading a layer's output alone, folded into the layer (the bias
        a constant of ``n_out`` values along ``channel``, the output's axis of its channels, batch included)."""
        got = _Absorbed(out, w, b, quant)
        nxt = self.single_reader(out)
        if nxt is not None and nxt.op_type == "Add" and nxt.domain in ("", "ai.onnx"):
            other = [x for x in nxt.input if x != out]
            c = self.values.get(other[0]) if len(other) == 1 else None
            if isinstance(c, Const) and c.value.dtype.kind == "f" and c.value.size == n_out and c.value.ndim <= rank:
                cv = np.asarray(c.value, np.float32)
                if cv.reshape((1,) * (rank - cv.ndim) + cv.shape).shape[channel] == n_out:
                    add = cv.reshape(-1)
                    got.b = add if b is None else (b + add).astype(np.float32)
                    got.bias = c
                    self.consumed.add(self.nodes.index(nxt))
                    got.out = nxt.output[0]
                    nxt = self.single_reader(got.out)
        if nxt is not None and nxt.op_type == "BatchNormalization" and nxt.input[0] == got.out and \
                nxt.domain in ("", "ai.onnx") and int(self.attr(nxt, "training_mode", 0)) == 0 and \
                not self._extra_outputs_read(nxt) and channel == 1:
            params = [self.values.get(x) for x in nxt.input[1:5]]
            if all(isinstance(p, Const) and p.value.size == n_out for p in params):
                gamma, beta, mean, var = (np.asarray(p.value, np.float64).reshape(-1) for p in params)
                g = gamma / np.sqrt(var + float(self.attr(nxt, "epsilon", 1e-5)))
                b0 = np.zeros(n_out) if got.b is None else got.b.astype(np.float64)
                got.w = (w.astype(np.float64) * g.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
                got.b = ((b0 - mean) * g + beta).astype(np.float32)
                self.consumed.add(self.nodes.index(nxt))
                got.bn = nxt.name or nxt.output[0]
                if quant is not None and "q" in quant:
                    got.quant = {"dequantized": "a batch norm is folded into its weights"}
                got.out = nxt.output[0]
        return got

    def emit_linear(self, node: Any, x: Act, w: np.ndarray, b: np.ndarray | None, weight: Const,
                    bias: Const | None, quant: dict[str, Any] | None = None, out: str | None = None) -> None:
        """A linear layer (weight [out, in]) over the last axis of ``x``, with the bias Add and batch norm after it
        folded; binds the ONNX value it computes."""
        rank = len(x.shape) + 1
        a = self._absorb(node.output[0] if out is None else out, int(w.shape[0]), rank, rank - 1, w, b, quant)
        name = self.layer_name(node, weight, bias or a.bias, "fc")
        v = self.g.linear(self.vid(x, node), a.w, a.b, name=name)
        self._layer_done(node, name, v, a)
        self.values[a.out] = self.new(v)

    def emit_conv(self, node: Any, x: Act, w: np.ndarray, b: np.ndarray | None, weight: Const,
                  bias: Const | None, quant: dict[str, Any] | None = None, out: str | None = None,
                  extra_pads: list[int] | None = None) -> None:
        """A Conv (2-D, or 1-D as a conv2d of height 1) with ONNX's attributes (plus the pads of a Pad before it),
        the bias Add and batch norm after it folded."""
        rank = len(x.shape) + 1
        if rank not in (3, 4) or w.ndim != rank:
            raise _unsupported(f"{node_label(node)}: only 1-D and 2-D convolutions are supported (input rank {rank}, "
                               f"weight {w.shape})")
        one_d = rank == 3
        a = self._absorb(node.output[0] if out is None else out, int(w.shape[0]), rank, 1, w, b, quant)
        name = self.layer_name(node, weight, bias or a.bias, "conv")
        w = a.w
        k = list(w.shape[2:])
        strides = list(self.attr(node, "strides", [1] * len(k)))
        dil = list(self.attr(node, "dilations", [1] * len(k)))
        pads = self.spatial_pads(node, x.shape[1:], k, strides, dil)
        if extra_pads is not None:
            pads = [p + e for p, e in zip(pads, extra_pads, strict=True)]
        xv = self.vid(x, node) if not one_d else None
        if one_d:
            img = (x.shape[0], 1, x.shape[1])
            xv = x.v if self.g.shape(x.v) == img else self.g.reshape(self.vid(x, node), img)
            w = w[:, :, None, :]
            k, strides, dil = [1, *k], [1, *strides], [1, *dil]
            pads = [0, pads[0], 0, pads[1]]
        v = self.g.conv2d(xv, w, a.b, stride=strides, padding=pads, dilation=dil,
                          groups=int(self.attr(node, "group", 1)), name=name)
        self._layer_done(node, name, v, a)
        o, _, length = self.g.shape(v)
        self.values[a.out] = Act(v, (o, length)) if one_d else self.new(v)  # 1-D: [O, 1, L] in the graph

    def spatial_pads(self, node: Any, spatial: tuple[int, ...], k: list[int], strides: list[int],
                     dil: list[int]) -> list[int]:
        """ONNX pads [begin..., end...] (auto_pad SAME_UPPER / SAME_LOWER / VALID resolved); for 2-D that is
        (top, left, bottom, right), the Graph's order."""
        n = len(k)
        auto = self.attr(node, "auto_pad", "NOTSET")
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            pads = [0] * (2 * n)
            for i in range(n):
                out = -(-spatial[i] // strides[i])
                total = max((out - 1) * strides[i] + (k[i] - 1) * dil[i] + 1 - spatial[i], 0)
                lo = total // 2 if auto == "SAME_UPPER" else total - total // 2
                pads[i], pads[n + i] = lo, total - lo
            return pads
        if auto == "VALID":
            return [0] * (2 * n)
        return [int(p) for p in self.attr(node, "pads", [0] * (2 * n))]

    def _layer_done(self, node: Any, name: str, v: int, a: _Absorbed | None) -> None:
        """Records the layer's ONNX node and folded batch norm, and its int8 weights (node meta "int8": from_graph
        stores them as they are, a dynamic int8 layer) or why they were dequantized."""
        self.cap.nodes[name] = node.name or node.output[0]
        quant = None if a is None else a.quant
        if a is not None and a.bn:
            self.cap.folded[name] = a.bn
        if quant and "q" in quant:
            self.g.node_of(v).meta["int8"] = {k: quant[k] for k in ("q", "scales", "clamped")}
            self.cap.int8[name] = quant["how"]
        elif quant:
            self.cap.dequantized[name] = quant["dequantized"]

    @staticmethod
    def _take_weight(w: np.ndarray, quant: dict[str, Any] | None) -> np.ndarray:
        """The float weight of an int8 form (exactly q * scales), else ``w``."""
        return quant.pop("weight") if quant and "weight" in quant else w

    # -- Gemm, MatMul, Conv, BatchNormalization -------------------------------------------------------------
    def _op_Gemm(self, node: Any, ins: list[Any]) -> None:
        x = self.act(node, 0)
        if int(self.attr(node, "transA", 0)) or len(x.shape) != 1:
            raise _unsupported(f"{node_label(node)}: only Gemm of a (batch, features) activation, not transposed "
                               "(transA 0), by a constant matrix is supported")
        wc = self.const(node, node.input[1], "B operand (the weight)")
        trans_b = int(self.attr(node, "transB", 0))
        alpha, beta = float(self.attr(node, "alpha", 1.0)), float(self.attr(node, "beta", 1.0))
        w = np.asarray(wc.value, np.float32)
        if w.ndim != 2:
            raise _unsupported(f"{node_label(node)}: a B operand of shape {w.shape}; a matrix is expected")
        w = np.ascontiguousarray(w if trans_b else w.T)
        quant = self.weight_int8(node, wc, axis_out=0 if trans_b else 1, scale=alpha)
        if alpha != 1.0:
            w = (w * np.float32(alpha)).astype(np.float32)
        w = self._take_weight(w, quant)
        b, bc = None, None
        if len(node.input) > 2 and node.input[2]:
            bc = self.const(node, node.input[2], "C operand (the bias)")
            c = np.asarray(bc.value, np.float32)
            if c.size not in (1, w.shape[0]) or (c.ndim == 2 and c.shape[0] != 1):
                raise _unsupported(f"{node_label(node)}: a C operand of shape {c.shape}; only a bias of {w.shape[0]} "
                                   "values (or one) is supported")
            b = (np.broadcast_to(c.reshape(-1), (w.shape[0],)) * np.float32(beta)).astype(np.float32)
        self.emit_linear(node, x, w, b, wc, bc, quant)

    def _op_MatMul(self, node: Any, ins: list[Any]) -> None:
        a, b = ins[0], ins[1]
        if isinstance(a, Act) and isinstance(b, Act):
            ra, rb = self.full_rank(a), self.full_rank(b)
            if ra != rb or ra < 3:
                raise _unsupported(f"{node_label(node)} of two activations of ranks {ra} and {rb}: both must be "
                                   "batches of matrices of the same rank (batch, ..., M, K) @ (batch, ..., K, N)")
            v = self.g.matmul(self.vid(a, node), self.vid(b, node))
            self.values[node.output[0]] = self.new(v)
            return
        if isinstance(a, Act) and isinstance(b, Const):
            if np.asarray(b.value).ndim > self.full_rank(a):
                raise _unsupported(f"{node_label(node)}: a constant of shape {b.value.shape} times an activation of "
                                   f"rank {self.full_rank(a)}: broadcasting would move the batch dim")
            w = self.weight_matrix(node, b, "second")
            quant = self.weight_int8(node, b, axis_out=1) if np.asarray(b.value).ndim == 2 else None
            w = self._take_weight(w, quant)
            if w.shape[0] == 1 and np.asarray(b.value).ndim == 1:  # x @ v: the last axis dropped
                out = node.output[0] + "#column"
                self.emit_linear(node, a, w, None, b, None, quant, out=out)
                col = self.values.pop(out)
                self.values[node.output[0]] = Act(col.v, col.shape[:-1])
                return
            self.emit_linear(node, a, w, None, b, None, quant)
            return
        if isinstance(a, Const) and isinstance(b, Act):
            m = np.asarray(a.value, np.float32)
            if m.ndim != 2 or len(b.shape) < 2:
                raise _unsupported(f"{node_label(node)}: a constant first operand of shape {m.shape} times an "
                                   f"activation of per-sample shape {b.shape}; only a matrix times a batch of "
                                   "matrices is supported")
            r = len(b.shape)
            perm = list(range(r - 2)) + [r - 1, r - 2]
            t = self.new(self.g.transpose(self.vid(b, node), perm))
            name = self.layer_name(node, a, None, "fc")
            v = self.g.linear(t.v, m, None, name=name)
            self._layer_done(node, name, v, None)
            self.values[node.output[0]] = self.new(self.g.transpose(v, perm))
            return
        raise _unsupported(f"{node_label(node)}: unsupported operands {self.describe(a)} and {self.describe(b)}")

    def weight_matrix(self, node: Any, c: Const, which: str) -> np.ndarray:
        """A MatMul's constant operand [K, N] (leading dims of 1 dropped; a vector is one column) as the weight
        [N, K] of a linear layer."""
        m = np.asarray(c.value, np.float32)
        if m.ndim == 1:
            return m[None, :]
        while m.ndim > 2 and m.shape[0] == 1:
            m = m[0]
        if m.ndim != 2:
            raise _unsupported(f"{node_label(node)}: a {which} operand of shape {c.value.shape}; only a constant "
                               "matrix (the same for every sample) is supported")
        return np.ascontiguousarray(m.T)

    def _op_Conv(self, node: Any, ins: list[Any]) -> None:
        x, extra = self.padded_input(node)
        wc = self.const(node, node.input[1], "weight")
        w = np.asarray(wc.value, np.float32)
        quant = self.weight_int8(node, wc, axis_out=0)
        w = self._take_weight(w, quant)
        bc = self.const(node, node.input[2], "bias") if len(node.input) > 2 and node.input[2] else None
        b = None if bc is None else np.asarray(bc.value, np.float32).reshape(-1)
        self.emit_conv(node, x, w, b, wc, bc, quant, extra_pads=extra)

    def _op_BatchNormalization(self, node: Any, ins: list[Any]) -> Act:
        """A batch norm not folded into a layer: x * g + (beta - mean * g) per channel (axis 1)."""
        x = self.act(node, 0)
        if int(self.attr(node, "training_mode", 0)) or self._extra_outputs_read(node):
            raise _unsupported(f"{node_label(node)} in training mode; only inference batch norms are supported")
        gamma, beta, mean, var = (np.asarray(self.const(node, n, "parameter").value, np.float64).reshape(-1)
                                  for n in node.input[1:5])
        g = gamma / np.sqrt(var + float(self.attr(node, "epsilon", 1e-5)))
        shift = beta - mean * g
        tail = (1,) * (len(x.shape) - 1)
        v = self.g.mul(self.vid(x, node), g.astype(np.float32).reshape(-1, *tail))
        return self.new(self.g.add(v, shift.astype(np.float32).reshape(-1, *tail)))

    def describe(self, v: Any) -> str:
        if isinstance(v, Act):
            return f"an activation of per-sample shape {v.shape}"
        if isinstance(v, Const):
            return f"a constant of shape {np.asarray(v.value).shape}"
        if isinstance(v, Marker):
            return v.describe()
        return "nothing"


def _supported_list() -> str:
    ops = sorted({m[4:] for m in dir(_Walker) if m.startswith("_op_")})
    return ", ".join(ops) + ", the erf and tanh forms of GELU, the decomposed LayerNorm, constant subgraphs"


SUPPORTED = _supported_list()
