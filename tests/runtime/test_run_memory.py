"""What a run costs and who holds it: the activation arena of a large batch is given back (Model.run keeps
at most 64 MiB between calls and runs larger batches in pieces), a model says its arena and work before it
runs (Model.arena_bytes, Model.work, summary_text, inspect), and load() refuses a model above a memory or
work budget.
"""

from __future__ import annotations

import gc
import os
import pathlib

import numpy as np
import pytest

import pyruntime
from pyruntime import _core
from pyruntime._inspect import inspect_bytes, render

MiB = 1 << 20
CAP = _core.Model.max_cached_arena_bytes


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def wide_model(helpers, rng) -> dict:
    """16 -> 4096 -> 10: 16 KiB of arena per sample, so 20,000 samples need 320 MiB at once."""
    return helpers.mlp(rng, [16, 4096, 10], ["dense", "csr"], final=None)


def huge_arena_model() -> dict:
    """A valid 324-byte file with a 1-value input and output whose arena is 7.9 GiB at batch 1: a 1x1
    convolution with padding 23000 (a 46001 x 46001 plane) before a global average pool."""
    conv = {"stride": [1, 1], "padding": [23000] * 4, "dilation": [1, 1], "groups": 1}
    return {
        "input_shape": [1, 1, 1],
        "nodes": [{"op": "conv2d", "inputs": [0], "tensors": [0], "attrs": conv},
                  {"op": "global_avg_pool", "inputs": [1]}],
        "tensors": [{"name": "w", "encoding": "dense", "shape": [1, 1, 1, 1], "values": np.ones(1, np.float32)}],
        "metadata": "",
    }


def test_arena_bytes_grow_with_the_batch(helpers, rng):
    m = pyruntime.load(_core.write_model(wide_model(helpers, rng)))
    one = m.arena_bytes(1)
    assert one >= 4 * (4096 + 10)  # the hidden layer and the output live at once
    assert m.arena_bytes(100) - m.arena_bytes(1) == 99 * (one - 64)  # 64: the alignment slack
    for bad in (0, -1, 1 << 25):
        with pytest.raises((ValueError, TypeError, OverflowError)):
            m.arena_bytes(bad)
    with pytest.raises(TypeError):
        m.arena_bytes(2.0)


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc/self/statm")
def test_a_large_batch_gives_its_arena_back(helpers, rng):
    model = wide_model(helpers, rng)
    m = pyruntime.load(_core.write_model(model), threads=2)
    x = helpers.random_input(rng, model, 20_000)
    assert m.arena_bytes(len(x)) > 300 * MiB  # what one session of the whole batch would hold
    m.run(x[:1])
    gc.collect()
    before = rss_bytes()
    y = m.run(x)
    m.run(x[:1])  # a batch-1 run afterwards must not keep the large arena either
    gc.collect()
    held = rss_bytes() - before - y.nbytes
    assert held < CAP + 16 * MiB, f"{held / MiB:.0f} MiB still held after the run"
    # the pieces are whole chunks of 64 samples: the same bits as one session over the whole batch
    for lo in (0, 6_400, 19_936):
        np.testing.assert_array_equal(y[lo:lo + 64], m.run(x[lo:lo + 64]))


def test_pieces_give_the_same_outputs_as_one_session(helpers, rng):
    """A batch above the cap runs in pieces of whole 64-sample chunks: bit-identical to small calls of
    those chunks, on one thread and on two."""
    model = helpers.mlp(rng, [8, 8192, 4], ["dense", "codebook"], final=None)  # 32 KiB of arena per sample
    data = _core.write_model(model)
    one, two = pyruntime.load(data), pyruntime.load(data, threads=2)
    batch = CAP // one.arena_bytes(1) * 2 + 37  # two and a bit pieces
    x = helpers.random_input(rng, model, batch)
    y = one.run(x)
    np.testing.assert_array_equal(two.run(x), y)
    np.testing.assert_array_equal(np.concatenate([one.run(x[i:i + 64]) for i in range(0, batch, 64)]), y)
    np.testing.assert_allclose(y[-5:], helpers.forward(model, x[-5:]), rtol=1e-4, atol=1e-4)


