"""The loader under attack: truncations, byte flips, absurd counts behind valid checksums, hand-built
files with unknown sections, inconsistent graphs, bad run() inputs. Every failure must be a
pyruntime.FormatError / UnsupportedError / ValueError / OSError with a message, never a crash, a
MemoryError or a hang.
"""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pyrt_spec as spec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyruntime
from pyruntime import _core

LOAD_ERRORS = (pyruntime.FormatError,)  # one error type for everything wrong with a file


@pytest.fixture(scope="module")
def small_model(helpers) -> dict:
    """~1.7 KB: csr, codebook (Huffman-coded indices), csr+codebook and dense layers, biases, metadata."""
    rng = np.random.default_rng(5)
    model = helpers.mlp(rng, [6, 12, 10, 4, 3], ["csr", "codebook", "csr+codebook", "dense"], metadata="{}")
    cb = helpers.codebook(rng, (10, 12), k=4, name="fc1.weight")
    cb["indices"] = np.where(rng.random(120) < 0.9, 0, rng.integers(0, 4, 120)).astype(np.uint8)
    model["tensors"][2] = cb
    return model


@pytest.fixture(scope="module")
def small(small_model) -> bytes:
    data = _core.write_model(small_model)
    assert 500 <= len(data) <= 2000
    codings = [
        s.coding
        for e in spec.entries(data)
        if e.type == spec.TENSOR
        for s in spec.decode_tensor(spec.payload(data, e))["streams"]
    ]
    assert 1 in codings and 0 in codings  # both stream codings are under attack
    return data


def tensor_entry(data: bytes, name: str) -> spec.Entry:
    for e in spec.entries(data):
        if e.type == spec.TENSOR and spec.decode_tensor(spec.payload(data, e))["name"] == name:
            return e
    raise KeyError(name)


def body_at(data: bytes, e: spec.Entry) -> int:
    """File offset of the encoding body of a tensor section (after the header and padded name)."""
    (name_len,) = struct.unpack_from("<I", data, e.offset + 24)
    return e.offset + 32 + spec.align(name_len, 8)


def load_error(data: bytes, kind=pyruntime.FormatError) -> str:
    """Both entry points refuse `data` with `kind`; returns the message."""
    with pytest.raises(kind) as e1:
        _core.read_model(data)
    with pytest.raises(kind) as e2:
        pyruntime.load(data)
    assert str(e1.value) == str(e2.value)
    assert str(e1.value)
    return str(e1.value)


def loads_or_refuses(data: bytes) -> None:
    """Any outcome but a crash: a refusal with a message, or a model that runs and describes itself."""
    try:
        m = pyruntime.load(data)
    except LOAD_ERRORS as e:
        assert str(e)
        with pytest.raises(type(e)):
            _core.read_model(data)
        return
    x = np.ones((2, *m.inputs[0]["shape"][1:]), np.float32)
    assert m.run(x).shape[0] == 2
    _core.read_model(data)
    m.layers(), m.summary(), repr(m), m.metadata  # names and metadata always reach Python as str


# ---- truncation and corruption ------------------------------------------------------------------------


def test_every_truncation(small):
    for cut in range(len(small)):
        msg = load_error(small[:cut])
        assert ("shorter than the 64-byte header" in msg) if cut < 64 else ("(truncated)" in msg), (cut, msg)


def test_every_truncation_with_file_size_fixed(small):
    """A truncated file whose header claims the truncated size: the table and sections must catch it."""
    for cut in range(64, len(small)):
        data = bytearray(small[:cut])
        struct.pack_into("<Q", data, spec.OFF_FILE_SIZE, cut)
        spec.refresh_crcs(data, sections=False, table=False)
        msg = load_error(bytes(data))
        assert "section" in msg, (cut, msg)


def test_trailing_data(small):
    assert "trailing data" in load_error(small + b"\0")


