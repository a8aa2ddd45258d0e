"""Multi-threaded execution: row views of every layout (what one thread computes at batch 1), how a
layer is split, and whole models run with a thread pool against the same models on one thread.

Every result is bit-identical to one thread's, at every batch: a linear layer computes its batch in
chunks of 64 samples whatever the thread count (threads take whole chunks), and splits a single chunk by
rows, each row computed by the same kernel as on one thread; a convolution computes sample by sample.
"""

from __future__ import annotations

import threading
from itertools import pairwise

import numpy as np
import pytest

import pyruntime
from pyruntime import _core

ENCODINGS = ("dense", "csr", "codebook", "csr+codebook")
ISAS = _core.supported_isas()


def make(helpers, rng, encoding: str, shape, k: int = 16, density: float = 0.3) -> dict:
    kw: dict = {}
    if encoding in ("csr", "csr+codebook"):
        kw["density"] = density
    if encoding in ("codebook", "csr+codebook"):
        kw["k"] = k
    return helpers.tensor(rng, encoding, shape, **kw)


ROW_VIEW_CASES = [
    (encoding, shape, k)
    for encoding in ENCODINGS
    for shape in [(1, 5), (37, 70), (130, 300)]
    for k in ([16] if encoding in ("dense", "csr") else [2, 4, 16, 200])
] + [("csr", (64, 65600), 16), ("csr+codebook", (64, 65600), 16), ("csr+codebook", (64, 65600), 200)]


@pytest.mark.parametrize("encoding,shape,k", ROW_VIEW_CASES, ids=lambda v: f"{v[0]}x{v[1]}" if isinstance(v, tuple) else str(v))
@pytest.mark.parametrize("isa", ISAS)
def test_row_views_match_the_whole_matrix(helpers, isa, encoding, shape, k):
    rng = np.random.default_rng(shape[0] * 7 + k)
    w = _core.PackedWeight(make(helpers, rng, encoding, shape, k=k, density=0.05 if shape[1] > 1000 else 0.3))
    x = rng.standard_normal(shape[1]).astype(np.float32)
    bias = rng.standard_normal(shape[0]).astype(np.float32)
    want = w.gemm(x[None], bias, isa)[0]
    rows = shape[0]
    cuts = sorted({0, rows, *rng.integers(1, rows, size=min(rows - 1, 5)).tolist()}) if rows > 1 else [0, 1]
    got = np.full(rows, np.nan, np.float32)
    for r0, r1 in pairwise(cuts):
        part = w.gemv_rows(x, r0, r1, bias, isa)
        assert np.isnan(part[:r0]).all() and np.isnan(part[r1:]).all()  # nothing outside its rows
        got[r0:r1] = part[r0:r1]
    np.testing.assert_array_equal(got, want)  # bit-identical: the same kernel on a view of the rows
    np.testing.assert_array_equal(w.gemv_rows(x, 0, rows, None, isa), w.gemm(x[None], None, isa)[0])


@pytest.mark.parametrize("encoding,shape,k", ROW_VIEW_CASES[::3], ids=lambda v: f"{v[0]}x{v[1]}" if isinstance(v, tuple) else str(v))
@pytest.mark.parametrize("batch", [2, 3, 9, 33, 64])
@pytest.mark.parametrize("isa", ISAS)
def test_row_views_match_the_whole_matrix_at_every_batch(helpers, isa, batch, encoding, shape, k):
    """What a thread computes when a chunk of samples is split by rows: bit-identical to gemm's columns."""
    rng = np.random.default_rng(shape[0] * 11 + k + batch)
    w = _core.PackedWeight(make(helpers, rng, encoding, shape, k=k, density=0.05 if shape[1] > 1000 else 0.3))
    x = rng.standard_normal((batch, shape[1])).astype(np.float32)
    bias = rng.standard_normal(shape[0]).astype(np.float32)
    want = w.gemm(x, bias, isa)
    rows = shape[0]
    splits = w.row_splits(3) if rows >= 48 else [0, rows]
    got = np.concatenate([w.gemm_rows(x, r0, r1, bias, isa) for r0, r1 in pairwise(splits)], axis=1)
    np.testing.assert_array_equal(got, want)


def test_gemv_rows_checks_its_arguments(helpers):
    w = _core.PackedWeight(make(helpers, np.random.default_rng(0), "csr", (8, 6)))
    x = np.zeros(6, np.float32)
    for r0, r1 in ((3, 3), (5, 2), (0, 9)):
        with pytest.raises(ValueError, match="rows"):
            w.gemv_rows(x, r0, r1)
    with pytest.raises(ValueError, match="shape"):
        w.gemv_rows(np.zeros(5, np.float32), 0, 8)
    with pytest.raises(ValueError, match="shape"):
        w.gemm_rows(np.zeros((2, 5), np.float32), 0, 8)
    with pytest.raises(ValueError, match="rows"):
        w.gemm_rows(np.zeros((2, 6), np.float32), 4, 2)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("parts", [1, 2, 3, 4, 8, 64])
