"""Capture of a PyTorch module into the converter's layer list (torch.fx symbolic tracing).

Supported (everything else raises ``pyruntime.UnsupportedError`` naming the op and the module path):

  linear    nn.Linear, F.linear with parameters
  relu      nn.ReLU, F.relu, torch.relu, x.relu()
  flatten   nn.Flatten, torch.flatten, x.flatten / x.view / x.reshape whose result is (batch, -1)
  softmax   nn.Softmax, F.softmax, torch.softmax, x.softmax() over dim 1 / -1 of a flat input
  identity  nn.Identity, nn.Dropout (and F.dropout: conversion is for inference), x.contiguous()
  (folded)  nn.BatchNorm1d right after a Linear: its running statistics are folded into the Linear

Shapes are propagated with the example input (twice its batch, so a reshape that hard-codes the
batch size is caught), so size arithmetic such as ``x.view(x.size(0), -1)`` is understood.
"""
from __future__ import annotations

import operator
from typing import Any

import numpy as np

from .. import _core

try:
    import torch
    import torch.fx
    import torch.nn.functional as F
    from torch import nn
    from torch.fx.passes.shape_prop import ShapeProp
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None  # type: ignore[assignment]

_RELU_FNS: tuple[Any, ...] = ()
_FLATTEN_FNS: tuple[Any, ...] = ()
_SOFTMAX_FNS: tuple[Any, ...] = ()
_IDENTITY_FNS: tuple[Any, ...] = ()
if torch is not None:
    _RELU_FNS = (F.relu, torch.relu, torch.relu_, F.relu_)
    _FLATTEN_FNS = (torch.flatten, torch.reshape)
    _SOFTMAX_FNS = (F.softmax, torch.softmax)
    _IDENTITY_FNS = (F.dropout,)
_IDENTITY_MODULES = ("Identity", "Dropout", "AlphaDropout")
_AUX_FNS = (getattr, operator.getitem, operator.mul, operator.floordiv, operator.add, operator.sub)
_RELU_METHODS = ("relu", "relu_")
_FLATTEN_METHODS = ("view", "reshape", "flatten")
_SOFTMAX_METHODS = ("softmax",)
_IDENTITY_METHODS = ("contiguous",)


def _require_torch() -> None:
    if torch is None:
        raise ImportError("pyruntime.convert.from_torch needs PyTorch (pip install torch)")


def _unsupported(msg: str) -> Exception:
    return _core.UnsupportedError(msg)


def _qualname(target: Any) -> str:
    try:
        return torch.fx.node._get_qualified_name(target)
    except Exception:  # noqa: BLE001 - best effort for a message
        return getattr(target, "__name__", repr(target))


def _where(node: Any, root: Any) -> str:
    """Module path of the code that created ``node`` (the root module's class if at top level)."""
    if node.op == "call_module":
        return f"module '{node.target}'"
    stack = node.meta.get("nn_module_stack")
    if stack:
        path, entry = list(stack.items())[-1]
        cls = entry[1] if isinstance(entry, tuple) and len(entry) > 1 else None
        return f"module '{path}'" + (f" ({getattr(cls, '__name__', cls)})" if cls is not None else "")
    return f"the forward of {type(root).__name__} (root module)"


def _shape(node: Any) -> tuple[int, ...] | None:
    tm = node.meta.get("tensor_meta")
    return tuple(int(s) for s in tm.shape) if tm is not None and hasattr(tm, "shape") else None


def _softmax_dim(node: Any) -> Any:
    if node.op == "call_module":
        return None  # read from the module
    if "dim" in node.kwargs:
        return node.kwargs["dim"]
    return node.args[1] if len(node.args) > 1 else None


