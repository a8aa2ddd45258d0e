"""Concats written in place at batch 1 (runtime/plan.h, in_place_concat): where every input of a concat is a
whole, 64-byte aligned piece of its output (a channel concat at batch 1, as SqueezeNet's fire modules), the
producers write straight into the concat's memory and the concat step does not run. Checked here:

- outputs bit-identical to the copying plan (each sample of a batch of 3, which copies) and within
  tolerance of torch in float64;
- which concats run in place (the batch-1 profile has no row for them, the batch-3 one has) and which must
  keep copying: a graph input, the same value twice, a value already placed in another concat, a nested
  concat, an axis with something before it, a piece not 64-byte aligned;
- values placed in a concat that are still read after it, through aliases (a fused relu, a reshape);
- two threads bit-identical to one.
"""

from __future__ import annotations

import numpy as np
import pytest

import pyruntime
from pyruntime import _core

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL = 1e-5
C3 = {"stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1}
C1 = {"stride": [1, 1], "padding": [0, 0, 0, 0], "dilation": [1, 1], "groups": 1}
S2 = {**C1, "stride": [2, 2]}


def conv(i: int, t: int, attrs: dict, bias: bool = True) -> dict:
    return {"op": "conv2d", "inputs": [i], "tensors": [t, t + 1] if bias else [t], "attrs": attrs}


def fire_model(helpers, rng) -> tuple[dict, list[str]]:
    """Two fire modules and the concats around them; returns the model and, per concat node in order,
    "in place" or why it copies."""
    t = [
        helpers.tensor(rng, "csr+codebook", (4, 8, 3, 3), name="squeeze", density=0.5, k=16),
        helpers.dense(rng, (4,), "squeeze.bias"),
        helpers.tensor(rng, "csr", (16, 4, 1, 1), name="e1", density=0.6),
        helpers.dense(rng, (16,), "e1.bias"),
        helpers.tensor(rng, "codebook", (16, 4, 3, 3), name="e3", k=8),
        helpers.dense(rng, (16,), "e3.bias"),
        helpers.tensor(rng, "dense", (3, 32, 1, 1), name="odd"),
        helpers.dense(rng, (3,), "odd.bias"),
    ]
    nodes = [
        conv(0, 0, C3),                                   # v1 squeeze [4, 4, 4]
        {"op": "relu", "inputs": [1]},                    # v2 (fused into v1)
        conv(2, 2, C1),                                   # v3 expand1x1 [16, 4, 4]
        {"op": "relu", "inputs": [3]},                    # v4 (fused: v3 is placed through the alias)
        conv(2, 4, C3),                                   # v5 expand3x3 [16, 4, 4]
        {"op": "relu", "inputs": [5]},                    # v6 (fused)
        {"op": "concat", "inputs": [4, 6], "attrs": {"axis": 0}},    # v7 [32, 4, 4]: in place
        {"op": "concat", "inputs": [7, 0], "attrs": {"axis": 0}},    # v8 [40, 4, 4]: x is a graph input
        {"op": "concat", "inputs": [6, 6], "attrs": {"axis": 0}},    # v9: v6 placed already (and twice)
        {"op": "concat", "inputs": [7, 2], "attrs": {"axis": 0}},    # v10: v7 is an in-place concat
        conv(7, 6, S2),                                   # v11 [3, 2, 2]: 48 bytes
        conv(7, 6, S2),                                   # v12 the same
        {"op": "concat", "inputs": [11, 12], "attrs": {"axis": 0}},  # v13: v12 at byte 48, unaligned
        conv(2, 2, C1, bias=False),                       # v14 [16, 4, 4]
        {"op": "reshape", "inputs": [14], "attrs": {"shape": [16, 16]}},  # v15: an alias of v14
        conv(2, 4, C3),                                   # v16 [16, 4, 4]
        {"op": "reshape", "inputs": [16], "attrs": {"shape": [16, 16]}},  # v17
        {"op": "concat", "inputs": [15, 17], "attrs": {"axis": 0}},  # v18 [32, 16]: in place, via reshapes
        conv(2, 2, C1),                                   # v19 [16, 4, 4]
        conv(2, 4, C3),                                   # v20 [16, 4, 4]
        {"op": "concat", "inputs": [19, 20], "attrs": {"axis": 1}},  # v21 [16, 8, 4]: 16 pieces each
        {"op": "flatten", "inputs": [8]},                 # v22
        {"op": "flatten", "inputs": [9]},
        {"op": "flatten", "inputs": [10]},
        {"op": "flatten", "inputs": [13]},
        {"op": "flatten", "inputs": [18]},                # v26: an in-place concat, through an alias
        {"op": "flatten", "inputs": [14]},                # v27: v14 read after its concat
        {"op": "flatten", "inputs": [21]},                # v28
        {"op": "concat", "inputs": [22, 23, 24, 25, 26, 27, 28], "attrs": {"axis": 0}},  # v29: nested
    ]
    kinds = ["in place", "graph input", "placed already", "nested", "unaligned", "in place", "axis", "nested"]
    return {"input_shape": [8, 4, 4], "nodes": nodes, "tensors": t}, kinds


def torch_fire(helpers, model: dict, x: np.ndarray) -> torch.Tensor:
    t = model["tensors"]
    w = [torch.from_numpy(helpers.densify(a).reshape(a["shape"]).astype(np.float64)) for a in t]
    xx = torch.from_numpy(x.astype(np.float64))
    s = F.relu(F.conv2d(xx, w[0], w[1], padding=1))
    e1, e3_pre = F.conv2d(s, w[2], w[3]), F.conv2d(s, w[4], w[5], padding=1)
    v7 = torch.cat([F.relu(e1), F.relu(e3_pre)], 1)
    v8 = torch.cat([v7, xx], 1)
    v9 = torch.cat([F.relu(e3_pre)] * 2, 1)
    v10 = torch.cat([v7, s], 1)
    v13 = torch.cat([F.conv2d(v7, w[6], w[7], stride=2)] * 2, 1)
    v14 = F.conv2d(s, w[2])
    v18 = torch.cat([v14.reshape(-1, 16, 16), e3_pre.reshape(-1, 16, 16)], 1)
    v21 = torch.cat([e1, e3_pre], 2)
    return torch.cat([a.flatten(1) for a in (v8, v9, v10, v13, v18, v14, v21)], 1)


def concat_rows(model: pyruntime.Model, x: np.ndarray) -> list[int]:
    return [r["node"] for r in model.profile(x, seconds=0.01) if r["op"] == "concat"]


@pytest.fixture
def fire(helpers, rng):
    return fire_model(helpers, rng)


def test_in_place_concats_give_the_copying_plans_bits(helpers, rng, fire):
    model, _ = fire
    m = pyruntime.load(_core.write_model(model))
    x = helpers.random_input(rng, model, 3)
    y3 = m.run(x)  # batch 3: every concat copies
    y1 = np.concatenate([m.run(x[i : i + 1]) for i in range(3)])
    np.testing.assert_array_equal(y1, y3)
    want = torch_fire(helpers, model, x).numpy()
    scale = np.abs(want).max()
    assert np.abs(y1.astype(np.float64) - want).max() <= RTOL * scale


def test_which_concats_run_in_place(helpers, rng, fire):
    model, kinds = fire
    m = pyruntime.load(_core.write_model(model))
    concat_nodes = [i for i, n in enumerate(model["nodes"]) if n["op"] == "concat"]
    assert len(concat_nodes) == len(kinds)
    x = helpers.random_input(rng, model, 3)
    assert concat_rows(m, x) == concat_nodes  # batch 3: all of them copy
    copying = [n for n, k in zip(concat_nodes, kinds) if k != "in place"]
    assert concat_rows(m, x[:1]) == copying


def test_two_threads_in_place_bit_identical(helpers, rng, fire):
    model, _ = fire
    data = _core.write_model(model)
    x = helpers.random_input(rng, model, 1)
    np.testing.assert_array_equal(pyruntime.load(data, threads=2).run(x), pyruntime.load(data).run(x))


def test_the_batch_1_arena_holds_the_placed_values(helpers, rng):
    """A concat's slot is allocated when its first input is made and lives until its last reader: values made
    between its inputs (v2, v3) must not be given its bytes, though nothing reads v1 until the concat."""
    t = [helpers.dense(rng, (16, 8, 1, 1), "a"), helpers.dense(rng, (64, 8, 1, 1), "big"),
         helpers.dense(rng, (16, 64, 1, 1), "b"), helpers.dense(rng, (16, 16, 1, 1), "c")]
    nodes = [
        {"op": "conv2d", "inputs": [0], "tensors": [0], "attrs": C1},  # v1 [16, 8, 8], placed
        {"op": "conv2d", "inputs": [0], "tensors": [1], "attrs": C1},  # v2 [64, 8, 8]
        {"op": "conv2d", "inputs": [2], "tensors": [2], "attrs": C1},  # v3 [16, 8, 8]
        {"op": "conv2d", "inputs": [3], "tensors": [3], "attrs": C1},  # v4 [16, 8, 8], placed
        {"op": "concat", "inputs": [1, 4], "attrs": {"axis": 0}},     # v5 [32, 8, 8]
    ]
    model = {"input_shape": [8, 8, 8], "nodes": nodes, "tensors": t}
    m = pyruntime.load(_core.write_model(model))
    x = helpers.random_input(rng, model, 2)
    np.testing.assert_array_equal(np.concatenate([m.run(x[:1]), m.run(x[1:])]), m.run(x))
    assert concat_rows(m, x[:1]) == [] and concat_rows(m, x) == [4]
