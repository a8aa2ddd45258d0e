"""The version-5 tensor ops end to end (model dicts -> ``_core.write_model`` -> ``pyruntime.load`` -> run):
matmul of two values (numpy broadcasting of the leading dims; against numpy within a summation-order
tolerance), transpose and slice of f32 and of i32 ids (bit exact), embedding over every table encoding
(bit exact against the decoded table, out-of-range ids refused by name), upsample_nearest and
adaptive_avg_pool2d against torch. Every model runs at 1 and 2 threads, bit-identical.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import pyruntime

BATCH = 3


# ---- building and running models --------------------------------------------------------------------


def node(op: str, inputs, tensors=(), **attrs) -> dict:
    return {"op": op, "inputs": list(inputs), "tensors": list(tensors), "attrs": attrs}


def model(inputs, nodes, tensors=(), outputs=None) -> bytes:
    """inputs: (shape, type) pairs; values are numbered inputs first, then one per node."""
    d = {"inputs": [{"shape": list(s), "type": t} for s, t in inputs], "nodes": nodes, "tensors": list(tensors)}
    if outputs is not None:
        d["outputs"] = list(outputs)
    return pyruntime._core.write_model(d)


def run(data: bytes, *xs: np.ndarray) -> np.ndarray:
    """The model's output on xs (one array per graph input), the same bits at 1 and 2 threads."""
    outs = [pyruntime.load(data, threads=t)._core.run(*xs) for t in (1, 2)]
    np.testing.assert_array_equal(outs[0], outs[1])
    return outs[0]


def bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, np.float32).view(np.uint32)


