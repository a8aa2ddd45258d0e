"""An independent pure-Python reading of the .pyrt layout (csrc/format/format.h, tensor_codec.h,
symbol_stream.h, huffman.h; versions 1 and 2 of docs/FORMAT.md), for tests: it builds files by hand, patches fields and fixes their CRCs,
and decodes tensors and symbol streams without the C++ core, so the writer is checked against the
spec rather than against its own reader.
"""

from __future__ import annotations

import heapq
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

MAGIC = b"PYRT\r\n\x1a\n"
VERSION = 1  # what build_file writes unless told: the version of a graph of version-1 ops
NEWEST_VERSION = 5
HEADER_SIZE = 64
ENTRY_SIZE = 32
ALIGN = 64
MAX_CODE_LENGTH = 24

GRAPH, TENSOR, METADATA = 1, 2, 3
REQUIRED = 1
OPS = {"linear": 1, "relu": 2, "softmax": 3, "flatten": 4}  # version 1
OPS_V2 = {
    "conv2d": 5,
    "max_pool2d": 6,
    "avg_pool2d": 7,
    "global_avg_pool": 8,
    "add": 9,
    "concat": 10,
    "reshape": 11,
    "clamp": 12,
}
OPS.update(OPS_V2)
OPS.update({"qlinear": 13, "qconv2d": 14, "sign": 15, "blinear": 16, "bconv2d": 17})  # versions 3 and 4
OPS_V5 = {"layer_norm": 18, "gelu": 19, "silu": 20, "sigmoid": 21, "tanh": 22, "leaky_relu": 23, "softmax_axis": 24,
          "sub": 25, "mul": 26, "div": 27, "matmul": 28, "transpose": 29, "slice": 30, "embedding": 31,
          "upsample_nearest": 32, "adaptive_avg_pool2d": 33}
OPS.update(OPS_V5)
INPUT_TYPES = {"f32": 0, "i32": 1}  # a version-5 graph input's type (FORMAT.md 2)
OP_NAMES = {v: k for k, v in OPS.items()}
# attribute words of each op, in file order (FORMAT.md 2.2): (field, words, struct code)
_POOL_ATTRS = [("kernel", 2, "I"), ("stride", 2, "I"), ("padding", 4, "I"), ("ceil_mode", 1, "I")]
ATTR_LAYOUT = {
    "conv2d": [("stride", 2, "I"), ("padding", 4, "I"), ("dilation", 2, "I"), ("groups", 1, "I")],
    "max_pool2d": _POOL_ATTRS,
    "avg_pool2d": _POOL_ATTRS + [("count_include_pad", 1, "I")],
    "concat": [("axis", 1, "I")],
    "reshape": [("shape", 4, "I")],
    "clamp": [("min", 1, "f"), ("max", 1, "f")],
    "layer_norm": [("eps", 1, "f")],
    "gelu": [("approximate", 1, "I")],
    "leaky_relu": [("slope", 1, "f")],
    "softmax_axis": [("axis", 1, "I")],
    "transpose": [("perm", 4, "I")],
    "slice": [("axis", 1, "I"), ("start", 1, "I"), ("end", 1, "I"), ("step", 1, "I")],
    "upsample_nearest": [("scale", 2, "I")],
    "adaptive_avg_pool2d": [("output_size", 2, "I")],
}
ENCODINGS = {"dense": 0, "csr": 1, "codebook": 2, "csr+codebook": 3, "int8": 4, "csr+int8": 5}
ENCODING_NAMES = {v: k for k, v in ENCODINGS.items()}

# header field offsets
OFF_VERSION, OFF_FLAGS, OFF_FILE_SIZE, OFF_COUNT, OFF_TABLE_CRC, OFF_HEADER_CRC = 8, 12, 16, 24, 28, 60


def crc32(b: bytes) -> int:
    return zlib.crc32(b) & 0xFFFFFFFF


def align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


