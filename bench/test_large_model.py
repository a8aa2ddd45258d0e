"""A model bigger than the last-level cache at batch 1: how much of the machine's read bandwidth the
weight stream gets.

A single 4096 x 4096 layer in any compressed encoding fits in a 32 MiB L3 (a 90%-pruned, 4-bit shared
one is 4 MiB), so once it is warm the batch-1 benchmarks of test_linear.py read it from cache. A real
model is a chain of such layers whose weights together do not fit: every run streams them from DRAM.
This module builds that model, the same 4096 x 4096 weight (from the test_linear.py cases of the same
id, so the same values) repeated as N linear layers (y_{i+1} = y_i @ W.T, no bias, no activation),
in five encodings:

  dense          fp32                            (pyrt-dense)
  codebook4      4-bit weight sharing, no pruning (pyrt-codebook4)
  codebook8      8-bit weight sharing (k = 256), no pruning: a byte per weight, a quarter of dense's stream
  csr            90% pruned, fp32 values         (pyrt-csr)
  csr+codebook4  90% pruned, 4-bit shared values (pyrt-csr+codebook4, the Deep Compression form)

N is chosen per encoding so that its execution layout streams more than twice the L3 per run
(harness.llc_bytes(); for a 32 MiB L3, 2 dense layers and 16 csr+codebook4 ones): one N for all five would
make the dense chain 16x the smallest one's bytes, 15 GB where the L3 is reported as 480 MiB, more than the
machine's memory. Each layer decodes to its own copy of the weight, so no layer is served by another's
cache lines. The models are written with
_core.write_model, loaded with pyruntime.load(bytes, threads=1) and threads=DEFAULT_THREADS, and timed
at batch 1 with Model.run. The bytes streamed per run are the sum of the layers' `exec_bytes`
(Model.layers()), what the kernels read; bench/report.py divides them by the median time and by the
read bandwidth of test_bandwidth.py at the same thread count.

Peer: numpy-dense (and -mt), the same chain as x @ W_i.T over N distinct fp32 arrays (OpenBLAS).

Each case's weight is scaled so that a layer keeps the norm of the sample input (gain 1 on it; pruning
and sharing change the gain, so each weight gets its own factor): unscaled, a 90%-pruned layer shrinks its
input by about 0.66, and past ~200 layers the activations reach the float32 denormals, where every
multiply-add takes a microcode assist (a 238-layer chain ran 2.6x slower, 3.4 GB/s; that is the CPU's
denormal path, not the weight stream). Every model's output is checked once against a float64 reference
before it is timed. extra_info:
kind="large_model", method, label, encoding, sparsity, bits, exec_bytes (per run, all layers), threads,
layers, llc_bytes, rows, cols, batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from harness import CHECK_TOL, DEFAULT_THREADS, Built, build_case, llc_bytes, thread_limit
from shapes import HEADLINE_BITS, SQUARE_4096, Case

import pyruntime
from pyruntime import _core

BATCH = 1
SPARSITY = 0.9
BITS = HEADLINE_BITS  # 4
WIDE_BITS = 8  # Deep Compression's width for convs; with AVX2 its table lookups bound it from the cache
DENSE_CASE = Case(SQUARE_4096, 0.0, codebook_bits=(BITS, WIDE_BITS))
SPARSE_CASE = Case(SQUARE_4096, SPARSITY, csr_codebook_bits=(BITS,))
# (Built.variants key, which case)
ENCODINGS: tuple[tuple[str, Case], ...] = (
    ("dense", DENSE_CASE),
    (f"codebook{BITS}", DENSE_CASE),
    (f"codebook{WIDE_BITS}", DENSE_CASE),
    ("csr", SPARSE_CASE),
    (f"csr+codebook{BITS}", SPARSE_CASE),
)
THREADS = (1, DEFAULT_THREADS) if DEFAULT_THREADS > 1 else (1,)


@dataclass
class Large:
    """The two 4096 x 4096 cases, built once, and each encoding's chain length."""

    built: dict[str, Built]  # case id -> Built
    layers: dict[str, int]  # encoding key -> the chain's layer count
    llc: int
    _numpy_chain: list[np.ndarray] | None = None
    _model: tuple[str, bytes] | None = None  # the last model file written (one live at a time: 1 GiB dense)

    def model_bytes(self, key: str, tensor: dict[str, Any], gain: float) -> bytes:
        """The .pyrt file of the chain in encoding `key` (values times `gain`), written once for both thread
        counts."""
        if self._model is None or self._model[0] != key:
            self._model = None
            self._model = (key, chain_model(scaled(tensor, gain), self.layers[key]))
        return self._model[1]

    def variant(self, key: str, case: Case):
        return self.built[case.id].variants[key]

    def numpy_chain(self) -> list[np.ndarray]:
        """N distinct copies of the dense fp32 weight (one per layer, so none is read from cache)."""
        if self._numpy_chain is None:
            self._model = None
            w = self.built[DENSE_CASE.id].w
            w = w * np.float32(unit_gain(w, self.built[DENSE_CASE.id].x[BATCH]))
            self._numpy_chain = [w.copy() for _ in range(self.layers["dense"])]
        return self._numpy_chain


