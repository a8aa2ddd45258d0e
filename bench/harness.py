"""Shared by the linear-layer benchmarks: optional peers, thread control, weights built once per case.

Weights are generated, not trained: Gaussian fp32 with a fixed seed per case, magnitude-pruned to the
case's sparsity, and weight-shared by a 1-D k-means (linear init, as Deep Compression; Lloyd steps on a
sample, see kmeans_1d) for the codebook encodings. The timing of every method depends only on the shape,
the sparsity pattern and the encoding, not on the values, so generated weights measure what a trained,
pruned model would.
"""

from __future__ import annotations

import os
import subprocess
import warnings
import zlib
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
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
# torch's dynamic int8 quantization (torch.ao.quantization.quantize_dynamic): the int8 peer. Deprecated in
# favour of torchao but still shipped; None, with the reason in INT8_UNAVAILABLE, when it cannot run here.
quantize_dynamic = None
INT8_UNAVAILABLE: str | None = "torch is not installed"
if torch is not None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from torch.ao.quantization import quantize_dynamic
        if not any(e != "none" for e in torch.backends.quantized.supported_engines):
            quantize_dynamic = None
            INT8_UNAVAILABLE = "torch has no quantized CPU engine (fbgemm / onednn / x86)"
        else:
            INT8_UNAVAILABLE = None
    except ImportError as e:
        INT8_UNAVAILABLE = f"torch.ao.quantization is unavailable ({e})"
try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:  # numpy's BLAS then runs at its default thread count ("numpy-dense" says so)
    threadpool_info = threadpool_limits = None

# Thread count torch and OpenBLAS use when left alone; recorded for the "-mt" peers.
DEFAULT_THREADS: int = torch.get_num_threads() if torch is not None else (os.cpu_count() or 1)

# Max |y - y_ref| / max |y_ref| accepted before a method is timed (y_ref in float64). fp32 sums of
# 4096 products stay near 1e-6; a wrong layout or transposition gives O(1).
CHECK_TOL = 1e-3
# The same check for torch's dynamic int8 peer, which quantizes the weight (per tensor, 8 bits) and every
# input row (per tensor, 7 or 8 bits) before an integer GEMM: its error against the fp32 result is about
# 2e-2 on these Gaussian weights, every shape and sparsity. 5e-2 keeps a 2x margin and still fails a
# wrong layout or transposition (O(1)).
INT8_CHECK_TOL = 5e-2


def onnxruntime_peer() -> tuple[Any, str | None]:
    """(the onnxruntime module, None), or (None, why it cannot be a peer: not installed, or no onnx for
    torch.onnx.export)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        return None, f"onnxruntime not installed ({e})"
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
    except ImportError as e:
        return None, f"onnx not installed: torch.onnx.export needs it ({e})"
    return ort, None


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


def llc_bytes() -> int:
    """Size of the last-level cache (L3) seen by CPU 0: sysfs, then getconf, else 32 MiB. sysfs gives the
    L3 a core shares (one CCX on AMD); getconf may report the whole package's total, so it comes second."""
    try:
        text = Path("/sys/devices/system/cpu/cpu0/cache/index3/size").read_text().strip()
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        if text and text[-1].upper() in units:
            return int(text[:-1]) * units[text[-1].upper()]
        return int(text)
    except (OSError, ValueError):
        pass
    try:
        out = subprocess.run(["getconf", "LEVEL3_CACHE_SIZE"], check=False, capture_output=True, text=True,
                             timeout=10)
        n = int(out.stdout.strip() or 0)
        if n > 0:
            return n
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    return 32 << 20


# --------------------------------------------------------------------------------------------------
# Threads


@contextmanager
def one_thread_at(isa: str | None):
    """One thread for every peer (thread_limit(1)) and pyruntime's kernels at ISA level `isa` (None: as they
    are), the level restored afterwards."""
    previous = _core.active_isa()
    try:
        if isa:
            _core.set_isa(isa)
        with thread_limit(1):
            yield
    finally:
        _core.set_isa(previous)


