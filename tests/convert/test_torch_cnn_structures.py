"""from_torch on whole CNNs as torchvision builds them (tests/convert/torch_models.py): VGG-16, ResNet-50,
MobileNet-V2, EfficientNet-B0 (squeeze-excitation: a [B, C, 1, 1] gate times the feature map, SiLU), and a
small net of Conv1d, nearest upsampling, LeakyReLU, Tanh, Sigmoid and a 3x3 adaptive average pool.

Dense, the runtime matches torch float32 to 1e-4 of the output's scale, with one layer per conv / Linear and
every batch norm folded; pruned (0.5) and shared (4 bits), the runtime matches the converter's float64
reference of the compressed weights (``cm.run_numpy``) to 1e-4."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import torch_models as tm

import pyruntime
from pyruntime.convert import from_torch

TOL = 1e-4  # max |got - ref| / max |ref|


@dataclass(frozen=True)
class Case:
    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]  # per sample
    layers: int  # convs and Linears (the converted model's layers)
    folded: int  # batch norms folded into the conv before them


CASES = {
    # VGG-16 on 32x32: five pools leave 1x1, the adaptive pool repeats it to 7x7
    "vgg16": Case(lambda: tm.VGG16(num_classes=10, width=0.125), (3, 32, 32), 13 + 3, 0),
    # 53 convs (stem, 16 x 3 in the Bottlenecks, 4 downsamples) + fc
    "resnet50": Case(lambda: tm.ResNet50(num_classes=10, width=0.25), (3, 64, 64), 53 + 1, 53),
    # stem, 17 blocks (the first without expansion: 2 convs, then 3), the last 1x1, classifier
    "mobilenetv2": Case(lambda: tm.MobileNetV2(num_classes=10, width=0.5), (3, 64, 64), 1 + 2 + 16 * 3 + 1 + 1, 52),
    # stem, 16 MBConv (the first 4 convs with the SE pair, the others 5), the last 1x1, classifier
    "efficientnetb0": Case(lambda: tm.EfficientNetB0(num_classes=10, width=0.5), (3, 64, 64),
                           1 + 4 + 15 * 5 + 1 + 1, 1 + 2 + 15 * 3 + 1),
    "small": Case(tm.SmallMixed, (4, 16), 3, 0),
}


def _err(got: np.ndarray, ref: np.ndarray) -> float:
    assert got.shape == ref.shape, (got.shape, ref.shape)
    return float(np.abs(got.astype(np.float64) - ref).max() / np.abs(ref).max())


def _net(name: str) -> nn.Module:
    return tm.randomize(CASES[name].build(), seed=list(CASES).index(name))


def _x(name: str, batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, *CASES[name].input_shape), dtype=np.float32)


@pytest.mark.parametrize("name", list(CASES))
def test_dense_matches_torch(name):
    net, case = _net(name), CASES[name]
    cm = from_torch(net, torch.zeros(1, *case.input_shape))
    x = _x(name, 3)
    with torch.inference_mode():
        ref = net(torch.from_numpy(x)).numpy()
    got = cm.load().run(x)
    err = _err(got, ref)
    assert err <= TOL, f"{name}: normalized max error {err:.3g} > {TOL}"
    assert len(cm.layers) == case.layers == len([n for n in tm.weighted_layers(net)])
    assert sorted(r.name for r in cm.layers) == sorted(tm.weighted_layers(net))
    assert len(cm.metadata.get("folded_batchnorm", {})) == case.folded
    # the saved file runs the same on 2 threads, bit for bit
    np.testing.assert_array_equal(pyruntime.load(cm.to_bytes(), threads=2).run(x), got)


@pytest.mark.parametrize("name", list(CASES))
def test_pruned_and_shared_runtime_equals_the_reference(name):
    net, case = _net(name), CASES[name]
    cm = from_torch(net, torch.zeros(1, *case.input_shape), sparsity=0.5, bits=4)
    x = _x(name, 2, seed=1)
    got, ref = cm.load().run(x), cm.run_numpy(x)
    err = _err(got, ref)
    assert err <= TOL, f"{name}: normalized max error {err:.3g} > {TOL}"
    for r in cm.layers:
        assert r.encoding in ("codebook", "csr+codebook"), (r.name, r.encoding)
        assert r.density <= 0.5 + 1.0 / r.nonzeros if r.nonzeros else True


def test_squeeze_excitation_gate_is_a_broadcast_multiply():
    """EfficientNet's gate: [B, C, 1, 1] sigmoid output times the [B, C, H, W] map (not a reshape of either)."""
    cm = from_torch(_net("efficientnetb0"), torch.zeros(1, 3, 64, 64))
    ops = [n["op"] for n in cm.to_dict()["nodes"]]
    assert ops.count("sigmoid") == 16 and ops.count("mul") == 16
    assert ops.count("silu") == 1 + 15 + 16 + 16 + 1  # stem, expands, depthwise, SE, last conv
