"""Symbol streams (csrc/format/symbol_stream.h) and canonical Huffman code lengths (huffman.h).

Every stream the C++ writer produces is decoded twice: by the C++ reader and by the independent
Python reading of the layout in pyrt_spec.py, so the canonical code assignment is checked against
the spec (RFC 1951 3.2.2), not only against its own decoder.
"""

from __future__ import annotations

import struct

import numpy as np
import pyrt_spec as spec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyruntime
from pyruntime import _core

HEADER = 16


def pad4(n: int) -> int:
    return (n + 3) // 4 * 4


def packed_size(count: int, bits: int) -> int:
    return HEADER + pad4((count * bits + 7) // 8)


def roundtrip(symbols: np.ndarray, bits: int) -> spec.Stream:
    """Encodes, decodes with both readers, checks the header fields; returns the parsed stream."""
    symbols = np.asarray(symbols, np.uint8)
    enc = _core.encode_symbol_stream(symbols, bits)
    assert len(enc) % 4 == 0
    dec = _core.decode_symbol_stream(enc, bits, symbols.size)
    assert dec.dtype == np.uint8
    np.testing.assert_array_equal(dec, symbols)
    s = spec.read_stream(enc, 0)
    assert s.end == len(enc)
    assert (s.bits, s.count) == (bits, symbols.size)
    np.testing.assert_array_equal(s.symbols, symbols)
    if s.coding == 1:
        assert len(s.lengths) == 1 << bits
        freqs = np.bincount(symbols, minlength=1 << bits)
        # every used symbol has a code, no unused symbol has one
        assert [ln > 0 for ln in s.lengths] == [f > 0 for f in freqs]
        assert max(s.lengths) <= spec.MAX_CODE_LENGTH
    return s


def geometric(rng: np.random.Generator, n: int, bits: int, p: float = 0.5) -> np.ndarray:
    return np.minimum(rng.geometric(p, n) - 1, (1 << bits) - 1).astype(np.uint8)


# ---- round trips --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 100, 1001])
def test_uniform_roundtrip(rng, bits, n):
    roundtrip(rng.integers(0, 1 << bits, n), bits)


@pytest.mark.parametrize("bits", range(1, 9))
def test_skewed_roundtrip(rng, bits):
    roundtrip(geometric(rng, 5000, bits), bits)


@pytest.mark.parametrize("bits", range(1, 9))
def test_empty_stream(bits):
    enc = _core.encode_symbol_stream(np.zeros(0, np.uint8), bits)
    assert len(enc) == HEADER
    coding, stored_bits, _, count, nbytes, _ = struct.unpack("<BBHIII", enc)
    assert (coding, stored_bits, count, nbytes) == (0, bits, 0, 0)
    assert _core.decode_symbol_stream(enc, bits, 0).size == 0
    with pytest.raises(pyruntime.FormatError, match="declares 0 symbols"):
        _core.decode_symbol_stream(enc, bits, 1)


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("symbol_at", ["lowest", "highest"])
def test_one_symbol_only(bits, symbol_at):
    sym = 0 if symbol_at == "lowest" else (1 << bits) - 1
    n = 4000
    s = roundtrip(np.full(n, sym, np.uint8), bits)
    if bits == 1:
        assert s.coding == 0  # Huffman would be no smaller than 1 bit a symbol, plus its table
    else:
        # a single used symbol gets a 1-bit code: n bits of payload
        assert s.coding == 1
        assert s.lengths[sym] == 1 and sum(s.lengths) == 1
        assert s.payload_bytes == n // 8


def test_single_symbol_stream_of_one():
    for bits in range(1, 9):
        roundtrip(np.array([(1 << bits) - 1], np.uint8), bits)


def test_all_256_symbols_8bit(rng):
    # uniform over all 256 symbols: packed; permuted so order matters
    s = roundtrip(rng.permutation(np.repeat(np.arange(256), 20)), 8)
    assert s.coding == 0
    # every symbol used but strongly skewed: Huffman, and all 256 codes present
    skew = np.concatenate([np.arange(256), np.zeros(20000, int), np.ones(5000, int)])
    s = roundtrip(rng.permutation(skew), 8)
    assert s.coding == 1
    assert all(ln > 0 for ln in s.lengths)
    assert spec.kraft_sum(s.lengths) == 1


@pytest.mark.parametrize("bits", range(1, 9))
def test_uniform_chooses_packed(rng, bits):
    n = 4096
    enc = _core.encode_symbol_stream(rng.integers(0, 1 << bits, n).astype(np.uint8), bits)
    assert enc[0] == 0
    assert len(enc) == packed_size(n, bits)


@pytest.mark.parametrize("bits", range(2, 9))
def test_skewed_chooses_huffman(rng, bits):
    n = 20000
    sym = geometric(rng, n, bits, p=0.6)
    enc = _core.encode_symbol_stream(sym, bits)
    assert enc[0] == 1
    assert len(enc) < packed_size(n, bits)
    # close to the entropy: within the table and 1 bit a symbol of it
    freqs = np.bincount(sym, minlength=1 << bits)
    p = freqs[freqs > 0] / n
    entropy_bits = -(p * np.log2(p)).sum() * n
    assert (len(enc) - HEADER - pad4(1 << bits)) * 8 <= entropy_bits + n + 32


def test_length_limited_stream_roundtrip(rng):
    # Fibonacci frequencies over 27 symbols: the unlimited code is 26 bits deep, above the 24-bit limit.
    fib = [1, 1]
    while len(fib) < 27:
        fib.append(fib[-1] + fib[-2])
    assert max(spec.huffman_lengths(fib)) > spec.MAX_CODE_LENGTH
    sym = rng.permutation(np.repeat(np.arange(27, dtype=np.uint8), fib))
    s = roundtrip(sym, 8)
    assert s.coding == 1
    assert max(s.lengths) <= spec.MAX_CODE_LENGTH
    assert spec.kraft_sum(s.lengths) == 1
    # the rarest symbols really do sit at the bottom of the limited code
    assert s.lengths[0] == max(s.lengths) and s.lengths[26] == min(ln for ln in s.lengths if ln)


# ---- the choice between codings -----------------------------------------------------------------------


def expected_stream_size(symbols: np.ndarray, bits: int) -> int:
    """16 + min(packed, Huffman) with an independent optimal Huffman (valid when no length limit is hit)."""
    n = symbols.size
    packed = pad4((n * bits + 7) // 8)
    if n == 0:
        return HEADER + packed
    freqs = np.bincount(symbols, minlength=1 << bits).tolist()
    huff = pad4(1 << bits) + pad4((spec.cost_bits(freqs, spec.huffman_lengths(freqs)) + 7) // 8)
    return HEADER + (min(packed, huff))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), bits=st.integers(1, 8))
def test_stream_property(data, bits):
    """Any symbols round trip, and the stream is exactly as small as the better coding allows."""
    hi = (1 << bits) - 1
    if data.draw(st.booleans(), label="skewed"):
        # few distinct symbols with very different weights
        alphabet = data.draw(
            st.lists(st.integers(0, hi), min_size=1, max_size=6, unique=True), label="alphabet"
        )
        weights = data.draw(st.lists(st.integers(1, 300), min_size=len(alphabet), max_size=len(alphabet)))
        seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
        sym = np.random.default_rng(seed).permutation(np.repeat(np.array(alphabet, np.uint8), weights))
    else:
        sym = np.array(data.draw(st.lists(st.integers(0, hi), max_size=600), label="symbols"), np.uint8)
    enc = _core.encode_symbol_stream(sym, bits)
    np.testing.assert_array_equal(_core.decode_symbol_stream(enc, bits, sym.size), sym)
    np.testing.assert_array_equal(spec.read_stream(enc, 0).symbols, sym)
    assert len(enc) == expected_stream_size(sym, bits)


# ---- code lengths -------------------------------------------------------------------------------------

FREQS = {
    "two": [5, 9],
    "equal4": [1, 1, 1, 1],
    "classic": [45, 13, 12, 16, 9, 5],
    "gaps": [0, 3, 0, 0, 7, 1, 0, 1],
    "one": [0, 0, 42, 0],
    "none": [0, 0, 0],
    "powers": [2**i for i in range(20)],
    "all256": list(range(1, 257)),
    "huge": [2**60, 1, 1, 2**40],
}


@pytest.mark.parametrize("name", FREQS)
def test_code_lengths_are_optimal(name):
    freqs = FREQS[name]
    got = list(_core.huffman_code_lengths(freqs))
    assert len(got) == len(freqs)
    assert [ln > 0 for ln in got] == [f > 0 for f in freqs]
    used = sum(f > 0 for f in freqs)
    if used == 1:
        assert max(got) == 1
    if used >= 2:
        assert spec.kraft_sum(got) == 1
    if max(spec.huffman_lengths(freqs), default=0) <= spec.MAX_CODE_LENGTH:
        assert spec.cost_bits(freqs, got) == spec.cost_bits(freqs, spec.huffman_lengths(freqs))


def test_code_lengths_hit_the_limit():
    fib = [1, 1]
    while len(fib) < 40:
        fib.append(fib[-1] + fib[-2])
    optimal = spec.huffman_lengths(fib)
    assert max(optimal) == 39
    got = list(_core.huffman_code_lengths(fib))
    assert 0 < min(got) and max(got) <= spec.MAX_CODE_LENGTH
    assert spec.kraft_sum(got) == 1
    opt_cost = spec.cost_bits(fib, optimal)
    assert opt_cost <= spec.cost_bits(fib, got) <= opt_cost * 1.01


def test_code_lengths_rejects_more_than_256_symbols():
    with pytest.raises(ValueError, match="256"):
        _core.huffman_code_lengths([1] * 257)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=256))
