"""Helpers on torch.fx nodes shared by the capture of a PyTorch module (:mod:`.torch_capture`) and of its
binary layers (:mod:`.torch_binary`): where a node comes from (for messages), its traced shape, its arguments
by parameter name."""
from __future__ import annotations

from typing import Any

from .. import _core

try:
    import torch
    import torch.fx
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None  # type: ignore[assignment]


def _unsupported(msg: str) -> Exception:
    return _core.UnsupportedError(msg)


def _qualname(target: Any) -> str:
    try:
        name = torch.fx.node._get_qualified_name(target)
    except Exception:  # noqa: BLE001 - best effort for a message
        return getattr(target, "__name__", repr(target))
    return name[1:] if name.startswith("_operator.") else name


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
    tm = node.meta.get("tensor_meta") if isinstance(node, torch.fx.Node) else None
    return tuple(int(s) for s in tm.shape) if tm is not None and hasattr(tm, "shape") else None


def _node_label(node: Any) -> str:
    if node.op == "call_module":
        return node.target
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    return _qualname(node.target)


def _args(node: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The node's arguments by parameter name (positional ones mapped onto ``names``)."""
    out = dict(zip(names, node.args, strict=False))
    out.update(node.kwargs)
    return out
