"""A relu or clamp after a conv2d or linear layer runs inside that layer's kernel, and so does a residual
add after a conv (runtime/fusion.h).

The fused model must give the same bits as the same graph with the activation left as its own step (a
reshape between the layer and the activation keeps it apart), NaN, infinities and -0 included, on every ISA
level and thread count, for both conv methods (im2col on dense weights, direct on sparse ones).
"""
from __future__ import annotations

import numpy as np
import pytest

import pyruntime
from pyruntime import _core

CONV_ATTRS = {"stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1}
ACTIVATIONS = {"relu": ("relu", None), "relu6": ("clamp", {"min": 0.0, "max": 6.0}),
               "hardtanh": ("clamp", {"min": -0.5, "max": 0.25})}


def _layer(helpers, rng, kind: str, encoding: str) -> tuple[list, dict, dict, list[int]]:
    """(input shape, the layer's node, its weight, its output shape)."""
    kw = {"density": 0.3} if "csr" in encoding else {}
    if "codebook" in encoding:
        kw["k"] = 16
    if kind == "linear":
        w = helpers.tensor(rng, encoding, (24, 40), name="w", **kw)
        return [40], {"op": "linear", "inputs": [0], "tensors": [0, 1]}, w, [24]
    groups = 6 if kind == "depthwise" else 1
    in_c = 3 if kind == "rgb" else 6  # rgb: a first conv (method direct_lanes when dense)
    w = helpers.tensor(rng, encoding, (6 if groups > 1 else 10, in_c // groups, 3, 3), name="w", **kw)
    attrs = {**CONV_ATTRS, "groups": groups}
    out_c = w["shape"][0]
    return [in_c, 9, 11], {"op": "conv2d", "inputs": [0], "tensors": [0, 1], "attrs": attrs}, w, [out_c, 9, 11]


def _models(helpers, rng, kind: str, encoding: str, activation: str) -> tuple[dict, dict]:
    """(fused, apart): layer -> activation, and layer -> reshape (same shape) -> activation."""
    in_shape, layer, w, out_shape = _layer(helpers, rng, kind, encoding)
    bias = helpers.dense(rng, (out_shape[0],), name="b")
    bias["values"][0] = -0.0  # with zero weights and negative inputs, channel 0 can come out -0
    op, attrs = ACTIVATIONS[activation]
    act = {"op": op, "inputs": [1]}
    if attrs:
        act["attrs"] = attrs
    fused = {"input_shape": in_shape, "nodes": [layer, act], "tensors": [w, bias]}
    apart = {"input_shape": in_shape,
             "nodes": [layer, {"op": "reshape", "inputs": [1], "attrs": {"shape": out_shape}}, {**act, "inputs": [2]}],
             "tensors": [w, bias]}
    return fused, apart


def _bits(y: np.ndarray) -> np.ndarray:
    b = y.view(np.uint32).copy()
    b[np.isnan(y)] = 0x7FC00000  # any NaN is a NaN: compare the rest bit for bit (the sign of 0 included)
    return b


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("encoding", ["dense", "csr", "codebook", "csr+codebook"])
@pytest.mark.parametrize("kind", ["conv", "depthwise", "rgb", "linear"])
def test_fused_activation_equals_the_separate_step(helpers, rng, kind, encoding, activation):
    fused, apart = _models(helpers, rng, kind, encoding, activation)
    if kind != "linear" and encoding in ("dense", "codebook"):
        fused["tensors"][0] = _zero_first_output(helpers, fused["tensors"][0])
        apart["tensors"][0] = fused["tensors"][0]
    fused_bytes, apart_bytes = _core.write_model(fused), _core.write_model(apart)
    m = pyruntime.load(fused_bytes)
    layers = m.layers()
    assert layers[0]["activation"] == ACTIVATIONS[activation][0] and layers[1]["method"] == "fused"
    assert pyruntime.load(apart_bytes).layers()[0]["activation"] == ""
    x = rng.standard_normal((3, *fused["input_shape"])).astype(np.float32) * 4
    x[0].flat[5] = np.nan
    x[1].flat[7] = np.inf
    x[2] = -np.abs(x[2])  # channel 0 of a zero-weight conv: -0 + (-0) products = -0 everywhere
    previous = _core.active_isa()
    try:
        for isa in _core.supported_isas():
            _core.set_isa(isa)
            want = pyruntime.load(apart_bytes).run(x)
            for threads in (1, 2):
                got = pyruntime.load(fused_bytes, threads=threads).run(x)
                np.testing.assert_array_equal(_bits(got), _bits(want), err_msg=f"{isa}, {threads} threads")
    finally:
        _core.set_isa(previous)


def _zero_first_output(helpers, t: dict) -> dict:
    """The dense / codebook weight with output channel 0 all zeros (a -0 source under relu)."""
    t = dict(t)
    if t["encoding"] == "dense":
        v = np.array(t["values"], np.float32).reshape(t["shape"][0], -1)
        v[0] = 0
        t["values"] = v.ravel()
    else:
        cent = np.array(t["centroids"], np.float32)
        idx = np.array(t["indices"]).reshape(t["shape"][0], -1)
        zero = int(np.argmin(np.abs(cent)))
        cent[zero] = 0
        idx[0] = zero
        t["centroids"], t["indices"] = cent, idx.ravel()
    return t


def test_an_output_read_twice_is_not_fused(helpers, rng):
    _, layer, w, out_shape = _layer(helpers, rng, "conv", "csr")
    bias = helpers.dense(rng, (out_shape[0],), name="b")
    model = {"input_shape": [6, 9, 11], "tensors": [w, bias],
             "nodes": [layer, {"op": "relu", "inputs": [1]}, {"op": "add", "inputs": [1, 2]}]}
    layers = pyruntime.load(_core.write_model(model)).layers()
    assert layers[0]["activation"] == "" and layers[1]["method"] == ""


def test_the_graph_output_is_never_aliased_away(helpers, rng):
    # conv is the last node: nothing to fuse; relu last: fused into the conv (the relu node is an alias of
    # the conv's output, which the run copies out)
    _, layer, w, out_shape = _layer(helpers, rng, "conv", "dense")
    bias = helpers.dense(rng, (out_shape[0],), name="b")
    model = {"input_shape": [6, 9, 11], "tensors": [w, bias], "nodes": [layer, {"op": "relu", "inputs": [1]}]}
    m = pyruntime.load(_core.write_model(model))
    x = rng.standard_normal((2, 6, 9, 11)).astype(np.float32)
    y = m.run(x)
    assert (y >= 0).all() and (y > 0).any()
    assert m.work == pyruntime.load(_core.write_model({**model, "nodes": [layer]})).work + int(np.prod(out_shape))


RESIDUAL_CASES = {  # input [c, h, w], density: a small conv; 7 blocks of input channels at 14x14 (their
    # partial sums pass through the output: the residual must be added once, on the last), split by channels
    # on two threads; 28x28, split by rows
    "small": ([6, 9, 11], 0.4),
    "blocks-14x14": ([64, 14, 14], 0.3),
    "rows-28x28": ([16, 28, 28], 0.3),
}


def _residual_models(helpers, rng, case: str, activation: str | None) -> dict[str, dict]:
    """conv -> add(conv, x) [-> activation], three ways: as it is (the conv adds x and applies the
    activation), with a reshape before the activation (the conv adds x only), and with a reshape between the
    conv and the add (nothing fused into the conv: the add applies the activation)."""
    shape, density = RESIDUAL_CASES[case]
    c = shape[0]
    w = helpers.tensor(rng, "csr", (c, c, 3, 3), name="w", density=density)
    bias = helpers.dense(rng, (c,), name="b")
    conv = {"op": "conv2d", "inputs": [0], "tensors": [0, 1], "attrs": CONV_ATTRS}
    reshape = {"op": "reshape", "attrs": {"shape": shape}}
    act = []
    if activation:
        op, attrs = ACTIVATIONS[activation]
        act = [{"op": op, **({"attrs": attrs} if attrs else {})}]
    fused = [conv, {"op": "add", "inputs": [1, 0]}] + [{**a, "inputs": [2]} for a in act]
    add_only = [conv, {"op": "add", "inputs": [1, 0]}] + ([{**reshape, "inputs": [2]}] + [{**a, "inputs": [3]} for a in act]
                                                           if act else [])
    apart = [conv, {**reshape, "inputs": [1]}, {"op": "add", "inputs": [0, 2]}] + [{**a, "inputs": [3]} for a in act]
    return {name: {"input_shape": shape, "tensors": [w, bias], "nodes": nodes}
            for name, nodes in (("fused", fused), ("add_only", add_only), ("apart", apart))}


@pytest.mark.parametrize("activation", [None, *sorted(ACTIVATIONS)])
@pytest.mark.parametrize("case", sorted(RESIDUAL_CASES))
def test_residual_add_and_its_activation_are_fused_into_the_conv(helpers, rng, case, activation):
    models = _residual_models(helpers, rng, case, activation)
    layers = pyruntime.load(_core.write_model(models["fused"])).layers()
    op = ACTIVATIONS[activation][0] if activation else None
    assert layers[0]["method"] == "direct" and layers[0]["activation"] == ("add+" + op if op else "add")
    assert all(lay["method"] == "fused" for lay in layers[1:])
    layers = pyruntime.load(_core.write_model(models["add_only"])).layers()
    assert layers[0]["activation"] == "add" and layers[1]["method"] == "fused"
    layers = pyruntime.load(_core.write_model(models["apart"])).layers()
    assert layers[0]["activation"] == "" and layers[2]["activation"] == (op or "")  # the add's own fusion
    x = rng.standard_normal((2, *RESIDUAL_CASES[case][0])).astype(np.float32) * 3
    x[0, 0, 0, :3] = [np.nan, np.inf, -np.inf]
    x[1, 1] = -0.0  # -0 + -0 = -0 where the conv adds nothing: relu keeps it
    previous = _core.active_isa()
    try:
        for isa in _core.supported_isas():
            _core.set_isa(isa)
            want = pyruntime.load(_core.write_model(models["apart"]), threads=1).run(x)
            for name in ("fused", "add_only"):
                for threads in (1, 2):
                    m = pyruntime.load(_core.write_model(models[name]), threads=threads)
                    np.testing.assert_array_equal(_bits(m.run(x)), _bits(want), err_msg=f"{name} {isa} {threads}")
                    np.testing.assert_array_equal(_bits(m.run(x[:1])), _bits(want[:1]), err_msg=f"{name} {isa} b1")
    finally:
        _core.set_isa(previous)


def test_residual_adds_that_cannot_be_fused_stay_adds(helpers, rng):
    w = helpers.tensor(rng, "csr", (6, 6, 3, 3), name="w", density=0.4)
    w2 = helpers.tensor(rng, "csr", (6, 6, 3, 3), name="w2", density=0.4)
    bias = helpers.dense(rng, (6,), name="b")
    conv = {"op": "conv2d", "inputs": [0], "tensors": [0, 1], "attrs": CONV_ATTRS}
    conv2 = {"op": "conv2d", "inputs": [0], "tensors": [2, 1], "attrs": CONV_ATTRS}
    graphs = {
        # the other operand is made after the conv (the conv could not read it), and not by a conv
        "residual-later": [conv, conv2, {"op": "relu", "inputs": [2]}, {"op": "add", "inputs": [1, 3]}],
        # the conv's output is read twice
        "read-twice": [conv, {"op": "add", "inputs": [1, 0]}, {"op": "add", "inputs": [2, 1]}],
        # a broadcast add (the other operand has another shape)
        "broadcast": [conv, {"op": "reshape", "inputs": [0], "attrs": {"shape": [6, 9, 11]}},
                      {"op": "global_avg_pool", "inputs": [2]}, {"op": "add", "inputs": [1, 3]}],
    }
    x = rng.standard_normal((1, 6, 9, 11)).astype(np.float32)
    for name, nodes in graphs.items():
        m = pyruntime.load(_core.write_model({"input_shape": [6, 9, 11], "tensors": [w, bias, w2], "nodes": nodes}))
        layers = m.layers()
        adds = [lay for lay in layers if lay["op"] == "add"]
        assert adds and all(lay["method"] != "fused" for lay in adds), name
        assert all("add" not in lay["activation"] for lay in layers), name
        assert np.isfinite(m.run(x)).all()
