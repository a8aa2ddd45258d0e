"""write_model -> read_model gives back exactly what was written, the bytes follow docs/FORMAT.md
(checked with the independent reader in pyrt_spec.py), and a loaded model computes what numpy does.
"""

from __future__ import annotations

import itertools
import math
import struct

import numpy as np
import pyrt_spec as spec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyruntime
from pyruntime import _core

ENCODINGS = ("dense", "csr", "codebook", "csr+codebook")
SPARSE = ("csr", "csr+codebook")
CODEBOOK = ("codebook", "csr+codebook")


def linear_model(weight: dict, bias: dict | None = None) -> dict:
    """A one-layer model whose weight is the 2-D tensor under test."""
    tensors = [weight] + ([bias] if bias is not None else [])
    return {
        "input_shape": [weight["shape"][1]],
        "nodes": [{"op": "linear", "inputs": [0], "tensors": list(range(len(tensors)))}],
        "tensors": tensors,
    }


def holder_model(tensors: list[dict]) -> dict:
    """A model that stores tensors no node uses (e.g. rank 3/4 weights): the file keeps them anyway."""
    return {"input_shape": [4], "nodes": [{"op": "relu", "inputs": [0]}], "tensors": tensors}


def section_of(data: bytes, tensor: dict) -> spec.Entry:
    """The table entry of the tensor section holding `tensor` (found by name)."""
    tensor_entries = [e for e in spec.entries(data) if e.type == spec.TENSOR]
    names = [spec.decode_tensor(spec.payload(data, e))["name"] for e in tensor_entries]
    return tensor_entries[names.index(tensor["name"])]


@pytest.fixture
def roundtrip(helpers):
    """write -> read; every tensor must come back exactly, from the C++ reader and from pyrt_spec."""

    def run(model: dict) -> tuple[bytes, dict]:
        data = _core.write_model(model)
        back = _core.read_model(data)
        assert len(back["tensors"]) == len(model["tensors"])
        for got, want in zip(back["tensors"], model["tensors"]):
            helpers.assert_tensor_equal(got, want)
            helpers.assert_tensor_equal(spec.decode_tensor(spec.payload(data, section_of(data, got))), want)
        return data, back

    return run


def check_model_equal(back: dict, model: dict) -> None:
    assert back["input_shape"] == list(model["input_shape"])
    assert [n["op"] for n in back["nodes"]] == [n["op"] for n in model["nodes"]]
    assert [n["inputs"] for n in back["nodes"]] == [list(n["inputs"]) for n in model["nodes"]]
    assert [n["tensors"] for n in back["nodes"]] == [list(n.get("tensors", [])) for n in model["nodes"]]
    assert back["metadata"] == (model.get("metadata") or "")
    assert back["version"] == 1


# ---- exact round trips --------------------------------------------------------------------------------


def test_every_encoding_model_roundtrip(roundtrip, every_encoding_model, every_encoding_bytes):
    data, back = roundtrip(every_encoding_model)
    assert data == every_encoding_bytes
    check_model_equal(back, every_encoding_model)
    assert back["file_size"] == len(every_encoding_bytes)
    # the writer is deterministic
    assert _core.write_model(every_encoding_model) == every_encoding_bytes


ODD_SHAPES = [(1, 1), (1, 5), (5, 1), (3, 7), (17, 33), (64, 65), (2, 300), (31, 8)]


