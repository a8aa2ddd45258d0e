"""The format-version-5 math ops end to end: hand-written model dicts through ``_core.write_model`` ->
``pyruntime.load`` -> ``run``, against torch.nn.functional in float64 or numpy float32.

- activations (ops/activation.cpp): gelu (erf and tanh forms), silu, sigmoid, tanh, leaky_relu, on ranks 1..4,
  with extreme values and +-inf; NaN stays NaN;
- layer_norm (ops/normalize.cpp): without / with weight / with weight and bias, several shapes and eps, a large
  mean (cancellation), a constant row; a NaN makes its row NaN and only its row;
- softmax_axis (ops/normalize.cpp): every axis of ranks 1..4, large logits, a slice of all -inf gives NaN;
- add / sub / mul / div (ops/arithmetic.cpp): numpy broadcasting between two values or a value and a dense
  tensor (same shape, [T, N] op [N], a scalar [1], [T, 1], [H, T, T] + [1, 1, T], rank promotion, both operands
  broadcast), bit for bit equal to numpy float32, division by zero included;
- a small transformer-like chain of these ops; threads 1 and 2 bit-identical; Model.work;
- write_model refusing shapes that do not broadcast, a layer_norm weight / bias of the wrong length, a bad axis,
  approximate or slope, naming the node.

Tolerance of the transcendental ops: |y - y_ref| <= 1e-6 + 1e-5 |y_ref| against float64 torch of the same float32
inputs; arithmetic is exact.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import pyruntime
from pyruntime import _core

torch = pytest.importorskip("torch")
F = torch.nn.functional

ATOL, RTOL = 1e-6, 1e-5
BATCHES = (1, 3)


# ---- building and running models --------------------------------------------------------------------


def one_op(op: str, shapes, attrs: dict | None = None, tensors=(), n_values: int | None = None) -> dict:
    """A model of one node reading graph inputs 0..n_values-1 (default: every shape) and the given tensors."""
    n_values = len(shapes) if n_values is None else n_values
    node = {"op": op, "inputs": list(range(n_values)), "tensors": list(range(len(tensors)))}
    if attrs:
        node["attrs"] = attrs
    return {
        "inputs": [{"shape": list(s), "type": "f32"} for s in shapes],
        "nodes": [node],
        "tensors": list(tensors),
    }


def load(model: dict, threads: int = 1) -> pyruntime.Model:
    return pyruntime.load(_core.write_model(model), threads=threads)


def run(model: dict, *xs: np.ndarray, threads: int = 1) -> np.ndarray:
    y = load(model, threads)._core.run(*xs)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    return y


def dense(values: np.ndarray, name: str = "t") -> dict:
    values = np.asarray(values, np.float32)
    return {"name": name, "encoding": "dense", "shape": list(values.shape), "values": values.ravel()}


def t64(a) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, np.float64))


def assert_close(got: np.ndarray, want) -> None:
    """|got - want| <= ATOL + RTOL |want| elementwise; NaN where want is NaN, equal infinities."""
    want = want.numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=RTOL, atol=ATOL, equal_nan=True)


def assert_bits_equal(got: np.ndarray, want: np.ndarray) -> None:
    """Equal float32 bits (so -0.0 counts) where want is not NaN, and NaN exactly where want is."""
    want = np.asarray(want, np.float32)
    assert got.shape == want.shape, (got.shape, want.shape)
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


def with_specials(rng: np.random.Generator, shape) -> np.ndarray:
    """Normal values times 4, with extremes, zeros and infinities written over the first elements."""
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    specials = np.array(
        [-np.inf, -100, -30, -10, -5.5, -1e-8, -0.0, 0.0, 1e-8, 5.5, 10, 30, 100, np.inf], np.float32
    )
    flat = x.reshape(-1)
    k = min(flat.size, specials.size)
    flat[:k] = specials[:k]
    return x


# ---- activations ------------------------------------------------------------------------------------

ACTIVATIONS = {
    "gelu-erf": ("gelu", {"approximate": 0}, lambda x: F.gelu(x)),
    "gelu-tanh": ("gelu", {"approximate": 1}, lambda x: F.gelu(x, approximate="tanh")),
    "silu": ("silu", None, F.silu),
    "sigmoid": ("sigmoid", None, torch.sigmoid),
    "tanh": ("tanh", None, torch.tanh),
    "leaky_relu-0.01": ("leaky_relu", {"slope": 0.01}, lambda x: F.leaky_relu(x, 0.01)),
    "leaky_relu-0.2": ("leaky_relu", {"slope": 0.2}, lambda x: F.leaky_relu(x, 0.2)),
    "leaky_relu--1.5": ("leaky_relu", {"slope": -1.5}, lambda x: F.leaky_relu(x, -1.5)),
}
SHAPES = ((37,), (4, 8), (2, 3, 5), (2, 2, 3, 4))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("case", list(ACTIVATIONS))
def test_activation_matches_torch(rng, case, shape):
    op, attrs, fn = ACTIVATIONS[case]
    model = one_op(op, [shape], attrs)
    for batch in BATCHES:
        x = with_specials(rng, (batch, *shape))
        assert_close(run(model, x), fn(t64(x)))  # float64 (float32 torch's gelu(inf) is NaN)


@pytest.mark.parametrize("case", list(ACTIVATIONS))
def test_activation_dense_range(case):
    """A fine sweep of [-12, 12], where gelu's 1 + erf / 1 + tanh cancel for negative x."""
    op, attrs, fn = ACTIVATIONS[case]
    x = np.linspace(-12, 12, 4801, dtype=np.float32).reshape(1, -1)
    assert_close(run(one_op(op, [[x.shape[1]]], attrs), x), fn(t64(x)))


