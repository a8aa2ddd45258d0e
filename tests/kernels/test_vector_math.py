"""The f32 transcendental kernels (csrc/kernels/ref/vector_math.h) at every ISA level, through the real step
path: one-node models from ``_core.write_model``, run with the level set by ``_core.set_isa``.

- gelu (erf and tanh forms), silu, sigmoid, tanh over a fine sweep of [-20, 20], the exp range edges, +-inf,
  NaN, +-0, subnormals and huge values, against torch in float64 of the same float32 inputs;
- leaky_relu bit-exact; -0 keeps its sign (gelu, silu, tanh); every result depends on its value only (the
  same bits at any position in a call, at any batch split, at 1 and 2 threads);
- softmax over the last axis and layer_norm (no affine / weight / weight and bias) on rows of 1, 7, 16, 17,
  768 and 3072 (tails of every vector width), a large mean with a small spread, NaN / inf / all -inf rows.

Tolerance: |y - y64| <= 1e-6 + 1e-5 |y64|. Measured on the sweep at avx2 and avx512 (the same arithmetic, the
same numbers), as max |y - y64| / (1e-6 + 1e-5 |y64|) and the largest relative error where |y64| > 1e-6:
gelu-erf 0.027 / 1.8e-6 (x near -5: erfcc's fractional error and the rounding of z^2 in exp's argument),
gelu-tanh 0.016 / 1.3e-6 (x near -4.7), silu 0.011 / 1.4e-7, sigmoid 0.009 / 1.2e-7, tanh 0.011 / 1.3e-7 (ref:
<= 0.011 / 1.4e-7). softmax rows of 7..3072: relative error <= 2.4e-6 on entries > 1e-30 (ref 2.0e-6: float
exp of arguments near -60). layer_norm rows with a mean of 1e4 and a spread of 1e-2: 0.19 (ref 0.006; the
float output d * inv * w + b).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import pyruntime
from pyruntime import _core

torch = pytest.importorskip("torch")
F = torch.nn.functional

ATOL, RTOL = 1e-6, 1e-5
ISAS = tuple(_core.architecture_isas())
ROW_LENGTHS = (1, 7, 16, 17, 768, 3072)

ACTIVATIONS = {
    "gelu-erf": ("gelu", {"approximate": 0}, lambda x: F.gelu(x)),
    "gelu-tanh": ("gelu", {"approximate": 1}, lambda x: F.gelu(x, approximate="tanh")),
    "silu": ("silu", None, F.silu),
    "sigmoid": ("sigmoid", None, torch.sigmoid),
    "tanh": ("tanh", None, torch.tanh),
}


@pytest.fixture(params=ISAS)
def isa(request) -> str:
    name = request.param
    if name not in _core.supported_isas():
        pytest.skip(f"{name} is not supported by this CPU or build (supported: {_core.supported_isas()})")
    return name


@contextlib.contextmanager
def at_isa(name: str):
    before = _core.active_isa()
    try:
        _core.set_isa(name)
        yield
    finally:
        _core.set_isa(before)


def one_op(op: str, shape, attrs: dict | None = None, tensors=()) -> dict:
    node = {"op": op, "inputs": [0], "tensors": list(range(len(tensors)))}
    if attrs:
        node["attrs"] = attrs
    return {"inputs": [{"shape": list(shape), "type": "f32"}], "nodes": [node], "tensors": list(tensors)}


def dense(values: np.ndarray, name: str) -> dict:
    values = np.asarray(values, np.float32)
    return {"name": name, "encoding": "dense", "shape": list(values.shape), "values": values.ravel()}


def run(isa: str, model: dict, x: np.ndarray, threads: int = 1) -> np.ndarray:
    with at_isa(isa):
        y = pyruntime.load(_core.write_model(model), threads=threads)._core.run(x)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    return y


def t64(a) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, np.float64))


def assert_close(got: np.ndarray, want) -> None:
    """|got - want| <= ATOL + RTOL |want|; NaN exactly where want is NaN; equal infinities."""
    want = want.numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=RTOL, atol=ATOL, equal_nan=True)


def assert_bits_equal(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def sweep() -> np.ndarray:
    """[-20, 20] every 1e-4, the specials, and the edges of exp's range (in x and in -x, 2x, -2u)."""
    grid = np.linspace(-20, 20, 400001, dtype=np.float32)
    tiny = np.finfo(np.float32).tiny
    big = np.finfo(np.float32).max
    specials = [np.inf, np.nan, 0.0, 1e-45, 1e-40, tiny, 1e-30, 1e-8, 2.0**-13, 0.3, 0.625, 0.6250001, 1.0,
                5.5, 9.0, 10.0, 30.0, 44.0, 44.4, 80.0, 87.3, 87.34, 88.0, 88.7, 88.72, 88.73, 89.0, 100.0, 103.0,
                104.0, 110.0, 200.0, 1e4, 1e10, 1e19, 3e19, 1e30, big]
    specials = np.array(specials, np.float32)
    rng = np.random.default_rng(7)
    wide = (rng.standard_normal(4096) * np.exp(rng.uniform(-30, 30, 4096))).astype(np.float32)
    return np.concatenate([grid, specials, -specials, wide])


