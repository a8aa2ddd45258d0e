"""from_torch on convolutional networks: Sequential and DAG capture, batch-norm folding, functional forms,
refusals naming op and module path, pruning masks, per-layer settings, assign_weights."""
from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import pyruntime
from pyruntime.convert import assign_weights, from_torch


def _randomize_bn(net, seed=0):
    """Non-trivial running statistics and affine parameters, so folding has something to fold."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                    m.bias.copy_(torch.rand(n, generator=gen) - 0.5)
    return net.eval()


def _close(got, ref, rel=1e-5):
    assert got.shape == ref.shape
    scale = max(1e-3, float(np.abs(ref).max()))
    assert np.abs(got - ref).max() <= rel * scale, (np.abs(got - ref).max(), scale)


def _torch(net, x):
    with torch.no_grad():
        return net(x).numpy()


def _check(net, x, **kw):
    """Converted model vs torch: the original net when lossless, else torch running the shared weights."""
    cm = from_torch(net, x, **kw)
    ref_net = net
    if kw:
        ref_net = copy.deepcopy(net).eval()
        assign_weights(ref_net, cm)
    ref = _torch(ref_net, x)
    _close(cm.run_numpy(x.numpy()), ref)
    _close(cm.load().run(x.numpy()), ref)
    return cm


def _lenet():
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5),
                         nn.BatchNorm2d(16), nn.ReLU6(inplace=True), nn.AvgPool2d(2, ceil_mode=True),
                         nn.Flatten(), nn.Linear(400, 32), nn.BatchNorm1d(32), nn.Hardtanh(-2, 2), nn.Dropout(),
                         nn.Linear(32, 10), nn.Softmax(dim=1))


class Inception(nn.Module):
    """Values read by several ops, concat, functional pools and activations, a residual add."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding="same")
        self.a = nn.Conv2d(8, 4, 1)
        self.b = nn.Conv2d(8, 6, (3, 5), padding=(1, 2), dilation=1, bias=False)
        self.b_bn = nn.BatchNorm2d(6, affine=False)
        self.c = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4)
        self.mix = nn.Conv2d(18, 8, 1)
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)
        self.dw_bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = F.relu(self.stem(x))
        y = torch.cat([self.a(x), F.relu6(self.b_bn(self.b(x)))], 1)
        y = torch.cat((y, F.max_pool2d(x, 3, 1, 1)), dim=-3)
        y = self.mix(y)
        y += x
        y = torch.add(y, self.c(x)).clamp(min=-1.0, max=3.0)
        y = F.hardtanh(self.dw_bn(self.dw(y)), -2.0, 2.5)
        y = F.avg_pool2d(y, 3, 2, 1, ceil_mode=True, count_include_pad=False)
        y = y.mean((-2, -1), keepdim=True)
        return self.head(y.view(y.size(0), -1))


class Pools(nn.Module):
    def __init__(self, gap: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=(1, 2), padding="valid")
        self.gap = gap
        self.pool = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, x):
        x = F.max_pool2d(self.conv(x), kernel_size=(2, 3), stride=(2, 1), padding=(1, 1), ceil_mode=True)
        x = F.avg_pool2d(torch.clamp_min(x, 0.0), 2, 1)
        if self.gap == "module":
            return torch.flatten(self.pool(x), 1)
        if self.gap == "functional":
            return F.adaptive_avg_pool2d(x, 1).reshape(x.shape[0], -1)
        if self.gap == "mean":
            return x.mean((2, 3))
        return torch.mean(x, dim=[-1, -2], keepdim=True)


def test_sequential_conv_net_lossless_and_compressed():
    torch.manual_seed(0)
    net = _randomize_bn(_lenet())
    x = torch.randn(4, 1, 28, 28)
    cm = _check(net, x)
    assert [r.name for r in cm.layers] == ["0", "3", "8", "12"]
    assert cm.metadata["folded_batchnorm"] == {"3": "4", "8": "9"}
    assert [n["op"] for n in cm.to_dict()["nodes"]] == ["conv2d", "relu", "max_pool2d", "conv2d", "clamp",
                                                        "avg_pool2d", "flatten", "linear", "clamp", "linear",
                                                        "softmax"]
    cm = _check(net, x, sparsity=0.6, bits=4)
    w = cm.dense_weights()["3"][0]
    assert w.shape == (16, 6, 5, 5) and np.count_nonzero(w) == round(0.4 * w.size)


