"""BERT-base (bert-base-uncased's configuration, 110 M parameters, random weights), sequence length 128, batch 1:
pyruntime's dense and compressed forms against torch and ONNX Runtime, fp32 and dynamic int8, in the same run.

The network is tests/convert/torch_models.py's BertModel (Hugging Face's BertModel, module for module, eager
attention), weights from a fixed seed with BERT's initializer range (N(0, 0.02)); the input is 128 random
token ids with an all-ones attention mask. One pytest-benchmark group per thread count, "bert-base-s128-b1-t1"
and "...-t<os.cpu_count()>". Members:

  pyrt-dense          from_torch(model, (ids, mask)): fp32 weights (every layer stored dense)
  pyrt-s80-4bit       sparsity=0.8, bits=4: every Linear and embedding table magnitude-pruned to 20% density,
                      layer by layer (unstructured), the survivors shared among 16 k-means centroids
  pyrt-s90-4bit       sparsity=0.9, bits=4
  pyrt-s90-int8       sparsity=0.9, quantize="int8": the Linear layers' survivors int8 (dynamic activation
                      scales), the embedding tables pruned and fp32
  torch-fp32          the module, under torch.inference_mode()
  ort-fp32            ONNX Runtime on torch.onnx.export of the module (TorchScript exporter, opset 17, static
                      shapes; ORT's default optimizations fuse attention, LayerNorm and GELU)
  torch-dynamic-int8  torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8)
  ort-dynamic-int8    onnxruntime.quantization.quantize_dynamic of that ONNX file (QInt8 weights)

Every pyruntime member runs ``pyruntime.load(data, threads=n).run(ids, mask)``; every member runs under
harness.thread_limit(n) (torch.set_num_threads, threadpoolctl) plus its own setting (ORT intra_op_num_threads
n, inter_op 1, sequential). Before it is timed each member is checked once, both outputs (sequence, pooled):
pyrt-dense and the fp32 peers against torch fp32 (max |y - ref| / max |ref| <= FP32_TOL), the int8 peers
against torch fp32 (INT8_TOL), the compressed pyruntime members against the converter's float64 reference of
their own weights (``cm.run_numpy``, computed at conversion and cached beside the file; FP32_TOL, INT8_TOL for
pyrt-s90-int8: the float32 run and the float64 reference quantize some activations to neighbouring steps), their
distance from torch fp32 recorded as ``error_vs_torch`` (random weights pruned to 10% give another function:
only trained-and-fine-tuned pruning keeps accuracy, which these timings do not depend on).

Conversion of BERT-base (pruning and k-means over 110 M weights) is slow: the .pyrt files are cached as
bench/nets.py caches its networks (PYRT_BENCH_CACHE, default a folder under the system temp dir), keyed by the
variant's settings, the network's weights and structure, the converter's source and pyruntime's version; a
JSON beside each keeps the conversion time and the report, an .npz the reference outputs.

extra_info: kind="bert", method, peer, variant, threads, isa, error, tol, error_vs_torch, model_bytes (the
member's file: .pyrt, .onnx, torch.save of the module's state_dict), checkpoint_bytes (every parameter as
fp32), sparsity, bits, quantize, density, encodings, convert_seconds, cached.

    pytest bench/test_bert.py --benchmark-disable -q                  # every member checked once, no timing
    pytest bench/test_bert.py --benchmark-json=bert.json && python bench/bert_report.py bert.json
    pytest bench/test_bert.py -k "t1-" --benchmark-json=bert.json     # one thread only
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import harness
import nets
from torch import nn

import pyruntime
from pyruntime import _core
from pyruntime.convert import from_torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "convert"))
import torch_models as tm

ort, ORT_UNAVAILABLE = harness.onnxruntime_peer()

SEED = 20240612
TOKENS = 128
BATCH = 1
THREADS = sorted({1, os.cpu_count() or 1})
# Bump when the network's forward changes in a way its weights and repr() do not show (the cache key).
BERT_REVISION = 1
FP32_TOL = 1e-3
# torch's and ORT's dynamic int8 Linear layers (per-tensor weights, per-call activation scales) against torch
# fp32, and pyrt-s90-int8 against its float64 reference: through 12 layers, a few 1e-2 of the output's scale on
# these weights. (pyruntime's int8 is not within FP32_TOL of its reference: an activation that the float32 run
# and the float64 reference round to neighbouring int8 steps moves a Linear's output row by about
# max|x| / (127 sqrt(768)) of its scale, ~1e-3, and 12 quantized layers compound a few of those.)
INT8_TOL = 1e-1
TIMING_MAX_TIME = 1.0
TIMING_MIN_ROUNDS = 3


@dataclass(frozen=True)
class Variant:
    name: str
    sparsity: float | None = None
    bits: int | None = None
    quantize: str | None = None

    def settings(self) -> dict[str, Any]:
        return {k: v for k, v in (("sparsity", self.sparsity), ("bits", self.bits), ("quantize", self.quantize))
                if v is not None}


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("pyrt-dense"),
    Variant("pyrt-s80-4bit", 0.8, 4),
    Variant("pyrt-s90-4bit", 0.9, 4),
    Variant("pyrt-s90-int8", 0.9, quantize="int8"),
)}
PEERS = ("torch-fp32", "ort-fp32", "torch-dynamic-int8", "ort-dynamic-int8")
METHODS = (*VARIANTS, *PEERS)


def group_name(threads: int) -> str:
    return f"bert-base-s{TOKENS}-b{BATCH}-t{threads}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.name != "test_bert":
        return
    marks = harness.timing_marks(metafunc.config, TIMING_MAX_TIME, TIMING_MIN_ROUNDS)
    params = [pytest.param(t, m, id=f"t{t}-{m}", marks=marks) for t in THREADS for m in METHODS]
    metafunc.parametrize("threads,method", params)


# --------------------------------------------------------------------------------------------------
# The network, its inputs, its peers


def build_bert() -> nn.Module:
    return tm.randomize(tm.bert_base(), SEED)


def example_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """128 token ids (int64) and an all-ones int64 attention mask, batch 1."""
    return tm.bert_inputs(BATCH, TOKENS, 30522, seed=SEED)


def normalized_error(got: tuple, ref: tuple) -> float:
    """The larger of the two outputs' max |got - ref| / max |ref|."""
    return max(nets.normalized_error(np.asarray(g), np.asarray(r, dtype=np.float64))
               for g, r in zip(got, ref, strict=True))


