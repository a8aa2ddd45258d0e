"""Binary (XNOR-popcount) linear layers: pyruntime's binary kernels and a sign + blinear model against fp32
GEMMs of the same shape (numpy, torch) and Larq Compute Engine's interpreter, in the same run.

A square layer of K inputs and K outputs, K in 256, 1024, 4096, batch 1 and 64: one pytest-benchmark group
per (K, batch), "binary-k<K>-b<batch>". Its members:

  numpy-fp32-1t         x @ W.T, W (K, K) fp32, OpenBLAS at 1 thread (threadpoolctl)
  numpy-fp32-default    the same at numpy's default thread count
  torch-fp32            torch.nn.functional.linear(x, W), 1 thread
  pyrt-xnor-<isa>       _core.BinaryWeight(W's signs, "xnor").gemm(x_bits, isa=<isa>), x_bits the input's
                        signs bit-packed beforehand ((batch, K / 64) u64): the kernel alone, 1 thread. <isa>:
                        avx512 (the VPOPCNTDQ kernel where the CPU has it) and avx2 when supported; ref
                        (scalar) at K = 256 only
  pyrt-model-<isa>      pyruntime.load(sign -> blinear, threads=1).run(x) from the f32 input: binarizing the
                        input included; at the best ISA level of the pyrt-xnor ones
  lce-default           Larq Compute Engine's interpreter (1 thread) running LceQuantize -> LceBconv2d (1x1):
  lce-indirect-bgemm    from the f32 input, as pyrt-model; default options and use_indirect_bgemm. Runs in
                        this process when LCE imports under its numpy (< 2), else in a worker process
                        (bench/lce_peer.py) of the python PYRT_BENCH_LCE_PYTHON names; skipped with the
                        reason otherwise. A worker's member times `inner_calls` calls per round (the pipe's
                        round trip is < 1% of a round); extra_info says so and binary_report.py divides.

The fp32 peers multiply the input's signs (+-1.0) by the weight's (+-1.0), so every member's output is the
exact integer dot product: each is checked equal to the float64 numpy product of the +-1 matrices before it
is timed. extra_info: method, isa, kernel (the binary kernel's name), K, rows, batch, threads, bmacs (binary
multiply-accumulates: K * rows * batch; XNOR-Net counts 2 bit operations, xnor and popcount, per bmac,
extra_info bit_ops), flops (2 * bmacs, for the fp32 peers) and the clock binary_report.py's peak uses.

    pytest bench/test_binary.py --benchmark-json=binary.json && python bench/binary_report.py binary.json
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from harness import blas_summary, one_thread_at, thread_limit, threadpool_info, torch

import pyruntime
from pyruntime import _core

KS = (256, 1024, 4096)
BATCHES = (1, 64)
# The pyrt-xnor ISA levels, best first (avx512vnni adds nothing to the binary kernels: the same as avx512).
XNOR_ISAS = [i for i in ("avx512", "avx2", "neon") if i in _core.supported_isas()]
REF_MAX_K = 256  # the scalar kernel only at K <= this: it is slow
LCE_METHODS = ("lce-default", "lce-indirect-bgemm")
# A worker's LCE member runs calls until a round takes at least this long (the pipe's round trip: ~0.1 ms).
LCE_ROUND_S = 0.02


def pack(bits: np.ndarray) -> np.ndarray:
    """(n, k) 0/1 -> (n, ceil(k / 64)) u64, bit i of word j = column 64 j + i (FORMAT.md 3.8)."""
    n, k = bits.shape
    padded = np.zeros((n, (k + 63) // 64 * 64), np.uint8)
    padded[:, :k] = bits
    return np.packbits(padded, axis=1, bitorder="little").view("<u8")


def clock() -> tuple[float, str]:
    """The clock the peak popcount throughput is computed at: lscpu's "CPU max MHz", else the largest "cpu
    MHz" of /proc/cpuinfo (a virtual machine often reports only its nominal clock there)."""
    try:
        out = subprocess.run(["lscpu"], check=False, capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"^CPU max MHz:\s*([\d.]+)", out, re.MULTILINE)
        if m and float(m.group(1)) > 0:
            return float(m.group(1)), "lscpu CPU max MHz"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        text = Path("/proc/cpuinfo").read_text()
        mhz = [float(v) for v in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.MULTILINE)]
        if mhz:
            return max(mhz), "/proc/cpuinfo cpu MHz (max over cores)"
    except OSError:
        pass
    return 0.0, "unknown"


