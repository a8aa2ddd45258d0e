"""The bare-metal runtime (csrc/include/pyruntime_micro.h) through cffi on the shipped libpyruntime.so:
small torch models converted with pyruntime.convert.from_torch (a LeNet-5-shaped CNN, MLPs; pruned and
weight-shared; int8, dynamic and static, dense and pruned), run one sample at a time in a caller-provided
arena, against pyruntime.load(...).run: float models to a few ulps, int8 models bit for bit (FORMAT.md 2.5).
The declarations come from the headers themselves (test_capi_cffi.cdef_from_header).
"""

from __future__ import annotations

import numpy as np
import pytest

cffi = pytest.importorskip("cffi")
torch = pytest.importorskip("torch")
nn = torch.nn


def _capi_helpers():
    """test_capi_cffi's header helpers, loaded by path (the test folders are not packages)."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).with_name("test_capi_cffi.py")
    spec = importlib.util.spec_from_file_location("_pyrt_capi_helpers", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_helpers = _capi_helpers()
ROOT, cdef_from_header, header_path, package_dir = (
    _helpers.ROOT,
    _helpers.cdef_from_header,
    _helpers.header_path,
    _helpers.package_dir,
)

from pyruntime.convert import from_torch

OK, INVALID_ARGUMENT, BAD_FORMAT, UNSUPPORTED = 0, 1, 2, 3


@pytest.fixture(scope="module")
def micro():
    lib_path = package_dir() / "lib" / "libpyruntime.so"
    if not lib_path.exists():
        pytest.skip(f"{lib_path} is not built (PYRT_BUILD_CAPI_SHARED=OFF or no build yet)")
    main = header_path()
    micro_h = main.parent / "pyruntime_micro.h"
    if not micro_h.exists():
        micro_h = ROOT / "csrc" / "include" / "pyruntime_micro.h"
    ffi = cffi.FFI()
    ffi.cdef(cdef_from_header(main.read_text()) + "\n" + cdef_from_header(micro_h.read_text()))
    return ffi, ffi.dlopen(str(lib_path))


def error(ffi, lib) -> str:
    return ffi.string(lib.pyrt_micro_last_error()).decode()


STREAM = 1  # PYRT_MICRO_STREAM_WEIGHTS


def sizes(ffi, lib, data: bytes, flags: int = 0) -> dict[str, int]:
    out = ffi.new("pyrt_micro_sizes*")
    if flags:
        st = lib.pyrt_micro_memory_bytes_ex(ffi.from_buffer(data), len(data), flags, out)
    else:
        st = lib.pyrt_micro_memory_bytes(ffi.from_buffer(data), len(data), out)
    assert st == OK, error(ffi, lib)
    return {k: getattr(out, k) for k in ("weight_bytes", "activation_bytes", "model_bytes", "arena_bytes")}


class MicroModel:
    """A model loaded into an arena of exactly the size asked for (the arena and file kept alive here); flags:
    the load flags (STREAM: pyrt_micro_load_ex in stream mode; 0: pyrt_micro_load)."""

    def __init__(self, ffi, lib, data: bytes, arena_bytes: int | None = None, flags: int = 0):
        self.ffi, self.lib = ffi, lib
        self.data = ffi.new("uint8_t[]", data)  # the "flash" copy: must outlive the model
        need = sizes(ffi, lib, data, flags)["arena_bytes"] if arena_bytes is None else arena_bytes
        self.arena = ffi.new("uint8_t[]", need)
        out = ffi.new("pyrt_micro_model**")
        if flags:
            self.status = lib.pyrt_micro_load_ex(self.data, len(data), flags, self.arena, len(self.arena), out)
        else:
            self.status = lib.pyrt_micro_load(self.data, len(data), self.arena, len(self.arena), out)
        self.h = out[0]

    def run(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32).reshape(-1)
        assert x.size == self.lib.pyrt_micro_input_size(self.h)
        y = np.full(self.lib.pyrt_micro_output_size(self.h), np.nan, np.float32)
        st = self.lib.pyrt_micro_run(
            self.h, self.ffi.from_buffer("float[]", x), self.ffi.from_buffer("float[]", y)
        )
        assert st == OK, error(self.ffi, self.lib)
        return y


def lenet5() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(256, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    ).eval()


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 48),
        nn.ReLU(),
        nn.Linear(48, 32),
        nn.ReLU6(),
        nn.Linear(32, 10),
        nn.Softmax(dim=1),
    ).eval()


def small_cnn() -> nn.Module:
    """stride, padding, depthwise, no bias, pools with padding and ceil_mode, count_include_pad."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=True),
        nn.Flatten(),
        nn.Linear(8 * 3 * 3, 5),
    ).eval()


