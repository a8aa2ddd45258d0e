"""Bit-packed values in the plan (docs/RUNTIME.md "Typed values"): every conversion between f32, i8, b1 (flat
signs) and b1c (channels-last signs) gives the signs of FORMAT.md 2.6, and the ops that keep bits (sign,
max_pool2d, flatten, reshape, thresholded layers) keep them, on every ISA level and thread count."""
import numpy as np
import pytest

import pyruntime
from pyruntime import _core


def sign(x):
    return np.where(x >= 0, 1.0, -1.0).astype(np.float32)  # NaN -> -1


def binary(name, shape, rng, alpha=None):
    return {"name": name, "encoding": "binary", "shape": shape, "bits": rng.integers(0, 2, int(np.prod(shape))),
            "scales": np.ones(shape[0], np.float32) if alpha is None else alpha}


def signs_of(t):
    return (t["bits"].reshape(t["shape"]).astype(np.float64) * 2 - 1) * t["scales"].reshape(
        [-1] + [1] * (len(t["shape"]) - 1))


def run_everywhere(data, x):
    outs = []
    previous = _core.active_isa()
    try:
        for isa in _core.supported_isas():
            _core.set_isa(isa)
            for threads in (1, 2):
                outs.append(pyruntime.load(data, threads=threads).run(x))
    finally:
        _core.set_isa(previous)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    return outs[0]


def node(op, inputs, tensors=(), **attrs):
    return {"op": op, "inputs": list(inputs), "tensors": list(tensors), "attrs": attrs}


