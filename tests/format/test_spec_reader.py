"""docs/FORMAT.md is a complete spec: spec_reader.py, written from that page alone, reads what the C++ writer
writes exactly as the C++ reader does, computes the same outputs, and accepts and refuses the same files.
"""

from __future__ import annotations

import itertools
import math
import pathlib
import struct
import zlib

import numpy as np
import pytest
import spec_reader as sr

import pyruntime
from pyruntime import _core

ENCODINGS = ("dense", "csr", "codebook", "csr+codebook")
FIELDS = {
    "dense": ["values"],
    "csr": ["rowptr", "colidx", "values"],
    "codebook": ["indices", "centroids"],
    "csr+codebook": ["rowptr", "colidx", "indices", "centroids"],
    "int8": ["qvalues", "scales"],
    "csr+int8": ["rowptr", "colidx", "qvalues", "scales"],
    "binary": ["bits", "scales"],
}
DATA = pathlib.Path(__file__).resolve().parents[1] / "data"


# ---- comparing the two readers --------------------------------------------------------------------------


def assert_same_model(spec: sr.SpecModel, cpp: dict) -> None:
    """The spec reader's model equals the C++ reader's (read_model) exactly: arrays bit for bit."""
    assert (spec.version, spec.file_size) == (cpp["version"], cpp["file_size"])
    assert [(s.type, s.flags, s.offset, s.size, s.crc) for s in spec.sections] == [
        (s["type"], s["flags"], s["offset"], s["size"], s["crc"]) for s in cpp["sections"]
    ]
    assert spec.input_shape == cpp["input_shape"]
    assert [(n.op, n.inputs, n.tensors) for n in spec.nodes] == [
        (n["op"], n["inputs"], n["tensors"]) for n in cpp["nodes"]
    ]
    for i, (n, want) in enumerate(zip(spec.nodes, cpp["nodes"])):
        assert attr_bits(n.attrs) == attr_bits(want["attrs"]), (i, n.op, n.attrs, want["attrs"])
    assert spec.metadata == cpp["metadata"]
    assert len(spec.tensors) == len(cpp["tensors"])
    for t, want in zip(spec.tensors, cpp["tensors"]):
        assert (t.name, t.encoding, t.shape) == (want["name"], want["encoding"], want["shape"])
        for f in FIELDS[t.encoding]:
            got, exp = getattr(t, f).ravel(), np.asarray(want[f])
            assert got.dtype == exp.dtype and got.shape == exp.shape, (t.name, f, got.dtype, exp.dtype)
            if got.dtype == np.float32:  # bit-exact: -0.0 and NaN payloads count
                got, exp = got.view(np.uint32), exp.view(np.uint32)
            assert np.array_equal(got, exp), (t.name, f)
        for f in ("gap_bits", "index_bits"):
            assert getattr(t, f) == want.get(f), (t.name, f)


def attr_bits(attrs: dict) -> dict:
    """Attributes with every float as its f32 bits (so -0.0, infinities and NaN compare exactly)."""
    return {k: int(np.float32(v).view(np.uint32)) if isinstance(v, float) else v for k, v in attrs.items()}


def verdict(read, data: bytes, refusal: type[Exception]) -> tuple[bool, object]:
    try:
        return True, read(data)
    except refusal as e:
        return False, str(e)


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    """1e-5 relative, measured against the output's scale (an output near 0 has no relative precision)."""
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


# ---- models the C++ writer writes -----------------------------------------------------------------------


def holder(tensors: list[dict]) -> dict:
    """A model that stores tensors no node uses: the file keeps them anyway."""
    return {"input_shape": [4], "nodes": [{"op": "relu", "inputs": [0]}], "tensors": tensors}


def skewed(rng: np.random.Generator, n: int, k: int, p: float = 0.5) -> np.ndarray:
    """Geometric symbol frequencies: the writer Huffman-codes them."""
    return np.minimum(rng.geometric(p, n) - 1, k - 1).astype(np.uint8)


def with_far_column(mask: np.ndarray) -> np.ndarray:
    """Row 0 holds only its last column: every gap_bits up to 8 needs fillers (gap cols-1 >= 255)."""
    mask[0, :] = False
    mask[0, -1] = True
    return mask


def case_codebook(h, rng, k, skew, index_bits=None):
    t = h.codebook(rng, (20, 50), k=k, name="cb", index_bits=index_bits)
    if skew:
        t["indices"] = skewed(rng, 1000, k, skew)
    return holder([t])


def case_sparse(h, rng, encoding, density, gap_bits=None, skew=None, cols=300, far=True):
    mask = h.sparse_mask(rng, (6, cols), density, empty_rows=[3])
    if far:
        mask = with_far_column(mask)
    t = h.tensor(rng, encoding, (6, cols), name="sp", mask=mask, gap_bits=gap_bits)
    if skew:
        t["indices"] = skewed(rng, t["colidx"].size, 16, skew)
    return holder([t])


def case_count_widths(h, rng):
    tensors = []
    for encoding in ("csr", "csr+codebook"):
        for row_nnz in (256, 65536):
            mask = np.zeros((2, row_nnz), bool)
            mask[1] = True
            tensors.append(h.tensor(rng, encoding, (2, row_nnz), name=f"{encoding}{row_nnz}", mask=mask))
    return holder(tensors)


def case_ranks(h, rng):
    shapes = [(6,), (3, 4, 5), (2, 3, 4, 5), (1, 1, 1, 1), (7, 1, 3)]
    return holder([h.tensor(rng, e, s, name=f"{e}{s}") for e in ENCODINGS for s in shapes])


def case_empty(h, rng):
    tensors = []
    for e in ("csr", "csr+codebook"):
        for name, mask in [("empty", np.zeros((5, 9), bool)), ("full", np.ones((5, 9), bool))]:
            tensors.append(h.tensor(rng, e, (5, 9), name=f"{e}-{name}", mask=mask))
    return holder(tensors)


def case_every_encoding(h, rng, metadata='{"producer": "tests", "layers": [1, 2]}'):
    model = h.mlp(rng, [30, 24, 20, 16, 10], list(ENCODINGS), input_shape=[2, 3, 5], metadata=metadata)
    model["tensors"][2] = h.csr(rng, (20, 24), 0.3, name="fc1.weight", empty_rows=[0, 7, 19])
    model["tensors"][4] = h.codebook(rng, (16, 20), k=5, name="fc2.weight")
    return model


# id -> (builder, {tensor name: {stream: coding the writer must have chosen}})
CASES = {
    "every-encoding": (case_every_encoding, {}),
    "every-encoding-unicode-metadata": (lambda h, r: case_every_encoding(h, r, "ünïcødé ✓ 中文 nul\0"), {}),
    "no-metadata": (lambda h, r: case_every_encoding(h, r, None), {}),
    "codebook-packed": (lambda h, r: case_codebook(h, r, 16, None), {"cb": {"indices": "packed"}}),
    "codebook-huffman": (lambda h, r: case_codebook(h, r, 16, 0.5), {"cb": {"indices": "huffman"}}),
    "codebook-one-code": (lambda h, r: case_codebook(h, r, 1, None, 8), {"cb": {"indices": "huffman"}}),
    "codebook-long-codes": (lambda h, r: case_codebook(h, r, 256, 0.4), {"cb": {"indices": "huffman"}}),
    "csr-huffman-gaps": (lambda h, r: case_sparse(h, r, "csr", 0.1, 3), {"sp": {"gaps": "huffman"}}),
    "csr-packed-gaps": (lambda h, r: case_sparse(h, r, "csr", 0.5, far=False), {"sp": {"gaps": "packed"}}),
    "csr+codebook-packed": (
        lambda h, r: case_sparse(h, r, "csr+codebook", 0.5, far=False),
        {"sp": {"gaps": "packed", "indices": "packed"}},
    ),
    "csr+codebook-huffman": (
        lambda h, r: case_sparse(h, r, "csr+codebook", 0.1, 3, skew=0.5),
        {"sp": {"gaps": "huffman", "indices": "huffman"}},
    ),
    "count-widths": (case_count_widths, {}),
    "ranks-1-to-4": (case_ranks, {}),
    "empty-and-full": (case_empty, {}),
}
CASES.update(
    {
        f"{e}-gap_bits-{b}": (lambda h, r, e=e, b=b: case_sparse(h, r, e, 0.03, b, cols=300), {})
        for e in ("csr", "csr+codebook")
        for b in range(1, 9)
    }
)


@pytest.mark.parametrize("case", list(CASES))
def test_same_tensors_as_cpp_reader(helpers, rng, case):
    build, codings = CASES[case]
    model = build(helpers, rng)
    data = _core.write_model(model)
    spec = sr.read_file(data)
    assert_same_model(spec, _core.read_model(data))
    by_name = {t.name: t for t in spec.tensors}
    for name, want in codings.items():
        assert by_name[name].coding == want, name
    for t in spec.tensors:
        assert np.array_equal(
            sr.dense_matrix(t), helpers.densify(next(w for w in model["tensors"] if w["name"] == t.name))
        )
        if "gaps" in t.streams:
            assert t.streams["gaps"].symbol_bits == t.gap_bits
            if case.endswith(f"gap_bits-{t.gap_bits}"):  # the far column of row 0 took fillers
                assert (1 << t.gap_bits) - 1 in t.streams["gaps"].symbols
        if "indices" in t.streams:
            assert t.streams["indices"].symbol_bits == t.index_bits
    if case == "codebook-long-codes":
        assert spec.tensors[0].streams["indices"].code_lengths.max() >= 12


def test_every_encoding_fixture(every_encoding_bytes):
    spec = sr.read_file(every_encoding_bytes)
    assert_same_model(spec, _core.read_model(every_encoding_bytes))
    assert {c for t in spec.tensors for c in t.coding.values()} == {"packed", "huffman"}


