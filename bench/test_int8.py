"""int8 linear layers: pyruntime's int8 / csr+int8 against PyTorch's dynamic int8 (fbgemm), ONNX Runtime's
dynamic int8 (MatMulInteger), OpenVINO's int8 and fp32 numpy / torch, one thread each, in the same run.

Each (shape, sparsity, batch) is one pytest-benchmark group, e.g. "int8-4096-s0.90-b1"; its members:

  numpy-fp32           x @ W.T, OpenBLAS, 1 thread
  torch-fp32           torch.nn.functional.linear, 1 thread
  torch-int8-dynamic   torch.ao.quantization.quantize_dynamic(nn.Linear holding W), 1 thread
  ort-int8-dynamic     onnxruntime.quantization.quantize_dynamic of a MatMul + Add model (DynamicQuantizeLinear,
                       MatMulInteger), one intra-op thread; skipped with the reason if onnxruntime is missing
  openvino-int8        OpenVINO ("CPU", INFERENCE_NUM_THREADS 1, one stream, reshaped to the batch) running
                       onnxruntime.quantization.quantize_static of the same model (QDQ, per-channel
                       int8 weights, uint8 input and output at static scales calibrated on the benchmark's
                       inputs and 16 more from their distribution): its FullyConnected runs in u8 (checked).
                       Static, not dynamic: OpenVINO runs ORT's dynamic model (MatMulInteger) as an fp32
                       FullyConnected. Skipped with the reason if openvino is missing
  pyrt-int8-<isa>      a one-layer model converted with quantize="dynamic" (per-channel int8 weights, the
                       input quantized per sample at every call; int8 or csr+int8, whichever is smaller),
                       Model.run at the ISA level <isa> (amx: AMX tiles from 4 samples, avx512vnni, avx512: BW
                       without VNNI, avx2; those this CPU has), 1 thread

Every method's output is checked against the float64 product first (normalized max error <= 5e-2; int8
quantization of weights and inputs alone gives ~1e-2). extra_info: method, peer, isa, encoding, sparsity,
batch, rows, cols, nnz, macs (executed multiply-adds) and dense_macs, for int8 operations per second.

    pytest bench/test_int8.py --benchmark-json=int8.json && python bench/int8_report.py int8.json
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from harness import INT8_UNAVAILABLE, normalized_error, one_thread_at, quantize_dynamic, torch

import pyruntime
from pyruntime import _core
from pyruntime.convert import from_numpy

try:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic
except ImportError as e:  # the ONNX Runtime peer is skipped
    ort = None
    ORT_UNAVAILABLE = f"onnxruntime / onnx not installed ({e})"
else:
    ORT_UNAVAILABLE = None
try:
    import openvino as ov
except ImportError as e:  # the OpenVINO peer is skipped
    ov = None
    OV_UNAVAILABLE = f"openvino not installed ({e})"
else:
    OV_UNAVAILABLE = None if ort is not None else "the openvino peer needs onnx / onnxruntime for its model"

SHAPES = {"1024": (1024, 1024), "4096": (4096, 4096)}
SPARSITIES = (0.0, 0.5, 0.9, 0.95)
BATCHES = (1, 8, 64)
PYRT_ISAS = [i for i in ("amx", "avx512vnni", "avx512", "avx2", "neon_dot", "neon") if i in _core.supported_isas()]
TOL = 5e-2
OV_CONFIG = {"INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
             "INFERENCE_PRECISION_HINT": "f32", "ENABLE_CPU_PINNING": False}


@dataclass
class Layer:
    w: np.ndarray
    b: np.ndarray
    model: pyruntime.Model
    encoding: str
    nnz: int
    torch_q: object | None
    ort_session: object | None
    ov_model: object | None = None  # openvino.Model of the QDQ static model, any batch
    ov_requests: dict | None = None  # batch -> (InferRequest, FullyConnected runtime precision)

    def openvino(self, batch: int):
        if self.ov_requests is None:
            self.ov_requests = {}
        if batch not in self.ov_requests:
            model = self.ov_model.clone()
            model.reshape([batch, self.w.shape[1]])
            compiled = ov.Core().compile_model(model, "CPU", OV_CONFIG)
            prec = sorted({op.get_rt_info()["runtimePrecision"].astype(str)
                           for op in compiled.get_runtime_model().get_ops()
                           if op.get_rt_info()["layerType"].astype(str) == "FullyConnected"})
            self.ov_requests[batch] = (compiled.create_infer_request(), ",".join(prec))
        return self.ov_requests[batch]


_built: dict[tuple[str, float], Layer] = {}


def _input(batch: int, cols: int) -> np.ndarray:
    return np.random.default_rng(batch).standard_normal((batch, cols)).astype(np.float32)


def _ort_session(w: np.ndarray, b: np.ndarray):
    """ONNX Runtime's dynamic int8 session, and the QDQ static model as an openvino.Model (None without
    openvino)."""
    rows, cols = w.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "wt"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])], "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", cols])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", rows])],
        [helper.make_tensor("wt", TensorProto.FLOAT, [cols, rows], np.ascontiguousarray(w.T).ravel()),
         helper.make_tensor("b", TensorProto.FLOAT, [rows], b)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with tempfile.TemporaryDirectory() as d:
        fp32, int8 = Path(d) / "fp32.onnx", Path(d) / "int8.onnx"
        onnx.save(model, fp32)
        ort_quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(int8), opts, providers=["CPUExecutionProvider"])
        if ov is None:
            return session, None
        # The benchmark's own inputs are in the calibration set: on random ones alone, an output of another
        # input can exceed the calibrated uint8 output range and saturate.
        rng = np.random.default_rng(cols)
        extra = rng.standard_normal((16, cols), dtype=np.float32)
        calib = np.concatenate([_input(n, cols) for n in BATCHES] + [extra])

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.it = iter([{"x": calib[i : i + 1]} for i in range(len(calib))])

            def get_next(self):
                return next(self.it, None)

        qdq = Path(d) / "qdq.onnx"
        logging.disable(logging.WARNING)  # quantize_static's advice to pre-process the model
        try:
            quantize_static(str(fp32), str(qdq), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            extra_options={"CalibTensorRangeSymmetric": True})
        finally:
            logging.disable(logging.NOTSET)
        return session, ov.Core().read_model(str(qdq))


def layer(shape: str, sparsity: float) -> Layer:
    key = (shape, sparsity)
    if key not in _built:
        _built.clear()  # one case in memory at a time
        rows, cols = SHAPES[shape]
        rng = np.random.default_rng(rows * 7 + int(sparsity * 100))
        w = (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)
        if sparsity:
            cut = np.quantile(np.abs(w), sparsity)
            w[np.abs(w) <= cut] = 0.0
        b = (0.1 * rng.standard_normal(rows)).astype(np.float32)
        cm = from_numpy([("linear", w, b)], (cols,), quantize="dynamic")
        torch_q = None
        if torch is not None and quantize_dynamic is not None:
            lin = torch.nn.Linear(cols, rows)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w))
                lin.bias.copy_(torch.from_numpy(b))
            torch_q = quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8)
        session, ov_model = _ort_session(w, b) if ort is not None else (None, None)
        _built[key] = Layer(w, b, cm.load(), cm.layers[0].encoding, cm.layers[0].nonzeros, torch_q, session,
                            ov_model)
    return _built[key]


METHODS = (["numpy-fp32", "torch-fp32", "torch-int8-dynamic", "ort-int8-dynamic", "openvino-int8"]
           + [f"pyrt-int8-{i}" for i in PYRT_ISAS])
CASES = [(s, sp, bt, m) for s in SHAPES for sp in SPARSITIES for bt in BATCHES for m in METHODS]


@pytest.mark.parametrize("shape,sparsity,batch,method", CASES,
                         ids=[f"{s}-s{sp:.2f}-b{bt}-{m}" for s, sp, bt, m in CASES])
def test_int8_linear(benchmark, shape, sparsity, batch, method):
    if method.startswith("torch") and torch is None:
        pytest.skip("torch is not installed")
    if method == "torch-int8-dynamic" and INT8_UNAVAILABLE:
        pytest.skip(INT8_UNAVAILABLE)
    if method.startswith("ort") and ORT_UNAVAILABLE:
        pytest.skip(ORT_UNAVAILABLE)
    if method.startswith("openvino") and OV_UNAVAILABLE:
        pytest.skip(OV_UNAVAILABLE)
    L = layer(shape, sparsity)
    rows, cols = L.w.shape
    x = _input(batch, cols)
    isa = method.rsplit("-", 1)[1] if method.startswith("pyrt") else None
    if method == "numpy-fp32":
        fn = lambda: x @ L.w.T + L.b
    elif method == "torch-fp32":
        wt, bt, xt = torch.from_numpy(L.w), torch.from_numpy(L.b), torch.from_numpy(x)
        fn = lambda: torch.nn.functional.linear(xt, wt, bt)
    elif method == "torch-int8-dynamic":
        xt = torch.from_numpy(x)
        fn = lambda: L.torch_q(xt)
    elif method == "ort-int8-dynamic":
        fn = lambda: L.ort_session.run(None, {"x": x})[0]
    elif method == "openvino-int8":
        req, prec = L.openvino(batch)
        assert prec in ("u8", "i8"), f"OpenVINO runs the QDQ model's FullyConnected in {prec}, not int8"
        fn = lambda: req.infer({0: x}, share_inputs=True)[0]
    else:
        fn = lambda: L.model.run(x)
    ref = x.astype(np.float64) @ L.w.T.astype(np.float64) + L.b
    with one_thread_at(isa):
        err = normalized_error(fn(), ref)
        assert err <= TOL, f"{method}: normalized max error {err:.3g}"
        benchmark.group = f"int8-{shape}-s{sparsity:.2f}-b{batch}"
        macs = (L.nnz if method.startswith("pyrt") else rows * cols) * batch
        benchmark.extra_info.update(method=method.rsplit("-", 1)[0] if isa else method, isa=isa or "",
                                    peer=method.split("-")[0], encoding=L.encoding if isa else method,
                                    sparsity=sparsity, batch=batch, rows=rows, cols=cols, nnz=L.nnz,
                                    macs=macs, dense_macs=rows * cols * batch, error=err)
        benchmark(fn)
