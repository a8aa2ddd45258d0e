"""What a weight costs to stream: its execution layout and bytes, as the loader builds them.

A mirror of ``csrc/kernels/pack.cpp`` (tests check it against ``_core.PackedWeight`` for every
encoding), so that the converter can price an encoding without building it:

  dense          dense_f32   4 bytes per weight
  csr            csr_f32     row pointers + per entry a 16-bit column (32-bit past 65536 columns) + f32
  codebook       lut1/2/4    k <= 2 / 4 / 16: 1-, 2- or 4-bit indices in 16-byte groups per row
                 lut8        k <= 256: one index byte per weight
  csr+codebook   csr_lut4    k <= 16: CSR + 4-bit indices in 8-byte groups of 16 entries per row
                 csr_lut8    k <= 256: CSR + one index byte per entry
  int8           i8_r16k4    one byte per weight, rows padded to 16 and columns to 4, + a sum and a
                             scale per padded row (kernels/int8/int8_weight.cpp)
  csr+int8       i8_p128     rows in blocks of 16, columns in panels of 128: per (block, panel) steps of
                             64 column offsets + 64 weights, the block's rows padded to its longest
                             (exact from the entries' rows and columns, else the expectation for
                             uniformly scattered entries: 2.6 bytes per entry at 98% sparsity, 2.3 at
                             90%, 2.0 dense)

The csr+int8 kernels work per step (16 rows x 4 entries, padding included), so their ``visits`` are
the layout's step slots, read back from its bytes (:func:`i8_p128_steps`). Where the CPU has AVX-512
VBMI2 the loader stores the same steps masked (``i8_p128m``: a 64-bit mask per step and only its real
slots, :func:`i8_p128m_bytes`); the cost model still counts them in i8_p128 bytes.

The byte-index kernels decode through a tree of table permutes whose depth grows with k (5, 6, 7 or 8
bits), so their speed depends on k as well: :func:`kernel_class` names that finer class.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ENCODINGS = ("dense", "csr", "codebook", "csr+codebook", "int8", "csr+int8")
SPARSE_ENCODINGS = ("csr", "csr+codebook", "csr+int8")
MAX_NIBBLE_K = 16


def packed_bits(k: int) -> int:
    """Bits per packed codebook index for ``k`` centroids (8: one byte per index)."""
    return 1 if k <= 2 else 2 if k <= 4 else 4 if k <= MAX_NIBBLE_K else 8


def layout_of(encoding: str, k: int = 0) -> str:
    """The execution layout the loader builds for ``encoding`` with ``k`` centroids."""
    if encoding == "dense":
        return "dense_f32"
    if encoding == "csr":
        return "csr_f32"
    if encoding == "codebook":
        return f"lut{packed_bits(max(k, 1))}"
    if encoding == "csr+codebook":
        return "csr_lut4" if k <= MAX_NIBBLE_K else "csr_lut8"
    if encoding == "int8":
        return "i8_r16k4"
    if encoding == "csr+int8":
        return "i8_p128"
    raise ValueError(f"unknown encoding '{encoding}' (known: {', '.join(ENCODINGS)})")


def kernel_class(encoding: str, k: int = 0) -> str:
    """The layout, refined by the table size for byte indices: 'lut8/k64' decodes k <= 64."""
    layout = layout_of(encoding, k)
    if layout in ("lut8", "csr_lut8"):
        kk = 32
        while kk < k:
            kk *= 2
        return f"{layout}/k{kk}"
    return layout


def visits(encoding: str, rows: int, cols: int, nnz: int, nbytes: int | None = None) -> int:
    """Weights a kernel touches per sample: every weight for dense layouts, the entries for CSR, and for
    csr+int8 the 64 slots of every step of the layout (``nbytes``: its bytes, else estimated), padding
    included, plus one step's worth per (row block, panel) for loading the panel's activations."""
    if encoding == "csr+int8":
        b = exec_bytes(encoding, rows, cols, nnz) if nbytes is None else int(nbytes)
        prows, panels = (int(rows) + 15) // 16 * 16, (int(cols) + 127) // 128
        return 64 * (i8_p128_steps(rows, cols, b) + prows // 16 * panels)
    return int(nnz) if encoding in SPARSE_ENCODINGS else int(rows) * int(cols)


def i8_p128_steps(rows: int, cols: int, nbytes: int) -> int:
    """Steps of an i8_p128 layout of ``nbytes`` bytes (128 bytes each, after the per-block and per-row
    arrays; bytes past those of the layout, as a bias's, count as a fraction of a step)."""
    prows, panels = (int(rows) + 15) // 16 * 16, (int(cols) + 127) // 128
    return max(0, (int(nbytes) - (prows // 16) * (8 + 2 * panels) - 8 - 8 * prows) // 128)


def _i8_p128_expected_steps(rows: int, cols: int, nnz: int) -> float:
    """Expected steps when ``nnz`` entries fall uniformly at random: per (block, panel) the ceil(count / 4)
    of the fullest of its 16 rows, each row's count binomial over the panel's columns."""
    if nnz <= 0 or rows <= 0 or cols <= 0:
        return 0.0
    p = min(1.0, nnz / (rows * cols))
    total = 0.0
    for width, count in ((128, cols // 128), (cols % 128, 1 if cols % 128 else 0)):
        if not count:
            continue
        n = np.arange(width + 1)
        if p >= 1.0:
            pmf = (n == width).astype(float)
        else:
            logc = np.array([math.lgamma(width + 1) - math.lgamma(i + 1) - math.lgamma(width - i + 1) for i in n])
            pmf = np.exp(logc + n * math.log(p) + (width - n) * math.log1p(-p))
        cdf = np.minimum(np.cumsum(pmf), 1.0)
        pmax = np.diff(cdf ** 16, prepend=0.0)  # the fullest of 16 rows
        total += count * float(pmax @ ((n + 3) // 4))
    return total * ((rows + 15) // 16)


def i8_p128_bytes(rows: int, cols: int, rowptr: np.ndarray, colidx: np.ndarray) -> int:
    """Exact bytes of the i8_p128 layout of a CSR structure (as ``Int8Weight.bytes``)."""
    rows, cols = int(rows), int(cols)
    prows, panels = (rows + 15) // 16 * 16, (cols + 127) // 128
    counts = np.diff(np.asarray(rowptr, dtype=np.int64))
    r = np.repeat(np.arange(rows, dtype=np.int64), counts)
    per = np.bincount(r * panels + np.asarray(colidx, dtype=np.int64) // 128, minlength=prows * panels)
    per = per.reshape(prows // 16, 16, panels).max(axis=1)
    steps = int(((per + 3) // 4).sum())
    return 128 * steps + (prows // 16) * (8 + 2 * panels) + 8 + 8 * prows


def i8_p128_bytes_of_steps(rows: int, cols: int, steps: int, groups: int = 1) -> int:
    """The i8_p128 bytes of a csr+int8 weight of ``steps`` steps in all (``groups`` weights of rows / groups
    rows each, as a grouped conv packs them): what the cost model prices, whichever form the CPU stores."""
    rows, cols, groups = int(rows), int(cols), max(1, int(groups))
    prows = (rows // groups + 15) // 16 * 16
    fixed = (prows // 16) * (8 + 2 * ((cols + 127) // 128)) + 8 + 8 * prows
    return 128 * int(steps) + groups * fixed


def i8_p128m_bytes(rows: int, cols: int, rowptr: np.ndarray, colidx: np.ndarray, qvalues: np.ndarray) -> int:
    """Exact bytes of the masked form of the i8_p128 steps (as ``Int8Weight.bytes`` where its layout is
    i8_p128m): a mask per step, an offset and a weight per nonzero weight, a byte start per row block."""
    rows, cols = int(rows), int(cols)
    prows = (rows + 15) // 16 * 16
    steps = i8_p128_steps(rows, cols, i8_p128_bytes(rows, cols, rowptr, colidx))
    real = int(np.count_nonzero(np.asarray(qvalues)))
    return 8 * steps + 2 * real + 8 * (prows // 16 + 1) + (prows // 16) * (8 + 2 * ((cols + 127) // 128)) + 8 \
        + 8 * prows


def _lutb_row_bytes(bits: int, cols: int) -> int:
    group = 128 // bits
    return (cols + group - 1) // group * 16


def exec_bytes(encoding: str, rows: int, cols: int, nnz: int, k: int = 0,
               row_counts: Sequence[int] | np.ndarray | None = None) -> int:
    """Bytes of the execution layout one pass over the weight streams (``PackedWeight.bytes``).

    ``nnz`` is the number of stored entries for the CSR encodings. The 4-bit csr+codebook layout pads
    each row to whole groups of 16 entries: exact with ``row_counts`` (entries per row), otherwise
    estimated as half a group of padding per non-empty row.
    """
    rows, cols, nnz, k = int(rows), int(cols), int(nnz), int(k)
    if encoding == "dense":
        return rows * cols * 4
    if encoding == "int8":
        prows = (rows + 15) // 16 * 16
        return prows * ((cols + 3) // 4 * 4) + 8 * prows  # weights, row sums, scales
    if encoding == "csr+int8":  # an estimate: the padding depends on how the nonzeros fall
        prows = (rows + 15) // 16 * 16
        panels = (cols + 127) // 128
        steps = round(_i8_p128_expected_steps(rows, cols, nnz))
        return 128 * steps + (prows // 16) * (8 + 2 * panels) + 8 + 8 * prows
    if encoding == "codebook":
        bits = packed_bits(max(k, 1))
        idx = rows * _lutb_row_bytes(bits, cols) if bits < 8 else rows * cols
        return idx + 4 * k
    if encoding not in SPARSE_ENCODINGS:
        raise ValueError(f"unknown encoding '{encoding}' (known: {', '.join(ENCODINGS)})")
    csr = 4 * (rows + 1) + nnz * (2 if cols <= 65536 else 4)
    if encoding == "csr":
        return csr + 4 * nnz
    if k > MAX_NIBBLE_K:
        return csr + nnz + 4 * k
    if row_counts is not None:
        groups = int(((np.asarray(row_counts, dtype=np.int64) + 15) // 16).sum())
    else:
        groups = (nnz + 8 * min(rows, nnz) + 15) // 16
    return csr + 4 * (rows + 1) + 8 * groups + 4 * k