def test_leaky_relu_is_exact(rng):
    x = with_specials(rng, (3, 50))
    want = np.where(x >= 0, x, np.float32(0.1) * x).astype(np.float32)
    assert_bits_equal(run(one_op("leaky_relu", [[50]], {"slope": 0.1}), x), want)


@pytest.mark.parametrize("case", list(ACTIVATIONS))
def test_activation_nan_stays_nan(rng, case):
    op, attrs, _ = ACTIVATIONS[case]
    x = rng.standard_normal((2, 9)).astype(np.float32)
    x[0, 3] = x[1, 8] = np.nan
    y = run(one_op(op, [[9]], attrs), x)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(x))


# ---- layer_norm -------------------------------------------------------------------------------------


def layer_norm_model(rng, shape, affine: str, eps: float):
    n = shape[-1]
    w = b = None
    tensors = []
    if affine in ("w", "wb"):
        w = (rng.standard_normal(n) * 2).astype(np.float32)
        tensors.append(dense(w, "ln.weight"))
    if affine == "wb":
        b = rng.standard_normal(n).astype(np.float32)
        tensors.append(dense(b, "ln.bias"))
    return one_op("layer_norm", [shape], {"eps": eps}, tensors), w, b


def torch_layer_norm(x: np.ndarray, w, b, eps: float) -> torch.Tensor:
    return F.layer_norm(
        t64(x),
        (x.shape[-1],),
        None if w is None else t64(w),
        None if b is None else t64(b),
        float(np.float32(eps)),
    )


@pytest.mark.parametrize("eps", (1e-5, 1e-3, 0.25))
@pytest.mark.parametrize("affine", ("none", "w", "wb"))
@pytest.mark.parametrize("shape", ((16,), (5, 8), (2, 3, 7), (2, 2, 3, 33), (1, 768)), ids=str)
def test_layer_norm_matches_torch(rng, shape, affine, eps):
    model, w, b = layer_norm_model(rng, shape, affine, eps)
    for batch in BATCHES:
        x = (rng.standard_normal((batch, *shape)) * 3 + rng.standard_normal()).astype(np.float32)
        assert_close(run(model, x), torch_layer_norm(x, w, b, eps))