@pytest.mark.parametrize("xor", [1 << b for b in range(8)] + [0xFF])
def test_every_bit_flip(small_model, small, xor):
    """Every single-bit flip (and every whole-byte flip) of a checksum-protected byte is refused. (The version field is read before the header
    CRC, as docs/FORMAT.md orders the checks, so a flip there reads as a newer version.) Padding between
    sections is not checksummed: a flip there must leave the model unchanged."""
    covered = spec.covered_bytes(small)
    original = _core.read_model(small)
    for off in range(len(small)):
        data = bytearray(small)
        data[off] ^= xor
        data = bytes(data)
        if spec.OFF_VERSION <= off < spec.OFF_VERSION + 4:
            # a newer version, version 0, or a version this reader has (then the header CRC fails)
            with pytest.raises(LOAD_ERRORS, match="version|header: checksum"):
                pyruntime.load(data)
        elif covered[off]:
            msg = load_error(data)
            assert any(w in msg for w in ("checksum", "magic", "file should be")), (off, msg)
        else:
            try:
                back = _core.read_model(data)
            except pyruntime.FormatError:
                continue
            assert back["tensors"][0]["values"].tobytes() == original["tensors"][0]["values"].tobytes()
            assert back["sections"] == original["sections"]


def test_bit_flips_behind_valid_checksums(small):
    """Flip every bit, then fix every CRC, so the decoder's own checks are what stands in the way."""
    for off in range(spec.HEADER_SIZE, len(small)):
        for xor in (0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFF):
            data = bytearray(small)
            data[off] ^= xor
            loads_or_refuses(bytes(spec.refresh_crcs(data)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
    fix_crcs=st.booleans(),
)
def test_random_edits(small, edits, fix_crcs):
    data = bytearray(small)
    for where, value in edits:
        data[where % len(data)] = value
    if fix_crcs:
        spec.refresh_crcs(data)
    loads_or_refuses(bytes(data))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(junk):
    for data in (junk, spec.MAGIC + junk):
        with pytest.raises(pyruntime.FormatError):
            _core.read_model(data)


def test_empty_and_tiny(small):
    for data in (b"", b"P", small[:8], small[:63]):
        assert "shorter than the 64-byte header" in load_error(data)


@pytest.mark.parametrize("i", range(8))
def test_wrong_magic(small, i):
    data = bytearray(small)
    data[i] ^= 0x20
    assert "magic" in load_error(bytes(data))


def test_other_file_types():
    for data in (b"\x89PNG\r\n\x1a\n" + bytes(100), b"PK\x03\x04" + bytes(100), b"{" + b" " * 100):
        assert "magic" in load_error(data)


# ---- versions and flags -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [spec.NEWEST_VERSION + 1, 7, 0xFFFFFFFF])
def test_newer_version_is_refused_naming_both_versions(small, version):
    msg = load_error(spec.patch(small, spec.OFF_VERSION, "<I", version))
    assert str(version) in msg and f"1..{spec.NEWEST_VERSION}" in msg and "newer" in msg


def test_version_0_is_bad(small):
    assert "version 0" in load_error(spec.patch(small, spec.OFF_VERSION, "<I", 0))


def test_unknown_header_flags(small):
    assert "flags 0x1" in load_error(spec.patch(small, spec.OFF_FLAGS, "<I", 1))


def test_header_checksum(small):
    data = bytearray(small)
    data[40] = 1  # reserved, covered by the header CRC
    assert "header" in load_error(bytes(data)) and "checksum" in load_error(bytes(data))


# ---- absurd counts behind valid checksums -------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 65537, 0xFFFFFFFF, 65536, 10_000])
def test_absurd_section_count(small, count):
    msg = load_error(spec.patch(small, spec.OFF_COUNT, "<I", count))
    assert "section" in msg and (str(count) in msg)


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("offset", 65, "not 64-byte aligned"),
        ("offset", 2**63, "run past the end"),
        ("offset", 0, "overlap"),
        ("size", 2**64 - 1, "run past the end"),
        ("size", 100_000, "run past the end"),
    ],
)
def test_absurd_section_entry(small, field, value, words):
    data = bytearray(small)
    struct.pack_into("<Q", data, spec.HEADER_SIZE + {"offset": 8, "size": 16}[field], value)
    msg = load_error(bytes(spec.refresh_crcs(data, sections=False)))
    assert "section 0" in msg and words in msg, msg


def test_graph_payload_typed_as_tensor(small):
    # the CRC still matches; decoding the graph bytes as a tensor must fail cleanly
    data = bytearray(small)
    struct.pack_into("<I", data, spec.HEADER_SIZE, spec.TENSOR)
    load_error(bytes(spec.refresh_crcs(data, sections=False)))


