"""The version-2 graph ops end to end: hand-written model dicts through ``_core.write_model`` ->
``pyruntime.load`` -> ``run``, against torch.nn.functional in float64 (docs/FORMAT.md 2.1 - 2.4).

Per op: conv2d (stride, asymmetric padding, dilation, groups, depthwise; every weight encoding, with and
without bias), max / avg pools (ceil_mode, count_include_pad, asymmetric padding), global_avg_pool, add,
concat on every axis, reshape, clamp (relu6, hardtanh); a DAG whose values are read long after they were
made (the arena must not hand a live buffer to a later node); batch 1 and 5; threads 1 and 2 bit-identical;
every ISA within tolerance of the others; write_model refusing bad attributes and run() a wrong input.

Tolerance: |y - y_torch| <= RTOL * (the same graph on |x| and |W|) + a tiny absolute term, elementwise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import pyruntime
from pyruntime import _core

torch = pytest.importorskip("torch")
F = torch.nn.functional

ENCODINGS = ("dense", "csr", "codebook", "csr+codebook")
RTOL = 1e-5
BATCHES = (1, 5)


# ---- building and running models --------------------------------------------------------------------


def conv_attrs(stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1) -> dict:
    return {"stride": list(stride), "padding": list(padding), "dilation": list(dilation), "groups": groups}


def pool_attrs(kernel, stride=None, padding=(0, 0, 0, 0), ceil_mode=0, count_include_pad=None) -> dict:
    a = {
        "kernel": list(kernel),
        "stride": list(stride or kernel),
        "padding": list(padding),
        "ceil_mode": ceil_mode,
    }
    if count_include_pad is not None:
        a["count_include_pad"] = count_include_pad
    return a


def weight(helpers, rng, encoding: str, shape, name: str = "w") -> dict:
    kw = {"density": 0.4} if "csr" in encoding else {}
    if "codebook" in encoding:
        kw["k"] = 12
    return helpers.tensor(rng, encoding, shape, name=name, **kw)


def dense_of(helpers, t: dict) -> np.ndarray:
    return helpers.densify(t).reshape(t["shape"]).astype(np.float64)


def load(model: dict, threads: int = 1) -> pyruntime.Model:
    return pyruntime.load(_core.write_model(model), threads=threads)


def run(model: dict, x: np.ndarray, threads: int = 1) -> np.ndarray:
    y = load(model, threads).run(x)
    assert y.dtype == np.float32
    return y


def t64(a) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, np.float64))


def assert_close(got: np.ndarray, want: torch.Tensor, scale: torch.Tensor | None = None) -> None:
    """Elementwise |got - want| <= RTOL * scale (default |want|) + 1e-30; shapes equal."""
    want = want.numpy()
    scale = np.abs(want) if scale is None else scale.numpy()
    assert got.shape == want.shape, (got.shape, want.shape)
    err = np.abs(got.astype(np.float64) - want)
    bad = err > RTOL * scale + 1e-30
    assert not bad.any(), f"{bad.sum()} of {bad.size} off, worst {err.max():.3g} (scale {scale.max():.3g})"


def torch_conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, a: dict) -> torch.Tensor:
    top, left, bottom, right = a["padding"]
    x = F.pad(x, (left, right, top, bottom))  # zero padding, any sides (FORMAT.md 2.3)
    return F.conv2d(x, w, b, stride=a["stride"], dilation=a["dilation"], groups=a["groups"])


def torch_pool(x: torch.Tensor, op: str, a: dict) -> torch.Tensor:
    """PyTorch's pools take symmetric padding <= kernel / 2; other paddings (ceil_mode 0 only) through an
    explicit pad: -inf for max, and for avg a sum over zero padding divided by the counts 2.4 defines."""
    (kh, kw), stride, (top, left, bottom, right) = a["kernel"], a["stride"], a["padding"]
    if top == bottom <= kh // 2 and left == right <= kw // 2:
        if op == "max_pool2d":
            return F.max_pool2d(x, (kh, kw), stride, (top, left), ceil_mode=bool(a["ceil_mode"]))
        return F.avg_pool2d(
            x, (kh, kw), stride, (top, left), bool(a["ceil_mode"]), bool(a["count_include_pad"])
        )
    assert not a["ceil_mode"], "asymmetric or wide padding with ceil_mode: no torch oracle"
    pad = (left, right, top, bottom)
    if op == "max_pool2d":
        return F.max_pool2d(F.pad(x, pad, value=-math.inf), (kh, kw), stride)
    total = F.avg_pool2d(F.pad(x, pad), (kh, kw), stride) * (kh * kw)
    if a["count_include_pad"]:
        return total / (kh * kw)  # ceil_mode 0: every window lies inside the padded extent
    ones = F.pad(torch.ones_like(x[:1, :1]), pad)
    return total / (F.avg_pool2d(ones, (kh, kw), stride) * (kh * kw))


def single(input_shape, op: str, attrs: dict | None = None, n_inputs: int = 1, tensors=()) -> dict:
    node = {"op": op, "inputs": [0] * n_inputs, "tensors": list(range(len(tensors)))}
    if attrs is not None:
        node["attrs"] = attrs
    return {"input_shape": list(input_shape), "nodes": [node], "tensors": list(tensors)}


# ---- conv2d ------------------------------------------------------------------------------------------

# id -> (input [C, H, W], weight [O, C / groups, kh, kw], attrs, bias)
CONV = {
    "3x3-same": ((3, 9, 9), (4, 3, 3, 3), conv_attrs(padding=(1, 1, 1, 1)), True),
    "3x3-valid-no-bias": ((3, 7, 8), (5, 3, 3, 3), conv_attrs(), False),
    "stride-2": ((4, 11, 10), (6, 4, 3, 3), conv_attrs(stride=(2, 2), padding=(1, 1, 1, 1)), True),
    "stride-1x3": ((2, 8, 13), (3, 2, 2, 3), conv_attrs(stride=(1, 3), padding=(0, 1, 0, 1)), True),
    "asymmetric-padding": ((3, 8, 9), (4, 3, 3, 2), conv_attrs(padding=(0, 2, 1, 0)), True),
    "asymmetric-padding-stride": (
        (3, 10, 9),
        (4, 3, 3, 3),
        conv_attrs(stride=(2, 3), padding=(2, 0, 1, 1)),
        False,
    ),
    "dilation-2x3": ((3, 12, 12), (4, 3, 3, 3), conv_attrs(padding=(2, 3, 2, 3), dilation=(2, 3)), True),
    "dilation-stride": ((2, 13, 11), (3, 2, 2, 3), conv_attrs(stride=(2, 2), dilation=(3, 2)), True),
    "groups-2": ((4, 8, 8), (6, 2, 3, 3), conv_attrs(padding=(1, 1, 1, 1), groups=2), True),
    "groups-3-rect": ((6, 7, 9), (9, 2, 1, 3), conv_attrs(padding=(0, 1, 0, 1), groups=3), False),
    "depthwise": ((5, 9, 9), (5, 1, 3, 3), conv_attrs(padding=(1, 1, 1, 1), groups=5), True),
    "depthwise-x2-stride": (
        (3, 10, 10),
        (6, 1, 3, 3),
        conv_attrs(stride=(2, 2), padding=(1, 1, 1, 1), groups=3),
        True,
    ),
    "depthwise-dilated": (
        (4, 9, 9),
        (4, 1, 3, 3),
        conv_attrs(padding=(2, 2, 2, 2), dilation=(2, 2), groups=4),
        False,
    ),
    "1x1": ((8, 5, 6), (3, 8, 1, 1), conv_attrs(), True),
    "1x5-stride-3x1": ((3, 9, 9), (4, 3, 1, 5), conv_attrs(stride=(3, 1), padding=(0, 2, 0, 2)), True),
    "kernel-is-input": ((2, 5, 4), (3, 2, 5, 4), conv_attrs(), True),
    "many-channels": ((20, 6, 6), (24, 20, 3, 3), conv_attrs(padding=(1, 1, 1, 1)), True),
}


def conv_model(helpers, rng, case: str, encoding: str) -> tuple[dict, dict]:
    x_shape, w_shape, attrs, bias = CONV[case]
    tensors = [weight(helpers, rng, encoding, w_shape)]
    if bias:
        tensors.append(helpers.dense(rng, (w_shape[0],), name="b"))
    return single(x_shape, "conv2d", attrs, tensors=tensors), attrs


def torch_conv_ref(helpers, model: dict, x: np.ndarray, attrs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The output and its error scale (the convolution of |x| and |W|, plus |bias|)."""
    w = t64(dense_of(helpers, model["tensors"][0]))
    b = t64(model["tensors"][1]["values"]) if len(model["tensors"]) > 1 else None
    y = torch_conv(t64(x), w, b, attrs)
    scale = torch_conv(t64(x).abs(), w.abs(), None if b is None else b.abs(), attrs)
    return y, scale


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("case", list(CONV))
def test_conv2d(helpers, rng, case, encoding, batch):
    model, attrs = conv_model(helpers, rng, case, encoding)
    x = helpers.random_input(rng, model, batch)
    y = run(model, x)
    assert_close(y, *torch_conv_ref(helpers, model, x, attrs))


