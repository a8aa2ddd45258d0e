"""A cost model of pyruntime's linear kernels: predicted seconds per call, from measured coefficients.

For a weight of a given encoding, shape, entry count and codebook size, at a batch and thread count,

    t(batch) = sqrt(compute(batch)^2 + memory(batch)^2)
    compute(b) = call + a * visits + r * rows + q * cols   (per kernel class, fitted at b = 1, 8, 64;
                                                          linear in b between, proportional above 64)
    memory(b)  = exec_bytes * ceil(b / tile) / read_bandwidth   when exec_bytes > half the last-level
                                                                 cache, else 0

``visits`` are the weights a kernel touches per sample (all of them for dense layouts, the stored
entries for CSR, the step slots for csr+int8), ``exec_bytes`` what one pass streams
(:mod:`pyruntime.cost.layouts`); ``tile`` the samples one pass serves (32 for the float kernels; 256,
a chunk, for the int8 ones, which run every sample of a chunk against a row block while it is in
cache). The int8 classes are timed as whole dynamic int8 layers, so their per-column term includes
the per-sample quantization of the input. Kernels that
stream from cache are bound by their instruction count, which the per-visit coefficient captures; a
weight bigger than half the last-level cache (the rest is shared with activations, other layers
and other cores) comes from memory at the measured read bandwidth. The two overlap only in part:
the root of the sum of squares lies between their maximum (perfect overlap, as a streaming dense
kernel gets) and their sum (none, as the CSR kernels' gathers come close to); on the 4096 x 4096
layers of bench/ it is within 1.4x of both kinds.

Threads follow the runtime's rules (``csrc/runtime/ops/linear.cpp``): at batch 1 a layer splits into
``min(threads, exec_bytes / 64 KiB)`` row pieces; above, into ``min(threads, batch)`` sample pieces
when ``exec_bytes * batch >= 128 KiB``. An int8 layer (``ops/linear_int8.cpp``) splits into those row
pieces at every batch, the input quantized once beforehand (its per-column term is not divided), else
into sample pieces when ``visits * batch >= 512 Ki``.

Conv layers have terms of their own, per method the runtime runs them by (direct, direct_lanes,
im2col; ``conv``: conv class -> term -> coefficient), used through :class:`pyruntime.cost.conv.ConvCost`.

Coefficients come from :func:`pyruntime.cost.calibrate` on the machine at hand, or from the profile
measured for the active ISA on a reference machine (:mod:`pyruntime.cost.profiles`).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from .layouts import exec_bytes, kernel_class, visits

BATCH_POINTS = (1, 8, 64)
MIN_BYTES_PER_TASK = 64 * 1024  # Model::kMinBytesPerTask
BCAST_TILE = 32                 # batch rows per pass over the weights in the batched kernels
INT8_CHUNK = 256                # samples per pass over an int8 weight (ops/linear_int8.cpp kChunk)
INT8_MIN_MACS_PER_TASK = 256 * 1024  # an int8 sample split needs this much work per piece
INT8_ENCODINGS = ("int8", "csr+int8")
POOL_OVERHEAD_S = 4e-6          # waking the pool and joining it, per parallel layer


@dataclass(frozen=True)
class Coef:
    """Seconds of one call at one batch: call + per_visit * visits + per_row * rows + per_col * cols
    (per_col: the batched kernels rearrange x, a cost per input column)."""

    call: float
    per_visit: float
    per_row: float
    per_col: float = 0.0

    def seconds(self, n_visits: float, rows: float, cols: float) -> float:
        return self.call + self.per_visit * n_visits + self.per_row * rows + self.per_col * cols


@dataclass
class CostModel:
    """Predicts the seconds of one linear layer's kernel call. See the module docstring."""

    name: str                               # where the coefficients come from
    isa: str                                # ISA level they were measured at
    llc_bytes: int                          # last-level cache
    read_bandwidth: dict[int, float]        # threads -> bytes/s streaming from memory
    coef: dict[str, dict[int, Coef]] = field(default_factory=dict)  # kernel class -> batch point -> Coef
    measured: str = ""                      # what the coefficients were measured on (machine, ISA, threads)
    conv: dict[str, dict[str, float]] = field(default_factory=dict)  # conv class -> term -> coefficient

    # -- prediction ---------------------------------------------------------------------------------
    def seconds(self, encoding: str, rows: int, cols: int, nnz: int, k: int = 0, *, batch: int = 1,
                threads: int = 1, nbytes: int | None = None, entries: int | None = None) -> float:
        """Predicted seconds of ``y = x @ W.T`` for ``batch`` samples on ``threads`` threads.

        ``nnz``: stored entries (CSR) or nonzeros (dense encodings; unused). ``k``: centroids of a
        codebook encoding. ``nbytes``: the execution layout's bytes when known (else computed).
        ``entries`` is unused (the linear kernels walk every weight of a dense layout; a conv's direct
        kernels do not: :class:`~pyruntime.cost.conv.ConvCost`).
        """
        if batch < 1 or threads < 1:
            raise ValueError(f"batch and threads must be >= 1, got batch={batch}, threads={threads}")
        b = exec_bytes(encoding, rows, cols, nnz, k) if nbytes is None else int(nbytes)
        cls = kernel_class(encoding, k)
        n = visits(encoding, rows, cols, nnz, b)
        if encoding in INT8_ENCODINGS:
            return self._int8_seconds(cls, n, rows, cols, b, batch, threads)
        if batch == 1:
            parts = max(1, min(threads, b // MIN_BYTES_PER_TASK))
            compute = self._compute(cls, n / parts, rows / parts, cols, 1)
            memory = self._memory(b, 1, parts)
        else:
            parts = min(threads, batch) if b * batch >= 2 * MIN_BYTES_PER_TASK else 1
            compute = self._compute(cls, n, rows, cols, math.ceil(batch / parts))
            memory = self._memory(b, math.ceil(batch / parts), parts)
        return math.hypot(compute, memory) + (POOL_OVERHEAD_S if parts > 1 else 0.0)

    def _int8_seconds(self, cls: str, n: int, rows: int, cols: int, nbytes: int, batch: int, threads: int) -> float:
        full, rest = divmod(batch, INT8_CHUNK)
        return full * self._int8_chunk(cls, n, rows, cols, nbytes, INT8_CHUNK, threads) + (
            self._int8_chunk(cls, n, rows, cols, nbytes, rest, threads) if rest else 0.0)

    def _int8_chunk(self, cls: str, n: int, rows: int, cols: int, nbytes: int, batch: int, threads: int) -> float:
        """One chunk of an int8 layer: the weight streams once, whatever the batch."""
        row_parts = min(threads, nbytes // MIN_BYTES_PER_TASK) if threads > 1 else 1
        if row_parts >= 2:  # rows split at every batch; the quantization (per column) stays on one thread
            parts = row_parts
            compute = self._compute(cls, n / parts, rows / parts, cols, batch)
        elif threads > 1 and batch > 1 and n * batch >= 2 * INT8_MIN_MACS_PER_TASK:
            parts = min(threads, batch)
            compute = self._compute(cls, n, rows, cols, math.ceil(batch / parts))
        else:
            parts = 1
            compute = self._compute(cls, n, rows, cols, batch)
        return math.hypot(compute, self._memory(nbytes, 1, parts)) + (POOL_OVERHEAD_S if parts > 1 else 0.0)

    def knows(self, encoding: str, k: int = 0) -> bool:
        """Whether the profile has timings for the kernel class of ``encoding`` (with ``k`` centroids)."""
        try:
            return kernel_class(encoding, k) in self.coef
        except ValueError:
            return False

    def knows_conv(self) -> bool:
        """Whether the profile has the conv terms of every conv class (older profiles do not)."""
        from .conv import CONV_CLASSES

        return all(c in self.conv for c in CONV_CLASSES)

    def conv_seconds(self, cls: str, terms: dict[str, float]) -> float:
        """Seconds of a conv class for its terms (:mod:`pyruntime.cost.conv`): sum of coefficient x term."""
        if cls not in self.conv:
            raise KeyError(f"cost model '{self.name}' has no conv terms for class '{cls}'")
        c = self.conv[cls]
        return sum(c.get(name, 0.0) * v for name, v in terms.items())

    def lanes(self) -> int:
        """Floats per vector of the profile's ISA (1 for the scalar reference), as the conv terms count."""
        from .conv import ISA_LANES

        return ISA_LANES.get(self.isa, 8)

    def _coef(self, cls: str) -> dict[int, Coef]:
        if cls in self.coef:
            return self.coef[cls]
        raise KeyError(f"cost model '{self.name}' has no coefficients for kernel class '{cls}'")

    def _compute(self, cls: str, n: float, rows: float, cols: float, batch: int) -> float:
        c = self._coef(cls)
        pts = sorted(c)

        def at(p: int) -> float:
            return c[p].seconds(n, rows, cols)

        if batch in c:
            return at(batch)
        if batch > pts[-1]:
            return at(pts[-1]) * batch / pts[-1]
        lo = max(p for p in pts if p < batch)
        hi = min(p for p in pts if p > batch)
        return at(lo) + (at(hi) - at(lo)) * (batch - lo) / (hi - lo)

    def _memory(self, nbytes: int, batch: int, threads: int) -> float:
        if 2 * nbytes <= self.llc_bytes:
            return 0.0
        return nbytes * math.ceil(batch / BCAST_TILE) / self.bandwidth(threads)

    def bandwidth(self, threads: int) -> float:
        """Read bandwidth at ``threads`` (the nearest measured count at or below it)."""
        known = sorted(self.read_bandwidth)
        usable = [t for t in known if t <= threads] or known[:1]
        return self.read_bandwidth[usable[-1]]

    # -- io -----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "isa": self.isa, "llc_bytes": self.llc_bytes, "measured": self.measured,
            "read_bandwidth": {str(t): bw for t, bw in sorted(self.read_bandwidth.items())},
            "coef": {cls: {str(p): asdict(c) for p, c in sorted(pts.items())} for cls, pts in sorted(self.coef.items())},
            **({"conv": {cls: dict(sorted(t.items())) for cls, t in sorted(self.conv.items())}} if self.conv else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CostModel:
        try:
            coef = {k: {int(p): Coef(**c) for p, c in pts.items()} for k, pts in d["coef"].items()}
            bw = {int(t): float(v) for t, v in d["read_bandwidth"].items()}
            conv = {str(c): {str(n): float(v) for n, v in t.items()} for c, t in d.get("conv", {}).items()}
            model = cls(name=str(d["name"]), isa=str(d["isa"]), llc_bytes=int(d["llc_bytes"]),
                        read_bandwidth=bw, coef=coef, measured=str(d.get("measured", "")), conv=conv)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a cost profile: {e!r}") from None
        if not bw or any(v <= 0 for v in bw.values()):
            raise ValueError("cost profile: read_bandwidth needs positive entries")
        return model

    def save(self, path: str | os.PathLike[str]) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1, sort_keys=True)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CostModel:
        with open(path) as f:
            return cls.from_dict(json.load(f))


def default_cost_model(isa: str | None = None) -> CostModel:
    """The cost model for ``isa`` (default: the active one): the profile named by the environment
    variable ``PYRUNTIME_COST_PROFILE`` (a JSON file from ``pyruntime calibrate``) if set, else the
    built-in profile measured for that ISA."""
    path = os.environ.get("PYRUNTIME_COST_PROFILE")
    if path:
        fix = "point it to a profile written by `pyruntime calibrate -o FILE`, or unset it"
        try:
            return CostModel.load(path)
        except OSError as e:
            raise type(e)(e.errno, f"PYRUNTIME_COST_PROFILE={path}: {e.strerror or e}; {fix}") from None
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"PYRUNTIME_COST_PROFILE={path} is not a cost profile ({type(e).__name__}: {e}); "
                             f"{fix}") from None
    from .. import _core
    from .profiles import builtin_profile

    return builtin_profile(isa or _core.active_isa())
