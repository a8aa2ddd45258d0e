#include "format/tensor_codec.h"

#include <cstring>

#include "common/utf8.h"
#include "format/symbol_stream.h"

namespace pyrt::format {
namespace {

uint32_t count_width_for(const DecodedTensor& t) {
  uint32_t max_count = 0;
  for (uint64_t r = 0; r < t.rows(); ++r) max_count = std::max(max_count, t.rowptr[r + 1] - t.rowptr[r]);
  return max_count < 256 ? 1 : max_count < 65536 ? 2 : 4;
}

// Picks the gap width giving the smallest gap stream (ties: the wider, fewer fillers).
unsigned best_gap_bits(const DecodedTensor& t) {
  if (t.gap_bits) return t.gap_bits;
  unsigned best = 8;
  size_t best_bytes = SIZE_MAX;
  for (unsigned b = 8; b >= 1; --b) {
    const auto gaps = column_gaps(t, b);
    const size_t bytes = symbol_stream_bytes(histogram(gaps.data(), gaps.size()), gaps.size(), b);
    if (bytes < best_bytes) best_bytes = bytes, best = b;
  }
  return best;
}

void put_header(ByteWriter& w, const DecodedTensor& t) {
  w.put<uint32_t>(static_cast<uint32_t>(t.encoding));
  w.put<uint32_t>(static_cast<uint32_t>(t.shape.size()));
  for (size_t i = 0; i < 4; ++i) w.put<uint32_t>(i < t.shape.size() ? t.shape[i] : 0);
  w.put<uint32_t>(static_cast<uint32_t>(t.name.size()));
  w.put<uint32_t>(0);
  w.put_bytes(t.name.data(), t.name.size());
  w.pad_to(8);
}

void put_row_counts(ByteWriter& w, const DecodedTensor& t, uint32_t width) {
  for (uint64_t r = 0; r < t.rows(); ++r) {
    const uint32_t c = t.rowptr[r + 1] - t.rowptr[r];
    if (width == 1) w.put<uint8_t>(static_cast<uint8_t>(c));
    else if (width == 2) w.put<uint16_t>(static_cast<uint16_t>(c));
    else w.put<uint32_t>(c);
  }
  w.pad_to(4);
}

void put_floats(ByteWriter& w, const std::vector<float>& v) { w.put_bytes(v.data(), v.size() * sizeof(float)); }

}  // namespace

std::vector<uint8_t> column_gaps(const DecodedTensor& t, unsigned gap_bits) {
  const uint32_t m = (1u << gap_bits) - 1;
  std::vector<uint8_t> gaps;
  gaps.reserve(t.colidx.size());
  for (uint64_t r = 0; r < t.rows(); ++r) {
    uint32_t pos = 0;
    for (uint32_t j = t.rowptr[r]; j < t.rowptr[r + 1]; ++j) {
      uint32_t g = t.colidx[j] - pos;
      while (g >= m) {
        gaps.push_back(static_cast<uint8_t>(m));
        g -= m;
      }
      gaps.push_back(static_cast<uint8_t>(g));
      pos = t.colidx[j] + 1;
    }
  }
  return gaps;
}

void encode_tensor(ByteWriter& w, const DecodedTensor& t) {
  PYRT_CHECK(t.name.size() <= 255, PYRT_INVALID_ARGUMENT, "tensor '", t.name, "': name longer than 255 bytes");
  PYRT_CHECK(is_valid_utf8(t.name), PYRT_INVALID_ARGUMENT, "tensor name is not valid UTF-8");
  const size_t start = w.size();
  put_header(w, t);
  switch (t.encoding) {
    case Encoding::dense_f32:
      while ((w.size() - start) % 64) w.put<uint8_t>(0);
      w.put_bytes(t.value_data(), t.value_count() * sizeof(float));
      break;
    case Encoding::codebook:
      w.put<uint32_t>(static_cast<uint32_t>(t.centroids.size()));
      w.put<uint32_t>(t.index_bits);
      put_floats(w, t.centroids);
      write_symbol_stream(w, t.indices.data(), t.indices.size(), t.index_bits);
      break;
    case Encoding::int8:
      put_floats(w, t.scales);
      write_symbol_stream(w, reinterpret_cast<const uint8_t*>(t.qvalues.data()), t.qvalues.size(), 8);
      break;
    case Encoding::binary:
      put_floats(w, t.scales);
      while ((w.size() - start) % 8) w.put<uint8_t>(0);
      w.put_bytes(t.bits.data(), t.bits.size() * sizeof(uint64_t));
      break;
    case Encoding::csr:
    case Encoding::csr_codebook:
    case Encoding::csr_int8: {
      const bool cb = t.encoding == Encoding::csr_codebook, q8 = t.encoding == Encoding::csr_int8;
      const unsigned gap_bits = best_gap_bits(t);
      PYRT_CHECK(gap_bits >= 1 && gap_bits <= 8, PYRT_INVALID_ARGUMENT, "tensor '", t.name, "': gap_bits ", gap_bits,
                 " not in 1..8");
      const uint32_t width = count_width_for(t);
      w.put<uint32_t>(static_cast<uint32_t>(t.colidx.size()));
      w.put<uint32_t>(gap_bits);
      w.put<uint32_t>(width);
      if (cb) {
        w.put<uint32_t>(static_cast<uint32_t>(t.centroids.size()));
        w.put<uint32_t>(t.index_bits);
      }
      w.put<uint32_t>(0);
      if (cb) put_floats(w, t.centroids);
      if (q8) put_floats(w, t.scales);
      put_row_counts(w, t, width);
      const auto gaps = column_gaps(t, gap_bits);
      write_symbol_stream(w, gaps.data(), gaps.size(), gap_bits);
      if (cb) write_symbol_stream(w, t.indices.data(), t.indices.size(), t.index_bits);
      else if (q8) write_symbol_stream(w, reinterpret_cast<const uint8_t*>(t.qvalues.data()), t.qvalues.size(), 8);
      else put_floats(w, t.values);
      break;
    }
  }
}

size_t encoded_tensor_bytes(const DecodedTensor& t) {
  // Exact, by encoding: the streams dominate the cost and must be built to choose codings anyway.
  ByteWriter w;
  encode_tensor(w, t);
  return w.size();
}

DecodedTensor decode_tensor(ByteReader& r, uint32_t index, bool borrow_dense) {
  DecodedTensor t;
  const std::string fallback = "tensor #" + std::to_string(index);
  const uint32_t enc = r.get<uint32_t>();
  const uint32_t rank = r.get<uint32_t>();
  uint32_t dims[4];
  for (auto& d : dims) d = r.get<uint32_t>();
  const uint32_t name_len = r.get<uint32_t>();
  r.get<uint32_t>();
  PYRT_CHECK(name_len <= 255, PYRT_BAD_FORMAT, fallback, ": name length ", name_len, " exceeds 255");
  const uint8_t* name = r.take(name_len);
  t.name.assign(reinterpret_cast<const char*>(name), name_len);
  PYRT_CHECK(is_valid_utf8(t.name), PYRT_BAD_FORMAT, fallback, ": name is not valid UTF-8");
  r.skip_to_multiple(8);
  const std::string what = "tensor '" + t.name + "'";
  PYRT_CHECK(enc <= static_cast<uint32_t>(Encoding::binary), PYRT_BAD_FORMAT, what, ": unknown encoding ", enc,
             " (this reader knows 0..6)");
  t.encoding = static_cast<Encoding>(enc);
  PYRT_CHECK(rank >= 1 && rank <= 4, PYRT_BAD_FORMAT, what, ": rank ", rank, " not in 1..4");
  for (uint32_t i = 0; i < 4; ++i) {
    PYRT_CHECK(i < rank ? dims[i] > 0 : dims[i] == 0, PYRT_BAD_FORMAT, what, ": dimension ", i, " is ", dims[i]);
    if (i < rank) t.shape.push_back(dims[i]);
  }
  const uint64_t rows = t.rows(), cols = t.cols();
  PYRT_CHECK(cols <= 0xFFFFFFFFull && rows * cols <= (1ull << 40), PYRT_BAD_FORMAT, what, ": shape too large");
  const uint64_t numel = rows * cols;

  auto get_floats = [&](std::vector<float>& out, uint64_t n, const char* field) {
    PYRT_CHECK(n * 4 <= r.remaining(), PYRT_BAD_FORMAT, what, ": ", field, " needs ", n * 4, " bytes, ",
               r.remaining(), " left");
    const uint8_t* p = r.take(n * 4);
    out.resize(n);
    if (n) std::memcpy(out.data(), p, n * 4);
  };
  auto get_codebook_header = [&](uint32_t k, uint32_t bits) {
    PYRT_CHECK(k >= 1 && k <= 256, PYRT_BAD_FORMAT, what, ": codebook size ", k, " not in 1..256");
    PYRT_CHECK(bits >= 1 && bits <= 8 && (1u << bits) >= k, PYRT_BAD_FORMAT, what, ": index_bits ", bits,
               " cannot index ", k, " centroids");
    t.index_bits = bits;
  };

  switch (t.encoding) {
    case Encoding::dense_f32:
      r.skip_to_multiple(64);
      if (borrow_dense && numel > 0) {
        PYRT_CHECK(numel * 4 <= r.remaining(), PYRT_BAD_FORMAT, what, ": dense values needs ", numel * 4,
                   " bytes, ", r.remaining(), " left");  // the same words as get_floats
        const uint8_t* p = r.take(numel * 4);
        if (reinterpret_cast<uintptr_t>(p) % alignof(float) == 0) {
          t.borrowed_values = reinterpret_cast<const float*>(p);
          break;
        }
        t.values.resize(numel);
        std::memcpy(t.values.data(), p, numel * 4);
        break;
      }
      get_floats(t.values, numel, "dense values");
      break;
    case Encoding::codebook: {
      const uint32_t k = r.get<uint32_t>();
      const uint32_t bits = r.get<uint32_t>();
      get_codebook_header(k, bits);
      get_floats(t.centroids, k, "centroids");
      t.indices = read_symbol_stream(r, bits, numel, numel, what + " indices");
      break;
    }
    case Encoding::binary: {
      PYRT_CHECK(cols <= kMaxBinaryCols, PYRT_BAD_FORMAT, what, ": a binary weight has at most 2^24 = ",
                 kMaxBinaryCols, " columns, this one ", cols);
      get_floats(t.scales, rows, "alphas");
      r.skip_to_multiple(8);
      const uint64_t words = rows * binary_words(cols);
      PYRT_CHECK(words * 8 <= r.remaining(), PYRT_BAD_FORMAT, what, ": sign words need ", words * 8, " bytes, ",
                 r.remaining(), " left");
      const uint8_t* p = r.take(words * 8);
      t.bits.resize(words);
      if (words) std::memcpy(t.bits.data(), p, words * 8);
      break;
    }
    case Encoding::int8: {
      get_floats(t.scales, rows, "scales");
      const auto q = read_symbol_stream(r, 8, numel, numel, what + " int8 values");
      t.qvalues.assign(reinterpret_cast<const int8_t*>(q.data()), reinterpret_cast<const int8_t*>(q.data()) + q.size());
      break;
    }
    case Encoding::csr:
    case Encoding::csr_codebook:
    case Encoding::csr_int8: {
      const bool cb = t.encoding == Encoding::csr_codebook, q8 = t.encoding == Encoding::csr_int8;
      const uint32_t nnz = r.get<uint32_t>();
      const uint32_t gap_bits = r.get<uint32_t>();
      const uint32_t width = r.get<uint32_t>();
      uint32_t k = 0, bits = 0;
      if (cb) {
        k = r.get<uint32_t>();
        bits = r.get<uint32_t>();
      }
      r.get<uint32_t>();
      PYRT_CHECK(nnz <= numel, PYRT_BAD_FORMAT, what, ": ", nnz, " nonzeros in a tensor of ", numel, " elements");
      PYRT_CHECK(gap_bits >= 1 && gap_bits <= 8, PYRT_BAD_FORMAT, what, ": gap_bits ", gap_bits, " not in 1..8");
      PYRT_CHECK(width == 1 || width == 2 || width == 4, PYRT_BAD_FORMAT, what, ": row count width ", width,
                 " not 1, 2 or 4");
      if (cb) {
        get_codebook_header(k, bits);
        get_floats(t.centroids, k, "centroids");
      }
      if (q8) get_floats(t.scales, rows, "scales");
      const uint8_t* counts = r.take(rows * width);
      r.skip_to_multiple(4);
      t.rowptr.resize(rows + 1);
      t.rowptr[0] = 0;
      uint64_t total = 0;
      for (uint64_t i = 0; i < rows; ++i) {
        uint32_t c = 0;
        std::memcpy(&c, counts + i * width, width);
        PYRT_CHECK(c <= cols, PYRT_BAD_FORMAT, what, ": row ", i, " has ", c, " nonzeros but only ", cols, " columns");
        total += c;
        PYRT_CHECK(total <= nnz, PYRT_BAD_FORMAT, what, ": row counts exceed nnz = ", nnz, " at row ", i);
        t.rowptr[i + 1] = static_cast<uint32_t>(total);
      }
      PYRT_CHECK(total == nnz, PYRT_BAD_FORMAT, what, ": row counts sum to ", total, ", header says nnz = ", nnz);
      const auto gaps = read_symbol_stream(r, gap_bits, nnz, numel, what + " column gaps");
      const uint32_t m = (1u << gap_bits) - 1;
      t.colidx.resize(nnz);
      size_t gi = 0;
      for (uint64_t i = 0; i < rows; ++i) {
        uint64_t pos = 0;
        for (uint32_t j = t.rowptr[i]; j < t.rowptr[i + 1]; ++j) {
          for (;;) {
            PYRT_CHECK(gi < gaps.size(), PYRT_BAD_FORMAT, what, ": column gap stream ends early in row ", i);
            const uint32_t g = gaps[gi++];
            if (g == m) {
              pos += m;
              PYRT_CHECK(pos < cols, PYRT_BAD_FORMAT, what, ": filler runs past the last column in row ", i);
              continue;
            }
            pos += g;
            break;
          }
          PYRT_CHECK(pos < cols, PYRT_BAD_FORMAT, what, ": column ", pos, " out of range in row ", i);
          t.colidx[j] = static_cast<uint32_t>(pos);
          ++pos;
        }
      }
      PYRT_CHECK(gi == gaps.size(), PYRT_BAD_FORMAT, what, ": ", gaps.size() - gi, " unused column gaps");
      t.gap_bits = gap_bits;
      if (cb) {
        t.indices = read_symbol_stream(r, bits, nnz, nnz, what + " indices");
      } else if (q8) {
        const auto q = read_symbol_stream(r, 8, nnz, nnz, what + " int8 values");
        t.qvalues.assign(reinterpret_cast<const int8_t*>(q.data()), reinterpret_cast<const int8_t*>(q.data()) + q.size());
      } else {
        get_floats(t.values, nnz, "csr values");
      }
      break;
    }
  }
  PYRT_CHECK(r.remaining() == 0, PYRT_BAD_FORMAT, what, ": ", r.remaining(), " bytes after the end of the ",
             encoding_name(t.encoding), " body");
  t.validate(PYRT_BAD_FORMAT);
  return t;
}

}  // namespace pyrt::format