# ---- pools -------------------------------------------------------------------------------------------

# id -> (input [C, H, W], attrs without count_include_pad)
POOLS = {
    "2x2": ((3, 8, 8), pool_attrs((2, 2))),
    "2x2-odd-input": ((3, 7, 9), pool_attrs((2, 2))),
    "2x2-odd-input-ceil": ((3, 7, 9), pool_attrs((2, 2), ceil_mode=1)),
    "3x3-stride-2-pad-1": ((2, 9, 10), pool_attrs((3, 3), (2, 2), (1, 1, 1, 1))),
    "3x3-stride-2-pad-1-ceil": ((2, 10, 9), pool_attrs((3, 3), (2, 2), (1, 1, 1, 1), ceil_mode=1)),
    # ceil_mode: the window that would start in the bottom/right padding is dropped (2.4)
    "2x2-stride-3-pad-1-ceil": ((2, 4, 7), pool_attrs((2, 2), (3, 3), (1, 1, 1, 1), ceil_mode=1)),
    "3x2-stride-1x2": ((4, 6, 7), pool_attrs((3, 2), (1, 2))),
    "stride-bigger-than-kernel": ((2, 11, 11), pool_attrs((2, 2), (3, 3), ceil_mode=1)),
    "window-is-input": ((3, 5, 4), pool_attrs((5, 4))),
    "1x1": ((3, 4, 5), pool_attrs((1, 1))),
    # paddings PyTorch's pools do not take: through explicit padding in the oracle (ceil_mode 0)
    "asymmetric-padding": ((3, 7, 8), pool_attrs((3, 3), (2, 2), (0, 2, 1, 0))),
    "padding-above-half-kernel": ((2, 6, 6), pool_attrs((3, 3), (2, 1), (2, 2, 2, 2))),
}


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("case", list(POOLS))
@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d-exclude-pad", "avg_pool2d-include-pad"])
def test_pool(helpers, rng, op, case, batch):
    x_shape, attrs = POOLS[case]
    if op != "max_pool2d":
        op, attrs = "avg_pool2d", {**attrs, "count_include_pad": int(op.endswith("include-pad"))}
    model = single(x_shape, op, attrs)
    x = helpers.random_input(rng, model, batch)
    y = run(model, x)
    want = torch_pool(t64(x), op, attrs)
    if op == "max_pool2d":
        np.testing.assert_array_equal(y, want.numpy().astype(np.float32))  # a max is exact
    else:
        assert_close(y, want, torch_pool(t64(x).abs(), op, attrs))