def test_layer_norm_large_mean(rng):
    """Values near 1e4 whose spread is ~1e-2: a one-pass float32 variance would cancel to garbage."""
    model, w, b = layer_norm_model(rng, (6, 64), "wb", 1e-5)
    x = (1e4 + rng.standard_normal((2, 6, 64)) * 1e-2).astype(np.float32)
    assert_close(run(model, x), torch_layer_norm(x, w, b, 1e-5))


def test_layer_norm_constant_row_gives_bias(rng):
    model, w, b = layer_norm_model(rng, (3, 10), "wb", 1e-5)
    x = rng.standard_normal((1, 3, 10)).astype(np.float32)
    x[0, 1] = 2.5
    y = run(model, x)
    np.testing.assert_array_equal(y[0, 1], b)
    assert_close(y, torch_layer_norm(x, w, b, 1e-5))


def test_layer_norm_nan_poisons_only_its_row(rng):
    model, w, b = layer_norm_model(rng, (4, 12), "wb", 1e-5)
    x = rng.standard_normal((2, 4, 12)).astype(np.float32)
    x[1, 2, 5] = np.nan
    y = run(model, x)
    assert np.isnan(y[1, 2]).all()
    mask = np.ones(y.shape[:2], bool)
    mask[1, 2] = False
    assert np.isfinite(y[mask]).all()
    assert_close(y, torch_layer_norm(x, w, b, 1e-5))


# ---- softmax_axis -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,axis",
    [((11,), 0)]
    + [((3, 4, 5), a) for a in range(3)]
    + [((2, 3, 4, 5), a) for a in range(4)]
    + [((6, 1, 9), 1)],
    ids=str,
)
def test_softmax_axis_matches_torch(rng, shape, axis):
    model = one_op("softmax_axis", [shape], {"axis": axis})
    for batch in BATCHES:
        x = (rng.standard_normal((batch, *shape)) * 5).astype(np.float32)
        want = torch.softmax(t64(x), dim=axis + 1)
        assert_close(run(model, x), want)
        assert_close(run(model, x + np.float32(1e4)), torch.softmax(t64(x + np.float32(1e4)), dim=axis + 1))


@pytest.mark.parametrize("axis", (0, 1, 2))
def test_softmax_axis_all_neg_inf_slice_is_nan(rng, axis):
    """A slice of all -inf gives NaN (as torch), and leaves the other slices alone."""
    shape = (3, 4, 5)
    x = rng.standard_normal((2, *shape)).astype(np.float32)
    index = [1, 2, 1, 3]
    index[axis + 1] = slice(None)
    x[tuple(index)] = -np.inf
    x[0, 0, 0, 0] = -np.inf  # a single -inf is an ordinary 0
    y = run(one_op("softmax_axis", [shape], {"axis": axis}), x)
    want = torch.softmax(torch.from_numpy(x), dim=axis + 1).double()
    assert np.isnan(y[tuple(index)]).all()
    assert np.isnan(y).sum() == shape[axis]
    assert_close(y, want)


# ---- arithmetic -------------------------------------------------------------------------------------

NUMPY_OPS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}

# (a's per-sample shape, b's shape, whether b is a tensor)
BROADCASTS = {
    "same": ((4, 8), (4, 8), False),
    "same-tensor": ((4, 8), (4, 8), True),
    "TN-N-tensor": ((5, 16), (16,), True),
    "TN-N-value": ((5, 16), (16,), False),
    "scalar-tensor": ((3, 7), (1,), True),
    "scalar-value": ((3, 7), (1,), False),
    "T1-tensor": ((6, 9), (6, 1), True),
    "mask-value": ((2, 6, 6), (1, 1, 6), False),
    "mask-tensor": ((2, 6, 6), (1, 1, 6), True),
    "N-value-TN-tensor": ((16,), (5, 16), True),
    "N-value-TN-value": ((16,), (5, 16), False),
    "both-broadcast": ((1, 8), (5, 1), False),
    "rank4": ((2, 1, 3, 1), (4, 1, 5), False),
    "rank4-tensor": ((2, 1, 3, 1), (4, 1, 5), True),
    "HTT-TT-tensor": ((3, 5, 5), (5, 5), True),
    "one-element": ((1,), (1,), False),
    "inner-1": ((3, 4, 1), (3, 1, 1), False),
}