def test_long_canonical_codes_decode_like_cpp(rng):
    """Code lengths 1, 2, .., 24, 24 (a complete table): the spec's canonical codes, checked by C++."""
    lengths = list(range(1, 25)) + [24] + [0] * 7
    symbols = np.concatenate([np.arange(25), rng.integers(0, 25, 200)]).astype(np.uint8)
    data = stream_bytes(symbols, 5, lengths)
    assert np.array_equal(_core.decode_symbol_stream(data, 5, symbols.size), symbols)
    got = sr.decode_stream(data, 5)
    assert got.coding == "huffman" and np.array_equal(got.symbols, symbols)


@pytest.mark.parametrize("bits", [1, 3, 8])
def test_writer_streams_decode(rng, bits):
    for symbols in (rng.integers(0, 1 << bits, 500), skewed(rng, 500, 1 << bits), np.zeros(7, int)):
        symbols = symbols.astype(np.uint8)
        data = _core.encode_symbol_stream(symbols, bits)
        got = sr.decode_stream(data, bits)
        assert np.array_equal(got.symbols, symbols) and got.count == symbols.size


def test_spec_examples():
    # 4.1: b = 3, symbols 5, 1, 6 -> bytes 0x8D 0x01
    assert stream_bytes([5, 1, 6], 3)[16:18] == b"\x8d\x01"
    s = sr.decode_stream(_core.encode_symbol_stream(np.array([5, 1, 6], np.uint8), 3), 3)
    assert s.coding == "packed" and s.symbols.tolist() == [5, 1, 6]
    # 3.5: gap_bits 2, nonzeros at columns 1, 2, 9 -> symbols 1 0 3 3 0
    mask = np.zeros((1, 12), bool)
    mask[0, [1, 2, 9]] = True
    w = {
        "name": "w",
        "encoding": "csr",
        "shape": [1, 12],
        "gap_bits": 2,
        "rowptr": np.array([0, 3], np.uint32),
    }
    w.update(colidx=np.array([1, 2, 9], np.uint32), values=np.ones(3, np.float32))
    t = sr.read_file(_core.write_model(holder([w]))).tensors[0]
    assert t.streams["gaps"].symbols.tolist() == [1, 0, 3, 3, 0] and t.colidx.tolist() == [1, 2, 9]


# ---- the file's meaning ---------------------------------------------------------------------------------


def dag_model(h, rng):
    """Skip connections, a value read twice, a dead value, softmax on a 3-D value."""
    nodes = [
        {"op": "softmax", "inputs": [0]},  # 1: [2, 3, 4]
        {"op": "flatten", "inputs": [1]},  # 2: [24]
        {"op": "flatten", "inputs": [0]},  # 3: [24]
        {"op": "linear", "inputs": [3], "tensors": [0, 1]},  # 4: [9]
        {"op": "relu", "inputs": [2]},  # 5: dead
        {"op": "linear", "inputs": [2], "tensors": [2]},  # 6: [9]
        {"op": "relu", "inputs": [4]},  # 7
        {"op": "linear", "inputs": [7], "tensors": [3, 4]},  # 8: [5]
    ]
    tensors = [
        h.csr_codebook(rng, (9, 24), 0.4, name="a"),
        h.dense(rng, (9,), name="ab"),
        h.codebook(rng, (9, 24), k=3, name="b"),
        h.csr(rng, (5, 9), 0.5, name="c"),
        h.dense(rng, (5,), name="cb"),
    ]
    return {"input_shape": [2, 3, 4], "nodes": nodes, "tensors": tensors}


RUN_MODELS = {
    **{e: lambda h, r, e=e: h.mlp(r, [37, 19, 10], [e, e]) for e in ENCODINGS},
    "mixed-no-bias-no-softmax": lambda h, r: h.mlp(
        r, [12, 9, 3], ["csr+codebook", "csr"], bias=False, final=None
    ),
    "every-encoding": case_every_encoding,
    "dag": dag_model,
}


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("name", list(RUN_MODELS))
def test_run_matches_runtime(helpers, rng, name, batch):
    model = RUN_MODELS[name](helpers, rng)
    data = _core.write_model(model)
    x = helpers.random_input(rng, model, batch)
    got = sr.run(sr.read_file(data), x)
    assert got.dtype == np.float32
    assert_close(got, pyruntime.load(data).run(x))


@pytest.mark.parametrize("version", [1, 2])
def test_golden_file(version):
    path, expected = DATA / f"golden_v{version}.pyrt", DATA / f"golden_v{version}_expected.npz"
    if not path.exists() or not expected.exists():
        pytest.skip(f"{path.name} / {expected.name} not in tests/data yet")
    data = path.read_bytes()
    spec = sr.read_file(data)
    assert_same_model(spec, _core.read_model(data))
    with np.load(expected) as npz:
        assert_close(sr.run(spec, npz["input"]), npz["output"])


# ---- version 2: random convolutional graphs, run by both ----------------------------------------------------


def conv_size(n: int, before: int, after: int, k: int, stride: int, dilation: int) -> int:
    """2.3: the output size along one axis."""
    return (n + before + after - dilation * (k - 1) - 1) // stride + 1


