"""Binary convolutions in the converter (docs/FORMAT.md 2.6, bconv2d): BinaryConv2d and +-alpha nn.Conv2d layers
captured as bconv2d, a BatchNorm2d (+ bias, hardtanh, scalar affines) and sign after one folded into thresholds that
are multiples of 1/2 (a tap in the zero padding contributes 0, so a padded window's dot can have either parity) and
agree with the unfolded torch network bit for bit, at the borders too; a batch norm after a real-output one folded
into its alphas; real inputs (input 1); grouped convolutions refused by name; the reference and the runtime on every
ISA level and thread count."""
from __future__ import annotations

import numpy as np
import pytest

import pyruntime
from pyruntime import _core
from pyruntime.convert import Graph, from_graph
from pyruntime.convert.binarize import fold_thresholds

torch = pytest.importorskip("torch")
from torch import nn
from torch_helpers import randomize_bn

from pyruntime.convert import BinaryConv2d, BinaryLinear, SignSTE, from_torch


def runtime_close(cm, x: np.ndarray, want: np.ndarray, tol: float) -> None:
    """The runtime's outputs are within ``tol`` of ``want`` on every supported ISA level, at 1 and 2 threads (a net
    with float layers, whose sums are not bit-identical across levels)."""
    data = cm.to_bytes()
    previous = _core.active_isa()
    try:
        for isa in _core.supported_isas():
            _core.set_isa(isa)
            for threads in (1, 2):
                np.testing.assert_allclose(pyruntime.load(data, threads=threads).run(x), want, rtol=tol, atol=tol,
                                           err_msg=f"{isa}, {threads} threads")
    finally:
        _core.set_isa(previous)


def images(seed: int, n: int, shape=(1, 12, 12)) -> torch.Tensor:
    """[0, 1] pixels, some exactly at the sign's edge (0.5: x * 2 - 1 = 0 gives +1) and just below it."""
    x = torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))
    flat = x.view(-1)
    flat[::7] = 0.5
    flat[3::11] = float(np.nextafter(np.float32(0.5), np.float32(0)))
    return x


class BCNN(nn.Module):
    """sign(2x - 1) -> BinaryConv2d(1 -> 16, 3, padding 1) -> BN -> sign -> BinaryConv2d(16 -> 32, 3, stride 2,
    padding 1) -> BN -> hardtanh -> sign -> max pool -> flatten -> BinaryLinear -> BN."""

    def __init__(self, bias: bool = True, scale: bool = False, where_sign: bool = False) -> None:
        super().__init__()
        self.c1, self.bn1, self.act1 = BinaryConv2d(1, 16, 3, padding=1, bias=bias, scale=scale), nn.BatchNorm2d(16), \
            SignSTE()
        self.c2 = BinaryConv2d(16, 32, 3, stride=2, padding=1, bias=bias, scale=scale)
        self.bn2, self.ht2, self.act2 = nn.BatchNorm2d(32), nn.Hardtanh(), SignSTE()
        self.pool = nn.MaxPool2d(2)
        self.fc, self.bn3 = BinaryLinear(32 * 3 * 3, 10, bias=bias, scale=scale), nn.BatchNorm1d(10)
        self.where_sign = where_sign

    def hidden(self, x):
        x = torch.where(x * 2 - 1 >= 0, 1.0, -1.0)
        h1 = self.act1(self.bn1(self.c1(x)))
        v = self.ht2(self.bn2(self.c2(h1)))
        h2 = torch.where(v >= 0, 1.0, -1.0) if self.where_sign else self.act2(v)
        return h1, h2, self.pool(h2)

    def forward(self, x):
        return self.bn3(self.fc(self.hidden(x)[2].flatten(1)))


def make_bcnn(seed: int, **kw) -> BCNN:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = BCNN(**kw)
    with torch.no_grad():
        for m in (net.c1, net.c2, net.fc):  # clipped to [-1, 1] as BinaryNet trains them: alphas about 1/2
            m.weight.uniform_(-1, 1, generator=gen)
    for bn, spread in ((net.bn1, 6.0), (net.bn2, 40.0), (net.bn3, 40.0)):
        randomize_bn(bn, gen, spread)
    return net.eval()


