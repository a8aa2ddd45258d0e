"""int8 in the converter (pyruntime.convert.quantize and from_numpy / from_graph / from_torch's quantize=):
per-channel weight quantization, dynamic and static layers, calibration, the runtime against the converter's
reference bit for bit, saturation outside the calibrated range, and every bad argument refused by name."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from pyruntime.convert import Graph, from_graph, from_numpy
from pyruntime.convert.quantize import Int8Params, fma32, int8_linear, quantize_weight


def _mlp(rng, sizes=(64, 48, 32, 10), softmax=False):
    layers: list[tuple] = [("flatten",)]
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(("linear", (rng.standard_normal((b, a)) / np.sqrt(a)).astype(np.float32),
                       (0.1 * rng.standard_normal(b)).astype(np.float32)))
        if i < len(sizes) - 2:
            layers.append(("relu",))
    if softmax:
        layers.append(("softmax",))
    return layers



@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(5)


def test_quantize_weight_per_channel(rng):
    w = rng.standard_normal((6, 20)).astype(np.float32)
    w[2] = 0.0
    keep = rng.random((6, 20)) < 0.7
    q, s = quantize_weight(w, keep)
    assert q.dtype == np.int8 and s.dtype == np.float32
    assert s[2] == 0 and (q[2] == 0).all()
    kept = np.where(keep, w, 0)
    np.testing.assert_array_equal(s, (np.abs(kept).max(axis=1) / np.float32(127)).astype(np.float32))
    assert (q[~keep] == 0).all() and np.abs(q).max() == 127
    err = np.abs(q * s[:, None] - kept)
    assert (err <= s[:, None] / 2 * 1.0001).all()  # within half a step of each channel


def test_fma32_rounds_once():
    a, b, c = np.float32(1 + 2**-23), np.float32(1 + 2**-23), np.float32(-(1 + 2**-22))
    assert fma32(a, b, c) == np.float32(2**-46)
    # a double-rounding case: float64 a*b+c lands on a float32 tie that the exact sum is not on
    from fractions import Fraction

    rng = np.random.default_rng(0)
    x, y, z = (rng.standard_normal(2000).astype(np.float32) for _ in range(3))
    got = fma32(x, y, z)
    for p, q, r, g in zip(x[:200], y[:200], z[:200], got[:200], strict=True):
        exact = Fraction(float(p)) * Fraction(float(q)) + Fraction(float(r))
        near = [np.nextafter(g, np.float32(-np.inf)), g, np.nextafter(g, np.float32(np.inf))]
        assert abs(Fraction(float(g)) - exact) <= min(abs(Fraction(float(c)) - exact) for c in near)
    assert fma32(np.float32(3e38), np.float32(10), np.float32(0)) == np.inf


@pytest.mark.parametrize("mode", ["int8", "dynamic", "static"])
@pytest.mark.parametrize("sparsity", [None, 0.8])
def test_runtime_equals_the_converters_reference(rng, mode, sparsity, helpers):
    layers = _mlp(rng)
    x = rng.standard_normal((40, 8, 8)).astype(np.float32)
    cm = from_numpy(layers, (8, 8), quantize=mode, sparsity=sparsity, calibration=x[:30])
    assert [r.quantize for r in cm.layers] == ["static" if mode == "static" else "dynamic"] * 3
    assert {r.encoding for r in cm.layers} == {"csr+int8" if sparsity else "int8"}
    want = cm.run_numpy(x)
    helpers.assert_runtime_equals(cm.to_bytes(), x, want)
    f32 = from_numpy(layers, (8, 8), sparsity=sparsity).run_numpy(x)
    assert np.abs(want - f32).max() < 0.05 * np.abs(f32).max()  # int8 is close to the float model


def test_static_layers_pass_int8_with_the_relu_fused(rng):
    cm = from_numpy(_mlp(rng), (8, 8), quantize="static", calibration=rng.standard_normal((20, 8, 8)))
    nodes = cm.to_dict()["nodes"]
    assert [n["op"] for n in nodes] == ["flatten", "qlinear", "relu", "qlinear", "relu", "qlinear"]
    a1, a2, a3 = (n["attrs"] for n in nodes if n["op"] == "qlinear")
    assert a1["output_scale"] == a2["input_scale"] and a2["output_scale"] == a3["input_scale"]
    assert a1["min"] == a2["min"] == 0.0 and a3["output_scale"] == 0.0 and a3["min"] == -np.inf
    m = cm.load()
    assert [layer["output_type"] for layer in m.layers()] == ["f32", "i8", "i8", "i8", "i8", "f32"]


def test_mixed_per_layer_modes(rng):
    x = rng.standard_normal((10, 8, 8)).astype(np.float32)
    cm = from_numpy(_mlp(rng), (8, 8), quantize={"fc1": "static", "fc3": "int8"}, bits={"fc2": 4},
                    calibration=x)
    assert [(r.encoding, r.quantize) for r in cm.layers] == [("int8", "static"), ("codebook", ""),
                                                              ("int8", "dynamic")]
    nodes = cm.to_dict()["nodes"]
    assert nodes[1]["op"] == "qlinear" and nodes[1]["attrs"]["output_scale"] == 0.0  # fc2 is not static
    # fc2 runs in float32 in the runtime and float64 in the reference, so fc3 may quantize an input a step
    # apart: close, not bit for bit
    y, ref = cm.load().run(x), cm.run_numpy(x)
    np.testing.assert_allclose(y, ref, rtol=0, atol=0.02 * float(np.abs(ref).max()))


def test_inputs_beyond_the_calibrated_range_saturate(rng):
    """Static scales from small inputs, then inputs 100x larger: the quantized values clamp at +-127 (as
    FORMAT.md 2.5 says), the runtime and the reference agree, and nothing overflows."""
    layers = _mlp(rng, (16, 8, 4))
    cm = from_numpy(layers, (16,), quantize="static", calibration=rng.standard_normal((50, 16)) * 0.01)
    big = (rng.standard_normal((5, 16)) * 100).astype(np.float32)
    y = cm.load().run(big)
    np.testing.assert_array_equal(y, cm.run_numpy(big))
    assert np.isfinite(y).all()
    a = cm.to_dict()["nodes"][1]["attrs"]
    params = Int8Params("static", a["input_scale"], a["output_scale"], a["min"], a["max"])
    w = cm.to_dict()["tensors"][0]
    q = np.asarray(w["qvalues"], np.int64).reshape(8, 16)
    sat = int8_linear(big, q, np.asarray(w["scales"]), None, params)
    clipped = int8_linear(np.sign(big) * np.float32(1e9), q, np.asarray(w["scales"]), None, params)
    np.testing.assert_array_equal(sat, clipped)  # every input already at +-127


def test_an_all_zero_channel_gives_its_bias(rng):
    layers = _mlp(rng, (16, 8, 4))
    w = layers[1][1].copy()
    w[3] = 0.0
    layers[1] = ("linear", w, layers[1][2])
    x = rng.standard_normal((6, 16)).astype(np.float32)
    for mode in ("dynamic", "static"):
        cm = from_numpy(layers, (16,), quantize=mode, calibration=x)
        t = cm.to_dict()["tensors"][0]
        assert np.asarray(t["scales"])[3] == 0
        np.testing.assert_array_equal(cm.load().run(x), cm.run_numpy(x))
    g = Graph((16,))
    g.linear(g.input, w, np.arange(8, dtype=np.float32), name="fc")
    y = from_graph(g, quantize="dynamic").load().run(x)
    np.testing.assert_array_equal(y[:, 3], np.float32(3))


@pytest.mark.parametrize("bad,error,words", [
    ({"quantize": "int4"}, ValueError, "quantize must be one of 'int8', 'dynamic', 'static' or None, got 'int4'"),
    ({"quantize": True}, ValueError, "quantize must be one of"),
    ({"quantize": {"fc9": "int8"}}, ValueError, r"quantize names unknown layer\(s\) \['fc9'\]"),
    ({"quantize": {"fc1": "fast"}}, ValueError, "quantize for layer 'fc1' must be one of"),
    ({"quantize": "static"}, ValueError, r"static int8 needs calibration= inputs \(layers \['fc1', 'fc2', 'fc3'\]\)"),
    ({"quantize": "static", "calibration": np.zeros((4, 64), np.float32)}, ValueError,
     r"calibration has shape \(4, 64\), expected \(N >= 1, 8, 8\)"),
    ({"quantize": "static", "calibration": np.zeros((0, 8, 8), np.float32)}, ValueError, "calibration has shape"),
    ({"quantize": "static", "calibration": np.full((2, 8, 8), "a")}, ValueError, "calibration must hold numbers"),
    ({"quantize": "static", "calibration": "x.npy"}, TypeError, "calibration must be an array"),
    ({"quantize": "static", "calibration": np.full((2, 8, 8), np.nan, np.float32)}, ValueError,
     r"calibration holds a NaN or infinite value \(at index \(0, 0, 0\)\)"),
    ({"quantize": "static", "calibration": np.where(np.eye(8)[None] > 0, np.inf, 0).astype(np.float32)},
     ValueError, "NaN or infinite"),
    ({"quantize": "int8", "bits": 4}, ValueError, "layer 'fc1': bits .* and quantize .* exclude each other"),
])
def test_bad_quantize_arguments_are_refused(rng, bad, error, words):
    with pytest.raises(error, match=words):
        from_numpy(_mlp(rng), (8, 8), **bad)


def _cnn(rng, pool: str = "max_pool2d") -> Graph:
    g = Graph((2, 10, 10))
    c = g.relu(g.conv2d(g.input, (rng.standard_normal((6, 2, 3, 3)) / 4).astype(np.float32),
                        (0.1 * rng.standard_normal(6)).astype(np.float32), padding=1, name="conv1"))
    c = g.max_pool2d(c, 2) if pool == "max_pool2d" else g.avg_pool2d(c, 2)
    c = g.relu(g.conv2d(c, (rng.standard_normal((6, 1, 3, 3)) / 3).astype(np.float32), stride=2, padding=1,
                        groups=6, name="conv2"))
    g.linear(g.flatten(c), (rng.standard_normal((10, 54)) / 7).astype(np.float32), name="fc")
    return g


@pytest.mark.parametrize("sparsity", [None, 0.6])
def test_static_convolutions_chain_int8_through_relu_and_max_pool(rng, sparsity, helpers):
    """quantize="static" on a CNN: qconv2d -> relu -> max_pool2d -> qconv2d (depthwise) -> relu -> flatten ->
    qlinear, each layer's output at the next one's input scale, int8 all the way; the runtime equals the
    converter's reference bit for bit on every ISA and thread count, and is close to the float model."""
    g = _cnn(rng)
    x = rng.standard_normal((12, 2, 10, 10)).astype(np.float32)
    cm = from_graph(g, quantize="static", calibration=x[:8], sparsity=sparsity)
    nodes = cm.to_dict()["nodes"]
    assert [n["op"] for n in nodes] == ["qconv2d", "relu", "max_pool2d", "qconv2d", "relu", "flatten", "qlinear"]
    a1, a2, a3 = (nodes[i]["attrs"] for i in (0, 3, 6))
    assert a1["output_scale"] == a2["input_scale"] > 0 and a2["output_scale"] == a3["input_scale"] > 0
    assert a1["min"] == a2["min"] == 0.0 and a3["output_scale"] == 0.0
    assert a1["padding"] == [1, 1, 1, 1] and a2["groups"] == 6 and a2["stride"] == [2, 2]
    kept = sum(r.nonzeros for r in cm.layers) / sum(int(np.prod(r.shape)) for r in cm.layers)
    assert kept == pytest.approx(1 - (sparsity or 0), abs=0.02)
    assert ("csr+int8" in {r.encoding for r in cm.layers}) == bool(sparsity)  # the smaller of the two per layer
    m = cm.load()
    assert [layer["output_type"] for layer in m.layers()] == ["i8", "i8", "i8", "i8", "i8", "i8", "f32"]
    assert m.layers()[0]["method"] == "im2col-static"
    want = cm.run_numpy(x)
    helpers.assert_runtime_equals(cm.to_bytes(), x, want)
    f32 = from_graph(_cnn(np.random.default_rng(5)), sparsity=sparsity).run_numpy(x)
    assert np.abs(want - f32).max() < 0.08 * np.abs(f32).max()