def test_overlapping_sections(small):
    data = bytearray(small)
    e1 = spec.entries(small)[1]
    struct.pack_into("<Q", data, e1.at(1) + 8, spec.entries(small)[0].offset)
    spec.refresh_crcs(data, sections=False)
    assert "section 1" in load_error(bytes(data))


def csr_fields(data: bytes, name: str) -> dict[str, int]:
    e = tensor_entry(data, name)
    b = body_at(data, e)
    return {
        "nnz": b,
        "gap_bits": b + 4,
        "count_width": b + 8,
        "dims": e.offset + 8,
        "rank": e.offset + 4,
        "encoding": e.offset,
        "name_len": e.offset + 24,
        "row_counts": b + 16,
    }


@pytest.mark.parametrize(
    "field,fmt,value,words",
    [
        ("nnz", "<I", 2**31, "nonzeros in a tensor of"),
        ("nnz", "<I", 0xFFFFFFFF, "nonzeros in a tensor of"),
        ("nnz", "<I", 3, "row counts"),
        ("gap_bits", "<I", 0, "gap_bits 0"),
        ("gap_bits", "<I", 9, "gap_bits 9"),
        ("count_width", "<I", 3, "row count width 3"),
        ("count_width", "<I", 2**31, "row count width"),
        ("rank", "<I", 0, "rank 0"),
        ("rank", "<I", 5, "rank 5"),
        ("dims", "<II", (0, 6), "dimension 0 is 0"),
        ("dims", "<II", (2**31, 2**31), "shape too large"),
        ("dims", "<II", (2**20, 2**20), ""),  # legal size, but the row counts are not in the file
        ("name_len", "<I", 2**31, "name length"),
        ("name_len", "<I", 256, "name length 256"),
        ("encoding", "<I", 7, "unknown encoding 7"),
        ("row_counts", "<B", 7, "row 0 has 7 nonzeros but only 6 columns"),
    ],
)
def test_absurd_csr_fields(small, field, fmt, value, words):
    at = csr_fields(small, "fc0.weight")[field]
    values = value if isinstance(value, tuple) else (value,)
    msg = load_error(spec.patch(small, at, fmt, *values))
    assert words in msg, msg
    assert any(w in msg for w in ("fc0.weight", "tensor #0", "section 1:")), msg  # names where it is


def test_huge_dense_tensor_is_refused_before_allocation(small):
    # fc3.weight (dense [3, 4]) claims [2^20, 2^20]: 4 TiB of values that the payload does not hold
    e = tensor_entry(small, "fc3.weight")
    msg = load_error(spec.patch(small, e.offset + 8, "<II", 2**20, 2**20))
    assert "dense values needs 4398046511104 bytes" in msg and "fc3.weight" in msg


def stream_at(data: bytes, name: str, which: int) -> int:
    e = tensor_entry(data, name)
    return e.offset + spec.decode_tensor(spec.payload(data, e))["streams"][which].start


def test_huffman_over_subscribed_lengths(small):
    at = stream_at(small, "fc1.weight", 0)
    assert small[at] == 1  # Huffman-coded
    # 2-bit symbols: four 1-bit codes
    msg = load_error(spec.patch(small, at + 16, "<4B", 1, 1, 1, 1))
    assert "fc1.weight" in msg and "over-subscribed" in msg


def test_huffman_length_over_limit(small):
    at = stream_at(small, "fc1.weight", 0)
    assert "exceeds 24" in load_error(spec.patch(small, at + 16, "<B", 25))


@pytest.mark.parametrize("count", [2**32 - 1, 2**31, 121, 0])
def test_huffman_stream_count(small, count):
    at = stream_at(small, "fc1.weight", 0)
    msg = load_error(spec.patch(small, at + 4, "<I", count))
    assert f"tensor 'fc1.weight' indices: stream declares {count} symbols, expected 120" in msg


@pytest.mark.parametrize(
    "delta,words",
    [
        (-1, "ends early"),
        (+1, "trailing"),
        (+3, "trailing"),
        (2**31, "section 3: data ends early"),
        (2**32 - 18, "section 3: data ends early"),
    ],
)
def test_huffman_stream_payload_size(small, delta, words):
    at = stream_at(small, "fc1.weight", 0)
    (real,) = struct.unpack_from("<I", small, at + 8)
    msg = load_error(spec.patch(small, at + 8, "<I", real + delta))
    assert words in msg and ("fc1.weight" in msg or "section 3" in msg)


