"""Subgraphs that exporters write for one op the runtime has, found before the walk of :mod:`.onnx_capture` and
emitted as that op where their first node is reached (the other nodes then skipped):

- **GELU, erf form** (torch.onnx before opset 20, TF / Keras exporters): ``x * 0.5 * (1 + erf(x / sqrt 2))`` with
  the division written as ``x / 1.4142`` or ``x * 0.7071``, and the halving in any of the three places exporters
  put it (``(x * u) * 0.5``, ``x * (u * 0.5)``, ``(x * 0.5) * u``; a division by 2 too) -> ``gelu``.
- **GELU, tanh form**: ``x * 0.5 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))`` with ``x^3`` as ``Pow(x, 3)``
  or ``x * x * x`` -> ``gelu(approximate="tanh")``. (Another arrangement is converted op by op: Pow, Mul, Add,
  Tanh are all supported.)
- **LayerNorm, decomposed** (torch.onnx before opset 17): ``d = x - ReduceMean(x)``, ``d / Sqrt(ReduceMean(d^2)
  + eps)`` (``d^2`` as ``Pow(d, 2)`` or ``d * d``; the division as ``d * Reciprocal(...)`` too), then optionally
  ``* weight`` and ``+ bias`` -> ``layer_norm`` over the last axis.

Every intermediate value must be read only inside the pattern (and not be a graph output), and the constants must
be initializers or ``Constant`` nodes; otherwise the nodes are converted one by one (an ``Erf`` or ``Sqrt`` alone
is then refused, naming it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Fusion:
    """One matched pattern: the op it becomes, its input value, the names of its constants, the nodes it covers
    (indices) and the ONNX value it computes."""

    op: str
    x: str
    out: str
    nodes: list[int]
    params: dict[str, Any] = field(default_factory=dict)


class _Matcher:
    """Structural queries over the ONNX graph for the pattern search (readers, producers, constants)."""

    def __init__(self, w: Any) -> None:
        from .onnx_capture import Const

        self.w = w
        self.nodes = w.nodes
        self.producer = {o: i for i, n in enumerate(self.nodes) for o in n.output if o}
        self.consts = {k: np.asarray(v.value) for k, v in w.values.items() if isinstance(v, Const)}

    def readers(self, name: str) -> list[int]:
        return [] if name in self.w.graph_outputs else self.w.readers.get(name, [])

    def only_reader(self, name: str, op: str | tuple[str, ...]) -> int | None:
        rs = self.readers(name)
        ops = (op,) if isinstance(op, str) else op
        return rs[0] if len(rs) == 1 and self.nodes[rs[0]].op_type in ops and self._std(rs[0]) else None

    def _std(self, i: int) -> bool:
        return self.nodes[i].domain in ("", "ai.onnx")

    def scalar(self, name: str) -> float | None:
        c = self.consts.get(name)
        return float(c.reshape(-1)[0]) if c is not None and c.size == 1 and c.dtype.kind == "f" else None

    def other(self, node: Any, name: str) -> str | None:
        """The other input of a two-input node that reads ``name`` once."""
        ins = list(node.input)
        if len(ins) != 2 or ins.count(name) != 1:
            return None
        return ins[1] if ins[0] == name else ins[0]

    def by_const(self, i: int | None, name: str, value: float, ops: tuple[str, ...] = ("Mul",)) -> bool:
        """Node ``i`` is one of ``ops`` of ``name`` and the constant ``value`` (a Div: ``name`` first)."""
        if i is None:
            return False
        n = self.nodes[i]
        if n.op_type not in ops:
            return False
        o = self.other(n, name)
        if o is None or (n.op_type == "Div" and n.input[0] != name):
            return False
        c = self.scalar(o)
        return c is not None and math.isclose(c, value, rel_tol=1e-5)


def find_fusions(w: Any) -> dict[int, Fusion]:
    """The patterns of the module docstring in the walker's ONNX graph, by the index of their first node; their
    other nodes are added to ``w.consumed``."""
    m = _Matcher(w)
    found: dict[int, Fusion] = {}
    taken: set[int] = set()
    for i, node in enumerate(m.nodes):
        if not m._std(i):
            continue
        f = None
        if node.op_type == "Erf":
            f = _gelu_erf(m, i)
        elif node.op_type == "Tanh":
            f = _gelu_tanh(m, i)
        elif node.op_type == "ReduceMean":
            f = _layer_norm(m, i)
        if f is None or taken & set(f.nodes):
            continue
        taken |= set(f.nodes)
        first = min(f.nodes)
        found[first] = f
        w.consumed.update(j for j in f.nodes if j != first)
    return found


def _gelu_erf(m: _Matcher, ie: int) -> Fusion | None:
    """x * 0.5 * (1 + erf(x / sqrt 2)), from the erf: its argument, then the tail."""
    e = m.nodes[ie]
    t = e.input[0]
    ip = m.producer.get(t)
    if ip is None or m.readers(t) != [ie]:
        return None
    p = m.nodes[ip]
    x = None
    if p.op_type == "Div" and m.by_const(ip, p.input[0], math.sqrt(2), ("Div",)):
        x = p.input[0]
    elif p.op_type == "Mul":
        x = next((p.input[k] for k in (0, 1) if m.by_const(ip, p.input[k], 1 / math.sqrt(2))), None)
    if x is None or x in m.consts:
        return None
    ia = m.only_reader(e.output[0], "Add")
    if ia is None or not m.by_const(ia, e.output[0], 1.0, ("Add",)):
        return None
    return _gelu_tail(m, m.nodes[ia].output[0], x, [ip, ie, ia], "none")


def _gelu_tanh(m: _Matcher, it: int) -> Fusion | None:
    """0.5 * x * (1 + tanh(c * (x + 0.044715 * x^3))), from the tanh outwards and inwards."""
    t = m.nodes[it]
    ic = m.producer.get(t.input[0])
    if ic is None or m.readers(t.input[0]) != [it] or m.nodes[ic].op_type != "Mul":
        return None
    c_node = m.nodes[ic]
    inner = None
    for k in (0, 1):
        c = m.scalar(c_node.input[1 - k])
        if c is not None and math.isclose(c, math.sqrt(2 / math.pi), rel_tol=1e-4):
            inner = c_node.input[k]
    iin = m.producer.get(inner) if inner is not None else None
    if iin is None or m.readers(inner) != [ic] or m.nodes[iin].op_type != "Add":
        return None
    add = m.nodes[iin]
    for x, cube_term in ((add.input[0], add.input[1]), (add.input[1], add.input[0])):
        icube = m.producer.get(cube_term)
        if icube is None or m.readers(cube_term) != [iin] or m.nodes[icube].op_type != "Mul":
            continue
        cm = m.nodes[icube]
        cube = None
        for k in (0, 1):
            c = m.scalar(cm.input[1 - k])
            if c is not None and math.isclose(c, 0.044715, rel_tol=1e-4):
                cube = cm.input[k]
        pow_nodes = _cube_nodes(m, cube, x, icube) if cube is not None else None
        if pow_nodes is None:
            continue
        head = [*pow_nodes, icube, iin, ic, it]
        ia = m.only_reader(t.output[0], "Add")
        if ia is None or not m.by_const(ia, t.output[0], 1.0, ("Add",)):
            return None
        u = m.nodes[ia].output[0]
        return _gelu_tail(m, u, x, head + [ia], "tanh")
    return None


def _cube_nodes(m: _Matcher, cube: str, x: str, reader: int) -> list[int] | None:
    """The nodes computing x^3 as Pow(x, 3) or (x * x) * x, read only by ``reader``."""
    ip = m.producer.get(cube)
    if ip is None or m.readers(cube) != [reader]:
        return None
    p = m.nodes[ip]
    if p.op_type == "Pow" and p.input[0] == x and m.scalar(p.input[1]) == 3.0:
        return [ip]
    if p.op_type == "Mul" and x in p.input:
        sq = m.other(p, x)
        isq = m.producer.get(sq) if sq is not None else None
        if isq is not None and m.readers(sq) == [ip] and m.nodes[isq].op_type == "Mul" and \
                list(m.nodes[isq].input) == [x, x]:
            return [isq, ip]
    return None


def _gelu_tail(m: _Matcher, u: str, x: str, nodes: list[int], approximate: str) -> Fusion | None:
    """The product with x and the halving after ``u = 1 + erf(...)`` / ``1 + tanh(...)``, in the three orders
    exporters write: ``(x * u) * 0.5``, ``x * (u * 0.5)``, ``(x * 0.5) * u`` (a division by 2 for the halving
    too)."""
    i1 = m.only_reader(u, ("Mul", "Div"))
    if i1 is None:
        return None
    n1 = m.nodes[i1]
    o1 = m.other(n1, u)
    if n1.op_type == "Mul" and o1 == x:
        i2 = m.only_reader(n1.output[0], ("Mul", "Div"))
        if m.by_const(i2, n1.output[0], 0.5) or m.by_const(i2, n1.output[0], 2.0, ("Div",)):
            return Fusion("gelu", x, m.nodes[i2].output[0], nodes + [i1, i2], {"approximate": approximate})
        return None
    if m.by_const(i1, u, 0.5) or m.by_const(i1, u, 2.0, ("Div",)):
        i2 = m.only_reader(n1.output[0], "Mul")
        if i2 is not None and m.other(m.nodes[i2], n1.output[0]) == x:
            return Fusion("gelu", x, m.nodes[i2].output[0], nodes + [i1, i2], {"approximate": approximate})
        return None
    if n1.op_type == "Mul" and o1 is not None:
        ih = m.producer.get(o1)
        if ih is not None and m.readers(o1) == [i1] and (m.by_const(ih, x, 0.5) or m.by_const(ih, x, 2.0, ("Div",))):
            return Fusion("gelu", x, n1.output[0], nodes + [i1, ih], {"approximate": approximate})
    return None


def _reduce_axes(m: _Matcher, i: int) -> list[int] | None:
    n = m.nodes[i]
    if int(m.w.attr(n, "keepdims", 1)) != 1:
        return None
    if len(n.input) > 1 and n.input[1]:
        c = m.consts.get(n.input[1])
        return None if c is None else [int(a) for a in c.reshape(-1)]
    axes = m.w.attr(n, "axes")
    return None if axes is None else [int(a) for a in axes]


def _layer_norm(m: _Matcher, i1: int) -> Fusion | None:
    r1 = m.nodes[i1]
    x = r1.input[0]
    axes = _reduce_axes(m, i1)
    if axes is None or len(axes) != 1 or x in m.consts:
        return None
    isub = m.only_reader(r1.output[0], "Sub")
    if isub is None or list(m.nodes[isub].input) != [x, r1.output[0]]:
        return None
    d = m.nodes[isub].output[0]
    rd = sorted(set(m.readers(d)))
    if len(rd) != 2:
        return None
    square = [j for j in rd if (m.nodes[j].op_type == "Pow" and m.nodes[j].input[0] == d and
                                m.scalar(m.nodes[j].input[1]) == 2.0) or
              (m.nodes[j].op_type == "Mul" and list(m.nodes[j].input) == [d, d])]
    if len(square) != 1:
        return None
    ipow = square[0]
    idiv = next(j for j in rd if j != ipow)
    i2 = m.only_reader(m.nodes[ipow].output[0], "ReduceMean")
    if i2 is None or _reduce_axes(m, i2) != axes:
        return None
    iadd = m.only_reader(m.nodes[i2].output[0], "Add")
    eps = m.scalar(m.other(m.nodes[iadd], m.nodes[i2].output[0]) or "") if iadd is not None else None
    if eps is None:
        return None
    isq = m.only_reader(m.nodes[iadd].output[0], "Sqrt")
    if isq is None:
        return None
    s = m.nodes[isq].output[0]
    nodes = [i1, isub, ipow, i2, iadd, isq]
    dv = m.nodes[idiv]
    if dv.op_type == "Div" and list(dv.input) == [d, s] and m.readers(s) == [idiv]:
        nodes.append(idiv)
    elif dv.op_type == "Mul":
        irec = m.only_reader(s, "Reciprocal")
        if irec is None or m.other(dv, d) != m.nodes[irec].output[0] or m.readers(m.nodes[irec].output[0]) != [idiv]:
            return None
        nodes += [irec, idiv]
    else:
        return None
    out, params = dv.output[0], {"eps": eps, "axes": axes, "weight": None, "bias": None}
    im = m.only_reader(out, "Mul")
    if im is not None:
        wname = m.other(m.nodes[im], out)
        if wname in m.consts and m.consts[wname].dtype.kind == "f":
            params["weight"] = wname
            nodes.append(im)
            out = m.nodes[im].output[0]
    ib = m.only_reader(out, "Add")
    if ib is not None:
        bname = m.other(m.nodes[ib], out)
        if bname in m.consts and m.consts[bname].dtype.kind == "f":
            params["bias"] = bname
            nodes.append(ib)
            out = m.nodes[ib].output[0]
    return Fusion("layer_norm", x, out, nodes, params)


def emit_fusion(w: Any, f: Fusion) -> None:
    """Emits a matched pattern as its op (at its first node) and binds the value it computes."""
    from .onnx_capture import _unsupported, node_label

    first = w.nodes[min(f.nodes)]
    xv = w.values.get(f.x)
    from .onnx_capture import Act

    if not isinstance(xv, Act):
        raise _unsupported(f"{node_label(first)}: the input of the {f.op} pattern starting here is not an activation")
    if f.op == "gelu":
        w.values[f.out] = Act(w.g.gelu(w.vid(xv, first), f.params["approximate"]), xv.shape)
        return
    rank = len(xv.shape) + 1
    if [a % rank for a in f.params["axes"]] != [rank - 1]:
        raise _unsupported(f"{node_label(first)}: a decomposed layer norm over axes {f.params['axes']} of a "
                           f"rank-{rank} value; only the last axis is supported")
    n = xv.shape[-1]

    def vec(name: str | None) -> np.ndarray | None:
        if name is None:
            return None
        c = np.asarray(w.values[name].value, np.float32)
        if c.size == 1:
            return np.full(n, float(c.reshape(-1)[0]), np.float32)
        if c.shape[-1] != n or c.size != n:
            raise _unsupported(f"{node_label(first)}: a layer norm {name!r} of shape {c.shape} does not match the "
                               f"last axis ({n})")
        return c.reshape(-1)

    v = w.g.layer_norm(w.vid(xv, first), vec(f.params["weight"]), vec(f.params["bias"]), f.params["eps"])
    w.values[f.out] = Act(v, xv.shape)