@pytest.mark.parametrize("gap", ["module", "functional", "mean", "mean-keepdim"])
def test_pool_forms(gap):
    torch.manual_seed(1)
    net = Pools(gap).eval()
    x = torch.randn(3, 3, 17, 20)
    cm = _check(net, x)
    ops = [n["op"] for n in cm.to_dict()["nodes"]]
    assert ops[:4] == ["conv2d", "max_pool2d", "clamp", "avg_pool2d"] and "global_avg_pool" in ops


def test_dag_capture_inception_style():
    torch.manual_seed(2)
    net = _randomize_bn(Inception())
    x = torch.randn(3, 3, 12, 12)
    cm = _check(net, x)
    nodes = cm.to_dict()["nodes"]
    ops = [n["op"] for n in nodes]
    assert ops.count("concat") == 2 and ops.count("add") == 2 and ops.count("conv2d") == 6
    assert cm.metadata["folded_batchnorm"] == {"b": "b_bn", "dw": "dw_bn"}
    stem = ops.index("relu") + 1  # the relu after the stem is read by five ops
    assert sum(stem in n["inputs"] for n in nodes) == 5
    by = {r.name: r for r in cm.layers}
    assert by["c"].shape == (8, 2, 3, 3) and by["dw"].shape == (8, 1, 3, 3)
    _check(net, x, sparsity={"mix": 0.5, "b": 0.3}, bits={"stem": 5, "c": 3})


class Reshapes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.unflatten = nn.Unflatten(1, (4, 12, 12))

    def forward(self, x):
        y = self.conv(x)
        y = torch.cat([y, F.relu(y)], dim=2)  # along H: concat axis 1
        y = torch.concat((y, y), -1)  # along W: concat axis 2
        z = y.reshape(y.size(0), 8, -1)  # a per-sample reshape, not a flatten
        z = self.unflatten(z.flatten(1))
        return F.softmax(z.mean((2, 3)), dim=-1)


def test_reshapes_and_concat_along_other_axes():
    torch.manual_seed(9)
    net = Reshapes().eval()
    x = torch.randn(3, 3, 6, 6)
    cm = _check(net, x)
    nodes = cm.to_dict()["nodes"]
    assert [n["op"] for n in nodes] == ["conv2d", "relu", "concat", "concat", "reshape", "flatten", "reshape",
                                        "global_avg_pool", "flatten", "softmax"]
    assert [n["attrs"]["axis"] for n in nodes if n["op"] == "concat"] == [1, 2]
    assert nodes[4]["attrs"]["shape"] == [8, 72] and nodes[6]["attrs"]["shape"] == [4, 12, 12]


