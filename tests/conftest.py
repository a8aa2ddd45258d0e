"""Shared fixtures: random weight tensors of every encoding, small models, and a numpy forward pass.

Everything here is built with numpy only (no torch), in the dict form that ``pyruntime._core.write_model``
takes (csrc/bindings/tensor_dict.h):

    tensor: {"name", "encoding": "dense"|"csr"|"codebook"|"csr+codebook", "shape", "values", "rowptr",
             "colidx", "indices", "centroids", "index_bits", "gap_bits"}
    model:  {"input_shape", "nodes": [{"op", "inputs", "tensors"}], "tensors", "metadata"}

Tests reach the builders through the ``helpers`` fixture (``helpers.csr(rng, (8, 9), 0.3)``) so that no
test module imports this file by name.
"""

from __future__ import annotations

import math
import types
from collections.abc import Sequence

import numpy as np
import pytest

ENCODINGS = ("dense", "csr", "codebook", "csr+codebook")


# ---- tensors ------------------------------------------------------------------------------------------


def _rows_cols(shape: Sequence[int]) -> tuple[int, int]:
    return int(shape[0]), int(math.prod(shape[1:]))


def dense(rng: np.random.Generator, shape: Sequence[int], name: str = "w") -> dict:
    values = rng.standard_normal(tuple(shape)).astype(np.float32)
    return {"name": name, "encoding": "dense", "shape": list(shape), "values": values.ravel()}


def _csr_index(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rowptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.uint32)
    colidx = np.nonzero(mask)[1].astype(np.uint32)  # row-major order: sorted within each row
    return rowptr, colidx


def sparse_mask(
    rng: np.random.Generator, shape: Sequence[int], density: float, empty_rows: Sequence[int] = ()
) -> np.ndarray:
    rows, cols = _rows_cols(shape)
    mask = rng.random((rows, cols)) < density
    mask[list(empty_rows), :] = False
    return mask


def csr(
    rng: np.random.Generator,
    shape: Sequence[int],
    density: float = 0.3,
    name: str = "w",
    *,
    mask: np.ndarray | None = None,
    gap_bits: int | None = None,
    empty_rows: Sequence[int] = (),
) -> dict:
    if mask is None:
        mask = sparse_mask(rng, shape, density, empty_rows)
    rowptr, colidx = _csr_index(mask)
    t = {
        "name": name,
        "encoding": "csr",
        "shape": list(shape),
        "rowptr": rowptr,
        "colidx": colidx,
        "values": rng.standard_normal(colidx.size).astype(np.float32),
    }
    if gap_bits is not None:
        t["gap_bits"] = gap_bits
    return t


def codebook(
    rng: np.random.Generator,
    shape: Sequence[int],
    k: int = 16,
    name: str = "w",
    *,
    index_bits: int | None = None,
) -> dict:
    rows, cols = _rows_cols(shape)
    t = {
        "name": name,
        "encoding": "codebook",
        "shape": list(shape),
        "centroids": np.sort(rng.standard_normal(k)).astype(np.float32),
        "indices": rng.integers(0, k, rows * cols).astype(np.uint8),
    }
    if index_bits is not None:
        t["index_bits"] = index_bits
    return t


def csr_codebook(
    rng: np.random.Generator,
    shape: Sequence[int],
    density: float = 0.3,
    k: int = 16,
    name: str = "w",
    *,
    mask: np.ndarray | None = None,
    gap_bits: int | None = None,
    index_bits: int | None = None,
    empty_rows: Sequence[int] = (),
) -> dict:
    if mask is None:
        mask = sparse_mask(rng, shape, density, empty_rows)
    rowptr, colidx = _csr_index(mask)
    t = {
        "name": name,
        "encoding": "csr+codebook",
        "shape": list(shape),
        "rowptr": rowptr,
        "colidx": colidx,
        "centroids": np.sort(rng.standard_normal(k)).astype(np.float32),
        "indices": rng.integers(0, k, colidx.size).astype(np.uint8),
    }
    if gap_bits is not None:
        t["gap_bits"] = gap_bits
    if index_bits is not None:
        t["index_bits"] = index_bits
    return t


