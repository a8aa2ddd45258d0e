"""pyruntime.ray.Predictor through Ray Data on a local 2-CPU cluster (one per module): 102,400 samples scored
by map_batches with the model given as bytes, as an object-store reference and as a path, each output equal
bit for bit to Model.run on the same inputs, each row's id and label kept with it; threads from the actor's
CPUs; the errors, checked in the driver (and one through map_batches).

Bit for bit: the runtime computes a batch in chunks of 64 samples, and its outputs do not depend on the thread
count, but a sample in a chunk of another size (a batch's tail) may differ in the last bit (dense kernels tile
the chunk). Blocks of 10,240 rows and batches of 4,096 start every batch at a multiple of 64, so each sample
is computed as in one Model.run over all of them."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import pyruntime
import pyruntime.ray  # imports without Ray: Ray is imported when a Predictor is made
from pyruntime.ray import Predictor

ray = pytest.importorskip("ray", reason='needs Ray Data: pip install "pyruntime[ray]"')
pytest.importorskip("ray.data", reason='needs Ray Data: pip install "pyruntime[ray]"')
pa = pytest.importorskip("pyarrow", reason="Ray Data needs pyarrow")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")  # Ray Data's own

BLOCKS = 10
ID_OFFSET = 10**9  # ids unlike row numbers, so a row matched by position alone would fail


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if ray.is_initialized():  # someone else's cluster: use it, leave it running
        yield
        return
    # Ray puts the driver's working directory on its workers' sys.path. Started from the repository root,
    # the workers would import the source tree's pyruntime (no compiled core) instead of the installed one.
    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("ray"))
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning",
                 configure_logging=False)
    finally:
        os.chdir(here)
    ctx = ray.data.DataContext.get_current()  # a dataset keeps the context current when it is made
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = True  # so that the tests can check the order too
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def rows(features):
    """The dataset's columns: shuffled ids, labels and the (N, 8, 8) float32 inputs."""
    n = len(features)
    rng = np.random.default_rng(10)
    return {"id": rng.permutation(n).astype(np.int64) + ID_OFFSET, "label": rng.integers(0, 10, n),
            "x": features}


@pytest.fixture(scope="module")
def dataset(cluster, rows):
    from ray.data.extensions import ArrowTensorArray

    parts = np.array_split(np.arange(len(rows["x"])), BLOCKS)
    return ray.data.from_arrow([pa.table({"id": rows["id"][p], "label": rows["label"][p],
                                          "x": ArrowTensorArray.from_numpy(rows["x"][p])}) for p in parts])


@pytest.fixture(scope="module")
def expected(mlp_bytes, features):
    return pyruntime.load(mlp_bytes, threads=1).run(features)


def _collect(ds) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {}
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for k, v in batch.items():
            parts.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


def test_threads_are_the_cpus_ray_gives(cluster, mlp_bytes):
    # first in the module: a task of 2 CPUs needs the whole cluster, before any dataset's actors hold one
    @ray.remote
    def threads(**kw) -> int:
        return Predictor(mlp_bytes, **kw).threads

    assert ray.get(threads.remote(), timeout=120) == 1  # a task (and a Ray Data actor) gets 1 CPU by default
    assert ray.get(threads.options(num_cpus=2).remote(), timeout=120) == 2
    assert ray.get(threads.options(num_cpus=0.5).remote(), timeout=120) == 1
    assert ray.get(threads.options(num_cpus=2).remote(threads=1), timeout=120) == 1  # threads= wins
    # outside a worker: the process's CPUs
    assert Predictor(mlp_bytes).threads == pyruntime.ray.affinity_cpus()
    assert Predictor(mlp_bytes).model.threads == pyruntime.ray.affinity_cpus()


@pytest.mark.parametrize("form", ["bytes", "ref", "path"])
def test_scores_every_row_like_model_run(form, dataset, rows, expected, mlp_bytes, tmp_path):
    if form == "path":
        model = str(tmp_path / "mlp.pyrt")  # the same machine: the workers read it too
        (tmp_path / "mlp.pyrt").write_bytes(mlp_bytes)
    else:
        model = ray.put(mlp_bytes) if form == "ref" else mlp_bytes
    out = _collect(dataset.map_batches(Predictor, fn_constructor_kwargs={"model": model},
                                       compute=ray.data.ActorPoolStrategy(size=2), batch_size=4096,
                                       batch_format="numpy"))
    assert sorted(out) == ["id", "label", "output", "x"]
    n = len(rows["id"])
    assert out["output"].shape == (n, 10) and out["output"].dtype == np.float32
    row = np.empty(n, np.int64)
    row[rows["id"] - ID_OFFSET] = np.arange(n)  # id -> its row in the input
    at = row[out["id"] - ID_OFFSET]
    assert np.array_equal(np.sort(at), np.arange(n)), "every id exactly once"
    assert np.array_equal(at, np.arange(n)), "rows in the input's order (preserve_order=True)"
    assert np.array_equal(out["label"], rows["label"][at])
    assert np.array_equal(out["x"], rows["x"][at])
    # bit for bit (batches split at multiples of 64: see the module docstring)
    assert np.array_equal(out["output"].view(np.uint32), expected[at].view(np.uint32))


