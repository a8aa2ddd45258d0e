"""2-D convolution (csrc/kernels/conv): both methods at every ISA against a float64 numpy oracle, the fast
ISAs against the scalar reference of the same method, over encoding x geometry x batch; row ranges
(bit-identical to one call over all rows), layouts and sizes, the automatic method choice, bad input.

Tolerance as in test_kernels.py: |y - y_oracle| <= RTOL * (|W| * |x| + |bias|), the convolution of the
magnitudes, elementwise.

Methods (csrc/kernels/conv/conv2d.h):
  im2col  patches of a fixed number of output positions through PackedWeight::gemm (every layout of
          test_kernels.py); isa=ref runs the naive scalar oracle (kernels::ref::conv2d, decode_row)
  direct  per-entry input offsets over a padded, phase-split input copy; isa=ref runs its scalar twin
"""

from __future__ import annotations

import threading
from itertools import pairwise

import numpy as np
import pytest

from pyruntime import _core

RTOL = 1e-5
ISAS = tuple(i for i in ("ref", "avx2", "avx512", "neon") if i in _core.architecture_isas())
METHODS = ("im2col", "direct")

# (encoding, k): every execution layout: dense, csr, codebook 1/2/4/8-bit, csr+codebook 4/8-bit
WEIGHTS = [
    ("dense", None),
    ("csr", None),
    ("codebook", 2),
    ("codebook", 4),
    ("codebook", 16),
    ("codebook", 64),
    ("csr+codebook", 16),
    ("csr+codebook", 64),
]


@pytest.fixture(autouse=True, params=["shifted", "padded"])
def direct_planes(request):
    """Every test twice: direct convs created with the input copied into shifted planes (aligned loads, the
    default at AVX-512) and into padded planes (the default below it); the outputs must not depend on it."""
    before = _core.set_direct_planes(request.param)
    yield request.param
    _core.set_direct_planes(before)


def need(isa: str) -> None:
    if isa not in _core.supported_isas():
        pytest.skip(f"{isa} is not supported by this CPU or build (supported: {_core.supported_isas()})")