@dataclass
class Entry:
    type: int
    flags: int
    offset: int
    size: int
    crc: int

    def at(self, index: int) -> int:
        """File offset of this entry in the section table."""
        return HEADER_SIZE + index * ENTRY_SIZE


# ---- whole files --------------------------------------------------------------------------------------


def build_file(sections: list[tuple[int, int, bytes]], *, version: int = VERSION, flags: int = 0) -> bytes:
    """A file from (type, flags, payload) sections, laid out as format.h describes."""
    n = len(sections)
    offset = align(HEADER_SIZE + ENTRY_SIZE * n)
    table = b""
    body = bytearray()
    body_start = offset
    for typ, sflags, payload in sections:
        table += struct.pack("<IIQQII", typ, sflags, offset, len(payload), crc32(payload), 0)
        body += bytes(offset - body_start - len(body)) + payload
        offset = align(offset + len(payload))
    head = bytearray(MAGIC + struct.pack("<IIQII", version, flags, 0, n, crc32(table)) + bytes(32))
    out = bytearray(head + table + bytes(body_start - HEADER_SIZE - len(table)) + body)
    struct.pack_into("<Q", out, OFF_FILE_SIZE, len(out))
    struct.pack_into("<I", out, OFF_HEADER_CRC, crc32(bytes(out[:60])))
    return bytes(out)


def entries(buf: bytes) -> list[Entry]:
    (count,) = struct.unpack_from("<I", buf, OFF_COUNT)
    out = []
    for i in range(count):
        typ, flags, off, size, crc, _ = struct.unpack_from("<IIQQII", buf, HEADER_SIZE + i * ENTRY_SIZE)
        out.append(Entry(typ, flags, off, size, crc))
    return out


def payload(buf: bytes, e: Entry) -> bytes:
    return bytes(buf[e.offset : e.offset + e.size])


