"""bconv2d, op 17 of format v4 (docs/FORMAT.md 2.1, 2.2, 2.3, 2.6): the spec reader (spec_binary.py, written
from that page alone) and the C++ reader accept and refuse the same files, and the runtime computes what the
spec reader's emulation computes: bit for bit for binary activations (input 0: a tap in the zero padding
contributes 0; output 0 one fma, output 1 `dot + K >= 2 T`), on every ISA and with 2 threads; within a float
tolerance for real activations (input 1).
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import spec_binary as sb
import spec_reader as sr
from test_spec_reader import (
    assert_close,
    assert_same_model,
    attr_words,
    dense_bytes,
    each_isa,
    file_bytes,
    graph_bytes,
    int8_bytes,
    pad,
    tensor_head,
    verdict,
)
from test_spec_reader_binary import (
    CONV,
    OUT0,
    OUT1,
    REAL,
    binary_bytes,
    signs_of_input,
    special_inputs,
    vector,
    vector_bytes,
    write_and_read,
)

import pyruntime
from pyruntime import _core

PAD1 = CONV | {"padding": [1, 1, 1, 1]}

# ---- accept / refuse: files built by hand from the spec --------------------------------------------------

CBITS = np.random.default_rng(17).integers(0, 2, 3 * 2 * 3 * 3)
CW = binary_bytes([3, 2, 3, 3], CBITS, [0.5, 0.0, 2.0])  # O = 3, C = 2, 3x3: K = 18
K = 18


def bconv_file(weight: bytes = CW, second: bytes | None = None, attrs=None, *, x=(2, 4, 5), version=4) -> bytes:
    attrs = CONV | OUT0 if attrs is None else attrs
    tensors = [weight] + ([second] if second is not None else [])
    node = ("bconv2d", [0], list(range(len(tensors))), attrs)
    return file_bytes([(1, 1, graph_bytes(list(x), [node]))] + [(2, 1, t) for t in tensors], version=version)


def cut_file(values, attrs=PAD1 | OUT1) -> bytes:
    return bconv_file(CW, vector_bytes(values), attrs)


EDGE_CASES_BCONV = {  # id -> (file, accepted): both readers must agree with the verdict
    "bconv2d": (bconv_file(), True),
    "bconv2d-1x1": (bconv_file(binary_bytes([4, 2, 1, 1], [1, 0] * 4)), True),
    "bconv2d-bias": (bconv_file(CW, vector_bytes([1.0, -0.0, math.nan])), True),
    "bconv2d-real-activations": (bconv_file(attrs=PAD1 | REAL), True),
    "bconv2d-real-activations-bias": (bconv_file(CW, vector_bytes([1.0, 2.0, 3.0]), PAD1 | REAL), True),
    "bconv2d-asymmetric-padding-strided-dilated": (
        bconv_file(attrs=OUT0 | {"stride": [2, 3], "padding": [0, 2, 1, 0], "dilation": [2, 1], "groups": 1},
                   x=(2, 5, 5)), True),
    "bconv2d-padding-beyond-the-kernel": (bconv_file(attrs=OUT0 | CONV | {"padding": [5, 0, 7, 9]}), True),
    "bconv2d-padding-65536": (bconv_file(attrs=OUT0 | CONV | {"padding": [0, 0, 0, 65536]}, x=(2, 3, 1)), True),
    "bconv2d-padding-65537": (bconv_file(attrs=OUT0 | CONV | {"padding": [0, 0, 0, 65537]}, x=(2, 3, 1)), False),
    # 2.2: thresholds, multiples of 1/2 in 0..K + 1
    "bconv2d-thresholds": (cut_file([0.0, 9.0, K + 1.0]), True),
    "bconv2d-threshold-2.5": (cut_file([2.5, 9.0, 0.5]), True),
    "bconv2d-threshold-K+0.5": (cut_file([0.0, K + 0.5, 1.0]), True),
    "bconv2d-threshold-minus-zero": (cut_file([-0.0, 9.0, 1.0]), True),  # ASSUMPTION (as blinear's): -0 is 0
    "bconv2d-threshold-2.25": (cut_file([0.0, 2.25, 1.0]), False),
    "bconv2d-threshold-K+1.5": (cut_file([0.0, K + 1.5, 1.0]), False),
    "bconv2d-threshold-K+2": (cut_file([0.0, K + 2.0, 1.0]), False),
    "bconv2d-threshold-minus-0.5": (cut_file([-0.5, 9.0, 1.0]), False),
    "bconv2d-threshold-nan": (cut_file([0.0, math.nan, 1.0]), False),
    "bconv2d-threshold-inf": (cut_file([0.0, math.inf, 1.0]), False),
    "bconv2d-threshold-1e-45": (cut_file([0.0, 1e-45, 1.0]), False),
    "bconv2d-thresholds-of-4-rows": (cut_file([0.0, 1.0, 2.0, 3.0]), False),
    "bconv2d-thresholds-rank-2": (
        bconv_file(CW, pad(tensor_head(0, [3, 1]), 64) + np.zeros(3, "<f4").tobytes(), CONV | OUT1), False),
    "bconv2d-thresholds-binary": (bconv_file(CW, binary_bytes([3], [1, 1, 1]), CONV | OUT1), False),
    "bconv2d-output-1-without-thresholds": (bconv_file(attrs=CONV | OUT1), False),
    "bconv2d-output-1-input-1": (cut_file([0.0, 9.0, 1.0], CONV | {"input": 1, "output": 1}), False),
    "bconv2d-input-2": (bconv_file(attrs=CONV | {"input": 2, "output": 0}), False),
    "bconv2d-output-2": (cut_file([0.0, 9.0, 1.0], CONV | {"input": 0, "output": 2}), False),
    # 2.2: conv2d's words with groups 1
    "bconv2d-groups-2": (  # a valid conv2d geometry (weight dim 1 = C / 2), refused for bconv2d
        bconv_file(binary_bytes([4, 1, 3, 3], [1, 0, 0] * 12), attrs=CONV | OUT0 | {"groups": 2}), False),
    "bconv2d-groups-2-full-weight": (bconv_file(attrs=CONV | OUT0 | {"groups": 2}), False),
    "bconv2d-groups-0": (bconv_file(attrs=CONV | OUT0 | {"groups": 0}), False),
    "bconv2d-stride-0": (bconv_file(attrs=CONV | OUT0 | {"stride": [0, 1]}), False),
    "bconv2d-dilation-0": (bconv_file(attrs=CONV | OUT0 | {"dilation": [1, 0]}), False),
    "bconv2d-window-too-large": (bconv_file(attrs=CONV | OUT0 | {"dilation": [2, 1]}), False),  # 5 rows > 4
    "bconv2d-window-fits-with-padding": (
        bconv_file(attrs=CONV | OUT0 | {"dilation": [2, 1], "padding": [1, 0, 0, 0]}), True),
    "bconv2d-window-too-wide": (bconv_file(x=(2, 4, 2)), False),
    "bconv2d-weight-dim-1-not-C": (bconv_file(x=(3, 4, 5)), False),
    "bconv2d-weight-rank-2": (bconv_file(binary_bytes([3, 18], CBITS)), False),
    "bconv2d-rank-1-input": (bconv_file(x=(18,)), False),
    "bconv2d-dense-weight": (bconv_file(dense_bytes([3, 2, 3, 3])), False),
    "bconv2d-int8-weight": (bconv_file(int8_bytes([3, 2, 3, 3], [1] * 54)), False),
    "bconv2d-bias-of-2-rows": (bconv_file(CW, vector_bytes([1.0, 2.0])), False),
    "bconv2d-bias-binary": (bconv_file(CW, binary_bytes([3], [1, 0, 1])), False),
    "bconv2d-three-tensors": (
        file_bytes([(1, 1, graph_bytes([2, 4, 5], [("bconv2d", [0], [0, 1, 2], CONV | OUT0)])), (2, 1, CW),
                    (2, 1, vector_bytes([0.0] * 3)), (2, 1, vector_bytes([0.0] * 3))], version=4), False),
    "bconv2d-no-tensor": (
        file_bytes([(1, 1, graph_bytes([2, 4, 5], [("bconv2d", [0], [], CONV | OUT0)]))], version=4), False),
    # 2.2: 11 words
    "bconv2d-conv2d-attrs-only": (bconv_file(attrs=attr_words("conv2d", CONV)), False),
    "bconv2d-blinear-attrs-only": (bconv_file(attrs=struct.pack("<2I", 0, 0)), False),
    "bconv2d-12-attr-words": (bconv_file(attrs=attr_words("bconv2d", CONV | OUT0) + bytes(4)), False),
    "bconv2d-no-attrs": (bconv_file(attrs=b""), False),
    # 1.1: version 4
    "bconv2d-in-a-v3-file": (bconv_file(version=3), False),
    "bconv2d-dense-weight-in-a-v3-file": (bconv_file(dense_bytes([3, 2, 3, 3]), version=3), False),
    # the value after it: [3, 4, 5] with padding 1
    "bconv2d-then-blinear": (
        file_bytes([(1, 1, graph_bytes([2, 4, 5], [("bconv2d", [0], [0, 1], PAD1 | OUT1), ("flatten", [1], []),
                                                   ("blinear", [2], [2], OUT0)])),
                    (2, 1, CW), (2, 1, vector_bytes([0.5, 9.0, 19.0])),
                    (2, 1, binary_bytes([2, 60], [1, 0] * 60))], version=4), True),
}


@pytest.mark.parametrize("case", list(EDGE_CASES_BCONV))
def test_bconv2d_edge_cases_agree(case):
    data, accepted = EDGE_CASES_BCONV[case]
    cpp_ok, cpp = verdict(_core.read_model, data, pyruntime.FormatError)
    spec_ok, spec = verdict(sr.read_file, data, sr.SpecError)
    assert (cpp_ok, spec_ok) == (accepted, accepted), (cpp, spec)
    if accepted:
        assert_same_model(spec, cpp)


def test_bconv2d_in_a_v3_file_message():
    """1.1: the refusal names the op, the version it needs and the file's (a dense weight, so that the op and
    not the binary tensor is what needs version 4)."""
    data = EDGE_CASES_BCONV["bconv2d-dense-weight-in-a-v3-file"][0]
    with pytest.raises(pyruntime.FormatError) as e:
        _core.read_model(data)
    for w in ["bconv2d", "needs format version 4", "the file says 3"]:
        assert w in str(e.value), (w, str(e.value))
    with pytest.raises(sr.SpecError, match=r"\(bconv2d\): needs format version 4, the file says 3"):
        sr.read_file(data)


# ---- an independent emulation by loops over positions and taps --------------------------------------------


def out_size(size: int, before: int, after: int, k: int, stride: int, dilation: int) -> int:
    return (size + before + after - dilation * (k - 1) - 1) // stride + 1


def window_dots(b: np.ndarray, s: np.ndarray, a: dict) -> tuple[np.ndarray, np.ndarray]:
    """2.6 input 0 by loops: b the signs [N, C, H, W] (int64; or float64 values, for input 1), s the weight's
    [O, C, kh, kw]; a tap outside the input is skipped (contributes 0). Returns dot [N, O, OH, OW] and the
    number of taps inside the input [OH, OW]."""
    n, _, h, w = b.shape
    o, c, kh, kw = s.shape
    (sh, sw), (top, left, bottom, right), (dh, dw) = a["stride"], a["padding"], a["dilation"]
    oh, ow = out_size(h, top, bottom, kh, sh, dh), out_size(w, left, right, kw, sw, dw)
    dot, inside = np.zeros((n, o, oh, ow), b.dtype), np.zeros((oh, ow), np.int64)
    for oy in range(oh):
        for ox in range(ow):
            for ky in range(kh):
                for kx in range(kw):
                    iy, ix = oy * sh - top + ky * dh, ox * sw - left + kx * dw
                    if 0 <= iy < h and 0 <= ix < w:
                        dot[:, :, oy, ox] += b[:, :, iy, ix] @ s[:, :, ky, kx].T
                        inside[oy, ox] += c
    return dot, inside


def conv_weight(rng, shape, name: str) -> dict:
    """A binary conv weight [O, C, kh, kw]: random bits, small alphas, one row's alpha 0."""
    alphas = (rng.random(shape[0]) * 0.1 + 0.01).astype(np.float32)
    alphas[shape[0] // 2] = 0.0
    return {"name": name, "encoding": "binary", "shape": list(shape),
            "bits": rng.integers(0, 2, math.prod(shape)).astype(np.uint8), "scales": alphas}


def weight_signs(t: dict) -> np.ndarray:
    return np.where(np.asarray(t["bits"]).reshape(t["shape"]) == 1, 1, -1).astype(np.int64)


def cut_thresholds(rng, dot: np.ndarray, inside: np.ndarray, k: int) -> np.ndarray:
    """Thresholds in 0..K + 1, multiples of 1/2, for a layer whose window dots on the data are `dot`: row 0 T = 0,
    row 1 T = K + 1; then in turn the exact cut of sample 0 at an unpadded position ((dot + K) / 2: +1) and half
    a step above it (-1), the same at the most padded position (half-integers where its dot's parity differs
    from K's), and random halves near K / 2."""
    o = dot.shape[1]
    full = np.argwhere(inside == k)
    py, px = full[len(full) // 2] if len(full) else np.array(inside.shape) // 2
    by, bx = np.unravel_index(np.argmin(inside), inside.shape)
    spread = 2 * int(math.sqrt(k)) + 2
    t2 = np.empty(o, np.int64)  # 2 T
    for r in range(o):
        y, x = (py, px) if r % 6 in (2, 3) else (by, bx)
        t2[r] = dot[0, r, y, x] + k + (r % 2 == 1)
        if r % 6 in (0, 1):
            t2[r] = k + rng.integers(-spread, spread + 1)
    t2[:2] = [0, 2 * (k + 1)]
    return np.clip(t2, 0, 2 * (k + 1)) / 2


def layer(rng, b: np.ndarray, o: int, kernel, a: dict, out: int, name: str):
    """A bconv2d (input 0) on the signs b: its tensors, its outputs by window_dots (int64 signs for output 1,
    float32 values for output 0), and {dot, inside, t} (t None for output 0)."""
    w = conv_weight(rng, (o, b.shape[1], *kernel), f"{name}.weight")
    s = weight_signs(w)
    dot, inside = window_dots(b, s, a)
    k = s[0].size
    if out == 1:
        t = cut_thresholds(rng, dot, inside, k)
        y = np.where(dot + k >= 2 * t[None, :, None, None], 1, -1)
        return [w, vector(t, f"{name}.T")], y, {"dot": dot, "inside": inside, "t": t}
    bias = rng.standard_normal(o).astype(np.float32)
    bias[::3] = -0.0  # fma(+0, alpha, -0) = +0 for a window wholly in the padding; alpha 0: -0 where dot < 0
    tensors = [w, vector(bias, f"{name}.bias")]
    y = sr.fma32(dot.astype(np.float32), w["scales"][None, :, None, None], bias[None, :, None, None])
    return tensors, y, {"dot": dot, "inside": inside, "t": None}


def node(op: str, inputs, tensors=(), attrs=None) -> dict:
    return {"op": op, "inputs": list(inputs), "tensors": list(tensors), "attrs": attrs}


def assert_exact(got: np.ndarray, want: np.ndarray, msg: str) -> None:
    """Equal, NaN where NaN, and -0.0 where -0.0."""
    np.testing.assert_array_equal(got, want, err_msg=msg)
    seen = ~np.isnan(want)
    assert np.array_equal(np.signbit(got[seen]), np.signbit(want[seen])), f"{msg}: the sign of a zero"


def assert_runs_exactly(data: bytes, spec: sr.SpecModel, x: np.ndarray, batches=(1, 3)) -> np.ndarray:
    """The runtime's outputs equal the spec reader's exactly on every ISA, 1 and 2 threads, each batch (a
    prefix of x). Returns the spec reader's outputs."""
    want = sr.run(spec, x)
    m, m2 = pyruntime.load(data), pyruntime.load(data, threads=2)
    for isa in each_isa():
        for n in batches:
            assert_exact(m.run(x[:n]), want[:n], f"{isa} batch {n}")
            assert_exact(m2.run(x[:n]), want[:n], f"{isa} batch {n}, 2 threads")
    return want


# ---- the spec reader on its own -------------------------------------------------------------------------


def test_spec_reader_padding_contributes_zero():
    """2.6: a 1x1 bconv2d on a 1x1 image padded by 1: the centre sums C taps, the other 8 positions none (dot 0):
    output 0 gives fma(0, alpha, bias) = bias (+0 for a -0 bias), output 1 +1 iff K >= 2 T."""
    c = 3
    bits = [1, 0, 1, 0, 0, 0]  # rows (+1, -1, +1) and (-1, -1, -1)
    w = binary_bytes([2, c, 1, 1], bits, [0.5, 2.0])
    x = np.float32([[[[1.0]], [[-1.0]], [[np.nan]]]])  # signs +1, -1, -1: dots +1 and +1
    data = bconv_file(w, vector_bytes([0.25, -0.0]), PAD1 | OUT0, x=(c, 1, 1))
    y = sr.run(sr.read_file(data), x)
    want = np.full((1, 2, 3, 3), [[[0.25]], [[0.0]]], np.float32)
    want[0, :, 1, 1] = [0.5 * 1 + 0.25, 2.0 * 1]
    assert_exact(y, want, "output 0")
    assert_runs_exactly(data, sr.read_file(data), x, [1])
    for t, border, centre in [(1.5, 1, 1), (2.0, -1, 1), (1.0, 1, 1), (0.5, 1, 1), (2.5, -1, -1)]:
        # K = 3: a border position (dot 0) is +1 iff 3 >= 2 T; the centre (dot 1) iff 4 >= 2 T
        data = bconv_file(w, vector_bytes([t, t]), PAD1 | OUT1, x=(c, 1, 1))
        y = assert_runs_exactly(data, sr.read_file(data), x, [1])
        assert (y[0, :, 0, 0] == border).all() and (y[0, :, 1, 1] == centre).all(), (t, y)


@pytest.mark.parametrize("seed", range(4))
def test_spec_reader_bconv2d_is_the_loops(seed):
    """The spec reader's im2col emulation (int64) equals window_dots' loops, on random geometries."""
    rng = np.random.default_rng(seed)
    c, o, kh, kw = (int(v) for v in rng.integers(1, 6, 4))
    ints = lambda lo, hi, n: [int(v) for v in rng.integers(lo, hi, n)]
    a = OUT0 | {"stride": ints(1, 4, 2), "dilation": ints(1, 3, 2), "padding": ints(0, 7, 4), "groups": 1}
    h, wd = (int(v) for v in rng.integers(max(kh, kw) * 2, 14, 2))
    b = signs_of_input(special_inputs(rng, (2, c, h, wd)))
    wt = conv_weight(rng, (o, c, kh, kw), "w")
    model = {"input_shape": [c, h, wd], "nodes": [node("bconv2d", [0], [0], a)], "tensors": [wt]}
    spec = sr.read_file(_core.write_model(model))
    dot, _ = window_dots(b, weight_signs(wt), a)
    got = sr.run(spec, b.astype(np.float32))
    assert_exact(got, sr.fma32(dot.astype(np.float32), wt["scales"][None, :, None, None], np.float32(0)), "dots")


# ---- one layer on the graph input, run by both ----------------------------------------------------------

GEOMETRIES = {  # id -> (kernel, stride, dilation, padding (top, left, bottom, right)) on a 7x9 image
    "1x1": ((1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),
    "3x3-pad-1": ((3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    "3x3-stride-2-asymmetric": ((3, 3), (2, 2), (1, 1), (0, 1, 2, 0)),
    "5x5-dilation-2-pad-4": ((5, 5), (1, 1), (2, 2), (4, 4, 4, 4)),
    "3x5-stride-2x1-dilation-1x2": ((3, 5), (2, 1), (1, 2), (2, 0, 1, 3)),
    "5x5-stride-2-pad-beyond-reach": ((5, 5), (2, 2), (1, 1), (6, 5, 7, 4)),  # windows wholly in the padding
    "1x1-stride-2-pad-2": ((1, 1), (2, 2), (1, 1), (2, 3, 2, 1)),
    "3x3-stride-2-dilation-2": ((3, 3), (2, 2), (2, 2), (2, 1, 0, 3)),
}
ROWS = {1: 9, 3: 16, 64: 9, 65: 33, 130: 7}  # output channels per C


def geometry(gid: str, io: dict) -> dict:
    _, stride, dilation, padding = GEOMETRIES[gid]
    return io | {"stride": list(stride), "padding": list(padding), "dilation": list(dilation), "groups": 1}


@pytest.mark.parametrize("gid", list(GEOMETRIES))
@pytest.mark.parametrize("c", list(ROWS))
@pytest.mark.parametrize("out", [0, 1], ids=["output-0", "output-1"])
def test_bconv2d_bit_for_bit(gid, c, out):
    """bconv2d input 0 on a float image (0, -0, NaN, infinities among the inputs): the runtime equals the spec
    reader's emulation exactly, and that equals the loops over positions and taps."""
    rng = np.random.default_rng([c, out, list(GEOMETRIES).index(gid)])
    a = geometry(gid, OUT1 if out else OUT0)
    x = special_inputs(rng, (3, c, 7, 9))
    tensors, want, info = layer(rng, signs_of_input(x), ROWS[c], GEOMETRIES[gid][0], a, out, "conv")
    model = {"input_shape": [c, 7, 9], "nodes": [node("bconv2d", [0], [0, 1], a)], "tensors": tensors}
    data, spec = write_and_read(model)
    y = assert_runs_exactly(data, spec, x)
    assert_exact(y, want.astype(np.float32), "the spec reader against the loops")
    if out:
        k, t = c * math.prod(GEOMETRIES[gid][0]), info["t"]
        assert (y[:, 0] == 1).all() and (y[:, 1] == -1).all()  # T = 0 and T = K + 1
        assert (info["dot"][0] + k == 2 * t[:, None, None]).any()  # an exact cut point in the data
        if (k - info["inside"].min()) % 2:  # a padded window whose dot's parity is not K's: a half-integer cut
            assert (t != np.floor(t)).any()


@pytest.mark.parametrize("gid", ["3x3-pad-1", "5x5-stride-2-pad-beyond-reach", "3x5-stride-2x1-dilation-1x2"])
@pytest.mark.parametrize("c", [1, 3, 65])
@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
def test_bconv2d_real_activations_close(gid, c, bias):
    """bconv2d input 1: conv2d (2.3) with the weight alphas[o] * s plus the bias, the f32 sum of unspecified
    order: within 1e-5 of the output's scale, every ISA, 2 threads, batches 1 and 3."""
    rng = np.random.default_rng([c, int(bias), len(gid)])
    a = geometry(gid, REAL)
    w = conv_weight(rng, (ROWS[c], c, *GEOMETRIES[gid][0]), "conv.weight")
    tensors = [w] + ([vector(rng.standard_normal(ROWS[c]), "conv.bias")] if bias else [])
    model = {"input_shape": [c, 7, 9], "nodes": [node("bconv2d", [0], range(len(tensors)), a)], "tensors": tensors}
    data, spec = write_and_read(model)
    x = rng.standard_normal((3, c, 7, 9)).astype(np.float32)
    x[:, :, 0, :3] = [0.0, -0.0, 1e-30]
    want = sr.run(spec, x)
    sums, _ = window_dots(x.astype(np.float64), weight_signs(w).astype(np.float64), a)
    ref = sums * w["scales"].astype(np.float64)[None, :, None, None]
    ref = ref + tensors[1]["values"].astype(np.float64)[None, :, None, None] if bias else ref
    np.testing.assert_allclose(want, ref.astype(np.float32), rtol=1e-6, atol=1e-6 * np.abs(ref).max())
    m, m2 = pyruntime.load(data), pyruntime.load(data, threads=2)
    for _ in each_isa():
        for n in (1, 3):
            assert_close(m.run(x[:n]), want[:n])
            assert_close(m2.run(x[:n]), want[:n])


# ---- chains ---------------------------------------------------------------------------------------------


def pixels(rng, shape) -> np.ndarray:
    """[0, 1] pixels for sign(2x - 1): 0.5 (+1), just below it (-1), NaN (-1), 0 and -0 (-1)."""
    x = rng.random(shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[::5] = 0.5
    flat[1::9] = np.nextafter(np.float32(0.5), np.float32(0))
    flat[2::17] = np.nan
    flat[3::19] = -0.0
    flat[4::23] = 0.0
    return x


def test_chain_sign_bconv_bconv_pool_blinear_bit_for_bit():
    """sign(2x - 1) on an image -> bconv2d (C 3 -> 65, thresholds) -> bconv2d (65 -> 20, strided, asymmetric
    padding, thresholds) -> max_pool2d -> flatten -> blinear (output 0, bias)."""
    rng = np.random.default_rng(21)
    x = pixels(rng, (3, 3, 12, 10))
    with np.errstate(invalid="ignore"):
        b = signs_of_input((x * np.float32(2)) + np.float32(-1))
    a1 = PAD1 | OUT1
    a2 = OUT1 | {"stride": [1, 2], "padding": [2, 0, 1, 1], "dilation": [1, 1], "groups": 1}
    t1, b, _ = layer(rng, b, 65, (3, 3), a1, 1, "c1")  # [65, 12, 10]
    t2, b, _ = layer(rng, b, 20, (3, 3), a2, 1, "c2")  # [20, 13, 5]
    assert b.shape[1:] == (20, 13, 5)
    pool = {"kernel": [2, 2], "stride": [2, 2], "padding": [1, 0, 0, 0], "ceil_mode": 0}  # [20, 7, 2]
    fc = {"name": "fc.weight", "encoding": "binary", "shape": [10, 20 * 7 * 2],
          "bits": rng.integers(0, 2, 10 * 280).astype(np.uint8), "scales": (rng.random(10) * 0.1).astype("f4")}
    nodes = [node("sign", [0], [], {"scale": 2.0, "shift": -1.0}), node("bconv2d", [1], [0, 1], a1),
             node("bconv2d", [2], [2, 3], a2), node("max_pool2d", [3], [], pool), node("flatten", [4]),
             node("blinear", [5], [4, 5], OUT0)]
    model = {"input_shape": [3, 12, 10], "nodes": nodes,
             "tensors": t1 + t2 + [fc, vector(rng.standard_normal(10), "fc.bias")]}
    data, spec = write_and_read(model)
    assert spec.value_shapes[-1] == [10] and spec.value_shapes[3] == [20, 13, 5]
    assert_runs_exactly(data, spec, x)


@pytest.mark.parametrize("shape", [[24, 4, 6], [6, 16, 6], [12, 48, 1], [4, 6, 24]])
@pytest.mark.parametrize("out", [0, 1], ids=["output-0", "output-1"])
def test_chain_bconv_reshape_bconv_bit_for_bit(shape, out):
    """bconv2d (thresholds) -> reshape (the bit-domain value's channels regrouped) -> bconv2d (output 0 or 1)."""
    rng = np.random.default_rng([len(shape), shape[0], out])
    x = special_inputs(rng, (3, 5, 8, 6))
    t1, b, _ = layer(rng, signs_of_input(x), 12, (3, 3), PAD1 | OUT1, 1, "c1")  # [12, 8, 6]
    b = b.reshape(3, *shape)
    a2 = OUT1 if out else OUT0
    a2 = a2 | {"stride": [2, 1], "padding": [1, 1, 0, 2], "dilation": [1, 1], "groups": 1}
    kernel = (3, 1) if shape[2] == 1 else (3, 3)
    t2, want, _ = layer(rng, b, 9, kernel, a2, out, "c2")
    nodes = [node("bconv2d", [0], [0, 1], PAD1 | OUT1), node("reshape", [1], [], {"shape": shape}),
             node("bconv2d", [2], [2, 3], a2)]
    data, spec = write_and_read({"input_shape": [5, 8, 6], "nodes": nodes, "tensors": t1 + t2})
    y = assert_runs_exactly(data, spec, x)
    assert_exact(y, want.astype(np.float32), "the spec reader against the loops")


def test_chain_bconv_then_real_activations_close():
    """bconv2d (thresholds, +-1) -> bconv2d input 1 (the signs as real values) -> relu: within tolerance."""
    rng = np.random.default_rng(5)
    x = special_inputs(rng, (3, 65, 6, 5))
    t1, _, _ = layer(rng, signs_of_input(x), 16, (3, 3), PAD1 | OUT1, 1, "c1")
    w2 = conv_weight(rng, (7, 16, 3, 3), "c2.weight")
    nodes = [node("bconv2d", [0], [0, 1], PAD1 | OUT1), node("bconv2d", [1], [2, 3], PAD1 | REAL),
             node("relu", [2])]
    model = {"input_shape": [65, 6, 5], "nodes": nodes, "tensors": t1 + [w2, vector(rng.standard_normal(7), "b")]}
    data, spec = write_and_read(model)
    want = sr.run(spec, x)
    m2 = pyruntime.load(data, threads=2)
    for _ in each_isa():
        for n in (1, 3):
            assert_close(pyruntime.load(data).run(x[:n]), want[:n])
            assert_close(m2.run(x[:n]), want[:n])


def test_bconv2d_writer_bytes_equal_the_spec():
    """The spec is enough to write a bconv2d file: byte for byte what the C++ writer writes."""
    bits = np.asarray(CBITS, np.uint8)
    a = PAD1 | OUT1 | {"stride": [2, 1]}
    model = {"input_shape": [2, 4, 5], "nodes": [node("bconv2d", [0], [0, 1], a)],
             "tensors": [{"name": "w", "encoding": "binary", "shape": [3, 2, 3, 3], "bits": bits,
                          "scales": np.float32([0.5, 0.0, 2.0])}, vector([0.5, 9.0, 19.0], "T")]}
    sections = [(1, 1, graph_bytes([2, 4, 5], [("bconv2d", [0], [0, 1], a)])),
                (2, 1, binary_bytes([3, 2, 3, 3], bits, [0.5, 0.0, 2.0], name=b"w")),
                (2, 1, vector_bytes([0.5, 9.0, 19.0], b"T"))]
    assert _core.write_model(model) == file_bytes(sections, version=4)
    assert sb.OPS[-1] == "bconv2d" and sr.OP_CODES["bconv2d"] == 17