class InPlace(nn.Module):
    """In-place ops on values read again later: those reads see the new value, as in torch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.conv(x)
        z = y.relu_()
        a = y + z
        b = F.relu6(a, inplace=True)
        w = self.relu(a)
        return w + b + a.clamp_(max=4.0)


def test_in_place_ops_update_the_value_they_overwrite():
    torch.manual_seed(10)
    net = InPlace().eval()
    x = torch.randn(3, 2, 4, 4) * 5
    cm = from_torch(net, x)
    ref = _torch(net, x.clone())
    _close(cm.run_numpy(x.numpy()), ref)
    _close(cm.load().run(x.numpy()), ref)


class ConvBN(nn.Module):
    def __init__(self, bias: bool, affine: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, padding=1, bias=bias)
        self.bn = nn.BatchNorm2d(6, affine=affine, eps=1e-3)

    def forward(self, x):
        return self.bn(self.conv(x))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_folding_is_exact(bias, affine):
    torch.manual_seed(3)
    net = _randomize_bn(ConvBN(bias, affine))
    x = torch.randn(5, 4, 7, 7)
    cm = from_torch(net, x)
    assert cm.metadata["folded_batchnorm"] == {"conv": "bn"}
    ref = _torch(net, x)
    _close(cm.run_numpy(x.numpy()), ref, 1e-6)
    _close(cm.load().run(x.numpy()), ref, 1e-6)
    # the folded weights are W * gamma / sqrt(var + eps) per output channel
    bn = net.bn
    g = (bn.weight if affine else 1) / torch.sqrt(bn.running_var + bn.eps)
    w, b = cm.dense_weights()["conv"]
    np.testing.assert_allclose(w, (net.conv.weight * g[:, None, None, None]).detach().numpy(), rtol=1e-6)
    b0 = net.conv.bias if bias else 0
    np.testing.assert_allclose(b, ((b0 - bn.running_mean) * g + (bn.bias if affine else 0)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    # assign_weights: the conv gets the folded weights, the batch norm becomes an exact identity
    twin = copy.deepcopy(net)
    assign_weights(twin, cm)
    y = torch.randn(5, 6, 7, 7)
    with torch.no_grad():
        out = twin.bn(y)
    beta = 0 if twin.conv.bias is not None else torch.as_tensor(b)[:, None, None]
    assert torch.equal(out, y + beta)
    assert (twin.conv.bias is not None) == (bias or not affine)
    _close(_torch(twin, x), ref, 1e-6)
    # with sparsity and sharing, torch with the assigned weights matches the runtime
    cm = from_torch(net, x, sparsity=0.5, bits=3)
    twin = copy.deepcopy(net)
    assign_weights(twin, cm)
    _close(cm.load().run(x.numpy()), _torch(twin, x))


def test_pruning_masks_on_conv_are_kept():
    from torch.nn.utils import prune

    torch.manual_seed(4)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=2), nn.Flatten(),
                        nn.Linear(8 * 4 * 4, 4)).eval()
    prune.l1_unstructured(net[0], "weight", amount=0.6)
    prune.random_unstructured(net[2], "weight", amount=0.5)
    with torch.no_grad():
        net[0].weight_orig.add_(1.0)  # "training" after pruning: .weight is stale, weight_orig*mask is not
    x = torch.randn(2, 3, 8, 8)
    cm = from_torch(net, x)
    assert cm.layers[0].nonzeros == int(net[0].weight_mask.sum())
    np.testing.assert_array_equal(cm.dense_weights()["0"][0],
                                  (net[0].weight_orig * net[0].weight_mask).detach().numpy())
    assert cm.layers[1].nonzeros == int(net[2].weight_mask.sum())
    with torch.no_grad():
        net(x)  # refresh .weight through the prune hook
    _close(cm.load().run(x.numpy()), _torch(net, x))
    cm = from_torch(net, x, sparsity={"2": 0.8}, bits={"0": 2})
    w = cm.dense_weights()
    assert not np.any(w["2"][0][net[2].weight_mask.numpy() == 0])  # masked weights stay pruned
    assert np.count_nonzero(w["2"][0]) == round(0.2 * w["2"][0].size)
    assert np.unique(w["0"][0][w["0"][0] != 0]).size <= 4
    twin = copy.deepcopy(net)
    assign_weights(twin, cm)
    _close(cm.load().run(x.numpy()), _torch(twin, x))


def test_layer_names_and_per_layer_settings():
    torch.manual_seed(5)
    net = nn.Sequential()
    net.add_module("features", nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3),
                                             nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    net.add_module("classifier", nn.Linear(16, 10))
    x = torch.randn(2, 3, 10, 10)
    cm = from_torch(net.eval(), x, sparsity={"features.0": 0.75}, bits={"features.2": 3})
    by = {r.name: r for r in cm.layers}
    assert list(by) == ["features.0", "features.2", "classifier"]
    assert by["features.0"].nonzeros == round(0.25 * 16 * 27) and by["features.0"].bits == 32
    assert by["features.2"].nonzeros == 16 * 16 * 9 and by["features.2"].bits <= 3
    assert by["features.2"].encoding in ("codebook", "csr+codebook")
    with pytest.raises(ValueError, match="features.9"):
        from_torch(net, x, sparsity={"features.9": 0.5})


def test_functional_layers_and_bare_conv():
    torch.manual_seed(6)

    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 2, 3, 3) * 0.3)
            self.b = nn.Parameter(torch.randn(4))
            self.bn = nn.BatchNorm2d(4)
            self.fc = nn.Parameter(torch.randn(3, 4 * 5 * 5) * 0.1)

        def forward(self, x):
            y = self.bn(F.conv2d(x, self.w, self.b, stride=2, padding=1, groups=2)).relu()
            return F.linear(y.flatten(1), self.fc)

    x = torch.randn(2, 4, 9, 9)
    net = _randomize_bn(Functional())
    cm = _check(net, x)
    assert [r.name for r in cm.layers] == ["w", "fc"]
    assert cm.metadata["functional_layers"] == {"w": {"weight": "w", "bias": "b"}, "fc": {"weight": "fc", "bias": None}}
    assert cm.metadata["folded_batchnorm"] == {"w": "bn"}
    _check(net, x, sparsity=0.5, bits=4)  # assign_weights through the parameter paths
    conv = nn.Conv2d(4, 3, 2, stride=2).eval()
    cm = _check(conv, x, sparsity=0.5)
    assert [r.name for r in cm.layers] == ["conv"]


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)


class BNAfterRelu(_Block):
    def forward(self, x):
        return self.bn(F.relu(self.conv(x)))


class BNShared(_Block):
    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


class Mul(_Block):
    def forward(self, x):
        return self.conv(x) * x


class Sigmoid(_Block):
    def forward(self, x):
        return torch.sigmoid(self.conv(x))


class ConvTwice(_Block):
    def forward(self, x):
        return self.conv(self.conv(x))


class Broadcast(_Block):
    def forward(self, x):
        return self.conv(x) + x.mean(1, keepdim=True)


class CatBatch(_Block):
    def forward(self, x):
        return torch.cat([self.conv(x), x], 0)


@pytest.mark.parametrize("make,pattern", [
    (lambda: BNAfterRelu(), (r"module 'bn' \(BatchNorm2d\) cannot be folded: it reads 'torch.nn.functional.relu' "
                             r"in the forward of BNAfterRelu \(root module\), not a Conv2d")),
    (lambda: BNShared(), r"module 'bn'.*cannot be folded: the output of 'conv' is also read by 'operator.add'"),
    (lambda: nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect")), r"'0'.*padding_mode 'reflect'"),
    (lambda: nn.Sequential(nn.MaxPool2d(2, dilation=2)), r"'0'.*dilation"),
    (lambda: nn.Sequential(nn.MaxPool2d(2, return_indices=True)), r"'0'.*return_indices"),
    (lambda: nn.Sequential(nn.AvgPool2d(2, divisor_override=3)), r"'0'.*divisor_override"),
    (lambda: nn.Sequential(nn.AdaptiveMaxPool2d(1)), r"'0'.*AdaptiveMaxPool2d"),
    (lambda: ConvTwice(), r"'conv'.*called more than once"),
    (lambda: Broadcast(), r"Tensor\.mean.*over dims 1|operator\.add.*same shape"),
    (lambda: CatBatch(), r"torch\.cat.*dim 0"),
], ids=["bn-after-relu", "bn-shared", "reflect", "pool-dilation", "return-indices", "divisor", "adaptive-max",
        "conv-twice", "broadcast", "cat-batch"])
def test_refusals_name_op_and_module(make, pattern):
    with pytest.raises(pyruntime.UnsupportedError, match=pattern):
        from_torch(make().eval(), torch.zeros(2, 4, 8, 8))


class AddBroadcast(nn.Module):
    def forward(self, x):
        return F.relu(x) + x[:, :1]


@pytest.mark.parametrize("make", [
    lambda: nn.Sequential(nn.AdaptiveAvgPool2d(2)), lambda: nn.Sequential(nn.AdaptiveAvgPool2d((3, 5))),
    lambda: nn.Sequential(nn.Sequential(nn.Identity(), Mul())), lambda: nn.Sequential(Sigmoid()),
    lambda: nn.Sequential(nn.Conv2d(4, 4, 3), nn.LeakyReLU(0.2)), lambda: AddBroadcast(),
], ids=["adaptive-2", "adaptive-3x5", "mul", "sigmoid", "leaky", "add-broadcast"])
def test_ops_of_format_version_5_convert_and_match_torch(make):
    """Once refused: adaptive pools to other sizes, products of activations, sigmoid, leaky relu, broadcasting."""
    torch.manual_seed(0)
    net = make().eval()
    x = torch.randn(3, 4, 8, 8)
    cm = from_torch(net, x)
    with torch.no_grad():
        ref = net(x).numpy()
    np.testing.assert_allclose(cm.load().run(x.numpy()), ref, rtol=1e-5, atol=1e-5)


def test_more_refusals():
    class ClampTensor(nn.Module):
        def forward(self, x):
            return torch.clamp(x, min=x)

    class Unfold(nn.Module):
        def forward(self, x):
            return x.view(-1, 4)

    with pytest.raises(pyruntime.UnsupportedError, match="torch.clamp.*bound"):
        from_torch(ClampTensor(), torch.zeros(2, 3, 4, 4))
    with pytest.raises(pyruntime.UnsupportedError, match="reshapes"):
        from_torch(Unfold(), torch.zeros(2, 3, 4, 4))
    # a Linear after a conv applies to the last axis (W), as torch does (format version 5)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Linear(4, 2)).eval()
    x = torch.randn(2, 3, 4, 4)
    with torch.no_grad():
        np.testing.assert_allclose(from_torch(net, x).load().run(x.numpy()), net(x).numpy(), rtol=1e-5, atol=1e-6)


def test_bn1d_after_linear_with_assign_weights():
    torch.manual_seed(8)
    net = _randomize_bn(nn.Sequential(nn.Linear(12, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(),
                                      nn.Linear(8, 3)))
    x = torch.randn(6, 12)
    cm = _check(net, x)
    assert cm.metadata["folded_batchnorm"] == {"0": "1"}
    _check(net, x, sparsity=0.5, bits=3)