# ---- activations ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(ACTIVATIONS))
def test_activation_sweep_matches_float64(isa, case):
    op, attrs, fn = ACTIVATIONS[case]
    x = sweep().reshape(1, -1)
    y = run(isa, one_op(op, [x.shape[1]], attrs), x)
    assert_close(y, fn(t64(x)))


@pytest.mark.parametrize("case", list(ACTIVATIONS))
def test_activation_limits_and_signs(isa, case):
    op, attrs, fn = ACTIVATIONS[case]
    x = np.array([[np.inf, -np.inf, np.nan, -np.nan, 0.0, -0.0, -1e-45, 1e-45]], np.float32)
    y = run(isa, one_op(op, [x.shape[1]], attrs), x)
    want = fn(t64(x)).numpy().astype(np.float32)  # gelu / silu (-inf) are NaN in torch float64 (-inf * 0)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_array_equal(y[ok], want[ok])
    if op != "sigmoid":
        assert np.signbit(y[0, 5]), "f(-0) = -0"
        assert not np.signbit(y[0, 4]), "f(+0) = +0"


@pytest.mark.parametrize("case", list(ACTIVATIONS))
def test_activation_independent_of_position(isa, case):
    """The same value gives the same bits at every offset in a call, at any batch split and thread count."""
    op, attrs, _ = ACTIVATIONS[case]
    rng = np.random.default_rng(3)
    n = 37  # not a multiple of 8 or 16: each sample of a batch starts at another lane
    x = (rng.standard_normal((9, n)) * 6).astype(np.float32)
    x[:, 0] = x[0, 5]  # one value at 9 positions
    model = one_op(op, [n], attrs)
    y = run(isa, model, x)
    assert np.unique(y[:, 0].view(np.uint32)).size == 1
    for i in range(9):
        assert_bits_equal(run(isa, model, x[i : i + 1]), y[i : i + 1])
    assert_bits_equal(run(isa, model, x, threads=2), y)


@pytest.mark.parametrize("slope", (0.01, 0.2, -1.5))
def test_leaky_relu_is_exact(isa, slope):
    x = sweep().reshape(1, -1)
    y = run(isa, one_op("leaky_relu", [x.shape[1]], {"slope": slope}), x)
    with np.errstate(over="ignore", invalid="ignore"):  # -1.5 * -FLT_MAX overflows to inf in both
        want = np.where(x >= 0, x, np.float32(slope) * x).astype(np.float32)
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(y), nan)
    assert_bits_equal(y[~nan], want[~nan])  # -0 stays -0 at a negative slope


# ---- softmax over the last axis --------------------------------------------------------------------


