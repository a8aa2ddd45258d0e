"""Version 4 of docs/FORMAT.md (the binary encoding 3.8, sign and blinear 2.1, 2.2, 2.6): the spec reader
(spec_reader.py + spec_binary.py, written from that page alone) and the C++ reader accept and refuse the same
files, read the same model, and the runtime computes the bits the spec reader's emulation of 2.6 computes, on
every ISA and with 2 threads.
"""

from __future__ import annotations

import itertools
import math
import struct

import numpy as np
import pytest
import spec_binary as sb
import spec_reader as sr
from test_spec_reader import (
    assert_close,
    assert_same_model,
    dense_bytes,
    each_isa,
    file_bytes,
    graph_bytes,
    int8_bytes,
    pad,
    tensor_head,
    verdict,
)

import pyruntime
from pyruntime import _core

OUT0 = {"input": 0, "output": 0}
OUT1 = {"input": 0, "output": 1}
REAL = {"input": 1, "output": 0}
SIGN = {"scale": 1.0, "shift": 0.0}
KS = [1, 63, 64, 65, 127, 1000, 1024, 4097]
BATCHES = [1, 3, 70]


# ---- files built by hand from the spec -------------------------------------------------------------------


def binary_bytes(shape, bits=None, alphas=None, *, pad_bit=None, name=b"t", fill=0, aligned=True) -> bytes:
    """3.8: alphas, zero padding to 8 from the payload start, rows * ceil(cols / 64) u64 words, LSB first.
    pad_bit (row, column >= cols) sets a bit past the last column."""
    rows, cols = shape[0], math.prod(shape[1:])
    plane = np.zeros((rows, 64 * -(-cols // 64)), np.uint8)
    if bits is not None:
        plane[:, :cols] = np.asarray(bits, np.uint8).reshape(rows, cols)
    if pad_bit is not None:
        plane[pad_bit] = 1
    alphas = [0.5] * rows if alphas is None else alphas
    head = tensor_head(6, shape, name) + np.asarray(alphas, "<f4").tobytes()
    if aligned:
        head += bytes([fill]) * (-len(head) % 8)
    return head + np.packbits(plane, axis=1, bitorder="little").tobytes()


def vector_bytes(values, name: bytes = b"v") -> bytes:
    """3.1: a dense rank-1 tensor of the given values (a bias or thresholds)."""
    head = tensor_head(0, [len(values)], name)
    return head + bytes(-len(head) % 64) + np.asarray(values, "<f4").tobytes()


BITS = [1, 0, 1, 1, 0, 0, 1, 0, 0, 1, 1, 1, 1, 1, 0]  # a [3, 5] weight: K = 5, rows of 3 (alphas padded to 8)
BW = binary_bytes([3, 5], BITS, [0.5, 0.0, 2.0])


def blinear_file(weight: bytes = BW, second: bytes | None = None, attrs=OUT0, *, x=(5,), version=4) -> bytes:
    tensors = [weight] + ([second] if second is not None else [])
    node = ("blinear", [0], list(range(len(tensors))), attrs)
    return file_bytes([(1, 1, graph_bytes(list(x), [node]))] + [(2, 1, t) for t in tensors], version=version)


def sign_file(attrs=SIGN, x=(4,), version=4, tensors=()) -> bytes:
    node = ("sign", [0], list(range(len(tensors))), attrs)
    return file_bytes([(1, 1, graph_bytes(list(x), [node]))] + [(2, 1, t) for t in tensors], version=version)


def holding(tensor: bytes, version: int = 4) -> bytes:
    """A relu graph and a tensor no node uses (the file keeps it, and readers check it all the same)."""
    return file_bytes([(1, 1, graph_bytes([4], [("relu", [0], [])])), (2, 1, tensor)], version=version)


def thresholds_file(values) -> bytes:
    return blinear_file(BW, vector_bytes(values), OUT1)


CONV = {"stride": [1, 1], "padding": [0] * 4, "dilation": [1, 1], "groups": 1}
QATTRS = {"input_scale": 0.5, "output_scale": 0.0, "min": 0.0, "max": math.inf}
EDGE_CASES_V4 = {  # id -> (file, accepted): both readers must agree with the verdict
    # 1.1, 3: versions
    "binary-in-a-v4-file": (holding(BW), True),
    "binary-in-a-v3-file": (holding(BW, version=3), False),
    "binary-in-a-v1-file": (holding(BW, version=1), False),
    "blinear-in-a-v3-file": (blinear_file(version=3), False),
    "blinear-f32-weight-in-a-v3-file": (blinear_file(dense_bytes([3, 5]), version=3), False),
    "sign-in-a-v3-file": (sign_file(version=3), False),
    # 3.8: the body
    "binary-rank-1": (holding(binary_bytes([5], [1, 0, 1, 1, 0])), True),
    "binary-rank-4": (holding(binary_bytes([2, 3, 2, 2], [1, 0] * 12)), True),
    "binary-64-columns-all-ones": (holding(binary_bytes([2, 64], [1] * 128)), True),
    "binary-65-columns-all-ones": (holding(binary_bytes([2, 65], [1] * 130)), True),
    "binary-pad-bit-set": (holding(binary_bytes([3, 5], BITS, pad_bit=(1, 5))), False),
    "binary-pad-bit-63-set": (holding(binary_bytes([3, 5], BITS, pad_bit=(2, 63))), False),
    "binary-65-columns-last-pad-bit-set": (holding(binary_bytes([1, 65], [1] * 65, pad_bit=(0, 127))), False),
    "binary-nonzero-alignment-padding": (holding(binary_bytes([3, 5], BITS, fill=0xAB)), True),
    "binary-no-alignment-padding": (holding(binary_bytes([3, 5], BITS, aligned=False)), False),
    "binary-words-truncated": (holding(BW[:-8]), False),
    "binary-bytes-after-body": (holding(BW + bytes(8)), False),
    "binary-alpha-zero": (holding(binary_bytes([3, 5], BITS, [0.0, 0.0, 1.0])), True),
    "binary-alpha-nan": (holding(binary_bytes([3, 5], BITS, [1.0, math.nan, 1.0])), False),
    "binary-alpha-negative": (holding(binary_bytes([3, 5], BITS, [1.0, 1.0, -0.5])), False),
    "binary-alpha-inf": (holding(binary_bytes([3, 5], BITS, [math.inf, 1.0, 1.0])), False),
    "binary-2^24-columns": (holding(binary_bytes([1, 1 << 24])), True),
    "binary-2^24+1-columns": (holding(binary_bytes([1, (1 << 24) + 1])), False),
    # 2.1, 2.2: sign
    "sign": (sign_file(), True),
    "sign-on-an-image": (sign_file(x=(2, 3, 4)), True),
    "sign-scale-zero-negative-shift": (sign_file({"scale": 0.0, "shift": -1.0}), True),
    "sign-negative-scale": (sign_file({"scale": -2.0, "shift": 1.0}), True),
    "sign-nan-scale": (sign_file({"scale": math.nan, "shift": 0.0}), False),
    "sign-nan-shift": (sign_file({"scale": 1.0, "shift": math.nan}), False),
    "sign-inf-scale": (sign_file({"scale": math.inf, "shift": 0.0}), False),
    "sign-minus-inf-shift": (sign_file({"scale": 1.0, "shift": -math.inf}), False),
    "sign-no-attrs": (sign_file(b""), False),
    "sign-with-a-tensor": (sign_file(tensors=[dense_bytes([4])]), False),
    # 2.1, 2.2: blinear
    "blinear": (blinear_file(), True),
    "blinear-bias": (blinear_file(BW, vector_bytes([1.5, -2.0, math.nan])), True),
    "blinear-real-activations": (blinear_file(attrs=REAL), True),
    "blinear-real-activations-bias": (blinear_file(BW, vector_bytes([1.0, 2.0, 3.0]), REAL), True),
    "blinear-thresholds": (thresholds_file([0.0, 3.0, 6.0]), True),
    "blinear-thresholds-minus-zero": (thresholds_file([-0.0, 3.0, 6.0]), True),  # ASSUMPTION: -0 is 0
    "blinear-output-1-without-thresholds": (blinear_file(attrs=OUT1), False),
    "blinear-threshold-not-an-integer": (thresholds_file([0.0, 2.5, 6.0]), False),
    "blinear-threshold-K+2": (thresholds_file([0.0, 7.0, 6.0]), False),
    "blinear-threshold-minus-1": (thresholds_file([-1.0, 3.0, 6.0]), False),
    "blinear-threshold-nan": (thresholds_file([0.0, math.nan, 6.0]), False),
    "blinear-threshold-inf": (thresholds_file([0.0, math.inf, 6.0]), False),
    "blinear-thresholds-of-4-rows": (blinear_file(BW, vector_bytes([0.0, 1.0, 2.0, 3.0]), OUT1), False),
    "blinear-thresholds-rank-2": (
        blinear_file(BW, pad(tensor_head(0, [3, 1]), 64) + np.zeros(3, "<f4").tobytes(), OUT1), False),
    "blinear-thresholds-binary": (blinear_file(BW, binary_bytes([3], [1, 1, 1]), OUT1), False),
    "blinear-bias-binary": (blinear_file(BW, binary_bytes([3], [1, 1, 1])), False),
    "blinear-output-1-input-1": (blinear_file(BW, vector_bytes([0.0, 3.0, 6.0]), {"input": 1, "output": 1}),
                                 False),
    "blinear-input-2": (blinear_file(attrs={"input": 2, "output": 0}), False),
    "blinear-output-2": (blinear_file(BW, vector_bytes([0.0, 3.0, 6.0]), {"input": 0, "output": 2}), False),
    "blinear-one-attr-word": (blinear_file(attrs=struct.pack("<I", 0)), False),
    "blinear-three-tensors": (
        file_bytes([(1, 1, graph_bytes([5], [("blinear", [0], [0, 1, 2], OUT0)])), (2, 1, BW),
                    (2, 1, vector_bytes([0.0] * 3)), (2, 1, vector_bytes([0.0] * 3))], version=4), False),
    "blinear-f32-weight": (blinear_file(dense_bytes([3, 5])), False),
    "blinear-int8-weight": (blinear_file(int8_bytes([3, 5], range(-7, 8))), False),
    "blinear-rank-3-input": (blinear_file(x=(1, 1, 5)), False),
    "blinear-rank-3-weight": (blinear_file(binary_bytes([3, 5, 1], BITS)), False),  # ASSUMPTION, as linear's
    "blinear-weight-of-6-columns": (blinear_file(x=(6,)), False),
    # other ops with a binary tensor
    "linear-binary-weight": (  # 2.1: "any encoding but binary"
        file_bytes([(1, 1, graph_bytes([5], [("linear", [0], [0])])), (2, 1, BW)], version=4), False),
    "conv2d-binary-weight": (
        file_bytes([(1, 1, graph_bytes([1, 3, 3], [("conv2d", [0], [0], CONV)])),
                    (2, 1, binary_bytes([2, 1, 2, 2], [1, 0, 0, 1] * 2))], version=4), False),
    "linear-binary-bias": (
        file_bytes([(1, 1, graph_bytes([3], [("linear", [0], [0, 1])])), (2, 1, dense_bytes([3, 3])),
                    (2, 1, binary_bytes([3], [1, 1, 0]))], version=4), False),
    "qlinear-binary-weight": (
        file_bytes([(1, 1, graph_bytes([5], [("qlinear", [0], [0], QATTRS)])), (2, 1, BW)], version=4),
        False),
}


@pytest.mark.parametrize("case", list(EDGE_CASES_V4))
def test_v4_edge_cases_agree(case):
    data, accepted = EDGE_CASES_V4[case]
    cpp_ok, cpp = verdict(_core.read_model, data, pyruntime.FormatError)
    spec_ok, spec = verdict(sr.read_file, data, sr.SpecError)
    assert (cpp_ok, spec_ok) == (accepted, accepted), (cpp, spec)
    if accepted:
        assert_same_model(spec, cpp)


@pytest.mark.parametrize("case,words", [
    ("binary-in-a-v3-file", ["encoding binary needs format version 4", "the file says 3"]),
    ("blinear-f32-weight-in-a-v3-file", ["blinear", "needs format version 4", "the file says 3"]),
    ("sign-in-a-v3-file", ["sign", "needs format version 4", "the file says 3"]),
])
def test_v4_in_an_older_file_messages(case, words):
    """1.1: the refusal names the encoding or op, the version it needs and the file's (as for int8 in v2)."""
    with pytest.raises(pyruntime.FormatError) as e:
        _core.read_model(EDGE_CASES_V4[case][0])
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    with pytest.raises(sr.SpecError, match="needs format version 4, the file says 3"):
        sr.read_file(EDGE_CASES_V4[case][0])


# ---- the spec reader on its own: 3.8's layout and 2.6's arithmetic --------------------------------------


def test_spec_reader_binary_layout():
    """3.8 read by the spec reader from a hand-built file: column 64 j + i is bit i of word j, LSB first."""
    bits = np.zeros((2, 130), np.uint8)
    bits[0, [0, 63, 64, 129]] = 1
    bits[1, [1, 65, 128]] = 1
    data = holding(binary_bytes([2, 130], bits, [1.5, 0.25]))
    t = sr.read_file(data).tensors[0]
    assert (t.encoding, t.shape, t.rows, t.cols) == ("binary", [2, 130], 2, 130)
    np.testing.assert_array_equal(t.bits, bits.ravel())
    np.testing.assert_array_equal(t.scales, np.float32([1.5, 0.25]))
    words = np.frombuffer(data[-2 * 3 * 8:], "<u8").reshape(2, 3)
    assert words[0].tolist() == [1 | 1 << 63, 1, 2]
    assert words[1].tolist() == [2, 2, 1]
    want = np.where(bits == 1, 1, -1) * np.float32([[1.5], [0.25]])
    np.testing.assert_array_equal(sr.dense_matrix(t), want)


def test_spec_reader_xnor_popcount():
    """2.6: dot = K - 2 popcount(w XOR x) over the packed rows, p = (dot + K) / 2 the agreeing positions."""
    rng = np.random.default_rng(5)
    k, rows = 130, 7
    bits = rng.integers(0, 2, (rows, k)).astype(np.uint8)
    t = binary_bytes([rows, k], bits)
    data = file_bytes([(1, 1, graph_bytes([k], [("blinear", [0], [0, 1], OUT1)])), (2, 1, t),
                       (2, 1, vector_bytes(np.arange(rows) * 20.0))], version=4)
    spec = sr.read_file(data)
    x = rng.standard_normal((5, k)).astype(np.float32)
    x[0, :3] = [np.nan, -0.0, 0.0]  # NaN: -1; both zeros: +1
    xbits = (x >= 0).astype(np.uint8)
    p = k - np.array([[np.count_nonzero(xr ^ wr) for wr in bits] for xr in xbits])
    want = np.where(p >= np.arange(rows) * 20, 1, -1).astype(np.float32)
    np.testing.assert_array_equal(sr.run(spec, x), want)
    assert sb.binary_dot(x.astype(np.float64), spec.tensors[0]).tolist() == (2 * p - k).tolist()


def fma_case(scale: float, near: float) -> tuple[float, float]:
    """(scale, shift) with an f32 input x (the first from `near` up) whose product x * scale rounds to exactly
    -shift while the exact product is below it: two roundings give v = 0 (+1), one (an fma) v < 0 (-1)."""
    s, x = np.float32(scale), np.float32(near)
    while not float(x) * float(s) < float(x * s):
        x = np.nextafter(x, np.float32(np.inf))
    return scale, -float(x * s)


SIGN_AFFINES = [(1.0, 0.0), (2.0, -1.0), (0.0, 0.0), fma_case(0.1, 3.0), fma_case(-3.7, 0.2)]


def boundary_inputs(scale: float, shift: float, n: int) -> np.ndarray:
    """n f32 inputs around -shift / scale, where x * scale + shift changes sign (with fma_case's affines, one
    of them is where one and two roundings differ)."""
    x0 = np.float32(-np.float32(shift) / np.float32(scale))
    steps = np.arange(-n // 2, n // 2)
    return x0 + steps.astype(np.float32) * np.spacing(x0)


def one_rounding_differs(x: np.ndarray, scale: float, shift: float) -> bool:
    with np.errstate(invalid="ignore"):
        fma = np.where(sr.fma32(x, np.float32(scale), np.float32(shift)) >= 0, 1.0, -1.0)
    return bool((sb.sign(x, scale, shift) != fma).any())


def test_spec_reader_sign_rounds_twice():
    """2.6 sign: x * scale and + shift each rounded to f32 (not an fma); NaN gives -1, -0 gives +1."""
    scale, shift = SIGN_AFFINES[3]
    x = boundary_inputs(scale, shift, 64)
    y = sb.sign(x, scale, shift)
    two = (x * np.float32(scale)) + np.float32(shift)
    assert two.dtype == np.float32
    np.testing.assert_array_equal(y, np.where(two >= 0, 1.0, -1.0))
    assert one_rounding_differs(x, scale, shift)
    np.testing.assert_array_equal(sb.sign(np.float32([np.nan, -0.0, 0.0, -1e-45]), 1.0, 0.0), [-1, 1, 1, -1])


# ---- models the C++ writer writes, run by both ----------------------------------------------------------


def binary_tensor(rng, rows: int, cols: int, name: str) -> dict:
    alphas = (rng.random(rows) * 0.1 + 0.01).astype(np.float32)
    alphas[rows // 2] = 0.0  # a row of zeros (3.8: alphas >= 0)
    return {"name": name, "encoding": "binary", "shape": [rows, cols],
            "bits": rng.integers(0, 2, rows * cols).astype(np.uint8), "scales": alphas}


def vector(values, name: str) -> dict:
    values = np.asarray(values, np.float32)
    return {"name": name, "encoding": "dense", "shape": [values.size], "values": values}


def signs_of_input(x: np.ndarray) -> np.ndarray:
    """+1 where x >= 0, else -1 (NaN: -1), as int64."""
    with np.errstate(invalid="ignore"):
        return np.where(x >= 0, 1, -1).astype(np.int64)


def signs_of(t: dict) -> np.ndarray:
    return np.where(np.asarray(t["bits"]).reshape(t["shape"][0], -1) == 1, 1, -1)


def thresholds(rng, t: dict, b: np.ndarray) -> tuple[dict, np.ndarray]:
    """Thresholds for the binary layer `t` on the batch of signs `b`: 0 and K + 1 in rows 0 and 1, then the
    agreement count p of one sample exactly (p >= T: +1), p + 1 (-1) and values around K / 2. Returns them and
    the layer's outputs (signs) for the next layer's thresholds."""
    rows, k = t["shape"][0], t["shape"][1]
    p = (b @ signs_of(t).T + k) // 2
    r = np.arange(rows)
    sample = p[r % len(b), r]
    near = k // 2 + rng.integers(-int(math.sqrt(k)) - 1, int(math.sqrt(k)) + 2, rows)
    tv = np.select([r % 3 == 0, r % 3 == 1], [sample, sample + 1], near)
    tv[:2] = [0, k + 1]
    tv = np.clip(tv, 0, k + 1)
    return vector(tv.astype(np.float32), f"{t['name']}.T"), np.where(p >= tv, 1, -1)


def special_inputs(rng, shape) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    for start, step, v in [(0, 7, 0.0), (1, 11, -0.0), (2, 13, np.nan), (3, 29, np.inf), (4, 31, -np.inf)]:
        flat[start::step] = v
    return x


def chain_model(rng, k: int, x: np.ndarray) -> dict:
    """sign -> blinear (output 1) -> blinear (output 1) -> blinear (output 0, bias): K inputs, 130, 65, 10."""
    sizes = [k, 130, 65, 10]
    ws = [binary_tensor(rng, o, i, f"b{j}.weight") for j, (i, o) in enumerate(itertools.pairwise(sizes))]
    b = signs_of_input(x)  # sign(x) with scale 1, shift 0
    t0, b = thresholds(rng, ws[0], b)
    t1, b = thresholds(rng, ws[1], b)
    bias = vector(rng.standard_normal(10), "b2.bias")
    nodes = [{"op": "sign", "inputs": [0], "tensors": [], "attrs": SIGN},
             {"op": "blinear", "inputs": [1], "tensors": [0, 1], "attrs": OUT1},
             {"op": "blinear", "inputs": [2], "tensors": [2, 3], "attrs": OUT1},
             {"op": "blinear", "inputs": [3], "tensors": [4, 5], "attrs": OUT0}]
    return {"input_shape": [k], "nodes": nodes, "tensors": [ws[0], t0, ws[1], t1, ws[2], bias]}


def one_layer_model(rng, k: int, x: np.ndarray, attrs: dict, rows: int = 67, bias: bool = True) -> dict:
    """One blinear on the graph input (the runtime takes the signs of a float input itself)."""
    w = binary_tensor(rng, rows, k, "fc.weight")
    tensors = [w]
    if attrs == OUT1:
        tensors.append(thresholds(rng, w, signs_of_input(x))[0])
    elif bias:
        tensors.append(vector(rng.standard_normal(rows), "fc.bias"))
    node = {"op": "blinear", "inputs": [0], "tensors": list(range(len(tensors))), "attrs": attrs}
    return {"input_shape": [k], "nodes": [node], "tensors": tensors}


def write_and_read(model: dict) -> tuple[bytes, sr.SpecModel]:
    data = _core.write_model(model)
    assert data[8] == 4  # 1.1: the writer writes version 4 for a model with a binary tensor or op
    spec = sr.read_file(data)
    assert_same_model(spec, _core.read_model(data))
    return data, spec


def assert_runs_bit_for_bit(data: bytes, spec: sr.SpecModel, x: np.ndarray, batches=BATCHES) -> None:
    """The runtime's outputs equal the spec reader's exactly on every ISA, 1 and 2 threads, each batch size
    (each a prefix of x)."""
    want = sr.run(spec, x)
    m, m2 = pyruntime.load(data), pyruntime.load(data, threads=2)
    for isa in each_isa():
        for n in batches:
            np.testing.assert_array_equal(m.run(x[:n]), want[:n], err_msg=f"{isa} batch {n}")
            np.testing.assert_array_equal(m2.run(x[:n]), want[:n], err_msg=f"{isa} batch {n}, 2 threads")


@pytest.mark.parametrize("k", KS)
def test_binary_chain_bit_for_bit(k):
    """sign -> blinear (thresholds) -> blinear (thresholds) -> blinear (real output): 2.6 exactly."""
    rng = np.random.default_rng(k)
    x = special_inputs(rng, (max(BATCHES), k))
    data, spec = write_and_read(chain_model(rng, k, x))
    assert [n.op for n in spec.nodes] == ["sign", "blinear", "blinear", "blinear"]
    assert_runs_bit_for_bit(data, spec, x)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("attrs", [OUT0, OUT1], ids=["output-0", "output-1"])
def test_binary_layer_on_float_input_bit_for_bit(k, attrs):
    """An input-0 blinear on the graph's float input: its signs (NaN: -1, -0: +1), the exact integer dot, then
    fma(dot, alpha, bias) with one rounding, or p >= T (T = 0 and K + 1 included)."""
    rng = np.random.default_rng(1000 + k)
    x = special_inputs(rng, (max(BATCHES), k))
    data, spec = write_and_read(one_layer_model(rng, k, x, attrs))
    assert_runs_bit_for_bit(data, spec, x)
    y = sr.run(spec, x)
    if attrs == OUT1:
        assert (y[:, 0] == 1).all() and (y[:, 1] == -1).all()  # T = 0 and T = K + 1
        assert set(np.unique(y)) == {-1.0, 1.0}


def test_output_0_is_one_fma():
    """The output-0 epilogue: the data holds outputs where fma(dot, alpha, bias) differs from the product
    rounded and then the sum rounded, so a two-rounding runtime fails the equality."""
    rng = np.random.default_rng(77)
    k = 1000
    x = special_inputs(rng, (70, k))
    data, spec = write_and_read(one_layer_model(rng, k, x, OUT0, rows=300))
    w, bias = spec.tensors
    dot = sb.binary_dot(x.astype(np.float64), w).astype(np.float32)
    two = (dot * w.scales[None, :]) + bias.values[None, :]
    assert (sr.run(spec, x) != two).any()
    assert_runs_bit_for_bit(data, spec, x, batches=[70])


@pytest.mark.parametrize("scale,shift", SIGN_AFFINES)
def test_sign_bit_for_bit(scale, shift):
    """sign alone (its output unpacked to +-1 floats): each f32 operation rounded, inputs at the boundary where
    a single rounding (fma) would give the other sign, NaN (-1), -0 (+1), infinities."""
    rng = np.random.default_rng(3)
    edge = boundary_inputs(scale, shift, 96) if scale else np.float32([0.0, -0.0, 1.0])
    tiny = np.float32([0.5, np.nextafter(0.5, 0), 1e-45, -1e-45])
    x = np.resize(np.concatenate([edge, special_inputs(rng, 200), tiny]), (8, 41)).astype(np.float32)
    model = {"input_shape": [41], "nodes": [{"op": "sign", "inputs": [0], "tensors": [],
                                             "attrs": {"scale": scale, "shift": shift}}], "tensors": []}
    data, spec = write_and_read(model)
    if (scale, shift) in SIGN_AFFINES[3:]:
        assert one_rounding_differs(x, scale, shift)
    assert_runs_bit_for_bit(data, spec, x, batches=[1, 3, 8])


def mixed_model(rng) -> dict:
    """Bit-domain values through the other ops (a runtime keeps them packed or unpacks them):
    pixels [2, 4, 8] -> sign(2x - 1) -> max_pool2d / flatten -> two blinear (thresholds) -> add, relu,
    concat, reshape, flatten -> blinear (real output); every intermediate value is exact."""
    w1, w2 = binary_tensor(rng, 40, 64, "a.weight"), binary_tensor(rng, 40, 64, "b.weight")
    w3 = binary_tensor(rng, 136, 16 + 40 * 3, "c.weight")
    w4 = binary_tensor(rng, 12, 136, "d.weight")
    pool = {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0, 0, 0], "ceil_mode": 0}
    nodes = [
        {"op": "sign", "inputs": [0], "attrs": {"scale": 2.0, "shift": -1.0}},  # 1: [2, 4, 8]
        {"op": "flatten", "inputs": [1]},  # 2: [64]
        {"op": "blinear", "inputs": [2], "tensors": [0, 1], "attrs": OUT1},  # 3: [40]
        {"op": "blinear", "inputs": [2], "tensors": [2, 3], "attrs": OUT1},  # 4: [40]
        {"op": "add", "inputs": [3, 4]},  # 5: -2, 0, 2
        {"op": "relu", "inputs": [5]},  # 6: 0, 2
        {"op": "max_pool2d", "inputs": [1], "attrs": pool},  # 7: [2, 2, 4]
        {"op": "flatten", "inputs": [7]},  # 8: [16]
        {"op": "concat", "inputs": [8, 3, 5, 6], "attrs": {"axis": 0}},  # 9: [136]
        {"op": "blinear", "inputs": [9], "tensors": [4, 5], "attrs": OUT1},  # 10: [136]
        {"op": "reshape", "inputs": [10], "attrs": {"shape": [8, 17]}},  # 11
        {"op": "flatten", "inputs": [11]},  # 12: [136]
        {"op": "blinear", "inputs": [12], "tensors": [6, 7], "attrs": OUT0},  # 13: [12]
    ]
    k1, k3 = 64, 136
    t1 = vector(np.clip(rng.integers(k1 // 2 - 4, k1 // 2 + 5, 40), 0, k1 + 1), "a.T")
    t2 = vector(np.r_[0, k1 + 1, rng.integers(k1 // 2 - 4, k1 // 2 + 5, 38)], "b.T")
    t3 = vector(np.r_[0, k3 + 1, rng.integers(k3 // 2 - 6, k3 // 2 + 7, 134)], "c.T")
    tensors = [w1, t1, w2, t2, w3, t3, w4, vector(rng.standard_normal(12), "d.bias")]
    return {"input_shape": [2, 4, 8], "nodes": nodes, "tensors": tensors}


def test_bit_domain_through_other_ops_bit_for_bit():
    rng = np.random.default_rng(11)
    model = mixed_model(rng)
    x = rng.random((70, 2, 4, 8)).astype(np.float32)
    flat = x.reshape(-1)
    flat[::5] = 0.5  # 2 * 0.5 - 1 = 0: +1
    flat[1::9] = np.nextafter(np.float32(0.5), np.float32(0))  # 2x - 1 = -2^-24: -1
    flat[2::17] = np.nan
    flat[3::19] = -0.0
    data, spec = write_and_read(model)
    assert_runs_bit_for_bit(data, spec, x)


@pytest.mark.parametrize("k", [1, 64, 65, 1000, 4097])
@pytest.mark.parametrize("signed", [False, True], ids=["float-input", "after-sign"])
def test_real_activations_close(k, signed):
    """blinear input 1 (binary weights, real activations): alphas[r] * sum_c s * x + bias[r], the order of the
    f32 sum unspecified: equal within 1e-5 of the output's scale, on every ISA and 2 threads. After a sign
    the inputs are the signs (a packed value unpacked for a real-activation layer)."""
    rng = np.random.default_rng(2 * k + signed)
    x = rng.standard_normal((70, k)).astype(np.float32)
    model = one_layer_model(rng, k, x, REAL)
    if signed:
        model["nodes"] = [{"op": "sign", "inputs": [0], "attrs": SIGN},
                          model["nodes"][0] | {"inputs": [1]}]
    data, spec = write_and_read(model)
    want = sr.run(spec, x)
    m2 = pyruntime.load(data, threads=2)
    for _ in each_isa():
        for n in BATCHES:
            assert_close(pyruntime.load(data).run(x[:n]), want[:n])
            assert_close(m2.run(x[:n]), want[:n])


def test_real_activations_without_bias_on_an_image():
    rng = np.random.default_rng(9)
    w = binary_tensor(rng, 20, 3 * 5 * 7, "fc.weight")
    nodes = [{"op": "flatten", "inputs": [0]},
             {"op": "blinear", "inputs": [1], "tensors": [0], "attrs": REAL}]
    model = {"input_shape": [3, 5, 7], "nodes": nodes, "tensors": [w]}
    data, spec = write_and_read(model)
    x = rng.standard_normal((3, 3, 5, 7)).astype(np.float32)
    want = sr.run(spec, x)
    for _ in each_isa():
        assert_close(pyruntime.load(data).run(x), want)


def test_hand_built_v4_file_equals_writer():
    """The spec is enough to write a version-4 file: byte for byte what the C++ writer writes."""
    bits = np.array(BITS, np.uint8)
    model = {
        "input_shape": [5],
        "nodes": [{"op": "sign", "inputs": [0], "tensors": [], "attrs": {"scale": 2.0, "shift": -1.0}},
                  {"op": "blinear", "inputs": [1], "tensors": [0, 1], "attrs": OUT1}],
        "tensors": [{"name": "w", "encoding": "binary", "shape": [3, 5], "bits": bits,
                     "scales": np.float32([0.5, 0.0, 2.0])},
                    vector([0.0, 3.0, 6.0], "T")],
    }
    nodes = [("sign", [0], [], {"scale": 2.0, "shift": -1.0}), ("blinear", [1], [0, 1], OUT1)]
    sections = [(1, 1, graph_bytes([5], nodes)),
                (2, 1, binary_bytes([3, 5], bits, [0.5, 0.0, 2.0], name=b"w")),
                (2, 1, vector_bytes([0.0, 3.0, 6.0], b"T"))]
    assert _core.write_model(model) == file_bytes(sections, version=4)
