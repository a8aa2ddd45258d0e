"""Sparse 2-D convolution: pyruntime's conv kernels over pruned weights against torch, one run.

Each (case, batch) of conv_shapes.CONV_CASES x conv_shapes.CONV_BATCHES is one pytest-benchmark group, e.g.
"conv-b1-resnet20-16-s0.90" (LeNet-5, ResNet-20 and MobileNet-pointwise layers at sparsity 0.5 to 0.95,
batch 1 and 16); its members, all on 1 thread:

  torch-dense          torch.nn.functional.conv2d with the pruned weight stored dense (oneDNN / MKL)
  torch-sparse-csr     F.unfold(x) (im2col) then W.to_sparse_csr() @ patches: torch has no sparse conv2d on
                       CPU (torch.sparse has no convolution, 2:4 semi-structured sparsity is CUDA-only,
                       torch.ao pruning only masks the dense weight), so this composite is what torch offers
  pyrt-dense           _core.Conv2d over the dense tensor, method "auto" (pyruntime's own dense conv)
  pyrt-csr             _core.Conv2d over the csr tensor, method "auto"
  pyrt-csr+codebook4   _core.Conv2d over the csr+codebook tensor (4-bit shared values), method "auto"
  pyrt-csr-im2col      the csr tensor, method forced to "im2col" (patches through the sparse GEMM kernels)
  pyrt-csr-direct      the csr tensor, method forced to "direct" (direct convolution over the nonzeros)

pyrt-csr is always one of pyrt-csr-im2col / pyrt-csr-direct timed again; the pair shows which method is
faster per case and whether "auto" (the rule in csrc/kernels/conv/conv2d.cpp) picks it. pyrt-* run
Conv2d.run(x, isa=...) per selected ISA (--pyrt-isa, default the active one). torch runs under
torch.inference_mode() with torch.set_num_threads(1) (harness.thread_limit).

Weights are Gaussian (fixed seed per case, scaled by 1/sqrt(K)), magnitude-pruned to the case's sparsity;
the 4-bit codebook is a 1-D k-means over the nonzeros (harness.kmeans_1d, as for the linear layers).
Every method is checked once against a float64 reference convolution (numpy) before it is timed:
normalized max error <= harness.CHECK_TOL.

Timing: the conv benchmarks default to --benchmark-max-time=CONV_MAX_TIME and --benchmark-min-rounds=
CONV_MIN_ROUNDS (per-test markers), so that the 700 of them take about 2 to 3 minutes on one core; a
--benchmark-max-time / --benchmark-min-rounds given on the command line (or in PYTEST_ADDOPTS) applies
instead.

extra_info carries kind="conv" (so the linear sections of bench/report.py leave these rows alone) and what
its "Convolutions" section needs: method, label, peer, encoding, bits, isa, threads, conv_method (the
method pyruntime ran: "im2col" / "direct"; "gemm" for torch-sparse-csr's unfold + SpMM, "torch" for
F.conv2d), forced (the method asked for: "auto", "im2col", "direct"; None for torch), layer, model, the
geometry, sparsity, nnz, batch, weight bytes, file bytes, layout, FLOPs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from conftest import timed_isas
from conv_shapes import CONV_BATCHES, CONV_CASES, ConvCase, conv_group_name
from harness import CHECK_TOL, case_seed, kmeans_1d, magnitude_prune, thread_limit, torch

from pyruntime import _core

# Per-benchmark timing budget of this module (see the docstring): 700 benchmarks of 3 us to ~35 ms each, nearly
# all of them shorter than CONV_MAX_TIME / CONV_MIN_ROUNDS, so the timing takes about 700 x 0.15 s.
CONV_MAX_TIME = 0.15
CONV_MIN_ROUNDS = 5


@dataclass(frozen=True)
class ConvMethod:
    method: str  # "torch-dense", "pyrt-csr-direct", ...
    peer: str  # "torch", "pyruntime"
    encoding: str  # "dense", "csr", "csr+codebook"
    variant: str | None = None  # ConvBuilt.variants key
    forced: str | None = None  # pyruntime: the Conv2d method asked for ("auto", "im2col", "direct")
    bits: int | None = None
    isa: str | None = None

    @property
    def label(self) -> str:
        return self.method if self.peer != "pyruntime" else f"{self.method}@{self.isa}"


def methods_for(case: ConvCase, isas: list[str]) -> list[ConvMethod]:
    out: list[ConvMethod] = []
    if torch is not None:
        out += [ConvMethod("torch-dense", "torch", "dense"), ConvMethod("torch-sparse-csr", "torch", "csr")]
    for isa in isas:
        out.append(ConvMethod("pyrt-dense", "pyruntime", "dense", "dense", "auto", isa=isa))
        out.append(ConvMethod("pyrt-csr", "pyruntime", "csr", "csr", "auto", isa=isa))
        for b in case.csr_codebook_bits:
            out.append(ConvMethod(f"pyrt-csr+codebook{b}", "pyruntime", "csr+codebook", f"csr+codebook{b}",
                                  "auto", bits=b, isa=isa))
        for forced in ("im2col", "direct"):
            out.append(ConvMethod(f"pyrt-csr-{forced}", "pyruntime", "csr", "csr", forced, isa=isa))
    return out


def _timing_marks(config: pytest.Config) -> list[Any]:
    """pytest.mark.benchmark(max_time=..., min_rounds=...) with this module's defaults, unless the option
    was given on the command line or in PYTEST_ADDOPTS (bench/pytest.ini's addopts does not count)."""
    given = [*config.invocation_params.args, *os.environ.get("PYTEST_ADDOPTS", "").split()]
    kw: dict[str, Any] = {}
    for opt, key, default in (("--benchmark-max-time", "max_time", CONV_MAX_TIME),
                              ("--benchmark-min-rounds", "min_rounds", CONV_MIN_ROUNDS)):
        if not any(a == opt or a.startswith(opt + "=") for a in given):
            kw[key] = default
    return [pytest.mark.benchmark(**kw)] if kw else []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.name != "test_conv":
        return
    isas = timed_isas(metafunc.config)
    marks = _timing_marks(metafunc.config)
    params = [
        pytest.param(case, m, batch, id=f"{case.id}-b{batch}-{m.label}", marks=marks)
        for case in CONV_CASES
        for batch in CONV_BATCHES
        for m in methods_for(case, isas)
    ]
    metafunc.parametrize("conv,method,batch", params, indirect=["conv"], scope="module")


# --------------------------------------------------------------------------------------------------
# Weights, inputs, reference


@dataclass
class ConvVariant:
    key: str  # "dense", "csr", "csr+codebook4"
    encoding: str
    bits: int | None
    tensor: dict[str, Any]
    file_bytes: int
    w_equiv: np.ndarray  # [out_c, in_c, k, k] fp32 the variant computes with (the correctness check's)


@dataclass
class ConvBuilt:
    case: ConvCase
    w: np.ndarray  # pruned fp32 [out_c, in_c, k, k]
    nnz: int
    x: dict[int, np.ndarray]  # batch -> [batch, in_c, in_hw, in_hw] fp32
    variants: dict[str, ConvVariant]
    convs: dict[tuple[str, str], Any] = field(default_factory=dict)  # (variant, method) -> _core.Conv2d
    torch_w: Any = None
    torch_csr: Any = None  # the [out_c, K] view as a torch sparse CSR tensor
    torch_x: dict[int, Any] = field(default_factory=dict)
    _refs: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    def conv2d(self, variant: str, method: str) -> Any:
        """The variant packed for `method`, once per case (shared by both batches)."""
        if (variant, method) not in self.convs:
            self.convs[(variant, method)] = _core.Conv2d(self.case.layer.geometry, self.variants[variant].tensor,
                                                         method=method)
        return self.convs[(variant, method)]

    def reference(self, w_equiv: np.ndarray, batch: int) -> np.ndarray:
        key = (id(w_equiv), batch)
        if key not in self._refs:
            self._refs[key] = conv_reference(self.case, w_equiv, self.x[batch])
        return self._refs[key]


def conv_reference(case: ConvCase, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """y = conv2d(x, w) in float64, one GEMM per kernel tap: w [out_c, in_c, k, k], x [batch, in_c, h, w]."""
    lay = case.layer
    k, s, p, o = lay.k, lay.stride, lay.pad, lay.out_hw
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p, p), (p, p)))
    w64 = w.astype(np.float64)
    acc = np.zeros((x.shape[0], o, o, lay.out_c))
    for ky in range(k):
        for kx in range(k):
            taps = xp[:, :, ky : ky + (o - 1) * s + 1 : s, kx : kx + (o - 1) * s + 1 : s]  # [b, c, o, o]
            acc += np.tensordot(taps, w64[:, :, ky, kx], axes=([1], [1]))  # [b, o, o, out_c]
    return acc.transpose(0, 3, 1, 2)


