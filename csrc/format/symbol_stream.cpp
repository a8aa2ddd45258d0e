#include "format/symbol_stream.h"

#include "format/format.h"
#include "format/huffman.h"

namespace pyrt::format {
namespace {

constexpr size_t kStreamHeader = 16;

size_t pad4(size_t n) { return (n + 3) / 4 * 4; }

std::vector<uint64_t> freqs_of(const Histogram& h, unsigned bits) {
  return std::vector<uint64_t>(h.begin(), h.begin() + (size_t(1) << bits));
}

size_t packed_payload(size_t count, unsigned bits) { return (uint64_t(count) * bits + 7) / 8; }

}  // namespace

Histogram histogram(const uint8_t* symbols, size_t count) {
  Histogram h{};
  for (size_t i = 0; i < count; ++i) h[symbols[i]]++;
  return h;
}

// Returns the Huffman payload size in bytes, or SIZE_MAX if Huffman is not smaller.
static size_t huffman_payload(const Histogram& h, size_t count, unsigned bits, std::vector<uint8_t>* lengths_out) {
  if (count == 0) return SIZE_MAX;
  const auto freqs = freqs_of(h, bits);
  auto lengths = huffman_code_lengths(freqs);
  const size_t payload = (huffman_cost_bits(freqs, lengths) + 7) / 8;
  if (lengths_out) *lengths_out = std::move(lengths);
  return payload;
}

size_t symbol_stream_bytes(const Histogram& h, size_t count, unsigned bits) {
  const size_t packed = pad4(packed_payload(count, bits));
  const size_t hp = huffman_payload(h, count, bits, nullptr);
  const size_t huff = hp == SIZE_MAX ? SIZE_MAX : pad4(size_t(1) << bits) + pad4(hp);
  return kStreamHeader + (huff < packed ? huff : packed);
}

void write_symbol_stream(ByteWriter& w, const uint8_t* symbols, size_t count, unsigned bits) {
  PYRT_CHECK(bits >= 1 && bits <= 8, PYRT_INVALID_ARGUMENT, "symbol stream: bits ", bits, " not in 1..8");
  PYRT_CHECK(count <= 0xFFFFFFFFull, PYRT_INVALID_ARGUMENT, "symbol stream: more than 2^32-1 symbols");
  const Histogram h = histogram(symbols, count);
  for (size_t s = size_t(1) << bits; s < 256; ++s)
    PYRT_CHECK(h[s] == 0, PYRT_INVALID_ARGUMENT, "symbol stream: symbol ", s, " does not fit in ", bits, " bits");
  std::vector<uint8_t> lengths;
  const size_t packed = pad4(packed_payload(count, bits));
  const size_t hp = huffman_payload(h, count, bits, &lengths);
  const bool use_huffman = hp != SIZE_MAX && pad4(size_t(1) << bits) + pad4(hp) < packed;

  BitWriter bw;
  if (use_huffman) {
    const HuffmanEncoder enc(lengths);
    for (size_t i = 0; i < count; ++i) enc.put(bw, symbols[i]);
  } else {
    for (size_t i = 0; i < count; ++i) bw.put_lsb(symbols[i], bits);
  }
  const std::vector<uint8_t>& payload = bw.bytes();
  w.put<uint8_t>(use_huffman ? kCodingHuffman : kCodingPacked);
  w.put<uint8_t>(static_cast<uint8_t>(bits));
  w.put<uint16_t>(0);
  w.put<uint32_t>(static_cast<uint32_t>(count));
  w.put<uint32_t>(static_cast<uint32_t>(payload.size()));
  w.put<uint32_t>(0);
  if (use_huffman) {
    w.put_bytes(lengths.data(), lengths.size());
    w.pad_to(4);
  }
  w.put_bytes(payload.data(), payload.size());
  w.pad_to(4);
}

std::vector<uint8_t> read_symbol_stream(ByteReader& r, unsigned bits, uint64_t min_count, uint64_t max_count,
                                        const std::string& what) {
  const char* w = what.c_str();
  const uint8_t coding = r.get<uint8_t>();
  const uint8_t stored_bits = r.get<uint8_t>();
  r.get<uint16_t>();
  const uint32_t count = r.get<uint32_t>();
  const uint32_t payload_bytes = r.get<uint32_t>();
  r.get<uint32_t>();
  PYRT_CHECK(coding == kCodingPacked || coding == kCodingHuffman, PYRT_BAD_FORMAT, w, ": unknown stream coding ",
             int(coding));
  PYRT_CHECK(stored_bits == bits, PYRT_BAD_FORMAT, w, ": stream has ", int(stored_bits), "-bit symbols, expected ",
             bits);
  PYRT_CHECK(count >= min_count && count <= max_count, PYRT_BAD_FORMAT, w, ": stream declares ", count,
             " symbols, expected ", min_count == max_count ? "" : "between ", min_count,
             min_count == max_count ? "" : " and ", min_count == max_count ? "" : std::to_string(max_count));
  std::vector<uint8_t> out;
  if (coding == kCodingPacked) {
    PYRT_CHECK(payload_bytes == packed_payload(count, bits), PYRT_BAD_FORMAT, w, ": packed stream of ", count, " ",
               bits, "-bit symbols needs ", packed_payload(count, bits), " bytes, header says ", payload_bytes);
    const uint8_t* p = r.take(payload_bytes);
    r.skip_to_multiple(4);
    out.resize(count);
    BitReader br(p, payload_bytes, w);
    for (uint32_t i = 0; i < count; ++i) {  // payload size checked above: every symbol is there
      out[i] = static_cast<uint8_t>(br.peek(bits));
      br.skip(bits);
    }
    return out;
  }
  const uint8_t* lp = r.take(size_t(1) << bits);
  std::vector<uint8_t> lengths(lp, lp + (size_t(1) << bits));
  r.skip_to_multiple(4);
  // Bomb check: every Huffman symbol takes at least one bit.
  PYRT_CHECK(uint64_t(count) <= uint64_t(payload_bytes) * 8, PYRT_BAD_FORMAT, w, ": ", count,
             " symbols cannot fit in ", payload_bytes, " bytes of Huffman payload");
  const uint8_t* p = r.take(payload_bytes);
  r.skip_to_multiple(4);
  const HuffmanDecoder dec(lengths, w);
  BitReader br(p, payload_bytes, w);
  out.resize(count);
  for (uint32_t i = 0; i < count; ++i) out[i] = static_cast<uint8_t>(dec.get(br));
  PYRT_CHECK((br.position() + 7) / 8 == payload_bytes, PYRT_BAD_FORMAT, w, ": Huffman payload has ",
             payload_bytes - (br.position() + 7) / 8, " trailing bytes");
  return out;
}

}  // namespace pyrt::format
