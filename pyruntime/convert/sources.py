"""Model files by kind, for ``pyruntime convert``: what a file holds, and its conversion.

A file is recognised by its content, not its name (a name can lie; the error names both):

  onnx          an ONNX ModelProto                        -> :func:`pyruntime.convert.from_onnx`
  torch.export  a ``torch.export.save`` archive (.pt2)     -> its ExportedProgram, exported to ONNX by torch's
                                                             own exporter, then :func:`from_onnx`
  torchscript   a ``torch.jit.save`` archive               -> exported to ONNX by torch's TorchScript exporter
                                                             (needs ``input_shapes``), then :func:`from_onnx`
  torch pickle  a ``torch.save(module)`` file              -> :func:`pyruntime.convert.from_torch`, only with
                                                             ``trust_pickle=True``: unpickling runs code
                                                             from the file
  state_dict    ``torch.save(module.state_dict())``        refused: it holds weights without the network
  pyrt / npy / npz / other                                 refused, one line saying what the file is

Every front end builds the same :class:`~pyruntime.convert.graph.Graph` through one of two captures (torch.fx
for live modules, ONNX for files that carry their own graph), so an op is added once per capture.
"""
from __future__ import annotations

import io
import logging
import os
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PYRT_MAGIC = b"PYRT\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"

_PICKLE_RISK = ("loading it runs code stored in the file (torch.load(weights_only=False)); pass "
                "--trust-pickle (trust_pickle=True) only for a file you trust, or export the module to ONNX "
                "(torch.onnx.export) or torch.export (.pt2) and convert that")


def sniff(path: str | os.PathLike[str]) -> str:
    """What the file at ``path`` holds: "pyrt", "npy", "npz", "onnx", "torch.export", "torchscript",
    "torch-pickle" (a torch.save zip, a module or a state_dict), "pickle" (a legacy torch.save / plain
    pickle) or "unknown"."""
    p = Path(path)
    with open(p, "rb") as f:
        head = f.read(16)
    if head.startswith(PYRT_MAGIC):
        return "pyrt"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(p) as z:
                names = z.namelist()
        except zipfile.BadZipFile:
            return "unknown"
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        base = {n.split("/", 1)[1] if "/" in n else n for n in names}
        if any(n.endswith("serialized_exported_program.json") or n.startswith("models/") and n.endswith(".json")
               or n == "archive_format" for n in base) or "archive_format" in names:
            return "torch.export"
        if "constants.pkl" in base and any(n.startswith("code/") for n in base):
            return "torchscript"
        if "data.pkl" in base:
            return "torch-pickle"
        return "unknown"
    if head[:1] == b"\x80":  # pickle protocol 2+: torch.save(..., _use_new_zipfile_serialization=False)
        return "pickle"
    if p.suffix.lower() == ".onnx" or _looks_like_onnx(p):
        return "onnx"
    return "unknown"


def _looks_like_onnx(p: Path) -> bool:
    """A ModelProto starts with field 1 (ir_version, varint: 0x08) and names its producer or graph soon after."""
    with open(p, "rb") as f:
        head = f.read(4096)
    return head[:1] == b"\x08" and (b"pytorch" in head or b"onnx" in head.lower() or b"\x3a" in head[:64])


def parse_shape(text: str, what: str = "--input-shape") -> tuple[tuple[int, ...], str]:
    """A per-sample input shape as the command line gives it: ``784``, ``1,28,28``, ``1x28x28`` or ``(1, 28, 28)``;
    a suffix ``:int`` (or ``:i32`` / ``:int64``) makes it an input of token ids. Returns (shape, "f32" | "i32").
    Raises ValueError naming ``what`` and the expected form."""
    body, _, kind = str(text).strip().partition(":")
    kind = kind.strip().lower()
    if kind not in ("", "f32", "float", "float32", "int", "i32", "int32", "int64", "ids"):
        raise ValueError(f"{what} {text!r}: unknown input type {kind!r} (use :int for token ids, or nothing)")
    cleaned = body.strip().strip("()[]").replace("x", ",").replace("X", ",").replace(" ", ",")
    parts = [s for s in cleaned.split(",") if s]
    try:
        shape = tuple(int(s) for s in parts)
    except ValueError:
        shape = ()
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f"{what} {text!r}: expected the per-sample sizes without the batch, positive integers "
                         "such as 784 or 1,28,28 (or 1x28x28); add :int for an input of token ids")
    return shape, ("i32" if kind in ("int", "i32", "int32", "int64", "ids") else "f32")


