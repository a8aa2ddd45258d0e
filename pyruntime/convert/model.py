"""CompressedModel (a converted graph + encoded tensors) and the numpy builder ``from_numpy``.

Layer list accepted by :func:`from_numpy` (also what the torch capture produces), one tuple per op::

    ("flatten",)                       (batch, *shape) -> (batch, prod(shape))
    ("linear", W, b)                   W: (out, in) like torch.nn.Linear, b: (out,) or None
    ("linear", W, b, "fc1")            ... with a layer name (default "fc<i>", counting linears from 1)
    ("relu",)
    ("softmax",)                       over the features of a flat input

Compression is applied per linear layer, in Deep Compression's order: prune (``sparsity``), share
(``bits``), then pick the smallest encoding. Both settings take a number for every layer or a
mapping layer-name -> number (a missing name or ``None`` leaves that layer alone).
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import _core
from ..cost import CostModel
from .choose import Objective
from .encode import TensorDict, decode_tensor, dense_tensor, encode_layer, nonzeros
from .prune import PerLayer, check_layer_names, magnitude_mask, per_layer

SUPPORTED_OPS = ("flatten", "linear", "relu", "softmax")


@dataclass(frozen=True)
class LayerReport:
    """Compression of one linear layer (weight + bias) in the file."""

    name: str
    encoding: str
    shape: tuple[int, ...]
    nonzeros: int
    bits: int                 # bits per stored value: codebook index bits, or 32 for f32 values
    file_bytes: int           # weight + bias tensors in the file (headers included)
    dense_bytes: int          # the same as dense fp32
    candidate_bytes: dict[str, int]  # weight tensor bytes of every candidate encoding
    predicted_seconds: dict[str, float] = field(default_factory=dict)  # per candidate, at the objective's batch
    why: str = ""             # why this encoding (the objective, the numbers it compared)

    @property
    def density(self) -> float:
        return self.nonzeros / max(1, int(np.prod(self.shape)))

    @property
    def ratio(self) -> float:
        return self.dense_bytes / max(1, self.file_bytes)


class CompressedModel:
    """A converted network: graph, encoded tensors, and a per-layer report. Immutable once built.

    ``to_bytes()``/``save(path)`` write the .pyrt file (through the C++ writer), ``load()`` runs it in
    the runtime, ``dense_weights()`` gives the weights the runtime computes with, for parity checks.
    """

    def __init__(self, input_shape: Sequence[int], nodes: list[dict[str, Any]], tensors: list[TensorDict],
                 layers: list[LayerReport], metadata: dict[str, Any] | None = None) -> None:
        self.input_shape = tuple(int(s) for s in input_shape)
        self._nodes = nodes
        self._tensors = tensors
        self.layers = layers
        self.metadata = dict(metadata or {})
        self._bytes: bytes | None = None

    # -- file -----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The model dict of ``pyruntime._core.write_model`` (input_shape, nodes, tensors, metadata)."""
        return {
            "input_shape": list(self.input_shape),
            "nodes": [dict(n) for n in self._nodes],
            "tensors": [dict(t) for t in self._tensors],
            "metadata": json.dumps(self.metadata, sort_keys=True),
        }

    def to_bytes(self) -> bytes:
        """The .pyrt file contents."""
        if self._bytes is None:
            self._bytes = bytes(_core.write_model(self.to_dict()))
        return self._bytes

    def save(self, path: str | os.PathLike[str]) -> int:
        """Writes the .pyrt file; returns its size in bytes."""
        data = self.to_bytes()
        with open(path, "wb") as f:
            f.write(data)
        return len(data)

    def load(self):  # -> pyruntime.Model
        """Loads the model into the runtime (from the bytes, no file needed)."""
        from .._model import load

        return load(self.to_bytes())

    # -- sizes ----------------------------------------------------------------------------------------
    @property
    def file_bytes(self) -> int:
        return len(self.to_bytes())

    @property
    def dense_bytes(self) -> int:
        """Size of all weights and biases as dense fp32."""
        return sum(r.dense_bytes for r in self.layers)

    @property
    def ratio(self) -> float:
        """Dense fp32 parameter bytes / file bytes (the whole file: header, graph, checksums included)."""
        return self.dense_bytes / max(1, self.file_bytes)

    def report(self) -> str:
        """A text table, one row per linear layer, plus the whole file."""
        from .._report import format_table

        rows = [[r.name, r.encoding, "x".join(map(str, r.shape)), str(r.nonzeros), f"{100 * r.density:.1f}%",
                 str(r.bits), str(r.file_bytes), str(r.dense_bytes), f"{r.ratio:.1f}x"] for r in self.layers]
        rows.append(["total (file)", "", "", str(sum(r.nonzeros for r in self.layers)), "", "",
                     str(self.file_bytes), str(self.dense_bytes), f"{self.ratio:.1f}x"])
        table = format_table(["layer", "encoding", "shape", "nonzeros", "density", "bits", "bytes", "dense bytes",
                              "ratio"], rows)
        why = [f"  {r.name}: {r.encoding}: {r.why}" for r in self.layers if r.why]
        return table + ("\nencoding choice:\n" + "\n".join(why) if why else "")

    def report_rows(self) -> list[dict[str, Any]]:
        """The report as dicts (with ``density`` and ``ratio``)."""
        return [{**asdict(r), "density": r.density, "ratio": r.ratio} for r in self.layers]

    # -- weights --------------------------------------------------------------------------------------
    def dense_weights(self) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        """Per linear layer name: ``(W, b)`` as dense float32, exactly the compressed weights
        (pruned zeros, shared values) the runtime computes with."""
        out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        names = iter(r.name for r in self.layers)
        for n in self._nodes:
            if n["op"] != "linear":
                continue
            t = n["tensors"]
            w = decode_tensor(self._tensors[t[0]])
            b = decode_tensor(self._tensors[t[1]]) if len(t) > 1 else None
            out[next(names)] = (w, b)
        return out

    def run_numpy(self, x: np.ndarray) -> np.ndarray:
        """A plain numpy forward pass over :meth:`dense_weights` (float64 accumulation): a reference."""
        weights = iter(self.dense_weights().values())
        values = [np.asarray(x, dtype=np.float64)]
        for n in self._nodes:
            v = values[n["inputs"][0]]
            op = n["op"]
            if op == "flatten":
                y = v.reshape(v.shape[0], -1)
            elif op == "linear":
                w, b = next(weights)
                y = v @ w.astype(np.float64).T + (0 if b is None else b.astype(np.float64))
            elif op == "relu":
                y = np.maximum(v, 0)
            else:
                e = np.exp(v - v.max(axis=-1, keepdims=True))
                y = e / e.sum(axis=-1, keepdims=True)
            values.append(y)
        return values[-1].astype(np.float32)

    def __repr__(self) -> str:
        return (f"<CompressedModel input={self.input_shape} layers={len(self.layers)} "
                f"file_bytes={self.file_bytes} ratio={self.ratio:.1f}x>")


