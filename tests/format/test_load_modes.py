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