@pytest.mark.parametrize("seed, scale, bias", [(0, False, True), (1, True, True), (2, True, False)])
def test_binary_cnn_matches_torch_bit_for_bit(seed, scale, bias, helpers):
    net = make_bcnn(seed, scale=scale, bias=bias, where_sign=seed == 1)
    x = images(100 + seed, 600)
    cm = from_torch(net, x[:1])
    nodes = cm.to_dict()["nodes"]
    conv = {"dilation": [1, 1], "groups": 1, "input": 0, "output": 1}
    assert [(n["op"], n.get("attrs")) for n in nodes] == [
        ("sign", {"scale": 2.0, "shift": -1.0}),
        ("bconv2d", {"stride": [1, 1], "padding": [1, 1, 1, 1], **conv}),
        ("bconv2d", {"stride": [2, 2], "padding": [1, 1, 1, 1], **conv}),
        ("max_pool2d", {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0, 0, 0], "ceil_mode": 0}),
        ("flatten", None), ("blinear", {"input": 0, "output": 0})]
    info = cm.metadata["binary_layers"]
    assert info["c1"]["folded"][-2:] == ["bn1", "act1"] and {"bn2", "ht2"} <= set(info["c2"]["folded"])
    assert info["c1"]["flipped_rows"] > 0 and info["c2"]["flipped_rows"] > 0  # negative batch-norm scales
    assert info["fc"]["folded"] == ["bn3"]
    assert [r.encoding for r in cm.layers] == ["binary"] * 3 and cm.layers[1].shape == (32, 16, 3, 3)
    t1 = cm.binary_layers()["c1"].second
    assert (t1 * 2 == np.round(t1 * 2)).all() and (t1 != np.round(t1)).any()  # half thresholds (K = 9, padded)
    with torch.no_grad():
        h1, h2, pooled = net.hidden(x)
        want = net(x).numpy()
    vals = cm.run_numpy(x.numpy(), all_values=True)
    np.testing.assert_array_equal(vals[2], h1.numpy())  # every hidden bit, borders included
    np.testing.assert_array_equal(vals[3], h2.numpy())
    np.testing.assert_array_equal(vals[4], pooled.numpy())
    got = vals[-1]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    assert (got.argmax(1) == want.argmax(1)).all()
    helpers.assert_runtime_equals(cm.to_bytes(), x.numpy(), got)
    if seed == 1:  # binary= keyed by a conv's path: c1 stays float (alpha * sign(W), its batch norm folded)
        f = from_torch(net, x[:1], binary={"c1": False})
        assert [n["op"] for n in f.to_dict()["nodes"]][:4] == ["sign", "conv2d", "sign", "bconv2d"]
        assert (f.load().run(x.numpy()).argmax(1) == want.argmax(1)).mean() > 0.98


