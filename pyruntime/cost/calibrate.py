"""Measuring the cost model's coefficients on this machine (``pyruntime calibrate``).

Every kernel class (:func:`pyruntime.cost.layouts.kernel_class`) is timed on random weights of a few
shapes and densities that fit in the last-level cache, at batch 1, 8 and 64, on one thread (the int8
classes as a one-layer model, so that the time includes the per-sample quantization of the input that
every dynamic int8 layer does, and csr+int8 up to the densities where int8 overtakes it); a
non-negative least-squares fit per class and batch gives
``call + per_visit * visits + per_row * rows + per_col * cols``
(relative error minimised, so small and large layers count alike). The read bandwidth is the rate of
the dense batch-1 kernel (at the best ISA level) over a weight four times the size of the last-level
cache, on 1 thread and on every thread (through a one-layer model with a thread pool). The fit's own errors are returned with the
model, so a calibration says how far to trust it.

Conv layers (:mod:`pyruntime.cost.conv`) are timed as ``_core.Conv2d`` with the method forced, on layers of
LeNet-5, ResNet-20, ResNet-18, MobileNet and SqueezeNet (CONV_SHAPES; first convs for direct_lanes), at
batch 1 and 4, one thread: per conv class the same relative non-negative least squares gives the
coefficient of each of its terms (:func:`calibrate_conv`; the im2col class's ``gemm`` term is the
GEMM time the linear classes predict, so it is fitted after them).
"""
from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from .conv import CONV_CLASSES, CONV_TERMS, IM2COL_CLASS, LANES_CLASS, ConvCost, ConvGeometry
from .layouts import exec_bytes, kernel_class, visits
from .model import BATCH_POINTS, Coef, CostModel

# (rows, cols, density) per family, from LeNet-sized to 8192 columns; each fits in 8 MiB as dense f32.
DENSE_SHAPES = ((64, 256), (128, 1024), (512, 1024), (1024, 1024), (256, 2048), (96, 8192))
SPARSE_SHAPES = ((128, 512, 0.1), (300, 784, 0.1), (512, 512, 0.3), (1024, 2048, 0.3), (1024, 2048, 0.1),
                 (1024, 2048, 0.02), (4096, 1024, 0.03), (256, 4096, 0.2), (256, 8192, 0.1))
# csr+int8 also where it meets int8 (a half to three quarters of the weights kept)
INT8_SPARSE_SHAPES = SPARSE_SHAPES + ((1024, 1024, 0.5), (512, 2048, 0.7), (2048, 512, 0.5), (256, 4096, 0.9))
# (encoding, k) per kernel class; k = 2^bits
CLASSES = (
    ("dense", 0), ("codebook", 2), ("codebook", 4), ("codebook", 16),
    ("codebook", 32), ("codebook", 64), ("codebook", 128), ("codebook", 256),
    ("csr", 0), ("csr+codebook", 16),
    ("csr+codebook", 32), ("csr+codebook", 64), ("csr+codebook", 128), ("csr+codebook", 256),
    ("int8", 0), ("csr+int8", 0),
)
INT8_CLASSES = (("int8", 0), ("csr+int8", 0))


def _g(in_c: int, out_c: int, k: int, hw: int, stride: int = 1, pad: int | None = None, groups: int = 1) -> ConvGeometry:
    """A square conv: k x k kernel, stride, padding (default k // 2) on an hw x hw input."""
    p = k // 2 if pad is None else pad
    o = (hw + 2 * p - k) // stride + 1
    return ConvGeometry(in_c, hw, hw, out_c, o, o, k, k, stride, stride, p, p, 1, 1, groups)


