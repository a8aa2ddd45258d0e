"""Per-layer encoding choice: the smallest file, or the fastest kernel, within a budget on the other.

Every candidate of :func:`pyruntime.convert.encode.candidates` represents exactly the same weights,
so the choice changes size and speed, never the results. Sizes are the C++ writer's (file bytes of
the tensor); speeds are the cost model's prediction (:mod:`pyruntime.cost`) for the expected batch
and thread count.

  Objective("size")                       smallest file (the default; Deep Compression's choice)
  Objective("size", speed_budget=1.5)     smallest whose predicted time is <= 1.5x the fastest's
  Objective("speed", batch=64)            fastest at batch 64 whose file is <= 1.5x the smallest (the
                                          default size budget, DEFAULT_SIZE_BUDGET)
  Objective("speed", size_budget=1.25)    fastest whose file is <= 1.25x the smallest
  Objective("speed", size_budget=math.inf)  fastest, whatever its file

Budgets bound each layer: with ``optimize="speed"`` every weight is at most ``size_budget`` times its
smallest encoding, so the whole file of weights is at most that factor of the ``optimize="size"`` one.
The default keeps "speed" from silently trading a several times bigger file for a predicted gain (fp32
CSR is 4-5x a 4-bit codebook's bytes); a choice the budget bound says so in its reason.

Ties go to the better of the other quantity (for "speed" the smaller file: a codebook with dense indices
and csr+codebook run a pruned conv by the same direct kernel over the same entries), then to the earlier
encoding in dense, csr, codebook, csr+codebook (the simpler).

An int8 layer chooses between int8 and csr+int8 the same way (:func:`choose_int8`); its predicted
times include the per-sample quantization of the input. A cost model without int8 timings (a profile
calibrated before they existed) leaves it the smallest file, and says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cost import CostModel, default_cost_model
from ..cost.layouts import ENCODINGS, exec_bytes, i8_p128_bytes

TensorDict = dict[str, Any]
OPTIMIZE = ("size", "speed")
#: optimize="speed" without a size_budget: each weight's file at most this factor of its smallest encoding
DEFAULT_SIZE_BUDGET = 1.5


@dataclass(frozen=True)
class Objective:
    """What the converter optimises per layer; see the module docstring."""

    optimize: str = "size"
    batch: int = 1
    threads: int = 1
    # optimize="speed": file bytes <= this x the smallest candidate's (None: DEFAULT_SIZE_BUDGET; math.inf: none)
    size_budget: float | None = None
    speed_budget: float | None = None  # optimize="size": predicted time <= this x the fastest's (None, inf: none)

    def __post_init__(self) -> None:
        if self.optimize not in OPTIMIZE:
            raise ValueError(f"optimize must be one of {OPTIMIZE}, got {self.optimize!r}")
        for name in ("batch", "threads"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        for name in ("size_budget", "speed_budget"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 1.0):
                raise ValueError(f"{name} must be a factor >= 1.0 (1.0: no slack; math.inf: no bound) or None, "
                                 f"got {v!r}")
        if self.optimize == "size" and self.size_budget is not None:
            raise ValueError("size_budget bounds optimize='speed'; for optimize='size' give speed_budget")
        if self.optimize == "speed" and self.speed_budget is not None:
            raise ValueError("speed_budget bounds optimize='size'; for optimize='speed' give size_budget")

    @property
    def budget(self) -> float | None:
        """The factor that bounds the other quantity: for "speed" the size budget (DEFAULT_SIZE_BUDGET
        when none was given), for "size" the speed budget; None when nothing bounds it."""
        v = self.speed_budget if self.optimize == "size" else (
            DEFAULT_SIZE_BUDGET if self.size_budget is None else self.size_budget)
        return None if v is None or math.isinf(v) else float(v)

    @property
    def default_budget(self) -> bool:
        """Whether the bound is the default size budget (optimize="speed", no size_budget given)."""
        return self.optimize == "speed" and self.size_budget is None

    def to_dict(self) -> dict[str, Any]:
        """As the file's metadata records it: the budgets in force (null: unbounded)."""
        speed = self.optimize == "speed"
        return {"optimize": self.optimize, "batch": int(self.batch), "threads": int(self.threads),
                "size_budget": self.budget if speed else None, "speed_budget": None if speed else self.budget}


@dataclass(frozen=True)
class Choice:
    encoding: str
    why: str
    file_bytes: dict[str, int]      # per candidate encoding
    seconds: dict[str, float]       # predicted per call at the objective's batch and threads