def test_row_splits_cover_the_rows_in_order(helpers, encoding, parts):
    w = _core.PackedWeight(make(helpers, np.random.default_rng(parts), encoding, (300, 40)))
    b = w.row_splits(parts)
    assert b[0] == 0 and b[-1] == 300
    assert all(x < y for x, y in pairwise(b)), b
    assert len(b) - 1 <= parts
    if encoding in ("dense", "codebook"):
        assert all(x % 16 == 0 for x in b[:-1])  # whole register tiles
    if parts <= 8:
        assert len(b) - 1 == parts  # 300 rows in groups of 16 are enough for every part


def test_sparse_rows_are_split_by_nonzeros(helpers):
    """The first rows hold nearly all the nonzeros: a split by rows would leave one thread idle."""
    rng = np.random.default_rng(3)
    mask = np.zeros((512, 256), bool)
    mask[:64] = rng.random((64, 256)) < 0.9
    mask[64:] = rng.random((448, 256)) < 0.02
    t = helpers.csr(rng, (512, 256), mask=mask)
    b = _core.PackedWeight(t).row_splits(2)
    nnz = np.asarray(t["rowptr"], np.int64)
    first, second = nnz[b[1]] - nnz[0], nnz[-1] - nnz[b[1]]
    assert len(b) == 3 and b[1] < 128, b
    assert 0.8 < first / second < 1.25, (first, second)


def big_model(helpers, rng, encodings) -> dict:
    # layers large enough (>= 128 KB in execution layout) for the pool to split them; no softmax, which
    # would turn the rounding differences of large logits into visible ones
    return helpers.mlp(rng, [512, 384, 256, 10], list(encodings), final=None)


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))


@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize(
    "encodings", [("dense", "dense", "dense"), ("csr", "codebook", "csr+codebook"), ("codebook", "csr", "dense")]
)
def test_threaded_models_match_one_thread(helpers, threads, encodings):
    rng = np.random.default_rng(threads)
    model = big_model(helpers, rng, encodings)
    data = _core.write_model(model)
    one = pyruntime.load(data)
    many = pyruntime.load(data, threads=threads)
    assert one.threads == 1 and many.threads == threads
    tasks = [layer["row_tasks"] for layer in many.layers() if layer["encoding"]]
    assert 2 <= max(tasks) <= threads and all(layer["row_tasks"] == 1 for layer in one.layers()), tasks
    for isa in ISAS:
        previous = _core.active_isa()
        try:
            _core.set_isa(isa)
            for batch in (1, 2, 3, 5, 16, 64, 65, 200):
                x = helpers.random_input(rng, model, batch)
                np.testing.assert_array_equal(many.run(x), one.run(x), err_msg=f"{isa} batch {batch}")
        finally:
            _core.set_isa(previous)
    assert_close(many.run(x), helpers.forward(model, x))


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_small_layers_at_large_batches_match_one_thread(helpers, encoding):
    """Layers too small to split by rows: threads take whole chunks of samples (LeNet-300-100 sizes)."""
    rng = np.random.default_rng(5)
    model = helpers.mlp(rng, [784, 300, 100, 10], [encoding] * 3, final=None)
    data = _core.write_model(model)
    one, many = pyruntime.load(data), pyruntime.load(data, threads=2)
    for batch in (3, 63, 64, 65, 129, 1000):
        x = helpers.random_input(rng, model, batch)
        np.testing.assert_array_equal(many.run(x), one.run(x), err_msg=f"batch {batch}")
    for part in (x[:1], x[1:4], x[100:164]):  # each sample's chunk decides, not its neighbours beyond it
        assert_close(one.run(part), helpers.forward(model, part))


def test_sessions_in_several_threads_share_the_pool(helpers):
    """Python threads run one threaded model at once (the GIL is released): whoever finds the pool busy
    runs alone, and every result is right."""
    rng = np.random.default_rng(9)
    model = big_model(helpers, rng, ("csr", "dense", "codebook"))
    m = pyruntime.load(_core.write_model(model), threads=2)
    inputs = [helpers.random_input(rng, model, b) for b in (1, 1, 3, 8, 1, 2)]
    want = [pyruntime.load(_core.write_model(model)).run(x) for x in inputs]
    errors: list[str] = []

    def work(i: int) -> None:
        for _ in range(30):
            got = m.run(inputs[i])
            if not np.allclose(got, want[i], rtol=0, atol=1e-5 * float(np.abs(want[i]).max())):
                errors.append(f"input {i}")
                return

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_threads_argument(helpers, tmp_path):
    model = helpers.mlp(np.random.default_rng(1), [8, 4], ["dense"])
    data = _core.write_model(model)
    path = tmp_path / "m.pyrt"
    path.write_bytes(data)
    import os

    assert pyruntime.load(data, threads=0).threads == (os.cpu_count() or 1)
    assert pyruntime.load(path, threads=3, mmap=True).threads == 3
    for bad in (-1, 1025, 1.5, "2", True):
        with pytest.raises(ValueError, match="threads"):
            pyruntime.load(data, threads=bad)
    for private in (lambda: _core.Model.from_bytes(data, 5000), lambda: _core.Model.from_file(str(path), True, 1025)):
        with pytest.raises(ValueError, match=r"threads (5000|1025) not in 0\.\.1024"):
            private()