# Conv layers of real networks (224x224 inputs unless noted), for the direct classes at every encoding.
CONV_SHAPES = (
    _g(20, 50, 5, 12, pad=0),                        # LeNet-5 conv2
    _g(16, 16, 3, 32), _g(32, 32, 3, 16), _g(64, 64, 3, 8), _g(16, 32, 3, 32, 2),  # ResNet-20 (CIFAR)
    _g(64, 64, 3, 56), _g(128, 128, 3, 28), _g(256, 256, 3, 14), _g(512, 512, 3, 7),  # ResNet-18
    _g(64, 128, 3, 56, 2), _g(128, 256, 3, 28, 2), _g(256, 512, 1, 14, 2, 0),
    _g(64, 128, 1, 28), _g(256, 256, 1, 14), _g(512, 512, 1, 7),  # MobileNet v1 pointwise
    _g(32, 32, 3, 56, groups=32), _g(144, 144, 3, 28, 2, groups=144), _g(512, 512, 3, 14, groups=512),  # depthwise
    _g(16, 64, 1, 55), _g(16, 64, 3, 55),            # SqueezeNet fire expand
)
# (encoding, density, k) per direct class, both encodings of each: the densities pruned layers have
DIRECT_VARIANTS = {
    "direct_f32": (("dense", 1.0, 0), ("csr", 0.05, 0), ("csr", 0.2, 0), ("csr", 0.5, 0)),
    "direct_lut8": (("codebook", 0.2, 16), ("codebook", 0.5, 16), ("codebook", 1.0, 256),
                    ("csr+codebook", 0.05, 16), ("csr+codebook", 0.2, 16), ("csr+codebook", 0.5, 256)),
}
# First convs (few input channels), for direct_lanes (dense: every encoding runs it expanded to f32)
LANES_SHAPES = (_g(3, 64, 7, 112, 2), _g(3, 32, 3, 112, 2), _g(1, 20, 5, 28, pad=0), _g(3, 16, 3, 32),
                _g(3, 96, 7, 111, 2, 0), _g(4, 64, 3, 32))
# Dense and codebook layers with 128 or more outputs per group (and some below), for im2col
IM2COL_SHAPES = (_g(128, 128, 3, 28), _g(256, 256, 3, 14), _g(512, 512, 3, 7), _g(128, 256, 3, 28, 2),
                 _g(64, 128, 1, 28), _g(256, 256, 1, 14), _g(512, 512, 1, 7), _g(64, 64, 3, 56), _g(16, 64, 3, 55))
IM2COL_VARIANTS = (("dense", 1.0, 0), ("codebook", 1.0, 16), ("codebook", 1.0, 256))
CONV_BATCHES = (1, 4)


@dataclass(frozen=True)
class Sample:
    cls: str
    encoding: str
    rows: int
    cols: int
    nnz: int
    k: int
    batch: int
    nbytes: int
    seconds: float