class Residual(nn.Module):
    """add (in place over a live buffer's successor), dilation, clamp, global pools, concat, softmax."""

    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(3, 8, 3, padding=1)
        self.c1 = nn.Conv2d(8, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=2, dilation=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        a = torch.relu(self.c0(x))
        b = torch.relu(self.c1(a)) + a
        c = torch.clamp(self.c2(b), -1, 1)
        y = torch.cat([self.pool(b), self.pool(c)], 1)
        return torch.softmax(self.fc(torch.flatten(y, 1)), 1)


def residual() -> nn.Module:
    return Residual().eval()


CASES = {
    "residual_pruned_shared": (residual, (3, 10, 10), {"sparsity": 0.3, "bits": 4}),
    "lenet5_pruned_shared": (lenet5, (1, 28, 28), {"sparsity": 0.6, "bits": 4}),
    "lenet5_dense": (lenet5, (1, 28, 28), {}),
    "mlp_shared": (mlp, (1, 8, 8), {"bits": 3}),
    "mlp_pruned": (mlp, (1, 8, 8), {"sparsity": 0.7}),
    "small_cnn_pruned_shared": (small_cnn, (3, 16, 16), {"sparsity": 0.5, "bits": 5}),
}


def convert(name: str):
    make, shape, kw = CASES[name]
    torch.manual_seed(sum(map(ord, name)))
    net = make()
    x = torch.randn(4, *shape)
    return from_torch(net, x, **kw), shape


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_the_host_runtime(micro, name):
    ffi, lib = micro
    cm, shape = convert(name)
    data = cm.to_bytes()
    host = cm.load()
    m = MicroModel(ffi, lib, data)
    assert m.status == OK, error(ffi, lib)
    rng = np.random.default_rng(7)
    for _ in range(4):
        x = rng.standard_normal((1, *shape)).astype(np.float32)
        want = np.asarray(host.run(x)).reshape(-1)
        got = m.run(x[0])
        scale = max(1e-3, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("name", sorted(CASES))
def test_sizes_consistent(micro, name):
    ffi, lib = micro
    cm, _ = convert(name)
    data = cm.to_bytes()
    s = sizes(ffi, lib, data)
    assert s["model_bytes"] > 0 and s["activation_bytes"] > 0
    assert s["arena_bytes"] == s["model_bytes"] + s["weight_bytes"] + s["activation_bytes"] + 7
    assert all(v % 8 == 0 for k, v in s.items() if k != "arena_bytes")
    kw = CASES[name][2]
    if not kw:
        assert s["weight_bytes"] == 0  # dense weights are read in place from the file
    if "bits" in kw:
        assert s["weight_bytes"] > 0  # codebook indices decoded into one byte each
    print(name, len(data), "file bytes", s)
    assert MicroModel(ffi, lib, data).status == OK
    short = MicroModel(ffi, lib, data, s["arena_bytes"] - 1)
    assert short.status == INVALID_ARGUMENT and short.h == ffi.NULL
    assert "(1 bytes missing" in error(ffi, lib)


# ---- int8 (FORMAT.md 2.5): dynamic (linear / conv2d with an int8 weight) and static (qlinear / qconv2d) ----


def conv_mlp() -> nn.Module:
    """padding, stride, groups, no bias, a linear over the last axis of a [C, H, W] value."""
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=3, bias=False),
        nn.ReLU6(),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.Linear(3, 5),
        nn.Flatten(),
        nn.Linear(6 * 3 * 5, 7),
    ).eval()


