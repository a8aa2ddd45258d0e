"""The plain C API (csrc/include/pyruntime.h), driven through cffi in ABI mode against the shipped
libpyruntime.so. The declarations come from the header itself, so a header that drifts from the
library fails here. pyruntime._core is used only to write model bytes; every load and run goes
through the C library.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import threading

import numpy as np
import pytest

cffi = pytest.importorskip("cffi")

ROOT = pathlib.Path(__file__).resolve().parents[2]
STATUS = [
    "PYRT_OK",
    "PYRT_INVALID_ARGUMENT",
    "PYRT_BAD_FORMAT",
    "PYRT_UNSUPPORTED",
    "PYRT_OUT_OF_MEMORY",
    "PYRT_IO_ERROR",
    "PYRT_INTERNAL",
]


def package_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("pyruntime")  # locates the package without importing _core
    assert spec is not None and spec.origin is not None
    return pathlib.Path(spec.origin).parent


def header_path() -> pathlib.Path:
    for p in (package_dir() / "include" / "pyruntime.h", ROOT / "csrc" / "include" / "pyruntime.h"):
        if p.exists():
            return p
    pytest.skip("pyruntime.h not found next to the package or in the source tree")


def cdef_from_header(text: str) -> str:
    """The C declarations of pyruntime.h, as cffi's cdef takes them."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    text = re.sub(r"//[^\n]*", "", text)
    out, skipping = [], 0
    for line in text.splitlines():
        s = line.strip()
        if s.startswith(("#ifdef __cplusplus", "#if defined(_WIN32)")):
            skipping += 1
        elif s.startswith("#endif") and skipping:
            skipping -= 1
        elif s.startswith("#"):
            m = re.match(r"#define\s+(PYRT_\w+)\s+(\d+)\s*$", s)  # integer constants
            if m and not skipping:
                out.append(f"#define {m.group(1)} {m.group(2)}")
        elif not skipping:
            out.append(line.replace("PYRT_API ", ""))
    return "\n".join(out)


@pytest.fixture(scope="module")
def capi():
    lib_path = package_dir() / "lib" / "libpyruntime.so"
    if not lib_path.exists():
        pytest.skip(f"{lib_path} is not built (PYRT_BUILD_CAPI_SHARED=OFF or no build yet)")
    ffi = cffi.FFI()
    ffi.cdef(cdef_from_header(header_path().read_text()))
    lib = ffi.dlopen(str(lib_path))
    return ffi, lib


@pytest.fixture
def ffi(capi):
    return capi[0]


@pytest.fixture
def lib(capi):
    return capi[1]


def last_error(ffi, lib) -> str:
    return ffi.string(lib.pyrt_last_error()).decode()


def ok(ffi, lib, status) -> None:
    assert status == lib.PYRT_OK, (STATUS[status], last_error(ffi, lib))