def normalized_error(got: Any, ref: np.ndarray) -> float:
    """max |got - ref| / max |ref|, got a numpy array or a torch tensor."""
    got = got.numpy() if hasattr(got, "numpy") else np.asarray(got)
    assert got.shape == ref.shape, f"output shape {got.shape}, expected {ref.shape}"
    return float(np.abs(got - ref).max() / np.abs(ref).max())


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


def timing_marks(config: Any, max_time: float, min_rounds: int) -> list[Any]:
    """pytest.mark.benchmark(max_time=..., min_rounds=...) for a module with its own timing defaults, minus
    the options given on the command line or in PYTEST_ADDOPTS (bench/pytest.ini's addopts do not count)."""
    import pytest

    given = [*config.invocation_params.args, *os.environ.get("PYTEST_ADDOPTS", "").split()]
    kw: dict[str, Any] = {}
    for opt, key, default in (("--benchmark-max-time", "max_time", max_time),
                              ("--benchmark-min-rounds", "min_rounds", min_rounds)):
        if not any(a == opt or a.startswith(opt + "=") for a in given):
            kw[key] = default
    return [pytest.mark.benchmark(**kw)] if kw else []


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


# Lloyd steps of kmeans_1d run on an evenly strided sample of at most this many weights; the final
# assignment covers every weight. On i.i.d. weights the sample's centroids match the full k-means to a
# fraction of a quantization step, and a 4096 x 4096 layer at 7 codebook widths builds in seconds, not
# the minute 8 full passes over 16.7 M weights per width take.
KMEANS_SAMPLE = 1 << 20


def kmeans_1d(values: np.ndarray, bits: int, iters: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Weight sharing: 2^bits centroids (linear init over [min, max], Lloyd steps on a sample of at most
    KMEANS_SAMPLE weights) and every weight's uint8 index (nearest centroid)."""
    k = 1 << bits
    v = values.astype(np.float32, copy=False).ravel()
    lo, hi = float(v.min()), float(v.max())
    cent = np.linspace(lo, hi, k, dtype=np.float64)
    sample = v[:: max(1, v.size // KMEANS_SAMPLE)]
    for _ in range(iters):
        idx = np.searchsorted((cent[1:] + cent[:-1]) * 0.5, sample)
        sums = np.bincount(idx, weights=sample, minlength=k)
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
    torch_int8: Any = None  # quantize_dynamic'd nn.Sequential(nn.Linear) holding the pruned weight
    models: dict[tuple[str, int], Any] = field(default_factory=dict)  # (variant, threads) -> pyruntime.Model
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
        if quantize_dynamic is not None:
            built.torch_int8 = torch_int8_dynamic(w)
    return built


def torch_int8_dynamic(w: np.ndarray) -> Any:
    """torch's dynamic int8 linear for the fp32 weight w: an nn.Linear (no bias) holding w, converted by
    quantize_dynamic to qint8 weights (per-tensor scale, the default qconfig) with activations quantized
    on the fly at every call. The pruned weight stays dense (one byte per weight, zeros included)."""
    rows, cols = w.shape
    lin = torch.nn.Linear(cols, rows, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w))
    with warnings.catch_warnings():  # torch's deprecation notices for torch.ao and quantized tensors
        warnings.simplefilter("ignore")
        q = quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8)
    return q.eval()


def int8_weight_bytes(qmodel: Any) -> int:
    """Bytes of the weight torch's dynamic int8 linear streams per call: one int8 per weight plus, per
    output channel or per tensor, an fp32 scale and an int32 zero point."""
    qw = qmodel[0].weight()
    if qw.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        n_scales = int(qw.q_per_channel_scales().numel())
    else:
        n_scales = 1
    return int(qw.numel()) * qw.element_size() + 8 * n_scales
