"""Loading and running .pyrt models."""
from __future__ import annotations

import json
import math
import os
from typing import Any, Union

import numpy as np

from . import _core

PathOrBytes = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]


class Model:
    """A loaded, validated, immutable model. Call it (or ``run``) with one numpy array per input, batch first:
    float32 for an f32 input, integers for an i32 input (token ids)."""

    def __init__(self, core: _core.Model) -> None:
        self._core = core

    @property
    def inputs(self) -> list[dict[str, Any]]:
        """One entry per graph input: name, shape (``None`` for the batch dimension) and dtype (``float32``, or
        ``int32`` for token ids: any integer array is taken)."""
        shapes, types = self._core.input_shapes, self._core.input_types
        names = ["input"] if len(shapes) == 1 else [f"input{k}" for k in range(len(shapes))]
        return [{"name": n, "shape": (None, *s), "dtype": "int32" if t == "i32" else "float32"}
                for n, s, t in zip(names, shapes, types, strict=True)]

    @property
    def outputs(self) -> list[dict[str, Any]]:
        """One entry per graph output (always float32)."""
        shapes = self._core.output_shapes
        names = ["output"] if len(shapes) == 1 else [f"output{k}" for k in range(len(shapes))]
        return [{"name": n, "shape": (None, *s), "dtype": "float32"} for n, s in zip(names, shapes, strict=True)]

    @property
    def file_bytes(self) -> int:
        """Size of the model file this model was loaded from."""
        return int(self._core.file_bytes)

    @property
    def in_place_bytes(self) -> int:
        """Bytes of weights read in place from a memory-mapped file (``load(path, mmap=True)``), else 0."""
        return int(self._core.in_place_bytes)

    @property
    def threads(self) -> int:
        """Threads a run may use, the caller's included (``load(..., threads=)``)."""
        return int(self._core.threads)

    @property
    def metadata(self) -> str:
        return str(self._core.metadata)

    @property
    def weight_bytes(self) -> int:
        """Bytes of all weights and biases in their execution layouts (what the loaded model holds)."""
        return int(self._core.weight_bytes)

    @property
    def work(self) -> int:
        """Operations one sample costs, roughly: multiply-adds of the linear and conv layers (stored weights
        times output positions), inputs read by the pools, elements written by the other ops. A model that
        loads always runs, but a small file can describe a lot of work (``load(..., max_work=)``)."""
        return int(self._core.work)

    def arena_bytes(self, batch: int = 1) -> int:
        """Bytes of activation memory (the arena) one run of ``batch`` samples needs. ``run`` computes a
        batch in pieces whose arena fits in 64 MiB when a sample allows, and keeps at most that much
        between calls, so this is what a call costs at most ``min(batch, piece)`` samples at a time."""
        if not isinstance(batch, int) or isinstance(batch, bool):
            raise TypeError(f"batch must be an int, got {type(batch).__name__}")
        return int(self._core.arena_bytes(batch))

    def run(self, *inputs: np.ndarray) -> Any:
        """Runs a batch: one array per graph input (``inputs``), each of shape ``(batch, *shape)``, float32
        or, for an i32 input, integers (ids outside int32 are refused). Returns the output array, or a tuple
        of one per output for a model of several.

        An input may be a numpy array or any CPU array exposing DLPack or ``__array__`` (a torch tensor,
        or a JAX array on the CPU): DLPack is read in place, without a copy, where the layout is
        C-contiguous. The dtype is not converted: float64 is refused as numpy's other dtypes are, since a
        silent cast would hide a mistake and copy the batch (``x.astype(np.float32)``).

        The outputs are the same, bit for bit, whatever the ``threads`` of ``load``. Activations live in an
        arena: a batch whose arena exceeds 64 MiB runs in pieces that fit (whole chunks of 64 samples, so
        the results do not change), and the model keeps at most 64 MiB of arena between calls.
        """
        return self._core.run(*(as_array(x, "input" if len(inputs) == 1 else f"input {k}")
                                for k, x in enumerate(inputs)))

    __call__ = run

    def profile(self, x: Any, seconds: float = 1.0) -> list[dict[str, Any]]:
        """Where the time of a run on ``x`` (an array, or a tuple of one per input) goes: runs it for about ``seconds`` with every step timed and
        returns one row per step in run order (graph nodes and the plan's type conversions): node, op,
        layer, encoding, method, output shape, mean ``seconds`` per run and ``share`` of the total.
        ``print(pyruntime.profile_text(rows))`` shows them as a table; ``pyruntime bench --per-layer``
        does both from the command line."""
        from ._profile import profile_rows

        return profile_rows(self._core, x, seconds)

    def layers(self) -> list[dict[str, Any]]:
        """Per layer: op, weight name, encoding, shape, nnz, bits, file/exec/dense bytes."""
        return list(self._core.layers)

    def summary(self, batch: int = 1, threads: int | None = None, cost_model: Any = None) -> list[dict[str, Any]]:
        """Per layer with weights: encoding and execution layout, shape, nonzeros, bits, bytes in the file
        and in memory, ratio vs dense fp32, the cost model's predicted seconds per call at ``batch`` on
        ``threads`` (default: the model's) threads, and why the converter chose the encoding (``why``;
        empty for files from other writers).

        ``print(model.summary_text())`` shows it as a table.
        """
        from .cost import default_cost_model

        model = cost_model or default_cost_model()
        threads = self.threads if threads is None else int(threads)
        why = self._choice_reasons()
        rows = []
        for layer in self._core.layers:
            if not layer["encoding"]:
                continue
            dense = layer["dense_bytes"]
            shape = tuple(layer["shape"])
            rows_, cols = int(shape[0]), int(np.prod(shape[1:]))
            rows.append(
                {
                    "layer": layer["name"],
                    "op": layer["op"],
                    "encoding": layer["encoding"],
                    "layout": layer["layout"],
                    "method": layer["method"],
                    "shape": shape,
                    "nonzeros": int(layer["nnz"]),
                    "density": layer["nnz"] / max(1, rows_ * cols),
                    "bits": int(layer["bits"]),
                    "codebook_size": int(layer["codebook_size"]),
                    "bytes": int(layer["file_bytes"]),
                    "exec_bytes": int(layer["exec_bytes"]),
                    "dense_bytes": int(dense),
                    "ratio": dense / max(1, layer["file_bytes"]),
                    "predicted_s": _predict(model, layer, batch, threads),
                    "why": why.get(_weight_layer_name(layer["name"]), ""),
                }
            )
        return rows

    def _choice_reasons(self) -> dict[str, str]:
        try:
            meta = json.loads(self.metadata)
            reasons = meta["encoding_choice"]["why"]
        except (ValueError, KeyError, TypeError):
            return {}
        return {str(k): str(v) for k, v in reasons.items()} if isinstance(reasons, dict) else {}

    def summary_text(self, batch: int = 1, threads: int | None = None) -> str:
        from ._report import format_table

        rows = self.summary(batch=batch, threads=threads)
        total_dense = sum(r["dense_bytes"] for r in rows)
        table = [
            [r["layer"], r["encoding"], r["layout"], "x".join(map(str, r["shape"])), f"{r['nonzeros']}",
             f"{100 * r['density']:.1f}%", str(r["bits"]), f"{r['bytes']}", f"{r['ratio']:.1f}x",
             _us(r["predicted_s"])]
            for r in rows
        ]
        table.append(["total (file)", "", "", "", "", "", "", f"{self.file_bytes}",
                      f"{total_dense / max(1, self.file_bytes):.1f}x", _us(sum(r["predicted_s"] for r in rows))])
        out = format_table(["layer", "encoding", "layout", "shape", "nonzeros", "density", "bits", "bytes", "vs fp32",
                            f"us@b{batch} (pred)"], table)
        why = [f"  {r['layer']}: {r['why']}" for r in rows if r["why"]]
        out += ("\nwhy this encoding:\n" + "\n".join(why) if why else "")
        return out + "\n" + self.cost_text(batch)

    def cost_text(self, batch: int = 1) -> str:
        """Memory and work of a run, as ``summary_text`` and ``pyruntime inspect`` end with them."""
        mapped = (f", {_bytes_text(self.in_place_bytes)} of them read in place from the mapped file "
                  "(it must not be truncated or rewritten while the model lives)") if self.in_place_bytes else ""
        return (f"memory: weights {_bytes_text(self.weight_bytes)}{mapped}; activation arena "
                f"{_bytes_text(self.arena_bytes(batch))} at batch {batch}\n"
                f"work: {self.work:,} operations per sample")

    def __repr__(self) -> str:
        return (f"<pyruntime.Model input={self.inputs[0]['shape']} output={self.outputs[0]['shape']} "
                f"layers={len(self._core.layers)} file_bytes={self.file_bytes}>")


