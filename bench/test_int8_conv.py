"""int8 convolutions: pyruntime's int8 / csr+int8 conv layers against torch fp32, ONNX Runtime (fp32 and
static int8, QLinearConv) and OpenVINO (fp32 and int8), one thread each, in the same run.

Each (layer, sparsity, batch) is one pytest-benchmark group, e.g. "int8conv-resnet20-16-s0.00-b1". Members:

  torch-fp32               torch.nn.functional.conv2d, torch.set_num_threads(1), under inference_mode
  ort-fp32                 ONNX Runtime, a one-Conv model, one intra-op thread
  ort-int8-static          onnxruntime.quantization.quantize_static of that model: QDQ format, per-channel
                           int8 weights, uint8 activations calibrated (MinMax, symmetric range) on CALIBRATION
                           random inputs and the benchmark's inputs (see CALIBRATION); ORT fuses it into
                           QLinearConv (the member fails if its optimized graph holds no int8 conv)
  openvino-fp32            OpenVINO compile_model of the fp32 model ("CPU", INFERENCE_NUM_THREADS 1, one
                           stream, INFERENCE_PRECISION_HINT f32: no bf16 on CPUs that have it), fixed batch
  openvino-int8            the same for ORT's QDQ model: OpenVINO runs its Convolution in u8 (checked from
                           the runtime model); both skipped with the reason when openvino is missing
  pyrt-int8-dynamic-<isa>  a one-conv2d pyruntime model from pyruntime.convert.from_numpy(quantize="dynamic")
                           (per-channel int8 weights, int8 or csr+int8 whichever is smaller, one activation
                           scale per sample at run time), Model.run at ISA level <isa> (amx, avx512vnni,
                           avx512, avx2: those this CPU has), 1 thread
  pyrt-int8-static-<isa>   the same with quantize="static", calibration=<ORT's calibration inputs>; skipped
                           with the converter's reason while it refuses static int8 for convolutions

The pruned cases (ResNet-20 layers at 50% and 80%, magnitude pruning) run dense in every peer; pyruntime
stores them as csr+int8 when that is smaller. Every member's output is checked against a float64 reference
conv (normalized max error <= TOL for int8, 1e-3 for fp32) before it is timed.

extra_info: kind="int8_conv" (bench/report.py leaves these rows alone; bench/int8_report.py reads them),
method, label, peer, quantize, isa, encoding, threads, layer, model, description, the geometry, groups,
sparsity, batch, nnz, macs (multiply-adds executed: nonzeros for csr+int8, every weight otherwise) and
dense_macs, error, file_bytes (pyruntime), int8_ops (ORT: the optimized graph's ops; OpenVINO: the
convolution's runtime precision).

Timing: max_time TIMING_MAX_TIME, min_rounds TIMING_MIN_ROUNDS per benchmark unless given on the command
line (harness.timing_marks). 297 benchmarks (27 groups of 11) take about 1.5 minutes on an idle core, about
20 s of which is building and checking (what --benchmark-disable takes).

    pytest bench/test_int8_conv.py --benchmark-json=int8conv.json && python bench/int8_report.py int8conv.json
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness import magnitude_prune, normalized_error, one_thread_at, timing_marks, torch

from pyruntime import _core
from pyruntime.convert import from_numpy

try:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
except ImportError as e:  # the ONNX Runtime and OpenVINO peers are skipped
    ort = None
    ORT_UNAVAILABLE: str | None = f"onnxruntime / onnx not installed ({e})"
else:
    ORT_UNAVAILABLE = None
try:
    import openvino as ov
except ImportError as e:
    ov = None
    OV_UNAVAILABLE: str | None = f"openvino not installed ({e})"
else:
    OV_UNAVAILABLE = None if ort is not None else "needs onnx / onnxruntime for the model files"

PYRT_ISAS = [i for i in ("amx", "avx512vnni", "avx512", "avx2", "neon_dot", "neon") if i in _core.supported_isas()]
TOL = 5e-2  # as test_int8.py: int8 weights and activations give ~1e-2 against the float64 conv
# Static int8 (pyruntime, ONNX Runtime, OpenVINO) is calibrated on CALIBRATION random inputs plus the
# benchmark's own inputs (all from one normal distribution). On random inputs alone, 8 or 32 of them, the
# largest output of a batch-8 input can exceed ORT's calibrated output range by 10-20%: saturated, 8-16%
# error, over TOL.
CALIBRATION = 8
TIMING_MAX_TIME = 0.15
TIMING_MIN_ROUNDS = 5
OV_CONFIG = {"INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
             "INFERENCE_PRECISION_HINT": "f32", "ENABLE_CPU_PINNING": False}


@dataclass(frozen=True)
class Int8ConvLayer:
    name: str
    model: str
    in_c: int
    out_c: int
    k: int
    in_hw: int
    stride: int = 1
    pad: int = 0
    groups: int = 1
    batches: tuple[int, ...] = (1, 8)
    sparsities: tuple[float, ...] = (0.0,)

    @property
    def out_hw(self) -> int:
        return (self.in_hw + 2 * self.pad - self.k) // self.stride + 1

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.out_c, self.in_c // self.groups, self.k, self.k)

    @property
    def description(self) -> str:
        """'144->144 3x3 s2 p1 g144 on 56x56 -> 28x28'."""
        tags = (("s", self.stride, 1), ("p", self.pad, 0), ("g", self.groups, 1))
        extra = "".join(f" {t}{v}" for t, v, default in tags if v != default)
        return (f"{self.in_c}->{self.out_c} {self.k}x{self.k}{extra} on {self.in_hw}x{self.in_hw}"
                f" -> {self.out_hw}x{self.out_hw}")


PRUNED = (0.0, 0.5, 0.8)
# LeNet-5 (LeCun's: conv1 6@5x5 on a padded 28x28 MNIST image, conv2 16@5x5 after a 2x2 pool), ResNet-20
# for CIFAR-10 (3x3 pad 1 at 16, 32, 64 channels; also pruned), MobileNet-V2 at 224x224 (expansion 1x1
# 32 -> 192 at 28x28, projection 1x1 96 -> 24 at 56x56, the 144-channel depthwise 3x3 at 56x56, stride 1
# and 2). Batch 8 too where a batch-1 call is under ~2.5 M multiply-adds.
LAYERS: tuple[Int8ConvLayer, ...] = (
    Int8ConvLayer("lenet5-conv1", "LeNet-5", 1, 6, 5, 28, pad=2),
    Int8ConvLayer("lenet5-conv2", "LeNet-5", 6, 16, 5, 14),
    Int8ConvLayer("resnet20-16", "ResNet-20", 16, 16, 3, 32, pad=1, sparsities=PRUNED),
    Int8ConvLayer("resnet20-32", "ResNet-20", 32, 32, 3, 16, pad=1, sparsities=PRUNED),
    Int8ConvLayer("resnet20-64", "ResNet-20", 64, 64, 3, 8, pad=1, sparsities=PRUNED),
    Int8ConvLayer("mobilenetv2-pw-32to192", "MobileNet-V2", 32, 192, 1, 28, batches=(1,)),
    Int8ConvLayer("mobilenetv2-pw-96to24", "MobileNet-V2", 96, 24, 1, 56, batches=(1,)),
    Int8ConvLayer("mobilenetv2-dw-144", "MobileNet-V2", 144, 144, 3, 56, pad=1, groups=144, batches=(1,)),
    Int8ConvLayer("mobilenetv2-dw-144-s2", "MobileNet-V2", 144, 144, 3, 56, stride=2, pad=1, groups=144),
)
CASES = [(lay, sp) for lay in LAYERS for sp in lay.sparsities]
METHODS = (["torch-fp32", "ort-fp32", "ort-int8-static", "openvino-fp32", "openvino-int8"]
           + [f"pyrt-int8-{q}-{i}" for q in ("dynamic", "static") for i in PYRT_ISAS])


def group_name(lay: Int8ConvLayer, sparsity: float, batch: int) -> str:
    return f"int8conv-{lay.name}-s{sparsity:.2f}-b{batch}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.name != "test_int8_conv":
        return
    marks = timing_marks(metafunc.config, TIMING_MAX_TIME, TIMING_MIN_ROUNDS)
    params = [pytest.param(lay, sp, bt, m, id=f"{lay.name}-s{sp:.2f}-b{bt}-{m}", marks=marks)
              for lay, sp in CASES for bt in lay.batches for m in METHODS]
    metafunc.parametrize("lay,sparsity,batch,method", params)


# --------------------------------------------------------------------------------------------------
# One case: weights, inputs, reference, every member's model


def conv_reference(lay: Int8ConvLayer, w: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """conv2d(x, w) + b in float64, one contraction per kernel tap: w [O, C/g, k, k], x [n, C, h, w]."""
    n, g, k, s, o = x.shape[0], lay.groups, lay.k, lay.stride, lay.out_hw
    cg, og, hp = lay.in_c // g, lay.out_c // g, lay.in_hw + 2 * lay.pad
    p = lay.pad
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p, p), (p, p))).reshape(n, g, cg, hp, hp)
    w64 = w.astype(np.float64).reshape(g, og, cg, k, k)
    acc = np.zeros((n, g, og, o, o))
    for ky in range(k):
        for kx in range(k):
            taps = xp[:, :, :, ky : ky + (o - 1) * s + 1 : s, kx : kx + (o - 1) * s + 1 : s]  # [n,g,cg,o,o]
            acc += np.einsum("ngcij,goc->ngoij", taps, w64[:, :, :, ky, kx], optimize=True)
    return acc.reshape(n, lay.out_c, o, o) + b.astype(np.float64)[:, None, None]


@contextlib.contextmanager
def _quiet():
    """quantize_static's advice to pre-process the model goes to the root logger at WARNING."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


