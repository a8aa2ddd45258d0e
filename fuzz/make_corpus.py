#!/usr/bin/env python3
"""Writes the seed corpus of the loader fuzzer (fuzz/load_fuzzer.cpp) into fuzz/corpus/.

Seeds are small .pyrt files: most come from pyruntime's own writer (``pyruntime._core.write_model``)
so they are valid and reach the kernels; a few are assembled here by hand (sections in an unusual
order, an unknown optional section, an empty metadata section) and a few are damaged on purpose
(truncated, a flipped payload byte). Everything is deterministic (fixed seeds), so re-running the script
gives byte-identical files unless the writer changes.

Usage:  python3 fuzz/make_corpus.py [--out DIR]      (needs numpy and an importable pyruntime)

The model dicts follow tests/conftest.py (tensor encodings dense / csr / codebook / csr+codebook).
Each seed's stream codings (packed "P" or Huffman "H") are printed and checked, so a change in the
writer's choice of coding does not silently turn a Huffman seed into a packed one.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import struct
import sys
import zlib

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
try:
    from pyruntime import _core
except ImportError:  # not installed: the source tree, with _core built in place
    sys.path.insert(0, str(HERE.parent))
    from pyruntime import _core
MAX_SEED_BYTES = 4096  # libFuzzer runs with -max_len=8192; keep every seed well under it
MAX_TOTAL_BYTES = 100 * 1024

MAGIC = b"PYRT\r\n\x1a\n"
GRAPH, TENSOR, METADATA = 1, 2, 3
OPS = {"linear": 1, "relu": 2, "softmax": 3, "flatten": 4}
OPS_V2 = {"conv2d": 5, "max_pool2d": 6, "avg_pool2d": 7, "global_avg_pool": 8, "add": 9, "concat": 10,
          "reshape": 11, "clamp": 12}  # fmt: skip
OPS.update(OPS_V2)
# version-2 attribute words in file order (docs/FORMAT.md 2.2): (field, words, struct code)
_POOL = [("kernel", 2, "I"), ("stride", 2, "I"), ("padding", 4, "I"), ("ceil_mode", 1, "I")]
ATTRS = {
    "conv2d": [("stride", 2, "I"), ("padding", 4, "I"), ("dilation", 2, "I"), ("groups", 1, "I")],
    "max_pool2d": _POOL,
    "avg_pool2d": _POOL + [("count_include_pad", 1, "I")],
    "concat": [("axis", 1, "I")],
    "reshape": [("shape", 4, "I")],
    "clamp": [("min", 1, "f"), ("max", 1, "f")],
}


# ---- tensors (as tests/conftest.py builds them) -------------------------------------------------------


def rows_cols(shape) -> tuple[int, int]:
    return int(shape[0]), int(math.prod(shape[1:]))


def dense(rng, shape, name="w") -> dict:
    v = rng.standard_normal(tuple(shape)).astype(np.float32)
    return {"name": name, "encoding": "dense", "shape": list(shape), "values": v.ravel()}


def csr_index(mask: np.ndarray):
    rowptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.uint32)
    colidx = np.nonzero(mask)[1].astype(np.uint32)
    return rowptr, colidx


def mask_of(rng, shape, density) -> np.ndarray:
    return rng.random(rows_cols(shape)) < density


def csr(rng, shape, density=0.3, name="w", *, mask=None, gap_bits=None) -> dict:
    mask = mask_of(rng, shape, density) if mask is None else mask
    rowptr, colidx = csr_index(mask)
    t = {
        "name": name,
        "encoding": "csr",
        "shape": list(shape),
        "rowptr": rowptr,
        "colidx": colidx,
        "values": rng.standard_normal(colidx.size).astype(np.float32),
    }
    if gap_bits is not None:
        t["gap_bits"] = gap_bits
    return t


def codebook(rng, shape, k=16, name="w", *, indices=None, index_bits=None) -> dict:
    rows, cols = rows_cols(shape)
    if indices is None:
        indices = rng.integers(0, k, rows * cols)
    t = {
        "name": name,
        "encoding": "codebook",
        "shape": list(shape),
        "centroids": np.sort(rng.standard_normal(k)).astype(np.float32),
        "indices": np.asarray(indices).astype(np.uint8),
    }
    if index_bits is not None:
        t["index_bits"] = index_bits
    return t


def csr_codebook(
    rng, shape, density=0.3, k=16, name="w", *, mask=None, indices=None, gap_bits=None, index_bits=None
) -> dict:
    mask = mask_of(rng, shape, density) if mask is None else mask
    rowptr, colidx = csr_index(mask)
    if indices is None:
        indices = rng.integers(0, k, colidx.size)
    t = {
        "name": name,
        "encoding": "csr+codebook",
        "shape": list(shape),
        "rowptr": rowptr,
        "colidx": colidx,
        "centroids": np.sort(rng.standard_normal(k)).astype(np.float32),
        "indices": np.asarray(indices).astype(np.uint8),
    }
    if gap_bits is not None:
        t["gap_bits"] = gap_bits
    if index_bits is not None:
        t["index_bits"] = index_bits
    return t


def skewed(rng, n: int, k: int, p: float = 0.6) -> np.ndarray:
    """Geometric symbols in 0..k-1: a skewed distribution, so the writer picks Huffman coding."""
    return np.minimum(rng.geometric(p, n) - 1, k - 1)


def linear_model(weight: dict, bias: dict | None = None, final: str | None = None, metadata=None) -> dict:
    tensors = [weight] + ([bias] if bias is not None else [])
    nodes = [{"op": "linear", "inputs": [0], "tensors": list(range(len(tensors)))}]
    if final:
        nodes.append({"op": final, "inputs": [1]})
    m = {"input_shape": [int(math.prod(weight["shape"][1:]))], "nodes": nodes, "tensors": tensors}
    if metadata is not None:
        m["metadata"] = metadata
    return m


# ---- hand-built files (docs/FORMAT.md; CRC-32 as zlib computes it) --------------------------------------


def crc32(b: bytes) -> int:
    return zlib.crc32(b) & 0xFFFFFFFF


def align(n: int, a: int = 64) -> int:
    return (n + a - 1) // a * a


def build_file(sections: list[tuple[int, int, bytes]], version: int = 1) -> bytes:
    """A file from (type, flags, payload) sections: header, table, 64-byte aligned payloads."""
    n = len(sections)
    offset = align(64 + 32 * n)
    table, body, start = b"", bytearray(), offset
    for typ, flags, payload in sections:
        table += struct.pack("<IIQQII", typ, flags, offset, len(payload), crc32(payload), 0)
        body += bytes(offset - start - len(body)) + payload
        offset = align(offset + len(payload))
    head = bytearray(MAGIC + struct.pack("<IIQII", version, 0, 0, n, crc32(table)) + bytes(32))
    out = bytearray(head + table + bytes(start - 64 - len(table)) + body)
    struct.pack_into("<Q", out, 16, len(out))
    struct.pack_into("<I", out, 60, crc32(bytes(out[:60])))
    return bytes(out)


def split_sections(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, flags, payload) of every section of a file, in table order."""
    (count,) = struct.unpack_from("<I", data, 24)
    out = []
    for i in range(count):
        typ, flags, off, size, _, _ = struct.unpack_from("<IIQQII", data, 64 + 32 * i)
        out.append((typ, flags, data[off : off + size]))
    return out