def softmax64(x: np.ndarray) -> torch.Tensor:
    return torch.softmax(t64(x), dim=-1)


@pytest.mark.parametrize("n", ROW_LENGTHS)
def test_softmax_rows_match_float64(isa, n):
    rng = np.random.default_rng(n)
    model = one_op("softmax_axis", [5, n], {"axis": 1})
    for scale, shift in ((1.0, 0.0), (8.0, 0.0), (3.0, 1e4), (30.0, -500.0)):
        x = (rng.standard_normal((2, 5, n)) * scale + shift).astype(np.float32)
        assert_close(run(isa, model, x), softmax64(x))


@pytest.mark.parametrize("n", ROW_LENGTHS)
def test_softmax_rows_specials(isa, n):
    """-inf is an ordinary 0; a row of all -inf, or with a NaN or +inf, is all NaN (as torch); others intact."""
    rng = np.random.default_rng(100 + n)
    x = rng.standard_normal((1, 5, n)).astype(np.float32)
    x[0, 0, n - 1] = -np.inf  # an ordinary 0 (the only element when n = 1: the row is all -inf)
    x[0, 1, :] = -np.inf
    x[0, 2, n // 2] = np.nan
    x[0, 3, n - 1] = np.inf
    y = run(isa, one_op("softmax_axis", [5, n], {"axis": 1}), x)
    assert np.isnan(y[0, 1:4]).all()
    assert np.isfinite(y[0, 4]).all()
    if n > 1:
        assert y[0, 0, n - 1] == 0.0 and np.isfinite(y[0, 0]).all()
    assert_close(y, softmax64(x))


# ---- layer_norm -------------------------------------------------------------------------------------


def layer_norm_model(rng, n: int, rows: int, affine: str, eps: float = 1e-5):
    w = b = None
    tensors = []
    if affine in ("w", "wb"):
        w = (rng.standard_normal(n) * 2).astype(np.float32)
        tensors.append(dense(w, "ln.weight"))
    if affine == "wb":
        b = rng.standard_normal(n).astype(np.float32)
        tensors.append(dense(b, "ln.bias"))
    return one_op("layer_norm", [rows, n], {"eps": eps}, tensors), w, b


def layer_norm64(x: np.ndarray, w, b, eps: float = 1e-5) -> torch.Tensor:
    w64 = None if w is None else t64(w)
    b64 = None if b is None else t64(b)
    return F.layer_norm(t64(x), (x.shape[-1],), w64, b64, float(np.float32(eps)))


@pytest.mark.parametrize("affine", ("none", "w", "wb"))
@pytest.mark.parametrize("n", ROW_LENGTHS)
def test_layer_norm_rows_match_float64(isa, n, affine):
    rng = np.random.default_rng(200 + n)
    model, w, b = layer_norm_model(rng, n, 4, affine)
    for scale, shift in ((1.0, 0.0), (3.0, -2.0), (1e-2, 1e4), (1e3, 5e4)):
        x = (rng.standard_normal((2, 4, n)) * scale + shift).astype(np.float32)
        assert_close(run(isa, model, x), layer_norm64(x, w, b))


@pytest.mark.parametrize("n", ROW_LENGTHS)
def test_layer_norm_rows_specials(isa, n):
    """A NaN or an infinity makes its row NaN and only its row; a constant row gives the bias."""
    rng = np.random.default_rng(300 + n)
    model, w, b = layer_norm_model(rng, n, 4, "wb")
    x = rng.standard_normal((1, 4, n)).astype(np.float32)
    x[0, 0, n // 2] = np.nan
    x[0, 1, n - 1] = np.inf
    x[0, 2, :] = 2.5
    y = run(isa, model, x)
    assert np.isnan(y[0, :2]).all()
    np.testing.assert_array_equal(y[0, 2], b)
    assert np.isfinite(y[0, 3]).all()
    assert_close(y[:, 2:], layer_norm64(x[:, 2:], w, b))