def tensor_cost_args(t: TensorDict) -> dict[str, Any]:
    """rows, cols, nnz (stored entries), k, exec bytes and walked entries of a tensor dict, for the cost
    model (``entries``: the weights a conv's direct kernel walks, a codebook's whose centroid is not zero;
    None where they are the stored ones)."""
    shape = [int(s) for s in t["shape"]]
    rows, cols = shape[0], int(np.prod(shape[1:]))
    enc = t["encoding"]
    k = int(np.asarray(t["centroids"]).size) if "centroids" in t else 0
    entries = None
    if enc in ("csr", "csr+codebook", "csr+int8"):
        rowptr = np.asarray(t["rowptr"], dtype=np.int64)
        nnz, counts = int(rowptr[-1]), np.diff(rowptr)
    else:
        nnz, counts = rows * cols, None
    if enc == "codebook":
        entries = int(np.count_nonzero(np.asarray(t["centroids"], np.float32)[np.asarray(t["indices"], np.int64)]))
    if enc == "csr+int8":  # exact: its padding depends on where the entries fall
        nbytes = i8_p128_bytes(rows, cols, t["rowptr"], t["colidx"])
    else:
        nbytes = exec_bytes(enc, rows, cols, nnz, k, row_counts=counts)
    return {"rows": rows, "cols": cols, "nnz": nnz, "k": k, "nbytes": nbytes, "entries": entries}


def _fmt_bytes(n: float) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} KB" if n >= 1e3 else f"{int(n)} B"


def _fmt_s(s: float) -> str:
    return f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} us"


def choose(cands: dict[str, TensorDict], sizes: dict[str, int], objective: Objective,
           cost_model: CostModel | None = None) -> Choice:
    """Picks one of ``cands`` (encoding -> tensor dict, file bytes in ``sizes``) for ``objective``: the
    smallest file, or the fastest predicted, among those within the objective's budget on the other
    (:attr:`Objective.budget`; optimize="speed" has a default size budget, DEFAULT_SIZE_BUDGET)."""
    model = cost_model or default_cost_model()
    secs = {}
    for enc, t in cands.items():
        a = tensor_cost_args(t)
        secs[enc] = model.seconds(enc, a["rows"], a["cols"], a["nnz"], a["k"], batch=objective.batch,
                                  threads=objective.threads, nbytes=a["nbytes"], entries=a["entries"])
    order = {e: i for i, e in enumerate(ENCODINGS)}
    encs = sorted(cands, key=lambda e: order.get(e, len(order)))
    at = f"batch {objective.batch}" + (f", {objective.threads} threads" if objective.threads > 1 else "")
    by_size = objective.optimize == "size"
    # the quantity optimised, the one the budget bounds, and the budget (a factor over the bound's best)
    key, bound = (sizes, secs) if by_size else (secs, sizes)
    budget = objective.budget
    fmt_key, fmt_bound = (_fmt_bytes, _fmt_s) if by_size else (_fmt_s, _fmt_bytes)
    limit = None if budget is None else min(bound.values()) * budget * (1 + 1e-12)
    def rank(e: str) -> tuple[float, float]:  # ties: the better of the other quantity, then the earlier encoding
        return key[e], bound[e]

    pick = min((e for e in encs if limit is None or bound[e] <= limit), key=rank)
    best = min(encs, key=rank)  # unbounded optimum

    why = f"smallest file ({fmt_key(key[pick])}" if by_size else f"fastest at {at} (predicted {fmt_key(key[pick])}"
    if budget is not None:
        default = " the default" if objective.default_budget else ""
        within = f"within {budget:g}x of the fastest" if by_size else f"within{default} {budget:g}x of the smallest file"
        why += f", {'predicted ' if by_size else ''}{fmt_bound(bound[pick])}{f' at {at}' if by_size else ''}, {within}"
        if pick != best:
            why += (f"; {best} is {'smaller' if by_size else 'faster'} ({fmt_key(key[best])}) but "
                    + (f"predicted {fmt_bound(bound[best])}" if by_size
                       else f"{bound[best] / min(bound.values()):.1f}x the smallest"))
            if objective.default_budget:
                why += ": the default size budget bound this choice (size_budget= allows more)"
    why += ")"
    if len(encs) > 1:
        rest = sorted((e for e in encs if e != pick), key=rank)
        why += "; others: " + ", ".join(f"{e} {fmt_key(key[e])}" for e in rest)
    return Choice(encoding=pick, why=why, file_bytes={e: int(sizes[e]) for e in encs},
                  seconds={e: float(secs[e]) for e in encs})


def choose_int8(cands: dict[str, TensorDict], sizes: dict[str, int], objective: Objective,
                cost_model: Any = None) -> Choice:
    """Picks int8 or csr+int8 (``cands``: encoding -> tensor dict, file bytes in ``sizes``) for
    ``objective``, as :func:`choose` does for the float encodings: the smallest file by default, the
    fastest by the cost model with ``optimize="speed"``, each within its budget on the other. A cost
    model without int8 timings (see :meth:`pyruntime.cost.CostModel.knows`) gives the smallest file."""
    model = cost_model or default_cost_model()
    base = getattr(model, "base", model)  # a conv layer's ConvCost wraps the model
    if not hasattr(base, "knows") or all(base.knows(e) for e in cands):
        return choose(cands, sizes, objective, model)
    pick = min(sizes, key=lambda e: (sizes[e], e != "int8"))
    rest = ", ".join(f"{e} {_fmt_bytes(b)}" for e, b in sorted(sizes.items(), key=lambda i: i[1]) if e != pick)
    name = getattr(model, "name", "the cost model")
    return Choice(encoding=pick, why=f"smallest file ({_fmt_bytes(sizes[pick])}; {name} has no int8 timings)"
                  + (f"; others: {rest}" if rest else ""), file_bytes=dict(sizes), seconds={})
