"""The graph builder: shapes, errors, from_numpy's conv tuples, the numpy reference against torch.nn.functional,
compression of conv layers, and the runtime against the reference."""
from __future__ import annotations

import math

import numpy as np
import pytest

import pyruntime
from pyruntime.convert import Graph, from_graph, from_numpy


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def _w(rng, *shape, scale=None):
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
    return (rng.standard_normal(shape) * (scale or 1 / math.sqrt(fan_in))).astype(np.float32)


def _close(a, b, rel=1e-5):
    scale = max(1.0, float(np.abs(b).max()))
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= rel * scale, np.abs(a - b).max()


# ---- shapes ------------------------------------------------------------------------------------------------
def test_builder_shapes_and_names(rng):
    g = Graph((3, 32, 32))
    assert g.input == 0 and g.shape(0) == (3, 32, 32)
    c1 = g.conv2d(g.input, _w(rng, 8, 3, 3, 3), None, padding=1)
    assert g.shape(c1) == (8, 32, 32)
    c2 = g.conv2d(c1, _w(rng, 16, 8, 3, 3), _w(rng, 16), stride=2, padding=1, name="down")
    assert g.shape(c2) == (16, 16, 16)
    dw = g.conv2d(c2, _w(rng, 16, 1, 3, 3), None, padding="same", groups=16)  # depthwise
    assert g.shape(dw) == (16, 16, 16)
    dil = g.conv2d(dw, _w(rng, 4, 16, 3, 3), None, dilation=2, padding=(0, 1, 2, 3))
    assert g.shape(dil) == (4, 16 + 2 - 4, 16 + 4 - 4)
    mp = g.max_pool2d(c2, 3, 2, 1)
    assert g.shape(mp) == (16, 8, 8)
    assert g.shape(g.max_pool2d(c2, 2)) == (16, 8, 8)  # stride defaults to the kernel
    assert g.shape(g.max_pool2d(c1, 3, 2, ceil_mode=True)) == (8, 16, 16)
    assert g.shape(g.max_pool2d(c1, 3, 2)) == (8, 15, 15)
    # ceil_mode: a window that would start in the padding is dropped (torch's rule)
    assert g.shape(g.avg_pool2d(c2, 2, 2, 1, ceil_mode=True)) == (16, 9, 9)
    assert g.shape(g.avg_pool2d(c2, (3, 1), (2, 1), (1, 0))) == (16, 8, 16)
    gp = g.global_avg_pool(c2)
    assert g.shape(gp) == (16, 1, 1)
    cat = g.concat([c2, dw, c2], axis=0)
    assert g.shape(cat) == (48, 16, 16)
    assert g.shape(g.concat([c2, dw], axis=-1)) == (16, 16, 32)
    r = g.reshape(cat, (-1, 256))
    assert g.shape(r) == (48, 256)
    s = g.add(c2, dw)
    assert g.shape(g.relu6(s)) == g.shape(g.hardtanh(s, -2, 2)) == (16, 16, 16)
    f = g.flatten(gp)
    fc = g.linear(f, _w(rng, 10, 16), _w(rng, 10))
    assert g.shape(g.softmax(fc)) == (10,)
    assert g.layer_names == ["conv1", "down", "conv3", "conv4", "fc1"]
    assert g.nodes[-2].name == "fc1" and g.output == len(g.nodes)
    clamp = [n for n in g.nodes if n.op == "clamp"]
    assert [(n.attrs["min"], n.attrs["max"]) for n in clamp] == [(0.0, 6.0), (-2.0, 2.0)]
    conv = g.nodes[dil - 1]
    assert conv.attrs == {"stride": [1, 1], "padding": [0, 1, 2, 3], "dilation": [2, 2], "groups": 1}
    assert g.nodes[dw - 1].attrs["padding"] == [1, 1, 1, 1]


def test_same_padding_puts_the_odd_pixel_bottom_right(rng):
    g = Graph((2, 9, 9))
    v = g.conv2d(g.input, _w(rng, 2, 2, 4, 2), padding="same")
    assert g.shape(v) == (2, 9, 9) and g.nodes[0].attrs["padding"] == [1, 0, 2, 1]
    v = g.conv2d(g.input, _w(rng, 2, 2, 3, 3), padding="valid")
    assert g.shape(v) == (2, 7, 7)


def test_concat_of_more_than_16_values_nests(rng):
    g = Graph((1, 2, 2))
    vs = [g.relu(g.input) for _ in range(20)]
    v = g.concat(vs, 0)
    assert g.shape(v) == (20, 2, 2)
    assert all(len(n.inputs) <= 16 for n in g.nodes if n.op == "concat")
    assert sum(n.op == "concat" for n in g.nodes) == 2