def attr_words(op: str, attrs: dict) -> bytes:
    out = b""
    for name, words, code in ATTRS.get(op, []):
        v = attrs[name]
        v = list(v) + [0] * (words - len(v)) if isinstance(v, (list, tuple)) else [v]
        out += struct.pack(f"<{words}{code}", *v)
    return out


def graph_payload(input_shape: list[int], nodes: list[dict]) -> bytes:
    dims = list(input_shape) + [0] * (4 - len(input_shape))
    out = struct.pack("<I4III", len(input_shape), *dims, len(nodes), 0)
    for n in nodes:
        ins, ts = n["inputs"], n.get("tensors", [])
        attrs = attr_words(n["op"], n.get("attrs", {}))
        out += struct.pack("<HBBI", OPS[n["op"]], len(ins), len(ts), len(attrs))
        out += struct.pack(f"<{len(ins)}I", *ins) + struct.pack(f"<{len(ts)}I", *ts) + attrs
    return out


def conv(stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1) -> dict:
    return {"stride": list(stride), "padding": list(padding), "dilation": list(dilation), "groups": groups}


def pool(kernel, stride=None, padding=(0, 0, 0, 0), ceil_mode=0, count_include_pad=None) -> dict:
    a = {
        "kernel": list(kernel),
        "stride": list(stride or kernel),
        "padding": list(padding),
        "ceil_mode": ceil_mode,
    }
    if count_include_pad is not None:
        a["count_include_pad"] = count_include_pad
    return a


# ---- reading back which coding each stream got -----------------------------------------------------------


def stream_codings(data: bytes) -> str:
    """'P'/'H' per symbol stream of every tensor section, e.g. 'csr[P]' or 'csr+codebook[HP]'."""
    out = []
    for typ, _, pl in split_sections(data):
        if typ != TENSOR:
            continue
        enc, rank, *dims = struct.unpack_from("<II4I", pl, 0)
        name_len = struct.unpack_from("<I", pl, 24)[0]
        pos = align(32 + name_len, 8)
        shape = dims[:rank]
        rows, _ = rows_cols(shape)
        kind = {0: "dense", 1: "csr", 2: "codebook", 3: "csr+codebook", 4: "int8", 5: "csr+int8",
                6: "binary"}[enc]
        codings = ""

        def stream(p: int, pl: bytes = pl) -> int:
            nonlocal codings
            coding, bits, _, _, nbytes, _ = struct.unpack_from("<BBHIII", pl, p)
            codings += "PH"[coding]
            p += 16
            if coding == 1:
                p = align(p + (1 << bits), 4)
            return align(p + nbytes, 4)

        if enc == 2:
            k, _ = struct.unpack_from("<II", pl, pos)
            stream(pos + 8 + 4 * k)
        elif enc == 4:
            stream(pos + 4 * rows)
        elif enc == 5:
            _, _, width = struct.unpack_from("<III", pl, pos)
            pos = align(pos + 16 + 4 * rows + rows * width, 4)
            stream(stream(pos))
        elif enc in (1, 3):
            _, _, width = struct.unpack_from("<III", pl, pos)
            pos += 12
            k = 0
            if enc == 3:
                k, _ = struct.unpack_from("<II", pl, pos)
                pos += 8
            pos += 4 + 4 * k
            pos = align(pos + rows * width, 4)
            pos = stream(pos)
            if enc == 3:
                stream(pos)
        out.append(f"{kind}[{codings}]" if codings else kind)
    return " ".join(out)


# ---- the seeds ---------------------------------------------------------------------------------------------