def llc_bytes() -> int:
    """The last-level cache of CPU 0 (sysfs, then getconf), 32 MiB when neither tells."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    best = 0
    try:
        for entry in os.listdir(base):
            try:
                with open(os.path.join(base, entry, "size")) as f:
                    text = f.read().strip().upper()
            except OSError:
                continue
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
            digits = text.rstrip("KMG")
            if digits.isdigit():
                best = max(best, int(digits) * mult)
    except OSError:
        pass
    if not best:
        try:
            best = int(os.sysconf("SC_LEVEL3_CACHE_SIZE"))
        except (ValueError, OSError, AttributeError):
            best = 0
    return best if best > 0 else 32 << 20


def random_tensor(encoding: str, rows: int, cols: int, density: float, k: int,
                  rng: np.random.Generator) -> dict:
    """A tensor dict of random weights in ``encoding`` (timings depend on shape and pattern only)."""
    shape = [rows, cols]
    if encoding in ("int8", "csr+int8"):
        q = rng.integers(1, 128, (rows, cols), dtype=np.int8) * rng.choice(np.array([-1, 1], np.int8), (rows, cols))
        if encoding == "int8":
            return {"name": "w", "encoding": "int8", "shape": shape, "qvalues": q.ravel(),
                    "scales": np.full(rows, 0.01, np.float32)}
        keep = rng.random((rows, cols)) < density
        rowptr = np.zeros(rows + 1, dtype=np.uint32)
        np.cumsum(keep.sum(axis=1), out=rowptr[1:])
        return {"name": "w", "encoding": "csr+int8", "shape": shape, "rowptr": rowptr,
                "colidx": np.nonzero(keep)[1].astype(np.uint32), "qvalues": q[keep],
                "scales": np.full(rows, 0.01, np.float32)}
    if encoding == "dense":
        return {"name": "w", "encoding": "dense", "shape": shape,
                "values": rng.standard_normal(rows * cols, dtype=np.float32)}
    centroids = np.linspace(-1.0, 1.0, max(k, 1), dtype=np.float32)
    bits = max(1, int(np.ceil(np.log2(max(k, 2)))))
    if encoding == "codebook":
        return {"name": "w", "encoding": "codebook", "shape": shape, "centroids": centroids, "index_bits": bits,
                "indices": rng.integers(0, k, rows * cols, dtype=np.uint8)}
    mask = rng.random((rows, cols)) < density
    rowptr = np.zeros(rows + 1, dtype=np.uint32)
    np.cumsum(mask.sum(axis=1), out=rowptr[1:])
    colidx = np.nonzero(mask)[1].astype(np.uint32)
    nnz = int(colidx.size)
    if encoding == "csr":
        return {"name": "w", "encoding": "csr", "shape": shape, "rowptr": rowptr, "colidx": colidx,
                "values": rng.standard_normal(nnz, dtype=np.float32)}
    return {"name": "w", "encoding": "csr+codebook", "shape": shape, "rowptr": rowptr, "colidx": colidx,
            "centroids": centroids, "index_bits": bits, "indices": rng.integers(0, k, nnz, dtype=np.uint8)}


def best_time(call: Callable[[], object], budget_s: float, min_reps: int = 3) -> float:
    """Fastest of repeated calls within about ``budget_s`` (after one warm-up call)."""
    call()
    best, n, start = float("inf"), 0, time.perf_counter()
    while n < min_reps or time.perf_counter() - start < budget_s:
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
        n += 1
        if n >= 1000:
            break
    return best


def _nnls_rel(X: np.ndarray, t: np.ndarray) -> np.ndarray:
    """argmin over c >= 0 of sum(((X c - t) / t)^2), by trying every support (a handful of unknowns)."""
    A = X / t[:, None]
    ones = np.ones_like(t)
    best, best_res = np.zeros(X.shape[1]), float("inf")
    for m in range(1, X.shape[1] + 1):
        for support in itertools.combinations(range(X.shape[1]), m):
            cols = list(support)
            sol, *_ = np.linalg.lstsq(A[:, cols], ones, rcond=None)
            if np.any(sol < 0):
                continue
            c = np.zeros(X.shape[1])
            c[cols] = sol
            res = float(np.sum((A @ c - ones) ** 2))
            if res < best_res:
                best, best_res = c, res
    return best


def int8_layer(t: dict) -> tuple[Callable[[np.ndarray], object], int, int]:
    """A one-layer model of the int8 tensor ``t`` (a dynamic int8 linear layer, one thread): its run, the
    weight's nonzeros and its execution-layout bytes (csr+int8: in i8_p128 bytes, masked or not)."""
    from .. import _core, load
    from .layouts import i8_p128_bytes

    cols = int(np.prod(t["shape"][1:]))
    model = load(_core.write_model({"input_shape": [cols], "tensors": [t],
                                    "nodes": [{"op": "linear", "inputs": [0], "tensors": [0]}]}), threads=1)
    w = _core.Int8Weight(t)
    nbytes = int(w.bytes) if t["encoding"] == "int8" else i8_p128_bytes(t["shape"][0], cols, t["rowptr"], t["colidx"])
    return model.run, int(w.nnz), nbytes


@dataclass(frozen=True)
class ConvSample:
    """One conv timing: ``cls`` the conv class (the method forced), ``terms`` its terms for one sample."""

    cls: str
    encoding: str
    geometry: ConvGeometry
    density: float
    batch: int
    terms: dict
    seconds: float
    k: int = 0  # centroids of a codebook encoding