def assert_bit_equal(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(bits(got), bits(want))


def floats(rng, *shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


# ---- matmul ---------------------------------------------------------------------------------------------

MATMUL_SHAPES = [
    ([4, 8], [8, 5]),
    ([1, 1], [1, 1]),
    ([3, 6, 7], [3, 7, 6]),           # attention scores: [H, T, d] @ [H, d, T]
    ([6, 7], [3, 7, 5]),              # a broadcast over b's heads
    ([3, 6, 7], [7, 5]),              # b shared by a's heads (one stacked product)
    ([2, 3, 6, 7], [7, 5]),
    ([2, 1, 6, 7], [1, 3, 7, 5]),     # both broadcast
    ([1, 5, 4], [3, 4, 2]),
    ([2, 3, 5, 4], [2, 3, 4, 6]),
    ([33, 300], [300, 513]),          # several K and N blocks, M not a multiple of 4
    ([5, 70], [2, 70, 260]),
    ([2, 9, 130], [1, 130, 257]),
]


def matmul_ref(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy's float32 product of each sample's a and b (batch first: the per-sample ranks are aligned before
    numpy broadcasts) and the scale of its rounding error (|a| @ |b|), per element."""
    rank = max(a.ndim, b.ndim)
    a = a.reshape(a.shape[0], *[1] * (rank - a.ndim), *a.shape[1:])
    b = b.reshape(b.shape[0], *[1] * (rank - b.ndim), *b.shape[1:])
    want = np.matmul(a, b)
    scale = np.matmul(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64))
    return want, scale


@pytest.mark.parametrize(("sa", "sb"), MATMUL_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matmul_matches_numpy_with_broadcasting(rng, sa, sb):
    data = model([(sa, "f32"), (sb, "f32")], [node("matmul", [0, 1])])
    a, b = floats(rng, BATCH, *sa), floats(rng, BATCH, *sb)
    got = run(data, a, b)
    want, scale = matmul_ref(a, b)
    assert got.shape == want.shape
    assert np.all(np.abs(got - want) <= 1e-5 * scale + 1e-30), np.max(np.abs(got - want) / (scale + 1e-30))
    lead = np.broadcast_shapes(tuple(sa[:-2]), tuple(sb[:-2]))
    assert pyruntime.load(data).work == int(np.prod(lead, dtype=np.int64)) * sa[-2] * sa[-1] * sb[-1]


def test_matmul_rows_do_not_depend_on_the_batch(rng):
    # each sample is its own product: one sample alone gives the bits it gives in a batch
    data = model([([6, 70], "f32"), ([70, 300], "f32")], [node("matmul", [0, 1])])
    a, b = floats(rng, 4, 6, 70), floats(rng, 4, 70, 300)
    whole = run(data, a, b)
    for s in range(4):
        assert_bit_equal(run(data, a[s : s + 1], b[s : s + 1])[0], whole[s])


def test_matmul_of_a_value_with_its_transpose(rng):
    # x @ x^T (self-attention scores): one value read by two nodes
    data = model([([5, 8], "f32")], [node("transpose", [0], perm=[1, 0, 0, 0]), node("matmul", [0, 1])])
    x = floats(rng, BATCH, 5, 8)
    got = run(data, x)
    want, scale = matmul_ref(x, np.swapaxes(x, 1, 2))
    assert np.all(np.abs(got - want) <= 1e-5 * scale + 1e-30)


def test_matmul_propagates_nan_and_inf(rng):
    data = model([([2, 3], "f32"), ([3, 2], "f32")], [node("matmul", [0, 1])])
    a, b = floats(rng, 1, 2, 3), floats(rng, 1, 3, 2)
    a[0, 0, 1] = np.nan
    a[0, 1, 0] = np.inf
    b[0, 0, :] = 0.0
    got = run(data, a, b)
    assert np.isnan(got[0, 0]).all()
    assert np.isnan(got[0, 1]).all()  # inf * 0 is NaN: no product is skipped


# ---- transpose and slice ------------------------------------------------------------------------------


def perm_attr(perm) -> list[int]:
    return list(perm) + [0] * (4 - len(perm))


@pytest.mark.parametrize("shape", [[7], [3, 5], [3, 4, 5], [2, 3, 4, 5], [4, 1, 3, 6]], ids=str)
def test_transpose_every_permutation_bit_exact(rng, shape):
    data_in = floats(rng, BATCH, *shape)
    data_in.ravel()[:3] = [np.nan, -0.0, np.inf]
    for perm in itertools.permutations(range(len(shape))):
        data = model([(shape, "f32")], [node("transpose", [0], perm=perm_attr(perm))])
        got = run(data, data_in)
        assert_bit_equal(got, np.transpose(data_in, (0, *[p + 1 for p in perm])))


def test_transpose_of_attention_heads(rng):
    # [T, H, d] -> [H, T, d] (runs of d) and [H, T, d] -> [H, d, T] (the innermost axis moves)
    x = floats(rng, BATCH, 9, 4, 16)
    heads = model([([9, 4, 16], "f32")], [node("transpose", [0], perm=[1, 0, 2, 0])])
    assert_bit_equal(run(heads, x), np.transpose(x, (0, 2, 1, 3)))
    keys = model([([4, 9, 16], "f32")], [node("transpose", [0], perm=[0, 2, 1, 0])])
    y = floats(rng, BATCH, 4, 9, 16)
    assert_bit_equal(run(keys, y), np.transpose(y, (0, 1, 3, 2)))


def slices(n: int) -> list[tuple[int, int, int]]:
    """(start, end, step) slices of an axis of n elements: whole, strided, the last one, one by a big step."""
    cands = [(0, n, 1), (1, n, 2), (0, n - 1, 3), (n - 1, n, 1), (0, n, n), (1, n - 1, 1), (2, n, 2)]
    return sorted({c for c in cands if 0 <= c[0] < c[1] <= n})


@pytest.mark.parametrize("shape", [[9], [5, 6], [5, 6, 7], [3, 4, 5, 6]], ids=str)
def test_slice_with_steps_on_each_axis_bit_exact(rng, shape):
    x = floats(rng, BATCH, *shape)
    for axis, n in enumerate(shape):
        for start, end, step in slices(n):
            data = model([(shape, "f32")], [node("slice", [0], axis=axis, start=start, end=end, step=step)])
            index = [slice(None)] * (len(shape) + 1)
            index[axis + 1] = slice(start, end, step)
            assert_bit_equal(run(data, x), x[tuple(index)])


# ---- embedding ----------------------------------------------------------------------------------------

V, D = 50, 37


def int8_table(rng, sparse: bool) -> tuple[dict, np.ndarray]:
    q = rng.integers(-127, 128, (V, D)).astype(np.int8)
    scales = (rng.random(V) * 0.1 + 0.001).astype(np.float32)
    if sparse:
        q[rng.random((V, D)) < 0.6] = 0
        q[[0, 7]] = 0  # empty rows
        mask = q != 0
        t = {"name": "table", "encoding": "csr+int8", "shape": [V, D],
             "rowptr": np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.uint32),
             "colidx": np.nonzero(mask)[1].astype(np.uint32), "qvalues": q[mask], "scales": scales}
    else:
        t = {"name": "table", "encoding": "int8", "shape": [V, D], "qvalues": q.ravel(), "scales": scales}
    return t, scales[:, None] * q.astype(np.float32)  # W = scale[r] * q, in f32


TABLES = [("dense", {}), ("csr", {"density": 0.3, "empty_rows": [0, 3]}), ("codebook", {"k": 2}),
          ("codebook", {"k": 4}), ("codebook", {"k": 16}), ("codebook", {"k": 200}),
          ("csr+codebook", {"k": 12, "density": 0.4}), ("csr+codebook", {"k": 100, "density": 0.4}),
          ("int8", {}), ("csr+int8", {})]


def table(helpers, rng, encoding: str, kw: dict) -> tuple[dict, np.ndarray]:
    if "int8" in encoding:
        return int8_table(rng, encoding == "csr+int8")
    t = helpers.tensor(rng, encoding, (V, D), name="table", **kw)
    return t, helpers.densify(t)  # codebook: W = centroids[idx]


@pytest.mark.parametrize(("encoding", "kw"), TABLES, ids=[f"{e}-{kw.get('k', '')}" for e, kw in TABLES])
def test_embedding_gives_the_table_rows_of_every_encoding(helpers, rng, encoding, kw):
    t, w = table(helpers, rng, encoding, kw)
    data = model([([3, 4], "i32")], [node("embedding", [0], [0])], [t])
    ids = rng.integers(0, V, (BATCH, 3, 4))
    ids[0, 0, :2] = [0, V - 1]
    got = run(data, ids)
    assert_bit_equal(got, w[ids])
    layer = pyruntime.load(data).layers()[0]
    assert layer["encoding"] == encoding and layer["output_shape"] == [3, 4, D]
    assert pyruntime.load(data).work == 3 * 4 * D


def test_embedding_reads_a_dense_table_in_place_from_a_mapped_file(helpers, rng, tmp_path):
    t, w = table(helpers, rng, "dense", {})
    path = tmp_path / "embedding.pyrt"
    path.write_bytes(model([([6], "i32")], [node("embedding", [0], [0])], [t]))
    m = pyruntime.load(path, mmap=True)
    ids = rng.integers(0, V, (BATCH, 6))
    assert_bit_equal(m._core.run(ids), w[ids])
    assert m.in_place_bytes == V * D * 4 and m.layers()[0]["in_place"]


def test_embedding_takes_ids_of_any_integer_dtype(helpers, rng):
    t, w = table(helpers, rng, "dense", {})
    data = model([([6], "i32")], [node("embedding", [0], [0])], [t])
    ids = rng.integers(0, V, (2, 6))
    for dtype in (np.int8, np.uint8, np.int32, np.int64, np.uint64):
        assert_bit_equal(run(data, ids.astype(dtype)), w[ids])


@pytest.mark.parametrize("bad", [-1, V, V + 1000, -(2**31)])
def test_embedding_refuses_ids_outside_the_table(helpers, rng, bad):
    t, _ = table(helpers, rng, "codebook", {"k": 16})
    data = model([([6], "i32")], [node("embedding", [0], [0])], [t])
    ids = rng.integers(0, V, (2, 6))
    ids[1, 2] = bad  # position 8 of the batch's ids (sample 1, index 2)
    with pytest.raises(ValueError, match=rf"embedding: id {bad} at position 8 is outside the table's {V} rows"):
        pyruntime.load(data)._core.run(ids)
    # the model still runs on good ids afterwards
    ids[1, 2] = 3
    run(data, ids)


def test_ids_through_transpose_and_slice_feed_an_embedding(helpers, rng):
    t, w = table(helpers, rng, "csr+codebook", {"k": 12, "density": 0.5})
    nodes = [node("transpose", [0], perm=[1, 0, 0, 0]),                  # 1: [8, 4] ids
             node("slice", [1], axis=0, start=1, end=8, step=3),         # 2: [3, 4] ids
             node("embedding", [2], [0]),                                # 3: [3, 4, D]
             node("slice", [0], axis=1, start=0, end=8, step=2),         # 4: [4, 4] ids
             node("embedding", [4], [0])]                                # 5: [4, 4, D]
    ids = rng.integers(0, V, (BATCH, 4, 8))
    first = model([([4, 8], "i32")], nodes[:3], [t])
    assert_bit_equal(run(first, ids), w[np.swapaxes(ids, 1, 2)[:, 1:8:3]])
    second = model([([4, 8], "i32")], nodes, [t])
    assert_bit_equal(run(second, ids), w[ids[:, :, 0:8:2]])
    # an i32 value as the graph output comes back as floats, the same numbers
    as_output = model([([4, 8], "i32")], nodes[:2])
    assert_bit_equal(run(as_output, ids), np.swapaxes(ids, 1, 2)[:, 1:8:3].astype(np.float32))


def test_embedding_then_matmul_with_a_second_input(helpers, rng):
    # a toy attention score: embed(ids) [T, D] @ q [D, T] with q a second (f32) graph input
    t, w = table(helpers, rng, "int8", {})
    nodes = [node("embedding", [0], [0]), node("matmul", [2, 1])]
    data = model([([5], "i32"), ([D, 5], "f32")], nodes, [t])
    ids = rng.integers(0, V, (BATCH, 5))
    q = floats(rng, BATCH, D, 5)
    got = run(data, ids, q)
    want, scale = matmul_ref(w[ids], q)
    assert np.all(np.abs(got - want) <= 1e-5 * scale + 1e-30)


# ---- upsample_nearest and adaptive_avg_pool2d -----------------------------------------------------------


@pytest.fixture(scope="module")
def F():
    return pytest.importorskip("torch").nn.functional


@pytest.mark.parametrize("scale", [(1, 1), (2, 2), (2, 3), (3, 1), (1, 4), (5, 7)], ids=str)
@pytest.mark.parametrize("chw", [(3, 4, 5), (1, 1, 1), (2, 7, 3)], ids=str)
def test_upsample_nearest_matches_torch(F, rng, scale, chw):
    import torch

    x = floats(rng, BATCH, *chw)
    data = model([(chw, "f32")], [node("upsample_nearest", [0], scale=list(scale))])
    want = F.interpolate(torch.from_numpy(x), scale_factor=scale, mode="nearest").numpy()
    assert_bit_equal(run(data, x), want)
    assert_bit_equal(run(data, x), np.repeat(np.repeat(x, scale[0], axis=2), scale[1], axis=3))


@pytest.mark.parametrize(("hw", "out"), [((10, 10), (7, 7)), ((5, 5), (3, 3)), ((8, 8), (4, 4)), ((7, 9), (3, 4)),
                                         ((6, 6), (1, 1)), ((3, 2), (5, 4)), ((14, 14), (7, 7)), ((1, 1), (2, 3)),
                                         ((13, 6), (6, 13))], ids=str)
def test_adaptive_avg_pool2d_matches_torch(F, rng, hw, out):
    import torch

    c = 3
    x = floats(rng, BATCH, c, *hw)
    data = model([([c, *hw], "f32")], [node("adaptive_avg_pool2d", [0], output_size=list(out))])
    got = run(data, x)
    want = F.adaptive_avg_pool2d(torch.from_numpy(x), out).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # torch's windows, in float64: rows floor(i * H / oh) .. ceil((i + 1) * H / oh) - 1
    (h, w), (oh, ow) = hw, out
    ref = np.empty((BATCH, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            r0, r1 = i * h // oh, -(-(i + 1) * h // oh)
            c0, c1 = j * w // ow, -(-(j + 1) * w // ow)
            ref[:, :, i, j] = x[:, :, r0:r1, c0:c1].astype(np.float64).mean(axis=(2, 3))
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