@pytest.mark.parametrize("build,exc,pattern", [
    (lambda g, w: g.conv2d(g.input, w(8, 4, 3, 3), name="c"), ValueError, r"layer 'c' \(conv2d\).*expects 4 input"),
    (lambda g, w: g.conv2d(g.input, w(8, 3, 3), name="c"), ValueError, "'c'.*4-D"),
    (lambda g, w: g.conv2d(g.input, w(8, 1, 3, 3), groups=2), ValueError, "groups=2 must divide"),
    (lambda g, w: g.conv2d(g.input, w(4, 3, 9, 3)), ValueError, "conv1.*does not fit"),
    (lambda g, w: g.conv2d(g.input, w(4, 3, 3, 3), w(5)), ValueError, "bias"),
    (lambda g, w: g.conv2d(g.input, w(4, 3, 3, 3), stride=0), ValueError, "stride must be >= 1"),
    (lambda g, w: g.conv2d(g.input, w(4, 3, 3, 3), padding="full"), ValueError, "padding"),
    (lambda g, w: g.conv2d(g.input, w(4, 3, 3, 3), padding=(1, 2, 3)), ValueError, "padding"),
    (lambda g, w: g.conv2d(g.input, np.full((4, 3, 3, 3), np.nan)), ValueError, "NaN"),
    (lambda g, w: g.max_pool2d(g.input, 2, padding=2, name="p"), ValueError, r"'p' \(max_pool2d\).*smaller than"),
    (lambda g, w: g.avg_pool2d(g.input, 9), ValueError, "does not fit"),
    (lambda g, w: g.linear(g.input, w(4, 192), name="head"), ValueError, "'head'.*flatten it first"),
    (lambda g, w: g.softmax(g.input, axis=3), ValueError, "softmax.*axis 3 out of range"),
    (lambda g, w: g.global_avg_pool(g.flatten(g.input)), pyruntime.UnsupportedError, r"not \[C, H, W\]"),
    (lambda g, w: g.add(g.input, g.max_pool2d(g.input, 2)), ValueError, "do not broadcast"),
    (lambda g, w: g.concat([g.input, g.max_pool2d(g.input, 2)], 0), ValueError, "differ outside axis 0"),
    (lambda g, w: g.concat([g.input], 0), ValueError, "at least 2"),
    (lambda g, w: g.concat([g.input, g.input], 3), ValueError, "axis 3 out of range"),
    (lambda g, w: g.reshape(g.input, (5, -1)), ValueError, "cannot reshape"),
    (lambda g, w: g.reshape(g.input, (1, 1, 1, 3, 64)), ValueError, "cannot reshape"),
    (lambda g, w: g.clamp(g.input, 1.0, 0.0), ValueError, "min <= max"),
    (lambda g, w: g.clamp(g.input, math.nan, 0.0), ValueError, "NaN"),
    (lambda g, w: g.relu(5), ValueError, "not a value"),
    (lambda g, w: [g.conv2d(g.input, w(4, 3, 1, 1), name="a"), g.conv2d(g.input, w(4, 3, 1, 1), name="a")],
     ValueError, "duplicate layer name 'a'"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_builder_errors_name_the_layer(rng, build, exc, pattern):
    g = Graph((3, 8, 8))
    with pytest.raises(exc, match=pattern):
        build(g, lambda *s: _w(rng, *s))


def test_graph_input_shape_and_dead_nodes(rng):
    for bad in [(), (0, 3), (1, 2, 3, 4, 5), 7]:
        with pytest.raises(ValueError, match="input_shape"):
            Graph(bad)
    g = Graph((3, 8, 8))
    g.relu(g.input)
    g.max_pool2d(g.input, 2)  # the relu's output is never read
    with pytest.raises(ValueError, match=r"node 0 \(relu\).*never read"):
        from_graph(g)
    with pytest.raises(ValueError, match="at least one layer"):
        from_graph(Graph((3,)))
    with pytest.raises(TypeError, match="Graph"):
        from_graph([("relu",)])


# ---- from_numpy with the new tuples -------------------------------------------------------------------------
def _lenet5(rng):
    return [
        ("conv2d", _w(rng, 6, 1, 5, 5), _w(rng, 6), {"padding": 2}),
        ("relu",),
        ("max_pool2d", 2),
        ("conv2d", _w(rng, 16, 6, 5, 5), None, "c2"),
        ("relu6",),
        ("avg_pool2d", 2, {"stride": 2, "ceil_mode": True, "count_include_pad": False}),
        ("flatten",),
        ("linear", _w(rng, 32, 400), _w(rng, 32)),
        ("hardtanh", -1.5, 1.5),
        ("linear", _w(rng, 10, 32), None, "out"),
        ("softmax",),
    ]


def test_from_numpy_conv_tuples(rng):
    cm = from_numpy(_lenet5(rng), (1, 28, 28))
    d = cm.to_dict()
    assert [n["op"] for n in d["nodes"]] == ["conv2d", "relu", "max_pool2d", "conv2d", "clamp", "avg_pool2d",
                                             "flatten", "linear", "clamp", "linear", "softmax"]
    assert d["nodes"][0]["attrs"] == {"stride": [1, 1], "padding": [2, 2, 2, 2], "dilation": [1, 1], "groups": 1}
    assert d["nodes"][5]["attrs"] == {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0, 0, 0], "ceil_mode": 1,
                                      "count_include_pad": 0}
    assert "attrs" not in d["nodes"][1]
    assert [r.name for r in cm.layers] == ["conv1", "c2", "fc1", "out"]
    assert cm.layers[0].shape == (6, 1, 5, 5) and cm.layers[0].op == "conv2d"
    assert cm.metadata["layers"] == ["conv1", "c2", "fc1", "out"]
    w = cm.dense_weights()
    assert w["c2"][0].shape == (16, 6, 5, 5) and w["c2"][1] is None
    x = rng.standard_normal((3, 1, 28, 28)).astype(np.float32)
    y = cm.run_numpy(x)
    assert y.shape == (3, 10)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="expected"):
        cm.run_numpy(x[:, :, :27])


@pytest.mark.parametrize("layers,shape,exc,pattern", [
    ([("conv2d", np.zeros((4, 3, 3, 3), np.float32), None, "c", {"stride": 2}, 5)], (3, 8, 8), TypeError, "conv2d"),
    ([("max_pool2d",)], (3, 8, 8), TypeError, "max_pool2d"),
    ([("add", 0)], (3, 8, 8), pyruntime.UnsupportedError, "Graph"),
    ([("reshape", (4, 48))], (3, 8, 8), None, None),
    ([("clamp", 0.0, 1.0), ("global_avg_pool",), ("flatten",)], (3, 8, 8), None, None),
    ([("max_pool2d", 2, {"bogus": 1})], (3, 8, 8), TypeError, "bogus"),
])
def test_from_numpy_tuple_forms(layers, shape, exc, pattern):
    if exc is None:
        assert from_numpy(layers, shape).to_dict()["nodes"]
    else:
        with pytest.raises(exc, match=pattern):
            from_numpy(layers, shape)


# ---- the numpy reference against torch.nn.functional ----------------------------------------------------
def _conv(stride, padding, dilation, groups):
    return "conv", {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}


def _max(k, s, p, ceil):
    return "max", {"kernel_size": k, "stride": s, "padding": p, "ceil_mode": ceil}


def _avg(k, s, p, ceil, count_pad):
    return "avg", {"kernel_size": k, "stride": s, "padding": p, "ceil_mode": ceil, "count_include_pad": count_pad}


torch_ops = [
    _conv(1, 0, 1, 1), _conv(2, 1, 1, 1), _conv((2, 1), (1, 0, 2, 3), (1, 2), 1), _conv(1, 2, 2, 2),
    _conv(1, 1, 1, 6),  # depthwise
    _conv(3, (0, 2), 1, 3),
    _max(2, None, 0, False), _max(3, 2, 1, True), _max((3, 2), (2, 3), (1, 0), True), _max(2, 2, 1, True),
    _avg(2, None, 0, False, True), _avg(3, 2, 1, True, True), _avg(3, 2, 1, True, False),
    _avg((2, 3), (3, 2), (1, 1), True, False), _avg(2, 2, 1, True, True),
]


@pytest.mark.parametrize("kind,kw", torch_ops, ids=[f"{k}-{i}" for i, (k, _) in enumerate(torch_ops)])
def test_reference_matches_torch_functional(rng, kind, kw):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.standard_normal((2, 6, 11, 13)).astype(np.float32)
    xt = torch.from_numpy(x)
    g = Graph((6, 11, 13))
    if kind == "conv":
        w = _w(rng, 6, 6 // kw["groups"], 3, 3)
        b = _w(rng, 6)
        g.conv2d(g.input, w, b, **kw)
        pad = g.nodes[0].attrs["padding"]
        ref = F.conv2d(F.pad(xt, (pad[1], pad[3], pad[0], pad[2])), torch.from_numpy(w), torch.from_numpy(b),
                       stride=kw["stride"], dilation=kw["dilation"], groups=kw["groups"])
    elif kind == "max":
        g.max_pool2d(g.input, **kw)
        ref = F.max_pool2d(xt, **kw)
    else:
        g.avg_pool2d(g.input, **kw)
        ref = F.avg_pool2d(xt, **kw)
    assert g.shape(g.output) == tuple(ref.shape[1:])
    # max pools on an all-negative input: padding (-inf) never wins
    for inp, out in [(x, ref.numpy())] + ([(-np.abs(x), F.max_pool2d(-xt.abs(), **kw).numpy())]
                                          if kind == "max" else []):
        got = from_graph(g).run_numpy(inp)
        np.testing.assert_allclose(got, out, rtol=1e-5, atol=1e-5)


def test_reference_elementwise_and_shape_ops_match_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.standard_normal((3, 4, 6, 6)).astype(np.float32) * 4
    xt = torch.from_numpy(x)
    g = Graph((4, 6, 6))
    a = g.relu6(g.input)
    b = g.hardtanh(g.input, -0.5, 2.0)
    c = g.clamp(g.input, min=-1.0)
    s = g.add(a, b)
    cat = g.concat([s, c, g.relu(g.input)], 0)
    cat2 = g.concat([cat, cat], 2)
    p = g.global_avg_pool(cat2)
    r = g.reshape(p, (3, 4))
    f = g.flatten(r)
    g.softmax(f)
    got = from_graph(g).run_numpy(x)
    at, bt, ct = F.relu6(xt), F.hardtanh(xt, -0.5, 2.0), torch.clamp(xt, min=-1.0)
    catt = torch.cat([at + bt, ct, F.relu(xt)], 1)
    ref = torch.softmax(F.adaptive_avg_pool2d(torch.cat([catt, catt], 3), 1).reshape(3, -1), 1)
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5, atol=1e-6)


# ---- compression of conv layers -----------------------------------------------------------------------------
def _convnet(rng, masks=False):
    g = Graph((3, 16, 16))
    v = g.relu(g.conv2d(g.input, _w(rng, 16, 3, 3, 3), _w(rng, 16), padding=1, name="stem"))
    skip = v
    v = g.relu(g.conv2d(v, _w(rng, 16, 16, 3, 3), None, padding=1, name="body"))
    v = g.conv2d(v, _w(rng, 16, 1, 3, 3), _w(rng, 16), padding=1, groups=16, name="dw")
    v = g.add(v, skip)
    v = g.max_pool2d(v, 2)
    v = g.flatten(g.global_avg_pool(v))
    g.linear(v, _w(rng, 10, 16), _w(rng, 10), name="head")
    return g


def test_conv_compression_settings_by_layer_name(rng):
    g = _convnet(rng)
    cm = from_graph(g, sparsity={"body": 0.8, "stem": 0.5}, bits={"body": 4, "dw": 2})
    by = {r.name: r for r in cm.layers}
    assert list(by) == ["stem", "body", "dw", "head"] == cm.metadata["layers"]
    assert by["body"].shape == (16, 16, 3, 3) and by["body"].op == "conv2d"
    assert by["body"].nonzeros == round(0.2 * 16 * 16 * 9)
    assert by["stem"].nonzeros == round(0.5 * 16 * 27)
    assert by["dw"].nonzeros == 16 * 9 and by["head"].bits == 32
    w = cm.dense_weights()
    assert w["body"][0].shape == (16, 16, 3, 3)
    assert np.unique(w["body"][0][w["body"][0] != 0]).size <= 16
    assert np.unique(w["dw"][0]).size <= 4
    # the pruned weights are the smallest of the whole 4-D weight
    orig = g.nodes[2].weight
    kept = np.abs(orig[w["body"][0] != 0])
    assert kept.min() >= np.abs(orig[w["body"][0] == 0]).max()
    tensors = cm.to_dict()["tensors"]
    assert tensors[0]["shape"] == [16, 3, 3, 3]
    back = pyruntime._core.read_model(cm.to_bytes())
    assert [n["op"] for n in back["nodes"]] == [n["op"] for n in cm.to_dict()["nodes"]]
    assert back["nodes"][0]["attrs"] == {"stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1}
    with pytest.raises(ValueError, match="conv9"):
        from_graph(_convnet(rng), bits={"conv9": 4})


def test_conv_masks_and_existing_zeros_are_kept(rng):
    g = _convnet(rng)
    w = g.nodes[2].weight
    w[:, :, 0, :] = 0  # the user's own pruning
    mask = np.ones(w.shape, dtype=bool)
    mask[:4] = False
    cm = from_graph(g, masks={"body": mask})
    got = cm.dense_weights()["body"][0]
    assert np.all(got[:4] == 0) and np.all(got[:, :, 0, :] == 0)
    assert cm.layers[1].nonzeros == np.count_nonzero(w[4:])
    with pytest.raises(ValueError, match="mask shape"):
        from_graph(_convnet(rng), masks={"body": mask.reshape(16, -1)})


def test_conv_speed_objective_costs_like_model_summary(rng):
    cm = from_graph(_convnet(rng), sparsity=0.7, bits=4, optimize="speed", batch=2)
    assert cm.metadata["encoding_choice"]["optimize"] == "speed"
    for r in cm.layers:
        assert r.encoding == min(r.predicted_seconds, key=r.predicted_seconds.get)
        assert "fastest at batch 2" in r.why
    # per group, one patch column per output position and sample: a 16-group depthwise conv is costed as
    # 16 calls of one row each
    from pyruntime.convert.model import ConvCost
    from pyruntime.cost import default_cost_model

    base = default_cost_model()
    dw = ConvCost(base, 16, 256)
    assert dw.seconds("dense", 16, 9, 144, batch=2) == pytest.approx(
        16 * base.seconds("dense", 1, 9, 9, batch=512))
    summary = {s["layer"]: s for s in cm.load().summary(batch=2, threads=1)}
    for r in cm.layers:
        assert summary[f"{r.name}.weight"]["predicted_s"] == pytest.approx(r.predicted_seconds[r.encoding], rel=0.05)


# ---- the runtime against the reference ----------------------------------------------------------------------
@pytest.mark.parametrize("sparsity,bits", [(None, None), (0.7, None), (0.7, 4), (None, 3)])
def test_runtime_matches_reference(rng, sparsity, bits, tmp_path):
    cm = from_graph(_convnet(rng), sparsity=sparsity, bits=bits)
    x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    ref = cm.run_numpy(x)
    _close(cm.load().run(x), ref)
    path = tmp_path / "conv.pyrt"
    cm.save(path)
    _close(pyruntime.load(path, threads=2).run(x[:1]), ref[:1])


@pytest.mark.parametrize("kind,kw", torch_ops, ids=[f"{k}-{i}" for i, (k, _) in enumerate(torch_ops)])
def test_runtime_matches_reference_per_op(rng, kind, kw):
    g = Graph((6, 11, 13))
    if kind == "conv":
        g.conv2d(g.input, _w(rng, 6, 6 // kw["groups"], 3, 3), _w(rng, 6), **kw)
    elif kind == "max":
        g.max_pool2d(g.input, **kw)
    else:
        g.avg_pool2d(g.input, **kw)
    cm = from_graph(g)
    x = rng.standard_normal((2, 6, 11, 13)).astype(np.float32)
    _close(cm.load().run(x), cm.run_numpy(x))


def test_runtime_elementwise_and_shape_ops(rng):
    g = Graph((4, 6, 6))
    a = g.relu6(g.input)
    s = g.add(a, g.clamp(g.input, -0.5, math.inf))
    cat = g.concat([s, g.relu(g.input), s], 1)
    v = g.reshape(g.avg_pool2d(cat, 2, 2, 1, ceil_mode=True, count_include_pad=False), (4, -1))
    v = g.flatten(v)
    g.softmax(g.linear(v, _w(rng, 5, g.shape(v)[0]), None))
    cm = from_graph(g)
    x = (rng.standard_normal((3, 4, 6, 6)) * 4).astype(np.float32)
    _close(cm.load().run(x), cm.run_numpy(x))


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 5), (12,)])
def test_reference_softmax_is_over_all_of_a_sample(rng, shape):
    """FORMAT.md 2.1: softmax over all elements of a sample, whatever the value's rank; the float64
    reference follows the spec (it took the last axis for rank > 1) and the runtime agrees with it."""
    from pyruntime import _core
    from pyruntime.convert.reference import forward

    nodes = [{"op": "softmax", "inputs": [0]}]
    x = (rng.standard_normal((4, *shape)) * 3).astype(np.float32)
    ref = forward(nodes, [None], x)
    np.testing.assert_allclose(ref.reshape(4, -1).sum(axis=1), 1.0, rtol=1e-12)
    flat = x.reshape(4, -1).astype(np.float64)
    e = np.exp(flat - flat.max(axis=1, keepdims=True))
    np.testing.assert_allclose(ref, (e / e.sum(axis=1, keepdims=True)).reshape(x.shape), rtol=1e-12)
    model = pyruntime.load(_core.write_model({"input_shape": list(shape), "nodes": nodes, "tensors": []}))
    _close(model.run(x), ref)
