"""Batch inference with Ray Data: a callable class for ``Dataset.map_batches``.

::

    import ray, pyruntime.ray
    ref = ray.put(open("model.pyrt", "rb").read())        # the file's bytes, once, in the object store
    scored = ds.map_batches(pyruntime.ray.Predictor, fn_constructor_kwargs={"model": ref},
                            compute=ray.data.ActorPoolStrategy(size=4), num_cpus=1, batch_size=4096,
                            batch_format="numpy")           # concurrency=4 before Ray 2.51

Each of the 4 actors loads the model once, from bytes (no file is needed on the workers), with as many
threads as Ray gave it CPUs (``num_cpus``), and adds the model's outputs to every batch as new columns; the
other columns (ids, labels) pass through unchanged, row for row. The outputs are those of
``pyruntime.load(data).run(x)``, bit for bit when batches start at multiples of 64 rows (the runtime's
chunk: a sample in a shorter tail chunk may differ in the last bit), whatever the thread count.

Needs Ray Data: ``pip install "pyruntime[ray]"``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._model import Model, load

_WHO = "pyruntime.ray.Predictor"


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise ImportError(f'pyruntime.ray needs Ray: pip install "pyruntime[ray]" ({e})') from None
    return ray


def affinity_cpus() -> int:
    """CPUs this process may run on (its affinity mask; the CPU count where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def worker_threads() -> int:
    """Threads for a model in this process: the CPUs Ray assigned to the current actor or task (its
    ``num_cpus``, a fraction rounded down, at least 1); outside a Ray worker, or for one given no CPU,
    the CPUs of the process's affinity mask."""
    try:
        import ray

        assigned = ray.get_runtime_context().get_assigned_resources() if ray.is_initialized() else {}
    except Exception:  # noqa: BLE001 - the driver, an older Ray: fall back to the affinity mask
        assigned = {}
    cpus = float(assigned.get("CPU", 0.0))
    if cpus > 0.0:
        return max(1, int(cpus))
    return affinity_cpus()


def _model_data(ray: Any, model: Any) -> Any:
    """The bytes (or path) to load from: ``model=`` itself, or what its ObjectRef holds."""
    if isinstance(model, ray.ObjectRef):
        data = ray.get(model)
        if isinstance(data, np.ndarray) and data.dtype == np.uint8:
            data = memoryview(np.ascontiguousarray(data).reshape(-1))
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"{_WHO}: model= is an ObjectRef to a {type(data).__name__}, expected the bytes "
                            "of a .pyrt file (ray.put(data))")
        return data
    if isinstance(model, (bytes, bytearray, memoryview, str, os.PathLike)):
        return model
    hint = " (pass its file's bytes)" if isinstance(model, Model) else ""
    raise TypeError(f"{_WHO}: model= takes the bytes of a .pyrt file, a ray.ObjectRef to them or a path, got "
                    f"{type(model).__name__}{hint}")


def _names(value: str | Sequence[str] | None, what: str, count: int) -> list[str] | None:
    if value is None:
        return None
    names = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(n, str) for n in names) or len(names) != count:
        plural = "s" if count != 1 else ""
        raise ValueError(f"{_WHO}: {what}= takes {count} column name{plural} (one per model {what[:-1]}), "
                         f"got {value!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{_WHO}: {what}= names a column twice: {value!r}")
    return names



def _shape_text(shape: Sequence[Any]) -> str:
    return "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"