def conv_tensor(encoding: str, g: ConvGeometry, density: float, k: int, rng: np.random.Generator) -> dict:
    """A conv weight [out_c, patch] in ``encoding``; a codebook's pruned weights share a zero centroid, as
    the converter stores them (the direct kernels drop those)."""
    if encoding != "codebook" or density >= 1.0:
        return random_tensor(encoding, g.out_c, g.patch, density, k, rng)
    centroids = np.concatenate([[0.0], np.linspace(-1.0, 1.0, k - 1)]).astype(np.float32)
    keep = rng.random(g.out_c * g.patch) < density
    indices = np.where(keep, rng.integers(1, k, keep.size), 0).astype(np.uint8)
    return {"name": "w", "encoding": "codebook", "shape": [g.out_c, g.patch], "centroids": centroids,
            "index_bits": max(1, int(np.ceil(np.log2(k)))), "indices": indices}


def _walked(t: dict) -> int:
    """Entries a direct kernel walks: stored entries, less a codebook's zero-centroid ones."""
    if "rowptr" in t:
        return int(np.asarray(t["rowptr"])[-1])
    if t["encoding"] == "codebook":
        return int(np.count_nonzero(np.asarray(t["centroids"])[np.asarray(t["indices"])]))
    return int(np.prod(t["shape"]))


def _geometry_dict(g: ConvGeometry) -> dict[str, int]:
    return {"in_c": g.in_c, "in_h": g.in_h, "in_w": g.in_w, "out_c": g.out_c, "out_h": g.out_h, "out_w": g.out_w,
            "kh": g.kh, "kw": g.kw, "stride_h": g.stride_h, "stride_w": g.stride_w, "pad_top": g.pad_top,
            "pad_left": g.pad_left, "dilation_h": g.dilation_h, "dilation_w": g.dilation_w, "groups": g.groups}


def conv_cases(classes: Iterable[str] = CONV_CLASSES) -> list[tuple[str, ConvGeometry, str, float, int]]:
    """(class, geometry, encoding, density, k) of every conv the calibration times."""
    out = []
    for cls in classes:
        if cls in DIRECT_VARIANTS:
            out += [(cls, g, e, d, k) for g in CONV_SHAPES for e, d, k in DIRECT_VARIANTS[cls]]
        elif cls == LANES_CLASS:
            out += [(cls, g, "dense", 1.0, 0) for g in LANES_SHAPES]
        elif cls == IM2COL_CLASS:
            out += [(cls, g, e, d, k) for g in IM2COL_SHAPES for e, d, k in IM2COL_VARIANTS]
        else:
            raise ValueError(f"unknown conv class '{cls}' (known: {', '.join(CONV_CLASSES)})")
    return out


def measure_conv(base: CostModel, *, budget_s: float = 0.05, seed: int = 0,
                 progress: Callable[[str], None] | None = None,
                 classes: Iterable[str] = CONV_CLASSES) -> list[ConvSample]:
    """Times every conv of :func:`conv_cases` for ``classes`` at the active ISA, one thread, method forced.
    ``base`` prices the im2col class's GEMM term (its linear classes)."""
    from .. import _core

    rng = np.random.default_rng(seed)
    method = {IM2COL_CLASS: "im2col", LANES_CLASS: "direct_lanes"}
    samples: list[ConvSample] = []
    last = None
    for cls, g, enc, density, k in conv_cases(classes):
        if progress and cls != last:
            progress(cls)
        last = cls
        t = conv_tensor(enc, g, density, k, rng)
        conv = _core.Conv2d(_geometry_dict(g), t, method.get(cls, "direct"))
        rows, cols = g.out_c, g.patch
        nnz = _walked(t) if "rowptr" in t else rows * cols
        kk = int(np.asarray(t["centroids"]).size) if "centroids" in t else 0
        nbytes = int(_core.PackedWeight(t).bytes) if cls == IM2COL_CLASS else None
        terms = ConvCost(base, g.groups, g.positions, g).terms(cls, enc, rows, cols, nnz, kk, nbytes=nbytes,
                                                               walked=_walked(t))
        for batch in CONV_BATCHES:
            x = rng.standard_normal((batch, g.in_c, g.in_h, g.in_w), dtype=np.float32)
            sec = best_time(lambda: conv.run(x), budget_s)  # noqa: B023 (called before the next iteration)
            samples.append(ConvSample(cls, enc, g, density, batch, terms, sec, kk))
    return samples


