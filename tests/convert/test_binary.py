"""Binary networks in the converter (docs/FORMAT.md 2.6): SignSTE / BinaryLinear and their straight-through
gradients, the sign forms from_torch captures (torch.where, SignSTE, a scalar affine of the input) and the one it
refuses (torch.sign), batch norm + sign folded into integer popcount thresholds that agree with the unfolded
torch network bit for bit, batch norm folded into the alphas of a real-output layer, the FINN-style import
(from_binary_layers) and its errors, and the runtime against the converter's reference."""
from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import numpy as np
import pytest

import pyruntime
from pyruntime.convert import Graph, from_binary_layers, from_graph
from pyruntime.convert.binarize import binary_dot, fold_thresholds, sign_params, split_binary

torch = pytest.importorskip("torch")
from torch import nn
from torch_helpers import randomize_bn

from pyruntime.convert import BinaryLinear, SignSTE, from_torch


def values_of(cm, x: np.ndarray) -> list[np.ndarray]:
    """Every value of the converted graph (the input first) by the converter's reference of the runtime."""
    return cm.run_numpy(x, all_values=True)


class BNN(nn.Module):
    """BinaryNet-style: binarized input, binary layers with batch norm and sign, a real last layer."""

    def __init__(self, sizes=(77, 130, 65, 10), bias=True, scale=False, where_sign=False) -> None:
        super().__init__()
        self.fc1 = BinaryLinear(sizes[0], sizes[1], bias=bias, scale=scale)
        self.bn1 = nn.BatchNorm1d(sizes[1])
        self.act1 = SignSTE()
        self.fc2 = BinaryLinear(sizes[1], sizes[2], bias=bias, scale=scale)
        self.bn2 = nn.BatchNorm1d(sizes[2])
        self.ht2 = nn.Hardtanh()
        self.act2 = SignSTE()
        self.fc3 = BinaryLinear(sizes[2], sizes[3], bias=bias, scale=scale)
        self.bn3 = nn.BatchNorm1d(sizes[3])
        self.where_sign = where_sign

    def hidden(self, x):
        x = torch.where(x >= 0, 1.0, -1.0)
        h1 = self.act1(self.bn1(self.fc1(x)))
        v = self.ht2(self.bn2(self.fc2(h1)))
        h2 = torch.where(v >= 0, 1.0, -1.0) if self.where_sign else self.act2(v)
        return h1, h2

    def forward(self, x):
        return self.bn3(self.fc3(self.hidden(x)[1]))


def make_bnn(seed: int, **kw) -> BNN:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = BNN(**kw)
    for bn in (net.bn1, net.bn2, net.bn3):
        randomize_bn(bn, gen, 8.0)
    return net.eval()


# ---- training modules ---------------------------------------------------------------------------------


def test_sign_ste_forward_and_straight_through_gradient():
    x = torch.tensor([-2.0, -1.0, -0.5, -0.0, 0.0, 0.3, 1.0, 1.5, float("nan")], requires_grad=True)
    y = SignSTE()(x)
    assert y.tolist()[:8] == [-1, -1, -1, 1, 1, 1, 1, 1] and y[8] == -1  # sign(0) = +1, NaN -1
    g = torch.arange(1.0, 10.0)
    y.backward(g)
    np.testing.assert_array_equal(x.grad.numpy(), (g * torch.tensor([0, 1, 1, 1, 1, 1, 1, 0, 0.0])).numpy())


@pytest.mark.parametrize("scale", [False, True])
def test_binary_linear_forward_and_gradient(scale):
    torch.manual_seed(0)
    m = BinaryLinear(9, 4, scale=scale)
    with torch.no_grad():
        m.weight[0, 0] = 0.0  # sign(0) = +1
        m.weight[1, 1] = 1.5  # |w| > 1: no gradient through the sign
    x = torch.randn(3, 9)
    s = torch.where(m.weight >= 0, 1.0, -1.0)
    alpha = m.weight.abs().mean(dim=1) if scale else torch.ones(4)
    want = (x @ s.T) * alpha + m.bias
    torch.testing.assert_close(m(x), want, rtol=1e-6, atol=1e-6)
    assert s[0, 0] == 1
    m(x).sum().backward()
    g = m.weight.grad
    if not scale:  # pure STE: d/dW = (x summed over the batch) * (|W| <= 1)
        want_g = x.sum(0)[None, :].expand(4, 9) * (m.weight.abs() <= 1)
        torch.testing.assert_close(g, want_g)
    assert g[1, 1] == 0 or scale  # scale: alpha's own gradient reaches it
    m.clip_weights_()
    assert float(m.weight.detach().abs().max()) <= 1.0