def geom(in_c, in_hw, out_c, k, *, stride=1, pad=0, dilation=1, groups=1, out_hw=None) -> dict:
    """A geometry dict; pad = (top, left) or one int; out_hw defaults to the symmetric-padding size."""
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    pt, pl = (pad, pad) if isinstance(pad, int) else pad
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    ih, iw = (in_hw, in_hw) if isinstance(in_hw, int) else in_hw
    if out_hw is None:
        out_hw = ((ih + 2 * pt - dh * (kh - 1) - 1) // sh + 1, (iw + 2 * pl - dw * (kw - 1) - 1) // sw + 1)
    return {
        "in_c": in_c, "in_h": ih, "in_w": iw, "out_c": out_c, "out_h": out_hw[0], "out_w": out_hw[1],
        "kh": kh, "kw": kw, "stride_h": sh, "stride_w": sw, "pad_top": pt, "pad_left": pl,
        "dilation_h": dh, "dilation_w": dw, "groups": groups,
    }  # fmt: skip


GEOMETRIES = {
    "3x3": geom(5, (9, 10), 6, 3, pad=1),
    "3x3_s2": geom(4, (11, 9), 6, 3, stride=2, pad=1),
    "5x5_nopad": geom(3, (12, 12), 4, 5),
    # pad top 2 / left 0, implied bottom 1 / right 2
    "asym_pad": geom(3, (7, 12), 5, (3, 5), pad=(2, 0), out_hw=(8, 10)),
    "dilation2": geom(4, 10, 5, 3, pad=2, dilation=2),
    "groups2": geom(6, (8, 7), 4, 3, pad=1, groups=2),
    "depthwise": geom(8, 12, 8, 3, pad=1, groups=8),
    "depthwise_s2": geom(6, 13, 6, 3, stride=2, pad=1, groups=6),
    "depthwise_x2": geom(4, 9, 8, 3, pad=1, groups=4),  # channel multiplier 2
    "1x1": geom(16, (7, 9), 24, 1),
    "1x1_s2": geom(8, 9, 16, 1, stride=2),
    # non-square everything: kernel, stride, dilation, padding, input
    "nonsquare": geom(3, (11, 23), 4, (2, 4), stride=(1, 3), pad=(1, 3), dilation=(2, 1)),
    "wide_rows": geom(3, (6, 40), 5, 5),  # 36 output columns: several vectors per row, a partial one
    "very_wide": geom(2, (5, 70), 3, 3, pad=1),  # 70: column blocks of 64 (AVX-512) / 32 (AVX2) + a rest
    "narrow": geom(3, (9, 3), 4, 3, pad=1),  # 3 output columns
    "wide_s2": geom(2, (6, 75), 3, 3, stride=2, pad=1),  # 38 columns of a stride-2 row split in phases
    "gaps_s3": geom(3, 13, 4, 2, stride=3),  # windows shorter than the stride: rows nobody reads
    "dilated_s2": geom(3, 15, 4, 3, stride=2, pad=2, dilation=2),
    "multi_tile": geom(32, 20, 8, 3, pad=1),  # K = 288: two patch tiles of 200 positions
    # output rows / columns whose windows lie wholly in the bottom / right padding: bias only (as torch)
    "trailing_pad": geom(3, (5, 6), 4, 3, stride=2, pad=(1, 0), out_hw=(5, 5)),
    "1x1_pad": geom(4, (3, 4), 5, 1, pad=1),
}

# geometries x weights is the full matrix for the small layers; the realistic ones get fewer weights
BIG_GEOMETRIES = {
    "lenet_conv1": geom(1, 28, 20, 5),
    "resnet_3x3_s2": geom(16, 32, 32, 3, stride=2, pad=1),
    "mobilenet_dw": geom(32, 14, 32, 3, pad=1, groups=32),
    "off32": geom(80, 30, 4, 3, pad=1),  # 80 x 32 x 32 padded floats per group: 32-bit entry offsets
    # shifted planes: 80 x 3 x 32 x 32 floats, offsets in units of 8 floats (16-bit); 200 x 3 x 32 x 32: 32-bit
    "off32_shifted": geom(200, 30, 2, 3, pad=1),
    # outputs wider than 16 with many input channels: the direct kernels run a tile block by block of input
    # channels (partial sums through y; a partial last vector, so masked partial loads)
    "channel_blocks": geom(72, (9, 37), 24, 3, pad=1),
    "channel_blocks_s2": geom(96, (12, 70), 16, 3, stride=2, pad=1),
    # narrow outputs block by whole padded planes (32 KB): 80 channels of 16 x 16 in blocks of 32, 32 and 16;
    # 160 of 9 x 9 in blocks of 101 and 59
    "channel_blocks_narrow": geom(80, 14, 8, 3, pad=1),
    "channel_blocks_7x7": geom(160, 7, 6, 3, pad=1),
    # 19 rows of 5: ymm tiles of 8, 8 and 3 rows at AVX-512, blocks of channels
    "narrow_tall": geom(48, (19, 5), 6, 3, pad=1),
}


def make_weight(helpers, rng, g: dict, encoding: str, k, density: float = 0.5) -> dict:
    shape = (g["out_c"], g["in_c"] // g["groups"], g["kh"], g["kw"])
    kw = {}
    if encoding in ("csr", "csr+codebook"):
        kw["density"] = density
    if encoding in ("codebook", "csr+codebook"):
        kw["k"] = k
    return helpers.tensor(rng, encoding, shape, **kw)


def conv_numpy(g: dict, w: np.ndarray, x: np.ndarray, bias) -> np.ndarray:
    """The formula of conv2d.h in float64: w [out_c, in_c / groups, kh, kw] dense, x [batch, in_c, h, w]."""
    x = x.astype(np.float64)
    oh, ow, kh, kw = g["out_h"], g["out_w"], g["kh"], g["kw"]
    sh, sw, dh, dw = g["stride_h"], g["stride_w"], g["dilation_h"], g["dilation_w"]
    pt, pl = g["pad_top"], g["pad_left"]
    # zero-padded input covering every tap (the implied bottom / right padding included)
    hp = max(pt + g["in_h"], (oh - 1) * sh + dh * (kh - 1) + 1)
    wp = max(pl + g["in_w"], (ow - 1) * sw + dw * (kw - 1) + 1)
    xp = np.zeros((x.shape[0], g["in_c"], hp, wp))
    xp[:, :, pt : pt + g["in_h"], pl : pl + g["in_w"]] = x
    cg, og = g["in_c"] // g["groups"], g["out_c"] // g["groups"]
    y = np.zeros((x.shape[0], g["out_c"], oh, ow))
    for grp in range(g["groups"]):
        for ky in range(kh):
            for kx in range(kw):
                taps = xp[
                    :,
                    grp * cg : (grp + 1) * cg,
                    ky * dh : ky * dh + (oh - 1) * sh + 1 : sh,
                    kx * dw : kx * dw + (ow - 1) * sw + 1 : sw,
                ]
                y[:, grp * og : (grp + 1) * og] += np.einsum(
                    "bchw,oc->bohw", taps, w[grp * og : (grp + 1) * og, :, ky, kx]
                )
    if bias is not None:
        y += bias.astype(np.float64)[None, :, None, None]
    return y


def oracle(helpers, g: dict, t: dict, x: np.ndarray, bias):
    w = helpers.densify(t).astype(np.float64).reshape(g["out_c"], g["in_c"] // g["groups"], g["kh"], g["kw"])
    want = conv_numpy(g, w, x, bias)
    scale = conv_numpy(g, np.abs(w), np.abs(x), None if bias is None else np.abs(bias))
    return want, scale


def assert_close(got: np.ndarray, want: np.ndarray, scale: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, (what, got.shape, want.shape)
    err = np.abs(got.astype(np.float64) - want)
    bound = RTOL * scale
    bad = err > bound
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        pytest.fail(
            f"{what}: {bad.sum()} of {bad.size} outputs off, first at {i}: "
            f"got {got[i]!r} want {want[i]!r} (bound {bound[i]:.3g})"
        )


def check(helpers, rng, g: dict, t: dict, method: str, isa: str, batch: int, with_bias: bool = True) -> None:
    need(isa)
    conv = _core.Conv2d(g, t, method)
    assert conv.method == method
    x = rng.standard_normal((batch, g["in_c"], g["in_h"], g["in_w"])).astype(np.float32)
    bias = rng.standard_normal(g["out_c"]).astype(np.float32) if with_bias else None
    want, scale = oracle(helpers, g, t, x, bias)
    got = conv.run(x, bias=bias, isa=isa)
    assert got.dtype == np.float32
    assert np.isfinite(got).all()
    assert_close(got, want, scale, f"{method} {isa} vs float64 oracle")
    if isa != "ref":
        ref = conv.run(x, bias=bias, isa="ref").astype(np.float64)
        assert_close(got, ref, scale, f"{method} {isa} vs {method} ref")


def wid(v) -> str:
    return f"{v[0]}" if v[1] is None else f"{v[0]}-k{v[1]}"


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("gname", list(GEOMETRIES))
@pytest.mark.parametrize("weight", WEIGHTS, ids=wid)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("isa", ISAS)
def test_conv_matches_oracle(helpers, rng, isa, method, weight, gname, batch):
    g = GEOMETRIES[gname]
    check(helpers, rng, g, make_weight(helpers, rng, g, *weight), method, isa, batch)


@pytest.mark.parametrize("gname", list(BIG_GEOMETRIES))
@pytest.mark.parametrize(
    "weight", [("dense", None), ("csr", None), ("codebook", 16), ("csr+codebook", 16)], ids=wid
)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("isa", ISAS)
def test_realistic_layers(helpers, rng, isa, method, weight, gname):
    g = BIG_GEOMETRIES[gname]
    check(helpers, rng, g, make_weight(helpers, rng, g, *weight, density=0.2), method, isa, 2)


@pytest.mark.parametrize("encoding", ["dense", "csr", "codebook", "csr+codebook"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("isa", ISAS)
def test_no_bias(helpers, rng, isa, method, encoding):
    g = GEOMETRIES["groups2"]
    check(helpers, rng, g, make_weight(helpers, rng, g, encoding, 16), method, isa, 2, with_bias=False)


@pytest.mark.parametrize("density", [0.0, 0.05, 1.0])
@pytest.mark.parametrize("encoding", ["csr", "csr+codebook"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("isa", ISAS)
def test_density(helpers, rng, isa, method, encoding, density):
    # 0: every output is its bias; empty output channels between full ones
    g = GEOMETRIES["3x3_s2"]
    check(helpers, rng, g, make_weight(helpers, rng, g, encoding, 16, density=density), method, isa, 2)


@pytest.mark.parametrize("encoding, k", [("codebook", 16), ("codebook", 200), ("csr+codebook", 16)])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("isa", ISAS)
def test_unused_infinite_centroid(helpers, rng, isa, method, encoding, k):
    # index 0 maps to +inf but no weight uses it: padding and unused lanes must not pick it up
    g = GEOMETRIES["depthwise_s2"]
    t = make_weight(helpers, rng, g, encoding, k, density=0.6)
    t["centroids"][0] = np.inf
    t["indices"] = np.maximum(t["indices"], 1).astype(np.uint8)
    check(helpers, rng, g, t, method, isa, 2)


# ---- row ranges: what one thread computes at batch 1 -----------------------------------------------


# narrow, groups2: rows of at most 8 outputs (one ymm per row at AVX-512)
@pytest.mark.parametrize("gname", ["3x3_s2", "depthwise", "multi_tile", "very_wide", "1x1", "narrow", "groups2"])
@pytest.mark.parametrize(
    "weight", [("dense", None), ("csr", None), ("codebook", 4), ("csr+codebook", 64)], ids=wid
)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("isa", ISAS)
def test_row_ranges_are_bit_identical(helpers, rng, isa, method, weight, gname):
    need(isa)
    g = GEOMETRIES[gname]
    conv = _core.Conv2d(g, make_weight(helpers, rng, g, *weight), method)
    x = rng.standard_normal((2, g["in_c"], g["in_h"], g["in_w"])).astype(np.float32)
    bias = rng.standard_normal(g["out_c"]).astype(np.float32)
    full = conv.run(x, bias, isa)
    oh = g["out_h"]
    cuts = sorted({0, oh, *rng.integers(1, oh, size=min(oh - 1, 4)).tolist()})
    got = np.zeros_like(full)
    for r0, r1 in pairwise(cuts):
        part = conv.run(x, bias, isa, rows=(r0, r1))
        assert not part[:, :, :r0].any() and not part[:, :, r1:].any()  # nothing outside its rows
        got[:, :, r0:r1] = part[:, :, r0:r1]
    np.testing.assert_array_equal(got, full)
    for r in range(oh):  # single rows too
        np.testing.assert_array_equal(conv.run(x, bias, isa, rows=(r, r + 1))[:, :, r], full[:, :, r])


def test_threads_share_a_conv(helpers, rng):
    # one Conv2d, several threads at once (each has its own scratch): the same results as alone
    g = GEOMETRIES["multi_tile"]
    convs = [_core.Conv2d(g, make_weight(helpers, rng, g, "csr", None), m) for m in METHODS]
    xs = [rng.standard_normal((2, g["in_c"], g["in_h"], g["in_w"])).astype(np.float32) for _ in range(4)]
    want = [[c.run(x) for x in xs] for c in convs]
    errors: list[str] = []

    def work(i: int) -> None:
        for _ in range(5):
            for c, wc in zip(convs, want, strict=True):
                if not np.array_equal(c.run(xs[i]), wc[i]):
                    errors.append(f"thread {i} {c.method}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


# ---- layouts, sizes, method choice ---------------------------------------------------------------


@pytest.mark.parametrize(
    "weight, im2col_layout, direct_layout",
    [
        (("dense", None), "dense_f32", "direct_f32"),
        (("csr", None), "csr_f32", "direct_csr_f32"),
        (("codebook", 2), "lut1", "direct_lut8"),
        (("codebook", 4), "lut2", "direct_lut8"),
        (("codebook", 16), "lut4", "direct_lut8"),
        (("codebook", 64), "lut8", "direct_lut8"),
        (("csr+codebook", 16), "csr_lut4", "direct_csr_lut8"),
        (("csr+codebook", 64), "csr_lut8", "direct_csr_lut8"),
    ],
    ids=lambda v: wid(v) if isinstance(v, tuple) else v,
)
def test_layouts(helpers, rng, weight, im2col_layout, direct_layout):
    g = GEOMETRIES["3x3"]
    t = make_weight(helpers, rng, g, *weight)
    assert _core.Conv2d(g, t, "im2col").layout == im2col_layout
    assert _core.Conv2d(g, t, "direct").layout == direct_layout


def test_bytes(helpers, rng):
    g = GEOMETRIES["3x3"]  # 5 x 11 x 12 padded floats per group: 16-bit offsets
    t = make_weight(helpers, rng, g, "csr", None, density=0.3)
    nnz = t["colidx"].size
    assert _core.Conv2d(g, t, "im2col").bytes == _core.PackedWeight(t).bytes
    assert _core.Conv2d(g, t, "direct").bytes == (g["out_c"] + 1) * 4 + nnz * (2 + 4)  # rowptr, offset, value
    t = make_weight(helpers, rng, g, "csr+codebook", 16, density=0.3)
    nnz = t["colidx"].size
    # rowptr, offset, index, table
    assert _core.Conv2d(g, t, "direct").bytes == (g["out_c"] + 1) * 4 + nnz * (2 + 1) + 16 * 4
    g = GEOMETRIES["groups2"]
    t = make_weight(helpers, rng, g, "dense", None)
    assert _core.Conv2d(g, t, "im2col").bytes == t["values"].size * 4  # two halves, nothing duplicated


def test_auto_method(helpers, rng):
    # conv2d.cpp: depthwise or sparse -> direct; dense / codebook: im2col from 128 output channels per group
    dw = BIG_GEOMETRIES["mobilenet_dw"]
    for enc, k in WEIGHTS:
        assert _core.Conv2d(dw, make_weight(helpers, rng, dw, enc, k)).method == "direct", enc
    pw = geom(32, 6, 128, 1)
    for enc, k in [("dense", None), ("codebook", 16), ("codebook", 2)]:
        assert _core.Conv2d(pw, make_weight(helpers, rng, pw, enc, k)).method == "im2col", enc
    for enc, k in [("csr", None), ("csr+codebook", 16)]:
        assert _core.Conv2d(pw, make_weight(helpers, rng, pw, enc, k, density=0.9)).method == "direct", enc
    small = geom(16, 8, 64, 3, pad=1)  # 64 output channels: direct even when dense
    assert _core.Conv2d(small, make_weight(helpers, rng, small, "dense", None)).method == "direct"
    grouped = geom(8, 6, 512, 1, groups=4)  # 128 output channels per group
    assert _core.Conv2d(grouped, make_weight(helpers, rng, grouped, "dense", None)).method == "im2col"
    grouped = geom(16, 6, 512, 1, groups=8)  # 64 (and 2 input channels per group)
    assert _core.Conv2d(grouped, make_weight(helpers, rng, grouped, "dense", None)).method == "direct"


def test_geometry_round_trip(helpers, rng):
    g = GEOMETRIES["nonsquare"]
    assert _core.Conv2d(g, make_weight(helpers, rng, g, "dense", None)).geometry == g


def test_rank2_weight(helpers, rng):
    # the 2-D view [out_c, in_c / groups * kh * kw] is accepted too
    g = GEOMETRIES["groups2"]
    t = make_weight(helpers, rng, g, "csr", None)
    t["shape"] = [g["out_c"], int(np.prod(t["shape"][1:]))]
    check(helpers, rng, g, t, "direct", "ref", 1)


# ---- bad input -----------------------------------------------------------------------------------


def _dense(g: dict, shape=None) -> dict:
    shape = shape or [g["out_c"], g["in_c"] // g["groups"], g["kh"], g["kw"]]
    return {"encoding": "dense", "shape": shape, "values": np.ones(int(np.prod(shape)), np.float32)}


@pytest.mark.parametrize(
    "change, match",
    [
        ({"groups": 4}, "groups"),  # 4 does not divide in_c = 6
        ({"groups": 0}, "groups"),
        ({"stride_h": 0}, "stride_h"),
        ({"dilation_w": 0}, "dilation_w"),
        ({"kh": 0}, "kh"),
        ({"out_h": 0}, "out_h"),
        ({"out_w": 3}, "out_w"),  # too small for any bottom padding >= 0
        ({"in_c": -1}, "in_c"),
        ({"pad_top": 2**32}, "pad_top"),
        ({"in_h": 2**31, "in_w": 2**31, "out_h": 2**31, "out_w": 2**31}, "large"),
        ({"bogus": 1}, "unknown key"),
    ],
)
def test_bad_geometry(change, match):
    g = dict(GEOMETRIES["groups2"], **change)
    base = GEOMETRIES["groups2"]
    with pytest.raises(ValueError, match=match):
        _core.Conv2d(g, _dense(base))


def test_missing_geometry_key():
    g = dict(GEOMETRIES["3x3"])
    del g["kw"]
    with pytest.raises(ValueError, match="kw"):
        _core.Conv2d(g, _dense(GEOMETRIES["3x3"]))


@pytest.mark.parametrize("shape", [[6, 5, 3, 4], [6, 5, 3], [6, 44], [5, 5, 3, 3], [6, 10, 3, 3]])
def test_bad_weight_shape(shape):
    with pytest.raises(ValueError, match="shape"):
        _core.Conv2d(GEOMETRIES["3x3"], _dense(GEOMETRIES["3x3"], shape))


def test_bad_method():
    with pytest.raises(ValueError, match="method"):
        _core.Conv2d(GEOMETRIES["3x3"], _dense(GEOMETRIES["3x3"]), "winograd")


@pytest.mark.parametrize("method", METHODS)
def test_bad_run_arguments(method):
    g = GEOMETRIES["3x3"]
    conv = _core.Conv2d(g, _dense(g), method)
    x = np.ones((2, 5, 9, 10), np.float32)
    for bad in [
        np.ones((2, 5, 9), np.float32),
        np.ones((2, 4, 9, 10), np.float32),
        np.ones((2, 5, 10, 9), np.float32),
    ]:
        with pytest.raises(ValueError, match="x must have shape"):
            conv.run(bad)
    with pytest.raises(ValueError, match="bias"):
        conv.run(x, bias=np.ones(5, np.float32))
    for rows in [(0, 0), (3, 2), (-1, 2), (0, 10), (1,), "ab"]:
        with pytest.raises(ValueError, match="rows"):
            conv.run(x, rows=rows)
    with pytest.raises(ValueError, match="unknown ISA"):
        conv.run(x, isa="sse9")
    assert conv.run(np.ones((0, 5, 9, 10), np.float32)).shape == (0, 6, 9, 10)


@pytest.mark.parametrize("isa", ISAS)
def test_direct_drops_the_zero_centroid_of_a_codebook(helpers, rng, isa):
    # a pruned layer stored with dense indices (the converter's smaller file at moderate sparsity): the
    # zero centroid marks the pruned weights, which the direct method drops as CSR does
    g = geom(24, 10, 128, 3, pad=1)
    t = make_weight(helpers, rng, g, "codebook", 16)
    cent = np.array(t["centroids"], np.float32)
    cent[3], cent[7] = 0.0, -0.0
    idx = np.array(t["indices"]).reshape(g["out_c"], -1)
    pruned = rng.random(idx.shape) < 0.7
    idx = np.where(pruned, np.where(rng.random(idx.shape) < 0.5, 3, 7), idx).astype(np.uint8)
    t = {**t, "centroids": cent, "indices": idx.ravel()}
    conv = _core.Conv2d(g, t)  # mostly zeros: direct, though a dense codebook of 128 channels goes im2col
    assert conv.method == "direct"
    nnz = int((cent[idx] != 0).sum())
    # rowptr; offset + index per nonzero; the table; with blocks of input channels, their entry pointers (a
    # row pointer over the channels per block)
    extra = conv.bytes - ((g["out_c"] + 1) * 4 + nnz * (2 + 1) + 16 * 4)
    assert extra == 0 or (extra % 4 == 0 and extra // 4 >= 2 * (g["out_c"] + 1) and extra // 4 % (g["out_c"] + 1) == 0), extra
    check(helpers, rng, g, t, "direct", isa, 2)
    few = np.where(rng.random(idx.shape) < 0.3, 3, np.array(make_weight(helpers, rng, g, "codebook", 16)["indices"])
                   .reshape(idx.shape)).astype(np.uint8)
    assert _core.Conv2d(g, {**t, "indices": few.ravel()}).method == "im2col"  # 30% zeros: dense rules


# direct_lanes: groups 1 only (output channels in the lanes of one weight block)
LANES_GEOMETRIES = {n: g for n, g in {**GEOMETRIES, **BIG_GEOMETRIES}.items() if g["groups"] == 1}
LANES_GEOMETRIES["rgb_7x7_s2"] = geom(3, (40, 37), 40, 7, stride=2, pad=3)  # a first conv, 40 = 2.5 blocks


@pytest.mark.parametrize("gname", sorted(LANES_GEOMETRIES))
@pytest.mark.parametrize("weight", [("dense", None), ("csr", None), ("codebook", 16), ("csr+codebook", 64)], ids=wid)
@pytest.mark.parametrize("isa", ISAS)
def test_direct_lanes_matches_oracle(helpers, rng, isa, weight, gname):
    g = LANES_GEOMETRIES[gname]
    check(helpers, rng, g, make_weight(helpers, rng, g, *weight), "direct_lanes", isa, 2)


@pytest.mark.parametrize("isa", ISAS)
def test_direct_lanes_row_ranges_and_clamp(helpers, rng, isa):
    need(isa)
    g = LANES_GEOMETRIES["rgb_7x7_s2"]
    conv = _core.Conv2d(g, make_weight(helpers, rng, g, "codebook", 16), "direct_lanes")
    assert conv.layout == "lanes_f32" and conv.bytes == 3 * 147 * 16 * 4 + 147 * 4  # 3 blocks; tap offsets
    x = rng.standard_normal((1, 3, 40, 37)).astype(np.float32)
    bias = rng.standard_normal(40).astype(np.float32)
    full = conv.run(x, bias, isa)
    got = np.zeros_like(full)
    for r0, r1 in [(0, 3), (3, 4), (4, g["out_h"])]:
        got[:, :, r0:r1] = conv.run(x, bias, isa, rows=(r0, r1))[:, :, r0:r1]
    np.testing.assert_array_equal(got, full)


def test_direct_lanes_is_the_auto_method_of_a_first_conv(helpers, rng):
    rgb = geom(3, 32, 64, 7, stride=2, pad=3)
    for enc, k in [("dense", None), ("codebook", 256)]:
        assert _core.Conv2d(rgb, make_weight(helpers, rng, rgb, enc, k)).method == "direct_lanes", enc
    assert _core.Conv2d(rgb, make_weight(helpers, rng, rgb, "csr", None, density=0.3)).method == "direct"
    deep = geom(16, 8, 64, 3, pad=1)  # more than 4 input channels: the entry-wise direct kernel
    assert _core.Conv2d(deep, make_weight(helpers, rng, deep, "dense", None)).method == "direct"
    with pytest.raises(ValueError, match="direct_lanes needs groups 1"):
        _core.Conv2d(GEOMETRIES["groups2"], make_weight(helpers, rng, GEOMETRIES["groups2"], "dense", None),
                     "direct_lanes")


def test_direct_planes_mode_is_checked(direct_planes):
    with pytest.raises(ValueError, match="unknown planes mode 'diagonal'"):
        _core.set_direct_planes("diagonal")
    assert _core.set_direct_planes(direct_planes) == direct_planes  # the setting was left as it was