def test_work_and_arena_of_a_tiny_file_that_needs_gigabytes():
    data = _core.write_model(huge_arena_model())
    assert len(data) < 1000
    m = pyruntime.load(data)  # loading allocates no arena: this is cheap
    assert m.arena_bytes(1) > 7 * (1 << 30)
    assert m.work == 2 * 46001 * 46001  # one multiply-add per output, then the pool reads every output
    text = m.summary_text()
    assert "activation arena 7.88 GiB" in text and f"work: {m.work:,} operations per sample" in text
    with pytest.raises(ValueError, match=r"needs 7\.88 GiB .* more than max_memory=1,073,741,824"):
        pyruntime.load(data, max_memory=1 << 30)
    with pytest.raises(ValueError, match=r"costs 4,232,184,002 operations per sample, more than max_work=1,000,000"):
        pyruntime.load(data, max_work=10**6)
    report = render(inspect_bytes(data, "huge.pyrt"))
    assert "activation arena 7.88 GiB" in report and "work: 4,232,184,002" in report


def test_budgets_admit_what_fits(helpers, rng):
    model = wide_model(helpers, rng)
    data = _core.write_model(model)
    m = pyruntime.load(data)
    need = m.weight_bytes + m.arena_bytes(1)
    assert pyruntime.load(data, max_memory=need, max_work=m.work).work == m.work
    with pytest.raises(ValueError, match="max_memory"):
        pyruntime.load(data, max_memory=need - 1)
    with pytest.raises(ValueError, match="max_work"):
        pyruntime.load(data, max_work=m.work - 1)
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="max_memory"):
            pyruntime.load(data, max_memory=bad)
        with pytest.raises(ValueError, match="max_work"):
            pyruntime.load(data, max_work=bad)


def test_work_counts_multiply_adds(helpers, rng):
    model = helpers.mlp(rng, [30, 20, 10], ["dense", "csr"], final=None)
    m = pyruntime.load(_core.write_model(model))
    nnz = int(np.count_nonzero(helpers.densify(model["tensors"][2])))
    assert m.work == 30 * 20 + 20 + nnz  # linear, relu (20 elements), csr linear (its stored entries)


@pytest.mark.parametrize("planes", ["shifted", "padded"])
def test_columns_strided_far_beyond_the_kernel_do_not_pad_gigabytes(planes):
    """Found by the fuzzer: the same conv strided 256 along the columns gives 46001 x 180 outputs. Its
    padded plane (46001 rows of 256 phases x 180 columns) would be 8 GB, its shifted planes (rows of 192)
    35 MB: the method choice must judge the copy the conv would make, whichever form it takes."""
    model = huge_arena_model()
    model["nodes"][0]["attrs"]["stride"] = [1, 256]
    before = _core.set_direct_planes(planes)
    try:
        m = pyruntime.load(_core.write_model(model))
    finally:
        _core.set_direct_planes(before)
    assert m.layers()[0]["method"] == "im2col"
    assert tuple(m.layers()[0]["output_shape"]) == (1, 46001, 180)
    x = np.full((1, 1, 1, 1), 3.0, np.float32)
    # output (23000, 0) reads the input (23000 / 256 is not whole along the columns: no column reads it)
    assert m.run(x)[0, 0, 0, 0] == 0.0


def test_padding_far_beyond_the_kernel_does_not_pad_gigabytes():
    """Found by the fuzzer: a 1x1 conv padded by 23000 and strided 2305 down the rows has a 3.5 MiB arena
    and 2.8 million operations (multiply-adds, patches, the pool), but the direct method's padded copy of its input would be 8 GB. The
    method choice keeps a kernel's scratch proportional to the layer (im2col here), and the run is right."""
    model = huge_arena_model()
    model["nodes"][0]["attrs"]["stride"] = [2305, 1]
    m = pyruntime.load(_core.write_model(model))
    assert m.layers()[0]["method"] == "im2col"
    assert m.arena_bytes(1) < 4 * MiB and m.work == 3 * 20 * 46001
    x = np.full((1, 1, 1, 1), 3.0, np.float32)
    # 20 x 46001 outputs; no output row's window reads input row 0 (23000 / 2305 is not whole): all 0
    y = m.run(x)
    assert y.shape == (1, 1, 1, 1) and y[0, 0, 0, 0] == 0.0
    model["nodes"][0]["attrs"]["padding"] = [2305 * 10, 23000, 23000, 23000]  # row 10 reads the input
    m = pyruntime.load(_core.write_model(model))
    _, oh, ow = m.layers()[0]["output_shape"]
    assert (oh, ow) == (20, 46001)
    w = float(model["tensors"][0]["values"][0])
    np.testing.assert_allclose(m.run(x)[0, 0, 0, 0], 3.0 * w / (oh * ow), rtol=1e-5)