def _np_outputs(out: Any) -> tuple[np.ndarray, ...]:
    return tuple(o.numpy() if hasattr(o, "numpy") else np.asarray(o) for o in out)


@dataclass
class Bundle:
    """The dense module and everything built from it, once per session."""

    module: nn.Module
    ids: torch.Tensor
    mask: torch.Tensor
    ref: tuple[np.ndarray, np.ndarray] = ()  # type: ignore[assignment]  # torch fp32 outputs
    digest: str = ""
    tmp: Any = None  # TemporaryDirectory of the ONNX files
    onnx_skip: str | None = None  # why the ORT members cannot run
    ort_int8_skip: str | None = None  # why the ORT int8 member cannot run
    sessions: dict[tuple[str, int], Any] = field(default_factory=dict)  # (fp32 / int8, threads) -> session
    int8: Any = None
    int8_skip: str | None = None
    variants: dict[str, VariantBundle] = field(default_factory=dict)

    @property
    def feed_np(self) -> tuple[np.ndarray, np.ndarray]:
        """The inputs as pyruntime takes them: the model's inputs have the example's types (integer ids, an
        integer mask)."""
        return self.ids.numpy(), self.mask.numpy()

    @property
    def checkpoint_bytes(self) -> int:
        return tm.fp32_bytes(self.module)

    def onnx_path(self, kind: str) -> Path:
        return Path(self.tmp.name) / f"bert-{kind}.onnx"

    def session(self, kind: str, threads: int) -> Any:
        if ORT_UNAVAILABLE:
            pytest.skip(ORT_UNAVAILABLE)
        if self.tmp is None and self.onnx_skip is None:
            self._export()
        if self.onnx_skip:
            pytest.skip(self.onnx_skip)
        if kind == "int8" and self.ort_int8_skip:
            pytest.skip(self.ort_int8_skip)
        if (kind, threads) not in self.sessions:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            opts.log_severity_level = 3
            self.sessions[(kind, threads)] = ort.InferenceSession(str(self.onnx_path(kind)), opts,
                                                                  providers=["CPUExecutionProvider"])
        return self.sessions[(kind, threads)]

    def _export(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="pyrt-bench-bert-onnx-")
        try:
            with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
                warnings.simplefilter("ignore")
                torch.onnx.export(copy.deepcopy(self.module), (self.ids, self.mask), str(self.onnx_path("fp32")),
                                  dynamo=False, opset_version=17, input_names=["input_ids", "attention_mask"],
                                  output_names=["sequence_output", "pooled_output"])
        except Exception as e:  # noqa: BLE001 - any exporter failure skips the ORT members with its message
            self.onnx_skip = f"torch.onnx.export of BERT-base failed: {type(e).__name__}: {e}"
            return
        try:
            from onnxruntime.quantization import QuantType
            from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

            ort_quantize_dynamic(str(self.onnx_path("fp32")), str(self.onnx_path("int8")),
                                 weight_type=QuantType.QInt8)
        except Exception as e:  # noqa: BLE001 - the int8 member alone is skipped
            self.ort_int8_skip = f"onnxruntime quantize_dynamic failed: {type(e).__name__}: {e}"

    def ort_feed(self) -> dict[str, np.ndarray]:
        return {"input_ids": self.ids.numpy(), "attention_mask": self.mask.numpy()}

    def int8_module(self) -> Any:
        if self.int8 is None and self.int8_skip is None:
            if harness.quantize_dynamic is None:
                self.int8_skip = harness.INT8_UNAVAILABLE
            else:
                with warnings.catch_warnings():  # torch.ao's deprecation notices
                    warnings.simplefilter("ignore")
                    self.int8 = harness.quantize_dynamic(copy.deepcopy(self.module), {nn.Linear},
                                                         dtype=torch.qint8).eval()
        if self.int8_skip:
            pytest.skip(self.int8_skip)
        return self.int8