def _conv_node(h, rng, shapes, tensors, v: int, encoding: str, out=None, geometry=None) -> tuple[dict, list]:
    """A random valid conv2d on value v (2.2, 2.3): the node and its output shape."""
    c, hh, ww = shapes[v]
    if geometry is None:
        groups = int(rng.choice([g for g in range(1, c + 1) if c % g == 0]))
        o = out or groups * int(rng.integers(1, 4))
        k = [int(n) for n in rng.integers(1, 5, 2)]
        stride, dilation = [int(n) for n in rng.integers(1, 4, 2)], [int(n) for n in rng.integers(1, 3, 2)]
        pad = [int(n) for n in rng.integers(0, 3, 4)]  # top, left, bottom, right
        for ax, size in ((0, hh), (1, ww)):  # shrink the kernel until the dilated kernel fits
            while dilation[ax] * (k[ax] - 1) + 1 > size + pad[ax] + pad[ax + 2]:
                k[ax] -= 1
            # and the trailing padding until the last window starts inside the input (the runtime
            # refuses a window wholly in the trailing padding: test_conv_window_in_trailing_padding)
            while (conv_size(size, pad[ax], pad[ax + 2], k[ax], stride[ax], dilation[ax]) - 1) * stride[
                ax
            ] - pad[ax] > size - 1:
                pad[ax + 2] -= 1
        geometry = (o, groups, k, stride, dilation, pad)
    o, groups, k, stride, dilation, pad = geometry
    kw = {"density": 0.4} if "csr" in encoding else {}
    if "codebook" in encoding:
        kw["k"] = int(rng.integers(1, 17))
    ids = [len(tensors)]
    tensors.append(h.tensor(rng, encoding, (o, c // groups, *k), name=f"conv{len(tensors)}.weight", **kw))
    if rng.random() < 0.6:
        ids.append(len(tensors))
        tensors.append(h.dense(rng, (o,), name=f"conv{len(tensors)}.bias"))
    attrs = {"stride": stride, "padding": pad, "dilation": dilation, "groups": groups}
    oh = conv_size(hh, pad[0], pad[2], k[0], stride[0], dilation[0])
    ow = conv_size(ww, pad[1], pad[3], k[1], stride[1], dilation[1])
    return {"op": "conv2d", "inputs": [v], "tensors": ids, "attrs": attrs}, [o, oh, ow], geometry


def _pool_node(rng, shape, v: int) -> tuple[dict, list]:
    c, hh, ww = shape
    k = [int(rng.integers(1, min(4, n) + 1)) for n in (hh, ww)]
    stride = [int(n) for n in rng.integers(1, 4, 2)]
    pad = [int(rng.integers(0, k[i % 2])) for i in range(4)]
    ceil = int(rng.integers(0, 2))
    attrs = {"kernel": k, "stride": stride, "padding": pad, "ceil_mode": ceil}
    op = "max_pool2d" if rng.random() < 0.5 else "avg_pool2d"
    if op == "avg_pool2d":
        attrs["count_include_pad"] = int(rng.integers(0, 2))
    size = []
    for ax, n in ((0, hh), (1, ww)):
        span = n + pad[ax] + pad[ax + 2] - k[ax]
        m = (-(-span // stride[ax]) if ceil else span // stride[ax]) + 1
        if ceil and (m - 1) * stride[ax] >= n + pad[ax]:
            m -= 1
        size.append(m)
    return {"op": op, "inputs": [v], "attrs": attrs}, [c, *size]


def random_conv_graph(h, rng, encodings) -> dict:
    """conv -> [pool] -> [relu | clamp] -> two branches (a second conv of the same geometry and add, or
    concat along a random axis) -> [conv] -> global_avg_pool or flatten -> linear [-> softmax]."""
    shapes = [[int(rng.integers(1, 7)), int(rng.integers(4, 12)), int(rng.integers(4, 12))]]
    nodes, tensors = [], []

    def push(node, shape) -> int:
        nodes.append(node)
        shapes.append(shape)
        return len(nodes)

    node, shape, _ = _conv_node(h, rng, shapes, tensors, 0, encodings[0])
    v = push(node, shape)
    if rng.random() < 0.7:
        v = push(*_pool_node(rng, shapes[v], v))
    r = rng.random()
    if r < 0.3:
        v = push({"op": "relu", "inputs": [v]}, shapes[v])
    elif r < 0.6:
        lo = float(np.float32(rng.uniform(-1, 0)))
        v = push({"op": "clamp", "inputs": [v], "attrs": {"min": lo, "max": lo + 1.5}}, shapes[v])
    if rng.random() < 0.5:  # two convs of one geometry on v, added
        a_node, shape, geom = _conv_node(h, rng, shapes, tensors, v, encodings[1])
        a = push(a_node, shape)
        b = push(_conv_node(h, rng, shapes, tensors, v, encodings[2], geometry=geom)[0], shape)
        v = push({"op": "add", "inputs": [a, b]}, shape)
    else:  # v and relu(v) (and maybe v again) concatenated
        axis = int(rng.integers(0, 3))
        ins = [v, push({"op": "relu", "inputs": [v]}, shapes[v])] + [v] * int(rng.integers(0, 2))
        shape = list(shapes[v])
        shape[axis] *= len(ins)
        v = push({"op": "concat", "inputs": ins, "attrs": {"axis": axis}}, shape)
    if rng.random() < 0.5:
        node, shape, _ = _conv_node(h, rng, shapes, tensors, v, encodings[3])
        v = push(node, shape)
    if rng.random() < 0.5:
        v = push({"op": "global_avg_pool", "inputs": [v]}, [shapes[v][0], 1, 1])
    n = math.prod(shapes[v])
    if rng.random() < 0.5:
        v = push({"op": "reshape", "inputs": [v], "attrs": {"shape": [n]}}, [n])
    else:
        v = push({"op": "flatten", "inputs": [v]}, [n])
    w = h.tensor(rng, encodings[int(rng.integers(0, 4))], (5, n), name="fc.weight")
    tensors.append(w)
    v = push({"op": "linear", "inputs": [v], "tensors": [len(tensors) - 1]}, [5])
    if rng.random() < 0.3:
        push({"op": "softmax", "inputs": [v]}, [5])
    return {"input_shape": shapes[0], "nodes": nodes, "tensors": tensors, "_shapes": shapes}


@pytest.mark.parametrize("seed", range(32))
def test_random_conv_graphs_agree(helpers, seed):
    rng = np.random.default_rng(1000 + seed)
    encodings = [ENCODINGS[(seed + i) % 4] for i in range(4)]  # every encoding in every position
    model = random_conv_graph(helpers, rng, encodings)
    shapes = model.pop("_shapes")
    data = _core.write_model(model)
    spec = sr.read_file(data)
    assert spec.version == 2
    assert_same_model(spec, _core.read_model(data))
    assert spec.value_shapes == shapes
    loaded = pyruntime.load(data)
    assert list(loaded.outputs[0]["shape"][1:]) == spec.value_shapes[-1]
    for batch in (1, 3):
        x = helpers.random_input(rng, model, batch)
        assert_close(sr.run(spec, x), loaded.run(x))


@pytest.mark.parametrize("padding", [[0, 0, 1, 0], [1, 1, 1, 1], [0, 0, 0, 3], [2, 0, 3, 1]])
def test_conv_window_in_trailing_padding(helpers, rng, padding):
    model = {
        "input_shape": [2, 2, 3],
        "nodes": [
            {
                "op": "conv2d",
                "inputs": [0],
                "tensors": [0, 1],
                "attrs": {"stride": [1, 1], "padding": padding, "dilation": [1, 1], "groups": 1},
            }
        ],
        "tensors": [helpers.dense(rng, (3, 2, 1, 1)), helpers.dense(rng, (3,), name="b")],
    }
    data = _core.write_model(model)
    spec = sr.read_file(data)
    assert_same_model(spec, _core.read_model(data))
    x = helpers.random_input(rng, model, 2)
    assert_close(pyruntime.load(data).run(x), sr.run(spec, x))


# ---- files built by hand from the spec: the cases where FORMAT.md leaves a reader's behaviour open ---------


def pad(b: bytes, n: int) -> bytes:
    return b + bytes(-len(b) % n)


def stream_bytes(symbols, bits: int, lengths=None, *, res=(0, 0), tail: int = 0, extra: bytes = b"") -> bytes:
    """4: a packed stream, or a Huffman stream with the canonical codes of `lengths`."""
    symbols = [int(s) for s in symbols]
    if lengths is None:
        code_bits = [(s >> i) & 1 for s in symbols for i in range(bits)]
        coding, table = 0, b""
    else:
        codes = {s: (n, c) for (n, c), s in sr.canonical_codes(np.array(lengths), "test").items()}
        code_bits = [(codes[s][1] >> (codes[s][0] - 1 - i)) & 1 for s in symbols for i in range(codes[s][0])]
        coding, table = 1, pad(bytes(lengths), 4)
    payload = np.packbits(np.array(code_bits, np.uint8), bitorder="little").tobytes()
    payload = payload[:-1] + bytes([payload[-1] | tail]) + extra if payload else payload
    return (
        struct.pack("<BBHIII", coding, bits, res[0], len(symbols), len(payload), res[1])
        + table
        + pad(payload, 4)
    )


def tensor_head(encoding: int, shape, name: bytes = b"t", reserved: int = 0) -> bytes:
    dims = list(shape) + [0] * (4 - len(shape))
    return pad(struct.pack("<8I", encoding, len(shape), *dims, len(name), reserved) + name, 8)


def dense_bytes(shape, name: bytes = b"t", fill: int = 0) -> bytes:
    head = tensor_head(0, shape, name)
    return head + bytes([fill]) * (-len(head) % 64) + np.arange(math.prod(shape), dtype="<f4").tobytes()


def codebook_bytes(shape, k: int, stream: bytes, index_bits: int = 2) -> bytes:
    return (
        tensor_head(2, shape)
        + struct.pack("<2I", k, index_bits)
        + np.arange(k, dtype="<f4").tobytes()
        + stream
    )


def csr_bytes(shape, counts, gaps, gap_bits: int) -> bytes:
    nnz = sum(counts)
    head = tensor_head(1, shape) + struct.pack("<4I", nnz, gap_bits, 1, 0) + pad(bytes(counts), 4)
    return head + stream_bytes(gaps, gap_bits) + np.ones(nnz, "<f4").tobytes()


def attr_words(op: str, attrs: dict) -> bytes:
    """2.2: the attribute words of `op` in file order (f32 where the spec says; reshape's shape zero-filled)."""
    out = b""
    for name, words, kind in sr.ATTRS[op]:
        v = attrs[name]
        v = list(v) + [0] * (words - len(v)) if isinstance(v, (list, tuple)) else [v]
        out += struct.pack(f"<{words}{'f' if kind == 'f32' else 'I'}", *v)
    return out


def graph_bytes(input_shape, nodes, dims=None) -> bytes:
    """2: nodes are (op, inputs, tensors[, attrs]); op a name or a raw code, attrs a dict (2.2) or bytes."""
    out = struct.pack(
        "<7I", len(input_shape), *(dims or list(input_shape) + [0] * (4 - len(input_shape))), len(nodes), 0
    )
    for op, inputs, tensors, *attrs in nodes:
        attrs = attrs[0] if attrs else b""
        if isinstance(attrs, dict):
            attrs = attr_words(op, attrs)
        code = op if isinstance(op, int) else sr.OP_CODES[op]
        out += struct.pack("<HBBI", code, len(inputs), len(tensors), len(attrs))
        out += struct.pack(f"<{len(inputs) + len(tensors)}I", *inputs, *tensors) + attrs
    return out


def file_bytes(
    sections, *, version=1, header_reserved: bytes = b"", entry_reserved: int = 0, trailing: bytes = b""
) -> bytes:
    """1: header, table, payloads at the next multiples of 64. sections: [(type, flags, payload)]."""
    n = len(sections)
    at = -(-(64 + 32 * n) // 64) * 64
    table, body = b"", b""
    for typ, flags, payload in sections:
        body = pad(body, 64)
        table += struct.pack(
            "<IIQQII", typ, flags, at + len(body), len(payload), zlib.crc32(payload), entry_reserved
        )
        body += payload
    size = at + len(body) + len(trailing)
    head = (
        b"PYRT\r\n\x1a\n"
        + struct.pack("<IIQII", version, 0, size, n, zlib.crc32(table))
        + header_reserved.ljust(28, b"\0")
    )
    return head + struct.pack("<I", zlib.crc32(head)) + pad(table, 64) + body + trailing


LINEAR = [("linear", [0], [0, 1])]
RELU = graph_bytes([4], [("relu", [0], [])])


def linear_file(weight: bytes, cols: int = 4, rows: int = 3, **kw) -> bytes:
    return file_bytes(
        [(1, 1, graph_bytes([cols], LINEAR)), (2, 1, weight), (2, 1, dense_bytes([rows]))], **kw
    )


IDX = [0, 1, 2, 3, 0, 0, 0, 0, 1, 1, 2, 3]  # 12 indices of a [3, 4] codebook weight
EDGE_CASES = {  # id -> (file, accepted): both readers must agree with the verdict
    "reference": (linear_file(dense_bytes([3, 4])), True),
    "header-reserved-nonzero": (linear_file(dense_bytes([3, 4]), header_reserved=b"\1"), True),
    "entry-reserved-nonzero": (linear_file(dense_bytes([3, 4]), entry_reserved=7), True),
    "tensor-reserved-nonzero": (
        linear_file(tensor_head(0, [3, 4], reserved=1) + dense_bytes([3, 4])[40:]),
        True,
    ),
    "nonzero-alignment-padding": (linear_file(dense_bytes([3, 4], fill=9)), True),
    "bytes-after-last-payload": (linear_file(dense_bytes([3, 4]), trailing=bytes(8)), False),
    "bytes-after-tensor-body": (linear_file(dense_bytes([3, 4]) + bytes(4)), False),
    "name-not-utf8": (linear_file(dense_bytes([3, 4], name=b"\xff")), False),
    "graph-after-tensors": (
        file_bytes([(2, 1, dense_bytes([3, 4])), (2, 1, dense_bytes([3])), (1, 1, graph_bytes([4], LINEAR))]),
        True,
    ),
    "sections-not-flagged-required": (
        file_bytes([(1, 0, graph_bytes([4], LINEAR)), (2, 0, dense_bytes([3, 4])), (2, 6, dense_bytes([3]))]),
        True,
    ),
    "unknown-optional-section": (
        file_bytes(
            [
                (1, 1, graph_bytes([4], LINEAR)),
                (9, 0, b"x"),
                (2, 1, dense_bytes([3, 4])),
                (2, 1, dense_bytes([3])),
            ]
        ),
        True,
    ),
    "unknown-required-section": (
        file_bytes(
            [
                (1, 1, graph_bytes([4], LINEAR)),
                (2, 1, dense_bytes([3, 4])),
                (2, 1, dense_bytes([3])),
                (0, 1, b""),
            ]
        ),
        False,
    ),
    "stream-reserved-nonzero": (
        linear_file(codebook_bytes([3, 4], 4, stream_bytes(IDX, 2, res=(1, 1)))),
        True,
    ),
    "packed-nonzero-tail-bits": (
        linear_file(codebook_bytes([3, 4], 4, stream_bytes(IDX, 3, tail=0xF0), 3)),
        True,
    ),
    "huffman-nonzero-tail-bits": (
        linear_file(codebook_bytes([3, 4], 4, stream_bytes(IDX, 2, [1, 2, 3, 3], tail=0x80))),
        True,
    ),
    "huffman-whole-trailing-byte": (
        linear_file(codebook_bytes([3, 4], 4, stream_bytes(IDX, 2, [1, 2, 3, 3], extra=b"\0"))),
        False,
    ),
    "huffman-one-code-of-length-5": (
        linear_file(codebook_bytes([3, 4], 4, stream_bytes([2] * 12, 2, [0, 0, 5, 0]))),
        True,
    ),
    "huffman-incomplete-table": (
        linear_file(codebook_bytes([3, 4], 3, stream_bytes(IDX[:3] * 4, 2, [1, 2, 3, 0]))),
        True,
    ),
    "huffman-code-for-symbol-beyond-k": (
        linear_file(codebook_bytes([3, 4], 3, stream_bytes([0, 1, 2] * 4, 2, [1, 2, 3, 3]))),
        True,
    ),
    "index-bits-wider-than-needed": (linear_file(codebook_bytes([3, 4], 4, stream_bytes(IDX, 3), 3)), True),
    "filler-reaching-last-column": (linear_file(csr_bytes([3, 3], [1, 0, 0], [3, 0], 2), cols=3), False),
    "filler-before-last-column": (linear_file(csr_bytes([3, 4], [1, 0, 0], [3, 0], 2), cols=4), True),
    "trailing-filler": (linear_file(csr_bytes([3, 4], [1, 0, 0], [0, 3], 2), cols=4), False),
    "attrs-on-a-version-1-op": (
        file_bytes([(1, 1, graph_bytes([4], [("relu", [0], [], b"\0" * 4)]))]),
        False,
    ),
    "linear-on-unflattened-input": (
        file_bytes(
            [(1, 1, graph_bytes([2, 2], LINEAR)), (2, 1, dense_bytes([3, 4])), (2, 1, dense_bytes([3]))]
        ),
        False,
    ),
    "rank-3-weight": (
        file_bytes([(1, 1, graph_bytes([4], [("linear", [0], [0])])), (2, 1, dense_bytes([3, 2, 2]))]),
        False,
    ),
    "rank-2-bias": (
        file_bytes(
            [(1, 1, graph_bytes([4], LINEAR)), (2, 1, dense_bytes([3, 4])), (2, 1, dense_bytes([3, 1]))]
        ),
        False,
    ),
    "input-2^31-elements": (file_bytes([(1, 1, graph_bytes([1 << 16, 1 << 15], [("relu", [0], [])]))]), True),
    "input-over-2^31-elements": (
        file_bytes([(1, 1, graph_bytes([1 << 16, 1 << 16], [("relu", [0], [])]))]),
        False,
    ),
    "input-dim-0": (file_bytes([(1, 1, graph_bytes([0], [("relu", [0], [])]))]), False),
    "version-0": (file_bytes([(1, 1, RELU)], version=0), False),
    "version-3": (file_bytes([(1, 1, RELU)], version=3), True),
    "version-4": (file_bytes([(1, 1, RELU)], version=4), True),
    "version-5": (file_bytes([(1, 1, RELU)], version=5), False),
    "no-graph": (file_bytes([(2, 1, dense_bytes([3]))]), False),
    "two-graphs": (file_bytes([(1, 1, RELU), (1, 1, RELU)]), False),
    "rank-1-csr": (file_bytes([(1, 1, RELU), (2, 1, csr_bytes([5], [1, 0, 1, 0, 0], [0, 0], 1))]), True),
}


# ---- version 2: ops with attributes (2.1 - 2.4) ----------------------------------------------------------


def v2_file(input_shape, nodes, tensors=(), version: int = 2) -> bytes:
    """A graph section (nodes as graph_bytes takes them) and dense tensor payloads, in that order."""
    return file_bytes(
        [(1, 1, graph_bytes(list(input_shape), nodes))] + [(2, 1, t) for t in tensors], version=version
    )


CONV = {"stride": [1, 1], "padding": [0, 0, 0, 0], "dilation": [1, 1], "groups": 1}
POOL = {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0, 0, 0], "ceil_mode": 0}


def conv_file(x=(4, 6, 6), w=(6, 4, 3, 3), bias=None, version: int = 2, raw: bytes | None = None, **attrs):
    tensors = [dense_bytes(list(w))] + ([dense_bytes(list(bias))] if bias else [])
    a = raw if raw is not None else {**CONV, **attrs}
    return v2_file(x, [("conv2d", [0], list(range(len(tensors))), a)], tensors, version)


def pool_file(x=(2, 5, 5), op: str = "max_pool2d", **attrs):
    a = {**POOL, **({"count_include_pad": 0} if op == "avg_pool2d" else {}), **attrs}
    return v2_file(x, [(op, [0], [], a)])


def one_op(x, op: str, n_inputs: int = 1, attrs=b"", **kw) -> bytes:
    return v2_file(x, [(op, [0] * n_inputs, [], attrs)], **kw)


RESHAPE_TO_2x2 = ("reshape", [0], [], {"shape": [2, 2]})
EDGE_CASES_V2 = {
    # versions (1.1, 2.1)
    "v2-file-of-v1-ops": (file_bytes([(1, 1, RELU)], version=2), True),
    "v2-file-linear": (
        file_bytes(
            [(1, 1, graph_bytes([4], LINEAR)), (2, 1, dense_bytes([3, 4])), (2, 1, dense_bytes([3]))],
            version=2,
        ),
        True,
    ),
    "conv-in-v1-file": (conv_file(version=1), False),
    "clamp-in-v1-file": (one_op([4], "clamp", attrs={"min": 0.0, "max": 1.0}, version=1), False),
    "op-code-0": (one_op([4], 0), False),
    "op-code-13": (one_op([4], 13), False),
    "relu-attr-bytes-4-in-v2": (one_op([4], "relu", attrs=bytes(4)), False),
    # conv2d (2.2, 2.3)
    "conv": (conv_file(), True),
    "conv-bias": (conv_file(bias=[6]), True),
    "conv-attr-bytes-32": (conv_file(raw=attr_words("conv2d", CONV)[:32]), False),
    "conv-attr-bytes-40": (conv_file(raw=attr_words("conv2d", CONV) + bytes(4)), False),
    "conv-no-attrs": (conv_file(raw=b""), False),
    "conv-no-weight": (v2_file([4, 6, 6], [("conv2d", [0], [], CONV)]), False),
    "conv-3-tensors": (
        v2_file([4, 6, 6], [("conv2d", [0], [0, 1, 1], CONV)], [dense_bytes([6, 4, 3, 3]), dense_bytes([6])]),
        False,
    ),
    "conv-2-inputs": (
        v2_file([4, 6, 6], [("conv2d", [0, 0], [0], CONV)], [dense_bytes([6, 4, 3, 3])]),
        False,
    ),
    # 2.3: the weight and the padded input stay within 2^31 floats (32-bit offsets in the runtime)
    "conv-padded-input-over-2^31": (
        conv_file(x=(1, 1, 1), w=(1, 1, 1, 1), stride=[65536, 65536], padding=[65536, 65536, 65536, 65536]),
        False,
    ),
    "conv-padded-input-under-2^31": (
        conv_file(x=(1, 1, 1), w=(1, 1, 1, 1), stride=[65536, 32768], padding=[0, 0, 32767, 0]),
        True,
    ),
    "conv-weight-over-2^31": (
        v2_file([32768, 1, 1], [("conv2d", [0], [0], CONV)], [csr_bytes([65537, 32768, 1, 1], [0] * 65537, [], 1)]),
        False,
    ),
    "conv-groups-2": (conv_file(w=(6, 2, 3, 3), groups=2), True),
    "conv-depthwise": (conv_file(w=(8, 1, 3, 3), groups=4), True),
    "conv-groups-0": (conv_file(groups=0), False),
    "conv-groups-not-dividing-C": (conv_file(x=(6, 6, 6), w=(6, 1, 3, 3), groups=4), False),
    "conv-groups-not-dividing-O": (conv_file(w=(6, 1, 3, 3), groups=4), False),
    "conv-weight-dim1-not-C/groups": (conv_file(w=(6, 2, 3, 3)), False),
    "conv-weight-rank-3": (conv_file(w=(6, 4, 9)), False),
    "conv-on-rank-2-input": (conv_file(x=(4, 36)), False),
    "conv-on-rank-4-input": (conv_file(x=(1, 4, 6, 6)), False),
    "conv-bias-wrong-size": (conv_file(bias=[5]), False),
    "conv-bias-rank-2": (conv_file(bias=[6, 1]), False),
    "conv-bias-not-dense": (
        v2_file(
            [4, 6, 6],
            [("conv2d", [0], [0, 1], CONV)],
            [dense_bytes([6, 4, 3, 3]), csr_bytes([6], [1, 0, 0, 0, 0, 0], [0], 1)],
        ),
        False,
    ),
    "conv-stride-0": (conv_file(stride=[0, 1]), False),
    "conv-stride-65536": (conv_file(stride=[65536, 1]), True),
    "conv-stride-65537": (conv_file(stride=[1, 65537]), False),
    "conv-dilation-0": (conv_file(dilation=[1, 0]), False),
    "conv-dilation-65537": (conv_file(x=(4, 6, 70000), w=(6, 4, 1, 2), dilation=[1, 65537]), False),
    "conv-padding-65536": (conv_file(x=(1, 1, 1), w=(1, 1, 1, 1), padding=[65536, 0, 65536, 0]), True),
    "conv-padding-65537": (conv_file(x=(1, 1, 1), w=(1, 1, 1, 1), padding=[65537, 0, 0, 0]), False),
    "conv-kernel-equal-to-padded-input": (conv_file(x=(4, 4, 6), w=(6, 4, 6, 3), padding=[1, 0, 1, 0]), True),
    "conv-kernel-bigger-than-padded-input": (
        conv_file(x=(4, 4, 6), w=(6, 4, 7, 3), padding=[1, 0, 1, 0]),
        False,
    ),
    "conv-dilated-kernel-bigger-than-input": (conv_file(dilation=[3, 1]), False),
    "conv-dilated-kernel-fits-input": (conv_file(x=(4, 7, 6), dilation=[3, 1]), True),
    "conv-kernel-bigger-than-input-stride-2": (conv_file(w=(6, 4, 7, 3), stride=[2, 2]), False),
    "conv-kernel-65537": (conv_file(x=(1, 65537, 1), w=(1, 1, 65537, 1)), False),
    "conv-output-over-2^31-elements": (conv_file(x=(1, 1, 1), w=(1, 1, 1, 1), padding=[65536] * 4), False),
    "conv-asymmetric-padding": (conv_file(padding=[0, 2, 1, 0], stride=[2, 3], dilation=[1, 2]), True),
    # pools (2.2, 2.4)
    "max-pool": (pool_file(), True),
    "avg-pool": (pool_file(op="avg_pool2d", count_include_pad=1, padding=[1, 1, 1, 1]), True),
    "max-pool-attr-bytes-40": (
        v2_file([2, 5, 5], [("max_pool2d", [0], [], attr_words("max_pool2d", POOL) + bytes(4))]),
        False,
    ),
    "avg-pool-attr-bytes-36": (
        v2_file([2, 5, 5], [("avg_pool2d", [0], [], attr_words("max_pool2d", POOL))]),
        False,
    ),
    "pool-with-a-tensor": (v2_file([2, 5, 5], [("max_pool2d", [0], [0], POOL)], [dense_bytes([2])]), False),
    "pool-pad-kernel-minus-1": (pool_file(kernel=[3, 2], padding=[2, 1, 2, 1]), True),
    "pool-pad-equal-kernel-top": (pool_file(padding=[2, 0, 0, 0]), False),
    "pool-pad-equal-kernel-right": (pool_file(op="avg_pool2d", kernel=[3, 2], padding=[0, 0, 0, 2]), False),
    "pool-kernel-0": (pool_file(kernel=[0, 2]), False),
    "pool-kernel-65537": (pool_file(x=(1, 1, 70000), kernel=[1, 65537]), False),
    "pool-kernel-65536": (pool_file(x=(1, 1, 65536), kernel=[1, 65536]), True),
    "pool-stride-0": (pool_file(stride=[2, 0]), False),
    "pool-stride-65537": (pool_file(stride=[65537, 1]), False),
    "pool-ceil-mode-2": (pool_file(ceil_mode=2), False),
    "avg-pool-count-include-pad-2": (pool_file(op="avg_pool2d", count_include_pad=2), False),
    "pool-window-equal-to-input": (pool_file(kernel=[5, 5]), True),
    "pool-window-bigger-than-input": (pool_file(kernel=[6, 2]), False),
    "pool-window-bigger-than-padded-input": (
        pool_file(kernel=[4, 2], padding=[0, 0, 0, 0], x=(1, 3, 4)),
        False,
    ),
    "pool-ceil-window-bigger-by-1-stride-1": (
        pool_file(x=(1, 3, 4), kernel=[4, 2], stride=[1, 1], ceil_mode=1),
        False,
    ),
    # 2.4's formula gives ceil((3 - 4) / 2) + 1 = 1 output row here, but the window does not fit (6.4)
    "pool-ceil-window-bigger-by-1-stride-2": (pool_file(x=(1, 3, 4), kernel=[4, 2], ceil_mode=1), False),
    "pool-ceil-last-window-in-bottom-padding": (
        pool_file(x=(1, 4, 4), kernel=[2, 2], stride=[3, 2], padding=[1, 0, 1, 0], ceil_mode=1),
        True,
    ),
    "pool-on-rank-1-input": (pool_file(x=(25,)), False),
    "global-avg-pool": (one_op([3, 4, 5], "global_avg_pool"), True),
    "global-avg-pool-rank-2": (one_op([3, 20], "global_avg_pool"), False),
    "global-avg-pool-attr": (one_op([3, 4, 5], "global_avg_pool", attrs=bytes(4)), False),
    # add, concat (2.1)
    "add-same-value-twice": (one_op([2, 3], "add", 2), True),
    "add-one-input": (one_op([2, 3], "add", 1), False),
    "add-three-inputs": (one_op([2, 3], "add", 3), False),
    "add-shape-mismatch": (v2_file([4], [("relu", [0], []), RESHAPE_TO_2x2, ("add", [1, 2], [])]), False),
    "add-reads-forward-value": (v2_file([4], [("add", [0, 1], [])]), False),
    "concat-axis-0": (one_op([2, 3, 4], "concat", 2, {"axis": 0}), True),
    "concat-axis-last": (one_op([2, 3, 4], "concat", 3, {"axis": 2}), True),
    "concat-axis-equal-rank": (one_op([2, 3, 4], "concat", 2, {"axis": 3}), False),
    "concat-1-input": (one_op([2, 3], "concat", 1, {"axis": 0}), False),
    "concat-16-inputs": (one_op([2, 3], "concat", 16, {"axis": 1}), True),
    "concat-17-inputs": (one_op([2, 3], "concat", 17, {"axis": 1}), False),
    "relu-17-inputs": (one_op([4], "relu", 17), False),
    "concat-mismatched-dims": (
        v2_file(
            [2, 3, 4],
            [
                ("max_pool2d", [0], [], {**POOL, "kernel": [1, 2], "stride": [1, 2]}),
                ("concat", [0, 1], [], {"axis": 0}),
            ],
        ),
        False,
    ),
    "concat-mismatched-dims-along-axis": (
        v2_file(
            [2, 3, 4],
            [
                ("max_pool2d", [0], [], {**POOL, "kernel": [1, 2], "stride": [1, 2]}),
                ("concat", [0, 1], [], {"axis": 2}),
            ],
        ),
        True,
    ),
    "concat-rank-mismatch": (v2_file([4], [RESHAPE_TO_2x2, ("concat", [0, 1], [], {"axis": 0})]), False),
    "concat-2^31-elements": (one_op([1 << 30], "concat", 2, {"axis": 0}), True),
    "concat-over-2^31-elements": (one_op([1 << 30], "concat", 3, {"axis": 0}), False),
    # reshape
    "reshape-4-dims": (one_op([24], "reshape", attrs={"shape": [1, 2, 3, 4]}), True),
    "reshape-numel-mismatch": (one_op([24], "reshape", attrs={"shape": [5, 5]}), False),
    "reshape-zero-then-nonzero": (one_op([24], "reshape", attrs={"shape": [4, 0, 6, 0]}), False),
    "reshape-leading-zero": (one_op([24], "reshape", attrs={"shape": [0, 24]}), False),
    "reshape-all-zero": (one_op([24], "reshape", attrs={"shape": []}), False),
    "reshape-attr-bytes-8": (one_op([24], "reshape", attrs=struct.pack("<2I", 4, 6)), False),
    # clamp
    "clamp-relu6": (one_op([4], "clamp", attrs={"min": 0.0, "max": 6.0}), True),
    "clamp-min-equals-max": (one_op([4], "clamp", attrs={"min": -0.5, "max": -0.5}), True),
    "clamp-infinities": (one_op([4], "clamp", attrs={"min": -math.inf, "max": math.inf}), True),
    "clamp-minus-zero-zero": (one_op([4], "clamp", attrs={"min": -0.0, "max": 0.0}), True),
    "clamp-min-above-max": (one_op([4], "clamp", attrs={"min": 1.0, "max": 0.5}), False),
    "clamp-nan-min": (one_op([4], "clamp", attrs={"min": math.nan, "max": 1.0}), False),
    "clamp-nan-max": (one_op([4], "clamp", attrs={"min": 0.0, "max": math.nan}), False),
    "clamp-inf-above-inf": (one_op([4], "clamp", attrs={"min": math.inf, "max": -math.inf}), False),
}
EDGE_CASES.update(EDGE_CASES_V2)


def int8_bytes(shape, q, scales=None, encoding: int = 4) -> bytes:
    """3.6 int8 (or 3.7 csr+int8 of a full mask when encoding = 5) with packed value streams."""
    rows, cols = shape[0], math.prod(shape[1:])
    sc = np.asarray(scales if scales is not None else [0.5] * rows, "<f4").tobytes()
    syms = [int(v) & 0xFF for v in q]
    if encoding == 4:
        return tensor_head(4, shape) + sc + stream_bytes(syms, 8)
    head = tensor_head(5, shape) + struct.pack("<4I", rows * cols, 1, 1, 0) + sc + pad(bytes([cols] * rows), 4)
    return head + stream_bytes([0] * (rows * cols), 1) + stream_bytes(syms, 8)


QATTRS = {"input_scale": 0.5, "output_scale": 0.25, "min": 0.0, "max": math.inf}


def int8_file(q=range(-6, 6), scales=None, *, op="linear", attrs=None, encoding=4, version=3, shape=(3, 4)):
    node = (op, [0], [0], attrs if attrs is not None else (QATTRS if op == "qlinear" else b""))
    return file_bytes([(1, 1, graph_bytes([shape[1]], [node])), (2, 1, int8_bytes(shape, q, scales, encoding))],
                      version=version)


EDGE_CASES_V3 = {
    # 3.6, 3.7, 2.1, 2.2, 2.5
    "int8-linear": (int8_file(), True),
    "int8-qlinear": (int8_file(op="qlinear"), True),
    "csr-int8-qlinear": (int8_file(op="qlinear", encoding=5), True),
    "int8-in-a-v2-file": (int8_file(version=2), False),
    "qlinear-in-a-v2-file": (int8_file(op="qlinear", version=2), False),
    "int8-value-minus-128": (int8_file(q=[-128] + list(range(11))), False),
    "csr-int8-value-minus-128": (int8_file(q=[-128] + list(range(11)), encoding=5), False),
    "int8-values-plus-minus-127": (int8_file(q=[127, -127] * 6), True),
    "int8-scale-zero": (int8_file(scales=[0.0, 1.0, 2.0]), True),
    "int8-scale-negative": (int8_file(scales=[1.0, -1.0, 2.0]), False),
    "int8-scale-nan": (int8_file(scales=[1.0, math.nan, 2.0]), False),
    "int8-scale-inf": (int8_file(scales=[math.inf, 1.0, 2.0]), False),
    "int8-too-few-values": (int8_file(q=range(11)), False),
    "qlinear-f32-weight": (
        file_bytes([(1, 1, graph_bytes([4], [("qlinear", [0], [0], QATTRS)])), (2, 1, dense_bytes([3, 4]))],
                   version=3), False),
    "qlinear-input-scale-zero": (int8_file(op="qlinear", attrs={**QATTRS, "input_scale": 0.0}), False),
    "qlinear-input-scale-inf": (int8_file(op="qlinear", attrs={**QATTRS, "input_scale": math.inf}), False),
    "qlinear-output-scale-zero": (int8_file(op="qlinear", attrs={**QATTRS, "output_scale": 0.0}), True),
    "qlinear-output-scale-negative": (int8_file(op="qlinear", attrs={**QATTRS, "output_scale": -1.0}), False),
    "qlinear-min-above-max": (int8_file(op="qlinear", attrs={**QATTRS, "min": 2.0, "max": 1.0}), False),
    "qlinear-nan-max": (int8_file(op="qlinear", attrs={**QATTRS, "max": math.nan}), False),
    "int8-widest-layer": (int8_file(q=[1] * 133_144, shape=(1, 133_144)), True),
    "int8-too-wide-layer": (int8_file(q=[1] * 133_145, shape=(1, 133_145)), False),
    "conv2d-int8-weight": (
        file_bytes([(1, 1, graph_bytes([1, 3, 3], [("conv2d", [0], [0], {"stride": [1, 1], "padding": [0] * 4,
                                                                       "dilation": [1, 1], "groups": 1})])),
                    (2, 1, int8_bytes([2, 1, 2, 2], range(8)))], version=3), True),
    "conv2d-int8-weight-in-a-v2-file": (
        file_bytes([(1, 1, graph_bytes([1, 3, 3], [("conv2d", [0], [0], {"stride": [1, 1], "padding": [0] * 4,
                                                                       "dilation": [1, 1], "groups": 1})])),
                    (2, 1, int8_bytes([2, 1, 2, 2], range(8)))], version=2), False),
}
EDGE_CASES.update(EDGE_CASES_V3)


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_edge_cases_agree(case):
    data, accepted = EDGE_CASES[case]
    cpp_ok, cpp = verdict(_core.read_model, data, pyruntime.FormatError)
    spec_ok, spec = verdict(sr.read_file, data, sr.SpecError)
    assert (cpp_ok, spec_ok) == (accepted, accepted), (cpp, spec)
    if accepted:
        assert_same_model(spec, cpp)


def test_metadata_sections():
    body = [(1, 1, graph_bytes([4], [("relu", [0], [])]))]
    for metas, text in [([b"a", b"b"], "b"), ([b"x\xff\xfey"], "x\ufffd\ufffdy"), ([b""], "")]:
        data = file_bytes(body + [(3, 0, m) for m in metas])
        assert sr.read_file(data).metadata == _core.read_model(data)["metadata"] == text


def test_hand_built_file_equals_writer():
    """The spec is enough to write a file, too: byte for byte what the C++ writer writes."""
    w = {"name": "w", "encoding": "dense", "shape": [3, 4], "values": np.arange(12, dtype=np.float32)}
    b = {"name": "b", "encoding": "dense", "shape": [3], "values": np.arange(3, dtype=np.float32)}
    model = {
        "input_shape": [4],
        "nodes": [{"op": "linear", "inputs": [0], "tensors": [0, 1]}],
        "tensors": [w, b],
    }
    sections = [
        (1, 1, graph_bytes([4], LINEAR)),
        (2, 1, dense_bytes([3, 4], b"w")),
        (2, 1, dense_bytes([3], b"b")),
    ]
    assert _core.write_model(model) == file_bytes(sections)
    assert _core.write_model({**model, "metadata": "{}"}) == file_bytes(sections + [(3, 0, b"{}")])


# ---- corrupted files: both readers accept and refuse the same ------------------------------------------


def refresh_crcs(buf: bytes) -> bytes:
    """Recompute every CRC (payloads, table, header) that the corrupted bytes still let one locate."""
    b = bytearray(buf)
    if len(b) < 64:
        return bytes(b)
    n = struct.unpack_from("<I", b, 24)[0]
    if 64 + 32 * n <= len(b):
        for i in range(n):
            offset, size = struct.unpack_from("<QQ", b, 64 + 32 * i + 8)
            if offset + size <= len(b):
                struct.pack_into("<I", b, 64 + 32 * i + 24, zlib.crc32(b[offset : offset + size]))
        struct.pack_into("<I", b, 28, zlib.crc32(b[64 : 64 + 32 * n]))
    struct.pack_into("<I", b, 60, zlib.crc32(b[:60]))
    return bytes(b)


@pytest.fixture(scope="module")
def small_file(helpers) -> bytes:
    """Every encoding, Huffman gaps and indices, packed gaps, metadata: ~3 KB, mostly structure."""
    rng = np.random.default_rng(2024)
    model = helpers.mlp(rng, [12, 10, 40, 6, 24], list(ENCODINGS), input_shape=[3, 4], metadata='{"k": 1}')
    model["tensors"][2] = helpers.csr(rng, (40, 10), 0.3, name="fc1.weight", gap_bits=4)
    model["tensors"][4]["indices"] = skewed(rng, 240, 16)
    fc3 = model["tensors"][6] = helpers.csr_codebook(rng, (24, 6), 0.5, k=4, name="fc3.weight", gap_bits=1)
    fc3["indices"] = skewed(rng, fc3["colidx"].size, 4, 0.7)
    data = _core.write_model(model)
    codings = {t.name: t.coding for t in sr.read_file(data).tensors}
    assert codings["fc1.weight"] == {"gaps": "huffman"}
    assert codings["fc3.weight"] == {"gaps": "packed", "indices": "huffman"}
    return data


def variants(data: bytes, kind: str, n: int, seed: int) -> list[bytes]:
    """n corrupted copies: truncations, or 1-2 changed bytes with the CRCs stale ("flip") or recomputed."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        if kind == "truncate":
            out.append(data[: int(rng.integers(0, len(data)))])
            continue
        b = bytearray(data)
        for pos in rng.integers(0, len(b), int(rng.integers(1, 3))):
            if kind == "nudge-recrc":  # +-1 or 2: a count, size or index just off, so deep checks fire
                b[pos] = (b[pos] + int(rng.choice([-2, -1, 1, 2]))) % 256
            else:
                b[pos] ^= int(rng.integers(1, 256))
        out.append(bytes(b) if kind == "flip" else refresh_crcs(bytes(b)))
    return out


@pytest.mark.parametrize("base", ["small_file", "every_encoding_bytes"])
@pytest.mark.parametrize(
    "kind,n", [("flip", 100), ("truncate", 50), ("flip-recrc", 400), ("nudge-recrc", 300)]
)
def test_corrupted_files_agree(request, base, kind, n):
    """Whenever the C++ reader raises FormatError the spec reader raises SpecError, and vice versa; where
    both accept a corrupted file (a flipped float, padding) they read the same model."""
    disagree, refused = [], 0
    for i, data in enumerate(variants(request.getfixturevalue(base), kind, n, seed=len(kind) + len(base))):
        cpp_ok, cpp = verdict(_core.read_model, data, pyruntime.FormatError)
        spec_ok, spec = verdict(sr.read_file, data, sr.SpecError)
        if cpp_ok != spec_ok:
            disagree.append(
                f"variant {i}: C++ {'accepts' if cpp_ok else cpp!r}, spec {'accepts' if spec_ok else spec!r}"
            )
        elif cpp_ok:
            assert_same_model(spec, cpp)
        refused += not cpp_ok
    assert not disagree, "\n".join(disagree)
    assert refused >= (n // 5 if kind.endswith("recrc") else n * 0.9)  # the checks were reached


# ---- version 3: int8 layers, run by both -----------------------------------------------------------------


def int8_mlp(rng, sizes, encodings, static) -> dict:
    """linear (int8 weights, dynamic) first, then relu + qlinear layers (static) or more dynamic ones."""
    tensors, nodes, value, in_scale = [], [], 0, 0.05  # the static layers take values of scale 0.05
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        q = rng.integers(-127, 128, size=(b, a))
        if encodings[i] == "csr+int8":
            q = np.where(rng.random((b, a)) < 0.4, q, 0)
        t = {"name": f"fc{i}.weight", "encoding": encodings[i], "shape": [b, a],
             "scales": (rng.random(b) * 0.02 + 1e-3).astype(np.float32)}
        if encodings[i] == "int8":
            t["qvalues"] = q.ravel()
        else:
            rr, cc = np.nonzero(q)
            t |= {"rowptr": np.r_[0, np.cumsum((q != 0).sum(1))], "colidx": cc, "qvalues": q[rr, cc]}
        tensors += [t, {"name": f"fc{i}.bias", "encoding": "dense", "shape": [b],
                        "values": rng.standard_normal(b).astype(np.float32)}]
        last = i == len(sizes) - 2
        if i == 0 or not static:
            nodes.append({"op": "linear", "inputs": [value], "tensors": [2 * i, 2 * i + 1]})
        else:
            attrs = {"input_scale": float(in_scale), "output_scale": 0.0 if last else 0.05,
                     "min": -math.inf if last else 0.0, "max": math.inf}
            nodes.append({"op": "qlinear", "inputs": [value], "tensors": [2 * i, 2 * i + 1], "attrs": attrs})
        value += 1
        if not last:
            nodes.append({"op": "relu", "inputs": [value]})
            value += 1
    return {"input_shape": [sizes[0]], "nodes": nodes, "tensors": tensors}


@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("encodings", [("int8", "int8", "int8"), ("csr+int8", "int8", "csr+int8")])
def test_int8_layers_agree_bit_for_bit(helpers, static, encodings):
    """Both readers read the same int8 model, and the runtime's outputs equal the spec reader's float32
    emulation of 2.5 exactly, on every ISA: dynamic and static layers, an int8 chain kept in int8."""
    rng = np.random.default_rng(31 + static)
    model = int8_mlp(rng, [40, 33, 20, 7], encodings, static)
    data = _core.write_model(model)
    assert data[8] == 3
    spec = sr.read_file(data)
    assert_same_model(spec, _core.read_model(data))
    x = (rng.standard_normal((9, 40)) * 3).astype(np.float32)
    x[4] = 0.0
    want = sr.run(spec, x)
    m = pyruntime.load(data)
    if static:
        assert [layer["output_type"] for layer in m.layers()] == ["f32", "f32", "i8", "i8", "f32"]
    for isa in _core.supported_isas():
        previous = _core.active_isa()
        try:
            _core.set_isa(isa)
            np.testing.assert_array_equal(m.run(x), want, err_msg=isa)
            np.testing.assert_array_equal(pyruntime.load(data, threads=2).run(x), want, err_msg=isa)
        finally:
            _core.set_isa(previous)


def test_fma32_is_one_rounding():
    """The spec reader's fma: correctly rounded where float64 a * b + c then float32 rounds twice."""
    a = np.float32(1 + 2**-23)
    b = np.float32(1 + 2**-23)
    c = np.float32(-(1 + 2**-22))
    assert sr.fma32(a, b, c) == np.float32(2**-46)  # exact: (1 + 2^-23)^2 - (1 + 2^-22) = 2^-46
    rng = np.random.default_rng(0)
    x, y, z = (rng.standard_normal(10_000).astype(np.float32) for _ in range(3))
    exact = [float(np.float32(float(_fraction_fma(p, q, r)))) for p, q, r in zip(x[:300], y[:300], z[:300])]
    np.testing.assert_array_equal(sr.fma32(x[:300], y[:300], z[:300]), np.array(exact, np.float32))


def _fraction_fma(a, b, c):
    from fractions import Fraction

    v = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    return _round_to_f32(v)


def _round_to_f32(v) -> float:
    """The float32 nearest to the rational v (ties to even), by bisection over the float32 grid."""
    from fractions import Fraction

    f = np.float32(float(v))  # within one float32 ulp of the answer
    cands = [np.nextafter(f, np.float32(-np.inf)), f, np.nextafter(f, np.float32(np.inf))]
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - v), int(np.float32(c).view(np.int32)) & 1))
    return float(best)


def int8_conv_tensor(rng, shape, name, density=None) -> dict:
    q = rng.integers(-127, 128, size=shape)
    rows, cols = shape[0], math.prod(shape[1:])
    sc = (rng.random(rows) * 0.02 + 1e-3).astype(np.float32)
    if density is None:
        return {"name": name, "encoding": "int8", "shape": list(shape), "qvalues": q.ravel(), "scales": sc}
    q2 = np.where(rng.random((rows, cols)) < density, q.reshape(rows, cols), 0)
    rr, cc = np.nonzero(q2)
    return {"name": name, "encoding": "csr+int8", "shape": list(shape),
            "rowptr": np.r_[0, np.cumsum((q2 != 0).sum(1))], "colidx": cc, "qvalues": q2[rr, cc], "scales": sc}


@pytest.mark.parametrize("density", [None, 0.4])
@pytest.mark.parametrize("attrs,c,o,k", [
    ({"stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1}, 3, 8, 3),
    ({"stride": [2, 1], "padding": [0, 2, 1, 0], "dilation": [1, 2], "groups": 2}, 4, 6, 3),
    ({"stride": [1, 1], "padding": [2, 2, 2, 2], "dilation": [2, 2], "groups": 6}, 6, 6, 3),  # depthwise
    ({"stride": [1, 1], "padding": [0, 0, 0, 0], "dilation": [1, 1], "groups": 1}, 5, 23, 1),  # 1x1, rows 6+6+6+4+1
])
def test_int8_convolutions_agree_bit_for_bit(density, attrs, c, o, k):
    """conv2d with an int8 weight (2.5): the spec reader's emulation equals the runtime on every ISA, 1 and 2
    threads, batch 1 and 3, a sample of zeros (its bias) included."""
    rng = np.random.default_rng(c * 10 + o + k)
    w = int8_conv_tensor(rng, (o, c // attrs["groups"], k, k), "conv.weight", density)
    b = {"name": "conv.bias", "encoding": "dense", "shape": [o], "values": rng.standard_normal(o).astype(np.float32)}
    model = {"input_shape": [c, 9, 11], "nodes": [{"op": "conv2d", "inputs": [0], "tensors": [0, 1], "attrs": attrs},
                                                  {"op": "relu", "inputs": [1]}],
             "tensors": [w, b]}
    data = _core.write_model(model)
    spec = sr.read_file(data)
    assert_same_model(spec, _core.read_model(data))
    x = (rng.standard_normal((3, c, 9, 11)) * 2).astype(np.float32)
    x[1] = 0.0
    want = sr.run(spec, x)
    m = pyruntime.load(data)
    assert m.layers()[0]["method"] == ("direct-dynamic" if attrs["groups"] == c else "im2col-dynamic")
    for isa in _core.supported_isas():
        previous = _core.active_isa()
        try:
            _core.set_isa(isa)
            np.testing.assert_array_equal(m.run(x), want, err_msg=isa)
            np.testing.assert_array_equal(m.run(x[2:]), want[2:], err_msg=isa)
            np.testing.assert_array_equal(pyruntime.load(data, threads=2).run(x), want, err_msg=isa)
        finally:
            _core.set_isa(previous)


def each_isa():
    """Every supported ISA level in turn, made active (the previous one restored afterwards)."""
    previous = _core.active_isa()
    try:
        for isa in _core.supported_isas():
            _core.set_isa(isa)
            yield isa
    finally:
        _core.set_isa(previous)


def int8_static_cnn(rng, density, pool: str) -> dict:
    """qconv2d -> relu -> pool -> qconv2d (depthwise, strided) -> relu -> flatten -> qlinear: a static int8
    chain, each layer's output at the next one's input scale (2.5)."""
    conv = {"stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1}
    dw = {"stride": [2, 2], "padding": [1, 0, 1, 1], "dilation": [1, 1], "groups": 6}
    pool_attrs = {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0, 0, 0], "ceil_mode": 1}
    if pool == "avg_pool2d":
        pool_attrs["count_include_pad"] = 0
    s1, s2, s3 = 0.03, 0.05, 0.04
    q = {"min": 0.0, "max": math.inf}
    tensors = [int8_conv_tensor(rng, (6, 3, 3, 3), "c1.weight", density),
               {"name": "c1.bias", "encoding": "dense", "shape": [6], "values": rng.standard_normal(6).astype("f4")},
               int8_conv_tensor(rng, (6, 1, 3, 3), "c2.weight", density),
               int8_conv_tensor(rng, (5, 6 * 3 * 3), "fc.weight", density)]
    nodes = [
        {"op": "qconv2d", "inputs": [0], "tensors": [0, 1], "attrs": conv | q | {"input_scale": s1, "output_scale": s2}},
        {"op": "relu", "inputs": [1]},
        {"op": pool, "inputs": [2], "attrs": pool_attrs},
        {"op": "qconv2d", "inputs": [3], "tensors": [2], "attrs": dw | q | {"input_scale": s2, "output_scale": s3}},
        {"op": "relu", "inputs": [4]},
        {"op": "flatten", "inputs": [5]},
        {"op": "qlinear", "inputs": [6], "tensors": [3],
         "attrs": {"input_scale": s3, "output_scale": 0.0, "min": -math.inf, "max": math.inf}},
    ]
    return {"input_shape": [3, 11, 11], "nodes": nodes, "tensors": tensors}


@pytest.mark.parametrize("density", [None, 0.5])
@pytest.mark.parametrize("pool", ["max_pool2d", "avg_pool2d"])
def test_static_int8_convolutions_agree_bit_for_bit(density, pool):
    """qconv2d (2.5): the spec reader's emulation equals the runtime on every ISA, 1 and 2 threads; the chain
    stays int8 through relu, max_pool2d and flatten. An avg_pool2d takes float32 (the plan converts), and its
    float32 mean is not the reader's float64 one, so a tie in the next quantization may round the other way:
    there the runtime equals itself on every ISA and the reader within one quantization step."""
    rng = np.random.default_rng(7 + (density is None))
    model = int8_static_cnn(rng, density, pool)
    data = _core.write_model(model)
    spec = sr.read_file(data)
    assert spec.version == 3
    assert_same_model(spec, _core.read_model(data))
    x = (rng.standard_normal((4, 3, 11, 11)) * 2).astype(np.float32)
    x[1] = 0.0
    x[2, 0, 0, :3] = [1e6, -1e6, np.nan]  # saturates at +-127, NaN quantizes to 0 (2.5)
    want = sr.run(spec, x)
    assert np.isfinite(want).all()
    m = pyruntime.load(data)
    types = [layer["output_type"] for layer in m.layers()]
    pooled = "i8" if pool == "max_pool2d" else "f32"
    assert types == ["i8", "i8", pooled, "i8", "i8", "i8", "f32"]
    assert m.layers()[0]["method"] == "im2col-static"
    if pool == "avg_pool2d":
        got = m.run(x)
        assert np.abs(got - want).max() <= 0.1 * np.abs(want).max()
        assert np.mean(got == want) > 0.5
        want = got
    for isa in each_isa():
        np.testing.assert_array_equal(m.run(x), want, err_msg=isa)
        np.testing.assert_array_equal(m.run(x[3:]), want[3:], err_msg=isa)
        np.testing.assert_array_equal(pyruntime.load(data, threads=2).run(x), want, err_msg=isa)


QCONV = {"stride": [1, 1], "padding": [0] * 4, "dilation": [1, 1], "groups": 1} | QATTRS


def qconv_file(weight: bytes, attrs=None, version: int = 3) -> bytes:
    node = ("qconv2d", [0], [0], attrs if attrs is not None else QCONV)
    return file_bytes([(1, 1, graph_bytes([1, 3, 3], [node])), (2, 1, weight)], version=version)


EDGE_CASES_QCONV = {
    "qconv2d": (qconv_file(int8_bytes([2, 1, 2, 2], range(8))), True),
    "qconv2d-csr-int8": (qconv_file(int8_bytes([2, 1, 2, 2], range(1, 9), encoding=5)), True),
    "qconv2d-in-a-v2-file": (qconv_file(int8_bytes([2, 1, 2, 2], range(8)), version=2), False),
    "qconv2d-f32-weight": (qconv_file(dense_bytes([2, 1, 2, 2])), False),
    "qconv2d-input-scale-zero": (qconv_file(int8_bytes([2, 1, 2, 2], range(8)), QCONV | {"input_scale": 0.0}),
                                 False),
    "qconv2d-output-scale-nan": (qconv_file(int8_bytes([2, 1, 2, 2], range(8)), QCONV | {"output_scale": math.nan}),
                                 False),
    "qconv2d-min-above-max": (qconv_file(int8_bytes([2, 1, 2, 2], range(8)), QCONV | {"min": 1.0, "max": 0.0}),
                              False),
    "qconv2d-groups-not-dividing": (qconv_file(int8_bytes([2, 1, 2, 2], range(8)), QCONV | {"groups": 2}), False),
    "qconv2d-window-too-large": (qconv_file(int8_bytes([2, 1, 4, 4], [1] * 32)), False),
}


@pytest.mark.parametrize("case", list(EDGE_CASES_QCONV))
def test_qconv2d_edge_cases_agree(case):
    data, accepted = EDGE_CASES_QCONV[case]
    cpp_ok, cpp = verdict(_core.read_model, data, pyruntime.FormatError)
    spec_ok, spec = verdict(sr.read_file, data, sr.SpecError)
    assert (cpp_ok, spec_ok) == (accepted, accepted), (cpp, spec)
    if accepted:
        assert_same_model(spec, cpp)


@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("attrs,c,o,k", [
    ({"stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 3}, 3, 3, 3),
    ({"stride": [2, 2], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 3}, 3, 3, 3),   # odd left pad
    ({"stride": [2, 2], "padding": [0, 2, 1, 0], "dilation": [1, 1], "groups": 3}, 3, 6, 5),   # even, x2 outputs
    ({"stride": [3, 2], "padding": [2, 3, 0, 1], "dilation": [2, 3], "groups": 2}, 2, 2, 3),
    ({"stride": [1, 3], "padding": [0, 0, 0, 0], "dilation": [1, 1], "groups": 1}, 1, 4, 2),   # one channel
])
def test_int8_depthwise_convolutions_agree_bit_for_bit(static, attrs, c, o, k):
    """The direct depthwise kernel (one input channel per group: the phase layout, the AVX2 deinterleave of
    32 and 16 bytes and its tail, blocks of output rows) equals the spec reader on every ISA and 1-2 threads,
    on planes wide and tall enough for every vector path, dynamic and static, sparse taps included."""
    rng = np.random.default_rng(c * 100 + o * 10 + k + static)
    w = int8_conv_tensor(rng, (o, 1, k, k), "dw.weight", 0.6 if o > c else None)
    b = {"name": "dw.bias", "encoding": "dense", "shape": [o], "values": rng.standard_normal(o).astype(np.float32)}
    q = {"input_scale": 0.02, "output_scale": 0.05 if static else 0.0, "min": -3.0, "max": 4.0}
    node = {"op": "qconv2d" if static else "conv2d", "inputs": [0], "tensors": [0, 1], "attrs": attrs | (q if static else {})}
    model = {"input_shape": [c, 41, 77], "nodes": [node], "tensors": [w, b]}
    data = _core.write_model(model)
    spec = sr.read_file(data)
    x = (rng.standard_normal((2, c, 41, 77)) * 2).astype(np.float32)
    want = sr.run(spec, x)
    m = pyruntime.load(data)
    assert m.layers()[0]["method"] == ("direct-static" if static else "direct-dynamic")
    for isa in each_isa():
        np.testing.assert_array_equal(m.run(x), want, err_msg=isa)
        np.testing.assert_array_equal(pyruntime.load(data, threads=2).run(x), want, err_msg=isa)


@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("stride,width", [(1, 4500), (2, 4500), (1, 2047), (1, 2049), (3, 9000)])
def test_int8_depthwise_rows_wider_than_a_block_bit_for_bit(static, stride, width):
    """An output row wider than the kernel's block of 2048 accumulators is summed in column chunks (a fuzzed
    file with such a row once wrote past the block): still the spec reader's bits on every ISA."""
    rng = np.random.default_rng(width + stride + static)
    w = int8_conv_tensor(rng, (2, 1, 3, 3), "dw.weight")
    attrs = {"stride": [1, stride], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 2}
    q = {"input_scale": 0.02, "output_scale": 0.05, "min": -3.0, "max": 4.0} if static else {}
    node = {"op": "qconv2d" if static else "conv2d", "inputs": [0], "tensors": [0], "attrs": attrs | q}
    data = _core.write_model({"input_shape": [2, 3, width], "nodes": [node], "tensors": [w]})
    x = (rng.standard_normal((1, 2, 3, width)) * 2).astype(np.float32)
    want = sr.run(sr.read_file(data), x)
    m = pyruntime.load(data)
    assert m.layers()[0]["method"].startswith("direct")
    for isa in each_isa():
        np.testing.assert_array_equal(m.run(x), want, err_msg=isa)


@pytest.mark.parametrize("c,groups", [(48, 1), (48, 48), (21, 1), (34, 2)])
def test_int8_convolutions_split_across_threads_bit_for_bit(c, groups):
    """Layers big enough to split at batch 1 (by tiles of positions, or by channels when depthwise) and by
    samples above: 2 threads give one thread's bits and the spec reader's. Channel counts with and without a
    remainder of 16 (the channels-last copy's 16 x 16 blocks)."""
    rng = np.random.default_rng(groups + c)
    o = c
    w = int8_conv_tensor(rng, (o, c // groups, 3, 3), "conv.weight")
    attrs = {"stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": groups}
    model = {"input_shape": [c, 40, 40], "nodes": [{"op": "conv2d", "inputs": [0], "tensors": [0], "attrs": attrs}],
             "tensors": [w]}
    data = _core.write_model(model)
    x = rng.standard_normal((3, c, 40, 40)).astype(np.float32)
    want = sr.run(sr.read_file(data), x)
    m2 = pyruntime.load(data, threads=2)
    assert m2.layers()[0]["row_tasks"] == 2
    for isa in each_isa():
        np.testing.assert_array_equal(m2.run(x[:1]), want[:1], err_msg=isa)
        np.testing.assert_array_equal(m2.run(x), want, err_msg=isa)
