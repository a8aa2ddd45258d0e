"""k-means weight sharing (step 2 of Deep Compression), numba-accelerated.

The surviving (nonzero, or masked-in) weights of a layer are clustered in one dimension into
``k = 2**bits`` centroids; each weight is then replaced by its centroid and stored as a small index.
As in Han et al. the centroids start LINEARLY spaced over ``[min, max]`` of the surviving weights
(linear initialisation keeps the rare large weights, which matter most, represented), then Lloyd
iterations refine them. Pruned weights take no part and stay exactly zero.

Pruning leaves no weights in ``(-t, t)`` around zero, so the linearly spaced centroids that start in
that gap get no members (and sparse tails leave some empty too): plain Lloyd gave 10-12 centroids for
``bits=4`` on a 90%-pruned layer. When Lloyd has converged with empty clusters, each is re-seeded by
splitting the cluster of largest spread (sum of squared error) at its centroid, and Lloyd runs on
(:func:`_lloyd_1d`), so a layer gets the ``k`` it asked for whenever its surviving weights take at
least ``k`` distinct values; with fewer, those values are the centroids. Everything is deterministic.
"""
from __future__ import annotations

import numba
import numpy as np

from .prune import check_setting


@numba.njit(cache=True, nogil=True, inline="always")
def _nearest(v: float, bounds: np.ndarray, k: int) -> int:
    """Index of the nearest of k ascending centroids: binary search among the midpoints ``bounds``."""
    lo = 0
    hi = k - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if v > bounds[mid]:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def _split(centroids: np.ndarray, assigned: np.ndarray, counts: np.ndarray, sums: np.ndarray, sse: np.ndarray,
           lcounts: np.ndarray, lsums: np.ndarray) -> int:
    """Re-seeds the empty clusters of an assignment: each takes the upper half of the cluster of largest
    spread (sum of squared deviations from its mean; ties: the lower centroid) among those with members
    on both sides of the centroid they were assigned by, split there: the members below keep the cluster
    (centroid at their mean), those at or above go to the empty one's (at theirs). A cluster is split at
    most once per call; an empty cluster left without one to split stays where it is.

    Spread rather than member count: the most populated clusters of a pruned layer are the narrow ones
    at the pruning threshold, where a split gains little; spread (count x variance) is what a split
    reduces, and it also weighs the wide, sparse tail clusters that hold the largest weights.

    ``assigned``: the centroids of the assignment; ``counts``/``sums``: members and their sum per
    cluster; ``sse``: their squared deviations from ``assigned``; ``lcounts``/``lsums``: the same for the
    members below it. ``centroids`` (the means) is updated in place and stays ascending. Returns how
    many clusters were re-seeded."""
    k = centroids.shape[0]
    spread = np.full(k, -1.0)
    for j in range(k):
        if 0 < lcounts[j] < counts[j]:
            d = sums[j] / counts[j] - assigned[j]
            # about the mean: sum (v - c)^2 = sum (v - mean)^2 + n (mean - c)^2
            spread[j] = max(sse[j] - counts[j] * d * d, 0.0)
    seeded = 0
    for j in range(k):
        if counts[j] != 0:
            continue
        best = -1
        for i in range(k):
            if spread[i] >= 0.0 and (best < 0 or spread[i] > spread[best]):
                best = i
        if best < 0:
            break
        spread[best] = -1.0
        n_lo = lcounts[best]
        centroids[j] = (sums[best] - lsums[best]) / (counts[best] - n_lo)
        centroids[best] = lsums[best] / n_lo
        seeded += 1
    if seeded:
        for a in range(1, k):  # insertion sort: k <= 256
            v = centroids[a]
            b = a - 1
            while b >= 0 and centroids[b] > v:
                centroids[b + 1] = centroids[b]
                b -= 1
            centroids[b + 1] = v
    return seeded


#: rounds of re-seeding (each followed by Lloyd to convergence) before the last resort, :func:`_fill_empty`
_RESEED_ROUNDS = 8


@numba.njit(cache=True, nogil=True)
def _lloyd_1d(x: np.ndarray, centroids: np.ndarray, iters: int, tol: float) -> np.ndarray:
    """Lloyd iterations in 1-D. ``centroids`` (float64, ascending) is refined in place; returns the index
    of the nearest centroid for every value (uint8). An empty cluster keeps its centroid while Lloyd
    runs; when it stops (no mean moved by more than ``tol``, or ``iters`` steps) with empty clusters,
    they are re-seeded (:func:`_split`) and Lloyd runs again, with a fresh budget of ``iters`` steps, up
    to ``_RESEED_ROUNDS`` times. So the result is plain Lloyd's when that ends with no empty cluster;
    otherwise it goes on from there, and neither a split nor a Lloyd step raises the squared error."""
    n = x.shape[0]
    k = centroids.shape[0]
    idx = np.zeros(n, dtype=np.uint8)
    sums = np.zeros(k, dtype=np.float64)
    counts = np.zeros(k, dtype=np.int64)
    sse = np.zeros(k, dtype=np.float64)
    lsums = np.zeros(k, dtype=np.float64)
    lcounts = np.zeros(k, dtype=np.int64)
    assigned = np.zeros(k, dtype=np.float64)
    bounds = np.zeros(max(k - 1, 1), dtype=np.float64)
    steps = 0
    rounds = 0
    while True:
        for j in range(k - 1):
            bounds[j] = 0.5 * (centroids[j] + centroids[j + 1])
        sums[:] = 0.0
        counts[:] = 0
        sse[:] = 0.0
        lsums[:] = 0.0
        lcounts[:] = 0
        for i in range(n):
            v = x[i]
            lo = _nearest(v, bounds, k)
            idx[i] = lo
            sums[lo] += v
            counts[lo] += 1
            d = v - centroids[lo]
            sse[lo] += d * d
            if d < 0.0:
                lsums[lo] += v
                lcounts[lo] += 1
        assigned[:] = centroids
        shift = 0.0
        for j in range(k):
            if counts[j] > 0:
                c = sums[j] / counts[j]
                shift = max(shift, abs(c - centroids[j]))
                centroids[j] = c
        steps += 1
        if shift <= tol or steps > iters:
            if rounds < _RESEED_ROUNDS and _split(centroids, assigned, counts, sums, sse, lcounts, lsums) > 0:
                rounds += 1
                steps = 0
                continue
            break
    # Final assignment against the final centroids (means can move a boundary past a value).
    for j in range(k - 1):
        bounds[j] = 0.5 * (centroids[j] + centroids[j + 1])
    for i in range(n):
        idx[i] = _nearest(x[i], bounds, k)
    return idx


