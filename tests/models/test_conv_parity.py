"""Convolutional networks end to end: a ResNet-20 (CIFAR shapes, basic blocks with batch norm and residual adds,
1x1-conv downsampling shortcuts) and a MobileNet-style net (depthwise + pointwise convs with batch norm and
ReLU6, inverted residuals), random weights, eval mode, through from_torch and the runtime.

(a) lossless fp32 conversion: runtime vs the torch net, max abs difference <= 1e-4 of the output's max abs;
(b) 70% pruned, 4-bit shared: torch running the same shared weights (assign_weights) vs the runtime on 1000
random inputs: the same argmax on >= 99.9% of them and the same difference bound.
About 20 s on 2 cores."""
from __future__ import annotations

import copy
import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from pyruntime.convert import assign_weights, from_torch

REL = 1e-4


# ---- ResNet-20 (He et al. 2016, CIFAR-10 variant) ---------------------------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class ResNet20(nn.Module):
    def __init__(self, blocks: int = 3, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin, stages = 16, []
        for i, c in enumerate((16, 32, 64)):
            stage = []
            for j in range(blocks):
                stage.append(BasicBlock(cin, c, 2 if i > 0 and j == 0 else 1))
                cin = c
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


# ---- MobileNet-style -------------------------------------------------------------------------------------------
def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, *([nn.ReLU6(inplace=True)] if act else []))


class DepthwiseSeparable(nn.Module):
    """MobileNet v1 block: 3x3 depthwise + BN + ReLU6, 1x1 pointwise + BN + ReLU6."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.dw = _conv_bn(cin, cin, 3, stride, groups=cin)
        self.pw = _conv_bn(cin, cout, 1)

    def forward(self, x):
        return self.pw(self.dw(x))


class InvertedResidual(nn.Module):
    """MobileNet v2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection, residual add at stride 1."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int = 4) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.body = nn.Sequential(_conv_bn(cin, hidden, 1), _conv_bn(hidden, hidden, 3, stride, groups=hidden),
                                  _conv_bn(hidden, cout, 1, act=False))

    def forward(self, x):
        return x + self.body(x) if self.use_res else self.body(x)


class MobileNetish(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = _conv_bn(3, 16, 3, 2)
        self.blocks = nn.Sequential(DepthwiseSeparable(16, 24, 1), DepthwiseSeparable(24, 32, 2),
                                    InvertedResidual(32, 32, 1), InvertedResidual(32, 48, 2),
                                    InvertedResidual(48, 48, 1), DepthwiseSeparable(48, 64, 1))
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(self.drop(x))


def _randomized(net: nn.Module, seed: int) -> nn.Module:
    """Random weights (torch's init) and random batch-norm statistics and affine parameters, eval mode."""
    gen = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                m.weight.copy_(0.6 + 0.6 * torch.rand(n, generator=gen))
                m.bias.copy_(0.2 * torch.randn(n, generator=gen))
    return net.eval()


@functools.cache
def _net(kind: str) -> nn.Module:
    torch.manual_seed(0 if kind == "resnet20" else 1)
    return _randomized(ResNet20() if kind == "resnet20" else MobileNetish(), 0)


def _inputs(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _torch(net: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return net(x).numpy()


def _rel_diff(got: np.ndarray, ref: np.ndarray) -> float:
    assert got.shape == ref.shape
    return float(np.abs(got - ref).max() / np.abs(ref).max())


EXPECTED = {  # layers, folded batch norms
    "resnet20": (22, 21),
    "mobilenet": (1 + 2 * 3 + 3 * 3 + 1, 1 + 2 * 3 + 3 * 3),
}


@pytest.mark.parametrize("kind", ["resnet20", "mobilenet"])
def test_lossless_fp32_conversion(kind):
    net = _net(kind)
    cm = from_torch(net, _inputs(2, 0))
    layers, folded = EXPECTED[kind]
    assert len(cm.layers) == layers and len(cm.metadata["folded_batchnorm"]) == folded
    ops = [n["op"] for n in cm.to_dict()["nodes"]]
    assert "batch_norm" not in ops and ops.count("add") == (9 if kind == "resnet20" else 2)
    x = _inputs(64, 1)
    ref = _torch(net, x)
    got = cm.load().run(x.numpy())
    assert _rel_diff(got, ref) <= REL
    assert _rel_diff(cm.run_numpy(x[:4].numpy()), ref[:4]) <= REL  # the numpy reference agrees too
    assert np.array_equal(got.argmax(1), ref.argmax(1))


@pytest.mark.parametrize("kind", ["resnet20", "mobilenet"])
def test_pruned_shared_weights_match_torch_on_1000_inputs(kind):
    net = _net(kind)
    cm = from_torch(net, _inputs(2, 0), sparsity=0.7, bits=4)
    w = cm.dense_weights()
    for r in cm.layers:
        assert r.nonzeros == round(0.3 * np.prod(r.shape))
        assert np.unique(w[r.name][0][w[r.name][0] != 0]).size <= 16
    assert cm.ratio > 4
    twin = copy.deepcopy(net)
    assign_weights(twin, cm)
    first = "conv1" if kind == "resnet20" else "stem.0"
    assert np.array_equal(twin.get_submodule(first).weight.detach().numpy(), w[first][0])
    x = _inputs(1000, 2)
    ref = _torch(twin, x)
    got = cm.load().run(x.numpy())
    assert _rel_diff(got, ref) <= REL
    agree = float(np.mean(got.argmax(1) == ref.argmax(1)))
    assert agree >= 0.999, agree
    # the compressed net is a different function from the original: make sure the check is not vacuous
    assert _rel_diff(got[:16], _torch(net, x[:16])) > 10 * REL
