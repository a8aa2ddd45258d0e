// pyruntime: the decoded (canonical) form of a weight tensor.
//
// This is the meeting point of the three layers: the converter hands tensors in this form to the
// writer (csrc/format/writer), the reader decodes a file back into it (csrc/format/reader), and the
// kernel packers (csrc/kernels/pack.cpp) turn it into an execution layout at load time. It is never
// used while running: after packing, the decoded form is dropped.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pyrt {

enum class Encoding : uint32_t {
  dense_f32 = 0,     // values: rows*cols floats, row-major
  csr = 1,           // rowptr, colidx, values (f32 per nonzero)
  codebook = 2,      // indices: rows*cols codebook indices, centroids
  csr_codebook = 3,  // rowptr, colidx, indices (one per nonzero), centroids
  int8 = 4,          // qvalues: rows*cols int8 in -127..127, scales: one per row (format version 3)
  csr_int8 = 5,      // rowptr, colidx, qvalues (one per nonzero), scales: one per row (format version 3)
  binary = 6,        // bits: rows * binary_words(cols) u64 sign words, scales: alphas, one per row (version 4)
};

// A binary weight's row is this many u64 words (bit i of word j is column 64 j + i, 1 for +1).
inline uint64_t binary_words(uint64_t cols) { return (cols + 63) / 64; }
constexpr uint64_t kMaxBinaryCols = uint64_t(1) << 24;  // every integer of a binary layer is exact in f32

const char* encoding_name(Encoding e);
bool is_sparse(Encoding e);
bool has_codebook(Encoding e);
bool is_int8(Encoding e);
bool has_scales(Encoding e);  // int8, csr+int8, binary: one f32 scale per row
// The first format version that has the encoding.
uint32_t encoding_version(Encoding e);

struct DecodedTensor {
  std::string name;
  Encoding encoding = Encoding::dense_f32;
  std::vector<uint32_t> shape;     // rank 1..4; a 2-D view is rows = shape[0], cols = product of the rest

  std::vector<float> values;       // dense_f32: numel; csr: nnz (empty when borrowed_values is set)
  std::vector<uint32_t> rowptr;    // csr, csr_codebook: rows + 1, rowptr[0] = 0, non-decreasing
  std::vector<uint32_t> colidx;    // csr, csr_codebook: nnz, strictly increasing within a row
  std::vector<uint8_t> indices;    // codebook: numel; csr_codebook: nnz; each < centroids.size()
  std::vector<float> centroids;    // codebook, csr_codebook: k (1..256)
  uint32_t index_bits = 0;         // codebook*: bits per index (1..8), 2^bits >= k
  uint32_t gap_bits = 0;           // csr*: bits per relative column gap in the file (1..8); 0 = writer chooses
  std::vector<int8_t> qvalues;     // int8: numel; csr_int8: nnz; each in -127..127 (symmetric)
  std::vector<float> scales;       // int8, csr_int8, binary: one per row (output channel), finite, >= 0:
                                   // W[r][c] = scales[r] * q[r][c] (binary: scales[r] * (bit ? +1 : -1))
  std::vector<uint64_t> bits;      // binary: rows * binary_words(cols), padding bits 0

  // dense_f32 only: numel floats that live in a buffer this tensor does not own (a memory-mapped file),
  // used instead of `values`. Whoever sets it keeps that buffer alive as long as the tensor or anything
  // packed from it (runtime::Model holds the mapping).
  const float* borrowed_values = nullptr;
  // dense_f32 only, set by the loader of a memory-mapped file: where the same numel floats lie in the
  // mapping. pack(..., in_place) keeps pointing there; nothing reads them while loading (every check and
  // count reads borrowed_values, a copy read from the file), so a file truncated during the load cannot
  // fault it. The loader keeps the mapping alive as long as anything packed from it.
  const float* mapped_values = nullptr;

  const float* value_data() const { return borrowed_values ? borrowed_values : values.data(); }
  uint64_t value_count() const { return borrowed_values ? numel() : values.size(); }

  uint64_t rows() const { return shape.empty() ? 0 : shape[0]; }
  uint64_t cols() const {
    uint64_t c = 1;
    for (size_t i = 1; i < shape.size(); ++i) c *= shape[i];
    return c;
  }
  uint64_t numel() const { return rows() * cols(); }
  uint64_t nnz() const;            // stored entries (numel for dense encodings)
  uint64_t count_nonzero() const;  // weights that are not zero, whatever the encoding

  // Checks internal consistency (sizes, ranges, ordering); throws pyrt::Error naming the tensor.
  void validate(int status) const;
};

}  // namespace pyrt