def _fill_empty(x: np.ndarray, centroids: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The last resort after :func:`_lloyd_1d` (rare: its final assignment emptied a cluster, or its
    rounds of re-seeding did not fill them all): splits the cluster of largest spread that holds two or
    more distinct values at its mean, by assignment, until no cluster is empty (``x`` must take at least
    ``k`` distinct values). Then, if two centroids would round to the same float32, sets every centroid
    to the mean of its members: clusters are disjoint intervals of values, so those means are distinct
    even in float32."""
    k = centroids.size
    if np.bincount(idx, minlength=k).all() and np.all(np.diff(centroids.astype(np.float32)) > 0):
        return centroids, idx  # the common case: nothing to do
    c = centroids.copy()
    idx = idx.astype(np.int64)
    for _ in range(k):
        counts = np.bincount(idx, minlength=k)
        empty = np.flatnonzero(counts == 0)
        if empty.size == 0:
            break
        means = np.bincount(idx, weights=x, minlength=k) / np.maximum(counts, 1)
        spread = np.bincount(idx, weights=(x - means[idx]) ** 2, minlength=k)
        lo = np.full(k, np.inf)
        hi = np.full(k, -np.inf)
        np.minimum.at(lo, idx, x)
        np.maximum.at(hi, idx, x)
        spread[~(lo < hi)] = -1.0
        m = int(np.argmax(spread))
        t = means[m] if lo[m] < means[m] < hi[m] else 0.5 * (lo[m] + hi[m])
        members = idx == m
        upper = members & (x >= t)
        idx[upper] = empty[0]
        c[m] = x[members & ~upper].mean()
        c[empty[0]] = x[upper].mean()
    order = np.argsort(c, kind="stable")
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    c, idx = c[order], rank[idx]
    if np.any(np.diff(c.astype(np.float32)) <= 0):
        counts = np.bincount(idx, minlength=k)
        used = counts > 0
        c[used] = np.bincount(idx, weights=x, minlength=k)[used] / counts[used]
    return c, idx.astype(np.uint8)


def linear_init(values: np.ndarray, k: int) -> np.ndarray:
    """``k`` centroids evenly spaced over ``[min, max]`` of ``values`` (Deep Compression's linear init)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return np.zeros(1, dtype=np.float64)
    return np.linspace(values.min(), values.max(), k, dtype=np.float64)


def kmeans_share(
    w: np.ndarray,
    bits: int,
    *,
    mask: np.ndarray | None = None,
    iters: int = 50,
    tol: float = 1e-7,
    drop_empty: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Shares the weights of ``w`` among ``k = 2**bits`` centroids (fewer only if the surviving weights
    take fewer distinct values).

    ``mask`` selects the weights that take part (default: the nonzeros of ``w``); the others are
    pruned and must reconstruct to zero, see :func:`shared_weights`.

    Returns ``(centroids, indices)``: ``centroids`` float32, strictly ascending, every one used by some
    surviving weight; ``indices`` uint8 with the shape of ``w``, ``indices[i] < len(centroids)``
    everywhere (0 at masked-out entries, where it means nothing). ``len(centroids)`` is ``2**bits``
    when the surviving weights take at least that many distinct values (empty clusters are re-seeded,
    see the module docstring); else those values are the centroids and the sharing is exact (a layer
    shared before, e.g. after centroid fine-tuning). ``drop_empty`` is kept for compatibility: no
    cluster ends empty.
    """
    if check_setting(bits, "bits") is None:
        raise ValueError("bits must be an integer in 1..8, got None")
    w = np.asarray(w, dtype=np.float32)
    mask = (w != 0) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != w.shape:
        raise ValueError(f"mask shape {mask.shape} differs from weight shape {w.shape}")
    k = 1 << int(bits)
    values = w[mask]
    indices = np.zeros(w.shape, dtype=np.uint8)
    if values.size == 0:
        return np.zeros(1, dtype=np.float32), indices

    distinct = np.unique(values)
    if distinct.size <= k:
        centroids = distinct.astype(np.float32)
        indices[mask] = np.searchsorted(distinct, values).astype(np.uint8)
        return centroids, indices

    x = values.astype(np.float64)
    c = linear_init(values, k)
    idx = _lloyd_1d(x, c, int(iters), float(tol))
    c, idx = _fill_empty(x, c, idx)
    indices[mask] = idx
    return c.astype(np.float32), indices


def shared_weights(centroids: np.ndarray, indices: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The weights a codebook represents: ``centroids[indices]``, zero where ``mask`` is False."""
    w = np.asarray(centroids, dtype=np.float32)[np.asarray(indices)]
    if mask is not None:
        w = np.where(mask, w, np.float32(0)).astype(np.float32)
    return w