def refresh_crcs(
    buf: bytearray, *, sections: bool = True, table: bool = True, header: bool = True
) -> bytearray:
    """Recomputes the payload CRCs, the table CRC and the header CRC (in that order) after a patch."""
    (count,) = struct.unpack_from("<I", buf, OFF_COUNT)
    count = min(count, (len(buf) - HEADER_SIZE) // ENTRY_SIZE)
    if sections:
        for i in range(count):
            at = HEADER_SIZE + i * ENTRY_SIZE
            _, _, off, size, _, _ = struct.unpack_from("<IIQQII", buf, at)
            if off + size <= len(buf):
                struct.pack_into("<I", buf, at + 24, crc32(bytes(buf[off : off + size])))
    if table:
        struct.pack_into(
            "<I", buf, OFF_TABLE_CRC, crc32(bytes(buf[HEADER_SIZE : HEADER_SIZE + count * ENTRY_SIZE]))
        )
    if header:
        struct.pack_into("<I", buf, OFF_HEADER_CRC, crc32(bytes(buf[:60])))
    return buf


def patch(buf: bytes, offset: int, fmt: str, *values) -> bytes:
    """A copy of buf with struct fields written at offset and every CRC fixed up."""
    out = bytearray(buf)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(refresh_crcs(out))


def covered_bytes(buf: bytes) -> np.ndarray:
    """Mask of the bytes a checksum (or the magic) protects: header, table and every payload."""
    mask = np.zeros(len(buf), bool)
    mask[: HEADER_SIZE + ENTRY_SIZE * len(entries(buf))] = True
    for e in entries(buf):
        mask[e.offset : e.offset + e.size] = True
    return mask


# ---- graph and tensor payloads ------------------------------------------------------------------------


def encode_attrs(op: str, attrs: dict) -> bytes:
    """A node's attribute words (2.2) from the dict form write_model takes (reshape's shape 1..4 dims)."""
    out = b""
    for name, words, code in ATTR_LAYOUT.get(op, []):
        v = attrs[name]
        v = list(v) + [0] * (words - len(v)) if isinstance(v, (list, tuple)) else [v]
        out += struct.pack(f"<{words}{code}", *v)
    return out


def decode_attrs(op: str, raw: bytes) -> dict:
    out, pos = {}, 0
    for name, words, code in ATTR_LAYOUT.get(op, []):
        v = list(struct.unpack_from(f"<{words}{code}", raw, pos))
        pos += 4 * words
        out[name] = v[0] if words == 1 else [d for d in v if d] if name == "shape" else v
    return out


def graph_payload(input_shape: list[int], nodes: list[dict]) -> bytes:
    """A graph of versions 1 to 4. Nodes as write_model takes them; "attrs" is a dict (2.2) or raw bytes, "op"
    a name or a code."""
    dims = list(input_shape) + [0] * (4 - len(input_shape))
    return struct.pack("<I4III", len(input_shape), *dims, len(nodes), 0) + _nodes_payload(nodes)


def graph_payload_v5(inputs: list[tuple[str, list[int]]], outputs: list[int], nodes: list[dict]) -> bytes:
    """A version-5 graph: inputs as (type name, shape), outputs as value ids, nodes as graph_payload's."""
    out = struct.pack("<4I", len(inputs), len(outputs), len(nodes), 0)
    for t, shape in inputs:
        out += struct.pack("<II4I", INPUT_TYPES[t] if isinstance(t, str) else t, len(shape),
                           *(list(shape) + [0] * (4 - len(shape))))
    out += struct.pack(f"<{len(outputs)}I", *outputs)
    return out + _nodes_payload(nodes)


def _nodes_payload(nodes: list[dict]) -> bytes:
    out = b""
    for n in nodes:
        tensors = n.get("tensors", [])
        op = OPS[n["op"]] if isinstance(n["op"], str) else n["op"]
        attrs = n.get("attrs", b"")
        if isinstance(attrs, dict):
            attrs = encode_attrs(OP_NAMES[op], attrs)
        out += struct.pack("<HBBI", op, len(n["inputs"]), len(tensors), len(attrs))
        out += struct.pack(f"<{len(n['inputs'])}I", *n["inputs"])
        out += struct.pack(f"<{len(tensors)}I", *tensors)
        out += attrs
    return out


def _tensor_header(encoding: int, name: str, shape: list[int]) -> bytearray:
    raw = name.encode()
    dims = list(shape) + [0] * (4 - len(shape))
    out = bytearray(struct.pack("<II4III", encoding, len(shape), *dims, len(raw), 0) + raw)
    out += bytes(-len(out) % 8)
    return out


def dense_payload(name: str, shape: list[int], values: np.ndarray) -> bytes:
    out = _tensor_header(0, name, shape)
    out += bytes(-len(out) % 64)
    return bytes(out + np.asarray(values, "<f4").tobytes())


def packed_stream(symbols: np.ndarray, bits: int) -> bytes:
    """A packed (coding 0) symbol stream: symbol i in bits [i*b, i*b+b), LSB first."""
    symbols = np.asarray(symbols, np.uint8)
    bitarr = ((symbols[:, None] >> np.arange(bits)) & 1).astype(np.uint8).ravel()
    data = np.packbits(bitarr, bitorder="little").tobytes()
    out = struct.pack("<BBHIII", 0, bits, 0, len(symbols), len(data), 0) + data
    return out + bytes(-len(out) % 4)


def codebook_payload(
    name: str, shape: list[int], centroids: np.ndarray, indices: np.ndarray, bits: int
) -> bytes:
    out = _tensor_header(2, name, shape)
    out += struct.pack("<II", len(centroids), bits) + np.asarray(centroids, "<f4").tobytes()
    return bytes(out + packed_stream(indices, bits))


# ---- decoding -----------------------------------------------------------------------------------------


def canonical_codes(lengths: list[int]) -> dict[tuple[int, int], int]:
    """(length, code) -> symbol, per RFC 1951 3.2.2."""
    count = [0] * (MAX_CODE_LENGTH + 2)
    for ln in lengths:
        if ln:
            count[ln] += 1
    nxt = [0] * (MAX_CODE_LENGTH + 2)
    code = 0
    for ln in range(1, MAX_CODE_LENGTH + 1):
        code = (code + count[ln - 1]) << 1
        nxt[ln] = code
    table = {}
    for sym, ln in enumerate(lengths):
        if ln:
            table[(ln, nxt[ln])] = sym
            nxt[ln] += 1
    return table


@dataclass
class Stream:
    coding: int
    bits: int
    count: int
    payload_bytes: int
    lengths: list[int] | None
    symbols: np.ndarray
    start: int
    end: int  # offset just past the stream (padded to 4)


def read_stream(buf: bytes, pos: int) -> Stream:
    coding, bits, _, count, nbytes, _ = struct.unpack_from("<BBHIII", buf, pos)
    p = pos + 16
    lengths = None
    if coding == 1:
        lengths = list(buf[p : p + (1 << bits)])
        p = align(p + (1 << bits), 4)
    data = np.frombuffer(buf, np.uint8, nbytes, p)
    bitarr = np.unpackbits(data, bitorder="little")
    if coding == 0:
        sym = bitarr[: count * bits].reshape(count, bits) @ (1 << np.arange(bits))
        symbols = sym.astype(np.uint8)
    elif coding == 1:
        table = canonical_codes(lengths)
        out = np.empty(count, np.uint8)
        i = 0
        for k in range(count):
            code, ln = 0, 0
            while (ln, code) not in table or ln == 0:
                code = (code << 1) | int(bitarr[i])
                i += 1
                ln += 1
                assert ln <= MAX_CODE_LENGTH, "invalid code"
            out[k] = table[(ln, code)]
        assert (i + 7) // 8 == nbytes, "trailing Huffman bytes"
        symbols = out
    else:
        raise ValueError(f"coding {coding}")
    return Stream(coding, bits, count, nbytes, lengths, symbols, pos, align(p + nbytes, 4))


def decode_tensor(pl: bytes) -> dict:
    """A tensor payload decoded into the dict form of tensor_dict.h, plus 'streams' and 'values_at'."""
    enc, rank, *dims = struct.unpack_from("<II4I", pl, 0)
    name_len, _ = struct.unpack_from("<II", pl, 24)
    p = 32
    name = pl[p : p + name_len].decode()
    p = align(p + name_len, 8)
    shape = dims[:rank]
    rows, cols = shape[0], math.prod(shape[1:])
    t = {"name": name, "encoding": ENCODING_NAMES[enc], "shape": shape, "streams": []}

    def floats(n: int) -> np.ndarray:
        nonlocal p
        v = np.frombuffer(pl, "<f4", n, p).astype(np.float32)
        p += 4 * n
        return v

    def stream() -> np.ndarray:
        nonlocal p
        s = read_stream(pl, p)
        t["streams"].append(s)
        p = s.end
        return s.symbols

    if enc == 0:
        p = align(p, 64)
        t["values_at"] = p
        t["values"] = floats(rows * cols)
    elif enc == 4:  # 3.6
        t["scales"] = floats(rows)
        t["qvalues"] = stream().view(np.int8)
    elif enc == 2:
        k, bits = struct.unpack_from("<II", pl, p)
        p += 8
        t["index_bits"] = bits
        t["centroids"] = floats(k)
        t["indices"] = stream()
    else:
        cb = enc == 3
        if cb:
            nnz, gap_bits, width, k, bits, _ = struct.unpack_from("<6I", pl, p)
            p += 24
            t["index_bits"] = bits
            t["centroids"] = floats(k)
        else:
            nnz, gap_bits, width, _ = struct.unpack_from("<4I", pl, p)
            p += 16
            if enc == 5:  # 3.7
                t["scales"] = floats(rows)
        t["gap_bits"] = gap_bits
        t["count_width"] = width
        counts = np.frombuffer(pl, {1: "<u1", 2: "<u2", 4: "<u4"}[width], rows, p).astype(np.int64)
        p = align(p + rows * width, 4)
        gaps = stream()
        m = (1 << gap_bits) - 1
        colidx, gi = [], 0
        for r in range(rows):
            pos = 0
            for _ in range(counts[r]):
                while gaps[gi] == m:
                    pos += m
                    gi += 1
                pos += int(gaps[gi])
                gi += 1
                colidx.append(pos)
                pos += 1
        assert gi == len(gaps) and len(colidx) == nnz
        t["rowptr"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.uint32)
        t["colidx"] = np.asarray(colidx, np.uint32)
        if cb:
            t["indices"] = stream()
        elif enc == 5:
            t["qvalues"] = stream().view(np.int8)
        else:
            t["values"] = floats(nnz)
    t["end"] = p
    return t


def parse_graph(pl: bytes, version: int = 1) -> dict:
    """The graph section (2) of a file of `version`: inputs [(type, shape)], outputs (value ids), nodes."""
    if version >= 5:
        n_in, n_out, count, _ = struct.unpack_from("<4I", pl, 0)
        p = 16
        graph_inputs = []
        for _ in range(n_in):
            t, rank, *dims = struct.unpack_from("<II4I", pl, p)
            graph_inputs.append(({v: k for k, v in INPUT_TYPES.items()}[t], dims[:rank]))
            p += 24
        outputs = list(struct.unpack_from(f"<{n_out}I", pl, p))
        p += 4 * n_out
    else:
        rank, *dims = struct.unpack_from("<I4I", pl, 0)
        (count,) = struct.unpack_from("<I", pl, 20)
        p = 28
        graph_inputs, outputs = [("f32", dims[:rank])], [count]
    nodes = []
    for _ in range(count):
        op, nin, nt, attr = struct.unpack_from("<HBBI", pl, p)
        p += 8
        inputs = list(struct.unpack_from(f"<{nin}I", pl, p))
        p += 4 * nin
        tensors = list(struct.unpack_from(f"<{nt}I", pl, p))
        p += 4 * nt
        node = {"op": OP_NAMES[op], "inputs": inputs, "tensors": tensors}
        if attr:  # only ops with attributes get the key, so version-1 nodes read as they always did
            node["attrs"] = decode_attrs(node["op"], pl[p : p + attr])
        p += attr
        nodes.append(node)
    return {"input_shape": graph_inputs[0][1], "inputs": graph_inputs, "outputs": outputs, "nodes": nodes, "end": p}


# ---- an independent Huffman ---------------------------------------------------------------------------


def huffman_lengths(freqs: list[int]) -> list[int]:
    """Unlimited optimal Huffman code lengths (heapq); a single used symbol gets length 1."""
    used = [(f, s) for s, f in enumerate(freqs) if f > 0]
    lengths = [0] * len(freqs)
    if len(used) == 1:
        lengths[used[0][1]] = 1
    if len(used) <= 1:
        return lengths
    heap = [(f, i, [s]) for i, (f, s) in enumerate(used)]
    heapq.heapify(heap)
    tie = len(heap)
    while len(heap) > 1:
        fa, _, a = heapq.heappop(heap)
        fb, _, b = heapq.heappop(heap)
        for s in a + b:
            lengths[s] += 1
        heapq.heappush(heap, (fa + fb, tie, a + b))
        tie += 1
    return lengths


def cost_bits(freqs: list[int], lengths: list[int]) -> int:
    return sum(f * ln for f, ln in zip(freqs, lengths))


def kraft_sum(lengths: list[int]) -> float:
    from fractions import Fraction

    return sum((Fraction(1, 2**ln) for ln in lengths if ln), Fraction(0))