@pytest.mark.parametrize("payload_bytes", [0, 1, 14])
def test_huffman_symbol_bomb(small, payload_bytes):
    # 120 symbols need at least 15 bytes of Huffman payload: fewer is refused before decoding
    at = stream_at(small, "fc1.weight", 0)
    msg = load_error(spec.patch(small, at + 8, "<I", payload_bytes))
    assert f"120 symbols cannot fit in {payload_bytes} bytes of Huffman payload" in msg


@pytest.mark.parametrize("count", [2**32 - 1, 2**31, 10**6])
def test_packed_gap_stream_count(small, count):
    # csr gaps accept between nnz and rows*cols symbols
    at = stream_at(small, "fc0.weight", 0)
    assert small[at] == 0
    msg = load_error(spec.patch(small, at + 4, "<I", count))
    assert (
        f"tensor 'fc0.weight' column gaps: stream declares {count} symbols, expected between 21 and 72" in msg
    )


@pytest.mark.parametrize("field,value,words", [(0, 2, "unknown stream coding 2"), (1, 7, "7-bit symbols")])
def test_stream_header_bytes(small, field, value, words):
    at = stream_at(small, "fc2.weight", 1)
    assert words in load_error(spec.patch(small, at + field, "<B", value))


def test_codebook_index_out_of_range(small):
    # fc2.weight: csr+codebook with 16 centroids, 4-bit indices; 12 centroids would leave indices >= k
    e = tensor_entry(small, "fc2.weight")
    b = body_at(small, e)
    k, bits = struct.unpack_from("<II", small, b + 12)
    assert (k, bits) == (16, 4)
    # shrink k to 1 (centroids now end early; the rest is misread), then to the real k with 2-bit indices
    with pytest.raises(pyruntime.FormatError):
        _core.read_model(spec.patch(small, b + 12, "<I", 1))
    assert "cannot index 16 centroids" in load_error(spec.patch(small, b + 16, "<I", 2))
    assert "codebook size 0" in load_error(spec.patch(small, b + 12, "<I", 0))
    assert "codebook size 4294967295" in load_error(spec.patch(small, b + 12, "<I", 2**32 - 1))


def test_codebook_index_not_below_k(helpers, rng):
    # k = 3 centroids, 2-bit packed indices; patch an index to 3
    w = helpers.codebook(rng, (2, 4), k=3, name="w")
    w["indices"] = np.zeros(8, np.uint8)
    data = _core.write_model(
        {"input_shape": [4], "nodes": [{"op": "linear", "inputs": [0], "tensors": [0]}], "tensors": [w]}
    )
    at = stream_at(data, "w", 0)
    assert data[at] == 0
    msg = load_error(spec.patch(data, at + 16, "<B", 3))
    assert "codebook index 3 >= codebook size 3" in msg


def test_gap_stream_runs_past_last_column(helpers, rng):
    mask = np.zeros((2, 10), bool)
    mask[0, 9] = True
    mask[1, 0] = True
    w = helpers.csr(rng, (2, 10), mask=mask, gap_bits=4, name="w")
    data = _core.write_model(
        {"input_shape": [10], "nodes": [{"op": "linear", "inputs": [0], "tensors": [0]}], "tensors": [w]}
    )
    at = stream_at(data, "w", 0)
    assert data[at] == 0 and data[at + 16] == 0x09  # packed 4-bit symbols 9, 0
    assert "column 14 out of range in row 0" in load_error(spec.patch(data, at + 16, "<B", 0x0E))
    assert "filler runs past the last column in row 0" in load_error(spec.patch(data, at + 16, "<B", 0x0F))
    msg = load_error(spec.patch(data, at + 16, "<B", 0xF9))
    assert "column" in msg and "row 1" in msg  # row 1's gap became a filler: it runs past or out of symbols


# ---- text fields: names and metadata are UTF-8 (docs/FORMAT.md 3, 5) ----------------------------------


def name_byte(data: bytes, name: str) -> int:
    return tensor_entry(data, name).offset + 32


def test_invalid_utf8_name(small):
    data = spec.patch(small, name_byte(small, "fc0.weight"), "<B", 0x80)
    assert "UTF-8" in load_error(data)


