"""An independent reader of the ``.pyrt`` model file, written from docs/FORMAT.md alone.

It exists to show that the document is a complete spec: numpy and the standard library only, no code
shared with (or read from) the C++ implementation. Section numbers in comments and error messages are
those of docs/FORMAT.md.

    model = read_file(data)          # every check of FORMAT.md 6 (and each "a reader refuses" sentence)
    w = dense_matrix(model.tensors[0])
    y = run(model, x)                # float64 numpy forward pass of every op (versions 1 to 4; the int8
                                     # layers of 2.5 and the binary ones of 2.6 in their exact operations)

Where the document leaves a reader's behaviour open, the choice made here is marked ``ASSUMPTION``.
Convolutions are computed by an explicit im2col (2.3) and pools by a loop over the output positions with
windows clipped as 2.4 says, so neither shares anything with the runtime's kernels. Version 4 (the binary
encoding, sign, blinear and bconv2d) is in spec_binary.py.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
import spec_binary as sb

READER_VERSION = 4
MAGIC = b"PYRT\r\n\x1a\n"
GRAPH, TENSOR, METADATA = 1, 2, 3
REQUIRED = 1
# 2.1: op code -> (name, the format version that introduced it)
OP_TABLE = {
    1: ("linear", 1),
    2: ("relu", 1),
    3: ("softmax", 1),
    4: ("flatten", 1),
    5: ("conv2d", 2),
    6: ("max_pool2d", 2),
    7: ("avg_pool2d", 2),
    8: ("global_avg_pool", 2),
    9: ("add", 2),
    10: ("concat", 2),
    11: ("reshape", 2),
    12: ("clamp", 2),
    13: ("qlinear", 3),
    14: ("qconv2d", 3),
    15: ("sign", 4),
    16: ("blinear", 4),
    17: ("bconv2d", 4),
}
OPS = {code: name for code, (name, _) in OP_TABLE.items()}
OP_CODES = {name: code for code, name in OPS.items()}
# 2.1: (min, max) inputs and tensors of each op
N_INPUTS = {name: (1, 1) for name in OP_CODES} | {"add": (2, 2), "concat": (2, 16)}
N_TENSORS = {name: (0, 0) for name in OP_CODES} | {"linear": (1, 2), "conv2d": (1, 2), "qlinear": (1, 2),
                                                   "qconv2d": (1, 2), "blinear": (1, 2),
                                                   "bconv2d": (1, 2)}
# 2.2: each op's attribute fields in file order: (name, words, "u32" | "f32"); a one-word field reads as a
# number, a longer one as a list
_POOL = [("kernel", 2, "u32"), ("stride", 2, "u32"), ("padding", 4, "u32"), ("ceil_mode", 1, "u32")]
ATTRS: dict[str, list[tuple[str, int, str]]] = {
    "conv2d": [("stride", 2, "u32"), ("padding", 4, "u32"), ("dilation", 2, "u32"), ("groups", 1, "u32")],
    "max_pool2d": _POOL,
    "avg_pool2d": _POOL + [("count_include_pad", 1, "u32")],
    "concat": [("axis", 1, "u32")],
    "reshape": [("shape", 4, "u32")],
    "clamp": [("min", 1, "f32"), ("max", 1, "f32")],
    "qlinear": [("input_scale", 1, "f32"), ("output_scale", 1, "f32"), ("min", 1, "f32"), ("max", 1, "f32")],
    "sign": [("scale", 1, "f32"), ("shift", 1, "f32")],
    "blinear": [("input", 1, "u32"), ("output", 1, "u32")],
}
ATTRS["qconv2d"] = ATTRS["conv2d"] + ATTRS["qlinear"]
ATTRS["bconv2d"] = ATTRS["conv2d"] + ATTRS["blinear"]
MAX_WINDOW = 65536  # 2.2: strides, dilations, kernels (and conv kernel dims) are 1..65536
# 2.1: "Every value a graph defines has 1 to 2^31 elements per sample"
MAX_VALUE_ELEMENTS = 1 << 31
ENCODINGS = {0: "dense", 1: "csr", 2: "codebook", 3: "csr+codebook", 4: "int8", 5: "csr+int8", 6: "binary"}
ENCODING_VERSION = {4: 3, 5: 3, 6: 4}  # 1.1: the int8 encodings are version 3, binary version 4
INT8 = ("int8", "csr+int8")
MAX_INT8_COLS = 133_144  # 2.1: an int8 weight has at most (2^31 - 1) / 127^2 columns
CODINGS = {0: "packed", 1: "huffman"}
MAX_CODE_LEN = 24
# 2: "at most 2^31 elements per sample" for the graph input
MAX_INPUT_ELEMENTS = 1 << 31


class SpecError(ValueError):
    """The file breaks docs/FORMAT.md; the message names the section, tensor or node."""


@dataclass
class Section:
    type: int
    flags: int
    offset: int
    size: int
    crc: int


@dataclass
class Stream:
    coding: str  # "packed" | "huffman"
    symbol_bits: int
    count: int
    payload_bytes: int
    symbols: np.ndarray  # uint8[count]
    code_lengths: np.ndarray | None = None  # uint8[2^symbol_bits] for huffman


@dataclass
class Tensor:
    name: str
    encoding: str
    shape: list[int]
    rows: int
    cols: int
    values: np.ndarray | None = None  # dense: float32 of `shape`; csr: float32[nnz]
    qvalues: np.ndarray | None = None  # int8: int8[numel]; csr+int8: int8[nnz]
    scales: np.ndarray | None = None  # int8, csr+int8: float32[rows]; binary: the alphas
    bits: np.ndarray | None = None  # binary: uint8[numel], row-major, 1 = +1 and 0 = -1
    rowptr: np.ndarray | None = None  # uint32[rows + 1]
    colidx: np.ndarray | None = None  # uint32[nnz]
    indices: np.ndarray | None = None  # uint8[numel] (codebook) or uint8[nnz] (csr+codebook)
    centroids: np.ndarray | None = None  # float32[k]
    index_bits: int | None = None
    gap_bits: int | None = None
    count_width: int | None = None
    streams: dict[str, Stream] = field(default_factory=dict)  # "gaps" / "indices"

    @property
    def coding(self) -> dict[str, str]:
        return {k: s.coding for k, s in self.streams.items()}


@dataclass
class Node:
    op: str
    inputs: list[int]
    tensors: list[int]
    attrs: dict = field(default_factory=dict)  # 2.2 field -> int, float or list of ints
    attr_bytes: bytes = b""


@dataclass
class SpecModel:
    version: int
    flags: int
    file_size: int
    sections: list[Section]
    input_shape: list[int]
    nodes: list[Node]
    tensors: list[Tensor]
    metadata: str
    value_shapes: list[list[int]]


# ---- byte cursor ----------------------------------------------------------------------------------------


class _Cursor:
    """Reads little-endian fields from one payload; refuses to read past its end."""

    def __init__(self, buf: bytes, where: str):
        self.buf, self.pos, self.where = buf, 0, where

    def fail(self, what: str) -> SpecError:
        return SpecError(f"{self.where}: {what}")

    def need(self, n: int, what: str) -> None:
        if n > len(self.buf) - self.pos:
            raise self.fail(
                f"{what} needs {n} bytes at payload offset {self.pos}, {len(self.buf) - self.pos} left"
            )

    def take(self, n: int, what: str) -> bytes:
        self.need(n, what)
        self.pos += n
        return self.buf[self.pos - n : self.pos]

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def pad(self, to: int, what: str) -> None:
        # ASSUMPTION (gap): padding bytes are skipped, not checked to be zero (the spec never says a
        # reader checks them); the padding must be present in the payload.
        self.take(-self.pos % to, f"padding after {what}")


def _crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


# ---- 4. symbol streams ----------------------------------------------------------------------------------


def _bits(payload: bytes) -> np.ndarray:
    # 4.1: bit i is bit (i mod 8) of byte i // 8, least significant first
    return np.unpackbits(np.frombuffer(payload, np.uint8), bitorder="little")


def canonical_codes(lengths: np.ndarray, where: str) -> dict[tuple[int, int], int]:
    """4.2: {(length, code): symbol} rebuilt from code lengths as in RFC 1951 3.2.2."""
    lens = [int(v) for v in lengths]
    if max(lens) > MAX_CODE_LEN:
        raise SpecError(f"{where}: Huffman code length {max(lens)} > {MAX_CODE_LEN}")
    count = [0] * (MAX_CODE_LEN + 1)
    for n in lens:
        if n:
            count[n] += 1
    if sum(count) == 0:
        raise SpecError(f"{where}: Huffman table has no code")
    if sum(count[n] << (MAX_CODE_LEN - n) for n in range(1, MAX_CODE_LEN + 1)) > 1 << MAX_CODE_LEN:
        raise SpecError(f"{where}: Huffman table is over-subscribed")
    nxt = [0] * (MAX_CODE_LEN + 1)
    code = 0
    for n in range(1, MAX_CODE_LEN + 1):
        code = (code + count[n - 1]) << 1
        nxt[n] = code
    table = {}
    for s, n in enumerate(lens):
        if n:
            table[(n, nxt[n])] = s
            nxt[n] += 1
    return table


def _huffman_decode(payload: bytes, lengths: np.ndarray, count: int, where: str) -> np.ndarray:
    table = canonical_codes(lengths, where)
    longest = max(n for n, _ in table)
    bits = _bits(payload).tolist()
    out = np.empty(count, np.uint8)
    pos = 0
    for j in range(count):
        code = n = 0
        while True:  # one bit at a time, most significant bit of the code first (4.1)
            if pos >= len(bits):
                raise SpecError(f"{where}: Huffman payload ends inside symbol {j} of {count}")
            code = (code << 1) | bits[pos]
            pos += 1
            n += 1
            sym = table.get((n, code))
            if sym is not None:
                out[j] = sym
                break
            if n >= longest:
                raise SpecError(f"{where}: symbol {j}: bits {code:0{n}b} are no code of the table")
    if (pos + 7) // 8 != len(payload):
        raise SpecError(
            f"{where}: Huffman payload has {len(payload)} bytes, the symbols use {(pos + 7) // 8}"
        )
    return out


def read_stream(cur: _Cursor, symbol_bits: int, what: str, count_ok) -> Stream:
    """4: one symbol stream at the cursor; `count_ok(count)` returns an error text or None."""
    where = f"{cur.where}: {what} stream"
    coding, bits, _res0, count, payload_bytes, _res1 = cur.unpack("BBHIII", f"{what} stream header")
    # ASSUMPTION (gap): the two reserved fields are not checked (FORMAT.md: "only where noted").
    if coding not in CODINGS:
        raise SpecError(f"{where}: unknown coding {coding}")
    if bits != symbol_bits:
        raise SpecError(f"{where}: symbol_bits {bits}, the field expects {symbol_bits}")
    problem = count_ok(count)
    if problem:
        raise SpecError(f"{where}: count {count}: {problem}")
    lengths = None
    if coding == 0:
        if payload_bytes != (count * bits + 7) // 8:
            raise SpecError(f"{where}: packed payload_bytes {payload_bytes} != ceil({count} * {bits} / 8)")
    else:
        if count > 8 * payload_bytes:
            raise SpecError(f"{where}: count {count} > 8 * payload_bytes {payload_bytes}")
        lengths = np.frombuffer(cur.take(1 << bits, f"{what} code lengths"), np.uint8).copy()
        cur.pad(4, f"{what} code lengths")
    cur.need(payload_bytes, f"{what} payload")
    payload = cur.take(payload_bytes, f"{what} payload")
    cur.pad(4, f"{what} payload")
    if coding == 0:
        # 4.1 packed: symbol j is stream bits [j*b, j*b + b), least significant bit first
        sym_bits = _bits(payload)[: count * bits].reshape(count, bits).astype(np.uint32)
        symbols = (sym_bits << np.arange(bits, dtype=np.uint32)).sum(axis=1).astype(np.uint8)
    else:
        symbols = _huffman_decode(payload, lengths, count, where)
    return Stream(CODINGS[coding], bits, count, payload_bytes, symbols, lengths)


def decode_stream(data: bytes, symbol_bits: int) -> Stream:
    """One stream on its own (4), as `_core.encode_symbol_stream` writes it; any count is allowed."""
    cur = _Cursor(bytes(data), "stream")
    s = read_stream(cur, symbol_bits, "symbol", lambda n: None)
    if cur.pos != len(cur.buf):
        raise cur.fail(f"{len(cur.buf) - cur.pos} bytes after the stream")
    return s


# ---- 3. tensors -----------------------------------------------------------------------------------------


def _codebook_head(cur: _Cursor, k: int, index_bits: int) -> np.ndarray:
    if not 1 <= k <= 256:
        raise cur.fail(f"codebook size k = {k} not in 1..256")
    if not 1 <= index_bits <= 8 or (1 << index_bits) < k:
        raise cur.fail(f"index_bits {index_bits} cannot index k = {k} centroids (needs 1..8, 2^bits >= k)")
    return np.frombuffer(cur.take(4 * k, "centroids"), "<f4").astype(np.float32)


def _check_indices(cur: _Cursor, idx: np.ndarray, k: int) -> None:
    bad = np.flatnonzero(idx >= k)
    if bad.size:
        raise cur.fail(f"index {int(idx[bad[0]])} at position {int(bad[0])} is >= k = {k}")


def _row_counts(cur: _Cursor, t: Tensor, nnz: int, width: int) -> np.ndarray:
    if width not in (1, 2, 4):
        raise cur.fail(f"count_width {width} not 1, 2 or 4")
    if nnz > t.rows * t.cols:
        raise cur.fail(f"nnz {nnz} > rows * cols = {t.rows * t.cols}")
    raw = cur.take(t.rows * width, "row_counts")
    cur.pad(4, "row_counts")
    counts = np.frombuffer(raw, {1: "<u1", 2: "<u2", 4: "<u4"}[width]).astype(np.int64)
    over = np.flatnonzero(counts > t.cols)
    if over.size:
        raise cur.fail(f"row {int(over[0])} counts {int(counts[over[0]])} nonzeros > cols = {t.cols}")
    if int(counts.sum()) != nnz:
        raise cur.fail(f"row_counts sum to {int(counts.sum())}, nnz is {nnz}")
    return counts


def _columns(cur: _Cursor, gaps: np.ndarray, counts: np.ndarray, cols: int, gap_bits: int) -> np.ndarray:
    """3.5: relative column indices with fillers -> absolute columns."""
    m = (1 << gap_bits) - 1
    out = np.empty(int(counts.sum()), np.uint32)
    syms = gaps.tolist()
    at = j = 0
    for r, need in enumerate(counts.tolist()):
        p = 0
        while need:
            if at >= len(syms):
                raise cur.fail(f"gap stream: row {r} runs out of symbols")
            g = syms[at]
            at += 1
            if g == m:  # filler
                p += m
                # ASSUMPTION (gap): "runs past the last column" read as p > cols - 1, i.e. no column left
                # for the nonzero the row still owes (p == cols would be refused by the next symbol anyway).
                if p >= cols:
                    raise cur.fail(f"gap stream: row {r}: filler runs past the last column ({p} >= {cols})")
                continue
            if p + g >= cols:
                raise cur.fail(f"gap stream: row {r}: column {p + g} past the last column {cols - 1}")
            out[j] = p + g
            j += 1
            p += g + 1
            need -= 1
    if at != len(syms):
        raise cur.fail(f"gap stream: {len(syms) - at} symbols left over after the last row")
    return out


def _int8_values(cur: _Cursor, count: int) -> tuple[Stream, np.ndarray]:
    """3.6: `count` 8-bit symbols, each an int8 as its two's complement byte, never 0x80 (-128)."""
    s = read_stream(cur, 8, "values", lambda n: None if n == count else f"expected {count}")
    bad = np.flatnonzero(s.symbols == 0x80)
    if bad.size:
        raise cur.fail(f"int8 value -128 at position {int(bad[0])} (symmetric int8 is -127..127)")
    return s, s.symbols.view(np.int8).copy()