def _unsupported(msg: str) -> Exception:
    return _core.UnsupportedError(msg)


def from_numpy(
    layers: Sequence[tuple],
    input_shape: Sequence[int],
    *,
    sparsity: PerLayer = None,
    bits: PerLayer = None,
    masks: dict[str, np.ndarray] | None = None,
    metadata: dict[str, Any] | None = None,
    optimize: str = "size",
    batch: int = 1,
    threads: int = 1,
    size_budget: float | None = None,
    speed_budget: float | None = None,
    cost_model: CostModel | None = None,
) -> CompressedModel:
    """Builds a :class:`CompressedModel` from a layer list (see the module docstring).

    ``input_shape`` excludes the batch dimension. ``sparsity=None`` keeps the zeros already in the
    weights; a number (or per-layer mapping) prunes that fraction by magnitude. ``bits=None`` keeps the
    fp32 values; a number (or mapping) shares each layer's surviving weights among ``2**bits``
    k-means centroids. ``masks`` (layer name -> boolean array) marks weights that were pruned (False)
    even if their value is not zero. Biases stay dense fp32.

    Each weight tensor is stored in the encoding the objective prefers among those that represent it
    exactly (:mod:`pyruntime.convert.choose`): ``optimize="size"`` (default) the smallest file, within
    ``speed_budget`` (a factor over the fastest candidate's predicted time) if given;
    ``optimize="speed"`` the fastest at ``batch`` samples on ``threads`` threads, within
    ``size_budget`` (a factor over the smallest candidate's file bytes) if given. Times come from
    ``cost_model`` (default :func:`pyruntime.cost.default_cost_model`). The choice and its reason are
    in the layer reports and in the file's metadata, where ``Model.summary()`` finds them.
    """
    objective = Objective(optimize=optimize, batch=batch, threads=threads, size_budget=size_budget,
                          speed_budget=speed_budget)
    if cost_model is None:
        from ..cost import default_cost_model

        cost_model = default_cost_model()
    input_shape = [int(s) for s in input_shape]
    if not input_shape or any(s <= 0 for s in input_shape):
        raise ValueError(f"input_shape must be the non-empty shape of one sample, got {input_shape}")
    names: list[str] = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, (tuple, list)) or not layer or not isinstance(layer[0], str):
            raise TypeError(f"layer {i}: expected a tuple like ('linear', W, b), got {layer!r}")
        if layer[0] == "linear":
            names.append(str(layer[3]) if len(layer) > 3 else f"fc{len(names) + 1}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate layer names {names}")
    check_layer_names(sparsity, names, "sparsity")
    check_layer_names(bits, names, "bits")
    if masks:
        check_layer_names(masks, names, "masks")

    nodes: list[dict[str, Any]] = []
    tensors: list[TensorDict] = []
    reports: list[LayerReport] = []
    shape = list(input_shape)
    lin = 0
    for i, layer in enumerate(layers):
        op = layer[0]
        node: dict[str, Any] = {"op": op, "inputs": [i], "tensors": []}
        if op == "flatten":
            shape = [int(np.prod(shape))]
        elif op in ("relu", "softmax"):
            if op == "softmax" and len(shape) != 1:
                raise _unsupported(f"layer {i} (softmax): input shape {tuple(shape)} is not flat; the runtime "
                                   "takes softmax over the features of a flat input (add a flatten before it)")
        elif op == "linear":
            if len(layer) not in (3, 4):
                raise TypeError(f"layer {i}: expected ('linear', W, b[, name]), got {len(layer)} items")
            name = names[lin]
            lin += 1
            w = np.asarray(layer[1], dtype=np.float32)
            b = None if layer[2] is None else np.asarray(layer[2], dtype=np.float32).ravel()
            if w.ndim != 2:
                raise ValueError(f"layer '{name}': weight must be 2-D (out, in), got shape {w.shape}")
            if len(shape) != 1:
                raise _unsupported(f"layer '{name}' (linear): input shape {tuple(shape)} is not flat "
                                   "(add a flatten before it)")
            if w.shape[1] != shape[0]:
                raise ValueError(f"layer '{name}': weight {w.shape} expects {w.shape[1]} inputs, "
                                 f"the input has {shape[0]}")
            if b is not None and b.shape != (w.shape[0],):
                raise ValueError(f"layer '{name}': bias {b.shape} does not match {w.shape[0]} outputs")
            if not np.all(np.isfinite(w)) or (b is not None and not np.all(np.isfinite(b))):
                raise ValueError(f"layer '{name}': weights contain NaN or infinity")
            report, wt, bt = _compress_linear(name, w, b, per_layer(sparsity, name, "sparsity"),
                                              per_layer(bits, name, "bits"), (masks or {}).get(name),
                                              objective, cost_model)
            node["tensors"] = [len(tensors)] + ([len(tensors) + 1] if bt is not None else [])
            tensors.append(wt)
            if bt is not None:
                tensors.append(bt)
            reports.append(report)
            shape = [int(w.shape[0])]
        else:
            raise _unsupported(f"layer {i}: unsupported op '{op}' (supported: {', '.join(SUPPORTED_OPS)})")
        nodes.append(node)
    if not nodes:
        raise ValueError("a model needs at least one layer")
    meta = {"producer": "pyruntime.convert", "layers": [r.name for r in reports],
            "encoding_choice": {**objective.to_dict(), "cost_model": cost_model.name,
                                "why": {r.name: r.why for r in reports}}}
    meta.update(metadata or {})
    return CompressedModel(input_shape, nodes, tensors, reports, meta)