@dataclass
class Built:
    lay: Int8ConvLayer
    sparsity: float
    w: np.ndarray
    b: np.ndarray
    x: dict[int, np.ndarray]  # batch -> [batch, C, H, W], the benchmark input
    calib: np.ndarray  # [CALIBRATION + sum(batches), C, H, W]
    refs: dict[int, np.ndarray] = field(default_factory=dict)
    pyrt: dict[str, Any] = field(default_factory=dict)  # "dynamic" / "static" -> (Model, LayerReport)
    pyrt_skip: dict[str, str] = field(default_factory=dict)  # why a mode could not be built
    ort: dict[str, Any] = field(default_factory=dict)  # "fp32" / "int8" -> InferenceSession
    ort_int8_ops: list[str] = field(default_factory=list)
    ov: dict[tuple[str, int], Any] = field(default_factory=dict)  # (kind, batch) -> (InferRequest, precision)
    tmp: Any = None  # TemporaryDirectory holding the ONNX files

    def reference(self, batch: int) -> np.ndarray:
        if batch not in self.refs:
            self.refs[batch] = conv_reference(self.lay, self.w, self.b, self.x[batch])
        return self.refs[batch]

    def onnx_path(self, kind: str) -> Path:
        return Path(self.tmp.name) / f"{kind}.onnx"

    def openvino(self, kind: str, batch: int) -> tuple[Any, str]:
        """OpenVINO's infer request for the fp32 or the QDQ int8 model at a fixed batch, and the runtime
        precision of its convolution."""
        if (kind, batch) not in self.ov:
            core = ov.Core()
            model = core.read_model(str(self.onnx_path(kind)))
            model.reshape([batch, self.lay.in_c, self.lay.in_hw, self.lay.in_hw])
            compiled = core.compile_model(model, "CPU", OV_CONFIG)
            prec = sorted({op.get_rt_info()["runtimePrecision"].astype(str)
                           for op in compiled.get_runtime_model().get_ops()
                           if op.get_rt_info()["layerType"].astype(str) == "Convolution"})
            self.ov[(kind, batch)] = (compiled.create_infer_request(), ",".join(prec))
        return self.ov[(kind, batch)]


