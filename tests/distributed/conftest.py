"""Models for the distributed tests, built with numpy only: a compressed MLP on 8x8 inputs (one input, one
output) and a small graph of two inputs (token ids and floats) and two outputs."""
from __future__ import annotations

import numpy as np
import pytest

from pyruntime.convert import Graph, from_graph, from_numpy

#: samples the Ray test scores: at least 100,000, and a multiple of 64 (see test_ray.py)
SAMPLES = 102_400


@pytest.fixture(scope="session")
def mlp_bytes() -> bytes:
    """64 -> 256 -> 128 -> 10 with softmax, 80% pruned, 4-bit shared: a .pyrt file's bytes."""
    rng = np.random.default_rng(7)
    sizes = (64, 256, 128, 10)
    layers: list[tuple] = [("flatten",)]
    for i in range(3):
        a, b = sizes[i], sizes[i + 1]
        layers.append(("linear", (rng.standard_normal((b, a)) / np.sqrt(a)).astype(np.float32),
                       (0.1 * rng.standard_normal(b)).astype(np.float32)))
        layers.append(("relu",) if i < 2 else ("softmax",))
    return from_numpy(layers, (8, 8), sparsity=0.8, bits=4).to_bytes()


def _two_inputs(both_outputs: bool) -> bytes:
    rng = np.random.default_rng(8)
    g = Graph((3,), dtype="i32")
    x = g.add_input((12,))
    s = g.add(g.flatten(g.embedding(g.input, rng.standard_normal((10, 4)).astype(np.float32))), x)
    w, b = rng.standard_normal((5, 12)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    y = g.linear(s, w, b)
    if both_outputs:
        g.set_outputs([y, s])
    return from_graph(g).to_bytes()


@pytest.fixture(scope="session")
def two_in_two_out_bytes() -> bytes:
    """Inputs: ids (3,) int32 and x (12,) float32; outputs: linear(flatten(embedding(ids)) + x) (5,) and the
    sum (12,)."""
    return _two_inputs(True)


@pytest.fixture(scope="session")
def two_in_bytes() -> bytes:
    """The same inputs, the linear layer's output alone."""
    return _two_inputs(False)


@pytest.fixture(scope="session")
def features() -> np.ndarray:
    """SAMPLES inputs of the MLP, (N, 8, 8) float32."""
    return np.random.default_rng(9).standard_normal((SAMPLES, 8, 8)).astype(np.float32)
