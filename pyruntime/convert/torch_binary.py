"""The binary side of the capture of a PyTorch module (:mod:`.torch_capture`): signs (SignSTE, torch.where of a
comparison, a scalar affine before one), binary weights (BinaryLinear, +-alpha layers, ``binary=``), and the
folding of what lies between a binary layer and the next sign into exact popcount thresholds, or of a batch
norm after a real-output binary layer into its alphas and bias (:mod:`.binarize`).

:class:`_BinaryCapture` is a mixin of the capture's graph walker (``torch_capture._Builder``): it reads the
walker's state (``g``, ``gm``, ``root``, ``binary``, ``value_of``, ``pending``, ``consumed``, ``folded_bn``,
``cap``) and its ``where``, ``src`` and ``_kind_of``.
"""
from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .binarize import (
    candidate_dots,
    fold_batchnorm_output,
    fold_thresholds,
    is_binary_weight,
    sign_params,
    split_binary,
)
from .torch_nodes import _args, _node_label, _unsupported, _where

try:
    import torch
    import torch.fx
    from torch import nn
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None  # type: ignore[assignment]

#: torch.sign and torch.sgn, refused: sign(0) is 0 (filled when torch is importable)
_BAD_SIGNS: tuple[Any, ...] = ()
# comparison functions by name
_COMPARE_NAME: dict[Any, str] = {}
if torch is not None:
    _BAD_SIGNS = (torch.sign, torch.sgn)
    _COMPARE_NAME = {operator.ge: "ge", operator.gt: "gt", operator.le: "le", operator.lt: "lt", torch.ge: "ge",
                     torch.gt: "gt", torch.le: "le", torch.lt: "lt", torch.greater_equal: "ge", torch.greater: "gt",
                     torch.less_equal: "le", torch.less: "lt"}
    from .binary_modules import BinaryConv2d, BinaryLinear

#: ``binary=`` of from_torch: None (automatic), a bool for every linear and conv layer, or per layer name
PerLayerBinary = None | bool | Mapping[str, bool | None]


def check_binary_option(binary: Any) -> None:
    """Refuses a ``binary=`` that is not None, a bool or a mapping layer name -> True / False / None."""
    if binary is not None and not isinstance(binary, (bool, Mapping)):
        raise TypeError(f"binary must be None, a bool or a mapping layer name -> bool, got {type(binary).__name__}")
    if isinstance(binary, Mapping):
        for k, val in binary.items():
            if val is not None and not isinstance(val, bool):
                raise TypeError(f"binary for layer '{k}' must be True, False or None, got {val!r}")


def bad_sign(node: Any, root: Any) -> Exception:
    return _unsupported(f"'{_node_label(node)}' (node '{node.name}') in {_where(node, root)}: torch.sign(0) is 0, which "
                        "a binary network cannot hold (the runtime's sign is +1 at zero); use "
                        "pyruntime.convert.SignSTE or torch.where(x >= 0, 1.0, -1.0)")


@dataclass
class _Pending:
    """A scalar affine of an activation (``chain``: ("mul", a) / ("add", b), in order), perhaps compared with a
    constant (``compare``: (op, c)): held until a sign reads it (the sign op's scale and shift)."""

    base: int
    chain: list[tuple[str, float]]
    compare: tuple[str, float] | None = None