class Model:
    """A pyrt_model* with the helpers the tests need; freed on close()."""

    def __init__(self, ffi, lib, handle):
        self.ffi, self.lib, self.h = ffi, lib, handle

    @classmethod
    def from_bytes(cls, ffi, lib, data: bytes) -> Model:
        out = ffi.new("pyrt_model**")
        buf = ffi.from_buffer(data)
        ok(ffi, lib, lib.pyrt_model_load_buffer(buf, len(data), out))
        assert out[0] != ffi.NULL
        return cls(ffi, lib, out[0])

    def shape(self, which: str) -> tuple[int, ...]:
        rank, dims = self.ffi.new("size_t*"), self.ffi.new("size_t[4]")
        fn = self.lib.pyrt_model_input_shape if which == "input" else self.lib.pyrt_model_output_shape
        ok(self.ffi, self.lib, fn(self.h, rank, dims))
        assert all(dims[i] == 0 for i in range(rank[0], 4))
        return tuple(dims[i] for i in range(rank[0]))

    def session(self, max_batch: int, arena=None, arena_bytes: int = 0):
        out = self.ffi.new("pyrt_session**")
        if arena is None:
            ok(self.ffi, self.lib, self.lib.pyrt_session_create(self.h, max_batch, out))
        else:
            ok(
                self.ffi,
                self.lib,
                self.lib.pyrt_session_create_with_arena(self.h, max_batch, arena, arena_bytes, out),
            )
        return self.ffi.gc(out[0], self.lib.pyrt_session_free)

    def run(self, session, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        y = np.full((x.shape[0], *self.shape("output")), np.nan, np.float32)
        st = self.lib.pyrt_session_run(
            session, self.ffi.from_buffer("float[]", x), x.shape[0], self.ffi.from_buffer("float[]", y)
        )
        ok(self.ffi, self.lib, st)
        return y

    def close(self) -> None:
        self.lib.pyrt_model_free(self.h)
        self.h = self.ffi.NULL


@pytest.fixture(scope="module")
def model_dict(helpers):
    rng = np.random.default_rng(11)
    # rank-4 input (flatten first), every encoding, softmax output
    return helpers.mlp(
        rng, [120, 40, 30, 20, 10], ["csr", "codebook", "csr+codebook", "dense"], input_shape=[2, 3, 4, 5]
    )


def model_bytes_of(model_dict) -> bytes:
    from pyruntime import _core  # the writer only

    return _core.write_model(model_dict)


@pytest.fixture(scope="module")
def model_bytes(model_dict) -> bytes:
    return model_bytes_of(model_dict)


@pytest.fixture
def model(ffi, lib, model_bytes):
    m = Model.from_bytes(ffi, lib, model_bytes)
    yield m
    m.close()


# ---- basics -------------------------------------------------------------------------------------------


def test_constants_and_status_names(ffi, lib):
    assert lib.PYRT_FORMAT_VERSION == 5
    for i, name in enumerate(STATUS):
        assert getattr(lib, name) == i
        assert ffi.string(lib.pyrt_status_name(i)).decode() == name
    assert ffi.string(lib.pyrt_status_name(99)).decode() == "PYRT_UNKNOWN_STATUS"


def test_load_from_buffer_shapes(ffi, lib, model, model_dict):
    assert model.shape("input") == (2, 3, 4, 5)
    assert model.shape("output") == (10,)
    assert lib.pyrt_model_input_size(model.h) == 120
    assert lib.pyrt_model_output_size(model.h) == 10
    assert lib.pyrt_model_num_layers(model.h) == len(model_dict["nodes"])
    assert lib.pyrt_model_weight_bytes(model.h) > 0
    assert last_error(ffi, lib) == ""


def test_model_work_counts_multiply_adds_and_window_reads(ffi, lib, helpers, rng):
    # conv 3->4 3x3 pad 1 on 6x6 (36 positions, csr weight), relu, 2x2 max pool (9 windows of 4), flatten
    w = helpers.tensor(rng, "csr", (4, 3, 3, 3), density=0.5)
    nnz = len(w["colidx"])
    model = {
        "input_shape": [3, 6, 6],
        "nodes": [
            {"op": "conv2d", "inputs": [0], "tensors": [0],
             "attrs": {"stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1}},
            {"op": "relu", "inputs": [1]},
            {"op": "max_pool2d", "inputs": [2],
             "attrs": {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0, 0, 0], "ceil_mode": 0}},
            {"op": "flatten", "inputs": [3]},
        ],
        "tensors": [w],
    }  # fmt: skip
    m = Model.from_bytes(ffi, lib, model_bytes_of(model))
    try:
        assert lib.pyrt_model_work(m.h) == nnz * 36 + 4 * 36 + 4 * 9 * 4
    finally:
        m.close()
    assert lib.pyrt_model_work(ffi.NULL) == 0


def test_load_from_file(ffi, lib, tmp_path, model_bytes, model_dict, helpers):
    path = tmp_path / "model.pyrt"
    path.write_bytes(model_bytes)
    out = ffi.new("pyrt_model**")
    ok(ffi, lib, lib.pyrt_model_load_file(str(path).encode(), out))
    m = Model(ffi, lib, out[0])
    try:
        assert m.shape("input") == (2, 3, 4, 5)
        x = np.random.default_rng(0).standard_normal((3, 2, 3, 4, 5)).astype(np.float32)
        np.testing.assert_allclose(
            m.run(m.session(3), x), helpers.forward(model_dict, x), rtol=1e-4, atol=1e-6
        )
    finally:
        m.close()


@pytest.mark.parametrize("max_batch", [1, 5, 64])
def test_run_matches_numpy(model, model_dict, helpers, max_batch):
    rng = np.random.default_rng(max_batch)
    s = model.session(max_batch)
    for batch in sorted({1, max(1, max_batch // 2), max_batch}):
        x = helpers.random_input(rng, model_dict, batch)
        y = model.run(s, x)
        np.testing.assert_allclose(y, helpers.forward(model_dict, x), rtol=1e-4, atol=1e-6)
        # one batch equals its samples run one at a time
        np.testing.assert_allclose(y[-1:], model.run(s, x[-1:]), rtol=1e-6, atol=1e-7)


def test_model_does_not_reference_the_buffer(ffi, lib, model_bytes, model_dict, helpers):
    buf = bytearray(model_bytes)
    m = Model.from_bytes(ffi, lib, bytes(buf))
    try:
        buf[:] = bytes(len(buf))
        del buf
        x = helpers.random_input(np.random.default_rng(1), model_dict, 2)
        np.testing.assert_allclose(
            m.run(m.session(2), x), helpers.forward(model_dict, x), rtol=1e-4, atol=1e-6
        )
    finally:
        m.close()


# ---- caller-owned arena -------------------------------------------------------------------------------


def aligned_address(ffi, buf) -> int:
    return int(ffi.cast("uintptr_t", buf))


@pytest.mark.parametrize("misalign", [0, 1, 8, 63])
def test_session_with_arena(ffi, lib, model, model_dict, helpers, misalign):
    batch = 4
    need = lib.pyrt_session_arena_bytes(model.h, batch)
    assert need > 64
    # a buffer with room to place the arena at a chosen misalignment, and canaries on both sides
    raw = ffi.new("unsigned char[]", need + 256)
    base = aligned_address(ffi, raw)
    start = (-base) % 64 + 64 + misalign
    ffi.memmove(raw, b"\xa5" * (need + 256), need + 256)
    arena = raw + start
    s = model.session(batch, arena, need)
    x = helpers.random_input(np.random.default_rng(misalign), model_dict, batch)
    np.testing.assert_allclose(model.run(s, x), helpers.forward(model_dict, x), rtol=1e-4, atol=1e-6)
    data = bytes(ffi.buffer(raw, need + 256))
    assert data[:start] == b"\xa5" * start, "wrote before the arena"
    assert data[start + need :] == b"\xa5" * (256 - start), "wrote past the arena"
    assert data[start : start + need] != b"\xa5" * need, "the session did not use the caller's arena"


def test_arena_size_boundary(ffi, lib, model):
    need = lib.pyrt_session_arena_bytes(model.h, 2)
    raw = ffi.new("unsigned char[]", need + 128)
    aligned = raw + (-aligned_address(ffi, raw)) % 64
    out = ffi.new("pyrt_session**")
    # at a 64-byte aligned address the 64 bytes of alignment slack are not needed
    ok(ffi, lib, lib.pyrt_session_create_with_arena(model.h, 2, aligned, need - 64, out))
    lib.pyrt_session_free(out[0])
    st = lib.pyrt_session_create_with_arena(model.h, 2, aligned, need - 65, out)
    assert st == lib.PYRT_INVALID_ARGUMENT
    msg = last_error(ffi, lib)
    assert "too small" in msg and str(need) in msg
    assert out[0] == ffi.NULL
    # the worst misalignment (1 past a boundary) costs 63 bytes of slack
    worst = aligned + 1
    assert lib.pyrt_session_create_with_arena(model.h, 2, worst, need - 2, out) == lib.PYRT_INVALID_ARGUMENT
    ok(ffi, lib, lib.pyrt_session_create_with_arena(model.h, 2, worst, need - 1, out))
    lib.pyrt_session_free(out[0])


def test_arena_too_small_or_null(ffi, lib, model):
    out = ffi.new("pyrt_session**")
    tiny = ffi.new("unsigned char[]", 1)
    assert lib.pyrt_session_create_with_arena(model.h, 1, tiny, 1, out) == lib.PYRT_INVALID_ARGUMENT
    assert "too small" in last_error(ffi, lib)
    assert lib.pyrt_session_create_with_arena(model.h, 1, ffi.NULL, 1 << 20, out) == lib.PYRT_INVALID_ARGUMENT
    assert "arena is null" in last_error(ffi, lib)


def test_arena_bytes_grows_with_batch(lib, model):
    sizes = [lib.pyrt_session_arena_bytes(model.h, b) for b in (1, 2, 8, 64)]
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0]


# ---- errors -------------------------------------------------------------------------------------------


def test_batch_out_of_range(ffi, lib, model):
    s = model.session(4)
    x = np.zeros((5, 120), np.float32)
    y = np.zeros((5, 10), np.float32)
    for batch in (5, 0):
        st = lib.pyrt_session_run(s, ffi.from_buffer("float[]", x), batch, ffi.from_buffer("float[]", y))
        assert st == lib.PYRT_INVALID_ARGUMENT
        assert f"batch {batch} not in 1..4" in last_error(ffi, lib)
    out = ffi.new("pyrt_session**")
    assert lib.pyrt_session_create(model.h, 0, out) == lib.PYRT_INVALID_ARGUMENT
    assert "max_batch 0" in last_error(ffi, lib)


def test_corrupt_buffer(ffi, lib, model_bytes):
    out = ffi.new("pyrt_model**")
    cases = {
        "checksum": bytes(model_bytes[:200]) + bytes([model_bytes[200] ^ 0xFF]) + model_bytes[201:],
        "truncated": model_bytes[:-1],
        "magic": b"NOTAPYRT" + model_bytes[8:],
        "shorter than the 64-byte header": model_bytes[:10],
    }
    for words, data in cases.items():
        out[0] = ffi.cast("pyrt_model*", 1)  # must be reset to NULL on failure
        st = lib.pyrt_model_load_buffer(ffi.from_buffer(data), len(data), out)
        assert st == lib.PYRT_BAD_FORMAT, words
        assert out[0] == ffi.NULL
        assert words in last_error(ffi, lib)


def test_newer_version_is_a_format_error(ffi, lib, model_bytes):
    import struct
    import zlib

    data = bytearray(model_bytes)
    struct.pack_into("<I", data, 8, lib.PYRT_FORMAT_VERSION + 1)
    struct.pack_into("<I", data, 60, zlib.crc32(bytes(data[:60])))
    out = ffi.new("pyrt_model**")
    assert lib.pyrt_model_load_buffer(ffi.from_buffer(bytes(data)), len(data), out) == lib.PYRT_BAD_FORMAT
    msg = last_error(ffi, lib)
    assert f"version {lib.PYRT_FORMAT_VERSION + 1}" in msg and f"1..{lib.PYRT_FORMAT_VERSION}" in msg


def test_missing_file(ffi, lib, tmp_path):
    out = ffi.new("pyrt_model**")
    path = str(tmp_path / "missing.pyrt").encode()
    assert lib.pyrt_model_load_file(path, out) == lib.PYRT_IO_ERROR
    msg = last_error(ffi, lib)
    assert "missing.pyrt" in msg and "cannot open" in msg
    assert out[0] == ffi.NULL


def test_null_pointers(ffi, lib, model, model_bytes):
    NULL = ffi.NULL
    out_m, out_s = ffi.new("pyrt_model**"), ffi.new("pyrt_session**")
    rank, dims = ffi.new("size_t*"), ffi.new("size_t[4]")
    buf = ffi.from_buffer(model_bytes)
    x = ffi.new("float[]", 120)
    y = ffi.new("float[]", 10)
    s = model.session(1)
    calls = {
        "data is null": lambda: lib.pyrt_model_load_buffer(NULL, len(model_bytes), out_m),
        "out_model is null": lambda: lib.pyrt_model_load_buffer(buf, len(model_bytes), NULL),
        "path is null": lambda: lib.pyrt_model_load_file(NULL, out_m),
        "out_model is null ": lambda: lib.pyrt_model_load_file(b"x.pyrt", NULL),
        "model is null": lambda: lib.pyrt_model_input_shape(NULL, rank, dims),
        "model is null ": lambda: lib.pyrt_model_output_shape(NULL, rank, dims),
        "rank is null": lambda: lib.pyrt_model_input_shape(model.h, NULL, dims),
        "dims is null": lambda: lib.pyrt_model_output_shape(model.h, rank, NULL),
        "model is null  ": lambda: lib.pyrt_session_create(NULL, 1, out_s),
        "out_session is null": lambda: lib.pyrt_session_create(model.h, 1, NULL),
        "model is null   ": lambda: lib.pyrt_session_create_with_arena(NULL, 1, x, 4096, out_s),
        "session is null": lambda: lib.pyrt_session_run(NULL, x, 1, y),
        "input or output is null": lambda: lib.pyrt_session_run(s, NULL, 1, y),
        "input or output is null ": lambda: lib.pyrt_session_run(s, x, 1, NULL),
    }
    for words, call in calls.items():
        assert call() == lib.PYRT_INVALID_ARGUMENT, words
        assert words.strip() in last_error(ffi, lib)
    # queries and frees of NULL are harmless
    assert lib.pyrt_model_input_size(NULL) == 0
    assert lib.pyrt_model_output_size(NULL) == 0
    assert lib.pyrt_model_num_layers(NULL) == 0
    assert lib.pyrt_model_weight_bytes(NULL) == 0
    assert lib.pyrt_session_arena_bytes(NULL, 1) == 0
    lib.pyrt_model_free(NULL)
    lib.pyrt_session_free(NULL)


def test_last_error_is_cleared_by_success(ffi, lib, model_bytes):
    out = ffi.new("pyrt_model**")
    assert lib.pyrt_model_load_buffer(ffi.from_buffer(model_bytes[:-1]), len(model_bytes) - 1, out) != 0
    assert last_error(ffi, lib)
    m = Model.from_bytes(ffi, lib, model_bytes)
    assert last_error(ffi, lib) == ""
    m.close()


def test_last_error_is_per_thread(ffi, lib, model_bytes):
    out = ffi.new("pyrt_model**")
    assert lib.pyrt_model_load_buffer(ffi.from_buffer(model_bytes[:-1]), len(model_bytes) - 1, out) != 0
    mine = last_error(ffi, lib)
    theirs = {}

    def other():
        theirs["before"] = last_error(ffi, lib)
        lib.pyrt_model_load_file(b"/nonexistent/dir/x.pyrt", ffi.new("pyrt_model**"))
        theirs["after"] = last_error(ffi, lib)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert theirs["before"] == ""
    assert "cannot open" in theirs["after"]
    assert last_error(ffi, lib) == mine


def test_one_model_many_threads(model, model_dict, helpers):
    """A model is shared; each thread runs its own session (cffi releases the GIL during the call)."""
    results, errors = {}, []

    def worker(i):
        try:
            rng = np.random.default_rng(100 + i)
            s = model.session(8)
            for _ in range(20):
                x = helpers.random_input(rng, model_dict, 8)
                np.testing.assert_allclose(
                    model.run(s, x), helpers.forward(model_dict, x), rtol=1e-4, atol=1e-6
                )
            results[i] = True
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 4


@pytest.mark.parametrize("max_batch", [0, 2**24 + 1, 2**40, 2**62, 2**64 - 1])
def test_arena_bytes_out_of_range_batch(lib, model, max_batch):
    """A max_batch no session accepts gets 0 (as a null model does) or SIZE_MAX, never a wrapped size."""
    assert lib.pyrt_session_arena_bytes(model.h, max_batch) in (0, 2**64 - 1)


def test_load_file_mapped(ffi, lib, model_bytes, tmp_path, helpers):
    rng = np.random.default_rng(2)
    dense_dict = helpers.mlp(rng, [30, 20, 10], ["dense", "dense"])
    dense_bytes = model_bytes_of(dense_dict)
    for name, data, in_place in (("dense.pyrt", dense_bytes, 4 * (20 * 30 + 20 + 10 * 20 + 10)),
                                 ("compressed.pyrt", model_bytes, 0)):  # mostly compressed: copied, unmapped
        path = tmp_path / name
        path.write_bytes(data)
        out = ffi.new("pyrt_model**")
        ok(ffi, lib, lib.pyrt_model_load_file_mapped(str(path).encode(), out))
        mapped = Model(ffi, lib, out[0])
        reference = Model.from_bytes(ffi, lib, data)
        try:
            assert lib.pyrt_model_in_place_bytes(mapped.h) == in_place
            assert lib.pyrt_model_in_place_bytes(reference.h) == 0
            x = rng.standard_normal((4, *mapped.shape("input"))).astype(np.float32)
            np.testing.assert_array_equal(mapped.run(mapped.session(4), x), reference.run(reference.session(4), x))
        finally:
            mapped.close()
            reference.close()
    out = ffi.new("pyrt_model**")
    assert lib.pyrt_model_in_place_bytes(ffi.NULL) == 0
    assert lib.pyrt_model_load_file_mapped(str(tmp_path / "missing.pyrt").encode(), out) == lib.PYRT_IO_ERROR
    assert "missing.pyrt" in last_error(ffi, lib)
    (tmp_path / "cut.pyrt").write_bytes(model_bytes[:-3])
    assert lib.pyrt_model_load_file_mapped(str(tmp_path / "cut.pyrt").encode(), out) == lib.PYRT_BAD_FORMAT
    assert "truncated" in last_error(ffi, lib)
    assert lib.pyrt_model_load_file_mapped(ffi.NULL, out) == lib.PYRT_INVALID_ARGUMENT


def test_threads(ffi, lib, helpers):
    rng = np.random.default_rng(4)
    data = model_bytes_of(helpers.mlp(rng, [512, 384, 10], ["dense", "csr"], final=None))
    one, many = Model.from_bytes(ffi, lib, data), Model.from_bytes(ffi, lib, data)
    try:
        assert lib.pyrt_model_threads(one.h) == 1  # the default after loading
        ok(ffi, lib, lib.pyrt_model_set_threads(many.h, 3))
        assert lib.pyrt_model_threads(many.h) == 3
        for batch in (1, 4):
            x = rng.standard_normal((batch, 512)).astype(np.float32)
            got, want = many.run(many.session(batch), x), one.run(one.session(batch), x)
            if batch == 1:
                np.testing.assert_array_equal(got, want)
            else:
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))
        ok(ffi, lib, lib.pyrt_model_set_threads(many.h, 1))
        assert lib.pyrt_model_threads(many.h) == 1
        assert lib.pyrt_model_set_threads(many.h, 5000) == lib.PYRT_INVALID_ARGUMENT
        assert "threads 5000" in last_error(ffi, lib)
        assert lib.pyrt_model_set_threads(ffi.NULL, 2) == lib.PYRT_INVALID_ARGUMENT
        assert lib.pyrt_model_threads(ffi.NULL) == 0
    finally:
        one.close()
        many.close()


# ---- several inputs and outputs (format version 5) ------------------------------------------------------


def test_a_model_of_ids_and_two_outputs_through_run_multi(ffi, lib):
    """input_ids (i32) and a mask-like f32 input; two outputs. pyrt_session_run refuses such a model, and an id
    outside the embedding table fails the run with a message naming it."""
    from pyruntime import _core

    rng = np.random.default_rng(3)
    table = rng.standard_normal((9, 4)).astype(np.float32)
    data = _core.write_model({
        "inputs": [{"shape": [6], "type": "i32"}, {"shape": [6, 1], "type": "f32"}],
        "nodes": [{"op": "embedding", "inputs": [0], "tensors": [0]},
                  {"op": "mul", "inputs": [2, 1]},
                  {"op": "sigmoid", "inputs": [3]}],
        "outputs": [4, 2],
        "tensors": [{"name": "emb", "encoding": "dense", "shape": [9, 4], "values": table.ravel()}],
    })
    m = Model.from_bytes(ffi, lib, data)
    try:
        assert lib.pyrt_model_num_inputs(m.h) == 2 and lib.pyrt_model_num_outputs(m.h) == 2
        dtype, rank, dims = ffi.new("pyrt_dtype*"), ffi.new("size_t*"), ffi.new("size_t[4]")
        ok(ffi, lib, lib.pyrt_model_input_info(m.h, 0, dtype, rank, dims))
        assert dtype[0] == lib.PYRT_I32 and rank[0] == 1 and dims[0] == 6
        ok(ffi, lib, lib.pyrt_model_input_info(m.h, 1, dtype, rank, dims))
        assert dtype[0] == lib.PYRT_F32 and (rank[0], dims[0], dims[1]) == (2, 6, 1)
        ok(ffi, lib, lib.pyrt_model_output_info(m.h, 1, rank, dims))
        assert (rank[0], dims[0], dims[1]) == (2, 6, 4)
        assert lib.pyrt_model_input_info(m.h, 2, dtype, rank, dims) == lib.PYRT_INVALID_ARGUMENT
        assert "input 2 of a model of 2 inputs" in last_error(ffi, lib)

        s = m.session(4)
        ids = rng.integers(0, 9, (3, 6)).astype(np.int32)
        mask = rng.random((3, 6, 1)).astype(np.float32)
        y0 = np.full((3, 6, 4), np.nan, np.float32)
        y1 = np.full((3, 6, 4), np.nan, np.float32)
        ins = ffi.new("void*[2]", [ffi.from_buffer(ids), ffi.from_buffer(mask)])
        outs = ffi.new("float*[2]", [ffi.from_buffer("float[]", y0), ffi.from_buffer("float[]", y1)])
        ok(ffi, lib, lib.pyrt_session_run_multi(s, ins, 3, outs))
        np.testing.assert_array_equal(y1, table[ids])
        np.testing.assert_allclose(y0, 1 / (1 + np.exp(-(table[ids] * mask))), rtol=1e-6, atol=1e-7)

        x = ffi.new("float[]", 6)
        y = ffi.new("float[]", 24)
        assert lib.pyrt_session_run(s, x, 1, y) == lib.PYRT_INVALID_ARGUMENT
        assert "pyrt_session_run_multi" in last_error(ffi, lib)

        ids[1, 2] = 9
        assert lib.pyrt_session_run_multi(s, ins, 3, outs) == lib.PYRT_INVALID_ARGUMENT
        assert "id 9" in last_error(ffi, lib)
        assert lib.pyrt_session_run_multi(s, ffi.NULL, 3, outs) == lib.PYRT_INVALID_ARGUMENT
    finally:
        m.close()