# ---- threshold folding --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("scale", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_folded_thresholds_match_torch_bit_for_bit(seed, scale, bias, helpers):
    net = make_bnn(seed, scale=scale, bias=bias, where_sign=seed == 1)
    gen = torch.Generator().manual_seed(100 + seed)
    x = torch.randn(4000, 77, generator=gen)
    cm = from_torch(net, x[:1])
    nodes = cm.to_dict()["nodes"]
    assert [(n["op"], n.get("attrs")) for n in nodes] == [
        ("sign", {"scale": 1.0, "shift": 0.0}), ("blinear", {"input": 0, "output": 1}),
        ("blinear", {"input": 0, "output": 1}), ("blinear", {"input": 0, "output": 0})]
    info = cm.metadata["binary_layers"]
    assert info["fc1"]["folded"][-2:] == ["bn1", "act1"] and info["fc1"]["flipped_rows"] > 0
    assert info["fc3"] == {"input": 0, "output": 0, "folded": ["bn3"], "flipped_rows": info["fc3"]["flipped_rows"]}
    with torch.no_grad():
        h1, h2 = net.hidden(x)
        want = net(x).numpy()
    vals = values_of(cm, x.numpy())
    np.testing.assert_array_equal(vals[2], h1.numpy())  # every hidden bit, every input
    np.testing.assert_array_equal(vals[3], h2.numpy())
    got = cm.run_numpy(x.numpy())
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    assert (got.argmax(1) == want.argmax(1)).all()
    helpers.assert_runtime_equals(cm.to_bytes(), x.numpy(), got)


def test_thresholds_exact_at_the_boundary(helpers):
    """A batch norm whose mean sits exactly on a reachable dot makes the pre-sign value exactly 0 there: the sign
    is +1 (x >= 0), one dot lower -1; odd and even K, a mean that no dot reaches, constant rows (gamma 0)."""
    for k in (1, 2, 63, 64, 65, 129):
        rows = 8
        torch.manual_seed(k)
        fc = BinaryLinear(k, rows, bias=False)
        bn = nn.BatchNorm1d(rows, eps=0.0)
        with torch.no_grad():
            bn.running_mean.copy_(torch.tensor([k, -k, k - 2, 0, 0.5, k + 7, 3, 3], dtype=torch.float32))
            bn.running_var.fill_(4.0)
            bn.weight.copy_(torch.tensor([1.0, 1, -1, -2, 1, 1, 0, 0]))
            bn.bias.copy_(torch.tensor([0.0, 0, 0, 0, 0, 0, 0.5, -0.5]))
        net = nn.Sequential(SignSTE(), fc, bn, SignSTE()).eval()
        x = torch.from_numpy(np.random.default_rng(k).standard_normal((3000, k)).astype(np.float32))
        # inputs that hit every popcount of row 0 and of row 2
        s0 = torch.where(fc.weight[0] >= 0, 1.0, -1.0)
        agree = torch.rand(k + 1, k, generator=torch.Generator().manual_seed(1)).argsort(1) < torch.arange(k + 1)[:, None]
        x = torch.cat([x, torch.where(agree, s0, -s0)])
        cm = from_torch(net, x[:1])
        t = cm.binary_layers()["1"].second
        assert t[6] == 0 and t[7] == k + 1  # gamma 0: always +1 / always -1
        with torch.no_grad():
            want = net(x).numpy()
        got = cm.run_numpy(x.numpy())
        np.testing.assert_array_equal(got, want, err_msg=f"K={k}")
        helpers.assert_runtime_equals(cm.to_bytes(), x.numpy(), want)


def test_fold_thresholds_rising_falling_constant_and_refused():
    pos = np.array([[0, 1, 1, 0], [0, 1, 1, 0], [1, 0, 1, 0], [1, 0, 1, 0]], dtype=bool)  # [popcount 0..3, row]
    th = fold_thresholds(pos, "layer 'x'")
    # row 0 rises at popcount 2; row 1 falls: flipped, then +1 from popcount 2; row 2 is always +1 (T 0), row 3 never
    np.testing.assert_array_equal(th.T, [2, 2, 0, 4])
    np.testing.assert_array_equal(th.flip, [False, True, False, False])
    with pytest.raises(pyruntime.UnsupportedError, match=r"layer 'x'.*row 0 is not monotone"):
        fold_thresholds(np.array([[0], [1], [0]], dtype=bool), "layer 'x'")