def tensor(rng: np.random.Generator, encoding: str, shape: Sequence[int], name: str = "w", **kw) -> dict:
    """A random tensor of any encoding (keyword arguments go to the encoding's builder)."""
    build = {"dense": dense, "csr": csr, "codebook": codebook, "csr+codebook": csr_codebook}[encoding]
    return build(rng, shape, name=name, **kw)


def densify(t: dict) -> np.ndarray:
    """The tensor as a dense float32 (rows, cols) matrix, decoded in numpy (the reference)."""
    rows, cols = _rows_cols(t["shape"])
    enc = t["encoding"]
    if enc == "dense":
        return np.asarray(t["values"], np.float32).reshape(rows, cols)
    if enc == "codebook":
        return np.asarray(t["centroids"], np.float32)[np.asarray(t["indices"])].reshape(rows, cols)
    out = np.zeros((rows, cols), np.float32)
    rowptr = np.asarray(t["rowptr"], np.int64)
    row_of = np.repeat(np.arange(rows), np.diff(rowptr))
    if enc == "csr":
        vals = np.asarray(t["values"], np.float32)
    else:
        vals = np.asarray(t["centroids"], np.float32)[np.asarray(t["indices"])]
    out[row_of, np.asarray(t["colidx"], np.int64)] = vals
    return out


def assert_tensor_equal(got: dict, want: dict) -> None:
    """Exact equality of a decoded tensor (read_model) with the tensor that was written."""
    name = want.get("name", "tensor")
    assert got["name"] == name
    assert got["encoding"] == want["encoding"], name
    assert list(got["shape"]) == list(want["shape"]), name
    fields = {
        "dense": ["values"],
        "csr": ["rowptr", "colidx", "values"],
        "codebook": ["indices", "centroids"],
        "csr+codebook": ["rowptr", "colidx", "indices", "centroids"],
    }[want["encoding"]]
    for f in fields:
        g, w = np.asarray(got[f]), np.asarray(want[f])
        assert g.shape == w.ravel().shape, (name, f, g.shape, w.shape)
        if g.dtype == np.float32:  # bit-exact, so -0.0 and NaN payloads count too
            assert np.array_equal(g.view(np.uint32), w.astype(np.float32).ravel().view(np.uint32)), (name, f)
        else:
            assert np.array_equal(g, w.ravel()), (name, f)
    if "gap_bits" in want:
        assert got["gap_bits"] == want["gap_bits"], name
    if "index_bits" in want:
        assert got["index_bits"] == want["index_bits"], name


# ---- models -------------------------------------------------------------------------------------------


def mlp(
    rng: np.random.Generator,
    sizes: Sequence[int],
    encodings: Sequence[str],
    *,
    input_shape: Sequence[int] | None = None,
    bias: bool = True,
    final: str | None = "softmax",
    metadata: str | None = None,
    tensor_kw: dict | None = None,
) -> dict:
    """linear(+relu) layers sizes[0] -> sizes[1] -> ...; layer i stored in encodings[i].

    A multi-dimensional ``input_shape`` (product sizes[0]) gets a flatten node first.
    """
    assert len(encodings) == len(sizes) - 1
    input_shape = list(input_shape) if input_shape is not None else [sizes[0]]
    assert math.prod(input_shape) == sizes[0]
    nodes: list[dict] = []
    tensors: list[dict] = []
    value = 0
    if len(input_shape) > 1:
        nodes.append({"op": "flatten", "inputs": [value]})
        value = len(nodes)
    for i, enc in enumerate(encodings):
        ids = [len(tensors)]
        tensors.append(tensor(rng, enc, (sizes[i + 1], sizes[i]), name=f"fc{i}.weight", **(tensor_kw or {})))
        if bias:
            ids.append(len(tensors))
            tensors.append(dense(rng, (sizes[i + 1],), name=f"fc{i}.bias"))
        nodes.append({"op": "linear", "inputs": [value], "tensors": ids})
        value = len(nodes)
        if i + 1 < len(encodings):
            nodes.append({"op": "relu", "inputs": [value]})
            value = len(nodes)
    if final:
        nodes.append({"op": final, "inputs": [value]})
    model = {"input_shape": input_shape, "nodes": nodes, "tensors": tensors}
    if metadata is not None:
        model["metadata"] = metadata
    return model


