"""Larq Compute Engine (LCE) as a peer of bench/test_binary.py: a TFLite flatbuffer of one binary dense layer
(LceQuantize -> LceBconv2d as a 1x1 convolution, float output; LCE has no binary fully-connected op, its
converter lowers a binary Dense to the same pair), built with the flatbuffers schema LCE ships, run by LCE's
own interpreter (larq_compute_engine.tflite, 1 thread). For bench/test_binary_conv.py the same pair as a
kh x kw convolution, SAME padding with pad_values 0 (LCE's zero padding: a padded tap contributes 0, by a
correction of the outputs it applies to float output).

LCE 0.16.0 (the last release) is a pybind11 extension built against numpy 1.x: under numpy 2 its
interpreter reads every input as 0 bytes ("Expected 1024 bytes but got 0 for tensor x"), so it cannot
run in a numpy-2 process. bench/test_binary.py then runs this file as a worker in a python that has
numpy < 2 (PYRT_BENCH_LCE_PYTHON):

    python -m venv /tmp/lce && /tmp/lce/bin/pip install "numpy<2" flatbuffers tqdm larq-compute-engine
    PYRT_BENCH_LCE_PYTHON=/tmp/lce/bin/python pytest bench/test_binary.py

`import larq_compute_engine` imports tensorflow (its converter); the interpreter and the schema do not need
it, so both are loaded from their files here, without the package's __init__.

Worker protocol (stdin / stdout, one pickled message each way per request):
  ("load", wsign_bits u8 (rows, cols) with 1 = -1, batch, flags) -> ("ok", None) or ("error", text)
  ("load_conv", wsign_bits u8 (O, kh, kw, C) with 1 = -1, batch, H, W, flags)
                                                                 -> the same (bench/test_binary_conv.py)
  ("run", x f32 (batch, cols))                                   -> ("ok", y f32 (batch, rows))
  ("run", x f32 (batch, H, W, C)), a conv loaded                 -> ("ok", y f32 (batch, H, W, O))
  ("time", n)  n predict calls of the loaded model's input       -> ("ok", seconds of the n calls)
"""

from __future__ import annotations

import importlib.util
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np

# LceBconv2d's interpreter options: (use_reference_bconv, use_indirect_bgemm, use_xnnpack).
FLAGS = {"lce-default": (False, False, False), "lce-indirect-bgemm": (False, True, False)}


