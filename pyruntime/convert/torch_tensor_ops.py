"""The capture of a PyTorch module's transformer and tensor ops (format version 5), mixed into the graph
walker of :mod:`.torch_capture`: constants computed at conversion time, arithmetic with broadcasting,
matmul of activations, transposes and indexing, layer norm, the activation functions, embeddings, and the
CNN ops Conv1d, Upsample (nearest) and adaptive average pooling.

Constants: a node whose inputs are all constants (parameters, buffers, numbers, the sizes of activations)
is computed with torch while converting and never becomes an op: ``self.position_ids[:, :seq_len]`` and the
position embeddings of it, say. A constant is then an operand of add, sub, mul or div (a tensor of the
file, broadcast over every sample: a leading dim of 1 standing for the batch is dropped).

Shapes are per sample: the batch dim of torch's tensors is never part of an op; an op that would move or
broadcast it (a transpose of dim 0, two activations of different ranks added) is refused, naming it.
"""
from __future__ import annotations

import operator
from typing import Any

import numpy as np

from .torch_nodes import _args, _node_label, _shape, _unsupported

try:
    import torch
    import torch.fx
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None  # type: ignore[assignment]

#: call_function targets of the kinds this module emits (merged into torch_capture's table)
TENSOR_FNS: dict[Any, str] = {}
#: Tensor methods of those kinds
TENSOR_METHODS = {"matmul": "matmul", "transpose": "transpose", "permute": "transpose", "unsqueeze": "reshape",
                  "squeeze": "reshape", "sigmoid": "sigmoid", "tanh": "tanh", "to": "identity", "type_as": "identity",
                  "div": "arith", "truediv": "arith", "__getitem__": "getitem", "split": "split", "chunk": "split"}
#: module classes of those kinds
TENSOR_MODULES: dict[Any, str] = {}
#: the methods whose result is a size, never an activation
SIZE_METHODS = ("size", "dim")
_ARITH_FNS: dict[Any, str] = {}
if torch is not None:
    for _kind, _fns in {
        "layernorm": (F.layer_norm,),
        "gelu": (F.gelu,),
        "silu": (F.silu,),
        "sigmoid": (torch.sigmoid, F.sigmoid),
        "tanh": (torch.tanh, F.tanh),
        "leakyrelu": (F.leaky_relu,),
        "embedding": (F.embedding,),
        "matmul": (torch.matmul, operator.matmul, torch.bmm),
        "transpose": (torch.transpose, torch.permute),
        "reshape": (torch.unsqueeze, torch.squeeze),
        "arith": (operator.truediv, torch.div, torch.true_divide),
        "upsample": (F.interpolate,),
        "conv1d": (F.conv1d,),
        "split": (torch.split, torch.chunk),
    }.items():
        for _f in _fns:
            TENSOR_FNS[_f] = _kind
    _ARITH_FNS = {operator.add: "add", torch.add: "add", operator.iadd: "add", operator.sub: "sub", torch.sub: "sub",
                  torch.subtract: "sub", operator.mul: "mul", torch.mul: "mul", torch.multiply: "mul",
                  operator.truediv: "div", torch.div: "div", torch.true_divide: "div"}
    TENSOR_MODULES = {nn.LayerNorm: "layernorm", nn.GELU: "gelu", nn.SiLU: "silu", nn.Sigmoid: "sigmoid",
                      nn.Tanh: "tanh", nn.LeakyReLU: "leakyrelu", nn.Embedding: "embedding", nn.Conv1d: "conv1d",
                      nn.Upsample: "upsample"}
_ARITH_METHODS = {"add": "add", "add_": "add", "sub": "sub", "subtract": "sub", "mul": "mul", "multiply": "mul",
                  "div": "div", "truediv": "div"}


def _number_or(c: np.ndarray) -> Any:
    """A one-element constant of rank 0 or 1 as a number (a scalar operand), else the array."""
    return float(c.reshape(-1)[0]) if c.size == 1 and c.ndim <= 1 else c