def test_code_lengths_property(freqs):
    got = list(_core.huffman_code_lengths(freqs))
    assert [ln > 0 for ln in got] == [f > 0 for f in freqs]
    assert max(got) <= spec.MAX_CODE_LENGTH
    if sum(f > 0 for f in freqs) >= 2:
        assert spec.kraft_sum(got) == 1
        optimal = spec.huffman_lengths(freqs)
        if max(optimal) <= spec.MAX_CODE_LENGTH:
            assert spec.cost_bits(freqs, got) == spec.cost_bits(freqs, optimal)


# ---- the writer refuses, the reader rejects -----------------------------------------------------------


@pytest.mark.parametrize("bits", [0, 9])
def test_encode_rejects_bad_width(bits):
    with pytest.raises(ValueError, match="bits"):
        _core.encode_symbol_stream(np.zeros(3, np.uint8), bits)


@pytest.mark.parametrize("bits", range(1, 8))
def test_encode_rejects_symbol_too_wide(bits):
    with pytest.raises(ValueError, match=f"symbol {1 << bits} does not fit in {bits} bits"):
        _core.encode_symbol_stream(np.array([0, 1 << bits], np.uint8), bits)


def huffman_stream(lengths: list[int], count: int, payload: bytes, bits: int) -> bytes:
    head = struct.pack("<BBHIII", 1, bits, 0, count, len(payload), 0)
    table = bytes(lengths) + bytes(-len(lengths) % 4)
    return head + table + payload + bytes(-len(payload) % 4)