def test_max_pool_nan_and_padding(helpers):
    """A NaN in a window gives NaN; padding never wins, even over -inf and negative inputs (2.4)."""
    x = -np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0] = -np.inf
    x[0, 0, 3, 3] = np.nan
    model = single((1, 4, 4), "max_pool2d", pool_attrs((2, 2), (2, 2), (1, 1, 1, 1)))
    y = run(model, x)[0, 0]
    assert y.shape == (3, 3)
    assert y[0, 0] == -np.inf and y[0, 1] == -2 and y[1, 1] == -6
    assert np.isnan(y[2, 2]) and not np.isnan(y[:2]).any()


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("shape", [(3, 5, 7), (1, 1, 1), (16, 2, 3)])
def test_global_avg_pool(helpers, rng, shape, batch):
    model = single(shape, "global_avg_pool")
    x = helpers.random_input(rng, model, batch)
    y = run(model, x)
    assert_close(y, t64(x).mean(dim=(2, 3), keepdim=True), t64(x).abs().mean(dim=(2, 3), keepdim=True))


# ---- add, concat, reshape, clamp ----------------------------------------------------------------------


def two_branches(input_shape, op: str, attrs: dict | None, n: int = 2) -> dict:
    """Value 0 and relu(value 0) (and value 0 again for n = 3) into op."""
    node = {"op": op, "inputs": [0, 1, 0][:n]}
    if attrs is not None:
        node["attrs"] = attrs
    return {"input_shape": list(input_shape), "nodes": [{"op": "relu", "inputs": [0]}, node], "tensors": []}


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 5), (2, 1, 3, 4)])
def test_add(helpers, rng, shape, batch):
    model = two_branches(shape, "add", None)
    x = helpers.random_input(rng, model, batch)
    want = t64(x) + F.relu(t64(x))
    assert_close(run(model, x), want)
    same = single(shape, "add", n_inputs=2)  # a value added to itself
    np.testing.assert_array_equal(run(same, x), 2 * x)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize(
    "shape,axis", [((2, 3, 4), 0), ((2, 3, 4), 1), ((2, 3, 4), 2), ((5,), 0), ((3, 4), 1)]
)
def test_concat(helpers, rng, shape, axis, n, batch):
    model = two_branches(shape, "concat", {"axis": axis}, n)
    x = helpers.random_input(rng, model, batch)
    parts = [x, np.maximum(x, 0), x][:n]
    np.testing.assert_array_equal(run(model, x), np.concatenate(parts, axis=axis + 1))


