"""Whole networks: compressed SqueezeNet v1.0, ResNet-18 and MobileNet-V2 in pyruntime against the same dense
fp32 network in torch and ONNX Runtime, and torch's dynamic int8, in the same run (bench/nets.py builds the
networks and their compressed .pyrt files).

Each (variant, batch, threads) is one pytest-benchmark group, e.g. "net-resnet18-4bit-b1-t1", batch 1 and 8,
threads 1 and os.cpu_count(). Members:

  pyruntime           the variant's .pyrt file (pruned + k-means shared, nets.VARIANTS), pyruntime.load(data,
                      threads=n), model.run(x) from the float32 numpy input
  torch-fp32          the dense fp32 module (batch norms unfolded, as a user runs it),
                      torch.set_num_threads(n), under torch.inference_mode()
  ort-fp32            ONNX Runtime on torch.onnx.export of the dense module (the TorchScript exporter,
                      dynamo=False: the dynamo one needs onnxscript; dynamic batch, opset 17; ORT's default
                      graph optimizations fold the batch norms), intra_op_num_threads n, inter_op 1,
                      sequential execution
  torch-dynamic-int8  torch.ao.quantization.quantize_dynamic of the dense module's nn.Linear layers (qint8;
                      the convs stay fp32), torch.set_num_threads(n); skipped for SqueezeNet (no Linear)

The peers run the uncompressed network (what a user of those tools runs today); pyruntime runs the compressed
one. Before it is timed, every member is checked once: pyruntime against float64 torch computing with the
weights the .pyrt file holds (read back from it), the peers against the float64 dense module (max |y - ref| /
max |ref| <= 1e-3, 5e-2 for dynamic int8). A member whose package is missing is skipped with the reason; so
is a variant that fails to convert or load (the converter's message).

"n threads" is enforced for every member with harness.thread_limit (torch.set_num_threads and threadpoolctl's
limit on OpenBLAS / OpenMP, where threadpoolctl is installed) plus the member's own setting.

extra_info: kind="net", method, peer, net, variant, batch, threads, isa (pyruntime's active ISA), error, tol,
model_bytes (the member's model: .pyrt file, ONNX file, the torch module's fp32 parameters; None for int8),
file_bytes (the variant's .pyrt) and dense_fp32_bytes (the folded network's weights and biases as fp32),
sparsity, bits, density, encodings, convert_seconds (the first conversion's, also when read from the cache),
cached.

Timing: max_time TIMING_MAX_TIME, min_rounds TIMING_MIN_ROUNDS unless given on the command line.

    pytest bench/test_nets.py --benchmark-disable -q                 # every member checked once, no timing
    pytest bench/test_nets.py --benchmark-json=nets.json && python bench/nets_report.py nets.json
    pytest bench/test_nets.py -k "squeezenet-8bit-b1-t1-" --benchmark-json=nets.json   # one group
"""

from __future__ import annotations

import copy
import os
import tempfile
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

ort, ORT_UNAVAILABLE = harness.onnxruntime_peer()

THREADS = sorted({1, os.cpu_count() or 1})
BATCHES = (1, 8)
METHODS = ("pyruntime", "torch-fp32", "ort-fp32", "torch-dynamic-int8")
TIMING_MAX_TIME = 0.3
TIMING_MIN_ROUNDS = 3
FP32_TOL = 1e-3
INT8_TOL = 5e-2  # int8 weights and inputs of the Linear layers: ~1e-2 of the output scale


def group_name(variant: str, batch: int, threads: int) -> str:
    return f"net-{variant}-b{batch}-t{threads}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.name != "test_net":
        return
    marks = harness.timing_marks(metafunc.config, TIMING_MAX_TIME, TIMING_MIN_ROUNDS)
    params = [pytest.param(v, b, t, m, id=f"{v}-b{b}-t{t}-{m}", marks=marks)
              for v in nets.VARIANTS for b in BATCHES for t in THREADS for m in METHODS]
    metafunc.parametrize("variant,batch,threads,method", params)


# --------------------------------------------------------------------------------------------------
# One network's peers, one variant's pyruntime models (one of each in memory at a time)