def _int8_scales(cur: _Cursor, rows: int, what: str = "scale") -> np.ndarray:
    """3.6 scales, 3.8 alphas: f32[rows], each finite and >= 0."""
    sc = np.frombuffer(cur.take(4 * rows, f"{what}s"), "<f4").astype(np.float32)
    bad = np.flatnonzero(~(np.isfinite(sc) & (sc >= 0)))
    if bad.size:
        raise cur.fail(f"{what} of row {int(bad[0])} is {float(sc[bad[0]])} (finite and >= 0)")
    return sc


def read_tensor(payload: bytes, where: str, version: int = READER_VERSION) -> Tensor:
    cur = _Cursor(payload, where)
    encoding, rank, d0, d1, d2, d3, name_len, _reserved = cur.unpack("8I", "tensor header")
    # ASSUMPTION (gap): the reserved field is not checked (FORMAT.md: "only where noted").
    if encoding not in ENCODINGS:
        raise cur.fail(f"unknown encoding {encoding}")
    if ENCODING_VERSION.get(encoding, 1) > version:
        raise cur.fail(f"encoding {ENCODINGS[encoding]} needs format version {ENCODING_VERSION[encoding]}, "
                       f"the file says {version}")
    if not 1 <= rank <= 4:
        raise cur.fail(f"rank {rank} not in 1..4")
    dims = [d0, d1, d2, d3]
    if any(d == 0 for d in dims[:rank]) or any(dims[rank:]):
        raise cur.fail(f"dims {dims} for rank {rank}: used entries must be > 0, unused 0")
    if name_len > 255:
        raise cur.fail(f"name_len {name_len} > 255")
    raw_name = cur.take(name_len, "name")
    try:
        name = raw_name.decode("utf-8")
    except UnicodeDecodeError as e:
        raise cur.fail(f"name is not UTF-8 ({e})") from None
    cur.pad(8, "name")
    cur.where = f"{where} '{name}'"
    shape = dims[:rank]
    rows, cols = shape[0], math.prod(shape[1:])
    if cols >= 1 << 32 or rows * cols > 1 << 40:
        raise cur.fail(f"shape {shape} exceeds the limits (cols < 2^32, rows * cols <= 2^40)")
    t = Tensor(name, ENCODINGS[encoding], shape, rows, cols)
    numel = rows * cols
    if encoding == 0:  # 3.1
        cur.pad(64, "name (dense values are 64-byte aligned)")
        t.values = np.frombuffer(cur.take(4 * numel, "values"), "<f4").astype(np.float32).reshape(shape)
    elif encoding == 2:  # 3.2
        k, t.index_bits = cur.unpack("2I", "codebook header")
        t.centroids = _codebook_head(cur, k, t.index_bits)
        s = read_stream(
            cur, t.index_bits, "indices", lambda n: None if n == numel else f"rows*cols is {numel}"
        )
        _check_indices(cur, s.symbols, k)
        t.streams["indices"], t.indices = s, s.symbols
    elif encoding == 4:  # 3.6
        t.scales = _int8_scales(cur, rows)
        t.streams["values"], t.qvalues = _int8_values(cur, numel)
    elif encoding == 6:  # 3.8
        t.scales = _int8_scales(cur, rows, "alpha")
        t.bits = sb.read_bits(cur, rows, cols)
    else:  # 3.3 csr, 3.4 csr+codebook, 3.7 csr+int8
        if encoding in (1, 5):
            nnz, t.gap_bits, t.count_width, _reserved = cur.unpack("4I", "csr header")
            if encoding == 5:
                t.scales = _int8_scales(cur, rows)
        else:
            nnz, t.gap_bits, t.count_width, k, t.index_bits, _reserved = cur.unpack(
                "6I", "csr+codebook header"
            )
            t.centroids = _codebook_head(cur, k, t.index_bits)
        if not 1 <= t.gap_bits <= 8:
            raise cur.fail(f"gap_bits {t.gap_bits} not in 1..8")
        counts = _row_counts(cur, t, nnz, t.count_width)
        s = read_stream(cur, t.gap_bits, "gaps", lambda n: None if n >= nnz else f"fewer than nnz = {nnz}")
        t.streams["gaps"] = s
        t.colidx = _columns(cur, s.symbols, counts, cols, t.gap_bits)
        t.rowptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.uint32)
        if encoding == 1:
            t.values = np.frombuffer(cur.take(4 * nnz, "values"), "<f4").astype(np.float32)
        elif encoding == 5:
            t.streams["values"], t.qvalues = _int8_values(cur, nnz)
        else:
            s = read_stream(cur, t.index_bits, "indices", lambda n: None if n == nnz else f"nnz is {nnz}")
            _check_indices(cur, s.symbols, k)
            t.streams["indices"], t.indices = s, s.symbols
    if cur.pos != len(cur.buf):  # FORMAT.md 3: the payload ends right after the body
        raise cur.fail(f"{len(cur.buf) - cur.pos} bytes after the end of the body")
    return t