def boundary_net(c: int, kernel, stride, padding, dilation, means, gammas, betas, scale=False):
    """sign -> BinaryConv2d (no bias) -> BatchNorm2d (eps 0, var 4: the pre-sign value is exactly 0 where the dot
    equals the mean) -> SignSTE."""
    rows = len(means)
    torch.manual_seed(c * 31 + rows)
    conv = BinaryConv2d(c, rows, kernel, stride=stride, padding=padding, dilation=dilation, bias=False, scale=scale)
    bn = nn.BatchNorm2d(rows, eps=0.0)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor(means, dtype=torch.float32))
        bn.running_var.fill_(4.0)
        bn.weight.copy_(torch.tensor(gammas, dtype=torch.float32))
        bn.bias.copy_(torch.tensor(betas, dtype=torch.float32))
    return nn.Sequential(SignSTE(), conv, bn, SignSTE()).eval()


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("c, kernel, stride, padding, dilation, size", [
    (1, 3, 1, 1, 1, (7, 6)),             # K = 9 odd: inside windows odd dots, padded windows (4, 6 taps) even
    (3, 3, 2, (2, 1), 1, (9, 8)),        # K = 27, windows with 3, 6, 9 taps in a row / column
    (1, (2, 3), 1, "same", 1, (6, 7)),   # asymmetric padding: top 0, bottom 1 (torch's "same")
    (2, 4, 1, "same", 1, (8, 8)),        # top / left 1, bottom / right 2
    (5, 3, 1, 2, 2, (7, 7)),             # dilation 2
])
def test_thresholds_exact_at_the_border(c, kernel, stride, padding, dilation, size, helpers):
    """Batch-norm means sitting exactly on dots of either parity (reached by inside or by padded windows only),
    negative scales (flips), constant rows (gamma 0): every output bit equals torch's, at every position."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    k = c * kh * kw
    means = [1, 2, 0, -1, -2, 3, k - 2, -k + 1, 0.5, 4, 4]
    gammas = [1, 1, -1, 1, -2, -1, 1, 1, 1, 0, 0]
    betas = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, -0.5]
    net = boundary_net(c, kernel, stride, padding, dilation, means, gammas, betas)
    x = torch.randn(400, c, *size, generator=torch.Generator().manual_seed(k))
    cm = from_torch(net, x[:1])
    assert [n["op"] for n in cm.to_dict()["nodes"]] == ["sign", "bconv2d"]
    layer = cm.binary_layers()["1"]
    t = layer.second
    assert t[9] == 0 and t[10] == k + 1  # gamma 0: always +1 / always -1
    assert (t[:9] * 2 == np.round(t[:9] * 2)).all()
    with torch.no_grad():
        want = net(x).numpy()
    got = cm.run_numpy(x.numpy())
    np.testing.assert_array_equal(got, want)
    with torch.no_grad():
        dot = net[1](net[0](x))
    assert (dot[:, 0] == 1).any() or (dot[:, 1] == 2).any()  # the pre-sign value is exactly 0 somewhere
    helpers.assert_runtime_equals(cm.to_bytes(), x.numpy(), want)


def test_fold_thresholds_every_integer():
    # dots -2..2 (K = 2): row 0 rises at dot -1 (odd: a padded window), row 1 falls, rows 2, 3 constant
    pos = np.array([[0, 1, 1, 0], [1, 1, 1, 0], [1, 0, 1, 0], [1, 0, 1, 0], [1, 0, 1, 0]], dtype=bool)
    th = fold_thresholds(pos, "layer 'c'", every_integer=True)
    np.testing.assert_array_equal(th.T, [0.5, 1.5, 0, 3])  # +1 iff dot + K >= 2 T (row 1: -dot + 2 >= 3)
    np.testing.assert_array_equal(th.flip, [False, True, False, False])


def test_pm_alpha_conv2d_becomes_bconv2d_and_binary_option():
    """A plain nn.Conv2d whose weight is +-alpha per output channel (bias, BatchNorm2d, hardtanh, sign after it)
    becomes a bconv2d with thresholds; ``binary=`` keyed by the conv's path keeps it float."""
    torch.manual_seed(11)
    conv2 = nn.Conv2d(8, 12, 3, padding=1)
    with torch.no_grad():
        alpha = torch.rand(12, 1, 1, 1) + 0.05
        conv2.weight.copy_(torch.where(torch.randn(12, 8, 3, 3) >= 0, 1.0, -1.0) * alpha)
    bn = nn.BatchNorm2d(12)
    randomize_bn(bn, torch.Generator().manual_seed(11), 10.0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), SignSTE(), conv2, bn, nn.Hardtanh(), SignSTE(),
                        nn.Flatten(), nn.Linear(12 * 6 * 6, 5)).eval()
    x = torch.randn(300, 3, 8, 8)
    cm = from_torch(net, x[:1])
    ops = [(n["op"], (n.get("attrs") or {}).get("input")) for n in cm.to_dict()["nodes"]]
    assert ops == [("conv2d", None), ("sign", None), ("bconv2d", 0), ("flatten", None), ("linear", None)]
    np.testing.assert_allclose(cm.binary_layers()["3"].alphas, alpha.flatten().numpy())
    assert cm.metadata["binary_layers"]["3"]["folded"][:2] == ["bias", "4"]
    with torch.no_grad():
        hidden = net[:7](x).numpy()
        want = net(x).numpy()
    vals = cm.run_numpy(x.numpy(), all_values=True)
    np.testing.assert_array_equal(vals[3], hidden)
    np.testing.assert_allclose(vals[-1], want, rtol=1e-4, atol=1e-4)
    runtime_close(cm, x.numpy(), want, 1e-4)
    for off in (False, {"3": False}):
        f = from_torch(net, x[:1], binary=off)
        assert [n["op"] for n in f.to_dict()["nodes"]] == ["conv2d", "sign", "conv2d", "clamp", "sign", "flatten",
                                                          "linear"]
    with pytest.raises(ValueError, match=r"layer '0'.*not binary"):
        from_torch(net, x[:1], binary={"0": True})