def test_decode_rejects_wrong_symbol_width():
    enc = _core.encode_symbol_stream(np.arange(8, dtype=np.uint8), 3)
    with pytest.raises(pyruntime.FormatError, match="3-bit symbols, expected 4"):
        _core.decode_symbol_stream(enc, 4, 8)


def test_decode_rejects_wrong_count():
    enc = _core.encode_symbol_stream(np.arange(8, dtype=np.uint8), 3)
    with pytest.raises(pyruntime.FormatError, match="declares 8 symbols, expected 9"):
        _core.decode_symbol_stream(enc, 3, 9)


def test_decode_rejects_unknown_coding():
    enc = bytearray(_core.encode_symbol_stream(np.arange(8, dtype=np.uint8), 3))
    enc[0] = 2
    with pytest.raises(pyruntime.FormatError, match="unknown stream coding 2"):
        _core.decode_symbol_stream(bytes(enc), 3, 8)


def test_decode_rejects_packed_size_mismatch():
    enc = bytearray(_core.encode_symbol_stream(np.arange(8, dtype=np.uint8), 3))
    struct.pack_into("<I", enc, 8, 4)
    with pytest.raises(pyruntime.FormatError, match="needs 3 bytes, header says 4"):
        _core.decode_symbol_stream(bytes(enc), 3, 8)


def test_decode_rejects_over_subscribed_lengths():
    # three 1-bit codes: Kraft sum 3/2
    with pytest.raises(pyruntime.FormatError, match="over-subscribed"):
        _core.decode_symbol_stream(huffman_stream([1, 1, 1, 0], 8, b"\x00", 2), 2, 8)


def test_decode_rejects_code_length_over_limit():
    with pytest.raises(pyruntime.FormatError, match="exceeds 24"):
        _core.decode_symbol_stream(huffman_stream([1, 25, 0, 0], 8, b"\x00", 2), 2, 8)


def test_decode_rejects_empty_table():
    with pytest.raises(pyruntime.FormatError, match="no codes"):
        _core.decode_symbol_stream(huffman_stream([0, 0, 0, 0], 8, b"\x00", 2), 2, 8)


def test_decode_rejects_invalid_code():
    # one code ('0', length 1) for symbol 0; the payload is all ones, which no code starts with
    with pytest.raises(pyruntime.FormatError, match="invalid Huffman code|ends early"):
        _core.decode_symbol_stream(huffman_stream([1, 0, 0, 0], 8, b"\xff" * 4, 2), 2, 8)


def test_decode_rejects_trailing_payload():
    # 8 symbols of the 1-bit code need 1 byte; the header claims 2
    with pytest.raises(pyruntime.FormatError, match="trailing"):
        _core.decode_symbol_stream(huffman_stream([1, 1, 0, 0], 8, b"\x00\x00", 2), 2, 8)


def test_decode_rejects_symbol_bomb():
    # 2^32 - 1 symbols claimed in a 4-byte payload: refused before any allocation
    with pytest.raises(pyruntime.FormatError, match="cannot fit"):
        _core.decode_symbol_stream(huffman_stream([1, 1, 0, 0], 0xFFFFFFFF, b"\x00" * 4, 2), 2, 0xFFFFFFFF)


@pytest.mark.parametrize("kind", ["packed", "huffman"])
def test_decode_rejects_every_truncation(rng, kind):
    sym = rng.integers(0, 32, 300) if kind == "packed" else geometric(rng, 300, 5)
    enc = _core.encode_symbol_stream(sym.astype(np.uint8), 5)
    assert enc[0] == (0 if kind == "packed" else 1)
    for cut in range(len(enc)):
        with pytest.raises(pyruntime.FormatError, match="symbol stream"):
            _core.decode_symbol_stream(enc[:cut], 5, 300)