def test_linear_with_pm1_weights_becomes_binary_automatically():
    torch.manual_seed(3)
    fc2 = nn.Linear(50, 40, bias=False)
    with torch.no_grad():
        fc2.weight.copy_(torch.where(torch.randn(40, 50) >= 0, 1.0, -1.0))
    bn = nn.BatchNorm1d(40)
    randomize_bn(bn, torch.Generator().manual_seed(3), 10.0)
    net = nn.Sequential(nn.Linear(20, 50), nn.BatchNorm1d(50), SignSTE(), fc2, bn, nn.Hardtanh(), SignSTE(),
                        nn.Linear(40, 10)).eval()
    x = torch.randn(3000, 20)
    cm = from_torch(net, x[:1])
    ops = [(n["op"], n.get("attrs")) for n in cm.to_dict()["nodes"]]
    assert ops == [("linear", None), ("sign", {"scale": 1.0, "shift": 0.0}), ("blinear", {"input": 0, "output": 1}),
                   ("linear", None)]
    assert [r.encoding for r in cm.layers][1] == "binary"
    with torch.no_grad():
        hidden = net[:7](x).numpy()
    np.testing.assert_array_equal(values_of(cm, x.numpy())[3], hidden)
    # first and last layers may be int8; the binary layer is left alone
    q = from_torch(net, x[:1], quantize="dynamic")
    assert [r.encoding for r in q.layers] == ["int8", "binary", "int8"]
    assert (q.load().run(x.numpy()).argmax(1) == cm.load().run(x.numpy()).argmax(1)).mean() > 0.85
    with pytest.raises(ValueError, match=r"layer '3' is binary.*quantize"):
        from_torch(net, x[:1], quantize={"3": "dynamic"})
    # binary=False keeps it a float linear layer (batch norm folded), binary={"3": False} too
    for off in (False, {"3": False}):
        f = from_torch(net, x[:1], binary=off)
        assert [n["op"] for n in f.to_dict()["nodes"]] == ["linear", "sign", "linear", "clamp", "sign", "linear"]


def test_real_output_batchnorm_folds_into_alphas():
    torch.manual_seed(4)
    net = nn.Sequential(SignSTE(), BinaryLinear(100, 30, scale=True), nn.BatchNorm1d(30)).eval()
    randomize_bn(net[2], torch.Generator().manual_seed(4), 5.0)
    x = torch.randn(2000, 100)
    cm = from_torch(net, x[:1])
    layer = cm.binary_layers()["1"]
    assert (layer.input, layer.output) == (0, 0) and (layer.alphas >= 0).all()
    with torch.no_grad():
        want = net(x).numpy()
    got = cm.load().run(x.numpy())
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    np.testing.assert_array_equal(got, cm.run_numpy(x.numpy()))


def test_binary_weights_real_inputs_are_input_1():
    torch.manual_seed(5)
    net = nn.Sequential(BinaryLinear(30, 20, scale=True), nn.BatchNorm1d(20), SignSTE(), BinaryLinear(20, 5)).eval()
    randomize_bn(net[1], torch.Generator().manual_seed(5), 2.0)
    x = torch.randn(500, 30)
    cm = from_torch(net, x[:1])
    assert [(n["op"], n.get("attrs")) for n in cm.to_dict()["nodes"]] == [
        ("blinear", {"input": 1, "output": 0}), ("sign", {"scale": 1.0, "shift": 0.0}),
        ("blinear", {"input": 0, "output": 0})]
    with torch.no_grad():
        want = net(x).numpy()
    got = cm.load().run(x.numpy())
    assert (got == want).mean() > 0.99  # the real-input layer sums in another order: a rare sign may differ
    np.testing.assert_allclose(cm.run_numpy(x.numpy()), got, rtol=1e-5, atol=1e-5)


# ---- sign forms ---------------------------------------------------------------------------------------


class Lambda(nn.Module):
    """``fn(x)``; the modules ``fn`` calls are registered as submodules (fx traces through them)."""

    def __init__(self, fn, **modules) -> None:
        super().__init__()
        self.fn = fn
        for k, m in modules.items():
            self.add_module(k, m)

    def forward(self, x):
        return self.fn(x)