def _examples(input_shapes: Sequence[tuple[tuple[int, ...], str]]) -> Any:
    import torch

    xs = [torch.zeros((1, *s), dtype=torch.int64 if t == "i32" else torch.float32) for s, t in input_shapes]
    return xs[0] if len(xs) == 1 else tuple(xs)


def _need_torch(kind: str) -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError(f"converting a {kind} file needs PyTorch: pip install 'pyruntime[torch]'") from None
    return torch


def _onnx_bytes_of(program: Any, args: Any, kind: str) -> bytes:
    """``program`` (an ExportedProgram, or a ScriptModule with its example ``args``) as ONNX bytes, by torch's
    own exporter."""
    torch = _need_torch(kind)
    buf = io.BytesIO()
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)  # the exporter logs a line per torchvision op it skips
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecations inside torch's exporters, not the user's to act on
            if kind == "torch.export":
                onnx_program = torch.onnx.export(program, (), dynamo=True, verbose=False)
                return onnx_program.model_proto.SerializeToString()
            torch.onnx.export(program, args, buf, dynamo=False, opset_version=17)
    except ImportError as e:
        raise ImportError(f"exporting a {kind} program to ONNX needs {e.name or 'onnxscript'}: "
                          "pip install 'pyruntime[onnx]'") from None
    finally:
        log.setLevel(level)
    return buf.getvalue()


def convert_file(path: str | os.PathLike[str], *, input_shapes: Sequence[tuple[tuple[int, ...], str]] | None = None,
                 trust_pickle: bool = False, **options: Any) -> Any:
    """Converts the model file at ``path`` (any kind :func:`sniff` names as convertible) with the compression
    ``options`` of :func:`pyruntime.convert.from_torch`. ``input_shapes``: one (per-sample shape, "f32" | "i32")
    per input, needed for torch files (ONNX and torch.export files carry their own). Raises ValueError with
    one line for a file that is not a model, or a pickle without ``trust_pickle``."""
    from . import from_torch

    def from_onnx(model: Any, **kw: Any) -> Any:
        from . import from_onnx as convert_onnx

        return convert_onnx(model, **kw)

    p = Path(path)
    kind = sniff(p)
    name = p.name
    if kind == "pyrt":
        raise ValueError(f"{name} is already a .pyrt model: run it (pyruntime run), or inspect it")
    if kind in ("npy", "npz"):
        raise ValueError(f"{name} is a numpy .{kind} file (arrays), not a model")
    if kind == "onnx":
        return from_onnx(p, **options)
    if kind == "torch.export":
        torch = _need_torch(kind)
        program = torch.export.load(str(p))
        return from_onnx(_onnx_bytes_of(program, (), kind), **options)
    if kind == "torchscript":
        torch = _need_torch(kind)
        if not input_shapes:
            raise ValueError(f"{name} is a TorchScript file: give --input-shape (input_shapes=) to export it")
        module = torch.jit.load(str(p), map_location="cpu").eval()
        return from_onnx(_onnx_bytes_of(module, _examples(input_shapes), kind), **options)
    if kind in ("torch-pickle", "pickle"):
        if not trust_pickle:
            raise ValueError(f"{name} is a pickled torch file: {_PICKLE_RISK}")
        torch = _need_torch("torch pickle")
        module = torch.load(str(p), weights_only=False, map_location="cpu")
        if isinstance(module, dict):
            raise ValueError(f"{name} holds a state_dict (weights without the network): save the whole module "
                             "(torch.save(model, path)), or export it (torch.onnx.export / torch.export)")
        if not isinstance(module, torch.nn.Module):
            raise ValueError(f"{name} holds a {type(module).__name__}, not a torch.nn.Module")
        if not input_shapes:
            raise ValueError(f"{name} is a torch module: give --input-shape (the per-sample shape, e.g. 1,28,28)")
        module.eval()
        return from_torch(module, _examples(input_shapes), **options)
    raise ValueError(f"{name}: not a model file this converter knows (ONNX .onnx, torch.export .pt2, TorchScript, "
                     "or a torch.save'd module)")