def test_real_output_conv_batchnorm_folds_into_alphas(helpers):
    torch.manual_seed(12)
    net = nn.Sequential(SignSTE(), BinaryConv2d(4, 10, 3, stride=2, padding=1, scale=True),
                        nn.BatchNorm2d(10)).eval()
    randomize_bn(net[2], torch.Generator().manual_seed(12), 5.0)
    x = torch.randn(200, 4, 9, 9)
    cm = from_torch(net, x[:1])
    layer = cm.binary_layers()["1"]
    assert (layer.input, layer.output) == (0, 0) and (layer.alphas >= 0).all()
    assert cm.metadata["binary_layers"]["1"]["folded"] == ["2"] and cm.metadata["binary_layers"]["1"]["flipped_rows"]
    with torch.no_grad():
        want = net(x).numpy()
    got = cm.load().run(x.numpy())
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    np.testing.assert_array_equal(got, cm.run_numpy(x.numpy()))  # one fma per output, as the reference
    helpers.assert_runtime_equals(cm.to_bytes(), x.numpy(), got)


def test_real_input_first_layer_is_input_1():
    """A binary conv reading the image itself takes real inputs (input 1): its batch norm folds into its alphas
    and bias, the sign after it stays a sign op; the next binary conv reads that sign (input 0)."""
    torch.manual_seed(13)
    net = nn.Sequential(BinaryConv2d(3, 8, 3, padding=1, scale=True), nn.BatchNorm2d(8), SignSTE(),
                        BinaryConv2d(8, 6, 3), nn.BatchNorm2d(6), SignSTE()).eval()
    for i, bn in ((1, net[1]), (4, net[4])):
        randomize_bn(bn, torch.Generator().manual_seed(i), 4.0)
    x = torch.randn(200, 3, 7, 7)
    cm = from_torch(net, x[:1])
    assert [(n["op"], (n.get("attrs") or {}).get("input"), (n.get("attrs") or {}).get("output"))
            for n in cm.to_dict()["nodes"]] == [("bconv2d", 1, 0), ("sign", None, None), ("bconv2d", 0, 1)]
    with torch.no_grad():
        first = net[:3](x).numpy()
        want = net(x).numpy()
    vals = cm.run_numpy(x.numpy(), all_values=True)
    assert (vals[2] == first).mean() > 0.99  # the real-input conv sums in another order: a rare sign may differ
    got = cm.load().run(x.numpy())
    assert (got == want).mean() > 0.98 and (got == vals[-1]).mean() > 0.98


def test_grouped_binary_conv_is_refused_by_name():
    with pytest.raises(ValueError, match=r"BinaryConv2d takes groups 1.*groups=2"):
        BinaryConv2d(4, 8, 3, groups=2)
    conv = nn.Conv2d(4, 8, 3, groups=2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.where(torch.randn(8, 2, 3, 3) >= 0, 1.0, -1.0))
    net = nn.Sequential(SignSTE(), nn.Sequential(conv)).eval()
    x = torch.zeros(1, 4, 6, 6)
    assert [n["op"] for n in from_torch(net, x).to_dict()["nodes"]] == ["sign", "conv2d"]  # automatic: stays float
    for binary in ({"1.0": True}, True):
        with pytest.raises(pyruntime.UnsupportedError,
                           match=r"layer '1\.0'.*grouped convolution \(groups=2\) cannot be binary.*groups 1"):
            from_torch(net, x, binary=binary)


def test_binary_conv2d_module_forward():
    torch.manual_seed(14)
    m = BinaryConv2d(3, 5, 3, padding=1, scale=True)
    with torch.no_grad():
        m.weight[0, 0, 0, 0] = 0.0  # sign(0) = +1
    x = torch.randn(2, 3, 6, 6)
    s = torch.where(m.weight >= 0, 1.0, -1.0)
    want = torch.nn.functional.conv2d(x, s, None, 1, 1) * m.weight.abs().mean(dim=(1, 2, 3))[:, None, None] + \
        m.bias[:, None, None]
    torch.testing.assert_close(m(x), want)
    m(x).sum().backward()
    assert m.weight.grad is not None and m.weight.grad.shape == m.weight.shape
    assert "scale=True" in repr(m)