def test_concat_16_inputs_of_different_sizes(helpers, rng):
    """16 inputs (the most a node takes), of different extents along the axis: pools of the input."""
    nodes = [{"op": "max_pool2d", "inputs": [0], "attrs": pool_attrs((1, k), (1, k))} for k in range(1, 16)]
    nodes.append({"op": "concat", "inputs": list(range(16)), "attrs": {"axis": 2}})
    model = {"input_shape": [2, 3, 30], "nodes": nodes, "tensors": []}
    x = helpers.random_input(rng, model, 3)
    parts = [x] + [F.max_pool2d(t64(x), (1, k), (1, k)).numpy().astype(np.float32) for k in range(1, 16)]
    np.testing.assert_array_equal(run(model, x), np.concatenate(parts, axis=3))


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize(
    "shape,target",
    [
        ((2, 3, 4), [24]),
        ((24,), [2, 3, 4]),
        ((2, 3, 4), [4, 3, 2]),
        ((6, 4), [1, 2, 3, 4]),
        ((1, 2, 3, 4), [6, 4]),
    ],
)
def test_reshape(helpers, rng, shape, target, batch):
    model = single(shape, "reshape", {"shape": target})
    x = helpers.random_input(rng, model, batch)
    m = load(model)
    assert m.outputs[0]["shape"] == (None, *target)
    np.testing.assert_array_equal(m.run(x), x.reshape(batch, *target))


