"""Linear layer y = x @ W.T: pyruntime's encodings against numpy, scipy.sparse and torch, one run.

Each (case, batch) of shapes.CASES x shapes.BATCHES is one pytest-benchmark group, e.g.
"gemv-4096-s0.90" or "gemm64-4096-dense"; its members are

  numpy-dense        x @ W.T, OpenBLAS, 1 thread             (W: the pruned weight stored dense)
  numpy-dense-mt     the same at the default thread count
  torch-dense        torch.nn.functional.linear, 1 thread
  torch-dense-mt     the same at the default thread count
  torch-int8-dynamic torch.ao.quantization.quantize_dynamic(nn.Linear holding W): qint8 weight, the input
                     quantized on the fly at every call, 1 thread   (W stored dense, one byte per weight)
  torch-int8-dynamic-mt  the same at the default thread count
  scipy-csr          W_csr @ x.T (scipy.sparse, single-threaded)          sparse cases only
  torch-sparse-csr   W.to_sparse_csr() @ x.T, 1 thread                   sparse cases only
  pyrt-<encoding>    PackedWeight.gemm(x, isa=...), 1 thread, per selected ISA (--pyrt-isa)
  pyrt-<encoding>-mt a one-layer model loaded with threads = the default thread count (Model.run; the
                     pool splits rows at batch 1, samples above), at the last selected ISA

Every method is checked against a float64 reference once before it is timed (normalized max error <=
harness.CHECK_TOL, or harness.INT8_CHECK_TOL for the int8 peer, whose quantization error is ~2e-2).
extra_info carries what bench/report.py needs: method, encoding, sparsity, bits, batch, rows, cols, nnz,
the weight bytes the method streams per call, the model-file bytes (pyruntime), FLOPs executed and
dense-equivalent FLOPs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from conftest import timed_isas
from harness import (
    CHECK_TOL,
    DEFAULT_THREADS,
    INT8_CHECK_TOL,
    INT8_UNAVAILABLE,
    Built,
    int8_weight_bytes,
    scipy,
    thread_limit,
    torch,
)
from shapes import BATCHES, CASES, Case, group_name

import pyruntime
from pyruntime import _core


@dataclass(frozen=True)
class Method:
    method: str  # "numpy-dense", "scipy-csr", "pyrt-csr", ...
    peer: str  # library: "numpy", "scipy", "torch", "pyruntime"
    encoding: str  # weight format the method streams: "dense", "int8", "csr", "codebook", "csr+codebook"
    threads: int | None  # None: library default
    variant: str | None = None  # pyruntime Built.variants key
    bits: int | None = None
    isa: str | None = None

    @property
    def label(self) -> str:
        if self.peer != "pyruntime":
            return self.method
        return f"{self.method}@{self.isa}"


def methods_for(case: Case, isas: list[str]) -> list[Method]:
    out = [
        Method("numpy-dense", "numpy", "dense", 1),
        Method("numpy-dense-mt", "numpy", "dense", None),
    ]
    if torch is not None:
        out += [Method("torch-dense", "torch", "dense", 1), Method("torch-dense-mt", "torch", "dense", None)]
        # Skipped in test_linear, with the reason, when torch.ao quantization cannot run here.
        out += [Method("torch-int8-dynamic", "torch", "int8", 1),
                Method("torch-int8-dynamic-mt", "torch", "int8", None)]
    sparse = case.sparsity > 0.0
    if sparse and scipy is not None:
        out.append(Method("scipy-csr", "scipy", "csr", 1))
    if sparse and torch is not None:
        out.append(Method("torch-sparse-csr", "torch", "csr", 1))
    if sparse:
        variants = [("csr", "csr", None)] + [
            (f"csr+codebook{b}", "csr+codebook", b) for b in case.csr_codebook_bits
        ]
    else:
        variants = [("dense", "dense", None)] + [(f"codebook{b}", "codebook", b) for b in case.codebook_bits]
    for isa in isas:
        for key, enc, bits in variants:
            out.append(Method(f"pyrt-{key}", "pyruntime", enc, 1, variant=key, bits=bits, isa=isa))
    if DEFAULT_THREADS > 1:  # a one-layer model with a thread pool, at the best ISA
        for key, enc, bits in variants:
            out.append(Method(f"pyrt-{key}-mt", "pyruntime", enc, DEFAULT_THREADS, variant=key, bits=bits,
                              isa=isas[-1]))
    return out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.name != "test_linear":
        return
    isas = timed_isas(metafunc.config)
    params = []
    for case in CASES:
        for batch in BATCHES:
            for m in methods_for(case, isas):
                params.append(pytest.param(case, m, batch, id=f"{case.id}-b{batch}-{m.label}"))
    metafunc.parametrize("built,method,batch", params, indirect=["built"], scope="module")


def make_call(
    built: Built, m: Method, batch: int
) -> tuple[Callable[[], Any], Callable[[Any], np.ndarray], int]:
    """Returns (the timed call, output -> [batch, rows] numpy, weight bytes streamed per call)."""
    rows, cols = built.rows, built.cols
    dense_bytes = rows * cols * 4
    if m.peer == "numpy":
        x, w = built.x[batch], built.w
        return (lambda: x @ w.T), (lambda y: y), dense_bytes
    if m.peer == "torch" and m.encoding == "int8":
        q, tx = built.torch_int8, built.torch_x[batch]

        def call_int8():
            with torch.inference_mode():
                return q(tx)

        return call_int8, (lambda y: y.numpy()), int8_weight_bytes(q)
    if m.peer == "torch" and m.encoding == "dense":
        tx, tw = built.torch_x[batch], built.torch_w

        def call():
            with torch.inference_mode():
                return torch.nn.functional.linear(tx, tw)

        return call, (lambda y: y.numpy()), dense_bytes
    if m.peer == "torch":  # sparse CSR: W_csr @ x.T, a matrix-vector product at batch 1
        c = built.torch_csr
        tx = built.torch_x[batch][0] if batch == 1 else built.torch_xt[batch]
        nbytes = sum(t.element_size() * t.numel() for t in (c.crow_indices(), c.col_indices(), c.values()))

        def call():
            with torch.inference_mode():
                return c @ tx

        return call, (lambda y: y.numpy().reshape(rows, batch).T), nbytes
    if m.peer == "scipy":
        s = built.scipy_csr
        sx = built.x[batch][0] if batch == 1 else built.xt[batch]
        nbytes = s.data.nbytes + s.indices.nbytes + s.indptr.nbytes
        return (lambda: s @ sx), (lambda y: np.asarray(y).reshape(rows, batch).T), nbytes
    if m.peer == "pyruntime" and m.threads and m.threads > 1:  # Model.run with a pool of m.threads
        v = built.variants[m.variant]
        if (m.variant, m.threads) not in built.models:  # loaded once per case, used at every batch
            built.models[(m.variant, m.threads)] = pyruntime.load(one_layer_model(v.tensor),
                                                                  threads=m.threads)
        model = built.models[(m.variant, m.threads)]
        x, isa = built.x[batch], m.isa

        def call_mt():
            _core.set_isa(isa)
            return model.run(x)

        return call_mt, (lambda y: y), int(v.packed.bytes)
    if m.peer == "pyruntime":
        v = built.variants[m.variant]
        pw, x, isa = v.packed, built.x[batch], m.isa
        return (lambda: pw.gemm(x, isa=isa)), (lambda y: y), int(pw.bytes)
    raise AssertionError(f"unknown method {m}")


def one_layer_model(tensor: dict[str, Any]) -> bytes:
    return _core.write_model({"input_shape": [int(tensor["shape"][1])], "tensors": [tensor],
                              "nodes": [{"op": "linear", "inputs": [0], "tensors": [0]}]})


def check(built: Built, m: Method, batch: int, y: np.ndarray) -> None:
    w_equiv = built.variants[m.variant].w_equiv if m.peer == "pyruntime" else built.w
    ref = built.reference(w_equiv, batch)
    assert y.shape == ref.shape, f"{m.label}: output shape {y.shape}, expected {ref.shape}"
    scale = max(float(np.abs(ref).max()), 1e-30)
    err = float(np.abs(y.astype(np.float64) - ref).max()) / scale
    tol = INT8_CHECK_TOL if m.encoding == "int8" else CHECK_TOL
    assert err <= tol, f"{m.label} on {built.case.id} batch {batch}: normalized max error {err:.3g}"


def test_linear(benchmark, built: Built, method: Method, batch: int) -> None:
    m, case = method, built.case
    if m.encoding == "int8" and built.torch_int8 is None:
        pytest.skip(f"torch-int8-dynamic: {INT8_UNAVAILABLE}")
    call, to_numpy, weight_bytes = make_call(built, m, batch)
    with thread_limit(m.threads):
        check(built, m, batch, to_numpy(call()))  # also the warm-up call

    streamed_nnz = built.rows * built.cols if m.encoding in ("dense", "int8", "codebook") else built.nnz
    v = built.variants.get(m.variant) if m.variant else None
    benchmark.group = group_name(case, batch)
    benchmark.extra_info.update(
        method=m.method,
        label=m.label,
        peer=m.peer,
        encoding=m.encoding,
        isa=m.isa,
        threads=m.threads if m.threads is not None else DEFAULT_THREADS,
        threads_default=m.threads is None,
        layer=case.layer.name,
        model=case.layer.model,
        sparsity=case.sparsity,
        bits=m.bits,
        batch=batch,
        rows=built.rows,
        cols=built.cols,
        nnz=built.nnz,
        weight_bytes=weight_bytes,
        file_bytes=v.file_bytes if v is not None else None,
        layout=getattr(v.packed, "layout", None) if v is not None else None,  # execution layout, when bound
        dense_fp32_bytes=built.rows * built.cols * 4,
        flops=2 * streamed_nnz * batch,
        dense_flops=2 * built.rows * built.cols * batch,
    )
    with thread_limit(m.threads):
        benchmark(call)