@pytest.mark.parametrize("shape", ODD_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_odd_shapes(roundtrip, helpers, rng, encoding, shape):
    kw = {"density": 0.4} if encoding in SPARSE else {}
    if encoding in CODEBOOK:
        kw["k"] = 7
    w = helpers.tensor(rng, encoding, shape, name="w", **kw)
    roundtrip(linear_model(w, helpers.dense(rng, (shape[0],), name="b")))


@pytest.mark.parametrize("shape", [(6,), (3, 4, 5), (2, 3, 4, 5), (1, 1, 1, 1), (7, 1, 3)], ids=str)
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_ranks_1_to_4(roundtrip, helpers, rng, encoding, shape):
    if encoding in SPARSE and len(shape) == 1:
        shape = (1, *shape)
    roundtrip(holder_model([helpers.tensor(rng, encoding, shape, name="t")]))


@pytest.mark.parametrize("encoding", SPARSE)
def test_empty_rows_and_empty_matrix(roundtrip, helpers, rng, encoding):
    rows, cols = 12, 40
    some = helpers.tensor(
        rng, encoding, (rows, cols), name="some_empty", density=0.3, empty_rows=[0, 1, 5, 11]
    )
    empty = helpers.tensor(rng, encoding, (rows, cols), name="all_empty", mask=np.zeros((rows, cols), bool))
    full = helpers.tensor(rng, encoding, (rows, cols), name="full", mask=np.ones((rows, cols), bool))
    assert len(empty["colidx"]) == 0
    data, _ = roundtrip(holder_model([some, empty, full]))
    e = spec.decode_tensor(spec.payload(data, section_of(data, empty)))
    assert e["streams"][0].count == 0
    # an all-empty matrix runs: the output is the bias
    bias = helpers.dense(rng, (rows,), name="b")
    m = pyruntime.load(_core.write_model(linear_model(empty, bias)))
    y = m.run(rng.standard_normal((3, cols)).astype(np.float32))
    np.testing.assert_array_equal(y, np.broadcast_to(bias["values"], (3, rows)))


@pytest.mark.parametrize("gap_bits", range(1, 9))
@pytest.mark.parametrize("encoding", SPARSE)
def test_forced_gap_bits_with_fillers(roundtrip, helpers, rng, encoding, gap_bits):
    rows, cols = 6, 1200
    mask = np.zeros((rows, cols), bool)
    mask[0, [0, cols - 1]] = True  # the widest gap a row can have
    mask[1, [1, 2, 3, 700]] = True  # consecutive columns, then a long jump
    mask[2, (1 << gap_bits) - 2] = True  # gap M - 1: the largest without a filler
    mask[3, (1 << gap_bits) - 1] = True  # gap M: exactly one filler, then 0
    mask[4, rng.choice(cols, 40, replace=False)] = True
    # row 5 empty
    w = helpers.tensor(rng, encoding, (rows, cols), name="w", mask=mask, gap_bits=gap_bits)
    data, back = roundtrip(holder_model([w]))
    assert back["tensors"][0]["gap_bits"] == gap_bits
    t = spec.decode_tensor(spec.payload(data, section_of(data, w)))
    gaps = t["streams"][0]
    m = (1 << gap_bits) - 1
    assert gaps.bits == gap_bits
    fillers = int(np.sum(gaps.symbols == m))
    assert gaps.count == mask.sum() + fillers
    assert fillers > 0  # the 1199-column gap of row 0 cannot be written without fillers
    # the writer never ends a row on a filler: every row's last symbol is < M
    pos = 0
    for r in range(rows):
        n = int(mask[r].sum())
        while n:
            g = gaps.symbols[pos]
            pos += 1
            if g != m:
                n -= 1
                if n == 0:
                    assert g < m


@pytest.mark.parametrize("index_bits", range(1, 9))
@pytest.mark.parametrize("encoding", CODEBOOK)
def test_forced_index_bits(roundtrip, helpers, rng, encoding, index_bits):
    for k in sorted({1, 2 ** (index_bits - 1) + 1 if index_bits > 1 else 2, 2**index_bits}):
        kw = {"density": 0.5} if encoding in SPARSE else {}
        w = helpers.tensor(rng, encoding, (9, 37), name=f"w{k}", k=k, index_bits=index_bits, **kw)
        data, back = roundtrip(holder_model([w]))
        assert back["tensors"][0]["index_bits"] == index_bits
        t = spec.decode_tensor(spec.payload(data, section_of(data, w)))
        assert t["streams"][-1].bits == index_bits


@pytest.mark.parametrize("encoding", CODEBOOK)
def test_index_bits_default_is_smallest(roundtrip, helpers, rng, encoding):
    for k, bits in [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (16, 4), (17, 5), (256, 8)]:
        w = helpers.tensor(rng, encoding, (8, 40), name="w", k=k)
        _, back = roundtrip(holder_model([w]))
        assert back["tensors"][0]["index_bits"] == bits, k


@pytest.mark.parametrize("encoding", SPARSE)
@pytest.mark.parametrize("row_nnz,width", [(255, 1), (256, 2), (65535, 2), (65536, 4)])
def test_row_count_width(roundtrip, helpers, rng, encoding, row_nnz, width):
    cols = max(row_nnz, 300)
    mask = np.zeros((3, cols), bool)
    mask[1, :row_nnz] = True
    mask[2, ::7] = True
    w = helpers.tensor(rng, encoding, (3, cols), name="w", mask=mask)
    data, _ = roundtrip(holder_model([w]))
    assert spec.decode_tensor(spec.payload(data, section_of(data, w)))["count_width"] == width


def test_names(roundtrip, helpers, rng):
    names = ["", "a", "seven77", "eight888", "nine99999", "x" * 255, "é" * 127 + "a", "layer.0/weight:0 ✓"]
    assert len(names[6].encode()) == 255
    tensors = [helpers.dense(rng, (2, 2), name=n) for n in names]
    _, back = roundtrip(holder_model(tensors))
    assert [t["name"] for t in back["tensors"]] == names


@pytest.mark.parametrize("name", ["x" * 256, "é" * 128])
def test_name_longer_than_255_bytes_is_refused(helpers, rng, name):
    with pytest.raises(ValueError, match="255"):
        _core.write_model(holder_model([helpers.dense(rng, (2, 2), name=name)]))


@pytest.mark.parametrize(
    "metadata",
    ['{"producer": "pyruntime", "layers": [1, 2, 3]}', "ünïcødé ✓ 中文", "x" * 100_000, "nul\0inside"],
    ids=["json", "unicode", "long", "nul"],
)
def test_metadata_survives(roundtrip, helpers, rng, metadata):
    model = helpers.mlp(rng, [5, 4], ["dense"], metadata=metadata)
    data, back = roundtrip(model)
    assert back["metadata"] == metadata
    meta = [e for e in spec.entries(data) if e.type == spec.METADATA]
    assert len(meta) == 1 and meta[0].flags == 0  # optional: readers may ignore it
    assert spec.payload(data, meta[0]) == metadata.encode()
    assert pyruntime.load(data).metadata == metadata


@pytest.mark.parametrize("metadata", [None, ""])
def test_no_metadata_no_section(roundtrip, helpers, rng, metadata):
    model = helpers.mlp(rng, [5, 4], ["dense"], metadata=metadata)
    data, back = roundtrip(model)
    assert back["metadata"] == ""
    assert all(e.type != spec.METADATA for e in spec.entries(data))


# ---- layout -------------------------------------------------------------------------------------------


def test_layout_and_alignment(every_encoding_model, every_encoding_bytes):
    data = every_encoding_bytes
    back = _core.read_model(data)
    sections = back["sections"]
    n = len(sections)
    assert data[:8] == spec.MAGIC
    version, flags, file_size, count, table_crc = struct.unpack_from("<IIQII", data, 8)
    assert (version, flags, file_size, count) == (1, 0, len(data), n)
    assert data[32:60] == bytes(28)
    assert struct.unpack_from("<I", data, 60)[0] == spec.crc32(data[:60])
    assert table_crc == spec.crc32(data[64 : 64 + 32 * n])
    # graph first, then tensors in order, then metadata; 64-byte aligned, zero padding between
    assert [s["type"] for s in sections] == [1] + [2] * len(every_encoding_model["tensors"]) + [3]
    assert sections[0]["offset"] == spec.align(64 + 32 * n)
    assert data[64 + 32 * n : sections[0]["offset"]] == bytes(sections[0]["offset"] - 64 - 32 * n)
    for s, e in zip(sections, spec.entries(data)):
        assert s["offset"] % 64 == 0
        assert (s["type"], s["flags"], s["offset"], s["size"], s["crc"]) == (
            e.type,
            e.flags,
            e.offset,
            e.size,
            e.crc,
        )
        assert s["crc"] == spec.crc32(spec.payload(data, e))
        assert s["flags"] == (1 if s["type"] in (1, 2) else 0)
    for a, b in itertools.pairwise(sections):
        assert b["offset"] == spec.align(a["offset"] + a["size"])
        assert data[a["offset"] + a["size"] : b["offset"]] == bytes(b["offset"] - a["offset"] - a["size"])
    assert sections[-1]["offset"] + sections[-1]["size"] == len(data)
    # file_bytes of each tensor is its section size
    assert [t["file_bytes"] for t in back["tensors"]] == [s["size"] for s in sections if s["type"] == 2]


def test_dense_values_are_64_byte_aligned_in_the_file(every_encoding_bytes):
    for e in spec.entries(every_encoding_bytes):
        if e.type == spec.TENSOR:
            t = spec.decode_tensor(spec.payload(every_encoding_bytes, e))
            assert t["end"] == e.size  # the payload holds exactly the tensor
            if t["encoding"] == "dense":
                assert (e.offset + t["values_at"]) % 64 == 0


def test_graph_section_matches_spec(every_encoding_model, every_encoding_bytes):
    g = spec.entries(every_encoding_bytes)[0]
    graph = spec.parse_graph(spec.payload(every_encoding_bytes, g))
    assert graph["end"] == g.size
    assert graph["input_shape"] == every_encoding_model["input_shape"]
    assert graph["nodes"] == [
        {"op": n["op"], "inputs": n["inputs"], "tensors": n.get("tensors", [])}
        for n in every_encoding_model["nodes"]
    ]


def test_hand_built_file_is_byte_identical(helpers, rng):
    """A file assembled from the spec by hand equals the writer's output byte for byte."""
    w = helpers.dense(rng, (3, 5), name="fc.weight")
    b = helpers.dense(rng, (3,), name="fc.bias")
    cb = helpers.codebook(rng, (3, 3), k=4, name="fc2.weight")  # 9 2-bit indices: packed wins
    model = {
        "input_shape": [5],
        "nodes": [
            {"op": "linear", "inputs": [0], "tensors": [0, 1]},
            {"op": "relu", "inputs": [1]},
            {"op": "linear", "inputs": [2], "tensors": [2]},
            {"op": "softmax", "inputs": [3]},
        ],
        "tensors": [w, b, cb],
        "metadata": "{}",
    }
    by_hand = spec.build_file(
        [
            (spec.GRAPH, spec.REQUIRED, spec.graph_payload(model["input_shape"], model["nodes"])),
            (spec.TENSOR, spec.REQUIRED, spec.dense_payload(w["name"], w["shape"], w["values"])),
            (spec.TENSOR, spec.REQUIRED, spec.dense_payload(b["name"], b["shape"], b["values"])),
            (
                spec.TENSOR,
                spec.REQUIRED,
                spec.codebook_payload(cb["name"], cb["shape"], cb["centroids"], cb["indices"], 2),
            ),
            (spec.METADATA, 0, b"{}"),
        ]
    )
    assert _core.write_model(model) == by_hand


def test_packed_bit_order_example_from_the_spec():
    # docs/FORMAT.md 4.1: b = 3, symbols 5, 1, 6 -> bytes 0x8D 0x01
    enc = _core.encode_symbol_stream(np.array([5, 1, 6], np.uint8), 3)
    assert enc == struct.pack("<BBHIII", 0, 3, 0, 3, 2, 0) + b"\x8d\x01\x00\x00"
    assert spec.packed_stream(np.array([5, 1, 6]), 3) == enc


def test_gap_example_from_the_spec(roundtrip, helpers, rng):
    # docs/FORMAT.md 3.5: gap_bits 2, nonzeros at columns 1, 2, 9 -> symbols 1 0 3 3 0
    mask = np.zeros((1, 12), bool)
    mask[0, [1, 2, 9]] = True
    w = helpers.csr(rng, (1, 12), mask=mask, gap_bits=2, name="w")
    data, _ = roundtrip(holder_model([w]))
    t = spec.decode_tensor(spec.payload(data, section_of(data, w)))
    assert t["streams"][0].symbols.tolist() == [1, 0, 3, 3, 0]


# ---- the chosen coding is small -----------------------------------------------------------------------


def test_sparse_coding_beats_raw_csr(roundtrip, helpers):
    rng = np.random.default_rng(7)
    rows, cols = 300, 784
    mask = rng.random((rows, cols)) < 0.10
    w = helpers.csr(rng, (rows, cols), mask=mask, name="fc1.weight")
    nnz = int(mask.sum())
    raw_csr = nnz * (4 + 4) + (rows + 1) * 4  # u32 column + f32 value per nonzero, u32 row pointers
    chosen = _core.encoded_tensor_bytes(w)
    assert chosen < raw_csr
    # relative gaps take well under the 4 bytes of a raw column index: at most ~1 byte a nonzero
    assert chosen - 4 * nnz < 1.2 * nnz + rows + 256
    forced = {b: _core.encoded_tensor_bytes({**w, "gap_bits": b}) for b in range(1, 9)}
    assert chosen == min(forced.values())
    # the file reports the same size for the section
    _, back = roundtrip(holder_model([w]))
    assert back["tensors"][0]["file_bytes"] == chosen
    assert back["tensors"][0]["gap_bits"] == min(forced, key=lambda b: (forced[b], -b))
    # sharing the values through a 16-entry codebook shrinks it again (4-bit indices, Huffman or packed)
    wc = helpers.csr_codebook(rng, (rows, cols), mask=mask, k=16, name="fc1.weight")
    assert _core.encoded_tensor_bytes(wc) < chosen * 0.35
    # and both beat dense fp32 by far
    assert chosen < rows * cols * 4 * 0.15


# ---- loaded models compute what numpy computes ----------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_run_matches_numpy(helpers, rng, encoding, batch):
    model = helpers.mlp(rng, [37, 19, 10], [encoding, encoding])
    m = pyruntime.load(_core.write_model(model))
    x = helpers.random_input(rng, model, batch)
    y = m.run(x)
    assert y.dtype == np.float32 and y.shape == (batch, 10)
    np.testing.assert_allclose(y, helpers.forward(model, x), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(y.sum(axis=1), 1, rtol=1e-5)


def test_every_encoding_model_runs_from_path_and_bytes(
    helpers, rng, every_encoding_model, every_encoding_bytes, every_encoding_file
):
    x = helpers.random_input(rng, every_encoding_model, 5)
    want = helpers.forward(every_encoding_model, x)
    for source in (
        every_encoding_bytes,
        bytearray(every_encoding_bytes),
        memoryview(every_encoding_bytes),
        every_encoding_file,
        str(every_encoding_file),
    ):
        m = pyruntime.load(source)
        assert m.inputs[0]["shape"] == (None, 2, 3, 5)
        assert m.outputs[0]["shape"] == (None, 10)
        assert m.file_bytes == len(every_encoding_bytes)
        np.testing.assert_allclose(m.run(x), want, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(m(x[:1]), want[:1], rtol=1e-4, atol=1e-6)


def test_run_without_bias_and_without_softmax(helpers, rng):
    model = helpers.mlp(rng, [12, 9, 3], ["csr+codebook", "csr"], bias=False, final=None)
    x = helpers.random_input(rng, model, 4)
    np.testing.assert_allclose(
        pyruntime.load(_core.write_model(model)).run(x), helpers.forward(model, x), rtol=1e-4, atol=1e-5
    )


def test_flatten_only_model(rng):
    model = {"input_shape": [2, 3, 4], "nodes": [{"op": "flatten", "inputs": [0]}], "tensors": []}
    x = rng.standard_normal((3, 2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(pyruntime.load(_core.write_model(model)).run(x), x.reshape(3, 24))


# ---- property -----------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.integers(1, 20),
    cols=st.integers(1, 300),
    density=st.sampled_from([0.0, 0.01, 0.1, 0.5, 1.0]),
    gap_bits=st.sampled_from([None, 1, 2, 3, 4, 5, 6, 7, 8]),
    encoding=st.sampled_from(ENCODINGS),
    k=st.integers(1, 256),
    seed=st.integers(0, 2**32 - 1),
)
def test_roundtrip_property(roundtrip, helpers, rows, cols, density, gap_bits, encoding, k, seed):
    rng = np.random.default_rng(seed)
    kw: dict = {}
    if encoding in SPARSE:
        kw["density"] = density
        kw["gap_bits"] = gap_bits
    if encoding in CODEBOOK:
        kw["k"] = k
    w = helpers.tensor(rng, encoding, (rows, cols), name="w", **kw)
    if kw.get("gap_bits") is None:
        w.pop("gap_bits", None)
    data, back = roundtrip(linear_model(w))
    assert back["tensors"][0]["file_bytes"] == _core.encoded_tensor_bytes(w)
    x = rng.standard_normal((2, cols)).astype(np.float32)
    want = x.astype(np.float64) @ helpers.densify(w).T.astype(np.float64)
    np.testing.assert_allclose(pyruntime.load(data).run(x), want, rtol=1e-4, atol=1e-4 * math.sqrt(cols))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n_nodes=st.integers(1, 9), input_rank=st.integers(1, 3))
def test_random_dag_runs_as_numpy(helpers, seed, n_nodes, input_rank):
    """Graphs are DAGs, not only chains: any node may read any earlier value (skip connections, values
    read twice, dead values, flatten aliases). The file keeps the graph and the runtime computes it."""
    rng = np.random.default_rng(seed)
    input_shape = [int(d) for d in rng.integers(1, 5, input_rank)]
    shapes = [input_shape]
    nodes, tensors = [], []
    for i in range(n_nodes):
        v = int(rng.integers(0, len(shapes)))
        flat = len(shapes[v]) == 1
        op = str(
            rng.choice(
                ["linear", "linear", "relu", "softmax", "flatten"] if flat else ["relu", "softmax", "flatten"]
            )
        )
        if op == "linear":
            out = int(rng.integers(1, 7))
            enc = str(rng.choice(ENCODINGS))
            ids = [len(tensors)]
            tensors.append(helpers.tensor(rng, enc, (out, shapes[v][0]), name=f"w{i}"))
            if rng.random() < 0.5:
                ids.append(len(tensors))
                tensors.append(helpers.dense(rng, (out,), name=f"b{i}"))
            nodes.append({"op": "linear", "inputs": [v], "tensors": ids})
            shapes.append([out])
        else:
            nodes.append({"op": op, "inputs": [v]})
            shapes.append([math.prod(shapes[v])] if op == "flatten" else shapes[v])
    model = {"input_shape": input_shape, "nodes": nodes, "tensors": tensors}
    data = _core.write_model(model)
    check_model_equal(_core.read_model(data), model)
    m = pyruntime.load(data)
    assert m.outputs[0]["shape"] == (None, *shapes[-1])
    for batch in (1, 3):
        x = rng.standard_normal((batch, *input_shape)).astype(np.float32)
        np.testing.assert_allclose(m.run(x), helpers.forward(model, x), rtol=1e-4, atol=1e-5)