CLAMPS = {
    "relu6": (0.0, 6.0, lambda t: F.relu6(t)),
    "hardtanh": (-1.0, 1.0, lambda t: F.hardtanh(t)),
    "hardtanh(-0.3, 0.7)": (
        -0.3,
        0.7,
        lambda t: F.hardtanh(t, float(np.float32(-0.3)), float(np.float32(0.7))),
    ),
    "min-equals-max": (0.5, 0.5, lambda t: torch.full_like(t, 0.5)),
    "lower-only": (-0.25, math.inf, lambda t: t.clamp(min=-0.25)),
    "identity": (-math.inf, math.inf, lambda t: t),
}


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("case", list(CLAMPS))
def test_clamp(helpers, rng, case, batch):
    lo, hi, oracle = CLAMPS[case]
    model = single((3, 4, 5), "clamp", {"min": lo, "max": hi})
    x = (4 * helpers.random_input(rng, model, batch)).astype(np.float32)
    x.flat[:3] = [np.inf, -np.inf, 7.0]
    np.testing.assert_array_equal(run(model, x), oracle(t64(x)).numpy().astype(np.float32))


# ---- a DAG: values read long after they are made -----------------------------------------------------


def dag_model(helpers, rng, encoding: str = "csr") -> dict:
    """v1 = conv(x) is read by five later nodes; relu / clamp of live values must not overwrite them."""
    a3 = conv_attrs(padding=(1, 1, 1, 1))
    nodes = [
        {"op": "conv2d", "inputs": [0], "tensors": [0, 1], "attrs": a3},  # v1 [4, 8, 8]
        {"op": "relu", "inputs": [1]},  # v2 (v1 still live)
        {"op": "clamp", "inputs": [2], "attrs": {"min": -0.5, "max": 0.5}},  # v3 (v2 still live)
        {"op": "add", "inputs": [3, 1]},  # v4
        {"op": "conv2d", "inputs": [4], "tensors": [2], "attrs": {**a3, "groups": 4}},  # v5, depthwise
        {"op": "add", "inputs": [5, 1]},  # v6
        {"op": "add", "inputs": [6, 2]},  # v7
        {"op": "max_pool2d", "inputs": [1], "attrs": pool_attrs((2, 2))},  # v8 [4, 4, 4]
        {"op": "avg_pool2d", "inputs": [7], "attrs": pool_attrs((2, 2), count_include_pad=0)},  # v9
        {"op": "concat", "inputs": [9, 8, 9], "attrs": {"axis": 1}},  # v10 [4, 12, 4]
        {"op": "relu", "inputs": [0]},  # v11: the graph input, read again at the end
        {"op": "global_avg_pool", "inputs": [11]},  # v12 [3, 1, 1]
        {"op": "reshape", "inputs": [12], "attrs": {"shape": [3]}},  # v13
        {"op": "flatten", "inputs": [10]},  # v14
        {"op": "concat", "inputs": [14, 13, 13], "attrs": {"axis": 0}},  # v15
    ]
    tensors = [
        weight(helpers, rng, encoding, (4, 3, 3, 3), "c1"),
        helpers.dense(rng, (4,), "c1.bias"),
        weight(helpers, rng, "codebook", (4, 1, 3, 3), "dw"),
    ]
    return {"input_shape": [3, 8, 8], "nodes": nodes, "tensors": tensors}