def loop_bconv2d(x, signs, alphas, second, stride, pad, output):
    """bconv2d of FORMAT.md 2.6 by plain loops: the dot sums the window's taps inside the input only."""
    n, c, h, w = x.shape
    o, _, kh, kw = signs.shape
    k = c * kh * kw
    oh = (h + pad[0] + pad[2] - kh) // stride + 1
    ow = (w + pad[1] + pad[3] - kw) // stride + 1
    b = np.where(x >= 0, 1, -1)
    y = np.zeros((n, o, oh, ow), np.float32)
    for i in range(oh):
        for j in range(ow):
            dot = np.zeros((n, o), np.int64)
            for ky in range(kh):
                for kx in range(kw):
                    yy, xx = i * stride - pad[0] + ky, j * stride - pad[1] + kx
                    if 0 <= yy < h and 0 <= xx < w:
                        dot += b[:, :, yy, xx] @ signs[:, :, ky, kx].T.astype(np.int64)
            if output == 1:
                y[:, :, i, j] = np.where(dot + k >= 2 * second[None, :], 1, -1)
            else:
                y[:, :, i, j] = (dot * alphas[None, :].astype(np.float64) + second[None, :]).astype(np.float32)
    return y


def test_graph_bconv2d_padding_contributes_zero_and_checks(helpers):
    rng = np.random.default_rng(15)
    signs = np.where(rng.random((6, 3, 3, 2)) < 0.5, 1, -1)
    k = 18
    t = np.array([0, 0.5, 9, 9.5, 13, k + 1], np.float32)
    pad = [2, 0, 1, 1]
    g = Graph((3, 7, 5))
    v = g.bconv2d(g.input, signs, thresholds=t, stride=2, padding=pad, input=0, name="bc")
    assert g.shape(v) == (6, 4, 3) and g.is_binary(v) and g.is_binary(g.max_pool2d(v, 2))
    cm = from_graph(g)
    x = rng.standard_normal((40, 3, 7, 5)).astype(np.float32)
    want = loop_bconv2d(x, signs, None, t, 2, pad, 1)
    vals = cm.run_numpy(x, all_values=True)
    np.testing.assert_array_equal(vals[1], want)
    helpers.assert_runtime_equals(cm.to_bytes(), x, vals[-1])
    # output 0: one fma; the loop's float64 product and sum rounded once agree here (small integers and alphas)
    g2 = Graph((3, 7, 5))
    alphas, bias = np.array([0.5, 1, 2, 0.25, 1, 4], np.float32), np.arange(6, dtype=np.float32)
    g2.bconv2d(g2.input, signs, alphas, bias=bias, stride=2, padding=pad, input=0, name="bc")
    cm2 = from_graph(g2)
    np.testing.assert_array_equal(cm2.run_numpy(x), loop_bconv2d(x, signs, alphas, bias, 2, pad, 0))
    helpers.assert_runtime_equals(cm2.to_bytes(), x, cm2.run_numpy(x))
    assert cm2.layers[0].op == "bconv2d" and cm2.layers[0].shape == (6, 3, 3, 2)
    np.testing.assert_array_equal(cm2.dense_weights()["bc"][0], alphas[:, None, None, None] * signs)
    g3 = Graph((3, 7, 5))
    with pytest.raises(ValueError, match=r"layer 'a' \(bconv2d\): thresholds must be multiples of 1/2, got 0.25"):
        g3.bconv2d(g3.input, signs, thresholds=[0.25] * 6, input=0, name="a")
    with pytest.raises(ValueError, match=r"layer 'b' \(bconv2d\): threshold 19.5 at \[0\] is out of range 0..19"):
        g3.bconv2d(g3.input, signs, thresholds=[19.5] * 6, input=0, name="b")
    with pytest.raises(ValueError, match=r"layer 'c' \(bconv2d\): thresholds \(a \+-1 output\) need input 0"):
        g3.bconv2d(g3.input, signs, thresholds=t, input=1, name="c")
    with pytest.raises(ValueError, match=r"layer 'd' \(bconv2d\): signs must be a 4-D"):
        g3.bconv2d(g3.input, signs[0], name="d")
    with pytest.raises(ValueError, match=r"layer 'e' \(bconv2d\): signs .* expect 2 input channels.*groups 1"):
        g3.bconv2d(g3.input, signs[:, :2], name="e")
    with pytest.raises(ValueError, match=r"layer 'f' \(bconv2d\): signs must be \+1 or -1, got 0 at \[1, 2, 0, 1\]"):
        s0 = signs.copy()
        s0[1, 2, 0, 1] = 0
        g3.bconv2d(g3.input, s0, name="f")
    with pytest.raises(ValueError, match="layer 'bc' is binary \\(bconv2d\\)"):
        from_graph(g2, bits={"bc": 4})