@pytest.fixture(scope="module")
def large() -> Large:
    built = {c.id: build_case(c, (BATCH,)) for c in (DENSE_CASE, SPARSE_CASE)}
    llc = llc_bytes()
    layers = {k: 2 * llc // int(built[c.id].variants[k].packed.bytes) + 1 for k, c in ENCODINGS}
    return Large(built=built, layers=layers, llc=llc)


def unit_gain(w: np.ndarray, x: np.ndarray) -> float:
    """The factor that makes x @ w.T as long as x (float32, so that the scaled values are what both the
    file and the reference hold)."""
    return float(np.float32(np.linalg.norm(x) / np.linalg.norm(x.astype(np.float64) @ w.T.astype(np.float64))))


def scaled(tensor: dict[str, Any], gain: float) -> dict[str, Any]:
    """The tensor with its values (or centroids) times gain (float32)."""
    key = "centroids" if "centroids" in tensor else "values"
    return dict(tensor, **{key: np.asarray(tensor[key], np.float32) * np.float32(gain)})


def chain_model(tensor: dict[str, Any], layers: int) -> bytes:
    """A .pyrt model of `layers` linear layers, each with its own copy of `tensor` (value 0 is the input,
    node i reads value i and writes value i + 1)."""
    cols = int(tensor["shape"][1])
    tensors = [dict(tensor, name=f"fc{i}.weight") for i in range(layers)]
    nodes = [{"op": "linear", "inputs": [i], "tensors": [i]} for i in range(layers)]
    return _core.write_model({"input_shape": [cols], "tensors": tensors, "nodes": nodes})


def reference(w_equiv: np.ndarray, x: np.ndarray, layers: int) -> np.ndarray:
    w = w_equiv.astype(np.float64)
    y = x.astype(np.float64)
    for _ in range(layers):
        y = y @ w.T
    return y


def check(label: str, y: np.ndarray, ref: np.ndarray) -> None:
    assert y.shape == ref.shape, f"{label}: output shape {y.shape}, expected {ref.shape}"
    scale = max(float(np.abs(ref).max()), 1e-30)
    err = float(np.abs(y.astype(np.float64) - ref).max()) / scale
    assert err <= CHECK_TOL, f"{label}: normalized max error {err:.3g}"


def _params() -> list[Any]:
    out = []
    for key, case in ENCODINGS:
        for t in THREADS:
            label = f"pyrt-{key}" + ("-mt" if t > 1 else "")
            out.append(pytest.param("pyruntime", key, case, t, id=f"{label}-b{BATCH}"))
    for t in THREADS:  # last: the N dense copies are made only now
        label = "numpy-dense" + ("-mt" if t > 1 else "")
        out.append(pytest.param("numpy", "dense", DENSE_CASE, t, id=f"{label}-b{BATCH}"))
    return out


@pytest.mark.parametrize("peer,key,case,threads", _params())
def test_large_model(benchmark, large: Large, peer: str, key: str, case: Case, threads: int) -> None:
    v = large.variant(key, case)
    x = large.built[case.id].x[BATCH]
    n = large.layers[key]
    if peer == "pyruntime":
        gain = unit_gain(v.w_equiv, x)
        model = pyruntime.load(large.model_bytes(key, v.tensor, gain), threads=threads)
        w_run = v.w_equiv * np.float32(gain)
        exec_bytes = sum(int(layer["exec_bytes"]) for layer in model.layers())
        call = model.run
        method, encoding, bits = f"pyrt-{key}", v.encoding, v.bits
        limit = None  # the model's own pool; the caller's thread is one of its threads
    else:
        chain = large.numpy_chain()
        w_run = chain[0]

        def call(x: np.ndarray) -> np.ndarray:
            for w in chain:
                x = x @ w.T
            return x

        exec_bytes = sum(w.nbytes for w in chain)
        method, encoding, bits = "numpy-dense", "dense", None
        limit = 1 if threads == 1 else None  # -mt: OpenBLAS at its default thread count
    label = method + ("-mt" if threads > 1 else "")
    assert exec_bytes > 2 * large.llc, f"{label}: {exec_bytes} bytes per run, not above 2x the L3"
    with thread_limit(limit):
        y = call(x)  # also the warm-up run
        check(label, y, reference(w_run, x, n))
        assert np.abs(y).max() > 1e-3 * np.abs(x).max(), f"{label}: the chain's output vanished"

    benchmark.group = f"large-model-b{BATCH}"
    benchmark.extra_info.update(
        kind="large_model",
        method=method,
        label=label,
        peer=peer,
        encoding=encoding,
        isa=_core.active_isa() if peer == "pyruntime" else None,
        sparsity=case.sparsity,
        bits=bits,
        exec_bytes=int(exec_bytes),
        threads=threads,
        threads_default=threads == DEFAULT_THREADS,
        layers=n,
        llc_bytes=large.llc,
        rows=SQUARE_4096.rows,
        cols=SQUARE_4096.cols,
        batch=BATCH,
    )
    with thread_limit(limit):
        benchmark(call, x)