INT8_CASES = {
    "lenet5_dynamic": (lenet5, (1, 28, 28), {"quantize": "dynamic"}),
    "lenet5_static": (lenet5, (1, 28, 28), {"quantize": "static"}),
    "lenet5_static_pruned": (lenet5, (1, 28, 28), {"quantize": "static", "sparsity": 0.6}),
    "lenet5_dynamic_pruned": (lenet5, (1, 28, 28), {"quantize": "dynamic", "sparsity": 0.7}),
    "mlp_static": (mlp, (1, 8, 8), {"quantize": "static"}),
    "mlp_dynamic_pruned": (mlp, (1, 8, 8), {"quantize": "dynamic", "sparsity": 0.5}),
    "conv_mlp_dynamic": (conv_mlp, (3, 10, 10), {"quantize": "dynamic"}),
    "conv_mlp_static": (conv_mlp, (3, 10, 10), {"quantize": "static"}),
    "conv_mlp_static_pruned": (conv_mlp, (3, 10, 10), {"quantize": "static", "sparsity": 0.5}),
}


def convert_int8(name: str):
    make, shape, kw = INT8_CASES[name]
    torch.manual_seed(sum(map(ord, name)))
    net = make()
    calibration = torch.randn(32, *shape)
    kw = dict(kw, calibration=calibration) if kw["quantize"] == "static" else kw
    return from_torch(net, calibration[:4], **kw), shape


def int8_inputs(shape, rng):
    """Typical samples, ones far outside the calibrated range (the static layers saturate), an all-zero sample
    (a dynamic scale of 0), single large values, tiny values, and samples with a NaN or an infinity."""
    xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]
    xs.append((rng.standard_normal(shape) * 1e3).astype(np.float32))
    xs.append(np.zeros(shape, np.float32))
    one = np.zeros(shape, np.float32)
    one.flat[len(one.flat) // 2] = -7.5
    xs.append(one)
    xs.append((rng.standard_normal(shape) * 1e-30).astype(np.float32))
    half = rng.integers(-3, 4, shape).astype(np.float32) * 0.5  # values on rounding ties
    xs.append(half)
    nan = rng.standard_normal(shape).astype(np.float32)
    nan.flat[3] = np.nan
    xs.append(nan)
    inf = rng.standard_normal(shape).astype(np.float32)
    inf.flat[0] = np.inf
    xs.append(inf)
    return xs


def same_bits(got: np.ndarray, want: np.ndarray) -> bool:
    """Equal float for float, NaN where NaN (its payload aside: numpy does not keep one through every path)."""
    nan = np.isnan(want)
    return bool(np.array_equal(np.isnan(got), nan) and np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32)))


@pytest.mark.parametrize("name", sorted(INT8_CASES))
def test_int8_bit_identical_to_the_host_runtime(micro, name):
    ffi, lib = micro
    cm, shape = convert_int8(name)
    data = cm.to_bytes()
    host = cm.load()
    m = MicroModel(ffi, lib, data)
    assert m.status == OK, error(ffi, lib)
    for i, x in enumerate(int8_inputs(shape, np.random.default_rng(11))):
        want = np.asarray(host.run(x[None]), np.float32).reshape(-1)
        got = m.run(x)
        assert same_bits(got, want), f"sample {i}: micro {got} host {want}"


def test_int8_cases_cover_every_form():
    """The cases reach every int8 form: dynamic and static, linear and conv, int8 and csr+int8 weights."""
    forms = set()
    for name in INT8_CASES:
        d = convert_int8(name)[0].to_dict()
        for n in d["nodes"]:
            if n["op"] in ("linear", "conv2d", "qlinear", "qconv2d"):
                enc = d["tensors"][n["tensors"][0]].get("encoding")
                forms.add((n["op"], enc))
    for op in ("linear", "conv2d", "qlinear", "qconv2d"):
        assert {e for o, e in forms if o == op} >= {"int8", "csr+int8"}, (op, forms)