def fit_conv(samples: Iterable[ConvSample]) -> dict[str, dict[str, float]]:
    """Per conv class, the non-negative coefficient of each of its terms (per sample, so x batch)."""
    by: dict[str, list[ConvSample]] = {}
    for s in samples:
        by.setdefault(s.cls, []).append(s)
    out: dict[str, dict[str, float]] = {}
    for cls, group in sorted(by.items()):
        names = sorted({n for s in group for n in s.terms}, key=CONV_TERMS.index)
        X = np.array([[s.batch * s.terms.get(n, 0.0) for n in names] for s in group])
        t = np.array([s.seconds for s in group])
        scale = np.abs(X).max(axis=0)  # columns of comparable size for lstsq; a column of zeros gets 0
        used = scale > 0
        c = np.zeros(len(names))
        c[used] = _nnls_rel(X[:, used] / scale[used], t) / scale[used]
        out[cls] = {n: float(v) for n, v in zip(names, c, strict=True)}
    return out


def calibrate_conv(base: CostModel, *, budget_s: float = 0.05, seed: int = 0,
                   progress: Callable[[str], None] | None = None,
                   classes: Iterable[str] = CONV_CLASSES) -> tuple[dict[str, dict[str, float]], list[ConvSample]]:
    """Measures and fits the conv terms of ``classes`` at the active ISA (``base``: the linear classes,
    for the im2col GEMM term). Returns the terms (for :attr:`CostModel.conv`) and the samples."""
    samples = measure_conv(base, budget_s=budget_s, seed=seed, progress=progress, classes=classes)
    return fit_conv(samples), samples


def conv_fit_errors(model: CostModel, samples: Iterable[ConvSample]) -> list[float]:
    """predicted / measured for each conv sample (its class as timed, one thread)."""
    return [s.batch * model.conv_seconds(s.cls, s.terms) / s.seconds for s in samples]


def fit(samples: Iterable[Sample]) -> dict[str, dict[int, Coef]]:
    by: dict[tuple[str, int], list[Sample]] = {}
    for s in samples:
        by.setdefault((s.cls, s.batch), []).append(s)
    coef: dict[str, dict[int, Coef]] = {}
    for (cls, batch), group in sorted(by.items()):
        X = np.array([[1.0, visits(s.encoding, s.rows, s.cols, s.nnz, s.nbytes), s.rows, s.cols] for s in group])
        t = np.array([s.seconds for s in group])
        call, per_visit, per_row, per_col = _nnls_rel(X, t)
        coef.setdefault(cls, {})[batch] = Coef(call=float(call), per_visit=float(per_visit), per_row=float(per_row),
                                                per_col=float(per_col))
    return coef


def measure_bandwidth(threads: int, llc: int, budget_s: float, rng: np.random.Generator) -> float:
    """Bytes/s of the dense batch-1 kernel over a weight of 4x the last-level cache (at most 1 GiB), at
    the best ISA level whatever level is being calibrated: it measures the memory, not a kernel."""
    from .. import _core

    active = _core.active_isa()
    _core.set_isa(_core.supported_isas()[-1])
    try:
        return _measure_bandwidth(threads, llc, budget_s, rng)
    finally:
        _core.set_isa(active)


