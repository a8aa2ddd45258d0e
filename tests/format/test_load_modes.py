"""Loading modes: from bytes, from a path (read into memory) and from a memory-mapped path, where dense
float32 tensors are used in place. All three must give identical results, and a mapped model must keep
its file alive for as long as it needs it, and no longer.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import pyruntime
from pyruntime import _core

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def mapped_files() -> str:
    """This process's memory map (Linux), "" elsewhere."""
    if not os.path.exists("/proc/self/maps"):
        return ""
    with open("/proc/self/maps") as f:
        return f.read()


def write(tmp_path, model: dict, name: str = "m.pyrt") -> tuple[str, bytes]:
    data = _core.write_model(model)
    path = tmp_path / name
    path.write_bytes(data)
    return str(path), data


def weight_and_bias_bytes(model: dict, encodings=("dense",)) -> int:
    used = {t for n in model["nodes"] for t in n.get("tensors", [])}
    return sum(4 * int(np.prod(model["tensors"][t]["shape"])) for t in used
               if model["tensors"][t]["encoding"] in encodings)


@pytest.mark.parametrize(
    "encodings", [("dense", "dense"), ("csr", "codebook"), ("dense", "csr+codebook"), ("codebook", "dense")]
)
def test_three_modes_agree(tmp_path, helpers, encodings):
    rng = np.random.default_rng(3)
    model = helpers.mlp(rng, [48, 40, 10], list(encodings))
    path, data = write(tmp_path, model)
    x = helpers.random_input(rng, model, 5)
    by_bytes = pyruntime.load(data)
    by_path = pyruntime.load(path)
    mapped = pyruntime.load(path, mmap=True)
    want = by_bytes.run(x)
    np.testing.assert_array_equal(by_path.run(x), want)
    np.testing.assert_array_equal(mapped.run(x), want)
    np.testing.assert_allclose(want, helpers.forward(model, x), rtol=1e-5, atol=1e-6)
    # dense tensors are used in place when they are at least half of the file; compressed ones never are
    dense = weight_and_bias_bytes(model)
    in_place = 2 * dense >= len(data)
    assert mapped.in_place_bytes == (dense if in_place else 0)
    assert by_bytes.in_place_bytes == by_path.in_place_bytes == 0
    weights = [layer for layer in mapped.layers() if layer["encoding"]]
    assert [layer["in_place"] for layer in weights] == [in_place and e == "dense" for e in encodings]
    assert not any(layer["in_place"] for layer in by_path.layers())


@pytest.mark.parametrize("bias", [False, True])
def test_compressed_model_releases_the_mapping(tmp_path, helpers, bias):
    """Little or nothing to use in place (dense biases of compressed layers): the dense tensors are
    copied and the file is unmapped before load() returns."""
    rng = np.random.default_rng(4)
    model = helpers.mlp(rng, [256, 128, 8], ["csr+codebook", "codebook"], bias=bias)
    path, data = write(tmp_path, model)
    assert 2 * weight_and_bias_bytes(model) < len(data)
    m = pyruntime.load(path, mmap=True)
    assert m.in_place_bytes == 0
    assert path not in mapped_files()
    x = helpers.random_input(rng, model, 2)
    np.testing.assert_array_equal(m.run(x), pyruntime.load(data).run(x))


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc/self/maps")
def test_mapping_lives_exactly_as_long_as_the_model(tmp_path, helpers):
    rng = np.random.default_rng(5)
    model = helpers.mlp(rng, [64, 32, 10], ["dense", "dense"])
    path, _ = write(tmp_path, model)
    m = pyruntime.load(path, mmap=True)
    assert path in mapped_files()
    del m
    assert path not in mapped_files()


def test_mapped_model_survives_unlink(tmp_path, helpers):
    """Deleting the file (not rewriting it) is safe: the mapping holds the data."""
    rng = np.random.default_rng(6)
    model = helpers.mlp(rng, [40, 24, 10], ["dense", "csr"])
    path, data = write(tmp_path, model)
    m = pyruntime.load(path, mmap=True)
    os.unlink(path)
    x = helpers.random_input(rng, model, 3)
    np.testing.assert_array_equal(m.run(x), pyruntime.load(data).run(x))


def page_end_model(helpers) -> dict:
    """A one-layer dense model whose last tensor (the bias) ends exactly at a page boundary, which is
    the end of the file: any kernel reading past the last weight or bias would fault on the next page."""
    rng = np.random.default_rng(7)
    for cols in range(8, 200):
        for rows in range(16, 400, 16):
            model = helpers.mlp(rng, [cols, rows], ["dense"], final=None)
            if len(_core.write_model(model)) % PAGE == 0:
                return model
    raise AssertionError("no page-aligned layout found")


