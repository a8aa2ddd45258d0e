"""Writes tests/data/golden_v1.pyrt and golden_v1_expected.npz: the golden format-version-1 file.

Run once, when the file was created; never again for version 1. The committed bytes are the contract:
every later reader must load them to the same tensors and outputs (tests/format/test_golden.py), and
the test pins the file's SHA-256 so that a regenerated file cannot slip in unnoticed.

The model touches every part of version 1: a rank-3 input with flatten, the four weight encodings,
packed and Huffman-coded index streams, column gaps with fillers, an empty row, codebooks of 1..8-bit
indices, relu, softmax and a metadata section.

    python tests/data/make_golden.py        (needs the built package: pyruntime._core.write_model)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pyruntime import _core

HERE = Path(__file__).resolve().parent


def csr_index(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rowptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.uint32)
    return rowptr, np.nonzero(mask)[1].astype(np.uint32)


def build() -> dict:
    rng = np.random.default_rng(20261121)
    tensors: list[dict] = []

    def add(t: dict) -> int:
        tensors.append(t)
        return len(tensors) - 1

    def bias(n: int, name: str) -> int:
        return add({"name": name, "encoding": "dense", "shape": [n],
                    "values": (0.1 * rng.standard_normal(n)).astype(np.float32)})

    # fc0: dense 24 x 32
    w0 = add({"name": "fc0.weight", "encoding": "dense", "shape": [24, 32],
              "values": (rng.standard_normal(24 * 32) / np.sqrt(32)).astype(np.float32)})
    b0 = bias(24, "fc0.bias")
    # fc1: csr 20 x 24, 30% dense, row 3 empty, long gaps (fillers) in row 0, 3-bit gaps
    mask = rng.random((20, 24)) < 0.3
    mask[3] = False
    mask[0] = False
    mask[0, [0, 17, 23]] = True
    rowptr, colidx = csr_index(mask)
    w1 = add({"name": "fc1.weight", "encoding": "csr", "shape": [20, 24], "rowptr": rowptr, "colidx": colidx,
              "values": (rng.standard_normal(colidx.size) / 2).astype(np.float32), "gap_bits": 3})
    b1 = bias(20, "fc1.bias")
    # fc2: codebook 16 x 20, k = 5, 3-bit indices, skewed (Huffman-coded)
    p = np.array([0.6, 0.2, 0.1, 0.06, 0.04])
    w2 = add({"name": "fc2.weight", "encoding": "codebook", "shape": [16, 20],
              "centroids": np.array([0.0, -0.25, 0.25, -0.5, 0.5], np.float32),
              "indices": rng.choice(5, 16 * 20, p=p).astype(np.uint8), "index_bits": 3})
    b2 = bias(16, "fc2.bias")
    # fc3: csr+codebook 12 x 16, 60% dense, 4-bit gaps (mostly small: Huffman-coded), k = 16, 4-bit
    # uniform indices (packed)
    mask = rng.random((12, 16)) < 0.6
    rowptr, colidx = csr_index(mask)
    w3 = add({"name": "fc3.weight", "encoding": "csr+codebook", "shape": [12, 16], "rowptr": rowptr,
              "colidx": colidx, "centroids": np.sort(rng.standard_normal(16)).astype(np.float32) / 2,
              "indices": rng.integers(0, 16, colidx.size).astype(np.uint8), "index_bits": 4, "gap_bits": 4})
    # fc4: codebook 10 x 12, k = 2 (1-bit indices), no bias; fc5: codebook 10 x 10, k = 200 (8-bit)
    w4 = add({"name": "fc4.weight", "encoding": "codebook", "shape": [10, 12],
              "centroids": np.array([-0.4, 0.4], np.float32),
              "indices": rng.integers(0, 2, 120).astype(np.uint8), "index_bits": 1})
    w5 = add({"name": "fc5.weight", "encoding": "codebook", "shape": [10, 10],
              "centroids": np.linspace(-1, 1, 200, dtype=np.float32),
              "indices": rng.integers(0, 200, 100).astype(np.uint8), "index_bits": 8})
    b5 = bias(10, "fc5.bias")

    nodes = [
        {"op": "flatten", "inputs": [0]},
        {"op": "linear", "inputs": [1], "tensors": [w0, b0]},
        {"op": "relu", "inputs": [2]},
        {"op": "linear", "inputs": [3], "tensors": [w1, b1]},
        {"op": "relu", "inputs": [4]},
        {"op": "linear", "inputs": [5], "tensors": [w2, b2]},
        {"op": "relu", "inputs": [6]},
        {"op": "linear", "inputs": [7], "tensors": [w3]},
        {"op": "relu", "inputs": [8]},
        {"op": "linear", "inputs": [9], "tensors": [w4]},
        {"op": "linear", "inputs": [10], "tensors": [w5, b5]},
        {"op": "softmax", "inputs": [11]},
    ]
    meta = {"producer": "pyruntime golden-file generator", "format_version": 1, "note": "do not regenerate"}
    return {"input_shape": [2, 4, 4], "nodes": nodes, "tensors": tensors, "metadata": json.dumps(meta)}


def dense_matrix(t: dict) -> np.ndarray:
    """The full float32 weight a tensor dict stands for."""
    rows = t["shape"][0]
    cols = int(np.prod(t["shape"][1:]))
    if t["encoding"] == "dense":
        return np.asarray(t["values"], np.float32).reshape(t["shape"])
    if t["encoding"] == "codebook":
        return t["centroids"][t["indices"]].reshape(rows, cols)
    w = np.zeros((rows, cols), np.float32)
    vals = t["values"] if t["encoding"] == "csr" else t["centroids"][t["indices"]]
    for r in range(rows):
        lo, hi = t["rowptr"][r], t["rowptr"][r + 1]
        w[r, t["colidx"][lo:hi]] = vals[lo:hi]
    return w


def main() -> None:
    import pyruntime

    model = build()
    data = _core.write_model(model)
    x = np.random.default_rng(7).standard_normal((8, 2, 4, 4)).astype(np.float32)
    y = pyruntime.load(data).run(x)
    (HERE / "golden_v1.pyrt").write_bytes(data)
    weights = {f"tensor:{t['name']}": dense_matrix(t) for t in model["tensors"]}
    np.savez(HERE / "golden_v1_expected.npz", input=x, output=y, **weights)
    print(f"golden_v1.pyrt: {len(data)} bytes")


if __name__ == "__main__":
    main()
