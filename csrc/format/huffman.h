// pyruntime: canonical Huffman coding of symbol streams (alphabets of up to 256 symbols).
//
// Only code lengths are stored in the file. Codes are rebuilt canonically, as in DEFLATE (RFC 1951
// 3.2.2): symbols are ordered by (length, symbol value); the first code of length L is
//     first[1] = 0,  first[L] = (first[L-1] + count[L-1]) << 1
// and symbols of one length take consecutive codes. Codes are written most significant bit first.
// Lengths are limited to kMaxCodeLength bits. A stream whose alphabet holds a single used symbol gives
// it length 1 (one bit per symbol). A valid length table has Kraft sum <= 1 (never over-subscribed).
#pragma once

#include <cstdint>
#include <vector>

#include "format/bitstream.h"

namespace pyrt::format {

constexpr unsigned kMaxCodeLength = 24;

// Optimal length-limited-by-rescaling code lengths; freqs.size() <= 256; 0 for unused symbols.
std::vector<uint8_t> huffman_code_lengths(const std::vector<uint64_t>& freqs);

// Total bits of a stream with these symbol frequencies under these lengths.
uint64_t huffman_cost_bits(const std::vector<uint64_t>& freqs, const std::vector<uint8_t>& lengths);

class HuffmanEncoder {
 public:
  explicit HuffmanEncoder(const std::vector<uint8_t>& lengths);
  void put(BitWriter& w, uint32_t symbol) const { w.put_msb(codes_[symbol], lengths_[symbol]); }
  uint32_t code(uint32_t symbol) const { return codes_[symbol]; }

 private:
  std::vector<uint32_t> codes_;
  std::vector<uint8_t> lengths_;
};

class HuffmanDecoder {
 public:
  // Validates the table (lengths <= kMaxCodeLength, not over-subscribed, at least one code);
  // throws PYRT_BAD_FORMAT naming `what` otherwise.
  HuffmanDecoder(const std::vector<uint8_t>& lengths, const char* what);
  uint32_t get(BitReader& r) const {
    // Fast path: codes of up to kTableBits bits are resolved by one lookup of the next kTableBits
    // stream bits (the table is indexed by the bit-reversed code, as codes are written MSB first).
    const uint16_t e = table_[r.peek(kTableBits)];
    if (e != 0) {
      r.skip(e >> 12);
      return e & 0x1FF;
    }
    return get_slow(r);
  }

 private:
  static constexpr unsigned kTableBits = 10;
  uint32_t get_slow(BitReader& r) const;

  uint32_t count_[kMaxCodeLength + 1] = {};  // codes of each length
  std::vector<uint16_t> sorted_;             // symbols in canonical order
  std::vector<uint16_t> table_;              // (length << 12) | symbol, or 0: longer code / no code
  const char* what_;
};

}  // namespace pyrt::format