SIGNS = {
    "where >= 0": (lambda x: torch.where(x >= 0, 1.0, -1.0), (1.0, 0.0)),
    "where < 0 swapped": (lambda x: torch.where(x < 0, -1.0, 1.0), (1.0, 0.0)),
    "tensor constants": (lambda x: torch.where(x.ge(0), torch.tensor(1.0), torch.tensor(-1.0)), (1.0, 0.0)),
    "int constants": (lambda x: torch.where(0 <= x, 1, -1).float(), (1.0, 0.0)),
    "x * 2 - 1": (lambda x: torch.where(x * 2 - 1 >= 0, 1.0, -1.0), (2.0, -1.0)),
    "2 * x - 1": (lambda x: torch.where(2 * x - 1 >= 0, 1.0, -1.0), (2.0, -1.0)),
    "(x - 0.5) * 2": (lambda x: torch.where((x - 0.5) * 2 >= 0, 1.0, -1.0), (1.0, -0.5)),
    "x >= 0.7": (lambda x: torch.where(x >= 0.7, 1.0, -1.0), (1.0, -0.7)),
    "x <= 0.25": (lambda x: torch.where(x <= 0.25, 1.0, -1.0), (-1.0, 0.25)),
    "1 - x": (lambda x: torch.where(1 - x >= 0, 1.0, -1.0), (-1.0, 1.0)),
    "SignSTE(x * 2 - 1)": (None, (2.0, -1.0)),
}


@pytest.mark.parametrize("form", list(SIGNS))
def test_sign_forms_are_captured_exactly(form):
    fn, (scale, shift) = SIGNS[form]
    ste = SignSTE()
    sign = (lambda x: ste(x * 2 - 1)) if fn is None else fn
    torch.manual_seed(6)
    fc = BinaryLinear(12, 6)
    net = Lambda(lambda x: fc(sign(x)), fc=fc, ste=ste)
    rng = np.random.default_rng(6)
    x = rng.random((3000, 12)).astype(np.float32)
    edges = np.array([0.5, 0.7, 0.25, 1.0, 0.0, -0.0], np.float32)
    near = np.concatenate([edges, np.nextafter(edges, 2), np.nextafter(edges, -2)])
    x[: near.size * 2].reshape(-1)[: near.size * 12] = np.resize(near, near.size * 12)
    cm = from_torch(net, torch.from_numpy(x[:1]))
    n0 = cm.to_dict()["nodes"][0]
    assert n0["op"] == "sign" and n0["attrs"] == {"scale": np.float32(scale), "shift": np.float32(shift)}
    with torch.no_grad():
        want = sign(torch.from_numpy(x)).float().numpy()
        out = net(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(values_of(cm, x)[1], want)
    got = cm.load().run(x)
    np.testing.assert_allclose(got, out, rtol=1e-6, atol=1e-6)


def test_torch_sign_is_refused_by_name():
    net = nn.Sequential(nn.Linear(4, 4))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 4))

        def forward(self, x):
            return self.body(torch.sign(x))

    for m, name in ((Net(), "sign"), (Lambda(lambda x: net(x.sign()), net=net), "sign")):
        with pytest.raises(pyruntime.UnsupportedError, match=rf"node '{name}'.*sign\(0\) is 0.*SignSTE.*torch.where"):
            from_torch(m, torch.zeros(1, 4))


def test_unsupported_sign_like_forms_are_refused():
    fc = nn.Linear(4, 3)
    for fn, msg in ((lambda x: torch.where(x > 0, 1.0, -1.0), r"x > c \(strictly\)"),
                    (lambda x: torch.where(x >= 0, 2.0, -1.0), "only the sign form of torch.where"),
                    (lambda x: torch.where(x * 3 * 2 >= 0, 1.0, -1.0), "cannot be held by the sign op exactly")):
        net = Lambda(lambda x, f=fn: fc(f(x)), fc=fc)
        with pytest.raises(pyruntime.UnsupportedError, match=msg):
            from_torch(net, torch.zeros(1, 4))