def build_conv_case(case: ConvCase, batches: tuple[int, ...]) -> ConvBuilt:
    lay = case.layer
    rows, cols = lay.out_c, lay.patch
    rng = np.random.default_rng(case_seed(case))
    w = rng.standard_normal(lay.weight_shape, dtype=np.float32) * np.float32(1.0 / np.sqrt(cols))
    magnitude_prune(w, case.sparsity)
    x = {b: rng.standard_normal((b, lay.in_c, lay.in_hw, lay.in_hw), dtype=np.float32) for b in batches}

    w2 = w.reshape(rows, cols)
    mask = w2 != 0
    nnz = int(mask.sum())
    rowptr = np.zeros(rows + 1, dtype=np.uint32)
    np.cumsum(mask.sum(axis=1), out=rowptr[1:])
    colidx = np.nonzero(mask)[1].astype(np.uint32)  # row-major order, ascending columns per row
    data = w2[mask]
    name = f"bench.{case.id}"
    shape = list(lay.weight_shape)

    def variant(key: str, encoding: str, bits: int | None, tensor: dict[str, Any], w_equiv: np.ndarray):
        return ConvVariant(key, encoding, bits, tensor, int(_core.encoded_tensor_bytes(tensor)), w_equiv)

    variants = {
        "dense": variant("dense", "dense", None,
                         {"name": name, "encoding": "dense", "shape": shape, "values": w.ravel()}, w),
        "csr": variant("csr", "csr", None, {"name": name, "encoding": "csr", "shape": shape, "rowptr": rowptr,
                                            "colidx": colidx, "values": data}, w),
    }
    for bits in case.csr_codebook_bits:
        idx, cent = kmeans_1d(data, bits)
        t = {"name": name, "encoding": "csr+codebook", "shape": shape, "rowptr": rowptr, "colidx": colidx,
             "indices": idx, "centroids": cent, "index_bits": bits}
        wq = np.zeros_like(w2)
        wq[mask] = cent[idx]
        variants[f"csr+codebook{bits}"] = variant(f"csr+codebook{bits}", "csr+codebook", bits, t,
                                                  wq.reshape(lay.weight_shape))

    built = ConvBuilt(case=case, w=w, nnz=nnz, x=x, variants=variants)
    if torch is not None:
        built.torch_w = torch.from_numpy(w)
        built.torch_csr = torch.from_numpy(w2).to_sparse_csr()
        built.torch_x = {b: torch.from_numpy(x[b]) for b in batches}
    return built