def test_error_quoting_an_invalid_utf8_name(small):
    """An error in a tensor whose name is not UTF-8 is still a FormatError (not a UnicodeDecodeError)."""
    e = tensor_entry(small, "fc0.weight")
    data = bytearray(spec.patch(small, name_byte(small, "fc0.weight"), "<B", 0xFF))
    struct.pack_into("<I", data, e.offset + 4, 5)  # rank 5: an error whose message names the tensor
    load_error(bytes(spec.refresh_crcs(data)))


def test_invalid_utf8_metadata(small):
    """Metadata is optional: bytes that are not UTF-8 may be refused or replaced, never raise on access."""
    meta = next(e for e in spec.entries(small) if e.type == spec.METADATA)
    data = spec.patch(small, meta.offset, "<B", 0xFF)
    try:
        m = pyruntime.load(data)
    except pyruntime.FormatError:
        return  # refusing the file is one fix
    assert isinstance(m.metadata, str)  # decoding with replacement is the other
    assert isinstance(_core.read_model(data)["metadata"], str)


# ---- graph sections -----------------------------------------------------------------------------------


def graph_field(data: bytes, offset: int, fmt: str, *values) -> bytes:
    return spec.patch(data, spec.entries(data)[0].offset + offset, fmt, *values)


@pytest.mark.parametrize(
    "offset,fmt,value,words,kind",
    [
        (0, "<I", 0, "input rank 0", pyruntime.FormatError),
        (0, "<I", 5, "input rank 5", pyruntime.FormatError),
        (4, "<I", 0, "input dimension 0 is 0", pyruntime.FormatError),
        (20, "<I", 0, "node count 0", pyruntime.FormatError),
        (20, "<I", 2**31, "node count", pyruntime.FormatError),
        (20, "<I", 65536, "cannot fit", pyruntime.FormatError),
        (28, "<H", 99, "node 0 has unknown op code 99", pyruntime.FormatError),
        (28, "<H", 5, "node 0 (conv2d) needs format version 2, the file says 1", pyruntime.FormatError),
        (30, "<B", 255, "node 0 has too many inputs", pyruntime.FormatError),
        (31, "<B", 17, "node 0 has too many inputs or tensors", pyruntime.FormatError),
        (32, "<I", 2**31, "node 0 has attribute size", pyruntime.FormatError),
        (32, "<I", 3, "attribute size 3", pyruntime.FormatError),
        (36, "<I", 1, "node 0 (linear): reads value 1", pyruntime.FormatError),
        (40, "<I", 99, "node 0 (linear): references tensor 99", pyruntime.FormatError),
        (44, "<I", 0, "node 0 (linear): bias 'fc0.weight'", pyruntime.FormatError),
        (
            4,
            "<I",
            7,
            "node 0 (linear): weight 'fc0.weight' [12, 6] expects 6 input features",
            pyruntime.FormatError,
        ),
    ],
)
def test_absurd_graph_fields(small, offset, fmt, value, words, kind):
    assert words in load_error(graph_field(small, offset, fmt, value), kind)


def test_graph_with_attributes_is_refused(small):
    # node 0 claims 4 attribute bytes: they exist (taken from the next node), but no v1 op has any
    assert "node 0" in load_error(graph_field(small, 32, "<I", 4))


# ---- hand-built files: sections by the spec -----------------------------------------------------------


def dense_model_sections(helpers, rng) -> tuple[dict, list]:
    w = helpers.dense(rng, (3, 4), name="w")
    model = {"input_shape": [4], "nodes": [{"op": "linear", "inputs": [0], "tensors": [0]}], "tensors": [w]}
    sections = [
        (spec.GRAPH, spec.REQUIRED, spec.graph_payload([4], model["nodes"])),
        (spec.TENSOR, spec.REQUIRED, spec.dense_payload("w", [3, 4], w["values"])),
    ]
    return model, sections


def test_unknown_optional_section_is_skipped(helpers, rng):
    model, sections = dense_model_sections(helpers, rng)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    for at in (0, 1, 2):
        s = list(sections)
        s.insert(at, (99, 0, b"future extension" * 5))
        data = spec.build_file(s)
        back = _core.read_model(data)
        assert [sec["type"] for sec in back["sections"]] == [t for t, _, _ in s]
        np.testing.assert_allclose(pyruntime.load(data).run(x), helpers.forward(model, x), rtol=1e-5)