def as_array(x: Any, who: str = "input") -> np.ndarray:
    """``x`` as a numpy array without copying where possible: an ndarray as it is; an object exposing
    DLPack (a torch tensor...) through ``np.from_dlpack`` (in place), on the CPU only; else ``__array__``.
    Raises TypeError naming ``who`` for anything else (a list: its dtype would be a guess)."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "__dlpack__"):
        device = getattr(x, "__dlpack_device__", None)
        if device is not None and int(device()[0]) not in (1, 3):  # kDLCPU, kDLCUDAHost
            raise TypeError(f"{who} is a {type(x).__name__} on device {getattr(x, 'device', device())}; "
                            "the runtime reads CPU memory: move it to the CPU first (x.cpu())")
        if getattr(x, "requires_grad", False):
            raise TypeError(f"{who} is a {type(x).__name__} that requires grad: pass x.detach()")
        try:
            return np.from_dlpack(x)
        except (BufferError, RuntimeError, TypeError) as e:
            if not hasattr(x, "__array__"):
                raise TypeError(f"{who}: {type(x).__name__} cannot be read through DLPack: {e}") from None
    if hasattr(x, "__array__"):
        return np.asarray(x)
    raise TypeError(f"{who} must be a numpy array (or a CPU array exposing DLPack or __array__), "
                    f"got {type(x).__name__}")


def _predict(model: Any, layer: dict[str, Any], batch: int, threads: int) -> float:
    """The cost model's seconds for one call of a weighted layer; a conv by the method it runs by, as the
    converter prices it (:func:`pyruntime.cost.conv.layer_seconds`)."""
    shape = tuple(layer["shape"])
    rows, cols = int(shape[0]), int(np.prod(shape[1:]))
    nnz, k, nbytes = int(layer["nnz"]), int(layer["codebook_size"]), int(layer["exec_bytes"])
    if not model.knows(layer["encoding"], k):
        return float("nan")  # a kernel class the profile has no timings for (an older profile)
    if layer["op"] not in ("conv2d", "qconv2d"):
        if layer["encoding"] == "csr+int8" and layer.get("steps"):
            from .cost.layouts import i8_p128_bytes_of_steps

            nbytes = i8_p128_bytes_of_steps(rows, cols, layer["steps"])  # the steps, stored masked or not
        return model.seconds(layer["encoding"], rows, cols, nnz, k, batch=batch, threads=threads, nbytes=nbytes)
    from .cost.conv import layer_seconds

    return layer_seconds(model, layer, batch, threads)


def _us(seconds: float) -> str:
    """Microseconds with one decimal; "-" where the cost model has no prediction."""
    return "-" if math.isnan(seconds) else f"{seconds * 1e6:.1f}"


def _bytes_text(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.2f} {unit} ({n:,} bytes)"
    return f"{n} bytes"


def _weight_layer_name(tensor_name: str) -> str:
    """'fc1.weight' -> 'fc1' (the converter names a layer's weight tensor '<layer>.weight')."""
    return tensor_name.removesuffix(".weight")


def load(
    source: PathOrBytes,
    *,
    mmap: bool = False,
    threads: int = 1,
    max_memory: int | None = None,
    max_work: int | None = None,
) -> Model:
    """Loads a model from a file path or from the bytes of a .pyrt file.

    The file is validated in full (checksums, sizes, graph) before anything is built, and its
    entropy-coded streams are decoded once into execution layouts. Raises ``pyruntime.FormatError``
    for a bad file (whatever is wrong with it, a newer format version included), ``OSError`` if
    the path cannot be read, and ``ValueError`` for a path with a null byte.

    ``mmap=True`` (paths only): the file is still read, validated and decoded from memory (so that
    nothing can fault while it loads); then, when dense float32 tensors make up at least half of it,
    the file is memory-mapped and those tensors are used in place, without a copy, for as long as the
    model lives (``in_place_bytes`` says how much; 0 means no mapping was kept). **The file must then
    not be truncated or rewritten in place while the model is alive**: a truncated file kills the
    process with SIGBUS at the next ``run``, and a rewritten one changes its weights. Replace a model
    file by writing a new file and renaming it over the old one; the mapping keeps the old file.

    ``threads`` is how many threads a run may use, the caller's included: 1 (default) runs on the
    calling thread only, 0 uses one per hardware thread. The pool is started here and kept with the
    model; layers large enough to pay for it are split across it. The outputs are bit-identical for
    every thread count.

    ``max_memory`` (bytes) and ``max_work`` (operations per sample, ``Model.work``) refuse, with a
    ``ValueError`` naming both figures, a model whose weights plus batch-1 activation arena, or whose
    work, exceed them: a small file can describe a network that needs gigabytes or hours.
    """
    if not isinstance(threads, int) or isinstance(threads, bool) or not 0 <= threads <= 1024:
        raise ValueError(f"threads must be an int in 0..1024 (0: one per hardware thread), got {threads!r}")
    for name, value in (("max_memory", max_memory), ("max_work", max_work)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ValueError(f"{name} must be None or an int >= 0, got {value!r}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        if mmap:
            raise ValueError("mmap=True needs a file path, not bytes")
        model = Model(_core.Model.from_bytes(source, threads=threads))
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if "\0" in path:
            raise ValueError(f"embedded null byte in the path {path!r}")
        model = Model(_core.Model.from_file(path, mmap=bool(mmap), threads=threads))
    else:
        raise TypeError(f"load() takes a path or bytes, got {type(source).__name__}")
    _check_budget(model, max_memory, max_work)
    return model


def _check_budget(model: Model, max_memory: int | None, max_work: int | None) -> None:
    if max_memory is not None:
        need = model.weight_bytes + model.arena_bytes(1)
        if need > max_memory:
            raise ValueError(
                f"the model needs {_bytes_text(need)} at batch 1 (weights {_bytes_text(model.weight_bytes)}, "
                f"activation arena {_bytes_text(model.arena_bytes(1))}), more than max_memory={max_memory:,}")
    if max_work is not None and model.work > max_work:
        raise ValueError(f"the model costs {model.work:,} operations per sample, more than max_work={max_work:,}")