class _TensorCapture:
    """The graph walker's methods for constants and the ops of format version 5 (``_attr``, a parameter or
    buffer by path, is the binary capture's)."""

    g: Any
    gm: Any
    root: Any
    value_of: dict[Any, int]
    static: dict[Any, Any]
    pieces: dict[Any, list[int]]
    cap: Any

    def where(self, node: Any) -> str:  # pragma: no cover - the walker's
        raise NotImplementedError

    def src(self, node: Any, arg: Any = None) -> int:  # pragma: no cover - the walker's
        raise NotImplementedError

    def _layer_name(self, node: Any, name: str) -> str:  # pragma: no cover - the walker's
        raise NotImplementedError

    def _label(self, node: Any) -> str:
        return f"'{_node_label(node)}' in {self.where(node)}"

    # -- constants ------------------------------------------------------------------------------------
    def _eval_static(self, node: Any) -> Any:
        """The value of a node computed from constants and sizes alone (torch, while converting)."""
        def val(a: Any) -> Any:
            return self.static[a] if isinstance(a, torch.fx.Node) else a

        args = torch.fx.node.map_aggregate(node.args, val)
        kwargs = torch.fx.node.map_aggregate(node.kwargs, val)
        with torch.no_grad():
            if node.op == "get_attr":
                return self._attr(node.target)
            if node.op == "call_function":
                return node.target(*args, **kwargs)
            if node.op == "call_method":
                return getattr(args[0], node.target)(*args[1:], **kwargs)
            return self.gm.get_submodule(node.target)(*args, **kwargs)

    def _size_of(self, node: Any) -> Any:
        """x.size(...), x.dim(), x.shape of an activation, from its traced shape (the batch is the example's)."""
        x = node.args[0]
        shape = torch.Size(_shape(x) or ())
        if node.op == "call_method" and node.target == "dim":
            return len(shape)
        if node.op == "call_method":
            dim = _args(node, ("self", "dim")).get("dim")
            return shape if dim is None else shape[dim]
        return shape  # getattr(x, "shape")

    def _constant(self, a: Any, node: Any) -> np.ndarray | None:
        """An operand that is a constant (a number, a parameter, a computed constant) as float32 per sample: a
        leading dim of 1 (the batch's place, when it has the rank of the node's result) dropped; None for an
        activation."""
        if isinstance(a, torch.fx.Node) and a not in self.static:
            return None
        v = self.static[a] if isinstance(a, torch.fx.Node) else a
        t = torch.as_tensor(v).detach().float().cpu().numpy().astype(np.float32)
        rank = len(_shape(node) or ())
        if t.ndim == rank and rank > 0:
            if t.shape[0] != 1:
                raise _unsupported(f"{self._label(node)}: a constant of shape {tuple(t.shape)} varies along the batch "
                                   "dim; a constant is the same for every sample")
            t = t[0]
        return t

    # -- arithmetic -----------------------------------------------------------------------------------
    def _arith(self, node: Any) -> int:
        if node.op == "call_function":
            op = _ARITH_FNS.get(node.target)
        else:
            op = _ARITH_METHODS.get(node.target)
        if op is None:
            raise _unsupported(f"unsupported op {self._label(node)}")
        args = list(node.args) + [node.kwargs[k] for k in ("other",) if k in node.kwargs]
        if node.kwargs.get("alpha", 1) != 1 or node.kwargs.get("rounding_mode") is not None or len(args) != 2:
            raise _unsupported(f"{self._label(node)}: only a plain {op} of two operands is supported")
        a, b = args
        ca, cb = self._constant(a, node), self._constant(b, node)
        if ca is not None and cb is not None:  # pragma: no cover - folded as a constant before
            raise _unsupported(f"{self._label(node)} of two constants")
        if ca is None and cb is None:
            ra, rb = len(_shape(a) or ()), len(_shape(b) or ())
            if ra != rb:
                raise _unsupported(f"{self._label(node)} of activations of ranks {ra} and {rb}: broadcasting would "
                                   "align the batch dim with another")
            return getattr(self.g, op)(self.src(node, a), self.src(node, b))
        if ca is None:  # activation op constant
            return getattr(self.g, op)(self.src(node, a), _number_or(cb))
        x = self.src(node, b)  # constant op activation
        if op in ("add", "mul"):
            return getattr(self.g, op)(x, _number_or(ca))
        if op == "sub":  # c - x == (-x) + c, exactly
            return self.g.add(self.g.mul(x, -1.0), _number_or(ca))
        raise _unsupported(f"{self._label(node)}: a constant divided by an activation is not supported")

    # -- matmul, transposes, indexing -----------------------------------------------------------------
    def _matmul(self, node: Any) -> int:
        a, b = node.args[0], node.args[1] if len(node.args) > 1 else node.kwargs.get("other")
        if self._constant(a, node) is not None or self._constant(b, node) is not None:
            raise _unsupported(f"{self._label(node)} with a constant operand: write it as an nn.Linear")
        ra, rb = len(_shape(a) or ()), len(_shape(b) or ())
        if ra != rb or ra < 3:
            raise _unsupported(f"{self._label(node)} of ranks {ra} and {rb}: both operands must be batches of matrices "
                               "of the same rank")
        return self.g.matmul(self.src(node, a), self.src(node, b))

    def _transpose(self, node: Any) -> int:
        x = self.src(node)
        rank = len(_shape(node.args[0]) or ())
        if node.target in ("permute",) or node.target is getattr(torch, "permute", None):
            dims = list(node.args[1:]) if node.op == "call_method" else list(node.args[1])
            if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
                dims = list(dims[0])
            perm = [int(d) % rank for d in dims]
        else:
            d0, d1 = (int(d) % rank for d in node.args[1:3])
            perm = list(range(rank))
            perm[d0], perm[d1] = perm[d1], perm[d0]
        if perm[0] != 0:
            raise _unsupported(f"{self._label(node)} moves the batch dim (permutation {perm})")
        per_sample = [p - 1 for p in perm[1:]]
        if per_sample == sorted(per_sample):
            return x
        return self.g.transpose(x, per_sample)

    def _split(self, node: Any) -> list[int]:
        """torch.split / chunk of an activation along a non-batch dim: one slice per piece (x.split(768, -1)
        of a fused qkv projection, say); getitem takes a piece."""
        x = self.src(node)
        shape = _shape(node.args[0]) or ()
        chunk = node.target == "chunk" or node.target is getattr(torch, "chunk", None)
        names = ("input", "chunks", "dim") if chunk else ("input", "split_size_or_sections", "dim")
        a = _args(node, names)
        if node.op == "call_method" and "split_size" in a:
            a["split_size_or_sections"] = a.pop("split_size")
        d = int(a.get("dim", 0)) % max(len(shape), 1)
        if d == 0:
            raise _unsupported(f"{self._label(node)} splits the batch dim")
        n = shape[d]
        if chunk:
            step = -(-n // int(a["chunks"]))
            sizes = [min(step, n - i) for i in range(0, n, step)]
        elif isinstance(a["split_size_or_sections"], int):
            step = int(a["split_size_or_sections"])
            sizes = [min(step, n - i) for i in range(0, n, step)]
        else:
            sizes = [int(t) for t in a["split_size_or_sections"]]
        out, at = [], 0
        for size in sizes:
            out.append(x if size == n else self.g.slice(x, d - 1, at, at + size))
            at += size
        return out

    def _getitem(self, node: Any) -> int:
        """x[...] of an activation: slices, integers (an axis taken away), None (an axis added), Ellipsis; or
        a piece of a split."""
        if node.args[0] in self.pieces:
            return self.pieces[node.args[0]][int(node.args[1])]
        x = self.src(node)
        shape = list(_shape(node.args[0]) or ())
        idx = node.args[1] if isinstance(node.args[1], tuple) else (node.args[1],)
        if any(isinstance(i, torch.fx.Node) for i in idx):
            idx = tuple(self.static.get(i, i) if isinstance(i, torch.fx.Node) else i for i in idx)
        if any(isinstance(i, (torch.fx.Node, torch.Tensor, list)) for i in idx):
            raise _unsupported(f"{self._label(node)}: only indexing by numbers, slices, None and ... is supported")
        n_axes = sum(1 for i in idx if i is not None and i is not Ellipsis)
        if Ellipsis in idx:
            at = idx.index(Ellipsis)
            idx = idx[:at] + (slice(None),) * (len(shape) - n_axes) + idx[at + 1:]
        axis = 0  # the input axis idx's next entry applies to
        v = x
        for i in idx:
            if i is None:
                continue
            if axis == 0:
                if i != slice(None):
                    raise _unsupported(f"{self._label(node)} indexes the batch dim")
            elif isinstance(i, int):
                j = i % shape[axis]
                v = self.g.slice(v, axis - 1, j, j + 1)
            elif isinstance(i, slice) and i != slice(None):
                lo, hi, st = i.indices(shape[axis])
                if st < 1:
                    raise _unsupported(f"{self._label(node)}: a negative step is not supported")
                if (lo, hi, st) != (0, shape[axis], 1):
                    v = self.g.slice(v, axis - 1, lo, hi, st)
            axis += 1
        out = (_shape(node) or ())[1:]
        if tuple(self.g.shape(v)) != tuple(out):
            v = self.g.reshape(v, out)
        return v

    # -- normalization, activations, embeddings -------------------------------------------------------
    def _layernorm(self, node: Any) -> int:
        x = self.src(node)
        if node.op == "call_module":
            mod = self.gm.get_submodule(node.target)
            shape, eps = tuple(mod.normalized_shape), mod.eps
            w = None if mod.weight is None else mod.weight.detach().float().numpy()
            b = None if getattr(mod, "bias", None) is None else mod.bias.detach().float().numpy()
        else:
            a = _args(node, ("input", "normalized_shape", "weight", "bias", "eps"))
            shape, eps = tuple(a["normalized_shape"]), a.get("eps", 1e-5)
            w = None if a.get("weight") is None else self._constant(a["weight"], node)
            b = None if a.get("bias") is None else self._constant(a["bias"], node)
        last = (_shape(node.args[0]) or (0,))[-1]
        if shape != (last,):
            raise _unsupported(f"{self._label(node)} over {shape}: only a layer norm over the last dim ({last}) is "
                               "supported")
        return self.g.layer_norm(x, w, b, float(eps))

    def _gelu(self, node: Any) -> int:
        if node.op == "call_module":
            approximate = self.gm.get_submodule(node.target).approximate
        else:
            approximate = _args(node, ("input", "approximate")).get("approximate", "none")
        return self.g.gelu(self.src(node), approximate)

    def _silu(self, node: Any) -> int:
        return self.g.silu(self.src(node))

    def _sigmoid(self, node: Any) -> int:
        return self.g.sigmoid(self.src(node))

    def _tanh(self, node: Any) -> int:
        return self.g.tanh(self.src(node))

    def _leakyrelu(self, node: Any) -> int:
        if node.op == "call_module":
            slope = self.gm.get_submodule(node.target).negative_slope
        else:
            slope = _args(node, ("input", "negative_slope", "inplace")).get("negative_slope", 0.01)
        return self.g.leaky_relu(self.src(node), float(slope))

    def _embedding(self, node: Any) -> int:
        if node.op == "call_module":
            mod = self.gm.get_submodule(node.target)
            if mod.max_norm is not None:
                raise _unsupported(f"{self._label(node)} with max_norm (it rescales the table while running)")
            name, table = str(node.target), mod.weight.detach().float().numpy()
            ids = node.args[0]
        else:
            a = _args(node, ("input", "weight", "padding_idx", "max_norm"))
            w = a.get("weight")
            if not (isinstance(w, torch.fx.Node) and w.op == "get_attr") or a.get("max_norm") is not None:
                raise _unsupported(f"{self._label(node)}: only F.embedding of a parameter table is supported")
            name, table, ids = str(w.target).removesuffix(".weight"), self._attr(w.target).detach().float().numpy(), \
                a["input"]
        return self.g.embedding(self.src(node, ids), table.astype(np.float32), name=self._layer_name(node, name))

    # -- CNN ops --------------------------------------------------------------------------------------
    def _conv1d(self, node: Any) -> int:
        """A Conv1d as a conv2d of height 1: [C, L] -> [C, 1, L] -> conv -> [O, L']."""
        from .torch_capture import _module_weights

        x = self.src(node)
        if node.op != "call_module":
            raise _unsupported(f"{self._label(node)}: F.conv1d is not supported; use nn.Conv1d")
        mod = self.gm.get_submodule(node.target)
        if mod.padding_mode != "zeros":
            raise _unsupported(f"{self._label(node)} with padding_mode '{mod.padding_mode}'")
        w, b, mask = _module_weights(mod)
        c, length = self.g.shape(x)
        name = self._layer_name(node, str(node.target))
        pad = mod.padding if isinstance(mod.padding, str) else (0, int(mod.padding[0]))
        v = self.g.conv2d(self.g.reshape(x, (c, 1, length)), w[:, :, None, :], b, stride=(1, int(mod.stride[0])),
                          padding=pad, dilation=(1, int(mod.dilation[0])), groups=int(mod.groups), name=name)
        if mask is not None:
            self.cap.masks[name] = mask[:, :, None, :]
        o, _, out_len = self.g.shape(v)
        return self.g.reshape(v, (o, out_len))

    def _upsample(self, node: Any) -> int:
        if node.op == "call_module":
            mod = self.gm.get_submodule(node.target)
            mode, scale, size = mod.mode, mod.scale_factor, mod.size
        else:
            a = _args(node, ("input", "size", "scale_factor", "mode"))
            mode, scale, size = a.get("mode", "nearest"), a.get("scale_factor"), a.get("size")
        ins, outs = _shape(node.args[0]), _shape(node)
        if mode != "nearest" or ins is None or outs is None or len(ins) != 4:
            raise _unsupported(f"{self._label(node)} (mode {mode!r}): only nearest upsampling of (batch, C, H, W) by "
                               "whole factors is supported")
        sh, sw = outs[2] // ins[2], outs[3] // ins[3]
        if (sh * ins[2], sw * ins[3]) != outs[2:]:
            raise _unsupported(f"{self._label(node)} from {ins[2:]} to {outs[2:]} (scale {scale}, size {size}): only "
                               "whole factors are supported")
        return self.g.upsample_nearest(self.src(node), (sh, sw))