def padded(x: np.ndarray, rank: int, batched: bool) -> np.ndarray:
    """x with 1s inserted after the batch axis (or in front, for an unbatched tensor) up to a per-sample rank."""
    per_sample = x.shape[1:] if batched else x.shape
    ones = (1,) * (rank - len(per_sample))
    return x.reshape((x.shape[0], *ones, *per_sample) if batched else (1, *ones, *per_sample))


def operand(rng, shape) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[: min(3, flat.size)] = [0.0, -0.0, 1.0][: min(3, flat.size)]  # 0 / 0, x / -0 and exact results
    return x


@pytest.mark.parametrize("case", list(BROADCASTS))
@pytest.mark.parametrize("op", list(NUMPY_OPS))
def test_arithmetic_matches_numpy_bitwise(rng, op, case):
    sa, sb, b_is_tensor = BROADCASTS[case]
    rank = max(len(sa), len(sb))
    for batch in BATCHES:
        a = operand(rng, (batch, *sa))
        if b_is_tensor:
            b = operand(rng, sb)
            model = one_op(op, [sa], tensors=[dense(b, "b")])
            got = run(model, a)
        else:
            b = operand(rng, (batch, *sb))
            model = one_op(op, [sa, sb])
            got = run(model, a, b)
        with np.errstate(all="ignore"):
            want = NUMPY_OPS[op](padded(a, rank, True), padded(b, rank, not b_is_tensor))
        assert want.dtype == np.float32
        assert_bits_equal(got, want)


@pytest.mark.parametrize("op", list(NUMPY_OPS))
def test_arithmetic_threads_and_batches_agree(rng, op):
    """A mask over [H, T, T] at batch 70 (split across threads), bit-identical at 1 and 2 threads."""
    model = one_op(op, [(4, 9, 9), (1, 1, 9)])
    a = operand(rng, (70, 4, 9, 9))
    b = operand(rng, (70, 1, 1, 9))
    y1 = run(model, a, b, threads=1)
    y2 = run(model, a, b, threads=2)
    assert_bits_equal(y2, y1)
    with np.errstate(all="ignore"):
        assert_bits_equal(y1, NUMPY_OPS[op](a, b))


def test_work_counts_elements_written(rng):
    assert load(one_op("mul", [(5, 16)], tensors=[dense(np.ones(16), "b")])).work == 80
    assert load(one_op("add", [(2, 6, 6), (1, 1, 6)])).work == 72
    assert load(one_op("sub", [(16,)], tensors=[dense(np.ones((5, 16)), "b")])).work == 80
    assert load(one_op("gelu", [(3, 7)], {"approximate": 0})).work == 21
    assert load(one_op("softmax_axis", [(3, 4, 5)], {"axis": 1})).work == 60
    model, _, _ = layer_norm_model(rng, (4, 12), "wb", 1e-5)
    assert load(model).work == 48


# ---- a chain ----------------------------------------------------------------------------------------


