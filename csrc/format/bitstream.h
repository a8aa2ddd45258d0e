// pyruntime: bit streams of the model file. Bit i of a stream is bit (i % 8) of byte i / 8, i.e. bytes
// are filled from their least significant bit up (as DEFLATE). Packed b-bit symbols put their least
// significant bit first; Huffman codes put their most significant bit first (see huffman.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/error.h"

namespace pyrt::format {

class BitWriter {
 public:
  // Appends the low `n` bits of `v` (n <= 32), least significant first.
  void put_lsb(uint32_t v, unsigned n) {
    for (unsigned i = 0; i < n; ++i) put_bit((v >> i) & 1u);
  }
  // Appends the low `n` bits of `code`, most significant first (Huffman codes).
  void put_msb(uint32_t code, unsigned n) {
    for (unsigned i = n; i-- > 0;) put_bit((code >> i) & 1u);
  }
  void put_bit(uint32_t bit) {
    if ((nbits_ & 7) == 0) bytes_.push_back(0);
    bytes_.back() |= static_cast<uint8_t>(bit << (nbits_ & 7));
    ++nbits_;
  }
  uint64_t bit_count() const { return nbits_; }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
  uint64_t nbits_ = 0;
};

// Reads from a bounded byte range; reading past the end throws PYRT_BAD_FORMAT naming `what`.
class BitReader {
 public:
  BitReader(const uint8_t* data, size_t size, const char* what) : p_(data), nbits_(uint64_t(size) * 8), what_(what) {}
  uint32_t get_bit() {
    PYRT_CHECK(pos_ < nbits_, PYRT_BAD_FORMAT, what_, ": bit stream ends early (", nbits_ / 8, " bytes)");
    const uint32_t b = (p_[pos_ >> 3] >> (pos_ & 7)) & 1u;
    ++pos_;
    return b;
  }
  uint32_t get_lsb(unsigned n) {
    PYRT_CHECK(pos_ + n <= nbits_, PYRT_BAD_FORMAT, what_, ": bit stream ends early (", nbits_ / 8, " bytes)");
    uint32_t v = 0;
    for (unsigned i = 0; i < n; ++i, ++pos_) v |= uint32_t((p_[pos_ >> 3] >> (pos_ & 7)) & 1u) << i;
    return v;
  }
  // The next n (<= 24) bits without consuming them, first stream bit in bit 0; bits past the end read
  // as 0 (callers check with skip() that what they use is really there).
  uint32_t peek(unsigned n) const {
    uint32_t v = 0;
    const uint64_t byte = pos_ >> 3;
    const uint64_t nbytes = nbits_ >> 3;
    for (unsigned k = 0; k < 4 && byte + k < nbytes; ++k) v |= uint32_t(p_[byte + k]) << (8 * k);
    return (v >> (pos_ & 7)) & ((1u << n) - 1);
  }
  void skip(unsigned n) {
    PYRT_CHECK(pos_ + n <= nbits_, PYRT_BAD_FORMAT, what_, ": bit stream ends early (", nbits_ / 8, " bytes)");
    pos_ += n;
  }
  uint64_t position() const { return pos_; }

 private:
  const uint8_t* p_;
  uint64_t nbits_;
  uint64_t pos_ = 0;
  const char* what_;
};

}  // namespace pyrt::format
