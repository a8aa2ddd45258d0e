"""Small wall-clock timer for the demo and the CLI (benchmarks proper live in bench/)."""
from __future__ import annotations

import time
from collections.abc import Callable


def time_call(fn: Callable[[], object], min_time: float = 0.2, repeats: int = 5,
              progress: Callable[[], object] | None = None) -> float:
    """Median over `repeats` of the mean seconds per call, each repeat lasting about min_time / repeats;
    ``progress`` is called after each repeat."""
    fn()  # warm up
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(min_time / repeats / one))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
        if progress is not None:
            progress()
    samples.sort()
    return samples[len(samples) // 2]