def test_an_avg_pool_ends_the_int8_chain(rng):
    """avg_pool2d has no int8 form: the conv before it gives float32 (output_scale 0), the next static layer
    quantizes again with its own calibrated scale."""
    g = _cnn(rng, pool="avg_pool2d")
    x = rng.standard_normal((6, 2, 10, 10)).astype(np.float32)
    cm = from_graph(g, quantize="static", calibration=x)
    nodes = cm.to_dict()["nodes"]
    assert nodes[0]["op"] == "qconv2d" and nodes[0]["attrs"]["output_scale"] == 0.0
    assert nodes[3]["attrs"]["output_scale"] == nodes[6]["attrs"]["input_scale"]
    m = cm.load()
    assert [layer["output_type"] for layer in m.layers()] == ["f32", "f32", "f32", "i8", "i8", "i8", "f32"]
    y, ref = m.run(x), cm.run_numpy(x)  # the float32 mean may round a quantization tie the other way
    np.testing.assert_allclose(y, ref, rtol=0, atol=0.02 * float(np.abs(ref).max()))


def test_int8_convolutions_dynamic_and_mixed(rng):
    g = Graph((1, 8, 8))
    c = g.relu(g.conv2d(g.input, rng.standard_normal((4, 1, 3, 3)).astype(np.float32), name="conv1"))
    g.linear(g.flatten(c), rng.standard_normal((10, 144)).astype(np.float32), name="fc")
    x = rng.standard_normal((3, 1, 8, 8)).astype(np.float32)
    cm = from_graph(g, quantize="int8")
    assert [(r.op, r.encoding, r.quantize) for r in cm.layers] == [("conv2d", "int8", "dynamic"),
                                                                   ("linear", "int8", "dynamic")]
    m = cm.load()
    assert m.layers()[0]["method"] == "direct-dynamic"  # one input channel: the direct (depthwise) kernel
    np.testing.assert_array_equal(m.run(x), cm.run_numpy(x))  # int8 throughout: bit for bit
    cm = from_graph(g, quantize={"fc": "static"}, calibration=x)  # the f32 conv, then a static linear
    assert [r.encoding for r in cm.layers] == ["dense", "int8"]
    y, ref = cm.load().run(x), cm.run_numpy(x)
    np.testing.assert_allclose(y, ref, rtol=0, atol=0.02 * float(np.abs(ref).max()))
    cm = from_graph(g, quantize={"conv1": "static", "fc": "dynamic"}, calibration=x)  # static conv, f32 out
    assert cm.to_dict()["nodes"][0]["attrs"]["output_scale"] == 0.0
    np.testing.assert_array_equal(cm.load().run(x), cm.run_numpy(x))


