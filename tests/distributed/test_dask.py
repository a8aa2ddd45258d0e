"""pyruntime.dask: map_blocks over dask arrays and map_partitions over dask dataframes, equal bit for bit to
Model.run on the same blocks, the model loaded once per process (not per block), in threads and in worker
processes.

"The same blocks": the runtime's outputs do not depend on the thread count, but a sample may differ in the
last bit between batches that split it into different chunks of 64 (a batch's tail chunk is tiled otherwise by
the dense kernels). So the reference runs Model.run block by block; with blocks of multiples of 64 samples it
is one Model.run over everything."""
from __future__ import annotations

import itertools
import sys
from collections import OrderedDict

import numpy as np
import pytest

import pyruntime
import pyruntime.dask  # imports without dask: dask is imported when used
from pyruntime.dask import map_blocks, map_partitions

da = pytest.importorskip("dask.array", reason='needs dask: pip install "pyruntime[dask]"')


def by_blocks(model: pyruntime.Model, chunks: tuple[int, ...], *xs: np.ndarray) -> np.ndarray:
    """Model.run over the same batches as dask's blocks of ``chunks`` samples."""
    ends = np.cumsum((0, *chunks))
    return np.concatenate([model.run(*(x[a:b] for x in xs)) for a, b in itertools.pairwise(ends)])


@pytest.fixture
def loads(monkeypatch):
    """A fresh model cache, and the list of loads made through it."""
    made: list[int] = []
    real = pyruntime.dask.load

    def counting(data, threads=1):
        made.append(threads)
        return real(data, threads=threads)

    monkeypatch.setattr(pyruntime.dask, "_MODELS", OrderedDict())
    monkeypatch.setattr(pyruntime.dask, "load", counting)
    return made


def test_map_blocks_equals_model_run_and_loads_once(mlp_bytes, features, loads, tmp_path):
    x = features[:20_000]
    m = pyruntime.load(mlp_bytes)
    want = m.run(x)
    y = map_blocks(mlp_bytes, da.from_array(x, chunks=(1500, 8, 8)))
    assert y.shape == (20_000, 10) and y.dtype == np.float32 and y.chunks[0] == (1500,) * 13 + (500,)
    got = y.compute(scheduler="threads", num_workers=2)
    assert np.array_equal(got.view(np.uint32), by_blocks(m, y.chunks[0], x).view(np.uint32))
    assert loads == [1]  # once, on the client (which is also the threaded scheduler's process), for 14 blocks
    # from a path: the same graph keys for the model, nothing loaded again
    (tmp_path / "m.pyrt").write_bytes(mlp_bytes)
    y = map_blocks(tmp_path / "m.pyrt", da.from_array(x, chunks=(4096, 8, 8)))
    assert np.array_equal(y.compute(), want)
    assert loads == [1]
    assert np.array_equal(map_blocks(mlp_bytes, da.from_array(x, chunks=4096), threads=2).compute(), want)
    assert loads == [1, 2]


def test_the_file_is_one_task_of_the_graph(mlp_bytes, features):
    y = map_blocks(mlp_bytes, da.from_array(features[:1000], chunks=(100, 8, 8)))
    graph = dict(y.__dask_graph__())
    model_keys = [k for k in graph if str(k).startswith("pyrt-model-")]
    assert len(model_keys) == 1 and len(graph) == 1 + 10 + 10  # the bytes, the input blocks, the runs


def test_worker_processes(mlp_bytes, features):
    # blocks pickled to other processes: each loads the model once and runs it
    x = features[:4000]
    y = map_blocks(mlp_bytes, da.from_array(x, chunks=(512, 8, 8)))
    got = y.compute(scheduler="processes", num_workers=2)
    assert np.array_equal(got, pyruntime.load(mlp_bytes).run(x))


