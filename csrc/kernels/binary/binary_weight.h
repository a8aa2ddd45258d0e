// pyruntime: a binary weight in its execution layout (binary_kernels.h), built once at load time from a binary
// DecodedTensor and immutable afterwards, with what its epilogue reads (alphas, bias or popcount limits),
// padded to whole blocks of 8 rows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/aligned.h"
#include "common/tensor.h"
#include "kernels/binary/binary_kernels.h"

namespace pyrt::kernels {

class BinaryWeight {
 public:
  enum class Mode { xnor_real, xnor_bits, real_input };
  // t: a valid binary tensor [out, in]; second: the bias (xnor_real, real_input) or the popcount thresholds
  // (xnor_bits; integers in 0..K + 1), or null.
  BinaryWeight(const DecodedTensor& t, Mode mode, const DecodedTensor* second);

  uint32_t rows() const { return rows_; }
  uint32_t cols() const { return cols_; }
  size_t words() const { return kw_; }  // u64 words of a row (and of an input sample)
  Mode mode() const { return mode_; }
  size_t bytes() const { return w_.bytes() + alpha_.bytes() + bias_.bytes() + limit_.bytes(); }
  const char* layout() const { return mode_ == Mode::real_input ? "b1_rows" : "b1_r8"; }

  // Rows [r0, r1) (r0 a multiple of 8) of `batch` samples: x is b1 (ldx words per sample) for the XNOR modes,
  // f32 (ldx floats) for real_input; y is f32 (ldy floats) or, for xnor_bits, b1 bytes (ldy bytes per sample).
  void gemm(Isa isa, const void* x, size_t ldx, size_t batch, size_t r0, size_t r1, void* y, size_t ldy) const;
  // XNOR modes: the mismatch counts m = popcount(w_r XOR x_b) of rows [r0, r1) (r0 a multiple of 8), int32.
  void counts(Isa isa, const uint64_t* x, size_t ldx, size_t batch, size_t r0, size_t r1, int32_t* y,
              size_t ldy) const;
  // Boundaries 0 = s[0] < ... < s[n] = rows into at most `parts` pieces of equal rows, inner ones multiples of 64
  // (so a b1 output word is written by one piece).
  std::vector<uint32_t> row_splits(unsigned parts) const;

 private:
  uint32_t rows_, cols_;
  size_t kw_;
  Mode mode_;
  AlignedArray<uint64_t> w_;
  AlignedArray<float> alpha_, bias_;
  AlignedArray<int32_t> limit_;
};

}  // namespace pyrt::kernels