def test_columns_and_names_through_map_batches(dataset, rows, expected, mlp_bytes):
    small = dataset.limit(5120).rename_columns({"x": "pixels"})
    out = _collect(small.map_batches(Predictor, fn_constructor_kwargs={
        "model": ray.put(mlp_bytes), "inputs": "pixels", "outputs": "probs", "keep_inputs": False},
        compute=ray.data.ActorPoolStrategy(size=1), batch_size=1024, batch_format="numpy"))
    assert sorted(out) == ["id", "label", "probs"]
    row = np.empty(len(rows["id"]), np.int64)
    row[rows["id"] - ID_OFFSET] = np.arange(len(rows["id"]))
    assert np.array_equal(out["probs"], expected[row[out["id"] - ID_OFFSET]])


def test_several_inputs_and_outputs(cluster, two_in_two_out_bytes):
    rng = np.random.default_rng(11)
    batch = {"tokens": rng.integers(0, 10, (7, 3)), "x": rng.standard_normal((7, 12)).astype(np.float32),
             "id": np.arange(7)}
    want = pyruntime.load(two_in_two_out_bytes).run(batch["tokens"], batch["x"])
    p = Predictor(ray.put(two_in_two_out_bytes), inputs=["tokens", "x"], outputs=["y", "sum"], threads=1)
    out = p(batch)
    assert list(out) == ["tokens", "x", "id", "y", "sum"]
    assert np.array_equal(out["y"], want[0]) and np.array_equal(out["sum"], want[1])
    # default: the model's own input and output names
    out = Predictor(two_in_two_out_bytes, threads=1)({"input0": batch["tokens"], "input1": batch["x"]})
    assert np.array_equal(out["output0"], want[0]) and np.array_equal(out["output1"], want[1])
    with pytest.raises(ValueError, match=r"no column 'input1' .*pass inputs="):
        Predictor(two_in_two_out_bytes, threads=1)({"input0": batch["tokens"], "x": batch["x"]})


def test_default_input_column(cluster, mlp_bytes, features):
    p = Predictor(mlp_bytes, threads=1)
    x = features[:16]
    want = p.model.run(x)
    for batch in ({"x": x, "input": x[::-1].copy()}, {"input": x, "id": np.arange(16)}, {"data": x}):
        assert np.array_equal(p(batch)["output"], want)
    assert p({"x": x[:0]})["output"].shape == (0, 10)  # an empty batch


def _one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("batch,error,message", [
    ({"id": np.arange(4), "img": np.zeros((4, 8, 8), np.float32)}, ValueError,
     "no input column: the batch has 'id', 'img', none named 'x' or 'input'; pass inputs="),
    ({"x": np.zeros((4, 8, 8))}, ValueError,
     "column 'x' is float64; the model's input 'input' takes float32 (batch, 8, 8)"),
    ({"x": np.zeros((4, 64), np.float32)}, ValueError,
     "column 'x' has rows of shape (64,); the model's input 'input' takes float32 (batch, 8, 8)"),
    ({"x": np.array([np.zeros((8, 8)), np.zeros((7, 8))], dtype=object)}, ValueError,
     "column 'x' holds objects"),
    ({"x": np.zeros((4, 8, 8), np.float32), "output": np.zeros(4)}, ValueError,
     "the batch already has a column 'output'; pass outputs= another name"),
])
def test_batch_errors_say_what_is_wrong(cluster, mlp_bytes, batch, error, message):
    with pytest.raises(error) as e:
        Predictor(mlp_bytes, threads=1)(batch)
    assert message in _one_line(e)


def test_a_dataframe_batch_asks_for_numpy(cluster, mlp_bytes):
    pd = pytest.importorskip("pandas")
    with pytest.raises(TypeError, match="pass batch_format='numpy' to map_batches"):
        Predictor(mlp_bytes, threads=1)(pd.DataFrame({"x": [1.0]}))


def test_model_argument_errors(cluster, mlp_bytes, tmp_path):
    with pytest.raises(TypeError) as e:
        Predictor(pyruntime.load(mlp_bytes))
    assert "model= takes the bytes of a .pyrt file, a ray.ObjectRef to them or a path, got Model" in \
        _one_line(e)
    with pytest.raises(TypeError, match="model= is an ObjectRef to a dict, expected the bytes of a .pyrt"):
        Predictor(ray.put({"not": "bytes"}))
    with pytest.raises(pyruntime.FormatError):
        Predictor(b"not a model")
    with pytest.raises(OSError):
        Predictor(str(tmp_path / "missing.pyrt"))
    with pytest.raises(ValueError, match=r"inputs= takes 1 column name \(one per model input\)"):
        Predictor(mlp_bytes, inputs=["a", "b"])
    with pytest.raises(ValueError, match="threads must be an int"):
        Predictor(mlp_bytes, threads=-1)
    # an ObjectRef to a uint8 array (ray.put(np.frombuffer(data, np.uint8))) is bytes too
    as_array = ray.put(np.frombuffer(mlp_bytes, np.uint8))
    assert Predictor(as_array, threads=1).model.file_bytes == len(mlp_bytes)


def test_missing_ray_says_how_to_install(monkeypatch, mlp_bytes):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ImportError) as e:
        Predictor(mlp_bytes)
    assert 'pip install "pyruntime[ray]"' in _one_line(e)


def test_an_error_in_a_worker_names_the_column(dataset, mlp_bytes):
    # last: the failed dataset's actor may hold its CPU a while after
    ds = dataset.limit(100).drop_columns(["x"]).map_batches(
        Predictor, fn_constructor_kwargs={"model": mlp_bytes}, compute=ray.data.ActorPoolStrategy(size=1),
        batch_format="numpy")
    with pytest.raises(Exception, match="no input column: the batch has 'id', 'label'"):
        ds.materialize()
