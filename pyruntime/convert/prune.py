"""Magnitude pruning (Han et al., "Learning both Weights and Connections", step 1 of Deep Compression).

A weight matrix is pruned by zeroing its smallest-magnitude entries until the requested fraction is zero.
Weights that are already zero count towards the target (they are the smallest), so pruning a pruned
layer to a higher sparsity only removes more weights and never brings any back.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: A sparsity (or bit width) given either for every layer at once or per layer name.
PerLayer = None | float | int | Mapping[str, float | int | None]


def magnitude_mask(w: np.ndarray, sparsity: float) -> np.ndarray:
    """Boolean mask of the weights kept when pruning ``w`` to ``sparsity`` (fraction of zeros, 0..1).

    Exactly ``round(sparsity * w.size)`` entries are dropped: the smallest by absolute value, ties broken
    by position so the result is deterministic. Entries that are already zero are dropped first.
    """
    check_setting(sparsity, "sparsity")
    w = np.asarray(w)
    n_drop = round(float(sparsity) * w.size)
    keep = np.ones(w.size, dtype=bool)
    if n_drop > 0:
        order = np.argsort(np.abs(w).ravel(), kind="stable")
        keep[order[:n_drop]] = False
    # Zeros are never "kept": they cost nothing to drop and would only add explicit zeros to a CSR.
    keep &= w.ravel() != 0
    return keep.reshape(w.shape)


def prune_magnitude(w: np.ndarray, sparsity: float) -> np.ndarray:
    """Returns a float32 copy of ``w`` with its smallest-magnitude ``sparsity`` fraction set to zero."""
    w = np.asarray(w, dtype=np.float32)
    return np.where(magnitude_mask(w, sparsity), w, np.float32(0)).astype(np.float32)


def sparsity_of(w: np.ndarray) -> float:
    """Fraction of exact zeros in ``w``."""
    w = np.asarray(w)
    return 1.0 - np.count_nonzero(w) / max(1, w.size)


def per_layer(value: PerLayer, name: str, what: str) -> float | int | None:
    """Resolves a setting given globally (a number) or per layer (a mapping name -> number or None), and
    checks it (:func:`check_setting`)."""
    if value is None or isinstance(value, (int, float, np.integer, np.floating)):
        return check_setting(value, what)  # type: ignore[arg-type]
    if isinstance(value, Mapping):
        return check_setting(value.get(name), what, name)
    raise TypeError(f"{what} must be a number, a mapping layer-name -> number, or None; got {type(value).__name__}")


def check_setting(value: object, what: str, layer: str | None = None) -> float | int | None:
    """A sparsity must be a real number in [0, 1] and a bit width an integer in 1..8 (``what`` is
    "sparsity" or "bits"); None means "not for this layer". A bool, a NaN, a fractional bit width or a
    value out of range is refused with a ValueError naming the argument (and the layer), never rounded
    or taken as 0 / 1."""
    if value is None:
        return None
    where = f"{what}" if layer is None else f"{what} for layer '{layer}'"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where} must be a number, got {value!r} ({type(value).__name__})")  # noqa: TRY004
    if what == "bits":
        if isinstance(value, (float, np.floating)) and not float(value).is_integer():
            raise ValueError(f"{where} must be an integer in 1..8, got {value!r}")
        if not np.isfinite(float(value)) or not 1 <= float(value) <= 8:
            raise ValueError(f"{where} must be an integer in 1..8, got {value!r}")
        return int(value)
    if not np.isfinite(float(value)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{where} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_layer_names(value: PerLayer, names: list[str], what: str) -> None:
    """A per-layer mapping that names a layer the model does not have is a typo: say so."""
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"{what} names unknown layer(s) {unknown}; the model's layers are {names}")