def _measure_bandwidth(threads: int, llc: int, budget_s: float, rng: np.random.Generator) -> float:
    from .. import _core, load

    cols = 4096
    rows = max(256, min(4 * llc, 1 << 30) // (4 * cols))
    t = random_tensor("dense", rows, cols, 1.0, 0, rng)
    model = load(_core.write_model({"input_shape": [cols], "tensors": [t],
                                    "nodes": [{"op": "linear", "inputs": [0], "tensors": [0]}]}), threads=threads)
    x = rng.standard_normal((1, cols), dtype=np.float32)
    return rows * cols * 4 / best_time(lambda: model.run(x), budget_s, min_reps=5)


def calibrate(*, budget_s: float = 0.05, threads: int | None = None, seed: int = 0,
              progress: Callable[[str], None] | None = None,
              classes: Iterable[tuple[str, int]] = CLASSES,
              conv_classes: Iterable[str] = CONV_CLASSES) -> tuple[CostModel, list[Sample | ConvSample]]:
    """Measures this machine at the active ISA; returns the fitted model and the samples it was fitted to.

    ``budget_s`` is the time spent repeating each timed call (the whole run takes about 360 of them for
    the linear classes and 330 for the conv ones, plus building the weights). ``threads``: the thread count
    to measure the read bandwidth at besides 1 (default: the CPUs this process may use). ``classes``:
    (encoding, k) pairs to measure, one per kernel class (default: all of them); ``conv_classes``: the conv
    classes (:mod:`pyruntime.cost.conv`; default all; the im2col class needs the linear classes of the
    dense and codebook encodings).
    """
    from .. import _core

    rng = np.random.default_rng(seed)
    llc = llc_bytes()
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    samples: list[Sample] = []
    for encoding, k in classes:
        cls = kernel_class(encoding, k)
        if progress:
            progress(cls)
        sparse = encoding in ("csr", "csr+codebook", "csr+int8")
        shapes = (INT8_SPARSE_SHAPES if encoding == "csr+int8" else SPARSE_SHAPES) if sparse else tuple(
            (r, c, 1.0) for r, c in DENSE_SHAPES)
        for rows, cols, density in shapes:
            t = random_tensor(encoding, rows, cols, density, k, rng)
            if encoding in ("int8", "csr+int8"):
                run, nnz, nbytes = int8_layer(t)
            else:
                pw = _core.PackedWeight(t)
                run, nnz, nbytes = pw.gemm, int(pw.nnz), int(pw.bytes)
            for batch in BATCH_POINTS:
                x = rng.standard_normal((batch, cols), dtype=np.float32)
                sec = best_time(lambda: run(x), budget_s)  # noqa: B023 (called before the next iteration)
                samples.append(Sample(cls, encoding, rows, cols, nnz, k, batch, nbytes, sec))
    bw = {1: measure_bandwidth(1, llc, 4 * budget_s, rng)}
    if threads > 1:
        bw[threads] = measure_bandwidth(threads, llc, 4 * budget_s, rng)
    model = CostModel(name=f"calibrated at {_core.active_isa()}", isa=_core.active_isa(),
                      llc_bytes=llc, read_bandwidth=bw, coef=fit(samples))
    conv_classes = tuple(conv_classes)
    all_samples: list[Sample | ConvSample] = list(samples)
    if conv_classes:
        model.conv, conv_samples = calibrate_conv(model, budget_s=budget_s, seed=seed, progress=progress,
                                                  classes=conv_classes)
        all_samples += conv_samples
    return model, all_samples


def fit_errors(model: CostModel, samples: Iterable[Sample | ConvSample]) -> list[float]:
    """predicted / measured for each sample."""
    return [conv_fit_errors(model, [s])[0] if isinstance(s, ConvSample) else
            model.seconds(s.encoding, s.rows, s.cols, s.nnz, s.k, batch=s.batch, nbytes=s.nbytes) / s.seconds
            for s in samples]


def check_exec_bytes(samples: Iterable[Sample | ConvSample]) -> list[str]:
    """Samples whose layout bytes differ from the mirror in layouts.py (none, unless pack.cpp changed)."""
    return [f"{s.cls} {s.rows}x{s.cols}" for s in samples if isinstance(s, Sample)
            and s.encoding not in ("csr+codebook", "csr+int8") and exec_bytes(s.encoding, s.rows, s.cols, s.nnz, s.k) != s.nbytes]