def torch_dag(helpers, model: dict, x: np.ndarray, absolute: bool = False) -> torch.Tensor:
    t = model["tensors"]
    f = (lambda a: a.abs()) if absolute else (lambda a: a)
    w1, b1, dw = (f(t64(dense_of(helpers, t[i]))) for i in range(3))
    xx = f(t64(x))
    a3 = conv_attrs(padding=(1, 1, 1, 1))
    v1 = torch_conv(xx, w1, b1, a3)
    v2 = v1 if absolute else F.relu(v1)  # the scale bounds relu and clamp by the identity
    v3 = v2 if absolute else v2.clamp(-0.5, 0.5)
    v5 = torch_conv(v3 + v1, dw, None, {**a3, "groups": 4})
    v7 = v5 + v1 + v2
    v8 = F.max_pool2d(v1, 2)
    v9 = F.avg_pool2d(v7, 2)
    v10 = torch.cat([v9, v8, v9], 2)
    v13 = (xx if absolute else F.relu(xx)).mean(dim=(2, 3))
    return torch.cat([v10.flatten(1), v13, v13], 1)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_dag_values_stay_live(helpers, rng, encoding, batch):
    model = dag_model(helpers, rng, encoding)
    m = load(model)
    assert m.outputs[0]["shape"] == (None, 4 * 12 * 4 + 6)
    x = helpers.random_input(rng, model, batch)
    y = m.run(x)
    assert_close(y, torch_dag(helpers, model, x), torch_dag(helpers, model, x, absolute=True))
    np.testing.assert_array_equal(m.run(x), y)  # a second run of the same session: same arena, same output


# ---- threads and ISAs ----------------------------------------------------------------------------------


def every_model(helpers, rng) -> dict[str, dict]:
    models = {f"conv-{c}-{e}": conv_model(helpers, rng, c, e)[0] for c in CONV for e in ("csr", "codebook")}
    models.update(
        {f"conv-{c}-dense": conv_model(helpers, rng, c, "dense")[0] for c in ("depthwise", "stride-2")}
    )
    models.update({f"dag-{e}": dag_model(helpers, rng, e) for e in ENCODINGS})
    models["pools"] = {
        "input_shape": [3, 11, 10],
        "nodes": [
            {
                "op": "max_pool2d",
                "inputs": [0],
                "attrs": pool_attrs((3, 3), (2, 2), (1, 1, 1, 1), ceil_mode=1),
            },
            {"op": "avg_pool2d", "inputs": [1], "attrs": pool_attrs((2, 3), (1, 2), (1, 0, 0, 2), 1, 1)},
            {"op": "global_avg_pool", "inputs": [2]},
        ],
        "tensors": [],
    }
    # pools, concat, add, relu and clamp large enough (several 128 KB tasks) for the pool to split them by
    # channels or elements at batch 1; concat pieces that start inside a chunk, an odd element count
    models["memory_bound"] = {
        "input_shape": [37, 41, 43],
        "nodes": [
            {"op": "max_pool2d", "inputs": [0], "attrs": pool_attrs((3, 3), (1, 1), (1, 1, 1, 1))},  # v1
            {"op": "relu", "inputs": [0]},  # v2
            {"op": "concat", "inputs": [1, 2, 1], "attrs": {"axis": 0}},  # v3 [111, 41, 43]
            {"op": "clamp", "inputs": [3], "attrs": {"min": -0.5, "max": 0.75}},  # v4
            {"op": "add", "inputs": [4, 3]},  # v5
            {"op": "concat", "inputs": [5, 3], "attrs": {"axis": 2}},  # v6 [111, 41, 86]: chunks of rows
            {"op": "avg_pool2d", "inputs": [6], "attrs": pool_attrs((2, 3), (1, 2), (1, 0, 0, 2), 1, 1)},  # v7
            {"op": "global_avg_pool", "inputs": [7]},  # v8
        ],
        "tensors": [],
    }
    # narrow outputs (16 x 16) with enough work: split by output channels at batch 1 (the direct method's
    # run_channels) rather than by rows: a 64 -> 200 conv (uneven entries per channel) and a depthwise one
    a3 = conv_attrs(padding=(1, 1, 1, 1))
    models["channel_split"] = {
        "input_shape": [64, 16, 16],
        "nodes": [
            {"op": "conv2d", "inputs": [0], "tensors": [0, 1], "attrs": a3},  # v1 [200, 16, 16]
            {"op": "relu", "inputs": [1]},
            {"op": "conv2d", "inputs": [2], "tensors": [2], "attrs": {**a3, "groups": 200}},  # depthwise
        ],
        "tensors": [
            weight(helpers, rng, "csr+codebook", (200, 64, 3, 3), "c1"),
            helpers.dense(rng, (200,), "c1.bias"),
            weight(helpers, rng, "dense", (200, 1, 3, 3), "dw"),
        ],
    }
    return models


