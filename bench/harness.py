"""Shared by the linear-layer benchmarks: optional peers, thread control, weights built once per case.

Weights are generated, not trained: Gaussian fp32 with a fixed seed per case, magnitude-pruned to the
case's sparsity, and weight-shared by a 1-D k-means (linear init, as Deep Compression) for the codebook
encodings. The timing of every method depends only on the shape, the sparsity pattern and the encoding,
not on the values, so generated weights measure what a trained, pruned model would.
"""

from __future__ import annotations

import os
import zlib
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from shapes import Case

from pyruntime import _core

try:
    import scipy
    import scipy.sparse
except ImportError:  # the scipy peer is skipped
    scipy = None
try:
    import torch
except ImportError:  # the torch peers are skipped
    torch = None
try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:  # numpy's BLAS then runs at its default thread count ("numpy-dense" says so)
    threadpool_info = threadpool_limits = None

# Thread count torch and OpenBLAS use when left alone; recorded for the "-mt" peers.
DEFAULT_THREADS: int = torch.get_num_threads() if torch is not None else (os.cpu_count() or 1)

# Max |y - y_ref| / max |y_ref| accepted before a method is timed (y_ref in float64). fp32 sums of
# 4096 products stay near 1e-6; a wrong layout or transposition gives O(1).
CHECK_TOL = 1e-3


def selected_isas(opt: str) -> list[str]:
    """The pyruntime ISA levels to time for --pyrt-isa=opt ('best', 'all' or a comma list)."""
    supported = list(_core.supported_isas())
    if opt == "best":
        return [_core.active_isa()]
    if opt == "all":
        return supported
    wanted = [s.strip() for s in opt.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in supported]
    if unknown:
        raise ValueError(f"--pyrt-isa: {unknown} not supported here (supported: {supported})")
    return wanted


def blas_summary() -> str:
    if threadpool_info is None:
        return "unknown (threadpoolctl not installed)"
    parts = [
        f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture', '?')}, {p.get('num_threads')} threads)"
        for p in threadpool_info()
        if p.get("user_api") == "blas"
    ]
    return "; ".join(parts) or "none found"


# --------------------------------------------------------------------------------------------------
# Threads


@contextmanager
def thread_limit(n: int | None):
    """Runs the block with torch, OpenBLAS and OpenMP pools at n threads (None: leave them alone)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(n)
    ctx = threadpool_limits(limits=n) if threadpool_limits is not None else nullcontext()
    try:
        with ctx:
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(old)


# --------------------------------------------------------------------------------------------------
# Weight generation


def case_seed(case: Case) -> int:
    return zlib.crc32(case.id.encode())


def magnitude_prune(w: np.ndarray, sparsity: float) -> np.ndarray:
    """Zeroes the `sparsity` fraction of smallest-magnitude entries (in place) and returns w."""
    if sparsity <= 0.0:
        return w
    k = round(sparsity * w.size)
    if k <= 0:
        return w
    a = np.abs(w).ravel()
    thr = np.partition(a, k - 1)[k - 1]
    w[np.abs(w) <= thr] = 0.0
    return w


def kmeans_1d(values: np.ndarray, bits: int, iters: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Weight sharing: 2^bits centroids (linear init over [min, max], Lloyd steps) and uint8 indices."""
    k = 1 << bits
    v = values.astype(np.float32, copy=False).ravel()
    lo, hi = float(v.min()), float(v.max())
    cent = np.linspace(lo, hi, k, dtype=np.float64)
    for _ in range(iters):
        idx = np.searchsorted((cent[1:] + cent[:-1]) * 0.5, v)
        sums = np.bincount(idx, weights=v, minlength=k)
        counts = np.bincount(idx, minlength=k)
        nonempty = counts > 0
        cent[nonempty] = sums[nonempty] / counts[nonempty]
        cent.sort()
    idx = np.searchsorted((cent[1:] + cent[:-1]) * 0.5, v).astype(np.uint8)
    return idx, cent.astype(np.float32)


@dataclass
class Variant:
    """One pyruntime encoding of the case's weight."""

    key: str  # "dense", "codebook4", "csr", "csr+codebook4"
    encoding: str
    bits: int | None
    tensor: dict[str, Any]
    packed: Any  # _core.PackedWeight
    file_bytes: int
    w_equiv: np.ndarray  # dense fp32 weight the variant computes with (for the correctness check)


