"""The torch training side (convert.finetune) on scikit-learn's digits: prune, share, fine-tune, convert."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
nn = torch.nn

import pyruntime
from pyruntime.convert import finetune as ft
from pyruntime.convert import from_torch
from pyruntime.datasets import load_digits


@pytest.fixture(autouse=True)
def one_thread():
    # tiny matrices: thread start-up and synchronisation would dominate (badly so on a busy machine)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return ((torch.from_numpy(d.train.x), torch.from_numpy(d.train.y)),
            (torch.from_numpy(d.test.x), torch.from_numpy(d.test.y)))


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def test_magnitude_masks_and_training_keep_zeros(digits):
    train, _ = digits
    net = _net()
    masks = ft.magnitude_masks(net, {"1": 0.8})
    assert set(masks) == {"1"} and float(masks["1"].mean()) == pytest.approx(0.2, abs=1e-3)
    ft.apply_masks(net, masks)
    ft.train(net, train, epochs=1, masks=masks)
    assert torch.all(net[1].weight[masks["1"] == 0] == 0)
    more = ft.magnitude_masks(net, {"1": 0.9}, masks)
    assert torch.all(more["1"] <= masks["1"])  # never revives


def test_compress_pipeline_on_digits(digits):
    train, test = digits
    net = _net()
    res = ft.compress(net, train, test, dense_epochs=15, sparsity={"1": 0.8, "3": 0.5}, prune_epochs=10,
                      bits=4, centroid_epochs=3, centroid_lr=1e-3, batch_size=64, log=None)
    assert res.dense_acc >= 0.9 and res.finetuned_acc >= 0.85
    for name, sparsity in (("1", 0.8), ("3", 0.5)):
        w = net.get_submodule(name).weight.detach().numpy()
        assert np.mean(w == 0) == pytest.approx(sparsity, abs=0.01)
        c, idx = res.books[name]
        assert np.unique(w[w != 0]).size <= 16
        np.testing.assert_array_equal(w, (c[idx] * res.masks[name]).numpy())
    cm = from_torch(nn.Sequential(*net, nn.Softmax(dim=1)), test[0][:1], bits=4)
    assert all(r.encoding in ("csr+codebook", "codebook") for r in cm.layers)
    model = pyruntime.load(cm.to_bytes())
    acc = float((model.run(test[0].numpy()).argmax(1) == test[1].numpy()).mean())
    assert acc == pytest.approx(res.finetuned_acc, abs=1e-9)  # runtime == torch on the same weights
    assert cm.ratio > 5


def test_centroid_finetune_moves_centroids_not_structure(digits):
    train, _ = digits
    net = _net()
    ft.train(net, train, epochs=5)
    masks = ft.prune_gradually(net, train, 0.7, epochs=3, prune_every=5)
    books = ft.share_weights(net, 3, masks)
    before = {n: c.clone() for n, (c, _) in books.items()}
    after = ft.finetune_centroids(net, books, train, epochs=2, lr=1e-3, masks=masks)
    moved = any(not torch.equal(before[n], after[n][0]) for n in books)
    assert moved
    for n, (c, idx) in after.items():
        w = net.get_submodule(n).weight.detach()
        assert torch.equal(w, c[idx] * masks[n])