def seeds() -> list[tuple[str, bytes, str | None]]:
    """(file name, bytes, required coding pattern or None) for every seed."""
    rng = np.random.default_rng(20240521)
    out: list[tuple[str, bytes, str | None]] = []

    def add(name: str, model_or_bytes, expect: str | None = None) -> bytes:
        data = model_or_bytes if isinstance(model_or_bytes, bytes) else _core.write_model(model_or_bytes)
        out.append((name, data, expect))
        return data

    # one linear layer per encoding, uniform symbols: packed streams
    add("dense_linear_bias.pyrt", linear_model(dense(rng, (3, 5), "fc.weight"), dense(rng, (3,), "fc.bias")))
    add("dense_linear_nobias_softmax.pyrt", linear_model(dense(rng, (4, 3), "fc"), final="softmax"))
    add(
        "csr_packed_gaps.pyrt",
        linear_model(csr(rng, (5, 12), 0.35, "fc.weight"), dense(rng, (5,), "fc.bias")),
        "csr[P]",
    )
    add(
        "codebook_k4_packed.pyrt",
        linear_model(codebook(rng, (4, 6), k=4, name="cb"), final="softmax"),
        "codebook[P]",
    )
    add(
        "csr_codebook_k8_packed.pyrt",
        linear_model(csr_codebook(rng, (6, 10), 0.5, k=8, name="cc"), dense(rng, (6,), "b")),
        "csr+codebook[PP]",
    )

    # skewed symbols: Huffman-coded streams
    add(
        "codebook_k16_huffman.pyrt",
        linear_model(codebook(rng, (8, 48), k=16, name="cbh", indices=skewed(rng, 8 * 48, 16))),
        "codebook[H]",
    )
    # every index 0 of 4: a single-symbol Huffman table (one 1-bit code)
    add(
        "codebook_single_symbol_huffman.pyrt",
        linear_model(codebook(rng, (4, 32), k=4, name="one", indices=np.zeros(128, int))),
        "codebook[H]",
    )
    # Fibonacci frequencies over 13 symbols: codes up to 12 bits, past the 10-bit lookup table
    fib = [1, 1]
    while len(fib) < 13:
        fib.append(fib[-1] + fib[-2])
    idx = np.concatenate([np.full(f, s) for s, f in enumerate(fib)])
    idx = rng.permutation(idx)  # 609 symbols = 3 x 203
    add(
        "codebook_long_huffman_codes.pyrt",
        linear_model(codebook(rng, (3, 203), k=16, name="deep", indices=idx)),
        "codebook[H]",
    )
    # dense-ish mask: gaps are mostly 0 (Huffman gaps), skewed indices (Huffman indices)
    m = rng.random((6, 40)) < 0.85
    add(
        "csr_codebook_huffman_gaps_and_indices.pyrt",
        linear_model(
            csr_codebook(
                rng, (6, 40), k=16, mask=m, indices=skewed(rng, int(m.sum()), 16), name="hh", gap_bits=4
            )
        ),
        "csr+codebook[HH]",
    )
    m = rng.random((4, 60)) < 0.8
    add("csr_huffman_gaps.pyrt", linear_model(csr(rng, (4, 60), mask=m, name="hg", gap_bits=3)), "csr[H]")

    # forced gap widths, each with filler symbols (gaps longer than 2^b - 1)
    for b in (1, 2, 5, 8):
        cols = 300 if b == 8 else 40
        mask = np.zeros((3, cols), bool)
        mask[0, [0, cols - 1]] = True  # the widest gap a row can have
        mask[1, [1, 2, 3, cols // 2]] = True
        mask[2, min((1 << b) - 1, cols - 1)] = True  # exactly M: one filler, then 0
        enc = csr if b % 2 else csr_codebook
        kw = {} if enc is csr else {"k": 2, "index_bits": 1}
        add(
            f"{'csr' if enc is csr else 'csr_codebook'}_gap_bits_{b}_fillers.pyrt",
            linear_model(enc(rng, (3, cols), mask=mask, gap_bits=b, name=f"g{b}", **kw)),
        )

    # forced index widths: 1-bit (k=2) and 8-bit (k=3, very wasteful) indices
    add("codebook_index_bits_1.pyrt", linear_model(codebook(rng, (2, 9), k=2, name="i1", index_bits=1)))
    add(
        "csr_codebook_index_bits_8.pyrt",
        linear_model(csr_codebook(rng, (3, 9), 0.6, k=3, name="i8", index_bits=8), final="softmax"),
    )
    # more than 16 centroids: the 8-bit lookup-table kernels (Lut8 / CsrLut8) instead of the 4-bit ones
    add(
        "codebook_k32_index_bits_5.pyrt",
        linear_model(codebook(rng, (4, 40), k=32, name="k32"), dense(rng, (4,), "b")),
    )
    add(
        "csr_codebook_k24_index_bits_5.pyrt",
        linear_model(csr_codebook(rng, (5, 30), 0.5, k=24, name="k24"), final="softmax"),
    )
    add("codebook_k256_index_bits_8.pyrt", linear_model(codebook(rng, (2, 64), k=256, name="k256")))
    # a row with 256 nonzeros: 2-byte row counts
    mask = np.zeros((2, 300), bool)
    mask[0, :256] = True
    mask[1, ::29] = True
    add(
        "csr_codebook_row_count_width_2.pyrt",
        linear_model(csr_codebook(rng, (2, 300), k=2, mask=mask, name="w2")),
    )
    # more than 65536 columns: 32-bit column indices in the execution layout (one seed only: an input
    # this wide makes every run of it ~30x slower than the other seeds)
    wide = np.zeros((2, 65600), bool)
    wide[0, [5, 40000, 65599]] = True
    wide[1, [65535, 65536]] = True
    add(
        "csr_codebook_wide_65600_columns_k20.pyrt",
        linear_model(csr_codebook(rng, (2, 65600), k=20, mask=wide, name="wide"), dense(rng, (2,), "b")),
    )
    # a sparse matrix with no nonzero at all: the output is the bias
    add(
        "csr_empty_matrix.pyrt",
        linear_model(csr(rng, (4, 7), mask=np.zeros((4, 7), bool), name="empty"), dense(rng, (4,), "b")),
    )

    # graphs
    mlp = {
        "input_shape": [2, 3, 2],
        "nodes": [
            {"op": "flatten", "inputs": [0]},
            {"op": "linear", "inputs": [1], "tensors": [0, 1]},
            {"op": "relu", "inputs": [2]},
            {"op": "linear", "inputs": [3], "tensors": [2, 3]},
            {"op": "relu", "inputs": [4]},
            {"op": "linear", "inputs": [5], "tensors": [4, 5]},
            {"op": "softmax", "inputs": [6]},
        ],
        "tensors": [
            csr(rng, (8, 12), 0.4, "fc0.weight"),
            dense(rng, (8,), "fc0.bias"),
            codebook(rng, (6, 8), k=5, name="fc1.weight"),
            dense(rng, (6,), "fc1.bias"),
            csr_codebook(rng, (4, 6), 0.5, k=4, name="fc2.weight"),
            dense(rng, (4,), "fc2.bias"),
        ],
    }
    mlp_bytes = add("mlp_flatten_relu_softmax_all_encodings.pyrt", mlp)
    add("mlp_with_metadata.pyrt", {**mlp, "metadata": '{"producer": "fuzz/make_corpus.py", "classes": 4}'})
    add(
        "activations_only_rank4.pyrt",
        {
            "input_shape": [2, 1, 3, 2],
            "nodes": [
                {"op": "relu", "inputs": [0]},
                {"op": "flatten", "inputs": [1]},
                {"op": "softmax", "inputs": [2]},
            ],
            "tensors": [],
        },
    )
    # values read twice and long after they are made: exercises the arena planner's liveness
    add(
        "graph_reuses_values.pyrt",
        {
            "input_shape": [4],
            "nodes": [
                {"op": "relu", "inputs": [0]},  # v1
                {"op": "linear", "inputs": [0], "tensors": [0]},  # v2 (reads the input again)
                {"op": "softmax", "inputs": [2]},  # v3
                {"op": "linear", "inputs": [1], "tensors": [1, 2]},  # v4
                {"op": "relu", "inputs": [3]},  # v5
                {"op": "softmax", "inputs": [4]},  # v6 = output
            ],
            "tensors": [
                dense(rng, (4, 4), "a"),
                codebook(rng, (3, 4), k=3, name="b"),
                dense(rng, (3,), "b.bias"),
            ],
        },
    )
    # tensors no node uses, ranks 3 and 4 (the file keeps them; the loader must still decode them)
    add(
        "unused_rank3_rank4_tensors.pyrt",
        {
            "input_shape": [3],
            "nodes": [{"op": "relu", "inputs": [0]}],
            "tensors": [
                csr(rng, (2, 3, 4), 0.4, "r3"),
                codebook(rng, (2, 1, 2, 3), k=3, name="r4"),
                dense(rng, (1, 2, 1, 2), "d4"),
            ],
        },
    )

    # hand-built: graph section last, an unknown optional section, an empty metadata section
    sec = split_sections(mlp_bytes)
    graph, tensors = sec[0], sec[1:]
    add(
        "handmade_graph_last_unknown_optional_section.pyrt",
        build_file(tensors + [(77, 0, b"skip me"), (METADATA, 0, b""), graph]),
    )
    add(
        "handmade_activations_only.pyrt",
        build_file(
            [
                (
                    GRAPH,
                    1,
                    graph_payload([5], [{"op": "relu", "inputs": [0]}, {"op": "softmax", "inputs": [1]}]),
                )
            ]
        ),
    )

    # version 2: small convolutional graphs (every version-2 op, every weight encoding as a conv weight)
    conv_bytes = add(
        "v2_conv_relu_maxpool_ceil_gap_linear.pyrt",
        {
            "input_shape": [2, 7, 7],
            "nodes": [
                {"op": "conv2d", "inputs": [0], "tensors": [0, 1], "attrs": conv(padding=(1, 1, 1, 1))},
                {"op": "relu", "inputs": [1]},  # [4, 7, 7]
                {"op": "max_pool2d", "inputs": [2], "attrs": pool((2, 2), ceil_mode=1)},  # [4, 4, 4]
                {"op": "global_avg_pool", "inputs": [3]},  # [4, 1, 1]
                {"op": "flatten", "inputs": [4]},
                {"op": "linear", "inputs": [5], "tensors": [2, 3]},
                {"op": "softmax", "inputs": [6]},
            ],
            "tensors": [
                csr_codebook(rng, (4, 2, 3, 3), 0.5, k=6, name="conv.weight"),
                dense(rng, (4,), "conv.bias"),
                dense(rng, (3, 4), "fc.weight"),
                dense(rng, (3,), "fc.bias"),
            ],
        },
        "csr+codebook[PP]",
    )
    add(
        "v2_depthwise_dilated_residual_avgpool.pyrt",
        {
            "input_shape": [3, 6, 8],
            "nodes": [
                {
                    "op": "conv2d",
                    "inputs": [0],
                    "tensors": [0],  # depthwise, dilated, asymmetric padding
                    "attrs": conv(padding=(2, 1, 2, 3), dilation=(2, 2), groups=3),
                },
                {"op": "add", "inputs": [1, 0]},  # residual: [3, 6, 8]
                {"op": "avg_pool2d", "inputs": [2], "attrs": pool((3, 3), (2, 2), (1, 1, 1, 0), 1, 1)},
                {"op": "avg_pool2d", "inputs": [2], "attrs": pool((2, 3), (2, 3), (1, 0, 0, 2), 0, 0)},
                {"op": "clamp", "inputs": [4], "attrs": {"min": 0.0, "max": 6.0}},  # relu6
            ],
            "tensors": [codebook(rng, (3, 1, 3, 3), k=4, name="dw.weight")],
        },
        "codebook[P]",
    )
    add(
        "v2_grouped_strided_csr_conv_concat.pyrt",
        {
            "input_shape": [4, 9, 9],
            "nodes": [
                {
                    "op": "conv2d",
                    "inputs": [0],
                    "tensors": [0, 1],
                    "attrs": conv((2, 2), (1, 1, 1, 1), groups=2),
                },
                {"op": "conv2d", "inputs": [0], "tensors": [2], "attrs": conv((2, 2), (0, 0, 1, 1))},
                {"op": "concat", "inputs": [1, 2, 1], "attrs": {"axis": 0}},  # [10, 5, 5]
                {"op": "max_pool2d", "inputs": [3], "attrs": pool((3, 2), (1, 2), (1, 0, 1, 1))},
                {"op": "concat", "inputs": [4, 4], "attrs": {"axis": 2}},
                {"op": "reshape", "inputs": [5], "attrs": {"shape": [10, 5, 6]}},
            ],
            "tensors": [
                csr(rng, (4, 2, 3, 3), 0.4, "g.weight"),
                dense(rng, (4,), "g.bias"),
                dense(rng, (2, 4, 2, 2), "s.weight"),
            ],
        },
        "csr[P]",
    )
    add(
        "v2_reshape_concat_clamp_mlp.pyrt",
        {
            "input_shape": [12],
            "nodes": [
                {"op": "reshape", "inputs": [0], "attrs": {"shape": [3, 2, 2]}},
                {"op": "conv2d", "inputs": [1], "tensors": [0], "attrs": conv()},  # 1x1: [2, 2, 2]
                {"op": "reshape", "inputs": [2], "attrs": {"shape": [8]}},
                {"op": "concat", "inputs": [3, 0], "attrs": {"axis": 0}},  # [20]
                {"op": "clamp", "inputs": [4], "attrs": {"min": -0.5, "max": float("inf")}},
                {"op": "linear", "inputs": [5], "tensors": [1]},
            ],
            "tensors": [codebook(rng, (2, 3, 1, 1), k=2, name="pw.weight"), csr(rng, (4, 20), 0.3, "fc")],
        },
    )
    # hand-built version-2 files: version-1 ops only in a version-2 file (accepted); a conv in a
    # version-1 file (refused: the op needs version 2)
    v2_graph = [
        {"op": "reshape", "inputs": [0], "attrs": {"shape": [2, 2, 3]}},
        {"op": "max_pool2d", "inputs": [1], "attrs": pool((2, 2), (1, 1), (1, 1, 0, 0), 1)},
        {"op": "global_avg_pool", "inputs": [2]},
        {"op": "add", "inputs": [3, 3]},
    ]
    add(
        "handmade_v2_header_v1_ops.pyrt",
        build_file([(GRAPH, 1, graph_payload([6], [{"op": "relu", "inputs": [0]}]))], 2),
    )
    add("handmade_v2_pools_no_tensors.pyrt", build_file([(GRAPH, 1, graph_payload([12], v2_graph))], 2))
    add("bad_v2_op_in_v1_file.pyrt", build_file([(GRAPH, 1, graph_payload([12], v2_graph))], 1))

    # what an outside attack tried beyond byte flips, every checksum valid: sections duplicated, removed,
    # swapped and spliced between two models, a shape field forged huge, and a valid model of a few hundred
    # bytes whose arena is 7.9 GiB at batch 1 (the harness loads it and skips running it by its work)
    ms, cs = split_sections(mlp_bytes), split_sections(conv_bytes)
    add("attack_duplicated_tensor_section.pyrt", build_file(ms[:2] + ms[1:]))
    add("attack_removed_tensor_section.pyrt", build_file(ms[:1] + ms[2:]))
    add("attack_swapped_sections.pyrt", build_file([ms[1], ms[0]] + ms[2:]))
    add("attack_conv_graph_mlp_tensors.pyrt", build_file([s for s in cs if s[0] == GRAPH] +
                                                          [s for s in ms if s[0] != GRAPH], 2))
    add("attack_mlp_with_a_conv_tensor_spliced.pyrt", build_file(ms[:2] + [cs[1]] + ms[3:], 2))
    typ, flags, pl = ms[1]
    forged = bytearray(pl)
    struct.pack_into("<I", forged, 8, 1 << 31)  # dims[0] of the first tensor
    add("attack_forged_huge_dim.pyrt", build_file([ms[0], (typ, flags, bytes(forged))] + ms[2:]))
    add(
        "attack_tiny_file_huge_arena.pyrt",
        {
            "input_shape": [1, 1, 1],
            "nodes": [
                {"op": "conv2d", "inputs": [0], "tensors": [0], "attrs": conv(padding=(23000,) * 4)},
                {"op": "global_avg_pool", "inputs": [1]},
            ],
            "tensors": [dense(rng, (1, 1, 1, 1), "w")],
        },
    )
    # found by the fuzzer: the same strided down the rows, a small arena and work, but a direct conv would
    # pad 8 GB (the method choice keeps a kernel's scratch in proportion: im2col)
    add(
        "attack_strided_huge_padding.pyrt",
        {
            "input_shape": [1, 1, 1],
            "nodes": [
                {"op": "conv2d", "inputs": [0], "tensors": [0],
                 "attrs": conv(stride=(2305, 1), padding=(23000,) * 4)},
                {"op": "global_avg_pool", "inputs": [1]},
            ],
            "tensors": [dense(rng, (1, 1, 1, 1), "w")],
        },
    )

    # version 3: int8 layers (FORMAT.md 2.5, 3.6, 3.7): a dynamic linear, then a static qlinear chain kept in
    # int8 through a relu (the plan's conversions), packed and Huffman-coded value streams, a zero channel
    def int8_t(shape, name, density=None, skew=False):
        rows, _ = shape
        q = rng.integers(-127, 128, size=shape)
        if skew:
            q = np.clip(np.round(rng.standard_normal(shape) * 4), -127, 127).astype(np.int64)
        sc = (rng.random(rows) * 0.05 + 0.001).astype(np.float32)
        sc[0] = 0.0
        if density is None:
            return {"name": name, "encoding": "int8", "shape": list(shape), "qvalues": q.ravel(), "scales": sc}
        q = np.where(mask_of(rng, shape, density), q, 0)
        rr, cc = np.nonzero(q)
        return {"name": name, "encoding": "csr+int8", "shape": list(shape),
                "rowptr": np.r_[0, np.cumsum((q != 0).sum(1))].astype(np.uint32), "colidx": cc.astype(np.uint32),
                "qvalues": q[rr, cc], "scales": sc}

    add("v3_int8_dynamic_linear.pyrt", linear_model(int8_t((6, 10), "fc.weight"), dense(rng, (6,), "fc.bias")),
        "int8[P]")
    add("v3_int8_huffman_values.pyrt", linear_model(int8_t((40, 48), "fc.weight", skew=True)), "int8[H]")
    qa = {"input_scale": 0.05, "output_scale": 0.1, "min": 0.0, "max": float("inf")}
    add(
        "v3_qlinear_chain_csr_int8.pyrt",
        {
            "input_shape": [2, 8],
            "nodes": [
                {"op": "flatten", "inputs": [0]},
                {"op": "qlinear", "inputs": [1], "tensors": [0, 1], "attrs": qa},
                {"op": "relu", "inputs": [2]},
                {"op": "qlinear", "inputs": [3], "tensors": [2],
                 "attrs": {"input_scale": 0.1, "output_scale": 0.0, "min": -1.0, "max": 1.0}},
                {"op": "linear", "inputs": [4], "tensors": [3]},
                {"op": "softmax", "inputs": [5]},
            ],
            "tensors": [int8_t((12, 16), "q1.weight", density=0.4), dense(rng, (12,), "q1.bias"),
                        int8_t((8, 12), "q2.weight"), int8_t((4, 8), "fc.weight", density=0.5)],
        },
    )

    cq = int8_t((6, 2 * 3 * 3), "conv.weight", density=0.5)
    cq["shape"] = [6, 2, 3, 3]
    add(
        "v3_int8_conv_grouped_csr.pyrt",
        {
            "input_shape": [4, 6, 7],
            "nodes": [
                {"op": "conv2d", "inputs": [0], "tensors": [0, 1],
                 "attrs": conv(stride=(2, 1), padding=(1, 1, 1, 1), groups=2)},
                {"op": "relu", "inputs": [1]},
                {"op": "global_avg_pool", "inputs": [2]},
            ],
            "tensors": [cq, dense(rng, (6,), "conv.bias")],
        },
        "csr+int8[PP]",
    )
    c1 = int8_t((4, 3 * 3 * 3), "q1.weight")
    c1["shape"] = [4, 3, 3, 3]
    c2 = int8_t((4, 9), "q2.weight", density=0.6)
    c2["shape"] = [4, 1, 3, 3]
    add(
        "v3_qconv2d_chain_max_pool.pyrt",  # static convolutions kept in int8 through relu and max_pool2d
        {
            "input_shape": [3, 9, 8],
            "nodes": [
                {"op": "qconv2d", "inputs": [0], "tensors": [0, 1], "attrs": conv(padding=(1, 1, 1, 1)) | qa},
                {"op": "relu", "inputs": [1]},
                {"op": "max_pool2d", "inputs": [2],
                 "attrs": {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0, 0, 0], "ceil_mode": 1}},
                {"op": "qconv2d", "inputs": [3], "tensors": [2],
                 "attrs": conv(stride=(2, 2), groups=4) | {**qa, "input_scale": 0.1, "output_scale": 0.0}},
                {"op": "flatten", "inputs": [4]},
            ],
            "tensors": [c1, dense(rng, (4,), "q1.bias"), c2],
        },
        "int8[P]",
    )

    out += binary_seeds()

    # damaged on purpose
    add("bad_truncated_header.pyrt", mlp_bytes[:40])
    add("bad_truncated_in_payload.pyrt", mlp_bytes[: len(mlp_bytes) - 100])
    flipped = bytearray(mlp_bytes)
    flipped[sec_offset(mlp_bytes, 2) + 40] ^= 0x10  # a byte inside tensor fc1.weight: payload CRC mismatch
    add("bad_payload_crc.pyrt", bytes(flipped))
    return out


def binary_seeds() -> list[tuple[str, bytes, str | None]]:
    """Version 4: binary layers (FORMAT.md 2.6, 3.8), from their own random generator so that the seeds
    before them keep their bytes: a sign -> blinear (thresholds) -> blinear (real output) chain with columns
    that are no multiple of 64 (pad bits) and thresholds 0 and K + 1; a binary-weight, real-activation
    blinear with a bias; an image binarized as 2x - 1, kept in the bit domain through max_pool2d, flatten and
    reshape."""
    rng = np.random.default_rng(20240604)

    def binary(rows, cols, name):
        alphas = (rng.random(rows) * 0.1 + 0.01).astype(np.float32)
        alphas[0] = 0.0
        return {"name": name, "encoding": "binary", "shape": [rows, cols],
                "bits": rng.integers(0, 2, rows * cols).astype(np.uint8), "scales": alphas}

    def thresholds(rows, k, name):
        t = rng.integers(k // 2 - 3, k // 2 + 4, rows)
        t[:2] = [0, k + 1]
        return {"name": name, "encoding": "dense", "shape": [rows], "values": t.astype(np.float32)}

    out = []
    chain = {
        "input_shape": [70],
        "nodes": [
            {"op": "sign", "inputs": [0], "attrs": {"scale": 1.0, "shift": 0.0}},
            {"op": "blinear", "inputs": [1], "tensors": [0, 1], "attrs": {"input": 0, "output": 1}},
            {"op": "blinear", "inputs": [2], "tensors": [2, 3], "attrs": {"input": 0, "output": 0}},
        ],
        "tensors": [binary(40, 70, "b1.weight"), thresholds(40, 70, "b1.thresholds"),
                    binary(10, 40, "b2.weight"), dense(rng, (10,), "b2.bias")],
    }
    out.append(("v4_sign_blinear_thresholds_chain.pyrt", _core.write_model(chain), "binary"))
    bwn = {
        "input_shape": [3, 5],
        "nodes": [
            {"op": "flatten", "inputs": [0]},
            {"op": "blinear", "inputs": [1], "tensors": [0, 1], "attrs": {"input": 1, "output": 0}},
            {"op": "softmax", "inputs": [2]},
        ],
        "tensors": [binary(12, 15, "fc.weight"), dense(rng, (12,), "fc.bias")],
    }
    out.append(("v4_binary_weights_real_activations.pyrt", _core.write_model(bwn), "binary"))
    image = {
        "input_shape": [2, 6, 6],
        "nodes": [
            {"op": "sign", "inputs": [0], "attrs": {"scale": 2.0, "shift": -1.0}},
            {"op": "max_pool2d", "inputs": [1], "attrs": pool((2, 2))},
            {"op": "flatten", "inputs": [2]},
            {"op": "blinear", "inputs": [3], "tensors": [0, 1], "attrs": {"input": 0, "output": 1}},
            {"op": "reshape", "inputs": [4], "attrs": {"shape": [5, 13]}},
            {"op": "flatten", "inputs": [5]},
            {"op": "blinear", "inputs": [6], "tensors": [2], "attrs": {"input": 0, "output": 0}},
        ],
        "tensors": [binary(65, 18, "b1.weight"), thresholds(65, 18, "b1.thresholds"),
                    binary(4, 65, "b2.weight")],
    }
    out.append(("v4_binarized_image_pool_reshape.pyrt", _core.write_model(image), "binary"))
    return out + bconv2d_seeds() + v5_seeds()


def v5_seeds() -> list[tuple[str, bytes, str | None]]:
    """Version 5 (FORMAT.md 2, 2.7), from a random generator of its own so that every seed before these keeps
    its bytes: a one-layer attention block over token ids and a float mask (two inputs, two outputs; an
    embedding table stored csr+codebook, codebook q/k weights, broadcasting arithmetic with constants,
    matmul, transposes, slice, softmax along an axis, layer norm, gelu, tanh); and the CNN ops of version 5
    (nearest upsampling, adaptive average pooling, leaky relu, silu, sigmoid, a broadcast product)."""
    rng = np.random.default_rng(20241202)

    def n(op, inputs, tensors=(), **attrs):
        return {"op": op, "inputs": list(inputs), "tensors": list(tensors), "attrs": attrs}

    t, h = 6, 8
    attention = {
        "inputs": [{"shape": [t], "type": "i32"}, {"shape": [t], "type": "f32"}],
        "nodes": [
            n("embedding", [0], [0]),                          # 2: [6, 8]
            n("add", [2], [1]),                                # 3: + positions
            n("layer_norm", [3], [2, 3], eps=1e-5),            # 4
            n("linear", [4], [4]),                             # 5: q
            n("linear", [4], [5]),                             # 6: k
            n("reshape", [5], shape=[t, 2, 4]),                # 7
            n("transpose", [7], perm=[1, 0, 2, 0]),            # 8: [2, 6, 4]
            n("reshape", [6], shape=[t, 2, 4]),                # 9
            n("transpose", [9], perm=[1, 2, 0, 0]),            # 10: [2, 4, 6]
            n("matmul", [8, 10]),                              # 11: [2, 6, 6]
            n("div", [11], [6]),                               # 12: / sqrt(4)
            n("reshape", [1], shape=[1, 1, t]),                # 13: the mask
            n("sub", [13], [7]),                               # 14: mask - 1
            n("mul", [14], [8]),                               # 15: * 10000
            n("add", [12, 15]),                                # 16
            n("softmax_axis", [16], axis=2),                   # 17
            n("matmul", [17, 8]),                              # 18: [2, 6, 4]
            n("transpose", [18], perm=[1, 0, 2, 0]),           # 19
            n("reshape", [19], shape=[t, h]),                  # 20
            n("gelu", [20], approximate=0),                    # 21
            n("slice", [21], axis=0, start=0, end=1, step=1),  # 22
            n("tanh", [22]),                                   # 23
        ],
        "outputs": [21, 23],
        "tensors": [csr_codebook(rng, (9, h), 0.5, k=8, name="emb"), dense(rng, (t, h), "pos"),
                    dense(rng, (h,), "ln.weight"), dense(rng, (h,), "ln.bias"),
                    codebook(rng, (h, h), k=4, name="q"), codebook(rng, (h, h), k=4, name="k"),
                    {"name": "scale", "encoding": "dense", "shape": [1], "values": np.array([2.0], np.float32)},
                    {"name": "one", "encoding": "dense", "shape": [1], "values": np.array([1.0], np.float32)},
                    {"name": "big", "encoding": "dense", "shape": [1], "values": np.array([1e4], np.float32)}],
    }
    cnn = {
        "input_shape": [2, 5, 5],
        "nodes": [
            n("upsample_nearest", [0], scale=[2, 1]),           # 1: [2, 10, 5]
            n("adaptive_avg_pool2d", [1], output_size=[3, 4]),  # 2: [2, 3, 4]
            n("leaky_relu", [2], slope=0.1),                    # 3
            n("global_avg_pool", [3]),                          # 4: [2, 1, 1]
            n("sigmoid", [4]),                                  # 5
            n("mul", [3, 5]),                                   # 6: broadcast
            n("silu", [6]),                                     # 7
        ],
    }
    return [("v5_attention_two_inputs_two_outputs.pyrt", _core.write_model(attention), None),
            ("v5_cnn_ops.pyrt", _core.write_model(cnn), None)]


def bconv2d_seeds() -> list[tuple[str, bytes, str | None]]:
    """Version 4: bconv2d (FORMAT.md 2.6), from a random generator of its own so that every seed before
    these keeps its bytes: a sign -> bconv2d (thresholds, padded, C = 65) -> bconv2d (output 0, strided)
    chain whose thresholds are multiples of 1/2 (0, K + 1 and half-integers among them); a real-activation
    bconv2d (input 1) with a bias, asymmetric padding and dilation 2."""
    rng = np.random.default_rng(20240617)

    def weight(shape, name):
        alphas = (rng.random(shape[0]) * 0.1 + 0.01).astype(np.float32)
        alphas[0] = 0.0
        return {"name": name, "encoding": "binary", "shape": list(shape),
                "bits": rng.integers(0, 2, math.prod(shape)).astype(np.uint8), "scales": alphas}

    def conv(padding=(0, 0, 0, 0), stride=(1, 1), dilation=(1, 1), inp=0, output=0):
        return {"stride": list(stride), "padding": list(padding), "dilation": list(dilation), "groups": 1,
                "input": inp, "output": output}

    k = 65 * 3 * 3
    t = rng.integers(2 * (k // 2) - 9, 2 * (k // 2) + 10, 8) / 2  # halves near K / 2
    t[:2] = [0, k + 1]
    chain = {
        "input_shape": [65, 5, 5],
        "nodes": [
            {"op": "sign", "inputs": [0], "attrs": {"scale": 1.0, "shift": 0.0}},
            {"op": "bconv2d", "inputs": [1], "tensors": [0, 1], "attrs": conv((1, 1, 1, 1), output=1)},
            {"op": "bconv2d", "inputs": [2], "tensors": [2, 3], "attrs": conv((0, 1, 1, 0), (2, 2))},
        ],
        "tensors": [weight((8, 65, 3, 3), "c1.weight"),
                    {"name": "c1.thresholds", "encoding": "dense", "shape": [8], "values": t.astype(np.float32)},
                    weight((4, 8, 3, 3), "c2.weight"), dense(rng, (4,), "c2.bias")],
    }
    real = {
        "input_shape": [3, 6, 6],
        "nodes": [
            {"op": "bconv2d", "inputs": [0], "tensors": [0, 1], "attrs": conv((1, 0, 2, 1), dilation=(2, 2), inp=1)},
            {"op": "relu", "inputs": [1]},
        ],
        "tensors": [weight((6, 3, 3, 3), "c.weight"), dense(rng, (6,), "c.bias")],
    }
    return [("v4_sign_bconv2d_thresholds_chain.pyrt", _core.write_model(chain), "binary"),
            ("v4_bconv2d_real_activations.pyrt", _core.write_model(real), "binary")]


def sec_offset(data: bytes, index: int) -> int:
    return struct.unpack_from("<Q", data, 64 + 32 * index + 8)[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=pathlib.Path, default=HERE / "corpus")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.pyrt"):
        old.unlink()
    total = 0
    all_seeds = seeds()
    for name, data, expect in all_seeds:
        assert len(data) <= MAX_SEED_BYTES, (name, len(data))
        codings = stream_codings(data) if not name.startswith(("bad_", "attack_forged")) else "(damaged)"
        if expect is not None:
            assert expect in codings, f"{name}: expected {expect}, the writer produced {codings}"
        (args.out / name).write_bytes(data)
        total += len(data)
        print(f"{len(data):6d}  {name:50s} {codings}")
    assert total <= MAX_TOTAL_BYTES, total
    print(f"{total} bytes in {len(all_seeds)} seeds under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