class Predictor:
    """Runs a .pyrt model over Ray Data batches: ``ds.map_batches(Predictor, fn_constructor_kwargs={"model":
    ...}, compute=ray.data.ActorPoolStrategy(size=...), batch_format="numpy")``.

    ``model``: the bytes of a .pyrt file, a ``ray.ObjectRef`` to them (``ray.put(data)``: stored once,
    shared by every actor), or a path that every worker can read.

    ``inputs``: the column feeding each model input, in the order of ``Model.inputs`` (a name, or a list
    of one per input). Default for a model of one input: the column ``"x"``, else ``"input"``, else the
    batch's only column; for several inputs, the columns named as the model's inputs (``"input0"``, ...).

    ``outputs``: the column to write each model output to (a name, or one per output). Default: the model's
    output names, ``"output"`` for a model of one output, ``"output0"``, ... for several. A name the batch
    already has is refused.

    ``threads``: threads of the model's runs. Default: the CPUs Ray assigned to the actor (``num_cpus`` of
    ``map_batches``, 1 unless set), or, outside Ray, the process's CPUs (``worker_threads``).

    ``keep_inputs=False`` drops the input columns from the result (less data for Ray to move on).

    A batch is a dict of column -> numpy array, batch first (``batch_format="numpy"``); an f32 input takes
    float32 columns only (cast the dataset, the runtime does not round float64 for you), an i32 input
    integer ones.
    """

    def __init__(self, model: Any, *, inputs: str | Sequence[str] | None = None,
                 outputs: str | Sequence[str] | None = None, threads: int | None = None,
                 keep_inputs: bool = True) -> None:
        ray = _import_ray()
        data = _model_data(ray, model)
        self.threads = worker_threads() if threads is None else threads
        self.model = load(data, threads=self.threads)
        self._specs = self.model.inputs
        self._inputs = _names(inputs, "inputs", len(self._specs))
        self.outputs = _names(outputs, "outputs", len(self.model.outputs)) or [
            o["name"] for o in self.model.outputs]
        self.keep_inputs = bool(keep_inputs)

    def input_columns(self, columns: Sequence[str]) -> list[str]:
        """The columns that feed the model's inputs, for a batch of ``columns``."""
        have = ", ".join(map(repr, columns))
        if self._inputs is not None:
            missing = ", ".join(repr(c) for c in self._inputs if c not in columns)
            if missing:
                raise ValueError(f"{_WHO}: the batch has no column {missing} (its columns: {have})")
            return self._inputs
        if len(self._specs) == 1:
            for name in ("x", "input"):
                if name in columns:
                    return [name]
            if len(columns) == 1:
                return [columns[0]]
            raise ValueError(f"{_WHO}: no input column: the batch has {have}, none named 'x' or 'input'; "
                             "pass inputs='<column>'")
        names = [s["name"] for s in self._specs]
        missing = ", ".join(repr(n) for n in names if n not in columns)
        if missing:
            raise ValueError(f"{_WHO}: the model takes {len(names)} inputs and the batch has no column "
                             f"{missing} (its columns: {have}); pass inputs=[<column per model input>]")
        return names

    def _check(self, column: str, x: Any, spec: dict[str, Any]) -> None:
        """One column against one model input; the error names the column and what the input takes."""
        takes = f"the model's input {spec['name']!r} takes {spec['dtype']} {_shape_text(spec['shape'])}"
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{_WHO}: column {column!r} is a {type(x).__name__}, not a numpy array; pass "
                            "batch_format='numpy' to map_batches")
        if x.dtype == object:
            raise ValueError(f"{_WHO}: column {column!r} holds objects (rows of different shapes?); {takes}")
        want = tuple(spec["shape"][1:])
        if x.shape[1:] != want:
            raise ValueError(f"{_WHO}: column {column!r} has rows of shape {x.shape[1:]}; {takes}")
        ok = x.dtype.kind in "iu" if spec["dtype"] == "int32" else x.dtype == np.float32
        if not ok:
            raise ValueError(f"{_WHO}: column {column!r} is {x.dtype}; {takes}")

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(batch, Mapping):
            raise TypeError(f"{_WHO} takes numpy batches (a dict of column -> array), got "
                            f"{type(batch).__name__}: pass batch_format='numpy' to map_batches")
        columns = list(batch)
        used = self.input_columns(columns)
        xs = [batch[c] for c in used]
        for column, x, spec in zip(used, xs, self._specs, strict=True):
            self._check(column, x, spec)
        ys = self.model.run(*xs)
        ys = ys if isinstance(ys, tuple) else (ys,)
        out = {k: v for k, v in batch.items() if self.keep_inputs or k not in used}
        for name, y in zip(self.outputs, ys, strict=True):
            if name in out:
                raise ValueError(f"{_WHO}: the batch already has a column {name!r}; pass outputs= another "
                                 "name")
            out[name] = y
        return out

    def __repr__(self) -> str:
        return f"<{_WHO} threads={self.threads} outputs={self.outputs} model={self.model!r}>"


__all__ = ["Predictor", "affinity_cpus", "worker_threads"]
