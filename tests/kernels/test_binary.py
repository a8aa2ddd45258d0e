"""The binary kernels (csrc/kernels/binary): every ISA level equals the scalar reference bit for bit (XNOR
GEMM with real and thresholded outputs, sign), and the reference equals a numpy model of FORMAT.md 2.6;
binary weights with real activations agree within f32 rounding."""
import numpy as np
import pytest

from pyruntime import _core

ISAS = _core.supported_isas()


def pack(bits: np.ndarray) -> np.ndarray:
    """(n, k) 0/1 -> (n, ceil(k / 64)) u64, bit i of word j = column 64 j + i."""
    n, k = bits.shape
    padded = np.zeros((n, (k + 63) // 64 * 64), np.uint8)
    padded[:, :k] = bits
    return np.packbits(padded, axis=1, bitorder="little").view("<u8")


def unpack(words: np.ndarray, k: int) -> np.ndarray:
    return np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")[:, :k]


def weight(bits: np.ndarray, alpha: np.ndarray) -> dict:
    return {"name": "w", "encoding": "binary", "shape": list(bits.shape), "bits": bits.ravel(), "scales": alpha}


def dots(wbits: np.ndarray, xbits: np.ndarray) -> np.ndarray:
    s = wbits.astype(np.int64) * 2 - 1
    b = xbits.astype(np.int64) * 2 - 1
    return b @ s.T  # (batch, rows)


SHAPES = [(1, 1), (7, 63), (8, 64), (9, 65), (64, 127), (100, 200), (130, 1024), (33, 1100), (16, 4097)]


@pytest.mark.parametrize("rows,k", SHAPES)
@pytest.mark.parametrize("batch", [1, 2, 3, 4, 5, 9])
def test_xnor_real_output_equals_the_reference_bit_for_bit(rows, k, batch):
    rng = np.random.default_rng(rows * 7 + k + batch)
    wbits = rng.integers(0, 2, (rows, k), dtype=np.uint8)
    alpha = rng.random(rows).astype(np.float32) * 2
    bias = rng.standard_normal(rows).astype(np.float32)
    xbits = rng.integers(0, 2, (batch, k), dtype=np.uint8)
    w = _core.BinaryWeight(weight(wbits, alpha), "xnor", bias)
    assert w.layout == "b1_r8"
    want = (dots(wbits, xbits).astype(np.float64) * alpha + bias).astype(np.float32)  # exact: one rounding of fma
    got_ref = w.gemm(pack(xbits), isa="ref")
    np.testing.assert_array_equal(got_ref, want)
    for isa in ISAS:
        np.testing.assert_array_equal(w.gemm(pack(xbits), isa=isa), got_ref, err_msg=isa)


@pytest.mark.parametrize("rows,k", SHAPES)
@pytest.mark.parametrize("batch", [1, 3, 4, 6])
def test_xnor_thresholds_equal_the_reference_bit_for_bit(rows, k, batch):
    """Thresholds over the whole 0..K + 1 range (both ends: always +1, always -1), the bits past the last row
    zero, every level the reference's words."""
    rng = np.random.default_rng(rows * 11 + k + batch)
    wbits = rng.integers(0, 2, (rows, k), dtype=np.uint8)
    xbits = rng.integers(0, 2, (batch, k), dtype=np.uint8)
    p = (dots(wbits, xbits) + k) // 2
    t = np.clip(p[0] + rng.integers(-1, 2, rows), 0, k + 1).astype(np.float32)  # near the popcounts: both sides
    t[: min(rows, 2)] = [0, k + 1][: min(rows, 2)]
    w = _core.BinaryWeight(weight(wbits, np.ones(rows, np.float32)), "threshold", t)
    want = pack((p >= t).astype(np.uint8))
    got_ref = w.gemm(pack(xbits), isa="ref")
    np.testing.assert_array_equal(got_ref, want)
    for isa in ISAS:
        np.testing.assert_array_equal(w.gemm(pack(xbits), isa=isa), want, err_msg=isa)


@pytest.mark.parametrize("rows,k", SHAPES)
@pytest.mark.parametrize("batch", [1, 2, 5])
def test_xnor_counts_equal_the_reference(rows, k, batch):
    """The counts epilogue (what bconv2d corrects for padding): popcount(w XOR x) per row and sample."""
    rng = np.random.default_rng(rows + k * 5 + batch)
    wbits = rng.integers(0, 2, (rows, k), dtype=np.uint8)
    xbits = rng.integers(0, 2, (batch, k), dtype=np.uint8)
    w = _core.BinaryWeight(weight(wbits, np.ones(rows, np.float32)), "xnor")
    want = (k - dots(wbits, xbits)) // 2
    for isa in ISAS:
        np.testing.assert_array_equal(w.counts(pack(xbits), isa=isa), want, err_msg=isa)


@pytest.mark.parametrize("fill", [0, 1])
def test_xnor_all_agree_and_all_disagree(fill):
    """Every bit agreeing (dot = K) and every bit disagreeing (dot = -K), K not a multiple of 64: the padding
    bits of weights and inputs never count."""
    k, rows = 1000, 24
    wbits = np.full((rows, k), fill, np.uint8)
    w = _core.BinaryWeight(weight(wbits, np.ones(rows, np.float32)), "xnor")
    for isa in ISAS:
        np.testing.assert_array_equal(w.gemm(pack(np.full((2, k), fill, np.uint8)), isa=isa), np.full((2, rows), k))
        np.testing.assert_array_equal(w.gemm(pack(np.full((2, k), 1 - fill, np.uint8)), isa=isa),
                                      np.full((2, rows), -k))


def test_xnor_row_ranges_write_only_their_rows():
    rng = np.random.default_rng(5)
    rows, k = 200, 300
    wbits = rng.integers(0, 2, (rows, k), dtype=np.uint8)
    w = _core.BinaryWeight(weight(wbits, np.ones(rows, np.float32)), "xnor")
    x = pack(rng.integers(0, 2, (3, k), dtype=np.uint8))
    full = w.gemm(x, isa="ref")
    for isa in ISAS:
        part = w.gemm(x, isa=isa, rows=(64, 130))
        np.testing.assert_array_equal(part[:, 64:130], full[:, 64:130], err_msg=isa)
        assert np.isnan(part[:, :64]).all() and np.isnan(part[:, 130:]).all()
    assert w.row_splits(2) == [0, 128, 200]
    assert w.row_splits(8) == [0, 64, 128, 192, 200]


@pytest.mark.parametrize("cols", [1, 7, 8, 15, 16, 17, 63, 64, 65, 100, 784, 1030])
@pytest.mark.parametrize("scale,shift", [(1.0, 0.0), (2.0, -1.0), (-0.5, 0.25)])
def test_binarize_equals_numpy_sign_on_every_level(cols, scale, shift):
    """sign = (f32(f32(x * scale) + shift) >= 0): zeros, -0, NaN (-1), infinities, values at the threshold."""
    rng = np.random.default_rng(cols)
    x = rng.standard_normal((3, cols)).astype(np.float32)
    special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 0.5, -0.5, 1e-30], np.float32)
    x.ravel()[: min(x.size, special.size)] = special[: min(x.size, special.size)]
    v = (x * np.float32(scale)).astype(np.float32) + np.float32(shift)
    want = pack((v >= 0).astype(np.uint8))
    for isa in ISAS:
        np.testing.assert_array_equal(_core.binarize(x, scale, shift, isa=isa), want, err_msg=isa)


