"""Batch inference with Dask: a .pyrt model over the blocks of a dask array or the partitions of a dask
dataframe, loaded once per worker process (cached by the SHA-256 of the file), not once per block.

::

    import dask.array as da, pyruntime.dask
    x = da.from_zarr("images.zarr")                          # (N, 1, 28, 28) float32, chunked along N only
    y = pyruntime.dask.map_blocks("model.pyrt", x)           # (N, 10) float32, lazy
    y.compute()

    df = dd.read_parquet("features/")                        # an id column and 64 feature columns
    scored = pyruntime.dask.map_partitions("model.pyrt", df, columns=[f"f{i}" for i in range(64)])

The file is read once, on the client, and travels in the task graph as the result of one task, which a
worker fetches once; no file is needed on the workers. ``threads`` (default 1) is the threads of each
block's run: dask already runs one block per core (its threaded scheduler, or one worker thread per core),
so raise it only for workers that run one task at a time on several cores. The outputs are those of
``pyruntime.load(data).run(x)`` bit for bit.

Needs dask: ``pip install "pyruntime[dask]"``.
"""
from __future__ import annotations

import hashlib
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._model import Model, load

_MODELS: OrderedDict[tuple[str, int], Model] = OrderedDict()
_MODELS_KEPT = 4  # loaded models a process keeps (least recently used dropped first)
_LOCK = threading.Lock()


def _import(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f'pyruntime.dask needs {module}: pip install "pyruntime[dask]" ({e})') from None


def cached_model(digest: str, data: Any, threads: int = 1) -> Model:
    """The model whose file has SHA-256 ``digest``, loaded from ``data`` the first time this process asks
    for it (per thread count), then kept: the block and partition functions call this."""
    key = (digest, threads)
    with _LOCK:  # held while loading too: concurrent first blocks load the model once
        model = _MODELS.get(key)
        if model is None:
            model = _MODELS[key] = load(data, threads=threads)
            while len(_MODELS) > _MODELS_KEPT:
                _MODELS.popitem(last=False)
        _MODELS.move_to_end(key)
        return model


def _read(model: Any) -> tuple[bytes, str]:
    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
    elif isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as f:
            data = f.read()
    else:
        raise TypeError("pyruntime.dask: model takes the bytes of a .pyrt file or a path, got "
                        f"{type(model).__name__}")
    return data, hashlib.sha256(data).hexdigest()


def _shared(data: bytes, digest: str) -> Any:
    """The file's bytes as one task of the graph (computed once, fetched once per worker)."""
    return _import("dask").delayed(data, name=f"pyrt-model-{digest}", pure=True)



def _run_block(*xs: np.ndarray, digest: str, data: Any, threads: int) -> np.ndarray:
    return cached_model(digest, data, threads).run(*xs)


def _check_dtype(who: str, dtype: np.dtype, spec: dict[str, Any]) -> None:
    ok = np.dtype(dtype).kind in "iu" if spec["dtype"] == "int32" else np.dtype(dtype) == np.float32
    if not ok:
        cast = " (cast it: x.astype(np.float32))" if spec["dtype"] == "float32" else ""
        raise ValueError(f"pyruntime.dask: {who} is {dtype}; the model's input {spec['name']!r} takes "
                         f"{spec['dtype']}{cast}")


