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


# --- convolutional layers: masks and codebooks over the full [out, in, kh, kw] weight ---------------------


def _conv_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 2),
                         nn.Flatten(), nn.Linear(288, 32), nn.ReLU(), nn.Linear(32, 10))


@pytest.fixture(scope="module")
def noise():
    """Small synthetic data: 8x8 one-channel images, labels from a fixed random rule (structure is all the
    tests below need)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(256, 1, 8, 8, generator=gen)
    y = (x[:, 0, :4].sum(dim=(1, 2)) > 0).long() + 2 * (x[:, 0, :, :4].sum(dim=(1, 2)) > 0).long()
    return x, y


def test_weighted_layers_include_convs_and_per_kind():
    net = _conv_net()
    assert list(ft.weighted_layers(net)) == ["0", "3", "5", "7"]
    assert list(ft.linear_layers(net)) == ["5", "7"]  # the old name keeps its meaning
    assert ft.per_kind(net, conv=8, linear=5) == {"0": 8, "3": 8, "5": 5, "7": 5}
    assert ft.per_kind(net, conv=0.5) == {"0": 0.5, "3": 0.5}
    with pytest.raises(ValueError, match="'conv1'"):
        ft.magnitude_masks(net, {"conv1": 0.5})
    with pytest.raises(ValueError, match="'fc9'"):
        ft.share_weights(net, {"fc9": 4})


def test_conv_masks_full_shape_and_honoured_by_training(noise):
    net = _conv_net()
    masks = ft.magnitude_masks(net, {"0": 0.5, "3": 0.75, "5": 0.9})
    assert set(masks) == {"0", "3", "5"}
    for name, s in (("0", 0.5), ("3", 0.75), ("5", 0.9)):
        w = net.get_submodule(name).weight
        assert masks[name].shape == w.shape
        assert float(masks[name].mean()) == pytest.approx(1 - s, abs=0.01)
        # the largest magnitudes survive
        kept, dropped = w.detach().abs()[masks[name] != 0], w.detach().abs()[masks[name] == 0]
        assert float(kept.min()) >= float(dropped.max())
    ft.apply_masks(net, masks)
    before = {n: net.get_submodule(n).weight.detach().clone() for n in masks}
    ft.train(net, noise, epochs=4, batch_size=32, masks=masks, lr=1e-2)
    for name, m in masks.items():
        w = net.get_submodule(name).weight.detach()
        assert torch.all(w[m == 0] == 0), name
        assert not torch.equal(w, before[name])  # the survivors did train
    # gradual pruning reaches each target on conv and linear layers alike, and keeps what it pruned pruned
    net = _conv_net()
    final = ft.prune_gradually(net, noise, ft.per_kind(net, conv=0.6, linear=0.8), epochs=6, batch_size=32,
                               prune_every=4)
    for name, s in ft.per_kind(net, conv=0.6, linear=0.8).items():
        w = net.get_submodule(name).weight.detach()
        assert float((w == 0).float().mean()) == pytest.approx(s, abs=0.01), name
        assert torch.equal(w != 0, final[name] != 0)


def test_conv_sharing_k_values_per_layer(noise):
    net = _conv_net()
    masks = ft.magnitude_masks(net, ft.per_kind(net, conv=0.3, linear=0.5))
    ft.apply_masks(net, masks)
    bits = ft.per_kind(net, conv=3, linear=2)
    books = ft.share_weights(net, bits, masks)
    assert set(books) == set(bits)
    for name, b in bits.items():
        w = net.get_submodule(name).weight.detach()
        c, idx = books[name]
        live = masks[name] != 0
        assert idx.shape == w.shape
        # k <= 2**bits centroids (linear init may leave a few empty near the pruned gap at zero), all used:
        # the layer's surviving weights take exactly k values, the centroids
        assert 2 ** (b - 1) < len(c) <= 2 ** b
        assert torch.equal(torch.unique(idx[live]), torch.arange(len(c)))
        assert torch.equal(torch.unique(w[live]), torch.sort(c).values)
        assert torch.equal(w, c[idx] * masks[name])
    books = ft.finetune_centroids(net, books, noise, epochs=3, lr=1e-2, batch_size=32, masks=masks)
    for name, b in bits.items():
        w = net.get_submodule(name).weight.detach()
        c, idx = books[name]
        assert torch.unique(w[masks[name] != 0]).numel() == len(c) <= 2 ** b  # still k values after fine-tuning
        assert torch.equal(w, c[idx] * masks[name])
        assert torch.all(w[masks[name] == 0] == 0)


def test_conv_centroid_gradient_is_the_sum_of_its_weights_gradients(noise):
    x, y = noise
    net = _conv_net()
    masks = ft.magnitude_masks(net, {"0": 0.4, "3": 0.5})
    ft.apply_masks(net, masks)
    books = ft.share_weights(net, {"0": 2, "3": 3}, masks)
    # the gradient of the loss on the whole set, with respect to each (shared) weight
    net.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    expected = {}
    for name, (c, idx) in books.items():
        g = net.get_submodule(name).weight.grad
        m = masks[name] != 0
        expected[name] = torch.stack([g[m & (idx == k)].sum() for k in range(len(c))])
        assert torch.count_nonzero(expected[name]) == len(c)
    lr = 0.1
    after = ft.finetune_centroids(net, books, (x, y), epochs=1, lr=lr, batch_size=len(y), masks=masks,
                                  optimizer="sgd")  # one full-batch plain SGD step
    for name, (c, _) in books.items():
        torch.testing.assert_close(after[name][0], c - lr * expected[name], rtol=1e-4, atol=1e-6)
        # ... the sum, not the mean of the weights' gradients
        counts = torch.bincount(books[name][1][masks[name] != 0], minlength=len(c))
        assert not torch.allclose(after[name][0], c - lr * expected[name] / counts, rtol=1e-3, atol=1e-6)


def test_compress_conv_net_on_digits_runs_in_the_runtime(digits):
    train, test = digits
    train = (train[0].view(-1, 1, 8, 8), train[1])
    test = (test[0].view(-1, 1, 8, 8), test[1])
    net = _conv_net()
    sparsity, bits = ft.per_kind(net, conv=0.5, linear=0.8), ft.per_kind(net, conv=5, linear=4)
    res = ft.compress(net, train, test, dense_epochs=20, sparsity=sparsity, prune_epochs=20, bits=bits,
                      centroid_epochs=3, centroid_lr=1e-3, batch_size=64, log=None)
    assert res.dense_acc >= 0.93 and res.finetuned_acc >= 0.9, res
    for name, s in sparsity.items():
        w = net.get_submodule(name).weight.detach()
        assert float((w == 0).float().mean()) == pytest.approx(s, abs=0.01)
        assert torch.unique(w[w != 0]).numel() <= 2 ** bits[name]
    cm = from_torch(nn.Sequential(*net, nn.Softmax(dim=1)), test[0][:1], bits=bits)
    assert {r.name for r in cm.layers} == set(bits)
    assert all(r.nonzeros == int((net.get_submodule(r.name).weight != 0).sum()) for r in cm.layers)
    model = pyruntime.load(cm.to_bytes())
    probs = model.run(test[0].numpy())
    with torch.no_grad():
        ref = nn.Sequential(*net, nn.Softmax(dim=1))(test[0]).numpy()
    np.testing.assert_allclose(probs, ref, atol=1e-5)
    acc = float((probs.argmax(1) == test[1].numpy()).mean())
    assert acc == pytest.approx(res.finetuned_acc, abs=1e-9)  # runtime == torch on the same weights


def test_channels_last_conv_net_prunes_and_shares_the_same(noise):
    # the same weights in either memory format give the same masks and codebooks, and survive training
    a, b = _conv_net(), _conv_net().to(memory_format=torch.channels_last)
    assert b[0].weight.is_contiguous(memory_format=torch.channels_last)
    sparsity = ft.per_kind(a, conv=0.5, linear=0.5)
    ma, mb = ft.magnitude_masks(a, sparsity), ft.magnitude_masks(b, sparsity)
    assert all(torch.equal(ma[n], mb[n]) for n in ma)
    ft.apply_masks(b, mb)
    ft.train(b, noise, epochs=1, batch_size=32, masks=mb)
    books = ft.share_weights(b, 3, mb)
    books = ft.finetune_centroids(b, books, noise, epochs=1, batch_size=32, lr=1e-2, masks=mb)
    for name, (c, idx) in books.items():
        w = b.get_submodule(name).weight.detach()
        assert torch.equal(w, c[idx] * mb[name]) and torch.all(w[mb[name] == 0] == 0)