def forward(model: dict, x: np.ndarray) -> np.ndarray:
    """The model's forward pass in numpy (float64 accumulation), interpreting the graph generically."""
    values = [np.asarray(x, np.float64)]
    batch = values[0].shape[0]
    for node in model["nodes"]:
        v = values[node["inputs"][0]]
        op = node["op"]
        if op == "linear":
            ids = node["tensors"]
            w = densify(model["tensors"][ids[0]]).astype(np.float64)
            y = v @ w.T
            if len(ids) > 1:
                y = y + np.asarray(model["tensors"][ids[1]]["values"], np.float64)
        elif op == "relu":
            y = np.maximum(v, 0.0)
        elif op == "softmax":
            flat = v.reshape(batch, -1)
            e = np.exp(flat - flat.max(axis=1, keepdims=True))
            y = (e / e.sum(axis=1, keepdims=True)).reshape(v.shape)
        elif op == "flatten":
            y = v.reshape(batch, -1)
        else:
            raise ValueError(f"unknown op {op}")
        values.append(y)
    return values[-1]


def random_input(rng: np.random.Generator, model: dict, batch: int) -> np.ndarray:
    return rng.standard_normal((batch, *model["input_shape"])).astype(np.float32)


def assert_runtime_equals(data: bytes, x: np.ndarray, want: np.ndarray) -> None:
    """The model's outputs equal ``want`` bit for bit on every supported ISA level, at 1 and 2 threads."""
    import pyruntime
    from pyruntime import _core

    previous = _core.active_isa()
    try:
        for isa in _core.supported_isas():
            _core.set_isa(isa)
            for threads in (1, 2):
                np.testing.assert_array_equal(pyruntime.load(data, threads=threads).run(x), want,
                                              err_msg=f"{isa}, {threads} threads")
    finally:
        _core.set_isa(previous)


helpers_namespace = types.SimpleNamespace(
    ENCODINGS=ENCODINGS,
    dense=dense,
    csr=csr,
    codebook=codebook,
    csr_codebook=csr_codebook,
    tensor=tensor,
    sparse_mask=sparse_mask,
    densify=densify,
    assert_tensor_equal=assert_tensor_equal,
    mlp=mlp,
    forward=forward,
    random_input=random_input,
    assert_runtime_equals=assert_runtime_equals,
)


# ---- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def helpers() -> types.SimpleNamespace:
    """The builders above: helpers.dense / csr / codebook / csr_codebook / tensor / mlp / forward / ..."""
    return helpers_namespace


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A generator seeded from the test's id, so every test is reproducible and independent."""
    import zlib

    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def _every_encoding_model() -> dict:
    # input [2, 3, 5] -> flatten 30 -> dense 24 -> csr 20 (empty rows) -> codebook 16 (k=5) ->
    # csr+codebook 10 (k=16) -> softmax
    rng = np.random.default_rng(1234)
    model = mlp(
        rng,
        [30, 24, 20, 16, 10],
        list(ENCODINGS),
        input_shape=[2, 3, 5],
        metadata='{"source": "tests/conftest.py", "note": "every encoding"}',
    )
    model["tensors"][2] = csr(rng, (20, 24), 0.3, name="fc1.weight", empty_rows=[0, 7, 19])
    model["tensors"][4] = codebook(rng, (16, 20), k=5, name="fc2.weight")
    return model


@pytest.fixture(scope="session")
def every_encoding_model() -> dict:
    """A small model with one linear layer of each encoding (treat as read-only)."""
    return _every_encoding_model()


@pytest.fixture(scope="session")
def every_encoding_bytes(every_encoding_model: dict) -> bytes:
    """``every_encoding_model`` written by pyruntime's writer."""
    from pyruntime import _core

    return _core.write_model(every_encoding_model)


@pytest.fixture
def every_encoding_file(tmp_path, every_encoding_bytes: bytes):
    """``every_encoding_bytes`` as a .pyrt file on disk."""
    path = tmp_path / "every_encoding.pyrt"
    path.write_bytes(every_encoding_bytes)
    return path
