"""Linear-weight kernels: every ISA against a float64 numpy oracle and every fast ISA against the scalar
reference on the same execution layout, over encoding x shape x density x codebook size x batch.

Tolerance: |y - y_oracle| <= RTOL * (|W| |x| + |bias|) elementwise (the magnitude of the sum, so
cancellation does not make a correct f32 sum look wrong). Fast kernels reassociate the f32 sum (vector
lanes, tiles, column blocks); the references add in natural order. Both stay far inside RTOL.

Layouts (csrc/kernels/kernels.h) and the decoder each codebook size selects:
  codebook k <= 2 / 4 / 16 -> Lut1 / Lut2 / Lut4 (1-, 2-, 4-bit indices in 16-byte groups); k > 16 -> Lut8
  (bytes)
  csr+codebook k <= 16 -> CsrLut4; k > 16 -> CsrLut8
  decoder boundaries: AVX2 k <= 8 | 16 | 32 | gather; AVX-512 k <= 16 | 32 | 64 | gather
  AVX-512 with VBMI, Lut8 at small batches: byte planes, k <= 64 | 128 | 256 (64-column blocks), chosen by k
  and batch (k > 32 at batch 1, k > 64 up to 2, k > 128 up to 8)
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from pyruntime import _core

RTOL = 1e-5  # fast ISA vs ref, and every ISA vs the float64 oracle
# the levels of this architecture whose f32 kernels differ (avx512vnni and neon_dot run avx512 / neon ones)
F32_LEVELS = ("ref", "avx2", "avx512", "neon")  # every level with f32 kernels of its own, on any architecture
ISAS = tuple(i for i in F32_LEVELS if i in _core.architecture_isas())
FAST_ISAS = ISAS[1:]
ENCODINGS = ("dense", "csr", "codebook", "csr+codebook")
KERNEL_LIST = Path(__file__).resolve().parents[2] / "csrc" / "kernels" / "kernel_list.inc"


def need(isa: str) -> None:
    if isa not in _core.supported_isas():
        pytest.skip(f"{isa} is not supported by this CPU or build (supported: {_core.supported_isas()})")


def make(helpers, rng, encoding: str, shape, density: float = 0.3, k: int = 16, **kw) -> dict:
    if encoding in ("csr", "csr+codebook"):
        kw["density"] = density
    if encoding in ("codebook", "csr+codebook"):
        kw["k"] = k
    return helpers.tensor(rng, encoding, shape, **kw)


def oracle(helpers, t: dict, x: np.ndarray, bias):
    w = helpers.densify(t).astype(np.float64)
    x64 = x.astype(np.float64)
    y = x64 @ w.T
    scale = np.abs(x64) @ np.abs(w).T
    if bias is not None:
        y = y + bias.astype(np.float64)
        scale = scale + np.abs(bias.astype(np.float64))
    return y, scale


def assert_close(got: np.ndarray, want: np.ndarray, scale: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, what
    err = np.abs(got.astype(np.float64) - want)
    bound = RTOL * scale
    bad = err > bound
    if bad.any():
        i = np.argwhere(bad)[0]
        pytest.fail(
            f"{what}: {bad.sum()} of {bad.size} outputs off, first at {tuple(i)}: "
            f"got {got[tuple(i)]!r} want {want[tuple(i)]!r} (bound {bound[tuple(i)]:.3g})"
        )


def check(helpers, rng, t: dict, isa: str, batch: int, with_bias: bool = True) -> None:
    """Runs t at `isa` (and at ref) and compares with the oracle and with ref."""
    need(isa)
    rows, cols = t["shape"][0], int(np.prod(t["shape"][1:]))
    w = _core.PackedWeight(t)
    x = rng.standard_normal((batch, cols)).astype(np.float32)
    bias = rng.standard_normal(rows).astype(np.float32) if with_bias else None
    want, scale = oracle(helpers, t, x, bias)
    got = w.gemm(x, bias=bias, isa=isa)
    assert np.isfinite(got).all()
    assert_close(got, want, scale, f"{isa} vs float64 oracle")
    if isa != "ref":
        ref = w.gemm(x, bias=bias, isa="ref").astype(np.float64)
        assert_close(got, ref, scale, f"{isa} vs ref")


# ---- shapes: subtiles around the SIMD widths (8 / 16 floats, 32-column 4-bit groups) ----------------

EDGE_SHAPES = [
    (1, 1),
    (1, 7),
    (3, 8),
    (2, 15),
    (5, 16),
    (4, 17),
    (7, 31),
    (3, 32),
    (6, 33),
    (2, 64),
    (9, 65),
    (37, 129),
    (1, 300),
    (300, 1),
    (8, 3072),
]


@pytest.mark.parametrize("batch", [1, 3, 17])
@pytest.mark.parametrize("shape", EDGE_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("isa", ISAS)
def test_edge_shapes(helpers, rng, isa, encoding, shape, batch):
    check(helpers, rng, make(helpers, rng, encoding, shape, density=0.4, k=13), isa, batch)


# Batch paths: 1 = GEMV; from 2 on, dot-product tiles in passes of up to 8 (AVX-512) / 4 or 6 (AVX2) batch
# rows; dense from 32 (AVX-512) / 16 (AVX2) batch-in-lanes GEMM tiles of 32 / 16 lanes with the rest in dot
# tiles, AVX2 4-bit codebooks (k > 8) batch-in-lanes from 16; CSR SpMM tiles of 8, 16 and 32 lanes.
@pytest.mark.parametrize("batch", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 32, 33, 64])
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("isa", ISAS)
def test_batch_sizes(helpers, rng, isa, encoding, batch):
    check(helpers, rng, make(helpers, rng, encoding, (67, 300), density=0.2, k=16), isa, batch)


# Batch >= 2 dot tiles (x86/dot_batch_avx512.h): passes of at most 8 batch rows (balanced), blocks of
# weight rows reused by every pass (dense in place: 96 rows of 1000 columns; byte codebooks decoded in the
# tile: 252 rows; k > 64: 12 decoded rows), tiles of 1..6 rows with single rows left over at block ends.
@pytest.mark.parametrize("batch", [2, 9, 17, 31])
@pytest.mark.parametrize("k", [None, 4, 16, 32, 100, 256], ids=lambda k: "dense" if k is None else f"k{k}")
@pytest.mark.parametrize("isa", FAST_ISAS)
def test_row_blocks(helpers, rng, isa, k, batch):
    encoding = "dense" if k is None else "codebook"
    check(helpers, rng, make(helpers, rng, encoding, (601, 1000), k=k or 16), isa, batch)


@pytest.mark.parametrize("batch", [130, 257])
@pytest.mark.parametrize("encoding, k", [("dense", 16), ("codebook", 16), ("codebook", 40), ("codebook", 200)])
@pytest.mark.parametrize("isa", ISAS)
def test_batch_chunks(helpers, rng, isa, encoding, k, batch):
    # codebook kernels pack x in chunks of at most 128 batch rows
    check(helpers, rng, make(helpers, rng, encoding, (21, 50), k=k), isa, batch)


@pytest.mark.parametrize("k", [16, 200])
@pytest.mark.parametrize("batch", [1, 6, 40])
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("isa", ISAS)
def test_column_blocks(helpers, rng, isa, encoding, batch, k):
    # more than one 1024-column block, the last one partial; 25 rows = 2 full row tiles + a partial one
    check(helpers, rng, make(helpers, rng, encoding, (25, 2100), density=0.3, k=k), isa, batch)


# ---- codebook sizes: every bit width and every decoder boundary --------------------------------------

CODEBOOK_K = [1, 2, 3, 4, 5, 8, 9, 15, 16, 17, 31, 32, 33, 64, 65, 128, 200, 256]


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("k", CODEBOOK_K)
@pytest.mark.parametrize("encoding", ["codebook", "csr+codebook"])
@pytest.mark.parametrize("isa", ISAS)
def test_codebook_sizes(helpers, rng, isa, encoding, k, batch):
    t = make(helpers, rng, encoding, (37, 129), density=0.5, k=k)
    check(helpers, rng, t, isa, batch)


@pytest.mark.parametrize("batch", [1, 2, 3, 8, 9])
@pytest.mark.parametrize("cols", [1, 63, 64, 65, 127, 200])
@pytest.mark.parametrize("k", [32, 33, 64, 65, 128, 129, 256])
@pytest.mark.parametrize("isa", ISAS)
def test_byte_codebook_blocks(helpers, rng, isa, k, batch, cols):
    # Lut8 around the byte-plane decoder's table sizes, its 64-column blocks, its 4- and 2-row tiles and
    # the batches where the dispatcher switches decoders; centroid 0 is infinite and unused, so the
    # columns past the end (the next row's bytes, the zero bytes after the array) must never reach a sum
    t = make(helpers, rng, "codebook", (9, cols), k=k)
    t["centroids"][0] = np.inf
    t["indices"] = np.maximum(t["indices"], 1).astype(np.uint8)
    check(helpers, rng, t, isa, batch)


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("encoding", ["codebook", "csr+codebook"])
@pytest.mark.parametrize("isa", ISAS)
def test_index_bits(helpers, rng, isa, encoding, bits):
    # index_bits is the storage width; k = 2**bits is the largest codebook that width allows.
    t = make(helpers, rng, encoding, (21, 100), density=0.5, k=2**bits, index_bits=bits)
    check(helpers, rng, t, isa, 2)


@pytest.mark.parametrize("batch", [1, 5, 20])
@pytest.mark.parametrize("cols", [1, 15, 16, 17, 31, 33, 63, 64, 65, 127, 128, 129, 1100])
@pytest.mark.parametrize("k", [2, 4, 16])
@pytest.mark.parametrize("isa", ISAS)
def test_packed_groups(helpers, rng, isa, k, cols, batch):
    # 1-, 2-, 4-bit layouts: groups of 128, 64, 32 columns, full and partial
    check(helpers, rng, make(helpers, rng, "codebook", (7, cols), k=k), isa, batch)


# ---- sparsity -------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 8, 64])
@pytest.mark.parametrize("density", [0.0, 0.01, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("encoding", ["csr", "csr+codebook"])
@pytest.mark.parametrize("isa", ISAS)
def test_density(helpers, rng, isa, encoding, density, batch):
    check(helpers, rng, make(helpers, rng, encoding, (40, 257), density=density, k=11), isa, batch)


@pytest.mark.parametrize("k", [7, 16, 100])
@pytest.mark.parametrize("batch", [1, 4, 19])
@pytest.mark.parametrize("encoding", ["csr", "csr+codebook"])
@pytest.mark.parametrize("isa", ISAS)
def test_empty_rows(helpers, rng, isa, encoding, batch, k):
    # rows of every length around the group sizes, with empty rows between them
    rows, cols = 24, 90
    mask = np.zeros((rows, cols), bool)
    for r in range(rows):
        n = [0, 1, 0, 7, 8, 9, 0, 15, 16, 17, 31, 32, 33, 0, 48, 63, 64, 65, 0, 90, 2, 0, 89, 0][r]
        mask[r, np.sort(rng.choice(cols, n, replace=False))] = True
    check(helpers, rng, make(helpers, rng, encoding, (rows, cols), k=k, mask=mask), isa, batch)


@pytest.mark.parametrize("batch", [1, 9])
@pytest.mark.parametrize("encoding", ["csr", "csr+codebook"])
@pytest.mark.parametrize("isa", ISAS)
def test_empty_matrix(helpers, rng, isa, encoding, batch):
    t = make(helpers, rng, encoding, (13, 50), density=0.0, k=4)
    assert _core.PackedWeight(t).nnz == 0
    check(helpers, rng, t, isa, batch)
    need(isa)
    y = _core.PackedWeight(t).gemm(np.ones((batch, 50), np.float32), isa=isa)
    assert np.array_equal(y, np.zeros((batch, 13), np.float32))


@pytest.mark.parametrize("cols", [65536, 70001])
@pytest.mark.parametrize("batch", [1, 6, 20, 30])
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("isa", ISAS)
def test_wide_columns(helpers, rng, isa, encoding, batch, cols):
    # 65536 columns: the last one still fits a 16-bit index; more: 32-bit column indices in the CSR layouts;
    # batch 30: the dot-tile kernels pack x in chunks of 24 batch rows at these widths
    t = make(helpers, rng, encoding, (3, cols), density=0.05, k=9)
    if encoding in ("csr", "csr+codebook"):
        t["colidx"][-1] = cols - 1  # make sure the largest column index is used
        assert np.all(np.diff(t["colidx"][t["rowptr"][-2] :].astype(np.int64)) > 0)
    check(helpers, rng, t, isa, batch)


@pytest.mark.parametrize("batch", [1, 3, 9])
@pytest.mark.parametrize("k", [16, 200])
@pytest.mark.parametrize("encoding", ["codebook", "csr+codebook"])
@pytest.mark.parametrize("isa", ISAS)
def test_unused_infinite_centroid(helpers, rng, isa, encoding, k, batch):
    # Index 0 maps to +inf but no weight uses it. Padding and over-read lanes decode to index 0 (or to
    # another row's index): kernels must zero them rather than multiply them by a zero x lane (inf * 0 = NaN).
    t = make(helpers, rng, encoding, (11, 37), density=0.6, k=k)
    t["centroids"][0] = np.inf
    t["indices"] = np.maximum(t["indices"], 1).astype(np.uint8)
    check(helpers, rng, t, isa, batch)


@pytest.mark.parametrize("cols", [1, 31, 32, 33, 63, 64, 65, 95, 96, 127, 128, 129, 192, 193, 1000])
@pytest.mark.parametrize("k", [9, 16, 17, 32, 33, 64])
@pytest.mark.parametrize("isa", ISAS)
def test_gemv_planes(helpers, rng, isa, k, cols):
    # AVX2 batch 1, 9 <= k <= 64: byte-plane decoders on blocks of 32 index bytes (Lut4: 64 columns, Lut8:
    # 32), x packed in the decoded order, the last block partial; 5 rows = tiles of 2 rows and a single one.
    # Index 0 maps to +inf but no weight uses it: the lanes past cols must be zeroed, not multiplied by 0.
    t = make(helpers, rng, "codebook", (5, cols), k=k)
    t["centroids"][0] = np.inf
    t["indices"] = np.maximum(t["indices"], 1).astype(np.uint8)
    check(helpers, rng, t, isa, 1)
    t["centroids"][0] = 0.5  # index 0 used as well
    t["indices"] = rng.integers(0, k, t["indices"].shape).astype(np.uint8)
    check(helpers, rng, t, isa, 1)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("isa", ISAS)
def test_no_bias_and_rank4(helpers, rng, isa, encoding):
    # a conv-shaped weight [out, in, kh, kw] is viewed as [out, in*kh*kw]
    check(
        helpers, rng, make(helpers, rng, encoding, (6, 3, 3, 5), density=0.5, k=16), isa, 4, with_bias=False
    )


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_isas_agree_on_large_layer(helpers, rng, encoding):
    # a realistically sized layer: every supported ISA against ref and the oracle
    t = make(helpers, rng, encoding, (512, 1024), density=0.1, k=16)
    for isa in _core.supported_isas():
        for batch in (1, 16):
            check(helpers, rng, t, isa, batch)


# ---- execution-layout sizes --------------------------------------------------------------------


def test_bytes_codebook_4bit_is_compact(helpers, rng):
    rows, cols, k = 256, 512, 16
    w = _core.PackedWeight(make(helpers, rng, "codebook", (rows, cols), k=k))
    assert w.bytes == rows * cols // 2 + k * 4  # two indices per byte + the table


@pytest.mark.parametrize("k, bits", [(1, 1), (2, 1), (3, 2), (4, 2), (5, 4), (16, 4)])
def test_bytes_codebook_packs_small_k(helpers, rng, k, bits):
    rows, cols = 64, 1000
    w = _core.PackedWeight(make(helpers, rng, "codebook", (rows, cols), k=k))
    group = 128 // bits  # columns per 16-byte group
    assert w.bytes == rows * -(-cols // group) * 16 + k * 4
    assert w.bytes <= rows * cols * bits / 8 * 1.03 + k * 4


def test_bytes_codebook_8bit(helpers, rng):
    w = _core.PackedWeight(make(helpers, rng, "codebook", (64, 100), k=200))
    assert w.bytes == 64 * 100 + 200 * 4


def test_bytes_csr(helpers, rng):
    t = make(helpers, rng, "csr", (300, 1000), density=0.1)
    w = _core.PackedWeight(t)
    nnz = t["colidx"].size
    assert w.bytes == 301 * 4 + nnz * (2 + 4)  # rowptr + 16-bit columns + f32 values


def test_bytes_csr_codebook_4bit(helpers, rng):
    t = make(helpers, rng, "csr+codebook", (300, 1000), density=0.1, k=16)
    w = _core.PackedWeight(t)
    nnz = t["colidx"].size
    groups = sum((n + 15) // 16 for n in np.diff(t["rowptr"].astype(np.int64)))
    assert w.bytes == 301 * 4 + 301 * 4 + nnz * 2 + groups * 8 + 16 * 4
    assert w.bytes < nnz * 2.7 + 301 * 8 + 64 + 300 * 8  # ~2.5 bytes per nonzero + per-row overhead


# ---- registry ------------------------------------------------------------------------------------

# Which test input reaches each execution layout.
LAYOUT_OF = {
    "DenseF32": ("dense", None),
    "CsrF32": ("csr", None),
    "Lut1": ("codebook", 2),
    "Lut2": ("codebook", 4),
    "Lut4": ("codebook", 16),
    "Lut8": ("codebook", 256),
    "CsrLut4": ("csr+codebook", 16),
    "CsrLut8": ("csr+codebook", 256),
}


def registry() -> list[tuple[str, str, str]]:
    text = re.sub(r"//[^\n]*", "", KERNEL_LIST.read_text())
    return re.findall(r"PYRT_KERNEL\(\s*(\w+)\s*,\s*(\w+)\s*,\s*(\w+)\s*\)", text)


def test_registry_is_covered():
    kernels = registry()
    assert kernels, f"no kernels parsed from {KERNEL_LIST}"
    for layout, stem, isa in kernels:
        assert layout in LAYOUT_OF, f"layout {layout} (pyrt_{stem}__{isa}) has no test input in LAYOUT_OF"
        assert isa in F32_LEVELS, isa
    layouts = {layout for layout, _, _ in kernels}
    for layout in layouts:  # every layout has its scalar twin
        assert (layout, "ref") in {(lay, isa) for lay, _, isa in kernels}, layout


@pytest.mark.parametrize("kernel", registry(), ids=lambda k: f"pyrt_{k[1]}__{k[2]}")
def test_registry_kernel(helpers, rng, kernel):
    layout, _, isa = kernel
    encoding, k = LAYOUT_OF[layout]
    for shape, batch in [((19, 77), 1), ((19, 77), 11), ((64, 640), 3)]:
        check(helpers, rng, make(helpers, rng, encoding, shape, density=0.3, k=k or 16), isa, batch)


@pytest.mark.parametrize("isa", ISAS)
def test_active_isa_is_used_by_default(helpers, rng, isa):
    need(isa)
    t = make(helpers, rng, "codebook", (10, 40), k=16)
    w = _core.PackedWeight(t)
    x = rng.standard_normal((3, 40)).astype(np.float32)
    before = _core.active_isa()
    try:
        _core.set_isa(isa)
        assert np.array_equal(w.gemm(x), w.gemm(x, isa=isa))
    finally:
        _core.set_isa(before)


def test_pyrt_isa_env_selects_ref():
    # PYRT_ISA=ref runs everything through the scalar references on the same layouts
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np; from pyruntime import _core; "
        "w = _core.PackedWeight({'encoding': 'codebook', 'shape': [4, 40], 'centroids': np.arange(16, dtype=np.float32), "
        "'indices': (np.arange(160) % 16).astype(np.uint8)}); "
        "x = np.ones((2, 40), np.float32); "
        "assert _core.active_isa() == 'ref', _core.active_isa(); "
        "assert np.array_equal(w.gemm(x), w.gemm(x, isa='ref')); print('ok')"
    )
    import pyruntime

    root = str(Path(pyruntime.__file__).parent.parent)  # where this process found the package
    env = dict(
        os.environ, PYRT_ISA="ref", PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])
    )
    # `python -c` puts its working directory first on sys.path: run where the package was found, so a
    # source checkout in the current directory cannot shadow an installed package.
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=60, cwd=root
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_unsupported_isa_is_an_error():
    t = {"encoding": "dense", "shape": [2, 2], "values": np.ones(4, np.float32)}
    with pytest.raises(Exception, match="unknown ISA"):
        _core.PackedWeight(t).gemm(np.ones((1, 2), np.float32), isa="sse9")


# ---- gathers: vgatherdps and scalar loads (kernels/isa.h: use_hw_gather) give the same bits ------------

@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("encoding, k, shape", [
    ("csr", None, (37, 129)), ("csr", None, (3, 70001)),  # 16- and 32-bit columns
    ("csr+codebook", 16, (37, 300)), ("csr+codebook", 200, (20, 1100)), ("csr+codebook", 200, (3, 70001)),
    ("codebook", 100, (9, 65)), ("codebook", 256, (17, 300)),  # AVX2 past 64 entries: batch 1 mixes the two
])
@pytest.mark.parametrize("isa", FAST_ISAS)
def test_gather_modes_agree(helpers, rng, isa, encoding, k, shape, batch):
    need(isa)
    if isa not in ("avx2", "avx512"):
        pytest.skip(f"{isa} has no gather choice")
    t = make(helpers, rng, encoding, shape, density=0.05 if shape[1] > 60000 else 0.3, k=k or 16)
    w = _core.PackedWeight(t)
    x = rng.standard_normal((batch, shape[1])).astype(np.float32)
    bias = rng.standard_normal(shape[0]).astype(np.float32)
    previous = _core.set_gather("hw")
    try:
        assert _core.uses_hw_gather(isa)
        hw = w.gemm(x, bias=bias, isa=isa)
        _core.set_gather("scalar")
        assert not _core.uses_hw_gather(isa)
        scalar = w.gemm(x, bias=bias, isa=isa)
    finally:
        _core.set_gather(previous)
    np.testing.assert_array_equal(hw, scalar)
    want, scale = oracle(helpers, t, x, bias)
    assert_close(hw, want, scale, f"{isa} with vgatherdps vs float64 oracle")


def test_gather_mode_argument():
    with pytest.raises(ValueError, match="unknown gather mode 'fast'"):
        _core.set_gather("fast")
    assert _core.set_gather("auto") in ("auto", "hw", "scalar")
    assert _core.uses_hw_gather("ref") is False