def test_unknown_required_section_is_refused(helpers, rng):
    _, sections = dense_model_sections(helpers, rng)
    data = spec.build_file(sections + [(99, spec.REQUIRED, b"must understand")])
    msg = load_error(data)
    assert "section 2" in msg and "unknown required section type 99" in msg


def test_graph_section_may_come_last(helpers, rng):
    model, sections = dense_model_sections(helpers, rng)
    data = spec.build_file(sections[::-1])
    x = rng.standard_normal((1, 4)).astype(np.float32)
    np.testing.assert_allclose(pyruntime.load(data).run(x), helpers.forward(model, x), rtol=1e-5)


def test_two_graph_sections(helpers, rng):
    _, sections = dense_model_sections(helpers, rng)
    assert "a second graph section" in load_error(spec.build_file(sections + [sections[0]]))


def test_no_graph_section(helpers, rng):
    _, sections = dense_model_sections(helpers, rng)
    assert "no graph section" in load_error(spec.build_file(sections[1:]))


def test_graph_trailing_bytes(helpers, rng):
    _, sections = dense_model_sections(helpers, rng)
    sections[0] = (spec.GRAPH, spec.REQUIRED, sections[0][2] + b"\0" * 4)
    assert "graph section: 4 trailing bytes" in load_error(spec.build_file(sections))


def test_tensor_trailing_bytes_or_short(helpers, rng):
    _, sections = dense_model_sections(helpers, rng)
    short = (spec.TENSOR, spec.REQUIRED, sections[1][2][:-4])
    assert "dense values needs 48 bytes, 44 left" in load_error(spec.build_file([sections[0], short]))


def test_weight_shape_against_graph_in_file(helpers, rng):
    w = helpers.dense(rng, (3, 5), name="w")
    data = spec.build_file(
        [
            (
                spec.GRAPH,
                spec.REQUIRED,
                spec.graph_payload([4], [{"op": "linear", "inputs": [0], "tensors": [0]}]),
            ),
            (spec.TENSOR, spec.REQUIRED, spec.dense_payload("w", [3, 5], w["values"])),
        ]
    )
    assert "node 0 (linear): weight 'w' [3, 5] expects 5 input features, the input has 4" in load_error(data)


# ---- the writer refuses inconsistent graphs ------------------------------------------------------------


def base_model(helpers, rng) -> dict:
    return helpers.mlp(rng, [6, 5, 3], ["csr", "dense"])


@pytest.mark.parametrize(
    "mutate,words",
    [
        (
            lambda m: m["tensors"][0].update(
                shape=[5, 7],
                values=np.zeros(0, np.float32),
                rowptr=np.zeros(6, np.uint32),
                colidx=np.zeros(0, np.uint32),
            ),
            "node 0 (linear): weight 'fc0.weight' [5, 7] expects 7 input features, the input has 6",
        ),
        (
            lambda m: m["nodes"][0].update(tensors=[0, 9]),
            "node 0 (linear): references tensor 9 but the file has 4",
        ),
        (
            lambda m: m["nodes"][2].update(tensors=[2, 1]),
            "node 2 (linear): bias 'fc0.bias' [5] does not match 3",
        ),
        (lambda m: m["nodes"][2].update(tensors=[2, 0]), "node 2 (linear): bias 'fc0.weight' must be dense"),
        (lambda m: m["nodes"][2].update(tensors=[]), "node 2 (linear): expects weight and optional bias"),
        (lambda m: m["nodes"][2].update(tensors=[1]), "node 2 (linear): weight 'fc0.bias' has rank 1"),
        (lambda m: m["nodes"][1].update(inputs=[2]), "node 1 (relu): reads value 2, which is not defined"),
        (lambda m: m["nodes"][1].update(inputs=[0, 1]), "node 1 (relu): expects 1 input, has 2"),
        (lambda m: m["nodes"][1].update(tensors=[0]), "node 1 (relu): takes no tensors"),
        (lambda m: m.update(input_shape=[2, 3]),
         "node 0 (linear): weight 'fc0.weight' [5, 6] expects 6 input features, the input has 3"),
        (lambda m: m.update(input_shape=[]), "input rank 0"),
        (lambda m: m.update(input_shape=[1, 1, 1, 1, 6]), "input rank 5"),
        (lambda m: m.update(nodes=[]), "no nodes"),
    ],
    ids=[
        "weight-shape",
        "missing-tensor",
        "bias-shape",
        "bias-sparse",
        "no-weight",
        "weight-rank",
        "future-value",
        "two-inputs",
        "relu-tensor",
        "not-flat",
        "rank-0",
        "rank-5",
        "no-nodes",
    ],
)
def test_write_refuses_inconsistent_graph(helpers, rng, mutate, words):
    model = base_model(helpers, rng)
    mutate(model)
    with pytest.raises(ValueError) as e:
        _core.write_model(model)
    assert not isinstance(e.value, pyruntime.FormatError)
    assert words in str(e.value)