def test_transformer_like_chain(rng):
    """x [T, N] -> layer_norm(w, b) -> mul [N] -> gelu -> add x -> sub [1] -> softmax_axis 0 -> div by a
    second input [T, 1] -> silu / tanh / sigmoid / leaky_relu, at threads 1 and 2."""
    t, n = 6, 32
    w = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    scale = rng.standard_normal(n).astype(np.float32)
    shift = np.array([0.5], np.float32)
    tensors = [dense(w, "ln.w"), dense(b, "ln.b"), dense(scale, "scale"), dense(shift, "shift")]
    nodes = [
        {"op": "layer_norm", "inputs": [0], "tensors": [0, 1], "attrs": {"eps": 1e-5}},  # 2
        {"op": "mul", "inputs": [2], "tensors": [2]},  # 3
        {"op": "gelu", "inputs": [3], "attrs": {"approximate": 1}},  # 4
        {"op": "add", "inputs": [4, 0]},  # 5 (same shapes: elementwise.cpp)
        {"op": "sub", "inputs": [5], "tensors": [3]},  # 6
        {"op": "softmax_axis", "inputs": [6], "attrs": {"axis": 0}},  # 7
        {"op": "div", "inputs": [7, 1]},  # 8
        {"op": "silu", "inputs": [8]},  # 9
        {"op": "tanh", "inputs": [9]},  # 10
        {"op": "sigmoid", "inputs": [10]},  # 11
        {"op": "leaky_relu", "inputs": [11], "attrs": {"slope": 0.05}},  # 12
    ]
    model = {
        "inputs": [{"shape": [t, n], "type": "f32"}, {"shape": [t, 1], "type": "f32"}],
        "nodes": nodes,
        "tensors": tensors,
    }
    x = rng.standard_normal((3, t, n)).astype(np.float32)
    d = (rng.random((3, t, 1)) + 0.5).astype(np.float32)
    y = F.layer_norm(t64(x), (n,), t64(w), t64(b), 1e-5) * t64(scale)
    y = F.gelu(y, approximate="tanh") + t64(x) - 0.5
    y = torch.softmax(y, dim=1) / t64(d)
    y = F.leaky_relu(torch.sigmoid(torch.tanh(F.silu(y))), 0.05)
    got = run(model, x, d)
    assert_close(got, y)
    assert_bits_equal(run(model, x, d, threads=2), got)


# ---- bad graphs -------------------------------------------------------------------------------------


def refused(model: dict, node: str, *words: str) -> None:
    with pytest.raises(ValueError) as e:
        _core.write_model(model)
    msg = str(e.value)
    assert node in msg, msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("op", list(NUMPY_OPS))
@pytest.mark.parametrize(
    "sa,sb", [((3, 4), (5, 4)), ((4, 8), (3,)), ((2, 6, 6), (2, 1, 5)), ((7,), (6,))], ids=str
)
def test_refuses_shapes_that_do_not_broadcast(rng, op, sa, sb):
    refused(one_op(op, [sa, sb]), f"node 0 ({op})", "do not broadcast")
    refused(one_op(op, [sa], tensors=[dense(np.ones(sb), "b")]), f"node 0 ({op})", "do not broadcast")


@pytest.mark.parametrize("which,length", [("weight", 7), ("weight", 9), ("bias", 1)])
def test_refuses_layer_norm_tensor_of_wrong_length(rng, which, length):
    good = np.ones(8, np.float32)
    bad = np.ones(length, np.float32)
    tensors = [dense(bad, "ln.w")] if which == "weight" else [dense(good, "ln.w"), dense(bad, "ln.b")]
    refused(one_op("layer_norm", [(3, 8)], {"eps": 1e-5}, tensors), "node 0 (layer_norm)", which, "[8]")


@pytest.mark.parametrize(
    "op,shape,attrs,words",
    [
        ("softmax_axis", (3, 4), {"axis": 2}, ("axis 2",)),
        ("gelu", (5,), {"approximate": 2}, ("approximate 2",)),
        ("leaky_relu", (5,), {"slope": math.inf}, ("slope",)),
        ("leaky_relu", (5,), {"slope": math.nan}, ("slope",)),
        ("layer_norm", (5,), {"eps": -1.0}, ("eps",)),
        ("layer_norm", (5,), {"eps": math.nan}, ("eps",)),
    ],
    ids=str,
)
def test_refuses_bad_attrs(op, shape, attrs, words):
    refused(one_op(op, [shape], attrs), f"node 0 ({op})", *words)