def test_from_torch_quantize(rng):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5)).eval()
    from pyruntime.convert import from_torch

    x = rng.standard_normal((30, 20)).astype(np.float32)
    cm = from_torch(net, torch.zeros(1, 20), quantize="static", calibration=torch.from_numpy(x))
    assert [(r.name, r.quantize) for r in cm.layers] == [("0", "static"), ("2", "static")]
    y = cm.load().run(x)
    np.testing.assert_array_equal(y, cm.run_numpy(x))
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert np.abs(y - ref).max() < 0.03 * np.abs(ref).max()


@pytest.mark.parametrize("per_channel", [False, True])
def test_import_of_torch_dynamic_quantized_linear(rng, per_channel):
    """torch.ao.quantization.quantize_dynamic's Linear imports with its own int8 weights and scales (a -128,
    which torch's symmetric observer can give, is clamped to -127: the format is symmetric), as a dynamic
    int8 layer; the outputs match torch's int8 model as closely as two activation quantizers allow."""
    torch = pytest.importorskip("torch")
    import warnings

    from pyruntime.convert import from_torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        torch.manual_seed(3)
        net = torch.nn.Sequential(torch.nn.Linear(30, 24), torch.nn.ReLU(), torch.nn.Linear(24, 6)).eval()
        spec = {torch.nn.Linear: per_channel_dynamic_qconfig} if per_channel else {torch.nn.Linear}
        qnet = quantize_dynamic(net, spec, dtype=torch.qint8)
    cm = from_torch(qnet, torch.zeros(1, 30))
    assert [(r.encoding, r.quantize) for r in cm.layers] == [("int8", "dynamic"), ("int8", "dynamic")]
    for layer, t in zip((qnet[0], qnet[2]), (cm.to_dict()["tensors"][0], cm.to_dict()["tensors"][2]), strict=True):
        w = layer.weight()
        want_q = np.maximum(w.int_repr().numpy().astype(np.int64), -127)
        np.testing.assert_array_equal(np.asarray(t["qvalues"], np.int64).reshape(want_q.shape), want_q)
        want_s = w.q_per_channel_scales().numpy() if per_channel else np.full(want_q.shape[0], w.q_scale())
        np.testing.assert_allclose(np.asarray(t["scales"]), want_s.astype(np.float32), rtol=0, atol=0)
    x = rng.standard_normal((40, 30)).astype(np.float32)
    y = cm.load().run(x)
    np.testing.assert_array_equal(y, cm.run_numpy(x))
    with torch.no_grad():
        ref_q = qnet(torch.from_numpy(x)).numpy()
        ref_f = net(torch.from_numpy(x)).numpy()
    scale = float(np.abs(ref_f).max())
    assert np.abs(y - ref_q).max() < 0.04 * scale and np.abs(y - ref_f).max() < 0.03 * scale
    with pytest.raises(ValueError, match="bits .* and quantize .* exclude each other"):
        from_torch(qnet, torch.zeros(1, 30), bits=4)