def _linear_weights(mod: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Effective weight, bias and pruning mask of an nn.Linear (honouring torch.nn.utils.prune)."""
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


def capture(module: Any, example_input: Any) -> tuple[list[int], list[tuple], dict[str, np.ndarray]]:
    """Traces ``module`` into ``(input_shape, layers, masks)`` for :func:`pyruntime.convert.from_numpy`.

    Linear layers are named by their module path (``"fc1"``, ``"0"``, ``"body.2"``).
    """
    _require_torch()
    if not isinstance(module, nn.Module):
        raise TypeError(f"from_torch expects a torch.nn.Module, got {type(module).__name__}")
    x = example_input if isinstance(example_input, torch.Tensor) else torch.as_tensor(np.asarray(example_input))
    if x.dim() < 2:
        raise ValueError(f"example_input must have a batch dimension first, got shape {tuple(x.shape)}")
    try:
        gm = torch.fx.symbolic_trace(module)
    except Exception as e:
        raise _unsupported(f"could not trace {type(module).__name__} with torch.fx ({type(e).__name__}: {e}); "
                           "only straight-line forwards of supported ops can be converted") from e
    gm.graph.eliminate_dead_code()
    gm.recompile()

    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise _unsupported(f"{type(module).__name__}.forward takes {len(placeholders)} inputs; exactly one "
                           "tensor input is supported")
    # Early, shape-free check so an unsupported op is named even if it would fail on the example input.
    for node in gm.graph.nodes:
        _classify(node, gm, module, shapes_known=False)

    was_training = gm.training
    gm.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.cat([x, x]).float() if x.is_floating_point() else torch.cat([x, x]))
    except Exception as e:
        raise ValueError(f"running {type(module).__name__} on the example input {tuple(x.shape)} failed: "
                         f"{type(e).__name__}: {e}") from e
    finally:
        gm.train(was_training)

    value_of: dict[Any, int] = {placeholders[0]: 0}
    layers: list[tuple] = []
    masks: dict[str, np.ndarray] = {}
    last = 0  # value produced by the last emitted layer
    output_value: int | None = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            out = node.args[0]
            if not isinstance(out, torch.fx.Node) or out not in value_of:
                raise _unsupported(f"{type(module).__name__}.forward must return a single tensor")
            output_value = value_of[out]
            continue
        kind = _classify(node, gm, module, shapes_known=True)
        if kind in ("aux", "param"):
            continue
        src = node.args[0] if node.args else None
        if kind == "linear" and node.op == "call_function":
            src = node.args[0]
        if not isinstance(src, torch.fx.Node) or src not in value_of:
            raise _unsupported(f"op '{_node_label(node)}' in {_where(node, module)} reads something other than "
                               "the network's activations; only a chain of supported ops is supported")
        v = value_of[src]
        if kind == "identity":
            value_of[node] = v
            continue
        if v != last:
            raise _unsupported(f"op '{_node_label(node)}' in {_where(node, module)} reads an activation that is "
                               "also used elsewhere; only a chain of ops (no branches) is supported")
        in_shape = _shape(src)
        if kind == "flatten":
            if in_shape is not None and len(in_shape) == 2:
                value_of[node] = v  # already flat: a no-op
                continue
            layers.append(("flatten",))
        elif kind == "relu":
            layers.append(("relu",))
        elif kind == "softmax":
            if in_shape is None or len(in_shape) != 2:
                raise _unsupported(f"softmax in {_where(node, module)} on a {in_shape} input: only softmax over "
                                   "the features of a flat (batch, features) input is supported")
            layers.append(("softmax",))
        elif kind == "batchnorm":
            if not layers or layers[-1][0] != "linear" or in_shape is None or len(in_shape) != 2:
                raise _unsupported(f"batch norm {_where(node, module)} must directly follow a Linear layer on a "
                                   "(batch, features) input, to be folded into it")
            layers[-1] = _fold_batchnorm(layers[-1], gm.get_submodule(node.target))
            value_of[node] = last
            continue
        elif kind == "linear":
            if in_shape is None or len(in_shape) != 2:
                raise _unsupported(f"linear {_where(node, module)} applied to a {in_shape} input: flatten to "
                                   "(batch, features) first")
            name, w, b, mask = _linear_of(node, gm)
            layers.append(("linear", w, b, name))
            if mask is not None:
                masks[name] = mask
        last = len(layers)
        value_of[node] = last
    if output_value is None or not layers:
        raise _unsupported(f"{type(module).__name__} computes no supported layer")
    if output_value != last:
        raise _unsupported(f"{type(module).__name__}.forward returns an intermediate activation")
    return [int(s) for s in x.shape[1:]], layers, masks


def _fold_batchnorm(linear: tuple, bn: Any) -> tuple:
    """Linear followed by eval-mode BatchNorm1d == one Linear with rows scaled and the bias shifted:
    W' = W * g, b' = (b - mean) * g + beta, g = gamma / sqrt(var + eps). Pruned zeros stay zero."""
    _, w, b, name = linear
    var = bn.running_var.detach().double().cpu().numpy()
    mean = bn.running_mean.detach().double().cpu().numpy()
    gamma = bn.weight.detach().double().cpu().numpy() if bn.weight is not None else np.ones_like(var)
    beta = bn.bias.detach().double().cpu().numpy() if bn.bias is not None else np.zeros_like(var)
    g = gamma / np.sqrt(var + bn.eps)
    b0 = np.zeros_like(mean) if b is None else b.astype(np.float64)
    w2 = (w.astype(np.float64) * g[:, None]).astype(np.float32)
    b2 = ((b0 - mean) * g + beta).astype(np.float32)
    return ("linear", w2, b2, name)


def _node_label(node: Any) -> str:
    if node.op == "call_module":
        return node.target
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    return _qualname(node.target)


def _classify(node: Any, gm: Any, root: Any, *, shapes_known: bool) -> str:
    """linear | relu | flatten | softmax | batchnorm | identity | aux (size arithmetic) | param | io; raises
    otherwise."""
    op = node.op
    if op in ("placeholder", "output"):
        return "io"
    if op == "get_attr":
        return "param"
    if op == "call_module":
        mod = gm.get_submodule(node.target)
        cls = type(mod)
        if isinstance(mod, nn.Linear) and cls.forward is nn.Linear.forward:
            return "linear"
        if cls is nn.ReLU:
            return "relu"
        if cls is nn.BatchNorm1d:
            if not mod.track_running_stats or mod.running_mean is None:
                raise _unsupported(f"batch norm module '{node.target}' has no running statistics to fold")
            return "batchnorm"
        if cls is nn.Flatten:
            if shapes_known:
                _check_flatten(node, root)
            return "flatten"
        if cls is nn.Softmax:
            if shapes_known:
                _check_softmax_dim(node, mod.dim, root)
            return "softmax"
        if cls.__name__ in _IDENTITY_MODULES and cls.__module__.startswith("torch.nn"):
            return "identity"
        raise _unsupported(f"unsupported module '{node.target}' ({cls.__module__}.{cls.__name__}); "
                           "supported: Linear, ReLU, Flatten, Softmax, Dropout, Identity, BatchNorm1d after Linear")
    if op == "call_method":
        name = node.target
        if name in ("size", "dim"):
            return "aux"
        kind = _activation_kind(node, root, shapes_known, name,
                                (_RELU_METHODS, _FLATTEN_METHODS, _SOFTMAX_METHODS, _IDENTITY_METHODS))
        if kind:
            return kind
        raise _unsupported(f"unsupported op 'Tensor.{name}' in {_where(node, root)}")
    if op == "call_function":
        fn = node.target
        kind = _activation_kind(node, root, shapes_known, fn, (_RELU_FNS, _FLATTEN_FNS, _SOFTMAX_FNS, _IDENTITY_FNS))
        if kind:
            return kind
        if fn is F.linear:
            return "linear"
        if fn in _AUX_FNS:
            if shapes_known and _shape(node) is not None:
                raise _unsupported(f"unsupported op '{_qualname(fn)}' on activations in {_where(node, root)}")
            return "aux"
        raise _unsupported(f"unsupported op '{_qualname(fn)}' in {_where(node, root)}")
    raise _unsupported(f"unsupported fx node kind '{op}' ({node.target}) in {_where(node, root)}")


def _activation_kind(node: Any, root: Any, shapes_known: bool, key: Any, tables: tuple) -> str | None:
    """relu / flatten / softmax / identity for a Tensor method name or a function, checking the
    flatten and softmax axes when shapes are known; None if ``key`` is none of them."""
    relu, flatten, softmax, identity = tables
    if key in relu:
        return "relu"
    if key in flatten:
        if shapes_known:
            _check_flatten(node, root)
        return "flatten"
    if key in softmax:
        if shapes_known:
            _check_softmax_dim(node, _softmax_dim(node), root)
        return "softmax"
    if key in identity:
        return "identity"
    return None


def _check_flatten(node: Any, root: Any) -> None:
    src = node.args[0]
    ins, outs = _shape(src), _shape(node)
    if ins is None or outs is None:
        return
    if outs != (ins[0], int(np.prod(ins[1:]))):
        raise _unsupported(f"'{_node_label(node)}' in {_where(node, root)} reshapes {ins} to {outs} (example batch "
                           "doubled); only flattening each sample, (batch, ...) -> (batch, features), is supported")


def _check_softmax_dim(node: Any, dim: Any, root: Any) -> None:
    ins = _shape(node.args[0]) if node.args else None
    if ins is None:
        return
    rank = len(ins)
    if rank != 2 or (dim is not None and dim not in (1, -1)):
        raise _unsupported(f"softmax in {_where(node, root)} over dim {dim} of a rank-{rank} input: only "
                           "softmax over the features of a (batch, features) input is supported")


def _linear_of(node: Any, gm: Any) -> tuple[str, np.ndarray, np.ndarray | None, np.ndarray | None]:
    if node.op == "call_module":
        w, b, mask = _linear_weights(gm.get_submodule(node.target))
        return str(node.target), w, b, mask
    # F.linear(x, weight, bias) with get_attr parameters (a bare nn.Linear root, or functional code).
    args = list(node.args) + [None] * 3
    w_node = node.kwargs.get("weight", args[1])
    b_node = node.kwargs.get("bias", args[2])

    def fetch(n: Any) -> Any:
        if n is None:
            return None
        if not isinstance(n, torch.fx.Node) or n.op != "get_attr":
            raise _unsupported(f"F.linear in {_where(node, gm)} with computed weights is not supported")
        obj: Any = gm
        for part in n.target.split("."):
            obj = getattr(obj, part)
        return obj.detach().cpu().float().numpy().astype(np.float32)

    w, b = fetch(w_node), fetch(b_node)
    target = w_node.target
    name = target[: -len(".weight")] if target.endswith(".weight") else ("linear" if target == "weight" else target)
    return name, w, b, None


def assign_weights(module: Any, weights: dict[str, tuple[np.ndarray, np.ndarray | None]]) -> None:
    """Copies ``CompressedModel.dense_weights()`` back into the module's nn.Linear layers (by module
    path), so torch computes with exactly the compressed weights (parity checks, fine-tuning)."""
    _require_torch()
    with torch.no_grad():
        for name, (w, b) in weights.items():
            mod = module if name == "linear" and isinstance(module, nn.Linear) else module.get_submodule(name)
            tw = torch.as_tensor(w)
            if hasattr(mod, "weight_orig"):
                mod.weight_orig.copy_(tw)
                mod.weight_mask.copy_((tw != 0).to(mod.weight_mask.dtype))
                mod.weight = mod.weight_orig * mod.weight_mask
            else:
                mod.weight.copy_(tw)
            if b is not None and mod.bias is not None:
                mod.bias.copy_(torch.as_tensor(b))
