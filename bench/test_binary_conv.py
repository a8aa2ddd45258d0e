"""Binary (XNOR-popcount) convolutions: pyruntime's bconv2d against torch's fp32 convolution and Larq Compute
Engine's LceBconv2d, in the same run.

ResNet-18-like binary layers (as in Bi-Real Net / XNOR-Net): 3x3, stride 1, padding 1, C = O input and output
channels: 64 at 56x56, 128 at 28x28, 256 at 14x14, 512 at 7x7; batch 1 and 8. One pytest-benchmark group per
(C, H, batch), "bconv-c<C>-<H>x<W>-b<batch>". Its members, every one on 1 thread:

  torch-fp32            torch.nn.functional.conv2d(x, W, padding=1) on the input's signs (+-1.0) and the
                        weight's (+-1.0), fp32
  pyrt-bconv-<isa>      pyruntime.load(sign -> bconv2d (input 0, output 0), threads=1).run(x) from the f32
                        NCHW input: the sign (to channels-last bits), the patches, the XNOR GEMM and the f32
                        [O, OH, OW] epilogue. <isa>: avx512 (the VPOPCNTDQ kernel where the CPU has it) and
                        avx2 when supported (_core.set_isa, restored afterwards)
  pyrt-gemm-<isa>       not a convolution: the XNOR GEMM alone (_core.BinaryWeight.gemm) over the layer's
                        patches built beforehand ((batch * OH * OW, 9 C / 64) u64), the best level only: what
                        pyrt-bconv costs without the sign, the patch copies and the conv epilogue
  lce-default           Larq Compute Engine's interpreter (1 thread) running LceQuantize -> LceBconv2d (3x3,
  lce-indirect-bgemm    SAME, pad_values 0: a padded tap contributes 0, LCE's zero-padding correction) from the
                        f32 NHWC input; run as in bench/test_binary.py (in process under numpy < 2, else in
                        the worker PYRT_BENCH_LCE_PYTHON names, else skipped with the reason)

A tap in the zero padding contributes 0 (FORMAT.md 2.6), so every convolution member's output is the exact
integer convolution of the +-1 signs, zero-padded: each is checked equal to torch's float64 conv2d of the +-1
tensors before it is timed (pyrt-gemm at the windows without padding, where it is that convolution).
extra_info: method, isa, kernel, C, O, H, W, OH, OW, kh, kw, batch, threads, bmacs (O * C * 9 * OH * OW *
batch binary multiply-accumulates), bit_ops, flops (2 * bmacs), the clock binary_report.py's peak uses.

    pytest bench/test_binary_conv.py --benchmark-json=bconv.json && python bench/binary_report.py bconv.json
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import test_binary as tb
from harness import one_thread_at, torch

import pyruntime
from pyruntime import _core

SHAPES = ((64, 56), (128, 28), (256, 14), (512, 7))  # (C = O, H = W)
BATCHES = (1, 8)
KH = KW = 3
PYRT_ISAS = tb.XNOR_ISAS  # avx512, avx2 where supported (best first)
GEMM_ISAS = PYRT_ISAS[:1]


@pytest.fixture(scope="session", autouse=True)
def _close_lce_worker():
    yield
    if tb._LCE is not None and isinstance(tb._LCE[0], tb.LceWorker):
        tb._LCE[0].close()


class ConvLayer:
    """One binary 3x3 layer: the weight's bits, the pyruntime model, torch's weight, inputs, references and
    the GEMM-alone member's weight and patches, per batch."""

    def __init__(self, c: int, h: int) -> None:
        rng = np.random.default_rng(c * 1000 + h)
        self.c, self.o, self.h, self.w = c, c, h, h
        self.oh, self.ow = h, h  # 3x3, stride 1, padding 1
        self.wbits = rng.integers(0, 2, (self.o, c, KH, KW), dtype=np.uint8)  # 1 = +1, OIHW
        tensor = {"name": f"bench.bconv{c}", "encoding": "binary", "shape": [self.o, c, KH, KW],
                  "bits": self.wbits.ravel(), "scales": np.ones(self.o, np.float32)}
        attrs = {"stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1, "input": 0,
                 "output": 0}
        model = {"input_shape": [c, h, h], "tensors": [tensor], "nodes": [
            {"op": "sign", "inputs": [0], "tensors": [], "attrs": {"scale": 1.0, "shift": 0.0}},
            {"op": "bconv2d", "inputs": [1], "tensors": [0], "attrs": attrs}]}
        self.model = pyruntime.load(_core.write_model(model), threads=1)
        self.w32 = self.wbits.astype(np.float32) * 2 - 1
        self.torch_w = torch.from_numpy(self.w32) if torch is not None else None
        self.x = {b: rng.standard_normal((b, c, h, h), dtype=np.float32) for b in BATCHES}
        self.xs = {b: np.where(self.x[b] >= 0, 1.0, -1.0).astype(np.float32) for b in BATCHES}
        self.ref = {b: self._ref(b) for b in BATCHES}
        # The GEMM-alone member: the weight's columns tap-major (ky, kx, c), patches of the input's bits in
        # the same order, zero words in the padding.
        gw = self.wbits.transpose(0, 2, 3, 1).reshape(self.o, KH * KW * c)
        self.gemm_w = _core.BinaryWeight({"name": f"bench.bconv{c}.gemm", "encoding": "binary",
                                          "shape": [self.o, KH * KW * c], "bits": gw.ravel(),
                                          "scales": np.ones(self.o, np.float32)}, "xnor")
        self.patches = {b: self._patches(b) for b in BATCHES}
        self.lce: dict = {}

    def _ref(self, b: int) -> np.ndarray:
        if torch is None:  # numpy: the sum over the 9 taps
            xp = np.pad(self.xs[b].astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
            ref = np.zeros((b, self.o, self.oh, self.ow))
            for ky in range(KH):
                for kx in range(KW):
                    ref += np.einsum("bchw,oc->bohw", xp[:, :, ky:ky + self.oh, kx:kx + self.ow],
                                     self.w32[:, :, ky, kx].astype(np.float64))
            return ref
        return torch.nn.functional.conv2d(torch.from_numpy(self.xs[b]).double(),
                                          torch.from_numpy(self.w32).double(), padding=1).numpy()

    def _patches(self, b: int) -> np.ndarray:
        bits = (self.x[b] >= 0).astype(np.uint8).transpose(0, 2, 3, 1)  # NHWC
        bits = np.pad(bits, ((0, 0), (1, 1), (1, 1), (0, 0)))  # padding: bit 0 (a zero word)
        taps = [bits[:, ky:ky + self.oh, kx:kx + self.ow, :] for ky in range(KH) for kx in range(KW)]
        p = np.stack(taps, axis=3).reshape(b * self.oh * self.ow, KH * KW * self.c)
        return tb.pack(p)

    def interior(self, b: int, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The GEMM's (positions, O) output and the reference at the windows without padding."""
        y = np.asarray(y).reshape(b, self.oh, self.ow, self.o)[:, 1:-1, 1:-1, :]
        return y, self.ref[b].transpose(0, 2, 3, 1)[:, 1:-1, 1:-1, :]


_built: dict[tuple[int, int], ConvLayer] = {}


def layer(c: int, h: int) -> ConvLayer:
    if (c, h) not in _built:
        _built.clear()  # one layer in memory at a time
        _built[(c, h)] = ConvLayer(c, h)
    return _built[(c, h)]


METHODS = (["torch-fp32"] + [f"pyrt-bconv-{i}" for i in PYRT_ISAS] + [f"pyrt-gemm-{i}" for i in GEMM_ISAS]
           + list(tb.LCE_METHODS))
CASES = [(c, h, b, m) for c, h in SHAPES for b in BATCHES for m in METHODS]


def _torch_error() -> str:
    """Why `import torch` fails here (harness sets torch to None on an ImportError, without the reason)."""
    try:
        import torch as _  # noqa: F401
    except ImportError as e:
        return f"{type(e).__name__}: {e}"
    return "it imports now, it did not when harness.py was imported"


def _check(method: str, got, ref: np.ndarray) -> None:
    got = got.numpy() if hasattr(got, "numpy") else np.asarray(got)
    assert got.shape == ref.shape, f"{method}: output shape {got.shape}, expected {ref.shape}"
    bad = int((got.astype(np.float64) != ref).sum())
    assert bad == 0, f"{method}: {bad} of {ref.size} outputs differ from the exact +-1 convolution"


@pytest.mark.parametrize("c,h,batch,method", CASES, ids=[f"c{c}-{h}x{h}-b{b}-{m}" for c, h, b, m in CASES])
def test_binary_conv(benchmark, c, h, batch, method):
    if method.startswith("torch") and torch is None:
        pytest.skip(f"torch did not import ({_torch_error()})")
    peer_lce = method.startswith("lce")
    if peer_lce:
        backend, reason, how = tb.lce()
        if reason:
            print(f"\n{method}: skipped: {reason}")
            pytest.skip(reason)
    L = layer(c, h)
    ref = L.ref[batch]
    isa = method.rsplit("-", 1)[1] if method.startswith("pyrt") else None
    inner_calls = 1
    if method == "torch-fp32":
        xt = torch.from_numpy(L.xs[batch])
        fn = lambda: torch.nn.functional.conv2d(xt, L.torch_w, padding=1)
    elif method.startswith("pyrt-bconv"):
        x = L.x[batch]
        fn = lambda: L.model.run(x)
    elif method.startswith("pyrt-gemm"):
        xb = L.patches[batch]
        fn = lambda: L.gemm_w.gemm(xb, isa=isa)
    else:  # LCE: NHWC in and out
        from lce_peer import FLAGS

        neg = (1 - L.wbits).transpose(0, 2, 3, 1).copy()  # OHWI, LCE's bit is 1 for -1
        x = np.ascontiguousarray(L.x[batch].transpose(0, 2, 3, 1))
        if isinstance(backend, tb.LceWorker):
            backend.call("load_conv", neg, batch, h, h, FLAGS[method])
            _check(method, backend.call("run", x).transpose(0, 3, 1, 2), ref)
            one = backend.call("time", 3) / 3
            inner_calls = max(1, int(tb.LCE_ROUND_S / max(one, 1e-9)))
            fn = lambda: backend.call("time", inner_calls)
        else:
            interp = backend.ConvLayer(neg, batch, h, h, FLAGS[method])
            _check(method, interp.run(x).transpose(0, 3, 1, 2), ref)
            fn = lambda: interp.run(x)

    with one_thread_at(isa):
        if method.startswith("pyrt-gemm"):
            _check(method, *L.interior(batch, fn()))
        elif not peer_lce:
            _check(method, fn(), ref)
        benchmark.group = f"bconv-c{c}-{h}x{h}-b{batch}"
        bmacs = L.o * c * KH * KW * L.oh * L.ow * batch
        benchmark.extra_info.update(
            kind="bconv", method=method, peer=method.split("-")[0], isa=isa or "",
            kernel=_core.binary_kernel(isa) if isa else "", C=c, O=L.o, H=h, W=h, OH=L.oh, OW=L.ow, kh=KH,
            kw=KW, batch=batch, threads=1, bmacs=bmacs, bit_ops=2 * bmacs, flops=2 * bmacs,
            clock_mhz=tb.CLOCK_MHZ, clock_source=tb.CLOCK_SOURCE, inner_calls=inner_calls,
            lce=how if peer_lce else "")
        if inner_calls > 1 or (peer_lce and isinstance(backend, tb.LceWorker)):
            benchmark.pedantic(fn, rounds=5, iterations=1, warmup_rounds=1)
        else:
            benchmark(fn)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, *sys.argv[1:]]))