def _compress_linear(name: str, w: np.ndarray, b: np.ndarray | None, sparsity: float | None, bits: int | None,
                     mask: np.ndarray | None, objective: Objective,
                     cost_model: CostModel) -> tuple[LayerReport, TensorDict, TensorDict | None]:
    keep = (w != 0) if mask is None else (np.asarray(mask, dtype=bool) & (w != 0))
    if keep.shape != w.shape:
        raise ValueError(f"layer '{name}': mask shape {keep.shape} differs from weight shape {w.shape}")
    if sparsity is not None:
        keep &= magnitude_mask(np.where(keep, w, 0), float(sparsity))
    w = np.where(keep, w, np.float32(0)).astype(np.float32)
    wt, choice = encode_layer(f"{name}.weight", w, bits=None if bits is None else int(bits), mask=keep,
                              objective=objective, cost_model=cost_model, return_choice=True)
    sizes = choice.file_bytes
    bt = dense_tensor(f"{name}.bias", b) if b is not None else None
    file_bytes = sizes[wt["encoding"]] + (int(_core.encoded_tensor_bytes(bt)) if bt is not None else 0)
    n_bias = 0 if b is None else b.size
    report = LayerReport(
        name=name, encoding=wt["encoding"], shape=tuple(int(s) for s in w.shape), nonzeros=nonzeros(wt),
        bits=int(wt["index_bits"]) if "index_bits" in wt else 32, file_bytes=file_bytes,
        dense_bytes=4 * (w.size + n_bias), candidate_bytes=sizes, predicted_seconds=choice.seconds, why=choice.why)
    return report, wt, bt