def test_write_refuses_unknown_op(helpers, rng):
    model = base_model(helpers, rng)
    model["nodes"][1]["op"] = "deconv2d"
    with pytest.raises(pyruntime.UnsupportedError, match="unsupported op 'deconv2d'"):
        _core.write_model(model)


@pytest.mark.parametrize(
    "mutate,words",
    [
        pytest.param(
            lambda m: m["nodes"][1].update(op="conv2d"),
            "node 1",
            id="unknown-op",
        ),
        pytest.param(lambda m: m["nodes"][1].update(op=1), "node 1", id="op-not-a-string"),
        pytest.param(lambda m: m["nodes"][1].pop("op"), "node 1", id="op-missing"),
        pytest.param(lambda m: m["nodes"][1].pop("inputs"), "node 1", id="inputs-missing"),
        pytest.param(lambda m: m["nodes"][1].update(inputs=0), "node 1", id="inputs-not-a-list"),
        pytest.param(lambda m: m["nodes"][1].update(inputs=[-1]), "node 1", id="input-negative"),
        pytest.param(
            lambda m: m["nodes"][0].update(tensors=[-1, 1]),
            "node 0",
            id="tensor-negative",
        ),
        pytest.param(lambda m: m.update(input_shape=[-6]), "input", id="input-shape-negative"),
        pytest.param(lambda m: m.update(input_shape=[2**33]), "input", id="input-shape-huge"),
        pytest.param(lambda m: m.update(metadata=5), "metadata", id="metadata-not-a-string"),
        pytest.param(
            lambda m: m["tensors"][0].update(gap_bits=-1),
            "fc0.weight",
            id="gap-bits-negative",
        ),
    ],
)
def test_write_refuses_malformed_dict(helpers, rng, mutate, words):
    """A malformed model dict (a converter bug) is a ValueError that says where, not a cast failure."""
    model = base_model(helpers, rng)
    mutate(model)
    with pytest.raises(ValueError) as e:
        _core.write_model(model)
    assert words in str(e.value)


@pytest.mark.parametrize(
    "mutate,words",
    [
        (lambda t: t.update(colidx=t["colidx"][::-1].copy()), "columns not strictly increasing"),
        (lambda t: t.update(values=t["values"][:-1].copy()), "values for"),
        (lambda t: t.update(rowptr=t["rowptr"][:-1].copy()), "rowptr has 5 entries, expected rows + 1 = 6"),
        (lambda t: t.update(gap_bits=9), "gap_bits 9 not in 1..8"),
        (lambda t: t.update(shape=[5, 0]), "dimension 0 out of range"),
        (lambda t: t.update(encoding="csr16"), "unknown encoding 'csr16'"),
    ],
    ids=["colidx-order", "values-length", "rowptr-length", "gap-bits", "zero-dim", "encoding"],
)
def test_write_refuses_inconsistent_tensor(helpers, rng, mutate, words):
    model = base_model(helpers, rng)
    t = model["tensors"][0]
    t["rowptr"] = np.array([0, 2, 2, 3, 5, 6], np.uint32)
    t["colidx"] = np.array([0, 3, 5, 1, 2, 4], np.uint32)
    t["values"] = np.ones(6, np.float32)
    _core.write_model(model)  # consistent before the mutation
    mutate(t)
    with pytest.raises(ValueError) as e:
        _core.write_model(model)
    assert words in str(e.value)
    assert "fc0.weight" in str(e.value) or "csr16" in str(e.value)