_built: dict[tuple[str, float], Built] = {}


def _onnx_models(bt: Built) -> None:
    """Writes fp32.onnx (one Conv), int8.onnx (its QDQ static quantization) and opens both in ONNX Runtime."""
    lay = bt.lay
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[lay.k, lay.k],
                            strides=[lay.stride] * 2, pads=[lay.pad] * 4, group=lay.groups)
    graph = helper.make_graph(
        [node], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", lay.in_c, lay.in_hw, lay.in_hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", lay.out_c, lay.out_hw, lay.out_hw])],
        [numpy_helper.from_array(bt.w, "w"), numpy_helper.from_array(bt.b, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), bt.onnx_path("fp32"))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"x": bt.calib[i : i + 1]} for i in range(len(bt.calib))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    with _quiet():
        quantize_static(str(bt.onnx_path("fp32")), str(bt.onnx_path("int8")), Reader(),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, extra_options={"CalibTensorRangeSymmetric": True})
    for kind in ("fp32", "int8"):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # not the notice that the saved optimized model is hardware-specific
        if kind == "int8":
            opts.optimized_model_filepath = str(bt.onnx_path("int8-optimized"))
        bt.ort[kind] = ort.InferenceSession(str(bt.onnx_path(kind)), opts, providers=["CPUExecutionProvider"])
    bt.ort_int8_ops = [n.op_type for n in onnx.load(bt.onnx_path("int8-optimized")).graph.node]