def test_int8_conv_work_counts_its_patches():
    """Found by the fuzzer: a csr+int8 conv 3 x 2051 taps wide over 2 channels per group, with 50 nonzeros,
    padded 65536 to the right (63494 output columns). Its im2col writes 12306 patch bytes per output position,
    billions in all, which ran for seconds while Model.work counted only the nonzeros' 12 M multiply-adds: a
    max_work limit (and the fuzz harness's) let it through. Work counts the patches too."""
    seed = pathlib.Path(__file__).resolve().parents[2] / "fuzz" / "corpus" / "int8_conv_kernel_2051_wide.pyrt"
    if not seed.is_file():
        pytest.skip("fuzz/corpus is not next to the tests (an installed copy)")
    m = pyruntime.load(seed.read_bytes())
    conv = m.layers()[0]
    assert conv["op"] == "conv2d" and conv["encoding"] == "csr+int8" and conv["shape"] == [6, 2, 3, 2051]
    _, oh, ow = conv["output_shape"]
    patches = 4 * 3 * 2051 * oh * ow  # in_c * kh * kw per output position
    assert oh * ow == 3 * 63494 and m.work >= patches
    with pytest.raises(ValueError, match="work"):
        pyruntime.load(seed.read_bytes(), max_work=patches - 1)


def test_int8_depthwise_work_counts_its_padded_plane():
    """Found by the fuzzer: a static int8 depthwise conv (4 channels, 3x3, 18 nonzeros) whose padding and
    strides give a 1x1 output from a 5x4 input. Each channel is copied into a phase-split padded plane of
    about 4 GB before its taps run; Model.work counted only the 72 multiply-adds, so the fuzz harness's
    max_work let it through and the run asked for 4 GB of scratch. Work counts the planes too."""
    seed = pathlib.Path(__file__).resolve().parents[2] / "fuzz" / "corpus" / "int8_depthwise_4gb_padded_plane.pyrt"
    if not seed.is_file():
        pytest.skip("fuzz/corpus is not next to the tests (an installed copy)")
    m = pyruntime.load(seed.read_bytes())
    dw = m.layers()[3]
    assert dw["layout"] == "i8_dw" and dw["groups"] == 4 and tuple(dw["output_shape"]) == (4, 1, 1)
    assert m.work > 4 * 4_000_000_000  # four channels' planes of 4.29 GB each
    with pytest.raises(ValueError, match="max_work"):
        pyruntime.load(seed.read_bytes(), max_work=2**32)


def test_f32_im2col_conv_work_counts_its_patches(helpers, rng):
    """The f32 counterpart: a csr conv 1 x 2051 taps wide with one nonzero, padded 23000 and strided 2305 down
    the rows, runs im2col (the direct method's padded copy would be 8 GB) and writes 2051 patch floats per
    output position, 1.8 G in all, for 0.9 M multiply-adds. Model.work counts the patches, and max_work
    refuses the model below them."""
    mask = np.zeros((1, 2051), bool)
    mask[0, 1000] = True
    model = huge_arena_model()
    model["nodes"][0]["attrs"]["stride"] = [2305, 1]
    model["tensors"] = [helpers.csr(rng, [1, 1, 1, 2051], mask=mask)]
    data = _core.write_model(model)
    m = pyruntime.load(data)
    conv = m.layers()[0]
    assert conv["method"] == "im2col" and tuple(conv["output_shape"]) == (1, 20, 43951)
    positions = 20 * 43951
    # the one nonzero's multiply-adds, the patches, then the global average pool's reads
    assert m.work == positions + 2051 * positions + positions
    with pytest.raises(ValueError, match="max_work"):
        pyruntime.load(data, max_work=2051 * positions)
