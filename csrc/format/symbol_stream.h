// pyruntime: symbol streams, the entropy-coded part of the file. A stream holds `count` symbols of
// `symbol_bits` bits (1..8) each, stored either packed (symbol i in bits [i*b, i*b+b) of the payload,
// least significant bit first) or canonical-Huffman-coded (huffman.h) with the code lengths of all
// 2^b symbols in front; the writer keeps whichever is smaller.
//
//   u8 coding, u8 symbol_bits, u16 0, u32 count, u32 payload_bytes, u32 0,
//   [coding = huffman: u8 lengths[2^symbol_bits], zero padded to a multiple of 4]
//   payload, zero padded to a multiple of 4
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "format/bytes.h"

namespace pyrt::format {

using Histogram = std::array<uint64_t, 256>;

Histogram histogram(const uint8_t* symbols, size_t count);

// Bytes the stream takes in the file (header included), choosing the smaller coding.
size_t symbol_stream_bytes(const Histogram& h, size_t count, unsigned bits);

// Appends the stream; every symbol must be < 2^bits.
void write_symbol_stream(ByteWriter& w, const uint8_t* symbols, size_t count, unsigned bits);

// Reads a stream of `bits`-bit symbols whose count lies in [min_count, max_count]. The count is
// checked against the payload size (packed: exact; Huffman: at least one bit a symbol) before any
// allocation. Throws PYRT_BAD_FORMAT naming `what`.
std::vector<uint8_t> read_symbol_stream(ByteReader& r, unsigned bits, uint64_t min_count, uint64_t max_count,
                                        const std::string& what);

}  // namespace pyrt::format
