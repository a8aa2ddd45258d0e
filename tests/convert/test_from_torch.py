"""from_torch: fx capture of Linear/ReLU/Flatten/Softmax nets, parity with torch on the same weights."""
from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import pyruntime
from pyruntime.convert import assign_weights, from_torch


class CustomNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 40)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Sequential(nn.Linear(40, 24), nn.ReLU(), nn.Linear(24, 10))

    def forward(self, x):
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        x = self.drop(x)
        return F.softmax(self.head(x), dim=-1)


class FlattenNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(64, 32)
        self.b = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        x = torch.relu(self.a(x))
        return self.b(x).softmax(dim=1)


def _sequential():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(inplace=True), nn.Linear(48, 32), nn.ReLU(),
                         nn.Linear(32, 10), nn.Softmax(dim=1))


def _parity(net, cm, x):
    """Runtime output vs torch running the SAME compressed weights."""
    ref_net = copy.deepcopy(net).eval()
    assign_weights(ref_net, cm)
    with torch.no_grad():
        ref = ref_net(x).numpy()
    got = pyruntime.load(cm.to_bytes()).run(x.numpy())
    assert got.shape == ref.shape
    scale = max(1.0, float(np.abs(ref).max()))
    assert np.abs(got - ref).max() <= 1e-5 * scale
    return got, ref


@pytest.mark.parametrize("make", [_sequential, CustomNet, FlattenNet], ids=["sequential", "custom", "flatten"])
@pytest.mark.parametrize("sparsity,bits", [(None, None), (0.9, None), (0.9, 5), (None, 3)])
def test_parity_with_torch(make, sparsity, bits):
    torch.manual_seed(0)
    net = make().eval()
    x = torch.randn(6, 1, 8, 8)
    cm = from_torch(net, x, sparsity=sparsity, bits=bits)
    _parity(net, cm, x)
    if sparsity is None and bits is None:  # lossless: matches the original net itself
        with torch.no_grad():
            np.testing.assert_allclose(cm.load().run(x.numpy()), net(x).numpy(), atol=1e-5)
    weights = cm.dense_weights()
    for r in cm.layers:
        w = weights[r.name][0]
        if sparsity:
            assert r.nonzeros == np.count_nonzero(w) == round((1 - sparsity) * np.prod(r.shape))
        if bits:  # shared; a tiny layer may still store its few shared values as f32 if that is smaller
            assert np.unique(w[w != 0]).size <= 2**bits
            assert r.bits <= bits or r.encoding in ("dense", "csr")


def test_layer_names_are_module_paths():
    torch.manual_seed(0)
    cm = from_torch(CustomNet(), torch.zeros(2, 64), sparsity={"fc1": 0.8}, bits={"head.2": 2})
    assert [r.name for r in cm.layers] == ["fc1", "head.0", "head.2"]
    assert cm.layers[0].nonzeros == round(0.2 * 40 * 64)
    assert cm.layers[2].bits <= 2
    cm = from_torch(nn.Linear(5, 3), torch.zeros(1, 5))
    assert [r.name for r in cm.layers] == ["linear"]


def test_prune_masks_honoured():
    from torch.nn.utils import prune

    torch.manual_seed(0)
    net = _sequential()
    prune.l1_unstructured(net[1], "weight", amount=0.7)
    with torch.no_grad():
        net[1].weight_orig.add_(1.0)  # "training" after pruning: .weight is stale, weight_orig*mask is not
    cm = from_torch(net, torch.zeros(1, 64))
    assert cm.layers[0].nonzeros == int(net[1].weight_mask.sum())
    w = cm.dense_weights()["1"][0]
    np.testing.assert_array_equal(w, (net[1].weight_orig * net[1].weight_mask).detach().numpy())
    x = torch.randn(4, 64)
    with torch.no_grad():
        net(x)  # refresh .weight through the prune hook
        ref = net(x).numpy()
    np.testing.assert_allclose(cm.load().run(x.numpy()), ref, atol=1e-5)


