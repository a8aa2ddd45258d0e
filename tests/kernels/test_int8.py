"""int8 kernels (kernels/int8, kernels/ref/int8_gemm.cpp, x86/int8_gemm_*): every ISA bit for bit against the
scalar reference on the same layout, the reference's integer sums against numpy's, the epilogue (scales,
bias, clamp, int8 output), the saturation-prone inputs of vpmaddubsw, the largest layer whose sums fit in
int32, and the dynamic quantization of activations against its definition in numpy.
"""

from __future__ import annotations

import numpy as np
import pytest

from pyruntime import _core

ISAS = _core.supported_isas()
FAST = [i for i in ISAS if i != "ref"]
ALL_LEVELS = ("ref", "avx2", "avx512", "avx512vnni", "amx")
# csr+int8 weights are stored masked where the AVX-512 kernels can expand them (VBMI2), padded elsewhere
SPARSE_LAYOUT = "i8_p128m" if _core.cpu_has("vbmi2") and "avx512" in _core.supported_isas() else "i8_p128"


def need(isa: str) -> None:
    if isa not in ISAS:
        pytest.skip(f"{isa} is not supported by this CPU or build (supported: {ISAS})")


def int8_tensor(rng, rows: int, cols: int, *, density: float | None = None, values=None, scales=None) -> dict:
    """An int8 (dense) or csr+int8 (density given) tensor dict with weights in -127..127."""
    w = rng.integers(-127, 128, size=(rows, cols)).astype(np.int8) if values is None else values.astype(np.int8)
    sc = (rng.random(rows).astype(np.float32) * 0.02 + 1e-3) if scales is None else np.asarray(scales, np.float32)
    if density is None:
        return {"name": "w", "encoding": "int8", "shape": [rows, cols], "qvalues": w.ravel(), "scales": sc}
    mask = rng.random((rows, cols)) < density
    w = np.where(mask, w, 0).astype(np.int8)
    rowptr = np.concatenate([[0], np.cumsum((w != 0).sum(axis=1))]).astype(np.uint32)
    rr, cc = np.nonzero(w)
    return {"name": "w", "encoding": "csr+int8", "shape": [rows, cols], "rowptr": rowptr,
            "colidx": cc.astype(np.uint32), "qvalues": w[rr, cc], "scales": sc}


def dense_q(t: dict) -> np.ndarray:
    rows, cols = t["shape"]
    if t["encoding"] == "int8":
        return np.asarray(t["qvalues"], np.int64).reshape(rows, cols)
    w = np.zeros((rows, cols), np.int64)
    rp = np.asarray(t["rowptr"], np.int64)
    for r in range(rows):
        w[r, np.asarray(t["colidx"])[rp[r]:rp[r + 1]]] = np.asarray(t["qvalues"])[rp[r]:rp[r + 1]]
    return w