# ---- 2. graph -------------------------------------------------------------------------------------------


def _decode_attrs(op: str, raw: bytes) -> dict:
    """2.2: the op's attribute words, in file order, as {field: int | float | [int, ..]}."""
    out, pos = {}, 0
    for name, words, kind in ATTRS.get(op, []):
        vals = list(struct.unpack_from(f"<{words}{'f' if kind == 'f32' else 'I'}", raw, pos))
        pos += 4 * words
        out[name] = vals[0] if words == 1 else vals
    return out


def read_graph(payload: bytes, where: str, version: int) -> tuple[list[int], list[Node]]:
    """2: the graph header and the node list, with each node's op, version, arity and attr_bytes checked
    (6.4); value and tensor references, attributes and shapes are check_graph's."""
    cur = _Cursor(payload, where)
    rank, d0, d1, d2, d3, node_count, _reserved = cur.unpack("7I", "graph header")
    # ASSUMPTION (gap): the reserved field is not checked (FORMAT.md: "only where noted").
    dims = [d0, d1, d2, d3]
    if not 1 <= rank <= 4:
        raise cur.fail(f"input_rank {rank} not in 1..4")
    if any(d == 0 for d in dims[:rank]) or any(dims[rank:]):
        raise cur.fail(f"input_dims {dims} for rank {rank}: used entries must be > 0, unused 0")
    if math.prod(dims[:rank]) > MAX_INPUT_ELEMENTS:
        raise cur.fail(f"input_dims {dims[:rank]}: {math.prod(dims[:rank])} elements per sample > 2^31")
    if not 1 <= node_count <= 65536:
        raise cur.fail(f"node_count {node_count} not in 1..65536")
    nodes = []
    for i in range(node_count):
        cur.where = f"{where}: node {i}"
        op, n_in, n_t, attr_bytes = cur.unpack("HBBI", "node header")
        if op not in OP_TABLE:
            raise cur.fail(f"unknown op {op}")
        name, op_version = OP_TABLE[op]
        cur.where = f"{where}: node {i} ({name})"
        if op_version > version:  # 2.1
            raise cur.fail(f"needs format version {op_version}, the file says {version}")
        lo, hi = N_INPUTS[name]
        if not lo <= n_in <= hi:
            raise cur.fail(f"{n_in} inputs, the op takes {lo}..{hi}")
        lo, hi = N_TENSORS[name]
        if not lo <= n_t <= hi:
            raise cur.fail(f"{n_t} tensors, the op takes {lo}..{hi}")
        words = sum(w for _, w, _ in ATTRS.get(name, []))
        if attr_bytes != 4 * words:  # 2: "exactly 4 * the op's attribute words" (so also <= 1024, % 4)
            raise cur.fail(f"attr_bytes {attr_bytes}, the op has {words} attribute words")
        inputs = list(cur.unpack(f"{n_in}I", "inputs"))
        tensors = list(cur.unpack(f"{n_t}I", "tensors"))
        raw = cur.take(attr_bytes, "attrs")
        nodes.append(Node(name, inputs, tensors, _decode_attrs(name, raw), raw))
    cur.where = where
    if cur.pos != len(payload):
        raise cur.fail(f"{len(payload) - cur.pos} bytes after the last node")
    return dims[:rank], nodes