@pytest.mark.parametrize("name", sorted(INT8_CASES))
def test_int8_sizes_exact(micro, name):
    ffi, lib = micro
    cm, _ = convert_int8(name)
    data = cm.to_bytes()
    s = sizes(ffi, lib, data)
    assert s["arena_bytes"] == s["model_bytes"] + s["weight_bytes"] + s["activation_bytes"] + 7
    assert s["weight_bytes"] > 0  # int8 values decoded into the arena
    print(name, len(data), "file bytes", s)
    assert MicroModel(ffi, lib, data).status == OK
    short = MicroModel(ffi, lib, data, s["arena_bytes"] - 1)
    assert short.status == INVALID_ARGUMENT and short.h == ffi.NULL


def test_lenet5_sizes_fit_a_microcontroller(micro):
    ffi, lib = micro
    cm, _ = convert("lenet5_pruned_shared")
    s = sizes(ffi, lib, cm.to_bytes())
    # conv1's output (6 x 24 x 24 floats) is the largest value; the plan keeps about two values alive
    assert 6 * 24 * 24 * 4 <= s["activation_bytes"] <= 2 * 6 * 24 * 24 * 4 + 4 * 16 * 25 * 4
    assert s["arena_bytes"] < 128 * 1024


def test_refusals_name_what(micro):
    ffi, lib = micro
    net = nn.Sequential(nn.Linear(8, 4), nn.Sigmoid()).eval()
    data = from_torch(net, torch.randn(2, 8)).to_bytes()
    out = ffi.new("pyrt_micro_sizes*")
    assert lib.pyrt_micro_memory_bytes(ffi.from_buffer(data), len(data), out) == UNSUPPORTED
    assert "sigmoid" in error(ffi, lib)
    bad = bytearray(data)
    bad[100] ^= 0x40
    assert lib.pyrt_micro_memory_bytes(ffi.from_buffer(bad), len(bad), out) == BAD_FORMAT
    assert "checksum" in error(ffi, lib)


# ---- stream mode (PYRT_MICRO_STREAM_WEIGHTS): Huffman-coded f32 weights decoded during each run ----


def all_cases():
    return [("f32", n) for n in sorted(CASES)] + [("int8", n) for n in sorted(INT8_CASES)]


def convert_any(kind: str, name: str):
    return convert(name) if kind == "f32" else convert_int8(name)