class _BinaryCapture:
    """The graph walker's methods for signs, scalar affines and comparisons before a sign, and binary layers."""

    g: Any
    gm: Any
    root: Any
    binary: PerLayerBinary
    value_of: dict[Any, int]
    pending: dict[Any, _Pending]
    consumed: dict[Any, int]
    folded_bn: set[Any]
    cap: Any

    def where(self, node: Any) -> str:  # pragma: no cover - the walker's
        raise NotImplementedError

    def src(self, node: Any, arg: Any = None) -> int:  # pragma: no cover - the walker's
        raise NotImplementedError

    def _kind_of(self, node: Any) -> str:  # pragma: no cover - the walker's
        raise NotImplementedError

    # -- binary layers --------------------------------------------------------------------------------
    def _binary_weight(self, node: Any, name: str, mod: Any, w: np.ndarray, mask: np.ndarray | None,
                       groups: int = 1) -> tuple[np.ndarray, np.ndarray] | None:
        """(signs, alphas) when this linear or conv layer (``w`` 2-D or 4-D) becomes a binary one (``binary=``),
        else None. A conv's signs are [O, C, kh, kw]; a grouped conv asked to be binary is refused by name."""
        setting = self.binary.get(name) if isinstance(self.binary, Mapping) else self.binary
        if setting is False:
            return None
        who = f"layer '{name}' ({self.where(node)})"
        conv = w.ndim == 4
        if conv and groups != 1 and (setting is True or isinstance(mod, BinaryConv2d)):
            raise _unsupported(f"{who}: a grouped convolution (groups={groups}) cannot be binary: the runtime's "
                               "bconv2d takes groups 1 (leave the layer out of binary=, or use groups=1)")
        if isinstance(mod, (BinaryLinear, BinaryConv2d)):
            with torch.no_grad():
                sw, alpha = mod.binary_weight()
                signs = sw.detach().cpu().numpy().astype(np.int8)
                alphas = (np.ones(signs.shape[0], np.float32) if alpha is None
                          else alpha.detach().cpu().float().numpy().astype(np.float32))
            if not (np.isfinite(alphas).all() and (alphas >= 0).all()):
                raise ValueError(f"{who}: its alphas (mean |W| per {'output channel' if conv else 'row'}) are not "
                                 "finite")
            return signs, alphas
        rows = w.reshape(w.shape[0], -1)
        if setting is True:
            if mask is not None and not np.asarray(mask).all():
                raise ValueError(f"{who}: a pruned layer (torch.nn.utils.prune mask) cannot be binary")
            signs, alphas = split_binary(rows, who)
            return signs.reshape(w.shape), alphas
        if mask is None and groups == 1 and rows.shape[1] >= 2 and is_binary_weight(rows):
            signs, alphas = split_binary(rows, who)
            return signs.reshape(w.shape), alphas
        return None

    @staticmethod
    def _float_weight(mod: Any, w: np.ndarray) -> np.ndarray:
        """The weight a layer kept in float computes with: a BinaryLinear's or BinaryConv2d's ``alpha *
        sign(W)``, any other layer's ``w``."""
        if not isinstance(mod, (BinaryLinear, BinaryConv2d)):
            return w
        with torch.no_grad():
            sw, alpha = mod.binary_weight()
            if alpha is not None:
                sw = sw * alpha.reshape((-1,) + (1,) * (sw.dim() - 1))
            return sw.cpu().float().numpy().astype(np.float32)

    def _binary_layer(self, node: Any, x: int, name: str, signs: np.ndarray, alphas: np.ndarray,
                      bias: np.ndarray | None, mod: Any, conv: dict[str, Any] | None = None) -> int:
        """A binary layer (blinear; bconv2d with ``conv``, its stride, padding and dilation): its sign folded
        into thresholds when it reads binary values and a sign follows (through batch norm, hardtanh, scalar
        affines); else a real output, a batch norm after it folded into its alphas and bias."""
        who = f"layer '{name}' ({self.where(node)})"
        bn_cls = nn.BatchNorm1d if conv is None else nn.BatchNorm2d
        mode = 0 if self.g.is_binary(x) else 1
        chain = self._sign_chain(node, bn_cls) if mode == 0 else None
        folded: list[str] = []

        def emit(signs: np.ndarray, **kw: Any) -> int:
            if conv is None:
                return self.g.blinear(x, signs, alphas, name=name, **kw)
            return self.g.bconv2d(x, signs, alphas, name=name, **conv, **kw)

        def flipped_rows(flip: np.ndarray) -> np.ndarray:
            return np.where(flip.reshape((-1,) + (1,) * (signs.ndim - 1)), -signs, signs).astype(np.int8)

        if chain is not None:
            th = self._thresholds(node, chain, signs, alphas, bias, mod, who, conv is not None)
            v = emit(flipped_rows(th.flip), thresholds=th.T, input=0)
            for n in chain:
                self.consumed[n] = v
            folded, flipped = ["bias"] * (bias is not None) + [_node_label(n) for n in chain], th.flipped
        else:
            flipped = 0
            users = list(node.users)
            bn_node = users[0] if len(users) == 1 and users[0].op == "call_module" else None
            bn = self.gm.get_submodule(bn_node.target) if bn_node is not None else None
            if type(bn) is bn_cls and bn.track_running_stats and bn.running_mean is not None:
                def arr(t: Any) -> np.ndarray | None:
                    return None if t is None else t.detach().double().cpu().numpy()

                alphas, bias, flip = fold_batchnorm_output(alphas, bias, arr(bn.running_mean), arr(bn.running_var),
                                                           arr(bn.weight), arr(bn.bias), float(bn.eps))
                signs = flipped_rows(flip)
                self.folded_bn.add(bn_node)
                folded, flipped = [str(bn_node.target)], int(flip.sum())
            v = emit(signs, bias=bias, input=mode)
        meta = self.g.node_of(v).meta
        meta["folded"], meta["flipped"] = ", ".join(folded), flipped
        out = self.g.node_of(v).attrs["output"]
        self.cap.binary[name] = {"input": mode, "output": out, "folded": folded, "flipped_rows": flipped}
        return v

    def _sign_chain(self, node: Any, bn_cls: Any) -> list[Any] | None:
        """The ops from this layer's output to a sign, each the only reader of the one before (batch norm,
        hardtanh / clamp / relu, identities, scalar affines, then SignSTE or a comparison and torch.where),
        or None when the output does not reach a sign that way."""
        chain: list[Any] = []
        cur = node
        while True:
            users = list(cur.users)
            if len(users) != 1:
                return None
            u = users[0]
            try:
                kind = self._kind_of(u)
            except Exception:  # noqa: BLE001 - not a chain op; the walk reports it
                return None
            first = u.args[0] if u.args else None
            if kind == "sign" and u.op == "call_module" and first is cur:
                return [*chain, u]
            if kind == "batchnorm":
                if type(self.gm.get_submodule(u.target)) is not bn_cls or first is not cur:
                    return None
            elif kind in ("clamp", "relu", "identity"):
                if first is not cur:
                    return None
            elif kind in ("aux", "add", "affine"):
                if self._scalar_affine(u, lambda a, c=cur: a is c) is None:
                    return None
            elif kind == "compare":
                if self._comparison(u, lambda a, c=cur: a is c) is None:
                    return None
                w = list(u.users)
                if len(w) != 1 or w[0].op != "call_function" or w[0].target is not torch.where or \
                        _args(w[0], ("condition", "input", "other")).get("condition") is not u or \
                        self._where_polarity(w[0]) is None:
                    return None
                return [*chain, u, w[0]]
            else:
                return None
            chain.append(u)
            cur = u

    def _thresholds(self, node: Any, chain: list[Any], signs: np.ndarray, alphas: np.ndarray,
                    bias: np.ndarray | None, mod: Any, who: str, conv: bool = False) -> Any:
        """Evaluates the layer's output at every candidate dot (-K..K step 2; for a conv every integer -K..K,
        as a padded window sums fewer taps) with torch's own operations, runs the chain on it, and folds the
        sign's outcome into thresholds (binarize.fold_thresholds)."""
        rows, k = signs.shape[0], int(signs[0].size)
        dots = candidate_dots(k, every_integer=conv).astype(np.float32)
        pos = np.empty((dots.size, rows), dtype=bool)
        step = max(1, (1 << 22) // rows)
        tail = (1, 1) if conv else ()  # a conv's output is [N, O, H, W]: each dot one 1 x 1 image
        flags = [(m, m.training) for m in self.gm.modules()]
        self.gm.eval()
        try:
            with torch.no_grad():
                a = torch.from_numpy(alphas).reshape(rows, *tail)
                b = None if bias is None else torch.from_numpy(bias).reshape(rows, *tail)
                for i0 in range(0, dots.size, step):
                    d = torch.from_numpy(dots[i0:i0 + step]).reshape(-1, 1, *tail).expand(-1, rows, *tail)
                    d = d.contiguous()
                    if isinstance(mod, (BinaryLinear, BinaryConv2d)):
                        y = mod.output_from_dot(d)
                    else:
                        y = d if bool((a == 1).all()) else d * a
                        y = y if b is None else y + b
                    out = self._eval_chain(node, chain, y, who)
                    pos[i0:i0 + step] = (out > 0).reshape(-1, rows).cpu().numpy()
        finally:
            for m, t in flags:
                m.training = t
        return fold_thresholds(pos, who, every_integer=conv)

    def _eval_chain(self, start: Any, chain: list[Any], y: Any, who: str) -> Any:
        env = {start: y}

        def look(a: Any) -> Any:
            if a in env:
                return env[a]
            if a.op == "get_attr":
                return self._attr(a.target)
            raise _unsupported(f"{who}: '{_node_label(a)}' between the layer and its sign reads another activation")

        for n in chain:
            args = torch.fx.node.map_arg(n.args, look)
            kwargs = torch.fx.node.map_arg(n.kwargs, look)
            if n.op == "call_module":
                env[n] = self.gm.get_submodule(n.target)(*args, **kwargs)
            elif n.op == "call_method":
                env[n] = getattr(args[0], n.target)(*args[1:], **kwargs)
            else:
                env[n] = n.target(*args, **kwargs)
        return env[chain[-1]]

    def _attr(self, target: str) -> Any:
        obj: Any = self.gm
        for part in target.split("."):
            obj = getattr(obj, part)
        return obj

    def _const(self, v: Any) -> float | None:
        """A number or a one-element constant tensor as float32 (what torch computes with), else None."""
        if isinstance(v, bool):
            return None
        if isinstance(v, (int, float)):
            return float(np.float32(v))
        if isinstance(v, torch.fx.Node) and v.op == "get_attr":
            t = self._attr(v.target)
            if isinstance(t, torch.Tensor) and t.numel() == 1 and t.dtype != torch.bool:
                return float(np.float32(t.item()))
        return None

    def _is_act(self, a: Any) -> bool:
        """An activation, or a pending scalar affine of one (not a comparison)."""
        return isinstance(a, torch.fx.Node) and (a in self.value_of or (a in self.pending and
                                                                         self.pending[a].compare is None))

    def _scalar_affine(self, node: Any, is_act: Any = None) -> tuple[Any, list[tuple[str, float]]] | None:
        """(the activation, the steps) of ``x * a``, ``a * x``, ``x + b``, ``x - b``, ``b - x``, ``-x`` with
        constant a, b; None for anything else."""
        is_act = is_act or self._is_act
        if node.op == "call_function":
            name = {operator.mul: "mul", torch.mul: "mul", torch.multiply: "mul", operator.sub: "sub",
                    torch.sub: "sub", torch.subtract: "sub", operator.add: "add", torch.add: "add",
                    operator.neg: "neg", torch.neg: "neg"}.get(node.target)
        elif node.op == "call_method":
            name = {"mul": "mul", "multiply": "mul", "sub": "sub", "subtract": "sub", "add": "add",
                    "neg": "neg"}.get(node.target)
        else:
            name = None
        if name is None or node.kwargs.get("alpha", 1) != 1 or set(node.kwargs) - {"alpha", "other"}:
            return None
        args = list(node.args) + ([node.kwargs["other"]] if "other" in node.kwargs else [])
        if name == "neg":
            return (args[0], [("mul", -1.0)]) if len(args) == 1 and is_act(args[0]) else None
        if len(args) != 2:
            return None
        x, c = args
        if is_act(x) and (k := self._const(c)) is not None:
            return x, {"mul": [("mul", k)], "add": [("add", k)], "sub": [("add", -k)]}[name]
        c, x = args
        if is_act(x) and (k := self._const(c)) is not None:
            return x, {"mul": [("mul", k)], "add": [("add", k)], "sub": [("mul", -1.0), ("add", k)]}[name]
        return None

    def _comparison(self, node: Any, is_act: Any = None) -> tuple[Any, str, float] | None:
        """(the activation, ge|gt|le|lt, the constant) of a comparison of an activation with a constant."""
        is_act = is_act or self._is_act
        if node.op == "call_function":
            name = _COMPARE_NAME.get(node.target)
        else:
            name = {"ge": "ge", "greater_equal": "ge", "gt": "gt", "greater": "gt", "le": "le", "less_equal": "le",
                    "lt": "lt", "less": "lt"}.get(node.target)
        args = list(node.args) + ([node.kwargs["other"]] if "other" in node.kwargs else [])
        if name is None or len(args) != 2:
            return None
        if is_act(args[0]) and (c := self._const(args[1])) is not None:
            return args[0], name, c
        if is_act(args[1]) and (c := self._const(args[0])) is not None:  # c >= x is x <= c
            return args[1], {"ge": "le", "gt": "lt", "le": "ge", "lt": "gt"}[name], c
        return None

    def _where_polarity(self, node: Any) -> bool | None:
        """True for torch.where(cond, 1, -1), False for (cond, -1, 1), None for anything else."""
        a = _args(node, ("condition", "input", "other"))
        hi, lo = self._const(a.get("input")), self._const(a.get("other"))
        return True if (hi, lo) == (1.0, -1.0) else False if (hi, lo) == (-1.0, 1.0) else None

    def _pending_of(self, x: Any, steps: list[tuple[str, float]], compare: tuple[str, float] | None = None) -> _Pending:
        if x in self.pending:
            p = self.pending[x]
            return _Pending(p.base, p.chain + steps, compare)
        return _Pending(self.value_of[x], list(steps), compare)

    def _affine(self, node: Any) -> _Pending:
        r = self._scalar_affine(node)
        if r is None:
            raise _unsupported(f"unsupported op '{_node_label(node)}' in {self.where(node)}: only a scalar affine of one "
                               "activation (x * a, x + b, x - b with constants a, b) before a sign is supported")
        return self._pending_of(*r)

    def _compare(self, node: Any) -> _Pending:
        r = self._comparison(node)
        if r is None:
            raise _unsupported(f"unsupported op '{_node_label(node)}' in {self.where(node)}: only the comparison of an "
                               "activation with a constant, as the condition of a sign (torch.where(x >= 0, 1.0, "
                               "-1.0)), is supported")
        x, op, c = r
        return self._pending_of(x, [], (op, c))

    def _sign(self, node: Any) -> int:
        who = f"sign '{_node_label(node)}' (node '{node.name}') in {self.where(node)}"
        if node.op == "call_module":
            x = node.args[0] if node.args else None
            if not self._is_act(x):
                self.src(node)  # raises, naming what it reads
            p, positive = self._pending_of(x, [], ("ge", 0.0)), True
        else:
            positive = self._where_polarity(node)
            cond = _args(node, ("condition", "input", "other")).get("condition")
            if positive is None:
                raise _unsupported(f"'{_node_label(node)}' (node '{node.name}') in {self.where(node)}: only the sign "
                                   "form of torch.where is supported, torch.where(x >= c, 1, -1) or (x < c, -1, 1) "
                                   "with constants")
            p = self.pending.get(cond) if isinstance(cond, torch.fx.Node) else None
            if p is None or p.compare is None:
                raise _unsupported(f"{who}: its condition must be a comparison of an activation with a constant "
                                   "(torch.where(x >= 0, 1.0, -1.0))")
        scale, shift = sign_params(p.chain, p.compare[0], p.compare[1], positive, who)  # type: ignore[index]
        return self.g.sign(p.base, scale, shift)
