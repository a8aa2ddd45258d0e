"""Memory read bandwidth of this machine: the ceiling a batch-1 linear layer streaming its weight can reach.

A float32 array of 1 GiB (32x a 32 MiB last-level cache, so every round reads DRAM) is summed by a numba
kernel compiled with parallel=True and fastmath=True: a `prange` reduction, which numba splits into one
contiguous chunk per thread and vectorizes (AVX-512 here) with several float64 partial sums per thread.
It is timed on 1 thread and on the default thread count (numba.set_num_threads).

Why numba: on the 2-core Zen 4 machine the suite was written on, this loop read ~30 GB/s on 1 thread,
ahead of numpy's `a.sum()` (~26 GB/s, pairwise summation) and of numpy sums of 64 chunks in a 2-thread
ThreadPoolExecutor (~24 GB/s); a blocked variant with one float32 partial sum per 256 KiB block was no
faster. Nothing that reads the array can beat what this kernel measures by much, so bench/report.py
divides the large model's effective weight bandwidth (bench/test_large_model.py) by it.

The sum is checked (the array holds ones, and a float64 sum of 2^28 ones is exact). extra_info:
kind="bandwidth", method, bytes (read per call), threads, threads_default.
"""

from __future__ import annotations

import numpy as np
import pytest
from harness import DEFAULT_THREADS

numba = pytest.importorskip("numba", reason="numba (a pyruntime dependency) measures the read bandwidth")

ARRAY_BYTES = 1 << 30  # 1 GiB of float32

THREADS = (1, DEFAULT_THREADS) if DEFAULT_THREADS > 1 else (1,)


@numba.njit(parallel=True, fastmath=True, cache=False)
def _stream_sum(a: np.ndarray) -> float:
    s = 0.0
    for i in numba.prange(a.size):
        s += a[i]
    return s


@pytest.fixture(scope="module")
def array() -> np.ndarray:
    a = np.ones(ARRAY_BYTES // 4, dtype=np.float32)  # written once, so every page is resident
    _stream_sum(a[:1024])  # compile outside the timing
    return a


@pytest.mark.parametrize("threads", THREADS, ids=[f"t{t}" for t in THREADS])
def test_read_bandwidth(benchmark, array: np.ndarray, threads: int) -> None:
    old = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        total = _stream_sum(array)  # also the warm-up call
        assert total == float(array.size), f"sum {total}, expected {array.size}"
        benchmark.group = "bandwidth"
        benchmark.extra_info.update(
            kind="bandwidth",
            method="numba-prange-sum",
            label="numba-prange-sum" + ("-mt" if threads > 1 else ""),
            bytes=int(array.nbytes),
            threads=numba.get_num_threads(),
            threads_default=threads == DEFAULT_THREADS,
        )
        benchmark(_stream_sum, array)
    finally:
        numba.set_num_threads(old)