@dataclass
class Built:
    """Everything one case needs, built once: inputs, the pruned weight in every peer's format, and the
    pyruntime variants. Reference outputs are computed lazily, once per (weight, batch)."""

    case: Case
    w: np.ndarray  # pruned fp32 [rows, cols]
    nnz: int
    x: dict[int, np.ndarray]  # batch -> [batch, cols] fp32
    xt: dict[int, np.ndarray]  # batch -> contiguous [cols, batch] (the sparse peers' operand)
    variants: dict[str, Variant]
    scipy_csr: Any = None
    torch_w: Any = None
    torch_csr: Any = None
    torch_x: dict[int, Any] = field(default_factory=dict)
    torch_xt: dict[int, Any] = field(default_factory=dict)
    _refs: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.case.layer.rows

    @property
    def cols(self) -> int:
        return self.case.layer.cols

    def reference(self, w_equiv: np.ndarray, batch: int) -> np.ndarray:
        key = (id(w_equiv), batch)
        if key not in self._refs:
            self._refs[key] = self.x[batch].astype(np.float64) @ w_equiv.astype(np.float64).T
        return self._refs[key]


def _pyrt_variant(key: str, encoding: str, bits: int | None, tensor: dict, w_equiv: np.ndarray) -> Variant:
    return Variant(
        key=key,
        encoding=encoding,
        bits=bits,
        tensor=tensor,
        packed=_core.PackedWeight(tensor),
        file_bytes=int(_core.encoded_tensor_bytes(tensor)),
        w_equiv=w_equiv,
    )


def build_case(case: Case, batches: tuple[int, ...]) -> Built:
    rows, cols = case.layer.rows, case.layer.cols
    rng = np.random.default_rng(case_seed(case))
    w = rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(1.0 / np.sqrt(cols))
    magnitude_prune(w, case.sparsity)
    x = {b: rng.standard_normal((b, cols), dtype=np.float32) for b in batches}
    xt = {b: np.ascontiguousarray(x[b].T) for b in batches}

    variants: dict[str, Variant] = {}
    name = f"bench.{case.id}"
    if case.sparsity == 0.0:
        nnz = w.size
        variants["dense"] = _pyrt_variant(
            "dense", "dense", None, {"name": name, "encoding": "dense", "shape": [rows, cols], "values": w}, w
        )
        for bits in case.codebook_bits:
            idx, cent = kmeans_1d(w, bits)
            t = {
                "name": name,
                "encoding": "codebook",
                "shape": [rows, cols],
                "indices": idx.reshape(rows, cols),
                "centroids": cent,
                "index_bits": bits,
            }
            variants[f"codebook{bits}"] = _pyrt_variant(
                f"codebook{bits}", "codebook", bits, t, cent[idx].reshape(rows, cols)
            )
        rowptr = colidx = data = None
    else:
        mask = w != 0
        nnz = int(mask.sum())
        rowptr = np.zeros(rows + 1, dtype=np.uint32)
        np.cumsum(mask.sum(axis=1), out=rowptr[1:])
        colidx = np.nonzero(mask)[1].astype(np.uint32)  # row-major order, ascending columns per row
        data = w[mask]
        t = {
            "name": name,
            "encoding": "csr",
            "shape": [rows, cols],
            "rowptr": rowptr,
            "colidx": colidx,
            "values": data,
        }
        variants["csr"] = _pyrt_variant("csr", "csr", None, t, w)
        for bits in case.csr_codebook_bits:
            idx, cent = kmeans_1d(data, bits)
            t = {
                "name": name,
                "encoding": "csr+codebook",
                "shape": [rows, cols],
                "rowptr": rowptr,
                "colidx": colidx,
                "indices": idx,
                "centroids": cent,
                "index_bits": bits,
            }
            wq = np.zeros_like(w)
            wq[mask] = cent[idx]
            variants[f"csr+codebook{bits}"] = _pyrt_variant(
                f"csr+codebook{bits}", "csr+codebook", bits, t, wq
            )

    built = Built(case=case, w=w, nnz=nnz, x=x, xt=xt, variants=variants)
    if scipy is not None and case.sparsity > 0.0:
        built.scipy_csr = scipy.sparse.csr_matrix(w)
    if torch is not None:
        built.torch_w = torch.from_numpy(w)
        built.torch_x = {b: torch.from_numpy(x[b]) for b in batches}
        built.torch_xt = {b: torch.from_numpy(xt[b]) for b in batches}
        if case.sparsity > 0.0:
            built.torch_csr = built.torch_w.to_sparse_csr()
    return built