_bundle: list[Bundle] = []


def bundle() -> Bundle:
    if not _bundle:
        module = build_bert()
        ids, mask = example_inputs()
        with torch.inference_mode():
            ref = _np_outputs(module(ids, mask))
        _bundle.append(Bundle(module, ids, mask, ref, nets._net_digest(module)))
    return _bundle[0]


# --------------------------------------------------------------------------------------------------
# pyruntime's variants: converted once, cached on disk


def cache_key(v: Variant, b: Bundle) -> str:
    blob = json.dumps({"variant": v.name, "settings": v.settings(), "tokens": TOKENS, "seed": SEED,
                       "revision": BERT_REVISION, "pyruntime": pyruntime.__version__,
                       "format": _core.FORMAT_VERSION, "net": b.digest, "converter": nets._converter_digest()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class VariantBundle:
    variant: Variant
    data: bytes = b""
    info: dict[str, Any] = field(default_factory=dict)
    ref: tuple[np.ndarray, ...] = ()  # cm.run_numpy(ids, mask): the float64 reference of these weights
    cached: bool = False
    skip: str | None = None
    models: dict[int, Any] = field(default_factory=dict)  # threads -> pyruntime.Model

    def model(self, threads: int) -> Any:
        if threads not in self.models:
            self.models[threads] = pyruntime.load(self.data, threads=threads)
        return self.models[threads]


def convert(v: Variant, b: Bundle) -> tuple[bytes, dict[str, Any], tuple[np.ndarray, ...]]:
    t0 = time.perf_counter()
    cm = from_torch(b.module, (b.ids, b.mask), **v.settings())
    data = cm.to_bytes()
    seconds = time.perf_counter() - t0
    ref = cm.run_numpy(*b.feed_np)
    encodings: dict[str, int] = {}
    for r in cm.layers:
        encodings[r.encoding] = encodings.get(r.encoding, 0) + 1
    info = {"convert_seconds": seconds, "file_bytes": len(data), "dense_fp32_bytes": cm.dense_bytes,
            "nonzeros": sum(r.nonzeros for r in cm.layers),
            "weights": sum(int(np.prod(r.shape)) for r in cm.layers), "encodings": encodings,
            "report": cm.report(), **v.settings()}
    return data, info, tuple(ref)


def variant_bundle(name: str, b: Bundle) -> VariantBundle:
    if name in b.variants:
        return b.variants[name]
    v = VARIANTS[name]
    vb = VariantBundle(v)
    b.variants[name] = vb
    key = cache_key(v, b)
    path = nets.cache_dir() / f"bert-base-{name}-{key}.pyrt"
    meta, refs = path.with_suffix(".json"), path.with_suffix(".npz")
    try:
        if path.exists() and meta.exists() and refs.exists():
            with np.load(refs) as z:
                vb.ref = (z["sequence_output"], z["pooled_output"])
            vb.data, vb.info, vb.cached = path.read_bytes(), json.loads(meta.read_text()), True
        else:
            vb.data, vb.info, vb.ref = convert(v, b)
            vb.info["key"] = key
            path.parent.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            np.savez(buf, sequence_output=vb.ref[0], pooled_output=vb.ref[1])
            for p, content in ((path, vb.data), (meta, json.dumps(vb.info, indent=1).encode()),
                               (refs, buf.getvalue())):
                tmp = p.with_name(f"{p.name}.{os.getpid()}.tmp")
                tmp.write_bytes(content)
                os.replace(tmp, p)
        vb.model(1).run(*b.feed_np)
    except (ValueError, RuntimeError) as e:  # UnsupportedError and FormatError are ValueErrors
        vb.skip = f"{name}: pyruntime could not convert, load or run BERT-base: {type(e).__name__}: {e}"
    return vb


def state_dict_bytes(module: nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    return buf.tell()


# --------------------------------------------------------------------------------------------------
# The benchmark


def test_bert(benchmark, threads: int, method: str) -> None:
    b = bundle()
    ids, mask = b.feed_np
    tid, tmask = b.ids, b.mask
    tol, error_vs_torch, ref = FP32_TOL, None, b.ref
    info: dict[str, Any] = {}
    fn: Callable[[], Any]
    if method in VARIANTS:
        vb = variant_bundle(method, b)
        if vb.skip:
            pytest.skip(vb.skip)
        model, info = vb.model(threads), vb.info
        model_bytes, peer = len(vb.data), "pyrt"
        if method != "pyrt-dense":
            ref = vb.ref
        if VARIANTS[method].quantize:
            tol = INT8_TOL
        fn = lambda: model.run(ids, mask)
    elif method.startswith("ort-"):
        kind = "fp32" if method == "ort-fp32" else "int8"
        sess, feed = b.session(kind, threads), b.ort_feed()
        model_bytes, peer = b.onnx_path(kind).stat().st_size, method
        tol = FP32_TOL if kind == "fp32" else INT8_TOL
        fn = lambda: sess.run(None, feed)
    else:
        module = b.module if method == "torch-fp32" else b.int8_module()
        model_bytes, peer = state_dict_bytes(module), method
        tol = FP32_TOL if method == "torch-fp32" else INT8_TOL

        def fn():
            with torch.inference_mode():
                return module(tid, tmask)

    with harness.thread_limit(threads):
        out = _np_outputs(fn())
        err = normalized_error(out, ref)
        error_vs_torch = normalized_error(out, b.ref)
        assert err <= tol, f"{method}, {threads} threads: normalized max error {err:.3g} > {tol}"
        benchmark.group = group_name(threads)
        benchmark.extra_info.update(
            kind="bert", method=method, peer=peer, variant=method if method in VARIANTS else None,
            threads=threads, tokens=TOKENS, batch=BATCH, isa=_core.active_isa(), error=err, tol=tol,
            error_vs_torch=error_vs_torch, model_bytes=model_bytes, checkpoint_bytes=b.checkpoint_bytes,
            sparsity=info.get("sparsity"), bits=info.get("bits"), quantize=info.get("quantize"),
            density=(info["nonzeros"] / info["weights"]) if info else None, encodings=info.get("encodings"),
            convert_seconds=info.get("convert_seconds"),
            cached=b.variants[method].cached if method in VARIANTS else None)
        benchmark(fn)