def lce_root() -> Path:
    spec = importlib.util.find_spec("larq_compute_engine")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("larq-compute-engine is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _load_file(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def modules() -> tuple[Any, Any]:
    """(interpreter_wrapper_lite, tflite_schema) from LCE's files, without importing tensorflow."""
    root = lce_root()
    so = next((root / "tflite" / "python").glob("interpreter_wrapper_lite*.so"))
    return (_load_file("interpreter_wrapper_lite", so),
            _load_file("lce_tflite_schema", root / "mlir" / "python" / "tflite_schema.py"))


def version() -> str:
    from importlib.metadata import version as v

    return v("larq-compute-engine")


def pack32(neg: np.ndarray) -> np.ndarray:
    """(n, k) 0/1 with 1 = -1 (LCE's bit order: the sign bit) -> (n, ceil(k / 32)) int32, LSB first."""
    n, k = neg.shape
    padded = np.zeros((n, (k + 31) // 32 * 32), np.uint8)
    padded[:, :k] = neg
    return np.packbits(padded, axis=1, bitorder="little").view("<i4")


def _bconv_model(wpacked: np.ndarray, x_shape: list[int], y_shape: list[int], channels_in: int, same: bool,
                 description: str) -> bytes:
    """x f32 x_shape (NHWC) -> LceQuantize -> LceBconv2d (stride 1, multiplier 1, bias 0, pad_values 0, SAME or
    VALID padding) -> f32 y_shape (NHWC): y = the exact +-1 dot product of each window. `wpacked`: the weight
    [O, kh, kw, ceil(C / 32)] int32, LCE's packed OHWI filter (bit 1 = -1)."""
    import flatbuffers
    from flatbuffers import flexbuffers

    _, S = modules()
    rows = wpacked.shape[0]
    kw32 = wpacked.shape[-1]

    def buffer(a: np.ndarray | None = None) -> Any:
        b = S.BufferT()
        if a is not None:
            b.data = np.frombuffer(np.ascontiguousarray(a).tobytes(), np.uint8)
        return b

    def tensor(shape: list[int], typ: int, buf: int, name: str) -> Any:
        t = S.TensorT()
        t.shape, t.type, t.buffer, t.name = shape, typ, buf, name
        return t

    def code(name: str) -> Any:
        c = S.OperatorCodeT()
        c.builtinCode = c.deprecatedBuiltinCode = S.BuiltinOperator.CUSTOM
        c.customCode, c.version = name, 1
        return c

    f32, i32 = S.TensorType.FLOAT32, S.TensorType.INT32
    buffers = [buffer(), buffer(wpacked), buffer(np.ones(rows, np.float32)), buffer(np.zeros(rows, np.float32))]
    tensors = [tensor(x_shape, f32, 0, "x"), tensor([*x_shape[:3], kw32], i32, 0, "x_bits"),
               tensor(list(wpacked.shape), i32, 1, "w_bits"), tensor([rows], f32, 2, "multiplier"),
               tensor([rows], f32, 3, "bias"), tensor(y_shape, f32, 0, "y")]
    quant = S.OperatorT()
    quant.opcodeIndex, quant.inputs, quant.outputs = 0, [0], [1]
    bconv = S.OperatorT()
    bconv.opcodeIndex, bconv.inputs, bconv.outputs = 1, [1, 2, 3, 4, -1], [5]  # no output thresholds
    bconv.customOptions = list(flexbuffers.Dumps({
        "channels_in": channels_in, "dilation_height_factor": 1, "dilation_width_factor": 1,
        "fused_activation_function": S.ActivationFunctionType.NONE, "pad_values": 0,
        "padding": S.Padding.SAME if same else S.Padding.VALID, "stride_height": 1, "stride_width": 1}))
    bconv.customOptionsFormat = S.CustomOptionsFormat.FLEXBUFFERS
    sg = S.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators, sg.name = tensors, [0], [5], [quant, bconv], "main"
    m = S.ModelT()
    m.version, m.subgraphs, m.buffers = 3, [sg], buffers
    m.operatorCodes = [code("LceQuantize"), code("LceBconv2d")]
    m.description = description
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def flatbuffer(neg: np.ndarray, batch: int) -> bytes:
    """x f32 [batch, 1, 1, K] -> LceQuantize -> LceBconv2d (1x1, VALID, multiplier 1, bias 0) -> f32
    [batch, 1, 1, rows]: y = the exact +-1 dot product, rows of `neg` (1 = -1) the weight."""
    rows, k = neg.shape
    wpacked = pack32(neg).reshape(rows, 1, 1, -1)
    return _bconv_model(wpacked, [batch, 1, 1, k], [batch, 1, 1, rows], k, False,
                        "pyruntime bench: one binary dense layer")


def conv_flatbuffer(neg: np.ndarray, batch: int, h: int, w: int) -> bytes:
    """x f32 [batch, h, w, C] (NHWC) -> LceQuantize -> LceBconv2d (kh x kw, stride 1, SAME padding with
    pad_values 0: a tap in the padding contributes 0, LCE's zero-padding correction) -> f32 [batch, h, w, O]:
    the exact +-1 convolution with zero padding; `neg` [O, kh, kw, C] (OHWI, 1 = -1) the weight. kh and kw
    odd, so SAME pads (k - 1) / 2 on every side."""
    o, kh, kw, c = neg.shape
    wpacked = pack32(neg.reshape(o * kh * kw, c)).reshape(o, kh, kw, -1)
    return _bconv_model(wpacked, [batch, h, w, c], [batch, h, w, o], c, True,
                        "pyruntime bench: one binary convolution")


class Layer:
    """One LCE interpreter of the layer, in this process (needs numpy < 2)."""

    def __init__(self, neg: np.ndarray, batch: int, flags: tuple[bool, bool, bool]) -> None:
        wrapper, _ = modules()
        self.rows, self.cols, self.batch = neg.shape[0], neg.shape[1], batch
        self.interp = wrapper.LiteInterpreter(flatbuffer(neg, batch), 1, *flags)
        self.x: list[np.ndarray] | None = None

    def run(self, x: np.ndarray) -> np.ndarray:
        self.x = [np.ascontiguousarray(x, np.float32).reshape(self.batch, 1, 1, self.cols)]
        return self.interp.predict(self.x)[0].reshape(self.batch, self.rows)

    def time(self, n: int) -> float:
        import time

        predict, x = self.interp.predict, self.x
        t0 = time.perf_counter()
        for _ in range(n):
            predict(x)
        return time.perf_counter() - t0


class ConvLayer(Layer):
    """One LCE interpreter of a binary convolution (conv_flatbuffer), in this process: x and y NHWC."""

    def __init__(self, neg: np.ndarray, batch: int, h: int, w: int, flags: tuple[bool, bool, bool]) -> None:
        wrapper, _ = modules()
        self.shape, self.batch = (batch, h, w, neg.shape[3]), batch
        self.interp = wrapper.LiteInterpreter(conv_flatbuffer(neg, batch, h, w), 1, *flags)
        self.x = None

    def run(self, x: np.ndarray) -> np.ndarray:
        self.x = [np.ascontiguousarray(x, np.float32).reshape(self.shape)]
        return self.interp.predict(self.x)[0]


def serve() -> None:
    """The worker loop (see the module docstring)."""
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    layer = None
    while True:
        try:
            msg = pickle.load(inp)
        except EOFError:
            return
        try:
            if msg[0] == "hello":
                reply = ("ok", {"version": version(), "numpy": np.__version__})
            elif msg[0] == "load":
                layer = Layer(*msg[1:])
                reply = ("ok", None)
            elif msg[0] == "load_conv":
                layer = ConvLayer(*msg[1:])
                reply = ("ok", None)
            elif msg[0] == "run":
                reply = ("ok", layer.run(msg[1]))
            elif msg[0] == "time":
                reply = ("ok", layer.time(msg[1]))
            else:
                reply = ("error", f"unknown request {msg[0]!r}")
        except Exception as e:  # noqa: BLE001 - every failure goes back to the test, which reports it
            reply = ("error", f"{type(e).__name__}: {e}")
        pickle.dump(reply, out)
        out.flush()


if __name__ == "__main__":
    serve()