def conv_out(size: int, before: int, after: int, kernel: int, stride: int, dilation: int) -> int:
    """2.3: OH = floor((H + top + bottom - dilation * (kh - 1) - 1) / stride) + 1 (may be < 1: refused)."""
    return (size + before + after - dilation * (kernel - 1) - 1) // stride + 1


def pool_out(size: int, before: int, after: int, kernel: int, stride: int, ceil_mode: int) -> int:
    """2.4: the output size along one axis (may be < 1: refused)."""
    span = size + before + after - kernel
    if not ceil_mode:
        return span // stride + 1
    n = -(-span // stride) + 1  # ceil
    if (n - 1) * stride >= size + before:  # no window starts in the bottom padding
        n -= 1
    return n


def _in_range(where: str, what: str, vals, lo: int, hi: int) -> None:
    vals = vals if isinstance(vals, list) else [vals]
    if any(not lo <= v <= hi for v in vals):
        raise SpecError(f"{where}: {what} {vals if len(vals) > 1 else vals[0]} not in {lo}..{hi}")


def _check_conv(where: str, x: list[int], a: dict, w: Tensor, b: Tensor | None) -> list[int]:
    if len(x) != 3:
        raise SpecError(f"{where}: input of shape {x} is not an image [C, H, W]")
    _in_range(where, "stride", a["stride"], 1, MAX_WINDOW)
    _in_range(where, "padding", a["padding"], 0, MAX_WINDOW)
    _in_range(where, "dilation", a["dilation"], 1, MAX_WINDOW)
    if len(w.shape) != 4:
        raise SpecError(f"{where}: weight '{w.name}' {w.shape} is not rank 4 [O, C / groups, kh, kw]")
    o, cg, kh, kw = w.shape
    _in_range(where, f"weight '{w.name}' kernel", [kh, kw], 1, MAX_WINDOW)
    c, h, wd = x
    g = a["groups"]
    if g == 0 or c % g or o % g:
        raise SpecError(f"{where}: groups {g} does not divide C = {c} and O = {o}")
    if cg != c // g:
        raise SpecError(f"{where}: weight '{w.name}' {w.shape}: dim 1 is not C / groups = {c // g}")
    if b is not None and (b.encoding != "dense" or b.shape != [o]):
        raise SpecError(f"{where}: bias '{b.name}' ({b.encoding} {b.shape}) is not dense [{o}]")
    (sh, sw), (top, left, bottom, right), (dh, dw) = a["stride"], a["padding"], a["dilation"]
    oh, ow = conv_out(h, top, bottom, kh, sh, dh), conv_out(wd, left, right, kw, sw, dw)
    if oh < 1 or ow < 1:  # 2.3: a dilated kernel longer than the padded input is refused
        raise SpecError(f"{where}: the kernel {kh}x{kw} (dilation {dh}, {dw}) does not fit the padded input")
    if o * cg * kh * kw > 2**31:
        raise SpecError(f"{where}: weight '{w.name}' has more than 2^31 elements")
    if c * (h + top + bottom) * (wd + left + right + sw) > 2**31:
        raise SpecError(f"{where}: padded input over 2^31 floats")
    return [o, oh, ow]


def _check_pool(where: str, op: str, x: list[int], a: dict) -> list[int]:
    if len(x) != 3:
        raise SpecError(f"{where}: input of shape {x} is not an image [C, H, W]")
    _in_range(where, "kernel", a["kernel"], 1, MAX_WINDOW)
    _in_range(where, "stride", a["stride"], 1, MAX_WINDOW)
    (kh, kw), (sh, sw), (top, left, bottom, right) = a["kernel"], a["stride"], a["padding"]
    if max(top, bottom) >= kh or max(left, right) >= kw:
        raise SpecError(f"{where}: padding {a['padding']} not smaller than the kernel {a['kernel']}")
    _in_range(where, "ceil_mode", a["ceil_mode"], 0, 1)
    if op == "avg_pool2d":
        _in_range(where, "count_include_pad", a["count_include_pad"], 0, 1)
    c, h, w = x
    # ASSUMPTION (gap): 6.4's "windows that fit" read as kernel <= H + top + bottom (W likewise) whatever
    # ceil_mode, so the output size is never below 1. Taken literally, 2.4's ceil_mode formula gives one
    # output row for a kernel larger than the padded input by 1 .. stride - 1 (the ceil of a negative
    # fraction is 0; PyTorch computes that size too), and "at least 1" would accept it.
    if kh > h + top + bottom or kw > w + left + right:
        raise SpecError(f"{where}: the window {kh}x{kw} does not fit the {h}x{w} input with padding")
    oh = pool_out(h, top, bottom, kh, sh, a["ceil_mode"])
    ow = pool_out(w, left, right, kw, sw, a["ceil_mode"])
    assert oh >= 1 and ow >= 1
    return [c, oh, ow]


def _node_shape(where: str, node: Node, xs: list[list[int]], tensors: list[Tensor]) -> list[int]:
    """2.1-2.4: the attributes' constraints and the node's output shape."""
    op, a, x = node.op, node.attrs, xs[0]
    ts = [tensors[t] for t in node.tensors]
    if op in sb.OPS:
        return sb.node_shape(where, op, a, x, ts)
    if op in ("linear", "conv2d") and ts[0].encoding == "binary":  # 2.1: "any encoding but binary"
        raise SpecError(f"{where}: weight '{ts[0].name}' is binary, which only blinear and bconv2d take")
    if op in ("qlinear", "qconv2d"):
        w = ts[0]
        if w.encoding not in INT8:
            raise SpecError(f"{where}: weight '{w.name}' is {w.encoding}, {op} takes int8 or csr+int8")
        sx, so, lo, hi = a["input_scale"], a["output_scale"], a["min"], a["max"]
        if not (math.isfinite(sx) and sx > 0) or not (math.isfinite(so) and so >= 0):
            raise SpecError(f"{where}: input_scale {sx} (finite, > 0), output_scale {so} (finite, >= 0)")
        if math.isnan(lo) or math.isnan(hi) or lo > hi:
            raise SpecError(f"{where}: bounds min {lo}, max {hi} (neither NaN, min <= max)")
        op = "linear" if op == "qlinear" else "conv2d"
    if op == "linear":
        w = ts[0]
        if w.encoding in INT8 and len(w.shape) == 2 and w.shape[1] > MAX_INT8_COLS:
            raise SpecError(f"{where}: int8 weight '{w.name}' has {w.shape[1]} columns > {MAX_INT8_COLS}")
        # ASSUMPTION (gap): "weight [out, in]" means rank exactly 2 and the input rank exactly 1.
        if len(x) != 1 or len(w.shape) != 2 or w.shape[1] != x[0]:
            raise SpecError(f"{where}: weight '{w.name}' {w.shape} does not take input of shape {x}")
        if len(ts) == 2 and (ts[1].encoding != "dense" or ts[1].shape != [w.shape[0]]):
            b = ts[1]
            raise SpecError(f"{where}: bias '{b.name}' ({b.encoding} {b.shape}) is not dense [{w.shape[0]}]")
        return [w.shape[0]]
    if op in ("relu", "softmax"):
        return list(x)
    if op == "flatten":
        return [math.prod(x)]
    if op == "conv2d":
        w = ts[0]
        if w.encoding in INT8 and w.cols > MAX_INT8_COLS:
            raise SpecError(f"{where}: int8 weight '{w.name}' has {w.cols} columns > {MAX_INT8_COLS}")
        return _check_conv(where, x, a, w, ts[1] if len(ts) == 2 else None)
    if op in ("max_pool2d", "avg_pool2d"):
        return _check_pool(where, op, x, a)
    if op == "global_avg_pool":
        if len(x) != 3:
            raise SpecError(f"{where}: input of shape {x} is not an image [C, H, W]")
        return [x[0], 1, 1]
    if op == "add":
        if xs[0] != xs[1]:
            raise SpecError(f"{where}: shapes {xs[0]} and {xs[1]} differ")
        return list(x)
    if op == "concat":
        axis = a["axis"]
        if axis >= len(x):
            raise SpecError(f"{where}: axis {axis} not below the inputs' rank {len(x)}")
        for y in xs[1:]:
            if len(y) != len(x) or any(p != q for d, (p, q) in enumerate(zip(x, y)) if d != axis):
                raise SpecError(f"{where}: input shapes {xs} differ other than along axis {axis}")
        return [sum(y[axis] for y in xs) if d == axis else n for d, n in enumerate(x)]
    if op == "reshape":
        shape = a["shape"]
        rank = next((d for d, n in enumerate(shape) if n == 0), 4)
        if rank == 0 or any(shape[rank:]):
            raise SpecError(f"{where}: shape {shape} is not 1 to 4 dims > 0 followed by zeros")
        if math.prod(shape[:rank]) != math.prod(x):
            raise SpecError(f"{where}: shape {shape[:rank]} does not hold the {math.prod(x)} elements of {x}")
        a["shape"] = shape[:rank]  # kept as the list of its dims, as it means them
        return shape[:rank]
    assert op == "clamp", op
    lo, hi = a["min"], a["max"]
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise SpecError(f"{where}: clamp bounds min {lo}, max {hi} (neither NaN, min <= max)")
    return list(x)


def check_graph(input_shape: list[int], nodes: list[Node], tensors: list[Tensor]) -> list[list[int]]:
    """2: value and tensor references, each op's attributes and shapes. Returns the shape of every value."""
    shapes = [list(input_shape)]
    for i, node in enumerate(nodes):
        where = f"graph: node {i} ({node.op})"
        for v in node.inputs:
            if v > i:
                raise SpecError(f"{where}: reads value {v}, only values 0..{i} exist before it")
        for t in node.tensors:
            if t >= len(tensors):
                raise SpecError(f"{where}: tensor {t} does not exist ({len(tensors)} tensor sections)")
        shape = _node_shape(where, node, [shapes[v] for v in node.inputs], tensors)
        if math.prod(shape) > MAX_VALUE_ELEMENTS:
            raise SpecError(f"{where}: output {shape} has {math.prod(shape)} elements per sample > 2^31")
        shapes.append(shape)
    return shapes


# ---- 1. file --------------------------------------------------------------------------------------------


def read_file(buf: bytes) -> SpecModel:
    """Parse and validate a whole .pyrt file (FORMAT.md 6, in that order); raise SpecError on any fault."""
    buf = bytes(buf)
    if len(buf) < 64:
        raise SpecError(f"header: file has {len(buf)} bytes, fewer than the 64-byte header")
    if buf[:8] != MAGIC:
        raise SpecError(f"header: bad magic {buf[:8]!r}")
    version, flags, file_size, count, table_crc = struct.unpack_from("<IIQII", buf, 8)
    if not 1 <= version <= READER_VERSION:
        raise SpecError(f"header: file version {version}, this reader reads versions 1..{READER_VERSION}")
    if struct.unpack_from("<I", buf, 60)[0] != _crc(buf[:60]):
        raise SpecError("header: header_crc mismatch")
    # ASSUMPTION (gap): the 28 reserved header bytes are not checked (FORMAT.md: "only where noted").
    if flags:
        raise SpecError(f"header: unknown flags 0x{flags:x}")
    if file_size != len(buf):
        raise SpecError(f"header: file_size {file_size}, the file has {len(buf)} bytes")
    if not 1 <= count <= 65536:
        raise SpecError(f"header: section_count {count} not in 1..65536")
    table_end = 64 + 32 * count
    if table_end > len(buf):
        raise SpecError(f"section table: {count} entries need {table_end} bytes, the file has {len(buf)}")
    if table_crc != _crc(buf[64:table_end]):
        raise SpecError("section table: table_crc mismatch")
    sections, end = [], table_end
    for i in range(count):
        s = Section(*struct.unpack_from("<IIQQI", buf, 64 + 32 * i))
        # ASSUMPTION (gap): the entry's reserved u32 is not checked (FORMAT.md: "only where noted").
        where = f"section {i} (type {s.type})"
        if s.offset % 64:
            raise SpecError(f"{where}: offset {s.offset} not a multiple of 64")
        if s.offset < end:
            raise SpecError(f"{where}: offset {s.offset} before the end {end} of the previous payload/table")
        if s.offset + s.size > len(buf):
            raise SpecError(f"{where}: payload [{s.offset}, {s.offset + s.size}) past the end of the file")
        if _crc(buf[s.offset : s.offset + s.size]) != s.crc:
            raise SpecError(f"{where}: payload crc mismatch")
        sections.append(s)
        end = s.offset + s.size
    if end != len(buf):  # FORMAT.md 1: the file ends right after the last payload
        raise SpecError(f"file: {len(buf) - end} bytes after the end of the last section")
    graphs = [i for i, s in enumerate(sections) if s.type == GRAPH]
    if len(graphs) != 1:
        raise SpecError(f"section table: {len(graphs)} graph sections, exactly one is required")
    tensors, metadata = [], ""
    for i, s in enumerate(sections):
        payload = buf[s.offset : s.offset + s.size]
        if s.type == TENSOR:
            tensors.append(read_tensor(payload, f"section {i}: tensor {len(tensors)}", version))
        elif s.type == METADATA:
            # ASSUMPTION (gap): metadata is decoded leniently (readers may ignore it); a second one wins.
            metadata = payload.decode("utf-8", errors="replace")
        elif s.type != GRAPH and s.flags & REQUIRED:
            raise SpecError(f"section {i}: unknown type {s.type} is marked required")
    g = sections[graphs[0]]
    input_shape, nodes = read_graph(buf[g.offset : g.offset + g.size], f"section {graphs[0]}: graph", version)
    shapes = check_graph(input_shape, nodes, tensors)
    return SpecModel(version, flags, file_size, sections, input_shape, nodes, tensors, metadata, shapes)


# ---- meaning --------------------------------------------------------------------------------------------


def dense_matrix(t: Tensor) -> np.ndarray:
    """The weight as a float32 (rows, cols) matrix, whatever its encoding."""
    if t.encoding == "dense":
        return t.values.reshape(t.rows, t.cols)
    if t.encoding == "codebook":
        return t.centroids[t.indices.astype(np.int64)].reshape(t.rows, t.cols)
    if t.encoding in INT8:
        return int8_matrix(t).astype(np.float32) * t.scales[:, None]
    if t.encoding == "binary":
        return sb.dense_matrix(t)
    out = np.zeros((t.rows, t.cols), np.float32)
    row_of = np.repeat(np.arange(t.rows), np.diff(t.rowptr.astype(np.int64)))
    vals = t.values if t.encoding == "csr" else t.centroids[t.indices.astype(np.int64)]
    out[row_of, t.colidx.astype(np.int64)] = vals
    return out


def int8_matrix(t: Tensor) -> np.ndarray:
    """The int8 weight's integers q as an int64 (rows, cols) matrix (3.6, 3.7)."""
    if t.encoding == "int8":
        return t.qvalues.astype(np.int64).reshape(t.rows, t.cols)
    out = np.zeros((t.rows, t.cols), np.int64)
    row_of = np.repeat(np.arange(t.rows), np.diff(t.rowptr.astype(np.int64)))
    out[row_of, t.colidx.astype(np.int64)] = t.qvalues
    return out


def fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """2.5: a * b + c of float32 operands with one rounding to float32. The product of two float32 is exact
    in float64; the sum is rounded to odd in float64 (53 >= 24 + 2 bits) and then to nearest float32, which
    is the correctly rounded result (Boldo and Melquiond, 2008)."""
    a, b, c = (np.asarray(v, np.float32).astype(np.float64) for v in np.broadcast_arrays(a, b, c))
    p = a * b
    hi = p + c
    bb = hi - p
    lo = (p - (hi - bb)) + (c - bb)  # TwoSum: hi + lo == p + c exactly
    with np.errstate(invalid="ignore"):
        inexact_even = np.isfinite(hi) & (lo != 0) & ((hi.view(np.int64) & 1) == 0)
    hi = np.where(inexact_even, np.nextafter(hi, np.where(lo > 0, np.inf, -np.inf)), hi)
    return hi.astype(np.float32)


def quantize(v: np.ndarray, inv: np.float32) -> np.ndarray:
    """2.5: clamp(round_half_even(v * inv), -127, 127) with an f32 product; NaN gives 0."""
    t = np.asarray(v, np.float32) * np.float32(inv)
    t = np.where(np.isnan(t), np.float32(0), t)
    return np.clip(np.rint(t), -127, 127).astype(np.int64)


def int8_layer(node: Node, ts: list[Tensor], v: np.ndarray) -> np.ndarray:
    """2.5, in the float32 operations it defines: a linear with an int8 weight (dynamic) or a qlinear."""
    x = np.asarray(v, np.float32).reshape(v.shape[0], -1)
    w = ts[0]
    if node.op == "qlinear":
        sx = np.float32(node.attrs["input_scale"])
        xs = np.full(x.shape[0], sx, np.float32)
        q = quantize(x, np.float32(1) / sx)
    else:
        q, xs = _dynamic(x)
    acc = q @ int8_matrix(w).T  # exact integers
    assert np.abs(acc).max(initial=0) < 2**31
    s = (xs[:, None] * w.scales[None, :]).astype(np.float32)
    bias = ts[1].values.astype(np.float32) if len(ts) == 2 else np.zeros(w.rows, np.float32)
    y = fma32(acc.astype(np.float32), s, bias[None, :])
    if node.op == "qlinear":
        y = _static_output(y, node.attrs)
    return y.astype(np.float64)


def _static_output(y: np.ndarray, a: dict) -> np.ndarray:
    """2.5 qlinear, qconv2d: the clamp, then the output quantized when output_scale > 0."""
    lo, hi = np.float32(a["min"]), np.float32(a["max"])
    y = np.where(lo > y, lo, y)
    y = np.where(hi < y, hi, y)
    so = np.float32(a["output_scale"])
    if so > 0:
        y = (so * quantize(y, np.float32(1) / so).astype(np.float32)).astype(np.float32)
    return y


def int8_conv2d(node: Node, ts: list[Tensor], v: np.ndarray) -> np.ndarray:
    """2.5: a conv2d with an int8 weight (one scale per sample over its whole input) or a qconv2d (the
    static input_scale): int8 windows (the padding 0), exact integer sums by the im2col of conv2d(), then
    the epilogue in float32."""
    w, a = ts[0], node.attrs
    x = np.asarray(v, np.float32)
    if node.op == "qconv2d":
        sx = np.float32(a["input_scale"])
        qx, xs = quantize(x, np.float32(1) / sx), np.full(x.shape[0], sx, np.float32)
    else:
        qx, xs = _dynamic(x.reshape(x.shape[0], -1))
        qx = qx.reshape(x.shape)
    acc = conv2d(qx.astype(np.float64), int8_matrix(w).astype(np.float64).reshape(w.shape), None, a)
    acc = np.rint(acc).astype(np.int64)  # float64 sums of integers below 2^53: exact
    s = (xs[:, None] * w.scales[None, :]).astype(np.float32)[:, :, None, None]
    bias = ts[1].values.astype(np.float32) if len(ts) == 2 else np.zeros(w.rows, np.float32)
    y = fma32(acc.astype(np.float32), s, bias[None, :, None, None])
    if node.op == "qconv2d":
        y = _static_output(y, a)
    return y.astype(np.float64)


def _dynamic(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2.5 dynamic: per row (sample) m = max |x|; xs = m / 127 and q = quantize(x, 127 / m); 0 and 0 for a
    row of zeros; NaN and 0 for a row holding a NaN or an infinity."""
    m = np.abs(x).max(axis=1)
    finite = np.isfinite(x).all(axis=1)
    ok = finite & (m > 0)
    xs = np.where(finite, np.where(ok, m / np.float32(127), np.float32(0)), np.float32(np.nan)).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(ok, np.float32(127) / np.where(ok, m, np.float32(1)), np.float32(0)).astype(np.float32)
        return np.where(ok[:, None], _quantize_rows(x, inv), 0), xs


def _quantize_rows(x: np.ndarray, inv: np.ndarray) -> np.ndarray:
    return np.stack([quantize(row, i) for row, i in zip(x, inv)]) if len(x) else np.zeros(x.shape, np.int64)


def conv2d(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, a: dict) -> np.ndarray:
    """2.3 by im2col: x [N, C, H, W], w [O, C / groups, kh, kw] (the 2-D weight's view), both float64 (or
    both int64: bconv2d's exact sums, spec_binary.py)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (top, left, bottom, right), (dh, dw), g = a["stride"], a["padding"], a["dilation"], a["groups"]
    oh, ow = conv_out(h, top, bottom, kh, sh, dh), conv_out(wd, left, right, kw, sw, dw)
    xp = np.zeros((n, c, h + top + bottom, wd + left + right), x.dtype)  # zero padding
    xp[:, :, top : top + h, left : left + wd] = x
    # input row oy * stride_h - top + ky * dilation_h is padded row oy * stride_h + ky * dilation_h
    rows = np.arange(kh)[:, None] * dh + np.arange(oh)[None, :] * sh  # [kh, OH]
    cols = np.arange(kw)[:, None] * dw + np.arange(ow)[None, :] * sw  # [kw, OW]
    patches = xp[:, :, rows[:, None, :, None], cols[None, :, None, :]]  # [N, C, kh, kw, OH, OW]
    patches = patches.reshape(n, g, cg * kh * kw, oh * ow)  # patch row (c * kh + ky) * kw + kx, as 2.3
    wm = w.reshape(g, o // g, cg * kh * kw)  # group gi owns output channels [gi * O / g, (gi + 1) * O / g)
    y = np.einsum("gok,ngkp->ngop", wm, patches).reshape(n, o, oh, ow)
    return y if bias is None else y + bias[None, :, None, None]


def pool2d(x: np.ndarray, op: str, a: dict) -> np.ndarray:
    """2.4, float64, one window at a time: x [N, C, H, W]."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (top, left, bottom, right) = a["kernel"], a["stride"], a["padding"]
    oh = pool_out(h, top, bottom, kh, sh, a["ceil_mode"])
    ow = pool_out(w, left, right, kw, sw, a["ceil_mode"])
    y = np.empty((n, c, oh, ow))
    for oy in range(oh):
        r0 = oy * sh - top
        for ox in range(ow):
            c0 = ox * sw - left
            win = x[:, :, max(r0, 0) : min(r0 + kh, h), max(c0, 0) : min(c0 + kw, w)]
            if op == "max_pool2d":
                y[:, :, oy, ox] = win.max(axis=(2, 3))  # padding never wins; NaN propagates
                continue
            if a["count_include_pad"]:  # the window clipped to [-top, H + bottom) x [-left, W + right)
                rows = min(r0 + kh, h + bottom) - max(r0, -top)
                count = rows * (min(c0 + kw, w + right) - max(c0, -left))
            else:
                count = win.shape[2] * win.shape[3]
            y[:, :, oy, ox] = win.sum(axis=(2, 3)) / count
    return y


def run(model: SpecModel, x: np.ndarray) -> np.ndarray:
    """Forward pass of the graph in float64 (batch first); returns float32 like the runtime."""
    x = np.asarray(x)
    if x.shape[1:] != tuple(model.input_shape):
        raise ValueError(f"input shape {x.shape}, expected (batch, {', '.join(map(str, model.input_shape))})")
    batch = x.shape[0]
    values = [x.astype(np.float64)]
    for node in model.nodes:
        ins = [values[i] for i in node.inputs]
        v, a, op = ins[0], node.attrs, node.op
        ts = [model.tensors[t] for t in node.tensors]
        bias = ts[1].values.astype(np.float64) if len(ts) == 2 else None
        if op == "qlinear" or (op == "linear" and ts[0].encoding in INT8):
            y = int8_layer(node, ts, v)
        elif op in sb.OPS:
            y = sb.run_node(node, ts, v)
        elif op == "linear":
            y = v @ dense_matrix(ts[0]).astype(np.float64).T
            if bias is not None:
                y = y + bias
        elif op == "relu":
            y = np.maximum(v, 0.0)
        elif op == "softmax":
            flat = v.reshape(batch, -1)
            e = np.exp(flat - flat.max(axis=1, keepdims=True))
            y = (e / e.sum(axis=1, keepdims=True)).reshape(v.shape)
        elif op == "flatten":
            y = v.reshape(batch, -1)
        elif op == "qconv2d" or (op == "conv2d" and ts[0].encoding in INT8):
            y = int8_conv2d(node, ts, v)
        elif op == "conv2d":
            y = conv2d(v, dense_matrix(ts[0]).astype(np.float64).reshape(ts[0].shape), bias, a)
        elif op in ("max_pool2d", "avg_pool2d"):
            y = pool2d(v, op, a)
        elif op == "global_avg_pool":
            y = v.mean(axis=(2, 3), keepdims=True)
        elif op == "add":
            y = ins[0] + ins[1]
        elif op == "concat":
            y = np.concatenate(ins, axis=a["axis"] + 1)
        elif op == "reshape":
            y = v.reshape(batch, *a["shape"])
        else:  # clamp: min(max(x, min), max)
            # ASSUMPTION (gap): a NaN input stays NaN (the spec's min/max do not say what a NaN gives).
            y = np.minimum(np.maximum(v, a["min"]), a["max"])
        values.append(y)
    return values[-1].astype(np.float32)