@pytest.fixture(scope="module")
def conv(request: pytest.FixtureRequest) -> ConvBuilt:
    """One conv case's weights in every format (indirectly parametrized by a conv_shapes.ConvCase)."""
    return build_conv_case(request.param, CONV_BATCHES)


# --------------------------------------------------------------------------------------------------
# Methods


def make_call(built: ConvBuilt, m: ConvMethod, batch: int) -> tuple[Callable[[], Any], Callable[[Any], np.ndarray],
                                                                   int, str]:
    """(the timed call, output -> [batch, out_c, oh, ow] numpy, weight bytes streamed per call, the conv
    method that runs)."""
    lay = built.case.layer
    k, s, p, o = lay.k, lay.stride, lay.pad, lay.out_hw
    if m.peer == "torch" and m.encoding == "dense":
        tx, tw = built.torch_x[batch], built.torch_w

        def call_dense():
            with torch.inference_mode():
                return torch.nn.functional.conv2d(tx, tw, stride=s, padding=p)

        return call_dense, (lambda y: y.numpy()), lay.out_c * lay.patch * 4, "torch"
    if m.peer == "torch":  # im2col (F.unfold) + CSR SpMM over all samples' patches at once
        c, tx = built.torch_csr, built.torch_x[batch]
        nbytes = sum(t.element_size() * t.numel() for t in (c.crow_indices(), c.col_indices(), c.values()))

        def call_sparse():
            with torch.inference_mode():
                cols = torch.nn.functional.unfold(tx, k, padding=p, stride=s)  # [b, K, o*o]
                pat = cols[0] if batch == 1 else cols.transpose(0, 1).reshape(lay.patch, -1)  # [K, b*o*o]
                return c @ pat  # [out_c, b*o*o]

        def to_numpy(y):
            return y.numpy().reshape(lay.out_c, batch, o, o).transpose(1, 0, 2, 3)

        return call_sparse, to_numpy, nbytes, "gemm"
    if m.peer == "pyruntime":
        cv, x, isa = built.conv2d(m.variant, m.forced), built.x[batch], m.isa
        return (lambda: cv.run(x, isa=isa)), (lambda y: y), int(cv.bytes), cv.method
    raise AssertionError(f"unknown method {m}")