def test_sign_params_rules():
    assert sign_params([("mul", 2.0), ("add", -1.0)], "ge", 0.0, True, "s") == (2.0, -1.0)
    assert sign_params([("add", -0.5), ("mul", -2.0)], "ge", 0.0, True, "s") == (-1.0, 0.5)
    assert sign_params([], "lt", 3.0, False, "s") == (1.0, -3.0)
    with pytest.raises(pyruntime.UnsupportedError, match="s: the scalar affine"):
        sign_params([("add", -0.5), ("mul", 0.5)], "ge", 0.0, True, "s")  # could underflow a tiny negative to -0


# ---- bad input ----------------------------------------------------------------------------------------


def test_non_binary_weight_requested_binary_is_refused_by_name():
    net = nn.Sequential(SignSTE(), nn.Linear(8, 4))
    net[1].weight.data[2, 3] = 0.123
    with pytest.raises(ValueError, match=r"layer '1'.*not binary.*row 0"):
        from_torch(net, torch.zeros(1, 8), binary={"1": True})
    with pytest.raises(ValueError, match=r"layer '1'.*not binary"):
        from_torch(net, torch.zeros(1, 8), binary=True)
    with pytest.raises(ValueError, match=r"unknown layers \['fc9'\]"):
        from_torch(net, torch.zeros(1, 8), binary={"fc9": True})
    with pytest.raises(ValueError, match=r"layer 'w'.*3 of 4 rows"):
        split_binary(np.array([[1, -1], [1, 2], [0, 1], [3, 1]], np.float32), "layer 'w'")


def test_graph_blinear_checks(helpers):
    g = Graph((10,))
    s = np.ones((4, 10))
    with pytest.raises(ValueError, match=r"layer 'b'.*signs must be \+1 or -1, got 0.0 at \[0, 0\]"):
        g.blinear(g.input, np.zeros((4, 10)), name="b")
    with pytest.raises(ValueError, match=r"thresholds \(a \+-1 output\) need input 0"):
        g.blinear(g.input, s, thresholds=np.zeros(4), name="b2")
    with pytest.raises(ValueError, match=r"threshold 12 at \[1\] is out of range 0..11"):
        g.blinear(g.input, s, thresholds=[0, 12, 0, 0], input=0, name="b3")
    with pytest.raises(ValueError, match=r"alphas must be finite and >= 0"):
        g.blinear(g.input, s, alphas=[1, -1, 1, 1], name="b4")
    v = g.blinear(g.input, s, thresholds=[0, 11, 5, 6], input=0, name="ok")
    assert g.is_binary(v) and not g.is_binary(g.input)
    cm = from_graph(g)
    with pytest.raises(ValueError, match="layer 'ok' is binary"):
        from_graph(g, sparsity={"ok": 0.5})
    x = np.random.default_rng(0).standard_normal((50, 10)).astype(np.float32)
    p = (x >= 0).sum(1)
    want = np.where(p[:, None] >= np.array([0, 11, 5, 6]), 1.0, -1.0).astype(np.float32)
    np.testing.assert_array_equal(cm.run_numpy(x), want)
    helpers.assert_runtime_equals(cm.to_bytes(), x, want)


# ---- FINN-style import --------------------------------------------------------------------------------


def finn_layers(rng, sizes=(100, 70, 33, 10)):
    layers = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        bits = rng.integers(0, 2, (b, a))
        if i < len(sizes) - 2:
            layers.append({"bits": bits, "thresholds": rng.integers(0, a + 2, b)})
        else:
            layers.append({"bits": bits.astype(bool), "bias": rng.standard_normal(b).astype(np.float32),
                           "alphas": rng.random(b).astype(np.float32)})
    return layers


def finn_reference(layers, x):
    """XNOR-popcount in plain numpy: popcount = number of positions where the input bit equals the weight bit."""
    h = (x >= 0).astype(np.int64)
    for layer in layers:
        bits = np.asarray(layer["bits"]).astype(np.int64)
        agree = (h[:, None, :] == bits[None, :, :]).sum(2)
        if "thresholds" in layer:
            h = (agree >= np.asarray(layer["thresholds"])[None, :]).astype(np.int64)
        else:
            dot = (2 * agree - bits.shape[1]).astype(np.float64)
            return dot * layer["alphas"].astype(np.float64) + layer["bias"]
    return np.where(h == 1, 1.0, -1.0)