@pytest.mark.parametrize("isa", _core.supported_isas())
@pytest.mark.parametrize("batch", [1, 3, 17])
def test_dense_in_place_up_to_the_last_byte_of_the_file(tmp_path, helpers, isa, batch):
    model = page_end_model(helpers)
    path, data = write(tmp_path, model)
    assert len(data) % PAGE == 0
    m = pyruntime.load(path, mmap=True)
    assert m.in_place_bytes == weight_and_bias_bytes(model)
    x = helpers.random_input(np.random.default_rng(batch), model, batch)
    previous = _core.active_isa()
    try:
        _core.set_isa(isa)
        got = m.run(x)
    finally:
        _core.set_isa(previous)
    np.testing.assert_allclose(got, helpers.forward(model, x), rtol=1e-5, atol=1e-5)


def test_mmap_needs_a_path(helpers):
    model = helpers.mlp(np.random.default_rng(8), [8, 4], ["dense"])
    with pytest.raises(ValueError, match="mmap=True needs a file path"):
        pyruntime.load(_core.write_model(model), mmap=True)


@pytest.mark.parametrize("mmap", [False, True])
def test_bad_files_by_path(tmp_path, helpers, mmap):
    model = helpers.mlp(np.random.default_rng(9), [16, 8, 4], ["dense", "codebook"])
    _, data = write(tmp_path, model)
    cases = {"empty.pyrt": b"", "short.pyrt": data[:40], "cut.pyrt": data[:-1],
             "flipped.pyrt": data[:100] + bytes([data[100] ^ 0x10]) + data[101:]}
    for name, content in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(pyruntime.FormatError):
            pyruntime.load(str(p), mmap=mmap)
    with pytest.raises(OSError, match="directory"):
        pyruntime.load(str(tmp_path), mmap=mmap)
    with pytest.raises(OSError, match="cannot open"):
        pyruntime.load(str(tmp_path / "missing.pyrt"), mmap=mmap)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_load_from_a_pipe(tmp_path, helpers):
    """A path that cannot be mapped (a FIFO) is read instead."""
    import threading

    model = helpers.mlp(np.random.default_rng(10), [16, 8], ["csr"])
    data = _core.write_model(model)
    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(data))
    writer.start()
    m = pyruntime.load(str(fifo), mmap=True)
    writer.join()
    x = helpers.random_input(np.random.default_rng(0), model, 2)
    np.testing.assert_array_equal(m.run(x), pyruntime.load(data).run(x))
    assert m.in_place_bytes == 0


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
@pytest.mark.parametrize("mmap", [False, True])
def test_endless_stream_is_refused_not_read_forever(mmap):
    with pytest.raises(pyruntime.FormatError, match="wrong magic"):
        pyruntime.load("/dev/zero", mmap=mmap)


def mapping_rss_kib(path: str) -> int:
    """Resident KiB of this process's mappings of `path` (/proc/self/smaps): the pages touched through them."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                inside = line.rstrip("\n").endswith(path)
            elif inside and head[0] == "Rss:":
                total += int(head[1])
    return total


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs /proc/self/smaps")
def test_mmap_load_never_touches_the_mapping(tmp_path, helpers):
    """The file is read, validated and decoded from memory; the mapping is made afterwards for the dense
    tensors used in place and not touched until a run reads them. So a file truncated while it loads gives
    a short read (a FormatError), never SIGBUS."""
    rng = np.random.default_rng(11)
    model = helpers.mlp(rng, [1024, 512, 10], ["dense", "dense"], final=None)
    path, data = write(tmp_path, model)
    m = pyruntime.load(path, mmap=True)
    assert m.in_place_bytes == weight_and_bias_bytes(model) and path in mapped_files()
    assert mapping_rss_kib(path) == 0
    x = helpers.random_input(rng, model, 2)
    np.testing.assert_array_equal(m.run(x), pyruntime.load(data).run(x))
    assert mapping_rss_kib(path) * 1024 >= 512 * 1024 * 4 * 0.9  # the run read the weights through it


TRUNCATE_WHILE_LOADING = r"""
import os, sys, threading, time
import pyruntime
path, data = sys.argv[1], open(sys.argv[1], "rb").read()
outcomes = {"loaded": 0, "refused": 0}
for i in range(int(sys.argv[2])):
    with open(path, "wb") as f:
        f.write(data)
    cut = threading.Thread(target=lambda: (time.sleep(0.0002 * (i % 10)), os.truncate(path, 4096)))
    cut.start()
    try:
        m = pyruntime.load(path, mmap=True)
        m.run  # a model that loaded uses a mapping of a file now cut: it is not run here
        outcomes["loaded"] += 1
    except (pyruntime.FormatError, OSError):
        outcomes["refused"] += 1
    cut.join()
