"""k-means gives the k asked for: empty clusters are re-seeded, k is reported per layer and warned about.

Pruning cuts a gap around zero; the linearly initialised centroids that start in it used to stay empty and
be dropped (bits=4 on a 90%-pruned layer gave 10-12 centroids). Now, once Lloyd has converged, they are
re-seeded by splitting the cluster of largest spread and Lloyd runs on, so a layer gets exactly 2**bits
centroids whenever its surviving weights take that many distinct values, with no more error than before.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import pyruntime
from pyruntime.convert import decode_tensor, from_numpy, kmeans_share, prune_magnitude, shared_weights
from pyruntime.convert.kmeans import _fill_empty


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(2024)


def lloyd_without_reseed(values: np.ndarray, k: int, iters: int = 50, tol: float = 1e-7):
    """The former behaviour, in numpy: linear init, Lloyd, an empty cluster keeps its centroid and is
    dropped at the end. Returns (centroids, index per value)."""
    x = values.astype(np.float64)
    c = np.linspace(x.min(), x.max(), k)
    for _ in range(iters + 1):
        idx = np.searchsorted(0.5 * (c[:-1] + c[1:]), x, side="left")
        counts = np.bincount(idx, minlength=k)
        used = counts > 0
        means = np.bincount(idx, weights=x, minlength=k)[used] / counts[used]
        shift = np.abs(means - c[used]).max()
        c[used] = means
        if shift <= tol:
            break
    idx = np.searchsorted(0.5 * (c[:-1] + c[1:]), x, side="left")
    used = np.unique(idx)
    return c[used], np.searchsorted(used, idx)


def pruned_normal(rng, shape, sparsity) -> np.ndarray:
    return prune_magnitude((rng.standard_normal(shape) * 0.02).astype(np.float32), sparsity)


def check_all_used(c: np.ndarray, idx: np.ndarray, mask: np.ndarray, k: int) -> None:
    assert c.dtype == np.float32 and c.size == k
    assert np.all(np.diff(c) > 0)  # distinct, ascending
    assert np.array_equal(np.unique(idx[mask]), np.arange(k))  # every centroid has members


def test_90_percent_pruned_layer_gets_16_centroids(rng):
    w = pruned_normal(rng, (4096, 512), 0.9)
    mask = w != 0
    c, idx = kmeans_share(w, 4)
    check_all_used(c, idx, mask, 16)
    assert np.all(shared_weights(c, idx, mask)[~mask] == 0)
    assert np.abs(c).min() >= np.abs(w[mask]).min()  # no centroid in the pruned gap
    # the former behaviour lost a quarter of them, and had the larger error
    old_c, old_idx = lloyd_without_reseed(w[mask], 16)
    assert old_c.size < 14
    old_mse = float(np.mean((old_c[old_idx] - w[mask]) ** 2))
    mse = float(np.mean((c[idx[mask]].astype(np.float64) - w[mask]) ** 2))
    assert mse <= 0.75 * old_mse, (mse, old_mse)
    # a Lloyd fixed point still: every surviving weight sits at its nearest centroid
    nearest = np.searchsorted(0.5 * (c[:-1].astype(np.float64) + c[1:]), w[mask], side="left")
    assert np.mean(nearest == idx[mask]) > 0.9999


@pytest.mark.parametrize(("sparsity", "bits"), [(0.0, 3), (0.5, 4), (0.8, 4), (0.9, 3), (0.9, 5), (0.96, 4),
                                               (0.9, 8)])
def test_k_asked_is_k_given_and_error_no_worse(rng, sparsity, bits):
    w = pruned_normal(rng, (512, 256), sparsity)
    mask = w != 0
    c, idx = kmeans_share(w, bits)
    check_all_used(c, idx, mask, 2**bits)
    old_c, old_idx = lloyd_without_reseed(w[mask], 2**bits)
    old_mse = float(np.mean((old_c[old_idx] - w[mask]) ** 2))
    mse = float(np.mean((c[idx[mask]].astype(np.float64) - w[mask]) ** 2))
    assert mse <= old_mse * (1 + 1e-6), (mse, old_mse)
    if old_c.size == 2**bits:  # nothing to re-seed: plain Lloyd's result (up to summation order)
        np.testing.assert_allclose(c, old_c, rtol=1e-5)
        assert np.mean(idx[mask] == old_idx) > 0.9999
    else:
        assert mse < 0.9 * old_mse


def test_heavy_tails_and_explicit_mask(rng):
    w = rng.laplace(size=(300, 200)).astype(np.float32)
    mask = np.abs(w) > np.quantile(np.abs(w), 0.85)
    c, idx = kmeans_share(w, 5, mask=mask)
    check_all_used(c, idx, mask, 32)
    assert c.max() > 0.5 * w.max() and c.min() < 0.5 * w.min()  # linear init still reaches the tails


def test_same_input_same_codebook(rng):
    w = pruned_normal(rng, (700, 300), 0.9)
    c1, i1 = kmeans_share(w, 4)
    c2, i2 = kmeans_share(w.copy(), 4)
    assert c1.tobytes() == c2.tobytes() and np.array_equal(i1, i2)


def test_fewer_distinct_values_than_k_is_the_honest_k(rng):
    w = rng.choice(np.array([-1.5, -0.25, 0.0, 0.5, 2.0, 3.0], np.float32), size=(40, 30))
    c, idx = kmeans_share(w, 4)
    np.testing.assert_array_equal(c, [-1.5, -0.25, 0.5, 2.0, 3.0])  # the zeros are pruned
    np.testing.assert_array_equal(shared_weights(c, idx, w != 0), w)
    # exactly k distinct values: exact as well, no warning
    w16 = rng.choice(np.arange(1, 17, dtype=np.float32), size=(20, 20))
    w16.flat[:16] = np.arange(1, 17)
    c, idx = kmeans_share(w16, 4)
    np.testing.assert_array_equal(c, np.arange(1, 17))


def test_last_resort_split_when_lloyd_stops_early():
    # 17 values next to each other and one far away: 14 of the linear centroids between them are empty.
    # With iters=0 nothing can be split at the initial centroids (the 17 values all lie at or above theirs),
    # so the last resort (_fill_empty) fills them; with Lloyd steps re-seeding does.
    x = np.concatenate([1 + 0.001 * np.arange(17), [100.0]]).astype(np.float32)
    for iters in (0, 1, 2, 50):
        c, idx = kmeans_share(x, 4, iters=iters)
        check_all_used(c, idx, np.ones(x.shape, bool), 16)
        assert c[-1] == 100


def test_last_resort_keeps_float32_centroids_distinct():
    # two centroids that would round to the same float32: each becomes the mean of its members
    x = np.array([1.0, np.nextafter(np.float32(1), np.float32(2))], np.float64)
    c, idx = _fill_empty(x, np.array([1.0 + 1e-12, 1.0 + 2e-12]), np.array([0, 1], np.uint8))
    assert np.all(np.diff(c.astype(np.float32)) > 0) and list(idx) == [0, 1]
    np.testing.assert_array_equal(c, x)


def _net(rng):
    w1 = (rng.standard_normal((300, 784)) * 0.05).astype(np.float32)
    w2 = (rng.standard_normal((100, 300)) * 0.08).astype(np.float32)
    w3 = rng.choice(np.array([-0.5, -0.1, 0.2, 0.4, 0.7], np.float32), size=(10, 100))
    return [("linear", w1, None, "fc1"), ("relu",), ("linear", w2, None, "fc2"), ("relu",),
            ("linear", w3, None, "fc3"),
            ("linear", rng.standard_normal((10, 10)).astype(np.float32), None, "fc4")]


def test_reported_k_is_the_files_codebook(rng):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cm = from_numpy(_net(rng), (784,), sparsity={"fc1": 0.92, "fc2": 0.4},
                        bits={"fc1": 4, "fc2": 4, "fc3": 4})
    asked = {"fc1": 16, "fc2": 16, "fc3": 16}
    k = {r.name: r.centroids for r in cm.layers}
    assert k == {"fc1": 16, "fc2": 16, "fc3": 5, "fc4": 0}  # fc4: fp32 values, no codebook asked
    # one warning, for the layer with only 5 distinct values, naming it, what it asked and what it got
    msgs = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(msgs) == 1 and "'fc3'" in msgs[0] and "16" in msgs[0] and "got 5" in msgs[0], msgs
    assert caught[0].filename == __file__  # points at the caller, not into pyruntime

    back = pyruntime._core.read_model(cm.to_bytes())
    tensors = {t["name"].removesuffix(".weight"): t for t in back["tensors"]}
    for r in cm.layers:
        t = tensors[r.name]
        w = decode_tensor(t).reshape(t["shape"][0], -1)
        assert r.nonzeros == np.count_nonzero(w)
        kept_values = np.unique(w[w != 0])
        if r.name in asked:
            assert kept_values.size == r.centroids  # the shared values the file's weights take
            stored = len(t["centroids"])
            pruned = r.nonzeros < w.size
            # csr+codebook stores k centroids; a dense codebook of a pruned layer one more, the zero
            assert stored == r.centroids + (t["encoding"] == "codebook" and pruned)
            assert r.bits == int(t["index_bits"]) >= int(np.ceil(np.log2(stored)))
    np.testing.assert_array_equal(cm.dense_weights()["fc1"][0], decode_tensor(tensors["fc1"]))
    text = cm.report()
    header = text.splitlines()[0].split()
    assert header[header.index("bits") + 1] == "k"
    row = next(line.split() for line in text.splitlines() if line.startswith("fc1 "))
    assert row[header.index("k")] == "16"
    assert [r["centroids"] for r in cm.report_rows()] == [16, 16, 5, 0]


def test_no_warning_when_k_is_met(rng):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cm = from_numpy(_net(rng)[:3], (784,), sparsity=0.9, bits=4)
    assert [r.centroids for r in cm.layers] == [16, 16]