def test_several_inputs(two_in_bytes, two_in_two_out_bytes):
    rng = np.random.default_rng(12)
    ids, x = rng.integers(0, 10, (300, 3)), rng.standard_normal((300, 12)).astype(np.float32)
    # int64 ids for the i32 input; chunks that differ between the inputs are aligned by dask
    y = map_blocks(two_in_bytes, da.from_array(ids, chunks=(100, 3)), da.from_array(x, chunks=(75, 12)))
    assert y.shape == (300, 5)
    assert y.chunks[0] == (75, 25, 50, 50, 25, 75)
    assert np.array_equal(y.compute(), by_blocks(pyruntime.load(two_in_bytes), y.chunks[0], ids, x))
    with pytest.raises(ValueError, match="map_blocks takes a model of one output; this one has 2"):
        map_blocks(two_in_two_out_bytes, da.from_array(ids), da.from_array(x))
    with pytest.raises(ValueError, match="array 0 is float32; the model's input 'input0' takes int32"):
        map_blocks(two_in_bytes, da.from_array(x[:, :3]), da.from_array(x))


def test_map_blocks_errors(mlp_bytes, features):
    x = features[:100]
    cases = [
        (lambda: map_blocks(mlp_bytes, da.from_array(x, chunks=(50, 4, 8))), ValueError,
         "the array is chunked along axis 1 too; the model needs whole samples: x.rechunk({1: -1})"),
        (lambda: map_blocks(mlp_bytes, da.from_array(x.astype(np.float64))), ValueError,
         "the array is float64; the model's input 'input' takes float32 (cast it: x.astype(np.float32))"),
        (lambda: map_blocks(mlp_bytes, da.from_array(x.reshape(100, 64))), ValueError,
         "the array has shape (100, 64); the model's input 'input' takes (N, 8, 8)"),
        (lambda: map_blocks(mlp_bytes, x), TypeError, "the array is a ndarray, not a dask array"),
        (lambda: map_blocks(mlp_bytes), ValueError, "the model takes 1 input(s), got 0 arrays"),
        (lambda: map_blocks(123, da.from_array(x)), TypeError,
         "model takes the bytes of a .pyrt file or a path, got int"),
    ]
    for call, error, message in cases:
        with pytest.raises(error) as e:
            call()
        assert message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(pyruntime.FormatError):
        map_blocks(b"not a model", da.from_array(x))


def test_map_partitions_keeps_columns_and_equals_model_run(mlp_bytes, features, loads):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    x = features[:6000]
    names = [f"f{i}" for i in range(64)]
    frame = pd.DataFrame(x.reshape(len(x), 64).astype(np.float64), columns=names)  # float64, as pandas makes
    frame.insert(0, "id", np.arange(len(x)) + 1000)
    frame.index = frame.index * 3  # an index of its own, kept
    scored = map_partitions(mlp_bytes, dd.from_pandas(frame, chunksize=1024), columns=names, prefix="p")
    outputs = [f"p_{j}" for j in range(10)]
    assert list(scored.columns) == ["id", *names, *outputs]
    got = scored.compute(scheduler="threads")
    assert list(got.dtypes[outputs]) == [np.float32] * 10
    assert got.index.equals(frame.index) and np.array_equal(got["id"], frame["id"])
    assert np.array_equal(got[outputs].to_numpy(), pyruntime.load(mlp_bytes).run(x))  # partitions of 1024
    assert loads == [1]
    with pytest.raises(ValueError, match="65 columns make a sample, the model's input takes 64 values"):
        map_partitions(mlp_bytes, dd.from_pandas(frame, npartitions=2))
    with pytest.raises(ValueError, match="already has column 'id_0'; pass prefix="):
        map_partitions(mlp_bytes, dd.from_pandas(frame.rename(columns={"f0": "id_0"}), npartitions=2),
                       columns=["id_0", *names[1:]], prefix="id")


def test_missing_dask_says_how_to_install(monkeypatch, mlp_bytes):
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r'pip install "pyruntime\[dask\]"'):
        map_blocks(mlp_bytes)