@dataclass
class NetBundle:
    name: str
    module: nn.Module  # dense fp32, eval mode
    x: dict[int, np.ndarray] = field(default_factory=dict)  # batch -> input
    refs: dict[int, np.ndarray] = field(default_factory=dict)  # batch -> float64 output of the dense module
    tmp: Any = None  # TemporaryDirectory of the ONNX file
    onnx_skip: str | None = None
    sessions: dict[int, Any] = field(default_factory=dict)  # threads -> ORT InferenceSession
    int8: Any = None  # quantize_dynamic'd copy of module
    int8_skip: str | None = None

    def input(self, batch: int) -> np.ndarray:
        if batch not in self.x:
            self.x[batch] = nets.example_input(batch)
        return self.x[batch]

    def reference(self, batch: int) -> np.ndarray:
        if batch not in self.refs:
            self.refs[batch] = nets.torch_forward(self.module, self.input(batch))
        return self.refs[batch]

    def onnx_path(self) -> Path:
        return Path(self.tmp.name) / f"{self.name}.onnx"

    def session(self, threads: int) -> Any:
        if self.onnx_skip is None and self.tmp is None:
            self._export()
        if self.onnx_skip:
            pytest.skip(self.onnx_skip)
        if threads not in self.sessions:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            opts.log_severity_level = 3
            self.sessions[threads] = ort.InferenceSession(str(self.onnx_path()), opts,
                                                          providers=["CPUExecutionProvider"])
        return self.sessions[threads]

    def _export(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="pyrt-bench-onnx-")
        try:
            with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
                warnings.simplefilter("ignore")
                torch.onnx.export(copy.deepcopy(self.module), torch.zeros(1, *nets.INPUT_SHAPE),
                                  str(self.onnx_path()), dynamo=False, opset_version=17, input_names=["x"],
                                  output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
        except Exception as e:  # noqa: BLE001 - any exporter failure skips the ORT member with its message
            self.onnx_skip = f"torch.onnx.export of {self.name} failed: {type(e).__name__}: {e}"

    def int8_module(self) -> Any:
        if self.int8 is None and self.int8_skip is None:
            if harness.quantize_dynamic is None:
                self.int8_skip = harness.INT8_UNAVAILABLE
            elif not any(isinstance(m, nn.Linear) for m in self.module.modules()):
                self.int8_skip = (f"{self.name} has no nn.Linear layer: quantize_dynamic would leave it all "
                                  "fp32 (torch-fp32 is that)")
            else:
                with warnings.catch_warnings():  # torch.ao's deprecation notices
                    warnings.simplefilter("ignore")
                    self.int8 = harness.quantize_dynamic(copy.deepcopy(self.module), {nn.Linear},
                                                         dtype=torch.qint8).eval()
        if self.int8_skip:
            pytest.skip(self.int8_skip)
        return self.int8

    def close(self) -> None:
        self.sessions.clear()
        if self.tmp is not None:
            self.tmp.cleanup()


@dataclass
class VariantBundle:
    name: str
    compressed: Any = None  # nets.Compressed
    skip: str | None = None  # why the variant cannot run in pyruntime
    models: dict[int, Any] = field(default_factory=dict)  # threads -> pyruntime.Model
    refs: dict[int, np.ndarray] = field(default_factory=dict)  # batch -> float64 torch, compressed weights

    def model(self, threads: int) -> Any:
        if threads not in self.models:
            self.models[threads] = pyruntime.load(self.compressed.data, threads=threads)
        return self.models[threads]

    def reference(self, net: NetBundle, batch: int) -> np.ndarray:
        if batch not in self.refs:
            module = nets.compressed_module(net.module, self.compressed.data)
            self.refs[batch] = nets.torch_forward(module, net.input(batch))
        return self.refs[batch]


_net: dict[str, NetBundle] = {}
_variant: dict[str, VariantBundle] = {}


def net_bundle(name: str) -> NetBundle:
    if name not in _net:
        for old in _net.values():
            old.close()
        _net.clear()
        _net[name] = NetBundle(name, nets.build_net(name))
    return _net[name]


def variant_bundle(name: str, net: NetBundle) -> VariantBundle:
    if name not in _variant:
        _variant.clear()
        vb = VariantBundle(name)
        try:  # convert (or read the cache), load and run once: a failure skips the variant with its reason
            vb.compressed = nets.compressed(name, net.module)
            vb.model(1).run(net.input(1))
        except (ValueError, RuntimeError) as e:  # UnsupportedError and FormatError are ValueErrors
            vb.skip = f"{name}: pyruntime could not convert, load or run it: {type(e).__name__}: {e}"
        _variant[name] = vb
    return _variant[name]


# --------------------------------------------------------------------------------------------------
# The benchmark


def test_net(benchmark, variant: str, batch: int, threads: int, method: str) -> None:
    if method == "ort-fp32" and ORT_UNAVAILABLE:
        pytest.skip(ORT_UNAVAILABLE)
    v = nets.VARIANTS[variant]
    net = net_bundle(v.net)
    vb = variant_bundle(variant, net)
    x = net.input(batch)
    peer = method.split("-")[0]
    tol, model_bytes = FP32_TOL, None
    info = vb.compressed.info if vb.compressed is not None else {}
    fn: Callable[[], Any]
    if method == "pyruntime":
        if vb.skip:
            pytest.skip(vb.skip)
        model = vb.model(threads)
        ref, model_bytes, peer = vb.reference(net, batch), len(vb.compressed.data), "pyrt"
        fn = lambda: model.run(x)
    elif method == "ort-fp32":
        sess, feed = net.session(threads), {"x": x}
        ref, model_bytes = net.reference(batch), net.onnx_path().stat().st_size
        fn = lambda: sess.run(None, feed)[0]
    else:
        module = net.module if method == "torch-fp32" else net.int8_module()
        tx, ref = torch.from_numpy(x), net.reference(batch)
        if method == "torch-fp32":
            model_bytes = nets.module_fp32_bytes(net.module)
        else:
            tol = INT8_TOL

        def fn():
            with torch.inference_mode():
                return module(tx)

    with harness.thread_limit(threads):
        out = fn()
        err = nets.normalized_error(out.numpy() if hasattr(out, "numpy") else out, ref)
        assert err <= tol, f"{method} on {variant} batch {batch}: normalized max error {err:.3g} > {tol}"
        benchmark.group = group_name(variant, batch, threads)
        benchmark.extra_info.update(
            kind="net", method=method, peer=peer, net=v.net, variant=variant, batch=batch, threads=threads,
            isa=_core.active_isa(), error=err, tol=tol, model_bytes=model_bytes,
            file_bytes=info.get("file_bytes"), dense_fp32_bytes=info.get("dense_fp32_bytes"),
            sparsity=v.sparsity, bits=v.bits, density=(info["nonzeros"] / info["weights"]) if info else None,
            encodings=info.get("encodings"), convert_seconds=info.get("convert_seconds"),
            cached=vb.compressed.cached if vb.compressed is not None else None)
        benchmark(fn)
