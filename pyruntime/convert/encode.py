"""Candidate encodings of a weight matrix and the choice of the smallest (step 3 of Deep Compression).

Every candidate represents exactly the same weights; they differ only in how many bytes the file
needs, which the C++ writer reports (``_core.encoded_tensor_bytes``, gap width and packed-vs-Huffman
coding of the index streams chosen as the writer does), and in how fast the runtime streams them
(the cost model of :mod:`pyruntime.cost`). The converter keeps the smallest by default, or what an
:class:`.choose.Objective` asks for.

  dense         f32 values, rows*cols
  csr           rows' nonzero counts + relative column gaps + f32 value per nonzero
  codebook      centroids + one index per weight (a pruned weight gets an extra zero centroid)
  csr+codebook  CSR structure + one centroid index per nonzero (EIE)

Tensor dicts follow ``csrc/bindings/tensor_dict.h``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from ..cost import CostModel
from .choose import Choice, Objective, choose
from .kmeans import kmeans_share

TensorDict = dict[str, Any]

ENCODINGS = ("dense", "csr", "codebook", "csr+codebook")


def _csr_structure(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = mask.shape[0]
    counts = mask.sum(axis=1)
    rowptr = np.zeros(rows + 1, dtype=np.uint32)
    np.cumsum(counts, out=rowptr[1:])
    colidx = np.nonzero(mask)[1].astype(np.uint32)  # row-major order: ascending columns within a row
    return rowptr, colidx


def _index_bits(k: int) -> int:
    return max(1, int(np.ceil(np.log2(max(k, 1)))))


def dense_tensor(name: str, w: np.ndarray) -> TensorDict:
    """A dense f32 tensor (also the form of biases)."""
    w = np.ascontiguousarray(w, dtype=np.float32)
    return {"name": name, "encoding": "dense", "shape": list(w.shape), "values": w.ravel()}


def candidates(
    name: str,
    w: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    centroids: np.ndarray | None = None,
    indices: np.ndarray | None = None,
) -> dict[str, TensorDict]:
    """All encodings of the 2-D weight ``w`` that represent it exactly, by encoding name.

    With ``centroids``/``indices`` (a shared layer; ``w`` must equal ``centroids[indices]`` where
    ``mask``) the codebook encodings are included. ``mask`` (default ``w != 0``) is the sparsity
    structure: the CSR encodings store exactly the masked-in entries.
    """
    w = np.ascontiguousarray(w, dtype=np.float32)
    if w.ndim != 2:
        raise ValueError(f"tensor '{name}': weights must be 2-D, got shape {w.shape}")
    mask = (w != 0) if mask is None else np.asarray(mask, dtype=bool)
    shape = [int(s) for s in w.shape]
    rowptr, colidx = _csr_structure(mask)
    out: dict[str, TensorDict] = {
        "dense": dense_tensor(name, w),
        "csr": {"name": name, "encoding": "csr", "shape": shape, "values": w[mask], "rowptr": rowptr,
                "colidx": colidx},
    }
    if centroids is None:
        return out
    centroids = np.asarray(centroids, dtype=np.float32)
    indices = np.asarray(indices, dtype=np.uint8)
    k = int(centroids.size)
    if indices.shape != w.shape:
        raise ValueError(f"tensor '{name}': indices shape {indices.shape} differs from weight shape {w.shape}")
    out["csr+codebook"] = {"name": name, "encoding": "csr+codebook", "shape": shape, "rowptr": rowptr,
                           "colidx": colidx, "indices": indices[mask], "centroids": centroids,
                           "index_bits": _index_bits(k)}
    if mask.all():
        cb_centroids, cb_indices = centroids, indices
    else:
        # The dense-index codebook must also represent the pruned zeros: reuse a zero centroid if
        # there is one, else append one (one more table entry; Huffman makes its index cheap).
        zero = np.nonzero(centroids == 0)[0]
        if zero.size:
            cb_centroids, z = centroids, int(zero[0])
        elif k < 256:
            cb_centroids, z = np.append(centroids, np.float32(0)), k
        else:
            return out
        cb_indices = np.where(mask, indices, np.uint8(z)).astype(np.uint8)
    out["codebook"] = {"name": name, "encoding": "codebook", "shape": shape, "indices": cb_indices.ravel(),
                       "centroids": cb_centroids, "index_bits": _index_bits(int(cb_centroids.size))}
    return out


def encoded_bytes(tensor: TensorDict) -> int:
    """Bytes ``tensor`` takes in a model file (header + payload), as the C++ writer would write it."""
    return int(_core.encoded_tensor_bytes(tensor))


def choose_encoding(cands: dict[str, TensorDict]) -> tuple[TensorDict, dict[str, int]]:
    """The smallest candidate and the size of each (ties: the earlier in ``ENCODINGS``, simpler)."""
    sizes = {enc: encoded_bytes(t) for enc, t in cands.items()}
    best = min(sizes, key=lambda e: (sizes[e], ENCODINGS.index(e)))
    return cands[best], sizes


def exact_codebook(w: np.ndarray, mask: np.ndarray, max_k: int = 256) -> tuple[np.ndarray, np.ndarray] | None:
    """If the masked-in weights take at most ``max_k`` distinct values, the lossless codebook of them."""
    values = w[mask]
    distinct = np.unique(values)
    if distinct.size > max_k:
        return None
    if distinct.size == 0:
        distinct = np.zeros(1, dtype=np.float32)
    indices = np.zeros(w.shape, dtype=np.uint8)
    indices[mask] = np.searchsorted(distinct, values).astype(np.uint8)
    return distinct.astype(np.float32), indices


def encode_layer(
    name: str,
    w: np.ndarray,
    *,
    bits: int | None = None,
    centroids: np.ndarray | None = None,
    indices: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    return_sizes: bool = False,
    objective: Objective | None = None,
    cost_model: CostModel | None = None,
    return_choice: bool = False,
) -> TensorDict | tuple[TensorDict, dict[str, int]] | tuple[TensorDict, Choice]:
    """Encodes the 2-D weight ``w`` as the tensor dict, among those that represent the compressed
    weights, that ``objective`` prefers (default: the smallest file; see :mod:`.choose`).

    - ``centroids``/``indices`` given: that codebook is used as is (the weights become
      ``centroids[indices]`` at ``mask``, zero elsewhere).
    - else ``bits`` given: the masked-in weights are shared by :func:`kmeans_share` (linear init).
    - else (fp32 weights kept): dense and csr are tried, plus, when the nonzeros happen to take at
      most 256 distinct values (weights shared earlier), the codebook encodings of exactly those
      values; nothing is rounded.

    ``mask`` (default ``w != 0``) says which weights survived pruning. Every candidate decodes to the
    same weights, so the choice only changes size and speed. With ``return_sizes`` also returns the
    file bytes of every candidate, by encoding; with ``return_choice`` the :class:`.choose.Choice`
    (sizes, predicted times and the reason).
    """
    w = np.asarray(w, dtype=np.float32)
    mask = (w != 0) if mask is None else np.asarray(mask, dtype=bool)
    if centroids is None and bits is not None:
        centroids, indices = kmeans_share(w, int(bits), mask=mask)
    elif centroids is None:
        shared = exact_codebook(w, mask)
        if shared is not None:
            centroids, indices = shared
    elif indices is None:
        raise ValueError(f"tensor '{name}': centroids given without indices")
    if centroids is not None:
        w = np.where(mask, np.asarray(centroids, dtype=np.float32)[indices], np.float32(0)).astype(np.float32)
    cands = candidates(name, w, mask=mask, centroids=centroids, indices=indices)
    if objective is None and not return_choice:
        best, sizes = choose_encoding(cands)
        return (best, sizes) if return_sizes else best
    sizes = {enc: encoded_bytes(t) for enc, t in cands.items()}
    choice = choose(cands, sizes, objective or Objective(), cost_model)
    best = cands[choice.encoding]
    if return_choice:
        return best, choice
    return (best, sizes) if return_sizes else best


def int8_candidates(name: str, q: np.ndarray, scales: np.ndarray) -> dict[str, TensorDict]:
    """The int8 weight ``q`` (2-D, int8) with its per-row ``scales`` as an int8 tensor and as csr+int8 (its
    nonzero entries): the same weights, two sizes."""
    q = np.asarray(q, np.int8)
    scales = np.asarray(scales, np.float32)
    rowptr, colidx = _csr_structure(q != 0)
    return {
        "int8": {"name": name, "encoding": "int8", "shape": list(q.shape), "qvalues": q.ravel(), "scales": scales},
        "csr+int8": {"name": name, "encoding": "csr+int8", "shape": list(q.shape), "rowptr": rowptr,
                     "colidx": colidx, "qvalues": q[q != 0], "scales": scales},
    }


def int8_matrix(t: TensorDict) -> np.ndarray:
    """The integers q of an int8 or csr+int8 tensor as a 2-D int8 array."""
    shape = tuple(int(s) for s in t["shape"])
    rows, cols = shape[0], int(np.prod(shape[1:]))
    if t["encoding"] == "int8":
        return np.asarray(t["qvalues"], np.int8).reshape(rows, cols)
    out = np.zeros((rows, cols), np.int8)
    rowptr = np.asarray(t["rowptr"], dtype=np.int64)
    out[np.repeat(np.arange(rows), np.diff(rowptr)), np.asarray(t["colidx"], np.int64)] = t["qvalues"]
    return out


def decode_tensor(t: TensorDict) -> np.ndarray:
    """The dense float32 weights a tensor dict represents (what the runtime computes with; for int8, the
    quantized weights scale * q)."""
    shape = tuple(int(s) for s in t["shape"])
    enc = t.get("encoding", "dense")
    if enc == "binary":
        rows = shape[0]
        s = np.where(np.asarray(t["bits"]).reshape(rows, -1) != 0, np.float32(1), np.float32(-1))
        return (s * np.asarray(t["scales"], np.float32)[:, None]).astype(np.float32).reshape(shape)
    if enc in ("int8", "csr+int8"):
        q = int8_matrix(t).astype(np.float32)
        return (q * np.asarray(t["scales"], np.float32)[:, None]).astype(np.float32).reshape(shape)
    if enc == "dense":
        return np.asarray(t["values"], dtype=np.float32).reshape(shape).copy()
    if enc == "codebook":
        c = np.asarray(t["centroids"], dtype=np.float32)
        return c[np.asarray(t["indices"], dtype=np.int64)].reshape(shape)
    if enc not in ("csr", "csr+codebook"):
        raise ValueError(f"unknown encoding '{enc}'")
    rows = shape[0]
    cols = int(np.prod(shape[1:]))
    rowptr = np.asarray(t["rowptr"], dtype=np.int64)
    colidx = np.asarray(t["colidx"], dtype=np.int64)
    if enc == "csr":
        vals = np.asarray(t["values"], dtype=np.float32)
    else:
        vals = np.asarray(t["centroids"], dtype=np.float32)[np.asarray(t["indices"], dtype=np.int64)]
    out = np.zeros((rows, cols), dtype=np.float32)
    row_of = np.repeat(np.arange(rows), np.diff(rowptr))
    out[row_of, colidx] = vals
    return out.reshape(shape)


def nonzeros(t: TensorDict) -> int:
    """Stored weights that are not pruned (for dense encodings: the nonzero entries)."""
    if t["encoding"] in ("csr", "csr+codebook"):
        return int(np.asarray(t["colidx"]).size)
    if t["encoding"] in ("int8", "csr+int8"):
        return int(np.count_nonzero(decode_tensor(t)))
    return int(np.count_nonzero(decode_tensor(t)))