CLOCK_MHZ, CLOCK_SOURCE = clock()


def numpy_threads() -> int | None:
    if threadpool_info is None:
        return None
    n = [p.get("num_threads") for p in threadpool_info() if p.get("user_api") == "blas"]
    return n[0] if n else None


# --------------------------------------------------------------------------------------------------
# Larq Compute Engine


class LceWorker:
    """bench/lce_peer.py's worker loop in another python (numpy < 2)."""

    def __init__(self, python: str) -> None:
        self.proc = subprocess.Popen([python, str(Path(__file__).with_name("lce_peer.py"))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.info = self.call("hello")

    def call(self, *msg):
        pickle.dump(msg, self.proc.stdin)
        self.proc.stdin.flush()
        status, value = pickle.load(self.proc.stdout)
        if status != "ok":
            raise RuntimeError(f"LCE worker: {value}")
        return value

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _lce_setup() -> tuple[object | None, str | None, str]:
    """(the in-process lce_peer module or an LceWorker, None) or (None, the reason LCE is skipped); and how
    it runs."""
    try:
        import lce_peer

        lce_peer.modules()
        if int(np.__version__.split(".")[0]) < 2:
            return lce_peer, None, f"in process (larq-compute-engine {lce_peer.version()})"
        in_process = (f"larq-compute-engine is installed but needs numpy < 2 (this is numpy "
                      f"{np.__version__}: its interpreter reads every input as 0 bytes)")
    except (ImportError, StopIteration, OSError) as e:
        in_process = f"larq-compute-engine does not import here ({e})"
    python = os.environ.get("PYRT_BENCH_LCE_PYTHON")
    if not python:
        return None, (f"{in_process}; set PYRT_BENCH_LCE_PYTHON to a python with numpy < 2, flatbuffers, "
                      "tqdm and larq-compute-engine (see bench/lce_peer.py)"), ""
    try:
        w = LceWorker(python)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as e:
        return None, f"the LCE worker ({python}) did not start: {e}", ""
    return w, None, f"worker {python} (larq-compute-engine {w.info['version']}, numpy {w.info['numpy']})"


_LCE: tuple | None = None


def lce() -> tuple:
    global _LCE
    if _LCE is None:
        _LCE = _lce_setup()
    return _LCE


@pytest.fixture(scope="session", autouse=True)
def _close_lce_worker():
    yield
    if _LCE is not None and isinstance(_LCE[0], LceWorker):
        _LCE[0].close()


# --------------------------------------------------------------------------------------------------
# The layers


class Layer:
    """One K x K binary layer: the weight's bits, its fp32 +-1 copy, the pyruntime weight and model, inputs
    and the exact references per batch."""

    def __init__(self, k: int) -> None:
        rng = np.random.default_rng(k)
        self.k = self.rows = k
        self.wbits = rng.integers(0, 2, (k, k), dtype=np.uint8)  # 1 = +1
        self.w32 = self.wbits.astype(np.float32) * 2 - 1
        tensor = {"name": f"bench.binary{k}", "encoding": "binary", "shape": [k, k],
                  "bits": self.wbits.ravel(), "scales": np.ones(k, np.float32)}
        self.weight = _core.BinaryWeight(tensor, "xnor")
        model = {"input_shape": [k], "tensors": [tensor], "nodes": [
            {"op": "sign", "inputs": [0], "tensors": [], "attrs": {"scale": 1.0, "shift": 0.0}},
            {"op": "blinear", "inputs": [1], "tensors": [0], "attrs": {"input": 0, "output": 0}}]}
        self.model = pyruntime.load(_core.write_model(model), threads=1)
        self.x = {b: rng.standard_normal((b, k), dtype=np.float32) for b in BATCHES}  # f32 input
        self.xs = {b: np.where(self.x[b] >= 0, 1.0, -1.0).astype(np.float32) for b in BATCHES}  # its signs
        self.xbits = {b: pack((self.x[b] >= 0).astype(np.uint8)) for b in BATCHES}
        self.ref = {b: self.xs[b].astype(np.float64) @ self.w32.T.astype(np.float64) for b in BATCHES}
        self.torch_w = torch.from_numpy(self.w32) if torch is not None else None
        self.lce: dict[tuple[str, int], object] = {}


_built: dict[int, Layer] = {}


def layer(k: int) -> Layer:
    if k not in _built:
        _built.clear()  # one layer in memory at a time
        _built[k] = Layer(k)
    return _built[k]


def methods(k: int) -> list[str]:
    isas = XNOR_ISAS + (["ref"] if k <= REF_MAX_K else [])
    best = XNOR_ISAS[:1] or ["ref"]
    return (["numpy-fp32-1t", "numpy-fp32-default", "torch-fp32"] + [f"pyrt-xnor-{i}" for i in isas]
            + [f"pyrt-model-{i}" for i in best] + list(LCE_METHODS))


CASES = [(k, b, m) for k in KS for b in BATCHES for m in methods(k)]


def _check(method: str, got, ref: np.ndarray) -> None:
    got = got.numpy() if hasattr(got, "numpy") else np.asarray(got)
    assert got.shape == ref.shape, f"{method}: output shape {got.shape}, expected {ref.shape}"
    bad = int((got.astype(np.float64) != ref).sum())
    assert bad == 0, f"{method}: {bad} of {ref.size} outputs differ from the exact dot products"


@pytest.mark.parametrize("k,batch,method", CASES, ids=[f"k{k}-b{b}-{m}" for k, b, m in CASES])
def test_binary_linear(benchmark, k, batch, method):
    if method.startswith("torch") and torch is None:
        pytest.skip("torch is not installed")
    peer_lce = method.startswith("lce")
    if peer_lce:
        backend, reason, how = lce()
        if reason:
            print(f"\n{method}: skipped: {reason}")
            pytest.skip(reason)
    L = layer(k)
    ref = L.ref[batch]
    isa = method.rsplit("-", 1)[1] if method.startswith("pyrt") else None
    threads = 1
    inner_calls = 1
    if method.startswith("numpy"):
        xs, wt = L.xs[batch], L.w32.T
        fn = lambda: xs @ wt
        if method == "numpy-fp32-default":
            threads = numpy_threads() or os.cpu_count()
    elif method == "torch-fp32":
        xt = torch.from_numpy(L.xs[batch])
        fn = lambda: torch.nn.functional.linear(xt, L.torch_w)
    elif method.startswith("pyrt-xnor"):
        xb = L.xbits[batch]
        fn = lambda: L.weight.gemm(xb, isa=isa)
    elif method.startswith("pyrt-model"):
        x = L.x[batch]
        fn = lambda: L.model.run(x)
    else:  # LCE
        from lce_peer import FLAGS

        neg = (1 - L.wbits).astype(np.uint8)  # LCE's bit is 1 for -1
        x = L.x[batch]
        if isinstance(backend, LceWorker):
            backend.call("load", neg, batch, FLAGS[method])
            _check(method, backend.call("run", x), ref)
            one = backend.call("time", 3) / 3
            inner_calls = max(1, int(LCE_ROUND_S / max(one, 1e-9)))
            fn = lambda: backend.call("time", inner_calls)
        else:
            interp = backend.Layer(neg, batch, FLAGS[method])
            _check(method, interp.run(x), ref)
            fn = lambda: interp.run(x)

    if method == "numpy-fp32-default":
        ctx = thread_limit(None)
    else:
        ctx = one_thread_at(isa)
    with ctx:
        if not peer_lce:
            _check(method, fn(), ref)
        benchmark.group = f"binary-k{k}-b{batch}"
        bmacs = k * L.rows * batch
        kernel = _core.binary_kernel(isa) if isa else ""
        benchmark.extra_info.update(
            kind="binary", method=method, peer=method.split("-")[0], isa=isa or "", kernel=kernel, K=k,
            rows=L.rows, batch=batch, threads=threads, bmacs=bmacs, bit_ops=2 * bmacs, flops=2 * bmacs,
            clock_mhz=CLOCK_MHZ, clock_source=CLOCK_SOURCE, inner_calls=inner_calls,
            numpy_blas=blas_summary() if method.startswith("numpy") else "",
            lce=how if peer_lce else "")
        if inner_calls > 1 or (peer_lce and isinstance(backend, LceWorker)):
            benchmark.pedantic(fn, rounds=5, iterations=1, warmup_rounds=1)
        else:
            benchmark(fn)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, *sys.argv[1:]]))