@pytest.mark.parametrize("batch", BATCHES)
def test_threads_bit_identical(helpers, rng, batch):
    """threads = 2 splits conv rows or samples differently from one thread: the bits must not change."""
    for name, model in every_model(helpers, rng).items():
        data = _core.write_model(model)
        x = helpers.random_input(rng, model, batch)
        one = pyruntime.load(data, threads=1).run(x)
        for threads in (2, 3):  # 3: pieces of unequal sizes
            many = pyruntime.load(data, threads=threads)
            assert many.threads == threads
            np.testing.assert_array_equal(many.run(x).view(np.uint32), one.view(np.uint32), err_msg=f"{name} {threads}")


@pytest.fixture
def restore_isa():
    previous = _core.active_isa()
    yield
    _core.set_isa(previous)


@pytest.mark.parametrize("batch", BATCHES)
def test_isas_agree(helpers, rng, restore_isa, batch):
    """Every supported ISA (PYRT_ISA or set_isa) gives the reference's output within tolerance."""
    isas = _core.supported_isas()
    for name, model in every_model(helpers, rng).items():
        m = load(model)
        x = helpers.random_input(rng, model, batch)
        _core.set_isa("ref")
        ref = m.run(x).astype(np.float64)
        tol = RTOL * np.abs(ref).max()
        for isa in isas:
            _core.set_isa(isa)
            err = np.abs(m.run(x) - ref).max()
            assert err <= tol, (name, isa, err, tol)


# ---- refusals ------------------------------------------------------------------------------------------

