"""k-means weight sharing (step 2 of Deep Compression), numba-accelerated.

The surviving (nonzero, or masked-in) weights of a layer are clustered in one dimension into at most
``2**bits`` centroids; each weight is then replaced by its centroid and stored as a small index.
As in Han et al. the centroids start LINEARLY spaced over ``[min, max]`` of the surviving weights
(linear initialisation keeps the rare large weights, which matter most, represented), then Lloyd
iterations refine them. Pruned weights take no part and stay exactly zero.
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
def _lloyd_1d(x: np.ndarray, centroids: np.ndarray, iters: int, tol: float) -> np.ndarray:
    """Lloyd iterations in 1-D. ``centroids`` (float64, ascending) is refined in place; returns the
    index of the nearest centroid for every value (uint8). An empty cluster keeps its centroid."""
    n = x.shape[0]
    k = centroids.shape[0]
    idx = np.zeros(n, dtype=np.uint8)
    sums = np.zeros(k, dtype=np.float64)
    counts = np.zeros(k, dtype=np.int64)
    bounds = np.zeros(max(k - 1, 1), dtype=np.float64)
    for _ in range(iters + 1):
        for j in range(k - 1):
            bounds[j] = 0.5 * (centroids[j] + centroids[j + 1])
        sums[:] = 0.0
        counts[:] = 0
        for i in range(n):
            v = x[i]
            lo = _nearest(v, bounds, k)
            idx[i] = lo
            sums[lo] += v
            counts[lo] += 1
        shift = 0.0
        for j in range(k):
            if counts[j] > 0:
                c = sums[j] / counts[j]
                shift = max(shift, abs(c - centroids[j]))
                centroids[j] = c
        if shift <= tol:
            break
    # Final assignment against the final centroids (means can move a boundary past a value).
    for j in range(k - 1):
        bounds[j] = 0.5 * (centroids[j] + centroids[j + 1])
    for i in range(n):
        idx[i] = _nearest(x[i], bounds, k)
    return idx


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
    """Shares the weights of ``w`` among at most ``2**bits`` centroids.

    ``mask`` selects the weights that take part (default: the nonzeros of ``w``); the others are
    pruned and must reconstruct to zero, see :func:`shared_weights`.

    Returns ``(centroids, indices)``: ``centroids`` float32, ascending, ``k <= 2**bits`` entries;
    ``indices`` uint8 with the shape of ``w``, ``indices[i] < k`` everywhere (0 at masked-out entries,
    where it means nothing). If the surviving weights already take at most ``2**bits`` distinct
    values (a layer shared before, e.g. after centroid fine-tuning), those values are the centroids
    and the sharing is exact. With ``drop_empty`` the clusters that end up empty are removed.
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

    c = linear_init(values, k)
    idx = _lloyd_1d(values.astype(np.float64), c, int(iters), float(tol))
    if drop_empty:
        used = np.bincount(idx, minlength=k) > 0
        if not used.all():
            remap = np.cumsum(used) - 1
            c = c[used]
            idx = remap[idx].astype(np.uint8)
    indices[mask] = idx
    return c.astype(np.float32), indices


def shared_weights(centroids: np.ndarray, indices: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The weights a codebook represents: ``centroids[indices]``, zero where ``mask`` is False."""
    w = np.asarray(centroids, dtype=np.float32)[np.asarray(indices)]
    if mask is not None:
        w = np.where(mask, w, np.float32(0)).astype(np.float32)
    return w