@pytest.mark.parametrize(
    "mutate,words",
    [
        (lambda t: t.update(indices=np.full(30, 4, np.uint8)), "codebook index 4 >= codebook size 4"),
        (lambda t: t.update(index_bits=1), "4 centroids do not fit in 1-bit indices"),
        (lambda t: t.update(centroids=np.zeros(0, np.float32)), "codebook size 0"),
        (
            lambda t: t.update(indices=np.zeros(29, np.uint8)),
            "29 indices for a codebook tensor of 30 elements",
        ),
    ],
)
def test_write_refuses_inconsistent_codebook(helpers, rng, mutate, words):
    model = helpers.mlp(rng, [6, 5], ["codebook"], tensor_kw={"k": 4})
    mutate(model["tensors"][0])
    with pytest.raises(ValueError) as e:
        _core.write_model(model)
    assert words in str(e.value) and "fc0.weight" in str(e.value)


# ---- running with the wrong input ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def image_model(helpers):
    rng = np.random.default_rng(3)
    model = helpers.mlp(rng, [12, 4], ["csr"], input_shape=[3, 4])
    return pyruntime.load(_core.write_model(model))


@pytest.mark.parametrize(
    "shape,words",
    [
        ((2, 3, 5), "(2, 3, 5) does not match the model's (batch, 3, 4)"),
        ((2, 4, 3), "(2, 4, 3) does not match the model's (batch, 3, 4)"),
        ((2, 12), "input has 2 dimensions, expected 3 (batch, 3, 4)"),
        ((3, 4), "input has 2 dimensions, expected 3 (batch, 3, 4)"),
        ((1, 2, 3, 4), "input has 4 dimensions, expected 3 (batch, 3, 4)"),
    ],
)
def test_run_wrong_shape(image_model, shape, words):
    with pytest.raises(ValueError) as e:
        image_model.run(np.zeros(shape, np.float32))
    assert words in str(e.value)


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.uint8])
def test_run_wrong_dtype(image_model, dtype):
    with pytest.raises(ValueError, match="expected float32"):
        image_model.run(np.zeros((2, 3, 4), dtype))


def test_run_unpickled_and_byte_swapped_float32(image_model):
    # An array that crossed a process boundary (Ray, Dask, multiprocessing) has a float32 dtype equal to, but
    # not the same object as, numpy's own: it runs. Big-endian float32 is another layout: refused.
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    y = pickle.loads(pickle.dumps(x))
    assert y.dtype == np.float32 and y.dtype is not np.dtype(np.float32)
    np.testing.assert_array_equal(image_model.run(y), image_model.run(x))
    with pytest.raises(ValueError, match=r"dtype is >f4, expected float32"):
        image_model.run(x.astype(">f4"))


def test_run_not_an_array(image_model):
    with pytest.raises(TypeError):
        image_model.run([[0.0] * 4] * 3)


def test_run_odd_but_valid_inputs(image_model):
    assert image_model.run(np.zeros((0, 3, 4), np.float32)).shape == (0, 4)
    x = np.arange(2 * 3 * 8, dtype=np.float32).reshape(2, 3, 8)
    np.testing.assert_array_equal(
        image_model.run(x[:, :, ::2]), image_model.run(np.ascontiguousarray(x[:, :, ::2]))
    )
    np.testing.assert_array_equal(
        image_model.run(np.asfortranarray(x[:, :, :4])), image_model.run(x[:, :, :4].copy())
    )


# ---- files --------------------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(OSError, match="cannot open"):
        pyruntime.load(tmp_path / "missing.pyrt")
    with pytest.raises(OSError, match="missing.pyrt"):
        pyruntime.load(str(tmp_path / "missing.pyrt"))


def test_directory_path(tmp_path):
    with pytest.raises(OSError):
        pyruntime.load(tmp_path)


def test_bad_file_on_disk(tmp_path, small):
    p = tmp_path / "bad.pyrt"
    p.write_bytes(small[:-1])
    with pytest.raises(pyruntime.FormatError, match="truncated"):
        pyruntime.load(p)
    p.write_bytes(b"")
    with pytest.raises(pyruntime.FormatError, match="shorter"):
        pyruntime.load(p)


def test_path_and_bytes_agree(tmp_path, small):
    p = tmp_path / "small.pyrt"
    p.write_bytes(small)
    x = np.linspace(-1, 1, 18, dtype=np.float32).reshape(3, 6)
    a, b = pyruntime.load(p), pyruntime.load(small)
    assert a.file_bytes == b.file_bytes == len(small)
    np.testing.assert_array_equal(a.run(x), b.run(x))


def test_load_rejects_other_types():
    with pytest.raises(TypeError):
        pyruntime.load(123)