print(outcomes)
"""


@pytest.mark.skipif(not hasattr(os, "truncate"), reason="needs os.truncate")
def test_truncating_the_file_during_a_mapped_load_is_never_fatal(tmp_path, helpers):
    """Another process (here a thread) truncating the file during load(path, mmap=True): the load either
    finishes or raises, and the process lives (it was SIGBUS 12 times in 60 before the load was made to
    read instead of touching the mapping)."""
    import subprocess
    import sys

    model = helpers.mlp(np.random.default_rng(12), [1024, 1024, 10], ["dense", "dense"], final=None)
    path, _ = write(tmp_path, model)
    # the child imports the pyruntime this test imported (installed, in-tree or the sanitizer overlay), not
    # whatever its working directory holds
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(pyruntime.__file__))}
    r = subprocess.run([sys.executable, "-c", TRUNCATE_WHILE_LOADING, path, "60"], check=False, capture_output=True,
                       text=True, timeout=120, cwd=tmp_path, env=env)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr[-2000:]}"
    assert "refused" in r.stdout


def test_replacing_the_file_by_rename_keeps_the_mapped_model(tmp_path, helpers):
    """The documented way to update a model file under a mapped model: write a new file, rename it over."""
    rng = np.random.default_rng(13)
    old_model = helpers.mlp(rng, [64, 32, 10], ["dense", "dense"], final=None)
    path, old_data = write(tmp_path, old_model)
    m = pyruntime.load(path, mmap=True)
    assert m.in_place_bytes > 0
    new_path, _ = write(tmp_path, helpers.mlp(rng, [64, 32, 10], ["dense", "dense"], final=None), "new.pyrt")
    os.replace(new_path, path)
    x = helpers.random_input(rng, old_model, 3)
    np.testing.assert_array_equal(m.run(x), pyruntime.load(old_data).run(x))


@pytest.mark.parametrize("mmap", [False, True])
def test_a_path_with_a_null_byte_is_refused(tmp_path, helpers, mmap):
    """"m.pyrt\0.ignored" would open m.pyrt through a C string: refused, as Python's open() refuses it."""
    path, _ = write(tmp_path, helpers.mlp(np.random.default_rng(14), [8, 4], ["dense"]))
    for bad in (path + "\0.ignored", os.fsencode(path) + b"\0x"):
        with pytest.raises(ValueError, match="null byte"):
            pyruntime.load(bad if isinstance(bad, str) else _BytesPath(bad), mmap=mmap)
    with pytest.raises(ValueError, match="null byte"):
        _core.Model.from_file(path + "\0.ignored", mmap)


class _BytesPath:
    """An os.PathLike whose path is bytes."""

    def __init__(self, p: bytes) -> None:
        self.p = p

    def __fspath__(self) -> bytes:
        return self.p


ZEROS_AT_MOST = 256 << 20


def _pipe_bytes(tmp_path, content: bytes, mmap: bool, sent: list[int]):
    """Loads from a FIFO fed `content` and then zeros (up to 256 MiB) until the reader closes it; `sent`
    gets the bytes the writer got through."""
    import threading

    fifo = tmp_path / "stream.fifo"
    if fifo.exists():
        os.unlink(fifo)
    os.mkfifo(fifo)

    def feed() -> None:
        n = 0
        try:
            with open(fifo, "wb") as f:
                n += f.write(content)
                zeros = bytes(1 << 16)
                while n < ZEROS_AT_MOST:
                    n += f.write(zeros)
                    f.flush()
        except BrokenPipeError:
            pass
        sent.append(n)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        return pyruntime.load(str(fifo), mmap=mmap)
    finally:
        writer.join(timeout=60)


def _header(declared: int, *, fix_crc: bool) -> bytes:
    import struct
    import zlib

    h = bytearray(64)
    h[:8] = b"PYRT\r\n\x1a\n"
    struct.pack_into("<IIQII", h, 8, 2, 0, declared, 1, 0)
    struct.pack_into("<I", h, 60, zlib.crc32(bytes(h[:60])) if fix_crc else 0x12345678)
    return bytes(h)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("mmap", [False, True])
def test_a_stream_declaring_a_terabyte_is_refused_after_its_header(tmp_path, mmap):
    """A pipe sending a header that declares 2^40 bytes, then zeros: refused on the header alone (its
    checksum when forged, its size when the checksum is right), not after buffering the declared size."""
    sent: list[int] = []
    with pytest.raises(pyruntime.FormatError, match="header: checksum mismatch"):
        _pipe_bytes(tmp_path, _header(1 << 40, fix_crc=False), mmap, sent)
    with pytest.raises(OSError, match=r"not a regular file and its header declares 1099511627776 bytes"):
        _pipe_bytes(tmp_path, _header(1 << 40, fix_crc=True), mmap, sent)
    assert len(sent) == 2 and max(sent) < 8 << 20, sent  # the reader stopped at the header