class Exp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        return torch.exp(self.fc(x))


class Inner(nn.Module):
    def forward(self, x):
        return torch.log(x)


@pytest.mark.parametrize("net,x,pattern", [
    (lambda: nn.Sequential(nn.ConvTranspose2d(1, 4, 3), nn.Flatten(), nn.Linear(400, 10)), (2, 1, 8, 8),
     r"'0'.*ConvTranspose2d"),
    (lambda: Exp(), (2, 16), r"torch\.exp.*Exp"),
    (lambda: nn.Sequential(nn.Linear(16, 8), nn.Sequential(nn.Identity(), Inner())), (2, 16),
     r"torch\.log.*'1\.1'"),
    (lambda: nn.Sequential(nn.Linear(16, 8), nn.Hardswish()), (2, 16), r"'1'.*Hardswish"),
    (lambda: nn.Sequential(nn.Linear(8, 8), nn.LogSoftmax(dim=1)), (2, 8), "LogSoftmax"),
], ids=["conv-transpose2d", "exp", "nested-log", "hardswish-module", "logsoftmax"])
def test_unsupported_raises_naming_op_and_path(net, x, pattern):
    with pytest.raises(pyruntime.UnsupportedError, match=pattern):
        from_torch(net(), torch.zeros(*x))


def test_unsupported_shapes_and_flows():
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x):
            return self.fc(x) * x.sum(dim=1, keepdim=True)  # a reduction: not an op of the format

    class BadView(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(32, 4)

        def forward(self, x):
            return self.fc(x.view(-1, 32))  # mixes samples when a sample has 64 features

    class Branch(nn.Module):
        def forward(self, x):
            return x.relu() if x.sum() > 0 else x

    with pytest.raises(pyruntime.UnsupportedError, match="Tensor.sum"):
        from_torch(Residual(), torch.zeros(2, 8))
    with pytest.raises(pyruntime.UnsupportedError, match="reshapes"):
        from_torch(BadView(), torch.zeros(2, 64))
    with pytest.raises(pyruntime.UnsupportedError, match="trace"):
        from_torch(Branch(), torch.zeros(2, 8))
    with pytest.raises(pyruntime.UnsupportedError, match="softmax.*non-batch dim"):
        from_torch(nn.Sequential(nn.Softmax(dim=0)), torch.zeros(2, 3, 4))


def test_save_load_run_round_trip(tmp_path):
    torch.manual_seed(1)
    net = _sequential().eval()
    x = torch.randn(3, 1, 8, 8)
    cm = from_torch(net, x, sparsity=0.8, bits=4)
    path = tmp_path / "net.pyrt"
    size = cm.save(path)
    m = pyruntime.load(str(path))
    assert m.file_bytes == size == len(cm.to_bytes())
    got, _ = _parity(net, cm, x)
    np.testing.assert_array_equal(m.run(x.numpy()), got)
    assert m.inputs[0]["shape"] == (None, 1, 8, 8)


def test_batchnorm_after_linear_is_folded():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(16, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 4, bias=False),
                        nn.BatchNorm1d(4, affine=False))
    net.train()
    with torch.no_grad():  # give the running statistics something to remember
        for _ in range(20):
            net(torch.randn(32, 16) * 3 + 1)
    net.eval()
    x = torch.randn(5, 16)
    cm = from_torch(net, x)
    assert [r.name for r in cm.layers] == ["0", "3"]
    with torch.no_grad():
        ref = net(x).numpy()
    np.testing.assert_allclose(cm.load().run(x.numpy()), ref, rtol=1e-5, atol=1e-5)
    # pruning applies to the folded weights, and the runtime still matches them
    cm = from_torch(net, x, sparsity=0.5, bits=4)
    np.testing.assert_allclose(cm.load().run(x.numpy()), cm.run_numpy(x.numpy()), rtol=1e-5, atol=1e-5)
    with pytest.raises(pyruntime.UnsupportedError, match="batch norm"):
        from_torch(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.BatchNorm1d(4)).eval(), torch.zeros(2, 4))
