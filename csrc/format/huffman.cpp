#include "format/huffman.h"

#include <algorithm>
#include <functional>
#include <queue>

namespace pyrt::format {
namespace {

// Unlimited Huffman lengths via a min-heap of (weight, node); leaves 0..n-1, internal nodes after.
std::vector<uint8_t> plain_lengths(const std::vector<uint64_t>& freqs, unsigned* max_len) {
  const size_t n = freqs.size();
  std::vector<uint8_t> lengths(n, 0);
  std::vector<int> parent;
  using Item = std::pair<uint64_t, int>;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;
  for (size_t s = 0; s < n; ++s)
    if (freqs[s] > 0) heap.push({freqs[s], int(s)});
  parent.assign(n, -1);
  *max_len = 0;
  if (heap.empty()) return lengths;
  if (heap.size() == 1) {
    lengths[heap.top().second] = 1;
    *max_len = 1;
    return lengths;
  }
  while (heap.size() > 1) {
    const Item a = heap.top();
    heap.pop();
    const Item b = heap.top();
    heap.pop();
    const int node = int(parent.size());
    parent.push_back(-1);
    parent[a.second] = node;
    parent[b.second] = node;
    heap.push({a.first + b.first, node});
  }
  for (size_t s = 0; s < n; ++s) {
    if (freqs[s] == 0) continue;
    unsigned depth = 0;
    for (int v = int(s); parent[v] != -1; v = parent[v]) ++depth;
    lengths[s] = static_cast<uint8_t>(std::min(depth, 255u));
    *max_len = std::max(*max_len, depth);
  }
  return lengths;
}

}  // namespace

std::vector<uint8_t> huffman_code_lengths(const std::vector<uint64_t>& freqs) {
  std::vector<uint64_t> f = freqs;
  for (;;) {
    unsigned max_len = 0;
    std::vector<uint8_t> lengths = plain_lengths(f, &max_len);
    if (max_len <= kMaxCodeLength) return lengths;
    // Too deep: flatten the distribution (halve, keeping used symbols >= 1) and rebuild.
    for (auto& v : f)
      if (v > 0) v = (v >> 1) | 1;
  }
}

uint64_t huffman_cost_bits(const std::vector<uint64_t>& freqs, const std::vector<uint8_t>& lengths) {
  uint64_t bits = 0;
  for (size_t s = 0; s < freqs.size(); ++s) bits += freqs[s] * lengths[s];
  return bits;
}

HuffmanEncoder::HuffmanEncoder(const std::vector<uint8_t>& lengths) : codes_(lengths.size(), 0), lengths_(lengths) {
  uint32_t count[kMaxCodeLength + 1] = {};
  for (uint8_t l : lengths) count[l]++;
  count[0] = 0;
  uint32_t next[kMaxCodeLength + 2] = {};
  uint32_t code = 0;
  for (unsigned len = 1; len <= kMaxCodeLength; ++len) {
    code = (code + count[len - 1]) << 1;
    next[len] = code;
  }
  for (size_t s = 0; s < lengths.size(); ++s)
    if (lengths[s]) codes_[s] = next[lengths[s]]++;
}

HuffmanDecoder::HuffmanDecoder(const std::vector<uint8_t>& lengths, const char* what) : what_(what) {
  for (uint8_t l : lengths) {
    PYRT_CHECK(l <= kMaxCodeLength, PYRT_BAD_FORMAT, what, ": Huffman code length ", int(l), " exceeds ",
               kMaxCodeLength);
    count_[l]++;
  }
  count_[0] = 0;
  // Kraft check: the number of codes left at each length must never go negative (over-subscribed).
  int64_t left = 1;
  for (unsigned len = 1; len <= kMaxCodeLength; ++len) {
    left = left * 2 - count_[len];
    PYRT_CHECK(left >= 0, PYRT_BAD_FORMAT, what, ": Huffman code lengths are over-subscribed");
  }
  for (unsigned len = 1; len <= kMaxCodeLength; ++len)
    for (size_t s = 0; s < lengths.size(); ++s)
      if (lengths[s] == len) sorted_.push_back(static_cast<uint16_t>(s));
  PYRT_CHECK(!sorted_.empty(), PYRT_BAD_FORMAT, what, ": Huffman table has no codes");

  // Lookup table over the next kTableBits stream bits. The stream holds a code's first (most
  // significant) bit first, i.e. in bit 0 of peek(): index by the reversed code, and fill every
  // combination of the bits that follow it.
  table_.assign(size_t(1) << kTableBits, 0);
  const HuffmanEncoder enc(lengths);
  for (size_t s = 0; s < lengths.size(); ++s) {
    const unsigned len = lengths[s];
    if (len == 0 || len > kTableBits) continue;
    uint32_t code = enc.code(static_cast<uint32_t>(s)), reversed = 0;
    for (unsigned i = 0; i < len; ++i, code >>= 1) reversed = (reversed << 1) | (code & 1);
    for (uint32_t fill = 0; fill < (1u << (kTableBits - len)); ++fill)
      table_[reversed | (fill << len)] = static_cast<uint16_t>((len << 12) | s);
  }
}

uint32_t HuffmanDecoder::get_slow(BitReader& r) const {
  // Canonical decode (as zlib's puff): walk lengths, comparing the code read so far with the
  // first code of each length.
  int32_t code = 0, first = 0, index = 0;
  for (unsigned len = 1; len <= kMaxCodeLength; ++len) {
    code |= static_cast<int32_t>(r.get_bit());
    const int32_t count = static_cast<int32_t>(count_[len]);
    if (code - first < count) return sorted_[index + (code - first)];
    index += count;
    first = (first + count) << 1;
    code <<= 1;
  }
  fail(PYRT_BAD_FORMAT, what_, ": invalid Huffman code in stream");
}

}  // namespace pyrt::format