def acts(rng, batch: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    q = rng.integers(-127, 128, size=(batch, cols)).astype(np.int8)
    xs = (rng.random(batch).astype(np.float32) + 0.5) / 127
    return q, xs


SHAPES = [(1, 1), (15, 3), (16, 4), (17, 5), (33, 63), (64, 64), (100, 65), (48, 300), (20, 1000)]
BATCHES = [1, 2, 3, 4, 5, 8, 9, 17, 33]  # amx: tiles of 16 samples, in pairs, from 4 samples


@pytest.mark.parametrize("isa", ALL_LEVELS)
@pytest.mark.parametrize("density", [None, 0.5, 0.1])
@pytest.mark.parametrize("rows,cols", SHAPES)
def test_every_isa_matches_the_reference_bit_for_bit(isa, density, rows, cols):
    need(isa)
    rng = np.random.default_rng(rows * 1000 + cols + int((density or 0) * 10))
    t = int8_tensor(rng, rows, cols, density=density)
    w = _core.Int8Weight(t)
    assert w.layout == ("i8_r16k4" if density is None else SPARSE_LAYOUT)
    bias = rng.standard_normal(rows).astype(np.float32)
    for batch in BATCHES:
        q, xs = acts(rng, batch, cols)
        want = w.gemm(q, xs, bias, isa="ref")
        np.testing.assert_array_equal(w.gemm(q, xs, bias, isa=isa), want, err_msg=f"{isa} batch {batch}")
        lo, hi = -0.5, 0.75  # a clamp, then an int8 output
        np.testing.assert_array_equal(w.gemm(q, xs, bias, lo=lo, hi=hi, isa=isa),
                                      w.gemm(q, xs, bias, lo=lo, hi=hi, isa="ref"))
        np.testing.assert_array_equal(w.gemm(q, xs, None, out_scale=0.01, isa=isa),
                                      w.gemm(q, xs, None, out_scale=0.01, isa="ref"))


@pytest.mark.parametrize("density", [None, 0.3])
def test_reference_sums_are_numpys_integer_dot(density):
    """With unit scales and no bias the f32 output is the int32 sum itself (exact below 2^24)."""
    rng = np.random.default_rng(7)
    rows, cols = 37, 517
    t = int8_tensor(rng, rows, cols, density=density, scales=np.ones(rows))
    q, _ = acts(rng, 6, cols)
    want = q.astype(np.int64) @ dense_q(t).T
    assert np.abs(want).max() < 2**24
    for isa in ISAS:
        np.testing.assert_array_equal(_core.Int8Weight(t).gemm(q, np.ones(6, np.float32), isa=isa), want)


def test_epilogue_against_numpy():
    """y = fma(acc, xs * ws, b) then the clamp; fma is one rounding, so numpy's float64 product (exact for
    two float32) plus the bias, rounded once to float32, agrees but in rare double-rounding cases."""
    rng = np.random.default_rng(8)
    rows, cols, batch = 40, 130, 5
    t = int8_tensor(rng, rows, cols)
    q, xs = acts(rng, batch, cols)
    bias = rng.standard_normal(rows).astype(np.float32)
    acc = (q.astype(np.int64) @ dense_q(t).T).astype(np.float32).astype(np.float64)
    s = (xs[:, None] * np.asarray(t["scales"], np.float32)[None, :]).astype(np.float32)  # f32 product
    want = (acc * s.astype(np.float64) + bias).astype(np.float32)
    got = _core.Int8Weight(t).gemm(q, xs, bias, isa="ref")
    assert np.mean(got == want) > 0.999
    np.testing.assert_allclose(got, want, rtol=1e-6)
    clamped = _core.Int8Weight(t).gemm(q, xs, bias, lo=-0.1, hi=0.2, isa="ref")
    np.testing.assert_array_equal(clamped, np.clip(got, -0.1, 0.2))
    out = _core.Int8Weight(t).gemm(q, xs, bias, lo=0.0, out_scale=0.05, isa="ref")
    inv = np.float32(1) / np.float32(0.05)
    np.testing.assert_array_equal(out, np.clip(np.rint(np.maximum(got, 0) * inv), -127, 127).astype(np.int8))


@pytest.mark.parametrize("isa", ALL_LEVELS)
@pytest.mark.parametrize("density", [None, 1.0])
def test_saturation_prone_inputs(isa, density):
    """All activations at +-127 against all weights at +-127: vpmaddubsw on u8 x s8 pairs would saturate
    (2 * 255 * 127 > 32767); the kernels' schemes must not. Sums checked against numpy's exact ones."""
    need(isa)
    rng = np.random.default_rng(9)
    rows, cols = 32, 256
    signs = np.where(rng.random((rows, cols)) < 0.5, -127, 127)
    for weights in (np.full((rows, cols), 127), np.full((rows, cols), -127), signs):
        t = int8_tensor(rng, rows, cols, values=weights, scales=np.ones(rows), density=None)
        if density is not None:
            t = int8_tensor(rng, rows, cols, values=weights, scales=np.ones(rows), density=density)
        w = _core.Int8Weight(t)
        for act in (127, -127):
            for batch in (3, 20):  # amx's tiles from 4 samples
                q = np.full((batch, cols), act, np.int8)
                want = q.astype(np.int64) @ dense_q(t).T
                np.testing.assert_array_equal(w.gemm(q, np.ones(batch, np.float32), isa=isa), want)


@pytest.mark.parametrize("isa", ALL_LEVELS)
def test_the_largest_int8_layer_sums_exactly(isa):
    """133,144 inputs of 127 x 127: 2,147,479,576, just below 2^31 (the format refuses wider int8 layers).
    The VNNI kernels' offset of 128 takes their running sums past 2^31; int32 wraps, and the result is exact."""
    need(isa)
    cols = (2**31 - 1) // (127 * 127)
    w = np.full((2, cols), 127, np.int8)
    w[1] = -127
    t = int8_tensor(np.random.default_rng(0), 2, cols, values=w, scales=np.ones(2))
    for batch in (1, 5):  # amx's tiles from 4 samples
        q = np.full((batch, cols), 127, np.int8)
        got = _core.Int8Weight(t).gemm(q, np.ones(batch, np.float32), isa=isa)
        assert (got[:, 0] == np.float32(cols * 127 * 127)).all() and (got[:, 1] == -np.float32(cols * 127 * 127)).all()


@pytest.mark.parametrize("batch", [4, 15, 16, 31, 32, 47, 64, 65])
@pytest.mark.parametrize("rows,cols", [(16, 64), (48, 128), (40, 700), (130, 64 * 5 + 4)])
def test_amx_tiles(batch, rows, cols):
    """The AMX kernel's tile steps: 16-sample blocks in pairs (a last block alone or partial), row blocks in
    pairs (a last one alone or partial), 64-column chunks (a last partial one, whose weight tile reaches into
    the next row block or past the weights), bit for bit with the reference, f32 and int8 outputs."""
    need("amx")
    rng = np.random.default_rng(batch * 100 + rows + cols)
    t = int8_tensor(rng, rows, cols)
    w = _core.Int8Weight(t)
    bias = rng.standard_normal(rows).astype(np.float32)
    q, xs = acts(rng, batch, cols)
    np.testing.assert_array_equal(w.gemm(q, xs, bias, isa="amx"), w.gemm(q, xs, bias, isa="ref"))
    np.testing.assert_array_equal(w.gemm(q, xs, bias, lo=0.0, out_scale=0.02, isa="amx"),
                                  w.gemm(q, xs, bias, lo=0.0, out_scale=0.02, isa="ref"))
    for r0, r1 in ((0, 16), (16, rows)):
        if r1 > r0:
            part = w.gemm(q, xs, bias, rows=(r0, r1), isa="amx")
            np.testing.assert_array_equal(part[:, r0:r1], w.gemm(q, xs, bias, isa="ref")[:, r0:r1])
            assert np.isnan(part[:, :r0]).all() and np.isnan(part[:, r1:]).all()


@pytest.mark.parametrize("isa", ALL_LEVELS)
def test_wide_inputs_in_sample_chunks(isa):
    """Wide layers at batch > 24: the VNNI GEMM copies the samples offset by 128 in chunks of at most 512 KiB
    (24 samples of 20,000 columns here, a last chunk of 2 and a row tail of 32 columns), bit for bit with the
    reference in f32 and int8 outputs, a row range included."""
    need(isa)
    rng = np.random.default_rng(77)
    t = int8_tensor(rng, 20, 20000)
    w = _core.Int8Weight(t)
    bias = rng.standard_normal(20).astype(np.float32)
    q, xs = acts(rng, 50, 20000)
    np.testing.assert_array_equal(w.gemm(q, xs, bias, isa=isa), w.gemm(q, xs, bias, isa="ref"))
    np.testing.assert_array_equal(w.gemm(q, xs, None, out_scale=0.5, isa=isa),
                                  w.gemm(q, xs, None, out_scale=0.5, isa="ref"))
    part = w.gemm(q, xs, bias, rows=(16, 20), isa=isa)
    np.testing.assert_array_equal(part[:, 16:], w.gemm(q, xs, bias, isa="ref")[:, 16:])


@pytest.mark.parametrize("density", [None, 0.4])
def test_row_ranges_are_the_whole_matrix_columns(density):
    rng = np.random.default_rng(10)
    t = int8_tensor(rng, 70, 90, density=density)
    w = _core.Int8Weight(t)
    q, xs = acts(rng, 4, 90)
    for isa in ISAS:
        whole = w.gemm(q, xs, isa=isa)
        for r0, r1 in ((0, 16), (16, 70), (32, 48), (64, 70)):
            part = w.gemm(q, xs, rows=(r0, r1), isa=isa)
            np.testing.assert_array_equal(part[:, r0:r1], whole[:, r0:r1])
            assert np.isnan(part[:, :r0]).all() and np.isnan(part[:, r1:]).all()  # nothing outside its rows
    b = w.row_splits(3)
    assert b[0] == 0 and b[-1] == 70 and all(x % 16 == 0 for x in b[:-1])


def test_zero_scales_nan_scales_and_bias_only():
    """A channel of scale 0 gives its bias; a sample whose scale is NaN (a NaN or infinity in its input)
    gives NaN; a sample of scale 0 (all zeros) gives the bias."""
    rng = np.random.default_rng(11)
    t = int8_tensor(rng, 20, 30, scales=np.r_[np.zeros(4), np.full(16, 0.01)])
    q, xs = acts(rng, 3, 30)
    xs[1] = np.nan
    xs[2] = 0.0
    bias = np.arange(20, dtype=np.float32)
    for isa in ISAS:
        y = _core.Int8Weight(t).gemm(q, xs, bias, isa=isa)
        np.testing.assert_array_equal(y[0, :4], bias[:4])
        assert np.isnan(y[1]).all()
        np.testing.assert_array_equal(y[2], bias)


def quantize_rows_numpy(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The definition (kernels/ref/quantize.h) in numpy float32 arithmetic."""
    q = np.zeros(x.shape, np.int8)
    xs = np.zeros(x.shape[0], np.float32)
    for b, row in enumerate(x):
        a = np.abs(row)
        if not np.all(np.isfinite(row)):
            xs[b] = np.nan
            continue
        m = np.float32(a.max()) if row.size else np.float32(0)
        if m == 0:
            continue
        xs[b] = m / np.float32(127)
        inv = np.float32(127) / m
        q[b] = np.clip(np.rint(row * inv), -127, 127).astype(np.int8)
    return q, xs


@pytest.mark.parametrize("isa", ALL_LEVELS)
@pytest.mark.parametrize("cols", [1, 7, 8, 16, 17, 333])
def test_dynamic_quantization_matches_its_definition(isa, cols):
    need(isa)
    rng = np.random.default_rng(12 + cols)
    x = (rng.standard_normal((8, cols)) * rng.random((8, 1)) * 10).astype(np.float32)
    x[2] = 0.0
    x[3, cols // 2] = np.nan
    x[4, cols - 1] = -np.inf
    x[5] = np.linspace(-127, 127, cols, dtype=np.float32)  # exact halves: rounding half to even
    x[6, 0] = np.finfo(np.float32).max
    x[7] = -x[7]
    q, xs = _core.quantize_rows(x, isa)
    qn, xsn = quantize_rows_numpy(x)
    np.testing.assert_array_equal(q, qn)
    np.testing.assert_array_equal(xs, xsn)
    if cols < 333:
        return
    assert (np.abs(q) <= 127).all() and xs[2] == 0 and np.isnan(xs[3]) and np.isnan(xs[4])
    ok = np.isfinite(xs) & (xs > 0)
    err = np.abs(q[ok] * xs[ok, None].astype(np.float64) - x[ok])
    assert (err <= xs[ok, None] * 0.5 * 1.0001).all()  # within half a step


@pytest.mark.parametrize("isa", ALL_LEVELS)
def test_static_quantization_saturates(isa):
    need(isa)
    x = np.array([-1e9, -1.0, -0.05, 0.0, 0.049, 0.05, 0.15, 1.0, 1e9, np.nan, np.inf, -np.inf, -0.25, 0.25, 0.35,
                  -12.7, 12.7, 12.75, -12.75], np.float32)
    x = np.concatenate([x, x[::-1], x[3:], np.random.default_rng(2).standard_normal(1000).astype(np.float32) * 9])
    q = _core.quantize(x, 0.1, isa)
    inv = np.float32(1) / np.float32(0.1)
    want = np.clip(np.rint(np.nan_to_num(x * inv, nan=0.0, posinf=127, neginf=-127)), -127, 127).astype(np.int8)
    np.testing.assert_array_equal(q, want)  # the tails of every vector width and the vector bodies
    assert q[0] == -127 and q[8] == 127 and q[9] == 0 and q[11] == -127


def test_bad_arguments_are_refused():
    rng = np.random.default_rng(13)
    w = _core.Int8Weight(int8_tensor(rng, 8, 6))
    with pytest.raises(ValueError, match="shape"):
        w.gemm(np.zeros((2, 5), np.int8), np.ones(2, np.float32))
    with pytest.raises(ValueError, match="-128"):
        w.gemm(np.full((1, 6), -128, np.int8), np.ones(1, np.float32))
    with pytest.raises(ValueError, match="rows"):
        w.gemm(np.zeros((1, 6), np.int8), np.ones(1, np.float32), rows=(1, 8))
    bad = int8_tensor(rng, 4, 4)
    bad["qvalues"] = np.r_[bad["qvalues"][:-1].astype(np.int64), 200]
    with pytest.raises(ValueError, match="not in -127..127"):
        _core.Int8Weight(bad)
    bad = int8_tensor(rng, 4, 4, scales=[1, 1, -1, 1])
    with pytest.raises(ValueError, match="scale of row 2"):
        _core.Int8Weight(bad)
    bad = int8_tensor(rng, 4, 4, scales=[1, 1, np.nan, 1])
    with pytest.raises(ValueError, match="scale of row 2"):
        _core.Int8Weight(bad)
    with pytest.raises(ValueError, match="3 scales for 4 rows"):
        _core.Int8Weight({**int8_tensor(rng, 4, 4), "scales": np.ones(3, np.float32)})


@pytest.mark.parametrize("isa", ALL_LEVELS)
def test_sparse_panels_with_uneven_rows(isa):
    """The i8_p128 layout pads a block's rows to its longest in each panel: one full row among empty ones
    (32 steps in a panel), rows with nonzeros only in the last, partial panel, a wide layer (513 panels)."""
    need(isa)
    rng = np.random.default_rng(14)
    q = np.zeros((37, 300), np.int64)
    q[5] = rng.integers(-127, 128, size=300)          # a full row: 32 steps in panels 0 and 1
    q[20, 256:] = rng.integers(1, 128, size=44)       # only the last, partial panel
    q[36, ::7] = -127
    t = int8_tensor(rng, 37, 300, values=q, density=1.0)
    w = _core.Int8Weight(t)
    assert w.layout == SPARSE_LAYOUT and w.nnz == int(np.count_nonzero(q))
    qa, _ = acts(rng, 7, 300)
    exact = _core.Int8Weight({**t, "scales": np.ones(37, np.float32)})
    np.testing.assert_array_equal(exact.gemm(qa, np.ones(7, np.float32), isa=isa),
                                  (qa.astype(np.int64) @ q.T).astype(np.float32))
    xs = np.linspace(0.01, 0.02, 7, dtype=np.float32)
    np.testing.assert_array_equal(w.gemm(qa, xs, isa=isa), w.gemm(qa, xs, isa="ref"))
    t = int8_tensor(rng, 17, 65_600, density=0.01)
    w = _core.Int8Weight(t)
    qa, xs = acts(rng, 3, 65_600)
    want = (qa.astype(np.int64) @ dense_q(t).T).astype(np.float32)
    got = _core.Int8Weight({**t, "scales": np.ones(17, np.float32)}).gemm(qa, np.ones(3, np.float32), isa=isa)
    np.testing.assert_array_equal(got, want)


@pytest.mark.skipif(SPARSE_LAYOUT != "i8_p128m", reason="csr+int8 is stored masked only where the CPU has VBMI2")
@pytest.mark.parametrize("isa", ["avx512", "avx512vnni", "amx"])
def test_masked_and_padded_steps_agree(isa, monkeypatch):
    """The masked steps (i8_p128m) and the padded ones (PYRT_INT8_STEPS=padded) give the same bits at every
    batch (1 tile of up to 4 samples, tiles of 8, and their tails), with fewer bytes; entries whose int8 value
    is 0 drop out of the masks."""
    need(isa)
    rng = np.random.default_rng(21)
    q = rng.integers(-127, 128, size=(70, 700))
    keep = rng.random((70, 700)) < 0.15
    keep[3, 5::11] = True
    q[3, 5::11] = 0  # stored entries of value 0
    t = {"name": "w", "encoding": "csr+int8", "shape": [70, 700],
         "rowptr": np.concatenate([[0], np.cumsum(keep.sum(1))]).astype(np.uint32),
         "colidx": np.nonzero(keep)[1].astype(np.uint32), "qvalues": q[keep].astype(np.int8),
         "scales": rng.uniform(0.001, 0.02, 70).astype(np.float32)}
    masked = _core.Int8Weight(t)
    monkeypatch.setenv("PYRT_INT8_STEPS", "padded")
    padded = _core.Int8Weight(t)
    assert (masked.layout, padded.layout) == ("i8_p128m", "i8_p128") and masked.bytes < padded.bytes
    for batch in (1, 3, 8, 13, 21):
        qa, _ = acts(rng, batch, 700)
        xs = rng.uniform(0.001, 0.01, batch).astype(np.float32)
        want = padded.gemm(qa, xs, isa=isa)
        np.testing.assert_array_equal(masked.gemm(qa, xs, isa=isa), want)
        np.testing.assert_array_equal(masked.gemm(qa, xs, isa="ref"), want)