SIGN = {"scale": 1.0, "shift": 0.0}
CONV = {"stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1}


def test_an_image_sign_stays_bits_through_pool_flatten_and_reshape():
    rng = np.random.default_rng(0)
    c, h, w = 70, 6, 6
    fc = binary("fc", [5, c * 9], rng)
    nodes = [node("sign", [0], **SIGN),
             node("max_pool2d", [1], kernel=[2, 2], stride=[2, 2], padding=[0] * 4, ceil_mode=0),
             node("flatten", [2]),
             node("blinear", [3], [0], input=0, output=0)]
    data = _core.write_model({"input_shape": [c, h, w], "nodes": nodes, "tensors": [fc]})
    m = pyruntime.load(data)
    assert [layer["output_type"] for layer in m.layers()] == ["b1c", "b1c", "b1c", "f32"]
    x = rng.standard_normal((3, c, h, w)).astype(np.float32)
    x[0, :2, 0, 0] = [np.nan, -0.0]
    pooled = sign(x).reshape(3, c, 3, 2, 3, 2).max(axis=(3, 5)).reshape(3, -1)
    np.testing.assert_array_equal(run_everywhere(data, x), (pooled @ signs_of(fc).T).astype(np.float32))


def test_a_reshaped_b1c_value_feeds_a_convolution_of_other_channels():
    """sign of [8, 4, 4] -> reshape [32, 2, 2] -> bconv2d: the bits move to the new channel layout."""
    rng = np.random.default_rng(1)
    w = binary("conv", [3, 32, 1, 1], rng)
    nodes = [node("sign", [0], **SIGN), node("reshape", [1], shape=[32, 2, 2, 0]),
             node("bconv2d", [2], [0], **(CONV | {"padding": [0] * 4, "input": 0, "output": 0}))]
    data = _core.write_model({"input_shape": [8, 4, 4], "nodes": nodes, "tensors": [w]})
    x = rng.standard_normal((2, 8, 4, 4)).astype(np.float32)
    s = sign(x).reshape(2, 32, 4)
    want = np.einsum("bcp,oc->bop", s, signs_of(w)[:, :, 0, 0]).reshape(2, 3, 2, 2).astype(np.float32)
    np.testing.assert_array_equal(run_everywhere(data, x), want)


def test_flat_bits_to_int8_and_back():
    """sign -> qlinear (b1 -> i8: +-1 quantized with the input scale) and qlinear -> blinear (i8 -> b1: q >= 0)."""
    rng = np.random.default_rng(2)
    k, o = 40, 24
    q = rng.integers(-127, 128, (o, k))
    wq = {"name": "q", "encoding": "int8", "shape": [o, k], "qvalues": q, "scales": np.full(o, 0.01, np.float32)}
    fb = binary("b", [3, o], rng)
    nodes = [node("sign", [0], **SIGN),
             node("qlinear", [1], [0], input_scale=0.5, output_scale=0.25, min=-1e9, max=1e9),
             node("blinear", [2], [1], input=0, output=0)]
    data = _core.write_model({"input_shape": [k], "nodes": nodes, "tensors": [wq, fb]})
    m = pyruntime.load(data)
    assert [layer["output_type"] for layer in m.layers()] == ["b1", "i8", "f32"]
    x = rng.standard_normal((4, k)).astype(np.float32)
    qx = np.where(x >= 0, 2, -2)  # +-1 quantized with scale 0.5
    v = (qx @ q.T).astype(np.float32) * np.float32(0.5 * 0.01)
    hidden = np.where(np.clip(np.round(v / np.float32(0.25)), -127, 127) >= 0, 1.0, -1.0)
    np.testing.assert_array_equal(run_everywhere(data, x), (hidden @ signs_of(fb).T).astype(np.float32))


def test_thresholded_bits_read_as_floats_by_a_float_layer():
    """blinear (output 1) -> linear: the plan unpacks b1 to +-1 floats."""
    rng = np.random.default_rng(3)
    k, o = 100, 65
    fb = binary("b", [o, k], rng)
    t = rng.integers(0, k + 2, o).astype(np.float32)
    wl = rng.standard_normal((2, o)).astype(np.float32)
    nodes = [node("blinear", [0], [0, 1], input=0, output=1), node("linear", [1], [2])]
    tensors = [fb, {"name": "t", "shape": [o], "values": t}, {"name": "l", "shape": [2, o], "values": wl}]
    data = _core.write_model({"input_shape": [k], "nodes": nodes, "tensors": tensors})
    x = rng.standard_normal((5, k)).astype(np.float32)
    p = (sign(x) @ signs_of(fb).T + k) / 2
    hidden = np.where(p >= t, 1.0, -1.0)
    got = pyruntime.load(data).run(x)
    np.testing.assert_allclose(got, hidden @ wl.T.astype(np.float64), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("c", [1, 64, 65])
def test_a_binary_convolution_reads_an_int8_image(c):
    """qconv2d (i8) -> bconv2d: i8 -> b1c takes q >= 0."""
    rng = np.random.default_rng(c)
    q = rng.integers(-127, 128, (c, 2, 1, 1))
    wq = {"name": "q", "encoding": "int8", "shape": [c, 2, 1, 1], "qvalues": q, "scales": np.full(c, 0.02, np.float32)}
    wb = binary("b", [4, c, 3, 3], rng)
    qattrs = CONV | {"padding": [0] * 4, "input_scale": 0.1, "output_scale": 0.05, "min": -1e9, "max": 1e9}
    nodes = [node("qconv2d", [0], [0], **qattrs), node("bconv2d", [1], [1], **(CONV | {"input": 0, "output": 0}))]
    data = _core.write_model({"input_shape": [2, 5, 5], "nodes": nodes, "tensors": [wq, wb]})
    m = pyruntime.load(data)
    assert [layer["output_type"] for layer in m.layers()] == ["i8", "f32"]
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    qx = np.clip(np.round(x / np.float32(0.1)), -127, 127)
    v = np.einsum("bchw,oc->bohw", qx, q[:, :, 0, 0]).astype(np.float32) * np.float32(0.1 * 0.02)
    s = np.pad(np.where(np.round(v / np.float32(0.05)) >= 0, 1.0, -1.0), ((0, 0), (0, 0), (1, 1), (1, 1)))
    ws = signs_of(wb)
    want = sum(np.einsum("bchw,oc->bohw", s[:, :, i:i + 5, j:j + 5], ws[:, :, i, j]) for i in range(3) for j in range(3))
    np.testing.assert_array_equal(run_everywhere(data, x), want.astype(np.float32))
