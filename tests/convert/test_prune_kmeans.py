"""Magnitude pruning and k-means weight sharing (numba)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from pyruntime.convert import (
    kmeans_share,
    linear_init,
    magnitude_mask,
    prune_magnitude,
    shared_weights,
    sparsity_of,
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.95, 0.999, 1.0])
def test_prune_hits_requested_sparsity(rng, sparsity):
    w = rng.standard_normal((64, 97)).astype(np.float32)
    p = prune_magnitude(w, sparsity)
    assert p.dtype == np.float32 and p.shape == w.shape
    assert np.count_nonzero(p == 0) == round(sparsity * w.size)
    kept = p != 0
    np.testing.assert_array_equal(p[kept], w[kept])
    if 0 < sparsity < 1:  # every kept weight is at least as large as every dropped one
        assert np.abs(w[kept]).min() >= np.abs(w[~kept]).max()


def test_prune_never_revives_zeros(rng):
    w = prune_magnitude(rng.standard_normal((50, 40)), 0.8)
    again = prune_magnitude(w, 0.5)  # asks for less than already there: nothing changes
    np.testing.assert_array_equal(again, w)
    more = prune_magnitude(w, 0.9)
    assert sparsity_of(more) == pytest.approx(0.9)
    assert np.all((more == 0) | (more == w)) and np.all(more[w == 0] == 0)


def test_prune_rejects_bad_sparsity(rng):
    with pytest.raises(ValueError):
        magnitude_mask(rng.standard_normal(4), 1.5)


def test_linear_init_spans_min_max():
    v = np.array([-3.0, 0.5, 2.0, 7.0])
    c = linear_init(v, 5)
    np.testing.assert_allclose(c, [-3.0, -0.5, 2.0, 4.5, 7.0])


def test_kmeans_starts_linear_and_stays_in_range(rng):
    w = rng.standard_normal((40, 50)).astype(np.float32)
    c0, _ = kmeans_share(w, 3, iters=0, drop_empty=False)  # no Lloyd step: one mean per linear bin
    assert c0.size == 8 and np.all(np.diff(c0) > 0)
    c, idx = kmeans_share(w, 3)
    assert idx.dtype == np.uint8 and idx.shape == w.shape
    assert idx.max() < c.size <= 8
    assert np.all(np.diff(c) > 0)  # ascending, distinct
    assert w.min() <= c.min() and c.max() <= w.max()
    # Each weight sits at its nearest centroid (a Lloyd fixed point).
    nearest = np.abs(w[..., None] - c[None, None, :]).argmin(axis=-1)
    np.testing.assert_array_equal(idx, nearest)


def test_kmeans_linear_init_keeps_the_large_weights(rng):
    # A heavy tail: linear init puts centroids out at the extremes (density init would not).
    w = rng.laplace(size=5000).astype(np.float32)
    c, _ = kmeans_share(w, 4)
    assert c.max() > 0.5 * w.max() and c.min() < 0.5 * w.min()


def test_kmeans_error_decreases_with_bits(rng):
    w = rng.standard_normal((80, 60)).astype(np.float32)
    errs = []
    for bits in range(1, 9):
        c, idx = kmeans_share(w, bits)
        assert idx.max() < c.size <= 2**bits
        errs.append(float(np.mean((shared_weights(c, idx) - w) ** 2)))
    assert all(a > b for a, b in itertools.pairwise(errs)), errs
    assert errs[-1] < 1e-4


def test_kmeans_only_over_nonzeros_zeros_stay_zero(rng):
    w = prune_magnitude(rng.standard_normal((100, 30)), 0.9)
    mask = w != 0
    c, idx = kmeans_share(w, 4)
    sw = shared_weights(c, idx, mask)
    assert np.all(sw[~mask] == 0)
    assert np.all(sw[mask] != 0)  # centroids of |w| > threshold never collapse to zero
    # the pruned zeros took no part: every centroid is a mean of surviving weights
    assert np.abs(c).min() >= np.abs(w[mask]).min()


def test_kmeans_explicit_mask_and_exact_when_few_values(rng):
    w = rng.choice(np.array([-0.5, 0.25, 1.0], dtype=np.float32), size=(20, 20))
    c, idx = kmeans_share(w, 2)
    np.testing.assert_array_equal(c, [-0.5, 0.25, 1.0])
    np.testing.assert_array_equal(shared_weights(c, idx), w)
    mask = rng.random(w.shape) < 0.5
    c, idx = kmeans_share(w, 1, mask=mask)
    assert c.size <= 2 and np.all(shared_weights(c, idx, mask)[~mask] == 0)


def test_kmeans_empty_and_bad_args():
    c, idx = kmeans_share(np.zeros((3, 4), np.float32), 4)
    assert c.size == 1 and np.all(idx == 0)
    with pytest.raises(ValueError):
        kmeans_share(np.ones((2, 2)), 9)
    with pytest.raises(ValueError):
        kmeans_share(np.ones((2, 2)), 2, mask=np.ones(3, bool))
