"""Per-layer time of a run: where a model spends its time (``Model.profile``, ``pyruntime bench --per-layer``).

The runtime times every step of its plan with a steady clock around the step's call: the graph's nodes
and the conversions the plan inserts between value types (quantize, dequantize, bit packing). A split
layer's time includes the wait for the pool's threads, so the rows add up to the run, less the run
loop's own few nanoseconds per step.
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import numpy as np

from ._report import format_table


def profile_rows(core: Any, x: Any, seconds: float) -> list[dict[str, Any]]:
    """One row per step that runs, in run order (aliases, which move no data, are left out).

    Each row: ``step`` (index in the run order), ``node`` (graph node; for a conversion, the node whose
    input it converts, or the node count for the graph output's), ``op`` (a conversion's is
    ``"convert"``), ``layer`` (the weight layer's name, or the conversion made, e.g. ``"f32 -> i8"``),
    ``encoding``, ``method``, ``output_shape`` (per sample), ``seconds`` (mean per run) and ``share`` of
    the rows' total.
    """
    xs = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    for k, a in enumerate(xs):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"input {k} must be a numpy array, got {type(a).__name__}")
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    core.run(*xs)  # warm up: arena, per-thread scratch, caches
    t0 = time.perf_counter()
    core.run(*xs)
    one = max(time.perf_counter() - t0, 1e-7)
    runs = int(min(max(1, seconds / one), 1 << 20))
    steps = core.profile(list(xs), runs)
    layers = core.layers
    rows = []
    for i, s in enumerate(steps):
        if s["alias"]:
            continue
        node = int(s["node"])
        if s["conversion"]:
            rows.append({"step": i, "node": node, "op": "convert", "layer": s["conversion"], "encoding": "",
                         "method": "", "output_shape": tuple(layers[node]["output_shape"]) if node < len(layers)
                         else tuple(core.output_shape), "seconds": float(s["seconds"])})
            continue
        layer = layers[node]
        name = str(layer["name"])
        rows.append({"step": i, "node": node, "op": str(layer["op"]),
                     "layer": name.removesuffix(".weight"),
                     "encoding": str(layer["encoding"]), "method": str(layer["method"]),
                     "output_shape": tuple(layer["output_shape"]), "seconds": float(s["seconds"])})
    total = sum(r["seconds"] for r in rows) or 1.0
    for r in rows:
        r["share"] = r["seconds"] / total
    return rows


def _kind(r: dict[str, Any]) -> str:
    """What a row is, for the totals: op, method and encoding ("conv2d im2col csr+codebook")."""
    return " ".join(p for p in (r["op"], r["method"], r["encoding"]) if p)


def profile_text(rows: list[dict[str, Any]], measured_s: float | None = None, top: int | None = None) -> str:
    """The rows as a table (the slowest ``top`` only, in run order, when given), then the time per kind
    of step, slowest first. ``measured_s``: a run timed without the profile, to show what timing costs."""
    total = sum(r["seconds"] for r in rows)
    shown = rows
    if top is not None and top < len(rows):
        keep = {id(r) for r in sorted(rows, key=lambda r: -r["seconds"])[:top]}
        shown = [r for r in rows if id(r) in keep]
    table = [[str(r["node"]), r["op"], r["layer"], r["encoding"], r["method"],
              "x".join(map(str, r["output_shape"])), f"{r['seconds'] * 1e6:.1f}", f"{100 * r['share']:.1f}%"]
             for r in shown]
    out = format_table(["node", "op", "layer", "encoding", "method", "output", "us", "share"], table)
    if len(shown) < len(rows):
        out += f"\n({len(rows) - len(shown)} faster steps not shown)"
    kinds: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        kinds[_kind(r)].append(r["seconds"])
    by_kind = sorted(kinds.items(), key=lambda kv: -sum(kv[1]))
    out += "\n\n" + format_table(["kind", "steps", "us", "share"],
                                 [[k, str(len(v)), f"{sum(v) * 1e6:.1f}", f"{100 * sum(v) / (total or 1):.1f}%"]
                                  for k, v in by_kind])
    out += f"\n\nsteps total {total * 1e6:.1f} us per run"
    if measured_s is not None:
        out += f"; the run untimed {measured_s * 1e6:.1f} us"
    return out
