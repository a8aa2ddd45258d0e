"""Loading and running .pyrt models."""
from __future__ import annotations

import json
import os
from typing import Any, Union

import numpy as np

from . import _core

PathOrBytes = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]


class Model:
    """A loaded, validated, immutable model. Call it (or ``run``) with float32 numpy arrays, batch first."""

    def __init__(self, core: _core.Model) -> None:
        self._core = core

    @property
    def inputs(self) -> list[dict[str, Any]]:
        """One entry per graph input: name, shape (``None`` for the batch dimension) and dtype."""
        return [{"name": "input", "shape": (None, *self._core.input_shape), "dtype": "float32"}]

    @property
    def outputs(self) -> list[dict[str, Any]]:
        return [{"name": "output", "shape": (None, *self._core.output_shape), "dtype": "float32"}]

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

    def run(self, x: np.ndarray) -> np.ndarray:
        """Runs a batch: ``x`` has shape ``(batch, *input_shape)`` and dtype float32."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"input must be a numpy array, got {type(x).__name__}")
        return self._core.run(x)

    __call__ = run

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
             f"{r['predicted_s'] * 1e6:.1f}"]
            for r in rows
        ]
        table.append(["total (file)", "", "", "", "", "", "", f"{self.file_bytes}",
                      f"{total_dense / max(1, self.file_bytes):.1f}x", f"{sum(r['predicted_s'] for r in rows) * 1e6:.1f}"])
        out = format_table(["layer", "encoding", "layout", "shape", "nonzeros", "density", "bits", "bytes", "vs fp32",
                            f"us@b{batch} (pred)"], table)
        why = [f"  {r['layer']}: {r['why']}" for r in rows if r["why"]]
        return out + ("\nwhy this encoding:\n" + "\n".join(why) if why else "")

    def __repr__(self) -> str:
        return (f"<pyruntime.Model input={self.inputs[0]['shape']} output={self.outputs[0]['shape']} "
                f"layers={len(self._core.layers)} file_bytes={self.file_bytes}>")


def _predict(model: Any, layer: dict[str, Any], batch: int, threads: int) -> float:
    """The cost model's seconds for one call of a weighted layer. A conv is costed as its im2col GEMMs:
    per group, the group's rows against one patch per output position and sample (an estimate for
    convs that run as direct sparse convolutions, whose kernels the cost model does not calibrate)."""
    shape = tuple(layer["shape"])
    rows, cols = int(shape[0]), int(np.prod(shape[1:]))
    nnz, k, nbytes = int(layer["nnz"]), int(layer["codebook_size"]), int(layer["exec_bytes"])
    if layer["op"] != "conv2d":
        return model.seconds(layer["encoding"], rows, cols, nnz, k, batch=batch, threads=threads, nbytes=nbytes)
    groups = max(1, int(layer.get("groups", 1)))
    positions = int(np.prod(layer["output_shape"][1:]))
    per_group = model.seconds(layer["encoding"], max(1, rows // groups), cols, max(1, nnz // groups), k,
                              batch=batch * positions, threads=threads, nbytes=max(1, nbytes // groups))
    return groups * per_group


def _weight_layer_name(tensor_name: str) -> str:
    """'fc1.weight' -> 'fc1' (the converter names a layer's weight tensor '<layer>.weight')."""
    return tensor_name.removesuffix(".weight")


def load(source: PathOrBytes, *, mmap: bool = False, threads: int = 1) -> Model:
    """Loads a model from a file path or from the bytes of a .pyrt file.

    The file is validated in full (checksums, sizes, graph) before anything is built, and its
    entropy-coded streams are decoded once into execution layouts. Raises ``pyruntime.FormatError``
    for a bad file (whatever is wrong with it, a newer format version included) and ``OSError`` if
    the path cannot be read.

    ``mmap=True`` (paths only) maps the file instead of reading it. When dense float32 tensors make
    up at least half of the file, they are used in place, without a copy, and the mapping lives as
    long as the model (``in_place_bytes`` says how much): the file must then not be rewritten or
    truncated while the model is alive. Compressed layers are decoded into memory either way, so for
    a compressed model the mapping is released before ``load`` returns.

    ``threads`` is how many threads a run may use, the caller's included: 1 (default) runs on the
    calling thread only, 0 uses one per hardware thread. The pool is started here and kept with the
    model; layers large enough to pay for it are split across it (rows at batch 1, samples above).
    """
    if not isinstance(threads, int) or isinstance(threads, bool) or not 0 <= threads <= 1024:
        raise ValueError(f"threads must be an int in 0..1024 (0: one per hardware thread), got {threads!r}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        if mmap:
            raise ValueError("mmap=True needs a file path, not bytes")
        return Model(_core.Model.from_bytes(source, threads=threads))
    if isinstance(source, (str, os.PathLike)):
        return Model(_core.Model.from_file(os.fspath(source), mmap=bool(mmap), threads=threads))
    raise TypeError(f"load() takes a path or bytes, got {type(source).__name__}")
