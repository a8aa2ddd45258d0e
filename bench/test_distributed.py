"""Batch inference throughput: one process against Ray Data, on the same 102,400 MNIST-shaped samples.

Model: LeNet-300-100 (784 -> 300 -> 100 -> 10, relu, softmax) as Deep Compression stores it, pruned to 8% /
9% / 26% of the weights and shared with 4-bit codebooks (csr+codebook), built by ``from_numpy`` from Gaussian
weights (the time depends on the shapes, the sparsity and the encoding, not on trained values). Inputs:
102,400 x 784 float32 (321 MB), seeded.

Members (group ``distributed-lenet300``), samples per second in ``extra_info["samples_per_s"]`` (samples /
median):

  model-run-1t       ``pyruntime.load(data, threads=1).run(x)``: one call over all samples, in this process
  model-run-mt       the same at threads = this process's CPUs (``os.sched_getaffinity``)
  ray-2x1t           Ray Data: ``ds.map_batches(pyruntime.ray.Predictor, compute=ActorPoolStrategy(size=2),
                     num_cpus=1, batch_size=4096, keep_inputs=False)`` on a local cluster of ``max(2, CPUs)``
                     CPUs, the inputs already in the object store (10 blocks), the outputs materialized there;
                     each run starts its 2 actors (1 thread each) and loads the model in them, as every Ray
                     Data execution does
  ray-2x1t-small     the same over the first 4,096 samples: the fixed cost of an execution (actors,
                     scheduling); ``(N - 4096) / (t - t_small)`` is the streaming rate once the actors are up
                     (the report)

Rounds are fixed (5 for model-run, 3 for Ray, whose executions take seconds). Before it is timed, each
member's outputs are checked equal, bit for bit, to ``model-run-1t``'s. The Ray members need
``pip install "pyruntime[ray]"`` and are skipped with that reason otherwise.

    pytest bench/test_distributed.py --benchmark-json=dist.json && python bench/test_distributed.py dist.json
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyruntime
from pyruntime import _core

SAMPLES = 102_400  # a multiple of 64 (the runtime's chunk) in blocks of 10,240 and batches of 4,096
SMALL = 4096
BLOCKS = 10
BATCH = 4096
SIZES = (784, 300, 100, 10)
SPARSITY = {"fc1": 0.92, "fc2": 0.91, "fc3": 0.74}
GROUP = "distributed-lenet300"


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    from pyruntime.convert import from_numpy

    rng = np.random.default_rng(300100)
    layers: list[tuple] = []
    for i in range(3):
        a, b = SIZES[i], SIZES[i + 1]
        layers.append(("linear", (rng.standard_normal((b, a)) / np.sqrt(a)).astype(np.float32),
                       (0.1 * rng.standard_normal(b)).astype(np.float32)))
        layers.append(("relu",) if i < 2 else ("softmax",))
    return from_numpy(layers, (SIZES[0],), sparsity=SPARSITY, bits=4).to_bytes()


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    return np.random.default_rng(784).standard_normal((SAMPLES, SIZES[0]), dtype=np.float32)


@pytest.fixture(scope="module")
def reference(model_bytes, inputs) -> np.ndarray:
    return pyruntime.load(model_bytes, threads=1).run(inputs)


def _info(benchmark, method: str, samples: int, threads: int, workers: int, model_bytes: bytes) -> None:
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    benchmark.extra_info.update(
        kind="distributed", method=method, samples=samples, threads=threads, workers=workers,
        isa=_core.active_isa(), avx512f="avx512f" in flags, cpus=cpus(), file_bytes=len(model_bytes),
        loadavg=os.getloadavg())


def _rate(benchmark, samples: int) -> None:
    benchmark.extra_info["samples_per_s"] = samples / benchmark.stats.stats.median


@pytest.mark.parametrize("threads", [1, 0], ids=["1t", "mt"])
def test_model_run(benchmark, threads, model_bytes, inputs, reference):
    n = threads or cpus()
    benchmark.group = GROUP
    model = pyruntime.load(model_bytes, threads=n)
    assert np.array_equal(model.run(inputs), reference)
    _info(benchmark, f"model-run-{'1t' if threads == 1 else 'mt'}", SAMPLES, n, 1, model_bytes)
    benchmark.pedantic(model.run, args=(inputs,), rounds=5, iterations=1, warmup_rounds=1)
    _rate(benchmark, SAMPLES)


@pytest.fixture(scope="module")
def ray_dataset(inputs):
    ray = pytest.importorskip("ray", reason='needs Ray Data: pip install "pyruntime[ray]"')
    pytest.importorskip("ray.data", reason='needs Ray Data: pip install "pyruntime[ray]"')
    import pyarrow as pa
    from ray.data.extensions import ArrowTensorArray

    ray.init(num_cpus=max(2, cpus()), include_dashboard=False, log_to_driver=False, logging_level="warning",
             configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        parts = np.array_split(np.arange(SAMPLES), BLOCKS)
        ds = ray.data.from_arrow([pa.table({"id": p, "x": ArrowTensorArray.from_numpy(inputs[p])})
                                  for p in parts]).materialize()
        yield ray, ds
    finally:
        ray.shutdown()


@pytest.mark.parametrize("samples", [SAMPLES, SMALL], ids=["all", "small"])
def test_ray_data(benchmark, samples, ray_dataset, model_bytes, reference):
    ray, ds = ray_dataset
    from pyruntime.ray import Predictor

    ref = ray.put(model_bytes)
    source = ds if samples == SAMPLES else ds.limit(samples).materialize()

    def run():
        kwargs = {"model": ref, "threads": 1, "keep_inputs": False}
        return source.map_batches(Predictor, fn_constructor_kwargs=kwargs,
                                  compute=ray.data.ActorPoolStrategy(size=2), num_cpus=1, batch_size=BATCH,
                                  batch_format="numpy").materialize()

    out = {"id": [], "output": []}
    for batch in run().iter_batches(batch_size=None, batch_format="numpy"):
        out["id"].append(batch["id"])
        out["output"].append(batch["output"])
    ids = np.concatenate(out["id"])
    assert np.array_equal(np.sort(ids), np.arange(samples))
    assert np.array_equal(np.concatenate(out["output"]), reference[ids])
    benchmark.group = GROUP
    _info(benchmark, "ray-2x1t" if samples == SAMPLES else "ray-2x1t-small", samples, 1, 2, model_bytes)
    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=0)
    _rate(benchmark, samples)


def report(path: str) -> str:
    """The members of a --benchmark-json file as a table of samples/s."""
    runs = {b["extra_info"]["method"]: b for b in json.loads(Path(path).read_text())["benchmarks"]
            if b["extra_info"].get("kind") == "distributed"}
    lines = ["| method | samples | workers x threads | median s | samples/s |", "|---|---:|---:|---:|---:|"]
    for name, b in runs.items():
        e = b["extra_info"]
        lines.append(f"| {name} | {e['samples']:,} | {e['workers']} x {e['threads']} | "
                     f"{b['stats']['median']:.3f} | {e['samples_per_s']:,.0f} |")
    if "ray-2x1t" in runs and "ray-2x1t-small" in runs:
        big, small = runs["ray-2x1t"], runs["ray-2x1t-small"]
        extra = big["extra_info"]["samples"] - small["extra_info"]["samples"]
        fixed = small["stats"]["median"]
        rate = extra / (big["stats"]["median"] - fixed)
        lines.append(f"\nRay Data once its actors are up: {rate:,.0f} samples/s ({fixed:.2f} s fixed cost "
                     "per execution)")
    e = next(iter(runs.values()))["extra_info"] if runs else {}
    if e:
        lines.append(f"ISA {e['isa']} (avx512f: {e['avx512f']}), {e['cpus']} CPUs, model {e['file_bytes']:,} "
                     f"B, load average at the start {e['loadavg'][0]:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(sys.argv[1]))