@pytest.mark.parametrize("kind,name", all_cases())
def test_stream_mode_bit_identical(micro, kind, name):
    """Both modes give the same floats (the same products summed in the same order), and those match the host."""
    ffi, lib = micro
    cm, shape = convert_any(kind, name)
    data = cm.to_bytes()
    host = cm.load()
    decoded = MicroModel(ffi, lib, data)
    streamed = MicroModel(ffi, lib, data, flags=STREAM)
    assert decoded.status == OK and streamed.status == OK, error(ffi, lib)
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)] if kind == "f32" else int8_inputs(shape, rng)
    for i, x in enumerate(xs):
        a, b = decoded.run(x), streamed.run(x)
        assert same_bits(b, a), f"sample {i}: stream {b} decoded {a}"
        b2 = streamed.run(x)  # a second run starts the streams over
        assert same_bits(b2, a)
        want = np.asarray(host.run(x[None]), np.float32).reshape(-1)
        if kind == "int8":
            assert same_bits(b, want)
        else:
            scale = max(1e-3, float(np.abs(want).max()))
            np.testing.assert_allclose(b, want, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("kind,name", all_cases())
def test_stream_mode_sizes_exact(micro, kind, name):
    ffi, lib = micro
    cm, _ = convert_any(kind, name)
    data = cm.to_bytes()
    d, s = sizes(ffi, lib, data), sizes(ffi, lib, data, STREAM)
    assert s["arena_bytes"] == s["model_bytes"] + s["weight_bytes"] + s["activation_bytes"] + 7
    assert all(v % 8 == 0 for k, v in s.items() if k != "arena_bytes")
    assert s["model_bytes"] == d["model_bytes"] and s["activation_bytes"] == d["activation_bytes"]
    assert s["weight_bytes"] <= d["weight_bytes"]
    if kind == "f32" and CASES[name][2]:  # coded weights: only their streams' tables stay in RAM
        assert s["weight_bytes"] < d["weight_bytes"], (s, d)
        if name.startswith("lenet5"):  # layers large enough that the tables are a small part
            assert s["weight_bytes"] < d["weight_bytes"] / 4, (s, d)
    print(name, len(data), "file bytes, stream mode", s, "default", d["arena_bytes"])
    assert MicroModel(ffi, lib, data, flags=STREAM).status == OK
    short = MicroModel(ffi, lib, data, s["arena_bytes"] - 1, flags=STREAM)
    assert short.status == INVALID_ARGUMENT and short.h == ffi.NULL
    assert "(1 bytes missing" in error(ffi, lib)


def test_stream_mode_unknown_flag_refused(micro):
    ffi, lib = micro
    data = convert("mlp_shared")[0].to_bytes()
    out = ffi.new("pyrt_micro_sizes*")
    assert lib.pyrt_micro_memory_bytes_ex(ffi.from_buffer(data), len(data), 2, out) == INVALID_ARGUMENT
    assert "unknown flags" in error(ffi, lib)
    m = MicroModel(ffi, lib, data, arena_bytes=1 << 20, flags=STREAM | 4)
    assert m.status == INVALID_ARGUMENT and m.h == ffi.NULL


def _refresh_crcs(buf: bytearray) -> bytes:
    """Every section CRC, the table CRC and the header CRC recomputed (FORMAT.md 1), so damage reaches the
    field and stream checks."""
    import struct
    import zlib

    n = struct.unpack_from("<I", buf, 24)[0]
    for i in range(n):
        offset, size = struct.unpack_from("<QQ", buf, 64 + 32 * i + 8)
        struct.pack_into("<I", buf, 64 + 32 * i + 24, zlib.crc32(buf[offset : offset + size]))
    struct.pack_into("<I", buf, 28, zlib.crc32(buf[64 : 64 + 32 * n]))
    struct.pack_into("<I", buf, 60, zlib.crc32(buf[:60]))
    return bytes(buf)


@pytest.mark.parametrize("name", ["lenet5_pruned_shared", "mlp_shared", "mlp_pruned"])
def test_stream_mode_damaged_streams(micro, name):
    """Bytes of the weight sections flipped (checksums recomputed): stream mode refuses at load what the default
    mode refuses, and what it loads runs to the default mode's outputs (tests/native/test_micro.cpp guards the
    arena)."""
    import struct

    ffi, lib = micro
    cm, shape = convert(name)
    data = cm.to_bytes()
    n = struct.unpack_from("<I", data, 24)[0]
    spans = []
    for i in range(n):
        typ = struct.unpack_from("<I", data, 64 + 32 * i)[0]
        offset, size = struct.unpack_from("<QQ", data, 64 + 32 * i + 8)
        if typ == 2 and size > 256:  # the large tensor sections: the weights
            spans.append((offset, size))
    assert spans
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(np.float32)
    refused = 0
    for offset, size in spans:
        for at in rng.choice(np.arange(offset + 64, offset + size), 60, replace=False):
            bad = bytearray(data)
            bad[int(at)] ^= int(rng.integers(1, 256))
            bad = _refresh_crcs(bad)
            d = MicroModel(ffi, lib, bad) if _sizes_status(ffi, lib, bad, 0) == OK else None
            s_st = _sizes_status(ffi, lib, bad, STREAM)
            assert (d is not None) == (s_st == OK), (at, error(ffi, lib))
            if d is None:
                refused += 1
                m = MicroModel(ffi, lib, bad, arena_bytes=1 << 20, flags=STREAM)
                assert m.status == BAD_FORMAT and m.h == ffi.NULL
                continue
            s = MicroModel(ffi, lib, bad, flags=STREAM)
            assert d.status == OK and s.status == OK
            assert same_bits(s.run(x), d.run(x)), at
    assert refused > 0  # the streams' own checks (Huffman codes, index ranges, column bounds) were reached


def _sizes_status(ffi, lib, data: bytes, flags: int) -> int:
    out = ffi.new("pyrt_micro_sizes*")
    return lib.pyrt_micro_memory_bytes_ex(ffi.from_buffer(data), len(data), flags, out)