@pytest.mark.parametrize("mode", ["dynamic", "static"])
@pytest.mark.parametrize("cin, cout, hw, k, stride, pad, dilation, groups", [
    (16, 16, 32, 3, 1, 1, 1, 1),   # ResNet-20's first stage: rows of 32 outputs, 2 blocks of 16 per row
    (8, 12, 9, 3, 2, 1, 2, 1),     # stride 2 and dilation 2: 4 outputs per row, blocks across rows
    (16, 8, 11, 5, 1, 2, 1, 2),    # two groups of 8 channels, 5x5
    (12, 20, 7, 1, 2, 0, 1, 1),    # 1x1 with stride 2: not in place
    (12, 20, 7, 1, 1, 0, 1, 1),    # 1x1, stride 1: blocks straight from the channel planes, 49 positions
    (16, 8, 9, 1, 1, 0, 1, 2),     # the same in two groups
    (6, 8, 10, 3, 1, 1, 1, 1),     # 6 channels: groups of 4 columns straddle taps, the copies only
    (16, 8, 21, 3, 1, 1, 1, 1),    # rows of 21: the channels-last copy's last block overlaps (16 wide)
    (32, 8, 12, 3, 1, 1, 1, 1),    # rows of 12: two overlapping 8-wide blocks, two chunks of 16 channels
    (16, 8, 5, 3, 1, 1, 1, 1),     # rows of 5: bytes one by one
])
def test_int8_conv_patch_gather_equals_the_copies(rng, helpers, mode, cin, cout, hw, k, stride, pad, dilation,
                                                  groups):
    """A dense int8 conv's patches gathered straight from the input (vgatherdd, where this CPU's gathers are
    fast), or a 1x1 conv's blocks from the channel planes, give the bits of the copied patch rows and of the
    converter's reference at every level."""
    from pyruntime import _core

    g = Graph((cin, hw, hw))
    w = (rng.standard_normal((cout, cin // groups, k, k)) / 4).astype(np.float32)
    c = g.conv2d(g.input, w, rng.standard_normal(cout).astype(np.float32), stride=stride, padding=pad,
                 dilation=dilation, groups=groups, name="conv")
    g.relu(c)
    x = rng.standard_normal((5, cin, hw, hw)).astype(np.float32)
    cm = from_graph(g, quantize=mode, calibration=x[:4])
    assert cm.layers[0].encoding == "int8"
    want = cm.run_numpy(x)
    previous = _core.set_gather("hw")
    try:
        helpers.assert_runtime_equals(cm.to_bytes(), x, want)
        _core.set_gather("scalar")
        helpers.assert_runtime_equals(cm.to_bytes(), x, want)
    finally:
        _core.set_gather(previous)


def test_pruned_int8_conv_runs_dense_on_amx_where_faster(rng, helpers):
    """Loaded at level amx, a csr+int8 conv whose sparse steps would cost more than the dense tiles runs dense
    (layout i8_k4x16, its entries expanded at load), a very sparse one stays sparse; every level gives the
    same bits."""
    import pyruntime
    from pyruntime import _core

    if "amx" not in _core.supported_isas():
        pytest.skip("this CPU or build has no AMX")
    layouts = {}
    for sparsity in (0.8, 0.995):
        g = Graph((64, 8, 8))
        w = (rng.standard_normal((64, 64, 3, 3)) / 10).astype(np.float32)
        w[np.abs(w) < np.quantile(np.abs(w), sparsity)] = 0
        g.conv2d(g.input, w, rng.standard_normal(64).astype(np.float32), padding=1, name="conv")
        x = rng.standard_normal((3, 64, 8, 8)).astype(np.float32)
        cm = from_graph(g, quantize="dynamic")
        assert cm.layers[0].encoding == "csr+int8"
        previous = _core.active_isa()
        try:
            for isa in ("amx", "avx512vnni"):
                _core.set_isa(isa)
                layouts[sparsity, isa] = pyruntime.load(cm.to_bytes()).layers()[0]["layout"]
        finally:
            _core.set_isa(previous)
        helpers.assert_runtime_equals(cm.to_bytes(), x, cm.run_numpy(x))
    assert layouts[0.8, "amx"] == "i8_k4x16" and layouts[0.995, "amx"].startswith("i8_p128")
    assert layouts[0.8, "avx512vnni"].startswith("i8_p128")