def check(built: ConvBuilt, m: ConvMethod, batch: int, y: np.ndarray) -> None:
    w_equiv = built.variants[m.variant].w_equiv if m.peer == "pyruntime" else built.w
    ref = built.reference(w_equiv, batch)
    assert y.shape == ref.shape, f"{m.label}: output shape {y.shape}, expected {ref.shape}"
    scale = max(float(np.abs(ref).max()), 1e-30)
    err = float(np.abs(y.astype(np.float64) - ref).max()) / scale
    assert err <= CHECK_TOL, f"{m.label} on {built.case.id} batch {batch}: normalized max error {err:.3g}"


def test_conv(benchmark, conv: ConvBuilt, method: ConvMethod, batch: int) -> None:
    m, case, lay = method, conv.case, conv.case.layer
    call, to_numpy, weight_bytes, ran = make_call(conv, m, batch)
    with thread_limit(1):
        check(conv, m, batch, to_numpy(call()))  # also the warm-up call

    v = conv.variants.get(m.variant) if m.variant else None
    dense_macs = lay.out_c * lay.patch * lay.out_hw * lay.out_hw * batch
    nnz_macs = conv.nnz * lay.out_hw * lay.out_hw * batch
    benchmark.group = conv_group_name(case, batch)
    benchmark.extra_info.update(
        kind="conv",
        method=m.method,
        label=m.label,
        peer=m.peer,
        encoding=m.encoding,
        bits=m.bits,
        isa=m.isa,
        threads=1,
        conv_method=ran,
        forced=m.forced,
        layer=lay.name,
        model=lay.model,
        description=lay.description,
        in_c=lay.in_c,
        out_c=lay.out_c,
        k=lay.k,
        in_hw=lay.in_hw,
        out_hw=lay.out_hw,
        stride=lay.stride,
        pad=lay.pad,
        sparsity=case.sparsity,
        batch=batch,
        rows=lay.out_c,
        cols=lay.patch,
        nnz=conv.nnz,
        weight_bytes=weight_bytes,
        file_bytes=v.file_bytes if v is not None else None,
        layout=conv.convs[(m.variant, m.forced)].layout if v is not None else None,
        dense_fp32_bytes=lay.out_c * lay.patch * 4,
        flops=2 * (dense_macs if m.encoding == "dense" else nnz_macs),
        dense_flops=2 * dense_macs,
    )
    with thread_limit(1):
        benchmark(call)
