#include "common/tensor.h"

#include <cmath>

#include "common/error.h"

namespace pyrt {

const char* encoding_name(Encoding e) {
  switch (e) {
    case Encoding::dense_f32: return "dense";
    case Encoding::csr: return "csr";
    case Encoding::codebook: return "codebook";
    case Encoding::csr_codebook: return "csr+codebook";
    case Encoding::int8: return "int8";
    case Encoding::csr_int8: return "csr+int8";
    case Encoding::binary: return "binary";
  }
  return "unknown";
}

bool is_sparse(Encoding e) { return e == Encoding::csr || e == Encoding::csr_codebook || e == Encoding::csr_int8; }
bool has_codebook(Encoding e) { return e == Encoding::codebook || e == Encoding::csr_codebook; }
bool is_int8(Encoding e) { return e == Encoding::int8 || e == Encoding::csr_int8; }
bool has_scales(Encoding e) { return is_int8(e) || e == Encoding::binary; }
uint32_t encoding_version(Encoding e) { return e == Encoding::binary ? 4 : is_int8(e) ? 3 : 1; }

uint64_t DecodedTensor::nnz() const { return is_sparse(encoding) ? colidx.size() : numel(); }

uint64_t DecodedTensor::count_nonzero() const {
  uint64_t n = 0;
  if (has_codebook(encoding)) {
    for (uint8_t i : indices) n += centroids[i] != 0.0f;
  } else if (encoding == Encoding::binary) {
    for (uint64_t r = 0; r < rows(); ++r) n += scales[r] != 0.0f ? cols() : 0;
  } else if (is_int8(encoding)) {
    for (uint64_t r = 0; r < rows(); ++r) {
      if (scales[r] == 0.0f) continue;
      const uint64_t j0 = encoding == Encoding::int8 ? r * cols() : rowptr[r];
      const uint64_t j1 = encoding == Encoding::int8 ? j0 + cols() : rowptr[r + 1];
      for (uint64_t j = j0; j < j1; ++j) n += qvalues[j] != 0;
    }
  } else {
    const float* v = value_data();
    for (uint64_t i = 0, e = value_count(); i < e; ++i) n += v[i] != 0.0f;
  }
  return n;
}

void DecodedTensor::validate(int status_int) const {
  const auto status = static_cast<pyrt_status>(status_int);
  const std::string& n = name;
  PYRT_CHECK(!shape.empty() && shape.size() <= 4, status, "tensor '", n, "': rank ", shape.size(),
             " is not in 1..4");
  for (uint32_t d : shape) PYRT_CHECK(d > 0, status, "tensor '", n, "': a dimension is zero");
  const uint64_t r = rows(), c = cols();
  PYRT_CHECK(c <= 0xFFFFFFFFull && r * c <= (1ull << 40), status, "tensor '", n, "': shape too large");
  if (has_codebook(encoding)) {
    PYRT_CHECK(!centroids.empty() && centroids.size() <= 256, status, "tensor '", n, "': codebook size ",
               centroids.size(), " is not in 1..256");
    PYRT_CHECK(index_bits >= 1 && index_bits <= 8, status, "tensor '", n, "': index_bits ", index_bits,
               " is not in 1..8");
    PYRT_CHECK((1u << index_bits) >= centroids.size(), status, "tensor '", n, "': ", centroids.size(),
               " centroids do not fit in ", index_bits, "-bit indices");
    const uint8_t k = static_cast<uint8_t>(centroids.size() - 1);
    for (uint8_t i : indices)
      PYRT_CHECK(i <= k, status, "tensor '", n, "': codebook index ", int(i), " >= codebook size ",
                 centroids.size());
  }
  if (has_scales(encoding)) {
    PYRT_CHECK(scales.size() == r, status, "tensor '", n, "': ", scales.size(), " scales for ", r, " rows");
    for (uint64_t i = 0; i < r; ++i)
      PYRT_CHECK(std::isfinite(scales[i]) && scales[i] >= 0.0f, status, "tensor '", n, "': scale of row ", i,
                 " is ", scales[i], " (must be finite and >= 0)");
  }
  if (is_int8(encoding)) {
    for (size_t j = 0; j < qvalues.size(); ++j)
      PYRT_CHECK(qvalues[j] != -128, status, "tensor '", n, "': int8 value -128 at position ", j,
                 " (symmetric int8 is -127..127)");
  }
  switch (encoding) {
    case Encoding::int8:
      PYRT_CHECK(qvalues.size() == r * c, status, "tensor '", n, "': ", qvalues.size(),
                 " int8 values for a tensor of ", r * c, " elements");
      break;
    case Encoding::binary: {
      PYRT_CHECK(c <= kMaxBinaryCols, status, "tensor '", n, "': a binary weight has at most 2^24 = ", kMaxBinaryCols,
                 " columns, this one ", c);
      const uint64_t words = binary_words(c);
      PYRT_CHECK(bits.size() == r * words, status, "tensor '", n, "': ", bits.size(), " sign words for ", r,
                 " rows of ", words);
      const uint64_t pad = c % 64 ? ~uint64_t(0) << (c % 64) : 0;
      for (uint64_t i = 0; pad && i < r; ++i)
        PYRT_CHECK((bits[i * words + words - 1] & pad) == 0, status, "tensor '", n, "': row ", i,
                   " has a sign bit set past its last column (padding bits must be 0)");
      break;
    }
    case Encoding::dense_f32:
      PYRT_CHECK(value_count() == r * c, status, "tensor '", n, "': ", value_count(),
                 " values for a dense tensor of ", r * c, " elements");
      break;
    case Encoding::codebook:
      PYRT_CHECK(indices.size() == r * c, status, "tensor '", n, "': ", indices.size(),
                 " indices for a codebook tensor of ", r * c, " elements");
      break;
    case Encoding::csr:
    case Encoding::csr_codebook:
    case Encoding::csr_int8: {
      PYRT_CHECK(rowptr.size() == r + 1, status, "tensor '", n, "': rowptr has ", rowptr.size(),
                 " entries, expected rows + 1 = ", r + 1);
      PYRT_CHECK(rowptr[0] == 0, status, "tensor '", n, "': rowptr[0] must be 0");
      for (uint64_t i = 0; i < r; ++i)
        PYRT_CHECK(rowptr[i] <= rowptr[i + 1], status, "tensor '", n, "': rowptr decreases at row ", i);
      PYRT_CHECK(rowptr[r] == colidx.size(), status, "tensor '", n, "': rowptr ends at ", rowptr[r], " but ",
                 colidx.size(), " column indices are given");
      for (uint64_t i = 0; i < r; ++i) {
        for (uint32_t j = rowptr[i]; j < rowptr[i + 1]; ++j) {
          PYRT_CHECK(colidx[j] < c, status, "tensor '", n, "': column ", colidx[j], " out of range in row ", i);
          PYRT_CHECK(j == rowptr[i] || colidx[j] > colidx[j - 1], status, "tensor '", n,
                     "': columns not strictly increasing in row ", i);
        }
      }
      if (encoding == Encoding::csr)
        PYRT_CHECK(values.size() == colidx.size(), status, "tensor '", n, "': ", values.size(), " values for ",
                   colidx.size(), " nonzeros");
      else if (encoding == Encoding::csr_int8)
        PYRT_CHECK(qvalues.size() == colidx.size(), status, "tensor '", n, "': ", qvalues.size(),
                   " int8 values for ", colidx.size(), " nonzeros");
      else
        PYRT_CHECK(indices.size() == colidx.size(), status, "tensor '", n, "': ", indices.size(),
                   " indices for ", colidx.size(), " nonzeros");
      break;
    }
    default:
      fail(status, "tensor '", n, "': unknown encoding ", static_cast<uint32_t>(encoding));
  }
}

}  // namespace pyrt