@pytest.mark.parametrize("c,h,w", [(1, 1, 1), (3, 5, 7), (64, 4, 4), (65, 3, 3), (130, 2, 9), (8, 1, 17)])
@pytest.mark.parametrize("scale,shift", [(1.0, 0.0), (2.0, -1.0), (-0.5, 0.25)])
def test_binarize_image_equals_numpy_sign_channels_last_on_every_level(c, h, w, scale, shift):
    """The sign of an image into b1c words (a pixel's channels in ceil(C / 64) words): 8-pixel blocks and their
    tails, one and several words a pixel, zeros, -0, NaN, infinities."""
    rng = np.random.default_rng(c * 10 + w)
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 0.5, -0.5], np.float32)
    x.ravel()[: min(x.size, special.size)] = special[: min(x.size, special.size)]
    v = (x * np.float32(scale)).astype(np.float32) + np.float32(shift)
    bits = (v >= 0).astype(np.uint8).reshape(2, c, h * w).transpose(0, 2, 1).reshape(2 * h * w, c)
    want = pack(bits).reshape(2, h * w, -1)
    for isa in ISAS:
        np.testing.assert_array_equal(_core.binarize_image(x, scale, shift, isa=isa), want, err_msg=isa)


@pytest.mark.parametrize("rows,k", [(1, 1), (9, 15), (16, 16), (33, 100), (130, 784), (12, 1025)])
@pytest.mark.parametrize("batch", [1, 3, 5])
def test_binary_weights_real_activations_agree_with_the_reference(rows, k, batch):
    rng = np.random.default_rng(rows + k * 3 + batch)
    wbits = rng.integers(0, 2, (rows, k), dtype=np.uint8)
    alpha = rng.random(rows).astype(np.float32)
    bias = rng.standard_normal(rows).astype(np.float32)
    x = rng.standard_normal((batch, k)).astype(np.float32)
    w = _core.BinaryWeight(weight(wbits, alpha), "real", bias)
    assert w.layout == "b1_rows"
    s = wbits.astype(np.float64) * 2 - 1
    want = (x.astype(np.float64) @ s.T) * alpha + bias
    tol = 1e-5 * (np.abs(x).astype(np.float64) @ np.abs(s.T) * alpha + np.abs(bias) + 1)
    for isa in ISAS:
        got = w.gemm(x, isa=isa)
        assert (np.abs(got - want) <= tol).all(), isa


def test_the_xnor_kernel_of_each_level_is_named():
    names = {isa: _core.binary_kernel(isa) for isa in ISAS}
    assert names["ref"] == "ref"
    if "avx2" in names:
        assert names["avx2"] == "avx2"
    if "avx512" in names:
        assert names["avx512"] in ("avx2", "avx512-vpopcntdq")


def test_bad_binary_tensors_are_refused_with_the_tensor_named():
    bits = np.ones((2, 3), np.uint8)
    with pytest.raises(ValueError, match="'bits'.*6 values"):
        _core.BinaryWeight({"name": "w", "encoding": "binary", "shape": [2, 4], "bits": bits.ravel(),
                            "scales": np.ones(2, np.float32)})
    with pytest.raises(ValueError, match="not 0 .* or 1"):
        _core.BinaryWeight(weight(bits * 2, np.ones(2, np.float32)))
    with pytest.raises(ValueError, match="scale of row 1"):
        _core.BinaryWeight(weight(bits, np.array([1, -1], np.float32)))
    with pytest.raises(ValueError, match="not an integer in 0..K"):
        _core.BinaryWeight(weight(bits, np.ones(2, np.float32)), "threshold", np.array([0, 5], np.float32))