def map_blocks(model: Any, *arrays: Any, threads: int = 1) -> Any:
    """The model's output over dask arrays, one per model input, batch first, chunked along the batch axis
    only: a lazy float32 dask array of shape ``(N, *output shape)`` with the inputs' batch chunks. ``model``:
    the bytes of a .pyrt file or its path (read here, on the client). A model of one output only."""
    da = _import("dask.array")
    data, digest = _read(model)
    m = cached_model(digest, data, threads)  # checks the file, and gives the shapes
    specs = m.inputs
    if len(arrays) != len(specs):
        raise ValueError(f"pyruntime.dask.map_blocks: the model takes {len(specs)} input(s), got "
                         f"{len(arrays)} arrays")
    if len(m.outputs) != 1:
        raise ValueError("pyruntime.dask.map_blocks takes a model of one output; this one has "
                         f"{len(m.outputs)}")
    args: list[Any] = []
    for k, (x, spec) in enumerate(zip(arrays, specs, strict=True)):
        who = "the array" if len(arrays) == 1 else f"array {k}"
        if not isinstance(x, da.Array):
            raise TypeError(f"pyruntime.dask.map_blocks: {who} is a {type(x).__name__}, not a dask array")
        want = tuple(spec["shape"][1:])
        if x.ndim < 1 or tuple(x.shape[1:]) != want:
            raise ValueError(f"pyruntime.dask.map_blocks: {who} has shape {x.shape}; the model's input "
                             f"{spec['name']!r} takes (N, {', '.join(map(str, want))})")
        _check_dtype(who, x.dtype, spec)
        for axis in range(1, x.ndim):
            if len(x.chunks[axis]) > 1:
                raise ValueError(f"pyruntime.dask.map_blocks: {who} is chunked along axis {axis} too; the "
                                 f"model needs whole samples: x.rechunk({{{axis}: -1}})")
        args += [x, ("n", *(f"in{k}_{axis}" for axis in range(1, x.ndim)))]
    out_shape = tuple(m.outputs[0]["shape"][1:])
    out_ind = ("n", *(f"out{axis}" for axis in range(1, len(out_shape) + 1)))
    return da.blockwise(_run_block, out_ind, *args, new_axes=dict(zip(out_ind[1:], out_shape, strict=True)),
                        concatenate=True, dtype=np.float32, meta=np.empty((0,) * len(out_ind), np.float32),
                        name=f"pyrt-run-{digest[:16]}-" + _import("dask.base").tokenize(*arrays, threads),
                        digest=digest, data=_shared(data, digest), threads=threads)


def predict_frame(frame: Any, *, digest: str, data: Any, columns: Sequence[str], names: Sequence[str],
                  threads: int = 1) -> Any:
    """One pandas partition: the model's flattened output as the new columns ``names``, the partition's
    own columns kept (``DataFrame.map_partitions`` calls this through ``map_partitions``)."""
    import pandas as pd

    m = cached_model(digest, data, threads)
    spec = m.inputs[0]
    x = frame[list(columns)].to_numpy(dtype=np.float32 if spec["dtype"] == "float32" else None)
    y = m.run(x.reshape(len(frame), *spec["shape"][1:]))
    out = pd.DataFrame(y.reshape(len(frame), -1), index=frame.index, columns=list(names))
    return pd.concat([frame, out], axis=1)


def map_partitions(model: Any, df: Any, *, columns: Sequence[str] | None = None, prefix: str = "output",
                   threads: int = 1) -> Any:
    """A dask dataframe scored row by row: the row's ``columns`` (default: all of them) are one sample,
    cast to float32 and reshaped to the model's input shape; the model's output, flattened, comes back as
    float32 columns ``{prefix}_0`` .. ``{prefix}_{K-1}`` (``prefix`` alone for one value) after the
    dataframe's own columns. A model of one input and one output."""
    _import("dask.dataframe")
    data, digest = _read(model)
    m = cached_model(digest, data, threads)
    if len(m.inputs) != 1 or len(m.outputs) != 1:
        raise ValueError("pyruntime.dask.map_partitions takes a model of one input and one output; this one "
                         f"has {len(m.inputs)} and {len(m.outputs)}: use map_blocks")
    columns = list(df.columns) if columns is None else list(columns)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"pyruntime.dask.map_partitions: no column {', '.join(map(repr, missing))} in the "
                         "dataframe")
    features = math.prod(m.inputs[0]["shape"][1:])
    if len(columns) != features:
        raise ValueError(f"pyruntime.dask.map_partitions: {len(columns)} columns make a sample, the model's "
                         f"input takes {features} values {tuple(m.inputs[0]['shape'][1:])}; pass columns=")
    k = math.prod(m.outputs[0]["shape"][1:])
    names = [prefix] if k == 1 else [f"{prefix}_{j}" for j in range(k)]
    taken = [n for n in names if n in df.columns]
    if taken:
        raise ValueError(f"pyruntime.dask.map_partitions: the dataframe already has column {taken[0]!r}; "
                         "pass prefix=")
    meta = predict_meta(df._meta, names)
    return df.map_partitions(predict_frame, digest=digest, data=_shared(data, digest), columns=columns,
                             names=names, threads=threads, meta=meta)


def predict_meta(meta: Any, names: Sequence[str]) -> Any:
    """The empty pandas frame ``predict_frame`` returns for a partition like ``meta``."""
    import pandas as pd

    out = pd.DataFrame({n: np.empty(0, np.float32) for n in names}, index=meta.index[:0])
    return pd.concat([meta.iloc[:0], out], axis=1)


__all__ = ["cached_model", "map_blocks", "map_partitions", "predict_frame"]