def built(lay: Int8ConvLayer, sparsity: float) -> Built:
    key = (lay.name, sparsity)
    if key not in _built:
        for old in _built.values():  # one case in memory at a time
            if old.tmp is not None:
                old.tmp.cleanup()
        _built.clear()
        rng = np.random.default_rng(sum(map(ord, lay.name)) * 101 + int(sparsity * 100))
        fan_in = lay.in_c // lay.groups * lay.k * lay.k
        w = rng.standard_normal(lay.weight_shape, dtype=np.float32) * np.float32(1 / np.sqrt(fan_in))
        magnitude_prune(w, sparsity)
        b = (0.1 * rng.standard_normal(lay.out_c)).astype(np.float32)
        shape = (lay.in_c, lay.in_hw, lay.in_hw)
        x = {n: rng.standard_normal((n, *shape), dtype=np.float32) for n in lay.batches}
        calib = np.concatenate([rng.standard_normal((CALIBRATION, *shape), dtype=np.float32), *x.values()])
        bt = Built(lay, sparsity, w, b, x, calib)
        conv = ("conv2d", w, b, "conv", {"stride": lay.stride, "padding": lay.pad, "groups": lay.groups})
        for mode in ("dynamic", "static"):
            try:
                cm = from_numpy([conv], shape, quantize=mode, calibration=calib if mode == "static" else None)
            except _core.UnsupportedError as e:  # static int8 convolutions not in this build yet
                bt.pyrt_skip[mode] = f"pyruntime: {e}"
                continue
            bt.pyrt[mode] = (cm.load(), cm.layers[0])
        if ort is not None:
            bt.tmp = tempfile.TemporaryDirectory(prefix="int8conv-")
            _onnx_models(bt)
        _built[key] = bt
    return _built[key]


# --------------------------------------------------------------------------------------------------
# The benchmark


def _skip_reason(method: str) -> str | None:
    if method.startswith("torch") and torch is None:
        return "torch is not installed"
    if method.startswith("ort"):
        return ORT_UNAVAILABLE
    if method.startswith("openvino"):
        return OV_UNAVAILABLE
    return None


def test_int8_conv(benchmark, lay: Int8ConvLayer, sparsity: float, batch: int, method: str) -> None:
    reason = _skip_reason(method)
    if reason:
        pytest.skip(reason)
    bt = built(lay, sparsity)
    x = bt.x[batch]
    peer, rest = method.split("-", 1)
    isa = quantize = file_bytes = int8_ops = None
    encoding, nnz = method, int(np.count_nonzero(bt.w))
    fn: Callable[[], Any]
    if method == "torch-fp32":
        tx, tw, tb = torch.from_numpy(x), torch.from_numpy(bt.w), torch.from_numpy(bt.b)

        def fn():
            with torch.inference_mode():
                return torch.nn.functional.conv2d(tx, tw, tb, stride=lay.stride, padding=lay.pad,
                                                  groups=lay.groups)
    elif peer == "ort":
        sess, feed = bt.ort[rest.split("-")[0]], {"x": x}
        fn = lambda: sess.run(None, feed)[0]
        if rest.startswith("int8"):
            quantize, int8_ops = "static", ",".join(bt.ort_int8_ops)
            assert any(op in ("QLinearConv", "ConvInteger") for op in bt.ort_int8_ops), \
                f"ONNX Runtime's optimized QDQ graph has no int8 conv: {bt.ort_int8_ops}"
    elif peer == "openvino":
        kind = rest.split("-")[0]
        try:
            req, int8_ops = bt.openvino(kind, batch)
        except RuntimeError as e:
            pytest.skip(f"openvino could not compile the {kind} ONNX model: {e}")
        if kind == "int8":
            quantize = "static"
            assert int8_ops in ("u8", "i8"), f"OpenVINO runs the QDQ model's conv in {int8_ops}, not int8"
        feed = {0: x}

        def fn():
            return req.infer(feed, share_inputs=True)[0]
    else:  # pyrt-int8-<dynamic|static>-<isa>
        _, quantize, isa = rest.split("-")
        if quantize in bt.pyrt_skip:
            pytest.skip(bt.pyrt_skip[quantize])
        model, report = bt.pyrt[quantize]
        encoding, nnz, file_bytes = report.encoding, int(report.nonzeros), int(report.file_bytes)
        fn = lambda: model.run(x)
    dense_macs = lay.out_c * (lay.in_c // lay.groups) * lay.k * lay.k * lay.out_hw * lay.out_hw * batch
    macs = nnz * lay.out_hw * lay.out_hw * batch if encoding.startswith("csr") else dense_macs
    with one_thread_at(isa):
        err = normalized_error(fn(), bt.reference(batch))
        assert err <= (TOL if "int8" in method else 1e-3), f"{method}: normalized max error {err:.3g}"
        benchmark.group = group_name(lay, sparsity, batch)
        benchmark.extra_info.update(
            kind="int8_conv", method=method.rsplit("-", 1)[0] if isa else method,
            label=f"{method.rsplit('-', 1)[0]}@{isa}" if isa else method, peer=peer, quantize=quantize,
            isa=isa or "", encoding=encoding, threads=1, layer=lay.name, model=lay.model,
            description=lay.description, in_c=lay.in_c, out_c=lay.out_c, k=lay.k, in_hw=lay.in_hw,
            out_hw=lay.out_hw, stride=lay.stride, pad=lay.pad, groups=lay.groups, sparsity=sparsity,
            batch=batch, nnz=nnz, macs=macs, dense_macs=dense_macs, error=err, file_bytes=file_bytes,
            int8_ops=int8_ops)
        benchmark(fn)