BAD_ATTRS = {  # id -> (op, attrs, the words the message must contain)
    "conv-missing-groups": ("conv2d", {"stride": [1, 1], "padding": [0] * 4, "dilation": [1, 1]}, ["groups"]),
    "conv-unknown-name": ("conv2d", {**conv_attrs(), "padd": [0] * 4}, ["padd"]),
    "conv-short-stride": ("conv2d", {**conv_attrs(), "stride": [1]}, ["stride"]),
    "conv-long-padding": ("conv2d", {**conv_attrs(), "padding": [0] * 5}, ["padding"]),
    "conv-float-groups": ("conv2d", {**conv_attrs(), "groups": 1.0}, ["groups"]),
    "conv-float-in-stride": ("conv2d", {**conv_attrs(), "stride": [1.5, 1]}, ["stride"]),
    "conv-negative-padding": ("conv2d", {**conv_attrs(), "padding": [-1, 0, 0, 0]}, ["padding"]),
    "conv-negative-groups": ("conv2d", {**conv_attrs(), "groups": -1}, ["groups"]),
    "conv-scalar-for-list": ("conv2d", {**conv_attrs(), "dilation": 1}, ["dilation"]),
    "conv-list-for-scalar": ("conv2d", {**conv_attrs(), "groups": [1]}, ["groups"]),
    "conv-string": ("conv2d", {**conv_attrs(), "groups": "1"}, ["groups"]),
    "conv-stride-0": ("conv2d", {**conv_attrs(), "stride": [0, 1]}, ["stride"]),
    "conv-groups-not-dividing": ("conv2d", {**conv_attrs(), "groups": 2}, ["groups"]),
    "pool-missing-ceil_mode": (
        "max_pool2d",
        {"kernel": [2, 2], "stride": [2, 2], "padding": [0] * 4},
        ["ceil_mode"],
    ),
    "avg-missing-count_include_pad": ("avg_pool2d", pool_attrs((2, 2)), ["count_include_pad"]),
    "max-with-count_include_pad": (
        "max_pool2d",
        pool_attrs((2, 2), count_include_pad=0),
        ["count_include_pad"],
    ),
    "pool-float-kernel": ("max_pool2d", {**pool_attrs((2, 2)), "kernel": [2.0, 2]}, ["kernel"]),
    "pool-negative-stride": ("max_pool2d", {**pool_attrs((2, 2)), "stride": [-2, 2]}, ["stride"]),
    "pool-padding-not-below-kernel": ("max_pool2d", pool_attrs((2, 2), padding=(2, 0, 0, 0)), ["padding"]),
    "pool-ceil_mode-2": ("max_pool2d", pool_attrs((2, 2), ceil_mode=2), ["ceil_mode"]),
    "pool-window-bigger-than-input": ("max_pool2d", pool_attrs((9, 2)), ["window"]),
    "concat-negative-axis": ("concat", {"axis": -1}, ["axis"]),
    "concat-float-axis": ("concat", {"axis": 0.0}, ["axis"]),
    "concat-axis-out-of-range": ("concat", {"axis": 3}, ["axis"]),
    "reshape-5-dims": ("reshape", {"shape": [1, 1, 3, 8, 8]}, ["shape"]),
    "reshape-no-dims": ("reshape", {"shape": []}, ["shape"]),
    "reshape-float": ("reshape", {"shape": [192.0]}, ["shape"]),
    "reshape-negative": ("reshape", {"shape": [-1, 192]}, ["shape"]),
    "reshape-numel-mismatch": ("reshape", {"shape": [190]}, []),
    "clamp-missing-max": ("clamp", {"min": 0.0}, ["max"]),
    "clamp-string": ("clamp", {"min": "0", "max": 6.0}, ["min"]),
    "clamp-nan": ("clamp", {"min": math.nan, "max": 1.0}, []),
    "clamp-min-above-max": ("clamp", {"min": 2.0, "max": 1.0}, []),
    "relu-with-attr": ("relu", {"alpha": 1}, ["alpha"]),
    "attrs-not-a-dict": ("clamp", [0.0, 6.0], ["attrs"]),
}


@pytest.mark.parametrize("case", list(BAD_ATTRS))
def test_write_model_refuses_bad_attrs(helpers, rng, case):
    """ValueError naming the node (its index and op) and the attribute at fault."""
    op, attrs, words = BAD_ATTRS[case]
    n_inputs = 2 if op == "concat" else 1
    bad = {"op": op, "inputs": [1] * n_inputs, "attrs": attrs}
    tensors = []
    if op == "conv2d":
        bad["tensors"] = [0]
        tensors = [helpers.dense(rng, (4, 3, 3, 3))]
    model = {"input_shape": [3, 8, 8], "nodes": [{"op": "relu", "inputs": [0]}, bad], "tensors": tensors}
    with pytest.raises(ValueError) as e:
        _core.write_model(model)
    msg = str(e.value)
    assert f"node 1 ({op})" in msg, msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize(
    "x_shape,dtype",
    [
        ((2, 3, 8, 7), np.float32),
        ((3, 8, 8), np.float32),
        ((2, 3, 9, 8), np.float32),
        ((2, 3, 8, 8, 1), np.float32),
        ((2, 192), np.float32),
        ((2, 3, 8, 8), np.float64),
    ],
)
def test_run_refuses_wrong_input(helpers, rng, x_shape, dtype):
    model, _ = conv_model(helpers, rng, "3x3-same", "csr")
    model["input_shape"] = [3, 8, 8]
    m = load(model)
    with pytest.raises(ValueError, match="input"):
        m.run(np.zeros(x_shape, dtype))
    assert m.run(np.zeros((2, 3, 8, 8), np.float32)).shape == (2, 4, 8, 8)  # the session still works