def test_from_binary_layers_matches_popcount_reference():
    rng = np.random.default_rng(7)
    layers = finn_layers(rng)
    x = rng.standard_normal((400, 100)).astype(np.float32)
    cm = from_binary_layers(layers, (100,))
    assert [r.encoding for r in cm.layers] == ["binary"] * 3 and [r.name for r in cm.layers] == ["fc1", "fc2", "fc3"]
    want = finn_reference(layers, x)
    got = cm.load().run(x)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(got, cm.run_numpy(x))
    # hidden layers only: +-1 outputs; an image input flattened and binarized with an affine
    img = rng.random((50, 1, 10, 10)).astype(np.float32)
    cm2 = from_binary_layers(layers[:2], (1, 10, 10), input_scale=2.0, input_shift=-1.0)
    np.testing.assert_array_equal(cm2.load().run(img), finn_reference(layers[:2], img.reshape(50, -1) * 2 - 1))
    # tuples work too
    cm3 = from_binary_layers([(layers[0]["bits"], layers[0]["thresholds"])], (100,))
    np.testing.assert_array_equal(cm3.run_numpy(x), finn_reference(layers[:1], x))


@pytest.mark.parametrize("change, msg", [
    (lambda ls: ls[1].update(bits=ls[1]["bits"][:, :-1]), r"layer 1 \('fc2'\): bits have 69 columns.*70"),
    (lambda ls: ls[0]["bits"].__setitem__((3, 4), 2), r"layer 0 \('fc1'\): bits must be 0 \(for -1\) or 1.*\[3, 4\]"),
    (lambda ls: ls[1].update(thresholds=ls[1]["thresholds"][:-1]), r"layer 1 \('fc2'\): thresholds have shape \(32,\)"),
    (lambda ls: ls[0]["thresholds"].__setitem__(5, 102), r"layer 0 \('fc1'\): threshold 102 at \[5\].*0..101"),
    (lambda ls: ls[0]["thresholds"].__setitem__(5, -1), r"layer 0 \('fc1'\): threshold -1 at \[5\]"),
    (lambda ls: ls[1].update(thresholds=ls[1]["thresholds"] + 0.5), r"layer 1 \('fc2'\): thresholds must be integers"),
    (lambda ls: ls[2].update(thresholds=np.zeros(10)), r"layer 2 \('fc3'\): give thresholds.*or a bias"),
    (lambda ls: ls[2].update(alphas=-np.ones(10)), r"layer 2 \('fc3'\): alphas must be finite and >= 0"),
    (lambda ls: ls[0].update(weights=1), r"layer 0: unknown keys \['weights'\]"),
])
def test_from_binary_layers_errors_name_the_layer(change, msg):
    layers = finn_layers(np.random.default_rng(8))
    change(layers)
    with pytest.raises(ValueError, match=msg):
        from_binary_layers(layers, (100,))


def test_binary_dot_is_the_popcount():
    rng = np.random.default_rng(9)
    s = np.where(rng.random((5, 200)) < 0.5, 1, -1).astype(np.int8)
    x = rng.standard_normal((7, 200)).astype(np.float32)
    p = ((x >= 0)[:, None, :] == (s > 0)[None, :, :]).sum(2)
    np.testing.assert_array_equal((binary_dot(x, s) + 200) // 2, p)


# ---- MNIST --------------------------------------------------------------------------------------------


def mnist_or_skip() -> Path:
    from pyruntime.datasets import MNIST_ENV, mnist_dir

    env = os.environ.get(MNIST_ENV)
    d = mnist_dir(env) if env else mnist_dir(Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist")
    if d is None:
        pytest.skip(f"MNIST not found: set ${MNIST_ENV} to a directory with the four idx files (also looked in "
                    "../shared/data/mnist next to the repository)")
    return d


def test_binary_mnist_example_quick_is_exact():
    """examples/binary_mnist.py --quick: a short training run; every hidden bit of the runtime's net equals
    torch's on the 10,000 test images and the predictions agree."""
    import importlib.util
    import sys

    data = mnist_or_skip()
    path = Path(__file__).resolve().parents[2] / "examples" / "binary_mnist.py"
    spec = importlib.util.spec_from_file_location("binary_mnist", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    r = mod.run(data, quick=True, log=None, measure_speed=False)
    assert r["hidden_bits_differing"] == 0, r
    assert r["agreement"] >= 0.999 and abs(r["runtime_accuracy"] - r["torch_accuracy"]) <= 0.001, r
    assert r["torch_accuracy"] > 0.8, r
    assert r["binary_layer_fp32_bytes"] / r["binary_layer_bytes"] > 20, r
    assert re.search("XNOR", mod.format_result(r))
